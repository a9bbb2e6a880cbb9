//! Fault targets: their syntax (`writer-2`, `leader(orders/0)`, `isolate(controller)`, ...)
//! and whether one names something that exists in a given scenario.
//!
//! Owns: turning target text into a [`Target`] and the user-facing explanations when that
//! fails — a target that names no node lists the nodes there are, because the usual mistake
//! is an off-by-one or a kind the scenario does not have.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{NodeCounts, Target};

/// What a scenario has that targets can name.
pub(super) struct World {
    pub counts: NodeCounts,
    /// Topic name → partitions.
    pub topics: BTreeMap<String, u32>,
    /// Groups used by some `[[consumer]]`.
    pub groups: BTreeSet<String>,
}

/// Every form a target can take, quoted when a target does not parse.
const TARGET_FORMS: &str =
    "a node like `writer-1`, `broker-2` or `zk-1`, `leader(<topic>/<partition>)`, \
     `controller`, `zk-leader`, `coordinator(<group>)`, `random-broker`, `random-zk`, \
     `random-writer`, `killed`, `all-brokers`, `all-writers`, or a partition shape \
     `halves`, `bridge`, `isolate(<target>)`";

/// Parses target syntax; says nothing about whether the target exists.
pub(super) fn parse_target(text: &str) -> Result<Target, String> {
    let keyword = match text {
        "controller" => Some(Target::Controller),
        "zk-leader" => Some(Target::ZkLeader),
        "random-broker" => Some(Target::RandomBroker),
        "random-zk" => Some(Target::RandomZk),
        "random-writer" => Some(Target::RandomWriter),
        "killed" => Some(Target::Killed),
        "all-brokers" => Some(Target::AllBrokers),
        "all-writers" => Some(Target::AllWriters),
        "halves" => Some(Target::Halves),
        "bridge" => Some(Target::Bridge),
        _ => None,
    };
    if let Some(target) = keyword {
        return Ok(target);
    }
    if let Some(inner) = call_argument(text, "leader") {
        let (topic, partition) = inner
            .rsplit_once('/')
            .and_then(|(topic, p)| Some((topic, parse_partition(p)?)))
            .filter(|(topic, _)| !topic.is_empty())
            .ok_or_else(|| {
                format!(
                    "expected `leader(<topic>/<partition>)` like `leader(orders/0)`, \
                     found `{text}`"
                )
            })?;
        return Ok(Target::Leader {
            topic: topic.to_string(),
            partition,
        });
    }
    if let Some(group) = call_argument(text, "coordinator") {
        if group.is_empty() {
            return Err(format!(
                "expected `coordinator(<group>)` like `coordinator(billing)`, found `{text}`"
            ));
        }
        return Ok(Target::Coordinator(group.to_string()));
    }
    if let Some(inner) = call_argument(text, "isolate") {
        let inner = parse_target(inner)?;
        if inner.is_partition_shape() {
            return Err(format!(
                "`isolate(...)` takes a node or a node selector, not the partition shape `{inner}`"
            ));
        }
        return Ok(Target::Isolate(Box::new(inner)));
    }
    if node_kind(text).is_some() {
        return Ok(Target::Node(text.to_string()));
    }
    Err(
        match super::build::did_you_mean(text, KEYWORDS.iter().copied()) {
            Some(hint) => format!("unknown target `{text}`; did you mean `{hint}`?"),
            None => format!("unknown target `{text}`; expected {TARGET_FORMS}"),
        },
    )
}

/// The keyword targets, for suggestions.
const KEYWORDS: [&str; 10] = [
    "controller",
    "zk-leader",
    "random-broker",
    "random-zk",
    "random-writer",
    "killed",
    "all-brokers",
    "all-writers",
    "halves",
    "bridge",
];

/// `name(<argument>)` → the argument.
fn call_argument<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn parse_partition(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The kind prefix of a node-shaped name (`writer-3` → `writer`), whether or not it exists.
fn node_kind(text: &str) -> Option<&str> {
    let (kind, number) = text.rsplit_once('-')?;
    let known = [
        "zk",
        "broker",
        "producer",
        "consumer",
        "writer",
        "zk-client",
        "processor",
    ]
    .contains(&kind);
    let numeric = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    (known && numeric).then_some(kind)
}

/// Checks that a parsed target names something `world` has.
pub(super) fn check_target(target: &Target, world: &World) -> Result<(), String> {
    let needs = |count: u32, kind: &str| {
        if count > 0 {
            Ok(())
        } else {
            Err(format!(
                "target `{target}` needs {kind} nodes, and this scenario has none ({})",
                nodes_are(&world.counts)
            ))
        }
    };
    match target {
        Target::Node(name) => check_node(name, &format!("target `{name}`"), &world.counts),
        Target::Leader { topic, partition } => match world.topics.get(topic) {
            None => Err(format!(
                "target `{target}` names no topic; {}",
                listing(
                    "topics are",
                    "this scenario has no [[topic]]",
                    world.topics.keys()
                )
            )),
            Some(&partitions) if *partition >= partitions => Err(format!(
                "target `{target}` names no partition: topic `{topic}` has {partitions} \
                 partition(s), numbered 0 to {}",
                partitions - 1
            )),
            Some(_) => Ok(()),
        },
        Target::Coordinator(group) if !world.groups.contains(group) => Err(format!(
            "target `{target}`: no [[consumer]] or [[processor]] uses group `{group}`; {}",
            listing(
                "groups are",
                "no [[consumer]] has a `group`",
                world.groups.iter()
            )
        )),
        Target::Coordinator(_) => Ok(()),
        Target::Controller | Target::RandomBroker | Target::AllBrokers => {
            needs(world.counts.brokers, "broker")
        }
        Target::ZkLeader | Target::RandomZk => needs(world.counts.zookeepers, "zk"),
        Target::RandomWriter | Target::AllWriters => needs(world.counts.writers, "writer"),
        Target::Killed | Target::Halves | Target::Bridge => Ok(()),
        Target::Isolate(inner) => check_target(inner, world),
    }
}

/// Checks that `name` is one of the scenario's nodes; `what` introduces it in the error.
pub(super) fn check_node(name: &str, what: &str, counts: &NodeCounts) -> Result<(), String> {
    let kind_count = node_kind(name).and_then(|kind| Some((kind, counts.of_kind(kind)?)));
    if let Some((kind, count)) = kind_count {
        // Nodes are numbered 1..=count without leading zeros: compare by name.
        let number = name[kind.len() + 1..].parse::<u32>().ok();
        if number.is_some_and(|n| (1..=count).contains(&n) && format!("{kind}-{n}") == name) {
            return Ok(());
        }
    }
    Err(match kind_count {
        Some((kind, 0)) => format!(
            "{what} names no node: this scenario has no {kind} nodes ({})",
            nodes_are(counts)
        ),
        _ => format!("{what} names no node; {}", nodes_are(counts)),
    })
}

/// "nodes are zk-1..zk-3, writer-1, writer-2", runs of more than four shortened.
fn nodes_are(counts: &NodeCounts) -> String {
    let runs: Vec<String> = counts
        .kinds()
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(kind, count)| match count {
            1..=4 => (1..=count)
                .map(|i| format!("{kind}-{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => format!("{kind}-1..{kind}-{count}"),
        })
        .collect();
    if runs.is_empty() {
        "this scenario has no nodes".to_string()
    } else {
        format!("nodes are {}", runs.join(", "))
    }
}

/// "`<lead>` a, b" or `none` when there is nothing to list.
fn listing<'a>(lead: &str, none: &str, items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.map(String::as_str).collect();
    if items.is_empty() {
        none.to_string()
    } else {
        format!("{lead} {}", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World {
            counts: NodeCounts {
                zookeepers: 0,
                brokers: 0,
                producers: 0,
                consumers: 0,
                writers: 2,
                zk_clients: 0,
                processors: 0,
            },
            topics: BTreeMap::from([("orders".to_string(), 3)]),
            groups: BTreeSet::from(["billing".to_string()]),
        }
    }

    #[test]
    fn every_target_form_parses_and_prints_back() {
        for text in [
            "writer-1",
            "broker-12",
            "zk-3",
            "producer-1",
            "consumer-2",
            "leader(orders/0)",
            "leader(a/b/7)",
            "controller",
            "zk-leader",
            "coordinator(billing)",
            "random-broker",
            "random-zk",
            "random-writer",
            "killed",
            "all-brokers",
            "all-writers",
            "halves",
            "bridge",
            "isolate(broker-1)",
            "isolate(leader(orders/2))",
        ] {
            let target = parse_target(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(target.to_string(), text);
        }
        assert_eq!(
            parse_target("leader(orders/2)"),
            Ok(Target::Leader {
                topic: "orders".into(),
                partition: 2
            })
        );
    }

    #[test]
    fn malformed_targets_say_what_is_expected() {
        for (text, expected) in [
            ("", "unknown target ``; expected a node like"),
            ("writer", "unknown target `writer`"),
            ("node-1", "unknown target `node-1`"),
            ("leader(orders)", "expected `leader(<topic>/<partition>)`"),
            ("leader(/0)", "expected `leader(<topic>/<partition>)`"),
            (
                "leader(orders/-1)",
                "expected `leader(<topic>/<partition>)`",
            ),
            ("coordinator()", "expected `coordinator(<group>)`"),
            ("isolate(halves)", "not the partition shape `halves`"),
            ("isolate(foo)", "unknown target `foo`"),
            ("controler", "did you mean `controller`?"),
        ] {
            let err = parse_target(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_target_naming_no_node_lists_the_nodes() {
        let world = world();
        assert_eq!(
            check_target(&Target::Node("writer-2".into()), &world),
            Ok(())
        );
        assert_eq!(
            check_target(&Target::Node("writer-3".into()), &world).unwrap_err(),
            "target `writer-3` names no node; nodes are writer-1, writer-2"
        );
        assert_eq!(
            check_target(&Target::Node("broker-1".into()), &world).unwrap_err(),
            "target `broker-1` names no node: this scenario has no broker nodes \
             (nodes are writer-1, writer-2)"
        );
        for not_a_node in ["writer-0", "writer-01", "writer-99999999999999"] {
            assert!(check_target(&Target::Node(not_a_node.into()), &world).is_err());
        }
        let many = NodeCounts {
            zookeepers: 3,
            brokers: 5,
            ..NodeCounts::default()
        };
        assert_eq!(
            check_node("zk-4", "node `zk-4`", &many).unwrap_err(),
            "node `zk-4` names no node; nodes are zk-1, zk-2, zk-3, broker-1..broker-5"
        );
    }

    #[test]
    fn selectors_need_nodes_of_their_kind() {
        let world = world();
        assert_eq!(check_target(&Target::RandomWriter, &world), Ok(()));
        assert_eq!(check_target(&Target::Killed, &world), Ok(()));
        assert!(check_target(&Target::Controller, &world)
            .unwrap_err()
            .contains("needs broker nodes"));
        assert!(check_target(&Target::RandomZk, &world)
            .unwrap_err()
            .contains("needs zk nodes"));
        assert!(check_target(&Target::Isolate(Box::new(Target::AllBrokers)), &world).is_err());
    }

    #[test]
    fn leaders_and_coordinators_need_their_topic_and_group() {
        let world = world();
        let leader = |topic: &str, partition| Target::Leader {
            topic: topic.into(),
            partition,
        };
        assert_eq!(check_target(&leader("orders", 2), &world), Ok(()));
        assert!(check_target(&leader("orders", 3), &world)
            .unwrap_err()
            .contains("names no partition: topic `orders` has 3 partition(s), numbered 0 to 2"));
        assert!(check_target(&leader("payments", 0), &world)
            .unwrap_err()
            .contains("topics are orders"));
        assert_eq!(
            check_target(&Target::Coordinator("billing".into()), &world),
            Ok(())
        );
        assert!(check_target(&Target::Coordinator("audit".into()), &world)
            .unwrap_err()
            .contains("groups are billing"));
    }
}
