//! The clients: a producer and an assign-mode consumer, as pure cores that the node shells
//! drive (the shells are `node::producer` and `node::consumer`).
//!
//! Sans-IO like the ensemble client (`zk::client`): a core never awaits, reads no clock
//! (`now_ms` is an argument), draws randomness only from an `&mut impl Rng` argument and
//! iterates only ordered maps. Inputs are calls (`send`, `tick`, `on_connected`,
//! `on_closed`, `on_response`); outputs are actions taken with `take_actions`: connect to a
//! broker, write a request on a connection, close one, and what to record in the history
//! (a send's completion; a consumer's assignment and polled records).
//!
//! Modules: [`partitioner`] (murmur2, round-robin, uniform sticky), [`network`] (connections,
//! in-flight requests, timeouts: Kafka's `NetworkClient`), [`metadata`] (who leads which
//! partition, in which epoch), [`producer`], [`consumer`], [`assignor`] (range and
//! cooperative-sticky, and the consumer protocol's bytes).

pub mod assignor;
pub mod consumer;
pub mod metadata;
pub mod network;
pub mod partitioner;
pub mod producer;

pub use consumer::{ConsumerAction, ConsumerConfig, ConsumerCore};
pub use network::{ConnectionId, NetAction, NetConfig};
pub use partitioner::{murmur2, to_positive, Partitioner, PartitionerKind};
pub use producer::{ProducerAction, ProducerConfig, ProducerCore};
