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
//!   broker announced while leader. The replicas in sync at the end — the final leader, and
//!   each broker whose last incarnation ends as follower having announced an `hw` since its
//!   last `become-follower` — agree pairwise on every offset below it that both hold.
//!   (A replica that is down or never caught up may hold an unreconciled tail; `converges`
//!   reports it.)
//! - `no-truncation-below-hw`: a `truncate` with `to < hw`.

use super::broker_events::broker_named;
use super::kafka::Facts;
use super::toolkit::{seconds, violation};
use super::{FinalLog, Violation};
use crate::broker::controller::ControllerEvent;
use crate::broker::server::BrokerEvent;
use crate::broker::{PartitionEpoch, TopicPartition};
use crate::history::Announcement;
use std::collections::{BTreeMap, BTreeSet};

impl<'a> Facts<'a> {
    /// `single-leader-per-epoch`.
    pub fn single_leader_per_epoch(&self) -> Vec<Violation> {
        const CHECK: &str = "single-leader-per-epoch";
        let mut out = Vec::new();
        // (partition, epoch) → (leader, who said so, when).
        let mut claims: BTreeMap<(TopicPartition, i32), (String, &str, u64)> = BTreeMap::new();
        let mut reported: BTreeSet<(TopicPartition, i32)> = BTreeSet::new();
        for (event, announced) in self.events.broker() {
            let (tp, epoch, leader, kind) = match announced {
                BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                } => (
                    partition.clone(),
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
                    partition.clone(),
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
                        Some(&key.0),
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
        let mut per_replica: BTreeMap<(&str, u64, TopicPartition), (i32, u64)> = BTreeMap::new();
        // Per partition: (partition_epoch, leader_epoch, by, at) of every written state.
        let mut written: BTreeMap<TopicPartition, Vec<(PartitionEpoch, i32, &str, u64)>> =
            BTreeMap::new();
        for event in self.events.all() {
            let (tp, epoch, kind) = match event.announced {
                Announcement::Controller(ControllerEvent::PartitionState {
                    partition,
                    leader_epoch,
                    partition_epoch,
                    ..
                }) => {
                    written.entry(partition.clone()).or_default().push((
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
                }) => (partition.clone(), leader_epoch.0, "become-leader"),
                Announcement::Broker(BrokerEvent::BecomeFollower {
                    partition,
                    leader_epoch,
                    ..
                }) => (partition.clone(), leader_epoch.0, "become-follower"),
                _ => continue,
            };
            let replica = (event.broker, event.incarnation, tp.clone());
            if let Some(&(before, at)) = per_replica.get(&replica) {
                if epoch < before {
                    out.push(violation(
                        CHECK,
                        Some(&tp),
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
            let high = per_replica
                .get(&replica)
                .map_or(epoch, |&(b, _)| b.max(epoch));
            per_replica.insert(replica, (high, event.at_us));
        }
        for (tp, mut states) in written {
            states.sort_by_key(|&(version, _, _, at)| (version, at));
            for pair in states.windows(2) {
                let ((v0, e0, by0, at0), (v1, e1, by1, at1)) = (pair[0], pair[1]);
                if e1 < e0 {
                    out.push(violation(
                        CHECK,
                        Some(&tp),
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
        let mut last: BTreeMap<(&str, u64, TopicPartition), (u64, u64)> = BTreeMap::new();
        for (event, announced) in self.events.broker() {
            let BrokerEvent::Hw { partition, hw, .. } = announced else {
                continue;
            };
            let (tp, hw) = (partition.clone(), hw.0);
            let replica = (event.broker, event.incarnation, tp.clone());
            match last.get(&replica) {
                Some(&(before, at)) if hw < before => out.push(violation(
                    CHECK,
                    Some(&tp),
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
                _ => {
                    last.insert(replica, (hw, event.at_us));
                }
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
        // Roles per replica in each incarnation, the committed HW, and who is in sync at
        // the end: (broker, partition) → (leading, fetched since becoming follower).
        let mut role: BTreeMap<(&str, u64, TopicPartition), (bool, bool)> = BTreeMap::new();
        let mut committed: BTreeMap<TopicPartition, (u64, &str, u64)> = BTreeMap::new();
        for event in self.events.all() {
            let key = |tp: TopicPartition| (event.broker, event.incarnation, tp);
            match event.announced {
                Announcement::Broker(BrokerEvent::BecomeLeader { partition, .. }) => {
                    role.insert(key(partition.clone()), (true, false));
                }
                Announcement::Broker(BrokerEvent::BecomeFollower { partition, .. }) => {
                    role.insert(key(partition.clone()), (false, false));
                }
                Announcement::Broker(BrokerEvent::Hw { partition, hw, .. }) => {
                    let (tp, hw) = (partition.clone(), hw.0);
                    let Some(state) = role.get_mut(&key(tp.clone())) else {
                        continue;
                    };
                    state.1 = true;
                    if state.0 && committed.get(&tp).is_none_or(|(h, _, _)| hw > *h) {
                        committed.insert(tp, (hw, event.broker, event.at_us));
                    }
                }
                _ => {}
            }
        }
        for (tp, replicas) in self.logs {
            let Some(&(hw, by, at)) = committed.get(tp) else {
                continue;
            };
            let reference = self.references.get(tp);
            let in_sync: Vec<(&str, &FinalLog)> = replicas
                .iter()
                .filter(|(broker, log)| {
                    if log.error.is_some() {
                        return false;
                    }
                    if reference.is_some_and(|r| r.broker == *broker && r.why == "the final leader")
                    {
                        return true;
                    }
                    let Some(&last) = self.events.last_incarnation.get(broker.as_str()) else {
                        return false;
                    };
                    role.get(&(broker.as_str(), last, tp.clone()))
                        .is_some_and(|&(leading, fetched)| !leading && fetched)
                })
                .map(|(b, l)| (b.as_str(), l))
                .collect();
            for (i, (a, log_a)) in in_sync.iter().enumerate() {
                for (b, log_b) in &in_sync[i + 1..] {
                    let from = log_a.log_start.max(log_b.log_start);
                    let to = hw.min(log_a.log_end).min(log_b.log_end);
                    let values = |log: &'a FinalLog| -> BTreeMap<u64, &'a str> {
                        log.records
                            .iter()
                            .filter(|(o, _)| (from..to).contains(o))
                            .map(|(o, v)| (*o, v.as_str()))
                            .collect()
                    };
                    let (va, vb) = (values(log_a), values(log_b));
                    let differ: Vec<u64> = (from..to).filter(|o| va.get(o) != vb.get(o)).collect();
                    if let Some(&first) = differ.first() {
                        out.push(violation(
                            CHECK,
                            Some(tp),
                            Some(b),
                            self.stop_us,
                            format!(
                                "{a} and {b} disagree on {} offsets below the committed HW {hw} \
                                 ({by} announced it at {}), first at offset {first}: {a} holds \
                                 {} and {b} holds {}",
                                differ.len(),
                                seconds(at),
                                va.get(&first).unwrap_or(&"nothing"),
                                vb.get(&first).unwrap_or(&"nothing")
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
        for (event, announced) in self.events.broker() {
            match announced {
                BrokerEvent::Truncate {
                    partition,
                    from,
                    to,
                    hw,
                } if to < hw => out.push(violation(
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

#[cfg(test)]
mod tests {
    /// Each check's cases — a hand-made record that breaks its rule, and ones that keep
    /// it — are the table `src/check/testdata/replication.txt` (read by `check::tables`).
    #[test]
    fn replication_rules() {
        crate::check::tables::run_broker_table("src/check/testdata/replication.txt");
    }
}
