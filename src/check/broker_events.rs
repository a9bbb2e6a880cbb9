//! The brokers' events read once for every broker check: each event placed in its
//! broker's incarnation, which processes the world ended, who leads at the end, and which
//! partitions lack a leader with a full ISR.
//!
//! Owns: broker incarnations. A broker's memory lives for one incarnation: a new one of
//! `broker-<n>` starts at any `world` fault or heal whose effect on it ended its process
//! ([`Effect::ends_process`](crate::history::Effect::ends_process): killed, restarted, lost
//! power) and at any `broker-started` whose `incarnation` differs from the last one it
//! announced. Pausing does not end an incarnation. What the brokers announce is the
//! [`BrokerEvent`] and [`ControllerEvent`] contract.

use super::toolkit::FxMap;
use crate::broker::controller::ControllerEvent;
use crate::broker::server::BrokerEvent;
use crate::broker::{BrokerId, TopicPartition};
use crate::history::{Announcement, Event, Fault, NodeEffect, ShellEvent, WorldEvent};
use std::collections::BTreeMap;

/// One event of a broker, placed in its incarnation.
pub struct Placed<'a> {
    /// When it was announced.
    pub at_us: u64,
    /// The broker's node name.
    pub broker: &'a str,
    /// Its incarnation then, counted from 0.
    pub incarnation: u64,
    /// What it announced.
    pub announced: &'a Announcement,
    /// Which announcement it is, as far as the checks tell them apart (so they pass over
    /// the others without reading them).
    pub kind: Kind,
    /// The replica a `become-leader`, `become-follower`, `hw` or `truncation-done` is about.
    pub replica: Option<ReplicaId>,
}

/// The announcements the broker checks read, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BecomeLeader,
    BecomeFollower,
    Hw,
    IsrChanged,
    Truncate,
    TruncationDone,
    ControllerElected,
    PartitionState,
    Other,
}

impl Kind {
    fn of(announced: &Announcement) -> Kind {
        match announced {
            Announcement::Broker(BrokerEvent::BecomeLeader { .. }) => Kind::BecomeLeader,
            Announcement::Broker(BrokerEvent::BecomeFollower { .. }) => Kind::BecomeFollower,
            Announcement::Broker(BrokerEvent::Hw { .. }) => Kind::Hw,
            Announcement::Broker(BrokerEvent::IsrChanged { .. }) => Kind::IsrChanged,
            Announcement::Broker(BrokerEvent::Truncate { .. }) => Kind::Truncate,
            Announcement::Broker(BrokerEvent::TruncationDone { .. }) => Kind::TruncationDone,
            Announcement::Controller(controller) => match **controller {
                ControllerEvent::ControllerElected { .. } => Kind::ControllerElected,
                ControllerEvent::PartitionState { .. } => Kind::PartitionState,
                _ => Kind::Other,
            },
            _ => Kind::Other,
        }
    }
}

/// A replica in one incarnation of its broker, numbered from 0 by [`BrokerEvents`].
pub type ReplicaId = u32;

/// A partition some broker's replica announced, numbered from 0 by [`BrokerEvents`].
pub type EventPartId = u32;

/// Every broker's events but the group coordinators', in order, each placed in its
/// incarnation.
pub struct BrokerEvents<'a> {
    placed: Vec<Placed<'a>>,
    /// Each broker's last incarnation.
    pub last_incarnation: BTreeMap<&'a str, u64>,
    /// When each broker's last incarnation began: the event that ended the one before
    /// (absent for a broker still in its first).
    pub last_incarnation_from_us: BTreeMap<&'a str, u64>,
    /// Replicas by (broker, incarnation, partition).
    replica_ids: FxMap<(&'a str, u64, &'a TopicPartition), ReplicaId>,
    /// Each replica's partition.
    replica_parts: Vec<EventPartId>,
    /// The partitions of the replicas.
    part_ids: FxMap<&'a TopicPartition, EventPartId>,
}

impl<'a> BrokerEvents<'a> {
    /// Places every broker event of the run in its incarnation.
    pub fn new(events: &'a [Event]) -> Self {
        let (mut placed, last_incarnation, last_incarnation_from_us) =
            place_in_incarnations(events);
        let mut replica_ids = FxMap::default();
        let mut replica_parts = Vec::new();
        let mut part_ids = FxMap::default();
        for event in &mut placed {
            let partition = match event.announced {
                Announcement::Broker(
                    BrokerEvent::BecomeLeader { partition, .. }
                    | BrokerEvent::BecomeFollower { partition, .. }
                    | BrokerEvent::Hw { partition, .. }
                    | BrokerEvent::TruncationDone { partition, .. },
                ) => partition,
                _ => continue,
            };
            let key = (event.broker, event.incarnation, partition);
            let count = replica_parts.len() as ReplicaId;
            let id = *replica_ids.entry(key).or_insert(count);
            if id == count {
                let parts = part_ids.len() as EventPartId;
                replica_parts.push(*part_ids.entry(partition).or_insert(parts));
            }
            event.replica = Some(id);
        }
        BrokerEvents {
            placed,
            last_incarnation,
            last_incarnation_from_us,
            replica_ids,
            replica_parts,
            part_ids,
        }
    }

    /// How many replicas the events are about.
    pub fn replica_count(&self) -> usize {
        self.replica_parts.len()
    }

    /// How many partitions the replicas are of.
    pub fn part_count(&self) -> usize {
        self.part_ids.len()
    }

    /// The replica `broker` hosts of `partition` in `incarnation`, if an event is about it.
    pub fn replica(
        &self,
        broker: &str,
        incarnation: u64,
        partition: &TopicPartition,
    ) -> Option<ReplicaId> {
        self.replica_ids
            .get(&(broker, incarnation, partition))
            .copied()
    }

    /// The id of `partition`, if a replica of it announced anything.
    pub fn part(&self, partition: &TopicPartition) -> Option<EventPartId> {
        self.part_ids.get(partition).copied()
    }

    /// The partition of `replica`.
    pub fn part_of(&self, replica: ReplicaId) -> EventPartId {
        self.replica_parts[replica as usize]
    }

    /// The events of these kinds, in order.
    pub fn of<'k>(&'k self, kinds: &'k [Kind]) -> impl Iterator<Item = &'k Placed<'a>> + 'k {
        self.placed.iter().filter(|e| kinds.contains(&e.kind))
    }

    /// Every event of a broker node but the group coordinators', in order.
    #[cfg(test)]
    pub fn all(&self) -> impl Iterator<Item = &Placed<'a>> + '_ {
        self.placed.iter()
    }

    /// Per partition, the broker leading it at the end according to the events.
    pub fn final_leaders(&self) -> BTreeMap<TopicPartition, String> {
        // (broker, partition) → leader epoch while it leads in its last incarnation.
        let mut leading: BTreeMap<(&str, TopicPartition), (i32, u64)> = BTreeMap::new();
        for event in self.of(&[Kind::BecomeLeader, Kind::BecomeFollower]) {
            if self.last_incarnation.get(event.broker) != Some(&event.incarnation) {
                continue;
            }
            match event.announced {
                Announcement::Broker(BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                }) => {
                    leading.insert((event.broker, *partition), (leader_epoch.0, event.at_us));
                }
                Announcement::Broker(BrokerEvent::BecomeFollower { partition, .. }) => {
                    leading.remove(&(event.broker, *partition));
                }
                _ => {}
            }
        }
        let mut best: BTreeMap<TopicPartition, ((i32, u64), &str)> = BTreeMap::new();
        for ((broker, tp), key) in leading {
            let entry = best.entry(tp).or_insert((key, broker));
            if key > entry.0 {
                *entry = (key, broker);
            }
        }
        best.into_iter()
            .map(|(tp, (_, broker))| (tp, broker.to_string()))
            .collect()
    }
}

/// The name of broker `id`'s node.
pub fn broker_named(id: BrokerId) -> String {
    format!("broker-{}", id.0)
}

/// The nodes whose process `event` ended: a `world` fault or heal whose `nodes` entry for
/// the node says it was killed, restarted or lost power. Nothing for any other event.
pub fn processes_ended(event: &Event) -> impl Iterator<Item = &str> {
    let nodes: &[NodeEffect] = match event.announced.world() {
        Some(WorldEvent::Fault(Fault {
            nodes: Some(nodes), ..
        }))
        | Some(WorldEvent::Heal { nodes, .. }) => nodes,
        _ => &[],
    };
    nodes
        .iter()
        .filter(|entry| entry.effect.ends_process())
        .map(|entry| entry.node.as_str())
}

/// The partitions (of `expected`, each with its replication factor) that no broker led
/// with a full ISR at `at_us`, judged from the broker events alone: a broker leads from its
/// `become-leader` (with its `isr`, updated by its `isr-changed`) until a `become-follower`
/// or the end of its incarnation. For the liveness check `converges`.
pub fn partitions_without_full_isr(
    events: &[Event],
    expected: &[(TopicPartition, usize)],
    at_us: u64,
) -> Vec<TopicPartition> {
    let upto = events.partition_point(|e| e.at_us <= at_us);
    let (placed, current, _) = place_in_incarnations(&events[..upto]);
    // (broker, partition) → (incarnation, ISR size) while it leads.
    let mut leading: BTreeMap<(&str, TopicPartition), (u64, usize)> = BTreeMap::new();
    for event in &placed {
        match event.announced {
            Announcement::Broker(BrokerEvent::BecomeLeader { partition, isr, .. }) => {
                leading.insert((event.broker, *partition), (event.incarnation, isr.len()));
            }
            Announcement::Broker(BrokerEvent::IsrChanged { partition, isr, .. }) => {
                if let Some(entry) = leading.get_mut(&(event.broker, *partition)) {
                    entry.1 = isr.len();
                }
            }
            Announcement::Broker(BrokerEvent::BecomeFollower { partition, .. }) => {
                leading.remove(&(event.broker, *partition));
            }
            _ => {}
        }
    }
    expected
        .iter()
        .filter(|(tp, rf)| {
            !leading.iter().any(|((broker, t), &(incarnation, isr))| {
                t == tp && isr >= *rf && current.get(broker) == Some(&incarnation)
            })
        })
        .map(|(tp, _)| *tp)
        .collect()
}

/// What [`place_in_incarnations`] finds: the placed events, each broker's last incarnation,
/// and when it began.
type Incarnations<'a> = (
    Vec<Placed<'a>>,
    BTreeMap<&'a str, u64>,
    BTreeMap<&'a str, u64>,
);

/// The brokers' events, each placed in its broker's incarnation; each broker's last
/// incarnation, and when it began.
fn place_in_incarnations(events: &[Event]) -> Incarnations<'_> {
    let mut current: BTreeMap<&str, u64> = BTreeMap::new();
    let mut began: BTreeMap<&str, u64> = BTreeMap::new();
    let mut announced: BTreeMap<&str, u64> = BTreeMap::new();
    let mut placed = Vec::new();
    for event in events {
        if event.node == "world" {
            for node in processes_ended(event).filter(|n| n.starts_with("broker-")) {
                *current.entry(node).or_default() += 1;
                began.insert(node, event.at_us);
            }
            continue;
        }
        if !event.node.starts_with("broker-") {
            continue;
        }
        let broker = event.node.as_str();
        if let Some(&ShellEvent::BrokerStarted { incarnation }) = event.announced.shell() {
            if announced
                .insert(broker, incarnation)
                .is_some_and(|i| i != incarnation)
            {
                *current.entry(broker).or_default() += 1;
                began.insert(broker, event.at_us);
            }
        }
        let incarnation = *current.entry(broker).or_default();
        if matches!(event.announced, Announcement::Coordinator(_)) {
            continue;
        }
        placed.push(Placed {
            at_us: event.at_us,
            broker,
            incarnation,
            announced: &event.announced,
            kind: Kind::of(&event.announced),
            replica: None,
        });
    }
    (placed, current, began)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::PartitionEpoch;
    use crate::check::test_support::{broker_killed, event, follower, leader, tp};

    #[test]
    fn a_partition_converged_only_while_a_live_leader_has_a_full_isr() {
        let expected = [(tp(0), 3)];
        let full = |at| {
            let announced = BrokerEvent::IsrChanged {
                partition: tp(0),
                isr: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                partition_epoch: PartitionEpoch(1),
            };
            event(at, "broker-1", announced)
        };
        let unhealthy = |events: &[Event], at| partitions_without_full_isr(events, &expected, at);
        let events = [leader(10, 1, 0, 1), full(20), broker_killed(30, 1)];
        assert_eq!(unhealthy(&events, 15), vec![tp(0)], "ISR of one");
        assert!(unhealthy(&events, 25).is_empty(), "full ISR");
        assert_eq!(unhealthy(&events, 35), vec![tp(0)], "its leader died");
        let moved = [leader(10, 1, 0, 1), full(20), follower(30, 1, 0, 2, 2)];
        assert_eq!(unhealthy(&moved, 35), vec![tp(0)], "it follows now");
    }

    #[test]
    fn a_broker_start_with_a_new_incarnation_starts_one_and_a_kill_does_too() {
        let started =
            |at, incarnation| event(at, "broker-1", ShellEvent::BrokerStarted { incarnation });
        let events = [
            started(1, 1),
            leader(2, 1, 0, 1),
            broker_killed(3, 1),
            leader(4, 1, 0, 1),
            started(5, 2),
            leader(6, 1, 0, 1),
            started(7, 2),
        ];
        let read = BrokerEvents::new(&events);
        let incarnations: Vec<u64> = read.all().map(|e| e.incarnation).collect();
        assert_eq!(incarnations, [0, 0, 1, 2, 2, 2]);
        assert_eq!(read.last_incarnation["broker-1"], 2);
        assert_eq!(read.final_leaders()[&tp(0)], "broker-1");
        let moved = [leader(2, 1, 0, 1), follower(3, 1, 0, 2, 2)];
        assert!(BrokerEvents::new(&moved).final_leaders().is_empty());
    }
}
