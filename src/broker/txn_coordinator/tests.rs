//! The transaction coordinator core driven by hand: requests in, answers, appends and
//! markers out. Each test names the Kafka rule it checks.

use super::*;

const T: &str = "payments";
const TIMEOUT: i64 = 60_000;

fn config(tv2: bool) -> TxnCoordinatorConfig {
    TxnCoordinatorConfig {
        transaction_state_partitions: 1,
        transaction_version_2: tv2,
        ..TxnCoordinatorConfig::default()
    }
}

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn pid(producer_id: i64, producer_epoch: i16) -> ProducerIdentity {
    ProducerIdentity {
        producer_id: ProducerId(producer_id),
        producer_epoch,
    }
}

/// A coordinator of `__transaction_state` partition 0 (coordinator epoch 1), loaded and
/// empty; appends and markers are answered by hand.
struct Coord {
    c: TransactionCoordinator,
    answers: BTreeMap<u64, TxnResponse>,
    /// Appends not answered yet, oldest first.
    appends: Vec<(u64, Vec<TxnRecord>)>,
    /// Every record written (answered Ok), in order.
    written: Vec<TxnRecord>,
    markers: Vec<TxnMarkers>,
    events: Vec<TxnCoordinatorEvent>,
    next_token: u64,
    next_pid: i64,
    now: u64,
    /// The coordinator epoch appends are expected in.
    leader_epoch: LeaderEpoch,
}

impl Coord {
    fn new(tv2: bool) -> Coord {
        let mut coord = Coord::unloaded(tv2);
        coord.c.on_become_leader(0, LeaderEpoch(1));
        coord.c.on_loaded(0, LeaderEpoch(1), Vec::new(), 0);
        coord.drain();
        coord
    }

    fn unloaded(tv2: bool) -> Coord {
        Coord {
            c: TransactionCoordinator::new(config(tv2)),
            answers: BTreeMap::new(),
            appends: Vec::new(),
            written: Vec::new(),
            markers: Vec::new(),
            events: Vec::new(),
            next_token: 1,
            next_pid: 1000,
            now: 0,
            leader_epoch: LeaderEpoch(1),
        }
    }

    fn drain(&mut self) {
        for action in self.c.take_actions() {
            match action {
                TxnCoordinatorAction::Respond { token, body } => {
                    let previous = self.answers.insert(token, body);
                    assert!(previous.is_none(), "token {token} answered twice");
                }
                TxnCoordinatorAction::Append {
                    id,
                    partition,
                    leader_epoch,
                    records,
                } => {
                    assert_eq!((partition, leader_epoch), (0, self.leader_epoch));
                    self.appends.push((id, records));
                }
                TxnCoordinatorAction::WriteTxnMarkers(m) => self.markers.push(m),
                TxnCoordinatorAction::Announce(e) => self.events.push(e),
            }
        }
    }

    fn send(&mut self, request: TxnRequest) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        let mut next_pid = self.next_pid;
        let mut alloc = || {
            next_pid += 1;
            ProducerId(next_pid)
        };
        self.c.on_request(token, request, self.now, &mut alloc);
        self.next_pid = next_pid;
        self.drain();
        token
    }

    /// Answers the oldest append.
    fn ack(&mut self, result: Result<(), KafkaError>) -> Vec<TxnRecord> {
        assert!(!self.appends.is_empty(), "no append to answer");
        let (id, records) = self.appends.remove(0);
        if result.is_ok() {
            self.written.extend(records.iter().cloned());
        }
        self.c.on_append_done(id, result, self.now);
        self.drain();
        records
    }

    fn take(&mut self, token: u64) -> TxnResponse {
        self.answers
            .remove(&token)
            .unwrap_or_else(|| panic!("token {token} not answered"))
    }

    fn unanswered(&self, token: u64) -> bool {
        !self.answers.contains_key(&token)
    }

    fn init_request(id: &str, expected: Option<ProducerIdentity>) -> TxnRequest {
        TxnRequest::InitProducerId(InitProducerIdRequest {
            transactional_id: id.into(),
            transaction_timeout_ms: TIMEOUT,
            producer_id_and_epoch: expected,
        })
    }

    /// InitProducerId answered (its write acked when one is made).
    fn init(&mut self, id: &str) -> Result<ProducerIdentity, KafkaError> {
        let token = self.send(Coord::init_request(id, None));
        if self.unanswered(token) {
            self.ack(Ok(()));
        }
        match self.take(token) {
            TxnResponse::InitProducerId(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn add_request(id: &str, p: ProducerIdentity, parts: &[TopicPartition]) -> TxnRequest {
        TxnRequest::AddPartitionsToTxn {
            transactional_id: id.into(),
            producer: p,
            partitions: parts.to_vec(),
        }
    }

    fn add(
        &mut self,
        id: &str,
        p: ProducerIdentity,
        parts: &[TopicPartition],
    ) -> Result<(), KafkaError> {
        let token = self.send(Coord::add_request(id, p, parts));
        if self.unanswered(token) {
            self.ack(Ok(()));
        }
        match self.take(token) {
            TxnResponse::AddPartitionsToTxn(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn end_request(id: &str, p: ProducerIdentity, result: TransactionResult) -> TxnRequest {
        TxnRequest::EndTxn {
            transactional_id: id.into(),
            producer: p,
            result,
        }
    }

    fn end(
        &mut self,
        id: &str,
        p: ProducerIdentity,
        result: TransactionResult,
    ) -> Result<ProducerIdentity, KafkaError> {
        let token = self.send(Coord::end_request(id, p, result));
        if self.unanswered(token) {
            self.ack(Ok(()));
        }
        match self.take(token) {
            TxnResponse::EndTxn(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Every marker sent so far answered Ok, and the completions they lead to acked.
    fn markers_ok(&mut self) {
        for m in std::mem::take(&mut self.markers) {
            for p in &m.partitions {
                self.c.on_markers_done(
                    &m.transactional_id,
                    m.coordinator_epoch,
                    *p,
                    Ok(()),
                    self.now,
                );
            }
        }
        self.drain();
        while !self.appends.is_empty() {
            self.ack(Ok(()));
        }
    }

    fn state(&self, id: &str) -> TransactionState {
        self.c.metadata(id).expect("coordinated").state
    }

    fn epoch(&self, id: &str) -> i16 {
        self.c.metadata(id).expect("coordinated").producer_epoch
    }
}

use TransactionResult::{Abort, Commit};
use TransactionState::*;

/// Kafka's `validPreviousStates`, pair by pair: exactly these transitions are legal.
#[test]
fn transitions_are_kafkas_valid_previous_states() {
    let legal = [
        (Empty, Empty),
        (CompleteCommit, Empty),
        (CompleteAbort, Empty),
        (Ongoing, Ongoing),
        (Empty, Ongoing),
        (CompleteCommit, Ongoing),
        (CompleteAbort, Ongoing),
        (Ongoing, PrepareCommit),
        (Ongoing, PrepareAbort),
        (PrepareEpochFence, PrepareAbort),
        (PrepareCommit, CompleteCommit),
        (PrepareAbort, CompleteAbort),
        (Ongoing, PrepareEpochFence),
    ];
    for from in TransactionState::ALL {
        for to in TransactionState::ALL {
            assert_eq!(
                from.can_transition_to(to),
                legal.contains(&(from, to)),
                "{} -> {}",
                from.name(),
                to.name()
            );
        }
    }
}

/// A transactional id's partition is `abs(java hashCode) % partitions`, like a group's.
#[test]
fn transactional_id_partition_is_java_hash_mod_partitions() {
    let c = TransactionCoordinator::new(TxnCoordinatorConfig::default());
    for id in [
        "payments",
        "orders-0",
        "",
        "a-very-long-transactional-id-42",
    ] {
        assert_eq!(c.partition_of(id), partition_for(id, 50));
    }
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Kafka's abs maps it to 0.
    assert_eq!(c.partition_of("polygenelubricants"), 0);
}

/// InitProducerId: a new id gets a fresh producer id at epoch 0, written before the answer;
/// again in Empty, the same producer id at epoch 1.
#[test]
fn init_producer_id_allocates_then_bumps_the_epoch() {
    let mut c = Coord::new(false);
    let token = c.send(Coord::init_request(T, None));
    assert!(
        c.unanswered(token),
        "answered before the write reached the HW"
    );
    assert_eq!(c.c.pending_state(T), Some(Empty));
    let records = c.ack(Ok(()));
    let first = match c.take(token) {
        TxnResponse::InitProducerId(Ok(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(first, pid(1001, 0));
    assert_eq!(records[0].value.as_ref().unwrap().producer_epoch, 0);
    assert_eq!(c.init(T), Ok(pid(1001, 1)));
    assert_eq!(c.state(T), Empty);
}

/// `transaction.timeout.ms` must be > 0 and ≤ `transaction.max.timeout.ms`; the id must not
/// be empty.
#[test]
fn init_producer_id_refuses_bad_timeouts_and_empty_ids() {
    let mut c = Coord::new(false);
    for timeout in [0, -1, DEFAULT_TRANSACTION_MAX_TIMEOUT_MS + 1] {
        let token = c.send(TxnRequest::InitProducerId(InitProducerIdRequest {
            transactional_id: T.into(),
            transaction_timeout_ms: timeout,
            producer_id_and_epoch: None,
        }));
        assert_eq!(
            c.take(token),
            TxnResponse::InitProducerId(Err(KafkaError::InvalidTransactionTimeout))
        );
    }
    let token = c.send(TxnRequest::InitProducerId(InitProducerIdRequest {
        transactional_id: T.into(),
        transaction_timeout_ms: DEFAULT_TRANSACTION_MAX_TIMEOUT_MS,
        producer_id_and_epoch: None,
    }));
    assert!(c.unanswered(token));
    assert!(c.appends.len() == 1);
    let token = c.send(Coord::init_request("", None));
    assert_eq!(
        c.take(token),
        TxnResponse::InitProducerId(Err(KafkaError::InvalidRequest))
    );
}

/// KIP-360: a producer re-initializing with its id and epoch gets epoch + 1; a retry of that
/// (its old epoch is the last epoch) gets the same epoch again; another epoch is fenced.
#[test]
fn init_producer_id_with_expected_epoch_kip_360() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    let bump = |c: &mut Coord, expected| {
        let token = c.send(Coord::init_request(T, Some(expected)));
        if c.unanswered(token) {
            c.ack(Ok(()));
        }
        c.take(token)
    };
    assert_eq!(
        bump(&mut c, p),
        TxnResponse::InitProducerId(Ok(pid(1001, 1)))
    );
    // The answer was lost: the producer retries with epoch 0, now the last epoch.
    assert_eq!(
        bump(&mut c, p),
        TxnResponse::InitProducerId(Ok(pid(1001, 1)))
    );
    assert_eq!(
        bump(&mut c, pid(1001, 7)),
        TxnResponse::InitProducerId(Err(KafkaError::ProducerFenced))
    );
    assert_eq!(
        bump(&mut c, pid(9, 1)),
        TxnResponse::InitProducerId(Err(KafkaError::ProducerFenced))
    );
}

/// An exhausted epoch (`Short.MaxValue - 1`) is not bumped: InitProducerId rotates to a new
/// producer id at epoch 0.
#[test]
fn init_producer_id_rotates_the_producer_id_when_the_epoch_is_exhausted() {
    let mut c = Coord::unloaded(false);
    c.c.on_become_leader(0, LeaderEpoch(1));
    let metadata = TransactionMetadata {
        producer_id: ProducerId(7),
        previous_producer_id: ProducerId::NONE,
        next_producer_id: ProducerId::NONE,
        producer_epoch: i16::MAX - 1,
        last_producer_epoch: NO_PRODUCER_EPOCH,
        txn_timeout_ms: TIMEOUT,
        state: CompleteCommit,
        topic_partitions: BTreeSet::new(),
        txn_start_timestamp_ms: Some(0),
        txn_last_update_timestamp_ms: 0,
    };
    let record = TxnRecord {
        transactional_id: T.into(),
        value: Some(metadata),
    };
    c.c.on_loaded(0, LeaderEpoch(1), vec![record], 0);
    c.drain();
    assert_eq!(c.init(T), Ok(pid(1001, 0)));
    assert_eq!(c.c.metadata(T).unwrap().previous_producer_id, ProducerId(7));
}

/// AddPartitionsToTxn: another producer id is INVALID_PRODUCER_ID_MAPPING, another epoch
/// PRODUCER_FENCED, an unknown id INVALID_PRODUCER_ID_MAPPING; otherwise the transaction is
/// Ongoing with the partitions, started now; partitions it holds are answered at once.
#[test]
fn add_partitions_opens_the_transaction() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    assert_eq!(
        c.add(T, pid(p.producer_id.0 + 1, 0), &[tp("t", 0)]),
        Err(KafkaError::InvalidProducerIdMapping)
    );
    assert_eq!(
        c.add(T, pid(p.producer_id.0, 1), &[tp("t", 0)]),
        Err(KafkaError::ProducerFenced)
    );
    assert_eq!(
        c.add("nobody", p, &[tp("t", 0)]),
        Err(KafkaError::InvalidProducerIdMapping)
    );
    c.now = 500;
    assert_eq!(c.add(T, p, &[tp("t", 0)]), Ok(()));
    c.now = 900;
    assert_eq!(c.add(T, p, &[tp("t", 1)]), Ok(()));
    let m = c.c.metadata(T).unwrap();
    assert_eq!(m.state, Ongoing);
    assert_eq!(
        m.txn_start_timestamp_ms,
        Some(500),
        "start time kept while Ongoing"
    );
    assert_eq!(
        m.topic_partitions.iter().copied().collect::<Vec<_>>(),
        vec![tp("t", 0), tp("t", 1)]
    );
    // Already present: no write.
    let token = c.send(Coord::add_request(T, p, &[tp("t", 1)]));
    assert_eq!(c.take(token), TxnResponse::AddPartitionsToTxn(Ok(())));
    assert!(c.appends.is_empty());
}

/// AddOffsetsToTxn adds the group's `__consumer_offsets` partition.
#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    let token = c.send(TxnRequest::AddOffsetsToTxn {
        transactional_id: T.into(),
        producer: p,
        group_id: "billing".into(),
    });
    c.ack(Ok(()));
    assert_eq!(c.take(token), TxnResponse::AddOffsetsToTxn(Ok(())));
    let expected = tp(OFFSETS_TOPIC, partition_for("billing", 50));
    assert!(c
        .c
        .metadata(T)
        .unwrap()
        .topic_partitions
        .contains(&expected));
}

/// KIP-890 part 1: a leader asking whether partitions are in the producer's transaction
/// hears yes or TRANSACTION_ABORTABLE per partition, and nothing is written.
#[test]
fn verify_partitions_answers_without_changing_state() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    c.add(T, p, &[tp("t", 0)]).unwrap();
    let token = c.send(TxnRequest::VerifyPartitionsInTxn {
        transactional_id: T.into(),
        producer: p,
        partitions: vec![tp("t", 0), tp("t", 1)],
    });
    assert_eq!(
        c.take(token),
        TxnResponse::VerifyPartitionsInTxn(Ok(vec![
            (tp("t", 0), Ok(())),
            (tp("t", 1), Err(KafkaError::TransactionAbortable)),
        ]))
    );
    assert!(c.appends.is_empty());
    assert_eq!(c.c.metadata(T).unwrap().topic_partitions.len(), 1);
    let token = c.send(TxnRequest::VerifyPartitionsInTxn {
        transactional_id: T.into(),
        producer: pid(p.producer_id.0, 5),
        partitions: vec![tp("t", 0)],
    });
    assert_eq!(
        c.take(token),
        TxnResponse::VerifyPartitionsInTxn(Err(KafkaError::ProducerFenced))
    );
}

/// While a change is being written, the id's requests get CONCURRENT_TRANSACTIONS.
#[test]
fn a_pending_transition_answers_concurrent_transactions() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    let add = c.send(Coord::add_request(T, p, &[tp("t", 0)]));
    assert_eq!(c.c.pending_state(T), Some(Ongoing));
    for request in [
        Coord::add_request(T, p, &[tp("t", 1)]),
        Coord::end_request(T, p, Commit),
        Coord::init_request(T, None),
    ] {
        let token = c.send(request.clone());
        assert_eq!(
            c.take(token),
            request.error(KafkaError::ConcurrentTransactions),
            "{request:?}"
        );
    }
    c.ack(Ok(()));
    assert_eq!(c.take(add), TxnResponse::AddPartitionsToTxn(Ok(())));
    assert_eq!(c.c.pending_state(T), None);
}

/// A failed append clears the pending state and changes nothing: not enough replicas is
/// COORDINATOR_NOT_AVAILABLE, a lost leadership NOT_COORDINATOR; a retry then succeeds.
#[test]
fn a_failed_append_clears_the_pending_state() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    for (error, answer) in [
        (
            KafkaError::NotEnoughReplicas,
            KafkaError::CoordinatorNotAvailable,
        ),
        (
            KafkaError::RequestTimedOut,
            KafkaError::CoordinatorNotAvailable,
        ),
        (KafkaError::NotLeaderOrFollower, KafkaError::NotCoordinator),
    ] {
        let token = c.send(Coord::add_request(T, p, &[tp("t", 0)]));
        c.ack(Err(error));
        assert_eq!(c.take(token), TxnResponse::AddPartitionsToTxn(Err(answer)));
        assert_eq!(c.c.pending_state(T), None);
        assert_eq!(c.state(T), Empty);
        assert!(c.c.metadata(T).unwrap().topic_partitions.is_empty());
    }
    assert_eq!(c.add(T, p, &[tp("t", 0)]), Ok(()));
    assert_eq!(c.state(T), Ongoing);
}

/// EndTxn (TV1): Ongoing → PrepareCommit, answered once written; markers to every
/// partition; CompleteCommit when all are written. Retries: CONCURRENT_TRANSACTIONS in
/// PrepareCommit, success in CompleteCommit; the other kind is INVALID_TXN_STATE.
#[test]
fn end_txn_commits_through_markers_tv1() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    assert_eq!(
        c.end(T, p, Commit),
        Err(KafkaError::InvalidTxnState),
        "Empty"
    );
    c.add(T, p, &[tp("t", 0), tp("u", 3)]).unwrap();
    let token = c.send(Coord::end_request(T, p, Commit));
    assert!(c.unanswered(token));
    assert!(
        c.markers.is_empty(),
        "no marker before PrepareCommit is written"
    );
    c.ack(Ok(()));
    assert_eq!(
        c.take(token),
        TxnResponse::EndTxn(Ok(p)),
        "TV1 keeps the epoch"
    );
    assert_eq!(c.state(T), PrepareCommit);
    assert_eq!(
        c.markers,
        vec![TxnMarkers {
            transactional_id: T.into(),
            producer: p,
            result: Commit,
            coordinator_epoch: LeaderEpoch(1),
            partitions: vec![tp("t", 0), tp("u", 3)],
        }]
    );
    assert_eq!(c.end(T, p, Commit), Err(KafkaError::ConcurrentTransactions));
    assert_eq!(c.end(T, p, Abort), Err(KafkaError::InvalidTxnState));
    assert_eq!(
        c.add(T, p, &[tp("t", 1)]),
        Err(KafkaError::ConcurrentTransactions)
    );
    assert_eq!(
        c.init(T),
        Err(KafkaError::ConcurrentTransactions),
        "InitProducerId waits for Prepare* to complete"
    );
    // One marker written: still preparing.
    c.c.on_markers_done(T, LeaderEpoch(1), tp("t", 0), Ok(()), 0);
    c.drain();
    assert!(c.appends.is_empty());
    assert_eq!(c.c.markers_pending(T), vec![tp("u", 3)]);
    c.markers.clear();
    c.c.on_markers_done(T, LeaderEpoch(1), tp("u", 3), Ok(()), 0);
    c.drain();
    let records = c.ack(Ok(()));
    assert_eq!(records[0].value.as_ref().unwrap().state, CompleteCommit);
    assert_eq!(c.state(T), CompleteCommit);
    assert!(c.c.metadata(T).unwrap().topic_partitions.is_empty());
    assert_eq!(
        c.end(T, p, Commit),
        Ok(p),
        "a retry in CompleteCommit succeeds"
    );
    assert_eq!(c.end(T, p, Abort), Err(KafkaError::InvalidTxnState));
    // The next transaction, then an abort.
    c.add(T, p, &[tp("t", 0)]).unwrap();
    assert_eq!(c.end(T, p, Abort), Ok(p));
    c.markers_ok();
    assert_eq!(c.state(T), CompleteAbort);
    assert_eq!(c.end(T, p, Abort), Ok(p));
    assert_eq!(c.end(T, p, Commit), Err(KafkaError::InvalidTxnState));
}

/// InitProducerId with a transaction Ongoing fences it (epoch + 1 through
/// PrepareEpochFence), aborts it with ABORT markers in the fenced epoch and answers
/// CONCURRENT_TRANSACTIONS; the retry after CompleteAbort gets the next epoch.
#[test]
fn init_producer_id_fences_an_ongoing_transaction_tv1() {
    let mut c = Coord::new(false);
    let old = c.init(T).unwrap();
    c.add(T, old, &[tp("t", 0)]).unwrap();
    let token = c.send(Coord::init_request(T, None));
    assert_eq!(c.c.pending_state(T), Some(PrepareAbort));
    let records = c.ack(Ok(()));
    let written = records[0].value.as_ref().unwrap();
    assert_eq!((written.state, written.producer_epoch), (PrepareAbort, 1));
    assert_eq!(
        c.take(token),
        TxnResponse::InitProducerId(Err(KafkaError::ConcurrentTransactions))
    );
    assert_eq!(c.markers.len(), 1);
    assert_eq!(c.markers[0].result, Abort);
    assert_eq!(c.markers[0].producer, pid(old.producer_id.0, 1));
    // The zombie is fenced.
    assert_eq!(c.end(T, old, Commit), Err(KafkaError::ProducerFenced));
    assert_eq!(
        c.add(T, old, &[tp("t", 1)]),
        Err(KafkaError::ProducerFenced)
    );
    assert_eq!(c.init(T), Err(KafkaError::ConcurrentTransactions));
    c.markers_ok();
    assert_eq!(c.state(T), CompleteAbort);
    assert_eq!(c.init(T), Ok(pid(old.producer_id.0, 2)));
}

/// TV2 ends the fenced transaction as an EndTxn too, so the abort's epoch is one more.
#[test]
fn init_producer_id_fences_an_ongoing_transaction_tv2() {
    let mut c = Coord::new(true);
    let old = c.init(T).unwrap();
    c.add(T, old, &[tp("t", 0)]).unwrap();
    let token = c.send(Coord::init_request(T, None));
    c.ack(Ok(()));
    assert_eq!(
        c.take(token),
        TxnResponse::InitProducerId(Err(KafkaError::ConcurrentTransactions))
    );
    assert_eq!(c.markers[0].producer.producer_epoch, 2);
    c.markers_ok();
    assert_eq!(c.init(T), Ok(pid(old.producer_id.0, 3)));
}

/// A fence whose write fails keeps the fenced epoch (never handed out) and is not bumped
/// again by the next fence (Kafka's `hasFailedEpochFence`).
#[test]
fn a_failed_fence_is_not_bumped_twice() {
    let mut c = Coord::new(false);
    let old = c.init(T).unwrap();
    c.add(T, old, &[tp("t", 0)]).unwrap();
    let token = c.send(Coord::init_request(T, None));
    c.ack(Err(KafkaError::NotEnoughReplicas));
    assert_eq!(
        c.take(token),
        TxnResponse::InitProducerId(Err(KafkaError::CoordinatorNotAvailable))
    );
    assert_eq!((c.state(T), c.epoch(T)), (Ongoing, 1));
    assert_eq!(c.end(T, old, Commit), Err(KafkaError::ProducerFenced));
    let token = c.send(Coord::init_request(T, None));
    let records = c.ack(Ok(()));
    assert_eq!(records[0].value.as_ref().unwrap().producer_epoch, 1);
    assert_eq!(
        c.take(token),
        TxnResponse::InitProducerId(Err(KafkaError::ConcurrentTransactions))
    );
}

/// A transaction Ongoing past `transaction.timeout.ms` is fenced and aborted at the next
/// cleanup check (every 10 s by default).
#[test]
fn a_timed_out_transaction_is_aborted() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    c.now = 1_000;
    c.add(T, p, &[tp("t", 0)]).unwrap();
    c.c.tick(40_000);
    c.c.tick(60_000);
    c.drain();
    assert!(
        c.appends.is_empty(),
        "not timed out yet (it started at 1 s)"
    );
    c.c.tick(61_001);
    c.drain();
    assert!(
        c.appends.is_empty(),
        "not a cleanup check yet (the last was at 60 s)"
    );
    c.c.tick(70_000);
    c.drain();
    let records = c.ack(Ok(()));
    let written = records[0].value.as_ref().unwrap();
    assert_eq!((written.state, written.producer_epoch), (PrepareAbort, 1));
    assert_eq!(c.markers[0].result, Abort);
    c.markers_ok();
    assert_eq!(c.state(T), CompleteAbort);
    assert_eq!(c.end(T, p, Commit), Err(KafkaError::ProducerFenced));
}

/// A marker refused because the leader moved is sent again (at the next tick) to that
/// partition only; the transaction completes once it is written.
#[test]
fn markers_are_resent_after_not_leader() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    c.add(T, p, &[tp("t", 0), tp("t", 1)]).unwrap();
    c.end(T, p, Commit).unwrap();
    c.markers.clear();
    c.c.on_markers_done(T, LeaderEpoch(1), tp("t", 0), Ok(()), 0);
    c.c.on_markers_done(
        T,
        LeaderEpoch(1),
        tp("t", 1),
        Err(KafkaError::NotLeaderOrFollower),
        0,
    );
    c.drain();
    assert!(c.markers.is_empty() && c.appends.is_empty());
    c.c.tick(100);
    c.drain();
    assert_eq!(c.markers.len(), 1);
    assert_eq!(c.markers[0].partitions, vec![tp("t", 1)]);
    // An answer for another coordinator epoch is not this one's.
    c.c.on_markers_done(T, LeaderEpoch(0), tp("t", 1), Ok(()), 0);
    c.drain();
    assert!(c.appends.is_empty());
    c.markers_ok();
    assert_eq!(c.state(T), CompleteCommit);
}

/// INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED on a marker: a newer coordinator
/// or producer owns the transaction, and this coordinator stops (no CompleteX from it).
#[test]
fn a_fenced_marker_stops_sending() {
    for error in [
        KafkaError::TransactionCoordinatorFenced,
        KafkaError::InvalidProducerEpoch,
    ] {
        let mut c = Coord::new(false);
        let p = c.init(T).unwrap();
        c.add(T, p, &[tp("t", 0), tp("t", 1)]).unwrap();
        c.end(T, p, Commit).unwrap();
        c.markers.clear();
        c.c.on_markers_done(T, LeaderEpoch(1), tp("t", 0), Err(error), 0);
        c.c.on_markers_done(T, LeaderEpoch(1), tp("t", 1), Ok(()), 0);
        c.c.tick(100);
        c.drain();
        assert!(c.appends.is_empty() && c.markers.is_empty(), "{error:?}");
        assert_eq!(c.state(T), PrepareCommit);
    }
}

/// A failed CompleteX write is tried again at the next tick.
#[test]
fn a_failed_completion_is_retried() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    c.add(T, p, &[tp("t", 0)]).unwrap();
    c.end(T, p, Commit).unwrap();
    c.c.on_markers_done(T, LeaderEpoch(1), tp("t", 0), Ok(()), 0);
    c.drain();
    c.ack(Err(KafkaError::NotEnoughReplicas));
    assert_eq!((c.state(T), c.c.pending_state(T)), (PrepareCommit, None));
    c.c.tick(100);
    c.drain();
    let records = c.ack(Ok(()));
    assert_eq!(records[0].value.as_ref().unwrap().state, CompleteCommit);
    assert_eq!(c.state(T), CompleteCommit);
}

/// Loading: before it, COORDINATOR_LOAD_IN_PROGRESS (NOT_COORDINATOR where not leader);
/// the latest record per id wins; Prepare* transactions have their markers sent again in
/// the new coordinator epoch, Ongoing ones wait for their timeout.
#[test]
fn loading_resends_prepare_markers() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    c.add(T, p, &[tp("t", 0)]).unwrap();
    c.end(T, p, Commit).unwrap();
    let q = c.init("other").unwrap();
    c.add("other", q, &[tp("t", 2)]).unwrap();
    let log = c.written.clone();

    let mut n = Coord::unloaded(false);
    let token = n.send(Coord::init_request(T, None));
    assert_eq!(
        n.take(token),
        TxnResponse::InitProducerId(Err(KafkaError::NotCoordinator))
    );
    n.c.on_become_leader(0, LeaderEpoch(2));
    n.leader_epoch = LeaderEpoch(2);
    assert_eq!(n.c.loading(), vec![(0, LeaderEpoch(2))]);
    let token = n.send(Coord::end_request(T, p, Commit));
    assert_eq!(
        n.take(token),
        TxnResponse::EndTxn(Err(KafkaError::CoordinatorLoadInProgress))
    );
    // Stale load answers (another epoch) are ignored.
    n.c.on_loaded(0, LeaderEpoch(1), log.clone(), 0);
    assert!(n.c.metadata(T).is_none());
    // Decoded from bytes, as the broker will hand them in.
    let records = log
        .iter()
        .map(|r| {
            let (k, v) = r.encode();
            TxnRecord::decode(&k, v.as_deref()).expect("a transaction record")
        })
        .collect();
    n.c.on_loaded(0, LeaderEpoch(2), records, 0);
    n.drain();
    assert_eq!(n.state(T), PrepareCommit);
    assert_eq!(n.state("other"), Ongoing);
    assert_eq!(n.markers.len(), 1, "only the Prepare* transaction");
    assert_eq!(n.markers[0].transactional_id, T);
    assert_eq!(n.markers[0].coordinator_epoch, LeaderEpoch(2));
    assert_eq!(n.markers[0].partitions, vec![tp("t", 0)]);
    n.c.on_markers_done(T, LeaderEpoch(2), tp("t", 0), Ok(()), 0);
    n.drain();
    let (id, records) = n.appends.remove(0);
    assert_eq!(records[0].value.as_ref().unwrap().state, CompleteCommit);
    n.c.on_append_done(id, Ok(()), 0);
    assert_eq!(n.state(T), CompleteCommit);
}

/// Losing leadership drops the transactions; a write in flight then answers NOT_COORDINATOR
/// even if it reached the HW.
#[test]
fn resigning_unloads_and_fails_writes_in_flight() {
    let mut c = Coord::new(false);
    let p = c.init(T).unwrap();
    let token = c.send(Coord::add_request(T, p, &[tp("t", 0)]));
    c.c.on_resign(0);
    c.drain();
    assert!(c.c.metadata(T).is_none());
    c.ack(Ok(()));
    assert_eq!(
        c.take(token),
        TxnResponse::AddPartitionsToTxn(Err(KafkaError::NotCoordinator))
    );
    assert_eq!(c.init(T), Err(KafkaError::NotCoordinator));
}

/// TV2 (KIP-890 part 2): every EndTxn bumps the epoch; the markers carry the new one; a
/// retry is recognised by the current epoch being the request's + 1.
#[test]
fn tv2_bumps_the_epoch_per_transaction() {
    let mut c = Coord::new(true);
    let p0 = c.init(T).unwrap();
    c.add(T, p0, &[tp("t", 0)]).unwrap();
    let p1 = c.end(T, p0, Commit).unwrap();
    assert_eq!(p1, pid(p0.producer_id.0, 1));
    assert_eq!(c.markers[0].producer, p1);
    assert_eq!(
        c.end(T, p0, Commit),
        Err(KafkaError::ConcurrentTransactions)
    );
    c.markers_ok();
    assert_eq!(c.end(T, p0, Commit), Ok(p1), "a retry after completion");
    assert_eq!(c.end(T, p0, Abort), Err(KafkaError::InvalidTxnState));
    assert_eq!(
        c.end(T, p1, Commit),
        Err(KafkaError::ProducerFenced),
        "the current epoch with no transaction open"
    );
    assert_eq!(c.add(T, p0, &[tp("t", 0)]), Err(KafkaError::ProducerFenced));
    c.add(T, p1, &[tp("t", 0)]).unwrap();
    assert_eq!(c.end(T, p1, Abort), Ok(pid(p0.producer_id.0, 2)));
}

/// Jepsen 2024 / KIP-890 part 2: a delayed EndTxn(commit) of transaction n, landing while
/// transaction n + 1 is Ongoing. TV1 cannot tell it apart and commits n + 1 with it; TV2
/// fences it, since transaction n + 1 runs in the next epoch.
#[test]
fn a_delayed_end_txn_commits_the_next_transaction_only_without_tv2() {
    for tv2 in [false, true] {
        let mut c = Coord::new(tv2);
        let p0 = c.init(T).unwrap();
        c.add(T, p0, &[tp("t", 0)]).unwrap();
        let p1 = c.end(T, p0, Commit).unwrap();
        c.markers_ok();
        c.add(T, p1, &[tp("t", 1)]).unwrap();
        let delayed = c.end(T, p0, Commit);
        if tv2 {
            assert_eq!(delayed, Err(KafkaError::ProducerFenced));
            assert_eq!(c.state(T), Ongoing);
        } else {
            assert_eq!(delayed, Ok(p0));
            assert_eq!(
                c.state(T),
                PrepareCommit,
                "transaction n + 1 committed by n's EndTxn"
            );
        }
    }
}

/// TV2 at an exhausted epoch: EndTxn takes a new producer id, which the completion
/// rotates to at epoch 0.
#[test]
fn tv2_rotates_the_producer_id_at_an_exhausted_epoch() {
    let mut c = Coord::unloaded(true);
    c.c.on_become_leader(0, LeaderEpoch(1));
    let metadata = TransactionMetadata {
        producer_id: ProducerId(7),
        previous_producer_id: ProducerId::NONE,
        next_producer_id: ProducerId::NONE,
        producer_epoch: i16::MAX - 1,
        last_producer_epoch: i16::MAX - 2,
        txn_timeout_ms: TIMEOUT,
        state: Ongoing,
        topic_partitions: [tp("t", 0)].into_iter().collect(),
        txn_start_timestamp_ms: Some(0),
        txn_last_update_timestamp_ms: 0,
    };
    let record = TxnRecord {
        transactional_id: T.into(),
        value: Some(metadata),
    };
    c.c.on_loaded(0, LeaderEpoch(1), vec![record], 0);
    c.drain();
    let old = pid(7, i16::MAX - 1);
    assert_eq!(c.end(T, old, Commit), Ok(pid(7, i16::MAX)));
    assert_eq!(c.markers[0].producer, pid(7, i16::MAX));
    c.markers_ok();
    let m = c.c.metadata(T).unwrap();
    assert_eq!((m.producer_id, m.producer_epoch), (ProducerId(1001), 0));
    assert_eq!(
        c.end(T, old, Commit),
        Ok(pid(1001, 0)),
        "a retry across the rotation"
    );
}

/// The coverage marks of this core are reached.
#[test]
fn marks_are_hit() {
    crate::coverage::take();
    init_producer_id_fences_an_ongoing_transaction_tv1();
    a_timed_out_transaction_is_aborted();
    loading_resends_prepare_markers();
    let hit = crate::coverage::take();
    for mark in [
        Mark::TxnEpochFenced,
        Mark::TxnTimedOutAborted,
        Mark::TxnMarkersResentOnLoad,
    ] {
        assert!(
            hit.contains_key(mark.name()),
            "{} not hit: {hit:?}",
            mark.name()
        );
    }
}

/// A step of the random walk.
#[derive(Clone, Debug)]
enum Step {
    Init(usize),
    Add(usize, u32),
    End(usize, bool),
    AckOldest(bool),
    Markers(bool),
    Tick(u64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        1 => (0usize..2).prop_map(Step::Init),
        3 => (0usize..2, 0u32..3).prop_map(|(i, p)| Step::Add(i, p)),
        2 => (0usize..2, any::<bool>()).prop_map(|(i, c)| Step::End(i, c)),
        5 => proptest::bool::weighted(0.85).prop_map(Step::AckOldest),
        2 => proptest::bool::weighted(0.7).prop_map(Step::Markers),
        1 => (1u64..40_000).prop_map(Step::Tick),
    ]
}

proptest::proptest! {
    /// Random requests, write failures, marker failures and ticks never reach an illegal
    /// transition (the core asserts every written one), every record written is a legal
    /// successor of the id's previous one, and once writes and markers succeed every
    /// transaction that reached Prepare* ends in its Complete*.
    #[test]
    fn random_walks_stay_legal_and_prepared_transactions_complete(
        tv2 in proptest::bool::ANY,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let ids = ["a", "b"];
        let mut c = Coord::new(tv2);
        let mut producers: BTreeMap<usize, ProducerIdentity> = BTreeMap::new();
        for s in steps {
            match s {
                Step::Init(i) => {
                    let token = c.send(Coord::init_request(ids[i], None));
                    if let Some(TxnResponse::InitProducerId(Ok(p))) = c.answers.remove(&token) {
                        producers.insert(i, p);
                    }
                }
                Step::Add(i, p) => {
                    if let Some(producer) = producers.get(&i) {
                        c.send(Coord::add_request(ids[i], *producer, &[tp("t", p)]));
                    }
                }
                Step::End(i, commit) => {
                    if let Some(producer) = producers.get(&i) {
                        let result = if commit { Commit } else { Abort };
                        c.send(Coord::end_request(ids[i], *producer, result));
                    }
                }
                Step::AckOldest(ok) => {
                    if !c.appends.is_empty() {
                        c.ack(if ok { Ok(()) } else { Err(KafkaError::NotEnoughReplicas) });
                    }
                }
                Step::Markers(ok) => {
                    for m in std::mem::take(&mut c.markers) {
                        for p in &m.partitions {
                            let result = if ok { Ok(()) } else { Err(KafkaError::NotLeaderOrFollower) };
                            c.c.on_markers_done(&m.transactional_id, m.coordinator_epoch, *p, result, c.now);
                        }
                    }
                    c.drain();
                }
                Step::Tick(dt) => {
                    c.now += dt;
                    c.c.tick(c.now);
                    c.drain();
                }
            }
            // Learn the epochs answered (InitProducerId after a fence, EndTxn under TV2).
            for (_, answer) in std::mem::take(&mut c.answers) {
                if let TxnResponse::InitProducerId(Ok(p)) | TxnResponse::EndTxn(Ok(p)) = answer {
                    if let Some(i) = ids.iter().position(|id| {
                        c.c.metadata(id).is_some_and(|m| m.producer_id == p.producer_id)
                    }) {
                        producers.insert(i, p);
                    }
                }
            }
        }
        // Drain: every write and marker succeeds, ticks retry what failed.
        for _ in 0..20 {
            while !c.appends.is_empty() {
                c.ack(Ok(()));
            }
            c.markers_ok();
            c.now += 1;
            c.c.tick(c.now);
            c.drain();
        }
        for id in ids {
            if let Some(m) = c.c.metadata(id) {
                proptest::prop_assert!(!m.state.is_prepare(), "{id} stuck in {}", m.state.name());
                proptest::prop_assert_eq!(c.c.pending_state(id), None);
            }
        }
        // The log: each id's records follow each other legally, and every Prepare* is
        // followed by its Complete*.
        for id in ids {
            let states: Vec<TransactionState> = c
                .written
                .iter()
                .filter(|r| r.transactional_id == id)
                .map(|r| r.value.as_ref().unwrap().state)
                .collect();
            for pair in states.windows(2) {
                proptest::prop_assert!(
                    pair[0].can_transition_to(pair[1]),
                    "{id}: {} -> {} written", pair[0].name(), pair[1].name()
                );
            }
            if let Some(last) = states.last() {
                proptest::prop_assert!(!last.is_prepare());
            }
        }
    }
}

/// Requests no state allows are refused with an error, never a panic: even a transaction
/// whose epoch is at `Short.MaxValue` (no bump left) answers INVALID_TXN_STATE.
#[test]
fn impossible_steps_are_refused_not_panicked() {
    let mut c = Coord::unloaded(true);
    c.c.on_become_leader(0, LeaderEpoch(1));
    let metadata = TransactionMetadata {
        producer_id: ProducerId(7),
        previous_producer_id: ProducerId::NONE,
        next_producer_id: ProducerId::NONE,
        producer_epoch: i16::MAX,
        last_producer_epoch: NO_PRODUCER_EPOCH,
        txn_timeout_ms: TIMEOUT,
        state: Ongoing,
        topic_partitions: [tp("t", 0)].into_iter().collect(),
        txn_start_timestamp_ms: Some(0),
        txn_last_update_timestamp_ms: 0,
    };
    let record = TxnRecord {
        transactional_id: T.into(),
        value: Some(metadata),
    };
    c.c.on_loaded(0, LeaderEpoch(1), vec![record], 0);
    c.drain();
    let p = pid(7, i16::MAX);
    assert_eq!(c.end(T, p, Commit), Err(KafkaError::InvalidTxnState));
    assert_eq!(c.init(T), Err(KafkaError::InvalidTxnState));
    assert_eq!((c.state(T), c.c.pending_state(T)), (Ongoing, None));
    assert!(c.appends.is_empty());
}

/// The announced events' wire form: `{"kind", "detail"}`, Kafka's state names.
#[test]
fn events_serialize_as_kind_and_detail() {
    let event = TxnCoordinatorEvent::TxnState {
        transactional_id: T.into(),
        state: PrepareCommit,
        producer_id: ProducerId(1001),
        producer_epoch: 3,
    };
    assert_eq!(
        serde_json::to_string(&event).unwrap(),
        r#"{"kind":"txn-state","detail":{"transactional_id":"payments","state":"PrepareCommit","producer_id":1001,"producer_epoch":3}}"#
    );
    let mut c = Coord::new(false);
    c.init(T).unwrap();
    assert!(c.events.contains(&TxnCoordinatorEvent::TxnState {
        transactional_id: T.into(),
        state: Empty,
        producer_id: ProducerId(1001),
        producer_epoch: 0,
    }));
}
