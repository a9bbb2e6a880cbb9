//! ksim: a deterministic simulation testbed of a Kafka-like event streaming platform.

pub mod check;
pub mod disk;
pub mod scenario;
