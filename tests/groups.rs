//! Consumer groups end to end: the group scenarios pass and show the rebalances they are
//! about; each group zoo entry makes its check fire, and its fixed twin passes.

mod common;

use common::{events, fixed_twin_passes, history, scratch, trace_in_own_process, zoo_fires};
use ksim::history::Op;
use serde_json::Value;

fn passes(file: &str, seed: u64) -> std::path::PathBuf {
    common::passes("groups", file, seed)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn crashed_and_stalled_members_are_rebalanced_away_and_back() {
    let dir = passes("consumer-crash-rebalance.toml", 1);
    let events = events(&dir);
    let removed = of_kind(&events, "member-removed");
    assert!(
        removed
            .iter()
            .any(|e| e["detail"]["why"] == "session timed out"),
        "{removed:?}"
    );
    // Every crash, return and stall is a rebalance.
    assert!(of_kind(&events, "group-generation").len() >= 5);
    // The members were handed partitions in several generations, and committed in them.
    let history = history(&dir);
    let generations: std::collections::BTreeSet<_> = history
        .iter()
        .filter_map(|e| match &e.op {
            Op::Commit {
                generation,
                error: None,
                ..
            } => Some(*generation),
            _ => None,
        })
        .collect();
    assert!(generations.len() >= 4, "{generations:?}");
}

#[test]
fn the_group_follows_its_offsets_partition_to_the_new_coordinator() {
    let dir = passes("coordinator-failover.toml", 1);
    let events = events(&dir);
    // `coordinator(billing)` named a concrete broker.
    let kills: Vec<&Value> = of_kind(&events, "fault")
        .into_iter()
        .filter(|e| e["detail"]["target"] == "coordinator(billing)")
        .collect();
    assert_eq!(kills.len(), 2);
    for kill in kills {
        let node = kill["detail"]["nodes"][0]["node"].as_str().unwrap();
        assert!(node.starts_with("broker-"), "{kill}");
    }
    // The group was loaded from the log by more than one broker.
    let loaders: std::collections::BTreeSet<&str> = of_kind(&events, "coordinator-loaded")
        .into_iter()
        .filter(|e| {
            e["detail"]["groups"]
                .as_array()
                .unwrap()
                .contains(&"billing".into())
        })
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    assert!(loaders.len() >= 2, "{loaders:?}");
}

#[test]
fn a_cooperative_group_rebalances_twice_and_a_stalled_member_leaves() {
    let dir = passes("cooperative-rebalance.toml", 1);
    let events = events(&dir);
    // Past max.poll.interval.ms within its session, consumer-2 sent LeaveGroup.
    let removed = of_kind(&events, "member-removed");
    assert!(
        removed
            .iter()
            .any(|e| e["detail"]["why"] == "left the group"
                && e["detail"]["member"]
                    .as_str()
                    .unwrap()
                    .starts_with("consumer-2")),
        "{removed:?}"
    );
    // KIP-429: a member joining takes two generations in a row (revoke, then assign).
    let generations: Vec<f64> = of_kind(&events, "group-generation")
        .iter()
        .map(|e| e["at_us"].as_f64().unwrap())
        .collect();
    assert!(
        generations.windows(2).any(|w| w[1] - w[0] < 2_000_000.0),
        "{generations:?}"
    );
}

#[test]
fn static_members_bounce_without_a_rebalance() {
    let dir = passes("static-membership.toml", 1);
    let events = events(&dir);
    let replaced = of_kind(&events, "member-removed")
        .into_iter()
        .filter(|e| e["detail"]["why"] == "replaced by its instance")
        .count();
    assert_eq!(replaced, 2, "both quick bounces rejoined as their instance");
    // Only the long absence (from 36 s) rebalanced the group after its first generation.
    let early = of_kind(&events, "group-generation")
        .into_iter()
        .filter(|e| e["at_us"].as_u64().unwrap() < 36_000_000)
        .count();
    assert_eq!(early, 1);
}

#[test]
fn commits_of_an_old_generation_are_stored_only_without_fencing() {
    let zoo = "zoo/stale-generation-commit.toml";
    let dir = scratch("groups-stale-generation-commit");
    zoo_fires(zoo, "1..2", "stale-commit-accepted", &dir);
    fixed_twin_passes(
        zoo,
        "unfenced-offset-commits = true",
        "unfenced-offset-commits = false",
        &dir,
        &[1, 2],
    );
}

#[test]
fn a_zombie_processor_commits_its_output_twice_only_without_kip_447_fencing() {
    let zoo = "zoo/zombie-processor.toml";
    let dir = scratch("groups-zombie-processor");
    zoo_fires(zoo, "7..7", "duplicate", &dir);
    fixed_twin_passes(
        zoo,
        "unfenced-transactional-producer = true",
        "unfenced-transactional-producer = false",
        &dir,
        &[7, 12],
    );
}

#[test]
fn committing_before_processing_leaves_records_unseen() {
    let zoo = "zoo/commit-before-process.toml";
    let dir = scratch("groups-commit-before-process");
    zoo_fires(zoo, "1..2", "unseen", &dir);
    fixed_twin_passes(
        zoo,
        "commit-before-process = true",
        "commit-before-process = false",
        &dir,
        &[1, 2],
    );
}

#[test]
fn handing_over_a_partition_before_its_owner_revoked_it_is_caught() {
    let zoo = "zoo/cooperative-no-holdback.toml";
    let dir = scratch("groups-cooperative-no-holdback");
    zoo_fires(zoo, "1..1", "exclusive-assignment", &dir);
    fixed_twin_passes(
        zoo,
        "cooperative-no-holdback = true",
        "cooperative-no-holdback = false",
        &dir,
        &[1],
    );
}

#[test]
fn a_group_run_is_deterministic_across_processes() {
    let dir = scratch("groups-determinism");
    let a = trace_in_own_process("cooperative-rebalance.toml", 3, &dir.join("a"));
    let b = trace_in_own_process("cooperative-rebalance.toml", 3, &dir.join("b"));
    assert_eq!(a, b);
}

/// `auto.offset.reset = latest`: the group's members start each partition where ListOffsets
/// says the reads end (nothing committed), and the reader back from its crash starts at the
/// end of the log, skipping what was written while it was down; every check passes.
#[test]
fn consumers_reset_to_latest_start_at_the_end_of_the_log() {
    let dir = passes("reset-to-latest.toml", 1);
    let history = history(&dir);
    // The reader's second incarnation: its first positions are past records acknowledged
    // before it came back.
    let restarted = history
        .iter()
        .position(|e| {
            &*e.node == "consumer-3" && matches!(e.op, Op::ClientStart { incarnation: 2 })
        })
        .expect("consumer-3 restarted");
    let positions: Vec<u64> = history[restarted..]
        .iter()
        .filter(|e| &*e.node == "consumer-3")
        .find_map(|e| match &e.op {
            Op::Assign { partitions } if !partitions.is_empty() => {
                Some(partitions.iter().map(|(_, p)| *p).collect())
            }
            _ => None,
        })
        .expect("the new incarnation was assigned");
    assert!(positions.iter().all(|p| *p > 0), "{positions:?}");
    // The group's first positions are not 0 either: it began where the reads ended.
    let first_group_positions: Vec<u64> = history
        .iter()
        .filter_map(|e| match &e.op {
            Op::GroupAssign { partitions, .. } => Some(partitions.iter().map(|(_, p)| *p)),
            _ => None,
        })
        .flatten()
        .take(2)
        .collect();
    assert_eq!(first_group_positions.len(), 2);
    assert!(
        first_group_positions.iter().all(|p| *p > 0),
        "{first_group_positions:?}"
    );
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdict.json")).unwrap()).unwrap();
    assert!(
        verdict["marks"]["offset-reset-by-list-offsets"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{verdict}"
    );
}
