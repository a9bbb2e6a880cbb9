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
    //! Each check fires on hand-made events and final logs that break its rule, and stays
    //! quiet on ones that keep it: the checkers can fail.
    use super::*;
    use crate::check::kafka::ReplicaLogs;
    use crate::check::test_support::*;
    use crate::history::ShellEvent;
    use crate::log::Offset;

    #[test]
    fn single_leader_per_epoch_fires_on_two_leaders_in_one_epoch() {
        let two = [leader(10, 1, 0, 3), leader(20, 2, 0, 3)];
        let found = Facts::new(&two, &[], &ReplicaLogs::new()).single_leader_per_epoch();
        one(&found, "leader epoch 3 has two leaders: broker-1");
        assert_eq!(found[0].at_ms, Some(0));

        // A follower told of another leader in the same epoch.
        let told = [leader(10, 1, 0, 3), follower(20, 3, 0, 2, 3)];
        let found = Facts::new(&told, &[], &ReplicaLogs::new()).single_leader_per_epoch();
        one(&found, "broker-2 (broker-3 `become-follower`");

        // Re-announcing after a restart, and followers agreeing, are fine.
        let fine = [
            leader(10, 1, 0, 3),
            follower(15, 2, 0, 1, 3),
            broker_killed(20, 1),
            leader(30, 1, 0, 3),
            leader(40, 2, 0, 4),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .single_leader_per_epoch()
            .is_empty());
    }

    #[test]
    fn leader_epoch_monotonic_fires_when_epochs_go_back() {
        // Within one incarnation of broker-2.
        let back = [follower(10, 2, 0, 1, 5), follower(20, 2, 0, 1, 4)];
        let found = Facts::new(&back, &[], &ReplicaLogs::new()).leader_epoch_monotonic();
        one(&found, "from leader epoch 5 (at 0.000s) back to 4");
        // A controller wrote an older leader epoch over a newer one (announced late).
        let state = |at, broker, version, epoch| state(at, broker, version, epoch, 1);
        let stale = [state(10, 1, 3, 5), state(20, 2, 4, 4), state(5, 2, 2, 4)];
        let found = Facts::new(&stale, &[], &ReplicaLogs::new()).leader_epoch_monotonic();
        one(&found, "broker-2 wrote leader epoch 4 in partition epoch 4");
        // Announced out of order but written in order; and a zombie leader in an old epoch
        // (a paused broker applying a superseded LeaderAndIsr) is the data checks' business.
        let fine = [
            state(10, 1, 4, 6),
            state(20, 2, 3, 5),
            leader(30, 1, 0, 6),
            leader(40, 2, 0, 5),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .leader_epoch_monotonic()
            .is_empty());

        // A restart forgets the follower's epoch.
        let fine = [
            follower(10, 2, 0, 1, 5),
            broker_killed(15, 2),
            follower(20, 2, 0, 1, 4),
            leader(30, 1, 0, 5),
            leader(40, 1, 0, 6),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .leader_epoch_monotonic()
            .is_empty());
    }

    #[test]
    fn hw_monotonic_fires_when_a_replicas_hw_decreases_in_one_incarnation() {
        let back = [hw(10, 1, 0, 5), hw(20, 1, 0, 3)];
        let found = Facts::new(&back, &[], &ReplicaLogs::new()).hw_monotonic();
        one(&found, "HW went from 5 (at 0.000s) back to 3");

        // A restart (announced by the broker's own incarnation number) starts over; other
        // replicas and partitions are separate.
        let started =
            |at, incarnation| event(at, "broker-1", ShellEvent::BrokerStarted { incarnation });
        let fine = [
            started(1, 1),
            hw(10, 1, 0, 5),
            hw(11, 2, 0, 2),
            hw(12, 1, 1, 1),
            started(15, 2),
            hw(20, 1, 0, 3),
            hw(30, 1, 0, 3),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .hw_monotonic()
            .is_empty());
    }

    #[test]
    fn committed_prefix_agreement_fires_when_in_sync_replicas_disagree_below_the_hw() {
        let events = [
            leader(10, 1, 0, 1),
            follower(10, 2, 0, 1, 1),
            hw(20, 2, 0, 2),
            hw(30, 1, 0, 3),
        ];
        let diverged = logs(vec![
            (1, flog(0, &[(0, A), (1, B), (2, C)])),
            (2, flog(0, &[(0, A), (1, "producer-2-1-0"), (2, C)])),
        ]);
        let found = Facts::new(&events, &[], &diverged).committed_prefix_agreement();
        one(
            &found,
            "broker-1 and broker-2 disagree on 1 offsets below the committed HW 3",
        );
        assert!(found[0].detail.contains("first at offset 1"));

        // Disagreement above the committed HW, or a shorter follower, is fine.
        let tail = logs(vec![
            (1, flog(0, &[(0, A), (1, B), (2, C), (3, "producer-1-1-3")])),
            (2, flog(0, &[(0, A), (1, B), (2, C), (3, "producer-2-1-0")])),
        ]);
        assert!(Facts::new(&events, &[], &tail)
            .committed_prefix_agreement()
            .is_empty());
        let short = logs(vec![
            (1, flog(0, &[(0, A), (1, B), (2, C)])),
            (2, flog(0, &[(0, A)])),
        ]);
        assert!(Facts::new(&events, &[], &short)
            .committed_prefix_agreement()
            .is_empty());
        // A follower that has not fetched since it (re)joined may hold an unreconciled tail.
        let rejoined = [
            leader(10, 1, 0, 1),
            follower(10, 2, 0, 1, 1),
            hw(30, 1, 0, 3),
            broker_killed(40, 2),
            follower(50, 2, 0, 1, 1),
        ];
        assert!(Facts::new(&rejoined, &[], &diverged)
            .committed_prefix_agreement()
            .is_empty());

        // A replica log that cannot be read back is reported.
        let broken = logs(vec![(
            1,
            FinalLog {
                error: Some("corrupt below the recovery point".into()),
                ..FinalLog::default()
            },
        )]);
        let found = Facts::new(&[], &[], &broken).committed_prefix_agreement();
        one(&found, "cannot be read back");
    }

    #[test]
    fn no_truncation_below_hw_fires_on_a_truncation_under_the_hw() {
        let truncate = |to, hw| {
            let announced = BrokerEvent::Truncate {
                partition: tp(0),
                from: Offset(6),
                to: Offset(to),
                hw: Offset(hw),
            };
            event(10, "broker-2", announced)
        };
        let found =
            Facts::new(&[truncate(2, 4)], &[], &ReplicaLogs::new()).no_truncation_below_hw();
        one(
            &found,
            "broker-2 truncated its log from 6 to 2 below its HW 4",
        );
        assert_eq!(found[0].node.as_deref(), Some("broker-2"));
        assert!(Facts::new(&[truncate(4, 4)], &[], &ReplicaLogs::new())
            .no_truncation_below_hw()
            .is_empty());
    }
}
