//! The data tree of the ensemble: znodes, live sessions and their ephemeral znodes, and
//! the server-local watch tables.
//!
//! Owns: the replicated state machine. The leader turns a client's write into a [`Txn`] with
//! [`DataTree::prep`] (validated against its speculative tree: every earlier proposal
//! applied), and every replica applies decided transactions in zxid order with
//! [`DataTree::apply`]. Reads are answered from the local tree. [`WatchManager`] holds the
//! one-shot watches a server's clients left; it is not replicated.
//!
//! Invariants (checked by [`DataTree::verify`], asserted where state changes):
//! - the root `/` always exists and is persistent; every other znode's parent exists, lists
//!   it as a child and is persistent (ephemeral znodes have no children);
//! - `stat.num_children` is the number of children and `stat.data_length` the data's length;
//! - `czxid ≤ mzxid ≤ last_zxid` and `czxid ≤ pzxid ≤ last_zxid`;
//! - every ephemeral znode's owner is a live session, whose index lists exactly its
//!   ephemeral znodes (so closing a session is proportional to what it owns);
//! - `apply` takes strictly increasing zxids; `last_zxid` is the last one applied;
//! - `apply` is total: a transaction that does not fit the tree (only possible on a replica
//!   whose history diverged from the leader's) changes nothing and returns its error, so
//!   the divergence shows up in the results the checkers compare instead of as a crash.
//!
//! Simplifications vs ZooKeeper: no ACLs, quotas, containers, TTL nodes or `/zookeeper`
//! subtree; `CreateSession` of a live session only updates its timeout; sessions carry no
//! password; snapshots are exact (not fuzzy), taken between transactions; a failed `multi`
//! reports only the index of the failing operation (not a result per operation); data
//! versions and `cversion` wrap instead of overflowing. Stricter than ZooKeeper: applying a
//! `SetData` whose version is not the current one + 1 is refused (`BADVERSION`), so that a
//! diverged replica shows instead of silently adopting the leader's version.

mod path;
mod snapshot;
mod watch;

#[cfg(test)]
mod tests;

pub use path::{validate_path, ROOT};
pub use snapshot::{Snapshot, SnapshotNode};
pub use watch::WatchManager;

use crate::zk::{
    EventType, Op, OpError, OpResult, SessionId, Stat, Txn, TxnHeader, WatchedEvent, ZkError, Zxid,
};
use path::{child_path, parent_and_name};
use std::collections::{BTreeMap, BTreeSet};

/// The replicated znode tree and session table (ZooKeeper's `DataTree` + the session
/// timeouts of `ZKDatabase`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataTree {
    /// Every znode by path, the root included.
    nodes: BTreeMap<String, Znode>,
    /// Live sessions, with their ephemeral znodes.
    sessions: BTreeMap<SessionId, Session>,
    /// The zxid of the last applied transaction.
    last_zxid: Zxid,
}

/// What applying a transaction did: the client's result and the watch events it fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The result sent back to the session that asked.
    pub result: Result<OpResult, OpError>,
    /// Events for the watch tables, in the order the changes happened.
    pub events: Vec<WatchedEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Znode {
    data: Vec<u8>,
    stat: Stat,
    /// Names (not paths) of the children; its length is `stat.num_children`.
    children: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    timeout_ms: u32,
    /// Paths of the ephemeral znodes this session owns.
    ephemerals: BTreeSet<String>,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new()
    }
}

impl DataTree {
    /// A tree with only the root (all-zero stat), no sessions, at zxid zero.
    pub fn new() -> DataTree {
        let root = Znode {
            data: Vec::new(),
            stat: Stat::default(),
            children: BTreeSet::new(),
        };
        DataTree {
            nodes: BTreeMap::from([(ROOT.to_string(), root)]),
            sessions: BTreeMap::new(),
            last_zxid: Zxid::ZERO,
        }
    }

    /// The zxid of the last applied transaction.
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    // --- reads ---

    /// A znode's data and stat.
    pub fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), ZkError> {
        let node = self.node(path)?;
        Ok((node.data.clone(), node.stat.clone()))
    }

    /// A znode's stat, if it exists (an invalid path never exists).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|node| node.stat.clone())
    }

    /// The names of a znode's children, sorted.
    pub fn children(&self, path: &str) -> Result<Vec<String>, ZkError> {
        Ok(self.node(path)?.children.iter().cloned().collect())
    }

    /// Answers a read (`GetData`, `Exists`, `GetChildren`); anything else is
    /// `BADARGUMENTS`. Watches are the server's business ([`WatchManager`]).
    pub fn read(&self, op: &Op) -> Result<OpResult, OpError> {
        match op {
            Op::GetData { path, .. } => {
                let (data, stat) = self.get_data(path)?;
                Ok(OpResult::Data { data, stat })
            }
            Op::Exists { path, .. } => {
                validate_path(path)?;
                Ok(OpResult::Exists {
                    stat: self.stat(path),
                })
            }
            Op::GetChildren { path, .. } => Ok(OpResult::Children {
                children: self.children(path)?,
            }),
            _ => Err(ZkError::BadArguments.into()),
        }
    }

    /// The number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    // --- sessions ---

    /// A live session's negotiated timeout.
    pub fn session_timeout(&self, session: SessionId) -> Option<u32> {
        self.sessions.get(&session).map(|s| s.timeout_ms)
    }

    /// The live sessions and their timeouts, sorted by id.
    pub fn sessions(&self) -> Vec<(SessionId, u32)> {
        self.sessions
            .iter()
            .map(|(&id, s)| (id, s.timeout_ms))
            .collect()
    }

    /// The paths of a session's ephemeral znodes, sorted (none for an unknown session).
    pub fn ephemerals_of(&self, session: SessionId) -> Vec<String> {
        self.sessions
            .get(&session)
            .map(|s| s.ephemerals.iter().cloned().collect())
            .unwrap_or_default()
    }

    // --- the leader: decide ---

    /// Decides the transaction for `session`'s write `op`, validating it against this tree:
    /// `Txn::Error` when the op must fail (ZooKeeper's `PrepRequestProcessor`). Sequential
    /// names take the parent's `cversion`; `SetData` carries the next version; ephemeral
    /// creates carry their owner.
    pub fn prep(&self, session: SessionId, op: &Op) -> Txn {
        self.prep_request(session, op)
            .unwrap_or_else(|error| Txn::Error { error })
    }

    fn prep_request(&self, session: SessionId, op: &Op) -> Result<Txn, OpError> {
        if !op.is_write() {
            return Err(ZkError::BadArguments.into());
        }
        if session != SessionId::NONE && !self.sessions.contains_key(&session) {
            return Err(ZkError::SessionExpired.into());
        }
        // The scratch's zxid only stamps stats that prep never shows anyone.
        let mut scratch = Scratch::new(self, self.last_zxid);
        match op {
            Op::Check { .. } => Err(ZkError::BadArguments.into()),
            Op::CloseSession if session == SessionId::NONE => Err(ZkError::BadArguments.into()),
            Op::CloseSession => Ok(Txn::CloseSession { session }),
            Op::Multi { ops } => {
                let mut txns = Vec::with_capacity(ops.len());
                for (index, op) in ops.iter().enumerate() {
                    let txn = scratch.prep(session, op).map_err(|error| OpError {
                        error,
                        index: Some(index),
                    })?;
                    txns.push(txn);
                }
                Ok(Txn::Multi { txns })
            }
            _ => Ok(scratch.prep(session, op)?),
        }
    }

    // --- every replica: apply ---

    /// Applies a decided transaction at `header.zxid`. Total: a transaction that does not
    /// fit this tree changes nothing (a `Multi` is all or nothing) and returns its error.
    ///
    /// # Panics
    /// If `header.zxid` is not beyond [`DataTree::last_zxid`]: the caller broke zxid order.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        let zxid = header.zxid;
        assert!(
            zxid > self.last_zxid,
            "applying zxid {zxid} after {}: zxids must increase",
            self.last_zxid
        );
        let mut events = Vec::new();
        let result = match txn {
            Txn::Error { error } => Err(error.clone()),
            Txn::CreateSession {
                session,
                timeout_ms,
            } => self.create_session(*session, *timeout_ms),
            Txn::CloseSession { session } => {
                self.close_session(zxid, *session, &mut events);
                Ok(OpResult::Closed)
            }
            Txn::Multi { txns } => match self.apply_all(zxid, txns, &mut events) {
                Ok(results) => Ok(OpResult::Multi { results }),
                Err((index, error)) => Err(OpError {
                    error,
                    index: Some(index),
                }),
            },
            single => match self.apply_all(zxid, std::slice::from_ref(single), &mut events) {
                Ok(mut results) => Ok(results.pop().expect("one result per txn")),
                Err((_, error)) => Err(error.into()),
            },
        };
        self.last_zxid = zxid;
        Applied { result, events }
    }

    fn create_session(&mut self, session: SessionId, timeout_ms: u32) -> Result<OpResult, OpError> {
        if session == SessionId::NONE {
            return Err(ZkError::BadArguments.into());
        }
        self.sessions
            .entry(session)
            .and_modify(|s| s.timeout_ms = timeout_ms)
            .or_insert_with(|| Session {
                timeout_ms,
                ephemerals: BTreeSet::new(),
            });
        Ok(OpResult::SessionCreated)
    }

    /// Deletes the session's ephemeral znodes (in path order) and forgets it; an unknown
    /// session is a no-op.
    fn close_session(&mut self, zxid: Zxid, session: SessionId, events: &mut Vec<WatchedEvent>) {
        let Some(owned) = self.sessions.get(&session) else {
            return;
        };
        for path in owned.ephemerals.clone() {
            self.delete_node(zxid, &path, events);
        }
        let closed = self.sessions.remove(&session).expect("session is live");
        assert!(closed.ephemerals.is_empty(), "ephemerals left after close");
    }

    /// Applies `txns` (Create / Delete / SetData / Check) all or none: validates them in
    /// order on a scratch view first; on failure returns the failing index and error.
    fn apply_all(
        &mut self,
        zxid: Zxid,
        txns: &[Txn],
        events: &mut Vec<WatchedEvent>,
    ) -> Result<Vec<OpResult>, (usize, ZkError)> {
        let mut scratch = Scratch::new(self, zxid);
        for (index, txn) in txns.iter().enumerate() {
            scratch.apply(txn).map_err(|error| (index, error))?;
        }
        let expected = scratch.changed;
        let results = txns
            .iter()
            .map(|txn| self.mutate(zxid, txn, events))
            .collect();
        // The validation's view and the real change must agree, znode by znode.
        for (path, stat) in &expected {
            assert_eq!(
                self.nodes.get(path).map(|node| &node.stat),
                stat.as_ref(),
                "apply disagrees with its validation at {path}"
            );
        }
        Ok(results)
    }

    /// Performs one validated transaction.
    fn mutate(&mut self, zxid: Zxid, txn: &Txn, events: &mut Vec<WatchedEvent>) -> OpResult {
        match txn {
            Txn::Create {
                path,
                data,
                ephemeral_owner,
            } => {
                let stat = self.create_node(zxid, path, data, *ephemeral_owner, events);
                OpResult::Created {
                    path: path.clone(),
                    stat,
                }
            }
            Txn::Delete { path } => {
                self.delete_node(zxid, path, events);
                OpResult::Deleted
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                let node = self.nodes.get_mut(path).expect("validated: znode exists");
                node.data = data.clone();
                on_data_set(&mut node.stat, zxid, *version, data_length(data));
                events.push(event(EventType::NodeDataChanged, path));
                OpResult::DataSet {
                    stat: node.stat.clone(),
                }
            }
            Txn::Check { .. } => OpResult::Checked,
            other => unreachable!("validation refuses {other:?} here"),
        }
    }

    fn create_node(
        &mut self,
        zxid: Zxid,
        path: &str,
        data: &[u8],
        owner: SessionId,
        events: &mut Vec<WatchedEvent>,
    ) -> Stat {
        let (parent_path, name) = parent_and_name(path);
        let parent = self.nodes.get_mut(parent_path).expect("parent exists");
        assert_eq!(
            parent.stat.ephemeral_owner,
            SessionId::NONE,
            "ephemeral parent"
        );
        assert!(parent.children.insert(name.to_string()), "{path} exists");
        on_child_added(&mut parent.stat, zxid);
        assert_eq!(parent.stat.num_children as usize, parent.children.len());
        let stat = new_stat(zxid, owner, data_length(data));
        let node = Znode {
            data: data.to_vec(),
            stat: stat.clone(),
            children: BTreeSet::new(),
        };
        assert!(
            self.nodes.insert(path.to_string(), node).is_none(),
            "{path} exists"
        );
        if owner != SessionId::NONE {
            let session = self.sessions.get_mut(&owner).expect("owner is live");
            assert!(session.ephemerals.insert(path.to_string()));
        }
        events.push(event(EventType::NodeCreated, path));
        events.push(event(EventType::NodeChildrenChanged, parent_path));
        stat
    }

    fn delete_node(&mut self, zxid: Zxid, path: &str, events: &mut Vec<WatchedEvent>) {
        let node = self.nodes.remove(path).expect("znode exists");
        assert!(node.children.is_empty(), "deleting {path} with children");
        let (parent_path, name) = parent_and_name(path);
        let parent = self.nodes.get_mut(parent_path).expect("parent exists");
        assert!(
            parent.children.remove(name),
            "{path} not listed by its parent"
        );
        on_child_removed(&mut parent.stat, zxid);
        assert_eq!(parent.stat.num_children as usize, parent.children.len());
        let owner = node.stat.ephemeral_owner;
        if owner != SessionId::NONE {
            let session = self.sessions.get_mut(&owner).expect("owner is live");
            assert!(session.ephemerals.remove(path), "{path} not indexed");
        }
        events.push(event(EventType::NodeDeleted, path));
        events.push(event(EventType::NodeChildrenChanged, parent_path));
    }

    fn node(&self, path: &str) -> Result<&Znode, ZkError> {
        validate_path(path)?;
        self.nodes.get(path).ok_or(ZkError::NoNode)
    }
}

/// A copy-on-write view of the tree's stats: where `prep` and `apply` validate a sequence of
/// transactions, each seeing the previous ones' effects, without touching the tree. The one
/// definition of "a transaction fits the tree".
struct Scratch<'t> {
    tree: &'t DataTree,
    zxid: Zxid,
    /// Stats changed so far; `None` = deleted.
    changed: BTreeMap<String, Option<Stat>>,
}

impl<'t> Scratch<'t> {
    fn new(tree: &'t DataTree, zxid: Zxid) -> Scratch<'t> {
        Scratch {
            tree,
            zxid,
            changed: BTreeMap::new(),
        }
    }

    fn stat(&self, path: &str) -> Option<&Stat> {
        match self.changed.get(path) {
            Some(stat) => stat.as_ref(),
            None => self.tree.nodes.get(path).map(|node| &node.stat),
        }
    }

    /// Decides the transaction for one operation (of a multi, or alone) and applies it to
    /// the view.
    fn prep(&mut self, session: SessionId, op: &Op) -> Result<Txn, ZkError> {
        let txn = match op {
            Op::Create { path, data, mode } => {
                if mode.is_ephemeral() && session == SessionId::NONE {
                    return Err(ZkError::BadArguments);
                }
                let path = if mode.is_sequential() {
                    self.sequential_path(path)?
                } else {
                    path.clone()
                };
                let ephemeral_owner = if mode.is_ephemeral() {
                    session
                } else {
                    SessionId::NONE
                };
                Txn::Create {
                    path,
                    data: data.clone(),
                    ephemeral_owner,
                }
            }
            Op::Delete { path, version } => {
                validate_path(path)?;
                if path == ROOT {
                    return Err(ZkError::BadArguments);
                }
                self.check_version(path, *version)?;
                Txn::Delete { path: path.clone() }
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                validate_path(path)?;
                let current = self.check_version(path, *version)?;
                Txn::SetData {
                    path: path.clone(),
                    data: data.clone(),
                    version: current.wrapping_add(1),
                }
            }
            Op::Check { path, version } => {
                validate_path(path)?;
                self.check_version(path, *version)?;
                Txn::Check { path: path.clone() }
            }
            _ => return Err(ZkError::BadArguments),
        };
        self.apply(&txn)?;
        Ok(txn)
    }

    /// `prefix` + the parent's cversion, 10 digits (ZooKeeper's sequential name).
    fn sequential_path(&self, prefix: &str) -> Result<String, ZkError> {
        let probe = format!("{prefix}{:010}", 0);
        validate_path(&probe)?;
        let (parent, _) = parent_and_name(&probe);
        let cversion = self.stat(parent).ok_or(ZkError::NoNode)?.cversion;
        Ok(format!("{prefix}{cversion:010}"))
    }

    /// The znode's current version, if `expected` matches it (-1 matches any).
    fn check_version(&self, path: &str, expected: i32) -> Result<i32, ZkError> {
        let version = self.stat(path).ok_or(ZkError::NoNode)?.version;
        if expected != -1 && expected != version {
            return Err(ZkError::BadVersion);
        }
        Ok(version)
    }

    /// Checks that `txn` fits the view and applies it to the view.
    fn apply(&mut self, txn: &Txn) -> Result<(), ZkError> {
        match txn {
            Txn::Create {
                path,
                data,
                ephemeral_owner,
            } => self.create(path, data, *ephemeral_owner),
            Txn::Delete { path } => self.delete(path),
            Txn::SetData {
                path,
                data,
                version,
            } => {
                validate_path(path)?;
                let data_length = u32::try_from(data.len()).map_err(|_| ZkError::BadArguments)?;
                let mut stat = self.stat(path).ok_or(ZkError::NoNode)?.clone();
                if *version != stat.version.wrapping_add(1) {
                    return Err(ZkError::BadVersion);
                }
                on_data_set(&mut stat, self.zxid, *version, data_length);
                self.changed.insert(path.clone(), Some(stat));
                Ok(())
            }
            Txn::Check { path } => {
                validate_path(path)?;
                self.stat(path).map(|_| ()).ok_or(ZkError::NoNode)
            }
            // Only the operations of a multi go through here.
            Txn::Multi { .. }
            | Txn::Error { .. }
            | Txn::CreateSession { .. }
            | Txn::CloseSession { .. } => Err(ZkError::BadArguments),
        }
    }

    fn create(&mut self, path: &str, data: &[u8], owner: SessionId) -> Result<(), ZkError> {
        validate_path(path)?;
        if path == ROOT {
            return Err(ZkError::NodeExists);
        }
        let data_length = u32::try_from(data.len()).map_err(|_| ZkError::BadArguments)?;
        let (parent_path, _) = parent_and_name(path);
        let mut parent = self.stat(parent_path).ok_or(ZkError::NoNode)?.clone();
        if parent.ephemeral_owner != SessionId::NONE {
            return Err(ZkError::NoChildrenForEphemerals);
        }
        if self.stat(path).is_some() {
            return Err(ZkError::NodeExists);
        }
        if owner != SessionId::NONE && !self.tree.sessions.contains_key(&owner) {
            return Err(ZkError::SessionExpired);
        }
        on_child_added(&mut parent, self.zxid);
        self.changed.insert(parent_path.to_string(), Some(parent));
        let stat = new_stat(self.zxid, owner, data_length);
        self.changed.insert(path.to_string(), Some(stat));
        Ok(())
    }

    fn delete(&mut self, path: &str) -> Result<(), ZkError> {
        validate_path(path)?;
        if path == ROOT {
            return Err(ZkError::BadArguments);
        }
        let stat = self.stat(path).ok_or(ZkError::NoNode)?;
        if stat.num_children > 0 {
            return Err(ZkError::NotEmpty);
        }
        let (parent_path, _) = parent_and_name(path);
        let mut parent = self
            .stat(parent_path)
            .expect("a znode's parent exists")
            .clone();
        on_child_removed(&mut parent, self.zxid);
        self.changed.insert(parent_path.to_string(), Some(parent));
        self.changed.insert(path.to_string(), None);
        Ok(())
    }
}

// --- stat bookkeeping: the one place each rule is written ---

/// A new znode's stat: created, modified and children-changed at `zxid`, versions 0.
fn new_stat(zxid: Zxid, owner: SessionId, data_length: u32) -> Stat {
    Stat {
        czxid: zxid,
        mzxid: zxid,
        pzxid: zxid,
        version: 0,
        cversion: 0,
        ephemeral_owner: owner,
        data_length,
        num_children: 0,
    }
}

/// A child was created: cversion + 1, pzxid, one more child.
fn on_child_added(parent: &mut Stat, zxid: Zxid) {
    parent.cversion = parent.cversion.wrapping_add(1);
    parent.pzxid = zxid;
    parent.num_children += 1;
}

/// A child was deleted: cversion + 1 (deletes count too), pzxid, one child less.
fn on_child_removed(parent: &mut Stat, zxid: Zxid) {
    assert!(
        parent.num_children > 0,
        "removing a child of a childless znode"
    );
    parent.cversion = parent.cversion.wrapping_add(1);
    parent.pzxid = zxid;
    parent.num_children -= 1;
}

/// The data was replaced: the decided version, mzxid, length.
fn on_data_set(stat: &mut Stat, zxid: Zxid, version: i32, data_length: u32) {
    stat.version = version;
    stat.mzxid = zxid;
    stat.data_length = data_length;
}

fn data_length(data: &[u8]) -> u32 {
    u32::try_from(data.len()).expect("validated: data length fits in u32")
}

fn event(event: EventType, path: &str) -> WatchedEvent {
    WatchedEvent {
        event,
        path: path.to_string(),
    }
}
