//! The brokers: partition replicas on the log engine, the controller on the ensemble, and
//! the wire protocol between brokers and clients. Pure cores; the shell is
//! `node::broker`.
//!
//! Modules: [`types`] (ids, partitions, acks, Kafka's error names), [`proto`] (requests
//! and responses), [`replica`] (one partition replica: leader and follower logic),
//! [`epoch_cache`] (its leader epoch cache), [`producer_state`] (its idempotent producers).

pub mod epoch_cache;
pub mod producer_state;
pub mod proto;
pub mod replica;
pub mod types;

pub use types::{
    Acks, BrokerId, Bytes, KafkaError, PartitionState, ProducerIdentity, TopicPartition,
};
