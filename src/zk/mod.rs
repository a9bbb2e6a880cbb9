//! The ZooKeeper-like ensemble: the replicated coordination service brokers stand on.
//!
//! Owns (pure, sans-IO — no clocks, sockets, awaits or madsim):
//! - `types`: ids, stats, operations, transactions, errors;
//! - `tree`: the data tree — znodes, ephemerals, sequential names, watches.

pub mod tree;
pub mod types;

pub use types::*;
