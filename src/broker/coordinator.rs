//! The group coordinator: consumer groups, their rebalances and their committed offsets, kept
//! on the internal topic `__consumer_offsets`.
//!
//! Owns: the groups of the offsets partitions this broker leads (a group lives in partition
//! `abs(java hashCode(group)) % partitions`, and that partition's leader coordinates it),
//! their loading from the log when leadership arrives and unloading when it leaves, the
//! group state machine (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead), the
//! join and sync phases with their timers, member liveness (heartbeats within
//! `session.timeout.ms`), static members (KIP-345), offset commits with their fencing, and
//! the offsets of transactions (TxnOffsetCommit, KIP-98 and KIP-447) until their markers.
//!
//! Rules (semantics.md, Group coordinator):
//! - A dynamic member's first JoinGroup gets `MEMBER_ID_REQUIRED` with its new id (KIP-394).
//! - A rebalance ends its join phase when every member has rejoined, or when the longest
//!   rebalance timeout (`max.poll.interval.ms`) of the members passes; members that did not
//!   rejoin are removed. A group leaving Empty waits `group.initial.rebalance.delay.ms` first,
//!   and again while new members keep coming, within the rebalance timeout.
//! - The join phase ends with generation + 1, an assignor every member supports (each member
//!   votes for its most preferred one), and a leader. The leader gets every member's
//!   subscription, and its SyncGroup brings every member's assignment. The group is stored
//!   in the log with the assignment, and only then is it Stable and are the assignments
//!   handed out.
//! - A member whose session passes without a heartbeat, join, sync or commit is removed,
//!   except while the coordinator holds its join or sync answer; a removal or leave
//!   rebalances.
//! - OffsetCommit: `UNKNOWN_MEMBER_ID` for a member not in the group, `ILLEGAL_GENERATION`
//!   for another generation, `FENCED_INSTANCE_ID` for a replaced static member,
//!   `REBALANCE_IN_PROGRESS` while CompletingRebalance. A commit with generation -1 and no
//!   member is accepted while the group has no members (a simple commit). The commit is
//!   appended with acks=all, and counts only once the HW passes it. The legacy switch
//!   `unfenced-offset-commits` (KAFKA-2017) accepts commits from anyone.
//! - TxnOffsetCommit (Kafka's `handleTxnCommitOffsets`): `NOT_COORDINATOR` and
//!   `COORDINATOR_LOAD_IN_PROGRESS` as for OffsetCommit; a group not known is created
//!   (Empty) to hold the offsets. A request naming a member, a generation or an instance
//!   (KIP-447) is fenced like an OffsetCommit (`FENCED_INSTANCE_ID`, `UNKNOWN_MEMBER_ID`,
//!   `ILLEGAL_GENERATION`) but never `REBALANCE_IN_PROGRESS`; one naming none (an old
//!   client) is not checked, nor is any under the legacy switch
//!   `legacy_unfenced_txn_offset_commits` (before KIP-447: a zombie processor commits).
//!   The offsets are pending for the producer id at once (Kafka's
//!   `prepareTxnOffsetCommit`) and appended, acks=all, in one transactional batch with the
//!   producer's id and epoch (origin COORDINATOR: no sequence check), which opens the
//!   transaction on the offsets partition like a data batch (its LSO, its marker). A
//!   failed append drops them (answered as an OffsetCommit's, but `INVALID_PRODUCER_EPOCH`
//!   passes through as in Kafka); a stored one records its batch's offset. Unlike an
//!   OffsetCommit it does not keep the member's session alive (nor does it in Kafka).
//! - Completion (Kafka's `handleTxnCompletion`): when the server has written a COMMIT or
//!   ABORT marker of producer id P on an offsets partition led here and the HW passed it,
//!   P's pending offsets in that partition's groups are committed (announced as
//!   `txn-offset-commit`) or dropped. Offsets are ordered by log position
//!   (`CommitRecordMetadataAndOffset.olderThan`): a committed transaction's offset does not
//!   replace one committed by a batch appended after its own.
//! - OffsetFetch with `require_stable` (KIP-447): `UNSTABLE_OFFSET_COMMIT` for the whole
//!   request while any partition asked about has pending transactional offsets; without
//!   it, the committed offsets.
//! - Loading reads the partition's batches in order: ordinary offset records are
//!   committed; those of a transactional batch are pending for its producer until its
//!   COMMIT (then committed, by the same position rule) or ABORT (dropped) marker; still
//!   pending at the end (the transaction is open, its marker will come) stays pending.
//!   Unloading drops pending offsets with the groups (the log keeps them).
//!
//! Pure: the server hands in requests with a token, leadership changes, append outcomes
//! (with the batch's base offset), markers written, and the clock. The coordinator answers
//! through [`CoordinatorAction`]s.
//! Simplifications: records are JSON, not Kafka's binary schemas; no offset expiry,
//! compaction or group deletion; the whole partition is loaded at once, after the new
//! leader's HW reaches the LEO it had when elected (so only committed state is served);
//! UNSTABLE_OFFSET_COMMIT is a group-level error (Kafka answers it per partition), and an
//! ordinary commit still in flight does not make a partition unstable (Kafka's
//! `pendingOffsetCommits` does).

use super::proto::{
    CommittedOffset, Generation, JoinGroupMember, JoinGroupOk, JoinGroupRequest, MemberRef,
    OffsetCommitRequest, RequestBody, ResponseBody, SyncGroupRequest, TxnOffsetCommitRequest,
};
use super::types::{Bytes, KafkaError, ProducerId, ProducerIdentity, TopicPartition};
use crate::coverage::Mark;
use crate::log::{LeaderEpoch, Offset};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The internal topic of groups and offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// `offsets.topic.num.partitions` by default.
pub const DEFAULT_OFFSETS_PARTITIONS: u32 = 50;

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The offsets partition holding `group`: Kafka's `Utils.abs(hashCode) % partitions`
/// (whose abs maps `i32::MIN` to 0).
pub fn partition_for(group: &str, partitions: u32) -> u32 {
    let hash = java_string_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs as u32 % partitions.max(1)
}

/// What the coordinator needs to know (the broker's group settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_partitions: u32,
    /// `group.initial.rebalance.delay.ms` (default 3000).
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` (default 6000).
    pub min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms` (default 1800000).
    pub max_session_timeout_ms: u64,
    /// LEGACY (KAFKA-2017): accept offset commits without checking member and generation.
    pub legacy_unfenced_offset_commits: bool,
    /// LEGACY (before KIP-447): accept a TxnOffsetCommit without checking the consumer's
    /// member id and generation, so a zombie processor's transaction can commit offsets.
    pub legacy_unfenced_txn_offset_commits: bool,
}

/// Kafka's default `group.initial.rebalance.delay.ms`.
pub const DEFAULT_INITIAL_REBALANCE_DELAY_MS: u64 = 3_000;
/// Kafka's default `group.min.session.timeout.ms`: the shortest member session accepted.
pub const DEFAULT_MIN_SESSION_TIMEOUT_MS: u64 = 6_000;
/// Kafka's default `group.max.session.timeout.ms`: the longest member session accepted.
pub const DEFAULT_MAX_SESSION_TIMEOUT_MS: u64 = 1_800_000;

impl Default for CoordinatorConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        CoordinatorConfig {
            offsets_partitions: DEFAULT_OFFSETS_PARTITIONS,
            initial_rebalance_delay_ms: DEFAULT_INITIAL_REBALANCE_DELAY_MS,
            min_session_timeout_ms: DEFAULT_MIN_SESSION_TIMEOUT_MS,
            max_session_timeout_ms: DEFAULT_MAX_SESSION_TIMEOUT_MS,
            legacy_unfenced_offset_commits: false,
            legacy_unfenced_txn_offset_commits: false,
        }
    }
}

/// A group's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members (offsets may be kept).
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Unloaded: this broker no longer coordinates it.
    Dead,
}

impl GroupState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A record of `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    /// A committed offset (`None`: deleted).
    Offset {
        /// The group.
        group: String,
        /// The partition committed.
        partition: TopicPartition,
        /// The offset.
        value: Option<CommittedOffset>,
    },
    /// A group's metadata as of a generation (`None`: deleted).
    Group {
        /// The group.
        group: String,
        /// Its metadata.
        value: Option<GroupValue>,
    },
}

/// A group's stored metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupValue {
    /// "consumer".
    pub protocol_type: Option<String>,
    /// The generation.
    pub generation: Generation,
    /// The assignor chosen.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// The members with their assignments.
    pub members: Vec<MemberValue>,
}

/// A member as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    /// Its id.
    pub member_id: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its session timeout.
    pub session_timeout_ms: u64,
    /// Its rebalance timeout.
    pub rebalance_timeout_ms: u64,
    /// Its subscription for the chosen assignor.
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: u32,
    },
    Group {
        group: String,
    },
}

impl GroupRecord {
    /// The record's key and value bytes (a `None` value is a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        fn json<T: Serialize>(v: &T) -> Vec<u8> {
            serde_json::to_vec(v).expect("plain data serializes")
        }
        match self {
            GroupRecord::Offset {
                group,
                partition,
                value,
            } => {
                let key = RecordKey::Offset {
                    group: group.clone(),
                    topic: partition.topic.to_string(),
                    partition: partition.partition,
                };
                (json(&key), value.as_ref().map(json))
            }
            GroupRecord::Group { group, value } => {
                let key = RecordKey::Group {
                    group: group.clone(),
                };
                (json(&key), value.as_ref().map(json))
            }
        }
    }

    /// A record read back from the log; `None` for one that is not a group record.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<GroupRecord> {
        match serde_json::from_slice::<RecordKey>(key).ok()? {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => Some(GroupRecord::Offset {
                group,
                partition: TopicPartition::new(topic, partition),
                value: match value {
                    Some(v) => Some(serde_json::from_slice(v).ok()?),
                    None => None,
                },
            }),
            RecordKey::Group { group } => Some(GroupRecord::Group {
                group,
                value: match value {
                    Some(v) => Some(serde_json::from_slice(v).ok()?),
                    None => None,
                },
            }),
        }
    }
}

/// A batch of an offsets partition as loading reads it back (records below the HW).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetsBatch {
    /// Group records appended in the batch at `base_offset`; `transaction` is the producer
    /// id of a transactional batch (a TxnOffsetCommit's offsets: pending until the
    /// producer's marker).
    Records {
        /// The batch's base offset (its log position).
        base_offset: Offset,
        /// The producer id of a transactional batch.
        transaction: Option<ProducerId>,
        /// Its records that are group records.
        records: Vec<GroupRecord>,
    },
    /// A COMMIT (`commit`) or ABORT marker of `producer_id`'s transaction.
    Marker {
        /// The transaction's producer id.
        producer_id: ProducerId,
        /// COMMIT, else ABORT.
        commit: bool,
    },
}

/// What the shell (the broker core) must do.
#[derive(Clone, Debug, PartialEq)]
pub enum CoordinatorAction {
    /// Answer the request that came with `token`.
    Respond {
        /// The request's token.
        token: u64,
        /// The answer.
        body: ResponseBody,
    },
    /// Append `records` to offsets partition `partition` as its leader in `leader_epoch`,
    /// acks=all; report with [`GroupCoordinator::on_append_done`]`(id, ..)`.
    Append {
        /// Echoed back.
        id: u64,
        /// The offsets partition.
        partition: u32,
        /// The leader epoch the coordinator loaded in.
        leader_epoch: LeaderEpoch,
        /// The records.
        records: Vec<GroupRecord>,
        /// A TxnOffsetCommit's producer: the records go in one transactional batch with
        /// its id and epoch (Kafka's append origin COORDINATOR: no sequence), which opens
        /// its transaction on the partition; `None` for an ordinary batch.
        transaction: Option<ProducerIdentity>,
    },
    /// Announce an event for the checkers and the timeline.
    Announce(CoordinatorEvent),
}

/// What a group coordinator announces (node `broker-<n>`, the broker hosting it).
/// Serialized as `{"kind": <kebab-case name>, "detail": {fields}}`; partitions are written
/// `"topic/p"`.
///
/// | kind | detail | when | checked by |
/// |---|---|---|---|
/// | `coordinator-loaded` | `partition` (of `__consumer_offsets`), `leader_epoch`, `groups` | it loaded the groups of an offsets partition it now leads | timeline |
/// | `coordinator-unloaded` | `partition`, `groups` | it gave them up (leadership lost) | timeline |
/// | `group-state` | `group`, `state` (Kafka's name), `generation`, `reason` (entering `PreparingRebalance`) | a group changed state | `exclusive-assignment` (a rebalance in the owner's generation), `converges` (groups end `Stable`) |
/// | `group-generation` | `group`, `generation`, `protocol`, `leader`, `members` | a join phase completed: a new generation | `converges`, `stale-commit-accepted` (a group's generation at a time) |
/// | `member-removed` | `group`, `member`, `generation` (absent when replaced), `why`, `instance` (when replaced by its static instance) | a member left the group | `exclusive-assignment` (its ownership ends) |
/// | `offset-commit` | `group`, `member`, `generation` (the member's), `group_generation` (the group's at the write, null if unloaded), `offsets` (`["topic/p", offset]` pairs) | a commit was stored (its append reached the HW) | `commit-monotonic`, `stale-commit-accepted` |
/// | `txn-offset-commit` | `group`, `producer_id`, `offsets` (`["topic/p", offset]` pairs) | a transaction's COMMIT marker reached the HW on the group's offsets partition: the offsets its TxnOffsetCommits stored became committed (those not overtaken by a later commit in the log) | — |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum CoordinatorEvent {
    /// A group changed state.
    GroupState {
        /// `group.id`.
        group: String,
        /// Its new state.
        state: GroupState,
        /// Its generation.
        generation: Generation,
        /// Why it is rebalancing (only entering `PreparingRebalance`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A join phase completed: generation `generation` begins.
    GroupGeneration {
        /// `group.id`.
        group: String,
        /// The new generation.
        generation: Generation,
        /// The protocol (assignor) chosen.
        protocol: Option<String>,
        /// The leader's member id.
        leader: Option<String>,
        /// Every member's id, sorted.
        members: Vec<String>,
    },
    /// A member left the group.
    MemberRemoved {
        /// `group.id`.
        group: String,
        /// The member id.
        member: String,
        /// The group's generation then (absent when replaced by its static instance).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<Generation>,
        /// Why.
        why: String,
        /// The static instance that replaced it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
    },
    /// An offset commit was stored.
    OffsetCommit {
        /// `group.id`.
        group: String,
        /// The member id it committed as.
        member: String,
        /// The generation it committed in.
        generation: Generation,
        /// The group's generation when it was stored (none if the group is gone).
        group_generation: Option<Generation>,
        /// `(partition, next offset to read)` pairs, written `["topic/p", offset]`.
        #[serde(with = "super::types::tp_offsets_text")]
        offsets: Vec<(TopicPartition, u64)>,
    },
    /// It loaded the groups of offsets partition `partition`.
    CoordinatorLoaded {
        /// The `__consumer_offsets` partition.
        partition: u32,
        /// The leader epoch it loaded in.
        leader_epoch: LeaderEpoch,
        /// The groups loaded.
        groups: Vec<String>,
    },
    /// It unloaded the groups of offsets partition `partition`.
    CoordinatorUnloaded {
        /// The `__consumer_offsets` partition.
        partition: u32,
        /// The groups unloaded.
        groups: Vec<String>,
    },
    /// A transaction committed: the offsets its TxnOffsetCommits stored for the group are
    /// committed now.
    TxnOffsetCommit {
        /// `group.id`.
        group: String,
        /// The transaction's producer id.
        producer_id: ProducerId,
        /// `(partition, next offset to read)` pairs that became committed, written
        /// `["topic/p", offset]`.
        #[serde(with = "super::types::tp_offsets_text")]
        offsets: Vec<(TopicPartition, u64)>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    /// Leader in this epoch; waiting for the log to be readable.
    Loading(LeaderEpoch),
    /// Serving, in this epoch.
    Loaded { epoch: LeaderEpoch },
}

#[derive(Clone, Debug)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// The JoinGroup waiting for the join phase to end.
    join_token: Option<u64>,
    /// The SyncGroup waiting for the assignment.
    sync_token: Option<u64>,
    /// Removed if not heard from by then.
    expires_ms: u64,
    /// Order of first join (the first member leads when the leader is gone).
    joined: u64,
}

/// The join phase's timer.
#[derive(Clone, Copy, Debug)]
struct JoinTimer {
    deadline_ms: u64,
    /// The initial delay (KIP-134): time left in the rebalance timeout, and members when the
    /// current delay began.
    initial: Option<(u64, usize)>,
}

#[derive(Clone, Debug)]
struct Group {
    partition: u32,
    state: GroupState,
    generation: Generation,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, until they expire.
    pending: BTreeMap<String, u64>,
    /// Static members: instance id → member id.
    instances: BTreeMap<String, String>,
    join: Option<JoinTimer>,
    /// The committed offsets.
    offsets: BTreeMap<TopicPartition, OffsetRecord>,
    /// Offsets of transactions not yet completed, by producer id (Kafka's
    /// `pendingTransactionalOffsetCommits`): from their TxnOffsetCommit (before its
    /// append, whose batch they learn when it is acknowledged) until the transaction's
    /// COMMIT (then committed) or ABORT (dropped) marker.
    pending_txn: BTreeMap<ProducerId, BTreeMap<TopicPartition, OffsetRecord>>,
    /// The append storing the leader's assignment, if any.
    storing: Option<u64>,
    joins: u64,
}

impl Group {
    fn new(partition: u32) -> Group {
        Group {
            partition,
            state: GroupState::Empty,
            generation: Generation(0),
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            instances: BTreeMap::new(),
            join: None,
            offsets: BTreeMap::new(),
            pending_txn: BTreeMap::new(),
            storing: None,
            joins: 0,
        }
    }

    fn value(&self) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberValue {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscription: subscription(m, protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The join phase's timeout: the longest rebalance timeout of the members.
    fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Commits `record` for `tp` unless the committed offset was appended after it
    /// (Kafka's rule: a transaction's commit does not override a later ordinary commit);
    /// whether it did.
    fn commit_offset(&mut self, tp: TopicPartition, record: OffsetRecord) -> bool {
        let newer = self
            .offsets
            .get(&tp)
            .is_none_or(|current| current.older_than(&record));
        if newer {
            self.offsets.insert(tp, record);
        }
        newer
    }

    /// Whether a transaction not yet completed holds offsets of `tp`.
    fn has_pending_txn_offsets(&self, tp: &TopicPartition) -> bool {
        self.pending_txn.values().any(|o| o.contains_key(tp))
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_token.is_some())
    }

    /// Asserts that the members are unique: a member id is a key of `members` (joined once,
    /// never a pending id too), and the static instances and their members name each other
    /// (KIP-345), so no two members share a `group.instance.id`.
    fn assert_membership(&self, group: &str) {
        for (instance, member_id) in &self.instances {
            let member = self.members.get(member_id);
            assert!(
                member.is_some_and(|m| m.group_instance_id.as_ref() == Some(instance)),
                "group {group}: instance {instance} names {member_id}, not its member"
            );
        }
        for (member_id, member) in &self.members {
            if let Some(instance) = &member.group_instance_id {
                assert_eq!(
                    self.instances.get(instance),
                    Some(member_id),
                    "group {group}: two members with the instance {instance}"
                );
            }
            assert!(
                !self.pending.contains_key(member_id),
                "group {group}: member {member_id} is still pending"
            );
        }
    }

    /// Asserts what a completed join phase leaves, while its generation lasts
    /// (CompletingRebalance, Stable): the leader is one of the generation's members, every
    /// join answer was given, and once Stable every sync answer too.
    fn assert_generation(&self, group: &str) {
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            return;
        }
        let generation = self.generation;
        assert!(
            self.leader
                .as_ref()
                .is_some_and(|l| self.members.contains_key(l)),
            "group {group}: the leader {:?} of generation {generation} is not a member",
            self.leader
        );
        for (member_id, member) in &self.members {
            assert!(
                member.join_token.is_none(),
                "group {group}: member {member_id} waits on a join in generation {generation}"
            );
            assert!(
                self.state != GroupState::Stable || member.sync_token.is_none(),
                "group {group}: member {member_id} waits on a sync in Stable generation \
                 {generation}"
            );
        }
    }
}

/// An offset as the log holds it (Kafka's `CommitRecordMetadataAndOffset`): its value and
/// the base offset of the batch it was appended in (`None` while the append is in flight).
#[derive(Clone, Debug, PartialEq, Eq)]
struct OffsetRecord {
    value: CommittedOffset,
    batch: Option<Offset>,
}

impl OffsetRecord {
    /// Kafka's `olderThan`: appended before `other`, by log position.
    fn older_than(&self, other: &OffsetRecord) -> bool {
        self.batch < other.batch
    }
}

fn subscription(member: &Member, protocol: Option<&str>) -> Bytes {
    member
        .protocols
        .iter()
        .find(|(name, _)| Some(name.as_str()) == protocol)
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}

/// Why an append was made.
#[derive(Clone, Debug)]
enum Purpose {
    /// The leader's assignment for `generation`.
    Assignment {
        group: String,
        generation: Generation,
    },
    /// The group's metadata after it went Empty.
    Metadata,
    /// A static member's rejoin under a new member id while Stable: answered once the
    /// group is stored with the new id; reverted if the store fails (Kafka's
    /// `updateStaticMemberAndRebalance`), so a coordinator that lost its partition cannot
    /// hand out a member id the real one will fence.
    StaticRejoin {
        token: u64,
        group: String,
        instance: String,
        old_id: String,
        new_id: String,
        old: Box<Member>,
        was_leader: bool,
    },
    /// An offset commit to answer.
    Commit {
        token: u64,
        member: MemberRef,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    },
    /// A TxnOffsetCommit to answer: its offsets are pending for the producer once stored.
    TxnCommit {
        token: u64,
        group: String,
        producer_id: ProducerId,
        offsets: Vec<(TopicPartition, CommittedOffset)>,
    },
}

/// The coordinator of one broker.
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    partitions: BTreeMap<u32, Load>,
    groups: BTreeMap<String, Group>,
    appends: BTreeMap<u64, (u32, Purpose)>,
    next_append: u64,
    now_ms: u64,
    actions: Vec<CoordinatorAction>,
    /// The broker's incarnation (its lives since the run began), part of member ids.
    incarnation: u64,
    /// Member ids handed out per (offsets partition, leader epoch): kept across unloads,
    /// since one leader epoch can be loaded twice (a broker whose session ended resigns,
    /// and a new controller that found it still the leader names it again in the same
    /// epoch).
    issued: BTreeMap<(u32, LeaderEpoch), u64>,
}

impl GroupCoordinator {
    /// A coordinator leading no offsets partition yet.
    pub fn new(config: CoordinatorConfig) -> Self {
        GroupCoordinator {
            config,
            incarnation: 1,
            issued: BTreeMap::new(),
            partitions: BTreeMap::new(),
            groups: BTreeMap::new(),
            appends: BTreeMap::new(),
            next_append: 1,
            now_ms: 0,
            actions: Vec::new(),
        }
    }

    /// The same, on a broker in its `incarnation`-th life.
    pub fn with_incarnation(mut self, incarnation: u64) -> Self {
        self.incarnation = incarnation;
        self
    }

    /// The actions accumulated since the last call.
    pub fn take_actions(&mut self) -> Vec<CoordinatorAction> {
        std::mem::take(&mut self.actions)
    }

    /// The offsets partition of `group`.
    pub fn partition_of(&self, group: &str) -> u32 {
        partition_for(group, self.config.offsets_partitions)
    }

    /// The offsets partitions waiting to load, with the leader epoch they load in.
    pub fn loading(&self) -> Vec<(u32, LeaderEpoch)> {
        self.partitions
            .iter()
            .filter_map(|(p, l)| match l {
                Load::Loading(epoch) => Some((*p, *epoch)),
                Load::Loaded { .. } => None,
            })
            .collect()
    }

    /// A group's state and generation, if this broker coordinates it.
    pub fn group_state(&self, group: &str) -> Option<(GroupState, Generation)> {
        self.groups.get(group).map(|g| (g.state, g.generation))
    }

    /// Every group this broker coordinates, with its state and generation.
    pub fn groups(&self) -> Vec<(String, GroupState, Generation)> {
        self.groups
            .iter()
            .map(|(id, g)| (id.clone(), g.state, g.generation))
            .collect()
    }

    /// A group's committed offsets, if this broker coordinates it.
    pub fn committed(&self, group: &str) -> Option<BTreeMap<TopicPartition, CommittedOffset>> {
        self.groups.get(group).map(|g| {
            g.offsets
                .iter()
                .map(|(tp, o)| (*tp, o.value.clone()))
                .collect()
        })
    }

    /// A group's offsets of transactions not yet completed, by producer id.
    pub fn pending_txn_offsets(
        &self,
        group: &str,
    ) -> BTreeMap<ProducerId, BTreeMap<TopicPartition, CommittedOffset>> {
        let Some(g) = self.groups.get(group) else {
            return BTreeMap::new();
        };
        g.pending_txn
            .iter()
            .map(|(pid, offsets)| {
                let offsets = offsets
                    .iter()
                    .map(|(tp, o)| (*tp, o.value.clone()))
                    .collect();
                (*pid, offsets)
            })
            .collect()
    }

    fn announce(&mut self, event: CoordinatorEvent) {
        self.actions.push(CoordinatorAction::Announce(event));
    }

    fn respond(&mut self, token: u64, body: ResponseBody) {
        self.actions
            .push(CoordinatorAction::Respond { token, body });
    }

    fn append(
        &mut self,
        partition: u32,
        purpose: Purpose,
        records: Vec<GroupRecord>,
        transaction: Option<ProducerIdentity>,
    ) -> u64 {
        let id = self.next_append;
        self.next_append += 1;
        let leader_epoch = match self.partitions.get(&partition) {
            Some(Load::Loaded { epoch, .. }) => *epoch,
            _ => LeaderEpoch(0),
        };
        self.appends.insert(id, (partition, purpose));
        self.actions.push(CoordinatorAction::Append {
            id,
            partition,
            leader_epoch,
            records,
            transaction,
        });
        id
    }

    /// Appends the group's metadata (members and assignments) as it is now.
    fn store(&mut self, id: &str, purpose: Purpose) -> u64 {
        let group = &self.groups[id];
        let (partition, value) = (group.partition, group.value());
        let record = GroupRecord::Group {
            group: id.to_string(),
            value: Some(value),
        };
        self.append(partition, purpose, vec![record], None)
    }

    // --- leadership of offsets partitions ---

    /// This broker became leader of offsets partition `partition` in `leader_epoch`: load
    /// it once its log is readable ([`Self::on_loaded`]); until then its groups answer
    /// `COORDINATOR_LOAD_IN_PROGRESS`.
    pub fn on_become_leader(&mut self, partition: u32, leader_epoch: LeaderEpoch) {
        let current = self.partitions.get(&partition).copied();
        let same = match current {
            Some(Load::Loading(e)) | Some(Load::Loaded { epoch: e, .. }) => e == leader_epoch,
            None => false,
        };
        if same {
            return;
        }
        if current.is_some() {
            self.unload(partition);
        }
        self.partitions
            .insert(partition, Load::Loading(leader_epoch));
    }

    /// This broker no longer leads offsets partition `partition`: its groups are gone from
    /// here, and whoever waits on them hears `NOT_COORDINATOR`.
    pub fn on_resign(&mut self, partition: u32) {
        if self.partitions.contains_key(&partition) {
            self.unload(partition);
        }
    }

    /// This broker's ensemble session ended: the controller has moved (or will move) every
    /// leadership it held, so every partition's groups are dropped here at once, without
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
            .groups
            .iter()
            .filter(|(_, g)| g.partition == partition)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let group = self.groups.remove(id).expect("listed");
            for member in group.members.values() {
                if let Some(token) = member.join_token {
                    self.respond(token, join_error(KafkaError::NotCoordinator, ""));
                }
                if let Some(token) = member.sync_token {
                    self.respond(token, sync_error(KafkaError::NotCoordinator));
                }
            }
            self.announce(CoordinatorEvent::GroupState {
                group: id.clone(),
                state: GroupState::Dead,
                generation: group.generation,
                reason: None,
            });
        }
        self.announce(CoordinatorEvent::CoordinatorUnloaded {
            partition,
            groups: ids,
        });
    }

    /// The committed batches of offsets partition `partition`, read as leader in
    /// `leader_epoch`: the groups and offsets they leave are served from now on. Offsets
    /// of a transactional batch are pending for its producer until that producer's COMMIT
    /// (committed, unless an offset appended later is already) or ABORT (dropped) marker;
    /// those with no marker yet stay pending (Kafka's `doLoadGroupsAndOffsets`).
    pub fn on_loaded(
        &mut self,
        partition: u32,
        leader_epoch: LeaderEpoch,
        batches: Vec<OffsetsBatch>,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.partitions.get(&partition) != Some(&Load::Loading(leader_epoch)) {
            return;
        }
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        type Pending = BTreeMap<(String, TopicPartition), OffsetRecord>;
        let mut pending: BTreeMap<ProducerId, Pending> = BTreeMap::new();
        for batch in batches {
            let (base_offset, transaction, records) = match batch {
                OffsetsBatch::Records {
                    base_offset,
                    transaction,
                    records,
                } => (base_offset, transaction, records),
                OffsetsBatch::Marker {
                    producer_id,
                    commit,
                } => {
                    let offsets = pending.remove(&producer_id).unwrap_or_default();
                    if commit {
                        for ((group, tp), record) in offsets {
                            let g = groups.entry(group).or_insert_with(|| Group::new(partition));
                            g.commit_offset(tp, record);
                        }
                    }
                    continue;
                }
            };
            for record in records {
                match record {
                    GroupRecord::Offset {
                        group,
                        partition: tp,
                        value,
                    } => {
                        let g = groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(partition));
                        let record = value.map(|value| OffsetRecord {
                            value,
                            batch: Some(base_offset),
                        });
                        match (transaction, record) {
                            (Some(pid), Some(record)) => {
                                pending.entry(pid).or_default().insert((group, tp), record);
                            }
                            (Some(pid), None) => {
                                pending.entry(pid).or_default().remove(&(group, tp));
                            }
                            (None, Some(record)) => {
                                g.offsets.insert(tp, record);
                            }
                            (None, None) => {
                                g.offsets.remove(&tp);
                            }
                        }
                    }
                    GroupRecord::Group { group, value } => {
                        let g = groups.entry(group).or_insert_with(|| Group::new(partition));
                        restore(g, value, self.now_ms);
                    }
                }
            }
        }
        // Transactions still open: their markers will come.
        for (pid, offsets) in pending {
            for ((group, tp), record) in offsets {
                let g = groups.entry(group).or_insert_with(|| Group::new(partition));
                g.pending_txn.entry(pid).or_default().insert(tp, record);
            }
        }
        self.partitions.insert(
            partition,
            Load::Loaded {
                epoch: leader_epoch,
            },
        );
        let names: Vec<String> = groups.keys().cloned().collect();
        if !names.is_empty() {
            crate::coverage::hit(Mark::CoordinatorLoadedWithGroups);
        }
        for (id, group) in groups {
            self.announce(CoordinatorEvent::GroupState {
                group: id.clone(),
                state: group.state,
                generation: group.generation,
                reason: None,
            });
            group.assert_membership(&id);
            group.assert_generation(&id);
            let previous = self.groups.insert(id.clone(), group);
            assert!(
                previous.is_none(),
                "group {id} loaded while coordinated already (its partition was unloaded)"
            );
        }
        self.announce(CoordinatorEvent::CoordinatorLoaded {
            partition,
            leader_epoch,
            groups: names,
        });
    }

    /// The outcome of append `id`: `Ok` with the batch's base offset once the HW passed it
    /// (acks=all), else why not.
    pub fn on_append_done(&mut self, id: u64, result: Result<Offset, KafkaError>, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some((partition, purpose)) = self.appends.remove(&id) else {
            return;
        };
        // The group may have been unloaded (and even loaded again) since.
        let loaded = matches!(self.partitions.get(&partition), Some(Load::Loaded { .. }));
        let batch = result.as_ref().ok().copied();
        // Kafka's mapping of append errors for group clients.
        let error = result.err().map(|e| match e {
            KafkaError::NotLeaderOrFollower | KafkaError::KafkaStorageError => {
                KafkaError::NotCoordinator
            }
            // A TxnOffsetCommit of a fenced producer epoch.
            KafkaError::InvalidProducerEpoch => KafkaError::InvalidProducerEpoch,
            _ => KafkaError::CoordinatorNotAvailable,
        });
        match purpose {
            Purpose::TxnCommit {
                token,
                group,
                producer_id,
                offsets,
            } => {
                let error = if loaded {
                    error
                } else {
                    Some(KafkaError::NotCoordinator)
                };
                self.on_txn_commit_stored(&group, producer_id, &offsets, batch, error);
                let body = ResponseBody::TxnOffsetCommit {
                    partitions: offsets.into_iter().map(|(tp, _)| (tp, error)).collect(),
                };
                self.respond(token, body);
            }
            Purpose::Commit {
                token,
                member,
                offsets,
            } => {
                let error = if loaded {
                    error
                } else {
                    Some(KafkaError::NotCoordinator)
                };
                if error == Some(KafkaError::NotCoordinator) {
                    crate::coverage::hit(Mark::CommitAcrossCoordinatorMove);
                }
                if error.is_none() {
                    let generation = self.groups.get(&member.group_id).map(|g| g.generation);
                    if let Some(group) = self.groups.get_mut(&member.group_id) {
                        for (tp, offset) in &offsets {
                            let record = OffsetRecord {
                                value: offset.clone(),
                                batch,
                            };
                            group.commit_offset(*tp, record);
                        }
                    }
                    self.announce(CoordinatorEvent::OffsetCommit {
                        group: member.group_id.clone(),
                        member: member.member_id.clone(),
                        generation: member.generation_id,
                        group_generation: generation,
                        offsets: offsets.iter().map(|(tp, o)| (*tp, o.offset.0)).collect(),
                    });
                }
                let body = ResponseBody::OffsetCommit {
                    partitions: offsets.into_iter().map(|(tp, _)| (tp, error)).collect(),
                };
                self.respond(token, body);
            }
            Purpose::Metadata => {}
            Purpose::StaticRejoin {
                token,
                group,
                instance,
                old_id,
                new_id,
                old,
                was_leader,
            } => {
                let present = self
                    .groups
                    .get(&group)
                    .is_some_and(|g| g.members.contains_key(&new_id));
                if loaded && error.is_none() && present {
                    self.announce_replaced(&group, &old_id, &instance);
                    let g = &self.groups[&group];
                    let mut ok = join_ok(g, &new_id);
                    ok.members.clear();
                    let body = ResponseBody::JoinGroup {
                        result: Ok(ok),
                        member_id: new_id,
                    };
                    self.respond(token, body);
                    return;
                }
                // Not stored: the replacement is undone, and the member told why.
                if let Some(g) = self.groups.get_mut(&group) {
                    if g.members.remove(&new_id).is_some() {
                        g.members.insert(old_id.clone(), *old);
                        g.instances.insert(instance, old_id.clone());
                        if was_leader {
                            g.leader = Some(old_id);
                        }
                        g.assert_membership(&group);
                        g.assert_generation(&group);
                    }
                }
                let error = error.unwrap_or(KafkaError::NotCoordinator);
                self.respond(token, join_error(error, ""));
            }
            Purpose::Assignment { group, generation } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                if g.storing != Some(id)
                    || g.generation != generation
                    || g.state != GroupState::CompletingRebalance
                {
                    return;
                }
                g.storing = None;
                match error {
                    None => self.become_stable(&group),
                    Some(error) => {
                        // Kafka: the members hear the error and the group rebalances.
                        let tokens: Vec<u64> = g
                            .members
                            .values_mut()
                            .filter_map(|m| m.sync_token.take())
                            .collect();
                        for m in g.members.values_mut() {
                            m.assignment = Bytes::default();
                        }
                        for token in tokens {
                            self.respond(token, sync_error(error));
                        }
                        self.prepare_rebalance(&group, "the assignment could not be stored");
                    }
                }
            }
        }
    }

    // --- requests ---

    /// A group request (FindCoordinator is the server's business).
    pub fn on_request(&mut self, token: u64, body: RequestBody, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match body {
            RequestBody::JoinGroup(request) => self.on_join_group(token, request),
            RequestBody::SyncGroup(request) => self.on_sync_group(token, request),
            RequestBody::Heartbeat(member) => self.on_heartbeat(token, &member),
            RequestBody::LeaveGroup(member) => self.on_leave_group(token, &member),
            RequestBody::OffsetCommit(request) => self.on_offset_commit(token, request),
            RequestBody::OffsetFetch {
                group_id,
                partitions,
                require_stable,
            } => self.on_offset_fetch(token, &group_id, partitions, require_stable),
            RequestBody::TxnOffsetCommit(request) => self.on_txn_offset_commit(token, request),
            other => panic!("not a group request: {other:?}"),
        }
    }

    /// Whether this broker serves `group` now.
    fn available(&self, group: &str) -> Result<(), KafkaError> {
        match self.partitions.get(&self.partition_of(group)) {
            None => Err(KafkaError::NotCoordinator),
            Some(Load::Loading(_)) => Err(KafkaError::CoordinatorLoadInProgress),
            Some(Load::Loaded { .. }) => Ok(()),
        }
    }

    fn new_member_id(&mut self, group: &str, client_id: &str) -> String {
        let partition = self.partition_of(group);
        let Some(Load::Loaded { epoch }) = self.partitions.get(&partition).copied() else {
            unreachable!("members are created only in loaded partitions")
        };
        let issued = self.issued.entry((partition, epoch)).or_default();
        *issued += 1;
        let n = *issued;
        // Unique across coordinators: one leader per (partition, leader epoch); across
        // this broker's loads of one epoch, by the count kept over them; across its lives,
        // by the incarnation (a restarted broker can be named leader in the same epoch).
        if self.incarnation <= 1 {
            format!("{client_id}-{partition}.{}.{n}", epoch.0)
        } else {
            format!(
                "{client_id}-{partition}.{}.{n}.{}",
                epoch.0, self.incarnation
            )
        }
    }

    fn on_join_group(&mut self, token: u64, request: JoinGroupRequest) {
        let id = request.group_id.clone();
        if let Err(error) = self.available(&id) {
            self.respond(token, join_error(error, ""));
            return;
        }
        let timeout = request.session_timeout_ms;
        if timeout < self.config.min_session_timeout_ms
            || timeout > self.config.max_session_timeout_ms
        {
            self.respond(token, join_error(KafkaError::InvalidSessionTimeout, ""));
            return;
        }
        let partition = self.partition_of(&id);
        let group = self
            .groups
            .entry(id.clone())
            .or_insert_with(|| Group::new(partition));
        // The group's members must share the protocol type and an assignor.
        let compatible = group.members.is_empty()
            || (group.protocol_type.as_deref() == Some(request.protocol_type.as_str())
                && request.protocols.iter().any(|(name, _)| {
                    group
                        .members
                        .values()
                        .all(|m| m.protocols.iter().any(|(n, _)| n == name))
                }));
        if !compatible {
            self.respond(token, join_error(KafkaError::InconsistentGroupProtocol, ""));
            return;
        }
        let now = self.now_ms;
        if request.member_id.is_empty() {
            if let Some(instance) = request.group_instance_id.clone() {
                self.join_static_new(token, &id, &instance, request);
                return;
            }
            // KIP-394: hand out an id, and wait for the member to come back with it.
            let member_id = self.new_member_id(&id, &request.client_id);
            let group = self.groups.get_mut(&id).expect("created above");
            group
                .pending
                .insert(member_id.clone(), now.saturating_add(timeout));
            self.respond(token, join_error(KafkaError::MemberIdRequired, &member_id));
            return;
        }
        let group = self.groups.get_mut(&id).expect("created above");
        if let Err(error) = check_instance(
            group,
            request.group_instance_id.as_ref(),
            &request.member_id,
        ) {
            self.respond(token, join_error(error, ""));
            return;
        }
        if group.pending.remove(&request.member_id).is_some() {
            self.add_member(&id, token, request);
            return;
        }
        let Some(member) = group.members.get(&request.member_id) else {
            self.respond(token, join_error(KafkaError::UnknownMemberId, ""));
            return;
        };
        let same = member.protocols == request.protocols;
        let is_leader = group.leader.as_deref() == Some(request.member_id.as_str());
        // Kafka: the same join again while completing, or from a follower while stable,
        // gets the current generation; a leader's join or new protocols rebalance.
        let repeated = match group.state {
            GroupState::CompletingRebalance => same,
            GroupState::Stable => same && !is_leader,
            _ => false,
        };
        if !repeated {
            self.update_member(&id, token, request);
            return;
        }
        // A repeated join (its answer was lost): the current generation again.
        let member_id = request.member_id.clone();
        let member = group.members.get_mut(&member_id).expect("found above");
        member.expires_ms = now.saturating_add(member.session_timeout_ms);
        let ok = join_ok(group, &member_id);
        self.respond(
            token,
            ResponseBody::JoinGroup {
                result: Ok(ok),
                member_id,
            },
        );
    }

    /// A static member's join without a member id: a new member, or the known instance
    /// back under a new id (the old id is fenced).
    fn join_static_new(&mut self, token: u64, id: &str, instance: &str, request: JoinGroupRequest) {
        let member_id = self.new_member_id(id, &request.client_id);
        let now = self.now_ms;
        let group = self.groups.get_mut(id).expect("created by join");
        let Some(old_id) = group.instances.get(instance).cloned() else {
            group
                .instances
                .insert(instance.to_string(), member_id.clone());
            let request = JoinGroupRequest {
                member_id: member_id.clone(),
                ..request
            };
            self.add_member(id, token, request);
            return;
        };
        // The instance is back: its old id is fenced, its assignment carries over.
        let mut member = group
            .members
            .remove(&old_id)
            .expect("instances name members");
        let was_leader = group.leader.as_deref() == Some(old_id.as_str());
        let old = Box::new(Member {
            join_token: None,
            sync_token: None,
            ..member.clone()
        });
        if let Some(t) = member.join_token.take() {
            self.respond(t, join_error(KafkaError::FencedInstanceId, ""));
        }
        let group = self.groups.get_mut(id).expect("created by join");
        if let Some(t) = member.sync_token.take() {
            self.actions.push(CoordinatorAction::Respond {
                token: t,
                body: sync_error(KafkaError::FencedInstanceId),
            });
        }
        member.protocols = request.protocols.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.client_id = request.client_id.clone();
        member.expires_ms = now.saturating_add(request.session_timeout_ms);
        let previous = group.members.insert(member_id.clone(), member);
        assert!(
            previous.is_none(),
            "group {id}: member {member_id} joined twice"
        );
        group
            .instances
            .insert(instance.to_string(), member_id.clone());
        if was_leader {
            group.leader = Some(member_id.clone());
        }
        group.assert_membership(id);
        group.assert_generation(id);
        // Kafka rebalances a Stable group for a static rejoin only when the protocol the
        // group would select changes; new metadata under the same protocol (a restarted
        // member's subscription) is stored as it is. (Swarm seed 1261: rebalancing instead
        // left the new id in memory only, and a coordinator failover then fenced it.)
        let same = group.protocol.as_deref() == Some(choose_protocol(&group.members).as_str());
        match group.state {
            GroupState::Stable if same => {
                // KIP-345: no rebalance; the member syncs for its old assignment once the
                // group is stored with its new id.
                let purpose = Purpose::StaticRejoin {
                    token,
                    group: id.to_string(),
                    instance: instance.to_string(),
                    old_id,
                    new_id: member_id,
                    old,
                    was_leader,
                };
                self.store(id, purpose);
            }
            _ => {
                self.announce_replaced(id, &old_id, instance);
                let request = JoinGroupRequest {
                    member_id,
                    ..request
                };
                self.update_member(id, token, request);
            }
        }
    }

    fn announce_replaced(&mut self, id: &str, old_id: &str, instance: &str) {
        crate::coverage::hit(Mark::StaticMemberReplaced);
        self.announce(CoordinatorEvent::MemberRemoved {
            group: id.to_string(),
            member: old_id.to_string(),
            generation: None,
            why: "replaced by its instance".to_string(),
            instance: Some(instance.to_string()),
        });
    }

    fn add_member(&mut self, id: &str, token: u64, request: JoinGroupRequest) {
        let now = self.now_ms;
        let group = self.groups.get_mut(id).expect("joined");
        group.joins += 1;
        if group.members.is_empty() {
            group.protocol_type = Some(request.protocol_type.clone());
        }
        let previous = group.members.insert(
            request.member_id.clone(),
            Member {
                group_instance_id: request.group_instance_id.clone(),
                client_id: request.client_id.clone(),
                session_timeout_ms: request.session_timeout_ms,
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                protocols: request.protocols.clone(),
                assignment: Bytes::default(),
                join_token: Some(token),
                sync_token: None,
                expires_ms: now.saturating_add(request.session_timeout_ms),
                joined: group.joins,
            },
        );
        assert!(
            previous.is_none(),
            "group {id}: member {} joined twice",
            request.member_id
        );
        if let Some(instance) = &request.group_instance_id {
            group
                .instances
                .insert(instance.clone(), request.member_id.clone());
        }
        group.assert_membership(id);
        match group.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(id),
            _ => self.prepare_rebalance(id, "a member joined"),
        }
    }

    fn update_member(&mut self, id: &str, token: u64, request: JoinGroupRequest) {
        let now = self.now_ms;
        let group = self.groups.get_mut(id).expect("joined");
        let member = group
            .members
            .get_mut(&request.member_id)
            .expect("a known member");
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.expires_ms = now.saturating_add(member.session_timeout_ms);
        let replaced = member.join_token.replace(token);
        if let Some(old) = replaced {
            self.respond(old, join_error(KafkaError::RebalanceInProgress, ""));
        }
        let state = self.groups[id].state;
        match state {
            GroupState::PreparingRebalance => self.maybe_complete_join(id),
            _ => self.prepare_rebalance(id, "a member rejoined"),
        }
    }

    fn prepare_rebalance(&mut self, id: &str, reason: &str) {
        let now = self.now_ms;
        let delay = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(id).expect("a group");
        if group.state == GroupState::CompletingRebalance {
            let tokens: Vec<u64> = group
                .members
                .values_mut()
                .filter_map(|m| m.sync_token.take())
                .collect();
            for token in tokens {
                self.actions.push(CoordinatorAction::Respond {
                    token,
                    body: sync_error(KafkaError::RebalanceInProgress),
                });
            }
        }
        let group = self.groups.get_mut(id).expect("a group");
        group.storing = None;
        let rebalance_timeout = group.rebalance_timeout_ms();
        group.join = Some(if group.state == GroupState::Empty {
            JoinTimer {
                deadline_ms: now.saturating_add(delay),
                initial: Some((rebalance_timeout.saturating_sub(delay), group.members.len())),
            }
        } else {
            JoinTimer {
                deadline_ms: now.saturating_add(rebalance_timeout),
                initial: None,
            }
        });
        group.state = GroupState::PreparingRebalance;
        let generation = group.generation;
        self.announce(CoordinatorEvent::GroupState {
            group: id.to_string(),
            state: GroupState::PreparingRebalance,
            generation,
            reason: Some(reason.to_string()),
        });
        self.maybe_complete_join(id);
    }

    /// Ends the join phase if everyone is in (and no initial delay holds it).
    fn maybe_complete_join(&mut self, id: &str) {
        let group = &self.groups[id];
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = group.join.is_some_and(|j| j.initial.is_some());
        if !delayed && group.all_joined() && !group.members.is_empty() {
            self.complete_join(id);
        }
    }

    fn complete_join(&mut self, id: &str) {
        let now = self.now_ms;
        let group = self.groups.get_mut(id).expect("a group");
        group.join = None;
        group.pending.clear();
        // Members that did not rejoin are out.
        let gone: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.join_token.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for member in &gone {
            remove_member(group, member);
        }
        let generation = group.generation;
        for member in gone {
            self.announce(CoordinatorEvent::MemberRemoved {
                group: id.to_string(),
                member,
                generation: Some(generation),
                why: "did not rejoin in time".to_string(),
                instance: None,
            });
        }
        let group = self.groups.get_mut(id).expect("a group");
        let previous = group.generation;
        group.generation = previous.next();
        assert!(
            group.generation > previous,
            "group {id}: generation {} after {previous}",
            group.generation
        );
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol = None;
            group.leader = None;
            let generation = group.generation;
            self.announce(CoordinatorEvent::GroupState {
                group: id.to_string(),
                state: GroupState::Empty,
                generation,
                reason: None,
            });
            self.store(id, Purpose::Metadata);
            return;
        }
        group.protocol = Some(choose_protocol(&group.members));
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group
                .members
                .iter()
                .min_by_key(|(_, m)| m.joined)
                .map(|(id, _)| id.clone());
        }
        group.state = GroupState::CompletingRebalance;
        let mut answers = Vec::new();
        for (member_id, member) in group.members.iter_mut() {
            member.expires_ms = now.saturating_add(member.session_timeout_ms);
            member.assignment = Bytes::default();
            if let Some(token) = member.join_token.take() {
                answers.push((token, member_id.clone()));
            }
        }
        group.assert_membership(id);
        group.assert_generation(id);
        let group = &self.groups[id];
        let detail = CoordinatorEvent::GroupGeneration {
            group: id.to_string(),
            generation: group.generation,
            protocol: group.protocol.clone(),
            leader: group.leader.clone(),
            members: group.members.keys().cloned().collect(),
        };
        let answers: Vec<(u64, ResponseBody)> = answers
            .into_iter()
            .map(|(token, member_id)| {
                let ok = join_ok(group, &member_id);
                (
                    token,
                    ResponseBody::JoinGroup {
                        result: Ok(ok),
                        member_id,
                    },
                )
            })
            .collect();
        self.announce(detail);
        self.announce(CoordinatorEvent::GroupState {
            group: id.to_string(),
            state: GroupState::CompletingRebalance,
            generation: self.groups[id].generation,
            reason: None,
        });
        for (token, body) in answers {
            self.respond(token, body);
        }
    }

    /// Checks a member's request against the group: its id, instance and generation.
    fn check_member(group: &Group, member: &MemberRef) -> Result<(), KafkaError> {
        check_instance(group, member.group_instance_id.as_ref(), &member.member_id)?;
        if !group.members.contains_key(&member.member_id) {
            return Err(KafkaError::UnknownMemberId);
        }
        if member.generation_id != group.generation {
            return Err(KafkaError::IllegalGeneration);
        }
        Ok(())
    }

    fn on_sync_group(&mut self, token: u64, request: SyncGroupRequest) {
        let id = request.member.group_id.clone();
        if let Err(error) = self.available(&id) {
            self.respond(token, sync_error(error));
            return;
        }
        let now = self.now_ms;
        let Some(group) = self.groups.get_mut(&id) else {
            self.respond(token, sync_error(KafkaError::UnknownMemberId));
            return;
        };
        if let Err(error) = Self::check_member(group, &request.member) {
            self.respond(token, sync_error(error));
            return;
        }
        let member_id = request.member.member_id.clone();
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                self.respond(token, sync_error(KafkaError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                self.respond(token, sync_error(KafkaError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let member = group.members.get_mut(&member_id).expect("checked");
                member.expires_ms = now.saturating_add(member.session_timeout_ms);
                let assignment = member.assignment.clone();
                self.respond(
                    token,
                    ResponseBody::SyncGroup {
                        result: Ok(assignment),
                    },
                );
            }
            GroupState::CompletingRebalance => {
                let member = group.members.get_mut(&member_id).expect("checked");
                member.expires_ms = now.saturating_add(member.session_timeout_ms);
                if let Some(old) = member.sync_token.replace(token) {
                    self.actions.push(CoordinatorAction::Respond {
                        token: old,
                        body: sync_error(KafkaError::RebalanceInProgress),
                    });
                }
                let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                if is_leader && group.storing.is_none() {
                    let given: BTreeMap<String, Bytes> = request.assignments.into_iter().collect();
                    for (mid, m) in group.members.iter_mut() {
                        m.assignment = given.get(mid).cloned().unwrap_or_default();
                    }
                    let generation = group.generation;
                    let purpose = Purpose::Assignment {
                        group: id.clone(),
                        generation,
                    };
                    let append = self.store(&id, purpose);
                    self.groups.get_mut(&id).expect("a group").storing = Some(append);
                }
            }
        }
    }

    fn become_stable(&mut self, id: &str) {
        let group = self.groups.get_mut(id).expect("a group");
        group.state = GroupState::Stable;
        let answers: Vec<(u64, Bytes)> = group
            .members
            .values_mut()
            .filter_map(|m| m.sync_token.take().map(|t| (t, m.assignment.clone())))
            .collect();
        group.assert_generation(id);
        let generation = group.generation;
        self.announce(CoordinatorEvent::GroupState {
            group: id.to_string(),
            state: GroupState::Stable,
            generation,
            reason: None,
        });
        for (token, assignment) in answers {
            self.respond(
                token,
                ResponseBody::SyncGroup {
                    result: Ok(assignment),
                },
            );
        }
    }

    fn on_heartbeat(&mut self, token: u64, member: &MemberRef) {
        let error = self.heartbeat(member).err();
        self.respond(token, ResponseBody::Heartbeat { error });
    }

    fn heartbeat(&mut self, member: &MemberRef) -> Result<(), KafkaError> {
        self.available(&member.group_id)?;
        let now = self.now_ms;
        let group = self
            .groups
            .get_mut(&member.group_id)
            .ok_or(KafkaError::UnknownMemberId)?;
        Self::check_member(group, member)?;
        let m = group.members.get_mut(&member.member_id).expect("checked");
        m.expires_ms = now.saturating_add(m.session_timeout_ms);
        match group.state {
            GroupState::PreparingRebalance => Err(KafkaError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(KafkaError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    fn on_leave_group(&mut self, token: u64, member: &MemberRef) {
        let error = self.leave(member).err();
        self.respond(token, ResponseBody::LeaveGroup { error });
    }

    fn leave(&mut self, member: &MemberRef) -> Result<(), KafkaError> {
        self.available(&member.group_id)?;
        let id = member.group_id.clone();
        let group = self
            .groups
            .get_mut(&id)
            .ok_or(KafkaError::UnknownMemberId)?;
        check_instance(group, member.group_instance_id.as_ref(), &member.member_id)?;
        if group.pending.remove(&member.member_id).is_some() {
            return Ok(());
        }
        if !group.members.contains_key(&member.member_id) {
            return Err(KafkaError::UnknownMemberId);
        }
        self.remove_and_rebalance(&id, &member.member_id, "left the group");
        Ok(())
    }

    fn remove_and_rebalance(&mut self, id: &str, member_id: &str, why: &str) {
        let group = self.groups.get_mut(id).expect("a group");
        let Some(mut member) = remove_member(group, member_id) else {
            return;
        };
        let generation = group.generation;
        if let Some(token) = member.join_token.take() {
            self.respond(token, join_error(KafkaError::UnknownMemberId, ""));
        }
        if let Some(token) = member.sync_token.take() {
            self.respond(token, sync_error(KafkaError::UnknownMemberId));
        }
        self.announce(CoordinatorEvent::MemberRemoved {
            group: id.to_string(),
            member: member_id.to_string(),
            generation: Some(generation),
            why: why.to_string(),
            instance: None,
        });
        let state = self.groups[id].state;
        match state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(id, why),
            GroupState::PreparingRebalance => {
                if self.groups[id].members.is_empty() {
                    self.complete_join(id);
                } else {
                    self.maybe_complete_join(id);
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn on_offset_commit(&mut self, token: u64, request: OffsetCommitRequest) {
        let id = request.member.group_id.clone();
        let answer = |error: KafkaError| ResponseBody::OffsetCommit {
            partitions: request
                .offsets
                .iter()
                .map(|(tp, _)| (*tp, Some(error)))
                .collect(),
        };
        if let Err(error) = self.available(&id) {
            self.respond(token, answer(error));
            return;
        }
        let now = self.now_ms;
        let partition = self.partition_of(&id);
        let unfenced = self.config.legacy_unfenced_offset_commits;
        let simple =
            request.member.generation_id < Generation(0) && request.member.member_id.is_empty();
        let group = self
            .groups
            .entry(id.clone())
            .or_insert_with(|| Group::new(partition));
        let verdict = if unfenced {
            // LEGACY (KAFKA-2017): anyone's commit is taken.
            Ok(())
        } else if simple {
            if group.members.is_empty() {
                Ok(())
            } else {
                Err(KafkaError::UnknownMemberId)
            }
        } else {
            Self::check_member(group, &request.member).and(match group.state {
                GroupState::CompletingRebalance => Err(KafkaError::RebalanceInProgress),
                _ => Ok(()),
            })
        };
        if let Err(error) = verdict {
            if error != KafkaError::RebalanceInProgress {
                crate::coverage::hit(Mark::CommitFenced);
            }
            self.respond(token, answer(error));
            return;
        }
        if group.state == GroupState::PreparingRebalance && !simple {
            crate::coverage::hit(Mark::CommitDuringRebalance);
        }
        if let Some(m) = group.members.get_mut(&request.member.member_id) {
            m.expires_ms = now.saturating_add(m.session_timeout_ms);
        }
        let records = request
            .offsets
            .iter()
            .map(|(tp, offset)| GroupRecord::Offset {
                group: id.clone(),
                partition: *tp,
                value: Some(offset.clone()),
            })
            .collect();
        self.append(
            partition,
            Purpose::Commit {
                token,
                member: request.member,
                offsets: request.offsets,
            },
            records,
            None,
        );
    }

    /// TxnOffsetCommit (Kafka's `handleTxnCommitOffsets`): the group is created if unknown;
    /// a request naming a member or a generation is checked as an OffsetCommit is, but
    /// without `REBALANCE_IN_PROGRESS` (KIP-447); the offsets are pending for the producer
    /// at once (an OffsetFetch with `require_stable` waits for them) and appended in one
    /// transactional batch of the producer.
    fn on_txn_offset_commit(&mut self, token: u64, request: TxnOffsetCommitRequest) {
        let id = request.member.group_id.clone();
        let answer = |error: KafkaError| ResponseBody::TxnOffsetCommit {
            partitions: request
                .offsets
                .iter()
                .map(|(tp, _)| (*tp, Some(error)))
                .collect(),
        };
        if let Err(error) = self.available(&id) {
            self.respond(token, answer(error));
            return;
        }
        let partition = self.partition_of(&id);
        let unfenced = self.config.legacy_unfenced_txn_offset_commits;
        let group = self
            .groups
            .entry(id.clone())
            .or_insert_with(|| Group::new(partition));
        if !unfenced {
            if let Err(error) = check_txn_member(group, &request.member) {
                crate::coverage::hit(Mark::CommitFenced);
                self.respond(token, answer(error));
                return;
            }
        }
        let producer_id = request.producer.producer_id;
        let pending = group.pending_txn.entry(producer_id).or_default();
        for (tp, offset) in &request.offsets {
            let record = OffsetRecord {
                value: offset.clone(),
                batch: None,
            };
            pending.insert(*tp, record);
        }
        let records = request
            .offsets
            .iter()
            .map(|(tp, offset)| GroupRecord::Offset {
                group: id.clone(),
                partition: *tp,
                value: Some(offset.clone()),
            })
            .collect();
        let purpose = Purpose::TxnCommit {
            token,
            group: id,
            producer_id,
            offsets: request.offsets,
        };
        self.append(partition, purpose, records, Some(request.producer));
    }

    /// A TxnOffsetCommit's append finished: stored at `batch`, its offsets (those not
    /// replaced meanwhile by another TxnOffsetCommit of the producer) learn their log
    /// position; failed, they are no longer pending (Kafka's `onTxnOffsetCommitAppend`,
    /// `failPendingTxnOffsetCommit`).
    fn on_txn_commit_stored(
        &mut self,
        group: &str,
        producer_id: ProducerId,
        offsets: &[(TopicPartition, CommittedOffset)],
        batch: Option<Offset>,
        error: Option<KafkaError>,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(pending) = g.pending_txn.get_mut(&producer_id) else {
            return;
        };
        for (tp, offset) in offsets {
            match error {
                None => {
                    if let Some(record) = pending.get_mut(tp).filter(|r| r.value == *offset) {
                        record.batch = batch;
                    }
                }
                Some(_) => {
                    pending.remove(tp);
                }
            }
        }
        if pending.is_empty() {
            g.pending_txn.remove(&producer_id);
        }
    }

    /// A COMMIT (`commit`) or ABORT marker of `producer_id`'s transaction reached the HW
    /// (acks=all) on offsets partition `partition` (Kafka's `handleTxnCompletion`): its
    /// offsets pending in that partition's groups are committed — each unless the
    /// committed one was appended after it — or dropped. A partition still loading reads
    /// the marker from the log instead.
    pub fn on_txn_completed(
        &mut self,
        partition: u32,
        producer_id: ProducerId,
        commit: bool,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        if !matches!(self.partitions.get(&partition), Some(Load::Loaded { .. })) {
            return;
        }
        let mut events = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            if group.partition != partition {
                continue;
            }
            let Some(pending) = group.pending_txn.remove(&producer_id) else {
                continue;
            };
            if !commit {
                continue;
            }
            let mut offsets = Vec::new();
            for (tp, record) in pending {
                // Still in flight: its append is not in the log before the marker.
                if record.batch.is_none() {
                    continue;
                }
                let next = record.value.offset.0;
                if group.commit_offset(tp, record) {
                    offsets.push((tp, next));
                }
            }
            if !offsets.is_empty() {
                events.push(CoordinatorEvent::TxnOffsetCommit {
                    group: id.clone(),
                    producer_id,
                    offsets,
                });
            }
        }
        for event in events {
            self.announce(event);
        }
    }

    /// OffsetFetch: the committed offsets; with `require_stable` (KIP-447),
    /// `UNSTABLE_OFFSET_COMMIT` while a transaction not yet completed holds offsets of a
    /// partition asked about.
    fn on_offset_fetch(
        &mut self,
        token: u64,
        group_id: &str,
        partitions: Vec<TopicPartition>,
        require_stable: bool,
    ) {
        let result = self.available(group_id).and_then(|()| {
            let group = self.groups.get(group_id);
            if require_stable
                && group.is_some_and(|g| partitions.iter().any(|tp| g.has_pending_txn_offsets(tp)))
            {
                return Err(KafkaError::UnstableOffsetCommit);
            }
            Ok(partitions
                .into_iter()
                .map(|tp| {
                    let committed = group
                        .and_then(|g| g.offsets.get(&tp))
                        .map(|o| o.value.clone());
                    (tp, committed)
                })
                .collect())
        });
        self.respond(token, ResponseBody::OffsetFetch { result });
    }

    // --- time ---

    /// Time passes: sessions expire, join phases end.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            // Pending member ids not used in time.
            if let Some(group) = self.groups.get_mut(&id) {
                group.pending.retain(|_, expires| *expires > now);
            }
            // Members not heard from within their session (the coordinator keeps alive
            // those whose join or sync answer it holds).
            let expired: Vec<String> = self.groups[&id]
                .members
                .iter()
                .filter(|(_, m)| {
                    m.expires_ms <= now && m.join_token.is_none() && m.sync_token.is_none()
                })
                .map(|(m, _)| m.clone())
                .collect();
            for member in expired {
                crate::coverage::hit(Mark::MemberExpired);
                if self.groups.contains_key(&id) {
                    self.remove_and_rebalance(&id, &member, "session timed out");
                }
            }
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            if group.state != GroupState::PreparingRebalance {
                continue;
            }
            let Some(timer) = group.join else { continue };
            if now < timer.deadline_ms {
                self.maybe_complete_join(&id);
                continue;
            }
            match timer.initial {
                Some((left, members)) if left > 0 && group.members.len() > members => {
                    // New members came during the delay: wait again, within the timeout.
                    let delay = self.config.initial_rebalance_delay_ms.min(left);
                    group.join = Some(JoinTimer {
                        deadline_ms: now.saturating_add(delay),
                        initial: Some((left - delay, group.members.len())),
                    });
                }
                Some(_) if group.all_joined() => self.complete_join(&id),
                Some(_) => {
                    // The delay is over: from now on, an ordinary join phase.
                    group.join = Some(JoinTimer {
                        deadline_ms: now.saturating_add(group.rebalance_timeout_ms()),
                        initial: None,
                    });
                }
                None => self.complete_join(&id),
            }
        }
    }
}

fn remove_member(group: &mut Group, member_id: &str) -> Option<Member> {
    let member = group.members.remove(member_id)?;
    if let Some(instance) = &member.group_instance_id {
        if group.instances.get(instance).map(String::as_str) == Some(member_id) {
            group.instances.remove(instance);
        }
    }
    assert!(
        !group.instances.values().any(|m| m == member_id),
        "a removed member {member_id} still holds an instance"
    );
    Some(member)
}

/// Restores a group from its stored metadata: Stable with its members (who must heartbeat
/// this coordinator within their session), or Empty.
fn restore(group: &mut Group, value: Option<GroupValue>, now_ms: u64) {
    let offsets = std::mem::take(&mut group.offsets);
    *group = Group::new(group.partition);
    group.offsets = offsets;
    let Some(value) = value else {
        return;
    };
    group.generation = value.generation;
    group.protocol_type = value.protocol_type;
    group.protocol = value.protocol.clone();
    group.leader = value.leader;
    for (n, m) in value.members.into_iter().enumerate() {
        if let Some(instance) = &m.group_instance_id {
            group
                .instances
                .insert(instance.clone(), m.member_id.clone());
        }
        let protocols = value
            .protocol
            .iter()
            .map(|p| (p.clone(), m.subscription.clone()))
            .collect();
        group.members.insert(
            m.member_id,
            Member {
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols,
                assignment: m.assignment,
                join_token: None,
                sync_token: None,
                expires_ms: now_ms.saturating_add(m.session_timeout_ms),
                joined: n as u64,
            },
        );
    }
    group.joins = group.members.len() as u64;
    group.state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
}

/// The assignor: among those every member supports, the one most members prefer (each
/// votes for its first supported choice); ties go to the name first in order.
fn choose_protocol(members: &BTreeMap<String, Member>) -> String {
    let supported_by_all: BTreeSet<&str> = members
        .values()
        .next()
        .map(|first| {
            first
                .protocols
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|name| {
                    members
                        .values()
                        .all(|m| m.protocols.iter().any(|(n, _)| n == name))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for member in members.values() {
        if let Some((name, _)) = member
            .protocols
            .iter()
            .find(|(n, _)| supported_by_all.contains(n.as_str()))
        {
            *votes.entry(name.as_str()).or_default() += 1;
        }
    }
    let best = votes.values().copied().max().unwrap_or(0);
    votes
        .into_iter()
        .find(|(_, v)| *v == best)
        .map(|(name, _)| name.to_string())
        .unwrap_or_default()
}

fn join_ok(group: &Group, member_id: &str) -> JoinGroupOk {
    let is_leader = group.leader.as_deref() == Some(member_id);
    let protocol = group.protocol.clone().unwrap_or_default();
    JoinGroupOk {
        generation_id: group.generation,
        protocol_name: protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members: if is_leader {
            group
                .members
                .iter()
                .map(|(id, m)| JoinGroupMember {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: subscription(m, Some(&protocol)),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// KIP-447's check of a TxnOffsetCommit (Kafka's `validateOffsetCommit` for a
/// transactional commit): none for a request without member, generation or instance (an
/// old client's); else `FENCED_INSTANCE_ID` for a replaced static member,
/// `UNKNOWN_MEMBER_ID` for a member id not in the group, `ILLEGAL_GENERATION` for another
/// generation. No `REBALANCE_IN_PROGRESS`: Kafka does not apply it to TxnOffsetCommit.
fn check_txn_member(group: &Group, member: &MemberRef) -> Result<(), KafkaError> {
    let named = member.generation_id >= Generation(0)
        || !member.member_id.is_empty()
        || member.group_instance_id.is_some();
    if !named {
        return Ok(());
    }
    check_instance(group, member.group_instance_id.as_ref(), &member.member_id)?;
    if !member.member_id.is_empty() && !group.members.contains_key(&member.member_id) {
        return Err(KafkaError::UnknownMemberId);
    }
    if member.generation_id != group.generation {
        return Err(KafkaError::IllegalGeneration);
    }
    Ok(())
}

/// KIP-345: a static member is fenced when its instance belongs to another member id now.
/// An instance the group does not know (its member was removed) is not fenced: the member
/// is unknown, and joins again as new (Kafka's `isStaticMemberFenced`).
fn check_instance(
    group: &Group,
    instance: Option<&String>,
    member_id: &str,
) -> Result<(), KafkaError> {
    match instance.and_then(|i| group.instances.get(i)) {
        Some(current) if current != member_id => Err(KafkaError::FencedInstanceId),
        _ => Ok(()),
    }
}

fn join_error(error: KafkaError, member_id: &str) -> ResponseBody {
    ResponseBody::JoinGroup {
        result: Err(error),
        member_id: member_id.to_string(),
    }
}

fn sync_error(error: KafkaError) -> ResponseBody {
    ResponseBody::SyncGroup { result: Err(error) }
}

#[cfg(test)]
mod tests;
