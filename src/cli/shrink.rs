//! `ksim shrink <SCENARIO> --seed N [--out FILE]`: a failing seed, minimized into a scenario
//! file with explicit `[[fault]]`s (no nemesis) that still fails the same check.
//!
//! Owns: the search. It replays the seed and picks the check to keep failing (`--check`, or
//! the first failing one in the contract's order; a crash if a node panicked), exports every
//! fault the run applied as explicit faults ([`export`]) and checks that this explicit
//! scenario still fails — without the nemesis the seed's random stream differs, so it may
//! not; then it falls back to the scenario's own `[[fault]]`s as written, and says so. From
//! there, each step is kept only if a full simulated run of the candidate still fails the
//! check: drop faults (ddmin over fault episodes, then over single faults), round their times
//! and shorten their episodes, lower the workload ([`document::Knob`]s), shorten `duration`;
//! repeated while a pass gains something, within `--max-runs` runs.
//!
//! Determinism: candidates run one after another, each a seeded run on its own runtime
//! (memory-backed disks, nothing kept: a sweep's passing seed keeps more), and every choice
//! is a fixed order over the candidates' outcomes, so the same binary, scenario, seed and
//! options write the same file. Candidates run in a scratch run directory,
//! `reports/runs/<scenario>-<seed>-shrink`, removed at the end; the file goes to
//! `reports/shrunk/<scenario>-<seed>.toml`, or `--out`. A file at the default path that
//! `ksim shrink` did not write (no header) is never overwritten.

mod ddmin;
pub mod document;
pub mod export;

use super::{err, out, print_warnings, EXIT_USAGE, RUNS_DIR};
use crate::check::{run_checks, CheckInput, NodeData};
use crate::disk::Backing;
use crate::history::Event;
use crate::node::recorder::Recorder;
use crate::report::run_dir;
use crate::report::Verdict;
use crate::scenario::{self, CheckName, Scenario};
use crate::sim;
use ddmin::{ddmin, Outcome};
use document::{format_duration_ms, Template};
use export::ExplicitFault;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where shrunk scenarios go by default.
pub const SHRUNK_DIR: &str = "reports/shrunk";

/// The first line of every file `ksim shrink` writes: the mark that it may overwrite it.
pub const HEADER_MARK: &str = "# Shrunk by `ksim shrink`";

/// Passes over the steps at most (each gains something, or the search ends sooner).
const MAX_PASSES: usize = 6;

/// What `ksim shrink` was asked to do.
#[derive(Clone, Debug)]
pub struct ShrinkOptions {
    pub seed: u64,
    /// The file to write; `None`: `reports/shrunk/<scenario>-<seed>.toml`.
    pub out: Option<PathBuf>,
    /// The check to keep failing; `None`: the first failing one in the contract's order.
    pub check: Option<String>,
    /// Simulated runs at most, the replay of the seed included.
    pub max_runs: u64,
}

/// `ksim shrink`; the exit code.
pub fn cmd_shrink(path: &Path, options: &ShrinkOptions) -> u8 {
    match shrink(path, options) {
        Ok(code) => code,
        Err(Abort { code, message }) => {
            err!("error: {message}");
            code
        }
    }
}

/// Why the shrink stopped early, with its exit code.
struct Abort {
    code: u8,
    message: String,
}

fn usage(message: impl fmt::Display) -> Abort {
    Abort {
        code: EXIT_USAGE,
        message: message.to_string(),
    }
}

/// What a shrink keeps failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    /// This check fails.
    Check(&'static str),
    /// A node panics (a crash has no checks).
    Crash,
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::Check(name) => write!(f, "`{name}`"),
            Goal::Crash => f.write_str("a crash"),
        }
    }
}

/// What one simulated run gave.
struct RunOutcome {
    verdict: Verdict,
    failed: Vec<&'static str>,
    crashed: bool,
    /// The events, when asked for.
    events: Option<Vec<Event>>,
}

impl RunOutcome {
    /// What failed, in words.
    fn failures(&self) -> String {
        if self.crashed {
            "a node panicked".to_string()
        } else {
            self.failed.join(", ")
        }
    }

    fn meets(&self, goal: Goal) -> bool {
        match goal {
            Goal::Check(name) => self.failed.contains(&name),
            Goal::Crash => self.crashed,
        }
    }
}

/// One candidate: the explicit faults, the knobs' values and `duration`.
#[derive(Clone, Debug, PartialEq)]
struct Candidate {
    faults: Vec<ExplicitFault>,
    values: Vec<u64>,
    duration_ms: u64,
}

impl Candidate {
    /// The candidate with its faults in time order (stable: equal times keep their order).
    fn sorted(mut self) -> Candidate {
        self.faults.sort_by_key(|f| f.at_ms);
        self
    }

    /// Fewer faults, a lower workload, a shorter `duration` or shorter fault episodes.
    fn smaller_than(&self, other: &Candidate) -> bool {
        self.faults.len() < other.faults.len()
            || self.values.iter().zip(&other.values).any(|(a, b)| a < b)
            || self.duration_ms < other.duration_ms
            || self.exposure_ms() < other.exposure_ms()
    }

    /// How long faults are in force, summed over the episodes: from an episode's first
    /// fault to its undo, or to the end of the fault phase (the heal) if nothing undoes it.
    fn exposure_ms(&self) -> u64 {
        let mut spans: BTreeMap<usize, (u64, &ExplicitFault)> = BTreeMap::new();
        for fault in &self.faults {
            spans.entry(fault.group).or_insert((fault.at_ms, fault)).1 = fault;
        }
        spans
            .values()
            .map(|(first, last)| {
                let end = if last.undoes() {
                    last.at_ms
                } else {
                    self.duration_ms
                };
                end.saturating_sub(*first)
            })
            .sum()
    }
}

/// Runs candidates in the scratch directory, within the budget, remembering each text's
/// outcome.
struct Runner {
    seed: u64,
    scratch: PathBuf,
    runs: u64,
    max_runs: u64,
    /// Candidate text → whether it met the goal (an invalid candidate: false, never run).
    seen: BTreeMap<String, bool>,
}

impl Runner {
    /// One full run of `scenario` in the scratch directory: memory-backed disks, log held
    /// and dropped, checks run on the disks' images.
    fn run(&mut self, scenario: &Scenario, keep_events: bool) -> Result<RunOutcome, Abort> {
        self.runs += 1;
        let recorder = Recorder::new();
        let log = sim::RunLog::deferred(&self.scratch.join("ksim.log"));
        let disks = sim::RunDisks::new(Backing::Memory);
        let ran = sim::simulate(
            scenario,
            self.seed,
            &self.scratch,
            &disks,
            &recorder,
            &log,
            |output| {
                let images = std::mem::take(&mut output.disks);
                if output.crash.is_some() {
                    return Vec::new();
                }
                run_checks(&CheckInput {
                    scenario,
                    events: &output.record.events,
                    history: &output.record.history,
                    nodes: NodeData::Images(&images),
                })
            },
        );
        log.discard();
        let (output, checks) = ran.map_err(|error| Abort {
            code: Verdict::Crash.exit_code(),
            message: format!("seed {}: the run failed: {error}", self.seed),
        })?;
        Ok(RunOutcome {
            verdict: Verdict::of(&checks, output.crash.as_ref()),
            failed: checks
                .iter()
                .filter(|c| !c.passed())
                .map(|c| c.check)
                .collect(),
            crashed: output.crash.is_some(),
            events: keep_events.then(|| output.record.events.clone()),
        })
    }

    /// Whether the scenario `text` meets `goal` on the seed: `Passes` for a text that does
    /// not load (never run), `Stop` once the budget is spent.
    fn test(&mut self, text: String, goal: Goal) -> Result<Outcome, Abort> {
        if let Some(&met) = self.seen.get(&text) {
            return Ok(if met { Outcome::Fails } else { Outcome::Passes });
        }
        let Ok(scenario) = scenario::parse(Path::new("candidate.toml"), text.as_bytes()) else {
            self.seen.insert(text, false);
            return Ok(Outcome::Passes);
        };
        if self.runs >= self.max_runs {
            return Ok(Outcome::Stop);
        }
        let met = self.run(&scenario, false)?.meets(goal);
        self.seen.insert(text, met);
        Ok(if met { Outcome::Fails } else { Outcome::Passes })
    }
}

/// Removes the scratch run directory when the shrink ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if run_dir::is_run_dir(&self.0) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn shrink(path: &Path, options: &ShrinkOptions) -> Result<u8, Abort> {
    let scenario = scenario::load(path).map_err(usage)?;
    print_warnings(&scenario);
    let seed = options.seed;
    if let Some(check) = &options.check {
        if !CheckName::ALL.iter().any(|c| c.name() == check) {
            let names: Vec<&str> = CheckName::ALL.iter().map(|c| c.name()).collect();
            return Err(usage(format!(
                "--check {check:?} is no check; expected one of {}",
                names.join(", ")
            )));
        }
    }
    let out_path = output_path(options.out.as_deref(), &scenario, seed)?;
    let template = Template::new(&scenario.source).map_err(usage)?;
    let scratch = Path::new(RUNS_DIR).join(format!("{}-{seed}-shrink", scenario.name));
    run_dir::prepare(&scratch).map_err(usage)?;
    let _scratch = Scratch(scratch.clone());
    let mut runner = Runner {
        seed,
        scratch,
        runs: 0,
        max_runs: options.max_runs,
        seen: BTreeMap::new(),
    };

    out!(
        "shrink: {} ({}) seed {seed}, at most {} runs",
        scenario.name,
        path.display(),
        options.max_runs
    );
    let original = runner.run(&scenario, true)?;
    if original.verdict == Verdict::Pass {
        err!(
            "error: seed {seed} of {} passes every check: there is no failure to shrink \
             (`ksim sweep {}` lists failing seeds)",
            scenario.name,
            path.display()
        );
        return Ok(EXIT_USAGE);
    }
    let goal = choose_goal(&original, options.check.as_deref(), seed)?;
    out!(
        "seed {seed} fails ({}: {}); shrinking while {goal} fails",
        original.verdict.name(),
        original.failures()
    );
    let exported = export::export(&scenario, original.events.as_deref().unwrap_or_default());
    out!(
        "exported {} from the run ({} scheduled fault events, {} drawn by the nemesis)",
        faults(exported.faults.len()),
        exported.scheduled_events,
        exported.drawn_events
    );
    for note in &exported.notes {
        out!("  note: {note}");
    }
    let mut shrinker = Shrinker {
        runner,
        template: &template,
        goal,
        best: Candidate {
            faults: exported.faults.clone(),
            values: template.knobs.iter().map(|k| k.original).collect(),
            duration_ms: scenario.duration.as_millis() as u64,
        },
        stopped: false,
    };
    let Some((base, base_name)) = shrinker.find_base(&scenario)? else {
        out!(
            "nothing written: no scenario with explicit faults was found that fails {goal} \
             on seed {seed}"
        );
        return Ok(original.verdict.exit_code());
    };
    shrinker.best = base.clone();
    shrinker.minimize()?;

    let best = &shrinker.best;
    let header = Header {
        from: path,
        to: &out_path,
        seed,
        goal,
        failed: &original.failures(),
        exported: &exported,
        base_name,
        base_faults: base.faults.len(),
        faults: best.faults.len(),
    };
    let text = template.render(
        &header.to_string(),
        &best.values,
        best.duration_ms,
        &best.faults,
    );
    write_output(&out_path, &text, options.out.is_some())?;
    let budget = if shrinker.stopped {
        format!(" (the budget of {} runs is spent)", options.max_runs)
    } else {
        String::new()
    };
    out!(
        "shrunk in {} runs{budget}: {}",
        shrinker.runner.runs,
        describe_changes(&template, &base, best, base_name)
    );
    out!("wrote {}", out_path.display());
    out!("run it: ksim run {} --seed {seed}", out_path.display());
    if best.smaller_than(&base) {
        Ok(0)
    } else {
        out!("not smaller: nothing could be removed from {base_name}; the file holds it as it is");
        Ok(original.verdict.exit_code())
    }
}

/// "1 fault", "3 faults".
fn faults(count: usize) -> String {
    if count == 1 {
        "1 fault".to_string()
    } else {
        format!("{count} faults")
    }
}

/// The check to keep failing: `--check` (it must have failed), else the first failing
/// check in the contract's order, else (a crash has no checks) the crash.
fn choose_goal(original: &RunOutcome, check: Option<&str>, seed: u64) -> Result<Goal, Abort> {
    match check {
        Some(name) => original
            .failed
            .iter()
            .find(|c| **c == name)
            .map(|c| Goal::Check(c))
            .ok_or_else(|| {
                usage(format!(
                    "--check {name}: that check did not fail on seed {seed} (failed: {})",
                    if original.crashed {
                        "none, a node panicked".to_string()
                    } else {
                        original.failed.join(", ")
                    }
                ))
            }),
        None => Ok(CheckName::ALL
            .iter()
            .map(|c| c.name())
            .find(|name| original.failed.contains(name))
            .map_or(Goal::Crash, Goal::Check)),
    }
}

/// The file to write; refuses a directory, and a file at the default path that `ksim
/// shrink` did not write.
fn output_path(out: Option<&Path>, scenario: &Scenario, seed: u64) -> Result<PathBuf, Abort> {
    let path = match out {
        Some(path) => path.to_path_buf(),
        None => Path::new(SHRUNK_DIR).join(format!("{}-{seed}.toml", scenario.name)),
    };
    if path.is_dir() {
        return Err(usage(format!(
            "{}: is a directory; --out names the scenario file to write",
            path.display()
        )));
    }
    if out.is_none() && path.exists() && !written_by_shrink(&path) {
        return Err(usage(format!(
            "{}: exists and was not written by `ksim shrink`; name the file to write with --out",
            path.display()
        )));
    }
    Ok(path)
}

fn written_by_shrink(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.starts_with(HEADER_MARK))
}

fn write_output(path: &Path, text: &str, named: bool) -> Result<(), Abort> {
    if !named && path.exists() && !written_by_shrink(path) {
        return Err(usage(format!(
            "{}: exists and was not written by `ksim shrink`; name the file to write with --out",
            path.display()
        )));
    }
    let cannot =
        |error: std::io::Error| usage(format!("{}: cannot write: {error}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(cannot)?;
    }
    std::fs::write(path, text).map_err(cannot)
}

/// The comment lines the file starts with: where it came from, what it fails, how to run it.
struct Header<'a> {
    from: &'a Path,
    to: &'a Path,
    seed: u64,
    goal: Goal,
    failed: &'a str,
    exported: &'a export::Export,
    base_name: &'a str,
    base_faults: usize,
    faults: usize,
}

impl fmt::Display for Header<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seed = self.seed;
        writeln!(
            f,
            "{HEADER_MARK} from {} with seed {seed}.",
            self.from.display()
        )?;
        writeln!(
            f,
            "# It fails {} with seed {seed} (the original run failed: {}).",
            self.goal, self.failed
        )?;
        writeln!(
            f,
            "# The run's faults ({} scheduled, {} drawn by the nemesis) were exported as\n\
             # {} explicit [[fault]]s, nemesis off.",
            self.exported.scheduled_events,
            self.exported.drawn_events,
            self.exported.faults.len()
        )?;
        writeln!(
            f,
            "# Shrunk from {} ({}) to {}.",
            self.base_name,
            faults(self.base_faults),
            faults(self.faults)
        )?;
        writeln!(f, "# Run it: ksim run {} --seed {seed}", self.to.display())
    }
}

/// What changed from `base` to `best`, for the last lines.
fn describe_changes(template: &Template, base: &Candidate, best: &Candidate, name: &str) -> String {
    let mut parts = vec![format!(
        "{} → {} (from {name})",
        base.faults.len(),
        faults(best.faults.len())
    )];
    for ((knob, from), to) in template.knobs.iter().zip(&base.values).zip(&best.values) {
        if from != to {
            parts.push(format!("{} {from} → {to}", knob.label));
        }
    }
    if best.duration_ms != base.duration_ms {
        parts.push(format!(
            "duration {} → {}",
            format_duration_ms(base.duration_ms),
            format_duration_ms(best.duration_ms)
        ));
    }
    if best.exposure_ms() != base.exposure_ms() {
        parts.push(format!(
            "time under faults {} → {} (summed over episodes)",
            format_duration_ms(base.exposure_ms()),
            format_duration_ms(best.exposure_ms())
        ));
    }
    parts.join(" · ")
}

/// The search: the best candidate so far, and the steps that try to make it smaller.
struct Shrinker<'t> {
    runner: Runner,
    template: &'t Template,
    goal: Goal,
    best: Candidate,
    /// The budget ran out.
    stopped: bool,
}

impl Shrinker<'_> {
    fn test(&mut self, candidate: &Candidate) -> Result<Outcome, Abort> {
        if self.stopped {
            return Ok(Outcome::Stop);
        }
        let text = self.template.render(
            "",
            &candidate.values,
            candidate.duration_ms,
            &candidate.faults,
        );
        let outcome = self.runner.test(text, self.goal)?;
        if outcome == Outcome::Stop {
            self.stopped = true;
        }
        Ok(outcome)
    }

    /// Keeps `candidate` if it still fails; prints `what` with the run count if so.
    fn try_step(
        &mut self,
        candidate: Candidate,
        what: impl FnOnce() -> String,
    ) -> Result<bool, Abort> {
        let candidate = candidate.sorted();
        if candidate == self.best {
            return Ok(false);
        }
        if self.test(&candidate)? != Outcome::Fails {
            return Ok(false);
        }
        self.best = candidate;
        self.progress(&what());
        Ok(true)
    }

    fn progress(&self, what: &str) {
        out!(
            "[run {}/{}] {what}: still fails {}",
            self.runner.runs,
            self.runner.max_runs,
            self.goal
        );
    }

    /// What to shrink: the explicit export (the best candidate when called) if it fails
    /// the goal; else the scenario's own `[[fault]]`s as written, without the nemesis, if
    /// those fail; else nothing. Says which, and why the export may not fail.
    fn find_base(
        &mut self,
        scenario: &Scenario,
    ) -> Result<Option<(Candidate, &'static str)>, Abort> {
        let (goal, seed) = (self.goal, self.runner.seed);
        let explicit = self.best.clone();
        let text =
            self.template
                .render("", &explicit.values, explicit.duration_ms, &explicit.faults);
        let outcome = match scenario::parse(Path::new("export.toml"), text.as_bytes()) {
            Ok(_) => self.test(&explicit)?,
            Err(error) => {
                err!(
                    "error: the explicit export does not load (a ksim bug; please report \
                     it): {error}"
                );
                Outcome::Passes
            }
        };
        match outcome {
            Outcome::Fails => {
                out!("the explicit export fails {goal} on seed {seed}");
                return Ok(Some((explicit, "the explicit export")));
            }
            Outcome::Stop => {
                out!(
                    "the explicit export was not run: the budget of {} runs is spent",
                    self.runner.max_runs
                );
                return Ok(None);
            }
            Outcome::Passes => out!(
                "the explicit export does NOT fail {goal} on seed {seed}: {}",
                if scenario.nemesis.is_some() {
                    "without the nemesis, the seed's random draws differ from the original run's"
                } else {
                    "its faults are not exactly the original schedule (random targets and \
                     shapes resolved, correlated power cuts split), so the seed's random \
                     draws differ from the original run's"
                }
            ),
        }
        if scenario.faults.is_empty() {
            return Ok(None);
        }
        let written = Candidate {
            faults: export::as_written(scenario),
            ..explicit
        };
        let what = if scenario.nemesis.is_some() {
            "the scenario's own [[fault]]s as written, without the nemesis,"
        } else {
            "the scenario's own [[fault]]s as written"
        };
        if self.test(&written)? == Outcome::Fails {
            out!("{what} fail {goal} on seed {seed}: shrinking those");
            Ok(Some((written, "the faults as written")))
        } else {
            out!("{what} do not fail {goal} on seed {seed} either");
            Ok(None)
        }
    }

    /// Passes over every step while one gains something and the budget lasts.
    fn minimize(&mut self) -> Result<(), Abort> {
        for _ in 0..MAX_PASSES {
            let before = self.best.clone();
            self.drop_faults()?;
            self.simplify_times()?;
            self.reduce_workload()?;
            self.shorten_duration()?;
            if self.stopped || self.best == before {
                break;
            }
        }
        Ok(())
    }

    /// ddmin over the fault episodes, then over single faults.
    fn drop_faults(&mut self) -> Result<(), Abort> {
        let mut groups: Vec<usize> = Vec::new();
        for fault in &self.best.faults {
            if !groups.contains(&fault.group) {
                groups.push(fault.group);
            }
        }
        self.ddmin_faults(
            &groups,
            |_, fault, kept| kept.contains(&fault.group),
            "episodes",
        )?;
        if self.best.faults.len() > 1 {
            let indices: Vec<usize> = (0..self.best.faults.len()).collect();
            self.ddmin_faults(
                &indices,
                |index, _, kept| kept.contains(&index),
                "single faults",
            )?;
        }
        Ok(())
    }

    /// One ddmin over `items`, a candidate keeping the faults (by index and value in the
    /// best list so far) that `keeps` says belong to the subset tried.
    fn ddmin_faults(
        &mut self,
        items: &[usize],
        keeps: impl Fn(usize, &ExplicitFault, &[usize]) -> bool,
        what: &str,
    ) -> Result<(), Abort> {
        if items.is_empty() || self.stopped {
            return Ok(());
        }
        let start = self.best.clone();
        let mut failure = None;
        let mut count = start.faults.len();
        ddmin(items, |subset| {
            if failure.is_some() {
                return Outcome::Stop;
            }
            let candidate = Candidate {
                faults: start
                    .faults
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| keeps(*i, f, subset))
                    .map(|(_, f)| f.clone())
                    .collect(),
                ..start.clone()
            };
            match self.test(&candidate) {
                Ok(Outcome::Fails) => {
                    if candidate.faults.len() < count {
                        let line = format!(
                            "{count} → {} (ddmin over {what})",
                            faults(candidate.faults.len())
                        );
                        count = candidate.faults.len();
                        self.best = candidate;
                        self.progress(&line);
                    }
                    Outcome::Fails
                }
                Ok(outcome) => outcome,
                Err(abort) => {
                    failure = Some(abort);
                    Outcome::Stop
                }
            }
        });
        match failure {
            Some(abort) => Err(abort),
            None => Ok(()),
        }
    }

    /// Rounds fault times, then shortens each episode (its first fault later, its last
    /// earlier), then starts the whole schedule sooner.
    fn simplify_times(&mut self) -> Result<(), Abort> {
        for (unit, name) in [(1000, "whole seconds"), (100, "tenths of a second")] {
            if self.best.faults.iter().all(|f| f.at_ms % unit == 0) {
                break;
            }
            let mut candidate = self.best.clone();
            for fault in &mut candidate.faults {
                fault.at_ms = ((fault.at_ms + unit / 2) / unit * unit).min(candidate.duration_ms);
            }
            if self.try_step(candidate, || format!("fault times rounded to {name}"))? {
                break;
            }
        }
        let mut groups: Vec<usize> = self.best.faults.iter().map(|f| f.group).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            for later in [true, false] {
                if self.stopped {
                    return Ok(());
                }
                let members: Vec<usize> = (0..self.best.faults.len())
                    .filter(|&i| self.best.faults[i].group == group)
                    .collect();
                if members.len() < 2 {
                    break;
                }
                // The first fault moves halfway to the second; or the last halfway back to
                // the one before it.
                let (moved, toward) = if later {
                    (members[0], members[1])
                } else {
                    (members[members.len() - 1], members[members.len() - 2])
                };
                let (from, to) = (
                    self.best.faults[moved].at_ms,
                    self.best.faults[toward].at_ms,
                );
                let halfway = round_to((from + to) / 2, 100);
                if halfway == from || from.abs_diff(to) < 200 {
                    continue;
                }
                let mut candidate = self.best.clone();
                candidate.faults[moved].at_ms = halfway;
                let fault = &self.best.faults[moved];
                let what = format!(
                    "{} {}at {} → {} (a shorter episode)",
                    fault.action,
                    fault
                        .target
                        .as_deref()
                        .map(|t| format!("{t} "))
                        .unwrap_or_default(),
                    format_duration_ms(from),
                    format_duration_ms(halfway)
                );
                self.try_step(candidate, || what)?;
            }
        }
        let first = self.best.faults.iter().map(|f| f.at_ms).min().unwrap_or(0);
        let shift = first / 2 / 1000 * 1000;
        if shift > 0 {
            let mut candidate = self.best.clone();
            for fault in &mut candidate.faults {
                fault.at_ms -= shift;
            }
            self.try_step(candidate, || {
                format!("every fault {} sooner", format_duration_ms(shift))
            })?;
        }
        Ok(())
    }

    /// Each knob to its least, else halfway there.
    fn reduce_workload(&mut self) -> Result<(), Abort> {
        for index in 0..self.template.knobs.len() {
            let knob = &self.template.knobs[index];
            let (label, min) = (knob.label.clone(), knob.min);
            let current = self.best.values[index];
            let halfway = min + (current - min.min(current)) / 2;
            for value in [min, halfway] {
                if value >= current || self.stopped {
                    continue;
                }
                let mut candidate = self.best.clone();
                candidate.values[index] = value;
                let what = if value == 0 {
                    format!("{label} {current} → 0 (table removed)")
                } else {
                    format!("{label} {current} → {value}")
                };
                if self.try_step(candidate, || what)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `duration` down to the last fault (whole seconds), else halfway there.
    fn shorten_duration(&mut self) -> Result<(), Abort> {
        let current = self.best.duration_ms;
        let last = self.best.faults.iter().map(|f| f.at_ms).max().unwrap_or(0);
        let least = round_up(last, 1000).max(1000);
        let halfway = round_up((least + current) / 2, 1000);
        for value in [least, halfway] {
            if value >= current || self.stopped {
                continue;
            }
            let mut candidate = self.best.clone();
            candidate.duration_ms = value;
            let what = format!(
                "duration {} → {}",
                format_duration_ms(current),
                format_duration_ms(value)
            );
            if self.try_step(candidate, || what)? {
                break;
            }
        }
        Ok(())
    }
}

fn round_to(ms: u64, unit: u64) -> u64 {
    (ms + unit / 2) / unit * unit
}

fn round_up(ms: u64, unit: u64) -> u64 {
    ms.div_ceil(unit) * unit
}
