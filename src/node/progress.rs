//! Liveness probes: what the world needs to know to end its phases — which nodes are up and
//! serving, when each last made progress, and whether a node crashed.
//!
//! Owns: [`Progress`]. Shells report into it; the world reads it to wait for setup and for
//! convergence. Checkers do not use it: they judge from the recorded history alone.

use super::recorder::sim_now_us;
use crate::broker::coordinator::GroupState;
use crate::broker::proto::Generation;
use crate::broker::server::LedPartition;
use crate::broker::{ControllerEpoch, TopicPartition};
use crate::history::Crash;
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
    /// Brokers: what each leads (partition, ISR size, HW) and its controller epoch if it
    /// is an active controller; removed when the world stops it.
    brokers: BTreeMap<String, BrokerProbe>,
    /// The world asked producers to stop sending new records (the final drain).
    draining: bool,
    /// Producers: sends not yet completed, as last reported.
    pending_sends: BTreeMap<String, usize>,
    /// Groups: the greatest offset stored for each partition, as members were told.
    committed: BTreeMap<String, BTreeMap<TopicPartition, u64>>,
    /// Group members: the generation they take part in, while they are in it with every
    /// partition's position known (`None` while they join, sync or fetch offsets).
    synced: BTreeMap<String, Option<Generation>>,
}

/// What a live broker last reported.
#[derive(Clone, Debug, Default)]
struct BrokerProbe {
    led: Vec<LedPartition>,
    controller_epoch: Option<ControllerEpoch>,
    /// The groups it coordinates: state and generation.
    groups: Vec<(String, GroupState, Generation)>,
}

/// Where the ensemble's servers stand (see [`Progress::zk_epoch`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZkEpoch {
    /// The newest epoch a server leads or follows in.
    pub epoch: Option<u64>,
    /// The server leading that epoch, if one still does.
    pub leader: Option<String>,
    /// The servers not leading or following in that epoch: looking, down, or still in an
    /// older one (a deposed leader or its follower that has not noticed yet).
    pub behind: Vec<String>,
}

impl ZkEpoch {
    /// Every server leads or follows in the newest epoch, and it has a leader.
    pub fn converged(&self) -> bool {
        self.leader.is_some() && self.behind.is_empty()
    }
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
        let now = sim_now_us();
        let mut inner = self.lock();
        match inner.last_ack.get_mut(node) {
            Some(at) => *at = now,
            None => {
                inner.last_ack.insert(node.to_string(), now);
            }
        }
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

    /// Where the servers of `servers` stand: the newest epoch any of them leads or follows
    /// in, its leader if one still leads it, and those not leading or following in it.
    pub fn zk_epoch(&self, servers: &[String]) -> ZkEpoch {
        let inner = self.lock();
        let serving = |name: &String| {
            inner
                .zk
                .get(name)
                .filter(|(state, _)| state == "leading" || state == "following")
        };
        let epoch = servers
            .iter()
            .filter_map(|n| serving(n).map(|(_, epoch)| *epoch))
            .max();
        let leader = servers
            .iter()
            .find(|n| serving(n).is_some_and(|(state, e)| state == "leading" && Some(*e) == epoch))
            .cloned();
        let behind = servers
            .iter()
            .filter(|n| serving(n).is_none_or(|(_, e)| Some(*e) != epoch))
            .cloned()
            .collect();
        ZkEpoch {
            epoch,
            leader,
            behind,
        }
    }

    /// A broker reports what it leads and whether it is the active controller.
    pub fn broker_state(
        &self,
        node: &str,
        led: Vec<LedPartition>,
        controller_epoch: Option<ControllerEpoch>,
    ) {
        let mut inner = self.lock();
        if !inner.brokers.contains_key(node) {
            inner.brokers.insert(node.to_string(), Default::default());
        }
        let probe = inner.brokers.get_mut(node).expect("inserted above");
        probe.led = led;
        probe.controller_epoch = controller_epoch;
    }

    /// A broker reports the groups it coordinates.
    pub fn coordinated_groups(&self, node: &str, groups: Vec<(String, GroupState, Generation)>) {
        let mut inner = self.lock();
        if !inner.brokers.contains_key(node) {
            inner.brokers.insert(node.to_string(), Default::default());
        }
        inner.brokers.get_mut(node).expect("inserted above").groups = groups;
    }

    /// Whether a live broker coordinates `group` as Stable in `generation`.
    pub fn group_stable(&self, group: &str, generation: Generation) -> bool {
        self.lock().brokers.values().any(|p| {
            p.groups.iter().any(|(g, state, gen)| {
                g == group && *state == GroupState::Stable && *gen == generation
            })
        })
    }

    /// The world stopped a broker: it leads nothing any more.
    pub fn broker_down(&self, node: &str) {
        self.lock().brokers.remove(node);
    }

    /// The broker leading `tp`, if one says so (the first by name if several do).
    pub fn partition_leader(&self, tp: &TopicPartition) -> Option<String> {
        let inner = self.lock();
        inner
            .brokers
            .iter()
            .find(|(_, p)| p.led.iter().any(|l| l.partition == *tp))
            .map(|(name, _)| name.clone())
    }

    /// The active controller of the newest epoch, if one says so.
    pub fn controller(&self) -> Option<String> {
        let inner = self.lock();
        inner
            .brokers
            .iter()
            .filter_map(|(name, p)| p.controller_epoch.map(|e| (e, name)))
            .max()
            .map(|(_, name)| name.clone())
    }

    /// The partitions of `expected` (with their replication factor) that have no leader,
    /// or (if `full_isr`) a leader with fewer in-sync replicas than replicas.
    pub fn unhealthy_partitions(
        &self,
        expected: &[(TopicPartition, usize)],
        full_isr: bool,
    ) -> Vec<TopicPartition> {
        let inner = self.lock();
        expected
            .iter()
            .filter(|(tp, rf)| {
                !inner.brokers.values().any(|p| {
                    p.led
                        .iter()
                        .any(|l| l.partition == *tp && (!full_isr || l.isr >= *rf))
                })
            })
            .map(|(tp, _)| *tp)
            .collect()
    }

    /// The final drain begins: producers send nothing new from now on.
    pub fn start_drain(&self) {
        self.lock().draining = true;
    }

    /// Whether producers must stop sending new records.
    pub fn draining(&self) -> bool {
        self.lock().draining
    }

    /// A producer reports how many of its sends have not completed.
    pub fn pending_sends(&self, node: &str, pending: usize) {
        let mut inner = self.lock();
        if inner.pending_sends.get(node) != Some(&pending) {
            inner.pending_sends.insert(node.to_string(), pending);
        }
    }

    /// The producers of `nodes` with sends still pending (or that never reported).
    pub fn producers_busy(&self, nodes: &[String]) -> Vec<String> {
        let inner = self.lock();
        nodes
            .iter()
            .filter(|n| inner.pending_sends.get(*n).is_none_or(|&p| p > 0))
            .cloned()
            .collect()
    }

    /// A member of `group` was told these offsets are stored.
    pub fn committed(&self, group: &str, offsets: &[(TopicPartition, u64)]) {
        let mut inner = self.lock();
        let stored = inner.committed.entry(group.to_string()).or_default();
        for (tp, offset) in offsets {
            let at = stored.entry(*tp).or_default();
            *at = (*at).max(*offset);
        }
    }

    /// A group member reports the generation it takes part in (`None`: it is between
    /// generations).
    pub fn member_generation(&self, node: &str, generation: Option<Generation>) {
        let mut inner = self.lock();
        if inner.synced.get(node) != Some(&generation) {
            inner.synced.insert(node.to_string(), generation);
        }
    }

    /// The generation every one of `members` takes part in, if they all take part in one.
    pub fn members_generation(&self, members: &[String]) -> Option<Generation> {
        let inner = self.lock();
        let first = inner.synced.get(members.first()?).copied().flatten()?;
        members
            .iter()
            .all(|m| inner.synced.get(m) == Some(&Some(first)))
            .then_some(first)
    }

    /// The partitions of `partitions` whose committed offset in `group` is below the log
    /// end their leader reports, or whose HW has not reached it yet (or that have no
    /// leader): the group's lag is not yet 0 at the partition's final end. A drain that
    /// looked at the HW alone could end with the last appends (a late batch, a marker)
    /// still replicating, short of the log end the `converges` check holds the group to.
    pub fn lagging(&self, group: &str, partitions: &[TopicPartition]) -> Vec<TopicPartition> {
        let inner = self.lock();
        let stored = inner.committed.get(group);
        partitions
            .iter()
            .filter(|tp| {
                let led = inner
                    .brokers
                    .values()
                    .flat_map(|p| &p.led)
                    .find(|l| l.partition == **tp);
                let committed = stored.and_then(|s| s.get(*tp)).copied().unwrap_or(0);
                led.is_none_or(|l| l.high_watermark < l.log_end || committed < l.log_end.0)
            })
            .cloned()
            .collect()
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
