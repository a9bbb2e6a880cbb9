//! Node shells: the only code that owns madsim time, tasks and a node's disk.
//!
//! Owns: turning scenario config into the cores' config ([`log_config`]), paying simulated
//! time for fsyncs ([`pay_sync_debt`]), and the per-kind shells.
//! A shell makes no protocol decisions; it feeds a core (or the log engine) and announces
//! what happened to the [`Recorder`](crate::sim::Recorder).
//!
//! Shells: [`writer`] (standalone log writers), [`zk_server`] and [`zk_client`] (the
//! ensemble), [`broker`] and [`kafka_client`] (brokers, producers, consumers); [`net`]
//! frames their TCP traffic and writes it in batches, [`kafka_net`] carries Kafka's
//! request/response connections and [`zk_session`] the ensemble sessions of brokers and
//! ensemble clients.

pub mod broker;
pub mod kafka_client;
pub mod kafka_net;
pub mod net;
pub mod writer;
pub mod zk_client;
pub mod zk_server;
pub mod zk_session;

use crate::disk::SimDisk;
use crate::log::LogConfig;
use crate::scenario::{BrokerConfig, Scenario};
use std::time::{Duration, UNIX_EPOCH};

/// Kafka's default `log.retention.ms`: 7 days.
const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// The log engine config a broker (or a writer) gets from Kafka's `log.*` broker configs;
/// missing keys take Kafka's defaults.
pub fn log_config(config: &BrokerConfig) -> LogConfig {
    let defaults = LogConfig::default();
    LogConfig {
        segment_bytes: config.log_segment_bytes.unwrap_or(defaults.segment_bytes),
        index_interval_bytes: config
            .log_index_interval_bytes
            .unwrap_or(defaults.index_interval_bytes),
        flush_interval_messages: config.log_flush_interval_messages,
        retention_bytes: config
            .log_retention_bytes
            .and_then(|bytes| u64::try_from(bytes).ok()),
        retention_ms: match config.log_retention_ms {
            Some(ms) => u64::try_from(ms).ok(),
            None => Some(DEFAULT_RETENTION_MS),
        },
    }
}

/// Sleeps off the simulated time the disk's syncs cost since the last call.
pub async fn pay_sync_debt(disk: &SimDisk) {
    let debt = disk.take_sync_debt();
    if debt > Duration::ZERO {
        madsim::time::sleep(debt).await;
    }
}

/// The node's wall clock in epoch milliseconds — simulated, so record timestamps and
/// time-based retention are deterministic.
pub fn now_epoch_ms() -> i64 {
    madsim::time::TimeHandle::current()
        .now_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One writer node as the scenario defines it.
#[derive(Clone, Debug)]
pub struct WriterPlan {
    /// Node name, `writer-<n>`.
    pub name: String,
    /// Records per simulated second.
    pub rate: u32,
    /// `[writer.config]` over `[cluster.broker]`.
    pub config: BrokerConfig,
}

/// The scenario's writers, numbered across all `[[writer]]` tables in order.
pub fn writers(scenario: &Scenario) -> Vec<WriterPlan> {
    let specs = scenario
        .writers
        .iter()
        .flat_map(|spec| std::iter::repeat_n(spec, spec.count as usize));
    scenario
        .writer_names()
        .into_iter()
        .zip(specs)
        .map(|(name, spec)| WriterPlan {
            name,
            rate: spec.rate,
            config: spec.config.merged_over(&scenario.cluster.broker),
        })
        .collect()
}
