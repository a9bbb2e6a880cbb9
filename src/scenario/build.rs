//! Semantic validation: from the file as written ([`RawScenario`]) to the model
//! ([`Scenario`]), checking everything the types alone cannot.
//!
//! Owns: the rules between values — counts at least one, `replication.factor` within the
//! brokers, `min.insync.replicas` within the replication factor, references to topics, groups
//! and nodes that exist, fault times within the fault phase, which fault fields go with which
//! action, Kafka's own config bounds and the consistency checks Kafka's clients make at
//! startup (so every client config that loads passes the client's own validation), and the
//! resource bounds of [`super::limits`] (node counts, partitions, replicas, rates, offered
//! work, faults, durations) plus Kafka's own value ranges (`int` and `long` settings), so a
//! run that loads is bounded and no config value overflows a node's arithmetic. Each
//! failure is a [`Problem`] at the span of the offending value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::checks::CheckName;
use super::limits::*;
use super::model::*;
use super::raw::*;
use super::target::{check_node, check_target, parse_target, World};
use super::values::{format_duration, parse_interval, SeedRange};

/// A semantic error: where (a byte span of the file) and what.
#[derive(Debug)]
pub(super) struct Problem {
    pub span: Range<usize>,
    pub message: String,
}

impl Problem {
    pub fn at<T>(value: &Spanned<T>, message: impl Into<String>) -> Self {
        Problem {
            span: value.span(),
            message: message.into(),
        }
    }
}

type Checked<T> = Result<T, Problem>;

/// Validates `raw` and builds the model; `text` is the file text `raw` came from.
pub(super) fn build(raw: &RawScenario, path: &Path, text: &str) -> Checked<Scenario> {
    check_scenario_name(&raw.name)?;
    let duration = duration_at_most(&raw.duration, "duration")?;
    let heal = duration_at_most(&raw.heal, "heal")?;
    let nemesis = raw
        .nemesis
        .as_ref()
        .map(|nemesis| build_nemesis(nemesis, duration))
        .transpose()?;
    let cluster = build_cluster(raw.cluster.as_ref())?;
    if let Some(extra) = raw.topic.get(MAX_TOPICS) {
        return Err(Problem::at(
            extra,
            format!(
                "at most {MAX_TOPICS} [[topic]] tables, found {}",
                raw.topic.len()
            ),
        ));
    }
    let topics = raw
        .topic
        .iter()
        .map(|topic| build_topic(topic, &cluster))
        .collect::<Checked<Vec<_>>>()?;
    check_unique_topics(&raw.topic)?;
    let topic_names: BTreeSet<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    let producers = raw
        .producer
        .iter()
        .map(|producer| build_producer(producer, &topic_names))
        .collect::<Checked<Vec<_>>>()?;
    let processors = raw
        .processor
        .iter()
        .map(|processor| build_processor(processor, &topic_names))
        .collect::<Checked<Vec<_>>>()?;
    // Bounded first: the ids of a table are numbered per producer.
    let producer_count = total(&raw.producer, |p| &p.count)?;
    let processor_count = total(&raw.processor, |p| &p.count)?;
    check_unique_transactional_ids(&raw.producer, &producers, &raw.processor, &processors)?;
    let consumers = raw
        .consumer
        .iter()
        .map(|consumer| build_consumer(consumer, &topic_names))
        .collect::<Checked<Vec<_>>>()?;
    let writers = raw
        .writer
        .iter()
        .map(build_writer)
        .collect::<Checked<Vec<_>>>()?;
    let zk_clients = raw
        .zk_client
        .iter()
        .map(|client| build_zk_client(client, &cluster))
        .collect::<Checked<Vec<_>>>()?;
    let world = World {
        counts: NodeCounts {
            zookeepers: cluster.zookeepers,
            brokers: cluster.brokers,
            producers: producer_count,
            consumers: total(&raw.consumer, |c| &c.count)?,
            writers: total(&raw.writer, |w| &w.count)?,
            zk_clients: total(&raw.zk_client, |c| &c.count)?,
            processors: processor_count,
        },
        topics: {
            // The scenario's topics, and the internal ones the cluster will create, so a
            // fault may aim at `leader(__transaction_state/0)` (a transaction coordinator).
            let mut named: BTreeMap<String, u32> = topics
                .iter()
                .map(|t| (t.name.clone(), t.partitions))
                .collect();
            if consumers.iter().any(|c| c.group.is_some()) || !processors.is_empty() {
                named.insert(
                    crate::broker::coordinator::OFFSETS_TOPIC.to_string(),
                    cluster
                        .broker
                        .offsets_topic_num_partitions
                        .unwrap_or(crate::broker::coordinator::DEFAULT_OFFSETS_PARTITIONS),
                );
            }
            if !processors.is_empty()
                || producers
                    .iter()
                    .any(|p| p.config.transactional_id.is_some())
            {
                named.insert(
                    crate::broker::txn_coordinator::TRANSACTION_STATE_TOPIC.to_string(),
                    cluster
                        .broker
                        .transaction_state_log_num_partitions
                        .unwrap_or(
                            crate::broker::txn_coordinator::DEFAULT_TRANSACTION_STATE_PARTITIONS,
                        ),
                );
            }
            named
        },
        groups: consumers
            .iter()
            .chain(processors.iter().map(|p| &p.consumer))
            .filter_map(|c| c.group.clone())
            .collect(),
    };
    check_something_is_checked(raw, &world.counts)?;
    if world
        .topics
        .contains_key(crate::broker::txn_coordinator::TRANSACTION_STATE_TOPIC)
    {
        check_transaction_state_isr(raw, &cluster)?;
    }
    let length = duration.saturating_add(heal);
    super::budget::check(
        raw,
        &topics,
        &consumers,
        &processors,
        &cluster,
        duration,
        length,
    )?;
    if let Some(extra) = raw.fault.get(MAX_FAULTS) {
        return Err(Problem::at(
            extra,
            format!(
                "at most {MAX_FAULTS} [[fault]] tables, found {}",
                raw.fault.len()
            ),
        ));
    }
    let lines = LineStarts::new(text);
    let mut faults = raw
        .fault
        .iter()
        .map(|fault| build_fault(fault, duration, &world, &lines))
        .collect::<Checked<Vec<_>>>()?;
    // Stable: faults at the same time keep their file order.
    faults.sort_by_key(|fault| fault.at);
    Ok(Scenario {
        name: raw.name.get_ref().clone(),
        about: raw.about.clone().unwrap_or_default(),
        duration,
        heal,
        seeds: raw
            .seeds
            .as_ref()
            .map_or_else(SeedRange::default, |s| s.get_ref().0),
        cluster,
        topics,
        producers,
        consumers,
        processors,
        writers,
        zk_clients,
        faults,
        nemesis,
        expect: raw.expect.as_ref().map(build_expect).transpose()?,
        legacy: raw.legacy.as_ref().map(build_legacy).unwrap_or_default(),
        source: text.to_string(),
        path: path.to_path_buf(),
    })
}

/// `__transaction_state` must take writes: its `transaction.state.log.min.isr` (Kafka's
/// default 2) at most its replication factor (default 3, at most one replica per broker).
/// Otherwise every InitProducerId and EndTxn fails with NOT_ENOUGH_REPLICAS for the whole
/// run and the scenario could only time out.
fn check_transaction_state_isr(raw: &RawScenario, cluster: &Cluster) -> Checked<()> {
    use crate::broker::txn_coordinator::{
        DEFAULT_TRANSACTION_STATE_MIN_ISR, DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR,
    };
    let config = &cluster.broker;
    let replication_factor = config
        .transaction_state_log_replication_factor
        .unwrap_or(u32::from(DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR))
        .min(cluster.brokers);
    let min_isr = config
        .transaction_state_log_min_isr
        .unwrap_or(u32::from(DEFAULT_TRANSACTION_STATE_MIN_ISR));
    if min_isr <= replication_factor {
        return Ok(());
    }
    let raw_cluster = raw.cluster.as_ref();
    let set = raw_cluster
        .and_then(|c| c.broker.as_ref())
        .and_then(|b| b.transaction_state_log_min_isr.as_ref());
    let message = format!(
        "`transaction.state.log.min.isr` {min_isr}{} exceeds the replication factor \
         {replication_factor} of `__transaction_state` ({} broker{}): no transaction could \
         ever be written; set \"transaction.state.log.min.isr\" = {replication_factor} in \
         [cluster.broker]",
        if set.is_some() {
            ""
        } else {
            " (Kafka's default)"
        },
        cluster.brokers,
        if cluster.brokers == 1 { "" } else { "s" },
    );
    Err(match (set, raw_cluster.and_then(|c| c.brokers.as_ref())) {
        (Some(min_isr), _) => Problem::at(min_isr, message),
        (None, Some(brokers)) => Problem::at(brokers, message),
        (None, None) => Problem::at(&raw.name, message),
    })
}

/// A run without nodes would pass while testing nothing; so would servers without a
/// workload: the checks judge what clients and writers did.
fn check_something_is_checked(raw: &RawScenario, counts: &NodeCounts) -> Checked<()> {
    if counts.total() == 0 {
        return Err(Problem {
            span: 0..0,
            message: "this scenario runs no nodes, so nothing would be checked: add a \
                      [[writer]] table (or `zookeepers` or `brokers` in [cluster], with \
                      [[producer]]s and [[consumer]]s or [[zk_client]]s)"
                .to_string(),
        });
    }
    let workload = counts.producers
        + counts.consumers
        + counts.writers
        + counts.zk_clients
        + counts.processors;
    if workload > 0 {
        return Ok(());
    }
    let cluster = raw.cluster.as_ref();
    let servers = cluster
        .and_then(|c| c.zookeepers.as_ref().filter(|z| *z.get_ref() > 0))
        .or_else(|| cluster.and_then(|c| c.brokers.as_ref()));
    let message = "this scenario runs servers but no workload, so nothing would be checked: \
                   add a [[producer]] or [[consumer]] (with brokers), a [[zk_client]] (with \
                   an ensemble) or a [[writer]]";
    Err(match servers {
        Some(count) => Problem::at(count, message),
        None => Problem {
            span: 0..0,
            message: message.to_string(),
        },
    })
}

/// Byte offsets where the lines of a text start, to turn offsets into line numbers in
/// O(log n) (one fault after another would otherwise count newlines from the start).
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn new(text: &str) -> LineStarts {
        let starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        LineStarts(starts)
    }

    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }
}

/// `[a-z0-9][a-z0-9-._]*`: the name becomes a directory name.
fn check_scenario_name(name: &Spanned<String>) -> Checked<()> {
    let text = name.get_ref();
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(Problem::at(
            name,
            format!(
                "expected a scenario name of lowercase letters, digits, `-`, `.` and `_`, \
                 starting with a letter or digit (it names run directories), found {text:?}"
            ),
        ))
    }
}

fn build_cluster(raw: Option<&RawCluster>) -> Checked<Cluster> {
    let Some(raw) = raw else {
        return Ok(Cluster::default());
    };
    let zookeepers = at_most_limit(&raw.zookeepers, MAX_ZOOKEEPERS, "zookeepers", ENSEMBLES)?;
    let brokers = at_most_limit(&raw.brokers, MAX_BROKERS, "brokers", "")?;
    if let Some(brokers) = raw.brokers.as_ref().filter(|b| *b.get_ref() > 0) {
        if zookeepers.unwrap_or(0) == 0 {
            return Err(Problem::at(
                brokers,
                "brokers need a ZooKeeper ensemble (they register and elect their controller \
                 in it): set `zookeepers` in [cluster], e.g. `zookeepers = 3`",
            ));
        }
    }
    Ok(Cluster {
        zookeepers: zookeepers.unwrap_or(0),
        brokers: brokers.unwrap_or(0),
        broker: raw
            .broker
            .as_ref()
            .map(build_broker_config)
            .transpose()?
            .unwrap_or_default(),
        zookeeper: raw
            .zookeeper
            .as_ref()
            .map(build_zookeeper_config)
            .transpose()?
            .unwrap_or_default(),
    })
}

fn build_broker_config(raw: &RawBrokerConfig) -> Checked<BrokerConfig> {
    let log = build_log_config(&raw.log_config())?;
    let positive_int = |value: &Option<Spanned<u32>>, key| kafka_int(value, 1, key);
    let offsets_topic_num_partitions = at_least(
        &raw.offsets_topic_num_partitions,
        1,
        "offsets.topic.num.partitions",
    )?;
    at_most_limit(
        &raw.offsets_topic_num_partitions,
        MAX_PARTITIONS,
        "offsets.topic.num.partitions",
        "partitions in all, over the topics and `__consumer_offsets`",
    )?;
    let offsets_topic_replication_factor = at_least(
        &raw.offsets_topic_replication_factor,
        1,
        "offsets.topic.replication.factor",
    )?;
    at_most(
        &raw.offsets_topic_replication_factor,
        i16::MAX as u64,
        "offsets.topic.replication.factor",
        "Kafka reads it as a Java short",
    )?;
    let transaction_state_log_num_partitions = at_least(
        &raw.transaction_state_log_num_partitions,
        1,
        "transaction.state.log.num.partitions",
    )?;
    at_most_limit(
        &raw.transaction_state_log_num_partitions,
        MAX_PARTITIONS,
        "transaction.state.log.num.partitions",
        "partitions in all, over the topics and the internal topics",
    )?;
    let transaction_state_log_replication_factor = at_least(
        &raw.transaction_state_log_replication_factor,
        1,
        "transaction.state.log.replication.factor",
    )?;
    at_most(
        &raw.transaction_state_log_replication_factor,
        i16::MAX as u64,
        "transaction.state.log.replication.factor",
        "Kafka reads it as a Java short",
    )?;
    let transaction_state_log_min_isr = at_least(
        &raw.transaction_state_log_min_isr,
        1,
        "transaction.state.log.min.isr",
    )?;
    Ok(BrokerConfig {
        transaction_state_log_num_partitions,
        transaction_state_log_replication_factor,
        transaction_state_log_min_isr,
        replica_lag_time_max_ms: kafka_long(
            &raw.replica_lag_time_max_ms,
            1,
            "replica.lag.time.max.ms",
        )?,
        unclean_leader_election_enable: value(&raw.unclean_leader_election_enable),
        min_insync_replicas: positive_int(&raw.min_insync_replicas, "min.insync.replicas")?,
        default_replication_factor: positive_int(
            &raw.default_replication_factor,
            "default.replication.factor",
        )?,
        offsets_topic_num_partitions,
        offsets_topic_replication_factor,
        group_initial_rebalance_delay_ms: kafka_int(
            &raw.group_initial_rebalance_delay_ms,
            0,
            "group.initial.rebalance.delay.ms",
        )?,
        ..log
    })
}

/// The `log.*` keys, with Kafka's bounds (its `int` keys stay within `i32`).
fn build_log_config(raw: &RawLogConfig) -> Checked<BrokerConfig> {
    Ok(BrokerConfig {
        log_flush_interval_messages: kafka_long(
            &raw.log_flush_interval_messages,
            1,
            "log.flush.interval.messages",
        )?,
        log_flush_interval_ms: kafka_long(&raw.log_flush_interval_ms, 1, "log.flush.interval.ms")?,
        log_segment_bytes: kafka_int(&raw.log_segment_bytes, 14, "log.segment.bytes")?,
        log_index_interval_bytes: kafka_int(
            &raw.log_index_interval_bytes,
            0,
            "log.index.interval.bytes",
        )?,
        log_retention_bytes: unlimited_or_positive(
            &raw.log_retention_bytes,
            "log.retention.bytes",
        )?,
        log_retention_ms: unlimited_or_positive(&raw.log_retention_ms, "log.retention.ms")?,
        ..BrokerConfig::default()
    })
}

fn build_zookeeper_config(raw: &RawZookeeperConfig) -> Checked<ZookeeperConfig> {
    let ticks = "ZooKeeper's defaults are 10 (`initLimit`) and 5 (`syncLimit`)";
    at_most_limit(&raw.init_limit, MAX_LIMIT_TICKS, "initLimit", ticks)?;
    at_most_limit(&raw.sync_limit, MAX_LIMIT_TICKS, "syncLimit", ticks)?;
    at_most_limit(
        &raw.tick_time,
        MAX_TICK_TIME_MS,
        "tickTime",
        "a minute; ZooKeeper's default is 2000",
    )?;
    let snap_count = at_least(&raw.snap_count, 2, "snapCount")?;
    at_most(
        &raw.snap_count,
        JAVA_INT_MAX,
        "snapCount",
        "ZooKeeper reads it as a Java int",
    )?;
    Ok(ZookeeperConfig {
        tick_time_ms: at_least(&raw.tick_time, 1, "tickTime")?,
        init_limit: at_least(&raw.init_limit, 1, "initLimit")?,
        sync_limit: at_least(&raw.sync_limit, 1, "syncLimit")?,
        force_sync: raw.force_sync.as_ref().map(|f| f.get_ref().0),
        snap_count,
    })
}

fn build_topic(raw: &Spanned<RawTopic>, cluster: &Cluster) -> Checked<Topic> {
    let topic = raw.get_ref();
    check_topic_name(&topic.name)?;
    let name = topic.name.get_ref().clone();
    let partitions = *at_least_required(&topic.partitions, 1, "partitions")?;
    at_most_limit(
        &Some(topic.partitions.clone()),
        MAX_PARTITIONS,
        "partitions",
        "partitions in all, over the topics and `__consumer_offsets`",
    )?;
    at_least(&topic.replication_factor, 1, "replication.factor")?;
    // Kafka creates a topic without a replication factor with the broker's default.
    let default_rf = cluster.broker.default_replication_factor.unwrap_or(1);
    let replication_factor = topic
        .replication_factor
        .as_ref()
        .map_or(default_rf, |rf| *rf.get_ref());
    if replication_factor > cluster.brokers {
        let message = format!(
            "`replication.factor` {replication_factor} of topic `{name}` exceeds the number of \
             brokers (`brokers` = {} in [cluster])",
            cluster.brokers
        );
        return Err(match &topic.replication_factor {
            Some(rf) => Problem::at(rf, message),
            None => Problem::at(
                raw,
                format!("{message}; the default replication factor is {default_rf}"),
            ),
        });
    }
    let min_insync_replicas = at_least(&topic.min_insync_replicas, 1, "min.insync.replicas")?;
    if let Some(min_isr) = &topic.min_insync_replicas {
        if *min_isr.get_ref() > replication_factor {
            return Err(Problem::at(
                min_isr,
                format!(
                    "`min.insync.replicas` {} exceeds the `replication.factor` \
                     {replication_factor} of topic `{name}`: acks=all produces could never \
                     succeed",
                    min_isr.get_ref()
                ),
            ));
        }
    }
    Ok(Topic {
        name,
        partitions,
        replication_factor,
        min_insync_replicas,
    })
}

/// Kafka's topic-name rule (legal characters `[a-zA-Z0-9._-]`, at most 249, not `.`/`..`),
/// and not the internal `__consumer_offsets`.
fn check_topic_name(name: &Spanned<String>) -> Checked<()> {
    let text = name.get_ref();
    let legal = !text.is_empty()
        && text.len() <= 249
        && text != "."
        && text != ".."
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !legal {
        return Err(Problem::at(
            name,
            format!(
                "expected a Kafka topic name: 1 to 249 of `a-z`, `A-Z`, `0-9`, `.`, `_`, `-` \
                 (not `.` or `..`), found {text:?}"
            ),
        ));
    }
    if text == "__consumer_offsets" {
        return Err(Problem::at(
            name,
            "`__consumer_offsets` is Kafka's internal topic; it exists already",
        ));
    }
    Ok(())
}

fn check_unique_topics(topics: &[Spanned<RawTopic>]) -> Checked<()> {
    let mut seen = BTreeSet::new();
    for topic in topics {
        let name = &topic.get_ref().name;
        if !seen.insert(name.get_ref()) {
            return Err(Problem::at(
                name,
                format!("duplicate topic `{}`", name.get_ref()),
            ));
        }
    }
    Ok(())
}

fn build_producer(raw: &Spanned<RawProducer>, topics: &BTreeSet<&str>) -> Checked<ProducerSpec> {
    let producer = raw.get_ref();
    let count = *at_least_required(&producer.count, 1, "count")?;
    check_topic_reference(&producer.topic, topics)?;
    let rate = rate_within_limits(&producer.rate)?;
    let config = match &producer.config {
        Some(config) => build_producer_config(config)?,
        None => ProducerConfig::default(),
    };
    let txn_records = at_least(&producer.txn_records, 1, "txn-records")?;
    at_most_limit(&producer.txn_records, MAX_TXN_RECORDS, "txn-records", "")?;
    let txn_abort_percent = at_most(&producer.txn_abort_percent, 100, "txn-abort-percent", "")?;
    if config.transactional_id.is_none() {
        let knob = [
            (producer.txn_records.as_ref(), "txn-records"),
            (producer.txn_abort_percent.as_ref(), "txn-abort-percent"),
        ]
        .into_iter()
        .find_map(|(raw, key)| raw.map(|raw| (raw, key)));
        if let Some((raw, key)) = knob {
            return Err(Problem::at(
                raw,
                format!(
                    "`{key}` needs a transactional producer: set `\"transactional.id\"` in \
                     [producer.config]"
                ),
            ));
        }
    }
    Ok(ProducerSpec {
        count,
        topic: producer.topic.get_ref().clone(),
        rate,
        keys: value(&producer.keys).unwrap_or(0),
        txn_records: txn_records.unwrap_or(crate::client::producer::DEFAULT_TXN_RECORDS),
        txn_abort_percent: txn_abort_percent.map_or(0, |p| p as u8),
        config,
    })
}

/// Two producers with one `transactional.id` would fence each other forever: every
/// producer's and processor's id (numbered per table, see
/// [`ProducerSpec::transactional_ids`]) is its own.
fn check_unique_transactional_ids(
    raw: &[Spanned<RawProducer>],
    producers: &[ProducerSpec],
    raw_processors: &[Spanned<RawProcessor>],
    processors: &[ProcessorSpec],
) -> Checked<()> {
    let mut seen = BTreeSet::new();
    let producer_tables = raw.iter().zip(producers).map(|(raw, spec)| {
        let at = raw
            .get_ref()
            .config
            .as_ref()
            .and_then(|c| c.transactional_id.as_ref())
            .map_or_else(|| raw.span(), Spanned::span);
        (at, spec)
    });
    let processor_tables = raw_processors.iter().zip(processors).map(|(raw, spec)| {
        // The id defaults to the group's.
        let r = raw.get_ref();
        let at = r
            .producer
            .as_ref()
            .and_then(|c| c.transactional_id.as_ref())
            .map_or_else(|| r.group.span(), Spanned::span);
        (at, &spec.producer)
    });
    for (at, spec) in producer_tables.chain(processor_tables) {
        for id in spec.transactional_ids() {
            if !seen.insert(id.clone()) {
                return Err(Problem {
                    span: at,
                    message: format!(
                        "`transactional.id` \"{id}\" is given to two producers (a table of \
                         several numbers its producers' ids `<id>-1`, `<id>-2`, ...); each \
                         producer needs its own, or they fence each other"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Kafka's producer config, with the checks `KafkaProducer` makes at startup: the value
/// ranges, `delivery.timeout.ms` >= `linger.ms` + `request.timeout.ms` when it is set
/// (left out, Kafka raises it to that sum, see [`ProducerSpec::client_config`]), and, when
/// idempotence is explicitly on or a `transactional.id` is set, what it requires (it
/// refuses to start otherwise; a transactional producer cannot turn idempotence off), and
/// `transaction.timeout.ms` within the brokers' `transaction.max.timeout.ms`. Every config
/// that passes makes a client config that passes the producer's own validation.
fn build_producer_config(raw: &RawProducerConfig) -> Checked<ProducerConfig> {
    let config = ProducerConfig {
        acks: raw.acks.as_ref().map(|a| a.get_ref().0),
        enable_idempotence: value(&raw.enable_idempotence),
        partitioner_class: value(&raw.partitioner_class),
        // Kafka allows 0 (no batching); ksim's producer always batches.
        batch_size: kafka_int(&raw.batch_size, 1, "batch.size")?,
        linger_ms: kafka_long(&raw.linger_ms, 0, "linger.ms")?,
        max_in_flight_requests_per_connection: kafka_int(
            &raw.max_in_flight_requests_per_connection,
            1,
            "max.in.flight.requests.per.connection",
        )?,
        retries: kafka_int(&raw.retries, 0, "retries")?,
        delivery_timeout_ms: kafka_int(&raw.delivery_timeout_ms, 0, "delivery.timeout.ms")?,
        request_timeout_ms: kafka_int(&raw.request_timeout_ms, 0, "request.timeout.ms")?,
        transactional_id: value(&raw.transactional_id),
        transaction_timeout_ms: at_least(&raw.transaction_timeout_ms, 1, "transaction.timeout.ms")?,
    };
    if let Some(id) = raw
        .transactional_id
        .as_ref()
        .filter(|id| id.get_ref().is_empty())
    {
        return Err(Problem::at(
            id,
            "expected a `transactional.id`, found an empty string; omit it for a \
             non-transactional producer",
        ));
    }
    at_most(
        &raw.transaction_timeout_ms,
        crate::broker::txn_coordinator::DEFAULT_TRANSACTION_MAX_TIMEOUT_MS as u64,
        "transaction.timeout.ms",
        "the brokers' `transaction.max.timeout.ms`: InitProducerId refuses a longer one",
    )?;
    if raw.transactional_id.is_some() {
        // Kafka: a transactional producer is idempotent; turning idempotence off is a
        // ConfigException.
        if let Some(off) = raw.enable_idempotence.as_ref().filter(|e| !*e.get_ref()) {
            return Err(Problem::at(
                off,
                "`transactional.id` requires idempotence: `enable.idempotence` cannot be false",
            ));
        }
    }
    if let Some(delivery) = &raw.delivery_timeout_ms {
        let defaults = crate::client::producer::ProducerConfig::new("", Vec::new());
        let linger = config.linger_ms.unwrap_or(defaults.linger_ms);
        let request = config
            .request_timeout_ms
            .unwrap_or(defaults.request_timeout_ms);
        let least = u128::from(linger) + u128::from(request);
        if u128::from(*delivery.get_ref()) < least {
            return Err(Problem::at(
                delivery,
                format!(
                    "`delivery.timeout.ms` must be at least `linger.ms` + \
                     `request.timeout.ms` ({linger} + {request} = {least}), found {}",
                    delivery.get_ref()
                ),
            ));
        }
    }
    let requirer = if config.enable_idempotence == Some(true) {
        Some("`enable.idempotence` = true")
    } else if config.transactional_id.is_some() {
        Some("`transactional.id` (an idempotent producer)")
    } else {
        None
    };
    if let Some(requirer) = requirer {
        let idempotence_requires = |span: Range<usize>, what: &str| Problem {
            span,
            message: format!("{requirer} requires {what}"),
        };
        if let Some(acks) = raw.acks.as_ref().filter(|a| a.get_ref().0 != Acks::All) {
            return Err(idempotence_requires(acks.span(), "`acks` = \"all\""));
        }
        if let Some(in_flight) = raw
            .max_in_flight_requests_per_connection
            .as_ref()
            .filter(|m| *m.get_ref() > 5)
        {
            return Err(idempotence_requires(
                in_flight.span(),
                "`max.in.flight.requests.per.connection` <= 5",
            ));
        }
        if let Some(retries) = raw.retries.as_ref().filter(|r| *r.get_ref() == 0) {
            return Err(idempotence_requires(retries.span(), "`retries` > 0"));
        }
    }
    Ok(config)
}

/// A `[[processor]]`: its consumer side is checked as a `[[consumer]]` with a group (Kafka
/// Streams sets `isolation.level` read_committed and `enable.auto.commit` false, so a
/// scenario may not set them otherwise), its producer side as a transactional
/// `[[producer]]` of `output` (the id defaults to the group's).
fn build_processor(raw: &Spanned<RawProcessor>, topics: &BTreeSet<&str>) -> Checked<ProcessorSpec> {
    let processor = raw.get_ref();
    let count = *at_least_required(&processor.count, 1, "count")?;
    if processor.group.get_ref().is_empty() {
        return Err(Problem::at(
            &processor.group,
            "expected a group name, found an empty string",
        ));
    }
    check_topic_reference(&processor.output, topics)?;
    let consumer = build_reader(
        &processor.count,
        Some(&processor.group),
        &processor.topics,
        processor.consumer.as_ref(),
        topics,
    )?;
    if let Some(raw_consumer) = &processor.consumer {
        if let Some(level) = raw_consumer
            .isolation_level
            .as_ref()
            .filter(|l| *l.get_ref() != IsolationLevel::ReadCommitted)
        {
            return Err(Problem::at(
                level,
                "a processor reads with `isolation.level` = \"read_committed\" (exactly-once \
                 requires it, as Kafka Streams sets it)",
            ));
        }
        if let Some(on) = raw_consumer
            .enable_auto_commit
            .as_ref()
            .filter(|a| *a.get_ref())
        {
            return Err(Problem::at(
                on,
                "a processor commits its offsets with its transactions: \
                 `enable.auto.commit` must be false (Kafka Streams sets it)",
            ));
        }
    }
    let mut consumer = consumer;
    consumer.config.isolation_level = Some(IsolationLevel::ReadCommitted);
    consumer.config.enable_auto_commit = Some(false);
    let mut producer_config = match &processor.producer {
        Some(config) => build_producer_config(config)?,
        None => ProducerConfig::default(),
    };
    if producer_config.transactional_id.is_none() {
        producer_config.transactional_id = Some(processor.group.get_ref().clone());
    }
    let txn_abort_percent = at_most(&processor.txn_abort_percent, 100, "txn-abort-percent", "")?;
    let interval = processor
        .config
        .as_ref()
        .and_then(|c| c.commit_interval_ms.clone());
    let commit_interval_ms = at_least(&interval, 1, "commit.interval.ms")?;
    at_most_limit(&interval, MAX_COMMIT_INTERVAL_MS, "commit.interval.ms", "")?;
    Ok(ProcessorSpec {
        count,
        output: processor.output.get_ref().clone(),
        commit_interval_ms: commit_interval_ms
            .unwrap_or(super::model::DEFAULT_PROCESSOR_COMMIT_INTERVAL_MS),
        consumer,
        producer: ProducerSpec {
            count,
            topic: processor.output.get_ref().clone(),
            rate: 0,
            keys: 0,
            txn_records: 1,
            txn_abort_percent: txn_abort_percent.map_or(0, |p| p as u8),
            config: producer_config,
        },
    })
}

fn build_consumer(raw: &Spanned<RawConsumer>, topics: &BTreeSet<&str>) -> Checked<ConsumerSpec> {
    let consumer = raw.get_ref();
    build_reader(
        &consumer.count,
        consumer.group.as_ref(),
        &consumer.topics,
        consumer.config.as_ref(),
        topics,
    )
}

/// A `[[consumer]]` table's nodes, or a `[[processor]]` table's consumer side.
fn build_reader(
    count: &Spanned<u32>,
    group: Option<&Spanned<String>>,
    subscribed_topics: &Spanned<Vec<Spanned<String>>>,
    config: Option<&RawConsumerConfig>,
    topics: &BTreeSet<&str>,
) -> Checked<ConsumerSpec> {
    let count = *at_least_required(count, 1, "count")?;
    if let Some(group) = group.filter(|g| g.get_ref().is_empty()) {
        return Err(Problem::at(
            group,
            "expected a group name, found an empty string; omit `group` for an assign-mode reader",
        ));
    }
    if subscribed_topics.get_ref().is_empty() {
        return Err(Problem::at(
            subscribed_topics,
            "`topics` must name at least one [[topic]]",
        ));
    }
    let mut subscribed = BTreeSet::new();
    for topic in subscribed_topics.get_ref() {
        check_topic_reference(topic, topics)?;
        if !subscribed.insert(topic.get_ref()) {
            return Err(Problem::at(
                topic,
                format!("`{}` is listed twice", topic.get_ref()),
            ));
        }
    }
    let config = match config {
        Some(config) => build_consumer_config(config, group.is_some())?,
        None => ConsumerConfig::default(),
    };
    Ok(ConsumerSpec {
        count,
        group: group.map(|g| g.get_ref().clone()),
        topics: subscribed_topics
            .get_ref()
            .iter()
            .map(|t| t.get_ref().clone())
            .collect(),
        config,
    })
}

/// Kafka's consumer config, with the checks the consumer makes at startup.
fn build_consumer_config(raw: &RawConsumerConfig, in_group: bool) -> Checked<ConsumerConfig> {
    /// Kafka's defaults, for comparing a value set against one left out.
    const SESSION_TIMEOUT_MS: u64 = 45_000;
    const HEARTBEAT_INTERVAL_MS: u64 = 3_000;
    let config = ConsumerConfig {
        partition_assignment_strategy: value(&raw.partition_assignment_strategy),
        enable_auto_commit: value(&raw.enable_auto_commit),
        auto_commit_interval_ms: kafka_int(
            &raw.auto_commit_interval_ms,
            0,
            "auto.commit.interval.ms",
        )?,
        session_timeout_ms: kafka_int(&raw.session_timeout_ms, 1, "session.timeout.ms")?,
        heartbeat_interval_ms: kafka_int(&raw.heartbeat_interval_ms, 1, "heartbeat.interval.ms")?,
        max_poll_interval_ms: kafka_int(&raw.max_poll_interval_ms, 1, "max.poll.interval.ms")?,
        group_instance_id: value(&raw.group_instance_id),
        auto_offset_reset: value(&raw.auto_offset_reset),
        isolation_level: value(&raw.isolation_level),
    };
    if let Some(id) = raw
        .group_instance_id
        .as_ref()
        .filter(|id| id.get_ref().is_empty())
    {
        return Err(Problem::at(
            id,
            "expected a `group.instance.id`, found an empty string; omit it for a dynamic member",
        ));
    }
    if let Some(session) = raw.session_timeout_ms.as_ref().filter(|_| in_group) {
        // The brokers' `group.min.session.timeout.ms` and `group.max.session.timeout.ms`:
        // a member asking for a session outside them is refused every JoinGroup.
        let timeout = *session.get_ref();
        if !(GROUP_MIN_SESSION_TIMEOUT_MS..=GROUP_MAX_SESSION_TIMEOUT_MS).contains(&timeout) {
            return Err(Problem::at(
                session,
                format!(
                    "`session.timeout.ms` must be within the brokers' \
                     `group.min.session.timeout.ms` and `group.max.session.timeout.ms` \
                     ({GROUP_MIN_SESSION_TIMEOUT_MS} to {GROUP_MAX_SESSION_TIMEOUT_MS}), or \
                     every JoinGroup is refused; found {timeout}"
                ),
            ));
        }
    }
    if let Some(reset) = raw.auto_offset_reset.as_ref() {
        if !["earliest", "latest"].contains(&reset.get_ref().as_str()) {
            return Err(Problem::at(
                reset,
                format!(
                    r#"expected `auto.offset.reset` "earliest" or "latest", found {:?}"#,
                    reset.get_ref()
                ),
            ));
        }
    }
    let session = config.session_timeout_ms.unwrap_or(SESSION_TIMEOUT_MS);
    let heartbeat = config
        .heartbeat_interval_ms
        .unwrap_or(HEARTBEAT_INTERVAL_MS);
    if heartbeat >= session {
        let culprit = raw
            .heartbeat_interval_ms
            .as_ref()
            .or(raw.session_timeout_ms.as_ref());
        if let Some(culprit) = culprit {
            return Err(Problem::at(
                culprit,
                format!(
                    "`heartbeat.interval.ms` ({heartbeat}) must be lower than \
                     `session.timeout.ms` ({session})"
                ),
            ));
        }
    }
    if !in_group {
        if let Some(id) = &raw.group_instance_id {
            return Err(Problem::at(
                id,
                "`group.instance.id` needs a consumer `group`",
            ));
        }
        if let Some(auto_commit) = raw.enable_auto_commit.as_ref().filter(|a| *a.get_ref()) {
            return Err(Problem::at(
                auto_commit,
                "`enable.auto.commit` = true needs a consumer `group` (there is nowhere to commit)",
            ));
        }
    }
    Ok(config)
}

fn check_topic_reference(topic: &Spanned<String>, topics: &BTreeSet<&str>) -> Checked<()> {
    if topics.contains(topic.get_ref().as_str()) {
        return Ok(());
    }
    let known = if topics.is_empty() {
        "this scenario has no [[topic]]".to_string()
    } else {
        format!(
            "topics are {}",
            topics.iter().copied().collect::<Vec<_>>().join(", ")
        )
    };
    Err(Problem::at(
        topic,
        format!("no [[topic]] is named `{}`; {known}", topic.get_ref()),
    ))
}

fn build_writer(raw: &Spanned<RawWriter>) -> Checked<WriterSpec> {
    let writer = raw.get_ref();
    Ok(WriterSpec {
        count: *at_least_required(&writer.count, 1, "count")?,
        rate: rate_within_limits(&writer.rate)?,
        config: match &writer.config {
            Some(config) => build_log_config(config)?,
            None => BrokerConfig::default(),
        },
    })
}

fn build_zk_client(raw: &Spanned<RawZkClient>, cluster: &Cluster) -> Checked<ZkClientSpec> {
    let client = raw.get_ref();
    if cluster.zookeepers == 0 {
        return Err(Problem::at(
            &client.count,
            "[[zk_client]] needs an ensemble: set `zookeepers` in [cluster]",
        ));
    }
    for (value, key) in [
        (&client.session_timeout, "session_timeout"),
        (&client.churn, "churn"),
    ] {
        if let Some(value) = value {
            duration_at_most(value, key)?;
        }
    }
    let duration = |value: &Option<Spanned<DurationValue>>| value.as_ref().map(|d| d.get_ref().0);
    let session_timeout = duration(&client.session_timeout).unwrap_or(Duration::from_secs(6));
    if let Some(timeout) = &client.session_timeout {
        if session_timeout.is_zero() {
            return Err(Problem::at(
                timeout,
                "`session_timeout` must be more than 0",
            ));
        }
    }
    let churn = duration(&client.churn);
    if let (Some(raw_churn), Some(churn)) = (&client.churn, churn) {
        if churn.is_zero() {
            return Err(Problem::at(
                raw_churn,
                "`churn` must be more than 0 (leave it out for no churn)",
            ));
        }
    }
    let registers = at_least(&client.registers, 1, "registers")?;
    at_most_limit(&client.registers, MAX_REGISTERS, "registers", "")?;
    Ok(ZkClientSpec {
        count: *at_least_required(&client.count, 1, "count")?,
        rate: rate_within_limits(&client.rate)?,
        registers: registers.unwrap_or(3),
        session_timeout,
        churn,
    })
}

fn build_fault(
    raw: &Spanned<RawFault>,
    duration: Duration,
    world: &World,
    lines: &LineStarts,
) -> Checked<Fault> {
    let fault = raw.get_ref();
    let at = fault.at.get_ref().0;
    if at > duration {
        return Err(Problem::at(
            &fault.at,
            format!(
                "fault at {} is after the fault phase ends (`duration` = \"{}\")",
                format_duration(at),
                format_duration(duration)
            ),
        ));
    }
    let action = *fault.action.get_ref();
    let target = match &fault.target {
        Some(text) => {
            let target = parse_target(text.get_ref()).map_err(|e| Problem::at(text, e))?;
            check_target(&target, world).map_err(|e| Problem::at(text, e))?;
            Some((text, target))
        }
        None => None,
    };
    check_fault_fields(fault, target.as_ref().map(|(text, target)| (*text, target)))?;
    let sides = match &fault.sides {
        Some(sides) => Some(build_sides(sides, &world.counts)?),
        None => None,
    };
    if let Some(rate) = &fault.rate {
        let r = *rate.get_ref();
        if !(0.0..=1.0).contains(&r) {
            return Err(Problem::at(
                rate,
                format!("`rate` is a probability: expected 0.0 to 1.0, found {r}"),
            ));
        }
    }
    Ok(Fault {
        at,
        action,
        target: target.map(|(_, target)| target),
        sides,
        rate: value(&fault.rate),
        line: lines.line(raw.span().start),
    })
}

/// Which of `target`, `sides` and `rate` go with the action.
fn check_fault_fields(
    fault: &RawFault,
    target: Option<(&Spanned<String>, &Target)>,
) -> Checked<()> {
    let action = *fault.action.get_ref();
    let quoted = format!("`action = \"{action}\"`");
    if let Some(sides) = fault
        .sides
        .as_ref()
        .filter(|_| action != FaultAction::Partition)
    {
        return Err(Problem::at(
            sides,
            format!("`sides` only goes with `action = \"partition\"`, not {quoted}"),
        ));
    }
    if let Some(rate) = fault.rate.as_ref().filter(|_| action != FaultAction::Loss) {
        return Err(Problem::at(
            rate,
            format!("`rate` only goes with `action = \"loss\"`, not {quoted}"),
        ));
    }
    match (action, target) {
        (FaultAction::Heal, Some((text, _))) => Err(Problem::at(
            text,
            "`heal` takes no `target`: it heals every network partition",
        )),
        (FaultAction::Heal, None) => Ok(()),
        (FaultAction::Partition, Some((text, _))) if fault.sides.is_some() => Err(Problem::at(
            text,
            "`partition` takes either a shape `target` or `sides`, not both",
        )),
        (FaultAction::Partition, Some((text, target))) if !target.is_partition_shape() => {
            Err(Problem::at(
                text,
                format!(
                    "`partition` takes a shape: `halves`, `bridge` or `isolate(<target>)` \
                     (e.g. `isolate({target})`), or `sides` instead of `target`; found `{target}`"
                ),
            ))
        }
        (FaultAction::Partition, None) if fault.sides.is_none() => Err(Problem::at(
            &fault.action,
            "`partition` needs a shape `target` (`halves`, `bridge`, `isolate(<target>)`) \
             or `sides = [[\"broker-1\"], [\"*\"]]`",
        )),
        (FaultAction::Partition, _) => Ok(()),
        (_, Some((text, target))) if target.is_partition_shape() => Err(Problem::at(
            text,
            format!("`{target}` is a partition shape; it only goes with `action = \"partition\"`"),
        )),
        (FaultAction::Loss, _) if fault.rate.is_none() => Err(Problem::at(
            &fault.action,
            "`loss` needs a `rate`: the probability a message is dropped, 0.0 to 1.0",
        )),
        (FaultAction::Loss, _) | (_, Some(_)) => Ok(()),
        (_, None) => Err(Problem::at(
            &fault.action,
            format!(
                "{quoted} needs a `target`, e.g. `target = \"writer-1\"` or `target = \"killed\"`"
            ),
        )),
    }
}

/// `sides`: at least two non-empty groups of node names, each node on one side at most, and
/// `"*"` (every node not named elsewhere) at most once.
fn build_sides(raw: &Spanned<RawSides>, counts: &NodeCounts) -> Checked<Vec<Vec<String>>> {
    if raw.get_ref().len() < 2 {
        return Err(Problem::at(
            raw,
            "`sides` needs at least two sides, e.g. `[[\"broker-1\"], [\"*\"]]`",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut sides = Vec::new();
    for side in raw.get_ref() {
        if side.get_ref().is_empty() {
            return Err(Problem::at(
                side,
                "a side of a partition needs at least one node (or \"*\")",
            ));
        }
        for node in side.get_ref() {
            let name = node.get_ref();
            if name != "*" {
                check_node(name, &format!("`{name}` in `sides`"), counts)
                    .map_err(|e| Problem::at(node, e))?;
            }
            if !seen.insert(name.as_str()) {
                return Err(Problem::at(
                    node,
                    format!("`{name}` is on more than one side"),
                ));
            }
        }
        sides.push(side.get_ref().iter().map(|n| n.get_ref().clone()).collect());
    }
    Ok(sides)
}

fn build_nemesis(raw: &RawNemesis, duration: Duration) -> Checked<Nemesis> {
    /// The nemesis injects these and undoes them itself (restart, resume, heal, unclog).
    const INJECTING: [FaultAction; 6] = [
        FaultAction::Kill,
        FaultAction::PowerLoss,
        FaultAction::Pause,
        FaultAction::Partition,
        FaultAction::Clog,
        FaultAction::Loss,
    ];
    if raw.actions.get_ref().is_empty() {
        return Err(Problem::at(
            &raw.actions,
            "`actions` needs at least one fault action",
        ));
    }
    let mut actions = Vec::new();
    for action in raw.actions.get_ref() {
        let name = *action.get_ref();
        if !INJECTING.contains(&name) {
            let allowed: Vec<_> = INJECTING.iter().map(|a| format!("`{a}`")).collect();
            return Err(Problem::at(
                action,
                format!(
                    "`{name}` is not a nemesis action (the nemesis undoes its own faults); \
                     expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        if actions.contains(&name) {
            return Err(Problem::at(action, format!("`{name}` is listed twice")));
        }
        actions.push(name);
    }
    let every = parse_interval(raw.every.get_ref()).map_err(|e| Problem::at(&raw.every, e))?;
    if every.1 > MAX_DURATION {
        return Err(Problem::at(
            &raw.every,
            format!(
                "`every` must be at most {} (a limit of ksim), found \"{}\"",
                format_duration(MAX_DURATION),
                raw.every.get_ref()
            ),
        ));
    }
    // The nemesis draws a fault every `every.0` at the most.
    let most = duration.as_millis() / every.0.as_millis().max(1);
    if most > MAX_FAULTS as u128 {
        let shortest = duration.as_millis().div_ceil(MAX_FAULTS as u128);
        return Err(Problem::at(
            &raw.every,
            format!(
                "the nemesis could draw up to {most} faults in `duration`; at most {MAX_FAULTS} \
                 (a limit of ksim): start `every` at {} or more",
                format_duration(Duration::from_millis(shortest as u64))
            ),
        ));
    }
    Ok(Nemesis { actions, every })
}

fn build_expect(raw: &RawExpect) -> Checked<Expect> {
    check_check_name(&raw.fails)?;
    let mut tolerate: Vec<String> = Vec::new();
    for check in raw.tolerate.iter().flatten() {
        check_check_name(check)?;
        let name = check.get_ref();
        if name == raw.fails.get_ref() {
            return Err(Problem::at(
                check,
                format!("`{name}` is the expected failure already"),
            ));
        }
        if tolerate.contains(name) {
            return Err(Problem::at(check, format!("`{name}` is listed twice")));
        }
        tolerate.push(name.clone());
    }
    Ok(Expect {
        fails: raw.fails.get_ref().clone(),
        tolerate,
    })
}

fn check_check_name(name: &Spanned<String>) -> Checked<()> {
    if CheckName::parse(name.get_ref()).is_some() {
        return Ok(());
    }
    let names = CheckName::ALL.iter().map(|check| check.name());
    let message = match did_you_mean(name.get_ref(), names.clone()) {
        Some(hint) => format!("unknown check `{}`; did you mean `{hint}`?", name.get_ref()),
        None => format!(
            "unknown check `{}`; expected one of {}",
            name.get_ref(),
            names.collect::<Vec<_>>().join(", ")
        ),
    };
    Err(Problem::at(name, message))
}

fn build_legacy(raw: &RawLegacy) -> Legacy {
    let on = |switch: &Option<Spanned<bool>>| value(switch).unwrap_or(false);
    Legacy {
        truncate_to_hw: on(&raw.truncate_to_hw),
        offsets_for_leader_epoch_v0: on(&raw.offsets_for_leader_epoch_v0),
        lenient_min_isr: on(&raw.lenient_min_isr),
        unfenced_controller_writes: on(&raw.unfenced_controller_writes),
        no_broker_epoch: on(&raw.no_broker_epoch),
        unfenced_offset_commits: on(&raw.unfenced_offset_commits),
        commit_before_process: on(&raw.commit_before_process),
        cooperative_no_holdback: on(&raw.cooperative_no_holdback),
        zk_diff_only_sync: on(&raw.zk_diff_only_sync),
        zk_ack_before_sync: on(&raw.zk_ack_before_sync),
        unfenced_transactional_producer: on(&raw.unfenced_transactional_producer),
        no_epoch_bump_per_transaction: on(&raw.no_epoch_bump_per_transaction),
        no_add_partition_verification: on(&raw.no_add_partition_verification),
    }
}

/// The sum of the node counts of some tables, within [`MAX_CLIENTS_PER_KIND`].
fn total<T>(tables: &[Spanned<T>], count: impl Fn(&T) -> &Spanned<u32>) -> Checked<u32> {
    let mut sum: u32 = 0;
    for table in tables {
        let count = count(table.get_ref());
        sum = sum.saturating_add(*count.get_ref());
        if sum > MAX_CLIENTS_PER_KIND {
            return Err(Problem::at(
                count,
                format!(
                    "at most {MAX_CLIENTS_PER_KIND} nodes of one kind in total (a limit of \
                     ksim: each is simulated); found {sum}"
                ),
            ));
        }
    }
    Ok(sum)
}

/// Ensemble sizes, for the `zookeepers` limit.
const ENSEMBLES: &str = "ensembles are 3, 5 or 7 servers";

/// A `rate`: at least 1, at most [`MAX_RATE`].
fn rate_within_limits(rate: &Spanned<u32>) -> Checked<u32> {
    at_least_required(rate, 1, "rate")?;
    at_most_limit(&Some(rate.clone()), MAX_RATE, "rate", "per second")?;
    Ok(*rate.get_ref())
}

/// A duration within [`MAX_DURATION`]; `key` names it in the message.
fn duration_at_most(raw: &Spanned<DurationValue>, key: &str) -> Checked<Duration> {
    let duration = raw.get_ref().0;
    if duration > MAX_DURATION {
        return Err(Problem::at(
            raw,
            format!(
                "`{key}` must be at most {} of simulated time (a limit of ksim), found \"{}\"",
                format_duration(MAX_DURATION),
                format_duration(duration)
            ),
        ));
    }
    Ok(duration)
}

fn value<T: Clone>(raw: &Option<Spanned<T>>) -> Option<T> {
    raw.as_ref().map(|v| v.get_ref().clone())
}

fn at_least<T: PartialOrd + Display + Copy>(
    raw: &Option<Spanned<T>>,
    min: T,
    key: &str,
) -> Checked<Option<T>> {
    raw.as_ref()
        .map(|v| at_least_required(v, min, key).copied())
        .transpose()
}

fn at_least_required<'v, T: PartialOrd + Display>(
    raw: &'v Spanned<T>,
    min: T,
    key: &str,
) -> Checked<&'v T> {
    if *raw.get_ref() < min {
        return Err(Problem::at(
            raw,
            format!("`{key}` must be at least {min}, found {}", raw.get_ref()),
        ));
    }
    Ok(raw.get_ref())
}

/// `key` at most `max`; `why` (if not empty) says where the bound comes from.
fn at_most<T: Copy + Into<u64> + Display>(
    raw: &Option<Spanned<T>>,
    max: u64,
    key: &str,
    why: &str,
) -> Checked<Option<T>> {
    match raw {
        Some(v) if (*v.get_ref()).into() > max => {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            Err(Problem::at(
                v,
                format!("`{key}` must be at most {max}{why}, found {}", v.get_ref()),
            ))
        }
        _ => Ok(value(raw)),
    }
}

/// `key` within one of ksim's limits (see `limits`); `context` adds to the reason.
fn at_most_limit<T: Copy + Into<u64> + Display>(
    raw: &Option<Spanned<T>>,
    max: T,
    key: &str,
    context: &str,
) -> Checked<Option<T>> {
    let why = if context.is_empty() {
        "a limit of ksim".to_string()
    } else {
        format!("a limit of ksim; {context}")
    };
    at_most(raw, max.into(), key, &why)
}

/// A Kafka `int` setting: `min..=2147483647`.
fn kafka_int<T: Copy + Into<u64> + Display + PartialOrd>(
    raw: &Option<Spanned<T>>,
    min: T,
    key: &str,
) -> Checked<Option<T>> {
    at_least(raw, min, key)?;
    at_most(raw, JAVA_INT_MAX, key, "Kafka reads it as a Java int")
}

/// A Kafka `long` setting: `min..=9223372036854775807`.
fn kafka_long(raw: &Option<Spanned<u64>>, min: u64, key: &str) -> Checked<Option<u64>> {
    at_least(raw, min, key)?;
    at_most(raw, JAVA_LONG_MAX, key, "Kafka reads it as a Java long")
}

/// Kafka's `-1 = unlimited, else >= 0` settings.
fn unlimited_or_positive(raw: &Option<Spanned<i64>>, key: &str) -> Checked<Option<i64>> {
    match raw {
        Some(v) if *v.get_ref() < -1 => Err(Problem::at(
            v,
            format!(
                "`{key}` must be -1 (unlimited) or at least 0, found {}",
                v.get_ref()
            ),
        )),
        _ => Ok(value(raw)),
    }
}

/// The candidate closest to `text` by edit distance, if close enough to be a typo.
pub(super) fn did_you_mean<'c>(
    text: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (text.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|candidate| (edit_distance(text, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion_and_strangers_do_not() {
        let checks = || CheckName::ALL.iter().map(|check| check.name());
        assert_eq!(did_you_mean("lost-writes", checks()), Some("lost-write"));
        assert_eq!(did_you_mean("duplicte", checks()), Some("duplicate"));
        assert_eq!(did_you_mean("banana", checks()), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
