//! Where the brokers keep their state in the ensemble, and how it is encoded.
//!
//! Owns: the znode layout of Kafka's ZooKeeper mode and the JSON payloads, one meaning each:
//! - `/brokers/ids/<id>`: EPHEMERAL, one per live broker; its creation zxid is the broker
//!   epoch (KIP-380).
//! - `/controller`: EPHEMERAL `{"brokerid": id}` of the active controller.
//! - `/controller_epoch`: the controller epoch as decimal text; its znode version fences
//!   every controller write (`multi{check(/controller_epoch, version), write}`).
//! - `/brokers/topics/<topic>`: `{"partitions": {"<p>": [replicas...]}}`, the assignment.
//! - `/brokers/topics/<topic>/partitions/<p>/state`: `{"leader", "leader_epoch",
//!   "controller_epoch", "isr"}`; its znode version is the partition epoch.

use super::types::{BrokerId, ControllerEpoch, PartitionEpoch, PartitionState, TopicPartition};
use crate::log::LeaderEpoch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Parent of the brokers' registrations.
pub const BROKER_IDS: &str = "/brokers/ids";
/// Parent of the topics.
pub const TOPICS: &str = "/brokers/topics";
/// The active controller's ephemeral znode.
pub const CONTROLLER: &str = "/controller";
/// The controller epoch.
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";

/// Persistent znodes every broker makes sure exist before registering.
pub const PARENTS: [&str; 3] = ["/brokers", BROKER_IDS, TOPICS];

/// `/brokers/ids/<id>`.
pub fn broker_path(id: BrokerId) -> String {
    format!("{BROKER_IDS}/{}", id.0)
}

/// `/brokers/topics/<topic>`.
pub fn topic_path(topic: &str) -> String {
    format!("{TOPICS}/{topic}")
}

/// `/brokers/topics/<topic>/partitions`.
pub fn partitions_path(topic: &str) -> String {
    format!("{TOPICS}/{topic}/partitions")
}

/// `/brokers/topics/<topic>/partitions/<p>`.
pub fn partition_path(tp: &TopicPartition) -> String {
    format!("{TOPICS}/{}/partitions/{}", tp.topic, tp.partition)
}

/// `/brokers/topics/<topic>/partitions/<p>/state`.
pub fn state_path(tp: &TopicPartition) -> String {
    format!("{}/state", partition_path(tp))
}

/// The payload of `/controller`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerZnode {
    /// The controller's broker.
    pub brokerid: u32,
}

/// The payload of `/brokers/topics/<topic>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicZnode {
    /// Partition index → replicas in assignment order.
    pub partitions: BTreeMap<u32, Vec<u32>>,
}

/// The payload of a partition's state znode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateZnode {
    /// The leader, -1 when offline.
    pub leader: i64,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The epoch of the controller that wrote it.
    pub controller_epoch: u32,
    /// The in-sync replicas.
    pub isr: Vec<u32>,
    /// Eligible leader replicas (KIP-966; absent when empty, as in older znodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<u32>,
}

impl StateZnode {
    /// The znode payload of `state`.
    pub fn of(state: &PartitionState) -> StateZnode {
        StateZnode {
            leader: state.leader.map_or(-1, |b| i64::from(b.0)),
            leader_epoch: state.leader_epoch.0,
            controller_epoch: state.controller_epoch.0,
            isr: state.isr.iter().map(|b| b.0).collect(),
            elr: state.elr.iter().map(|b| b.0).collect(),
        }
    }

    /// Back to a partition state, given the znode version and the replicas.
    pub fn to_state(
        &self,
        partition_epoch: PartitionEpoch,
        replicas: Vec<BrokerId>,
    ) -> PartitionState {
        PartitionState {
            leader: u32::try_from(self.leader).ok().map(BrokerId),
            leader_epoch: LeaderEpoch(self.leader_epoch),
            isr: self.isr.iter().map(|&b| BrokerId(b)).collect(),
            elr: self.elr.iter().map(|&b| BrokerId(b)).collect(),
            controller_epoch: ControllerEpoch(self.controller_epoch),
            partition_epoch,
            replicas,
        }
    }
}

/// JSON bytes of a payload.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("znode payloads serialize")
}

/// A payload from JSON bytes; `None` if malformed.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kafkas_layout() {
        let tp = TopicPartition::new("orders", 2);
        assert_eq!(broker_path(BrokerId(3)), "/brokers/ids/3");
        assert_eq!(state_path(&tp), "/brokers/topics/orders/partitions/2/state");
    }

    #[test]
    fn a_state_round_trips_through_its_znode() {
        let state = PartitionState {
            leader: None,
            leader_epoch: LeaderEpoch(4),
            isr: vec![BrokerId(2)],
            elr: vec![BrokerId(1)],
            controller_epoch: ControllerEpoch(3),
            partition_epoch: PartitionEpoch(7),
            replicas: vec![BrokerId(1), BrokerId(2)],
        };
        let znode = StateZnode::of(&state);
        assert_eq!(znode.leader, -1);
        let back: StateZnode = decode(&encode(&znode)).unwrap();
        assert_eq!(
            back.to_state(PartitionEpoch(7), state.replicas.clone()),
            state
        );
    }
}
