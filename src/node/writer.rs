//! The log writer: a node that appends records to its own log at a steady rate and reads
//! back from it, to test the log engine alone under process crashes and power cuts.
//!
//! Owns: the writer's loop. Each record's value is `<node>:<incarnation>:<seq>`, unique in
//! the run. The writer announces `append` before calling the log engine and `append-ok`
//! (with the offset) only after the append returned — which, with
//! `log.flush.interval.messages = 1`, is after the fsync — so the history holds exactly what
//! a client of this log would have been told. With Kafka's default flush (never), the
//! acknowledgement comes before any sync: the case the `lost-write` check must catch.

use super::{now_epoch_ms, pay_sync_debt};
use crate::disk::SimDisk;
use crate::history::{CompactString, Op, ShellEvent};
use crate::log::{BatchBuilder, BatchMeta, LeaderEpoch, Log, LogConfig, Offset, ProducerId};
use crate::node::progress::Progress;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::node::run_rng;
use rand::Rng;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A read-back of the log every this many appends.
const READ_EVERY: u64 = 8;
/// Bytes asked for by a read-back.
const READ_MAX_BYTES: usize = 2048;
/// How often retention runs (Kafka's `log.retention.check.interval.ms`, shortened to fit
/// simulated runs of minutes).
const RETENTION_CHECK: Duration = Duration::from_secs(5);

/// Everything a writer node needs; shared by all its incarnations.
pub struct WriterNode {
    /// Node name, e.g. `writer-1`.
    pub name: String,
    /// Records per simulated second.
    pub rate: u32,
    /// The log engine config.
    pub log: LogConfig,
    /// Kafka's `log.flush.interval.ms`: flush when this long passed since the last flush.
    pub flush_interval_ms: Option<u64>,
    /// The node's disk (survives restarts; a power cut may tear it).
    pub disk: SimDisk,
    /// Where to announce events and history.
    pub recorder: Recorder,
    /// Liveness probes for the world.
    pub progress: Progress,
    /// How many times this node has started.
    pub incarnations: AtomicU64,
}

impl WriterNode {
    /// One incarnation of the node: opens (recovers) the log, then appends until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = Log::open(self.disk.clone(), Path::new("log"), self.log.clone());
        pay_sync_debt(&self.disk).await;
        let mut log = match opened {
            Ok((log, report)) => {
                self.recorder.event(
                    &self.name,
                    ShellEvent::LogOpened {
                        incarnation,
                        recovery: report,
                    },
                );
                log
            }
            Err(error) => {
                // Kafka takes a log directory offline when it cannot recover it; this node
                // stops, and the checks report what became of its records.
                self.recorder.event(
                    &self.name,
                    ShellEvent::LogOpenFailed {
                        incarnation,
                        error: error.to_string(),
                    },
                );
                return;
            }
        };
        self.progress.ready(&self.name);

        let period = Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)));
        let mut rng = run_rng();
        let mut last_flush_us = sim_now_us();
        let mut last_retention_us = sim_now_us();
        for seq in 1u64.. {
            // Up to ±25% jitter, so writers drift apart and faults land anywhere in an append.
            let jitter = rng.gen_range(0.75..1.25);
            crate::node::sleep(period.mul_f64(jitter)).await;

            let value = format!("{}:{}:{}", self.name, incarnation, seq);
            self.recorder.history(
                &self.name,
                Op::Append {
                    value: value.as_str().into(),
                },
            );
            let now_ms = now_epoch_ms();
            let mut batch = BatchBuilder::new(BatchMeta {
                leader_epoch: LeaderEpoch(-1),
                base_timestamp_ms: now_ms,
                producer_id: ProducerId::NONE,
                producer_epoch: -1,
                base_sequence: -1,
            });
            batch.push(now_ms, None, Some(value.as_bytes()), &[]);
            let appended = log.append(&mut batch);
            pay_sync_debt(&self.disk).await;
            match appended {
                Ok(info) => {
                    self.recorder.history(
                        &self.name,
                        Op::AppendOk {
                            value: value.as_str().into(),
                            offset: info.base_offset.0,
                        },
                    );
                    self.progress.acked(&self.name);
                }
                Err(error) => {
                    self.recorder.event(
                        &self.name,
                        ShellEvent::AppendFailed {
                            value,
                            error: error.to_string(),
                        },
                    );
                    return;
                }
            }

            if let Some(interval) = self.flush_interval_ms {
                if sim_now_us() - last_flush_us >= interval.saturating_mul(1000) {
                    if let Err(error) = log.flush() {
                        self.recorder.event(
                            &self.name,
                            ShellEvent::FlushFailed {
                                error: error.to_string(),
                            },
                        );
                        return;
                    }
                    pay_sync_debt(&self.disk).await;
                    last_flush_us = sim_now_us();
                }
            }
            if seq % READ_EVERY == 0 {
                self.read_back(&log, &mut rng);
            }
            if sim_now_us() - last_retention_us >= RETENTION_CHECK.as_micros() as u64 {
                last_retention_us = sim_now_us();
                match log.delete_old_segments(now_ms) {
                    Ok(0) => {}
                    Ok(deleted) => self.recorder.event(
                        &self.name,
                        ShellEvent::Retention {
                            segments_deleted: deleted,
                            log_start_offset: log.log_start_offset(),
                        },
                    ),
                    Err(error) => {
                        self.recorder.event(
                            &self.name,
                            ShellEvent::RetentionFailed {
                                error: error.to_string(),
                            },
                        );
                        return;
                    }
                }
                pay_sync_debt(&self.disk).await;
            }
        }
    }

    /// Reads a random stretch of the log and records what it saw.
    fn read_back(&self, log: &Log<SimDisk>, rng: &mut impl Rng) {
        let (start, end) = (log.log_start_offset().0, log.log_end_offset().0);
        if start >= end {
            return;
        }
        let from = rng.gen_range(start..end);
        match log.read_records(Offset(from), READ_MAX_BYTES) {
            Ok(records) => {
                let records = records
                    .into_iter()
                    .map(|r| {
                        let value = r.value.unwrap_or_default();
                        (r.offset.0, CompactString::from_utf8_lossy(&value))
                    })
                    .collect();
                self.recorder
                    .history(&self.name, Op::Read { from, records });
            }
            Err(error) => self.recorder.event(
                &self.name,
                ShellEvent::ReadFailed {
                    from,
                    error: error.to_string(),
                },
            ),
        }
    }
}
