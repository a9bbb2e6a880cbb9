//! STUB (replaced by the zk-tree branch at merge).
#![allow(missing_docs, dead_code, unused_variables)]
use super::types::*;
#[derive(Clone, Debug, Default)]
pub struct DataTree;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub result: Result<OpResult, OpError>,
    pub events: Vec<WatchedEvent>,
}
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub zxid: Zxid,
    pub nodes: Vec<SnapshotNode>,
    pub sessions: Vec<(SessionId, u32)>,
}
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotNode {
    pub path: String,
    pub data: Vec<u8>,
    pub stat: Stat,
}
impl DataTree {
    pub fn new() -> DataTree {
        todo!()
    }
    pub fn last_zxid(&self) -> Zxid {
        todo!()
    }
    pub fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), ZkError> {
        todo!()
    }
    pub fn stat(&self, path: &str) -> Option<Stat> {
        todo!()
    }
    pub fn children(&self, path: &str) -> Result<Vec<String>, ZkError> {
        todo!()
    }
    pub fn read(&self, op: &Op) -> Result<OpResult, OpError> {
        todo!()
    }
    pub fn session_timeout(&self, session: SessionId) -> Option<u32> {
        todo!()
    }
    pub fn sessions(&self) -> Vec<(SessionId, u32)> {
        todo!()
    }
    pub fn ephemerals_of(&self, session: SessionId) -> Vec<String> {
        todo!()
    }
    pub fn prep(&self, session: SessionId, op: &Op) -> Txn {
        todo!()
    }
    pub fn apply(&mut self, header: &TxnHeader, txn: &Txn) -> Applied {
        todo!()
    }
    pub fn snapshot(&self) -> Snapshot {
        todo!()
    }
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<DataTree, String> {
        todo!()
    }
    pub fn digest(&self) -> u64 {
        todo!()
    }
}
#[derive(Clone, Debug, Default)]
pub struct WatchManager;
impl WatchManager {
    pub fn add_data_watch(&mut self, path: &str, watcher: SessionId) {
        todo!()
    }
    pub fn add_child_watch(&mut self, path: &str, watcher: SessionId) {
        todo!()
    }
    pub fn trigger(&mut self, events: &[WatchedEvent]) -> Vec<(SessionId, WatchedEvent)> {
        todo!()
    }
    pub fn remove_watcher(&mut self, watcher: SessionId) {
        todo!()
    }
    pub fn watches_of(&self, watcher: SessionId) -> (Vec<String>, Vec<String>) {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        todo!()
    }
}
