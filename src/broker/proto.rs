//! The brokers' wire protocol: requests and responses between clients and brokers, between
//! followers and leaders, and from the controller to brokers.
//!
//! Owns: the message types (Kafka's API names: Metadata, Produce, Fetch,
//! OffsetsForLeaderEpoch, LeaderAndIsr, UpdateMetadata, AlterPartition, InitProducerId, and
//! the group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch; and the transaction APIs of KIP-98: InitProducerId with a
//! `transactional.id`, FindCoordinator for a transaction, AddPartitionsToTxn (with KIP-890's
//! verify-only form), AddOffsetsToTxn, EndTxn, WriteTxnMarkers).
//! Every request carries a correlation id its response echoes, as in Kafka, so a client can
//! pipeline requests on one connection and match answers. Frames are `node::net`'s
//! (length-prefixed postcard over a TCP stream); record batches travel as v2 batch bytes.
//! Simplifications: one API version each; no throttling, no sessions for incremental fetch.

use super::txn_coordinator::{PartitionResult, TransactionResult};
use super::types::{
    Acks, BrokerEpoch, BrokerId, Bytes, ControllerEpoch, KafkaError, PartitionEpoch,
    PartitionState, ProducerIdentity, TopicPartition,
};
use crate::log::{LeaderEpoch, Offset};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A request with the correlation id its response echoes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the sender, unique per connection.
    pub correlation_id: u64,
    /// What is asked.
    pub body: RequestBody,
}

/// A response to the request with the same correlation id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's correlation id.
    pub correlation_id: u64,
    /// The answer.
    pub body: ResponseBody,
}

/// Every request a broker serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestBody {
    /// Which brokers lead which partitions of these topics (all topics if empty).
    Metadata {
        /// The topics asked about.
        topics: Vec<String>,
    },
    /// Append batches to partitions this broker leads.
    Produce {
        /// The producer's `transactional.id` (a transactional producer's only): a partition
        /// leader verifies a transaction's first batch with its coordinator (KIP-890 part 1).
        transactional_id: Option<String>,
        /// The producer's acks.
        acks: Acks,
        /// How long the broker may wait for the HW (acks=all) before REQUEST_TIMED_OUT.
        timeout_ms: u64,
        /// One encoded v2 batch per partition.
        partitions: Vec<ProducePartition>,
    },
    /// Read from partitions: a consumer (`replica_id = None`) reads below the HW, a
    /// follower up to the LEO.
    Fetch {
        /// The fetching follower, or `None` for a consumer.
        replica_id: Option<BrokerId>,
        /// The broker epoch of the fetching follower (KIP-380), 0 for a consumer.
        replica_epoch: BrokerEpoch,
        /// Wait up to this long for data before answering empty.
        max_wait_ms: u64,
        /// What to read.
        partitions: Vec<FetchPartition>,
        /// A consumer's `isolation.level` (a follower reads uncommitted).
        isolation_level: IsolationLevel,
    },
    /// The end offset of a leader epoch on the leader (KIP-101/279), for a follower's
    /// truncation.
    OffsetsForLeaderEpoch {
        /// The follower asking.
        replica_id: BrokerId,
        /// What to look up.
        partitions: Vec<EpochQuery>,
    },
    /// From the controller: become leader or follower of these partitions.
    LeaderAndIsr {
        /// The controller.
        controller_id: BrokerId,
        /// Its epoch; older than the newest seen → STALE_CONTROLLER_EPOCH.
        controller_epoch: ControllerEpoch,
        /// The recipient's broker epoch the controller knows (KIP-380); an older one is
        /// aimed at an earlier incarnation → STALE_BROKER_EPOCH.
        broker_epoch: BrokerEpoch,
        /// The partitions and their new state.
        partitions: Vec<(TopicPartition, PartitionState)>,
    },
    /// From the controller: the cluster's live brokers and partition leadership.
    UpdateMetadata {
        /// The controller.
        controller_id: BrokerId,
        /// Its epoch.
        controller_epoch: ControllerEpoch,
        /// Live brokers with their broker epochs.
        live_brokers: Vec<(BrokerId, BrokerEpoch)>,
        /// Every partition's state.
        partitions: Vec<(TopicPartition, PartitionState)>,
    },
    /// From a partition leader to the controller: change the ISR (KIP-497).
    AlterPartition {
        /// The leader.
        broker_id: BrokerId,
        /// Its broker epoch.
        broker_epoch: BrokerEpoch,
        /// The partition.
        partition: TopicPartition,
        /// The leader epoch it leads in.
        leader_epoch: LeaderEpoch,
        /// The partition epoch its current state has.
        partition_epoch: PartitionEpoch,
        /// The ISR it asks for.
        new_isr: Vec<BrokerId>,
    },
    /// An idempotent producer asks for a producer id.
    InitProducerId,
    /// Which broker coordinates this group (any broker answers, from its metadata).
    FindCoordinator {
        /// The group id.
        key: String,
    },
    /// Join (or rejoin) a group; answered when the group's join phase ends.
    JoinGroup(JoinGroupRequest),
    /// After a join: the leader hands in every member's assignment, each member gets its own.
    SyncGroup(SyncGroupRequest),
    /// A member is alive in this generation.
    Heartbeat(MemberRef),
    /// A member leaves the group.
    LeaveGroup(MemberRef),
    /// Store committed offsets (a member of the current generation, or a simple commit with
    /// generation -1 into a group without members).
    OffsetCommit(OffsetCommitRequest),
    /// Read a group's committed offsets.
    OffsetFetch {
        /// The group id.
        group_id: String,
        /// The partitions asked about.
        partitions: Vec<TopicPartition>,
        /// KIP-447's `require_stable` (a `read_committed` consumer sets it): a partition
        /// with offsets of a transaction not yet completed answers `UNSTABLE_OFFSET_COMMIT`
        /// rather than the offset before them.
        require_stable: bool,
    },
    /// A transactional producer asks for its producer id and epoch (Kafka's InitProducerId
    /// with a `transactional.id`), sent to the transaction's coordinator; answered with
    /// [`ResponseBody::InitProducerId`].
    InitTxnProducerId {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer's `transaction.timeout.ms`.
        transaction_timeout_ms: i64,
        /// KIP-360: the producer id and epoch the producer holds when it re-initializes.
        producer_id_and_epoch: Option<ProducerIdentity>,
    },
    /// Which broker coordinates this `transactional.id` (FindCoordinator with key type
    /// TRANSACTION); answered with [`ResponseBody::FindCoordinator`].
    FindTxnCoordinator {
        /// The `transactional.id`.
        transactional_id: String,
    },
    /// Add partitions to the producer's open transaction (opening it). With `verify_only`
    /// (KIP-890 part 1, from a partition leader): only ask whether they are in it.
    AddPartitionsToTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer id and epoch.
        producer: ProducerIdentity,
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// Ask, change nothing.
        verify_only: bool,
    },
    /// Add a group's offsets partition to the open transaction (before TxnOffsetCommit).
    AddOffsetsToTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer id and epoch.
        producer: ProducerIdentity,
        /// The consumer group.
        group_id: String,
    },
    /// Commit or abort the open transaction.
    EndTxn {
        /// The `transactional.id`.
        transactional_id: String,
        /// The producer id and epoch.
        producer: ProducerIdentity,
        /// Commit or abort.
        result: TransactionResult,
    },
    /// From a transaction coordinator to a partition leader: append these COMMIT/ABORT
    /// markers.
    WriteTxnMarkers {
        /// One entry per transaction.
        markers: Vec<TxnMarkerEntry>,
    },
    /// A transactional producer's offsets for a group, sent to the group's coordinator
    /// after AddOffsetsToTxn (Kafka's `sendOffsetsToTransaction`): stored with the
    /// transaction, visible once its COMMIT marker is written. With the consumer's member
    /// id and generation (KIP-447), a member fenced from the group cannot commit.
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// Where a partition's log starts or where a consumer's reads of it end (Kafka's
    /// ListOffsets with the EARLIEST and LATEST timestamps), from its leader: how a consumer
    /// without a position finds one (`auto.offset.reset`).
    ListOffsets {
        /// The consumer's `isolation.level`: the latest offset is the high watermark
        /// (`read_uncommitted`) or the last stable offset (`read_committed`).
        isolation_level: IsolationLevel,
        /// What to look up.
        partitions: Vec<ListOffsetsPartition>,
    },
}

/// One partition of a ListOffsets request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsPartition {
    /// The partition.
    pub partition: TopicPartition,
    /// The leader epoch the consumer believes current (KIP-320), if it knows one.
    pub current_leader_epoch: Option<LeaderEpoch>,
    /// Which offset.
    pub spec: OffsetSpec,
}

/// Which offset a ListOffsets asks for (Kafka's special timestamps -2 and -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// Where the consumer's reads end now: the high watermark, or the last stable offset.
    Latest,
}

/// A ListOffsets answer for one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedOffset {
    /// The offset.
    pub offset: Offset,
    /// The leader's epoch.
    pub leader_epoch: LeaderEpoch,
}

/// A TxnOffsetCommit request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOffsetCommitRequest {
    /// The `transactional.id`.
    pub transactional_id: String,
    /// The producer id and epoch of the transaction.
    pub producer: ProducerIdentity,
    /// The consumer's group membership (`group.id`, member id, generation, instance id;
    /// generation -1 and member "" skip the KIP-447 check, as an old client sends).
    pub member: MemberRef,
    /// The offsets: the next offset to consume of each partition.
    pub offsets: Vec<(TopicPartition, CommittedOffset)>,
}

/// One transaction's markers in a WriteTxnMarkers request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMarkerEntry {
    /// The producer id and the epoch the markers carry.
    pub producer: ProducerIdentity,
    /// COMMIT or ABORT.
    pub result: TransactionResult,
    /// The coordinator epoch (fences markers of a deposed coordinator).
    pub coordinator_epoch: LeaderEpoch,
    /// The partitions (all led by the recipient, as the coordinator believes).
    pub partitions: Vec<TopicPartition>,
}

/// A JoinGroup request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupRequest {
    /// The group id.
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The client's id (member ids start with it).
    pub client_id: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `max.poll.interval.ms`: how long the join phase waits for this member.
    pub rebalance_timeout_ms: u64,
    /// "consumer".
    pub protocol_type: String,
    /// The assignors it supports, most preferred first, with its subscription for each.
    pub protocols: Vec<(String, Bytes)>,
}

/// A SyncGroup request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroupRequest {
    /// The member.
    pub member: MemberRef,
    /// From the leader: every member's assignment. Empty from the others.
    pub assignments: Vec<(String, Bytes)>,
}

/// Who a group request comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRef {
    /// The group id.
    pub group_id: String,
    /// The generation the member is in ([`Generation::NONE`]: none).
    pub generation_id: Generation,
    /// The member id ("" for none).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

/// A consumer group's generation (Kafka's `generationId`): the coordinator counts the
/// completed join phases of a group, so a member's requests name the membership they
/// belong to. Serialized as the bare number; the default is 0, a new group's.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Generation(pub i32);

impl Generation {
    /// No generation (Kafka's -1): a member not in the group, or a simple commit.
    pub const NONE: Generation = Generation(-1);

    /// The generation after this one.
    pub fn next(self) -> Generation {
        Generation(self.0 + 1)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An OffsetCommit request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommitRequest {
    /// The committing member (generation -1 and member "" for a simple commit).
    pub member: MemberRef,
    /// The offsets: the next offset to consume of each partition.
    pub offsets: Vec<(TopicPartition, CommittedOffset)>,
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The next offset to consume (the last processed + 1).
    pub offset: Offset,
    /// The leader epoch of the last record consumed, if known (KIP-320).
    pub leader_epoch: Option<LeaderEpoch>,
}

/// A successful JoinGroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupOk {
    /// The new generation.
    pub generation_id: Generation,
    /// The assignor chosen.
    pub protocol_name: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// To the leader only: every member with its subscription for the chosen assignor.
    pub members: Vec<JoinGroupMember>,
}

/// One member of a group as the leader hears of it (Kafka's `JoinGroupResponseMember`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id` if it is a static member (the range assignor orders by it).
    pub group_instance_id: Option<String>,
    /// Its subscription for the chosen assignor.
    pub metadata: Bytes,
}

/// One partition of a Produce request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducePartition {
    /// Where to append.
    pub partition: TopicPartition,
    /// One v2 record batch as the producer encoded it (base offset 0; the leader assigns
    /// offsets and stamps its leader epoch).
    pub batch: Bytes,
}

/// A consumer's `isolation.level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    /// Everything below the HW, transactions open or aborted included (Kafka's default).
    #[default]
    ReadUncommitted,
    /// Only below the last stable offset, with the aborted transactions listed so the
    /// consumer skips their records.
    ReadCommitted,
}

/// An aborted transaction in a `read_committed` fetch's range (Kafka's
/// `FetchResponse.AbortedTransaction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTransaction {
    /// Its producer.
    pub producer_id: crate::log::ProducerId,
    /// The offset of its first batch in the partition.
    pub first_offset: Offset,
}

/// One partition of a Fetch request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchPartition {
    /// What to read.
    pub partition: TopicPartition,
    /// The first offset wanted.
    pub fetch_offset: Offset,
    /// The leader epoch the fetcher believes current (KIP-320); `None` skips the check.
    pub current_leader_epoch: Option<LeaderEpoch>,
    /// A follower: the epoch of the last batch it has (KIP-320 divergence check).
    pub last_fetched_epoch: Option<LeaderEpoch>,
    /// At most this many bytes (at least one batch is returned if any).
    pub max_bytes: u32,
}

/// One partition of an OffsetsForLeaderEpoch request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochQuery {
    /// The partition.
    pub partition: TopicPartition,
    /// The leader epoch the follower believes current (fencing).
    pub current_leader_epoch: LeaderEpoch,
    /// The epoch whose end offset is wanted.
    pub leader_epoch: LeaderEpoch,
}

/// Every response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseBody {
    /// Brokers and partition leadership.
    Metadata {
        /// The controller, if known.
        controller: Option<BrokerId>,
        /// Live brokers.
        brokers: Vec<BrokerId>,
        /// Every partition of the topics asked about.
        partitions: Vec<(TopicPartition, PartitionState)>,
    },
    /// Per partition: the base offset of the appended batch, or why not.
    Produce {
        /// In request order.
        partitions: Vec<(TopicPartition, Result<ProduceOk, KafkaError>)>,
    },
    /// Per partition: records or why not.
    Fetch {
        /// In request order.
        partitions: Vec<(TopicPartition, Result<FetchData, KafkaError>)>,
    },
    /// Per partition: the end offset of the epoch asked about.
    OffsetsForLeaderEpoch {
        /// In request order.
        partitions: Vec<(TopicPartition, Result<EpochEndOffset, KafkaError>)>,
    },
    /// Per partition: applied, or why not (a stale controller or broker epoch fails all).
    LeaderAndIsr {
        /// A request-level error.
        error: Option<KafkaError>,
    },
    /// Applied, or why not.
    UpdateMetadata {
        /// A request-level error.
        error: Option<KafkaError>,
    },
    /// The partition's state after the change, or why not.
    AlterPartition {
        /// The new state, or the error.
        result: Result<PartitionState, KafkaError>,
    },
    /// The producer id handed out.
    InitProducerId {
        /// The identity, or why not.
        result: Result<ProducerIdentity, KafkaError>,
    },
    /// The group's coordinator.
    FindCoordinator {
        /// The broker, or why none.
        result: Result<BrokerId, KafkaError>,
    },
    /// The join phase's outcome.
    JoinGroup {
        /// The generation joined, or why not.
        result: Result<JoinGroupOk, KafkaError>,
        /// With `MEMBER_ID_REQUIRED`: the id to rejoin with.
        member_id: String,
    },
    /// This member's assignment.
    SyncGroup {
        /// The assignment, or why not.
        result: Result<Bytes, KafkaError>,
    },
    /// Alive, or why not (`REBALANCE_IN_PROGRESS`: rejoin).
    Heartbeat {
        /// The error, if any.
        error: Option<KafkaError>,
    },
    /// Left, or why not.
    LeaveGroup {
        /// The error, if any.
        error: Option<KafkaError>,
    },
    /// Per partition: stored, or why not.
    OffsetCommit {
        /// In request order.
        partitions: Vec<(TopicPartition, Option<KafkaError>)>,
    },
    /// The committed offsets (`None`: none committed).
    OffsetFetch {
        /// In request order, or a group-level error.
        result: Result<Vec<(TopicPartition, Option<CommittedOffset>)>, KafkaError>,
    },
    /// The partitions are in the transaction (AddPartitionsToTxn), or why not; with
    /// `verify_only`, per partition: in it, or `TRANSACTION_ABORTABLE`.
    AddPartitionsToTxn {
        /// Per partition (all `Ok` when added), or a request-level error.
        result: Result<Vec<PartitionResult>, KafkaError>,
    },
    /// The offsets partition is in the transaction, or why not.
    AddOffsetsToTxn {
        /// The error, if any.
        error: Option<KafkaError>,
    },
    /// The end is written; the producer id and epoch to use next (bumped under
    /// transaction version 2).
    EndTxn {
        /// The identity, or why not.
        result: Result<ProducerIdentity, KafkaError>,
    },
    /// Per transaction (in request order), per partition: the marker written, or why not.
    WriteTxnMarkers {
        /// In request order.
        markers: Vec<Vec<(TopicPartition, Option<KafkaError>)>>,
    },
    /// Per partition: stored with the transaction, or why not.
    TxnOffsetCommit {
        /// In request order.
        partitions: Vec<(TopicPartition, Option<KafkaError>)>,
    },
    /// Per partition: the offset asked for, or why not.
    ListOffsets {
        /// In request order.
        partitions: Vec<(TopicPartition, Result<ListedOffset, KafkaError>)>,
    },
}

/// A successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceOk {
    /// The offset of the batch's first record (for a duplicate of an earlier batch of an
    /// idempotent producer: where the original went).
    pub base_offset: Offset,
    /// The leader epoch it was appended in.
    pub leader_epoch: LeaderEpoch,
}

/// What a fetch read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchData {
    /// The leader's high watermark.
    pub high_watermark: Offset,
    /// The leader's log start offset.
    pub log_start_offset: Offset,
    /// The leader's epoch.
    pub leader_epoch: LeaderEpoch,
    /// A follower's log diverges: truncate to the end offset of this epoch first (KIP-320).
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Whole v2 batches from the fetch offset (empty if nothing new).
    pub records: Bytes,
    /// The leader's last stable offset (a `read_committed` fetch reads below it).
    pub last_stable_offset: Offset,
    /// `read_committed`: the aborted transactions with records in the returned range, by
    /// first offset (empty for `read_uncommitted`).
    pub aborted_transactions: Vec<AbortedTransaction>,
}

/// An epoch and the offset where it ends (the start of the next epoch, or the LEO).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEndOffset {
    /// The largest epoch ≤ the one asked about that the leader knows (`NONE` if none);
    /// `NONE` too under the legacy v0 answer, which carries an offset only.
    pub leader_epoch: LeaderEpoch,
    /// Where it ends.
    pub end_offset: Offset,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire (postcard) and the readable form (JSON) both give the message back.
    fn round_trips<T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(
        message: &T,
    ) -> String {
        let wire = postcard::to_stdvec(message).unwrap();
        assert_eq!(&postcard::from_bytes::<T>(&wire).unwrap(), message);
        let text = serde_json::to_string(message).unwrap();
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), message);
        text
    }

    #[test]
    fn requests_round_trip_on_the_wire_and_as_json() {
        round_trips(&Request {
            correlation_id: 7,
            body: RequestBody::Fetch {
                replica_id: Some(BrokerId(2)),
                replica_epoch: BrokerEpoch(0x1_0000_0003),
                max_wait_ms: 500,
                partitions: vec![FetchPartition {
                    partition: TopicPartition::new("orders", 1),
                    fetch_offset: Offset(42),
                    current_leader_epoch: Some(LeaderEpoch(3)),
                    last_fetched_epoch: Some(LeaderEpoch(2)),
                    max_bytes: 1 << 20,
                }],
                isolation_level: IsolationLevel::ReadCommitted,
            },
        });
        let batch = Bytes((0..=255).collect());
        let produce = Request {
            correlation_id: 8,
            body: RequestBody::Produce {
                transactional_id: None,
                acks: Acks::All,
                timeout_ms: 30_000,
                partitions: vec![ProducePartition {
                    partition: TopicPartition::new("orders", 0),
                    batch: batch.clone(),
                }],
            },
        };
        let text = round_trips(&produce);
        assert!(text.contains("000102"), "JSON shows a batch as hex: {text}");
        let wire = postcard::to_stdvec(&produce).unwrap();
        assert!(
            wire.len() < batch.0.len() + 32 && wire.windows(256).any(|w| w == &batch.0[..]),
            "the wire carries a batch's bytes as they are ({} bytes)",
            wire.len()
        );
        let text = round_trips(&Response {
            correlation_id: 7,
            body: ResponseBody::Produce {
                partitions: vec![(
                    TopicPartition::new("orders", 1),
                    Err(KafkaError::NotEnoughReplicas),
                )],
            },
        });
        assert!(text.contains("NOT_ENOUGH_REPLICAS"), "{text}");
    }

    #[test]
    fn transaction_apis_round_trip() {
        let producer = ProducerIdentity {
            producer_id: crate::broker::types::ProducerId(4),
            producer_epoch: 2,
        };
        round_trips(&Request {
            correlation_id: 1,
            body: RequestBody::EndTxn {
                transactional_id: "t-1".into(),
                producer,
                result: TransactionResult::Commit,
            },
        });
        let text = round_trips(&Request {
            correlation_id: 2,
            body: RequestBody::WriteTxnMarkers {
                markers: vec![TxnMarkerEntry {
                    producer,
                    result: TransactionResult::Abort,
                    coordinator_epoch: LeaderEpoch(3),
                    partitions: vec![TopicPartition::new("orders", 0)],
                }],
            },
        });
        assert!(text.contains("ABORT"), "{text}");
        round_trips(&Response {
            correlation_id: 2,
            body: ResponseBody::AddPartitionsToTxn {
                result: Ok(vec![(
                    TopicPartition::new("orders", 0),
                    Err(KafkaError::TransactionAbortable),
                )]),
            },
        });
    }
}
