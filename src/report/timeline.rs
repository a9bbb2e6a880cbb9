//! The timeline of one run, as data: what `report.html` draws (`super::html`).
//!
//! Owns: [`Timeline::of`], a pure function of a run's events and client history (in record
//! order) that pairs each fault with what ends it (a kill with its restart, a pause with its
//! resume, a partition with its heal) and follows who *believes* it holds each role over
//! simulated time: the controller, the ensemble's leader, each partition's leader (with its
//! ISR and HW), each group's state and each member's assignment. A belief ends when its
//! holder says so (`controller-resigned`, `looking`, `become-follower`), when its process
//! ends (killed, restarted, lost power, crashed) or when the run stops; a paused holder keeps
//! believing, so a zombie shows as two overlapping segments, stacked in sub-rows.
//!
//! Invariants: every `fault` event is exactly one [`FaultMark`] (its id is its index), with
//! at least one [`FaultPart`] to draw; nothing is iterated in hash order; the amount of data
//! is bounded whatever the run's length ([`MAX_HW_BUCKETS`], [`MAX_SEGMENTS_PER_ROW`]), so
//! the page stays a few MB at most.

use crate::broker::controller::ControllerEvent;
use crate::broker::coordinator::CoordinatorEvent;
use crate::broker::server::BrokerEvent;
use crate::broker::TopicPartition;
use crate::history::{
    Announcement, Effect, Event, FaultSource, HistoryEntry, NodeEffect, Op, ShellEvent, WorldEvent,
};
use crate::log::LeaderEpoch;
use crate::zk::server::ZkServerEvent;
use std::collections::BTreeMap;

/// HW points kept per partition: the time axis is cut into this many buckets, and each
/// keeps at most its lowest and its last point (a drop of the HW is never smoothed away).
pub const MAX_HW_BUCKETS: u64 = 240;

/// Segments kept per sub-row of a lane: past this, runs of segments too short to see are
/// merged into one ("n changes").
pub const MAX_SEGMENTS_PER_ROW: usize = 300;

/// A run's timeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// The end of the time axis (simulated µs).
    pub end_us: u64,
    /// Phase boundaries, in order: `setup`, `faults`, `heal`, `drain`, `stop`.
    pub phases: Vec<Phase>,
    /// Every fault event, in order; a fault's id is its index.
    pub faults: Vec<FaultMark>,
    /// Node lanes, in the order the nodes were created.
    pub nodes: Vec<NodeLane>,
    /// Who believed it was the controller.
    pub controller: Lane,
    /// Which ensemble server believed it led, in which epoch.
    pub zk_leader: Lane,
    /// Each partition (the scenario's topics first, then internal ones).
    pub partitions: Vec<PartitionLane>,
    /// Each consumer group, by name.
    pub groups: Vec<GroupLane>,
}

/// A phase boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// `setup`, `faults`, `heal`, `drain` or `stop`.
    pub name: String,
    /// When it begins.
    pub at_us: u64,
}

/// One fault event and where it is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMark {
    /// When it was applied.
    pub at_us: u64,
    /// `kill`, `restart`, `pause`, `partition`, ...
    pub action: String,
    /// What it did, in words (`broker-3 killed`, sides of a partition).
    pub summary: String,
    /// `line 37, target leader(orders/0)` or `nemesis`.
    pub source: String,
    /// Its bands and ticks, one per lane it touches.
    pub parts: Vec<FaultPart>,
}

impl FaultMark {
    /// The last moment it was in force: the end of its longest band (its own time for a
    /// fault that only ends or does something at once).
    pub fn end_us(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.end_us)
            .max()
            .unwrap_or(self.at_us)
    }
}

/// Where a fault part is drawn.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LaneRef {
    /// The lane of network-wide faults (partitions, packet loss, heals).
    Network,
    /// A node's lane.
    Node(String),
}

/// What a fault part shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartKind {
    /// The node's process is down (killed).
    Down,
    /// The node lost power (down, its unsynced data cut).
    PowerLoss,
    /// The node is paused.
    Paused,
    /// The node's links are clogged.
    Clogged,
    /// The network is partitioned.
    Partition,
    /// Packets are lost.
    Loss,
    /// A restart (a tick).
    Restart,
    /// A fault that ends another (resume, unclog, heal, loss 0): a tick.
    End,
    /// A fault that found nothing to do (already down, not paused): a tick.
    NoOp,
}

impl PartKind {
    /// The CSS class it is drawn with.
    pub fn class(self) -> &'static str {
        match self {
            PartKind::Down => "down",
            PartKind::PowerLoss => "power",
            PartKind::Paused => "paused",
            PartKind::Clogged => "clogged",
            PartKind::Partition => "partition",
            PartKind::Loss => "loss",
            PartKind::Restart => "restart",
            PartKind::End => "end",
            PartKind::NoOp => "noop",
        }
    }

    /// A band (a state that lasts) rather than a tick.
    pub fn is_band(self) -> bool {
        !matches!(self, PartKind::Restart | PartKind::End | PartKind::NoOp)
    }
}

/// One band or tick of a fault on one lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPart {
    /// The lane.
    pub lane: LaneRef,
    /// What it shows.
    pub kind: PartKind,
    /// Its start (the fault's time).
    pub start_us: u64,
    /// Its end: what ended the state, or the start for a tick.
    pub end_us: u64,
    /// What ended it (`restart at 18.7s`, `heal`), for bands.
    pub ended_by: String,
}

/// A node's lane: its fault parts are in [`Timeline::faults`]; here what is not a fault.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLane {
    /// The node.
    pub name: String,
    /// `zk`, `broker`, `writer`, `producer`, `consumer`, `zk-client`.
    pub kind: String,
    /// Restarts and resumes by the heal, and crashes.
    pub markers: Vec<Marker>,
}

/// A mark on a node lane that is not a fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// When.
    pub at_us: u64,
    /// `heal-restart`, `heal-resume` or `crash`.
    pub kind: &'static str,
    /// What happened, in words.
    pub title: String,
}

/// Segments of one role over time, stacked in sub-rows where beliefs overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lane {
    /// Sub-rows, each a list of non-overlapping segments in time order (at least one row).
    pub rows: Vec<Vec<Segment>>,
}

impl Lane {
    /// Every segment, row by row.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.rows.iter().flatten()
    }
}

/// Someone holding a role from `start_us` to `end_us`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Start.
    pub start_us: u64,
    /// End.
    pub end_us: u64,
    /// Who holds it (a node name; empty for merged segments).
    pub holder: String,
    /// Text drawn inside when it fits.
    pub label: String,
    /// A shorter text, tried when the label does not fit.
    pub short: String,
    /// The hover text.
    pub title: String,
    /// Its color: a broker or server id, or a group state's index.
    pub color: u32,
    /// Drawn in a warning style: an ISR below the replication factor, a rebalancing group,
    /// an assignment still fetching positions, merged segments.
    pub flagged: bool,
    /// A leader's ISR size (0 for other roles).
    pub in_sync: usize,
}

/// A partition's lane: its leaders (brokers' own view) and its leader's HW.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionLane {
    /// `topic/p`.
    pub partition: String,
    /// Leader segments, labeled with epoch and ISR.
    pub leaders: Lane,
    /// `(time, HW)` as the believed leader announced it, downsampled.
    pub hw: Vec<(u64, u64)>,
}

/// A consumer group's lane: its state and generation (as its coordinator announced them),
/// and each member's assignment (as the member was told, from the history).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupLane {
    /// `group.id`.
    pub group: String,
    /// State segments (`gen 3 · Stable`).
    pub states: Lane,
    /// Per consumer node: its assignment segments.
    pub members: Vec<(String, Lane)>,
}

impl Timeline {
    /// The timeline of a run: `events` and `history` as recorded (each in time order);
    /// `end_us` at least the run's simulated length.
    pub fn of(events: &[Event], history: &[HistoryEntry], end_us: u64) -> Timeline {
        let end_us = events
            .last()
            .map(|e| e.at_us)
            .into_iter()
            .chain(history.last().map(|h| h.at_us))
            .fold(end_us, u64::max)
            .max(1);
        let mut builder = Builder::new(end_us);
        // Events and history merged by time (events first on a tie: a process that ended
        // at t has no assignment announced at t).
        let mut entries = history.iter().peekable();
        for event in events {
            while let Some(entry) = entries.next_if(|h| h.at_us < event.at_us) {
                builder.history(entry);
            }
            builder.event(event);
        }
        for entry in entries {
            builder.history(entry);
        }
        builder.finish()
    }

    /// The phase `at_us` falls in, and how far into it: `("faults", 12_300_000)`.
    pub fn phase_of(&self, at_us: u64) -> Option<(&str, u64)> {
        self.phases
            .iter()
            .rev()
            .find(|p| p.at_us <= at_us)
            .map(|p| (p.name.as_str(), at_us - p.at_us))
    }

    /// The ids of the faults in force within `window_us` before `at_us` (begun by then,
    /// ended no earlier than `at_us - window_us`), oldest first.
    pub fn faults_before(&self, at_us: u64, window_us: u64) -> Vec<usize> {
        let since = at_us.saturating_sub(window_us);
        self.faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.at_us <= at_us && f.end_us() >= since)
            .map(|(id, _)| id)
            .collect()
    }
}

/// Open beliefs of one kind of role: `(key, holder)` → the segment so far.
struct Roles<K: Ord + Clone> {
    open: BTreeMap<(K, String), Segment>,
    done: BTreeMap<K, Vec<Segment>>,
}

impl<K: Ord + Clone> Roles<K> {
    fn new() -> Self {
        Roles {
            open: BTreeMap::new(),
            done: BTreeMap::new(),
        }
    }

    /// `holder` holds `key` from `segment.start_us` (ending what it held of it before).
    fn open(&mut self, key: K, segment: Segment) {
        self.close(&key, &segment.holder.clone(), segment.start_us);
        self.done.entry(key.clone()).or_default();
        self.open.insert((key, segment.holder.clone()), segment);
    }

    fn close(&mut self, key: &K, holder: &str, at_us: u64) {
        if let Some(mut segment) = self.open.remove(&(key.clone(), holder.to_string())) {
            segment.end_us = at_us;
            self.done.entry(key.clone()).or_default().push(segment);
        }
    }

    /// Ends every belief of `key`, whoever holds it.
    fn close_key(&mut self, key: &K, at_us: u64) {
        let holders: Vec<String> = self
            .open
            .keys()
            .filter(|(k, _)| k == key)
            .map(|(_, h)| h.clone())
            .collect();
        for holder in holders {
            self.close(key, &holder, at_us);
        }
    }

    /// Ends every belief `holder` has (its process ended).
    fn close_holder(&mut self, holder: &str, at_us: u64) {
        let keys: Vec<K> = self
            .open
            .keys()
            .filter(|(_, h)| h == holder)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.close(&key, holder, at_us);
        }
    }

    fn holds(&self, key: &K, holder: &str) -> Option<&Segment> {
        self.open.get(&(key.clone(), holder.to_string()))
    }

    fn finish(mut self, at_us: u64) -> BTreeMap<K, Lane> {
        let open: Vec<(K, String)> = self.open.keys().cloned().collect();
        for (key, holder) in open {
            self.close(&key, &holder, at_us);
        }
        self.done
            .into_iter()
            .map(|(key, segments)| (key, stack(segments, at_us)))
            .collect()
    }
}

/// Sorts segments into sub-rows (first fit by start), and bounds each row.
fn stack(mut segments: Vec<Segment>, end_us: u64) -> Lane {
    segments
        .sort_by(|a, b| (a.start_us, a.end_us, &a.holder).cmp(&(b.start_us, b.end_us, &b.holder)));
    let mut rows: Vec<Vec<Segment>> = Vec::new();
    for segment in segments {
        match rows.iter_mut().find(|row| {
            row.last()
                .is_none_or(|last| last.end_us <= segment.start_us)
        }) {
            Some(row) => row.push(segment),
            None => rows.push(vec![segment]),
        }
    }
    if rows.is_empty() {
        rows.push(Vec::new());
    }
    Lane {
        rows: rows
            .into_iter()
            .map(|row| bound_row(row, end_us, MAX_SEGMENTS_PER_ROW))
            .collect(),
    }
}

/// At most about `max` segments in a row: runs of consecutive segments narrower than
/// `end_us / max` become one flagged segment saying how many changes it stands for.
pub fn bound_row(row: Vec<Segment>, end_us: u64, max: usize) -> Vec<Segment> {
    if row.len() <= max {
        return row;
    }
    let min_us = end_us / max as u64;
    let mut out: Vec<Segment> = Vec::new();
    let mut run: Vec<Segment> = Vec::new();
    let flush = |run: &mut Vec<Segment>, out: &mut Vec<Segment>| match run.len() {
        0 => {}
        1 => out.push(run.pop().expect("one")),
        n => {
            let (start_us, end_us) = (run[0].start_us, run[n - 1].end_us);
            let holders: std::collections::BTreeSet<&str> =
                run.iter().map(|s| s.holder.as_str()).collect();
            out.push(Segment {
                start_us,
                end_us,
                holder: String::new(),
                label: format!("{n} changes"),
                short: n.to_string(),
                title: format!(
                    "{n} changes, too short to draw one by one ({})",
                    holders.into_iter().collect::<Vec<_>>().join(", ")
                ),
                color: 0,
                flagged: true,
                in_sync: 0,
            });
            run.clear();
        }
    };
    for segment in row {
        if segment.end_us - segment.start_us < min_us {
            run.push(segment);
        } else {
            flush(&mut run, &mut out);
            out.push(segment);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Keeps, of each of `buckets` equal slices of `[0, end_us]`, the lowest point and the last
/// one (in time order, once each): a step line through them drops where the HW dropped.
pub fn downsample(points: &[(u64, u64)], end_us: u64, buckets: u64) -> Vec<(u64, u64)> {
    let bucket_of = |at: u64| u128::from(at) * u128::from(buckets) / u128::from(end_us.max(1));
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut i = 0;
    while i < points.len() {
        let bucket = bucket_of(points[i].0);
        let mut j = i;
        let mut lowest = i;
        while j < points.len() && bucket_of(points[j].0) == bucket {
            if points[j].1 < points[lowest].1 {
                lowest = j;
            }
            j += 1;
        }
        out.push(points[lowest]);
        if j - 1 != lowest {
            out.push(points[j - 1]);
        }
        i = j;
    }
    out
}

/// The number at the end of a node name (`broker-12` → 12), for colors.
fn node_number(name: &str) -> u32 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Sorts node names by kind, then number (`consumer-2` before `consumer-10`).
fn node_order(name: &str) -> (String, u32) {
    let kind = name.rsplit_once('-').map_or(name, |(kind, _)| kind);
    (kind.to_string(), node_number(name))
}

fn secs(at_us: u64) -> String {
    format!("{:.3}s", at_us as f64 / 1e6)
}

/// Partition keys: the scenario's topics before internal ones (`__consumer_offsets`).
fn partition_key(tp: &TopicPartition) -> (bool, TopicPartition) {
    (tp.topic.starts_with("__"), *tp)
}

type Open = (usize, usize);

struct Builder {
    end_us: u64,
    timeline: Timeline,
    node_index: BTreeMap<String, usize>,
    /// Open fault bands: (lane, kind class) → (fault id, part index).
    bands: BTreeMap<(LaneRef, &'static str), Open>,
    controller: Roles<()>,
    zk_leader: Roles<()>,
    leaders: Roles<(bool, TopicPartition)>,
    largest_isr: BTreeMap<(bool, TopicPartition), usize>,
    /// The leader epoch of each open leader belief (an ISR change keeps it).
    epochs: BTreeMap<((bool, TopicPartition), String), LeaderEpoch>,
    hw: BTreeMap<(bool, TopicPartition), Vec<(u64, u64)>>,
    group_states: Roles<String>,
    group_members: BTreeMap<String, Vec<String>>,
    assignments: Roles<(String, (String, u32))>,
}

impl Builder {
    fn new(end_us: u64) -> Self {
        Builder {
            end_us,
            timeline: Timeline {
                end_us,
                ..Timeline::default()
            },
            node_index: BTreeMap::new(),
            bands: BTreeMap::new(),
            controller: Roles::new(),
            zk_leader: Roles::new(),
            leaders: Roles::new(),
            largest_isr: BTreeMap::new(),
            epochs: BTreeMap::new(),
            hw: BTreeMap::new(),
            group_states: Roles::new(),
            group_members: BTreeMap::new(),
            assignments: Roles::new(),
        }
    }

    fn phase(&mut self, name: &str, at_us: u64) {
        self.timeline.phases.push(Phase {
            name: name.to_string(),
            at_us,
        });
    }

    fn node_lane(&mut self, name: &str) -> &mut NodeLane {
        let index = match self.node_index.get(name) {
            Some(&index) => index,
            None => {
                self.timeline.nodes.push(NodeLane {
                    name: name.to_string(),
                    kind: name
                        .rsplit_once('-')
                        .map_or(name, |(kind, _)| kind)
                        .to_string(),
                    markers: Vec::new(),
                });
                self.node_index
                    .insert(name.to_string(), self.timeline.nodes.len() - 1);
                self.timeline.nodes.len() - 1
            }
        };
        &mut self.timeline.nodes[index]
    }

    /// A node's process ended: every belief it held ends with it.
    fn process_ended(&mut self, node: &str, at_us: u64) {
        self.controller.close_holder(node, at_us);
        self.zk_leader.close_holder(node, at_us);
        self.leaders.close_holder(node, at_us);
        self.group_states.close_holder(node, at_us);
        self.assignments.close_holder(node, at_us);
    }

    fn event(&mut self, event: &Event) {
        let (at, node) = (event.at_us, event.node.as_str());
        match &event.announced {
            Announcement::World(world) => match &**world {
                WorldEvent::NodeCreated { kind, .. } => self.node_lane(node).kind = kind.clone(),
                world => self.world(at, world),
            },
            Announcement::Shell(shell) => {
                if let ShellEvent::Crash { message } = &**shell {
                    self.node_lane(node).markers.push(Marker {
                        at_us: at,
                        kind: "crash",
                        title: format!("{node} crashed at {}: {message}", secs(at)),
                    });
                    self.process_ended(node, at);
                }
            }
            Announcement::Controller(controller) => self.on_controller(at, node, controller),
            Announcement::ZkServer(zk) => self.on_zk(at, node, zk),
            Announcement::Broker(broker) => self.on_broker(at, node, broker),
            Announcement::Coordinator(coordinator) => self.on_coordinator(at, node, coordinator),
            // Transaction coordinators hold no role the timeline draws (yet).
            Announcement::Store(_) | Announcement::TxnCoordinator(_) => {}
        }
    }

    fn world(&mut self, at: u64, world: &WorldEvent) {
        match world {
            WorldEvent::Phase { phase, .. } => self.phase(phase, at),
            WorldEvent::Drain {} => self.phase("drain", at),
            WorldEvent::Stop {} => self.phase("stop", at),
            WorldEvent::NodeCreated { .. } => {}
            WorldEvent::Fault(fault) => self.fault(at, fault),
            WorldEvent::Heal { nodes, .. } => self.heal(at, nodes),
            _ => {}
        }
    }

    /// Opens a band of fault `id` on `lane` (ending an open band of the same kind there).
    fn open_band(&mut self, id: usize, lane: LaneRef, kind: PartKind, at: u64) {
        let key = (
            lane.clone(),
            if kind == PartKind::PowerLoss {
                "down"
            } else {
                kind.class()
            },
        );
        self.close_band(&key, at, "a new one");
        let parts = &mut self.timeline.faults[id].parts;
        parts.push(FaultPart {
            lane,
            kind,
            start_us: at,
            end_us: at,
            ended_by: String::new(),
        });
        self.bands.insert(key, (id, parts.len() - 1));
    }

    fn close_band(&mut self, key: &(LaneRef, &'static str), at: u64, by: &str) -> bool {
        match self.bands.remove(key) {
            Some((id, part)) => {
                let part = &mut self.timeline.faults[id].parts[part];
                part.end_us = at;
                part.ended_by = format!("{by} at {}", secs(at));
                true
            }
            None => false,
        }
    }

    fn tick(&mut self, id: usize, lane: LaneRef, kind: PartKind, at: u64) {
        self.timeline.faults[id].parts.push(FaultPart {
            lane,
            kind,
            start_us: at,
            end_us: at,
            ended_by: String::new(),
        });
    }

    fn fault(&mut self, at: u64, fault: &crate::history::Fault) {
        let id = self.timeline.faults.len();
        let effects = fault.nodes.as_deref().unwrap_or_default();
        let summary = if let Some(sides) = &fault.sides {
            sides
                .iter()
                .map(|side| format!("[{}]", abbreviate(side, 4)))
                .collect::<Vec<_>>()
                .join(" | ")
        } else if let Some(rate) = fault.rate {
            format!("packet loss rate {rate}")
        } else if effects.is_empty() {
            "every network fault undone".to_string()
        } else {
            effects
                .iter()
                .map(|e| format!("{} {}", e.node, short_effect(&e.effect)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let source = match &fault.source {
            FaultSource::Scheduled { target, line } => match target {
                Some(target) => format!("line {line}, target {target}"),
                None => format!("line {line}"),
            },
            FaultSource::Drawn { by } => by.clone(),
        };
        self.timeline.faults.push(FaultMark {
            at_us: at,
            action: fault.action.clone(),
            summary,
            source: source.clone(),
            parts: Vec::new(),
        });
        let by = format!("{} (fault {id})", fault.action);
        match fault.action.as_str() {
            "partition" => self.open_band(id, LaneRef::Network, PartKind::Partition, at),
            "loss" if fault.rate.unwrap_or(0.0) > 0.0 => {
                self.open_band(id, LaneRef::Network, PartKind::Loss, at)
            }
            "loss" => {
                self.close_band(&(LaneRef::Network, "loss"), at, &by);
                self.tick(id, LaneRef::Network, PartKind::End, at);
            }
            "heal" => {
                // A scheduled heal undoes every network fault; the nemesis's only its partition.
                self.close_band(&(LaneRef::Network, "partition"), at, &by);
                if matches!(fault.source, FaultSource::Scheduled { .. }) {
                    self.close_band(&(LaneRef::Network, "loss"), at, &by);
                    let clogged: Vec<_> = self
                        .bands
                        .keys()
                        .filter(|(_, kind)| *kind == "clogged")
                        .cloned()
                        .collect();
                    for key in clogged {
                        self.close_band(&key, at, &by);
                    }
                }
                self.tick(id, LaneRef::Network, PartKind::End, at);
            }
            _ => {
                for effect in effects {
                    self.node_lane(&effect.node);
                    self.node_effect(id, at, effect, &by);
                }
            }
        }
        if self.timeline.faults[id].parts.is_empty() {
            self.tick(id, LaneRef::Network, PartKind::NoOp, at);
        }
    }

    fn node_effect(&mut self, id: usize, at: u64, effect: &NodeEffect, by: &str) {
        let lane = LaneRef::Node(effect.node.clone());
        if effect.effect.ends_process() {
            self.process_ended(&effect.node, at);
        }
        match &effect.effect {
            Effect::Killed => self.open_band(id, lane, PartKind::Down, at),
            Effect::PowerLoss(_) => self.open_band(id, lane, PartKind::PowerLoss, at),
            Effect::Paused => self.open_band(id, lane, PartKind::Paused, at),
            Effect::Clogged => self.open_band(id, lane, PartKind::Clogged, at),
            Effect::Restarted { .. } => {
                self.close_band(&(lane.clone(), "down"), at, by);
                self.close_band(&(lane.clone(), "paused"), at, by);
                self.tick(id, lane, PartKind::Restart, at);
            }
            Effect::Resumed => {
                self.close_band(&(lane.clone(), "paused"), at, by);
                self.tick(id, lane, PartKind::End, at);
            }
            Effect::Unclogged => {
                self.close_band(&(lane.clone(), "clogged"), at, by);
                self.tick(id, lane, PartKind::End, at);
            }
            Effect::AlreadyDown
            | Effect::NotRestarted { .. }
            | Effect::NotPaused { .. }
            | Effect::NotResumed { .. } => self.tick(id, lane, PartKind::NoOp, at),
        }
    }

    /// The heal: every band ends; the nodes it restarted or resumed are marked.
    fn heal(&mut self, at: u64, nodes: &[NodeEffect]) {
        for key in self.bands.keys().cloned().collect::<Vec<_>>() {
            self.close_band(&key, at, "the heal");
        }
        for effect in nodes {
            if effect.effect.ends_process() {
                self.process_ended(&effect.node, at);
            }
            let kind = match effect.effect {
                Effect::Resumed => "heal-resume",
                _ => "heal-restart",
            };
            let title = format!(
                "{} {} by the heal at {}",
                effect.node,
                effect.effect,
                secs(at)
            );
            self.node_lane(&effect.node).markers.push(Marker {
                at_us: at,
                kind,
                title,
            });
        }
    }

    fn on_controller(&mut self, at: u64, node: &str, event: &ControllerEvent) {
        match event {
            ControllerEvent::ControllerElected { controller_epoch } => self.controller.open(
                (),
                Segment {
                    start_us: at,
                    end_us: at,
                    holder: node.to_string(),
                    label: format!("{node} · epoch {controller_epoch}"),
                    short: node_number(node).to_string(),
                    title: format!("controller {node}, controller epoch {controller_epoch}"),
                    color: node_number(node),
                    flagged: false,
                    in_sync: 0,
                },
            ),
            ControllerEvent::ControllerResigned { .. } => self.controller.close(&(), node, at),
            ControllerEvent::PartitionState { .. } => {}
        }
    }

    fn on_zk(&mut self, at: u64, node: &str, event: &ZkServerEvent) {
        match event {
            ZkServerEvent::Leading {
                epoch, followers, ..
            } => self.zk_leader.open(
                (),
                Segment {
                    start_us: at,
                    end_us: at,
                    holder: node.to_string(),
                    label: format!("{node} · epoch {epoch}"),
                    short: format!("{} e{epoch}", node_number(node)),
                    title: format!(
                        "ensemble leader {node}, epoch {epoch}, followers {}",
                        followers
                            .iter()
                            .map(|f| format!("zk-{f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    color: node_number(node),
                    flagged: false,
                    in_sync: 0,
                },
            ),
            ZkServerEvent::Looking { .. } | ZkServerEvent::Following { .. } => {
                self.zk_leader.close(&(), node, at)
            }
            _ => {}
        }
    }

    fn leader_segment(
        &mut self,
        at: u64,
        node: &str,
        tp: &TopicPartition,
        epoch: LeaderEpoch,
        isr: &[crate::broker::BrokerId],
    ) {
        let key = partition_key(tp);
        let largest = self.largest_isr.entry(key).or_default();
        *largest = (*largest).max(isr.len());
        let isr_text = isr
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.leaders.open(
            key,
            Segment {
                start_us: at,
                end_us: at,
                holder: node.to_string(),
                label: format!("{node} · e{epoch} · isr {isr_text}"),
                short: node_number(node).to_string(),
                title: format!(
                    "{tp}: leader {node}, leader epoch {epoch}, ISR [{isr_text}] ({} in sync)",
                    isr.len()
                ),
                color: node_number(node),
                flagged: false,
                in_sync: isr.len(),
            },
        );
        self.epochs.insert((key, node.to_string()), epoch);
    }

    fn on_broker(&mut self, at: u64, node: &str, event: &BrokerEvent) {
        match event {
            BrokerEvent::BecomeLeader {
                partition,
                leader_epoch,
                hw,
                isr,
                ..
            } => {
                self.leader_segment(at, node, partition, *leader_epoch, isr);
                self.hw
                    .entry(partition_key(partition))
                    .or_default()
                    .push((at, hw.0));
            }
            BrokerEvent::BecomeFollower { partition, .. } => {
                self.leaders.close(&partition_key(partition), node, at)
            }
            BrokerEvent::IsrChanged { partition, isr, .. } => {
                let key = partition_key(partition);
                if self.leaders.holds(&key, node).is_some() {
                    if let Some(&epoch) = self.epochs.get(&(key, node.to_string())) {
                        self.leader_segment(at, node, partition, epoch, isr);
                    }
                }
            }
            BrokerEvent::Hw { partition, hw, .. } => {
                let key = partition_key(partition);
                if self.leaders.holds(&key, node).is_some() {
                    self.hw.entry(key).or_default().push((at, hw.0));
                }
            }
            _ => {}
        }
    }

    fn on_coordinator(&mut self, at: u64, node: &str, event: &CoordinatorEvent) {
        match event {
            CoordinatorEvent::GroupGeneration { group, members, .. } => {
                self.group_members.insert(group.clone(), members.clone());
            }
            CoordinatorEvent::GroupState {
                group,
                state,
                generation,
                reason,
            } => {
                use crate::broker::coordinator::GroupState;
                // The newest announcement is the group's state, whoever made it.
                self.group_states.close_key(group, at);
                let members = self
                    .group_members
                    .get(group)
                    .map(|m| m.join(", "))
                    .unwrap_or_default();
                let reason = reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                self.group_states.open(
                    group.clone(),
                    Segment {
                        start_us: at,
                        end_us: at,
                        holder: node.to_string(),
                        label: format!("gen {generation} · {}", state.name()),
                        short: format!("g{generation}"),
                        title: format!(
                            "{group}: generation {generation}, {}{reason}, coordinator {node}; members: {members}",
                            state.name()
                        ),
                        color: *state as u32,
                        flagged: !matches!(state, GroupState::Stable),
                        in_sync: 0,
                    },
                );
            }
            _ => {}
        }
    }

    fn history(&mut self, entry: &HistoryEntry) {
        if let Op::GroupAssign {
            group,
            member,
            generation,
            partitions,
            awaiting,
        } = &entry.op
        {
            let node = entry.node.as_str();
            let key = (group.to_string(), node_order(node));
            let mut owned: Vec<String> = partitions.iter().map(|(tp, _)| tp.to_string()).collect();
            owned.extend(awaiting.iter().map(|tp| format!("{tp}?")));
            let positions = partitions
                .iter()
                .map(|(tp, at)| format!("{tp}@{at}"))
                .chain(awaiting.iter().map(|tp| format!("{tp}@?")))
                .collect::<Vec<_>>()
                .join(", ");
            if owned.is_empty() {
                self.assignments.close(&key, node, entry.at_us);
                return;
            }
            self.assignments.open(
                key,
                Segment {
                    start_us: entry.at_us,
                    end_us: entry.at_us,
                    holder: node.to_string(),
                    label: compact_partitions(&owned),
                    short: owned.len().to_string(),
                    title: format!(
                        "{node} ({member}) in {group} generation {generation} owns {positions}"
                    ),
                    color: node_number(node),
                    flagged: !awaiting.is_empty(),
                    in_sync: 0,
                },
            );
        }
    }

    fn finish(mut self) -> Timeline {
        let end = self.end_us;
        for key in self.bands.keys().cloned().collect::<Vec<_>>() {
            self.close_band(&key, end, "the end of the run");
        }
        let mut timeline = self.timeline;
        timeline.controller = self.controller.finish(end).remove(&()).unwrap_or_default();
        timeline.zk_leader = self.zk_leader.finish(end).remove(&()).unwrap_or_default();
        let largest = self.largest_isr;
        let mut hw = self.hw;
        timeline.partitions = self
            .leaders
            .finish(end)
            .into_iter()
            .map(|(key, mut leaders)| {
                let full = largest.get(&key).copied().unwrap_or(0);
                for segment in leaders.rows.iter_mut().flatten() {
                    if !segment.holder.is_empty() && segment.in_sync < full {
                        segment.flagged = true;
                    }
                }
                PartitionLane {
                    partition: key.1.to_string(),
                    leaders,
                    hw: downsample(&hw.remove(&key).unwrap_or_default(), end, MAX_HW_BUCKETS),
                }
            })
            .collect();
        let mut members: BTreeMap<String, Vec<(String, Lane)>> = BTreeMap::new();
        for ((group, (kind, number)), lane) in self.assignments.finish(end) {
            members
                .entry(group)
                .or_default()
                .push((format!("{kind}-{number}"), lane));
        }
        let states = self.group_states.finish(end);
        let groups: std::collections::BTreeSet<String> =
            states.keys().chain(members.keys()).cloned().collect();
        timeline.groups = groups
            .into_iter()
            .map(|group| GroupLane {
                states: states.get(&group).cloned().unwrap_or_default(),
                members: members.remove(&group).unwrap_or_default(),
                group,
            })
            .collect();
        timeline
    }
}

/// `a, b, c, d +3`.
fn abbreviate(names: &[String], keep: usize) -> String {
    let mut text = names
        .iter()
        .take(keep)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > keep {
        text.push_str(&format!(" +{}", names.len() - keep));
    }
    text
}

/// A fault's effect in a word or two (a power loss's file list is in `events.jsonl`).
fn short_effect(effect: &Effect) -> String {
    match effect {
        Effect::PowerLoss(crate::history::PowerLoss::Cut {
            bytes_lost,
            inside_fsync,
            ..
        }) => format!(
            "lost power ({bytes_lost} unsynced bytes lost{})",
            if *inside_fsync {
                ", inside an fsync"
            } else {
                ""
            }
        ),
        Effect::PowerLoss(crate::history::PowerLoss::NoDisk { .. }) => "lost power".into(),
        other => other.to_string(),
    }
}

/// `orders/0,2 __consumer_offsets/1`: partitions of one topic share its name.
fn compact_partitions(partitions: &[String]) -> String {
    let mut by_topic: Vec<(String, Vec<String>)> = Vec::new();
    for tp in partitions {
        let (topic, p) = tp.rsplit_once('/').unwrap_or((tp, ""));
        match by_topic.iter_mut().find(|(t, _)| t == topic) {
            Some((_, ps)) => ps.push(p.to_string()),
            None => by_topic.push((topic.to_string(), vec![p.to_string()])),
        }
    }
    by_topic
        .into_iter()
        .map(|(topic, ps)| format!("{topic}/{}", ps.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
