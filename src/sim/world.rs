//! The world: builds a scenario's nodes on the madsim runtime and drives a run's phases.
//!
//! Owns: node lifecycle (create, kill, restart, pause, resume, power loss), resolving fault
//! targets to concrete nodes, and the phases of architecture.md — setup, fault phase
//! (`duration`, scheduled faults), heal (every node back up), liveness phase (up to `heal`,
//! ending early once the cluster converged), stop (every node killed, so nothing outlives
//! `block_on`). Every fault is announced with its concrete nodes, so a run's fault schedule
//! can be read back from `events.jsonl`.
//!
//! Node state here is the world's own bookkeeping of what it did to each node; nodes report
//! progress through [`Progress`] and everything observable through the [`Recorder`].

use super::guard::guarded;
use super::progress::Progress;
use super::run_rng;
use super::trace::{sim_now_us, Recorder};
use crate::disk::{SimDisk, SimDiskConfig};
use crate::node::{log_config, writer::WriterNode, writers};
use crate::scenario::{Fault, FaultAction, Scenario, Target};
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::Rng;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// How long setup may take before the fault phase starts anyway.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a power cut to land inside an fsync (see `strike_window`).
const STRIKE_WINDOW: Duration = Duration::from_millis(10);
/// Granularity of the world's waits: how soon it notices a crash or convergence.
const POLL: Duration = Duration::from_millis(100);

/// What the world saw of a run, for the checkers and the report.
#[derive(Clone, Debug, Default)]
pub struct WorldOutcome {
    /// When the fault phase started (µs).
    pub faults_at_us: u64,
    /// When the heal started (µs).
    pub heal_at_us: u64,
    /// When the nodes were stopped (µs).
    pub stopped_at_us: u64,
    /// Whether the cluster converged within `heal`.
    pub converged: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Up,
    Paused,
    Down,
}

impl NodeState {
    fn name(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Paused => "paused",
            NodeState::Down => "down",
        }
    }
}

struct SimNode {
    name: String,
    id: NodeId,
    disk: SimDisk,
    state: NodeState,
}

/// One run's world.
pub struct World {
    scenario: Arc<Scenario>,
    run_dir: PathBuf,
    recorder: Recorder,
    progress: Progress,
    handle: Handle,
    /// In creation order (which is also the order of `Scenario::node_names`).
    nodes: Vec<SimNode>,
}

impl World {
    /// A world for `scenario`, writing node data under `run_dir`. Call inside the runtime.
    pub fn new(
        scenario: Arc<Scenario>,
        run_dir: PathBuf,
        recorder: Recorder,
        progress: Progress,
    ) -> Self {
        World {
            scenario,
            run_dir,
            recorder,
            progress,
            handle: Handle::current(),
            nodes: Vec::new(),
        }
    }

    /// Runs every phase; returns when every node has been stopped.
    pub async fn run(mut self) -> WorldOutcome {
        let mut outcome = WorldOutcome::default();
        self.setup().await;

        outcome.faults_at_us = sim_now_us();
        self.phase("faults", self.scenario.duration);
        let start = madsim::time::TimeHandle::current().now_instant();
        let faults = self.scenario.faults.clone();
        for fault in &faults {
            if !self.wait_until(start + fault.at).await {
                return self.stop(outcome);
            }
            self.execute(fault).await;
        }
        if !self.wait_until(start + self.scenario.duration).await {
            return self.stop(outcome);
        }

        outcome.heal_at_us = sim_now_us();
        self.phase("heal", self.scenario.heal);
        self.heal();
        outcome.converged = self.await_convergence(outcome.heal_at_us).await;
        self.stop(outcome)
    }

    fn phase(&self, name: &str, length: Duration) {
        self.recorder.event(
            "world",
            "phase",
            json!({ "phase": name, "length_ms": length.as_millis() as u64 }),
        );
    }

    async fn setup(&mut self) {
        self.phase("setup", SETUP_TIMEOUT);
        let since = sim_now_us();
        let mut rng = run_rng();
        let plans = writers(&self.scenario);
        let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        for plan in plans {
            let (name, config) = (&plan.name, &plan.config);
            let disk = SimDisk::new(
                self.run_dir.join(name),
                rng.gen::<u64>(),
                SimDiskConfig::default(),
            )
            .unwrap_or_else(|e| panic!("cannot create the data directory of {name}: {e}"));
            let node = Arc::new(WriterNode {
                name: name.clone(),
                rate: plan.rate,
                log: log_config(config),
                flush_interval_ms: config.log_flush_interval_ms,
                disk: disk.clone(),
                recorder: self.recorder.clone(),
                progress: self.progress.clone(),
                incarnations: AtomicU64::new(0),
            });
            let (recorder, progress) = (self.recorder.clone(), self.progress.clone());
            let id = self
                .handle
                .create_node()
                .name(name.clone())
                .init(move || {
                    let node = node.clone();
                    guarded(
                        node.name.clone(),
                        recorder.clone(),
                        progress.clone(),
                        node.run(),
                    )
                })
                .build()
                .id();
            self.recorder
                .event(name, "node-created", json!({ "kind": "writer" }));
            self.nodes.push(SimNode {
                name: name.clone(),
                id,
                disk,
                state: NodeState::Up,
            });
        }
        let deadline = madsim::time::TimeHandle::current().now_instant() + SETUP_TIMEOUT;
        while !self.progress.all_ready_since(&names, since) {
            if madsim::time::TimeHandle::current().now_instant() >= deadline {
                self.recorder
                    .event("world", "setup-timeout", json!({ "nodes": names }));
                break;
            }
            madsim::time::sleep(POLL).await;
        }
    }

    /// Sleeps until `deadline`; false if a node crashed meanwhile (the run ends early).
    async fn wait_until(&self, deadline: madsim::time::Instant) -> bool {
        loop {
            if self.progress.crash().is_some() {
                return false;
            }
            let now = madsim::time::TimeHandle::current().now_instant();
            if now >= deadline {
                return true;
            }
            madsim::time::sleep((deadline - now).min(POLL)).await;
        }
    }

    async fn execute(&mut self, fault: &Fault) {
        let targets = self.resolve(fault.target.as_ref());
        if fault.action == FaultAction::PowerLoss {
            self.strike_window(&targets).await;
        }
        let mut effects = Vec::new();
        for &index in &targets {
            let effect = match fault.action {
                FaultAction::Kill => self.kill(index),
                FaultAction::Restart => self.restart(index),
                FaultAction::PowerLoss => self.power_loss(index),
                FaultAction::Pause => self.pause(index),
                FaultAction::Resume => self.resume(index),
                other => json!({ "skipped": format!("{other:?} is not supported yet") }),
            };
            effects.push(json!({ "node": self.nodes[index].name, "effect": effect }));
        }
        self.recorder.event(
            "world",
            "fault",
            json!({
                "action": fault.action.name(),
                "target": fault.target.as_ref().map(Target::to_string),
                "line": fault.line,
                "nodes": effects,
            }),
        );
    }

    /// A power cut lands at an arbitrary instant, which may be inside an fsync: the disks
    /// of running targets are armed for a seeded window of up to [`STRIKE_WINDOW`]; a
    /// node that syncs meanwhile loses power inside that sync. One window for all
    /// targets: a correlated cut is one event.
    async fn strike_window(&self, targets: &[usize]) {
        let running: Vec<usize> = targets
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].state == NodeState::Up)
            .collect();
        if running.is_empty() {
            return;
        }
        for &index in &running {
            self.nodes[index].disk.arm_power_loss();
        }
        let window_us = run_rng().gen_range(0..=STRIKE_WINDOW.as_micros() as u64);
        madsim::time::sleep(Duration::from_micros(window_us)).await;
    }

    /// The nodes a target names, in creation order.
    fn resolve(&self, target: Option<&Target>) -> Vec<usize> {
        let writers = |node: &SimNode| node.name.starts_with("writer-");
        match target {
            Some(Target::Node(name)) => self
                .nodes
                .iter()
                .position(|n| &n.name == name)
                .into_iter()
                .collect(),
            Some(Target::Killed) => self.indices(|n| n.state == NodeState::Down),
            Some(Target::AllWriters) => self.indices(writers),
            Some(Target::RandomWriter) => {
                let candidates = self.indices(writers);
                if candidates.is_empty() {
                    return candidates;
                }
                let pick = run_rng().gen_range(0..candidates.len());
                vec![candidates[pick]]
            }
            // The scenario parser rejects every other target until its feature exists.
            _ => Vec::new(),
        }
    }

    fn indices(&self, keep: impl Fn(&SimNode) -> bool) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| keep(&self.nodes[i]))
            .collect()
    }

    fn kill(&mut self, index: usize) -> serde_json::Value {
        let node = &mut self.nodes[index];
        if node.state == NodeState::Down {
            return json!("already down");
        }
        self.handle.kill(node.id);
        node.disk.crash();
        node.state = NodeState::Down;
        json!("killed")
    }

    fn restart(&mut self, index: usize) -> serde_json::Value {
        let was = self.nodes[index].state;
        if was != NodeState::Down {
            self.kill(index);
        }
        let node = &mut self.nodes[index];
        self.handle.restart(node.id);
        node.state = NodeState::Up;
        json!(format!("restarted (was {})", was.name()))
    }

    /// Cuts the node's power: the process dies and its disk loses what was not durable.
    /// A node already down still loses its page cache. If the cut already struck inside
    /// an fsync during the strike window, that is the cut.
    fn power_loss(&mut self, index: usize) -> serde_json::Value {
        let was = self.nodes[index].state;
        let struck = self.nodes[index].disk.disarm();
        if was != NodeState::Down {
            self.kill(index);
        }
        let node = &mut self.nodes[index];
        let (report, inside_fsync) = match struck {
            Some(report) => (report, true),
            None => match node.disk.power_loss() {
                Ok(report) => (report, false),
                Err(error) => panic!("power loss of {} failed: {error}", node.name),
            },
        };
        json!({
            "was": was.name(),
            "inside_fsync": inside_fsync,
            "bytes_lost": report.bytes_lost(),
            "files": report.effects.iter().map(|e| json!({
                "path": e.path, "outcome": e.outcome, "bytes_lost": e.bytes_lost
            })).collect::<Vec<_>>(),
        })
    }

    fn pause(&mut self, index: usize) -> serde_json::Value {
        let node = &mut self.nodes[index];
        if node.state != NodeState::Up {
            return json!(format!("not paused: node is {}", node.state.name()));
        }
        self.handle.pause(node.id);
        node.state = NodeState::Paused;
        json!("paused")
    }

    fn resume(&mut self, index: usize) -> serde_json::Value {
        let node = &mut self.nodes[index];
        if node.state != NodeState::Paused {
            return json!(format!("not resumed: node is {}", node.state.name()));
        }
        self.handle.resume(node.id);
        node.state = NodeState::Up;
        json!("resumed")
    }

    /// Faults stop: every node down is restarted, every paused node resumed.
    fn heal(&mut self) {
        let mut healed = Vec::new();
        for index in 0..self.nodes.len() {
            let effect = match self.nodes[index].state {
                NodeState::Up => continue,
                NodeState::Paused => self.resume(index),
                NodeState::Down => self.restart(index),
            };
            healed.push(json!({ "node": self.nodes[index].name, "effect": effect }));
        }
        self.recorder
            .event("world", "heal", json!({ "nodes": healed }));
    }

    /// Waits up to `heal` for every writer to acknowledge a record after the heal.
    async fn await_convergence(&self, heal_at_us: u64) -> bool {
        let names = self.scenario.writer_names();
        let deadline = madsim::time::TimeHandle::current().now_instant() + self.scenario.heal;
        loop {
            let idle = self.progress.idle_since(&names, heal_at_us);
            if idle.is_empty() {
                self.recorder.event("world", "converged", json!({}));
                return true;
            }
            let now = madsim::time::TimeHandle::current().now_instant();
            if now >= deadline || self.progress.crash().is_some() {
                self.recorder
                    .event("world", "not-converged", json!({ "idle": idle }));
                return false;
            }
            madsim::time::sleep((deadline - now).min(POLL)).await;
        }
    }

    /// Kills every node: nothing may outlive `block_on`, and the final logs are then read
    /// back from disk exactly as a restarted process would find them.
    fn stop(mut self, mut outcome: WorldOutcome) -> WorldOutcome {
        for index in 0..self.nodes.len() {
            if self.nodes[index].state != NodeState::Down {
                self.kill(index);
            }
        }
        outcome.stopped_at_us = sim_now_us();
        self.recorder.event("world", "stop", json!({}));
        outcome
    }
}
