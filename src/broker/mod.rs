//! The brokers: partition replicas on the log engine, the controller on the ensemble, and
//! the wire protocol between brokers and clients. Pure cores; the shell is
//! `node::broker`.
//!
//! Modules: [`types`] (ids, partitions, acks, Kafka's error names), [`proto`] (requests
//! and responses), [`zk_paths`] (the znode layout), [`controller`] (election, leader
//! and ISR decisions).

pub mod controller;
pub mod proto;
pub mod types;
pub mod zk_paths;

pub use types::{
    Acks, BrokerId, Bytes, KafkaError, PartitionState, ProducerIdentity, TopicPartition,
};
