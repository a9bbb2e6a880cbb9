//! The brokers' vocabulary: broker ids, the controller, broker and partition epochs,
//! topic-partitions, acks, producer identities, partition state and Kafka's error names.
//!
//! Owns: the data types every part of the broker layer shares — replica and controller
//! cores, the wire protocol, the clients, the shells and the checkers. Names follow Kafka's
//! (`NOT_LEADER_OR_FOLLOWER`, `leader_epoch`, `isr`, ...), one meaning each.

pub use super::topic::Topic;
use crate::log::LeaderEpoch;
pub use crate::log::ProducerId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A broker (Kafka's `broker.id`), 1-based: `broker-1` is `BrokerId(1)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct BrokerId(pub u32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The controller epoch (Kafka's `controllerEpoch`): the count of controller elections,
/// kept in `/controller_epoch`; bumped by each one, so a newer controller fences an older.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ControllerEpoch(pub u32);

impl ControllerEpoch {
    /// The epoch after this one (what the next election writes).
    pub fn next(self) -> ControllerEpoch {
        ControllerEpoch(self.0 + 1)
    }
}

impl fmt::Display for ControllerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A broker epoch (Kafka's `brokerEpoch`, KIP-380): the czxid of the broker's registration
/// znode, new in each ensemble session, so requests aimed at an earlier one are fenced.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct BrokerEpoch(pub i64);

impl fmt::Display for BrokerEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition epoch (Kafka's `partitionEpoch`, the ZooKeeper mode `zkVersion`): the version
/// of a partition's state znode, bumped by every write of it, so stale ISR updates are
/// fenced.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct PartitionEpoch(pub i32);

impl fmt::Display for PartitionEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One partition of a topic, written `topic/partition` in reports and targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic's name, interned (partitions are keys of the hottest maps: equal names
    /// compare as one pointer).
    pub topic: Topic,
    /// The partition's index, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic/partition`.
    pub fn new(topic: impl Into<Topic>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition's directory name in a broker's log dir (Kafka's `<topic>-<partition>`).
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Serde for a [`TopicPartition`] written as its text `topic/partition`, the way announced
/// events name partitions: `#[serde(with = "crate::broker::types::tp_text")]`.
pub mod tp_text {
    use super::TopicPartition;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    /// Writes `topic/partition`.
    pub fn serialize<S: Serializer>(tp: &TopicPartition, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(tp)
    }

    /// Reads `topic/partition` (the topic may itself hold a `/`; the last one splits).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TopicPartition, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| D::Error::custom(format!("not a topic/partition: {text}")))
    }

    /// `topic/partition` parsed.
    pub fn parse(text: &str) -> Option<TopicPartition> {
        let (topic, p) = text.rsplit_once('/')?;
        Some(TopicPartition::new(topic, p.parse().ok()?))
    }
}

/// Serde for `(partition, offset)` pairs written `["topic/partition", offset]`.
pub mod tp_offsets_text {
    use super::{tp_text, TopicPartition};
    use serde::{de::Error, ser::SerializeSeq, Deserialize, Deserializer, Serializer};

    /// Writes `[["topic/partition", offset], ...]`.
    pub fn serialize<S: Serializer>(
        pairs: &[(TopicPartition, u64)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(pairs.len()))?;
        for (tp, offset) in pairs {
            seq.serialize_element(&(tp.to_string(), offset))?;
        }
        seq.end()
    }

    /// Reads `[["topic/partition", offset], ...]`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(TopicPartition, u64)>, D::Error> {
        Vec::<(String, u64)>::deserialize(d)?
            .into_iter()
            .map(|(text, offset)| {
                tp_text::parse(&text)
                    .map(|tp| (tp, offset))
                    .ok_or_else(|| D::Error::custom(format!("not a topic/partition: {text}")))
            })
            .collect()
    }
}

/// The producer's `acks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=0`: no response at all.
    None,
    /// `acks=1`: the leader's local append.
    Leader,
    /// `acks=all` (-1): every ISR member has it (the HW passed it).
    All,
}

/// An idempotent producer's identity: producer id and epoch (KIP-98).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProducerIdentity {
    /// The producer id the cluster handed out.
    pub producer_id: ProducerId,
    /// Its epoch.
    pub producer_epoch: i16,
}

/// A partition's leadership as the controller decided it: the content of the
/// `/brokers/topics/<t>/partitions/<p>/state` znode, plus its znode version (the partition
/// epoch, which fences ISR updates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The leader; `None` while no ISR member is alive (offline).
    pub leader: Option<BrokerId>,
    /// Bumped by every leader change.
    pub leader_epoch: LeaderEpoch,
    /// The in-sync replicas (the leader among them).
    pub isr: Vec<BrokerId>,
    /// Eligible leader replicas (KIP-966): replicas out of the ISR that still hold every
    /// committed record, because they left it when it fell below `min.insync.replicas` and
    /// the HW has not moved since. Empty whenever |ISR| ≥ min ISR.
    #[serde(default)]
    pub elr: Vec<BrokerId>,
    /// The epoch of the controller that wrote it.
    pub controller_epoch: ControllerEpoch,
    /// The state znode's version: bumped by every write, leader or ISR.
    pub partition_epoch: PartitionEpoch,
    /// Every replica, in assignment order (the preferred leader first).
    pub replicas: Vec<BrokerId>,
}

/// Kafka's error codes, as the wire protocol and the history carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KafkaError {
    /// This broker is not the partition's leader (or, for a follower fetch, not a replica).
    NotLeaderOrFollower,
    /// acks=all and the ISR is smaller than `min.insync.replicas`: nothing was appended.
    NotEnoughReplicas,
    /// acks=all: appended, but the ISR shrank below `min.insync.replicas` before the HW
    /// passed it. The record stays in the log.
    NotEnoughReplicasAfterAppend,
    /// The request's own timeout passed (e.g. the HW did not pass an acks=all batch).
    RequestTimedOut,
    /// The request carried a leader epoch older than the replica's (KIP-320).
    FencedLeaderEpoch,
    /// The request carried a leader epoch newer than the replica's.
    UnknownLeaderEpoch,
    /// The fetch offset is outside the log.
    OffsetOutOfRange,
    /// An idempotent batch's sequence is not the next one expected.
    OutOfOrderSequenceNumber,
    /// The producer epoch is older than the one the broker knows.
    InvalidProducerEpoch,
    /// The broker has no state for this producer id.
    UnknownProducerId,
    /// A controller request carried an older controller epoch than the newest seen.
    StaleControllerEpoch,
    /// A controller request was aimed at an earlier incarnation of this broker (KIP-380).
    StaleBrokerEpoch,
    /// No such topic or partition.
    UnknownTopicOrPartition,
    /// No leader right now.
    LeaderNotAvailable,
    /// The request needs the active controller, and this broker is not it.
    NotController,
    /// The leader's view of the partition epoch is stale (AlterPartition).
    InvalidUpdateVersion,
    /// A batch failed validation (CRC, size, offsets).
    CorruptMessage,
    /// The log could not be written (disk error).
    KafkaStorageError,
    /// The connection broke before the answer: the outcome is unknown.
    NetworkException,
    /// No coordinator for the group right now (its offsets partition has no leader).
    CoordinatorNotAvailable,
    /// This broker does not coordinate the group (it does not lead its offsets partition).
    NotCoordinator,
    /// This broker coordinates the group but is still loading it from the log.
    CoordinatorLoadInProgress,
    /// A new member's first JoinGroup: rejoin with the member id in the answer (KIP-394).
    MemberIdRequired,
    /// The member is not (or no longer) in the group.
    UnknownMemberId,
    /// The request's generation is not the group's.
    IllegalGeneration,
    /// The group is rebalancing: rejoin.
    RebalanceInProgress,
    /// Another member joined with this `group.instance.id` (KIP-345).
    FencedInstanceId,
    /// The member's protocols share none with the group's.
    InconsistentGroupProtocol,
    /// The session timeout is outside the broker's allowed range.
    InvalidSessionTimeout,
    /// The request is not allowed in the producer's transaction state: e.g. a
    /// non-transactional batch from a producer with a transaction open on the partition.
    InvalidTxnState,
    /// The transaction coordinator is still completing the producer's previous transaction.
    ConcurrentTransactions,
    /// A newer instance with the same `transactional.id` has a newer producer epoch.
    ProducerFenced,
    /// A transaction marker came from an older coordinator epoch than the partition has seen.
    TransactionCoordinatorFenced,
    /// The producer id does not belong to the `transactional.id`.
    InvalidProducerIdMapping,
    /// `transaction.timeout.ms` is above the broker's `transaction.max.timeout.ms`.
    InvalidTransactionTimeout,
    /// An offset fetch that requires stable offsets found a pending transactional commit.
    UnstableOffsetCommit,
    /// A batch the broker refuses whatever its bytes: e.g. a control batch from a client.
    InvalidRecord,
    /// The transaction cannot go on but may be aborted (KIP-890: e.g. a partition written
    /// without having been added to it).
    TransactionAbortable,
    /// The request is malformed (e.g. an empty `transactional.id`).
    InvalidRequest,
    /// Client-side, never on the wire from a broker (Kafka's `TransactionAbortedException`):
    /// the producer aborted the transaction before this record's batch was sent.
    TransactionAborted,
    /// A new leader cannot answer ListOffsets yet: its high watermark has not reached the
    /// start of its epoch (it would name an offset below what the old leader served).
    OffsetNotAvailable,
}

impl KafkaError {
    /// Kafka's name, e.g. `NOT_LEADER_OR_FOLLOWER`.
    pub fn name(self) -> &'static str {
        match self {
            KafkaError::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            KafkaError::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            KafkaError::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            KafkaError::RequestTimedOut => "REQUEST_TIMED_OUT",
            KafkaError::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            KafkaError::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            KafkaError::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            KafkaError::OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            KafkaError::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            KafkaError::UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            KafkaError::StaleControllerEpoch => "STALE_CONTROLLER_EPOCH",
            KafkaError::StaleBrokerEpoch => "STALE_BROKER_EPOCH",
            KafkaError::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            KafkaError::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            KafkaError::NotController => "NOT_CONTROLLER",
            KafkaError::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            KafkaError::CorruptMessage => "CORRUPT_MESSAGE",
            KafkaError::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            KafkaError::NetworkException => "NETWORK_EXCEPTION",
            KafkaError::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            KafkaError::NotCoordinator => "NOT_COORDINATOR",
            KafkaError::CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            KafkaError::MemberIdRequired => "MEMBER_ID_REQUIRED",
            KafkaError::UnknownMemberId => "UNKNOWN_MEMBER_ID",
            KafkaError::IllegalGeneration => "ILLEGAL_GENERATION",
            KafkaError::RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            KafkaError::FencedInstanceId => "FENCED_INSTANCE_ID",
            KafkaError::InconsistentGroupProtocol => "INCONSISTENT_GROUP_PROTOCOL",
            KafkaError::InvalidSessionTimeout => "INVALID_SESSION_TIMEOUT",
            KafkaError::InvalidTxnState => "INVALID_TXN_STATE",
            KafkaError::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            KafkaError::ProducerFenced => "PRODUCER_FENCED",
            KafkaError::TransactionCoordinatorFenced => "TRANSACTION_COORDINATOR_FENCED",
            KafkaError::InvalidProducerIdMapping => "INVALID_PRODUCER_ID_MAPPING",
            KafkaError::InvalidTransactionTimeout => "INVALID_TRANSACTION_TIMEOUT",
            KafkaError::UnstableOffsetCommit => "UNSTABLE_OFFSET_COMMIT",
            KafkaError::InvalidRecord => "INVALID_RECORD",
            KafkaError::TransactionAbortable => "TRANSACTION_ABORTABLE",
            KafkaError::InvalidRequest => "INVALID_REQUEST",
            KafkaError::TransactionAborted => "TRANSACTION_ABORTED",
            KafkaError::OffsetNotAvailable => "OFFSET_NOT_AVAILABLE",
        }
    }

    /// A producer retries these (Kafka's `RetriableException`s).
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            KafkaError::NotLeaderOrFollower
                | KafkaError::NotEnoughReplicas
                | KafkaError::NotEnoughReplicasAfterAppend
                | KafkaError::RequestTimedOut
                | KafkaError::FencedLeaderEpoch
                | KafkaError::UnknownLeaderEpoch
                | KafkaError::UnknownTopicOrPartition
                | KafkaError::LeaderNotAvailable
                | KafkaError::CorruptMessage
                | KafkaError::KafkaStorageError
                | KafkaError::NetworkException
                | KafkaError::CoordinatorNotAvailable
                | KafkaError::NotCoordinator
                | KafkaError::CoordinatorLoadInProgress
                | KafkaError::ConcurrentTransactions
                | KafkaError::UnstableOffsetCommit
                | KafkaError::OffsetNotAvailable
        )
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Raw bytes (encoded record batches, group metadata). On the wire (a binary format) they
/// travel as they are; in a human-readable format (JSON records, tests) as a lowercase hex
/// string, half the size of serde's array of numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_bytes(&self.0);
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(self.0.len() * 2);
        for b in &self.0 {
            text.push(HEX[(b >> 4) as usize] as char);
            text.push(HEX[(b & 15) as usize] as char);
        }
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return d.deserialize_byte_buf(RawBytes).map(Bytes);
        }
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(serde::de::Error::custom("not a lowercase hex digit")),
        };
        let text = text.as_bytes();
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        text.chunks(2)
            .map(|pair| Ok((digit(pair[0])? << 4) | digit(pair[1])?))
            .collect::<Result<Vec<u8>, D::Error>>()
            .map(Bytes)
    }
}

/// Reads a binary format's byte string.
struct RawBytes;

impl serde::de::Visitor<'_> for RawBytes {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_as_hex() {
        let bytes = Bytes(vec![0, 1, 0xab, 0xff, 0x10]);
        let text = serde_json::to_string(&bytes).unwrap();
        assert_eq!(text, "\"0001abff10\"");
        assert_eq!(serde_json::from_str::<Bytes>(&text).unwrap(), bytes);
        assert!(serde_json::from_str::<Bytes>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Bytes>("\"zz\"").is_err());
    }

    #[test]
    fn errors_have_kafkas_names_on_the_wire() {
        let text = serde_json::to_string(&KafkaError::NotLeaderOrFollower).unwrap();
        assert_eq!(text, "\"NOT_LEADER_OR_FOLLOWER\"");
        assert_eq!(
            KafkaError::NotEnoughReplicasAfterAppend.to_string(),
            "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
        );
        assert!(!KafkaError::OutOfOrderSequenceNumber.is_retriable());
    }

    #[test]
    fn transaction_errors_are_named_and_classified_as_kafka_does() {
        for (error, retriable) in [
            (KafkaError::InvalidTxnState, false),
            (KafkaError::ConcurrentTransactions, true),
            (KafkaError::ProducerFenced, false),
            (KafkaError::TransactionCoordinatorFenced, false),
            (KafkaError::InvalidProducerIdMapping, false),
            (KafkaError::InvalidTransactionTimeout, false),
            (KafkaError::UnstableOffsetCommit, true),
            (KafkaError::InvalidRecord, false),
            (KafkaError::TransactionAborted, false),
        ] {
            let text = serde_json::to_string(&error).unwrap();
            assert_eq!(text, format!("\"{}\"", error.name()));
            assert_eq!(error.is_retriable(), retriable, "{error}");
        }
        // Added after every existing variant: the wire (postcard's variant index) of the
        // errors sent today is unchanged.
        let wire = postcard::to_stdvec(&KafkaError::InvalidSessionTimeout).unwrap();
        assert_eq!(wire, [28]);
        let wire = postcard::to_stdvec(&KafkaError::UnstableOffsetCommit).unwrap();
        assert_eq!(wire, [35]);
    }

    #[test]
    fn partitions_print_as_topic_slash_index() {
        let tp = TopicPartition::new("orders", 2);
        assert_eq!(tp.to_string(), "orders/2");
        assert_eq!(tp.dir_name(), "orders-2");
    }
}
