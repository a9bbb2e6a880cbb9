//! Mutated shipped scenarios (issue 13: "a proptest generates mutated scenario files ... and
//! asserts exit 0–4 from a bounded run or exit 2 with a position, never a panic"). The
//! scenarios of `sim-scenarios/` (zoo included) lose lines, are cut short, and have values
//! swapped for other types, extreme numbers (0, -1, u32::MAX, u64::MAX, i64::MAX) and
//! extreme durations ("999999h"). Loading never panics; it either fails at a line and
//! column, or gives a scenario within `scenario::limits` — checked here independently of
//! the loader's own arithmetic — whose producer configs pass the producer's own startup
//! validation. A few mutated configs that load are run, and none may crash on its config.

mod common;

use common::scratch;
use ksim::node::kafka_client::broker_ids;
use ksim::report::Verdict;
use ksim::scenario::limits::*;
use ksim::scenario::{parse, Scenario, GROUP_MAX_SESSION_TIMEOUT_MS, GROUP_MIN_SESSION_TIMEOUT_MS};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Every shipped scenario: its path and text.
fn shipped() -> &'static [(PathBuf, String)] {
    static SHIPPED: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    found.push(path);
                }
            }
        }
        let mut paths = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-scenarios"),
            &mut paths,
        );
        paths.sort();
        assert!(paths.len() >= 20, "the shipped scenarios shrank");
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                (path, text)
            })
            .collect()
    })
}

/// Values that replace a value: other types, extreme numbers, extreme durations.
const REPLACEMENTS: [&str; 32] = [
    "0",
    "-1",
    "1",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "1000",
    "10000",
    "0.5",
    "nan",
    "inf",
    "true",
    "\"x\"",
    "\"\"",
    "[]",
    "[1]",
    "{ a = 1 }",
    "1979-05-27",
    "\"0s\"",
    "\"1ms\"",
    "\"1h\"",
    "\"3601s\"",
    "\"24h\"",
    "\"999999h\"",
    "\"18446744073709551615ms\"",
    "\"18446744073709551615h\"",
    "\"1s..1ms\"",
    "\"0..18446744073709551615\"",
];

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(prop::sample::Index),
    DuplicateLine(prop::sample::Index),
    Truncate(prop::sample::Index),
    ReplaceValue(prop::sample::Index, prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => any::<prop::sample::Index>().prop_map(Mutation::DeleteLine),
        1 => any::<prop::sample::Index>().prop_map(Mutation::DuplicateLine),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        3 => (any::<prop::sample::Index>(), any::<prop::sample::Index>())
            .prop_map(|(line, value)| Mutation::ReplaceValue(line, value)),
    ]
}

/// The value of a `key = value` line, replaced.
fn replaced(line: &str, value: &str) -> Option<String> {
    let (key, _) = line.split_once(" = ")?;
    Some(format!("{key} = {value}"))
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match mutation {
        Mutation::DeleteLine(index) if !lines.is_empty() => {
            lines.remove(index.index(lines.len()));
        }
        Mutation::DuplicateLine(index) if !lines.is_empty() => {
            let at = index.index(lines.len());
            lines.insert(at, lines[at].clone());
        }
        Mutation::Truncate(index) => {
            let mut cut = index.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return text[..cut].to_string();
        }
        Mutation::ReplaceValue(line, value) => {
            let values: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            if !values.is_empty() {
                let at = values[line.index(values.len())];
                let value = REPLACEMENTS[value.index(REPLACEMENTS.len())];
                lines[at] = replaced(&lines[at], value).unwrap();
            }
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

/// Whether an error message is free of serde and Rust internals users cannot act on.
fn speaks_to_users(message: &str) -> bool {
    let internals = [
        "$__",
        "borrowed string",
        "expected u32",
        "expected u64",
        "expected i64",
        "expected f64",
        "expected struct",
        "wanted string or table",
        "\n",
    ];
    !message.is_empty() && !internals.iter().any(|internal| message.contains(internal))
}

/// Checks, without the loader's code, that a scenario that loaded is within the limits and
/// that every producer's client config passes the producer's own validation.
fn assert_within_limits(s: &Scenario) {
    assert!(s.duration <= MAX_DURATION && s.heal <= MAX_DURATION);
    let c = &s.cluster;
    assert!(c.zookeepers <= MAX_ZOOKEEPERS && c.brokers <= MAX_BROKERS);
    assert!(
        c.brokers == 0 || c.zookeepers > 0,
        "brokers without an ensemble"
    );
    let kinds = [
        s.producers.iter().map(|p| p.count).sum::<u32>(),
        s.consumers.iter().map(|p| p.count).sum(),
        s.writers.iter().map(|p| p.count).sum(),
        s.zk_clients.iter().map(|p| p.count).sum(),
    ];
    assert!(
        kinds.iter().all(|&n| n <= MAX_CLIENTS_PER_KIND),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|&n| n > 0), "no workload");
    assert!(s.topics.len() <= MAX_TOPICS);
    let grouped = s.consumers.iter().any(|c| c.group.is_some());
    let offsets = if grouped {
        let partitions = c.broker.offsets_topic_num_partitions.unwrap_or(50);
        let rf = c
            .broker
            .offsets_topic_replication_factor
            .unwrap_or(3)
            .min(c.brokers);
        (u64::from(partitions), u64::from(partitions) * u64::from(rf))
    } else {
        (0, 0)
    };
    let partitions: u64 = s
        .topics
        .iter()
        .map(|t| u64::from(t.partitions))
        .sum::<u64>()
        + offsets.0;
    let replicas: u64 = s
        .topics
        .iter()
        .map(|t| u64::from(t.partitions) * u64::from(t.replication_factor))
        .sum::<u64>()
        + offsets.1;
    assert!(
        partitions <= u64::from(MAX_PARTITIONS),
        "{partitions} partitions"
    );
    assert!(replicas <= MAX_REPLICAS, "{replicas} replicas");
    assert!(u64::from(c.brokers) * partitions <= MAX_BROKER_PARTITIONS);
    let length = (s.duration + s.heal).as_secs_f64();
    let offered: f64 = s
        .producers
        .iter()
        .map(|p| f64::from(p.count) * f64::from(p.rate))
        .chain(
            s.writers
                .iter()
                .map(|w| f64::from(w.count) * f64::from(w.rate)),
        )
        .chain(
            s.zk_clients
                .iter()
                .map(|z| f64::from(z.count) * f64::from(z.rate)),
        )
        .sum::<f64>()
        * length;
    // The loader rounds each table down to whole operations.
    assert!(
        offered <= MAX_OFFERED_OPERATIONS as f64 + 100.0,
        "{offered} offered"
    );
    assert!(s.faults.len() <= MAX_FAULTS);
    if let Some(nemesis) = &s.nemesis {
        let most = s.duration.as_secs_f64() / nemesis.every.0.as_secs_f64();
        assert!(most <= MAX_FAULTS as f64 + 1.0, "{most} nemesis faults");
        assert!(nemesis.every.1 <= MAX_DURATION);
    }
    let zk = &c.zookeeper;
    assert!(zk.tick_time_ms.unwrap_or(2000) <= MAX_TICK_TIME_MS);
    assert!(zk.init_limit.unwrap_or(10) <= MAX_LIMIT_TICKS);
    assert!(zk.sync_limit.unwrap_or(5) <= MAX_LIMIT_TICKS);
    for client in &s.zk_clients {
        assert!((1..=MAX_REGISTERS).contains(&client.registers));
        assert!(client.rate <= MAX_RATE);
        assert!(client.session_timeout <= MAX_DURATION);
        assert!(client.churn.is_none_or(|churn| churn <= MAX_DURATION));
    }
    for producer in &s.producers {
        assert!(producer.rate <= MAX_RATE);
        let config = producer.client_config(broker_ids(c.brokers));
        if let Err(error) = config.validate() {
            panic!("a producer config that loads fails its validation: {error}: {config:?}");
        }
    }
    for consumer in &s.consumers {
        let config = &consumer.config;
        assert_ne!(config.group_instance_id.as_deref(), Some(""));
        if consumer.group.is_some() {
            let session = config.session_timeout_ms.unwrap_or(45_000);
            assert!(
                (GROUP_MIN_SESSION_TIMEOUT_MS..=GROUP_MAX_SESSION_TIMEOUT_MS).contains(&session)
            );
            assert!(config.heartbeat_interval_ms.unwrap_or(3_000) < session);
        }
    }
}

/// Loads `text` (the mutation of `base`): either an error at a position in the text, or a
/// scenario within the limits.
fn check(base: &Path, text: &str) -> Result<Option<Scenario>, TestCaseError> {
    match parse(base, text.as_bytes()) {
        Err(error) => {
            let lines = text.lines().count() + 1;
            prop_assert!(error.line >= 1 && error.column >= 1, "{error}");
            prop_assert!(error.line <= lines, "{error} is past the end");
            prop_assert!(
                speaks_to_users(&error.message),
                "{}\n--- input ---\n{text}",
                error.message
            );
            Ok(None)
        }
        Ok(scenario) => {
            let checked = std::panic::catch_unwind(|| assert_within_limits(&scenario));
            prop_assert!(checked.is_ok(), "out of the limits:\n--- input ---\n{text}");
            Ok(Some(scenario))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_shipped_scenarios_load_within_the_limits_or_fail_at_a_position(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (path, base) = &shipped()[which.index(shipped().len())];
        let mut text = base.clone();
        for mutation in &mutations {
            text = apply(&text, mutation);
        }
        check(path, &text)?;
    }
}

/// Config values at the edges of what loads: Kafka's and ZooKeeper's ranges and their
/// bounds, 0 and 1.
const CONFIG_VALUES: [&str; 7] = [
    "0",
    "1",
    "6000",
    "60000",
    "1800000",
    "2147483647",
    "9223372036854775807",
];

/// The `key = value` lines of the config tables ([cluster.broker], [cluster.zookeeper],
/// [producer.config], [consumer.config], [writer.config]) of `text`.
fn config_lines(text: &str) -> Vec<usize> {
    let mut table = "";
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed;
        } else if (table.ends_with(".config]")
            || table == "[cluster.broker]"
            || table == "[cluster.zookeeper]")
            && trimmed.contains(" = ")
        {
            found.push(i);
        }
    }
    found
}

proptest! {
    // Runs cost about a second each: a dozen, on the scenarios of at most 90 simulated
    // seconds.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn mutated_configs_that_load_run_without_crashing_on_their_config(
        which in any::<prop::sample::Index>(),
        line in any::<prop::sample::Index>(),
        value in any::<prop::sample::Index>(),
    ) {
        let short: Vec<&(PathBuf, String)> = shipped()
            .iter()
            .filter(|(path, text)| {
                let s = parse(path, text.as_bytes()).unwrap();
                s.duration + s.heal <= Duration::from_secs(90) && !config_lines(text).is_empty()
            })
            .collect();
        prop_assert!(!short.is_empty());
        let (path, base) = short[which.index(short.len())];
        let lines = config_lines(base);
        let value = CONFIG_VALUES[value.index(CONFIG_VALUES.len())];
        // The first config line from a drawn one on whose mutation the scenario still loads.
        let start = line.index(lines.len());
        let loaded = (0..lines.len()).find_map(|k| {
            let at = lines[(start + k) % lines.len()];
            let mut text: Vec<String> = base.lines().map(str::to_string).collect();
            text[at] = replaced(&text[at], value)?;
            let text = text.join("\n") + "\n";
            check(path, &text).ok().flatten().map(|s| (s, text))
        });
        let Some((scenario, text)) = loaded else { return Ok(()) };
        eprintln!("running {} with a config value of {value}", scenario.name);
        let dir = scratch(&format!("mutated-{}-{}", scenario.name, value.len()));
        let result = ksim::cli::run_one(&scenario, 1, &dir).unwrap();
        if let Some(crash) = &result.crash {
            let message = crash.message.to_lowercase();
            prop_assert!(
                !message.contains("config") && !message.contains("overflow"),
                "a config that loads crashed {}: {}\n--- input ---\n{text}",
                crash.node,
                crash.message
            );
        }
        prop_assert!(
            result.crash.is_some()
                || matches!(result.verdict, Verdict::Pass | Verdict::Safety | Verdict::Liveness)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A scenario with every config table, for [`extreme_configs_that_load_run_without_crashing`].
const EXTREMES: &str = r#"name = "extremes"
duration = "20s"
heal = "40s"
[cluster]
zookeepers = 3
brokers = 3
[cluster.broker]
{broker}
[cluster.zookeeper]
{zookeeper}
[[topic]]
name = "orders"
partitions = 2
"replication.factor" = 3
[[producer]]
count = 1
topic = "orders"
rate = 50
[producer.config]
{producer}
[[consumer]]
count = 2
group = "billing"
topics = ["orders"]
[consumer.config]
{consumer}
[[writer]]
count = 1
rate = 20
[writer.config]
{writer}
[nemesis]
actions = ["kill", "pause"]
every = "3s..6s"
"#;

/// Every config at the edges of its range, run in the dev profile (overflow checks on):
/// each loads, and no node panics on it (a liveness verdict is fine: a week-long timeout
/// never fires in a minute).
#[test]
fn extreme_configs_that_load_run_without_crashing() {
    let cases: [(&str, &str); 10] = [
        ("producer", "\"linger.ms\" = 9223372036854775807"),
        (
            "producer",
            "\"request.timeout.ms\" = 2147483647\n\"delivery.timeout.ms\" = 2147483647\n\
             \"retries\" = 2147483647\n\"batch.size\" = 2147483647",
        ),
        (
            "producer",
            "\"linger.ms\" = 0\n\"request.timeout.ms\" = 0\n\"delivery.timeout.ms\" = 0\n\
             \"batch.size\" = 1",
        ),
        (
            "producer",
            "acks = \"1\"\n\"enable.idempotence\" = false\n\
             \"max.in.flight.requests.per.connection\" = 2147483647\nretries = 0",
        ),
        (
            "broker",
            "\"replica.lag.time.max.ms\" = 9223372036854775807\n\
             \"group.initial.rebalance.delay.ms\" = 2147483647\n\
             \"log.flush.interval.ms\" = 9223372036854775807\n\
             \"log.flush.interval.messages\" = 9223372036854775807\n\
             \"log.retention.ms\" = 9223372036854775807\n\
             \"log.retention.bytes\" = 9223372036854775807\n\
             \"log.segment.bytes\" = 2147483647\n\"log.index.interval.bytes\" = 2147483647",
        ),
        (
            "zookeeper",
            "tickTime = 60000\ninitLimit = 1000\nsyncLimit = 1000\nsnapCount = 2147483647",
        ),
        (
            "zookeeper",
            "tickTime = 1\ninitLimit = 1\nsyncLimit = 1\nsnapCount = 2",
        ),
        (
            "consumer",
            "\"session.timeout.ms\" = 1800000\n\"heartbeat.interval.ms\" = 1799999\n\
             \"max.poll.interval.ms\" = 2147483647\n\"auto.commit.interval.ms\" = 2147483647",
        ),
        (
            "consumer",
            "\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 1\n\
             \"max.poll.interval.ms\" = 1\n\"auto.commit.interval.ms\" = 0",
        ),
        (
            "writer",
            "\"log.flush.interval.ms\" = 9223372036854775807\n\"log.segment.bytes\" = 1024\n\
             \"log.retention.ms\" = 0\n\"log.retention.bytes\" = 0",
        ),
    ];
    let dir = scratch("extreme-configs");
    for (index, (table, lines)) in cases.into_iter().enumerate() {
        let mut text = EXTREMES.to_string();
        for name in ["broker", "zookeeper", "producer", "consumer", "writer"] {
            let placeholder = format!("{{{name}}}");
            text = text.replace(&placeholder, if name == table { lines } else { "" });
        }
        let scenario = parse(Path::new("extremes.toml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("case {index} does not load: {e}"));
        assert_within_limits(&scenario);
        let result = ksim::cli::run_one(&scenario, 1, &dir.join(index.to_string())).unwrap();
        assert!(
            result.crash.is_none(),
            "case {index} ({table}: {lines}) crashed: {:?}",
            result.crash
        );
    }
}
