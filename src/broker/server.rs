//! One broker: its partition replicas, its controller, its registration in the ensemble,
//! and every request it serves. Pure: the shell (`node::broker`) owns the sockets, the
//! ensemble session and the clock.
//!
//! Owns:
//! - **Registration**: in each new ensemble session, EPHEMERAL `/brokers/ids/<id>`; its
//!   czxid is the broker epoch (KIP-380). On NODEEXISTS the znode's owner is read back:
//!   this session's own (an attempt whose answer was lost) counts as registered; one left
//!   by a previous session (a fast restart) is retried until it expires.
//! - **Controller requests**: LeaderAndIsr applied per partition only with a leader epoch
//!   newer than the replica's (or, for the same epoch, a newer partition epoch: an ISR
//!   change), and only from a controller epoch at least the newest seen, aimed at this
//!   broker epoch; UpdateMetadata fills the metadata cache clients read.
//! - **Produce**: the leader appends; acks=0/1 answer at once, acks=all waits in a
//!   purgatory until the HW passes the batch (`NOT_ENOUGH_REPLICAS_AFTER_APPEND` if the ISR
//!   shrank below `min.insync.replicas` by the request timeout, else `REQUEST_TIMED_OUT`).
//! - **Fetch**: consumers below the HW, followers up to the LEO; an empty fetch waits up
//!   to its `max_wait_ms` for data (Kafka's DelayedFetch).
//! - **Replication as follower**: per leader, one Fetch in flight covering the partitions
//!   followed from it, after each partition found its divergence point with
//!   OffsetsForLeaderEpoch; ISR proposals of partitions it leads go to the controller as
//!   AlterPartition.
//! - **Producer ids**: `InitProducerId` hands out ids unique without coordination:
//!   `broker id << 40 | incarnation << 24 | counter` (Kafka allocates blocks through the
//!   ensemble); the transaction coordinator draws from the same counter.
//! - **Coordinators**: the group coordinator (`coordinator`) on the `__consumer_offsets`
//!   partitions and the transaction coordinator (`txn_coordinator`) on the
//!   `__transaction_state` partitions this broker leads: FindCoordinator answers the
//!   partition's leader from the metadata cache; a partition's coordinator loads it once
//!   led here and its HW reached its LEO, and drops it when leadership leaves
//!   (LeaderAndIsr) — or at once when this broker's ensemble session ends: the controller
//!   moves every leadership of a broker whose session expired, and a coordinator that kept
//!   serving until the LeaderAndIsr arrived (seconds, on a link a partition slowed) would
//!   answer OffsetFetch with stale offsets and hand out generations nobody stores. Their
//!   records are appended acks=all like a produce.
//! - **Transactions** (KIP-98): InitProducerId with a `transactional.id`,
//!   AddPartitionsToTxn (and its verify-only form), AddOffsetsToTxn and EndTxn go to the
//!   transaction coordinator. Its markers go to the leaders of their partitions as this
//!   broker's metadata cache knows them, one WriteTxnMarkers per leader (written at once,
//!   without the network, on partitions this broker leads); a partition with no live leader
//!   known, a broken connection or no answer within `request.timeout.ms` is reported back
//!   as a retriable error, and the coordinator sends the marker again at its next tick. A
//!   WriteTxnMarkers is answered per partition once each marker is acknowledged acks=all
//!   (`NOT_LEADER_OR_FOLLOWER` where this broker does not lead). A marker
//!   acknowledged on a `__consumer_offsets` partition is handed to the group coordinator
//!   (`on_txn_completed`, Kafka's `scheduleHandleTxnCompletion`), which commits or drops
//!   the transaction's pending offsets there.
//! - **Verification** (KIP-890 part 1, on unless `[legacy] no-add-partition-verification`):
//!   a Produce with a `transactional.id` whose batch would open a transaction on a
//!   partition this broker leads waits while the leader asks the transaction coordinator
//!   (the leader of the id's `__transaction_state` partition in the metadata cache; its own
//!   without the network) with AddPartitionsToTxn `verify_only`; the batch is then appended
//!   with the replica's verification guard, which a marker in between voids. A partition
//!   not in the transaction is `INVALID_TXN_STATE`; a coordinator that cannot answer
//!   (moved, loading, unreachable, no answer within 30 s) is `NOT_ENOUGH_REPLICAS`, which
//!   the producer retries (Kafka's translation for clients).
//! - **TxnOffsetCommit** goes to the group coordinator; its offsets are appended as one
//!   transactional batch of the producer (`Replica::append_as_coordinator`: Kafka's origin
//!   COORDINATOR, no sequence check), acks=all. Loading an offsets partition hands the
//!   coordinator its batches with their positions, producer ids and markers.
//!
//! Invariants (asserted, after the fences that turn stale messages away): each
//! registration of an incarnation has a larger broker epoch; the newest controller epoch
//! seen only grows; applying a LeaderAndIsr never takes a replica's leader epoch, or within
//! one leader epoch its partition epoch, back.
//!
//! Every replica event is announced for the checkers as a [`BrokerEvent`] (`become-leader`,
//! `become-follower`, `hw`, `truncate`, ...), as are the controller's and the coordinators'
//! ([`Announced`]).
//!
//! Not done (vs Kafka): a TxnOffsetCommit is not verified (KIP-890 part 1 checks its
//! offsets partition too); verifications and markers of several transactions to one broker
//! are not batched into one request.

use super::controller::{
    AlterPartition, ControllerAction, ControllerConfig, ControllerCore, ControllerEvent,
};
use super::coordinator::{
    partition_for, CoordinatorAction, CoordinatorConfig, CoordinatorEvent, GroupCoordinator,
    GroupRecord, GroupState, OffsetsBatch, OFFSETS_TOPIC,
};
use super::proto::{
    EpochEndOffset, EpochQuery, FetchData, FetchPartition, IsolationLevel, ProducePartition,
    Request, RequestBody, Response, ResponseBody, TxnMarkerEntry,
};
use super::replica::{
    EpochRequest, FetchOutcome, FollowerFetch, IsrProposal, Replica, ReplicaConfig, ReplicaError,
    ReplicaEvent, Role,
};
use super::txn_coordinator::{
    InitProducerIdRequest, TransactionCoordinator, TransactionResult, TxnCoordinatorAction,
    TxnCoordinatorConfig, TxnCoordinatorEvent, TxnMarkers, TxnRecord, TxnRequest, TxnResponse,
    TRANSACTION_STATE_TOPIC,
};
use super::types::{
    Acks, BrokerEpoch, BrokerId, ControllerEpoch, KafkaError, PartitionEpoch, PartitionState,
    ProducerId, ProducerIdentity, TopicPartition,
};
use super::zk_paths as paths;
use crate::disk::Disk;
use crate::log::{
    decode_batches, BatchBuilder, BatchMeta, CheckpointFile, ControlRecord, ControlRecordType,
    LeaderEpoch, Offset, RecordBatch,
};
use crate::zk::client::Outcome;
use crate::zk::{CreateMode, Op, OpResult, SessionId, WatchedEvent, ZkError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The directory under a broker's disk holding its partition logs.
pub const LOG_DIR: &str = "kafka-logs";
/// Kafka's `replica.high.watermark.checkpoint.interval.ms`.
pub const HW_CHECKPOINT_INTERVAL_MS: u64 = 5000;
/// Kafka's `replication-offset-checkpoint`, in [`LOG_DIR`]: the HW of every partition of the
/// log directory, one `<topic> <partition> <offset>` line each ([`CheckpointFile`]).
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Kafka's `replica.fetch.wait.max.ms`.
pub const REPLICA_FETCH_WAIT_MAX_MS: u64 = 500;
/// Kafka's `replica.fetch.max.bytes`.
pub const REPLICA_FETCH_MAX_BYTES: u32 = 1 << 20;
/// An epoch lookup in flight: the leader asked, each partition's question, and when it was
/// sent (ms).
type EpochLookup = (BrokerId, Vec<(TopicPartition, EpochRequest)>, u64);

/// Kafka's `replica.fetch.backoff.ms`: after an error or a lost connection.
pub const REPLICA_FETCH_BACKOFF_MS: u64 = 1000;
/// A follower request unanswered this long is given up (Kafka's `request.timeout.ms`
/// for the fetcher is 30 s; a shorter one makes a stalled link recover sooner).
pub const REPLICA_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Retry of a registration that found the previous session's znode still there.
pub const REGISTRATION_RETRY_MS: u64 = 1000;
/// A controller request whose connection broke is sent again after this long (Kafka's
/// controller send thread reconnects after `reconnect.backoff.ms` and resends).
pub const CONTROLLER_RESEND_BACKOFF_MS: u64 = 500;
/// `offsets.commit.timeout.ms`: how long the coordinator's appends wait for the HW.
pub const OFFSETS_COMMIT_TIMEOUT_MS: u64 = 5000;
/// Kafka's `request.timeout.ms`: how long a partition leader's WriteTxnMarkers appends wait
/// for the HW (`KafkaApis.handleWriteTxnMarkersRequest`), and how long the transaction
/// coordinator waits for the answer before it sends the markers again (its marker
/// channel's network client).
pub const TXN_MARKER_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// A controller request to another broker, until answered.
struct ControllerSend {
    to: BrokerId,
    body: RequestBody,
    /// The controller epoch it was sent in: a later controller does not resend it.
    controller_epoch: ControllerEpoch,
    /// Sent again (with a new correlation id) at this time if still unanswered.
    resend_at_ms: u64,
}

/// Kafka's default `zookeeper.session.timeout.ms`: the session a broker asks the ensemble
/// for (the ensemble negotiates it into its own bounds).
pub const ZK_SESSION_TIMEOUT_MS: u64 = 18_000;

/// The broker's configuration.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// This broker.
    pub id: BrokerId,
    /// How many times this process has started (producer ids, reports).
    pub incarnation: u64,
    /// Replica settings shared by every partition (min ISR per topic overrides).
    pub replica: ReplicaConfig,
    /// `min.insync.replicas` per topic.
    pub topic_min_isr: BTreeMap<String, usize>,
    /// The controller's settings (topics to create, election rules).
    pub controller: ControllerConfig,
    /// The group coordinator's settings.
    pub coordinator: CoordinatorConfig,
    /// The transaction coordinator's settings.
    pub txn_coordinator: TxnCoordinatorConfig,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum BrokerAction {
    /// Run `op` on the broker's ensemble session; feed the outcome to `on_zk_outcome(id, ..)`.
    Zk {
        /// Echoed back.
        id: u64,
        /// The operation.
        op: Op,
    },
    /// Send a request to another broker; its response comes to `on_peer_response`.
    SendToBroker {
        /// The broker.
        to: BrokerId,
        /// The request.
        request: Request,
    },
    /// Answer on an accepted connection.
    Respond {
        /// The connection.
        conn: u64,
        /// The response.
        response: Response,
    },
    /// Announce an event: the broker's own, or its controller's or coordinator's.
    Announce(Announced),
}

/// Everything a broker core announces, by the part of it that announces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Announced {
    /// The broker itself: registration, its replicas, its logs.
    Broker(BrokerEvent),
    /// Its controller.
    Controller(ControllerEvent),
    /// Its group coordinator.
    Coordinator(CoordinatorEvent),
    /// Its transaction coordinator.
    TxnCoordinator(TxnCoordinatorEvent),
}

/// What a broker announces about itself and its partition replicas (node `broker-<n>`).
/// Serialized as `{"kind": <kebab-case name>, "detail": {fields}}`; partitions are written
/// `"topic/p"`, broker ids are numbers.
///
/// The replication checks (`check::replication`) read these:
///
/// | kind | detail | when | checked by |
/// |---|---|---|---|
/// | `become-leader` | `partition`, `leader_epoch`, `leo`, `hw`, `isr` (ids) | it applied a LeaderAndIsr making it leader | `single-leader-per-epoch`, `leader-epoch-monotonic`; the final leader; `converges` (full ISR) |
/// | `become-follower` | `partition`, `leader` (id), `leader_epoch`, `leo`, `hw` | it applied a LeaderAndIsr making it follower | `single-leader-per-epoch`, `leader-epoch-monotonic`; the final leader |
/// | `hw` | `partition`, `hw`, `leader_epoch` | its HW of that replica advanced (leader or follower) | `hw-monotonic`, `committed-prefix-agreement` |
/// | `truncate` | `partition`, `from`, `to`, `hw` | it cut its log from LEO `from` down to `to`, having HW `hw` | `no-truncation-below-hw` |
/// | `truncation-done` | `partition`, `leader` (id), `leader_epoch`, `leo` | as follower, it found where its log meets the leader's and fetches from `leo` on | `committed-prefix-agreement` (its log is the leader's below `leo`) |
/// | `isr-changed` | `partition`, `isr`, `partition_epoch` | as leader, it applied a new ISR | `converges` (full ISR) |
/// | `broker-registered` / `broker-unregistered` | `broker_epoch` | its registration znode was created / its session ended | timeline |
/// | `log-opened` | `partition`, `recovery` | it opened a replica's log | timeline |
/// | `log-error`, `leader-and-isr-refused` | `partition`, `error` | a replica's storage failed / a LeaderAndIsr could not be applied | timeline |
///
/// A broker's memory lives for one incarnation: the checkers place each event in the
/// incarnation the shell's `broker-started` and the world's kills and restarts delimit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum BrokerEvent {
    /// Its registration znode was created: `broker_epoch` is its czxid.
    BrokerRegistered {
        /// The broker epoch.
        broker_epoch: BrokerEpoch,
    },
    /// Its session ended, and its registration with it.
    BrokerUnregistered {
        /// The broker epoch it had.
        broker_epoch: BrokerEpoch,
    },
    /// It opened a replica's log.
    LogOpened {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// What recovery found, in words.
        recovery: String,
    },
    /// A replica's storage failed.
    LogError {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The error.
        error: String,
    },
    /// A LeaderAndIsr for the partition could not be applied.
    LeaderAndIsrRefused {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The error.
        error: String,
    },
    /// It became leader of the partition.
    BecomeLeader {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The leader epoch it leads in.
        leader_epoch: LeaderEpoch,
        /// Its log end offset then.
        leo: Offset,
        /// Its HW then.
        hw: Offset,
        /// The ISR it leads with.
        isr: Vec<BrokerId>,
    },
    /// It became a follower of the partition.
    BecomeFollower {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The leader it follows.
        leader: BrokerId,
        /// The leader epoch.
        leader_epoch: LeaderEpoch,
        /// Its log end offset then.
        leo: Offset,
        /// Its HW then.
        hw: Offset,
    },
    /// Its HW of the replica advanced.
    Hw {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The new HW.
        hw: Offset,
        /// The replica's leader epoch.
        leader_epoch: LeaderEpoch,
    },
    /// It cut its log from LEO `from` down to `to`, having HW `hw`.
    Truncate {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The LEO before.
        from: Offset,
        /// The LEO after.
        to: Offset,
        /// Its HW.
        hw: Offset,
    },
    /// As follower, it finished truncating: its log below `leo` is, by its reckoning, the
    /// leader's, and it fetches from `leo` on (Kafka's fetcher: `Truncating` → `Fetching`).
    TruncationDone {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The leader it follows.
        leader: BrokerId,
        /// The leader epoch.
        leader_epoch: LeaderEpoch,
        /// Its LEO then.
        leo: Offset,
    },
    /// As leader, it applied a new ISR.
    IsrChanged {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The new ISR.
        isr: Vec<BrokerId>,
        /// Its partition epoch.
        partition_epoch: PartitionEpoch,
    },
}

/// Why an ensemble operation of the broker itself was issued.
#[derive(Clone, Debug)]
enum ZkPurpose {
    Parent,
    Register,
    /// Reading back `/brokers/ids/<id>` after NODEEXISTS: whose is it?
    RegisterCheck,
    Controller(u64),
}

/// One partition of a waiting produce: the answer so far, and the (last offset, leader
/// epoch) an acks=all append waits for the HW to pass.
type ProduceSlot = (
    TopicPartition,
    Result<super::proto::ProduceOk, KafkaError>,
    Option<(Offset, LeaderEpoch)>,
);

/// A produce waiting for the HW.
#[derive(Clone, Debug)]
struct PendingProduce {
    to: ProduceFor,
    deadline_ms: u64,
    /// Per partition: the answer so far, and what it waits for.
    partitions: Vec<ProduceSlot>,
}

/// Who waits for an acks=all append.
#[derive(Clone, Debug)]
enum ProduceFor {
    /// A client's Produce request.
    Client { conn: u64, correlation_id: u64 },
    /// The group coordinator's append `id`.
    Coordinator(u64),
    /// The transaction coordinator's append `id`.
    TxnCoordinator(u64),
    /// A WriteTxnMarkers request: its partitions are the slots, entry after entry, `entries`
    /// of them per entry, each entry the markers of one transaction (its producer id and
    /// how it ended).
    TxnMarkers {
        reply: MarkersReply,
        entries: Vec<(usize, ProducerId, TransactionResult)>,
    },
}

/// Who gets the answer to a WriteTxnMarkers request.
#[derive(Clone, Copy, Debug)]
enum MarkersReply {
    /// A coordinator on another broker, on accepted connection `conn`.
    Peer { conn: u64, correlation_id: u64 },
    /// This broker's own transaction coordinator: its marker send `correlation_id`.
    Local { correlation_id: u64 },
}

/// A WriteTxnMarkers request of this broker's transaction coordinator, until answered:
/// to whom, when sent, and per entry (in request order) the transaction it ends, the
/// coordinator epoch it was sent in and its partitions.
#[derive(Clone, Debug)]
struct MarkerSend {
    to: BrokerId,
    sent_ms: u64,
    txns: Vec<(String, LeaderEpoch, Vec<TopicPartition>)>,
}

/// A partition this broker leads, as the simulation's progress probe sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// Its ISR's size.
    pub isr: usize,
    /// Its HW.
    pub high_watermark: Offset,
    /// Its LEO: above the HW while followers have not fetched the last appends.
    pub log_end: Offset,
}

/// A client's Produce as the broker holds it from reading it to appending it: the request,
/// and, if the transaction coordinator must first verify that its transactional batches'
/// partitions are in the producer's transaction (KIP-890 part 1, Kafka's
/// `AddPartitionsToTxnManager`), the guard each verified partition's batch is appended with
/// and the coordinator asked (this broker's own, or another) and when. A Produce that needs
/// no verification is appended at once, its guards empty.
#[derive(Clone, Debug)]
struct HeldProduce {
    conn: u64,
    correlation_id: u64,
    acks: Acks,
    timeout_ms: u64,
    partitions: Vec<ProducePartition>,
    guards: BTreeMap<TopicPartition, u64>,
    to: BrokerId,
    sent_ms: u64,
}

/// A transaction request the transaction coordinator holds: where to answer, and the
/// partitions it named (an AddPartitionsToTxn is answered per partition).
#[derive(Clone, Debug)]
struct TxnWaiter {
    conn: u64,
    correlation_id: u64,
    partitions: Vec<TopicPartition>,
}

/// A fetch waiting for data.
#[derive(Clone, Debug)]
struct PendingFetch {
    conn: u64,
    correlation_id: u64,
    deadline_ms: u64,
    replica: Option<(BrokerId, BrokerEpoch)>,
    partitions: Vec<FetchPartition>,
    isolation: IsolationLevel,
}

/// A follower's session with one leader.
#[derive(Clone, Debug, Default)]
struct FetcherState {
    /// Correlation id and send time of the request in flight.
    in_flight: Option<(u64, u64)>,
    /// No request before this time (backoff).
    not_before_ms: u64,
}

/// The [`REPLICATION_OFFSET_CHECKPOINT`] of a broker's life: read once, when first needed
/// (a partition's log opens, or the first checkpoint is due), then what was last written.
/// Partitions not (yet) open in this life keep the HW the file had for them.
enum HwCheckpoint {
    Unread,
    Known(BTreeMap<TopicPartition, Offset>),
    /// Unreadable or malformed: like a failed log directory in Kafka, no partition opens
    /// and nothing is written over it.
    Failed(String),
}

/// The broker core.
pub struct BrokerCore<D: Disk> {
    config: BrokerConfig,
    disk: D,
    controller: ControllerCore,
    coordinator: GroupCoordinator,
    /// Group requests the coordinator holds, by token: (conn, correlation).
    group_requests: BTreeMap<u64, (u64, u64)>,
    txn_coordinator: TransactionCoordinator,
    /// Transaction requests the transaction coordinator holds, by token.
    txn_requests: BTreeMap<u64, TxnWaiter>,
    /// The transaction coordinator's WriteTxnMarkers requests in flight, by correlation id.
    marker_sends: BTreeMap<u64, MarkerSend>,
    /// Produces held for verification, by the correlation id of the verification request.
    verifications: BTreeMap<u64, HeldProduce>,
    /// Verifications this broker's own transaction coordinator answers: token → the
    /// verification's correlation id.
    local_verify_tokens: BTreeMap<u64, u64>,
    /// The next verification guard (unique in this life of the broker).
    next_guard: u64,
    /// Ensemble ids of the broker's own operations and the controller's.
    zk_pending: BTreeMap<u64, ZkPurpose>,
    next_zk: u64,
    /// Parent creations outstanding before registering.
    parents_pending: usize,
    /// The current ensemble session (`SessionId::NONE` between sessions).
    session: SessionId,
    /// The broker epoch of the current registration.
    broker_epoch: Option<BrokerEpoch>,
    /// The newest broker epoch this incarnation registered with: each one is larger.
    newest_broker_epoch: Option<BrokerEpoch>,
    registration_retry_at: Option<u64>,
    /// Newest controller epoch seen, and that controller.
    controller_epoch: ControllerEpoch,
    controller_id: Option<BrokerId>,
    /// Metadata cache.
    live_brokers: BTreeSet<BrokerId>,
    metadata: BTreeMap<TopicPartition, PartitionState>,
    replicas: BTreeMap<TopicPartition, Replica<D>>,
    produces: Vec<PendingProduce>,
    fetches: Vec<PendingFetch>,
    fetchers: BTreeMap<BrokerId, FetcherState>,
    /// Epoch lookups in flight, by correlation id.
    epoch_lookups: BTreeMap<u64, EpochLookup>,
    /// AlterPartition requests in flight: correlation id → (controller asked, partition,
    /// when sent in ms).
    alters: BTreeMap<u64, (BrokerId, TopicPartition, u64)>,
    /// AlterPartition requests this broker's controller serves for itself: token → partition.
    local_alter_tokens: BTreeMap<u64, TopicPartition>,
    /// This broker's controller's requests to other brokers awaiting an answer, by
    /// correlation id (Kafka's controller channel delivers each one, reconnecting as
    /// often as it takes, while the controller and the broker's registration last).
    controller_sends: BTreeMap<u64, ControllerSend>,
    /// Tokens of AlterPartition requests from other brokers, by token: (conn, correlation).
    remote_alters: BTreeMap<u64, (u64, u64)>,
    next_token: u64,
    next_correlation: u64,
    next_producer_id: i64,
    last_hw_checkpoint_ms: u64,
    /// The log directory's HW checkpoint as this life knows it.
    hw_checkpoint: HwCheckpoint,
    /// The latest time any call brought (for work the controller triggers inside a call).
    now_ms: u64,
    actions: Vec<BrokerAction>,
}

impl<D: Disk> BrokerCore<D> {
    /// A broker that has not joined the cluster yet.
    pub fn new(config: BrokerConfig, disk: D) -> Self {
        let controller = ControllerCore::new(config.controller.clone());
        let coordinator =
            GroupCoordinator::new(config.coordinator.clone()).with_incarnation(config.incarnation);
        let txn_coordinator = TransactionCoordinator::new(config.txn_coordinator.clone());
        BrokerCore {
            config,
            disk,
            controller,
            coordinator,
            group_requests: BTreeMap::new(),
            txn_coordinator,
            txn_requests: BTreeMap::new(),
            marker_sends: BTreeMap::new(),
            verifications: BTreeMap::new(),
            local_verify_tokens: BTreeMap::new(),
            next_guard: 1,
            zk_pending: BTreeMap::new(),
            next_zk: 1,
            parents_pending: 0,
            session: SessionId::NONE,
            broker_epoch: None,
            newest_broker_epoch: None,
            registration_retry_at: None,
            controller_epoch: ControllerEpoch(0),
            controller_id: None,
            live_brokers: BTreeSet::new(),
            metadata: BTreeMap::new(),
            replicas: BTreeMap::new(),
            produces: Vec::new(),
            fetches: Vec::new(),
            fetchers: BTreeMap::new(),
            epoch_lookups: BTreeMap::new(),
            alters: BTreeMap::new(),
            local_alter_tokens: BTreeMap::new(),
            controller_sends: BTreeMap::new(),
            remote_alters: BTreeMap::new(),
            next_token: 1,
            next_correlation: 1,
            next_producer_id: 0,
            last_hw_checkpoint_ms: 0,
            hw_checkpoint: HwCheckpoint::Unread,
            now_ms: 0,
            actions: Vec::new(),
        }
    }

    /// The actions accumulated since the last call.
    pub fn take_actions(&mut self) -> Vec<BrokerAction> {
        loop {
            self.pump_controller();
            let groups = self.pump_coordinator();
            let txns = self.pump_txn_coordinator();
            if !groups && !txns {
                break;
            }
        }
        std::mem::take(&mut self.actions)
    }

    /// This broker.
    pub fn id(&self) -> BrokerId {
        self.config.id
    }

    /// The broker epoch of the current registration.
    pub fn broker_epoch(&self) -> Option<BrokerEpoch> {
        self.broker_epoch
    }

    /// The controller epoch, if this broker is the active controller.
    pub fn active_controller_epoch(&self) -> Option<ControllerEpoch> {
        self.controller.active_epoch()
    }

    /// The groups this broker coordinates, with their state and generation.
    pub fn coordinated_groups(&self) -> Vec<(String, GroupState, super::proto::Generation)> {
        self.coordinator.groups()
    }

    /// Partitions this broker leads, with their ISR size and HW.
    pub fn led_partitions(&self) -> Vec<LedPartition> {
        self.replicas
            .iter()
            .filter(|(_, r)| r.role() == Role::Leader)
            .map(|(tp, r)| LedPartition {
                partition: *tp,
                isr: r.isr().len(),
                high_watermark: r.high_watermark(),
                log_end: r.log_end_offset(),
            })
            .collect()
    }

    fn announce(&mut self, event: impl Into<Announced>) {
        self.actions.push(BrokerAction::Announce(event.into()));
    }

    fn zk(&mut self, purpose: ZkPurpose, op: Op) {
        let id = self.next_zk;
        self.next_zk += 1;
        self.zk_pending.insert(id, purpose);
        self.actions.push(BrokerAction::Zk { id, op });
    }

    fn correlation(&mut self) -> u64 {
        let id = self.next_correlation;
        self.next_correlation += 1;
        id
    }

    // --- the ensemble session ---

    /// A new ensemble session opened: register (creating the parents first).
    pub fn on_session_started(&mut self, session: SessionId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.session = session;
        self.broker_epoch = None;
        self.parents_pending = paths::PARENTS.len();
        for parent in paths::PARENTS {
            self.zk(
                ZkPurpose::Parent,
                Op::Create {
                    path: parent.into(),
                    data: Vec::new(),
                    mode: CreateMode::Persistent,
                },
            );
        }
    }

    /// The session ended (expired or closed): the registration and any controllership are
    /// gone with it.
    pub fn on_session_lost(&mut self) {
        if let Some(epoch) = self.broker_epoch.take() {
            self.announce(BrokerEvent::BrokerUnregistered {
                broker_epoch: epoch,
            });
        }
        self.session = SessionId::NONE;
        self.registration_retry_at = None;
        self.zk_pending.clear();
        self.controller.on_session_lost();
        // The controller has declared this broker dead (or will, once it reads the
        // expiry): every leadership it held moves, and its coordinators would serve stale
        // groups and transactions until the controller's LeaderAndIsr arrives — seconds
        // later on a link a partition slowed. They resign now.
        self.coordinator.resign_all();
        self.txn_coordinator.resign_all();
    }

    /// A watch fired.
    pub fn on_watch(&mut self, event: &WatchedEvent) {
        self.controller.on_watch(event);
    }

    /// The outcome of ensemble operation `id`.
    pub fn on_zk_outcome(&mut self, id: u64, outcome: Outcome, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(purpose) = self.zk_pending.remove(&id) else {
            return;
        };
        match purpose {
            ZkPurpose::Controller(inner) => self.controller.on_zk_outcome(inner, outcome),
            ZkPurpose::Parent => {
                self.parents_pending = self.parents_pending.saturating_sub(1);
                if self.parents_pending == 0 {
                    self.register();
                }
            }
            ZkPurpose::Register => match outcome {
                Outcome::Done {
                    result: Ok(OpResult::Created { stat, .. }),
                    ..
                } => self.registered(BrokerEpoch(stat.czxid.0 as i64)),
                Outcome::Done { result: Err(e), .. } if e.error == ZkError::NodeExists => {
                    // Either the previous session's registration, not expired yet, or
                    // this session's own from an attempt whose answer was lost: read the
                    // owner back (Kafka's checked ephemeral create).
                    self.zk(
                        ZkPurpose::RegisterCheck,
                        Op::Exists {
                            path: paths::broker_path(self.config.id),
                            watch: false,
                        },
                    );
                }
                Outcome::Unknown { error } if error != ZkError::SessionExpired => {
                    // It may have landed: try again; NODEEXISTS then leads to the check.
                    self.registration_retry_at = Some(now_ms + REGISTRATION_RETRY_MS);
                }
                // Never sent (no connection at the time), or refused: it did not land.
                Outcome::NotSent { error } if error != ZkError::SessionExpired => {
                    self.registration_retry_at = Some(now_ms + REGISTRATION_RETRY_MS);
                }
                Outcome::Done { result: Err(_), .. } => {
                    self.registration_retry_at = Some(now_ms + REGISTRATION_RETRY_MS);
                }
                // The session is gone: `on_session_lost` starts over with the next one.
                _ => {}
            },
            ZkPurpose::RegisterCheck => match outcome {
                Outcome::Done {
                    result: Ok(OpResult::Exists { stat: Some(stat) }),
                    ..
                } if stat.ephemeral_owner == self.session && self.session != SessionId::NONE => {
                    self.registered(BrokerEpoch(stat.czxid.0 as i64));
                }
                // Another session's (it expires in time), gone meanwhile, or no answer.
                Outcome::Unknown { error } | Outcome::NotSent { error }
                    if error == ZkError::SessionExpired => {}
                _ => self.registration_retry_at = Some(now_ms + REGISTRATION_RETRY_MS),
            },
        }
    }

    /// Registration done: the znode's czxid is the broker epoch.
    fn registered(&mut self, epoch: BrokerEpoch) {
        // Each session registers once, after the previous session's znode is gone: its
        // czxid is a later zxid than any earlier registration's.
        assert!(
            self.newest_broker_epoch.is_none_or(|newest| epoch > newest),
            "broker epoch {epoch} after {:?}: broker epochs only grow",
            self.newest_broker_epoch
        );
        self.newest_broker_epoch = Some(epoch);
        self.broker_epoch = Some(epoch);
        self.announce(BrokerEvent::BrokerRegistered {
            broker_epoch: epoch,
        });
        self.controller.start();
    }

    fn register(&mut self) {
        self.zk(
            ZkPurpose::Register,
            Op::Create {
                path: paths::broker_path(self.config.id),
                data: Vec::new(),
                mode: CreateMode::Ephemeral,
            },
        );
    }

    /// Runs the controller's actions: its ensemble operations through the broker's
    /// session, its requests to brokers (itself included) and its replies.
    fn pump_controller(&mut self) {
        loop {
            let actions = self.controller.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    ControllerAction::Zk { id, op } => self.zk(ZkPurpose::Controller(id), op),
                    ControllerAction::Send { to, body } if to == self.config.id => {
                        // To ourselves: no network.
                        let now_ms = self.now_ms;
                        let _ = self.handle_controller_request(&body, now_ms);
                    }
                    ControllerAction::Send { to, body } => {
                        let Some(controller_epoch) = self.controller.active_epoch() else {
                            continue;
                        };
                        self.send_controller_request(ControllerSend {
                            to,
                            body,
                            controller_epoch,
                            resend_at_ms: 0,
                        });
                    }
                    ControllerAction::Reply { token, body } => self.on_alter_reply(token, body),
                    ControllerAction::Announce(event) => self.announce(event),
                }
            }
        }
    }

    fn send_controller_request(&mut self, mut send: ControllerSend) {
        let correlation_id = self.correlation();
        send.resend_at_ms = self.now_ms + REPLICA_REQUEST_TIMEOUT_MS;
        self.actions.push(BrokerAction::SendToBroker {
            to: send.to,
            request: Request {
                correlation_id,
                body: send.body.clone(),
            },
        });
        self.controller_sends.insert(correlation_id, send);
    }

    /// Sends again the controller requests due (connection lost, or unanswered for a
    /// request timeout), unless the controller or the broker's registration is gone.
    fn resend_controller_requests(&mut self, now_ms: u64) {
        let due: Vec<u64> = self
            .controller_sends
            .iter()
            .filter(|(_, s)| now_ms >= s.resend_at_ms)
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            let Some(send) = self.controller_sends.remove(&c) else {
                continue;
            };
            if self
                .controller
                .still_sends_to(send.controller_epoch, send.to)
            {
                self.send_controller_request(send);
            }
        }
    }

    fn on_alter_reply(&mut self, token: u64, body: ResponseBody) {
        if let Some(tp) = self.local_alter_tokens.remove(&token) {
            if let ResponseBody::AlterPartition { result } = body {
                self.apply_alter_result(&tp, result);
            }
        } else if let Some((conn, correlation_id)) = self.remote_alters.remove(&token) {
            self.actions.push(BrokerAction::Respond {
                conn,
                response: Response {
                    correlation_id,
                    body,
                },
            });
        }
    }

    // --- requests ---

    /// A request on accepted connection `conn`.
    pub fn on_request(&mut self, conn: u64, request: Request, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let correlation_id = request.correlation_id;
        let respond = |body| BrokerAction::Respond {
            conn,
            response: Response {
                correlation_id,
                body,
            },
        };
        match request.body {
            RequestBody::Metadata { topics } => {
                let body = self.metadata_response(&topics);
                self.actions.push(respond(body));
            }
            RequestBody::Produce {
                transactional_id,
                acks,
                timeout_ms,
                partitions,
            } => {
                let produce = HeldProduce {
                    conn,
                    correlation_id,
                    acks,
                    timeout_ms,
                    partitions,
                    guards: BTreeMap::new(),
                    to: self.config.id,
                    sent_ms: now_ms,
                };
                self.on_produce(produce, transactional_id, now_ms)
            }
            RequestBody::Fetch {
                replica_id,
                replica_epoch,
                max_wait_ms,
                partitions,
                isolation_level,
            } => {
                let pending = PendingFetch {
                    conn,
                    correlation_id,
                    deadline_ms: now_ms.saturating_add(max_wait_ms),
                    replica: replica_id.map(|r| (r, replica_epoch)),
                    partitions,
                    isolation: isolation_level,
                };
                if let Some(pending) = self.try_fetch(pending, now_ms, false) {
                    self.fetches.push(pending);
                }
            }
            RequestBody::OffsetsForLeaderEpoch { partitions, .. } => {
                let answers = partitions
                    .into_iter()
                    .map(|q| {
                        let answer = self.answer_epoch_query(&q);
                        (q.partition, answer)
                    })
                    .collect();
                self.actions
                    .push(respond(ResponseBody::OffsetsForLeaderEpoch {
                        partitions: answers,
                    }));
            }
            RequestBody::ListOffsets {
                isolation_level,
                partitions,
            } => {
                let answers = partitions
                    .into_iter()
                    .map(|q| {
                        let answer = match self.replicas.get(&q.partition) {
                            Some(r) => r
                                .list_offset(q.spec, q.current_leader_epoch, isolation_level)
                                .map_err(|e| e.kafka_error()),
                            None => Err(KafkaError::NotLeaderOrFollower),
                        };
                        (q.partition, answer)
                    })
                    .collect();
                self.actions.push(respond(ResponseBody::ListOffsets {
                    partitions: answers,
                }));
            }
            body @ (RequestBody::LeaderAndIsr { .. } | RequestBody::UpdateMetadata { .. }) => {
                let response = self.handle_controller_request(&body, now_ms);
                self.actions.push(respond(response));
            }
            RequestBody::AlterPartition {
                broker_id,
                broker_epoch,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let token = self.next_token;
                self.next_token += 1;
                self.remote_alters.insert(token, (conn, correlation_id));
                self.controller.on_alter_partition(
                    token,
                    AlterPartition {
                        broker_id,
                        broker_epoch,
                        partition,
                        leader_epoch,
                        partition_epoch,
                        new_isr,
                    },
                );
            }
            RequestBody::InitProducerId => {
                let producer_id = self.allocate_producer_id();
                let identity = ProducerIdentity {
                    producer_id,
                    producer_epoch: 0,
                };
                self.actions.push(respond(ResponseBody::InitProducerId {
                    result: Ok(identity),
                }));
            }
            RequestBody::FindCoordinator { key } => {
                let body = ResponseBody::FindCoordinator {
                    result: self.find_coordinator(&key),
                };
                self.actions.push(respond(body));
            }
            body @ (RequestBody::JoinGroup(_)
            | RequestBody::SyncGroup(_)
            | RequestBody::Heartbeat(_)
            | RequestBody::LeaveGroup(_)
            | RequestBody::OffsetCommit(_)
            | RequestBody::OffsetFetch { .. }
            | RequestBody::TxnOffsetCommit(_)) => {
                let token = self.next_token;
                self.next_token += 1;
                self.group_requests.insert(token, (conn, correlation_id));
                self.coordinator.on_request(token, body, now_ms);
            }
            RequestBody::FindTxnCoordinator { transactional_id } => {
                let body = ResponseBody::FindCoordinator {
                    result: self.find_txn_coordinator(&transactional_id),
                };
                self.actions.push(respond(body));
            }
            RequestBody::InitTxnProducerId {
                transactional_id,
                transaction_timeout_ms,
                producer_id_and_epoch,
            } => {
                let request = TxnRequest::InitProducerId(InitProducerIdRequest {
                    transactional_id,
                    transaction_timeout_ms,
                    producer_id_and_epoch,
                });
                self.on_txn_request(conn, correlation_id, Vec::new(), request, now_ms);
            }
            RequestBody::AddPartitionsToTxn {
                transactional_id,
                producer,
                partitions,
                verify_only,
            } => {
                let asked = partitions.clone();
                let request = if verify_only {
                    TxnRequest::VerifyPartitionsInTxn {
                        transactional_id,
                        producer,
                        partitions,
                    }
                } else {
                    TxnRequest::AddPartitionsToTxn {
                        transactional_id,
                        producer,
                        partitions,
                    }
                };
                self.on_txn_request(conn, correlation_id, asked, request, now_ms);
            }
            RequestBody::AddOffsetsToTxn {
                transactional_id,
                producer,
                group_id,
            } => {
                let request = TxnRequest::AddOffsetsToTxn {
                    transactional_id,
                    producer,
                    group_id,
                };
                self.on_txn_request(conn, correlation_id, Vec::new(), request, now_ms);
            }
            RequestBody::EndTxn {
                transactional_id,
                producer,
                result,
            } => {
                let request = TxnRequest::EndTxn {
                    transactional_id,
                    producer,
                    result,
                };
                self.on_txn_request(conn, correlation_id, Vec::new(), request, now_ms);
            }
            RequestBody::WriteTxnMarkers { markers } => {
                let reply = MarkersReply::Peer {
                    conn,
                    correlation_id,
                };
                self.write_txn_markers(reply, markers, now_ms);
            }
        }
    }

    /// A fresh producer id, unique without coordination: `broker id << 40 | incarnation <<
    /// 24 | counter` (Kafka allocates blocks through the ensemble). Idempotent producers'
    /// InitProducerId and the transaction coordinator draw from it alike.
    fn allocate_producer_id(&mut self) -> ProducerId {
        next_producer_id(
            self.config.id,
            self.config.incarnation,
            &mut self.next_producer_id,
        )
    }

    /// The leader of the group's offsets partition, from the metadata cache; this broker
    /// only while its coordinator holds the partition (not after it resigned with a lost
    /// session, before the controller's word).
    fn find_coordinator(&self, group: &str) -> Result<BrokerId, KafkaError> {
        let partition = partition_for(group, self.config.coordinator.offsets_partitions);
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let me = self.config.id;
        self.metadata
            .get(&tp)
            .and_then(|s| s.leader)
            .filter(|l| {
                if *l == me {
                    self.coordinator.owns(partition)
                } else {
                    self.live_brokers.contains(l)
                }
            })
            .ok_or(KafkaError::CoordinatorNotAvailable)
    }

    /// Runs the coordinator's actions; whether there were any.
    fn pump_coordinator(&mut self) -> bool {
        let actions = self.coordinator.take_actions();
        if actions.is_empty() {
            return false;
        }
        for action in actions {
            match action {
                CoordinatorAction::Respond { token, body } => {
                    if let Some((conn, correlation_id)) = self.group_requests.remove(&token) {
                        self.actions.push(BrokerAction::Respond {
                            conn,
                            response: Response {
                                correlation_id,
                                body,
                            },
                        });
                    }
                }
                CoordinatorAction::Append {
                    id,
                    partition,
                    leader_epoch,
                    records,
                    transaction,
                } => {
                    self.append_for_coordinator(id, partition, leader_epoch, &records, transaction)
                }
                CoordinatorAction::Announce(event) => self.announce(event),
            }
        }
        true
    }

    /// The leader of the transactional id's `__transaction_state` partition, from the
    /// metadata cache (FindCoordinator with key type TRANSACTION).
    fn find_txn_coordinator(&self, transactional_id: &str) -> Result<BrokerId, KafkaError> {
        let partition = partition_for(
            transactional_id,
            self.config.txn_coordinator.transaction_state_partitions,
        );
        let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, partition);
        let me = self.config.id;
        self.metadata
            .get(&tp)
            .and_then(|s| s.leader)
            .filter(|l| {
                if *l == me {
                    self.txn_coordinator.owns(partition)
                } else {
                    self.live_brokers.contains(l)
                }
            })
            .ok_or(KafkaError::CoordinatorNotAvailable)
    }

    /// Hands a client's transaction request to the transaction coordinator, which answers
    /// through its actions; `partitions`, those an AddPartitionsToTxn names.
    fn on_txn_request(
        &mut self,
        conn: u64,
        correlation_id: u64,
        partitions: Vec<TopicPartition>,
        request: TxnRequest,
        now_ms: u64,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.txn_requests.insert(
            token,
            TxnWaiter {
                conn,
                correlation_id,
                partitions,
            },
        );
        let (broker, incarnation) = (self.config.id, self.config.incarnation);
        let counter = &mut self.next_producer_id;
        let mut allocate = || next_producer_id(broker, incarnation, counter);
        self.txn_coordinator
            .on_request(token, request, now_ms, &mut allocate);
    }

    /// Runs the transaction coordinator's actions; whether there were any.
    fn pump_txn_coordinator(&mut self) -> bool {
        let actions = self.txn_coordinator.take_actions();
        if actions.is_empty() {
            return false;
        }
        for action in actions {
            match action {
                TxnCoordinatorAction::Respond { token, body } => {
                    if let Some(id) = self.local_verify_tokens.remove(&token) {
                        let result = match body {
                            TxnResponse::VerifyPartitionsInTxn(result) => result,
                            other => unreachable!("a verification answered with {other:?}"),
                        };
                        self.on_verified(id, result, self.now_ms);
                    } else if let Some(waiter) = self.txn_requests.remove(&token) {
                        self.actions.push(BrokerAction::Respond {
                            conn: waiter.conn,
                            response: Response {
                                correlation_id: waiter.correlation_id,
                                body: txn_response_body(body, waiter.partitions),
                            },
                        });
                    }
                }
                TxnCoordinatorAction::Append {
                    id,
                    partition,
                    leader_epoch,
                    records,
                } => self.append_for_txn_coordinator(id, partition, leader_epoch, &records),
                TxnCoordinatorAction::WriteTxnMarkers(markers) => self.send_txn_markers(markers),
                TxnCoordinatorAction::Announce(event) => self.announce(event),
            }
        }
        true
    }

    /// Sends a transaction's markers to the leaders of its partitions, as this broker's
    /// metadata cache knows them (Kafka's `TransactionMarkerChannelManager`): one
    /// WriteTxnMarkers per leader, written at once when the leader is this broker. A
    /// partition with no live leader known is reported back as `NOT_LEADER_OR_FOLLOWER`,
    /// which the coordinator retries at its next tick.
    fn send_txn_markers(&mut self, markers: TxnMarkers) {
        let now = self.now_ms;
        let mut by_leader: BTreeMap<BrokerId, Vec<TopicPartition>> = BTreeMap::new();
        for tp in markers.partitions {
            let leader = self
                .metadata
                .get(&tp)
                .and_then(|s| s.leader)
                .filter(|l| self.live_brokers.contains(l) || *l == self.config.id);
            match leader {
                Some(leader) => by_leader.entry(leader).or_default().push(tp),
                None => self.txn_coordinator.on_markers_done(
                    &markers.transactional_id,
                    markers.coordinator_epoch,
                    tp,
                    Err(KafkaError::NotLeaderOrFollower),
                    now,
                ),
            }
        }
        for (leader, partitions) in by_leader {
            let correlation_id = self.correlation();
            let entry = TxnMarkerEntry {
                producer: markers.producer,
                result: markers.result,
                coordinator_epoch: markers.coordinator_epoch,
                partitions: partitions.clone(),
            };
            self.marker_sends.insert(
                correlation_id,
                MarkerSend {
                    to: leader,
                    sent_ms: now,
                    txns: vec![(
                        markers.transactional_id.clone(),
                        markers.coordinator_epoch,
                        partitions,
                    )],
                },
            );
            if leader == self.config.id {
                self.write_txn_markers(MarkersReply::Local { correlation_id }, vec![entry], now);
            } else {
                self.actions.push(BrokerAction::SendToBroker {
                    to: leader,
                    request: Request {
                        correlation_id,
                        body: RequestBody::WriteTxnMarkers {
                            markers: vec![entry],
                        },
                    },
                });
            }
        }
    }

    /// The answer to marker send `correlation_id`: each partition's outcome goes to the
    /// transaction coordinator (a partition left unanswered counts as not led there).
    fn on_markers_answered(
        &mut self,
        correlation_id: u64,
        answers: Vec<Vec<(TopicPartition, Option<KafkaError>)>>,
        now_ms: u64,
    ) {
        let Some(send) = self.marker_sends.remove(&correlation_id) else {
            return;
        };
        let mut answers = answers.into_iter();
        for (transactional_id, coordinator_epoch, partitions) in send.txns {
            let answer = answers.next().unwrap_or_default();
            for tp in partitions {
                let result = match answer.iter().find(|(t, _)| *t == tp) {
                    Some((_, None)) => Ok(()),
                    Some((_, Some(error))) => Err(*error),
                    None => Err(KafkaError::NotLeaderOrFollower),
                };
                self.txn_coordinator.on_markers_done(
                    &transactional_id,
                    coordinator_epoch,
                    tp,
                    result,
                    now_ms,
                );
            }
        }
    }

    /// Marker send `correlation_id` got no answer: every partition of it failed with
    /// `error` (retriable: the coordinator sends them again at its next tick).
    fn fail_marker_send(&mut self, correlation_id: u64, error: KafkaError, now_ms: u64) {
        let Some(send) = self.marker_sends.get(&correlation_id) else {
            return;
        };
        let answers = send
            .txns
            .iter()
            .map(|(_, _, partitions)| partitions.iter().map(|tp| (*tp, Some(error))).collect())
            .collect();
        self.on_markers_answered(correlation_id, answers, now_ms);
    }

    /// Marker sends unanswered for a request timeout are given up (`REQUEST_TIMED_OUT`).
    fn expire_marker_sends(&mut self, now_ms: u64) {
        let due: Vec<u64> = self
            .marker_sends
            .iter()
            .filter(|(_, s)| now_ms >= s.sent_ms + TXN_MARKER_REQUEST_TIMEOUT_MS)
            .map(|(c, _)| *c)
            .collect();
        for c in due {
            self.fail_marker_send(c, KafkaError::RequestTimedOut, now_ms);
        }
    }

    /// WriteTxnMarkers on the partition leader (Kafka's `handleWriteTxnMarkersRequest`):
    /// each marker is appended as leader and the request is answered, per entry and
    /// partition, once every append is acknowledged acks=all or failed
    /// (`NOT_LEADER_OR_FOLLOWER` where this broker does not lead).
    fn write_txn_markers(&mut self, reply: MarkersReply, markers: Vec<TxnMarkerEntry>, now: u64) {
        let mut slots = Vec::new();
        let mut entries = Vec::with_capacity(markers.len());
        for entry in markers {
            entries.push((
                entry.partitions.len(),
                entry.producer.producer_id,
                entry.result,
            ));
            let marker = control_record(entry.result, entry.coordinator_epoch);
            for tp in entry.partitions {
                let result = match self.replicas.get_mut(&tp) {
                    None => Err(KafkaError::NotLeaderOrFollower),
                    Some(r) => r
                        .append_txn_marker_as_leader(
                            entry.producer.producer_id,
                            entry.producer.producer_epoch,
                            marker,
                            now as i64,
                        )
                        .map_err(|e| e.kafka_error()),
                };
                slots.push(match result {
                    Ok(append) => {
                        let ok = super::proto::ProduceOk {
                            base_offset: append.base_offset,
                            leader_epoch: append.leader_epoch,
                        };
                        (tp, Ok(ok), Some((append.last_offset, append.leader_epoch)))
                    }
                    Err(e) => (tp, Err(e), None),
                });
                self.drain_replica_events(&tp);
            }
        }
        self.produces.push(PendingProduce {
            to: ProduceFor::TxnMarkers { reply, entries },
            deadline_ms: now.saturating_add(TXN_MARKER_REQUEST_TIMEOUT_MS),
            partitions: slots,
        });
        self.complete_produces(now);
        self.complete_fetches(now);
    }

    /// Appends the coordinator's records to an offsets partition this broker leads in
    /// `leader_epoch`, acks=all: the outcome goes back once the HW passes them. A
    /// TxnOffsetCommit's records (`transaction`) go in one transactional batch of the
    /// producer, appended as Kafka's origin COORDINATOR (no sequence check).
    fn append_for_coordinator(
        &mut self,
        id: u64,
        partition: u32,
        leader_epoch: LeaderEpoch,
        records: &[GroupRecord],
        transaction: Option<ProducerIdentity>,
    ) {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let records: Vec<_> = records.iter().map(GroupRecord::encode).collect();
        let to = ProduceFor::Coordinator(id);
        let timeout = OFFSETS_COMMIT_TIMEOUT_MS;
        if let Err(e) = self.append_internal(tp, leader_epoch, &records, transaction, to, timeout) {
            self.coordinator.on_append_done(id, Err(e), self.now_ms);
        }
    }

    /// Appends the transaction coordinator's records to a `__transaction_state` partition
    /// this broker leads in `leader_epoch`, acks=all, waiting up to the transaction's
    /// timeout as Kafka's `appendTransactionToLog` does: the outcome goes back once the HW
    /// passes them.
    fn append_for_txn_coordinator(
        &mut self,
        id: u64,
        partition: u32,
        leader_epoch: LeaderEpoch,
        records: &[TxnRecord],
    ) {
        let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, partition);
        let timeout_ms = records
            .iter()
            .filter_map(|r| r.value.as_ref())
            .map(|m| u64::try_from(m.txn_timeout_ms).unwrap_or(0))
            .max()
            .unwrap_or(TXN_MARKER_REQUEST_TIMEOUT_MS);
        let records: Vec<_> = records.iter().map(TxnRecord::encode).collect();
        let to = ProduceFor::TxnCoordinator(id);
        match self.append_internal(tp, leader_epoch, &records, None, to, timeout_ms) {
            // Followers waiting at the LEO get the records at once (Kafka's ReplicaManager
            // completes its delayed fetches after every append).
            Ok(()) => self.complete_fetches(self.now_ms),
            Err(e) => self.txn_coordinator.on_append_done(id, Err(e), self.now_ms),
        }
    }

    /// Appends an internal topic's records (key, value) to partition `tp`, led here in
    /// `leader_epoch`, acks=all, in one batch (transactional, of `transaction`'s producer
    /// id and epoch, if given); `to` is answered once the HW passes them (or `timeout_ms`
    /// runs out). An append refused at once is the error returned.
    fn append_internal(
        &mut self,
        tp: TopicPartition,
        leader_epoch: LeaderEpoch,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        transaction: Option<ProducerIdentity>,
        to: ProduceFor,
        timeout_ms: u64,
    ) -> Result<(), KafkaError> {
        let now = self.now_ms;
        let result = match self.replicas.get_mut(&tp) {
            Some(r) if r.role() == Role::Leader && r.leader_epoch() == leader_epoch => {
                let (producer_id, producer_epoch) = transaction
                    .map_or((ProducerId::NONE, -1), |p| {
                        (p.producer_id, p.producer_epoch)
                    });
                let mut batch = BatchBuilder::new(BatchMeta {
                    base_timestamp_ms: now as i64,
                    producer_id,
                    producer_epoch,
                    ..BatchMeta::default()
                });
                batch.set_transactional(transaction.is_some());
                for (key, value) in records {
                    batch.push(now as i64, Some(key), value.as_deref(), &[]);
                }
                let bytes = batch.encode(Offset(0)).to_vec();
                match transaction {
                    Some(_) => r.append_as_coordinator(&bytes),
                    None => r.append_as_leader(&bytes, Acks::All),
                }
                .map_err(|e| e.kafka_error())
            }
            _ => Err(KafkaError::NotLeaderOrFollower),
        };
        self.drain_replica_events(&tp);
        let append = result?;
        let ok = super::proto::ProduceOk {
            base_offset: append.base_offset,
            leader_epoch: append.leader_epoch,
        };
        self.produces.push(PendingProduce {
            to,
            deadline_ms: now + timeout_ms,
            partitions: vec![(tp, Ok(ok), Some((append.last_offset, append.leader_epoch)))],
        });
        self.complete_produces(now);
        Ok(())
    }

    /// The replica of internal partition `tp` a coordinator may load now: this broker leads
    /// it in `epoch` and its HW has reached its LEO (everything in the log is committed).
    fn loadable(&self, tp: &TopicPartition, epoch: LeaderEpoch) -> Option<&Replica<D>> {
        self.replicas.get(tp).filter(|r| {
            r.role() == Role::Leader
                && r.leader_epoch() == epoch
                && r.high_watermark() >= r.log_end_offset()
        })
    }

    /// Loads the offsets partitions the coordinator waits for, once this broker leads
    /// each in the epoch it waits for and the HW has reached the LEO (everything in the
    /// log is committed).
    fn load_offsets_partitions(&mut self, now_ms: u64) {
        for (partition, epoch) in self.coordinator.loading() {
            let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
            let Some(r) = self.loadable(&tp, epoch) else {
                continue;
            };
            match read_internal_batches(r) {
                Ok(batches) => {
                    let batches = batches.into_iter().filter_map(offsets_batch).collect();
                    self.coordinator
                        .on_loaded(partition, epoch, batches, now_ms)
                }
                Err(error) => self.announce(BrokerEvent::LogError {
                    partition: tp,
                    error,
                }),
            }
        }
    }

    /// Loads the `__transaction_state` partitions the transaction coordinator waits for,
    /// once this broker leads each in the epoch it waits for and the HW has reached the LEO.
    fn load_txn_partitions(&mut self, now_ms: u64) {
        for (partition, epoch) in self.txn_coordinator.loading() {
            let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, partition);
            let Some(r) = self.loadable(&tp, epoch) else {
                continue;
            };
            match read_internal_records(r, TxnRecord::decode) {
                Ok(records) => self
                    .txn_coordinator
                    .on_loaded(partition, epoch, records, now_ms),
                Err(error) => self.announce(BrokerEvent::LogError {
                    partition: tp,
                    error,
                }),
            }
        }
    }

    /// Tells the coordinator whether this broker leads offsets partition `tp` now (or the
    /// transaction coordinator, `__transaction_state` partition `tp`: Kafka's
    /// `onElection`/`onResignation`, the leader epoch being the coordinator epoch).
    fn sync_coordinator(&mut self, tp: &TopicPartition) {
        if tp.topic == TRANSACTION_STATE_TOPIC {
            match self.replicas.get(tp) {
                Some(r) if r.role() == Role::Leader => {
                    let epoch = r.leader_epoch();
                    self.txn_coordinator.on_become_leader(tp.partition, epoch);
                    self.load_txn_partitions(self.now_ms);
                }
                _ => self.txn_coordinator.on_resign(tp.partition),
            }
            return;
        }
        if tp.topic != OFFSETS_TOPIC {
            return;
        }
        match self.replicas.get(tp) {
            Some(r) if r.role() == Role::Leader => {
                let epoch = r.leader_epoch();
                self.coordinator.on_become_leader(tp.partition, epoch);
                self.load_offsets_partitions(self.now_ms);
            }
            _ => self.coordinator.on_resign(tp.partition),
        }
    }

    fn metadata_response(&self, topics: &[String]) -> ResponseBody {
        let partitions = self
            .metadata
            .iter()
            .filter(|(tp, _)| topics.is_empty() || topics.iter().any(|t| *t == tp.topic))
            .map(|(tp, s)| {
                let mut s = s.clone();
                if s.leader.is_some_and(|l| !self.live_brokers.contains(&l)) {
                    s.leader = None;
                }
                (*tp, s)
            })
            .collect();
        ResponseBody::Metadata {
            controller: self.controller_id,
            brokers: self.live_brokers.iter().copied().collect(),
            partitions,
        }
    }

    fn min_isr(&self, topic: &str) -> usize {
        self.config
            .topic_min_isr
            .get(topic)
            .copied()
            .unwrap_or(self.config.replica.min_insync_replicas)
    }

    /// A Produce: its transactional batches that open a transaction on a partition this
    /// broker leads are verified first (KIP-890 part 1) — the whole request waits for the
    /// transaction coordinator's answer, as in Kafka — unless verification is off.
    fn on_produce(
        &mut self,
        mut produce: HeldProduce,
        transactional_id: Option<String>,
        now_ms: u64,
    ) {
        let mut producer = None;
        if let Some(tid) = &transactional_id {
            for part in &produce.partitions {
                let Some(replica) = self.replicas.get_mut(&part.partition) else {
                    continue;
                };
                let fresh = self.next_guard;
                if let Some(guard) = replica.start_txn_verification(&part.batch.0, fresh) {
                    if guard == fresh {
                        self.next_guard += 1;
                    }
                    produce.guards.insert(part.partition, guard);
                    if let Ok(header) = crate::log::check_batch(&part.batch.0) {
                        producer.get_or_insert(ProducerIdentity {
                            producer_id: header.producer_id,
                            producer_epoch: header.producer_epoch,
                        });
                    }
                }
            }
            if let Some(producer) = producer {
                self.verify(tid.clone(), producer, produce, now_ms);
                return;
            }
        }
        self.append_produce(produce, BTreeMap::new(), now_ms);
    }

    /// Asks the transaction coordinator of `transactional_id` (the leader of its
    /// `__transaction_state` partition in the metadata cache) whether the guarded
    /// partitions of `produce` are in the producer's transaction: AddPartitionsToTxn with
    /// `verify_only`, to this broker's own coordinator without the network.
    fn verify(
        &mut self,
        transactional_id: String,
        producer: ProducerIdentity,
        mut produce: HeldProduce,
        now_ms: u64,
    ) {
        let partition = partition_for(
            &transactional_id,
            self.config.txn_coordinator.transaction_state_partitions,
        );
        let state_tp = TopicPartition::new(TRANSACTION_STATE_TOPIC, partition);
        let me = self.config.id;
        let coordinator = self
            .metadata
            .get(&state_tp)
            .and_then(|s| s.leader)
            .filter(|l| *l == me || self.live_brokers.contains(l));
        let id = self.correlation();
        let partitions: Vec<TopicPartition> = produce.guards.keys().copied().collect();
        let Some(to) = coordinator else {
            produce.to = me;
            self.verifications.insert(id, produce);
            self.on_verified(id, Err(KafkaError::CoordinatorNotAvailable), now_ms);
            return;
        };
        produce.to = to;
        produce.sent_ms = now_ms;
        self.verifications.insert(id, produce);
        if to == me {
            let token = self.next_token;
            self.next_token += 1;
            self.local_verify_tokens.insert(token, id);
            let request = TxnRequest::VerifyPartitionsInTxn {
                transactional_id,
                producer,
                partitions,
            };
            let mut no_ids = || unreachable!("a verification allocates no producer id");
            self.txn_coordinator
                .on_request(token, request, now_ms, &mut no_ids);
        } else {
            self.actions.push(BrokerAction::SendToBroker {
                to,
                request: Request {
                    correlation_id: id,
                    body: RequestBody::AddPartitionsToTxn {
                        transactional_id,
                        producer,
                        partitions,
                        verify_only: true,
                    },
                },
            });
        }
    }

    /// The coordinator's answer to verification `id`: the held produce is appended, its
    /// unverified partitions answered with the error Kafka gives a client
    /// (`INVALID_TXN_STATE` for a partition not in the transaction; `NOT_ENOUGH_REPLICAS`,
    /// retriable, when the coordinator could not answer; `INVALID_PRODUCER_EPOCH` for a
    /// fenced producer).
    fn on_verified(
        &mut self,
        id: u64,
        result: Result<Vec<super::txn_coordinator::PartitionResult>, KafkaError>,
        now_ms: u64,
    ) {
        let Some(produce) = self.verifications.remove(&id) else {
            return;
        };
        let mut errors = BTreeMap::new();
        for tp in produce.guards.keys() {
            let error = match &result {
                Err(e) => Some(*e),
                Ok(answers) => match answers.iter().find(|(t, _)| t == tp) {
                    Some((_, answer)) => answer.err(),
                    None => Some(KafkaError::InvalidTxnState),
                },
            };
            let Some(error) = error else { continue };
            let error = match error {
                KafkaError::InvalidTxnState | KafkaError::TransactionAbortable => {
                    crate::coverage::hit(crate::coverage::Mark::ProduceUnverifiedTxnBatch);
                    KafkaError::InvalidTxnState
                }
                KafkaError::ConcurrentTransactions
                | KafkaError::NetworkException
                | KafkaError::RequestTimedOut
                | KafkaError::CoordinatorLoadInProgress
                | KafkaError::CoordinatorNotAvailable
                | KafkaError::NotCoordinator => KafkaError::NotEnoughReplicas,
                KafkaError::ProducerFenced => KafkaError::InvalidProducerEpoch,
                other => other,
            };
            errors.insert(*tp, error);
        }
        self.append_produce(produce, errors, now_ms);
    }

    /// Verifications unanswered for a request timeout, or sent on a connection that broke,
    /// fail retriably.
    fn fail_verifications(&mut self, lost: impl Fn(&HeldProduce) -> bool, now_ms: u64) {
        let failed: Vec<u64> = self
            .verifications
            .iter()
            .filter(|(_, p)| p.to != self.config.id && lost(p))
            .map(|(id, _)| *id)
            .collect();
        for id in failed {
            self.on_verified(id, Err(KafkaError::NetworkException), now_ms);
        }
    }

    /// Appends a produce's batches (those of `errors` are answered with their error
    /// instead) and answers it, at once or, for acks=all, once the HW passes them.
    fn append_produce(
        &mut self,
        produce: HeldProduce,
        errors: BTreeMap<TopicPartition, KafkaError>,
        now_ms: u64,
    ) {
        let HeldProduce {
            conn,
            correlation_id,
            acks,
            timeout_ms,
            partitions,
            guards,
            ..
        } = produce;
        let mut answers = Vec::new();
        for part in partitions {
            let tp = part.partition;
            let result = match (errors.get(&tp), self.replicas.get_mut(&tp)) {
                (Some(error), _) => Err(*error),
                (None, None) => Err(KafkaError::NotLeaderOrFollower),
                (None, Some(replica)) => replica
                    .append_as_leader_verified(&part.batch.0, acks, guards.get(&tp).copied())
                    .map_err(|e| e.kafka_error()),
            };
            let answer = match result {
                Ok(append) => {
                    let ok = super::proto::ProduceOk {
                        base_offset: append.base_offset,
                        leader_epoch: append.leader_epoch,
                    };
                    let wait =
                        (acks == Acks::All).then_some((append.last_offset, append.leader_epoch));
                    (tp, Ok(ok), wait)
                }
                Err(e) => (tp, Err(e), None),
            };
            answers.push(answer);
            self.drain_replica_events(&tp);
        }
        if acks == Acks::None {
            return;
        }
        let pending = PendingProduce {
            to: ProduceFor::Client {
                conn,
                correlation_id,
            },
            deadline_ms: now_ms.saturating_add(timeout_ms),
            partitions: answers,
        };
        self.produces.push(pending);
        self.complete_produces(now_ms);
        self.complete_fetches(now_ms);
    }

    /// Answers every waiting produce whose batches the HW passed (or that can no longer
    /// complete, or timed out).
    fn complete_produces(&mut self, now_ms: u64) {
        // First settle every wait in place (nothing else changes meanwhile: answering one
        // produce touches no replica), then answer the finished ones in order.
        let mut finished = 0;
        // Many waits are on the same few partitions: each replica is looked up once.
        let mut looked_up: Vec<(TopicPartition, Option<&Replica<D>>)> = Vec::new();
        for p in &mut self.produces {
            let mut done = true;
            for (tp, result, wait) in p.partitions.iter_mut() {
                let Some((last, epoch)) = *wait else { continue };
                let replica = match looked_up.iter().find(|(seen, _)| seen == tp) {
                    Some(&(_, replica)) => replica,
                    None => {
                        let replica = self.replicas.get(tp);
                        looked_up.push((*tp, replica));
                        replica
                    }
                };
                let verdict = match replica {
                    Some(r) => r.check_acks_all(last, epoch),
                    None => Some(Err(KafkaError::NotLeaderOrFollower)),
                };
                match verdict {
                    Some(Ok(())) => *wait = None,
                    Some(Err(e)) => {
                        *result = Err(e);
                        *wait = None;
                    }
                    None if now_ms >= p.deadline_ms => {
                        let min_isr = self
                            .config
                            .topic_min_isr
                            .get(tp.topic.as_str())
                            .copied()
                            .unwrap_or(self.config.replica.min_insync_replicas);
                        let short = replica.is_some_and(|r| r.isr().len() < min_isr);
                        *result = Err(if short {
                            KafkaError::NotEnoughReplicasAfterAppend
                        } else {
                            KafkaError::RequestTimedOut
                        });
                        *wait = None;
                    }
                    None => done = false,
                }
            }
            finished += usize::from(done);
        }
        if finished == 0 {
            return;
        }
        let pending = std::mem::take(&mut self.produces);
        for p in pending {
            if p.partitions.iter().any(|(_, _, wait)| wait.is_some()) {
                self.produces.push(p);
                continue;
            }
            match p.to {
                ProduceFor::Client {
                    conn,
                    correlation_id,
                } => {
                    let partitions = p
                        .partitions
                        .into_iter()
                        .map(|(tp, result, _)| (tp, result))
                        .collect();
                    self.actions.push(BrokerAction::Respond {
                        conn,
                        response: Response {
                            correlation_id,
                            body: ResponseBody::Produce { partitions },
                        },
                    });
                }
                ProduceFor::Coordinator(id) => {
                    let result = match p.partitions.into_iter().next() {
                        Some((_, Ok(ok), _)) => Ok(ok.base_offset),
                        Some((_, Err(e), _)) => Err(e),
                        None => Err(KafkaError::NotLeaderOrFollower),
                    };
                    self.coordinator.on_append_done(id, result, now_ms);
                }
                ProduceFor::TxnCoordinator(id) => {
                    let result = match p.partitions.into_iter().next() {
                        Some((_, Ok(_), _)) => Ok(()),
                        Some((_, Err(e), _)) => Err(e),
                        None => Err(KafkaError::NotLeaderOrFollower),
                    };
                    self.txn_coordinator.on_append_done(id, result, now_ms);
                }
                ProduceFor::TxnMarkers { reply, entries } => {
                    let mut slots = p.partitions.into_iter().map(|(tp, r, _)| (tp, r.err()));
                    let markers: Vec<Vec<(TopicPartition, Option<KafkaError>)>> = entries
                        .iter()
                        .map(|(n, _, _)| slots.by_ref().take(*n).collect())
                        .collect();
                    // Markers written on offsets partitions complete the transactions'
                    // offsets there (Kafka's `scheduleHandleTxnCompletion`).
                    for ((_, producer_id, result), answers) in entries.iter().zip(&markers) {
                        for (tp, error) in answers {
                            if tp.topic == OFFSETS_TOPIC && error.is_none() {
                                let commit = *result == TransactionResult::Commit;
                                self.coordinator.on_txn_completed(
                                    tp.partition,
                                    *producer_id,
                                    commit,
                                    now_ms,
                                );
                            }
                        }
                    }
                    match reply {
                        MarkersReply::Peer {
                            conn,
                            correlation_id,
                        } => self.actions.push(BrokerAction::Respond {
                            conn,
                            response: Response {
                                correlation_id,
                                body: ResponseBody::WriteTxnMarkers { markers },
                            },
                        }),
                        MarkersReply::Local { correlation_id } => {
                            self.on_markers_answered(correlation_id, markers, now_ms)
                        }
                    }
                }
            }
        }
    }

    /// A fetch that just arrived: the follower's progress is recorded (which may advance
    /// the HW or propose an ISR expansion), then it is answered now if it has data or an
    /// error, otherwise it waits (returned) for data or its deadline.
    fn try_fetch(&mut self, p: PendingFetch, now_ms: u64, force: bool) -> Option<PendingFetch> {
        let mut answers = Vec::with_capacity(p.partitions.len());
        let mut has_data = false;
        for part in &p.partitions {
            let answer = self.fetch_one(p.replica, p.isolation, part, now_ms);
            has_data |= answer_has_data(&answer);
            answers.push((part.partition, answer));
        }
        // Follower fetches moved LEOs: HWs may have advanced; announce them now.
        for part in &p.partitions {
            self.drain_replica_events(&part.partition);
        }
        if !has_data && !force && now_ms < p.deadline_ms {
            return Some(p);
        }
        self.respond_fetch(p, answers);
        None
    }

    /// A waiting fetch checked again (Kafka's `DelayedFetch`): it stays waiting while every
    /// partition would still give nothing and its deadline has not come (`force` ends the
    /// wait); otherwise it is answered from the logs as they are now. Nothing is recorded
    /// again for a follower: its progress is what its fetch said when it arrived.
    fn retry_fetch(&mut self, p: PendingFetch, now_ms: u64, force: bool) -> Option<PendingFetch> {
        let waiting = !force && now_ms < p.deadline_ms;
        if waiting
            && p.partitions
                .iter()
                .all(|part| self.fetch_waits(p.replica, p.isolation, part))
        {
            return Some(p);
        }
        let mut answers = Vec::with_capacity(p.partitions.len());
        let mut has_data = false;
        for part in &p.partitions {
            let answer = self.fetch_again(p.replica, p.isolation, part);
            has_data |= answer_has_data(&answer);
            answers.push((part.partition, answer));
        }
        if !has_data && waiting {
            return Some(p);
        }
        self.respond_fetch(p, answers);
        None
    }

    fn respond_fetch(
        &mut self,
        p: PendingFetch,
        answers: Vec<(TopicPartition, Result<FetchData, KafkaError>)>,
    ) {
        self.actions.push(BrokerAction::Respond {
            conn: p.conn,
            response: Response {
                correlation_id: p.correlation_id,
                body: ResponseBody::Fetch {
                    partitions: answers,
                },
            },
        });
    }

    /// Whether `part` of a waiting fetch would still give nothing.
    fn fetch_waits(
        &self,
        replica: Option<(BrokerId, BrokerEpoch)>,
        isolation: IsolationLevel,
        part: &FetchPartition,
    ) -> bool {
        let Some(r) = self.replicas.get(&part.partition) else {
            return false;
        };
        match replica {
            None => r.consumer_fetch_waits(part.fetch_offset, part.current_leader_epoch, isolation),
            Some((follower, _)) => r.follower_fetch_waits(follower, &follower_fetch(part)),
        }
    }

    /// `part` of a waiting fetch, read now without recording anything.
    fn fetch_again(
        &self,
        replica: Option<(BrokerId, BrokerEpoch)>,
        isolation: IsolationLevel,
        part: &FetchPartition,
    ) -> Result<FetchData, KafkaError> {
        let Some(r) = self.replicas.get(&part.partition) else {
            return Err(KafkaError::NotLeaderOrFollower);
        };
        match replica {
            None => r.read_for_consumer(
                part.fetch_offset,
                part.current_leader_epoch,
                part.max_bytes as usize,
                isolation,
            ),
            Some((follower, _)) => {
                r.read_for_follower(follower, follower_fetch(part), part.max_bytes as usize)
            }
        }
        .map_err(|e| e.kafka_error())
    }

    fn fetch_one(
        &mut self,
        replica: Option<(BrokerId, BrokerEpoch)>,
        isolation: IsolationLevel,
        part: &FetchPartition,
        now_ms: u64,
    ) -> Result<FetchData, KafkaError> {
        let Some(r) = self.replicas.get_mut(&part.partition) else {
            return Err(KafkaError::NotLeaderOrFollower);
        };
        match replica {
            None => r
                .read_for_consumer(
                    part.fetch_offset,
                    part.current_leader_epoch,
                    part.max_bytes as usize,
                    isolation,
                )
                .map_err(|e| e.kafka_error()),
            Some((follower, _)) => {
                let answer = r
                    .on_follower_fetch(
                        follower,
                        follower_fetch(part),
                        part.max_bytes as usize,
                        now_ms,
                    )
                    .map_err(|e| e.kafka_error())?;
                if let Some(proposal) = answer.isr_proposal {
                    self.propose_isr(&part.partition, proposal);
                }
                Ok(answer.data)
            }
        }
    }

    fn complete_fetches(&mut self, now_ms: u64) {
        let pending = std::mem::take(&mut self.fetches);
        for p in pending {
            if let Some(p) = self.retry_fetch(p, now_ms, false) {
                self.fetches.push(p);
            }
        }
    }

    fn answer_epoch_query(&self, q: &EpochQuery) -> Result<EpochEndOffset, KafkaError> {
        let Some(r) = self.replicas.get(&q.partition) else {
            return Err(KafkaError::NotLeaderOrFollower);
        };
        r.on_epoch_request(EpochRequest {
            current_leader_epoch: q.current_leader_epoch,
            leader_epoch: q.leader_epoch,
        })
        .map_err(|e| e.kafka_error())
    }

    // --- controller requests ---

    fn handle_controller_request(&mut self, body: &RequestBody, now_ms: u64) -> ResponseBody {
        match body {
            RequestBody::LeaderAndIsr {
                controller_id,
                controller_epoch,
                broker_epoch,
                partitions,
            } => {
                if *controller_epoch < self.controller_epoch {
                    crate::coverage::hit(crate::coverage::Mark::StaleControllerRequestRefused);
                    return ResponseBody::LeaderAndIsr {
                        error: Some(KafkaError::StaleControllerEpoch),
                    };
                }
                // LEGACY (before KIP-380): no broker epoch to tell this incarnation's
                // requests from an earlier one's.
                let fenced = !self.config.controller.legacy_no_broker_epoch;
                if fenced && Some(*broker_epoch) != self.broker_epoch {
                    crate::coverage::hit(crate::coverage::Mark::StaleBrokerEpochRefused);
                    return ResponseBody::LeaderAndIsr {
                        error: Some(KafkaError::StaleBrokerEpoch),
                    };
                }
                self.see_controller(*controller_id, *controller_epoch);
                for (tp, state) in partitions {
                    self.apply_partition_state(tp, state, now_ms);
                }
                self.complete_produces(now_ms);
                ResponseBody::LeaderAndIsr { error: None }
            }
            RequestBody::UpdateMetadata {
                controller_id,
                controller_epoch,
                live_brokers,
                partitions,
            } => {
                if *controller_epoch < self.controller_epoch {
                    crate::coverage::hit(crate::coverage::Mark::StaleControllerRequestRefused);
                    return ResponseBody::UpdateMetadata {
                        error: Some(KafkaError::StaleControllerEpoch),
                    };
                }
                self.see_controller(*controller_id, *controller_epoch);
                self.live_brokers = live_brokers.iter().map(|(b, _)| *b).collect();
                for (tp, state) in partitions {
                    self.cache_state(tp, state);
                }
                ResponseBody::UpdateMetadata { error: None }
            }
            _ => ResponseBody::LeaderAndIsr {
                error: Some(KafkaError::CorruptMessage),
            },
        }
    }

    fn see_controller(&mut self, id: BrokerId, epoch: ControllerEpoch) {
        // Paired with the STALE_CONTROLLER_EPOCH fence of every controller request.
        assert!(
            epoch >= self.controller_epoch,
            "controller epoch {epoch} accepted after {}: the fence lets only newer ones in",
            self.controller_epoch
        );
        if epoch > self.controller_epoch || self.controller_id.is_none() {
            self.controller_epoch = epoch;
            self.controller_id = Some(id);
        }
    }

    fn replica_config(&self, topic: &str) -> ReplicaConfig {
        let mut config = self.config.replica.clone();
        config.min_insync_replicas = self.min_isr(topic);
        if topic == OFFSETS_TOPIC || topic == TRANSACTION_STATE_TOPIC {
            // Kafka compacts them; without compaction every record is kept.
            config.log.retention_ms = None;
            config.log.retention_bytes = None;
        }
        config
    }

    fn apply_partition_state(&mut self, tp: &TopicPartition, state: &PartitionState, now_ms: u64) {
        if !self.replicas.contains_key(tp) {
            let dir = PathBuf::from(LOG_DIR).join(tp.dir_name());
            let config = self.replica_config(&tp.topic);
            let (id, disk) = (self.config.id, self.disk.clone());
            let opened = self
                .checkpointed_hws()
                .map(|hws| hws.get(tp).copied())
                .and_then(|hw| {
                    Replica::open(id, disk, &dir, config, hw).map_err(|e| e.to_string())
                });
            match opened {
                Ok((replica, report)) => {
                    self.announce(BrokerEvent::LogOpened {
                        partition: *tp,
                        recovery: format!("{report:?}"),
                    });
                    self.replicas.insert(*tp, replica);
                }
                Err(error) => {
                    self.announce(BrokerEvent::LogError {
                        partition: *tp,
                        error,
                    });
                    return;
                }
            }
        }
        let me = self.config.id;
        let replica = self.replicas.get_mut(tp).expect("opened");
        let current = replica.leader_epoch();
        let partition_epoch_before = replica.partition_epoch();
        let result = if state.leader_epoch > current || current == LeaderEpoch::NONE {
            match state.leader {
                Some(leader) if leader == me => replica.become_leader(
                    state.leader_epoch,
                    state.isr.clone(),
                    state.replicas.clone(),
                    state.partition_epoch,
                    now_ms,
                ),
                Some(leader) => replica.become_follower(leader, state.leader_epoch),
                None => Ok(()),
            }
        } else if state.leader_epoch == current && state.leader == Some(me) {
            replica.set_isr(state.isr.clone(), state.partition_epoch)
        } else {
            Ok(())
        };
        // Whatever was applied or refused, the replica's epochs did not go back.
        assert!(
            replica.leader_epoch() >= current,
            "{tp}: leader epoch {} after {current}: a replica's leader epochs only grow",
            replica.leader_epoch()
        );
        if replica.leader_epoch() == current {
            if let (Some(before), Some(after)) = (partition_epoch_before, replica.partition_epoch())
            {
                assert!(
                    after >= before,
                    "{tp}: partition epoch {after} after {before} in leader epoch {current}: \
                     partition epochs only grow"
                );
            }
        }
        if let Err(e) = result {
            self.announce(BrokerEvent::LeaderAndIsrRefused {
                partition: *tp,
                error: e.to_string(),
            });
        }
        self.cache_state(tp, state);
        self.drain_replica_events(tp);
        self.sync_coordinator(tp);
    }

    /// Puts a partition's state in the metadata cache clients read, unless the cache holds a
    /// newer one: LeaderAndIsr, UpdateMetadata and AlterPartition answers arrive over
    /// different connections, and a resent LeaderAndIsr can land after a newer state (the
    /// replica refuses it; the cache must not step back either).
    fn cache_state(&mut self, tp: &TopicPartition, state: &PartitionState) {
        let newer = self.metadata.get(tp).is_none_or(|old| {
            (old.leader_epoch, old.partition_epoch) <= (state.leader_epoch, state.partition_epoch)
        });
        if newer {
            self.metadata.insert(*tp, state.clone());
        }
    }

    // --- ISR changes ---

    fn propose_isr(&mut self, tp: &TopicPartition, proposal: IsrProposal) {
        let Some(broker_epoch) = self.broker_epoch else {
            return;
        };
        let request = AlterPartition {
            broker_id: self.config.id,
            broker_epoch,
            partition: *tp,
            leader_epoch: proposal.leader_epoch,
            partition_epoch: proposal.partition_epoch,
            new_isr: proposal.new_isr,
        };
        if self.controller.active_epoch().is_some() {
            let token = self.next_token;
            self.next_token += 1;
            self.local_alter_tokens.insert(token, *tp);
            self.controller.on_alter_partition(token, request);
            return;
        }
        let Some(controller) = self.controller_id else {
            if let Some(r) = self.replicas.get_mut(tp) {
                r.clear_pending_isr();
            }
            return;
        };
        let correlation_id = self.correlation();
        self.alters
            .insert(correlation_id, (controller, *tp, self.now_ms));
        self.actions.push(BrokerAction::SendToBroker {
            to: controller,
            request: Request {
                correlation_id,
                body: RequestBody::AlterPartition {
                    broker_id: request.broker_id,
                    broker_epoch: request.broker_epoch,
                    partition: request.partition,
                    leader_epoch: request.leader_epoch,
                    partition_epoch: request.partition_epoch,
                    new_isr: request.new_isr,
                },
            },
        });
    }

    fn apply_alter_result(
        &mut self,
        tp: &TopicPartition,
        result: Result<PartitionState, KafkaError>,
    ) {
        let Some(r) = self.replicas.get_mut(tp) else {
            return;
        };
        match result {
            Ok(state)
                if state.leader == Some(self.config.id)
                    && state.leader_epoch == r.leader_epoch() =>
            {
                let _ = r.set_isr(state.isr.clone(), state.partition_epoch);
                self.cache_state(tp, &state);
            }
            _ => r.clear_pending_isr(),
        }
        self.drain_replica_events(tp);
    }

    // --- following ---

    /// A response from another broker to a request this broker sent.
    pub fn on_peer_response(&mut self, from: BrokerId, response: Response, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let correlation_id = response.correlation_id;
        if let Some(mut send) = self.controller_sends.remove(&correlation_id) {
            // A broker answers STALE_BROKER_EPOCH to a request for the registration the
            // controller sees while it has not yet learnt of that registration itself (its
            // answer from the ensemble is still on the way). Kafka never gets here, as a
            // broker serves requests only once registered; the request goes again shortly.
            let behind = match (&response.body, &send.body) {
                (
                    ResponseBody::LeaderAndIsr {
                        error: Some(KafkaError::StaleBrokerEpoch),
                    },
                    RequestBody::LeaderAndIsr { broker_epoch, .. },
                ) => self.controller.live_broker_epoch(send.to) == Some(*broker_epoch),
                _ => false,
            };
            if behind {
                send.resend_at_ms = now_ms + CONTROLLER_RESEND_BACKOFF_MS;
                self.controller_sends.insert(correlation_id, send);
            }
            return;
        }
        match response.body {
            ResponseBody::Fetch { partitions } => {
                let fetcher = self.fetchers.entry(from).or_default();
                if fetcher.in_flight.map(|(c, _)| c) != Some(correlation_id) {
                    return;
                }
                fetcher.in_flight = None;
                let mut backoff = false;
                for (tp, answer) in partitions {
                    let Some(r) = self.replicas.get_mut(&tp) else {
                        continue;
                    };
                    if r.role()
                        != (Role::Follower {
                            leader: from,
                            truncating: false,
                        })
                    {
                        continue;
                    }
                    match answer {
                        Ok(data) => match r.on_fetch_response(&data) {
                            // A batch that does not start at this replica's LEO (only a
                            // legacy truncation to the HW cuts a log off the leader's batch
                            // boundaries): like Kafka's failed append, back off rather than
                            // fetch the same bytes again at once.
                            Ok(FetchOutcome::Ignored) => backoff = true,
                            Ok(_) => {}
                            Err(e) => {
                                backoff = true;
                                if let ReplicaError::Storage(e) = e {
                                    self.announce(BrokerEvent::LogError {
                                        partition: tp,
                                        error: e.to_string(),
                                    });
                                }
                            }
                        },
                        Err(_) => backoff = true,
                    }
                    self.drain_replica_events(&tp);
                }
                if backoff {
                    self.fetchers.entry(from).or_default().not_before_ms =
                        now_ms + REPLICA_FETCH_BACKOFF_MS;
                }
            }
            ResponseBody::OffsetsForLeaderEpoch { partitions } => {
                let Some((leader, questions, _)) = self.epoch_lookups.remove(&correlation_id)
                else {
                    return;
                };
                for (tp, answer) in partitions {
                    let Some(question) = questions.iter().find(|(t, _)| *t == tp).map(|(_, q)| *q)
                    else {
                        continue;
                    };
                    let Some(r) = self.replicas.get_mut(&tp) else {
                        continue;
                    };
                    if r.role()
                        != (Role::Follower {
                            leader,
                            truncating: true,
                        })
                    {
                        continue;
                    }
                    match answer {
                        Ok(end) => match r.on_epoch_response(question, end) {
                            // Done, or ask again: the next `replicate` sends the new question.
                            Ok(_) => {}
                            Err(e) => self.announce(BrokerEvent::LogError {
                                partition: tp,
                                error: e.to_string(),
                            }),
                        },
                        Err(_) => {
                            self.fetchers.entry(leader).or_default().not_before_ms =
                                now_ms + REPLICA_FETCH_BACKOFF_MS;
                        }
                    }
                    self.drain_replica_events(&tp);
                }
            }
            ResponseBody::AlterPartition { result } => {
                if let Some((_, tp, _)) = self.alters.remove(&correlation_id) {
                    self.apply_alter_result(&tp, result);
                }
            }
            ResponseBody::AddPartitionsToTxn { result }
                if self
                    .verifications
                    .get(&correlation_id)
                    .is_some_and(|p| p.to == from) =>
            {
                self.on_verified(correlation_id, result, now_ms);
            }
            ResponseBody::WriteTxnMarkers { markers }
                if self
                    .marker_sends
                    .get(&correlation_id)
                    .is_some_and(|s| s.to == from) =>
            {
                self.on_markers_answered(correlation_id, markers, now_ms);
            }
            _ => {}
        }
        self.replicate(now_ms);
    }

    /// The connection to `peer` broke: what was in flight on it is lost.
    pub fn on_peer_closed(&mut self, peer: BrokerId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Some(f) = self.fetchers.get_mut(&peer) {
            if f.in_flight.take().is_some() {
                f.not_before_ms = now_ms + REPLICA_FETCH_BACKOFF_MS;
            }
        }
        let lookups = self.epoch_lookups.len();
        self.epoch_lookups
            .retain(|_, (leader, _, _)| *leader != peer);
        if self.epoch_lookups.len() < lookups {
            // Not at once: a link that cannot open would spin.
            self.fetchers.entry(peer).or_default().not_before_ms =
                now_ms + REPLICA_FETCH_BACKOFF_MS;
        }
        for send in self.controller_sends.values_mut() {
            if send.to == peer {
                send.resend_at_ms = send.resend_at_ms.min(now_ms + CONTROLLER_RESEND_BACKOFF_MS);
            }
        }
        self.forget_alters(|controller, _| controller == peer);
        let lost: Vec<u64> = self
            .marker_sends
            .iter()
            .filter(|(_, s)| s.to == peer)
            .map(|(c, _)| *c)
            .collect();
        for c in lost {
            self.fail_marker_send(c, KafkaError::NetworkException, now_ms);
        }
        self.fail_verifications(|p| p.to == peer, now_ms);
    }

    /// Gives up the AlterPartition requests `lost` picks (by controller and send time):
    /// their partitions may propose again (Kafka's AlterPartitionManager retries too).
    fn forget_alters(&mut self, lost: impl Fn(BrokerId, u64) -> bool) {
        let gone: Vec<u64> = self
            .alters
            .iter()
            .filter(|(_, (controller, _, sent))| lost(*controller, *sent))
            .map(|(c, _)| *c)
            .collect();
        for c in gone {
            if let Some((_, tp, _)) = self.alters.remove(&c) {
                if let Some(r) = self.replicas.get_mut(&tp) {
                    r.clear_pending_isr();
                }
            }
        }
    }

    /// Sends what followers need: epoch lookups for truncating partitions, one fetch per
    /// leader for the others.
    fn replicate(&mut self, now_ms: u64) {
        let mut lookups: BTreeMap<BrokerId, Vec<(TopicPartition, EpochRequest)>> = BTreeMap::new();
        let mut fetches: BTreeMap<BrokerId, Vec<FetchPartition>> = BTreeMap::new();
        // A lookup unanswered for a request timeout is lost (its link may have stalled
        // without closing): ask again.
        self.epoch_lookups
            .retain(|_, (_, _, sent)| now_ms < *sent + REPLICA_REQUEST_TIMEOUT_MS);
        let looking: BTreeSet<TopicPartition> = self
            .epoch_lookups
            .values()
            .flat_map(|(_, qs, _)| qs.iter().map(|(tp, _)| *tp))
            .collect();
        // A leader whose fetch is in flight (and not yet timed out) or backing off gets no
        // new fetch this turn: its partitions are not even gathered.
        // (Decided once per leader: the replicas are many, the leaders few.)
        let busy: Vec<BrokerId> = self
            .fetchers
            .iter()
            .filter(|(_, f)| {
                f.in_flight
                    .is_some_and(|(_, sent)| now_ms < sent + REPLICA_REQUEST_TIMEOUT_MS)
                    || now_ms < f.not_before_ms
            })
            .map(|(leader, _)| *leader)
            .collect();
        let fetch_busy = |leader: &BrokerId| busy.contains(leader);
        for (tp, r) in &self.replicas {
            match r.role() {
                Role::Follower {
                    leader,
                    truncating: true,
                } => {
                    if looking.contains(tp) {
                        continue;
                    }
                    if let Some(q) = r.epoch_request() {
                        lookups.entry(leader).or_default().push((*tp, q));
                    }
                }
                Role::Follower {
                    leader,
                    truncating: false,
                } => {
                    if fetch_busy(&leader) {
                        continue;
                    }
                    if let Some(f) = r.fetch_request() {
                        fetches.entry(leader).or_default().push(FetchPartition {
                            partition: *tp,
                            fetch_offset: f.fetch_offset,
                            current_leader_epoch: Some(f.current_leader_epoch),
                            last_fetched_epoch: f.last_fetched_epoch,
                            max_bytes: REPLICA_FETCH_MAX_BYTES,
                        });
                    }
                }
                _ => {}
            }
        }
        for (leader, partitions) in lookups {
            if self
                .fetchers
                .get(&leader)
                .is_some_and(|f| now_ms < f.not_before_ms)
            {
                continue;
            }
            let correlation_id = self.correlation();
            let queries = partitions
                .iter()
                .map(|(tp, q)| EpochQuery {
                    partition: *tp,
                    current_leader_epoch: q.current_leader_epoch,
                    leader_epoch: q.leader_epoch,
                })
                .collect();
            self.epoch_lookups
                .insert(correlation_id, (leader, partitions, now_ms));
            self.actions.push(BrokerAction::SendToBroker {
                to: leader,
                request: Request {
                    correlation_id,
                    body: RequestBody::OffsetsForLeaderEpoch {
                        replica_id: self.config.id,
                        partitions: queries,
                    },
                },
            });
        }
        let broker_epoch = self.broker_epoch.unwrap_or(BrokerEpoch(0));
        for (leader, partitions) in fetches {
            let fetcher = self.fetchers.entry(leader).or_default();
            if let Some((_, sent)) = fetcher.in_flight {
                if now_ms < sent + REPLICA_REQUEST_TIMEOUT_MS {
                    continue;
                }
            }
            if now_ms < fetcher.not_before_ms {
                continue;
            }
            let correlation_id = self.next_correlation;
            self.next_correlation += 1;
            fetcher.in_flight = Some((correlation_id, now_ms));
            self.actions.push(BrokerAction::SendToBroker {
                to: leader,
                request: Request {
                    correlation_id,
                    body: RequestBody::Fetch {
                        replica_id: Some(self.config.id),
                        replica_epoch: broker_epoch,
                        max_wait_ms: REPLICA_FETCH_WAIT_MAX_MS,
                        partitions,
                        isolation_level: IsolationLevel::ReadUncommitted,
                    },
                },
            });
        }
    }

    // --- time ---

    /// Periodic work: registration retries, ISR shrink checks, waiting requests' deadlines,
    /// follower fetches, HW checkpoints.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.registration_retry_at.is_some_and(|at| now_ms >= at) {
            self.registration_retry_at = None;
            self.register();
        }
        self.resend_controller_requests(now_ms);
        self.coordinator.tick(now_ms);
        self.txn_coordinator.tick(now_ms);
        self.expire_marker_sends(now_ms);
        self.fail_verifications(
            |p| now_ms >= p.sent_ms + TXN_MARKER_REQUEST_TIMEOUT_MS,
            now_ms,
        );
        // An AlterPartition unanswered for a request timeout (a stalled link) is lost.
        self.forget_alters(|_, sent| now_ms >= sent + REPLICA_REQUEST_TIMEOUT_MS);
        // One pass over the led partitions; only those with a proposal or events to
        // announce are visited again (each one's proposal touches only itself).
        let mut due = Vec::new();
        for (tp, r) in self.replicas.iter_mut() {
            if r.role() != Role::Leader {
                continue;
            }
            let proposal = r.tick(now_ms);
            if proposal.is_some() || r.has_events() {
                due.push((*tp, proposal));
            }
        }
        for (tp, proposal) in due {
            if let Some(proposal) = proposal {
                self.propose_isr(&tp, proposal);
            }
            self.drain_replica_events(&tp);
        }
        self.complete_produces(now_ms);
        let pending = std::mem::take(&mut self.fetches);
        for p in pending {
            let force = now_ms >= p.deadline_ms;
            if let Some(p) = self.retry_fetch(p, now_ms, force) {
                self.fetches.push(p);
            }
        }
        self.replicate(now_ms);
        if now_ms >= self.last_hw_checkpoint_ms + HW_CHECKPOINT_INTERVAL_MS {
            self.last_hw_checkpoint_ms = now_ms;
            self.checkpoint_high_watermarks();
        }
    }

    /// The HWs of the log directory's checkpoint, read on first use.
    fn checkpointed_hws(&mut self) -> Result<&BTreeMap<TopicPartition, Offset>, String> {
        if let HwCheckpoint::Unread = self.hw_checkpoint {
            let path = PathBuf::from(LOG_DIR).join(REPLICATION_OFFSET_CHECKPOINT);
            self.hw_checkpoint = match CheckpointFile::read(&self.disk, &path) {
                Ok(None) => HwCheckpoint::Known(BTreeMap::new()),
                Ok(Some(lines)) => match parse_hw_checkpoint(&lines) {
                    Some(hws) => HwCheckpoint::Known(hws),
                    None => HwCheckpoint::Failed(format!(
                        "malformed checkpoint {}: expected <topic> <partition> <offset> lines",
                        path.display()
                    )),
                },
                Err(e) => HwCheckpoint::Failed(e.to_string()),
            };
        }
        match &self.hw_checkpoint {
            HwCheckpoint::Known(hws) => Ok(hws),
            HwCheckpoint::Failed(error) => Err(error.clone()),
            HwCheckpoint::Unread => unreachable!("read above"),
        }
    }

    /// Writes every open partition's HW (and what the file had for the others) into the
    /// log directory's checkpoint, atomically, as Kafka's `checkpointHighWatermarks` does;
    /// not when nothing changed since the last write.
    pub(crate) fn checkpoint_high_watermarks(&mut self) {
        let Ok(known) = self.checkpointed_hws() else {
            return;
        };
        let mut hws = known.clone();
        for (tp, r) in &self.replicas {
            hws.insert(*tp, r.high_watermark());
        }
        if let HwCheckpoint::Known(known) = &self.hw_checkpoint {
            if *known == hws {
                return;
            }
        }
        let lines: Vec<Vec<String>> = hws
            .iter()
            .map(|(tp, hw)| {
                vec![
                    tp.topic.to_string(),
                    tp.partition.to_string(),
                    hw.0.to_string(),
                ]
            })
            .collect();
        let path = PathBuf::from(LOG_DIR).join(REPLICATION_OFFSET_CHECKPOINT);
        match CheckpointFile::write(&self.disk, &path, &lines) {
            Ok(()) => self.hw_checkpoint = HwCheckpoint::Known(hws),
            Err(e) => {
                // Every partition's HW missed its checkpoint: announced once per partition.
                let error = e.to_string();
                let tps: Vec<TopicPartition> = self.replicas.keys().cloned().collect();
                for partition in tps {
                    self.announce(BrokerEvent::LogError {
                        partition,
                        error: error.clone(),
                    });
                }
            }
        }
    }

    /// A state change that may let waiting requests complete (after appends).
    pub fn after_change(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.complete_produces(now_ms);
        self.complete_fetches(now_ms);
        self.replicate(now_ms);
        self.load_offsets_partitions(now_ms);
        self.load_txn_partitions(now_ms);
    }

    /// Announces a replica's events with the partition they belong to.
    fn drain_replica_events(&mut self, tp: &TopicPartition) {
        let Some(r) = self.replicas.get_mut(tp) else {
            return;
        };
        let replica_epoch = r.leader_epoch();
        let events = r.take_events();
        for event in events {
            let partition = *tp;
            let event = match event {
                ReplicaEvent::Opened { .. } => continue,
                ReplicaEvent::BecameLeader {
                    leader_epoch,
                    leo,
                    hw,
                    isr,
                } => BrokerEvent::BecomeLeader {
                    partition,
                    leader_epoch,
                    leo,
                    hw,
                    isr,
                },
                ReplicaEvent::BecameFollower {
                    leader,
                    leader_epoch,
                    leo,
                    hw,
                } => BrokerEvent::BecomeFollower {
                    partition,
                    leader,
                    leader_epoch,
                    leo,
                    hw,
                },
                ReplicaEvent::HwAdvanced { hw } => BrokerEvent::Hw {
                    partition,
                    hw,
                    leader_epoch: replica_epoch,
                },
                ReplicaEvent::TruncationDone {
                    leader,
                    leader_epoch,
                    leo,
                } => BrokerEvent::TruncationDone {
                    partition,
                    leader,
                    leader_epoch,
                    leo,
                },
                ReplicaEvent::Truncated { from_leo, to, hw } => BrokerEvent::Truncate {
                    partition,
                    from: from_leo,
                    to,
                    hw,
                },
                ReplicaEvent::IsrChanged {
                    isr,
                    partition_epoch,
                } => BrokerEvent::IsrChanged {
                    partition,
                    isr,
                    partition_epoch,
                },
                // Appends and proposals are too frequent to announce; their effects are.
                ReplicaEvent::LeaderAppended { .. }
                | ReplicaEvent::FollowerAppended { .. }
                | ReplicaEvent::IsrProposed { .. } => continue,
            };
            self.announce(event);
        }
    }
}

impl From<BrokerEvent> for Announced {
    fn from(event: BrokerEvent) -> Self {
        Announced::Broker(event)
    }
}

impl From<ControllerEvent> for Announced {
    fn from(event: ControllerEvent) -> Self {
        Announced::Controller(event)
    }
}

impl From<CoordinatorEvent> for Announced {
    fn from(event: CoordinatorEvent) -> Self {
        Announced::Coordinator(event)
    }
}

impl From<TxnCoordinatorEvent> for Announced {
    fn from(event: TxnCoordinatorEvent) -> Self {
        Announced::TxnCoordinator(event)
    }
}

/// Producer id number `counter` (then counted up) of broker `broker` in `incarnation`.
fn next_producer_id(broker: BrokerId, incarnation: u64, counter: &mut i64) -> ProducerId {
    let id =
        ProducerId((i64::from(broker.0) << 40) | ((incarnation as i64 & 0xffff) << 24) | *counter);
    *counter += 1;
    id
}

/// The wire answer to a transaction request; `asked`, the partitions an
/// AddPartitionsToTxn named (each answered `Ok` once added).
fn txn_response_body(body: TxnResponse, asked: Vec<TopicPartition>) -> ResponseBody {
    match body {
        TxnResponse::InitProducerId(result) => ResponseBody::InitProducerId { result },
        TxnResponse::AddPartitionsToTxn(result) => ResponseBody::AddPartitionsToTxn {
            result: result.map(|()| asked.into_iter().map(|tp| (tp, Ok(()))).collect()),
        },
        TxnResponse::VerifyPartitionsInTxn(result) => ResponseBody::AddPartitionsToTxn { result },
        TxnResponse::AddOffsetsToTxn(result) => ResponseBody::AddOffsetsToTxn {
            error: result.err(),
        },
        TxnResponse::EndTxn(result) => ResponseBody::EndTxn { result },
    }
}

/// The COMMIT or ABORT marker a transaction coordinator in `coordinator_epoch` writes.
fn control_record(result: TransactionResult, coordinator_epoch: LeaderEpoch) -> ControlRecord {
    ControlRecord {
        kind: match result {
            TransactionResult::Commit => ControlRecordType::Commit,
            TransactionResult::Abort => ControlRecordType::Abort,
        },
        coordinator_epoch: coordinator_epoch.0,
    }
}

/// The entries of a [`REPLICATION_OFFSET_CHECKPOINT`]; `None` if a line is not
/// `<topic> <partition> <offset>` or a partition appears twice.
/// Whether a fetch answer ends the wait: records, a divergence or an error.
fn answer_has_data(answer: &Result<FetchData, KafkaError>) -> bool {
    match answer {
        Ok(data) => !data.records.0.is_empty() || data.diverging_epoch.is_some(),
        Err(_) => true,
    }
}

/// What a follower's fetch of `part` asks of the leader's replica.
fn follower_fetch(part: &FetchPartition) -> FollowerFetch {
    FollowerFetch {
        fetch_offset: part.fetch_offset,
        last_fetched_epoch: part.last_fetched_epoch,
        current_leader_epoch: part.current_leader_epoch.unwrap_or(LeaderEpoch::NONE),
    }
}

fn parse_hw_checkpoint(lines: &[Vec<String>]) -> Option<BTreeMap<TopicPartition, Offset>> {
    let mut hws = BTreeMap::new();
    for line in lines {
        let [topic, partition, offset] = line.as_slice() else {
            return None;
        };
        let tp = TopicPartition::new(topic.clone(), partition.parse().ok()?);
        if hws.insert(tp, Offset(offset.parse().ok()?)).is_some() {
            return None;
        }
    }
    Some(hws)
}

#[cfg(test)]
mod tests;

/// Every record of an internal topic in a replica's log, from its start to its HW, in
/// order, as `decode` reads its key and value (records it does not read, and markers, are
/// skipped).
fn read_internal_records<D: Disk, T>(
    replica: &Replica<D>,
    decode: impl Fn(&[u8], Option<&[u8]>) -> Option<T>,
) -> Result<Vec<T>, String> {
    let batches = read_internal_batches(replica)?;
    let records = batches
        .iter()
        .filter(|b| !b.is_control())
        .flat_map(|b| b.records.iter())
        .filter_map(|r| decode(r.key.as_deref()?, r.value.as_deref()))
        .collect();
    Ok(records)
}

/// Every batch of an internal topic in a replica's log, from its start to its HW, in order
/// (a batch the HW cuts keeps only its records below it).
fn read_internal_batches<D: Disk>(replica: &Replica<D>) -> Result<Vec<RecordBatch>, String> {
    let mut out = Vec::new();
    let mut from = replica.log_start_offset();
    let end = replica.high_watermark();
    debug_assert!(end <= replica.log_end_offset(), "HW {end} beyond the LEO");
    while from < end {
        let bytes = replica
            .log()
            .read(from, 1 << 20)
            .map_err(|e| e.to_string())?;
        let batches = decode_batches(&bytes).map_err(|e| e.to_string())?;
        let Some(last) = batches.last() else {
            break;
        };
        from = last.next_offset();
        for mut batch in batches {
            if batch.base_offset >= end {
                break;
            }
            batch.records.retain(|r| r.offset < end);
            out.push(batch);
        }
    }
    Ok(out)
}

/// An offsets partition's batch as the group coordinator loads it: its group records (a
/// transactional batch's with its producer id), or its transaction marker; `None` for a
/// control batch whose marker does not parse.
fn offsets_batch(batch: RecordBatch) -> Option<OffsetsBatch> {
    if batch.is_control() {
        let marker = batch.control_record().ok()?;
        return Some(OffsetsBatch::Marker {
            producer_id: batch.producer_id,
            commit: marker.kind == ControlRecordType::Commit,
        });
    }
    let transaction = Some(batch.producer_id).filter(|p| batch.is_transactional() && p.is_some());
    let records = batch
        .records
        .iter()
        .filter_map(|r| GroupRecord::decode(r.key.as_deref()?, r.value.as_deref()))
        .collect();
    Some(OffsetsBatch::Records {
        base_offset: batch.base_offset,
        transaction,
        records,
    })
}
