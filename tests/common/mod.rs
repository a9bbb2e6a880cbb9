//! Helpers shared by the end-to-end test files: scratch run directories, scenario paths,
//! reading a run's history and events back, running one seed, and the trace hash of a run
//! in a separate process.
#![allow(dead_code)] // each test file uses its own subset

use ksim::cli::run_one;
use ksim::history::{Event, HistoryEntry};
use ksim::report::Verdict;
use ksim::scenario::load;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `ksim` binary run as a user runs it (from the repository's root), in a child process.
pub fn ksim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ksim binary runs")
}

/// `ksim run <scenario> --seed <seed> --out <out>`.
pub fn ksim_run(scenario: &str, seed: u64, out: &Path) -> Output {
    ksim(&[
        "run",
        scenario,
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// A fresh directory for one test's runs, under cargo's per-target scratch space.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `sim-scenarios/<name>`.
pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sim-scenarios")
        .join(name)
}

/// A run's `history.jsonl`. Each line must be exactly what serde writes for the entry it
/// reads as (the run wrote it with its own direct writer).
pub fn history(run_dir: &Path) -> Vec<HistoryEntry> {
    std::fs::read_to_string(run_dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let entry: HistoryEntry = serde_json::from_str(l).unwrap();
            assert_eq!(serde_json::to_string(&entry).unwrap(), l, "history line");
            entry
        })
        .collect()
}

/// A run's `events.jsonl`. Each line must be exactly what serde writes for the event it
/// reads as (the run wrote it with its own direct writer).
pub fn events(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let event: Event = serde_json::from_str(l).unwrap();
            assert_eq!(serde_json::to_string(&event).unwrap(), l, "event line");
            serde_json::from_str(l).unwrap()
        })
        .collect()
}

/// Runs one seed of a scenario (in `<prefix>-<name>-<seed>`) and asserts every check passed.
pub fn passes(prefix: &str, file: &str, seed: u64) -> PathBuf {
    let scenario = load(&scenario_path(file)).unwrap();
    let dir = scratch(&format!("{prefix}-{}-{seed}", scenario.name));
    let result = run_one(&scenario, seed, &dir).unwrap();
    assert_eq!(
        result.verdict,
        Verdict::Pass,
        "{file} seed {seed}: {:?}",
        result.violations()
    );
    dir
}

/// Sweeps a zoo scenario over `seeds` with the real binary and asserts its expectation
/// (`check` fired, nothing else did) was met.
pub fn zoo_fires(zoo: &str, seeds: &str, check: &str, dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args([
            "sweep",
            scenario_path(zoo).to_str().unwrap(),
            "--seeds",
            seeds,
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
}

/// The zoo scenario's schedule with `switch_on` replaced by `switch_off` and without its
/// `[expect]`, written into `dir`: every seed of it must pass.
pub fn fixed_twin_passes(zoo: &str, switch_on: &str, switch_off: &str, dir: &Path, seeds: &[u64]) {
    let fixed = std::fs::read_to_string(scenario_path(zoo))
        .unwrap()
        .replace(switch_on, switch_off)
        .split("\n[expect]")
        .next()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("fixed.toml");
    std::fs::write(&path, fixed).unwrap();
    let scenario = load(&path).unwrap();
    for &seed in seeds {
        let result = run_one(&scenario, seed, &dir.join(format!("fixed-{seed}"))).unwrap();
        assert_eq!(
            result.verdict,
            Verdict::Pass,
            "{zoo} fixed, seed {seed}: {:?}",
            result.violations()
        );
    }
}

/// The `trace=` of `ksim run <scenario> --seed <seed>` in its own process.
pub fn trace_in_own_process(scenario: &str, seed: u64, out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(["run", scenario_path(scenario).to_str().unwrap()])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    text.lines()
        .last()
        .unwrap()
        .split_whitespace()
        .find(|f| f.starts_with("trace="))
        .unwrap()
        .to_string()
}
