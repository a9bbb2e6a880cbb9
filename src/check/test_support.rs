//! Hand-made run records for the checkers' unit tests: a two-writer scenario, writer
//! acknowledgements and world events.

use crate::broker::server::BrokerEvent;
use crate::broker::{BrokerId, TopicPartition};
use crate::history::{
    Announcement, Effect, Event, Fault, FaultSource, HistoryEntry, NodeEffect, Op, WorldEvent,
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

/// `node` acknowledged `value` at `offset`.
pub fn append_ok(at_us: u64, node: &str, value: &str, offset: u64) -> HistoryEntry {
    HistoryEntry {
        at_us,
        node: node.into(),
        op: Op::AppendOk {
            value: value.into(),
            offset,
        },
    }
}

/// `node` announced `announced`.
pub fn event(at_us: u64, node: &str, announced: impl Into<Announcement>) -> Event {
    Event {
        at_us,
        node: node.into(),
        announced: announced.into(),
    }
}

/// The world's `heal` (nothing to restart) or `stop`.
pub fn world_event(at_us: u64, kind: &str) -> Event {
    let announced = match kind {
        "heal" => WorldEvent::Heal {
            nodes: Vec::new(),
            network: false,
        },
        "stop" => WorldEvent::Stop {},
        other => panic!("no hand-made world event {other}"),
    };
    event(at_us, "world", announced)
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
        partition: tp.clone(),
        leader_epoch: LeaderEpoch(epoch),
        leo: Offset(0),
        hw: Offset(0),
        isr: isr.iter().map(|&b| BrokerId(b)).collect(),
    };
    event(at_us, &format!("broker-{broker}"), announced)
}
