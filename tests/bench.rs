//! `ksim bench` as a user runs it, with tiny settings: the report has its sections, the
//! counters that drive madsim's floor are non-zero, the floor did what was counted, and
//! the ratios parse. No timing is asserted (figures depend on the machine).

use std::path::Path;
use std::process::Command;

const TINY: &str = "tests/data/bench-tiny.toml";

/// The number in a `- <label>: <number><unit>` headline line.
fn headline(report: &str, label: &str) -> f64 {
    let line = report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("- {label}: ")))
        .unwrap_or_else(|| panic!("no headline {label:?} in:\n{report}"));
    let number: String = line
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("{label}: {line:?} is not a number"))
}

/// A row of the floor's table: (ksim's figure, the floor's).
fn floor_row(report: &str, what: &str) -> (f64, f64) {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("| {what} |")))
        .unwrap_or_else(|| panic!("no floor row {what:?}"));
    let cells: Vec<f64> = line
        .split('|')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    (cells[0], cells[1])
}

/// The figures of column `name` of the sweeps' table, one per sweep.
fn sweep_column(report: &str, name: &str) -> Vec<f64> {
    let mut lines = report.lines().skip_while(|l| *l != "## Sweeps").skip(2);
    let header: Vec<&str> = lines.next().expect("a header").split('|').collect();
    let at = header
        .iter()
        .position(|c| c.trim() == name)
        .unwrap_or_else(|| panic!("no column {name:?} in {header:?}"));
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(at).unwrap().trim().parse().unwrap())
        .collect()
}

/// `ksim bench` of the tiny scenario, one seed and one floor run, into `out` over `work`.
fn tiny_bench(out: &Path, work: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(["bench", "--scenario", TINY, "--seeds", "1"])
        .args(["--sweep-seeds", "1", "--floor-runs", "1"])
        .args([
            "--long-sweep-scenario",
            TINY,
            "--long-sweep-seeds",
            "3",
            "--out",
        ])
        .arg(out)
        .arg("--work")
        .arg(work)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ksim binary runs")
}

#[test]
fn bench_writes_a_report_with_every_section_and_a_floor_that_replays_the_counts() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-tiny");
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("sim-bench.md");
    let output = tiny_bench(&out, &dir.join("work"));
    assert!(
        output.status.success(),
        "ksim bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = std::fs::read_to_string(&out).expect("the report is written to --out");
    for section in [
        "## Machine",
        "## Method",
        "## One seed at a time (one core)",
        "## Sweeps",
        "## Sweep length",
        "## madsim's floor",
        "## Targets",
        "## Headline",
    ] {
        assert!(report.contains(section), "missing {section:?}");
    }
    assert!(
        report.contains("| bench-tiny | 1 | 1:pass |"),
        "the seed ran and passed"
    );
    assert!(
        !dir.join("work").exists(),
        "the scratch directory is removed"
    );

    for label in [
        "reference speed",
        "reference CPU",
        "floor",
        "floor multiple",
        "reference peak RSS",
        "jobs 2 / jobs 1",
    ] {
        assert!(headline(&report, label) > 0.0, "{label} is positive");
    }
    assert!(headline(&report, "reference run dir") >= 0.0);

    // A sweep's bytes written per seed are measured (on Linux, from /proc) and are a
    // fraction of a kept run directory: its passing seeds write no node data.
    let written = sweep_column(&report, "written MB / seed");
    assert_eq!(written.len(), 2, "one figure per sweep (--jobs 1 and 2)");
    if cfg!(target_os = "linux") {
        let run_dir_mb = headline(&report, "reference run dir");
        for mb in written {
            assert!(mb > 0.0, "the sweep wrote its summaries");
            assert!(
                mb < run_dir_mb,
                "{mb} MB written per seed, {run_dir_mb} per run dir"
            );
        }
    }

    // The sweep-length measurement: a short and a long sweep of the tiny scenario, their
    // peak RSS compared.
    assert!(report.contains("| bench-tiny | 3 |"), "the long sweep ran");
    let growth: f64 = report
        .lines()
        .find_map(|l| l.strip_prefix("Peak RSS, 3 seeds / 1 seeds: **"))
        .and_then(|l| l.strip_suffix("×**."))
        .expect("the sweep-length ratio")
        .parse()
        .unwrap();
    assert!(growth > 0.0, "{growth}");
    assert!(report.contains(
        "| a 1,000-seed sweep's peak RSS ≤ 1.2× a 10-seed sweep's (bench-tiny, 3 vs 1 seeds) |"
    ));

    // The counters the floor replays are non-zero, and the floor did as many (frames and
    // flushes exactly, timers within the ticks' rounding).
    for what in [
        "frames sent",
        "stream flushes",
        "timers armed",
        "disk writes",
    ] {
        let (ksim, floor) = floor_row(&report, what);
        assert!(ksim > 0.0, "{what}: counted in the run");
        assert!(
            (floor - ksim).abs() <= 0.02 * ksim + 1.0,
            "{what}: the floor did {floor}/s, ksim {ksim}/s"
        );
    }
    let (ksim, floor) = floor_row(&report, "mean frame bytes (length prefix included)");
    assert!(
        ksim > 4.0 && (floor - ksim).abs() <= 4.0,
        "frame sizes {ksim} vs {floor}"
    );
}

/// The counters sit beside the record: a run with them gives the trace it always gave, and
/// the same seed counts the same.
#[test]
fn counters_are_in_verdict_json_and_deterministic() {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-counters");
    let _ = std::fs::remove_dir_all(&base);
    let mut seen = Vec::new();
    for copy in ["a", "b"] {
        let run_dir = base.join(copy);
        let status = Command::new(env!("CARGO_BIN_EXE_ksim"))
            .args(["run", TINY, "--seed", "3", "--json", "--out"])
            .arg(&run_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("the ksim binary runs")
            .status;
        assert!(status.success());
        let verdict: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("verdict.json")).unwrap())
                .unwrap();
        let counters = verdict["counters"].clone();
        for key in [
            "frames",
            "frame_bytes",
            "flushes",
            "timers",
            "nodes",
            "disk_writes",
            "disk_syncs",
        ] {
            assert!(
                counters[key].as_u64().unwrap_or(0) > 0,
                "{key} counted: {counters}"
            );
        }
        seen.push((verdict["trace_hash"].clone(), counters));
    }
    assert_eq!(seen[0], seen[1], "same seed, same trace and same counts");
}

/// A `--work` directory holding someone else's files is refused (exit 2) and left as it was.
#[test]
fn bench_refuses_a_work_directory_it_did_not_create() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-strangers");
    let _ = std::fs::remove_dir_all(&dir);
    let work = dir.join("work");
    std::fs::create_dir_all(work.join("bench-tiny-1")).unwrap();
    std::fs::write(work.join("bench-tiny-1").join("notes.txt"), "mine").unwrap();
    let output = tiny_bench(&dir.join("sim-bench.md"), &work);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(work.join("bench-tiny-1").join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!dir.join("sim-bench.md").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
