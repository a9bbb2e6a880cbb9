//! The consumer fed by hand: each test plays the brokers and asserts on fetches and on
//! what the history would record.

use super::*;
use crate::broker::proto::{FetchData, JoinGroupMember, Request};
use crate::broker::{Bytes, PartitionState};
use crate::log::{BatchBuilder, BatchMeta, LeaderEpoch};

/// A dynamic member in a JoinGroup answer to the leader.
fn member(id: &str, metadata: Bytes) -> JoinGroupMember {
    JoinGroupMember {
        member_id: id.into(),
        group_instance_id: None,
        metadata,
    }
}

const TOPIC: &str = "orders";

fn state(leader: u32, epoch: i32) -> PartitionState {
    PartitionState {
        leader: Some(BrokerId(leader)),
        leader_epoch: LeaderEpoch(epoch),
        isr: vec![BrokerId(leader)],
        elr: vec![],
        controller_epoch: crate::broker::ControllerEpoch(1),
        partition_epoch: crate::broker::PartitionEpoch(0),
        replicas: vec![],
    }
}

fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

/// Encoded batch at `base` holding `values`.
fn batch(base: u64, values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchMeta::default());
    for v in values {
        b.push(0, None, Some(v.as_bytes()), &[]);
    }
    b.encode(Offset(base)).to_vec()
}

struct Fetch {
    broker: BrokerId,
    connection: ConnectionId,
    correlation_id: u64,
    partitions: Vec<FetchPartition>,
    isolation_level: IsolationLevel,
}

struct Harness {
    c: ConsumerCore,
    now: u64,
    connections: BTreeMap<BrokerId, ConnectionId>,
    requests: Vec<(BrokerId, ConnectionId, Request)>,
    history: Vec<ConsumerAction>,
}

impl Harness {
    /// A consumer of `orders` with metadata: partition p led by `leaders[p]`, `epoch`.
    fn ready(leaders: &[u32], epoch: i32) -> Harness {
        Harness::ready_with(
            ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]),
            leaders,
            epoch,
        )
    }

    fn ready_with(config: ConsumerConfig, leaders: &[u32], epoch: i32) -> Harness {
        let mut h = Harness {
            c: ConsumerCore::new(config),
            now: 0,
            connections: BTreeMap::new(),
            requests: Vec::new(),
            history: Vec::new(),
        };
        h.tick(0);
        h.answer_metadata(leaders, epoch);
        h
    }

    fn pump(&mut self) {
        loop {
            let actions = self.c.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    ConsumerAction::Net(NetAction::Connect { broker, connection }) => {
                        self.connections.insert(broker, connection);
                        self.c.on_connected(connection, self.now);
                    }
                    ConsumerAction::Net(NetAction::Send {
                        broker,
                        connection,
                        request,
                    }) => self.requests.push((broker, connection, request)),
                    ConsumerAction::Net(NetAction::Close { broker, .. }) => {
                        self.connections.remove(&broker);
                    }
                    other => self.history.push(other),
                }
            }
        }
    }

    fn tick(&mut self, now: u64) {
        self.now = now;
        self.c.tick(now);
        self.pump();
    }

    fn respond(&mut self, connection: ConnectionId, correlation_id: u64, body: ResponseBody) {
        self.c.on_response(
            connection,
            Response {
                correlation_id,
                body,
            },
            self.now,
        );
        self.pump();
    }

    fn has_metadata_request(&self) -> bool {
        self.requests
            .iter()
            .any(|(_, _, r)| matches!(r.body, RequestBody::Metadata { .. }))
    }

    fn answer_metadata(&mut self, leaders: &[u32], epoch: i32) {
        let at = self
            .requests
            .iter()
            .position(|(_, _, r)| matches!(r.body, RequestBody::Metadata { .. }))
            .expect("a metadata request");
        let (_, connection, request) = self.requests.remove(at);
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(p, l)| (tp(p as u32), state(*l, epoch)))
            .collect();
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::Metadata {
                controller: None,
                brokers: vec![BrokerId(1), BrokerId(2)],
                partitions,
            },
        );
    }

    fn fetches(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, r)| matches!(r.body, RequestBody::Fetch { .. }))
            .count()
    }

    fn take_fetch(&mut self) -> Fetch {
        let at = self
            .requests
            .iter()
            .position(|(_, _, r)| matches!(r.body, RequestBody::Fetch { .. }))
            .expect("a fetch");
        let (broker, connection, request) = self.requests.remove(at);
        let RequestBody::Fetch {
            replica_id,
            partitions,
            isolation_level,
            ..
        } = request.body
        else {
            unreachable!()
        };
        assert_eq!(replica_id, None, "a consumer fetch");
        Fetch {
            broker,
            connection,
            correlation_id: request.correlation_id,
            partitions,
            isolation_level,
        }
    }

    fn answer_fetch(&mut self, fetch: &Fetch, results: Vec<Result<FetchData, KafkaError>>) {
        let partitions = fetch
            .partitions
            .iter()
            .zip(results)
            .map(|(f, r)| (f.partition, r))
            .collect();
        self.respond(
            fetch.connection,
            fetch.correlation_id,
            ResponseBody::Fetch { partitions },
        );
    }
}

fn data(log_start: u64, high_watermark: u64, records: Vec<u8>) -> Result<FetchData, KafkaError> {
    Ok(FetchData {
        high_watermark: Offset(high_watermark),
        log_start_offset: Offset(log_start),
        leader_epoch: LeaderEpoch(0),
        diverging_epoch: None,
        records: Bytes(records),
        last_stable_offset: Offset(high_watermark),
        aborted_transactions: Vec::new(),
    })
}

fn polled(h: &Harness) -> Vec<(TopicPartition, Vec<(u64, String)>)> {
    h.history
        .iter()
        .filter_map(|a| match a {
            ConsumerAction::Poll { partition, records } => Some((
                *partition,
                records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            )),
            _ => None,
        })
        .collect()
}

fn records(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
    pairs.iter().map(|(o, v)| (*o, v.to_string())).collect()
}

#[test]
fn assigns_every_partition_at_offset_zero_and_fetches_each_leader_with_its_epoch() {
    let mut h = Harness::ready(&[1, 2, 1], 4);
    assert_eq!(
        h.history,
        vec![ConsumerAction::Assign {
            partitions: vec![(tp(0), 0), (tp(1), 0), (tp(2), 0)]
        }]
    );
    assert_eq!(h.fetches(), 2, "one fetch per leader");
    let first = h.take_fetch();
    assert_eq!(first.broker, BrokerId(1));
    assert_eq!(
        first
            .partitions
            .iter()
            .map(|f| (
                f.partition.partition,
                f.fetch_offset,
                f.current_leader_epoch
            ))
            .collect::<Vec<_>>(),
        vec![
            (0, Offset(0), Some(LeaderEpoch(4))),
            (2, Offset(0), Some(LeaderEpoch(4)))
        ],
        "KIP-320: the fetch carries the leader epoch"
    );
    let second = h.take_fetch();
    assert_eq!(second.broker, BrokerId(2));
}

#[test]
fn records_at_or_after_the_position_are_returned_and_the_position_advances() {
    let mut h = Harness::ready(&[1], 0);
    let fetch = h.take_fetch();
    let mut bytes = batch(0, &["a", "b"]);
    bytes.extend(batch(2, &["c"]));
    h.answer_fetch(&fetch, vec![data(0, 3, bytes)]);
    assert_eq!(
        polled(&h),
        vec![(tp(0), records(&[(0, "a"), (1, "b"), (2, "c")]))]
    );
    assert_eq!(h.c.positions()[&tp(0)], Offset(3));
    let next = h.take_fetch();
    assert_eq!(next.partitions[0].fetch_offset, Offset(3));
    // The broker returns the whole batch holding the fetch offset: records before the
    // position are not returned again.
    h.answer_fetch(&next, vec![data(0, 5, batch(2, &["c", "d", "e"]))]);
    assert_eq!(polled(&h)[1], (tp(0), records(&[(3, "d"), (4, "e")])));
    assert_eq!(h.c.positions()[&tp(0)], Offset(5));
    // Nothing new: no poll recorded, the fetch goes on.
    let empty = h.take_fetch();
    h.answer_fetch(&empty, vec![data(0, 5, vec![])]);
    assert_eq!(polled(&h).len(), 2);
    assert_eq!(h.take_fetch().partitions[0].fetch_offset, Offset(5));
}

/// A transaction's COMMIT/ABORT marker is a control batch: never handed out as a record,
/// but the position moves past it, also when a fetch brings nothing else.
#[test]
fn control_batches_are_skipped_and_the_position_moves_past_them() {
    use crate::log::{ControlRecord, ControlRecordType};
    let marker = |base: u64| {
        BatchBuilder::end_txn_marker(
            BatchMeta::default(),
            ControlRecord {
                kind: ControlRecordType::Commit,
                coordinator_epoch: 0,
            },
        )
        .encode(Offset(base))
        .to_vec()
    };
    let mut h = Harness::ready(&[1], 0);
    let fetch = h.take_fetch();
    let mut bytes = batch(0, &["a", "b"]);
    bytes.extend(marker(2));
    bytes.extend(batch(3, &["c"]));
    h.answer_fetch(&fetch, vec![data(0, 4, bytes)]);
    assert_eq!(
        polled(&h),
        vec![(tp(0), records(&[(0, "a"), (1, "b"), (3, "c")]))]
    );
    assert_eq!(h.c.positions()[&tp(0)], Offset(4));
    let next = h.take_fetch();
    h.answer_fetch(&next, vec![data(0, 5, marker(4))]);
    assert_eq!(polled(&h).len(), 1, "a marker alone is no poll");
    assert_eq!(
        h.c.positions()[&tp(0)],
        Offset(5),
        "but the position moves past it"
    );
    assert_eq!(h.take_fetch().partitions[0].fetch_offset, Offset(5));
}

/// read_committed: the fetch says so, and the batches of a transaction the broker lists as
/// aborted are skipped up to that producer's ABORT marker; another producer's committed
/// transaction and the same producer's next transaction are returned.
#[test]
fn read_committed_skips_aborted_transactions_up_to_their_marker() {
    use crate::broker::proto::AbortedTransaction;
    use crate::log::{ControlRecord, ControlRecordType, ProducerId};
    let meta = |pid: i64| BatchMeta {
        producer_id: ProducerId(pid),
        producer_epoch: 0,
        base_sequence: 0,
        ..BatchMeta::default()
    };
    let txn = |pid: i64, base: u64, values: &[&str]| {
        let mut b = BatchBuilder::new(meta(pid));
        b.set_transactional(true);
        for v in values {
            b.push(0, None, Some(v.as_bytes()), &[]);
        }
        b.encode(Offset(base)).to_vec()
    };
    let marker = |pid: i64, base: u64, kind| {
        BatchBuilder::end_txn_marker(
            meta(pid),
            ControlRecord {
                kind,
                coordinator_epoch: 0,
            },
        )
        .encode(Offset(base))
        .to_vec()
    };
    let mut config = ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]);
    config.isolation_level = IsolationLevel::ReadCommitted;
    let mut h = Harness::ready_with(config, &[1], 0);
    let fetch = h.take_fetch();
    assert_eq!(fetch.isolation_level, IsolationLevel::ReadCommitted);
    // 0-1: pid 7 (aborted); 2: pid 8 (committed); 3: ABORT 7; 4: COMMIT 8; 5: pid 7 again.
    let mut bytes = txn(7, 0, &["a1", "a2"]);
    bytes.extend(txn(8, 2, &["b1"]));
    bytes.extend(marker(7, 3, ControlRecordType::Abort));
    bytes.extend(marker(8, 4, ControlRecordType::Commit));
    bytes.extend(txn(7, 5, &["c1"]));
    let mut answer = data(0, 6, bytes).unwrap();
    answer.aborted_transactions = vec![AbortedTransaction {
        producer_id: ProducerId(7),
        first_offset: Offset(0),
    }];
    h.answer_fetch(&fetch, vec![Ok(answer)]);
    assert_eq!(
        polled(&h),
        vec![(tp(0), records(&[(2, "b1"), (5, "c1")]))],
        "the aborted a1, a2 skipped; c1 is after the ABORT marker"
    );
    assert_eq!(h.c.positions()[&tp(0)], Offset(6));
    let next = h.take_fetch();
    assert_eq!(next.partitions[0].fetch_offset, Offset(6));
    let default = Harness::ready(&[1], 0).take_fetch();
    assert_eq!(default.isolation_level, IsolationLevel::ReadUncommitted);
}

/// KIP-320: a leader that is not at the consumer's epoch answers FENCED_LEADER_EPOCH; the
/// consumer refreshes metadata and fetches from the leader it names, with its epoch.
#[test]
fn fenced_leader_epoch_refreshes_metadata_and_fetches_from_the_new_leader() {
    let mut h = Harness::ready(&[1], 3);
    let fetch = h.take_fetch();
    h.now = 10;
    h.answer_fetch(&fetch, vec![Err(KafkaError::FencedLeaderEpoch)]);
    assert_eq!(h.fetches(), 0, "backs off");
    h.tick(100);
    assert!(h.has_metadata_request());
    h.answer_metadata(&[2], 4);
    h.tick(110);
    let again = h.take_fetch();
    assert_eq!(again.broker, BrokerId(2));
    assert_eq!(
        again.partitions[0].current_leader_epoch,
        Some(LeaderEpoch(4))
    );
    assert_eq!(again.partitions[0].fetch_offset, Offset(0), "position kept");
    assert!(polled(&h).is_empty());
}

#[test]
fn not_leader_and_unknown_epoch_also_refresh_metadata() {
    for error in [
        KafkaError::NotLeaderOrFollower,
        KafkaError::UnknownLeaderEpoch,
    ] {
        let mut h = Harness::ready(&[1], 0);
        let fetch = h.take_fetch();
        h.answer_fetch(&fetch, vec![Err(error)]);
        h.tick(100);
        assert!(h.has_metadata_request(), "{error}");
    }
}

/// auto.offset.reset=earliest: an out-of-range position goes back to the log start, and
/// the history gets an Assign so the jump reads as a seek.
#[test]
fn offset_out_of_range_resets_to_the_log_start_and_records_an_assign() {
    let mut h = Harness::ready(&[1], 0);
    let fetch = h.take_fetch();
    h.answer_fetch(&fetch, vec![data(2, 12, batch(10, &["x", "y"]))]);
    assert_eq!(h.c.positions()[&tp(0)], Offset(12));
    let fetch = h.take_fetch();
    h.now = 5;
    // The leader's log was truncated below 12 (say, an unclean election).
    h.answer_fetch(&fetch, vec![Err(KafkaError::OffsetOutOfRange)]);
    assert_eq!(h.c.positions()[&tp(0)], Offset(2), "the log start offset");
    assert_eq!(
        h.history.last(),
        Some(&ConsumerAction::Assign {
            partitions: vec![(tp(0), 2)]
        })
    );
    h.tick(105);
    assert_eq!(h.take_fetch().partitions[0].fetch_offset, Offset(2));
}

#[test]
fn a_lost_connection_loses_the_fetch_and_it_is_sent_again() {
    let mut h = Harness::ready(&[1], 0);
    let fetch = h.take_fetch();
    let connection = h.connections.remove(&BrokerId(1)).unwrap();
    h.c.on_closed(connection, 1);
    h.pump();
    h.tick(1_000);
    let again = h.take_fetch();
    assert_ne!(again.connection, fetch.connection);
    assert_eq!(again.partitions[0].fetch_offset, Offset(0));
    // The answer to the lost fetch, if it ever came, is ignored.
    h.answer_fetch(&fetch, vec![data(0, 1, batch(0, &["a"]))]);
    assert!(polled(&h).is_empty());
}

#[test]
fn new_partitions_join_the_assignment() {
    let mut h = Harness::ready(&[1], 0);
    h.tick(300_000);
    assert!(h.has_metadata_request(), "metadata.max.age.ms");
    h.answer_metadata(&[1, 1], 0);
    assert_eq!(
        h.history.last(),
        Some(&ConsumerAction::Assign {
            partitions: vec![(tp(0), 0), (tp(1), 0)]
        })
    );
}

// --- subscribe mode ---

impl Harness {
    /// A member of group `billing` (manual commits, range) with metadata: partition p
    /// led by `leaders[p]`.
    fn member(leaders: &[u32], assignor: crate::client::assignor::Assignor) -> Harness {
        Harness::member_with(leaders, assignor, |_| {})
    }

    /// [`Harness::member`] with its group settings changed by `change`.
    fn member_with(
        leaders: &[u32],
        assignor: crate::client::assignor::Assignor,
        change: impl FnOnce(&mut GroupConfig),
    ) -> Harness {
        let config = ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]);
        Harness::member_of(config, leaders, assignor, change)
    }

    /// [`Harness::member_with`] with the consumer's own settings `config`.
    fn member_of(
        mut config: ConsumerConfig,
        leaders: &[u32],
        assignor: crate::client::assignor::Assignor,
        change: impl FnOnce(&mut GroupConfig),
    ) -> Harness {
        let mut group = GroupConfig::new("billing", "consumer-1");
        group.enable_auto_commit = false;
        group.assignor = assignor;
        group.session_timeout_ms = 10_000;
        change(&mut group);
        config.group = Some(group);
        let mut h = Harness {
            c: ConsumerCore::new(config),
            now: 0,
            connections: BTreeMap::new(),
            requests: Vec::new(),
            history: Vec::new(),
        };
        h.tick(0);
        h.answer_metadata(leaders, 0);
        h.tick(1);
        h
    }

    /// Removes the first request `pick` accepts; panics if there is none.
    fn take(
        &mut self,
        what: &str,
        pick: impl Fn(&RequestBody) -> bool,
    ) -> (ConnectionId, u64, RequestBody) {
        let at = self
            .requests
            .iter()
            .position(|(_, _, r)| pick(&r.body))
            .unwrap_or_else(|| panic!("no {what} among {:?}", self.requests));
        let (_, connection, request) = self.requests.remove(at);
        (connection, request.correlation_id, request.body)
    }

    /// Answers the fetch with two records of orders/0 (from 0) and takes the commit that
    /// follows (auto-commit is off).
    fn poll_two_and_take_commit(&mut self) -> (ConnectionId, u64) {
        let fetch = self.take_fetch();
        self.answer_fetch(
            &fetch,
            vec![data(0, 2, batch(0, &["a", "b"])), data(0, 0, vec![])],
        );
        let (c, id, _) = self.take("OffsetCommit", |b| {
            matches!(b, RequestBody::OffsetCommit(_))
        });
        (c, id)
    }

    fn group_history(&self) -> Vec<&ConsumerAction> {
        self.history
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    ConsumerAction::GroupAssign { .. } | ConsumerAction::Commit { .. }
                )
            })
            .collect()
    }

    /// Plays the coordinator (broker 2) through find, two joins and the sync; `committed`
    /// is what OffsetFetch finds. Returns the member id.
    fn join_alone(&mut self, committed: Option<u64>) -> String {
        self.join_alone_with(|_| {
            committed.map(|o| crate::broker::proto::CommittedOffset {
                offset: Offset(o),
                leader_epoch: None,
            })
        })
    }

    /// [`Harness::join_alone`] with `found(partition)` as what OffsetFetch finds.
    fn join_alone_with(
        &mut self,
        found: impl Fn(u32) -> Option<crate::broker::proto::CommittedOffset>,
    ) -> String {
        use crate::broker::proto::JoinGroupOk;
        use crate::client::assignor::{Assignment, Subscription};
        let (c, id, _) = self.take("FindCoordinator", |b| {
            matches!(b, RequestBody::FindCoordinator { .. })
        });
        self.respond(
            c,
            id,
            ResponseBody::FindCoordinator {
                result: Ok(BrokerId(2)),
            },
        );
        self.tick(2);
        let (c, id, _) = self.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
        self.respond(
            c,
            id,
            ResponseBody::JoinGroup {
                result: Err(KafkaError::MemberIdRequired),
                member_id: "m-1".into(),
            },
        );
        self.tick(3);
        let (c, id, body) = self.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
        let RequestBody::JoinGroup(join) = body else {
            unreachable!()
        };
        assert_eq!(
            join.member_id, "m-1",
            "the second join carries the id handed out"
        );
        let subscription = join.protocols[0].1.clone();
        assert_eq!(
            Subscription::decode(&subscription).unwrap().topics,
            vec![TOPIC.to_string()]
        );
        self.respond(
            c,
            id,
            ResponseBody::JoinGroup {
                result: Ok(JoinGroupOk {
                    generation_id: Generation(1),
                    protocol_name: join.protocols[0].0.clone(),
                    leader: "m-1".into(),
                    member_id: "m-1".into(),
                    members: vec![member("m-1", subscription)],
                }),
                member_id: "m-1".into(),
            },
        );
        let (c, id, body) = self.take("SyncGroup", |b| matches!(b, RequestBody::SyncGroup(_)));
        let RequestBody::SyncGroup(sync) = body else {
            unreachable!()
        };
        assert_eq!(sync.assignments.len(), 1, "the leader assigns");
        let mine = Assignment::decode(&sync.assignments[0].1).unwrap();
        assert_eq!(
            mine.partitions,
            vec![tp(0), tp(1)],
            "everything to the only member"
        );
        self.respond(
            c,
            id,
            ResponseBody::SyncGroup {
                result: Ok(sync.assignments[0].1.clone()),
            },
        );
        self.tick(4);
        let (c, id, _) = self.take("OffsetFetch", |b| {
            matches!(b, RequestBody::OffsetFetch { .. })
        });
        self.respond(
            c,
            id,
            ResponseBody::OffsetFetch {
                result: Ok(vec![(tp(0), found(0)), (tp(1), found(1))]),
            },
        );
        self.tick(5);
        "m-1".into()
    }
}

#[test]
fn a_member_joins_reads_from_its_committed_offsets_and_commits_what_it_polled() {
    let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
    h.join_alone(Some(3));
    let fetch = h.take_fetch();
    assert!(
        fetch.partitions.iter().all(|f| f.fetch_offset == Offset(3)),
        "from the committed offset"
    );
    let assigned: Vec<_> = h.group_history().into_iter().cloned().collect();
    assert!(matches!(
        assigned.last(),
        Some(ConsumerAction::GroupAssign { member, partitions, .. })
            if member.generation == Generation(1) && partitions == &vec![(tp(0), 3), (tp(1), 3)]
    ));
    h.answer_fetch(
        &fetch,
        vec![data(0, 5, batch(3, &["a", "b"])), data(0, 3, vec![])],
    );
    // Auto-commit is off: the poll is committed at once, as the next offset to read.
    let (c, id, body) = h.take("OffsetCommit", |b| {
        matches!(b, RequestBody::OffsetCommit(_))
    });
    let RequestBody::OffsetCommit(commit) = body else {
        unreachable!()
    };
    assert_eq!(commit.member.generation_id, Generation(1));
    assert_eq!(commit.offsets[0].0, tp(0));
    assert_eq!(commit.offsets[0].1.offset, Offset(5));
    h.respond(
        c,
        id,
        ResponseBody::OffsetCommit {
            partitions: vec![(tp(0), None)],
        },
    );
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::Commit { offsets, error: None, .. }) if offsets == &vec![(tp(0), 5)]
    ));
}

#[test]
fn an_eager_member_told_to_rejoin_commits_and_revokes_everything_first() {
    let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
    h.join_alone(None);
    let (c, id) = h.poll_two_and_take_commit();
    h.respond(
        c,
        id,
        ResponseBody::OffsetCommit {
            partitions: vec![(tp(0), None)],
        },
    );
    h.tick(3_100);
    let (c, id, _) = h.take("Heartbeat", |b| matches!(b, RequestBody::Heartbeat(_)));
    h.respond(
        c,
        id,
        ResponseBody::Heartbeat {
            error: Some(KafkaError::RebalanceInProgress),
        },
    );
    h.tick(3_200);
    // Everything is given up (recorded as an empty assignment) and the member rejoins
    // with its id.
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::GroupAssign { partitions, .. }) if partitions.is_empty()
    ));
    let (_, _, body) = h.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
    let RequestBody::JoinGroup(join) = body else {
        unreachable!()
    };
    assert_eq!(join.member_id, "m-1");
    assert!(
        h.c.positions().is_empty(),
        "nothing is read while rejoining"
    );
}

#[test]
fn a_member_told_it_is_unknown_loses_its_partitions_without_committing() {
    let mut h = Harness::member(
        &[1, 1],
        crate::client::assignor::Assignor::CooperativeSticky,
    );
    h.join_alone(Some(0));
    let (c, id) = h.poll_two_and_take_commit();
    // Its session expired meanwhile: the commit is refused.
    h.respond(
        c,
        id,
        ResponseBody::OffsetCommit {
            partitions: vec![(tp(0), Some(KafkaError::UnknownMemberId))],
        },
    );
    assert!(h.c.positions().is_empty());
    h.tick(200);
    let (_, _, body) = h.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
    let RequestBody::JoinGroup(join) = body else {
        unreachable!()
    };
    assert_eq!(join.member_id, "", "joins again as a new member");
    let commits: Vec<_> = h
        .group_history()
        .into_iter()
        .filter(|a| matches!(a, ConsumerAction::Commit { .. }))
        .cloned()
        .collect();
    assert_eq!(commits.len(), 1);
    assert!(matches!(
        &commits[0],
        ConsumerAction::Commit {
            error: Some(KafkaError::UnknownMemberId),
            ..
        }
    ));
}

#[test]
fn a_member_stalled_past_max_poll_interval_leaves_and_loses_its_partitions() {
    let mut h = Harness::member_with(&[1, 1], crate::client::assignor::Assignor::Range, |g| {
        g.max_poll_interval_ms = 5_000;
    });
    h.join_alone(Some(0));
    let commits_before = h
        .group_history()
        .iter()
        .filter(|a| matches!(a, ConsumerAction::Commit { .. }))
        .count();
    // The process stalls: its poll loop runs again 6 s later.
    h.tick(6_100);
    let (_, _, body) = h.take("LeaveGroup", |b| matches!(b, RequestBody::LeaveGroup(_)));
    let RequestBody::LeaveGroup(member) = body else {
        unreachable!()
    };
    assert_eq!(member.member_id, "m-1");
    assert!(h.c.positions().is_empty(), "its partitions are lost");
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::GroupAssign { partitions, .. }) if partitions.is_empty()
    ));
    let commits_after = h
        .group_history()
        .iter()
        .filter(|a| matches!(a, ConsumerAction::Commit { .. }))
        .count();
    assert_eq!(
        commits_before, commits_after,
        "lost, not revoked: no commit"
    );
    h.tick(6_200);
    let (_, _, body) = h.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
    let RequestBody::JoinGroup(join) = body else {
        unreachable!()
    };
    assert_eq!(join.member_id, "", "it joins again as a new member");
}

#[test]
fn committing_before_processing_processes_a_poll_only_when_its_commit_returns() {
    let mut h = Harness::member_with(&[1, 1], crate::client::assignor::Assignor::Range, |g| {
        g.legacy_commit_before_process = true;
    });
    h.join_alone(None);
    let (c, id) = h.poll_two_and_take_commit();
    assert!(
        polled(&h).is_empty(),
        "the commit goes before the records are processed"
    );
    h.respond(
        c,
        id,
        ResponseBody::OffsetCommit {
            partitions: vec![(tp(0), None)],
        },
    );
    assert_eq!(polled(&h), vec![(tp(0), records(&[(0, "a"), (1, "b")]))]);
}

/// The leader assigns what it knows of every member's topics, and rebalances when the
/// metadata of those topics changes (Kafka's assignment snapshot): here a topic only the
/// other member reads, unknown when assigned, turns up. (Found by swarm seed 36: a group
/// formed before its topics existed owned nothing for good.)
#[test]
fn the_leader_rebalances_when_the_groups_topics_change_after_it_assigned() {
    use crate::broker::proto::JoinGroupOk;
    use crate::client::assignor::{Assignment, Subscription};
    let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
    let (c, id, _) = h.take("FindCoordinator", |b| {
        matches!(b, RequestBody::FindCoordinator { .. })
    });
    let coordinator = ResponseBody::FindCoordinator {
        result: Ok(BrokerId(2)),
    };
    h.respond(c, id, coordinator);
    h.tick(2);
    let (c, id, body) = h.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
    let RequestBody::JoinGroup(join) = body else {
        unreachable!()
    };
    let other = Subscription {
        topics: vec![TOPIC.to_string(), "payments".to_string()],
        ..Subscription::default()
    };
    let joined = JoinGroupOk {
        generation_id: Generation(1),
        protocol_name: join.protocols[0].0.clone(),
        leader: "m-1".into(),
        member_id: "m-1".into(),
        members: vec![
            member("m-1", join.protocols[0].1.clone()),
            member("m-2", other.encode()),
        ],
    };
    h.respond(
        c,
        id,
        ResponseBody::JoinGroup {
            result: Ok(joined),
            member_id: "m-1".into(),
        },
    );
    let (c, id, body) = h.take("SyncGroup", |b| matches!(b, RequestBody::SyncGroup(_)));
    let RequestBody::SyncGroup(sync) = body else {
        unreachable!()
    };
    let assigned: Vec<TopicPartition> = sync
        .assignments
        .iter()
        .flat_map(|(_, bytes)| Assignment::decode(bytes).unwrap().partitions)
        .collect();
    assert_eq!(assigned.len(), 2, "only orders is known: {assigned:?}");
    let mine = sync.assignments[0].1.clone();
    h.respond(c, id, ResponseBody::SyncGroup { result: Ok(mine) });
    // After retry.backoff.ms the leader asks about the other member's topic too.
    h.tick(300);
    assert!(
        h.requests
            .iter()
            .all(|(_, _, r)| !matches!(r.body, RequestBody::JoinGroup(_))),
        "nothing changed yet"
    );
    // Now it exists.
    let at = h
        .requests
        .iter()
        .position(|(_, _, r)| {
            matches!(&r.body, RequestBody::Metadata { topics } if topics.contains(&"payments".to_string()))
        })
        .expect("a metadata request naming every member's topics");
    let (_, connection, request) = h.requests.remove(at);
    let mut partitions: Vec<_> = (0..2).map(|p| (tp(p), state(1, 0))).collect();
    partitions.push((TopicPartition::new("payments", 0), state(1, 0)));
    h.respond(
        connection,
        request.correlation_id,
        ResponseBody::Metadata {
            controller: None,
            brokers: vec![BrokerId(1), BrokerId(2)],
            partitions,
        },
    );
    h.tick(301);
    assert!(
        h.requests
            .iter()
            .any(|(_, _, r)| matches!(r.body, RequestBody::JoinGroup(_))),
        "the leader rejoins to assign payments/0: {:?}",
        h.requests
    );
}

/// A reader is caught up once the last fetch of every partition left it at the high
/// watermark: a reader of a topic nobody writes to has nothing to return, and that is an
/// answer too (the world's liveness phase counts it).
#[test]
fn a_reader_is_caught_up_when_every_partition_is_read_to_the_high_watermark() {
    let mut h = Harness::ready(&[1, 1], 0);
    assert!(!h.c.caught_up(), "nothing fetched yet");
    let fetch = h.take_fetch();
    h.answer_fetch(&fetch, vec![data(0, 0, vec![]), data(0, 2, vec![])]);
    assert!(!h.c.caught_up(), "orders/1 has two records to read");
    h.tick(10);
    let fetch = h.take_fetch();
    let results = fetch
        .partitions
        .iter()
        .map(|f| {
            if f.partition == tp(1) {
                data(0, 2, batch(0, &["a", "b"]))
            } else {
                data(0, 0, vec![])
            }
        })
        .collect();
    h.answer_fetch(&fetch, results);
    assert!(h.c.caught_up(), "both partitions read to their HW");
    // A lost fetch says nothing about where the HW is now.
    h.tick(20);
    let fetch = h.take_fetch();
    h.c.on_closed(fetch.connection, 21);
    assert!(!h.c.caught_up());
}

impl Harness {
    /// The OffsetCommit requests waiting, with their offsets of orders/0 and generation.
    fn commits_sent(&self) -> Vec<(Generation, Vec<(TopicPartition, u64)>)> {
        self.requests
            .iter()
            .filter_map(|(_, _, r)| match &r.body {
                RequestBody::OffsetCommit(c) => Some((
                    c.member.generation_id,
                    c.offsets.iter().map(|(tp, o)| (*tp, o.offset.0)).collect(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Plays a rebalance of the only member `m-1` into `generation`, keeping orders/0 and
    /// orders/1 (the member rejoins as leader and syncs its own assignment).
    fn rebalance_alone(&mut self, generation: i32) {
        use crate::broker::proto::JoinGroupOk;
        let (c, id, body) = self.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
        let RequestBody::JoinGroup(join) = body else {
            unreachable!()
        };
        self.respond(
            c,
            id,
            ResponseBody::JoinGroup {
                result: Ok(JoinGroupOk {
                    generation_id: Generation(generation),
                    protocol_name: join.protocols[0].0.clone(),
                    leader: "m-1".into(),
                    member_id: "m-1".into(),
                    members: vec![member("m-1", join.protocols[0].1.clone())],
                }),
                member_id: "m-1".into(),
            },
        );
        let (c, id, body) = self.take("SyncGroup", |b| matches!(b, RequestBody::SyncGroup(_)));
        let RequestBody::SyncGroup(sync) = body else {
            unreachable!()
        };
        let mine = sync.assignments[0].1.clone();
        self.respond(c, id, ResponseBody::SyncGroup { result: Ok(mine) });
    }
}

/// Manual commits (issue 12): a commit refused with REBALANCE_IN_PROGRESS is not fatal;
/// a cooperative member keeps its partitions through the rebalance, and what it read is
/// committed once it is Stable in the new generation. Before, it was never sent again and
/// the group stayed behind for good once the producers stopped.
#[test]
fn a_manual_commit_refused_during_a_rebalance_is_committed_in_the_next_generation() {
    let mut h = Harness::member(
        &[1, 1],
        crate::client::assignor::Assignor::CooperativeSticky,
    );
    h.join_alone(Some(0));
    let (c, id) = h.poll_two_and_take_commit();
    h.respond(
        c,
        id,
        ResponseBody::OffsetCommit {
            partitions: vec![(tp(0), Some(KafkaError::RebalanceInProgress))],
        },
    );
    assert_eq!(
        h.c.positions().len(),
        2,
        "cooperative: it keeps its partitions"
    );
    h.tick(10);
    // Still reading while it rejoins: orders/1 moves on too.
    let fetch = h.take_fetch();
    let results = fetch
        .partitions
        .iter()
        .map(|f| {
            if f.partition == tp(1) {
                data(0, 1, batch(0, &["x"]))
            } else {
                data(0, 2, vec![])
            }
        })
        .collect();
    h.answer_fetch(&fetch, results);
    assert!(h.commits_sent().is_empty(), "no commit while rebalancing");
    h.rebalance_alone(2);
    h.tick(200);
    assert_eq!(
        h.commits_sent(),
        vec![(Generation(2), vec![(tp(0), 2), (tp(1), 1)])],
        "both dirty partitions, in generation 2"
    );
}

/// A manual commit that is lost with its connection, or refused by a coordinator that
/// moved (NOT_COORDINATOR) or is loading, is sent again after `retry.backoff.ms`.
#[test]
fn a_lost_or_refused_manual_commit_is_sent_again() {
    for error in [
        None,
        Some(KafkaError::NotCoordinator),
        Some(KafkaError::CoordinatorLoadInProgress),
    ] {
        let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
        h.join_alone(Some(0));
        let (c, id) = h.poll_two_and_take_commit();
        match error {
            None => h.c.on_closed(c, h.now),
            Some(error) => h.respond(
                c,
                id,
                ResponseBody::OffsetCommit {
                    partitions: vec![(tp(0), Some(error))],
                },
            ),
        }
        h.pump();
        for t in [100, 200, 300, 400, 500] {
            h.tick(t);
            if let Some(at) = h
                .requests
                .iter()
                .position(|(_, _, r)| matches!(r.body, RequestBody::FindCoordinator { .. }))
            {
                let (_, c, r) = h.requests.remove(at);
                let found = ResponseBody::FindCoordinator {
                    result: Ok(BrokerId(2)),
                };
                h.respond(c, r.correlation_id, found);
            }
        }
        assert_eq!(
            h.commits_sent(),
            vec![(Generation(1), vec![(tp(0), 2)])],
            "after {error:?}"
        );
    }
}

/// A member fenced with ILLEGAL_GENERATION loses its partitions: what it read is not
/// its to commit any more.
#[test]
fn a_fenced_member_does_not_commit_its_dirty_partitions() {
    let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
    h.join_alone(Some(0));
    let (c, id) = h.poll_two_and_take_commit();
    h.respond(
        c,
        id,
        ResponseBody::OffsetCommit {
            partitions: vec![(tp(0), Some(KafkaError::IllegalGeneration))],
        },
    );
    for t in [100, 200, 300] {
        h.tick(t);
    }
    assert!(h.commits_sent().is_empty());
    assert!(h.c.positions().is_empty());
}

/// KIP-320: a commit carries the leader epoch of the last record read, and a member handed
/// a committed offset with an epoch its metadata has not reached asks for metadata again
/// before fetching, instead of fetching from the (deposed) leader it knows.
#[test]
fn commits_carry_the_leader_epoch_and_a_newer_committed_epoch_waits_for_its_leader() {
    let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
    h.join_alone(Some(0));
    let fetch = h.take_fetch();
    let mut builder = BatchBuilder::new(BatchMeta {
        leader_epoch: LeaderEpoch(4),
        ..BatchMeta::default()
    });
    builder.push(0, None, Some(b"a"), &[]);
    let in_epoch_4 = builder.encode(Offset(0)).to_vec();
    h.answer_fetch(&fetch, vec![data(0, 1, in_epoch_4), data(0, 0, vec![])]);
    let (_, _, body) = h.take("OffsetCommit", |b| {
        matches!(b, RequestBody::OffsetCommit(_))
    });
    let RequestBody::OffsetCommit(commit) = body else {
        unreachable!()
    };
    assert_eq!(commit.offsets[0].1.leader_epoch, Some(LeaderEpoch(4)));

    // A new member whose committed offset was read in epoch 7; its metadata says 0.
    let mut h = Harness::member(&[1, 1], crate::client::assignor::Assignor::Range);
    h.join_alone_with(|_| {
        Some(crate::broker::proto::CommittedOffset {
            offset: Offset(0),
            leader_epoch: Some(LeaderEpoch(7)),
        })
    });
    assert_eq!(h.fetches(), 0, "no fetch from a leader older than epoch 7");
    h.tick(200);
    assert!(h.has_metadata_request());
}

// --- a processor's consumer: offsets by transaction, rewind, pause ---

impl Harness {
    /// A member of group `billing` (range, eager) whose offsets go with its producer's
    /// transactions, reading `isolation` (a processor's consumer).
    fn processor_member(leaders: &[u32], isolation: IsolationLevel) -> Harness {
        let mut config = ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]);
        config.isolation_level = isolation;
        let mut group = GroupConfig::new("billing", "processor-1");
        group.enable_auto_commit = false;
        group.session_timeout_ms = 10_000;
        group.offsets_by_transaction = true;
        config.group = Some(group);
        let mut h = Harness {
            c: ConsumerCore::new(config),
            now: 0,
            connections: BTreeMap::new(),
            requests: Vec::new(),
            history: Vec::new(),
        };
        h.tick(0);
        h.answer_metadata(leaders, 0);
        h.tick(1);
        h
    }

    fn offset_commits(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, r)| matches!(r.body, RequestBody::OffsetCommit(_)))
            .count()
    }

    fn offset_fetches(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, r)| matches!(r.body, RequestBody::OffsetFetch { .. }))
            .count()
    }
}

#[test]
fn a_member_committing_by_transaction_never_sends_offset_commit_not_even_when_revoking() {
    let mut h = Harness::processor_member(&[1, 1], IsolationLevel::ReadUncommitted);
    h.join_alone(Some(3));
    let fetch = h.take_fetch();
    h.answer_fetch(
        &fetch,
        vec![data(0, 5, batch(3, &["a", "b"])), data(0, 3, vec![])],
    );
    assert_eq!(polled(&h), vec![(tp(0), records(&[(3, "a"), (4, "b")]))]);
    h.tick(1_000);
    assert_eq!(h.offset_commits(), 0, "no commit of what was polled");
    // Told to rejoin: an eager member revokes everything, without committing first.
    h.tick(3_100);
    let (c, id, _) = h.take("Heartbeat", |b| matches!(b, RequestBody::Heartbeat(_)));
    h.respond(
        c,
        id,
        ResponseBody::Heartbeat {
            error: Some(KafkaError::RebalanceInProgress),
        },
    );
    h.tick(3_200);
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::GroupAssign { partitions, .. }) if partitions.is_empty()
    ));
    h.take("JoinGroup", |b| matches!(b, RequestBody::JoinGroup(_)));
    assert_eq!(h.offset_commits(), 0, "no commit before revoking");
    assert!(
        !h.history
            .iter()
            .any(|a| matches!(a, ConsumerAction::Commit { .. })),
        "{:?}",
        h.history
    );
}

#[test]
fn group_metadata_committable_and_dirty_partitions_follow_the_positions() {
    use crate::broker::proto::MemberRef;
    let mut h = Harness::processor_member(&[1, 1], IsolationLevel::ReadCommitted);
    assert!(h.c.dirty_partitions().is_empty(), "nothing owned");
    h.join_alone(Some(3));
    assert_eq!(
        h.c.group_metadata(),
        Some(MemberRef {
            group_id: "billing".into(),
            generation_id: Generation(1),
            member_id: "m-1".into(),
            group_instance_id: None,
        })
    );
    assert!(
        h.c.dirty_partitions().is_empty(),
        "at their committed offsets"
    );
    let fetch = h.take_fetch();
    h.answer_fetch(
        &fetch,
        vec![data(0, 5, batch(3, &["a", "b"])), data(0, 3, vec![])],
    );
    assert_eq!(h.c.dirty_partitions(), BTreeSet::from([tp(0)]));
    // Only owned partitions, each at its position (the next offset to read).
    let asked = BTreeSet::from([tp(0), tp(1), tp(7)]);
    let offsets: Vec<(TopicPartition, Offset)> =
        h.c.committable(&asked)
            .into_iter()
            .map(|(tp, c)| (tp, c.offset))
            .collect();
    assert_eq!(offsets, vec![(tp(0), Offset(5)), (tp(1), Offset(3))]);
    let only_one: Vec<TopicPartition> =
        h.c.committable(&BTreeSet::from([tp(1)]))
            .into_iter()
            .map(|(tp, _)| tp)
            .collect();
    assert_eq!(only_one, vec![tp(1)]);
    // Committed by the application's transaction: clean again.
    h.c.note_committed(&[(tp(0), 4)]);
    assert_eq!(
        h.c.dirty_partitions(),
        BTreeSet::from([tp(0)]),
        "4 is not the position"
    );
    h.c.note_committed(&[(tp(0), 5)]);
    assert!(h.c.dirty_partitions().is_empty());
    assert_eq!(h.offset_commits(), 0);
}

#[test]
fn a_rewind_awaits_the_committed_offsets_again_and_a_paused_member_does_not_fetch() {
    let mut h = Harness::processor_member(&[1, 1], IsolationLevel::ReadCommitted);
    h.join_alone(Some(3));
    let fetch = h.take_fetch();
    assert_eq!(fetch.isolation_level, IsolationLevel::ReadCommitted);
    // Paused with records waiting for a transaction: the answer is taken, no new fetch.
    h.c.set_paused(true, h.now);
    h.answer_fetch(
        &fetch,
        vec![data(0, 5, batch(3, &["a", "b"])), data(0, 3, vec![])],
    );
    assert_eq!(polled(&h).len(), 1);
    h.tick(100);
    h.tick(600);
    assert_eq!(h.fetches(), 0, "paused");
    // The transaction aborted: back to the committed offsets, fetched again.
    let before = h.group_history().len();
    h.c.rewind_to_committed();
    h.pump();
    let assigned: Vec<_> = h.group_history().into_iter().cloned().collect();
    assert_eq!(assigned.len(), before + 1);
    assert!(
        matches!(
            assigned.last(),
            Some(ConsumerAction::GroupAssign { member, partitions, awaiting })
                if member.generation == Generation(1)
                    && partitions.is_empty()
                    && awaiting == &vec![tp(0), tp(1)]
        ),
        "{:?}",
        assigned.last()
    );
    assert!(h.c.positions().is_empty());
    assert_eq!(h.c.group_generation(), None, "positions unknown");
    h.c.set_paused(false, h.now);
    h.pump();
    h.tick(700);
    assert_eq!(h.fetches(), 0, "nothing to fetch from yet");
    let (c, id, body) = h.take("OffsetFetch", |b| {
        matches!(b, RequestBody::OffsetFetch { .. })
    });
    assert_eq!(
        body,
        RequestBody::OffsetFetch {
            group_id: "billing".into(),
            partitions: vec![tp(0), tp(1)],
            require_stable: true,
        },
        "KIP-447: a read_committed member waits for open transactions' offsets"
    );
    // A transaction of the group's offsets is still open: asked again after
    // retry.backoff.ms, the membership untouched.
    h.respond(
        c,
        id,
        ResponseBody::OffsetFetch {
            result: Err(KafkaError::UnstableOffsetCommit),
        },
    );
    h.tick(750);
    assert_eq!(h.offset_fetches(), 0, "backing off");
    assert!(
        !h.requests
            .iter()
            .any(|(_, _, r)| matches!(r.body, RequestBody::JoinGroup(_))),
        "no rejoin"
    );
    assert_eq!(h.group_history().len(), before + 1, "no new assignment");
    h.tick(800);
    let (c, id, _) = h.take("OffsetFetch", |b| {
        matches!(b, RequestBody::OffsetFetch { .. })
    });
    let committed = |o| {
        Some(crate::broker::proto::CommittedOffset {
            offset: Offset(o),
            leader_epoch: None,
        })
    };
    h.respond(
        c,
        id,
        ResponseBody::OffsetFetch {
            result: Ok(vec![(tp(0), committed(3)), (tp(1), committed(3))]),
        },
    );
    h.tick(801);
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::GroupAssign { partitions, awaiting, .. })
            if partitions == &vec![(tp(0), 3), (tp(1), 3)] && awaiting.is_empty()
    ));
    assert_eq!(h.c.group_generation(), Some(Generation(1)));
    let fetch = h.take_fetch();
    assert!(
        fetch.partitions.iter().all(|f| f.fetch_offset == Offset(3)),
        "read again from the committed offset"
    );
}

impl Harness {
    /// Takes the ListOffsets request: its connection, correlation id, isolation level and
    /// partitions.
    fn take_list_offsets(
        &mut self,
    ) -> (
        ConnectionId,
        u64,
        IsolationLevel,
        Vec<crate::broker::proto::ListOffsetsPartition>,
    ) {
        let (c, id, body) = self.take("ListOffsets", |b| {
            matches!(b, RequestBody::ListOffsets { .. })
        });
        let RequestBody::ListOffsets {
            isolation_level,
            partitions,
        } = body
        else {
            unreachable!()
        };
        (c, id, isolation_level, partitions)
    }

    fn answer_list_offsets(
        &mut self,
        connection: ConnectionId,
        correlation_id: u64,
        answers: Vec<(TopicPartition, Result<u64, KafkaError>)>,
    ) {
        let partitions = answers
            .into_iter()
            .map(|(tp, r)| {
                let listed = r.map(|offset| crate::broker::proto::ListedOffset {
                    offset: Offset(offset),
                    leader_epoch: LeaderEpoch(0),
                });
                (tp, listed)
            })
            .collect();
        self.respond(
            connection,
            correlation_id,
            ResponseBody::ListOffsets { partitions },
        );
    }
}

fn latest(mut config: ConsumerConfig) -> ConsumerConfig {
    config.auto_offset_reset = crate::broker::proto::OffsetSpec::Latest;
    config
}

/// auto.offset.reset=latest: an assign-mode reader asks each leader where its reads end,
/// fetches nothing before, and records the partition only once it has a position.
#[test]
fn latest_asks_list_offsets_and_reads_from_the_offset_named() {
    use crate::broker::proto::OffsetSpec;
    let config = latest(ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]));
    let mut h = Harness::ready_with(config, &[1], 3);
    assert_eq!(h.fetches(), 0, "no position, no fetch");
    assert!(h.history.is_empty(), "nothing assigned with a position yet");
    assert!(!h.c.caught_up());
    let (c, id, isolation, asked) = h.take_list_offsets();
    assert_eq!(isolation, IsolationLevel::ReadUncommitted);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].partition, tp(0));
    assert_eq!(asked[0].spec, OffsetSpec::Latest);
    assert_eq!(asked[0].current_leader_epoch, Some(LeaderEpoch(3)));
    // A new leader not ready yet: asked again after the backoff, metadata untouched.
    h.answer_list_offsets(c, id, vec![(tp(0), Err(KafkaError::OffsetNotAvailable))]);
    assert!(!h.has_metadata_request());
    h.tick(50);
    assert!(
        !h.requests
            .iter()
            .any(|(_, _, r)| matches!(r.body, RequestBody::ListOffsets { .. })),
        "not before retry.backoff.ms"
    );
    h.tick(100);
    let (c, id, _, _) = h.take_list_offsets();
    h.answer_list_offsets(c, id, vec![(tp(0), Ok(7))]);
    assert_eq!(
        h.history,
        vec![ConsumerAction::Assign {
            partitions: vec![(tp(0), 7)]
        }]
    );
    let fetch = h.take_fetch();
    assert_eq!(fetch.partitions[0].fetch_offset, Offset(7));
    h.answer_fetch(&fetch, vec![data(0, 8, batch(6, &["old", "new"]))]);
    assert_eq!(polled(&h), vec![(tp(0), records(&[(7, "new")]))]);
    assert!(h.c.caught_up());
}

/// Out of range with `latest`, or with `earliest` and no log start known: the position is
/// dropped until ListOffsets names one; a lost ListOffsets is sent again.
#[test]
fn out_of_range_without_a_known_start_asks_list_offsets() {
    use crate::broker::proto::OffsetSpec;
    let mut h = Harness::ready(&[1], 0);
    let fetch = h.take_fetch();
    h.answer_fetch(&fetch, vec![Err(KafkaError::OffsetOutOfRange)]);
    assert_eq!(
        h.history.last(),
        Some(&ConsumerAction::Assign { partitions: vec![] }),
        "the position is gone"
    );
    assert!(h.c.positions().is_empty());
    let (_, _, _, asked) = h.take_list_offsets();
    assert_eq!(asked[0].spec, OffsetSpec::Earliest);
    let connection = h.connections.remove(&BrokerId(1)).unwrap();
    h.c.on_closed(connection, 1);
    h.pump();
    h.tick(1_000);
    if h.has_metadata_request() {
        h.answer_metadata(&[1], 0);
    }
    h.tick(2_000);
    let (c, id, _, asked) = h.take_list_offsets();
    assert_eq!(asked[0].spec, OffsetSpec::Earliest, "asked again");
    h.answer_list_offsets(c, id, vec![(tp(0), Ok(4))]);
    assert_eq!(h.c.positions()[&tp(0)], Offset(4));
    assert_eq!(h.take_fetch().partitions[0].fetch_offset, Offset(4));

    // With latest, even a known log start is not where it goes.
    let config = latest(ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]));
    let mut h = Harness::ready_with(config, &[1], 0);
    let (c, id, _, _) = h.take_list_offsets();
    h.answer_list_offsets(c, id, vec![(tp(0), Ok(0))]);
    let fetch = h.take_fetch();
    h.answer_fetch(&fetch, vec![data(0, 2, batch(0, &["a", "b"]))]);
    let fetch = h.take_fetch();
    h.answer_fetch(&fetch, vec![Err(KafkaError::OffsetOutOfRange)]);
    let (_, _, _, asked) = h.take_list_offsets();
    assert_eq!(asked[0].spec, OffsetSpec::Latest);
}

/// A member with nothing committed and `latest` awaits ListOffsets for the partition (it
/// is listed as awaiting), takes no part in a generation until every position is known,
/// and drops a reset in flight when the partition is revoked.
#[test]
fn a_member_with_nothing_committed_resets_to_latest() {
    let config = latest(ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)]));
    let mut h = Harness::member_of(
        config,
        &[1, 1],
        crate::client::assignor::Assignor::Range,
        |_| {},
    );
    h.join_alone_with(|p| {
        (p == 1).then_some(crate::broker::proto::CommittedOffset {
            offset: Offset(3),
            leader_epoch: None,
        })
    });
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::GroupAssign { partitions, awaiting, .. })
            if partitions == &vec![(tp(1), 3)] && awaiting == &vec![tp(0)]
    ));
    assert_eq!(h.c.group_generation(), None, "a position is still unknown");
    let (c, id, _, asked) = h.take_list_offsets();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].partition, tp(0));
    h.answer_list_offsets(c, id, vec![(tp(0), Ok(9))]);
    assert!(matches!(
        h.group_history().last(),
        Some(ConsumerAction::GroupAssign { partitions, awaiting, .. })
            if partitions == &vec![(tp(0), 9), (tp(1), 3)] && awaiting.is_empty()
    ));
    assert_eq!(h.c.group_generation(), Some(Generation(1)));
}
