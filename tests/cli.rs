//! The `ksim` binary as a user runs it: the contract's commands, verdict line and exit codes.
//!
//! Each test runs the real binary in a child process, so "same seed ⇒ same trace" is checked
//! across processes, as the contract promises.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const POWER_LOSS: &str = "sim-scenarios/log-power-loss.toml";
const NO_FSYNC: &str = "sim-scenarios/zoo/log-no-fsync.toml";

fn ksim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ksim binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A scratch directory for one test, under target/ (never outside the repo's ignored dirs).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

/// The `trace=` field of a verdict line.
fn trace_of(verdict_line: &str) -> String {
    verdict_line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("trace="))
        .unwrap_or_else(|| panic!("no trace= in {verdict_line:?}"))
        .to_string()
}

fn run(scenario: &str, seed: u64, out: &Path) -> Output {
    ksim(&[
        "run",
        scenario,
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn run_prints_seed_first_and_the_verdict_line_last_and_replays_across_processes() {
    let dir = scratch("replay");
    let first = run(POWER_LOSS, 7, &dir.join("a"));
    let text = stdout(&first);
    assert_eq!(first.status.code(), Some(0), "{text}\n{}", stderr(&first));
    assert_eq!(text.lines().next(), Some("seed: 7"));
    let verdict = last_line(&text);
    assert!(
        verdict.starts_with("verdict: pass scenario=log-power-loss seed=7 trace="),
        "{verdict}"
    );
    assert_eq!(trace_of(verdict).len(), 16);

    let again = run(POWER_LOSS, 7, &dir.join("b"));
    assert_eq!(trace_of(last_line(&stdout(&again))), trace_of(verdict));
    let other = run(POWER_LOSS, 8, &dir.join("c"));
    assert_ne!(trace_of(last_line(&stdout(&other))), trace_of(verdict));

    for file in [
        "scenario.toml",
        "verdict.json",
        "events.jsonl",
        "history.jsonl",
        "report.md",
        "ksim.log",
    ] {
        assert!(dir.join("a").join(file).is_file(), "missing {file}");
    }
    let verdict_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("a/verdict.json")).unwrap())
            .unwrap();
    assert_eq!(verdict_json["verdict"], "pass");
    assert_eq!(verdict_json["seed"], 7);
    assert_eq!(verdict_json["trace_hash"], trace_of(verdict));
    assert!(verdict_json["stats"]["power_losses"].as_u64().unwrap() >= 4);
    assert!(verdict_json["stats"]["appends_acked"].as_u64().unwrap() > 1000);

    let replay = ksim(&["replay", dir.join("a").to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(0), "{}", stdout(&replay));
    assert!(stdout(&replay).contains("replay matches the recorded trace"));
}

#[test]
fn the_no_fsync_canary_fires_lost_write_and_run_reports_it_as_safety() {
    let dir = scratch("canary");
    let sweep = ksim(&[
        "sweep",
        NO_FSYNC,
        "--seeds",
        "1..4",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = stdout(&sweep);
    assert_eq!(sweep.status.code(), Some(0), "{text}\n{}", stderr(&sweep));
    assert!(
        text.contains("expectation met: `lost-write` fired"),
        "{text}"
    );

    // `run` of a failing seed still reports the real verdict, with its replay command.
    let seed = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("seed "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a failing seed is listed");
    let single = ksim(&[
        "run",
        NO_FSYNC,
        "--seed",
        seed,
        "--out",
        dir.join("single").to_str().unwrap(),
    ]);
    let out = stdout(&single);
    assert_eq!(single.status.code(), Some(1), "{out}");
    assert!(last_line(&out).starts_with("verdict: safety scenario=log-no-fsync"));
    assert!(out.contains("check lost-write"), "{out}");
    assert!(out.contains("replay: cargo run --release -- run"), "{out}");
}

#[test]
fn a_small_sweep_of_log_power_loss_passes_with_json_lines() {
    let dir = scratch("sweep");
    let sweep = ksim(&[
        "sweep",
        POWER_LOSS,
        "--seeds",
        "1..12",
        "--jobs",
        "2",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(sweep.status.code(), Some(0), "{}", stderr(&sweep));
    let lines: Vec<serde_json::Value> = stdout(&sweep)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    assert!(lines.iter().all(|v| v["verdict"] == "pass"));
    // Passing seeds keep only their verdict and report.
    assert!(dir.join("log-power-loss-3/verdict.json").is_file());
    assert!(!dir.join("log-power-loss-3/writer-1").exists());
}

#[test]
fn shards_split_a_sweep_without_overlap() {
    let dir = scratch("shards");
    let mut seen = Vec::new();
    for shard in ["1/2", "2/2"] {
        let out = ksim(&[
            "sweep",
            POWER_LOSS,
            "--seeds",
            "10..13",
            "--shard",
            shard,
            "--json",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        for line in stdout(&out).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            seen.push(v["seed"].as_u64().unwrap());
        }
    }
    seen.sort();
    assert_eq!(seen, vec![10, 11, 12, 13]);
}

#[test]
fn check_determinism_passes_on_a_few_seeds() {
    let out = ksim(&["check-determinism", POWER_LOSS, "--seeds", "1..2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("deterministic: 2 seeds"));
}

#[test]
fn invalid_scenarios_and_usage_errors_exit_2_with_a_position() {
    let dir = scratch("invalid");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nduration = \"10s\"\nheal = \"ten seconds\"\n",
    )
    .unwrap();
    let out = ksim(&["run", bad.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out).lines().next(), Some("seed: 1"));
    let err = stderr(&out);
    assert!(err.contains("bad.toml:3:8"), "{err}");

    let missing = ksim(&["run", "no/such/file.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(ksim(&["run"]).status.code(), Some(2));
    assert_eq!(
        ksim(&["run", POWER_LOSS, "--seed", "minus-one"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        ksim(&["sweep", POWER_LOSS, "--shard", "3/2"]).status.code(),
        Some(2)
    );
    assert_eq!(
        ksim(&["sweep", bad.to_str().unwrap()]).status.code(),
        Some(2)
    );
}

#[test]
fn list_shows_every_scenario_with_its_about() {
    let out = ksim(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("sim-scenarios/log-power-loss.toml"), "{text}");
    assert!(
        text.contains("sim-scenarios/zoo/log-no-fsync.toml"),
        "{text}"
    );
    assert!(!text.contains("(invalid"), "{text}");
}

#[test]
fn a_heal_bound_too_short_to_meet_is_a_liveness_verdict_exit_3() {
    let dir = scratch("liveness");
    let text = std::fs::read_to_string(POWER_LOSS)
        .unwrap()
        .replace("name = \"log-power-loss\"", "name = \"impatient\"")
        .replace("heal = \"20s\"", "heal = \"1ms\"");
    let path = dir.join("impatient.toml");
    std::fs::write(&path, text).unwrap();
    let out = run(path.to_str().unwrap(), 3, &dir.join("run"));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("check converges"), "{text}");
    assert!(last_line(&text).starts_with("verdict: liveness scenario=impatient seed=3"));
}
