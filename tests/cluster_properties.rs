//! Property: in the safe configuration (acks=all, idempotence, an fsync per record, clean
//! elections only, fenced offset commits, processing before committing) every check passes,
//! whatever small cluster, topic, consumer group and fault schedule proptest draws. A failing case shrinks (fewer faults, smaller clusters) and is printed
//! as the scenario file that reproduces it with `ksim run <file> --seed <seed>`.
//!
//! Each case is a whole simulated run, so the case count is fixed and small; bigger
//! explorations are `ksim sweep` over `sim-scenarios/nemesis.toml`.

use ksim::cli::run_one;
use ksim::report::Verdict;
use ksim::scenario::parse;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::fmt::Write;
use std::path::Path;

/// One drawn `[[fault]]`.
#[derive(Clone, Debug)]
struct DrawnFault {
    at_s: u32,
    action: &'static str,
    target: String,
}

/// One drawn scenario.
#[derive(Clone, Debug)]
struct Drawn {
    zookeepers: u32,
    brokers: u32,
    partitions: u32,
    replication_factor: u32,
    min_insync: u32,
    producers: u32,
    consumer: bool,
    /// A consumer group `billing`: its members, and whether it rebalances cooperatively.
    group: Option<(u32, bool)>,
    faults: Vec<DrawnFault>,
}

const DURATION_S: u32 = 30;

impl Drawn {
    /// The scenario file; `broken` drops the fsync per record and cuts every broker's power
    /// mid-run (the no-fsync-power-loss zoo entry), to prove the property can fail.
    fn toml(&self, broken: bool) -> String {
        let mut text = String::new();
        let _ = write!(
            text,
            "name = \"drawn\"\nduration = \"{DURATION_S}s\"\nheal = \"40s\"\n\n\
             [cluster]\nzookeepers = {}\nbrokers = {}\n\n\
             [cluster.zookeeper]\ntickTime = 500\n\n\
             [cluster.broker]\n{}\"replica.lag.time.max.ms\" = 10000\n\
             \"offsets.topic.num.partitions\" = 3\n\
             \"group.initial.rebalance.delay.ms\" = 1000\n\n\
             [[topic]]\nname = \"orders\"\npartitions = {}\n\"replication.factor\" = {}\n\
             \"min.insync.replicas\" = {}\n\n\
             [[producer]]\ncount = {}\ntopic = \"orders\"\nrate = 40\nkeys = 10\n\
             [producer.config]\nacks = \"all\"\n\"enable.idempotence\" = true\n",
            self.zookeepers,
            self.brokers,
            if broken {
                ""
            } else {
                "\"log.flush.interval.messages\" = 1\n"
            },
            self.partitions,
            self.replication_factor,
            self.min_insync,
            self.producers,
        );
        if self.consumer {
            text.push_str("\n[[consumer]]\ncount = 1\ntopics = [\"orders\"]\n");
        }
        if let Some((members, cooperative)) = self.group {
            let _ =
                write!(
                text,
                "\n[[consumer]]\ncount = {members}\ngroup = \"billing\"\ntopics = [\"orders\"]\n\
                 [consumer.config]\n\"partition.assignment.strategy\" = \"{}\"\n\
                 \"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 1000\n\
                 \"auto.commit.interval.ms\" = 1000\n",
                if cooperative { "cooperative-sticky" } else { "range" }
            );
        }
        let mut faults = self.faults.clone();
        if broken {
            faults.push(DrawnFault {
                at_s: 15,
                action: "power-loss",
                target: "all-brokers".into(),
            });
            faults.push(DrawnFault {
                at_s: 16,
                action: "restart",
                target: "killed".into(),
            });
        }
        // Shrinking may drop the group or members under a fault that named them.
        let members = self.group.map_or(0, |(m, _)| m);
        faults.retain(|f| match f.target.strip_prefix("consumer-") {
            Some(n) => n.parse::<u32>().is_ok_and(|n| n <= members + 1),
            None => members > 0 || !f.target.contains("coordinator("),
        });
        faults.sort_by_key(|f| f.at_s);
        for f in faults {
            let _ = write!(
                text,
                "\n[[fault]]\nat = \"{}s\"\naction = \"{}\"\n",
                f.at_s, f.action
            );
            if !f.target.is_empty() {
                let _ = writeln!(text, "target = \"{}\"", f.target);
            }
        }
        text
    }
}

fn fault(brokers: u32, partitions: u32, members: u32) -> impl Strategy<Value = DrawnFault> {
    let mut targets: Vec<String> = vec![
        "controller".into(),
        "random-broker".into(),
        "zk-leader".into(),
        "random-zk".into(),
    ];
    targets.extend((1..=brokers).map(|b| format!("broker-{b}")));
    targets.extend((0..partitions).map(|p| format!("leader(orders/{p})")));
    if members > 0 {
        targets.push("coordinator(billing)".into());
    }
    let mut node_targets = targets.clone();
    // Group members crash and stall too (the assign-mode reader, if any, is consumer-1).
    node_targets.extend((1..=members).map(|m| format!("consumer-{}", m + 1)));
    let node_fault = (
        1..DURATION_S,
        prop::sample::select(vec!["kill", "power-loss", "pause"]),
        prop::sample::select(node_targets),
    )
        .prop_map(|(at_s, action, target)| DrawnFault {
            at_s,
            action,
            target,
        });
    let isolate =
        (1..DURATION_S, prop::sample::select(targets)).prop_map(|(at_s, target)| DrawnFault {
            at_s,
            action: "partition",
            target: format!("isolate({target})"),
        });
    let shape = (
        1..DURATION_S,
        prop::sample::select(vec!["halves", "bridge"]),
    )
        .prop_map(|(at_s, target)| DrawnFault {
            at_s,
            action: "partition",
            target: target.into(),
        });
    // Undo steps, so that faults come and go within the fault phase.
    let undo = (
        1..DURATION_S,
        prop::sample::select(vec![
            ("restart", "killed"),
            ("heal", ""),
            ("resume", "random-broker"),
        ]),
    )
        .prop_map(|(at_s, (action, target))| DrawnFault {
            at_s,
            action,
            target: target.into(),
        });
    prop_oneof![3 => node_fault, 1 => isolate, 1 => shape, 3 => undo]
}

fn drawn() -> impl Strategy<Value = Drawn> {
    let group = prop::option::of((1u32..=3, any::<bool>()));
    (
        prop::sample::select(vec![1u32, 3]),
        2u32..=4,
        1u32..=3,
        group,
    )
        .prop_flat_map(|(zookeepers, brokers, partitions, group)| {
            let rf = 1..=brokers.min(3);
            let members = group.map_or(0, |(m, _)| m);
            (
                Just(zookeepers),
                Just(brokers),
                Just(partitions),
                rf,
                1u32..=2,
                Just(group),
                prop::collection::vec(fault(brokers, partitions, members), 0..8),
            )
        })
        .prop_map(
            |(zookeepers, brokers, partitions, rf, producers, group, faults)| Drawn {
                zookeepers,
                brokers,
                partitions,
                replication_factor: rf,
                min_insync: rf.min(2),
                producers,
                // consumer-1 is always the assign-mode reader, so drawn targets stay valid
                // while shrinking.
                consumer: true,
                group,
                faults,
            },
        )
}

/// Runs `cases` drawn scenarios; the first failure, shrunk, as proptest reports it.
fn explore(name: &str, cases: u32, broken: bool) -> Result<(), String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let config = Config {
        cases,
        max_shrink_iters: 40,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed: CI runs the same cases every time (a new case is a new commit).
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&(drawn(), 1u64..1000), |(drawn, seed)| {
        let text = drawn.toml(broken);
        let scenario = parse(Path::new("drawn.toml"), text.as_bytes())
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
    let failure = explore("cluster-properties-broken", 24, true).expect_err("the property held");
    assert!(failure.contains("lost-write"), "{failure}");
    assert!(failure.contains("--- drawn.toml"), "{failure}");
    assert!(failure.contains("target = \"all-brokers\""), "{failure}");
    let shrunk = failure.matches("[[fault]]").count();
    assert!(shrunk <= 4, "not shrunk: {failure}");
}
