//! Snapshots of the data tree (serde), their validation, and the tree's digest.
//!
//! A snapshot is the canonical content of a tree: znodes sorted by path (root included),
//! sessions sorted by id, and the zxid of the last applied transaction. Children lists and
//! the ephemeral index are derived from it. `from_snapshot` accepts exactly the snapshots a
//! tree could have produced (structurally), so a corrupt or hand-made one is an `Err`, never
//! a panic and never a tree that breaks an invariant later.

use super::{child_path, parent_and_name, validate_path, DataTree, Session, Znode, ROOT};
use crate::zk::{SessionId, Stat, Zxid};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The whole tree at one zxid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last transaction applied.
    pub zxid: Zxid,
    /// Every znode, sorted by path, the root included.
    pub nodes: Vec<SnapshotNode>,
    /// Live sessions and their timeouts, sorted by id.
    pub sessions: Vec<(SessionId, u32)>,
}

/// One znode of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotNode {
    /// Absolute path.
    pub path: String,
    /// Data.
    pub data: Vec<u8>,
    /// Stat (its `num_children` must match the snapshot's znodes).
    pub stat: Stat,
}

impl DataTree {
    /// The tree's canonical content.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            zxid: self.last_zxid,
            nodes: self
                .nodes
                .iter()
                .map(|(path, node)| SnapshotNode {
                    path: path.clone(),
                    data: node.data.clone(),
                    stat: node.stat.clone(),
                })
                .collect(),
            sessions: self.sessions(),
        }
    }

    /// Rebuilds a tree from a snapshot, refusing one that breaks the tree's invariants
    /// (unsorted or duplicate entries, a missing root or parent, wrong child counts or data
    /// lengths, an ephemeral with children or a dead owner, stats from the future...).
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<DataTree, String> {
        let mut sessions = BTreeMap::new();
        for &(id, timeout_ms) in &snapshot.sessions {
            if sessions.keys().next_back().is_some_and(|&last| last >= id) {
                return Err(format!("session {id}: sessions not sorted or duplicated"));
            }
            let ephemerals = BTreeSet::new();
            sessions.insert(
                id,
                Session {
                    timeout_ms,
                    ephemerals,
                },
            );
        }
        let mut nodes: BTreeMap<String, Znode> = BTreeMap::new();
        for node in &snapshot.nodes {
            let path = &node.path;
            if nodes.keys().next_back().is_some_and(|last| last >= path) {
                return Err(format!("{path:?}: znodes not sorted or duplicated"));
            }
            validate_path(path).map_err(|_| format!("{path:?}: invalid path"))?;
            // Sorted order puts a parent (a prefix) before its children.
            if path != ROOT {
                let (parent, name) = parent_and_name(path);
                let parent = nodes
                    .get_mut(parent)
                    .ok_or_else(|| format!("{path}: parent missing"))?;
                parent.children.insert(name.to_string());
            }
            let owner = node.stat.ephemeral_owner;
            if owner != SessionId::NONE {
                let session = sessions
                    .get_mut(&owner)
                    .ok_or_else(|| format!("{path}: owner {owner} is not a live session"))?;
                session.ephemerals.insert(path.clone());
            }
            let znode = Znode {
                data: node.data.clone(),
                stat: node.stat.clone(),
                children: BTreeSet::new(),
            };
            nodes.insert(path.clone(), znode);
        }
        let tree = DataTree {
            nodes,
            sessions,
            last_zxid: snapshot.zxid,
        };
        tree.verify()?;
        Ok(tree)
    }

    /// Checks every structural invariant of the tree (see the module doc); the first broken
    /// one is the error. O(size of the tree): for tests, checkers and `from_snapshot`.
    pub fn verify(&self) -> Result<(), String> {
        let root = self.nodes.get(ROOT).ok_or("the root is missing")?;
        if root.stat.ephemeral_owner != SessionId::NONE {
            return Err("the root is ephemeral".to_string());
        }
        for (path, node) in &self.nodes {
            self.verify_node(path, node)
                .map_err(|error| format!("{path}: {error}"))?;
        }
        for (&id, session) in &self.sessions {
            if id == SessionId::NONE {
                return Err("session 0 is live".to_string());
            }
            for path in &session.ephemerals {
                let owner = self.nodes.get(path).map(|n| n.stat.ephemeral_owner);
                if owner != Some(id) {
                    return Err(format!("session {id} indexes {path}, owned by {owner:?}"));
                }
            }
        }
        Ok(())
    }

    fn verify_node(&self, path: &str, node: &Znode) -> Result<(), String> {
        validate_path(path).map_err(|_| "invalid path")?;
        if path != ROOT {
            let (parent_path, name) = parent_and_name(path);
            let parent = self.nodes.get(parent_path).ok_or("parent missing")?;
            if !parent.children.contains(name) {
                return Err("not listed by its parent".to_string());
            }
            if parent.stat.ephemeral_owner != SessionId::NONE {
                return Err("child of an ephemeral znode".to_string());
            }
        }
        for name in &node.children {
            if !self.nodes.contains_key(&child_path(path, name)) {
                return Err(format!("child {name:?} missing"));
            }
        }
        let stat = &node.stat;
        if stat.num_children as usize != node.children.len() {
            return Err(format!(
                "num_children {} but {} children",
                stat.num_children,
                node.children.len()
            ));
        }
        if stat.data_length as usize != node.data.len() {
            return Err(format!(
                "data_length {} but {} bytes",
                stat.data_length,
                node.data.len()
            ));
        }
        let zxids_ordered = stat.czxid <= stat.mzxid
            && stat.czxid <= stat.pzxid
            && stat.mzxid <= self.last_zxid
            && stat.pzxid <= self.last_zxid;
        if !zxids_ordered {
            return Err(format!("stat zxids out of order: {stat:?}"));
        }
        let owner = stat.ephemeral_owner;
        if owner != SessionId::NONE {
            let indexed = self
                .sessions
                .get(&owner)
                .is_some_and(|s| s.ephemerals.contains(path));
            if !indexed {
                return Err(format!("owner {owner} is not live or does not index it"));
            }
        }
        Ok(())
    }

    /// FNV-1a (64-bit) over the canonical content — last zxid, every znode's path, data and
    /// stat, every session — so equal trees have equal digests and (barring collisions)
    /// different trees different ones. Deterministic across runs and platforms.
    pub fn digest(&self) -> u64 {
        let mut hash = Fnv::new();
        hash.u64(self.last_zxid.0);
        hash.u64(self.nodes.len() as u64);
        for (path, node) in &self.nodes {
            hash.bytes(path.as_bytes());
            hash.bytes(&node.data);
            let stat = &node.stat;
            for zxid in [stat.czxid, stat.mzxid, stat.pzxid] {
                hash.u64(zxid.0);
            }
            hash.u64(stat.version as u32 as u64);
            hash.u64(stat.cversion as u32 as u64);
            hash.u64(stat.ephemeral_owner.0);
            hash.u64(u64::from(stat.data_length));
            hash.u64(u64::from(stat.num_children));
        }
        hash.u64(self.sessions.len() as u64);
        for (id, session) in &self.sessions {
            hash.u64(id.0);
            hash.u64(u64::from(session.timeout_ms));
        }
        hash.0
    }
}

/// 64-bit FNV-1a, fed length-prefixed fields so that concatenations cannot collide.
struct Fnv(u64);

impl Fnv {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv {
        Fnv(Fnv::OFFSET_BASIS)
    }

    fn raw(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Fnv::PRIME);
        }
    }

    fn u64(&mut self, value: u64) {
        self.raw(&value.to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.raw(bytes);
    }
}
