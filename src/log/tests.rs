//! Unit tests of the log as a whole: rolling, index lookups, reads, truncation,
//! retention, flushing and recovery, on a `SimDisk`.

use super::*;
use crate::disk::{Disk, DiskFile, SimDisk, SimDiskConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sim(name: &str, seed: u64) -> (SimDisk, TempRoot) {
    let root = std::env::temp_dir().join(format!("ksim-log-{name}-{seed}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let disk = SimDisk::new(&root, seed, SimDiskConfig::default()).unwrap();
    (disk, TempRoot(root))
}

const DIR: &str = "orders-0";

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        flush_interval_messages: None,
        retention_bytes: None,
        retention_ms: None,
    }
}

/// The value of record `offset` in these tests: derived from the offset, `len` bytes.
fn value(offset: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (offset as usize * 31 + i) as u8).collect()
}

/// Appends `n` records of `len`-byte values stamped `ts`.
fn append(log: &mut Log<SimDisk>, n: usize, len: usize, ts: i64) -> AppendInfo {
    let base = log.log_end_offset().0;
    let mut b = BatchBuilder::new(BatchMeta {
        base_timestamp_ms: ts,
        ..BatchMeta::default()
    });
    for i in 0..n as u64 {
        b.push(
            ts,
            Some(&(base + i).to_be_bytes()),
            Some(&value(base + i, len)),
            &[],
        );
    }
    log.append(&mut b).unwrap()
}

fn assert_record(r: &Record, len: usize) {
    assert_eq!(r.key.as_deref(), Some(&r.offset.0.to_be_bytes()[..]));
    assert_eq!(r.value.as_deref(), Some(&value(r.offset.0, len)[..]));
}

/// Every record from log start to LEO, read one by one from every offset.
fn assert_readable_everywhere(log: &Log<SimDisk>, len: usize) {
    for from in log.log_start_offset().0..log.log_end_offset().0 {
        let records = log.read_records(Offset(from), 1).unwrap();
        assert_eq!(records[0].offset, Offset(from), "read from {from}");
        for r in &records {
            assert_record(r, len);
        }
    }
}

fn files(disk: &SimDisk) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&disk.root().expect("a file-backed disk"), &mut out);
    out
}

fn segment_path(base: u64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

#[test]
fn a_new_log_is_empty_and_appends_get_dense_offsets() {
    let (disk, _root) = sim("new", 0);
    let (mut log, report) = Log::open(disk.clone(), dir(), config(1 << 20)).unwrap();
    assert_eq!(report.log_end_offset, Offset(0));
    assert_eq!(log.read(Offset(0), 100).unwrap(), Vec::<u8>::new());
    let a = append(&mut log, 3, 10, 5);
    assert_eq!((a.base_offset, a.last_offset), (Offset(0), Offset(2)));
    let b = append(&mut log, 2, 10, 5);
    assert_eq!((b.base_offset, b.last_offset), (Offset(3), Offset(4)));
    assert_eq!(log.log_end_offset(), Offset(5));
    assert_eq!(log.unflushed_messages(), 5);
    assert!(disk.exists(&segment_path(0)));
    assert!(disk.exists(&dir().join("00000000000000000000.index")));
    assert_readable_everywhere(&log, 10);
    let mut empty = BatchBuilder::new(BatchMeta::default());
    assert!(matches!(log.append(&mut empty), Err(LogError::EmptyBatch)));
    assert!(matches!(
        log.read(Offset(6), 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn segments_roll_when_the_next_batch_would_exceed_segment_bytes() {
    let (disk, _root) = sim("roll", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(1000)).unwrap();
    let mut rolls = 0;
    for _ in 0..20 {
        rolls += usize::from(append(&mut log, 2, 100, 0).rolled);
    }
    assert_eq!(log.segment_count(), rolls + 1);
    for segment in &log.segments {
        assert!(segment.size <= 1000, "{} bytes", segment.size);
    }
    // A batch bigger than a segment still goes in, alone, in a fresh segment.
    let big = append(&mut log, 1, 3000, 0);
    assert!(big.rolled);
    assert!(log.active().size > 3000);
    assert!(append(&mut log, 1, 10, 0).rolled);
    // A roll flushed and checkpointed the recovery point at the new segment's base.
    assert_eq!(log.recovery_point(), log.active().base_offset);
    let records = log.read_records(Offset(0), usize::MAX).unwrap();
    assert_eq!(records.len() as u64, log.log_end_offset().0);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, Offset(i as u64));
    }
}

#[test]
fn roll_is_a_no_op_on_an_empty_active_segment() {
    let (disk, _root) = sim("noroll", 0);
    let (mut log, _) = Log::open(disk, dir(), config(1 << 20)).unwrap();
    log.roll().unwrap();
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 1, 1, 0);
    log.roll().unwrap();
    log.roll().unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets(), vec![Offset(0), Offset(1)]);
}

#[test]
fn index_lookups_find_every_offset_in_many_segments() {
    let (disk, _root) = sim("index", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(2000)).unwrap();
    for i in 0..60 {
        append(&mut log, 1 + i % 4, 20 + i % 7, 0);
    }
    assert!(log.segment_count() > 3);
    assert!(log.segments.iter().any(|s| s.index.entries().len() > 2));
    for from in 0..log.log_end_offset().0 {
        let records = log.read_records(Offset(from), 1).unwrap();
        assert_eq!(records[0].offset, Offset(from));
    }
    // The same after reopening with rebuilt / reloaded indexes.
    log.close().unwrap();
    let (log, report) = Log::open(disk, dir(), config(2000)).unwrap();
    assert_eq!(report.truncated_at, None);
    for from in 0..log.log_end_offset().0 {
        let records = log.read_records(Offset(from), 1).unwrap();
        assert_eq!(records[0].offset, Offset(from));
    }
}

#[test]
fn read_returns_whole_batches_within_max_bytes_but_at_least_one() {
    let (disk, _root) = sim("maxbytes", 0);
    let (mut log, _) = Log::open(disk, dir(), config(1 << 20)).unwrap();
    let sizes: Vec<usize> = (0..5)
        .map(|_| {
            let before = log.size_bytes();
            append(&mut log, 3, 50, 0);
            (log.size_bytes() - before) as usize
        })
        .collect();
    // KIP-74: one whole batch even if max_bytes is smaller.
    assert_eq!(log.read(Offset(0), 0).unwrap().len(), sizes[0]);
    assert_eq!(log.read(Offset(0), sizes[0] - 1).unwrap().len(), sizes[0]);
    // The batch containing `from`, not the one after it.
    let from_middle = log.read(Offset(4), 1).unwrap();
    assert_eq!(decode_batch(&from_middle).unwrap().0.base_offset, Offset(3));
    assert_eq!(
        log.read(Offset(0), sizes[0] + sizes[1]).unwrap().len(),
        sizes[0] + sizes[1]
    );
    assert_eq!(
        log.read(Offset(0), sizes[0] + sizes[1] + 1).unwrap().len(),
        sizes[0] + sizes[1]
    );
    let all = log.read(Offset(0), usize::MAX).unwrap();
    assert_eq!(decode_batches(&all).unwrap().len(), 5);
    let records = log.read_records(Offset(4), 1).unwrap();
    assert_eq!(
        records.iter().map(|r| r.offset.0).collect::<Vec<_>>(),
        [4, 5]
    );
}

#[test]
fn reads_continue_across_segments() {
    let (disk, _root) = sim("across", 0);
    let (mut log, _) = Log::open(disk, dir(), config(300)).unwrap();
    for _ in 0..10 {
        append(&mut log, 1, 100, 0);
    }
    assert!(log.segment_count() >= 5);
    let all = log.read_records(Offset(0), usize::MAX).unwrap();
    assert_eq!(all.len(), 10);
    for r in &all {
        assert_record(r, 100);
    }
}

#[test]
fn truncate_to_mid_segment_across_segments_and_to_log_start() {
    let (disk, _root) = sim("truncate", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(500)).unwrap();
    for _ in 0..20 {
        append(&mut log, 2, 30, 0);
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    // Inside a batch: cut at the batch's base offset (batches hold offsets 2k, 2k+1).
    log.truncate_to(Offset(31)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(30));
    assert!(log.segment_count() < segments);
    assert_eq!(log.recovery_point(), Offset(30));
    assert_readable_everywhere(&log, 30);
    // Appends continue densely after a cut.
    assert_eq!(append(&mut log, 2, 30, 0).base_offset, Offset(30));
    // Across segments, to a segment base: that segment stays, empty.
    let base = log.segments[1].base_offset;
    log.truncate_to(base).unwrap();
    assert_eq!(log.log_end_offset(), base);
    assert_eq!(log.segment_count(), 2);
    assert!(log.active().is_empty());
    // Above the LEO: a no-op. To the log start: empty.
    log.truncate_to(Offset(1000)).unwrap();
    log.truncate_to(Offset(0)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    // Durable: nothing truncated comes back after a power cut.
    append(&mut log, 1, 30, 0);
    log.flush().unwrap();
    drop(log);
    disk.power_loss().unwrap();
    let (log, _) = Log::open(disk, dir(), config(500)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(1));
    assert_readable_everywhere(&log, 30);
}

#[test]
fn truncation_survives_every_power_cut() {
    for seed in 0..16 {
        let (disk, _root) = sim("truncate-power", seed);
        let (mut log, _) = Log::open(disk.clone(), dir(), config(400)).unwrap();
        for _ in 0..12 {
            append(&mut log, 2, 40, 0);
        }
        log.flush().unwrap();
        log.checkpoint().unwrap();
        log.truncate_to(Offset(9)).unwrap();
        drop(log);
        disk.power_loss().unwrap();
        let (log, _) = Log::open(disk, dir(), config(400)).unwrap();
        assert_eq!(log.log_end_offset(), Offset(8), "seed {seed}");
    }
}

#[test]
fn retention_by_bytes_keeps_at_least_retention_bytes() {
    let (disk, _root) = sim("retention-bytes", 0);
    let mut cfg = config(500);
    cfg.retention_bytes = Some(1200);
    let (mut log, _) = Log::open(disk.clone(), dir(), cfg.clone()).unwrap();
    for _ in 0..30 {
        append(&mut log, 1, 100, 0);
    }
    let before = log.segment_count();
    let deleted = log.delete_old_segments(0).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), before - deleted);
    assert!(log.size_bytes() >= 1200);
    // One more deletion would have gone below the limit.
    assert!(log.size_bytes() - log.segments[0].size < 1200);
    assert_eq!(log.log_start_offset(), log.segments[0].base_offset);
    assert!(matches!(
        log.read(Offset(0), 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_readable_everywhere(&log, 100);
    // The deletion is durable and the log start never goes back.
    let start = log.log_start_offset();
    drop(log);
    disk.power_loss().unwrap();
    let (log, _) = Log::open(disk, dir(), cfg).unwrap();
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn retention_by_time_deletes_old_segments_but_never_the_active_one() {
    let (disk, _root) = sim("retention-time", 0);
    let mut cfg = config(300);
    cfg.retention_ms = Some(1000);
    let (mut log, _) = Log::open(disk.clone(), dir(), cfg.clone()).unwrap();
    for ts in [100, 200, 300, 5000, 5100] {
        append(&mut log, 1, 200, ts);
    }
    assert_eq!(log.segment_count(), 5);
    // now=1250: only the segment stamped 100 is older than 1000 ms... and 200 is exactly
    // 1050 old, 300 is 950: two go.
    assert_eq!(log.delete_old_segments(1250).unwrap(), 2);
    assert_eq!(log.log_start_offset(), Offset(2));
    // Everything is old at now=100000, but the active segment stays.
    assert_eq!(log.delete_old_segments(100_000).unwrap(), 2);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), Offset(4));
    // Max timestamps of segments loaded from disk are scanned when needed.
    append(&mut log, 1, 200, 5200);
    log.close().unwrap();
    let (mut log, _) = Log::open(disk, dir(), cfg).unwrap();
    assert_eq!(log.delete_old_segments(100_000).unwrap(), 1);
    assert_eq!(log.log_start_offset(), Offset(5));
}

#[test]
fn flush_every_message_survives_every_power_cut() {
    for seed in 0..24 {
        let (disk, _root) = sim("flush1", seed);
        let mut cfg = config(700);
        cfg.flush_interval_messages = Some(1);
        let (mut log, _) = Log::open(disk.clone(), dir(), cfg.clone()).unwrap();
        for i in 0..15 {
            let info = append(&mut log, 1 + i % 3, 60, 0);
            assert!(info.flushed);
            assert_eq!(log.recovery_point(), log.log_end_offset());
        }
        let leo = log.log_end_offset();
        drop(log);
        disk.power_loss().unwrap();
        let (log, report) = Log::open(disk, dir(), cfg).unwrap();
        assert_eq!(log.log_end_offset(), leo, "seed {seed}: {report:?}");
        assert_readable_everywhere(&log, 60);
    }
}

#[test]
fn flush_interval_k_flushes_when_k_messages_are_unflushed() {
    let (disk, _root) = sim("flushk", 0);
    let mut cfg = config(1 << 20);
    cfg.flush_interval_messages = Some(5);
    let (mut log, _) = Log::open(disk, dir(), cfg).unwrap();
    assert!(!append(&mut log, 2, 1, 0).flushed);
    assert!(!append(&mut log, 2, 1, 0).flushed);
    assert_eq!(log.unflushed_messages(), 4);
    assert!(append(&mut log, 2, 1, 0).flushed);
    assert_eq!(log.unflushed_messages(), 0);
    assert_eq!(log.recovery_point(), Offset(6));
}

#[test]
fn a_crash_loses_nothing_and_a_power_cut_keeps_the_flushed_prefix() {
    for seed in 0..24 {
        let (disk, _root) = sim("crash", seed);
        let (mut log, _) = Log::open(disk.clone(), dir(), config(600)).unwrap();
        for _ in 0..10 {
            append(&mut log, 2, 50, 0);
        }
        log.flush().unwrap();
        let flushed = log.log_end_offset();
        for _ in 0..10 {
            append(&mut log, 2, 50, 0);
        }
        let leo = log.log_end_offset();
        drop(log);
        disk.crash();
        let (log, _) = Log::open(disk.clone(), dir(), config(600)).unwrap();
        assert_eq!(log.log_end_offset(), leo, "a crash keeps the page cache");
        assert_eq!(
            log.recovery_point(),
            leo,
            "recovery synced what it validated"
        );
        drop(log);
        // The reopen made everything durable: a power cut now loses nothing.
        disk.power_loss().unwrap();
        let (mut log, _) = Log::open(disk.clone(), dir(), config(600)).unwrap();
        assert_eq!(log.log_end_offset(), leo);
        for _ in 0..10 {
            append(&mut log, 2, 50, 0);
        }
        drop(log);
        disk.power_loss().unwrap();
        let (log, report) = Log::open(disk, dir(), config(600)).unwrap();
        assert!(log.log_end_offset() >= leo && log.log_end_offset() >= flushed);
        assert!(log.log_end_offset() <= leo.plus(20), "{report:?}");
        assert_readable_everywhere(&log, 50);
    }
}

#[test]
fn append_as_follower_validates_and_continues_the_log() {
    let (disk, _root) = sim("follower", 0);
    let (mut leader, _) = Log::open(disk.clone(), Path::new("leader"), config(400)).unwrap();
    for i in 0..12 {
        append(&mut leader, 1 + i % 3, 40, 0);
    }
    let (mut follower, _) = Log::open(disk, Path::new("follower"), config(400)).unwrap();
    // Fetch in chunks, as a follower does.
    while follower.log_end_offset() < leader.log_end_offset() {
        let bytes = leader.read(follower.log_end_offset(), 300).unwrap();
        let info = follower.append_as_follower(&bytes).unwrap();
        assert_eq!(info.last_offset.plus(1), follower.log_end_offset());
    }
    assert!(follower.segment_count() > 1);
    assert_eq!(
        follower.read(Offset(0), usize::MAX).unwrap(),
        leader.read(Offset(0), usize::MAX).unwrap()
    );
    let all = leader.read(Offset(0), usize::MAX).unwrap();
    // Offsets must continue from the LEO.
    assert!(matches!(
        follower.append_as_follower(&all),
        Err(LogError::NonMonotonicOffset { .. })
    ));
    // A corrupted batch is refused whole and nothing is written.
    let leo = follower.log_end_offset();
    let mut b = BatchBuilder::new(BatchMeta::default());
    b.push(0, None, Some(b"x"), &[]);
    let mut bytes = b.encode(leo).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(
        follower.append_as_follower(&bytes),
        Err(LogError::InvalidBatch(BatchError::BadCrc { .. }))
    ));
    assert!(matches!(
        follower.append_as_follower(&[]),
        Err(LogError::EmptyBatch)
    ));
    assert_eq!(follower.log_end_offset(), leo);
}

#[test]
fn open_read_only_changes_nothing_on_disk() {
    let (disk, _root) = sim("readonly", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(500)).unwrap();
    for _ in 0..12 {
        append(&mut log, 2, 40, 0);
    }
    log.close().unwrap();
    // A torn tail, a leftover temp file and an orphan index.
    let last = disk.list(dir()).unwrap();
    let active = last.iter().rev().find(|n| n.ends_with(".log")).unwrap();
    let mut f = disk.open(&dir().join(active)).unwrap();
    f.append(&[0xab; 37]).unwrap();
    disk.create(&dir().join("recovery-point-offset-checkpoint.tmp"))
        .unwrap()
        .append(b"junk")
        .unwrap();
    disk.create(&dir().join("00000000000000099999.index"))
        .unwrap()
        .append(&[0; 8])
        .unwrap();
    let before = files(&disk);

    let (ro, report) = Log::open_read_only(disk.clone(), dir(), config(500)).unwrap();
    assert_eq!(files(&disk), before, "a read-only open changed the disk");
    assert_eq!(ro.log_end_offset(), Offset(24));
    assert_eq!(report.bytes_truncated, 37);
    assert_readable_everywhere(&ro, 40);
    let mut ro = ro;
    assert!(matches!(append_err(&mut ro), LogError::ReadOnly));
    assert!(matches!(ro.truncate_to(Offset(0)), Err(LogError::ReadOnly)));
    assert!(matches!(ro.flush(), Err(LogError::ReadOnly)));
    assert!(matches!(ro.roll(), Err(LogError::ReadOnly)));
    assert!(matches!(ro.checkpoint(), Err(LogError::ReadOnly)));
    assert!(matches!(ro.delete_old_segments(0), Err(LogError::ReadOnly)));
    ro.close().unwrap();
    assert_eq!(files(&disk), before);

    // A writable open repairs the same things.
    let (log, report2) = Log::open(disk.clone(), dir(), config(500)).unwrap();
    assert_eq!(report2.bytes_truncated, 37);
    assert_eq!(log.log_end_offset(), Offset(24));
    let names = disk.list(dir()).unwrap();
    assert!(!names
        .iter()
        .any(|n| n.ends_with(".tmp") || n.contains("99999")));
    // A read-only open of a missing directory is an empty log, still changing nothing.
    let (ro, _) = Log::open_read_only(disk.clone(), Path::new("nope"), config(500)).unwrap();
    assert_eq!(ro.log_end_offset(), Offset(0));
    assert_eq!(ro.read(Offset(0), 10).unwrap(), Vec::<u8>::new());
    assert!(!disk
        .root()
        .expect("a file-backed disk")
        .join("nope")
        .exists());
}

fn append_err(log: &mut Log<SimDisk>) -> LogError {
    let mut b = BatchBuilder::new(BatchMeta::default());
    b.push(0, None, None, &[]);
    log.append(&mut b).unwrap_err()
}

/// Writes a log of 12 batches of 2 records over several segments, closed cleanly, and
/// returns its segment base offsets.
fn written_log(disk: &SimDisk) -> Vec<Offset> {
    let (mut log, _) = Log::open(disk.clone(), dir(), config(400)).unwrap();
    for _ in 0..12 {
        append(&mut log, 2, 40, 0);
    }
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    bases
}

fn set_checkpoint(disk: &SimDisk, offset: u64) {
    CheckpointFile::write(
        disk,
        &dir().join(RECOVERY_POINT_OFFSET_CHECKPOINT),
        &[vec![offset.to_string()]],
    )
    .unwrap();
}

#[test]
fn recovery_of_an_empty_directory_and_of_empty_or_garbage_segments() {
    let (disk, _root) = sim("rec-empty", 0);
    disk.create_dir_all(dir()).unwrap();
    let (log, report) = Log::open(disk.clone(), dir(), config(400)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
    assert!(report.notes.iter().any(|n| n.contains("no recovery-point")));
    drop(log);
    // An empty segment file, then one with garbage only.
    drop(disk.create(&segment_path(0)).unwrap());
    let (log, _) = Log::open(disk.clone(), dir(), config(400)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
    drop(log);
    let mut f = disk.open(&segment_path(0)).unwrap();
    f.append(&[0x5a; 300]).unwrap();
    drop(f);
    let (log, report) = Log::open(disk.clone(), dir(), config(400)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(report.bytes_truncated, 300);
    assert_eq!(report.truncated_at, Some(Offset(0)));
    assert_eq!(disk.open(&segment_path(0)).unwrap().len(), 0);
}

#[test]
fn recovery_cuts_a_zero_filled_tail_and_a_torn_batch() {
    let (disk, _root) = sim("rec-tail", 0);
    let bases = written_log(&disk);
    let active = segment_path(bases.last().unwrap().0);
    set_checkpoint(&disk, bases.last().unwrap().0);
    let mut f = disk.open(&active).unwrap();
    let len = f.len();
    f.append(&[0; 512]).unwrap();
    drop(f);
    let (log, report) = Log::open(disk.clone(), dir(), config(400)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(24));
    assert_eq!(report.bytes_truncated, 512);
    drop(log);
    // Tear the last batch: cut its last 5 bytes.
    let mut f = disk.open(&active).unwrap();
    f.truncate(len - 5).unwrap();
    drop(f);
    let (log, report) = Log::open(disk, dir(), config(400)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(22));
    assert_eq!(report.truncated_at, Some(Offset(22)));
    assert_readable_everywhere(&log, 40);
}

#[test]
fn recovery_truncates_at_a_missing_middle_segment() {
    let (disk, _root) = sim("rec-gap", 0);
    let bases = written_log(&disk);
    assert!(bases.len() >= 4);
    set_checkpoint(&disk, 0);
    disk.remove(&segment_path(bases[2].0)).unwrap();
    let (log, report) = Log::open(disk.clone(), dir(), config(400)).unwrap();
    assert_eq!(log.log_end_offset(), bases[2]);
    assert_eq!(report.truncated_at, Some(bases[2]));
    assert_eq!(report.segments_dropped.len(), bases.len() - 3);
    for base in &bases[3..] {
        assert!(!disk.exists(&segment_path(base.0)));
    }
    assert_readable_everywhere(&log, 40);
}

#[test]
fn data_missing_or_invalid_below_the_recovery_point_is_a_reported_error() {
    // A missing middle segment below the recovery point.
    let (disk, _root) = sim("rec-corrupt", 0);
    let bases = written_log(&disk);
    disk.remove(&segment_path(bases[1].0)).unwrap();
    let before = files(&disk);
    match Log::open(disk.clone(), dir(), config(400)) {
        Err(LogError::CorruptBelowRecoveryPoint { recovery_point, .. }) => {
            assert_eq!(recovery_point, Offset(24))
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(files(&disk), before, "nothing changed before the error");

    // A flipped byte in a synced batch of the active segment.
    let (disk, _root2) = sim("rec-corrupt2", 0);
    let bases = written_log(&disk);
    let active = segment_path(bases.last().unwrap().0);
    let mut f = disk.open(&active).unwrap();
    let mut byte = [0u8; 1];
    f.read_exact_at(70, &mut byte).unwrap();
    f.write_at(70, &[byte[0] ^ 0xff]).unwrap();
    drop(f);
    assert!(matches!(
        Log::open(disk.clone(), dir(), config(400)),
        Err(LogError::CorruptBelowRecoveryPoint { .. })
    ));
    assert!(matches!(
        Log::open_read_only(disk, dir(), config(400)),
        Err(LogError::CorruptBelowRecoveryPoint { .. })
    ));
}

#[test]
fn untrustworthy_or_missing_indexes_are_rebuilt() {
    let (disk, _root) = sim("rec-index", 0);
    let mut cfg = config(2000);
    cfg.index_interval_bytes = 50;
    let (mut log, _) = Log::open(disk.clone(), dir(), cfg.clone()).unwrap();
    for _ in 0..40 {
        append(&mut log, 1, 60, 0);
    }
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    assert!(bases.len() >= 3);
    let index0 = dir().join("00000000000000000000.index");
    let good = std::fs::read(disk.root().expect("a file-backed disk").join(&index0)).unwrap();
    assert!(good.len() >= 16);
    // Swap two entries: not increasing any more.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&good[8..16]);
    bad[8..16].copy_from_slice(&good[..8]);
    disk.create(&index0).unwrap().append(&bad).unwrap();
    disk.remove(&dir().join(format!("{:020}.index", bases[1].0)))
        .unwrap();
    let (log, report) = Log::open(disk.clone(), dir(), cfg.clone()).unwrap();
    assert_eq!(report.indexes_rebuilt, 2, "{report:?}");
    assert_eq!(
        std::fs::read(disk.root().expect("a file-backed disk").join(&index0)).unwrap(),
        good
    );
    assert_readable_everywhere(&log, 60);
    drop(log);
    // A clean reopen rebuilds nothing but the active segment's index, which is current.
    let (_, report) = Log::open(disk, dir(), cfg).unwrap();
    assert_eq!(report.indexes_rebuilt, 0, "{report:?}");
}

#[test]
fn malformed_checkpoints_mean_validate_everything() {
    let (disk, _root) = sim("rec-badcp", 0);
    let bases = written_log(&disk);
    disk.create(&dir().join(RECOVERY_POINT_OFFSET_CHECKPOINT))
        .unwrap()
        .append(b"garbage")
        .unwrap();
    let (log, report) = Log::open(disk, dir(), config(400)).unwrap();
    assert_eq!(report.recovery_point, Offset(0));
    assert_eq!(report.segments_validated, bases.len());
    assert!(report.notes.iter().any(|n| n.contains("malformed")));
    assert_eq!(log.log_end_offset(), Offset(24));
}

#[test]
fn clean_reopen_validates_only_the_active_segment() {
    let (disk, _root) = sim("rec-clean", 0);
    let bases = written_log(&disk);
    let (log, report) = Log::open(disk, dir(), config(400)).unwrap();
    assert_eq!(report.recovery_point, Offset(24));
    assert_eq!(report.segments_validated, 1);
    assert_eq!(report.truncated_at, None);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_readable_everywhere(&log, 40);
}

#[test]
fn append_encoded_stamps_the_leo_and_epoch_and_follows_the_flush_policy() {
    let (disk, _root) = sim("encoded", 0);
    let mut cfg = config(1 << 20);
    cfg.flush_interval_messages = Some(1);
    let (mut log, _) = Log::open(disk.clone(), dir(), cfg).unwrap();
    append(&mut log, 2, 10, 5);
    let mut b = BatchBuilder::new(BatchMeta::default());
    b.push(5, Some(&2u64.to_be_bytes()), Some(&value(2, 10)), &[]);
    b.push(5, Some(&3u64.to_be_bytes()), Some(&value(3, 10)), &[]);
    let producer_bytes = b.encode(Offset(0)).to_vec();
    let info = log.append_encoded(&producer_bytes, LeaderEpoch(4)).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (Offset(2), Offset(3)));
    assert!(info.flushed);
    let batches = decode_batches(&log.read(Offset(2), 1 << 20).unwrap()).unwrap();
    assert_eq!(batches[0].partition_leader_epoch, LeaderEpoch(4));
    assert_readable_everywhere(&log, 10);
    let mut two = producer_bytes.clone();
    two.extend_from_slice(&producer_bytes);
    assert!(matches!(
        log.append_encoded(&two, LeaderEpoch(4)),
        Err(LogError::InvalidBatch(_))
    ));
    let mut corrupt = producer_bytes.clone();
    *corrupt.last_mut().unwrap() ^= 0xff;
    assert!(matches!(
        log.append_encoded(&corrupt, LeaderEpoch(4)),
        Err(LogError::InvalidBatch(BatchError::BadCrc { .. }))
    ));
    assert_eq!(log.log_end_offset(), Offset(4));
    // The replica's checkpoint in the directory is not an "unknown file" to recovery.
    CheckpointFile::write(&disk, &dir().join(LEADER_EPOCH_CHECKPOINT), &[]).unwrap();
    drop(log);
    let (_, report) = Log::open(disk, dir(), config(1 << 20)).unwrap();
    assert!(
        report.notes.iter().all(|n| !n.contains("unknown")),
        "{report:?}"
    );
}

/// The index Kafka's rule gives a segment's bytes: for the first batch after more than
/// `interval` bytes since the previous entry (or the segment start), the batch's *last*
/// offset relative to `base`, and its position (`LogSegment.recover`).
fn expected_index(segment: &[u8], base: u64, interval: u64) -> Vec<(u32, u32)> {
    let (mut entries, mut position, mut since) = (Vec::new(), 0usize, 0u64);
    for batch in decode_batches(segment).unwrap() {
        if since > interval {
            entries.push(((batch.last_offset().0 - base) as u32, position as u32));
            since = 0;
        }
        let size = check_batch(&segment[position..]).unwrap().size;
        since += size as u64;
        position += size;
    }
    entries
}

/// The entries of an index file as they are on disk (whole entries only).
fn index_file_entries(disk: &SimDisk, base: u64) -> Vec<(u32, u32)> {
    let bytes = crate::disk::read_whole(disk, &dir().join(format!("{base:020}.index"))).unwrap();
    bytes
        .chunks_exact(8)
        .map(|e| {
            let entry = index::IndexEntry::decode(e.try_into().unwrap());
            (entry.relative_offset, entry.position)
        })
        .collect()
}

fn segment_bytes(disk: &SimDisk, base: u64) -> Vec<u8> {
    crate::disk::read_whole(disk, &segment_path(base)).unwrap()
}

/// Every index file on disk is exactly what Kafka's rule gives its segment.
fn assert_index_files_follow_kafka(disk: &SimDisk, log: &Log<SimDisk>, interval: u64) {
    for base in log.segment_base_offsets() {
        let segment = segment_bytes(disk, base.0);
        assert_eq!(
            index_file_entries(disk, base.0),
            expected_index(&segment, base.0, interval),
            "index of segment {base}"
        );
    }
}

#[test]
fn index_entries_hold_each_indexed_batch_s_last_offset_and_reach_the_file_as_appended() {
    // Kafka's LogSegment.recover: `offsetIndex.append(batch.lastOffset(), validBytes)`.
    let (disk, _root) = sim("index-last", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(2000)).unwrap();
    let mut multi_record_entries = 0;
    for i in 0..60 {
        append(&mut log, 1 + i % 4, 20 + i % 7, 0);
        // The active segment's entries are in its file after every append, not at roll.
        assert_index_files_follow_kafka(&disk, &log, 100);
    }
    assert!(log.segment_count() > 3);
    for base in log.segment_base_offsets() {
        let segment = segment_bytes(&disk, base.0);
        for (relative, position) in index_file_entries(&disk, base.0) {
            let (batch, _) = decode_batch(&segment[position as usize..]).unwrap();
            assert_eq!(batch.last_offset(), base.plus(relative as u64));
            multi_record_entries += usize::from(batch.base_offset != batch.last_offset());
        }
    }
    assert!(
        multi_record_entries > 3,
        "base and last offsets must differ somewhere"
    );
    // Lookups land on the right batch from every offset, and so does a truncation inside
    // a batch that an entry indexes (it cuts at that batch's base).
    assert_offsets_readable(&log);
    let (last, base_of_indexed) = log
        .segments
        .iter()
        .flat_map(|s| {
            s.index.entries().iter().map(move |e| {
                let last = s.base_offset.plus(e.relative_offset as u64);
                (last, s.read_header(e.position as u64).unwrap().base_offset)
            })
        })
        .find(|(last, base)| base < last)
        .expect("an indexed batch of several records");
    log.truncate_to(last).unwrap();
    assert_eq!(log.log_end_offset(), base_of_indexed);
    assert_index_files_follow_kafka(&disk, &log, 100);
    assert_offsets_readable(&log);
    for _ in 0..10 {
        append(&mut log, 3, 20, 0);
    }
    assert_index_files_follow_kafka(&disk, &log, 100);
    assert_offsets_readable(&log);
}

/// A read from every offset starts with that offset's record.
fn assert_offsets_readable(log: &Log<SimDisk>) {
    for from in log.log_start_offset().0..log.log_end_offset().0 {
        let records = log.read_records(Offset(from), 1).unwrap();
        assert_eq!(records[0].offset, Offset(from), "read from {from}");
    }
}

#[test]
fn a_torn_or_short_active_index_is_rebuilt_from_the_log_after_a_power_cut() {
    let mut rebuilt = 0;
    for seed in 0..24 {
        let (disk, _root) = sim("index-torn", seed);
        let mut cfg = config(1 << 20);
        cfg.flush_interval_messages = Some(1);
        let (mut log, _) = Log::open(disk.clone(), dir(), cfg.clone()).unwrap();
        for i in 0..40 {
            append(&mut log, 1 + i % 3, 60, 0);
        }
        // The log is synced by every append; its index file is not.
        let leo = log.log_end_offset();
        drop(log);
        disk.power_loss().unwrap();
        let (log, report) = Log::open(disk.clone(), dir(), cfg).unwrap();
        assert_eq!(log.log_end_offset(), leo, "seed {seed}: {report:?}");
        assert_index_files_follow_kafka(&disk, &log, 100);
        assert_readable_everywhere(&log, 60);
        rebuilt += report.indexes_rebuilt;
    }
    assert!(rebuilt > 0, "no power cut tore the unsynced index");
}

#[test]
fn garbage_in_the_active_index_is_never_trusted() {
    let (disk, _root) = sim("index-garbage", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(1 << 20)).unwrap();
    for i in 0..30 {
        append(&mut log, 1 + i % 3, 40, 0);
    }
    log.close().unwrap();
    let path = dir().join(format!("{:020}.index", 0));
    let good = crate::disk::read_whole(&disk, &path).unwrap();
    assert!(good.len() >= 24);
    // A torn last entry, a half entry, an entry pointing into the middle of a batch: each
    // is replaced by the index rebuilt from the batches.
    let mut torn = good.clone();
    let n = torn.len();
    torn[n - 3..].copy_from_slice(&[0xff, 0xff, 0xff]);
    let mut mid_batch = good.clone();
    mid_batch[12..16]
        .copy_from_slice(&(u32::from_be_bytes(good[12..16].try_into().unwrap()) + 5).to_be_bytes());
    for bad in [torn, good[..n - 3].to_vec(), mid_batch] {
        disk.create(&path).unwrap().append(&bad).unwrap();
        let (log, report) = Log::open(disk.clone(), dir(), config(1 << 20)).unwrap();
        assert_eq!(report.indexes_rebuilt, 1, "{report:?}");
        assert_eq!(crate::disk::read_whole(&disk, &path).unwrap(), good);
        assert_readable_everywhere(&log, 40);
    }
}

#[test]
fn a_rolled_segment_index_of_base_offsets_is_detected_and_rebuilt() {
    // An index whose last entry does not hold its batch's last offset (one written with
    // base offsets, as ksim did before) fails the check recovery makes before trusting a
    // rolled segment's index, and is rebuilt from the segment.
    let (disk, _root) = sim("index-base", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(2000)).unwrap();
    for _ in 0..40 {
        append(&mut log, 3, 30, 0);
    }
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    assert!(bases.len() >= 2);
    let path = dir().join(format!("{:020}.index", bases[0].0));
    let good = crate::disk::read_whole(&disk, &path).unwrap();
    let segment = segment_bytes(&disk, bases[0].0);
    let mut old_style = Vec::new();
    for (_, position) in index_file_entries(&disk, bases[0].0) {
        let (batch, _) = decode_batch(&segment[position as usize..]).unwrap();
        old_style.extend_from_slice(&((batch.base_offset.0 - bases[0].0) as u32).to_be_bytes());
        old_style.extend_from_slice(&position.to_be_bytes());
    }
    assert_ne!(old_style, good);
    disk.create(&path).unwrap().append(&old_style).unwrap();
    let (log, report) = Log::open(disk.clone(), dir(), config(2000)).unwrap();
    assert_eq!(report.segments_validated, 2, "{report:?}");
    assert!(
        report.notes.iter().any(|n| n.contains("its batch ends at")),
        "{report:?}"
    );
    assert_eq!(crate::disk::read_whole(&disk, &path).unwrap(), good);
    assert_readable_everywhere(&log, 30);
}

#[test]
fn visiting_a_batch_borrows_what_decoding_copies_and_refuses_a_bad_crc() {
    let mut b = BatchBuilder::new(BatchMeta::default());
    b.push(5, Some(b"k1"), Some(b"first"), &[]);
    b.push(6, None, Some(b""), &[("h", &b"v"[..])]);
    b.push(7, Some(b"k3"), None, &[]);
    let mut bytes = b.encode(Offset(40)).to_vec();
    let (decoded, used) = decode_batch(&bytes).unwrap();
    let mut seen = Vec::new();
    let (header, visited) = visit_batch(&bytes, |r| seen.push(r)).unwrap();
    assert_eq!((visited, header.base_offset), (used, Offset(40)));
    let copied: Vec<_> = decoded
        .records
        .iter()
        .map(|r| (r.offset, r.key.as_deref(), r.value.as_deref()))
        .collect();
    let borrowed: Vec<_> = seen.iter().map(|r| (r.offset, r.key, r.value)).collect();
    assert_eq!(borrowed, copied);
    assert_eq!(seen[2].offset, Offset(42));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut none = 0;
    assert!(matches!(
        visit_batch(&bytes, |_| none += 1),
        Err(BatchError::BadCrc { .. })
    ));
    assert_eq!(none, 0, "nothing of a batch with a bad CRC is handed over");
}

#[test]
fn transactional_and_control_batches_survive_recovery_with_their_attributes() {
    let (disk, _root) = sim("txn-batches", 0);
    let (mut log, _) = Log::open(disk.clone(), dir(), config(600)).unwrap();
    let meta = BatchMeta {
        producer_id: ProducerId(9),
        producer_epoch: 2,
        base_sequence: 0,
        ..BatchMeta::default()
    };
    let mut data = BatchBuilder::new(meta);
    data.set_transactional(true);
    data.push(0, Some(b"k"), Some(b"v"), &[]);
    log.append(&mut data).unwrap();
    append(&mut log, 2, 50, 0);
    let marker = ControlRecord {
        kind: ControlRecordType::Commit,
        coordinator_epoch: 4,
    };
    let at = log
        .append(&mut BatchBuilder::end_txn_marker(meta, marker))
        .unwrap();
    let leo = log.log_end_offset();
    drop(log);
    disk.crash();
    // Recovery validates every batch from the recovery point: nothing is truncated.
    let (log, report) = Log::open(disk, dir(), config(600)).unwrap();
    assert_eq!((report.truncated_at, log.log_end_offset()), (None, leo));
    let batches = decode_batches(&log.read(Offset(0), 1 << 20).unwrap()).unwrap();
    let kinds: Vec<(bool, bool)> = batches
        .iter()
        .map(|b| (b.is_transactional(), b.is_control()))
        .collect();
    assert_eq!(kinds, [(true, false), (false, false), (true, true)]);
    assert_eq!(batches[2].base_offset, at.base_offset);
    assert_eq!(batches[2].control_record(), Ok(marker));
}
