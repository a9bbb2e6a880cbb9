//! Swarm testing in CI: a fixed handful of `ksim swarm` seeds pass (each draws a whole
//! scenario from the safe configuration space), the scenario a seed writes into its run
//! directory replays it, and every failure the swarm found on the way stays fixed
//! (`tests/data/swarm/`: the drawn scenario that failed, run at the seed it failed with).
//! Bigger sweeps are a command: `ksim swarm --seeds 1..2000`.

mod common;

use common::scratch;
use ksim::cli::{run_one, run_swarm_seed};
use ksim::report::Verdict;
use ksim::scenario::load;
use std::path::Path;

/// The seeds CI runs (a new seed is a new commit).
const CI_SEEDS: std::ops::RangeInclusive<u64> = 1..=8;

#[test]
fn a_fixed_handful_of_swarm_seeds_pass() {
    let dir = scratch("swarm-ci");
    for seed in CI_SEEDS {
        let result = run_swarm_seed(seed, &dir).unwrap();
        assert_eq!(
            result.verdict,
            Verdict::Pass,
            "swarm seed {seed} ({}): {:?}",
            result.scenario_path.display(),
            result.violations()
        );
    }
}

#[test]
fn the_drawn_scenario_in_the_run_directory_replays_the_seed() {
    let dir = scratch("swarm-replay");
    let first = run_swarm_seed(3, &dir).unwrap();
    let saved = dir.join("swarm-3").join("scenario.toml");
    let scenario = load(&saved).unwrap();
    assert_eq!(scenario.seeds.first, 3);
    let again = run_one(&scenario, 3, &dir.join("again")).unwrap();
    assert_eq!(first.trace_hash, again.trace_hash);
}

#[test]
fn every_failure_the_swarm_found_stays_fixed() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/swarm");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let dir = scratch("swarm-regressions");
    for file in files {
        let scenario = load(&file).unwrap();
        let seed = scenario.seeds.first;
        let result = run_one(&scenario, seed, &dir.join(&scenario.name)).unwrap();
        assert_eq!(
            result.verdict,
            Verdict::Pass,
            "{} seed {seed} ({}): {:?}",
            file.display(),
            scenario.about,
            result.violations()
        );
    }
}
