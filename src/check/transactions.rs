//! The transaction checks of what `read_committed` consumers read, against the final log
//! of each partition (`check::kafka`), which tells every transactional record's fate: the
//! first COMMIT or ABORT marker of its producer after it, or none (`FinalLog::txn_fate`).
//!
//! Owns: `aborted-read` (Jepsen's G1a) and `read-uncommitted`.
//!
//! # Rules
//!
//! - `aborted-read`: a consumer with `isolation.level = read_committed` polled a record
//!   whose transaction the final log aborts.
//! - `read-uncommitted`: such a consumer polled a record whose transaction the final log
//!   never completes: it read above the last stable offset, which never passed it.
//!
//! A record the final log does not hold at the offset polled is judged by `phantom-read`
//! and `inconsistent-offsets`, not here; a record outside any transaction is always
//! readable.

use super::final_log::TxnFate;
use super::kafka::{Facts, PartId};
use super::toolkit::{seconds, Findings};
use super::Violation;
use std::collections::{BTreeMap, BTreeSet};

impl Facts<'_> {
    /// `aborted-read` and `read-uncommitted`, over the polls of `read_committed` nodes.
    pub fn committed_reads(&self, read_committed: &BTreeSet<&str>) -> [Vec<Violation>; 2] {
        let mut aborted: BTreeMap<PartId, Findings> = BTreeMap::new();
        let mut open: BTreeMap<PartId, Findings> = BTreeMap::new();
        for poll in &self.polls {
            if !read_committed.contains(poll.entry.node.as_str()) {
                continue;
            }
            let Some(reference) = self.reference_of(poll.part) else {
                continue;
            };
            if reference.value_at(poll.offset) != Some(poll.value) {
                continue;
            }
            let (findings, check, what) = match reference.log.txn_fate(poll.offset) {
                Some(TxnFate::Aborted) => (
                    &mut aborted,
                    "aborted-read",
                    "records of aborted transactions read by read_committed consumers",
                ),
                Some(TxnFate::Open) => (
                    &mut open,
                    "read-uncommitted",
                    "records of transactions never completed read by read_committed consumers",
                ),
                Some(TxnFate::Committed) | None => continue,
            };
            let entry = poll.entry;
            findings
                .entry(poll.part)
                .or_insert_with(|| {
                    Findings::new(
                        check,
                        Some(self.part(poll.part)),
                        format!("{what} ({})", reference.describe()),
                    )
                })
                .add(
                    entry.at_us,
                    format!(
                        "{} at offset {} polled by {} at {}",
                        self.value(poll.value),
                        poll.offset,
                        entry.node,
                        seconds(entry.at_us)
                    ),
                );
        }
        [aborted, open].map(|findings| {
            findings
                .into_values()
                .filter_map(Findings::into_violation)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::TopicPartition;
    use crate::check::final_log::{FinalLog, TxnMarker};
    use crate::check::kafka::ReplicaLogs;
    use crate::history::{HistoryEntry, NodeName, Op};

    fn poll(at_ms: u64, node: &str, records: &[(u64, &str)]) -> HistoryEntry {
        HistoryEntry {
            at_us: at_ms * 1000,
            node: NodeName::new(node),
            op: Op::Poll {
                partition: TopicPartition::new("orders", 0),
                records: records.iter().map(|(o, v)| (*o, (*v).into())).collect(),
            },
        }
    }

    /// orders/0: 0 plain; 1-2 producer 7's transaction, aborted at 3; 4 producer 8's,
    /// committed at 5; 6 producer 9's, never completed.
    fn logs() -> ReplicaLogs {
        let mut log = FinalLog::new(
            0,
            7,
            [
                (0, "p-1-0"),
                (1, "a-1-0"),
                (2, "a-1-1"),
                (4, "b-1-0"),
                (6, "c-1-0"),
            ],
        );
        let marker = |offset, producer_id, commit| TxnMarker {
            offset,
            producer_id,
            producer_epoch: 0,
            commit,
            coordinator_epoch: 1,
        };
        log.push_txn_batch(1, 2, 7, 0);
        log.push_marker(marker(3, 7, false));
        log.push_txn_batch(4, 4, 8, 0);
        log.push_marker(marker(5, 8, true));
        log.push_txn_batch(6, 6, 9, 0);
        let mut logs = ReplicaLogs::new();
        logs.entry(TopicPartition::new("orders", 0))
            .or_default()
            .insert("broker-1".into(), log);
        logs
    }

    fn check(history: &[HistoryEntry], read_committed: &[&str]) -> [Vec<Violation>; 2] {
        let logs = logs();
        let facts = Facts::new(&[], history, &logs);
        facts.committed_reads(&read_committed.iter().copied().collect())
    }

    #[test]
    fn committed_and_plain_records_may_be_read() {
        let history = [poll(1, "consumer-1", &[(0, "p-1-0"), (4, "b-1-0")])];
        let [aborted, open] = check(&history, &["consumer-1"]);
        assert!(aborted.is_empty() && open.is_empty());
    }

    #[test]
    fn an_aborted_record_read_committed_is_an_aborted_read() {
        let history = [poll(1, "consumer-1", &[(0, "p-1-0"), (2, "a-1-1")])];
        let [aborted, open] = check(&history, &["consumer-1"]);
        assert_eq!(aborted.len(), 1, "{aborted:?}");
        assert_eq!(aborted[0].check, "aborted-read");
        assert!(
            aborted[0].detail.contains("a-1-1 at offset 2"),
            "{}",
            aborted[0].detail
        );
        assert!(open.is_empty());
        // The same poll by a read_uncommitted consumer is no anomaly.
        let [aborted, open] = check(&history, &["consumer-2"]);
        assert!(aborted.is_empty() && open.is_empty());
    }

    #[test]
    fn a_record_of_a_transaction_never_completed_is_a_read_uncommitted() {
        let history = [poll(1, "consumer-1", &[(6, "c-1-0")])];
        let [aborted, open] = check(&history, &["consumer-1"]);
        assert!(aborted.is_empty());
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].check, "read-uncommitted");
    }

    #[test]
    fn a_record_not_in_the_final_log_at_its_offset_is_left_to_other_checks() {
        let history = [poll(1, "consumer-1", &[(2, "x-1-0")])];
        let [aborted, open] = check(&history, &["consumer-1"]);
        assert!(aborted.is_empty() && open.is_empty());
    }
}
