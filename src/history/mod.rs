//! The vocabulary of a run's record: what nodes announce ([`Event`], a typed
//! [`Announcement`]) and what clients were told ([`HistoryEntry`], [`Op`]), plus a
//! [`Crash`]. Plain serde data, and the direct writers of their JSON lines
//! ([`HistoryEntry::write_json_line`], [`Event::write_json_line`]: serde's bytes for the
//! hot entries without serde's cost, tests holding the two equal).
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

impl HistoryEntry {
    /// Appends the entry's line of `history.jsonl` (without its newline) to `out`: the bytes
    /// its `Serialize` writes (`at_us`, `node`, then the operation's own fields, `op`
    /// first), without serde's flattening, which costs more than the rest of the line.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"at_us":"#);
        json_u64(out, self.at_us);
        out.extend_from_slice(br#","node":"#);
        json_str(out, &self.node);
        // The hot operations (a producer's sends and their returns, a consumer's polls:
        // nearly every entry of a run) are written field by field, in serde's order.
        match &self.op {
            Op::Send {
                value,
                key,
                topic,
                acks,
                idempotent,
            } => {
                out.extend_from_slice(br#","op":"send","value":"#);
                json_str(out, value);
                if let Some(key) = key {
                    out.extend_from_slice(br#","key":"#);
                    json_str(out, key);
                }
                out.extend_from_slice(br#","topic":"#);
                json_str(out, topic);
                out.extend_from_slice(br#","acks":"#);
                let _ = serde_json::to_writer(&mut *out, acks);
                out.extend_from_slice(if *idempotent {
                    br#","idempotent":true}"#
                } else {
                    br#","idempotent":false}"#
                });
            }
            Op::SendReturn { value, outcome } => {
                out.extend_from_slice(br#","op":"send-return","value":"#);
                json_str(out, value);
                out.extend_from_slice(br#","outcome":{"type":"#);
                match outcome {
                    SendOutcome::Ok { partition, offset } => {
                        out.extend_from_slice(br#""ok","partition":"#);
                        json_partition(out, partition);
                        out.extend_from_slice(br#","offset":"#);
                        json_u64(out, *offset);
                        out.push(b'}');
                    }
                    SendOutcome::Sent { partition } => {
                        out.extend_from_slice(br#""sent","partition":"#);
                        json_partition(out, partition);
                        out.push(b'}');
                    }
                    SendOutcome::Fail { partition, error } => {
                        out.extend_from_slice(br#""fail""#);
                        if let Some(partition) = partition {
                            out.extend_from_slice(br#","partition":"#);
                            json_partition(out, partition);
                        }
                        out.extend_from_slice(br#","error":"#);
                        let _ = serde_json::to_writer(&mut *out, error);
                        out.push(b'}');
                    }
                }
                out.push(b'}');
            }
            Op::Poll { partition, records } => {
                out.extend_from_slice(br#","op":"poll","partition":"#);
                json_partition(out, partition);
                out.extend_from_slice(br#","records":["#);
                for (i, (offset, value)) in records.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'[');
                    json_u64(out, *offset);
                    out.push(b',');
                    json_str(out, value);
                    out.push(b']');
                }
                out.extend_from_slice(b"]}");
            }
            op => {
                let start = out.len();
                let _ = serde_json::to_writer(&mut *out, op);
                // The operation is an object (`{"op":..}`): its fields continue this one.
                debug_assert_eq!(out.get(start), Some(&b'{'));
                out[start] = b',';
            }
        }
    }
}

/// `text` as a JSON string: as it is between quotes when nothing in it needs escaping
/// (names and values almost never do), else as serde_json escapes it.
pub(crate) fn json_str(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Whether JSON escapes something in `text` (a control character, `"` or `\\`).
pub(crate) fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// A partition as its `Serialize` writes it: `{"topic":..,"partition":..}`.
fn json_partition(out: &mut Vec<u8>, tp: &crate::broker::TopicPartition) {
    out.extend_from_slice(br#"{"topic":"#);
    json_str(out, &tp.topic);
    out.extend_from_slice(br#","partition":"#);
    json_u64(out, u64::from(tp.partition));
    out.push(b'}');
}

/// `n` in decimal, without `fmt`'s machinery.
pub(crate) fn json_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]).as_bytes());
}

/// `n` in decimal (what `format!` writes), spelled into `digits` without `fmt`'s
/// machinery: the history writes one or more for nearly every entry.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[at..]).expect("ASCII digits")
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

    /// The line `history.jsonl` gets ([`HistoryEntry::write_json_line`]).
    fn direct_line(entry: &HistoryEntry) -> String {
        let mut out = Vec::new();
        entry.write_json_line(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The direct writer gives serde's bytes for every kind of operation the swarm's
    /// runs record (compared over whole recorded runs in tests/cli.rs too).
    #[test]
    fn direct_lines_are_serdes() {
        let tp = crate::broker::TopicPartition::new("orders", 2);
        let odd = crate::broker::TopicPartition::new("odd\u{1}\"topic", 0);
        let ops = [
            Op::Send {
                value: "p-1-0".into(),
                key: Some("k\\7".into()),
                topic: tp.topic,
                acks: crate::broker::Acks::All,
                idempotent: true,
            },
            Op::Send {
                value: "p-1-1".into(),
                key: None,
                topic: odd.topic,
                acks: crate::broker::Acks::None,
                idempotent: false,
            },
            Op::SendReturn {
                value: "p-1-0".into(),
                outcome: SendOutcome::Ok {
                    partition: tp,
                    offset: 17,
                },
            },
            Op::SendReturn {
                value: "p-1-1".into(),
                outcome: SendOutcome::Sent { partition: odd },
            },
            Op::SendReturn {
                value: "p-1-2".into(),
                outcome: SendOutcome::Fail {
                    partition: Some(tp),
                    error: crate::broker::KafkaError::NotEnoughReplicas,
                },
            },
            Op::SendReturn {
                value: "p-1-3\n".into(),
                outcome: SendOutcome::Fail {
                    partition: None,
                    error: crate::broker::KafkaError::RequestTimedOut,
                },
            },
            Op::Poll {
                partition: tp,
                records: vec![(3, "a".into()), (4, "b\u{7f}\"".into())],
            },
            Op::Poll {
                partition: odd,
                records: vec![],
            },
            Op::Append {
                value: "v\"1".into(),
            },
            Op::Read {
                from: 0,
                records: vec![],
            },
            Op::TxnEnd { commit: false },
            Op::TxnEndReturn { error: None },
        ];
        for (i, op) in ops.into_iter().enumerate() {
            let entry = HistoryEntry {
                at_us: [0, 9, 10, 1_000_001, u64::MAX][i % 5],
                node: if i % 2 == 0 {
                    "node \"x\""
                } else {
                    "producer-1"
                }
                .into(),
                op,
            };
            assert_eq!(direct_line(&entry), serde_json::to_string(&entry).unwrap());
        }
    }

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
        assert_eq!(direct_line(&entry), line);
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
            assert_eq!(direct_line(&entry), line);
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
