//! `dump-log` on files the engine, the epoch cache and the ensemble store wrote, good and
//! damaged: every field shows, every damaged byte is reported where it lies, and no bytes
//! make a decoder panic or read (allocate) more than the file holds.

use super::*;
use crate::broker::epoch_cache::LeaderEpochCache;
use crate::disk::{Disk, FsDisk};
use crate::disk::{SimDisk, SimDiskConfig};
use crate::log::{
    decode_batches, BatchBuilder, BatchMeta, ControlRecord, ControlRecordType, LeaderEpoch, Log,
    LogConfig, ProducerId,
};
use crate::zk::store::{snapshot_file_name, FileTxnSnapLog};
use crate::zk::tree::DataTree;
use crate::zk::{Epoch, SessionId, Txn, TxnHeader, TxnRecord, Xid};
use proptest::prelude::*;
use std::cell::Cell;
use std::sync::OnceLock;

struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(name: &str) -> (FsDisk, TempRoot) {
    let root = std::env::temp_dir().join(format!("ksim-dump-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    (FsDisk::new(&root).unwrap(), TempRoot(root))
}

/// A source that remembers the largest read asked of it: what a dump allocates for input.
struct Counting<'a> {
    bytes: &'a [u8],
    largest_read: Cell<usize>,
}

impl ReadAt for Counting<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        self.largest_read
            .set(self.largest_read.get().max(buf.len()));
        self.bytes.read_exact_at(position, buf)
    }
}

/// The dump of `bytes` as a file of `kind`: its lines and summary. Asserts that no read
/// asked for more than the file holds.
fn dump_of(kind: &FileKind, bytes: &[u8], records: bool) -> (Vec<String>, DumpSummary) {
    let source = Counting {
        bytes,
        largest_read: Cell::new(0),
    };
    let mut out = Vec::new();
    let summary = dump_bytes(kind, &source, records, &mut out).unwrap();
    assert!(source.largest_read.get() <= bytes.len());
    let text = String::from_utf8(out).unwrap();
    (text.lines().map(str::to_string).collect(), summary)
}

fn segment(base: u64) -> FileKind {
    FileKind::Segment {
        base: Offset(base),
        txn_log: false,
    }
}

const DIR: &str = "orders-0";

/// A segment's base offset, its `.log` bytes and its `.index` bytes.
type SegmentFiles = (u64, Vec<u8>, Vec<u8>);

/// The segments of [`engine_log`], written once (on a disk in memory).
fn engine_segments() -> Vec<SegmentFiles> {
    static SEGMENTS: OnceLock<Vec<SegmentFiles>> = OnceLock::new();
    SEGMENTS
        .get_or_init(|| engine_log(&SimDisk::in_memory(0, SimDiskConfig::default())))
        .clone()
}

/// A partition log written by the engine: idempotent batches of 1..4 records with keys,
/// values and (every third) headers, over several segments. Returns the log's segments'
/// bytes and index files' bytes, by base offset.
fn engine_log<D: Disk>(disk: &D) -> Vec<SegmentFiles> {
    let config = LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(disk.clone(), Path::new(DIR), config).unwrap();
    let mut sequence = 0;
    for i in 0..40u32 {
        let mut batch = BatchBuilder::new(BatchMeta {
            leader_epoch: LeaderEpoch(1 + (i / 20) as i32),
            base_timestamp_ms: 1_000 + i64::from(i),
            producer_id: ProducerId(7),
            producer_epoch: 0,
            base_sequence: sequence,
        });
        for r in 0..1 + i % 4 {
            let key = format!("key-{}", (i + r) % 5);
            let value = format!("value-{i}-{r}");
            let headers: &[(&str, &[u8])] = if i % 3 == 0 { &[("trace", b"t1")] } else { &[] };
            batch.push(
                1_000 + i64::from(i),
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                headers,
            );
            sequence += 1;
        }
        log.append(&mut batch).unwrap();
    }
    let bases = log.segment_base_offsets();
    log.close().unwrap();
    bases
        .into_iter()
        .map(|base| {
            let read = |ext: &str| {
                crate::disk::read_whole(disk, &Path::new(DIR).join(format!("{:020}.{ext}", base.0)))
                    .unwrap()
            };
            (base.0, read("log"), read("index"))
        })
        .collect()
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line
        .find(&format!("{name}: "))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"));
    line[at + name.len() + 2..].split(' ').next().unwrap()
}

#[test]
fn a_segment_shows_every_batch_field_and_record_as_written() {
    let segments = engine_segments();
    assert!(segments.len() >= 3);
    let (base, bytes, _) = &segments[1];
    let batches = decode_batches(bytes).unwrap();
    let (lines, summary) = dump_of(&segment(*base), bytes, true);
    assert_eq!(lines[0], format!("Log starting offset: {base}"));
    assert_eq!(summary.items, batches.len() as u64);
    assert_eq!(summary.problems, 0, "{lines:#?}");
    let batch_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("baseOffset"))
        .collect();
    let mut position = 0;
    for (line, batch) in batch_lines.iter().zip(&batches) {
        assert_eq!(field(line, "baseOffset"), batch.base_offset.to_string());
        assert_eq!(field(line, "lastOffset"), batch.last_offset().to_string());
        assert_eq!(field(line, "count"), batch.records.len().to_string());
        assert_eq!(
            field(line, "partitionLeaderEpoch"),
            batch.partition_leader_epoch.to_string()
        );
        assert_eq!(field(line, "producerId"), "7");
        assert_eq!(field(line, "baseSequence"), batch.base_sequence.to_string());
        assert_eq!(field(line, "position"), position.to_string());
        assert_eq!(
            field(line, "maxTimestamp"),
            batch.max_timestamp_ms.to_string()
        );
        assert_eq!(field(line, "isValid"), "true");
        assert!(!line.contains("attributes"), "attributes only when set");
        position += crate::log::check_batch(&bytes[position..]).unwrap().size;
    }
    let records: Vec<&String> = lines.iter().filter(|l| l.starts_with("| offset")).collect();
    let all: Vec<_> = batches.iter().flat_map(|b| &b.records).collect();
    assert_eq!(records.len(), all.len());
    for (line, record) in records.iter().zip(all) {
        let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
        let value = String::from_utf8(record.value.clone().unwrap()).unwrap();
        assert!(
            line.starts_with(&format!(
                "| offset: {} timestamp: {} key: {key:?} value: {value:?}",
                record.offset, record.timestamp_ms
            )),
            "{line}"
        );
        assert_eq!(
            line.contains(r#"headers: ["trace": "t1"]"#),
            !record.headers.is_empty()
        );
    }
    assert_eq!(
        lines.last().unwrap(),
        &format!(
            "summary: {} batches, {} records in {} of {} bytes; no problems",
            batches.len(),
            records.len(),
            bytes.len(),
            bytes.len()
        )
    );
    // Without --records: the batches only.
    let (lines, _) = dump_of(&segment(*base), bytes, false);
    assert!(!lines.iter().any(|l| l.starts_with('|')));
}

/// Position and size of every batch of a segment.
fn spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let size = crate::log::check_batch(&bytes[position..]).unwrap().size;
        out.push((position, size));
        position += size;
    }
    out
}

#[test]
fn a_flipped_byte_is_a_crc_mismatch_at_its_batch_and_decoding_goes_on() {
    let (base, bytes, _) = engine_segments().remove(0);
    let spans = spans(&bytes);
    let (position, size) = spans[2];
    let mut bad = bytes.clone();
    bad[position + size - 3] ^= 0x20;
    let stored = u32::from_be_bytes(bad[position + 17..position + 21].try_into().unwrap());
    let computed = crc32c::crc32c(&bad[position + 21..position + size]);
    let (lines, summary) = dump_of(&segment(base), &bad, false);
    assert_eq!(summary.items, spans.len() as u64, "every batch still shows");
    assert_eq!(summary.problems, 1, "{lines:#?}");
    assert!(lines.contains(&format!(
        "batch at position {position}: CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )));
    let flipped = lines
        .iter()
        .find(|l| l.contains(&format!("position: {position} ")))
        .unwrap();
    assert!(flipped.ends_with("isValid: false"), "{flipped}");
    assert!(lines.last().unwrap().ends_with("; 1 problem"));
}

#[test]
fn a_torn_tail_a_giant_length_and_zeros_stop_the_dump_where_the_framing_is_lost() {
    let (base, bytes, _) = engine_segments().remove(0);
    let spans = spans(&bytes);
    let (position, size) = spans[3];
    // Cut mid-batch.
    let cut = &bytes[..position + size / 2];
    let (lines, summary) = dump_of(&segment(base), cut, true);
    assert_eq!((summary.items, summary.problems), (3, 1), "{lines:#?}");
    assert!(lines.contains(&format!(
        "truncated batch at position {position}: its length says {size} bytes, {} left",
        size / 2
    )));
    assert!(lines.contains(&format!(
        "stopped: {} bytes from position {position} not decoded",
        size / 2
    )));
    // Cut inside the length prefix.
    let (lines, _) = dump_of(&segment(base), &bytes[..position + 5], false);
    assert!(lines.contains(&format!(
        "truncated header at position {position}: 5 bytes left, a batch header is 61"
    )));
    // A giant length: reported, and nothing of its size is read (`dump_of` checks).
    let mut giant = bytes.clone();
    giant[position + 8..position + 12].copy_from_slice(&i32::MAX.to_be_bytes());
    let (lines, summary) = dump_of(&segment(base), &giant, true);
    assert_eq!(summary.problems, 1);
    assert!(lines.contains(&format!(
        "truncated batch at position {position}: its length says {} bytes, {} left",
        12 + i32::MAX as u64,
        bytes.len() - position
    )));
    // A zero-filled tail (a power cut's), and a bad magic.
    let mut zeros = bytes[..position].to_vec();
    zeros.extend_from_slice(&[0u8; 700]);
    let (lines, _) = dump_of(&segment(base), &zeros, false);
    assert!(lines.contains(&format!("batch at position {position}: bad batch length 0")));
    let mut magic = bytes.clone();
    magic[position + 16] = 1;
    let (lines, _) = dump_of(&segment(base), &magic, false);
    assert!(lines.contains(&format!(
        "batch at position {position}: bad magic 1 (expected 2)"
    )));
}

#[test]
fn a_batch_out_of_offset_order_is_reported() {
    let (base, bytes, _) = engine_segments().remove(0);
    let spans = spans(&bytes);
    // Swap the base offset of the second batch (not under the CRC).
    let (position, _) = spans[1];
    let mut bad = bytes.clone();
    bad[position..position + 8].copy_from_slice(&100i64.to_be_bytes());
    let (lines, summary) = dump_of(&segment(base), &bad, false);
    assert_eq!(summary.problems, 2, "{lines:#?}");
    assert!(lines.contains(&format!(
        "batch at position {position}: starts at offset 100, expected 1"
    )));
    let (next, _) = spans[2];
    assert!(lines
        .iter()
        .any(|l| l.starts_with(&format!("batch at position {next}: starts at offset"))));
}

#[test]
fn an_index_shows_the_last_offset_of_each_indexed_batch() {
    let segments = engine_segments();
    let mut entries = 0;
    for (base, log, index) in &segments {
        let (lines, summary) = dump_of(
            &FileKind::Index {
                base: Offset(*base),
            },
            index,
            false,
        );
        assert_eq!(summary.problems, 0, "{lines:#?}");
        for line in lines.iter().filter(|l| l.starts_with("offset")) {
            let offset: u64 = field(line, "offset").parse().unwrap();
            let position: usize = field(line, "position").parse().unwrap();
            let (batch, _) = crate::log::decode_batch(&log[position..]).unwrap();
            assert_eq!(batch.last_offset(), Offset(offset), "{line}");
            entries += 1;
        }
    }
    assert!(entries >= 3);
    let (base, _, index) = segments.iter().find(|s| s.2.len() >= 16).unwrap();
    let kind = FileKind::Index {
        base: Offset(*base),
    };
    // A torn entry and entries out of order.
    let (lines, summary) = dump_of(&kind, &index[..index.len() - 3], false);
    assert_eq!(summary.problems, 1);
    assert!(lines.contains(&format!(
        "torn entry at position {}: 5 trailing bytes, an entry is 8",
        index.len() - 8
    )));
    let mut swapped = index[8..16].to_vec();
    swapped.extend_from_slice(&index[..8]);
    let (lines, summary) = dump_of(&kind, &swapped, false);
    assert_eq!(summary.problems, 1, "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("entry at position 8: entry")));
}

#[test]
fn checkpoints_show_their_entries_and_malformed_ones_are_reported() {
    let (disk, _root) = temp("checkpoint");
    let path = Path::new("leader-epoch-checkpoint");
    let mut cache = LeaderEpochCache::load(disk.clone(), path).unwrap();
    cache.assign(LeaderEpoch(1), Offset(0)).unwrap();
    cache.assign(LeaderEpoch(4), Offset(120)).unwrap();
    let bytes = crate::disk::read_whole(&disk, path).unwrap();
    let (lines, summary) = dump_of(&FileKind::LeaderEpochCheckpoint, &bytes, false);
    assert_eq!(
        lines,
        [
            "epoch: 1 startOffset: 0",
            "epoch: 4 startOffset: 120",
            "summary: 2 entries; no problems"
        ]
    );
    assert_eq!(summary.items, 2);
    let (lines, summary) = dump_of(
        &FileKind::LeaderEpochCheckpoint,
        b"0\n3\n1 0\n0 5\n2 9\n",
        false,
    );
    assert_eq!(
        summary,
        DumpSummary {
            items: 2,
            problems: 1
        }
    );
    assert_eq!(lines[1], r#"entry #1: entry ["0", "5"] out of order"#);
    let (lines, _) = dump_of(&FileKind::LeaderEpochCheckpoint, b"0\n2\n1 0\n", false);
    assert_eq!(
        lines[0],
        "malformed checkpoint: 2 entries announced, 1 found"
    );
    let (lines, _) = dump_of(
        &FileKind::OffsetCheckpoint,
        b"0\n2\norders 0 17\nx 1 y\n",
        false,
    );
    assert_eq!(lines[0], "topic: orders partition: 0 offset: 17");
    assert_eq!(lines[1], r#"entry #1: bad offset "y""#);
}

fn txn(n: u32) -> TxnRecord {
    TxnRecord {
        header: TxnHeader {
            zxid: Zxid::new(Epoch(1), n),
            session: SessionId(0x10),
            xid: Xid(u64::from(n)),
            time_ms: i64::from(n),
        },
        txn: Txn::Create {
            path: format!("/n{n}"),
            data: b"d".to_vec(),
            ephemeral_owner: SessionId::NONE,
        },
    }
}

#[test]
fn an_ensemble_txn_log_shows_each_transaction_and_a_bad_one_is_reported() {
    let (disk, root) = temp("zk");
    let mut events = Vec::new();
    let (mut store, _) = FileTxnSnapLog::open(disk.clone(), true, &mut events).unwrap();
    store.append(&(1..=3).map(txn).collect::<Vec<_>>()).unwrap();
    store.commit().unwrap();
    let mut tree = DataTree::new();
    for n in 1..=3 {
        let record = txn(n);
        tree.apply(&record.header, &record.txn);
    }
    store.save_snapshot(&tree.snapshot()).unwrap();
    drop(store);
    let log_path = root.0.join("version-2/log/00000000000000000000.log");
    assert_eq!(
        FileKind::of(&log_path),
        Some(FileKind::Segment {
            base: Offset(0),
            txn_log: true
        })
    );
    let mut out = Vec::new();
    let summary = dump(&log_path, true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        summary,
        DumpSummary {
            items: 3,
            problems: 0
        },
        "{text}"
    );
    assert!(
        text.contains(
            "| offset: 1 zxid: 0x100000002 session: 0x10 xid: 2 time: 2 txn: {\"create\""
        ),
        "{text}"
    );
    // A record whose CRC is fine but whose value is no transaction.
    let mut bytes = std::fs::read(&log_path).unwrap();
    let mut junk = BatchBuilder::new(BatchMeta::default());
    junk.push(
        4,
        Some(&Zxid::new(Epoch(1), 4).0.to_be_bytes()),
        Some(b"{"),
        &[],
    );
    bytes.extend_from_slice(junk.encode(Offset(3)));
    let kind = FileKind::of(&log_path).unwrap();
    let (lines, summary) = dump_of(&kind, &bytes, true);
    assert_eq!(summary.problems, 1, "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("record at offset 3: not a transaction")));
    // The snapshot: its zxid, sessions and znodes (with their data under --records).
    let snapshot_path = root
        .0
        .join("version-2")
        .join(snapshot_file_name(Zxid::new(Epoch(1), 3)));
    let mut out = Vec::new();
    let summary = dump(&snapshot_path, true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(summary.problems, 0, "{text}");
    assert!(
        text.contains("zxid: 0x100000003 znodes: 4 sessions: 0"),
        "{text}"
    );
    assert!(text.contains("znode: /n2 czxid: 0x100000002 "), "{text}");
    assert!(text.contains("data: \"d\""), "{text}");
    let bytes = std::fs::read(&snapshot_path).unwrap();
    let kind = FileKind::of(&snapshot_path).unwrap();
    let (lines, summary) = dump_of(&kind, &bytes[..bytes.len() / 2], false);
    assert_eq!(summary.problems, 1);
    assert!(lines[0].starts_with("not a valid snapshot: "), "{lines:#?}");
}

#[test]
fn unknown_or_unreadable_files_are_errors() {
    let (disk, root) = temp("unknown");
    disk.create(Path::new("notes.txt")).unwrap();
    let mut out = Vec::new();
    assert!(matches!(
        dump(&root.0.join("notes.txt"), false, &mut out),
        Err(DumpError::UnknownKind(_))
    ));
    assert!(matches!(
        dump(&root.0.join("00000000000000000000.log"), false, &mut out),
        Err(DumpError::Unreadable { .. })
    ));
    disk.create_dir_all(Path::new("00000000000000000007.log"))
        .unwrap();
    let error = dump(&root.0.join("00000000000000000007.log"), false, &mut out).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
    assert!(out.is_empty());
    for (name, kind) in [
        (
            "00000000000000000042.log",
            Some(FileKind::Segment {
                base: Offset(42),
                txn_log: false,
            }),
        ),
        ("renamed.log", None),
        ("ksim.log", None),
        ("99999999999999999999.log", None),
        (
            "00000000000000000042.index",
            Some(FileKind::Index { base: Offset(42) }),
        ),
        (
            "leader-epoch-checkpoint",
            Some(FileKind::LeaderEpochCheckpoint),
        ),
        (
            "replication-offset-checkpoint",
            Some(FileKind::OffsetCheckpoint),
        ),
        (
            "snapshot.0000000100000003",
            Some(FileKind::Snapshot {
                zxid: Zxid::new(Epoch(1), 3),
            }),
        ),
        ("snapshot.xyz", None),
        ("00000000000000000042.timeindex", None),
        ("ksim.log.tmp", None),
    ] {
        assert_eq!(FileKind::of(Path::new(name)), kind, "{name}");
    }
}

fn kinds() -> Vec<FileKind> {
    vec![
        segment(0),
        FileKind::Segment {
            base: Offset(7),
            txn_log: true,
        },
        FileKind::Index { base: Offset(5) },
        FileKind::LeaderEpochCheckpoint,
        FileKind::OffsetCheckpoint,
        FileKind::Snapshot { zxid: Zxid(1) },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes: no decoder panics, none reads more than the file holds.
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for kind in kinds() {
            let (lines, _) = dump_of(&kind, &bytes, true);
            prop_assert!(lines.last().is_some_and(|l| l.starts_with("summary: ")));
        }
    }

    /// A segment the engine wrote, with bytes overwritten anywhere: every batch before the
    /// damage shows, and the damage is reported unless it only changed a partition leader
    /// epoch (the one field neither the CRC, the framing nor the offsets cover).
    #[test]
    fn overwritten_bytes_are_reported(
        at in 0usize..10_000,
        junk in proptest::collection::vec(any::<u8>(), 1..16),
    ) {
        let (base, bytes, _) = engine_segments().remove(0);
        let spans = spans(&bytes);
        let at = at % bytes.len();
        let mut bad = bytes.clone();
        for (i, byte) in junk.iter().enumerate() {
            if let Some(b) = bad.get_mut(at + i) {
                *b = *byte;
            }
        }
        let (_, summary) = dump_of(&segment(base), &bad, true);
        let intact = spans.iter().take_while(|(p, s)| p + s <= at).count();
        prop_assert!(summary.items >= intact as u64);
        let only_epochs = (0..bad.len())
            .filter(|&i| bad[i] != bytes[i])
            .all(|i| spans.iter().any(|(p, _)| (p + 12..p + 16).contains(&i)));
        prop_assert_eq!(summary.problems == 0, only_epochs);
    }

    /// A segment cut anywhere: clean exactly when the cut falls between batches.
    #[test]
    fn a_cut_is_reported_unless_it_falls_between_batches(cut in 0usize..10_000) {
        let (base, bytes, _) = engine_segments().remove(0);
        let cut = cut % bytes.len();
        let (_, summary) = dump_of(&segment(base), &bytes[..cut], false);
        let between = spans(&bytes).iter().any(|(p, _)| *p == cut);
        prop_assert_eq!(summary.problems == 0, between);
        prop_assert!(summary.problems <= 1);
    }
}

#[test]
fn transactional_batches_and_markers_are_shown_as_kafka_shows_them() {
    let meta = BatchMeta {
        producer_id: ProducerId(7),
        producer_epoch: 1,
        base_sequence: 0,
        ..BatchMeta::default()
    };
    let mut data = BatchBuilder::new(meta);
    data.set_transactional(true);
    data.push(5, Some(b"k"), Some(b"v"), &[]);
    let mut bytes = data.encode(Offset(0)).to_vec();
    let marker = ControlRecord {
        kind: ControlRecordType::Abort,
        coordinator_epoch: 3,
    };
    bytes.extend_from_slice(BatchBuilder::end_txn_marker(meta, marker).encode(Offset(1)));
    // A control batch with a second record that is no marker: a problem, not a panic.
    let mut bad = BatchBuilder::end_txn_marker(meta, marker);
    bad.push(5, None, None, &[]);
    bytes.extend_from_slice(bad.encode(Offset(2)));
    let (lines, summary) = dump_of(&segment(0), &bytes, true);
    let batch_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("baseOffset"))
        .collect();
    assert_eq!(batch_lines.len(), 3, "{lines:#?}");
    assert_eq!(field(batch_lines[0], "attributes"), "0x0010");
    assert_eq!(field(batch_lines[0], "isTransactional"), "true");
    assert!(!batch_lines[0].contains("isControl"));
    assert_eq!(field(batch_lines[1], "attributes"), "0x0030");
    assert_eq!(field(batch_lines[1], "isControl"), "true");
    assert_eq!(field(batch_lines[1], "baseSequence"), "-1");
    let records: Vec<&String> = lines.iter().filter(|l| l.starts_with("| offset")).collect();
    assert!(!records[0].contains("endTxnMarker"));
    assert_eq!(field(records[1], "endTxnMarker"), "ABORT");
    assert_eq!(field(records[1], "coordinatorEpoch"), "3");
    assert_eq!(field(records[2], "endTxnMarker"), "ABORT");
    assert_eq!(summary.problems, 1, "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("control record at offset 3: control record key is null")));
}
