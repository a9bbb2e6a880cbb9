//! [`Replica`]: one partition on one broker — the pure, sans-IO replication core (Kafka's
//! `Partition` + `ReplicaFetcherThread` decisions), on the log engine.
//!
//! Owns, for one partition replica: its [`Log`], its [`LeaderEpochCache`] (KIP-101/279),
//! its idempotent and transactional producers' state (with the last stable offset), its high watermark (HW; checkpointed by the broker,
//! with every partition's, in one file) and its role. As **leader** it validates and appends producer batches (idempotence, acks=all
//! min ISR check), serves follower fetches (KIP-320 divergence check, follower LEO and
//! caught-up tracking), advances the HW, proposes ISR changes, answers
//! `OffsetsForLeaderEpoch` and serves consumers below the HW. As **follower** it first
//! truncates to where its log diverges from the leader's (asking `OffsetsForLeaderEpoch`,
//! iterating as KIP-279 requires), then fetches, appends, and follows the leader's HW.
//!
//! Sans-IO: every call gets what it needs (`now_ms`, the message) and returns what to do
//! (a request to send, an answer, an ISR proposal); nothing awaits, reads a clock or is
//! random, and iteration is over `BTreeMap`s. The shell sends the messages and announces
//! the [`ReplicaEvent`]s (plain data for the independent checkers; they report decisions,
//! never make them).
//!
//! Rules (semantics.md, Replication):
//! - HW on the leader = min LEO over the ISR (the leader's own included, and members of an
//!   ISR expansion still in flight — Kafka's "maximal ISR"); it never moves backwards and,
//!   with strict min ISR (KIP-966), does not move while |ISR| < `min.insync.replicas`.
//!   A follower with an unknown LEO (none fetched since this replica became leader) holds
//!   the HW where it is.
//! - A follower is caught up when it fetches at or beyond the leader's LEO at the time of
//!   the fetch, or beyond the leader's LEO at its previous fetch (Kafka's
//!   `lastCaughtUpTimeMs`). An ISR follower not caught up for `replica.lag.time.max.ms` is
//!   proposed for removal by [`Replica::tick`]; a follower outside the ISR whose LEO ≥ HW
//!   and ≥ the start offset of the leader's epoch is proposed for addition. The ISR itself
//!   changes only in [`Replica::set_isr`], with the controller's answer; one proposal is
//!   in flight at a time; the leader never proposes an empty ISR.
//! - Follower HW = min(leader HW, own LEO), kept monotonic except when a truncation cuts
//!   the log below it.
//! - Transactions (KIP-98): clients write data batches only (a control batch is
//!   `INVALID_RECORD`); markers come through [`Replica::append_txn_marker_as_leader`], and
//!   a group coordinator's transactional offsets through [`Replica::append_as_coordinator`]
//!   (no sequence check). With `transaction_verification` (KIP-890 part 1) a producer's
//!   first transactional batch here needs a pending verification's guard
//!   ([`Replica::start_txn_verification`]), voided by any transactional append or marker
//!   of the producer meanwhile; verifications are leader state, gone with the leadership.
//!   Every batch appended, fetched or scanned on a rebuild goes to the producer state,
//!   which also hears every HW move, so leader and followers agree on the last stable
//!   offset ([`Replica::last_stable_offset`]) and the aborted transactions.
//! - Truncation uses leader epochs, never the follower's own HW — except behind
//!   `legacy_truncate_to_hw` (KAFKA-1211, the bug KIP-101 fixed). `legacy_offsets_for_leader_epoch_v0`
//!   answers and reads `OffsetsForLeaderEpoch` as an offset only (KIP-101 before KIP-279),
//!   which diverges after fast double failovers. Either legacy switch models a pre-KIP-320
//!   follower: its fetches carry no `last_fetched_epoch`.
//!
//! Invariants (asserted): `log start ≤ HW ≤ LEO` (also at every HW update); the leader's HW
//! never decreases; leader epochs only grow (asserted where `become_leader` and
//! `become_follower` change it, after the fence that refuses older ones).
//!
//! Simplifications vs Kafka: producer state (with the aborted-transactions index) is
//! rebuilt by scanning the whole log on open, after every truncation and after retention
//! (no snapshots, no `.txnindex` files); the epoch cache is also completed from the batches'
//! leader epochs on open; a follower asked to truncate below its log start keeps the log
//! from its start (Kafka would empty it and restart at the offset); no follower fetch
//! sessions, quotas, or fenced/shutting-down broker states (KIP-841).

use super::epoch_cache::{EpochEntry, LeaderEpochCache};
use super::producer_state::{AppendedBatch, ProducerStateManager, SequenceCheck};
use super::proto::{
    AbortedTransaction, EpochEndOffset, FetchData, IsolationLevel, ListedOffset, OffsetSpec,
};
use super::types::{Acks, BrokerId, Bytes, KafkaError, PartitionEpoch};
use crate::coverage::Mark;
use crate::disk::Disk;
use crate::log::{
    check_batch, parse_header, AppendInfo, BatchBuilder, BatchError, BatchHeader, BatchMeta,
    ControlRecord, LeaderEpoch, Log, LogConfig, LogError, Offset, ProducerId, RecoveryReport,
    LEADER_EPOCH_CHECKPOINT,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A replica's configuration, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// `replica.lag.time.max.ms`: an ISR follower not caught up for this long is proposed
    /// for removal (default 30000).
    pub replica_lag_time_max_ms: u64,
    /// `min.insync.replicas` (default 1): acks=all needs this many in the ISR, and the HW
    /// does not advance with fewer (KIP-966).
    pub min_insync_replicas: usize,
    /// Legacy: advance the HW even while |ISR| < `min.insync.replicas` (before KIP-966).
    pub legacy_lenient_min_isr: bool,
    /// Legacy: `OffsetsForLeaderEpoch` v0 (KIP-101 without KIP-279): the answer is an
    /// offset only and the follower truncates to min(offset, LEO) without iterating.
    pub legacy_offsets_for_leader_epoch_v0: bool,
    /// Legacy: a new follower truncates to its own HW (KAFKA-1211, before KIP-101).
    pub legacy_truncate_to_hw: bool,
    /// KIP-320 truncation on fetch (Kafka ≥ 2.7): a new follower skips
    /// `OffsetsForLeaderEpoch` and fetches at once; the leader's `diverging_epoch`
    /// answers drive its truncation. Off by default: followers ask first (KIP-101/279).
    pub truncate_on_fetch: bool,
    /// Kafka's `transaction.partition.verification.enable` (KIP-890 part 1, default on):
    /// the leader appends a producer's first transactional batch of a transaction only
    /// with a guard from [`Replica::start_txn_verification`] that is still pending (the
    /// broker asked the transaction coordinator meanwhile). Off under `[legacy]
    /// no-add-partition-verification`.
    pub transaction_verification: bool,
    /// The log's own configuration (segments, flush policy, retention).
    pub log: LogConfig,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            replica_lag_time_max_ms: 30_000,
            min_insync_replicas: 1,
            legacy_lenient_min_isr: false,
            legacy_offsets_for_leader_epoch_v0: false,
            legacy_truncate_to_hw: false,
            truncate_on_fetch: false,
            transaction_verification: true,
            log: LogConfig::default(),
        }
    }
}

/// Why a replica call failed: a refusal with Kafka's error code, or a storage failure.
#[derive(Debug)]
pub enum ReplicaError {
    /// The request is refused; the code goes back to the requester.
    Refused(KafkaError),
    /// The log or a checkpoint could not be read or written.
    Storage(LogError),
}

impl ReplicaError {
    /// The Kafka error code to answer with (`KAFKA_STORAGE_ERROR` for storage failures).
    pub fn kafka_error(&self) -> KafkaError {
        match self {
            ReplicaError::Refused(e) => *e,
            ReplicaError::Storage(_) => KafkaError::KafkaStorageError,
        }
    }
}

impl From<LogError> for ReplicaError {
    /// Bad input (invalid or misplaced batches, offsets out of range) is a refusal; the
    /// rest is storage trouble.
    fn from(e: LogError) -> Self {
        match e {
            LogError::InvalidBatch(_)
            | LogError::NonMonotonicOffset { .. }
            | LogError::EmptyBatch
            | LogError::BatchTooLarge { .. } => ReplicaError::Refused(KafkaError::CorruptMessage),
            LogError::OffsetOutOfRange { .. } => {
                ReplicaError::Refused(KafkaError::OffsetOutOfRange)
            }
            e => ReplicaError::Storage(e),
        }
    }
}

impl From<KafkaError> for ReplicaError {
    fn from(e: KafkaError) -> Self {
        ReplicaError::Refused(e)
    }
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaError::Refused(e) => write!(f, "refused: {e}"),
            ReplicaError::Storage(e) => write!(f, "storage: {e}"),
        }
    }
}

impl std::error::Error for ReplicaError {}

/// What a replica announces for the checkers (plain data, in the order it happened).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum ReplicaEvent {
    /// The replica was opened (after recovery).
    Opened {
        /// First offset.
        log_start: Offset,
        /// LEO after recovery.
        leo: Offset,
        /// HW from the checkpoint, clamped into `[log start, LEO]`.
        hw: Offset,
        /// Newest epoch in the epoch cache (`-1` if none).
        latest_epoch: LeaderEpoch,
    },
    /// Became leader.
    BecameLeader {
        /// The epoch it leads in.
        leader_epoch: LeaderEpoch,
        /// Its LEO: the start offset of the epoch.
        leo: Offset,
        /// Its HW.
        hw: Offset,
        /// The ISR it was given.
        isr: Vec<BrokerId>,
    },
    /// Became follower.
    BecameFollower {
        /// The leader.
        leader: BrokerId,
        /// The leader's epoch.
        leader_epoch: LeaderEpoch,
        /// Its LEO before any truncation.
        leo: Offset,
        /// Its HW.
        hw: Offset,
    },
    /// The HW moved forward.
    HwAdvanced {
        /// The new HW.
        hw: Offset,
    },
    /// A follower finished reconciling its log with its leader's (Kafka's fetcher moves the
    /// partition from `Truncating` to `Fetching`): every record below `leo` is, by the
    /// follower's reckoning, the leader's record at that offset; it fetches from `leo` on.
    TruncationDone {
        /// The leader.
        leader: BrokerId,
        /// The leader epoch it follows in.
        leader_epoch: LeaderEpoch,
        /// Its LEO: where it fetches from.
        leo: Offset,
    },
    /// The log was cut.
    Truncated {
        /// LEO before.
        from_leo: Offset,
        /// LEO after.
        to: Offset,
        /// HW after (lowered to the LEO if it was above).
        hw: Offset,
    },
    /// The leader appended a producer batch.
    LeaderAppended {
        /// First offset.
        base_offset: Offset,
        /// Last offset.
        last_offset: Offset,
        /// Its epoch.
        leader_epoch: LeaderEpoch,
    },
    /// A follower appended fetched batches.
    FollowerAppended {
        /// First offset.
        base_offset: Offset,
        /// Last offset.
        last_offset: Offset,
    },
    /// The leader proposed an ISR change (the caller sends AlterPartition).
    IsrProposed {
        /// The ISR now.
        isr: Vec<BrokerId>,
        /// The ISR asked for.
        proposed: Vec<BrokerId>,
        /// The partition epoch the proposal is based on.
        partition_epoch: PartitionEpoch,
    },
    /// The ISR changed (the controller's answer was applied).
    IsrChanged {
        /// The new ISR.
        isr: Vec<BrokerId>,
        /// Its partition epoch.
        partition_epoch: PartitionEpoch,
    },
}

/// The replica's role, as the last LeaderAndIsr made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened, no LeaderAndIsr yet.
    Offline,
    /// The partition's leader.
    Leader,
    /// A follower of `leader`.
    Follower {
        /// The leader.
        leader: BrokerId,
        /// Still finding the divergence point: no fetching yet.
        truncating: bool,
    },
}

/// An ISR change for the caller to send to the controller (AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    /// The leader epoch it is proposed in.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch of the state it changes.
    pub partition_epoch: PartitionEpoch,
    /// The ISR asked for.
    pub new_isr: Vec<BrokerId>,
}

/// The `OffsetsForLeaderEpoch` question a truncating follower must send to its leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochRequest {
    /// The follower's view of the current leader epoch (fencing).
    pub current_leader_epoch: LeaderEpoch,
    /// The epoch whose end offset is wanted: the follower's latest.
    pub leader_epoch: LeaderEpoch,
}

/// What a truncating follower does after an `OffsetsForLeaderEpoch` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruncationStep {
    /// Truncated to the divergence point: start fetching.
    Done,
    /// The leader answered an epoch this replica does not have: it truncated to its own
    /// end of the closest older epoch and must ask again for this (smaller) epoch.
    AskAgain(EpochRequest),
    /// Not truncating (a stale answer): nothing done.
    Ignored,
}

/// A follower's fetch of this partition (Fetch request fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerFetch {
    /// The follower's LEO.
    pub fetch_offset: Offset,
    /// The epoch of its last batch (KIP-320); `None` for a pre-KIP-320 follower.
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// The leader epoch it follows.
    pub current_leader_epoch: LeaderEpoch,
}

/// The leader's answer to a follower fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerFetchAnswer {
    /// What goes back to the follower.
    pub data: FetchData,
    /// An ISR expansion to send to the controller, if the fetch caught the follower up.
    pub isr_proposal: Option<IsrProposal>,
}

/// What a follower did with a fetch response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Not fetching, or the answer is stale (another epoch, another offset): ignored.
    Ignored,
    /// The leader said the logs diverge (KIP-320): truncated to this LEO; fetch again.
    Diverged {
        /// LEO after truncation.
        truncated_to: Offset,
    },
    /// Nothing new (the HW may have moved).
    Empty,
    /// Appended these offsets.
    Appended {
        /// First appended offset.
        base_offset: Offset,
        /// Last appended offset.
        last_offset: Offset,
    },
}

/// A leader append's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderAppend {
    /// Offset of the batch's first record (the original's for a duplicate).
    pub base_offset: Offset,
    /// Offset of its last record: acks=all is answered once the HW passes it.
    pub last_offset: Offset,
    /// The epoch the leader appended in.
    pub leader_epoch: LeaderEpoch,
    /// A retry of a batch already in the log (idempotent producer): nothing appended.
    pub duplicate: bool,
    /// The append flushed the log (`log.flush.interval.messages`).
    pub flushed: bool,
}

/// What the leader knows about one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// Its LEO as of its last fetch; `None` until it fetches in this leader epoch.
    pub leo: Option<Offset>,
    /// When it was last caught up with the leader's LEO (Kafka's `lastCaughtUpTimeMs`).
    pub last_caught_up_ms: u64,
    /// The leader's LEO at its previous fetch.
    last_fetch_leader_leo: Option<Offset>,
    /// When it last fetched.
    last_fetch_ms: u64,
}

/// Leader-only state.
#[derive(Clone, Debug)]
struct LeaderState {
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    partition_epoch: PartitionEpoch,
    /// Where the current leader epoch began.
    epoch_start_offset: Offset,
    /// Every replica but this one.
    followers: BTreeMap<BrokerId, FollowerProgress>,
    /// The ISR of the proposal in flight.
    pending_isr: Option<Vec<BrokerId>>,
    /// Verifications in progress, by producer (Kafka's `verificationStates`): leader-only
    /// and never logged, so a new leadership starts without any.
    verifications: BTreeMap<ProducerId, TxnVerification>,
}

/// A pending verification of a producer's first transactional batch on this partition
/// (KIP-890 part 1, Kafka's `VerificationStateEntry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TxnVerification {
    /// Unique per verification: an append must bring the one still pending, so an answer
    /// that a marker overtook (the transaction ended meanwhile) appends nothing.
    guard: u64,
    /// The lowest sequence asked about in `producer_epoch`: a batch past it is out of
    /// order (a lower one failed verification and will be retried first).
    lowest_sequence: i32,
    /// The epoch of `lowest_sequence`.
    producer_epoch: i16,
}

#[derive(Clone, Debug)]
enum RoleState {
    Offline,
    Leader(LeaderState),
    Follower {
        leader: BrokerId,
        /// `Some(epoch asked about)` while finding the divergence point.
        truncating: Option<LeaderEpoch>,
        /// Under `truncate_on_fetch`: no fetch answer has confirmed the log yet (the first
        /// one without a `diverging_epoch` ends the truncation).
        unconfirmed: bool,
    },
}

/// One partition replica on one broker. See the module doc.
pub struct Replica<D: Disk> {
    id: BrokerId,
    config: ReplicaConfig,
    log: Log<D>,
    epochs: LeaderEpochCache<D>,
    producers: ProducerStateManager,
    hw: Offset,
    /// The newest leader epoch a LeaderAndIsr gave this replica (`NONE` until one).
    leader_epoch: LeaderEpoch,
    role: RoleState,
    events: Vec<ReplicaEvent>,
}

/// Bytes read per chunk when scanning the log to rebuild state.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

impl<D: Disk> Replica<D> {
    /// Opens (recovering) the partition log in `dir` for broker `id`: log recovery, the
    /// leader-epoch checkpoint (cut to entries below the LEO, completed from the batches),
    /// the HW the broker's checkpoint holds for it (`checkpointed_hw`; clamped into
    /// `[log start, LEO]`, 0 if none), and producer state rebuilt from the batch headers.
    /// The replica starts [`Role::Offline`].
    pub fn open(
        id: BrokerId,
        disk: D,
        dir: &Path,
        config: ReplicaConfig,
        checkpointed_hw: Option<Offset>,
    ) -> Result<(Self, RecoveryReport), LogError> {
        let (log, report) = Log::open(disk.clone(), dir, config.log.clone())?;
        let mut epochs = LeaderEpochCache::load(disk.clone(), &dir.join(LEADER_EPOCH_CHECKPOINT))?;
        epochs.truncate_from_end(log.log_end_offset())?;
        let hw = checkpointed_hw
            .unwrap_or(Offset(0))
            .clamp(log.log_start_offset(), log.log_end_offset());
        let mut replica = Replica {
            id,
            config,
            log,
            epochs,
            producers: ProducerStateManager::new(),
            hw,
            leader_epoch: LeaderEpoch::NONE,
            role: RoleState::Offline,
            events: Vec::new(),
        };
        replica.rebuild_from_log(true)?;
        replica.events.push(ReplicaEvent::Opened {
            log_start: replica.log.log_start_offset(),
            leo: replica.log.log_end_offset(),
            hw: replica.hw,
            latest_epoch: replica.epochs.latest_epoch().unwrap_or(LeaderEpoch::NONE),
        });
        replica.check_invariants();
        Ok((replica, report))
    }

    /// Becomes leader in `leader_epoch` (a LeaderAndIsr): the epoch starts at the LEO in
    /// the epoch cache, every follower's LEO becomes unknown and its caught-up time `now`.
    /// Refused with `FENCED_LEADER_EPOCH` unless the epoch is newer than the last one
    /// this replica was given.
    pub fn become_leader(
        &mut self,
        leader_epoch: LeaderEpoch,
        isr: Vec<BrokerId>,
        replicas: Vec<BrokerId>,
        partition_epoch: PartitionEpoch,
        now_ms: u64,
    ) -> Result<(), ReplicaError> {
        self.check_newer_epoch(leader_epoch)?;
        self.assert_epoch_grows(leader_epoch);
        let leo = self.log.log_end_offset();
        self.epochs.assign(leader_epoch, leo)?;
        let epoch_start_offset = self.epochs.start_offset_of(leader_epoch).unwrap_or(leo);
        let followers = replicas
            .iter()
            .filter(|&&r| r != self.id)
            .map(|&r| {
                let progress = FollowerProgress {
                    leo: None,
                    last_caught_up_ms: now_ms,
                    last_fetch_leader_leo: None,
                    last_fetch_ms: now_ms,
                };
                (r, progress)
            })
            .collect();
        self.leader_epoch = leader_epoch;
        self.events.push(ReplicaEvent::BecameLeader {
            leader_epoch,
            leo,
            hw: self.hw,
            isr: isr.clone(),
        });
        self.role = RoleState::Leader(LeaderState {
            replicas,
            isr,
            partition_epoch,
            epoch_start_offset,
            followers,
            pending_isr: None,
            verifications: BTreeMap::new(),
        });
        self.maybe_advance_hw();
        self.check_invariants();
        Ok(())
    }

    /// Becomes a follower of `leader` in `leader_epoch` (a LeaderAndIsr). It must find
    /// where its log diverges before fetching: [`Replica::epoch_request`] is then the
    /// question to send (none if its epoch cache is empty: nothing can diverge). Under
    /// `legacy_truncate_to_hw` it truncates to its own HW at once instead; under
    /// `truncate_on_fetch` it fetches at once and truncates on `diverging_epoch`. Refused with
    /// `FENCED_LEADER_EPOCH` unless the epoch is newer than the last one given.
    pub fn become_follower(
        &mut self,
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
    ) -> Result<(), ReplicaError> {
        self.check_newer_epoch(leader_epoch)?;
        self.assert_epoch_grows(leader_epoch);
        assert_ne!(leader, self.id, "following oneself");
        self.leader_epoch = leader_epoch;
        self.events.push(ReplicaEvent::BecameFollower {
            leader,
            leader_epoch,
            leo: self.log.log_end_offset(),
            hw: self.hw,
        });
        let truncating = if self.config.legacy_truncate_to_hw {
            self.truncate_to(self.hw)?;
            None
        } else if self.config.truncate_on_fetch {
            None
        } else {
            self.epochs.latest_epoch()
        };
        let unconfirmed = self.config.truncate_on_fetch;
        self.role = RoleState::Follower {
            leader,
            truncating,
            unconfirmed,
        };
        if truncating.is_none() && !unconfirmed {
            self.truncation_done();
        }
        self.check_invariants();
        Ok(())
    }

    /// Announces that the follower fetches from its LEO on ([`ReplicaEvent::TruncationDone`]).
    fn truncation_done(&mut self) {
        if let RoleState::Follower { leader, .. } = self.role {
            self.events.push(ReplicaEvent::TruncationDone {
                leader,
                leader_epoch: self.leader_epoch,
                leo: self.log.log_end_offset(),
            });
        }
    }

    /// A truncating follower's `OffsetsForLeaderEpoch` question (its latest epoch).
    pub fn epoch_request(&self) -> Option<EpochRequest> {
        match self.role {
            RoleState::Follower {
                truncating: Some(epoch),
                ..
            } => Some(EpochRequest {
                current_leader_epoch: self.leader_epoch,
                leader_epoch: epoch,
            }),
            _ => None,
        }
    }

    /// A truncating follower handles the leader's `OffsetsForLeaderEpoch` answer
    /// (KIP-101/279): if it has the answered epoch it truncates to min(answer, its own end
    /// of that epoch) and is done; if not, it truncates to its own end of the closest
    /// older epoch and asks again; an answer without epoch (`NONE`, or any answer under
    /// `legacy_offsets_for_leader_epoch_v0`) truncates to min(offset, LEO), done.
    ///
    /// `request` is the question this answers: an answer to any other question than the
    /// current one (a late answer from before an iteration or a role change) is ignored,
    /// since applying it could end the search too early.
    pub fn on_epoch_response(
        &mut self,
        request: EpochRequest,
        answer: EpochEndOffset,
    ) -> Result<TruncationStep, ReplicaError> {
        let RoleState::Follower {
            leader,
            truncating: Some(_),
            unconfirmed,
        } = self.role
        else {
            return Ok(TruncationStep::Ignored);
        };
        if self.epoch_request() != Some(request) {
            return Ok(TruncationStep::Ignored);
        }
        let (offset, complete) = self.truncation_point(answer);
        self.truncate_to(offset)?;
        let next = match self.epochs.latest_epoch() {
            Some(epoch) if !complete => Some(epoch),
            _ => None,
        };
        self.role = RoleState::Follower {
            leader,
            truncating: next,
            unconfirmed,
        };
        self.check_invariants();
        Ok(match self.epoch_request() {
            Some(request) => TruncationStep::AskAgain(request),
            None => {
                self.truncation_done();
                TruncationStep::Done
            }
        })
    }

    /// A follower's next fetch (from its LEO), or `None` while not fetching.
    pub fn fetch_request(&self) -> Option<FollowerFetch> {
        let RoleState::Follower {
            truncating: None, ..
        } = self.role
        else {
            return None;
        };
        let legacy =
            self.config.legacy_truncate_to_hw || self.config.legacy_offsets_for_leader_epoch_v0;
        Some(FollowerFetch {
            fetch_offset: self.log.log_end_offset(),
            last_fetched_epoch: if legacy {
                None
            } else {
                self.epochs.latest_epoch()
            },
            current_leader_epoch: self.leader_epoch,
        })
    }

    /// A follower handles its leader's fetch response: a `diverging_epoch` (KIP-320)
    /// truncates like an `OffsetsForLeaderEpoch` answer (the next fetch re-checks);
    /// otherwise the batches are appended (they must start at the LEO), the epoch cache
    /// learns their epochs, and HW := max(HW, min(leader HW, LEO)). A response from
    /// another epoch or not matching the LEO is stale and ignored.
    pub fn on_fetch_response(&mut self, data: &FetchData) -> Result<FetchOutcome, ReplicaError> {
        let RoleState::Follower {
            truncating: None, ..
        } = self.role
        else {
            return Ok(FetchOutcome::Ignored);
        };
        if data.leader_epoch != self.leader_epoch {
            return Ok(FetchOutcome::Ignored);
        }
        if let Some(diverging) = data.diverging_epoch {
            let (offset, _) = self.truncation_point(diverging);
            self.truncate_to(offset)?;
            self.check_invariants();
            return Ok(FetchOutcome::Diverged {
                truncated_to: self.log.log_end_offset(),
            });
        }
        let records = &data.records.0;
        if !records.is_empty() {
            let first = parse_header(records).map_err(LogError::from)?;
            if first.base_offset != self.log.log_end_offset() {
                return Ok(FetchOutcome::Ignored);
            }
        }
        if let RoleState::Follower { unconfirmed, .. } = &mut self.role {
            if std::mem::take(unconfirmed) {
                // KIP-320: the leader found no divergence at this fetch's offset and epoch.
                self.truncation_done();
            }
        }
        let mut outcome = FetchOutcome::Empty;
        if !records.is_empty() {
            let info = self.log.append_as_follower(records)?;
            self.learn_batches(records)?;
            self.events.push(ReplicaEvent::FollowerAppended {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
            });
            outcome = FetchOutcome::Appended {
                base_offset: info.base_offset,
                last_offset: info.last_offset,
            };
        }
        let hw = data.high_watermark.min(self.log.log_end_offset());
        self.raise_hw(hw);
        self.check_invariants();
        Ok(outcome)
    }

    /// The leader appends one producer-encoded v2 batch (base offset 0, as a Produce
    /// request carries it). In order: not leader → `NOT_LEADER_OR_FOLLOWER`; acks=all
    /// with |ISR| < `min.insync.replicas` → `NOT_ENOUGH_REPLICAS`; an invalid batch →
    /// `CORRUPT_MESSAGE`; the idempotence check (a retry of one of the producer's last
    /// five batches answers with the original's offsets; a gap →
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`; an older producer epoch → `INVALID_PRODUCER_EPOCH`).
    /// Then the batch gets the LEO as base offset and the leader epoch, is appended (the
    /// log's flush policy applies), and the HW may advance.
    pub fn append_as_leader(
        &mut self,
        batch: &[u8],
        acks: Acks,
    ) -> Result<LeaderAppend, ReplicaError> {
        self.append_as_leader_verified(batch, acks, None)
    }

    /// KIP-890 part 1 (Kafka's `maybeStartTransactionVerification`): whether this leader
    /// needs the transaction coordinator's word before appending the client batch `batch`.
    /// It does for a transactional batch of a producer with no transaction open here, while
    /// verification is on: the verification pending for the producer is returned (one is
    /// started with guard `fresh`, unique to the caller, if none is), and the batch's
    /// sequence is remembered when it is the lowest asked about in its epoch. `None`: no
    /// verification needed (or not leader, or a malformed batch: the append refuses it).
    pub fn start_txn_verification(&mut self, batch: &[u8], fresh: u64) -> Option<u64> {
        if !self.config.transaction_verification {
            return None;
        }
        let header = check_batch(batch).ok()?;
        if !header.is_transactional() || header.is_control() || !header.producer_id.is_some() {
            return None;
        }
        if self.producers.has_open_txn(header.producer_id) {
            return None;
        }
        let RoleState::Leader(leader) = &mut self.role else {
            return None;
        };
        let (epoch, sequence) = (header.producer_epoch, header.base_sequence);
        let entry = leader
            .verifications
            .entry(header.producer_id)
            .or_insert(TxnVerification {
                guard: fresh,
                lowest_sequence: sequence,
                producer_epoch: epoch,
            });
        // Kafka's `maybeUpdateLowestSequenceAndEpoch`.
        if epoch > entry.producer_epoch {
            (entry.producer_epoch, entry.lowest_sequence) = (epoch, sequence);
        } else if epoch == entry.producer_epoch && sequence < entry.lowest_sequence {
            entry.lowest_sequence = sequence;
        }
        Some(entry.guard)
    }

    /// [`Replica::append_as_leader`] with the guard of the verification the broker ran
    /// for it ([`Replica::start_txn_verification`]). With verification on, the first
    /// transactional batch of a producer with no transaction open here is appended only
    /// with the guard still pending for the producer (else `INVALID_TXN_STATE`: the
    /// partition is not known to be in the transaction, or a marker ended it since the
    /// coordinator answered); a batch past the lowest sequence a pending verification
    /// asked about is `OUT_OF_ORDER_SEQUENCE_NUMBER`. Appending a transactional batch ends
    /// the producer's verification.
    pub fn append_as_leader_verified(
        &mut self,
        batch: &[u8],
        acks: Acks,
        guard: Option<u64>,
    ) -> Result<LeaderAppend, ReplicaError> {
        let leader = self.leader_state()?;
        if acks == Acks::All && leader.isr.len() < self.config.min_insync_replicas {
            crate::coverage::hit(Mark::IsrBelowMinInsync);
            return Err(KafkaError::NotEnoughReplicas.into());
        }
        let header = check_batch(batch).map_err(LogError::from)?;
        if header.size != batch.len() {
            return Err(KafkaError::CorruptMessage.into());
        }
        if header.is_control() {
            // Markers come from the transaction coordinator, through
            // `append_txn_marker_as_leader`: a client may not write one.
            return Err(KafkaError::InvalidRecord.into());
        }
        let check = self
            .producers
            .check(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.record_count,
            )
            .inspect_err(|e| {
                if *e == KafkaError::OutOfOrderSequenceNumber {
                    crate::coverage::hit(Mark::ProduceOutOfOrderSequence);
                }
            })?;
        if let SequenceCheck::Duplicate(original) = check {
            crate::coverage::hit(Mark::ProduceDuplicateBatch);
            return Ok(LeaderAppend {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                leader_epoch: self.leader_epoch,
                duplicate: true,
                flushed: false,
            });
        }
        self.producers
            .check_txn_state(header.producer_id, header.is_transactional())?;
        self.check_verified(&header, guard)?;
        self.append_checked(&header, batch)
    }

    /// The KIP-890 part 1 checks of a client batch (see
    /// [`Replica::append_as_leader_verified`]).
    fn check_verified(&self, header: &BatchHeader, guard: Option<u64>) -> Result<(), KafkaError> {
        let RoleState::Leader(leader) = &self.role else {
            return Ok(());
        };
        let pending = leader.verifications.get(&header.producer_id);
        if let Some(v) = pending {
            if header.producer_epoch == v.producer_epoch && header.base_sequence > v.lowest_sequence
            {
                return Err(KafkaError::OutOfOrderSequenceNumber);
            }
        }
        let needs_guard = self.config.transaction_verification
            && header.is_transactional()
            && !self.producers.has_open_txn(header.producer_id);
        match needs_guard && (guard.is_none() || pending.map(|v| v.guard) != guard) {
            true => {
                crate::coverage::hit(Mark::ProduceUnverifiedTxnBatch);
                Err(KafkaError::InvalidTxnState)
            }
            false => Ok(()),
        }
    }

    /// Appends a batch the leader has checked (`header` is its header) in its epoch and
    /// records it in the producer state.
    fn append_checked(
        &mut self,
        header: &BatchHeader,
        batch: &[u8],
    ) -> Result<LeaderAppend, ReplicaError> {
        let appended =
            AppendedBatch::read(header, batch).map_err(|e| LogError::from(BatchError::from(e)))?;
        let info: AppendInfo = self.log.append_encoded(batch, self.leader_epoch)?;
        self.epochs.assign(self.leader_epoch, info.base_offset)?;
        self.producers.record_batch(&AppendedBatch {
            first_offset: info.base_offset,
            last_offset: info.last_offset,
            ..appended
        });
        if header.is_transactional() {
            self.end_verification(header.producer_id);
        }
        Ok(self.appended_as_leader(&info))
    }

    /// The leader appends a transactional batch the group coordinator built for a
    /// producer's TxnOffsetCommit (Kafka's append origin COORDINATOR), acks=all: as
    /// [`Replica::append_as_leader`], but without the sequence check (the batch carries
    /// the producer's id and epoch, base sequence -1); an older producer epoch than the
    /// partition knows is `INVALID_PRODUCER_EPOCH`. The batch opens the producer's
    /// transaction here like a data batch would, so the LSO and the marker that ends it
    /// work as on any partition.
    pub fn append_as_coordinator(&mut self, batch: &[u8]) -> Result<LeaderAppend, ReplicaError> {
        let leader = self.leader_state()?;
        if leader.isr.len() < self.config.min_insync_replicas {
            crate::coverage::hit(Mark::IsrBelowMinInsync);
            return Err(KafkaError::NotEnoughReplicas.into());
        }
        let header = check_batch(batch).map_err(LogError::from)?;
        if header.size != batch.len() || !header.is_transactional() || header.is_control() {
            return Err(KafkaError::InvalidRecord.into());
        }
        self.producers
            .check_coordinator_batch(header.producer_id, header.producer_epoch)?;
        self.append_checked(&header, batch)
    }

    /// The leader appends a transaction marker for `producer_id`'s transaction (what a
    /// WriteTxnMarkers request from the transaction coordinator asks; Kafka appends it
    /// with acks=all): not leader → `NOT_LEADER_OR_FOLLOWER`; |ISR| <
    /// `min.insync.replicas` → `NOT_ENOUGH_REPLICAS`; an older producer epoch →
    /// `INVALID_PRODUCER_EPOCH`; an older coordinator epoch than the producer's last
    /// marker → `TRANSACTION_COORDINATOR_FENCED`. Then a control batch stamped
    /// `timestamp_ms` is appended at the LEO; it closes the producer's open transaction,
    /// if any (a retried marker closes nothing). Answer it once
    /// [`Replica::check_acks_all`] says so.
    pub fn append_txn_marker_as_leader(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: i16,
        marker: ControlRecord,
        timestamp_ms: i64,
    ) -> Result<LeaderAppend, ReplicaError> {
        let leader = self.leader_state()?;
        if leader.isr.len() < self.config.min_insync_replicas {
            crate::coverage::hit(Mark::IsrBelowMinInsync);
            return Err(KafkaError::NotEnoughReplicas.into());
        }
        self.producers
            .check_marker(producer_id, producer_epoch, &marker)?;
        let meta = BatchMeta {
            leader_epoch: self.leader_epoch,
            base_timestamp_ms: timestamp_ms,
            producer_id,
            producer_epoch,
            base_sequence: -1,
        };
        let mut batch = BatchBuilder::end_txn_marker(meta, marker);
        let info: AppendInfo = self
            .log
            .append_encoded(batch.encode(Offset(0)), self.leader_epoch)?;
        self.epochs.assign(self.leader_epoch, info.base_offset)?;
        self.producers.record_batch(&AppendedBatch {
            producer_id,
            producer_epoch,
            base_sequence: -1,
            first_offset: info.base_offset,
            last_offset: info.last_offset,
            is_transactional: true,
            marker: Some(marker),
        });
        self.end_verification(producer_id);
        Ok(self.appended_as_leader(&info))
    }

    /// What follows every leader append (records and markers alike): the event, the HW
    /// (which may move at once), the invariants, and the answer.
    fn appended_as_leader(&mut self, info: &AppendInfo) -> LeaderAppend {
        self.events.push(ReplicaEvent::LeaderAppended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            leader_epoch: self.leader_epoch,
        });
        self.maybe_advance_hw();
        self.check_invariants();
        LeaderAppend {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            leader_epoch: self.leader_epoch,
            duplicate: false,
            flushed: info.flushed,
        }
    }

    /// Whether an acks=all append that ended at `last_offset` in `leader_epoch` can be
    /// answered (Kafka's `DelayedProduce`): `None` while the HW has not passed it (the
    /// caller waits, up to the request timeout); `Ok` once it has; once it has but the ISR
    /// is below `min.insync.replicas` (possible only under `legacy_lenient_min_isr`),
    /// `NOT_ENOUGH_REPLICAS_AFTER_APPEND`; `NOT_LEADER_OR_FOLLOWER` if this replica no
    /// longer leads in that epoch (the record may be truncated).
    pub fn check_acks_all(
        &self,
        last_offset: Offset,
        leader_epoch: LeaderEpoch,
    ) -> Option<Result<(), KafkaError>> {
        let Ok(leader) = self.leader_state() else {
            return Some(Err(KafkaError::NotLeaderOrFollower));
        };
        if self.leader_epoch != leader_epoch {
            return Some(Err(KafkaError::NotLeaderOrFollower));
        }
        if self.hw <= last_offset {
            return None;
        }
        if leader.isr.len() < self.config.min_insync_replicas {
            return Some(Err(KafkaError::NotEnoughReplicasAfterAppend));
        }
        Some(Ok(()))
    }

    /// The leader serves a follower's fetch. KIP-320 first: if the follower's
    /// `last_fetched_epoch` ends earlier here than its fetch offset (or is unknown here),
    /// the answer is that epoch's end (`diverging_epoch`) and nothing else changes.
    /// Otherwise the follower's LEO and caught-up time are updated, the HW may advance, an
    /// ISR expansion may be proposed, and batches from the fetch offset (up to
    /// `max_bytes`, at least one) are returned with the HW, log start and leader epoch.
    pub fn on_follower_fetch(
        &mut self,
        follower: BrokerId,
        fetch: FollowerFetch,
        max_bytes: usize,
        now_ms: u64,
    ) -> Result<FollowerFetchAnswer, ReplicaError> {
        if let Some(diverging) = self.check_follower_fetch(follower, &fetch)? {
            return Ok(FollowerFetchAnswer {
                data: self.fetch_data(Some(diverging), Vec::new()),
                isr_proposal: None,
            });
        }
        let leo = self.log.log_end_offset();
        let progress = self
            .leader_mut()
            .followers
            .get_mut(&follower)
            .expect("checked above");
        if fetch.fetch_offset >= leo {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(now_ms);
        } else if progress
            .last_fetch_leader_leo
            .is_some_and(|previous| fetch.fetch_offset >= previous)
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.leo = Some(fetch.fetch_offset);
        progress.last_fetch_leader_leo = Some(leo);
        progress.last_fetch_ms = now_ms;
        self.maybe_advance_hw();
        let isr_proposal = self.maybe_expand_isr(follower, fetch.fetch_offset);
        let records = self.log.read(fetch.fetch_offset, max_bytes)?;
        self.check_invariants();
        Ok(FollowerFetchAnswer {
            data: self.fetch_data(None, records),
            isr_proposal,
        })
    }

    /// A follower's fetch that waited, answered now (Kafka's `DelayedFetch` completing):
    /// the same checks and read as [`Replica::on_follower_fetch`], but the follower's
    /// progress is not touched again — it was recorded when the fetch arrived.
    pub fn read_for_follower(
        &self,
        follower: BrokerId,
        fetch: FollowerFetch,
        max_bytes: usize,
    ) -> Result<FetchData, ReplicaError> {
        if let Some(diverging) = self.check_follower_fetch(follower, &fetch)? {
            return Ok(self.fetch_data(Some(diverging), Vec::new()));
        }
        let records = self.log.read(fetch.fetch_offset, max_bytes)?;
        Ok(self.fetch_data(None, records))
    }

    /// Whether a waiting follower fetch would still get nothing (Kafka's
    /// `DelayedFetch.tryComplete`): this replica still leads in the fetch's epoch, the
    /// follower still follows, its epoch does not diverge and it is at the LEO. `false`
    /// means answer it now (data, an error or a divergence).
    pub fn follower_fetch_waits(&self, follower: BrokerId, fetch: &FollowerFetch) -> bool {
        matches!(self.check_follower_fetch(follower, fetch), Ok(None))
            && fetch.fetch_offset == self.log.log_end_offset()
    }

    /// The checks of a follower's fetch, in Kafka's order: this replica leads, knows the
    /// follower, and is in the fetch's epoch; then KIP-320: if the follower's
    /// `last_fetched_epoch` ends earlier here than its fetch offset (or is unknown here),
    /// that epoch's end (`Some`, the divergence to report); then the offset's range.
    fn check_follower_fetch(
        &self,
        follower: BrokerId,
        fetch: &FollowerFetch,
    ) -> Result<Option<EpochEndOffset>, ReplicaError> {
        let leader = self.leader_state()?;
        if !leader.followers.contains_key(&follower) {
            return Err(KafkaError::NotLeaderOrFollower.into());
        }
        self.check_current_epoch(Some(fetch.current_leader_epoch))?;
        let leo = self.log.log_end_offset();
        if let Some(last_fetched) = fetch.last_fetched_epoch {
            let (epoch, end_offset) = self
                .epochs
                .end_offset_for(last_fetched, leo)
                .ok_or(KafkaError::UnknownLeaderEpoch)?;
            if epoch < last_fetched || end_offset < fetch.fetch_offset {
                return Ok(Some(EpochEndOffset {
                    leader_epoch: epoch,
                    end_offset,
                }));
            }
        }
        if fetch.fetch_offset < self.log.log_start_offset() || fetch.fetch_offset > leo {
            return Err(KafkaError::OffsetOutOfRange.into());
        }
        Ok(None)
    }

    /// Where a consumer's reads stop: the HW (`read_uncommitted`), or the last stable
    /// offset (`read_committed`).
    fn consumer_upper(&self, isolation: IsolationLevel) -> Offset {
        match isolation {
            IsolationLevel::ReadUncommitted => self.hw,
            IsolationLevel::ReadCommitted => self.last_stable_offset(),
        }
    }

    /// Whether a waiting consumer fetch would still get nothing: the checks of
    /// [`Replica::read_for_consumer`] pass and the offset is at or above where its reads
    /// stop.
    pub fn consumer_fetch_waits(
        &self,
        fetch_offset: Offset,
        current_leader_epoch: Option<LeaderEpoch>,
        isolation: IsolationLevel,
    ) -> bool {
        self.leader_state().is_ok()
            && self.check_current_epoch(current_leader_epoch).is_ok()
            && fetch_offset >= self.log.log_start_offset()
            && fetch_offset <= self.log.log_end_offset()
            && fetch_offset >= self.consumer_upper(isolation)
    }

    /// The leader serves a consumer: whole batches from `fetch_offset` below the HW
    /// (`read_uncommitted`) or below the last stable offset (`read_committed`, with the
    /// aborted transactions in the range returned, so the consumer can skip them).
    /// `current_leader_epoch` older than the leader's → `FENCED_LEADER_EPOCH`, newer →
    /// `UNKNOWN_LEADER_EPOCH` (KIP-320); an offset outside `[log start, LEO]` →
    /// `OFFSET_OUT_OF_RANGE`; one in `[upper, LEO]` reads nothing yet.
    pub fn read_for_consumer(
        &self,
        fetch_offset: Offset,
        current_leader_epoch: Option<LeaderEpoch>,
        max_bytes: usize,
        isolation: IsolationLevel,
    ) -> Result<FetchData, ReplicaError> {
        self.leader_state()?;
        self.check_current_epoch(current_leader_epoch)?;
        if fetch_offset < self.log.log_start_offset() || fetch_offset > self.log.log_end_offset() {
            return Err(KafkaError::OffsetOutOfRange.into());
        }
        debug_assert!(self.hw <= self.log.log_end_offset(), "HW beyond the LEO");
        let upper = self.consumer_upper(isolation);
        if fetch_offset >= upper {
            // Above the HW but in the log (a new leader's HW lags the old one's until its
            // followers fetch), or inside an open transaction: nothing to read yet, not out
            // of range (Kafka does the same).
            return Ok(self.fetch_data(None, Vec::new()));
        }
        let mut records = self.log.read(fetch_offset, max_bytes)?;
        let mut keep = 0;
        let mut next = fetch_offset;
        while keep < records.len() {
            let header = parse_header(&records[keep..]).map_err(LogError::from)?;
            if header.next_offset() > upper {
                break;
            }
            keep += header.size;
            next = header.next_offset();
        }
        records.truncate(keep);
        let mut data = self.fetch_data(None, records);
        if isolation == IsolationLevel::ReadCommitted && next > fetch_offset {
            data.aborted_transactions = self
                .producers
                .aborted_between(fetch_offset, next)
                .into_iter()
                .map(|t| AbortedTransaction {
                    producer_id: t.producer_id,
                    first_offset: t.first_offset,
                })
                .collect();
        }
        Ok(data)
    }

    /// The leader answers a consumer's ListOffsets: its log start offset (earliest), or
    /// where that consumer's reads stop now (latest: the HW, or the last stable offset for
    /// `read_committed`), checked as a consumer fetch is (leadership, KIP-320's epoch). A
    /// leader whose HW has not reached the start of its epoch yet answers the latest offset
    /// with `OFFSET_NOT_AVAILABLE`, as Kafka's does: the HW it inherited may still be below
    /// the old leader's, and a consumer reset to it would read records again.
    pub fn list_offset(
        &self,
        spec: OffsetSpec,
        current_leader_epoch: Option<LeaderEpoch>,
        isolation: IsolationLevel,
    ) -> Result<ListedOffset, ReplicaError> {
        let leader = self.leader_state()?;
        self.check_current_epoch(current_leader_epoch)?;
        let offset = match spec {
            OffsetSpec::Earliest => self.log.log_start_offset(),
            OffsetSpec::Latest if self.hw < leader.epoch_start_offset => {
                crate::coverage::hit(Mark::ListOffsetsNotAvailable);
                return Err(KafkaError::OffsetNotAvailable.into());
            }
            OffsetSpec::Latest => self.consumer_upper(isolation),
        };
        Ok(ListedOffset {
            offset,
            leader_epoch: self.leader_epoch,
        })
    }

    /// The leader answers `OffsetsForLeaderEpoch(leader_epoch)` from its epoch cache
    /// (KIP-279: the largest epoch ≤ the one asked and where it ends); under
    /// `legacy_offsets_for_leader_epoch_v0` the answer carries the offset only (`NONE`).
    pub fn on_epoch_request(&self, request: EpochRequest) -> Result<EpochEndOffset, ReplicaError> {
        self.leader_state()?;
        self.check_current_epoch(Some(request.current_leader_epoch))?;
        let (epoch, end_offset) = self
            .epochs
            .end_offset_for(request.leader_epoch, self.log.log_end_offset())
            .ok_or(KafkaError::UnknownLeaderEpoch)?;
        let leader_epoch = if self.config.legacy_offsets_for_leader_epoch_v0 {
            LeaderEpoch::NONE
        } else {
            epoch
        };
        Ok(EpochEndOffset {
            leader_epoch,
            end_offset,
        })
    }

    /// Periodic leader work: proposes removing every ISR follower that has not been
    /// caught up for `replica.lag.time.max.ms` (never the leader, never an empty ISR;
    /// nothing while another proposal is in flight).
    pub fn tick(&mut self, now_ms: u64) -> Option<IsrProposal> {
        let lag = self.config.replica_lag_time_max_ms;
        let id = self.id;
        let RoleState::Leader(leader) = &self.role else {
            return None;
        };
        if leader.pending_isr.is_some() {
            return None;
        }
        let stays = |member: &BrokerId| {
            *member == id
                || leader
                    .followers
                    .get(member)
                    .is_none_or(|p| now_ms.saturating_sub(p.last_caught_up_ms) <= lag)
        };
        // Nearly every tick finds every member caught up: nothing to build then.
        if leader.isr.iter().all(stays) {
            return None;
        }
        let new_isr: Vec<BrokerId> = leader.isr.iter().copied().filter(stays).collect();
        if new_isr.len() == leader.isr.len() || new_isr.is_empty() {
            return None;
        }
        crate::coverage::hit(Mark::IsrShrink);
        Some(self.propose_isr(new_isr))
    }

    /// Applies the controller's answer to an ISR proposal (or any newer partition state
    /// for the same leader epoch): the ISR and partition epoch change, the proposal in
    /// flight is cleared, and the HW may advance (a shrink can let it move). An older
    /// partition epoch is ignored.
    pub fn set_isr(
        &mut self,
        isr: Vec<BrokerId>,
        partition_epoch: PartitionEpoch,
    ) -> Result<(), ReplicaError> {
        let leader = self.leader_mut_checked()?;
        if partition_epoch < leader.partition_epoch {
            return Ok(());
        }
        leader.isr = isr.clone();
        leader.partition_epoch = partition_epoch;
        leader.pending_isr = None;
        self.events.push(ReplicaEvent::IsrChanged {
            isr,
            partition_epoch,
        });
        self.maybe_advance_hw();
        self.check_invariants();
        Ok(())
    }

    /// Forgets the proposal in flight (the AlterPartition failed), so the next fetch or
    /// tick may propose again.
    pub fn clear_pending_isr(&mut self) {
        if let RoleState::Leader(leader) = &mut self.role {
            leader.pending_isr = None;
        }
    }

    /// Log retention (see [`Log::delete_old_segments`]); then the epoch cache forgets
    /// what lies below the new log start and producer state is rebuilt. Returns the
    /// number of segments deleted. Simplification: unlike Kafka, retention does not stop
    /// at the HW (it never deletes the active segment).
    pub fn delete_old_segments(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let deleted = self.log.delete_old_segments(now_ms)?;
        if deleted > 0 {
            let start = self.log.log_start_offset();
            self.epochs.truncate_from_start(start)?;
            self.hw = self.hw.max(start);
            assert!(
                self.hw <= self.log.log_end_offset(),
                "HW {} beyond the LEO after retention",
                self.hw
            );
            self.rebuild_from_log(false)?;
        }
        self.check_invariants();
        Ok(deleted)
    }

    /// Clean shutdown: the log's own close (flush, checkpoints). The HW is the broker's
    /// to checkpoint ([`crate::broker::server`]), with every other partition's.
    pub fn close(self) -> Result<(), LogError> {
        self.log.close()
    }

    /// The events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<ReplicaEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether events wait to be taken.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// This broker.
    pub fn id(&self) -> BrokerId {
        self.id
    }

    /// The role.
    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Offline => Role::Offline,
            RoleState::Leader(_) => Role::Leader,
            RoleState::Follower {
                leader, truncating, ..
            } => Role::Follower {
                leader: *leader,
                truncating: truncating.is_some(),
            },
        }
    }

    /// The newest leader epoch a LeaderAndIsr gave it (`NONE` before any).
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> Offset {
        self.hw
    }

    /// The LEO.
    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// The log start offset.
    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    /// The log (reads, inspection).
    pub fn log(&self) -> &Log<D> {
        &self.log
    }

    /// The leader epoch cache's entries.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// The idempotent and transactional producers' state.
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// The last stable offset: the HW, held back by the earliest transaction still open
    /// or whose marker the HW has not passed. A `read_committed` fetch reads below it.
    pub fn last_stable_offset(&self) -> Offset {
        self.producers.last_stable_offset(self.hw)
    }

    /// The ISR as leader (empty otherwise).
    pub fn isr(&self) -> &[BrokerId] {
        match &self.role {
            RoleState::Leader(leader) => &leader.isr,
            _ => &[],
        }
    }

    /// Every replica of the partition (assignment order), as leader.
    pub fn replicas(&self) -> &[BrokerId] {
        match &self.role {
            RoleState::Leader(leader) => &leader.replicas,
            _ => &[],
        }
    }

    /// The partition epoch as leader.
    pub fn partition_epoch(&self) -> Option<PartitionEpoch> {
        match &self.role {
            RoleState::Leader(leader) => Some(leader.partition_epoch),
            _ => None,
        }
    }

    /// The ISR of the proposal in flight, as leader.
    pub fn pending_isr(&self) -> Option<&[BrokerId]> {
        match &self.role {
            RoleState::Leader(leader) => leader.pending_isr.as_deref(),
            _ => None,
        }
    }

    /// What the leader knows about `follower`.
    pub fn follower_progress(&self, follower: BrokerId) -> Option<FollowerProgress> {
        match &self.role {
            RoleState::Leader(leader) => leader.followers.get(&follower).copied(),
            _ => None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// Paired with [`Self::check_newer_epoch`]: where the epoch changes, it only grows
    /// (the same one again only for a replica just opened).
    fn assert_epoch_grows(&self, leader_epoch: LeaderEpoch) {
        let fresh = matches!(self.role, RoleState::Offline);
        assert!(
            leader_epoch > self.leader_epoch || (fresh && leader_epoch == self.leader_epoch),
            "leader epoch {leader_epoch} after {}: leader epochs only grow",
            self.leader_epoch
        );
    }

    fn check_newer_epoch(&self, leader_epoch: LeaderEpoch) -> Result<(), ReplicaError> {
        let fresh = matches!(self.role, RoleState::Offline);
        if leader_epoch < self.leader_epoch || (!fresh && leader_epoch == self.leader_epoch) {
            return Err(KafkaError::FencedLeaderEpoch.into());
        }
        Ok(())
    }

    /// KIP-320 fencing of a request's view of the leader epoch.
    fn check_current_epoch(&self, current: Option<LeaderEpoch>) -> Result<(), ReplicaError> {
        match current {
            Some(epoch) if epoch != self.leader_epoch => {
                crate::coverage::hit(Mark::FetchFencedLeaderEpoch);
                if epoch < self.leader_epoch {
                    Err(KafkaError::FencedLeaderEpoch.into())
                } else {
                    Err(KafkaError::UnknownLeaderEpoch.into())
                }
            }
            _ => Ok(()),
        }
    }

    /// A transactional batch or marker of `producer` was appended: its transaction is open
    /// here or over, and a verification still pending for it is void (Kafka's
    /// `clearVerificationStateEntry`).
    fn end_verification(&mut self, producer: ProducerId) {
        if let RoleState::Leader(leader) = &mut self.role {
            leader.verifications.remove(&producer);
        }
    }

    fn leader_state(&self) -> Result<&LeaderState, ReplicaError> {
        match &self.role {
            RoleState::Leader(leader) => Ok(leader),
            _ => Err(KafkaError::NotLeaderOrFollower.into()),
        }
    }

    fn leader_mut_checked(&mut self) -> Result<&mut LeaderState, ReplicaError> {
        match &mut self.role {
            RoleState::Leader(leader) => Ok(leader),
            _ => Err(KafkaError::NotLeaderOrFollower.into()),
        }
    }

    fn leader_mut(&mut self) -> &mut LeaderState {
        self.leader_mut_checked().expect("called as leader")
    }

    fn fetch_data(&self, diverging_epoch: Option<EpochEndOffset>, records: Vec<u8>) -> FetchData {
        FetchData {
            high_watermark: self.hw,
            log_start_offset: self.log.log_start_offset(),
            leader_epoch: self.leader_epoch,
            diverging_epoch,
            records: Bytes(records),
            last_stable_offset: self.last_stable_offset(),
            aborted_transactions: Vec::new(),
        }
    }

    /// Where to truncate for the leader's `answer`, and whether that ends the search.
    fn truncation_point(&self, answer: EpochEndOffset) -> (Offset, bool) {
        let leo = self.log.log_end_offset();
        if self.config.legacy_offsets_for_leader_epoch_v0
            || answer.leader_epoch == LeaderEpoch::NONE
        {
            return (answer.end_offset.min(leo), true);
        }
        match self.epochs.end_offset_for(answer.leader_epoch, leo) {
            // The leader's epoch is newer than all of ours, or older than all of ours.
            None => (answer.end_offset.min(leo), true),
            Some((epoch, end)) if epoch == LeaderEpoch::NONE => {
                (answer.end_offset.min(end).min(leo), true)
            }
            Some((epoch, end)) if epoch == answer.leader_epoch => {
                (answer.end_offset.min(end).min(leo), true)
            }
            // We lack the leader's epoch: cut to where our closest older epoch ends and
            // ask again about that one.
            Some((_, end)) => (end.min(leo), false),
        }
    }

    /// Cuts the log to `offset` (a batch boundary at or below it), then the epoch cache,
    /// producer state and HW with it. The cache loses its entries from the (new) LEO on
    /// even when the log is not cut: an epoch this replica led without appending anything
    /// starts at the LEO, and left there the next fetch would name it again (Kafka trims
    /// the cache in this case too).
    fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        let from_leo = self.log.log_end_offset();
        let target = offset.max(self.log.log_start_offset());
        self.log.truncate_to(target)?;
        let leo = self.log.log_end_offset();
        self.epochs.truncate_from_end(leo)?;
        if leo < from_leo {
            self.rebuild_from_log(false)?;
            crate::coverage::hit(Mark::FollowerTruncatesDivergentTail);
            if leo < self.hw {
                crate::coverage::hit(Mark::FollowerTruncatesBelowHw);
            }
            self.hw = self.hw.min(leo);
            self.events.push(ReplicaEvent::Truncated {
                from_leo,
                to: leo,
                hw: self.hw,
            });
        }
        Ok(())
    }

    /// Rebuilds producer state by scanning every batch header; with `learn_epochs` also
    /// assigns batch epochs newer than the cache's latest (completing a cache whose
    /// checkpoint lagged the log).
    fn rebuild_from_log(&mut self, learn_epochs: bool) -> Result<(), LogError> {
        self.producers.clear();
        let mut next = self.log.log_start_offset();
        let leo = self.log.log_end_offset();
        while next < leo {
            let bytes = self.log.read(next, SCAN_CHUNK_BYTES)?;
            let mut position = 0;
            while position < bytes.len() {
                let header = parse_header(&bytes[position..])?;
                if learn_epochs && header.leader_epoch.0 >= 0 {
                    self.epochs
                        .assign(header.leader_epoch, header.base_offset)?;
                }
                let appended =
                    AppendedBatch::read(&header, &bytes[position..]).map_err(BatchError::from)?;
                self.producers.record_batch(&appended);
                position += header.size;
                next = header.next_offset();
            }
        }
        // The HW the caller leaves (a truncation lowers it to the new LEO).
        self.producers
            .on_high_watermark(self.hw.min(self.log.log_end_offset()));
        Ok(())
    }

    /// Epochs and producers of batches a follower just appended.
    fn learn_batches(&mut self, mut bytes: &[u8]) -> Result<(), LogError> {
        while !bytes.is_empty() {
            let header = parse_header(bytes)?;
            if header.leader_epoch.0 >= 0 {
                self.epochs
                    .assign(header.leader_epoch, header.base_offset)?;
            }
            let appended = AppendedBatch::read(&header, bytes).map_err(BatchError::from)?;
            self.producers.record_batch(&appended);
            bytes = &bytes[header.size..];
        }
        Ok(())
    }

    /// HW := min LEO over the maximal ISR, if |ISR| allows (KIP-966) and it is higher.
    fn maybe_advance_hw(&mut self) {
        let RoleState::Leader(leader) = &self.role else {
            return;
        };
        let strict = !self.config.legacy_lenient_min_isr;
        if strict && leader.isr.len() < self.config.min_insync_replicas {
            return;
        }
        let mut candidate = self.log.log_end_offset();
        let pending = leader.pending_isr.iter().flatten();
        for member in leader.isr.iter().chain(pending) {
            if *member == self.id {
                continue;
            }
            match leader.followers.get(member).and_then(|p| p.leo) {
                Some(leo) => candidate = candidate.min(leo),
                None => return,
            }
        }
        self.raise_hw(candidate);
    }

    fn raise_hw(&mut self, hw: Offset) {
        let leo = self.log.log_end_offset();
        assert!(hw <= leo, "HW raised to {hw}, beyond the LEO {leo}");
        if hw > self.hw {
            self.hw = hw;
            self.producers.on_high_watermark(hw);
            self.events.push(ReplicaEvent::HwAdvanced { hw });
        }
    }

    /// Proposes adding `follower` if it is out of the ISR and its LEO ≥ HW and ≥ the start
    /// of the leader's epoch (and no proposal is in flight).
    fn maybe_expand_isr(
        &mut self,
        follower: BrokerId,
        follower_leo: Offset,
    ) -> Option<IsrProposal> {
        let hw = self.hw;
        let leader = self.leader_state().ok()?;
        if leader.pending_isr.is_some()
            || leader.isr.contains(&follower)
            || follower_leo < hw
            || follower_leo < leader.epoch_start_offset
        {
            return None;
        }
        let mut new_isr = leader.isr.clone();
        new_isr.push(follower);
        Some(self.propose_isr(new_isr))
    }

    fn propose_isr(&mut self, new_isr: Vec<BrokerId>) -> IsrProposal {
        let leader_epoch = self.leader_epoch;
        let leader = self.leader_mut();
        leader.pending_isr = Some(new_isr.clone());
        let proposal = IsrProposal {
            leader_epoch,
            partition_epoch: leader.partition_epoch,
            new_isr: new_isr.clone(),
        };
        let isr = leader.isr.clone();
        self.events.push(ReplicaEvent::IsrProposed {
            isr,
            proposed: new_isr,
            partition_epoch: proposal.partition_epoch,
        });
        proposal
    }

    fn check_invariants(&self) {
        let (start, leo) = (self.log.log_start_offset(), self.log.log_end_offset());
        assert!(
            start <= self.hw && self.hw <= leo,
            "log start {start} <= HW {} <= LEO {leo}",
            self.hw
        );
        if let Some(latest) = self.epochs.latest() {
            assert!(
                latest.start_offset <= leo,
                "epoch {} starts at {} beyond the LEO {leo}",
                latest.epoch,
                latest.start_offset
            );
        }
    }
}

#[cfg(test)]
mod tests;
