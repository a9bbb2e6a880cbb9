//! The ensemble end to end: scenarios run on the simulated runtime and are judged by the
//! checkers, plus the behaviours each scenario exists for (failover, expiry, SNAP) read back
//! from what the run recorded.

use ksim::history::Op;

mod common;

use common::{events, fixed_twin_passes, history, scratch, trace_in_own_process, zoo_fires};

fn passes(file: &str, seed: u64) -> std::path::PathBuf {
    common::passes("zk", file, seed)
}

#[test]
fn leader_crashes_fail_over_and_every_check_passes() {
    for seed in [1, 2] {
        let dir = passes("zk-leader-crash.toml", seed);
        let leaders = events(&dir)
            .iter()
            .filter(|e| e["kind"] == "leading")
            .count();
        assert!(
            leaders >= 5,
            "seed {seed}: the leader was killed four times: {leaders} leaders"
        );
    }
}

#[test]
fn partitions_with_the_leader_on_the_minority_side_pass() {
    for seed in [1, 2] {
        let dir = passes("zk-partition.toml", seed);
        let modes: Vec<String> = events(&dir)
            .iter()
            .filter(|e| e["kind"] == "sync")
            .map(|e| e["detail"]["mode"].as_str().unwrap().to_string())
            .collect();
        assert!(
            modes.iter().any(|m| m != "diff"),
            "seed {seed}: TRUNC or SNAP happened: {modes:?}"
        );
    }
}

#[test]
fn correlated_power_loss_of_a_majority_loses_nothing_acknowledged() {
    for seed in [1, 2] {
        passes("zk-power-loss.toml", seed);
    }
}

#[test]
fn a_paused_client_loses_its_session_and_a_briefly_partitioned_one_keeps_it() {
    let dir = passes("zk-session-expiry.toml", 1);
    let history = history(&dir);
    let session_events = |node: &str, event: &str, from_s: f64, to_s: f64| {
        history
            .iter()
            .filter(|e| {
                e.node == node && (from_s * 1e6) as u64 <= e.at_us && e.at_us <= (to_s * 1e6) as u64
            })
            .filter(|e| matches!(&e.op, Op::ZkSession { event: ev, .. } if **ev == *event))
            .count()
    };
    // Paused 10s..18s with a 3s timeout: told on waking that its session expired.
    assert!(
        session_events("zk-client-1", "expired", 10.0, 20.0) >= 1,
        "zk-client-1 kept its session"
    );
    // Cut off 30s..31.5s, inside its timeout: no expiry, and the same session carries on.
    assert_eq!(
        session_events("zk-client-2", "expired", 29.0, 40.0),
        0,
        "zk-client-2 lost its session"
    );
    assert!(
        events(&dir).iter().any(|e| e["kind"] == "session-expired"),
        "the leader expired a session"
    );
}

#[test]
fn a_leader_deposed_while_paused_is_truncated_and_rejoins_before_the_run_ends() {
    // Seeds ended with `zk-replica-agreement` flagging the old leader's uncommitted
    // proposals of its old epoch while the world stopped once *a* leader of the newest
    // epoch existed (issue 12). Whether the paused leader holds uncommitted proposals
    // (and is synced by TRUNC) depends on the schedule: seeds 1 and 3 do today.
    for seed in [1, 3] {
        let dir = passes("zk-paused-leader.toml", seed);
        let events = events(&dir);
        let paused = events
            .iter()
            .find(|e| e["kind"] == "fault" && e["detail"]["action"] == "pause")
            .map(|e| e["detail"]["nodes"][0]["node"].clone())
            .unwrap();
        let at = |kind: &str| {
            events
                .iter()
                .position(|e| e["node"] == "world" && e["kind"] == kind)
                .unwrap()
        };
        let (heal, converged) = (at("heal"), at("converged"));
        let epoch = events[converged]["detail"]["zk_epoch"].clone();
        let rejoin = &events[heal..converged];
        assert!(
            rejoin.iter().any(|e| e["node"] == paused
                && e["kind"] == "synced"
                && e["detail"]["mode"] == "trunc"),
            "seed {seed}: {paused} was truncated of its old epoch's proposals"
        );
        assert!(
            rejoin.iter().any(|e| e["node"] == paused
                && e["kind"] == "following"
                && e["detail"]["epoch"] == epoch),
            "seed {seed}: {paused} follows the newest epoch {epoch} before the run converges"
        );
    }
}

#[test]
fn the_zoo_entries_fire_and_their_fixed_twins_pass() {
    for (zoo, check, switch) in [
        (
            "zoo/zk-diff-instead-of-trunc.toml",
            "zk-replica-agreement",
            "zk-diff-only-sync",
        ),
        (
            "zoo/zk-ack-before-persist.toml",
            "zk-linearizable-writes",
            "zk-ack-before-sync",
        ),
    ] {
        let dir = scratch(&format!("zk-{}", zoo.replace('/', "-")));
        zoo_fires(zoo, "1..4", check, &dir);
        // The same schedule with the legacy switch off passes.
        fixed_twin_passes(
            zoo,
            &format!("{switch} = true"),
            &format!("{switch} = false"),
            &dir,
            &[1, 2],
        );
    }
}

#[test]
fn an_ensemble_run_is_deterministic_across_processes() {
    let dir = scratch("zk-determinism");
    let a = trace_in_own_process("zk-leader-crash.toml", 11, &dir.join("a"));
    let b = trace_in_own_process("zk-leader-crash.toml", 11, &dir.join("b"));
    assert_eq!(a, b);
}
