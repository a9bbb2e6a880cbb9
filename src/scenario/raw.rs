//! The scenario file as written: serde structs mirroring the TOML, one field per key.
//!
//! Owns: the key names (Kafka's dotted names are quoted TOML keys, mapped with `rename`), the
//! value types, and the rejection of unknown keys (`deny_unknown_fields` on every table gives
//! serde's "unknown field `x`, expected one of ..." with the key's position). Values are
//! wrapped in `Spanned` so later checks can point at them. Tables themselves are not
//! `Spanned`: toml has no position for implicit tables (`[cluster.broker]` without
//! `[cluster]`, or dotted keys) and would then fail to deserialize them; the elements of
//! arrays of tables (`[[fault]]`) always have one, so those are.
//!
//! Nothing here is checked beyond its type; `build` does the semantics.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::model::{Acks, AssignmentStrategy, FaultAction, IsolationLevel, Partitioner};
use super::values::{parse_duration, SeedRange};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub name: Spanned<String>,
    pub about: Option<String>,
    pub duration: Spanned<DurationValue>,
    pub heal: Spanned<DurationValue>,
    pub seeds: Option<Spanned<SeedsValue>>,
    pub cluster: Option<RawCluster>,
    #[serde(default)]
    pub topic: Vec<Spanned<RawTopic>>,
    #[serde(default)]
    pub producer: Vec<Spanned<RawProducer>>,
    #[serde(default)]
    pub consumer: Vec<Spanned<RawConsumer>>,
    #[serde(default)]
    pub processor: Vec<Spanned<RawProcessor>>,
    #[serde(default)]
    pub writer: Vec<Spanned<RawWriter>>,
    #[serde(default)]
    pub zk_client: Vec<Spanned<RawZkClient>>,
    #[serde(default)]
    pub fault: Vec<Spanned<RawFault>>,
    pub nemesis: Option<RawNemesis>,
    pub expect: Option<RawExpect>,
    pub legacy: Option<RawLegacy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub zookeepers: Option<Spanned<u32>>,
    pub brokers: Option<Spanned<u32>>,
    pub broker: Option<RawBrokerConfig>,
    pub zookeeper: Option<RawZookeeperConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBrokerConfig {
    #[serde(rename = "log.flush.interval.messages")]
    pub log_flush_interval_messages: Option<Spanned<u64>>,
    #[serde(rename = "log.flush.interval.ms")]
    pub log_flush_interval_ms: Option<Spanned<u64>>,
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: Option<Spanned<u64>>,
    #[serde(rename = "log.index.interval.bytes")]
    pub log_index_interval_bytes: Option<Spanned<u64>>,
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: Option<Spanned<i64>>,
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: Option<Spanned<i64>>,
    #[serde(rename = "replica.lag.time.max.ms")]
    pub replica_lag_time_max_ms: Option<Spanned<u64>>,
    #[serde(rename = "unclean.leader.election.enable")]
    pub unclean_leader_election_enable: Option<Spanned<bool>>,
    #[serde(rename = "min.insync.replicas")]
    pub min_insync_replicas: Option<Spanned<u32>>,
    #[serde(rename = "default.replication.factor")]
    pub default_replication_factor: Option<Spanned<u32>>,
    #[serde(rename = "offsets.topic.num.partitions")]
    pub offsets_topic_num_partitions: Option<Spanned<u32>>,
    #[serde(rename = "offsets.topic.replication.factor")]
    pub offsets_topic_replication_factor: Option<Spanned<u32>>,
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: Option<Spanned<u64>>,
    #[serde(rename = "transaction.state.log.num.partitions")]
    pub transaction_state_log_num_partitions: Option<Spanned<u32>>,
    #[serde(rename = "transaction.state.log.replication.factor")]
    pub transaction_state_log_replication_factor: Option<Spanned<u32>>,
    #[serde(rename = "transaction.state.log.min.isr")]
    pub transaction_state_log_min_isr: Option<Spanned<u32>>,
}

impl RawBrokerConfig {
    /// The `log.*` subset, the part a standalone writer uses.
    pub fn log_config(&self) -> RawLogConfig {
        RawLogConfig {
            log_flush_interval_messages: self.log_flush_interval_messages.clone(),
            log_flush_interval_ms: self.log_flush_interval_ms.clone(),
            log_segment_bytes: self.log_segment_bytes.clone(),
            log_index_interval_bytes: self.log_index_interval_bytes.clone(),
            log_retention_bytes: self.log_retention_bytes.clone(),
            log_retention_ms: self.log_retention_ms.clone(),
        }
    }
}

/// `[writer.config]`: only the broker's `log.*` keys, so any other key is rejected with the
/// list of these.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogConfig {
    #[serde(rename = "log.flush.interval.messages")]
    pub log_flush_interval_messages: Option<Spanned<u64>>,
    #[serde(rename = "log.flush.interval.ms")]
    pub log_flush_interval_ms: Option<Spanned<u64>>,
    #[serde(rename = "log.segment.bytes")]
    pub log_segment_bytes: Option<Spanned<u64>>,
    #[serde(rename = "log.index.interval.bytes")]
    pub log_index_interval_bytes: Option<Spanned<u64>>,
    #[serde(rename = "log.retention.bytes")]
    pub log_retention_bytes: Option<Spanned<i64>>,
    #[serde(rename = "log.retention.ms")]
    pub log_retention_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZookeeperConfig {
    #[serde(rename = "tickTime")]
    pub tick_time: Option<Spanned<u64>>,
    #[serde(rename = "snapCount")]
    pub snap_count: Option<Spanned<u64>>,
    #[serde(rename = "initLimit")]
    pub init_limit: Option<Spanned<u32>>,
    #[serde(rename = "syncLimit")]
    pub sync_limit: Option<Spanned<u32>>,
    #[serde(rename = "forceSync")]
    pub force_sync: Option<Spanned<YesNo>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopic {
    pub name: Spanned<String>,
    pub partitions: Spanned<u32>,
    #[serde(rename = "replication.factor")]
    pub replication_factor: Option<Spanned<u32>>,
    #[serde(rename = "min.insync.replicas")]
    pub min_insync_replicas: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProducer {
    pub count: Spanned<u32>,
    pub topic: Spanned<String>,
    pub rate: Spanned<u32>,
    pub keys: Option<Spanned<u32>>,
    #[serde(rename = "txn-records")]
    pub txn_records: Option<Spanned<u32>>,
    #[serde(rename = "txn-abort-percent")]
    pub txn_abort_percent: Option<Spanned<u32>>,
    pub config: Option<RawProducerConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProducerConfig {
    pub acks: Option<Spanned<AcksValue>>,
    #[serde(rename = "enable.idempotence")]
    pub enable_idempotence: Option<Spanned<bool>>,
    #[serde(rename = "partitioner.class")]
    pub partitioner_class: Option<Spanned<Partitioner>>,
    #[serde(rename = "batch.size")]
    pub batch_size: Option<Spanned<u64>>,
    #[serde(rename = "linger.ms")]
    pub linger_ms: Option<Spanned<u64>>,
    #[serde(rename = "max.in.flight.requests.per.connection")]
    pub max_in_flight_requests_per_connection: Option<Spanned<u32>>,
    pub retries: Option<Spanned<u32>>,
    #[serde(rename = "delivery.timeout.ms")]
    pub delivery_timeout_ms: Option<Spanned<u64>>,
    #[serde(rename = "request.timeout.ms")]
    pub request_timeout_ms: Option<Spanned<u64>>,
    #[serde(rename = "transactional.id")]
    pub transactional_id: Option<Spanned<String>>,
    #[serde(rename = "transaction.timeout.ms")]
    pub transaction_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsumer {
    pub count: Spanned<u32>,
    pub group: Option<Spanned<String>>,
    pub topics: Spanned<Vec<Spanned<String>>>,
    pub config: Option<RawConsumerConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsumerConfig {
    #[serde(rename = "partition.assignment.strategy")]
    pub partition_assignment_strategy: Option<Spanned<AssignmentStrategy>>,
    #[serde(rename = "enable.auto.commit")]
    pub enable_auto_commit: Option<Spanned<bool>>,
    #[serde(rename = "auto.commit.interval.ms")]
    pub auto_commit_interval_ms: Option<Spanned<u64>>,
    #[serde(rename = "session.timeout.ms")]
    pub session_timeout_ms: Option<Spanned<u64>>,
    #[serde(rename = "heartbeat.interval.ms")]
    pub heartbeat_interval_ms: Option<Spanned<u64>>,
    #[serde(rename = "max.poll.interval.ms")]
    pub max_poll_interval_ms: Option<Spanned<u64>>,
    #[serde(rename = "group.instance.id")]
    pub group_instance_id: Option<Spanned<String>>,
    #[serde(rename = "auto.offset.reset")]
    pub auto_offset_reset: Option<Spanned<String>>,
    #[serde(rename = "isolation.level")]
    pub isolation_level: Option<Spanned<IsolationLevel>>,
}

/// A consume-transform-produce processor table: a group member reading `topics` and
/// writing into `output` transactionally (Kafka Streams with exactly-once v2).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcessor {
    pub count: Spanned<u32>,
    pub group: Spanned<String>,
    pub topics: Spanned<Vec<Spanned<String>>>,
    pub output: Spanned<String>,
    #[serde(rename = "txn-abort-percent")]
    pub txn_abort_percent: Option<Spanned<u32>>,
    pub config: Option<RawProcessorConfig>,
    /// Its consumer's config (Kafka Streams' `consumer.` prefix).
    pub consumer: Option<RawConsumerConfig>,
    /// Its producer's config (Kafka Streams' `producer.` prefix).
    pub producer: Option<RawProducerConfig>,
}

/// A processor's own settings, with Kafka Streams' names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcessorConfig {
    #[serde(rename = "commit.interval.ms")]
    pub commit_interval_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWriter {
    pub count: Spanned<u32>,
    pub rate: Spanned<u32>,
    pub config: Option<RawLogConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZkClient {
    pub count: Spanned<u32>,
    pub rate: Spanned<u32>,
    pub registers: Option<Spanned<u32>>,
    pub session_timeout: Option<Spanned<DurationValue>>,
    pub churn: Option<Spanned<DurationValue>>,
}

/// `sides = [["broker-1", "zk-1"], ["*"]]`, every side and name with its position.
pub(super) type RawSides = Vec<Spanned<Vec<Spanned<String>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub at: Spanned<DurationValue>,
    pub action: Spanned<FaultAction>,
    pub target: Option<Spanned<String>>,
    pub sides: Option<Spanned<RawSides>>,
    pub rate: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNemesis {
    pub actions: Spanned<Vec<Spanned<FaultAction>>>,
    pub every: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    pub fails: Spanned<String>,
    pub tolerate: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawLegacy {
    pub truncate_to_hw: Option<Spanned<bool>>,
    pub offsets_for_leader_epoch_v0: Option<Spanned<bool>>,
    pub lenient_min_isr: Option<Spanned<bool>>,
    pub unfenced_controller_writes: Option<Spanned<bool>>,
    pub no_broker_epoch: Option<Spanned<bool>>,
    pub unfenced_offset_commits: Option<Spanned<bool>>,
    pub commit_before_process: Option<Spanned<bool>>,
    pub cooperative_no_holdback: Option<Spanned<bool>>,
    pub zk_diff_only_sync: Option<Spanned<bool>>,
    pub zk_ack_before_sync: Option<Spanned<bool>>,
    pub unfenced_transactional_producer: Option<Spanned<bool>>,
    pub no_epoch_bump_per_transaction: Option<Spanned<bool>>,
    pub no_add_partition_verification: Option<Spanned<bool>>,
}

/// A duration string (`"10s"`); a malformed one is a deserialization error at the value.
pub(super) struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a duration string like "250ms", "10s" or "2m""#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationValue, E> {
                parse_duration(text).map(DurationValue).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A seed range string (`"1..200"`), or one seed as an integer.
pub(super) struct SeedsValue(pub SeedRange);

impl<'de> Deserialize<'de> for SeedsValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeedsVisitor;
        impl Visitor<'_> for SeedsVisitor {
            type Value = SeedsValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a seed range string like "1..100""#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<SeedsValue, E> {
                SeedRange::parse(text).map(SeedsValue).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, seed: i64) -> Result<SeedsValue, E> {
                let seed = u64::try_from(seed).map_err(|_| {
                    E::custom(format!("expected a non-negative seed, found {seed}"))
                })?;
                Ok(SeedsValue(SeedRange {
                    first: seed,
                    last: seed,
                }))
            }
        }
        deserializer.deserialize_any(SeedsVisitor)
    }
}

/// `acks` as Kafka takes it: `"0"`, `"1"`, `"all"`, `"-1"`, or the integers 0, 1, -1.
pub(super) struct AcksValue(pub Acks);

impl<'de> Deserialize<'de> for AcksValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AcksVisitor;
        impl Visitor<'_> for AcksVisitor {
            type Value = AcksValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"acks "0", "1" or "all" (or "-1")"#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<AcksValue, E> {
                match text {
                    "0" => Ok(AcksValue(Acks::Zero)),
                    "1" => Ok(AcksValue(Acks::One)),
                    "all" | "-1" => Ok(AcksValue(Acks::All)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, acks: i64) -> Result<AcksValue, E> {
                match acks {
                    0 => Ok(AcksValue(Acks::Zero)),
                    1 => Ok(AcksValue(Acks::One)),
                    -1 => Ok(AcksValue(Acks::All)),
                    _ => Err(E::invalid_value(de::Unexpected::Signed(acks), &self)),
                }
            }
        }
        deserializer.deserialize_any(AcksVisitor)
    }
}

/// A ZooKeeper boolean: TOML `true`/`false`, or zoo.cfg's `"yes"`/`"no"`.
pub(super) struct YesNo(pub bool);

impl<'de> Deserialize<'de> for YesNo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct YesNoVisitor;
        impl Visitor<'_> for YesNoVisitor {
            type Value = YesNo;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"true, false, "yes" or "no""#)
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<YesNo, E> {
                Ok(YesNo(value))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<YesNo, E> {
                match text {
                    "yes" => Ok(YesNo(true)),
                    "no" => Ok(YesNo(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
                }
            }
        }
        deserializer.deserialize_any(YesNoVisitor)
    }
}
