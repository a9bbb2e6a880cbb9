//! The replication checks: what the brokers announced about their partition replicas
//! ([`BrokerEvent`], placed in incarnations by `check::broker_events`), the controllers'
//! written states, and the replica logs left on disk.
//!
//! Owns: `single-leader-per-epoch`, `leader-epoch-monotonic`, `hw-monotonic`,
//! `committed-prefix-agreement`, `no-truncation-below-hw`.
//!
//! # Rules
//!
//! - `single-leader-per-epoch`: two brokers are named leader of one partition in one leader
//!   epoch (by `become-leader`, or by a `become-follower`'s `leader`).
//! - `leader-epoch-monotonic`: per broker incarnation and partition, `become-leader` and
//!   `become-follower` epochs never decrease (Kafka's own `MonotonicEpoch`); and per
//!   partition, the leader epochs the controllers wrote never decrease in the order of the
//!   state's version (`partition-state` events sorted by `partition_epoch`; announcement
//!   order is not write order when a controller pauses). A broker *may* become leader in an
//!   epoch older than another broker's: a paused broker applies a LeaderAndIsr that was
//!   already superseded before it hears of the next one — a zombie leader that cannot
//!   advance its HW, which the data checks judge.
//! - `hw-monotonic`: per broker incarnation and partition, `hw` never decreases.
//! - `committed-prefix-agreement`: the committed HW of a partition is the greatest `hw` a
//!   broker announced while leader. The replicas that claim the final leader's history at
//!   the end agree pairwise on every offset below it that both hold. They are the final
//!   leader, and each broker whose last incarnation ends as follower having either
//!   - announced an `hw` since its last `become-follower` (it fetched), or
//!   - announced `truncation-done` for that `become-follower`, naming the final leader in
//!     its final leader epoch, after the final leader's last incarnation began (a leader
//!     that restarts may come back in the same epoch with a shorter log, and the
//!     follower's reconciliation was with the log it lost): it reconciled its log with the
//!     final leader's (KIP-101/279, or the legacy cut to its own HW) and holds, by its
//!     own reckoning, the leader's records below its LEO. A divergent tail it kept is a safety
//!     violation even if it never fetched again (a fetch landing inside the leader's batch
//!     is refused, so such a follower stalls out of the ISR).
//!
//!   A replica that merely lags holds fewer offsets and disagrees on none. One that is down,
//!   follows an older leader or epoch, or is still truncating may hold an unreconciled
//!   tail; `converges` reports it if it never catches up.
//! - `no-truncation-below-hw`: a `truncate` with `to < hw`.

use super::broker_events::{broker_named, Kind};
use super::kafka::Facts;
use super::toolkit::{seconds, violation, FxMap, FxSet};
use super::{FinalLog, Violation};
use crate::broker::controller::ControllerEvent;
use crate::broker::server::BrokerEvent;
use crate::broker::{BrokerId, PartitionEpoch, TopicPartition};
use crate::history::Announcement;
use std::collections::BTreeMap;

impl<'a> Facts<'a> {
    /// `single-leader-per-epoch`.
    pub fn single_leader_per_epoch(&self) -> Vec<Violation> {
        const CHECK: &str = "single-leader-per-epoch";
        let mut out = Vec::new();
        // (partition, epoch) → (leader, who said so, when).
        let mut claims: FxMap<(&TopicPartition, i32), (String, &str, u64)> = FxMap::default();
        let mut reported: FxSet<(&TopicPartition, i32)> = FxSet::default();
        for event in self.events.of(&[Kind::BecomeLeader, Kind::BecomeFollower]) {
            let Announcement::Broker(announced) = event.announced else {
                continue;
            };
            let (tp, epoch, leader, kind) = match announced {
                BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                } => (
                    partition,
                    leader_epoch.0,
                    event.broker.to_string(),
                    "become-leader",
                ),
                BrokerEvent::BecomeFollower {
                    partition,
                    leader,
                    leader_epoch,
                    ..
                } => (
                    partition,
                    leader_epoch.0,
                    broker_named(*leader),
                    "become-follower",
                ),
                _ => continue,
            };
            let key = (tp, epoch);
            match claims.get(&key) {
                None => {
                    claims.insert(key, (leader, event.broker, event.at_us));
                }
                Some((first, by, at)) if *first != leader && !reported.contains(&key) => {
                    out.push(violation(
                        CHECK,
                        Some(tp),
                        Some(event.broker),
                        event.at_us,
                        format!(
                            "leader epoch {epoch} has two leaders: {first} ({by} at {}) and \
                             {leader} ({} `{kind}` at {})",
                            seconds(*at),
                            event.broker,
                            seconds(event.at_us)
                        ),
                    ));
                    reported.insert(key);
                }
                Some(_) => {}
            }
        }
        out
    }

    /// `leader-epoch-monotonic`.
    pub fn leader_epoch_monotonic(&self) -> Vec<Violation> {
        const CHECK: &str = "leader-epoch-monotonic";
        let mut out = Vec::new();
        let mut per_replica: Vec<Option<(i32, u64)>> = vec![None; self.events.replica_count()];
        // Per partition: (partition_epoch, leader_epoch, by, at) of every written state.
        let mut written: BTreeMap<&TopicPartition, Vec<(PartitionEpoch, i32, &str, u64)>> =
            BTreeMap::new();
        let kinds = [
            Kind::PartitionState,
            Kind::BecomeLeader,
            Kind::BecomeFollower,
        ];
        for event in self.events.of(&kinds) {
            let (tp, epoch, kind) = match event.announced {
                Announcement::Controller(controller) => {
                    let ControllerEvent::PartitionState {
                        partition,
                        leader_epoch,
                        partition_epoch,
                        ..
                    } = &**controller
                    else {
                        continue;
                    };
                    written.entry(partition).or_default().push((
                        *partition_epoch,
                        leader_epoch.0,
                        event.broker,
                        event.at_us,
                    ));
                    continue;
                }
                Announcement::Broker(BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                }) => (partition, leader_epoch.0, "become-leader"),
                Announcement::Broker(BrokerEvent::BecomeFollower {
                    partition,
                    leader_epoch,
                    ..
                }) => (partition, leader_epoch.0, "become-follower"),
                _ => continue,
            };
            let replica = &mut per_replica[event.replica.expect("a replica's event") as usize];
            if let Some((before, at)) = *replica {
                if epoch < before {
                    out.push(violation(
                        CHECK,
                        Some(tp),
                        Some(event.broker),
                        event.at_us,
                        format!(
                            "{} went from leader epoch {before} (at {}) back to {epoch} (`{kind}` \
                             at {}) in one incarnation",
                            event.broker,
                            seconds(at),
                            seconds(event.at_us)
                        ),
                    ));
                }
            }
            let high = replica.map_or(epoch, |(b, _)| b.max(epoch));
            *replica = Some((high, event.at_us));
        }
        for (tp, mut states) in written {
            states.sort_by_key(|&(version, _, _, at)| (version, at));
            for pair in states.windows(2) {
                let ((v0, e0, by0, at0), (v1, e1, by1, at1)) = (pair[0], pair[1]);
                if e1 < e0 {
                    out.push(violation(
                        CHECK,
                        Some(tp),
                        Some(by1),
                        at1,
                        format!(
                            "{by1} wrote leader epoch {e1} in partition epoch {v1} (at {}), after \
                             {by0} wrote leader epoch {e0} in partition epoch {v0} (at {})",
                            seconds(at1),
                            seconds(at0)
                        ),
                    ));
                }
            }
        }
        out
    }

    /// `hw-monotonic`.
    pub fn hw_monotonic(&self) -> Vec<Violation> {
        const CHECK: &str = "hw-monotonic";
        let mut out = Vec::new();
        let mut last: Vec<Option<(u64, u64)>> = vec![None; self.events.replica_count()];
        for event in self.events.of(&[Kind::Hw]) {
            let Announcement::Broker(BrokerEvent::Hw { partition, hw, .. }) = event.announced
            else {
                continue;
            };
            let hw = hw.0;
            let last = &mut last[event.replica.expect("a replica's event") as usize];
            match *last {
                Some((before, at)) if hw < before => out.push(violation(
                    CHECK,
                    Some(partition),
                    Some(event.broker),
                    event.at_us,
                    format!(
                        "{}'s HW went from {before} (at {}) back to {hw} (at {}) in one \
                         incarnation",
                        event.broker,
                        seconds(at),
                        seconds(event.at_us)
                    ),
                )),
                _ => *last = Some((hw, event.at_us)),
            }
        }
        out
    }

    /// `committed-prefix-agreement`.
    pub fn committed_prefix_agreement(&self) -> Vec<Violation> {
        const CHECK: &str = "committed-prefix-agreement";
        let mut out = Vec::new();
        for (tp, replicas) in self.logs {
            for (broker, log) in replicas {
                if let Some(error) = &log.error {
                    out.push(violation(
                        CHECK,
                        Some(tp),
                        Some(broker),
                        self.stop_us,
                        format!("{broker}: the replica log cannot be read back: {error}"),
                    ));
                }
            }
        }
        // What each replica did last in its incarnation, and the committed HW.
        let mut role: Vec<Option<Role>> = vec![None; self.events.replica_count()];
        let mut committed: Vec<Option<(u64, &str, u64)>> = vec![None; self.events.part_count()];
        let kinds = [
            Kind::BecomeLeader,
            Kind::BecomeFollower,
            Kind::Hw,
            Kind::TruncationDone,
        ];
        for event in self.events.of(&kinds) {
            let Some(replica) = event.replica else {
                continue;
            };
            let state = &mut role[replica as usize];
            match event.announced {
                Announcement::Broker(BrokerEvent::BecomeLeader { leader_epoch, .. }) => {
                    *state = Some(Role::Leader {
                        epoch: leader_epoch.0,
                    });
                }
                Announcement::Broker(BrokerEvent::BecomeFollower {
                    leader,
                    leader_epoch,
                    ..
                }) => {
                    *state = Some(Role::Follower {
                        leader: *leader,
                        epoch: leader_epoch.0,
                        fetched: false,
                        truncated_at_us: None,
                    });
                }
                Announcement::Broker(BrokerEvent::TruncationDone {
                    leader,
                    leader_epoch,
                    ..
                }) => {
                    if let Some(Role::Follower {
                        leader: following,
                        epoch,
                        truncated_at_us,
                        ..
                    }) = state
                    {
                        if following == leader && *epoch == leader_epoch.0 {
                            *truncated_at_us = Some(event.at_us);
                        }
                    }
                }
                Announcement::Broker(BrokerEvent::Hw { hw, .. }) => {
                    let hw = hw.0;
                    match state {
                        Some(Role::Follower { fetched, .. }) => *fetched = true,
                        Some(Role::Leader { .. }) => {
                            let committed = &mut committed[self.events.part_of(replica) as usize];
                            if committed.is_none_or(|(h, _, _)| hw > h) {
                                *committed = Some((hw, event.broker, event.at_us));
                            }
                        }
                        None => {}
                    }
                }
                _ => {}
            }
        }
        let last_role = |broker: &str, tp: &TopicPartition| -> Option<Role> {
            let last = *self.events.last_incarnation.get(broker)?;
            role[self.events.replica(broker, last, tp)? as usize]
        };
        for (tp, replicas) in self.logs {
            let Some((hw, by, at)) = self.events.part(tp).and_then(|p| committed[p as usize])
            else {
                continue;
            };
            let reference = self.part_id(tp).and_then(|part| self.reference_of(part));
            let final_leader = reference
                .filter(|r| r.why == "the final leader")
                .map(|r| r.broker);
            // The final leader's epoch, and when its last incarnation began.
            let led = final_leader.and_then(|l| match last_role(l, tp) {
                Some(Role::Leader { epoch, .. }) => {
                    let from = self.events.last_incarnation_from_us.get(l).copied();
                    Some((l, epoch, from))
                }
                _ => None,
            });
            let in_sync: Vec<(&str, &FinalLog, Option<String>)> = replicas
                .iter()
                .filter(|(_, log)| log.error.is_none())
                .filter_map(|(broker, log)| {
                    if final_leader == Some(broker.as_str()) {
                        return Some((broker.as_str(), log, None));
                    }
                    let Some(Role::Follower {
                        leader,
                        epoch,
                        fetched,
                        truncated_at_us,
                    }) = last_role(broker, tp)
                    else {
                        return None;
                    };
                    if fetched {
                        return Some((broker.as_str(), log, None));
                    }
                    // Not fetched, but it finished truncating against the final leader in
                    // its final epoch, in the leader's last incarnation (a leader that
                    // restarts may come back in the same epoch with a shorter log): it
                    // holds, by its own reckoning, the final leader's records below its
                    // LEO.
                    let (l, e, from) = led?;
                    let truncated = truncated_at_us.filter(|&t| from.is_none_or(|f| t > f))?;
                    (broker_named(leader) == l && epoch == e).then(|| {
                        let why = format!(
                            "{broker} finished truncating against {l} in leader epoch {e} at \
                             {} and fetched nothing since",
                            seconds(truncated)
                        );
                        (broker.as_str(), log, Some(why))
                    })
                })
                .collect();
            for (i, (a, log_a, why_a)) in in_sync.iter().enumerate() {
                for (b, log_b, why_b) in &in_sync[i + 1..] {
                    let from = log_a.log_start.max(log_b.log_start);
                    let to = hw.min(log_a.log_end).min(log_b.log_end);
                    let (count, first) = match (log_a.between(from, to), log_b.between(from, to)) {
                        (Some(va), Some(vb)) => disagreements(va, vb),
                        _ => disagreements(
                            sorted_between(log_a, from, to).into_iter(),
                            sorted_between(log_b, from, to).into_iter(),
                        ),
                    };
                    if let Some((first, held_a, held_b)) = first {
                        let whys: Vec<&str> = [why_a, why_b]
                            .into_iter()
                            .flatten()
                            .map(String::as_str)
                            .collect();
                        let whys = if whys.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", whys.join("; "))
                        };
                        out.push(violation(
                            CHECK,
                            Some(tp),
                            Some(b),
                            self.stop_us,
                            format!(
                                "{a} and {b} disagree on {count} offsets below the committed HW \
                                 {hw} ({by} announced it at {}), first at offset {first}: {a} \
                                 holds {} and {b} holds {}{whys}",
                                seconds(at),
                                held_a.unwrap_or("nothing"),
                                held_b.unwrap_or("nothing")
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    /// `no-truncation-below-hw`.
    pub fn no_truncation_below_hw(&self) -> Vec<Violation> {
        const CHECK: &str = "no-truncation-below-hw";
        let mut out = Vec::new();
        for event in self.events.of(&[Kind::Truncate]) {
            match event.announced {
                Announcement::Broker(BrokerEvent::Truncate {
                    partition,
                    from,
                    to,
                    hw,
                }) if to < hw => out.push(violation(
                    CHECK,
                    Some(partition),
                    Some(event.broker),
                    event.at_us,
                    format!(
                        "{} truncated its log from {} to {} below its HW {} at {}",
                        event.broker,
                        from.0,
                        to.0,
                        hw.0,
                        seconds(event.at_us)
                    ),
                )),
                _ => {}
            }
        }
        out
    }
}

/// What a replica did last, as `committed-prefix-agreement` follows it.
#[derive(Clone, Copy)]
enum Role {
    /// It became leader in `epoch`.
    Leader { epoch: i32 },
    /// It became follower of `leader` in `epoch`; since then it announced an HW
    /// (`fetched`) and finished truncating (at `truncated_at_us`), or not.
    Follower {
        leader: BrokerId,
        epoch: i32,
        fetched: bool,
        truncated_at_us: Option<u64>,
    },
}

/// `(offset, value)` of the records of `log` at offsets in `from..to`, ascending; of
/// records at one offset, the last (as a map from offsets keeps): for a log whose offsets
/// do not only go up.
fn sorted_between(log: &FinalLog, from: u64, to: u64) -> Vec<(u64, &str)> {
    let mut held: Vec<(u64, &str)> = log
        .records()
        .filter(|(offset, _)| (from..to).contains(offset))
        .collect();
    held.reverse();
    held.sort_by_key(|&(offset, _)| offset);
    held.dedup_by_key(|&mut (offset, _)| offset);
    held
}

/// The offsets at which two logs' records (ascending by offset, one record per offset)
/// differ: how many, and the first with what each holds there.
#[allow(clippy::type_complexity)]
fn disagreements<'v>(
    a: impl Iterator<Item = (u64, &'v str)>,
    b: impl Iterator<Item = (u64, &'v str)>,
) -> (usize, Option<(u64, Option<&'v str>, Option<&'v str>)>) {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut count = 0;
    let mut first = None;
    loop {
        let (offset, held_a, held_b) = match (a.peek().copied(), b.peek().copied()) {
            (None, None) => break,
            (Some((oa, va)), Some((ob, vb))) if oa == ob => {
                a.next();
                b.next();
                (oa, Some(va), Some(vb))
            }
            (Some((oa, va)), Some((ob, _))) if oa < ob => {
                a.next();
                (oa, Some(va), None)
            }
            (Some((oa, va)), None) => {
                a.next();
                (oa, Some(va), None)
            }
            (_, Some((ob, vb))) => {
                b.next();
                (ob, None, Some(vb))
            }
        };
        if held_a != held_b {
            count += 1;
            first.get_or_insert((offset, held_a, held_b));
        }
    }
    (count, first)
}

#[cfg(test)]
mod tests {
    /// Each check's cases — a hand-made record that breaks its rule, and ones that keep
    /// it — are the table `src/check/testdata/replication.txt` (read by `check::tables`).
    #[test]
    fn replication_rules() {
        crate::check::tables::run_broker_table("src/check/testdata/replication.txt");
    }
}
