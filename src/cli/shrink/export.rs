//! A run's faults as explicit `[[fault]]`s: what `ksim shrink` starts from.
//!
//! Owns: reading back every fault a run applied — the scheduled `[[fault]]`s and the
//! nemesis's draws, both announced as `fault` events with their concrete nodes — and writing
//! each as a fault with a concrete target (`broker-2`, not `leader(orders/0)`), and grouping
//! a fault with its undo (a kill with its restart, a pause with its resume, ...) so the
//! shrinker drops whole episodes first.
//!
//! How faithful the export is, and why: a scheduled fault keeps its `at` exactly (it is read
//! from the scenario by its line); a drawn one is at its event's time rounded to the
//! millisecond (scenario durations are whole milliseconds; the nemesis draws microseconds).
//! The nemesis's heal undoes only its partition while a scheduled `heal` undoes every network
//! fault, so a drawn heal is written as `heal` followed by the clogs and packet loss still in
//! force. A correlated power cut of several nodes becomes one power loss per node at the same
//! time (each its own cut), except a scheduled `all-brokers` or `all-writers`, kept as
//! written. Without the nemesis (and with random targets resolved) the seed's random stream
//! differs from the original run's, so the export is a new run that has to be checked.

use crate::history::{Effect, Event, Fault as FaultEvent, FaultSource, WorldEvent};
use crate::scenario::{FaultAction, Scenario, Target};
use std::collections::{BTreeMap, BTreeSet};

/// One `[[fault]]` to write.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplicitFault {
    /// From the start of the fault phase, in milliseconds.
    pub at_ms: u64,
    pub action: FaultAction,
    /// A node name (or, for a schedule kept as written, the target's own text).
    pub target: Option<String>,
    /// `partition`: the sides, by node name.
    pub sides: Option<Vec<Vec<String>>>,
    /// `loss`: the probability a message is dropped.
    pub rate: Option<f64>,
    /// Faults of one episode (an injection, its undo, faults restored in between) share a
    /// group; see [`assign_groups`].
    pub group: usize,
}

impl ExplicitFault {
    /// Whether it ends a fault rather than starting one: a restart, resume, unclog, heal, or
    /// the end of packet loss.
    pub fn undoes(&self) -> bool {
        match self.action {
            FaultAction::Restart
            | FaultAction::Resume
            | FaultAction::Unclog
            | FaultAction::Heal => true,
            FaultAction::Loss => self.rate == Some(0.0),
            FaultAction::Kill
            | FaultAction::PowerLoss
            | FaultAction::Pause
            | FaultAction::Clog
            | FaultAction::Partition => false,
        }
    }
}

/// What [`export`] read from a run.
#[derive(Clone, Debug, Default)]
pub struct Export {
    /// The faults, in the order the run applied them.
    pub faults: Vec<ExplicitFault>,
    /// `fault` events of scheduled faults that did something, and of the nemesis.
    pub scheduled_events: usize,
    pub drawn_events: usize,
    /// Where the export is not exactly the original run (said to the user).
    pub notes: BTreeSet<String>,
}

/// Reads every applied fault of a run of `scenario` back from its events.
pub fn export(scenario: &Scenario, events: &[Event]) -> Export {
    let mut out = Export::default();
    let Some(start_us) = events
        .iter()
        .find_map(|event| match event.announced.world() {
            Some(WorldEvent::Phase { phase, .. }) if phase == "faults" => Some(event.at_us),
            _ => None,
        })
    else {
        return out;
    };
    let duration_ms = scenario.duration.as_millis() as u64;
    let mut network = NetworkState::default();
    for event in events {
        let Some(WorldEvent::Fault(fault)) = event.announced.world() else {
            continue;
        };
        let Some(action) = FaultAction::ALL
            .into_iter()
            .find(|a| a.name() == fault.action)
        else {
            continue;
        };
        let (at_ms, drawn) = match &fault.source {
            FaultSource::Scheduled { line, .. } => {
                let written = scenario.faults.iter().find(|f| f.line == *line);
                let at_ms = written.map_or_else(
                    || millis_since(event.at_us, start_us),
                    |f| f.at.as_millis() as u64,
                );
                (at_ms, false)
            }
            FaultSource::Drawn { .. } => (millis_since(event.at_us, start_us), true),
        };
        let at_ms = at_ms.min(duration_ms);
        let before = out.faults.len();
        let mut push = |action, target: Option<String>, sides, rate| {
            out.faults.push(ExplicitFault {
                at_ms,
                action,
                target,
                sides,
                rate,
                group: 0,
            })
        };
        match action {
            FaultAction::Partition => {
                let sides: Vec<Vec<String>> = fault
                    .sides
                    .iter()
                    .flatten()
                    .filter(|side| !side.is_empty())
                    .cloned()
                    .collect();
                if sides.len() >= 2 {
                    push(FaultAction::Partition, None, Some(sides), None);
                    network.partitioned = true;
                } else if network.partitioned {
                    // A partition that cut nothing still ended the one in force.
                    network.heal_partition_only(&mut push);
                    out.notes.insert(
                        "a partition that isolated no node is written as the heal of the \
                         partition before it"
                            .to_string(),
                    );
                }
            }
            FaultAction::Heal if drawn => network.heal_partition_only(&mut push),
            FaultAction::Heal => {
                push(FaultAction::Heal, None, None, None);
                network = NetworkState::default();
            }
            FaultAction::Loss => {
                let rate = fault.rate.unwrap_or(0.0);
                push(FaultAction::Loss, None, None, Some(rate));
                network.loss = rate;
            }
            _ => {
                let nodes = applied_nodes(action, fault);
                let kept = match &fault.source {
                    FaultSource::Scheduled {
                        target: Some(text), ..
                    } if action == FaultAction::PowerLoss
                        && nodes.len() > 1
                        && (text == &Target::AllBrokers.to_string()
                            || text == &Target::AllWriters.to_string()) =>
                    {
                        Some(text.clone())
                    }
                    _ => None,
                };
                if let Some(text) = kept {
                    push(action, Some(text), None, None);
                } else {
                    if action == FaultAction::PowerLoss && nodes.len() > 1 {
                        out.notes.insert(
                            "a power cut of several nodes at once is written as one power \
                             loss per node at the same time"
                                .to_string(),
                        );
                    }
                    for node in nodes {
                        match action {
                            FaultAction::Clog => {
                                network.clogged.insert(node.clone());
                            }
                            FaultAction::Unclog => {
                                network.clogged.remove(&node);
                            }
                            _ => {}
                        }
                        push(action, Some(node), None, None);
                    }
                }
            }
        }
        if out.faults.len() > before {
            if drawn {
                out.drawn_events += 1;
                out.notes.insert(
                    "the nemesis's faults are at their recorded times, rounded to the \
                     millisecond"
                        .to_string(),
                );
            } else {
                out.scheduled_events += 1;
            }
        }
    }
    assign_groups(&mut out.faults);
    out
}

/// The network faults in force, as far as the export has written them.
#[derive(Default)]
struct NetworkState {
    partitioned: bool,
    clogged: BTreeSet<String>,
    loss: f64,
}

impl NetworkState {
    /// The nemesis's heal ends its partition only: `heal`, then the clogs and loss again.
    fn heal_partition_only(
        &mut self,
        push: &mut impl FnMut(FaultAction, Option<String>, Option<Vec<Vec<String>>>, Option<f64>),
    ) {
        push(FaultAction::Heal, None, None, None);
        for node in &self.clogged {
            push(FaultAction::Clog, Some(node.clone()), None, None);
        }
        if self.loss > 0.0 {
            push(FaultAction::Loss, None, None, Some(self.loss));
        }
        self.partitioned = false;
    }
}

/// The nodes a node fault did something to (a restart of a node already up again, a
/// pause of a node that was down, ... did nothing and is left out).
fn applied_nodes(action: FaultAction, fault: &FaultEvent) -> Vec<String> {
    fault
        .nodes
        .iter()
        .flatten()
        .filter(|n| {
            matches!(
                (action, &n.effect),
                (FaultAction::Kill, Effect::Killed)
                    | (FaultAction::Restart, Effect::Restarted { .. })
                    | (FaultAction::PowerLoss, Effect::PowerLoss(_))
                    | (FaultAction::Pause, Effect::Paused)
                    | (FaultAction::Resume, Effect::Resumed)
                    | (FaultAction::Clog, Effect::Clogged)
                    | (FaultAction::Unclog, Effect::Unclogged)
            )
        })
        .map(|n| n.node.clone())
        .collect()
}

fn millis_since(at_us: u64, start_us: u64) -> u64 {
    (at_us.saturating_sub(start_us) + 500) / 1000
}

/// The faults of a scenario's own `[[fault]]` tables, as written (symbolic targets kept).
pub fn as_written(scenario: &Scenario) -> Vec<ExplicitFault> {
    let mut faults: Vec<ExplicitFault> = scenario
        .faults
        .iter()
        .map(|f| ExplicitFault {
            at_ms: f.at.as_millis() as u64,
            action: f.action,
            target: f.target.as_ref().map(Target::to_string),
            sides: f.sides.clone(),
            rate: f.rate,
            group: 0,
        })
        .collect();
    assign_groups(&mut faults);
    faults
}

/// What a fault episode holds a node (or the network) in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chain {
    Down,
    Paused,
    Clogged,
    Partition,
    Loss,
}

/// Numbers the episodes, in order of their first fault: an injection opens one on its node
/// (or the network), faults of the same kind on it join the open one, and the undo closes
/// it — `restart killed` ends every open kill and joins the latest. A fault nothing opened
/// (an undo of nothing) is an episode of its own.
pub fn assign_groups(faults: &mut [ExplicitFault]) {
    let mut open: BTreeMap<(Chain, String), usize> = BTreeMap::new();
    let mut next = 0;
    for fault in faults {
        let target = fault.target.clone().unwrap_or_default();
        let (chain, key, closes) = match fault.action {
            FaultAction::Kill | FaultAction::PowerLoss => (Chain::Down, target, false),
            FaultAction::Restart => (Chain::Down, target, true),
            FaultAction::Pause => (Chain::Paused, target, false),
            FaultAction::Resume => (Chain::Paused, target, true),
            FaultAction::Clog => (Chain::Clogged, target, false),
            FaultAction::Unclog => (Chain::Clogged, target, true),
            FaultAction::Partition => (Chain::Partition, String::new(), false),
            FaultAction::Heal => (Chain::Partition, String::new(), true),
            FaultAction::Loss => (Chain::Loss, String::new(), fault.rate == Some(0.0)),
        };
        if fault.action == FaultAction::Restart && key == Target::Killed.to_string() {
            let down: Vec<(Chain, String)> = open
                .keys()
                .filter(|(c, _)| *c == Chain::Down)
                .cloned()
                .collect();
            let latest = down.iter().filter_map(|k| open.get(k)).copied().max();
            for key in down {
                open.remove(&key);
            }
            fault.group = latest.unwrap_or_else(|| {
                next += 1;
                next - 1
            });
            continue;
        }
        let key = (chain, key);
        let group = match open.get(&key) {
            Some(&group) => group,
            None => {
                next += 1;
                next - 1
            }
        };
        if closes {
            open.remove(&key);
        } else {
            open.insert(key, group);
        }
        fault.group = group;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A scenario of three brokers and an ensemble, with `tail` appended.
    fn scenario(tail: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nduration = \"60s\"\nheal = \"30s\"\n[cluster]\nzookeepers = 3\n\
             brokers = 3\n[[topic]]\nname = \"orders\"\npartitions = 1\n\
             \"replication.factor\" = 3\n[[producer]]\ncount = 1\ntopic = \"orders\"\n\
             rate = 10\n{tail}"
        );
        crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap()
    }

    fn events(lines: &[&str]) -> Vec<Event> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    const FAULTS_PHASE: &str = r#"{"at_us":700000,"node":"world","kind":"phase","detail":{"length_ms":60000,"phase":"faults"}}"#;

    #[test]
    fn nemesis_draws_become_faults_on_concrete_nodes_at_their_times() {
        let s = scenario("[nemesis]\nactions = [\"kill\", \"clog\", \"partition\", \"loss\"]\nevery = \"5s..10s\"\n");
        let record = events(&[
            FAULTS_PHASE,
            r#"{"at_us":5700400,"node":"world","kind":"fault","detail":{"action":"clog","by":"nemesis","nodes":[{"effect":"clogged","node":"zk-3"}]}}"#,
            r#"{"at_us":8000000,"node":"world","kind":"fault","detail":{"action":"loss","by":"nemesis","rate":0.07}}"#,
            r#"{"at_us":9100000,"node":"world","kind":"fault","detail":{"action":"partition","by":"nemesis","sides":[["broker-2"],["zk-1","broker-1"]]}}"#,
            r#"{"at_us":12000000,"node":"world","kind":"fault","detail":{"action":"kill","by":"nemesis","nodes":[{"effect":"killed","node":"broker-3"}]}}"#,
            r#"{"at_us":14000000,"node":"world","kind":"fault","detail":{"action":"heal","by":"nemesis"}}"#,
            r#"{"at_us":15000000,"node":"world","kind":"fault","detail":{"action":"restart","by":"nemesis","nodes":[{"effect":"restarted (was down)","node":"broker-3"},{"effect":"not restarted: node is up","node":"broker-1"}]}}"#,
            r#"{"at_us":16000000,"node":"world","kind":"fault","detail":{"action":"unclog","by":"nemesis","nodes":[{"effect":"unclogged","node":"zk-3"}]}}"#,
            r#"{"at_us":17000000,"node":"world","kind":"fault","detail":{"action":"loss","by":"nemesis","rate":0.0}}"#,
        ]);
        let export = export(&s, &record);
        let written: Vec<(u64, &str, Option<&str>, usize)> = export
            .faults
            .iter()
            .map(|f| (f.at_ms, f.action.name(), f.target.as_deref(), f.group))
            .collect();
        assert_eq!(
            written,
            vec![
                (5000, "clog", Some("zk-3"), 0),
                (7300, "loss", None, 1),
                (8400, "partition", None, 2),
                (11300, "kill", Some("broker-3"), 3),
                // The nemesis's heal ends its partition only: the clog and loss go on.
                (13300, "heal", None, 2),
                (13300, "clog", Some("zk-3"), 0),
                (13300, "loss", None, 1),
                (14300, "restart", Some("broker-3"), 3),
                (15300, "unclog", Some("zk-3"), 0),
                (16300, "loss", None, 1),
            ]
        );
        assert_eq!(export.faults[1].rate, Some(0.07));
        assert_eq!(
            export.faults[2].sides,
            Some(vec![
                vec!["broker-2".to_string()],
                vec!["zk-1".to_string(), "broker-1".to_string()]
            ])
        );
        assert_eq!((export.scheduled_events, export.drawn_events), (0, 8));
    }

    #[test]
    fn scheduled_faults_keep_their_time_and_resolve_their_targets() {
        let s = scenario(
            "[[fault]]\nat = \"10s\"\naction = \"kill\"\ntarget = \"leader(orders/0)\"\n\
             [[fault]]\nat = \"12s\"\naction = \"power-loss\"\ntarget = \"all-brokers\"\n\
             [[fault]]\nat = \"20s\"\naction = \"restart\"\ntarget = \"killed\"\n",
        );
        let line = |i: usize| s.faults[i].line;
        let lines = [
            FAULTS_PHASE.to_string(),
            format!(
                r#"{{"at_us":10700000,"node":"world","kind":"fault","detail":{{"action":"kill","target":"leader(orders/0)","line":{},"nodes":[{{"effect":"killed","node":"broker-2"}}]}}}}"#,
                line(0)
            ),
            format!(
                r#"{{"at_us":12704000,"node":"world","kind":"fault","detail":{{"action":"power-loss","target":"all-brokers","line":{},"nodes":[{{"effect":"already down","node":"broker-2"}},{{"effect":{{"bytes_lost":0,"files":[],"inside_fsync":false,"was":"up"}},"node":"broker-1"}},{{"effect":{{"bytes_lost":0,"files":[],"inside_fsync":false,"was":"up"}},"node":"broker-3"}}]}}}}"#,
                line(1)
            ),
            format!(
                r#"{{"at_us":20700000,"node":"world","kind":"fault","detail":{{"action":"restart","target":"killed","line":{},"nodes":[{{"effect":"restarted (was down)","node":"broker-1"}},{{"effect":"restarted (was down)","node":"broker-2"}}]}}}}"#,
                line(2)
            ),
        ];
        let record = events(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let export = export(&s, &record);
        let written: Vec<(u64, &str, Option<&str>)> = export
            .faults
            .iter()
            .map(|f| (f.at_ms, f.action.name(), f.target.as_deref()))
            .collect();
        assert_eq!(
            written,
            vec![
                (10000, "kill", Some("broker-2")),
                // One correlated cut, as written; its strike window is not in `at`.
                (12000, "power-loss", Some("all-brokers")),
                (20000, "restart", Some("broker-1")),
                (20000, "restart", Some("broker-2")),
            ]
        );
        assert_eq!((export.scheduled_events, export.drawn_events), (3, 0));
    }

    #[test]
    fn an_undo_joins_its_injection_and_restart_killed_ends_every_kill() {
        let fault = |at_ms, action, target: &str| ExplicitFault {
            at_ms,
            action,
            target: Some(target.to_string()),
            sides: None,
            rate: None,
            group: 99,
        };
        let mut faults = vec![
            fault(1, FaultAction::Kill, "broker-1"),
            fault(2, FaultAction::Pause, "zk-1"),
            fault(3, FaultAction::Kill, "broker-2"),
            fault(4, FaultAction::Restart, "killed"),
            fault(5, FaultAction::Resume, "zk-1"),
            fault(6, FaultAction::Restart, "broker-1"),
            fault(7, FaultAction::Kill, "broker-1"),
        ];
        assign_groups(&mut faults);
        let groups: Vec<usize> = faults.iter().map(|f| f.group).collect();
        assert_eq!(groups, vec![0, 1, 2, 2, 1, 3, 4]);
    }
}
