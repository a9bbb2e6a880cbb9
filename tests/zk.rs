//! The ensemble end to end: scenarios run on the simulated runtime and are judged by the
//! checkers, plus the behaviours each scenario exists for (failover, expiry, SNAP) read back
//! from what the run recorded.

use ksim::cli::run_one;
use ksim::report::Verdict;
use ksim::scenario::load;
use ksim::sim::{HistoryEntry, Op};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("zk-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sim-scenarios")
        .join(name)
}

fn history(run_dir: &Path) -> Vec<HistoryEntry> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs a scenario's seed and asserts every check passed.
fn passes(file: &str, seed: u64) -> PathBuf {
    let scenario = load(&scenario_path(file)).unwrap();
    let dir = scratch(&format!("{}-{seed}", scenario.name));
    let result = run_one(&scenario, seed, &dir).unwrap();
    assert_eq!(
        result.verdict,
        Verdict::Pass,
        "{file} seed {seed}: {:?}",
        result.violations()
    );
    dir
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
            .filter(|e| matches!(&e.op, Op::ZkSession { event: ev, .. } if ev == event))
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
fn the_zoo_entries_fire_and_their_fixed_twins_pass() {
    for (zoo, check) in [
        ("zoo/zk-diff-instead-of-trunc.toml", "zk-replica-agreement"),
        ("zoo/zk-ack-before-persist.toml", "zk-linearizable-writes"),
    ] {
        let dir = scratch(&zoo.replace('/', "-"));
        let out = Command::new(env!("CARGO_BIN_EXE_ksim"))
            .args([
                "sweep",
                scenario_path(zoo).to_str().unwrap(),
                "--seeds",
                "1..4",
            ])
            .args(["--out", dir.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{zoo}: {text}");
        assert!(
            text.contains(&format!("expectation met: `{check}` fired")),
            "{zoo}: {text}"
        );

        // The same schedule with the legacy switch off passes.
        let fixed = std::fs::read_to_string(scenario_path(zoo))
            .unwrap()
            .replace("= true", "= false")
            .split("\n[expect]")
            .next()
            .unwrap()
            .to_string();
        let path = dir.join("fixed.toml");
        std::fs::write(&path, fixed).unwrap();
        let scenario = load(&path).unwrap();
        for seed in 1..=2 {
            let result = run_one(&scenario, seed, &dir.join(format!("fixed-{seed}"))).unwrap();
            assert_eq!(
                result.verdict,
                Verdict::Pass,
                "{zoo} fixed, seed {seed}: {:?}",
                result.violations()
            );
        }
    }
}

#[test]
fn an_ensemble_run_is_deterministic_across_processes() {
    let path = scenario_path("zk-leader-crash.toml");
    let dir = scratch("determinism");
    let trace = |copy: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ksim"))
            .args(["run", path.to_str().unwrap(), "--seed", "11", "--out"])
            .arg(dir.join(copy))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .last()
            .unwrap()
            .split_whitespace()
            .find(|f| f.starts_with("trace="))
            .unwrap()
            .to_string()
    };
    assert_eq!(trace("a"), trace("b"));
}
