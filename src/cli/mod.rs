//! The `ksim` command line (contract.md): `run`, `sweep`, `swarm`, `replay`, `list`,
//! `check-determinism`, `dump-log`, `shrink`, `bench` (and its hidden helper `bench-floor`).
//!
//! Owns: argument parsing (clap; usage errors exit 2), running one seed end to end
//! ([`run_one`]: simulate, check, report), fanning seeds out over OS threads for sweeps, and
//! every line a user reads on the terminal. The wall clock is read here and only here.
//! Output goes through [`say`]/[`say_err`]: a closed pipe (`ksim list | head`) silences
//! ksim instead of killing it, and the exit code stays the verdict's.

mod bench;
mod coverage;
pub mod dump_log;
mod floor;
mod live;
pub mod shrink;
mod sweep;

pub use live::EXIT_INTERRUPTED;
pub use sweep::run_swarm_seed;

use crate::check::{run_checks, CheckInput, NodeData};
use crate::disk::{Backing, DiskImage};
use crate::report::run_dir::{self, RunDirError};
use crate::report::{self, RunResult, Verdict};
use crate::scenario::{self, Scenario, SeedRange};
use crate::sim;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Prints a line on stdout; a closed or failing stdout is ignored (ksim keeps running and
/// exits with its verdict).
pub fn say(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// Prints a line on stderr; a closed stderr is ignored.
pub fn say_err(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::say(format_args!($($arg)*)) };
}

/// `eprintln!` that survives a closed pipe.
macro_rules! err {
    ($($arg:tt)*) => { $crate::cli::say_err(format_args!($($arg)*)) };
}

pub(crate) use {err, out};

/// Why a seed could not run at all (as opposed to a run with a failing verdict).
#[derive(Debug)]
pub enum RunError {
    /// The run directory cannot be used: someone else's, or not writable (exit 2).
    RunDir(RunDirError),
    /// Writing the run's files failed midway (exit 4).
    Io(std::io::Error),
}

impl RunError {
    /// The exit code this failure gives.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::RunDir(_) => EXIT_USAGE,
            RunError::Io(_) => Verdict::Crash.exit_code(),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::RunDir(error) => error.fmt(f),
            RunError::Io(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

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
        /// Seeds run at once, at least 1 [default: the number of cores].
        #[arg(long, value_parser = parse_jobs_arg)]
        jobs: Option<usize>,
        /// Run only shard I of N (1-based): seeds whose position in the range is I-1 mod N.
        #[arg(long, value_parser = parse_shard_arg)]
        shard: Option<(u64, u64)>,
        /// Print one JSON line per seed as it finishes: its verdict, run directory and
        /// replay command (shards concatenate).
        #[arg(long)]
        json: bool,
        /// Start no new seed once one has failed (seeds already running finish).
        #[arg(long)]
        fail_fast: bool,
        /// Where the run directories go [default: reports/runs].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Each seed draws a whole scenario from the safe configuration space and runs it.
    Swarm {
        /// Seeds to draw and run, inclusive [default: 1..100].
        #[arg(long, value_parser = parse_seeds_arg)]
        seeds: Option<SeedRange>,
        /// Seeds run at once, at least 1 [default: the number of cores].
        #[arg(long, value_parser = parse_jobs_arg)]
        jobs: Option<usize>,
        /// Run only shard I of N (1-based): seeds whose position in the range is I-1 mod N.
        #[arg(long, value_parser = parse_shard_arg)]
        shard: Option<(u64, u64)>,
        /// Print one JSON line per seed as it finishes: its verdict, run directory and
        /// replay command (shards concatenate).
        #[arg(long)]
        json: bool,
        /// Start no new seed once one has failed (seeds already running finish).
        #[arg(long)]
        fail_fast: bool,
        /// Where the run directories go (`swarm-<seed>`) [default: reports/runs].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Minimize a failing seed's faults into a scenario file with explicit [[fault]]s (no
    /// nemesis) that still fails the same check. Exit 0 when a smaller failing file was
    /// written; 2 when the seed passes (nothing to shrink); else the seed's own verdict code.
    Shrink {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// The failing seed (decimal or 0x-hex).
        #[arg(long, value_parser = parse_seed_arg)]
        seed: u64,
        /// The scenario file to write [default: reports/shrunk/<scenario>-<seed>.toml].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The check that must keep failing [default: the first failing check in the
        /// contract's order].
        #[arg(long)]
        check: Option<String>,
        /// Simulated runs at most, the replay of the seed included.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        max_runs: u64,
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
        /// Seeds run at once, at least 1 [default: the number of cores].
        #[arg(long, value_parser = parse_jobs_arg)]
        jobs: Option<usize>,
        /// Where the two copies of each seed run (deleted after) [default:
        /// reports/runs/determinism].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run every scenario under a directory on the same seeds and report which coverage
    /// marks (states worth reaching) each one hit, and which none did → reports/coverage.md.
    Coverage {
        /// Directory to search [default: sim-scenarios].
        dir: Option<PathBuf>,
        /// Seeds run for every scenario, inclusive.
        #[arg(long, value_parser = parse_seeds_arg, default_value = "1..20")]
        seeds: SeedRange,
        /// Runs at once, at least 1 [default: the number of cores].
        #[arg(long, value_parser = parse_jobs_arg)]
        jobs: Option<usize>,
        /// The report file.
        #[arg(long, default_value = "reports/coverage.md")]
        out: PathBuf,
        /// Where the scratch run directories go (each removed after its run) [default:
        /// reports/runs/coverage].
        #[arg(long)]
        work: Option<PathBuf>,
    },
    /// Decode a segment (.log), offset index (.index), leader-epoch or offset checkpoint,
    /// or an ensemble's transaction log or snapshot, like kafka-dump-log.sh. Corruption is
    /// reported in the output (exit 0); exit 2 if the file cannot be read or is of no
    /// known kind.
    DumpLog {
        /// The file.
        path: PathBuf,
        /// Print every record (znode data for a snapshot) too.
        #[arg(long)]
        records: bool,
    },
    /// The simulation benchmark: speed, CPU, memory and bytes per seed of the reference,
    /// leader-failover and nemesis, against madsim's floor → reports/sim-bench.md.
    Bench {
        /// The report file.
        #[arg(long, default_value = "reports/sim-bench.md")]
        out: PathBuf,
        /// A scenario to measure (repeatable); the first one's counts drive madsim's floor
        /// [default: the reference, leader-failover, nemesis].
        #[arg(long = "scenario")]
        scenarios: Vec<PathBuf>,
        /// Seeds run one at a time per scenario (per-seed figures).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// Seeds in each sweep (`--jobs 1`, then `--jobs 2`).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        sweep_seeds: u64,
        /// Runs of madsim's floor (the median is reported).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        floor_runs: u64,
        /// The scenario swept short (`--sweep-seeds`) and long (`--long-sweep-seeds`), both
        /// `--jobs 2`, to compare their peak RSS.
        #[arg(long, default_value = "sim-scenarios/leader-failover.toml")]
        long_sweep_scenario: PathBuf,
        /// Seeds of the long sweep (0: skip the sweep-length measurement).
        #[arg(long, default_value_t = 1000)]
        long_sweep_seeds: u64,
        /// Scratch directory for the children's run directories (removed after).
        #[arg(long, default_value = "reports/bench-tmp")]
        work: PathBuf,
    },
    /// madsim's floor for `ksim bench`: replays a load (JSON) on bare madsim; prints what
    /// it did as JSON.
    #[command(hide = true)]
    BenchFloor {
        /// The load, as JSON (`FloorLoad`).
        load: String,
        /// Where the nodes' disks go.
        #[arg(long)]
        dir: PathBuf,
        /// The runtime's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn parse_seed_arg(text: &str) -> Result<u64, String> {
    scenario::parse_seed(text)
}

fn parse_seeds_arg(text: &str) -> Result<SeedRange, String> {
    SeedRange::parse(text)
}

fn parse_jobs_arg(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(jobs) if jobs >= 1 => Ok(jobs),
        _ => Err(format!(
            "expected a number of seeds to run at once, at least 1, found {text:?}"
        )),
    }
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
    live::install_interrupt_handler();
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
            fail_fast,
            out,
        } => with_scenario(&scenario, |s| {
            sweep::cmd_sweep(
                s,
                sweep::SweepOptions {
                    seeds: seeds.unwrap_or(s.seeds),
                    jobs: jobs.unwrap_or_else(default_jobs),
                    shard,
                    json,
                    fail_fast,
                    out: out.unwrap_or_else(|| PathBuf::from(RUNS_DIR)),
                },
            )
        }),
        Command::Swarm {
            seeds,
            jobs,
            shard,
            json,
            fail_fast,
            out,
        } => sweep::cmd_swarm(sweep::SweepOptions {
            seeds: seeds.unwrap_or(SeedRange {
                first: 1,
                last: 100,
            }),
            jobs: jobs.unwrap_or_else(default_jobs),
            shard,
            json,
            fail_fast,
            out: out.unwrap_or_else(|| PathBuf::from(RUNS_DIR)),
        }),
        Command::Shrink {
            scenario,
            seed,
            out,
            check,
            max_runs,
        } => shrink::cmd_shrink(
            &scenario,
            &shrink::ShrinkOptions {
                seed,
                out,
                check,
                max_runs,
            },
        ),
        Command::Replay { run_dir } => cmd_replay(&run_dir),
        Command::List { dir } => cmd_list(&dir.unwrap_or_else(|| PathBuf::from("sim-scenarios"))),
        Command::CheckDeterminism {
            scenario,
            seeds,
            jobs,
            out,
        } => with_scenario(&scenario, |s| {
            sweep::cmd_check_determinism(
                s,
                seeds.unwrap_or(s.seeds),
                jobs.unwrap_or_else(default_jobs),
                &out.unwrap_or_else(|| Path::new(RUNS_DIR).join("determinism")),
            )
        }),
        Command::Bench {
            out,
            scenarios,
            seeds,
            sweep_seeds,
            floor_runs,
            long_sweep_scenario,
            long_sweep_seeds,
            work,
        } => bench::cmd_bench(&bench::BenchOptions {
            out,
            scenarios: if scenarios.is_empty() {
                bench::DEFAULT_SCENARIOS.iter().map(PathBuf::from).collect()
            } else {
                scenarios
            },
            seeds,
            sweep_seeds,
            floor_runs,
            long_sweep_scenario,
            long_sweep_seeds,
            work,
        }),
        Command::BenchFloor { load, dir, seed } => cmd_bench_floor(&load, &dir, seed),
        Command::DumpLog { path, records } => dump_log::cmd_dump_log(&path, records),
        Command::Coverage {
            dir,
            seeds,
            jobs,
            out,
            work,
        } => coverage::cmd_coverage(coverage::CoverageOptions {
            dir: dir.unwrap_or_else(|| PathBuf::from("sim-scenarios")),
            seeds,
            jobs: jobs.unwrap_or_else(default_jobs),
            out,
            work: work.unwrap_or_else(|| Path::new(RUNS_DIR).join("coverage")),
        }),
    };
    ExitCode::from(code)
}

/// `ksim bench-floor`: one run of madsim's floor; what it did, as one JSON line.
fn cmd_bench_floor(load: &str, dir: &Path, seed: u64) -> u8 {
    let load: floor::FloorLoad = match serde_json::from_str(load) {
        Ok(load) => load,
        Err(error) => {
            err!("error: the floor's load: {error}");
            return EXIT_USAGE;
        }
    };
    let did = floor::run_floor(&load, dir, seed);
    let _ = std::fs::remove_dir_all(dir);
    match did.and_then(|did| serde_json::to_string(&did).map_err(std::io::Error::other)) {
        Ok(line) => {
            out!("{line}");
            0
        }
        Err(error) => {
            err!("error: the floor: {error}");
            Verdict::Crash.exit_code()
        }
    }
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1)
}

fn with_scenario(path: &Path, f: impl FnOnce(&Scenario) -> u8) -> u8 {
    match scenario::load(path) {
        Ok(s) => {
            print_warnings(&s);
            f(&s)
        }
        Err(error) => {
            err!("error: {error}");
            EXIT_USAGE
        }
    }
}

/// A scenario's load-time warnings, on stderr (they never change the exit code).
fn print_warnings(scenario: &Scenario) {
    for warning in scenario.warnings() {
        err!("warning: {warning}");
    }
}

/// The default run directory of a seed.
pub fn default_run_dir(base: &Path, scenario: &Scenario, seed: u64) -> PathBuf {
    base.join(format!("{}-{}", scenario.name, seed))
}

/// What a run leaves in its run directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Everything, pass or fail (`ksim run`, `replay`): `scenario.toml`, node data,
    /// `ksim.log`, `events.jsonl`, `history.jsonl`, `verdict.json`, `report.md`,
    /// `report.html`.
    Everything,
    /// A sweep's rule: a failing seed keeps everything; a passing one only `scenario.toml`,
    /// `verdict.json`, `report.md` and `report.html` (and the marker). What it would not keep is not
    /// written at all: its log is held in memory until the verdict, and its node data too
    /// (memory-backed disks, [`Keep::backing`]), written out only if the seed is kept.
    SweepRule,
}

impl Keep {
    /// Where the nodes' disks keep their bytes: real files when everything is kept (the run
    /// directory shows them as the run goes), memory for a sweep (a kept seed's files are
    /// written after its checks, as a restarted process would find them). The backing never
    /// changes a run's trace or verdict.
    pub fn backing(self) -> Backing {
        match self {
            Keep::Everything => Backing::Files,
            Keep::SweepRule => Backing::Memory,
        }
    }
}

/// Runs one seed end to end: prepare the run directory (refusing one ksim did not make),
/// simulate, check, write the run directory's files.
pub fn run_one(scenario: &Scenario, seed: u64, run_dir: &Path) -> Result<RunResult, RunError> {
    run_one_as(scenario, seed, run_dir, Keep::Everything, Backing::Files)
}

/// [`run_one`], keeping `keep`, with the nodes' disks of `backing` (usually
/// [`Keep::backing`]).
pub fn run_one_as(
    scenario: &Scenario,
    seed: u64,
    run_dir: &Path,
    keep: Keep,
    backing: Backing,
) -> Result<RunResult, RunError> {
    run_one_with(scenario, seed, run_dir, keep, backing, false)
}

/// [`run_one_as`], with the simulated clock on a terminal when `clock`.
fn run_one_with(
    scenario: &Scenario,
    seed: u64,
    run_dir: &Path,
    keep: Keep,
    backing: Backing,
    clock: bool,
) -> Result<RunResult, RunError> {
    run_dir::prepare(run_dir).map_err(RunError::RunDir)?;
    let started = Instant::now();
    let recorder = crate::node::recorder::Recorder::new();
    let log_path = run_dir.join("ksim.log");
    let log = match keep {
        Keep::Everything => sim::RunLog::create(&log_path).map_err(RunError::Io)?,
        Keep::SweepRule => sim::RunLog::deferred(&log_path),
    };
    let disks = sim::RunDisks::new(backing);
    let registration = live::Registration::new(
        scenario,
        seed,
        run_dir.to_path_buf(),
        &recorder,
        &log,
        &disks,
    );
    // The checks run on the run's own thread, in the memory the runtime freed; a
    // memory-backed run's node data is written out (if kept) and freed right after them.
    let (output, (checks, stats)) = {
        let _clock = clock.then(|| {
            live::Clock::start(&recorder, scenario.duration.saturating_add(scenario.heal))
        });
        sim::simulate(scenario, seed, run_dir, &disks, &recorder, &log, |output| {
            let images = std::mem::take(&mut output.disks);
            let nodes = match backing {
                Backing::Files => NodeData::Dir(run_dir),
                Backing::Memory => NodeData::Images(&images),
            };
            let (events, history) = (&output.record.events, &output.record.history);
            let checks = if output.crash.is_some() {
                Vec::new()
            } else {
                run_checks(&CheckInput {
                    scenario,
                    events,
                    history,
                    nodes,
                })
            };
            let kept = keep == Keep::Everything
                || Verdict::of(&checks, output.crash.as_ref()) != Verdict::Pass;
            let written = if kept {
                write_node_data(run_dir, &images)
            } else {
                Ok(())
            };
            drop(images);
            written.map(|()| (checks, report::stats(events, history)))
        })
        .and_then(|(output, done)| done.map(|done| (output, done)))
        .map_err(RunError::Io)?
    };
    let (events, history) = (&output.record.events, &output.record.history);
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
        stats,
        counters: output.counters,
        marks: output.marks,
        run_dir: run_dir.to_path_buf(),
        scenario_source: scenario.source.clone(),
    };
    let keep_all = keep == Keep::Everything || result.verdict != Verdict::Pass;
    registration
        .finish(|| {
            if keep_all {
                log.keep()?;
                report::write_run_files(&result, &scenario.about, events, history)
            } else {
                log.discard();
                report::write_summary_files(&result, &scenario.about, events, history)
            }
        })
        .map_err(RunError::Io)?;
    Ok(result)
}

/// Writes each node's image to `<run_dir>/<node>/`, as a file-backed run leaves its files.
fn write_node_data(run_dir: &Path, images: &BTreeMap<String, DiskImage>) -> io::Result<()> {
    for (node, image) in images {
        image.write_to(&run_dir.join(node))?;
    }
    Ok(())
}

fn cmd_run(path: &Path, seed: Option<u64>, out: Option<PathBuf>, json: bool) -> u8 {
    // The seed comes first, before anything can fail: a lost seed is a lost bug.
    let seed = seed.unwrap_or_else(rand::random);
    if !json {
        out!("seed: {seed}");
    }
    let scenario = match scenario::load(path) {
        Ok(s) => s,
        Err(error) => {
            err!("error: {error}");
            return EXIT_USAGE;
        }
    };
    print_warnings(&scenario);
    let run_dir = out.unwrap_or_else(|| default_run_dir(Path::new(RUNS_DIR), &scenario, seed));
    if !json {
        out!("scenario: {} ({})", scenario.name, path.display());
        if !scenario.about.is_empty() {
            out!("about: {}", scenario.about);
        }
        out!("run dir: {}", run_dir.display());
    }
    let result = match run_one_with(
        &scenario,
        seed,
        &run_dir,
        Keep::Everything,
        Backing::Files,
        !json,
    ) {
        Ok(result) => result,
        Err(error) => {
            err!("error: seed {seed}: {error}");
            return error.exit_code();
        }
    };
    if json {
        out!("{}", result.verdict_json());
    } else {
        print_summary(&result, scenario.expect.as_ref());
    }
    result.verdict.exit_code()
}

/// The human summary of one run, ending with the verdict line; for a bug-zoo scenario
/// (`expect`), whether its failure is the one the entry exists to show.
pub fn print_summary(result: &RunResult, expect: Option<&scenario::Expect>) {
    let stat = |key: &str| result.stats.get(key).copied().unwrap_or(0);
    out!(
        "faults: {} · power losses: {} (unsynced bytes lost: {})",
        stat("faults"),
        stat("power_losses"),
        stat("unsynced_bytes_lost"),
    );
    if stat("appends_invoked") > 0 {
        out!(
            "writers: {} appends acknowledged of {} invoked · {} reads · {} log recoveries ({} truncated a torn tail)",
            stat("appends_acked"),
            stat("appends_invoked"),
            stat("reads"),
            stat("log_recoveries"),
            stat("recoveries_truncated"),
        );
    }
    if stat("zk_leaders_elected") > 0 {
        out!(
            "ensemble: leaders elected: {} · syncs: {} diff, {} trunc, {} snap",
            stat("zk_leaders_elected"),
            stat("zk_syncs_diff"),
            stat("zk_syncs_trunc"),
            stat("zk_syncs_snap"),
        );
    }
    if stat("zk_calls") > 0 {
        out!(
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
        out!(
            "brokers: controllers elected: {} · partition leaders elected: {} · ISR changes: {} · truncations: {}",
            stat("controllers_elected"),
            stat("partition_leaders"),
            stat("isr_changes"),
            stat("truncations"),
        );
    }
    if stat("sends") > 0 || stat("polls") > 0 {
        out!(
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
        out!("crash: {} panicked: {}", crash.node, crash.message);
    }
    for check in &result.checks {
        let outcome = if check.passed() { "pass" } else { "FAIL" };
        out!("check {:<27} {outcome}", check.check);
        for violation in check.violations.iter().take(5) {
            out!("  - {}", violation.detail);
        }
        if check.violations.len() > 5 {
            out!("  - ... {} more in report.md", check.violations.len() - 5);
        }
    }
    out!("report: {}", result.run_dir.join("report.md").display());
    out!("report: {}", result.run_dir.join("report.html").display());
    if let Some(expect) = expect {
        out!("{}", expectation_note(result, expect));
    }
    if result.verdict != Verdict::Pass {
        out!("replay: {}", result.replay_command());
    }
    out!("{}", result.verdict_line());
}

/// What a bug-zoo run means: its expected check fired (the bug, reproduced), it did not on
/// this seed, or something else failed too.
fn expectation_note(result: &RunResult, expect: &scenario::Expect) -> String {
    let failed = result.failed_checks();
    let unexpected: Vec<&str> = failed
        .iter()
        .copied()
        .filter(|c| *c != expect.fails && !expect.tolerate.iter().any(|t| t == c))
        .collect();
    if result.crash.is_some() || !unexpected.is_empty() {
        let what = match &result.crash {
            Some(crash) => format!("{} panicked", crash.node),
            None => unexpected.join(", "),
        };
        format!(
            "zoo: UNEXPECTED failure ({what}); this entry expects only `{}` to fail",
            expect.fails
        )
    } else if failed.contains(&expect.fails.as_str()) {
        format!(
            "zoo: `{}` fired as expected: this scenario reproduces a historical bug behind a legacy switch",
            expect.fails
        )
    } else {
        format!(
            "zoo: `{}` did not fire on this seed (the entry expects it on some seeds of its range: `ksim sweep` it)",
            expect.fails
        )
    }
}

/// What `verdict.json` says about where a run came from.
struct Recorded {
    seed: u64,
    trace: String,
    git_commit: Option<String>,
    build_id: Option<String>,
    scenario_hash: Option<String>,
}

fn read_recorded(verdict_path: &Path) -> Result<Recorded, String> {
    let text = std::fs::read_to_string(verdict_path).map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let field = |key: &str| doc[key].as_str().map(str::to_string);
    match (doc["seed"].as_u64(), field("trace_hash")) {
        (Some(seed), Some(trace)) => Ok(Recorded {
            seed,
            trace,
            git_commit: field("git_commit"),
            build_id: field("build_id"),
            scenario_hash: field("scenario_hash"),
        }),
        _ if doc["verdict"] == "interrupted" => Err(format!(
            "the run was interrupted: it has a seed ({}) but no trace to compare; run it again \
             with `ksim run <scenario> --seed {}`",
            doc["seed"], doc["seed"]
        )),
        _ => Err("no seed or trace_hash".to_string()),
    }
}

/// `ksim replay`: the same scenario text and seed again; a different trace is
/// nondeterminism (exit 5) only if the same binary made both runs.
fn cmd_replay(run_dir: &Path) -> u8 {
    let verdict_path = run_dir.join("verdict.json");
    let recorded = match read_recorded(&verdict_path) {
        Ok(recorded) => recorded,
        Err(error) => {
            err!("error: {}: {error}", verdict_path.display());
            return EXIT_USAGE;
        }
    };
    let seed = recorded.seed;
    let scenario_path = run_dir.join("scenario.toml");
    let scenario = match scenario::load(&scenario_path) {
        Ok(s) => s,
        Err(error) => {
            err!("error: {error}");
            return EXIT_USAGE;
        }
    };
    if let Some(hash) = &recorded.scenario_hash {
        if *hash != report::scenario_hash(&scenario.source) {
            err!(
                "error: {}: the scenario was edited since the run (its hash was {hash}, now {}); \
                 to run the edited scenario: ksim run {} --seed {seed}",
                scenario_path.display(),
                report::scenario_hash(&scenario.source),
                scenario_path.display()
            );
            return EXIT_USAGE;
        }
    }
    let other_commit = recorded
        .git_commit
        .as_deref()
        .filter(|c| *c != report::git_commit());
    let other_binary = recorded
        .build_id
        .as_deref()
        .filter(|b| *b != report::build_id());
    if let Some(commit) = other_commit {
        err!(
            "note: the run was built from another commit ({commit}; this ksim: {}): its trace \
             may differ",
            report::git_commit()
        );
    }
    out!("seed: {seed}");
    let mut replay_dir = run_dir.as_os_str().to_owned();
    replay_dir.push("-replay");
    let result = match run_one(&scenario, seed, Path::new(&replay_dir)) {
        Ok(result) => result,
        Err(error) => {
            err!("error: seed {seed}: {error}");
            return error.exit_code();
        }
    };
    print_summary(&result, scenario.expect.as_ref());
    let trace = &recorded.trace;
    if result.trace() == *trace {
        out!("replay matches the recorded trace {trace}");
        return result.verdict.exit_code();
    }
    let differs = format!(
        "recorded trace {trace}, replay gave {} ({})",
        result.trace(),
        Path::new(&replay_dir).display()
    );
    if let Some(commit) = other_commit {
        out!(
            "built from another commit: {differs}; the run was made by {commit}, this ksim is \
             {}: replay it with a ksim built from {commit}",
            report::git_commit()
        );
        return EXIT_USAGE;
    }
    if recorded.git_commit.is_none() || recorded.build_id.is_none() {
        out!("unknown build: {differs}; the run directory does not say which ksim made it");
        return EXIT_USAGE;
    }
    if other_binary.is_some() {
        out!(
            "built by another binary of the same commit (uncommitted changes or another build \
             profile): {differs}"
        );
        return EXIT_USAGE;
    }
    out!("nondeterminism: {differs}");
    EXIT_NONDETERMINISM
}

fn cmd_list(dir: &Path) -> u8 {
    if !dir.is_dir() {
        err!(
            "error: {}: {}",
            dir.display(),
            if dir.exists() {
                "not a directory"
            } else {
                "no such directory"
            }
        );
        return EXIT_USAGE;
    }
    let mut files = Vec::new();
    collect_toml(dir, &mut files);
    files.sort();
    if files.is_empty() {
        out!("no scenarios under {}", dir.display());
    }
    // One column of paths as wide as the longest, however deep the tree.
    let width = files
        .iter()
        .map(|f| f.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    for file in files {
        let path = file.display().to_string();
        match scenario::load(&file) {
            Ok(s) => out!("{path:<width$}  {}", s.about),
            Err(error) => out!(
                "{path:<width$}  (invalid: {})",
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
        // `file_type` does not follow symlinks: a link loop cannot recurse forever.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_toml(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}
