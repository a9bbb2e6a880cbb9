//! A measurement, not a test: times [`run_checks`](super::run_checks) on recorded run
//! directories and writes what it found, so a change to the checkers can be timed and shown
//! to find the same things (issue 15).
//!
//! ```text
//! KSIM_CHECK_RUNS=/tmp/a:/tmp/b KSIM_CHECK_TAG=new KSIM_CHECK_REPEAT=5 \
//!   cargo test --release --lib check::measure -- --ignored --nocapture
//! ```
//!
//! Each directory is a `ksim run --out` directory (its `scenario.toml`, `events.jsonl`,
//! `history.jsonl` and the nodes' data as the run left them). Per directory it prints the
//! least CPU time of `KSIM_CHECK_REPEAT` runs of the checks, and writes their results to
//! `<dir>/checks.<tag>.json` for diffing against another build's.

use super::{run_checks, CheckInput};
use crate::history::{Event, HistoryEntry};
use serde::de::DeserializeOwned;
use std::path::Path;
use std::time::Duration;

/// This thread's CPU time: on a machine shared with other work, wall time says more about
/// the neighbours than about the checkers.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to write.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// The records of a `.jsonl` file, or why they cannot be read back (some ops do not
/// round-trip through serde's `flatten`).
fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(|line| serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

#[test]
#[ignore = "a measurement: set KSIM_CHECK_RUNS"]
fn time_run_checks() {
    let Ok(dirs) = std::env::var("KSIM_CHECK_RUNS") else {
        return;
    };
    let tag = std::env::var("KSIM_CHECK_TAG").unwrap_or_else(|_| "out".into());
    let repeat: usize = std::env::var("KSIM_CHECK_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        let dir = Path::new(dir);
        let scenario = crate::scenario::load(&dir.join("scenario.toml")).expect("scenario");
        let read = read_jsonl::<Event>(&dir.join("events.jsonl"))
            .and_then(|e| Ok((e, read_jsonl::<HistoryEntry>(&dir.join("history.jsonl"))?)));
        let (events, history) = match read {
            Ok(read) => read,
            Err(error) => {
                println!("{}: skipped: {error}", dir.display());
                continue;
            }
        };
        let input = CheckInput {
            scenario: &scenario,
            events: &events,
            history: &history,
            run_dir: dir,
        };
        let mut best = Duration::MAX;
        let mut results = Vec::new();
        for _ in 0..repeat.max(1) {
            let started = thread_cpu();
            results = run_checks(&input);
            best = best.min(thread_cpu() - started);
        }
        let mut reading = Duration::MAX;
        if scenario.cluster.brokers > 0 {
            for _ in 0..repeat.max(1) {
                let started = thread_cpu();
                drop(super::kafka::read_replica_logs(&input));
                reading = reading.min(thread_cpu() - started);
            }
        }
        println!(
            "{}: {} events, {} history entries: run_checks {:.1} ms CPU (reading replica logs \
             {:.1} ms)",
            dir.display(),
            events.len(),
            history.len(),
            best.as_secs_f64() * 1e3,
            if reading == Duration::MAX {
                0.0
            } else {
                reading.as_secs_f64() * 1e3
            }
        );
        let json = serde_json::to_string_pretty(&results).expect("json");
        std::fs::write(dir.join(format!("checks.{tag}.json")), json).expect("write");
    }
}
