//! The ZooKeeper-like ensemble: the replicated coordination service brokers stand on.
//!
//! Owns (pure, sans-IO — no clocks, sockets, awaits or madsim):
//! - `types`: ids, stats, operations, transactions, errors;
//! - `tree`: the data tree — znodes, ephemerals, sequential names, watches;
//! - `proto`: what servers and clients say to each other;
//! - `election`: fast leader election;
//! - `server`: a server — ZAB discovery, sync and broadcast, sessions, client requests;
//! - `client`: a client — connection failover, session, pending requests, watches.

pub mod client;
pub mod election;
pub mod proto;
pub mod server;
pub mod tree;
pub mod types;
pub mod workload;

pub use types::*;
