//! The validated scenario model: what the simulator runs.
//!
//! Owns: the public types a scenario file turns into, and their printing back to scenario
//! syntax (`Display` of targets and actions, so `ksim shrink` can write files that parse).
//! Invariants once [`super::parse`] returned a value: every count it checks is at least one,
//! every target names something that exists, faults are sorted by `at`, and each config value
//! is within Kafka's (or ZooKeeper's) own bounds, and the whole is within the resource
//! limits of [`super::limits`]. `None` in a config means "Kafka's default";
//! the model never fills defaults in, the component that owns the setting does
//! ([`ProducerSpec::client_config`] lays a table's settings over the producer's defaults).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::SeedRange;
use crate::broker::types::TopicPartition;
use crate::broker::BrokerId;
use crate::client::partitioner::PartitionerKind;
use crate::client::producer::{ProducerConfig as ClientProducerConfig, TxnWorkload};

/// One scenario file, parsed and validated.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// `[a-z0-9][a-z0-9-._]*`: it names run directories.
    pub name: String,
    pub about: String,
    /// Length of the fault phase (simulated time).
    pub duration: Duration,
    /// Liveness bound: how long after the faults stop the system has to converge.
    pub heal: Duration,
    /// The default seeds of `ksim sweep`.
    pub seeds: SeedRange,
    pub cluster: Cluster,
    pub topics: Vec<Topic>,
    pub producers: Vec<ProducerSpec>,
    pub consumers: Vec<ConsumerSpec>,
    pub processors: Vec<ProcessorSpec>,
    pub writers: Vec<WriterSpec>,
    pub zk_clients: Vec<ZkClientSpec>,
    /// Scheduled faults, sorted by `at` (stable: equal times keep file order).
    pub faults: Vec<Fault>,
    pub nemesis: Option<Nemesis>,
    pub expect: Option<Expect>,
    pub legacy: Legacy,
    /// The exact file text (a run directory keeps a copy, replay re-reads it).
    pub source: String,
    pub path: PathBuf,
}

impl Scenario {
    /// `writer-1`..`writer-N`, numbered across all `[[writer]]` tables in file order.
    pub fn writer_names(&self) -> Vec<String> {
        numbered("writer", self.writers.iter().map(|w| w.count).sum())
    }

    /// `processor-1`..`processor-N`, numbered across all `[[processor]]` tables in file
    /// order.
    pub fn processor_names(&self) -> Vec<String> {
        numbered("processor", self.processors.iter().map(|p| p.count).sum())
    }

    /// `zk-client-1`..`zk-client-N`, numbered across all `[[zk_client]]` tables in file order.
    pub fn zk_client_names(&self) -> Vec<String> {
        numbered("zk-client", self.zk_clients.iter().map(|c| c.count).sum())
    }

    /// `zk-1`..`zk-N`: the ensemble's servers.
    pub fn zk_names(&self) -> Vec<String> {
        numbered("zk", self.cluster.zookeepers)
    }

    /// Every node: `zk-*`, `broker-*`, `producer-*`, `consumer-*`, `writer-*`,
    /// `zk-client-*`, in that order, each kind numbered from 1.
    pub fn node_names(&self) -> Vec<String> {
        NodeCounts::of(self).names()
    }

    /// Whether a producer has a `transactional.id`, or there are processors: the brokers
    /// then need the transaction coordinator and `__transaction_state`.
    pub fn has_transactional_producers(&self) -> bool {
        !self.processors.is_empty()
            || self
                .producers
                .iter()
                .any(|p| p.config.transactional_id.is_some())
    }

    /// Every producer's and processor's `transactional.id`, by node name (`producer-<n>`,
    /// `processor-<n>`); producers without one are left out.
    pub fn transactional_ids(&self) -> BTreeMap<String, String> {
        let mut ids = BTreeMap::new();
        let tables = self
            .producers
            .iter()
            .map(|p| ("producer", p))
            .chain(self.processors.iter().map(|p| ("processor", &p.producer)));
        let mut index: BTreeMap<&str, u32> = BTreeMap::new();
        for (kind, spec) in tables {
            let table = spec.transactional_ids();
            for k in 0..spec.count as usize {
                let n = index.entry(kind).or_default();
                *n += 1;
                if let Some(id) = table.get(k) {
                    ids.insert(format!("{kind}-{n}"), id.clone());
                }
            }
        }
        ids
    }

    /// Every node reading as a consumer, with its table: `consumer-<n>` of the
    /// `[[consumer]]` tables, then `processor-<n>` (each a member of its group), in node
    /// order.
    pub fn reader_nodes(&self) -> Vec<(String, &ConsumerSpec)> {
        let mut nodes = Vec::new();
        let tables = self
            .consumers
            .iter()
            .map(|c| ("consumer", c))
            .chain(self.processors.iter().map(|p| ("processor", &p.consumer)));
        let mut index: BTreeMap<&str, u32> = BTreeMap::new();
        for (kind, spec) in tables {
            for _ in 0..spec.count {
                let n = index.entry(kind).or_default();
                *n += 1;
                nodes.push((format!("{kind}-{n}"), spec));
            }
        }
        nodes
    }

    /// Every consumer group: its member nodes (`consumer-<n>`, `processor-<n>`) and the
    /// partitions of the topics they subscribe to, by `group.id`.
    pub fn groups(&self) -> BTreeMap<String, GroupSpec> {
        let mut groups: BTreeMap<String, GroupSpec> = BTreeMap::new();
        for (name, spec) in self.reader_nodes() {
            let Some(group) = &spec.group else { continue };
            let entry = groups.entry(group.clone()).or_default();
            entry.members.push(name);
            for topic in &spec.topics {
                if !entry.topics.contains(topic) {
                    entry.topics.push(topic.clone());
                }
            }
        }
        for entry in groups.values_mut() {
            entry.partitions = self
                .topics
                .iter()
                .filter(|t| entry.topics.contains(&t.name))
                .flat_map(|t| (0..t.partitions).map(|p| TopicPartition::new(t.name.clone(), p)))
                .collect();
        }
        groups
    }

    /// The nodes reading with `isolation.level = read_committed` (every processor does).
    pub fn read_committed_consumers(&self) -> Vec<String> {
        self.reader_nodes()
            .into_iter()
            .filter(|(_, spec)| spec.config.isolation_level == Some(IsolationLevel::ReadCommitted))
            .map(|(name, _)| name)
            .collect()
    }

    /// How long recovery after the heal can wait on the scenario's own session timeouts, at
    /// most: a restarted broker (or ensemble client) may wait for its previous ZooKeeper
    /// session to expire before it registers again (the ensemble negotiates every session
    /// into [2, 20] × `tickTime`); then a group may need about two of its members' sessions,
    /// since a member killed while the coordinator holds its JoinGroup is kept through that
    /// join phase and removed only when its session passes after it, plus the initial
    /// rebalance delay of a group leaving Empty. A `heal` below this can read as a liveness
    /// bug that is only the configuration's own waiting (Kafka waits as long).
    pub fn session_recovery_bound(&self) -> Duration {
        let tick = self
            .cluster
            .zookeeper
            .tick_time_ms
            .unwrap_or(ZK_DEFAULT_TICK_MS);
        let negotiated = |ms: u64| ms.clamp(tick.saturating_mul(2), tick.saturating_mul(20));
        let mut zk_session_ms = 0;
        if self.cluster.brokers > 0 {
            zk_session_ms = negotiated(BROKER_ZK_SESSION_TIMEOUT_MS);
        }
        for client in &self.zk_clients {
            zk_session_ms =
                zk_session_ms.max(negotiated(client.session_timeout.as_millis() as u64));
        }
        let initial_delay_ms = self
            .cluster
            .broker
            .group_initial_rebalance_delay_ms
            .unwrap_or(GROUP_INITIAL_REBALANCE_DELAY_MS);
        // A processor is a member of its group as a consumer is.
        let group_ms = self
            .consumers
            .iter()
            .chain(self.processors.iter().map(|p| &p.consumer))
            .filter(|c| c.group.is_some())
            .map(|c| {
                let session = c
                    .config
                    .session_timeout_ms
                    .unwrap_or(GROUP_SESSION_TIMEOUT_MS);
                session.saturating_mul(2).saturating_add(initial_delay_ms)
            })
            .max()
            .unwrap_or(0);
        Duration::from_millis(zk_session_ms.saturating_add(group_ms))
    }

    /// Warnings about a scenario that loads but may not test what its author meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let bound = self.session_recovery_bound();
        if self.heal < bound {
            warnings.push(format!(
                "{}: heal ({}s) is under the {}s that this scenario's session timeouts can \
                 need after the heal (ZooKeeper sessions of restarted brokers and clients, then \
                 about two `session.timeout.ms` of a group's members plus \
                 `group.initial.rebalance.delay.ms`): a `converges` failure may be only that \
                 waiting",
                self.path.display(),
                self.heal.as_secs_f64(),
                bound.as_secs_f64(),
            ));
        }
        warnings
    }

    /// Every partition of the `[[topic]]` tables, in file order, with its replication factor.
    pub fn partitions(&self) -> Vec<(TopicPartition, usize)> {
        self.topics
            .iter()
            .flat_map(|t| {
                (0..t.partitions).map(move |p| {
                    (
                        TopicPartition::new(t.name.clone(), p),
                        t.replication_factor as usize,
                    )
                })
            })
            .collect()
    }
}

/// ZooKeeper's default `tickTime` (the ensemble core's).
pub const ZK_DEFAULT_TICK_MS: u64 = crate::zk::server::DEFAULT_TICK_MS;
/// Kafka's `zookeeper.session.timeout.ms` for brokers (before the ensemble negotiates it).
pub const BROKER_ZK_SESSION_TIMEOUT_MS: u64 = crate::broker::server::ZK_SESSION_TIMEOUT_MS;
/// Kafka's default `session.timeout.ms` of a group member (the client core's).
pub const GROUP_SESSION_TIMEOUT_MS: u64 = crate::client::consumer::DEFAULT_SESSION_TIMEOUT_MS;
/// Kafka's default `group.initial.rebalance.delay.ms` (the coordinator's).
pub const GROUP_INITIAL_REBALANCE_DELAY_MS: u64 =
    crate::broker::coordinator::DEFAULT_INITIAL_REBALANCE_DELAY_MS;
/// Kafka's default `group.min.session.timeout.ms` of the brokers: the shortest group
/// member session they accept.
pub const GROUP_MIN_SESSION_TIMEOUT_MS: u64 =
    crate::broker::coordinator::DEFAULT_MIN_SESSION_TIMEOUT_MS;
/// Kafka's default `group.max.session.timeout.ms` of the brokers: the longest group member
/// session they accept.
pub const GROUP_MAX_SESSION_TIMEOUT_MS: u64 =
    crate::broker::coordinator::DEFAULT_MAX_SESSION_TIMEOUT_MS;

/// How many nodes of each kind a scenario has; node names derive from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeCounts {
    pub zookeepers: u32,
    pub brokers: u32,
    pub producers: u32,
    pub consumers: u32,
    pub writers: u32,
    pub zk_clients: u32,
    pub processors: u32,
}

impl NodeCounts {
    fn of(scenario: &Scenario) -> Self {
        NodeCounts {
            zookeepers: scenario.cluster.zookeepers,
            brokers: scenario.cluster.brokers,
            producers: scenario.producers.iter().map(|p| p.count).sum(),
            consumers: scenario.consumers.iter().map(|c| c.count).sum(),
            writers: scenario.writers.iter().map(|w| w.count).sum(),
            zk_clients: scenario.zk_clients.iter().map(|c| c.count).sum(),
            processors: scenario.processors.iter().map(|p| p.count).sum(),
        }
    }

    /// The node-name prefixes with their counts, in node order.
    pub fn kinds(&self) -> [(&'static str, u32); 7] {
        [
            ("zk", self.zookeepers),
            ("broker", self.brokers),
            ("producer", self.producers),
            ("consumer", self.consumers),
            ("writer", self.writers),
            ("zk-client", self.zk_clients),
            ("processor", self.processors),
        ]
    }

    /// How many nodes in all.
    pub fn total(&self) -> u64 {
        self.kinds()
            .iter()
            .map(|(_, count)| u64::from(*count))
            .sum()
    }

    /// How many nodes of the kind named `kind` (`"writer"`), if that is a kind.
    pub fn of_kind(&self, kind: &str) -> Option<u32> {
        self.kinds()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, count)| count)
    }

    pub fn names(&self) -> Vec<String> {
        self.kinds()
            .into_iter()
            .flat_map(|(kind, count)| numbered(kind, count))
            .collect()
    }
}

fn numbered(kind: &str, count: u32) -> Vec<String> {
    (1..=count).map(|i| format!("{kind}-{i}")).collect()
}

/// `[cluster]`: the ensemble and the brokers, with their configs.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub zookeepers: u32,
    pub brokers: u32,
    pub broker: BrokerConfig,
    pub zookeeper: ZookeeperConfig,
}

/// Kafka broker config (all optional; `None` = Kafka's default). Fields are named after the
/// Kafka key, dots as underscores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerConfig {
    /// `log.flush.interval.messages`, >= 1.
    pub log_flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms`, >= 1.
    pub log_flush_interval_ms: Option<u64>,
    /// `log.segment.bytes`, >= 14 (Kafka's minimum).
    pub log_segment_bytes: Option<u64>,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: Option<u64>,
    /// `log.retention.bytes`, -1 = unlimited.
    pub log_retention_bytes: Option<i64>,
    /// `log.retention.ms`, -1 = unlimited.
    pub log_retention_ms: Option<i64>,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: Option<u64>,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: Option<bool>,
    /// `min.insync.replicas`, >= 1.
    pub min_insync_replicas: Option<u32>,
    /// `default.replication.factor`, >= 1.
    pub default_replication_factor: Option<u32>,
    /// `offsets.topic.num.partitions`, >= 1.
    pub offsets_topic_num_partitions: Option<u32>,
    /// `offsets.topic.replication.factor`, >= 1.
    pub offsets_topic_replication_factor: Option<u32>,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// `transaction.state.log.num.partitions`, >= 1.
    pub transaction_state_log_num_partitions: Option<u32>,
    /// `transaction.state.log.replication.factor`, >= 1.
    pub transaction_state_log_replication_factor: Option<u32>,
    /// `transaction.state.log.min.isr`, >= 1.
    pub transaction_state_log_min_isr: Option<u32>,
}

impl BrokerConfig {
    /// This config over `base`: each setting of `self` wins, unset ones come from `base`.
    /// (A writer's `[writer.config]` over `[cluster.broker]`.)
    pub fn merged_over(&self, base: &BrokerConfig) -> BrokerConfig {
        BrokerConfig {
            log_flush_interval_messages: self
                .log_flush_interval_messages
                .or(base.log_flush_interval_messages),
            log_flush_interval_ms: self.log_flush_interval_ms.or(base.log_flush_interval_ms),
            log_segment_bytes: self.log_segment_bytes.or(base.log_segment_bytes),
            log_index_interval_bytes: self
                .log_index_interval_bytes
                .or(base.log_index_interval_bytes),
            log_retention_bytes: self.log_retention_bytes.or(base.log_retention_bytes),
            log_retention_ms: self.log_retention_ms.or(base.log_retention_ms),
            replica_lag_time_max_ms: self
                .replica_lag_time_max_ms
                .or(base.replica_lag_time_max_ms),
            unclean_leader_election_enable: self
                .unclean_leader_election_enable
                .or(base.unclean_leader_election_enable),
            min_insync_replicas: self.min_insync_replicas.or(base.min_insync_replicas),
            default_replication_factor: self
                .default_replication_factor
                .or(base.default_replication_factor),
            offsets_topic_num_partitions: self
                .offsets_topic_num_partitions
                .or(base.offsets_topic_num_partitions),
            offsets_topic_replication_factor: self
                .offsets_topic_replication_factor
                .or(base.offsets_topic_replication_factor),
            group_initial_rebalance_delay_ms: self
                .group_initial_rebalance_delay_ms
                .or(base.group_initial_rebalance_delay_ms),
            transaction_state_log_num_partitions: self
                .transaction_state_log_num_partitions
                .or(base.transaction_state_log_num_partitions),
            transaction_state_log_replication_factor: self
                .transaction_state_log_replication_factor
                .or(base.transaction_state_log_replication_factor),
            transaction_state_log_min_isr: self
                .transaction_state_log_min_isr
                .or(base.transaction_state_log_min_isr),
        }
    }
}

/// ZooKeeper server config (all optional; `None` = ZooKeeper's default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZookeeperConfig {
    /// `tickTime`, >= 1.
    pub tick_time_ms: Option<u64>,
    /// `initLimit` (ticks), >= 1.
    pub init_limit: Option<u32>,
    /// `syncLimit` (ticks), >= 1.
    pub sync_limit: Option<u32>,
    /// `forceSync` (`true`/`false`, or ZooKeeper's own `"yes"`/`"no"`).
    pub force_sync: Option<bool>,
    /// `snapCount`: transactions between snapshots, >= 2 (ZooKeeper's default 100000). A
    /// follower further behind than the previous snapshot is synced with SNAP.
    pub snap_count: Option<u64>,
}

/// `[[topic]]`.
#[derive(Clone, Debug)]
pub struct Topic {
    pub name: String,
    /// >= 1.
    pub partitions: u32,
    /// `replication.factor`: 1 ..= `cluster.brokers`; when absent, the broker's
    /// `default.replication.factor`, else 1 (Kafka's default).
    pub replication_factor: u32,
    /// `min.insync.replicas`: 1 ..= `replication_factor`; `None` = the broker's setting.
    pub min_insync_replicas: Option<u32>,
}

/// `[[processor]]`: `count` consume-transform-produce nodes (Kafka Streams with
/// `processing.guarantee = exactly_once_v2`): each a member of `group` reading `topics`
/// with `read_committed`, and a transactional producer writing one record into `output`
/// per record read, its key the input's place (`<topic>/<partition>@<offset>`), and
/// committing the group's offsets with the same transaction (KIP-447).
#[derive(Clone, Debug)]
pub struct ProcessorSpec {
    /// >= 1.
    pub count: u32,
    /// The topic it writes; names a `[[topic]]`.
    pub output: String,
    /// Streams' `commit.interval.ms` (100 under exactly-once): how long a transaction
    /// collects records before it commits.
    pub commit_interval_ms: u64,
    /// Its consumer side: `count`, the group, the input topics and the consumer config
    /// (`isolation.level` read_committed, `enable.auto.commit` false, as Streams sets).
    pub consumer: ConsumerSpec,
    /// Its producer side: `count`, `output` as the topic, the producer config with its
    /// `transactional.id` (the group's by default, numbered `<id>-<n>` with several) and
    /// `txn_abort_percent`.
    pub producer: ProducerSpec,
}

/// Kafka Streams' `commit.interval.ms` under exactly-once.
pub const DEFAULT_PROCESSOR_COMMIT_INTERVAL_MS: u64 = 100;

/// `[[producer]]`: `count` producer nodes with the same workload.
#[derive(Clone, Debug)]
pub struct ProducerSpec {
    /// >= 1.
    pub count: u32,
    /// Names a `[[topic]]`.
    pub topic: String,
    /// Records per simulated second, per producer, >= 1.
    pub rate: u32,
    /// Distinct keys; 0 = no keys.
    pub keys: u32,
    /// `txn-records`: records per transaction (1..=10000, default 10; read only with a
    /// `transactional.id`).
    pub txn_records: u32,
    /// `txn-abort-percent`: the chance (0..=100, default 0) that a transaction is aborted
    /// rather than committed.
    pub txn_abort_percent: u8,
    pub config: ProducerConfig,
}

impl ProducerSpec {
    /// The `transactional.id` of each producer of this table, in order: the table's id
    /// with one producer, `<id>-<n>` (n from 1) with several; empty without one.
    pub fn transactional_ids(&self) -> Vec<String> {
        let Some(id) = &self.config.transactional_id else {
            return Vec::new();
        };
        if self.count == 1 {
            return vec![id.clone()];
        }
        (1..=self.count).map(|n| format!("{id}-{n}")).collect()
    }

    /// The producer's client config for this table, bootstrapping from `bootstrap`: Kafka's
    /// defaults under what the scenario sets, as `KafkaProducer` settles them at startup.
    /// Left out, `delivery.timeout.ms` is raised to `linger.ms` + `request.timeout.ms` when
    /// the default is below it, and idempotence (on by default since Kafka 3.2) is off when
    /// the rest of the config rules it out (acks other than all, no retries, more than 5
    /// requests in flight); set explicitly, the scenario parser refused the conflict. For
    /// every scenario that loads, the result passes [`ClientProducerConfig::validate`].
    pub fn client_config(&self, bootstrap: Vec<BrokerId>) -> ClientProducerConfig {
        let mut config = ClientProducerConfig::new(self.topic.clone(), bootstrap);
        let c = &self.config;
        // A transactional producer is idempotent (Kafka forces it; the parser refused an
        // explicit conflict). The id is the table's; `plan::producer_config` numbers it.
        if let Some(id) = &c.transactional_id {
            config.transactional_id = Some(id.clone());
            config.txn_workload = TxnWorkload {
                records: self.txn_records,
                abort_percent: self.txn_abort_percent,
                by_application: false,
            };
        }
        if let Some(v) = c.transaction_timeout_ms {
            config.transaction_timeout_ms = v;
        }
        if let Some(acks) = c.acks {
            config.acks = match acks {
                Acks::Zero => crate::broker::Acks::None,
                Acks::One => crate::broker::Acks::Leader,
                Acks::All => crate::broker::Acks::All,
            };
        }
        if let Some(v) = c.enable_idempotence {
            config.enable_idempotence = v;
        }
        if let Some(p) = c.partitioner_class {
            config.partitioner = match p {
                Partitioner::UniformSticky => PartitionerKind::UniformSticky,
                Partitioner::RoundRobin => PartitionerKind::RoundRobin,
            };
        }
        if let Some(v) = c.batch_size {
            config.batch_size = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = c.linger_ms {
            config.linger_ms = v;
        }
        if let Some(v) = c.max_in_flight_requests_per_connection {
            config.max_in_flight_requests_per_connection = v as usize;
        }
        if let Some(v) = c.retries {
            config.retries = v;
        }
        if let Some(v) = c.request_timeout_ms {
            config.request_timeout_ms = v;
        }
        match c.delivery_timeout_ms {
            Some(v) => config.delivery_timeout_ms = v,
            None => {
                let least = config.linger_ms.saturating_add(config.request_timeout_ms);
                config.delivery_timeout_ms = config.delivery_timeout_ms.max(least);
            }
        }
        if c.enable_idempotence.is_none() && config.validate().is_err() {
            config.enable_idempotence = false;
        }
        config
    }
}

/// Kafka producer config (all optional; `None` = Kafka's default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProducerConfig {
    pub acks: Option<Acks>,
    pub enable_idempotence: Option<bool>,
    pub partitioner_class: Option<Partitioner>,
    pub batch_size: Option<u64>,
    pub linger_ms: Option<u64>,
    /// >= 1; at most 5 with idempotence on.
    pub max_in_flight_requests_per_connection: Option<u32>,
    pub retries: Option<u32>,
    pub delivery_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    /// Not empty; numbered per producer when the table has several (see
    /// [`ProducerSpec::transactional_ids`]).
    pub transactional_id: Option<String>,
    /// 1..=900000 (the brokers' `transaction.max.timeout.ms`).
    pub transaction_timeout_ms: Option<u64>,
}

/// `acks`: `"0"`, `"1"`, `"all"` (or `"-1"`, or the integers 0, 1, -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    Zero,
    One,
    All,
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        })
    }
}

/// `partitioner.class` for records without a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Partitioner {
    /// KIP-794's uniform sticky partitioner (Kafka's default).
    #[serde(rename = "uniform-sticky")]
    UniformSticky,
    #[serde(rename = "round-robin")]
    RoundRobin,
}

/// `[[consumer]]`: `count` consumer nodes with the same subscription.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    /// >= 1.
    pub count: u32,
    /// `None`: an assign-mode reader of every partition of its topics.
    pub group: Option<String>,
    /// Non-empty; each names a `[[topic]]`.
    pub topics: Vec<String>,
    pub config: ConsumerConfig,
}

/// A consumer group as the scenario makes it (see [`Scenario::groups`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSpec {
    /// Its member nodes, `consumer-<n>`, in node order.
    pub members: Vec<String>,
    /// The topics its members subscribe to.
    pub topics: Vec<String>,
    /// Every partition of those topics.
    pub partitions: Vec<TopicPartition>,
}

/// Kafka consumer config (all optional; `None` = Kafka's default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsumerConfig {
    pub partition_assignment_strategy: Option<AssignmentStrategy>,
    pub enable_auto_commit: Option<bool>,
    pub auto_commit_interval_ms: Option<u64>,
    pub session_timeout_ms: Option<u64>,
    /// Below the session timeout.
    pub heartbeat_interval_ms: Option<u64>,
    pub max_poll_interval_ms: Option<u64>,
    pub group_instance_id: Option<String>,
    /// `"earliest"` or `"latest"` (`None`: earliest, the testbed's default).
    pub auto_offset_reset: Option<String>,
    pub isolation_level: Option<IsolationLevel>,
}

/// `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum IsolationLevel {
    /// Every record below the HW (Kafka's default).
    #[serde(rename = "read_uncommitted")]
    ReadUncommitted,
    /// Committed records only, below the last stable offset.
    #[serde(rename = "read_committed")]
    ReadCommitted,
}

/// `partition.assignment.strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum AssignmentStrategy {
    /// Eager: revoke everything, then reassign.
    #[serde(rename = "range")]
    Range,
    /// KIP-429 incremental cooperative rebalancing.
    #[serde(rename = "cooperative-sticky")]
    CooperativeSticky,
}

/// `[[zk_client]]`: ensemble clients running a Jepsen-style workload, one operation at a
/// time: compare-and-set on register znodes, sequential and ephemeral creates, deletes,
/// multis, and (with `churn`) closing their session and opening a new one.
#[derive(Clone, Debug)]
pub struct ZkClientSpec {
    /// Clients, >= 1.
    pub count: u32,
    /// Operations per simulated second per client, >= 1.
    pub rate: u32,
    /// Register znodes written with compare-and-set (default 3).
    pub registers: u32,
    /// The session timeout the client asks for (default 6s; the ensemble clamps it to
    /// [2, 20] × tickTime).
    pub session_timeout: Duration,
    /// Mean time between session renewals (close, then open a new one); none by default.
    pub churn: Option<Duration>,
}

/// `[[writer]]`: standalone log writers, nodes appending to their own log with the broker log
/// config; they test the log engine alone under disk faults.
#[derive(Clone, Debug)]
pub struct WriterSpec {
    /// >= 1.
    pub count: u32,
    /// Records per simulated second per writer, >= 1.
    pub rate: u32,
    /// `[writer.config]`: only the `log.*` keys can be set (the others stay `None`). Use
    /// [`BrokerConfig::merged_over`] to layer it over `[cluster.broker]`.
    pub config: BrokerConfig,
}

/// One `[[fault]]`.
#[derive(Clone, Debug)]
pub struct Fault {
    /// When, from the start of the fault phase; <= the scenario's `duration`.
    pub at: Duration,
    pub action: FaultAction,
    /// Present for node actions; for `partition`, a shape (or `sides` instead); absent for
    /// `heal`; optional for `loss` (absent: every link).
    pub target: Option<Target>,
    /// `partition` only: groups of node names (`"*"` = every node not named elsewhere).
    pub sides: Option<Vec<Vec<String>>>,
    /// `loss` only: the probability a message is dropped, 0.0..=1.0.
    pub rate: Option<f64>,
    /// 1-based line of the `[[fault]]` table, for reports.
    pub line: usize,
}

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// Crash the process; the page cache survives.
    Kill,
    /// Start a killed node again.
    Restart,
    /// Cut the power: unsynced writes may be lost or torn.
    PowerLoss,
    Pause,
    Resume,
    Partition,
    Heal,
    Clog,
    Unclog,
    Loss,
}

impl FaultAction {
    /// Every action, in the contract's order.
    pub const ALL: [FaultAction; 10] = [
        FaultAction::Kill,
        FaultAction::Restart,
        FaultAction::PowerLoss,
        FaultAction::Pause,
        FaultAction::Resume,
        FaultAction::Partition,
        FaultAction::Heal,
        FaultAction::Clog,
        FaultAction::Unclog,
        FaultAction::Loss,
    ];

    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Restart => "restart",
            FaultAction::PowerLoss => "power-loss",
            FaultAction::Pause => "pause",
            FaultAction::Resume => "resume",
            FaultAction::Partition => "partition",
            FaultAction::Heal => "heal",
            FaultAction::Clog => "clog",
            FaultAction::Unclog => "unclog",
            FaultAction::Loss => "loss",
        }
    }
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a fault acts on. `Display` prints the scenario syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A node by name: `broker-2`, `zk-1`, `writer-3`.
    Node(String),
    /// `leader(<topic>/<partition>)`: the partition's leader when the fault fires.
    Leader {
        topic: String,
        partition: u32,
    },
    /// `controller`.
    Controller,
    /// `zk-leader`.
    ZkLeader,
    /// `coordinator(<group>)`.
    Coordinator(String),
    /// `random-broker`, `random-zk`, `random-writer`: drawn from the seed.
    RandomBroker,
    RandomZk,
    RandomWriter,
    /// `killed`: every node killed (or powered off) so far and not restarted.
    Killed,
    /// `all-brokers`, `all-writers`.
    AllBrokers,
    AllWriters,
    /// Partition shapes: `halves`, `bridge`, `isolate(<target>)`.
    Halves,
    Bridge,
    Isolate(Box<Target>),
}

impl Target {
    /// Whether this is a shape only `partition` takes.
    pub fn is_partition_shape(&self) -> bool {
        matches!(self, Target::Halves | Target::Bridge | Target::Isolate(_))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(name) => f.write_str(name),
            Target::Leader { topic, partition } => write!(f, "leader({topic}/{partition})"),
            Target::Controller => f.write_str("controller"),
            Target::ZkLeader => f.write_str("zk-leader"),
            Target::Coordinator(group) => write!(f, "coordinator({group})"),
            Target::RandomBroker => f.write_str("random-broker"),
            Target::RandomZk => f.write_str("random-zk"),
            Target::RandomWriter => f.write_str("random-writer"),
            Target::Killed => f.write_str("killed"),
            Target::AllBrokers => f.write_str("all-brokers"),
            Target::AllWriters => f.write_str("all-writers"),
            Target::Halves => f.write_str("halves"),
            Target::Bridge => f.write_str("bridge"),
            Target::Isolate(inner) => write!(f, "isolate({inner})"),
        }
    }
}

/// `[nemesis]`: random faults drawn from the seed.
#[derive(Clone, Debug)]
pub struct Nemesis {
    /// Non-empty, no repeats; only fault-injecting actions (the nemesis undoes its own faults).
    pub actions: Vec<FaultAction>,
    /// Time between faults, drawn uniformly from `min..=max`; `0 < min <= max`.
    pub every: (Duration, Duration),
}

/// `[expect]`: for bug-zoo scenarios, the check that must fail on some seed.
#[derive(Clone, Debug)]
pub struct Expect {
    /// A name from [`super::CheckName`].
    pub fails: String,
    /// Other checks that may fail alongside (each a `CheckName`, none equal to `fails`).
    pub tolerate: Vec<String>,
}

/// `[legacy]`: switches bringing back historical bugs (see the bug zoo). All off by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Legacy {
    /// `truncate-to-hw` (KIP-101).
    pub truncate_to_hw: bool,
    /// `offsets-for-leader-epoch-v0` (KIP-279).
    pub offsets_for_leader_epoch_v0: bool,
    /// `lenient-min-isr` (KIP-966).
    pub lenient_min_isr: bool,
    /// `unfenced-controller-writes` (KAFKA-6082).
    pub unfenced_controller_writes: bool,
    /// `no-broker-epoch` (KIP-380).
    pub no_broker_epoch: bool,
    /// `unfenced-offset-commits` (KAFKA-2017).
    pub unfenced_offset_commits: bool,
    /// `commit-before-process` (at-most-once consumption).
    pub commit_before_process: bool,
    /// `cooperative-no-holdback` (a canary: KIP-429's hold-back skipped).
    pub cooperative_no_holdback: bool,
    /// `zk-diff-only-sync` (ZOOKEEPER-1154).
    pub zk_diff_only_sync: bool,
    /// `zk-ack-before-sync` (ZOOKEEPER-4646).
    pub zk_ack_before_sync: bool,
    /// `unfenced-transactional-producer` (before KIP-447): a processor's TxnOffsetCommit is
    /// not fenced by its consumer's generation, so a zombie processor commits.
    pub unfenced_transactional_producer: bool,
    /// `no-epoch-bump-per-transaction` (transaction version 1, before KIP-890 part 2): the
    /// producer keeps its epoch from one transaction to the next, so a delayed EndTxn or
    /// produce of one transaction lands in the next.
    pub no_epoch_bump_per_transaction: bool,
    /// `no-add-partition-verification` (before KIP-890 part 1,
    /// `transaction.partition.verification.enable=false`): a partition leader appends a
    /// transactional batch without asking the coordinator whether its partition is in the
    /// transaction, so a produce that arrives after its transaction ended opens one the
    /// coordinator never ends (a hanging transaction, KAFKA-14402).
    pub no_add_partition_verification: bool,
}
