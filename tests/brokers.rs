//! Brokers end to end: producers and consumers against a replicated, failing cluster on the
//! ensemble, judged by the checkers — plus the behaviours each scenario exists for (leaders
//! move, the controller fails over, power loss with fsync loses nothing) read back from what
//! the run recorded, and the no-fsync canary firing.

use ksim::cli::run_one;
use ksim::report::Verdict;
use ksim::scenario::load;
use ksim::sim::{HistoryEntry, Op, SendOutcome};
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("brokers-{name}"));
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
    let zoo = "zoo/no-fsync-power-loss.toml";
    let dir = scratch("no-fsync");
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
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("expectation met: `lost-write` fired"),
        "{text}"
    );
}

#[test]
fn an_unclean_election_loses_acknowledged_writes_and_a_clean_one_waits() {
    let zoo = "zoo/unclean-election.toml";
    let dir = scratch("unclean");
    let out = Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args([
            "sweep",
            scenario_path(zoo).to_str().unwrap(),
            "--seeds",
            "1..3",
        ])
        .args(["--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("expectation met: `lost-write` fired"),
        "{text}"
    );
    // The same schedule with unclean election off: the partition waits for its ISR member.
    let fixed = std::fs::read_to_string(scenario_path(zoo))
        .unwrap()
        .replace(
            "\"unclean.leader.election.enable\" = true",
            "\"unclean.leader.election.enable\" = false",
        )
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
            "fixed, seed {seed}: {:?}",
            result.violations()
        );
    }
}

#[test]
fn a_broker_run_is_deterministic_across_processes() {
    let path = scenario_path("leader-failover.toml");
    let dir = scratch("determinism");
    let trace = |copy: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ksim"))
            .args(["run", path.to_str().unwrap(), "--seed", "5", "--out"])
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
