//! The ZooKeeper-like ensemble: the replicated coordination service brokers stand on.
//!
//! Owns (pure, sans-IO — no clocks, sockets, awaits or madsim):
//! - `types`: ids, stats, operations, transactions, errors;
//! - `tree`: the data tree — znodes, ephemerals, sequential names, watches;
//! - `proto`: what servers and clients say to each other;
//! - `election`: fast leader election;
//! - `server`: a server — ZAB discovery, sync and broadcast, sessions, client requests;
//! - `client`: a client — connection failover, session, pending requests, watches.
//!
//! And `store`: a server's transaction log, snapshots and epoch files over a
//! [`Disk`](crate::disk::Disk), and their recovery (ZooKeeper's `FileTxnSnapLog`) — disk
//! I/O, but like the log engine it never awaits or reads a clock.

pub mod client;
pub mod election;
pub mod proto;
pub mod server;
pub mod store;
pub mod tree;
pub mod types;
pub mod workload;

pub use types::*;
