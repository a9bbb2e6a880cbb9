//! Unit tests of the broker core against an ensemble in memory: registration under lost
//! answers and stale znodes, and the delivery of controller requests over links that break.

use super::*;
use crate::broker::controller::TopicSpec;
use crate::broker::coordinator::GroupState;
use crate::broker::proto::{Generation, MemberRef, OffsetCommitRequest};
use crate::broker::test_ens::Ens;
use crate::broker::Bytes;
use crate::disk::FsDisk;

const B1: BrokerId = BrokerId(1);
const B2: BrokerId = BrokerId(2);

struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(id: BrokerId) -> BrokerConfig {
    BrokerConfig {
        id,
        incarnation: 1,
        replica: ReplicaConfig::default(),
        topic_min_isr: BTreeMap::new(),
        controller: ControllerConfig {
            broker_id: id,
            brokers: vec![B1, B2],
            topics: vec![TopicSpec {
                name: "orders".into(),
                partitions: 1,
                replication_factor: 2,
                min_insync_replicas: 1,
            }],
            unclean_leader_election: false,
            legacy_unfenced_writes: false,
            legacy_no_broker_epoch: false,
            eligible_leader_replicas: true,
        },
        coordinator: CoordinatorConfig {
            offsets_partitions: 1,
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            legacy_unfenced_offset_commits: false,
        },
    }
}

/// One broker core with its session, and what it sent and announced.
struct Node {
    core: BrokerCore<FsDisk>,
    session: SessionId,
    sent: Vec<(BrokerId, Request)>,
    responses: Vec<Response>,
    announced: Vec<Announced>,
}

fn node(id: BrokerId, name: &str) -> (Node, TempRoot) {
    node_in(config(id), fresh_root(name))
}

/// An empty scratch directory for test `name`.
fn fresh_root(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("ksim-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

/// A broker core over the directory `root` (kept if it exists: a restart).
fn node_in(config: BrokerConfig, root: PathBuf) -> (Node, TempRoot) {
    let disk = FsDisk::new(&root).unwrap();
    let node = Node {
        core: BrokerCore::new(config, disk),
        session: SessionId::NONE,
        sent: Vec::new(),
        responses: Vec::new(),
        announced: Vec::new(),
    };
    (node, TempRoot(root))
}

/// Runs the node's ensemble operations until it asks for none; `lose` decides, per
/// operation, to commit it but hand back CONNECTIONLOSS instead of the answer. Returns the
/// watches its writes fired for other sessions.
fn pump(
    ens: &mut Ens,
    n: &mut Node,
    now_ms: u64,
    mut lose: impl FnMut(&Op) -> bool,
) -> Vec<(SessionId, WatchedEvent)> {
    let mut others = Vec::new();
    n.core.after_change(now_ms);
    for _ in 0..1000 {
        let actions = n.core.take_actions();
        if actions.is_empty() {
            return others;
        }
        for action in actions {
            match action {
                BrokerAction::Zk { id, op } => {
                    let (result, fired) = ens.run(n.session, &op);
                    let outcome = if lose(&op) {
                        Outcome::Unknown {
                            error: ZkError::ConnectionLoss,
                        }
                    } else {
                        Outcome::Done {
                            result,
                            zxid: ens.last_zxid(),
                        }
                    };
                    n.core.on_zk_outcome(id, outcome, now_ms);
                    for (session, event) in fired {
                        if session == n.session {
                            n.core.on_watch(&event);
                        } else {
                            others.push((session, event));
                        }
                    }
                }
                BrokerAction::SendToBroker { to, request } => n.sent.push((to, request)),
                BrokerAction::Announce(event) => n.announced.push(event),
                BrokerAction::Respond { response, .. } => n.responses.push(response),
            }
        }
    }
    panic!("the broker never settles");
}

fn start(ens: &mut Ens, n: &mut Node, session: u64, now_ms: u64) {
    n.session = SessionId(session);
    ens.open(n.session);
    n.core.on_session_started(n.session, now_ms);
}

fn registration_czxid(ens: &Ens, id: BrokerId) -> BrokerEpoch {
    let (_, stat) = ens.tree.get_data(&paths::broker_path(id)).unwrap();
    BrokerEpoch(stat.czxid.0 as i64)
}

#[test]
fn a_registration_whose_answer_was_lost_is_recognised_as_its_own() {
    let mut ens = Ens::new();
    let (mut n, _root) = node(B1, "lost-answer");
    start(&mut ens, &mut n, 7, 0);
    let mut lost = false;
    pump(&mut ens, &mut n, 0, |op| {
        let register = matches!(op, Op::Create { path, .. } if *path == paths::broker_path(B1));
        let lose = register && !lost;
        lost |= lose;
        lose
    });
    assert!(lost);
    assert_eq!(n.core.broker_epoch(), None, "the answer never came");
    // The retry finds the znode; it is this session's own, so the broker is registered
    // with that znode's czxid — not stuck waiting for its own session to expire.
    n.core.tick(REGISTRATION_RETRY_MS);
    pump(&mut ens, &mut n, REGISTRATION_RETRY_MS, |_| false);
    assert_eq!(n.core.broker_epoch(), Some(registration_czxid(&ens, B1)));
    assert_eq!(
        n.announced
            .iter()
            .filter(|e| matches!(e, Announced::Broker(BrokerEvent::BrokerRegistered { .. })))
            .count(),
        1
    );
}

#[test]
fn a_registration_left_by_the_previous_session_waits_for_it_to_expire() {
    let mut ens = Ens::new();
    let old = SessionId(3);
    ens.open(old);
    ens.ephemeral(old, &paths::broker_path(B1), vec![]);
    let stale = registration_czxid(&ens, B1);

    let (mut n, _root) = node(B1, "stale-znode");
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    for i in 1..=3 {
        let now = i * REGISTRATION_RETRY_MS;
        n.core.tick(now);
        pump(&mut ens, &mut n, now, |_| false);
        assert_eq!(
            n.core.broker_epoch(),
            None,
            "another session's znode is not ours"
        );
    }
    ens.expire(old);
    n.core.tick(4 * REGISTRATION_RETRY_MS);
    pump(&mut ens, &mut n, 4 * REGISTRATION_RETRY_MS, |_| false);
    let epoch = n
        .core
        .broker_epoch()
        .expect("registered once the old znode expired");
    assert_eq!(epoch, registration_czxid(&ens, B1));
    assert_ne!(epoch, stale);
}

fn leader_and_isr_to(n: &Node, to: BrokerId) -> Vec<&Request> {
    n.sent
        .iter()
        .filter(|(t, r)| *t == to && matches!(r.body, RequestBody::LeaderAndIsr { .. }))
        .map(|(_, r)| r)
        .collect()
}

/// Broker 1 alone: it registers and becomes the controller; then broker 2 registers and
/// the controller tells it about its partition.
fn controller_and_newcomer(ens: &mut Ens) -> (Node, Node, [TempRoot; 2]) {
    let (mut b1, r1) = node(B1, "controller");
    let (mut b2, r2) = node(B2, "newcomer");
    start(ens, &mut b1, 1, 0);
    pump(ens, &mut b1, 0, |_| false);
    assert_eq!(b1.core.active_controller_epoch(), Some(ControllerEpoch(1)));
    start(ens, &mut b2, 2, 10);
    // Broker 2's registration fires broker 1's watch on /brokers/ids.
    let fired = pump(ens, &mut b2, 10, |_| false);
    assert!(b2.core.broker_epoch().is_some());
    for (session, event) in fired {
        if session == b1.session {
            b1.core.on_watch(&event);
        }
    }
    pump(ens, &mut b1, 10, |_| false);
    assert!(
        !leader_and_isr_to(&b1, B2).is_empty(),
        "the controller sends LeaderAndIsr to the newcomer"
    );
    (b1, b2, [r1, r2])
}

#[test]
fn a_controller_request_lost_with_its_connection_is_sent_again_until_answered() {
    let mut ens = Ens::new();
    let (mut b1, _b2, _roots) = controller_and_newcomer(&mut ens);
    let first = leader_and_isr_to(&b1, B2).last().copied().cloned().unwrap();
    b1.sent.clear();

    // The link breaks before an answer: the same request goes again after a backoff.
    b1.core.on_peer_closed(B2, 20);
    b1.core.tick(20 + CONTROLLER_RESEND_BACKOFF_MS - 1);
    pump(
        &mut ens,
        &mut b1,
        20 + CONTROLLER_RESEND_BACKOFF_MS - 1,
        |_| false,
    );
    assert!(
        leader_and_isr_to(&b1, B2).is_empty(),
        "not before the backoff"
    );
    let at = 20 + CONTROLLER_RESEND_BACKOFF_MS;
    b1.core.tick(at);
    pump(&mut ens, &mut b1, at, |_| false);
    let again = leader_and_isr_to(&b1, B2);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, first.body);
    assert_ne!(again[0].correlation_id, first.correlation_id);
    let again = again[0].clone();
    b1.sent.clear();

    // Unanswered on a link that stalls without closing: again after the request timeout.
    let later = at + REPLICA_REQUEST_TIMEOUT_MS;
    b1.core.tick(later);
    pump(&mut ens, &mut b1, later, |_| false);
    let third = leader_and_isr_to(&b1, B2);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].body, first.body);
    let third = third[0].clone();
    b1.sent.clear();

    // Answered (even late, on an older correlation the answer is ignored): no more.
    b1.core.on_peer_response(
        B2,
        Response {
            correlation_id: again.correlation_id,
            body: ResponseBody::LeaderAndIsr { error: None },
        },
        later + 1,
    );
    b1.core.on_peer_response(
        B2,
        Response {
            correlation_id: third.correlation_id,
            body: ResponseBody::LeaderAndIsr { error: None },
        },
        later + 1,
    );
    for i in 1..=3 {
        let now = later + i * REPLICA_REQUEST_TIMEOUT_MS;
        b1.core.tick(now);
        pump(&mut ens, &mut b1, now, |_| false);
    }
    assert!(
        leader_and_isr_to(&b1, B2).is_empty(),
        "answered requests stay answered"
    );
}

/// A broker answers STALE_BROKER_EPOCH while it has not yet learnt of its own registration
/// (its answer from the ensemble is late); the controller, which saw that registration, sends
/// the request again until it is taken. (Found by swarm seed 119: a partition's only replica
/// never became its leader.)
#[test]
fn a_leader_and_isr_refused_by_a_broker_behind_its_own_registration_is_sent_again() {
    let mut ens = Ens::new();
    let (mut b1, mut b2, _roots) = controller_and_newcomer(&mut ens);
    let first = leader_and_isr_to(&b1, B2).last().copied().cloned().unwrap();
    b1.sent.clear();
    // The newcomer as a process that restarted and has not heard its registration's answer.
    b2.core.on_session_lost();
    let refused = b2.core.handle_controller_request(&first.body, 20);
    assert_eq!(
        refused,
        ResponseBody::LeaderAndIsr {
            error: Some(KafkaError::StaleBrokerEpoch)
        }
    );
    let answer = |correlation_id, body: &ResponseBody| Response {
        correlation_id,
        body: body.clone(),
    };
    b1.core
        .on_peer_response(B2, answer(first.correlation_id, &refused), 20);
    let at = 20 + CONTROLLER_RESEND_BACKOFF_MS;
    b1.core.tick(at);
    pump(&mut ens, &mut b1, at, |_| false);
    let again = leader_and_isr_to(&b1, B2);
    assert_eq!(again.len(), 1, "sent again after the backoff");
    assert_eq!(again[0].body, first.body);
    let again = again[0].clone();
    b1.sent.clear();

    // Taken: no more.
    let taken = ResponseBody::LeaderAndIsr { error: None };
    b1.core
        .on_peer_response(B2, answer(again.correlation_id, &taken), at + 1);
    for i in 1..=3 {
        let now = at + i * REPLICA_REQUEST_TIMEOUT_MS;
        b1.core.tick(now);
        pump(&mut ens, &mut b1, now, |_| false);
    }
    assert!(leader_and_isr_to(&b1, B2).is_empty());
}

#[test]
fn a_resigned_controller_stops_resending() {
    let mut ens = Ens::new();
    let (mut b1, _b2, _roots) = controller_and_newcomer(&mut ens);
    b1.sent.clear();
    b1.core.on_session_lost();
    ens.expire(b1.session);
    b1.core.on_peer_closed(B2, 20);
    for i in 1..=3 {
        let now = 20 + i * REPLICA_REQUEST_TIMEOUT_MS;
        b1.core.tick(now);
        pump(&mut ens, &mut b1, now, |_| false);
    }
    assert!(
        leader_and_isr_to(&b1, B2).is_empty(),
        "a controller that is no longer active has nothing to deliver"
    );
}

fn alter_partitions(n: &Node) -> usize {
    n.sent
        .iter()
        .filter(|(_, r)| matches!(r.body, RequestBody::AlterPartition { .. }))
        .count()
}

#[test]
fn an_alter_partition_lost_on_a_stalled_link_is_given_up_and_proposed_again() {
    let mut ens = Ens::new();
    // Broker 1 is the controller (it holds /controller), so proposals travel.
    let b1_session = SessionId(4);
    ens.open(b1_session);
    let controller = paths::encode(&paths::ControllerZnode { brokerid: 1 });
    ens.ephemeral(b1_session, paths::CONTROLLER, controller);
    let (mut b2, _root) = node(B2, "alter-timeout");
    start(&mut ens, &mut b2, 5, 0);
    pump(&mut ens, &mut b2, 0, |_| false);
    let broker_epoch = b2.core.broker_epoch().expect("registered");
    // Controller broker 1 makes broker 2 the leader of orders/0, alone in the ISR.
    let tp = TopicPartition::new("orders", 0);
    let state = PartitionState {
        leader: Some(B2),
        leader_epoch: LeaderEpoch(1),
        isr: vec![B2],
        elr: vec![],
        controller_epoch: ControllerEpoch(1),
        partition_epoch: PartitionEpoch(1),
        replicas: vec![B2, B1],
    };
    let request = |correlation_id, body| Request {
        correlation_id,
        body,
    };
    b2.core.on_request(
        1,
        request(
            1,
            RequestBody::LeaderAndIsr {
                controller_id: B1,
                controller_epoch: ControllerEpoch(1),
                broker_epoch,
                partitions: vec![(tp, state)],
            },
        ),
        10,
    );
    pump(&mut ens, &mut b2, 10, |_| false);
    // Broker 1 fetches at the leader's LEO: caught up, so the leader asks to add it.
    let follower_fetch = |correlation_id| {
        request(
            correlation_id,
            RequestBody::Fetch {
                replica_id: Some(B1),
                replica_epoch: BrokerEpoch(0),
                max_wait_ms: 0,
                partitions: vec![FetchPartition {
                    partition: TopicPartition::new("orders", 0),
                    fetch_offset: Offset(0),
                    current_leader_epoch: Some(LeaderEpoch(1)),
                    last_fetched_epoch: None,
                    max_bytes: REPLICA_FETCH_MAX_BYTES,
                }],
                isolation_level: IsolationLevel::ReadUncommitted,
            },
        )
    };
    b2.core.on_request(2, follower_fetch(2), 20);
    pump(&mut ens, &mut b2, 20, |_| false);
    assert_eq!(
        alter_partitions(&b2),
        1,
        "the leader proposes the expansion"
    );
    b2.core.on_request(2, follower_fetch(3), 30);
    pump(&mut ens, &mut b2, 30, |_| false);
    assert_eq!(alter_partitions(&b2), 1, "one proposal in flight at a time");
    // No answer ever comes (the link stalls without closing): after a request timeout
    // the proposal is dropped, and the next caught-up fetch proposes again.
    let later = 20 + REPLICA_REQUEST_TIMEOUT_MS;
    b2.core.tick(later);
    b2.core.on_request(2, follower_fetch(4), later);
    pump(&mut ens, &mut b2, later, |_| false);
    assert_eq!(alter_partitions(&b2), 2);
}

/// A broker alone in its cluster, controller of `orders/0` and `__consumer_offsets/0`;
/// over `restart_in`, the directory of an earlier incarnation, if given.
fn alone(name: &str, restart_in: Option<PathBuf>) -> (Node, TempRoot) {
    let mut config = config(B1);
    config.controller.brokers = vec![B1];
    config.controller.topics = vec![
        TopicSpec {
            name: "orders".into(),
            partitions: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
        },
        TopicSpec {
            name: OFFSETS_TOPIC.into(),
            partitions: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
        },
    ];
    match restart_in {
        Some(dir) => {
            config.incarnation = 2;
            node_in(config, dir)
        }
        None => node_in(config, fresh_root(name)),
    }
}

/// Sends a request on connection 9 and returns its answer.
fn ask(ens: &mut Ens, n: &mut Node, now_ms: u64, body: RequestBody) -> Option<ResponseBody> {
    let correlation_id = 1000 + n.responses.len() as u64;
    n.core.on_request(
        9,
        Request {
            correlation_id,
            body,
        },
        now_ms,
    );
    pump(ens, n, now_ms, |_| false);
    n.responses
        .iter()
        .find(|r| r.correlation_id == correlation_id)
        .map(|r| r.body.clone())
}

fn member(member_id: &str, generation_id: i32) -> MemberRef {
    MemberRef {
        group_id: "billing".into(),
        generation_id: Generation(generation_id),
        member_id: member_id.into(),
        group_instance_id: None,
    }
}

#[test]
fn the_coordinator_runs_a_group_on_the_offsets_partition_and_finds_it_again_after_a_restart() {
    use crate::broker::proto::{CommittedOffset, JoinGroupRequest, SyncGroupRequest};
    let mut ens = Ens::new();
    let (mut n, root) = alone("coordinator", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    let find = RequestBody::FindCoordinator {
        key: "billing".into(),
    };
    assert_eq!(
        ask(&mut ens, &mut n, 1, find.clone()),
        Some(ResponseBody::FindCoordinator { result: Ok(B1) })
    );
    let join = |member_id: &str| {
        RequestBody::JoinGroup(JoinGroupRequest {
            group_id: "billing".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "consumer-1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes(b"orders".to_vec()))],
        })
    };
    let Some(ResponseBody::JoinGroup {
        result: Err(KafkaError::MemberIdRequired),
        member_id,
    }) = ask(&mut ens, &mut n, 2, join(""))
    else {
        panic!("a first join gets its member id");
    };
    // The join phase ends at the next tick (no initial delay here).
    assert_eq!(ask(&mut ens, &mut n, 3, join(&member_id)), None);
    n.core.tick(4);
    pump(&mut ens, &mut n, 4, |_| false);
    let joined = n.responses.last().unwrap().body.clone();
    assert!(
        matches!(&joined, ResponseBody::JoinGroup { result: Ok(ok), .. } if ok.generation_id == Generation(1)),
        "{joined:?}"
    );
    let sync = RequestBody::SyncGroup(SyncGroupRequest {
        member: member(&member_id, 1),
        assignments: vec![(member_id.clone(), Bytes(b"orders/0".to_vec()))],
    });
    assert_eq!(
        ask(&mut ens, &mut n, 5, sync),
        Some(ResponseBody::SyncGroup {
            result: Ok(Bytes(b"orders/0".to_vec()))
        }),
        "stored on the offsets partition (one replica: the HW passes it at once)"
    );
    let tp = TopicPartition::new("orders", 0);
    let commit = RequestBody::OffsetCommit(OffsetCommitRequest {
        member: member(&member_id, 1),
        offsets: vec![(
            tp,
            CommittedOffset {
                offset: Offset(5),
                leader_epoch: None,
            },
        )],
    });
    assert_eq!(
        ask(&mut ens, &mut n, 6, commit),
        Some(ResponseBody::OffsetCommit {
            partitions: vec![(tp, None)]
        })
    );
    // The broker restarts on the same disk: the group and its offset come back from the
    // log.
    n.core.checkpoint_high_watermarks();
    ens.expire(n.session);
    let dir = root.0.clone();
    std::mem::forget(root);
    let (mut n, _root) = alone("coordinator", Some(dir));
    start(&mut ens, &mut n, 5, 10);
    pump(&mut ens, &mut n, 10, |_| false);
    let fetch = RequestBody::OffsetFetch {
        group_id: "billing".into(),
        partitions: vec![tp],
    };
    assert_eq!(
        ask(&mut ens, &mut n, 11, fetch),
        Some(ResponseBody::OffsetFetch {
            result: Ok(vec![(
                tp,
                Some(CommittedOffset {
                    offset: Offset(5),
                    leader_epoch: None
                })
            )])
        })
    );
    assert_eq!(
        n.core.coordinator.group_state("billing"),
        Some((GroupState::Stable, Generation(1)))
    );
    let heartbeat = RequestBody::Heartbeat(member(&member_id, 1));
    assert_eq!(
        ask(&mut ens, &mut n, 12, heartbeat),
        Some(ResponseBody::Heartbeat { error: None })
    );
}

/// The log directory has one HW checkpoint for all its partitions, as Kafka's
/// `replication-offset-checkpoint`; a malformed one keeps every partition closed (a failed
/// log directory) instead of opening them with made-up HWs.
#[test]
fn one_hw_checkpoint_per_log_directory_and_a_malformed_one_opens_nothing() {
    let mut ens = Ens::new();
    let (mut n, root) = alone("hw-checkpoint", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    assert_eq!(n.core.replicas.len(), 2, "both partitions open");
    n.core.checkpoint_high_watermarks();
    let path = root.0.join(LOG_DIR).join(REPLICATION_OFFSET_CHECKPOINT);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "0\n2\n__consumer_offsets 0 0\norders 0 0\n"
    );
    std::fs::write(&path, "0\n1\norders zero 0\n").unwrap();
    ens.expire(n.session);
    let dir = root.0.clone();
    std::mem::forget(root);
    let (mut n, _root) = alone("hw-checkpoint", Some(dir));
    start(&mut ens, &mut n, 5, 10);
    pump(&mut ens, &mut n, 10, |_| false);
    assert!(n.core.replicas.is_empty(), "nothing opened");
    assert!(
        n.announced.iter().any(
            |e| matches!(e, Announced::Broker(BrokerEvent::LogError { error, .. })
            if error.contains(REPLICATION_OFFSET_CHECKPOINT))
        ),
        "{:?}",
        n.announced
    );
}

/// A LeaderAndIsr resent after a newer one (its connection broke before the answer) is
/// refused by the replica, and the metadata cache clients read does not step back to it.
#[test]
fn a_stale_leader_and_isr_does_not_move_the_metadata_cache_back() {
    let mut ens = Ens::new();
    let b1_session = SessionId(4);
    ens.open(b1_session);
    let controller = paths::encode(&paths::ControllerZnode { brokerid: 1 });
    ens.ephemeral(b1_session, paths::CONTROLLER, controller);
    let (mut b2, _root) = node(B2, "stale-leader-and-isr");
    start(&mut ens, &mut b2, 5, 0);
    pump(&mut ens, &mut b2, 0, |_| false);
    let broker_epoch = b2.core.broker_epoch().expect("registered");
    let tp = TopicPartition::new("orders", 0);
    let state = |leader_epoch, partition_epoch, leader| PartitionState {
        leader: Some(leader),
        leader_epoch: LeaderEpoch(leader_epoch),
        isr: vec![B2, B1],
        elr: vec![],
        controller_epoch: ControllerEpoch(1),
        partition_epoch: PartitionEpoch(partition_epoch),
        replicas: vec![B2, B1],
    };
    let leader_and_isr = |state| RequestBody::LeaderAndIsr {
        controller_id: B1,
        controller_epoch: ControllerEpoch(1),
        broker_epoch,
        partitions: vec![(tp, state)],
    };
    let newer = state(2, 2, B2);
    ask(&mut ens, &mut b2, 10, leader_and_isr(newer.clone())).expect("answered");
    ask(&mut ens, &mut b2, 20, leader_and_isr(state(1, 1, B1))).expect("answered");
    let metadata = RequestBody::Metadata {
        topics: vec!["orders".into()],
    };
    let Some(ResponseBody::Metadata { partitions, .. }) = ask(&mut ens, &mut b2, 30, metadata)
    else {
        panic!("a metadata answer")
    };
    // (No UpdateMetadata named the live brokers, so the answer names no leader.)
    let [(answered, cached)] = &partitions[..] else {
        panic!("one partition: {partitions:?}")
    };
    assert_eq!(answered, &tp);
    assert_eq!(
        (cached.leader_epoch, cached.partition_epoch),
        (newer.leader_epoch, newer.partition_epoch)
    );
}
