//! The page builder on hand-made runs: escaping, a violation linked to the faults before
//! it, the lanes, self-containment, and a bounded size for a long run.

use super::*;
use crate::check::CheckResult;
use crate::history::{Announcement, Op};
use crate::report::Verdict;
use std::path::PathBuf;

fn events(lines: &str) -> Vec<Event> {
    crate::report::jsonl_lines(lines)
}

fn result(scenario: &str, violations: Vec<Violation>) -> RunResult {
    let verdict = if violations.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Safety
    };
    RunResult {
        scenario: scenario.into(),
        scenario_path: PathBuf::from(format!("sim-scenarios/{scenario}.toml")),
        seed: 7,
        verdict,
        checks: vec![CheckResult {
            check: "lost-write",
            kind: CheckKind::Safety,
            violations,
        }],
        crash: None,
        trace_hash: 0x0123_4567_89ab_cdef,
        sim_ms: 40_000,
        wall_ms: 250,
        stats: BTreeMap::from([("faults".to_string(), 2)]),
        counters: BTreeMap::new(),
        marks: BTreeMap::new(),
        run_dir: PathBuf::from("/tmp/unused"),
        scenario_source: String::new(),
    }
}

fn violation(check: &str, detail: &str, at_ms: Option<u64>) -> Violation {
    Violation {
        check: check.into(),
        detail: detail.into(),
        at_ms,
        partition: Some("orders/0".into()),
        node: None,
    }
}

/// A small run: three brokers; four faults: a pause of broker-3 at 2 s, its resume at 3 s, a kill of the
/// leader of orders/0 at 10 s, its restart at 18 s; a controller, an ensemble leader, a
/// group.
const RUN: &str = r#"
{"at_us":0,"node":"world","kind":"phase","detail":{"length_ms":60000,"phase":"setup"}}
{"at_us":0,"node":"broker-1","kind":"node-created","detail":{"kind":"broker","addr":"10.0.1.1:9092"}}
{"at_us":0,"node":"broker-2","kind":"node-created","detail":{"kind":"broker","addr":"10.0.1.2:9092"}}
{"at_us":0,"node":"broker-3","kind":"node-created","detail":{"kind":"broker","addr":"10.0.1.3:9092"}}
{"at_us":0,"node":"zk-1","kind":"node-created","detail":{"kind":"zk","addr":"10.0.0.1:2181"}}
{"at_us":500000,"node":"zk-1","kind":"leading","detail":{"epoch":1,"last_zxid":0,"followers":[]}}
{"at_us":600000,"node":"broker-1","kind":"controller-elected","detail":{"controller_epoch":1}}
{"at_us":700000,"node":"broker-2","kind":"become-leader","detail":{"hw":0,"isr":[2,1,3],"leader_epoch":1,"leo":0,"partition":"orders/0"}}
{"at_us":700000,"node":"broker-3","kind":"become-leader","detail":{"hw":0,"isr":[3,1,2],"leader_epoch":1,"leo":0,"partition":"__consumer_offsets/0"}}
{"at_us":800000,"node":"broker-1","kind":"group-state","detail":{"generation":1,"group":"billing","state":"Stable"}}
{"at_us":1000000,"node":"world","kind":"phase","detail":{"length_ms":30000,"phase":"faults"}}
{"at_us":2000000,"node":"world","kind":"fault","detail":{"action":"pause","line":2,"nodes":[{"effect":"paused","node":"broker-3"}],"target":"broker-3"}}
{"at_us":3000000,"node":"world","kind":"fault","detail":{"action":"resume","line":3,"nodes":[{"effect":"resumed","node":"broker-3"}],"target":"broker-3"}}
{"at_us":5000000,"node":"broker-2","kind":"hw","detail":{"hw":40,"leader_epoch":1,"partition":"orders/0"}}
{"at_us":10000000,"node":"world","kind":"fault","detail":{"action":"kill","line":4,"nodes":[{"effect":"killed","node":"broker-2"}],"target":"leader(orders/0)"}}
{"at_us":11000000,"node":"broker-1","kind":"become-leader","detail":{"hw":38,"isr":[1,3],"leader_epoch":2,"leo":38,"partition":"orders/0"}}
{"at_us":18000000,"node":"world","kind":"fault","detail":{"action":"restart","line":5,"nodes":[{"effect":"restarted (was down)","node":"broker-2"}],"target":"killed"}}
{"at_us":31000000,"node":"world","kind":"phase","detail":{"length_ms":30000,"phase":"heal"}}
{"at_us":31000000,"node":"world","kind":"heal","detail":{"network":false,"nodes":[]}}
{"at_us":32000000,"node":"world","kind":"drain","detail":{}}
{"at_us":40000000,"node":"world","kind":"stop","detail":{}}
"#;

fn count(page: &str, needle: &str) -> usize {
    page.matches(needle).count()
}

/// The labels of the timeline's lanes.
fn lane_labels(page: &str) -> Vec<&str> {
    page.split("<text class=\"lane-label\"")
        .skip(1)
        .map(|rest| {
            let text = &rest[rest.find('>').unwrap() + 1..];
            &text[..text.find("</text>").unwrap()]
        })
        .collect()
}

/// The `<tr>` of violation `i`.
fn violation_row(page: &str, i: usize) -> &str {
    let start = page
        .find(&format!("<tr id=\"violation-{i}\">"))
        .unwrap_or_else(|| panic!("no row for violation {i}"));
    let end = start + page[start..].find("</tr>").unwrap();
    &page[start..end]
}

#[test]
fn a_violation_is_drawn_at_its_time_and_links_the_faults_in_force_before_it() {
    let violations = vec![
        violation("lost-write", "orders/0: 3 records missing", Some(12_000)),
        violation("lost-write", "orders/0: before any fault", Some(1_500)),
        violation("lost-write", "orders/0: found at the end", None),
    ];
    let page = html(
        &result("leader-failover", violations),
        "",
        &events(RUN),
        &[],
    );
    // Every fault is one g.fault, and the page has one table row per fault.
    assert_eq!(count(&page, "<g class=\"fault\""), 4);
    assert_eq!(count(&page, "<tr id=\"fault-row-"), 4);
    assert!(page.contains("<g class=\"fault\" id=\"fault-2\" data-action=\"kill\">"));
    // Violations with a time are markers (linked to their rows); the one without is not.
    assert_eq!(count(&page, "class=\"violation-marker\""), 2);
    assert!(
        page.contains("<a href=\"#violation-0\"><path class=\"violation-marker\" id=\"vmark-0\"")
    );
    // At 12 s the kill (10 s) is in force and the pause (2 s–3 s) ended 9 s before: both;
    // the resume (3 s) too. Not the restart, which came later.
    let row = violation_row(&page, 0);
    for id in 0..=2 {
        assert!(
            row.contains(&format!("href=\"#fault-{id}\"")),
            "{id}: {row}"
        );
    }
    assert!(!row.contains("href=\"#fault-3\""), "{row}");
    assert!(row.contains("12.000s (faults+11.0s)"), "{row}");
    assert!(violation_row(&page, 1).contains("<td>none</td>"));
    assert!(violation_row(&page, 2).contains("<td>—</td>"));
}

#[test]
fn every_lane_is_present() {
    let page = html(
        &result("leader-failover", Vec::new()),
        "",
        &events(RUN),
        &[],
    );
    let labels = lane_labels(&page);
    for label in [
        "violations",
        "network",
        "broker-1",
        "broker-3",
        "zk-1",
        "controller",
        "zk leader",
        "orders/0",
        "__consumer_offsets/0",
        "billing",
    ] {
        assert!(labels.contains(&label), "no lane {label}: {labels:?}");
    }
    assert!(
        page.contains(">broker-1 · epoch 1<"),
        "the controller's segment is labeled"
    );
    assert!(page.contains(">zk-1 · epoch 1<"));
    assert!(page.contains("broker-1 · e2 · isr 1,3"));
    assert_eq!(
        count(&page, "<polyline class=\"hw\""),
        1,
        "a HW line for orders/0, none for a HW that never left 0"
    );
    assert!(page.contains(">hw 38<"), "the last HW is labeled");
    for phase in ["setup", "faults", "heal", "drain", "stop"] {
        assert!(
            page.contains(&format!("</title>{phase}</text>")),
            "phase {phase}"
        );
    }
    assert!(
        page.contains(">faults+9.0s<"),
        "a tick relative to its phase"
    );
    assert!(page.contains("<span class=\"verdict v-pass\">pass</span>"));
    assert!(page.contains("<code>0123456789abcdef</code>"));
    assert!(page.contains("cargo run --release -- run sim-scenarios/leader-failover.toml --seed 7"));
}

#[test]
fn text_from_the_run_is_escaped_everywhere() {
    let name = "<script>alert(\"x\")</script>&'";
    let violations = vec![violation(
        "lost-write",
        "<b>\"bold\"</b> & 'more'",
        Some(12_000),
    )];
    let run = RUN.replace("leader(orders/0)", "<img src=x onerror=alert(1)>");
    let mut run_result = result(name, violations);
    run_result.crash = Some(crate::history::Crash {
        node: "broker-<2>".into(),
        message: "panicked at <src/x.rs>: a < b".into(),
        at_us: 5_000_000,
    });
    let page = html(&run_result, "about <i>this</i>", &events(&run), &[]);
    assert!(!page.contains("<script"), "a script from a name");
    assert!(page.contains("<pre>panicked at &lt;src/x.rs&gt;: a &lt; b</pre>"));
    assert!(page.contains("<code>broker-&lt;2&gt;</code>"));
    assert!(!page.contains("<b>"));
    assert!(!page.contains("<i>"));
    assert!(!page.contains("<img"));
    assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
    assert!(page.contains("&lt;b&gt;&quot;bold&quot;&lt;/b&gt; &amp; &#39;more&#39;"));
    assert!(page.contains("about &lt;i&gt;this&lt;/i&gt;"));
    assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}

#[test]
fn the_page_loads_nothing_from_elsewhere() {
    let page = html(
        &result("leader-failover", Vec::new()),
        "",
        &events(RUN),
        &[],
    );
    for needle in [
        "http:", "https:", "<script", "<link", "<img", "@import", "url(", "src=",
    ] {
        assert!(!page.contains(needle), "{needle}");
    }
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.ends_with("</html>\n"));
    assert_eq!(
        page,
        html(
            &result("leader-failover", Vec::new()),
            "",
            &events(RUN),
            &[]
        ),
        "the same run gives the same bytes"
    );
}

/// Four simulated hours of a busy cluster: a fault every 15 s, a leader change every 2 s
/// (among six partitions), HW announcements every 40 ms, a rebalance every 30 s.
#[test]
fn a_long_run_stays_a_few_mb() {
    use crate::broker::coordinator::{CoordinatorEvent, GroupState};
    use crate::broker::proto::Generation;
    use crate::broker::server::BrokerEvent;
    use crate::broker::{BrokerId, TopicPartition};
    use crate::history::{Effect, Fault, FaultSource, NodeEffect, WorldEvent};
    use crate::log::{LeaderEpoch, Offset};
    const HOURS: u64 = 4;
    let end_us = HOURS * 3600 * 1_000_000;
    let mut record: Vec<Event> = Vec::new();
    let mut push = |at_us: u64, node: &str, announced: Announcement| {
        record.push(Event {
            at_us,
            node: node.into(),
            announced,
        })
    };
    let mut faults = 0;
    let mut at = 0;
    while at < end_us {
        let broker = format!("broker-{}", at / 40_000 % 3 + 1);
        let tp = TopicPartition::new("orders", (at / 40_000 % 6) as u32);
        if at % 15_000_000 == 0 {
            faults += 1;
            let effect = if faults % 2 == 0 {
                Effect::Killed
            } else {
                Effect::Restarted { was: "down".into() }
            };
            let fault = Fault {
                action: if faults % 2 == 0 { "kill" } else { "restart" }.into(),
                source: FaultSource::Drawn {
                    by: "nemesis".into(),
                },
                sides: None,
                rate: None,
                nodes: Some(vec![NodeEffect {
                    node: broker.clone(),
                    effect,
                }]),
            };
            push(at, "world", WorldEvent::Fault(fault).into());
        }
        if at % 2_000_000 == 0 {
            push(
                at,
                &broker,
                Announcement::Broker(BrokerEvent::BecomeLeader {
                    partition: tp,
                    leader_epoch: LeaderEpoch((at / 2_000_000) as i32),
                    leo: Offset(at / 1000),
                    hw: Offset(at / 1000),
                    isr: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                }),
            );
        }
        if at % 30_000_000 == 0 {
            push(
                at,
                "broker-1",
                CoordinatorEvent::GroupState {
                    group: "billing".into(),
                    state: GroupState::Stable,
                    generation: Generation((at / 30_000_000) as i32),
                    reason: None,
                }
                .into(),
            );
        }
        push(
            at,
            &broker,
            Announcement::Broker(BrokerEvent::Hw {
                partition: tp,
                hw: Offset(at / 1000),
                leader_epoch: LeaderEpoch(1),
            }),
        );
        at += 40_000;
    }
    let history: Vec<HistoryEntry> = (0..end_us / 30_000_000)
        .map(|i| HistoryEntry {
            at_us: i * 30_000_000 + 1,
            node: format!("consumer-{}", i % 4 + 1).into(),
            op: Op::GroupAssign {
                group: "billing".into(),
                member: format!("consumer-{}-1", i % 4 + 1).into(),
                generation: Generation(i as i32),
                partitions: Box::new(vec![(TopicPartition::new("orders", (i % 6) as u32), i)]),
                awaiting: Box::default(),
            },
        })
        .collect();
    let mut run = result("long", vec![violation("lost-write", "x", Some(3_600_000))]);
    run.sim_ms = end_us / 1000;
    let page = html(&run, "", &record, &history);
    println!(
        "{} events, {} faults: report.html {} bytes",
        record.len(),
        faults,
        page.len()
    );
    assert!(record.len() > 300_000, "{}", record.len());
    assert_eq!(count(&page, "<g class=\"fault\""), faults);
    assert!(
        page.len() < 2 << 20,
        "{} bytes for {} events",
        page.len(),
        record.len()
    );
    for line in page.split("<polyline class=\"hw\" points=\"").skip(1) {
        let points = line[..line.find('"').unwrap()].split(' ').count();
        assert!(
            points <= 4 * super::super::timeline::MAX_HW_BUCKETS as usize + 1,
            "{points}"
        );
    }
}
