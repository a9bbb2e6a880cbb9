//! Model-based test of the log engine on a `SimDisk`: random appends, reads, truncations,
//! rolls, flushes, retention, crashes and power cuts, checked against an in-memory model.
//!
//! The rules checked after every step (semantics.md, "On-disk format" and "Replication"):
//! - offsets are dense from the log start to the LEO and every read returns exactly the
//!   model's records (nothing never-written appears, no record changes);
//! - a crash (process kill, page cache survives) loses nothing;
//! - a power cut loses nothing below the recovery point it struck at, and with
//!   `log.flush.interval.messages = 1` nothing at all; what it loses is a suffix of whole
//!   batches, and recovery never reports corruption;
//! - truncation cuts at a batch boundary and retention only moves the log start forward.

use ksim::disk::{SimDisk, SimDiskConfig};
use ksim::log::{BatchBuilder, BatchMeta, Log, LogConfig, LogError, Offset, Record};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug)]
enum Op {
    /// A batch of records with these value sizes, as the leader (`Log::append`) or as a
    /// follower (`Log::append_as_follower` of the encoded batch).
    Append {
        sizes: Vec<usize>,
        follower: bool,
    },
    /// Read from log start + `from` per mille of the log, up to `max_bytes`.
    Read {
        from: u16,
        max_bytes: usize,
    },
    TruncateTo(u16),
    Roll,
    Flush,
    Checkpoint,
    Crash,
    PowerLoss,
    Close,
    Retention,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (prop::collection::vec(0usize..300, 1..6), prop::bool::weighted(0.25))
            .prop_map(|(sizes, follower)| Op::Append { sizes, follower }),
        4 => (0u16..=1000, 0usize..2000).prop_map(|(from, max_bytes)| Op::Read { from, max_bytes }),
        1 => (0u16..=1000).prop_map(Op::TruncateTo),
        1 => Just(Op::Roll),
        2 => Just(Op::Flush),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Crash),
        3 => Just(Op::PowerLoss),
        1 => Just(Op::Close),
        1 => Just(Op::Retention),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    config: LogConfig,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    let flush = prop_oneof![
        Just(Some(1u64)),
        (2u64..6).prop_map(Some),
        Just(None::<u64>)
    ];
    (
        any::<u64>(),
        512u64..4096,
        prop_oneof![Just(64u64), Just(512), Just(4096)],
        flush,
        proptest::option::of(2000u64..8000),
        proptest::option::of(500u64..4000),
        prop::collection::vec(op(), 1..40),
    )
        .prop_map(
            |(
                seed,
                segment_bytes,
                index_interval_bytes,
                flush,
                retention_bytes,
                retention_ms,
                ops,
            )| Case {
                seed,
                config: LogConfig {
                    segment_bytes,
                    index_interval_bytes,
                    flush_interval_messages: flush,
                    retention_bytes,
                    retention_ms,
                },
                ops,
            },
        )
}

/// What the log must hold: records `[start, start + records.len())`, in batches.
struct Model {
    start: u64,
    /// (value, timestamp) of each record from `start`.
    records: Vec<(Vec<u8>, i64)>,
    /// Base offsets of the batches (truncation and power cuts end logs at these).
    batch_bases: Vec<u64>,
    next_id: u64,
}

impl Model {
    fn leo(&self) -> u64 {
        self.start + self.records.len() as u64
    }

    fn truncate(&mut self, leo: u64) {
        assert!(leo >= self.start && leo <= self.leo());
        self.records.truncate((leo - self.start) as usize);
        self.batch_bases.retain(|b| *b < leo);
    }

    fn is_boundary(&self, offset: u64) -> bool {
        offset == self.leo() || self.batch_bases.binary_search(&offset).is_ok()
    }
}

/// A unique value: the write id then filler, so a record that was never written (or was
/// written at another offset) cannot match.
fn value(id: u64, len: usize) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend((0..len).map(|i| (id as usize + i) as u8));
    v
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ksim-log-model-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    TempDir(dir)
}

const DIR: &str = "topic-0";

fn open(disk: &SimDisk, config: &LogConfig) -> Log<SimDisk> {
    match Log::open(disk.clone(), Path::new(DIR), config.clone()) {
        Ok((log, report)) => {
            assert_eq!(report.log_end_offset, log.log_end_offset());
            log
        }
        Err(e) => panic!("recovery failed: {e}"),
    }
}

fn check_record(r: &Record, model: &Model) {
    let (value, ts) = &model.records[(r.offset.0 - model.start) as usize];
    assert_eq!(r.value.as_ref(), Some(value), "record {} differs", r.offset);
    assert_eq!(r.timestamp_ms, *ts);
    assert_eq!(r.key.as_deref(), Some(&r.offset.0.to_be_bytes()[..]));
}

/// The whole log equals the model.
fn check_all(log: &Log<SimDisk>, model: &Model) {
    assert_eq!(log.log_start_offset(), Offset(model.start), "log start");
    assert_eq!(log.log_end_offset(), Offset(model.leo()), "LEO");
    assert!(log.recovery_point() <= log.log_end_offset());
    assert_eq!(
        log.unflushed_messages(),
        log.log_end_offset().0 - log.recovery_point().0
    );
    let records = log.read_records(Offset(model.start), usize::MAX).unwrap();
    assert_eq!(records.len(), model.records.len());
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, Offset(model.start + i as u64), "offsets dense");
        check_record(r, model);
    }
}

fn run(case: Case) {
    let root = temp_dir();
    let disk = SimDisk::new(&root.0, case.seed, SimDiskConfig::default()).unwrap();
    let config = case.config;
    let mut log = open(&disk, &config);
    let mut model = Model {
        start: 0,
        records: Vec::new(),
        batch_bases: Vec::new(),
        next_id: 1,
    };
    let mut now_ms = 0i64;
    for op in case.ops {
        now_ms += 100;
        match op {
            Op::Append { sizes, follower } => {
                let mut b = BatchBuilder::new(BatchMeta {
                    base_timestamp_ms: now_ms,
                    ..BatchMeta::default()
                });
                let base = model.leo();
                let mut pushed = Vec::new();
                for (i, len) in sizes.iter().enumerate() {
                    let v = value(model.next_id, *len);
                    model.next_id += 1;
                    let key = (base + i as u64).to_be_bytes();
                    b.push(now_ms, Some(&key), Some(&v), &[]);
                    pushed.push((v, now_ms));
                }
                let info = if follower {
                    let bytes = b.encode(Offset(base)).to_vec();
                    log.append_as_follower(&bytes).unwrap()
                } else {
                    log.append(&mut b).unwrap()
                };
                assert_eq!(info.base_offset, Offset(base));
                assert_eq!(info.last_offset, Offset(base + sizes.len() as u64 - 1));
                model.batch_bases.push(base);
                model.records.extend(pushed);
                if config.flush_interval_messages == Some(1) {
                    assert!(info.flushed);
                    assert_eq!(log.recovery_point(), log.log_end_offset());
                }
            }
            Op::Read { from, max_bytes } => {
                let from = model.start + model.records.len() as u64 * from as u64 / 1000;
                let bytes = log.read(Offset(from), max_bytes).unwrap();
                let batches = ksim::log::decode_batches(&bytes).unwrap();
                if from == model.leo() {
                    assert!(batches.is_empty());
                } else {
                    assert!(!batches.is_empty(), "at least one batch");
                    assert!(batches[0].base_offset.0 <= from && from < batches[0].next_offset().0);
                    assert!(bytes.len() <= max_bytes || batches.len() == 1, "max_bytes");
                    let records = batches.iter().flat_map(|b| &b.records);
                    for (expected, r) in (batches[0].base_offset.0..).zip(records) {
                        assert_eq!(r.offset.0, expected, "offsets dense");
                        check_record(r, &model);
                    }
                }
            }
            Op::TruncateTo(at) => {
                let target = model.start + model.records.len() as u64 * at as u64 / 1000;
                log.truncate_to(Offset(target)).unwrap();
                let leo = log.log_end_offset().0;
                let expected = if target >= model.leo() {
                    model.leo()
                } else {
                    *model
                        .batch_bases
                        .iter()
                        .rev()
                        .find(|b| **b <= target)
                        .unwrap()
                };
                assert_eq!(
                    leo, expected,
                    "truncation to {target} ends at the batch base"
                );
                model.truncate(leo);
            }
            Op::Roll => log.roll().unwrap(),
            Op::Flush => {
                log.flush().unwrap();
                assert_eq!(log.recovery_point(), log.log_end_offset());
            }
            Op::Checkpoint => log.checkpoint().unwrap(),
            Op::Close => {
                log.close().unwrap();
                log = open(&disk, &config);
            }
            Op::Crash => {
                drop(log);
                disk.crash();
                log = open(&disk, &config);
                // Nothing is lost: check_all below compares everything.
            }
            Op::PowerLoss => {
                let durable = log.recovery_point().0;
                drop(log);
                let effects = disk.power_loss().unwrap();
                log = open(&disk, &config);
                let leo = log.log_end_offset().0;
                assert!(
                    leo >= durable,
                    "power cut lost flushed records: LEO {leo} < recovery point {durable}; {effects:?}"
                );
                assert!(leo <= model.leo(), "records appeared from nowhere");
                if config.flush_interval_messages == Some(1) {
                    assert_eq!(leo, model.leo(), "flush-every-message lost records");
                }
                assert!(
                    model.is_boundary(leo),
                    "a power cut ended the log mid-batch"
                );
                model.truncate(leo);
            }
            Op::Retention => {
                let before = log.log_start_offset().0;
                match log.delete_old_segments(now_ms) {
                    Ok(deleted) => {
                        let start = log.log_start_offset().0;
                        assert_eq!(deleted == 0, start == before);
                        assert!(start >= before && start <= model.leo());
                        let gone = (start - model.start) as usize;
                        model.records.drain(..gone);
                        model.batch_bases.retain(|b| *b >= start);
                        model.start = start;
                    }
                    Err(LogError::ReadOnly) => unreachable!(),
                    Err(e) => panic!("retention failed: {e}"),
                }
            }
        }
        check_all(&log, &model);
    }
    log.close().unwrap();
    let log = open(&disk, &config);
    check_all(&log, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_its_model_through_crashes_and_power_cuts(case in case()) {
        run(case);
    }
}

/// The canary: a log that acknowledges without syncing (never flushes, and the test
/// pretends everything appended was durable) must be caught by the power-cut rule, or the
/// rule could not fail.
#[test]
fn canary_unsynced_appends_are_lost_by_some_power_cut() {
    let mut lost = false;
    for seed in 0..16 {
        let root = temp_dir();
        let disk = SimDisk::new(&root.0, seed, SimDiskConfig::default()).unwrap();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            flush_interval_messages: None,
            ..LogConfig::default()
        };
        let mut log = open(&disk, &config);
        for _ in 0..20 {
            let mut b = BatchBuilder::new(BatchMeta::default());
            b.push(0, None, Some(&[7; 100]), &[]);
            log.append(&mut b).unwrap();
        }
        let acknowledged = log.log_end_offset();
        drop(log);
        disk.power_loss().unwrap();
        lost |= open(&disk, &config).log_end_offset() < acknowledged;
    }
    assert!(
        lost,
        "no power cut ever lost an unsynced append: the model test is blind"
    );
}
