//! Verdicts and the run directory's files.
//!
//! Owns: [`Verdict`] and its exit codes (contract.md), [`RunResult`] (everything one seeded
//! run produced), and writing `verdict.json`, `events.jsonl`, `history.jsonl`, `report.md`
//! and `report.html` (built by [`html`] from [`timeline`]), the provenance a replay compares (which ksim, which commit, which binary,
//! which scenario text), and which directories may be run directories ([`run_dir`]).
//! Reports are derived from the recorded run only; nothing here re-runs or re-checks
//! anything.

pub mod html;
pub mod run_dir;
pub mod timeline;

use crate::broker::controller::ControllerEvent;
use crate::broker::server::BrokerEvent;
use crate::check::{CheckKind, CheckResult, Violation};
use crate::history::{
    Announcement, Crash, Effect, Event, HistoryEntry, Op, PowerLoss, ShellEvent, WorldEvent,
};
use crate::zk::server::ZkServerEvent;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The verdict of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every applicable check passed.
    Pass,
    /// A liveness check failed (exit 3).
    Liveness,
    /// A safety check failed (exit 1).
    Safety,
    /// A node panicked: a broken invariant (exit 4).
    Crash,
}

impl Verdict {
    /// The contract's exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Safety => 1,
            Verdict::Liveness => 3,
            Verdict::Crash => 4,
        }
    }

    /// The contract's name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Safety => "safety",
            Verdict::Liveness => "liveness",
            Verdict::Crash => "crash",
        }
    }

    /// The verdict of a run's checks: a crash dominates, then safety, then liveness.
    /// (`Ord` follows the same severity, so the worst of a sweep is the maximum.)
    pub fn of(checks: &[CheckResult], crash: Option<&Crash>) -> Verdict {
        if crash.is_some() {
            Verdict::Crash
        } else if checks
            .iter()
            .any(|c| !c.passed() && c.kind == CheckKind::Safety)
        {
            Verdict::Safety
        } else if checks.iter().any(|c| !c.passed()) {
            Verdict::Liveness
        } else {
            Verdict::Pass
        }
    }
}

/// Everything one seeded run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// The scenario file the run came from.
    pub scenario_path: PathBuf,
    /// The seed.
    pub seed: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Every check that ran.
    pub checks: Vec<CheckResult>,
    /// A node or the world panicked.
    pub crash: Option<Crash>,
    /// Hash of the ordered events and history.
    pub trace_hash: u64,
    /// Simulated milliseconds.
    pub sim_ms: u64,
    /// Wall milliseconds.
    pub wall_ms: u64,
    /// Counters of what happened.
    pub stats: BTreeMap<String, u64>,
    /// What the run asked of madsim and its disks (`ksim bench` reads them); not part of
    /// the trace.
    pub counters: BTreeMap<String, u64>,
    /// The coverage marks the run hit, with how often ([`crate::coverage`]).
    pub marks: BTreeMap<String, u64>,
    /// The run directory.
    pub run_dir: PathBuf,
    /// The scenario text the run came from (its hash goes into `verdict.json`).
    pub scenario_source: String,
}

/// Where a run came from: ksim's version, the commit and the binary it was built from, and a
/// hash of the scenario text. `ksim replay` compares them before blaming nondeterminism.
pub fn provenance(doc: &mut Value, scenario_source: &str) {
    doc["ksim_version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["git_commit"] = json!(git_commit());
    doc["build_id"] = json!(build_id());
    doc["scenario_hash"] = json!(scenario_hash(scenario_source));
}

/// The git commit this ksim was built from (`-dirty` with uncommitted changes; "unknown"
/// outside a checkout).
pub fn git_commit() -> &'static str {
    env!("KSIM_GIT_COMMIT")
}

/// Identifies the running binary: CRC-32C and length of the executable file ("unknown" if
/// it cannot be read). Two builds of one commit (another profile, uncommitted changes)
/// differ here.
pub fn build_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::env::current_exe()
            .and_then(File::open)
            .and_then(crc32c_and_len)
            .map(|(crc, len)| format!("{crc:08x}-{len}"))
            .unwrap_or_else(|_| "unknown".to_string())
    })
}

/// CRC-32C and length of everything `from` reads, read in chunks (an executable with its
/// debug info is tens of MB: never all of it in memory at once).
fn crc32c_and_len(mut from: impl io::Read) -> io::Result<(u32, u64)> {
    let mut chunk = vec![0u8; 1 << 16];
    let (mut crc, mut len) = (0u32, 0u64);
    loop {
        match from.read(&mut chunk) {
            Ok(0) => return Ok((crc, len)),
            Ok(n) => {
                crc = crc32c::crc32c_append(crc, &chunk[..n]);
                len += n as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// A hash of a scenario's text (FNV-1a, 64-bit, as 16 hex digits): an edit changes it.
pub fn scenario_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in text.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A run stopped by the user (Ctrl-C) before it ended.
pub struct Interrupted<'a> {
    /// Scenario name.
    pub scenario: &'a str,
    /// The scenario text.
    pub scenario_source: &'a str,
    /// The seed.
    pub seed: u64,
    /// The run directory.
    pub run_dir: &'a Path,
    /// Wall milliseconds so far.
    pub wall_ms: u64,
}

/// Writes what an interrupted run recorded so far: `verdict.json` with `"verdict":
/// "interrupted"` (no checks ran), `events.jsonl` and `history.jsonl`.
pub fn write_interrupted(
    run: &Interrupted<'_>,
    events: &[Event],
    history: &[HistoryEntry],
) -> io::Result<()> {
    let sim_us = events
        .last()
        .map(|e| e.at_us)
        .max(history.last().map(|h| h.at_us))
        .unwrap_or(0);
    let mut doc = json!({
        "scenario": run.scenario,
        "seed": run.seed,
        "verdict": "interrupted",
        "violations": [],
        "checks": [],
        "sim_ms": sim_us / 1000,
        "wall_ms": run.wall_ms,
        "stats": stats(events, history),
    });
    provenance(&mut doc, run.scenario_source);
    write_jsonl(
        &run.run_dir.join("events.jsonl"),
        events,
        Event::write_json_line,
    )?;
    write_jsonl(
        &run.run_dir.join("history.jsonl"),
        history,
        HistoryEntry::write_json_line,
    )?;
    fs::write(
        run.run_dir.join("verdict.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )
}

impl RunResult {
    /// Every violation of every check.
    pub fn violations(&self) -> Vec<&Violation> {
        self.checks.iter().flat_map(|c| &c.violations).collect()
    }

    /// Names of the checks that failed.
    pub fn failed_checks(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| !c.passed())
            .map(|c| c.check)
            .collect()
    }

    /// The trace hash as 16 hex digits.
    pub fn trace(&self) -> String {
        format!("{:016x}", self.trace_hash)
    }

    /// The contract's verdict line.
    pub fn verdict_line(&self) -> String {
        format!(
            "verdict: {} scenario={} seed={} trace={} sim={:.1}s wall={:.1}s",
            self.verdict.name(),
            self.scenario,
            self.seed,
            self.trace(),
            self.sim_ms as f64 / 1000.0,
            self.wall_ms as f64 / 1000.0
        )
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run --release -- run {} --seed {}",
            self.scenario_path.display(),
            self.seed
        )
    }

    /// The `verdict.json` document.
    pub fn verdict_json(&self) -> Value {
        let mut doc = json!({
            "scenario": self.scenario,
            "seed": self.seed,
            "verdict": self.verdict,
            "violations": self.violations(),
            "checks": self.checks.iter().map(|c| json!({
                "check": c.check, "kind": c.kind, "passed": c.passed()
            })).collect::<Vec<_>>(),
            "trace_hash": self.trace(),
            "sim_ms": self.sim_ms,
            "wall_ms": self.wall_ms,
            "stats": self.stats,
            "counters": self.counters,
            "marks": self.marks,
        });
        provenance(&mut doc, &self.scenario_source);
        if let Some(crash) = &self.crash {
            doc["crash"] = json!(crash);
        }
        doc
    }
}

/// Counters of a run, from its events and history.
pub fn stats(events: &[Event], history: &[HistoryEntry]) -> BTreeMap<String, u64> {
    let mut stats = BTreeMap::new();
    let mut bump = |key: &str, by: u64| *stats.entry(key.to_string()).or_insert(0) += by;
    for entry in history {
        match &entry.op {
            Op::Append { .. } => bump("appends_invoked", 1),
            Op::AppendOk { .. } => bump("appends_acked", 1),
            Op::Read { .. } => bump("reads", 1),
            Op::ZkCall { .. } => bump("zk_calls", 1),
            Op::ZkReturn { outcome, .. } => match &**outcome {
                crate::history::ZkOutcome::Ok { .. } => bump("zk_ok", 1),
                crate::history::ZkOutcome::Fail { .. } => bump("zk_fail", 1),
                crate::history::ZkOutcome::Unknown { .. } => bump("zk_unknown", 1),
                crate::history::ZkOutcome::NotSent { .. } => bump("zk_not_sent", 1),
            },
            Op::ZkSession { event, .. } => bump(&format!("zk_sessions_{event}"), 1),
            Op::ZkWatch { .. } => bump("zk_watches", 1),
            Op::ZkStart { .. } | Op::ClientStart { .. } | Op::Assign { .. } => {}
            Op::Send { .. } => bump("sends", 1),
            Op::SendReturn { outcome, .. } => match outcome {
                crate::history::SendOutcome::Ok { .. } => bump("sends_acked", 1),
                crate::history::SendOutcome::Sent { .. } => bump("sends_unacked", 1),
                crate::history::SendOutcome::Fail { .. } => bump("sends_failed", 1),
            },
            Op::Poll { records, .. } => {
                bump("polls", 1);
                bump("records_polled", records.len() as u64);
            }
            Op::GroupAssign { .. } => bump("group_assignments", 1),
            Op::Commit { error: None, .. } => bump("commits_stored", 1),
            Op::Commit { error: Some(_), .. } => bump("commits_failed", 1),
            Op::TxnBegin { .. } => bump("txns_begun", 1),
            Op::TxnEnd { commit: true } => bump("txn_commits_asked", 1),
            Op::TxnEnd { commit: false } => bump("txn_aborts_asked", 1),
            Op::TxnEndReturn { error: None } => bump("txns_ended", 1),
            Op::TxnEndReturn { error: Some(_) } => bump("txn_ends_failed", 1),
        }
    }
    for event in events {
        match &event.announced {
            Announcement::World(world) => {
                let WorldEvent::Fault(fault) = &**world else {
                    continue;
                };
                bump("faults", 1);
                if fault.action == "power-loss" {
                    for node in fault.nodes.iter().flatten() {
                        bump("power_losses", 1);
                        let lost = match &node.effect {
                            Effect::PowerLoss(PowerLoss::Cut { bytes_lost, .. }) => *bytes_lost,
                            _ => 0,
                        };
                        bump("unsynced_bytes_lost", lost);
                    }
                }
            }
            Announcement::ZkServer(ZkServerEvent::Leading { .. }) => bump("zk_leaders_elected", 1),
            Announcement::Controller(controller)
                if matches!(**controller, ControllerEvent::ControllerElected { .. }) =>
            {
                bump("controllers_elected", 1)
            }
            Announcement::Broker(BrokerEvent::BecomeLeader { .. }) => bump("partition_leaders", 1),
            Announcement::Broker(BrokerEvent::IsrChanged { .. }) => bump("isr_changes", 1),
            Announcement::Broker(BrokerEvent::Truncate { .. }) => bump("truncations", 1),
            Announcement::ZkServer(ZkServerEvent::Sync { mode, .. }) => {
                bump(&format!("zk_syncs_{mode}"), 1);
            }
            Announcement::ZkServer(ZkServerEvent::SessionExpired { .. }) => {
                bump("zk_sessions_expired_by_leader", 1)
            }
            // A broker's replica log: its recovery is told in words.
            Announcement::Broker(BrokerEvent::LogOpened { .. }) => {
                bump("log_recoveries", 1);
                bump("bytes_truncated_by_recovery", 0);
            }
            Announcement::Shell(shell) => {
                let ShellEvent::LogOpened { recovery, .. } = &**shell else {
                    continue;
                };
                bump("log_recoveries", 1);
                if recovery.truncated_at.is_some() {
                    bump("recoveries_truncated", 1);
                }
                bump("bytes_truncated_by_recovery", recovery.bytes_truncated);
            }
            _ => {}
        }
    }
    bump("events", events.len() as u64);
    bump("history_entries", history.len() as u64);
    stats
}

/// Writes `verdict.json`, `events.jsonl`, `history.jsonl`, `report.md` and `report.html`
/// into the run dir.
pub fn write_run_files(
    result: &RunResult,
    about: &str,
    events: &[Event],
    history: &[HistoryEntry],
) -> io::Result<()> {
    let dir = &result.run_dir;
    write_jsonl(&dir.join("events.jsonl"), events, Event::write_json_line)?;
    write_jsonl(
        &dir.join("history.jsonl"),
        history,
        HistoryEntry::write_json_line,
    )?;
    write_summary_files(result, about, events, history)
}

/// Writes only `verdict.json`, `report.md` and `report.html` into the run dir: what a sweep
/// keeps of a passing seed (with `scenario.toml`, written before the run).
pub fn write_summary_files(
    result: &RunResult,
    about: &str,
    events: &[Event],
    history: &[HistoryEntry],
) -> io::Result<()> {
    let dir = &result.run_dir;
    fs::write(
        dir.join("verdict.json"),
        serde_json::to_string_pretty(&result.verdict_json())? + "\n",
    )?;
    fs::write(dir.join("report.md"), markdown(result, about, events))?;
    fs::write(
        dir.join("report.html"),
        html::html(result, about, events, history),
    )
}

/// Writes one line per item, each appended to a buffer by `line` (the item's JSON), a chunk
/// at a time.
fn write_jsonl<T>(path: &Path, items: &[T], line: impl Fn(&T, &mut Vec<u8>)) -> io::Result<()> {
    const CHUNK: usize = 1 << 16;
    let mut file = File::create(path)?;
    let mut chunk = Vec::with_capacity(CHUNK + 1024);
    for item in items {
        line(item, &mut chunk);
        chunk.push(b'\n');
        if chunk.len() >= CHUNK {
            file.write_all(&chunk)?;
            chunk.clear();
        }
    }
    file.write_all(&chunk)
}

fn secs(us: u64) -> String {
    format!("{:.3}s", us as f64 / 1e6)
}

/// The human report of one run.
pub fn markdown(result: &RunResult, about: &str, events: &[Event]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# {} — seed {}: {}\n",
        result.scenario,
        result.seed,
        result.verdict.name()
    );
    if !about.is_empty() {
        let _ = writeln!(md, "{about}\n");
    }
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| verdict | **{}** |", result.verdict.name());
    let _ = writeln!(md, "| trace hash | `{}` |", result.trace());
    let _ = writeln!(md, "| simulated | {:.3} s |", result.sim_ms as f64 / 1000.0);
    let _ = writeln!(md, "| wall | {:.3} s |", result.wall_ms as f64 / 1000.0);
    let _ = writeln!(md, "| replay | `{}` |\n", result.replay_command());

    if let Some(crash) = &result.crash {
        let _ = writeln!(
            md,
            "## Crash\n\n`{}` panicked at {}: {}\n",
            crash.node,
            secs(crash.at_us),
            crash.message
        );
    }

    let _ = writeln!(md, "## Checks\n\n| check | kind | result |\n|---|---|---|");
    for check in &result.checks {
        let outcome = if check.passed() {
            "pass".to_string()
        } else {
            format!("**FAIL** ({})", check.violations.len())
        };
        let kind = match check.kind {
            CheckKind::Safety => "safety",
            CheckKind::Liveness => "liveness",
        };
        let _ = writeln!(md, "| {} | {kind} | {outcome} |", check.check);
    }
    let violations = result.violations();
    if !violations.is_empty() {
        let _ = writeln!(md, "\n## Violations\n");
        for v in violations {
            let at = v
                .at_ms
                .map(|ms| format!(" at {:.3}s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let _ = writeln!(md, "- **{}**{at}: {}", v.check, v.detail);
        }
    }

    let _ = writeln!(
        md,
        "\n## Timeline\n\n| at | node | event | detail |\n|---|---|---|---|"
    );
    for event in events.iter().filter(|e| {
        e.node == "world"
            || matches!(
                &e.announced,
                Announcement::Shell(s) if s.is_failure() || matches!(**s, ShellEvent::Crash { .. })
            )
    }) {
        let (kind, detail) = event.announced.kind_and_detail();
        let detail = if detail.is_null() {
            String::new()
        } else {
            detail.to_string().replace('|', "\\|")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {kind} | `{}` |",
            secs(event.at_us),
            event.node,
            detail
        );
    }

    let _ = writeln!(md, "\n## Stats\n\n| counter | value |\n|---|---|");
    for (key, value) in &result.stats {
        let _ = writeln!(md, "| {key} | {value} |");
    }
    md
}

/// Tests' hand-made records: one JSON value per non-blank line (as in `events.jsonl` and
/// `history.jsonl`), panicking with the line that does not parse.
#[cfg(test)]
pub(crate) fn jsonl_lines<T: serde::de::DeserializeOwned>(lines: &str) -> Vec<T> {
    lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_id_crc_read_in_chunks_is_the_crc_of_the_whole() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        assert_eq!(
            crc32c_and_len(&bytes[..]).unwrap(),
            (crc32c::crc32c(&bytes), bytes.len() as u64)
        );
        assert_eq!(crc32c_and_len(&[][..]).unwrap(), (0, 0));
    }
}
