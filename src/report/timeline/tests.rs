//! The timeline's pairing and belief rules, on hand-made records written as
//! `events.jsonl` / `history.jsonl` lines.

use super::*;

fn events(lines: &str) -> Vec<Event> {
    crate::report::jsonl_lines(lines)
}

fn history(lines: &str) -> Vec<HistoryEntry> {
    crate::report::jsonl_lines(lines)
}

const S: u64 = 1_000_000;

/// Three brokers created, a kill of broker-2 at 10 s and its restart at 18 s.
const KILL_RESTART: &str = r#"
{"at_us":0,"node":"world","kind":"phase","detail":{"length_ms":60000,"phase":"setup"}}
{"at_us":0,"node":"broker-1","kind":"node-created","detail":{"kind":"broker","addr":"10.0.1.1:9092"}}
{"at_us":0,"node":"broker-2","kind":"node-created","detail":{"kind":"broker","addr":"10.0.1.2:9092"}}
{"at_us":1000000,"node":"world","kind":"phase","detail":{"length_ms":30000,"phase":"faults"}}
{"at_us":10000000,"node":"world","kind":"fault","detail":{"action":"kill","line":3,"nodes":[{"effect":"killed","node":"broker-2"}],"target":"broker-2"}}
{"at_us":18000000,"node":"world","kind":"fault","detail":{"action":"restart","line":4,"nodes":[{"effect":"restarted (was down)","node":"broker-2"}],"target":"killed"}}
{"at_us":31000000,"node":"world","kind":"phase","detail":{"length_ms":30000,"phase":"heal"}}
{"at_us":31000000,"node":"world","kind":"heal","detail":{"network":false,"nodes":[]}}
{"at_us":40000000,"node":"world","kind":"stop","detail":{}}
"#;

#[test]
fn a_kill_is_a_band_that_its_restart_ends_and_every_fault_is_one_mark() {
    let timeline = Timeline::of(&events(KILL_RESTART), &[], 40 * S);
    assert_eq!(timeline.faults.len(), 2);
    let kill = &timeline.faults[0];
    assert_eq!(kill.parts.len(), 1);
    let band = &kill.parts[0];
    assert_eq!(band.lane, LaneRef::Node("broker-2".into()));
    assert_eq!(band.kind, PartKind::Down);
    assert_eq!((band.start_us, band.end_us), (10 * S, 18 * S));
    assert!(band.ended_by.starts_with("restart (fault 1)"), "{band:?}");
    let restart = &timeline.faults[1];
    assert_eq!(restart.parts[0].kind, PartKind::Restart);
    assert_eq!(restart.end_us(), 18 * S);
    let names: Vec<&str> = timeline.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["broker-1", "broker-2"]);
    let phases: Vec<&str> = timeline.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["setup", "faults", "heal", "stop"]);
    assert_eq!(timeline.phase_of(12 * S), Some(("faults", 11 * S)));
}

#[test]
fn the_faults_before_a_violation_are_those_in_force_within_the_window() {
    let timeline = Timeline::of(&events(KILL_RESTART), &[], 40 * S);
    // During the kill: the kill (in force), not yet the restart.
    assert_eq!(timeline.faults_before(15 * S, 10 * S), [0]);
    // 9 s after the restart: both ended within the window.
    assert_eq!(timeline.faults_before(27 * S, 10 * S), [0, 1]);
    // 11 s after: neither.
    assert!(timeline.faults_before(29 * S, 10 * S).is_empty());
    // Before any fault: none.
    assert!(timeline.faults_before(5 * S, 10 * S).is_empty());
}

#[test]
fn a_band_never_ended_by_a_fault_ends_at_the_heal() {
    let record = r#"
{"at_us":2000000,"node":"world","kind":"fault","detail":{"action":"pause","by":"nemesis","nodes":[{"effect":"paused","node":"zk-3"}]}}
{"at_us":3000000,"node":"world","kind":"fault","detail":{"action":"partition","by":"nemesis","sides":[["broker-1"],["zk-1","zk-2","zk-3","broker-2"]]}}
{"at_us":4000000,"node":"world","kind":"fault","detail":{"action":"clog","by":"nemesis","nodes":[{"effect":"clogged","node":"broker-2"}]}}
{"at_us":5000000,"node":"world","kind":"fault","detail":{"action":"heal","by":"nemesis"}}
{"at_us":9000000,"node":"world","kind":"heal","detail":{"network":true,"nodes":[{"effect":"resumed","node":"zk-3"}]}}
"#;
    let timeline = Timeline::of(&events(record), &[], 10 * S);
    let band = |id: usize| &timeline.faults[id].parts[0];
    assert_eq!(band(0).end_us, 9 * S, "the pause ends at the heal");
    assert_eq!(band(1).kind, PartKind::Partition);
    assert_eq!(band(1).lane, LaneRef::Network);
    assert_eq!(
        band(1).end_us,
        5 * S,
        "the nemesis's heal ends its partition"
    );
    assert_eq!(
        band(2).end_us,
        9 * S,
        "but not the clog: only the world's heal (or a scheduled one) does"
    );
    assert_eq!(band(3).kind, PartKind::End);
    assert_eq!(
        timeline.faults[1].summary,
        "[broker-1] | [zk-1, zk-2, zk-3, broker-2]"
    );
    let zk3 = timeline.nodes.iter().find(|n| n.name == "zk-3").unwrap();
    assert_eq!(zk3.markers[0].kind, "heal-resume");
}

#[test]
fn a_fault_that_did_nothing_is_still_one_mark_with_a_tick() {
    let record = r#"
{"at_us":2000000,"node":"world","kind":"fault","detail":{"action":"restart","by":"nemesis","nodes":[{"effect":"not restarted: node is up","node":"broker-1"}]}}
{"at_us":3000000,"node":"world","kind":"fault","detail":{"action":"loss","line":9,"rate":0.0}}
"#;
    let timeline = Timeline::of(&events(record), &[], 10 * S);
    assert_eq!(timeline.faults.len(), 2);
    assert_eq!(timeline.faults[0].parts[0].kind, PartKind::NoOp);
    assert_eq!(timeline.faults[1].parts[0].kind, PartKind::End);
}

/// The controller of epoch 1 is paused (it keeps believing) while broker-2 wins epoch 2:
/// two overlapping beliefs, stacked in two rows; the kill of broker-1 ends its belief.
#[test]
fn a_zombie_controller_overlaps_its_successor_until_its_process_ends() {
    let record = r#"
{"at_us":1000000,"node":"broker-1","kind":"controller-elected","detail":{"controller_epoch":1}}
{"at_us":5000000,"node":"world","kind":"fault","detail":{"action":"pause","line":3,"nodes":[{"effect":"paused","node":"broker-1"}],"target":"controller"}}
{"at_us":12000000,"node":"broker-2","kind":"controller-elected","detail":{"controller_epoch":2}}
{"at_us":15000000,"node":"world","kind":"fault","detail":{"action":"kill","line":4,"nodes":[{"effect":"killed","node":"broker-1"}],"target":"broker-1"}}
"#;
    let timeline = Timeline::of(&events(record), &[], 20 * S);
    let rows = &timeline.controller.rows;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].len(), 1);
    assert_eq!(rows[0][0].holder, "broker-1");
    assert_eq!((rows[0][0].start_us, rows[0][0].end_us), (S, 15 * S));
    assert_eq!(rows[0][0].label, "broker-1 · epoch 1");
    assert_eq!(rows[1][0].holder, "broker-2");
    assert_eq!((rows[1][0].start_us, rows[1][0].end_us), (12 * S, 20 * S));
}

#[test]
fn the_ensemble_leader_leads_until_it_looks_again() {
    let record = r#"
{"at_us":1000000,"node":"zk-3","kind":"leading","detail":{"epoch":1,"last_zxid":0,"followers":[1,2]}}
{"at_us":8000000,"node":"zk-3","kind":"looking","detail":{"reason":"lost quorum","round":2,"last_zxid":5,"epoch":1}}
{"at_us":9000000,"node":"zk-1","kind":"leading","detail":{"epoch":2,"last_zxid":5,"followers":[2]}}
"#;
    let timeline = Timeline::of(&events(record), &[], 10 * S);
    let segments: Vec<_> = timeline.zk_leader.segments().collect();
    assert_eq!(timeline.zk_leader.rows.len(), 1);
    assert_eq!(segments[0].label, "zk-3 · epoch 1");
    assert_eq!(segments[0].end_us, 8 * S);
    assert_eq!(segments[1].label, "zk-1 · epoch 2");
    assert_eq!(
        segments[1].title,
        "ensemble leader zk-1, epoch 2, followers zk-2"
    );
}

/// A leader's ISR shrinks (a new, flagged segment in the same epoch), it becomes follower,
/// and only the HW it announced while leading is kept.
#[test]
fn a_partition_lane_follows_its_leader_its_isr_and_its_hw() {
    let record = r#"
{"at_us":1000000,"node":"broker-1","kind":"become-leader","detail":{"hw":0,"isr":[1,2,3],"leader_epoch":1,"leo":0,"partition":"orders/0"}}
{"at_us":2000000,"node":"broker-1","kind":"hw","detail":{"hw":10,"leader_epoch":1,"partition":"orders/0"}}
{"at_us":2000000,"node":"broker-2","kind":"hw","detail":{"hw":7,"leader_epoch":1,"partition":"orders/0"}}
{"at_us":3000000,"node":"broker-1","kind":"isr-changed","detail":{"isr":[1,2],"partition":"orders/0","partition_epoch":2}}
{"at_us":4000000,"node":"broker-1","kind":"become-follower","detail":{"hw":10,"leader":2,"leader_epoch":2,"leo":12,"partition":"orders/0"}}
{"at_us":4000000,"node":"broker-2","kind":"become-leader","detail":{"hw":9,"isr":[2,1],"leader_epoch":2,"leo":12,"partition":"orders/0"}}
{"at_us":5000000,"node":"broker-1","kind":"hw","detail":{"hw":12,"leader_epoch":2,"partition":"orders/0"}}
{"at_us":1000000,"node":"broker-2","kind":"become-leader","detail":{"hw":0,"isr":[2,3,1],"leader_epoch":1,"leo":0,"partition":"__consumer_offsets/0"}}
"#;
    let mut record = events(record);
    record.sort_by_key(|e| e.at_us);
    let timeline = Timeline::of(&record, &[], 10 * S);
    let names: Vec<&str> = timeline
        .partitions
        .iter()
        .map(|p| p.partition.as_str())
        .collect();
    assert_eq!(
        names,
        ["orders/0", "__consumer_offsets/0"],
        "scenario topics first"
    );
    let orders = &timeline.partitions[0];
    let segments: Vec<_> = orders.leaders.segments().collect();
    assert_eq!(segments.len(), 3);
    assert_eq!(segments[0].label, "broker-1 · e1 · isr 1,2,3");
    assert!(!segments[0].flagged);
    assert_eq!(segments[1].label, "broker-1 · e1 · isr 1,2");
    assert!(segments[1].flagged, "an ISR below the largest seen");
    assert_eq!(segments[1].end_us, 4 * S);
    assert_eq!(segments[2].holder, "broker-2");
    assert_eq!(
        orders.hw,
        [(S, 0), (2 * S, 10), (4 * S, 9)],
        "a follower's HW is not drawn"
    );
}

#[test]
fn a_group_lane_has_its_states_and_each_members_assignment() {
    let record = r#"
{"at_us":1000000,"node":"broker-2","kind":"group-state","detail":{"generation":0,"group":"billing","reason":"a member joined","state":"PreparingRebalance"}}
{"at_us":2000000,"node":"broker-2","kind":"group-generation","detail":{"generation":1,"group":"billing","leader":"consumer-1-1.1.1","members":["consumer-1-1.1.1","consumer-10-1.1.2"],"protocol":"range"}}
{"at_us":2000000,"node":"broker-2","kind":"group-state","detail":{"generation":1,"group":"billing","state":"Stable"}}
{"at_us":6000000,"node":"world","kind":"fault","detail":{"action":"kill","by":"nemesis","nodes":[{"effect":"killed","node":"consumer-10"}]}}
"#;
    let assigned = r#"
{"at_us":2100000,"node":"consumer-10","op":"group-assign","group":"billing","member":"consumer-10-1.1.2","generation":1,"partitions":[[{"topic":"orders","partition":1},0]]}
{"at_us":2200000,"node":"consumer-1","op":"group-assign","group":"billing","member":"consumer-1-1.1.1","generation":1,"partitions":[[{"topic":"orders","partition":0},0],[{"topic":"orders","partition":2},5]]}
"#;
    let timeline = Timeline::of(&events(record), &history(assigned), 10 * S);
    let billing = &timeline.groups[0];
    let states: Vec<_> = billing.states.segments().collect();
    assert_eq!(states[0].label, "gen 0 · PreparingRebalance");
    assert!(states[0].flagged);
    assert_eq!(states[0].end_us, 2 * S);
    assert_eq!(states[1].label, "gen 1 · Stable");
    assert!(states[1]
        .title
        .contains("members: consumer-1-1.1.1, consumer-10-1.1.2"));
    let members: Vec<&str> = billing.members.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        members,
        ["consumer-1", "consumer-10"],
        "by number, not as text"
    );
    let first: Vec<_> = billing.members[0].1.segments().collect();
    assert_eq!(first[0].label, "orders/0,2");
    assert!(first[0].title.ends_with("owns orders/0@0, orders/2@5"));
    let killed: Vec<_> = billing.members[1].1.segments().collect();
    assert_eq!(killed[0].end_us, 6 * S, "a killed member owns nothing");
}

#[test]
fn downsampling_keeps_at_most_two_points_a_bucket_and_every_drop() {
    let mut points: Vec<(u64, u64)> = (0..100_000u64).map(|i| (i * 1000, i)).collect();
    points[50_000].1 = 3; // a drop, as an unclean election gives
    let kept = downsample(&points, 100 * S, 100);
    assert!(kept.len() <= 200, "{}", kept.len());
    assert!(kept.contains(&(50_000_000, 3)));
    assert_eq!(kept.last(), points.last());
    assert!(
        kept.windows(2).all(|w| w[0].0 < w[1].0),
        "in time order, once each"
    );
    assert_eq!(downsample(&[(5, 1)], 10, 100), [(5, 1)]);
}

#[test]
fn a_row_of_too_many_short_segments_is_merged_into_few() {
    let segment = |start_us: u64, end_us: u64| Segment {
        start_us,
        end_us,
        holder: format!("broker-{}", start_us % 3 + 1),
        label: String::new(),
        short: String::new(),
        title: String::new(),
        color: 1,
        flagged: false,
        in_sync: 3,
    };
    let mut row: Vec<Segment> = (0..5000u64).map(|i| segment(i * 10, i * 10 + 10)).collect();
    row.push(segment(50_000, 1_000_000));
    let bounded = bound_row(row, 1_000_000, 100);
    assert_eq!(bounded.len(), 2, "{bounded:?}");
    assert_eq!(bounded[0].label, "5000 changes");
    assert!(bounded[0].flagged);
    assert_eq!((bounded[0].start_us, bounded[0].end_us), (0, 50_000));
    assert_eq!(bounded[1].start_us, 50_000, "a wide segment stays as it is");
    let few = vec![segment(0, 1), segment(1, 2)];
    assert_eq!(bound_row(few.clone(), 1_000_000, 100), few);
}

#[test]
fn a_crash_is_marked_on_its_node_and_ends_what_it_believed() {
    let record = r#"
{"at_us":1000000,"node":"broker-2","kind":"become-leader","detail":{"hw":0,"isr":[2,1],"leader_epoch":1,"leo":0,"partition":"orders/0"}}
{"at_us":4000000,"node":"broker-2","kind":"crash","detail":{"message":"assertion failed: hw <= leo"}}
"#;
    let timeline = Timeline::of(&events(record), &[], 10 * S);
    let broker = timeline
        .nodes
        .iter()
        .find(|n| n.name == "broker-2")
        .unwrap();
    assert_eq!(broker.markers[0].kind, "crash");
    assert!(broker.markers[0].title.contains("hw <= leo"));
    let leader: Vec<_> = timeline.partitions[0].leaders.segments().collect();
    assert_eq!(leader[0].end_us, 4 * S);
}
