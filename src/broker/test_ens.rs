//! Test support: an ensemble in memory for the broker and controller cores. One data tree
//! (`zk::tree`, the ensemble's own), applied in order, with sessions, ephemerals, watches
//! and `multi` as a real ensemble has them, but no servers, network or failures: a test
//! injects those by choosing what outcome to hand back.

use super::zk_paths as paths;
use super::TopicPartition;
use crate::zk::tree::{Applied, DataTree, WatchManager};
use crate::zk::{
    CreateMode, Epoch, Op, OpError, OpResult, SessionId, Txn, TxnHeader, WatchedEvent, Xid, Zxid,
};

/// An ensemble in memory.
pub struct Ens {
    pub tree: DataTree,
    pub watches: WatchManager,
    counter: u32,
}

impl Ens {
    /// A tree holding the persistent parents brokers create.
    pub fn new() -> Ens {
        let mut ens = Ens {
            tree: DataTree::new(),
            watches: WatchManager::default(),
            counter: 0,
        };
        for path in paths::PARENTS {
            let op = Op::Create {
                path: path.into(),
                data: vec![],
                mode: CreateMode::Persistent,
            };
            ens.write(SessionId::NONE, &op).0.unwrap();
        }
        ens
    }

    /// The zxid of the last transaction applied.
    pub fn last_zxid(&self) -> Zxid {
        Zxid::new(Epoch(1), self.counter)
    }

    fn apply(&mut self, session: SessionId, txn: &Txn) -> Applied {
        self.counter += 1;
        let header = TxnHeader {
            zxid: self.last_zxid(),
            session,
            xid: Xid(0),
            time_ms: 0,
        };
        self.tree.apply(&header, txn)
    }

    /// Commits a write of `session`; returns its result and the watches it fired.
    pub fn write(
        &mut self,
        session: SessionId,
        op: &Op,
    ) -> (Result<OpResult, OpError>, Vec<(SessionId, WatchedEvent)>) {
        let txn = self.tree.prep(session, op);
        let applied = self.apply(session, &txn);
        let fired = self.watches.trigger(&applied.events);
        (applied.result, fired)
    }

    /// Runs any operation of `session`: a write commits, a read leaves the watch it asks for.
    pub fn run(
        &mut self,
        session: SessionId,
        op: &Op,
    ) -> (Result<OpResult, OpError>, Vec<(SessionId, WatchedEvent)>) {
        if op.is_write() {
            return self.write(session, op);
        }
        let result = self.tree.read(op);
        match op {
            Op::GetData { path, watch: true } | Op::Exists { path, watch: true } => {
                self.watches.add_data_watch(path, session)
            }
            Op::GetChildren { path, watch: true } => self.watches.add_child_watch(path, session),
            _ => {}
        }
        (result, Vec::new())
    }

    /// Opens a session.
    pub fn open(&mut self, session: SessionId) {
        let txn = Txn::CreateSession {
            session,
            timeout_ms: 6000,
        };
        self.apply(SessionId::NONE, &txn).result.unwrap();
    }

    /// Expires a session: its ephemerals go, their watches fire.
    pub fn expire(&mut self, session: SessionId) -> Vec<(SessionId, WatchedEvent)> {
        let applied = self.apply(SessionId::NONE, &Txn::CloseSession { session });
        self.watches.remove_watcher(session);
        self.watches.trigger(&applied.events)
    }

    /// Creates an ephemeral znode owned by `session`; returns the watches it fired.
    pub fn ephemeral(
        &mut self,
        session: SessionId,
        path: &str,
        data: Vec<u8>,
    ) -> Vec<(SessionId, WatchedEvent)> {
        let op = Op::Create {
            path: path.into(),
            data,
            mode: CreateMode::Ephemeral,
        };
        let (result, fired) = self.write(session, &op);
        result.unwrap();
        fired
    }

    /// A partition's state znode.
    pub fn state(&self, tp: &TopicPartition) -> paths::StateZnode {
        let (data, _) = self.tree.get_data(&paths::state_path(tp)).unwrap();
        paths::decode(&data).unwrap()
    }
}
