//! The backing of the nodes' disks — real files (`ksim run`) or memory (sweeps) — changes
//! nothing a run reports: the same scenario and seed give the same trace hash, verdict,
//! violations, record and disk counters, and the run directory ends with the same node files
//! (a memory-backed run writes them out after its checks when the seed is kept, and not at
//! all when a sweep's passing seed is not).

mod common;

use common::{scenario_path, scratch};
use ksim::cli::{run_one_as, Keep};
use ksim::disk::Backing;
use ksim::report::{RunResult, Verdict};
use ksim::scenario::load;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under the run directory's node directories, by path relative to the run
/// directory; the file-backed disk's stash (`.ksim-stash/`, removed files a power cut could
/// still bring back) left out: it is no file a restarted process would read.
fn node_files(run_dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.file_name().is_some_and(|n| n == ".ksim-stash") {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.parent() != Some(root) {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(run_dir, run_dir, &mut out);
    out
}

/// Runs `file` seed `seed` in a run directory of its own (`test` tells the tests apart).
fn run(test: &str, file: &str, seed: u64, keep: Keep, backing: Backing) -> (RunResult, PathBuf) {
    let scenario = load(&scenario_path(file)).unwrap();
    let dir = scratch(&format!(
        "backings-{test}-{}-{seed}-{keep:?}-{backing:?}",
        scenario.name
    ));
    let result = run_one_as(&scenario, seed, &dir, keep, backing).unwrap();
    (result, dir)
}

fn violations(result: &RunResult) -> Vec<String> {
    result
        .violations()
        .iter()
        .map(|v| format!("{}: {}", v.check, v.detail))
        .collect()
}

/// Runs `file` seed `seed` on both backings, keeping everything; asserts they agree on
/// everything and returns the verdict and what the power cuts did.
fn agree(file: &str, seed: u64) -> (Verdict, usize) {
    let (files, files_dir) = run("agree", file, seed, Keep::Everything, Backing::Files);
    let (memory, memory_dir) = run("agree", file, seed, Keep::Everything, Backing::Memory);
    let what = format!("{file} seed {seed}");
    assert_eq!(files.trace_hash, memory.trace_hash, "{what}: trace hash");
    assert_eq!(files.verdict, memory.verdict, "{what}: verdict");
    assert_eq!(
        violations(&files),
        violations(&memory),
        "{what}: violations"
    );
    assert_eq!(files.counters, memory.counters, "{what}: counters");
    for record in ["events.jsonl", "history.jsonl"] {
        assert!(
            std::fs::read(files_dir.join(record)).unwrap()
                == std::fs::read(memory_dir.join(record)).unwrap(),
            "{what}: {record} differs"
        );
    }
    let (on_disk, written) = (node_files(&files_dir), node_files(&memory_dir));
    assert!(!on_disk.is_empty(), "{what}: the nodes wrote files");
    assert_eq!(
        on_disk.keys().collect::<Vec<_>>(),
        written.keys().collect::<Vec<_>>(),
        "{what}: node files"
    );
    for (path, bytes) in &on_disk {
        assert!(
            bytes == &written[path],
            "{what}: {} differs",
            path.display()
        );
    }
    let events = std::fs::read_to_string(files_dir.join("events.jsonl")).unwrap();
    let cuts = events.matches("\"power-loss\"").count();
    (files.verdict, cuts)
}

#[test]
fn writers_killed_paused_and_cut_off_run_alike_on_both_backings() {
    let (verdict, cuts) = agree("log-power-loss.toml", 3);
    assert_eq!(verdict, Verdict::Pass);
    assert!(cuts > 0, "the scenario cuts the power");
}

#[test]
fn a_lost_write_is_found_alike_on_both_backings() {
    let (verdict, cuts) = agree("zoo/log-no-fsync.toml", 1);
    assert_eq!(verdict, Verdict::Safety, "the canary fires on seed 1");
    assert!(cuts > 0);
}

#[test]
fn brokers_and_an_ensemble_losing_power_run_alike_on_both_backings() {
    let (verdict, cuts) = agree("power-loss-fsync.toml", 2);
    assert_eq!(verdict, Verdict::Pass);
    assert!(cuts > 0);
    let (verdict, cuts) = agree("zk-power-loss.toml", 1);
    assert_eq!(verdict, Verdict::Pass);
    assert!(cuts > 0);
}

#[test]
fn a_sweep_writes_node_files_only_for_the_seeds_it_keeps() {
    // A failing seed is kept whole: its node files, written after the checks, are the ones
    // a file-backed run leaves.
    let (failing, failing_dir) = run(
        "kept",
        "zoo/log-no-fsync.toml",
        1,
        Keep::SweepRule,
        Backing::Memory,
    );
    assert_eq!(failing.verdict, Verdict::Safety);
    let (_, files_dir) = run(
        "kept",
        "zoo/log-no-fsync.toml",
        1,
        Keep::Everything,
        Backing::Files,
    );
    let written = node_files(&failing_dir);
    assert!(written.keys().any(|p| p.starts_with("writer-2/log")));
    assert!(
        written == node_files(&files_dir),
        "the kept node files differ"
    );

    // A passing seed never writes its node data at all.
    let (passing, passing_dir) = run(
        "kept",
        "log-power-loss.toml",
        3,
        Keep::SweepRule,
        Backing::Memory,
    );
    assert_eq!(passing.verdict, Verdict::Pass);
    assert!(
        passing.counters["disk_write_bytes"] > 0,
        "the writers wrote"
    );
    assert!(node_files(&passing_dir).is_empty());
    assert!(!passing_dir.join("writer-1").exists());
}
