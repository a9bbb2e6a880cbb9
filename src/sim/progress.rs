//! Liveness probes: what the world needs to know to end its phases — which nodes are up and
//! serving, when each last made progress, and whether a node crashed.
//!
//! Owns: [`Progress`]. Shells report into it; the world reads it to wait for setup and for
//! convergence. Checkers do not use it: they judge from the recorded history alone.

use super::trace::sim_now_us;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared liveness probes of one run.
#[derive(Clone, Default)]
pub struct Progress {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    ready: BTreeMap<String, u64>,
    last_ack: BTreeMap<String, u64>,
    crash: Option<Crash>,
    /// Ensemble servers: (state, epoch) as last announced (`leading`, `following`,
    /// `looking`, or `down` when the world stopped it).
    zk: BTreeMap<String, (String, u64)>,
}

/// A node panicked: a broken invariant, reported with the seed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Crash {
    /// The node whose task panicked (`world` for the simulation itself).
    pub node: String,
    /// The panic message and location.
    pub message: String,
    /// Simulated time of the panic, microseconds.
    pub at_us: u64,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `node` finished starting (e.g. recovered its log) and serves.
    pub fn ready(&self, node: &str) {
        self.lock().ready.insert(node.to_string(), sim_now_us());
    }

    /// `node` acknowledged an operation now.
    pub fn acked(&self, node: &str) {
        self.lock().last_ack.insert(node.to_string(), sim_now_us());
    }

    /// Whether every one of `nodes` has become ready since `since_us`.
    pub fn all_ready_since(&self, nodes: &[String], since_us: u64) -> bool {
        let inner = self.lock();
        nodes
            .iter()
            .all(|n| inner.ready.get(n).is_some_and(|&at| at >= since_us))
    }

    /// The nodes of `nodes` that have not acknowledged anything since `since_us`.
    pub fn idle_since(&self, nodes: &[String], since_us: u64) -> Vec<String> {
        let inner = self.lock();
        nodes
            .iter()
            .filter(|n| inner.last_ack.get(*n).is_none_or(|&at| at < since_us))
            .cloned()
            .collect()
    }

    /// An ensemble server announced its state.
    pub fn zk_state(&self, node: &str, state: &str, epoch: u64) {
        self.lock()
            .zk
            .insert(node.to_string(), (state.to_string(), epoch));
    }

    /// The serving leader of the newest epoch, if one announced itself and still leads.
    pub fn zk_leader(&self) -> Option<String> {
        let inner = self.lock();
        inner
            .zk
            .iter()
            .filter(|(_, (state, _))| state == "leading")
            .max_by_key(|(name, (_, epoch))| (*epoch, (*name).clone()))
            .map(|(name, _)| name.clone())
    }

    /// Records a crash (the first one wins).
    pub fn crashed(&self, crash: Crash) {
        self.lock().crash.get_or_insert(crash);
    }

    /// The crash, if a node crashed.
    pub fn crash(&self) -> Option<Crash> {
        self.lock().crash.clone()
    }
}
