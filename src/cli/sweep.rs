//! Many seeds: `ksim sweep`, `ksim swarm` and `ksim check-determinism`.
//!
//! Owns: fanning seeds out over OS threads (each seed still gets its own runtime on its own
//! fresh thread), the progress bar, sharding, the `[expect] fails` rule of zoo scenarios,
//! and the summaries. Passing seeds keep only `verdict.json`, `report.md`, `report.html` and
//! `scenario.toml` ([`Keep::SweepRule`]: their log, events, history and node data are never
//! written — the nodes' disks are in memory, and the checkers read their images; `ksim run
//! --seed N` regenerates them all).

use super::{default_run_dir, err, out, run_one_as, Keep, RunError, EXIT_NONDETERMINISM};
use crate::coverage::SeedCounts;
use crate::history::Crash;
use crate::report::run_dir::MARKER;
use crate::report::{RunResult, Verdict};
use crate::scenario::{swarm, Scenario, SeedRange};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// What `ksim sweep` was asked to do.
pub struct SweepOptions {
    /// The seed range.
    pub seeds: SeedRange,
    /// Seeds at once.
    pub jobs: usize,
    /// `(index, count)`, 1-based.
    pub shard: Option<(u64, u64)>,
    /// One JSON line per seed on stdout, as each seed finishes.
    pub json: bool,
    /// Start no new seed once one has failed (seeds already running finish).
    pub fail_fast: bool,
    /// Base directory of the run directories.
    pub out: PathBuf,
}

/// The seeds of `range` that belong to shard `index` of `count` (1-based).
pub fn shard_seeds(range: SeedRange, shard: Option<(u64, u64)>) -> Vec<u64> {
    range
        .iter()
        .enumerate()
        .filter(|(position, _)| match shard {
            Some((index, count)) => (*position as u64) % count == index - 1,
            None => true,
        })
        .map(|(_, seed)| seed)
        .collect()
}

/// Runs `work` on every seed with `jobs` worker threads, until `stop` is set (no seed starts
/// after that); results in seed order.
pub(super) fn parallel<T: Send>(
    seeds: &[u64],
    jobs: usize,
    bar: &ProgressBar,
    stop: &AtomicBool,
    work: impl Fn(u64) -> T + Sync,
) -> Vec<(u64, T)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(seeds.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(seeds.len()).max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(index) else {
                    break;
                };
                let result = work(seed);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((seed, result));
                bar.inc(1);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(seed, _)| *seed);
    results
}

pub(super) fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let template = format!("{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} (eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Deletes what a passing seed does not need: a log too big to have been held in memory (and
/// node data, had its disks been file-backed); the rest of what it does not keep was never
/// written.
fn prune_passing(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str());
        let keep = matches!(
            name,
            Some("verdict.json" | "report.md" | "report.html" | "scenario.toml")
        ) || name == Some(MARKER);
        if keep {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let _ = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// What a sweep keeps of a seed that ran: what its summary line and the zoo's expectation
/// read. The whole result (checks, counters, marks, scenario text: kilobytes) is in the
/// seed's `verdict.json`; keeping it for every seed would grow a long sweep's memory with
/// its length.
struct SeedSummary {
    seed: u64,
    verdict: Verdict,
    sim_ms: u64,
    /// The checks that failed (none when it passed).
    failed: Vec<&'static str>,
    /// Its panic, if it crashed.
    crash: Option<Crash>,
    /// Where its run directory is and how to replay it: only for a seed that did not pass.
    failing: Option<(PathBuf, String)>,
}

impl SeedSummary {
    fn of(run: &RunResult) -> Self {
        let passed = run.verdict == Verdict::Pass;
        SeedSummary {
            seed: run.seed,
            verdict: run.verdict,
            sim_ms: run.sim_ms,
            failed: run.failed_checks(),
            crash: run.crash.clone(),
            failing: (!passed).then(|| (run.run_dir.clone(), run.replay_command())),
        }
    }
}

/// What a batch of seeds gave: each seed's summary (or why it could not run), in seed
/// order, and the coverage of all of them.
struct Batch {
    results: Vec<(u64, Result<SeedSummary, RunError>)>,
    /// Seeds on which each coverage mark was hit, added up as seeds finish.
    coverage: SeedCounts,
    /// Seeds never started (`--fail-fast` stopped the batch).
    not_run: usize,
    wall_s: f64,
}

/// A seed's JSON line: its verdict document, where its run directory is and how to replay it.
pub fn json_line(run: &RunResult) -> serde_json::Value {
    let mut line = run.verdict_json();
    line["run_dir"] = run.run_dir.display().to_string().into();
    line["replay"] = run.replay_command().into();
    line
}

impl Batch {
    /// Runs `run` on every seed with a progress bar; a passing seed keeps only its summary
    /// files. With `json`, each seed's line is printed as soon as it finishes; with
    /// `fail_fast`, no seed starts after one failed (or could not run).
    fn run(
        seeds: &[u64],
        options: &SweepOptions,
        run: impl Fn(u64) -> Result<RunResult, RunError> + Sync,
    ) -> Batch {
        let started = Instant::now();
        let bar = progress_bar(seeds.len(), "seeds");
        let stop = AtomicBool::new(false);
        let coverage = Mutex::new(SeedCounts::default());
        let results = parallel(seeds, options.jobs, &bar, &stop, |seed| {
            let result = run(seed);
            match &result {
                Ok(r) => {
                    if r.verdict == Verdict::Pass {
                        prune_passing(&r.run_dir);
                    }
                    if options.json {
                        out!("{}", json_line(r));
                    }
                    if r.verdict != Verdict::Pass && options.fail_fast {
                        stop.store(true, Ordering::SeqCst);
                    }
                    coverage
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .add(&r.marks);
                }
                Err(_) if options.fail_fast => stop.store(true, Ordering::SeqCst),
                Err(_) => {}
            }
            result.map(|r| SeedSummary::of(&r))
        });
        bar.finish_and_clear();
        Batch {
            not_run: seeds.len() - results.len(),
            results,
            coverage: coverage.into_inner().unwrap_or_else(|p| p.into_inner()),
            wall_s: started.elapsed().as_secs_f64(),
        }
    }

    fn runs(&self) -> Vec<&SeedSummary> {
        self.results
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .collect()
    }

    /// Prints the summary table and every failing seed with its run directory and replay
    /// command (to stderr with `json`, so stdout stays JSON lines).
    /// Returns the exit code of the worst verdict (4 if a seed could not run).
    fn report(&self, label: &str, json: bool) -> u8 {
        let say = |line: String| {
            if json {
                err!("{line}")
            } else {
                out!("{line}")
            }
        };
        for (seed, result) in &self.results {
            if let Err(error) = result {
                say(format!("seed {seed}: could not run: {error}"));
            }
        }
        let runs = self.runs();
        let count = |v: Verdict| runs.iter().filter(|r| r.verdict == v).count();
        let sim_s = runs.iter().fold(0.0, |s, r| s + r.sim_ms as f64 / 1000.0);
        let wall = self.wall_s.max(1e-9);
        say(format!(
            "{label}: {} seeds in {:.1}s wall ({:.1} seeds/min, {:.0} simulated s per wall s)",
            runs.len(),
            self.wall_s,
            runs.len() as f64 / wall * 60.0,
            sim_s / wall
        ));
        for verdict in [
            Verdict::Pass,
            Verdict::Safety,
            Verdict::Liveness,
            Verdict::Crash,
        ] {
            say(format!("  {:<9} {}", verdict.name(), count(verdict)));
        }
        if !runs.is_empty() {
            for line in self.coverage.summary_lines() {
                say(line);
            }
        }
        if self.not_run > 0 {
            say(format!(
                "  not run   {} (--fail-fast: stopped after the first failing seed)",
                self.not_run
            ));
        }
        let failing: Vec<(&SeedSummary, &(PathBuf, String))> = runs
            .iter()
            .filter_map(|r| Some((*r, r.failing.as_ref()?)))
            .collect();
        if !failing.is_empty() {
            say("failing seeds:".to_string());
            for (run, (run_dir, replay)) in &failing {
                let what = match &run.crash {
                    Some(crash) => format!("{} panicked: {}", crash.node, crash.message),
                    None => run.failed.join(", "),
                };
                say(format!(
                    "  seed {:<6} {:<8} {what}",
                    run.seed,
                    run.verdict.name()
                ));
                say(format!("      run dir: {}", run_dir.display()));
                say(format!("      replay: {replay}"));
            }
        }
        let worst = runs
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Verdict::Pass);
        worst.exit_code().max(self.error_code())
    }

    /// The worst exit code of the seeds that could not run (0 if all ran).
    fn error_code(&self) -> u8 {
        self.results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .map(RunError::exit_code)
            .max()
            .unwrap_or(0)
    }
}

fn shard_text(options: &SweepOptions) -> String {
    options
        .shard
        .map(|(i, n)| format!(", shard {i}/{n}"))
        .unwrap_or_default()
}

/// `ksim swarm`: each seed draws a whole scenario from the safe configuration space
/// ([`crate::scenario::swarm`]), writes it as `scenario.toml` in its run directory
/// (`<out>/swarm-<seed>`, kept even when the seed passes) and runs it with that seed.
pub fn cmd_swarm(options: SweepOptions) -> u8 {
    let seeds = shard_seeds(options.seeds, options.shard);
    err!(
        "swarm: {} seeds ({}..{}{}), {} jobs",
        seeds.len(),
        options.seeds.first,
        options.seeds.last,
        shard_text(&options),
        options.jobs
    );
    let batch = Batch::run(&seeds, &options, |seed| run_swarm_seed(seed, &options.out));
    batch.report("swarm", options.json)
}

/// Draws swarm seed `seed`'s scenario and runs it in `<base>/swarm-<seed>`, keeping what a
/// sweep keeps ([`Keep::SweepRule`]).
pub fn run_swarm_seed(seed: u64, base: &Path) -> Result<RunResult, RunError> {
    let drawn = swarm::draw_seed(seed);
    let run_dir = base.join(format!("swarm-{seed}"));
    let mut scenario = drawn.scenario().map_err(|e| {
        RunError::Io(std::io::Error::other(format!(
            "the drawn scenario does not load: {e}"
        )))
    })?;
    scenario.path = run_dir.join("scenario.toml");
    run_one_as(
        &scenario,
        seed,
        &run_dir,
        Keep::SweepRule,
        Keep::SweepRule.backing(),
    )
}

/// `ksim sweep`.
pub fn cmd_sweep(scenario: &Scenario, options: SweepOptions) -> u8 {
    let seeds = shard_seeds(options.seeds, options.shard);
    err!(
        "sweep {}: {} seeds ({}..{}{}), {} jobs",
        scenario.name,
        seeds.len(),
        options.seeds.first,
        options.seeds.last,
        shard_text(&options),
        options.jobs
    );
    let batch = Batch::run(&seeds, &options, |seed| {
        let run_dir = default_run_dir(&options.out, scenario, seed);
        run_one_as(
            scenario,
            seed,
            &run_dir,
            Keep::SweepRule,
            Keep::SweepRule.backing(),
        )
    });
    let code = batch.report(&format!("sweep {}", scenario.name), options.json);
    let Some(expect) = &scenario.expect else {
        return code;
    };
    let io_code = batch.error_code();
    let runs = batch.runs();
    let say = |line: String| {
        if options.json {
            err!("{line}")
        } else {
            out!("{line}")
        }
    };

    // A zoo scenario: the expected check must fire on some seed, and nothing else may fail
    // (beyond the checks it tolerates alongside).
    let allowed: BTreeSet<&str> = std::iter::once(expect.fails.as_str())
        .chain(expect.tolerate.iter().map(String::as_str))
        .collect();
    let fired: Vec<u64> = runs
        .iter()
        .filter(|r| r.failed.contains(&expect.fails.as_str()))
        .map(|r| r.seed)
        .collect();
    let unexpected: Vec<&&SeedSummary> = runs
        .iter()
        .filter(|r| r.crash.is_some() || r.failed.iter().any(|c| !allowed.contains(c)))
        .collect();
    if !unexpected.is_empty() {
        say(format!(
            "expectation: other checks failed on {} seeds (see above); expected only {}",
            unexpected.len(),
            allowed.iter().copied().collect::<Vec<_>>().join(", ")
        ));
        return unexpected
            .iter()
            .map(|r| r.verdict)
            .max()
            .unwrap_or(Verdict::Safety)
            .exit_code()
            .max(io_code);
    }
    if fired.is_empty() {
        say(format!(
            "expectation NOT met: `{}` never fired on {} seeds",
            expect.fails,
            runs.len()
        ));
        return 1;
    }
    let shown: Vec<String> = fired.iter().take(10).map(u64::to_string).collect();
    say(format!(
        "expectation met: `{}` fired on {} of {} seeds (first: {})",
        expect.fails,
        fired.len(),
        runs.len(),
        shown.join(", ")
    ));
    io_code
}

/// `ksim check-determinism`: each seed twice, in separate runtimes, same trace hash. The
/// copies run under `base` and are deleted after (only what ksim made: run directories).
pub fn cmd_check_determinism(
    scenario: &Scenario,
    seeds: SeedRange,
    jobs: usize,
    base: &Path,
) -> u8 {
    let seeds: Vec<u64> = seeds.iter().collect();
    err!(
        "check-determinism {}: {} seeds, each run twice, {jobs} jobs",
        scenario.name,
        seeds.len()
    );
    let bar = progress_bar(seeds.len(), "seeds");
    let results = parallel(&seeds, jobs, &bar, &AtomicBool::new(false), |seed| {
        let mut traces = Vec::new();
        for copy in ["a", "b"] {
            let dir = base.join(format!("{}-{seed}-{copy}", scenario.name));
            let trace = run_one_as(
                scenario,
                seed,
                &dir,
                Keep::SweepRule,
                Keep::SweepRule.backing(),
            )
            .map(|r| (r.trace(), r.verdict));
            if crate::report::run_dir::is_run_dir(&dir) {
                let _ = std::fs::remove_dir_all(&dir);
            }
            traces.push(trace);
        }
        traces
    });
    bar.finish_and_clear();
    // Only if empty: the base may be the user's own directory.
    let _ = std::fs::remove_dir(base);

    let mut mismatches = 0;
    let mut error_code = 0;
    for (seed, traces) in &results {
        match (&traces[0], &traces[1]) {
            (Ok(a), Ok(b)) if a == b => {}
            (Ok(a), Ok(b)) => {
                mismatches += 1;
                out!("seed {seed}: first run {a:?}, second run {b:?}");
            }
            (Err(error), _) | (_, Err(error)) => {
                error_code = error_code.max(error.exit_code());
                out!("seed {seed}: could not run: {error}");
            }
        }
    }
    if mismatches > 0 {
        out!(
            "nondeterminism: {mismatches} of {} seeds gave different traces",
            results.len()
        );
        return EXIT_NONDETERMINISM;
    }
    if error_code > 0 {
        return error_code;
    }
    out!(
        "deterministic: {} seeds of {} each gave the same trace twice",
        results.len(),
        scenario.name
    );
    0
}
