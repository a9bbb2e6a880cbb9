//! The transaction checks of what `read_committed` consumers read, against the final log
//! of each partition (`check::kafka`), which tells every transactional record's fate: the
//! first COMMIT or ABORT marker of its producer after it, or none (`FinalLog::txn_fate`).
//!
//! Owns: `aborted-read` (Jepsen's G1a), `read-uncommitted` and `torn-transaction`.
//!
//! The history names each transaction's records and how it ended (`crate::history`): a
//! transactional producer's `Send`s between its `TxnBegin` and its `TxnEnd`; the
//! transaction committed (or aborted) when a `TxnEndReturn` without error answers the
//! `TxnEnd` that asked for it; otherwise its end is unknown.
//!
//! # Rules
//!
//! - `aborted-read`: a consumer with `isolation.level = read_committed` polled a record
//!   whose transaction the history aborts, or the final log aborts.
//! - `read-uncommitted`: such a consumer polled a record whose transaction the final log
//!   never completes: it read above the last stable offset, which never passed it.
//! - `torn-transaction`: a transaction the history commits has some records committed in
//!   the final logs and others not (absent, or in an aborted or open transaction there).
//!
//! A record the final log does not hold at the offset polled is judged by `phantom-read`
//! and `inconsistent-offsets`, not here; a record outside any transaction is always
//! readable.

use super::final_log::TxnFate;
use super::kafka::{Facts, PartId};
use super::toolkit::{seconds, Findings, FxMap};
use super::Violation;
use crate::history::{HistoryEntry, Op};
use std::collections::{BTreeMap, BTreeSet};

/// One transaction of the history.
struct Txn<'a> {
    node: &'a str,
    /// When it began.
    begun_us: u64,
    values: Vec<&'a str>,
    /// Committed (`Some(true)`), aborted (`Some(false)`), or unknown.
    outcome: Option<bool>,
}

/// Every transaction of the history, in the order they began.
fn history_txns(history: &[HistoryEntry]) -> Vec<Txn<'_>> {
    let mut txns: Vec<Txn<'_>> = Vec::new();
    // Per producer node: its open transaction and the end it asked for.
    let mut open: BTreeMap<&str, (usize, Option<bool>)> = BTreeMap::new();
    for entry in history {
        let node = entry.node.as_str();
        match &entry.op {
            Op::ClientStart { .. } => {
                open.remove(node);
            }
            Op::TxnBegin { .. } => {
                open.insert(node, (txns.len(), None));
                txns.push(Txn {
                    node,
                    begun_us: entry.at_us,
                    values: Vec::new(),
                    outcome: None,
                });
            }
            Op::Send { value, .. } => {
                if let Some((i, None)) = open.get(node) {
                    txns[*i].values.push(value.as_str());
                }
            }
            Op::TxnEnd { commit } => {
                if let Some((_, asked)) = open.get_mut(node) {
                    *asked = Some(*commit);
                }
            }
            Op::TxnEndReturn { error } => match (open.get(node).copied(), error) {
                (Some((i, Some(commit))), None) => {
                    txns[i].outcome = Some(commit);
                    open.remove(node);
                }
                // A failed end the producer follows with an abort of its own.
                (Some((i, Some(_))), Some(_)) => {
                    open.insert(node, (i, None));
                }
                // A fatal error without an end asked: the transaction's fate is unknown.
                _ => {
                    open.remove(node);
                }
            },
            _ => {}
        }
    }
    txns
}

/// The values of every transaction the history commits (the producer was told so).
pub(super) fn committed_txn_values(history: &[HistoryEntry]) -> FxMap<&str, ()> {
    let mut out = FxMap::default();
    for t in history_txns(history) {
        if t.outcome == Some(true) {
            for v in t.values {
                out.insert(v, ());
            }
        }
    }
    out
}

impl Facts<'_> {
    /// Whether the final log of `part` holds `value` where `read_committed` readers see
    /// it: outside any transaction, or in one its marker commits.
    pub(super) fn visibly_held(&self, part: PartId, value: super::kafka::ValueId) -> bool {
        self.held(value).iter().any(|&(p, offset)| {
            p == part
                && self.reference_of(part).is_some_and(|r| {
                    r.value_at(offset) == Some(value)
                        && matches!(r.log.txn_fate(offset), Some(TxnFate::Committed) | None)
                })
        })
    }

    /// `torn-transaction`.
    pub fn torn_transaction(&self) -> Vec<Violation> {
        let txns = history_txns(self.history());
        let mut committed: FxMap<&str, usize> = FxMap::default();
        for (i, t) in txns.iter().enumerate() {
            if t.outcome == Some(true) {
                for v in &t.values {
                    committed.insert(v, i);
                }
            }
        }
        if committed.is_empty() {
            return Vec::new();
        }
        // Per committed transaction: its records committed in the final logs, and not.
        let mut visible = vec![0usize; txns.len()];
        let mut seen: FxMap<&str, bool> = FxMap::default();
        for value in 0..self.value_count() {
            let value = value as super::kafka::ValueId;
            let text = self.value(value);
            if !committed.contains_key(text) {
                continue;
            }
            let is_visible = self.held(value).iter().any(|&(part, offset)| {
                self.reference_of(part).is_some_and(|r| {
                    r.value_at(offset) == Some(value)
                        && matches!(r.log.txn_fate(offset), Some(TxnFate::Committed) | None)
                })
            });
            seen.insert(text, is_visible);
        }
        for (text, i) in &committed {
            if seen.get(text).copied().unwrap_or(false) {
                visible[*i] += 1;
            }
        }
        let mut findings = Findings::new(
            "torn-transaction",
            None,
            "committed transactions with only some records committed in the final logs".into(),
        );
        for (i, t) in txns.iter().enumerate() {
            let shown = visible[i];
            if t.outcome != Some(true) || shown == 0 || shown == t.values.len() {
                continue;
            }
            let missing: Vec<&str> = t
                .values
                .iter()
                .copied()
                .filter(|v| !seen.get(v).copied().unwrap_or(false))
                .take(3)
                .collect();
            findings.add(
                t.begun_us,
                format!(
                    "{}'s transaction begun at {}: {shown} of {} records committed, not {}",
                    t.node,
                    seconds(t.begun_us),
                    t.values.len(),
                    missing.join(", ")
                ),
            );
        }
        findings.into_violation().into_iter().collect()
    }

    /// The transactions half of `converges`: once the run is drained, every transaction in
    /// a final log is completed by its marker, so the last stable offset is the log end
    /// (a transaction left open holds every `read_committed` reader of the partition back
    /// for good: Kafka's hanging transaction, KAFKA-14402).
    pub fn open_transactions(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (_, tp, r) in self.references() {
            let lso = r.log.last_stable_offset();
            if lso >= r.log.log_end {
                continue;
            }
            let batch = r
                .log
                .txn_batch(lso)
                .map_or(String::new(), |b| format!(" (producer {})", b.producer_id));
            out.push(Violation {
                check: "converges".into(),
                detail: format!(
                    "{tp}: a transaction{batch} is still open at offset {lso}, so the last \
                     stable offset stays below the log end {} ({})",
                    r.log.log_end,
                    r.describe()
                ),
                at_ms: Some(self.stop_us / 1000),
                partition: Some(tp.to_string()),
                node: None,
            });
        }
        out
    }

    /// `aborted-read` and `read-uncommitted`, over the polls of `read_committed` nodes.
    pub fn committed_reads(&self, read_committed: &BTreeSet<&str>) -> [Vec<Violation>; 2] {
        let txns = history_txns(self.history());
        let aborted_by_history: FxMap<&str, ()> = txns
            .iter()
            .filter(|t| t.outcome == Some(false))
            .flat_map(|t| t.values.iter().map(|v| (*v, ())))
            .collect();
        let mut aborted: BTreeMap<PartId, Findings> = BTreeMap::new();
        let mut open: BTreeMap<PartId, Findings> = BTreeMap::new();
        for poll in &self.polls {
            if !read_committed.contains(poll.entry.node.as_str()) {
                continue;
            }
            let Some(reference) = self.reference_of(poll.part) else {
                continue;
            };
            let fate = if aborted_by_history.contains_key(self.value(poll.value)) {
                Some(TxnFate::Aborted)
            } else if reference.value_at(poll.offset) != Some(poll.value) {
                continue;
            } else {
                reference.log.txn_fate(poll.offset)
            };
            let (findings, check, what) = match fate {
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
    fn a_transaction_left_open_in_a_final_log_does_not_converge() {
        // orders/0 ends with producer 9's transaction open at 6: the LSO stays at 6.
        let logs = logs();
        let facts = Facts::new(&[], &[], &logs);
        let found = facts.open_transactions();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "converges");
        assert!(
            found[0].detail.contains("producer 9") && found[0].detail.contains("offset 6"),
            "{}",
            found[0].detail
        );
        // Its marker written, nothing is open.
        let mut logs = logs;
        let log = logs
            .get_mut(&TopicPartition::new("orders", 0))
            .and_then(|r| r.get_mut("broker-1"))
            .expect("the fixture's log");
        log.push_marker(TxnMarker {
            offset: 7,
            producer_id: 9,
            producer_epoch: 0,
            commit: true,
            coordinator_epoch: 1,
        });
        log.log_end = 8;
        let facts = Facts::new(&[], &[], &logs);
        assert!(facts.open_transactions().is_empty());
    }

    #[test]
    fn a_record_of_a_transaction_never_completed_is_a_read_uncommitted() {
        let history = [poll(1, "consumer-1", &[(6, "c-1-0")])];
        let [aborted, open] = check(&history, &["consumer-1"]);
        assert!(aborted.is_empty());
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].check, "read-uncommitted");
    }

    fn at(at_ms: u64, node: &str, op: Op) -> HistoryEntry {
        HistoryEntry {
            at_us: at_ms * 1000,
            node: NodeName::new(node),
            op,
        }
    }

    fn send(at_ms: u64, node: &str, value: &str) -> HistoryEntry {
        at(
            at_ms,
            node,
            Op::Send {
                value: value.into(),
                key: None,
                topic: crate::broker::topic::Topic::new("orders"),
                acks: crate::broker::Acks::All,
                idempotent: true,
            },
        )
    }

    /// A transaction of `node` with `values`, ended as `commit` asks, answered `ok`.
    fn txn(node: &str, from_ms: u64, values: &[&str], commit: bool) -> Vec<HistoryEntry> {
        let mut out = vec![at(
            from_ms,
            node,
            Op::TxnBegin {
                transactional_id: "t".into(),
                producer: crate::broker::ProducerIdentity {
                    producer_id: crate::log::ProducerId(7),
                    producer_epoch: 0,
                },
            },
        )];
        for v in values {
            out.push(send(from_ms, node, v));
        }
        out.push(at(from_ms + 1, node, Op::TxnEnd { commit }));
        out.push(at(from_ms + 2, node, Op::TxnEndReturn { error: None }));
        out
    }

    /// Jepsen's G1a from the history: a value of a transaction the producer aborted, read
    /// committed, though the final log (here) shows it committed.
    #[test]
    fn a_value_of_a_transaction_the_history_aborts_read_committed_is_an_aborted_read() {
        let mut history = txn("producer-1", 0, &["b-1-0"], false);
        history.push(poll(10, "consumer-1", &[(4, "b-1-0")]));
        let [aborted, _] = check(&history, &["consumer-1"]);
        assert_eq!(aborted.len(), 1, "{aborted:?}");
        let mut history = txn("producer-1", 0, &["b-1-0"], true);
        history.push(poll(10, "consumer-1", &[(4, "b-1-0")]));
        let [aborted, _] = check(&history, &["consumer-1"]);
        assert!(aborted.is_empty(), "{aborted:?}");
    }

    /// A committed transaction of three records: one committed in the log, one aborted
    /// there, one missing.
    #[test]
    fn a_committed_transaction_partly_committed_in_the_log_is_torn() {
        let logs = logs();
        let torn = |history: &[HistoryEntry]| Facts::new(&[], history, &logs).torn_transaction();
        let history = txn("producer-1", 0, &["b-1-0", "a-1-0", "z-1-0"], true);
        let found = torn(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "torn-transaction");
        assert!(
            found[0]
                .detail
                .contains("1 of 3 records committed, not a-1-0, z-1-0"),
            "{}",
            found[0].detail
        );
        // Wholly committed, or aborted as asked, or of unknown end: not torn.
        assert!(torn(&txn("producer-1", 0, &["b-1-0", "p-1-0"], true)).is_empty());
        assert!(torn(&txn("producer-1", 0, &["b-1-0", "a-1-0"], false)).is_empty());
        let mut unknown = txn("producer-1", 0, &["b-1-0", "a-1-0"], true);
        unknown.pop();
        assert!(torn(&unknown).is_empty());
    }

    /// Jepsen's lost write of a committed transaction: the producer was told its
    /// transaction committed, and the log holds the records only as aborted.
    #[test]
    fn a_committed_transactions_records_held_as_aborted_are_lost_writes() {
        use crate::check::test_support::ok;
        let logs = logs();
        let lost = |history: &[HistoryEntry]| Facts::new(&[], history, &logs).lost_write();
        let acked = |commit: bool, values: &[(&str, u64)]| {
            let names: Vec<&str> = values.iter().map(|(v, _)| *v).collect();
            let mut history = txn("producer-1", 0, &names, commit);
            for (v, offset) in values {
                history.push(ok(5_000, v, 0, *offset));
            }
            history
        };
        let found = lost(&acked(true, &[("a-1-0", 1), ("a-1-1", 2)]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "lost-write");
        assert!(
            found[0]
                .detail
                .contains("committed transactions held only as aborted")
                && found[0].detail.contains("a-1-0")
                && found[0].detail.contains("a-1-1"),
            "{}",
            found[0].detail
        );
        // The transaction its producer aborted, a committed one the log commits, and one
        // whose end is unknown lose nothing.
        assert!(lost(&acked(false, &[("a-1-0", 1), ("a-1-1", 2)])).is_empty());
        assert!(lost(&acked(true, &[("b-1-0", 4)])).is_empty());
        let mut unknown = acked(true, &[("a-1-0", 1)]);
        unknown.retain(|e| !matches!(e.op, Op::TxnEndReturn { .. }));
        assert!(lost(&unknown).is_empty());
    }

    #[test]
    fn a_record_not_in_the_final_log_at_its_offset_is_left_to_other_checks() {
        let history = [poll(1, "consumer-1", &[(2, "x-1-0")])];
        let [aborted, open] = check(&history, &["consumer-1"]);
        assert!(aborted.is_empty() && open.is_empty());
    }
}
