//! Checks of the log writers: what each writer was told against what its log holds.
//!
//! - `lost-write`: an acknowledged record is missing from the final log (at or above the
//!   log start offset: retention may delete old segments, which is not a loss).
//! - `inconsistent-offsets`: two reads, or a read and the final log, disagree on the record
//!   at an offset; an acknowledged record sits at another offset than acknowledged; or the
//!   final log's offsets are not dense.

use super::toolkit::{seconds, Findings};
use super::{read_final_log, CheckInput, FinalLog, Violation};
use crate::history::{Announcement, Op, WorldEvent};
use crate::scenario::plan::{log_config, writers};
use std::collections::BTreeMap;

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
            .rfind(|e| matches!(e.announced, Announcement::World(WorldEvent::Stop {})))
            .map_or(0, |e| e.at_us);
        let mut gaps = Findings::of_node(
            "inconsistent-offsets",
            node,
            "gaps or disorder in the final log's offsets",
        );
        let mut expected = log.log_start;
        for (offset, _) in &log.records {
            if *offset != expected {
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

        let final_at: BTreeMap<u64, &str> =
            log.records.iter().map(|(o, v)| (*o, v.as_str())).collect();
        let final_offset: BTreeMap<&str, u64> =
            log.records.iter().map(|(o, v)| (v.as_str(), *o)).collect();
        let mut disagree = Findings::of_node(
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
                _ => {}
            }
        }
        violations.extend(disagree.into_violation());
    }
    violations
}

#[cfg(test)]
mod tests {
    //! Each check fires on a hand-made history that breaks its rule, and stays quiet on one
    //! that keeps it: the checkers can fail.
    use super::*;
    use crate::check::test_support::{
        append_ok as ok, world_event as world, writer_scenario as scenario,
    };
    use crate::history::{Event, HistoryEntry};
    use crate::scenario::Scenario;
    use std::path::Path;

    fn read(at_us: u64, node: &str, from: u64, records: &[(u64, &str)]) -> HistoryEntry {
        HistoryEntry {
            at_us,
            node: node.into(),
            op: Op::Read {
                from,
                records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            },
        }
    }

    fn final_log(start: u64, records: &[(u64, &str)]) -> FinalLog {
        FinalLog {
            log_start: start,
            log_end: records.last().map_or(start, |(o, _)| o + 1),
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            ..FinalLog::default()
        }
    }

    fn logs(w1: FinalLog) -> BTreeMap<String, FinalLog> {
        [
            ("writer-1".to_string(), w1),
            ("writer-2".to_string(), final_log(0, &[])),
        ]
        .into()
    }

    fn input<'a>(
        s: &'a Scenario,
        events: &'a [Event],
        history: &'a [HistoryEntry],
    ) -> CheckInput<'a> {
        CheckInput {
            scenario: s,
            events,
            history,
            run_dir: Path::new("/nonexistent"),
        }
    }

    #[test]
    fn lost_write_fires_for_an_acknowledged_record_missing_from_the_final_log() {
        let s = scenario();
        let history = [ok(10, "writer-1", "a", 0), ok(20, "writer-1", "b", 1)];
        let found = lost_write(&input(&s, &[], &history), &logs(final_log(0, &[(0, "a")])));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].detail.contains("b acknowledged at offset 1"),
            "{}",
            found[0].detail
        );
        assert_eq!(found[0].node.as_deref(), Some("writer-1"));

        let kept = lost_write(
            &input(&s, &[], &history),
            &logs(final_log(0, &[(0, "a"), (1, "b")])),
        );
        assert!(kept.is_empty());
        // Retention deleted offset 0: not a loss.
        let retained = lost_write(&input(&s, &[], &history), &logs(final_log(1, &[(1, "b")])));
        assert!(retained.is_empty());
    }

    #[test]
    fn an_unreadable_final_log_is_reported_not_passed() {
        let s = scenario();
        let broken = FinalLog {
            error: Some("corrupt below the recovery point".into()),
            ..FinalLog::default()
        };
        let found = lost_write(&input(&s, &[], &[]), &logs(broken));
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("cannot be read back"));
    }

    #[test]
    fn inconsistent_offsets_fires_on_reads_that_disagree_and_on_gaps() {
        let s = scenario();
        let events = [world(900, "stop")];
        let history = [
            read(10, "writer-1", 0, &[(0, "a"), (1, "b")]),
            read(20, "writer-1", 1, &[(1, "c")]),
        ];
        let found = inconsistent_offsets(
            &input(&s, &events, &history),
            &logs(final_log(0, &[(0, "a"), (1, "b")])),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].detail.contains("offset 1: read b at"),
            "{}",
            found[0].detail
        );

        let agreeing = [read(10, "writer-1", 0, &[(0, "a"), (1, "b")])];
        assert!(inconsistent_offsets(
            &input(&s, &events, &agreeing),
            &logs(final_log(0, &[(0, "a"), (1, "b")]))
        )
        .is_empty());

        let mut gappy = final_log(0, &[(0, "a"), (2, "c")]);
        gappy.log_end = 3;
        let found = inconsistent_offsets(&input(&s, &events, &[]), &logs(gappy));
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("offset 2 where 1 was due"));
        assert_eq!(found[0].at_ms, Some(0), "at the stop: 900 µs");

        // An acknowledged record found at another offset than acknowledged.
        let moved = [ok(10, "writer-1", "b", 5)];
        let found = inconsistent_offsets(
            &input(&s, &events, &moved),
            &logs(final_log(0, &[(0, "a"), (1, "b")])),
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("holds it at 1"));
    }
}
