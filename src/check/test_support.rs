//! Hand-made run records for the checkers' unit tests: a two-writer scenario, writer
//! acknowledgements and world events.

use crate::history::{Event, HistoryEntry, Op};
use crate::scenario::{parse, Scenario};
use serde_json::Value;
use std::path::Path;

/// A scenario with writers `writer-1` and `writer-2`, a 10 s fault phase and a 5 s heal.
pub fn writer_scenario() -> Scenario {
    let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n\
                [[writer]]\ncount = 2\nrate = 10\n";
    parse(Path::new("t.toml"), text.as_bytes()).unwrap()
}

/// `node` acknowledged `value` at `offset`.
pub fn append_ok(at_us: u64, node: &str, value: &str, offset: u64) -> HistoryEntry {
    HistoryEntry {
        at_us,
        node: node.into(),
        op: Op::AppendOk {
            value: value.into(),
            offset,
        },
    }
}

/// An event of the world (`heal`, `stop`, ...) without details.
pub fn world_event(at_us: u64, kind: &str) -> Event {
    Event {
        at_us,
        node: "world".into(),
        kind: kind.into(),
        detail: Value::Null,
    }
}
