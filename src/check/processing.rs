//! Exactly-once processing: what processors (`[[processor]]`, consume-transform-produce)
//! wrote, against the final logs of their output topics.
//!
//! Owns: the processor half of `duplicate` ([`Facts::processed_twice`]). A processor writes
//! one output record per input record it processes, keyed by the input's place
//! (`<topic>/<partition>@<offset>`, `history::input_key`), in a transaction that also commits
//! the group's offsets past that input. With exactly-once, each input record reaches the
//! committed output once: a rewind after an abort or a failover processes it again, but
//! the earlier output was aborted with its transaction.
//!
//! # Rule
//!
//! - `duplicate`: two output records of one input record, written by processors of one
//!   group, are both committed in the final logs (each in a transaction the log's marker
//!   commits, or outside any transaction). Another group reading the same input writes its
//!   own output of it: exactly-once holds per group.
//!   The history names every output record's input (the key of the processor's `Send`);
//!   the final logs say which are committed.

use super::final_log::TxnFate;
use super::kafka::{Facts, ValueId};
use super::toolkit::{Findings, FxMap};
use super::Violation;
use crate::history::{parse_input_key, Op};
use std::collections::BTreeMap;

/// A committed output record: its value, output partition and offset.
type Output = (ValueId, String, u64);

impl Facts<'_> {
    /// The processor half of `duplicate`: input records whose output by the processors of
    /// one group (`processors`: node → group) the final logs commit more than once.
    pub fn processed_twice(&self, processors: &BTreeMap<&str, &str>) -> Vec<Violation> {
        if processors.is_empty() {
            return Vec::new();
        }
        // Output value → the writer's group and the key naming its input.
        let mut inputs: FxMap<&str, (&str, &str)> = FxMap::default();
        for entry in self.history() {
            if let Op::Send {
                value,
                key: Some(key),
                ..
            } = &entry.op
            {
                if let Some(&group) = processors.get(entry.node.as_str()) {
                    inputs.insert(value.as_str(), (group, key.as_str()));
                }
            }
        }
        if inputs.is_empty() {
            return Vec::new();
        }
        // (Group, input) → its committed outputs: (value, output partition, offset).
        let mut outputs: BTreeMap<(&str, &str), Vec<Output>> = BTreeMap::new();
        for value in 0..self.value_count() as ValueId {
            let Some(&input) = inputs.get(self.value(value)) else {
                continue;
            };
            for &(part, offset) in self.held(value) {
                let committed = self.reference_of(part).is_some_and(|r| {
                    r.value_at(offset) == Some(value)
                        && matches!(r.log.txn_fate(offset), Some(TxnFate::Committed) | None)
                });
                if committed {
                    let at = self.part(part).to_string();
                    outputs.entry(input).or_default().push((value, at, offset));
                }
            }
        }
        let mut findings = Findings::new(
            "duplicate",
            None,
            "input records processed into the committed output more than once \
             (exactly-once broken)"
                .into(),
        );
        for ((group, input), out) in &outputs {
            if out.len() < 2 {
                continue;
            }
            let shown: Vec<String> = out
                .iter()
                .take(3)
                .map(|(v, at, offset)| format!("{} at {at}@{offset}", self.value(*v)))
                .collect();
            let valid = parse_input_key(input).is_some();
            findings.add(
                self.stop_us,
                format!(
                    "{input}{} processed by group {group} into {} committed records: {}",
                    if valid { "" } else { " (not an input place)" },
                    out.len(),
                    shown.join(", ")
                ),
            );
        }
        findings.into_violation().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::TopicPartition;
    use crate::check::final_log::{FinalLog, TxnMarker};
    use crate::check::kafka::ReplicaLogs;
    use crate::history::{input_key, HistoryEntry, NodeName};

    /// enriched/0: 0 processor-1's transaction (producer 7), aborted at 1; 2 processor-2's
    /// (producer 8), committed at 3; 4 processor-1's next (producer 9), committed at 5;
    /// 6 processor-2's next (producer 10), never completed; 7 and 8 outside any
    /// transaction.
    fn logs() -> ReplicaLogs {
        let mut log = FinalLog::new(
            0,
            9,
            [
                (0, "e-1-0"),
                (2, "e-2-0"),
                (4, "e-1-1"),
                (6, "e-2-1"),
                (7, "plain-0"),
                (8, "plain-1"),
            ],
        );
        let marker = |offset, producer_id, commit| TxnMarker {
            offset,
            producer_id,
            producer_epoch: 0,
            commit,
            coordinator_epoch: 1,
        };
        log.push_txn_batch(0, 0, 7, 0);
        log.push_marker(marker(1, 7, false));
        log.push_txn_batch(2, 2, 8, 0);
        log.push_marker(marker(3, 8, true));
        log.push_txn_batch(4, 4, 9, 0);
        log.push_marker(marker(5, 9, true));
        log.push_txn_batch(6, 6, 10, 0);
        let mut logs = ReplicaLogs::new();
        logs.entry(TopicPartition::new("enriched", 0))
            .or_default()
            .insert("broker-1".into(), log);
        logs
    }

    /// `node` sends `value` as the output of orders/0 at `input`.
    fn send(at_ms: u64, node: &str, value: &str, input: u64) -> HistoryEntry {
        HistoryEntry {
            at_us: at_ms * 1000,
            node: NodeName::new(node),
            op: Op::Send {
                value: value.into(),
                key: Some(input_key(&TopicPartition::new("orders", 0), input)),
                topic: crate::broker::topic::Topic::new("enriched"),
                acks: crate::broker::Acks::All,
                idempotent: true,
            },
        }
    }

    fn check(history: &[HistoryEntry]) -> Vec<Violation> {
        let logs = logs();
        let facts = Facts::new(&[], history, &logs);
        facts.processed_twice(&BTreeMap::from([
            ("processor-1", "enrich"),
            ("processor-2", "enrich"),
        ]))
    }

    #[test]
    fn an_input_processed_again_after_an_abort_or_into_an_open_transaction_is_no_duplicate() {
        let history = [
            // orders/0@0: first output aborted, the second committed.
            send(1, "processor-1", "e-1-0", 0),
            send(2, "processor-2", "e-2-0", 0),
            // orders/0@1: committed once; again into a transaction never completed.
            send(3, "processor-1", "e-1-1", 1),
            send(4, "processor-2", "e-2-1", 1),
            // A producer's record keyed like an input place is no processor's output.
            send(5, "producer-1", "plain-0", 1),
        ];
        let found = check(&history);
        assert!(found.is_empty(), "{found:?}");
        // Without processors there is nothing to judge.
        let logs = logs();
        let facts = Facts::new(&[], &history, &logs);
        assert!(facts.processed_twice(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn two_committed_outputs_of_one_input_are_a_duplicate() {
        let history = [
            // orders/0@2 reached the committed output through two committed transactions.
            send(1, "processor-2", "e-2-0", 2),
            send(2, "processor-1", "e-1-1", 2),
            // orders/0@3: twice outside any transaction.
            send(3, "processor-1", "plain-0", 3),
            send(4, "processor-2", "plain-1", 3),
            // orders/0@4: aborted and open, neither counts.
            send(5, "processor-1", "e-1-0", 4),
            send(6, "processor-2", "e-2-1", 4),
        ];
        let found = check(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].check, "duplicate");
        let detail = &found[0].detail;
        assert!(detail.starts_with("2 input records"), "{detail}");
        assert!(
            detail.contains("orders/0@2 processed by group enrich into 2 committed records")
                && detail.contains("e-2-0 at enriched/0@2")
                && detail.contains("e-1-1 at enriched/0@4"),
            "{detail}"
        );
        assert!(
            detail.contains("orders/0@3 processed by group enrich into 2 committed records: plain-0 at enriched/0@7, plain-1 at enriched/0@8"),
            "{detail}"
        );
        assert!(!detail.contains("orders/0@4"), "{detail}");
        // Two groups each writing an output of one input is exactly-once per group.
        let logs = logs();
        let facts = Facts::new(&[], &history, &logs);
        let groups = BTreeMap::from([("processor-1", "enrich"), ("processor-2", "rollup")]);
        assert!(facts.processed_twice(&groups).is_empty());
    }
}
