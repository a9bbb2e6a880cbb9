//! `report.html`: one run as a self-contained page — the verdict, the violations, and an
//! SVG timeline of the run ([`super::timeline::Timeline`]) over simulated time.
//!
//! Owns: [`html`], a pure function of a run's result and record returning the page as a
//! `String` (the run directory code only writes it). The page loads nothing: inline CSS and
//! inline SVG, no script, no font, no URL but `#` anchors; hover text is SVG `<title>`s.
//! Every piece of text that comes from a run (scenario names, details, node and group names)
//! goes through [`escape`]. The output is a function of its inputs alone (no clock, no hash
//! order), and bounded: the timeline bounds its data, the tables their rows.
//!
//! Anchors: a fault is `<g class="fault" id="fault-N">` (N its index among the `fault`
//! events; a band for a fault that begins a state, a tick for one that ends one) and its
//! table row `fault-row-N`; a violation is `violation-N` in the table and a
//! `violation-marker` (`vmark-N`) on the timeline. A violation's row links the faults in
//! force within [`PRECEDING_WINDOW_MS`] before it.

use super::timeline::{FaultMark, Lane, LaneRef, PartKind, Segment, Timeline};
use super::RunResult;
use crate::check::{CheckKind, Violation};
use crate::history::{Event, HistoryEntry};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A violation's row lists the faults in force at most this long before its time.
pub const PRECEDING_WINDOW_MS: u64 = 10_000;

/// Violations listed and drawn at most (the rest are counted).
pub const MAX_VIOLATIONS: usize = 500;

const WIDTH: f64 = 1400.0;
const X0: f64 = 170.0;
const X1: f64 = 1320.0;
const AXIS_H: f64 = 64.0;
const ROW_H: f64 = 16.0;
const HW_H: f64 = 24.0;
const HEADER_H: f64 = 18.0;
/// Approximate width of one character of the 10px labels.
const CHAR_W: f64 = 6.0;

/// The page of one run: `about` is the scenario's one-line description; `events` and
/// `history` the run's record.
pub fn html(result: &RunResult, about: &str, events: &[Event], history: &[HistoryEntry]) -> String {
    let timeline = Timeline::of(events, history, result.sim_ms * 1000);
    let violations = result.violations();
    let mut page = String::with_capacity(64 * 1024);
    head(&mut page, result);
    summary(&mut page, result, about);
    violations_table(&mut page, &timeline, &violations);
    crash(&mut page, result);
    page.push_str("<section id=\"timeline\"><h2>Timeline</h2>\n");
    legend(&mut page);
    page.push_str("<div class=\"scroll\">");
    Svg::new(&timeline, &violations).draw(&mut page);
    page.push_str("</div></section>\n");
    faults_table(&mut page, &timeline);
    checks_table(&mut page, result);
    let _ = write!(
        page,
        "<footer>ksim {} ({}) · self-contained: nothing here loads from elsewhere</footer>\n</body>\n</html>\n",
        escape(env!("CARGO_PKG_VERSION")),
        escape(super::git_commit())
    );
    page
}

/// `text` safe in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `12.300s`.
fn secs(at_us: u64) -> String {
    format!("{:.3}s", at_us as f64 / 1e6)
}

/// `12.3s (faults+11.6s)`.
fn when(timeline: &Timeline, at_us: u64) -> String {
    match timeline.phase_of(at_us) {
        Some((phase, into)) => format!("{} ({phase}+{:.1}s)", secs(at_us), into as f64 / 1e6),
        None => secs(at_us),
    }
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}table.facts th{width:110px}code{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f4f4f4;padding:1px 4px}
td.detail{white-space:pre-wrap;font:12px ui-monospace,Menlo,Consolas,monospace;max-width:700px;overflow-wrap:anywhere}
.verdict{display:inline-block;padding:1px 10px;border-radius:10px;color:#fff;font-weight:600}
.v-pass{background:#2e7d32}.v-safety{background:#c62828}.v-liveness{background:#ef6c00}.v-crash{background:#6a1b9a}
.fail{color:#c62828;font-weight:600}.about{color:#444;max-width:1100px}
tr:target{background:#fff3bf}.scroll{overflow-x:auto}
svg.timeline{width:100%;min-width:1100px;height:auto;font:10px system-ui,sans-serif}
svg .lane-label{fill:#333}svg .section{fill:#000;font-weight:600}svg .stripe{fill:#f6f7f9}
svg .grid{stroke:#e2e2e2}svg .tick{fill:#555}svg .rel{fill:#888}
svg .phase{stroke:#444;stroke-dasharray:4 3}svg .phase-name{fill:#222;font-weight:600}
svg .down{fill:#5f6368}svg .power{fill:#212121}svg .paused{fill:#f2c14e}svg .clogged{fill:#8aa6c1}
svg .partition{fill:#c792c1}svg .loss{fill:#c9b37e}svg .restart{fill:#2e7d32}svg .end{fill:#9e9e9e}svg .noop{fill:#cfcfcf}
svg .band-label{fill:#fff;pointer-events:none}svg .paused+.band-label,svg .partition+.band-label,svg .loss+.band-label{fill:#222}
svg g.fault:target rect{stroke:#d50000;stroke-width:2}
svg .s{stroke:#fff;stroke-width:.5}svg .seg-label{fill:#fff;pointer-events:none}
svg .warn{fill-opacity:.55}svg .merged{fill:#9e9e9e}
svg .c0{fill:#7f7f7f}svg .c1{fill:#4e79a7}svg .c2{fill:#f28e2b}svg .c3{fill:#59a14f}svg .c4{fill:#b07aa1}
svg .c5{fill:#76b7b2}svg .c6{fill:#9c755f}svg .c7{fill:#edc948}svg .c8{fill:#ff9da7}svg .c9{fill:#bab0ac}
svg .g0{fill:#9e9e9e}svg .g1{fill:#ef6c00}svg .g2{fill:#f9a825}svg .g3{fill:#2e7d32}svg .g4{fill:#424242}
svg .hw{fill:none;stroke:#1f4e79;stroke-width:1.2}svg .hw-label{fill:#1f4e79}
svg .violation-marker{fill:#d50000;stroke:#fff}svg .vline{stroke:#d50000;stroke-opacity:.35}svg .vtick{fill:#d50000}
svg .crash{fill:#d50000}svg .heal-restart{fill:#2e7d32}svg .heal-resume{fill:#9e9e9e}
.legend span{display:inline-block;margin-right:14px;font-size:12px}.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
footer{margin-top:24px;color:#888;font-size:12px}
"#;

fn head(page: &mut String, result: &RunResult) {
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>ksim: {} seed {} — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&result.scenario),
        result.seed,
        result.verdict.name()
    );
}

fn summary(page: &mut String, result: &RunResult, about: &str) {
    let verdict = result.verdict.name();
    let _ = writeln!(
        page,
        "<header><h1>{} — seed {} <span class=\"verdict v-{verdict}\">{verdict}</span></h1>",
        escape(&result.scenario),
        result.seed
    );
    if !about.is_empty() {
        let _ = writeln!(page, "<p class=\"about\">{}</p>", escape(about));
    }
    let failed = result.failed_checks();
    let rows = [
        (
            "verdict",
            if failed.is_empty() {
                escape(verdict)
            } else {
                format!(
                    "{} (failed: <span class=\"fail\">{}</span>)",
                    escape(verdict),
                    escape(&failed.join(", "))
                )
            },
        ),
        (
            "scenario",
            format!(
                "{} <code>{}</code>",
                escape(&result.scenario),
                escape(&result.scenario_path.display().to_string())
            ),
        ),
        ("seed", result.seed.to_string()),
        ("trace hash", format!("<code>{}</code>", result.trace())),
        (
            "simulated",
            format!("{:.3} s", result.sim_ms as f64 / 1000.0),
        ),
        ("wall", format!("{:.3} s", result.wall_ms as f64 / 1000.0)),
        (
            "replay",
            format!("<code>{}</code>", escape(&result.replay_command())),
        ),
    ];
    page.push_str("<table class=\"facts\">\n");
    for (key, value) in rows {
        let _ = writeln!(page, "<tr><th>{key}</th><td>{value}</td></tr>");
    }
    page.push_str("</table></header>\n");
}

fn violations_table(page: &mut String, timeline: &Timeline, violations: &[&Violation]) {
    let _ = writeln!(
        page,
        "<section id=\"violations\"><h2>Violations ({})</h2>",
        violations.len()
    );
    if violations.is_empty() {
        page.push_str("<p>None: every check passed.</p></section>\n");
        return;
    }
    page.push_str(
        "<table><tr><th>#</th><th>check</th><th>time</th><th>where</th><th>detail</th>\
         <th>faults in force within 10 s before</th></tr>\n",
    );
    for (i, v) in violations.iter().enumerate().take(MAX_VIOLATIONS) {
        let time = match v.at_ms {
            Some(ms) => format!(
                "<a href=\"#vmark-{i}\">{}</a>",
                escape(&when(timeline, ms * 1000))
            ),
            None => "—".to_string(),
        };
        let mut place = [v.partition.as_deref(), v.node.as_deref()]
            .into_iter()
            .flatten()
            .map(escape)
            .collect::<Vec<_>>()
            .join("<br>");
        if place.is_empty() {
            place.push('—');
        }
        let faults = match v.at_ms {
            Some(ms) => {
                let ids = timeline.faults_before(ms * 1000, PRECEDING_WINDOW_MS * 1000);
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.iter()
                        .map(|&id| fault_link(timeline, id))
                        .collect::<Vec<_>>()
                        .join("<br>")
                }
            }
            None => "—".to_string(),
        };
        let _ = writeln!(
            page,
            "<tr id=\"violation-{i}\"><td>{i}</td><td class=\"fail\">{}</td><td>{time}</td>\
             <td>{place}</td><td class=\"detail\">{}</td><td>{faults}</td></tr>",
            escape(&v.check),
            escape(&v.detail)
        );
    }
    page.push_str("</table>\n");
    if violations.len() > MAX_VIOLATIONS {
        let _ = writeln!(
            page,
            "<p>… and {} more (every one is in <code>verdict.json</code>).</p>",
            violations.len() - MAX_VIOLATIONS
        );
    }
    page.push_str("</section>\n");
}

fn fault_link(timeline: &Timeline, id: usize) -> String {
    let fault = &timeline.faults[id];
    format!(
        "<a class=\"fault-link\" href=\"#fault-{id}\">#{id} {} {}</a> at {}",
        escape(&fault.action),
        escape(&fault.summary),
        secs(fault.at_us)
    )
}

fn crash(page: &mut String, result: &RunResult) {
    if let Some(crash) = &result.crash {
        let _ = writeln!(
            page,
            "<section id=\"crash\"><h2>Crash</h2><p><code>{}</code> panicked at {}:</p>\
             <pre>{}</pre></section>",
            escape(&crash.node),
            secs(crash.at_us),
            escape(&crash.message)
        );
    }
}

fn legend(page: &mut String) {
    page.push_str("<p class=\"legend\">");
    for (class, text) in [
        ("down", "killed (down)"),
        ("power", "power loss (down)"),
        ("paused", "paused"),
        ("clogged", "clogged"),
        ("partition", "network partition"),
        ("loss", "packet loss"),
        ("restart", "restart"),
        ("end", "fault ended (resume, unclog, heal)"),
    ] {
        let _ = write!(
            page,
            "<span><svg width=\"14\" height=\"10\"><rect class=\"{class}\" width=\"14\" height=\"10\"/></svg>{text}</span>"
        );
    }
    page.push_str(
        "<span><svg width=\"14\" height=\"10\"><path class=\"violation-key\" fill=\"#d50000\" d=\"M7,0 L12,5 L7,10 L2,5Z\"/></svg>violation</span>\
         <span>colored segments: who believed it held the role (color = broker or server number; \
         faded: ISR below the replication factor, group rebalancing); blue line: the leader's HW; \
         hover anything for details</span></p>\n",
    );
}

fn faults_table(page: &mut String, timeline: &Timeline) {
    let _ = writeln!(
        page,
        "<section id=\"faults\"><h2>Faults ({})</h2>",
        timeline.faults.len()
    );
    if timeline.faults.is_empty() {
        page.push_str("<p>None.</p></section>\n");
        return;
    }
    page.push_str(
        "<table><tr><th>#</th><th>time</th><th>action</th><th>what</th><th>until</th><th>source</th></tr>\n",
    );
    for (id, fault) in timeline.faults.iter().enumerate() {
        let until = fault
            .parts
            .iter()
            .filter(|p| p.kind.is_band())
            .max_by_key(|p| p.end_us)
            .map_or("", |p| p.ended_by.as_str());
        let _ = writeln!(
            page,
            "<tr id=\"fault-row-{id}\"><td><a href=\"#fault-{id}\">{id}</a></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&when(timeline, fault.at_us)),
            escape(&fault.action),
            escape(&fault.summary),
            escape(until),
            escape(&fault.source)
        );
    }
    page.push_str("</table></section>\n");
}

fn checks_table(page: &mut String, result: &RunResult) {
    page.push_str(
        "<section id=\"checks\"><h2>Checks</h2><table><tr><th>check</th><th>kind</th><th>result</th></tr>\n",
    );
    for check in &result.checks {
        let kind = match check.kind {
            CheckKind::Safety => "safety",
            CheckKind::Liveness => "liveness",
        };
        let outcome = if check.passed() {
            "pass".to_string()
        } else {
            format!(
                "<span class=\"fail\">FAIL ({})</span>",
                check.violations.len()
            )
        };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{kind}</td><td>{outcome}</td></tr>",
            escape(check.check)
        );
    }
    page.push_str("</table>\n<details><summary>counters</summary><table>\n");
    for (key, value) in &result.stats {
        let _ = writeln!(page, "<tr><td>{}</td><td>{value}</td></tr>", escape(key));
    }
    page.push_str("</table></details></section>\n");
}

/// The SVG timeline: rows laid out top to bottom, then drawn.
struct Svg<'a> {
    timeline: &'a Timeline,
    violations: &'a [&'a Violation],
    /// y of each node lane and of the network lane.
    lanes: BTreeMap<LaneRef, f64>,
    /// y of each partition's first leader row.
    partitions: BTreeMap<&'a str, f64>,
    out: String,
    y: f64,
    rows: usize,
}

impl<'a> Svg<'a> {
    fn new(timeline: &'a Timeline, violations: &'a [&'a Violation]) -> Self {
        Svg {
            timeline,
            violations,
            lanes: BTreeMap::new(),
            partitions: BTreeMap::new(),
            out: String::new(),
            y: AXIS_H,
            rows: 0,
        }
    }

    fn x(&self, at_us: u64) -> f64 {
        X0 + at_us.min(self.timeline.end_us) as f64 / self.timeline.end_us as f64 * (X1 - X0)
    }

    fn draw(mut self, page: &mut String) {
        let violations_y = self.row("violations");
        let network_y = self.row("network");
        self.lanes.insert(LaneRef::Network, network_y);
        if !self.timeline.nodes.is_empty() {
            self.section("nodes");
            for node in &self.timeline.nodes {
                let y = self.row(&node.name);
                self.lanes.insert(LaneRef::Node(node.name.clone()), y);
                for marker in &node.markers {
                    let x = self.x(marker.at_us);
                    let _ = write!(
                        self.out,
                        "<path class=\"{}\" d=\"M{x:.1},{:.1} l4,{:.1} h-8z\"><title>{}</title></path>",
                        marker.kind,
                        y + 1.0,
                        ROW_H - 2.0,
                        escape(&marker.title)
                    );
                }
            }
        }
        self.section("roles");
        let controller = self.timeline.controller.clone();
        self.lane("controller", &controller, "c");
        let zk_leader = self.timeline.zk_leader.clone();
        self.lane("zk leader", &zk_leader, "c");
        if !self.timeline.partitions.is_empty() {
            self.section("partitions");
            for partition in &self.timeline.partitions {
                self.partitions.insert(&partition.partition, self.y);
                self.lane(&partition.partition, &partition.leaders, "c");
                self.hw(&partition.partition, &partition.hw);
            }
        }
        if !self.timeline.groups.is_empty() {
            self.section("groups");
            for group in &self.timeline.groups {
                self.lane(&group.group, &group.states, "g");
                for (member, lane) in &group.members {
                    self.lane(&format!("  {member}"), lane, "c");
                }
            }
        }
        let height = self.y + 8.0;
        self.faults();
        self.violations(violations_y, height);
        let mut frame = String::new();
        let _ = write!(
            frame,
            "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" role=\"img\" \
             aria-label=\"timeline of the run over simulated time\">"
        );
        self.axis(&mut frame, height);
        page.push_str(&frame);
        page.push_str(&self.out);
        page.push_str("</svg>");
    }

    /// A new row: its stripe (every other row) and label; returns its y.
    fn row(&mut self, label: &str) -> f64 {
        self.row_of(label, ROW_H)
    }

    fn row_of(&mut self, label: &str, height: f64) -> f64 {
        let y = self.y;
        self.rows += 1;
        if self.rows % 2 == 1 {
            let _ = write!(
                self.out,
                "<rect class=\"stripe\" x=\"0\" y=\"{y:.1}\" width=\"{X1:.0}\" height=\"{height:.1}\"/>"
            );
        }
        if !label.is_empty() {
            let _ = write!(
                self.out,
                "<text class=\"lane-label\" x=\"6\" y=\"{:.1}\">{}</text>",
                y + height / 2.0 + 3.5,
                escape(label)
            );
        }
        self.y += height + 2.0;
        y
    }

    fn section(&mut self, name: &str) {
        let _ = write!(
            self.out,
            "<text class=\"section\" x=\"2\" y=\"{:.1}\">{}</text>",
            self.y + 13.0,
            escape(name)
        );
        self.y += HEADER_H;
    }

    /// A role's lane: one row per sub-row of overlapping beliefs.
    fn lane(&mut self, label: &str, lane: &Lane, palette: &str) {
        for (i, row) in lane.rows.iter().enumerate() {
            let y = self.row(if i == 0 { label } else { "" });
            for segment in row {
                self.segment(segment, y, palette);
            }
        }
    }

    fn segment(&mut self, segment: &Segment, y: f64, palette: &str) {
        let x = self.x(segment.start_us);
        let w = (self.x(segment.end_us) - x).max(1.0);
        let class = if segment.holder.is_empty() {
            "merged".to_string()
        } else {
            format!("{palette}{}", segment.color % 10)
        };
        let warn = if segment.flagged { " warn" } else { "" };
        let _ = write!(
            self.out,
            "<g><title>{} ({} – {})</title><rect class=\"s {class}{warn}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{ROW_H}\"/>",
            escape(&segment.title),
            secs(segment.start_us),
            secs(segment.end_us)
        );
        let fits = |text: &str| text.chars().count() as f64 * CHAR_W + 4.0 <= w;
        let label = if fits(&segment.label) {
            Some(&segment.label)
        } else if fits(&segment.short) {
            Some(&segment.short)
        } else {
            None
        };
        if let Some(label) = label {
            let _ = write!(
                self.out,
                "<text class=\"seg-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 2.0,
                y + 11.5,
                escape(label)
            );
        }
        self.out.push_str("</g>");
    }

    /// The HW step line of a partition's leader (no row for a HW that never left 0).
    fn hw(&mut self, partition: &str, points: &[(u64, u64)]) {
        let top = points.iter().map(|p| p.1).max().unwrap_or(0);
        let Some(&(_, last)) = points.last().filter(|_| top > 0) else {
            return;
        };
        let y = self.row_of("", HW_H);
        let level = |hw: u64| y + HW_H - 2.0 - hw as f64 / top as f64 * (HW_H - 4.0);
        let mut line = String::new();
        let mut previous: Option<u64> = None;
        for &(at, hw) in points {
            let x = self.x(at);
            if let Some(before) = previous {
                let _ = write!(line, "{x:.1},{:.1} ", level(before));
            }
            let _ = write!(line, "{x:.1},{:.1} ", level(hw));
            previous = Some(hw);
        }
        let _ = write!(line, "{X1:.1},{:.1}", level(last));
        let _ = write!(
            self.out,
            "<g><title>{}: the HW its leader announced (highest {top}, last {last})</title>\
             <polyline class=\"hw\" points=\"{line}\"/><text class=\"hw-label\" x=\"{:.1}\" y=\"{:.1}\">hw {last}</text></g>",
            escape(partition),
            X1 + 4.0,
            y + HW_H / 2.0 + 3.5
        );
    }

    /// Every fault: a `g.fault` with a band or tick on each lane it touched.
    fn faults(&mut self) {
        for (id, fault) in self.timeline.faults.iter().enumerate() {
            self.fault(id, fault);
        }
    }

    fn fault(&mut self, id: usize, fault: &FaultMark) {
        let _ = write!(
            self.out,
            "<a href=\"#fault-row-{id}\"><g class=\"fault\" id=\"fault-{id}\" data-action=\"{}\"><title>#{id} {} at {}: {} ({})</title>",
            escape(&fault.action),
            escape(&fault.action),
            secs(fault.at_us),
            escape(&fault.summary),
            escape(&fault.source)
        );
        for part in &fault.parts {
            let Some(&y) = self.lanes.get(&part.lane) else {
                continue;
            };
            let x = self.x(part.start_us);
            if part.kind.is_band() {
                let w = (self.x(part.end_us) - x).max(1.5);
                let _ = write!(
                    self.out,
                    "<rect class=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>",
                    part.kind.class(),
                    y + 1.0,
                    ROW_H - 2.0
                );
                let text = match part.kind {
                    PartKind::Partition => format!("partition {}", fault.summary),
                    _ => fault.action.clone(),
                };
                if text.chars().count() as f64 * CHAR_W + 4.0 <= w {
                    let _ = write!(
                        self.out,
                        "<text class=\"band-label\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                        x + 2.0,
                        y + 11.5,
                        escape(&text)
                    );
                }
            } else {
                let _ = write!(
                    self.out,
                    "<rect class=\"{}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"2\" height=\"{ROW_H}\"/>",
                    part.kind.class(),
                    x - 1.0
                );
            }
        }
        self.out.push_str("</g></a>");
    }

    /// Each violation with a time: a marker in the violations row, a faint line through
    /// every lane, and a tick on its partition's or node's lane.
    fn violations(&mut self, row_y: f64, height: f64) {
        for (i, v) in self.violations.iter().enumerate().take(MAX_VIOLATIONS) {
            let Some(ms) = v.at_ms else { continue };
            let x = self.x(ms * 1000);
            let _ = write!(
                self.out,
                "<line class=\"vline\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{height:.1}\"/>",
                row_y + ROW_H
            );
            let on_lane = v
                .partition
                .as_deref()
                .and_then(|p| self.partitions.get(p).copied())
                .or_else(|| {
                    v.node
                        .as_ref()
                        .and_then(|n| self.lanes.get(&LaneRef::Node(n.clone())).copied())
                });
            if let Some(y) = on_lane {
                let _ = write!(
                    self.out,
                    "<rect class=\"vtick\" x=\"{:.1}\" y=\"{y:.1}\" width=\"3\" height=\"{ROW_H}\"/>",
                    x - 1.5
                );
            }
            let _ = write!(
                self.out,
                "<a href=\"#violation-{i}\"><path class=\"violation-marker\" id=\"vmark-{i}\" d=\"M{x:.1},{:.1} l6,7 l-6,7 l-6,-7z\"><title>{} at {}: {}</title></path></a>",
                row_y + 1.0,
                escape(&v.check),
                secs(ms * 1000),
                escape(&v.detail)
            );
        }
    }

    /// The axis: ticks with absolute and phase-relative times, grid lines, phase lines.
    fn axis(&self, out: &mut String, height: f64) {
        let end_s = self.timeline.end_us as f64 / 1e6;
        let step = [
            0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
            1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
        ]
        .into_iter()
        .find(|step| end_s / step <= 12.0)
        .unwrap_or(86400.0);
        let mut t = 0.0;
        while t <= end_s + 1e-9 {
            let at_us = (t * 1e6).round() as u64;
            let x = self.x(at_us);
            let relative = self
                .timeline
                .phase_of(at_us)
                .map(|(phase, into)| format!("{phase}+{:.1}s", into as f64 / 1e6))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{height:.1}\"/>\
                 <text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <text class=\"rel\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                AXIS_H - 22.0,
                AXIS_H - 14.0,
                axis_label(t, step),
                AXIS_H - 3.0,
                escape(&relative)
            );
            t += step;
        }
        let mut last_label_x = f64::MIN;
        let mut level = 0;
        for phase in &self.timeline.phases {
            let x = self.x(phase.at_us);
            level = if x - last_label_x < 60.0 {
                (level + 1) % 3
            } else {
                0
            };
            last_label_x = x;
            let _ = write!(
                out,
                "<line class=\"phase\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{height:.1}\"/>\
                 <text class=\"phase-name\" x=\"{:.1}\" y=\"{:.1}\"><title>{} begins at {}</title>{}</text>",
                2.0 + level as f64 * 11.0,
                x + 3.0,
                10.0 + level as f64 * 11.0,
                escape(&phase.name),
                secs(phase.at_us),
                escape(&phase.name)
            );
        }
    }
}

/// `45s`, `1.5s`, `2m`, `1h30m`.
fn axis_label(t: f64, step: f64) -> String {
    if step < 1.0 {
        format!("{t:.1}s")
    } else if step < 60.0 || t < 60.0 {
        format!("{t:.0}s")
    } else if t < 3600.0 {
        format!("{:.0}m{}", (t / 60.0).floor(), seconds_rest(t % 60.0))
    } else {
        format!("{:.0}h{:.0}m", (t / 3600.0).floor(), (t % 3600.0) / 60.0)
    }
}

fn seconds_rest(s: f64) -> String {
    if s < 0.5 {
        String::new()
    } else {
        format!("{s:.0}s")
    }
}

#[cfg(test)]
mod tests;
