//! Checks of consumer groups: which member owned which partition when, what the coordinator
//! stored for them, and whether every acknowledged record was consumed.
//!
//! Owns: `exclusive-assignment`, `commit-monotonic`, `stale-commit-accepted`, `unseen`, and
//! the groups' part of `converges`. Like the broker checks they read only the history
//! (`GroupAssign`, `Commit`, `Poll`, `SendReturn`, `ClientStart`), the world's fault events,
//! the coordinators' announcements and the final partition logs — never a coordinator's
//! memory.
//!
//! What the coordinators announce is `broker::coordinator::CoordinatorEvent` (its doc is
//! the contract): a `member-removed` ends the member's ownership (its session or rebalance
//! timeout passed, it left, or its static instance was replaced); the `group-state` of a
//! group at its coordinator (the broker holding it in the newest generation; `Dead` means
//! the broker let it go) must end `Stable` for `converges`.
//!
//! # Rules
//!
//! - `exclusive-assignment`: a member owns the partitions of its last `GroupAssign` (those
//!   with a position and those awaiting one) from that moment until its next `GroupAssign`, the end of its process (a `world` kill, power loss
//!   or restart of its node, or a new `ClientStart`), or a coordinator's `member-removed`
//!   for its member id. A `GroupAssign` handing a partition to one member while another
//!   member of the group owns it is a violation. (A member expelled while paused may still
//!   believe it owns its partitions; Kafka fences it at its next commit, so ownership is
//!   judged by the group's view, not the zombie's: a member id already removed owns
//!   nothing, whatever a later `GroupAssign` of it says — a SyncGroup answer that reached
//!   the paused member after the coordinator had removed it.)
//! - `stale-commit-accepted`: a commit the member was told is stored, sent in generation `g`
//!   after some member had been handed partitions in a newer generation. A generation is
//!   stored before its assignment is handed out and generations never go back, so the
//!   coordinator had moved past `g` before the commit arrived and must have refused it
//!   (`ILLEGAL_GENERATION`, KAFKA-2017).
//! - `commit-monotonic`: for one group and partition, a stored commit sent after another
//!   stored commit was acknowledged carries a lower offset: the group's committed position
//!   went backwards, as clients observed it.
//! - `unseen` (at-least-once): an acknowledged record in the final log below the greatest
//!   offset the group stored for its partition that no member of the group polled. A member
//!   only commits positions it polled past, and a new owner starts at the committed offset,
//!   so nobody will ever read it. Records above the committed offset are `converges`' (lag).
//!   A group with `read_committed` members is not to read records whose transaction the
//!   final log aborts.
//! - `converges`: by the end of the `heal` bound, each group's last announced state is
//!   `Stable`, each of its members last synced in that generation (a member may own no
//!   partition, so taking part is its sign of life), and, for every partition its members
//!   read, it stored an offset at the end of the final log (lag 0; the world drains
//!   producers first).

use super::broker_events::processes_ended;
use super::final_log::TxnFate;
use super::kafka::{Facts, PartId};
use super::toolkit::{seconds, Findings, FxMap};
use super::{result, CheckInput, CheckResult, Violation};
use crate::broker::coordinator::{CoordinatorEvent, GroupState};
use crate::broker::proto::Generation;
use crate::broker::TopicPartition;
use crate::history::{Announcement, Event, HistoryEntry, Op, WorldEvent};
use crate::scenario::GroupSpec;
use std::collections::{BTreeMap, BTreeSet};

/// A coordinator's `group-state` announcement, read.
#[derive(Clone, Copy)]
struct StateAnnounced<'a> {
    event: &'a Event,
    state: GroupState,
    generation: Generation,
}

/// Runs the group checks when the scenario has groups.
pub fn run(input: &CheckInput<'_>, facts: &Facts<'_>) -> Vec<CheckResult> {
    let groups = input.scenario.groups();
    if groups.is_empty() {
        return Vec::new();
    }
    let mut session_ms = BTreeMap::new();
    for (name, spec) in input.scenario.reader_nodes() {
        let session = spec
            .config
            .session_timeout_ms
            .unwrap_or(crate::scenario::GROUP_SESSION_TIMEOUT_MS);
        session_ms.insert(name, session);
    }
    // The events the group checks read: the world's and the coordinators' but their
    // `offset-commit`s (which a group that commits every poll announces by the thousand).
    let mut events = Vec::new();
    let mut positions = Vec::new();
    let mut sorted = true;
    let mut last_us = 0;
    for (i, event) in input.events.iter().enumerate() {
        sorted &= event.at_us >= last_us;
        last_us = event.at_us;
        if matches!(event.announced, Announcement::World(_))
            || matches!(
                event.announced.coordinator(),
                Some(
                    CoordinatorEvent::GroupState { .. }
                        | CoordinatorEvent::MemberRemoved { .. }
                        | CoordinatorEvent::GroupGeneration { .. }
                )
            )
        {
            events.push(event);
            positions.push(i);
        }
    }
    let mut checks = GroupFacts {
        groups: &groups,
        session_ms,
        all_events: input.events,
        sorted,
        events,
        positions,
        history: &facts.others,
        facts,
        stored: BTreeMap::new(),
    };
    checks.stored = checks.stored_commits();
    let bound_us = checks
        .events
        .iter()
        .find(|e| matches!(e.announced.world(), Some(WorldEvent::Heal { .. })))
        .map(|heal| {
            let heal_us = u64::try_from(input.scenario.heal.as_micros()).unwrap_or(u64::MAX);
            heal.at_us.saturating_add(heal_us)
        });
    let mut results = vec![
        result("unseen", checks.unseen()),
        result("exclusive-assignment", checks.exclusive_assignment()),
        result("commit-monotonic", checks.commit_monotonic()),
        result("stale-commit-accepted", checks.stale_commit_accepted()),
    ];
    // Without a heal the run ended early; the general `converges` says so.
    if let Some(bound_us) = bound_us {
        results.push(result("converges", checks.converges(bound_us)));
    }
    results
}

/// The groups' view of one run.
struct GroupFacts<'a> {
    groups: &'a BTreeMap<String, GroupSpec>,
    /// Each member node's `session.timeout.ms`.
    session_ms: BTreeMap<String, u64>,
    /// Every event, and whether they are in time order.
    all_events: &'a [Event],
    sorted: bool,
    /// The world's events and the coordinators' group states, generations and removals,
    /// in order, and where each is in `all_events`.
    events: Vec<&'a Event>,
    positions: Vec<usize>,
    /// The history but its sends and their returns.
    history: &'a [&'a HistoryEntry],
    facts: &'a Facts<'a>,
    /// Every stored commit, by group and partition, in history order.
    stored: BTreeMap<(&'a str, &'a TopicPartition), Vec<Stored<'a>>>,
}

/// A stored (acknowledged) commit of one partition: its `Commit` entry, and what the checks
/// compare inline.
struct Stored<'a> {
    entry: &'a HistoryEntry,
    sent_us: u64,
    acked_us: u64,
    offset: u64,
}

impl<'a> Stored<'a> {
    /// The member's node.
    fn node(&self) -> &'a str {
        self.entry.node.as_str()
    }

    /// The member id and the generation it committed in.
    fn member(&self) -> (&'a str, Generation) {
        match &self.entry.op {
            Op::Commit {
                member, generation, ..
            } => (member, *generation),
            _ => unreachable!("a stored commit is a `Commit`"),
        }
    }
}

/// A commit a member was told is stored.
struct StoredCommit<'a> {
    entry: &'a HistoryEntry,
    node: &'a str,
    group: &'a str,
    member: &'a str,
    generation: Generation,
    offsets: &'a [(TopicPartition, u64)],
    sent_us: u64,
    acked_us: u64,
}

/// Who owns a partition, since when.
#[derive(Clone)]
struct Owner<'a> {
    node: &'a str,
    member: &'a str,
    generation: Generation,
    since_us: u64,
}

impl Owner<'_> {
    fn describe(&self) -> String {
        format!(
            "{} (member {}, generation {})",
            self.node, self.member, self.generation
        )
    }
}

/// One step of the ownership timeline.
enum Step<'a> {
    /// The node's process ended: it owns nothing.
    ProcessEnded(&'a str),
    /// The coordinator removed `member` from `group`.
    Removed { group: &'a str, member: &'a str },
    /// A member's assignment.
    Assigned {
        node: &'a str,
        group: &'a str,
        member: &'a str,
        generation: Generation,
        partitions: BTreeSet<&'a TopicPartition>,
    },
}

impl<'a> GroupFacts<'a> {
    fn group_of(&self, node: &str) -> Option<&'a str> {
        self.groups
            .iter()
            .find(|(_, spec)| spec.members.iter().any(|m| m == node))
            .map(|(group, _)| group.as_str())
    }

    /// Every commit a member was told is stored, in history order.
    fn stored(&self) -> impl Iterator<Item = StoredCommit<'a>> + 'a {
        self.history.iter().filter_map(|entry| match &entry.op {
            Op::Commit {
                group,
                member,
                generation,
                offsets,
                sent_ms,
                error: None,
            } => Some(StoredCommit {
                entry,
                node: &entry.node,
                group,
                member,
                generation: *generation,
                offsets,
                sent_us: sent_ms * 1000,
                acked_us: entry.at_us,
            }),
            _ => None,
        })
    }

    /// Every stored commit, by group and partition, in history order.
    fn stored_commits(&self) -> BTreeMap<(&'a str, &'a TopicPartition), Vec<Stored<'a>>> {
        let mut stored: FxMap<(&'a str, &'a TopicPartition), Vec<Stored<'a>>> = FxMap::default();
        for commit in self.stored() {
            for (tp, offset) in commit.offsets {
                stored.entry((commit.group, tp)).or_default().push(Stored {
                    entry: commit.entry,
                    sent_us: commit.sent_us,
                    acked_us: commit.acked_us,
                    offset: *offset,
                });
            }
        }
        stored.into_iter().collect()
    }

    /// The ownership timeline: history and events merged in time order; on a tie, endings
    /// come first (the check gives the benefit of the doubt).
    fn ownership_steps(&self) -> Vec<(u64, Step<'a>)> {
        let mut steps: Vec<(u64, u8, usize, Step<'a>)> = Vec::new();
        for (i, event) in self.events.iter().enumerate() {
            for node in processes_ended(event).filter(|n| self.group_of(n).is_some()) {
                steps.push((event.at_us, 0, i, Step::ProcessEnded(node)));
            }
            if let Some(CoordinatorEvent::MemberRemoved { group, member, .. }) =
                event.announced.coordinator()
            {
                steps.push((event.at_us, 0, i, Step::Removed { group, member }));
            }
        }
        let base = self.events.len();
        for (i, entry) in self.history.iter().enumerate() {
            let node = entry.node.as_str();
            match &entry.op {
                Op::ClientStart { .. } if self.group_of(node).is_some() => {
                    steps.push((entry.at_us, 0, base + i, Step::ProcessEnded(node)));
                }
                Op::GroupAssign {
                    group,
                    member,
                    generation,
                    partitions,
                    awaiting,
                } => steps.push((
                    entry.at_us,
                    1,
                    base + i,
                    Step::Assigned {
                        node,
                        group,
                        member,
                        generation: *generation,
                        partitions: partitions
                            .iter()
                            .map(|(tp, _)| tp)
                            .chain(awaiting.iter())
                            .collect(),
                    },
                )),
                _ => {}
            }
        }
        steps.sort_by_key(|(at, rank, i, _)| (*at, *rank, *i));
        steps
            .into_iter()
            .map(|(at, _, _, step)| (at, step))
            .collect()
    }

    /// `exclusive-assignment`.
    fn exclusive_assignment(&self) -> Vec<Violation> {
        // (group, partition) → its owner; node → (group, member, partitions it owns).
        let mut owners: BTreeMap<(&str, &TopicPartition), Owner<'a>> = BTreeMap::new();
        let mut held: BTreeMap<&str, (&str, &str, BTreeSet<&TopicPartition>)> = BTreeMap::new();
        let mut found: BTreeMap<(&str, &TopicPartition), Findings> = BTreeMap::new();
        // Member ids the coordinator removed: they own nothing from then on.
        let mut removed: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (at_us, step) in self.ownership_steps() {
            match step {
                Step::ProcessEnded(node) => {
                    if let Some((group, _, partitions)) = held.remove(node) {
                        release(&mut owners, node, group, &partitions);
                    }
                }
                Step::Removed { group, member } => {
                    removed.insert((group, member));
                    let node = held
                        .iter()
                        .find(|(_, (g, m, _))| *g == group && *m == member)
                        .map(|(node, _)| *node);
                    if let Some(node) = node {
                        let (group, _, partitions) = held.remove(node).expect("found");
                        release(&mut owners, node, group, &partitions);
                    }
                }
                Step::Assigned {
                    node,
                    group,
                    member,
                    generation,
                    partitions,
                } => {
                    if let Some((old_group, _, old)) = held.remove(node) {
                        let gone = old.difference(&partitions).copied().collect();
                        release(&mut owners, node, old_group, &gone);
                    }
                    if removed.contains(&(group, member)) {
                        // A zombie's belief (a late SyncGroup answer of a member the group
                        // already removed): the group's view says it owns nothing.
                        release(&mut owners, node, group, &partitions);
                        continue;
                    }
                    for tp in &partitions {
                        let owner = Owner {
                            node,
                            member,
                            generation,
                            since_us: at_us,
                        };
                        match owners.get(&(group, *tp)) {
                            Some(other) if other.node != node => {
                                let what = format!("{group}: partitions owned by two members");
                                found
                                    .entry((group, *tp))
                                    .or_insert_with(|| {
                                        Findings::new("exclusive-assignment", Some(tp), what)
                                    })
                                    .add(
                                        at_us,
                                        format!(
                                            "handed to {} at {} while {} owned it since {}",
                                            owner.describe(),
                                            seconds(at_us),
                                            other.describe(),
                                            seconds(other.since_us)
                                        ),
                                    );
                            }
                            Some(_) => continue,
                            None => {}
                        }
                        owners.insert((group, *tp), owner);
                    }
                    held.insert(node, (group, member, partitions));
                }
            }
        }
        found
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `stale-commit-accepted`.
    fn stale_commit_accepted(&self) -> Vec<Violation> {
        // group → generation → when a member was first handed partitions in it.
        let mut handed: BTreeMap<&str, BTreeMap<Generation, u64>> = BTreeMap::new();
        for entry in self.history {
            if let Op::GroupAssign {
                group, generation, ..
            } = &entry.op
            {
                let first = handed
                    .entry(&**group)
                    .or_default()
                    .entry(*generation)
                    .or_insert(entry.at_us);
                *first = (*first).min(entry.at_us);
            }
        }
        let mut found: BTreeMap<&str, Findings> = BTreeMap::new();
        for commit in self.stored() {
            let StoredCommit {
                entry: _,
                node,
                group,
                member,
                generation,
                offsets,
                sent_us,
                acked_us,
            } = commit;
            let newer = handed.get(group).and_then(|generations| {
                generations
                    .range(generation.next()..)
                    .filter(|(_, &at)| at < sent_us)
                    .min_by_key(|(_, &at)| at)
            });
            let Some((newer, newer_at)) = newer else {
                continue;
            };
            let what = format!("{group}: commits of an old generation stored");
            let offsets: Vec<String> = offsets.iter().map(|(tp, o)| format!("{tp}@{o}")).collect();
            found
                .entry(group)
                .or_insert_with(|| Findings::new("stale-commit-accepted", None, what))
                .add(
                    acked_us,
                    format!(
                        "{node} (member {member}) committed {} in generation {generation}, sent \
                         at {} and stored at {}, after generation {newer} was handed out at {}",
                        offsets.join(", "),
                        seconds(sent_us),
                        seconds(acked_us),
                        seconds(*newer_at)
                    ),
                );
        }
        found
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `commit-monotonic`.
    fn commit_monotonic(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for ((group, tp), commits) in &self.stored {
            let mut by_ack: Vec<&Stored<'_>> = commits.iter().collect();
            by_ack.sort_by_key(|c| c.acked_us);
            // The greatest offset acknowledged up to each point, and by whom.
            let mut greatest: Vec<(u64, &Stored<'_>)> = Vec::new();
            for c in &by_ack {
                let best = match greatest.last() {
                    Some((_, b)) if b.offset >= c.offset => *b,
                    _ => *c,
                };
                greatest.push((c.acked_us, best));
            }
            let what = format!("{group}: committed offsets going backwards");
            let mut findings = Findings::new("commit-monotonic", Some(tp), what);
            for c in commits {
                let before = greatest.partition_point(|(at, _)| *at < c.sent_us);
                let Some((_, best)) = before.checked_sub(1).map(|i| greatest[i]) else {
                    continue;
                };
                if c.offset < best.offset {
                    let ((member, generation), (best_member, best_generation)) =
                        (c.member(), best.member());
                    findings.add(
                        c.acked_us,
                        format!(
                            "{} (member {member}, generation {generation}) stored {} at {} (sent \
                             at {}) after {} (member {best_member}, generation \
                             {best_generation}) had stored {} at {}",
                            c.node(),
                            c.offset,
                            seconds(c.acked_us),
                            seconds(c.sent_us),
                            best.node(),
                            best.offset,
                            seconds(best.acked_us)
                        ),
                    );
                }
            }
            out.extend(findings.into_violation());
        }
        out
    }

    /// `unseen`.
    fn unseen(&self) -> Vec<Violation> {
        let facts = self.facts;
        let mut out = Vec::new();
        for (group, spec) in self.groups {
            // The values a member of the group polled.
            let mut polled = vec![false; facts.value_count()];
            // Whether the last poll's node is a member (a poll's records come together).
            let mut last: Option<(&HistoryEntry, bool)> = None;
            for poll in &facts.polls {
                let is_member = match last {
                    Some((entry, is_member)) if std::ptr::eq(entry, poll.entry) => is_member,
                    _ => {
                        let is_member = spec.members.contains(&poll.entry.node);
                        last = Some((poll.entry, is_member));
                        is_member
                    }
                };
                if is_member {
                    polled[poll.value as usize] = true;
                }
            }
            // Per partition of the group, its greatest stored commit.
            let committed: Vec<Option<&Stored<'a>>> = facts
                .parts()
                .map(|(_, tp)| {
                    if !spec.partitions.contains(tp) {
                        return None;
                    }
                    self.stored
                        .get(&(group.as_str(), tp))
                        .and_then(|c| c.iter().max_by_key(|c| c.offset))
                })
                .collect();
            // Where the group began reading each partition: the first position a member of
            // it was given (the committed offset, or where `auto.offset.reset` put it when
            // nothing was: offset 0 for `earliest`, the end of the log for `latest`).
            // Records below it were never the group's to read.
            let mut began: Vec<Option<u64>> = vec![None; committed.len()];
            for entry in self.history {
                if let Op::GroupAssign {
                    group: assigned_in,
                    partitions,
                    ..
                } = &entry.op
                {
                    if **assigned_in != **group || !spec.members.contains(&entry.node) {
                        continue;
                    }
                    for (tp, position) in partitions.iter() {
                        if let Some(part) = facts.part_id(tp) {
                            began[part as usize].get_or_insert(*position);
                        }
                    }
                }
            }
            // A group reading committed data is not to see aborted transactions.
            let read_committed = spec
                .members
                .iter()
                .any(|m| facts.read_committed.contains(m));
            let mut found: BTreeMap<PartId, Findings> = BTreeMap::new();
            for ack in &facts.acks {
                let Some(committed) = committed[ack.part as usize] else {
                    continue;
                };
                if polled[ack.value as usize] {
                    continue;
                }
                let Some(reference) = facts.reference_of(ack.part) else {
                    continue;
                };
                let log = reference.log;
                // A record missing from the final log is `lost-write`'s; one retained
                // away was not there to read.
                let Some(offset) = facts.offsets(ack.part, ack.value).next() else {
                    continue;
                };
                if offset < log.log_start || offset >= committed.offset {
                    continue;
                }
                if began[ack.part as usize].is_some_and(|began| offset < began) {
                    continue;
                }
                if read_committed && log.txn_fate(offset) == Some(TxnFate::Aborted) {
                    continue;
                }
                let partition = facts.part(ack.part);
                let what = format!(
                    "{group}: acknowledged records below the committed offset that no member \
                     polled"
                );
                let entry = ack.entry;
                found
                    .entry(ack.part)
                    .or_insert_with(|| Findings::new("unseen", Some(partition), what))
                    .add(
                        entry.at_us,
                        format!(
                            "{} at offset {offset} (acknowledged at {}; {} stored offset \
                             {} at {})",
                            facts.value(ack.value),
                            seconds(entry.at_us),
                            committed.node(),
                            committed.offset,
                            seconds(committed.acked_us)
                        ),
                    );
            }
            out.extend(found.into_values().filter_map(Findings::into_violation));
        }
        out
    }

    /// The state of `group` at `at_us` as its coordinator last announced it: each broker
    /// holds the group from a `group-state` until it announces `Dead` (it unloaded the
    /// group) or its process ends; of the brokers holding it, the one in the newest
    /// generation, then the latest to speak, is its coordinator.
    fn coordinated_state(&self, group: &str, at_us: u64) -> Option<StateAnnounced<'a>> {
        let mut holding: BTreeMap<&str, StateAnnounced<'a>> = BTreeMap::new();
        // The events before the first one (of all) after `at_us`.
        let later = match self.sorted {
            true => self.all_events.partition_point(|e| e.at_us <= at_us),
            false => self
                .all_events
                .iter()
                .position(|e| e.at_us > at_us)
                .unwrap_or(self.all_events.len()),
        };
        let before = self.positions.partition_point(|&p| p < later);
        for &event in &self.events[..before] {
            for node in processes_ended(event) {
                holding.remove(node);
            }
            if let Some(CoordinatorEvent::GroupState {
                group: g,
                state,
                generation,
                ..
            }) = event.announced.coordinator()
            {
                if g != group {
                    continue;
                }
                if *state == GroupState::Dead {
                    holding.remove(event.node.as_str());
                } else {
                    let announced = StateAnnounced {
                        event,
                        state: *state,
                        generation: *generation,
                    };
                    holding.insert(&event.node, announced);
                }
            }
        }
        holding
            .into_values()
            .max_by_key(|a| (a.generation, a.event.at_us))
    }

    /// The members the coordinator still counts at `bound_us` (of the newest generation it
    /// announced, not removed since) whose process had ended, described with what they
    /// owned and when their session ends: a dead member holds its group back until then.
    fn dead_members(&self, group: &str, spec: &GroupSpec, bound_us: u64) -> Vec<String> {
        let newest = self
            .events
            .iter()
            .filter(|e| e.at_us <= bound_us)
            .filter_map(|e| match e.announced.coordinator() {
                Some(CoordinatorEvent::GroupGeneration {
                    group: g,
                    generation,
                    members,
                    ..
                }) if g == group => Some((e.at_us, *generation, members)),
                _ => None,
            })
            .max_by_key(|&(at_us, generation, _)| (generation, at_us));
        let Some((newest_us, generation, members)) = newest else {
            return Vec::new();
        };
        let removed: BTreeSet<&str> = self
            .events
            .iter()
            .filter(|e| e.at_us >= newest_us && e.at_us <= bound_us)
            .filter_map(|e| match e.announced.coordinator() {
                Some(CoordinatorEvent::MemberRemoved {
                    group: g, member, ..
                }) if g == group => Some(member.as_str()),
                _ => None,
            })
            .collect();
        let members = members
            .iter()
            .map(String::as_str)
            .filter(|m| !removed.contains(m));
        let mut out = Vec::new();
        for member in members {
            let Some(node) = spec
                .members
                .iter()
                .find(|n| member.starts_with(&format!("{n}-")))
            else {
                continue;
            };
            // The member's last assignment, and the end of the process that held it.
            let Some((assigned_us, owned)) = self
                .history
                .iter()
                .filter(|e| e.at_us <= bound_us && &e.node == node)
                .rev()
                .find_map(|e| match &e.op {
                    Op::GroupAssign {
                        member: m,
                        partitions,
                        awaiting,
                        ..
                    } if **m == *member => {
                        let mut owned: Vec<String> =
                            partitions.iter().map(|(tp, _)| tp.to_string()).collect();
                        owned.extend(awaiting.iter().map(ToString::to_string));
                        Some((e.at_us, owned))
                    }
                    _ => None,
                })
            else {
                continue;
            };
            let Some(ended_us) = self
                .events
                .iter()
                .filter(|e| e.at_us >= assigned_us && e.at_us <= bound_us)
                .find(|e| processes_ended(e).any(|n| n == node))
                .map(|e| e.at_us)
            else {
                continue;
            };
            let session_ms = self.session_ms.get(node.as_str()).copied().unwrap_or(0);
            let owning = if owned.is_empty() {
                "owning nothing".to_string()
            } else {
                format!("still owning {}", owned.join(", "))
            };
            out.push(format!(
                "{group}: member {member} of {node}, whose process ended at {}, is still in \
                 generation {} at the coordinator, {owning}; its session.timeout.ms ({}s) \
                 ends by {}",
                seconds(ended_us),
                generation,
                session_ms as f64 / 1000.0,
                seconds(ended_us + session_ms * 1000),
            ));
        }
        out
    }

    /// The groups' part of `converges`, judged at `bound_us`.
    fn converges(&self, bound_us: u64) -> Vec<Violation> {
        let stored = &self.stored;
        let mut out = Vec::new();
        let late = |detail: String, partition: Option<&TopicPartition>| Violation {
            check: "converges".into(),
            detail,
            at_ms: Some(bound_us / 1000),
            partition: partition.map(ToString::to_string),
            node: None,
        };
        for (group, spec) in self.groups {
            let before = out.len();
            self.group_converges(group, spec, bound_us, stored, &late, &mut out);
            if out.len() > before {
                for dead in self.dead_members(group, spec, bound_us) {
                    out.push(late(dead, None));
                }
            }
        }
        out
    }

    fn group_converges(
        &self,
        group: &str,
        spec: &GroupSpec,
        bound_us: u64,
        stored: &BTreeMap<(&'a str, &'a TopicPartition), Vec<Stored<'a>>>,
        late: &dyn Fn(String, Option<&TopicPartition>) -> Violation,
        out: &mut Vec<Violation>,
    ) {
        {
            let state = self.coordinated_state(group, bound_us);
            if state.as_ref().map(|a| a.state) != Some(GroupState::Stable) {
                let last = state.map_or("none announced".to_string(), |a| {
                    let e = a.event;
                    format!(
                        "{:?} in generation {} (by {} at {})",
                        a.state,
                        a.generation,
                        e.node,
                        seconds(e.at_us)
                    )
                });
                out.push(late(
                    format!(
                        "{group}: not Stable by {}; last state {last}",
                        seconds(bound_us)
                    ),
                    None,
                ));
            } else if let Some(stable) = state.map(|a| a.generation) {
                // Every member takes part: its last sync was of the Stable generation.
                for member in &spec.members {
                    let synced = self
                        .history
                        .iter()
                        .filter(|e| e.at_us <= bound_us && &e.node == member)
                        .rev()
                        .find_map(|e| match &e.op {
                            Op::GroupAssign { generation, .. } => Some(*generation),
                            _ => None,
                        });
                    if synced != Some(stable) {
                        let synced = synced.map_or("never synced".into(), |g| {
                            format!("last synced in generation {g}")
                        });
                        out.push(Violation {
                            node: Some(member.clone()),
                            ..late(
                                format!(
                                    "{group}: {member} is not in the Stable generation {stable} \
                                     by {} ({synced})",
                                    seconds(bound_us)
                                ),
                                None,
                            )
                        });
                    }
                }
            }
            for tp in &spec.partitions {
                let Some(log) = self.facts.reference(tp) else {
                    continue;
                };
                let committed = stored
                    .get(&(group, tp))
                    .into_iter()
                    .flatten()
                    .filter(|c| c.acked_us <= bound_us)
                    .map(|c| c.offset)
                    .max();
                // Nothing to commit in an empty log.
                if committed.unwrap_or(0) < log.log_end {
                    let lag = log.log_end - committed.unwrap_or(0);
                    let committed = committed.map_or("nothing".to_string(), |c| c.to_string());
                    out.push(late(
                        format!(
                            "{tp}: {group} committed {committed} by {}, short of the final log \
                             end {} (lag {lag})",
                            seconds(bound_us),
                            log.log_end,
                        ),
                        Some(tp),
                    ));
                }
            }
        }
    }
}

/// `node` gives up `partitions` of `group` (those it still owns).
fn release<'a>(
    owners: &mut BTreeMap<(&'a str, &'a TopicPartition), Owner<'a>>,
    node: &str,
    group: &'a str,
    partitions: &BTreeSet<&'a TopicPartition>,
) {
    for tp in partitions {
        if owners.get(&(group, *tp)).is_some_and(|o| o.node == node) {
            owners.remove(&(group, *tp));
        }
    }
}

#[cfg(test)]
mod tests {
    /// Each group check's cases — a hand-made run that breaks its rule, and ones that keep
    /// it — are the table `src/check/testdata/group.txt` (read by `check::tables`).
    #[test]
    fn group_rules() {
        crate::check::tables::run_group_table("src/check/testdata/group.txt");
    }
}
