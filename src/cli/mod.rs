//! The `ksim` command line (contract.md): `run`, `sweep`, `swarm`, `replay`, `list`,
//! `check-determinism`.
//!
//! Owns: argument parsing (clap; usage errors exit 2), running one seed end to end
//! ([`run_one`]: simulate, check, report), fanning seeds out over OS threads for sweeps, and
//! every line a user reads on the terminal. The wall clock is read here and only here.

mod sweep;

pub use sweep::run_swarm_seed;

use crate::check::{run_checks, CheckInput};
use crate::report::{self, RunResult, Verdict};
use crate::scenario::{self, Scenario, SeedRange};
use crate::sim;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Exit code: invalid input or usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: nondeterminism detected.
pub const EXIT_NONDETERMINISM: u8 = 5;

/// Where run directories go by default.
pub const RUNS_DIR: &str = "reports/runs";

#[derive(Parser)]
#[command(
    name = "ksim",
    version,
    about = "Deterministic simulation testbed of a Kafka-like event streaming platform",
    long_about = "Runs failure scenarios of a simulated Kafka-like cluster on a seeded \
                  deterministic runtime; the same seed replays the same run exactly.\n\n\
                  Exit codes: 0 pass, 1 safety violation, 2 usage error or invalid scenario, \
                  3 liveness violation, 4 crash, 5 nondeterminism."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed of a scenario; the last line is the verdict.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The seed (decimal or 0x-hex); a random one is picked and printed if omitted.
        #[arg(long, value_parser = parse_seed_arg)]
        seed: Option<u64>,
        /// The run directory [default: reports/runs/<scenario>-<seed>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the verdict as one JSON line instead of the human summary.
        #[arg(long)]
        json: bool,
    },
    /// Run many seeds in parallel; report each failing seed with its replay command.
    Sweep {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Seeds to run, inclusive, e.g. 1..200 [default: the scenario's `seeds`].
        #[arg(long, value_parser = parse_seeds_arg)]
        seeds: Option<SeedRange>,
        /// Seeds run at once [default: the number of cores].
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard I of N (1-based): seeds whose position in the range is I-1 mod N.
        #[arg(long, value_parser = parse_shard_arg)]
        shard: Option<(u64, u64)>,
        /// Print one JSON verdict line per seed (shards concatenate).
        #[arg(long)]
        json: bool,
        /// Where the run directories go [default: reports/runs].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Each seed draws a whole scenario from the safe configuration space and runs it.
    Swarm {
        /// Seeds to draw and run, inclusive [default: 1..100].
        #[arg(long, value_parser = parse_seeds_arg)]
        seeds: Option<SeedRange>,
        /// Seeds run at once [default: the number of cores].
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard I of N (1-based): seeds whose position in the range is I-1 mod N.
        #[arg(long, value_parser = parse_shard_arg)]
        shard: Option<(u64, u64)>,
        /// Print one JSON verdict line per seed (shards concatenate).
        #[arg(long)]
        json: bool,
        /// Where the run directories go (`swarm-<seed>`) [default: reports/runs].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-run the scenario and seed saved in a run directory; check the trace hash matches.
    Replay {
        /// A run directory (holding scenario.toml and verdict.json).
        run_dir: PathBuf,
    },
    /// List scenarios with their one-line `about`.
    List {
        /// Directory to search [default: sim-scenarios].
        dir: Option<PathBuf>,
    },
    /// Run each seed twice in separate runtimes and compare trace hashes.
    CheckDeterminism {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Seeds to check, inclusive [default: the scenario's `seeds`].
        #[arg(long, value_parser = parse_seeds_arg)]
        seeds: Option<SeedRange>,
        /// Seeds run at once [default: the number of cores].
        #[arg(long)]
        jobs: Option<usize>,
    },
}

fn parse_seed_arg(text: &str) -> Result<u64, String> {
    scenario::parse_seed(text)
}

fn parse_seeds_arg(text: &str) -> Result<SeedRange, String> {
    SeedRange::parse(text)
}

fn parse_shard_arg(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("expected a shard like 1/4 (1-based index / count), found {text:?}");
    let (index, count) = text.split_once('/').ok_or_else(bad)?;
    let index: u64 = index.trim().parse().map_err(|_| bad())?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    if count == 0 || index == 0 || index > count {
        return Err(bad());
    }
    Ok((index, count))
}

/// Entry point of the `ksim` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run {
            scenario,
            seed,
            out,
            json,
        } => cmd_run(&scenario, seed, out, json),
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            shard,
            json,
            out,
        } => with_scenario(&scenario, |s| {
            sweep::cmd_sweep(
                s,
                sweep::SweepOptions {
                    seeds: seeds.unwrap_or(s.seeds),
                    jobs: jobs.unwrap_or_else(default_jobs).max(1),
                    shard,
                    json,
                    out: out.unwrap_or_else(|| PathBuf::from(RUNS_DIR)),
                },
            )
        }),
        Command::Swarm {
            seeds,
            jobs,
            shard,
            json,
            out,
        } => sweep::cmd_swarm(sweep::SweepOptions {
            seeds: seeds.unwrap_or(SeedRange {
                first: 1,
                last: 100,
            }),
            jobs: jobs.unwrap_or_else(default_jobs).max(1),
            shard,
            json,
            out: out.unwrap_or_else(|| PathBuf::from(RUNS_DIR)),
        }),
        Command::Replay { run_dir } => cmd_replay(&run_dir),
        Command::List { dir } => cmd_list(&dir.unwrap_or_else(|| PathBuf::from("sim-scenarios"))),
        Command::CheckDeterminism {
            scenario,
            seeds,
            jobs,
        } => with_scenario(&scenario, |s| {
            sweep::cmd_check_determinism(
                s,
                seeds.unwrap_or(s.seeds),
                jobs.unwrap_or_else(default_jobs).max(1),
            )
        }),
    };
    ExitCode::from(code)
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn with_scenario(path: &Path, f: impl FnOnce(&Scenario) -> u8) -> u8 {
    match scenario::load(path) {
        Ok(s) => {
            print_warnings(&s);
            f(&s)
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_USAGE
        }
    }
}

/// A scenario's load-time warnings, on stderr (they never change the exit code).
fn print_warnings(scenario: &Scenario) {
    for warning in scenario.warnings() {
        eprintln!("warning: {warning}");
    }
}

/// The default run directory of a seed.
pub fn default_run_dir(base: &Path, scenario: &Scenario, seed: u64) -> PathBuf {
    base.join(format!("{}-{}", scenario.name, seed))
}

/// Runs one seed end to end: simulate, check, write the run directory's files.
pub fn run_one(scenario: &Scenario, seed: u64, run_dir: &Path) -> std::io::Result<RunResult> {
    let started = Instant::now();
    let output = sim::simulate(scenario, seed, run_dir)?;
    let checks = if output.crash.is_some() {
        Vec::new()
    } else {
        run_checks(&CheckInput {
            scenario,
            events: &output.events,
            history: &output.history,
            run_dir,
        })
    };
    let result = RunResult {
        scenario: scenario.name.clone(),
        scenario_path: scenario.path.clone(),
        seed,
        verdict: Verdict::of(&checks, output.crash.as_ref()),
        checks,
        crash: output.crash,
        trace_hash: output.trace_hash,
        sim_ms: output.sim_us / 1000,
        wall_ms: started.elapsed().as_millis() as u64,
        stats: report::stats(&output.events, &output.history),
        run_dir: run_dir.to_path_buf(),
    };
    report::write_run_files(&result, &scenario.about, &output.events, &output.history)?;
    Ok(result)
}

fn cmd_run(path: &Path, seed: Option<u64>, out: Option<PathBuf>, json: bool) -> u8 {
    // The seed comes first, before anything can fail: a lost seed is a lost bug.
    let seed = seed.unwrap_or_else(rand::random);
    if !json {
        println!("seed: {seed}");
    }
    let scenario = match scenario::load(path) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    print_warnings(&scenario);
    let run_dir = out.unwrap_or_else(|| default_run_dir(Path::new(RUNS_DIR), &scenario, seed));
    if !json {
        println!("scenario: {} ({})", scenario.name, path.display());
        if !scenario.about.is_empty() {
            println!("about: {}", scenario.about);
        }
        println!("run dir: {}", run_dir.display());
    }
    let result = match run_one(&scenario, seed, &run_dir) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("error: seed {seed}: {error}");
            return report::Verdict::Crash.exit_code();
        }
    };
    if json {
        println!("{}", result.verdict_json());
    } else {
        print_summary(&result);
    }
    result.verdict.exit_code()
}

/// The human summary of one run, ending with the verdict line.
pub fn print_summary(result: &RunResult) {
    let stat = |key: &str| result.stats.get(key).copied().unwrap_or(0);
    println!(
        "faults: {} · power losses: {} (unsynced bytes lost: {})",
        stat("faults"),
        stat("power_losses"),
        stat("unsynced_bytes_lost"),
    );
    if stat("appends_invoked") > 0 {
        println!(
            "writers: {} appends acknowledged of {} invoked · {} reads · {} log recoveries ({} truncated a torn tail)",
            stat("appends_acked"),
            stat("appends_invoked"),
            stat("reads"),
            stat("log_recoveries"),
            stat("recoveries_truncated"),
        );
    }
    if stat("zk_leaders_elected") > 0 {
        println!(
            "ensemble: leaders elected: {} · syncs: {} diff, {} trunc, {} snap",
            stat("zk_leaders_elected"),
            stat("zk_syncs_diff"),
            stat("zk_syncs_trunc"),
            stat("zk_syncs_snap"),
        );
    }
    if stat("zk_calls") > 0 {
        println!(
            "zk clients: {} calls ({} ok, {} errors, {} unknown outcome) · sessions: {} opened, {} closed, {} expired",
            stat("zk_calls"),
            stat("zk_ok"),
            stat("zk_fail"),
            stat("zk_unknown"),
            stat("zk_sessions_open"),
            stat("zk_sessions_closed"),
            stat("zk_sessions_expired"),
        );
    }
    if stat("controllers_elected") > 0 {
        println!(
            "brokers: controllers elected: {} · partition leaders elected: {} · ISR changes: {} · truncations: {}",
            stat("controllers_elected"),
            stat("partition_leaders"),
            stat("isr_changes"),
            stat("truncations"),
        );
    }
    if stat("sends") > 0 || stat("polls") > 0 {
        println!(
            "producers: {} sends ({} acknowledged, {} failed, {} unacknowledged acks=0) · consumers: {} records in {} polls",
            stat("sends"),
            stat("sends_acked"),
            stat("sends_failed"),
            stat("sends_unacked"),
            stat("records_polled"),
            stat("polls"),
        );
    }
    if let Some(crash) = &result.crash {
        println!("crash: {} panicked: {}", crash.node, crash.message);
    }
    for check in &result.checks {
        let outcome = if check.passed() { "pass" } else { "FAIL" };
        println!("check {:<27} {outcome}", check.check);
        for violation in check.violations.iter().take(5) {
            println!("  - {}", violation.detail);
        }
        if check.violations.len() > 5 {
            println!("  - ... {} more in report.md", check.violations.len() - 5);
        }
    }
    println!("report: {}", result.run_dir.join("report.md").display());
    if result.verdict != Verdict::Pass {
        println!("replay: {}", result.replay_command());
    }
    println!("{}", result.verdict_line());
}

fn cmd_replay(run_dir: &Path) -> u8 {
    let verdict_path = run_dir.join("verdict.json");
    let recorded: serde_json::Value = match std::fs::read_to_string(&verdict_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(value) => value,
        Err(error) => {
            eprintln!("error: {}: {error}", verdict_path.display());
            return EXIT_USAGE;
        }
    };
    let (Some(seed), Some(trace)) = (recorded["seed"].as_u64(), recorded["trace_hash"].as_str())
    else {
        eprintln!("error: {}: no seed or trace_hash", verdict_path.display());
        return EXIT_USAGE;
    };
    let scenario = match scenario::load(&run_dir.join("scenario.toml")) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    println!("seed: {seed}");
    let mut replay_dir = run_dir.as_os_str().to_owned();
    replay_dir.push("-replay");
    let result = match run_one(&scenario, seed, Path::new(&replay_dir)) {
        Ok(result) => result,
        Err(error) => {
            eprintln!("error: seed {seed}: {error}");
            return Verdict::Crash.exit_code();
        }
    };
    print_summary(&result);
    if result.trace() != trace {
        println!(
            "nondeterminism: recorded trace {trace}, replay gave {} ({})",
            result.trace(),
            Path::new(&replay_dir).display()
        );
        return EXIT_NONDETERMINISM;
    }
    println!("replay matches the recorded trace {trace}");
    result.verdict.exit_code()
}

fn cmd_list(dir: &Path) -> u8 {
    let mut files = Vec::new();
    collect_toml(dir, &mut files);
    files.sort();
    if files.is_empty() {
        println!("no scenarios under {}", dir.display());
    }
    for file in files {
        match scenario::load(&file) {
            Ok(s) => println!("{:<44} {}", file.display(), s.about),
            Err(error) => println!(
                "{:<44} (invalid: {})",
                file.display(),
                error.to_string().lines().next().unwrap_or_default()
            ),
        }
    }
    0
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_toml(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}
