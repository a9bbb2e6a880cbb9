//! `ksim coverage`: every scenario under a directory, over the same seeds, and which
//! coverage marks ([`crate::coverage`]) each one reached → `reports/coverage.md`.
//!
//! Owns: running the scenarios × seeds grid (seeds in parallel, each run in a scratch run
//! directory deleted after it: only what ksim made), tallying marks per scenario, and the
//! markdown report. The report depends only on the binary, the scenarios and the seeds (no
//! wall time in it), so re-running it on the same tree gives the same file.

use super::sweep::{parallel, progress_bar};
use super::{collect_toml, err, out, run_one_as, Keep, RunError, EXIT_USAGE};
use crate::coverage::{Mark, SeedCounts};
use crate::report::{self, Verdict};
use crate::scenario::{self, Scenario, SeedRange};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// What `ksim coverage` is asked to do.
pub struct CoverageOptions {
    /// Directory of scenarios (searched recursively).
    pub dir: PathBuf,
    /// Seeds run for every scenario.
    pub seeds: SeedRange,
    /// Runs at once.
    pub jobs: usize,
    /// The markdown report.
    pub out: PathBuf,
    /// Where the scratch run directories go (removed after).
    pub work: PathBuf,
}

/// One scenario's tally.
struct Row {
    path: PathBuf,
    name: String,
    counts: SeedCounts,
    /// Seeds whose verdict was not a pass (a zoo entry's expected failures among them).
    failing: Vec<u64>,
    /// Seeds that could not run, and why.
    errors: Vec<(u64, String)>,
}

/// `ksim coverage`.
pub fn cmd_coverage(options: CoverageOptions) -> u8 {
    if !options.dir.is_dir() {
        err!("error: {}: not a directory", options.dir.display());
        return EXIT_USAGE;
    }
    let mut files = Vec::new();
    collect_toml(&options.dir, &mut files);
    files.sort();
    let mut scenarios: Vec<Scenario> = Vec::new();
    for file in &files {
        match scenario::load(file) {
            Ok(s) => scenarios.push(s),
            Err(error) => {
                err!("{error}");
                return EXIT_USAGE;
            }
        }
    }
    if scenarios.is_empty() {
        err!("error: no scenarios under {}", options.dir.display());
        return EXIT_USAGE;
    }
    let seeds: Vec<u64> = options.seeds.iter().collect();
    err!(
        "coverage: {} scenarios × {} seeds ({}..{}), {} jobs",
        scenarios.len(),
        seeds.len(),
        options.seeds.first,
        options.seeds.last,
        options.jobs
    );
    // One job per (scenario, seed), numbered scenario-major.
    let jobs: Vec<u64> = (0..(scenarios.len() * seeds.len()) as u64).collect();
    let bar = progress_bar(jobs.len(), "runs");
    let results = parallel(&jobs, options.jobs, &bar, &AtomicBool::new(false), |job| {
        let (i, k) = (job as usize / seeds.len(), job as usize % seeds.len());
        let (scenario, seed) = (&scenarios[i], seeds[k]);
        let dir = options
            .work
            .join(format!("{:03}-{}-{seed}", i + 1, scenario.name));
        let result = run_one_as(
            scenario,
            seed,
            &dir,
            Keep::SweepRule,
            Keep::SweepRule.backing(),
        );
        if report::run_dir::is_run_dir(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result.map(|r| (r.marks, r.verdict))
    });
    bar.finish_and_clear();
    // Only if empty: the directory may be the user's own.
    let _ = std::fs::remove_dir(&options.work);

    let mut rows: Vec<Row> = scenarios
        .iter()
        .map(|s| Row {
            path: s.path.clone(),
            name: s.name.clone(),
            counts: SeedCounts::default(),
            failing: Vec::new(),
            errors: Vec::new(),
        })
        .collect();
    let mut error_code = 0;
    for (job, result) in results {
        let (i, k) = (job as usize / seeds.len(), job as usize % seeds.len());
        let row = &mut rows[i];
        match result {
            Ok((marks, verdict)) => {
                row.counts.add(&marks);
                if verdict != Verdict::Pass {
                    row.failing.push(seeds[k]);
                }
            }
            Err(error) => {
                error_code = error_code.max(RunError::exit_code(&error));
                row.errors.push((seeds[k], error.to_string()));
            }
        }
    }
    let mut total = SeedCounts::default();
    for row in &rows {
        total.merge(&row.counts);
    }
    for line in total.summary_lines() {
        out!("{line}");
    }
    for row in &rows {
        for (seed, error) in &row.errors {
            out!("{} seed {seed}: could not run: {error}", row.path.display());
        }
    }
    let text = markdown(&rows, &options, &total);
    if let Some(parent) = options.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(error) = std::fs::create_dir_all(parent) {
            err!("error: {}: {error}", parent.display());
            return EXIT_USAGE;
        }
    }
    if let Err(error) = std::fs::write(&options.out, text) {
        err!("error: {}: {error}", options.out.display());
        return EXIT_USAGE;
    }
    out!("report: {}", options.out.display());
    error_code
}

/// The report: every mark with its seed counts and the scenarios that reach it, then the
/// marks no scenario reached, then each scenario's own count.
fn markdown(rows: &[Row], options: &CoverageOptions, total: &SeedCounts) -> String {
    let seeds = options.seeds;
    let per = seeds.iter().count();
    let mut md = String::new();
    let _ = writeln!(md, "# Coverage marks\n");
    let _ = writeln!(
        md,
        "Written by `ksim coverage {} --seeds {}..{}` (ksim {}, commit {}): every scenario \
         under `{}` run on seeds {}..{}, {} runs in all. A mark is a state worth reaching \
         (`src/coverage.rs`); a scenario that never reaches it cannot find the bugs behind \
         it. Counts are seeds on which the mark was hit at least once.\n",
        options.dir.display(),
        seeds.first,
        seeds.last,
        env!("CARGO_PKG_VERSION"),
        report::git_commit(),
        options.dir.display(),
        seeds.first,
        seeds.last,
        total.runs,
    );
    let never = total.never_hit();
    let _ = writeln!(
        md,
        "**{} of {} marks hit.**{}\n",
        Mark::ALL.len() - never.len(),
        Mark::ALL.len(),
        if never.is_empty() {
            String::new()
        } else {
            format!(
                " Never hit: {}.",
                never
                    .iter()
                    .map(|m| format!("`{}`", m.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let _ = writeln!(md, "## Marks\n");
    let _ = writeln!(
        md,
        "| mark | what it means | seeds (of {}) | scenarios reaching it (seeds of {per}) |",
        total.runs
    );
    let _ = writeln!(md, "|---|---|---|---|");
    for mark in Mark::ALL {
        let mut reaching: Vec<(&Row, u64)> = rows
            .iter()
            .map(|r| (r, r.counts.of(*mark)))
            .filter(|(_, n)| *n > 0)
            .collect();
        reaching.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.path.cmp(&b.0.path)));
        let shown: Vec<String> = reaching
            .iter()
            .take(4)
            .map(|(r, n)| format!("{} {n}", short(&r.path, &options.dir)))
            .collect();
        let more = reaching.len().saturating_sub(shown.len());
        let scenarios = match (shown.is_empty(), more) {
            (true, _) => "**never**".to_string(),
            (false, 0) => shown.join(", "),
            (false, more) => format!("{}, +{more} more", shown.join(", ")),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {scenarios} |",
            mark.name(),
            mark.about(),
            total.of(*mark)
        );
    }
    let _ = writeln!(md, "\n## Scenarios\n");
    let _ = writeln!(
        md,
        "| scenario | marks hit | failing seeds (zoo: expected) |"
    );
    let _ = writeln!(md, "|---|---|---|");
    for row in rows {
        let hit = Mark::ALL.len() - row.counts.never_hit().len();
        let failing = if row.failing.is_empty() {
            "0".to_string()
        } else {
            format!("{}", row.failing.len())
        };
        let _ = writeln!(
            md,
            "| `{}` ({}) | {hit} | {failing} |",
            short(&row.path, &options.dir),
            row.name
        );
    }
    md
}

/// `path` relative to the scanned directory.
fn short(path: &Path, dir: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}
