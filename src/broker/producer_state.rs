//! [`ProducerStateManager`]: idempotent and transactional producers' state for one
//! partition replica (KIP-98), rebuilt from the log's batches.
//!
//! Owns: for each producer id, its current epoch, the metadata of its last
//! [`DEDUP_WINDOW`] batches (first/last sequence, first/last offset), the first offset of
//! its open transaction on this partition and the coordinator epoch of its last marker;
//! the partition's open transactions and its completed but not yet replicated ones (the
//! inputs of the last stable offset); and its aborted transactions
//! ([`TransactionIndex`]).
//!
//! Rules the leader checks before appending (Kafka's `ProducerAppendInfo`):
//! - idempotence ([`ProducerStateManager::check`]): the next batch must start at the last
//!   sequence + 1 (wrapping at `i32::MAX` to 0); a batch equal to one of the last five is
//!   a retry and is answered with where the original went; a gap is
//!   `OUT_OF_ORDER_SEQUENCE_NUMBER`; an older producer epoch is `INVALID_PRODUCER_EPOCH`;
//!   a newer epoch, or the same epoch after a marker bumped it, must start at sequence 0;
//! - transactions ([`ProducerStateManager::check_txn_state`]): a non-transactional batch
//!   from a producer with a transaction open on the partition is `INVALID_TXN_STATE`;
//! - a group coordinator's transactional batch (a TxnOffsetCommit's offsets,
//!   [`ProducerStateManager::check_coordinator_batch`]): no sequence check, an older
//!   producer epoch is `INVALID_PRODUCER_EPOCH`;
//! - markers ([`ProducerStateManager::check_marker`]): an older producer epoch is
//!   `INVALID_PRODUCER_EPOCH`, an older coordinator epoch than the producer's last marker
//!   `TRANSACTION_COORDINATOR_FENCED`.
//!
//! What an appended batch does ([`ProducerStateManager::record_batch`], the same for the
//! leader, a follower and a rebuild, and never refusing: what is in the log happened):
//! a transactional batch of a producer with no open transaction opens one at its base
//! offset; a marker closes the producer's open transaction, if any (a marker with none is
//! a retry and closes nothing), giving a [`CompletedTxn`] that stays unreplicated until the
//! HW passes its marker ([`ProducerStateManager::on_high_watermark`]); an aborted one is
//! appended to the [`TransactionIndex`] with the last stable offset at its marker.
//!
//! The last stable offset (LSO, [`ProducerStateManager::last_stable_offset`]): the first
//! offset of the earliest open or unreplicated transaction if that is below the HW, else
//! the HW. A `read_committed` fetch reads below it.
//!
//! Invariant: the state is a function of the batches in the log (and of the HW, for which
//! completed transactions are still unreplicated) — every replica (leader or follower)
//! feeds each appended batch to [`ProducerStateManager::record_batch`], and after a
//! truncation, after retention or on open the replica rebuilds it by scanning the log from
//! the start, then applies its HW, so a new leader deduplicates and computes the LSO
//! exactly like the old one would have. Truncation is a rebuild (Kafka's
//! `truncateAndReload`): a transaction whose marker was cut is open again, and the aborted
//! index loses the entries whose marker was cut (what [`TransactionIndex::truncate_to`]
//! does to the index alone).
//!
//! Simplifications vs Kafka: no producer-state snapshots (the whole log is scanned on open,
//! after truncation and after retention), no producer id expiration, no hanging
//! transaction detection; markers are checked as before KIP-890 part 2 (an epoch equal to
//! the producer's is accepted). Like Kafka (since KIP-360), a producer id the replica has
//! no state for is accepted at any sequence: its batches may have been deleted by retention.
//! A non-transactional batch of a producer with an open transaction can only reach the log
//! past the leader's check (a later legacy switch); recorded, it leaves the transaction
//! open.

use super::txn_index::{AbortedTxn, TransactionIndex};
use crate::broker::KafkaError;
use crate::log::{
    read_control_record, BatchHeader, ControlRecord, ControlRecordError, ControlRecordType, Offset,
    ProducerId,
};
use std::collections::{BTreeMap, VecDeque};

/// How many recent batches per producer are remembered for duplicate detection
/// (Kafka's `NUM_BATCHES_TO_RETAIN`, matching `max.in.flight.requests.per.connection`).
pub const DEDUP_WINDOW: usize = 5;

/// One batch of an idempotent producer, as appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    /// Sequence of its first record.
    pub first_sequence: i32,
    /// Sequence of its last record.
    pub last_sequence: i32,
    /// Offset of its first record.
    pub first_offset: Offset,
    /// Offset of its last record.
    pub last_offset: Offset,
}

/// One producer's state (Kafka's `ProducerStateEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Its last batches, oldest first, at most [`DEDUP_WINDOW`].
    pub batches: VecDeque<ProducerBatch>,
    /// The first offset of its open transaction on this partition (Kafka's
    /// `currentTxnFirstOffset`).
    pub current_txn_first_offset: Option<Offset>,
    /// The coordinator epoch of its last marker; -1 before any.
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            producer_epoch: 0,
            batches: VecDeque::new(),
            current_txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }
}

/// What the leader should do with an idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// It continues the producer's sequence (or starts a new producer/epoch): append it.
    Append,
    /// A retry of a batch already in the log: answer with the original's offsets.
    Duplicate(ProducerBatch),
}

/// What the producer state reads from one appended batch: its header's producer fields,
/// its offsets and, for a control batch, its marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendedBatch {
    /// -1 when the producer is not idempotent.
    pub producer_id: ProducerId,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record; -1 for a marker.
    pub base_sequence: i32,
    /// Offset of the first record.
    pub first_offset: Offset,
    /// Offset of the last record (a marker's own offset).
    pub last_offset: Offset,
    /// Whether the batch was written inside a transaction.
    pub is_transactional: bool,
    /// A control batch's transaction marker; `None` for a data batch.
    pub marker: Option<ControlRecord>,
}

impl AppendedBatch {
    /// Reads the batch `bytes` starts with (whose header is `header`): the marker of a
    /// control batch is parsed from its record, and a malformed one is an error.
    pub fn read(header: &BatchHeader, bytes: &[u8]) -> Result<Self, ControlRecordError> {
        let marker = match header.is_control() {
            true => Some(read_control_record(bytes)?),
            false => None,
        };
        Ok(AppendedBatch {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            is_transactional: header.is_transactional(),
            marker,
        })
    }
}

/// A transaction a marker closed on this partition (Kafka's `CompletedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    /// Its producer.
    pub producer_id: ProducerId,
    /// Offset of its first batch on this partition.
    pub first_offset: Offset,
    /// Offset of its marker.
    pub last_offset: Offset,
    /// Whether the marker was ABORT.
    pub is_aborted: bool,
}

/// The idempotent and transactional producers of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<ProducerId, ProducerEntry>,
    /// Open transactions by first offset, with their producer (Kafka's `ongoingTxns`).
    ongoing_txns: BTreeMap<Offset, ProducerId>,
    /// Completed transactions whose marker the HW has not passed, by first offset
    /// (Kafka's `unreplicatedTxns`).
    unreplicated_txns: BTreeMap<Offset, CompletedTxn>,
    aborted_txns: TransactionIndex,
}

impl ProducerStateManager {
    /// No producers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of `producer_id`, if any.
    pub fn entry(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch of `record_count` records from `producer_id`/`producer_epoch`
    /// starting at `first_sequence` (the leader, before appending). A batch without a
    /// producer id (`-1`) is not idempotent and always appended.
    pub fn check(
        &self,
        producer_id: ProducerId,
        producer_epoch: i16,
        first_sequence: i32,
        record_count: i32,
    ) -> Result<SequenceCheck, KafkaError> {
        if !producer_id.is_some() {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if producer_epoch < entry.producer_epoch {
            return Err(KafkaError::InvalidProducerEpoch);
        }
        if producer_epoch > entry.producer_epoch {
            return match first_sequence {
                0 => Ok(SequenceCheck::Append),
                _ => Err(KafkaError::OutOfOrderSequenceNumber),
            };
        }
        let last_sequence = add_sequence(first_sequence, record_count - 1);
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        match entry.batches.back() {
            Some(last) if add_sequence(last.last_sequence, 1) != first_sequence => {
                Err(KafkaError::OutOfOrderSequenceNumber)
            }
            // Only a marker leaves an entry without batches: it set a new epoch, whose
            // first batch starts at sequence 0.
            None if first_sequence != 0 => Err(KafkaError::OutOfOrderSequenceNumber),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Checks a batch the group coordinator writes for `producer_id`'s transaction (Kafka's
    /// append origin COORDINATOR: a TxnOffsetCommit's offsets): no sequence to validate,
    /// only the epoch — one older than the producer's is `INVALID_PRODUCER_EPOCH`.
    pub fn check_coordinator_batch(
        &self,
        producer_id: ProducerId,
        producer_epoch: i16,
    ) -> Result<(), KafkaError> {
        match self.producers.get(&producer_id) {
            Some(entry) if producer_epoch < entry.producer_epoch => {
                Err(KafkaError::InvalidProducerEpoch)
            }
            _ => Ok(()),
        }
    }

    /// Whether `producer_id` has a transaction open on this partition (Kafka's
    /// `hasOngoingTransaction`).
    pub fn has_open_txn(&self, producer_id: ProducerId) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    /// Checks a data batch against the producer's transaction (the leader, after
    /// [`ProducerStateManager::check`] said append): a non-transactional batch while the
    /// producer has a transaction open here is `INVALID_TXN_STATE`.
    pub fn check_txn_state(
        &self,
        producer_id: ProducerId,
        is_transactional: bool,
    ) -> Result<(), KafkaError> {
        match self.has_open_txn(producer_id) && !is_transactional {
            true => Err(KafkaError::InvalidTxnState),
            false => Ok(()),
        }
    }

    /// Checks a transaction marker for `producer_id` written with `producer_epoch` (the
    /// leader, before appending it): an epoch older than the producer's is
    /// `INVALID_PRODUCER_EPOCH`; a coordinator epoch older than its last marker's is
    /// `TRANSACTION_COORDINATOR_FENCED` (a zombie coordinator). A marker for a producer
    /// with no open transaction is accepted: a retry closes nothing.
    pub fn check_marker(
        &self,
        producer_id: ProducerId,
        producer_epoch: i16,
        marker: &ControlRecord,
    ) -> Result<(), KafkaError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < entry.producer_epoch {
            return Err(KafkaError::InvalidProducerEpoch);
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(KafkaError::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    /// Records an appended batch (leader or follower, and when rebuilding from the log),
    /// returning the transaction a marker closed. A batch without a producer id is ignored.
    pub fn record_batch(&mut self, batch: &AppendedBatch) -> Option<CompletedTxn> {
        if !batch.producer_id.is_some() {
            return None;
        }
        match batch.marker {
            Some(marker) => self.record_marker(batch, marker),
            None => {
                self.record_data(batch);
                None
            }
        }
    }

    fn record_data(&mut self, batch: &AppendedBatch) {
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.producer_epoch || entry.batches.is_empty() {
            entry.batches.clear();
            entry.producer_epoch = batch.producer_epoch;
        }
        let count = batch.last_offset.since(batch.first_offset) as i32 + 1;
        entry.batches.push_back(ProducerBatch {
            first_sequence: batch.base_sequence,
            last_sequence: add_sequence(batch.base_sequence, count - 1),
            first_offset: batch.first_offset,
            last_offset: batch.last_offset,
        });
        if entry.batches.len() > DEDUP_WINDOW {
            entry.batches.pop_front();
        }
        if batch.is_transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(batch.first_offset);
            let previous = self
                .ongoing_txns
                .insert(batch.first_offset, batch.producer_id);
            assert!(previous.is_none(), "two transactions start at one offset");
        }
    }

    fn record_marker(
        &mut self,
        batch: &AppendedBatch,
        marker: ControlRecord,
    ) -> Option<CompletedTxn> {
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch != entry.producer_epoch {
            entry.batches.clear();
            entry.producer_epoch = batch.producer_epoch;
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        let first_offset = entry.current_txn_first_offset.take()?;
        let completed = CompletedTxn {
            producer_id: batch.producer_id,
            first_offset,
            last_offset: batch.last_offset,
            is_aborted: marker.kind == ControlRecordType::Abort,
        };
        if completed.is_aborted {
            // The LSO at the marker, as Kafka computes it before completing the
            // transaction: the earliest other open transaction, else past the marker.
            let last_stable_offset = self
                .ongoing_txns
                .iter()
                .find(|(_, producer)| **producer != completed.producer_id)
                .map_or(completed.last_offset.plus(1), |(first, _)| *first);
            self.aborted_txns.append(AbortedTxn {
                producer_id: completed.producer_id,
                first_offset,
                last_offset: completed.last_offset,
                last_stable_offset,
            });
        }
        let removed = self.ongoing_txns.remove(&first_offset);
        assert_eq!(removed, Some(completed.producer_id), "open txn not indexed");
        self.unreplicated_txns.insert(first_offset, completed);
        Some(completed)
    }

    /// The HW moved to `high_watermark`: completed transactions whose marker is below it
    /// no longer hold the LSO back (Kafka's `onHighWatermarkUpdated`).
    pub fn on_high_watermark(&mut self, high_watermark: Offset) {
        self.unreplicated_txns
            .retain(|_, txn| txn.last_offset >= high_watermark);
    }

    /// The first offset of the earliest open transaction or completed one whose marker the
    /// HW has not passed (Kafka's `firstUnstableOffset`).
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        let undecided = self.ongoing_txns.keys().next();
        let unreplicated = self.unreplicated_txns.keys().next();
        undecided.into_iter().chain(unreplicated).min().copied()
    }

    /// The first offset of the earliest open transaction (Kafka's `firstUndecidedOffset`).
    pub fn first_undecided_offset(&self) -> Option<Offset> {
        self.ongoing_txns.keys().next().copied()
    }

    /// The last stable offset given the HW: the first unstable offset if it is below
    /// `high_watermark`, else `high_watermark` (Kafka's `UnifiedLog.lastStableOffset`).
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        match self.first_unstable_offset() {
            Some(first) if first < high_watermark => first,
            _ => high_watermark,
        }
    }

    /// The open transactions, by first offset: (first offset, producer).
    pub fn ongoing_txns(&self) -> impl Iterator<Item = (Offset, ProducerId)> + '_ {
        self.ongoing_txns.iter().map(|(o, p)| (*o, *p))
    }

    /// The completed transactions the HW has not passed, by first offset.
    pub fn unreplicated_txns(&self) -> impl Iterator<Item = &CompletedTxn> + '_ {
        self.unreplicated_txns.values()
    }

    /// The aborted transactions, in marker order.
    pub fn aborted_txns(&self) -> &TransactionIndex {
        &self.aborted_txns
    }

    /// The aborted transactions with records in `[from, upper)`, what a `read_committed`
    /// fetch from `from` up to `upper` (its LSO) returns with its records.
    pub fn aborted_between(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        self.aborted_txns.collect_aborted_txns(from, upper)
    }

    /// Forgets everything (before a rebuild).
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing_txns.clear();
        self.unreplicated_txns.clear();
        self.aborted_txns.clear();
    }
}

/// `sequence + n`, wrapping past `i32::MAX` to 0 as Kafka's sequences do.
fn add_sequence(sequence: i32, n: i32) -> i32 {
    ((sequence as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn append(s: &mut ProducerStateManager, pid: i64, epoch: i16, seq: i32, n: u64, at: u64) {
        s.record_batch(&data(pid, epoch, seq, n, at, false));
    }

    fn data(pid: i64, epoch: i16, seq: i32, n: u64, at: u64, txn: bool) -> AppendedBatch {
        AppendedBatch {
            producer_id: ProducerId(pid),
            producer_epoch: epoch,
            base_sequence: seq,
            first_offset: Offset(at),
            last_offset: Offset(at + n - 1),
            is_transactional: txn,
            marker: None,
        }
    }

    fn marker(
        pid: i64,
        epoch: i16,
        at: u64,
        kind: ControlRecordType,
        coordinator_epoch: i32,
    ) -> AppendedBatch {
        AppendedBatch {
            producer_id: ProducerId(pid),
            producer_epoch: epoch,
            base_sequence: -1,
            first_offset: Offset(at),
            last_offset: Offset(at),
            is_transactional: true,
            marker: Some(ControlRecord {
                kind,
                coordinator_epoch,
            }),
        }
    }

    const COMMIT: ControlRecordType = ControlRecordType::Commit;
    const ABORT: ControlRecordType = ControlRecordType::Abort;

    /// A log of batches, appended at dense offsets from 0, as the tests' source of truth:
    /// what a replica would scan to rebuild its producer state.
    #[derive(Default)]
    struct ModelLog {
        batches: Vec<AppendedBatch>,
        state: ProducerStateManager,
        hw: Offset,
        sequences: BTreeMap<i64, i32>,
    }

    impl ModelLog {
        fn leo(&self) -> Offset {
            self.batches
                .last()
                .map_or(Offset(0), |b| b.last_offset.plus(1))
        }

        /// Appends `n` records of producer `pid` (epoch 0, its next sequence).
        fn data(&mut self, pid: i64, n: u64, txn: bool) -> Offset {
            let at = self.leo().0;
            let seq = self.sequences.entry(pid).or_insert(0);
            let batch = data(pid, 0, *seq, n, at, txn);
            *seq += n as i32;
            self.append(batch);
            batch.first_offset
        }

        fn marker(
            &mut self,
            pid: i64,
            kind: ControlRecordType,
            coordinator_epoch: i32,
        ) -> Option<CompletedTxn> {
            let batch = marker(pid, 0, self.leo().0, kind, coordinator_epoch);
            self.append(batch)
        }

        fn append(&mut self, batch: AppendedBatch) -> Option<CompletedTxn> {
            self.batches.push(batch);
            self.state.record_batch(&batch)
        }

        fn set_hw(&mut self, hw: u64) {
            self.hw = Offset(hw).min(self.leo());
            self.state.on_high_watermark(self.hw);
        }

        /// Cuts the log to `offset` (a batch boundary at or below it) and rebuilds, as the
        /// replica does.
        fn truncate_to(&mut self, offset: u64) {
            self.batches.retain(|b| b.last_offset.0 < offset);
            self.hw = self.hw.min(self.leo());
            self.sequences.clear();
            for b in &self.batches {
                if b.marker.is_none() {
                    self.sequences.insert(
                        b.producer_id.0,
                        b.base_sequence + b.last_offset.since(b.first_offset) as i32 + 1,
                    );
                }
            }
            self.state = self.rebuilt();
        }

        /// The state a scan of the whole log gives, with the HW applied.
        fn rebuilt(&self) -> ProducerStateManager {
            let mut state = ProducerStateManager::new();
            for b in &self.batches {
                state.record_batch(b);
            }
            state.on_high_watermark(self.hw);
            state
        }

        fn lso(&self) -> Offset {
            self.state.last_stable_offset(self.hw)
        }
    }

    #[test]
    fn only_the_next_sequence_is_appended() {
        let mut s = ProducerStateManager::new();
        assert_eq!(s.check(ProducerId(7), 0, 0, 2), Ok(SequenceCheck::Append));
        append(&mut s, 7, 0, 0, 2, 10);
        assert_eq!(s.check(ProducerId(7), 0, 2, 3), Ok(SequenceCheck::Append));
        assert_eq!(
            s.check(ProducerId(7), 0, 3, 1),
            Err(KafkaError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            s.check(ProducerId(7), 0, 1, 1),
            Err(KafkaError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            s.check(ProducerId::NONE, -1, -1, 4),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn a_retry_of_one_of_the_last_five_batches_is_a_duplicate() {
        let mut s = ProducerStateManager::new();
        for i in 0..7u64 {
            append(&mut s, 7, 0, i as i32, 1, 100 + i);
        }
        assert_eq!(s.entry(ProducerId(7)).unwrap().batches.len(), DEDUP_WINDOW);
        match s.check(ProducerId(7), 0, 2, 1) {
            Ok(SequenceCheck::Duplicate(b)) => assert_eq!(b.first_offset, Offset(102)),
            other => panic!("{other:?}"),
        }
        // Too old to remember: out of order.
        assert_eq!(
            s.check(ProducerId(7), 0, 1, 1),
            Err(KafkaError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn epochs_fence_and_reset_sequences() {
        let mut s = ProducerStateManager::new();
        append(&mut s, 7, 2, 0, 3, 0);
        assert_eq!(
            s.check(ProducerId(7), 1, 3, 1),
            Err(KafkaError::InvalidProducerEpoch)
        );
        assert_eq!(s.check(ProducerId(7), 3, 0, 1), Ok(SequenceCheck::Append));
        assert_eq!(
            s.check(ProducerId(7), 3, 5, 1),
            Err(KafkaError::OutOfOrderSequenceNumber)
        );
        append(&mut s, 7, 3, 0, 1, 3);
        assert_eq!(s.entry(ProducerId(7)).unwrap().batches.len(), 1);
        // An unknown producer (its batches may be gone with retention) starts anywhere.
        assert_eq!(s.check(ProducerId(8), 0, 41, 1), Ok(SequenceCheck::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStateManager::new();
        append(&mut s, 7, 0, i32::MAX - 1, 2, 0);
        assert_eq!(
            s.entry(ProducerId(7)).unwrap().batches[0].last_sequence,
            i32::MAX
        );
        assert_eq!(s.check(ProducerId(7), 0, 0, 1), Ok(SequenceCheck::Append));
    }

    #[test]
    fn a_transactional_batch_opens_a_transaction_at_its_base_offset() {
        let mut log = ModelLog::default();
        log.data(1, 2, false);
        let first = log.data(2, 3, true);
        log.data(2, 1, true);
        assert_eq!(first, Offset(2));
        let entry = log.state.entry(ProducerId(2)).unwrap();
        assert_eq!(
            entry.current_txn_first_offset,
            Some(Offset(2)),
            "opened once"
        );
        assert_eq!(
            log.state.ongoing_txns().collect::<Vec<_>>(),
            [(Offset(2), ProducerId(2))]
        );
        assert_eq!(log.state.first_undecided_offset(), Some(Offset(2)));
        assert_eq!(
            log.state
                .entry(ProducerId(1))
                .unwrap()
                .current_txn_first_offset,
            None
        );
    }

    #[test]
    fn a_non_transactional_batch_inside_an_open_transaction_is_invalid_txn_state() {
        let mut log = ModelLog::default();
        log.data(2, 1, true);
        assert_eq!(
            log.state.check_txn_state(ProducerId(2), false),
            Err(KafkaError::InvalidTxnState)
        );
        assert_eq!(log.state.check_txn_state(ProducerId(2), true), Ok(()));
        assert_eq!(log.state.check_txn_state(ProducerId(3), false), Ok(()));
        assert_eq!(log.state.check_txn_state(ProducerId::NONE, false), Ok(()));
        log.marker(2, COMMIT, 0);
        assert_eq!(log.state.check_txn_state(ProducerId(2), false), Ok(()));
    }

    #[test]
    fn an_open_transaction_holds_the_lso_down() {
        let mut log = ModelLog::default();
        log.data(1, 3, false);
        log.data(2, 2, true);
        log.data(1, 3, false);
        log.set_hw(8);
        assert_eq!(log.hw, Offset(8));
        assert_eq!(
            log.lso(),
            Offset(3),
            "the LSO stops at the open transaction"
        );
        // A transaction that starts at or above the HW leaves the LSO at the HW.
        let mut above = ModelLog::default();
        above.data(1, 3, false);
        above.data(2, 1, true);
        above.set_hw(2);
        assert_eq!(above.lso(), Offset(2));
        // No transactions: the LSO is the HW.
        let mut plain = ModelLog::default();
        plain.data(1, 4, false);
        plain.set_hw(3);
        assert_eq!(plain.lso(), Offset(3));
        assert_eq!(plain.state.first_unstable_offset(), None);
    }

    #[test]
    fn a_commit_marker_releases_the_lso_once_the_hw_passes_it() {
        let mut log = ModelLog::default();
        log.data(2, 2, true); // 0..=1
        log.data(1, 2, false); // 2..=3
        let completed = log.marker(2, COMMIT, 5).expect("closes the transaction"); // 4
        assert_eq!(
            completed,
            CompletedTxn {
                producer_id: ProducerId(2),
                first_offset: Offset(0),
                last_offset: Offset(4),
                is_aborted: false
            }
        );
        assert_eq!(log.state.first_undecided_offset(), None);
        log.set_hw(4);
        assert_eq!(log.lso(), Offset(0), "the marker is not replicated yet");
        assert_eq!(log.state.unreplicated_txns().count(), 1);
        log.set_hw(5);
        assert_eq!(log.lso(), Offset(5), "the HW passed the marker");
        assert_eq!(log.state.unreplicated_txns().count(), 0);
        assert!(
            log.state.aborted_txns().is_empty(),
            "a commit is not indexed"
        );
        assert_eq!(log.state.entry(ProducerId(2)).unwrap().coordinator_epoch, 5);
    }

    #[test]
    fn an_abort_is_indexed_with_the_lso_at_its_marker_and_found_by_fetches() {
        let mut log = ModelLog::default();
        log.data(1, 2, true); // txn of 1: 0..=1
        log.data(2, 2, true); // txn of 2: 2..=3
        log.marker(1, ABORT, 0); // 4: aborts 1's; 2's is still open
        log.data(2, 1, true); // 5
        log.marker(2, ABORT, 0); // 6: nothing else open
        log.data(3, 1, true); // txn of 3: 7
        log.marker(3, COMMIT, 0); // 8
        let entries = log.state.aborted_txns().entries().to_vec();
        assert_eq!(
            entries,
            [
                AbortedTxn {
                    producer_id: ProducerId(1),
                    first_offset: Offset(0),
                    last_offset: Offset(4),
                    last_stable_offset: Offset(2),
                },
                AbortedTxn {
                    producer_id: ProducerId(2),
                    first_offset: Offset(2),
                    last_offset: Offset(6),
                    last_stable_offset: Offset(7),
                },
            ]
        );
        assert_eq!(log.state.aborted_between(Offset(0), Offset(9)), entries);
        assert_eq!(
            log.state.aborted_between(Offset(5), Offset(9)),
            entries[1..]
        );
        assert_eq!(
            log.state.aborted_between(Offset(0), Offset(2)),
            entries[..1]
        );
        assert!(log.state.aborted_between(Offset(7), Offset(9)).is_empty());
        log.set_hw(9);
        assert_eq!(log.lso(), Offset(9));
    }

    #[test]
    fn a_marker_without_an_open_transaction_is_a_retry_that_closes_nothing() {
        let mut log = ModelLog::default();
        log.data(2, 1, true);
        assert!(log.marker(2, ABORT, 1).is_some());
        assert_eq!(
            log.state.check_marker(
                ProducerId(2),
                0,
                &ControlRecord {
                    kind: ABORT,
                    coordinator_epoch: 1
                }
            ),
            Ok(())
        );
        assert_eq!(log.marker(2, ABORT, 1), None, "the retry closes nothing");
        assert_eq!(log.state.aborted_txns().len(), 1, "and indexes nothing");
        // A marker for a producer never seen here: accepted, nothing to close.
        assert_eq!(
            log.state.check_marker(
                ProducerId(9),
                0,
                &ControlRecord {
                    kind: COMMIT,
                    coordinator_epoch: 0
                }
            ),
            Ok(())
        );
        assert_eq!(log.marker(9, COMMIT, 0), None);
        assert_eq!(log.state.entry(ProducerId(9)).unwrap().coordinator_epoch, 0);
        log.set_hw(log.leo().0);
        assert_eq!(log.lso(), log.leo());
    }

    #[test]
    fn a_marker_from_an_older_coordinator_epoch_is_fenced() {
        let mut log = ModelLog::default();
        log.data(2, 1, true);
        log.marker(2, COMMIT, 3);
        log.data(2, 1, true);
        let stale = ControlRecord {
            kind: ABORT,
            coordinator_epoch: 2,
        };
        assert_eq!(
            log.state.check_marker(ProducerId(2), 0, &stale),
            Err(KafkaError::TransactionCoordinatorFenced)
        );
        let same = ControlRecord {
            kind: ABORT,
            coordinator_epoch: 3,
        };
        assert_eq!(log.state.check_marker(ProducerId(2), 0, &same), Ok(()));
        let newer = ControlRecord {
            kind: ABORT,
            coordinator_epoch: 4,
        };
        assert_eq!(log.state.check_marker(ProducerId(2), 0, &newer), Ok(()));
        // The producer epoch is checked first.
        let mut bumped = ModelLog::default();
        bumped.append(marker(2, 4, 0, ABORT, 0));
        assert_eq!(
            bumped.state.check_marker(ProducerId(2), 3, &newer),
            Err(KafkaError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn a_marker_that_bumps_the_epoch_restarts_sequences_at_zero() {
        let mut s = ProducerStateManager::new();
        s.record_batch(&data(2, 0, 0, 3, 0, true));
        s.record_batch(&marker(2, 1, 3, ABORT, 0));
        let entry = s.entry(ProducerId(2)).unwrap();
        assert_eq!((entry.producer_epoch, entry.batches.len()), (1, 0));
        assert_eq!(
            s.check(ProducerId(2), 1, 3, 1),
            Err(KafkaError::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(ProducerId(2), 1, 0, 1), Ok(SequenceCheck::Append));
        assert_eq!(
            s.check(ProducerId(2), 0, 3, 1),
            Err(KafkaError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn truncation_below_a_marker_reopens_the_transaction_and_drops_its_index_entry() {
        let mut log = ModelLog::default();
        log.data(1, 2, true); // 0..=1
        log.data(2, 1, false); // 2
        log.marker(1, ABORT, 0); // 3
        log.set_hw(3);
        assert_eq!(log.state.aborted_txns().len(), 1);
        let mut index = log.state.aborted_txns().clone();
        log.truncate_to(3);
        assert_eq!(
            log.state.ongoing_txns().collect::<Vec<_>>(),
            [(Offset(0), ProducerId(1))]
        );
        assert_eq!(
            log.state
                .entry(ProducerId(1))
                .unwrap()
                .current_txn_first_offset,
            Some(Offset(0))
        );
        assert!(log.state.aborted_txns().is_empty());
        index.truncate_to(Offset(3));
        assert_eq!(
            &index,
            log.state.aborted_txns(),
            "the index alone truncates alike"
        );
        assert_eq!(log.lso(), Offset(0), "the transaction holds the LSO again");
        // Cut inside the transaction: it is gone.
        log.truncate_to(1);
        assert_eq!(log.state.ongoing_txns().count(), 0);
        assert_eq!(log.lso(), Offset(0));
    }

    #[test]
    fn a_rebuild_from_the_log_equals_the_incremental_state() {
        let mut log = ModelLog::default();
        log.data(1, 2, true);
        log.data(2, 1, false);
        log.data(3, 1, true);
        log.marker(1, ABORT, 1);
        log.set_hw(3);
        log.data(1, 1, true);
        log.marker(3, COMMIT, 1);
        log.marker(9, COMMIT, 1);
        log.set_hw(6);
        assert_eq!(log.state, log.rebuilt());
        assert_eq!(log.state.aborted_txns().len(), 1);
        assert_eq!(log.state.ongoing_txns().count(), 1);
    }

    /// One step of a random history: what a replica sees.
    #[derive(Clone, Debug)]
    enum Step {
        Data {
            pid: i64,
            records: u64,
            txn: bool,
        },
        Marker {
            pid: i64,
            commit: bool,
            coordinator_epoch: i32,
        },
        Hw(u64),
        Truncate(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1i64..4, 1u64..4, any::<bool>())
                .prop_map(|(pid, records, txn)| Step::Data { pid, records, txn }),
            2 => (1i64..4, any::<bool>(), 0i32..3)
                .prop_map(|(pid, commit, coordinator_epoch)| Step::Marker { pid, commit, coordinator_epoch }),
            2 => (0u64..40).prop_map(Step::Hw),
            1 => (0u64..40).prop_map(Step::Truncate),
        ]
    }

    /// An aborted transaction as (producer, first offset, marker offset, LSO at the marker).
    type Aborted = (i64, u64, u64, u64);

    /// The LSO and aborted transactions read straight off the log, by another route: each
    /// transaction is a producer's run of transactional batches up to its next marker.
    fn oracle(log: &ModelLog) -> (Offset, Vec<Aborted>) {
        let mut open: BTreeMap<i64, u64> = BTreeMap::new();
        let mut unstable: Vec<u64> = Vec::new();
        let mut aborted = Vec::new();
        for b in &log.batches {
            let pid = b.producer_id.0;
            match b.marker {
                None if b.is_transactional => {
                    open.entry(pid).or_insert(b.first_offset.0);
                }
                None => {}
                Some(m) => {
                    if let Some(first) = open.remove(&pid) {
                        if b.last_offset >= log.hw {
                            unstable.push(first);
                        }
                        if m.kind == ABORT {
                            let others = open.values().min().copied();
                            let lso = others.unwrap_or(b.last_offset.0 + 1);
                            aborted.push((pid, first, b.last_offset.0, lso));
                        }
                    }
                }
            }
        }
        let first = open.values().chain(&unstable).min().copied();
        let lso = match first {
            Some(f) if Offset(f) < log.hw => Offset(f),
            _ => log.hw,
        };
        (lso, aborted)
    }

    proptest! {
        #[test]
        fn incremental_state_equals_the_state_rebuilt_from_the_log(
            steps in proptest::collection::vec(step(), 1..60)
        ) {
            let mut log = ModelLog::default();
            for step in steps {
                match step {
                    Step::Data { pid, records, txn } => {
                        // The leader refuses what a log never holds.
                        if log.state.check_txn_state(ProducerId(pid), txn).is_ok() {
                            log.data(pid, records, txn);
                        }
                    }
                    Step::Marker { pid, commit, coordinator_epoch } => {
                        let kind = if commit { COMMIT } else { ABORT };
                        let m = ControlRecord { kind, coordinator_epoch };
                        if log.state.check_marker(ProducerId(pid), 0, &m).is_ok() {
                            log.marker(pid, kind, coordinator_epoch);
                        }
                    }
                    Step::Hw(hw) => {
                        let hw = log.hw.0.max(hw);
                        log.set_hw(hw);
                    }
                    Step::Truncate(to) => {
                        let before = log.state.aborted_txns().clone();
                        log.truncate_to(to);
                        let mut cut = before;
                        cut.truncate_to(log.leo());
                        prop_assert_eq!(&cut, log.state.aborted_txns());
                    }
                }
                prop_assert_eq!(&log.state, &log.rebuilt());
                let (lso, aborted) = oracle(&log);
                prop_assert_eq!(log.lso(), lso);
                prop_assert!(lso <= log.hw);
                let indexed: Vec<Aborted> = log
                    .state
                    .aborted_txns()
                    .entries()
                    .iter()
                    .map(|t| {
                        let (first, last) = (t.first_offset.0, t.last_offset.0);
                        (t.producer_id.0, first, last, t.last_stable_offset.0)
                    })
                    .collect();
                prop_assert_eq!(&indexed, &aborted);
                // A fetch's aborted list: exactly the aborted transactions overlapping it.
                let leo = log.leo().0;
                for from in 0..=leo {
                    let got: Vec<Aborted> = log
                        .state
                        .aborted_between(Offset(from), lso)
                        .iter()
                        .map(|t| {
                            let (first, last) = (t.first_offset.0, t.last_offset.0);
                            (t.producer_id.0, first, last, t.last_stable_offset.0)
                        })
                        .collect();
                    let want: Vec<Aborted> = aborted
                        .iter()
                        .filter(|(_, first, last, _)| *last >= from && Offset(*first) < lso)
                        .copied()
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
