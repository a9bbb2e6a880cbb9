//! ksim: a deterministic simulation testbed of a Kafka-like event streaming platform.
//!
//! See ARCHITECTURE.md for the bird's-eye view and the code map.

pub mod broker;
pub mod check;
pub mod cli;
pub mod client;
pub mod coverage;
pub mod disk;
pub mod history;
pub mod log;
pub mod node;
pub mod report;
pub mod scenario;
pub mod sim;
#[cfg(test)]
mod testdata;
pub mod zk;
