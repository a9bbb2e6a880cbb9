//! The shell of a consume-transform-produce processor: a group member and a transactional
//! producer in one process, as a Kafka Streams instance with `exactly_once_v2` (KIP-447).
//!
//! Owns: the processing loop around a [`ConsumerCore`] (read_committed, its offsets never
//! committed by itself) and a [`ProducerCore`] (transactions begun and ended here), their
//! connections (two clients, as Streams has), and the history of both: the consumer's
//! `Poll`s and assignments, the producer's `Send`s and transaction ops.
//!
//! The loop, per turn:
//! - Records a poll returns are processed inside the open transaction: one output record
//!   per input record, into the output topic, its value `<processor>-<incarnation>-<n>`
//!   (unique in the run, as a producer's) and its key the input's place,
//!   `<topic>/<partition>@<offset>` — what the `duplicate` check reads back. With no
//!   transaction open, the first record (or an owned partition whose position passed its
//!   committed offset, e.g. past a marker) begins one.
//! - `commit.interval.ms` after it began, the transaction ends: the group's offsets of
//!   every partition it processed (and every owned partition whose position moved) go with
//!   it (`sendOffsetsToTransaction`, with the member's generation), then it commits — or
//!   aborts, with probability `txn-abort-percent` (never while the run drains). A partition
//!   processed in it but no longer owned (revoked or lost in a rebalance) aborts it: its
//!   offsets cannot be committed by this member any more, and its new owner processes it.
//! - A partition processed in the open transaction that leaves the member's assignment
//!   (revoked, or lost with the membership), even for a moment, aborts it at once (Kafka
//!   Streams closes the task dirty): its records may be processed by the next owner.
//! - A transaction that commits makes its offsets the group's: recorded as a `Commit` the
//!   member was told is stored (so the group checks judge it as a consumer's commit).
//! - A transaction that ends otherwise than committed (aborted by the processor, an
//!   abortable error, a fenced producer) rewinds the consumer to the group's committed
//!   offsets, fetched again with `require_stable`: what it processed is processed again.
//! - The consumer is paused while no transaction may take records (the producer is
//!   initializing, or ending a transaction), so nothing is read that a rewind discards.

use super::kafka_client::{
    deliver, now_ms, record_consumer_action, record_value, Delivered, Links, TICK,
};
use crate::broker::proto::MemberRef;
use crate::broker::TopicPartition;
use crate::client::consumer::{ConsumerAction, ConsumerConfig, ConsumerCore};
use crate::client::producer::{ProducerAction, ProducerConfig, ProducerCore, TxnState};
use crate::history::{input_key, CompactString, Op as HistoryOp, SendOutcome};
use crate::node::progress::Progress;
use crate::node::recorder::{sim_instant, Recorder};
use crate::node::run_rng;
use rand::Rng;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A processor node; shared by all its incarnations.
pub struct ProcessorNode {
    /// `processor-<n>`.
    pub name: String,
    /// Its consumer (a member of its group, read_committed, offsets by transaction).
    pub consumer: ConsumerConfig,
    /// Its producer (transactional, to the output topic, transactions by the processor).
    pub producer: ProducerConfig,
    /// Streams' `commit.interval.ms`.
    pub commit_interval_ms: u64,
    /// The chance, in percent, that the processor aborts a transaction.
    pub abort_percent: u8,
    /// Where the history goes.
    pub recorder: Recorder,
    /// Liveness probes.
    pub progress: Progress,
    /// How many times it has started.
    pub incarnations: AtomicU64,
}

/// Marks the open transaction lost when an assignment leaves out a partition it processed
/// (Kafka Streams closes such a task dirty and aborts: `onPartitionsLost` / revoked).
fn note_ownership(action: &ConsumerAction, open: Option<&mut Open>) {
    let (ConsumerAction::GroupAssign { partitions, .. }, Some(o)) = (action, open) else {
        return;
    };
    if o.processed
        .iter()
        .any(|tp| !partitions.iter().any(|(owned, _)| owned == tp))
    {
        o.lost = true;
    }
}

/// Records of one partition a poll returned.
type Polled = (TopicPartition, Vec<(u64, CompactString)>);

/// The transaction the processor has open (or is ending).
#[derive(Default)]
struct Open {
    /// When it began.
    since_ms: u64,
    /// The input partitions it processed records of.
    processed: BTreeSet<TopicPartition>,
    /// The offsets sent with it (what a commit makes the group's), the membership they
    /// were sent with, and when.
    offsets: Vec<(TopicPartition, u64)>,
    member: Option<MemberRef>,
    offsets_sent_ms: u64,
    /// A partition it processed stopped being this member's at some point (revoked, lost
    /// with the membership, or rewound), even if it came back: the transaction must abort,
    /// since records processed under the old ownership may be processed by another owner.
    lost: bool,
    /// Ending: commit asked (`Some(true)`), abort asked (`Some(false)`).
    ending: Option<bool>,
    /// It did not commit (an abort was asked, or an end returned an error).
    failed: bool,
}

impl ProcessorNode {
    fn history(&self, op: HistoryOp) {
        self.recorder.history(&self.name, op);
    }

    /// One incarnation: a fresh consumer and producer, processing until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        self.history(HistoryOp::ClientStart { incarnation });
        let mut rng = run_rng();
        let mut consumer = ConsumerCore::new(self.consumer.clone());
        let mut producer = ProducerCore::new(self.producer.clone());
        let (mut consumer_links, mut consumer_inbox) = Links::new(&self.name);
        let (mut producer_links, mut producer_inbox) = Links::new(&self.name);
        let mut next_tick = sim_instant() + TICK.mul_f64(rng.gen_range(0.0..1.0));
        let mut due = crate::node::Deadline::new(next_tick);
        let mut sent = 0u64;
        let mut open: Option<Open> = None;
        // Polled while no transaction could take them: for the next one.
        let mut waiting: Vec<Polled> = Vec::new();
        let mut reported_pending = None;
        loop {
            due.set(next_tick);
            tokio::select! {
                biased;
                event = consumer_inbox.recv() => {
                    let Some(event) = event else { return };
                    let now = now_ms();
                    match deliver(&mut consumer_links, event) {
                        Delivered::Connected(c) => consumer.on_connected(c, now),
                        Delivered::Response(c, r) => consumer.on_response(c, r, now),
                        Delivered::Closed(c) => consumer.on_closed(c, now),
                    }
                }
                event = producer_inbox.recv() => {
                    let Some(event) = event else { return };
                    let now = now_ms();
                    match deliver(&mut producer_links, event) {
                        Delivered::Connected(c) => producer.on_connected(c, now),
                        Delivered::Response(c, r) => producer.on_response(c, r, now, &mut rng),
                        Delivered::Closed(c) => producer.on_closed(c, now),
                    }
                }
                _ = &mut due => {
                    next_tick += TICK;
                    let now = now_ms();
                    consumer.tick(now);
                    producer.tick(now, &mut rng);
                }
            }
            let now = now_ms();
            // The producer first: a transaction that ended decides what the polls are for.
            self.producer_actions(
                &mut producer,
                &mut consumer,
                &mut producer_links,
                &mut open,
                &mut waiting,
            );
            self.consumer_actions(&mut consumer, &mut consumer_links, &mut open, &mut waiting);
            self.process(
                &mut producer,
                &mut consumer,
                &mut open,
                &mut waiting,
                (incarnation, &mut sent),
                now,
                &mut rng,
            );
            // What processing asked of the cores.
            self.producer_actions(
                &mut producer,
                &mut consumer,
                &mut producer_links,
                &mut open,
                &mut waiting,
            );
            self.consumer_actions(&mut consumer, &mut consumer_links, &mut open, &mut waiting);
            if consumer.is_group_member() {
                self.progress
                    .member_generation(&self.name, consumer.group_generation());
            }
            let pending = producer.pending();
            if reported_pending != Some(pending) {
                reported_pending = Some(pending);
                self.progress.pending_sends(&self.name, pending);
            }
        }
    }

    /// Does and records what the consumer asks; keeps what it polled for the next
    /// transaction, and notes a processed partition leaving the assignment.
    fn consumer_actions(
        &self,
        consumer: &mut ConsumerCore,
        links: &mut Links,
        open: &mut Option<Open>,
        waiting: &mut Vec<Polled>,
    ) {
        for action in consumer.take_actions() {
            note_ownership(&action, open.as_mut());
            if let ConsumerAction::GroupAssign { partitions, .. } = &action {
                // Records read of a partition no longer owned with its position (revoked,
                // or being fetched from its committed offset again) are not this
                // member's to process: its next position is what the group committed.
                waiting.retain(|(tp, _)| partitions.iter().any(|(owned, _)| owned == tp));
            }
            let (name, recorder, progress) = (&self.name, &self.recorder, &self.progress);
            let poll = record_consumer_action(name, recorder, progress, links, action, true);
            waiting.extend(poll);
        }
    }

    /// Does and records what the producer asks; notes how the open transaction ended.
    fn producer_actions(
        &self,
        producer: &mut ProducerCore,
        consumer: &mut ConsumerCore,
        links: &mut Links,
        open: &mut Option<Open>,
        waiting: &mut Vec<Polled>,
    ) {
        for action in producer.take_actions() {
            match action {
                ProducerAction::Net(action) => links.perform(action),
                ProducerAction::Completed { value, outcome } => {
                    if matches!(outcome, SendOutcome::Ok { .. }) {
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
                    if let Some(o) = open.as_mut() {
                        o.failed |= !commit;
                    }
                    self.history(HistoryOp::TxnEnd { commit });
                }
                ProducerAction::TxnEndReturn { error } => {
                    if let Some(o) = open.as_mut() {
                        o.failed |= error.is_some();
                    }
                    self.history(HistoryOp::TxnEndReturn { error });
                }
            }
        }
        // The transaction is over once the producer is no longer in or ending it.
        let over = !matches!(
            producer.transaction_state(),
            Some(TxnState::InTransaction | TxnState::Committing | TxnState::Aborting)
        );
        if !over || open.is_none() {
            return;
        }
        let ended = open.take().expect("checked");
        if ended.failed {
            // Everything since the last commit is processed again.
            waiting.clear();
            consumer.rewind_to_committed();
        } else if let Some(member) = ended.member {
            // The offsets are the group's: recorded as a commit the member was told is
            // stored, as a consumer's own would be.
            self.progress.acked(&self.name);
            consumer.note_committed(&ended.offsets);
            self.progress.committed(&member.group_id, &ended.offsets);
            self.history(HistoryOp::Commit {
                group: member.group_id.into(),
                member: member.member_id.into(),
                generation: member.generation_id,
                offsets: Box::new(ended.offsets),
                sent_ms: ended.offsets_sent_ms,
                error: None,
            });
        }
    }

    /// One turn of the processing loop (see the module doc).
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        producer: &mut ProducerCore,
        consumer: &mut ConsumerCore,
        open: &mut Option<Open>,
        waiting: &mut Vec<Polled>,
        (incarnation, sent): (u64, &mut u64),
        now: u64,
        rng: &mut impl Rng,
    ) {
        let state = producer.transaction_state();
        if open.is_none()
            && state == Some(TxnState::Ready)
            && (!waiting.is_empty() || !consumer.dirty_partitions().is_empty())
            && producer.begin_transaction()
        {
            *open = Some(Open {
                since_ms: now,
                ..Open::default()
            });
        }
        let taking = open.as_ref().is_some_and(|o| o.ending.is_none())
            && producer.transaction_state() == Some(TxnState::InTransaction);
        if taking {
            let o = open.as_mut().expect("taking");
            for (partition, records) in waiting.drain(..) {
                o.processed.insert(partition);
                for (offset, _) in records {
                    let value = record_value(&self.name, incarnation, *sent);
                    *sent += 1;
                    let key = input_key(&partition, offset);
                    self.history(HistoryOp::Send {
                        value: value.clone(),
                        key: Some(key.clone()),
                        topic: self.producer.topic.as_str().into(),
                        acks: self.producer.acks,
                        idempotent: true,
                    });
                    producer.send(value, Some(key), now, rng);
                }
            }
        }
        let due = open.as_ref().is_some_and(|o| {
            o.ending.is_none()
                && (o.lost || now >= o.since_ms.saturating_add(self.commit_interval_ms))
        });
        if due && producer.transaction_state() == Some(TxnState::InTransaction) {
            self.end(producer, consumer, open.as_mut().expect("due"), now, rng);
        }
        // Nothing is read that no transaction can take.
        let may_read = matches!(
            producer.transaction_state(),
            Some(TxnState::Ready | TxnState::InTransaction)
        ) && open.as_ref().is_none_or(|o| o.ending.is_none());
        consumer.set_paused(!may_read, now);
    }

    /// Ends the open transaction: its offsets go with it, then commit (or abort).
    fn end(
        &self,
        producer: &mut ProducerCore,
        consumer: &mut ConsumerCore,
        o: &mut Open,
        now: u64,
        rng: &mut impl Rng,
    ) {
        let mut partitions = o.processed.clone();
        partitions.extend(consumer.dirty_partitions());
        let offsets = consumer.committable(&partitions);
        let member: Option<MemberRef> = consumer.group_metadata();
        // A processed partition this member no longer owns (or lost on the way) cannot be
        // committed by it.
        let lost = o.lost
            || o.processed
                .iter()
                .any(|tp| !offsets.iter().any(|(t, _)| t == tp));
        let drawn_abort =
            !self.progress.draining() && rng.gen_range(0..100u32) < u32::from(self.abort_percent);
        let commit = !lost && !drawn_abort && !offsets.is_empty();
        if let (true, Some(member)) = (commit, member) {
            o.offsets = offsets.iter().map(|(tp, c)| (*tp, c.offset.0)).collect();
            o.member = Some(member.clone());
            o.offsets_sent_ms = now;
            producer.send_offsets_to_transaction(offsets, member, now);
            o.ending = Some(true);
            producer.end_transaction(true, now);
        } else {
            o.ending = Some(false);
            o.failed = true;
            producer.end_transaction(false, now);
        }
    }
}
