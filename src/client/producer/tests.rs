//! The producer fed by hand: every test plays the brokers' side and asserts on the
//! requests and completions the core emits.

use super::*;
use crate::broker::proto::{ProduceOk, Request};
use crate::broker::PartitionState;
use crate::log::{decode_batch, RecordBatch};
use rand::rngs::StdRng;
use rand::SeedableRng;

const TOPIC: &str = "orders";

fn state(leader: Option<u32>, epoch: i32) -> PartitionState {
    PartitionState {
        leader: leader.map(BrokerId),
        leader_epoch: LeaderEpoch(epoch),
        isr: leader.map(BrokerId).into_iter().collect(),
        elr: vec![],
        controller_epoch: crate::broker::ControllerEpoch(1),
        partition_epoch: crate::broker::PartitionEpoch(0),
        replicas: vec![],
    }
}

/// A Produce request the producer sent.
#[derive(Debug)]
struct Produce {
    broker: BrokerId,
    connection: ConnectionId,
    correlation_id: u64,
    acks: Acks,
    batches: Vec<(TopicPartition, RecordBatch)>,
}

impl Produce {
    fn values(&self) -> Vec<String> {
        self.batches
            .iter()
            .flat_map(|(_, b)| &b.records)
            .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
            .collect()
    }

    fn sequence(&self) -> i32 {
        self.batches[0].1.base_sequence
    }
}

/// The brokers' side of the conversation: connections open at once (unless told
/// otherwise), requests are collected for the test to answer.
struct Harness {
    p: ProducerCore,
    rng: StdRng,
    now: u64,
    auto_connect: bool,
    connections: BTreeMap<BrokerId, ConnectionId>,
    requests: Vec<(BrokerId, ConnectionId, Request)>,
    completed: Vec<(String, SendOutcome)>,
    /// `TxnBegin`, `TxnEnd` and `TxnEndReturn`, in order.
    txn: Vec<ProducerAction>,
}

impl Harness {
    fn new(config: ProducerConfig) -> Harness {
        Harness {
            p: ProducerCore::new(config),
            rng: StdRng::seed_from_u64(42),
            now: 0,
            auto_connect: true,
            connections: BTreeMap::new(),
            requests: Vec::new(),
            completed: Vec::new(),
            txn: Vec::new(),
        }
    }

    /// A producer with metadata (`leaders[p]` leads partition p, epoch 0) and, with
    /// idempotence, producer id 1000 epoch 0.
    fn ready(config: ProducerConfig, leaders: &[Option<u32>]) -> Harness {
        let idempotent = config.enable_idempotence;
        let mut h = Harness::new(config);
        h.tick(0);
        h.answer_metadata(leaders, 0);
        if idempotent {
            h.answer_init(1000);
        }
        h
    }

    fn pump(&mut self) {
        loop {
            let actions = self.p.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    ProducerAction::Net(NetAction::Connect { broker, connection }) => {
                        self.connections.insert(broker, connection);
                        if self.auto_connect {
                            self.p.on_connected(connection, self.now);
                        }
                    }
                    ProducerAction::Net(NetAction::Send {
                        broker,
                        connection,
                        request,
                    }) => self.requests.push((broker, connection, request)),
                    ProducerAction::Net(NetAction::Close { broker, .. }) => {
                        self.connections.remove(&broker);
                    }
                    ProducerAction::Completed { value, outcome } => {
                        self.completed.push((value.to_string(), outcome))
                    }
                    action @ (ProducerAction::TxnBegin { .. }
                    | ProducerAction::TxnEnd { .. }
                    | ProducerAction::TxnEndReturn { .. }) => self.txn.push(action),
                }
            }
        }
    }

    fn tick(&mut self, now: u64) {
        self.now = now;
        self.p.tick(now, &mut self.rng);
        self.pump();
    }

    fn send(&mut self, value: &str) {
        self.p.send(value.into(), None, self.now, &mut self.rng);
        self.pump();
    }

    fn send_keyed(&mut self, value: &str, key: &str) {
        self.p
            .send(value.into(), Some(key.into()), self.now, &mut self.rng);
        self.pump();
    }

    fn respond(&mut self, connection: ConnectionId, correlation_id: u64, body: ResponseBody) {
        self.p.on_response(
            connection,
            Response {
                correlation_id,
                body,
            },
            self.now,
            &mut self.rng,
        );
        self.pump();
    }

    /// Removes and returns the first unanswered request matching `pick`.
    fn take_request(
        &mut self,
        pick: impl Fn(&RequestBody) -> bool,
    ) -> Option<(BrokerId, ConnectionId, Request)> {
        let at = self.requests.iter().position(|(_, _, r)| pick(&r.body))?;
        Some(self.requests.remove(at))
    }

    fn answer_metadata(&mut self, leaders: &[Option<u32>], epoch: i32) {
        let (_, connection, request) = self
            .take_request(|b| matches!(b, RequestBody::Metadata { .. }))
            .expect("a metadata request");
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(p, l)| (TopicPartition::new(TOPIC, p as u32), state(*l, epoch)))
            .collect();
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::Metadata {
                controller: Some(BrokerId(1)),
                brokers: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                partitions,
            },
        );
    }

    fn answer_init(&mut self, producer_id: i64) {
        let (_, connection, request) = self
            .take_request(|b| matches!(b, RequestBody::InitProducerId))
            .expect("an InitProducerId request");
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::InitProducerId {
                result: Ok(ProducerIdentity {
                    producer_id: ProducerId(producer_id),
                    producer_epoch: 0,
                }),
            },
        );
    }

    fn has_metadata_request(&self) -> bool {
        self.requests
            .iter()
            .any(|(_, _, r)| matches!(r.body, RequestBody::Metadata { .. }))
    }

    fn inits(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, r)| matches!(r.body, RequestBody::InitProducerId))
            .count()
    }

    fn produces(&self) -> usize {
        self.requests
            .iter()
            .filter(|(_, _, r)| matches!(r.body, RequestBody::Produce { .. }))
            .count()
    }

    fn take_produce(&mut self) -> Produce {
        let (broker, connection, request) = self
            .take_request(|b| matches!(b, RequestBody::Produce { .. }))
            .expect("a produce request");
        let RequestBody::Produce {
            acks, partitions, ..
        } = request.body
        else {
            unreachable!()
        };
        let batches = partitions
            .into_iter()
            .map(|p| {
                let (batch, used) = decode_batch(&p.batch.0).expect("a valid v2 batch");
                assert_eq!(used, p.batch.0.len(), "one batch per partition");
                (p.partition, batch)
            })
            .collect();
        Produce {
            broker,
            connection,
            correlation_id: request.correlation_id,
            acks,
            batches,
        }
    }

    fn answer_produce(&mut self, produce: &Produce, results: Vec<Result<u64, KafkaError>>) {
        let partitions = produce
            .batches
            .iter()
            .zip(results)
            .map(|((tp, _), r)| {
                let r = r.map(|offset| ProduceOk {
                    base_offset: Offset(offset),
                    leader_epoch: LeaderEpoch(0),
                });
                (*tp, r)
            })
            .collect();
        self.respond(
            produce.connection,
            produce.correlation_id,
            ResponseBody::Produce { partitions },
        );
    }

    fn close(&mut self, broker: BrokerId) {
        let connection = self.connections.remove(&broker).expect("connected");
        self.p.on_closed(connection, self.now);
        self.pump();
    }
}

fn config() -> ProducerConfig {
    ProducerConfig::new(TOPIC, vec![BrokerId(1)])
}

fn tp(partition: u32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

fn ok(partition: u32, offset: u64) -> SendOutcome {
    SendOutcome::Ok {
        partition: tp(partition),
        offset,
    }
}

#[test]
fn kafka_3_defaults() {
    let c = config();
    assert_eq!(c.acks, Acks::All);
    assert!(c.enable_idempotence);
    assert_eq!(
        (
            c.batch_size,
            c.linger_ms,
            c.max_in_flight_requests_per_connection
        ),
        (16_384, 0, 5)
    );
    assert_eq!(c.retries, i32::MAX as u32);
    assert_eq!(
        (
            c.delivery_timeout_ms,
            c.request_timeout_ms,
            c.retry_backoff_ms
        ),
        (120_000, 30_000, 100)
    );
    assert!(c.validate().is_ok());
    let bad = ProducerConfig {
        acks: Acks::Leader,
        ..config()
    };
    assert!(bad.validate().unwrap_err().contains("acks=all"));
    let bad = ProducerConfig {
        max_in_flight_requests_per_connection: 6,
        ..config()
    };
    assert!(bad.validate().is_err());
}

#[test]
fn starts_with_metadata_and_a_producer_id_then_sends_with_sequence_zero() {
    let mut h = Harness::new(config());
    h.tick(0);
    assert!(h.has_metadata_request());
    h.send("v0");
    assert_eq!(h.produces(), 0, "no metadata yet: the record waits");
    h.answer_metadata(&[Some(1)], 0);
    assert_eq!(h.produces(), 0, "no producer id yet");
    h.answer_init(77);
    let produce = h.take_produce();
    assert_eq!(produce.broker, BrokerId(1));
    assert_eq!(produce.acks, Acks::All);
    let (partition, batch) = &produce.batches[0];
    assert_eq!(*partition, tp(0));
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, batch.base_sequence),
        (ProducerId(77), 0, 0)
    );
    assert_eq!(batch.partition_leader_epoch, LeaderEpoch::NONE);
    h.answer_produce(&produce, vec![Ok(5)]);
    assert_eq!(h.completed, vec![("v0".to_string(), ok(0, 5))]);
    assert_eq!(h.p.pending(), 0);
}

#[test]
fn a_batch_is_stamped_with_its_first_records_time_even_if_it_waited_for_metadata() {
    // Kafka's MemoryRecordsBuilder takes the first record's timestamp as the batch's base:
    // a record sent at 10 ms whose batch opens at 40 ms (when metadata came) has delta 0.
    let mut h = Harness::new(config());
    h.tick(0);
    h.now = 10;
    h.send("v0");
    h.tick(40);
    h.answer_metadata(&[Some(1)], 0);
    h.answer_init(77);
    let produce = h.take_produce();
    let (_, batch) = &produce.batches[0];
    assert_eq!(batch.base_timestamp_ms, 10);
    assert_eq!(batch.records[0].timestamp_ms, 10);
    assert_eq!(batch.max_timestamp_ms, 10);
}

#[test]
fn linger_holds_a_batch_until_it_expires_and_records_share_it() {
    let mut h = Harness::ready(
        ProducerConfig {
            linger_ms: 10,
            ..config()
        },
        &[Some(1)],
    );
    h.tick(100);
    h.send("a");
    h.tick(101);
    h.send("b");
    h.tick(105);
    h.send("c");
    h.tick(109);
    assert_eq!(
        h.produces(),
        0,
        "linger.ms has not passed for the first record"
    );
    h.tick(110);
    let produce = h.take_produce();
    assert_eq!(produce.values(), vec!["a", "b", "c"], "one batch, in order");
    h.answer_produce(&produce, vec![Ok(0)]);
    assert_eq!(
        h.completed,
        vec![
            ("a".to_string(), ok(0, 0)),
            ("b".to_string(), ok(0, 1)),
            ("c".to_string(), ok(0, 2)),
        ]
    );
}

#[test]
fn a_full_batch_goes_before_linger_and_a_new_one_opens() {
    let mut h = Harness::ready(
        ProducerConfig {
            linger_ms: 1_000,
            batch_size: 300,
            ..config()
        },
        &[Some(1)],
    );
    for i in 0..4 {
        h.send(&format!("record-{i}-{}", "x".repeat(80)));
    }
    let first = h.take_produce();
    let n = first.values().len();
    assert!((2..4).contains(&n), "a full batch of several records: {n}");
    assert!(first.batches[0].1.records.len() == n);
    assert_eq!(h.produces(), 0, "the open batch lingers");
    h.tick(1_000);
    let second = h.take_produce();
    assert_eq!(first.values().len() + second.values().len(), 4);
    assert_eq!(
        second.sequence(),
        n as i32,
        "sequences count records, not batches"
    );
}

#[test]
fn keyed_records_go_to_the_murmur2_partition() {
    let mut h = Harness::ready(config(), &[Some(1), Some(2), Some(3)]);
    h.send_keyed("v", "foobar");
    let produce = h.take_produce();
    let expected = super::super::partitioner::partition_for_key(b"foobar", 3);
    assert_eq!(produce.batches[0].0, tp(expected));
    assert_eq!(produce.broker, BrokerId(expected + 1));
    assert_eq!(
        produce.batches[0].1.records[0].key.as_deref(),
        Some(&b"foobar"[..])
    );
}

#[test]
fn idempotent_sequences_per_partition_and_at_most_five_in_flight() {
    let mut h = Harness::ready(config(), &[Some(1)]);
    for i in 0..6 {
        h.send(&format!("v{i}"));
    }
    assert_eq!(h.produces(), 5, "max.in.flight.requests.per.connection = 5");
    let produces: Vec<Produce> = (0..5).map(|_| h.take_produce()).collect();
    let sequences: Vec<i32> = produces.iter().map(Produce::sequence).collect();
    assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
    h.answer_produce(&produces[0], vec![Ok(0)]);
    let sixth = h.take_produce();
    assert_eq!(sixth.sequence(), 5);
    assert_eq!(sixth.values(), vec!["v5"]);
}

/// A connection lost with a batch in flight: nobody knows whether it was appended. The
/// idempotent producer resends it with the same producer id and sequence, so the broker
/// can recognise a duplicate; retries go oldest first.
#[test]
fn idempotent_retry_after_connection_loss_keeps_the_sequence() {
    let mut h = Harness::ready(config(), &[Some(1)]);
    h.send("a");
    h.send("b");
    let a = h.take_produce();
    let b = h.take_produce();
    assert_eq!((a.sequence(), b.sequence()), (0, 1));
    h.close(BrokerId(1));
    assert!(h.completed.is_empty(), "lost, not failed");
    h.tick(50);
    assert_eq!(h.produces(), 0, "retry.backoff.ms");
    h.tick(100);
    let a2 = h.take_produce();
    assert_eq!(a2.values(), vec!["a"]);
    assert_eq!(a2.sequence(), 0, "same sequence");
    assert_eq!(
        a2.batches[0].1.producer_id,
        ProducerId(1000),
        "same producer id"
    );
    assert_eq!(h.produces(), 0, "b waits until a, the oldest, is answered");
    h.answer_produce(&a2, vec![Ok(0)]);
    let b2 = h.take_produce();
    assert_eq!((b2.values(), b2.sequence()), (vec!["b".to_string()], 1));
    h.answer_produce(&b2, vec![Ok(1)]);
    assert_eq!(
        h.completed,
        vec![("a".to_string(), ok(0, 0)), ("b".to_string(), ok(0, 1))]
    );
}

/// Without idempotence a resent batch is a new write: if the first copy was appended
/// before the connection broke, the record is now in the log twice (the bug-zoo case).
#[test]
fn without_idempotence_a_lost_batch_is_resent_as_a_new_write() {
    let mut h = Harness::ready(
        ProducerConfig {
            enable_idempotence: false,
            acks: Acks::Leader,
            ..config()
        },
        &[Some(1)],
    );
    assert!(
        !h.requests
            .iter()
            .any(|(_, _, r)| r.body == RequestBody::InitProducerId),
        "no producer id without idempotence"
    );
    h.send("a");
    let first = h.take_produce();
    let batch = &first.batches[0].1;
    assert_eq!(
        (batch.producer_id, batch.base_sequence),
        (ProducerId::NONE, -1),
        "nothing to deduplicate by"
    );
    h.close(BrokerId(1));
    h.tick(100);
    let second = h.take_produce();
    assert_eq!(second.values(), vec!["a"]);
    assert_eq!(second.batches[0].1.base_sequence, -1);
    assert_eq!(second.acks, Acks::Leader);
    h.answer_produce(&second, vec![Ok(1)]);
    assert_eq!(
        h.completed,
        vec![("a".to_string(), ok(0, 1))],
        "one completion"
    );
}

/// Without idempotence and with several requests in flight, a retried batch lands after
/// a later one: the records of one producer end up out of send order.
#[test]
fn without_idempotence_retries_can_reorder() {
    let mut h = Harness::ready(
        ProducerConfig {
            enable_idempotence: false,
            ..config()
        },
        &[Some(1)],
    );
    h.send("first");
    h.send("second");
    let first = h.take_produce();
    let second = h.take_produce();
    h.answer_produce(&first, vec![Err(KafkaError::NotEnoughReplicas)]);
    h.answer_produce(&second, vec![Ok(0)]);
    h.tick(100);
    let retry = h.take_produce();
    assert_eq!(retry.values(), vec!["first"]);
    h.answer_produce(&retry, vec![Ok(1)]);
    assert_eq!(
        h.completed,
        vec![
            ("second".to_string(), ok(0, 0)),
            ("first".to_string(), ok(0, 1))
        ]
    );
}

#[test]
fn not_leader_refreshes_metadata_and_resends_to_the_new_leader() {
    let mut h = Harness::ready(config(), &[Some(1), Some(1)]);
    h.send_keyed("v", "21");
    let produce = h.take_produce();
    let partition = produce.batches[0].0.partition;
    h.now = 10;
    h.answer_produce(&produce, vec![Err(KafkaError::NotLeaderOrFollower)]);
    assert!(h.completed.is_empty(), "retriable");
    h.tick(100);
    assert!(h.has_metadata_request(), "stale leadership: ask again");
    assert_eq!(h.produces(), 0, "the old leader is not asked again blindly");
    h.answer_metadata(&[Some(2), Some(2)], 1);
    h.tick(110);
    let resent = h.take_produce();
    assert_eq!(resent.broker, BrokerId(2), "the new leader");
    assert_eq!(resent.sequence(), 0, "same sequence");
    h.answer_produce(&resent, vec![Ok(9)]);
    assert_eq!(h.completed, vec![("v".to_string(), ok(partition, 9))]);
}

#[test]
fn a_partition_without_leader_fails_its_sends_after_delivery_timeout() {
    let mut h = Harness::ready(
        ProducerConfig {
            request_timeout_ms: 500,
            delivery_timeout_ms: 1_000,
            ..config()
        },
        &[None],
    );
    h.send("v");
    h.tick(999);
    assert!(h.completed.is_empty());
    assert_eq!(h.produces(), 0);
    h.tick(1_000);
    assert_eq!(
        h.completed,
        vec![(
            "v".to_string(),
            SendOutcome::Fail {
                partition: Some(tp(0)),
                error: KafkaError::RequestTimedOut
            }
        )]
    );
}

#[test]
fn retries_stop_at_delivery_timeout_with_the_last_error() {
    let mut h = Harness::ready(
        ProducerConfig {
            request_timeout_ms: 500,
            delivery_timeout_ms: 1_000,
            ..config()
        },
        &[Some(1)],
    );
    h.send("v");
    let mut now = 0;
    while h.completed.is_empty() {
        if h.produces() > 0 {
            let produce = h.take_produce();
            assert_eq!(produce.sequence(), 0);
            h.answer_produce(&produce, vec![Err(KafkaError::NotEnoughReplicas)]);
        }
        now += 100;
        assert!(now <= 1_000, "must fail by delivery.timeout.ms");
        h.tick(now);
    }
    assert_eq!(
        h.completed,
        vec![(
            "v".to_string(),
            SendOutcome::Fail {
                partition: Some(tp(0)),
                error: KafkaError::NotEnoughReplicas
            }
        )]
    );
}

#[test]
fn a_non_retriable_error_fails_at_once() {
    let mut h = Harness::ready(config(), &[Some(1)]);
    h.send("v");
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Err(KafkaError::InvalidProducerEpoch)]);
    assert_eq!(
        h.completed,
        vec![(
            "v".to_string(),
            SendOutcome::Fail {
                partition: Some(tp(0)),
                error: KafkaError::InvalidProducerEpoch
            }
        )]
    );
}

#[test]
fn request_timeout_closes_the_connection_and_retries_the_batch() {
    let mut h = Harness::ready(config(), &[Some(1)]);
    h.send("v");
    let lost = h.take_produce();
    h.tick(30_000);
    assert!(
        !h.connections.contains_key(&BrokerId(1)),
        "closed after request.timeout.ms"
    );
    h.tick(30_200);
    let resent = h.take_produce();
    assert_ne!(resent.connection, lost.connection, "on a new connection");
    assert_eq!(resent.sequence(), 0);
    h.answer_produce(&resent, vec![Ok(0)]);
    assert_eq!(h.completed, vec![("v".to_string(), ok(0, 0))]);
}

#[test]
fn acks_zero_completes_as_sent_once_written() {
    let mut h = Harness::ready(
        ProducerConfig {
            acks: Acks::None,
            enable_idempotence: false,
            ..config()
        },
        &[Some(1)],
    );
    h.send("v");
    let produce = h.take_produce();
    assert_eq!(produce.acks, Acks::None);
    assert_eq!(
        h.completed,
        vec![("v".to_string(), SendOutcome::Sent { partition: tp(0) })]
    );
    assert_eq!(h.p.net.in_flight(BrokerId(1)), 0, "no answer awaited");
}

/// A later batch answered OUT_OF_ORDER_SEQUENCE_NUMBER because an earlier one failed:
/// it is retried after the earlier one, not failed.
#[test]
fn out_of_order_behind_a_failed_batch_is_retried_in_sequence_order() {
    let mut h = Harness::ready(config(), &[Some(1)]);
    h.send("a");
    h.send("b");
    let a = h.take_produce();
    let b = h.take_produce();
    h.answer_produce(&a, vec![Err(KafkaError::NotLeaderOrFollower)]);
    h.answer_produce(&b, vec![Err(KafkaError::OutOfOrderSequenceNumber)]);
    assert!(h.completed.is_empty());
    h.tick(100);
    if h.has_metadata_request() {
        h.answer_metadata(&[Some(1)], 0);
    }
    let a2 = h.take_produce();
    assert_eq!((a2.values(), a2.sequence()), (vec!["a".to_string()], 0));
    assert_eq!(h.produces(), 0, "b waits for a");
    h.answer_produce(&a2, vec![Ok(0)]);
    let b2 = h.take_produce();
    assert_eq!((b2.values(), b2.sequence()), (vec!["b".to_string()], 1));
    h.answer_produce(&b2, vec![Ok(1)]);
    assert_eq!(
        h.completed,
        vec![("a".to_string(), ok(0, 0)), ("b".to_string(), ok(0, 1))]
    );
}

/// OUT_OF_ORDER_SEQUENCE_NUMBER for the oldest unacknowledged batch: the broker lost the
/// producer's state. The batch fails; the producer bumps its epoch (KIP-360) and starts
/// over at sequence 0 under the same id.
#[test]
fn out_of_order_at_the_head_fails_the_batch_and_bumps_the_producer_epoch() {
    let mut h = Harness::ready(
        ProducerConfig {
            linger_ms: 5,
            ..config()
        },
        &[Some(1)],
    );
    h.send("a");
    h.tick(5);
    let a = h.take_produce();
    h.send("b");
    h.answer_produce(&a, vec![Err(KafkaError::OutOfOrderSequenceNumber)]);
    assert_eq!(
        h.completed,
        vec![(
            "a".to_string(),
            SendOutcome::Fail {
                partition: Some(tp(0)),
                error: KafkaError::OutOfOrderSequenceNumber
            }
        )]
    );
    h.tick(10);
    assert_eq!(
        h.inits(),
        0,
        "the epoch is bumped locally, no new producer id"
    );
    let b = h.take_produce();
    assert_eq!(b.values(), vec!["b"]);
    let batch = &b.batches[0].1;
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, b.sequence()),
        (ProducerId(1000), 1, 0)
    );
}

/// A reset while another batch is in doubt (sent under the old producer epoch, its answer
/// lost): under a new epoch the broker could not recognise it as a retry, so it fails with
/// its last error instead of being sent again; only batches never sent are renumbered.
#[test]
fn a_reset_fails_batches_sent_under_the_old_producer_epoch() {
    let mut h = Harness::ready(config(), &[Some(1), Some(2)]);
    // A key for each partition.
    let key_for = |partition| {
        (0..)
            .map(|i| format!("k{i}"))
            .find(|k| super::super::partitioner::partition_for_key(k.as_bytes(), 2) == partition)
            .unwrap()
    };
    let (k0, k1) = (key_for(0), key_for(1));
    h.send_keyed("a", &k0);
    h.send_keyed("b", &k1);
    let first = h.take_produce();
    let second = h.take_produce();
    let (on_1, on_2) = if first.broker == BrokerId(1) {
        (first, second)
    } else {
        (second, first)
    };
    assert_ne!(on_1.batches[0].0, on_2.batches[0].0, "two partitions");
    let doubtful = on_2.values()[0].clone();
    // The batch on broker 2 is lost with its connection (maybe appended); the one on
    // broker 1 is rejected at the head of its partition: reset pending.
    h.close(BrokerId(2));
    h.answer_produce(&on_1, vec![Err(KafkaError::OutOfOrderSequenceNumber)]);
    h.tick(100);
    let failed: Vec<&String> = h.completed.iter().map(|(v, _)| v).collect();
    assert!(failed.contains(&&doubtful), "{:?}", h.completed);
    assert!(h
        .completed
        .iter()
        .all(|(_, o)| matches!(o, SendOutcome::Fail { .. })));
    assert_eq!(h.completed.len(), 2);
    // A record sent after the reset goes out under the bumped epoch, from sequence 0.
    h.send_keyed("c", &k0);
    h.tick(200);
    let c = h.take_produce();
    assert_eq!(c.values(), vec!["c"]);
    let batch = &c.batches[0].1;
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, c.sequence()),
        (ProducerId(1000), 1, 0)
    );
}

#[test]
fn sends_without_metadata_fail_after_max_block() {
    let mut h = Harness::new(ProducerConfig {
        max_block_ms: 1_000,
        ..config()
    });
    h.auto_connect = false;
    h.tick(0);
    h.send("v");
    h.tick(999);
    assert!(h.completed.is_empty());
    h.tick(1_000);
    assert_eq!(
        h.completed,
        vec![(
            "v".to_string(),
            SendOutcome::Fail {
                partition: None,
                error: KafkaError::RequestTimedOut
            }
        )]
    );
}

/// Kafka expires a batch in flight at delivery.timeout.ms; the answer that comes later
/// must not complete its records a second time.
#[test]
fn a_late_answer_to_an_expired_batch_is_ignored() {
    let mut h = Harness::ready(
        ProducerConfig {
            request_timeout_ms: 900,
            delivery_timeout_ms: 1_000,
            ..config()
        },
        &[Some(1)],
    );
    h.send("v");
    let first = h.take_produce();
    h.now = 100;
    h.answer_produce(&first, vec![Err(KafkaError::NotEnoughReplicas)]);
    h.tick(200);
    let second = h.take_produce();
    h.tick(999);
    assert!(h.completed.is_empty());
    h.tick(1_000);
    assert_eq!(
        h.completed,
        vec![(
            "v".to_string(),
            SendOutcome::Fail {
                partition: Some(tp(0)),
                error: KafkaError::NotEnoughReplicas
            }
        )],
        "expired in flight, with the last error seen"
    );
    assert!(
        h.connections.contains_key(&BrokerId(1)),
        "no request timeout yet"
    );
    h.answer_produce(&second, vec![Ok(3)]);
    assert_eq!(h.completed.len(), 1, "exactly one completion");
}

#[test]
fn round_robin_spreads_keyless_records_over_available_partitions() {
    let mut h = Harness::ready(
        ProducerConfig {
            partitioner: PartitionerKind::RoundRobin,
            enable_idempotence: false,
            ..config()
        },
        &[Some(1), None, Some(1)],
    );
    h.send("a");
    h.send("b");
    h.send("c");
    let partitions: Vec<u32> = (0..3)
        .map(|_| h.take_produce().batches[0].0.partition)
        .collect();
    assert_eq!(partitions, vec![0, 2, 0], "partition 1 has no leader");
}

/// Seeded chaos: brokers answer at random (success, retriable and fatal errors, closed
/// connections, silence until the request times out, leaders moving), then heal. Whatever
/// happens, every send completes exactly once, and with idempotence one (producer id,
/// partition, base sequence) never names two different batches — the broker's
/// deduplication relies on it.
#[test]
fn chaos_every_send_completes_exactly_once_and_sequences_are_never_reused() {
    use rand::seq::SliceRandom;
    for (seed, idempotent) in (0..24u64).map(|s| (s, s % 2 == 0)) {
        let mut chaos = StdRng::seed_from_u64(seed);
        let config = ProducerConfig {
            enable_idempotence: idempotent,
            linger_ms: seed % 3,
            batch_size: 400,
            request_timeout_ms: 2_000,
            delivery_timeout_ms: 5_000,
            ..config()
        };
        let mut h = Harness::ready(config, &[Some(1), Some(2), Some(3)]);
        let mut sent = 0u64;
        let mut next_offset = [0u64; 3];
        let mut epoch = 0;
        let mut next_id = 2000;
        let mut seen: BTreeMap<(ProducerId, i16, u32, i32), Vec<String>> = BTreeMap::new();
        let errors = [
            KafkaError::NotLeaderOrFollower,
            KafkaError::NotEnoughReplicas,
            KafkaError::RequestTimedOut,
            KafkaError::OutOfOrderSequenceNumber,
            KafkaError::UnknownProducerId,
            KafkaError::InvalidProducerEpoch,
        ];
        for step in 0..400 {
            let healing = step >= 300;
            let now = h.now + chaos.gen_range(0..60);
            h.tick(now);
            if !healing && chaos.gen_bool(0.5) {
                h.send(&format!("v{sent}"));
                sent += 1;
            }
            if h.requests.is_empty() {
                continue;
            }
            let at = chaos.gen_range(0..h.requests.len());
            let (broker, connection, request) = h.requests.remove(at);
            let roll = if healing { 0.0 } else { chaos.gen::<f64>() };
            if roll > 0.9 {
                // Silence: the request is never answered (request.timeout.ms will fire).
                continue;
            }
            if roll > 0.8 {
                if h.connections.get(&broker) == Some(&connection) {
                    h.close(broker);
                }
                continue;
            }
            match request.body {
                RequestBody::Metadata { .. } => {
                    if roll > 0.5 {
                        epoch += 1;
                    }
                    let mut leaders = [1, 2, 3];
                    leaders.shuffle(&mut chaos);
                    let partitions = (0..3)
                        .map(|p| (tp(p), state(Some(leaders[p as usize]), epoch)))
                        .collect();
                    let body = ResponseBody::Metadata {
                        controller: None,
                        brokers: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                        partitions,
                    };
                    h.respond(connection, request.correlation_id, body);
                }
                RequestBody::InitProducerId => {
                    next_id += 1;
                    let result = Ok(ProducerIdentity {
                        producer_id: ProducerId(next_id),
                        producer_epoch: 0,
                    });
                    h.respond(
                        connection,
                        request.correlation_id,
                        ResponseBody::InitProducerId { result },
                    );
                }
                RequestBody::Produce { partitions, .. } => {
                    let mut results = Vec::new();
                    for p in partitions {
                        let (batch, _) = decode_batch(&p.batch.0).unwrap();
                        let values: Vec<String> = batch
                            .records
                            .iter()
                            .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                            .collect();
                        if idempotent {
                            let key = (
                                batch.producer_id,
                                batch.producer_epoch,
                                p.partition.partition,
                                batch.base_sequence,
                            );
                            assert!(batch.producer_id.0 > 0 && batch.base_sequence >= 0);
                            let known = seen.entry(key).or_insert_with(|| values.clone());
                            assert_eq!(*known, values, "seed {seed}: a sequence reused");
                        }
                        let result = if roll < 0.55 {
                            let i = p.partition.partition as usize;
                            let base = next_offset[i];
                            next_offset[i] += values.len() as u64;
                            Ok(ProduceOk {
                                base_offset: Offset(base),
                                leader_epoch: LeaderEpoch(epoch),
                            })
                        } else {
                            Err(*errors.choose(&mut chaos).unwrap())
                        };
                        results.push((p.partition, result));
                    }
                    h.respond(
                        connection,
                        request.correlation_id,
                        ResponseBody::Produce {
                            partitions: results,
                        },
                    );
                }
                other => panic!("unexpected request {other:?}"),
            }
        }
        // Heal until everything completed (delivery.timeout.ms bounds it).
        let deadline = h.now + 20_000;
        while h.p.pending() > 0 {
            assert!(h.now < deadline, "seed {seed}: sends never completed");
            let now = h.now + 10;
            h.tick(now);
            while let Some((_, connection, request)) = h.requests.pop() {
                let body = match request.body {
                    RequestBody::Metadata { .. } => ResponseBody::Metadata {
                        controller: None,
                        brokers: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                        partitions: (0..3).map(|p| (tp(p), state(Some(p + 1), epoch))).collect(),
                    },
                    RequestBody::InitProducerId => {
                        next_id += 1;
                        ResponseBody::InitProducerId {
                            result: Ok(ProducerIdentity {
                                producer_id: ProducerId(next_id),
                                producer_epoch: 0,
                            }),
                        }
                    }
                    RequestBody::Produce { partitions, .. } => ResponseBody::Produce {
                        partitions: partitions
                            .into_iter()
                            .map(|p| {
                                let (batch, _) = decode_batch(&p.batch.0).unwrap();
                                let i = p.partition.partition as usize;
                                let base = next_offset[i];
                                next_offset[i] += batch.records.len() as u64;
                                let ok = ProduceOk {
                                    base_offset: Offset(base),
                                    leader_epoch: LeaderEpoch(epoch),
                                };
                                (p.partition, Ok(ok))
                            })
                            .collect(),
                    },
                    other => panic!("unexpected request {other:?}"),
                };
                h.respond(connection, request.correlation_id, body);
            }
        }
        let mut completions: BTreeMap<&str, usize> = BTreeMap::new();
        for (value, _) in &h.completed {
            *completions.entry(value.as_str()).or_default() += 1;
        }
        assert_eq!(
            completions.len() as u64,
            sent,
            "seed {seed}: every send completed"
        );
        assert!(
            completions.values().all(|n| *n == 1),
            "seed {seed}: exactly once"
        );
        assert!(
            h.completed
                .iter()
                .any(|(_, o)| matches!(o, SendOutcome::Ok { .. })),
            "seed {seed}: some succeed"
        );
    }
}

mod txn;
