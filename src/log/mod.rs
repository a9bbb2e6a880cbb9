//! The log engine: Kafka's partition log on a [`Disk`](crate::disk::Disk) — record batches
//! in segment files with sparse offset indexes, checkpoints, and crash recovery.
//!
//! Owns: the on-disk format (see `batch.rs`), the segment layout of one log directory,
//! when data is made durable, and what recovery trusts after a crash or a power cut.
//! Every durable thing in ksim goes through it: partition logs, `__consumer_offsets`, the
//! ensemble's transaction log.
//!
//! A log directory holds:
//! - `<20-digit base offset>.log`: record batches, offsets dense across segments;
//! - `<20-digit base offset>.index`: a sparse offset index for that segment (each entry:
//!   an indexed batch's last offset and its position, as Kafka writes it);
//! - `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`.
//!
//! Invariants (asserted where state changes):
//! - offsets are dense from the log start offset to the LEO (log end offset);
//! - `log start <= recovery point <= LEO`;
//! - every record below the recovery point is durable: its bytes were synced and the name
//!   of its segment file was synced into the directory;
//! - the recovery-point checkpoint on disk never exceeds the durable prefix, so recovery
//!   finding data missing or invalid below it is corruption, never a normal torn tail.
//!
//! Pure and synchronous: no async, no clocks (time is an argument), no network, no madsim.
//!
//! Simplifications vs Kafka: no time index (time retention scans batch headers when it
//! needs a segment's largest timestamp), no transaction index on disk (the broker's
//! `producer_state` keeps the aborted transactions in memory, rebuilt from the batches
//! with the producer state) or producer-state snapshots, no leader-epoch cache (the broker keeps its own), no compaction or compression, no
//! DeleteRecords (the log start offset is always the first segment's base offset), and the
//! index lives in memory with each new entry written to its file (not memory-mapped).

mod batch;
mod checkpoint;
mod engine;
mod error;
mod index;
mod recovery;
mod segment;
#[cfg(test)]
mod tests;

pub use batch::{
    check_batch, decode_batch, decode_batches, inspect_batch, parse_header, read_control_record,
    restamp_batch, visit_batch, BatchBuilder, BatchError, BatchHeader, BatchInspection, BatchMeta,
    ControlRecord, ControlRecordError, ControlRecordType, Record, RecordBatch, RecordRef,
    BATCH_HEADER_BYTES, CONTROL_FLAG, LOG_OVERHEAD, MAGIC, TRANSACTIONAL_FLAG,
};
pub use checkpoint::CheckpointFile;
pub use engine::{
    AppendInfo, Log, LEADER_EPOCH_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_OFFSET_CHECKPOINT,
};
pub use error::LogError;
pub(crate) use index::{
    check_entry as check_index_entry, IndexEntry, ENTRY_BYTES as INDEX_ENTRY_BYTES,
};
pub use recovery::RecoveryReport;
pub(crate) use segment::parse_file_name as parse_segment_file_name;

use std::fmt;

/// A record's position in a log (Kafka's offset). Dense: the next record gets `+1`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset `n` records later.
    pub fn plus(self, n: u64) -> Offset {
        Offset(self.0 + n)
    }

    /// Records from `earlier` to `self` (`self - earlier`); panics if `earlier > self`.
    pub fn since(self, earlier: Offset) -> u64 {
        self.0
            .checked_sub(earlier.0)
            .expect("offset difference is negative")
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition leader's epoch (KIP-101): bumped by every leader change. -1 = none.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LeaderEpoch(pub i32);

impl LeaderEpoch {
    /// No epoch (Kafka's -1).
    pub const NONE: LeaderEpoch = LeaderEpoch(-1);
}

impl fmt::Display for LeaderEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An idempotent producer's id (Kafka's `producerId`, KIP-98), as a batch header carries
/// it. -1 = none (the producer is not idempotent).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ProducerId(pub i64);

impl ProducerId {
    /// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`, -1).
    pub const NONE: ProducerId = ProducerId(-1);

    /// Whether this is a real id (Kafka's `hasProducerId`: any negative id means none).
    pub fn is_some(self) -> bool {
        self.0 >= 0
    }
}

impl fmt::Display for ProducerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A log's configuration, with Kafka's broker config names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `log.segment.bytes`: roll when the active segment would exceed this (default 1 GiB).
    pub segment_bytes: u64,
    /// `log.index.interval.bytes`: one index entry per this many bytes (default 4096).
    pub index_interval_bytes: u64,
    /// `log.flush.interval.messages`: `None` never fsyncs (Kafka's default, Long.MAX);
    /// `Some(n)` flushes once `n` or more messages are unflushed (`Some(1)`: every append
    /// is synced before `append` returns).
    pub flush_interval_messages: Option<u64>,
    /// `log.retention.bytes`: `None` = unlimited (-1, the default).
    pub retention_bytes: Option<u64>,
    /// `log.retention.ms`: `None` = unlimited; default 7 days.
    pub retention_ms: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            flush_interval_messages: None,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
        }
    }
}
