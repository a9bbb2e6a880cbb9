//! Each group check fires on hand-made histories and events that break its rule and stays
//! quiet on ones that keep it: the checkers can fail.

use super::*;
use crate::check::kafka::ReplicaLogs;
use crate::check::test_support::{event, killed};
use crate::check::FinalLog;
use crate::scenario::Scenario;
use std::path::Path;

/// Group `billing` of `consumer-1`..`consumer-3` reading `orders` (2 partitions); a 10 s
/// fault phase and a 5 s heal.
fn scenario() -> Scenario {
    let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n\
                [cluster]\nzookeepers = 1\nbrokers = 1\n\
                [[topic]]\nname = \"orders\"\npartitions = 2\n\"replication.factor\" = 1\n\
                [[producer]]\ncount = 1\ntopic = \"orders\"\nrate = 10\n\
                [[consumer]]\ncount = 3\ngroup = \"billing\"\ntopics = [\"orders\"]\n";
    crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap()
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn h(at_us: u64, node: &str, op: Op) -> HistoryEntry {
    HistoryEntry {
        at_us,
        node: node.into(),
        op,
    }
}

fn assigned(at_us: u64, node: &str, member: &str, generation: i32, ps: &[u32]) -> HistoryEntry {
    let op = Op::GroupAssign {
        group: "billing".into(),
        member: member.into(),
        generation: Generation(generation),
        partitions: ps.iter().map(|&p| (tp(p), 0)).collect(),
        awaiting: Vec::new(),
    };
    h(at_us, node, op)
}

/// A commit of `orders/0` at `offset`, sent at `sent_ms` and answered at `at_us`.
fn commit(at_us: u64, node: &str, generation: i32, sent_ms: u64, offset: u64) -> HistoryEntry {
    let op = Op::Commit {
        group: "billing".into(),
        member: format!("{node}-m"),
        generation: Generation(generation),
        offsets: vec![(tp(0), offset)],
        sent_ms,
        error: None,
    };
    h(at_us, node, op)
}

fn acked(at_us: u64, value: &str, offset: u64) -> HistoryEntry {
    let outcome = SendOutcome::Ok {
        partition: tp(0),
        offset,
    };
    let op = Op::SendReturn {
        value: value.into(),
        outcome,
    };
    h(at_us, "producer-1", op)
}

fn poll(at_us: u64, node: &str, records: &[(u64, &str)]) -> HistoryEntry {
    let records = records.iter().map(|(o, v)| (*o, v.to_string())).collect();
    h(
        at_us,
        node,
        Op::Poll {
            partition: tp(0),
            records,
        },
    )
}

fn removed(at_us: u64, member: &str) -> Event {
    let removed = CoordinatorEvent::MemberRemoved {
        group: "billing".into(),
        member: member.into(),
        generation: None,
        why: "session timed out".into(),
        instance: None,
    };
    event(at_us, "broker-1", removed)
}

/// `broker` announced the group `billing` in `state` in generation `generation`.
fn group_state(at_us: u64, broker: &str, state: GroupState, generation: i32) -> Event {
    let announced = CoordinatorEvent::GroupState {
        group: "billing".into(),
        state,
        generation: Generation(generation),
        reason: None,
    };
    event(at_us, broker, announced)
}

/// `orders/0` as its only replica left it.
fn logs(records: &[(u64, &str)]) -> ReplicaLogs {
    let log = FinalLog {
        log_start: 0,
        log_end: records.last().map_or(0, |(o, _)| o + 1),
        records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
        ..FinalLog::default()
    };
    let mut all = ReplicaLogs::new();
    all.entry(tp(0)).or_default().insert("broker-1".into(), log);
    all
}

/// Runs `check` over the records.
fn judge(
    events: &[Event],
    history: &[HistoryEntry],
    replicas: &ReplicaLogs,
    check: impl Fn(&GroupFacts<'_>) -> Vec<Violation>,
) -> Vec<Violation> {
    let scenario = scenario();
    let groups = scenario.groups();
    let facts = Facts::new(events, history, replicas);
    let session_ms = (1..=3).map(|n| (format!("consumer-{n}"), 6_000)).collect();
    check(&GroupFacts {
        groups: &groups,
        session_ms,
        events,
        history,
        facts: &facts,
    })
}

fn one(found: &[Violation], needle: &str) {
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].detail.contains(needle), "{}", found[0].detail);
}

#[test]
fn scenario_groups_name_their_members_and_partitions() {
    let groups = scenario().groups();
    let billing = &groups["billing"];
    assert_eq!(billing.members, ["consumer-1", "consumer-2", "consumer-3"]);
    assert_eq!(billing.partitions, [tp(0), tp(1)]);
}

#[test]
fn exclusive_assignment_fires_when_a_partition_is_handed_over_before_its_owner_gave_it_up() {
    // Cooperative-sticky done wrong: consumer-2 gets orders/0 in generation 2 while
    // consumer-1, still a member, has not revoked it yet.
    let history = [
        assigned(1_000, "consumer-1", "c1", 1, &[0, 1]),
        assigned(5_000, "consumer-2", "c2", 2, &[0]),
        assigned(6_000, "consumer-1", "c1", 2, &[1]),
    ];
    let found = judge(&[], &history, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    one(&found, "handed to consumer-2 (member c2, generation 2)");
    assert!(found[0]
        .detail
        .contains("while consumer-1 (member c1, generation 1)"));
    assert_eq!(found[0].partition.as_deref(), Some("orders/0"));

    // Revoked first (eager, or KIP-429's second rebalance): fine.
    let history = [
        assigned(1_000, "consumer-1", "c1", 1, &[0, 1]),
        assigned(4_000, "consumer-1", "c1", 1, &[1]),
        assigned(5_000, "consumer-2", "c2", 2, &[0]),
    ];
    let none = judge(&[], &history, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn exclusive_assignment_counts_a_partition_awaiting_its_committed_offset_as_owned() {
    let mut handed = assigned(5_000, "consumer-2", "c2", 2, &[]);
    if let Op::GroupAssign { awaiting, .. } = &mut handed.op {
        awaiting.push(tp(0));
    }
    let history = [assigned(1_000, "consumer-1", "c1", 1, &[0]), handed];
    let found = judge(&[], &history, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    one(
        &found,
        "handed to consumer-2 (member c2, generation 2) at 0.005s",
    );
}

#[test]
fn exclusive_assignment_ends_ownership_with_the_process_or_the_membership() {
    let history = [
        assigned(1_000, "consumer-1", "c1", 1, &[0, 1]),
        assigned(5_000, "consumer-2", "c2", 2, &[0, 1]),
    ];
    // Killed: its process owns nothing any more.
    let events = [killed(3_000, "consumer-1")];
    let found = judge(&events, &history, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    assert!(found.is_empty(), "{found:#?}");
    // Expelled by the coordinator while paused: the group's view counts.
    let events = [removed(3_000, "c1")];
    let found = judge(&events, &history, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    assert!(found.is_empty(), "{found:#?}");
    // Another member removed: consumer-1 still owns both.
    let events = [removed(3_000, "c3")];
    let found = judge(&events, &history, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    assert_eq!(found.len(), 2, "{found:#?}");
    // Removed while paused, consumer-1 then gets the SyncGroup answer of its old generation
    // late: the group's view says it owns nothing. (Found by swarm seed 1259.)
    let late = [
        assigned(1_000, "consumer-2", "c2", 1, &[0, 1]),
        assigned(6_000, "consumer-1", "c1", 1, &[0]),
    ];
    let events = [removed(3_000, "c1")];
    let found = judge(&events, &late, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    assert!(found.is_empty(), "{found:#?}");
    // The same handing from a member never removed is a violation.
    let found = judge(&[], &late, &ReplicaLogs::new(), |g| {
        g.exclusive_assignment()
    });
    assert_eq!(found.len(), 1, "{found:#?}");
}

#[test]
fn stale_commit_accepted_fires_for_a_commit_sent_after_a_newer_generation_was_handed_out() {
    let history = [
        assigned(1_000_000, "consumer-1", "consumer-1-m", 1, &[0]),
        assigned(9_000_000, "consumer-2", "consumer-2-m", 2, &[0]),
        // consumer-1 resumes from a pause and commits in generation 1: stored.
        commit(12_500_000, "consumer-1", 1, 12_000, 7),
    ];
    let found = judge(&[], &history, &ReplicaLogs::new(), |g| {
        g.stale_commit_accepted()
    });
    one(
        &found,
        "consumer-1 (member consumer-1-m) committed orders/0@7 in generation 1",
    );
    assert!(found[0]
        .detail
        .contains("after generation 2 was handed out at 9.000s"));

    // Sent before generation 2 existed: in time, even if answered later.
    let history = [
        assigned(1_000_000, "consumer-1", "consumer-1-m", 1, &[0]),
        assigned(9_000_000, "consumer-2", "consumer-2-m", 2, &[0]),
        commit(9_500_000, "consumer-1", 1, 8_900, 7),
    ];
    let none = judge(&[], &history, &ReplicaLogs::new(), |g| {
        g.stale_commit_accepted()
    });
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn commit_monotonic_fires_when_a_later_commit_stores_a_lower_offset() {
    let history = [
        commit(2_000_000, "consumer-2", 2, 1_900, 100),
        commit(3_000_000, "consumer-1", 1, 2_500, 80),
    ];
    let found = judge(&[], &history, &ReplicaLogs::new(), |g| g.commit_monotonic());
    one(
        &found,
        "consumer-1 (member consumer-1-m, generation 1) stored 80",
    );
    assert!(found[0].detail.contains("after consumer-2"));

    // Concurrent commits (the lower one sent before the higher one was acknowledged)
    // may land in either order.
    let history = [
        commit(2_000_000, "consumer-2", 2, 1_900, 100),
        commit(3_000_000, "consumer-1", 1, 1_950, 80),
    ];
    let none = judge(&[], &history, &ReplicaLogs::new(), |g| g.commit_monotonic());
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn unseen_fires_for_an_acknowledged_record_below_the_committed_offset_nobody_polled() {
    let replicas = logs(&[(0, "a"), (1, "b"), (2, "c")]);
    let sends = [acked(100, "a", 0), acked(200, "b", 1), acked(300, "c", 2)];
    // consumer-1 committed 2 (past a and b) but only a was processed: b is unseen.
    let mut history = sends.to_vec();
    history.push(commit(1_000, "consumer-1", 1, 0, 2));
    history.push(poll(2_000, "consumer-1", &[(0, "a")]));
    let found = judge(&[], &history, &replicas, |g| g.unseen());
    one(&found, "b at offset 1");
    assert!(found[0].detail.contains("consumer-1 stored offset 2"));

    // Another member read it: seen. c is above the committed offset: lag, not unseen.
    history.push(poll(3_000, "consumer-3", &[(1, "b")]));
    let none = judge(&[], &history, &replicas, |g| g.unseen());
    assert!(none.is_empty(), "{none:#?}");
}

#[test]
fn converges_needs_every_group_stable_and_committed_to_the_log_end() {
    let replicas = logs(&[(0, "a"), (1, "b")]);
    let stable = group_state(1_000, "broker-1", GroupState::Stable, 1);
    let synced: Vec<HistoryEntry> = (1..=3)
        .map(|n| assigned(500 + n, &format!("consumer-{n}"), "m", 1, &[]))
        .collect();
    let mut history = vec![commit(2_000, "consumer-1", 1, 1, 2)];
    history.extend(synced.iter().cloned());
    let found = judge(std::slice::from_ref(&stable), &history, &replicas, |g| {
        g.converges(10_000)
    });
    // orders/1 has no final log here: only orders/0 is judged.
    assert!(found.is_empty(), "{found:#?}");

    // A member that never synced the Stable generation does not take part.
    let found = judge(
        std::slice::from_ref(&stable),
        &history[..3],
        &replicas,
        |g| g.converges(10_000),
    );
    one(
        &found,
        "consumer-3 is not in the Stable generation 1 by 0.010s (never synced)",
    );

    // Behind the log end, and the commit that would catch up comes after the bound.
    history[0] = commit(2_000, "consumer-1", 1, 1, 1);
    history.push(commit(20_000, "consumer-1", 1, 15, 2));
    let found = judge(std::slice::from_ref(&stable), &history, &replicas, |g| {
        g.converges(10_000)
    });
    one(
        &found,
        "billing committed 1 by 0.010s, short of the final log end 2 (lag 1)",
    );

    let rebalancing = group_state(5_000, "broker-1", GroupState::PreparingRebalance, 1);
    // The old coordinator letting the group go after the new one loaded it says nothing
    // about the group.
    let state = |at_us, broker: &str, state| group_state(at_us, broker, state, 1);
    let moved = [
        state(1_000, "broker-1", GroupState::Stable),
        state(3_000, "broker-2", GroupState::Stable),
        state(4_000, "broker-1", GroupState::Dead),
    ];
    history[0] = commit(2_000, "consumer-1", 1, 1, 2);
    let found = judge(&moved, &history, &replicas, |g| g.converges(10_000));
    assert!(found.is_empty(), "{found:#?}");
    // Nobody holds it any more: not Stable.
    let gone = [
        state(1_000, "broker-1", GroupState::Stable),
        killed(4_000, "broker-1"),
    ];
    let found = judge(&gone, &history, &replicas, |g| g.converges(10_000));
    one(
        &found,
        "billing: not Stable by 0.010s; last state none announced",
    );

    history.truncate(1);
    let found = judge(&[stable, rebalancing], &history, &replicas, |g| {
        g.converges(10_000)
    });
    one(&found, "billing: not Stable by 0.010s");
}

#[test]
fn converges_names_a_dead_member_that_holds_its_group_and_when_its_session_ends() {
    let replicas = logs(&[(0, "a"), (1, "b")]);
    let generation = CoordinatorEvent::GroupGeneration {
        group: "billing".into(),
        generation: Generation(2),
        protocol: None,
        leader: None,
        members: vec!["consumer-1-a".into(), "consumer-2-b".into()],
    };
    let generation = event(1_000, "broker-1", generation);
    let rebalancing = group_state(3_000_000, "broker-1", GroupState::PreparingRebalance, 2);
    let history = vec![
        assigned(2_000, "consumer-1", "consumer-1-a", 2, &[0]),
        assigned(2_000, "consumer-2", "consumer-2-b", 2, &[1]),
    ];
    // consumer-2 died; the coordinator still counts it.
    let events = [
        generation.clone(),
        killed(2_500_000, "consumer-2"),
        rebalancing,
    ];
    let found = judge(&events, &history, &replicas, |g| g.converges(10_000_000));
    let dead: Vec<&Violation> = found
        .iter()
        .filter(|v| v.detail.contains("whose process ended"))
        .collect();
    assert_eq!(dead.len(), 1, "{found:#?}");
    assert!(
        dead[0].detail.contains(
            "member consumer-2-b of consumer-2, whose process ended at 2.500s, is still in \
             generation 2 at the coordinator, still owning orders/1; its session.timeout.ms \
             (6s) ends by 8.500s"
        ),
        "{}",
        dead[0].detail
    );
    // Removed by the coordinator: it holds nothing back.
    let events = [
        generation,
        killed(2_500_000, "consumer-2"),
        removed(8_500_000, "consumer-2-b"),
    ];
    let found = judge(&events, &history, &replicas, |g| g.converges(10_000_000));
    assert!(found
        .iter()
        .all(|v| !v.detail.contains("whose process ended")));
}
