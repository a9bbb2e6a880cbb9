//! [`ProducerStateManager`]: idempotent producers' sequence state for one partition
//! replica (KIP-98), rebuilt from the log's batch headers.
//!
//! Owns: for each producer id, its current epoch and the metadata of its last
//! [`DEDUP_WINDOW`] batches (first/last sequence, first/last offset). The leader checks
//! every idempotent batch against it before appending: the next batch must start at the
//! last sequence + 1 (wrapping at `i32::MAX` to 0); a batch equal to one of the last five
//! is a retry and is answered with where the original went; a gap is
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`; an older producer epoch is `INVALID_PRODUCER_EPOCH`;
//! a newer epoch must start at sequence 0.
//!
//! Invariant: the state is a function of the batches in the log — every replica (leader
//! or follower) feeds each appended batch to [`ProducerStateManager::record`], and after a
//! truncation or on open the replica rebuilds it by scanning the log from the start, so
//! a new leader deduplicates exactly like the old one would have.
//!
//! Simplifications vs Kafka: no producer-state snapshots (the whole log is scanned on open
//! and after truncation), no producer id expiration, no transactions. Like Kafka (since
//! KIP-360), a producer id the replica has no state for is accepted at any sequence: its
//! batches may have been deleted by retention.

use crate::broker::KafkaError;
use crate::log::{Offset, ProducerId};
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

/// One producer's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Its last batches, oldest first, at most [`DEDUP_WINDOW`].
    pub batches: VecDeque<ProducerBatch>,
}

/// What the leader should do with an idempotent batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// It continues the producer's sequence (or starts a new producer/epoch): append it.
    Append,
    /// A retry of a batch already in the log: answer with the original's offsets.
    Duplicate(ProducerBatch),
}

/// The idempotent producers of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<ProducerId, ProducerEntry>,
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
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended batch (leader or follower, and when rebuilding from the log).
    /// A batch without a producer id is ignored.
    pub fn record(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: i16,
        first_sequence: i32,
        first_offset: Offset,
        last_offset: Offset,
    ) {
        if !producer_id.is_some() {
            return;
        }
        let entry = self.producers.entry(producer_id).or_default();
        if producer_epoch != entry.producer_epoch || entry.batches.is_empty() {
            entry.batches.clear();
            entry.producer_epoch = producer_epoch;
        }
        let count = last_offset.since(first_offset) as i32 + 1;
        entry.batches.push_back(ProducerBatch {
            first_sequence,
            last_sequence: add_sequence(first_sequence, count - 1),
            first_offset,
            last_offset,
        });
        if entry.batches.len() > DEDUP_WINDOW {
            entry.batches.pop_front();
        }
    }

    /// Forgets everything (before a rebuild).
    pub fn clear(&mut self) {
        self.producers.clear();
    }
}

/// `sequence + n`, wrapping past `i32::MAX` to 0 as Kafka's sequences do.
fn add_sequence(sequence: i32, n: i32) -> i32 {
    ((sequence as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(s: &mut ProducerStateManager, pid: i64, epoch: i16, seq: i32, n: u64, at: u64) {
        s.record(ProducerId(pid), epoch, seq, Offset(at), Offset(at + n - 1));
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
}
