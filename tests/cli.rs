//! The `ksim` binary as a user runs it: the contract's commands, verdict line and exit codes.
//!
//! Each test runs the real binary in a child process, so "same seed ⇒ same trace" is checked
//! across processes, as the contract promises.

mod common;

use common::{ksim, ksim_run as run};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const POWER_LOSS: &str = "sim-scenarios/log-power-loss.toml";
const NO_FSYNC: &str = "sim-scenarios/zoo/log-no-fsync.toml";

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
        "report.html",
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
    // Each line says where its run directory is and how to replay it.
    for line in &lines {
        let seed = line["seed"].as_u64().unwrap();
        let run_dir = dir.join(format!("log-power-loss-{seed}"));
        assert_eq!(line["run_dir"], run_dir.display().to_string());
        assert_eq!(
            line["replay"],
            format!("cargo run --release -- run {POWER_LOSS} --seed {seed}")
        );
    }
    // Passing seeds keep only their verdict and reports.
    assert!(dir.join("log-power-loss-3/verdict.json").is_file());
    assert!(dir.join("log-power-loss-3/report.html").is_file());
    assert!(!dir.join("log-power-loss-3/events.jsonl").exists());
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
fn fail_fast_stops_a_sweep_at_a_failing_seed_and_the_summary_names_its_run_dir() {
    let dir = scratch("fail-fast");
    let sweep = ksim(&[
        "sweep",
        "sim-scenarios/zoo/unclean-election.toml",
        "--seeds",
        "1..40",
        "--jobs",
        "1",
        "--fail-fast",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = stdout(&sweep);
    // One job: the first failing seed is the last one run.
    assert!(
        text.contains("--fail-fast: stopped after the first failing seed"),
        "{text}"
    );
    let ran = std::fs::read_dir(&dir).unwrap().count();
    assert!(ran < 40, "{ran} seeds ran\n{text}");
    let run_dir = dir.join(format!("unclean-election-{ran}"));
    assert!(
        text.contains(&format!("run dir: {}", run_dir.display())),
        "{text}"
    );
    assert!(
        run_dir.join("events.jsonl").is_file(),
        "a failing seed keeps its run"
    );
    assert!(text.contains("expectation met: `lost-write`"), "{text}");
}

#[test]
fn a_zoo_scenario_run_alone_says_its_failure_is_the_expected_one() {
    let dir = scratch("zoo-alone");
    let out = ksim(&[
        "run",
        "sim-scenarios/zoo/unclean-election.toml",
        "--seed",
        "1",
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("zoo: `lost-write` fired as expected"),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().starts_with("verdict: safety"),
        "{text}"
    );
}

#[test]
fn list_shows_every_scenario_with_its_about() {
    let out = ksim(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    // The abouts start in one column, however long the paths.
    let columns: std::collections::BTreeSet<usize> = text
        .lines()
        .map(|line| {
            let path_end = line.find(".toml").unwrap() + ".toml".len();
            path_end + line[path_end..].chars().take_while(|c| *c == ' ').count()
        })
        .collect();
    assert_eq!(columns.len(), 1, "{text}");
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

#[test]
fn out_never_empties_a_directory_ksim_did_not_make() {
    let dir = scratch("stranger");
    let thesis = dir.join("thesis.tex");
    std::fs::write(&thesis, "years of work").unwrap();
    let expect_refused = |output: Output, what: &str| {
        assert_eq!(output.status.code(), Some(2), "{what}: {}", stdout(&output));
        let err = stderr(&output);
        assert!(err.contains(dir.to_str().unwrap()), "{what}: {err}");
        assert!(err.contains("thesis.tex"), "{what}: {err}");
        assert_eq!(
            std::fs::read_to_string(&thesis).unwrap(),
            "years of work",
            "{what}"
        );
    };
    expect_refused(run(POWER_LOSS, 1, &dir), "run --out");

    // A sweep's seed directory, and check-determinism's copies, obey the same rule.
    let base = scratch("stranger-base");
    let seed_dir = base.join("log-power-loss-1");
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::rename(&thesis, seed_dir.join("thesis.tex")).unwrap();
    let sweep = ksim(&[
        "sweep",
        POWER_LOSS,
        "--seeds",
        "1..1",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert_eq!(sweep.status.code(), Some(2), "{}", stdout(&sweep));
    assert!(seed_dir.join("thesis.tex").is_file());
    let copy_dir = base.join("log-power-loss-1-a");
    std::fs::create_dir_all(&copy_dir).unwrap();
    std::fs::write(copy_dir.join("notes"), "mine").unwrap();
    let check = ksim(&[
        "check-determinism",
        POWER_LOSS,
        "--seeds",
        "1..1",
        "--out",
        base.to_str().unwrap(),
    ]);
    assert_eq!(check.status.code(), Some(2), "{}", stdout(&check));
    assert_eq!(
        std::fs::read_to_string(copy_dir.join("notes")).unwrap(),
        "mine"
    );

    // A directory ksim made is reused (and emptied) without complaint.
    let ours = dir.join("ours");
    assert_eq!(run(POWER_LOSS, 1, &ours).status.code(), Some(0));
    assert!(ours.join(".ksim-run").is_file());
    std::fs::write(ours.join("leftover"), "").unwrap();
    assert_eq!(run(POWER_LOSS, 1, &ours).status.code(), Some(0));
    assert!(!ours.join("leftover").exists());
}

#[test]
fn an_out_that_cannot_be_written_is_exit_2_with_the_path() {
    let dir = scratch("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    for out in [file.clone(), file.join("below")] {
        let output = run(POWER_LOSS, 1, &out);
        assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
        assert!(
            stderr(&output).contains(out.to_str().unwrap()),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn jobs_zero_and_a_missing_list_directory_are_usage_errors() {
    for command in ["sweep", "check-determinism"] {
        let out = ksim(&[command, POWER_LOSS, "--jobs", "0"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(stderr(&out).contains("at least 1"), "{}", stderr(&out));
    }
    assert_eq!(ksim(&["swarm", "--jobs", "0"]).status.code(), Some(2));
    let list = ksim(&["list", "no/such/dir"]);
    assert_eq!(list.status.code(), Some(2));
    assert!(stderr(&list).contains("no/such/dir"), "{}", stderr(&list));
}

/// Runs ksim with its stdout a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait().unwrap()
}

#[test]
fn a_closed_pipe_ends_output_quietly_with_the_verdicts_exit_code() {
    assert_eq!(with_closed_stdout(&["list"]).code(), Some(0));
    let dir = scratch("pipe");
    let out = dir.join("run");
    let status = with_closed_stdout(&[
        "run",
        POWER_LOSS,
        "--seed",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(0));
    assert!(
        out.join("verdict.json").is_file(),
        "the run still completed"
    );
    let status = with_closed_stdout(&[
        "sweep",
        NO_FSYNC,
        "--seeds",
        "1..2",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn replay_tells_an_edited_scenario_and_another_build_from_nondeterminism() {
    let dir = scratch("provenance");
    let run_dir = dir.join("run");
    assert_eq!(run(POWER_LOSS, 5, &run_dir).status.code(), Some(0));
    let verdict_path = run_dir.join("verdict.json");
    let recorded = read_json(&verdict_path);
    for key in ["ksim_version", "git_commit", "build_id", "scenario_hash"] {
        assert!(
            recorded[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {recorded}"
        );
    }
    let tamper = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = recorded.clone();
        edit(&mut doc);
        std::fs::write(&verdict_path, doc.to_string()).unwrap();
        ksim(&["replay", run_dir.to_str().unwrap()])
    };

    // Same binary, same scenario, another trace: nondeterminism.
    let other_trace = tamper(&|doc| doc["trace_hash"] = "0123456789abcdef".into());
    assert_eq!(
        other_trace.status.code(),
        Some(5),
        "{}",
        stdout(&other_trace)
    );
    assert!(stdout(&other_trace).contains("nondeterminism"));

    // Another commit with another trace: not blamed on the simulation.
    let other_commit = tamper(&|doc| {
        doc["trace_hash"] = "0123456789abcdef".into();
        doc["git_commit"] = "0000000000000000000000000000000000000000".into();
    });
    assert_eq!(
        other_commit.status.code(),
        Some(2),
        "{}",
        stdout(&other_commit)
    );
    assert!(stdout(&other_commit).contains("built from another commit"));

    // Another binary of the same commit, same trace: a clean replay.
    let other_binary = tamper(&|doc| doc["build_id"] = "00000000-1".into());
    assert_eq!(
        other_binary.status.code(),
        Some(0),
        "{}",
        stdout(&other_binary)
    );

    // The scenario edited since the run: refused before running.
    tamper(&|_| {});
    let scenario = run_dir.join("scenario.toml");
    let text = std::fs::read_to_string(&scenario).unwrap();
    std::fs::write(&scenario, text.replace("seeds", "# edited\nseeds")).unwrap();
    let edited = ksim(&["replay", run_dir.to_str().unwrap()]);
    assert_eq!(edited.status.code(), Some(2));
    assert!(
        stderr(&edited).contains("the scenario was edited"),
        "{}",
        stderr(&edited)
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_an_interrupted_verdict_with_the_history_so_far() {
    let dir = scratch("interrupt");
    let run_dir = dir.join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(["run", "sim-scenarios/nemesis.toml", "--seed", "11", "--out"])
        .arg(&run_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run is under way (its log has something in it).
    let log = run_dir.join("ksim.log");
    for _ in 0..600 {
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > 10_000) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("interrupted: seed 11"),
        "{}",
        stderr(&output)
    );
    let verdict = read_json(&run_dir.join("verdict.json"));
    assert_eq!(verdict["verdict"], "interrupted");
    assert_eq!(verdict["seed"], 11);
    assert!(verdict["scenario_hash"].is_string());
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    assert!(history.lines().count() > 0, "the history so far is kept");
    // A replay of an interrupted run says why it cannot compare.
    let replay = ksim(&["replay", run_dir.to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(2));
    assert!(
        stderr(&replay).contains("interrupted"),
        "{}",
        stderr(&replay)
    );
}

#[test]
fn devices_and_fifos_are_refused_before_reading() {
    let device = ksim(&["run", "/dev/zero", "--seed", "1"]);
    assert_eq!(device.status.code(), Some(2));
    assert!(
        stderr(&device).contains(
            "cannot read the scenario file: it is a character device, not a regular file"
        ),
        "{}",
        stderr(&device)
    );

    let dir = scratch("fifo");
    let fifo = dir.join("pipe.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Nothing writes to the FIFO: a loader that opened it would block here forever.
    let out = ksim(&["run", fifo.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("FIFO (named pipe)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_scenario_beyond_the_limits_is_refused_before_a_run_directory_is_made() {
    let dir = scratch("limits");
    let out_dir = dir.join("run");
    let out = ksim(&[
        "run",
        "tests/data/bad-scenarios/partitions-u32-max.toml",
        "--seed",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("partitions-u32-max.toml:12:14: `partitions` must be at most 100"),
        "{err}"
    );
    assert!(!out_dir.join("verdict.json").exists());

    let list = ksim(&["list", "tests/data/bad-scenarios"]);
    assert_eq!(list.status.code(), Some(0));
    let text = stdout(&list);
    assert!(
        text.lines()
            .any(|line| line.contains("partitions-u32-max.toml") && line.contains("(invalid: ")),
        "{text}"
    );
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn dump(path: &Path, records: bool) -> Output {
    let mut args = vec!["dump-log", path.to_str().unwrap()];
    if records {
        args.push("--records");
    }
    ksim(&args)
}

/// The `name: value` field of a dump line.
fn dump_field<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line.find(&format!("{name}: ")).unwrap();
    line[at + name.len() + 2..].split(' ').next().unwrap()
}

#[test]
fn dump_log_decodes_a_run_s_segments_index_checkpoint_and_ensemble_files() {
    let dir = scratch("dump-log");
    let run_dir = dir.join("run");
    let run_out = run("sim-scenarios/leader-failover.toml", 1, &run_dir);
    assert_eq!(run_out.status.code(), Some(0), "{}", stdout(&run_out));
    let partition = run_dir.join("broker-1/kafka-logs/orders-0");
    let segments = files_ending(&partition, ".log");
    assert!(segments.len() >= 2, "a rolled segment: {segments:?}");

    // A rolled segment, with its records: every batch valid, offsets dense from its name.
    let out = dump(&segments[0], true);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(
        text.lines().next().unwrap(),
        format!("Dumping {}", segments[0].display())
    );
    assert!(
        last_line(&text).ends_with("; no problems"),
        "{}",
        last_line(&text)
    );
    let batches: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("baseOffset:"))
        .collect();
    let records = text.lines().filter(|l| l.starts_with("| offset:")).count();
    assert!(!batches.is_empty());
    let mut next = 0u64;
    let mut counted = 0;
    for line in &batches {
        assert_eq!(dump_field(line, "baseOffset"), next.to_string(), "{line}");
        assert_eq!(dump_field(line, "isValid"), "true");
        let count: u64 = dump_field(line, "count").parse().unwrap();
        next += count;
        counted += count;
    }
    assert_eq!(records as u64, counted);
    let next_segment = segments[1].file_stem().unwrap().to_str().unwrap();
    assert_eq!(
        next,
        next_segment.parse::<u64>().unwrap(),
        "dense up to the next segment"
    );

    // Its index: each entry is the last offset of the batch at its position.
    let index = segments[0].with_extension("index");
    let out = dump(&index, false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let entries: Vec<&str> = text.lines().filter(|l| l.starts_with("offset:")).collect();
    assert!(!entries.is_empty(), "{text}");
    for entry in entries {
        let position = dump_field(entry, "position");
        let batch = batches
            .iter()
            .find(|b| dump_field(b, "position") == position)
            .unwrap_or_else(|| panic!("no batch at {entry}"));
        assert_eq!(dump_field(entry, "offset"), dump_field(batch, "lastOffset"));
    }

    // The epoch checkpoint.
    let out = dump(&partition.join("leader-epoch-checkpoint"), false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.contains("\nepoch: 1 startOffset: 0\n"), "{text}");

    // The ensemble's transaction log: every record a transaction.
    let zk_log = run_dir.join("zk-1/version-2/log/00000000000000000000.log");
    let out = dump(&zk_log, true);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(text.contains("| offset: 0 zxid: 0x"), "{text}");
    assert!(last_line(&text).ends_with("; no problems"), "{text}");

    // A copy with a flipped byte: reported where it is, exit 0; the run's files untouched.
    let original = std::fs::read(&segments[0]).unwrap();
    let mut bad = original.clone();
    let flip = bad.len() - 5;
    bad[flip] ^= 0x01;
    let copy = dir.join(segments[0].file_name().unwrap());
    std::fs::write(&copy, &bad).unwrap();
    let out = dump(&copy, false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0));
    let last_batch = text
        .lines()
        .rfind(|l| l.starts_with("baseOffset:"))
        .unwrap();
    let position = dump_field(last_batch, "position");
    assert!(
        text.contains(&format!(
            "batch at position {position}: CRC mismatch (stored 0x"
        )),
        "{text}"
    );
    assert!(last_line(&text).ends_with("; 1 problem"), "{text}");
    assert_eq!(std::fs::read(&segments[0]).unwrap(), original);

    // Unknown and unreadable files: exit 2, said on stderr.
    let out = dump(&run_dir.join("scenario.toml"), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a file dump-log knows"),
        "{}",
        stderr(&out)
    );
    let out = dump(&dir.join("00000000000000000999.log"), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

#[test]
fn dump_log_shows_an_ensemble_snapshot() {
    let dir = scratch("dump-snapshot");
    let run_out = run("sim-scenarios/zk-leader-crash.toml", 1, &dir);
    assert_eq!(run_out.status.code(), Some(0), "{}", stdout(&run_out));
    let snapshot = files_ending(&dir.join("zk-1/version-2"), "")
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("snapshot.")
        })
        .expect("snapCount 200 makes snapshots");
    let out = dump(&snapshot, true);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let zxid = snapshot.extension().unwrap().to_str().unwrap();
    let zxid = u64::from_str_radix(zxid, 16).unwrap();
    assert!(
        text.contains(&format!("\nzxid: {zxid:#x} znodes: ")),
        "{text}"
    );
    assert!(text.contains("\nznode: / czxid: 0x0 "), "{text}");
    assert!(last_line(&text).ends_with("; no problems"), "{text}");
}
