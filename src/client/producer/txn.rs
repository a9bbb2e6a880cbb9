//! The transactional producer: Kafka's `TransactionManager` (KIP-98, with KIP-360's
//! re-initialization, KIP-588's abortable produce errors and KIP-890 part 2's epoch bump at
//! every EndTxn) inside the producer core, driven by a workload that plays the application.
//!
//! Owns: the producer's transaction state, its coordinator, and the transactional requests
//! (at most one in flight, in Kafka's priority order: FindCoordinator, InitProducerId,
//! AddPartitionsToTxn, EndTxn), and which errors abort a transaction and which make the
//! application start over.
//!
//! Life of a transactional producer:
//! - initTransactions: FindCoordinator (key type TRANSACTION) to the least loaded broker,
//!   then InitProducerId with the `transactional.id` and `transaction.timeout.ms` at the
//!   coordinator, which fences older epochs and aborts the id's open transaction.
//! - The workload begins a transaction as soon as the producer is ready; its records are
//!   the next `txn_workload.records` sends. A partition's first record in the transaction
//!   queues it for AddPartitionsToTxn (Kafka's `maybeAddPartition`); its batches are held
//!   in the accumulator until the coordinator added it. Batches are transactional
//!   (attribute 0x10) with the producer id, epoch and sequences.
//! - After the last record the transaction ends: abort with probability
//!   `abort_percent`/100 (drawn from the seeded rng handed to `send`), else commit.
//!   commitTransaction flushes (every batch ready at once, linger ignored) and sends
//!   EndTxn(COMMIT) once every send of the transaction completed; abortTransaction fails
//!   the batches never sent (`TRANSACTION_ABORTED`, Kafka's `TransactionAbortedException`:
//!   batches without a sequence), waits for the rest, then sends EndTxn(ABORT). A
//!   transaction to which no partition was added ends without EndTxn (Kafka skips it).
//! - EndTxn answers the producer id and epoch to use next (bumped under transaction
//!   version 2); a new one restarts every partition's sequence at 0. The next
//!   transaction begins at once (not while the run drains: the open transaction is then
//!   committed and no new one begins).
//!
//! Errors, as Kafka's handlers classify them ([`classify`]):
//! - FindCoordinator: a retriable error is retried after `retry.backoff.ms`.
//! - InitProducerId, AddPartitionsToTxn, EndTxn: `NOT_COORDINATOR`,
//!   `COORDINATOR_NOT_AVAILABLE` or a lost connection: find the coordinator again, then
//!   retry; `COORDINATOR_LOAD_IN_PROGRESS`, `CONCURRENT_TRANSACTIONS` (and for
//!   AddPartitionsToTxn `UNKNOWN_TOPIC_OR_PARTITION`): retry after the backoff.
//! - Abortable: `TRANSACTION_ABORTABLE` (AddPartitionsToTxn, EndTxn(COMMIT)),
//!   `UNKNOWN_PRODUCER_ID` from AddPartitionsToTxn, and any failed send in the transaction
//!   other than `PRODUCER_FENCED` (a produce error after the retries, `INVALID_PRODUCER_EPOCH`
//!   per KIP-588, `OUT_OF_ORDER_SEQUENCE_NUMBER`, the delivery timeout, `max.block.ms`):
//!   the application aborts the transaction — its remaining records are never sent, the
//!   next transaction sends fresh ones. A failed commit returns its error first.
//! - Fatal: `PRODUCER_FENCED`, `INVALID_PRODUCER_EPOCH` from the coordinator,
//!   `INVALID_PRODUCER_ID_MAPPING`, `INVALID_TXN_STATE`, and any other coordinator error
//!   (an abortable error while aborting, too). Kafka's application must close the producer
//!   and make a new one; here the producer fails every record not in flight with the
//!   error, waits for the requests in flight, drops its producer id and sequences, and runs
//!   initTransactions again after the backoff (the coordinator bumps the epoch and aborts
//!   the transaction left open).
//!
//! Simplifications vs Kafka: no AddOffsetsToTxn/TxnOffsetCommit (no consume-transform-
//! produce); the application reacts to an abortable error at once (Kafka's
//! ABORTABLE_ERROR state is never observable); no client-side epoch bump after an abort
//! (transaction version 2: the coordinator bumps it at EndTxn); the transaction
//! coordinator is looked up by `transactional.id` only, never invalidated by metadata.

use super::{BatchId, InFlight, ProducerAction, ProducerCore};
use crate::broker::proto::{CommittedOffset, MemberRef, RequestBody, TxnOffsetCommitRequest};
use crate::broker::txn_coordinator::{PartitionResult, TransactionResult};
use crate::broker::{BrokerId, KafkaError, ProducerIdentity, TopicPartition};
use crate::history::SendOutcome;
use rand::Rng;
use std::collections::BTreeSet;

/// `transaction.timeout.ms` by default (Kafka's producer default).
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;
/// Records per transaction by default (the scenario's `txn-records`).
pub const DEFAULT_TXN_RECORDS: u32 = 10;

/// How the simulated application uses transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnWorkload {
    /// Records per transaction, >= 1.
    pub records: u32,
    /// The chance, in percent (0..=100), that a transaction is aborted rather than
    /// committed.
    pub abort_percent: u8,
    /// The application begins and ends transactions itself
    /// ([`ProducerCore::begin_transaction`], [`ProducerCore::send_offsets_to_transaction`],
    /// [`ProducerCore::commit_transaction`], [`ProducerCore::abort_transaction`]): a
    /// processor. `records` and `abort_percent` are then not read.
    pub by_application: bool,
}

impl Default for TxnWorkload {
    fn default() -> Self {
        TxnWorkload {
            records: DEFAULT_TXN_RECORDS,
            abort_percent: 0,
            by_application: false,
        }
    }
}

/// A transactional producer's state (Kafka's `TransactionManager.State`, without the
/// ABORTABLE_ERROR the workload leaves at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    /// initTransactions: finding the coordinator, asking for the producer id.
    Initializing,
    /// A producer id, no transaction open.
    Ready,
    /// A transaction open: records may be sent.
    InTransaction,
    /// commitTransaction: flushing, then EndTxn(COMMIT).
    Committing,
    /// abortTransaction: unsent batches failed, the rest completing, then EndTxn(ABORT).
    Aborting,
    /// A fatal error: once nothing is in flight, initTransactions again.
    Fatal,
}

/// Which transactional request an error answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnRequest {
    /// FindCoordinator (key type TRANSACTION).
    FindCoordinator,
    /// InitProducerId with the `transactional.id`.
    InitProducerId,
    /// AddPartitionsToTxn.
    AddPartitions,
    /// AddOffsetsToTxn.
    AddOffsets,
    /// TxnOffsetCommit (to the group's coordinator).
    TxnOffsetCommit,
    /// EndTxn.
    EndTxn,
    /// A send of the transaction failed (the error its callback got).
    Send,
}

/// What an error makes the transactional producer do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnErrorAction {
    /// Find the coordinator again, then retry.
    FindCoordinator,
    /// Retry after `retry.backoff.ms`.
    Retry,
    /// Abort the transaction.
    Abort,
    /// Close the producer and start over (initTransactions).
    Fatal,
}

/// Kafka's classification of `error` answering `request` (see the module doc).
pub fn classify(request: TxnRequest, error: KafkaError) -> TxnErrorAction {
    use KafkaError as E;
    use TxnErrorAction as A;
    match (request, error) {
        (TxnRequest::Send, E::ProducerFenced) => A::Fatal,
        (TxnRequest::Send, _) => A::Abort,
        (TxnRequest::FindCoordinator, e) if e.is_retriable() => A::Retry,
        (TxnRequest::FindCoordinator, _) => A::Fatal,
        (_, E::NotCoordinator | E::CoordinatorNotAvailable | E::NetworkException) => {
            A::FindCoordinator
        }
        (_, E::CoordinatorLoadInProgress | E::ConcurrentTransactions) => A::Retry,
        (TxnRequest::AddPartitions, E::UnknownTopicOrPartition) => A::Retry,
        (TxnRequest::AddPartitions, E::TransactionAbortable | E::UnknownProducerId) => A::Abort,
        (TxnRequest::AddOffsets, E::TransactionAbortable) => A::Abort,
        // KIP-447: the consumer's membership is fenced (Kafka's CommitFailedException).
        (
            TxnRequest::TxnOffsetCommit,
            E::UnknownMemberId | E::IllegalGeneration | E::FencedInstanceId,
        ) => A::Abort,
        (TxnRequest::TxnOffsetCommit, E::UnknownTopicOrPartition) => A::Retry,
        (TxnRequest::EndTxn, E::TransactionAbortable) => A::Abort,
        _ => A::Fatal,
    }
}

/// The transaction manager's state (the core owns the batches it gates).
#[derive(Clone, Debug)]
pub(super) struct TxnManager {
    id: String,
    state: TxnState,
    coordinator: Option<BrokerId>,
    request_in_flight: bool,
    retry_at_ms: u64,
    /// Partitions of the transaction not yet asked for (Kafka's `newPartitionsInTransaction`).
    new_partitions: BTreeSet<u32>,
    /// Asked for, not answered (`pendingPartitionsInTransaction`).
    adding: BTreeSet<u32>,
    /// Added: their batches may go (`partitionsInTransaction`).
    partitions: BTreeSet<u32>,
    /// Sends in the open transaction.
    records: u32,
    /// The run drains: begin no transaction.
    draining: bool,
    /// sendOffsetsToTransaction: the group's offsets on their way into the transaction.
    offsets: Option<OffsetsToSend>,
    /// The group's offsets partition is (or may be) in the transaction: it must end with
    /// EndTxn even if no partition of the topic is.
    offsets_added: bool,
    /// The group coordinator of the offsets, once found.
    group_coordinator: Option<BrokerId>,
}

/// Offsets of a consumer group handed to [`ProducerCore::send_offsets_to_transaction`].
#[derive(Clone, Debug)]
struct OffsetsToSend {
    member: MemberRef,
    offsets: Vec<(TopicPartition, CommittedOffset)>,
    stage: OffsetsStage,
}

/// Where the offsets are (Kafka's AddOffsetsToTxn handler, then its TxnOffsetCommit one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OffsetsStage {
    /// AddOffsetsToTxn to the transaction coordinator.
    AddOffsets,
    /// TxnOffsetCommit to the group coordinator.
    Commit,
    /// Stored with the transaction.
    Done,
}

impl TxnManager {
    pub(super) fn new(id: String) -> TxnManager {
        TxnManager {
            id,
            state: TxnState::Initializing,
            coordinator: None,
            request_in_flight: false,
            retry_at_ms: 0,
            new_partitions: BTreeSet::new(),
            adding: BTreeSet::new(),
            partitions: BTreeSet::new(),
            records: 0,
            draining: false,
            offsets: None,
            offsets_added: false,
            group_coordinator: None,
        }
    }

    /// No offsets on their way (none sent, or stored with the transaction).
    fn offsets_settled(&self) -> bool {
        self.offsets
            .as_ref()
            .is_none_or(|o| o.stage == OffsetsStage::Done)
    }

    /// A record went to `partition`: add it to the transaction unless it is (being) added.
    pub(super) fn maybe_add_partition(&mut self, partition: u32) {
        if !self.partitions.contains(&partition) && !self.adding.contains(&partition) {
            self.new_partitions.insert(partition);
        }
    }

    /// commitTransaction flushes the accumulator.
    pub(super) fn flushing(&self) -> bool {
        self.state == TxnState::Committing
    }

    /// Batches may be produced (to added partitions).
    pub(super) fn may_produce(&self) -> bool {
        matches!(
            self.state,
            TxnState::InTransaction | TxnState::Committing | TxnState::Aborting
        )
    }

    pub(super) fn is_added(&self, partition: u32) -> bool {
        self.partitions.contains(&partition)
    }

    pub(super) fn is_fatal(&self) -> bool {
        self.state == TxnState::Fatal
    }
}

impl ProducerCore {
    /// Whether the application may `send` now: always without a `transactional.id`; with
    /// one, while a transaction is open and has had fewer than `txn_workload.records`
    /// records (and the run is not draining).
    pub fn accepts_sends(&self) -> bool {
        let workload = self.config.txn_workload;
        self.txn.as_ref().is_none_or(|t| {
            t.state == TxnState::InTransaction
                && !t.draining
                && (workload.by_application || t.records < workload.records)
        })
    }

    /// The transactional producer's state (`None` without a `transactional.id`).
    pub fn transaction_state(&self) -> Option<TxnState> {
        self.txn.as_ref().map(|t| t.state)
    }

    /// The run drains: commit the open transaction (if it has records) and begin no other.
    /// Nothing happens without a `transactional.id`.
    pub fn finish_transactions(&mut self, now_ms: u64) {
        let Some(t) = &mut self.txn else { return };
        t.draining = true;
        if t.state == TxnState::InTransaction && t.records > 0 {
            self.txn_begin_end(true);
        }
        self.drive(now_ms);
    }

    /// A transaction is open with records, or ending: something is still to be answered.
    pub(super) fn txn_end_pending(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| match t.state {
            TxnState::InTransaction => t.records > 0,
            TxnState::Committing | TxnState::Aborting => true,
            _ => false,
        })
    }

    fn txn_emit(&mut self, action: ProducerAction) {
        self.flush_net();
        self.out.push(action);
    }

    fn txn_mut(&mut self) -> &mut TxnManager {
        self.txn.as_mut().expect("a transactional producer")
    }

    /// beginTransaction by the application (a processor's transactions); whether one
    /// began (only from Ready, and not while the run drains).
    pub fn begin_transaction(&mut self) -> bool {
        assert!(self.config.txn_workload.by_application);
        let ready = self
            .txn
            .as_ref()
            .is_some_and(|t| t.state == TxnState::Ready && !t.draining);
        if ready {
            self.txn_begin();
        }
        ready
    }

    /// sendOffsetsToTransaction: `offsets` of the group `member` belongs to are committed
    /// with the open transaction (AddOffsetsToTxn, then TxnOffsetCommit at the group's
    /// coordinator with the member's id and generation, KIP-447). Once per transaction.
    pub fn send_offsets_to_transaction(
        &mut self,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
        member: MemberRef,
        now_ms: u64,
    ) {
        let t = self.txn_mut();
        assert_eq!(
            t.state,
            TxnState::InTransaction,
            "offsets outside a transaction"
        );
        assert!(t.offsets.is_none(), "offsets sent twice in one transaction");
        t.offsets = Some(OffsetsToSend {
            member,
            offsets,
            stage: OffsetsStage::AddOffsets,
        });
        self.drive(now_ms);
    }

    /// commitTransaction (or abortTransaction) by the application; whether a transaction
    /// was open to end.
    pub fn end_transaction(&mut self, commit: bool, now_ms: u64) -> bool {
        let open = self
            .txn
            .as_ref()
            .is_some_and(|t| t.state == TxnState::InTransaction);
        if open {
            self.txn_begin_end(commit);
            self.drive(now_ms);
        }
        open
    }

    /// After a send: the workload ends the transaction after its last record.
    pub(super) fn txn_after_send(&mut self, rng: &mut impl Rng) {
        let workload = self.config.txn_workload;
        let t = self.txn_mut();
        t.records += 1;
        if workload.by_application {
            return;
        }
        if t.records >= workload.records {
            let abort = rng.gen_range(0..100u32) < u32::from(workload.abort_percent);
            self.txn_begin_end(!abort);
        }
    }

    /// commitTransaction or abortTransaction.
    fn txn_begin_end(&mut self, commit: bool) {
        self.txn_emit(ProducerAction::TxnEnd { commit });
        if commit {
            self.txn_mut().state = TxnState::Committing;
            return;
        }
        let t = self.txn_mut();
        t.state = TxnState::Aborting;
        t.new_partitions.clear();
        if t.offsets
            .take()
            .is_some_and(|o| o.stage != OffsetsStage::AddOffsets)
        {
            // AddOffsetsToTxn was answered (or lost after it was sent): the abort must
            // reach the coordinator.
            t.offsets_added = true;
        }
        self.fail_unsent(KafkaError::TransactionAborted);
        let never_sent: Vec<BatchId> = self
            .batches
            .iter()
            .filter(|(_, b)| !b.sent_once)
            .map(|(id, _)| *id)
            .collect();
        for id in never_sent {
            self.fail(id, KafkaError::TransactionAborted);
        }
    }

    /// Fails every record still waiting for a partition.
    fn fail_unsent(&mut self, error: KafkaError) {
        while let Some(unsent) = self.unsent.pop_front() {
            self.complete(
                unsent.record.value,
                SendOutcome::Fail {
                    partition: None,
                    error,
                },
            );
        }
    }

    /// A send of the transaction failed with `error` (its callback already fired).
    pub(super) fn txn_on_send_failed(&mut self, error: KafkaError) {
        match self.txn_mut().state {
            TxnState::InTransaction | TxnState::Committing => {
                match classify(TxnRequest::Send, error) {
                    TxnErrorAction::Fatal => self.txn_fatal(error),
                    _ => self.txn_abortable(error),
                }
            }
            TxnState::Aborting if classify(TxnRequest::Send, error) == TxnErrorAction::Fatal => {
                self.txn_fatal(error)
            }
            _ => {}
        }
    }

    /// The transaction cannot commit: the application aborts it.
    fn txn_abortable(&mut self, error: KafkaError) {
        match self.txn_mut().state {
            TxnState::InTransaction => self.txn_begin_end(false),
            TxnState::Committing => {
                // commitTransaction throws; the application aborts.
                self.txn_emit(ProducerAction::TxnEndReturn { error: Some(error) });
                self.txn_begin_end(false);
            }
            TxnState::Aborting => self.txn_fatal(error),
            _ => {}
        }
    }

    /// The application closes the producer: every record not in flight fails with
    /// `error`; once nothing is in flight, initTransactions again (see `txn_drive`).
    fn txn_fatal(&mut self, error: KafkaError) {
        let t = self.txn_mut();
        let open = matches!(
            t.state,
            TxnState::InTransaction | TxnState::Committing | TxnState::Aborting
        );
        t.state = TxnState::Fatal;
        t.new_partitions.clear();
        t.partitions.clear();
        t.records = 0;
        t.offsets = None;
        t.offsets_added = false;
        if open {
            self.txn_emit(ProducerAction::TxnEndReturn { error: Some(error) });
        }
        self.fail_unsent(error);
        let waiting: Vec<BatchId> = self
            .batches
            .iter()
            .filter(|(_, b)| !b.in_flight)
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.fail(id, error);
        }
    }

    /// Transactional requests and state changes that need no new input.
    pub(super) fn txn_drive(&mut self, now_ms: u64) {
        let backoff = self.config.retry_backoff_ms;
        let idle = self.batches.is_empty() && self.unsent.is_empty() && self.produce_in_flight == 0;
        let t = self.txn.as_mut().expect("a transactional producer");
        match t.state {
            TxnState::Fatal => {
                if t.request_in_flight || !idle {
                    return;
                }
                // A new producer: no id, no sequences, the coordinator looked up again.
                t.state = TxnState::Initializing;
                t.coordinator = None;
                t.adding.clear();
                t.retry_at_ms = now_ms.saturating_add(backoff);
                self.identity = None;
                self.next_sequence.clear();
                self.unacknowledged.clear();
                return;
            }
            TxnState::Ready => {
                self.txn_begin_if_ready();
                return;
            }
            _ => {}
        }
        if t.request_in_flight || now_ms < t.retry_at_ms {
            return;
        }
        let transactional_id = t.id.clone();
        match t.state {
            TxnState::Initializing => {
                let body = RequestBody::InitTxnProducerId {
                    transactional_id,
                    transaction_timeout_ms: i64::try_from(self.config.transaction_timeout_ms)
                        .unwrap_or(i64::MAX),
                    producer_id_and_epoch: None,
                };
                self.txn_send(body, InFlight::InitTxnProducerId, now_ms);
            }
            TxnState::InTransaction | TxnState::Committing if !t.new_partitions.is_empty() => {
                let partitions: Vec<u32> = t.new_partitions.iter().copied().collect();
                let body = RequestBody::AddPartitionsToTxn {
                    transactional_id,
                    producer: self.identity.expect("a producer id in a transaction"),
                    partitions: partitions
                        .iter()
                        .map(|p| self.topic_partition(*p))
                        .collect(),
                    verify_only: false,
                };
                if self.txn_send(body, InFlight::AddPartitionsToTxn, now_ms) {
                    let t = self.txn_mut();
                    t.adding = std::mem::take(&mut t.new_partitions);
                }
            }
            TxnState::InTransaction | TxnState::Committing
                if t.offsets
                    .as_ref()
                    .is_some_and(|o| o.stage == OffsetsStage::AddOffsets) =>
            {
                let group_id = t.offsets.as_ref().expect("matched").member.group_id.clone();
                let body = RequestBody::AddOffsetsToTxn {
                    transactional_id,
                    producer: self.identity.expect("a producer id in a transaction"),
                    group_id,
                };
                self.txn_send(body, InFlight::AddOffsetsToTxn, now_ms);
            }
            TxnState::InTransaction | TxnState::Committing
                if t.offsets
                    .as_ref()
                    .is_some_and(|o| o.stage == OffsetsStage::Commit) =>
            {
                self.txn_send_offsets(transactional_id, now_ms);
            }
            TxnState::Committing | TxnState::Aborting if idle && t.offsets_settled() => {
                let commit = t.state == TxnState::Committing;
                let identity = self.identity.expect("a producer id in a transaction");
                if t.partitions.is_empty() && !t.offsets_added {
                    // Nothing reached the coordinator: Kafka completes without EndTxn.
                    self.txn_completed(identity);
                    self.txn_begin_if_ready();
                    return;
                }
                let body = RequestBody::EndTxn {
                    transactional_id,
                    producer: identity,
                    result: if commit {
                        TransactionResult::Commit
                    } else {
                        TransactionResult::Abort
                    },
                };
                self.txn_send(body, InFlight::EndTxn, now_ms);
            }
            _ => {}
        }
    }

    /// beginTransaction by the workload, unless the run drains (an application that
    /// begins its transactions itself calls [`Self::begin_transaction`]).
    fn txn_begin_if_ready(&mut self) {
        let by_application = self.config.txn_workload.by_application;
        let t = self.txn_mut();
        if t.state != TxnState::Ready || t.draining || by_application {
            return;
        }
        self.txn_begin();
    }

    fn txn_begin(&mut self) {
        let t = self.txn_mut();
        t.state = TxnState::InTransaction;
        t.records = 0;
        t.partitions.clear();
        t.new_partitions.clear();
        t.offsets = None;
        t.offsets_added = false;
        let transactional_id = t.id.clone();
        let producer = self.identity.expect("a producer id when ready");
        self.txn_emit(ProducerAction::TxnBegin {
            transactional_id,
            producer,
        });
    }

    /// Sends `body` to the coordinator (finding it first); whether it went.
    fn txn_send(&mut self, body: RequestBody, context: InFlight, now_ms: u64) -> bool {
        let t = self.txn.as_ref().expect("a transactional producer");
        let Some(coordinator) = t.coordinator else {
            let Some(broker) = self.net.least_loaded(self.metadata.candidates(), now_ms) else {
                return false;
            };
            if self.net.is_ready(broker) {
                let body = RequestBody::FindTxnCoordinator {
                    transactional_id: t.id.clone(),
                };
                self.net
                    .send(broker, body, Some(InFlight::FindTxnCoordinator), now_ms);
                self.txn_mut().request_in_flight = true;
            } else {
                self.net.connect(broker, now_ms);
            }
            return false;
        };
        if !self.net.is_ready(coordinator) {
            self.net.connect(coordinator, now_ms);
            return false;
        }
        self.net.send(coordinator, body, Some(context), now_ms);
        self.txn_mut().request_in_flight = true;
        true
    }

    /// The transaction ended as asked; `next` is the identity to use from now on.
    fn txn_completed(&mut self, next: ProducerIdentity) {
        if self.identity != Some(next) {
            // A new epoch (or id): every partition's sequence starts again at 0.
            self.next_sequence.clear();
            self.unacknowledged.clear();
        }
        self.identity = Some(next);
        let t = self.txn_mut();
        t.state = TxnState::Ready;
        t.records = 0;
        t.partitions.clear();
        t.offsets = None;
        t.offsets_added = false;
        self.txn_emit(ProducerAction::TxnEndReturn { error: None });
    }

    /// Schedules a retry; forgets the coordinator if `find`.
    fn txn_retry(&mut self, find: bool, now_ms: u64) {
        let backoff = self.config.retry_backoff_ms;
        let t = self.txn_mut();
        t.retry_at_ms = now_ms.saturating_add(backoff);
        if find {
            t.coordinator = None;
        }
    }

    /// Acts on a coordinator's error: retry, abort or start over.
    fn txn_on_error(&mut self, request: TxnRequest, error: KafkaError, now_ms: u64) {
        match classify(request, error) {
            TxnErrorAction::FindCoordinator => self.txn_retry(true, now_ms),
            TxnErrorAction::Retry => self.txn_retry(false, now_ms),
            TxnErrorAction::Abort => self.txn_abortable(error),
            TxnErrorAction::Fatal => {
                self.txn_fatal(error);
                self.txn_retry(true, now_ms);
            }
        }
    }

    pub(super) fn txn_on_find_coordinator(
        &mut self,
        result: Result<BrokerId, KafkaError>,
        now_ms: u64,
    ) {
        let t = self.txn_mut();
        t.request_in_flight = false;
        match result {
            Ok(broker) => t.coordinator = Some(broker),
            Err(error) => self.txn_on_error(TxnRequest::FindCoordinator, error, now_ms),
        }
    }

    pub(super) fn txn_on_init_producer_id(
        &mut self,
        result: Result<ProducerIdentity, KafkaError>,
        now_ms: u64,
    ) {
        let t = self.txn_mut();
        t.request_in_flight = false;
        if t.state != TxnState::Initializing {
            return;
        }
        match result {
            Ok(identity) => {
                self.identity = Some(identity);
                self.next_sequence.clear();
                self.unacknowledged.clear();
                self.txn_mut().state = TxnState::Ready;
            }
            Err(error) => self.txn_on_error(TxnRequest::InitProducerId, error, now_ms),
        }
    }

    pub(super) fn txn_on_add_partitions(
        &mut self,
        result: Result<Vec<PartitionResult>, KafkaError>,
        now_ms: u64,
    ) {
        let t = self.txn_mut();
        t.request_in_flight = false;
        let mut not_added = std::mem::take(&mut t.adding);
        if !t.may_produce() {
            return;
        }
        let mut error = None;
        match result {
            Err(e) => error = Some(e),
            Ok(results) => {
                for (tp, r) in results {
                    match r {
                        Ok(()) if not_added.remove(&tp.partition) => {
                            t.partitions.insert(tp.partition);
                        }
                        Ok(()) => {}
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        // Aborting: the partitions' batches are gone, they need not be added.
        if t.state != TxnState::Aborting {
            t.new_partitions.extend(not_added);
        }
        // (Answered without every partition: the rest are asked for again.)
        if let Some(error) = error {
            self.txn_on_error(TxnRequest::AddPartitions, error, now_ms);
        }
    }

    pub(super) fn txn_on_end_txn(
        &mut self,
        result: Result<ProducerIdentity, KafkaError>,
        now_ms: u64,
    ) {
        let t = self.txn_mut();
        t.request_in_flight = false;
        if !matches!(t.state, TxnState::Committing | TxnState::Aborting) {
            return;
        }
        match result {
            Ok(next) => self.txn_completed(next),
            Err(error) => self.txn_on_error(TxnRequest::EndTxn, error, now_ms),
        }
    }

    /// A transactional request got no answer: find the coordinator again and retry.
    pub(super) fn txn_on_lost(&mut self, context: InFlight, now_ms: u64) {
        let t = self.txn_mut();
        t.request_in_flight = false;
        if context == InFlight::AddPartitionsToTxn {
            let in_doubt = std::mem::take(&mut t.adding);
            if t.state == TxnState::Aborting {
                // Maybe added: the abort must reach the coordinator.
                t.partitions.extend(in_doubt);
            } else if t.may_produce() {
                t.new_partitions.extend(in_doubt);
            }
        }
        if matches!(
            context,
            InFlight::AddOffsetsToTxn | InFlight::TxnOffsetCommit
        ) && t.state == TxnState::Aborting
        {
            // Maybe added: the abort must reach the coordinator.
            t.offsets_added = true;
        }
        if context == InFlight::FindGroupCoordinator {
            self.txn_retry(false, now_ms);
            return;
        }
        if context == InFlight::TxnOffsetCommit {
            // Sent again (to the coordinator found again): Kafka's handler re-enqueues.
            self.txn_mut().group_coordinator = None;
            self.txn_retry(false, now_ms);
            return;
        }
        let request = match context {
            InFlight::FindTxnCoordinator => TxnRequest::FindCoordinator,
            InFlight::InitTxnProducerId => TxnRequest::InitProducerId,
            InFlight::AddPartitionsToTxn => TxnRequest::AddPartitions,
            InFlight::AddOffsetsToTxn => TxnRequest::AddOffsets,
            _ => TxnRequest::EndTxn,
        };
        self.txn_on_error(request, KafkaError::NetworkException, now_ms);
    }

    /// TxnOffsetCommit to the group's coordinator (found first, FindCoordinator with the
    /// group id at the least loaded broker).
    fn txn_send_offsets(&mut self, transactional_id: String, now_ms: u64) {
        let t = self.txn.as_ref().expect("a transactional producer");
        let offsets = t.offsets.as_ref().expect("offsets to send");
        let Some(coordinator) = t.group_coordinator else {
            let Some(broker) = self.net.least_loaded(self.metadata.candidates(), now_ms) else {
                return;
            };
            if self.net.is_ready(broker) {
                let body = RequestBody::FindCoordinator {
                    key: offsets.member.group_id.clone(),
                };
                self.net
                    .send(broker, body, Some(InFlight::FindGroupCoordinator), now_ms);
                self.txn_mut().request_in_flight = true;
            } else {
                self.net.connect(broker, now_ms);
            }
            return;
        };
        if !self.net.is_ready(coordinator) {
            self.net.connect(coordinator, now_ms);
            return;
        }
        let body = RequestBody::TxnOffsetCommit(TxnOffsetCommitRequest {
            transactional_id,
            producer: self.identity.expect("a producer id in a transaction"),
            member: offsets.member.clone(),
            offsets: offsets.offsets.clone(),
        });
        self.net
            .send(coordinator, body, Some(InFlight::TxnOffsetCommit), now_ms);
        self.txn_mut().request_in_flight = true;
    }

    /// Whether the open transaction still waits for this answer (it was not aborted or
    /// ended meanwhile).
    fn txn_offsets_expected(&mut self, stage: OffsetsStage) -> bool {
        let t = self.txn_mut();
        t.request_in_flight = false;
        matches!(t.state, TxnState::InTransaction | TxnState::Committing)
            && t.offsets.as_ref().is_some_and(|o| o.stage == stage)
    }

    pub(super) fn txn_on_add_offsets(&mut self, error: Option<KafkaError>, now_ms: u64) {
        if !self.txn_offsets_expected(OffsetsStage::AddOffsets) {
            return;
        }
        match error {
            None => {
                let t = self.txn_mut();
                t.offsets_added = true;
                t.offsets.as_mut().expect("expected").stage = OffsetsStage::Commit;
            }
            Some(error) => self.txn_on_error(TxnRequest::AddOffsets, error, now_ms),
        }
    }

    pub(super) fn txn_on_find_group_coordinator(
        &mut self,
        result: Result<BrokerId, KafkaError>,
        now_ms: u64,
    ) {
        if !self.txn_offsets_expected(OffsetsStage::Commit) {
            return;
        }
        match result {
            Ok(broker) => self.txn_mut().group_coordinator = Some(broker),
            Err(_) => self.txn_retry(false, now_ms),
        }
    }

    pub(super) fn txn_on_txn_offset_commit(
        &mut self,
        partitions: Vec<(TopicPartition, Option<KafkaError>)>,
        now_ms: u64,
    ) {
        if !self.txn_offsets_expected(OffsetsStage::Commit) {
            return;
        }
        let Some(error) = partitions.iter().find_map(|(_, e)| *e) else {
            self.txn_mut().offsets.as_mut().expect("expected").stage = OffsetsStage::Done;
            return;
        };
        match classify(TxnRequest::TxnOffsetCommit, error) {
            TxnErrorAction::FindCoordinator => {
                self.txn_mut().group_coordinator = None;
                self.txn_retry(false, now_ms);
            }
            _ => self.txn_on_error(TxnRequest::TxnOffsetCommit, error, now_ms),
        }
    }
}
