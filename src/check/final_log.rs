//! Reading a node's log back from disk after the run, with the log engine, read-only.
//!
//! Owns: [`read_final_log`]. It opens the log exactly as a restarted process would (the
//! run killed every node, so this includes recovery of a torn tail) but changes nothing on
//! disk, and returns every record from the log start to the log end.

use crate::disk::FsDisk;
use crate::log::{decode_batch, Log, LogConfig, LogError, Offset, RecoveryReport};
use std::path::Path;

/// Bytes asked for per read while draining a log.
const DRAIN_BYTES: usize = 1 << 20;

/// The most records reserved for up front.
const RESERVE_MAX: usize = 1 << 20;

/// A log as found on disk after the run.
#[derive(Clone, Debug, Default)]
pub struct FinalLog {
    /// The first offset still in the log.
    pub log_start: u64,
    /// The next offset the log would assign.
    pub log_end: u64,
    /// `(offset, where its value is in values)` of every record from `log_start` to
    /// `log_end`, in log order.
    records: Vec<(u64, u32, u32)>,
    /// Every record's value, one after another.
    values: String,
    /// Whether some record's offset is not above the one before it (never in a log the
    /// engine wrote; a hand-made one may be so).
    disordered: bool,
    /// What recovery found.
    pub recovery: Option<RecoveryReport>,
    /// Why the log could not be read, if it could not.
    pub error: Option<String>,
}

impl FinalLog {
    /// A log of `records` from `log_start` to `log_end`.
    pub fn new<'v>(
        log_start: u64,
        log_end: u64,
        records: impl IntoIterator<Item = (u64, &'v str)>,
    ) -> Self {
        let mut log = FinalLog {
            log_start,
            log_end,
            ..FinalLog::default()
        };
        for (offset, value) in records {
            log.push(offset, value);
        }
        log
    }

    /// `(offset, value)` of every record from `log_start` to `log_end`, in log order.
    pub fn records(
        &self,
    ) -> impl DoubleEndedIterator<Item = (u64, &str)> + ExactSizeIterator + Clone + '_ {
        self.records
            .iter()
            .map(|&(offset, from, to)| (offset, &self.values[from as usize..to as usize]))
    }

    /// Whether the offsets only go up, record by record.
    pub fn ascending(&self) -> bool {
        !self.disordered
    }

    /// The records at offsets in `from..to`, in log order, if the offsets only go up
    /// ([`FinalLog::ascending`]).
    pub fn between(&self, from: u64, to: u64) -> Option<impl Iterator<Item = (u64, &str)> + '_> {
        if self.disordered {
            return None;
        }
        let lo = self.records.partition_point(|&(o, _, _)| o < from);
        let hi = self.records.partition_point(|&(o, _, _)| o < to).max(lo);
        Some(
            self.records[lo..hi]
                .iter()
                .map(|&(offset, from, to)| (offset, &self.values[from as usize..to as usize])),
        )
    }

    /// Appends a record.
    pub fn push(&mut self, offset: u64, value: &str) {
        self.disordered |= self.records.last().is_some_and(|&(o, _, _)| o >= offset);
        let at = |n: usize| u32::try_from(n).expect("a final log's values fit in 4 GiB");
        let from = at(self.values.len());
        self.values.push_str(value);
        self.records.push((offset, from, at(self.values.len())));
    }
}

/// Reads the log in `<node_dir>/<log_dir>` with `config`.
pub fn read_final_log(node_dir: &Path, log_dir: &Path, config: LogConfig) -> FinalLog {
    match drain(node_dir, log_dir, config) {
        Ok(log) => log,
        Err(error) => FinalLog {
            error: Some(error),
            ..FinalLog::default()
        },
    }
}

fn drain(node_dir: &Path, log_dir: &Path, config: LogConfig) -> Result<FinalLog, String> {
    let disk = FsDisk::new(node_dir).map_err(|e| e.to_string())?;
    let (log, recovery) = Log::open_read_only(disk, log_dir, config).map_err(|e| e.to_string())?;
    let mut out = FinalLog {
        log_start: log.log_start_offset().0,
        log_end: log.log_end_offset().0,
        recovery: Some(recovery),
        ..FinalLog::default()
    };
    // Room for every offset (a log with gaps holds fewer) and values of up to 32 bytes
    // (never more than the log's bytes on disk).
    let span = usize::try_from(out.log_end.saturating_sub(out.log_start))
        .map_or(RESERVE_MAX, |n| n.min(RESERVE_MAX));
    out.records.reserve(span);
    let on_disk = usize::try_from(log.size_bytes()).unwrap_or(usize::MAX);
    out.values.reserve(on_disk.min(span * 32));
    let mut next = out.log_start;
    while next < out.log_end {
        let failed = |e: LogError| format!("reading from offset {next}: {e}");
        // `Log::read_records`, without collecting the records twice.
        let bytes = log.read(Offset(next), DRAIN_BYTES).map_err(failed)?;
        let mut rest = &bytes[..];
        let mut last = None;
        while !rest.is_empty() {
            let (batch, used) = decode_batch(rest).map_err(|e| failed(e.into()))?;
            rest = &rest[used..];
            for r in batch.records.into_iter().filter(|r| r.offset.0 >= next) {
                last = Some(r.offset.0);
                let value = r.value.unwrap_or_default();
                out.push(r.offset.0, &String::from_utf8_lossy(&value));
            }
        }
        let Some(last) = last else {
            return Err(format!(
                "read from offset {next} returned nothing before the log end {}",
                out.log_end
            ));
        };
        next = last + 1;
    }
    Ok(out)
}
