//! `ksim bench`: how fast ksim simulates, against madsim's own floor, written to
//! `reports/sim-bench.md` (issue 15's measurement).
//!
//! Owns: running seeds in child processes of this same binary and measuring them from
//! outside (wall clock here, CPU and peak RSS from `wait4`'s rusage of each child, bytes
//! written from its `/proc/<pid>/io`, read while it is a zombie), the
//! floor runs (`ksim bench-floor`, [`super::floor`]) for the first scenario's counters,
//! and the report. Every figure comes from one invocation on one machine: compare ratios
//! within a report, not figures across reports.

use super::floor::FloorLoad;
use super::{err, out};
use crate::report;
use serde_json::Value;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The scenarios measured by default; the first is the reference the floor replays.
pub const DEFAULT_SCENARIOS: [&str; 3] = [
    "sim-scenarios/bench/reference.toml",
    "sim-scenarios/leader-failover.toml",
    "sim-scenarios/nemesis.toml",
];

/// What `ksim bench` was asked to do.
pub struct BenchOptions {
    /// The report file.
    pub out: PathBuf,
    /// Scenario files; the first one's counters drive the floor.
    pub scenarios: Vec<PathBuf>,
    /// Seeds run one at a time per scenario (per-seed figures).
    pub seeds: u64,
    /// Seeds per sweep (`--jobs 1` and `--jobs 2`).
    pub sweep_seeds: u64,
    /// Floor runs (the median is reported).
    pub floor_runs: u64,
    /// The scenario of the sweep-length measurement: a short and a long `--jobs 2` sweep
    /// of it, their peak RSS compared (does a sweep's memory grow with its length?).
    pub long_sweep_scenario: PathBuf,
    /// Seeds of the long sweep (0: no sweep-length measurement).
    pub long_sweep_seeds: u64,
    /// Scratch directory for run directories (emptied after).
    pub work: PathBuf,
}

/// What `wait4` said about one child, and the wall time around it.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    wall_s: f64,
    cpu_s: f64,
    max_rss_kb: u64,
    /// Bytes it handed to write calls (`wchar` of `/proc/<pid>/io`; 0 without `/proc`).
    written: u64,
    exit: i32,
}

/// Bytes `pid` has handed to write calls so far (`wchar`), if `/proc` says.
fn bytes_written(pid: libc::pid_t) -> Option<u64> {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Runs this binary with `args` as a child (stdout to `stdout`, stderr to `stderr`), waits
/// for it with `wait4` and returns its wall time, CPU (user + system), peak RSS and the bytes
/// it wrote (read once it has exited, before it is reaped).
fn run_child(args: &[OsString], stdout: &Path, stderr: &Path) -> io::Result<Usage> {
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(stdout)?)
        .stderr(fs::File::create(stderr)?)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    // SAFETY: a zeroed siginfo_t is a valid value of a plain C struct, which waitid fills.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child; WNOWAIT leaves it a zombie for wait4 below, so its
    // `/proc/<pid>/io` (whole-process totals) can still be read.
    let exited = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let written = if exited == 0 {
        bytes_written(pid)
    } else {
        None
    };
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value of a plain C struct, which wait4 fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (std's `Child` is dropped unwaited,
    // which neither kills nor waits); the pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_s = started.elapsed().as_secs_f64();
    drop(child);
    if waited != pid {
        return Err(io::Error::last_os_error());
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let exit = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok(Usage {
        wall_s,
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss as u64,
        written: written.unwrap_or(0),
        exit,
    })
}

/// Total bytes of the files under `path`.
fn tree_bytes(path: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(path) else {
        return fs::metadata(path).map_or(0, |m| m.len());
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_bytes(&entry.path()),
            _ => entry.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn read_json(path: &Path) -> io::Result<Value> {
    serde_json::from_str(&fs::read_to_string(path)?).map_err(io::Error::other)
}

/// One seed run alone.
struct SeedRun {
    seed: u64,
    verdict: String,
    trace: String,
    sim_s: f64,
    usage: Usage,
    run_dir_bytes: u64,
    counters: Value,
}

/// A sweep of seeds with `jobs` threads.
struct SweepRun {
    jobs: u64,
    seeds: u64,
    passing: u64,
    sim_s: f64,
    usage: Usage,
    kept_per_passing: f64,
}

struct ScenarioBench {
    name: String,
    path: PathBuf,
    seeds: Vec<SeedRun>,
    sweeps: Vec<SweepRun>,
}

impl ScenarioBench {
    fn sim_s(&self) -> f64 {
        self.seeds.iter().map(|s| s.sim_s).sum()
    }
    fn wall_s(&self) -> f64 {
        self.seeds.iter().map(|s| s.usage.wall_s).sum()
    }
    fn cpu_s(&self) -> f64 {
        self.seeds.iter().map(|s| s.usage.cpu_s).sum()
    }
    fn counter(&self, key: &str) -> u64 {
        self.seeds
            .iter()
            .map(|s| s.counters[key].as_u64().unwrap_or(0))
            .sum()
    }
}

fn work_error(what: &str, stderr: &Path, exit: i32) -> io::Error {
    let tail: String = fs::read_to_string(stderr)
        .unwrap_or_default()
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .join(" | ");
    io::Error::other(format!("{what} exited with {exit}: {tail}"))
}

fn bench_seed(path: &Path, name: &str, seed: u64, work: &Path) -> io::Result<SeedRun> {
    let run_dir = work.join(format!("{name}-{seed}"));
    let _ = fs::remove_dir_all(&run_dir);
    let (stdout, stderr) = (work.join("child.out"), work.join("child.err"));
    let usage = run_child(
        &[
            OsString::from("run"),
            path.into(),
            "--seed".into(),
            seed.to_string().into(),
            "--out".into(),
            run_dir.clone().into(),
            "--json".into(),
        ],
        &stdout,
        &stderr,
    )?;
    // Exit 0, 1, 3, 4 are verdicts; anything else means no run.
    if !matches!(usage.exit, 0 | 1 | 3 | 4) {
        return Err(work_error(
            &format!("ksim run {name} --seed {seed}"),
            &stderr,
            usage.exit,
        ));
    }
    let verdict = read_json(&run_dir.join("verdict.json"))?;
    let run_dir_bytes = tree_bytes(&run_dir);
    let _ = fs::remove_dir_all(&run_dir);
    Ok(SeedRun {
        seed,
        verdict: verdict["verdict"].as_str().unwrap_or("?").to_string(),
        trace: verdict["trace_hash"].as_str().unwrap_or("?").to_string(),
        sim_s: verdict["sim_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        usage,
        run_dir_bytes,
        counters: verdict["counters"].clone(),
    })
}

fn bench_sweep(
    path: &Path,
    name: &str,
    seeds: u64,
    jobs: u64,
    work: &Path,
) -> io::Result<SweepRun> {
    let out_dir = work.join(format!("sweep-{name}-j{jobs}"));
    let _ = fs::remove_dir_all(&out_dir);
    fs::create_dir_all(&out_dir)?;
    let (stdout, stderr) = (work.join("sweep.out"), work.join("sweep.err"));
    let usage = run_child(
        &[
            OsString::from("sweep"),
            path.into(),
            "--seeds".into(),
            format!("1..{seeds}").into(),
            "--jobs".into(),
            jobs.to_string().into(),
            "--out".into(),
            out_dir.clone().into(),
            "--json".into(),
        ],
        &stdout,
        &stderr,
    )?;
    if !matches!(usage.exit, 0 | 1 | 3 | 4) {
        return Err(work_error(
            &format!("ksim sweep {name} --jobs {jobs}"),
            &stderr,
            usage.exit,
        ));
    }
    let mut passing = 0;
    let mut kept = 0;
    let mut sim_s = 0.0;
    for line in fs::read_to_string(&stdout)?.lines() {
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        sim_s += doc["sim_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
        if doc["verdict"] == "pass" {
            passing += 1;
            let seed = doc["seed"].as_u64().unwrap_or(0);
            kept += tree_bytes(&out_dir.join(format!("{name}-{seed}")));
        }
    }
    let _ = fs::remove_dir_all(&out_dir);
    Ok(SweepRun {
        jobs,
        seeds,
        passing,
        sim_s,
        usage,
        kept_per_passing: if passing > 0 {
            kept as f64 / passing as f64
        } else {
            0.0
        },
    })
}

/// The floor's load: the reference's counts per simulated second over all its seeds,
/// scaled to its mean simulated duration.
fn floor_load(reference: &ScenarioBench) -> FloorLoad {
    let sim_s = reference.sim_s().max(1e-9);
    let seeds = reference.seeds.len().max(1) as f64;
    let mean_sim_s = sim_s / seeds;
    let scaled = |key: &str| (reference.counter(key) as f64 / sim_s * mean_sim_s).round() as u64;
    FloorLoad {
        nodes: (reference.counter("nodes") as f64 / seeds).round() as u64,
        sim_ms: (mean_sim_s * 1000.0).round() as u64,
        frames: scaled("frames"),
        frame_bytes: scaled("frame_bytes"),
        flushes: scaled("flushes"),
        timers: scaled("timers"),
        disk_reads: scaled("disk_reads"),
        disk_read_bytes: scaled("disk_read_bytes"),
        disk_writes: scaled("disk_writes"),
        disk_write_bytes: scaled("disk_write_bytes"),
        disk_syncs: scaled("disk_syncs") + scaled("disk_dir_syncs"),
    }
}

/// One floor run in a child: what it did and what it cost.
fn bench_floor(load: &FloorLoad, run: u64, work: &Path) -> io::Result<(FloorLoad, Usage)> {
    let dir = work.join(format!("floor-{run}"));
    let _ = fs::remove_dir_all(&dir);
    let (stdout, stderr) = (work.join("floor.out"), work.join("floor.err"));
    let usage = run_child(
        &[
            OsString::from("bench-floor"),
            serde_json::to_string(load)
                .map_err(io::Error::other)?
                .into(),
            "--dir".into(),
            dir.clone().into(),
            "--seed".into(),
            run.to_string().into(),
        ],
        &stdout,
        &stderr,
    )?;
    let _ = fs::remove_dir_all(&dir);
    if usage.exit != 0 {
        return Err(work_error("ksim bench-floor", &stderr, usage.exit));
    }
    let did =
        serde_json::from_str(fs::read_to_string(&stdout)?.trim()).map_err(io::Error::other)?;
    Ok((did, usage))
}

/// `ksim bench`.
pub fn cmd_bench(options: &BenchOptions) -> u8 {
    // The scratch directory must be ksim's (new, empty or marked), so removing what the
    // children wrote in it never touches a user's files.
    if let Err(error) = crate::report::run_dir::prepare(&options.work) {
        err!("error: bench: --work {error}");
        return super::EXIT_USAGE;
    }
    match bench(options) {
        Ok(()) => 0,
        Err(error) => {
            err!("error: bench: {error}");
            crate::report::Verdict::Crash.exit_code()
        }
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn bench(options: &BenchOptions) -> io::Result<()> {
    let load_before = load_average();
    let mut benches = Vec::new();
    for path in &options.scenarios {
        let scenario = crate::scenario::load(path).map_err(|e| io::Error::other(e.to_string()))?;
        let name = scenario.name.clone();
        let mut bench = ScenarioBench {
            name: name.clone(),
            path: path.clone(),
            seeds: Vec::new(),
            sweeps: Vec::new(),
        };
        for seed in 1..=options.seeds {
            err!("bench: {name} seed {seed} alone");
            bench
                .seeds
                .push(bench_seed(path, &name, seed, &options.work)?);
        }
        for jobs in [1, 2] {
            err!(
                "bench: {name} sweep of {} seeds, --jobs {jobs}",
                options.sweep_seeds
            );
            bench.sweeps.push(bench_sweep(
                path,
                &name,
                options.sweep_seeds,
                jobs,
                &options.work,
            )?);
        }
        benches.push(bench);
    }
    let reference = benches
        .first()
        .ok_or_else(|| io::Error::other("no scenario to measure"))?;
    let length = if options.long_sweep_seeds > 0 {
        let path = &options.long_sweep_scenario;
        let scenario = crate::scenario::load(path).map_err(|e| io::Error::other(e.to_string()))?;
        let mut sweeps = Vec::new();
        for seeds in [options.sweep_seeds, options.long_sweep_seeds] {
            err!("bench: {} sweep of {seeds} seeds, --jobs 2", scenario.name);
            sweeps.push(bench_sweep(path, &scenario.name, seeds, 2, &options.work)?);
        }
        Some((scenario.name, sweeps))
    } else {
        None
    };
    let load = floor_load(reference);
    let mut floors = Vec::new();
    for run in 1..=options.floor_runs.max(1) {
        err!("bench: madsim's floor, run {run}");
        floors.push(bench_floor(&load, run, &options.work)?);
    }
    for name in [
        "child.out",
        "child.err",
        "sweep.out",
        "sweep.err",
        "floor.out",
        "floor.err",
    ] {
        let _ = fs::remove_file(options.work.join(name));
    }
    let _ = fs::remove_file(options.work.join(crate::report::run_dir::MARKER));
    let _ = fs::remove_dir(&options.work);
    let mut text = render(options, &benches, &load, &floors, length.as_ref());
    let machine_end = text.find("\n## Method").unwrap_or(text.len());
    text.insert_str(
        machine_end,
        &format!(
            "- Load average (1 min) before / after: {load_before} / {} — above 0 means other \
             work shared the cores; the wall and seeds/min figures then understate.\n",
            load_average()
        ),
    );
    if let Some(dir) = options.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    fs::write(&options.out, &text)?;
    out!("{text}");
    err!("wrote {}", options.out.display());
    Ok(())
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.starts_with(prefix)
            .then(|| l.split_once(':').map(|(_, v)| v.trim().to_string()))
            .flatten()
    })
}

fn machine() -> String {
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Cargo puts each profile's binary in a directory named after it (`target/fast/`).
    let built_in = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.file_name()?.to_string_lossy().into_owned()));
    let profile = if cfg!(debug_assertions) {
        "debug (figures are not comparable with a release build)"
    } else if built_in.as_deref() == Some("fast") {
        "fast: release with fat LTO and one codegen unit"
    } else {
        "release"
    };
    format!(
        "- CPU: {cpu} ({cores} cores available)\n- Kernel: {kernel}\n- Date: {date}\n\
         - Commit: {} · build {} ({profile})\n",
        report::git_commit(),
        report::build_id(),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

fn render(
    options: &BenchOptions,
    benches: &[ScenarioBench],
    load: &FloorLoad,
    floors: &[(FloorLoad, Usage)],
    length: Option<&(String, Vec<SweepRun>)>,
) -> String {
    let reference = &benches[0];
    let mut text = String::from(
        "# Simulation benchmark\n\nGenerated by `ksim bench` (src/cli/bench.rs). Do not edit by hand.\n\n",
    );
    let _ = write!(text, "## Machine\n\n{}\n", machine());
    let _ = write!(
        text,
        "## Method\n\n\
         Scenarios: {}. The first, `{}`, is the reference whose counts madsim's floor replays.\n\n\
         - **One seed at a time**: seeds 1..={} of each scenario, each as `ksim run <scenario> \
         --seed N --out <tmp> --json` in a child process of this binary, one after another. \
         Wall time is measured here around the child (process start, simulation, checks and \
         writing the run directory all included); CPU (user + system) and peak RSS \
         (`ru_maxrss`) come from `wait4` on that child alone; simulated time is the verdict's \
         `sim_ms` (setup, faults, heal and drain). A run is single-threaded, so simulated s per \
         wall s is the speed on one core. Bytes per seed: the run directory's files at the end \
         of the run (what `ksim run` keeps).\n\
         - **Sweeps**: seeds 1..={} as one `ksim sweep --jobs 1` and one `ksim sweep --jobs 2` \
         child; seeds/min from the wall time around each child; peak RSS is the whole sweep \
         process's; written bytes are the whole child's write calls (`wchar` of \
         `/proc/<pid>/io`: run directories, reports, stdout) per seed; kept bytes are what the \
         sweep leaves of a passing seed after pruning it.\n\
         - **madsim's floor**: the reference's counters (kept in each run's `verdict.json` under \
         `counters`, outside the trace hash) are summed over its seeds, turned into rates per \
         simulated second and scaled to its mean simulated duration; `ksim bench-floor` then \
         runs on a fresh madsim runtime with as many nodes: every node writes frames of the \
         mean size to the next node in a ring over madsim TCP in as many flushes as ksim made, \
         reads every frame it receives (length, then body), arms as many timers (one \
         `sleep_until` per tick, the work spread evenly over the ticks) and reads, appends and \
         fsyncs a file through its own `SimDisk` with the reference's mean read and write \
         sizes. No encoding, no protocol, no recording, no checks. {} floor runs in child \
         processes, median CPU. The multiple is ksim's CPU per simulated second on the \
         reference (one seed at a time) over the floor's.\n\n",
        benches
            .iter()
            .map(|b| format!("`{}`", b.path.display()))
            .collect::<Vec<_>>()
            .join(", "),
        reference.name,
        options.seeds,
        options.sweep_seeds,
        options.floor_runs.max(1),
    );

    text.push_str(
        "## One seed at a time (one core)\n\n\
         | scenario | seeds | verdicts | sim s / seed | wall s / seed | sim s per wall s | CPU ms per sim s | peak RSS MB (max) | run dir MB / seed |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for bench in benches {
        let n = bench.seeds.len().max(1) as f64;
        let verdicts: Vec<String> = bench
            .seeds
            .iter()
            .map(|s| format!("{}:{}", s.seed, s.verdict))
            .collect();
        let rss = bench
            .seeds
            .iter()
            .map(|s| s.usage.max_rss_kb)
            .max()
            .unwrap_or(0);
        let bytes: u64 = bench.seeds.iter().map(|s| s.run_dir_bytes).sum();
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.1} |",
            bench.name,
            bench.seeds.len(),
            verdicts.join(" "),
            bench.sim_s() / n,
            bench.wall_s() / n,
            bench.sim_s() / bench.wall_s().max(1e-9),
            1000.0 * bench.cpu_s() / bench.sim_s().max(1e-9),
            rss as f64 / 1024.0,
            mb(bytes as f64 / n),
        );
    }
    text.push_str("\nTrace hashes: ");
    let traces: Vec<String> = benches
        .iter()
        .flat_map(|b| {
            b.seeds
                .iter()
                .map(move |s| format!("{} {} `{}`", b.name, s.seed, s.trace))
        })
        .collect();
    text.push_str(&traces.join(" · "));
    text.push_str("\n\n");

    text.push_str(
        "## Sweeps\n\n\
         | scenario | seeds | jobs | passing | wall s | seeds/min | sim s per wall s | CPU s | peak RSS MB | written MB / seed | kept KB / passing seed |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut ratios = Vec::new();
    for bench in benches {
        for sweep in &bench.sweeps {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.1} |",
                bench.name,
                sweep.seeds,
                sweep.jobs,
                sweep.passing,
                sweep.usage.wall_s,
                seeds_per_min(sweep),
                sweep.sim_s / sweep.usage.wall_s.max(1e-9),
                sweep.usage.cpu_s,
                sweep.usage.max_rss_kb as f64 / 1024.0,
                mb(sweep.usage.written as f64 / sweep.seeds.max(1) as f64),
                sweep.kept_per_passing / 1e3,
            );
        }
        let ratio = match bench.sweeps.as_slice() {
            [one, two] => seeds_per_min(two) / seeds_per_min(one).max(1e-9),
            _ => 0.0,
        };
        ratios.push((bench.name.clone(), ratio));
    }
    text.push_str("\n| scenario | seeds/min, jobs 2 / jobs 1 |\n|---|---:|\n");
    for (name, ratio) in &ratios {
        let _ = writeln!(text, "| {name} | {ratio:.2}× |");
    }
    text.push('\n');
    // A long sweep's memory: what a sweep holds per finished seed, times its length.
    let mut growth = None;
    if let Some((name, sweeps)) = length {
        text.push_str(
            "## Sweep length

             The same scenario swept short and long with `--jobs 2`: a sweep holds only a \
             summary of each finished seed, so its peak RSS should not grow with its length.\n\n             | scenario | seeds | wall s | seeds/min | passing | peak RSS MB |\n             |---|---:|---:|---:|---:|---:|\n",
        );
        for sweep in sweeps {
            let _ = writeln!(
                text,
                "| {name} | {} | {:.1} | {:.1} | {} | {:.1} |",
                sweep.seeds,
                sweep.usage.wall_s,
                seeds_per_min(sweep),
                sweep.passing,
                sweep.usage.max_rss_kb as f64 / 1024.0,
            );
        }
        if let [short, long] = sweeps.as_slice() {
            let ratio = long.usage.max_rss_kb as f64 / (short.usage.max_rss_kb as f64).max(1.0);
            let _ = writeln!(
                text,
                "\nPeak RSS, {} seeds / {} seeds: **{ratio:.2}×**.",
                long.seeds, short.seeds
            );
            growth = Some((name.clone(), long.seeds, short.seeds, ratio));
        }
        text.push('\n');
    }

    let sim_s = reference.sim_s().max(1e-9);
    let floor_cpu_ms = median(floors.iter().map(|(_, u)| 1000.0 * u.cpu_s).collect());
    let floor_sim_s = (load.sim_ms as f64 / 1000.0).max(1e-9);
    let floor_per_sim_s = floor_cpu_ms / floor_sim_s;
    let ksim_per_sim_s = 1000.0 * reference.cpu_s() / sim_s;
    let multiple = ksim_per_sim_s / floor_per_sim_s.max(1e-9);
    let floor_did = &floors[floors.len() / 2].0;
    let per_s = |count: u64, secs: f64| count as f64 / secs.max(1e-9);
    let _ = write!(
        text,
        "## madsim's floor ({}, {} nodes, {:.1} simulated s per run)\n\n\
         | per simulated second | ksim (counted) | floor (done) |\n|---|---:|---:|\n",
        reference.name, load.nodes, floor_sim_s,
    );
    let mean = |bytes: u64, count: u64| bytes as f64 / count.max(1) as f64;
    let rows: [(&str, f64, f64); 10] = [
        (
            "frames sent",
            per_s(reference.counter("frames"), sim_s),
            per_s(floor_did.frames, floor_sim_s),
        ),
        (
            "mean frame bytes (length prefix included)",
            mean(
                reference.counter("frame_bytes"),
                reference.counter("frames"),
            ),
            mean(floor_did.frame_bytes, floor_did.frames),
        ),
        (
            "stream flushes",
            per_s(reference.counter("flushes"), sim_s),
            per_s(floor_did.flushes, floor_sim_s),
        ),
        (
            "timers armed",
            per_s(reference.counter("timers"), sim_s),
            per_s(floor_did.timers, floor_sim_s),
        ),
        (
            "disk reads",
            per_s(reference.counter("disk_reads"), sim_s),
            per_s(floor_did.disk_reads, floor_sim_s),
        ),
        (
            "mean read bytes",
            mean(
                reference.counter("disk_read_bytes"),
                reference.counter("disk_reads"),
            ),
            mean(floor_did.disk_read_bytes, floor_did.disk_reads),
        ),
        (
            "disk writes",
            per_s(reference.counter("disk_writes"), sim_s),
            per_s(floor_did.disk_writes, floor_sim_s),
        ),
        (
            "mean write bytes",
            mean(
                reference.counter("disk_write_bytes"),
                reference.counter("disk_writes"),
            ),
            mean(floor_did.disk_write_bytes, floor_did.disk_writes),
        ),
        (
            "fsyncs (file + directory)",
            per_s(
                reference.counter("disk_syncs") + reference.counter("disk_dir_syncs"),
                sim_s,
            ),
            per_s(floor_did.disk_syncs, floor_sim_s),
        ),
        (
            "other disk calls (create, open, rename, remove, truncate, list)",
            per_s(reference.counter("disk_metadata"), sim_s),
            0.0,
        ),
    ];
    for (what, ksim, floor) in rows {
        let _ = writeln!(text, "| {what} | {ksim:.1} | {floor:.1} |");
    }
    let floor_runs: Vec<String> = floors
        .iter()
        .map(|(_, u)| {
            format!(
                "{:.0} ms CPU / {:.0} ms wall",
                1000.0 * u.cpu_s,
                1000.0 * u.wall_s
            )
        })
        .collect();
    let _ = write!(
        text,
        "\nFloor runs: {}; peak RSS {:.1} MB.\n\n\
         | CPU per simulated second | ms |\n|---|---:|\n\
         | ksim, {} (one seed at a time) | {:.2} |\n\
         | madsim's floor (median) | {:.2} |\n\
         | **multiple** | **{:.1}×** |\n\n",
        floor_runs.join(", "),
        floors.iter().map(|(_, u)| u.max_rss_kb).max().unwrap_or(0) as f64 / 1024.0,
        reference.name,
        ksim_per_sim_s,
        floor_per_sim_s,
        multiple,
    );

    let speed = reference.sim_s() / reference.wall_s().max(1e-9);
    let rss_mb = reference
        .seeds
        .iter()
        .map(|s| s.usage.max_rss_kb)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    let kept_mb = reference
        .sweeps
        .iter()
        .map(|s| s.kept_per_passing)
        .fold(0.0, f64::max)
        / 1e6;
    let written_mb = mb(
        reference.seeds.iter().map(|s| s.run_dir_bytes).sum::<u64>() as f64
            / reference.seeds.len().max(1) as f64,
    );
    let sweep_written_mb = reference
        .sweeps
        .iter()
        .map(|s| mb(s.usage.written as f64 / s.seeds.max(1) as f64))
        .fold(0.0, f64::max);
    let ratio = ratios.first().map_or(0.0, |(_, r)| *r);
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    let _ = write!(
        text,
        "## Targets (issue 15, on {})\n\n| target | measured | |\n|---|---:|---|\n\
         | ≥ 150 simulated s per wall s on one core | {speed:.1} | {} |\n\
         | ≤ 4× madsim's floor (CPU per simulated s) | {multiple:.1}× | {} |\n\
         | peak RSS of one seed ≤ 40 MB | {rss_mb:.1} MB | {} |\n\
         | ≤ 2 MB kept per passing sweep seed | {kept_mb:.3} MB | {} |\n\
         | ≤ 2 MB written per sweep seed (failing seeds included) | {sweep_written_mb:.3} MB | {} |\n\
         | seeds/min `--jobs 2` ≥ 1.8× `--jobs 1` | {ratio:.2}× | {} |\n",
        reference.name,
        met(speed >= 150.0),
        met(multiple <= 4.0),
        met(rss_mb <= 40.0),
        met(kept_mb <= 2.0),
        met(sweep_written_mb <= 2.0),
        met(ratio >= 1.8),
    );
    match growth {
        Some((name, long, short, growth)) => {
            let _ = writeln!(
                text,
                "| a 1,000-seed sweep's peak RSS ≤ 1.2× a 10-seed sweep's ({name}, {long} vs {short} seeds) | {growth:.2}× | {} |",
                met(growth <= 1.2)
            );
        }
        None => text.push_str("| a 1,000-seed sweep's peak RSS ≤ 1.2× a 10-seed sweep's | not measured (`--long-sweep-seeds 0`) | |\n"),
    }
    text.push('\n');
    let _ = write!(
        text,
        "## Headline\n\n\
         - reference speed: {speed:.1} simulated s per wall s\n\
         - reference CPU: {ksim_per_sim_s:.2} ms per simulated s\n\
         - floor: {floor_per_sim_s:.2} ms per simulated s\n\
         - floor multiple: {multiple:.1}×\n\
         - reference peak RSS: {rss_mb:.1} MB\n\
         - reference run dir: {written_mb:.1} MB per seed\n\
         - jobs 2 / jobs 1: {ratio:.2}×\n\n\
         ## Reading these figures\n\n\
         - Wall figures move with whatever else the machine runs; CPU per simulated second and \
         the floor multiple move less. Compare ratios within one report, not figures across \
         reports.\n\
         - The seeds/min ratio is bounded by the cores available and by the sweep's own \
         threads (one runtime per seed, one OS thread each) sharing one allocator.\n\
         - The floor replays ksim's call counts as they are: calls that are themselves \
         waste (e.g. a timer per `select!` turn) are paid by the floor too, so the multiple understates \
         how far ksim is from what its load needs; the per-second counts above show them.\n\
         - The floor counts timers as madsim arms them (a sleep polled before its deadline), \
         and counts every stream flush as one delivery; madsim's own per-delivery timers are \
         paid by both sides alike.\n",
    );
    text
}

fn seeds_per_min(sweep: &SweepRun) -> f64 {
    sweep.seeds as f64 / sweep.usage.wall_s.max(1e-9) * 60.0
}
