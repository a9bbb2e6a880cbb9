//! The scenario file a shrink writes: the original text, edited.
//!
//! Owns: turning the original scenario's text into a template — every section, key, comment
//! and layout kept (toml_edit), the `[nemesis]` and `[[fault]]` tables taken out, the name
//! marked `-shrunk` (so its runs get their own run directories) — and the workload numbers
//! a shrink may lower ([`Knob`]s: client counts and rates, partitions, replication factors,
//! brokers, ensemble servers). [`Template::render`] writes one candidate: the knobs' values,
//! `duration`, and the explicit faults appended as `[[fault]]` tables. Whether the result is
//! a valid scenario is the scenario parser's call, made on the text, as `ksim run` makes it.

use super::export::ExplicitFault;
use crate::scenario::format_duration;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// A number in the workload a shrink may lower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knob {
    /// How the progress lines name it: `brokers`, `producer 1 rate`, `topic orders partitions`.
    pub label: String,
    /// Its value in the original.
    pub original: u64,
    /// The least it may be (a client table's `count` may go to 0: the table is removed).
    pub min: u64,
    place: Place,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    /// `[cluster] <key>`.
    Cluster(&'static str),
    /// `<key>` of the `index`-th table of `[[<array>]]`.
    Entry {
        array: &'static str,
        index: usize,
        key: &'static str,
    },
}

/// Client tables whose `count` at 0 removes the table.
const CLIENT_TABLES: [&str; 4] = ["producer", "consumer", "writer", "zk_client"];

/// Which numbers are knobs, in the order a shrink tries them: clients first, then the
/// cluster they load.
const ENTRY_KNOBS: [(&str, &str, u64); 9] = [
    ("producer", "count", 0),
    ("producer", "rate", 1),
    ("consumer", "count", 0),
    ("writer", "count", 0),
    ("writer", "rate", 1),
    ("zk_client", "count", 0),
    ("zk_client", "rate", 1),
    ("topic", "replication.factor", 1),
    ("topic", "partitions", 1),
];
const CLUSTER_KNOBS: [&str; 2] = ["brokers", "zookeepers"];

/// The original scenario, ready to render candidates from.
#[derive(Clone, Debug)]
pub struct Template {
    doc: DocumentMut,
    /// The knobs found in the original, in the order to try them.
    pub knobs: Vec<Knob>,
}

impl Template {
    /// A template of the scenario text `source` (already loaded once: it is valid TOML).
    pub fn new(source: &str) -> Result<Template, String> {
        let mut doc: DocumentMut = source.parse().map_err(|e| format!("{e}"))?;
        doc.remove("nemesis");
        doc.remove("fault");
        if let Some(name) = doc.get("name").and_then(Item::as_str) {
            if !name.ends_with("-shrunk") {
                let renamed = format!("{name}-shrunk");
                set_value(&mut doc["name"], Value::from(renamed));
            }
        }
        let mut knobs = Vec::new();
        for (array, key, min) in ENTRY_KNOBS {
            let Some(tables) = doc.get(array).and_then(Item::as_array_of_tables) else {
                continue;
            };
            for (index, table) in tables.iter().enumerate() {
                let Some(original) = table.get(key).and_then(integer) else {
                    continue;
                };
                let label = match table.get("name").and_then(Item::as_str) {
                    Some(name) if array == "topic" => format!("topic {name} {key}"),
                    _ => format!("{array} {} {key}", index + 1),
                };
                knobs.push(Knob {
                    label,
                    original,
                    min,
                    place: Place::Entry { array, index, key },
                });
            }
        }
        for key in CLUSTER_KNOBS {
            let value = doc
                .get("cluster")
                .and_then(Item::as_table_like)
                .and_then(|cluster| cluster.get(key))
                .and_then(integer);
            if let Some(original) = value {
                knobs.push(Knob {
                    label: key.to_string(),
                    original,
                    min: 1,
                    place: Place::Cluster(key),
                });
            }
        }
        Ok(Template { doc, knobs })
    }

    /// The scenario text of one candidate: `values` (one per knob), `duration_ms`, and
    /// `faults` as `[[fault]]` tables at the end, in their order. `header` (comment lines)
    /// goes first.
    pub fn render(
        &self,
        header: &str,
        values: &[u64],
        duration_ms: u64,
        faults: &[ExplicitFault],
    ) -> String {
        let mut doc = self.doc.clone();
        let mut removed: Vec<(&str, usize)> = Vec::new();
        for (knob, &value) in self.knobs.iter().zip(values) {
            if value == knob.original {
                continue;
            }
            match &knob.place {
                Place::Cluster(key) => {
                    if let Some(item) = doc
                        .get_mut("cluster")
                        .and_then(Item::as_table_like_mut)
                        .and_then(|cluster| cluster.get_mut(key))
                    {
                        set_value(item, Value::from(value as i64));
                    }
                }
                Place::Entry { array, index, key } => {
                    if value == 0 && *key == "count" && CLIENT_TABLES.contains(array) {
                        removed.push((array, *index));
                        continue;
                    }
                    let table = doc
                        .get_mut(array)
                        .and_then(Item::as_array_of_tables_mut)
                        .and_then(|tables| tables.get_mut(*index));
                    if let Some(item) = table.and_then(|t| t.get_mut(key)) {
                        set_value(item, Value::from(value as i64));
                    }
                }
            }
        }
        // Last index first, so the earlier indices still point at their tables.
        removed.sort_by(|a, b| b.cmp(a));
        for (array, index) in removed {
            if let Some(tables) = doc.get_mut(array).and_then(Item::as_array_of_tables_mut) {
                tables.remove(index);
                if tables.is_empty() {
                    doc.remove(array);
                }
            }
        }
        if doc.get("duration").and_then(Item::as_str).is_some() {
            set_value(
                &mut doc["duration"],
                Value::from(format_duration_ms(duration_ms)),
            );
        }
        if !faults.is_empty() {
            let mut tables = ArrayOfTables::new();
            for (i, fault) in faults.iter().enumerate() {
                let mut table = fault_table(fault);
                // After every table of the original, in this order.
                table.set_position(usize::MAX / 2 + i);
                tables.push(table);
            }
            doc.insert("fault", Item::ArrayOfTables(tables));
        }
        format!("{header}{doc}")
    }
}

/// `"12s"`, `"1500ms"`: scenario syntax for a whole number of milliseconds.
pub fn format_duration_ms(ms: u64) -> String {
    format_duration(std::time::Duration::from_millis(ms))
}

fn fault_table(fault: &ExplicitFault) -> Table {
    let mut table = Table::new();
    table.insert("at", toml_edit::value(format_duration_ms(fault.at_ms)));
    table.insert("action", toml_edit::value(fault.action.name()));
    if let Some(target) = &fault.target {
        table.insert("target", toml_edit::value(target.as_str()));
    }
    if let Some(sides) = &fault.sides {
        let mut outer = Array::new();
        for side in sides {
            outer.push(side.iter().map(String::as_str).collect::<Array>());
        }
        table.insert("sides", toml_edit::value(outer));
    }
    if let Some(rate) = fault.rate {
        table.insert("rate", toml_edit::value(rate));
    }
    table
}

/// Replaces a value, keeping the comment and spacing around it.
fn set_value(item: &mut Item, mut value: Value) {
    if let Some(old) = item.as_value() {
        *value.decor_mut() = old.decor().clone();
    }
    *item = Item::Value(value);
}

fn integer(item: &Item) -> Option<u64> {
    item.as_integer().and_then(|v| u64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::FaultAction;
    use std::path::Path;

    const ORIGINAL: &str = r#"name = "demo"
duration = "60s"   # the fault phase
heal = "30s"

[cluster]
zookeepers = 3
brokers = 3 # three of them

[[topic]]
name = "orders"
partitions = 3
"replication.factor" = 3

# The load.
[[producer]]
count = 2
topic = "orders"
rate = 100
[producer.config]
acks = "all"

[[consumer]]
count = 2
topics = ["orders"]

[[fault]]
at = "10s"
action = "kill"
target = "leader(orders/0)"

[nemesis]
actions = ["kill"]
every = "5s..10s"

[legacy]
truncate-to-hw = true
"#;

    fn knob_values(t: &Template) -> Vec<(String, u64)> {
        t.knobs
            .iter()
            .map(|k| (k.label.clone(), k.original))
            .collect()
    }

    #[test]
    fn the_template_keeps_every_other_section_and_finds_the_knobs() {
        let t = Template::new(ORIGINAL).unwrap();
        let labels: Vec<(String, u64)> = knob_values(&t);
        let expected: Vec<(String, u64)> = [
            ("producer 1 count", 2),
            ("producer 1 rate", 100),
            ("consumer 1 count", 2),
            ("topic orders replication.factor", 3),
            ("topic orders partitions", 3),
            ("brokers", 3),
            ("zookeepers", 3),
        ]
        .iter()
        .map(|(l, v)| (l.to_string(), *v))
        .collect();
        assert_eq!(labels, expected);
        let originals: Vec<u64> = t.knobs.iter().map(|k| k.original).collect();
        let text = t.render("", &originals, 60_000, &[]);
        assert!(
            !text.contains("[nemesis]") && !text.contains("[[fault]]"),
            "{text}"
        );
        assert!(text.contains("name = \"demo-shrunk\""), "{text}");
        assert!(text.contains("brokers = 3 # three of them"), "{text}");
        assert!(text.contains("# The load.\n[[producer]]"), "{text}");
        assert!(text.contains("[legacy]\ntruncate-to-hw = true"), "{text}");
    }

    #[test]
    fn a_candidate_renders_to_a_scenario_that_parses_back_to_its_values() {
        let t = Template::new(ORIGINAL).unwrap();
        // producer count 1, rate 25, consumer table removed, partitions 1, brokers 3.
        let values = [1, 25, 0, 3, 1, 3, 3];
        let faults = [
            ExplicitFault {
                at_ms: 10_000,
                action: FaultAction::Partition,
                target: None,
                sides: Some(vec![vec!["broker-1".into()], vec!["*".into()]]),
                rate: None,
                group: 0,
            },
            ExplicitFault {
                at_ms: 12_500,
                action: FaultAction::Loss,
                target: None,
                sides: None,
                rate: Some(0.07),
                group: 1,
            },
            ExplicitFault {
                at_ms: 15_000,
                action: FaultAction::Kill,
                target: Some("broker-2".into()),
                sides: None,
                rate: None,
                group: 2,
            },
        ];
        let text = t.render("# header\n", &values, 20_000, &faults);
        assert!(
            text.starts_with("# header\nname = \"demo-shrunk\""),
            "{text}"
        );
        assert!(
            text.contains("duration = \"20s\"   # the fault phase"),
            "{text}"
        );
        let s = crate::scenario::parse(Path::new("x.toml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(s.name, "demo-shrunk");
        assert_eq!(s.duration.as_millis(), 20_000);
        assert_eq!((s.producers[0].count, s.producers[0].rate), (1, 25));
        assert!(s.consumers.is_empty());
        assert_eq!(s.topics[0].partitions, 1);
        assert!(s.nemesis.is_none());
        assert!(s.legacy.truncate_to_hw);
        let faults: Vec<(u128, &str, Option<String>, Option<f64>)> = s
            .faults
            .iter()
            .map(|f| {
                (
                    f.at.as_millis(),
                    f.action.name(),
                    f.target.as_ref().map(ToString::to_string),
                    f.rate,
                )
            })
            .collect();
        assert_eq!(
            faults,
            vec![
                (10_000, "partition", None, None),
                (12_500, "loss", None, Some(0.07)),
                (15_000, "kill", Some("broker-2".to_string()), None),
            ]
        );
        assert_eq!(
            s.faults[0].sides,
            Some(vec![vec!["broker-1".to_string()], vec!["*".to_string()]])
        );
        // The faults come after every section of the original.
        assert!(text.find("[[fault]]") > text.find("[legacy]"), "{text}");
    }
}
