//! Valid scenario files map to the model the simulator runs: names, counts, durations,
//! configs, faults in time order with their lines, node names.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ksim::scenario::CheckName;
use ksim::scenario::{load, parse, BrokerConfig, FaultAction, Legacy, Scenario, SeedRange, Target};

/// The contract's writer example, with faults deliberately out of time order.
const WRITERS: &str = r#"name = "log-power-loss"
about = "Writers append with fsync per record while the schedule kills, restarts and cuts power."
duration = "30s"
heal = "20s"
seeds = "1..200"

[cluster.broker]
"log.segment.bytes" = 1048576
"log.retention.ms" = -1

[[writer]]
count = 3
rate = 200
[writer.config]
"log.flush.interval.messages" = 1
"log.segment.bytes" = 65536

[[writer]]
count = 2
rate = 50

[[fault]]
at = "12s"
action = "restart"
target = "killed"

[[fault]]
at = "5s"
action = "power-loss"
target = "writer-1"

[[fault]]
at = "5s"
action = "kill"
target = "random-writer"

[[fault]]
at = "30s"
action = "pause"
target = "all-writers"

[[fault]]
at = "250ms"
action = "resume"
target = "writer-5"

[expect]
fails = "lost-write"
tolerate = ["inconsistent-offsets"]
"#;

fn writers() -> Scenario {
    parse(
        Path::new("sim-scenarios/log-power-loss.toml"),
        WRITERS.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn top_level_values_map_to_the_model() {
    let s = writers();
    assert_eq!(s.name, "log-power-loss");
    assert!(s.about.starts_with("Writers append"));
    assert_eq!(s.duration, Duration::from_secs(30));
    assert_eq!(s.heal, Duration::from_secs(20));
    assert_eq!(
        s.seeds,
        SeedRange {
            first: 1,
            last: 200
        }
    );
    assert_eq!(s.seeds.len(), 200);
    assert_eq!(s.source, WRITERS, "the source is the exact file text");
    assert_eq!(s.path, PathBuf::from("sim-scenarios/log-power-loss.toml"));
    assert!(s.nemesis.is_none());
    assert_eq!(s.legacy, Legacy::default());
    assert!(s.topics.is_empty() && s.producers.is_empty() && s.consumers.is_empty());
}

#[test]
fn writers_keep_their_counts_rates_and_log_config() {
    let s = writers();
    assert_eq!(s.writers.len(), 2);
    assert_eq!((s.writers[0].count, s.writers[0].rate), (3, 200));
    assert_eq!((s.writers[1].count, s.writers[1].rate), (2, 50));
    assert_eq!(
        s.writers[0].config,
        BrokerConfig {
            log_flush_interval_messages: Some(1),
            log_segment_bytes: Some(65536),
            ..BrokerConfig::default()
        }
    );
    assert_eq!(s.writers[1].config, BrokerConfig::default());
    // The writer's own settings win over [cluster.broker]; the rest comes from there.
    assert_eq!(
        s.writers[0].config.merged_over(&s.cluster.broker),
        BrokerConfig {
            log_flush_interval_messages: Some(1),
            log_segment_bytes: Some(65536),
            log_retention_ms: Some(-1),
            ..BrokerConfig::default()
        }
    );
}

#[test]
fn writers_are_numbered_across_tables_and_are_the_only_nodes() {
    let s = writers();
    let expected: Vec<String> = (1..=5).map(|i| format!("writer-{i}")).collect();
    assert_eq!(s.writer_names(), expected);
    assert_eq!(s.node_names(), expected);
    assert_eq!((s.cluster.zookeepers, s.cluster.brokers), (0, 0));
}

#[test]
fn faults_are_sorted_by_time_stably_and_remember_their_lines() {
    let s = writers();
    let summary: Vec<(u64, FaultAction, String, usize)> = s
        .faults
        .iter()
        .map(|f| {
            let target = f.target.as_ref().map(Target::to_string).unwrap_or_default();
            (f.at.as_millis() as u64, f.action, target, f.line)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (250, FaultAction::Resume, "writer-5".to_string(), 42),
            (5_000, FaultAction::PowerLoss, "writer-1".to_string(), 27),
            (5_000, FaultAction::Kill, "random-writer".to_string(), 32),
            (12_000, FaultAction::Restart, "killed".to_string(), 22),
            (30_000, FaultAction::Pause, "all-writers".to_string(), 37),
        ]
    );
    for fault in &s.faults {
        let line = WRITERS.lines().nth(fault.line - 1).unwrap();
        assert_eq!(line, "[[fault]]");
        assert!(fault.sides.is_none() && fault.rate.is_none());
    }
    assert_eq!(s.faults[1].target, Some(Target::Node("writer-1".into())));
}

#[test]
fn expect_names_checks_of_the_contract() {
    let expect = writers().expect.unwrap();
    assert_eq!(expect.fails, "lost-write");
    assert_eq!(expect.tolerate, vec!["inconsistent-offsets".to_string()]);
    assert!(CheckName::parse(&expect.fails).is_some());
}

#[test]
fn optional_keys_take_their_defaults() {
    let text =
        "name = \"minimal\"\nduration = \"0s\"\nheal = \"1m\"\n[[writer]]\ncount = 1\nrate = 1\n";
    let s = parse(Path::new("minimal.toml"), text.as_bytes()).unwrap();
    assert_eq!(s.about, "");
    assert_eq!(s.duration, Duration::ZERO);
    assert_eq!(s.heal, Duration::from_secs(60));
    assert_eq!(
        s.seeds,
        SeedRange {
            first: 1,
            last: 100
        },
        "the contract's default range"
    );
    assert!(s.faults.is_empty() && s.expect.is_none());
    assert_eq!(s.node_names(), vec!["writer-1".to_string()]);
}

#[test]
fn a_fault_exactly_at_the_end_of_the_fault_phase_is_allowed() {
    let text = "name = \"edge\"\nduration = \"10s\"\nheal = \"1s\"\nseeds = 7\n\
                [[writer]]\ncount = 1\nrate = 1\n\
                [[fault]]\nat = \"10000ms\"\naction = \"kill\"\ntarget = \"writer-1\"\n";
    let s = parse(Path::new("edge.toml"), text.as_bytes()).unwrap();
    assert_eq!(s.faults[0].at, s.duration);
    assert_eq!(s.seeds, SeedRange { first: 7, last: 7 });
}

#[test]
fn legacy_switches_that_are_off_are_accepted() {
    let text = "name = \"legacy-off\"\nduration = \"1s\"\nheal = \"1s\"\n\
                [[writer]]\ncount = 1\nrate = 1\n[legacy]\ntruncate-to-hw = false\n";
    let s = parse(Path::new("legacy.toml"), text.as_bytes()).unwrap();
    assert_eq!(s.legacy, Legacy::default());
}

/// `[legacy] no-broker-epoch` (KIP-380) runs now: it reaches every broker's controller
/// config, and nothing else.
#[test]
fn the_no_broker_epoch_switch_reaches_the_controllers() {
    let scenario =
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-scenarios/zoo/fast-bounce.toml"))
            .unwrap();
    assert!(scenario.legacy.no_broker_epoch);
    let config = ksim::scenario::plan::broker_config(&scenario, ksim::broker::BrokerId(2));
    assert!(config.controller.legacy_no_broker_epoch);
    assert!(!config.controller.legacy_unfenced_writes);
    let off = Legacy {
        no_broker_epoch: true,
        ..Legacy::default()
    };
    assert_eq!(scenario.legacy, off, "no other legacy switch");
}

/// `[legacy] no-epoch-bump-per-transaction` makes every broker's transaction coordinator
/// run transaction version 1 (no epoch bump at EndTxn, KIP-890 part 2 off).
#[test]
fn the_no_epoch_bump_switch_turns_transaction_version_2_off() {
    let text = "name = \"tv1\"\nduration = \"1s\"\nheal = \"1s\"\n\
                [cluster]\nzookeepers = 1\nbrokers = 1\n[cluster.broker]\n\
                \"transaction.state.log.min.isr\" = 1\n[[topic]]\nname = \"orders\"\npartitions = 1\n\
                [[producer]]\ncount = 1\ntopic = \"orders\"\nrate = 1\n\
                [producer.config]\n\"transactional.id\" = \"pay\"\n\
                [legacy]\nno-epoch-bump-per-transaction = true\n";
    let scenario = parse(Path::new("tv1.toml"), text.as_bytes()).unwrap();
    assert!(scenario.legacy.no_epoch_bump_per_transaction);
    let config = ksim::scenario::plan::broker_config(&scenario, ksim::broker::BrokerId(1));
    assert!(!config.txn_coordinator.transaction_version_2);
    let default = parse(
        Path::new("tv2.toml"),
        text.replace("no-epoch-bump-per-transaction = true", "")
            .as_bytes(),
    )
    .unwrap();
    let config = ksim::scenario::plan::broker_config(&default, ksim::broker::BrokerId(1));
    assert!(config.txn_coordinator.transaction_version_2);
}

#[test]
fn load_reads_the_file_and_keeps_its_path() {
    let dir = std::env::temp_dir().join(format!("ksim-scenario-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("writers.toml");
    std::fs::write(&path, WRITERS).unwrap();
    let s = load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(s.path, path);
    assert_eq!(s.source, WRITERS);
}

/// Every scenario shipped in `sim-scenarios/` (recursively) loads. Vacuous while the
/// directory is empty or missing, but it always walks it.
#[test]
fn every_shipped_scenario_loads() {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-scenarios"),
        &mut files,
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| load(path).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// A `heal` shorter than what the scenario's own sessions can need is a warning (the run
/// still happens): with Kafka's default `session.timeout.ms` (45 s) a member killed while
/// its JoinGroup is held needs about two sessions to leave.
#[test]
fn a_heal_under_what_the_sessions_can_need_is_warned_about() {
    let text = |heal: &str, session: &str| {
        format!(
            "name = \"g\"\nduration = \"30s\"\nheal = \"{heal}\"\n\
             [cluster]\nzookeepers = 1\nbrokers = 1\n\
             [cluster.zookeeper]\ntickTime = 500\n\
             [[topic]]\nname = \"orders\"\npartitions = 1\n\
             [[consumer]]\ncount = 2\ngroup = \"billing\"\ntopics = [\"orders\"]\n{session}"
        )
    };
    let load = |t: String| parse(Path::new("g.toml"), t.as_bytes()).unwrap();
    // Default session: 10 s (the brokers' ZooKeeper session at tickTime 500) + 2 x 45 s + 3 s.
    let short = load(text("60s", ""));
    assert_eq!(short.session_recovery_bound(), Duration::from_secs(103));
    let warnings = short.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("g.toml: heal (60s) is under the 103s"),
        "{}",
        warnings[0]
    );
    // Shorter sessions, or a longer heal: nothing to say.
    let config = "[consumer.config]\n\"session.timeout.ms\" = 6000\n";
    assert!(load(text("60s", config)).warnings().is_empty());
    assert!(load(text("2m", "")).warnings().is_empty());
}

/// Every shipped scenario leaves its sessions enough heal.
#[test]
fn shipped_scenarios_give_their_sessions_enough_heal() {
    fn walk(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                let scenario = load(&path).unwrap();
                assert!(scenario.warnings().is_empty(), "{:?}", scenario.warnings());
            }
        }
    }
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-scenarios"));
}

/// The transaction coordinator's settings are Kafka's defaults, with the scenario's
/// `offsets.topic.num.partitions` (AddOffsetsToTxn names a group's offsets partition) and
/// `transaction.state.log.num.partitions`; `__transaction_state` exists exactly in the
/// shipped scenarios with a transactional producer, with the partitions they ask for.
#[test]
fn the_transaction_coordinator_gets_kafkas_defaults_and_its_topic_with_transactions() {
    use ksim::broker::txn_coordinator::{TxnCoordinatorConfig, TRANSACTION_STATE_TOPIC};
    use ksim::scenario::plan;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-scenarios");
    let (mut groups, mut transactional) = (0, 0);
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let scenario = load(&path).unwrap();
        let config = plan::broker_config(&scenario, ksim::broker::BrokerId(1));
        let partitions = scenario
            .cluster
            .broker
            .transaction_state_log_num_partitions
            .unwrap_or(50);
        assert_eq!(
            config.txn_coordinator,
            TxnCoordinatorConfig {
                offsets_partitions: config.coordinator.offsets_partitions,
                transaction_state_partitions: partitions,
                ..TxnCoordinatorConfig::default()
            },
            "{}",
            path.display()
        );
        let has_producers = scenario.has_transactional_producers();
        assert_eq!(plan::needs_transactions(&scenario), has_producers);
        let created: Vec<u32> = plan::topic_specs(&scenario)
            .iter()
            .filter(|t| t.name == TRANSACTION_STATE_TOPIC)
            .map(|t| t.partitions)
            .collect();
        if has_producers {
            assert_eq!(created, [partitions], "{}", path.display());
        } else {
            assert!(created.is_empty(), "{}", path.display());
        }
        groups += usize::from(config.coordinator.offsets_partitions != 50);
        transactional += usize::from(has_producers);
    }
    assert!(groups > 0, "a scenario sets offsets.topic.num.partitions");
    assert!(transactional > 0, "a scenario has transactional producers");
}

#[test]
fn transactional_producers_get_numbered_ids_and_their_workload() {
    let text = r#"name = "txn"
duration = "30s"
heal = "20s"

[cluster]
zookeepers = 1
brokers = 1
[cluster.broker]
"transaction.state.log.min.isr" = 1

[[topic]]
name = "orders"
partitions = 2

[[producer]]
count = 2
topic = "orders"
rate = 10
txn-records = 4
txn-abort-percent = 25
[producer.config]
"transactional.id" = "pay"
"transaction.timeout.ms" = 30000

[[producer]]
count = 1
topic = "orders"
rate = 10
[producer.config]
"transactional.id" = "solo"

[[producer]]
count = 1
topic = "orders"
rate = 10
"#;
    let scenario = parse(Path::new("txn.toml"), text.as_bytes()).unwrap();
    assert!(scenario.has_transactional_producers());
    let ids: Vec<(String, String)> = scenario.transactional_ids().into_iter().collect();
    assert_eq!(
        ids,
        [
            ("producer-1".to_string(), "pay-1".to_string()),
            ("producer-2".to_string(), "pay-2".to_string()),
            ("producer-3".to_string(), "solo".to_string()),
        ]
    );
    let bootstrap = vec![ksim::broker::BrokerId(1)];
    let second =
        ksim::scenario::plan::producer_config(&scenario.producers[0], 1, bootstrap.clone());
    assert_eq!(second.transactional_id.as_deref(), Some("pay-2"));
    assert_eq!(second.transaction_timeout_ms, 30_000);
    assert_eq!(
        (
            second.txn_workload.records,
            second.txn_workload.abort_percent
        ),
        (4, 25)
    );
    assert!(second.enable_idempotence && second.validate().is_ok());
    let solo = ksim::scenario::plan::producer_config(&scenario.producers[1], 0, bootstrap.clone());
    assert_eq!(solo.transactional_id.as_deref(), Some("solo"));
    assert_eq!(
        (solo.transaction_timeout_ms, solo.txn_workload.records),
        (60_000, 10)
    );
    let plain = ksim::scenario::plan::producer_config(&scenario.producers[2], 0, bootstrap);
    assert_eq!(plain.transactional_id, None);
    assert!(!writers().has_transactional_producers());
}

/// A `[[processor]]` table is a group member that reads committed, commits its offsets
/// with its transactions (auto-commit off) and writes `output` with a transactional
/// producer whose id is the group's (numbered per table), as Kafka Streams sets them.
#[test]
fn processors_map_to_a_read_committed_member_and_a_transactional_producer() {
    use ksim::scenario::{
        AssignmentStrategy, IsolationLevel, DEFAULT_PROCESSOR_COMMIT_INTERVAL_MS,
    };
    let text = r#"name = "procs"
duration = "30s"
heal = "60s"

[cluster]
zookeepers = 1
brokers = 1

[cluster.broker]
"offsets.topic.num.partitions" = 3
"transaction.state.log.num.partitions" = 3
"transaction.state.log.min.isr" = 1

[[topic]]
name = "orders"
partitions = 2

[[topic]]
name = "enriched"
partitions = 2

[[topic]]
name = "audited"
partitions = 1

[[producer]]
count = 1
topic = "orders"
rate = 10

[[consumer]]
count = 1
group = "readers"
topics = ["audited"]

[[processor]]
count = 2
group = "enrich"
topics = ["orders"]
output = "enriched"
txn-abort-percent = 10
[processor.consumer]
"partition.assignment.strategy" = "cooperative-sticky"

[[processor]]
count = 1
group = "audit"
topics = ["enriched"]
output = "audited"
[processor.config]
"commit.interval.ms" = 250
[processor.producer]
"transactional.id" = "auditor"
"#;
    let scenario =
        parse(Path::new("procs.toml"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let [enrich, audit] = &scenario.processors[..] else {
        panic!("two processor tables")
    };
    assert_eq!(
        (
            enrich.count,
            enrich.output.as_str(),
            enrich.commit_interval_ms
        ),
        (2, "enriched", DEFAULT_PROCESSOR_COMMIT_INTERVAL_MS)
    );
    assert_eq!(DEFAULT_PROCESSOR_COMMIT_INTERVAL_MS, 100);
    assert_eq!(audit.commit_interval_ms, 250);
    let consumer = &enrich.consumer;
    assert_eq!(
        (
            consumer.count,
            consumer.group.as_deref(),
            &consumer.topics[..]
        ),
        (2, Some("enrich"), &["orders".to_string()][..])
    );
    assert_eq!(
        consumer.config.isolation_level,
        Some(IsolationLevel::ReadCommitted),
        "forced"
    );
    assert_eq!(consumer.config.enable_auto_commit, Some(false));
    assert_eq!(
        consumer.config.partition_assignment_strategy,
        Some(AssignmentStrategy::CooperativeSticky)
    );
    let producer = &enrich.producer;
    assert_eq!(
        (
            producer.count,
            producer.topic.as_str(),
            producer.txn_abort_percent,
            producer.config.transactional_id.as_deref()
        ),
        (2, "enriched", 10, Some("enrich")),
        "the group's id by default"
    );
    assert_eq!(producer.transactional_ids(), ["enrich-1", "enrich-2"]);
    assert_eq!(audit.producer.transactional_ids(), ["auditor"]);
    assert_eq!(audit.producer.txn_abort_percent, 0);

    assert_eq!(
        scenario.processor_names(),
        ["processor-1", "processor-2", "processor-3"]
    );
    let ids: Vec<(String, String)> = scenario.transactional_ids().into_iter().collect();
    let pair = |n: &str, id: &str| (n.to_string(), id.to_string());
    assert_eq!(
        ids,
        [
            pair("processor-1", "enrich-1"),
            pair("processor-2", "enrich-2"),
            pair("processor-3", "auditor"),
        ],
        "the plain producer has none"
    );
    let readers: Vec<String> = scenario
        .reader_nodes()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        readers,
        ["consumer-1", "processor-1", "processor-2", "processor-3"]
    );
    let groups = scenario.groups();
    let members = |g: &str| groups[g].members.clone();
    assert_eq!(members("enrich"), ["processor-1", "processor-2"]);
    assert_eq!(members("audit"), ["processor-3"]);
    assert_eq!(members("readers"), ["consumer-1"]);
    assert_eq!(groups["enrich"].topics, ["orders"]);
    assert_eq!(groups["enrich"].partitions.len(), 2);
    assert_eq!(
        scenario.read_committed_consumers(),
        ["processor-1", "processor-2", "processor-3"]
    );
    assert!(scenario.has_transactional_producers());

    // The cores of processor-2: the second of its table.
    let bootstrap = vec![ksim::broker::BrokerId(1)];
    let (consumer, producer) =
        ksim::scenario::plan::processor_config(&scenario, enrich, 1, "processor-2", bootstrap);
    assert_eq!(
        consumer.isolation_level,
        ksim::broker::proto::IsolationLevel::ReadCommitted
    );
    let group = consumer.group.expect("a group member");
    assert_eq!(
        (
            group.group_id.as_str(),
            group.client_id.as_str(),
            group.enable_auto_commit,
            group.offsets_by_transaction
        ),
        ("enrich", "processor-2", false, true)
    );
    assert_eq!(producer.transactional_id.as_deref(), Some("enrich-2"));
    assert_eq!(producer.topic, "enriched");
    assert!(producer.txn_workload.by_application);
    assert!(producer.validate().is_ok());
}

/// Processors alone (no group consumer, no transactional producer) need both internal
/// topics: the group's offsets and the transactions' state.
#[test]
fn processors_get_the_offsets_and_transaction_state_topics_created() {
    use ksim::broker::coordinator::OFFSETS_TOPIC;
    use ksim::broker::txn_coordinator::TRANSACTION_STATE_TOPIC;
    use ksim::scenario::plan;
    let with_processor = |processor: &str| {
        let text = format!(
            r#"name = "p"
duration = "30s"
heal = "60s"

[cluster]
zookeepers = 1
brokers = 1

[cluster.broker]
"offsets.topic.num.partitions" = 3
"transaction.state.log.num.partitions" = 2
"transaction.state.log.min.isr" = 1

[[topic]]
name = "orders"
partitions = 1

[[topic]]
name = "enriched"
partitions = 1

[[producer]]
count = 1
topic = "orders"
rate = 10
{processor}"#
        );
        parse(Path::new("p.toml"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    };
    let created = |scenario: &Scenario| -> Vec<(String, u32)> {
        plan::topic_specs(scenario)
            .into_iter()
            .map(|t| (t.name, t.partitions))
            .filter(|(name, _)| name.starts_with("__"))
            .collect()
    };
    let without = with_processor("");
    assert!(created(&without).is_empty());
    assert!(!without.has_transactional_producers());
    let with = with_processor(
        "\n[[processor]]\ncount = 1\ngroup = \"enrich\"\ntopics = [\"orders\"]\noutput = \"enriched\"\n",
    );
    assert_eq!(
        created(&with),
        [
            (OFFSETS_TOPIC.to_string(), 3),
            (TRANSACTION_STATE_TOPIC.to_string(), 2)
        ]
    );
    assert!(plan::needs_transactions(&with));
}
