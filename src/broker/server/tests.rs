//! Unit tests of the broker core against an ensemble in memory: registration under lost
//! answers and stale znodes, and the delivery of controller requests over links that break.

use super::*;
use crate::broker::controller::TopicSpec;
use crate::broker::coordinator::GroupState;
use crate::broker::proto::{Generation, MemberRef, OffsetCommitRequest};
use crate::broker::test_ens::Ens;
use crate::broker::txn_coordinator::TransactionState;
use crate::broker::txn_index::AbortedTxn;
use crate::broker::Bytes;
use crate::coverage::Mark;
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
            legacy_unfenced_txn_offset_commits: false,
        },
        txn_coordinator: TxnCoordinatorConfig::default(),
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

/// A one-broker cluster's group `billing` with one member, generation 1, that committed
/// offset 5 of `orders/0`: the member's id.
fn group_with_a_commit(ens: &mut Ens, n: &mut Node) -> String {
    use crate::broker::proto::{CommittedOffset, JoinGroupRequest, SyncGroupRequest};
    let find = RequestBody::FindCoordinator {
        key: "billing".into(),
    };
    assert_eq!(
        ask(ens, n, 1, find),
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
    }) = ask(ens, n, 2, join(""))
    else {
        panic!("a first join gets its member id");
    };
    // The join phase ends at the next tick (no initial delay here).
    assert_eq!(ask(ens, n, 3, join(&member_id)), None);
    n.core.tick(4);
    pump(ens, n, 4, |_| false);
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
        ask(ens, n, 5, sync),
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
        ask(ens, n, 6, commit),
        Some(ResponseBody::OffsetCommit {
            partitions: vec![(tp, None)]
        })
    );
    member_id
}

fn fetch_committed(ens: &mut Ens, n: &mut Node, now_ms: u64) -> Option<ResponseBody> {
    let fetch = RequestBody::OffsetFetch {
        group_id: "billing".into(),
        partitions: vec![TopicPartition::new("orders", 0)],
        require_stable: false,
    };
    ask(ens, n, now_ms, fetch)
}

fn committed_five() -> Option<ResponseBody> {
    use crate::broker::proto::CommittedOffset;
    Some(ResponseBody::OffsetFetch {
        result: Ok(vec![(
            TopicPartition::new("orders", 0),
            Some(CommittedOffset {
                offset: Offset(5),
                leader_epoch: None,
            }),
        )]),
    })
}

#[test]
fn the_coordinator_runs_a_group_on_the_offsets_partition_and_finds_it_again_after_a_restart() {
    let mut ens = Ens::new();
    let (mut n, root) = alone("coordinator", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    let member_id = group_with_a_commit(&mut ens, &mut n);
    // The broker restarts on the same disk: the group and its offset come back from the
    // log.
    n.core.checkpoint_high_watermarks();
    ens.expire(n.session);
    let dir = root.0.clone();
    std::mem::forget(root);
    let (mut n, _root) = alone("coordinator", Some(dir));
    start(&mut ens, &mut n, 5, 10);
    pump(&mut ens, &mut n, 10, |_| false);
    assert_eq!(fetch_committed(&mut ens, &mut n, 11), committed_five());
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

/// A broker whose ensemble session ended has been declared dead: the controller moves its
/// leaderships, so its coordinator stops serving at once — no stale committed offsets, no
/// generations handed out by a zombie — and names no coordinator to FindCoordinator until
/// the controller makes it leader again in the next session.
#[test]
fn a_lost_session_ends_the_coordinators_service_until_the_controller_elects_it_again() {
    let mut ens = Ens::new();
    let (mut n, _root) = alone("resign", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    let member_id = group_with_a_commit(&mut ens, &mut n);
    assert_eq!(fetch_committed(&mut ens, &mut n, 7), committed_five());

    ens.expire(n.session);
    n.core.on_session_lost();
    pump(&mut ens, &mut n, 8, |_| false);
    assert_eq!(
        fetch_committed(&mut ens, &mut n, 9),
        Some(ResponseBody::OffsetFetch {
            result: Err(KafkaError::NotCoordinator)
        })
    );
    let heartbeat = RequestBody::Heartbeat(member(&member_id, 1));
    assert_eq!(
        ask(&mut ens, &mut n, 10, heartbeat.clone()),
        Some(ResponseBody::Heartbeat {
            error: Some(KafkaError::NotCoordinator)
        })
    );
    let find = RequestBody::FindCoordinator {
        key: "billing".into(),
    };
    assert_eq!(
        ask(&mut ens, &mut n, 11, find.clone()),
        Some(ResponseBody::FindCoordinator {
            result: Err(KafkaError::CoordinatorNotAvailable)
        })
    );

    // The next session: registered again, the controller (this broker) sees the bounce
    // and elects it in a new leader epoch; the group comes back from the log.
    start(&mut ens, &mut n, 5, 20);
    pump(&mut ens, &mut n, 20, |_| false);
    n.core.tick(21);
    pump(&mut ens, &mut n, 21, |_| false);
    assert_eq!(
        ask(&mut ens, &mut n, 22, find),
        Some(ResponseBody::FindCoordinator { result: Ok(B1) })
    );
    assert_eq!(fetch_committed(&mut ens, &mut n, 23), committed_five());
    assert_eq!(
        ask(&mut ens, &mut n, 24, heartbeat),
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

// --- transactions: three brokers in memory ---

const B3: BrokerId = BrokerId(3);
/// The connection a broker's requests to another arrive on: `PEER_CONN + sender`.
const PEER_CONN: u64 = 100;
/// The connection of the test's client.
const CLIENT_CONN: u64 = 9;

/// Topics of the transaction tests: two data topics and `__transaction_state`, each of one
/// partition on all three brokers, with `min.insync.replicas` 2.
fn txn_config(id: BrokerId) -> BrokerConfig {
    let mut config = config(id);
    let topic = |name: &str| TopicSpec {
        name: name.into(),
        partitions: 1,
        replication_factor: 3,
        min_insync_replicas: 2,
    };
    config.controller.brokers = vec![B1, B2, B3];
    config.controller.topics = vec![
        topic("orders"),
        topic("ledger"),
        topic(TRANSACTION_STATE_TOPIC),
    ];
    config.topic_min_isr = config
        .controller
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.min_insync_replicas))
        .collect();
    config.txn_coordinator = TxnCoordinatorConfig {
        transaction_state_partitions: 1,
        offsets_partitions: 1,
        ..TxnCoordinatorConfig::default()
    };
    config
}

/// Which requests between brokers are lost: (from, to, request) → lost.
type LostRequests = dyn Fn(BrokerId, BrokerId, &Request) -> bool;

/// A message between brokers, in flight inside [`Cluster::settle`].
enum Wire {
    Request(BrokerId, BrokerId, Request),
    Response(BrokerId, BrokerId, Response),
}

/// Three broker cores over one ensemble, their requests to each other delivered at once
/// (those `drop` picks are lost), until nothing moves.
struct Cluster {
    ens: Ens,
    nodes: BTreeMap<BrokerId, Node>,
    /// Brokers whose process is gone: nothing reaches them, nothing leaves them.
    dead: BTreeSet<BrokerId>,
    /// Requests lost on the way: (from, to, request) → lost.
    drop: Box<LostRequests>,
    now: u64,
    /// The `transactional.id` of each producer id InitProducerId handed out.
    transactional_ids: BTreeMap<ProducerId, String>,
    _roots: Vec<TempRoot>,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        Cluster::start_with(name, |_| {})
    }

    /// [`Cluster::start`] with each broker's configuration changed by `configure`.
    fn start_with(name: &str, configure: impl Fn(&mut BrokerConfig)) -> Cluster {
        let mut nodes = BTreeMap::new();
        let mut roots = Vec::new();
        for id in [B1, B2, B3] {
            let mut config = txn_config(id);
            configure(&mut config);
            let (node, root) = node_in(config, fresh_root(&format!("{name}-{}", id.0)));
            nodes.insert(id, node);
            roots.push(root);
        }
        let mut cluster = Cluster {
            ens: Ens::new(),
            nodes,
            dead: BTreeSet::new(),
            drop: Box::new(|_, _, _| false),
            now: 0,
            transactional_ids: BTreeMap::new(),
            _roots: roots,
        };
        for id in [B1, B2, B3] {
            let n = cluster.nodes.get_mut(&id).unwrap();
            start(&mut cluster.ens, n, u64::from(id.0), 0);
        }
        cluster.settle();
        // Followers replicate, ISRs fill: a few ticks.
        cluster.advance(100);
        for tp in [
            TopicPartition::new("orders", 0),
            TopicPartition::new("ledger", 0),
            TopicPartition::new(TRANSACTION_STATE_TOPIC, 0),
        ] {
            let leader = cluster.leader(&tp);
            assert_eq!(
                cluster.nodes[&leader].core.replicas[&tp].isr().len(),
                3,
                "{tp}: a full ISR"
            );
        }
        cluster
    }

    /// Runs every live broker's actions, delivering what they send, until all are quiet
    /// twice in a row (work done inside `take_actions`, such as a coordinator's append,
    /// may wait for the next `after_change`).
    fn settle(&mut self) {
        let now = self.now;
        let mut quiet = 0;
        for _ in 0..10_000 {
            let mut wire = Vec::new();
            let mut watches = Vec::new();
            let mut moved = false;
            for (id, n) in self.nodes.iter_mut() {
                if self.dead.contains(id) {
                    continue;
                }
                n.core.after_change(now);
                for action in n.core.take_actions() {
                    moved = true;
                    match action {
                        BrokerAction::Zk { id: zk, op } => {
                            let (result, fired) = self.ens.run(n.session, &op);
                            let zxid = self.ens.last_zxid();
                            n.core
                                .on_zk_outcome(zk, Outcome::Done { result, zxid }, now);
                            watches.extend(fired);
                        }
                        BrokerAction::SendToBroker { to, request } => {
                            n.sent.push((to, request.clone()));
                            wire.push(Wire::Request(*id, to, request));
                        }
                        BrokerAction::Respond { conn, response } if conn >= PEER_CONN => {
                            let to = BrokerId((conn - PEER_CONN) as u32);
                            wire.push(Wire::Response(*id, to, response));
                        }
                        BrokerAction::Respond { response, .. } => n.responses.push(response),
                        BrokerAction::Announce(event) => n.announced.push(event),
                    }
                }
            }
            for (session, event) in watches {
                if let Some((_, n)) = self
                    .nodes
                    .iter_mut()
                    .find(|(id, n)| n.session == session && !self.dead.contains(id))
                {
                    n.core.on_watch(&event);
                    moved = true;
                }
            }
            for message in wire {
                match message {
                    Wire::Request(from, to, request) => {
                        if self.dead.contains(&to) || (self.drop)(from, to, &request) {
                            continue;
                        }
                        let n = self.nodes.get_mut(&to).unwrap();
                        n.core
                            .on_request(PEER_CONN + u64::from(from.0), request, now);
                    }
                    Wire::Response(from, to, response) => {
                        if !self.dead.contains(&to) {
                            let n = self.nodes.get_mut(&to).unwrap();
                            n.core.on_peer_response(from, response, now);
                        }
                    }
                }
                moved = true;
            }
            quiet = if moved { 0 } else { quiet + 1 };
            if quiet == 2 {
                return;
            }
        }
        panic!("the cluster never settles");
    }

    /// Moves the clock `ms` on, one 10 ms tick at a time, settling after each.
    fn advance(&mut self, ms: u64) {
        for _ in 0..ms.div_ceil(10) {
            self.now += 10;
            let now = self.now;
            for (id, n) in self.nodes.iter_mut() {
                if !self.dead.contains(id) {
                    n.core.tick(now);
                }
            }
            self.settle();
        }
    }

    /// The leader of `tp`, by the live brokers' own replicas.
    fn leader(&self, tp: &TopicPartition) -> BrokerId {
        let leaders: Vec<BrokerId> = self
            .nodes
            .iter()
            .filter(|(id, n)| {
                !self.dead.contains(id)
                    && n.core
                        .replicas
                        .get(tp)
                        .is_some_and(|r| r.role() == Role::Leader)
            })
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(leaders.len(), 1, "{tp}: one leader, not {leaders:?}");
        leaders[0]
    }

    /// A client request to broker `to`; its answer, once the cluster settled.
    fn ask(&mut self, to: BrokerId, body: RequestBody) -> Option<ResponseBody> {
        let n = self.nodes.get_mut(&to).unwrap();
        let correlation_id = 5000 + n.responses.len() as u64 + n.sent.len() as u64;
        n.core.on_request(
            CLIENT_CONN,
            Request {
                correlation_id,
                body,
            },
            self.now,
        );
        self.settle();
        self.answer(to, correlation_id)
    }

    /// The answer broker `to` gave to the client's request `correlation_id`, if any yet.
    fn answer(&self, to: BrokerId, correlation_id: u64) -> Option<ResponseBody> {
        self.nodes[&to]
            .responses
            .iter()
            .find(|r| r.correlation_id == correlation_id)
            .map(|r| r.body.clone())
    }

    /// The transaction coordinator of `transactional_id`, found through broker `via`.
    fn find_txn_coordinator(&mut self, via: BrokerId, transactional_id: &str) -> BrokerId {
        let find = RequestBody::FindTxnCoordinator {
            transactional_id: transactional_id.into(),
        };
        match self.ask(via, find) {
            Some(ResponseBody::FindCoordinator { result: Ok(b) }) => b,
            other => panic!("FindCoordinator: {other:?}"),
        }
    }

    /// InitProducerId for `transactional_id` at its coordinator `at`.
    fn init_producer_id(
        &mut self,
        at: BrokerId,
        transactional_id: &str,
    ) -> Result<ProducerIdentity, KafkaError> {
        let init = RequestBody::InitTxnProducerId {
            transactional_id: transactional_id.into(),
            transaction_timeout_ms: 60_000,
            producer_id_and_epoch: None,
        };
        let result = match self.ask(at, init) {
            Some(ResponseBody::InitProducerId { result }) => result,
            other => panic!("InitProducerId: {other:?}"),
        };
        if let Ok(producer) = result {
            self.transactional_ids
                .insert(producer.producer_id, transactional_id.into());
        }
        result
    }

    /// AddPartitionsToTxn at coordinator `at`.
    fn add_partitions(
        &mut self,
        at: BrokerId,
        transactional_id: &str,
        producer: ProducerIdentity,
        partitions: &[TopicPartition],
    ) {
        let add = RequestBody::AddPartitionsToTxn {
            transactional_id: transactional_id.into(),
            producer,
            partitions: partitions.to_vec(),
            verify_only: false,
        };
        let expected = partitions.iter().map(|tp| (*tp, Ok(()))).collect();
        assert_eq!(
            self.ask(at, add),
            Some(ResponseBody::AddPartitionsToTxn {
                result: Ok(expected)
            })
        );
    }

    /// A transactional produce of `records` values (acks=all) to the leader of `tp`.
    fn produce(
        &mut self,
        tp: TopicPartition,
        producer: ProducerIdentity,
        base_sequence: i32,
        records: &[&str],
    ) -> Result<super::super::proto::ProduceOk, KafkaError> {
        let mut batch = BatchBuilder::new(BatchMeta {
            base_timestamp_ms: self.now as i64,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            base_sequence,
            ..BatchMeta::default()
        });
        batch.set_transactional(true);
        for value in records {
            batch.push(self.now as i64, None, Some(value.as_bytes()), &[]);
        }
        let produce = RequestBody::Produce {
            transactional_id: self.transactional_ids.get(&producer.producer_id).cloned(),
            acks: Acks::All,
            timeout_ms: 30_000,
            partitions: vec![ProducePartition {
                partition: tp,
                batch: Bytes(batch.encode(Offset(0)).to_vec()),
            }],
        };
        let leader = self.leader(&tp);
        match self.ask(leader, produce) {
            Some(ResponseBody::Produce { mut partitions }) => partitions.remove(0).1,
            other => panic!("Produce: {other:?}"),
        }
    }

    /// EndTxn at coordinator `at`.
    fn end_txn(
        &mut self,
        at: BrokerId,
        transactional_id: &str,
        producer: ProducerIdentity,
        result: TransactionResult,
    ) -> Result<ProducerIdentity, KafkaError> {
        let end = RequestBody::EndTxn {
            transactional_id: transactional_id.into(),
            producer,
            result,
        };
        match self.ask(at, end) {
            Some(ResponseBody::EndTxn { result }) => result,
            other => panic!("EndTxn: {other:?}"),
        }
    }

    /// The batches of `tp` in its leader's log.
    fn batches(&self, tp: &TopicPartition) -> Vec<crate::log::RecordBatch> {
        let r = &self.nodes[&self.leader(tp)].core.replicas[tp];
        decode_batches(&r.log().read(Offset(0), 1 << 20).unwrap()).unwrap()
    }

    /// What `tp`'s leader says of it: (LSO, LEO).
    fn stable(&self, tp: &TopicPartition) -> (Offset, Offset) {
        let r = &self.nodes[&self.leader(tp)].core.replicas[tp];
        (r.last_stable_offset(), r.log_end_offset())
    }
}

/// The marker a control batch holds: COMMIT or ABORT, and its coordinator epoch.
fn marker_of(batch: &crate::log::RecordBatch) -> Option<(ControlRecordType, i32)> {
    if batch.attributes & crate::log::CONTROL_FLAG == 0 {
        return None;
    }
    let record = &batch.records[0];
    let key = record.key.as_deref()?;
    let kind = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlRecordType::Abort,
        1 => ControlRecordType::Commit,
        _ => return None,
    };
    let value = record.value.as_deref()?;
    Some((
        kind,
        i32::from_be_bytes([value[2], value[3], value[4], value[5]]),
    ))
}

#[test]
fn find_txn_coordinator_names_the_transaction_state_leader_from_any_broker() {
    let mut c = Cluster::start("txn-find");
    let leader = c.leader(&TopicPartition::new(TRANSACTION_STATE_TOPIC, 0));
    for via in [B1, B2, B3] {
        assert_eq!(c.find_txn_coordinator(via, "payments-tx"), leader);
    }
    // The coordinator serves the id; a broker that does not lead its partition refuses it.
    let other = [B1, B2, B3].into_iter().find(|b| *b != leader).unwrap();
    assert_eq!(
        c.init_producer_id(other, "payments-tx"),
        Err(KafkaError::NotCoordinator)
    );
    let identity = c.init_producer_id(leader, "payments-tx").unwrap();
    assert_eq!(identity.producer_epoch, 0);
    // From the same space as idempotent producers' ids: the coordinator's broker id on top.
    assert_eq!(identity.producer_id.0 >> 40, i64::from(leader.0));
}

fn txn_tp(topic: &str) -> TopicPartition {
    TopicPartition::new(topic, 0)
}

impl Cluster {
    /// The transaction state broker `at` holds for `transactional_id`.
    fn txn_state(&self, at: BrokerId, transactional_id: &str) -> Option<TransactionState> {
        self.nodes[&at]
            .core
            .txn_coordinator
            .metadata(transactional_id)
            .map(|m| m.state)
    }

    /// The leader epoch of `__transaction_state/0` at its leader: the coordinator epoch.
    fn coordinator_epoch(&self) -> i32 {
        let tp = txn_tp(TRANSACTION_STATE_TOPIC);
        self.nodes[&self.leader(&tp)].core.replicas[&tp]
            .leader_epoch()
            .0
    }

    /// Broker `id`'s process dies: its session expires (the controller hears of it), its
    /// peers' connections to it break.
    fn kill(&mut self, id: BrokerId) {
        self.dead.insert(id);
        let session = self.nodes[&id].session;
        let fired = self.ens.expire(session);
        let now = self.now;
        for (other, n) in self.nodes.iter_mut() {
            if self.dead.contains(other) {
                continue;
            }
            for (s, event) in &fired {
                if *s == n.session {
                    n.core.on_watch(event);
                }
            }
            n.core.on_peer_closed(id, now);
        }
        self.settle();
    }
}

/// One transaction over two partitions, one led by the coordinator's own broker (its
/// marker written without the network) and one by another broker (a WriteTxnMarkers
/// request), committed: each partition ends with a COMMIT marker of the coordinator's
/// epoch after the records, and its last stable offset reaches its log end.
#[test]
fn a_committed_transaction_ends_each_partition_with_a_commit_marker() {
    let mut c = Cluster::start("txn-commit");
    let (orders, ledger) = (txn_tp("orders"), txn_tp("ledger"));
    let coordinator = c.find_txn_coordinator(B1, "tx-commit");
    assert_eq!(
        c.leader(&orders),
        coordinator,
        "assignment: see `txn_config`"
    );
    let ledger_leader = c.leader(&ledger);
    assert_ne!(ledger_leader, coordinator);
    let producer = c.init_producer_id(coordinator, "tx-commit").unwrap();
    c.add_partitions(coordinator, "tx-commit", producer, &[orders, ledger]);
    assert_eq!(
        c.txn_state(coordinator, "tx-commit"),
        Some(TransactionState::Ongoing)
    );
    c.produce(orders, producer, 0, &["a", "b"]).unwrap();
    c.produce(ledger, producer, 0, &["c"]).unwrap();
    assert_eq!(
        c.stable(&orders),
        (Offset(0), Offset(2)),
        "an open transaction holds the LSO at its first offset"
    );
    let next = c
        .end_txn(
            coordinator,
            "tx-commit",
            producer,
            TransactionResult::Commit,
        )
        .unwrap();
    assert_eq!(
        next,
        ProducerIdentity {
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch + 1
        },
        "transaction version 2: every EndTxn bumps the epoch"
    );
    let epoch = c.coordinator_epoch();
    for (tp, records) in [(orders, 2), (ledger, 1)] {
        let batches = c.batches(&tp);
        let last = batches.last().unwrap();
        assert_eq!(
            marker_of(last),
            Some((ControlRecordType::Commit, epoch)),
            "{tp}"
        );
        assert_eq!(last.base_offset, Offset(records), "{tp}: after the records");
        assert_eq!(last.producer_id, producer.producer_id);
        assert_eq!(batches.iter().filter(|b| marker_of(b).is_some()).count(), 1);
        assert_eq!(
            c.stable(&tp),
            (Offset(records + 1), Offset(records + 1)),
            "{tp}"
        );
        let r = &c.nodes[&c.leader(&tp)].core.replicas[&tp];
        assert!(r
            .producer_state()
            .aborted_between(Offset(0), Offset(records + 1))
            .is_empty());
    }
    assert!(
        c.nodes[&coordinator]
            .sent
            .iter()
            .any(|(to, r)| *to == ledger_leader
                && matches!(r.body, RequestBody::WriteTxnMarkers { .. })),
        "the other broker's marker went over the network"
    );
    assert!(
        !c.nodes[&coordinator]
            .sent
            .iter()
            .any(|(to, _)| *to == coordinator),
        "its own partition's marker did not"
    );
    assert_eq!(
        c.txn_state(coordinator, "tx-commit"),
        Some(TransactionState::CompleteCommit)
    );
    assert!(c.nodes[&coordinator].announced.iter().any(|e| matches!(
        e,
        Announced::TxnCoordinator(TxnCoordinatorEvent::TxnState {
            state: TransactionState::CompleteCommit,
            ..
        })
    )));
}

/// An aborted transaction ends with an ABORT marker, which every replica lists in its
/// aborted transactions (what a `read_committed` fetch skips).
#[test]
fn an_aborted_transaction_ends_with_an_abort_marker_every_replica_indexes() {
    let mut c = Cluster::start("txn-abort");
    let ledger = txn_tp("ledger");
    let coordinator = c.find_txn_coordinator(B3, "tx-abort");
    let producer = c.init_producer_id(coordinator, "tx-abort").unwrap();
    c.add_partitions(coordinator, "tx-abort", producer, &[ledger]);
    c.produce(ledger, producer, 0, &["x", "y"]).unwrap();
    assert_eq!(c.stable(&ledger), (Offset(0), Offset(2)));
    c.end_txn(coordinator, "tx-abort", producer, TransactionResult::Abort)
        .unwrap();
    let epoch = c.coordinator_epoch();
    let last = c.batches(&ledger).pop().unwrap();
    assert_eq!(marker_of(&last), Some((ControlRecordType::Abort, epoch)));
    assert_eq!(last.base_offset, Offset(2));
    assert_eq!(c.stable(&ledger), (Offset(3), Offset(3)));
    let expected = vec![AbortedTxn {
        producer_id: producer.producer_id,
        first_offset: Offset(0),
        last_offset: Offset(2),
        last_stable_offset: Offset(3),
    }];
    for (id, n) in &c.nodes {
        let r = &n.core.replicas[&ledger];
        assert_eq!(r.log_end_offset(), Offset(3), "broker {id} has the marker");
        assert_eq!(
            r.producer_state().aborted_between(Offset(0), Offset(3)),
            expected,
            "broker {id}"
        );
    }
    assert_eq!(
        c.txn_state(coordinator, "tx-abort"),
        Some(TransactionState::CompleteAbort)
    );
}

/// KAFKA-14402 and KIP-890 part 1, under transaction version 1 (the producer keeps its
/// epoch across transactions): a produce that reaches a partition after its transaction
/// was aborted there. With verification the leader asks the transaction coordinator, whose
/// transaction no longer holds the partition: `INVALID_TXN_STATE`, nothing appended.
/// Without (`[legacy] no-add-partition-verification`) the batch opens a transaction the
/// coordinator knows nothing of: no marker will ever end it and the LSO hangs at it.
#[test]
fn a_produce_after_its_transaction_ended_opens_one_only_without_verification() {
    for verify in [true, false] {
        let mut c = Cluster::start_with(&format!("txn-late-{verify}"), |config| {
            config.txn_coordinator.transaction_version_2 = false;
            config.replica.transaction_verification = verify;
        });
        let ledger = txn_tp("ledger");
        let coordinator = c.find_txn_coordinator(B1, "tx-late");
        let producer = c.init_producer_id(coordinator, "tx-late").unwrap();
        c.add_partitions(coordinator, "tx-late", producer, &[ledger]);
        let next = c
            .end_txn(coordinator, "tx-late", producer, TransactionResult::Abort)
            .unwrap();
        assert_eq!(next, producer, "transaction version 1 keeps the epoch");
        assert_eq!(
            c.stable(&ledger),
            (Offset(1), Offset(1)),
            "the ABORT marker"
        );
        let late = c.produce(ledger, producer, 0, &["late"]);
        assert_eq!(
            c.txn_state(coordinator, "tx-late"),
            Some(TransactionState::CompleteAbort)
        );
        if verify {
            assert_eq!(
                late,
                Err(KafkaError::InvalidTxnState),
                "verified: not in it"
            );
            assert_eq!(
                c.stable(&ledger),
                (Offset(1), Offset(1)),
                "nothing appended"
            );
        } else {
            late.unwrap();
            c.advance(100);
            assert_eq!(
                c.stable(&ledger),
                (Offset(1), Offset(2)),
                "a hanging transaction holds the LSO"
            );
        }
    }
}

/// A second InitProducerId for a `transactional.id` with a transaction open fences the
/// first producer: the open transaction is aborted with a newer epoch, the new producer
/// gets a newer epoch, and the old one's writes are refused by the partition (the marker
/// taught it the new epoch) and by the coordinator.
#[test]
fn a_second_init_producer_id_fences_the_first_producer() {
    let mut c = Cluster::start("txn-fence");
    let ledger = txn_tp("ledger");
    let coordinator = c.find_txn_coordinator(B1, "tx-fence");
    let old = c.init_producer_id(coordinator, "tx-fence").unwrap();
    c.add_partitions(coordinator, "tx-fence", old, &[ledger]);
    c.produce(ledger, old, 0, &["zombie"]).unwrap();
    // The new producer's first attempt aborts the open transaction and is asked to retry.
    assert_eq!(
        c.init_producer_id(coordinator, "tx-fence"),
        Err(KafkaError::ConcurrentTransactions)
    );
    let new = c.init_producer_id(coordinator, "tx-fence").unwrap();
    assert_eq!(new.producer_id, old.producer_id);
    assert!(
        new.producer_epoch > old.producer_epoch,
        "{new:?} after {old:?}"
    );
    let last = c.batches(&ledger).pop().unwrap();
    assert_eq!(
        marker_of(&last).map(|(kind, _)| kind),
        Some(ControlRecordType::Abort)
    );
    assert!(last.producer_epoch > old.producer_epoch);
    assert_eq!(
        c.produce(ledger, old, 1, &["late"]),
        Err(KafkaError::InvalidProducerEpoch),
        "the partition refuses the fenced epoch"
    );
    let add = RequestBody::AddPartitionsToTxn {
        transactional_id: "tx-fence".into(),
        producer: old,
        partitions: vec![ledger],
        verify_only: false,
    };
    assert_eq!(
        c.ask(coordinator, add),
        Some(ResponseBody::AddPartitionsToTxn {
            result: Err(KafkaError::ProducerFenced)
        })
    );
    // The new producer goes on.
    c.add_partitions(coordinator, "tx-fence", new, &[ledger]);
    c.produce(ledger, new, 0, &["fresh"]).unwrap();
}

/// The coordinator's broker dies with a transaction in PrepareCommit whose marker to
/// another broker never arrived: the new leader of `__transaction_state` loads it and
/// sends the markers again, in its own epoch, and the transaction completes.
#[test]
fn a_new_coordinator_loads_a_prepared_commit_and_sends_its_markers_again() {
    let mut c = Cluster::start("txn-failover");
    let (orders, ledger) = (txn_tp("orders"), txn_tp("ledger"));
    let coordinator = c.find_txn_coordinator(B1, "tx-failover");
    assert!(
        c.nodes[&coordinator]
            .core
            .active_controller_epoch()
            .is_none(),
        "the controller outlives the coordinator"
    );
    let producer = c.init_producer_id(coordinator, "tx-failover").unwrap();
    c.add_partitions(coordinator, "tx-failover", producer, &[orders, ledger]);
    c.produce(orders, producer, 0, &["a"]).unwrap();
    c.produce(ledger, producer, 0, &["b"]).unwrap();
    // Its marker requests to other brokers are lost.
    c.drop = Box::new(move |from, _, r| {
        from == coordinator && matches!(r.body, RequestBody::WriteTxnMarkers { .. })
    });
    c.end_txn(
        coordinator,
        "tx-failover",
        producer,
        TransactionResult::Commit,
    )
    .unwrap();
    let old_epoch = c.coordinator_epoch();
    assert_eq!(
        c.txn_state(coordinator, "tx-failover"),
        Some(TransactionState::PrepareCommit)
    );
    assert_eq!(
        c.nodes[&coordinator]
            .core
            .txn_coordinator
            .markers_pending("tx-failover"),
        vec![ledger],
        "its own partition's marker is written"
    );
    assert_eq!(marker_of(&c.batches(&ledger).pop().unwrap()), None);
    assert_eq!(c.stable(&ledger), (Offset(0), Offset(1)));

    crate::coverage::take();
    c.kill(coordinator);
    c.advance(2000);
    let successor = c.find_txn_coordinator(B1, "tx-failover");
    assert_ne!(successor, coordinator);
    let new_epoch = c.coordinator_epoch();
    assert!(new_epoch > old_epoch);
    assert!(
        crate::coverage::take().contains_key(Mark::TxnMarkersResentOnLoad.name()),
        "the loaded PrepareCommit's markers are sent again"
    );
    assert!(c.nodes[&successor].announced.iter().any(|e| matches!(
        e,
        Announced::TxnCoordinator(TxnCoordinatorEvent::TxnCoordinatorLoaded { transactional_ids, .. })
            if transactional_ids == &["tx-failover".to_string()]
    )));
    let last = c.batches(&ledger).pop().unwrap();
    assert_eq!(
        marker_of(&last),
        Some((ControlRecordType::Commit, new_epoch))
    );
    assert_eq!(c.stable(&ledger), (Offset(2), Offset(2)));
    let (lso, leo) = c.stable(&orders);
    assert_eq!(lso, leo, "orders is committed too");
    assert_eq!(
        c.txn_state(successor, "tx-failover"),
        Some(TransactionState::CompleteCommit)
    );
}

/// A marker request lost with its connection, or unanswered for a request timeout, is
/// reported back as a retriable error, and the coordinator sends it again at its next tick
/// until it is written.
#[test]
fn a_lost_marker_request_is_sent_again() {
    use std::cell::Cell;
    use std::rc::Rc;
    let mut c = Cluster::start("txn-marker-retry");
    let ledger = txn_tp("ledger");
    let coordinator = c.find_txn_coordinator(B1, "tx-retry");
    let ledger_leader = c.leader(&ledger);
    let producer = c.init_producer_id(coordinator, "tx-retry").unwrap();
    c.add_partitions(coordinator, "tx-retry", producer, &[ledger]);
    c.produce(ledger, producer, 0, &["r"]).unwrap();
    // The first two marker requests are lost.
    let lost = Rc::new(Cell::new(0));
    let counter = lost.clone();
    c.drop = Box::new(move |_, _, r| {
        let marker = matches!(r.body, RequestBody::WriteTxnMarkers { .. });
        if marker && counter.get() < 2 {
            counter.set(counter.get() + 1);
            return true;
        }
        false
    });
    c.end_txn(coordinator, "tx-retry", producer, TransactionResult::Commit)
        .unwrap();
    assert_eq!(lost.get(), 1);
    // The connection breaks: sent again at the next tick, and lost again.
    let now = c.now;
    c.nodes
        .get_mut(&coordinator)
        .unwrap()
        .core
        .on_peer_closed(ledger_leader, now);
    c.advance(10);
    assert_eq!(lost.get(), 2);
    assert_eq!(
        c.txn_state(coordinator, "tx-retry"),
        Some(TransactionState::PrepareCommit)
    );
    // This one hangs on a link that never answers: after the request timeout, again.
    c.advance(TXN_MARKER_REQUEST_TIMEOUT_MS - 100);
    assert_eq!(
        c.txn_state(coordinator, "tx-retry"),
        Some(TransactionState::PrepareCommit)
    );
    c.advance(200);
    assert_eq!(
        c.txn_state(coordinator, "tx-retry"),
        Some(TransactionState::CompleteCommit)
    );
    let markers = c
        .batches(&ledger)
        .iter()
        .filter_map(marker_of)
        .collect::<Vec<_>>();
    assert_eq!(markers.len(), 1, "only the delivered request wrote");
}

/// A marker for a partition whose leader this broker's metadata does not know alive is
/// reported back retriable, without a request; it goes once a live leader is known.
#[test]
fn a_marker_for_a_partition_without_a_live_leader_waits_for_one() {
    let mut c = Cluster::start("txn-no-leader");
    let ledger = txn_tp("ledger");
    let coordinator = c.find_txn_coordinator(B1, "tx-wait");
    let ledger_leader = c.leader(&ledger);
    let producer = c.init_producer_id(coordinator, "tx-wait").unwrap();
    c.add_partitions(coordinator, "tx-wait", producer, &[ledger]);
    c.produce(ledger, producer, 0, &["w"]).unwrap();
    // The coordinator's metadata says the leader is gone.
    let core = &mut c.nodes.get_mut(&coordinator).unwrap().core;
    assert!(core.live_brokers.remove(&ledger_leader));
    c.end_txn(coordinator, "tx-wait", producer, TransactionResult::Commit)
        .unwrap();
    c.advance(100);
    let markers_sent = |c: &Cluster| {
        c.nodes[&coordinator]
            .sent
            .iter()
            .filter(|(_, r)| matches!(r.body, RequestBody::WriteTxnMarkers { .. }))
            .count()
    };
    assert_eq!(markers_sent(&c), 0);
    assert_eq!(
        c.txn_state(coordinator, "tx-wait"),
        Some(TransactionState::PrepareCommit)
    );
    assert_eq!(
        c.nodes[&coordinator]
            .core
            .txn_coordinator
            .markers_pending("tx-wait"),
        vec![ledger]
    );
    // It is back: the next tick sends the marker.
    let core = &mut c.nodes.get_mut(&coordinator).unwrap().core;
    core.live_brokers.insert(ledger_leader);
    c.advance(10);
    assert_eq!(markers_sent(&c), 1);
    assert_eq!(
        c.txn_state(coordinator, "tx-wait"),
        Some(TransactionState::CompleteCommit)
    );
}

// --- transactional offset commits on the group coordinator (KIP-98, KIP-447) ---

/// A broker alone in its cluster, leading `orders/0`, `__consumer_offsets/0` and
/// `__transaction_state/0` (so both coordinators are here); over `restart_in`, the
/// directory of an earlier incarnation, if given.
fn alone_with_transactions(name: &str, restart_in: Option<PathBuf>) -> (Node, TempRoot) {
    let mut config = config(B1);
    config.controller.brokers = vec![B1];
    let topic = |name: &str| TopicSpec {
        name: name.into(),
        partitions: 1,
        replication_factor: 1,
        min_insync_replicas: 1,
    };
    config.controller.topics = vec![
        topic("orders"),
        topic(OFFSETS_TOPIC),
        topic(TRANSACTION_STATE_TOPIC),
    ];
    config.txn_coordinator = TxnCoordinatorConfig {
        transaction_state_partitions: 1,
        offsets_partitions: 1,
        ..TxnCoordinatorConfig::default()
    };
    match restart_in {
        Some(dir) => {
            config.incarnation = 2;
            node_in(config, dir)
        }
        None => node_in(config, fresh_root(name)),
    }
}

/// The producer of transaction `tx-offsets`, its offsets partition added to the
/// transaction, and a TxnOffsetCommit of `orders/0` at 7 for group `billing` (from an
/// old client: no member) answered.
fn txn_offsets_written(ens: &mut Ens, n: &mut Node) -> ProducerIdentity {
    use crate::broker::proto::{CommittedOffset, TxnOffsetCommitRequest};
    let init = RequestBody::InitTxnProducerId {
        transactional_id: "tx-offsets".into(),
        transaction_timeout_ms: 60_000,
        producer_id_and_epoch: None,
    };
    let Some(ResponseBody::InitProducerId {
        result: Ok(producer),
    }) = ask(ens, n, 1, init)
    else {
        panic!("InitProducerId");
    };
    let add = RequestBody::AddOffsetsToTxn {
        transactional_id: "tx-offsets".into(),
        producer,
        group_id: "billing".into(),
    };
    assert_eq!(
        ask(ens, n, 2, add),
        Some(ResponseBody::AddOffsetsToTxn { error: None })
    );
    let tp = TopicPartition::new("orders", 0);
    let commit = RequestBody::TxnOffsetCommit(TxnOffsetCommitRequest {
        transactional_id: "tx-offsets".into(),
        producer,
        member: member("", -1),
        offsets: vec![(
            tp,
            CommittedOffset {
                offset: Offset(7),
                leader_epoch: None,
            },
        )],
    });
    assert_eq!(
        ask(ens, n, 3, commit),
        Some(ResponseBody::TxnOffsetCommit {
            partitions: vec![(tp, None)]
        })
    );
    producer
}

fn fetch_orders(
    ens: &mut Ens,
    n: &mut Node,
    now_ms: u64,
    require_stable: bool,
) -> Result<Option<u64>, KafkaError> {
    let fetch = RequestBody::OffsetFetch {
        group_id: "billing".into(),
        partitions: vec![TopicPartition::new("orders", 0)],
        require_stable,
    };
    match ask(ens, n, now_ms, fetch) {
        Some(ResponseBody::OffsetFetch { result }) => {
            result.map(|found| found[0].1.as_ref().map(|c| c.offset.0))
        }
        other => panic!("OffsetFetch: {other:?}"),
    }
}

fn end_txn_at(
    ens: &mut Ens,
    n: &mut Node,
    now_ms: u64,
    producer: ProducerIdentity,
    result: TransactionResult,
) {
    let end = RequestBody::EndTxn {
        transactional_id: "tx-offsets".into(),
        producer,
        result,
    };
    assert!(
        matches!(
            ask(ens, n, now_ms, end),
            Some(ResponseBody::EndTxn { result: Ok(_) })
        ),
        "EndTxn"
    );
}

/// Through the real log: AddOffsetsToTxn, TxnOffsetCommit (a transactional batch of the
/// producer on `__consumer_offsets`, holding its LSO), then EndTxn(COMMIT): the COMMIT
/// marker on the offsets partition makes the offset committed, and a `require_stable`
/// OffsetFetch, refused with UNSTABLE_OFFSET_COMMIT before, sees it.
#[test]
fn a_committed_transactions_offsets_become_visible_with_its_marker() {
    let mut ens = Ens::new();
    let (mut n, _root) = alone_with_transactions("txn-offsets-commit", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    let producer = txn_offsets_written(&mut ens, &mut n);
    let offsets = TopicPartition::new(OFFSETS_TOPIC, 0);
    let r = &n.core.replicas[&offsets];
    let batches = decode_batches(&r.log().read(Offset(0), 1 << 20).unwrap()).unwrap();
    let last = batches.last().unwrap();
    assert!(last.is_transactional() && !last.is_control());
    assert_eq!(
        (last.producer_id, last.producer_epoch),
        (producer.producer_id, producer.producer_epoch)
    );
    assert_eq!(
        r.last_stable_offset(),
        last.base_offset,
        "the open transaction holds the offsets partition's LSO"
    );
    assert_eq!(
        fetch_orders(&mut ens, &mut n, 4, true),
        Err(KafkaError::UnstableOffsetCommit)
    );
    assert_eq!(fetch_orders(&mut ens, &mut n, 4, false), Ok(None));

    end_txn_at(&mut ens, &mut n, 5, producer, TransactionResult::Commit);
    let r = &n.core.replicas[&offsets];
    let batches = decode_batches(&r.log().read(Offset(0), 1 << 20).unwrap()).unwrap();
    assert_eq!(
        marker_of(batches.last().unwrap()).map(|(kind, _)| kind),
        Some(ControlRecordType::Commit)
    );
    assert_eq!(r.last_stable_offset(), r.log_end_offset());
    assert_eq!(fetch_orders(&mut ens, &mut n, 6, true), Ok(Some(7)));
    assert!(n.announced.iter().any(|e| matches!(
        e,
        Announced::Coordinator(CoordinatorEvent::TxnOffsetCommit { producer_id, offsets, .. })
            if *producer_id == producer.producer_id && offsets.len() == 1
    )));
}

/// The same with an ABORT: the offsets are dropped, and the fetch sees none.
#[test]
fn an_aborted_transactions_offsets_are_dropped_with_its_marker() {
    let mut ens = Ens::new();
    let (mut n, _root) = alone_with_transactions("txn-offsets-abort", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    let producer = txn_offsets_written(&mut ens, &mut n);
    end_txn_at(&mut ens, &mut n, 5, producer, TransactionResult::Abort);
    assert_eq!(fetch_orders(&mut ens, &mut n, 6, true), Ok(None));
}

/// The coordinators' broker restarts with the transaction open: loading the offsets
/// partition finds the transactional batch without a marker, so the offsets are pending
/// (UNSTABLE_OFFSET_COMMIT) until the transaction's COMMIT, sent by the reloaded
/// transaction coordinator, completes them.
#[test]
fn offsets_of_a_transaction_open_across_a_restart_are_pending_after_loading() {
    let mut ens = Ens::new();
    let (mut n, root) = alone_with_transactions("txn-offsets-restart", None);
    start(&mut ens, &mut n, 4, 0);
    pump(&mut ens, &mut n, 0, |_| false);
    let producer = txn_offsets_written(&mut ens, &mut n);
    n.core.checkpoint_high_watermarks();
    ens.expire(n.session);
    let dir = root.0.clone();
    std::mem::forget(root);
    let (mut n, _root) = alone_with_transactions("txn-offsets-restart", Some(dir));
    start(&mut ens, &mut n, 5, 10);
    pump(&mut ens, &mut n, 10, |_| false);
    assert_eq!(
        fetch_orders(&mut ens, &mut n, 11, true),
        Err(KafkaError::UnstableOffsetCommit),
        "pending after loading"
    );
    assert_eq!(fetch_orders(&mut ens, &mut n, 11, false), Ok(None));
    assert_eq!(
        n.core
            .coordinator
            .pending_txn_offsets("billing")
            .keys()
            .collect::<Vec<_>>(),
        vec![&producer.producer_id]
    );
    end_txn_at(&mut ens, &mut n, 12, producer, TransactionResult::Commit);
    assert_eq!(fetch_orders(&mut ens, &mut n, 13, true), Ok(Some(7)));
    // Loaded again (a second restart), the marker in the log commits them.
    n.core.checkpoint_high_watermarks();
    ens.expire(n.session);
    let dir = _root.0.clone();
    std::mem::forget(_root);
    let (mut n, _root) = alone_with_transactions("txn-offsets-restart", Some(dir));
    start(&mut ens, &mut n, 6, 20);
    pump(&mut ens, &mut n, 20, |_| false);
    assert_eq!(fetch_orders(&mut ens, &mut n, 21, true), Ok(Some(7)));
}
