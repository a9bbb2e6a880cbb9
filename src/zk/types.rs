//! The ensemble's vocabulary: ids, znode stats, client operations and their results,
//! replicated transactions, watch events and ZooKeeper's error names.
//!
//! Owns: the data types every part of the ensemble shares — the data tree, the server core,
//! the client core, the shells, the on-disk formats (transactions and snapshots are
//! serialized with serde) and the checkers (which parse the on-disk formats). Names follow
//! ZooKeeper's (`czxid`, `cversion`, `NONODE`, ...), one meaning each.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A ZooKeeper transaction id: `epoch << 32 | counter`. Totally orders every transaction
/// the ensemble ever proposed; a new leader's epoch starts a new counter.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Zxid(pub u64);

impl Zxid {
    /// The zxid before any transaction.
    pub const ZERO: Zxid = Zxid(0);

    /// The zxid of the `counter`-th transaction of `epoch`.
    pub fn new(epoch: Epoch, counter: u32) -> Zxid {
        Zxid((u64::from(epoch.0) << 32) | u64::from(counter))
    }

    /// The epoch of the leader that proposed it.
    pub fn epoch(self) -> Epoch {
        Epoch((self.0 >> 32) as u32)
    }

    /// Its position within its epoch.
    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A leader's epoch (ZAB): bumped by every newly established leader.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u32);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A server of the ensemble (ZooKeeper's `myid`), 1-based: `zk-1` is `ServerId(1)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client session. `SessionId(0)` means "no session" (e.g. the owner of a persistent
/// znode, or a connect request for a new session).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct SessionId(pub u64);

impl SessionId {
    /// No session.
    pub const NONE: SessionId = SessionId(0);
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A client's request id within its session; responses carry it back.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Xid(pub u64);

/// A znode's metadata (ZooKeeper's `Stat`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// The zxid that created the znode.
    pub czxid: Zxid,
    /// The zxid that last changed its data.
    pub mzxid: Zxid,
    /// The zxid that last changed its children.
    pub pzxid: Zxid,
    /// Data version: +1 per setData.
    pub version: i32,
    /// Children version: +1 per child created or deleted. Sequential znodes take their
    /// suffix from the parent's cversion.
    pub cversion: i32,
    /// The owning session of an ephemeral znode, `SessionId::NONE` otherwise.
    pub ephemeral_owner: SessionId,
    /// Length of the data in bytes.
    pub data_length: u32,
    /// Number of children.
    pub num_children: u32,
}

/// How `create` makes a znode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreateMode {
    /// Lives until deleted.
    Persistent,
    /// Deleted when its session ends; may not have children.
    Ephemeral,
    /// Persistent, with a 10-digit counter appended to the name.
    PersistentSequential,
    /// Ephemeral, with a 10-digit counter appended to the name.
    EphemeralSequential,
}

impl CreateMode {
    /// Whether the znode dies with its session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether a counter is appended to the name.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential | CreateMode::EphemeralSequential
        )
    }
}

/// ZooKeeper's error codes, by their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ZkError {
    /// The znode does not exist (or a parent does not).
    #[serde(rename = "NONODE")]
    NoNode,
    /// The znode already exists.
    #[serde(rename = "NODEEXISTS")]
    NodeExists,
    /// The expected version does not match.
    #[serde(rename = "BADVERSION")]
    BadVersion,
    /// The znode has children.
    #[serde(rename = "NOTEMPTY")]
    NotEmpty,
    /// Ephemeral znodes may not have children.
    #[serde(rename = "NOCHILDRENFOREPHEMERALS")]
    NoChildrenForEphemerals,
    /// The session expired (or was closed); it cannot be used again.
    #[serde(rename = "SESSIONEXPIRED")]
    SessionExpired,
    /// The connection broke: the outcome of the operation in flight is unknown.
    #[serde(rename = "CONNECTIONLOSS")]
    ConnectionLoss,
    /// The request is malformed (a bad path, a check outside a multi, ...).
    #[serde(rename = "BADARGUMENTS")]
    BadArguments,
    /// The server is not serving (no quorum, or syncing with its leader).
    #[serde(rename = "NOTREADONLY")]
    NotReadOnly,
}

impl ZkError {
    /// ZooKeeper's name: `NONODE`, `BADVERSION`, ...
    pub fn name(self) -> &'static str {
        match self {
            ZkError::NoNode => "NONODE",
            ZkError::NodeExists => "NODEEXISTS",
            ZkError::BadVersion => "BADVERSION",
            ZkError::NotEmpty => "NOTEMPTY",
            ZkError::NoChildrenForEphemerals => "NOCHILDRENFOREPHEMERALS",
            ZkError::SessionExpired => "SESSIONEXPIRED",
            ZkError::ConnectionLoss => "CONNECTIONLOSS",
            ZkError::BadArguments => "BADARGUMENTS",
            ZkError::NotReadOnly => "NOTREADONLY",
        }
    }
}

impl fmt::Display for ZkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A client operation. Writes (`Create`, `Delete`, `SetData`, `Multi`, `CloseSession`) go
/// through the leader and consume a zxid; reads are answered by the connected server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Create a znode; `path` is the name or, if sequential, the prefix.
    Create {
        /// Absolute path.
        path: String,
        /// Initial data.
        data: Vec<u8>,
        /// Persistent or ephemeral, sequential or not.
        mode: CreateMode,
    },
    /// Delete a znode if its data version is `version` (-1: any).
    Delete {
        /// Absolute path.
        path: String,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// Replace a znode's data if its data version is `version` (-1: any).
    SetData {
        /// Absolute path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// Expected version, -1 for any.
        version: i32,
    },
    /// Inside a `Multi` only: fail the whole multi unless the version matches.
    Check {
        /// Absolute path.
        path: String,
        /// Expected version, -1 for any (then only existence is checked).
        version: i32,
    },
    /// All of these writes or none, atomically (`Create`, `Delete`, `SetData`, `Check`).
    Multi {
        /// The operations, in order.
        ops: Vec<Op>,
    },
    /// Read data and stat; optionally leave a data watch.
    GetData {
        /// Absolute path.
        path: String,
        /// Leave a one-shot data watch.
        watch: bool,
    },
    /// Read the stat if the znode exists; optionally leave a data watch (even if missing).
    Exists {
        /// Absolute path.
        path: String,
        /// Leave a one-shot data watch.
        watch: bool,
    },
    /// Read the children's names; optionally leave a child watch.
    GetChildren {
        /// Absolute path.
        path: String,
        /// Leave a one-shot child watch.
        watch: bool,
    },
    /// Wait until the connected server has caught up with the leader as of now.
    Sync {
        /// Absolute path (ZooKeeper takes one; it does not matter here).
        path: String,
    },
    /// End the session: its ephemeral znodes are deleted.
    CloseSession,
}

impl Op {
    /// Whether the operation changes the tree (goes through the leader).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Create { .. }
                | Op::Delete { .. }
                | Op::SetData { .. }
                | Op::Check { .. }
                | Op::Multi { .. }
                | Op::CloseSession
        )
    }
}

/// The successful result of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpResult {
    /// `Create`: the actual path (with the counter for sequential znodes) and stat.
    Created {
        /// The created path.
        path: String,
        /// The new znode's stat.
        stat: Stat,
    },
    /// `Delete`.
    Deleted,
    /// `SetData`: the new stat.
    DataSet {
        /// The stat after the write.
        stat: Stat,
    },
    /// `Check` inside a multi.
    Checked,
    /// `Multi`: one result per operation, in order.
    Multi {
        /// Results of the operations.
        results: Vec<OpResult>,
    },
    /// `GetData`.
    Data {
        /// The data.
        data: Vec<u8>,
        /// The stat.
        stat: Stat,
    },
    /// `Exists`: the stat, or none if the znode does not exist.
    Exists {
        /// The stat if it exists.
        stat: Option<Stat>,
    },
    /// `GetChildren`: sorted names.
    Children {
        /// The children's names (not paths), sorted.
        children: Vec<String>,
    },
    /// `Sync`.
    Synced,
    /// `CloseSession`.
    Closed,
    /// A `CreateSession` transaction was applied (there is no client `Op` for it: the
    /// server proposes it when a client connects without a session).
    SessionCreated,
}

/// A failed operation's error; for a `Multi`, which operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpError {
    /// The error.
    pub error: ZkError,
    /// For a `Multi`: the index of the operation that failed.
    #[serde(default)]
    pub index: Option<usize>,
}

impl From<ZkError> for OpError {
    fn from(error: ZkError) -> Self {
        OpError { error, index: None }
    }
}

/// A replicated change to the data tree, decided by the leader (versions checked, sequential
/// names and owners resolved) so that applying it on any replica cannot fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Txn {
    /// A session starts.
    CreateSession {
        /// The new session.
        session: SessionId,
        /// Its negotiated timeout.
        timeout_ms: u32,
    },
    /// A session ends (closed by its client or expired by the leader): its ephemeral znodes
    /// are deleted.
    CloseSession {
        /// The session.
        session: SessionId,
    },
    /// Create a znode at exactly `path` (a sequential name already resolved).
    Create {
        /// The full path.
        path: String,
        /// Data.
        data: Vec<u8>,
        /// Owner if ephemeral, `SessionId::NONE` otherwise.
        ephemeral_owner: SessionId,
    },
    /// Delete the znode at `path`.
    Delete {
        /// The path.
        path: String,
    },
    /// Replace the data at `path`; its version becomes `version`.
    SetData {
        /// The path.
        path: String,
        /// New data.
        data: Vec<u8>,
        /// The version after this write.
        version: i32,
    },
    /// A check inside a multi: changes nothing.
    Check {
        /// The path.
        path: String,
    },
    /// All of these, atomically.
    Multi {
        /// The transactions, in order.
        txns: Vec<Txn>,
    },
    /// A write that failed validation: it takes a zxid (so that its error reaches the client
    /// in order with the session's other requests) and changes nothing.
    Error {
        /// Why it failed.
        error: OpError,
    },
}

/// Who asked for a transaction and when: carried with it through the pipeline and the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnHeader {
    /// The transaction's id.
    pub zxid: Zxid,
    /// The session that asked (`NONE` for the leader's own, e.g. an expiry).
    pub session: SessionId,
    /// The request id within that session.
    pub xid: Xid,
    /// The leader's clock when it proposed (ms since the epoch; simulated).
    pub time_ms: i64,
}

/// One logged transaction: the record value in the ensemble's transaction log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// Who, when, which zxid.
    pub header: TxnHeader,
    /// What.
    pub txn: Txn,
}

/// What fired a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventType {
    /// A znode with a data watch (left by `exists`) was created.
    NodeCreated,
    /// A watched znode was deleted (data and child watches fire).
    NodeDeleted,
    /// A watched znode's data changed.
    NodeDataChanged,
    /// A znode with a child watch gained or lost a child.
    NodeChildrenChanged,
}

/// A watch notification sent to a client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WatchedEvent {
    /// What happened.
    pub event: EventType,
    /// To which znode.
    pub path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_is_epoch_then_counter() {
        let z = Zxid::new(Epoch(3), 7);
        assert_eq!(z.0, (3u64 << 32) | 7);
        assert_eq!((z.epoch(), z.counter()), (Epoch(3), 7));
        assert!(Zxid::new(Epoch(2), u32::MAX) < Zxid::new(Epoch(3), 0));
        assert_eq!(z.to_string(), "0x300000007");
    }

    #[test]
    fn errors_have_zookeepers_names_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&ZkError::NoChildrenForEphemerals).unwrap(),
            "\"NOCHILDRENFOREPHEMERALS\""
        );
        assert_eq!(
            ZkError::NoChildrenForEphemerals.name(),
            "NOCHILDRENFOREPHEMERALS"
        );
        assert_eq!(ZkError::SessionExpired.to_string(), "SESSIONEXPIRED");
    }
}
