//! [`FileTxnSnapLog`]: what an ensemble server keeps on disk and how it recovers it —
//! ZooKeeper's `FileTxnSnapLog` (the transaction log and the snapshots) together with the
//! epoch files `QuorumPeer` keeps beside them, over a [`Disk`].
//!
//! Owns, under `version-2/` (ZooKeeper's layout):
//! - `log/`: the transaction log on the log engine, one single-record batch per
//!   transaction (key = zxid as 8 big-endian bytes, value = the [`TxnRecord`] as JSON), and
//!   the zxid of every record, so that a truncation to a zxid finds its offset;
//! - `snapshot.<zxid as 16 hex digits>`: the data tree as JSON; the newest
//!   [`SNAPSHOTS_KEPT`] are kept;
//! - `acceptedEpoch` and `currentEpoch`: decimal, each replaced atomically.
//!
//! Why a core of its own: what is durable, and what recovery makes of what a crash or a
//! power cut left, is ZAB's safety argument (an ACK means the proposal is on disk), so it
//! is unit-tested on `FsDisk` and `SimDisk` rather than buried in the node shell. Like the
//! log engine it never awaits and never reads a clock: the shell pays the simulated fsync
//! time after every call that syncs, before the server's next action.
//!
//! Durability: [`FileTxnSnapLog::append`] writes without syncing; [`FileTxnSnapLog::commit`]
//! makes every appended record durable (ZooKeeper's `forceSync`; without it the records
//! stay in the page cache). Truncating, resetting the log, saving a snapshot and persisting
//! the epochs are durable when they return. An epoch file is written to `<name>.tmp`,
//! synced and renamed over the old one, so a power cut leaves the old value or the new one,
//! whole; `acceptedEpoch` is replaced before `currentEpoch`.
//!
//! Recovery ([`FileTxnSnapLog::open`]): a missing epoch file reads as epoch 0, an
//! unreadable one is an error; the newest snapshot that parses into a valid tree is used
//! (ZooKeeper also falls back to older snapshots), each invalid one reported; the log
//! engine recovers the log, cutting a torn tail (detected by its CRC) above the recovery
//! point; a record the engine found intact that does not parse or breaks zxid order is a
//! bug, reported, and cut with everything after it. The server gets the transactions after
//! the snapshot.

use super::server::Recovered;
use super::tree::{DataTree, Snapshot};
use super::{Epoch, TxnRecord, Zxid};
use crate::disk::{read_whole, write_atomic, Disk};
use crate::log::{BatchBuilder, BatchMeta, Log, LogConfig, LogError, Offset, RecoveryReport};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The directory the store lives in, relative to the disk's root.
pub const DATA_DIR: &str = "version-2";
/// The transaction log's directory, in [`DATA_DIR`].
pub const TXN_LOG_DIR: &str = "log";
/// Snapshots kept on disk; older ones are removed after a new one is saved.
pub const SNAPSHOTS_KEPT: usize = 3;

const SNAPSHOT_PREFIX: &str = "snapshot.";
const ACCEPTED_EPOCH: &str = "acceptedEpoch";
const CURRENT_EPOCH: &str = "currentEpoch";
/// Enough to read the log back in a few calls.
const READ_BYTES: usize = 1 << 20;

/// An ensemble server's transaction log, snapshots and epoch files.
pub struct FileTxnSnapLog<D: Disk> {
    disk: D,
    log: Log<D>,
    /// `(zxid, offset)` of every logged record, in order.
    index: Vec<(Zxid, Offset)>,
    /// ZooKeeper's `forceSync`: [`FileTxnSnapLog::commit`] fsyncs the log.
    force_sync: bool,
}

/// Why the store failed.
#[derive(Debug)]
pub enum StoreError {
    /// The disk failed.
    Io(io::Error),
    /// The log engine failed.
    Log(LogError),
    /// An epoch file could not be read.
    EpochUnreadable {
        /// The file.
        name: &'static str,
        /// Why.
        error: io::Error,
    },
    /// An epoch file holds something else than an epoch.
    EpochInvalid {
        /// The file.
        name: &'static str,
        /// What it holds.
        content: String,
    },
    /// A record or snapshot could not be encoded.
    Encode(serde_json::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(error) => error.fmt(f),
            StoreError::Log(error) => error.fmt(f),
            StoreError::EpochUnreadable { name, error } => write!(f, "{name}: {error}"),
            StoreError::EpochInvalid { name, content } => {
                write!(f, "{name} holds {content:?}, not an epoch")
            }
            StoreError::Encode(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(error: io::Error) -> Self {
        StoreError::Io(error)
    }
}

impl From<LogError> for StoreError {
    fn from(error: LogError) -> Self {
        StoreError::Log(error)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Encode(error)
    }
}

/// What recovery found worth announcing (node `zk-<n>`; the shell announces it as it is).
/// Serialized as `{"kind": <kebab-case name>, "detail": {fields}}`.
///
/// | kind | detail | when | read by |
/// |---|---|---|---|
/// | `bad-snapshot` | `file`, `error` | a snapshot file that is not a tree (skipped) | timeline |
/// | `txn-log-recovered` | `recovery` | the transaction log's recovery cut something | timeline |
/// | `bad-txn-record` | `offset` | an intact record that does not parse: cut with the rest | timeline |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum StoreEvent {
    /// A snapshot that does not parse or is not a valid tree was skipped.
    BadSnapshot {
        /// Its file name.
        file: String,
        /// Why.
        error: String,
    },
    /// The log engine cut the transaction log (a torn tail).
    TxnLogRecovered {
        /// What the log engine found and did.
        recovery: RecoveryReport,
    },
    /// A record the log engine found intact did not parse or broke zxid order: it was cut,
    /// with everything after it.
    BadTxnRecord {
        /// Its offset in the log.
        offset: Offset,
    },
}

fn data(name: &str) -> PathBuf {
    Path::new(DATA_DIR).join(name)
}

impl<D: Disk> FileTxnSnapLog<D> {
    /// Opens the store on `disk`, recovering it (see the module doc). What recovery found
    /// worth announcing is pushed to `events`, also when it then fails.
    pub fn open(
        disk: D,
        force_sync: bool,
        events: &mut Vec<StoreEvent>,
    ) -> Result<(Self, Recovered), StoreError> {
        disk.create_dir_all(Path::new(DATA_DIR))?;
        let accepted_epoch = read_epoch(&disk, ACCEPTED_EPOCH)?;
        let current_epoch = read_epoch(&disk, CURRENT_EPOCH)?;
        let snapshot = newest_valid_snapshot(&disk, events)?;

        let config = LogConfig {
            segment_bytes: 1 << 20,
            flush_interval_messages: None,
            retention_ms: None,
            ..LogConfig::default()
        };
        let (log, report) = Log::open(disk.clone(), &data(TXN_LOG_DIR), config)?;
        if report.truncated_at.is_some() {
            events.push(StoreEvent::TxnLogRecovered { recovery: report });
        }
        let mut store = FileTxnSnapLog {
            disk,
            log,
            index: Vec::new(),
            force_sync,
        };
        let records = store.read_log(events)?;
        let base = snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid);
        let log = records
            .into_iter()
            .filter(|r| r.header.zxid > base)
            .collect();
        let recovered = Recovered {
            accepted_epoch,
            current_epoch,
            snapshot,
            log,
        };
        Ok((store, recovered))
    }

    /// Appends `records` (in zxid order, after the last logged one) without syncing them.
    pub fn append(&mut self, records: &[TxnRecord]) -> Result<(), StoreError> {
        for record in records {
            assert!(
                self.last_zxid()
                    .is_none_or(|last| last < record.header.zxid),
                "the transaction log grows in zxid order"
            );
            let value = serde_json::to_vec(record)?;
            let mut batch = BatchBuilder::new(BatchMeta {
                base_timestamp_ms: record.header.time_ms,
                ..BatchMeta::default()
            });
            batch.push(
                record.header.time_ms,
                Some(&record.header.zxid.0.to_be_bytes()),
                Some(&value),
                &[],
            );
            let info = self.log.append(&mut batch)?;
            self.index.push((record.header.zxid, info.base_offset));
        }
        Ok(())
    }

    /// Makes every appended record durable — with `forceSync`; without it, a no-op that
    /// leaves them to the page cache (as ZooKeeper's `commit` does).
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.force_sync {
            self.log.flush()?;
        }
        Ok(())
    }

    /// Durably drops every logged record after `zxid` (ZooKeeper's `truncateLog`).
    pub fn truncate(&mut self, zxid: Zxid) -> Result<(), StoreError> {
        let first = self.index.partition_point(|(z, _)| *z <= zxid);
        if let Some(&(_, offset)) = self.index.get(first) {
            self.log.truncate_to(offset)?;
            self.index.truncate(first);
        }
        Ok(())
    }

    /// Durably drops every logged record (a snapshot received in sync replaces them).
    pub fn reset(&mut self) -> Result<(), StoreError> {
        let start = self.log.log_start_offset();
        self.log.truncate_to(start)?;
        self.index.clear();
        Ok(())
    }

    /// Durably saves `snapshot`, then removes all but the newest [`SNAPSHOTS_KEPT`]
    /// snapshots (the removals are not synced: one that a power cut undoes is harmless).
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let name = snapshot_file_name(snapshot.zxid);
        let bytes = serde_json::to_vec(snapshot)?;
        write_atomic(&self.disk, &data(&name), &bytes)?;
        let names = snapshot_names(&self.disk)?;
        for old in names
            .iter()
            .take(names.len().saturating_sub(SNAPSHOTS_KEPT))
        {
            self.disk.remove(&data(old))?;
        }
        Ok(())
    }

    /// Durably replaces the epoch files, `acceptedEpoch` first.
    pub fn persist_epochs(&mut self, accepted: Epoch, current: Epoch) -> Result<(), StoreError> {
        write_epoch(&self.disk, ACCEPTED_EPOCH, accepted)?;
        write_epoch(&self.disk, CURRENT_EPOCH, current)
    }

    /// The zxid of the last logged record.
    pub fn last_zxid(&self) -> Option<Zxid> {
        self.index.last().map(|(zxid, _)| *zxid)
    }

    /// Reads the whole log back, indexing it; cuts it at the first record that does not
    /// parse or breaks zxid order.
    fn read_log(&mut self, events: &mut Vec<StoreEvent>) -> Result<Vec<TxnRecord>, StoreError> {
        let mut records = Vec::new();
        let mut next = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        while next < end {
            let batch = self.log.read_records(next, READ_BYTES)?;
            let Some(last) = batch.last() else { break };
            next = last.offset.plus(1);
            for record in batch {
                let parsed = decode_txn(record.value.as_deref())
                    .ok()
                    .filter(|r| self.last_zxid().is_none_or(|z| z < r.header.zxid));
                let Some(parsed) = parsed else {
                    events.push(StoreEvent::BadTxnRecord {
                        offset: record.offset,
                    });
                    self.log.truncate_to(record.offset)?;
                    return Ok(records);
                };
                self.index.push((parsed.header.zxid, record.offset));
                records.push(parsed);
            }
        }
        Ok(records)
    }
}

/// An epoch file; a missing one is epoch 0.
fn read_epoch<D: Disk>(disk: &D, name: &'static str) -> Result<Epoch, StoreError> {
    let path = data(name);
    if !disk.exists(&path) {
        return Ok(Epoch(0));
    }
    let bytes =
        read_whole(disk, &path).map_err(|error| StoreError::EpochUnreadable { name, error })?;
    let content = String::from_utf8_lossy(&bytes);
    content
        .trim()
        .parse()
        .map(Epoch)
        .map_err(|_| StoreError::EpochInvalid {
            name,
            content: content.into_owned(),
        })
}

fn write_epoch<D: Disk>(disk: &D, name: &str, epoch: Epoch) -> Result<(), StoreError> {
    write_atomic(disk, &data(name), format!("{}\n", epoch.0).as_bytes())?;
    Ok(())
}

/// The newest snapshot that parses into a valid tree; each one skipped is reported.
fn newest_valid_snapshot<D: Disk>(
    disk: &D,
    events: &mut Vec<StoreEvent>,
) -> Result<Option<Snapshot>, StoreError> {
    for name in snapshot_names(disk)?.into_iter().rev() {
        let bytes = read_whole(disk, &data(&name))?;
        match decode_snapshot(&bytes) {
            Ok(snapshot) => return Ok(Some(snapshot)),
            Err(error) => events.push(StoreEvent::BadSnapshot { file: name, error }),
        }
    }
    Ok(None)
}

/// The transaction a log record's value holds, or why it holds none. Never panics.
pub fn decode_txn(value: Option<&[u8]>) -> Result<TxnRecord, String> {
    let value = value.ok_or("a null value")?;
    serde_json::from_slice(value).map_err(|e| format!("not a transaction: {e}"))
}

/// The snapshot a snapshot file's bytes hold, if they parse into a valid tree. Never panics.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, String> {
    let snapshot: Snapshot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    DataTree::from_snapshot(&snapshot)?;
    Ok(snapshot)
}

/// `snapshot.<zxid as 16 hex digits>`.
pub fn snapshot_file_name(zxid: Zxid) -> String {
    format!("{SNAPSHOT_PREFIX}{:016x}", zxid.0)
}

/// The zxid a snapshot file name carries (`snapshot.<16 hex digits>`).
pub fn parse_snapshot_file_name(name: &str) -> Option<Zxid> {
    let digits = name.strip_prefix(SNAPSHOT_PREFIX)?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok().map(Zxid)
}

/// Snapshot file names, oldest first (a staged `.tmp` is not a snapshot).
fn snapshot_names<D: Disk>(disk: &D) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = disk
        .list(Path::new(DATA_DIR))?
        .into_iter()
        .filter(|n| n.starts_with(SNAPSHOT_PREFIX) && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests;
