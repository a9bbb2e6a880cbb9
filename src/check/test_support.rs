//! Hand-made run records for the checkers' unit tests that are still written in Rust: a
//! two-writer scenario (the writer table's), kills, ensemble roles, the brokers' events and
//! producer history of partition `orders/0`. The checks' own cases are tables
//! (`check::tables`).

use super::Violation;
use crate::broker::server::BrokerEvent;
use crate::broker::{Acks, BrokerId, TopicPartition};
use crate::history::{
    Announcement, Effect, Event, Fault, FaultSource, HistoryEntry, NodeEffect, Op, SendOutcome,
    WorldEvent,
};
use crate::log::{LeaderEpoch, Offset};
use crate::scenario::{parse, Scenario};
use crate::zk::server::ZkServerEvent;
use crate::zk::{Epoch, ServerId, Zxid};
use std::path::Path;

/// A scenario with writers `writer-1` and `writer-2`, a 10 s fault phase and a 5 s heal.
pub fn writer_scenario() -> Scenario {
    let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n\
                [[writer]]\ncount = 2\nrate = 10\n";
    parse(Path::new("t.toml"), text.as_bytes()).unwrap()
}

/// `node` announced `announced`.
pub fn event(at_us: u64, node: &str, announced: impl Into<Announcement>) -> Event {
    Event {
        at_us,
        node: node.into(),
        announced: announced.into(),
    }
}

/// The world killed `node`.
pub fn killed(at_us: u64, node: &str) -> Event {
    let fault = Fault {
        action: "kill".into(),
        source: FaultSource::Scheduled {
            target: Some(node.into()),
            line: 1,
        },
        sides: None,
        rate: None,
        nodes: Some(vec![NodeEffect {
            node: node.into(),
            effect: Effect::Killed,
        }]),
    };
    event(at_us, "world", WorldEvent::Fault(fault))
}

/// Ensemble server `node` announced a role: `leading` or `following` in `epoch`, or
/// `looking`.
pub fn zk_role(at_us: u64, node: &str, role: &str, epoch: u64) -> Event {
    let epoch = Epoch(u32::try_from(epoch).expect("a small epoch"));
    let announced = match role {
        "leading" => ZkServerEvent::Leading {
            epoch,
            last_zxid: Zxid::default(),
            followers: Vec::new(),
        },
        "following" => ZkServerEvent::Following {
            leader: ServerId(1),
            epoch: Some(epoch),
            applied: Zxid::default(),
        },
        "looking" => ZkServerEvent::Looking {
            reason: "test".into(),
            round: 1,
            last_zxid: Zxid::default(),
            epoch,
        },
        other => panic!("no ensemble role {other}"),
    };
    event(at_us, node, announced)
}

/// `broker-<broker>` became leader of `tp` in `epoch` with this ISR.
pub fn become_leader(
    at_us: u64,
    broker: u32,
    tp: &TopicPartition,
    epoch: i32,
    isr: &[u32],
) -> Event {
    let announced = BrokerEvent::BecomeLeader {
        partition: *tp,
        leader_epoch: LeaderEpoch(epoch),
        leo: Offset(0),
        hw: Offset(0),
        isr: isr.iter().map(|&b| BrokerId(b)).collect(),
    };
    event(at_us, &format!("broker-{broker}"), announced)
}

/// `orders/<p>`.
pub fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

/// The node name of broker `n`.
pub fn broker(n: u32) -> String {
    format!("broker-{n}")
}

/// `broker-<broker>` became leader of `orders/<p>` in `epoch`, alone in its ISR.
pub fn leader(at_us: u64, broker: u32, p: u32, epoch: i32) -> Event {
    become_leader(at_us, broker, &tp(p), epoch, &[broker])
}

/// `broker-<broker>` became follower of `leader` for `orders/<p>` in `epoch`.
pub fn follower(at_us: u64, broker: u32, p: u32, leader: u32, epoch: i32) -> Event {
    let announced = BrokerEvent::BecomeFollower {
        partition: tp(p),
        leader: BrokerId(leader),
        leader_epoch: LeaderEpoch(epoch),
        leo: Offset(0),
        hw: Offset(0),
    };
    event(at_us, &self::broker(broker), announced)
}

/// The world killed `broker-<broker>`.
pub fn broker_killed(at_us: u64, broker: u32) -> Event {
    killed(at_us, &self::broker(broker))
}

/// A history entry of `node`.
pub fn h(at_us: u64, node: &str, op: Op) -> HistoryEntry {
    HistoryEntry {
        at_us,
        node: node.into(),
        op,
    }
}

/// The producer named in `value` (`<producer>-<incarnation>-<n>`) sent it to `orders`.
pub fn send(at_us: u64, value: &str, acks: Acks, idempotent: bool) -> HistoryEntry {
    let producer = value.rsplitn(3, '-').nth(2).unwrap().to_string();
    h(
        at_us,
        &producer,
        Op::Send {
            value: value.into(),
            key: None,
            topic: "orders".into(),
            acks,
            idempotent,
        },
    )
}

/// The producer named in `value` was told it is at `offset` of `orders/<p>`.
pub fn ok(at_us: u64, value: &str, p: u32, offset: u64) -> HistoryEntry {
    let producer = value.rsplitn(3, '-').nth(2).unwrap().to_string();
    h(
        at_us,
        &producer,
        Op::SendReturn {
            value: value.into(),
            outcome: SendOutcome::Ok {
                partition: tp(p),
                offset,
            },
        },
    )
}

/// Sends `values` with `acks` and acknowledges each at the given offset of `orders/0`.
pub fn acked(values: &[(&str, u64)], acks: Acks) -> Vec<HistoryEntry> {
    values
        .iter()
        .enumerate()
        .flat_map(|(i, (value, offset))| {
            let at = 1000 * i as u64;
            [send(at, value, acks, true), ok(at + 500, value, 0, *offset)]
        })
        .collect()
}

/// Exactly one violation, whose text holds `needle`.
pub fn one(found: &[Violation], needle: &str) {
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].detail.contains(needle), "{}", found[0].detail);
}

/// Values of producer-1's first incarnation, in send order.
pub const A: &str = "producer-1-1-0";
pub const B: &str = "producer-1-1-1";
