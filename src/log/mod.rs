//! STUB (replaced by the log-engine branch at merge).
#![allow(missing_docs, dead_code, unused_variables)]
use crate::disk::Disk;
use std::path::Path;
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Offset(pub u64);
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct LeaderEpoch(pub i32);
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub index_interval_bytes: u64,
    pub flush_interval_messages: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub retention_ms: Option<u64>,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}
pub struct BatchMeta {
    pub leader_epoch: LeaderEpoch,
    pub base_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}
pub struct BatchBuilder;
impl BatchBuilder {
    pub fn new(meta: BatchMeta) -> Self {
        todo!()
    }
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) {
        todo!()
    }
}
pub struct Log<D: Disk>(D);
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub flushed: bool,
    pub rolled: bool,
}
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    pub recovery_point: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub segments_validated: usize,
    pub batches_validated: u64,
    pub truncated_at: Option<Offset>,
    pub bytes_truncated: u64,
    pub segments_dropped: Vec<String>,
    pub indexes_rebuilt: usize,
    pub notes: Vec<String>,
}
impl Default for Offset {
    fn default() -> Self {
        Offset(0)
    }
}
#[derive(Debug)]
pub enum LogError {
    ReadOnly,
}
impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "x")
    }
}
impl std::error::Error for LogError {}
impl<D: Disk> Log<D> {
    pub fn open(
        disk: D,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(Self, RecoveryReport), LogError> {
        todo!()
    }
    pub fn open_read_only(
        disk: D,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(Self, RecoveryReport), LogError> {
        todo!()
    }
    pub fn append(&mut self, batch: &mut BatchBuilder) -> Result<AppendInfo, LogError> {
        todo!()
    }
    pub fn read_records(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, LogError> {
        todo!()
    }
    pub fn flush(&mut self) -> Result<(), LogError> {
        todo!()
    }
    pub fn delete_old_segments(&mut self, now_ms: i64) -> Result<usize, LogError> {
        todo!()
    }
    pub fn log_start_offset(&self) -> Offset {
        todo!()
    }
    pub fn log_end_offset(&self) -> Offset {
        todo!()
    }
    pub fn recovery_point(&self) -> Offset {
        todo!()
    }
}
