//! Checks of the brokers: what producers were told, what consumers read, what brokers
//! announced, against the partition logs the replicas left on disk.
//!
//! Owns: which broker checks run ([`run`]), reading the replica logs back, and [`Facts`]:
//! everything the broker checks read, indexed once — the history, the brokers' events in
//! their incarnations (`check::broker_events`) and each partition's *final log*. The checks
//! themselves live by family: `check::client_history` (`lost-write`, `duplicate`,
//! `inconsistent-offsets`, `nonmonotonic-poll`, `poll-skip`, `phantom-read`, `reorder`),
//! `check::replication` (`single-leader-per-epoch`, `leader-epoch-monotonic`,
//! `hw-monotonic`, `committed-prefix-agreement`, `no-truncation-below-hw`) and
//! `check::control` (`single-controller-per-epoch`, `controller-epoch-monotonic`). They are
//! pure functions of the recorded history, the recorded events and the final logs read back
//! with the log engine — never of a broker's memory — so a broker bug cannot hide itself
//! from them. What brokers announce is typed: `broker::server::BrokerEvent`,
//! `broker::controller::ControllerEvent` (their docs are the contract).
//!
//! **Final logs.** Broker `n` is node `broker-<n>`; its data directory `<run>/broker-<n>/`
//! holds one log engine directory per replica it hosts, `kafka-logs/<topic>-<partition>/`
//! (Kafka's own layout). A record's value is the produced value (UTF-8), its key the
//! optional record key. A directory that does not exist means the broker hosts no replica.
//!
//! # Which log is "the final log"
//!
//! Per partition: the log of the *final leader*, the broker that announced `become-leader`
//! with the greatest leader epoch in its last incarnation without a later `become-follower`
//! — the events tell who leads at the end. If no broker does, the longest readable replica
//! log. Unreadable logs are never chosen; they are reported by `committed-prefix-agreement`.
//!
//! Each anomaly is reported under one check, so a bug-zoo scenario fails only the check it
//! names.

use super::broker_events::BrokerEvents;
use super::toolkit::FxMap;
use super::{read_final_log, result, CheckInput, CheckResult, FinalLog};
use crate::broker::{Acks, TopicPartition};
use crate::history::{Event, HistoryEntry, Op, SendOutcome, WorldEvent};
use crate::scenario::plan::log_config;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::Path;

/// A broker's directory of partition logs, inside its node directory.
pub const LOG_DIR: &str = "kafka-logs";

/// Every replica's final log: partition → broker node name → log.
pub type ReplicaLogs = BTreeMap<TopicPartition, BTreeMap<String, FinalLog>>;

/// Reads every replica log the scenario's brokers left for the scenario's topics.
pub fn read_replica_logs(input: &CheckInput<'_>) -> ReplicaLogs {
    let scenario = input.scenario;
    let config = log_config(&scenario.cluster.broker);
    let mut logs = ReplicaLogs::new();
    for n in 1..=scenario.cluster.brokers {
        let name = format!("broker-{n}");
        let disk = input.nodes.disk(&name);
        for topic in &scenario.topics {
            for p in 0..topic.partitions {
                let tp = TopicPartition::new(&topic.name, p);
                let dir = Path::new(LOG_DIR).join(tp.dir_name());
                if disk.is_dir(&dir) {
                    let mut log = read_final_log(disk.clone(), &dir, config.clone());
                    let replicas = logs.entry(tp).or_default();
                    // Replicas mostly hold the same records: store them once.
                    if !replicas.values().any(|other| log.share_with(other)) {
                        for other in replicas.values_mut() {
                            other.share_with(&log);
                        }
                    }
                    replicas.insert(name.clone(), log);
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
    // A processor produces and consumes.
    let processors = !input.scenario.processors.is_empty();
    let producers = !input.scenario.producers.is_empty() || processors;
    let consumers = !input.scenario.consumers.is_empty() || processors;
    let mut results = Vec::new();
    if producers {
        results.push(result("lost-write", facts.lost_write()));
        let mut duplicate = facts.duplicate();
        // Each processor node with its group: exactly-once is per group (two groups reading
        // one topic each write an output of every input record).
        let readers = input.scenario.reader_nodes();
        let nodes = readers
            .iter()
            .filter(|(name, _)| name.starts_with("processor-"))
            .filter_map(|(name, spec)| Some((name.as_str(), spec.group.as_deref()?)))
            .collect();
        duplicate.extend(facts.processed_twice(&nodes));
        results.push(result("duplicate", duplicate));
    }
    if producers || consumers {
        results.push(result("inconsistent-offsets", facts.inconsistent_offsets()));
    }
    if consumers {
        let (backwards, skips) = facts.walk_polls();
        results.push(result("nonmonotonic-poll", backwards));
        results.push(result("poll-skip", skips));
        results.push(result("phantom-read", facts.phantom_read()));
    }
    if producers {
        results.push(result("reorder", facts.reorder()));
    }
    if input.scenario.has_transactional_producers() {
        results.push(result("torn-transaction", facts.torn_transaction()));
        results.push(result("converges", facts.open_transactions()));
    }
    let read_committed = input.scenario.read_committed_consumers();
    if !read_committed.is_empty() {
        let nodes = read_committed.iter().map(String::as_str).collect();
        // (`facts.read_committed` is the same list, set by `run_checks`.)
        let [aborted, open] = facts.committed_reads(&nodes);
        results.push(result("aborted-read", aborted));
        results.push(result("read-uncommitted", open));
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

/// A partition's id in [`Facts`]: its rank among the partitions the record names, so ids
/// sort as the partitions do.
pub(super) type PartId = u32;

/// A record value's id in [`Facts`] (the order of ids means nothing).
pub(super) type ValueId = u32;

/// What the history says about one produced value.
#[derive(Clone, Copy)]
pub(super) struct Sent {
    pub(super) acks: Acks,
    pub(super) idempotent: bool,
}

/// An acknowledged send: a `SendReturn` with `SendOutcome::Ok`.
#[derive(Clone, Copy)]
pub(super) struct Ack<'a> {
    pub(super) entry: &'a HistoryEntry,
    pub(super) value: ValueId,
    pub(super) part: PartId,
    pub(super) offset: u64,
}

/// One record a poll returned.
#[derive(Clone, Copy)]
pub(super) struct Polled<'a> {
    pub(super) entry: &'a HistoryEntry,
    pub(super) part: PartId,
    pub(super) offset: u64,
    pub(super) value: ValueId,
}

/// A producer incarnation, as [`Facts::send_number`] names it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Stream<'a> {
    Id(usize),
    Name(&'a str),
}

/// The log a partition's checks compare against, and how it was chosen.
pub(super) struct Reference<'a> {
    pub(super) broker: &'a str,
    pub(super) log: &'a FinalLog,
    pub(super) why: &'static str,
    /// The value of each record of `log`, in log order.
    pub(super) ids: Vec<ValueId>,
    /// For a log whose offsets do not only go up (hand-made; never one the engine wrote):
    /// `(offset, value)` ascending by offset, of records at one offset the last. `None`:
    /// the log's own offsets and `ids` are that already (no copy).
    disordered: Option<Vec<(u64, ValueId)>>,
}

impl Reference<'_> {
    pub(super) fn describe(&self) -> String {
        format!("final log of {}, {}", self.broker, self.why)
    }

    /// How many offsets the log holds.
    fn held(&self) -> usize {
        self.disordered.as_ref().map_or(self.ids.len(), Vec::len)
    }

    /// How many of the held offsets are below `offset`.
    fn below(&self, offset: u64) -> usize {
        match &self.disordered {
            None => self.log.count_below(offset),
            Some(at) => at.partition_point(|&(o, _)| o < offset),
        }
    }

    /// The `i`th held offset and its value.
    fn nth(&self, i: usize) -> Option<(u64, ValueId)> {
        match &self.disordered {
            None => self.ids.get(i).map(|&v| (self.log.offset(i), v)),
            Some(at) => at.get(i).copied(),
        }
    }

    /// The value the log holds at `offset`.
    pub(super) fn value_at(&self, offset: u64) -> Option<ValueId> {
        self.nth(self.below(offset))
            .filter(|&(o, _)| o == offset)
            .map(|(_, v)| v)
    }

    /// How many offsets in `from..to` the log holds, and the first of them.
    pub(super) fn held_between(&self, from: u64, to: u64) -> (usize, Option<u64>) {
        let lo = self.below(from).min(self.held());
        let hi = self.below(to).max(lo);
        (hi - lo, self.nth(lo).filter(|_| hi > lo).map(|(o, _)| o))
    }
}

/// Everything the broker checks read, indexed once: one pass over the history and the
/// replica logs interns every partition and record value as a small integer, so the
/// checks walk `Vec`s of ids instead of maps keyed by strings.
pub struct Facts<'a> {
    /// The client history but its sends and their returns (most of it): what the
    /// consumer and group checks walk, in history order.
    pub(super) others: Vec<&'a HistoryEntry>,
    /// Every replica's final log.
    pub(super) logs: &'a ReplicaLogs,
    /// The brokers' events in their incarnations.
    pub(super) events: BrokerEvents<'a>,
    /// When the world stopped the run (or the last event).
    pub(super) stop_us: u64,
    /// The consumers reading with `isolation.level = read_committed` (set by the caller;
    /// none by default): records of aborted transactions are not theirs to read.
    pub(super) read_committed: Vec<String>,
    /// Every partition the history or the logs name, by id (ascending).
    parts: Vec<&'a TopicPartition>,
    part_ids: FxMap<&'a TopicPartition, PartId>,
    /// Every value the polls, the acknowledgements or the final logs hold, by id.
    values: Vec<&'a str>,
    /// Each value's stream and number, if it is numbered (`<stream>-<n>`), by value.
    value_streams: Vec<(u32, u32)>,
    /// The streams of numbered values, by name.
    stream_ids: FxMap<&'a str, usize>,
    /// Each stream's value ids by number.
    streams: Vec<Vec<ValueId>>,
    /// The ids of the values that are not numbered.
    value_ids: FxMap<&'a str, ValueId>,
    /// Whether each stream is a producer incarnation `<producer>-<incarnation>`.
    incarnations: Vec<bool>,
    /// The history, for what the history says about a value sent: read on demand (a
    /// violation's wording needs it), not for every send.
    history: &'a [HistoryEntry],
    /// What the history says about each value sent (its last `Send`), by value, once
    /// asked.
    sends: OnceCell<Vec<Option<Sent>>>,
    /// Every acknowledged send, in history order.
    pub(super) acks: Vec<Ack<'a>>,
    /// Every polled record, in history order.
    pub(super) polls: Vec<Polled<'a>>,
    /// Each partition's final log, by partition.
    references: Vec<Option<Reference<'a>>>,
    /// Where each value sits in the final logs: `held[held_from[v]..held_from[v + 1]]`
    /// are `(partition, offset)`, by partition, then in log order.
    held_from: Vec<u32>,
    held: Vec<(PartId, u64)>,
}

/// Interns partitions (first-seen ids, ranked later) and values.
#[derive(Default)]
struct Interner<'a> {
    parts: Vec<&'a TopicPartition>,
    part_ids: FxMap<&'a TopicPartition, PartId>,
    values: Vec<&'a str>,
    /// Each value's stream and number, if it is numbered.
    value_streams: Vec<(u32, u32)>,
    /// Numbered values (`<stream>-<n>`, as producers write them: the stream is the
    /// producer incarnation): each stream's value ids by `n`, so looking one up touches a
    /// small map of streams and a dense array instead of a large hash table.
    streams: Vec<Vec<ValueId>>,
    stream_ids: FxMap<&'a str, usize>,
    stream_names: Vec<&'a str>,
    /// The streams of the last numbered values, by name.
    recent_streams: [Option<(&'a str, usize)>; 4],
    /// Every other value.
    value_ids: FxMap<&'a str, ValueId>,
}

/// The greatest `n` of a numbered value interned by number (bounds a stream's array).
const NUMBERED_MAX: u64 = 1 << 20;

/// No value (in a stream's array).
const NO_VALUE: ValueId = ValueId::MAX;

/// No stream (a value that is not numbered).
pub(super) const NO_STREAM: u32 = u32::MAX;

/// `<stream>-<n>` with `n` written canonically (decimal digits, no leading zero) and at
/// most [`NUMBERED_MAX`], split; `None` for any other value. One string, one split: two
/// values split the same only if they are the same string.
fn numbered(value: &str) -> Option<(&str, usize)> {
    let (stream, n) = split_at_last_dash(value)?;
    let digits = n.as_bytes();
    if digits.is_empty() || digits.len() > 7 || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut number = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        number = number * 10 + u64::from(d - b'0');
    }
    (number <= NUMBERED_MAX).then_some((stream, number as usize))
}

/// `value.rsplit_once('-')`, by a plain scan back from the end: the dash of a value is a
/// few bytes from its end, and `rsplit_once` pays for `memrchr`'s setup every time.
pub(super) fn split_at_last_dash(value: &str) -> Option<(&str, &str)> {
    let dash = value.bytes().rev().position(|b| b == b'-')?;
    let at = value.len() - dash - 1;
    Some((&value[..at], &value[at + 1..]))
}

impl<'a> Interner<'a> {
    fn part(&mut self, tp: &'a TopicPartition) -> PartId {
        let next = self.parts.len();
        *self.part_ids.entry(tp).or_insert_with(|| {
            self.parts.push(tp);
            PartId::try_from(next).expect("fewer than 2^32 partitions")
        })
    }

    fn value(&mut self, value: &'a str) -> ValueId {
        let next = ValueId::try_from(self.values.len()).expect("fewer than 2^32 values");
        let Some((stream, n)) = numbered(value) else {
            return *self.value_ids.entry(value).or_insert_with(|| {
                self.values.push(value);
                self.value_streams.push((NO_STREAM, 0));
                next
            });
        };
        let s = self.stream(stream);
        let ids = &mut self.streams[s];
        if ids.len() <= n {
            ids.resize(n + 1, NO_VALUE);
        }
        if ids[n] == NO_VALUE {
            ids[n] = next;
            self.values.push(value);
            self.value_streams.push((s as u32, n as u32));
        }
        ids[n]
    }

    /// The id of stream `name`: producers' values alternate between a few streams.
    fn stream(&mut self, name: &'a str) -> usize {
        if let Some((_, s)) = self
            .recent_streams
            .iter()
            .flatten()
            .find(|(n, _)| *n == name)
        {
            return *s;
        }
        let count = self.streams.len();
        let s = *self.stream_ids.entry(name).or_insert(count);
        if s == count {
            self.streams.push(Vec::new());
            self.stream_names.push(name);
        }
        self.recent_streams.rotate_right(1);
        self.recent_streams[0] = Some((name, s));
        s
    }
}

impl<'a> Facts<'a> {
    /// Indexes the events, the history and the replica logs.
    pub fn new(events: &'a [Event], history: &'a [HistoryEntry], logs: &'a ReplicaLogs) -> Self {
        let mut interned = Interner::default();
        for tp in logs.keys() {
            interned.part(tp);
        }
        // Sized up front: these are the checks' largest tables, and doubling would leave
        // up to half of each unused while the checks hold everything else.
        let (mut ack_count, mut poll_count, mut other_count) = (0, 0, 0);
        for entry in history {
            match &entry.op {
                Op::SendReturn {
                    outcome: SendOutcome::Ok { .. },
                    ..
                } => ack_count += 1,
                Op::Poll { records, .. } => poll_count += records.len(),
                _ => {}
            }
            other_count +=
                usize::from(!matches!(entry.op, Op::Send { .. } | Op::SendReturn { .. }));
        }
        let mut acks = Vec::with_capacity(ack_count);
        let mut polls = Vec::with_capacity(poll_count);
        let mut others = Vec::with_capacity(other_count);
        for entry in history {
            if !matches!(entry.op, Op::Send { .. } | Op::SendReturn { .. }) {
                others.push(entry);
            }
            match &entry.op {
                Op::SendReturn {
                    value,
                    outcome: SendOutcome::Ok { partition, offset },
                } => acks.push(Ack {
                    entry,
                    value: interned.value(value),
                    part: interned.part(partition),
                    offset: *offset,
                }),
                Op::Poll { partition, records } => {
                    let part = interned.part(partition);
                    for (offset, value) in records {
                        polls.push(Polled {
                            entry,
                            part,
                            offset: *offset,
                            value: interned.value(value),
                        });
                    }
                }
                Op::Assign { partitions } => {
                    for (tp, _) in partitions {
                        interned.part(tp);
                    }
                }
                Op::GroupAssign {
                    partitions,
                    awaiting,
                    ..
                } => {
                    for tp in partitions.iter().map(|(tp, _)| tp).chain(awaiting.iter()) {
                        interned.part(tp);
                    }
                }
                Op::Commit { offsets, .. } => {
                    for (tp, _) in offsets.iter() {
                        interned.part(tp);
                    }
                }
                _ => {}
            }
        }
        // Rank the partitions: ids sort as the partitions do.
        let mut parts = interned.parts.clone();
        parts.sort();
        let mut rank = vec![0; parts.len()];
        for (id, tp) in parts.iter().enumerate() {
            rank[interned.part_ids[tp] as usize] = id as PartId;
        }
        for ack in &mut acks {
            ack.part = rank[ack.part as usize];
        }
        for poll in &mut polls {
            poll.part = rank[poll.part as usize];
        }
        let part_ids = parts
            .iter()
            .enumerate()
            .map(|(id, tp)| (*tp, id as PartId))
            .collect();
        let broker_events = BrokerEvents::new(events);
        let stop_us = events
            .iter()
            .rfind(|e| matches!(e.announced.world(), Some(WorldEvent::Stop {})))
            .map_or_else(|| events.last().map_or(0, |e| e.at_us), |e| e.at_us);
        let mut references: Vec<Option<Reference<'a>>> = parts.iter().map(|_| None).collect();
        let leaders = broker_events.final_leaders();
        for (tp, replicas) in logs {
            let Some((broker, log, why)) = choose_reference(leaders.get(tp), replicas) else {
                continue;
            };
            let ids: Vec<ValueId> = log.records().map(|(_, v)| interned.value(v)).collect();
            let disordered = (!log.ascending()).then(|| {
                let mut at: Vec<(u64, ValueId)> = log
                    .records()
                    .zip(&ids)
                    .map(|((offset, _), id)| (offset, *id))
                    .collect();
                // Of records at one offset, the last (as a map from offsets would keep).
                at.reverse();
                at.sort_by_key(|&(offset, _)| offset);
                at.dedup_by_key(|&mut (offset, _)| offset);
                at
            });
            let part = part_ids_of(&parts, tp);
            references[part as usize] = Some(Reference {
                broker,
                log,
                why,
                ids,
                disordered,
            });
        }
        // Where each value sits, by counting sort: by partition, then log order.
        let mut held_from = vec![0u32; interned.values.len() + 1];
        for r in references.iter().flatten() {
            for &v in &r.ids {
                held_from[v as usize + 1] += 1;
            }
        }
        for i in 1..held_from.len() {
            held_from[i] += held_from[i - 1];
        }
        let mut next: Vec<u32> = held_from[..interned.values.len()].to_vec();
        let mut held = vec![(0, 0); *held_from.last().expect("one more") as usize];
        for (part, r) in references.iter().enumerate() {
            let Some(r) = r else { continue };
            for ((offset, _), &v) in r.log.records().zip(&r.ids) {
                held[next[v as usize] as usize] = (part as PartId, offset);
                next[v as usize] += 1;
            }
        }
        Facts {
            read_committed: Vec::new(),
            others,
            logs,
            events: broker_events,
            stop_us,
            parts,
            part_ids,
            values: interned.values,
            value_streams: interned.value_streams,
            incarnations: interned
                .stream_names
                .iter()
                .map(|name| {
                    split_at_last_dash(name)
                        .is_some_and(|(_, incarnation)| incarnation.parse::<u64>().is_ok())
                })
                .collect(),
            stream_ids: interned.stream_ids,
            streams: interned.streams,
            value_ids: interned.value_ids,
            history,
            sends: OnceCell::new(),
            acks,
            polls,
            references,
            held_from,
            held,
        }
    }

    /// The partition of id `part`.
    /// The client history.
    pub(super) fn history(&self) -> &'a [HistoryEntry] {
        self.history
    }

    pub(super) fn part(&self, part: PartId) -> &'a TopicPartition {
        self.parts[part as usize]
    }

    /// The id of `tp`, if the history or the logs name it.
    pub(super) fn part_id(&self, tp: &TopicPartition) -> Option<PartId> {
        self.part_ids.get(tp).copied()
    }

    /// The partitions the history or the logs name, with their ids, ascending.
    pub(super) fn parts(&self) -> impl Iterator<Item = (PartId, &'a TopicPartition)> + '_ {
        self.parts
            .iter()
            .enumerate()
            .map(|(i, tp)| (i as PartId, *tp))
    }

    /// The value of id `value`.
    pub(super) fn value(&self, value: ValueId) -> &'a str {
        self.values[value as usize]
    }

    /// How many partitions the facts know.
    pub(super) fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// How many values the facts know.
    pub(super) fn value_count(&self) -> usize {
        self.values.len()
    }

    /// What the history says about sending `value` (its last `Send`).
    pub(super) fn sent(&self, value: ValueId) -> Option<Sent> {
        let sends = self.sends.get_or_init(|| {
            let mut sends = vec![None; self.values.len()];
            for entry in self.history {
                if let Op::Send {
                    value,
                    acks,
                    idempotent,
                    ..
                } = &entry.op
                {
                    if let Some(id) = self.value_id(value) {
                        sends[id as usize] = Some(Sent {
                            acks: *acks,
                            idempotent: *idempotent,
                        });
                    }
                }
            }
            sends
        });
        sends[value as usize]
    }

    /// The id of `value`, if the polls, the acknowledgements or the final logs hold it.
    fn value_id(&self, value: &str) -> Option<ValueId> {
        let Some((stream, n)) = numbered(value) else {
            return self.value_ids.get(value).copied();
        };
        let s = *self.stream_ids.get(stream)?;
        self.streams[s].get(n).copied().filter(|&id| id != NO_VALUE)
    }

    /// The producer incarnation (`<producer>-<incarnation>`) and send number of `value`,
    /// if it is numbered so: an id for the incarnation's stream, or its name if no
    /// numbered value came from it.
    pub(super) fn send_number(&self, value: ValueId) -> Option<(Stream<'a>, u64)> {
        match self.value_streams[value as usize] {
            (NO_STREAM, _) => {
                let text = self.value(value);
                let (rest, n) = split_at_last_dash(text)?;
                let (_producer, incarnation) = split_at_last_dash(rest)?;
                incarnation.parse::<u64>().ok()?;
                let n = n.parse().ok()?;
                Some(match self.stream_ids.get(rest) {
                    Some(&s) => (Stream::Id(s), n),
                    None => (Stream::Name(rest), n),
                })
            }
            (s, n) => {
                self.incarnations[s as usize].then_some((Stream::Id(s as usize), u64::from(n)))
            }
        }
    }

    /// How many streams of numbered values there are.
    pub(super) fn stream_count(&self) -> usize {
        self.incarnations.len()
    }

    /// The final log of partition `part`.
    pub(super) fn reference_of(&self, part: PartId) -> Option<&Reference<'a>> {
        self.references.get(part as usize).and_then(Option::as_ref)
    }

    /// The final logs, by partition.
    pub(super) fn references(
        &self,
    ) -> impl Iterator<Item = (PartId, &'a TopicPartition, &Reference<'a>)> + '_ {
        self.references
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i as PartId, self.parts[i], r.as_ref()?)))
    }

    /// Every place a final log holds `value`: `(partition, offset)`, by partition, then in
    /// log order.
    pub(super) fn held(&self, value: ValueId) -> &[(PartId, u64)] {
        let v = value as usize;
        match (self.held_from.get(v), self.held_from.get(v + 1)) {
            (Some(&from), Some(&to)) => &self.held[from as usize..to as usize],
            _ => &[],
        }
    }

    /// The offsets holding `value` in the final log of `part`, in log order.
    pub(super) fn offsets(&self, part: PartId, value: ValueId) -> impl Iterator<Item = u64> + '_ {
        self.held(value)
            .iter()
            .filter(move |(p, _)| *p == part)
            .map(|(_, offset)| *offset)
    }

    /// Whether the final log of `part` holds `value`.
    pub(super) fn holds(&self, part: PartId, value: ValueId) -> bool {
        self.held(value).iter().any(|(p, _)| *p == part)
    }

    /// The final log of `tp` the checks judge against.
    pub fn reference(&self, tp: &TopicPartition) -> Option<&FinalLog> {
        Some(self.reference_of(self.part_id(tp)?)?.log)
    }
}

/// The id of `tp` among the sorted `parts`.
fn part_ids_of(parts: &[&TopicPartition], tp: &TopicPartition) -> PartId {
    parts.binary_search(&tp).expect("an interned partition") as PartId
}

/// The final log of a partition: the final leader's if readable, else the longest readable
/// replica log.
fn choose_reference<'a>(
    leader: Option<&String>,
    replicas: &'a BTreeMap<String, FinalLog>,
) -> Option<(&'a str, &'a FinalLog, &'static str)> {
    let readable = |name: &str| replicas.get(name).filter(|log| log.error.is_none());
    leader
        .and_then(|leader| {
            let (name, log) = replicas.get_key_value(leader.as_str())?;
            readable(name).map(|_| (name.as_str(), log, "the final leader"))
        })
        .or_else(|| {
            replicas
                .iter()
                .filter(|(_, log)| log.error.is_none())
                .max_by_key(|(name, log)| (log.log_end, std::cmp::Reverse(*name)))
                .map(|(name, log)| (name.as_str(), log, "the longest replica log"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::{acked, leader, one, tp, A, B};
    use crate::log::{BatchBuilder, BatchMeta, Log, LogConfig};

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
            txn_records: 10,
            txn_abort_percent: 0,
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
            nodes: crate::check::NodeData::Dir(run_dir),
        };
        let logs = read_replica_logs(&input);
        run(&input, &Facts::new(events, history, &logs))
    }
}
