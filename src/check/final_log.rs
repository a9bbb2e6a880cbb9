//! Reading a node's log back from disk after the run, with the log engine, read-only.
//!
//! Owns: [`read_final_log`]. It opens the log exactly as a restarted process would (the
//! run killed every node, so this includes recovery of a torn tail) but changes nothing on
//! disk, and returns every record from the log start to the log end. The disk is the node's
//! (`check::node_data`): its run directory or its image.

use crate::disk::Disk;
use crate::log::{visit_batch, Log, LogConfig, LogError, Offset, RecoveryReport};
use std::path::Path;
use std::sync::Arc;

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
    /// Its records: the first `len` of `stored`, which another replica's log of the same
    /// partition may share when one holds the other's records as a prefix
    /// ([`FinalLog::share_with`]) — replicas mostly hold the same bytes, and the checks
    /// hold every replica's log at once.
    stored: Arc<Stored>,
    /// How many of `stored`'s records are this log's.
    len: usize,
    /// What recovery found.
    pub recovery: Option<RecoveryReport>,
    /// Why the log could not be read, if it could not.
    pub error: Option<String>,
}

/// Records, stored compactly.
#[derive(Clone, Debug, Default)]
struct Stored {
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
}

impl Stored {
    /// Keeps the first `len` records.
    fn truncate(&mut self, len: usize) {
        if len >= self.ends.len() {
            return;
        }
        let end = if len == 0 {
            0
        } else {
            self.ends[len - 1] as usize
        };
        self.values.truncate(end);
        self.ends.truncate(len);
        if !self.offsets.is_empty() {
            self.offsets.truncate(len);
        }
        self.disordered = self.offsets.windows(2).any(|w| w[0] >= w[1]);
    }
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
        (0..self.len).map(|i| self.record(i))
    }

    /// The `i`th record.
    fn record(&self, i: usize) -> (u64, &str) {
        let s = &*self.stored;
        let from = if i == 0 { 0 } else { s.ends[i - 1] as usize };
        (self.offset(i), &s.values[from..s.ends[i] as usize])
    }

    /// The offset of the `i`th record.
    fn offset(&self, i: usize) -> u64 {
        let s = &*self.stored;
        if s.offsets.is_empty() {
            s.first + i as u64
        } else {
            s.offsets[i]
        }
    }

    /// Whether the offsets only go up, record by record.
    pub fn ascending(&self) -> bool {
        // A shared prefix is only ever of an ascending log, so the flag holds for it too.
        !self.stored.disordered
    }

    /// The records at offsets in `from..to`, in log order, if the offsets only go up
    /// ([`FinalLog::ascending`]).
    pub fn between(&self, from: u64, to: u64) -> Option<impl Iterator<Item = (u64, &str)> + '_> {
        if !self.ascending() {
            return None;
        }
        let s = &*self.stored;
        let index = |offset: u64| {
            if s.offsets.is_empty() {
                offset.saturating_sub(s.first).min(self.len as u64) as usize
            } else {
                s.offsets[..self.len].partition_point(|&o| o < offset)
            }
        };
        let lo = index(from);
        let hi = index(to).max(lo);
        Some((lo..hi).map(|i| self.record(i)))
    }

    /// Appends a record.
    pub fn push(&mut self, offset: u64, value: &str) {
        let len = self.len;
        let s = Arc::make_mut(&mut self.stored);
        s.truncate(len);
        if len == 0 {
            s.first = offset;
        } else {
            let last = if s.offsets.is_empty() {
                s.first + (len - 1) as u64
            } else {
                s.offsets[len - 1]
            };
            s.disordered |= last >= offset;
            if s.offsets.is_empty() && offset != last.wrapping_add(1) {
                s.offsets = (0..len).map(|i| s.first + i as u64).collect();
            }
        }
        if !s.offsets.is_empty() {
            s.offsets.push(offset);
        }
        s.values.push_str(value);
        let end = u32::try_from(s.values.len()).expect("a final log's values fit in 4 GiB");
        s.ends.push(end);
        self.len += 1;
    }

    /// Makes this log keep its records in `other`'s storage when they are a prefix of
    /// `other`'s records (equal included) and `other` is ascending: the same records,
    /// stored once. Returns whether it did.
    pub fn share_with(&mut self, other: &FinalLog) -> bool {
        if Arc::ptr_eq(&self.stored, &other.stored)
            || !other.ascending()
            || self.len > other.len
            || !self.records().eq(other.records().take(self.len))
        {
            return false;
        }
        self.stored = other.stored.clone();
        true
    }

    /// Gives back what was reserved and not used.
    fn shrink_to_fit(&mut self) {
        let s = Arc::make_mut(&mut self.stored);
        s.offsets.shrink_to_fit();
        s.ends.shrink_to_fit();
        s.values.shrink_to_fit();
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
    let on_disk = usize::try_from(log.size_bytes()).unwrap_or(usize::MAX);
    {
        let s = Arc::make_mut(&mut out.stored);
        s.ends.reserve(span);
        s.values.reserve(on_disk.min(span * 32));
    }
    let mut next = out.log_start;
    while next < out.log_end {
        let failed = |e: LogError| format!("reading from offset {next}: {e}");
        // `Log::read_records`, without collecting the records twice.
        let bytes = log.read(Offset(next), DRAIN_BYTES).map_err(failed)?;
        let mut rest = &bytes[..];
        let mut last = None;
        while !rest.is_empty() {
            let (_, used) = visit_batch(rest, |r| {
                if r.offset.0 >= next {
                    last = Some(r.offset.0);
                    out.push(
                        r.offset.0,
                        &String::from_utf8_lossy(r.value.unwrap_or_default()),
                    );
                }
            })
            .map_err(|e| failed(e.into()))?;
            rest = &rest[used..];
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
    out.shrink_to_fit();
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
        assert!(log.stored.offsets.is_empty());
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
    fn a_prefix_shares_the_longer_logs_records_and_stays_itself() {
        let long = FinalLog::new(0, 4, [(0, "a"), (1, "bb"), (2, "c"), (3, "d")]);
        let mut short = FinalLog::new(0, 2, [(0, "a"), (1, "bb")]);
        let mut other = FinalLog::new(0, 2, [(0, "a"), (1, "x")]);
        assert!(short.share_with(&long));
        assert!(!other.share_with(&long));
        assert!(!long.clone().share_with(&short), "longer than the other");
        assert!(std::sync::Arc::ptr_eq(&short.stored, &long.stored));
        assert_eq!(listed(&short), [(0, "a".into()), (1, "bb".into())]);
        assert_eq!(short.records().next_back(), Some((1, "bb")));
        assert_eq!(
            short.between(1, 9).unwrap().collect::<Vec<_>>(),
            [(1, "bb")]
        );
        // Appending to a shared prefix copies it first: the longer log is untouched.
        short.push(2, "z");
        assert_eq!(listed(&short).len(), 3);
        assert_eq!(short.records().next_back(), Some((2, "z")));
        assert_eq!(long.records().nth(2), Some((2, "c")));
        // A log with explicit offsets shares too, and a disordered one is never shared.
        let gap = FinalLog::new(0, 9, [(0, "a"), (5, "b"), (7, "c")]);
        let mut gap_prefix = FinalLog::new(0, 9, [(0, "a"), (5, "b")]);
        assert!(gap_prefix.share_with(&gap));
        assert_eq!(gap_prefix.between(0, 7).unwrap().count(), 2);
        let back = FinalLog::new(0, 9, [(4, "a"), (2, "b")]);
        let mut back_prefix = FinalLog::new(0, 9, [(4, "a")]);
        assert!(!back_prefix.share_with(&back));
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
