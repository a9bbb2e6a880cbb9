//! From a scenario to the cores' configurations: the one translation of a scenario's tables
//! and Kafka/ZooKeeper config keys into what each core takes.
//!
//! Owns: every mapping of a scenario key onto a core setting, and nothing else. A key the
//! scenario leaves out takes the core's own default (`Default` impls and `DEFAULT_*`
//! constants next to each core's config), so a default is written in exactly one place.
//! Node shells and checkers both read a scenario through here, so a checker reopens a log
//! with exactly the configuration its writer used.

use super::{
    AssignmentStrategy, BrokerConfig, ConsumerSpec, IsolationLevel, ProcessorSpec, ProducerSpec,
    Scenario,
};
use crate::broker::controller::{ControllerConfig, TopicSpec};
use crate::broker::coordinator::{CoordinatorConfig, OFFSETS_TOPIC};
use crate::broker::replica::ReplicaConfig;
use crate::broker::server::BrokerConfig as BrokerCoreConfig;
use crate::broker::txn_coordinator::{
    TxnCoordinatorConfig, DEFAULT_TRANSACTION_STATE_MIN_ISR,
    DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR, TRANSACTION_STATE_TOPIC,
};
use crate::broker::BrokerId;
use crate::client::assignor::Assignor;
use crate::client::consumer::{ConsumerConfig, GroupConfig};
use crate::client::producer::ProducerConfig;
use crate::log::LogConfig;
use crate::zk::server::{ServerConfig, ServerLegacy};
use crate::zk::ServerId;
use std::collections::BTreeMap;

/// Kafka's default `log.retention.ms`: 7 days.
const DEFAULT_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default `offsets.topic.replication.factor`.
const DEFAULT_OFFSETS_REPLICATION_FACTOR: u32 = 3;

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

/// The ensemble server `id`'s configuration (`[cluster.zookeeper]`).
pub fn zk_server_config(scenario: &Scenario, id: ServerId) -> ServerConfig {
    let zk = &scenario.cluster.zookeeper;
    let defaults = ServerConfig::default();
    ServerConfig {
        id,
        servers: (1..=u64::from(scenario.cluster.zookeepers))
            .map(ServerId)
            .collect(),
        tick_ms: zk.tick_time_ms.unwrap_or(defaults.tick_ms),
        init_limit: zk.init_limit.map_or(defaults.init_limit, u64::from),
        sync_limit: zk.sync_limit.map_or(defaults.sync_limit, u64::from),
        snap_count: zk.snap_count.unwrap_or(defaults.snap_count),
        incarnation: 0,
        legacy: ServerLegacy {
            diff_only_sync: scenario.legacy.zk_diff_only_sync,
            ack_before_sync: scenario.legacy.zk_ack_before_sync,
        },
    }
}

/// ZooKeeper's `forceSync` (default yes): fsync the transaction log before acknowledging.
pub fn zk_force_sync(scenario: &Scenario) -> bool {
    scenario.cluster.zookeeper.force_sync.unwrap_or(true)
}

/// The brokers' group coordinator settings.
pub fn coordinator_config(scenario: &Scenario) -> CoordinatorConfig {
    let config = &scenario.cluster.broker;
    let defaults = CoordinatorConfig::default();
    CoordinatorConfig {
        offsets_partitions: config
            .offsets_topic_num_partitions
            .unwrap_or(defaults.offsets_partitions),
        initial_rebalance_delay_ms: config
            .group_initial_rebalance_delay_ms
            .unwrap_or(defaults.initial_rebalance_delay_ms),
        legacy_unfenced_offset_commits: scenario.legacy.unfenced_offset_commits,
        legacy_unfenced_txn_offset_commits: scenario.legacy.unfenced_transactional_producer,
        ..defaults
    }
}

/// The brokers' transaction coordinator settings: Kafka's defaults
/// (`transaction.state.log.num.partitions` 50, `transaction.max.timeout.ms` 15 min,
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` 10 s, transaction version
/// 2), with the scenario's `offsets.topic.num.partitions` (AddOffsetsToTxn names the
/// group's offsets partition) and `transaction.state.log.num.partitions` from the scenario;
/// transaction version 1 under `[legacy] no-epoch-bump-per-transaction`.
pub fn txn_coordinator_config(scenario: &Scenario) -> TxnCoordinatorConfig {
    let defaults = TxnCoordinatorConfig::default();
    TxnCoordinatorConfig {
        transaction_version_2: !scenario.legacy.no_epoch_bump_per_transaction,
        offsets_partitions: coordinator_config(scenario).offsets_partitions,
        transaction_state_partitions: scenario
            .cluster
            .broker
            .transaction_state_log_num_partitions
            .unwrap_or(defaults.transaction_state_partitions),
        ..defaults
    }
}

/// Whether the cluster needs `__transaction_state` (Kafka creates it on the first
/// FindCoordinator for a transaction): a producer has a `transactional.id`. The partition
/// budget (`scenario::budget`) counts the topic then.
pub fn needs_transactions(scenario: &Scenario) -> bool {
    scenario.has_transactional_producers()
}

/// `__transaction_state` as the first controller creates it:
/// `transaction.state.log.num.partitions` partitions, replicated
/// `transaction.state.log.replication.factor` times (at most once per broker), with
/// `transaction.state.log.min.isr` (Kafka's defaults: 50, 3, 2).
fn transaction_state_spec(scenario: &Scenario) -> TopicSpec {
    let config = &scenario.cluster.broker;
    TopicSpec {
        name: TRANSACTION_STATE_TOPIC.to_string(),
        partitions: txn_coordinator_config(scenario).transaction_state_partitions,
        replication_factor: config
            .transaction_state_log_replication_factor
            .unwrap_or(u32::from(DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR))
            .min(scenario.cluster.brokers),
        min_insync_replicas: config
            .transaction_state_log_min_isr
            .map_or(usize::from(DEFAULT_TRANSACTION_STATE_MIN_ISR), |m| {
                m as usize
            }),
    }
}

/// The topics the first controller creates: the scenario's, then `__consumer_offsets`
/// when a group needs it (Kafka creates it on the first FindCoordinator), then
/// `__transaction_state` when [`needs_transactions`] says so.
pub fn topic_specs(scenario: &Scenario) -> Vec<TopicSpec> {
    let config = &scenario.cluster.broker;
    let min_isr = |topic: Option<u32>| {
        topic
            .or(config.min_insync_replicas)
            .map_or(ReplicaConfig::default().min_insync_replicas, |m| m as usize)
    };
    let mut topics: Vec<TopicSpec> = scenario
        .topics
        .iter()
        .map(|t| TopicSpec {
            name: t.name.clone(),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            min_insync_replicas: min_isr(t.min_insync_replicas),
        })
        .collect();
    if scenario.consumers.iter().any(|c| c.group.is_some()) || !scenario.processors.is_empty() {
        topics.push(TopicSpec {
            name: OFFSETS_TOPIC.to_string(),
            partitions: coordinator_config(scenario).offsets_partitions,
            replication_factor: config
                .offsets_topic_replication_factor
                .unwrap_or(DEFAULT_OFFSETS_REPLICATION_FACTOR)
                .min(scenario.cluster.brokers),
            min_insync_replicas: min_isr(None),
        });
    }
    if needs_transactions(scenario) {
        topics.push(transaction_state_spec(scenario));
    }
    topics
}

/// Broker `id`'s core configuration: its replicas, controller and coordinators.
pub fn broker_config(scenario: &Scenario, id: BrokerId) -> BrokerCoreConfig {
    let config = &scenario.cluster.broker;
    let legacy = &scenario.legacy;
    let replica_defaults = ReplicaConfig::default();
    BrokerCoreConfig {
        id,
        incarnation: 0,
        replica: ReplicaConfig {
            replica_lag_time_max_ms: config
                .replica_lag_time_max_ms
                .unwrap_or(replica_defaults.replica_lag_time_max_ms),
            min_insync_replicas: config
                .min_insync_replicas
                .map_or(replica_defaults.min_insync_replicas, |m| m as usize),
            legacy_lenient_min_isr: legacy.lenient_min_isr,
            legacy_offsets_for_leader_epoch_v0: legacy.offsets_for_leader_epoch_v0,
            legacy_truncate_to_hw: legacy.truncate_to_hw,
            transaction_verification: !legacy.no_add_partition_verification,
            log: log_config(config),
            ..replica_defaults
        },
        topic_min_isr: scenario
            .topics
            .iter()
            .filter_map(|t| t.min_insync_replicas.map(|m| (t.name.clone(), m as usize)))
            .chain(
                needs_transactions(scenario)
                    .then(|| transaction_state_spec(scenario))
                    .map(|t| (t.name, t.min_insync_replicas)),
            )
            .collect::<BTreeMap<_, _>>(),
        controller: ControllerConfig {
            broker_id: id,
            brokers: (1..=scenario.cluster.brokers).map(BrokerId).collect(),
            topics: topic_specs(scenario),
            unclean_leader_election: config.unclean_leader_election_enable.unwrap_or(false),
            legacy_unfenced_writes: legacy.unfenced_controller_writes,
            legacy_no_broker_epoch: legacy.no_broker_epoch,
            eligible_leader_replicas: !legacy.lenient_min_isr,
        },
        coordinator: coordinator_config(scenario),
        txn_coordinator: txn_coordinator_config(scenario),
    }
}

/// The consumer core's configuration for process `k` (0-based) of the `[[consumer]]` table
/// `spec`, named `name`.
pub fn consumer_config(
    scenario: &Scenario,
    spec: &ConsumerSpec,
    k: u32,
    name: &str,
    bootstrap: Vec<BrokerId>,
) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(spec.topics.clone(), bootstrap);
    config.isolation_level = match spec.config.isolation_level {
        Some(IsolationLevel::ReadCommitted) => crate::broker::proto::IsolationLevel::ReadCommitted,
        Some(IsolationLevel::ReadUncommitted) | None => {
            crate::broker::proto::IsolationLevel::ReadUncommitted
        }
    };
    // `earliest` unless `latest` (the testbed's default: every record is read).
    if spec.config.auto_offset_reset.as_deref() == Some("latest") {
        config.auto_offset_reset = crate::broker::proto::OffsetSpec::Latest;
    }
    config.group = spec.group.as_ref().map(|group| {
        let c = &spec.config;
        let mut g = GroupConfig::new(group, name);
        g.assignor = match c.partition_assignment_strategy {
            Some(AssignmentStrategy::CooperativeSticky) => Assignor::CooperativeSticky,
            Some(AssignmentStrategy::Range) | None => Assignor::Range,
        };
        g.session_timeout_ms = c.session_timeout_ms.unwrap_or(g.session_timeout_ms);
        g.heartbeat_interval_ms = c.heartbeat_interval_ms.unwrap_or(g.heartbeat_interval_ms);
        g.max_poll_interval_ms = c.max_poll_interval_ms.unwrap_or(g.max_poll_interval_ms);
        g.enable_auto_commit = c.enable_auto_commit.unwrap_or(g.enable_auto_commit);
        g.auto_commit_interval_ms = c
            .auto_commit_interval_ms
            .unwrap_or(g.auto_commit_interval_ms);
        g.legacy_commit_before_process = scenario.legacy.commit_before_process;
        g.legacy_cooperative_no_holdback = scenario.legacy.cooperative_no_holdback;
        // One instance id per process: several consumers of one table get `-<k>`.
        g.group_instance_id = c.group_instance_id.as_ref().map(|id| {
            if spec.count == 1 {
                id.clone()
            } else {
                format!("{id}-{}", k + 1)
            }
        });
        g
    });
    config
}

/// The two cores of processor `k` (0-based) of the `[[processor]]` table `spec`, named
/// `name`: its consumer (a read_committed group member whose offsets go with the
/// transactions) and its transactional producer (transactions begun and ended by the
/// processor, its `transactional.id` numbered as a producer table's).
pub fn processor_config(
    scenario: &Scenario,
    spec: &ProcessorSpec,
    k: u32,
    name: &str,
    bootstrap: Vec<BrokerId>,
) -> (ConsumerConfig, ProducerConfig) {
    let mut consumer = consumer_config(scenario, &spec.consumer, k, name, bootstrap.clone());
    if let Some(g) = consumer.group.as_mut() {
        g.offsets_by_transaction = true;
        g.enable_auto_commit = false;
    }
    let mut producer = producer_config(&spec.producer, k, bootstrap);
    producer.txn_workload.by_application = true;
    (consumer, producer)
}

/// The producer core's configuration for producer `k` (0-based) of the `[[producer]]` table
/// `spec`: [`ProducerSpec::client_config`], with the `transactional.id` numbered per
/// producer when the table has several (`<id>-<k + 1>`, see
/// [`ProducerSpec::transactional_ids`]).
pub fn producer_config(spec: &ProducerSpec, k: u32, bootstrap: Vec<BrokerId>) -> ProducerConfig {
    let mut config = spec.client_config(bootstrap);
    if config.transactional_id.is_some() {
        config.transactional_id = spec.transactional_ids().into_iter().nth(k as usize);
    }
    config
}
