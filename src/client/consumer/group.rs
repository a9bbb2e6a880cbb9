//! Subscribe mode: the consumer as a member of a group (Kafka's `ConsumerCoordinator`).
//!
//! Owns: finding the coordinator, joining (KIP-394's second join with the id handed out),
//! the leader's assignment, syncing, heartbeats every `heartbeat.interval.ms`, committed
//! offsets, and the rebalance protocols. Commits: auto-commit sends every owned position
//! each `auto.commit.interval.ms` (a failed one is simply sent again at the next interval);
//! with auto-commit off, a partition polled past its last successful commit is *dirty*,
//! and the dirty partitions still owned are committed whenever the member is Stable in its
//! current generation with a ready coordinator and no commit in flight — after each poll,
//! and again `retry.backoff.ms` after a commit that failed (`REBALANCE_IN_PROGRESS`,
//! `NOT_COORDINATOR`, ...) or was lost. Records polled during a rebalance (cooperative
//! members keep reading) are thus committed once it ends, as Kafka's application commits
//! again after its next poll. Fencing is unchanged: a partition lost or revoked is no
//! longer this member's to commit. The rebalance protocols:
//! - eager (`range`): before rejoining, commit every owned partition's position and revoke
//!   them all; the assignment after the sync is all new;
//! - cooperative (`cooperative-sticky`, KIP-429): rejoin owning everything; after the sync,
//!   commit and revoke only what is no longer assigned, and if anything was revoked, rejoin
//!   at once so it can be handed over.
//!
//! New partitions start at their committed offset, or where `auto.offset.reset` puts them
//! if none (`earliest`: offset 0; `latest`: ListOffsets, the partition listed as awaiting
//! until it answers). A member told it is unknown or
//! of another generation has lost its partitions: it drops them without committing and
//! joins again as new. A member that hears no heartbeat answer for a session timeout
//! marks the coordinator unknown and looks for it again.
//!
//! `max.poll.interval.ms`: every tick is a run of the application's poll loop, which never
//! stalls on its own; a paused process stalls as a whole. When it resumes after more than
//! `max.poll.interval.ms`, the member leaves the group as Kafka's heartbeat thread makes it
//! (LeaveGroup for a dynamic member), losing its partitions without committing.
//!
//! Simplifications: no LeaveGroup on close (a killed process never closes), and a fenced
//! static member stops taking part in the group. The legacy switch
//! `commit-before-process` (at-most-once) commits each poll's position before the records
//! are processed (recorded as `Poll`), which happens when the commit returns.

use super::{ConsumerAction, ConsumerCore, GroupMember, InFlight, PartitionFetch, Resetting};
use crate::broker::proto::{
    CommittedOffset, Generation, IsolationLevel, JoinGroupRequest, MemberRef, OffsetCommitRequest,
    OffsetSpec, RequestBody, ResponseBody, SyncGroupRequest,
};
use crate::broker::{BrokerId, Bytes, KafkaError, TopicPartition};
use crate::client::assignor::{assign, Assignment, Assignor, Subscription};
use crate::history::CompactString;
use crate::log::{LeaderEpoch, Offset};
use std::collections::{BTreeMap, BTreeSet};

/// A group member's settings, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.id`.
    pub group_id: String,
    /// `client.id` (member ids start with it).
    pub client_id: String,
    /// `group.instance.id`: a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// `partition.assignment.strategy`.
    pub assignor: Assignor,
    /// `session.timeout.ms` (default 45000).
    pub session_timeout_ms: u64,
    /// `heartbeat.interval.ms` (default 3000).
    pub heartbeat_interval_ms: u64,
    /// `max.poll.interval.ms` (default 300000): the rebalance timeout.
    pub max_poll_interval_ms: u64,
    /// `enable.auto.commit` (default true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (default 5000).
    pub auto_commit_interval_ms: u64,
    /// LEGACY (at-most-once, the bug zoo's `commit-before-process`): commit a poll's new
    /// position before processing its records, so a crash in between skips them.
    pub legacy_commit_before_process: bool,
    /// CANARY (`cooperative-no-holdback`): as the group's leader, hand partitions that move
    /// to their new owner in the same rebalance, skipping KIP-429's hold-back.
    pub legacy_cooperative_no_holdback: bool,
    /// Not a Kafka setting: the application commits the group's offsets through its
    /// producer's transactions (a processor, as Kafka Streams with exactly-once does), so
    /// the member never sends OffsetCommit (see [`ConsumerCore::committable`] and
    /// [`ConsumerCore::rewind_to_committed`]).
    pub offsets_by_transaction: bool,
}

/// Kafka's default `session.timeout.ms` of a group member.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;

impl GroupConfig {
    /// Kafka's defaults for member `client_id` of `group_id`.
    pub fn new(group_id: &str, client_id: &str) -> GroupConfig {
        GroupConfig {
            group_id: group_id.to_string(),
            client_id: client_id.to_string(),
            group_instance_id: None,
            assignor: Assignor::Range,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            legacy_commit_before_process: false,
            legacy_cooperative_no_holdback: false,
            offsets_by_transaction: false,
        }
    }
}

/// A group request in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum GroupCall {
    FindCoordinator,
    /// The join attempt it belongs to (answers of an abandoned attempt are ignored).
    Join(u64),
    Sync(u64),
    Heartbeat,
    Commit {
        generation: Generation,
        member_id: String,
        offsets: Vec<(TopicPartition, u64)>,
        /// When it was sent (for the history: a commit's real-time interval).
        sent_ms: u64,
    },
    FetchOffsets,
    /// LeaveGroup: nobody waits for its answer.
    Leave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Must (re)join.
    Unjoined,
    /// JoinGroup in flight.
    Joining,
    /// SyncGroup in flight.
    Syncing,
    /// In the group with an assignment.
    Stable,
    /// Fenced (a static member replaced by another instance): out for good.
    Fenced,
}

/// The membership state.
#[derive(Clone, Debug)]
pub(super) struct Membership {
    config: GroupConfig,
    coordinator: Option<BrokerId>,
    retry_at_ms: u64,
    member_id: String,
    /// The generation of the last JoinGroup answer (what commits are sent with).
    generation: Generation,
    /// Counts join attempts; at most one JoinGroup or SyncGroup of the current attempt is
    /// in flight (Kafka's single join future).
    attempt: u64,
    /// The generation of the last completed SyncGroup: the one the owned partitions
    /// were handed out in.
    synced_generation: Generation,
    phase: Phase,
    /// Partitions owned (in the assignment, positions known or being fetched).
    owned: BTreeSet<TopicPartition>,
    /// Assigned, waiting for their committed offsets.
    awaiting_offsets: BTreeSet<TopicPartition>,
    fetching_offsets: bool,
    /// No OffsetFetch before this (`UNSTABLE_OFFSET_COMMIT`: a transaction holding offsets
    /// of these partitions is not complete yet; Kafka retries after `retry.backoff.ms`).
    offsets_retry_at_ms: u64,
    heartbeat_in_flight: bool,
    last_heartbeat_sent_ms: u64,
    /// When the coordinator last answered a heartbeat (or the member last joined).
    last_heard_ms: u64,
    last_commit_ms: u64,
    commit_in_flight: bool,
    /// Positions last committed successfully.
    committed: BTreeMap<TopicPartition, u64>,
    /// With manual commits: no commit of dirty partitions before this (a commit failed or
    /// was lost; Kafka's application commits again after its next poll).
    commit_retry_at_ms: u64,
    /// When the application loop last ran (a `poll()`).
    last_poll_ms: u64,
    /// Legacy commit-before-process: polled records waiting for their commit to return
    /// before they are processed.
    unprocessed: Vec<(TopicPartition, Vec<(u64, CompactString)>)>,
    /// As the generation's leader: the partition count of every topic the group subscribes
    /// to when it assigned them (0 for a topic not known yet). Metadata that differs asks
    /// for a rebalance (Kafka's `assignmentSnapshot`): a topic created, or grown, after the
    /// assignment gets its partitions assigned.
    assignment_snapshot: Option<BTreeMap<String, u32>>,
}

impl Membership {
    pub(super) fn new(config: GroupConfig) -> Membership {
        Membership {
            config,
            coordinator: None,
            retry_at_ms: 0,
            member_id: String::new(),
            generation: Generation::NONE,
            attempt: 0,
            synced_generation: Generation::NONE,
            phase: Phase::Unjoined,
            owned: BTreeSet::new(),
            awaiting_offsets: BTreeSet::new(),
            fetching_offsets: false,
            offsets_retry_at_ms: 0,
            heartbeat_in_flight: false,
            last_heartbeat_sent_ms: 0,
            last_heard_ms: 0,
            last_commit_ms: 0,
            commit_in_flight: false,
            committed: BTreeMap::new(),
            commit_retry_at_ms: 0,
            last_poll_ms: 0,
            unprocessed: Vec::new(),
            assignment_snapshot: None,
        }
    }

    fn member_ref(&self) -> MemberRef {
        MemberRef {
            group_id: self.config.group_id.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
        }
    }

    /// Who owns the partitions, and in which generation they were handed out.
    fn owner_tag(&self) -> GroupMember {
        GroupMember {
            group: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            generation: self.synced_generation,
        }
    }
}

impl ConsumerCore {
    fn membership(&mut self) -> &mut Membership {
        self.group.as_mut().expect("subscribe mode")
    }

    /// The group's work for this turn: find the coordinator, join, heartbeat, commit.
    pub(super) fn drive_group(&mut self, now_ms: u64) {
        let g = self.membership();
        if g.phase == Phase::Fenced || now_ms < g.retry_at_ms {
            return;
        }
        // No heartbeat answer for a whole session: the coordinator is gone for us.
        if g.phase == Phase::Stable
            && now_ms.saturating_sub(g.last_heard_ms) > g.config.session_timeout_ms
        {
            g.coordinator = None;
            g.phase = Phase::Unjoined;
        }
        let Some(coordinator) = g.coordinator else {
            self.send_group(None, GroupCall::FindCoordinator, now_ms);
            return;
        };
        if !self.net.is_ready(coordinator) {
            self.net.connect(coordinator, now_ms);
            return;
        }
        let g = self.membership();
        match g.phase {
            Phase::Unjoined => {
                if !g.config.assignor.is_cooperative() && !g.owned.is_empty() {
                    // Eager: commit what was read, then give everything up.
                    self.commit_positions(None, false, now_ms);
                    self.revoke_all();
                }
                self.send_join(now_ms);
            }
            Phase::Stable => {
                self.on_metadata_updated();
                let g = self.membership();
                if g.phase != Phase::Stable {
                    return;
                }
                if !g.heartbeat_in_flight
                    && now_ms
                        >= g.last_heartbeat_sent_ms
                            .saturating_add(g.config.heartbeat_interval_ms)
                {
                    g.heartbeat_in_flight = true;
                    g.last_heartbeat_sent_ms = now_ms;
                    let body = RequestBody::Heartbeat(g.member_ref());
                    self.send_group(Some(body), GroupCall::Heartbeat, now_ms);
                }
                // KIP-447: a read_committed consumer waits for offsets of transactions
                // still open (`require_stable`).
                let require_stable = self.config.isolation_level == IsolationLevel::ReadCommitted;
                let g = self.membership();
                if !g.awaiting_offsets.is_empty()
                    && !g.fetching_offsets
                    && now_ms >= g.offsets_retry_at_ms
                {
                    g.fetching_offsets = true;
                    let body = RequestBody::OffsetFetch {
                        group_id: g.config.group_id.clone(),
                        partitions: g.awaiting_offsets.iter().cloned().collect(),
                        require_stable,
                    };
                    self.send_group(Some(body), GroupCall::FetchOffsets, now_ms);
                }
                let g = self.membership();
                if g.config.enable_auto_commit
                    && now_ms
                        >= g.last_commit_ms
                            .saturating_add(g.config.auto_commit_interval_ms)
                {
                    g.last_commit_ms = now_ms;
                    self.commit_positions(None, true, now_ms);
                } else if !g.config.enable_auto_commit
                    && !g.commit_in_flight
                    && now_ms >= g.commit_retry_at_ms
                {
                    // Manual commits: every owned partition read past its last successful
                    // commit (dirty) is committed, in the current generation: after a poll,
                    // and again after a commit that failed or was lost.
                    self.commit_positions(None, false, now_ms);
                }
            }
            Phase::Joining | Phase::Syncing | Phase::Fenced => {}
        }
    }

    /// The group membership a transaction's offsets are committed with (Kafka's
    /// `groupMetadata()`: the group, the member id and generation of the last join, the
    /// instance id); `None` outside a group.
    pub fn group_metadata(&self) -> Option<MemberRef> {
        self.group.as_ref().map(Membership::member_ref)
    }

    /// The positions of the owned partitions among `partitions` (those with a known
    /// position), as offsets to commit: each the next offset to read, with the leader
    /// epoch of the record before it (KIP-320).
    pub fn committable(
        &self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Vec<(TopicPartition, CommittedOffset)> {
        let Some(g) = self.group.as_ref() else {
            return Vec::new();
        };
        partitions
            .iter()
            .filter(|tp| g.owned.contains(*tp))
            .filter_map(|tp| {
                let p = self.assignment.get(tp)?;
                let committed = CommittedOffset {
                    offset: p.position,
                    leader_epoch: p.position_epoch,
                };
                Some((*tp, committed))
            })
            .collect()
    }

    /// The owned partitions whose position is known and differs from the offset last
    /// committed (fetched at assignment, or noted by [`Self::note_committed`]): what a
    /// processor still has to commit, even when only markers were passed.
    pub fn dirty_partitions(&self) -> BTreeSet<TopicPartition> {
        let Some(g) = self.group.as_ref() else {
            return BTreeSet::new();
        };
        self.assignment
            .iter()
            .filter(|(tp, p)| g.owned.contains(*tp) && g.committed.get(*tp) != Some(&p.position.0))
            .map(|(tp, _)| *tp)
            .collect()
    }

    /// The application committed these offsets itself (with a transaction).
    pub fn note_committed(&mut self, offsets: &[(TopicPartition, u64)]) {
        if let Some(g) = self.group.as_mut() {
            for (tp, offset) in offsets {
                g.committed.insert(*tp, *offset);
            }
        }
    }

    /// The application aborted what it processed since the last commit (Kafka Streams
    /// closes its tasks dirty): every owned partition goes back to its committed offset,
    /// fetched again (with `require_stable` when read_committed, so a transaction still
    /// completing is waited for). Recorded as a group assignment, a seek.
    pub fn rewind_to_committed(&mut self) {
        let Some(g) = self.group.as_mut() else {
            return;
        };
        let owned: Vec<TopicPartition> = g.owned.iter().copied().collect();
        if owned.is_empty() {
            return;
        }
        g.awaiting_offsets.extend(owned.iter().copied());
        for tp in &owned {
            self.forget(tp);
        }
        self.record_group_assignment();
    }

    /// Whether this consumer is a group member (subscribe mode).
    pub fn is_group_member(&self) -> bool {
        self.group.is_some()
    }

    /// The generation this member takes part in: the one it last synced, while it is
    /// Stable in it and knows every owned partition's position; `None` between generations.
    pub fn group_generation(&self) -> Option<Generation> {
        let g = self.group.as_ref()?;
        (g.phase == Phase::Stable && g.awaiting_offsets.is_empty() && self.resetting.is_empty())
            .then_some(g.synced_generation)
    }

    /// The application loop runs now (each tick is a `poll()`). If the previous run was more
    /// than `max.poll.interval.ms` ago (the process stalled), the member broke its promise
    /// to the group: like Kafka's heartbeat thread it leaves — a dynamic member sends
    /// LeaveGroup, a static one only forgets its member id (KIP-345) — and its partitions are
    /// lost, not committed; it then joins again.
    pub(super) fn on_poll(&mut self, now_ms: u64) {
        let g = self.membership();
        let last = std::mem::replace(&mut g.last_poll_ms, now_ms);
        if now_ms.saturating_sub(last) <= g.config.max_poll_interval_ms
            || g.member_id.is_empty()
            || g.phase == Phase::Fenced
        {
            return;
        }
        let dynamic = g.config.group_instance_id.is_none();
        let body = RequestBody::LeaveGroup(g.member_ref());
        if let Some(coordinator) = g.coordinator.filter(|&c| dynamic && self.net.is_ready(c)) {
            let call = Some(InFlight::Group(GroupCall::Leave));
            self.net.send(coordinator, body, call, now_ms);
        }
        self.reset_membership();
    }

    /// Legacy commit-before-process: instead of processing `records` of `tp` now, commit
    /// the position past them and process them when the commit returns. `false` when
    /// nothing is held (the switch is off, or there is nothing to commit).
    pub(super) fn hold_until_committed(
        &mut self,
        tp: &TopicPartition,
        records: &[(u64, CompactString)],
        now_ms: u64,
    ) -> bool {
        let Some(g) = self.group.as_ref() else {
            return false;
        };
        if !g.config.legacy_commit_before_process || g.phase != Phase::Stable {
            return false;
        }
        let only = BTreeSet::from([*tp]);
        if !self.commit_positions(Some(&only), false, now_ms) {
            return false;
        }
        let held = (*tp, records.to_vec());
        self.membership().unprocessed.push(held);
        true
    }

    /// Legacy commit-before-process: the commit of `offsets` returned (or was lost), so
    /// the records held for those partitions are processed now.
    fn process_held(&mut self, offsets: &[(TopicPartition, u64)]) {
        let g = self.membership();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut g.unprocessed)
            .into_iter()
            .partition(|(tp, _)| offsets.iter().any(|(t, _)| t == tp));
        g.unprocessed = waiting;
        for (partition, records) in ready {
            self.record(ConsumerAction::Poll { partition, records });
        }
    }

    fn send_group(&mut self, body: Option<RequestBody>, call: GroupCall, now_ms: u64) {
        let target = match &call {
            GroupCall::FindCoordinator => {
                let candidates = self.metadata.candidates();
                self.net.least_loaded(candidates, now_ms)
            }
            _ => self.membership().coordinator,
        };
        let Some(broker) = target else {
            return;
        };
        if !self.net.is_ready(broker) {
            self.net.connect(broker, now_ms);
            return;
        }
        let body = body.unwrap_or_else(|| RequestBody::FindCoordinator {
            key: self.membership().config.group_id.clone(),
        });
        if call == GroupCall::FindCoordinator {
            // One lookup at a time: the answer or its loss comes before the next.
            self.membership().retry_at_ms = u64::MAX;
        }
        self.net
            .send(broker, body, Some(InFlight::Group(call)), now_ms);
    }

    fn send_join(&mut self, now_ms: u64) {
        let topics = self.config.topics.clone();
        let g = self.membership();
        g.phase = Phase::Joining;
        g.attempt += 1;
        let attempt = g.attempt;
        let subscription = Subscription {
            topics,
            owned: if g.config.assignor.is_cooperative() {
                g.owned.iter().cloned().collect()
            } else {
                Vec::new()
            },
            generation: g.generation,
            group_instance_id: g.config.group_instance_id.clone(),
        };
        let body = RequestBody::JoinGroup(JoinGroupRequest {
            group_id: g.config.group_id.clone(),
            member_id: g.member_id.clone(),
            group_instance_id: g.config.group_instance_id.clone(),
            client_id: g.config.client_id.clone(),
            session_timeout_ms: g.config.session_timeout_ms,
            rebalance_timeout_ms: g.config.max_poll_interval_ms,
            protocol_type: "consumer".into(),
            protocols: vec![(g.config.assignor.name().into(), subscription.encode())],
        });
        self.send_group(Some(body), GroupCall::Join(attempt), now_ms);
    }

    /// Commits the positions of the owned partitions (of `only`, if given); `auto` for
    /// the periodic auto-commit. Whether a commit was sent.
    fn commit_positions(
        &mut self,
        only: Option<&BTreeSet<TopicPartition>>,
        auto: bool,
        now_ms: u64,
    ) -> bool {
        let g = self.group.as_ref().expect("subscribe mode");
        if g.config.offsets_by_transaction {
            return false;
        }
        let offsets: Vec<(TopicPartition, u64, Option<LeaderEpoch>)> = self
            .assignment
            .iter()
            .filter(|(tp, _)| g.owned.contains(*tp) && only.is_none_or(|o| o.contains(*tp)))
            // Kafka's auto-commit sends every consumed position, changed or not; other
            // commits only what moved.
            .filter(|(tp, p)| auto || g.committed.get(*tp) != Some(&p.position.0))
            .map(|(tp, p)| (*tp, p.position.0, p.position_epoch))
            .collect();
        // An auto-commit waits for the one in flight; a commit before revoking goes at
        // once (the coordinator takes them in order). Without a connection to the
        // coordinator nothing goes (the partitions stay dirty; a later commit carries them).
        let ready = g.coordinator.is_some_and(|c| self.net.is_ready(c));
        if offsets.is_empty() || g.commit_in_flight && auto || !ready {
            return false;
        }
        let call = GroupCall::Commit {
            generation: g.generation,
            member_id: g.member_id.clone(),
            offsets: offsets.iter().map(|(tp, o, _)| (*tp, *o)).collect(),
            sent_ms: now_ms,
        };
        let body = RequestBody::OffsetCommit(OffsetCommitRequest {
            member: g.member_ref(),
            offsets: offsets
                .into_iter()
                .map(|(tp, o, leader_epoch)| {
                    let committed = CommittedOffset {
                        offset: Offset(o),
                        leader_epoch,
                    };
                    (tp, committed)
                })
                .collect(),
        });
        self.membership().commit_in_flight = true;
        self.send_group(Some(body), call, now_ms);
        true
    }

    /// Gives up every owned partition (eager revocation, or partitions lost).
    fn revoke_all(&mut self) {
        let owned = std::mem::take(&mut self.membership().owned);
        self.membership().awaiting_offsets.clear();
        if owned.is_empty() {
            return;
        }
        for tp in owned {
            self.forget(&tp);
        }
        self.record_group_assignment();
    }

    pub(super) fn record_group_assignment(&mut self) {
        let g = self.group.as_ref().expect("subscribe mode");
        let partitions = self
            .assignment
            .iter()
            .filter(|(tp, _)| g.owned.contains(*tp))
            .map(|(tp, p)| (*tp, p.position.0))
            .collect();
        // Owned partitions without a position: their committed offset being fetched, or
        // their reset asking ListOffsets.
        let mut awaiting: Vec<TopicPartition> = g.awaiting_offsets.iter().cloned().collect();
        awaiting.extend(self.resetting.keys().filter(|tp| g.owned.contains(*tp)));
        awaiting.sort();
        let member = g.owner_tag();
        self.record(ConsumerAction::GroupAssign {
            member,
            partitions,
            awaiting,
        });
    }

    /// As the leader of a Stable generation, rebalance if the partitions of the group's
    /// topics in the metadata are not those it assigned (Kafka: "cached metadata has
    /// changed"). Checked on every metadata answer and every turn while Stable (an answer
    /// may come while the member still syncs).
    pub(super) fn on_metadata_updated(&mut self) {
        let g = self.group.as_ref().expect("subscribe mode");
        let Some(snapshot) = &g.assignment_snapshot else {
            return;
        };
        if g.phase != Phase::Stable {
            return;
        }
        let changed = snapshot
            .iter()
            .any(|(t, n)| self.metadata.partition_count(t).unwrap_or(0) != *n);
        if changed {
            let g = self.membership();
            g.assignment_snapshot = None;
            g.phase = Phase::Unjoined;
        }
    }

    /// The member is out of the group (unknown, old generation): its partitions are lost,
    /// and it joins again as new.
    fn reset_membership(&mut self) {
        self.revoke_all();
        let g = self.membership();
        g.member_id.clear();
        g.generation = Generation::NONE;
        g.phase = Phase::Unjoined;
        g.assignment_snapshot = None;
    }

    fn coordinator_lost(&mut self, now_ms: u64) {
        let backoff = self.config.retry_backoff_ms;
        let g = self.membership();
        g.coordinator = None;
        g.retry_at_ms = now_ms.saturating_add(backoff);
        if matches!(g.phase, Phase::Joining | Phase::Syncing) {
            g.phase = Phase::Unjoined;
        }
    }

    /// A group request's answer.
    pub(super) fn on_group_response(&mut self, call: GroupCall, body: ResponseBody, now_ms: u64) {
        let backoff = self.config.retry_backoff_ms;
        match (call, body) {
            (GroupCall::FindCoordinator, ResponseBody::FindCoordinator { result }) => {
                let g = self.membership();
                match result {
                    Ok(coordinator) => {
                        g.coordinator = Some(coordinator);
                        g.retry_at_ms = 0;
                        g.last_heard_ms = now_ms;
                    }
                    Err(_) => g.retry_at_ms = now_ms.saturating_add(backoff),
                }
            }
            // An answer to an abandoned join attempt says nothing about this one.
            (GroupCall::Join(attempt) | GroupCall::Sync(attempt), _)
                if attempt != self.membership().attempt => {}
            (GroupCall::Join(_), ResponseBody::JoinGroup { result, member_id }) => {
                self.on_joined(result, member_id, now_ms)
            }
            (GroupCall::Sync(_), ResponseBody::SyncGroup { result }) => match result {
                Ok(bytes) => self.on_synced(&bytes, now_ms),
                Err(error) => self.on_group_error(error, now_ms),
            },
            (GroupCall::Heartbeat, ResponseBody::Heartbeat { error }) => {
                let g = self.membership();
                g.heartbeat_in_flight = false;
                match error {
                    None => g.last_heard_ms = now_ms,
                    Some(error) => self.on_group_error(error, now_ms),
                }
            }
            (
                GroupCall::Commit {
                    generation,
                    member_id,
                    offsets,
                    sent_ms,
                },
                ResponseBody::OffsetCommit { partitions },
            ) => {
                let error = partitions.iter().find_map(|(_, e)| *e);
                let backoff = self.config.retry_backoff_ms;
                let g = self.membership();
                g.commit_in_flight = false;
                if error.is_some() {
                    g.commit_retry_at_ms = now_ms.saturating_add(backoff);
                }
                if error.is_none() {
                    for (tp, offset) in &offsets {
                        g.committed.insert(*tp, *offset);
                    }
                }
                let member = GroupMember {
                    group: g.config.group_id.clone(),
                    member_id: member_id.clone(),
                    generation,
                };
                self.process_held(&offsets);
                self.record(ConsumerAction::Commit {
                    member,
                    offsets,
                    sent_ms,
                    error,
                });
                let g = self.membership();
                // Only a commit of the current membership says something about it.
                if let Some(error) = error {
                    if g.member_id == member_id && g.generation == generation {
                        self.on_group_error(error, now_ms);
                    }
                }
            }
            (GroupCall::Leave, ResponseBody::LeaveGroup { .. }) => {}
            (GroupCall::FetchOffsets, ResponseBody::OffsetFetch { result }) => {
                self.membership().fetching_offsets = false;
                match result {
                    Ok(found) => self.on_offsets(found),
                    Err(KafkaError::UnstableOffsetCommit) => {
                        let backoff = self.config.retry_backoff_ms;
                        self.membership().offsets_retry_at_ms = now_ms.saturating_add(backoff);
                    }
                    Err(error) => self.on_group_error(error, now_ms),
                }
            }
            // An answer of the wrong kind: a broker bug; like a lost request.
            (call, _) => self.on_group_lost(call, now_ms),
        }
    }

    fn on_joined(
        &mut self,
        result: Result<crate::broker::proto::JoinGroupOk, KafkaError>,
        member_id: String,
        now_ms: u64,
    ) {
        let ok = match result {
            Ok(ok) => ok,
            Err(KafkaError::MemberIdRequired) => {
                let g = self.membership();
                g.member_id = member_id;
                g.phase = Phase::Unjoined;
                return;
            }
            Err(error) => {
                if self.membership().phase == Phase::Joining {
                    self.membership().phase = Phase::Unjoined;
                }
                self.on_group_error(error, now_ms);
                return;
            }
        };
        let g = self.membership();
        if g.phase != Phase::Joining {
            return;
        }
        g.member_id = ok.member_id.clone();
        g.generation = ok.generation_id;
        g.last_heard_ms = now_ms;
        g.phase = Phase::Syncing;
        let assignor = Assignor::named(&ok.protocol_name).unwrap_or(g.config.assignor);
        let mut assignments = Vec::new();
        g.assignment_snapshot = None;
        if ok.leader == ok.member_id && !ok.members.is_empty() {
            let members: BTreeMap<String, Subscription> = ok
                .members
                .iter()
                .map(|m| {
                    let mut subscription = Subscription::decode(&m.metadata).unwrap_or_default();
                    subscription.group_instance_id = m.group_instance_id.clone();
                    (m.member_id.clone(), subscription)
                })
                .collect();
            let topics: BTreeSet<&String> = members.values().flat_map(|s| &s.topics).collect();
            // The leader learns every member's topics (Kafka's group subscription), and
            // assigns what it knows of them now; the snapshot asks again when that changes.
            self.metadata.add_topics(topics.iter().copied());
            let snapshot: BTreeMap<String, u32> = topics
                .iter()
                .map(|t| ((*t).clone(), self.metadata.partition_count(*t).unwrap_or(0)))
                .collect();
            let partitions: BTreeMap<String, u32> = snapshot
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(t, n)| (t.clone(), *n))
                .collect();
            self.membership().assignment_snapshot = Some(snapshot);
            let legacy_no_holdback = self.membership().config.legacy_cooperative_no_holdback;
            for (member, list) in assign(assignor, &partitions, &members, legacy_no_holdback) {
                assignments.push((member, Assignment { partitions: list }.encode()));
            }
        }
        let g = self.membership();
        let body = RequestBody::SyncGroup(SyncGroupRequest {
            member: g.member_ref(),
            assignments,
        });
        let attempt = self.membership().attempt;
        self.send_group(Some(body), GroupCall::Sync(attempt), now_ms);
    }

    fn on_synced(&mut self, bytes: &Bytes, now_ms: u64) {
        let g = self.membership();
        if g.phase != Phase::Syncing {
            return;
        }
        let assigned: BTreeSet<TopicPartition> = Assignment::decode(bytes)
            .unwrap_or_default()
            .partitions
            .into_iter()
            .collect();
        g.phase = Phase::Stable;
        g.synced_generation = g.generation;
        g.last_heard_ms = now_ms;
        g.last_heartbeat_sent_ms = now_ms;
        let revoked: BTreeSet<TopicPartition> = g.owned.difference(&assigned).cloned().collect();
        let added: Vec<TopicPartition> = assigned.difference(&g.owned).cloned().collect();
        if !revoked.is_empty() {
            crate::coverage::hit(crate::coverage::Mark::CooperativeRevocation);
            // Cooperative: commit what moves, give it up, and rejoin to hand it over.
            self.commit_positions(Some(&revoked), false, now_ms);
            let g = self.membership();
            for tp in &revoked {
                g.owned.remove(tp);
                g.awaiting_offsets.remove(tp);
            }
            for tp in &revoked {
                self.forget(tp);
            }
            self.membership().phase = Phase::Unjoined;
        }
        let g = self.membership();
        for tp in added {
            g.owned.insert(tp);
            g.awaiting_offsets.insert(tp);
        }
        self.record_group_assignment();
    }

    fn on_offsets(&mut self, found: Vec<(TopicPartition, Option<CommittedOffset>)>) {
        let mut started = false;
        let reset = self.config.auto_offset_reset;
        for (tp, committed) in found {
            let g = self.membership();
            if !g.awaiting_offsets.remove(&tp) || !g.owned.contains(&tp) {
                continue;
            }
            // Nothing committed: auto.offset.reset (earliest is offset 0; latest asks
            // ListOffsets, the partition awaiting its position meanwhile).
            if committed.is_none() && reset == OffsetSpec::Latest {
                self.resetting.insert(tp, Resetting::to(OffsetSpec::Latest));
                started = true;
                continue;
            }
            let position = committed.as_ref().map_or(Offset(0), |c| c.offset);
            let position_epoch = committed.and_then(|c| c.leader_epoch);
            g.committed.insert(tp, position.0);
            if let Some(epoch) = position_epoch {
                // KIP-320: the leader of that record's epoch or a newer one, never an
                // older (deposed) one, serves the position.
                self.metadata.see_epoch(&tp, epoch);
            }
            self.assignment.insert(
                tp,
                PartitionFetch {
                    position,
                    position_epoch,
                    log_start_offset: None,
                    fetching: false,
                    retry_at_ms: 0,
                },
            );
            started = true;
        }
        if started {
            self.record_group_assignment();
        }
    }

    /// An error from the coordinator.
    fn on_group_error(&mut self, error: KafkaError, now_ms: u64) {
        match error {
            KafkaError::UnknownMemberId | KafkaError::IllegalGeneration => self.reset_membership(),
            KafkaError::RebalanceInProgress => {
                let g = self.membership();
                if g.phase != Phase::Joining {
                    g.phase = Phase::Unjoined;
                }
            }
            KafkaError::FencedInstanceId => {
                self.revoke_all();
                self.membership().phase = Phase::Fenced;
            }
            KafkaError::CoordinatorLoadInProgress => {
                let backoff = self.config.retry_backoff_ms;
                let g = self.membership();
                g.retry_at_ms = now_ms.saturating_add(backoff);
                if matches!(g.phase, Phase::Joining | Phase::Syncing) {
                    g.phase = Phase::Unjoined;
                }
            }
            _ => self.coordinator_lost(now_ms),
        }
    }

    /// A group request lost with its connection (or timed out).
    pub(super) fn on_group_lost(&mut self, call: GroupCall, now_ms: u64) {
        if let GroupCall::Commit {
            generation,
            member_id,
            offsets,
            sent_ms,
        } = &call
        {
            // Unknown outcome: it may have been stored.
            let member = GroupMember {
                group: self.membership().config.group_id.clone(),
                member_id: member_id.clone(),
                generation: *generation,
            };
            let offsets = offsets.clone();
            self.process_held(&offsets);
            self.record(ConsumerAction::Commit {
                member,
                offsets,
                sent_ms: *sent_ms,
                error: Some(KafkaError::NetworkException),
            });
        }
        let backoff = self.config.retry_backoff_ms;
        let g = self.membership();
        match call {
            GroupCall::FindCoordinator => g.retry_at_ms = 0,
            GroupCall::Join(attempt) | GroupCall::Sync(attempt) if attempt != g.attempt => {}
            GroupCall::Join(_) | GroupCall::Sync(_) => {
                g.phase = Phase::Unjoined;
                g.coordinator = None;
            }
            GroupCall::Heartbeat => g.heartbeat_in_flight = false,
            GroupCall::Commit { .. } => {
                g.commit_in_flight = false;
                g.commit_retry_at_ms = now_ms.saturating_add(backoff);
            }
            GroupCall::FetchOffsets => g.fetching_offsets = false,
            GroupCall::Leave => {}
        }
    }
}
