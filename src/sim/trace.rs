//! The record of a run: protocol and fault events, the client history, and the trace hash.
//!
//! Owns: [`Recorder`], shared by the world and every node shell of one run. Entries are kept
//! in the order they happen on the simulated timeline, stamped with simulated time. The
//! trace hash is FNV-1a over every entry's JSON line in that order; nothing in an entry
//! depends on wall time, task ids, paths or hash order (JSON objects are sorted maps), so
//! the same binary, scenario and seed give the same hash in any process.
//!
//! Every entry is also logged (events at info, history at debug) to the run's `ksim.log`.
//!
//! Checkers see only what is recorded here (and the final logs on disk): events are what
//! nodes announce, history is what clients were told.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One announced event: a fault, a node starting, a log recovery, a phase change.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Simulated time, microseconds since the run started.
    pub at_us: u64,
    /// The node that announced it, or `world` for the simulation itself.
    pub node: String,
    /// What happened, kebab-case (`fault`, `log-opened`, `heal`, ...).
    pub kind: String,
    /// Details, a JSON object.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

/// One client operation or outcome in the history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    /// Simulated time, microseconds since the run started.
    pub at_us: u64,
    /// The client node.
    pub node: String,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
}

/// Client operations. An invocation without an outcome is indeterminate: the client died
/// (or the run ended) before it learned what happened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// A writer is about to append the record `value` to its log.
    Append {
        /// The record's value: unique in the run.
        value: String,
    },
    /// The append returned: the writer acknowledges `value` at `offset`.
    AppendOk {
        /// The record's value.
        value: String,
        /// Where the log put it.
        offset: u64,
    },
    /// A writer read its own log from `from` and saw these `(offset, value)` records.
    Read {
        /// The first offset asked for.
        from: u64,
        /// What the read returned.
        records: Vec<(u64, String)>,
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
        /// The operation.
        request: crate::zk::Op,
    },
    /// How the client's request `xid` ended.
    ZkReturn {
        /// The session.
        session: u64,
        /// The request id.
        xid: u64,
        /// The outcome.
        outcome: ZkOutcome,
    },
    /// The client's session opened, expired or was closed.
    ZkSession {
        /// The session.
        session: u64,
        /// `open`, `expired` or `closed`.
        event: String,
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
        value: String,
        /// Its key, if the workload uses keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// The topic.
        topic: String,
        /// The producer's `acks`.
        acks: crate::broker::Acks,
        /// The producer has `enable.idempotence`.
        idempotent: bool,
    },
    /// How a send ended, as the producer's callback was told.
    SendReturn {
        /// The record's value.
        value: String,
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
        records: Vec<(u64, String)>,
    },
    /// A group member's assignment changed: from here on it owns exactly these partitions
    /// (and the awaiting ones), reading each from its position.
    GroupAssign {
        /// `group.id`.
        group: String,
        /// The member id.
        member: String,
        /// The generation of the last SyncGroup it completed: the one it owns them in.
        generation: i32,
        /// `(partition, position)` pairs.
        partitions: Vec<(crate::broker::TopicPartition, u64)>,
        /// Partitions it owns too, whose position is not known yet (their committed offset
        /// is being fetched; a later entry lists them with it).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        awaiting: Vec<crate::broker::TopicPartition>,
    },
    /// How a group member's offset commit ended.
    Commit {
        /// `group.id`.
        group: String,
        /// The member id it committed as.
        member: String,
        /// The generation it committed in.
        generation: i32,
        /// `(partition, next offset to read)` pairs.
        offsets: Vec<(crate::broker::TopicPartition, u64)>,
        /// When the member sent it (simulated ms); the entry's own time is the answer's.
        sent_ms: u64,
        /// `None`: stored; `NETWORK_EXCEPTION`: no answer (it may have been stored).
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

/// Shared, ordered record of one run.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    /// Simulated time of the last record, for a clock shown outside the run (read only
    /// there: nothing inside a run depends on it).
    last_at_us: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    events: Vec<Event>,
    history: Vec<HistoryEntry>,
    hash: Fnv64,
}

/// FNV-1a, 64-bit: tiny, stable across platforms and Rust releases.
#[derive(Clone, Copy)]
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Simulated time since the run started, in microseconds (0 outside a runtime).
pub fn sim_now_us() -> u64 {
    madsim::time::TimeHandle::try_current()
        .map(|time| time.elapsed().as_micros() as u64)
        .unwrap_or(0)
}

impl Recorder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event announced by `node` now.
    pub fn event(&self, node: &str, kind: &str, detail: Value) {
        let event = Event {
            at_us: sim_now_us(),
            node: node.to_string(),
            kind: kind.to_string(),
            detail,
        };
        let line = serde_json::to_vec(&event).expect("events serialize");
        if event.detail.is_null() {
            tracing::info!("{node} {kind}");
        } else {
            tracing::info!("{node} {kind} {}", event.detail);
        }
        self.last_at_us.store(event.at_us, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.hash.write(b"E");
        inner.hash.write(&line);
        inner.events.push(event);
    }

    /// Records a client operation of `node` now.
    pub fn history(&self, node: &str, op: Op) {
        let entry = HistoryEntry {
            at_us: sim_now_us(),
            node: node.to_string(),
            op,
        };
        let line = serde_json::to_vec(&entry).expect("history serializes");
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                "{node} {}",
                serde_json::to_string(&entry.op).unwrap_or_default()
            );
        }
        self.last_at_us.store(entry.at_us, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.hash.write(b"H");
        inner.hash.write(&line);
        inner.history.push(entry);
    }

    /// The trace hash of everything recorded so far.
    pub fn trace_hash(&self) -> u64 {
        self.lock().hash.0
    }

    /// Copies of the events and the history.
    pub fn snapshot(&self) -> (Vec<Event>, Vec<HistoryEntry>) {
        let inner = self.lock();
        (inner.events.clone(), inner.history.clone())
    }

    /// Simulated time of the last event or history entry, microseconds.
    pub fn last_at_us(&self) -> u64 {
        self.last_at_us.load(Ordering::Relaxed)
    }

    /// Number of history entries recorded so far.
    pub fn history_len(&self) -> usize {
        self.lock().history.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_depends_on_content_and_order() {
        let a = Recorder::new();
        a.event("world", "x", json!({"k": 1}));
        a.history("writer-1", Op::Append { value: "v".into() });
        let b = Recorder::new();
        b.history("writer-1", Op::Append { value: "v".into() });
        b.event("world", "x", json!({"k": 1}));
        let c = Recorder::new();
        c.event("world", "x", json!({"k": 1}));
        c.history("writer-1", Op::Append { value: "v".into() });
        assert_ne!(a.trace_hash(), b.trace_hash());
        assert_eq!(a.trace_hash(), c.trace_hash());
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
}
