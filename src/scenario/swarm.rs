//! Swarm testing (TigerBeetle's swarm, FoundationDB's randomized test configurations): a
//! whole scenario drawn from a seed over the *safe configuration space*, the configurations
//! ksim promises pass every check whatever the nemesis does.
//!
//! Owns: the space's bounds (the table below), drawing one scenario from a [`Source`] of
//! choices, and writing it as a scenario file that `ksim run` reads back. `ksim swarm` draws
//! from a seeded RNG ([`Seeded`]); the property test in `tests/cluster_properties.rs` draws
//! from a proptest-generated list of choices ([`Choices`]), so proptest's shrinking of that
//! list (smaller numbers, fewer of them) shrinks the scenario: choice 0 is always the
//! simplest option, and a list that runs out keeps choosing 0.
//!
//! | what | drawn from |
//! |---|---|
//! | ensemble | 1, 3 or 5 servers; `tickTime` 250, 500, 1000 or 2000 ms; `snapCount` default, 50 or 500 |
//! | brokers | 1–6; `replica.lag.time.max.ms` default, 10 s or 5 s; `log.segment.bytes` default, 1 MiB, 64 KiB or 16 KiB |
//! | flush | an fsync per record when a power loss can be drawn (nemesis or scheduled), else Kafka's default (never) three times in four |
//! | topics | 1–3 of 1–8 partitions, RF 1–min(3, brokers), `min.insync.replicas` 1–RF |
//! | producers | 1–3 tables of 1–2 producers on a topic, 20–200 records/s, 0/10/100 keys, each partitioner, `batch.size`, `linger.ms`, `max.in.flight.requests.per.connection` 1–5, short or default timeouts; always `acks=all` with idempotence |
//! | readers | 0–2 assign-mode tables of 1–2 consumers over some topics |
//! | groups | 0–2 (`billing`, `audit`) of 1–4 members over some topics: range or cooperative-sticky, auto or manual commits, static members, `session.timeout.ms` 6 s/10 s/45 s, `heartbeat.interval.ms`, `max.poll.interval.ms` 10 s/30 s/300 s; `offsets.topic.num.partitions` 1–8, `group.initial.rebalance.delay.ms` 0/1 s/3 s |
//! | ensemble clients | 0–1 table of 1–3 compare-and-set clients, with or without session churn |
//! | writers | 0–1 table of 1–2 standalone log writers |
//! | transactions | drawn last (after everything above, so a seed's other draws stay as they were): each producer table transactional one time in three (`transactional.id` `txn-<n>`, `txn-records` 1–20, `txn-abort-percent` 0–50); each group `read_committed` one time in three; one time in three 1–2 `[[processor]]` tables (`enrich`, `rollup`) of 1–3 processors over some topics (and the earlier processor's output), each writing a new topic (`enriched`, `rollups`, drawn as topics are), with an optional `txn-abort-percent` 0–50, `[processor.consumer]` assignor/session/heartbeat drawn as groups' and `commit.interval.ms`; with any of them, `transaction.state.log.num.partitions` 1–5 three times in four (else Kafka's 50), and `transaction.state.log.min.isr` 1 on a single broker; then, with processors, one time in two 1–2 scheduled faults on them (a processor killed and restarted, or paused and resumed) |
//! | faults | `duration` 30–120 s; a nemesis (three times in four) over a non-empty mix of kill, power-loss, pause, partition, clog and loss every 1–20 s; and (one time in two) up to 4 scheduled faults, each undone within the fault phase |
//! | heal | 30 s + what the scenario's sessions can need ([`Scenario::session_recovery_bound`]) + 0 or 30 s |
//!
//! What is *not* in the space, because ksim does not promise it passes: acks other than
//! `all` or idempotence off (duplicates and loss are Kafka's documented behaviour), no fsync
//! under power loss (the `no-fsync-power-loss` zoo entry), unclean elections, a broker-wide
//! `min.insync.replicas` above the offsets topic's replication factor (commits can never
//! succeed), likewise `transaction.state.log.min.isr` above `__transaction_state`'s (so a
//! single broker gets 1), and every `[legacy]` switch.

use super::model::Scenario;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// Where choices come from. `below(n)` is a choice in `0..n` (`n >= 1`); 0 is the simplest.
pub trait Source {
    fn below(&mut self, n: u64) -> u64;
}

/// Choices from an RNG seeded with the swarm seed (`ksim swarm`).
pub struct Seeded(StdRng);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        // A fixed offset keeps the drawing independent of the run's own use of the seed.
        Seeded(StdRng::seed_from_u64(seed ^ 0x5357_4152_4d00_0000))
    }
}

impl Source for Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0.gen_range(0..n.max(1))
    }
}

/// Choices from a list (a property test's input): each choice is the next value modulo `n`;
/// past the end of the list every choice is 0.
pub struct Choices<'a> {
    values: &'a [u64],
    next: usize,
}

impl<'a> Choices<'a> {
    pub fn new(values: &'a [u64]) -> Choices<'a> {
        Choices { values, next: 0 }
    }
}

impl Source for Choices<'_> {
    fn below(&mut self, n: u64) -> u64 {
        let value = self.values.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        value % n.max(1)
    }
}

/// Drawing helpers over a [`Source`].
struct Draw<'s, S: Source> {
    source: &'s mut S,
}

impl<S: Source> Draw<'_, S> {
    /// `lo..=hi`, `lo` simplest.
    fn int(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.source.below(u64::from(hi.saturating_sub(lo)) + 1) as u32
    }

    /// One of `options`, the first simplest.
    fn pick<T: Clone>(&mut self, options: &[T]) -> T {
        options[self.source.below(options.len() as u64) as usize].clone()
    }

    /// True `num` times in `den`; choice 0 is false.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.source.below(den) >= den - num
    }

    /// A non-empty subset of `items`, in their order.
    fn subset<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        let mut chosen: Vec<T> = items
            .iter()
            .filter(|_| self.chance(1, 2))
            .cloned()
            .collect();
        if chosen.is_empty() {
            chosen.push(self.pick(items));
        }
        chosen
    }
}

/// The ensemble and brokers of a drawn scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnCluster {
    pub zookeepers: u32,
    pub tick_time_ms: u64,
    pub snap_count: Option<u64>,
    pub brokers: u32,
    pub replica_lag_time_max_ms: Option<u64>,
    pub log_segment_bytes: Option<u64>,
    /// `log.flush.interval.messages = 1`, else Kafka's default (never fsync).
    pub fsync_per_record: bool,
    pub offsets_partitions: u32,
    pub initial_rebalance_delay_ms: Option<u64>,
    /// `transaction.state.log.num.partitions` (drawn only with something transactional).
    pub transaction_state_partitions: Option<u32>,
    /// `transaction.state.log.min.isr`: 1 with something transactional on a single broker
    /// (Kafka's 2 is above the log's replication factor there: no transaction could begin).
    pub transaction_state_min_isr: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    pub min_insync_replicas: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnProducer {
    pub count: u32,
    pub topic: String,
    pub rate: u32,
    pub keys: u32,
    pub partitioner: Option<&'static str>,
    pub batch_size: Option<u64>,
    pub linger_ms: Option<u64>,
    pub max_in_flight: Option<u32>,
    /// `(request.timeout.ms, delivery.timeout.ms)`, else Kafka's defaults.
    pub timeouts_ms: Option<(u64, u64)>,
    /// A transactional table (drawn last).
    pub transactional: Option<DrawnTxn>,
}

impl DrawnProducer {
    /// Whether the table's config allows a `transactional.id`: a transactional producer is
    /// idempotent, so acks all, retries and at most 5 requests in flight (the swarm always
    /// draws acks all with idempotence and the default retries).
    pub fn allows_transactions(&self) -> bool {
        self.max_in_flight.is_none_or(|m| m <= 5)
    }
}

/// A transactional producer table's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnTxn {
    /// `transactional.id`, unique per table (numbered `<id>-<n>` per producer by ksim).
    pub id: String,
    /// `txn-records`.
    pub records: u32,
    /// `txn-abort-percent`.
    pub abort_percent: u32,
}

/// A `[[processor]]` table (consume-transform-produce with exactly-once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnProcessor {
    pub count: u32,
    /// Its group, and its producers' `transactional.id`.
    pub group: String,
    pub topics: Vec<String>,
    /// A topic of its own, drawn with it (appended to [`Drawn::topics`]).
    pub output: String,
    pub txn_abort_percent: Option<u32>,
    /// `[processor.consumer]`, else the defaults.
    pub consumer: Option<DrawnProcessorConsumer>,
    /// `[processor.config] "commit.interval.ms"`.
    pub commit_interval_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnProcessorConsumer {
    pub assignor: &'static str,
    pub session_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
}

/// An assign-mode reader table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnReader {
    pub count: u32,
    pub topics: Vec<String>,
    /// `auto.offset.reset = latest` (drawn last).
    pub latest: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnGroup {
    pub name: String,
    pub members: u32,
    pub topics: Vec<String>,
    pub assignor: &'static str,
    pub enable_auto_commit: bool,
    pub auto_commit_interval_ms: Option<u64>,
    pub session_timeout_ms: Option<u64>,
    pub heartbeat_interval_ms: Option<u64>,
    pub max_poll_interval_ms: Option<u64>,
    /// Static members: `group.instance.id` (numbered per member).
    pub group_instance_id: Option<String>,
    /// `isolation.level = read_committed` (drawn last).
    pub read_committed: bool,
    /// `auto.offset.reset = latest` (drawn last).
    pub latest: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnZkClients {
    pub count: u32,
    pub rate: u32,
    pub registers: u32,
    pub session_timeout_s: Option<u64>,
    pub churn_s: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnWriters {
    pub count: u32,
    pub rate: u32,
}

/// One scheduled `[[fault]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnFault {
    pub at_s: u64,
    pub action: &'static str,
    /// Empty for `heal`.
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrawnNemesis {
    pub actions: Vec<&'static str>,
    pub every_s: (u64, u64),
}

/// One drawn scenario; [`Drawn::toml`] writes it as a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drawn {
    /// The swarm seed; it is also the seed the scenario is run with.
    pub seed: u64,
    pub duration_s: u64,
    pub heal_s: u64,
    pub cluster: DrawnCluster,
    pub topics: Vec<DrawnTopic>,
    pub producers: Vec<DrawnProducer>,
    pub readers: Vec<DrawnReader>,
    pub groups: Vec<DrawnGroup>,
    /// Drawn last; their output topics are the last of `topics`.
    pub processors: Vec<DrawnProcessor>,
    pub zk_clients: Option<DrawnZkClients>,
    pub writers: Option<DrawnWriters>,
    pub nemesis: Option<DrawnNemesis>,
    /// Sorted by `at_s`.
    pub faults: Vec<DrawnFault>,
}

const TOPIC_NAMES: [&str; 3] = ["orders", "payments", "clicks"];
const GROUP_NAMES: [&str; 2] = ["billing", "audit"];
/// Processor tables' groups and their output topics.
const PROCESSOR_GROUPS: [&str; 2] = ["enrich", "rollup"];
const PROCESSOR_OUTPUTS: [&str; 2] = ["enriched", "rollups"];
const NEMESIS_ACTIONS: [&str; 6] = ["kill", "pause", "partition", "clog", "loss", "power-loss"];
/// Slack on top of the sessions' bound, before the drawn extra.
const HEAL_BASE_S: u64 = 30;

/// Draws the scenario of swarm seed `seed` from `source`.
pub fn draw(seed: u64, source: &mut impl Source) -> Drawn {
    let mut d = Draw { source };
    let zookeepers = d.pick(&[1, 3, 5]);
    let brokers = d.int(1, 6);
    let duration_s = u64::from(d.pick(&[30u32, 60, 90, 120]));
    let topic_count = d.int(1, 3) as usize;
    let topics: Vec<DrawnTopic> = TOPIC_NAMES[..topic_count]
        .iter()
        .map(|name| {
            let replication_factor = d.int(1, brokers.min(3));
            DrawnTopic {
                name: (*name).to_string(),
                partitions: d.int(1, 8),
                replication_factor,
                min_insync_replicas: d.int(1, replication_factor),
            }
        })
        .collect();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let producer_tables = d.int(1, 3);
    let producers = (0..producer_tables)
        .map(|_| draw_producer(&mut d, &names))
        .collect();
    let reader_tables = d.int(0, 2);
    let readers: Vec<DrawnReader> = (0..reader_tables)
        .map(|_| DrawnReader {
            count: d.int(1, 2),
            topics: d.subset(&names),
            latest: false,
        })
        .collect();
    let group_count = d.int(0, 2) as usize;
    let groups: Vec<DrawnGroup> = GROUP_NAMES[..group_count]
        .iter()
        .map(|name| draw_group(&mut d, name, &names))
        .collect();
    let zk_clients = d.chance(1, 4).then(|| DrawnZkClients {
        count: d.int(1, 3),
        rate: d.pick(&[5, 20]),
        registers: d.int(1, 3),
        session_timeout_s: d.pick(&[None, Some(3), Some(10)]),
        churn_s: d.pick(&[None, Some(10)]),
    });
    let writers = d.chance(1, 6).then(|| DrawnWriters {
        count: d.int(1, 2),
        rate: d.pick(&[50, 200]),
    });

    let nemesis = d.chance(3, 4).then(|| {
        let low = u64::from(d.pick(&[3u32, 1, 2, 5]));
        DrawnNemesis {
            actions: d.subset(&NEMESIS_ACTIONS),
            every_s: (low, low + u64::from(d.pick(&[5u32, 0, 10, 15]))),
        }
    });
    let mut faults = Vec::new();
    if d.chance(1, 2) {
        let count = d.int(1, 4);
        for _ in 0..count {
            draw_fault(
                &mut d,
                &mut faults,
                duration_s,
                zookeepers,
                brokers,
                &topics,
                &groups,
                &readers,
            );
        }
        faults.sort_by_key(|f| f.at_s);
    }
    let power_loss = nemesis
        .as_ref()
        .is_some_and(|n| n.actions.contains(&"power-loss"))
        || faults.iter().any(|f| f.action == "power-loss");

    let cluster = DrawnCluster {
        zookeepers,
        tick_time_ms: u64::from(d.pick(&[500u32, 250, 1000, 2000])),
        snap_count: d.pick(&[None, Some(50), Some(500)]),
        brokers,
        replica_lag_time_max_ms: d.pick(&[None, Some(10_000), Some(5_000)]),
        log_segment_bytes: d.pick(&[None, Some(1 << 20), Some(65_536), Some(16_384)]),
        fsync_per_record: power_loss || d.chance(1, 4),
        offsets_partitions: d.pick(&[1, 3, 5, 8]),
        initial_rebalance_delay_ms: d.pick(&[None, Some(0), Some(1000)]),
        transaction_state_partitions: None,
        transaction_state_min_isr: None,
    };
    let extra_heal_s = u64::from(d.pick(&[0u32, 30]));
    let mut drawn = Drawn {
        seed,
        duration_s,
        heal_s: 0,
        cluster,
        topics,
        producers,
        readers,
        groups,
        processors: Vec::new(),
        zk_clients,
        writers,
        nemesis,
        faults,
    };
    // Last, so every draw above stays what it was before transactions were drawn.
    draw_transactions(&mut d, &mut drawn);
    draw_processor_faults(&mut d, &mut drawn);
    // `auto.offset.reset = latest` (ListOffsets), after all the rest for the same reason.
    for reader in &mut drawn.readers {
        reader.latest = d.chance(1, 4);
    }
    for group in &mut drawn.groups {
        group.latest = d.chance(1, 4);
    }
    // The heal follows the scenario's own session timeouts (one formula with the load-time
    // warning): read them back from the file as it will be run.
    drawn.heal_s = 1;
    let bound = drawn
        .scenario()
        .map(|s| s.session_recovery_bound())
        .unwrap_or_else(|error| panic!("swarm seed {seed} drew an invalid scenario: {error}"));
    drawn.heal_s = HEAL_BASE_S + bound.as_secs_f64().ceil() as u64 + extra_heal_s;
    drawn
}

/// The scenario of swarm seed `seed`, as `ksim swarm` draws it.
pub fn draw_seed(seed: u64) -> Drawn {
    draw(seed, &mut Seeded::new(seed))
}

fn draw_producer<S: Source>(d: &mut Draw<'_, S>, topics: &[String]) -> DrawnProducer {
    DrawnProducer {
        count: d.int(1, 2),
        topic: d.pick(topics),
        rate: d.pick(&[50, 20, 100, 200]),
        keys: d.pick(&[0, 10, 100]),
        partitioner: d.pick(&[None, Some("uniform-sticky"), Some("round-robin")]),
        batch_size: d.pick(&[None, Some(512), Some(4096)]),
        linger_ms: d.pick(&[None, Some(0), Some(5), Some(20), Some(100)]),
        max_in_flight: d.pick(&[None, Some(1), Some(2), Some(5)]),
        timeouts_ms: d.pick(&[None, Some((5_000, 30_000))]),
        transactional: None,
    }
}

/// The transactional path, drawn after everything else: transactional producer tables,
/// `read_committed` groups, processor tables with their output topics, and a small
/// `__transaction_state` when anything is transactional.
fn draw_transactions<S: Source>(d: &mut Draw<'_, S>, drawn: &mut Drawn) {
    for (n, producer) in drawn.producers.iter_mut().enumerate() {
        if d.chance(1, 3) && producer.allows_transactions() {
            producer.transactional = Some(DrawnTxn {
                id: format!("txn-{}", n + 1),
                records: d.int(1, 20),
                abort_percent: d.int(0, 50),
            });
        }
    }
    for group in &mut drawn.groups {
        group.read_committed = d.chance(1, 3);
    }
    if d.chance(1, 3) {
        let brokers = drawn.cluster.brokers;
        let mut inputs: Vec<String> = drawn.topics.iter().map(|t| t.name.clone()).collect();
        let tables = d.int(1, 2) as usize;
        for (group, output) in PROCESSOR_GROUPS.iter().zip(PROCESSOR_OUTPUTS).take(tables) {
            let count = d.int(1, 3);
            let topics = d.subset(&inputs);
            let replication_factor = d.int(1, brokers.min(3));
            drawn.topics.push(DrawnTopic {
                name: output.to_string(),
                partitions: d.int(1, 8),
                replication_factor,
                min_insync_replicas: d.int(1, replication_factor),
            });
            let txn_abort_percent = d.chance(1, 2).then(|| d.int(0, 50));
            let consumer = d.chance(1, 2).then(|| DrawnProcessorConsumer {
                assignor: d.pick(&["range", "cooperative-sticky"]),
                // As groups': every drawn session within the brokers' 6 s..30 min, and the
                // heartbeat (1 s, or Kafka's 3 s) below it.
                session_timeout_ms: d.pick(&[Some(6_000), Some(10_000), None]),
                heartbeat_interval_ms: d.pick(&[None, Some(1000)]),
            });
            let commit_interval_ms = d.pick(&[None, Some(50), Some(500), Some(2000)]);
            drawn.processors.push(DrawnProcessor {
                count,
                group: group.to_string(),
                topics,
                output: output.to_string(),
                txn_abort_percent,
                consumer,
                commit_interval_ms,
            });
            // A later processor may read this one's output.
            inputs.push(output.to_string());
        }
    }
    let transactional =
        !drawn.processors.is_empty() || drawn.producers.iter().any(|p| p.transactional.is_some());
    if transactional && d.chance(3, 4) {
        drawn.cluster.transaction_state_partitions = Some(d.int(1, 5));
    }
    if transactional && drawn.cluster.brokers < 2 {
        drawn.cluster.transaction_state_min_isr = Some(1);
    }
}

/// With processors, one time in two 1–2 scheduled faults aimed at them (drawn after the
/// transactions, so a seed without processors draws what it drew before): a processor
/// killed and restarted, or paused and resumed, within the fault phase.
fn draw_processor_faults<S: Source>(d: &mut Draw<'_, S>, drawn: &mut Drawn) {
    let processors: u32 = drawn.processors.iter().map(|p| p.count).sum();
    if processors == 0 || !d.chance(1, 2) {
        return;
    }
    let names: Vec<String> = (1..=processors).map(|n| format!("processor-{n}")).collect();
    let duration_s = drawn.duration_s;
    for _ in 0..d.int(1, 2) {
        let at_s = u64::from(d.int(1, duration_s as u32 - 1));
        let until_s = (at_s + u64::from(d.int(1, 15))).min(duration_s);
        let node = d.pick(&names);
        let (action, undo, undo_target) = if d.chance(1, 2) {
            ("kill", "restart", "killed".to_string())
        } else {
            ("pause", "resume", node.clone())
        };
        drawn.faults.push(DrawnFault {
            at_s,
            action,
            target: node,
        });
        drawn.faults.push(DrawnFault {
            at_s: until_s,
            action: undo,
            target: undo_target,
        });
    }
    drawn.faults.sort_by_key(|f| f.at_s);
}

fn draw_group<S: Source>(d: &mut Draw<'_, S>, name: &str, topics: &[String]) -> DrawnGroup {
    let session_timeout_ms = d.pick(&[Some(6_000), Some(10_000), None]);
    DrawnGroup {
        name: name.to_string(),
        members: d.int(1, 4),
        topics: d.subset(topics),
        assignor: d.pick(&["range", "cooperative-sticky"]),
        enable_auto_commit: !d.chance(1, 2),
        auto_commit_interval_ms: d.pick(&[None, Some(1000)]),
        session_timeout_ms,
        // Below the session timeout (Kafka's default 3 s is, for every drawn session).
        heartbeat_interval_ms: d.pick(&[None, Some(1000)]),
        max_poll_interval_ms: d.pick(&[Some(10_000), Some(30_000), None]),
        group_instance_id: d.chance(1, 4).then(|| format!("{name}-instance")),
        read_committed: false,
        latest: false,
    }
}

/// One scheduled fault and its undo, both within the fault phase. Pauses and clogs name a
/// concrete node (their undo must find the same one); kills, power losses and isolations may
/// name a role (`leader(..)`, `controller`, ...), undone by `restart killed` or `heal`.
#[allow(clippy::too_many_arguments)]
fn draw_fault<S: Source>(
    d: &mut Draw<'_, S>,
    faults: &mut Vec<DrawnFault>,
    duration_s: u64,
    zookeepers: u32,
    brokers: u32,
    topics: &[DrawnTopic],
    groups: &[DrawnGroup],
    readers: &[DrawnReader],
) {
    let first_member = readers.iter().map(|r| r.count).sum::<u32>() + 1;
    let members: u32 = groups.iter().map(|g| g.members).sum();
    let mut nodes: Vec<String> = (1..=brokers).map(|b| format!("broker-{b}")).collect();
    nodes.extend((1..=zookeepers).map(|z| format!("zk-{z}")));
    nodes.extend((first_member..first_member + members).map(|c| format!("consumer-{c}")));
    let mut roles: Vec<String> = vec![
        "random-broker".into(),
        "controller".into(),
        "zk-leader".into(),
        "random-zk".into(),
    ];
    for topic in topics {
        roles.extend((0..topic.partitions).map(|p| format!("leader({}/{p})", topic.name)));
    }
    roles.extend(groups.iter().map(|g| format!("coordinator({})", g.name)));
    roles.extend(nodes.iter().cloned());

    let at_s = u64::from(d.int(1, duration_s as u32 - 1));
    let until_s = (at_s + u64::from(d.int(1, 15))).min(duration_s);
    let fault = |action: &'static str, target: String| DrawnFault {
        at_s,
        action,
        target,
    };
    let undo = |action: &'static str, target: String| DrawnFault {
        at_s: until_s,
        action,
        target,
    };
    match d.int(0, 5) {
        0 => {
            faults.push(fault("kill", d.pick(&roles)));
            faults.push(undo("restart", "killed".into()));
        }
        1 => {
            let node = d.pick(&nodes);
            faults.push(fault("pause", node.clone()));
            faults.push(undo("resume", node));
        }
        2 => {
            faults.push(fault("partition", format!("isolate({})", d.pick(&roles))));
            faults.push(undo("heal", String::new()));
        }
        3 => {
            faults.push(fault("partition", d.pick(&["halves", "bridge"]).into()));
            faults.push(undo("heal", String::new()));
        }
        4 => {
            let node = d.pick(&nodes);
            faults.push(fault("clog", node.clone()));
            faults.push(undo("unclog", node));
        }
        _ => {
            faults.push(fault("power-loss", d.pick(&roles)));
            faults.push(undo("restart", "killed".into()));
        }
    }
}

impl Drawn {
    /// The scenario file.
    pub fn toml(&self) -> String {
        let mut t = String::new();
        let c = &self.cluster;
        let _ = writeln!(t, "name = \"swarm\"");
        let _ = writeln!(t, "about = \"{}\"", self.about());
        let _ = writeln!(
            t,
            "duration = \"{}s\"\nheal = \"{}s\"\nseeds = \"{}..{}\"",
            self.duration_s, self.heal_s, self.seed, self.seed
        );
        let _ = writeln!(
            t,
            "\n[cluster]\nzookeepers = {}\nbrokers = {}",
            c.zookeepers, c.brokers
        );
        let _ = writeln!(t, "\n[cluster.zookeeper]\ntickTime = {}", c.tick_time_ms);
        if let Some(n) = c.snap_count {
            let _ = writeln!(t, "snapCount = {n}");
        }
        t.push_str("\n[cluster.broker]\n");
        if c.fsync_per_record {
            t.push_str("\"log.flush.interval.messages\" = 1\n");
        }
        if let Some(v) = c.replica_lag_time_max_ms {
            let _ = writeln!(t, "\"replica.lag.time.max.ms\" = {v}");
        }
        if let Some(v) = c.log_segment_bytes {
            let _ = writeln!(t, "\"log.segment.bytes\" = {v}");
        }
        if !self.groups.is_empty() || !self.processors.is_empty() {
            let _ = writeln!(
                t,
                "\"offsets.topic.num.partitions\" = {}",
                c.offsets_partitions
            );
            if let Some(v) = c.initial_rebalance_delay_ms {
                let _ = writeln!(t, "\"group.initial.rebalance.delay.ms\" = {v}");
            }
        }
        if let Some(v) = c.transaction_state_partitions {
            let _ = writeln!(t, "\"transaction.state.log.num.partitions\" = {v}");
        }
        if let Some(v) = c.transaction_state_min_isr {
            let _ = writeln!(t, "\"transaction.state.log.min.isr\" = {v}");
        }
        for topic in &self.topics {
            let _ = writeln!(
                t,
                "\n[[topic]]\nname = \"{}\"\npartitions = {}\n\"replication.factor\" = {}\n\
                 \"min.insync.replicas\" = {}",
                topic.name, topic.partitions, topic.replication_factor, topic.min_insync_replicas
            );
        }
        for p in &self.producers {
            let _ = writeln!(
                t,
                "\n[[producer]]\ncount = {}\ntopic = \"{}\"\nrate = {}\nkeys = {}",
                p.count, p.topic, p.rate, p.keys
            );
            if let Some(txn) = &p.transactional {
                let _ = writeln!(
                    t,
                    "txn-records = {}\ntxn-abort-percent = {}",
                    txn.records, txn.abort_percent
                );
            }
            t.push_str("[producer.config]\nacks = \"all\"\n\"enable.idempotence\" = true\n");
            if let Some(txn) = &p.transactional {
                let _ = writeln!(t, "\"transactional.id\" = \"{}\"", txn.id);
            }
            if let Some(v) = p.partitioner {
                let _ = writeln!(t, "\"partitioner.class\" = \"{v}\"");
            }
            if let Some(v) = p.batch_size {
                let _ = writeln!(t, "\"batch.size\" = {v}");
            }
            if let Some(v) = p.linger_ms {
                let _ = writeln!(t, "\"linger.ms\" = {v}");
            }
            if let Some(v) = p.max_in_flight {
                let _ = writeln!(t, "\"max.in.flight.requests.per.connection\" = {v}");
            }
            if let Some((request, delivery)) = p.timeouts_ms {
                let _ = writeln!(
                    t,
                    "\"request.timeout.ms\" = {request}\n\"delivery.timeout.ms\" = {delivery}"
                );
            }
        }
        for r in &self.readers {
            let _ = writeln!(
                t,
                "\n[[consumer]]\ncount = {}\ntopics = {}",
                r.count,
                quoted(&r.topics)
            );
            if r.latest {
                t.push_str("[consumer.config]\n\"auto.offset.reset\" = \"latest\"\n");
            }
        }
        for g in &self.groups {
            let _ = writeln!(
                t,
                "\n[[consumer]]\ncount = {}\ngroup = \"{}\"\ntopics = {}\n[consumer.config]\n\
                 \"partition.assignment.strategy\" = \"{}\"\n\"enable.auto.commit\" = {}",
                g.members,
                g.name,
                quoted(&g.topics),
                g.assignor,
                g.enable_auto_commit
            );
            let settings = [
                ("auto.commit.interval.ms", g.auto_commit_interval_ms),
                ("session.timeout.ms", g.session_timeout_ms),
                ("heartbeat.interval.ms", g.heartbeat_interval_ms),
                ("max.poll.interval.ms", g.max_poll_interval_ms),
            ];
            for (key, value) in settings {
                if let Some(v) = value {
                    let _ = writeln!(t, "\"{key}\" = {v}");
                }
            }
            if let Some(id) = &g.group_instance_id {
                let _ = writeln!(t, "\"group.instance.id\" = \"{id}\"");
            }
            if g.read_committed {
                t.push_str("\"isolation.level\" = \"read_committed\"\n");
            }
            if g.latest {
                t.push_str("\"auto.offset.reset\" = \"latest\"\n");
            }
        }
        for p in &self.processors {
            let _ = writeln!(
                t,
                "\n[[processor]]\ncount = {}\ngroup = \"{}\"\ntopics = {}\noutput = \"{}\"",
                p.count,
                p.group,
                quoted(&p.topics),
                p.output
            );
            if let Some(v) = p.txn_abort_percent {
                let _ = writeln!(t, "txn-abort-percent = {v}");
            }
            if let Some(v) = p.commit_interval_ms {
                let _ = writeln!(t, "[processor.config]\n\"commit.interval.ms\" = {v}");
            }
            if let Some(c) = &p.consumer {
                let _ = writeln!(
                    t,
                    "[processor.consumer]\n\"partition.assignment.strategy\" = \"{}\"",
                    c.assignor
                );
                let settings = [
                    ("session.timeout.ms", c.session_timeout_ms),
                    ("heartbeat.interval.ms", c.heartbeat_interval_ms),
                ];
                for (key, value) in settings {
                    if let Some(v) = value {
                        let _ = writeln!(t, "\"{key}\" = {v}");
                    }
                }
            }
        }
        if let Some(z) = &self.zk_clients {
            let _ = writeln!(
                t,
                "\n[[zk_client]]\ncount = {}\nrate = {}\nregisters = {}",
                z.count, z.rate, z.registers
            );
            if let Some(s) = z.session_timeout_s {
                let _ = writeln!(t, "session_timeout = \"{s}s\"");
            }
            if let Some(s) = z.churn_s {
                let _ = writeln!(t, "churn = \"{s}s\"");
            }
        }
        if let Some(w) = &self.writers {
            let _ = writeln!(t, "\n[[writer]]\ncount = {}\nrate = {}", w.count, w.rate);
        }
        if let Some(n) = &self.nemesis {
            let _ = writeln!(
                t,
                "\n[nemesis]\nactions = {}\nevery = \"{}s..{}s\"",
                quoted(&n.actions),
                n.every_s.0,
                n.every_s.1
            );
        }
        for f in &self.faults {
            let _ = writeln!(
                t,
                "\n[[fault]]\nat = \"{}s\"\naction = \"{}\"",
                f.at_s, f.action
            );
            if !f.target.is_empty() {
                let _ = writeln!(t, "target = \"{}\"", f.target);
            }
        }
        t
    }

    /// The file parsed, as `ksim run` would load it.
    pub fn scenario(&self) -> Result<Scenario, super::ScenarioError> {
        let name = format!("swarm-{}.toml", self.seed);
        super::parse(Path::new(&name), self.toml().as_bytes())
    }

    /// One line saying what was drawn.
    pub fn about(&self) -> String {
        let c = &self.cluster;
        let mut parts = vec![
            format!("{} zookeepers", c.zookeepers),
            format!("{} brokers", c.brokers),
            format!(
                "{} topics ({} partitions)",
                self.topics.len(),
                self.topics.iter().map(|t| t.partitions).sum::<u32>()
            ),
            format!(
                "{} producers",
                self.producers.iter().map(|p| p.count).sum::<u32>()
            ),
        ];
        let readers: u32 = self.readers.iter().map(|r| r.count).sum();
        if readers > 0 {
            let latest: u32 = self
                .readers
                .iter()
                .filter(|r| r.latest)
                .map(|r| r.count)
                .sum();
            if latest > 0 {
                parts.push(format!("{readers} readers ({latest} from latest)"));
            } else {
                parts.push(format!("{readers} readers"));
            }
        }
        for g in &self.groups {
            let commits = if g.enable_auto_commit {
                "auto"
            } else {
                "manual"
            };
            let kind = if g.group_instance_id.is_some() {
                " static"
            } else {
                ""
            };
            let isolation = if g.read_committed {
                ", read_committed"
            } else {
                ""
            };
            let reset = if g.latest { ", from latest" } else { "" };
            parts.push(format!(
                "group {} of {}{kind} ({}, {commits} commits{isolation}{reset})",
                g.name, g.members, g.assignor
            ));
        }
        let transactional: u32 = self
            .producers
            .iter()
            .filter(|p| p.transactional.is_some())
            .map(|p| p.count)
            .sum();
        if transactional > 0 {
            parts.push(format!("{transactional} transactional producers"));
        }
        for p in &self.processors {
            parts.push(format!(
                "processor {} of {} ({} -> {})",
                p.group,
                p.count,
                p.topics.join("+"),
                p.output
            ));
        }
        if let Some(z) = &self.zk_clients {
            parts.push(format!("{} zk clients", z.count));
        }
        if let Some(w) = &self.writers {
            parts.push(format!("{} writers", w.count));
        }
        parts.push(if c.fsync_per_record {
            "fsync per record".into()
        } else {
            "default flush".into()
        });
        if let Some(n) = &self.nemesis {
            parts.push(format!("nemesis {}", n.actions.join("/")));
        }
        if !self.faults.is_empty() {
            parts.push(format!("{} scheduled faults", self.faults.len()));
        }
        format!("Swarm seed {}: {}.", self.seed, parts.join(", "))
    }
}

fn quoted<T: AsRef<str>>(items: &[T]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|i| format!("\"{}\"", i.as_ref()))
        .collect();
    format!("[{}]", inner.join(", "))
}

/// How long the heal of a drawn scenario is, at least: its sessions' bound and the base.
pub fn heal_floor(scenario: &Scenario) -> Duration {
    Duration::from_secs(HEAL_BASE_S) + scenario.session_recovery_bound()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seed_draws_a_scenario_that_loads_and_keeps_the_safe_rules() {
        for seed in 1..=300 {
            let drawn = draw_seed(seed);
            let scenario = drawn
                .scenario()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(
                draw_seed(seed),
                drawn,
                "seed {seed} draws differently twice"
            );
            assert!(scenario.heal >= heal_floor(&scenario), "seed {seed}");
            let power_loss = drawn.toml().contains("power-loss");
            assert!(!power_loss || drawn.cluster.fsync_per_record, "seed {seed}");
            assert!(scenario.legacy == Default::default());
            for p in &scenario.producers {
                assert_eq!(p.config.acks, Some(crate::scenario::Acks::All));
                assert_eq!(p.config.enable_idempotence, Some(true));
            }
            assert!(
                drawn.cluster.transaction_state_partitions.is_none()
                    || scenario.has_transactional_producers(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_space_is_drawn_widely() {
        let drawn: Vec<Drawn> = (1..=300).map(draw_seed).collect();
        let seen = |f: &dyn Fn(&Drawn) -> bool| drawn.iter().filter(|d| f(d)).count();
        for z in [1, 3, 5] {
            assert!(seen(&|d| d.cluster.zookeepers == z) > 30, "zookeepers {z}");
        }
        for b in 1..=6 {
            assert!(seen(&|d| d.cluster.brokers == b) > 20, "brokers {b}");
        }
        assert!(seen(&|d| d.groups.len() == 2) > 30);
        assert!(seen(&|d| d.groups.iter().any(|g| !g.enable_auto_commit)) > 50);
        assert!(seen(&|d| d.groups.iter().any(|g| g.group_instance_id.is_some())) > 20);
        assert!(seen(&|d| !d.cluster.fsync_per_record) > 30);
        assert!(
            seen(&|d| d
                .nemesis
                .as_ref()
                .is_some_and(|n| n.actions.contains(&"loss")))
                > 30
        );
        assert!(seen(&|d| !d.faults.is_empty()) > 100);
        assert!(seen(&|d| d.zk_clients.is_some()) > 30);
        assert!(seen(&|d| d.writers.is_some()) > 20);
        let transactional = |d: &Drawn| d.producers.iter().any(|p| p.transactional.is_some());
        assert!(seen(&transactional) > 50);
        assert!(seen(&|d| d.groups.iter().any(|g| g.read_committed)) > 30);
        assert!(seen(&|d| d.groups.iter().any(|g| g.latest)) > 30);
        assert!(seen(&|d| d.readers.iter().any(|r| r.latest)) > 30);
        assert!(seen(&|d| !d.processors.is_empty()) > 50);
        assert!(seen(&|d| d.processors.len() == 2) > 20);
        assert!(seen(&|d| d.processors.iter().any(|p| p.consumer.is_some())) > 20);
        assert!(seen(&|d| d.cluster.transaction_state_partitions.is_some()) > 50);
        let processor_fault =
            |d: &Drawn| d.faults.iter().any(|f| f.target.starts_with("processor-"));
        assert!(seen(&processor_fault) > 20);
        assert!(drawn
            .iter()
            .all(|d| !processor_fault(d) || !d.processors.is_empty()));
    }

    #[test]
    fn the_transactional_path_is_drawn_after_everything_else() {
        // Without the last draws, a seed is what it was before transactions were drawn.
        for seed in 1..=300 {
            let mut drawn = draw_seed(seed);
            let scenario = drawn.scenario().unwrap();
            let outputs: Vec<&str> = drawn.processors.iter().map(|p| p.output.as_str()).collect();
            assert_eq!(scenario.processors.len(), drawn.processors.len());
            for (spec, p) in scenario.processors.iter().zip(&drawn.processors) {
                assert_eq!(spec.output, p.output);
                assert!(!p.topics.contains(&p.output), "seed {seed}");
            }
            for (spec, p) in scenario.producers.iter().zip(&drawn.producers) {
                assert_eq!(
                    spec.config.transactional_id.as_ref(),
                    p.transactional.as_ref().map(|t| &t.id)
                );
                assert!(!outputs.contains(&p.topic.as_str()), "seed {seed}");
            }
            drawn.topics.retain(|t| !outputs.contains(&t.name.as_str()));
            assert!(drawn.topics.len() <= 3, "seed {seed}");
        }
    }

    #[test]
    fn an_empty_list_of_choices_draws_the_simplest_scenario() {
        let drawn = draw(7, &mut Choices::new(&[]));
        assert_eq!(drawn.cluster.zookeepers, 1);
        assert_eq!(drawn.cluster.brokers, 1);
        assert_eq!(drawn.topics.len(), 1);
        assert!(drawn.groups.is_empty() && drawn.readers.is_empty());
        assert!(drawn.nemesis.is_none() && drawn.faults.is_empty());
        assert!(drawn.zk_clients.is_none() && drawn.writers.is_none());
        assert!(drawn.processors.is_empty());
        assert!(drawn.producers.iter().all(|p| p.transactional.is_none()));
        drawn.scenario().unwrap();
    }
}
