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
