//! Brokers end to end: producers and consumers against a replicated, failing cluster on the
//! ensemble, judged by the checkers — plus the behaviours each scenario exists for (leaders
//! move, the controller fails over, power loss with fsync loses nothing) read back from what
//! the run recorded, and the no-fsync canary firing.

mod common;

use common::{
    events, fixed_twin_passes, history, scenario_path, scratch, trace_in_own_process, zoo_fires,
};
use ksim::cli::run_one;
use ksim::history::{Op, SendOutcome};
use ksim::scenario::load;

fn passes(file: &str, seed: u64) -> std::path::PathBuf {
    common::passes("brokers", file, seed)
}

#[test]
fn killed_leaders_and_controllers_fail_over_and_nothing_acknowledged_is_lost() {
    let dir = passes("leader-failover.toml", 1);
    let events = events(&dir);
    let count = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
    assert!(
        count("controller-elected") >= 2,
        "the controller failed over"
    );
    // orders/0 had a leader in more than one leader epoch, on more than one broker.
    let leaders: std::collections::BTreeSet<(String, u64)> = events
        .iter()
        .filter(|e| e["kind"] == "become-leader" && e["detail"]["partition"] == "orders/0")
        .map(|e| {
            (
                e["node"].as_str().unwrap().to_string(),
                e["detail"]["leader_epoch"].as_u64().unwrap(),
            )
        })
        .collect();
    let brokers: std::collections::BTreeSet<&String> = leaders.iter().map(|(b, _)| b).collect();
    assert!(leaders.len() >= 3 && brokers.len() >= 2, "{leaders:?}");
    // Producers were acknowledged throughout, and the consumer read what they wrote.
    let history = history(&dir);
    let acked = history
        .iter()
        .filter(|e| {
            matches!(
                &e.op,
                Op::SendReturn {
                    outcome: SendOutcome::Ok { .. },
                    ..
                }
            )
        })
        .count();
    let polled: usize = history
        .iter()
        .map(|e| match &e.op {
            Op::Poll { records, .. } => records.len(),
            _ => 0,
        })
        .sum();
    assert!(acked > 1000, "{acked} acknowledged");
    assert!(polled >= acked * 9 / 10, "{polled} polled of {acked}");
}

#[test]
fn power_loss_of_every_broker_with_fsync_loses_nothing_acknowledged() {
    let dir = passes("power-loss-fsync.toml", 1);
    let lost = events(&dir)
        .iter()
        .filter(|e| e["kind"] == "fault" && e["detail"]["action"] == "power-loss")
        .count();
    assert_eq!(lost, 1);
}

#[test]
fn without_fsync_a_correlated_power_loss_loses_acknowledged_writes() {
    let dir = scratch("brokers-no-fsync");
    zoo_fires("zoo/no-fsync-power-loss.toml", "1..4", "lost-write", &dir);
}

/// A follower that finished truncating against the final leader holds, by its own
/// reckoning, the leader's records below its LEO: a divergent tail it kept below the HW is
/// a safety violation even when it never fetches again. zoo/no-fsync-power-loss seed 15:
/// after the all-broker power cut broker-2 leads epoch 1 again with a shorter log and
/// re-appends at offsets broker-3 still holds older epoch-1 records for; the epoch lookup
/// sees no divergence, broker-3's fetches land inside the leader's batches and are refused.
#[test]
fn a_follower_that_kept_a_divergent_tail_after_truncating_breaks_the_committed_prefix() {
    let scenario = load(&scenario_path("zoo/no-fsync-power-loss.toml")).unwrap();
    let dir = scratch("brokers-divergent-tail");
    let result = run_one(&scenario, 15, &dir).unwrap();
    let failed = result.failed_checks();
    assert!(failed.contains(&"converges"), "{failed:?}");
    let found: Vec<&str> = result
        .violations()
        .into_iter()
        .filter(|v| v.check == "committed-prefix-agreement")
        .map(|v| v.detail.as_str())
        .collect();
    assert!(
        found.iter().any(|d| d.starts_with("orders/0: ")
            && d.contains("broker-3 finished truncating against broker-2 in leader epoch 1")),
        "{found:?}"
    );
}

#[test]
fn an_unclean_election_loses_acknowledged_writes_and_a_clean_one_waits() {
    let zoo = "zoo/unclean-election.toml";
    let dir = scratch("brokers-unclean");
    zoo_fires(zoo, "1..3", "lost-write", &dir);
    // The same schedule with unclean election off: the partition waits for its ISR member.
    let switch = "\"unclean.leader.election.enable\"";
    fixed_twin_passes(
        zoo,
        &format!("{switch} = true"),
        &format!("{switch} = false"),
        &dir,
        &[1, 2],
    );
}

#[test]
fn retries_without_idempotence_duplicate_and_idempotence_prevents_it() {
    let zoo = "zoo/retries-without-idempotence.toml";
    let dir = scratch("brokers-retries");
    zoo_fires(zoo, "1..2", "duplicate", &dir);
    let switch = "\"enable.idempotence\"";
    fixed_twin_passes(
        zoo,
        &format!("{switch} = false"),
        &format!("{switch} = true"),
        &dir,
        &[1],
    );
}

#[test]
fn truncating_to_the_high_watermark_loses_acknowledged_writes_and_epochs_do_not() {
    let zoo = "zoo/hw-truncation.toml";
    let dir = scratch("brokers-hw-truncation");
    // Whether the follower's HW trails an acknowledged record at the kill is a race: the
    // entry fires on some seeds of its range, as the zoo promises.
    zoo_fires(zoo, "1..10", "lost-write", &dir);
    fixed_twin_passes(
        zoo,
        "truncate-to-hw = true",
        "truncate-to-hw = false",
        &dir,
        &[1, 5],
    );
}

#[test]
fn truncating_to_the_high_watermark_after_a_double_power_loss_leaves_replicas_diverged() {
    let zoo = "zoo/power-loss-divergence.toml";
    let dir = scratch("brokers-power-loss-divergence");
    // Seed 3: the old leader comes back with a log cut shorter than the follower's HW.
    zoo_fires(zoo, "3..3", "committed-prefix-agreement", &dir);
    fixed_twin_passes(
        zoo,
        "truncate-to-hw = true",
        "truncate-to-hw = false",
        &dir,
        &[3, 6],
    );
}

#[test]
fn an_offset_only_epoch_answer_after_a_fast_double_failover_leaves_replicas_diverged() {
    let zoo = "zoo/epoch-lookup-v0.toml";
    let dir = scratch("brokers-epoch-lookup-v0");
    zoo_fires(zoo, "1..1", "committed-prefix-agreement", &dir);
    fixed_twin_passes(
        zoo,
        "offsets-for-leader-epoch-v0 = true",
        "offsets-for-leader-epoch-v0 = false",
        &dir,
        &[1, 2],
    );
}

#[test]
fn a_fast_bounce_unseen_without_broker_epochs_leaves_a_partition_offline() {
    let zoo = "zoo/fast-bounce.toml";
    let dir = scratch("brokers-fast-bounce");
    // Seed 1: the bounced leader of orders/0 is not the controller.
    zoo_fires(zoo, "1..1", "converges", &dir);
    fixed_twin_passes(
        zoo,
        "no-broker-epoch = true",
        "no-broker-epoch = false",
        &dir,
        &[1, 2],
    );
}

#[test]
fn a_zombie_leader_loses_acks1_writes_and_acks_all_keeps_them() {
    let zoo = "zoo/zombie-leader-acks1.toml";
    let dir = scratch("brokers-zombie-leader");
    zoo_fires(zoo, "1..1", "lost-write", &dir);
    fixed_twin_passes(zoo, "acks = \"1\"", "acks = \"all\"", &dir, &[1]);
}

#[test]
fn the_last_isr_member_re_elected_after_a_power_loss_loses_writes_and_elr_prevents_it() {
    let zoo = "zoo/last-replica-standing.toml";
    let dir = scratch("brokers-last-replica-standing");
    // Seed 4: the controller is not the follower, the ISR shrinks to the leader, and its
    // power loss cuts the unflushed tail.
    zoo_fires(zoo, "4..4", "lost-write", &dir);
    fixed_twin_passes(
        zoo,
        "lenient-min-isr = true",
        "lenient-min-isr = false",
        &dir,
        &[4, 5],
    );
}

#[test]
fn a_zombie_controller_writes_from_its_old_view_unless_its_writes_are_fenced() {
    let zoo = "zoo/zombie-controller.toml";
    let dir = scratch("brokers-zombie-controller");
    // Seed 4: a leader's AlterPartition waits in the paused controller's queue ahead of the
    // news that its session ended.
    zoo_fires(zoo, "4..4", "controller-epoch-monotonic", &dir);
    fixed_twin_passes(
        zoo,
        "unfenced-controller-writes = true",
        "unfenced-controller-writes = false",
        &dir,
        &[4, 5],
    );
}

#[test]
fn a_broker_run_is_deterministic_across_processes() {
    let dir = scratch("brokers-determinism");
    let a = trace_in_own_process("leader-failover.toml", 5, &dir.join("a"));
    let b = trace_in_own_process("leader-failover.toml", 5, &dir.join("b"));
    assert_eq!(a, b);
}

/// The nemesis's schedule is in the events: every fault it drew names concrete nodes (or
/// sides), the ensemble never lost its majority to it, and everything it broke it undid.
#[test]
fn the_nemesis_schedule_reads_back_and_undoes_itself() {
    let dir = passes("nemesis.toml", 2);
    let events = events(&dir);
    let faults: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "fault" && e["detail"]["by"] == "nemesis")
        .map(|e| &e["detail"])
        .collect();
    assert!(faults.len() >= 10, "{} nemesis steps", faults.len());
    let mut open: std::collections::BTreeMap<String, &str> = Default::default();
    let mut zk_down_most = 0;
    for fault in &faults {
        let action = fault["action"].as_str().unwrap();
        if action == "partition" {
            let sides = fault["sides"].as_array().unwrap();
            assert_eq!(sides.len(), 2, "{fault}");
            assert!(open.insert("network".into(), action).is_none());
            continue;
        }
        if action == "heal" {
            assert_eq!(open.remove("network"), Some("partition"));
            continue;
        }
        let nodes = fault["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{fault}"));
        assert!(!nodes.is_empty(), "{fault}");
        for node in nodes {
            let name = node["node"].as_str().unwrap().to_string();
            match action {
                "kill" | "power-loss" | "pause" | "clog" => {
                    assert!(open.insert(name, action).is_none(), "{fault}")
                }
                "restart" => assert!(matches!(open.remove(&name), Some("kill" | "power-loss"))),
                "resume" => assert_eq!(open.remove(&name), Some("pause")),
                "unclog" => assert_eq!(open.remove(&name), Some("clog")),
                other => panic!("unexpected nemesis action {other}"),
            }
        }
        let zk_down = open
            .iter()
            .filter(|(n, a)| n.starts_with("zk-") && **a != "partition")
            .count();
        zk_down_most = zk_down_most.max(zk_down);
    }
    assert!(
        zk_down_most <= 1,
        "a majority of the 3-server ensemble stayed up"
    );
    let kinds: std::collections::BTreeSet<&str> = faults
        .iter()
        .map(|f| f["action"].as_str().unwrap())
        .collect();
    assert!(kinds.len() >= 5, "{kinds:?}");
}

/// Jepsen's aborted read of Kafka transactions (2024; KIP-890 part 2): under transaction
/// version 1 a batch delayed past its transaction's abort lands in the producer's next
/// transaction and is committed with it; with an epoch bump per transaction it is fenced.
#[test]
fn a_late_batch_of_an_aborted_transaction_is_read_committed_only_without_an_epoch_bump() {
    let zoo = "zoo/txn-delayed-endtxn.toml";
    let dir = scratch("brokers-txn-delayed-endtxn");
    zoo_fires(zoo, "1..2", "aborted-read", &dir);
    fixed_twin_passes(
        zoo,
        "no-epoch-bump-per-transaction = true",
        "no-epoch-bump-per-transaction = false",
        &dir,
        &[1, 2],
    );
}

/// A hanging transaction (KAFKA-14402; KIP-890 part 1): under transaction version 1 and
/// without verification, a produce that lands after its transaction was aborted, and after
/// its producer's last transaction on the partition, opens a transaction no marker ends:
/// the LSO hangs and read_committed consumers never catch up. With verification the leader
/// asks the coordinator first and refuses it.
#[test]
fn a_late_produce_hangs_a_transaction_only_without_verification() {
    let zoo = "zoo/hanging-transaction.toml";
    let dir = scratch("brokers-hanging-transaction");
    zoo_fires(zoo, "1..1", "converges", &dir);
    fixed_twin_passes(
        zoo,
        "no-add-partition-verification = true",
        "no-add-partition-verification = false",
        &dir,
        &[1, 3],
    );
}
