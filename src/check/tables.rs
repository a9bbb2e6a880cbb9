//! The checkers' rules as data: the broker, writer and group checks' cases are tables in
//! `src/check/testdata/` (`replication.txt`, `control.txt`, `client_history.txt`,
//! `writer.txt`, `group.txt`, `liveness.txt`), run by `crate::testdata`. A
//! case is a run record written line by line — events, client history, replica logs — and
//! the checks to run on it; its output is each check's violations, or `<check>: ok`.
//!
//! ```text
//! # Two brokers lead orders/0 in one leader epoch.
//! check single-leader-per-epoch
//! event 10ms broker-1 become-leader partition=orders/0 leader_epoch=3 isr=(1) leo=0 hw=0
//! event 20ms broker-2 become-leader partition=orders/0 leader_epoch=3 isr=(2) leo=0 hw=0
//! ----
//! single-leader-per-epoch at=20ms partition=orders/0 node=broker-2
//!   orders/0: leader epoch 3 has two leaders: broker-1 (broker-1 at 0.010s) and ...
//! ```
//!
//! Input lines (times are `<n>us`, `<n>ms` or `<n>s`; values are `testdata::json`'s
//! compact JSON: `(a, b)` a list, `{k=v ..}` an object, `a:b` a pair, `"..."` a string):
//!
//! - `event <time> <node> <kind> key=value ..` is the `events.jsonl` line
//!   `{"at_us", "node", "kind", "detail": {key: value, ..}}`, read back by serde into the
//!   typed `history::Event` a run records — so any event can be written, and a line reads
//!   like the run's own file (same kinds, same detail keys).
//! - `history <time> <node> <op> key=value ..` is the `history.jsonl` line
//!   `{"at_us", "node", "op", key: value, ..}`, read into a `HistoryEntry`. A partition is
//!   written `topic/p` here too (the file writes it `{"topic", "partition"}`).
//! - `log <broker> <topic/p> [start=N] [end=N] [error=".."] <offset>:<value> ..` is the
//!   replica log `broker` left for the partition (`check::FinalLog`; `log <writer> ..`
//!   without a partition is a writer's log, in `writer.txt`): the records, from
//!   `start` (by default the first record's offset, else 0) to `end` (by default one past
//!   the last record, else `start`); `error` makes it a log that cannot be read back.
//!
//! A table whose checks read the scenario (`group.txt`, `liveness.txt`) defines its scenarios first, by
//! name, each a case whose input lines are the scenario's TOML, one line per line; its
//! output is the nodes and groups the checks see. A `check` case then names the scenario
//! it runs in:
//!
//! ```text
//! scenario billing
//! name = "billing"
//! ...
//! [[consumer]]
//! count = 3
//! group = "billing"
//! topics = ["orders"]
//! ----
//! nodes: zk-1 broker-1 producer-1 consumer-1 consumer-2 consumer-3
//! group billing: members=(consumer-1, consumer-2, consumer-3) partitions=(orders/0, orders/1)
//!
//! check exclusive-assignment scenario=billing
//! history 1ms consumer-1 group-assign group=billing member=c1 generation=1 partitions=(orders/0:0)
//! ...
//! ```
//!
//! A line that does not read as its type fails the case with serde's reason and the JSON
//! line; so does a key the type does not read (serde alone would ignore a misspelt one).
//!
//! Output: per check named, in order, `<check>: ok`, or per violation a line
//! `<check> [at=<ms>ms] [partition=<tp>] [node=<node>]` and its detail, indented.

use super::kafka::{Facts, ReplicaLogs};
use super::test_support::writer_scenario;
use super::{group, liveness, writer, CheckInput, FinalLog, Violation};
use crate::broker::controller::ControllerEvent;
use crate::broker::coordinator::CoordinatorEvent;
use crate::broker::server::BrokerEvent;
use crate::broker::txn_coordinator::TxnCoordinatorEvent;
use crate::broker::TopicPartition;
use crate::history::{Event, HistoryEntry, ShellEvent, WorldEvent};
use crate::scenario::Scenario;
use crate::testdata::{fields, json, run_file, words, Case};
use crate::zk::server::ZkServerEvent;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Runs the broker checks' table at `path` (from the crate root).
pub fn run_broker_table(path: &str) {
    run_table(path, |record, check| {
        let facts = Facts::new(&record.events, &record.history, &record.logs);
        broker_check(&facts, check)
    });
}

/// Runs the writer checks' table at `path` (from the crate root): the writers are the
/// nodes of the case's `log` lines without a partition.
pub fn run_writer_table(path: &str) {
    let scenario = writer_scenario();
    run_table(path, |record, check| {
        let input = CheckInput {
            scenario: &scenario,
            events: &record.events,
            history: &record.history,
            nodes: crate::check::NodeData::Dir(Path::new("/nonexistent")),
        };
        match check {
            "lost-write" => Some(writer::lost_write(&input, &record.writer_logs)),
            "inconsistent-offsets" => {
                Some(writer::inconsistent_offsets(&input, &record.writer_logs))
            }
            _ => None,
        }
    });
}

/// Runs the group checks' table at `path` (from the crate root) through `check::group`'s
/// entry point: the checks see what a run's do, with the case's scenario.
pub fn run_group_table(path: &str) {
    run_scenario_table(path, |input, record, check| {
        let facts = Facts::new(input.events, input.history, &record.logs);
        let results = group::run(input, &facts);
        match results.into_iter().find(|r| r.check == check) {
            Some(found) => Ok(found.violations),
            None if check == "converges" => Err(
                "`converges` is judged at the heal's bound: the case needs a \
                     `world heal` event"
                    .into(),
            ),
            None => Err(format!("no group check `{check}`")),
        }
    });
}

/// Runs the liveness table at `path` (from the crate root): `converges` as
/// `check::liveness` judges it (group members are the group table's).
pub fn run_liveness_table(path: &str) {
    run_scenario_table(path, |input, _, check| match check {
        "converges" => Ok(liveness::converges(input)),
        _ => Err(format!("no liveness check `{check}`")),
    });
}

/// Runs every case of a table whose checks read a scenario: `scenario <name>` cases define
/// the scenarios (their input lines are its TOML; the output, its nodes and groups), and a
/// `check <check> .. scenario=<name>` case runs in one defined above it.
fn run_scenario_table(
    path: &str,
    check: impl Fn(&CheckInput<'_>, &Record, &str) -> Result<Vec<Violation>, String>,
) {
    let mut scenarios: BTreeMap<String, Scenario> = BTreeMap::new();
    run_file(path, |case| match case.command.as_str() {
        "scenario" => {
            let [name] = case.flags()[..] else {
                case.fail("a scenario case is `scenario <name>`, its TOML the input lines");
            };
            let text = case.input.join("\n");
            let scenario =
                crate::scenario::parse(Path::new(&format!("{name}.toml")), text.as_bytes())
                    .unwrap_or_else(|e| case.fail(format!("not a scenario: {e}")));
            let out = describe_scenario(&scenario);
            if scenarios.insert(name.to_string(), scenario).is_some() {
                case.fail(format!("scenario `{name}` is defined twice"));
            }
            out
        }
        "check" => {
            let name: String = case.value("scenario");
            let scenario = scenarios
                .get(&name)
                .unwrap_or_else(|| case.fail(format!("no scenario `{name}` defined above")));
            let record = Record::read(case);
            let input = CheckInput {
                scenario,
                events: &record.events,
                history: &record.history,
                nodes: crate::check::NodeData::Dir(Path::new("/nonexistent")),
            };
            run_checks(case, |name| check(&input, &record, name).map(Some))
        }
        _ => case.fail("a case is `scenario <name>` or `check <check> .. scenario=<name>`"),
    });
}

/// `nodes: ..`, then per group `group <id>: members=(..) partitions=(..)`.
fn describe_scenario(scenario: &Scenario) -> String {
    let mut lines = vec![format!("nodes: {}", scenario.node_names().join(" "))];
    for (id, group) in scenario.groups() {
        let partitions: Vec<String> = group.partitions.iter().map(|tp| tp.to_string()).collect();
        lines.push(format!(
            "group {id}: members=({}) partitions=({})",
            group.members.join(", "),
            partitions.join(", ")
        ));
    }
    lines.join("\n")
}

/// Runs every case of the table at `path` through `check` (`None`: no such check).
fn run_table(path: &str, check: impl Fn(&Record, &str) -> Option<Vec<Violation>>) {
    run_file(path, |case| {
        if case.command != "check" {
            case.fail("a checker case is `check <check> ..`");
        }
        let record = Record::read(case);
        run_checks(case, |name| Ok(check(&record, name)))
    });
}

/// The output of the case's checks (its flags), each run by `check` (`Ok(None)`: no such
/// check; `Err`: the case cannot run it, and why).
fn run_checks(
    case: &Case,
    check: impl Fn(&str) -> Result<Option<Vec<Violation>>, String>,
) -> String {
    let checks = case.flags();
    if checks.is_empty() {
        case.fail("name the checks to run: `check <check> ..`");
    }
    let mut out = Vec::new();
    for name in checks {
        let found = check(name)
            .unwrap_or_else(|e| case.fail(e))
            .unwrap_or_else(|| case.fail(format!("no check `{name}` here")));
        out.push(describe(name, &found));
    }
    out.join("\n")
}

/// The violations of the broker check `name`, `None` if there is none of that name.
fn broker_check(facts: &Facts<'_>, name: &str) -> Option<Vec<Violation>> {
    Some(match name {
        "lost-write" => facts.lost_write(),
        "duplicate" => facts.duplicate(),
        "inconsistent-offsets" => facts.inconsistent_offsets(),
        "nonmonotonic-poll" => facts.nonmonotonic_poll(),
        "poll-skip" => facts.poll_skip(),
        "phantom-read" => facts.phantom_read(),
        "reorder" => facts.reorder(),
        "single-leader-per-epoch" => facts.single_leader_per_epoch(),
        "leader-epoch-monotonic" => facts.leader_epoch_monotonic(),
        "hw-monotonic" => facts.hw_monotonic(),
        "committed-prefix-agreement" => facts.committed_prefix_agreement(),
        "no-truncation-below-hw" => facts.no_truncation_below_hw(),
        "single-controller-per-epoch" => facts.single_controller_per_epoch(),
        "controller-epoch-monotonic" => facts.controller_epoch_monotonic(),
        _ => return None,
    })
}

/// `<check>: ok`, or each violation's header line and its indented detail.
fn describe(check: &str, found: &[Violation]) -> String {
    if found.is_empty() {
        return format!("{check}: ok");
    }
    let mut lines = Vec::new();
    for v in found {
        let mut header = v.check.clone();
        if let Some(at) = v.at_ms {
            header.push_str(&format!(" at={at}ms"));
        }
        if let Some(partition) = &v.partition {
            header.push_str(&format!(" partition={partition}"));
        }
        if let Some(node) = &v.node {
            header.push_str(&format!(" node={node}"));
        }
        lines.push(header);
        lines.push(format!("  {}", v.detail));
    }
    lines.join("\n")
}

/// A case's run record.
#[derive(Default)]
struct Record {
    events: Vec<Event>,
    history: Vec<HistoryEntry>,
    /// The `log <broker> <topic/p> ..` lines.
    logs: ReplicaLogs,
    /// The `log <writer> ..` lines.
    writer_logs: BTreeMap<String, FinalLog>,
}

impl Record {
    fn read(case: &Case) -> Record {
        let mut record = Record::default();
        for line in &case.input {
            let fail = |e: String| -> ! { case.fail(format!("`{line}`: {e}")) };
            let words = words(line).unwrap_or_else(|e| fail(e));
            match words.first().map(String::as_str) {
                Some("event") => record
                    .events
                    .push(event(&words[1..]).unwrap_or_else(|e| fail(e))),
                Some("history") => record
                    .history
                    .push(history(&words[1..]).unwrap_or_else(|e| fail(e))),
                Some("log") => {
                    let (tp, node, log) = final_log(&words[1..]).unwrap_or_else(|e| fail(e));
                    match tp {
                        Some(tp) => record.logs.entry(tp).or_default().insert(node, log),
                        None => record.writer_logs.insert(node, log),
                    };
                }
                _ => fail("an input line is `event ..`, `history ..` or `log ..`".into()),
            }
        }
        record
    }
}

/// `<time> <node> <kind> key=value ..` → an `events.jsonl` line → an [`Event`].
fn event(words: &[String]) -> Result<Event, String> {
    let [at, node, kind, detail @ ..] = words else {
        return Err("expected `event <time> <node> <kind> key=value ..`".into());
    };
    let mut line = Map::new();
    line.insert("at_us".into(), at_us(at)?.into());
    line.insert("node".into(), node.as_str().into());
    line.insert("kind".into(), kind.as_str().into());
    line.insert("detail".into(), Value::Object(fields(detail)?));
    let line = Value::Object(line);
    let event: Event = serde_json::from_value(line.clone()).map_err(|_| why_not_an_event(&line))?;
    let back = serde_json::to_value(&event).expect("an event serializes");
    all_read(&line["detail"], &back["detail"])?;
    Ok(event)
}

/// Fails on a key of `given` that the typed value, written `back`, does not have: serde
/// ignores a field it does not know, so a misspelt one would otherwise go unseen.
fn all_read(given: &Value, back: &Value) -> Result<(), String> {
    let unread: Vec<&String> = given
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| !value.is_null() && back.get(key.as_str()).is_none())
        .map(|(key, _)| key)
        .collect();
    match unread.is_empty() {
        true => Ok(()),
        false => Err(format!("unknown field(s) {unread:?}")),
    }
}

/// Why `line` is no event: serde's error for `Announcement` (untagged) names no field, so
/// ask each announcement type whose kinds include this one.
fn why_not_an_event(line: &Value) -> String {
    fn error<T: serde::de::DeserializeOwned>(payload: &Value) -> Option<String> {
        let error = serde_json::from_value::<T>(payload.clone())
            .err()?
            .to_string();
        (!error.starts_with("unknown variant")).then_some(error)
    }
    let payload = serde_json::json!({"kind": line["kind"], "detail": line["detail"]});
    let errors: Vec<String> = [
        error::<ShellEvent>(&payload),
        error::<BrokerEvent>(&payload),
        error::<ControllerEvent>(&payload),
        error::<CoordinatorEvent>(&payload),
        error::<TxnCoordinatorEvent>(&payload),
        error::<ZkServerEvent>(&payload),
        error::<WorldEvent>(&payload),
    ]
    .into_iter()
    .flatten()
    .collect();
    let why = if errors.is_empty() {
        "no event has this kind".to_string()
    } else {
        errors.join("; ")
    };
    format!("not an event ({why}): {line}")
}

/// `<time> <node> <op> key=value ..` → a `history.jsonl` line → a [`HistoryEntry`].
fn history(words: &[String]) -> Result<HistoryEntry, String> {
    let [at, node, op, rest @ ..] = words else {
        return Err("expected `history <time> <node> <op> key=value ..`".into());
    };
    let mut line = Map::new();
    line.insert("at_us".into(), at_us(at)?.into());
    line.insert("node".into(), node.as_str().into());
    line.insert("op".into(), op.as_str().into());
    for (key, value) in fields(rest)? {
        line.insert(key, partitions_as_objects(value));
    }
    let line = Value::Object(line);
    let entry: HistoryEntry = serde_json::from_value(line.clone())
        .map_err(|e| format!("not a history entry ({e}): {line}"))?;
    all_read(
        &line,
        &serde_json::to_value(&entry).expect("an entry serializes"),
    )?;
    Ok(entry)
}

/// `history.jsonl` writes a partition `{"topic", "partition"}`; a table writes `topic/p`.
fn partitions_as_objects(value: Value) -> Value {
    match value {
        Value::String(text) => match partition(&text) {
            Some(tp) => serde_json::to_value(tp).expect("a partition serializes"),
            None => Value::String(text),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(partitions_as_objects).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, partitions_as_objects(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `topic/p` → the partition.
fn partition(text: &str) -> Option<TopicPartition> {
    let (topic, p) = text.split_once('/')?;
    (!topic.is_empty()).then_some(())?;
    Some(TopicPartition::new(topic, p.parse().ok()?))
}

/// `<node> [<topic/p>] [start=N] [end=N] [error=".."] <offset>:<value> ..` → a final log:
/// a broker's replica log of the partition, or a writer's log (no partition: a word with
/// neither `:` nor `=` is the partition).
fn final_log(words: &[String]) -> Result<(Option<TopicPartition>, String, FinalLog), String> {
    let [node, rest @ ..] = words else {
        return Err("expected `log <node> [<topic/p>] <offset>:<value> ..`".into());
    };
    let (tp, rest) = match rest.split_first() {
        Some((tp, rest)) if !tp.contains([':', '=']) => {
            let tp = partition(tp).ok_or_else(|| format!("`{tp}`: expected `topic/p`"))?;
            (Some(tp), rest)
        }
        _ => (None, rest),
    };
    let (settings, records): (Vec<&String>, Vec<&String>) =
        rest.iter().partition(|w| w.contains('='));
    let records: Vec<(u64, String)> = records
        .iter()
        .map(|w| serde_json::from_value(json(w)?).map_err(|e| format!("`{w}`: {e}")))
        .collect::<Result<_, String>>()?;
    let settings = fields(&settings)?;
    let number = |key: &str| -> Result<Option<u64>, String> {
        settings
            .get(key)
            .map(|v| v.as_u64().ok_or(format!("`{key}` is an offset")))
            .transpose()
    };
    let log_start = number("start")?.unwrap_or(records.first().map_or(0, |(o, _)| *o));
    let log_end = number("end")?.unwrap_or(records.last().map_or(log_start, |(o, _)| o + 1));
    let error = match settings.get("error") {
        None => None,
        Some(Value::String(error)) => Some(error.clone()),
        Some(other) => return Err(format!("`error={other}`: a string")),
    };
    if let Some(unknown) = settings
        .keys()
        .find(|k| !["start", "end", "error"].contains(&k.as_str()))
    {
        return Err(format!("`{unknown}=`: a log takes `start`, `end`, `error`"));
    }
    let mut log = FinalLog::new(
        log_start,
        log_end,
        records.iter().map(|(o, v)| (*o, v.as_str())),
    );
    log.error = error;
    Ok((tp, node.clone(), log))
}

/// `10us`, `10ms`, `10s` → microseconds.
fn at_us(text: &str) -> Result<u64, String> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000)
    } else {
        return Err(format!("`{text}`: a time is `<n>us`, `<n>ms` or `<n>s`"));
    };
    number
        .parse::<u64>()
        .map(|n| n * scale)
        .map_err(|e| format!("`{text}`: {e}"))
}
