//! Property: every scenario of the safe configuration space passes every check. The space is
//! `ksim swarm`'s ([`ksim::scenario::swarm`]): here proptest hands the drawing a list of
//! choices instead of a seeded RNG, so a failing case shrinks (smaller numbers, fewer of
//! them: fewer nodes, topics, groups and faults) and is printed as the scenario file that
//! reproduces it with `ksim run <file> --seed <seed>`.
//!
//! Each case is a whole simulated run, so the case count is fixed and small; bigger
//! explorations are `ksim swarm --seeds A..B`.

use ksim::cli::run_one;
use ksim::report::Verdict;
use ksim::scenario::swarm::{self, Choices, Drawn, DrawnFault};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::Path;

/// Breaks a drawn scenario the way the `no-fsync-power-loss` zoo entry does: no fsync per
/// record, and every broker's power cut in the middle of the fault phase.
fn break_it(drawn: &mut Drawn) {
    drawn.cluster.fsync_per_record = false;
    let mid = drawn.duration_s / 2;
    drawn.faults.push(DrawnFault {
        at_s: mid,
        action: "power-loss",
        target: "all-brokers".into(),
    });
    drawn.faults.push(DrawnFault {
        at_s: mid + 1,
        action: "restart",
        target: "killed".into(),
    });
    drawn.faults.sort_by_key(|f| f.at_s);
}

/// Runs `cases` drawn scenarios; the first failure, shrunk, as proptest reports it.
fn explore(name: &str, cases: u32, broken: bool) -> Result<(), String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        cases,
        max_shrink_iters: 40,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed: CI runs the same cases every time (a new case is a new commit).
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (prop::collection::vec(any::<u64>(), 0..80), 1u64..1000);
    let result = runner.run(&strategy, |(choices, seed)| {
        let mut drawn = swarm::draw(seed, &mut Choices::new(&choices));
        if broken {
            break_it(&mut drawn);
        }
        let text = drawn.toml();
        let scenario = drawn
            .scenario()
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let outcome =
            run_one(&scenario, seed, &dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            outcome.verdict,
            Verdict::Pass,
            "seed {} of this scenario failed: {:?}\n--- drawn.toml (ksim run drawn.toml --seed {}) ---\n{}",
            seed,
            outcome.violations(),
            seed,
            text
        );
        Ok(())
    });
    result.map_err(|failure| failure.to_string())
}

#[test]
fn every_check_passes_in_the_safe_configuration() {
    if let Err(failure) = explore("cluster-properties", 24, false) {
        panic!("{failure}");
    }
}

/// The property can fail: without an fsync per record a correlated power loss loses
/// acknowledged writes, and the failure comes back shrunk, as a scenario file.
#[test]
fn a_broken_configuration_fails_and_is_printed_as_a_scenario() {
    let failure = explore("cluster-properties-broken", 12, true).expect_err("the property held");
    assert!(failure.contains("lost-write"), "{failure}");
    assert!(failure.contains("--- drawn.toml"), "{failure}");
    assert!(failure.contains("target = \"all-brokers\""), "{failure}");
    let shrunk = failure.matches("[[fault]]").count();
    assert!(shrunk <= 4, "not shrunk: {failure}");
}
