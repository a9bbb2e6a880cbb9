//! The whole-scenario budgets: limits that no single value breaks but a combination can —
//! partitions and replicas summed over the topics, the metadata every broker holds, and the
//! work a run does over its simulated time.
//!
//! Owns: adding up what a scenario asks for, the way the simulator pays for it, and
//! refusing it beyond [`super::limits`] with a [`Problem`] at the value that tipped it over.
//! What costs what (measured on the release build): every partition replica is fetched and
//! ticked all run long; every broker is sent the state of every partition on each leader or
//! ISR change (memory grows with brokers × partitions²); every record or operation offered
//! is kept (disk page cache, history) until the checks have read it; every record read by a
//! consumer is a history entry.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::build::Problem;
use super::limits::*;
use super::model::{Cluster, ConsumerSpec, ProcessorSpec, Topic};
use super::raw::RawScenario;
use crate::broker::coordinator::DEFAULT_OFFSETS_PARTITIONS;
use crate::broker::txn_coordinator::DEFAULT_TRANSACTION_STATE_PARTITIONS;

type Checked<T> = Result<T, Problem>;

/// Checks every budget; `length` is `duration` + `heal`.
pub(super) fn check(
    raw: &RawScenario,
    topics: &[Topic],
    consumers: &[ConsumerSpec],
    processors: &[ProcessorSpec],
    cluster: &Cluster,
    duration: Duration,
    length: Duration,
) -> Checked<()> {
    let sources = partition_sources(raw, topics, consumers, processors, cluster);
    check_cluster_size(&sources, cluster.brokers)?;
    // A processor's consumer side fetches and reads as a group member does.
    let readers: Vec<ConsumerSpec> = consumers
        .iter()
        .chain(processors.iter().map(|p| &p.consumer))
        .cloned()
        .collect();
    check_partition_seconds(raw, &sources, topics, &readers, length)?;
    let mut offered = check_offered_operations(raw, length)?;
    check_reads(raw, consumers, &offered)?;
    check_processed(raw, processors, &mut offered)?;
    check_ensemble_replay(raw, cluster, duration, length)
}

/// A set of partitions the cluster holds: a `[[topic]]`, or `__consumer_offsets` (created
/// once a group needs it), with the span to blame.
struct Source {
    partitions: u64,
    replication_factor: u64,
    span: Range<usize>,
    what: String,
}

fn partition_sources(
    raw: &RawScenario,
    topics: &[Topic],
    consumers: &[ConsumerSpec],
    processors: &[ProcessorSpec],
    cluster: &Cluster,
) -> Vec<Source> {
    let mut sources: Vec<Source> = raw
        .topic
        .iter()
        .zip(topics)
        .map(|(raw, topic)| Source {
            partitions: u64::from(topic.partitions),
            replication_factor: u64::from(topic.replication_factor),
            span: raw.get_ref().partitions.span(),
            what: format!("topic `{}`", topic.name),
        })
        .collect();
    let first_group = raw
        .consumer
        .iter()
        .zip(consumers)
        .find_map(|(raw, c)| c.group.as_ref().and(raw.get_ref().group.as_ref()))
        .or_else(|| raw.processor.first().map(|p| &p.get_ref().group));
    if let Some(first_group) = first_group {
        let broker = &cluster.broker;
        let raw_partitions = raw
            .cluster
            .as_ref()
            .and_then(|c| c.broker.as_ref())
            .and_then(|b| b.offsets_topic_num_partitions.as_ref());
        sources.push(Source {
            partitions: u64::from(
                broker
                    .offsets_topic_num_partitions
                    .unwrap_or(DEFAULT_OFFSETS_PARTITIONS),
            ),
            replication_factor: u64::from(
                broker
                    .offsets_topic_replication_factor
                    .unwrap_or(3)
                    .min(cluster.brokers),
            ),
            span: raw_partitions.map_or_else(|| first_group.span(), Spanned::span),
            what: "`__consumer_offsets` (`offsets.topic.num.partitions`, default 50)".into(),
        });
    }
    // `__transaction_state`, once a producer has a `transactional.id`.
    let first_transactional = raw
        .producer
        .iter()
        .find_map(|p| {
            p.get_ref()
                .config
                .as_ref()
                .and_then(|c| c.transactional_id.as_ref())
        })
        .or_else(|| raw.processor.first().map(|p| &p.get_ref().group));
    debug_assert!(first_transactional.is_some() || processors.is_empty());
    if let Some(first) = first_transactional {
        let broker = &cluster.broker;
        let raw_partitions = raw
            .cluster
            .as_ref()
            .and_then(|c| c.broker.as_ref())
            .and_then(|b| b.transaction_state_log_num_partitions.as_ref());
        sources.push(Source {
            partitions: u64::from(
                broker
                    .transaction_state_log_num_partitions
                    .unwrap_or(DEFAULT_TRANSACTION_STATE_PARTITIONS),
            ),
            replication_factor: u64::from(
                broker
                    .transaction_state_log_replication_factor
                    .unwrap_or(3)
                    .min(cluster.brokers),
            ),
            span: raw_partitions.map_or_else(|| first.span(), Spanned::span),
            what: "`__transaction_state` (`transaction.state.log.num.partitions`, default 50)"
                .into(),
        });
    }
    sources
}

/// Partitions, brokers × partitions and replicas, summed over the sources in file order;
/// the source that tips a sum over its limit is blamed.
fn check_cluster_size(sources: &[Source], brokers: u32) -> Checked<()> {
    let brokers = u64::from(brokers);
    let (mut partitions, mut replicas) = (0u64, 0u64);
    for source in sources {
        partitions += source.partitions;
        replicas += source.partitions * source.replication_factor;
        let problem = |message: String| Problem {
            span: source.span.clone(),
            message: format!(
                "{message} (a limit of ksim; {} brings it there)",
                source.what
            ),
        };
        if partitions > u64::from(MAX_PARTITIONS) {
            return Err(problem(format!(
                "{partitions} partitions in all, over the topics and the internal topics; \
                 at most {MAX_PARTITIONS}"
            )));
        }
        if replicas > MAX_REPLICAS {
            return Err(problem(format!(
                "{replicas} partition replicas in all (`partitions` x `replication.factor`, \
                 over the topics and the internal topics); at most {MAX_REPLICAS}"
            )));
        }
        if brokers * partitions > MAX_BROKER_PARTITIONS {
            return Err(problem(format!(
                "{brokers} brokers x {partitions} partitions = {}: every broker is sent the \
                 state of every partition on each change; at most {MAX_BROKER_PARTITIONS}",
                brokers * partitions
            )));
        }
    }
    Ok(())
}

/// Partition replicas and the partitions consumers fetch, kept busy for `length`: an
/// assign-mode reader fetches every partition of its topics, a group its topics' partitions
/// once between its members.
fn check_partition_seconds(
    raw: &RawScenario,
    sources: &[Source],
    topics: &[Topic],
    consumers: &[ConsumerSpec],
    length: Duration,
) -> Checked<()> {
    let replicas: u64 = sources
        .iter()
        .map(|s| s.partitions * s.replication_factor)
        .sum();
    let partitions_of = |names: &[String]| -> u64 {
        topics
            .iter()
            .filter(|t| names.contains(&t.name))
            .map(|t| u64::from(t.partitions))
            .sum()
    };
    let mut fetched = 0u64;
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for consumer in consumers {
        match &consumer.group {
            None => fetched += u64::from(consumer.count) * partitions_of(&consumer.topics),
            Some(group) => {
                let subscribed = groups.entry(group).or_default();
                for topic in &consumer.topics {
                    if !subscribed.contains(topic) {
                        subscribed.push(topic.clone());
                    }
                }
            }
        }
    }
    fetched += groups.values().map(|t| partitions_of(t)).sum::<u64>();
    let busy = replicas + fetched;
    let seconds = length.as_secs();
    let total = u128::from(busy) * length.as_millis() / 1000;
    if total <= u128::from(MAX_PARTITION_SECONDS) {
        return Ok(());
    }
    Err(Problem::at(
        &raw.duration,
        format!(
            "{replicas} partition replicas and {fetched} partitions read by consumers, busy \
             for {seconds}s (`duration` + `heal`), make {total} partition-seconds; at most \
             {MAX_PARTITION_SECONDS} (a limit of ksim): shorten `duration` or `heal`, or use \
             fewer partitions"
        ),
    ))
}

/// Records per topic (producers) and the scenario's total (producers, writers, ensemble
/// clients), each table's `count` × `rate` × `length`, within [`MAX_OFFERED_OPERATIONS`]. A
/// failure points at the `rate` of the table offering the most.
fn check_offered_operations(
    raw: &RawScenario,
    length: Duration,
) -> Checked<BTreeMap<String, u128>> {
    let millis = length.as_millis();
    let offered = |count: &Spanned<u32>, rate: &Spanned<u32>| {
        u128::from(*count.get_ref()) * u128::from(*rate.get_ref()) * millis / 1000
    };
    let mut per_topic: BTreeMap<String, u128> = BTreeMap::new();
    for producer in &raw.producer {
        let p = producer.get_ref();
        *per_topic.entry(p.topic.get_ref().clone()).or_default() += offered(&p.count, &p.rate);
    }
    let tables = raw
        .producer
        .iter()
        .map(|p| (&p.get_ref().count, &p.get_ref().rate))
        .chain(
            raw.writer
                .iter()
                .map(|w| (&w.get_ref().count, &w.get_ref().rate)),
        )
        .chain(
            raw.zk_client
                .iter()
                .map(|c| (&c.get_ref().count, &c.get_ref().rate)),
        );
    let mut sum: u128 = 0;
    let mut largest: Option<(u128, &Spanned<u32>)> = None;
    for (count, rate) in tables {
        let table = offered(count, rate);
        sum += table;
        if largest.is_none_or(|(most, _)| table > most) {
            largest = Some((table, rate));
        }
    }
    match largest {
        Some((_, rate)) if sum > u128::from(MAX_OFFERED_OPERATIONS) => Err(Problem::at(
            rate,
            format!(
                "this scenario offers {sum} records and operations (`count` x `rate` x \
                 (`duration` + `heal`), summed over the [[producer]], [[writer]] and \
                 [[zk_client]] tables); at most {MAX_OFFERED_OPERATIONS} (a limit of ksim): \
                 lower a `rate` or `count`, or shorten `duration` or `heal`"
            ),
        )),
        _ => Ok(per_topic),
    }
}

/// Records consumers read: an assign-mode reader every record of its topics, a group every
/// record of its topics once between its members; within [`MAX_RECORDS_READ`]. A failure
/// points at the `topics` of the table (or group) reading the most.
fn check_reads(
    raw: &RawScenario,
    consumers: &[ConsumerSpec],
    offered: &BTreeMap<String, u128>,
) -> Checked<()> {
    let records_of = |topics: &[String]| -> u128 {
        topics
            .iter()
            .map(|t| offered.get(t).copied().unwrap_or(0))
            .sum()
    };
    let mut sum: u128 = 0;
    let mut largest: Option<(u128, Range<usize>)> = None;
    let mut seen_groups: Vec<&str> = Vec::new();
    for (index, (raw_consumer, consumer)) in raw.consumer.iter().zip(consumers).enumerate() {
        let reads = match &consumer.group {
            None => u128::from(consumer.count) * records_of(&consumer.topics),
            Some(group) if seen_groups.contains(&group.as_str()) => continue,
            Some(group) => {
                seen_groups.push(group);
                let mut topics: Vec<String> = Vec::new();
                for member in consumers[index..]
                    .iter()
                    .filter(|c| c.group.as_ref() == Some(group))
                {
                    for topic in &member.topics {
                        if !topics.contains(topic) {
                            topics.push(topic.clone());
                        }
                    }
                }
                records_of(&topics)
            }
        };
        sum += reads;
        if largest.as_ref().is_none_or(|(most, _)| reads > *most) {
            largest = Some((reads, raw_consumer.get_ref().topics.span()));
        }
    }
    match largest {
        Some((_, span)) if sum > u128::from(MAX_RECORDS_READ) => Err(Problem {
            span,
            message: format!(
                "the consumers would read {sum} records (an assign-mode reader reads every \
                 record of its topics, a group each record once); at most {MAX_RECORDS_READ} \
                 (a limit of ksim): use fewer readers, or produce fewer records"
            ),
        }),
        _ => Ok(()),
    }
}

/// Records processors read and write: each processor group reads every record of its
/// topics once (more after an abort or a failover, which the checks bound no further) and
/// writes one record per record read into its output, whose records a later processor may
/// read in turn (tables in file order). Reads and writes together stay within
/// [`MAX_RECORDS_READ`]; a failure points at the `topics` of the processor table that tips
/// the sum.
fn check_processed(
    raw: &RawScenario,
    processors: &[ProcessorSpec],
    offered: &mut BTreeMap<String, u128>,
) -> Checked<()> {
    let mut sum: u128 = 0;
    let mut seen_groups: Vec<&str> = Vec::new();
    for (raw_processor, processor) in raw.processor.iter().zip(processors) {
        let group = processor.consumer.group.as_deref().unwrap_or_default();
        if seen_groups.contains(&group) {
            continue;
        }
        seen_groups.push(group);
        let reads: u128 = processor
            .consumer
            .topics
            .iter()
            .map(|t| offered.get(t).copied().unwrap_or(0))
            .sum();
        *offered.entry(processor.output.clone()).or_default() += reads;
        sum = sum.saturating_add(reads.saturating_mul(2));
        if sum > u128::from(MAX_RECORDS_READ) {
            return Err(Problem {
                span: raw_processor.get_ref().topics.span(),
                message: format!(
                    "the processors would read and write {sum} records (each processor group \
                     reads every record of its topics once and writes one for each); at most \
                     {MAX_RECORDS_READ} (a limit of ksim): use fewer processors, or produce \
                     fewer records"
                ),
            });
        }
    }
    Ok(())
}

/// A restarted ensemble server reads its whole transaction log back, and a leader sends
/// followers that fell behind what they miss: each fault can cost a pass over every
/// ensemble operation so far. Faults (the scheduled ones and the most the nemesis can
/// draw) × the operations the `[[zk_client]]` tables offer stay within
/// [`MAX_ENSEMBLE_REPLAY`]; a failure points at the `rate` of the busiest table.
fn check_ensemble_replay(
    raw: &RawScenario,
    cluster: &Cluster,
    duration: Duration,
    length: Duration,
) -> Checked<()> {
    if cluster.zookeepers == 0 {
        return Ok(());
    }
    let nemesis_faults = raw.nemesis.as_ref().map_or(0, |nemesis| {
        super::values::parse_interval(nemesis.every.get_ref())
            .map_or(0, |(min, _)| duration.as_millis() / min.as_millis().max(1))
    });
    let faults = raw.fault.len() as u128 + nemesis_faults;
    let millis = length.as_millis();
    let mut operations: u128 = 0;
    let mut busiest: Option<(u128, &Spanned<u32>)> = None;
    for client in &raw.zk_client {
        let c = client.get_ref();
        let offered =
            u128::from(*c.count.get_ref()) * u128::from(*c.rate.get_ref()) * millis / 1000;
        operations += offered;
        if busiest.is_none_or(|(most, _)| offered > most) {
            busiest = Some((offered, &c.rate));
        }
    }
    let replay = faults * operations;
    match busiest {
        Some((_, rate)) if replay > u128::from(MAX_ENSEMBLE_REPLAY) => Err(Problem::at(
            rate,
            format!(
                "{faults} faults (scheduled, and the most the nemesis can draw) x {operations} \
                 ensemble operations offered by the [[zk_client]] tables = {replay}; at most \
                 {MAX_ENSEMBLE_REPLAY} (a limit of ksim: a restarted ensemble server reads its \
                 whole transaction log back): lower a `rate` or `count`, shorten `duration` or \
                 `heal`, or draw fewer faults"
            ),
        )),
        _ => Ok(()),
    }
}
