//! Reading a node's log back from disk after the run, with the log engine, read-only.
//!
//! Owns: [`read_final_log`]. It opens the log exactly as a restarted process would (the
//! run killed every node, so this includes recovery of a torn tail) but changes nothing on
//! disk, and returns every record from the log start to the log end. The disk is the node's
//! (`check::node_data`): its run directory or its image.

use crate::disk::Disk;
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
    /// The offset of the first record, while every later one is the one before plus one
    /// (as in every log the engine wrote): then no offset is stored.
    first: u64,
    /// Every record's offset, in log order, once they stopped following `first` (empty
    /// until then).
    offsets: Vec<u64>,
    /// Where each record's value ends in `values`, in log order (it starts where the one
    /// before ends).
    ends: Vec<u32>,
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
    /// A log that could not be read, and why.
    pub fn unreadable(error: String) -> Self {
        FinalLog {
            error: Some(error),
            ..FinalLog::default()
        }
    }

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
        (0..self.ends.len()).map(|i| self.record(i))
    }

    /// The `i`th record.
    fn record(&self, i: usize) -> (u64, &str) {
        let from = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.offset(i), &self.values[from..self.ends[i] as usize])
    }

    /// The offset of the `i`th record.
    fn offset(&self, i: usize) -> u64 {
        if self.offsets.is_empty() {
            self.first + i as u64
        } else {
            self.offsets[i]
        }
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
        let index = |offset: u64| {
            if self.offsets.is_empty() {
                let len = self.ends.len() as u64;
                offset.saturating_sub(self.first).min(len) as usize
            } else {
                self.offsets.partition_point(|&o| o < offset)
            }
        };
        let lo = index(from);
        let hi = index(to).max(lo);
        Some((lo..hi).map(|i| self.record(i)))
    }

    /// Appends a record.
    pub fn push(&mut self, offset: u64, value: &str) {
        let len = self.ends.len();
        if len == 0 {
            self.first = offset;
        } else {
            let last = self.offset(len - 1);
            self.disordered |= last >= offset;
            if self.offsets.is_empty() && offset != last.wrapping_add(1) {
                self.offsets = (0..len).map(|i| self.first + i as u64).collect();
            }
        }
        if !self.offsets.is_empty() || (len > 0 && offset != self.first + len as u64) {
            self.offsets.push(offset);
        }
        self.values.push_str(value);
        let end = u32::try_from(self.values.len()).expect("a final log's values fit in 4 GiB");
        self.ends.push(end);
    }
}

/// Reads the log in `log_dir` of a node's `disk` with `config`.
pub fn read_final_log<D: Disk>(disk: D, log_dir: &Path, config: LogConfig) -> FinalLog {
    drain(disk, log_dir, config).unwrap_or_else(FinalLog::unreadable)
}

fn drain<D: Disk>(disk: D, log_dir: &Path, config: LogConfig) -> Result<FinalLog, String> {
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
    out.ends.reserve(span);
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
    // What was reserved and not used goes back: the checks hold every replica's log.
    out.ends.shrink_to_fit();
    out.values.shrink_to_fit();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::FinalLog;

    fn listed(log: &FinalLog) -> Vec<(u64, String)> {
        log.records().map(|(o, v)| (o, v.to_string())).collect()
    }

    #[test]
    fn a_dense_log_stores_no_offsets_and_reads_back_in_order() {
        let log = FinalLog::new(3, 6, [(3, "a"), (4, ""), (5, "ccc")]);
        assert!(log.offsets.is_empty());
        assert!(log.ascending());
        assert_eq!(
            listed(&log),
            [(3, "a".into()), (4, "".into()), (5, "ccc".into())]
        );
        let between: Vec<_> = log.between(4, 9).unwrap().collect();
        assert_eq!(between, [(4, ""), (5, "ccc")]);
        assert_eq!(log.between(0, 3).unwrap().count(), 0);
        assert_eq!(log.records().next_back(), Some((5, "ccc")));
    }

    #[test]
    fn a_gap_or_a_step_back_keeps_every_offset() {
        let gap = FinalLog::new(0, 10, [(0, "a"), (1, "b"), (7, "c"), (8, "d")]);
        assert!(gap.ascending());
        assert_eq!(
            gap.records().map(|(o, _)| o).collect::<Vec<_>>(),
            [0, 1, 7, 8]
        );
        let between: Vec<_> = gap.between(2, 8).unwrap().collect();
        assert_eq!(between, [(7, "c")]);

        let back = FinalLog::new(0, 10, [(4, "a"), (5, "b"), (5, "c"), (2, "d")]);
        assert!(!back.ascending());
        assert!(back.between(0, 10).is_none());
        assert_eq!(
            listed(&back),
            [
                (4, "a".into()),
                (5, "b".into()),
                (5, "c".into()),
                (2, "d".into())
            ]
        );
    }
}
