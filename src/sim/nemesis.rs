//! The nemesis: random faults drawn from the run's seed (`[nemesis]` in a scenario).
//!
//! Owns: what to break, where, for how long, and when to undo it. It is pure — it sees the
//! cluster as a list of [`NodeView`]s and draws from the RNG it is handed — so its rules are
//! unit-tested here; the world applies its [`Step`]s and records each one as a `fault` event
//! with its concrete nodes (and `"by": "nemesis"`), so a run's schedule can be read back.
//!
//! The rules:
//! - A new fault every interval drawn uniformly from `every`, its action drawn from `actions`;
//!   each fault lasts an interval drawn from `every` too, then the nemesis undoes it (restart,
//!   resume, unclog, heal the partition, end the loss). Faults may overlap.
//! - Targets are the servers (ensemble and brokers), or the standalone writers when there are
//!   no servers; kills and pauses also strike members of consumer groups (a crashed or
//!   stalled member is the group coordinator's business). A node carries at most one nemesis
//!   fault at a time; one partition and one loss at a time.
//! - The cluster stays recoverable: at most a minority of the ensemble is impaired at once
//!   (down, paused, clogged, or cut off from the largest healthy group of its peers), and at
//!   least one broker is healthy. When no action fits, the nemesis sits the interval out.
//! - A power loss may strike several nodes at once (one correlated cut), as many as fit.

use crate::scenario::{FaultAction, Nemesis as NemesisConfig};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;
use std::time::Duration;

/// What a node is, as far as the nemesis cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Zk,
    Broker,
    /// A standalone log writer.
    Writer,
    /// A consumer in a group: killed or paused, never cut off (it keeps every link in a
    /// partition of the servers).
    Member,
    /// Producers, assign-mode consumers, ensemble clients: never targeted; they keep every
    /// link in a partition of the servers.
    Client,
}

/// One node as the world sees it now.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub name: String,
    pub role: Role,
    /// Up, not paused and not clogged.
    pub healthy: bool,
}

/// One thing for the world to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Kill(String),
    /// One correlated cut of these nodes.
    PowerLoss(Vec<String>),
    Pause(String),
    Clog(String),
    /// Every link between different sides is cut; nodes on no side keep every link.
    Partition(Vec<Vec<String>>),
    Loss(f64),
    /// Undoes a kill or a power loss (of nodes still down).
    Restart(Vec<String>),
    Resume(String),
    Unclog(String),
    /// Undoes the nemesis's partition (and nothing else).
    HealPartition,
    /// Undoes the nemesis's loss.
    EndLoss,
    /// No listed action keeps the cluster recoverable now.
    Idle,
}

impl Step {
    /// The contract's action name (`idle` for a skipped turn).
    pub fn action(&self) -> &'static str {
        match self {
            Step::Kill(_) => FaultAction::Kill.name(),
            Step::PowerLoss(_) => FaultAction::PowerLoss.name(),
            Step::Pause(_) => FaultAction::Pause.name(),
            Step::Clog(_) => FaultAction::Clog.name(),
            Step::Partition(_) => FaultAction::Partition.name(),
            Step::Loss(_) | Step::EndLoss => FaultAction::Loss.name(),
            Step::Restart(_) => FaultAction::Restart.name(),
            Step::Resume(_) => FaultAction::Resume.name(),
            Step::Unclog(_) => FaultAction::Unclog.name(),
            Step::HealPartition => FaultAction::Heal.name(),
            Step::Idle => "idle",
        }
    }
}

/// Packet loss rates the nemesis draws from.
const LOSS_RATES: (f64, f64) = (0.05, 0.3);

/// A fault in force and how to undo it.
#[derive(Clone, Debug)]
struct Active {
    until: Duration,
    /// The nodes it impairs (empty for a partition or a loss).
    nodes: Vec<String>,
    partition: Option<Vec<Vec<String>>>,
    undo: Step,
}

/// The nemesis of one run. Times are from the start of the fault phase.
#[derive(Clone, Debug)]
pub struct Nemesis {
    actions: Vec<FaultAction>,
    every: (Duration, Duration),
    next_fault: Duration,
    active: Vec<Active>,
}

impl Nemesis {
    /// The first fault comes one drawn interval into the fault phase.
    pub fn new(config: &NemesisConfig, rng: &mut impl Rng) -> Self {
        let every = config.every;
        Nemesis {
            actions: config.actions.clone(),
            every,
            next_fault: draw(every, rng),
            active: Vec::new(),
        }
    }

    /// When the nemesis next has something to do.
    pub fn next_due(&self) -> Duration {
        self.active
            .iter()
            .map(|a| a.until)
            .fold(self.next_fault, Duration::min)
    }

    /// What to do at `now` (>= [`Nemesis::next_due`]): undo every fault whose time is up
    /// (oldest first), then inject the next fault if it is due.
    pub fn steps(&mut self, now: Duration, nodes: &[NodeView], rng: &mut impl Rng) -> Vec<Step> {
        let mut steps = Vec::new();
        let (over, still): (Vec<Active>, Vec<Active>) =
            self.active.drain(..).partition(|a| a.until <= now);
        self.active = still;
        steps.extend(over.into_iter().map(|a| a.undo));
        if now >= self.next_fault {
            self.next_fault = now + draw(self.every, rng);
            let until = now + draw(self.every, rng);
            steps.push(self.inject(until, nodes, rng));
        }
        steps
    }

    /// Draws a fault that keeps the cluster recoverable: the listed actions in a random
    /// order, the first that fits.
    fn inject(&mut self, until: Duration, nodes: &[NodeView], rng: &mut impl Rng) -> Step {
        let mut actions = self.actions.clone();
        actions.shuffle(rng);
        for action in actions {
            if let Some(active) = self.try_action(action, until, nodes, rng) {
                let step = match action {
                    FaultAction::Kill => Step::Kill(active.nodes[0].clone()),
                    FaultAction::PowerLoss => Step::PowerLoss(active.nodes.clone()),
                    FaultAction::Pause => Step::Pause(active.nodes[0].clone()),
                    FaultAction::Clog => Step::Clog(active.nodes[0].clone()),
                    FaultAction::Partition => {
                        Step::Partition(active.partition.clone().unwrap_or_default())
                    }
                    FaultAction::Loss => Step::Loss(draw_rate(rng)),
                    _ => unreachable!("the scenario only lists injecting actions"),
                };
                self.active.push(active);
                return step;
            }
        }
        Step::Idle
    }

    fn try_action(
        &self,
        action: FaultAction,
        until: Duration,
        nodes: &[NodeView],
        rng: &mut impl Rng,
    ) -> Option<Active> {
        let active = |nodes: Vec<String>, partition, undo| Active {
            until,
            nodes,
            partition,
            undo,
        };
        let members = matches!(action, FaultAction::Kill | FaultAction::Pause);
        let mut candidates = self.candidates(nodes, members);
        candidates.shuffle(rng);
        match action {
            FaultAction::Kill | FaultAction::Pause | FaultAction::Clog => {
                let node = candidates
                    .into_iter()
                    .find(|c| self.recoverable(nodes, std::slice::from_ref(c), None))?;
                let undo = match action {
                    FaultAction::Kill => Step::Restart(vec![node.clone()]),
                    FaultAction::Pause => Step::Resume(node.clone()),
                    _ => Step::Unclog(node.clone()),
                };
                Some(active(vec![node], None, undo))
            }
            FaultAction::PowerLoss => {
                let want = rng.gen_range(1..=candidates.len().max(1));
                let mut struck: Vec<String> = Vec::new();
                for candidate in candidates {
                    if struck.len() == want {
                        break;
                    }
                    struck.push(candidate);
                    if !self.recoverable(nodes, &struck, None) {
                        struck.pop();
                    }
                }
                if struck.is_empty() {
                    return None;
                }
                let undo = Step::Restart(struck.clone());
                Some(active(struck, None, undo))
            }
            FaultAction::Partition => {
                if self.active.iter().any(|a| a.partition.is_some()) {
                    return None;
                }
                let servers: Vec<String> = self.targets(nodes).cloned().collect();
                if servers.len() < 2 {
                    return None;
                }
                let mut shapes = [Shape::Isolate, Shape::Halves, Shape::Bridge];
                shapes.shuffle(rng);
                shapes.into_iter().find_map(|shape| {
                    let sides = shape.draw(&servers, nodes, rng)?;
                    self.recoverable(nodes, &[], Some(&sides))
                        .then(|| active(Vec::new(), Some(sides), Step::HealPartition))
                })
            }
            FaultAction::Loss => {
                if self.active.iter().any(|a| a.undo == Step::EndLoss) {
                    return None;
                }
                Some(active(Vec::new(), None, Step::EndLoss))
            }
            _ => None,
        }
    }

    /// Nodes the nemesis may target: servers, or writers when there are none.
    fn targets<'a>(&self, nodes: &'a [NodeView]) -> impl Iterator<Item = &'a String> + 'a {
        let servers = nodes
            .iter()
            .any(|n| matches!(n.role, Role::Zk | Role::Broker));
        nodes
            .iter()
            .filter(move |n| match n.role {
                Role::Zk | Role::Broker => true,
                Role::Writer => !servers,
                Role::Member | Role::Client => false,
            })
            .map(|n| &n.name)
    }

    /// Targets (and group members, if `members`) that are healthy and carry no nemesis
    /// fault.
    fn candidates(&self, nodes: &[NodeView], members: bool) -> Vec<String> {
        let busy = self.impaired();
        let healthy: BTreeSet<&String> = nodes
            .iter()
            .filter(|n| n.healthy)
            .map(|n| &n.name)
            .collect();
        let group_members = nodes
            .iter()
            .filter(|n| members && n.role == Role::Member)
            .map(|n| &n.name);
        self.targets(nodes)
            .chain(group_members)
            .filter(|n| healthy.contains(n) && !busy.contains(*n))
            .cloned()
            .collect()
    }

    fn impaired(&self) -> BTreeSet<&String> {
        self.active.iter().flat_map(|a| &a.nodes).collect()
    }

    /// Whether the cluster stays recoverable with `more` nodes impaired and `partition`
    /// (or the one in force) cutting the network.
    fn recoverable(
        &self,
        nodes: &[NodeView],
        more: &[String],
        partition: Option<&Vec<Vec<String>>>,
    ) -> bool {
        let mut impaired = self.impaired();
        impaired.extend(more);
        let partition = partition.or_else(|| self.active.iter().find_map(|a| a.partition.as_ref()));
        let healthy = |n: &&&NodeView| n.healthy && !impaired.contains(&n.name);

        let zk: Vec<&NodeView> = nodes.iter().filter(|n| n.role == Role::Zk).collect();
        if !zk.is_empty() {
            let live: Vec<&String> = zk.iter().filter(healthy).map(|n| &n.name).collect();
            let group = match partition {
                None => live.len(),
                Some(sides) => {
                    let sided: BTreeSet<&String> = sides.iter().flatten().collect();
                    let free = live.iter().filter(|n| !sided.contains(*n)).count();
                    let largest = sides
                        .iter()
                        .map(|side| live.iter().filter(|n| side.contains(n)).count())
                        .max()
                        .unwrap_or(0);
                    free + largest
                }
            };
            if group < zk.len() / 2 + 1 {
                return false;
            }
        }
        let brokers: Vec<&NodeView> = nodes.iter().filter(|n| n.role == Role::Broker).collect();
        brokers.is_empty() || brokers.iter().any(|n| healthy(&n))
    }
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// One server against everything else.
    Isolate,
    /// The servers split in two random halves; clients keep every link.
    Halves,
    /// Two halves that one server (the bridge) connects.
    Bridge,
}

impl Shape {
    fn draw(
        self,
        servers: &[String],
        nodes: &[NodeView],
        rng: &mut impl Rng,
    ) -> Option<Vec<Vec<String>>> {
        let mut shuffled = servers.to_vec();
        shuffled.shuffle(rng);
        match self {
            Shape::Isolate => {
                let alone = shuffled.pop()?;
                let rest = nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .filter(|n| *n != alone)
                    .collect();
                Some(vec![vec![alone], rest])
            }
            Shape::Halves => {
                let rest = shuffled.split_off(shuffled.len() / 2);
                Some(vec![shuffled, rest])
            }
            Shape::Bridge => {
                if shuffled.len() < 3 {
                    return None;
                }
                let mid = shuffled.len() / 2;
                let b = shuffled.split_off(mid + 1);
                shuffled.truncate(mid);
                Some(vec![shuffled, b])
            }
        }
    }
}

fn draw((min, max): (Duration, Duration), rng: &mut impl Rng) -> Duration {
    Duration::from_micros(rng.gen_range(min.as_micros() as u64..=max.as_micros() as u64))
}

fn draw_rate(rng: &mut impl Rng) -> f64 {
    let percent = rng.gen_range((LOSS_RATES.0 * 100.0) as u32..=(LOSS_RATES.1 * 100.0) as u32);
    f64::from(percent) / 100.0
}

#[cfg(test)]
mod tests;
