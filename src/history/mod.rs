//! The vocabulary of a run's record: what nodes announce ([`Event`], a typed
//! [`Announcement`]) and what clients were told ([`HistoryEntry`], [`Op`]), plus a
//! [`Crash`]. Plain serde data, nothing else.
//!
//! Owns: the shape of `events.jsonl` and `history.jsonl`. Everything that writes a record
//! (node shells, the world) and everything that reads one (checkers, reports) speaks these
//! types; none of them knows who wrote or who reads. It sits directly above the protocol
//! cores because the record speaks their vocabulary (topic-partitions, Kafka errors,
//! ZooKeeper ops and results) and below every layer that produces or judges a record.

mod events;

pub use compact_str::CompactString;
pub use events::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// One client operation or outcome in the history.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    /// Simulated time, microseconds since the run started.
    pub at_us: u64,
    /// The client node.
    pub node: NodeName,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
}

impl Clone for HistoryEntry {
    fn clone(&self) -> Self {
        HistoryEntry {
            at_us: self.at_us,
            node: self.node.share(),
            op: self.op.clone(),
        }
    }
}

/// The name of the node an entry is about (`broker-1`, `producer-2`, `world`), shared: the
/// recorder gives every entry of one node the same string (one pointer per entry instead
/// of a string each). It reads as a `String` (`Deref`, comparisons with text, `Display`)
/// and is written as a plain JSON string.
///
/// It is deliberately not `Clone`: `name.clone()` is the `String` it derefs to, so code
/// that keeps a node name as a `String` stays as it is; [`NodeName::share`] copies the
/// pointer.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<String>);

impl NodeName {
    /// A name of its own (not shared with any other).
    pub fn new(name: impl Into<String>) -> NodeName {
        NodeName(Arc::new(name.into()))
    }

    /// Another handle on the same string.
    pub fn share(&self) -> NodeName {
        NodeName(Arc::clone(&self.0))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for NodeName {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for NodeName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeName {
    fn from(name: &str) -> Self {
        NodeName::new(name)
    }
}

impl From<String> for NodeName {
    fn from(name: String) -> Self {
        NodeName::new(name)
    }
}

impl From<&String> for NodeName {
    fn from(name: &String) -> Self {
        NodeName::new(name.as_str())
    }
}

macro_rules! node_name_eq {
    ($($other:ty),*) => {
        $(
            impl PartialEq<$other> for NodeName {
                fn eq(&self, other: &$other) -> bool {
                    self.as_str() == AsRef::<str>::as_ref(other)
                }
            }
            impl PartialEq<NodeName> for $other {
                fn eq(&self, other: &NodeName) -> bool {
                    AsRef::<str>::as_ref(self) == other.as_str()
                }
            }
        )*
    };
}

node_name_eq!(str, &str, String);

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(NodeName::new)
    }
}

/// Client operations. An invocation without an outcome is indeterminate: the client died
/// (or the run ended) before it learned what happened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// A writer is about to append the record `value` to its log.
    Append {
        /// The record's value: unique in the run.
        value: CompactString,
    },
    /// The append returned: the writer acknowledges `value` at `offset`.
    AppendOk {
        /// The record's value.
        value: CompactString,
        /// Where the log put it.
        offset: u64,
    },
    /// A writer read its own log from `from` and saw these `(offset, value)` records.
    Read {
        /// The first offset asked for.
        from: u64,
        /// What the read returned.
        records: Vec<(u64, CompactString)>,
    },
    /// An ensemble client process started (fresh memory: no session, no zxid seen).
    ZkStart {
        /// Its incarnation.
        incarnation: u64,
    },
    /// An ensemble client sent `op` in its session.
    ZkCall {
        /// The session.
        session: u64,
        /// The request id.
        xid: u64,
        /// The operation (boxed, as the other rare large fields: every entry is as large
        /// as the largest variant, and sends are most of them).
        request: Box<crate::zk::Op>,
    },
    /// How the client's request `xid` ended.
    ZkReturn {
        /// The session.
        session: u64,
        /// The request id.
        xid: u64,
        /// The outcome.
        outcome: Box<ZkOutcome>,
    },
    /// The client's session opened, expired or was closed.
    ZkSession {
        /// The session.
        session: u64,
        /// `open`, `expired` or `closed` (boxed, as the other rare large fields).
        event: Box<str>,
        /// The server it opened on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<u64>,
        /// The server's zxid when it opened.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zxid: Option<u64>,
    },
    /// A watch fired at the client.
    ZkWatch {
        /// The session.
        session: u64,
        /// The server's zxid when it fired.
        zxid: u64,
        /// What happened.
        event: crate::zk::WatchedEvent,
    },
    /// A producer or consumer process started (fresh memory: no positions, no producer id).
    ClientStart {
        /// Its incarnation.
        incarnation: u64,
    },
    /// A producer handed a record to its client library (`send`). Values are unique in
    /// the run: `<producer>-<incarnation>-<n>`, `n` counting sends from 0.
    Send {
        /// The record's value.
        value: CompactString,
        /// Its key, if the workload uses keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<CompactString>,
        /// The topic.
        topic: crate::broker::topic::Topic,
        /// The producer's `acks`.
        acks: crate::broker::Acks,
        /// The producer has `enable.idempotence`.
        idempotent: bool,
    },
    /// How a send ended, as the producer's callback was told.
    SendReturn {
        /// The record's value.
        value: CompactString,
        /// The outcome.
        outcome: SendOutcome,
    },
    /// A consumer's assignment changed (or it started): from here on it reads each of
    /// these partitions from the given position.
    Assign {
        /// `(partition, position)` pairs.
        partitions: Vec<(crate::broker::TopicPartition, u64)>,
    },
    /// A consumer's poll returned these records of one partition, in order.
    Poll {
        /// The partition.
        partition: crate::broker::TopicPartition,
        /// `(offset, value)` of each record.
        records: Vec<(u64, CompactString)>,
    },
    /// A group member's assignment changed: from here on it owns exactly these partitions
    /// (and the awaiting ones), reading each from its position.
    GroupAssign {
        /// `group.id` (boxed, as the other rare large fields: see [`Op::ZkCall`]).
        group: Box<str>,
        /// The member id.
        member: Box<str>,
        /// The generation of the last SyncGroup it completed: the one it owns them in.
        generation: crate::broker::proto::Generation,
        /// `(partition, position)` pairs.
        partitions: Box<Vec<(crate::broker::TopicPartition, u64)>>,
        /// Partitions it owns too, whose position is not known yet (their committed offset
        /// is being fetched; a later entry lists them with it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        awaiting: Box<Vec<crate::broker::TopicPartition>>,
    },
    /// How a group member's offset commit ended.
    Commit {
        /// `group.id` (boxed, as the other rare large fields: see [`Op::ZkCall`]).
        group: Box<str>,
        /// The member id it committed as.
        member: Box<str>,
        /// The generation it committed in.
        generation: crate::broker::proto::Generation,
        /// `(partition, next offset to read)` pairs.
        offsets: Box<Vec<(crate::broker::TopicPartition, u64)>>,
        /// When the member sent it (simulated ms); the entry's own time is the answer's.
        sent_ms: u64,
        /// `None`: stored; `NETWORK_EXCEPTION`: no answer (it may have been stored).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<crate::broker::KafkaError>,
    },
    /// A transactional producer began a transaction (Kafka's `beginTransaction`). Its
    /// records are the producer's `Send`s after this entry and before its next `TxnEnd`
    /// (or the `TxnEndReturn` of a fatal error); their `SendReturn`s may come later.
    TxnBegin {
        /// The producer's `transactional.id` (boxed, as the other rare large fields: see
        /// [`Op::ZkCall`]).
        transactional_id: Box<str>,
        /// The producer id and epoch its batches carry.
        producer: crate::broker::ProducerIdentity,
    },
    /// The producer asked to end its open transaction (`commitTransaction` or
    /// `abortTransaction`): no `Send` of the transaction follows.
    TxnEnd {
        /// Commit (else abort).
        commit: bool,
    },
    /// How the end of the transaction returned. `None`: committed or aborted as the last
    /// `TxnEnd` asked. An error after a commit was asked: the commit failed (the producer
    /// aborts next, with a `TxnEnd` of its own); `PRODUCER_FENCED` and the other fatal
    /// errors may also come without a `TxnEnd`, ending the transaction wherever it was (the
    /// producer starts over with a new epoch, which makes the coordinator abort whatever
    /// it still had open). A commit never returned is indeterminate.
    TxnEndReturn {
        /// Why the end failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<crate::broker::KafkaError>,
    },
}

/// How an ensemble client's request ended, as the client saw it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ZkOutcome {
    /// The server answered with success, at `zxid`.
    Ok {
        /// The zxid of the answer.
        zxid: u64,
        /// The result.
        result: crate::zk::OpResult,
    },
    /// The server answered with an error, at `zxid`: the operation did not happen.
    Fail {
        /// The zxid of the answer.
        zxid: u64,
        /// The error.
        error: crate::zk::OpError,
    },
    /// No answer: it may or may not have happened (`CONNECTIONLOSS`, `SESSIONEXPIRED`).
    Unknown {
        /// Why the answer never came.
        error: crate::zk::ZkError,
    },
    /// Never sent (no session): it did not happen.
    NotSent {
        /// Why.
        error: crate::zk::ZkError,
    },
}

/// How a producer's send ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SendOutcome {
    /// Acknowledged: the record is at `offset` of `partition`.
    Ok {
        /// Where it went.
        partition: crate::broker::TopicPartition,
        /// Its offset.
        offset: u64,
    },
    /// acks=0: sent, never acknowledged.
    Sent {
        /// Where it went.
        partition: crate::broker::TopicPartition,
    },
    /// Failed after retries (or with a non-retriable error). The record may still be in
    /// the log (`NOT_ENOUGH_REPLICAS_AFTER_APPEND`, a timeout): only its absence from the
    /// acknowledged set is certain.
    Fail {
        /// The partition it was last sent to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<crate::broker::TopicPartition>,
        /// The last error.
        error: crate::broker::KafkaError,
    },
}

/// A node panicked: a broken invariant, reported with the seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    /// The node whose task panicked (`world` for the simulation itself).
    pub node: String,
    /// The panic message and location.
    pub message: String,
    /// Simulated time of the panic, microseconds.
    pub at_us: u64,
}

/// The key of a processor's output record: where its input record was,
/// `<topic>/<partition>@<offset>` (the processor writes it, the `duplicate` check reads it).
pub fn input_key(partition: &crate::broker::TopicPartition, offset: u64) -> CompactString {
    let mut key = CompactString::with_capacity(partition.topic.len() + 16);
    key.push_str(&partition.topic);
    key.push('/');
    key.push_str(&partition.partition.to_string());
    key.push('@');
    key.push_str(&offset.to_string());
    key
}

/// The input place an output record's key names, if it is one.
pub fn parse_input_key(key: &str) -> Option<(crate::broker::TopicPartition, u64)> {
    let (tp, offset) = key.rsplit_once('@')?;
    let (topic, partition) = tp.rsplit_once('/')?;
    Some((
        crate::broker::TopicPartition::new(topic, partition.parse().ok()?),
        offset.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keys_read_back() {
        let tp = crate::broker::TopicPartition::new("orders", 3);
        let key = input_key(&tp, 17);
        assert_eq!(key, "orders/3@17");
        assert_eq!(parse_input_key(&key), Some((tp, 17)));
        assert_eq!(parse_input_key("k7"), None);
        assert_eq!(parse_input_key("a/b@1"), None);
    }

    #[test]
    fn history_lines_round_trip() {
        let entry = HistoryEntry {
            at_us: 5,
            node: "writer-1".into(),
            op: Op::Read {
                from: 3,
                records: vec![(3, "a".into()), (4, "b".into())],
            },
        };
        let line = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            line,
            r#"{"at_us":5,"node":"writer-1","op":"read","from":3,"records":[[3,"a"],[4,"b"]]}"#
        );
        assert_eq!(serde_json::from_str::<HistoryEntry>(&line).unwrap(), entry);
    }

    #[test]
    fn transaction_entries_read_as_they_are_written() {
        let lines = [
            (
                Op::TxnBegin {
                    transactional_id: "pay-1".into(),
                    producer: crate::broker::ProducerIdentity {
                        producer_id: crate::broker::ProducerId(7),
                        producer_epoch: 2,
                    },
                },
                r#"{"at_us":5,"node":"producer-1","op":"txn-begin","transactional_id":"pay-1","producer":{"producer_id":7,"producer_epoch":2}}"#,
            ),
            (
                Op::TxnEnd { commit: true },
                r#"{"at_us":5,"node":"producer-1","op":"txn-end","commit":true}"#,
            ),
            (
                Op::TxnEndReturn { error: None },
                r#"{"at_us":5,"node":"producer-1","op":"txn-end-return"}"#,
            ),
            (
                Op::TxnEndReturn {
                    error: Some(crate::broker::KafkaError::ProducerFenced),
                },
                r#"{"at_us":5,"node":"producer-1","op":"txn-end-return","error":"PRODUCER_FENCED"}"#,
            ),
        ];
        for (op, line) in lines {
            let entry = HistoryEntry {
                at_us: 5,
                node: "producer-1".into(),
                op,
            };
            assert_eq!(serde_json::to_string(&entry).unwrap(), line);
            assert_eq!(serde_json::from_str::<HistoryEntry>(line).unwrap(), entry);
        }
    }

    /// A run records a few hundred thousand entries, most of them sends and their returns,
    /// and every entry is as large as the largest variant: a new large field belongs in a
    /// box (as the ensemble's requests and outcomes are), or the reference's memory grows.
    #[test]
    fn an_entry_stays_small() {
        assert!(
            std::mem::size_of::<Op>() <= 64,
            "{}",
            std::mem::size_of::<Op>()
        );
        assert!(
            std::mem::size_of::<HistoryEntry>() <= 80,
            "{}",
            std::mem::size_of::<HistoryEntry>()
        );
    }

    /// A run announces tens of thousands of events, nearly all of them the broker's (its
    /// `hw` above all), and every event is as large as the largest inline announcement: a
    /// rare announcer's event belongs in a box (as the shells' and the world's are).
    #[test]
    fn an_event_stays_small() {
        assert!(
            std::mem::size_of::<Event>() <= 80,
            "{}",
            std::mem::size_of::<Event>()
        );
    }
}
