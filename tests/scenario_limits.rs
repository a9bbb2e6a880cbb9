//! Everything that loads is bounded (issue 13): the files `scenario::load` refuses before
//! reading them (devices, FIFOs, directories, more than 1 MiB), the fault-table limit and
//! loading at it without quadratic work, and the limits' relation to what is shipped and
//! what the swarm draws. The single-value and budget cases are files in
//! `tests/data/bad-scenarios/` (see `scenario_errors.rs`); this file names the ones the issue
//! reported as out-of-memory aborts, crashes or endless runs, so none can quietly go.

mod common;

use common::scratch;
use ksim::scenario::limits::{MAX_FAULTS, MAX_FILE_BYTES};
use ksim::scenario::swarm::draw_seed;
use ksim::scenario::{load, parse};
use std::path::Path;

/// The cases issue 13 reported, each a file of `tests/data/bad-scenarios/` that must be
/// refused at load (so before any node starts): out of memory, a crash in a node, a wrong
/// verdict, or a run of minutes to hours.
const REPORTED: [&str; 18] = [
    "tick-time-near-i64-max",
    "zookeepers-zero-with-brokers",
    "batch-size-zero",
    "delivery-timeout-zero",
    "heal-near-u64-max",
    "partitions-u32-max",
    "offsets-partitions-u32-max",
    "registers-u32-max",
    "zookeepers-999",
    "duration-24h",
    "partitions-10000",
    "count-1000",
    "no-workload",
    "registers-zero",
    "group-instance-id-empty",
    "key-without-value-at-end-of-file",
    "stray-carriage-return",
    // Found by `scenario_mutations` in CI: the ids of a transactional table were numbered
    // before its count was bounded (a 48 GiB allocation).
    "transactional-count-u32-max",
];

fn bad(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bad-scenarios")
        .join(format!("{name}.toml"))
}

#[test]
fn every_case_the_issue_reported_is_refused_at_load_with_a_position() {
    for name in REPORTED {
        let error = match load(&bad(name)) {
            Err(error) => error,
            Ok(_) => panic!("{name} loaded"),
        };
        assert!(error.line > 1, "{name}: {error}");
        let says_what_is_expected = ["expected", "must", "need", "add a", "at most"]
            .iter()
            .any(|word| error.message.contains(word));
        assert!(
            says_what_is_expected,
            "{name}: the message should say what is expected: {error}"
        );
    }
}

fn refused(path: &Path) -> String {
    match load(path) {
        Err(error) => {
            assert_eq!((error.line, error.column), (1, 1), "{error}");
            assert_eq!(error.file, path);
            error.message
        }
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

#[cfg(unix)]
#[test]
fn devices_are_refused_without_reading_them() {
    // `/dev/zero` reads forever: it must not be read at all.
    let message = refused(Path::new("/dev/zero"));
    assert!(
        message.contains("it is a character device, not a regular file"),
        "{message}"
    );
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = scratch("limits-fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("scenario.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // Opening a FIFO for reading blocks until a writer comes: load must not open it.
    let message = refused(&fifo);
    assert!(message.contains("it is a FIFO (named pipe)"), "{message}");
}

#[test]
fn a_directory_is_refused() {
    let dir = scratch("limits-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let message = refused(&dir);
    assert!(message.contains("it is a directory"), "{message}");
}

/// A valid scenario padded with comments to `size` bytes.
fn padded(size: usize) -> Vec<u8> {
    let mut text = b"name = \"big\"\nduration = \"10s\"\nheal = \"10s\"\n\
                     [[writer]]\ncount = 1\nrate = 1\n"
        .to_vec();
    while text.len() < size {
        let line = b"# padding padding padding padding padding padding padding padding\n";
        let take = line.len().min(size - text.len());
        if take < 2 {
            text.push(b'\n');
        } else {
            text.extend_from_slice(&line[..take - 1]);
            text.push(b'\n');
        }
    }
    text
}

#[test]
fn a_file_of_the_size_limit_loads_and_one_byte_more_is_refused() {
    let dir = scratch("limits-size");
    std::fs::create_dir_all(&dir).unwrap();
    let limit = MAX_FILE_BYTES as usize;
    let at = dir.join("at-the-limit.toml");
    std::fs::write(&at, padded(limit)).unwrap();
    assert_eq!(std::fs::metadata(&at).unwrap().len(), MAX_FILE_BYTES);
    load(&at).unwrap();
    let over = dir.join("over-the-limit.toml");
    std::fs::write(&over, padded(limit + 1)).unwrap();
    let message = refused(&over);
    assert!(message.contains("larger than 1024 KiB"), "{message}");
    assert!(message.contains("at most 1048576 bytes"), "{message}");
}

#[cfg(unix)]
#[test]
fn a_symlink_to_a_scenario_loads() {
    let dir = scratch("limits-symlink");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("link.toml");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-scenarios/log-power-loss.toml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(load(&link).unwrap().name, "log-power-loss");
}

/// A writer scenario with `n` kill/restart faults, one every 350 ms.
fn faults(n: usize) -> String {
    let mut text = String::from(
        "name = \"faults\"\nduration = \"1h\"\nheal = \"30s\"\n[[writer]]\ncount = 2\nrate = 10\n",
    );
    for i in 0..n {
        let (action, target) = if i % 2 == 0 {
            ("kill", "writer-1")
        } else {
            ("restart", "killed")
        };
        text.push_str(&format!(
            "[[fault]]\nat = \"{}ms\"\naction = \"{action}\"\ntarget = \"{target}\"\n",
            (i + 1) * 350
        ));
    }
    text
}

#[test]
fn ten_thousand_faults_load_and_one_more_is_refused_at_its_table() {
    // Loading was quadratic in the faults (each counted the newlines before it); this is
    // the limit's worth, which loads in tens of milliseconds in a release build.
    let text = faults(MAX_FAULTS);
    assert!(text.len() < MAX_FILE_BYTES as usize);
    let scenario = parse(Path::new("faults.toml"), text.as_bytes()).unwrap();
    assert_eq!(scenario.faults.len(), MAX_FAULTS);
    // Lines are still right at the end of the file.
    let last = scenario.faults.last().unwrap();
    assert_eq!(last.line, 7 + 4 * (MAX_FAULTS - 1));

    let text = faults(MAX_FAULTS + 1);
    let error = parse(Path::new("faults.toml"), text.as_bytes()).unwrap_err();
    assert_eq!((error.line, error.column), (7 + 4 * MAX_FAULTS, 1));
    assert_eq!(error.message, "at most 10000 [[fault]] tables, found 10001");
}

/// The largest scenario the swarm's space holds (its module doc's table at every maximum,
/// with the longest heal it can draw, transactional producers and two processor tables with
/// their output topics, `__transaction_state` at Kafka's 50 partitions): every limit must
/// leave room for it.
const SWARM_AT_ITS_LARGEST: &str = r#"name = "swarm-at-its-largest"
duration = "120s"
heal = "171s"
[cluster]
zookeepers = 5
brokers = 6
[cluster.broker]
"offsets.topic.num.partitions" = 8
[[topic]]
name = "a"
partitions = 8
"replication.factor" = 3
[[topic]]
name = "b"
partitions = 8
"replication.factor" = 3
[[topic]]
name = "c"
partitions = 8
"replication.factor" = 3
[[topic]]
name = "enriched"
partitions = 8
"replication.factor" = 3
[[topic]]
name = "rollups"
partitions = 8
"replication.factor" = 3
[[producer]]
count = 2
topic = "a"
rate = 200
txn-records = 1
[producer.config]
"transactional.id" = "txn-1"
[[producer]]
count = 2
topic = "b"
rate = 200
txn-records = 1
[producer.config]
"transactional.id" = "txn-2"
[[producer]]
count = 2
topic = "c"
rate = 200
txn-records = 1
[producer.config]
"transactional.id" = "txn-3"
[[processor]]
count = 3
group = "enrich"
topics = ["a", "b", "c"]
output = "enriched"
[processor.config]
"commit.interval.ms" = 50
[[processor]]
count = 3
group = "rollup"
topics = ["a", "b", "c", "enriched"]
output = "rollups"
[processor.config]
"commit.interval.ms" = 50
[[consumer]]
count = 2
topics = ["a", "b", "c"]
[[consumer]]
count = 2
topics = ["a", "b", "c"]
[[consumer]]
count = 4
group = "billing"
topics = ["a", "b", "c"]
[[consumer]]
count = 4
group = "audit"
topics = ["a", "b", "c"]
[consumer.config]
"isolation.level" = "read_committed"
[[zk_client]]
count = 3
rate = 20
[[writer]]
count = 2
rate = 200
[nemesis]
actions = ["kill", "pause", "partition", "clog", "loss"]
every = "1s..6s"
"#;

#[test]
fn the_swarm_space_is_within_the_limits() {
    parse(Path::new("swarm.toml"), SWARM_AT_ITS_LARGEST.as_bytes()).unwrap();
    for seed in 1..=2000 {
        draw_seed(seed)
            .scenario()
            .unwrap_or_else(|e| panic!("swarm seed {seed}: {e}"));
    }
}
