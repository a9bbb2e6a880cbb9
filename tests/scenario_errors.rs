//! Malformed scenario files are refused with the file, line, column and what was expected
//! (contract: "Invalid input ... is exit 2 with the file, line and column and what is
//! expected. Never a panic, never a partial run.").
//!
//! Data-driven: every `tests/data/bad-scenarios/*.toml` opens with
//! `# expect: <line>:<column>: <substring of the message>`.

use std::path::{Path, PathBuf};

use ksim::scenario::{load, parse};
use proptest::prelude::*;

struct Expectation {
    line: usize,
    column: usize,
    message: String,
}

fn expectation(path: &Path) -> Expectation {
    let bytes = std::fs::read(path).unwrap();
    let first = bytes.split(|&b| b == b'\n').next().unwrap();
    let first = std::str::from_utf8(first).expect("the expectation line is text");
    let spec = first.strip_prefix("# expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: L:C: message`",
            path.display()
        )
    });
    let mut parts = spec.splitn(3, ':');
    let mut number = || parts.next().and_then(|n| n.trim().parse().ok());
    let (line, column) = (number(), number());
    let message = parts.next().map(str::trim).unwrap_or_default().to_string();
    match (line, column) {
        (Some(line), Some(column)) if !message.is_empty() => Expectation {
            line,
            column,
            message,
        },
        _ => panic!("{}: malformed expectation {spec:?}", path.display()),
    }
}

fn bad_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_bad_scenario_is_refused_at_the_expected_position_with_the_expected_message() {
    let files = bad_scenarios();
    assert!(
        files.len() >= 20,
        "the table of bad scenarios shrank to {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let expected = expectation(path);
        match load(path) {
            Ok(_) => failures.push(format!("{}: loaded, expected an error", path.display())),
            Err(error) => {
                let matches = error.line == expected.line
                    && error.column == expected.column
                    && error.message.contains(&expected.message)
                    && error.file == *path;
                let prefix = format!("{}:{}:{}: ", path.display(), error.line, error.column);
                if !matches || !error.to_string().starts_with(&prefix) {
                    failures.push(format!(
                        "{}: expected {}:{}: ...{}...\n  got {}:{}: {}",
                        path.display(),
                        expected.line,
                        expected.column,
                        expected.message,
                        error.line,
                        error.column,
                        error.message
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn an_empty_file_misses_the_name_at_the_start() {
    let error = parse(Path::new("empty.toml"), b"").unwrap_err();
    assert_eq!((error.line, error.column), (1, 1));
    assert_eq!(error.message, "missing field `name`");
    assert_eq!(error.to_string(), "empty.toml:1:1: missing field `name`");
}

#[test]
fn a_file_that_cannot_be_read_is_an_error_at_the_start_with_the_os_reason() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/no-such-scenario.toml");
    let error = load(&path).unwrap_err();
    assert_eq!((error.line, error.column), (1, 1));
    assert_eq!(error.file, path);
    assert!(
        error.message.starts_with("cannot read the scenario file: "),
        "{}",
        error.message
    );
}

#[test]
fn errors_quote_the_offending_line_with_a_caret_under_the_column() {
    let text = "name = \"x\"\nduration = \"30 seconds\"\nheal = \"1s\"\n";
    let error = parse(Path::new("s.toml"), text.as_bytes()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "s.toml:2:12: expected a duration like \"250ms\", \"10s\" or \"2m\", \
         found \"30 seconds\"\n  |\n2 | duration = \"30 seconds\"\n  |            ^"
    );
}

#[test]
fn binary_input_is_reported_without_quoting_it() {
    let error = parse(Path::new("b.toml"), b"\x00\x01\x02name").unwrap_err();
    assert_eq!((error.line, error.column), (1, 1));
    assert_eq!(error.source_line, None);
    assert!(!error.to_string().contains('\0'));
}

/// A valid scenario to mutate: every parser path from keys to faults.
const VALID: &str = r#"name = "log-power-loss"
about = "Writers append with fsync per record while the schedule kills, restarts and cuts power."
duration = "30s"
heal = "20s"
seeds = "1..200"

[[writer]]
count = 3
rate = 200
[writer.config]
"log.flush.interval.messages" = 1
"log.segment.bytes" = 65536

[[fault]]
at = "5s"
action = "power-loss"
target = "writer-1"
[[fault]]
at = "8s"
action = "restart"
target = "killed"

[expect]
fails = "lost-write"
tolerate = ["inconsistent-offsets"]
"#;

/// Every section of the contract: mutations reach the validation of topics, clients,
/// groups, nemesis and legacy switches.
const CONTRACT_EXAMPLE: &str = include_str!("data/contract-example.toml");

#[test]
fn the_mutation_bases_are_valid() {
    parse(Path::new("valid.toml"), VALID.as_bytes()).unwrap();
    parse(Path::new("contract.toml"), CONTRACT_EXAMPLE.as_bytes()).unwrap();
}

/// Whether a message is free of serde and Rust internals users cannot act on.
fn speaks_to_users(message: &str) -> bool {
    let internals = [
        "$__",
        "borrowed string",
        "expected u32",
        "expected u64",
        "expected i64",
        "expected f64",
        "\n",
    ];
    !internals.iter().any(|internal| message.contains(internal))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, ..ProptestConfig::default() })]

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in any::<Vec<u8>>()) {
        if let Err(error) = parse(Path::new("fuzz.toml"), &bytes) {
            prop_assert!(error.line >= 1 && error.column >= 1);
            let _ = error.to_string();
        }
    }

    #[test]
    fn parsing_a_mutated_valid_scenario_never_panics(
        use_contract_example in any::<bool>(),
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), 0u8..4, any::<u8>()),
            1..8,
        )
    ) {
        let base = if use_contract_example { CONTRACT_EXAMPLE } else { VALID };
        let mut bytes = base.as_bytes().to_vec();
        for (index, kind, byte) in edits {
            let at = index.index(bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => { bytes.remove(at); }
                1 if at < bytes.len() => bytes[at] = byte,
                2 => bytes.insert(at, byte),
                // Splice in a piece of the text itself: duplicate keys, tables, brackets.
                _ => {
                    let from = at.min(base.len());
                    let piece: Vec<u8> =
                        base.as_bytes()[from..].iter().take(byte as usize % 40).copied().collect();
                    bytes.splice(at..at, piece);
                }
            }
        }
        if let Err(error) = parse(Path::new("mutant.toml"), &bytes) {
            prop_assert!(error.line >= 1 && error.column >= 1);
            prop_assert!(
                speaks_to_users(&error.message),
                "{}\n--- input ---\n{}",
                error.message,
                String::from_utf8_lossy(&bytes)
            );
            let _ = error.to_string();
        }
    }

    #[test]
    fn parsing_mutated_values_never_panics(
        value in prop_oneof![
            "[0-9a-z.\\-()/ *]{0,24}",
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
        ],
        slot in 0usize..9,
    ) {
        let quoted = format!("{value:?}");
        let replacements = [
            ("\"30s\"", quoted.as_str()),
            ("\"1..200\"", quoted.as_str()),
            ("count = 3", &format!("count = {value}")),
            ("rate = 200", &format!("rate = {value}")),
            ("\"log.segment.bytes\" = 65536", &format!("\"log.segment.bytes\" = {value}")),
            ("\"power-loss\"", quoted.as_str()),
            ("\"writer-1\"", quoted.as_str()),
            ("\"killed\"", quoted.as_str()),
            ("\"lost-write\"", quoted.as_str()),
        ];
        let (from, to) = replacements[slot];
        let text = VALID.replacen(from, to, 1);
        if let Err(error) = parse(Path::new("mutant.toml"), text.as_bytes()) {
            prop_assert!(error.line >= 1 && error.column >= 1);
            prop_assert!(
                speaks_to_users(&error.message),
                "{}\n--- input ---\n{}",
                error.message,
                text
            );
        }
    }
}
