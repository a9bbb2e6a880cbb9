//! Coverage marks as a user meets them: in `verdict.json`, in a sweep's summary, and in the
//! report `ksim coverage` writes. Each mark named here is reachable only under some
//! configuration or fault, so these tests fail if a mark is never counted, or counted
//! where its state cannot occur.

mod common;

use common::ksim;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = common::scratch(&format!("coverage-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The marks of one `ksim run`, from its verdict.json.
fn marks_of(scenario: &str, seed: u64, out: &Path) -> serde_json::Map<String, Value> {
    let output = common::ksim_run(scenario, seed, out);
    assert!(output.status.code().is_some(), "{output:?}");
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("verdict.json")).unwrap()).unwrap();
    verdict["marks"]
        .as_object()
        .unwrap_or_else(|| panic!("no marks in {verdict}"))
        .clone()
}

/// The unclean-election mark is reached only where the scenario allows unclean elections,
/// and the power-loss marks only where the power fails.
#[test]
fn a_run_counts_the_marks_it_reached_and_only_those() {
    let dir = scratch("run");
    let unclean = marks_of(
        "sim-scenarios/zoo/unclean-election.toml",
        1,
        &dir.join("unclean"),
    );
    assert!(
        unclean["unclean-election"].as_u64().unwrap() >= 1,
        "{unclean:?}"
    );
    let clean = marks_of("sim-scenarios/leader-failover.toml", 1, &dir.join("clean"));
    assert!(!clean.contains_key("unclean-election"), "{clean:?}");
    assert!(
        !clean.contains_key("power-loss-loses-unsynced-bytes"),
        "{clean:?}"
    );
    assert!(
        clean["controller-moved"].as_u64().unwrap() >= 1,
        "{clean:?}"
    );
    let power = marks_of(
        "sim-scenarios/zoo/no-fsync-power-loss.toml",
        1,
        &dir.join("power"),
    );
    assert!(
        power["power-loss-loses-unsynced-bytes"].as_u64().unwrap() >= 1,
        "{power:?}"
    );
    // Same seed, same marks: they are part of the deterministic run (not of its hash).
    let again = marks_of("sim-scenarios/leader-failover.toml", 1, &dir.join("again"));
    assert_eq!(clean, again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sweep says on how many seeds each mark was hit, and which were never hit.
#[test]
fn a_sweep_reports_marks_per_seed() {
    let dir = scratch("sweep");
    let output = ksim(&[
        "sweep",
        "sim-scenarios/leader-failover.toml",
        "--seeds",
        "1..3",
        "--jobs",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let head = text
        .lines()
        .find(|l| l.starts_with("coverage: "))
        .unwrap_or_else(|| panic!("no coverage line in {text}"));
    assert!(head.ends_with("marks hit on 3 runs"), "{head}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("controller-moved "))
        .unwrap_or_else(|| panic!("no controller-moved line in {text}"));
    assert!(line.ends_with("3 seeds"), "{line}");
    let never = text
        .lines()
        .find(|l| l.trim_start().starts_with("never hit: "))
        .unwrap_or_else(|| panic!("no never-hit line in {text}"));
    assert!(never.contains("unclean-election"), "{never}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ksim coverage` runs every scenario of a directory, writes a report naming every mark
/// with its counts, and leaves no run directory behind.
#[test]
fn coverage_writes_a_report_of_every_mark() {
    let dir = scratch("report");
    let scenarios = dir.join("scenarios");
    std::fs::create_dir_all(scenarios.join("zoo")).unwrap();
    std::fs::copy(
        "sim-scenarios/leader-failover.toml",
        scenarios.join("leader-failover.toml"),
    )
    .unwrap();
    std::fs::copy(
        "sim-scenarios/zoo/unclean-election.toml",
        scenarios.join("zoo/unclean-election.toml"),
    )
    .unwrap();
    let report = dir.join("coverage.md");
    let work = dir.join("work");
    let output = ksim(&[
        "coverage",
        scenarios.to_str().unwrap(),
        "--seeds",
        "1..2",
        "--jobs",
        "2",
        "--out",
        report.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}{output:?}");
    assert!(!work.exists(), "scratch runs left behind");
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.contains("4 runs in all"), "{md}");
    let row = |mark: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| `{mark}` |")))
            .unwrap_or_else(|| panic!("no row for {mark} in {md}"))
            .to_string()
    };
    // Only the zoo entry elects uncleanly; both scenarios move the controller.
    let unclean = row("unclean-election");
    assert!(unclean.contains("zoo/unclean-election.toml"), "{unclean}");
    assert!(!unclean.contains("leader-failover.toml"), "{unclean}");
    assert!(!row("zab-snap-sync").is_empty());
    assert!(
        md.contains("| `zoo/unclean-election.toml` (unclean-election) |"),
        "{md}"
    );
    // A mark no run reached is listed as never hit.
    assert!(md.contains("Never hit:"), "{md}");
    // A missing directory is a usage error.
    let missing = ksim(&["coverage", dir.join("nope").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
