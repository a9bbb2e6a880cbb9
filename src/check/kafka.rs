//! Checks of the brokers: what producers were told, what consumers read, what brokers
//! announced, against the partition logs the replicas left on disk.
//!
//! Owns: the client-history checks of a Kafka cluster (`lost-write`, `duplicate`,
//! `inconsistent-offsets`, `nonmonotonic-poll`, `poll-skip`, `phantom-read`, `reorder`) and
//! the replication and control checks (`single-leader-per-epoch`, `leader-epoch-monotonic`,
//! `hw-monotonic`, `committed-prefix-agreement`, `no-truncation-below-hw`,
//! `single-controller-per-epoch`, `controller-epoch-monotonic`). They are pure functions of
//! the recorded history, the recorded events and the final logs read back with the log
//! engine — never of a broker's memory — so a broker bug cannot hide itself from them.
//!
//! # The contract the brokers and clients announce
//!
//! **Final logs.** Broker `n` is node `broker-<n>`; its data directory `<run>/broker-<n>/`
//! holds one log engine directory per replica it hosts, `kafka-logs/<topic>-<partition>/`
//! (Kafka's own layout). A record's value is the produced value (UTF-8), its key the
//! optional record key. A directory that does not exist means the broker hosts no replica.
//!
//! **Events** (node `broker-<n>`, `detail` a JSON object; partitions are written `"t/p"`,
//! broker ids are numbers):
//!
//! | kind | detail | when |
//! |---|---|---|
//! | `become-leader` | `partition`, `leader_epoch`, `isr` (ids), `leo` | it applied a LeaderAndIsr making it leader |
//! | `become-follower` | `partition`, `leader` (id, or null while none), `leader_epoch` | it applied a LeaderAndIsr making it follower |
//! | `hw` | `partition`, `hw`, `leader_epoch` | its HW of that replica advanced (leader or follower) |
//! | `truncate` | `partition`, `from`, `to`, `hw` | it cut its log from LEO `from` down to `to`, having HW `hw` |
//! | `controller-elected` | `controller_epoch` | it won the controller election |
//! | `partition-state` | `partition`, `leader_epoch`, `partition_epoch`, `controller_epoch` | as controller, it wrote this state of the partition |
//! | `controller-resigned` | `controller_epoch` | it stopped being controller (not checked; for the timeline) |
//!
//! **Broker incarnations.** A broker's memory lives for one incarnation. The checkers start
//! a new incarnation of `broker-<n>` at any `world` `fault` or `heal` event whose `nodes`
//! entry for it says it was killed, restarted or lost power, and at any event of the broker
//! whose detail carries an `incarnation` number different from the last one it announced
//! (the start announcement, like the ensemble's `recovered` and the writers' `log-opened`).
//! Pausing does not end an incarnation.
//!
//! **History** (see `crate::history`): `ClientStart` (fresh process), `Send` (value
//! `<producer>-<incarnation>-<n>` with `n` the send counter of that incarnation, `acks`,
//! `idempotent`), `SendReturn` (`SendOutcome::Ok { partition, offset }` is an
//! acknowledgement), `Assign` (the position of each listed partition is set: a consumer
//! records every seek and offset reset as an `Assign` too), `Poll` (records of one partition).
//!
//! # Which log is "the final log"
//!
//! Per partition: the log of the *final leader*, the broker that announced `become-leader`
//! with the greatest leader epoch in its last incarnation without a later `become-follower`
//! — the events tell who leads at the end. If no broker does, the longest readable replica
//! log. Unreadable logs are never chosen; they are reported by `committed-prefix-agreement`.
//!
//! # Rules, and where one anomaly is reported
//!
//! Each anomaly is reported under one check, so a bug-zoo scenario fails only the check it
//! names:
//! - `lost-write`: an acknowledged value (at or above the final log's start offset: retention
//!   is not a loss) is nowhere in the final log. It fails for acks=1 records too — the
//!   `zombie-leader-acks1` zoo entry needs it to — but reports them in their own violation,
//!   labelled expected by config (acks=1 acknowledges the leader's local append only); a
//!   scenario that accepts that loss says so with `[expect]`.
//! - `duplicate`: a value at two offsets of the final log. Reported with idempotence off too
//!   (labelled expected by config), as the contract asks.
//! - `inconsistent-offsets`: two polls disagree on the value at an offset; a poll and the
//!   final log hold different values at an offset while the polled value is elsewhere in the
//!   final log (a value absent from it is a `phantom-read`); an acknowledged value sits in
//!   the final log, but not at its acknowledged offset (absent is a `lost-write`).
//! - `nonmonotonic-poll`: a consumer's poll of a partition returns an offset below the
//!   position it had reached (the last offset returned + 1, or the position of the last
//!   `Assign`) in the same process. `poll-skip`: it returns an offset above that position
//!   while the final log holds offsets in between.
//! - `phantom-read`: a polled value (at or above the final log's start) is not in the final log.
//! - `reorder`: in the final log, the first occurrences of one producer incarnation's values
//!   are not in send order. Reported with idempotence off too, labelled expected by config.
//! - `single-leader-per-epoch`: two brokers are named leader of one partition in one leader
//!   epoch (by `become-leader`, or by a `become-follower`'s `leader`).
//! - `leader-epoch-monotonic`: per broker incarnation and partition, `become-leader` and
//!   `become-follower` epochs never decrease (Kafka's own `MonotonicEpoch`); and per
//!   partition, the leader epochs the controllers wrote never decrease in the order of the
//!   state's version (`partition-state` events sorted by `partition_epoch`; announcement
//!   order is not write order when a controller pauses). A broker *may* become leader in an
//!   epoch older than another broker's: a paused broker applies a LeaderAndIsr that was
//!   already superseded before it hears of the next one — a zombie leader that cannot
//!   advance its HW, which the data checks judge.
//! - `hw-monotonic`: per broker incarnation and partition, `hw` never decreases.
//! - `committed-prefix-agreement`: the committed HW of a partition is the greatest `hw` a
//!   broker announced while leader. The replicas in sync at the end — the final leader, and
//!   each broker whose last incarnation ends as follower having announced an `hw` since its
//!   last `become-follower` — agree pairwise on every offset below it that both hold.
//!   (A replica that is down or never caught up may hold an unreconciled tail; `converges`
//!   reports it.)
//! - `no-truncation-below-hw`: a `truncate` with `to < hw`.
//! - `single-controller-per-epoch`: two brokers announce `controller-elected` in one epoch.
//! - `controller-epoch-monotonic`: a `controller-elected` epoch below an earlier one; or,
//!   per partition, a state written by a controller of an older epoch after one of a newer
//!   epoch (`partition-state` events in `partition_epoch` order). The epoch check on every
//!   controller write rules the second out: it is what a zombie controller does (KAFKA-6082).
//!
//! A broker event of a checked kind that lacks a field is reported by the check reading it:
//! a drifting contract must not make a check silently vacuous.

use super::{read_final_log, result, CheckInput, CheckResult, FinalLog, Violation};
use crate::broker::controller::ControllerEvent;
use crate::broker::server::BrokerEvent;
use crate::broker::{Acks, BrokerId, TopicPartition};
use crate::history::{
    Announcement, Event, Fault, HistoryEntry, NodeEffect, Op, SendOutcome, ShellEvent, WorldEvent,
};
use crate::scenario::plan::log_config;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A broker's directory of partition logs, inside its node directory.
pub const LOG_DIR: &str = "kafka-logs";

/// Examples quoted per violation; the rest are counted.
const EXAMPLES: usize = 5;

/// Every replica's final log: partition → broker node name → log.
pub type ReplicaLogs = BTreeMap<TopicPartition, BTreeMap<String, FinalLog>>;

/// Reads every replica log the scenario's brokers left for the scenario's topics.
pub fn read_replica_logs(input: &CheckInput<'_>) -> ReplicaLogs {
    let scenario = input.scenario;
    let config = log_config(&scenario.cluster.broker);
    let mut logs = ReplicaLogs::new();
    for n in 1..=scenario.cluster.brokers {
        let name = format!("broker-{n}");
        let node_dir = input.run_dir.join(&name);
        for topic in &scenario.topics {
            for p in 0..topic.partitions {
                let tp = TopicPartition::new(&topic.name, p);
                let dir = Path::new(LOG_DIR).join(tp.dir_name());
                if node_dir.join(&dir).is_dir() {
                    let log = read_final_log(&node_dir, &dir, config.clone());
                    logs.entry(tp).or_default().insert(name.clone(), log);
                }
            }
        }
    }
    logs
}

/// Runs every broker check that applies: the replication and control checks whenever
/// there are brokers; `lost-write`, `duplicate` and `reorder` with producers; the poll
/// checks with consumers; `inconsistent-offsets` with either.
pub fn run(input: &CheckInput<'_>, facts: &Facts<'_>) -> Vec<CheckResult> {
    let producers = !input.scenario.producers.is_empty();
    let consumers = !input.scenario.consumers.is_empty();
    let mut results = Vec::new();
    if producers {
        results.push(result("lost-write", facts.lost_write()));
        results.push(result("duplicate", facts.duplicate()));
    }
    if producers || consumers {
        results.push(result("inconsistent-offsets", facts.inconsistent_offsets()));
    }
    if consumers {
        results.push(result("nonmonotonic-poll", facts.nonmonotonic_poll()));
        results.push(result("poll-skip", facts.poll_skip()));
        results.push(result("phantom-read", facts.phantom_read()));
    }
    if producers {
        results.push(result("reorder", facts.reorder()));
    }
    results.push(result(
        "single-leader-per-epoch",
        facts.single_leader_per_epoch(),
    ));
    results.push(result(
        "leader-epoch-monotonic",
        facts.leader_epoch_monotonic(),
    ));
    results.push(result("hw-monotonic", facts.hw_monotonic()));
    results.push(result(
        "committed-prefix-agreement",
        facts.committed_prefix_agreement(),
    ));
    results.push(result(
        "no-truncation-below-hw",
        facts.no_truncation_below_hw(),
    ));
    results.push(result(
        "single-controller-per-epoch",
        facts.single_controller_per_epoch(),
    ));
    results.push(result(
        "controller-epoch-monotonic",
        facts.controller_epoch_monotonic(),
    ));
    results
}

pub(super) fn seconds(at_us: u64) -> String {
    format!("{:.3}s", at_us as f64 / 1e6)
}

/// Collects findings of one kind about one partition into a single violation.
pub(super) struct Findings {
    check: &'static str,
    partition: Option<String>,
    node: Option<String>,
    what: String,
    count: usize,
    first_at_us: Option<u64>,
    examples: Vec<String>,
}

impl Findings {
    pub(super) fn new(
        check: &'static str,
        partition: Option<&TopicPartition>,
        what: String,
    ) -> Self {
        Findings {
            check,
            partition: partition.map(ToString::to_string),
            node: None,
            what,
            count: 0,
            first_at_us: None,
            examples: Vec::new(),
        }
    }

    pub(super) fn on_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    pub(super) fn add(&mut self, at_us: u64, example: String) {
        self.count += 1;
        self.first_at_us = Some(self.first_at_us.map_or(at_us, |t| t.min(at_us)));
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    pub(super) fn into_violation(self) -> Option<Violation> {
        if self.count == 0 {
            return None;
        }
        let mut detail = String::new();
        if let Some(partition) = &self.partition {
            detail.push_str(&format!("{partition}: "));
        }
        detail.push_str(&format!(
            "{} {}: {}",
            self.count,
            self.what,
            self.examples.join("; ")
        ));
        let more = self.count - self.examples.len();
        if more > 0 {
            detail.push_str(&format!("; and {more} more"));
        }
        Some(Violation {
            check: self.check.to_string(),
            detail,
            at_ms: self.first_at_us.map(|us| us / 1000),
            partition: self.partition,
            node: self.node,
        })
    }
}

/// A single violation at one event.
fn violation(
    check: &str,
    partition: Option<&TopicPartition>,
    node: Option<&str>,
    at_us: u64,
    detail: String,
) -> Violation {
    let detail = match partition {
        Some(tp) => format!("{tp}: {detail}"),
        None => detail,
    };
    Violation {
        check: check.to_string(),
        detail,
        at_ms: Some(at_us / 1000),
        partition: partition.map(ToString::to_string),
        node: node.map(str::to_string),
    }
}

/// What the history says about one produced value.
#[derive(Clone, Copy)]
struct Sent {
    acks: Acks,
    idempotent: bool,
}

/// The log a partition's checks compare against, and how it was chosen.
struct Reference<'a> {
    broker: &'a str,
    log: &'a FinalLog,
    why: &'static str,
    /// Offset → value.
    at: BTreeMap<u64, &'a str>,
    /// Value → offsets holding it, ascending.
    offsets: BTreeMap<&'a str, Vec<u64>>,
}

impl Reference<'_> {
    fn describe(&self) -> String {
        format!("final log of {}, {}", self.broker, self.why)
    }
}

/// One event of a broker, placed in its incarnation.
struct Placed<'a> {
    at_us: u64,
    broker: &'a str,
    incarnation: u64,
    announced: &'a Announcement,
}

/// The name of broker `id`'s node.
fn broker_named(id: BrokerId) -> String {
    format!("broker-{}", id.0)
}

/// The nodes whose process `event` ended: a `world` fault or heal whose `nodes` entry for
/// the node says it was killed, restarted or lost power. Nothing for any other event.
pub(super) fn processes_ended(event: &Event) -> impl Iterator<Item = &str> {
    let nodes: &[NodeEffect] = match &event.announced {
        Announcement::World(WorldEvent::Fault(Fault {
            nodes: Some(nodes), ..
        }))
        | Announcement::World(WorldEvent::Heal { nodes, .. }) => nodes,
        _ => &[],
    };
    nodes
        .iter()
        .filter(|entry| entry.effect.ends_process())
        .map(|entry| entry.node.as_str())
}

/// The partitions (of `expected`, each with its replication factor) that no broker led
/// with a full ISR at `at_us`, judged from the broker events alone: a broker leads from its
/// `become-leader` (with its `isr`, updated by its `isr-changed`) until a `become-follower`
/// or the end of its incarnation. For the liveness check `converges`.
pub fn partitions_without_full_isr(
    events: &[Event],
    expected: &[(TopicPartition, usize)],
    at_us: u64,
) -> Vec<TopicPartition> {
    let upto = events.partition_point(|e| e.at_us <= at_us);
    let (placed, current) = place_in_incarnations(&events[..upto]);
    // (broker, partition) → (incarnation, ISR size) while it leads.
    let mut leading: BTreeMap<(&str, TopicPartition), (u64, usize)> = BTreeMap::new();
    for event in &placed {
        match event.announced {
            Announcement::Broker(BrokerEvent::BecomeLeader { partition, isr, .. }) => {
                leading.insert(
                    (event.broker, partition.clone()),
                    (event.incarnation, isr.len()),
                );
            }
            Announcement::Broker(BrokerEvent::IsrChanged { partition, isr, .. }) => {
                if let Some(entry) = leading.get_mut(&(event.broker, partition.clone())) {
                    entry.1 = isr.len();
                }
            }
            Announcement::Broker(BrokerEvent::BecomeFollower { partition, .. }) => {
                leading.remove(&(event.broker, partition.clone()));
            }
            _ => {}
        }
    }
    expected
        .iter()
        .filter(|(tp, rf)| {
            !leading.iter().any(|((broker, t), &(incarnation, isr))| {
                t == tp && isr >= *rf && current.get(broker) == Some(&incarnation)
            })
        })
        .map(|(tp, _)| tp.clone())
        .collect()
}

/// Everything the broker checks read, indexed once.
pub struct Facts<'a> {
    history: &'a [HistoryEntry],
    logs: &'a ReplicaLogs,
    broker_events: Vec<Placed<'a>>,
    /// Each broker's last incarnation.
    last_incarnation: BTreeMap<&'a str, u64>,
    sends: BTreeMap<&'a str, Sent>,
    references: BTreeMap<&'a TopicPartition, Reference<'a>>,
    stop_us: u64,
}

impl<'a> Facts<'a> {
    /// Indexes the events, the history and the replica logs.
    pub fn new(events: &'a [Event], history: &'a [HistoryEntry], logs: &'a ReplicaLogs) -> Self {
        let (broker_events, last_incarnation) = place_in_incarnations(events);
        let sends = history
            .iter()
            .filter_map(|entry| match &entry.op {
                Op::Send {
                    value,
                    acks,
                    idempotent,
                    ..
                } => Some((
                    value.as_str(),
                    Sent {
                        acks: *acks,
                        idempotent: *idempotent,
                    },
                )),
                _ => None,
            })
            .collect();
        let stop_us = events
            .iter()
            .rfind(|e| matches!(e.announced, Announcement::World(WorldEvent::Stop {})))
            .map_or_else(|| events.last().map_or(0, |e| e.at_us), |e| e.at_us);
        let mut facts = Facts {
            history,
            logs,
            broker_events,
            last_incarnation,
            sends,
            references: BTreeMap::new(),
            stop_us,
        };
        facts.references = facts.choose_references();
        facts
    }

    fn choose_references(&self) -> BTreeMap<&'a TopicPartition, Reference<'a>> {
        let leaders = self.final_leaders();
        let mut chosen = BTreeMap::new();
        for (tp, replicas) in self.logs {
            let readable = |name: &str| replicas.get(name).filter(|log| log.error.is_none());
            let pick = leaders
                .get(tp)
                .and_then(|leader| {
                    let (name, log) = replicas.get_key_value(leader.as_str())?;
                    readable(name).map(|_| (name, log, "the final leader"))
                })
                .or_else(|| {
                    replicas
                        .iter()
                        .filter(|(_, log)| log.error.is_none())
                        .max_by_key(|(name, log)| (log.log_end, std::cmp::Reverse(*name)))
                        .map(|(name, log)| (name, log, "the longest replica log"))
                });
            if let Some((broker, log, why)) = pick {
                let mut offsets: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                for (offset, value) in &log.records {
                    offsets.entry(value.as_str()).or_default().push(*offset);
                }
                chosen.insert(
                    tp,
                    Reference {
                        broker,
                        log,
                        why,
                        at: log.records.iter().map(|(o, v)| (*o, v.as_str())).collect(),
                        offsets,
                    },
                );
            }
        }
        chosen
    }

    /// The final log of `tp` the checks judge against, with the offsets of each value in it.
    pub fn reference(&self, tp: &TopicPartition) -> Option<(&FinalLog, &BTreeMap<&str, Vec<u64>>)> {
        self.references.get(tp).map(|r| (r.log, &r.offsets))
    }

    /// Per partition, the broker leading it at the end according to the events.
    fn final_leaders(&self) -> BTreeMap<TopicPartition, String> {
        // (broker, partition) → leader epoch while it leads in its last incarnation.
        let mut leading: BTreeMap<(&str, TopicPartition), (i32, u64)> = BTreeMap::new();
        for event in &self.broker_events {
            if self.last_incarnation.get(event.broker) != Some(&event.incarnation) {
                continue;
            }
            match event.announced {
                Announcement::Broker(BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                }) => {
                    leading.insert(
                        (event.broker, partition.clone()),
                        (leader_epoch.0, event.at_us),
                    );
                }
                Announcement::Broker(BrokerEvent::BecomeFollower { partition, .. }) => {
                    leading.remove(&(event.broker, partition.clone()));
                }
                _ => {}
            }
        }
        let mut best: BTreeMap<TopicPartition, ((i32, u64), &str)> = BTreeMap::new();
        for ((broker, tp), key) in leading {
            let entry = best.entry(tp).or_insert((key, broker));
            if key > entry.0 {
                *entry = (key, broker);
            }
        }
        best.into_iter()
            .map(|(tp, (_, broker))| (tp, broker.to_string()))
            .collect()
    }

    /// The brokers' own events (replicas, registration), with where they were announced.
    fn broker_events(&self) -> impl Iterator<Item = (&Placed<'a>, &'a BrokerEvent)> + '_ {
        self.broker_events.iter().filter_map(|e| match e.announced {
            Announcement::Broker(event) => Some((e, event)),
            _ => None,
        })
    }

    /// The controllers' events, with where they were announced.
    fn controller_events(&self) -> impl Iterator<Item = (&Placed<'a>, &'a ControllerEvent)> + '_ {
        self.broker_events.iter().filter_map(|e| match e.announced {
            Announcement::Controller(event) => Some((e, event)),
            _ => None,
        })
    }

    fn acknowledged(
        &self,
    ) -> impl Iterator<Item = (&'a HistoryEntry, &'a str, &'a TopicPartition, u64)> {
        self.history.iter().filter_map(|entry| match &entry.op {
            Op::SendReturn {
                value,
                outcome: SendOutcome::Ok { partition, offset },
            } => Some((entry, value.as_str(), partition, *offset)),
            _ => None,
        })
    }

    fn polls(
        &self,
    ) -> impl Iterator<Item = (&'a HistoryEntry, &'a TopicPartition, &'a [(u64, String)])> {
        self.history.iter().filter_map(|entry| match &entry.op {
            Op::Poll { partition, records } => Some((entry, partition, records.as_slice())),
            _ => None,
        })
    }

    /// `lost-write`.
    pub fn lost_write(&self) -> Vec<Violation> {
        // (partition, acks=1?) → findings.
        let mut lost: BTreeMap<(&TopicPartition, bool), Findings> = BTreeMap::new();
        for (entry, value, tp, offset) in self.acknowledged() {
            let sent = self.sends.get(value);
            let leader_only = sent.is_some_and(|s| s.acks == Acks::Leader);
            let reference = self.references.get(tp);
            if let Some(r) = reference {
                if offset < r.log.log_start || r.offsets.contains_key(value) {
                    continue;
                }
            }
            let findings = lost.entry((tp, leader_only)).or_insert_with(|| {
                let whose = match reference {
                    Some(r) => r.describe(),
                    None => "no readable replica log".to_string(),
                };
                let what = if leader_only {
                    format!(
                        "records acknowledged under acks=1 missing ({whose}; expected by config: \
                         acks=1 acknowledges the leader's local append only)"
                    )
                } else {
                    let acks = match sent.map(|s| s.acks) {
                        Some(Acks::All) => "acks=all",
                        Some(Acks::None) => "acks=0",
                        _ => "unknown acks",
                    };
                    format!("records acknowledged under {acks} missing ({whose})")
                };
                Findings::new("lost-write", Some(tp), what)
            });
            findings.add(
                entry.at_us,
                format!(
                    "{value} from {} at offset {offset} at {}",
                    entry.node,
                    seconds(entry.at_us)
                ),
            );
        }
        lost.into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `duplicate`.
    pub fn duplicate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (tp, r) in &self.references {
            let mut by_class: BTreeMap<bool, Findings> = BTreeMap::new();
            for (value, offsets) in &r.offsets {
                if offsets.len() < 2 {
                    continue;
                }
                let idempotent = self.sends.get(value).is_some_and(|s| s.idempotent);
                let findings = by_class.entry(idempotent).or_insert_with(|| {
                    let what = if idempotent {
                        format!(
                            "values of idempotent producers at two offsets ({})",
                            r.describe()
                        )
                    } else {
                        format!(
                            "values at two offsets ({}; expected by config: the producer is \
                             not idempotent)",
                            r.describe()
                        )
                    };
                    Findings::new("duplicate", Some(tp), what)
                });
                findings.add(self.stop_us, format!("{value} at offsets {offsets:?}"));
            }
            out.extend(by_class.into_values().filter_map(Findings::into_violation));
        }
        out
    }

    /// `inconsistent-offsets`.
    pub fn inconsistent_offsets(&self) -> Vec<Violation> {
        let mut findings: BTreeMap<&TopicPartition, Findings> = BTreeMap::new();
        let mut add = |tp: &'a TopicPartition, at_us: u64, example: String| {
            findings
                .entry(tp)
                .or_insert_with(|| {
                    Findings::new(
                        "inconsistent-offsets",
                        Some(tp),
                        "disagreements on the record at an offset".to_string(),
                    )
                })
                .add(at_us, example);
        };
        // Polls against earlier polls (of any consumer) and against the final log.
        let mut first_read: BTreeMap<(&TopicPartition, u64), (&str, &str, u64)> = BTreeMap::new();
        for (entry, tp, records) in self.polls() {
            for (offset, value) in records {
                match first_read.get(&(tp, *offset)) {
                    Some((earlier, by, at)) if *earlier != value => add(
                        tp,
                        entry.at_us,
                        format!(
                            "offset {offset}: {by} read {earlier} at {} but {} read {value} at {}",
                            seconds(*at),
                            entry.node,
                            seconds(entry.at_us)
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        first_read.insert((tp, *offset), (value, &entry.node, entry.at_us));
                    }
                }
                let Some(r) = self.references.get(tp) else {
                    continue;
                };
                let Some(held) = r.at.get(offset) else {
                    continue;
                };
                if *held != value && r.offsets.contains_key(value.as_str()) {
                    add(
                        tp,
                        entry.at_us,
                        format!(
                            "offset {offset}: {} read {value} at {} but the {} holds {held} \
                             there and {value} at {:?}",
                            entry.node,
                            seconds(entry.at_us),
                            r.describe(),
                            r.offsets[value.as_str()]
                        ),
                    );
                }
            }
        }
        // Acknowledged offsets against the final log.
        for (entry, value, tp, offset) in self.acknowledged() {
            let Some(r) = self.references.get(tp) else {
                continue;
            };
            if let Some(held) = r.offsets.get(value) {
                if !held.contains(&offset) {
                    add(
                        tp,
                        entry.at_us,
                        format!(
                            "{value} acknowledged to {} at offset {offset} at {} but the {} \
                             holds it at {held:?}",
                            entry.node,
                            seconds(entry.at_us),
                            r.describe()
                        ),
                    );
                }
            }
        }
        findings
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// Walks each consumer's polls against its positions; returns (`nonmonotonic-poll`,
    /// `poll-skip`) findings.
    fn walk_polls(&self) -> (Vec<Violation>, Vec<Violation>) {
        type Key<'k> = (&'k str, &'k TopicPartition);
        let mut backwards: BTreeMap<Key<'a>, Findings> = BTreeMap::new();
        let mut skips: BTreeMap<Key<'a>, Findings> = BTreeMap::new();
        // Consumer → partition → (position, where it came from).
        let mut positions: BTreeMap<Key<'a>, (u64, String)> = BTreeMap::new();
        for entry in self.history {
            let consumer = entry.node.as_str();
            let (partition, records) = match &entry.op {
                Op::ClientStart { .. } => {
                    positions.retain(|(c, _), _| *c != consumer);
                    continue;
                }
                Op::Assign { partitions } => {
                    for (tp, position) in partitions {
                        let since = format!("assigned at {} from {position}", seconds(entry.at_us));
                        positions.insert((consumer, tp), (*position, since));
                    }
                    continue;
                }
                // A group member owns exactly these from here on (a reassignment).
                Op::GroupAssign { partitions, .. } => {
                    positions.retain(|(c, tp), _| {
                        *c != consumer || partitions.iter().any(|(p, _)| p == *tp)
                    });
                    for (tp, position) in partitions {
                        let since = format!("assigned at {} from {position}", seconds(entry.at_us));
                        positions.insert((consumer, tp), (*position, since));
                    }
                    continue;
                }
                Op::Poll { partition, records } => (partition, records),
                _ => continue,
            };
            let key = (consumer, partition);
            let at = seconds(entry.at_us);
            for (offset, _) in records {
                if let Some((position, since)) = positions.get(&key) {
                    let example =
                        format!("offset {offset} at {at} at position {position} ({since})");
                    if offset < position {
                        backwards
                            .entry(key)
                            .or_insert_with(|| {
                                let what = format!("{consumer}: polls going backwards");
                                Findings::new("nonmonotonic-poll", Some(partition), what)
                                    .on_node(consumer)
                            })
                            .add(entry.at_us, example);
                    } else if let Some(r) = self.references.get(partition) {
                        let missed: Vec<u64> =
                            r.at.range(*position..*offset).map(|(o, _)| *o).collect();
                        if let Some(first) = missed.first() {
                            skips
                                .entry(key)
                                .or_insert_with(|| {
                                    let what = format!(
                                        "{consumer}: polls skipping offsets the {} holds",
                                        r.describe()
                                    );
                                    Findings::new("poll-skip", Some(partition), what)
                                        .on_node(consumer)
                                })
                                .add(
                                    entry.at_us,
                                    format!(
                                        "{example}, skipping {} offsets from {first}",
                                        missed.len()
                                    ),
                                );
                        }
                    }
                }
                let since = format!("after offset {offset} polled at {at}");
                positions.insert(key, (offset + 1, since));
            }
        }
        let collect = |found: BTreeMap<Key<'a>, Findings>| -> Vec<Violation> {
            found
                .into_values()
                .filter_map(Findings::into_violation)
                .collect()
        };
        (collect(backwards), collect(skips))
    }

    /// `nonmonotonic-poll`.
    pub fn nonmonotonic_poll(&self) -> Vec<Violation> {
        self.walk_polls().0
    }

    /// `poll-skip`.
    pub fn poll_skip(&self) -> Vec<Violation> {
        self.walk_polls().1
    }

    /// `phantom-read`.
    pub fn phantom_read(&self) -> Vec<Violation> {
        let mut findings: BTreeMap<&TopicPartition, Findings> = BTreeMap::new();
        for (entry, tp, records) in self.polls() {
            let reference = self.references.get(tp);
            for (offset, value) in records {
                if let Some(r) = reference {
                    if *offset < r.log.log_start || r.offsets.contains_key(value.as_str()) {
                        continue;
                    }
                }
                findings
                    .entry(tp)
                    .or_insert_with(|| {
                        let whose = match reference {
                            Some(r) => r.describe(),
                            None => "no readable replica log".to_string(),
                        };
                        Findings::new(
                            "phantom-read",
                            Some(tp),
                            format!("polled records not in the final log ({whose})"),
                        )
                    })
                    .add(
                        entry.at_us,
                        format!(
                            "{value} at offset {offset} polled by {} at {}",
                            entry.node,
                            seconds(entry.at_us)
                        ),
                    );
            }
        }
        findings
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `reorder`.
    pub fn reorder(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (tp, r) in &self.references {
            let mut by_class: BTreeMap<bool, Findings> = BTreeMap::new();
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            // (producer, incarnation) → (greatest send number so far, its offset).
            let mut last: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
            for (offset, value) in &r.log.records {
                if !seen.insert(value.as_str()) {
                    continue;
                }
                let Some((producer, incarnation, n)) = split_value(value) else {
                    continue;
                };
                match last.get(&(producer, incarnation)) {
                    Some(&(before, before_at)) if n < before => {
                        let idempotent =
                            self.sends.get(value.as_str()).is_some_and(|s| s.idempotent);
                        by_class
                            .entry(idempotent)
                            .or_insert_with(|| {
                                let what = if idempotent {
                                    format!(
                                        "records of idempotent producers out of send order ({})",
                                        r.describe()
                                    )
                                } else {
                                    format!(
                                        "records out of send order ({}; expected by config: the \
                                         producer is not idempotent)",
                                        r.describe()
                                    )
                                };
                                Findings::new("reorder", Some(tp), what)
                            })
                            .add(
                                self.stop_us,
                                format!(
                                    "{value} (send {n}) at offset {offset} after send {before} \
                                     at offset {before_at}"
                                ),
                            );
                    }
                    Some(&(before, _)) if n == before => {}
                    _ => {
                        last.insert((producer, incarnation), (n, *offset));
                    }
                }
            }
            out.extend(by_class.into_values().filter_map(Findings::into_violation));
        }
        out
    }

    /// `single-leader-per-epoch`.
    pub fn single_leader_per_epoch(&self) -> Vec<Violation> {
        const CHECK: &str = "single-leader-per-epoch";
        let mut out = Vec::new();
        // (partition, epoch) → (leader, who said so, when).
        let mut claims: BTreeMap<(TopicPartition, i32), (String, &str, u64)> = BTreeMap::new();
        let mut reported: BTreeSet<(TopicPartition, i32)> = BTreeSet::new();
        for (event, announced) in self.broker_events() {
            let (tp, epoch, leader, kind) = match announced {
                BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                } => (
                    partition.clone(),
                    leader_epoch.0,
                    event.broker.to_string(),
                    "become-leader",
                ),
                BrokerEvent::BecomeFollower {
                    partition,
                    leader,
                    leader_epoch,
                    ..
                } => (
                    partition.clone(),
                    leader_epoch.0,
                    broker_named(*leader),
                    "become-follower",
                ),
                _ => continue,
            };
            let key = (tp, epoch);
            match claims.get(&key) {
                None => {
                    claims.insert(key, (leader, event.broker, event.at_us));
                }
                Some((first, by, at)) if *first != leader && !reported.contains(&key) => {
                    out.push(violation(
                        CHECK,
                        Some(&key.0),
                        Some(event.broker),
                        event.at_us,
                        format!(
                            "leader epoch {epoch} has two leaders: {first} ({by} at {}) and \
                             {leader} ({} `{kind}` at {})",
                            seconds(*at),
                            event.broker,
                            seconds(event.at_us)
                        ),
                    ));
                    reported.insert(key);
                }
                Some(_) => {}
            }
        }
        out
    }

    /// `leader-epoch-monotonic`.
    pub fn leader_epoch_monotonic(&self) -> Vec<Violation> {
        const CHECK: &str = "leader-epoch-monotonic";
        let mut out = Vec::new();
        let mut per_replica: BTreeMap<(&str, u64, TopicPartition), (i32, u64)> = BTreeMap::new();
        // Per partition: (partition_epoch, leader_epoch, by, at) of every written state.
        let mut written: BTreeMap<TopicPartition, Vec<(i32, i32, &str, u64)>> = BTreeMap::new();
        for event in &self.broker_events {
            let (tp, epoch, kind) = match event.announced {
                Announcement::Controller(ControllerEvent::PartitionState {
                    partition,
                    leader_epoch,
                    partition_epoch,
                    ..
                }) => {
                    written.entry(partition.clone()).or_default().push((
                        *partition_epoch,
                        leader_epoch.0,
                        event.broker,
                        event.at_us,
                    ));
                    continue;
                }
                Announcement::Broker(BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    ..
                }) => (partition.clone(), leader_epoch.0, "become-leader"),
                Announcement::Broker(BrokerEvent::BecomeFollower {
                    partition,
                    leader_epoch,
                    ..
                }) => (partition.clone(), leader_epoch.0, "become-follower"),
                _ => continue,
            };
            let replica = (event.broker, event.incarnation, tp.clone());
            if let Some(&(before, at)) = per_replica.get(&replica) {
                if epoch < before {
                    out.push(violation(
                        CHECK,
                        Some(&tp),
                        Some(event.broker),
                        event.at_us,
                        format!(
                            "{} went from leader epoch {before} (at {}) back to {epoch} (`{kind}` \
                             at {}) in one incarnation",
                            event.broker,
                            seconds(at),
                            seconds(event.at_us)
                        ),
                    ));
                }
            }
            let high = per_replica
                .get(&replica)
                .map_or(epoch, |&(b, _)| b.max(epoch));
            per_replica.insert(replica, (high, event.at_us));
        }
        for (tp, mut states) in written {
            states.sort_by_key(|&(version, _, _, at)| (version, at));
            for pair in states.windows(2) {
                let ((v0, e0, by0, at0), (v1, e1, by1, at1)) = (pair[0], pair[1]);
                if e1 < e0 {
                    out.push(violation(
                        CHECK,
                        Some(&tp),
                        Some(by1),
                        at1,
                        format!(
                            "{by1} wrote leader epoch {e1} in partition epoch {v1} (at {}), after \
                             {by0} wrote leader epoch {e0} in partition epoch {v0} (at {})",
                            seconds(at1),
                            seconds(at0)
                        ),
                    ));
                }
            }
        }
        out
    }

    /// `hw-monotonic`.
    pub fn hw_monotonic(&self) -> Vec<Violation> {
        const CHECK: &str = "hw-monotonic";
        let mut out = Vec::new();
        let mut last: BTreeMap<(&str, u64, TopicPartition), (u64, u64)> = BTreeMap::new();
        for (event, announced) in self.broker_events() {
            let BrokerEvent::Hw { partition, hw, .. } = announced else {
                continue;
            };
            let (tp, hw) = (partition.clone(), hw.0);
            let replica = (event.broker, event.incarnation, tp.clone());
            match last.get(&replica) {
                Some(&(before, at)) if hw < before => out.push(violation(
                    CHECK,
                    Some(&tp),
                    Some(event.broker),
                    event.at_us,
                    format!(
                        "{}'s HW went from {before} (at {}) back to {hw} (at {}) in one \
                         incarnation",
                        event.broker,
                        seconds(at),
                        seconds(event.at_us)
                    ),
                )),
                _ => {
                    last.insert(replica, (hw, event.at_us));
                }
            }
        }
        out
    }

    /// `committed-prefix-agreement`.
    pub fn committed_prefix_agreement(&self) -> Vec<Violation> {
        const CHECK: &str = "committed-prefix-agreement";
        let mut out = Vec::new();
        for (tp, replicas) in self.logs {
            for (broker, log) in replicas {
                if let Some(error) = &log.error {
                    out.push(violation(
                        CHECK,
                        Some(tp),
                        Some(broker),
                        self.stop_us,
                        format!("{broker}: the replica log cannot be read back: {error}"),
                    ));
                }
            }
        }
        // Roles per replica in each incarnation, the committed HW, and who is in sync at
        // the end: (broker, partition) → (leading, fetched since becoming follower).
        let mut role: BTreeMap<(&str, u64, TopicPartition), (bool, bool)> = BTreeMap::new();
        let mut committed: BTreeMap<TopicPartition, (u64, &str, u64)> = BTreeMap::new();
        for event in &self.broker_events {
            let key = |tp: TopicPartition| (event.broker, event.incarnation, tp);
            match event.announced {
                Announcement::Broker(BrokerEvent::BecomeLeader { partition, .. }) => {
                    role.insert(key(partition.clone()), (true, false));
                }
                Announcement::Broker(BrokerEvent::BecomeFollower { partition, .. }) => {
                    role.insert(key(partition.clone()), (false, false));
                }
                Announcement::Broker(BrokerEvent::Hw { partition, hw, .. }) => {
                    let (tp, hw) = (partition.clone(), hw.0);
                    let Some(state) = role.get_mut(&key(tp.clone())) else {
                        continue;
                    };
                    state.1 = true;
                    if state.0 && committed.get(&tp).is_none_or(|(h, _, _)| hw > *h) {
                        committed.insert(tp, (hw, event.broker, event.at_us));
                    }
                }
                _ => {}
            }
        }
        for (tp, replicas) in self.logs {
            let Some(&(hw, by, at)) = committed.get(tp) else {
                continue;
            };
            let reference = self.references.get(tp);
            let in_sync: Vec<(&str, &FinalLog)> = replicas
                .iter()
                .filter(|(broker, log)| {
                    if log.error.is_some() {
                        return false;
                    }
                    if reference.is_some_and(|r| r.broker == *broker && r.why == "the final leader")
                    {
                        return true;
                    }
                    let Some(&last) = self.last_incarnation.get(broker.as_str()) else {
                        return false;
                    };
                    role.get(&(broker.as_str(), last, tp.clone()))
                        .is_some_and(|&(leading, fetched)| !leading && fetched)
                })
                .map(|(b, l)| (b.as_str(), l))
                .collect();
            for (i, (a, log_a)) in in_sync.iter().enumerate() {
                for (b, log_b) in &in_sync[i + 1..] {
                    let from = log_a.log_start.max(log_b.log_start);
                    let to = hw.min(log_a.log_end).min(log_b.log_end);
                    let values = |log: &'a FinalLog| -> BTreeMap<u64, &'a str> {
                        log.records
                            .iter()
                            .filter(|(o, _)| (from..to).contains(o))
                            .map(|(o, v)| (*o, v.as_str()))
                            .collect()
                    };
                    let (va, vb) = (values(log_a), values(log_b));
                    let differ: Vec<u64> = (from..to).filter(|o| va.get(o) != vb.get(o)).collect();
                    if let Some(&first) = differ.first() {
                        out.push(violation(
                            CHECK,
                            Some(tp),
                            Some(b),
                            self.stop_us,
                            format!(
                                "{a} and {b} disagree on {} offsets below the committed HW {hw} \
                                 ({by} announced it at {}), first at offset {first}: {a} holds \
                                 {} and {b} holds {}",
                                differ.len(),
                                seconds(at),
                                va.get(&first).unwrap_or(&"nothing"),
                                vb.get(&first).unwrap_or(&"nothing")
                            ),
                        ));
                    }
                }
            }
        }
        out
    }

    /// `no-truncation-below-hw`.
    pub fn no_truncation_below_hw(&self) -> Vec<Violation> {
        const CHECK: &str = "no-truncation-below-hw";
        let mut out = Vec::new();
        for (event, announced) in self.broker_events() {
            match announced {
                BrokerEvent::Truncate {
                    partition,
                    from,
                    to,
                    hw,
                } if to < hw => out.push(violation(
                    CHECK,
                    Some(partition),
                    Some(event.broker),
                    event.at_us,
                    format!(
                        "{} truncated its log from {} to {} below its HW {} at {}",
                        event.broker,
                        from.0,
                        to.0,
                        hw.0,
                        seconds(event.at_us)
                    ),
                )),
                _ => {}
            }
        }
        out
    }

    /// `single-controller-per-epoch`.
    pub fn single_controller_per_epoch(&self) -> Vec<Violation> {
        const CHECK: &str = "single-controller-per-epoch";
        let mut out = Vec::new();
        let mut elected: BTreeMap<u32, (&str, u64)> = BTreeMap::new();
        let mut reported = BTreeSet::new();
        for (event, announced) in self.controller_events() {
            let ControllerEvent::ControllerElected {
                controller_epoch: epoch,
            } = *announced
            else {
                continue;
            };
            match elected.get(&epoch) {
                None => {
                    elected.insert(epoch, (event.broker, event.at_us));
                }
                Some(&(first, at)) if first != event.broker && reported.insert(epoch) => {
                    out.push(violation(
                        CHECK,
                        None,
                        Some(event.broker),
                        event.at_us,
                        format!(
                            "controller epoch {epoch} has two controllers: {first} elected at {} \
                             and {} at {}",
                            seconds(at),
                            event.broker,
                            seconds(event.at_us)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        out
    }

    /// `controller-epoch-monotonic`.
    pub fn controller_epoch_monotonic(&self) -> Vec<Violation> {
        const CHECK: &str = "controller-epoch-monotonic";
        let mut out = Vec::new();
        let mut greatest: Option<(u32, &str, u64)> = None;
        for (event, announced) in self.controller_events() {
            let ControllerEvent::ControllerElected {
                controller_epoch: epoch,
            } = *announced
            else {
                continue;
            };
            match greatest {
                Some((before, by, at)) if epoch < before => out.push(violation(
                    CHECK,
                    None,
                    Some(event.broker),
                    event.at_us,
                    format!(
                        "{} was elected controller in epoch {epoch} at {}, after {by} in epoch \
                         {before} at {}",
                        event.broker,
                        seconds(event.at_us),
                        seconds(at)
                    ),
                )),
                Some((before, _, _)) if epoch == before => {}
                _ => greatest = Some((epoch, event.broker, event.at_us)),
            }
        }
        // Per partition: (partition_epoch, controller_epoch, by, at) of every written state.
        let mut written: BTreeMap<TopicPartition, Vec<(i32, u32, &str, u64)>> = BTreeMap::new();
        for (event, announced) in self.controller_events() {
            if let ControllerEvent::PartitionState {
                partition,
                controller_epoch,
                partition_epoch,
                ..
            } = announced
            {
                written.entry(partition.clone()).or_default().push((
                    *partition_epoch,
                    *controller_epoch,
                    event.broker,
                    event.at_us,
                ));
            }
        }
        for (tp, mut states) in written {
            states.sort_by_key(|&(version, _, _, at)| (version, at));
            let mut newest: Option<(i32, u32, &str, u64)> = None;
            for state in states {
                let (version, epoch, by, at) = state;
                match newest {
                    Some((v0, e0, by0, at0)) if epoch < e0 => out.push(violation(
                        CHECK,
                        Some(&tp),
                        Some(by),
                        at,
                        format!(
                            "{by} wrote partition epoch {version} as controller epoch {epoch} \
                             (at {}), after {by0} wrote partition epoch {v0} as controller \
                             epoch {e0} (at {})",
                            seconds(at),
                            seconds(at0)
                        ),
                    )),
                    _ => newest = Some(state),
                }
            }
        }
        out
    }
}

/// Splits `<producer>-<incarnation>-<n>` (the producer's name has dashes of its own).
fn split_value(value: &str) -> Option<(&str, &str, u64)> {
    let (rest, n) = value.rsplit_once('-')?;
    let (producer, incarnation) = rest.rsplit_once('-')?;
    incarnation.parse::<u64>().ok()?;
    Some((producer, incarnation, n.parse().ok()?))
}

/// The brokers' events, each placed in its broker's incarnation, and each broker's last
/// incarnation.
fn place_in_incarnations(events: &[Event]) -> (Vec<Placed<'_>>, BTreeMap<&str, u64>) {
    let mut current: BTreeMap<&str, u64> = BTreeMap::new();
    let mut announced: BTreeMap<&str, u64> = BTreeMap::new();
    let mut placed = Vec::new();
    for event in events {
        if event.node == "world" {
            for node in processes_ended(event).filter(|n| n.starts_with("broker-")) {
                *current.entry(node).or_default() += 1;
            }
            continue;
        }
        if !event.node.starts_with("broker-") {
            continue;
        }
        let broker = event.node.as_str();
        if let Announcement::Shell(ShellEvent::BrokerStarted { incarnation }) = event.announced {
            if announced
                .insert(broker, incarnation)
                .is_some_and(|i| i != incarnation)
            {
                *current.entry(broker).or_default() += 1;
            }
        }
        placed.push(Placed {
            at_us: event.at_us,
            broker,
            incarnation: *current.entry(broker).or_default(),
            announced: &event.announced,
        });
    }
    (placed, current)
}

#[cfg(test)]
mod tests {
    //! Each check fires on hand-made events, history and final logs that break its rule, and
    //! stays quiet on ones that keep it: the checkers can fail.
    use super::*;
    use crate::check::test_support::{become_leader, event};
    use crate::log::{BatchBuilder, BatchMeta, LeaderEpoch, Log, LogConfig, Offset};

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("orders", p)
    }

    fn broker(n: u32) -> String {
        format!("broker-{n}")
    }

    fn leader(at_us: u64, broker: u32, p: u32, epoch: i32) -> Event {
        become_leader(at_us, broker, &tp(p), epoch, &[broker])
    }

    fn follower(at_us: u64, broker: u32, p: u32, leader: u32, epoch: i32) -> Event {
        let announced = BrokerEvent::BecomeFollower {
            partition: tp(p),
            leader: BrokerId(leader),
            leader_epoch: LeaderEpoch(epoch),
            leo: Offset(0),
            hw: Offset(0),
        };
        event(at_us, &self::broker(broker), announced)
    }

    fn hw(at_us: u64, broker: u32, p: u32, hw: u64) -> Event {
        let announced = BrokerEvent::Hw {
            partition: tp(p),
            hw: Offset(hw),
            leader_epoch: LeaderEpoch(0),
        };
        event(at_us, &self::broker(broker), announced)
    }

    fn killed(at_us: u64, broker: u32) -> Event {
        crate::check::test_support::killed(at_us, &self::broker(broker))
    }

    /// `broker` wrote, as controller of `controller_epoch`, leader epoch `epoch` of
    /// `orders/0` in partition epoch `version`.
    fn state(at_us: u64, broker: u32, version: i32, epoch: i32, controller_epoch: u32) -> Event {
        let announced = ControllerEvent::PartitionState {
            partition: tp(0),
            leader: Some(BrokerId(1)),
            leader_epoch: LeaderEpoch(epoch),
            isr: vec![BrokerId(1)],
            elr: Vec::new(),
            controller_epoch,
            partition_epoch: version,
        };
        event(at_us, &self::broker(broker), announced)
    }

    fn h(at_us: u64, node: &str, op: Op) -> HistoryEntry {
        HistoryEntry {
            at_us,
            node: node.into(),
            op,
        }
    }

    fn send(at_us: u64, value: &str, acks: Acks, idempotent: bool) -> HistoryEntry {
        let producer = value.rsplitn(3, '-').nth(2).unwrap().to_string();
        h(
            at_us,
            &producer,
            Op::Send {
                value: value.into(),
                key: None,
                topic: "orders".into(),
                acks,
                idempotent,
            },
        )
    }

    fn ok(at_us: u64, value: &str, p: u32, offset: u64) -> HistoryEntry {
        let producer = value.rsplitn(3, '-').nth(2).unwrap().to_string();
        h(
            at_us,
            &producer,
            Op::SendReturn {
                value: value.into(),
                outcome: SendOutcome::Ok {
                    partition: tp(p),
                    offset,
                },
            },
        )
    }

    /// Sends `values` with `acks` and acknowledges each at the given offset of `orders/0`.
    fn acked(values: &[(&str, u64)], acks: Acks) -> Vec<HistoryEntry> {
        values
            .iter()
            .enumerate()
            .flat_map(|(i, (value, offset))| {
                let at = 1000 * i as u64;
                [send(at, value, acks, true), ok(at + 500, value, 0, *offset)]
            })
            .collect()
    }

    fn assign(at_us: u64, consumer: &str, p: u32, position: u64) -> HistoryEntry {
        h(
            at_us,
            consumer,
            Op::Assign {
                partitions: vec![(tp(p), position)],
            },
        )
    }

    fn poll(at_us: u64, consumer: &str, p: u32, records: &[(u64, &str)]) -> HistoryEntry {
        h(
            at_us,
            consumer,
            Op::Poll {
                partition: tp(p),
                records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            },
        )
    }

    fn flog(start: u64, records: &[(u64, &str)]) -> FinalLog {
        FinalLog {
            log_start: start,
            log_end: records.last().map_or(start, |(o, _)| o + 1),
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            ..FinalLog::default()
        }
    }

    fn logs(replicas: Vec<(u32, FinalLog)>) -> ReplicaLogs {
        let mut all = ReplicaLogs::new();
        for (broker, log) in replicas {
            all.entry(tp(0))
                .or_default()
                .insert(format!("broker-{broker}"), log);
        }
        all
    }

    fn one(found: &[Violation], needle: &str) {
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].detail.contains(needle), "{}", found[0].detail);
    }

    const A: &str = "producer-1-1-0";
    const B: &str = "producer-1-1-1";
    const C: &str = "producer-1-1-2";

    #[test]
    fn lost_write_fires_for_an_acknowledged_record_missing_from_the_final_leaders_log() {
        let history = acked(&[(A, 0), (B, 1)], Acks::All);
        // broker-2 leads at the end with a shorter log; broker-1 still holds B.
        let replicas = logs(vec![
            (1, flog(0, &[(0, A), (1, B)])),
            (2, flog(0, &[(0, A)])),
        ]);
        let events = [
            leader(10, 1, 0, 1),
            follower(20, 1, 0, 2, 2),
            leader(20, 2, 0, 2),
        ];
        let found = Facts::new(&events, &history, &replicas).lost_write();
        one(&found, "producer-1-1-1 from producer-1 at offset 1");
        assert!(found[0].detail.contains("under acks=all"));
        assert!(found[0]
            .detail
            .contains("final log of broker-2, the final leader"));
        assert_eq!(found[0].partition.as_deref(), Some("orders/0"));
        assert_eq!(found[0].at_ms, Some(1));

        // Without events, the longest log is the final log: nothing lost.
        assert!(Facts::new(&[], &history, &replicas).lost_write().is_empty());
        // Retention deleted offset 0 of the final log: not a loss.
        let retained = logs(vec![(1, flog(1, &[(1, B)]))]);
        assert!(Facts::new(&[], &history, &retained).lost_write().is_empty());
    }

    #[test]
    fn lost_write_reports_acks_1_losses_apart_as_expected_by_config() {
        let mut history = acked(&[(A, 0)], Acks::All);
        history.extend([send(5000, B, Acks::Leader, false), ok(5500, B, 0, 1)]);
        let replicas = logs(vec![(1, flog(0, &[(0, A)]))]);
        let found = Facts::new(&[], &history, &replicas).lost_write();
        one(&found, "acks=1");
        assert!(found[0].detail.contains("expected by config"));

        // With no replica log at all, every acknowledged record is lost.
        let found = Facts::new(&[], &history, &ReplicaLogs::new()).lost_write();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].detail.contains("no readable replica log"));
    }

    #[test]
    fn duplicate_fires_on_a_value_at_two_offsets() {
        let idempotent = vec![send(0, A, Acks::All, true), send(1, B, Acks::All, true)];
        let twice = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, A)]))]);
        let found = Facts::new(&[], &idempotent, &twice).duplicate();
        one(&found, "producer-1-1-0 at offsets [0, 2]");
        assert!(found[0].detail.contains("idempotent producers"));

        let plain = vec![send(0, A, Acks::All, false)];
        let found = Facts::new(&[], &plain, &twice).duplicate();
        one(&found, "expected by config");

        let once = logs(vec![(1, flog(0, &[(0, A), (1, B)]))]);
        assert!(Facts::new(&[], &idempotent, &once).duplicate().is_empty());
    }

    #[test]
    fn inconsistent_offsets_fires_when_reads_or_acknowledgements_disagree() {
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, C)]))]);
        // Two consumers disagree on offset 1.
        let reads = [
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            poll(20, "consumer-2", 0, &[(1, C)]),
        ];
        let found = Facts::new(&[], &reads, &final_log).inconsistent_offsets();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0]
            .detail
            .contains("offset 1: consumer-1 read producer-1-1-1"));
        assert!(
            found[0].detail.contains("2 disagreements"),
            "the read of C at 1 also disagrees with the final log: {}",
            found[0].detail
        );

        // Acknowledged at 1, but the final log holds it at 2.
        let moved = acked(&[(C, 1)], Acks::All);
        let found = Facts::new(&[], &moved, &final_log).inconsistent_offsets();
        one(&found, "holds it at [2]");

        // Agreement, and a value absent from the final log (that is a phantom-read).
        let fine = [
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            poll(20, "consumer-2", 0, &[(0, A), (1, B), (2, C)]),
            poll(30, "consumer-3", 0, &[(3, "producer-1-1-9")]),
        ];
        assert!(Facts::new(&[], &fine, &final_log)
            .inconsistent_offsets()
            .is_empty());
        let acked_ok = acked(&[(A, 0), (B, 1)], Acks::All);
        assert!(Facts::new(&[], &acked_ok, &final_log)
            .inconsistent_offsets()
            .is_empty());
    }

    #[test]
    fn nonmonotonic_poll_fires_when_a_consumer_goes_back_without_an_assign() {
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, C)]))]);
        let back = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            poll(20, "consumer-1", 0, &[(1, B), (2, C)]),
        ];
        let found = Facts::new(&[], &back, &final_log).nonmonotonic_poll();
        one(&found, "offset 1 at 0.000s at position 2");
        assert_eq!(found[0].node.as_deref(), Some("consumer-1"));

        // A seek back (recorded as an Assign) and a restarted process are not backwards.
        let seek = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            assign(15, "consumer-1", 0, 1),
            poll(20, "consumer-1", 0, &[(1, B), (2, C)]),
            h(30, "consumer-1", Op::ClientStart { incarnation: 2 }),
            poll(40, "consumer-1", 0, &[(0, A)]),
            // Another consumer's positions are its own.
            assign(50, "consumer-2", 0, 0),
            poll(60, "consumer-2", 0, &[(0, A)]),
        ];
        let facts = Facts::new(&[], &seek, &final_log);
        assert!(facts.nonmonotonic_poll().is_empty());
        assert!(facts.poll_skip().is_empty());
    }

    #[test]
    fn poll_skip_fires_when_a_consumer_jumps_over_offsets_the_final_log_holds() {
        let d = "producer-1-1-3";
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, C), (3, d)]))]);
        let jump = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A)]),
            poll(20, "consumer-1", 0, &[(3, d)]),
        ];
        let found = Facts::new(&[], &jump, &final_log).poll_skip();
        one(&found, "skipping 2 offsets from 1");
        assert!(Facts::new(&[], &jump, &final_log)
            .nonmonotonic_poll()
            .is_empty());

        // A seek forward is not a skip; nor is jumping over offsets retention deleted.
        let seek = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A)]),
            assign(15, "consumer-1", 0, 3),
            poll(20, "consumer-1", 0, &[(3, d)]),
        ];
        assert!(Facts::new(&[], &seek, &final_log).poll_skip().is_empty());
        let retained = logs(vec![(1, flog(3, &[(3, d)]))]);
        assert!(Facts::new(&[], &jump, &retained).poll_skip().is_empty());
    }

    #[test]
    fn phantom_read_fires_on_a_polled_record_absent_from_the_final_log() {
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B)]))]);
        let read = [poll(10, "consumer-1", 0, &[(0, A), (1, B), (2, C)])];
        let found = Facts::new(&[], &read, &final_log).phantom_read();
        one(&found, "producer-1-1-2 at offset 2 polled by consumer-1");

        let fine = [poll(10, "consumer-1", 0, &[(0, A), (1, B)])];
        assert!(Facts::new(&[], &fine, &final_log).phantom_read().is_empty());
        // Below the final log's start: retention, not a phantom.
        let retained = logs(vec![(1, flog(3, &[]))]);
        assert!(Facts::new(&[], &read, &retained).phantom_read().is_empty());
    }

    #[test]
    fn reorder_fires_when_one_incarnations_records_leave_send_order() {
        let history = [send(0, A, Acks::All, true)];
        let out_of_order = logs(vec![(1, flog(0, &[(0, B), (1, C), (2, A)]))]);
        let found = Facts::new(&[], &history, &out_of_order).reorder();
        one(
            &found,
            "producer-1-1-0 (send 0) at offset 2 after send 2 at offset 1",
        );
        assert!(found[0].detail.contains("idempotent producers"));

        // A new incarnation counts from 0 again; a duplicate's second copy is not a reorder;
        // another producer interleaves freely.
        let fine = logs(vec![(
            1,
            flog(
                0,
                &[
                    (0, A),
                    (1, C),
                    (2, "producer-1-2-0"),
                    (3, A),
                    (4, "producer-2-1-0"),
                    (5, "producer-1-2-1"),
                ],
            ),
        )]);
        assert!(Facts::new(&[], &history, &fine).reorder().is_empty());
    }

    #[test]
    fn single_leader_per_epoch_fires_on_two_leaders_in_one_epoch() {
        let two = [leader(10, 1, 0, 3), leader(20, 2, 0, 3)];
        let found = Facts::new(&two, &[], &ReplicaLogs::new()).single_leader_per_epoch();
        one(&found, "leader epoch 3 has two leaders: broker-1");
        assert_eq!(found[0].at_ms, Some(0));

        // A follower told of another leader in the same epoch.
        let told = [leader(10, 1, 0, 3), follower(20, 3, 0, 2, 3)];
        let found = Facts::new(&told, &[], &ReplicaLogs::new()).single_leader_per_epoch();
        one(&found, "broker-2 (broker-3 `become-follower`");

        // Re-announcing after a restart, and followers agreeing, are fine.
        let fine = [
            leader(10, 1, 0, 3),
            follower(15, 2, 0, 1, 3),
            killed(20, 1),
            leader(30, 1, 0, 3),
            leader(40, 2, 0, 4),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .single_leader_per_epoch()
            .is_empty());
    }

    #[test]
    fn leader_epoch_monotonic_fires_when_epochs_go_back() {
        // Within one incarnation of broker-2.
        let back = [follower(10, 2, 0, 1, 5), follower(20, 2, 0, 1, 4)];
        let found = Facts::new(&back, &[], &ReplicaLogs::new()).leader_epoch_monotonic();
        one(&found, "from leader epoch 5 (at 0.000s) back to 4");
        // A controller wrote an older leader epoch over a newer one (announced late).
        let state = |at, broker, version, epoch| state(at, broker, version, epoch, 1);
        let stale = [state(10, 1, 3, 5), state(20, 2, 4, 4), state(5, 2, 2, 4)];
        let found = Facts::new(&stale, &[], &ReplicaLogs::new()).leader_epoch_monotonic();
        one(&found, "broker-2 wrote leader epoch 4 in partition epoch 4");
        // Announced out of order but written in order; and a zombie leader in an old epoch
        // (a paused broker applying a superseded LeaderAndIsr) is the data checks' business.
        let fine = [
            state(10, 1, 4, 6),
            state(20, 2, 3, 5),
            leader(30, 1, 0, 6),
            leader(40, 2, 0, 5),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .leader_epoch_monotonic()
            .is_empty());

        // A restart forgets the follower's epoch.
        let fine = [
            follower(10, 2, 0, 1, 5),
            killed(15, 2),
            follower(20, 2, 0, 1, 4),
            leader(30, 1, 0, 5),
            leader(40, 1, 0, 6),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .leader_epoch_monotonic()
            .is_empty());
    }

    #[test]
    fn a_partition_converged_only_while_a_live_leader_has_a_full_isr() {
        let expected = [(tp(0), 3)];
        let full = |at| {
            let announced = BrokerEvent::IsrChanged {
                partition: tp(0),
                isr: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                partition_epoch: 1,
            };
            event(at, "broker-1", announced)
        };
        let unhealthy = |events: &[Event], at| partitions_without_full_isr(events, &expected, at);
        let events = [leader(10, 1, 0, 1), full(20), killed(30, 1)];
        assert_eq!(unhealthy(&events, 15), vec![tp(0)], "ISR of one");
        assert!(unhealthy(&events, 25).is_empty(), "full ISR");
        assert_eq!(unhealthy(&events, 35), vec![tp(0)], "its leader died");
        let moved = [leader(10, 1, 0, 1), full(20), follower(30, 1, 0, 2, 2)];
        assert_eq!(unhealthy(&moved, 35), vec![tp(0)], "it follows now");
    }

    #[test]
    fn hw_monotonic_fires_when_a_replicas_hw_decreases_in_one_incarnation() {
        let back = [hw(10, 1, 0, 5), hw(20, 1, 0, 3)];
        let found = Facts::new(&back, &[], &ReplicaLogs::new()).hw_monotonic();
        one(&found, "HW went from 5 (at 0.000s) back to 3");

        // A restart (announced by the broker's own incarnation number) starts over; other
        // replicas and partitions are separate.
        let started =
            |at, incarnation| event(at, "broker-1", ShellEvent::BrokerStarted { incarnation });
        let fine = [
            started(1, 1),
            hw(10, 1, 0, 5),
            hw(11, 2, 0, 2),
            hw(12, 1, 1, 1),
            started(15, 2),
            hw(20, 1, 0, 3),
            hw(30, 1, 0, 3),
        ];
        assert!(Facts::new(&fine, &[], &ReplicaLogs::new())
            .hw_monotonic()
            .is_empty());
    }

    #[test]
    fn committed_prefix_agreement_fires_when_in_sync_replicas_disagree_below_the_hw() {
        let events = [
            leader(10, 1, 0, 1),
            follower(10, 2, 0, 1, 1),
            hw(20, 2, 0, 2),
            hw(30, 1, 0, 3),
        ];
        let diverged = logs(vec![
            (1, flog(0, &[(0, A), (1, B), (2, C)])),
            (2, flog(0, &[(0, A), (1, "producer-2-1-0"), (2, C)])),
        ]);
        let found = Facts::new(&events, &[], &diverged).committed_prefix_agreement();
        one(
            &found,
            "broker-1 and broker-2 disagree on 1 offsets below the committed HW 3",
        );
        assert!(found[0].detail.contains("first at offset 1"));

        // Disagreement above the committed HW, or a shorter follower, is fine.
        let tail = logs(vec![
            (1, flog(0, &[(0, A), (1, B), (2, C), (3, "producer-1-1-3")])),
            (2, flog(0, &[(0, A), (1, B), (2, C), (3, "producer-2-1-0")])),
        ]);
        assert!(Facts::new(&events, &[], &tail)
            .committed_prefix_agreement()
            .is_empty());
        let short = logs(vec![
            (1, flog(0, &[(0, A), (1, B), (2, C)])),
            (2, flog(0, &[(0, A)])),
        ]);
        assert!(Facts::new(&events, &[], &short)
            .committed_prefix_agreement()
            .is_empty());
        // A follower that has not fetched since it (re)joined may hold an unreconciled tail.
        let rejoined = [
            leader(10, 1, 0, 1),
            follower(10, 2, 0, 1, 1),
            hw(30, 1, 0, 3),
            killed(40, 2),
            follower(50, 2, 0, 1, 1),
        ];
        assert!(Facts::new(&rejoined, &[], &diverged)
            .committed_prefix_agreement()
            .is_empty());

        // A replica log that cannot be read back is reported.
        let broken = logs(vec![(
            1,
            FinalLog {
                error: Some("corrupt below the recovery point".into()),
                ..FinalLog::default()
            },
        )]);
        let found = Facts::new(&[], &[], &broken).committed_prefix_agreement();
        one(&found, "cannot be read back");
    }

    #[test]
    fn no_truncation_below_hw_fires_on_a_truncation_under_the_hw() {
        let truncate = |to, hw| {
            let announced = BrokerEvent::Truncate {
                partition: tp(0),
                from: Offset(6),
                to: Offset(to),
                hw: Offset(hw),
            };
            event(10, "broker-2", announced)
        };
        let found =
            Facts::new(&[truncate(2, 4)], &[], &ReplicaLogs::new()).no_truncation_below_hw();
        one(
            &found,
            "broker-2 truncated its log from 6 to 2 below its HW 4",
        );
        assert_eq!(found[0].node.as_deref(), Some("broker-2"));
        assert!(Facts::new(&[truncate(4, 4)], &[], &ReplicaLogs::new())
            .no_truncation_below_hw()
            .is_empty());
    }

    fn elected(at_us: u64, broker: u32, epoch: u32) -> Event {
        let announced = ControllerEvent::ControllerElected {
            controller_epoch: epoch,
        };
        event(at_us, &self::broker(broker), announced)
    }

    #[test]
    fn controller_checks_fire_on_two_controllers_and_on_epochs_going_back() {
        let none = ReplicaLogs::new();
        let two = [elected(10, 1, 1), elected(20, 2, 1)];
        let facts = Facts::new(&two, &[], &none);
        one(
            &facts.single_controller_per_epoch(),
            "controller epoch 1 has two controllers: broker-1",
        );
        assert!(facts.controller_epoch_monotonic().is_empty());

        let back = [elected(10, 1, 2), elected(20, 2, 1)];
        let facts = Facts::new(&back, &[], &none);
        one(
            &facts.controller_epoch_monotonic(),
            "broker-2 was elected controller in epoch 1",
        );
        assert!(facts.single_controller_per_epoch().is_empty());

        let fine = [elected(10, 1, 1), elected(20, 2, 2), elected(30, 1, 3)];
        let facts = Facts::new(&fine, &[], &none);
        assert!(facts.single_controller_per_epoch().is_empty());
        assert!(facts.controller_epoch_monotonic().is_empty());
    }

    #[test]
    fn controller_epoch_monotonic_fires_on_a_state_written_by_an_older_controller() {
        let none = ReplicaLogs::new();
        let state = |at, broker, version, controller_epoch| {
            state(at, broker, version, version, controller_epoch)
        };
        // A zombie of epoch 1 writes over the state its successor of epoch 2 wrote.
        let zombie = [state(10, 1, 3, 1), state(20, 2, 4, 2), state(30, 1, 5, 1)];
        one(
            &Facts::new(&zombie, &[], &none).controller_epoch_monotonic(),
            "broker-1 wrote partition epoch 5 as controller epoch 1 (at 0.000s), after broker-2 \
             wrote partition epoch 4 as controller epoch 2",
        );
        // Announced out of order (a paused controller), written in order: fine.
        let fine = [state(10, 2, 5, 2), state(20, 1, 4, 1), state(30, 2, 6, 2)];
        assert!(Facts::new(&fine, &[], &none)
            .controller_epoch_monotonic()
            .is_empty());
    }

    /// A scratch run directory, removed on drop.
    struct TempRun(std::path::PathBuf);

    impl Drop for TempRun {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_replica(run: &Path, broker: u32, values: &[&str]) {
        let disk = crate::disk::FsDisk::new(run.join(format!("broker-{broker}"))).unwrap();
        let dir = Path::new(LOG_DIR).join(tp(0).dir_name());
        let config = LogConfig {
            retention_ms: None,
            ..LogConfig::default()
        };
        let (mut log, _) = Log::open(disk, &dir, config).unwrap();
        for value in values {
            let mut batch = BatchBuilder::new(BatchMeta::default());
            batch.push(0, None, Some(value.as_bytes()), &[]);
            log.append(&mut batch).unwrap();
        }
        log.flush().unwrap();
    }

    #[test]
    fn run_reads_the_replica_logs_from_disk_and_applies_the_checks_of_the_workload() {
        let run =
            TempRun(std::env::temp_dir().join(format!("ksim-check-kafka-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&run.0);
        write_replica(&run.0, 1, &[A, B]);
        write_replica(&run.0, 2, &[A]);

        let text =
            "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n[[writer]]\ncount = 1\nrate = 1\n";
        let mut scenario = crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap();
        scenario.cluster.brokers = 3;
        scenario.topics.push(crate::scenario::Topic {
            name: "orders".into(),
            partitions: 1,
            replication_factor: 2,
            min_insync_replicas: None,
        });
        let history = acked(&[(A, 0), (B, 1)], Acks::All);
        let events = [leader(10, 2, 0, 1)];

        // Without producers or consumers only the replication and control checks apply.
        let results = run_for(&scenario, &run.0, &events, &history);
        let names: Vec<&str> = results.iter().map(|r| r.check).collect();
        assert_eq!(
            names,
            [
                "single-leader-per-epoch",
                "leader-epoch-monotonic",
                "hw-monotonic",
                "committed-prefix-agreement",
                "no-truncation-below-hw",
                "single-controller-per-epoch",
                "controller-epoch-monotonic"
            ]
        );
        assert!(results.iter().all(CheckResult::passed));

        scenario.producers.push(crate::scenario::ProducerSpec {
            count: 1,
            topic: "orders".into(),
            rate: 10,
            keys: 0,
            config: Default::default(),
        });
        let results = run_for(&scenario, &run.0, &events, &history);
        let lost = results.iter().find(|r| r.check == "lost-write").unwrap();
        one(&lost.violations, "producer-1-1-1");
        assert!(lost.violations[0]
            .detail
            .contains("broker-2, the final leader"));
        for check in ["duplicate", "inconsistent-offsets", "reorder"] {
            assert!(results.iter().any(|r| r.check == check), "{check} runs");
        }
        assert!(!results.iter().any(|r| r.check == "phantom-read"));
        // broker-3 hosts no replica; broker-1's longer log alone passes.
        let results = run_for(&scenario, &run.0, &[], &history);
        assert!(results.iter().all(CheckResult::passed), "{results:#?}");
    }

    fn run_for(
        scenario: &crate::scenario::Scenario,
        run_dir: &Path,
        events: &[Event],
        history: &[HistoryEntry],
    ) -> Vec<CheckResult> {
        let input = CheckInput {
            scenario,
            events,
            history,
            run_dir,
        };
        let logs = read_replica_logs(&input);
        run(&input, &Facts::new(events, history, &logs))
    }
}
