//! The brokers: partition replicas on the log engine, the controller on the ensemble, and
//! the wire protocol between brokers and clients. Pure cores; the shell is
//! `node::broker`.
//!
//! Modules: [`types`] (ids, epochs, partitions, acks, Kafka's error names), [`proto`] (requests
//! and responses), [`zk_paths`] (the znode layout), [`controller`] (election, leader
//! and ISR decisions), [`coordinator`] (consumer groups and their offsets), [`txn_coordinator`]
//! (transactions: producer epochs, two-phase commit, markers), [`replica`] (one partition
//! replica: leader and follower logic), [`epoch_cache`] (its leader epoch cache),
//! [`producer_state`] (its idempotent and transactional producers, the last stable offset),
//! [`txn_index`] (its aborted transactions), [`server`] (one broker: registration, requests,
//! replication, purgatories).

pub mod controller;
pub mod coordinator;
pub mod epoch_cache;
pub mod producer_state;
pub mod proto;
pub mod replica;
pub mod server;
#[cfg(test)]
mod test_ens;
pub mod topic;
pub mod txn_coordinator;
pub mod txn_index;
pub mod types;
pub mod zk_paths;

pub use types::{
    Acks, BrokerEpoch, BrokerId, Bytes, ControllerEpoch, KafkaError, PartitionEpoch,
    PartitionState, ProducerId, ProducerIdentity, Topic, TopicPartition,
};
