//! `converges`: after the faults stop, the cluster serves again within `heal`.
//!
//! Every node that does client work must get a definite answer after the heal and within
//! the bound: each log writer an acknowledged append; each ensemble client a server's reply
//! (success or error); each producer an acknowledged send (or, with acks=0, a written one);
//! each assign-mode consumer a poll with records — when it has something to read: a record
//! of its topics acknowledged by the bound above what it had polled of that partition before
//! the heal (a reader of a topic nobody writes to has nothing to return). Group members are
//! judged with their group, in `check::group`. An ensemble client can only be answered by a serving
//! server, which needs an established leader, so this also covers "the ensemble has a
//! leader". And by the bound every partition has a leader whose ISR holds every replica,
//! judged from the brokers' events (`check::kafka::partitions_without_full_isr`).

use super::kafka::partitions_without_full_isr;
use super::zk::is_definite_zk_answer;
use super::{CheckInput, Violation};
use crate::broker::TopicPartition;
use crate::node::writers;
use crate::sim::{Op, SendOutcome};
use std::collections::{BTreeMap, BTreeSet};

/// `converges`.
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
    let mut active: Vec<String> = writers(input.scenario)
        .into_iter()
        .map(|p| p.name)
        .collect();
    active.extend(input.scenario.zk_client_names());
    // Group members are judged as groups (`check::group`): a member may own nothing.
    let members: Vec<String> = input
        .scenario
        .groups()
        .into_values()
        .flat_map(|g| g.members)
        .collect();
    let names = input.scenario.node_names();
    active.extend(
        names
            .iter()
            .filter(|n| n.starts_with("producer-") || n.starts_with("consumer-"))
            .filter(|n| !members.contains(n))
            .cloned(),
    );
    let idle_readers = readers_with_nothing_to_read(input, heal.at_us, bound_us);
    let mut out: Vec<Violation> = active
        .into_iter()
        .filter(|name| !idle_readers.contains(name))
        .filter(|name| {
            !input.history.iter().any(|e| {
                &e.node == name
                    && e.at_us >= heal.at_us
                    && e.at_us <= bound_us
                    && (matches!(e.op, Op::AppendOk { .. })
                        || is_definite_zk_answer(e)
                        || matches!(
                            &e.op,
                            Op::SendReturn {
                                outcome: SendOutcome::Ok { .. } | SendOutcome::Sent { .. },
                                ..
                            }
                        )
                        || matches!(&e.op, Op::Poll { records, .. } if !records.is_empty()))
            })
        })
        .map(|name| {
            let why = input
                .events
                .iter()
                .rev()
                .find(|e| e.node == name && e.kind.ends_with("-failed"))
                .map(|e| format!(" (last failure: {} {})", e.kind, e.detail))
                .unwrap_or_default();
            Violation {
                check: "converges".into(),
                detail: format!(
                    "{name}: no acknowledged operation within {}s after the heal at {:.3}s{why}",
                    input.scenario.heal.as_secs_f64(),
                    heal.at_us as f64 / 1e6
                ),
                at_ms: Some(bound_us / 1000),
                partition: None,
                node: Some(name),
            }
        })
        .collect();
    let partitions = input.scenario.partitions();
    let last_us = input.events.last().map_or(0, |e| e.at_us).min(bound_us);
    for tp in partitions_without_full_isr(input.events, &partitions, last_us) {
        out.push(Violation {
            check: "converges".into(),
            detail: format!(
                "{tp}: no leader with every replica in its ISR within {}s after the heal at \
                 {:.3}s",
                input.scenario.heal.as_secs_f64(),
                heal.at_us as f64 / 1e6
            ),
            at_ms: Some(bound_us / 1000),
            partition: Some(tp.to_string()),
            node: None,
        });
    }
    out
}

/// The assign-mode consumers with nothing to read after the heal: no record of their topics
/// was acknowledged by `bound_us` above the highest offset they had polled of its partition
/// before `heal_us`.
fn readers_with_nothing_to_read(
    input: &CheckInput<'_>,
    heal_us: u64,
    bound_us: u64,
) -> BTreeSet<String> {
    let mut index = 0;
    let mut readers: BTreeMap<String, &[String]> = BTreeMap::new();
    for spec in &input.scenario.consumers {
        for _ in 0..spec.count {
            index += 1;
            if spec.group.is_none() {
                readers.insert(format!("consumer-{index}"), &spec.topics);
            }
        }
    }
    // Per partition, the highest acknowledged offset by the bound.
    let mut acknowledged: BTreeMap<&TopicPartition, u64> = BTreeMap::new();
    // Per reader and partition, one past the highest offset polled before the heal.
    let mut polled: BTreeMap<(&str, &TopicPartition), u64> = BTreeMap::new();
    for entry in input.history {
        match &entry.op {
            Op::SendReturn {
                outcome: SendOutcome::Ok { partition, offset },
                ..
            } if entry.at_us <= bound_us => {
                let highest = acknowledged.entry(partition).or_insert(*offset);
                *highest = (*highest).max(*offset);
            }
            Op::Poll { partition, records } if entry.at_us < heal_us => {
                if let Some((last, _)) = records.last() {
                    let next = polled.entry((&entry.node, partition)).or_insert(0);
                    *next = (*next).max(last + 1);
                }
            }
            _ => {}
        }
    }
    readers
        .into_iter()
        .filter(|(name, topics)| {
            !acknowledged.iter().any(|(tp, &highest)| {
                topics.contains(&tp.topic)
                    && highest >= polled.get(&(name.as_str(), *tp)).copied().unwrap_or(0)
            })
        })
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::{
        append_ok as ok, world_event as world, writer_scenario as scenario,
    };
    use crate::scenario::Scenario;
    use crate::sim::{Event, HistoryEntry};
    use std::path::Path;

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
    fn converges_fires_for_a_writer_silent_after_the_heal() {
        let s = scenario();
        let events = [world(1_000_000, "heal")];
        let history = [
            ok(500_000, "writer-2", "old", 0),
            ok(1_200_000, "writer-1", "new", 1),
        ];
        let found = converges(&input(&s, &events, &history));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].node.as_deref(), Some("writer-2"));

        // An acknowledgement after the bound (heal + 5s) does not count.
        let late = [
            ok(1_200_000, "writer-1", "x", 1),
            ok(6_100_000, "writer-2", "y", 1),
        ];
        assert_eq!(converges(&input(&s, &events, &late)).len(), 1);

        let both = [
            ok(1_200_000, "writer-1", "x", 1),
            ok(1_300_000, "writer-2", "y", 1),
        ];
        assert!(converges(&input(&s, &events, &both)).is_empty());

        // No heal at all (the run ended early): not converged.
        assert_eq!(converges(&input(&s, &[], &both)).len(), 1);
    }

    #[test]
    fn converges_fires_for_a_silent_producer_and_a_partition_without_a_full_isr() {
        use crate::broker::TopicPartition;
        let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n\
                    [cluster]\nzookeepers = 1\nbrokers = 1\n\
                    [[topic]]\nname = \"orders\"\npartitions = 1\n\
                    \"replication.factor\" = 1\n\
                    [[producer]]\ncount = 1\ntopic = \"orders\"\nrate = 10\n";
        let s = crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap();
        let tp = TopicPartition::new("orders", 0);
        let led = Event {
            at_us: 500_000,
            node: "broker-1".into(),
            kind: "become-leader".into(),
            detail: serde_json::json!({"partition": "orders/0", "leader_epoch": 1, "isr": [1]}),
        };
        let events = [led, world(1_000_000, "heal")];
        let acked = HistoryEntry {
            at_us: 1_100_000,
            node: "producer-1".into(),
            op: Op::SendReturn {
                value: "producer-1-1-1".into(),
                outcome: SendOutcome::Ok {
                    partition: tp.clone(),
                    offset: 0,
                },
            },
        };
        assert!(converges(&input(&s, &events, std::slice::from_ref(&acked))).is_empty());
        let silent = converges(&input(&s, &events, &[]));
        assert_eq!(silent.len(), 1);
        assert_eq!(silent[0].node.as_deref(), Some("producer-1"));
        let leaderless = [world(1_000_000, "heal")];
        let found = converges(&input(&s, &leaderless, &[acked]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].partition.as_deref(), Some("orders/0"));
    }

    #[test]
    fn converges_asks_a_reader_for_records_only_when_it_has_something_to_read() {
        use crate::broker::TopicPartition;
        let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n\
                    [cluster]\nzookeepers = 1\nbrokers = 1\n\
                    [[topic]]\nname = \"orders\"\npartitions = 1\n\
                    [[topic]]\nname = \"payments\"\npartitions = 1\n\
                    [[producer]]\ncount = 1\ntopic = \"orders\"\nrate = 10\n\
                    [[consumer]]\ncount = 1\ntopics = [\"orders\"]\n\
                    [[consumer]]\ncount = 1\ntopics = [\"payments\"]\n";
        let s = crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap();
        let tp = TopicPartition::new("orders", 0);
        let events = [world(1_000_000, "heal")];
        let acked = |at_us, offset| HistoryEntry {
            at_us,
            node: "producer-1".into(),
            op: Op::SendReturn {
                value: format!("producer-1-1-{offset}"),
                outcome: SendOutcome::Ok {
                    partition: tp.clone(),
                    offset,
                },
            },
        };
        let polled = |at_us, offset: u64| HistoryEntry {
            at_us,
            node: "consumer-1".into(),
            op: Op::Poll {
                partition: tp.clone(),
                records: vec![(offset, format!("producer-1-1-{offset}"))],
            },
        };
        let silent = |history: &[HistoryEntry]| -> Vec<String> {
            converges(&input(&s, &events, history))
                .into_iter()
                .filter_map(|v| v.node)
                .collect()
        };
        // A record of orders acknowledged after the heal: consumer-1 must read something;
        // consumer-2 reads a topic nobody writes to.
        assert_eq!(silent(&[acked(1_100_000, 0)]), ["consumer-1"]);
        // consumer-1 had read everything acknowledged before the heal: nothing to read.
        let caught_up = [acked(500_000, 0), polled(600_000, 0), acked(1_100_000, 0)];
        assert!(silent(&caught_up).is_empty());
        // A record it had not read: it must poll it within the bound.
        let behind = [acked(500_000, 0), polled(600_000, 0), acked(1_100_000, 1)];
        assert_eq!(silent(&behind), ["consumer-1"]);
        let read = [
            acked(500_000, 0),
            polled(600_000, 0),
            acked(1_100_000, 1),
            polled(1_200_000, 1),
        ];
        assert!(silent(&read).is_empty());
    }
}
