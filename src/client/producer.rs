//! A Kafka producer for one topic: partitioner, record accumulator, sender and
//! idempotence, as one sans-IO state machine.
//!
//! Owns: every record from `send` until its one completion. A record waits for the topic's
//! metadata (at most `max.block.ms`), is given a partition ([`Partitioner`]), and is
//! appended to that partition's open batch in the accumulator (a v2 [`BatchBuilder`],
//! closed at `batch.size`). A batch is drained when it is full or `linger.ms` passed, to the
//! partition leader's connection, one batch per partition per Produce request, at most
//! `max.in.flight.requests.per.connection` requests per connection. Every send completes
//! exactly once ([`ProducerAction::Completed`]) with an outcome that maps onto the history's
//! [`SendOutcome`]: `Ok` (acknowledged at an offset), `Sent` (acks=0: written, never
//! answered) or `Fail` (a non-retriable error, retries exhausted, or `delivery.timeout.ms`
//! passed — the record may still be in the log).
//!
//! Retries: a retriable error, a lost connection or a request timeout puts the batch back
//! at the front of its partition's queue, to be sent again after `retry.backoff.ms` (to the
//! leader the refreshed metadata names). The producer cannot know whether a batch lost
//! with its connection was appended, which is exactly how duplicates arise:
//! - without idempotence a retry is a new write: duplicates, and (with more than one
//!   request in flight) reordering, are possible — the bug-zoo behaviour of old clients;
//! - with `enable.idempotence` (the default) the producer first gets a producer id
//!   (InitProducerId), numbers each partition's batches with sequence numbers, keeps a
//!   batch's sequence across retries, keeps at most 5 batches of a partition unacknowledged,
//!   and resends a retried batch only when it is the partition's oldest unacknowledged one;
//!   the broker deduplicates and orders by sequence.
//!
//! `OUT_OF_ORDER_SEQUENCE_NUMBER` (simplified KIP-360): when an older batch of the partition
//! is still unacknowledged (or the sequence state is being reset) the answer is an artefact
//! of that older batch's failure and the batch is retried; when the batch is the oldest
//! unacknowledged one, the broker lost the producer's state: the batch fails. Whenever a
//! batch that was given a sequence fails (or `UNKNOWN_PRODUCER_ID` comes back), the
//! producer waits for its requests in flight to finish, bumps its producer epoch (KIP-360's
//! local bump of an idempotent producer; a new producer id only when the epoch is
//! exhausted), drops every sequence and renumbers the batches still queued from 0. The
//! bump is what fences a straggler: a request given up on (timed out, its connection
//! closed) may still reach the broker later, and once the new epoch is in the log the
//! broker refuses the old one (`INVALID_PRODUCER_EPOCH`) instead of appending it behind
//! records sent after it. (A new producer id would let it in, out of send order.)
//!
//! With a `transactional.id` the producer is transactional ([`txn`]): it runs
//! initTransactions at its transaction coordinator, sends only inside transactions (its
//! workload begins one, sends `txn-records` records, then commits or aborts it), adds each
//! partition to the transaction before producing to it, marks its batches transactional,
//! and restarts its sequences whenever EndTxn hands it a new epoch. A failed sequenced batch
//! then aborts the transaction instead of bumping the epoch locally.
//!
//! Defaults are Kafka 3.x's: acks=all and idempotence on (since 3.0), `linger.ms` 0 (Kafka
//! 4.0 made it 5), `retries` i32::MAX, `delivery.timeout.ms` 120000,
//! `transaction.timeout.ms` 60000.
//!
//! Simplifications vs Kafka: one topic per producer; no compression, consume-transform-
//! produce (AddOffsetsToTxn, TxnOffsetCommit) or buffer memory limit; a record's size is
//! estimated as key + value + 32 bytes (an upper bound of its encoded size, like Kafka's
//! estimate) for batch filling and the sticky partitioner; a batch never splits after MESSAGE_TOO_LARGE (not modelled); expiring a
//! batch in flight does not wait for its response.

use super::metadata::{Metadata, PartitionLeader};
use super::network::{ConnectionId, Lost, NetAction, NetConfig, Network};
use super::partitioner::{Partitioner, PartitionerKind};
use crate::broker::proto::{ProducePartition, RequestBody, Response, ResponseBody};
use crate::broker::{
    Acks, BrokerId, Bytes, KafkaError, ProducerId, ProducerIdentity, Topic, TopicPartition,
};
use crate::history::{CompactString, SendOutcome};
use crate::log::{BatchBuilder, BatchMeta, LeaderEpoch, Offset, BATCH_HEADER_BYTES};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};
use txn::TxnManager;
pub use txn::{
    classify, TxnErrorAction, TxnRequest, TxnState, TxnWorkload, DEFAULT_TRANSACTION_TIMEOUT_MS,
    DEFAULT_TXN_RECORDS,
};

pub mod txn;

/// At most this many unacknowledged batches per partition with idempotence (Kafka's
/// `MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION_FOR_IDEMPOTENCE`, the broker keeps as many).
pub const MAX_IN_FLIGHT_PER_PARTITION_IDEMPOTENT: usize = 5;

/// A producer's configuration, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// The topic every record goes to.
    pub topic: String,
    /// `bootstrap.servers`.
    pub bootstrap: Vec<BrokerId>,
    /// `acks` (default all).
    pub acks: Acks,
    /// `enable.idempotence` (default true).
    pub enable_idempotence: bool,
    /// `batch.size` in bytes (default 16384).
    pub batch_size: usize,
    /// `linger.ms` (default 0, Kafka 3.x).
    pub linger_ms: u64,
    /// `max.in.flight.requests.per.connection` (default 5).
    pub max_in_flight_requests_per_connection: usize,
    /// `retries` (default i32::MAX).
    pub retries: u32,
    /// `delivery.timeout.ms` (default 120000).
    pub delivery_timeout_ms: u64,
    /// `request.timeout.ms` (default 30000); also the Produce request's broker-side timeout.
    pub request_timeout_ms: u64,
    /// `retry.backoff.ms` (default 100).
    pub retry_backoff_ms: u64,
    /// `max.block.ms` (default 60000): how long a send waits for the topic's metadata.
    pub max_block_ms: u64,
    /// `metadata.max.age.ms` (default 300000).
    pub metadata_max_age_ms: u64,
    /// `reconnect.backoff.ms` (default 50).
    pub reconnect_backoff_ms: u64,
    /// `socket.connection.setup.timeout.ms` (default 10000).
    pub connection_setup_timeout_ms: u64,
    /// `partitioner.class` for keyless records (default uniform sticky).
    pub partitioner: PartitionerKind,
    /// `transactional.id` (default none): a transactional producer (see [`txn`]).
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (default 60000): sent with InitProducerId; the coordinator
    /// aborts a transaction open for longer.
    pub transaction_timeout_ms: u64,
    /// Not a Kafka setting: how the simulated application uses transactions (only read
    /// with a `transactional.id`).
    pub txn_workload: TxnWorkload,
}

impl ProducerConfig {
    /// Kafka 3.x's defaults for `topic`, bootstrapping from `bootstrap`.
    pub fn new(topic: impl Into<String>, bootstrap: Vec<BrokerId>) -> ProducerConfig {
        ProducerConfig {
            topic: topic.into(),
            bootstrap,
            acks: Acks::All,
            enable_idempotence: true,
            batch_size: 16_384,
            linger_ms: 0,
            max_in_flight_requests_per_connection: 5,
            retries: i32::MAX as u32,
            delivery_timeout_ms: 120_000,
            request_timeout_ms: 30_000,
            retry_backoff_ms: 100,
            max_block_ms: 60_000,
            metadata_max_age_ms: 300_000,
            reconnect_backoff_ms: 50,
            connection_setup_timeout_ms: 10_000,
            partitioner: PartitionerKind::UniformSticky,
            transactional_id: None,
            transaction_timeout_ms: DEFAULT_TRANSACTION_TIMEOUT_MS,
            txn_workload: TxnWorkload::default(),
        }
    }

    /// Kafka's `ConfigException`s: idempotence needs acks=all, retries > 0 and at most 5
    /// requests in flight; `delivery.timeout.ms` ≥ `linger.ms` + `request.timeout.ms`; a
    /// `transactional.id` needs idempotence.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap.is_empty() {
            return Err("bootstrap.servers is empty".into());
        }
        if self.batch_size == 0 || self.max_in_flight_requests_per_connection == 0 {
            return Err("batch.size and max.in.flight.requests.per.connection must be > 0".into());
        }
        if self.enable_idempotence {
            if self.acks != Acks::All {
                return Err("enable.idempotence requires acks=all".into());
            }
            if self.retries == 0 {
                return Err("enable.idempotence requires retries > 0".into());
            }
            if self.max_in_flight_requests_per_connection > MAX_IN_FLIGHT_PER_PARTITION_IDEMPOTENT {
                return Err(
                    "enable.idempotence requires max.in.flight.requests.per.connection <= 5".into(),
                );
            }
        }
        if self.delivery_timeout_ms < self.linger_ms.saturating_add(self.request_timeout_ms) {
            return Err("delivery.timeout.ms must be >= linger.ms + request.timeout.ms".into());
        }
        if let Some(id) = &self.transactional_id {
            // Kafka: a transactional producer is idempotent; idempotence explicitly off
            // (or what rules it out) is a ConfigException.
            if id.is_empty() {
                return Err("transactional.id is empty".into());
            }
            if !self.enable_idempotence {
                return Err("transactional.id requires enable.idempotence".into());
            }
            if self.transaction_timeout_ms == 0 {
                return Err("transaction.timeout.ms must be > 0".into());
            }
            let w = self.txn_workload;
            if w.records == 0 || w.abort_percent > 100 {
                return Err("txn-records must be > 0 and txn-abort-percent <= 100".into());
            }
        }
        Ok(())
    }

    fn net(&self) -> NetConfig {
        NetConfig {
            request_timeout_ms: self.request_timeout_ms,
            connection_setup_timeout_ms: self.connection_setup_timeout_ms,
            reconnect_backoff_ms: self.reconnect_backoff_ms,
            ..NetConfig::default()
        }
    }
}

/// What the producer asks its shell to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ProducerAction {
    /// Connection work.
    Net(NetAction),
    /// A send finished: record `SendReturn { value, outcome }` and tell the application.
    Completed {
        /// The record's value, as given to `send`.
        value: CompactString,
        /// How it ended.
        outcome: SendOutcome,
    },
    /// A transaction began: record `TxnBegin`.
    TxnBegin {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer id and epoch its batches carry.
        producer: ProducerIdentity,
    },
    /// The application asked to commit or abort the open transaction: record `TxnEnd`.
    TxnEnd {
        /// Commit (else abort).
        commit: bool,
    },
    /// The end returned (or a fatal error ended the transaction): record `TxnEndReturn`.
    TxnEndReturn {
        /// `None`: ended as asked.
        error: Option<KafkaError>,
    },
}

type BatchId = u64;

/// What the producer remembers about a request in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
enum InFlight {
    Metadata,
    InitProducerId,
    Produce { batches: Vec<BatchId> },
    FindTxnCoordinator,
    InitTxnProducerId,
    AddPartitionsToTxn,
    EndTxn,
    AddOffsetsToTxn,
    FindGroupCoordinator,
    TxnOffsetCommit,
}

#[derive(Clone, Debug)]
struct PendingRecord {
    value: CompactString,
    key: Option<CompactString>,
    timestamp_ms: i64,
}

#[derive(Clone, Debug)]
struct Unsent {
    record: PendingRecord,
    since_ms: u64,
}

/// One batch of one partition, from its first record to its completion.
#[derive(Clone, Debug)]
struct ProducerBatch {
    partition: u32,
    records: Vec<PendingRecord>,
    builder: BatchBuilder,
    created_ms: u64,
    /// Drained at least once: closed to new records.
    sent_once: bool,
    in_flight: bool,
    retries: u32,
    retry_at_ms: u64,
    last_error: Option<KafkaError>,
    /// With idempotence: its base sequence, kept across retries.
    sequence: Option<i32>,
}

/// The producer: feed it sends, connection events, responses and ticks; take its actions.
pub struct ProducerCore {
    config: ProducerConfig,
    /// `config.topic`, interned once.
    topic: Topic,
    /// The topic's partitions with a leader, as last partitioned against (a buffer kept
    /// between sends).
    available: Vec<u32>,
    net: Network<InFlight>,
    metadata: Metadata,
    partitioner: Partitioner,
    unsent: VecDeque<Unsent>,
    batches: BTreeMap<BatchId, ProducerBatch>,
    /// The records in `batches` (what [`ProducerCore::pending`] adds to the unsent).
    batched_records: usize,
    queues: BTreeMap<u32, VecDeque<BatchId>>,
    next_batch: BatchId,
    /// Idempotence: the producer id, once handed out.
    identity: Option<ProducerIdentity>,
    identity_requested: bool,
    identity_retry_at_ms: u64,
    /// Idempotence: drop the id and renumber once nothing is in flight.
    reset_pending: bool,
    next_sequence: BTreeMap<u32, i32>,
    /// Idempotence: per partition, base sequence → batch, for every sequenced batch not
    /// yet completed (in flight or queued for a retry).
    unacknowledged: BTreeMap<u32, BTreeMap<i32, BatchId>>,
    produce_in_flight: usize,
    /// With a `transactional.id`: the transaction manager.
    txn: Option<TxnManager>,
    out: Vec<ProducerAction>,
}

impl ProducerCore {
    /// A producer that starts by asking for metadata (and a producer id).
    pub fn new(config: ProducerConfig) -> ProducerCore {
        if let Err(e) = config.validate() {
            panic!("invalid producer config: {e}");
        }
        let metadata = Metadata::new(vec![config.topic.clone()], config.bootstrap.clone());
        ProducerCore {
            net: Network::new(config.net()),
            metadata,
            partitioner: Partitioner::new(config.partitioner, config.batch_size),
            unsent: VecDeque::new(),
            batches: BTreeMap::new(),
            batched_records: 0,
            queues: BTreeMap::new(),
            next_batch: 1,
            identity: None,
            identity_requested: false,
            identity_retry_at_ms: 0,
            reset_pending: false,
            next_sequence: BTreeMap::new(),
            unacknowledged: BTreeMap::new(),
            produce_in_flight: 0,
            txn: config.transactional_id.clone().map(TxnManager::new),
            out: Vec::new(),
            topic: Topic::new(&config.topic),
            available: Vec::new(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// What to do, in order.
    pub fn take_actions(&mut self) -> Vec<ProducerAction> {
        self.flush_net();
        std::mem::take(&mut self.out)
    }

    /// Sends not yet completed.
    pub fn pending(&self) -> usize {
        debug_assert_eq!(
            self.batched_records,
            self.batches
                .values()
                .map(|b| b.records.len())
                .sum::<usize>()
        );
        self.unsent.len() + self.batched_records + usize::from(self.txn_end_pending())
    }

    /// Takes a batch out (completed, failed or written with acks=0).
    fn remove_batch(&mut self, id: BatchId) -> ProducerBatch {
        let batch = self.batches.remove(&id).expect("batch");
        self.batched_records -= batch.records.len();
        batch
    }

    /// The producer id in use (idempotence), if one was handed out.
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.identity
    }

    /// Hands one record to the producer (Kafka's `send`). Its completion comes back later
    /// as [`ProducerAction::Completed`] with the same value.
    pub fn send(
        &mut self,
        value: CompactString,
        key: Option<CompactString>,
        now_ms: u64,
        rng: &mut impl Rng,
    ) {
        assert!(
            self.accepts_sends(),
            "send outside a transaction (Kafka's IllegalStateException)"
        );
        self.unsent.push_back(Unsent {
            record: PendingRecord {
                value,
                key,
                timestamp_ms: now_ms as i64,
            },
            since_ms: now_ms,
        });
        self.partition_unsent(now_ms, rng);
        if self.txn.is_some() {
            self.txn_after_send(rng);
        }
        self.drive(now_ms);
    }

    /// Time passes: linger, backoffs, timeouts, metadata age.
    pub fn tick(&mut self, now_ms: u64, rng: &mut impl Rng) {
        let lost = self.net.tick(now_ms);
        self.on_lost(lost, now_ms);
        self.partition_unsent(now_ms, rng);
        self.drive(now_ms);
    }

    /// The connection asked for is open.
    pub fn on_connected(&mut self, connection: ConnectionId, now_ms: u64) {
        self.net.on_connected(connection, now_ms);
        self.drive(now_ms);
    }

    /// The connection could not be opened, or broke: its requests are lost.
    pub fn on_closed(&mut self, connection: ConnectionId, now_ms: u64) {
        let lost = self.net.on_closed(connection, now_ms);
        // Kafka refreshes metadata after a disconnect: the broker may be gone for good.
        self.metadata.request_update();
        self.on_lost(lost, now_ms);
        self.drive(now_ms);
    }

    /// A broker answered.
    pub fn on_response(
        &mut self,
        connection: ConnectionId,
        response: Response,
        now_ms: u64,
        rng: &mut impl Rng,
    ) {
        let Some((broker, context, body)) = self.net.on_response(connection, response) else {
            return;
        };
        match (context, body) {
            (
                InFlight::Metadata,
                ResponseBody::Metadata {
                    brokers,
                    partitions,
                    ..
                },
            ) => {
                self.metadata.on_response(&brokers, &partitions, now_ms);
                self.partition_unsent(now_ms, rng);
            }
            (InFlight::FindTxnCoordinator, ResponseBody::FindCoordinator { result }) => {
                self.txn_on_find_coordinator(result, now_ms)
            }
            (InFlight::InitTxnProducerId, ResponseBody::InitProducerId { result }) => {
                self.txn_on_init_producer_id(result, now_ms)
            }
            (InFlight::AddPartitionsToTxn, ResponseBody::AddPartitionsToTxn { result }) => {
                self.txn_on_add_partitions(result, now_ms)
            }
            (InFlight::EndTxn, ResponseBody::EndTxn { result }) => {
                self.txn_on_end_txn(result, now_ms)
            }
            (InFlight::AddOffsetsToTxn, ResponseBody::AddOffsetsToTxn { error }) => {
                self.txn_on_add_offsets(error, now_ms)
            }
            (InFlight::FindGroupCoordinator, ResponseBody::FindCoordinator { result }) => {
                self.txn_on_find_group_coordinator(result, now_ms)
            }
            (InFlight::TxnOffsetCommit, ResponseBody::TxnOffsetCommit { partitions }) => {
                self.txn_on_txn_offset_commit(partitions, now_ms)
            }
            (InFlight::InitProducerId, ResponseBody::InitProducerId { result }) => {
                self.identity_requested = false;
                match result {
                    Ok(identity) => self.identity = Some(identity),
                    Err(_) => {
                        self.identity_retry_at_ms =
                            now_ms.saturating_add(self.config.retry_backoff_ms)
                    }
                }
            }
            (InFlight::Produce { batches }, ResponseBody::Produce { partitions }) => {
                self.produce_in_flight -= 1;
                for id in batches {
                    let Some(batch) = self.batches.get_mut(&id) else {
                        continue; // expired meanwhile
                    };
                    batch.in_flight = false;
                    let tp = TopicPartition::new(self.topic, batch.partition);
                    let result = partitions
                        .iter()
                        .find(|(p, _)| *p == tp)
                        .map_or(Err(KafkaError::NetworkException), |(_, r)| *r);
                    match result {
                        Ok(ok) => self.complete_ok(id, ok.base_offset),
                        Err(error) => self.on_batch_error(id, error, now_ms),
                    }
                }
            }
            // An answer of the wrong kind: a broker bug; treat it like a lost request.
            (context, _) => self.on_lost(
                vec![Lost {
                    broker,
                    context,
                    error: KafkaError::NetworkException,
                }],
                now_ms,
            ),
        }
        self.drive(now_ms);
    }

    fn flush_net(&mut self) {
        self.out
            .extend(self.net.take_actions().into_iter().map(ProducerAction::Net));
    }

    fn complete(&mut self, value: CompactString, outcome: SendOutcome) {
        self.flush_net();
        self.out.push(ProducerAction::Completed { value, outcome });
    }

    fn topic_partition(&self, partition: u32) -> TopicPartition {
        TopicPartition::new(self.topic, partition)
    }

    /// Everything that may happen without a new input.
    fn drive(&mut self, now_ms: u64) {
        self.expire(now_ms);
        self.maybe_send_metadata(now_ms);
        self.maybe_reset_sequences();
        self.maybe_init_producer_id(now_ms);
        if self.txn.is_some() {
            self.txn_drive(now_ms);
        }
        self.drain(now_ms);
    }

    /// Records waiting for metadata get their partition once it is known.
    fn partition_unsent(&mut self, now_ms: u64, rng: &mut impl Rng) {
        if self.unsent.is_empty() {
            return;
        }
        let mut available = std::mem::take(&mut self.available);
        let Some(count) = self
            .metadata
            .count_and_available(self.topic, &mut available)
        else {
            self.available = available;
            return;
        };
        while let Some(unsent) = self.unsent.pop_front() {
            let record = unsent.record;
            let size = record_size(&record);
            let key = record.key.as_deref().map(str::as_bytes);
            let partition = self
                .partitioner
                .partition(key, size, count, &available, rng);
            self.append(partition, record, now_ms);
        }
        self.available = available;
    }

    /// Appends to the partition's open batch, or opens a new one.
    fn append(&mut self, partition: u32, record: PendingRecord, now_ms: u64) {
        if let Some(txn) = &mut self.txn {
            txn.maybe_add_partition(partition);
        }
        let size = record_size(&record);
        let queue = self.queues.entry(partition).or_default();
        if let Some(batch) = queue.back().and_then(|id| self.batches.get_mut(id)) {
            if !batch.sent_once && batch.builder.size_bytes() + size <= self.config.batch_size {
                push(&mut batch.builder, &record);
                batch.records.push(record);
                self.batched_records += 1;
                return;
            }
        }
        let id = self.next_batch;
        self.next_batch += 1;
        // Kafka's MemoryRecordsBuilder: the base timestamp is the first record's (a record
        // queued before metadata came is older than its batch; deltas stay non-negative).
        let meta = BatchMeta {
            base_timestamp_ms: record.timestamp_ms,
            ..BatchMeta::default()
        };
        let mut builder = BatchBuilder::with_capacity(
            meta,
            (BATCH_HEADER_BYTES + size).min(self.config.batch_size),
        );
        push(&mut builder, &record);
        debug_assert!(
            self.batches
                .values()
                .next_back()
                .is_none_or(|newest| newest.created_ms <= now_ms),
            "batches are created in time order"
        );
        self.batched_records += 1;
        self.batches.insert(
            id,
            ProducerBatch {
                partition,
                records: vec![record],
                builder,
                created_ms: now_ms,
                sent_once: false,
                in_flight: false,
                retries: 0,
                retry_at_ms: 0,
                last_error: None,
                sequence: None,
            },
        );
        queue.push_back(id);
    }

    /// `max.block.ms` for records without metadata; `delivery.timeout.ms` for batches
    /// (queued or in flight, like Kafka's `getExpiredInflightBatches`).
    fn expire(&mut self, now_ms: u64) {
        while self
            .unsent
            .front()
            .is_some_and(|u| now_ms >= u.since_ms.saturating_add(self.config.max_block_ms))
        {
            let unsent = self.unsent.pop_front().expect("front");
            self.complete(
                unsent.record.value,
                SendOutcome::Fail {
                    partition: None,
                    error: KafkaError::RequestTimedOut,
                },
            );
            if self.txn.is_some() {
                self.txn_on_send_failed(KafkaError::RequestTimedOut);
            }
        }
        // Batch ids follow creation times: the expired batches are the oldest ones.
        let expired: Vec<BatchId> = self
            .batches
            .iter()
            .take_while(|(_, b)| {
                now_ms >= b.created_ms.saturating_add(self.config.delivery_timeout_ms)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            // Failing one batch of a transaction can drop the others with it (the
            // transaction aborts): those are already answered.
            let Some(batch) = self.batches.get(&id) else {
                continue;
            };
            let error = batch.last_error.unwrap_or(KafkaError::RequestTimedOut);
            self.fail(id, error);
        }
    }

    fn maybe_send_metadata(&mut self, now_ms: u64) {
        if !self.metadata.should_send(
            now_ms,
            self.config.retry_backoff_ms,
            self.config.metadata_max_age_ms,
        ) {
            return;
        }
        let Some(broker) = self.net.least_loaded(self.metadata.candidates(), now_ms) else {
            return;
        };
        if self.net.is_ready(broker) {
            let topics = self.metadata.topics().to_vec();
            self.net.send(
                broker,
                RequestBody::Metadata { topics },
                Some(InFlight::Metadata),
                now_ms,
            );
            self.metadata.on_sent(now_ms);
        } else {
            self.net.connect(broker, now_ms);
        }
    }

    /// After a sequenced batch failed: once nothing is in flight, bump the producer epoch
    /// and forget every sequence. Batches never sent are renumbered under the new epoch. A
    /// batch already sent under the old epoch may be in the log — the broker cannot
    /// recognise it as a retry across epochs — so it fails with its last error (outcome
    /// unknown) instead of being sent again. (Kafka rewrites the sequences of the failed
    /// partition's in-flight batches under the bumped epoch, which can duplicate such a
    /// batch.)
    fn maybe_reset_sequences(&mut self) {
        if !self.reset_pending || self.produce_in_flight > 0 || self.identity_requested {
            return;
        }
        self.reset_pending = false;
        self.identity = self
            .identity
            .filter(|i| i.producer_epoch < i16::MAX)
            .map(|i| ProducerIdentity {
                producer_id: i.producer_id,
                producer_epoch: i.producer_epoch + 1,
            });
        self.next_sequence.clear();
        self.unacknowledged.clear();
        let mut in_doubt = Vec::new();
        for (&id, batch) in &mut self.batches {
            if batch.sequence.take().is_some() && batch.sent_once {
                in_doubt.push((id, batch.last_error));
            }
        }
        for (id, error) in in_doubt {
            self.fail(id, error.unwrap_or(KafkaError::OutOfOrderSequenceNumber));
        }
    }

    fn maybe_init_producer_id(&mut self, now_ms: u64) {
        if !self.config.enable_idempotence
            || self.txn.is_some()
            || self.identity.is_some()
            || self.identity_requested
            || self.reset_pending
            || now_ms < self.identity_retry_at_ms
        {
            return;
        }
        let Some(broker) = self.net.least_loaded(self.metadata.candidates(), now_ms) else {
            return;
        };
        if self.net.is_ready(broker) {
            self.net.send(
                broker,
                RequestBody::InitProducerId,
                Some(InFlight::InitProducerId),
                now_ms,
            );
            self.identity_requested = true;
        } else {
            self.net.connect(broker, now_ms);
        }
    }

    /// Whether the partition's first queued batch may go now (leadership aside).
    fn sendable(&self, batch: &ProducerBatch, queue_len: usize, now_ms: u64) -> bool {
        if batch.sent_once {
            return now_ms >= batch.retry_at_ms;
        }
        let full = queue_len > 1 || batch.builder.size_bytes() >= self.config.batch_size;
        // commitTransaction flushes: every batch is ready at once.
        let flushing = self.txn.as_ref().is_some_and(TxnManager::flushing);
        full || flushing || now_ms >= batch.created_ms.saturating_add(self.config.linger_ms)
    }

    /// Idempotence: a retry goes only as the partition's oldest unacknowledged batch; a
    /// new batch only while fewer than 5 are unacknowledged.
    fn sequence_allows(&self, batch: &ProducerBatch) -> bool {
        if !self.config.enable_idempotence {
            return true;
        }
        let unacknowledged = self.unacknowledged.get(&batch.partition);
        match batch.sequence {
            Some(sequence) => unacknowledged.and_then(|u| u.keys().next()) == Some(&sequence),
            None => unacknowledged.map_or(0, |u| u.len()) < MAX_IN_FLIGHT_PER_PARTITION_IDEMPOTENT,
        }
    }

    /// Kafka's `Sender.sendProducerData`: per leader, one ready batch per partition per
    /// request, while the connection has room; repeated until nothing more can go.
    fn drain(&mut self, now_ms: u64) {
        if self.config.enable_idempotence && (self.identity.is_none() || self.reset_pending) {
            return;
        }
        if self.txn.as_ref().is_some_and(|t| !t.may_produce()) {
            return;
        }
        loop {
            let mut by_leader: BTreeMap<BrokerId, Vec<u32>> = BTreeMap::new();
            let mut leader_unknown = false;
            for (&partition, queue) in &self.queues {
                let Some(&id) = queue.front() else { continue };
                let batch = &self.batches[&id];
                if !self.sendable(batch, queue.len(), now_ms) || !self.sequence_allows(batch) {
                    continue;
                }
                // Kafka holds a partition's batches until AddPartitionsToTxn added it.
                if self.txn.as_ref().is_some_and(|t| !t.is_added(partition)) {
                    continue;
                }
                match self.metadata.leader(&self.topic_partition(partition)) {
                    Some(PartitionLeader {
                        leader: Some(leader),
                        ..
                    }) => by_leader.entry(leader).or_default().push(partition),
                    _ => leader_unknown = true,
                }
            }
            if leader_unknown {
                self.metadata.request_update();
            }
            let mut sent = false;
            for (leader, partitions) in by_leader {
                if !self.net.is_ready(leader) {
                    self.net.connect(leader, now_ms);
                    continue;
                }
                if self.net.in_flight(leader) >= self.config.max_in_flight_requests_per_connection {
                    continue;
                }
                self.send_produce(leader, partitions, now_ms);
                sent = true;
            }
            if !sent {
                break;
            }
        }
    }

    fn send_produce(&mut self, leader: BrokerId, partitions: Vec<u32>, now_ms: u64) {
        let mut ids = Vec::new();
        let mut produce = Vec::new();
        for partition in partitions {
            let id = self
                .queues
                .get_mut(&partition)
                .and_then(VecDeque::pop_front)
                .expect("a ready batch");
            let batch = self.encode(id);
            produce.push(ProducePartition {
                partition: self.topic_partition(partition),
                batch: Bytes(batch),
            });
            ids.push(id);
        }
        let body = RequestBody::Produce {
            transactional_id: self.config.transactional_id.clone(),
            acks: self.config.acks,
            timeout_ms: self.config.request_timeout_ms,
            partitions: produce,
        };
        if self.config.acks == Acks::None {
            // acks=0: no answer will come; written is all the producer will ever know.
            self.net.send(leader, body, None, now_ms);
            for id in ids {
                let batch = self.remove_batch(id);
                let partition = self.topic_partition(batch.partition);
                for record in batch.records {
                    self.complete(record.value, SendOutcome::Sent { partition });
                }
            }
            return;
        }
        for id in &ids {
            self.batches.get_mut(id).expect("drained batch").in_flight = true;
        }
        self.net.send(
            leader,
            body,
            Some(InFlight::Produce { batches: ids }),
            now_ms,
        );
        self.produce_in_flight += 1;
    }

    /// Gives the batch its sequence (idempotence, first send) and encodes it.
    fn encode(&mut self, id: BatchId) -> Vec<u8> {
        let identity = self.identity;
        let idempotent = self.config.enable_idempotence;
        let batch = self.batches.get_mut(&id).expect("batch");
        if idempotent && batch.sequence.is_none() {
            let next = self.next_sequence.entry(batch.partition).or_insert(0);
            batch.sequence = Some(*next);
            // Kafka's sequences wrap at i32::MAX.
            *next = next.wrapping_add(batch.records.len() as i32) & i32::MAX;
            self.unacknowledged
                .entry(batch.partition)
                .or_default()
                .insert(batch.sequence.expect("just set"), id);
        }
        batch.sent_once = true;
        let meta = BatchMeta {
            leader_epoch: LeaderEpoch::NONE,
            // The first record's time, as the builder was opened with.
            base_timestamp_ms: batch
                .records
                .first()
                .map_or(batch.created_ms as i64, |r| r.timestamp_ms),
            producer_id: identity
                .filter(|_| idempotent)
                .map_or(ProducerId::NONE, |i| i.producer_id),
            producer_epoch: identity
                .filter(|_| idempotent)
                .map_or(-1, |i| i.producer_epoch),
            base_sequence: batch.sequence.unwrap_or(-1),
        };
        if batch.builder.meta() != meta {
            let mut builder = BatchBuilder::with_capacity(meta, batch.builder.size_bytes());
            for record in &batch.records {
                push(&mut builder, record);
            }
            batch.builder = builder;
        }
        if self.txn.is_some() {
            batch.builder.set_transactional(true);
        }
        batch.builder.encode(Offset(0)).to_vec()
    }

    fn complete_ok(&mut self, id: BatchId, base_offset: Offset) {
        let batch = self.remove_batch(id);
        if let Some(sequence) = batch.sequence {
            if let Some(u) = self.unacknowledged.get_mut(&batch.partition) {
                u.remove(&sequence);
            }
        }
        let partition = self.topic_partition(batch.partition);
        for (i, record) in batch.records.into_iter().enumerate() {
            self.complete(
                record.value,
                SendOutcome::Ok {
                    partition,
                    offset: base_offset.0 + i as u64,
                },
            );
        }
    }

    fn on_batch_error(&mut self, id: BatchId, error: KafkaError, now_ms: u64) {
        // A transactional producer leaves sequence trouble to the abort (whose EndTxn
        // bumps the epoch and restarts the sequences), and retries nothing once fatal.
        let idempotent = self.config.enable_idempotence && self.txn.is_none();
        if self.txn.as_ref().is_some_and(TxnManager::is_fatal) {
            self.fail(id, error);
            return;
        }
        let batch = &self.batches[&id];
        match error {
            KafkaError::OutOfOrderSequenceNumber if idempotent => {
                let oldest = self
                    .unacknowledged
                    .get(&batch.partition)
                    .and_then(|u| u.keys().next().copied());
                if self.reset_pending || oldest != batch.sequence {
                    // An older batch failed or is being retried: this one follows it.
                    self.retry(id, error, now_ms);
                } else {
                    // The broker lost this producer's sequence: the batch cannot be placed.
                    self.fail(id, error);
                }
            }
            KafkaError::UnknownProducerId if idempotent => {
                // KIP-360: the broker forgot the producer (retention, truncation): start
                // over with a new id and renumbered sequences.
                self.reset_pending = true;
                self.retry(id, error, now_ms);
            }
            _ if error.is_retriable() => {
                if invalidates_metadata(error) {
                    self.metadata.request_update();
                }
                self.retry(id, error, now_ms);
            }
            _ => self.fail(id, error),
        }
    }

    /// Back to the front of its queue after the backoff, unless retries or the delivery
    /// timeout are used up.
    fn retry(&mut self, id: BatchId, error: KafkaError, now_ms: u64) {
        let batch = self.batches.get_mut(&id).expect("batch");
        batch.last_error = Some(error);
        if batch.retries >= self.config.retries
            || now_ms
                >= batch
                    .created_ms
                    .saturating_add(self.config.delivery_timeout_ms)
        {
            self.fail(id, error);
            return;
        }
        batch.retries += 1;
        batch.retry_at_ms = now_ms.saturating_add(self.config.retry_backoff_ms);
        let (partition, sequence) = (batch.partition, batch.sequence);
        let queue = self.queues.entry(partition).or_default();
        match sequence {
            // Kafka's `insertInSequenceOrder`: retries go out in sequence order, before
            // any batch not yet numbered.
            Some(sequence) => {
                let at = queue
                    .iter()
                    .position(|other| self.batches[other].sequence.is_none_or(|s| s > sequence))
                    .unwrap_or(queue.len());
                queue.insert(at, id);
            }
            None => queue.push_front(id),
        }
    }

    /// Completes every record of the batch with `error`.
    fn fail(&mut self, id: BatchId, error: KafkaError) {
        let batch = self.remove_batch(id);
        if let Some(queue) = self.queues.get_mut(&batch.partition) {
            queue.retain(|other| *other != id);
        }
        if let Some(sequence) = batch.sequence {
            if let Some(u) = self.unacknowledged.get_mut(&batch.partition) {
                u.remove(&sequence);
            }
            // Its sequence is now a hole (or unknown): later batches need new numbers
            // (in a transaction: once the abort bumped the epoch).
            self.reset_pending = self.txn.is_none();
        }
        let partition = self.topic_partition(batch.partition);
        for record in batch.records {
            self.complete(
                record.value,
                SendOutcome::Fail {
                    partition: Some(partition),
                    error,
                },
            );
        }
        if self.txn.is_some() {
            self.txn_on_send_failed(error);
        }
    }

    fn on_lost(&mut self, lost: Vec<Lost<InFlight>>, now_ms: u64) {
        for Lost { context, error, .. } in lost {
            match context {
                InFlight::Metadata => self.metadata.on_lost(),
                InFlight::InitProducerId => {
                    self.identity_requested = false;
                    self.identity_retry_at_ms = now_ms.saturating_add(self.config.retry_backoff_ms);
                }
                InFlight::FindTxnCoordinator
                | InFlight::InitTxnProducerId
                | InFlight::AddPartitionsToTxn
                | InFlight::EndTxn
                | InFlight::AddOffsetsToTxn
                | InFlight::FindGroupCoordinator
                | InFlight::TxnOffsetCommit => self.txn_on_lost(context, now_ms),
                InFlight::Produce { batches } => {
                    self.produce_in_flight -= 1;
                    self.metadata.request_update();
                    for id in batches {
                        if let Some(batch) = self.batches.get_mut(&id) {
                            // Appended or not, nobody knows: send it again.
                            batch.in_flight = false;
                            self.on_batch_error(id, error, now_ms);
                        }
                    }
                }
            }
        }
    }
}

/// Errors after which the producer's idea of the partition's leader is probably wrong.
fn invalidates_metadata(error: KafkaError) -> bool {
    matches!(
        error,
        KafkaError::NotLeaderOrFollower
            | KafkaError::LeaderNotAvailable
            | KafkaError::UnknownTopicOrPartition
            | KafkaError::FencedLeaderEpoch
            | KafkaError::UnknownLeaderEpoch
            | KafkaError::KafkaStorageError
            | KafkaError::NetworkException
            | KafkaError::RequestTimedOut
    )
}

/// An upper bound of the record's encoded size in a batch.
fn record_size(record: &PendingRecord) -> usize {
    record.key.as_ref().map_or(0, |k| k.len()) + record.value.len() + 32
}

fn push(builder: &mut BatchBuilder, record: &PendingRecord) {
    builder.push(
        record.timestamp_ms,
        record.key.as_deref().map(str::as_bytes),
        Some(record.value.as_bytes()),
        &[],
    );
}

#[cfg(test)]
mod tests;
