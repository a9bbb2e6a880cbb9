//! Partition assignors: the group leader's choice of who reads which partition, and the
//! consumer protocol's subscription and assignment bytes they travel in.
//!
//! Owns: `range` (Kafka's RangeAssignor, eager: per topic, the subscribed members take
//! consecutive ranges, the first ones one more, in Kafka's member order: static members by
//! `group.instance.id`, then dynamic ones by member id) and `cooperative-sticky` (KIP-429: keep what
//! each member owns within a balanced quota, spread the rest over the members with room,
//! and leave out of this generation every partition that changes owner, so its old owner
//! revokes it first and the next rebalance hands it over).
//!
//! Cooperative-sticky follows Kafka's `AbstractStickyAssignor` in outline: members with
//! equal subscriptions share by quota, others by the general balance (no member holds two
//! more than one that could take one of its partitions); the exact choices of which
//! partition moves are ksim's own.
//!
//! Simplifications: subscriptions and assignments are JSON rather than Kafka's consumer
//! protocol schemas; the balance is by partition count over the whole subscription, not per
//! topic.

use crate::broker::proto::Generation;
use crate::broker::{Bytes, TopicPartition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `partition.assignment.strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    /// Eager range assignment.
    Range,
    /// KIP-429 cooperative sticky assignment.
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name the group votes on.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor of a protocol name.
    pub fn named(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "cooperative-sticky" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    /// Revokes only what moves (and rebalances again), rather than everything first.
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }
}

/// A member's subscription: its topics and (cooperative) what it owns now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Topics it reads.
    pub topics: Vec<String>,
    /// Partitions it owns.
    pub owned: Vec<TopicPartition>,
    /// The generation it owned them in ([`Generation::NONE`] if none).
    pub generation: Generation,
    /// Its `group.instance.id` if it is a static member: not in the protocol bytes, the
    /// coordinator tells the leader (JoinGroup's member list), as Kafka's
    /// `Subscription.groupInstanceId`.
    #[serde(skip)]
    pub group_instance_id: Option<String>,
}

/// A member's assignment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Partitions it is to own.
    pub partitions: Vec<TopicPartition>,
}

impl Subscription {
    /// Its protocol bytes.
    pub fn encode(&self) -> Bytes {
        Bytes(serde_json::to_vec(self).expect("plain data serializes"))
    }

    /// From protocol bytes (`None` if they are not a subscription).
    pub fn decode(bytes: &Bytes) -> Option<Subscription> {
        serde_json::from_slice(&bytes.0).ok()
    }
}

impl Assignment {
    /// Its protocol bytes.
    pub fn encode(&self) -> Bytes {
        Bytes(serde_json::to_vec(self).expect("plain data serializes"))
    }

    /// From protocol bytes; empty bytes are an empty assignment (a member the leader
    /// left out).
    pub fn decode(bytes: &Bytes) -> Option<Assignment> {
        if bytes.0.is_empty() {
            return Some(Assignment::default());
        }
        serde_json::from_slice(&bytes.0).ok()
    }
}

/// Assigns `partitions` (per topic, its partition count) among `members` (member id →
/// subscription). `legacy_no_holdback` (a canary, `[legacy] cooperative-no-holdback`) makes
/// cooperative-sticky hand a moving partition to its new owner at once, while the old owner
/// still holds it.
pub fn assign(
    assignor: Assignor,
    partitions: &BTreeMap<String, u32>,
    members: &BTreeMap<String, Subscription>,
    legacy_no_holdback: bool,
) -> BTreeMap<String, Vec<TopicPartition>> {
    match assignor {
        Assignor::Range => range(partitions, members),
        Assignor::CooperativeSticky => cooperative_sticky(partitions, members, legacy_no_holdback),
    }
}

fn range(
    partitions: &BTreeMap<String, u32>,
    members: &BTreeMap<String, Subscription>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out: BTreeMap<String, Vec<TopicPartition>> =
        members.keys().map(|m| (m.clone(), Vec::new())).collect();
    for (topic, &count) in partitions {
        let mut subscribed: Vec<(&String, &Subscription)> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .collect();
        subscribed.sort_by(|a, b| range_order(*a, *b));
        if subscribed.is_empty() {
            continue;
        }
        let n = subscribed.len() as u32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, (member, _)) in subscribed.into_iter().enumerate() {
            let take = each + u32::from((i as u32) < extra);
            let list = out.get_mut(member).expect("every member listed");
            list.extend((next..next + take).map(|p| TopicPartition::new(topic.clone(), p)));
            next += take;
        }
    }
    out
}

/// The order in which the range assignor hands out each topic's ranges (Kafka's
/// `MemberInfo.compareTo`): static members first, by `group.instance.id`, so a restarted
/// static member gets its ranges back under a new member id; then dynamic members by member
/// id.
fn range_order(a: (&String, &Subscription), b: (&String, &Subscription)) -> std::cmp::Ordering {
    match (&a.1.group_instance_id, &b.1.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.0.cmp(b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(b.0),
    }
}

fn cooperative_sticky(
    partitions: &BTreeMap<String, u32>,
    members: &BTreeMap<String, Subscription>,
    legacy_no_holdback: bool,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let all: Vec<TopicPartition> = partitions
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .filter(|tp| {
            members
                .values()
                .any(|s| s.topics.iter().any(|t| *t == tp.topic))
        })
        .collect();
    // Who owns what now: a partition claimed twice goes to the claim of the newer
    // generation (the other is a zombie's), ties to the first member in id order.
    let mut owner: BTreeMap<&TopicPartition, (&String, Generation)> = BTreeMap::new();
    for (member, sub) in members {
        for tp in &sub.owned {
            if !all.contains(tp) || !sub.topics.iter().any(|t| *t == tp.topic) {
                continue;
            }
            match owner.get(tp) {
                Some((_, g)) if *g >= sub.generation => {}
                _ => {
                    owner.insert(tp, (member, sub.generation));
                }
            }
        }
    }
    // Kafka's AbstractStickyAssignor: equal subscriptions get the quota assignment, any
    // other group the general one.
    let first_topics: Option<BTreeSet<&String>> =
        members.values().next().map(|s| s.topics.iter().collect());
    let uniform = members
        .values()
        .all(|s| Some(s.topics.iter().collect::<BTreeSet<_>>()) == first_topics);
    let next = if uniform {
        by_quota(&all, members, &owner)
    } else {
        general(&all, members, &owner)
    };
    // KIP-429: a partition still owned by another member is not handed out yet.
    next.into_iter()
        .map(|(member, list)| {
            let kept = list
                .into_iter()
                .filter(|tp| legacy_no_holdback || owner.get(tp).is_none_or(|(o, _)| *o == member))
                .collect();
            (member.clone(), kept)
        })
        .collect()
}

/// Who owns what as the round starts: a partition to its claimant of the newest generation.
type Owners<'a> = BTreeMap<&'a TopicPartition, (&'a String, Generation)>;

/// Equal subscriptions: everyone gets `floor` or `floor + 1` of the partitions; owned ones
/// are kept within that quota (members owning the most keep first), the rest go one at a
/// time to the member with the fewest.
fn by_quota<'a>(
    all: &[TopicPartition],
    members: &'a BTreeMap<String, Subscription>,
    owner: &Owners<'a>,
) -> BTreeMap<&'a String, Vec<TopicPartition>> {
    let m = members.len().max(1);
    let (floor, ceil_slots) = (all.len() / m, all.len() % m);
    let mut ceil_left = ceil_slots;
    let mut next: BTreeMap<&String, Vec<TopicPartition>> =
        members.keys().map(|m| (m, Vec::new())).collect();
    // Keep owned partitions within the quota: members owning the most keep first.
    let mut by_owned: Vec<&String> = members.keys().collect();
    let owned_count = |m: &String| owner.values().filter(|(o, _)| *o == m).count();
    by_owned.sort_by_key(|m| std::cmp::Reverse(owned_count(m)));
    let mut taken: BTreeSet<&TopicPartition> = BTreeSet::new();
    for member in by_owned {
        let mine: Vec<&TopicPartition> = owner
            .iter()
            .filter(|(_, (o, _))| *o == member)
            .map(|(tp, _)| *tp)
            .collect();
        let quota = if mine.len() > floor && ceil_left > 0 {
            ceil_left -= 1;
            floor + 1
        } else {
            floor
        };
        for tp in mine.into_iter().take(quota) {
            next.get_mut(member).expect("listed").push(*tp);
            taken.insert(tp);
        }
    }
    // The rest, one at a time, to the subscribed member with the fewest (then id order),
    // without passing the quota.
    for tp in all.iter().filter(|tp| !taken.contains(tp)) {
        let target = members
            .iter()
            .filter(|(_, s)| s.topics.iter().any(|t| *t == tp.topic))
            .map(|(m, _)| m)
            .filter(|m| {
                let have = next[*m].len();
                have < floor || (have == floor && ceil_left > 0)
            })
            .min_by_key(|m| next[*m].len())
            .or_else(|| {
                members
                    .iter()
                    .filter(|(_, s)| s.topics.iter().any(|t| *t == tp.topic))
                    .map(|(m, _)| m)
                    .min_by_key(|m| next[*m].len())
            });
        if let Some(target) = target {
            if next[target].len() == floor {
                ceil_left = ceil_left.saturating_sub(1);
            }
            next.get_mut(target).expect("listed").push(*tp);
        }
    }
    next
}

/// Differing subscriptions (Kafka's general assignment): owned partitions stay; the
/// unowned go, those with the fewest possible owners first, to the subscribed member with
/// the fewest; then, while some member holds two more than another member that could take
/// one of its partitions, one such partition moves (from the member holding the most;
/// preferring one it did not own before the round, then the last in partition order) to
/// the eligible member with the fewest. Every move lowers the sum of squared counts, so
/// this ends, balanced as Kafka's tests define it: no member holds two more than a member
/// subscribed to one of its partitions' topics.
fn general<'a>(
    all: &[TopicPartition],
    members: &'a BTreeMap<String, Subscription>,
    owner: &Owners<'a>,
) -> BTreeMap<&'a String, Vec<TopicPartition>> {
    let reads = |m: &String, tp: &TopicPartition| members[m].topics.iter().any(|t| *t == tp.topic);
    let mut next: BTreeMap<&String, BTreeSet<TopicPartition>> =
        members.keys().map(|m| (m, BTreeSet::new())).collect();
    for (tp, (member, _)) in owner {
        next.get_mut(member).expect("listed").insert(*(*tp));
    }
    let mut unowned: Vec<&TopicPartition> =
        all.iter().filter(|tp| !owner.contains_key(tp)).collect();
    unowned.sort_by_key(|tp| (members.keys().filter(|m| reads(m, tp)).count(), *tp));
    for tp in unowned {
        let target = members
            .keys()
            .filter(|m| reads(m, tp))
            .min_by_key(|m| (next[*m].len(), *m));
        if let Some(target) = target {
            next.get_mut(target).expect("listed").insert(*tp);
        }
    }
    // Partitions handed on level (below), each at most once a round: the loop ends.
    let mut shifted: BTreeSet<TopicPartition> = BTreeSet::new();
    loop {
        let mut heaviest: Vec<&String> = members.keys().collect();
        heaviest.sort_by_key(|m| (std::cmp::Reverse(next[*m].len()), *m));
        let step = heaviest.into_iter().find_map(|from| {
            let held = next[from].len();
            let kept = |tp: &TopicPartition| owner.get(tp).is_some_and(|(o, _)| *o == from);
            let mut candidates: Vec<&TopicPartition> = next[from].iter().collect();
            // Not owned before the round first, then from the last partition back.
            candidates.sort_by_key(|tp| (kept(tp), std::cmp::Reverse(*tp)));
            let (to, tp) = candidates.into_iter().find_map(|tp| {
                members
                    .keys()
                    .filter(|m| *m != from && reads(m, tp) && next[*m].len() + 1 < held)
                    .min_by_key(|m| (next[*m].len(), *m))
                    .map(|to| (to, *tp))
            })?;
            if !kept(&tp) {
                return Some((from, to, tp));
            }
            // The move would revoke a partition `from` owns. A partition it was only just
            // handed this round may go instead to another member left level with it: no
            // revocation, and the follow-up rebalance has nothing more to move.
            let level = next[from]
                .iter()
                .filter(|p| !kept(p) && !shifted.contains(*p))
                .find_map(|p| {
                    members
                        .keys()
                        .filter(|m| *m != from && reads(m, p) && next[*m].len() + 1 == held)
                        .min_by_key(|m| *m)
                        .map(|other| (from, other, *p))
                });
            Some(level.unwrap_or((from, to, tp)))
        });
        let Some((from, to, tp)) = step else { break };
        if next[to].len() + 1 == next[from].len() {
            shifted.insert(tp);
        }
        next.get_mut(from).expect("listed").remove(&tp);
        next.get_mut(to).expect("listed").insert(tp);
    }
    next.into_iter()
        .map(|(m, set)| (m, set.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: u32) -> TopicPartition {
        TopicPartition::new("orders", p)
    }

    fn sub(owned: &[u32], generation: i32) -> Subscription {
        Subscription {
            topics: vec!["orders".into()],
            owned: owned.iter().map(|&p| tp(p)).collect(),
            generation: Generation(generation),
            group_instance_id: None,
        }
    }

    fn parts(n: u32) -> BTreeMap<String, u32> {
        BTreeMap::from([("orders".to_string(), n)])
    }

    fn list(ps: &[u32]) -> Vec<TopicPartition> {
        ps.iter().map(|&p| tp(p)).collect()
    }

    #[test]
    fn range_gives_consecutive_ranges_the_first_members_one_more() {
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[], -1)),
            ("b".to_string(), sub(&[], -1)),
            ("c".to_string(), sub(&[], -1)),
        ]);
        let out = assign(Assignor::Range, &parts(7), &members, false);
        assert_eq!(out["a"], list(&[0, 1, 2]));
        assert_eq!(out["b"], list(&[3, 4]));
        assert_eq!(out["c"], list(&[5, 6]));
    }

    /// One range case as data: `(member id, group.instance.id, topics)` per member,
    /// partitions per topic, and what each member is to get (`topic/partition`).
    struct RangeCase {
        name: &'static str,
        partitions: &'static [(&'static str, u32)],
        members: &'static [(&'static str, Option<&'static str>, &'static [&'static str])],
        expected: &'static [(&'static str, &'static [&'static str])],
    }

    /// Cases of Kafka's `RangeAssignorTest` (apache/kafka, clients), as data.
    const RANGE_CASES: &[RangeCase] = &[
        RangeCase {
            name: "testOneConsumerNonexistentTopic",
            partitions: &[],
            members: &[("consumer1", None, &["topic1"])],
            expected: &[("consumer1", &[])],
        },
        RangeCase {
            name: "testOnlyAssignsPartitionsFromSubscribedTopics",
            partitions: &[("topic1", 3), ("other", 3)],
            members: &[("consumer1", None, &["topic1"])],
            expected: &[("consumer1", &["topic1/0", "topic1/1", "topic1/2"])],
        },
        RangeCase {
            name: "testOneConsumerMultipleTopics",
            partitions: &[("topic1", 1), ("topic2", 2)],
            members: &[("consumer1", None, &["topic1", "topic2"])],
            expected: &[("consumer1", &["topic1/0", "topic2/0", "topic2/1"])],
        },
        RangeCase {
            name: "testTwoConsumersOneTopicOnePartition",
            partitions: &[("topic1", 1)],
            members: &[
                ("consumer1", None, &["topic1"]),
                ("consumer2", None, &["topic1"]),
            ],
            expected: &[("consumer1", &["topic1/0"]), ("consumer2", &[])],
        },
        RangeCase {
            name: "testMultipleConsumersMixedTopics",
            partitions: &[("topic1", 3), ("topic2", 2)],
            members: &[
                ("consumer1", None, &["topic1"]),
                ("consumer2", None, &["topic1", "topic2"]),
                ("consumer3", None, &["topic1"]),
            ],
            expected: &[
                ("consumer1", &["topic1/0"]),
                ("consumer2", &["topic1/1", "topic2/0", "topic2/1"]),
                ("consumer3", &["topic1/2"]),
            ],
        },
        RangeCase {
            name: "testTwoStaticConsumersTwoTopicsSixPartitions",
            partitions: &[("topic1", 3), ("topic2", 3)],
            members: &[
                ("consumer-b", Some("instance1"), &["topic1", "topic2"]),
                ("consumer-a", Some("instance2"), &["topic1", "topic2"]),
            ],
            expected: &[
                (
                    "consumer-b",
                    &["topic1/0", "topic1/1", "topic2/0", "topic2/1"],
                ),
                ("consumer-a", &["topic1/2", "topic2/2"]),
            ],
        },
        RangeCase {
            name: "testOneStaticConsumerAndOneDynamicConsumerTwoTopicsSixPartitions",
            partitions: &[("topic1", 3), ("topic2", 3)],
            members: &[
                ("consumer-b", Some("instance1"), &["topic1", "topic2"]),
                ("consumer-a", None, &["topic1", "topic2"]),
            ],
            expected: &[
                (
                    "consumer-b",
                    &["topic1/0", "topic1/1", "topic2/0", "topic2/1"],
                ),
                ("consumer-a", &["topic1/2", "topic2/2"]),
            ],
        },
        RangeCase {
            name: "testStaticMemberRangeAssignmentPersistent (first generation)",
            partitions: &[("topic1", 5), ("topic2", 4)],
            members: &[
                ("consumer1", Some("instance1"), &["topic1", "topic2"]),
                ("consumer2", Some("instance2"), &["topic1", "topic2"]),
                ("consumer3", Some("instance3"), &["topic1", "topic2"]),
                ("consumer4", None, &["topic1", "topic2"]),
            ],
            expected: &[
                ("consumer1", &["topic1/0", "topic1/1", "topic2/0"]),
                ("consumer2", &["topic1/2", "topic2/1"]),
                ("consumer3", &["topic1/3", "topic2/2"]),
                ("consumer4", &["topic1/4", "topic2/3"]),
            ],
        },
        RangeCase {
            name: "testStaticMemberRangeAssignmentPersistent (dynamic member replaced)",
            partitions: &[("topic1", 5), ("topic2", 4)],
            members: &[
                ("consumer1", Some("instance1"), &["topic1", "topic2"]),
                ("consumer2", Some("instance2"), &["topic1", "topic2"]),
                ("consumer3", Some("instance3"), &["topic1", "topic2"]),
                ("consumer5", None, &["topic1", "topic2"]),
            ],
            expected: &[
                ("consumer1", &["topic1/0", "topic1/1", "topic2/0"]),
                ("consumer2", &["topic1/2", "topic2/1"]),
                ("consumer3", &["topic1/3", "topic2/2"]),
                ("consumer5", &["topic1/4", "topic2/3"]),
            ],
        },
        RangeCase {
            name: "testStaticMemberRangeAssignmentPersistentAfterMemberIdChanges (before)",
            partitions: &[("topic1", 5), ("topic2", 5)],
            members: &[
                ("consumer1", Some("instance1"), &["topic1", "topic2"]),
                ("consumer2", Some("instance2"), &["topic1", "topic2"]),
                ("consumer3", Some("instance3"), &["topic1", "topic2"]),
            ],
            expected: &[
                (
                    "consumer1",
                    &["topic1/0", "topic1/1", "topic2/0", "topic2/1"],
                ),
                (
                    "consumer2",
                    &["topic1/2", "topic1/3", "topic2/2", "topic2/3"],
                ),
                ("consumer3", &["topic1/4", "topic2/4"]),
            ],
        },
        RangeCase {
            // instance2 and instance3 rejoined under new member ids that sort the other way.
            name: "testStaticMemberRangeAssignmentPersistentAfterMemberIdChanges (after)",
            partitions: &[("topic1", 5), ("topic2", 5)],
            members: &[
                ("consumer1", Some("instance1"), &["topic1", "topic2"]),
                ("consumer5", Some("instance2"), &["topic1", "topic2"]),
                ("consumer4", Some("instance3"), &["topic1", "topic2"]),
            ],
            expected: &[
                (
                    "consumer1",
                    &["topic1/0", "topic1/1", "topic2/0", "topic2/1"],
                ),
                (
                    "consumer5",
                    &["topic1/2", "topic1/3", "topic2/2", "topic2/3"],
                ),
                ("consumer4", &["topic1/4", "topic2/4"]),
            ],
        },
    ];

    #[test]
    fn range_assigns_as_kafkas_range_assignor_tests() {
        for case in RANGE_CASES {
            let partitions: BTreeMap<String, u32> = case
                .partitions
                .iter()
                .map(|(t, n)| (t.to_string(), *n))
                .collect();
            let members: BTreeMap<String, Subscription> = case
                .members
                .iter()
                .map(|(id, instance, topics)| {
                    let subscription = Subscription {
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                        group_instance_id: instance.map(str::to_string),
                        ..Subscription::default()
                    };
                    (id.to_string(), subscription)
                })
                .collect();
            let out = assign(Assignor::Range, &partitions, &members, false);
            for (member, expected) in case.expected {
                let got: BTreeSet<String> = out[*member].iter().map(|tp| tp.to_string()).collect();
                let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
                assert_eq!(got, want, "{}: {member}", case.name);
            }
            assert_eq!(out.len(), case.expected.len(), "{}", case.name);
        }
    }

    #[test]
    fn cooperative_sticky_keeps_what_is_owned_and_holds_back_what_moves() {
        // a owned everything; b joins: a keeps 3 of 6, the other 3 are held back until a
        // revokes them (they appear in nobody's assignment this generation).
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[0, 1, 2, 3, 4, 5], 1)),
            ("b".to_string(), sub(&[], -1)),
        ]);
        let first = assign(Assignor::CooperativeSticky, &parts(6), &members, false);
        assert_eq!(first["a"], list(&[0, 1, 2]));
        assert!(first["b"].is_empty());
        // Next generation: a owns 0..3, nobody owns 3..6: b gets them.
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[0, 1, 2], 2)),
            ("b".to_string(), sub(&[], 2)),
        ]);
        let second = assign(Assignor::CooperativeSticky, &parts(6), &members, false);
        assert_eq!(second["a"], list(&[0, 1, 2]));
        assert_eq!(second["b"], list(&[3, 4, 5]));
    }

    #[test]
    fn cooperative_sticky_never_gives_one_partition_to_two_members() {
        // Both claim partition 0 (b is a zombie of generation 1): the newer claim wins.
        let members = BTreeMap::from([
            ("a".to_string(), sub(&[0, 1], 3)),
            ("b".to_string(), sub(&[0, 2], 1)),
            ("c".to_string(), sub(&[], -1)),
        ]);
        let out = assign(Assignor::CooperativeSticky, &parts(5), &members, false);
        let mut seen = BTreeSet::new();
        for partitions in out.values() {
            for p in partitions {
                assert!(seen.insert(*p), "{p} assigned twice: {out:?}");
            }
        }
        assert!(out["a"].contains(&tp(0)));
        assert!(!out["b"].contains(&tp(0)));
        // Balanced once everything settles: nobody above ceil(5/3) = 2.
        assert!(out.values().all(|p| p.len() <= 2), "{out:?}");
    }

    #[test]
    fn cooperative_sticky_assigns_mixed_subscriptions_as_kafkas_test() {
        // Kafka's `testMultipleConsumersMixedTopicSubscriptions` (AbstractStickyAssignorTest):
        // topic2 only consumer2 reads, so it holds topic2 and the others share topic1.
        let partitions = BTreeMap::from([("topic1".to_string(), 3), ("topic2".to_string(), 2)]);
        let reading = |topics: &[&str]| Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..Subscription::default()
        };
        let members = BTreeMap::from([
            ("consumer1".to_string(), reading(&["topic1"])),
            ("consumer2".to_string(), reading(&["topic1", "topic2"])),
            ("consumer3".to_string(), reading(&["topic1"])),
        ]);
        let out = assign(Assignor::CooperativeSticky, &partitions, &members, false);
        let names = |m: &str| out[m].iter().map(|tp| tp.to_string()).collect::<Vec<_>>();
        assert_eq!(names("consumer1"), ["topic1/0", "topic1/2"]);
        assert_eq!(names("consumer2"), ["topic2/0", "topic2/1"]);
        assert_eq!(names("consumer3"), ["topic1/1"]);
        assert_valid_and_balanced(&partitions, &members, &out);
    }

    /// Kafka's balance (`AbstractStickyAssignorTest.verifyValidityAndBalance`): every
    /// partition assigned once, only to a member that reads its topic, and no member
    /// holding two more than another that reads the topic of one of its partitions.
    fn assert_valid_and_balanced(
        partitions: &BTreeMap<String, u32>,
        members: &BTreeMap<String, Subscription>,
        out: &BTreeMap<String, Vec<TopicPartition>>,
    ) {
        let mut seen = BTreeSet::new();
        for (m, list) in out {
            for tp in list {
                assert!(seen.insert(*tp), "{tp} twice: {out:?}");
                assert!(
                    members[m].topics.contains(&tp.topic.to_string()),
                    "{m} got {tp}"
                );
            }
        }
        for (t, n) in partitions {
            if members.values().any(|s| s.topics.contains(t)) {
                for p in 0..*n {
                    assert!(
                        seen.contains(&TopicPartition::new(t.as_str(), p)),
                        "{t}/{p} unassigned: {out:?}"
                    );
                }
            }
        }
        for (a, heavy) in out {
            for (b, light) in out {
                if heavy.len() > light.len() + 1 {
                    let movable = heavy
                        .iter()
                        .find(|tp| members[b].topics.contains(&tp.topic.to_string()));
                    assert!(
                        movable.is_none(),
                        "{a} holds {} and {b} {}, and {b} could take {movable:?}: {out:?}",
                        heavy.len(),
                        light.len()
                    );
                }
            }
        }
    }

    /// Runs cooperative rounds: each member owns what its last assignment gave it.
    fn round(
        partitions: &BTreeMap<String, u32>,
        members: &mut BTreeMap<String, Subscription>,
        generation: i32,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut out = assign(Assignor::CooperativeSticky, partitions, members, false);
        // Who holds what is the assignment; the order of a member's list means nothing.
        for list in out.values_mut() {
            list.sort();
        }
        for (m, s) in members.iter_mut() {
            // Hold-back: nothing is handed to a member while another still owns it.
            s.owned = out[m].clone();
            s.generation = Generation(generation);
        }
        out
    }

    proptest::proptest! {
        /// Any group with any subscriptions: balanced within three rounds, then nothing
        /// moves; after a member leaves or its subscription changes, the same again.
        #[test]
        fn cooperative_sticky_balances_any_subscriptions_within_three_rounds(
            counts in proptest::collection::vec(1u32..7, 1..4),
            subs in proptest::collection::vec(proptest::collection::vec(proptest::bool::ANY, 3), 1..6),
            change in 0usize..6,
            new_sub in proptest::collection::vec(proptest::bool::ANY, 3),
        ) {
            let partitions: BTreeMap<String, u32> =
                counts.iter().enumerate().map(|(i, n)| (format!("t{i}"), *n)).collect();
            let topics_of = |picks: &[bool]| -> Vec<String> {
                let mut topics: Vec<String> = (0..counts.len()).filter(|i| picks[*i]).map(|i| format!("t{i}")).collect();
                if topics.is_empty() {
                    topics.push("t0".into());
                }
                topics
            };
            let mut members: BTreeMap<String, Subscription> = subs
                .iter()
                .enumerate()
                .map(|(i, picks)| (format!("m{i}"), Subscription { topics: topics_of(picks), ..Subscription::default() }))
                .collect();
            let mut generation = 1;
            for phase in 0..2 {
                if phase == 1 {
                    // A change: the chosen member leaves if there are several, else it
                    // subscribes anew.
                    let victim = format!("m{}", change % members.len());
                    if members.len() > 1 && change % 2 == 0 {
                        members.remove(&victim);
                    } else {
                        members.get_mut(&victim).expect("member").topics = topics_of(&new_sub);
                    }
                }
                // Each round hands out only what nobody else still owns, so a round that
                // moves a partition leaves it out and the members rejoin (KIP-429). The
                // greedy general assignment (Kafka's too) may move again in the follow-up
                // round; it settles within three: then everything is assigned, balanced,
                // and nothing moves any more.
                let mut settled = round(&partitions, &mut members, generation);
                generation += 1;
                let mut rounds = 1;
                loop {
                    let again = round(&partitions, &mut members, generation);
                    generation += 1;
                    if again == settled {
                        break;
                    }
                    settled = again;
                    rounds += 1;
                    proptest::prop_assert!(rounds <= 3, "still moving after {rounds} rounds: {settled:?}");
                }
                assert_valid_and_balanced(&partitions, &members, &settled);
            }
        }
    }

    #[test]
    fn protocol_bytes_round_trip() {
        let s = sub(&[1], 4);
        assert_eq!(Subscription::decode(&s.encode()), Some(s));
        let a = Assignment {
            partitions: list(&[0, 2]),
        };
        assert_eq!(Assignment::decode(&a.encode()), Some(a));
        assert_eq!(
            Assignment::decode(&Bytes::default()),
            Some(Assignment::default())
        );
    }
}
