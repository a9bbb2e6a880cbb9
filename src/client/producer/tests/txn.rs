//! The transactional producer against a scripted coordinator and partition leaders.

use super::*;
use crate::broker::proto::{CommittedOffset, MemberRef, TxnOffsetCommitRequest};
use crate::broker::txn_coordinator::TransactionResult;

const TXN_ID: &str = "payments";

fn txn_config(records: u32, abort_percent: u8) -> ProducerConfig {
    ProducerConfig {
        transactional_id: Some(TXN_ID.into()),
        txn_workload: TxnWorkload {
            records,
            abort_percent,
            by_application: false,
        },
        ..config()
    }
}

fn identity(producer_id: i64, producer_epoch: i16) -> ProducerIdentity {
    ProducerIdentity {
        producer_id: ProducerId(producer_id),
        producer_epoch,
    }
}

fn begin(producer: ProducerIdentity) -> ProducerAction {
    ProducerAction::TxnBegin {
        transactional_id: TXN_ID.into(),
        producer,
    }
}

fn end(commit: bool) -> ProducerAction {
    ProducerAction::TxnEnd { commit }
}

fn ended(error: Option<KafkaError>) -> ProducerAction {
    ProducerAction::TxnEndReturn { error }
}

impl Harness {
    fn adds(&self) -> Vec<RequestBody> {
        self.requests
            .iter()
            .filter(|(_, _, r)| matches!(r.body, RequestBody::AddPartitionsToTxn { .. }))
            .map(|(_, _, r)| r.body.clone())
            .collect()
    }

    fn take_find(&mut self) -> Option<(BrokerId, ConnectionId, Request)> {
        self.take_request(|b| matches!(b, RequestBody::FindTxnCoordinator { .. }))
    }

    fn answer_find(&mut self, coordinator: u32) {
        let (_, connection, request) = self.take_find().expect("a FindCoordinator request");
        assert_eq!(
            request.body,
            RequestBody::FindTxnCoordinator {
                transactional_id: TXN_ID.into()
            }
        );
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::FindCoordinator {
                result: Ok(BrokerId(coordinator)),
            },
        );
    }

    fn take_txn_init(&mut self) -> Option<(BrokerId, ConnectionId, Request)> {
        self.take_request(|b| matches!(b, RequestBody::InitTxnProducerId { .. }))
    }

    fn answer_txn_init(&mut self, result: Result<ProducerIdentity, KafkaError>) -> BrokerId {
        let (broker, connection, request) = self.take_txn_init().expect("an InitProducerId");
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::InitProducerId { result },
        );
        broker
    }

    fn take_add(&mut self) -> Option<(BrokerId, ConnectionId, Request)> {
        self.take_request(|b| matches!(b, RequestBody::AddPartitionsToTxn { .. }))
    }

    /// Answers the AddPartitionsToTxn in flight with `error` for every partition (or
    /// success); returns the partitions asked for.
    fn answer_add(&mut self, error: Option<KafkaError>) -> Vec<TopicPartition> {
        let (_, connection, request) = self.take_add().expect("an AddPartitionsToTxn");
        let RequestBody::AddPartitionsToTxn { partitions, .. } = &request.body else {
            unreachable!()
        };
        let partitions = partitions.clone();
        let result = Ok(partitions
            .iter()
            .map(|tp| (*tp, error.map_or(Ok(()), Err)))
            .collect());
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::AddPartitionsToTxn { result },
        );
        partitions
    }

    fn take_end(&mut self) -> Option<(BrokerId, ConnectionId, Request)> {
        self.take_request(|b| matches!(b, RequestBody::EndTxn { .. }))
    }

    /// Answers the EndTxn in flight; returns what it asked.
    fn answer_end(
        &mut self,
        result: Result<ProducerIdentity, KafkaError>,
    ) -> (ProducerIdentity, TransactionResult) {
        let (_, connection, request) = self.take_end().expect("an EndTxn");
        let RequestBody::EndTxn {
            producer,
            result: asked,
            ..
        } = request.body
        else {
            unreachable!()
        };
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::EndTxn { result },
        );
        (producer, asked)
    }

    /// A transactional producer with metadata (`leaders[p]` leads p), coordinator broker
    /// 2, producer id 500 epoch 0, and its first transaction begun.
    fn txn_ready(config: ProducerConfig, leaders: &[Option<u32>]) -> Harness {
        let mut h = Harness::new(config);
        h.tick(0);
        h.answer_metadata(leaders, 0);
        h.answer_find(2);
        h.answer_txn_init(Ok(identity(500, 0)));
        assert_eq!(h.txn, vec![begin(identity(500, 0))]);
        h.txn.clear();
        h
    }
}

#[test]
fn init_transactions_finds_the_coordinator_and_retries_until_it_gets_a_producer_id() {
    let mut h = Harness::new(txn_config(10, 0));
    h.tick(0);
    assert_eq!(
        h.inits(),
        0,
        "no idempotent InitProducerId for a transactional producer"
    );
    assert!(
        !h.p.accepts_sends(),
        "no transaction before initTransactions completes"
    );
    h.answer_metadata(&[Some(1)], 0);
    h.answer_find(2);
    let (broker, connection, request) = h.take_txn_init().expect("InitProducerId");
    assert_eq!(broker, BrokerId(2), "sent to the coordinator");
    assert_eq!(
        request.body,
        RequestBody::InitTxnProducerId {
            transactional_id: TXN_ID.into(),
            transaction_timeout_ms: 60_000,
            producer_id_and_epoch: None,
        }
    );
    // Retriable: asked again after retry.backoff.ms, at the same coordinator.
    h.respond(
        connection,
        request.correlation_id,
        ResponseBody::InitProducerId {
            result: Err(KafkaError::ConcurrentTransactions),
        },
    );
    h.tick(50);
    assert!(h.take_txn_init().is_none(), "backing off");
    h.tick(100);
    assert_eq!(
        h.answer_txn_init(Err(KafkaError::NotCoordinator)),
        BrokerId(2)
    );
    // NOT_COORDINATOR: the coordinator is looked up again.
    h.tick(200);
    assert!(h.take_txn_init().is_none());
    h.answer_find(3);
    assert_eq!(h.answer_txn_init(Ok(identity(500, 4))), BrokerId(3));
    assert_eq!(h.txn, vec![begin(identity(500, 4))]);
    assert!(h.p.accepts_sends());
    assert_eq!(h.p.transaction_state(), Some(TxnState::InTransaction));
}

#[test]
fn a_lost_connection_to_the_coordinator_finds_it_again() {
    let mut h = Harness::new(txn_config(10, 0));
    h.tick(0);
    h.answer_metadata(&[Some(1)], 0);
    h.answer_find(2);
    assert!(h.take_txn_init().is_some());
    h.close(BrokerId(2));
    h.tick(100);
    h.answer_find(3);
    assert_eq!(h.answer_txn_init(Ok(identity(7, 0))), BrokerId(3));
    assert_eq!(h.txn, vec![begin(identity(7, 0))]);
}

#[test]
fn a_partitions_batches_wait_until_it_is_added_and_are_transactional() {
    let mut h = Harness::txn_ready(txn_config(10, 0), &[Some(1), Some(1)]);
    h.send_keyed("v0", "k");
    assert_eq!(
        h.produces(),
        0,
        "held until the coordinator added the partition"
    );
    let adds = h.adds();
    let [RequestBody::AddPartitionsToTxn {
        transactional_id,
        producer,
        partitions,
        verify_only,
    }] = &adds[..]
    else {
        panic!("one AddPartitionsToTxn: {adds:?}")
    };
    assert_eq!(
        (
            transactional_id.as_str(),
            *producer,
            partitions.len(),
            *verify_only
        ),
        (TXN_ID, identity(500, 0), 1, false)
    );
    let partition = partitions[0];
    // A second record to the same partition while the add is in flight asks nothing new.
    h.send_keyed("v1", "k");
    assert_eq!(h.adds().len(), 1);
    assert_eq!(h.produces(), 0);
    assert_eq!(h.answer_add(None), vec![partition]);
    let produce = h.take_produce();
    let (tp, batch) = &produce.batches[0];
    assert_eq!(*tp, partition);
    assert!(batch.attributes & 0x10 != 0, "a transactional batch");
    assert_eq!(
        (batch.producer_id, batch.producer_epoch, batch.base_sequence),
        (ProducerId(500), 0, 0)
    );
    assert_eq!(produce.values(), ["v0", "v1"]);
    // The partition stays added for the rest of the transaction: no second request.
    h.answer_produce(&produce, vec![Ok(0)]);
    h.send_keyed("v2", "k");
    assert!(h.take_add().is_none());
    let produce = h.take_produce();
    assert_eq!(produce.sequence(), 2);
}

#[test]
fn commit_flushes_waits_for_every_send_then_adopts_the_bumped_epoch() {
    let mut config = txn_config(2, 0);
    config.linger_ms = 1_000;
    let mut h = Harness::txn_ready(config, &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    assert_eq!(h.produces(), 0, "lingering");
    h.send("v1");
    assert_eq!(h.txn, vec![end(true)]);
    assert!(!h.p.accepts_sends(), "committing");
    let produce = h.take_produce();
    assert_eq!(
        produce.values(),
        ["v0", "v1"],
        "the commit flushed the batch"
    );
    assert!(
        h.take_end().is_none(),
        "a send of the transaction is outstanding"
    );
    h.tick(500);
    assert!(h.take_end().is_none());
    h.answer_produce(&produce, vec![Ok(10)]);
    let (producer, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(
        (producer, asked),
        (identity(500, 0), TransactionResult::Commit)
    );
    assert_eq!(h.txn, vec![end(true), ended(None), begin(identity(500, 1))]);
    // The next transaction: the partition is added again, sequences restart at 0 under
    // the new epoch.
    h.send("v2");
    h.send("v3");
    h.answer_add(None);
    let produce = h.take_produce();
    let batch = &produce.batches[0].1;
    assert_eq!(
        (batch.producer_epoch, batch.base_sequence),
        (1, 0),
        "the new epoch, sequences from 0"
    );
}

#[test]
fn the_rng_decides_commit_or_abort() {
    // Always abort: the unsent records fail, EndTxn(ABORT).
    let mut h = Harness::txn_ready(txn_config(2, 100), &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Ok(0)]);
    h.send("v1");
    assert_eq!(h.txn, vec![end(false)]);
    // The last record was never sent: it fails at once.
    assert_eq!(
        h.completed[1],
        (
            "v1".to_string(),
            SendOutcome::Fail {
                partition: Some(tp(0)),
                error: KafkaError::TransactionAborted
            }
        )
    );
    assert_eq!(h.produces(), 0);
    let (_, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(asked, TransactionResult::Abort);
    assert_eq!(
        h.txn,
        vec![end(false), ended(None), begin(identity(500, 1))]
    );

    // Half and half: both outcomes over a run of transactions, drawn from the rng.
    let mut h = Harness::txn_ready(txn_config(1, 50), &[Some(1)]);
    let mut decisions = Vec::new();
    let mut epoch = 0;
    for n in 0..40 {
        h.txn.clear();
        h.send(&format!("v{n}"));
        let ProducerAction::TxnEnd { commit } = h.txn[0] else {
            panic!("{:?}", h.txn)
        };
        decisions.push(commit);
        if commit {
            h.answer_add(None);
            let produce = h.take_produce();
            h.answer_produce(&produce, vec![Ok(n)]);
            epoch += 1;
            let (_, asked) = h.answer_end(Ok(identity(500, epoch)));
            assert_eq!(asked, TransactionResult::Commit);
        } else {
            // Aborted before its partition was asked for: nothing for the coordinator.
            assert!(h.take_add().is_none() && h.take_end().is_none());
        }
        assert_eq!(h.txn.last(), Some(&begin(identity(500, epoch))));
    }
    let commits = decisions.iter().filter(|c| **c).count();
    assert!((5..=35).contains(&commits), "{commits} commits of 40");
}

#[test]
fn an_abort_with_nothing_added_needs_no_end_txn() {
    // No metadata yet: the record waits for a partition when the abort comes.
    let mut h = Harness::new(txn_config(1, 100));
    h.tick(0);
    h.answer_find(2);
    h.answer_txn_init(Ok(identity(500, 0)));
    h.send("v0");
    assert_eq!(
        h.completed,
        vec![(
            "v0".to_string(),
            SendOutcome::Fail {
                partition: None,
                error: KafkaError::TransactionAborted
            }
        )]
    );
    assert!(h.take_end().is_none());
    assert_eq!(
        h.txn,
        vec![
            begin(identity(500, 0)),
            end(false),
            ended(None),
            begin(identity(500, 0))
        ]
    );
}

#[test]
fn a_failed_send_aborts_the_transaction() {
    let mut h = Harness::txn_ready(txn_config(3, 0), &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    // KIP-588: INVALID_PRODUCER_EPOCH on a produce is abortable.
    h.answer_produce(&produce, vec![Err(KafkaError::InvalidProducerEpoch)]);
    assert_eq!(h.txn, vec![end(false)]);
    assert!(
        !h.p.accepts_sends(),
        "the rest of the transaction is not sent"
    );
    let (producer, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(
        (producer, asked),
        (identity(500, 0), TransactionResult::Abort)
    );
    assert_eq!(
        h.txn,
        vec![end(false), ended(None), begin(identity(500, 1))]
    );
    assert!(h.p.accepts_sends(), "a fresh transaction");
}

#[test]
fn a_commit_whose_flush_fails_returns_the_error_then_aborts() {
    let mut h = Harness::txn_ready(txn_config(1, 0), &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Err(KafkaError::InvalidRecord)]);
    assert_eq!(
        h.txn,
        vec![
            end(true),
            ended(Some(KafkaError::InvalidRecord)),
            end(false)
        ]
    );
    let (_, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(asked, TransactionResult::Abort);
}

#[test]
fn end_txn_retries_through_a_coordinator_move() {
    let mut h = Harness::txn_ready(txn_config(1, 0), &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Ok(0)]);
    h.answer_end(Err(KafkaError::ConcurrentTransactions));
    h.tick(100);
    h.answer_end(Err(KafkaError::NotCoordinator));
    h.tick(200);
    h.answer_find(3);
    let (producer, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(
        (producer, asked),
        (identity(500, 0), TransactionResult::Commit)
    );
    assert_eq!(h.txn, vec![end(true), ended(None), begin(identity(500, 1))]);
}

#[test]
fn producer_fenced_starts_over_with_init_transactions() {
    let mut h = Harness::txn_ready(txn_config(5, 0), &[Some(1), Some(1)]);
    h.send_keyed("v0", "a");
    h.answer_add(None);
    let produce = h.take_produce();
    h.send_keyed("v1", "a");
    let second = h.take_produce();
    let pa = super::super::super::partitioner::partition_for_key(b"a", 2);
    let other = (0..)
        .map(|n| format!("k{n}"))
        .find(|k| super::super::super::partitioner::partition_for_key(k.as_bytes(), 2) != pa)
        .unwrap();
    h.send_keyed("v2", &other);
    assert_eq!(h.adds().len(), 1, "v2's partition is being added");
    // Fenced: the transaction ends; what was not in flight fails at once, the rest when
    // answered, then the producer starts over.
    h.answer_produce(&produce, vec![Err(KafkaError::ProducerFenced)]);
    assert_eq!(h.txn, vec![ended(Some(KafkaError::ProducerFenced))]);
    assert!(!h.p.accepts_sends());
    assert_eq!(h.p.transaction_state(), Some(TxnState::Fatal));
    let failed: Vec<_> = h.completed.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(failed, ["v0", "v2"]);
    h.answer_produce(&second, vec![Ok(1)]);
    assert_eq!(h.completed[2], ("v1".to_string(), ok(pa, 1)));
    assert_eq!(
        h.p.transaction_state(),
        Some(TxnState::Fatal),
        "an add in flight"
    );
    h.answer_add(None);
    assert_eq!(h.p.transaction_state(), Some(TxnState::Initializing));
    // After the backoff: a new producer — the coordinator found again, InitProducerId
    // without the old id (the coordinator bumps the epoch, aborting what was open).
    h.tick(100);
    h.answer_find(2);
    let (_, connection, request) = h.take_txn_init().expect("initTransactions again");
    let RequestBody::InitTxnProducerId {
        producer_id_and_epoch,
        ..
    } = &request.body
    else {
        unreachable!()
    };
    assert_eq!(*producer_id_and_epoch, None);
    h.respond(
        connection,
        request.correlation_id,
        ResponseBody::InitProducerId {
            result: Ok(identity(500, 2)),
        },
    );
    assert_eq!(
        h.txn,
        vec![
            ended(Some(KafkaError::ProducerFenced)),
            begin(identity(500, 2))
        ]
    );
    h.send_keyed("v3", "a");
    h.answer_add(None);
    let produce = h.take_produce();
    let batch = &produce.batches[0].1;
    assert_eq!((batch.producer_epoch, batch.base_sequence), (2, 0));
}

#[test]
fn a_fenced_end_txn_is_fatal_too() {
    let mut h = Harness::txn_ready(txn_config(1, 0), &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Ok(0)]);
    h.answer_end(Err(KafkaError::ProducerFenced));
    assert_eq!(
        h.txn,
        vec![end(true), ended(Some(KafkaError::ProducerFenced))]
    );
    h.tick(100);
    h.answer_find(2);
    assert!(h.take_txn_init().is_some());
}

#[test]
fn draining_commits_the_open_transaction_and_begins_no_other() {
    let mut h = Harness::txn_ready(txn_config(10, 0), &[Some(1)]);
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    assert_eq!(h.p.pending(), 2, "the send and the open transaction");
    h.p.finish_transactions(h.now);
    h.pump();
    assert_eq!(h.txn, vec![end(true)]);
    h.answer_produce(&produce, vec![Ok(0)]);
    h.answer_end(Ok(identity(500, 1)));
    assert_eq!(h.txn, vec![end(true), ended(None)]);
    assert!(!h.p.accepts_sends());
    assert_eq!(h.p.pending(), 0);
}

#[test]
fn errors_are_classified_as_kafkas_transaction_manager_does() {
    use KafkaError as E;
    use TxnErrorAction as A;
    use TxnRequest as R;
    for (request, error, action) in [
        (R::FindCoordinator, E::CoordinatorNotAvailable, A::Retry),
        (R::FindCoordinator, E::NetworkException, A::Retry),
        (R::InitProducerId, E::NotCoordinator, A::FindCoordinator),
        (
            R::InitProducerId,
            E::CoordinatorNotAvailable,
            A::FindCoordinator,
        ),
        (R::InitProducerId, E::CoordinatorLoadInProgress, A::Retry),
        (R::InitProducerId, E::ConcurrentTransactions, A::Retry),
        (R::InitProducerId, E::ProducerFenced, A::Fatal),
        (R::InitProducerId, E::InvalidProducerEpoch, A::Fatal),
        (R::AddPartitions, E::NetworkException, A::FindCoordinator),
        (R::AddPartitions, E::UnknownTopicOrPartition, A::Retry),
        (R::AddPartitions, E::TransactionAbortable, A::Abort),
        (R::AddPartitions, E::UnknownProducerId, A::Abort),
        (R::AddPartitions, E::InvalidProducerIdMapping, A::Fatal),
        (R::AddPartitions, E::InvalidTxnState, A::Fatal),
        (R::AddPartitions, E::ProducerFenced, A::Fatal),
        (R::EndTxn, E::ConcurrentTransactions, A::Retry),
        (R::EndTxn, E::TransactionAbortable, A::Abort),
        (R::EndTxn, E::InvalidProducerEpoch, A::Fatal),
        (R::EndTxn, E::InvalidTxnState, A::Fatal),
        (R::Send, E::InvalidProducerEpoch, A::Abort),
        (R::Send, E::RequestTimedOut, A::Abort),
        (R::Send, E::OutOfOrderSequenceNumber, A::Abort),
        (R::Send, E::ProducerFenced, A::Fatal),
    ] {
        assert_eq!(classify(request, error), action, "{request:?} {error}");
    }
}

#[test]
fn a_transactional_id_needs_idempotence() {
    let bad = ProducerConfig {
        enable_idempotence: false,
        ..txn_config(10, 0)
    };
    assert!(bad.validate().unwrap_err().contains("idempotence"));
    let bad = ProducerConfig {
        acks: Acks::Leader,
        ..txn_config(10, 0)
    };
    assert!(bad.validate().is_err());
    assert!(txn_config(10, 0).validate().is_ok());
    let c = config();
    assert_eq!(
        (c.transactional_id, c.transaction_timeout_ms, c.txn_workload),
        (
            None,
            60_000,
            TxnWorkload {
                records: 10,
                abort_percent: 0,
                by_application: false,
            }
        )
    );
}

// --- application-driven transactions (a processor's, KIP-447) ---

const GROUP: &str = "enrich";

fn app_config() -> ProducerConfig {
    let mut config = txn_config(1, 0);
    config.txn_workload.by_application = true;
    config
}

/// The group membership the processor's consumer hands over (generation 3).
fn group_member() -> MemberRef {
    MemberRef {
        group_id: GROUP.into(),
        generation_id: crate::broker::proto::Generation(3),
        member_id: "m-1".into(),
        group_instance_id: None,
    }
}

fn input(partition: u32) -> TopicPartition {
    TopicPartition::new("input", partition)
}

/// Input partition 0 consumed up to offset 7 (the next to read), partition 1 up to 2.
fn consumed() -> Vec<(TopicPartition, CommittedOffset)> {
    vec![
        (
            input(0),
            CommittedOffset {
                offset: Offset(7),
                leader_epoch: Some(LeaderEpoch(1)),
            },
        ),
        (
            input(1),
            CommittedOffset {
                offset: Offset(2),
                leader_epoch: None,
            },
        ),
    ]
}

impl Harness {
    /// An application-driven transactional producer with metadata, coordinator broker 2
    /// and producer id 500 epoch 0: no transaction begun.
    fn app_ready(leaders: &[Option<u32>]) -> Harness {
        let mut h = Harness::new(app_config());
        h.tick(0);
        h.answer_metadata(leaders, 0);
        h.answer_find(2);
        h.answer_txn_init(Ok(identity(500, 0)));
        h
    }

    fn begin_app(&mut self) -> bool {
        let began = self.p.begin_transaction();
        self.pump();
        began
    }

    fn end_app(&mut self, commit: bool) -> bool {
        let open = self.p.end_transaction(commit, self.now);
        self.pump();
        open
    }

    fn send_offsets(&mut self) {
        self.p
            .send_offsets_to_transaction(consumed(), group_member(), self.now);
        self.pump();
    }

    /// Answers the AddOffsetsToTxn in flight (asserting it is for the group, at broker 2).
    fn answer_add_offsets(&mut self, error: Option<KafkaError>) {
        let (broker, connection, request) = self
            .take_request(|b| matches!(b, RequestBody::AddOffsetsToTxn { .. }))
            .expect("an AddOffsetsToTxn");
        assert_eq!(broker, BrokerId(2), "to the transaction coordinator");
        let RequestBody::AddOffsetsToTxn { group_id, .. } = &request.body else {
            unreachable!()
        };
        assert_eq!(group_id, GROUP);
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::AddOffsetsToTxn { error },
        );
    }

    /// Answers the FindCoordinator for the group in flight with `coordinator`.
    fn answer_group_find(&mut self, coordinator: u32) {
        let (_, connection, request) = self
            .take_request(|b| matches!(b, RequestBody::FindCoordinator { .. }))
            .expect("a FindCoordinator for the group");
        assert_eq!(
            request.body,
            RequestBody::FindCoordinator { key: GROUP.into() }
        );
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::FindCoordinator {
                result: Ok(BrokerId(coordinator)),
            },
        );
    }

    fn take_txn_offset_commit(&mut self) -> Option<(BrokerId, ConnectionId, Request)> {
        self.take_request(|b| matches!(b, RequestBody::TxnOffsetCommit(_)))
    }

    /// Answers the TxnOffsetCommit in flight with `error` for every partition; returns
    /// the broker it went to.
    fn answer_txn_offset_commit(&mut self, error: Option<KafkaError>) -> BrokerId {
        let (broker, connection, request) =
            self.take_txn_offset_commit().expect("a TxnOffsetCommit");
        let RequestBody::TxnOffsetCommit(commit) = &request.body else {
            unreachable!()
        };
        let partitions = commit.offsets.iter().map(|(tp, _)| (*tp, error)).collect();
        self.respond(
            connection,
            request.correlation_id,
            ResponseBody::TxnOffsetCommit { partitions },
        );
        broker
    }
}

#[test]
fn an_application_driven_producer_begins_a_transaction_only_when_told() {
    let mut h = Harness::app_ready(&[Some(1)]);
    // After initTransactions: ready, nothing begun.
    h.tick(500);
    assert!(h.txn.is_empty(), "{:?}", h.txn);
    assert_eq!(h.p.transaction_state(), Some(TxnState::Ready));
    assert!(!h.p.accepts_sends());
    assert!(!h.end_app(true), "no transaction to end");
    assert!(h.begin_app());
    assert_eq!(h.txn, vec![begin(identity(500, 0))]);
    assert!(!h.begin_app(), "one is open already");
    // `records` (1 here) is not read: the application ends the transaction.
    h.send("v0");
    h.send("v1");
    assert_eq!(h.txn.len(), 1, "{:?}", h.txn);
    assert!(h.p.accepts_sends());
    h.answer_add(None);
    let produce = h.take_produce();
    assert_eq!(produce.values(), ["v0", "v1"]);
    h.answer_produce(&produce, vec![Ok(0)]);
    assert!(h.end_app(true));
    let (_, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(asked, TransactionResult::Commit);
    // After a completed transaction: none begun by itself.
    h.tick(1_000);
    assert_eq!(h.txn, vec![begin(identity(500, 0)), end(true), ended(None)]);
    assert_eq!(h.p.transaction_state(), Some(TxnState::Ready));
    assert!(!h.p.accepts_sends());
    // An abort of a transaction that added nothing ends without EndTxn: still none begun.
    h.txn.clear();
    assert!(h.begin_app());
    assert!(h.end_app(false));
    h.tick(2_000);
    assert!(h.take_end().is_none());
    assert_eq!(
        h.txn,
        vec![begin(identity(500, 1)), end(false), ended(None)]
    );
    assert_eq!(h.p.transaction_state(), Some(TxnState::Ready));
    assert!(h.begin_app());
    assert_eq!(h.txn.last(), Some(&begin(identity(500, 1))));
}

#[test]
fn offsets_go_through_add_offsets_and_the_group_coordinator_before_end_txn() {
    let mut h = Harness::app_ready(&[Some(1)]);
    assert!(h.begin_app());
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Ok(0)]);
    h.send_offsets();
    // AddOffsetsToTxn to the transaction coordinator, with the producer's identity.
    let (broker, connection, request) = h
        .take_request(|b| matches!(b, RequestBody::AddOffsetsToTxn { .. }))
        .expect("an AddOffsetsToTxn");
    assert_eq!(broker, BrokerId(2));
    assert_eq!(
        request.body,
        RequestBody::AddOffsetsToTxn {
            transactional_id: TXN_ID.into(),
            producer: identity(500, 0),
            group_id: GROUP.into(),
        }
    );
    // commitTransaction now: EndTxn waits until the offsets are stored.
    assert!(h.end_app(true));
    assert!(h.take_end().is_none());
    h.respond(
        connection,
        request.correlation_id,
        ResponseBody::AddOffsetsToTxn { error: None },
    );
    assert!(h.take_end().is_none(), "the offsets are not stored yet");
    assert!(
        h.take_txn_offset_commit().is_none(),
        "the group's coordinator is not known yet"
    );
    h.answer_group_find(3);
    let (broker, connection, request) = h.take_txn_offset_commit().expect("a TxnOffsetCommit");
    assert_eq!(broker, BrokerId(3), "to the group's coordinator");
    assert_eq!(
        request.body,
        RequestBody::TxnOffsetCommit(TxnOffsetCommitRequest {
            transactional_id: TXN_ID.into(),
            producer: identity(500, 0),
            member: group_member(),
            offsets: consumed(),
        })
    );
    h.tick(500);
    assert!(h.take_end().is_none(), "still waiting for the offsets");
    h.respond(
        connection,
        request.correlation_id,
        ResponseBody::TxnOffsetCommit {
            partitions: vec![(input(0), None), (input(1), None)],
        },
    );
    let (producer, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(
        (producer, asked),
        (identity(500, 0), TransactionResult::Commit)
    );
    assert_eq!(h.txn, vec![begin(identity(500, 0)), end(true), ended(None)]);
}

#[test]
fn an_offsets_only_transaction_still_ends_with_end_txn() {
    // Only markers were read: no record to write, the offsets alone are committed.
    let mut h = Harness::app_ready(&[Some(1)]);
    assert!(h.begin_app());
    h.send_offsets();
    h.answer_add_offsets(None);
    h.answer_group_find(2);
    assert_eq!(h.answer_txn_offset_commit(None), BrokerId(2));
    assert!(h.adds().is_empty(), "no partition of the topic in it");
    assert!(h.end_app(true));
    let (_, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(asked, TransactionResult::Commit);
    assert_eq!(h.txn, vec![begin(identity(500, 0)), end(true), ended(None)]);
}

#[test]
fn a_fenced_group_member_aborts_the_transaction_with_its_offsets() {
    for error in [
        KafkaError::UnknownMemberId,
        KafkaError::IllegalGeneration,
        KafkaError::FencedInstanceId,
    ] {
        let mut h = Harness::app_ready(&[Some(1)]);
        assert!(h.begin_app());
        h.send_offsets();
        h.answer_add_offsets(None);
        h.answer_group_find(3);
        assert!(h.end_app(true));
        h.answer_txn_offset_commit(Some(error));
        // commitTransaction throws (CommitFailedException); the application aborts, and
        // the abort reaches the coordinator: the offsets partition is in the transaction.
        assert_eq!(
            h.txn,
            vec![
                begin(identity(500, 0)),
                end(true),
                ended(Some(error)),
                end(false)
            ],
            "{error}"
        );
        let (_, asked) = h.answer_end(Ok(identity(500, 1)));
        assert_eq!(asked, TransactionResult::Abort, "{error}");
        assert!(h.take_txn_offset_commit().is_none(), "{error}: not retried");
    }
}

#[test]
fn not_coordinator_on_txn_offset_commit_finds_the_groups_coordinator_again() {
    let mut h = Harness::app_ready(&[Some(1)]);
    assert!(h.begin_app());
    h.send_offsets();
    h.answer_add_offsets(None);
    h.answer_group_find(3);
    assert_eq!(
        h.answer_txn_offset_commit(Some(KafkaError::NotCoordinator)),
        BrokerId(3)
    );
    assert!(
        h.txn == vec![begin(identity(500, 0))],
        "no abort: {:?}",
        h.txn
    );
    h.tick(50);
    assert!(
        h.take_request(|b| matches!(b, RequestBody::FindCoordinator { .. }))
            .is_none()
            && h.take_txn_offset_commit().is_none(),
        "backing off"
    );
    h.tick(100);
    // Found again (the transaction coordinator is not asked again).
    assert!(h.take_find().is_none());
    h.answer_group_find(1);
    assert_eq!(h.answer_txn_offset_commit(None), BrokerId(1));
    assert!(h.end_app(true));
    let (_, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(asked, TransactionResult::Commit);
}

#[test]
fn an_abortable_add_offsets_aborts_without_sending_the_offsets() {
    let mut h = Harness::app_ready(&[Some(1)]);
    assert!(h.begin_app());
    h.send("v0");
    h.answer_add(None);
    let produce = h.take_produce();
    h.answer_produce(&produce, vec![Ok(0)]);
    h.send_offsets();
    h.answer_add_offsets(Some(KafkaError::TransactionAbortable));
    assert_eq!(h.txn, vec![begin(identity(500, 0)), end(false)]);
    assert!(h
        .take_request(|b| matches!(b, RequestBody::FindCoordinator { .. }))
        .is_none());
    assert!(h.take_txn_offset_commit().is_none());
    let (_, asked) = h.answer_end(Ok(identity(500, 1)));
    assert_eq!(asked, TransactionResult::Abort);
    assert_eq!(h.txn.last(), Some(&ended(None)), "and none begun after it");
}

#[test]
fn offsets_errors_are_classified_as_kafkas_transaction_manager_does() {
    use KafkaError as E;
    use TxnErrorAction as A;
    use TxnRequest as R;
    for (request, error, action) in [
        (R::AddOffsets, E::NotCoordinator, A::FindCoordinator),
        (R::AddOffsets, E::ConcurrentTransactions, A::Retry),
        (R::AddOffsets, E::TransactionAbortable, A::Abort),
        (R::AddOffsets, E::ProducerFenced, A::Fatal),
        (R::TxnOffsetCommit, E::UnknownMemberId, A::Abort),
        (R::TxnOffsetCommit, E::IllegalGeneration, A::Abort),
        (R::TxnOffsetCommit, E::FencedInstanceId, A::Abort),
        (R::TxnOffsetCommit, E::NotCoordinator, A::FindCoordinator),
        (R::TxnOffsetCommit, E::CoordinatorLoadInProgress, A::Retry),
        (R::TxnOffsetCommit, E::UnknownTopicOrPartition, A::Retry),
        (R::TxnOffsetCommit, E::ProducerFenced, A::Fatal),
    ] {
        assert_eq!(classify(request, error), action, "{request:?} {error}");
    }
}
