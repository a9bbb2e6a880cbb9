//! The consumer fed by hand: each test plays the brokers and asserts on fetches and on
//! what the history would record.

use super::*;
use crate::broker::proto::{FetchData, Request};
use crate::broker::{Bytes, PartitionState};
use crate::log::{BatchBuilder, BatchMeta, LeaderEpoch};

const TOPIC: &str = "orders";

fn state(leader: u32, epoch: i32) -> PartitionState {
    PartitionState {
        leader: Some(BrokerId(leader)),
        leader_epoch: LeaderEpoch(epoch),
        isr: vec![BrokerId(leader)],
        elr: vec![],
        controller_epoch: 1,
        partition_epoch: 0,
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
        let mut h = Harness {
            c: ConsumerCore::new(ConsumerConfig::new(vec![TOPIC.into()], vec![BrokerId(1)])),
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
        }
    }

    fn answer_fetch(&mut self, fetch: &Fetch, results: Vec<Result<FetchData, KafkaError>>) {
        let partitions = fetch
            .partitions
            .iter()
            .zip(results)
            .map(|(f, r)| (f.partition.clone(), r))
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
    })
}

fn polled(h: &Harness) -> Vec<(TopicPartition, Vec<(u64, String)>)> {
    h.history
        .iter()
        .filter_map(|a| match a {
            ConsumerAction::Poll { partition, records } => {
                Some((partition.clone(), records.clone()))
            }
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
