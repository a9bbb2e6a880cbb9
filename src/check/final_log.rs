//! Reading a node's log back from disk after the run, with the log engine, read-only.
//!
//! Owns: [`read_final_log`]. It opens the log exactly as a restarted process would (the
//! run killed every node, so this includes recovery of a torn tail) but changes nothing on
//! disk, and returns every record from the log start to the log end. The disk is the node's
//! (`check::node_data`): its run directory or its image.
//!
//! Transactions: a control batch's record is a COMMIT or ABORT marker, not data. It is kept
//! apart ([`FinalLog::markers`]), never among the records, and every transactional batch is
//! listed with the marker that ended its transaction ([`FinalLog::txn_fate`]): the first
//! marker of the same producer id after it, as a partition's readers decide (KIP-98). A log
//! without transactions pays nothing for this.

use crate::disk::Disk;
use crate::log::{
    parse_header, read_control_record, visit_batch, ControlRecordType, Log, LogConfig, LogError,
    Offset, RecoveryReport,
};
use std::collections::BTreeMap;
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
    /// Its transactional batches and markers (`None`: it has none).
    txns: Option<Box<Txns>>,
}

/// A COMMIT or ABORT marker (a control batch's one record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnMarker {
    /// Its offset.
    pub offset: u64,
    /// The producer whose transaction it ends.
    pub producer_id: i64,
    /// The producer epoch it carries.
    pub producer_epoch: i16,
    /// COMMIT (`true`) or ABORT.
    pub commit: bool,
    /// The epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
}

/// A batch of records written inside a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnBatch {
    /// Its first offset.
    pub base_offset: u64,
    /// Its last offset.
    pub last_offset: u64,
    /// The producer.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The index in [`FinalLog::markers`] of the marker that ended its transaction; `None`
    /// while it is open (no marker of its producer after it).
    pub ended_by: Option<usize>,
}

/// How the transaction of a record ended, as the final log tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnFate {
    /// A COMMIT marker follows: `read_committed` readers see it.
    Committed,
    /// An ABORT marker follows: `read_committed` readers skip it.
    Aborted,
    /// No marker follows: the transaction is still open, and the last stable offset stops
    /// at its first batch.
    Open,
}

#[derive(Clone, Debug, Default)]
struct Txns {
    batches: Vec<TxnBatch>,
    markers: Vec<TxnMarker>,
    /// Per producer id, its batches (indices) not yet ended by a marker.
    open: BTreeMap<i64, Vec<usize>>,
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

    /// How many records sit below `offset`, for a log whose offsets only go up
    /// ([`FinalLog::ascending`]): by arithmetic while they follow one another, else by a
    /// binary search.
    pub fn count_below(&self, offset: u64) -> usize {
        debug_assert!(self.ascending(), "count_below of a disordered log");
        let s = &*self.stored;
        if s.offsets.is_empty() {
            usize::try_from(offset.saturating_sub(s.first))
                .unwrap_or(usize::MAX)
                .min(self.len)
        } else {
            s.offsets[..self.len].partition_point(|&o| o < offset)
        }
    }

    /// The offset of the `i`th record.
    pub fn offset(&self, i: usize) -> u64 {
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

    /// Lists a batch written inside a transaction (its records are pushed on their own).
    pub fn push_txn_batch(
        &mut self,
        base_offset: u64,
        last_offset: u64,
        producer_id: i64,
        producer_epoch: i16,
    ) {
        let txns = self.txns.get_or_insert_with(Box::default);
        let index = txns.batches.len();
        txns.batches.push(TxnBatch {
            base_offset,
            last_offset,
            producer_id,
            producer_epoch,
            ended_by: None,
        });
        txns.open.entry(producer_id).or_default().push(index);
    }

    /// Appends a marker: it ends every open transactional batch of its producer.
    pub fn push_marker(&mut self, marker: TxnMarker) {
        let txns = self.txns.get_or_insert_with(Box::default);
        let index = txns.markers.len();
        txns.markers.push(marker);
        for batch in txns.open.remove(&marker.producer_id).unwrap_or_default() {
            txns.batches[batch].ended_by = Some(index);
        }
    }

    /// The COMMIT and ABORT markers, in log order.
    pub fn markers(&self) -> &[TxnMarker] {
        self.txns.as_ref().map_or(&[], |t| &t.markers)
    }

    /// The transactional batches, in log order.
    pub fn txn_batches(&self) -> &[TxnBatch] {
        self.txns.as_ref().map_or(&[], |t| &t.batches)
    }

    /// The transactional batch holding `offset`, if one does.
    pub fn txn_batch(&self, offset: u64) -> Option<&TxnBatch> {
        let batches = self.txn_batches();
        let i = batches.partition_point(|b| b.base_offset <= offset);
        batches[..i].last().filter(|b| b.last_offset >= offset)
    }

    /// How the transaction of the record at `offset` ended; `None` when the record was not
    /// written inside a transaction.
    pub fn txn_fate(&self, offset: u64) -> Option<TxnFate> {
        let batch = self.txn_batch(offset)?;
        Some(match batch.ended_by {
            None => TxnFate::Open,
            Some(m) if self.markers()[m].commit => TxnFate::Committed,
            Some(_) => TxnFate::Aborted,
        })
    }

    /// The last stable offset this log would have: the first offset of its earliest open
    /// transaction, else the log end.
    pub fn last_stable_offset(&self) -> u64 {
        self.txn_batches()
            .iter()
            .find(|b| b.ended_by.is_none())
            .map_or(self.log_end, |b| b.base_offset)
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
            let header = parse_header(rest).map_err(|e| failed(e.into()))?;
            if header.is_control() {
                let batch = rest.get(..header.size).unwrap_or(rest);
                let control = read_control_record(batch)
                    .map_err(|e| format!("reading from offset {next}: {e}"))?;
                let offset = header.base_offset.0;
                if offset >= next {
                    last = Some(header.last_offset().0);
                    out.push_marker(TxnMarker {
                        offset,
                        producer_id: header.producer_id.0,
                        producer_epoch: header.producer_epoch,
                        commit: control.kind == ControlRecordType::Commit,
                        coordinator_epoch: control.coordinator_epoch,
                    });
                }
                rest = &rest[header.size.min(rest.len())..];
                continue;
            }
            let mut first = None;
            let (header, used) = visit_batch(rest, |r| {
                if r.offset.0 >= next {
                    first.get_or_insert(r.offset.0);
                    last = Some(r.offset.0);
                    out.push(
                        r.offset.0,
                        &String::from_utf8_lossy(r.value.unwrap_or_default()),
                    );
                }
            })
            .map_err(|e| failed(e.into()))?;
            if let (true, Some(first)) = (header.is_transactional(), first) {
                out.push_txn_batch(
                    first,
                    header.last_offset().0,
                    header.producer_id.0,
                    header.producer_epoch,
                );
            }
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
    use super::{read_final_log, FinalLog, TxnFate};
    use crate::disk::{SimDisk, SimDiskConfig};
    use crate::log::{
        BatchBuilder, BatchMeta, ControlRecord, ControlRecordType, LeaderEpoch, Log, LogConfig,
        ProducerId,
    };
    use std::path::Path;

    /// A log of plain, transactional and control batches, drained as the checks do.
    #[test]
    fn markers_are_kept_apart_and_end_their_producers_transactions() {
        let disk = SimDisk::in_memory(1, SimDiskConfig::default());
        let dir = Path::new("orders-0");
        let config = LogConfig::default();
        let (mut log, _) = Log::open(disk.clone(), dir, config.clone()).unwrap();
        let meta = |pid: i64| BatchMeta {
            leader_epoch: LeaderEpoch(1),
            producer_id: ProducerId(pid),
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchMeta::default()
        };
        let batch = |pid: i64, txn: bool, values: &[&str]| {
            let mut b = BatchBuilder::new(meta(pid));
            b.set_transactional(txn);
            for v in values {
                b.push(0, None, Some(v.as_bytes()), &[]);
            }
            b
        };
        let marker = |pid: i64, kind| {
            BatchBuilder::end_txn_marker(
                meta(pid),
                ControlRecord {
                    kind,
                    coordinator_epoch: 4,
                },
            )
        };
        // 0: plain; 1-2: txn of 7; 3: txn of 8; 4: ABORT of 7; 5: txn of 8; 6: COMMIT of 8;
        // 7: txn of 7, never ended.
        log.append(&mut batch(1, false, &["plain"])).unwrap();
        log.append(&mut batch(7, true, &["a1", "a2"])).unwrap();
        log.append(&mut batch(8, true, &["b1"])).unwrap();
        log.append(&mut marker(7, ControlRecordType::Abort))
            .unwrap();
        log.append(&mut batch(8, true, &["b2"])).unwrap();
        log.append(&mut marker(8, ControlRecordType::Commit))
            .unwrap();
        log.append(&mut batch(7, true, &["c1"])).unwrap();
        log.flush().unwrap();
        drop(log);

        let fin = read_final_log(disk, dir, config);
        assert_eq!(fin.error, None);
        assert_eq!(fin.log_end, 8);
        assert_eq!(
            listed(&fin),
            [
                (0, "plain".into()),
                (1, "a1".into()),
                (2, "a2".into()),
                (3, "b1".into()),
                (5, "b2".into()),
                (7, "c1".into())
            ],
            "no marker among the records"
        );
        let markers: Vec<_> = fin
            .markers()
            .iter()
            .map(|m| (m.offset, m.producer_id, m.commit))
            .collect();
        assert_eq!(markers, [(4, 7, false), (6, 8, true)]);
        assert_eq!(fin.markers()[0].coordinator_epoch, 4);
        assert_eq!(fin.txn_fate(0), None, "a plain record is in no transaction");
        assert_eq!(fin.txn_fate(2), Some(TxnFate::Aborted));
        assert_eq!(fin.txn_fate(3), Some(TxnFate::Committed));
        assert_eq!(fin.txn_fate(5), Some(TxnFate::Committed));
        assert_eq!(fin.txn_fate(4), None, "a marker is not a record");
        assert_eq!(fin.txn_fate(7), Some(TxnFate::Open));
        assert_eq!(fin.last_stable_offset(), 7);
    }

    #[test]
    fn a_log_without_transactions_is_stable_to_its_end() {
        let mut log = FinalLog::new(0, 3, [(0, "a"), (1, "b"), (2, "c")]);
        assert!(log.markers().is_empty() && log.txn_batches().is_empty());
        assert_eq!(log.last_stable_offset(), 3);
        log.push_txn_batch(1, 2, 5, 0);
        assert_eq!(log.last_stable_offset(), 1);
        assert_eq!(log.txn_fate(1), Some(TxnFate::Open));
        assert_eq!(log.txn_fate(0), None);
    }

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
