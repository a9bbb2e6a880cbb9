//! The shells of producers and consumers: connections, timers and the history around
//! [`ProducerCore`] and [`ConsumerCore`].
//!
//! Owns: opening the connections the cores ask for ([`kafka_net::open_link`], one per
//! [`ConnectionId`]), ticking the cores, pacing the producer's sends at the configured rate,
//! and recording exactly what the client was told: `Send` before a record is handed to the
//! producer, `SendReturn` when its callback fires, `TxnBegin`, `TxnEnd` and `TxnEndReturn`
//! as a transactional producer's core reports them, `Assign` and `Poll` for a consumer. A
//! transactional producer sends only inside a transaction (a send slot outside one is
//! skipped) and commits its open transaction when the run drains.
//! Record values are unique in the run: `<node>-<incarnation>-<n>`.

use super::kafka_net::{open_link, LinkEvent};
use super::net::{node_addr, Hello, KIND_BROKER};
use crate::broker::proto::Request;
use crate::broker::{Acks, BrokerId};
use crate::client::consumer::{ConsumerAction, ConsumerConfig, ConsumerCore};
use crate::client::network::{ConnectionId, NetAction};
use crate::client::producer::{ProducerAction, ProducerConfig, ProducerCore};
use crate::history::{CompactString, Op as HistoryOp, SendOutcome};
use crate::node::progress::Progress;
use crate::node::recorder::sim_instant;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::node::run_rng;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often the cores are ticked (their timeouts and backoffs are checked).
pub(super) const TICK: Duration = Duration::from_millis(10);

pub(super) fn now_ms() -> u64 {
    sim_now_us() / 1000
}

/// The open connections of a client, by connection id.
pub(super) struct Links {
    name: String,
    inbox: UnboundedSender<LinkEvent>,
    open: BTreeMap<u64, UnboundedSender<Request>>,
}

impl Links {
    /// No connections yet; link events arrive on the returned receiver.
    pub(super) fn new(name: &str) -> (Links, UnboundedReceiver<LinkEvent>) {
        let (inbox, rx) = unbounded_channel();
        let links = Links {
            name: name.to_string(),
            inbox,
            open: BTreeMap::new(),
        };
        (links, rx)
    }

    pub(super) fn perform(&mut self, action: NetAction) {
        match action {
            NetAction::Connect { broker, connection } => {
                let addr = node_addr(KIND_BROKER, broker.0);
                let hello = Hello::KafkaClient {
                    name: self.name.clone(),
                };
                open_link(connection.0, 0, addr, hello, self.inbox.clone(), |e| e);
            }
            NetAction::Send {
                connection,
                request,
                ..
            } => {
                // A connection that already closed reports it; the core retries.
                if let Some(tx) = self.open.get(&connection.0) {
                    let _ = tx.send(request);
                }
            }
            NetAction::Close { connection, .. } => {
                self.open.remove(&connection.0);
            }
        }
    }
}

/// What a client core gets from its connections.
pub(super) enum Delivered {
    Connected(ConnectionId),
    Response(ConnectionId, crate::broker::proto::Response),
    Closed(ConnectionId),
}

/// Turns a link event into what the core is told (and keeps the senders).
pub(super) fn deliver(links: &mut Links, event: LinkEvent) -> Delivered {
    match event {
        LinkEvent::Open { link, tx, .. } => {
            links.open.insert(link, tx);
            Delivered::Connected(ConnectionId(link))
        }
        LinkEvent::Response { link, response, .. } => {
            Delivered::Response(ConnectionId(link), response)
        }
        LinkEvent::Closed { link, .. } => {
            links.open.remove(&link);
            Delivered::Closed(ConnectionId(link))
        }
    }
}

/// A producer node; shared by all its incarnations.
pub struct ProducerNode {
    /// `producer-<n>`.
    pub name: String,
    /// The client config (topic, bootstrap brokers, acks, idempotence, ...).
    pub config: ProducerConfig,
    /// Records per simulated second.
    pub rate: u32,
    /// Distinct keys; 0 = no keys.
    pub keys: u32,
    /// Where the history goes.
    pub recorder: Recorder,
    /// Liveness probes.
    pub progress: Progress,
    /// How many times it has started.
    pub incarnations: AtomicU64,
}

impl ProducerNode {
    fn history(&self, op: HistoryOp) {
        self.recorder.history(&self.name, op);
    }

    /// One incarnation: a fresh producer sending at its rate until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        self.history(HistoryOp::ClientStart { incarnation });
        let mut rng = run_rng();
        let mut core = ProducerCore::new(self.config.clone());
        let (mut links, mut inbox) = Links::new(&self.name);
        let period = Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)));
        let mut next_tick = sim_instant() + TICK.mul_f64(rng.gen_range(0.0..1.0));
        let mut next_send = sim_instant() + period.mul_f64(rng.gen_range(0.0..1.0));
        let mut sent = 0u64;
        let mut due = crate::node::Deadline::new(next_tick.min(next_send));
        // What the liveness probe last heard (told again only when it changes).
        let mut reported_pending = None;
        loop {
            due.set(next_tick.min(next_send));
            tokio::select! {
                biased;
                event = inbox.recv() => {
                    let Some(event) = event else { return };
                    let now = now_ms();
                    match deliver(&mut links, event) {
                        Delivered::Connected(c) => core.on_connected(c, now),
                        Delivered::Response(c, r) => core.on_response(c, r, now, &mut rng),
                        Delivered::Closed(c) => core.on_closed(c, now),
                    }
                }
                _ = &mut due => {
                    let at = sim_instant();
                    // The final drain: nothing new is sent; what is pending completes.
                    if at >= next_send && self.progress.draining() {
                        next_send = at + period;
                        // A transactional producer commits its open transaction.
                        core.finish_transactions(now_ms());
                    } else if at >= next_send {
                        next_send += period.mul_f64(rng.gen_range(0.5..1.5));
                        // A transactional producer sends only inside a transaction: a slot
                        // outside one is skipped (the application waits in
                        // initTransactions or commitTransaction).
                        if core.accepts_sends() {
                            let value = record_value(&self.name, incarnation, sent);
                            sent += 1;
                            let key =
                                (self.keys > 0).then(|| record_key(rng.gen_range(0..self.keys)));
                            self.history(HistoryOp::Send {
                                value: value.clone(),
                                key: key.clone(),
                                topic: self.config.topic.as_str().into(),
                                acks: self.config.acks,
                                idempotent: self.config.enable_idempotence,
                            });
                            core.send(value, key, now_ms(), &mut rng);
                        }
                    }
                    if at >= next_tick {
                        next_tick += TICK;
                        core.tick(now_ms(), &mut rng);
                    }
                }
            }
            for action in core.take_actions() {
                match action {
                    ProducerAction::Net(action) => links.perform(action),
                    ProducerAction::Completed { value, outcome } => {
                        if matches!(outcome, SendOutcome::Ok { .. })
                            || (self.config.acks == Acks::None
                                && matches!(outcome, SendOutcome::Sent { .. }))
                        {
                            self.progress.acked(&self.name);
                        }
                        self.history(HistoryOp::SendReturn { value, outcome });
                    }
                    ProducerAction::TxnBegin {
                        transactional_id,
                        producer,
                    } => self.history(HistoryOp::TxnBegin {
                        transactional_id: transactional_id.into_boxed_str(),
                        producer,
                    }),
                    ProducerAction::TxnEnd { commit } => {
                        self.history(HistoryOp::TxnEnd { commit });
                    }
                    ProducerAction::TxnEndReturn { error } => {
                        if error.is_none() {
                            self.progress.acked(&self.name);
                        }
                        self.history(HistoryOp::TxnEndReturn { error });
                    }
                }
            }
            let pending = core.pending();
            if reported_pending != Some(pending) {
                reported_pending = Some(pending);
                self.progress.pending_sends(&self.name, pending);
            }
        }
    }
}

/// A consumer node (assign mode: every partition of its topics); shared by all its
/// incarnations.
pub struct ConsumerNode {
    /// `consumer-<n>`.
    pub name: String,
    /// The client config.
    pub config: ConsumerConfig,
    /// Where the history goes.
    pub recorder: Recorder,
    /// Liveness probes.
    pub progress: Progress,
    /// How many times it has started.
    pub incarnations: AtomicU64,
}

impl ConsumerNode {
    fn history(&self, op: HistoryOp) {
        self.recorder.history(&self.name, op);
    }

    /// One incarnation: a fresh consumer reading from the earliest offsets until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        self.history(HistoryOp::ClientStart { incarnation });
        let mut rng = run_rng();
        let mut core = ConsumerCore::new(self.config.clone());
        let (mut links, mut inbox) = Links::new(&self.name);
        let mut next_tick = sim_instant() + TICK.mul_f64(rng.gen_range(0.0..1.0));
        let mut due = crate::node::Deadline::new(next_tick);
        loop {
            due.set(next_tick);
            tokio::select! {
                biased;
                event = inbox.recv() => {
                    let Some(event) = event else { return };
                    let now = now_ms();
                    match deliver(&mut links, event) {
                        Delivered::Connected(c) => core.on_connected(c, now),
                        Delivered::Response(c, r) => core.on_response(c, r, now),
                        Delivered::Closed(c) => core.on_closed(c, now),
                    }
                }
                _ = &mut due => {
                    next_tick += TICK;
                    core.tick(now_ms());
                }
            }
            for action in core.take_actions() {
                let (name, recorder, progress) = (&self.name, &self.recorder, &self.progress);
                record_consumer_action(name, recorder, progress, &mut links, action, false);
            }
            if core.is_group_member() {
                self.progress
                    .member_generation(&self.name, core.group_generation());
            }
        }
    }
}

/// Does what a consumer core asks and records it: connection work, `Assign`, `Poll`,
/// `GroupAssign` and `Commit` in the history, progress for the liveness probes. Returns
/// the records of a `Poll` when `keep` (for a processor to transform).
pub(super) fn record_consumer_action(
    name: &str,
    recorder: &Recorder,
    progress: &Progress,
    links: &mut Links,
    action: ConsumerAction,
    keep: bool,
) -> Option<(crate::broker::TopicPartition, Vec<(u64, CompactString)>)> {
    match action {
        ConsumerAction::Net(action) => links.perform(action),
        ConsumerAction::Assign { partitions } => {
            recorder.history(name, HistoryOp::Assign { partitions });
        }
        // Nothing left to read is an answer too.
        ConsumerAction::CaughtUp => progress.acked(name),
        ConsumerAction::Poll {
            partition,
            mut records,
        } => {
            progress.acked(name);
            // The history keeps every poll to the end of the run: no spare capacity.
            records.shrink_to_fit();
            let kept = keep.then(|| (partition, records.clone()));
            recorder.history(name, HistoryOp::Poll { partition, records });
            return kept;
        }
        ConsumerAction::GroupAssign {
            member,
            partitions,
            awaiting,
        } => {
            recorder.history(
                name,
                HistoryOp::GroupAssign {
                    group: member.group.into(),
                    member: member.member_id.into(),
                    generation: member.generation,
                    partitions: Box::new(partitions),
                    awaiting: Box::new(awaiting),
                },
            );
        }
        ConsumerAction::Commit {
            member,
            offsets,
            sent_ms,
            error,
        } => {
            if error.is_none() {
                progress.acked(name);
                progress.committed(&member.group, &offsets);
            }
            recorder.history(
                name,
                HistoryOp::Commit {
                    group: member.group.into(),
                    member: member.member_id.into(),
                    generation: member.generation,
                    offsets: Box::new(offsets),
                    sent_ms,
                    error,
                },
            );
        }
    }
    None
}

/// Appends `n` in decimal (what `format!` writes, without its machinery: one per send).
fn push_decimal(out: &mut CompactString, n: u64) {
    out.push_str(crate::history::decimal(n, &mut [0; 20]));
}

/// A record's value: `<node>-<incarnation>-<n>`, unique in the run.
pub(super) fn record_value(node: &str, incarnation: u64, n: u64) -> CompactString {
    let mut value = CompactString::with_capacity(node.len() + 12);
    value.push_str(node);
    value.push('-');
    push_decimal(&mut value, incarnation);
    value.push('-');
    push_decimal(&mut value, n);
    value
}

/// A record's key: `k<n>`.
fn record_key(n: u32) -> CompactString {
    let mut key = CompactString::const_new("k");
    push_decimal(&mut key, u64::from(n));
    key
}

/// The brokers `1..=n`, for bootstrap lists.
pub fn broker_ids(n: u32) -> Vec<BrokerId> {
    (1..=n).map(BrokerId).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_keys_read_as_format_writes_them() {
        for (node, incarnation, n) in [
            ("producer-1", 1, 0),
            ("p", 12, 4_567_890),
            ("x", 0, u64::MAX),
        ] {
            assert_eq!(
                record_value(node, incarnation, n),
                format!("{node}-{incarnation}-{n}")
            );
        }
        for n in [0, 7, 10, 99, 100, u32::MAX] {
            assert_eq!(record_key(n), format!("k{n}"));
        }
    }
}
