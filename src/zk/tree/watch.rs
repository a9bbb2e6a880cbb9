//! One server's watch tables (ZooKeeper's `WatchManager`): not replicated, lost with the
//! server, one-shot.
//!
//! Invariant: no path maps to an empty watcher set, so `is_empty` is exact.

use crate::zk::{EventType, SessionId, WatchedEvent};
use std::collections::{BTreeMap, BTreeSet};

/// The data and child watches a server's clients left, by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchManager {
    /// From `getData` and `exists` (which may watch a missing path).
    data: BTreeMap<String, BTreeSet<SessionId>>,
    /// From `getChildren`.
    child: BTreeMap<String, BTreeSet<SessionId>>,
}

impl WatchManager {
    /// Leaves a data watch on `path` (fires on NodeCreated, NodeDataChanged, NodeDeleted).
    pub fn add_data_watch(&mut self, path: &str, watcher: SessionId) {
        self.data
            .entry(path.to_string())
            .or_default()
            .insert(watcher);
    }

    /// Leaves a child watch on `path` (fires on NodeChildrenChanged, NodeDeleted).
    pub fn add_child_watch(&mut self, path: &str, watcher: SessionId) {
        self.child
            .entry(path.to_string())
            .or_default()
            .insert(watcher);
    }

    /// Fires and removes the watches `events` trigger: who gets which event, in the order of
    /// `events`, then by watcher id. A watcher with both a data and a child watch on a
    /// deleted znode gets one NodeDeleted.
    pub fn trigger(&mut self, events: &[WatchedEvent]) -> Vec<(SessionId, WatchedEvent)> {
        let mut fired = Vec::new();
        for event in events {
            let (data, child) = match event.event {
                EventType::NodeCreated | EventType::NodeDataChanged => (true, false),
                EventType::NodeDeleted => (true, true),
                EventType::NodeChildrenChanged => (false, true),
            };
            let mut watchers = BTreeSet::new();
            if data {
                watchers.extend(self.data.remove(&event.path).unwrap_or_default());
            }
            if child {
                watchers.extend(self.child.remove(&event.path).unwrap_or_default());
            }
            fired.extend(watchers.into_iter().map(|w| (w, event.clone())));
        }
        fired
    }

    /// Forgets every watch of `watcher` (its session closed or its connection is gone).
    pub fn remove_watcher(&mut self, watcher: SessionId) {
        for table in [&mut self.data, &mut self.child] {
            table.retain(|_, watchers| {
                watchers.remove(&watcher);
                !watchers.is_empty()
            });
        }
    }

    /// The paths `watcher` watches: (data watches, child watches), sorted.
    pub fn watches_of(&self, watcher: SessionId) -> (Vec<String>, Vec<String>) {
        let paths = |table: &BTreeMap<String, BTreeSet<SessionId>>| {
            table
                .iter()
                .filter(|(_, watchers)| watchers.contains(&watcher))
                .map(|(path, _)| path.clone())
                .collect()
        };
        (paths(&self.data), paths(&self.child))
    }

    /// Whether no watch is left.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.child.is_empty()
    }
}
