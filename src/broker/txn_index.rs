//! [`TransactionIndex`]: the aborted transactions of one partition replica, in marker order
//! (Kafka's `TransactionIndex`, the `.txnindex` file beside each segment).
//!
//! Owns: one [`AbortedTxn`] per ABORT marker that closed a transaction, appended by
//! [`crate::broker::producer_state::ProducerStateManager`] when it records the marker; the
//! query a `read_committed` fetch makes ([`TransactionIndex::collect_aborted_txns`]: which
//! aborted transactions overlap the offsets it returns, so the consumer can drop their
//! records); and truncation with the log ([`TransactionIndex::truncate_to`]).
//!
//! Invariant (asserted): entries are appended in marker order, so their `last_offset`s
//! strictly grow — a marker is one offset, and the log is appended in order.
//!
//! Simplification vs Kafka: one index per partition kept in memory, not one file per
//! segment. It is part of the producer state, which ksim rebuilds by scanning the log on
//! open, after a truncation and after retention, so it is always a function of the log; an
//! entry whose transaction retention deleted is dropped by that rebuild (Kafka drops it
//! with its segment).

use crate::log::{Offset, ProducerId};

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transaction's producer.
    pub producer_id: ProducerId,
    /// Offset of its first batch on this partition.
    pub first_offset: Offset,
    /// Offset of its ABORT marker.
    pub last_offset: Offset,
    /// The last stable offset when the marker was appended: the first offset of the
    /// earliest other open transaction, else just past the marker. A fetch up to it needs
    /// no later entry (Kafka stops its search there).
    pub last_stable_offset: Offset,
}

/// The aborted transactions of one partition, in marker order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransactionIndex {
    entries: Vec<AbortedTxn>,
}

impl TransactionIndex {
    /// No aborted transactions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the transaction an ABORT marker just closed. Panics if its marker is not
    /// after the last one's: the log is appended in order.
    pub fn append(&mut self, aborted: AbortedTxn) {
        if let Some(last) = self.entries.last() {
            assert!(
                aborted.last_offset > last.last_offset,
                "aborted transaction ending at {} appended after one ending at {}",
                aborted.last_offset,
                last.last_offset
            );
        }
        assert!(
            aborted.first_offset < aborted.last_offset,
            "a transaction's marker follows its first batch"
        );
        self.entries.push(aborted);
    }

    /// Every entry, in marker order.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Number of aborted transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no transaction was aborted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The aborted transactions with records in `[from, upper)`: their marker is at or
    /// after `from` and their first batch before `upper` (Kafka's `collectAbortedTxns`, as
    /// a fetch from `from` bounded by `upper` — the LSO or the HW — asks it). In marker
    /// order. Kafka stops its scan after an entry whose `last_stable_offset` reaches
    /// `upper`; no later entry can start before `upper` then, so filtering them all gives
    /// the same answer.
    pub fn collect_aborted_txns(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        // Markers grow: skip those before `from` without looking at them.
        let start = self.entries.partition_point(|t| t.last_offset < from);
        self.entries[start..]
            .iter()
            .filter(|t| t.first_offset < upper)
            .copied()
            .collect()
    }

    /// Forgets the transactions whose marker is at or after `offset` (the log was cut
    /// there): Kafka's `truncateTo` drops the first such entry and every later one.
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep = self.entries.partition_point(|t| t.last_offset < offset);
        self.entries.truncate(keep);
    }

    /// Forgets everything (before a rebuild).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aborted(pid: i64, first: u64, last: u64, lso: u64) -> AbortedTxn {
        AbortedTxn {
            producer_id: ProducerId(pid),
            first_offset: Offset(first),
            last_offset: Offset(last),
            last_stable_offset: Offset(lso),
        }
    }

    fn index(entries: &[AbortedTxn]) -> TransactionIndex {
        let mut index = TransactionIndex::new();
        for e in entries {
            index.append(*e);
        }
        index
    }

    #[test]
    fn a_fetch_gets_the_aborted_transactions_overlapping_its_range() {
        // Txn A [2, 5], txn B [4, 9] (open while A aborted: A's LSO is 4), txn C [12, 14].
        let a = aborted(1, 2, 5, 4);
        let b = aborted(2, 4, 9, 10);
        let c = aborted(1, 12, 14, 15);
        let index = index(&[a, b, c]);
        let ids = |from: u64, upper: u64| {
            index
                .collect_aborted_txns(Offset(from), Offset(upper))
                .iter()
                .map(|t| t.first_offset.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0, 20), [2, 4, 12]);
        assert_eq!(ids(0, 2), Vec::<u64>::new(), "upper is exclusive");
        assert_eq!(ids(0, 3), [2]);
        assert_eq!(ids(5, 6), [2, 4], "a marker at `from` still overlaps");
        assert_eq!(ids(6, 12), [4]);
        assert_eq!(ids(10, 12), Vec::<u64>::new());
        assert_eq!(ids(10, 13), [12]);
        assert_eq!(ids(15, 30), Vec::<u64>::new());
    }

    #[test]
    fn truncation_drops_the_transactions_whose_marker_was_cut() {
        let mut index = index(&[aborted(1, 2, 5, 6), aborted(2, 4, 9, 10)]);
        index.truncate_to(Offset(10));
        assert_eq!(index.len(), 2);
        index.truncate_to(Offset(9));
        assert_eq!(index.entries(), &[aborted(1, 2, 5, 6)]);
        index.truncate_to(Offset(3));
        assert!(
            index.is_empty(),
            "a cut inside the transaction drops it too"
        );
    }

    #[test]
    #[should_panic(expected = "appended after")]
    fn markers_out_of_order_are_a_broken_invariant() {
        index(&[aborted(1, 2, 5, 6), aborted(2, 3, 5, 6)]);
    }
}
