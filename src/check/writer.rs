//! Checks of the log writers: what each writer was told against what its log holds.
//!
//! - `lost-write`: an acknowledged record is missing from the final log (at or above the
//!   log start offset: retention may delete old segments, which is not a loss).
//! - `inconsistent-offsets`: two reads, or a read and the final log, disagree on the record
//!   at an offset; an acknowledged record sits at another offset than acknowledged; or the
//!   final log's offsets are not dense.

use super::toolkit::{seconds, Findings, FxMap, FxSet};
use super::{read_final_log, CheckInput, FinalLog, Violation};
use crate::history::{Op, WorldEvent};
use crate::scenario::plan::{log_config, writers};
use std::collections::BTreeMap;

/// Every writer's final log, by node name.
pub fn final_logs(input: &CheckInput<'_>) -> BTreeMap<String, FinalLog> {
    writers(input.scenario)
        .into_iter()
        .map(|plan| {
            let log = read_final_log(
                input.nodes.disk(&plan.name),
                std::path::Path::new("log"),
                log_config(&plan.config),
            );
            (plan.name, log)
        })
        .collect()
}

fn unreadable(check: &'static str, node: &str, log: &FinalLog) -> Option<Violation> {
    log.error.as_ref().map(|error| Violation {
        check: check.to_string(),
        detail: format!("{node}: the final log cannot be read back: {error}"),
        at_ms: None,
        partition: None,
        node: Some(node.to_string()),
    })
}

/// `lost-write`: every acknowledged record is in the final log.
pub fn lost_write(input: &CheckInput<'_>, logs: &BTreeMap<String, FinalLog>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (node, log) in logs {
        if let Some(v) = unreadable("lost-write", node, log) {
            violations.push(v);
            continue;
        }
        let present: FxSet<&str> = log.records().map(|(_, v)| v).collect();
        let mut lost = Findings::of_node(
            "lost-write",
            node,
            "acknowledged records missing from the final log",
        );
        for entry in input.history.iter().filter(|e| &e.node == node) {
            if let Op::AppendOk { value, offset } = &entry.op {
                if *offset >= log.log_start && !present.contains(value.as_str()) {
                    lost.add(
                        entry.at_us,
                        format!(
                            "{value} acknowledged at offset {offset} at {}",
                            seconds(entry.at_us)
                        ),
                    );
                }
            }
        }
        violations.extend(lost.into_violation());
    }
    violations
}

/// `inconsistent-offsets`: reads, acknowledgements and the final log agree on every offset.
pub fn inconsistent_offsets(
    input: &CheckInput<'_>,
    logs: &BTreeMap<String, FinalLog>,
) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (node, log) in logs {
        if let Some(v) = unreadable("inconsistent-offsets", node, log) {
            violations.push(v);
            continue;
        }
        // The final log is what the nodes left when the run stopped them.
        let stopped_us = input
            .events
            .iter()
            .rfind(|e| matches!(e.announced.world(), Some(WorldEvent::Stop {})))
            .map_or(0, |e| e.at_us);
        let mut gaps = Findings::of_node(
            "inconsistent-offsets",
            node,
            "gaps or disorder in the final log's offsets",
        );
        let mut expected = log.log_start;
        for (offset, _) in log.records() {
            if offset != expected {
                gaps.add(
                    stopped_us,
                    format!("offset {offset} where {expected} was due"),
                );
            }
            expected = offset + 1;
        }
        if expected != log.log_end {
            gaps.add(
                stopped_us,
                format!(
                    "records end at {expected} but the log end offset is {}",
                    log.log_end
                ),
            );
        }
        violations.extend(gaps.into_violation());

        // Lookups only; of records at one offset (or of one value), the last.
        let final_at: FxMap<u64, &str> = log.records().collect();
        let final_offset: FxMap<&str, u64> = log.records().map(|(o, v)| (v, o)).collect();
        let mut disagree = Findings::of_node(
            "inconsistent-offsets",
            node,
            "disagreements on the record at an offset",
        );
        let mut seen: FxMap<u64, (&str, u64)> = FxMap::default();
        for entry in input.history.iter().filter(|e| &e.node == node) {
            match &entry.op {
                Op::Read { records, .. } => {
                    for (offset, value) in records {
                        if let Some((earlier, at)) = seen.get(offset) {
                            if earlier != value {
                                disagree.add(
                                    entry.at_us,
                                    format!(
                                        "offset {offset}: read {earlier} at {} but {value} at {}",
                                        seconds(*at),
                                        seconds(entry.at_us)
                                    ),
                                );
                            }
                        } else {
                            seen.insert(*offset, (value.as_str(), entry.at_us));
                        }
                        if *offset < log.log_start {
                            continue;
                        }
                        match final_at.get(offset) {
                            Some(held) if held == value => {}
                            Some(held) => disagree.add(entry.at_us, format!(
                                "offset {offset}: read {value} at {} but the final log holds {held}",
                                seconds(entry.at_us))),
                            None => disagree.add(entry.at_us, format!(
                                "offset {offset}: read {value} at {} but the final log ends at {}",
                                seconds(entry.at_us), log.log_end)),
                        }
                    }
                }
                Op::AppendOk { value, offset } => {
                    if let Some(&held_at) = final_offset.get(value.as_str()) {
                        if held_at != *offset {
                            disagree.add(entry.at_us, format!(
                                "{value} acknowledged at offset {offset} at {} but the final log holds it at {held_at}",
                                seconds(entry.at_us)));
                        }
                    }
                }
                _ => {}
            }
        }
        violations.extend(disagree.into_violation());
    }
    violations
}

#[cfg(test)]
mod tests {
    /// Each check's cases — a hand-made record that breaks its rule, and ones that keep
    /// it — are the table `src/check/testdata/writer.txt` (read by `check::tables`).
    #[test]
    fn writer_rules() {
        crate::check::tables::run_writer_table("src/check/testdata/writer.txt");
    }
}
