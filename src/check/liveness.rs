//! `converges`: after the faults stop, the cluster serves again within `heal`.
//!
//! Every node that does client work must get a definite answer after the heal and within
//! the bound: each log writer an acknowledged append; each ensemble client a server's reply
//! (success or error); each producer an acknowledged send (or, with acks=0, a written one, or,
//! transactional, a transaction ended as asked);
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
use super::toolkit::FxMap;
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
        .find(|e| matches!(e.announced.world(), Some(WorldEvent::Heal { .. })))
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
    let active: Vec<String> = active
        .into_iter()
        .filter(|name| !idle_readers.contains(name))
        .collect();
    let answered = answered(input, heal.at_us, bound_us, &active);
    let mut out: Vec<Violation> = active
        .into_iter()
        .filter(|name| !answered.contains(name))
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

/// Which of `names` got a definite answer after the heal, by the bound: an acknowledged
/// append, an ensemble server's reply, an acknowledged (or, acks=0, written) send, a poll
/// with records. Read from the end of the history back, until every name has one.
fn answered(
    input: &CheckInput<'_>,
    heal_us: u64,
    bound_us: u64,
    names: &[String],
) -> BTreeSet<String> {
    let mut waiting: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut answered = BTreeSet::new();
    for entry in input.history.iter().rev() {
        if waiting.is_empty() {
            break;
        }
        let definite = entry.at_us >= heal_us
            && entry.at_us <= bound_us
            && (matches!(entry.op, Op::AppendOk { .. })
                || is_definite_zk_answer(entry)
                || matches!(
                    &entry.op,
                    Op::SendReturn {
                        outcome: SendOutcome::Ok { .. } | SendOutcome::Sent { .. },
                        ..
                    }
                )
                || matches!(&entry.op, Op::Poll { records, .. } if !records.is_empty())
                // A transaction committed or aborted as asked: the coordinator answered.
                || matches!(&entry.op, Op::TxnEndReturn { error: None }));
        if !definite {
            continue;
        }
        while let Some(i) = waiting.iter().position(|n| *n == entry.node) {
            answered.insert(waiting.swap_remove(i).to_string());
        }
    }
    answered
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
    if readers.is_empty() {
        return BTreeSet::new();
    }
    // Per partition, the highest acknowledged offset by the bound.
    let mut acknowledged: FxMap<&TopicPartition, u64> = FxMap::default();
    // Per reader and partition, one past the highest offset polled before the heal.
    let mut polled: FxMap<(&str, &TopicPartition), u64> = FxMap::default();
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
                topics.iter().any(|t| *t == tp.topic)
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
    /// `converges`' cases — a hand-made run that breaks the rule, and ones that keep it —
    /// are the table `src/check/testdata/liveness.txt` (read by `check::tables`).
    #[test]
    fn liveness_rules() {
        crate::check::tables::run_liveness_table("src/check/testdata/liveness.txt");
    }
}
