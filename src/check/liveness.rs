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
//! judged from the brokers' events (`check::broker_events::partitions_without_full_isr`).
//!
//! The ensemble converges too: at the end of the run (or at the bound, if the run went on
//! past it) every server's last role announcement is `leading` or `following` in the
//! newest epoch any server's last announcement names, and a server leads that epoch
//! (`check::zk::EnsembleRoles`). A server still in an older epoch (a leader deposed while
//! paused, or its follower, that has not noticed yet), looking, or restarted and not yet
//! synced has not rejoined: sync has not yet truncated what it logged that the newest
//! epoch's history lacks (`zk-replica-agreement` lets such a server's log end in that
//! uncommitted fork). The world waits for the same before it stops.

use super::broker_events::partitions_without_full_isr;
use super::zk::{is_definite_zk_answer, EnsembleRoles};
use super::{CheckInput, Violation};
use crate::broker::TopicPartition;
use crate::history::{Announcement, Op, SendOutcome, WorldEvent};
use crate::scenario::plan::writers;
use std::collections::{BTreeMap, BTreeSet};

/// `converges`.
pub fn converges(input: &CheckInput<'_>) -> Vec<Violation> {
    let Some(heal) = input
        .events
        .iter()
        .find(|e| matches!(e.announced, Announcement::World(WorldEvent::Heal { .. })))
    else {
        return vec![Violation {
            check: "converges".into(),
            detail: "the run ended before the heal".into(),
            at_ms: input.events.last().map(|e| e.at_us / 1000),
            partition: None,
            node: None,
        }];
    };
    let bound_us = heal
        .at_us
        .saturating_add(u64::try_from(input.scenario.heal.as_micros()).unwrap_or(u64::MAX));
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
                .find(|e| {
                    e.node == name
                        && matches!(&e.announced, Announcement::Shell(s) if s.is_failure())
                })
                .map(|e| format!(" (last failure: {} {})", e.kind(), e.detail()))
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
    let last_us = input.events.last().map_or(0, |e| e.at_us).min(bound_us);
    out.extend(ensemble_not_rejoined(input, heal.at_us, bound_us, last_us));
    let partitions = input.scenario.partitions();
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

/// The ensemble's servers that do not lead or follow in the newest epoch at `last_us`, and
/// that epoch's missing leader.
fn ensemble_not_rejoined(
    input: &CheckInput<'_>,
    heal_us: u64,
    bound_us: u64,
    last_us: u64,
) -> Vec<Violation> {
    let servers = input.scenario.zk_names();
    if servers.is_empty() {
        return Vec::new();
    }
    let roles = EnsembleRoles::at(input.events, &servers, last_us);
    let newest = roles.newest_epoch();
    let within = format!(
        "within {}s after the heal at {:.3}s",
        input.scenario.heal.as_secs_f64(),
        heal_us as f64 / 1e6
    );
    let violation = |node: Option<String>, detail: String| Violation {
        check: "converges".into(),
        detail,
        at_ms: Some(bound_us / 1000),
        partition: None,
        node,
    };
    let mut out = Vec::new();
    if let Some(epoch) = newest.filter(|_| roles.leader().is_none()) {
        out.push(violation(
            None,
            format!("the ensemble's newest epoch {epoch} has no leader {within}"),
        ));
    }
    for server in servers.iter().filter(|s| !roles.in_newest_epoch(s)) {
        let newest = newest.map_or("no server leads or follows in any epoch".to_string(), |e| {
            format!("epoch {e} is the newest")
        });
        let last = roles
            .last
            .get(server)
            .map_or("it never announced a role".to_string(), |(role, at)| {
                format!("its last role: {role} at {:.3}s", *at as f64 / 1e6)
            });
        out.push(violation(
            Some(server.clone()),
            format!(
                "{server} did not rejoin the ensemble's newest epoch {within} ({newest}; {last})"
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::{
        append_ok as ok, become_leader, world_event as world, writer_scenario as scenario, zk_role,
    };
    use crate::history::{Event, HistoryEntry};
    use crate::scenario::Scenario;
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
        let led = become_leader(500_000, 1, &tp, 1, &[1]);
        // The ensemble (one server) leads its first epoch throughout.
        let zk = zk_role(100_000, "zk-1", "leading", 1);
        let events = [zk.clone(), led, world(1_000_000, "heal")];
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
        let leaderless = [zk, world(1_000_000, "heal")];
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
        let leading = zk_role(100_000, "zk-1", "leading", 1);
        let events = [leading, world(1_000_000, "heal")];
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

    #[test]
    fn converges_names_a_server_that_never_rejoined_the_newest_epoch() {
        let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n\
                    [cluster]\nzookeepers = 3\n[[zk_client]]\ncount = 1\nrate = 1\n";
        // An ensemble alone (a scenario file needs a workload to load).
        let mut s = crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap();
        s.zk_clients.clear();
        let role = zk_role;
        // zk-3 led epoch 1 and was paused; zk-1 and zk-2 moved on to epoch 2 without it.
        let mut events = vec![
            role(100_000, "zk-3", "leading", 1),
            role(100_000, "zk-1", "following", 1),
            role(100_000, "zk-2", "following", 1),
            role(8_000_000, "zk-1", "leading", 2),
            role(8_000_000, "zk-2", "following", 2),
            world(10_000_000, "heal"),
            world(10_100_000, "stop"),
        ];
        let found = converges(&input(&s, &events, &[]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].node.as_deref(), Some("zk-3"));
        assert!(found[0].detail.contains("leading in epoch 1"), "{found:?}");

        // Noticing is not enough: looking, it has not rejoined yet.
        events.insert(6, role(10_050_000, "zk-3", "looking", 1));
        assert_eq!(converges(&input(&s, &events, &[])).len(), 1);

        // Synced with the leader of epoch 2 before the end: converged.
        events.insert(7, role(10_080_000, "zk-3", "following", 2));
        assert!(converges(&input(&s, &events, &[])).is_empty());

        // A rejoin after the bound (heal + 5s) does not count.
        let late: Vec<Event> = events
            .iter()
            .cloned()
            .map(|mut e| {
                if e.node == "zk-3" && e.at_us == 10_080_000 {
                    e.at_us = 15_100_000;
                }
                e
            })
            .collect();
        assert_eq!(converges(&input(&s, &late, &[])).len(), 1);

        // The leader of the newest epoch stepped down: nobody leads it.
        let leaderless = [
            role(8_000_000, "zk-1", "leading", 2),
            role(8_000_000, "zk-2", "following", 2),
            role(8_000_000, "zk-3", "following", 2),
            world(10_000_000, "heal"),
            role(10_050_000, "zk-1", "looking", 2),
        ];
        let found = converges(&input(&s, &leaderless, &[]));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].detail.contains("epoch 2 has no leader"),
            "{found:?}"
        );
        assert_eq!(found[1].node.as_deref(), Some("zk-1"));
    }
}
