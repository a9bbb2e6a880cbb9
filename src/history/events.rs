//! What nodes announce: [`Event`], one line of `events.jsonl`, holding a typed
//! [`Announcement`] — the announcing core's own event type (`BrokerEvent`,
//! `ControllerEvent`, `CoordinatorEvent`, `ZkServerEvent`, the ensemble store's
//! `StoreEvent`, `TxnCoordinatorEvent`), or a shell's ([`ShellEvent`]) or the world's ([`WorldEvent`]), defined
//! here.
//!
//! Every announcement type is serialized `#[serde(tag = "kind", content = "detail")]` with
//! kebab-case kinds, and an event's line is `{"at_us":..,"node":..,"kind":..,"detail":{..}}`
//! with the detail's keys sorted (it is written through a `serde_json::Value`, whose maps
//! are sorted — or, for the hot `hw`, directly in that order, and tests hold the two
//! equal); checkers' tables and readers of a run directory rely on these bytes. The
//! trace hash is not computed from the lines but from the typed values
//! (`node::recorder::hash`). Checkers match on the types; a contract change is a compile
//! error.

use super::NodeName;
use crate::broker::controller::ControllerEvent;
use crate::broker::coordinator::CoordinatorEvent;
use crate::broker::server::{Announced, BrokerEvent};
use crate::broker::txn_coordinator::TxnCoordinatorEvent;
use crate::log::{Offset, RecoveryReport};
use crate::zk::server::ZkServerEvent;
use crate::zk::store::StoreEvent;
use crate::zk::{Epoch, Zxid};
use serde::de::Error as _;
use serde::ser::{Error as _, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// One announced event: a fault, a node starting, a log recovery, a role change.
#[derive(Debug, PartialEq)]
pub struct Event {
    /// Simulated time, microseconds since the run started.
    pub at_us: u64,
    /// The node that announced it, or `world` for the simulation itself.
    pub node: NodeName,
    /// What happened.
    pub announced: Announcement,
}

impl Clone for Event {
    fn clone(&self) -> Self {
        Event {
            at_us: self.at_us,
            node: self.node.share(),
            announced: self.announced.clone(),
        }
    }
}

/// An announcement, by who makes it. Serialized untagged: each inner type writes its own
/// `kind` and `detail`. Read back, the first type whose kind and fields fit wins (the store
/// before the server core: the store's `bad-snapshot` names its file, the core's does not).
///
/// The rare announcers' events are boxed: a run keeps tens of thousands of events, nearly
/// all the broker's, and each is as large as the largest inline variant. A box serializes
/// as what it holds, so neither the lines nor the trace hash see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Announcement {
    /// A node shell (or the crash guard on its behalf).
    Shell(Box<ShellEvent>),
    /// A broker about itself and its replicas.
    Broker(BrokerEvent),
    /// A broker's controller.
    Controller(Box<ControllerEvent>),
    /// A broker's group coordinator.
    Coordinator(Box<CoordinatorEvent>),
    /// An ensemble server's store, recovering its disk.
    Store(Box<StoreEvent>),
    /// An ensemble server.
    ZkServer(ZkServerEvent),
    /// The simulation itself (node `world`).
    World(Box<WorldEvent>),
    /// A broker's transaction coordinator.
    TxnCoordinator(Box<TxnCoordinatorEvent>),
}

impl Event {
    /// `kind`, as written in `events.jsonl`.
    pub fn kind(&self) -> String {
        self.announced.kind()
    }

    /// `detail`, as written in `events.jsonl` (null if none).
    pub fn detail(&self) -> Value {
        self.announced.kind_and_detail().1
    }
}

impl Announcement {
    /// The shell's event, if a shell announced it.
    pub fn shell(&self) -> Option<&ShellEvent> {
        match self {
            Announcement::Shell(event) => Some(event),
            _ => None,
        }
    }

    /// The controller's event, if a controller announced it.
    pub fn controller(&self) -> Option<&ControllerEvent> {
        match self {
            Announcement::Controller(event) => Some(event),
            _ => None,
        }
    }

    /// The coordinator's event, if a coordinator announced it.
    pub fn coordinator(&self) -> Option<&CoordinatorEvent> {
        match self {
            Announcement::Coordinator(event) => Some(event),
            _ => None,
        }
    }

    /// The world's event, if the simulation announced it.
    pub fn world(&self) -> Option<&WorldEvent> {
        match self {
            Announcement::World(event) => Some(event),
            _ => None,
        }
    }

    /// `kind`, as written in `events.jsonl`.
    pub fn kind(&self) -> String {
        self.kind_and_detail().0
    }

    /// Appends the kind to `kind` and the detail's JSON text to `detail` (nothing if it has
    /// none): the bytes of [`kind_and_detail`](Self::kind_and_detail), for the writers of
    /// every event (`ksim.log` as it runs, `events.jsonl` at the end). A broker's `hw`, nine
    /// in ten of a run's events, is written directly (its keys in sorted order, as a
    /// `Value` would have them); every other announcement goes through the `Value`.
    pub fn write_kind_and_detail(&self, kind: &mut String, detail: &mut Vec<u8>) {
        if let Announcement::Broker(BrokerEvent::Hw {
            partition,
            hw,
            leader_epoch,
        }) = self
        {
            kind.push_str("hw");
            detail.extend_from_slice(br#"{"hw":"#);
            super::json_u64(detail, hw.0);
            detail.extend_from_slice(br#","leader_epoch":"#);
            if leader_epoch.0 < 0 {
                detail.push(b'-');
            }
            super::json_u64(detail, u64::from(leader_epoch.0.unsigned_abs()));
            detail.extend_from_slice(br#","partition":"#);
            if super::needs_escape(&partition.topic) {
                let _ = serde_json::to_writer(&mut *detail, &format!("{partition}"));
            } else {
                detail.push(b'"');
                detail.extend_from_slice(partition.topic.as_bytes());
                detail.push(b'/');
                super::json_u64(detail, u64::from(partition.partition));
                detail.push(b'"');
            }
            detail.push(b'}');
            return;
        }
        let (k, v) = self.kind_and_detail();
        kind.push_str(&k);
        if !v.is_null() {
            let _ = serde_json::to_writer(detail, &v);
        }
    }

    /// `(kind, detail)` as written in `events.jsonl`: the one place the typed payload
    /// becomes JSON, so every writer (the file, `ksim.log`, `report.md`) sees the same bytes.
    pub fn kind_and_detail(&self) -> (String, Value) {
        match serde_json::to_value(self).expect("announcements serialize") {
            Value::Object(mut map) => {
                let kind = match map.remove("kind") {
                    Some(Value::String(kind)) => kind,
                    other => panic!("an announcement without a kind: {other:?}"),
                };
                (kind, map.remove("detail").unwrap_or(Value::Null))
            }
            other => panic!("an announcement that is not an object: {other}"),
        }
    }
}

impl Event {
    /// Appends the event's line of `events.jsonl` (without its newline) to `out`: the bytes
    /// its `Serialize` writes, without building a `Value` for the hot kinds.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let mut kind = String::new();
        let mut detail = Vec::new();
        self.announced.write_kind_and_detail(&mut kind, &mut detail);
        out.extend_from_slice(br#"{"at_us":"#);
        super::json_u64(out, self.at_us);
        out.extend_from_slice(br#","node":"#);
        super::json_str(out, &self.node);
        out.extend_from_slice(br#","kind":"#);
        super::json_str(out, &kind);
        if !detail.is_empty() {
            out.extend_from_slice(br#","detail":"#);
            out.extend_from_slice(&detail);
        }
        out.push(b'}');
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let payload = serde_json::to_value(&self.announced).map_err(S::Error::custom)?;
        let kind = payload.get("kind").unwrap_or(&Value::Null);
        let detail = payload.get("detail").unwrap_or(&Value::Null);
        let mut event = serializer.serialize_struct("Event", 4)?;
        event.serialize_field("at_us", &self.at_us)?;
        event.serialize_field("node", &self.node)?;
        event.serialize_field("kind", kind)?;
        if detail.is_null() {
            event.skip_field("detail")?;
        } else {
            event.serialize_field("detail", detail)?;
        }
        event.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Line {
            at_us: u64,
            node: String,
            kind: String,
            #[serde(default)]
            detail: Value,
        }
        let line = Line::deserialize(deserializer)?;
        let mut payload = serde_json::Map::new();
        payload.insert("kind".into(), Value::String(line.kind));
        if !line.detail.is_null() {
            payload.insert("detail".into(), line.detail);
        }
        let announced =
            Announcement::deserialize(Value::Object(payload)).map_err(D::Error::custom)?;
        Ok(Event {
            at_us: line.at_us,
            node: NodeName::new(line.node),
            announced,
        })
    }
}

impl From<Announced> for Announcement {
    fn from(announced: Announced) -> Self {
        match announced {
            Announced::Broker(event) => Announcement::Broker(event),
            Announced::Controller(event) => Announcement::Controller(Box::new(event)),
            Announced::Coordinator(event) => Announcement::Coordinator(Box::new(event)),
            Announced::TxnCoordinator(event) => Announcement::TxnCoordinator(Box::new(event)),
        }
    }
}

macro_rules! announcement_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Announcement {
            fn from(event: $ty) -> Self {
                Announcement::$variant(event.into())
            }
        })*
    };
}

announcement_from!(
    Shell(ShellEvent),
    Broker(BrokerEvent),
    Controller(ControllerEvent),
    Coordinator(CoordinatorEvent),
    Store(StoreEvent),
    ZkServer(ZkServerEvent),
    World(WorldEvent),
    TxnCoordinator(TxnCoordinatorEvent),
);

/// What a node shell announces about its own process and disk (node `zk-<n>`, `broker-<n>`,
/// `writer-<n>`; `crash` for any node).
///
/// | kind | node | detail | when |
/// |---|---|---|---|
/// | `recovered` | `zk-<n>` | `incarnation`, `accepted_epoch`, `current_epoch`, `snapshot` (its zxid), `logged`, `last_zxid` | the server read its disk back and starts |
/// | `recovery-failed`, `disk-failed`, `listen-failed` | `zk-<n>`, `broker-<n>` | `error` | the process gives up |
/// | `broker-started` | `broker-<n>` | `incarnation` | a broker process starts |
/// | `log-opened` | `writer-<n>` | `incarnation`, `recovery` | a writer opened its log |
/// | `log-open-failed` | `writer-<n>` | `incarnation`, `error` | its log could not be recovered: it stops |
/// | `append-failed`, `read-failed`, `flush-failed`, `retention-failed` | `writer-<n>` | `error` (and `value` / `from`) | a log call failed |
/// | `retention` | `writer-<n>` | `segments_deleted`, `log_start_offset` | retention deleted segments |
/// | `crash` | any | `message` | the node's task panicked |
///
/// **Incarnations.** A process's memory lives for one incarnation. The checkers start a new
/// incarnation of a node at a `world` fault or heal that ended its process (see
/// [`Effect::ends_process`]) and at a start announcement (`broker-started`, `recovered`,
/// `log-opened`) whose `incarnation` differs from the last one it announced. Pausing does
/// not end an incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum ShellEvent {
    /// An ensemble server read its disk back and starts.
    Recovered {
        /// Its incarnation, from 1.
        incarnation: u64,
        /// The accepted epoch on disk.
        accepted_epoch: Epoch,
        /// The current epoch on disk.
        current_epoch: Epoch,
        /// The zxid of the snapshot it loaded, if any.
        snapshot: Option<Zxid>,
        /// Transactions logged after it.
        logged: usize,
        /// The last logged zxid, if any.
        last_zxid: Option<Zxid>,
    },
    /// An ensemble server could not read its disk back.
    RecoveryFailed {
        /// Why.
        error: String,
    },
    /// The process could not listen on its address.
    ListenFailed {
        /// Why.
        error: String,
    },
    /// An ensemble server's disk write failed: it stops.
    DiskFailed {
        /// Why.
        error: String,
    },
    /// A broker process starts.
    BrokerStarted {
        /// Its incarnation, from 1.
        incarnation: u64,
    },
    /// A writer opened its log.
    LogOpened {
        /// Its incarnation, from 1.
        incarnation: u64,
        /// What recovery found and did.
        recovery: RecoveryReport,
    },
    /// A writer's log could not be recovered: it stops.
    LogOpenFailed {
        /// Its incarnation.
        incarnation: u64,
        /// Why.
        error: String,
    },
    /// A writer's append failed: it stops.
    AppendFailed {
        /// The value it appended.
        value: String,
        /// Why.
        error: String,
    },
    /// A writer's flush failed: it stops.
    FlushFailed {
        /// Why.
        error: String,
    },
    /// A writer's retention deleted segments.
    Retention {
        /// How many.
        segments_deleted: usize,
        /// The log start offset after.
        log_start_offset: Offset,
    },
    /// A writer's retention failed: it stops.
    RetentionFailed {
        /// Why.
        error: String,
    },
    /// A writer's read-back failed.
    ReadFailed {
        /// The offset it read from.
        from: u64,
        /// Why.
        error: String,
    },
    /// The node's task panicked (a broken invariant).
    Crash {
        /// The panic message and location.
        message: String,
    },
}

impl ShellEvent {
    /// A call failed or the process gave up (the kinds ending in `-failed`).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            ShellEvent::RecoveryFailed { .. }
                | ShellEvent::ListenFailed { .. }
                | ShellEvent::DiskFailed { .. }
                | ShellEvent::LogOpenFailed { .. }
                | ShellEvent::AppendFailed { .. }
                | ShellEvent::FlushFailed { .. }
                | ShellEvent::RetentionFailed { .. }
                | ShellEvent::ReadFailed { .. }
        )
    }
}

/// What the simulation announces (node `world`, but `node-created` is announced as the
/// node it creates).
///
/// | kind | detail | when |
/// |---|---|---|
/// | `node-created` | `kind` (`zk`, `broker`, `writer`, ...), `addr` (servers) | a node is built |
/// | `phase` | `phase`, `length_ms` | a phase of the run begins |
/// | `setup-timeout` | | the cluster was not ready in time; faults start anyway |
/// | `fault` | [`Fault`] | a scheduled or nemesis fault was applied |
/// | `nemesis-idle` | `why` | the nemesis found nothing safe to do |
/// | `heal` | `nodes` ([`NodeEffect`]s), `network` (it was faulty) | faults stop |
/// | `converged` / `not-converged` | who leads the ensemble, who is behind or idle | after the heal |
/// | `drain`, `drained` / `not-drained` | what is still busy | the drain |
/// | `stop` | | every node is killed; the final logs are read |
///
/// Checkers read `fault` and `heal` (which processes ended: [`Effect::ends_process`]) and
/// `heal` and `stop` times.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum WorldEvent {
    /// A node was built.
    NodeCreated {
        /// `zk`, `broker`, `writer`, `zk-client`, `producer` or `consumer`.
        kind: String,
        /// Its address, for servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<String>,
    },
    /// A phase of the run begins.
    Phase {
        /// `setup`, `faults`, `heal`, ...
        phase: String,
        /// Its length.
        length_ms: u64,
    },
    /// The cluster was not ready by the end of setup.
    SetupTimeout {},
    /// A fault was applied.
    Fault(Fault),
    /// The nemesis found no action that keeps the cluster recoverable.
    NemesisIdle {
        /// Why.
        why: String,
    },
    /// Faults stop: nodes restarted or resumed, the network made whole.
    Heal {
        /// What happened to each node that was down or paused.
        nodes: Vec<NodeEffect>,
        /// The network was faulty.
        network: bool,
    },
    /// The cluster converged after the heal.
    Converged {
        /// The ensemble's leader.
        zk_leader: Option<String>,
        /// The ensemble's epoch.
        zk_epoch: Option<u64>,
    },
    /// The cluster did not converge in time.
    NotConverged {
        /// Clients with nothing acknowledged since the heal.
        idle: Vec<String>,
        /// The ensemble's leader.
        zk_leader: Option<String>,
        /// The ensemble's newest epoch.
        zk_epoch: Option<u64>,
        /// Servers not in that epoch.
        zk_not_rejoined: Vec<String>,
        /// Partitions without a leader with a full ISR.
        unhealthy: Vec<String>,
    },
    /// The drain begins: producers stop, groups commit to the end.
    Drain {},
    /// The drain completed.
    Drained {},
    /// The drain did not complete in time.
    NotDrained {
        /// Producers with sends pending.
        producers_busy: Vec<String>,
        /// Groups not caught up.
        groups_lagging: Vec<GroupLag>,
        /// Partitions without a leader with a full ISR.
        unhealthy: Vec<String>,
        /// The ensemble's newest epoch.
        zk_epoch: Option<u64>,
        /// Servers not in that epoch.
        zk_not_rejoined: Vec<String>,
    },
    /// Every node is killed; the run ends.
    Stop {},
}

/// A fault as applied: scheduled (`target`, `line`) or drawn by the nemesis (`by`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// `kill`, `restart`, `power-loss`, `pause`, `resume`, `partition`, `heal`, ...
    pub action: String,
    /// Where it came from.
    #[serde(flatten)]
    pub source: FaultSource,
    /// A partition's sides, by node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sides: Option<Vec<Vec<String>>>,
    /// A loss rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// What happened to each node it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeEffect>>,
}

/// Where a fault came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FaultSource {
    /// A `[[fault]]` of the scenario.
    Scheduled {
        /// Its target, as written.
        target: Option<String>,
        /// Its line in the scenario file.
        line: usize,
    },
    /// The nemesis.
    Drawn {
        /// `nemesis`.
        by: String,
    },
}

/// What a fault or the heal did to one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEffect {
    /// The node.
    pub node: String,
    /// What happened to it.
    pub effect: Effect,
}

/// What a fault did to a node. Written as words (`killed`, `restarted (was up)`, ...), or
/// an object for a power loss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Its process was killed (its page cache survives).
    Killed,
    /// It was down already.
    AlreadyDown,
    /// It was (killed if need be and) restarted; `was` its state before.
    Restarted {
        /// `up`, `paused` or `down`.
        was: String,
    },
    /// A nemesis restart found it no longer down.
    NotRestarted {
        /// Its state.
        state: String,
    },
    /// Its process was paused.
    Paused,
    /// It was not up.
    NotPaused {
        /// Its state.
        state: String,
    },
    /// Its paused process was resumed.
    Resumed,
    /// It was not paused.
    NotResumed {
        /// Its state.
        state: String,
    },
    /// Its network links were clogged.
    Clogged,
    /// Its network links were unclogged.
    Unclogged,
    /// Its power was cut: the process died and its disk lost what was not durable.
    PowerLoss(PowerLoss),
}

impl Effect {
    /// The node's process ended (it was killed, restarted or lost power): its memory is gone.
    pub fn ends_process(&self) -> bool {
        matches!(
            self,
            Effect::Killed | Effect::Restarted { .. } | Effect::PowerLoss(_)
        )
    }

    fn parse(text: &str) -> Option<Effect> {
        let state = |prefix: &str| text.strip_prefix(prefix).map(str::to_string);
        Some(match text {
            "killed" => Effect::Killed,
            "already down" => Effect::AlreadyDown,
            "paused" => Effect::Paused,
            "resumed" => Effect::Resumed,
            "clogged" => Effect::Clogged,
            "unclogged" => Effect::Unclogged,
            _ => {
                if let Some(was) = text
                    .strip_prefix("restarted (was ")
                    .and_then(|rest| rest.strip_suffix(')'))
                {
                    Effect::Restarted { was: was.into() }
                } else if let Some(state) = state("not restarted: node is ") {
                    Effect::NotRestarted { state }
                } else if let Some(state) = state("not paused: node is ") {
                    Effect::NotPaused { state }
                } else if let Some(state) = state("not resumed: node is ") {
                    Effect::NotResumed { state }
                } else {
                    return None;
                }
            }
        })
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Killed => f.write_str("killed"),
            Effect::AlreadyDown => f.write_str("already down"),
            Effect::Restarted { was } => write!(f, "restarted (was {was})"),
            Effect::NotRestarted { state } => write!(f, "not restarted: node is {state}"),
            Effect::Paused => f.write_str("paused"),
            Effect::NotPaused { state } => write!(f, "not paused: node is {state}"),
            Effect::Resumed => f.write_str("resumed"),
            Effect::NotResumed { state } => write!(f, "not resumed: node is {state}"),
            Effect::Clogged => f.write_str("clogged"),
            Effect::Unclogged => f.write_str("unclogged"),
            Effect::PowerLoss(loss) => write!(
                f,
                "{}",
                serde_json::to_string(loss).unwrap_or_else(|_| "power loss".into())
            ),
        }
    }
}

impl Serialize for Effect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Effect::PowerLoss(loss) => loss.serialize(serializer),
            words => serializer.collect_str(words),
        }
    }
}

impl<'de> Deserialize<'de> for Effect {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Words(String),
            PowerLoss(PowerLoss),
        }
        match Written::deserialize(deserializer)? {
            Written::PowerLoss(loss) => Ok(Effect::PowerLoss(loss)),
            Written::Words(text) => Effect::parse(&text)
                .ok_or_else(|| D::Error::custom(format!("not a fault effect: {text}"))),
        }
    }
}

/// What a power cut did to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PowerLoss {
    /// Its disk kept, cut or tore each file's unsynced suffix.
    Cut {
        /// Its state before (`up`, `paused`, `down`).
        was: String,
        /// The cut struck inside an fsync.
        inside_fsync: bool,
        /// Unsynced bytes lost in all.
        bytes_lost: u64,
        /// Per file or directory.
        files: Vec<FileLoss>,
    },
    /// A node without a disk.
    NoDisk {
        /// Its state before.
        was: String,
        /// `none`.
        disk: String,
    },
}

/// What a power cut did to one file or directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLoss {
    /// Path relative to the disk root.
    pub path: String,
    /// `kept`, `lost`, `cut@<pos>` or `torn@<pos>`; `undone <n> of <m>` for a directory.
    pub outcome: String,
    /// Unsynced bytes that did not survive.
    pub bytes_lost: u64,
}

/// A group the drain still waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLag {
    /// `group.id`.
    pub group: String,
    /// Partitions whose committed offset is behind the end.
    pub partitions: Vec<String>,
    /// The generation its members synced in, if they agree.
    pub members_generation: Option<crate::broker::proto::Generation>,
    /// The coordinator announced the group `Stable` in that generation.
    pub stable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BrokerId, TopicPartition};
    use crate::log::LeaderEpoch;

    fn line(node: &str, announced: impl Into<Announcement>) -> String {
        let event = Event {
            at_us: 7,
            node: node.into(),
            announced: announced.into(),
        };
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<Event>(&line).unwrap(),
            event,
            "{line}"
        );
        let mut direct = Vec::new();
        event.write_json_line(&mut direct);
        assert_eq!(
            String::from_utf8(direct).unwrap(),
            line,
            "the direct writer"
        );
        line
    }

    /// `hw`, written without a `Value`, has the `Value`'s bytes, whatever the topic's name.
    #[test]
    fn hw_lines_are_written_directly_with_sorted_keys() {
        for topic in [
            "orders",
            "__consumer_offsets",
            "we\"ird\\name/x",
            "ü",
            "tab\t",
        ] {
            for (hw, epoch) in [(u64::MAX, -1), (0, 0), (10, i32::MIN), (99, i32::MAX)] {
                let event = BrokerEvent::Hw {
                    partition: TopicPartition::new(topic, 11),
                    hw: Offset(hw),
                    leader_epoch: LeaderEpoch(epoch),
                };
                let text = line("broker-3", event);
                assert!(
                    text.contains(&format!(r#""detail":{{"hw":{hw},"leader_epoch":{epoch},"#)),
                    "{text}"
                );
            }
        }
    }

    /// The bytes of `events.jsonl`: the event's own fields in order, then the detail with
    /// sorted keys, partitions as text.
    #[test]
    fn event_lines_keep_their_shape() {
        let become_leader = BrokerEvent::BecomeLeader {
            partition: TopicPartition::new("orders", 0),
            leader_epoch: LeaderEpoch(2),
            leo: Offset(5),
            hw: Offset(3),
            isr: vec![BrokerId(1), BrokerId(2)],
        };
        assert_eq!(
            line("broker-1", become_leader),
            r#"{"at_us":7,"node":"broker-1","kind":"become-leader","detail":{"hw":3,"isr":[1,2],"leader_epoch":2,"leo":5,"partition":"orders/0"}}"#
        );
        assert_eq!(
            line("world", WorldEvent::Stop {}),
            r#"{"at_us":7,"node":"world","kind":"stop","detail":{}}"#
        );
        let kill = WorldEvent::Fault(Fault {
            action: "kill".into(),
            source: FaultSource::Scheduled {
                target: Some("broker-1".into()),
                line: 12,
            },
            sides: None,
            rate: None,
            nodes: Some(vec![NodeEffect {
                node: "broker-1".into(),
                effect: Effect::Restarted { was: "up".into() },
            }]),
        });
        assert_eq!(
            line("world", kill),
            r#"{"at_us":7,"node":"world","kind":"fault","detail":{"action":"kill","line":12,"nodes":[{"effect":"restarted (was up)","node":"broker-1"}],"target":"broker-1"}}"#
        );
    }

    /// Kinds two announcers share read back as the announcer whose fields they carry.
    #[test]
    fn shared_kinds_read_back_by_their_fields() {
        line(
            "zk-1",
            StoreEvent::BadSnapshot {
                file: "snapshot.5".into(),
                error: "no root".into(),
            },
        );
        line(
            "zk-1",
            ZkServerEvent::BadSnapshot {
                error: "no root".into(),
            },
        );
        line(
            "writer-1",
            ShellEvent::LogOpened {
                incarnation: 1,
                recovery: RecoveryReport::default(),
            },
        );
        line(
            "broker-1",
            BrokerEvent::LogOpened {
                partition: TopicPartition::new("orders", 1),
                recovery: "clean".into(),
            },
        );
        line(
            "broker-1",
            WorldEvent::Heal {
                nodes: vec![NodeEffect {
                    node: "broker-1".into(),
                    effect: Effect::PowerLoss(PowerLoss::NoDisk {
                        was: "up".into(),
                        disk: "none".into(),
                    }),
                }],
                network: false,
            },
        );
    }
}
