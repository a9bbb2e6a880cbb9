//! The coordinator core driven by hand: requests in, answers and appends out.

use super::*;
use crate::log::Offset;

const G: &str = "billing";
const SESSION: u64 = 10_000;
const REBALANCE: u64 = 30_000;
const DELAY: u64 = 3_000;

fn config(unfenced: bool) -> CoordinatorConfig {
    CoordinatorConfig {
        offsets_partitions: 1,
        initial_rebalance_delay_ms: DELAY,
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        legacy_unfenced_offset_commits: unfenced,
        legacy_unfenced_txn_offset_commits: false,
    }
}

/// A coordinator of offsets partition 0, loaded and empty; appends are done by hand.
struct Coord {
    c: GroupCoordinator,
    answers: BTreeMap<u64, ResponseBody>,
    appends: Vec<(u64, Vec<GroupRecord>)>,
    /// The producer of each transactional append.
    transactions: BTreeMap<u64, ProducerIdentity>,
    events: Vec<CoordinatorEvent>,
    next_token: u64,
    now: u64,
    /// The log end of the offsets partition: the next append's base offset.
    log_end: u64,
}

impl Coord {
    fn new(unfenced: bool) -> Coord {
        Coord::with_config(config(unfenced))
    }

    fn with_config(config: CoordinatorConfig) -> Coord {
        let mut c = GroupCoordinator::new(config);
        c.on_become_leader(0, LeaderEpoch(1));
        c.on_loaded(0, LeaderEpoch(1), Vec::new(), 0);
        let mut coord = Coord {
            c,
            answers: BTreeMap::new(),
            appends: Vec::new(),
            transactions: BTreeMap::new(),
            events: Vec::new(),
            next_token: 1,
            now: 0,
            log_end: 0,
        };
        coord.collect();
        coord
    }

    fn collect(&mut self) {
        for action in self.c.take_actions() {
            match action {
                CoordinatorAction::Respond { token, body } => {
                    self.answers.insert(token, body);
                }
                CoordinatorAction::Append {
                    id,
                    records,
                    transaction,
                    ..
                } => {
                    if let Some(producer) = transaction {
                        self.transactions.insert(id, producer);
                    }
                    self.appends.push((id, records));
                }
                CoordinatorAction::Announce(event) => self.events.push(event),
            }
        }
    }

    fn send(&mut self, body: RequestBody) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.c.on_request(token, body, self.now);
        self.collect();
        token
    }

    fn answer(&mut self, token: u64) -> Option<ResponseBody> {
        self.answers.remove(&token)
    }

    fn at(&mut self, now: u64) {
        self.now = now;
        self.c.tick(now);
        self.collect();
    }

    /// Completes every append so far with `result` (stored one after the other at the log
    /// end).
    fn finish_appends(&mut self, result: Result<(), KafkaError>) {
        for (id, records) in std::mem::take(&mut self.appends) {
            let result = result.map(|()| self.stored(records.len()));
            self.c.on_append_done(id, result, self.now);
        }
        self.collect();
    }

    /// The base offset of a batch of `records` records appended at the log end.
    fn stored(&mut self, records: usize) -> Offset {
        let base = Offset(self.log_end);
        self.log_end += records as u64;
        base
    }

    fn join(&mut self, member_id: &str, instance: Option<&str>) -> u64 {
        self.send(RequestBody::JoinGroup(JoinGroupRequest {
            group_id: G.into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(String::from),
            client_id: "consumer-1".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes(b"orders".to_vec()))],
        }))
    }

    /// A new dynamic member's two joins; returns its id and the token of the second.
    fn new_member(&mut self) -> (String, u64) {
        let first = self.join("", None);
        let Some(ResponseBody::JoinGroup {
            result: Err(KafkaError::MemberIdRequired),
            member_id,
        }) = self.answer(first)
        else {
            panic!("a first join is told its member id");
        };
        let second = self.join(&member_id, None);
        (member_id, second)
    }

    fn sync(&mut self, member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> u64 {
        self.send(RequestBody::SyncGroup(SyncGroupRequest {
            member: member(member_id, generation),
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes(a.as_bytes().to_vec())))
                .collect(),
        }))
    }

    fn heartbeat(&mut self, member_id: &str, generation: i32) -> Option<KafkaError> {
        let token = self.send(RequestBody::Heartbeat(member(member_id, generation)));
        match self.answer(token) {
            Some(ResponseBody::Heartbeat { error }) => error,
            other => panic!("{other:?}"),
        }
    }

    fn commit(&mut self, member_id: &str, generation: i32, offset: u64) -> u64 {
        self.send(RequestBody::OffsetCommit(OffsetCommitRequest {
            member: member(member_id, generation),
            offsets: vec![(tp(), committed(offset))],
        }))
    }

    fn fetch_offset(&mut self) -> Result<Option<u64>, KafkaError> {
        let token = self.send(RequestBody::OffsetFetch {
            group_id: G.into(),
            partitions: vec![tp()],
            require_stable: false,
        });
        match self.answer(token) {
            Some(ResponseBody::OffsetFetch { result }) => {
                result.map(|found| found[0].1.as_ref().map(|c| c.offset.0))
            }
            other => panic!("{other:?}"),
        }
    }

    fn state(&self) -> (GroupState, Generation) {
        self.c.group_state(G).expect("coordinated here")
    }
}

fn member(member_id: &str, generation: i32) -> MemberRef {
    MemberRef {
        group_id: G.into(),
        generation_id: Generation(generation),
        member_id: member_id.into(),
        group_instance_id: None,
    }
}

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn committed(offset: u64) -> CommittedOffset {
    CommittedOffset {
        offset: Offset(offset),
        leader_epoch: None,
    }
}

fn joined(answer: Option<ResponseBody>) -> JoinGroupOk {
    match answer {
        Some(ResponseBody::JoinGroup { result: Ok(ok), .. }) => ok,
        other => panic!("expected a join: {other:?}"),
    }
}

fn commit_error(answer: Option<ResponseBody>) -> Option<KafkaError> {
    match answer {
        Some(ResponseBody::OffsetCommit { partitions }) => partitions[0].1,
        other => panic!("expected a commit answer: {other:?}"),
    }
}

/// One member through join, sync and the stored assignment: generation 1, Stable.
fn stable_with_one() -> (Coord, String) {
    let mut c = Coord::new(false);
    let (a, join) = c.new_member();
    assert_eq!(c.answer(join), None, "the initial delay holds the join");
    c.at(DELAY);
    let ok = joined(c.answer(join));
    assert_eq!(
        (ok.generation_id, ok.leader.as_str()),
        (Generation(1), a.as_str())
    );
    assert_eq!(ok.members.len(), 1, "the leader hears every subscription");
    let sync = c.sync(&a, 1, &[(&a, "orders/0")]);
    assert_eq!(c.answer(sync), None, "not before the assignment is stored");
    assert_eq!(c.state(), (GroupState::CompletingRebalance, Generation(1)));
    c.finish_appends(Ok(()));
    assert_eq!(
        c.answer(sync),
        Some(ResponseBody::SyncGroup {
            result: Ok(Bytes(b"orders/0".to_vec()))
        })
    );
    assert_eq!(c.state(), (GroupState::Stable, Generation(1)));
    (c, a)
}

#[test]
fn groups_map_to_offsets_partitions_by_javas_string_hash() {
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("billing"), -109_829_509);
    assert_eq!(partition_for("billing", 50), 9);
    assert_eq!(partition_for("a", 50), 47);
    // Its hash is i32::MIN, whose abs Kafka takes as 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
}

#[test]
fn group_records_round_trip_and_tombstones_have_no_value() {
    let offset = GroupRecord::Offset {
        group: G.into(),
        partition: tp(),
        value: Some(committed(42)),
    };
    let (key, value) = offset.encode();
    assert_eq!(GroupRecord::decode(&key, value.as_deref()), Some(offset));
    let gone = GroupRecord::Group {
        group: G.into(),
        value: None,
    };
    let (key, value) = gone.encode();
    assert_eq!(value, None);
    assert_eq!(GroupRecord::decode(&key, None), Some(gone));
    assert_eq!(GroupRecord::decode(b"not json", None), None);
}

#[test]
fn a_member_joins_syncs_and_the_group_is_stable_once_its_assignment_is_stored() {
    let (mut c, a) = stable_with_one();
    assert_eq!(c.heartbeat(&a, 1), None);
    assert_eq!(c.heartbeat(&a, 0), Some(KafkaError::IllegalGeneration));
    assert_eq!(c.heartbeat("nobody", 1), Some(KafkaError::UnknownMemberId));
    let generations: Vec<Generation> = c
        .events
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::GroupGeneration { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect();
    assert_eq!(generations, vec![Generation(1)]);
}

#[test]
fn a_second_member_rebalances_the_group_and_both_join_the_next_generation() {
    let (mut c, a) = stable_with_one();
    let (b, join_b) = c.new_member();
    assert_eq!(c.state(), (GroupState::PreparingRebalance, Generation(1)));
    assert_eq!(c.answer(join_b), None, "waits for the others to rejoin");
    assert_eq!(c.heartbeat(&a, 1), Some(KafkaError::RebalanceInProgress));
    // A commit of the current generation is still taken while preparing (eager
    // consumers commit before they rejoin).
    let commit = c.commit(&a, 1, 7);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(commit)), None);
    let join_a = c.join(&a, None);
    let ok_a = joined(c.answer(join_a));
    let ok_b = joined(c.answer(join_b));
    assert_eq!(
        (ok_a.generation_id, ok_b.generation_id),
        (Generation(2), Generation(2))
    );
    assert_eq!(ok_a.leader, a, "the leader stays while it is a member");
    assert_eq!(ok_a.members.len(), 2);
    assert!(
        ok_b.members.is_empty(),
        "only the leader hears the subscriptions"
    );
    // A follower's sync waits for the leader's.
    let sync_b = c.sync(&b, 2, &[]);
    assert_eq!(c.commit(&b, 2, 9), c.next_token - 1);
    assert_eq!(
        commit_error(c.answer(c.next_token - 1)),
        Some(KafkaError::RebalanceInProgress)
    );
    let sync_a = c.sync(&a, 2, &[(&a, "orders/0"), (&b, "orders/1")]);
    c.finish_appends(Ok(()));
    assert_eq!(
        c.answer(sync_b),
        Some(ResponseBody::SyncGroup {
            result: Ok(Bytes(b"orders/1".to_vec()))
        })
    );
    assert!(matches!(
        c.answer(sync_a),
        Some(ResponseBody::SyncGroup { result: Ok(_) })
    ));
    assert_eq!(c.state(), (GroupState::Stable, Generation(2)));
}

#[test]
fn a_member_whose_session_passes_is_removed_and_its_commits_are_fenced() {
    let (mut c, a) = stable_with_one();
    let (b, join_b) = c.new_member();
    let join_a = c.join(&a, None);
    joined(c.answer(join_a));
    joined(c.answer(join_b));
    let sync_a = c.sync(&a, 2, &[(&a, "orders/0"), (&b, "orders/1")]);
    let sync_b = c.sync(&b, 2, &[]);
    c.finish_appends(Ok(()));
    assert!(c.answer(sync_a).is_some() && c.answer(sync_b).is_some());
    // b heartbeats, a goes silent (paused past its session).
    for t in (1..=6).map(|i| DELAY + i * 2_000) {
        c.at(t);
        if c.state().0 == GroupState::Stable {
            assert_eq!(c.heartbeat(&b, 2), None);
        }
    }
    assert!(c
        .events
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::MemberRemoved { member, .. } if *member == a)));
    assert_eq!(c.state().0, GroupState::PreparingRebalance);
    // b rejoins alone: generation 3 without a.
    let join_b = c.join(&b, None);
    let ok = joined(c.answer(join_b));
    assert_eq!(
        (ok.generation_id, ok.leader.as_str()),
        (Generation(3), b.as_str())
    );
    let sync_b = c.sync(&b, 3, &[(&b, "orders/0,orders/1")]);
    c.finish_appends(Ok(()));
    assert!(c.answer(sync_b).is_some());
    let good = c.commit(&b, 3, 20);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(good)), None);
    // a wakes up and commits what it had: refused, and the committed offset stays.
    let stale = c.commit(&a, 2, 10);
    assert_eq!(
        commit_error(c.answer(stale)),
        Some(KafkaError::UnknownMemberId)
    );
    let old_generation = c.commit(&b, 2, 10);
    assert_eq!(
        commit_error(c.answer(old_generation)),
        Some(KafkaError::IllegalGeneration)
    );
    assert!(c.appends.is_empty(), "a refused commit is not written");
    assert_eq!(c.fetch_offset(), Ok(Some(20)));
}

#[test]
fn legacy_unfenced_offset_commits_take_a_removed_members_commit() {
    let mut c = Coord::new(true);
    let (a, join) = c.new_member();
    c.at(DELAY);
    joined(c.answer(join));
    let sync = c.sync(&a, 1, &[(&a, "orders/0")]);
    c.finish_appends(Ok(()));
    c.answer(sync);
    let good = c.commit(&a, 1, 20);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(good)), None);
    let stale = c.commit("gone-long-ago", 0, 5);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(stale)), None, "the legacy bug");
    assert_eq!(
        c.fetch_offset(),
        Ok(Some(5)),
        "the committed offset went back"
    );
}

#[test]
fn a_commit_counts_only_once_it_is_replicated() {
    let (mut c, a) = stable_with_one();
    let commit = c.commit(&a, 1, 12);
    assert_eq!(c.answer(commit), None);
    assert_eq!(
        c.fetch_offset(),
        Ok(None),
        "not committed before the HW passes it"
    );
    c.finish_appends(Err(KafkaError::NotEnoughReplicas));
    assert_eq!(
        commit_error(c.answer(commit)),
        Some(KafkaError::CoordinatorNotAvailable)
    );
    assert_eq!(c.fetch_offset(), Ok(None));
    let commit = c.commit(&a, 1, 12);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(commit)), None);
    assert_eq!(c.fetch_offset(), Ok(Some(12)));
    let offsets: Vec<&Vec<(TopicPartition, u64)>> = c
        .events
        .iter()
        .filter_map(|e| match e {
            CoordinatorEvent::OffsetCommit { offsets, .. } => Some(offsets),
            _ => None,
        })
        .collect();
    assert_eq!(offsets.len(), 1);
    assert_eq!(offsets[0][0].1, 12);
}

#[test]
fn the_join_phase_ends_at_the_rebalance_timeout_without_those_who_did_not_rejoin() {
    let (mut c, a) = stable_with_one();
    let (b, join_b) = c.new_member();
    // a never rejoins: it keeps heartbeating (which keeps its session), and is told to
    // rejoin each time.
    let start = c.now;
    for t in (1..REBALANCE / 2_000).map(|i| start + i * 2_000) {
        c.at(t);
        assert_eq!(c.heartbeat(&a, 1), Some(KafkaError::RebalanceInProgress));
    }
    c.at(start + REBALANCE - 1);
    assert_eq!(c.answer(join_b), None);
    c.at(start + REBALANCE);
    let ok = joined(c.answer(join_b));
    assert_eq!(
        (ok.generation_id, ok.leader.as_str()),
        (Generation(2), b.as_str())
    );
    assert_eq!(c.heartbeat(&a, 1), Some(KafkaError::UnknownMemberId));
}

/// The group record `stable_with_one` stores: member `a` owns `orders/0` in generation 1.
fn stable_group_record(a: &str) -> GroupRecord {
    GroupRecord::Group {
        group: G.into(),
        value: Some(GroupValue {
            protocol_type: Some("consumer".into()),
            generation: Generation(1),
            protocol: Some("range".into()),
            leader: Some(a.to_string()),
            members: vec![MemberValue {
                member_id: a.to_string(),
                group_instance_id: None,
                client_id: "consumer-1".into(),
                session_timeout_ms: SESSION,
                rebalance_timeout_ms: REBALANCE,
                subscription: Bytes(b"orders".to_vec()),
                assignment: Bytes(b"orders/0".to_vec()),
            }],
        }),
    }
}

#[test]
fn groups_load_from_the_log_and_unload_on_resignation() {
    let (mut c, a) = stable_with_one();
    let commit = c.commit(&a, 1, 33);
    // The records as the log would hold them.
    let mut log: Vec<GroupRecord> = Vec::new();
    let pending = std::mem::take(&mut c.appends);
    for (_, records) in &pending {
        log.extend(records.iter().cloned());
    }
    // A new member's join waits for a to rejoin when the coordinator moves away.
    let (_, join) = c.new_member();
    c.c.on_resign(0);
    c.collect();
    assert!(matches!(
        c.answer(join),
        Some(ResponseBody::JoinGroup {
            result: Err(KafkaError::NotCoordinator),
            ..
        })
    ));
    for (id, records) in pending {
        let base = c.stored(records.len());
        c.c.on_append_done(id, Ok(base), c.now);
    }
    c.collect();
    assert_eq!(
        commit_error(c.answer(commit)),
        Some(KafkaError::NotCoordinator),
        "unloaded before the HW passed it: the member must retry elsewhere"
    );
    assert_eq!(c.fetch_offset(), Err(KafkaError::NotCoordinator));
    // Leader again in a later epoch: loading first, then the groups are back.
    c.c.on_become_leader(0, LeaderEpoch(3));
    assert_eq!(c.c.loading(), vec![(0, LeaderEpoch(3))]);
    assert_eq!(c.fetch_offset(), Err(KafkaError::CoordinatorLoadInProgress));
    // The assignment record was appended when the group went Stable.
    let assignment = stable_group_record(&a);
    let mut records = vec![assignment];
    records.extend(log);
    c.c.on_loaded(0, LeaderEpoch(3), plain_batches(records), c.now);
    c.collect();
    assert_eq!(c.state(), (GroupState::Stable, Generation(1)));
    assert_eq!(c.fetch_offset(), Ok(Some(33)));
    assert_eq!(
        c.heartbeat(&a, 1),
        None,
        "members carry on with the new coordinator"
    );
    // New member ids name the new leader epoch.
    let first = c.join("", None);
    match c.answer(first) {
        Some(ResponseBody::JoinGroup { member_id, .. }) => {
            assert!(member_id.starts_with("consumer-1-0.3."), "{member_id}")
        }
        other => panic!("{other:?}"),
    }
}

/// One leader epoch loaded twice — resigned with a lost session, named leader again in the
/// same epoch by a controller that found this broker still leading — hands out no member id
/// twice; nor does a restarted broker (another incarnation) named leader in that epoch.
#[test]
fn member_ids_stay_unique_when_one_leader_epoch_is_loaded_again() {
    let (mut c, a) = stable_with_one();
    c.c.resign_all();
    c.collect();
    assert!(!c.c.owns(0));
    c.c.on_become_leader(0, LeaderEpoch(1));
    let assignment = stable_group_record(&a);
    c.c.on_loaded(
        0,
        LeaderEpoch(1),
        plain_batches(vec![assignment.clone()]),
        c.now,
    );
    c.collect();
    let (b, _) = c.new_member();
    assert_ne!(b, a, "a new member's id is not the loaded member's");
    assert!(b.starts_with("consumer-1-0.1."), "{b}");

    let mut restarted = GroupCoordinator::new(config(false)).with_incarnation(2);
    restarted.on_become_leader(0, LeaderEpoch(1));
    restarted.on_loaded(0, LeaderEpoch(1), plain_batches(vec![assignment]), 0);
    restarted.on_request(
        1,
        RequestBody::JoinGroup(JoinGroupRequest {
            group_id: G.into(),
            member_id: String::new(),
            group_instance_id: None,
            client_id: "consumer-1".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes(b"orders".to_vec()))],
        }),
        0,
    );
    let issued: Vec<String> = restarted
        .take_actions()
        .into_iter()
        .filter_map(|action| match action {
            CoordinatorAction::Respond {
                body: ResponseBody::JoinGroup { member_id, .. },
                ..
            } => Some(member_id),
            _ => None,
        })
        .collect();
    assert_eq!(issued.len(), 1);
    assert!(
        issued[0] != a && issued[0] != b,
        "another life's ids differ: {issued:?} vs {a}, {b}"
    );
}

/// A group whose one static member (`instance-a`) owns `orders/0`, Stable in generation 1;
/// returns the member's id.
fn stable_static_member(c: &mut Coord) -> String {
    let first = c.join("", Some("instance-a"));
    c.at(DELAY);
    let id = joined(c.answer(first)).member_id;
    let sync = c.sync(&id, 1, &[(&id, "orders/0")]);
    c.finish_appends(Ok(()));
    c.answer(sync);
    assert_eq!(c.state(), (GroupState::Stable, Generation(1)));
    id
}

#[test]
fn a_static_member_back_under_a_new_id_keeps_its_assignment_and_fences_the_old_id() {
    let mut c = Coord::new(false);
    let first = c.join("", Some("instance-a"));
    c.at(DELAY);
    let ok = joined(c.answer(first));
    let old = ok.member_id.clone();
    let sync = c.sync(&old, 1, &[(&old, "orders/0")]);
    c.finish_appends(Ok(()));
    c.answer(sync);
    assert_eq!(c.state(), (GroupState::Stable, Generation(1)));
    // It restarts and joins without its member id: no rebalance. The answer waits for the
    // group to be stored with the new id.
    let again = c.join("", Some("instance-a"));
    assert!(c.answer(again).is_none(), "not before the group is stored");
    c.finish_appends(Ok(()));
    let ok = joined(c.answer(again));
    assert_ne!(ok.member_id, old);
    assert_eq!(ok.generation_id, Generation(1));
    assert_eq!(c.state(), (GroupState::Stable, Generation(1)));
    let sync = c.sync(&ok.member_id, 1, &[]);
    assert_eq!(
        c.answer(sync),
        Some(ResponseBody::SyncGroup {
            result: Ok(Bytes(b"orders/0".to_vec()))
        })
    );
    let stale = RequestBody::Heartbeat(MemberRef {
        group_instance_id: Some("instance-a".into()),
        ..member(&old, 1)
    });
    let token = c.send(stale);
    assert_eq!(
        c.answer(token),
        Some(ResponseBody::Heartbeat {
            error: Some(KafkaError::FencedInstanceId)
        })
    );
}

/// A static member back with new subscription metadata under the same protocol is stored,
/// not rebalanced, as Kafka does: a rebalance would leave its new id in memory only until
/// the next SyncGroup, and a coordinator failover meanwhile fences the member for good.
#[test]
fn a_static_rejoin_with_new_metadata_under_the_same_protocol_is_stored_without_a_rebalance() {
    let mut c = Coord::new(false);
    let old = stable_static_member(&mut c);
    let again = c.send(RequestBody::JoinGroup(JoinGroupRequest {
        group_id: G.into(),
        member_id: String::new(),
        group_instance_id: Some("instance-a".into()),
        client_id: "consumer-1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes(b"orders,payments".to_vec()))],
    }));
    c.finish_appends(Ok(()));
    let ok = joined(c.answer(again));
    assert_ne!(ok.member_id, old);
    assert_eq!(ok.generation_id, Generation(1));
    assert_eq!(
        c.state(),
        (GroupState::Stable, Generation(1)),
        "no rebalance"
    );
}

/// A static member's rejoin that cannot be stored (the coordinator lost its partition) is
/// undone and answered with the error: the old member id stays the instance's, so the
/// real coordinator will not fence the member. (Found by swarm seed 1374: a zombie
/// coordinator handed out an id the new one then fenced for good.)
#[test]
fn a_static_rejoin_that_cannot_be_stored_is_undone() {
    let mut c = Coord::new(false);
    let old = stable_static_member(&mut c);
    let again = c.join("", Some("instance-a"));
    c.finish_appends(Err(KafkaError::NotLeaderOrFollower));
    assert!(matches!(
        c.answer(again),
        Some(ResponseBody::JoinGroup {
            result: Err(KafkaError::NotCoordinator),
            ..
        })
    ));
    assert!(!c
        .events
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::MemberRemoved { member, .. } if *member == old)));
    let heartbeat = RequestBody::Heartbeat(MemberRef {
        group_instance_id: Some("instance-a".into()),
        ..member(&old, 1)
    });
    let token = c.send(heartbeat);
    assert_eq!(
        c.answer(token),
        Some(ResponseBody::Heartbeat { error: None }),
        "the old id is still the instance's"
    );
}

/// KIP-345: a static member removed when its session passed is unknown, not fenced: its
/// join under the old member id is told UNKNOWN_MEMBER_ID, and it joins again as new with
/// its instance id. (Found by swarm seed 151: told FENCED_INSTANCE_ID, both static members
/// of a group stopped taking part for good.)
#[test]
fn a_static_member_removed_by_its_session_is_unknown_not_fenced() {
    let mut c = Coord::new(false);
    let old = stable_static_member(&mut c);
    // Silent past its session: removed, and the instance with it.
    c.at(DELAY + SESSION + 1);
    assert!(c
        .events
        .iter()
        .any(|e| matches!(e, CoordinatorEvent::MemberRemoved { member, .. } if *member == old)));
    let back = c.join(&old, Some("instance-a"));
    assert!(matches!(
        c.answer(back),
        Some(ResponseBody::JoinGroup {
            result: Err(KafkaError::UnknownMemberId),
            ..
        })
    ));
    let heartbeat = RequestBody::Heartbeat(MemberRef {
        group_instance_id: Some("instance-a".into()),
        ..member(&old, 1)
    });
    let token = c.send(heartbeat);
    assert_eq!(
        c.answer(token),
        Some(ResponseBody::Heartbeat {
            error: Some(KafkaError::UnknownMemberId)
        })
    );
    // As new, with its instance id: it is in the group again.
    let again = c.join("", Some("instance-a"));
    c.at(DELAY + SESSION + 1 + 2 * DELAY);
    let ok = joined(c.answer(again));
    assert_ne!(ok.member_id, old);
}

#[test]
fn a_simple_commit_is_taken_only_while_the_group_has_no_members() {
    let mut c = Coord::new(false);
    let simple = c.commit("", -1, 4);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(simple)), None);
    assert_eq!(c.fetch_offset(), Ok(Some(4)));
    let (_, join) = c.new_member();
    c.at(DELAY);
    joined(c.answer(join));
    let simple = c.commit("", -1, 2);
    assert_eq!(
        commit_error(c.answer(simple)),
        Some(KafkaError::UnknownMemberId)
    );
}

/// `records` as the log would hold them, each in its own ordinary batch.
fn plain_batches(records: Vec<GroupRecord>) -> Vec<OffsetsBatch> {
    records
        .into_iter()
        .enumerate()
        .map(|(n, record)| OffsetsBatch::Records {
            base_offset: Offset(n as u64),
            transaction: None,
            records: vec![record],
        })
        .collect()
}

// --- transactional offset commits (KIP-98, KIP-447) ---

const PRODUCER: ProducerIdentity = ProducerIdentity {
    producer_id: ProducerId(7),
    producer_epoch: 3,
};

impl Coord {
    /// A TxnOffsetCommit of `offset` for `orders/0` in `PRODUCER`'s transaction.
    fn txn_commit(&mut self, member: MemberRef, offset: u64) -> u64 {
        self.send(RequestBody::TxnOffsetCommit(TxnOffsetCommitRequest {
            transactional_id: "tx-1".into(),
            producer: PRODUCER,
            member,
            offsets: vec![(tp(), committed(offset))],
        }))
    }

    fn fetch_stable(&mut self) -> Result<Option<u64>, KafkaError> {
        let token = self.send(RequestBody::OffsetFetch {
            group_id: G.into(),
            partitions: vec![tp()],
            require_stable: true,
        });
        match self.answer(token) {
            Some(ResponseBody::OffsetFetch { result }) => {
                result.map(|found| found[0].1.as_ref().map(|c| c.offset.0))
            }
            other => panic!("{other:?}"),
        }
    }

    /// The transaction's marker reached the HW on offsets partition 0.
    fn complete_txn(&mut self, commit: bool) {
        self.c
            .on_txn_completed(0, PRODUCER.producer_id, commit, self.now);
        self.collect();
    }

    fn txn_events(&self) -> Vec<&CoordinatorEvent> {
        self.events
            .iter()
            .filter(|e| matches!(e, CoordinatorEvent::TxnOffsetCommit { .. }))
            .collect()
    }
}

fn txn_commit_error(answer: Option<ResponseBody>) -> Option<KafkaError> {
    match answer {
        Some(ResponseBody::TxnOffsetCommit { partitions }) => partitions[0].1,
        other => panic!("expected a TxnOffsetCommit answer: {other:?}"),
    }
}

/// KIP-98: a TxnOffsetCommit's offsets are written in a transactional batch of the
/// producer, pending (KIP-447: an OffsetFetch with `require_stable` gets
/// UNSTABLE_OFFSET_COMMIT; without it, the offset committed before) until the COMMIT
/// marker, then committed and announced.
#[test]
fn txn_offsets_are_pending_until_the_commit_marker_then_committed() {
    let (mut c, a) = stable_with_one();
    let plain = c.commit(&a, 1, 5);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(plain)), None);
    let commit = c.txn_commit(member(&a, 1), 9);
    let (id, records) = c.appends.last().cloned().unwrap();
    assert_eq!(
        c.transactions.get(&id),
        Some(&PRODUCER),
        "a transactional batch"
    );
    assert_eq!(
        records,
        vec![GroupRecord::Offset {
            group: G.into(),
            partition: tp(),
            value: Some(committed(9)),
        }]
    );
    assert_eq!(c.answer(commit), None, "answered once replicated");
    assert_eq!(
        c.fetch_stable(),
        Err(KafkaError::UnstableOffsetCommit),
        "pending from the request on, as Kafka's prepareTxnOffsetCommit"
    );
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(commit)), None);
    assert_eq!(c.fetch_offset(), Ok(Some(5)), "not before the marker");
    assert_eq!(c.fetch_stable(), Err(KafkaError::UnstableOffsetCommit));
    assert!(c.txn_events().is_empty());
    // Another group's partition, or another producer's marker, changes nothing.
    c.c.on_txn_completed(0, ProducerId(8), true, c.now);
    c.collect();
    assert_eq!(c.fetch_stable(), Err(KafkaError::UnstableOffsetCommit));
    c.complete_txn(true);
    assert_eq!(c.fetch_stable(), Ok(Some(9)));
    assert_eq!(c.fetch_offset(), Ok(Some(9)));
    assert_eq!(
        c.txn_events(),
        vec![&CoordinatorEvent::TxnOffsetCommit {
            group: G.into(),
            producer_id: PRODUCER.producer_id,
            offsets: vec![(tp(), 9)],
        }]
    );
    // A retried marker finds nothing pending.
    c.complete_txn(true);
    assert_eq!(c.txn_events().len(), 1);
}

#[test]
fn an_aborted_transactions_offsets_are_dropped() {
    let (mut c, a) = stable_with_one();
    let commit = c.txn_commit(member(&a, 1), 9);
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(commit)), None);
    assert_eq!(c.fetch_stable(), Err(KafkaError::UnstableOffsetCommit));
    c.complete_txn(false);
    assert_eq!(c.fetch_stable(), Ok(None));
    assert!(c.txn_events().is_empty());
    assert!(c.c.pending_txn_offsets(G).is_empty());
}

/// A TxnOffsetCommit whose append fails is answered with the error (mapped as for an
/// OffsetCommit) and no longer pending.
#[test]
fn a_failed_txn_offset_append_is_not_pending() {
    let (mut c, a) = stable_with_one();
    let commit = c.txn_commit(member(&a, 1), 9);
    c.finish_appends(Err(KafkaError::NotLeaderOrFollower));
    assert_eq!(
        txn_commit_error(c.answer(commit)),
        Some(KafkaError::NotCoordinator)
    );
    assert_eq!(c.fetch_stable(), Ok(None));
    let commit = c.txn_commit(member(&a, 1), 9);
    c.finish_appends(Err(KafkaError::InvalidProducerEpoch));
    assert_eq!(
        txn_commit_error(c.answer(commit)),
        Some(KafkaError::InvalidProducerEpoch),
        "a fenced producer hears it (Kafka passes the error through)"
    );
    assert_eq!(c.fetch_stable(), Ok(None));
}

/// Kafka orders a transaction's offset and an ordinary commit by log position
/// (`CommitRecordMetadataAndOffset.olderThan`): a COMMIT marker does not override an
/// ordinary commit appended after the transaction's offsets, and does override one
/// appended before them.
#[test]
fn a_txn_commit_does_not_override_a_later_ordinary_commit() {
    let (mut c, a) = stable_with_one();
    let txn = c.txn_commit(member(&a, 1), 9);
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(txn)), None);
    let plain = c.commit(&a, 1, 12);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(plain)), None);
    assert_eq!(c.fetch_offset(), Ok(Some(12)));
    c.complete_txn(true);
    assert_eq!(c.fetch_offset(), Ok(Some(12)), "the later commit stands");
    assert!(c.txn_events().is_empty(), "nothing became committed");
    // The other way round: the transaction's offsets come after the ordinary commit.
    let plain = c.commit(&a, 1, 15);
    c.finish_appends(Ok(()));
    assert_eq!(commit_error(c.answer(plain)), None);
    let txn = c.txn_commit(member(&a, 1), 20);
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(txn)), None);
    c.complete_txn(true);
    assert_eq!(c.fetch_offset(), Ok(Some(20)));
}

/// KIP-447: a TxnOffsetCommit naming a member is fenced like an OffsetCommit (unknown
/// member, other generation, replaced static instance), but not refused while the group
/// completes a rebalance; one naming no member (an old client) is not checked.
#[test]
fn txn_offset_commits_are_fenced_by_member_and_generation() {
    let (mut c, a) = stable_with_one();
    let unknown = c.txn_commit(member("zombie", 1), 9);
    assert_eq!(
        txn_commit_error(c.answer(unknown)),
        Some(KafkaError::UnknownMemberId)
    );
    let stale = c.txn_commit(member(&a, 0), 9);
    assert_eq!(
        txn_commit_error(c.answer(stale)),
        Some(KafkaError::IllegalGeneration)
    );
    let no_member_id = c.txn_commit(member("", 0), 9);
    assert_eq!(
        txn_commit_error(c.answer(no_member_id)),
        Some(KafkaError::IllegalGeneration),
        "a generation alone is checked too"
    );
    assert!(c.appends.is_empty(), "nothing refused is written");
    assert_eq!(c.fetch_stable(), Ok(None), "and nothing refused is pending");
    let old_client = c.txn_commit(member("", -1), 9);
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(old_client)), None);

    // A replaced static member.
    let mut s = Coord::new(false);
    let old_id = stable_static_member(&mut s);
    let rejoin = s.join("", Some("instance-a"));
    s.finish_appends(Ok(()));
    let new_id = joined(s.answer(rejoin)).member_id;
    assert_ne!(new_id, old_id);
    let zombie = MemberRef {
        group_instance_id: Some("instance-a".into()),
        ..member(&old_id, 1)
    };
    let fenced = s.txn_commit(zombie, 9);
    assert_eq!(
        txn_commit_error(s.answer(fenced)),
        Some(KafkaError::FencedInstanceId)
    );

    // No REBALANCE_IN_PROGRESS (Kafka's doTxnCommitOffsets): a member of the generation
    // commits while its assignment is being stored.
    let mut r = Coord::new(false);
    let (b, join) = r.new_member();
    r.at(DELAY);
    joined(r.answer(join));
    r.sync(&b, 1, &[(&b, "orders/0")]);
    assert_eq!(r.state(), (GroupState::CompletingRebalance, Generation(1)));
    let plain = r.commit(&b, 1, 4);
    assert_eq!(
        commit_error(r.answer(plain)),
        Some(KafkaError::RebalanceInProgress)
    );
    let txn = r.txn_commit(member(&b, 1), 4);
    r.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(r.answer(txn)), None);
}

/// The legacy switch (before KIP-447, the bug zoo's `zombie-processor`): a member expelled
/// in an older generation still commits its transaction's offsets.
#[test]
fn legacy_unfenced_txn_offset_commits_accept_a_stale_generation() {
    let mut c = Coord::with_config(CoordinatorConfig {
        legacy_unfenced_txn_offset_commits: true,
        ..config(false)
    });
    let (a, join) = c.new_member();
    c.at(DELAY);
    joined(c.answer(join));
    let sync = c.sync(&a, 1, &[(&a, "orders/0")]);
    c.finish_appends(Ok(()));
    c.answer(sync);
    let stale = c.txn_commit(member("expelled", 0), 9);
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(stale)), None, "the legacy bug");
    c.complete_txn(true);
    assert_eq!(c.fetch_stable(), Ok(Some(9)));
    // The ordinary commit path keeps its own (fixed) fencing.
    let plain = c.commit("expelled", 0, 3);
    assert_eq!(
        commit_error(c.answer(plain)),
        Some(KafkaError::UnknownMemberId)
    );
}

/// A TxnOffsetCommit for a group the coordinator does not know creates it, Empty, to hold
/// the offsets; one to a coordinator not (yet) serving the group is refused.
#[test]
fn a_txn_offset_commit_creates_its_group_and_needs_a_loaded_coordinator() {
    let mut c = Coord::new(false);
    assert_eq!(c.c.group_state(G), None);
    let commit = c.txn_commit(member("", -1), 9);
    assert_eq!(c.state(), (GroupState::Empty, Generation(0)));
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(commit)), None);
    c.complete_txn(true);
    assert_eq!(c.fetch_offset(), Ok(Some(9)));

    c.c.on_become_leader(0, LeaderEpoch(2));
    let loading = c.txn_commit(member("", -1), 10);
    assert_eq!(
        txn_commit_error(c.answer(loading)),
        Some(KafkaError::CoordinatorLoadInProgress)
    );
    c.c.on_resign(0);
    c.collect();
    let elsewhere = c.txn_commit(member("", -1), 10);
    assert_eq!(
        txn_commit_error(c.answer(elsewhere)),
        Some(KafkaError::NotCoordinator)
    );
    assert!(c.appends.is_empty());
}

/// Unloading drops the pending offsets with the group; loading finds them in the log:
/// a committed transaction's offsets are committed, an aborted one's dropped, and an open
/// one's pending (its marker will come, and completes them).
#[test]
fn loading_applies_committed_drops_aborted_and_keeps_open_transactions_pending() {
    let mut c = Coord::new(false);
    let pending = c.txn_commit(member("", -1), 9);
    c.finish_appends(Ok(()));
    assert_eq!(txn_commit_error(c.answer(pending)), None);
    c.c.on_resign(0);
    c.collect();
    assert!(c.c.pending_txn_offsets(G).is_empty(), "gone with the group");

    let offset = |group: &str, topic: &str, next: u64| GroupRecord::Offset {
        group: group.into(),
        partition: TopicPartition::new(topic, 0),
        value: Some(committed(next)),
    };
    let batch = |base: u64, txn: Option<i64>, records: Vec<GroupRecord>| OffsetsBatch::Records {
        base_offset: Offset(base),
        transaction: txn.map(ProducerId),
        records,
    };
    let marker = |pid: i64, commit: bool| OffsetsBatch::Marker {
        producer_id: ProducerId(pid),
        commit,
    };
    let log = vec![
        batch(
            0,
            None,
            vec![offset(G, "orders", 1), offset(G, "ledger", 1)],
        ),
        // Producer 1 commits orders at 5; producer 2 aborts ledger at 6.
        batch(2, Some(1), vec![offset(G, "orders", 5)]),
        batch(3, Some(2), vec![offset(G, "ledger", 6)]),
        marker(1, true),
        marker(2, false),
        // Producer 3 commits ledger at 8, but an ordinary commit came after its batch.
        batch(6, Some(3), vec![offset(G, "ledger", 8)]),
        batch(7, None, vec![offset(G, "ledger", 2)]),
        marker(3, true),
        // Producer 4's transaction is open, in another group too.
        batch(
            9,
            Some(4),
            vec![offset(G, "orders", 11), offset("audit", "orders", 3)],
        ),
    ];
    c.c.on_become_leader(0, LeaderEpoch(2));
    c.c.on_loaded(0, LeaderEpoch(2), log, c.now);
    c.collect();
    let committed_now = |c: &Coord, group: &str| -> Vec<(String, u64)> {
        c.c.committed(group)
            .unwrap_or_default()
            .into_iter()
            .map(|(tp, o)| (tp.to_string(), o.offset.0))
            .collect()
    };
    assert_eq!(
        committed_now(&c, G),
        vec![("ledger/0".to_string(), 2), ("orders/0".to_string(), 5)]
    );
    assert_eq!(
        c.c.pending_txn_offsets(G),
        BTreeMap::from([(ProducerId(4), BTreeMap::from([(tp(), committed(11))]))])
    );
    assert_eq!(
        c.c.group_state("audit"),
        Some((GroupState::Empty, Generation(0))),
        "a group with only pending offsets is loaded, Empty"
    );
    assert_eq!(c.fetch_stable(), Err(KafkaError::UnstableOffsetCommit));
    assert_eq!(c.fetch_offset(), Ok(Some(5)));
    // The open transaction's marker arrives: committed in both groups.
    c.c.on_txn_completed(0, ProducerId(4), true, c.now);
    c.collect();
    assert_eq!(c.fetch_stable(), Ok(Some(11)));
    assert_eq!(
        committed_now(&c, "audit"),
        vec![("orders/0".to_string(), 3)]
    );
    assert_eq!(c.txn_events().len(), 2);
}

#[test]
fn txn_offset_commit_events_serialize_as_kind_and_detail() {
    let event = CoordinatorEvent::TxnOffsetCommit {
        group: G.into(),
        producer_id: ProducerId(7),
        offsets: vec![(tp(), 9)],
    };
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(
        json,
        r#"{"kind":"txn-offset-commit","detail":{"group":"billing","producer_id":7,"offsets":[["orders/0",9]]}}"#
    );
    assert_eq!(
        serde_json::from_str::<CoordinatorEvent>(&json).unwrap(),
        event
    );
}
