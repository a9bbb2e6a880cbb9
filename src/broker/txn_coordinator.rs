//! The transaction coordinator (KIP-98): each `transactional.id`'s producer id and epoch,
//! the transaction it has open, and the two-phase commit that ends it, kept on the internal
//! topic `__transaction_state`.
//!
//! Owns: the transactions of the `__transaction_state` partitions this broker leads (a
//! `transactional.id` lives in partition `abs(java hashCode(id)) % partitions`, and that
//! partition's leader coordinates it, in the coordinator epoch that is the partition's
//! leader epoch), their loading from the log when leadership arrives and unloading when it
//! leaves, the transaction state machine, epoch fencing, timeouts, and the transaction
//! markers that end a transaction on every partition it wrote.
//!
//! Rules (apache/kafka `TransactionCoordinator`, `TransactionMetadata`, KIP-98, KIP-360,
//! KIP-890):
//! - States and their legal predecessors ([`TransactionState::valid_previous_states`]):
//!   Empty ← {Empty, CompleteCommit, CompleteAbort}; Ongoing ← {Ongoing, Empty,
//!   CompleteCommit, CompleteAbort}; PrepareCommit ← {Ongoing}; PrepareAbort ← {Ongoing,
//!   PrepareEpochFence}; CompleteCommit ← {PrepareCommit}; CompleteAbort ← {PrepareAbort};
//!   PrepareEpochFence ← {Ongoing}. A request that would need any other step is refused
//!   (`INVALID_TXN_STATE`); completing one is a broken invariant (asserted).
//! - A change is staged as the id's pending state and applied only once its record, appended
//!   acks=all to `__transaction_state`, reaches the HW. While a change is pending the id's
//!   requests get `CONCURRENT_TRANSACTIONS`. A failed append clears the pending state and
//!   answers `COORDINATOR_NOT_AVAILABLE` (not enough replicas, timeouts) or `NOT_COORDINATOR`
//!   (leadership lost).
//! - InitProducerId: a new id gets a fresh producer id and epoch 0; an id in Empty or
//!   Complete* gets its epoch bumped (a new producer id at epoch 0 once the epoch is
//!   exhausted); an id with an Ongoing transaction is fenced — epoch + 1 through
//!   PrepareEpochFence into PrepareAbort, whose markers abort the transaction — and answered
//!   `CONCURRENT_TRANSACTIONS`, so the producer retries and gets the next epoch once the
//!   abort completes. In Prepare*: `CONCURRENT_TRANSACTIONS`.
//! - AddPartitionsToTxn / AddOffsetsToTxn (the group's `__consumer_offsets` partition): a
//!   wrong producer id is `INVALID_PRODUCER_ID_MAPPING`, another epoch `PRODUCER_FENCED`, a
//!   transaction in Prepare* `CONCURRENT_TRANSACTIONS`; otherwise the transaction is Ongoing
//!   with the partitions added (answered at once if it holds them all already). The verify
//!   variant (KIP-890 part 1, asked by a partition leader) changes nothing.
//! - EndTxn: Ongoing → PrepareCommit / PrepareAbort, answered once written; then markers go
//!   to every partition of the transaction, and when all are written the transaction is
//!   CompleteCommit / CompleteAbort (with no partitions). A retry of the same kind is
//!   `CONCURRENT_TRANSACTIONS` in Prepare* and success in Complete*; another kind, or
//!   Empty, is `INVALID_TXN_STATE`. With `transaction.version` 2 (KIP-890 part 2,
//!   [`TxnCoordinatorConfig::transaction_version_2`]) every EndTxn bumps the producer epoch,
//!   the markers carry the new epoch, and a retry is recognised by the current epoch being
//!   the request's + 1.
//! - Markers: a written marker takes its partition off the list; a leader that moved or a
//!   retriable error sends it again (at the next tick); `INVALID_PRODUCER_EPOCH` or
//!   `TRANSACTION_COORDINATOR_FENCED` means a newer coordinator or producer epoch owns the
//!   transaction, and this coordinator stops sending its markers (Kafka's `abortSending`).
//! - Timeouts: every `transaction.abort.timed.out.transaction.cleanup.interval.ms`, a
//!   transaction Ongoing for longer than its timeout is fenced and aborted like above.
//! - Loading: the latest record of each id wins; transactions in Prepare* have their markers
//!   sent again; Ongoing ones wait for their timeout. Until loaded, an id's requests get
//!   `COORDINATOR_LOAD_IN_PROGRESS`; the ids of partitions not led here `NOT_COORDINATOR`.
//!
//! Pure: the broker hands in requests with a token (and a producer id allocator),
//! leadership changes, append and marker outcomes, and the clock; the coordinator answers
//! through [`TxnCoordinatorAction`]s. The broker core (`broker::server`) runs one, feeds it
//! the `__transaction_state` leadership its LeaderAndIsr requests bring, appends its
//! records, and delivers its markers as WriteTxnMarkers requests to the partitions'
//! leaders.
//! Simplifications: records are JSON, not Kafka's binary schemas; no transactional id
//! expiration (so no Dead state and no tombstones written); the transaction version is the
//! coordinator's, not negotiated per client; a request's errors are one error, not one per
//! partition; a failed `CompleteX` append is retried at the next tick.

use super::coordinator::{partition_for, OFFSETS_TOPIC};
use super::types::{KafkaError, ProducerId, ProducerIdentity, TopicPartition};
use crate::coverage::Mark;
use crate::log::LeaderEpoch;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The internal topic of transactions.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// `transaction.state.log.num.partitions` by default.
pub const DEFAULT_TRANSACTION_STATE_PARTITIONS: u32 = 50;
/// `transaction.state.log.replication.factor` by default.
pub const DEFAULT_TRANSACTION_STATE_REPLICATION_FACTOR: u16 = 3;
/// `transaction.state.log.min.isr` by default.
pub const DEFAULT_TRANSACTION_STATE_MIN_ISR: u16 = 2;
/// `transaction.max.timeout.ms` by default: the longest transaction timeout accepted.
pub const DEFAULT_TRANSACTION_MAX_TIMEOUT_MS: i64 = 900_000;
/// The producer's `transaction.timeout.ms` by default.
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: i64 = 60_000;
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` by default.
pub const DEFAULT_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS: u64 = 10_000;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Kafka's `TransactionMetadata.isEpochExhausted`: `Short.MaxValue` is kept back so the
/// coordinator can always fence a producer.
pub fn is_epoch_exhausted(producer_epoch: i16) -> bool {
    producer_epoch >= i16::MAX - 1
}

/// What the coordinator needs to know (the broker's transaction settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnCoordinatorConfig {
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_partitions: u32,
    /// `offsets.topic.num.partitions` (AddOffsetsToTxn adds the group's offsets partition).
    pub offsets_partitions: u32,
    /// `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// `transaction.version` 2 (KIP-890 part 2): the producer epoch is bumped by every
    /// EndTxn. Off, the coordinator behaves as before KIP-890 (the legacy switch of the
    /// `txn-delayed-endtxn` zoo entry: no epoch bump per transaction).
    pub transaction_version_2: bool,
}

impl Default for TxnCoordinatorConfig {
    /// Kafka's defaults (Kafka 4.0: transaction version 2).
    fn default() -> Self {
        TxnCoordinatorConfig {
            transaction_state_partitions: DEFAULT_TRANSACTION_STATE_PARTITIONS,
            offsets_partitions: super::coordinator::DEFAULT_OFFSETS_PARTITIONS,
            transaction_max_timeout_ms: DEFAULT_TRANSACTION_MAX_TIMEOUT_MS,
            abort_timed_out_transaction_cleanup_interval_ms:
                DEFAULT_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS,
            transaction_version_2: true,
        }
    }
}

/// A transaction's state (Kafka's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TransactionState {
    /// No transaction open.
    Empty,
    /// Partitions have been added: a transaction is open.
    Ongoing,
    /// Committing: the commit is written, the markers are being written.
    PrepareCommit,
    /// Aborting: the abort is written, the markers are being written.
    PrepareAbort,
    /// Committed: every marker written.
    CompleteCommit,
    /// Aborted: every marker written.
    CompleteAbort,
    /// Fencing the producer of an ongoing transaction before aborting it (never stored).
    PrepareEpochFence,
}

impl TransactionState {
    /// Every state.
    pub const ALL: [TransactionState; 7] = [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::PrepareAbort,
        TransactionState::CompleteCommit,
        TransactionState::CompleteAbort,
        TransactionState::PrepareEpochFence,
    ];

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The states this one may follow (Kafka's `validPreviousStates`).
    pub fn valid_previous_states(self) -> &'static [TransactionState] {
        use TransactionState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether `self → to` is a legal transition.
    pub fn can_transition_to(self, to: TransactionState) -> bool {
        to.valid_previous_states().contains(&self)
    }

    fn is_prepare(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionResult {
    /// COMMIT markers.
    Commit,
    /// ABORT markers.
    Abort,
}

impl TransactionResult {
    fn prepare_state(self) -> TransactionState {
        match self {
            TransactionResult::Commit => TransactionState::PrepareCommit,
            TransactionResult::Abort => TransactionState::PrepareAbort,
        }
    }

    fn complete_state(self) -> TransactionState {
        match self {
            TransactionResult::Commit => TransactionState::CompleteCommit,
            TransactionResult::Abort => TransactionState::CompleteAbort,
        }
    }

    fn of_state(state: TransactionState) -> Option<TransactionResult> {
        match state {
            TransactionState::PrepareCommit | TransactionState::CompleteCommit => {
                Some(TransactionResult::Commit)
            }
            TransactionState::PrepareAbort | TransactionState::CompleteAbort => {
                Some(TransactionResult::Abort)
            }
            _ => None,
        }
    }
}

/// A `transactional.id`'s metadata: what a `__transaction_state` record stores (Kafka's
/// `TransactionLogValue`), and what the coordinator serves once it is written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionMetadata {
    /// The producer id.
    pub producer_id: ProducerId,
    /// The producer id before the last rotation (KIP-360 retries), or none.
    pub previous_producer_id: ProducerId,
    /// TV2: the producer id the transaction's completion rotates to (epoch exhausted).
    pub next_producer_id: ProducerId,
    /// The current producer epoch ([`NO_PRODUCER_EPOCH`] before the first InitProducerId).
    pub producer_epoch: i16,
    /// The epoch before the last bump (KIP-360 retries; TV2 retries), or none.
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub txn_timeout_ms: i64,
    /// The state.
    pub state: TransactionState,
    /// The partitions of the open transaction (those whose markers are due in Prepare*).
    pub topic_partitions: BTreeSet<TopicPartition>,
    /// When the open transaction started (its first partition was added).
    pub txn_start_timestamp_ms: Option<u64>,
    /// When this metadata last changed.
    pub txn_last_update_timestamp_ms: u64,
}

impl TransactionMetadata {
    fn identity(&self) -> ProducerIdentity {
        ProducerIdentity {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
        }
    }
}

/// A record of `__transaction_state` (`None`: a tombstone; never written, since ids do
/// not expire, but read as a deletion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    /// The `transactional.id`.
    pub transactional_id: String,
    /// Its metadata.
    pub value: Option<TransactionMetadata>,
}

#[derive(Serialize, Deserialize)]
struct TxnRecordKey {
    transactional_id: String,
}

impl TxnRecord {
    /// The record's key and value bytes (a `None` value is a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = TxnRecordKey {
            transactional_id: self.transactional_id.clone(),
        };
        let json = |v: &TransactionMetadata| serde_json::to_vec(v).expect("plain data");
        (
            serde_json::to_vec(&key).expect("plain data serializes"),
            self.value.as_ref().map(json),
        )
    }

    /// A record read back from the log; `None` for one that is not a transaction record.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<TxnRecord> {
        let key: TxnRecordKey = serde_json::from_slice(key).ok()?;
        let value = match value {
            Some(v) => Some(serde_json::from_slice(v).ok()?),
            None => None,
        };
        Some(TxnRecord {
            transactional_id: key.transactional_id,
            value,
        })
    }
}

/// InitProducerId with a `transactional.id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    /// The `transactional.id`.
    pub transactional_id: String,
    /// The producer's `transaction.timeout.ms`.
    pub transaction_timeout_ms: i64,
    /// KIP-360: the producer id and epoch the producer holds, when it re-initializes.
    pub producer_id_and_epoch: Option<ProducerIdentity>,
}

/// A request of a transactional producer (or, for the verify variant, of a partition
/// leader) to the transaction coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnRequest {
    /// Get (or bump) the producer id and epoch of a `transactional.id`.
    InitProducerId(InitProducerIdRequest),
    /// Add partitions to the open transaction (opening it).
    AddPartitionsToTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer.
        producer: ProducerIdentity,
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// KIP-890 part 1: a partition leader asks whether these partitions are in the open
    /// transaction of the producer; nothing changes.
    VerifyPartitionsInTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer.
        producer: ProducerIdentity,
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// Add the offsets partition of `group_id` to the open transaction.
    AddOffsetsToTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer.
        producer: ProducerIdentity,
        /// The consumer group whose offsets the transaction commits.
        group_id: String,
    },
    /// Commit or abort the open transaction.
    EndTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer.
        producer: ProducerIdentity,
        /// Commit or abort.
        result: TransactionResult,
    },
}

impl TxnRequest {
    fn transactional_id(&self) -> &str {
        match self {
            TxnRequest::InitProducerId(r) => &r.transactional_id,
            TxnRequest::AddPartitionsToTxn {
                transactional_id, ..
            }
            | TxnRequest::VerifyPartitionsInTxn {
                transactional_id, ..
            }
            | TxnRequest::AddOffsetsToTxn {
                transactional_id, ..
            }
            | TxnRequest::EndTxn {
                transactional_id, ..
            } => transactional_id,
        }
    }

    /// The answer carrying `error` for this kind of request.
    fn error(&self, error: KafkaError) -> TxnResponse {
        match self {
            TxnRequest::InitProducerId(_) => TxnResponse::InitProducerId(Err(error)),
            TxnRequest::AddPartitionsToTxn { .. } => TxnResponse::AddPartitionsToTxn(Err(error)),
            TxnRequest::VerifyPartitionsInTxn { .. } => {
                TxnResponse::VerifyPartitionsInTxn(Err(error))
            }
            TxnRequest::AddOffsetsToTxn { .. } => TxnResponse::AddOffsetsToTxn(Err(error)),
            TxnRequest::EndTxn { .. } => TxnResponse::EndTxn(Err(error)),
        }
    }
}

/// One partition's answer.
pub type PartitionResult = (TopicPartition, Result<(), KafkaError>);

/// The coordinator's answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResponse {
    /// The producer id and epoch to use.
    InitProducerId(Result<ProducerIdentity, KafkaError>),
    /// The partitions are in the transaction.
    AddPartitionsToTxn(Result<(), KafkaError>),
    /// Per partition: in the transaction, or `TRANSACTION_ABORTABLE`.
    VerifyPartitionsInTxn(Result<Vec<PartitionResult>, KafkaError>),
    /// The offsets partition is in the transaction.
    AddOffsetsToTxn(Result<(), KafkaError>),
    /// The end is written; the producer id and epoch to use next (TV2: bumped).
    EndTxn(Result<ProducerIdentity, KafkaError>),
}

/// Transaction markers to write (Kafka's `WriteTxnMarkers` entries of one transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMarkers {
    /// The `transactional.id` (to report back with).
    pub transactional_id: String,
    /// The producer id and the epoch the markers carry.
    pub producer: ProducerIdentity,
    /// COMMIT or ABORT.
    pub result: TransactionResult,
    /// The coordinator epoch (the `__transaction_state` partition's leader epoch).
    pub coordinator_epoch: LeaderEpoch,
    /// The partitions, each to its leader.
    pub partitions: Vec<TopicPartition>,
}

/// What the shell (the broker core) must do.
#[derive(Clone, Debug, PartialEq)]
pub enum TxnCoordinatorAction {
    /// Answer the request that came with `token`.
    Respond {
        /// The request's token.
        token: u64,
        /// The answer.
        body: TxnResponse,
    },
    /// Append `records` to `__transaction_state` partition `partition` as its leader in
    /// `leader_epoch`, acks=all; report with [`TransactionCoordinator::on_append_done`].
    Append {
        /// Echoed back.
        id: u64,
        /// The `__transaction_state` partition.
        partition: u32,
        /// The leader epoch the coordinator loaded in.
        leader_epoch: LeaderEpoch,
        /// The records.
        records: Vec<TxnRecord>,
    },
    /// Write markers to the leaders of their partitions; report each partition with
    /// [`TransactionCoordinator::on_markers_done`].
    WriteTxnMarkers(TxnMarkers),
    /// Announce an event for the checkers and the timeline.
    Announce(TxnCoordinatorEvent),
}

/// What a transaction coordinator announces (node `broker-<n>`).
/// Serialized as `{"kind": <kebab-case name>, "detail": {fields}}`.
///
/// | kind | detail | when |
/// |---|---|---|
/// | `txn-state` | `transactional_id`, `state`, `producer_id`, `producer_epoch` | a transition was written (or loaded) |
/// | `txn-coordinator-loaded` | `partition`, `leader_epoch`, `transactional_ids` | it loaded a `__transaction_state` partition |
/// | `txn-coordinator-unloaded` | `partition`, `transactional_ids` | it gave one up |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum TxnCoordinatorEvent {
    /// A transaction's state as written.
    TxnState {
        /// The `transactional.id`.
        transactional_id: String,
        /// Its state.
        state: TransactionState,
        /// Its producer id.
        producer_id: ProducerId,
        /// Its producer epoch.
        producer_epoch: i16,
    },
    /// It loaded a `__transaction_state` partition.
    TxnCoordinatorLoaded {
        /// The partition.
        partition: u32,
        /// The leader (coordinator) epoch.
        leader_epoch: LeaderEpoch,
        /// The ids loaded.
        transactional_ids: Vec<String>,
    },
    /// It unloaded a `__transaction_state` partition.
    TxnCoordinatorUnloaded {
        /// The partition.
        partition: u32,
        /// The ids dropped.
        transactional_ids: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// Leader in this epoch; waiting for the log to be readable.
    Loading(LeaderEpoch),
    /// Serving in this (coordinator) epoch.
    Loaded(LeaderEpoch),
}

/// One `transactional.id` as the coordinator holds it.
#[derive(Clone, Debug)]
struct Txn {
    partition: u32,
    coordinator_epoch: LeaderEpoch,
    metadata: TransactionMetadata,
    /// The state being written, if any.
    pending_state: Option<TransactionState>,
    /// Prepare*: the partitions whose marker is not written yet.
    markers_pending: BTreeSet<TopicPartition>,
    /// Prepare*: partitions whose marker failed, sent again at the next tick.
    markers_retry: BTreeSet<TopicPartition>,
    /// Prepare*: writing CompleteX failed; try again at the next tick.
    complete_retry: bool,
    /// A fence's append failed with the epoch already bumped: the next fence reuses it.
    has_failed_epoch_fence: bool,
}

/// Who waits on a PrepareX append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndReply {
    /// The producer's EndTxn.
    EndTxn(u64),
    /// An InitProducerId that fenced an ongoing transaction: `CONCURRENT_TRANSACTIONS`.
    Fence(u64),
    /// Nobody (a timed-out transaction).
    None,
}

/// Why an append was made.
#[derive(Clone, Debug)]
enum Purpose {
    InitProducerId {
        token: u64,
    },
    AddPartitions {
        token: u64,
        offsets: bool,
    },
    Prepare {
        reply: EndReply,
        /// The epoch fenced to, when this is a fence's abort.
        fence: Option<i16>,
    },
    Complete,
}

#[derive(Clone, Debug)]
struct PendingAppend {
    transactional_id: String,
    coordinator_epoch: LeaderEpoch,
    transit: TransactionMetadata,
    purpose: Purpose,
}

/// The transaction coordinator of one broker.
pub struct TransactionCoordinator {
    config: TxnCoordinatorConfig,
    partitions: BTreeMap<u32, Load>,
    txns: BTreeMap<String, Txn>,
    appends: BTreeMap<u64, PendingAppend>,
    next_append: u64,
    now_ms: u64,
    next_abort_check_ms: u64,
    actions: Vec<TxnCoordinatorAction>,
}

impl TransactionCoordinator {
    /// A coordinator leading no `__transaction_state` partition yet.
    pub fn new(config: TxnCoordinatorConfig) -> Self {
        let next_abort_check_ms = config.abort_timed_out_transaction_cleanup_interval_ms;
        TransactionCoordinator {
            config,
            partitions: BTreeMap::new(),
            txns: BTreeMap::new(),
            appends: BTreeMap::new(),
            next_append: 1,
            now_ms: 0,
            next_abort_check_ms,
            actions: Vec::new(),
        }
    }

    /// The actions accumulated since the last call.
    pub fn take_actions(&mut self) -> Vec<TxnCoordinatorAction> {
        std::mem::take(&mut self.actions)
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> u32 {
        partition_for(transactional_id, self.config.transaction_state_partitions)
    }

    /// The `__transaction_state` partitions waiting to load, with their leader epochs.
    pub fn loading(&self) -> Vec<(u32, LeaderEpoch)> {
        self.partitions
            .iter()
            .filter_map(|(p, l)| match l {
                Load::Loading(epoch) => Some((*p, *epoch)),
                Load::Loaded(_) => None,
            })
            .collect()
    }

    /// A transactional id's written metadata, if this broker coordinates it.
    pub fn metadata(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.txns.get(transactional_id).map(|t| &t.metadata)
    }

    /// The state a transactional id is being moved to, if a write is in flight.
    pub fn pending_state(&self, transactional_id: &str) -> Option<TransactionState> {
        self.txns
            .get(transactional_id)
            .and_then(|t| t.pending_state)
    }

    /// The partitions whose markers a transaction in Prepare* still waits for.
    pub fn markers_pending(&self, transactional_id: &str) -> Vec<TopicPartition> {
        self.txns
            .get(transactional_id)
            .map(|t| t.markers_pending.iter().copied().collect())
            .unwrap_or_default()
    }

    fn announce(&mut self, event: TxnCoordinatorEvent) {
        self.actions.push(TxnCoordinatorAction::Announce(event));
    }

    fn respond(&mut self, token: u64, body: TxnResponse) {
        self.actions
            .push(TxnCoordinatorAction::Respond { token, body });
    }

    // --- leadership of `__transaction_state` partitions ---

    /// This broker became leader of `__transaction_state` partition `partition` in
    /// `leader_epoch` (its coordinator epoch): load it once its log is readable
    /// ([`Self::on_loaded`]); until then its ids answer `COORDINATOR_LOAD_IN_PROGRESS`.
    pub fn on_become_leader(&mut self, partition: u32, leader_epoch: LeaderEpoch) {
        let current = self.partitions.get(&partition).copied();
        match current {
            Some(Load::Loading(e)) | Some(Load::Loaded(e)) if e == leader_epoch => return,
            Some(_) => self.unload(partition),
            None => {}
        }
        self.partitions
            .insert(partition, Load::Loading(leader_epoch));
    }

    /// This broker no longer leads `__transaction_state` partition `partition`: its
    /// transactions are dropped here (a write in flight answers `NOT_COORDINATOR`).
    pub fn on_resign(&mut self, partition: u32) {
        if self.partitions.contains_key(&partition) {
            self.unload(partition);
        }
    }

    /// This broker's ensemble session ended: the controller has moved (or will move) every
    /// leadership it held, so every partition's transactions are dropped here at once, without
    /// waiting for the controller's word (which a slow link can delay by seconds). A later
    /// LeaderAndIsr that names this broker leader again loads them again.
    pub fn resign_all(&mut self) {
        let partitions: Vec<u32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            self.unload(partition);
        }
    }

    /// Whether this coordinator holds (or is loading) partition `partition`.
    pub fn owns(&self, partition: u32) -> bool {
        self.partitions.contains_key(&partition)
    }

    fn unload(&mut self, partition: u32) {
        self.partitions.remove(&partition);
        let ids: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.partition == partition)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.txns.remove(id);
        }
        self.announce(TxnCoordinatorEvent::TxnCoordinatorUnloaded {
            partition,
            transactional_ids: ids,
        });
    }

    /// The committed records of `__transaction_state` partition `partition`, read as leader
    /// in `leader_epoch`: the latest record of each id is served from now on, and the
    /// markers of transactions in Prepare* are sent again.
    pub fn on_loaded(
        &mut self,
        partition: u32,
        leader_epoch: LeaderEpoch,
        records: Vec<TxnRecord>,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.partitions.get(&partition) != Some(&Load::Loading(leader_epoch)) {
            return;
        }
        let mut latest: BTreeMap<String, TransactionMetadata> = BTreeMap::new();
        for record in records {
            match record.value {
                // PrepareEpochFence is never written: a record holding it is not ours.
                Some(m) if m.state != TransactionState::PrepareEpochFence => {
                    latest.insert(record.transactional_id, m);
                }
                Some(_) => {}
                None => {
                    latest.remove(&record.transactional_id);
                }
            }
        }
        self.partitions
            .insert(partition, Load::Loaded(leader_epoch));
        let ids: Vec<String> = latest.keys().cloned().collect();
        for (id, metadata) in latest {
            self.announce_state(&id, &metadata);
            let prepare = metadata.state.is_prepare();
            let txn = Txn {
                partition,
                coordinator_epoch: leader_epoch,
                markers_pending: if prepare {
                    metadata.topic_partitions.clone()
                } else {
                    BTreeSet::new()
                },
                metadata,
                pending_state: None,
                markers_retry: BTreeSet::new(),
                complete_retry: false,
                has_failed_epoch_fence: false,
            };
            let previous = self.txns.insert(id.clone(), txn);
            assert!(
                previous.is_none(),
                "transactional id {id} loaded while coordinated already"
            );
            if prepare {
                crate::coverage::hit(Mark::TxnMarkersResentOnLoad);
                self.send_markers(&id);
            }
        }
        self.announce(TxnCoordinatorEvent::TxnCoordinatorLoaded {
            partition,
            leader_epoch,
            transactional_ids: ids,
        });
    }

    fn announce_state(&mut self, id: &str, metadata: &TransactionMetadata) {
        self.announce(TxnCoordinatorEvent::TxnState {
            transactional_id: id.to_string(),
            state: metadata.state,
            producer_id: metadata.producer_id,
            producer_epoch: metadata.producer_epoch,
        });
    }

    /// Whether this broker serves `transactional_id` now.
    fn available(&self, transactional_id: &str) -> Result<LeaderEpoch, KafkaError> {
        match self.partitions.get(&self.partition_of(transactional_id)) {
            None => Err(KafkaError::NotCoordinator),
            Some(Load::Loading(_)) => Err(KafkaError::CoordinatorLoadInProgress),
            Some(Load::Loaded(epoch)) => Ok(*epoch),
        }
    }

    // --- requests ---

    /// A transaction request. `next_producer_id` hands out a fresh producer id (for a new
    /// `transactional.id`, or when an epoch is exhausted).
    pub fn on_request(
        &mut self,
        token: u64,
        request: TxnRequest,
        now_ms: u64,
        next_producer_id: &mut dyn FnMut() -> ProducerId,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        if request.transactional_id().is_empty() {
            self.respond(token, request.error(KafkaError::InvalidRequest));
            return;
        }
        if let TxnRequest::InitProducerId(r) = &request {
            let timeout = r.transaction_timeout_ms;
            if timeout <= 0 || timeout > self.config.transaction_max_timeout_ms {
                self.respond(token, request.error(KafkaError::InvalidTransactionTimeout));
                return;
            }
        }
        let coordinator_epoch = match self.available(request.transactional_id()) {
            Ok(epoch) => epoch,
            Err(error) => {
                self.respond(token, request.error(error));
                return;
            }
        };
        let outcome = match &request {
            TxnRequest::InitProducerId(r) => {
                self.on_init_producer_id(token, r, coordinator_epoch, next_producer_id)
            }
            TxnRequest::AddPartitionsToTxn {
                transactional_id,
                producer,
                partitions,
            } => self.on_add_partitions(token, transactional_id, *producer, partitions, false),
            TxnRequest::AddOffsetsToTxn {
                transactional_id,
                producer,
                group_id,
            } => {
                let partition = TopicPartition::new(
                    OFFSETS_TOPIC,
                    partition_for(group_id, self.config.offsets_partitions),
                );
                self.on_add_partitions(token, transactional_id, *producer, &[partition], true)
            }
            TxnRequest::VerifyPartitionsInTxn {
                transactional_id,
                producer,
                partitions,
            } => self
                .on_verify_partitions(transactional_id, *producer, partitions)
                .map(Some),
            TxnRequest::EndTxn {
                transactional_id,
                producer,
                result,
            } => self.on_end_txn(
                token,
                transactional_id,
                *producer,
                *result,
                next_producer_id,
            ),
        };
        match outcome {
            Err(error) => self.respond(token, request.error(error)),
            Ok(Some(body)) => self.respond(token, body),
            // Answered when its write completes.
            Ok(None) => {}
        }
    }

    /// Kafka's `handleInitProducerId` with `prepareInitProducerIdTransit`.
    fn on_init_producer_id(
        &mut self,
        token: u64,
        request: &InitProducerIdRequest,
        coordinator_epoch: LeaderEpoch,
        next_producer_id: &mut dyn FnMut() -> ProducerId,
    ) -> Result<Option<TxnResponse>, KafkaError> {
        let id = request.transactional_id.as_str();
        let now = self.now_ms;
        if !self.txns.contains_key(id) {
            // Held with no epoch yet, so the first write bumps it to 0 (Kafka's
            // `putTransactionStateIfNotExists`).
            let txn = Txn {
                partition: self.partition_of(id),
                coordinator_epoch,
                metadata: TransactionMetadata {
                    producer_id: next_producer_id(),
                    previous_producer_id: ProducerId::NONE,
                    next_producer_id: ProducerId::NONE,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    txn_timeout_ms: request.transaction_timeout_ms,
                    state: TransactionState::Empty,
                    topic_partitions: BTreeSet::new(),
                    txn_start_timestamp_ms: None,
                    txn_last_update_timestamp_ms: now,
                },
                pending_state: None,
                markers_pending: BTreeSet::new(),
                markers_retry: BTreeSet::new(),
                complete_retry: false,
                has_failed_epoch_fence: false,
            };
            self.txns.insert(id.to_string(), txn);
        }
        let txn = &self.txns[id];
        let m = &txn.metadata;
        if txn.pending_state.is_some() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        // KIP-360: a producer re-initializing with the id and epoch it holds.
        let expected = request.producer_id_and_epoch;
        let valid_producer_id = |e: &ProducerIdentity| {
            m.producer_epoch == NO_PRODUCER_EPOCH
                || e.producer_id == m.producer_id
                || (e.producer_id == m.previous_producer_id && is_epoch_exhausted(e.producer_epoch))
        };
        if !expected.iter().all(valid_producer_id) {
            return Err(KafkaError::ProducerFenced);
        }
        match m.state {
            TransactionState::PrepareCommit | TransactionState::PrepareAbort => {
                Err(KafkaError::ConcurrentTransactions)
            }
            TransactionState::Ongoing => {
                crate::coverage::hit(Mark::TxnEpochFenced);
                self.fence_and_abort(id, EndReply::Fence(token))?;
                Ok(None)
            }
            TransactionState::PrepareEpochFence => Err(KafkaError::InvalidTxnState),
            TransactionState::Empty
            | TransactionState::CompleteCommit
            | TransactionState::CompleteAbort => {
                let mut transit = m.clone();
                transit.state = TransactionState::Empty;
                transit.txn_timeout_ms = request.transaction_timeout_ms;
                transit.topic_partitions.clear();
                transit.txn_start_timestamp_ms = None;
                transit.txn_last_update_timestamp_ms = now;
                let rotate = is_epoch_exhausted(m.producer_epoch)
                    && expected
                        .iter()
                        .all(|e| e.producer_epoch == m.producer_epoch);
                if rotate {
                    transit.previous_producer_id = m.producer_id;
                    transit.producer_id = next_producer_id();
                    transit.producer_epoch = 0;
                    transit.last_producer_epoch = if expected.is_some() {
                        m.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                } else {
                    // Saturating: an exhausted epoch is refused below, never bumped.
                    let bumped = m.producer_epoch.saturating_add(1);
                    let (epoch, last) = match expected {
                        None => (bumped, NO_PRODUCER_EPOCH),
                        Some(e)
                            if m.producer_epoch == NO_PRODUCER_EPOCH
                                || e.producer_epoch == m.producer_epoch =>
                        {
                            (bumped, m.producer_epoch)
                        }
                        // A retry of a bump that succeeded: the same epoch again.
                        Some(e) if e.producer_epoch == m.last_producer_epoch => {
                            (m.producer_epoch, m.last_producer_epoch)
                        }
                        Some(_) => return Err(KafkaError::ProducerFenced),
                    };
                    // Kafka throws here; an exhausted epoch that a stale producer asks to
                    // bump is refused instead.
                    if epoch != m.producer_epoch && is_epoch_exhausted(m.producer_epoch) {
                        return Err(KafkaError::ProducerFenced);
                    }
                    transit.producer_epoch = epoch;
                    transit.last_producer_epoch = last;
                }
                self.stage(id, transit, Purpose::InitProducerId { token })?;
                Ok(None)
            }
        }
    }

    /// The producer id and epoch of a request must be the transaction's.
    fn check_producer(txn: &Txn, producer: ProducerIdentity) -> Result<(), KafkaError> {
        if txn.metadata.producer_id != producer.producer_id {
            Err(KafkaError::InvalidProducerIdMapping)
        } else if txn.metadata.producer_epoch != producer.producer_epoch {
            Err(KafkaError::ProducerFenced)
        } else {
            Ok(())
        }
    }

    fn on_add_partitions(
        &mut self,
        token: u64,
        id: &str,
        producer: ProducerIdentity,
        partitions: &[TopicPartition],
        offsets: bool,
    ) -> Result<Option<TxnResponse>, KafkaError> {
        let txn = self
            .txns
            .get(id)
            .ok_or(KafkaError::InvalidProducerIdMapping)?;
        Self::check_producer(txn, producer)?;
        let m = &txn.metadata;
        if txn.pending_state.is_some() || m.state.is_prepare() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        if m.state == TransactionState::Ongoing
            && partitions.iter().all(|p| m.topic_partitions.contains(p))
        {
            return Ok(Some(if offsets {
                TxnResponse::AddOffsetsToTxn(Ok(()))
            } else {
                TxnResponse::AddPartitionsToTxn(Ok(()))
            }));
        }
        let now = self.now_ms;
        let mut transit = m.clone();
        if m.state != TransactionState::Ongoing {
            transit.txn_start_timestamp_ms = Some(now);
        }
        transit.state = TransactionState::Ongoing;
        transit.topic_partitions.extend(partitions.iter().copied());
        transit.txn_last_update_timestamp_ms = now;
        self.stage(id, transit, Purpose::AddPartitions { token, offsets })?;
        Ok(None)
    }

    fn on_verify_partitions(
        &self,
        id: &str,
        producer: ProducerIdentity,
        partitions: &[TopicPartition],
    ) -> Result<TxnResponse, KafkaError> {
        let txn = self
            .txns
            .get(id)
            .ok_or(KafkaError::InvalidProducerIdMapping)?;
        Self::check_producer(txn, producer)?;
        if txn.metadata.state.is_prepare() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        let answers = partitions
            .iter()
            .map(|p| {
                let found = txn.metadata.topic_partitions.contains(p);
                (
                    *p,
                    if found {
                        Ok(())
                    } else {
                        Err(KafkaError::TransactionAbortable)
                    },
                )
            })
            .collect();
        Ok(TxnResponse::VerifyPartitionsInTxn(Ok(answers)))
    }

    /// Kafka's `endTransaction` as the producer asks it.
    fn on_end_txn(
        &mut self,
        token: u64,
        id: &str,
        producer: ProducerIdentity,
        result: TransactionResult,
        next_producer_id: &mut dyn FnMut() -> ProducerId,
    ) -> Result<Option<TxnResponse>, KafkaError> {
        use TransactionState::*;
        let tv2 = self.config.transaction_version_2;
        let txn = self
            .txns
            .get(id)
            .ok_or(KafkaError::InvalidProducerIdMapping)?;
        let m = &txn.metadata;
        let epoch = producer.producer_epoch;
        // TV2: a retry of an EndTxn that bumped the epoch (or rotated the producer id).
        let retry_on_epoch_bump = tv2 && i32::from(m.producer_epoch) == i32::from(epoch) + 1;
        let retry_on_overflow = tv2
            && m.previous_producer_id == producer.producer_id
            && epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        let valid_epoch = if tv2 {
            match m.state {
                Ongoing | Empty | PrepareEpochFence => epoch == m.producer_epoch,
                PrepareCommit | PrepareAbort => retry_on_epoch_bump,
                CompleteCommit | CompleteAbort => retry_on_epoch_bump || retry_on_overflow,
            }
        } else {
            epoch == m.producer_epoch
        };
        if m.producer_id != producer.producer_id && !retry_on_overflow {
            return Err(KafkaError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(KafkaError::ProducerFenced);
        }
        if txn.pending_state.is_some() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        let same_kind = TransactionResult::of_state(m.state) == Some(result);
        match m.state {
            Ongoing => {
                let mut transit = m.clone();
                transit.state = result.prepare_state();
                transit.txn_last_update_timestamp_ms = self.now_ms;
                if tv2 {
                    if is_epoch_exhausted(m.producer_epoch) {
                        transit.next_producer_id = next_producer_id();
                    }
                    transit.last_producer_epoch = m.producer_epoch;
                    transit.producer_epoch = m
                        .producer_epoch
                        .checked_add(1)
                        .ok_or(KafkaError::InvalidTxnState)?;
                }
                let purpose = Purpose::Prepare {
                    reply: EndReply::EndTxn(token),
                    fence: None,
                };
                self.stage(id, transit, purpose)?;
                Ok(None)
            }
            CompleteCommit | CompleteAbort if same_kind => {
                Ok(Some(TxnResponse::EndTxn(Ok(m.identity()))))
            }
            PrepareCommit | PrepareAbort if same_kind => Err(KafkaError::ConcurrentTransactions),
            _ => Err(KafkaError::InvalidTxnState),
        }
    }

    /// Fences the producer of an Ongoing transaction (epoch + 1, through PrepareEpochFence)
    /// and aborts the transaction (PrepareAbort, written in the fenced epoch).
    fn fence_and_abort(&mut self, id: &str, reply: EndReply) -> Result<(), KafkaError> {
        let tv2 = self.config.transaction_version_2;
        let now = self.now_ms;
        let txn = &self.txns[id];
        let m = &txn.metadata;
        if !(m
            .state
            .can_transition_to(TransactionState::PrepareEpochFence)
            && TransactionState::PrepareEpochFence
                .can_transition_to(TransactionState::PrepareAbort))
        {
            return Err(KafkaError::InvalidTxnState);
        }
        // A fence whose write failed already bumped the epoch: it is not bumped twice.
        let fenced = if txn.has_failed_epoch_fence {
            m.producer_epoch
        } else {
            m.producer_epoch
                .checked_add(1)
                .ok_or(KafkaError::InvalidTxnState)?
        };
        let mut transit = m.clone();
        transit.state = TransactionState::PrepareAbort;
        transit.txn_last_update_timestamp_ms = now;
        transit.producer_epoch = fenced;
        transit.last_producer_epoch = NO_PRODUCER_EPOCH;
        if tv2 {
            // Kafka ends the fenced transaction as a TV2 EndTxn too: one more bump.
            transit.last_producer_epoch = fenced;
            transit.producer_epoch = fenced.saturating_add(1);
        }
        let purpose = Purpose::Prepare {
            reply,
            fence: Some(fenced),
        };
        self.stage_from(id, TransactionState::PrepareEpochFence, transit, purpose)
    }

    /// Stages `transit` as the id's pending state and appends it.
    fn stage(
        &mut self,
        id: &str,
        transit: TransactionMetadata,
        purpose: Purpose,
    ) -> Result<(), KafkaError> {
        let from = self.txns[id].metadata.state;
        self.stage_from(id, from, transit, purpose)
    }

    /// Stages `transit`, reached from state `from` (the written state, or the in-memory
    /// PrepareEpochFence a fence passes through); an illegal step is refused.
    fn stage_from(
        &mut self,
        id: &str,
        from: TransactionState,
        transit: TransactionMetadata,
        purpose: Purpose,
    ) -> Result<(), KafkaError> {
        let txn = self.txns.get_mut(id).expect("staged for a held id");
        if txn.pending_state.is_some() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        if !from.can_transition_to(transit.state) {
            return Err(KafkaError::InvalidTxnState);
        }
        txn.pending_state = Some(transit.state);
        let (partition, coordinator_epoch) = (txn.partition, txn.coordinator_epoch);
        let append = self.next_append;
        self.next_append += 1;
        let record = TxnRecord {
            transactional_id: id.to_string(),
            value: Some(transit.clone()),
        };
        self.appends.insert(
            append,
            PendingAppend {
                transactional_id: id.to_string(),
                coordinator_epoch,
                transit,
                purpose,
            },
        );
        self.actions.push(TxnCoordinatorAction::Append {
            id: append,
            partition,
            leader_epoch: coordinator_epoch,
            records: vec![record],
        });
        Ok(())
    }

    // --- outcomes ---

    /// The outcome of append `id`: `Ok` once the HW passed it (acks=all), else why not.
    pub fn on_append_done(&mut self, id: u64, result: Result<(), KafkaError>, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(append) = self.appends.remove(&id) else {
            return;
        };
        let tid = append.transactional_id.clone();
        let partition = self.partition_of(&tid);
        let loaded =
            self.partitions.get(&partition) == Some(&Load::Loaded(append.coordinator_epoch));
        // The id's holder for this write: unloaded (or reloaded in another epoch) since, it
        // is no longer ours to change.
        let ours = loaded
            && self.txns.get(&tid).is_some_and(|t| {
                t.coordinator_epoch == append.coordinator_epoch
                    && t.pending_state == Some(append.transit.state)
            });
        // Kafka's `appendTransactionToLog` mapping.
        let error = match result {
            Ok(()) if ours => None,
            Ok(()) => Some(KafkaError::NotCoordinator),
            Err(KafkaError::NotLeaderOrFollower | KafkaError::KafkaStorageError) => {
                Some(KafkaError::NotCoordinator)
            }
            Err(_) if !ours => Some(KafkaError::NotCoordinator),
            Err(_) => Some(KafkaError::CoordinatorNotAvailable),
        };
        match error {
            Some(error) => self.append_failed(append, ours, error),
            None => self.append_written(append),
        }
    }

    fn append_failed(&mut self, append: PendingAppend, ours: bool, error: KafkaError) {
        if ours {
            let txn = self.txns.get_mut(&append.transactional_id).expect("ours");
            txn.pending_state = None;
            match append.purpose {
                Purpose::Prepare {
                    fence: Some(fenced),
                    ..
                } => {
                    // Kafka keeps the fenced epoch in memory (never returned to a client).
                    txn.metadata.producer_epoch = fenced;
                    txn.metadata.last_producer_epoch = NO_PRODUCER_EPOCH;
                    txn.has_failed_epoch_fence = true;
                }
                Purpose::Complete if error == KafkaError::CoordinatorNotAvailable => {
                    txn.complete_retry = true;
                }
                _ => {}
            }
        }
        match append.purpose {
            Purpose::InitProducerId { token }
            | Purpose::Prepare {
                reply: EndReply::Fence(token),
                ..
            } => self.respond(token, TxnResponse::InitProducerId(Err(error))),
            Purpose::AddPartitions { token, offsets } => {
                let body = if offsets {
                    TxnResponse::AddOffsetsToTxn(Err(error))
                } else {
                    TxnResponse::AddPartitionsToTxn(Err(error))
                };
                self.respond(token, body);
            }
            Purpose::Prepare {
                reply: EndReply::EndTxn(token),
                ..
            } => self.respond(token, TxnResponse::EndTxn(Err(error))),
            Purpose::Prepare {
                reply: EndReply::None,
                ..
            }
            | Purpose::Complete => {}
        }
    }

    fn append_written(&mut self, append: PendingAppend) {
        let id = append.transactional_id;
        let transit = append.transit;
        let txn = self.txns.get_mut(&id).expect("ours");
        let from = txn.metadata.state;
        assert!(
            from.can_transition_to(transit.state),
            "transactional id {id}: illegal transition {} -> {} written",
            from.name(),
            transit.state.name()
        );
        // Epochs only grow, except when the producer id rotates.
        assert!(
            transit.producer_id != txn.metadata.producer_id
                || transit.producer_epoch >= txn.metadata.producer_epoch,
            "transactional id {id}: producer epoch {} -> {}",
            txn.metadata.producer_epoch,
            transit.producer_epoch
        );
        txn.pending_state = None;
        txn.metadata = transit;
        if txn.metadata.state.is_prepare() {
            txn.markers_pending = txn.metadata.topic_partitions.clone();
            txn.markers_retry.clear();
        } else {
            txn.markers_pending.clear();
            txn.markers_retry.clear();
        }
        if matches!(
            txn.metadata.state,
            TransactionState::CompleteCommit | TransactionState::CompleteAbort
        ) {
            txn.has_failed_epoch_fence = false;
            txn.complete_retry = false;
        }
        let metadata = txn.metadata.clone();
        self.announce_state(&id, &metadata);
        match append.purpose {
            Purpose::InitProducerId { token } => {
                self.respond(token, TxnResponse::InitProducerId(Ok(metadata.identity())));
            }
            Purpose::AddPartitions { token, offsets } => {
                let body = if offsets {
                    TxnResponse::AddOffsetsToTxn(Ok(()))
                } else {
                    TxnResponse::AddPartitionsToTxn(Ok(()))
                };
                self.respond(token, body);
            }
            Purpose::Prepare { reply, .. } => {
                match reply {
                    EndReply::EndTxn(token) => {
                        self.respond(token, TxnResponse::EndTxn(Ok(metadata.identity())));
                    }
                    EndReply::Fence(token) => self.respond(
                        token,
                        TxnResponse::InitProducerId(Err(KafkaError::ConcurrentTransactions)),
                    ),
                    EndReply::None => {}
                }
                self.send_markers(&id);
            }
            Purpose::Complete => {}
        }
    }

    /// Sends the markers of a transaction in Prepare* to every partition still waiting;
    /// with none left, writes its completion.
    fn send_markers(&mut self, id: &str) {
        let txn = &self.txns[id];
        if txn.markers_pending.is_empty() {
            self.complete(id);
            return;
        }
        let partitions = txn.markers_pending.iter().copied().collect();
        self.emit_markers(id, partitions);
    }

    fn emit_markers(&mut self, id: &str, partitions: Vec<TopicPartition>) {
        let txn = &self.txns[id];
        let result = TransactionResult::of_state(txn.metadata.state).expect("in Prepare*");
        let markers = TxnMarkers {
            transactional_id: id.to_string(),
            producer: txn.metadata.identity(),
            result,
            coordinator_epoch: txn.coordinator_epoch,
            partitions,
        };
        self.actions
            .push(TxnCoordinatorAction::WriteTxnMarkers(markers));
    }

    /// Writes CompleteX: every marker of the transaction is written.
    fn complete(&mut self, id: &str) {
        let tv2 = self.config.transaction_version_2;
        let now = self.now_ms;
        let m = &self.txns[id].metadata;
        let result = TransactionResult::of_state(m.state).expect("in Prepare*");
        let mut transit = m.clone();
        transit.state = result.complete_state();
        transit.topic_partitions.clear();
        transit.txn_last_update_timestamp_ms = now;
        if tv2 && m.next_producer_id.is_some() {
            // The epoch was exhausted: the producer id rotates now the markers are written.
            transit.previous_producer_id = m.producer_id;
            transit.producer_id = m.next_producer_id;
            transit.producer_epoch = 0;
            transit.last_producer_epoch = m.producer_epoch;
            transit.next_producer_id = ProducerId::NONE;
        }
        let staged = self.stage(id, transit, Purpose::Complete);
        assert!(
            staged.is_ok(),
            "transactional id {id}: completion refused: {staged:?}"
        );
    }

    /// The outcome of the marker of `partition` for `transactional_id`, sent in
    /// `coordinator_epoch` (answers for another epoch or transaction are ignored).
    pub fn on_markers_done(
        &mut self,
        transactional_id: &str,
        coordinator_epoch: LeaderEpoch,
        partition: TopicPartition,
        result: Result<(), KafkaError>,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(txn) = self.txns.get_mut(transactional_id) else {
            return;
        };
        if txn.coordinator_epoch != coordinator_epoch
            || !txn.metadata.state.is_prepare()
            || txn.pending_state.is_some()
            || !txn.markers_pending.contains(&partition)
        {
            return;
        }
        match result {
            Ok(()) => {
                txn.markers_pending.remove(&partition);
                txn.markers_retry.remove(&partition);
                if txn.markers_pending.is_empty() {
                    self.complete(transactional_id);
                }
            }
            // A newer coordinator or producer epoch owns the transaction now: this one stops
            // sending its markers (Kafka's `abortSending`); it stays in Prepare* here.
            Err(KafkaError::InvalidProducerEpoch | KafkaError::TransactionCoordinatorFenced) => {
                txn.markers_pending.clear();
                txn.markers_retry.clear();
            }
            // The leader moved, is not there yet, or could not write: again at the next tick.
            Err(_) => {
                txn.markers_retry.insert(partition);
            }
        }
    }

    /// Periodic work: markers and completions to retry, and every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` the abort of
    /// transactions Ongoing past their timeout.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let ids: Vec<String> = self.txns.keys().cloned().collect();
        for id in &ids {
            let txn = self.txns.get_mut(id).expect("listed");
            if txn.pending_state.is_some() {
                continue;
            }
            if txn.complete_retry && txn.metadata.state.is_prepare() {
                txn.complete_retry = false;
                self.complete(id);
                continue;
            }
            if !txn.markers_retry.is_empty() {
                let partitions = std::mem::take(&mut txn.markers_retry).into_iter().collect();
                self.emit_markers(id, partitions);
            }
        }
        // Kafka's scheduler runs the check at a fixed rate.
        if self.now_ms >= self.next_abort_check_ms {
            let interval = self
                .config
                .abort_timed_out_transaction_cleanup_interval_ms
                .max(1);
            while self.next_abort_check_ms <= self.now_ms {
                self.next_abort_check_ms += interval;
            }
            self.abort_timed_out_transactions();
        }
    }

    fn abort_timed_out_transactions(&mut self) {
        let now = self.now_ms;
        let timed_out: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| {
                let m = &t.metadata;
                t.pending_state.is_none()
                    && m.state == TransactionState::Ongoing
                    && m.txn_start_timestamp_ms.is_some_and(|start| {
                        (start as i128) + i128::from(m.txn_timeout_ms) < now as i128
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in timed_out {
            crate::coverage::hit(Mark::TxnTimedOutAborted);
            // Refused only if not Ongoing, which the filter excludes.
            let _ = self.fence_and_abort(&id, EndReply::None);
        }
    }
}

#[cfg(test)]
mod tests;
