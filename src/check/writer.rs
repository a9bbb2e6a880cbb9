//! Checks of the log writers: what each writer was told against what its log holds.
//!
//! - `lost-write`: an acknowledged record is missing from the final log (at or above the
//!   log start offset: retention may delete old segments, which is not a loss).
//! - `inconsistent-offsets`: two reads, or a read and the final log, disagree on the record
//!   at an offset; an acknowledged record sits at another offset than acknowledged; or the
//!   final log's offsets are not dense.
//! - `converges`: after the heal, every writer acknowledges a record within `heal`.

use super::{read_final_log, CheckInput, FinalLog, Violation};
use crate::node::{log_config, writers};
use crate::sim::Op;
use std::collections::BTreeMap;

/// Examples quoted per violation; the rest are counted.
const EXAMPLES: usize = 5;

/// Every writer's final log, by node name.
pub fn final_logs(input: &CheckInput<'_>) -> BTreeMap<String, FinalLog> {
    writers(input.scenario)
        .into_iter()
        .map(|plan| {
            let log = read_final_log(
                &input.run_dir.join(&plan.name),
                std::path::Path::new("log"),
                log_config(&plan.config),
            );
            (plan.name, log)
        })
        .collect()
}

/// Collects findings of one kind on one node into a single violation.
struct Findings {
    check: &'static str,
    node: String,
    what: &'static str,
    count: usize,
    first_at_us: Option<u64>,
    examples: Vec<String>,
}

impl Findings {
    fn new(check: &'static str, node: &str, what: &'static str) -> Self {
        Findings {
            check,
            node: node.to_string(),
            what,
            count: 0,
            first_at_us: None,
            examples: Vec::new(),
        }
    }

    fn add(&mut self, at_us: u64, example: String) {
        self.count += 1;
        self.first_at_us = Some(self.first_at_us.map_or(at_us, |t| t.min(at_us)));
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    fn into_violation(self) -> Option<Violation> {
        if self.count == 0 {
            return None;
        }
        let more = self.count.saturating_sub(self.examples.len());
        let mut detail = format!(
            "{}: {} {}: {}",
            self.node,
            self.count,
            self.what,
            self.examples.join("; ")
        );
        if more > 0 {
            detail.push_str(&format!("; and {more} more"));
        }
        Some(Violation {
            check: self.check.to_string(),
            detail,
            at_ms: self.first_at_us.map(|us| us / 1000),
            partition: None,
            node: Some(self.node),
        })
    }
}

fn seconds(at_us: u64) -> String {
    format!("{:.3}s", at_us as f64 / 1e6)
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
        let present: std::collections::BTreeSet<&str> =
            log.records.iter().map(|(_, v)| v.as_str()).collect();
        let mut lost = Findings::new(
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
        let mut gaps = Findings::new(
            "inconsistent-offsets",
            node,
            "gaps or disorder in the final log's offsets",
        );
        let mut expected = log.log_start;
        for (offset, _) in &log.records {
            if *offset != expected {
                gaps.add(
                    input.history.last().map_or(0, |e| e.at_us),
                    format!("offset {offset} where {expected} was due"),
                );
            }
            expected = offset + 1;
        }
        if expected != log.log_end {
            gaps.add(
                0,
                format!(
                    "records end at {expected} but the log end offset is {}",
                    log.log_end
                ),
            );
        }
        violations.extend(gaps.into_violation());

        let final_at: BTreeMap<u64, &str> =
            log.records.iter().map(|(o, v)| (*o, v.as_str())).collect();
        let final_offset: BTreeMap<&str, u64> =
            log.records.iter().map(|(o, v)| (v.as_str(), *o)).collect();
        let mut disagree = Findings::new(
            "inconsistent-offsets",
            node,
            "disagreements on the record at an offset",
        );
        let mut seen: BTreeMap<u64, (&str, u64)> = BTreeMap::new();
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
                Op::Append { .. } => {}
            }
        }
        violations.extend(disagree.into_violation());
    }
    violations
}

/// `converges`: after the heal, every writer acknowledges a record within `heal`.
pub fn converges(input: &CheckInput<'_>) -> Vec<Violation> {
    let Some(heal) = input
        .events
        .iter()
        .find(|e| e.node == "world" && e.kind == "heal")
    else {
        return vec![Violation {
            check: "converges".into(),
            detail: "the run ended before the heal".into(),
            at_ms: input.events.last().map(|e| e.at_us / 1000),
            partition: None,
            node: None,
        }];
    };
    let bound_us = heal.at_us + input.scenario.heal.as_micros() as u64;
    writers(input.scenario)
        .into_iter()
        .filter(|plan| {
            !input.history.iter().any(|e| {
                e.node == plan.name
                    && e.at_us >= heal.at_us
                    && e.at_us <= bound_us
                    && matches!(e.op, Op::AppendOk { .. })
            })
        })
        .map(|plan| {
            let why = input
                .events
                .iter()
                .rev()
                .find(|e| e.node == plan.name && e.kind.ends_with("-failed"))
                .map(|e| format!(" (last failure: {} {})", e.kind, e.detail))
                .unwrap_or_default();
            Violation {
                check: "converges".into(),
                detail: format!(
                    "{}: acknowledged nothing within {}s after the heal at {}{why}",
                    plan.name,
                    input.scenario.heal.as_secs(),
                    seconds(heal.at_us)
                ),
                at_ms: Some(bound_us / 1000),
                partition: None,
                node: Some(plan.name),
            }
        })
        .collect()
}
