//! The world: builds a scenario's nodes on the madsim runtime and drives a run's phases.
//!
//! Owns: node lifecycle (create, kill, restart, pause, resume, power loss), network faults
//! (partition, clog, loss, heal), resolving fault targets to concrete nodes, and the phases
//! of architecture.md — setup (every node started; the ensemble has a leader), fault phase
//! (`duration`, scheduled faults and the [`Nemesis`]'s steps), heal (every node back up,
//! the network whole), liveness phase (up to `heal`, ending early once the cluster
//! converged: clients answered, every ensemble server leading or following in the newest
//! epoch, full ISRs), drain (in the same bound: producers stop sending and complete what is
//! pending, groups commit to the end of their partitions), stop (every node killed, so
//! nothing outlives `block_on`). Every fault is announced with its concrete nodes, so a
//! run's fault schedule can be read back from `events.jsonl`.
//!
//! Node state here is the world's own bookkeeping of what it did to each node; nodes report
//! progress through [`Progress`] and everything observable through the [`Recorder`].

use super::nemesis::{Nemesis, NodeView, Role, Step};
use super::network::Network;
use super::nodes::{build_all, Context, NodeKind, RunDisks};
use crate::broker::coordinator::{partition_for, OFFSETS_TOPIC};
use crate::broker::TopicPartition;
use crate::disk::SimDisk;
use crate::history::{
    self, Effect, FaultSource, FileLoss, GroupLag, NodeEffect, PowerLoss, WorldEvent,
};
use crate::node::progress::Progress;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::node::run_rng;
use crate::scenario::{plan, Fault, FaultAction, Scenario, Target};
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::seq::SliceRandom;
use rand::Rng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long setup may take before the fault phase starts anyway.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
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
    kind: NodeKind,
    id: NodeId,
    disk: Option<SimDisk>,
    state: NodeState,
}

/// One run's world.
pub struct World {
    scenario: Arc<Scenario>,
    run_dir: PathBuf,
    disks: RunDisks,
    recorder: Recorder,
    progress: Progress,
    handle: Handle,
    /// In creation order.
    nodes: Vec<SimNode>,
    network: Network,
    /// The consumers that are members of a group.
    members: Vec<String>,
}

impl World {
    /// A world for `scenario`, its node data on `disks` (if file-backed, under `run_dir`).
    /// Call inside the runtime.
    pub fn new(
        scenario: Arc<Scenario>,
        run_dir: PathBuf,
        disks: RunDisks,
        recorder: Recorder,
        progress: Progress,
    ) -> Self {
        let members = scenario
            .groups()
            .into_values()
            .flat_map(|g| g.members)
            .collect();
        World {
            members,
            scenario,
            run_dir,
            disks,
            recorder,
            progress,
            handle: Handle::current(),
            nodes: Vec::new(),
            network: Network::default(),
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
        let mut scheduled = faults.iter().peekable();
        let mut nemesis = self
            .scenario
            .nemesis
            .as_ref()
            .map(|config| Nemesis::new(config, &mut run_rng()));
        let duration = self.scenario.duration;
        loop {
            // Scheduled faults first on a tie; the nemesis acts only inside the fault phase.
            let fault_at = scheduled.peek().map(|f| f.at);
            let nemesis_at = nemesis
                .as_ref()
                .map(Nemesis::next_due)
                .filter(|&at| at < duration);
            let at = match (fault_at, nemesis_at) {
                (None, None) => break,
                (Some(f), Some(n)) => f.min(n),
                (f, n) => f.or(n).unwrap_or_default(),
            };
            if !self.wait_until(start + at).await {
                return self.stop(outcome);
            }
            if fault_at == Some(at) {
                let fault = scheduled.next().expect("peeked");
                self.execute(fault).await;
            } else if let Some(nemesis) = nemesis.as_mut() {
                let view = self.nemesis_view();
                for step in nemesis.steps(at, &view, &mut run_rng()) {
                    self.apply_nemesis(step).await;
                }
            }
        }
        if !self.wait_until(start + duration).await {
            return self.stop(outcome);
        }

        outcome.heal_at_us = sim_now_us();
        self.phase("heal", self.scenario.heal);
        self.heal();
        let deadline = madsim::time::TimeHandle::current().now_instant() + self.scenario.heal;
        outcome.converged = self.await_convergence(outcome.heal_at_us, deadline).await
            && self.drain(deadline).await;
        self.stop(outcome)
    }

    fn phase(&self, name: &str, length: Duration) {
        self.recorder.event(
            "world",
            WorldEvent::Phase {
                phase: name.to_string(),
                length_ms: length.as_millis() as u64,
            },
        );
    }

    fn names_of(&self, kind: NodeKind) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.kind == kind)
            .map(|n| n.name.clone())
            .collect()
    }

    async fn setup(&mut self) {
        self.phase("setup", SETUP_TIMEOUT);
        let since = sim_now_us();
        let ctx = Context {
            scenario: &self.scenario,
            run_dir: &self.run_dir,
            disks: &self.disks,
            recorder: &self.recorder,
            progress: &self.progress,
            handle: &self.handle,
        };
        self.nodes = build_all(&ctx)
            .into_iter()
            .map(|b| SimNode {
                name: b.name,
                kind: b.kind,
                id: b.id,
                disk: b.disk,
                state: NodeState::Up,
            })
            .collect();
        let mut serving = self.names_of(NodeKind::Writer);
        serving.extend(self.names_of(NodeKind::Broker));
        let ensemble = !self.names_of(NodeKind::Zk).is_empty();
        let partitions = self.scenario.partitions();
        let deadline = madsim::time::TimeHandle::current().now_instant() + SETUP_TIMEOUT;
        loop {
            let ready = self.progress.all_ready_since(&serving, since)
                && (!ensemble || self.progress.zk_leader().is_some())
                && self
                    .progress
                    .unhealthy_partitions(&partitions, false)
                    .is_empty();
            if ready {
                break;
            }
            if madsim::time::TimeHandle::current().now_instant() >= deadline {
                self.recorder.event("world", WorldEvent::SetupTimeout {});
                break;
            }
            crate::node::sleep(POLL).await;
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
            crate::node::sleep((deadline - now).min(POLL)).await;
        }
    }

    async fn execute(&mut self, fault: &Fault) {
        let mut detail = history::Fault {
            action: fault.action.name().to_string(),
            source: FaultSource::Scheduled {
                target: fault.target.as_ref().map(Target::to_string),
                line: fault.line,
            },
            sides: None,
            rate: None,
            nodes: None,
        };
        match fault.action {
            FaultAction::Partition => detail.sides = Some(self.partition(fault)),
            FaultAction::Heal => {
                self.network.heal_all();
            }
            FaultAction::Loss => {
                let rate = fault.rate.unwrap_or(0.0);
                self.network.set_loss(rate);
                detail.rate = Some(rate);
            }
            action => {
                let targets = self.resolve(fault.target.as_ref());
                if action == FaultAction::PowerLoss {
                    self.strike_window(&targets).await;
                }
                let mut effects = Vec::new();
                for &index in &targets {
                    let effect = match action {
                        FaultAction::Kill => self.kill(index),
                        FaultAction::Restart => self.restart(index),
                        FaultAction::PowerLoss => self.power_loss(index),
                        FaultAction::Pause => self.pause(index),
                        FaultAction::Resume => self.resume(index),
                        FaultAction::Clog => {
                            self.network.clog(self.nodes[index].id);
                            Effect::Clogged
                        }
                        FaultAction::Unclog => {
                            self.network.unclog(self.nodes[index].id);
                            Effect::Unclogged
                        }
                        FaultAction::Partition | FaultAction::Heal | FaultAction::Loss => {
                            unreachable!()
                        }
                    };
                    effects.push(NodeEffect {
                        node: self.nodes[index].name.clone(),
                        effect,
                    });
                }
                detail.nodes = Some(effects);
            }
        }
        self.recorder.event("world", WorldEvent::Fault(detail));
    }

    /// The cluster as the nemesis sees it.
    fn nemesis_view(&self) -> Vec<NodeView> {
        self.nodes
            .iter()
            .map(|node| NodeView {
                name: node.name.clone(),
                role: match node.kind {
                    NodeKind::Zk => Role::Zk,
                    NodeKind::Broker => Role::Broker,
                    NodeKind::Writer => Role::Writer,
                    NodeKind::Consumer if self.members.contains(&node.name) => Role::Member,
                    NodeKind::Processor => Role::Member,
                    NodeKind::ZkClient | NodeKind::Producer | NodeKind::Consumer => Role::Client,
                },
                healthy: node.state == NodeState::Up && !self.network.is_clogged(node.id),
            })
            .collect()
    }

    /// Applies one nemesis step and records it like a scheduled fault, with `"by": "nemesis"`.
    async fn apply_nemesis(&mut self, step: Step) {
        let mut detail = history::Fault {
            action: step.action().to_string(),
            source: FaultSource::Drawn {
                by: "nemesis".into(),
            },
            sides: None,
            rate: None,
            nodes: None,
        };
        let names: Vec<String> = match &step {
            Step::Kill(n) | Step::Pause(n) | Step::Clog(n) | Step::Resume(n) | Step::Unclog(n) => {
                vec![n.clone()]
            }
            Step::PowerLoss(ns) | Step::Restart(ns) => ns.clone(),
            Step::Partition(_)
            | Step::Loss(_)
            | Step::HealPartition
            | Step::EndLoss
            | Step::Idle => Vec::new(),
        };
        let targets: Vec<usize> = names.iter().filter_map(|n| self.index_of(n)).collect();
        if matches!(step, Step::PowerLoss(_)) {
            self.strike_window(&targets).await;
        }
        let mut effects = Vec::new();
        for &index in &targets {
            let effect = match &step {
                Step::Kill(_) => self.kill(index),
                Step::PowerLoss(_) => self.power_loss(index),
                Step::Pause(_) => self.pause(index),
                Step::Resume(_) => self.resume(index),
                Step::Clog(_) => {
                    self.network.clog(self.nodes[index].id);
                    Effect::Clogged
                }
                Step::Unclog(_) => {
                    self.network.unclog(self.nodes[index].id);
                    Effect::Unclogged
                }
                // Something else (a scheduled fault) may have restarted it already.
                Step::Restart(_) if self.nodes[index].state != NodeState::Down => {
                    Effect::NotRestarted {
                        state: self.nodes[index].state.name().to_string(),
                    }
                }
                Step::Restart(_) => self.restart(index),
                _ => unreachable!("only node steps name nodes"),
            };
            effects.push(NodeEffect {
                node: self.nodes[index].name.clone(),
                effect,
            });
        }
        match step {
            Step::Partition(sides) => {
                let ids: Vec<Vec<NodeId>> = sides
                    .iter()
                    .map(|side| {
                        side.iter()
                            .filter_map(|n| self.index_of(n))
                            .map(|i| self.nodes[i].id)
                            .collect()
                    })
                    .collect();
                self.network.partition(&ids);
                detail.sides = Some(sides);
            }
            Step::HealPartition => self.network.heal_partition(),
            Step::Loss(rate) => {
                self.network.set_loss(rate);
                detail.rate = Some(rate);
            }
            Step::EndLoss => {
                self.network.set_loss(0.0);
                detail.rate = Some(0.0);
            }
            Step::Idle => {
                self.recorder.event(
                    "world",
                    WorldEvent::NemesisIdle {
                        why: "no listed action keeps the cluster recoverable".into(),
                    },
                );
                return;
            }
            _ => detail.nodes = Some(effects),
        }
        self.recorder.event("world", WorldEvent::Fault(detail));
    }

    /// Applies a partition; returns its concrete sides by name.
    fn partition(&mut self, fault: &Fault) -> Vec<Vec<String>> {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        let servers: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].kind.is_server())
            .collect();
        let sides: Vec<Vec<usize>> = match (&fault.sides, &fault.target) {
            (Some(sides), _) => {
                let named: Vec<Vec<usize>> = sides
                    .iter()
                    .map(|side| side.iter().filter_map(|name| self.index_of(name)).collect())
                    .collect();
                let listed: Vec<usize> = named.iter().flatten().copied().collect();
                sides
                    .iter()
                    .zip(named)
                    .map(|(side, indices)| {
                        if side.iter().any(|n| n == "*") {
                            all.iter()
                                .copied()
                                .filter(|i| !listed.contains(i))
                                .collect()
                        } else {
                            indices
                        }
                    })
                    .collect()
            }
            (None, Some(Target::Isolate(inner))) => {
                let isolated = self.resolve(Some(inner));
                let rest = all
                    .iter()
                    .copied()
                    .filter(|i| !isolated.contains(i))
                    .collect();
                vec![isolated, rest]
            }
            (None, Some(Target::Halves)) => {
                let mut shuffled = servers.clone();
                shuffled.shuffle(&mut run_rng());
                let rest = shuffled.split_off(shuffled.len() / 2);
                vec![shuffled, rest]
            }
            (None, Some(Target::Bridge)) => {
                // Two halves that only one node (the bridge) connects.
                let mut shuffled = servers.clone();
                shuffled.shuffle(&mut run_rng());
                let mid = shuffled.len() / 2;
                let a = shuffled[..mid].to_vec();
                let b = shuffled.iter().skip(mid + 1).copied().collect();
                vec![a, b]
            }
            _ => Vec::new(),
        };
        let ids: Vec<Vec<NodeId>> = sides
            .iter()
            .map(|s| s.iter().map(|&i| self.nodes[i].id).collect())
            .collect();
        self.network.partition(&ids);
        sides
            .iter()
            .map(|s| s.iter().map(|&i| self.nodes[i].name.clone()).collect())
            .collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// A power cut lands at an arbitrary instant, which may be inside an fsync: the disks
    /// of running targets are armed for a seeded window of up to [`STRIKE_WINDOW`]; a
    /// node that syncs meanwhile loses power inside that sync. One window for all
    /// targets: a correlated cut is one event.
    async fn strike_window(&self, targets: &[usize]) {
        let running: Vec<&SimDisk> = targets
            .iter()
            .filter(|&&i| self.nodes[i].state == NodeState::Up)
            .filter_map(|&i| self.nodes[i].disk.as_ref())
            .collect();
        if running.is_empty() {
            return;
        }
        for disk in running {
            disk.arm_power_loss();
        }
        let window_us = run_rng().gen_range(0..=STRIKE_WINDOW.as_micros() as u64);
        crate::node::sleep(Duration::from_micros(window_us)).await;
    }

    /// The nodes a target names, in creation order.
    fn resolve(&self, target: Option<&Target>) -> Vec<usize> {
        let of_kind = |kind: NodeKind| -> Vec<usize> {
            (0..self.nodes.len())
                .filter(|&i| self.nodes[i].kind == kind)
                .collect()
        };
        let random = |candidates: Vec<usize>| -> Vec<usize> {
            if candidates.is_empty() {
                return candidates;
            }
            vec![candidates[run_rng().gen_range(0..candidates.len())]]
        };
        match target {
            Some(Target::Node(name)) => self.index_of(name).into_iter().collect(),
            Some(Target::Killed) => (0..self.nodes.len())
                .filter(|&i| self.nodes[i].state == NodeState::Down)
                .collect(),
            Some(Target::AllWriters) => of_kind(NodeKind::Writer),
            Some(Target::RandomWriter) => random(of_kind(NodeKind::Writer)),
            Some(Target::RandomZk) => random(of_kind(NodeKind::Zk)),
            Some(Target::ZkLeader) => self
                .progress
                .zk_leader()
                .and_then(|name| self.index_of(&name))
                .filter(|&i| self.nodes[i].state == NodeState::Up)
                .into_iter()
                .collect(),
            Some(Target::AllBrokers) => of_kind(NodeKind::Broker),
            Some(Target::RandomBroker) => random(of_kind(NodeKind::Broker)),
            Some(Target::Leader { topic, partition }) => self
                .progress
                .partition_leader(&TopicPartition::new(topic.clone(), *partition))
                .and_then(|name| self.index_of(&name))
                .filter(|&i| self.nodes[i].state == NodeState::Up)
                .into_iter()
                .collect(),
            Some(Target::Controller) => self
                .progress
                .controller()
                .and_then(|name| self.index_of(&name))
                .filter(|&i| self.nodes[i].state == NodeState::Up)
                .into_iter()
                .collect(),
            Some(Target::Coordinator(group)) => {
                let partitions = plan::coordinator_config(&self.scenario).offsets_partitions;
                let tp = TopicPartition::new(OFFSETS_TOPIC, partition_for(group, partitions));
                self.progress
                    .partition_leader(&tp)
                    .and_then(|name| self.index_of(&name))
                    .filter(|&i| self.nodes[i].state == NodeState::Up)
                    .into_iter()
                    .collect()
            }
            Some(Target::Isolate(inner)) => self.resolve(Some(inner)),
            // Shapes name sides, not nodes (see `partition`).
            Some(Target::Halves | Target::Bridge) | None => Vec::new(),
        }
    }

    fn kill(&mut self, index: usize) -> Effect {
        let node = &mut self.nodes[index];
        if node.state == NodeState::Down {
            return Effect::AlreadyDown;
        }
        self.handle.kill(node.id);
        if let Some(disk) = &node.disk {
            disk.crash();
        }
        node.state = NodeState::Down;
        if node.kind == NodeKind::Zk {
            self.progress.zk_state(&node.name, "down", 0);
        }
        if node.kind == NodeKind::Broker {
            self.progress.broker_down(&node.name);
        }
        Effect::Killed
    }

    fn restart(&mut self, index: usize) -> Effect {
        let was = self.nodes[index].state;
        if was != NodeState::Down {
            self.kill(index);
        }
        let node = &mut self.nodes[index];
        self.handle.restart(node.id);
        node.state = NodeState::Up;
        Effect::Restarted {
            was: was.name().to_string(),
        }
    }

    /// Cuts the node's power: the process dies and its disk loses what was not durable.
    /// A node already down still loses its page cache. If the cut already struck inside
    /// an fsync during the strike window, that is the cut.
    fn power_loss(&mut self, index: usize) -> Effect {
        let was = self.nodes[index].state;
        let struck = self.nodes[index].disk.as_ref().and_then(SimDisk::disarm);
        if was != NodeState::Down {
            self.kill(index);
        }
        let node = &self.nodes[index];
        let Some(disk) = &node.disk else {
            return Effect::PowerLoss(PowerLoss::NoDisk {
                was: was.name().to_string(),
                disk: "none".into(),
            });
        };
        let (report, inside_fsync) = match struck {
            Some(report) => (report, true),
            None => match disk.power_loss() {
                Ok(report) => (report, false),
                Err(error) => panic!("power loss of {} failed: {error}", node.name),
            },
        };
        Effect::PowerLoss(PowerLoss::Cut {
            was: was.name().to_string(),
            inside_fsync,
            bytes_lost: report.bytes_lost(),
            files: report
                .effects
                .iter()
                .map(|e| FileLoss {
                    path: e.path.clone(),
                    outcome: e.outcome.clone(),
                    bytes_lost: e.bytes_lost,
                })
                .collect(),
        })
    }

    fn pause(&mut self, index: usize) -> Effect {
        let node = &mut self.nodes[index];
        if node.state != NodeState::Up {
            return Effect::NotPaused {
                state: node.state.name().to_string(),
            };
        }
        self.handle.pause(node.id);
        node.state = NodeState::Paused;
        Effect::Paused
    }

    fn resume(&mut self, index: usize) -> Effect {
        let node = &mut self.nodes[index];
        if node.state != NodeState::Paused {
            return Effect::NotResumed {
                state: node.state.name().to_string(),
            };
        }
        self.handle.resume(node.id);
        node.state = NodeState::Up;
        Effect::Resumed
    }

    /// Faults stop: the network is made whole, every node down is restarted, every paused
    /// node resumed.
    fn heal(&mut self) {
        let network = self.network.is_faulty();
        self.network.heal_all();
        let mut healed = Vec::new();
        for index in 0..self.nodes.len() {
            let effect = match self.nodes[index].state {
                NodeState::Up => continue,
                NodeState::Paused => self.resume(index),
                NodeState::Down => self.restart(index),
            };
            healed.push(NodeEffect {
                node: self.nodes[index].name.clone(),
                effect,
            });
        }
        self.recorder.event(
            "world",
            WorldEvent::Heal {
                nodes: healed,
                network,
            },
        );
    }

    /// Waits up to `heal` for the cluster to converge: every writer, ensemble client,
    /// producer and consumer acknowledges an operation after the heal, every ensemble server
    /// leads or follows in the newest epoch and that epoch has a leader (a leader deposed
    /// while paused resumes in its old epoch and may log proposals there until it notices;
    /// sync truncates them when it rejoins), and every partition has a leader with a full
    /// ISR.
    async fn await_convergence(&self, heal_at_us: u64, deadline: madsim::time::Instant) -> bool {
        let mut active = self.names_of(NodeKind::Writer);
        active.extend(self.names_of(NodeKind::ZkClient));
        active.extend(self.names_of(NodeKind::Producer));
        // A group member may own nothing; the drain waits for the groups instead.
        active.extend(
            self.names_of(NodeKind::Consumer)
                .into_iter()
                .filter(|n| !self.members.contains(n)),
        );
        let partitions = self.scenario.partitions();
        let servers = self.names_of(NodeKind::Zk);
        loop {
            let idle = self.progress.idle_since(&active, heal_at_us);
            let zk = self.progress.zk_epoch(&servers);
            let unhealthy = self.progress.unhealthy_partitions(&partitions, true);
            if idle.is_empty() && (servers.is_empty() || zk.converged()) && unhealthy.is_empty() {
                self.recorder.event(
                    "world",
                    WorldEvent::Converged {
                        zk_leader: zk.leader,
                        zk_epoch: zk.epoch,
                    },
                );
                return true;
            }
            let now = madsim::time::TimeHandle::current().now_instant();
            if now >= deadline || self.progress.crash().is_some() {
                self.recorder.event(
                    "world",
                    WorldEvent::NotConverged {
                        idle,
                        zk_leader: zk.leader,
                        zk_epoch: zk.epoch,
                        zk_not_rejoined: zk.behind,
                        unhealthy: unhealthy.iter().map(ToString::to_string).collect(),
                    },
                );
                return false;
            }
            crate::node::sleep((deadline - now).min(POLL)).await;
        }
    }

    /// The final drain, within the same `heal` bound: producers stop sending new records
    /// and complete what is pending, then every consumer group commits up to the HW of each
    /// partition it reads (lag 0) — while every partition still has a leader with a full
    /// ISR and every ensemble server still leads or follows in the newest epoch (a report
    /// can be stale at the moment of convergence; the run ends in a converged state).
    /// Without producers or groups there is nothing to drain.
    async fn drain(&self, deadline: madsim::time::Instant) -> bool {
        // A processor's sends and open transaction keep the drain waiting as a producer's.
        let mut producers = self.names_of(NodeKind::Producer);
        producers.extend(self.names_of(NodeKind::Processor));
        let groups = self.scenario.groups();
        if producers.is_empty() && groups.is_empty() {
            return true;
        }
        let partitions = self.scenario.partitions();
        let servers = self.names_of(NodeKind::Zk);
        self.progress.start_drain();
        self.recorder.event("world", WorldEvent::Drain {});
        let mut held = false;
        loop {
            let unhealthy = self.progress.unhealthy_partitions(&partitions, true);
            let zk = self.progress.zk_epoch(&servers);
            let zk_converged = servers.is_empty() || zk.converged();
            let busy = self.progress.producers_busy(&producers);
            let lagging: Vec<GroupLag> = if busy.is_empty() {
                groups
                    .iter()
                    .filter_map(|(group, spec)| {
                        let lag = self.progress.lagging(group, &spec.partitions);
                        let generation = self.progress.members_generation(&spec.members);
                        let stable =
                            generation.is_some_and(|g| self.progress.group_stable(group, g));
                        (!lag.is_empty() || !stable).then(|| {
                            let lag: Vec<String> = lag.iter().map(ToString::to_string).collect();
                            GroupLag {
                                group: group.clone(),
                                partitions: lag,
                                members_generation: generation,
                                stable,
                            }
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            // Brokers report their HW every tick, so a record acknowledged just now may not
            // be in their last report yet: the drain holds only if it still holds one poll
            // later.
            let quiet =
                busy.is_empty() && lagging.is_empty() && unhealthy.is_empty() && zk_converged;
            if quiet && held {
                self.recorder.event("world", WorldEvent::Drained {});
                return true;
            }
            held = quiet;
            let now = madsim::time::TimeHandle::current().now_instant();
            if now >= deadline || self.progress.crash().is_some() {
                let unhealthy: Vec<String> = unhealthy.iter().map(ToString::to_string).collect();
                self.recorder.event(
                    "world",
                    WorldEvent::NotDrained {
                        producers_busy: busy,
                        groups_lagging: lagging,
                        unhealthy,
                        zk_epoch: zk.epoch,
                        zk_not_rejoined: zk.behind,
                    },
                );
                return false;
            }
            crate::node::sleep((deadline - now).min(POLL)).await;
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
        self.recorder.event("world", WorldEvent::Stop {});
        outcome
    }
}
