//! Scenario files: reading, parsing and validating the TOML that describes one simulated
//! experiment (cluster, workload, faults, expectations).
//!
//! Owns: the scenario file format of the user-facing contract (key names are Kafka's and
//! ZooKeeper's own) and its validated model. A scenario either loads completely — every key
//! known, every value in range, every reference resolved, every feature runnable — or fails
//! with one [`ScenarioError`] at the line and column of the offending value. Never a panic,
//! never a partial scenario: a run must test exactly what its file says.
//!
//! The pipeline: a regular file of at most 1 MiB → UTF-8 text → `raw` (serde: shape, types,
//! unknown keys) → `build` (semantics and the resource [`limits`], into the `model`). Every
//! valid scenario is runnable (a feature the simulator lacks is not in the format).
//! Whatever loads runs in bounded time and memory, and no config value that loads can make
//! a node panic.

mod budget;
mod build;
mod checks;
mod error;
pub mod limits;
mod model;
pub mod plan;
mod raw;
pub mod swarm;
mod target;
mod values;

use std::io::Read;
use std::ops::Range;
use std::path::Path;

pub use checks::{CheckKind, CheckName};
pub use error::ScenarioError;
pub use model::{
    Acks, AssignmentStrategy, BrokerConfig, Cluster, ConsumerConfig, ConsumerSpec, Expect, Fault,
    FaultAction, GroupSpec, IsolationLevel, Legacy, Nemesis, Partitioner, ProcessorSpec,
    ProducerConfig, ProducerSpec, Scenario, Target, Topic, WriterSpec, ZookeeperConfig,
    BROKER_ZK_SESSION_TIMEOUT_MS, DEFAULT_PROCESSOR_COMMIT_INTERVAL_MS,
    GROUP_INITIAL_REBALANCE_DELAY_MS, GROUP_MAX_SESSION_TIMEOUT_MS, GROUP_MIN_SESSION_TIMEOUT_MS,
    GROUP_SESSION_TIMEOUT_MS, ZK_DEFAULT_TICK_MS,
};
pub use values::{format_duration, parse_duration, parse_interval, parse_seed, SeedRange};

/// Reads and parses the scenario file at `path`: a regular file (after following symlinks)
/// of at most [`limits::MAX_FILE_BYTES`]. A FIFO, device, socket or directory is refused
/// before it is opened (opening a FIFO would wait for a writer), and at most one byte past
/// the limit is read, so a file that grows meanwhile (or lies about its size) is still
/// refused in bounded memory.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let cannot_read = |why: String| {
        ScenarioError::new(path, 1, 1, format!("cannot read the scenario file: {why}"))
    };
    let metadata = std::fs::metadata(path).map_err(|error| cannot_read(error.to_string()))?;
    check_regular_file(&metadata).map_err(cannot_read)?;
    let file = std::fs::File::open(path).map_err(|error| cannot_read(error.to_string()))?;
    // The path may have been replaced between the two looks: judge the file opened.
    let metadata = file
        .metadata()
        .map_err(|error| cannot_read(error.to_string()))?;
    check_regular_file(&metadata).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| cannot_read(error.to_string()))?;
    if bytes.len() as u64 > limits::MAX_FILE_BYTES {
        return Err(cannot_read(too_large(bytes.len() as u64)));
    }
    parse(path, &bytes)
}

/// Whether `metadata` is of a regular file within the size limit; else why not.
fn check_regular_file(metadata: &std::fs::Metadata) -> Result<(), String> {
    let kind = metadata.file_type();
    if !kind.is_file() {
        return Err(format!(
            "it is {}, not a regular file; expected a TOML scenario file",
            file_kind(&kind)
        ));
    }
    if metadata.len() > limits::MAX_FILE_BYTES {
        return Err(too_large(metadata.len()));
    }
    Ok(())
}

fn too_large(bytes: u64) -> String {
    format!(
        "it is larger than {} KiB ({} bytes or more); expected a scenario of at most {} bytes",
        limits::MAX_FILE_BYTES / 1024,
        bytes,
        limits::MAX_FILE_BYTES
    )
}

/// What a file that is not a regular file is, in words.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Parses scenario file contents; `file` names the file in errors and in [`Scenario::path`].
pub fn parse(file: &Path, bytes: &[u8]) -> Result<Scenario, ScenarioError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        // Lossy decoding keeps the valid prefix byte for byte, so the first invalid byte is
        // at the same offset there, and its line is quoted with U+FFFD under the caret.
        let lossy = String::from_utf8_lossy(bytes);
        let valid = error.valid_up_to();
        let message = match bytes.get(valid) {
            Some(byte) => format!("not UTF-8 text: invalid byte 0x{byte:02X}"),
            None => "not UTF-8 text".to_string(),
        };
        ScenarioError::at_offset(file, &lossy, valid, message)
    })?;
    let raw: raw::RawScenario = toml::from_str(text).map_err(|error| {
        // No span: the document itself (or a table toml has no position for).
        let span = error.span().unwrap_or_default();
        ScenarioError::at_span(
            file,
            text,
            &span,
            plain_message(error.message(), text, &span),
        )
    })?;
    let located = |problem: build::Problem| {
        ScenarioError::at_span(file, text, &problem.span, problem.message)
    };
    let scenario = build::build(&raw, file, text).map_err(located)?;
    Ok(scenario)
}

/// toml's message on one line, in words users know, saying what was expected and what was
/// found: serde's Rust type names become TOML's, and the parser's terse messages (some are
/// empty: `key =` at the end of the file) gain what is expected and the text at the error.
fn plain_message(message: &str, text: &str, span: &Range<usize>) -> String {
    let one_line = message
        .trim()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    // A dotted key under a key that takes a value (`"log.segment.bytes".x = 1`) makes a table
    // without a position, which `Spanned` cannot read; serde then fails on the inner key.
    if one_line.ends_with("expected a borrowed string") {
        if let Some(key) = one_line.strip_prefix("invalid type: string ") {
            let key = key.trim_end_matches(", expected a borrowed string");
            return format!(
                "expected a value, found a table made by a dotted key ending in {key}; \
                 quote a Kafka name whole, like \"log.segment.bytes\" = 65536"
            );
        }
    }
    let at = span.start.min(text.len());
    if let Some(syntax) = syntax_message(&one_line, text, at) {
        return format!("{syntax}, found {}", found_at(text, at));
    }
    let found_table = if starts_with_digit(text, at) {
        "invalid type: date-time,"
    } else {
        "invalid type: table,"
    };
    let mut plain = one_line
        .replace("invalid type: map,", found_table)
        .replace(
            "expected u32",
            "expected a non-negative integer (at most 4294967295)",
        )
        .replace("expected u64", "expected a non-negative integer")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected an array");
    // `expected struct RawCluster`: a Rust type name, where a table is expected.
    const STRUCT: &str = "expected struct ";
    while let Some(index) = plain.find(STRUCT) {
        let name_start = index + STRUCT.len();
        let name_end = plain[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map_or(plain.len(), |i| name_start + i);
        plain.replace_range(index..name_end, "expected a table");
    }
    if plain == "wanted string or table" {
        // An enum (a fault action, a strategy) given a number or a boolean.
        return format!("expected a string, found {}", found_at(text, at));
    }
    plain
}

/// The parser's own syntax messages, reworded to say what is expected; `None` for messages
/// that are not about syntax (types, values, keys), which say it already.
fn syntax_message(message: &str, text: &str, at: usize) -> Option<String> {
    let after_equals = text.get(..at).unwrap_or_default().trim_end().ends_with('=');
    let reworded = match message {
        "" | "invalid string: expected `\"`, `'`" if after_equals => {
            "expected a value after `=`: a string, number, boolean, array or inline table"
        }
        "" => "expected a key, a [table] header or a comment",
        "expected newline, `#`" => "expected the end of the line (or a `#` comment) after a value",
        "expected `.`, `=`" => "expected `=` (or `.` in a dotted key) after a key",
        "invalid key" => {
            "invalid key: expected a bare key (letters, digits, `_`, `-`) or a quoted key"
        }
        "invalid basic string" => "invalid string: expected a closing `\"` on the same line",
        "invalid literal string" => "invalid string: expected a closing `'` on the same line",
        "invalid multiline basic string" => "invalid multiline string: expected a closing `\"\"\"`",
        "invalid multiline literal string" => "invalid multiline string: expected a closing `'''`",
        "invalid string: expected `\"`, `'`" => {
            "expected a value: a string, number, boolean, array or inline table"
        }
        "number too large to fit in target type" => {
            "integer too large: expected at most 9223372036854775807 (TOML's largest)"
        }
        // Messages of serde and of ksim's own value parsers say what they found already.
        m if m.contains("found") || m.contains("duplicate key") => return None,
        m if m.starts_with("expected ") => return Some(m.to_string()),
        m if m.starts_with("invalid ")
            && !["invalid type:", "invalid value:", "invalid length"]
                .iter()
                .any(|serde| m.starts_with(serde)) =>
        {
            return Some(if m.contains("expected") {
                m.to_string()
            } else {
                format!("{m}: expected {}", what_makes(m))
            });
        }
        _ => return None,
    };
    Some(reworded.to_string())
}

/// What the thing an `invalid <thing>` message names is made of.
fn what_makes(message: &str) -> &'static str {
    if message.contains("hex code") {
        "hexadecimal digits"
    } else if message.contains("integer") || message.contains("number") {
        "digits"
    } else if message.contains("table header") {
        "a table name and `]`"
    } else if message.contains("time") {
        "a date-time like 1979-05-27T07:32:00Z"
    } else {
        "valid TOML"
    }
}

/// The text at byte `at` in words: the end of the file or line, a control character, or the
/// token there (quoted, at most 20 characters).
fn found_at(text: &str, at: usize) -> String {
    let rest = text.get(at..).unwrap_or_default();
    let mut chars = rest.chars();
    match chars.next() {
        None => "the end of the file".to_string(),
        Some('\n') => "the end of the line".to_string(),
        Some('\r') if chars.next() == Some('\n') => "the end of the line".to_string(),
        Some('\r') => "a carriage return (\\r) without a line feed after it; \
                       save the file with LF or CRLF line endings"
            .to_string(),
        Some(c) if c.is_control() && c != '\t' => {
            format!("the control character U+{:04X}", u32::from(c))
        }
        Some(c) if c.is_whitespace() => "whitespace".to_string(),
        Some(_) => {
            let token: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && !c.is_control())
                .take(20)
                .collect();
            format!("`{token}`")
        }
    }
}

fn starts_with_digit(text: &str, at: usize) -> bool {
    text.get(at..)
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The contract's example scenario (every section), plus a partition fault with `sides`
    /// and a loss fault. Valid, but not runnable yet.
    const CONTRACT_EXAMPLE: &str = include_str!("../../tests/data/contract-example.toml");

    /// Validation alone, without the file-level parse.
    fn build_only(text: &str) -> Result<Scenario, build::Problem> {
        let raw: raw::RawScenario = toml::from_str(text).expect("valid TOML");
        build::build(&raw, Path::new("example.toml"), text)
    }

    #[test]
    fn the_contract_example_is_valid_and_maps_to_the_model() {
        let s = build_only(CONTRACT_EXAMPLE).unwrap();
        assert_eq!((s.cluster.zookeepers, s.cluster.brokers), (3, 3));
        assert_eq!(s.cluster.broker.replica_lag_time_max_ms, Some(10_000));
        assert_eq!(s.cluster.broker.log_flush_interval_messages, Some(1));
        assert_eq!(s.cluster.broker.unclean_leader_election_enable, Some(false));
        assert_eq!(
            s.cluster.zookeeper,
            ZookeeperConfig {
                tick_time_ms: Some(2000),
                force_sync: Some(false),
                ..Default::default()
            }
        );
        let topic = &s.topics[0];
        assert_eq!(
            (
                topic.name.as_str(),
                topic.partitions,
                topic.replication_factor,
                topic.min_insync_replicas
            ),
            ("orders", 3, 3, Some(2))
        );
        let producer = &s.producers[0];
        assert_eq!(
            (
                producer.count,
                producer.topic.as_str(),
                producer.rate,
                producer.keys
            ),
            (2, "orders", 200, 100)
        );
        assert_eq!(
            producer.config,
            ProducerConfig {
                acks: Some(Acks::All),
                enable_idempotence: Some(true),
                partitioner_class: Some(Partitioner::UniformSticky),
                ..Default::default()
            }
        );
        let consumer = &s.consumers[0];
        assert_eq!(
            (consumer.count, consumer.group.as_deref()),
            (2, Some("billing"))
        );
        assert_eq!(consumer.topics, vec!["orders".to_string()]);
        assert_eq!(
            consumer.config.partition_assignment_strategy,
            Some(AssignmentStrategy::CooperativeSticky)
        );
        assert_eq!(consumer.config.enable_auto_commit, Some(false));
        let actions: Vec<FaultAction> = s.faults.iter().map(|f| f.action).collect();
        assert_eq!(
            actions,
            [
                FaultAction::Kill,
                FaultAction::Restart,
                FaultAction::Partition,
                FaultAction::Loss
            ]
        );
        assert_eq!(
            s.faults[0].target,
            Some(Target::Leader {
                topic: "orders".into(),
                partition: 0
            })
        );
        assert_eq!(
            s.faults[2].sides,
            Some(vec![
                vec!["broker-1".to_string(), "zk-1".to_string()],
                vec!["*".to_string()]
            ])
        );
        assert_eq!(s.faults[3].rate, Some(0.1));
        let nemesis = s.nemesis.as_ref().unwrap();
        assert_eq!(nemesis.actions.len(), 5);
        assert_eq!(
            nemesis.every,
            (Duration::from_secs(5), Duration::from_secs(15))
        );
        assert_eq!(s.expect.as_ref().unwrap().tolerate, Vec::<String>::new());
        let names = s.node_names();
        assert_eq!(names.len(), 3 + 3 + 2 + 2 + 2);
        assert_eq!(names[..4], ["zk-1", "zk-2", "zk-3", "broker-1"]);
        assert_eq!(
            names[6..],
            [
                "producer-1",
                "producer-2",
                "consumer-1",
                "consumer-2",
                "writer-1",
                "writer-2"
            ]
        );
    }

    #[test]
    fn the_contract_example_is_supported_in_full() {
        let scenario = parse(Path::new("example.toml"), CONTRACT_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(scenario.consumers[0].group.as_deref(), Some("billing"));
    }

    #[test]
    fn a_topic_without_a_replication_factor_takes_the_broker_default() {
        let text = CONTRACT_EXAMPLE
            .replace("\"replication.factor\" = 3\n", "")
            .replace("\"min.insync.replicas\" = 2\n", "")
            .replace(
                "[cluster.broker]\n",
                "[cluster.broker]\n\"default.replication.factor\" = 2\n",
            );
        assert_eq!(build_only(&text).unwrap().topics[0].replication_factor, 2);
        let text = text.replace("brokers = 3", "brokers = 1");
        let problem = build_only(&text).unwrap_err();
        assert!(
            problem
                .message
                .contains("the default replication factor is 2"),
            "{}",
            problem.message
        );
        assert_eq!(
            &text[problem.span.start..problem.span.start + 9],
            "[[topic]]"
        );
    }

    #[test]
    fn kafka_client_startup_checks_apply() {
        for (from, to, expected) in [
            (
                "acks = \"all\"",
                "acks = \"1\"",
                "requires `acks` = \"all\"",
            ),
            (
                "acks = \"all\"",
                "\"max.in.flight.requests.per.connection\" = 6",
                "<= 5",
            ),
            ("acks = \"all\"", "retries = 0", "`retries` > 0"),
            (
                "\"enable.auto.commit\" = false",
                "\"heartbeat.interval.ms\" = 50000",
                "must be lower than `session.timeout.ms` (45000)",
            ),
            ("group = \"billing\"\n", "", "`coordinator(billing)`"),
            (
                "\"enable.auto.commit\" = false",
                "\"auto.offset.reset\" = \"none\"",
                "\"earliest\" or \"latest\"",
            ),
            (
                "topics = [\"orders\"]",
                "topics = []",
                "at least one [[topic]]",
            ),
            (
                "name = \"orders\"",
                "name = \"orders/0\"",
                "expected a Kafka topic name",
            ),
            (
                "keys = 100",
                "keys = 100\ncount = 1",
                "duplicate key `count`",
            ),
        ] {
            let text = CONTRACT_EXAMPLE.replacen(from, to, 1);
            let text = if expected.contains("coordinator") {
                text.replace(
                    "target = \"leader(orders/0)\"",
                    "target = \"coordinator(billing)\"",
                )
            } else {
                text
            };
            let message = match toml::from_str::<raw::RawScenario>(&text) {
                Err(error) => error.message().to_string(),
                Ok(raw) => {
                    build::build(&raw, Path::new("x.toml"), &text)
                        .unwrap_err()
                        .message
                }
            };
            assert!(message.contains(expected), "{to:?}: {message}");
        }
    }

    #[test]
    fn nemesis_actions_must_inject_faults_once_each() {
        let text = CONTRACT_EXAMPLE.replace("\"kill\", \"power-loss\"", "\"kill\", \"kill\"");
        assert!(build_only(&text)
            .unwrap_err()
            .message
            .contains("`kill` is listed twice"));
        let text = CONTRACT_EXAMPLE.replace(
            r#"actions = ["kill", "power-loss", "pause", "partition", "clog"]"#,
            "actions = []",
        );
        assert!(build_only(&text)
            .unwrap_err()
            .message
            .contains("at least one"));
        let text = CONTRACT_EXAMPLE.replace("every = \"5s..15s\"", "every = \"0s..15s\"");
        assert!(build_only(&text).unwrap_err().message.contains("above 0s"));
    }

    /// The parser's terse messages (some empty) are reworded to say what was expected and
    /// what was found at the position.
    #[test]
    fn syntax_errors_say_what_was_expected_and_what_was_found() {
        for (input, position, message) in [
            (
                "name =",
                (1, 7),
                "expected a value after `=`: a string, number, boolean, array or inline \
                 table, found the end of the file",
            ),
            (
                "name = \"x\"\nduration =\n",
                (2, 11),
                "expected a value after `=`: a string, number, boolean, array or inline \
                 table, found the end of the line",
            ),
            (
                "name = \"x\"\rduration = \"1s\"",
                (1, 11),
                "expected the end of the line (or a `#` comment) after a value, found a \
                 carriage return (\\r) without a line feed after it; save the file with LF or \
                 CRLF line endings",
            ),
            (
                "name = \"x\" junk",
                (1, 12),
                "expected the end of the line (or a `#` comment) after a value, found `junk`",
            ),
            (
                "name = \"x",
                (1, 10),
                "invalid string: expected a closing `\"` on the same line, found the end of \
                 the file",
            ),
            (
                "= 1",
                (1, 1),
                "invalid key: expected a bare key (letters, digits, `_`, `-`) or a quoted \
                 key, found `=`",
            ),
            (
                "name",
                (1, 5),
                "expected `=` (or `.` in a dotted key) after a key, found the end of the file",
            ),
            (
                "name = tru",
                (1, 8),
                "expected a value after `=`: a string, number, boolean, array or inline \
                 table, found `tru`",
            ),
            (
                "name = [1, tru]",
                (1, 12),
                "expected a value: a string, number, boolean, array or inline table, found \
                 `tru]`",
            ),
            (
                "name = 0x",
                (1, 10),
                "invalid hexadecimal integer: expected digits, found the end of the file",
            ),
            (
                "name = 99999999999999999999",
                (1, 8),
                "integer too large: expected at most 9223372036854775807 (TOML's largest), \
                 found `99999999999999999999`",
            ),
            (
                "[",
                (1, 1),
                "invalid table header: expected a table name and `]`, found `[`",
            ),
            (
                "[cluster",
                (1, 9),
                "invalid table header: expected `.`, `]`, found the end of the file",
            ),
            (
                "name = \"x\"\t\u{c}",
                (1, 12),
                "expected the end of the line (or a `#` comment) after a value, found the \
                 control character U+000C",
            ),
            (
                "name = 1979-05-27",
                (1, 8),
                "invalid type: date-time, expected a string",
            ),
            (
                "name = \"x\"\nduration = \"1s\"\nheal = \"1s\"\ncluster = 3\n",
                (4, 11),
                "invalid type: integer `3`, expected a table",
            ),
            (
                "name = \"x\"\nduration = \"1s\"\nheal = \"1s\"\n[[fault]]\nat = \"1s\"\n\
                 action = 3\n",
                (6, 10),
                "expected a string, found `3`",
            ),
            (
                "name = \"x\"\nduration = \"1s\"\nheal = \"1s\"\nseeds = -1\n",
                (4, 9),
                "expected a non-negative seed, found -1",
            ),
        ] {
            let error = parse(Path::new("s.toml"), input.as_bytes()).unwrap_err();
            assert_eq!(
                ((error.line, error.column), error.message.as_str()),
                (position, message),
                "{input:?}"
            );
        }
    }

    #[test]
    fn targets_print_in_the_syntax_they_parse_from() {
        let isolate = Target::Isolate(Box::new(Target::Leader {
            topic: "orders".into(),
            partition: 1,
        }));
        assert_eq!(isolate.to_string(), "isolate(leader(orders/1))");
        assert_eq!(FaultAction::PowerLoss.to_string(), "power-loss");
        let names: Vec<&str> = FaultAction::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            [
                "kill",
                "restart",
                "power-loss",
                "pause",
                "resume",
                "partition",
                "heal",
                "clog",
                "unclog",
                "loss"
            ]
        );
    }
}
