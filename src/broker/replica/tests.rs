//! Unit tests of the replica core: calls in, outcomes and events out. Replicas of one
//! partition on different brokers live in different directories of one disk and
//! exchange calls the way the shells would carry them.

use super::*;
use crate::broker::proto::{AbortedTransaction, IsolationLevel};
use crate::disk::FsDisk;
use crate::log::{decode_batches, BatchBuilder, BatchMeta, CheckpointFile, ProducerId};
use proptest::prelude::*;

const RU: IsolationLevel = IsolationLevel::ReadUncommitted;
const RC: IsolationLevel = IsolationLevel::ReadCommitted;
use proptest::test_runner::{RngAlgorithm, TestError, TestRng, TestRunner};
use std::path::PathBuf;

const B1: BrokerId = BrokerId(1);
const B2: BrokerId = BrokerId(2);
const B3: BrokerId = BrokerId(3);
const MAX_BYTES: usize = 1 << 20;

struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn disk(name: &str) -> (FsDisk, TempRoot) {
    let root = std::env::temp_dir().join(format!("ksim-replica-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    (FsDisk::new(&root).unwrap(), TempRoot(root))
}

fn dir(id: BrokerId) -> PathBuf {
    PathBuf::from(format!("broker-{id}/orders-0"))
}

fn open_with(disk: &FsDisk, id: BrokerId, config: ReplicaConfig) -> Replica<FsDisk> {
    open_at(disk, id, config, None)
}

/// Opens with the HW the broker's checkpoint holds for the partition.
fn open_at(
    disk: &FsDisk,
    id: BrokerId,
    config: ReplicaConfig,
    checkpointed_hw: Option<Offset>,
) -> Replica<FsDisk> {
    Replica::open(id, disk.clone(), &dir(id), config, checkpointed_hw)
        .unwrap()
        .0
}

fn open(disk: &FsDisk, id: BrokerId) -> Replica<FsDisk> {
    open_with(disk, id, ReplicaConfig::default())
}

fn encode(meta: BatchMeta, values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(meta);
    for v in values {
        b.push(0, None, Some(v.as_bytes()), &[]);
    }
    b.encode(Offset(0)).to_vec()
}

/// A producer batch without idempotence.
fn batch(values: &[&str]) -> Vec<u8> {
    encode(BatchMeta::default(), values)
}

/// An idempotent producer's batch.
fn idempotent(producer_id: i64, producer_epoch: i16, sequence: i32, values: &[&str]) -> Vec<u8> {
    encode(
        BatchMeta {
            producer_id: ProducerId(producer_id),
            producer_epoch,
            base_sequence: sequence,
            ..BatchMeta::default()
        },
        values,
    )
}

fn produce(leader: &mut Replica<FsDisk>, values: &[&str]) -> LeaderAppend {
    leader
        .append_as_leader(&batch(values), Acks::Leader)
        .unwrap()
}

/// Every value in the log, with its offset and the epoch of its batch.
fn log_of(r: &Replica<FsDisk>) -> Vec<(u64, i32, String)> {
    let bytes = r.log().read(r.log_start_offset(), usize::MAX).unwrap();
    let mut out = Vec::new();
    for b in decode_batches(&bytes).unwrap() {
        for rec in b.records {
            let value = String::from_utf8(rec.value.unwrap()).unwrap();
            out.push((rec.offset.0, b.partition_leader_epoch.0, value));
        }
    }
    out
}

fn values(r: &Replica<FsDisk>) -> Vec<String> {
    log_of(r).into_iter().map(|(_, _, v)| v).collect()
}

/// One follower fetch round trip; returns the follower's outcome and any ISR proposal.
fn fetch(
    leader: &mut Replica<FsDisk>,
    follower: &mut Replica<FsDisk>,
    now_ms: u64,
) -> (FetchOutcome, Option<IsrProposal>) {
    let request = follower.fetch_request().expect("follower is fetching");
    let answer = leader
        .on_follower_fetch(follower.id(), request, MAX_BYTES, now_ms)
        .unwrap();
    let outcome = follower.on_fetch_response(&answer.data).unwrap();
    (outcome, answer.isr_proposal)
}

/// Runs the follower's OffsetsForLeaderEpoch exchange to the end; returns the rounds.
fn truncate(leader: &Replica<FsDisk>, follower: &mut Replica<FsDisk>) -> usize {
    let mut rounds = 0;
    while let Some(request) = follower.epoch_request() {
        let answer = leader.on_epoch_request(request).unwrap();
        rounds += 1;
        match follower.on_epoch_response(request, answer).unwrap() {
            TruncationStep::Done => break,
            TruncationStep::AskAgain(_) => {}
            TruncationStep::Ignored => panic!("a truncating follower ignored an answer"),
        }
    }
    rounds
}

/// Leader B1 and followers B2, B3 of epoch 1, all in the ISR.
fn three(disk: &FsDisk, config: ReplicaConfig) -> [Replica<FsDisk>; 3] {
    let isr = vec![B1, B2, B3];
    let mut leader = open_with(disk, B1, config.clone());
    leader
        .become_leader(LeaderEpoch(1), isr.clone(), isr, PartitionEpoch(0), 0)
        .unwrap();
    let mut f2 = open_with(disk, B2, config.clone());
    let mut f3 = open_with(disk, B3, config);
    for f in [&mut f2, &mut f3] {
        f.become_follower(B1, LeaderEpoch(1)).unwrap();
        assert_eq!(
            f.role(),
            Role::Follower {
                leader: B1,
                truncating: false
            }
        );
    }
    [leader, f2, f3]
}

#[test]
fn hw_is_the_min_leo_over_the_isr_and_never_moves_backwards() {
    let (disk, _root) = disk("hw");
    let [mut leader, mut f2, mut f3] = three(&disk, ReplicaConfig::default());
    produce(&mut leader, &["a", "b"]);
    produce(&mut leader, &["c"]);
    assert_eq!(
        leader.high_watermark(),
        Offset(0),
        "followers' LEOs unknown"
    );
    fetch(&mut leader, &mut f2, 1);
    fetch(&mut leader, &mut f3, 1);
    assert_eq!(
        leader.high_watermark(),
        Offset(0),
        "fetches at 0 confirm nothing"
    );
    fetch(&mut leader, &mut f2, 2);
    assert_eq!(leader.high_watermark(), Offset(0), "f3 still at 0");
    let (outcome, _) = fetch(&mut leader, &mut f3, 2);
    assert_eq!(outcome, FetchOutcome::Empty);
    assert_eq!(leader.high_watermark(), Offset(3));
    assert_eq!(f3.high_watermark(), Offset(3));
    assert_eq!(
        f2.high_watermark(),
        Offset(0),
        "learns it on its next fetch"
    );
    fetch(&mut leader, &mut f2, 3);
    assert_eq!(f2.high_watermark(), Offset(3));
    // A late (reordered) fetch from an older offset lowers the follower's LEO, not the HW.
    let stale = FollowerFetch {
        fetch_offset: Offset(1),
        last_fetched_epoch: Some(LeaderEpoch(1)),
        current_leader_epoch: LeaderEpoch(1),
    };
    let answer = leader.on_follower_fetch(B2, stale, MAX_BYTES, 4).unwrap();
    assert_eq!(answer.data.high_watermark, Offset(3));
    assert_eq!(leader.high_watermark(), Offset(3));
    let events = leader.take_events();
    let advances: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ReplicaEvent::HwAdvanced { .. }))
        .collect();
    assert_eq!(advances, vec![&ReplicaEvent::HwAdvanced { hw: Offset(3) }]);
}

#[test]
fn strict_min_isr_holds_the_hw_and_acks_all_gets_not_enough_replicas() {
    for lenient in [false, true] {
        let (disk, _root) = disk(&format!("minisr-{lenient}"));
        let config = ReplicaConfig {
            min_insync_replicas: 2,
            legacy_lenient_min_isr: lenient,
            ..ReplicaConfig::default()
        };
        let mut leader = open_with(&disk, B1, config);
        leader
            .become_leader(LeaderEpoch(0), vec![B1], vec![B1, B2], PartitionEpoch(0), 0)
            .unwrap();
        let refused = leader.append_as_leader(&batch(&["x"]), Acks::All);
        assert!(matches!(
            refused,
            Err(ReplicaError::Refused(KafkaError::NotEnoughReplicas))
        ));
        assert_eq!(leader.log_end_offset(), Offset(0), "nothing appended");
        let ok = leader
            .append_as_leader(&batch(&["y"]), Acks::Leader)
            .unwrap();
        assert_eq!(ok.base_offset, Offset(0));
        // KIP-966: |ISR| = 1 < 2, so the HW stays; the legacy switch advances it anyway.
        let expected = if lenient { Offset(1) } else { Offset(0) };
        assert_eq!(leader.high_watermark(), expected, "lenient={lenient}");
    }
}

#[test]
fn acks_all_completes_once_the_hw_passes_the_batch() {
    for lenient in [false, true] {
        let (disk, _root) = disk(&format!("acks-{lenient}"));
        let config = ReplicaConfig {
            min_insync_replicas: 2,
            legacy_lenient_min_isr: lenient,
            ..ReplicaConfig::default()
        };
        let both = vec![B1, B2];
        let mut leader = open_with(&disk, B1, config.clone());
        leader
            .become_leader(LeaderEpoch(1), both.clone(), both, PartitionEpoch(0), 0)
            .unwrap();
        let mut f2 = open_with(&disk, B2, config);
        f2.become_follower(B1, LeaderEpoch(1)).unwrap();
        let a = leader.append_as_leader(&batch(&["a"]), Acks::All).unwrap();
        assert_eq!(leader.check_acks_all(a.last_offset, a.leader_epoch), None);
        fetch(&mut leader, &mut f2, 1);
        fetch(&mut leader, &mut f2, 2);
        assert_eq!(
            leader.check_acks_all(a.last_offset, a.leader_epoch),
            Some(Ok(()))
        );
        // Appended, then the ISR shrinks below min.insync.replicas.
        let b = leader.append_as_leader(&batch(&["b"]), Acks::All).unwrap();
        leader.tick(40_000).unwrap();
        leader.set_isr(vec![B1], PartitionEpoch(1)).unwrap();
        let expected = if lenient {
            Some(Err(KafkaError::NotEnoughReplicasAfterAppend))
        } else {
            None // KIP-966: the HW stays, the producer times out
        };
        assert_eq!(
            leader.check_acks_all(b.last_offset, b.leader_epoch),
            expected
        );
        assert_eq!(
            leader.check_acks_all(b.last_offset, LeaderEpoch(0)),
            Some(Err(KafkaError::NotLeaderOrFollower))
        );
    }
}

#[test]
fn follower_hw_is_the_leaders_hw_capped_at_its_own_leo() {
    let (disk, _root) = disk("follower-hw");
    let isr = vec![B1, B2];
    let mut leader = open(&disk, B1);
    leader
        .become_leader(LeaderEpoch(1), isr, vec![B1, B2, B3], PartitionEpoch(0), 0)
        .unwrap();
    let mut f2 = open(&disk, B2);
    let mut f3 = open(&disk, B3);
    for f in [&mut f2, &mut f3] {
        f.become_follower(B1, LeaderEpoch(1)).unwrap();
    }
    produce(&mut leader, &["a"]);
    produce(&mut leader, &["b"]);
    fetch(&mut leader, &mut f2, 1);
    fetch(&mut leader, &mut f2, 2);
    assert_eq!(leader.high_watermark(), Offset(2), "B3 is not in the ISR");
    // B3 reads one batch at a time (max_bytes 1 still returns one whole batch).
    let request = f3.fetch_request().unwrap();
    let answer = leader.on_follower_fetch(B3, request, 1, 3).unwrap();
    assert_eq!(answer.data.high_watermark, Offset(2));
    f3.on_fetch_response(&answer.data).unwrap();
    assert_eq!(f3.log_end_offset(), Offset(1));
    assert_eq!(f3.high_watermark(), Offset(1));
    // A response of another leader epoch is stale: ignored.
    let stale = FetchData {
        leader_epoch: LeaderEpoch(0),
        ..answer.data
    };
    assert_eq!(f3.on_fetch_response(&stale).unwrap(), FetchOutcome::Ignored);
}

#[test]
fn idempotent_producer_duplicates_gaps_and_epochs() {
    let (disk, _root) = disk("idem");
    let mut leader = open(&disk, B1);
    leader
        .become_leader(LeaderEpoch(0), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    let first = idempotent(9, 0, 0, &["a", "b"]);
    let appended = leader.append_as_leader(&first, Acks::All).unwrap();
    assert_eq!(
        (appended.base_offset, appended.duplicate),
        (Offset(0), false)
    );
    produce(&mut leader, &["other"]);
    let second = idempotent(9, 0, 2, &["c"]);
    assert_eq!(
        leader
            .append_as_leader(&second, Acks::All)
            .unwrap()
            .base_offset,
        Offset(3)
    );
    // A retry of the first batch answers with where it went; nothing is appended.
    let retry = leader.append_as_leader(&first, Acks::All).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (Offset(0), Offset(1), true)
    );
    assert_eq!(leader.log_end_offset(), Offset(4));
    let gap = leader.append_as_leader(&idempotent(9, 0, 5, &["e"]), Acks::All);
    assert_eq!(
        gap.unwrap_err().kafka_error(),
        KafkaError::OutOfOrderSequenceNumber
    );
    leader
        .append_as_leader(&idempotent(9, 1, 0, &["new epoch"]), Acks::All)
        .unwrap();
    let fenced = leader.append_as_leader(&idempotent(9, 0, 3, &["old"]), Acks::All);
    assert_eq!(
        fenced.unwrap_err().kafka_error(),
        KafkaError::InvalidProducerEpoch
    );
    // Producer state is rebuilt from the log on reopen: the retry is still a duplicate.
    let before = leader.producer_state().clone();
    leader.close().unwrap();
    let mut reopened = open(&disk, B1);
    assert_eq!(reopened.producer_state(), &before);
    reopened
        .become_leader(LeaderEpoch(1), vec![B1], vec![B1], PartitionEpoch(1), 0)
        .unwrap();
    let again = idempotent(9, 1, 0, &["new epoch"]);
    let retry = reopened.append_as_leader(&again, Acks::All).unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (Offset(4), true));
}

#[test]
fn invalid_batches_and_non_leaders_are_refused() {
    let (disk, _root) = disk("refuse");
    let mut r = open(&disk, B1);
    let refused = r.append_as_leader(&batch(&["x"]), Acks::Leader);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::NotLeaderOrFollower
    );
    r.become_leader(LeaderEpoch(0), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    let mut corrupt = batch(&["x"]);
    *corrupt.last_mut().unwrap() ^= 1;
    let refused = r.append_as_leader(&corrupt, Acks::Leader);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::CorruptMessage
    );
    assert_eq!(r.log_end_offset(), Offset(0));
    // LeaderAndIsr with an epoch that is not newer is fenced.
    let stale = r.become_follower(B2, LeaderEpoch(0));
    assert_eq!(
        stale.unwrap_err().kafka_error(),
        KafkaError::FencedLeaderEpoch
    );
}

#[test]
fn isr_shrinks_after_the_lag_time_and_expands_on_catch_up() {
    let (disk, _root) = disk("isr");
    let isr = vec![B1, B2];
    let mut leader = open(&disk, B1);
    leader
        .become_leader(LeaderEpoch(1), isr.clone(), isr, PartitionEpoch(7), 0)
        .unwrap();
    let mut f2 = open(&disk, B2);
    f2.become_follower(B1, LeaderEpoch(1)).unwrap();
    fetch(&mut leader, &mut f2, 1_000); // caught up (LEO 0) at 1000
    produce(&mut leader, &["a"]);
    assert_eq!(leader.tick(31_000), None, "exactly replica.lag.time.max.ms");
    let proposal = leader.tick(31_001).expect("f2 lags");
    assert_eq!(
        proposal,
        IsrProposal {
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(7),
            new_isr: vec![B1]
        }
    );
    assert_eq!(leader.tick(40_000), None, "one proposal in flight");
    assert_eq!(leader.isr(), &[B1, B2], "the ISR waits for the controller");
    assert_eq!(leader.high_watermark(), Offset(0));
    leader.set_isr(vec![B1], PartitionEpoch(8)).unwrap();
    assert_eq!(leader.isr(), &[B1]);
    assert_eq!(
        leader.high_watermark(),
        Offset(1),
        "the shrink lets the HW move"
    );
    // The follower fetches the record: its LEO (0) < HW (1), no expansion yet.
    let (_, proposal) = fetch(&mut leader, &mut f2, 41_000);
    assert_eq!(proposal, None);
    // Now it fetches at the LEO: LEO ≥ HW and ≥ the epoch's start offset.
    let (_, proposal) = fetch(&mut leader, &mut f2, 41_001);
    assert_eq!(proposal.unwrap().new_isr, vec![B1, B2]);
    leader.set_isr(vec![B1, B2], PartitionEpoch(9)).unwrap();
    assert_eq!(leader.isr(), &[B1, B2]);
    // A stale answer (older partition epoch) is ignored.
    leader.set_isr(vec![B1], PartitionEpoch(8)).unwrap();
    assert_eq!(leader.isr(), &[B1, B2]);
    // The leader alone is never proposed away.
    leader.set_isr(vec![B1], PartitionEpoch(10)).unwrap();
    assert_eq!(leader.tick(1_000_000), None);
}

#[test]
fn a_follower_that_keeps_fetching_without_reaching_the_leo_still_counts_as_caught_up() {
    // Kafka's lastCaughtUpTimeMs: a fetch at or beyond the leader's LEO at the previous
    // fetch means the follower was caught up at that previous fetch.
    let (disk, _root) = disk("caughtup");
    let isr = vec![B1, B2];
    let mut leader = open(&disk, B1);
    leader
        .become_leader(LeaderEpoch(1), isr.clone(), isr, PartitionEpoch(0), 0)
        .unwrap();
    let mut f2 = open(&disk, B2);
    f2.become_follower(B1, LeaderEpoch(1)).unwrap();
    for t in 1..=10u64 {
        produce(&mut leader, &["x"]);
        fetch(&mut leader, &mut f2, t * 10_000);
        produce(&mut leader, &["y"]);
    }
    let progress = leader.follower_progress(B2).unwrap();
    assert_eq!(progress.last_caught_up_ms, 90_000);
    assert_eq!(leader.tick(100_000), None);
}

/// KIP-101 scenario 1: a follower restarts and, under the legacy rule, truncates to its
/// HW, dropping a record the leader had committed; then the leader dies and the follower
/// takes over. With leader epochs the follower keeps the record.
fn kip_101_scenario_1(legacy_truncate_to_hw: bool) -> (Vec<String>, Vec<String>) {
    let (disk, _root) = disk(&format!("kip101-{legacy_truncate_to_hw}"));
    let config = ReplicaConfig {
        legacy_truncate_to_hw,
        ..ReplicaConfig::default()
    };
    let both = vec![B1, B2];
    let mut a = open_with(&disk, B1, config.clone());
    a.become_leader(
        LeaderEpoch(1),
        both.clone(),
        both.clone(),
        PartitionEpoch(0),
        0,
    )
    .unwrap();
    let mut b = open_with(&disk, B2, config.clone());
    b.become_follower(B1, LeaderEpoch(1)).unwrap();
    a.append_as_leader(&batch(&["m1"]), Acks::All).unwrap();
    fetch(&mut a, &mut b, 1);
    fetch(&mut a, &mut b, 2);
    assert_eq!(
        (a.high_watermark(), b.high_watermark()),
        (Offset(1), Offset(1))
    );
    a.append_as_leader(&batch(&["m2"]), Acks::All).unwrap();
    fetch(&mut a, &mut b, 3);
    // B fetches at 2: A commits m2 (HW 2, the producer is acknowledged), but B restarts
    // before it reads the response, so its HW stays 1.
    let request = b.fetch_request().unwrap();
    a.on_follower_fetch(B2, request, MAX_BYTES, 4).unwrap();
    assert_eq!(a.high_watermark(), Offset(2), "m2 is committed");
    let checkpointed = b.high_watermark();
    drop(b);
    let mut b = open_at(&disk, B2, config.clone(), Some(checkpointed));
    assert_eq!(b.high_watermark(), Offset(1));
    b.become_follower(B1, LeaderEpoch(1)).unwrap();
    truncate(&a, &mut b);
    // A dies; B, in the ISR, becomes leader and takes a write.
    let checkpointed = a.high_watermark();
    drop(a);
    b.become_leader(LeaderEpoch(2), vec![B2], both, PartitionEpoch(1), 6)
        .unwrap();
    b.append_as_leader(&batch(&["m3"]), Acks::Leader).unwrap();
    // A comes back as B's follower.
    let mut a = open_at(&disk, B1, config, Some(checkpointed));
    a.become_follower(B2, LeaderEpoch(2)).unwrap();
    truncate(&b, &mut a);
    fetch(&mut b, &mut a, 8);
    fetch(&mut b, &mut a, 9);
    (values(&b), values(&a))
}

#[test]
fn kip_101_scenario_1_leader_epochs_keep_the_committed_record() {
    let (leader, follower) = kip_101_scenario_1(false);
    assert_eq!(leader, vec!["m1", "m2", "m3"]);
    assert_eq!(follower, leader);
}

#[test]
fn kip_101_scenario_1_legacy_truncate_to_hw_loses_it_and_diverges() {
    let (leader, follower) = kip_101_scenario_1(true);
    assert_eq!(leader, vec!["m1", "m3"], "committed m2 is lost");
    assert_eq!(follower, vec!["m1", "m2"], "and the replicas diverge");
}

/// KIP-279's fast double failover: A and B lead alternately with unclean elections,
/// each writing while the other is down. A ends with epochs {0@0, 2@1}, B with
/// {1@0, 3@1}. A asks B about epoch 2; B answers "epoch 1 ends at 1". Epoch 1 is not
/// A's, so A (KIP-279) cuts at its own end of epoch 0 and asks again about epoch 0,
/// which B never had: A truncates everything. The v0 answer (offset 1 only) keeps
/// A's offset 0, which B never had.
fn kip_279_double_failover(
    config: ReplicaConfig,
    on_fetch: bool,
) -> (Replica<FsDisk>, Vec<(u64, i32, String)>, usize) {
    let name = format!(
        "kip279-{}-{on_fetch}",
        config.legacy_offsets_for_leader_epoch_v0
    );
    let (disk, root) = disk(&name);
    let both = vec![B1, B2];
    let mut a = open_with(&disk, B1, config.clone());
    let mut b = open_with(&disk, B2, config.clone());
    a.become_leader(LeaderEpoch(0), vec![B1], both.clone(), PartitionEpoch(0), 0)
        .unwrap();
    produce(&mut a, &["a0"]);
    b.become_leader(LeaderEpoch(1), vec![B2], both.clone(), PartitionEpoch(1), 0)
        .unwrap();
    produce(&mut b, &["b0"]);
    a.become_leader(LeaderEpoch(2), vec![B1], both.clone(), PartitionEpoch(2), 0)
        .unwrap();
    produce(&mut a, &["a1"]);
    b.become_leader(LeaderEpoch(3), vec![B2], both, PartitionEpoch(3), 0)
        .unwrap();
    produce(&mut b, &["b1"]);
    a.become_follower(B2, LeaderEpoch(3)).unwrap();
    let rounds = if on_fetch {
        // KIP-320: skip OffsetsForLeaderEpoch; fetches carry the last fetched epoch.
        let mut rounds = 0;
        while let (FetchOutcome::Diverged { .. }, _) = fetch(&mut b, &mut a, 1) {
            rounds += 1;
        }
        rounds
    } else {
        truncate(&b, &mut a)
    };
    fetch(&mut b, &mut a, 2);
    let leader_log = log_of(&b);
    drop(root);
    (a, leader_log, rounds)
}

#[test]
fn kip_279_follower_iterates_when_the_leader_answers_an_unknown_epoch() {
    let (a, leader_log, rounds) = kip_279_double_failover(ReplicaConfig::default(), false);
    assert_eq!(rounds, 2, "asked about epoch 2, then epoch 0");
    assert_eq!(log_of(&a), leader_log);
    assert_eq!(values(&a), vec!["b0", "b1"]);
    let epochs: Vec<_> = a
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    assert_eq!(epochs, vec![(1, 0), (3, 1)]);
}

#[test]
fn a_late_answer_to_an_earlier_question_is_ignored() {
    // The KIP-279 logs again: A's first question (epoch 2) is answered "epoch 1 ends at
    // 1"; A cuts to 1 and asks about epoch 0. If the first answer arrived again and were
    // applied, A would stop at offset 1 and keep a0, which B never had.
    let (disk, _root) = disk("late-answer");
    let both = vec![B1, B2];
    let mut a = open(&disk, B1);
    let mut b = open(&disk, B2);
    a.become_leader(LeaderEpoch(0), vec![B1], both.clone(), PartitionEpoch(0), 0)
        .unwrap();
    produce(&mut a, &["a0"]);
    b.become_leader(LeaderEpoch(1), vec![B2], both.clone(), PartitionEpoch(1), 0)
        .unwrap();
    produce(&mut b, &["b0"]);
    a.become_leader(LeaderEpoch(2), vec![B1], both.clone(), PartitionEpoch(2), 0)
        .unwrap();
    produce(&mut a, &["a1"]);
    b.become_leader(LeaderEpoch(3), vec![B2], both, PartitionEpoch(3), 0)
        .unwrap();
    produce(&mut b, &["b1"]);
    a.become_follower(B2, LeaderEpoch(3)).unwrap();
    let first = a.epoch_request().unwrap();
    let answer = b.on_epoch_request(first).unwrap();
    let step = a.on_epoch_response(first, answer).unwrap();
    let TruncationStep::AskAgain(second) = step else {
        panic!("expected another question, got {step:?}");
    };
    assert_eq!(second.leader_epoch, LeaderEpoch(0));
    assert_eq!(
        a.on_epoch_response(first, answer).unwrap(),
        TruncationStep::Ignored
    );
    assert_eq!(
        a.role(),
        Role::Follower {
            leader: B2,
            truncating: true
        }
    );
    let answer = b.on_epoch_request(second).unwrap();
    assert_eq!(
        a.on_epoch_response(second, answer).unwrap(),
        TruncationStep::Done
    );
    assert_eq!(a.log_end_offset(), Offset(0));
}

#[test]
fn kip_279_legacy_v0_answer_leaves_the_logs_diverged() {
    let config = ReplicaConfig {
        legacy_offsets_for_leader_epoch_v0: true,
        ..ReplicaConfig::default()
    };
    let (a, _, rounds) = kip_279_double_failover(config, false);
    assert_eq!(rounds, 1, "v0 never iterates");
    assert_eq!(
        values(&a),
        vec!["a0", "b1"],
        "offset 0 differs from the leader's b0"
    );
}

/// A follower announces `TruncationDone` once per `become_follower`, when it starts
/// fetching: after the OffsetsForLeaderEpoch exchange ends (KIP-101/279, or v0's single
/// answer), and under KIP-320 with the first fetch answer that names no divergence. Its
/// `leo` is where the follower fetches from, after the last cut (the checks compare the
/// follower's log below it with the leader's).
#[test]
fn truncation_done_is_announced_once_when_the_follower_starts_fetching() {
    let cases = [
        ("epoch lookup", ReplicaConfig::default(), false, 0),
        (
            "v0: keeps a0, diverged",
            ReplicaConfig {
                legacy_offsets_for_leader_epoch_v0: true,
                ..ReplicaConfig::default()
            },
            false,
            1,
        ),
        (
            "KIP-320 on fetch",
            ReplicaConfig {
                truncate_on_fetch: true,
                ..ReplicaConfig::default()
            },
            true,
            0,
        ),
    ];
    for (name, config, on_fetch, leo) in cases {
        let (mut a, _, _) = kip_279_double_failover(config, on_fetch);
        let events = a.take_events();
        let done: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, ReplicaEvent::TruncationDone { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(done.len(), 1, "{name}: {events:?}");
        assert_eq!(
            events[done[0]],
            ReplicaEvent::TruncationDone {
                leader: B2,
                leader_epoch: LeaderEpoch(3),
                leo: Offset(leo)
            },
            "{name}"
        );
        let last_cut = events
            .iter()
            .rposition(|e| matches!(e, ReplicaEvent::Truncated { .. }));
        assert!(
            last_cut.is_none_or(|cut| cut < done[0]),
            "{name}: {events:?}"
        );
    }
    // Legacy truncation to the HW is done at once; so is a follower with no epochs.
    let (disk, _root) = disk("done-at-once");
    let legacy = ReplicaConfig {
        legacy_truncate_to_hw: true,
        ..ReplicaConfig::default()
    };
    for (id, config) in [(B1, legacy), (B3, ReplicaConfig::default())] {
        let mut r = open_with(&disk, id, config);
        r.take_events();
        r.become_follower(B2, LeaderEpoch(4)).unwrap();
        assert!(r.epoch_request().is_none());
        assert!(matches!(
            r.take_events().as_slice(),
            [
                ReplicaEvent::BecameFollower { .. },
                ReplicaEvent::TruncationDone {
                    leader: B2,
                    leader_epoch: LeaderEpoch(4),
                    leo: Offset(0)
                }
            ]
        ));
    }
}

#[test]
fn kip_320_diverging_epoch_in_fetch_responses_truncates_and_continues() {
    let config = ReplicaConfig {
        truncate_on_fetch: true,
        ..ReplicaConfig::default()
    };
    let (a, leader_log, rounds) = kip_279_double_failover(config, true);
    assert_eq!(rounds, 2, "diverging epoch 1 (end 1), then NONE (end 0)");
    assert_eq!(log_of(&a), leader_log);
}

/// B2 led epoch 2 without appending anything, then B1 led epoch 3: B2's cache ends with
/// an epoch that starts at its LEO and that no record carries. Truncating to the LEO must
/// still drop that entry (Kafka trims the cache even when the log is not cut), or every
/// fetch names epoch 2, gets "diverging at epoch 1" back, and the follower never moves.
fn empty_epoch_at_the_end(on_fetch: bool) {
    let config = ReplicaConfig {
        truncate_on_fetch: on_fetch,
        ..ReplicaConfig::default()
    };
    let (disk, _root) = disk(&format!("empty-epoch-{on_fetch}"));
    let both = vec![B1, B2];
    let mut a = open_with(&disk, B1, config.clone());
    let mut b = open_with(&disk, B2, config);
    a.become_leader(
        LeaderEpoch(1),
        both.clone(),
        both.clone(),
        PartitionEpoch(0),
        0,
    )
    .unwrap();
    b.become_follower(B1, LeaderEpoch(1)).unwrap();
    truncate(&a, &mut b);
    produce(&mut a, &["x", "y"]);
    fetch(&mut a, &mut b, 1);
    assert_eq!(values(&b), ["x", "y"]);
    b.become_leader(LeaderEpoch(2), vec![B2], both.clone(), PartitionEpoch(1), 2)
        .unwrap();
    a.become_leader(LeaderEpoch(3), vec![B1], both, PartitionEpoch(2), 3)
        .unwrap();
    b.become_follower(B1, LeaderEpoch(3)).unwrap();
    truncate(&a, &mut b);
    // KIP-320 learns the divergence from the first fetch; after it, none.
    let diverged = (0..4)
        .filter(|_| matches!(fetch(&mut a, &mut b, 4).0, FetchOutcome::Diverged { .. }))
        .count();
    assert_eq!(
        diverged,
        usize::from(on_fetch),
        "the follower keeps naming an epoch the leader never had"
    );
    produce(&mut a, &["z"]);
    fetch(&mut a, &mut b, 5);
    assert_eq!(values(&b), ["x", "y", "z"]);
}

#[test]
fn an_empty_epoch_at_the_end_of_the_cache_goes_with_truncation_to_the_leo() {
    empty_epoch_at_the_end(false);
}

#[test]
fn an_empty_epoch_at_the_end_of_the_cache_goes_on_a_diverging_fetch() {
    empty_epoch_at_the_end(true);
}

#[test]
fn the_leader_answers_a_diverging_fetch_without_touching_its_state() {
    let (disk, _root) = disk("diverge-leader");
    let [mut leader, _, _] = three(&disk, ReplicaConfig::default());
    produce(&mut leader, &["a", "b"]);
    let fetch = FollowerFetch {
        fetch_offset: Offset(5),
        last_fetched_epoch: Some(LeaderEpoch(1)),
        current_leader_epoch: LeaderEpoch(1),
    };
    let answer = leader.on_follower_fetch(B2, fetch, MAX_BYTES, 0).unwrap();
    assert_eq!(
        answer.data.diverging_epoch,
        Some(EpochEndOffset {
            leader_epoch: LeaderEpoch(1),
            end_offset: Offset(2)
        })
    );
    assert!(answer.data.records.0.is_empty());
    assert_eq!(leader.follower_progress(B2).unwrap().leo, None);
    // Fencing (KIP-320) of the follower's view of the epoch.
    let older = FollowerFetch {
        current_leader_epoch: LeaderEpoch(0),
        ..fetch
    };
    let refused = leader.on_follower_fetch(B2, older, MAX_BYTES, 0);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::FencedLeaderEpoch
    );
    let beyond = FollowerFetch {
        fetch_offset: Offset(5),
        last_fetched_epoch: None,
        current_leader_epoch: LeaderEpoch(1),
    };
    let refused = leader.on_follower_fetch(B2, beyond, MAX_BYTES, 0);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::OffsetOutOfRange
    );
}

#[test]
fn offsets_for_leader_epoch_answers_from_the_cache_and_in_v0() {
    for v0 in [false, true] {
        let (disk, _root) = disk(&format!("ofle-{v0}"));
        let config = ReplicaConfig {
            legacy_offsets_for_leader_epoch_v0: v0,
            ..ReplicaConfig::default()
        };
        let mut r = open_with(&disk, B1, config);
        r.become_leader(LeaderEpoch(2), vec![B1], vec![B1], PartitionEpoch(0), 0)
            .unwrap();
        produce(&mut r, &["a", "b"]);
        r.become_leader(LeaderEpoch(5), vec![B1], vec![B1], PartitionEpoch(1), 0)
            .unwrap();
        produce(&mut r, &["c"]);
        let ask = |epoch: i32| {
            r.on_epoch_request(EpochRequest {
                current_leader_epoch: LeaderEpoch(5),
                leader_epoch: LeaderEpoch(epoch),
            })
        };
        let epoch = |e: i32| {
            if v0 {
                LeaderEpoch::NONE
            } else {
                LeaderEpoch(e)
            }
        };
        let answer = |e: i32, offset: u64| EpochEndOffset {
            leader_epoch: epoch(e),
            end_offset: Offset(offset),
        };
        assert_eq!(ask(5).unwrap(), answer(5, 3));
        assert_eq!(ask(4).unwrap(), answer(2, 2));
        assert_eq!(ask(2).unwrap(), answer(2, 2));
        assert_eq!(ask(1).unwrap(), answer(-1, 0));
        assert_eq!(
            ask(6).unwrap_err().kafka_error(),
            KafkaError::UnknownLeaderEpoch
        );
    }
}

#[test]
fn consumers_read_below_the_hw_with_epoch_fencing() {
    let (disk, _root) = disk("consumer");
    let [mut leader, mut f2, mut f3] = three(&disk, ReplicaConfig::default());
    produce(&mut leader, &["a", "b"]);
    for t in 0..2 {
        fetch(&mut leader, &mut f2, t);
        fetch(&mut leader, &mut f3, t);
    }
    produce(&mut leader, &["c"]);
    assert_eq!(leader.high_watermark(), Offset(2));
    let data = leader
        .read_for_consumer(Offset(0), Some(LeaderEpoch(1)), MAX_BYTES, RU)
        .unwrap();
    let records: Vec<_> = decode_batches(&data.records.0)
        .unwrap()
        .into_iter()
        .flat_map(|b| b.records)
        .collect();
    assert_eq!(records.len(), 2, "the batch at the HW is not visible yet");
    assert_eq!(data.high_watermark, Offset(2));
    let at_hw = leader
        .read_for_consumer(Offset(2), None, MAX_BYTES, RU)
        .unwrap();
    assert!(at_hw.records.0.is_empty());
    // Above the HW but within the log: nothing yet, not out of range.
    let above_hw = leader
        .read_for_consumer(leader.log_end_offset(), None, MAX_BYTES, RU)
        .unwrap();
    assert!(above_hw.records.0.is_empty());
    for (offset, epoch, error) in [
        (
            leader.log_end_offset().plus(1),
            None,
            KafkaError::OffsetOutOfRange,
        ),
        (
            Offset(0),
            Some(LeaderEpoch(0)),
            KafkaError::FencedLeaderEpoch,
        ),
        (
            Offset(0),
            Some(LeaderEpoch(2)),
            KafkaError::UnknownLeaderEpoch,
        ),
    ] {
        let refused = leader.read_for_consumer(offset, epoch, MAX_BYTES, RU);
        assert_eq!(refused.unwrap_err().kafka_error(), error);
    }
    let refused = f2.read_for_consumer(Offset(0), None, MAX_BYTES, RU);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::NotLeaderOrFollower
    );
}

/// ListOffsets: the log start (earliest) or the HW (latest), fenced as a consumer fetch
/// is; a new leader whose HW has not reached its epoch's start cannot name the latest.
#[test]
fn list_offsets_answers_the_log_start_or_the_hw_and_waits_for_a_new_leaders_hw() {
    use crate::broker::proto::{ListedOffset, OffsetSpec};
    let (disk, _root) = disk("list-offsets");
    let [mut leader, mut f2, mut f3] = three(&disk, ReplicaConfig::default());
    produce(&mut leader, &["a", "b"]);
    let listed = |offset: u64| ListedOffset {
        offset: Offset(offset),
        leader_epoch: LeaderEpoch(1),
    };
    // f2 has both records but not yet an HW that covers them.
    fetch(&mut leader, &mut f2, 0);
    fetch(&mut leader, &mut f3, 0);
    fetch(&mut leader, &mut f3, 1);
    assert_eq!(leader.high_watermark(), Offset(0));
    assert_eq!(
        leader
            .list_offset(OffsetSpec::Latest, Some(LeaderEpoch(1)), RU)
            .unwrap(),
        listed(0)
    );
    fetch(&mut leader, &mut f2, 1);
    produce(&mut leader, &["c"]);
    assert_eq!(leader.high_watermark(), Offset(2));
    assert_eq!(
        leader.list_offset(OffsetSpec::Earliest, None, RU).unwrap(),
        listed(0)
    );
    assert_eq!(
        leader.list_offset(OffsetSpec::Latest, None, RU).unwrap(),
        listed(2),
        "the HW, not the LEO"
    );
    for (epoch, error) in [
        (LeaderEpoch(0), KafkaError::FencedLeaderEpoch),
        (LeaderEpoch(2), KafkaError::UnknownLeaderEpoch),
    ] {
        let refused = leader.list_offset(OffsetSpec::Latest, Some(epoch), RU);
        assert_eq!(refused.unwrap_err().kafka_error(), error);
    }
    let refused = f3.list_offset(OffsetSpec::Earliest, None, RU);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::NotLeaderOrFollower
    );
    // f3 becomes leader of epoch 2 at its LEO (2) with an HW it learnt before (0): the
    // latest offset waits until the HW reaches the epoch's start.
    assert!(f3.high_watermark() < Offset(2));
    f3.become_leader(
        LeaderEpoch(2),
        vec![B3, B2],
        vec![B3, B2],
        PartitionEpoch(1),
        2,
    )
    .unwrap();
    let refused = f3.list_offset(OffsetSpec::Latest, None, RU);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::OffsetNotAvailable
    );
    assert_eq!(
        f3.list_offset(OffsetSpec::Earliest, None, RU)
            .unwrap()
            .offset,
        Offset(0)
    );
}

#[test]
fn reopen_recovers_the_epoch_cache_a_clamped_hw_and_producer_state() {
    let (disk, _root) = disk("reopen");
    let mut r = open(&disk, B1);
    r.become_leader(LeaderEpoch(3), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    r.append_as_leader(&idempotent(4, 0, 0, &["a", "b"]), Acks::All)
        .unwrap();
    r.become_leader(LeaderEpoch(4), vec![B1], vec![B1], PartitionEpoch(1), 0)
        .unwrap();
    r.append_as_leader(&idempotent(4, 0, 2, &["c"]), Acks::All)
        .unwrap();
    assert_eq!(r.high_watermark(), Offset(3));
    r.close().unwrap();
    // Checkpoints claiming more than the log holds: an HW past the LEO and an epoch
    // beyond it (as after a power cut that lost the log's unsynced tail).
    let d = dir(B1);
    let lines: Vec<Vec<String>> = [(3, 0), (4, 2), (7, 50)]
        .iter()
        .map(|(e, o): &(i32, u64)| vec![e.to_string(), o.to_string()])
        .collect();
    CheckpointFile::write(&disk, &d.join(LEADER_EPOCH_CHECKPOINT), &lines).unwrap();
    let mut r = open_at(&disk, B1, ReplicaConfig::default(), Some(Offset(99)));
    assert_eq!(r.high_watermark(), Offset(3), "clamped to the LEO");
    let epochs: Vec<_> = r
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    assert_eq!(epochs, vec![(3, 0), (4, 2)]);
    let entry = r.producer_state().entry(ProducerId(4)).unwrap();
    assert_eq!(entry.batches.back().unwrap().last_sequence, 2);
    assert!(matches!(
        r.take_events().as_slice(),
        [ReplicaEvent::Opened {
            leo: Offset(3),
            hw: Offset(3),
            ..
        }]
    ));
    // A lost epoch checkpoint is rebuilt from the batches' epochs.
    r.close().unwrap();
    std::fs::remove_file(disk.root().join(d.join(LEADER_EPOCH_CHECKPOINT))).unwrap();
    let r = open(&disk, B1);
    let epochs: Vec<_> = r
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset.0))
        .collect();
    assert_eq!(epochs, vec![(3, 0), (4, 2)]);
}

#[test]
fn events_report_roles_truncation_and_isr_changes() {
    let (disk, _root) = disk("events");
    let mut a = open(&disk, B1);
    a.become_leader(LeaderEpoch(0), vec![B1], vec![B1, B2], PartitionEpoch(0), 0)
        .unwrap();
    produce(&mut a, &["x", "y"]);
    let mut b = open(&disk, B2);
    b.become_leader(LeaderEpoch(1), vec![B2], vec![B1, B2], PartitionEpoch(1), 0)
        .unwrap();
    a.take_events();
    a.become_follower(B2, LeaderEpoch(1)).unwrap();
    truncate(&b, &mut a);
    assert_eq!(
        a.take_events(),
        vec![
            ReplicaEvent::BecameFollower {
                leader: B2,
                leader_epoch: LeaderEpoch(1),
                leo: Offset(2),
                hw: Offset(2)
            },
            ReplicaEvent::Truncated {
                from_leo: Offset(2),
                to: Offset(0),
                hw: Offset(0)
            },
            ReplicaEvent::TruncationDone {
                leader: B2,
                leader_epoch: LeaderEpoch(1),
                leo: Offset(0)
            },
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Property: clean failover among ISR members never loses a committed record.

#[derive(Clone, Debug)]
enum Step {
    /// The leader appends a batch of this many records.
    Append(u8),
    /// This replica (index 0..3), if a fetching follower, fetches once.
    Fetch(usize),
    /// Time passes (ms); the leader ticks and the controller applies any ISR proposal.
    Tick(u64),
    /// The leader dies; the ISR member after it (in index order, cyclically) takes
    /// over; the old leader restarts (reopening its log) as a follower.
    Failover,
    /// This replica restarts (reopens) and rejoins in its role at a new epoch.
    Restart(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1u8..4).prop_map(Step::Append),
        6 => (0usize..3).prop_map(Step::Fetch),
        1 => (1u64..40_000).prop_map(Step::Tick),
        1 => Just(Step::Failover),
        1 => (0usize..3).prop_map(Step::Restart),
    ]
}

struct Cluster {
    disk: FsDisk,
    config: ReplicaConfig,
    replicas: Vec<Option<Replica<FsDisk>>>,
    leader: usize,
    epoch: i32,
    partition_epoch: i32,
    now_ms: u64,
    next_value: u64,
    /// Offset → value of every record below the highest HW ever reached.
    committed: BTreeMap<u64, String>,
    /// The HW each replica's broker checkpointed at its last clean shutdown.
    checkpointed_hws: [Option<Offset>; 3],
}

fn id_of(index: usize) -> BrokerId {
    BrokerId(index as u32 + 1)
}

impl Cluster {
    fn new(disk: FsDisk, config: ReplicaConfig) -> Self {
        let all = vec![B1, B2, B3];
        let mut replicas: Vec<Option<Replica<FsDisk>>> = (0..3)
            .map(|i| Some(open_with(&disk, id_of(i), config.clone())))
            .collect();
        replicas[0]
            .as_mut()
            .unwrap()
            .become_leader(LeaderEpoch(0), all.clone(), all, PartitionEpoch(0), 0)
            .unwrap();
        for r in replicas.iter_mut().skip(1) {
            r.as_mut()
                .unwrap()
                .become_follower(B1, LeaderEpoch(0))
                .unwrap();
        }
        Cluster {
            disk,
            config,
            replicas,
            leader: 0,
            epoch: 0,
            partition_epoch: 0,
            now_ms: 0,
            next_value: 0,
            committed: BTreeMap::new(),
            checkpointed_hws: [None; 3],
        }
    }

    fn reopen(&self, i: usize) -> Replica<FsDisk> {
        open_at(
            &self.disk,
            id_of(i),
            self.config.clone(),
            self.checkpointed_hws[i],
        )
    }

    fn get(&mut self, i: usize) -> &mut Replica<FsDisk> {
        self.replicas[i].as_mut().unwrap()
    }

    fn apply(&mut self, proposal: Option<IsrProposal>) {
        if let Some(p) = proposal {
            self.partition_epoch += 1;
            let pe = PartitionEpoch(self.partition_epoch);
            let leader = self.leader;
            self.get(leader).set_isr(p.new_isr, pe).unwrap();
        }
    }

    fn run(&mut self, step: &Step) -> Result<(), String> {
        match *step {
            Step::Append(n) => {
                let values: Vec<String> = (0..n)
                    .map(|_| {
                        self.next_value += 1;
                        format!("v{}", self.next_value)
                    })
                    .collect();
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                let leader = self.leader;
                self.get(leader)
                    .append_as_leader(&batch(&refs), Acks::Leader)
                    .unwrap();
            }
            Step::Fetch(i) if i != self.leader => {
                let now = self.now_ms;
                let mut follower = self.replicas[i].take().unwrap();
                let leader = self.replicas[self.leader].as_mut().unwrap();
                truncate(leader, &mut follower);
                let request = follower.fetch_request().expect("fetching after truncation");
                let proposal = match leader.on_follower_fetch(id_of(i), request, MAX_BYTES, now) {
                    Ok(answer) => {
                        follower.on_fetch_response(&answer.data).unwrap();
                        answer.isr_proposal
                    }
                    // Only a diverged (legacy) follower can fetch beyond the leader's LEO.
                    Err(ReplicaError::Refused(KafkaError::OffsetOutOfRange)) => None,
                    Err(e) => panic!("fetch refused: {e}"),
                };
                self.replicas[i] = Some(follower);
                self.apply(proposal);
            }
            Step::Fetch(_) => {}
            Step::Tick(ms) => {
                self.now_ms += ms;
                let (leader, now) = (self.leader, self.now_ms);
                let proposal = self.get(leader).tick(now);
                self.apply(proposal);
            }
            Step::Failover => {
                let isr = self.get(self.leader).isr().to_vec();
                let Some(next) = (1..3)
                    .map(|k| (self.leader + k) % 3)
                    .find(|&i| isr.contains(&id_of(i)))
                else {
                    return Ok(()); // the leader is the last ISR member: no clean failover
                };
                let old = self.leader;
                let new_isr: Vec<BrokerId> = isr.into_iter().filter(|&b| b != id_of(old)).collect();
                self.epoch += 1;
                self.partition_epoch += 1;
                self.leader = next;
                let (epoch, pe, now) = (
                    LeaderEpoch(self.epoch),
                    PartitionEpoch(self.partition_epoch),
                    self.now_ms,
                );
                self.replicas[old] = None; // dies without a clean shutdown
                self.get(next)
                    .become_leader(epoch, new_isr, vec![B1, B2, B3], pe, now)
                    .unwrap();
                for i in 0..3 {
                    if i == next {
                        continue;
                    }
                    if self.replicas[i].is_none() {
                        self.replicas[i] = Some(self.reopen(i));
                    }
                    self.get(i).become_follower(id_of(next), epoch).unwrap();
                }
            }
            Step::Restart(i) if i != self.leader => {
                let r = self.replicas[i].take().unwrap();
                if i % 2 == 0 {
                    // A clean shutdown checkpoints the HW first.
                    self.checkpointed_hws[i] = Some(r.high_watermark());
                    r.close().unwrap();
                } else {
                    drop(r);
                }
                let epoch = LeaderEpoch(self.epoch);
                let leader = id_of(self.leader);
                let mut r = self.reopen(i);
                r.become_follower(leader, epoch).unwrap();
                self.replicas[i] = Some(r);
            }
            Step::Restart(_) => {}
        }
        self.record_commits()
    }

    /// Remembers what is committed now; fails if the leader lost or changed a record
    /// committed earlier.
    fn record_commits(&mut self) -> Result<(), String> {
        let leader = self.replicas[self.leader].as_ref().unwrap();
        let hw = leader.high_watermark().0;
        for (offset, _, value) in log_of(leader) {
            if offset < hw {
                let previous = self.committed.insert(offset, value.clone());
                if previous.as_ref().is_some_and(|p| *p != value) {
                    return Err(format!(
                        "committed offset {offset} changed from {previous:?} to {value}"
                    ));
                }
            }
        }
        let log: BTreeMap<u64, String> =
            log_of(leader).into_iter().map(|(o, _, v)| (o, v)).collect();
        for (offset, value) in &self.committed {
            if log.get(offset) != Some(value) {
                return Err(format!(
                    "committed offset {offset} ({value}) lost by leader {}",
                    self.leader + 1
                ));
            }
        }
        Ok(())
    }
}

/// Runs `steps`, lets every follower catch up, and checks that no committed record was
/// lost and that the replicas' logs then agree.
fn run_steps(name: &str, config: &ReplicaConfig, steps: &[Step]) -> Result<(), String> {
    let (disk, _root) = disk(name);
    let mut cluster = Cluster::new(disk, config.clone());
    for step in steps {
        cluster.run(step)?;
    }
    for _ in 0..3 {
        for i in 0..3 {
            cluster.run(&Step::Fetch(i))?;
        }
    }
    let leader_log = log_of(cluster.replicas[cluster.leader].as_ref().unwrap());
    for i in 0..3 {
        if log_of(cluster.replicas[i].as_ref().unwrap()) != leader_log {
            return Err(format!("replica {} differs from the leader", i + 1));
        }
    }
    Ok(())
}

fn failover_runner(cases: u32) -> TestRunner {
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

#[test]
fn clean_failover_among_isr_members_never_loses_committed_records() {
    for truncate_on_fetch in [false, true] {
        let config = ReplicaConfig {
            truncate_on_fetch,
            ..ReplicaConfig::default()
        };
        let name = format!("prop-{truncate_on_fetch}");
        let steps = proptest::collection::vec(step(), 1..60);
        let result = failover_runner(48).run(&steps, |steps| {
            run_steps(&name, &config, &steps).map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            panic!("truncate_on_fetch={truncate_on_fetch}: {e}");
        }
    }
}

/// The canary: the same property with the KAFKA-1211 rule (truncate to own HW on becoming
/// follower) must find a lost committed record — proof that the property can fail.
#[test]
fn canary_legacy_truncate_to_hw_fails_the_failover_property() {
    let config = ReplicaConfig {
        legacy_truncate_to_hw: true,
        ..ReplicaConfig::default()
    };
    let result = failover_runner(256).run(&proptest::collection::vec(step(), 1..60), |steps| {
        run_steps("canary", &config, &steps).map_err(TestCaseError::fail)
    });
    match result {
        Err(TestError::Fail(reason, steps)) => {
            let reason = reason.to_string();
            assert!(
                reason.contains("lost") || reason.contains("changed") || reason.contains("differs"),
                "{reason} after {steps:?}"
            );
        }
        other => panic!("the legacy rule went unnoticed: {other:?}"),
    }
}

#[test]
fn retention_moves_the_epoch_cache_start_with_the_log_start() {
    let (disk, _root) = disk("retention");
    let config = ReplicaConfig {
        log: LogConfig {
            segment_bytes: 200,
            retention_bytes: Some(300),
            retention_ms: None,
            ..LogConfig::default()
        },
        ..ReplicaConfig::default()
    };
    let mut r = open_with(&disk, B1, config);
    r.become_leader(LeaderEpoch(1), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    for i in 0..10 {
        produce(&mut r, &[&format!("value-{i:02}")]);
    }
    r.become_leader(LeaderEpoch(2), vec![B1], vec![B1], PartitionEpoch(1), 0)
        .unwrap();
    produce(&mut r, &["last"]);
    let deleted = r.delete_old_segments(0).unwrap();
    assert!(deleted > 0);
    let start = r.log_start_offset();
    assert!(start > Offset(0) && start <= Offset(10), "{start}");
    let epochs: Vec<_> = r
        .epoch_entries()
        .iter()
        .map(|e| (e.epoch.0, e.start_offset))
        .collect();
    assert_eq!(epochs, vec![(1, start), (2, Offset(10))]);
    assert_eq!(r.high_watermark(), Offset(11));
}

#[test]
fn transactions_hold_the_lso_on_leader_and_follower_and_survive_a_reopen() {
    use crate::log::{ControlRecord, ControlRecordType};
    let (disk, _root) = disk("txn-lso");
    let both = vec![B1, B2];
    let mut leader = open(&disk, B1);
    leader
        .become_leader(LeaderEpoch(1), both.clone(), both, PartitionEpoch(0), 0)
        .unwrap();
    let mut f2 = open(&disk, B2);
    f2.become_follower(B1, LeaderEpoch(1)).unwrap();
    let meta = BatchMeta {
        producer_id: ProducerId(5),
        producer_epoch: 0,
        base_sequence: 0,
        ..BatchMeta::default()
    };
    let mut txn = BatchBuilder::new(meta);
    txn.set_transactional(true);
    txn.push(0, None, Some(b"t0"), &[]);
    txn.push(0, None, Some(b"t1"), &[]);
    let bytes = txn.encode(Offset(0)).to_vec();
    let guard = leader.start_txn_verification(&bytes, 1);
    assert_eq!(
        guard,
        Some(1),
        "the transaction's first batch here is verified"
    );
    leader
        .append_as_leader_verified(&bytes, Acks::All, guard)
        .unwrap();
    produce(&mut leader, &["plain"]);
    // INVALID_TXN_STATE: the producer's transaction is open here; nothing is appended.
    let refused = leader.append_as_leader(&idempotent(5, 0, 2, &["x"]), Acks::All);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::InvalidTxnState
    );
    assert_eq!(leader.log_end_offset(), Offset(3));
    fetch(&mut leader, &mut f2, 1);
    fetch(&mut leader, &mut f2, 2);
    assert_eq!(leader.high_watermark(), Offset(3));
    assert_eq!(f2.high_watermark(), Offset(3));
    assert_eq!(
        leader.last_stable_offset(),
        Offset(0),
        "the open transaction"
    );
    assert_eq!(f2.last_stable_offset(), Offset(0));
    // read_committed reads nothing while the transaction is open; read_uncommitted reads
    // everything below the HW.
    let committed_read = leader
        .read_for_consumer(Offset(0), None, MAX_BYTES, RC)
        .unwrap();
    assert!(committed_read.records.0.is_empty());
    assert_eq!(committed_read.last_stable_offset, Offset(0));
    assert!(leader.consumer_fetch_waits(Offset(0), None, RC));
    assert!(!leader.consumer_fetch_waits(Offset(0), None, RU));
    let uncommitted_read = leader
        .read_for_consumer(Offset(0), None, MAX_BYTES, RU)
        .unwrap();
    assert_eq!(
        decode_batches(&uncommitted_read.records.0).unwrap().len(),
        2
    );
    assert!(uncommitted_read.aborted_transactions.is_empty());
    let marker = ControlRecord {
        kind: ControlRecordType::Abort,
        coordinator_epoch: 2,
    };
    // A client may not write a marker.
    let mut abort = BatchBuilder::end_txn_marker(meta, marker);
    let refused = leader.append_as_leader(abort.encode(Offset(0)), Acks::All);
    assert_eq!(
        refused.unwrap_err().kafka_error(),
        KafkaError::InvalidRecord
    );
    // The coordinator's marker (WriteTxnMarkers).
    let at = leader
        .append_txn_marker_as_leader(ProducerId(5), 0, marker, 7)
        .unwrap();
    assert_eq!(at.base_offset, Offset(3));
    let stale = ControlRecord {
        coordinator_epoch: 1,
        ..marker
    };
    let fenced = leader.append_txn_marker_as_leader(ProducerId(5), 0, stale, 7);
    assert_eq!(
        fenced.unwrap_err().kafka_error(),
        KafkaError::TransactionCoordinatorFenced
    );
    let old_epoch = leader.append_txn_marker_as_leader(ProducerId(5), -1, marker, 7);
    assert_eq!(
        old_epoch.unwrap_err().kafka_error(),
        KafkaError::InvalidProducerEpoch
    );
    assert_eq!(leader.log_end_offset(), Offset(4), "one marker appended");
    assert_eq!(
        leader.last_stable_offset(),
        Offset(0),
        "the marker is not replicated yet"
    );
    fetch(&mut leader, &mut f2, 3);
    fetch(&mut leader, &mut f2, 4);
    for r in [&leader, &f2] {
        assert_eq!(r.high_watermark(), Offset(4));
        assert_eq!(r.last_stable_offset(), Offset(4));
        let aborted = r.producer_state().aborted_between(Offset(0), Offset(4));
        assert_eq!(
            aborted
                .iter()
                .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                .collect::<Vec<_>>(),
            [(ProducerId(5), Offset(0), Offset(3))]
        );
    }
    assert_eq!(f2.producer_state(), leader.producer_state());
    // read_committed now reads to the LSO, with the aborted transaction listed.
    let committed_read = leader
        .read_for_consumer(Offset(0), None, MAX_BYTES, RC)
        .unwrap();
    assert_eq!(decode_batches(&committed_read.records.0).unwrap().len(), 3);
    assert_eq!(
        committed_read.aborted_transactions,
        [AbortedTransaction {
            producer_id: ProducerId(5),
            first_offset: Offset(0)
        }]
    );
    // Rebuilt from the log on reopen, the same state.
    let before = leader.producer_state().clone();
    leader.close().unwrap();
    let reopened = open_at(&disk, B1, ReplicaConfig::default(), Some(Offset(4)));
    assert_eq!(reopened.producer_state(), &before);
    assert_eq!(reopened.last_stable_offset(), Offset(4));
}

/// A group coordinator's transactional batch (a TxnOffsetCommit's offsets; Kafka's origin
/// COORDINATOR) has no sequence: two alike from one producer are both appended (no
/// duplicate detection), an older producer epoch is refused, and the batch opens the
/// producer's transaction so the LSO waits for its marker.
#[test]
fn coordinator_transactional_batches_skip_the_sequence_check_but_not_the_epoch() {
    use crate::log::{ControlRecord, ControlRecordType};
    let (disk, _root) = disk("txn-coordinator-origin");
    let mut leader = open(&disk, B1);
    leader
        .become_leader(LeaderEpoch(1), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    let offsets = |epoch: i16| {
        let mut b = BatchBuilder::new(BatchMeta {
            producer_id: ProducerId(9),
            producer_epoch: epoch,
            base_sequence: -1,
            ..BatchMeta::default()
        });
        b.set_transactional(true);
        b.push(0, Some(b"key"), Some(b"offset"), &[]);
        b.encode(Offset(0)).to_vec()
    };
    let first = leader.append_as_coordinator(&offsets(1)).unwrap();
    let second = leader.append_as_coordinator(&offsets(1)).unwrap();
    assert!(!first.duplicate && !second.duplicate);
    assert_eq!(
        (first.base_offset, second.base_offset),
        (Offset(0), Offset(1))
    );
    assert_eq!(leader.high_watermark(), Offset(2));
    assert_eq!(
        leader.last_stable_offset(),
        Offset(0),
        "the open transaction"
    );
    let old = leader.append_as_coordinator(&offsets(0));
    assert_eq!(
        old.unwrap_err().kafka_error(),
        KafkaError::InvalidProducerEpoch
    );
    let plain = leader.append_as_coordinator(&batch(&["not transactional"]));
    assert_eq!(plain.unwrap_err().kafka_error(), KafkaError::InvalidRecord);
    let marker = ControlRecord {
        kind: ControlRecordType::Commit,
        coordinator_epoch: 1,
    };
    leader
        .append_txn_marker_as_leader(ProducerId(9), 1, marker, 0)
        .unwrap();
    assert_eq!(leader.last_stable_offset(), leader.log_end_offset());
    // A new transaction of the producer after its marker: a new open transaction.
    leader.append_as_coordinator(&offsets(1)).unwrap();
    assert_eq!(leader.last_stable_offset(), Offset(3));
}

/// A transactional batch of producer 7 (epoch 0) at `sequence`.
fn txn_batch(sequence: i32, values: &[&str]) -> Vec<u8> {
    let mut b = BatchBuilder::new(BatchMeta {
        producer_id: ProducerId(7),
        producer_epoch: 0,
        base_sequence: sequence,
        ..BatchMeta::default()
    });
    b.set_transactional(true);
    for v in values {
        b.push(0, None, Some(v.as_bytes()), &[]);
    }
    b.encode(Offset(0)).to_vec()
}

/// KIP-890 part 1: a transaction's first batch on a partition is appended only with the
/// guard of a verification still pending; a marker voids it (the transaction the
/// coordinator vouched for is over), the transaction's later batches need none, and a batch
/// past the lowest sequence being verified is out of order. Without verification
/// (`[legacy] no-add-partition-verification`) any transactional batch opens a transaction.
#[test]
fn a_transactions_first_batch_needs_a_pending_verification() {
    use crate::log::{ControlRecord, ControlRecordType};
    let abort = ControlRecord {
        kind: ControlRecordType::Abort,
        coordinator_epoch: 0,
    };
    let (verifying, _root) = disk("txn-verify");
    let mut r = open(&verifying, B1);
    r.become_leader(LeaderEpoch(1), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    let refused = |r: &mut Replica<FsDisk>, bytes: &[u8], guard| {
        r.append_as_leader_verified(bytes, Acks::All, guard)
            .unwrap_err()
            .kafka_error()
    };
    let first = txn_batch(0, &["a"]);
    assert_eq!(refused(&mut r, &first, None), KafkaError::InvalidTxnState);
    assert_eq!(
        refused(&mut r, &first, Some(1)),
        KafkaError::InvalidTxnState
    );
    // Two requests verify concurrently: one verification, the lowest sequence remembered.
    assert_eq!(r.start_txn_verification(&first, 1), Some(1));
    let second = txn_batch(1, &["b"]);
    assert_eq!(r.start_txn_verification(&second, 2), Some(1));
    assert_eq!(
        refused(&mut r, &second, Some(1)),
        KafkaError::OutOfOrderSequenceNumber
    );
    // The coordinator's answer came, but a marker overtook it: the guard is void.
    r.append_txn_marker_as_leader(ProducerId(7), 0, abort, 0)
        .unwrap();
    assert_eq!(
        refused(&mut r, &first, Some(1)),
        KafkaError::InvalidTxnState
    );
    // Verified again: appended; the transaction is open, its next batch needs nothing.
    let guard = r.start_txn_verification(&first, 3);
    assert_eq!(guard, Some(3));
    r.append_as_leader_verified(&first, Acks::All, guard)
        .unwrap();
    assert_eq!(r.start_txn_verification(&second, 4), None);
    r.append_as_leader_verified(&second, Acks::All, None)
        .unwrap();
    assert_eq!(r.log_end_offset(), Offset(3), "marker, a, b");
    // No verification: the first batch of the next transaction opens it unasked.
    let (plain, _plain_root) = disk("txn-no-verify");
    let config = ReplicaConfig {
        transaction_verification: false,
        ..ReplicaConfig::default()
    };
    let mut r = open_with(&plain, B1, config);
    r.become_leader(LeaderEpoch(1), vec![B1], vec![B1], PartitionEpoch(0), 0)
        .unwrap();
    assert_eq!(r.start_txn_verification(&first, 1), None);
    r.append_as_leader_verified(&first, Acks::All, None)
        .unwrap();
    assert_eq!(r.producer_state().ongoing_txns().count(), 1);
}
