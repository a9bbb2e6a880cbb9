//! The store on a real directory (`FsDisk`) and on the simulated page cache (`SimDisk`):
//! what it writes comes back, a snapshot bounds what the server replays, and what a power
//! cut leaves is recovered — a torn log tail cut at its CRC, epoch files old or new, whole.

use super::*;
use crate::disk::{DiskFile, FsDisk, SimDisk, SimDiskConfig};
use crate::zk::{SessionId, Txn, TxnHeader, Xid};
use std::cell::Cell;
use std::rc::Rc;

struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root(name: &str, seed: u64) -> TempRoot {
    let root = std::env::temp_dir().join(format!(
        "ksim-zk-store-{name}-{seed}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    TempRoot(root)
}

fn sim(name: &str, seed: u64) -> (SimDisk, TempRoot) {
    let root = root(name, seed);
    let disk = SimDisk::new(&root.0, seed, SimDiskConfig::default()).unwrap();
    (disk, root)
}

fn fs(name: &str) -> (FsDisk, TempRoot) {
    let root = root(name, 0);
    let disk = FsDisk::new(&root.0).unwrap();
    (disk, root)
}

/// The `n`-th transaction of epoch 1: a create of `/n<n>`.
fn txn(n: u32) -> TxnRecord {
    TxnRecord {
        header: TxnHeader {
            zxid: Zxid::new(Epoch(1), n),
            session: SessionId::NONE,
            xid: Xid(u64::from(n)),
            time_ms: i64::from(n),
        },
        txn: Txn::Create {
            path: format!("/n{n}"),
            data: vec![b'x'; 40],
            ephemeral_owner: SessionId::NONE,
        },
    }
}

fn txns(range: std::ops::RangeInclusive<u32>) -> Vec<TxnRecord> {
    range.map(txn).collect()
}

/// The tree after transactions `1..=n`.
fn snapshot_after(n: u32) -> Snapshot {
    let mut tree = DataTree::new();
    for record in txns(1..=n) {
        tree.apply(&record.header, &record.txn);
    }
    tree.snapshot()
}

fn open<D: Disk>(disk: &D) -> (FileTxnSnapLog<D>, Recovered, Vec<StoreEvent>) {
    let mut events = Vec::new();
    let (store, recovered) = FileTxnSnapLog::open(disk.clone(), true, &mut events).unwrap();
    (store, recovered, events)
}

fn writes_come_back<D: Disk>(disk: D) {
    let (mut store, recovered, events) = open(&disk);
    assert_eq!(
        recovered.accepted_epoch,
        Epoch(0),
        "no epoch file is epoch 0"
    );
    assert_eq!(recovered.current_epoch, Epoch(0));
    assert_eq!(recovered.snapshot, None);
    assert!(recovered.log.is_empty() && events.is_empty());
    store.persist_epochs(Epoch(1), Epoch(1)).unwrap();
    store.append(&txns(1..=3)).unwrap();
    store.commit().unwrap();
    store.append(&txns(4..=5)).unwrap();
    store.commit().unwrap();
    assert_eq!(store.last_zxid(), Some(Zxid::new(Epoch(1), 5)));
    drop(store);

    let (store, recovered, events) = open(&disk);
    assert_eq!(recovered.accepted_epoch, Epoch(1));
    assert_eq!(recovered.current_epoch, Epoch(1));
    assert_eq!(
        recovered.log,
        txns(1..=5),
        "every transaction, in zxid order"
    );
    assert_eq!(store.last_zxid(), Some(Zxid::new(Epoch(1), 5)));
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn appended_transactions_and_epochs_come_back_on_fs_disk() {
    let (disk, _root) = fs("round-trip");
    writes_come_back(disk);
}

#[test]
fn appended_transactions_and_epochs_come_back_on_sim_disk() {
    let (disk, _root) = sim("round-trip", 1);
    writes_come_back(disk.clone());
    // Everything was committed or persisted: a power cut now loses nothing.
    disk.power_loss().unwrap();
    let (_, recovered, _) = open(&disk);
    assert_eq!(recovered.log, txns(1..=5));
    assert_eq!(recovered.current_epoch, Epoch(1));
}

fn snapshots_bound_the_replay<D: Disk>(disk: D) {
    let (mut store, _, _) = open(&disk);
    store.append(&txns(1..=8)).unwrap();
    store.commit().unwrap();
    for n in [2, 4, 5, 6] {
        store.save_snapshot(&snapshot_after(n)).unwrap();
    }
    drop(store);
    let names = snapshot_names(&disk).unwrap();
    assert_eq!(
        names.len(),
        SNAPSHOTS_KEPT,
        "only the newest are kept: {names:?}"
    );
    assert_eq!(
        names.first().map(String::as_str),
        Some("snapshot.0000000100000004")
    );

    let (_, recovered, events) = open(&disk);
    assert_eq!(recovered.snapshot, Some(snapshot_after(6)));
    assert_eq!(
        recovered.log,
        txns(7..=8),
        "the server replays only what follows its snapshot"
    );
    assert!(events.is_empty(), "{events:?}");

    // ZooKeeper falls back to an older snapshot when the newest is unusable.
    let newest = data("snapshot.0000000100000006");
    let mut file = disk.create(&newest).unwrap();
    file.write_at(0, b"{\"zxid\": 6, \"nodes\": [").unwrap();
    drop(file);
    let (_, recovered, events) = open(&disk);
    assert_eq!(recovered.snapshot, Some(snapshot_after(5)));
    assert_eq!(recovered.log, txns(6..=8));
    assert!(
        matches!(&events[..], [StoreEvent::BadSnapshot { file, .. }] if file == "snapshot.0000000100000006"),
        "{events:?}"
    );
}

#[test]
fn recovery_replays_only_what_follows_the_newest_valid_snapshot_on_fs_disk() {
    let (disk, _root) = fs("snapshots");
    snapshots_bound_the_replay(disk);
}

#[test]
fn recovery_replays_only_what_follows_the_newest_valid_snapshot_on_sim_disk() {
    let (disk, _root) = sim("snapshots", 2);
    snapshots_bound_the_replay(disk);
}

#[test]
fn trunc_drops_what_follows_a_zxid_and_snap_resets_the_log_durably() {
    for seed in 0..8 {
        let (disk, _root) = sim("trunc", seed);
        let (mut store, _, _) = open(&disk);
        store.append(&txns(1..=6)).unwrap();
        store.commit().unwrap();
        store.truncate(Zxid::new(Epoch(1), 4)).unwrap();
        assert_eq!(store.last_zxid(), Some(Zxid::new(Epoch(1), 4)));
        store.truncate(Zxid::new(Epoch(1), 9)).unwrap();
        assert_eq!(
            store.last_zxid(),
            Some(Zxid::new(Epoch(1), 4)),
            "nothing after 9"
        );
        drop(store);
        disk.power_loss().unwrap();
        let (mut store, recovered, _) = open(&disk);
        assert_eq!(
            recovered.log,
            txns(1..=4),
            "seed {seed}: the truncation is durable"
        );

        // A SNAP: the snapshot is saved, then the log emptied; later transactions follow.
        store.save_snapshot(&snapshot_after(4)).unwrap();
        store.reset().unwrap();
        assert_eq!(store.last_zxid(), None);
        store.append(&txns(5..=5)).unwrap();
        store.commit().unwrap();
        drop(store);
        disk.power_loss().unwrap();
        let (_, recovered, _) = open(&disk);
        assert_eq!(recovered.snapshot, Some(snapshot_after(4)), "seed {seed}");
        assert_eq!(recovered.log, txns(5..=5), "seed {seed}");
    }
}

/// Power cuts after a commit and more appends: the committed transactions survive, a
/// prefix of the rest may, and a torn record is detected by the log engine's CRC and cut.
#[test]
fn a_torn_tail_after_a_power_cut_is_detected_by_its_crc_and_cut() {
    let mut cut = 0;
    for seed in 0..24 {
        let (disk, _root) = sim("torn", seed);
        let (mut store, _, _) = open(&disk);
        store.append(&txns(1..=4)).unwrap();
        store.commit().unwrap();
        store.append(&txns(5..=12)).unwrap();
        drop(store);
        let report = disk.power_loss().unwrap();

        let (mut store, recovered, events) = open(&disk);
        let n = recovered.log.len() as u32;
        assert!(
            n >= 4,
            "seed {seed}: committed transactions survive ({report:?})"
        );
        assert_eq!(recovered.log, txns(1..=n), "seed {seed}: a prefix survives");
        if let [StoreEvent::TxnLogRecovered { recovery }] = &events[..] {
            assert!(recovery.truncated_at.is_some());
            assert!(recovery.bytes_truncated > 0, "seed {seed}");
            cut += 1;
        } else {
            assert!(events.is_empty(), "seed {seed}: {events:?}");
        }
        // The log goes on after what survived.
        store.append(&txns(n + 1..=n + 1)).unwrap();
        store.commit().unwrap();
        drop(store);
        let (_, recovered, _) = open(&disk);
        assert_eq!(recovered.log, txns(1..=n + 1), "seed {seed}");
    }
    assert!(cut > 0, "no seed tore the uncommitted tail");
}

#[test]
fn a_flipped_byte_in_the_last_record_is_caught_by_its_crc() {
    let (disk, _root) = fs("crc");
    let (mut store, _, _) = open(&disk);
    store.append(&txns(1..=3)).unwrap();
    drop(store);
    let segment = data("log").join("00000000000000000000.log");
    let mut file = disk.open(&segment).unwrap();
    let end = file.len();
    let mut byte = [0u8; 1];
    file.read_exact_at(end - 2, &mut byte).unwrap();
    file.write_at(end - 2, &[byte[0] ^ 0x40]).unwrap();
    drop(file);

    let (_, recovered, events) = open(&disk);
    assert_eq!(recovered.log, txns(1..=2), "the corrupt record is cut");
    assert!(
        matches!(&events[..], [StoreEvent::TxnLogRecovered { recovery }] if recovery.truncated_at == Some(Offset(2))),
        "{events:?}"
    );
}

#[test]
fn commit_without_force_sync_leaves_the_records_to_the_page_cache() {
    let (disk, _root) = sim("no-force-sync", 3);
    let mut events = Vec::new();
    let (mut store, _) = FileTxnSnapLog::open(disk.clone(), false, &mut events).unwrap();
    let syncs = disk.stats().syncs;
    store.append(&txns(1..=3)).unwrap();
    store.commit().unwrap();
    assert_eq!(disk.stats().syncs, syncs, "no fsync without forceSync");
    assert!(disk.unsynced_bytes() > 0);
}

#[test]
fn a_record_that_is_not_a_transaction_is_reported_and_cut() {
    let (disk, _root) = fs("bad-record");
    let (mut store, _, _) = open(&disk);
    store.append(&txns(1..=2)).unwrap();
    drop(store);
    // A record the log engine finds intact (its CRC is right) but that is no transaction.
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(disk.clone(), &data("log"), config).unwrap();
    let mut batch = BatchBuilder::new(BatchMeta::default());
    batch.push(0, None, Some(b"not json"), &[]);
    log.append(&mut batch).unwrap();
    let mut batch = BatchBuilder::new(BatchMeta::default());
    let value = serde_json::to_vec(&txn(3)).unwrap();
    batch.push(0, None, Some(&value), &[]);
    log.append(&mut batch).unwrap();
    log.flush().unwrap();
    drop(log);

    let (mut store, recovered, events) = open(&disk);
    assert_eq!(recovered.log, txns(1..=2));
    assert_eq!(events, vec![StoreEvent::BadTxnRecord { offset: Offset(2) }]);
    assert_eq!(
        serde_json::to_value(&events[0]).unwrap(),
        serde_json::json!({ "kind": "bad-txn-record", "detail": { "offset": 2 } }),
        "announced as the run's record holds it"
    );
    store.append(&txns(3..=3)).unwrap();
    store.commit().unwrap();
    drop(store);
    let (_, recovered, events) = open(&disk);
    assert_eq!(
        recovered.log,
        txns(1..=3),
        "the bad record and all after it are gone"
    );
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn an_epoch_file_that_holds_no_epoch_is_a_reported_error() {
    let (disk, _root) = fs("bad-epoch");
    let (mut store, _, _) = open(&disk);
    store.persist_epochs(Epoch(3), Epoch(2)).unwrap();
    drop(store);
    write_atomic(&disk, &data(CURRENT_EPOCH), b"two\n").unwrap();
    let error = FileTxnSnapLog::open(disk, true, &mut Vec::new())
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        "currentEpoch holds \"two\\n\", not an epoch"
    );
}

/// A `SimDisk` whose power goes out inside a chosen sync (file or directory).
#[derive(Clone)]
struct CutAtSync {
    disk: SimDisk,
    /// Syncs to let through before the one the power cut strikes in.
    syncs_left: Rc<Cell<Option<u32>>>,
}

impl CutAtSync {
    fn before_sync(&self) {
        match self.syncs_left.get() {
            Some(0) => {
                self.disk.arm_power_loss();
                self.syncs_left.set(None);
            }
            Some(n) => self.syncs_left.set(Some(n - 1)),
            None => {}
        }
    }
}

struct CutFile {
    file: <SimDisk as Disk>::File,
    owner: CutAtSync,
}

impl Disk for CutAtSync {
    type File = CutFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.disk.create_dir_all(dir)
    }
    fn create(&self, path: &Path) -> io::Result<CutFile> {
        let file = self.disk.create(path)?;
        let owner = self.clone();
        Ok(CutFile { file, owner })
    }
    fn open(&self, path: &Path) -> io::Result<CutFile> {
        let file = self.disk.open(path)?;
        let owner = self.clone();
        Ok(CutFile { file, owner })
    }
    fn exists(&self, path: &Path) -> bool {
        self.disk.exists(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.disk.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.disk.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.before_sync();
        self.disk.sync_dir(dir)
    }
}

impl DiskFile for CutFile {
    fn len(&self) -> u64 {
        self.file.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_at(offset, data)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.truncate(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.owner.before_sync();
        self.file.sync()
    }
}

/// ZAB's discovery persists `acceptedEpoch` before `currentEpoch`; each file is replaced
/// atomically. A power cut inside any of the four fsyncs of that replacement leaves each
/// file with its old or its new epoch, whole, and never a new current epoch with an old
/// accepted one.
#[test]
fn epoch_files_are_replaced_atomically_whatever_fsync_the_power_cut_strikes() {
    for seed in 0..8 {
        for strike in 0..=4 {
            let (sim, _root) = sim(&format!("epochs-{strike}"), seed);
            let disk = CutAtSync {
                disk: sim.clone(),
                syncs_left: Rc::new(Cell::new(None)),
            };
            let (mut store, _, _) = open(&disk);
            store.persist_epochs(Epoch(1), Epoch(1)).unwrap();
            disk.syncs_left.set(Some(strike));
            let result = store.persist_epochs(Epoch(2), Epoch(2));
            let struck = sim.disarm().is_some();
            assert_eq!(struck, strike < 4, "seed {seed}, strike {strike}");
            assert_eq!(result.is_err(), struck, "a sync the power cut hit fails");
            drop(store);
            if !struck {
                sim.power_loss().unwrap();
            }

            let (_, recovered, _) = open(&sim);
            let epochs = (recovered.accepted_epoch.0, recovered.current_epoch.0);
            let possible: &[(u32, u32)] = match strike {
                // Inside the sync of acceptedEpoch.tmp: nothing was renamed.
                0 => &[(1, 1)],
                // Inside the directory sync after its rename: the rename may be undone.
                1 => &[(1, 1), (2, 1)],
                // Inside the sync of currentEpoch.tmp: acceptedEpoch is durable.
                2 => &[(2, 1)],
                3 => &[(2, 1), (2, 2)],
                _ => &[(2, 2)],
            };
            assert!(
                possible.contains(&epochs),
                "seed {seed}, strike {strike}: {epochs:?}"
            );
        }
    }
}
