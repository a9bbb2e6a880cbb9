//! `report.html` as a browser sees it: real runs of `ksim run` (a failing zoo scenario and
//! the README's passing sample), each page loaded by headless Chromium (`--dump-dom`), and
//! the DOM it built checked against the run's own files: one fault band per `fault` event
//! of `events.jsonl`, one violation marker per timed violation of `verdict.json`, each
//! violation's row linking the faults before it, and nothing that loads from elsewhere.
//!
//! The browser is Debian's `chromium` (`.ci/run` installs it). Where it is not on the PATH
//! the test says so and checks the page's text only.

mod common;

use common::{scenario_path, scratch};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `chromium` on the PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
}

/// Runs `ksim run <scenario> --seed <seed> --out <dir>`; returns the exit code.
fn ksim_run(scenario: &str, seed: u64, dir: &Path) -> i32 {
    let out = Command::new(env!("CARGO_BIN_EXE_ksim"))
        .args(["run", scenario_path(scenario).to_str().unwrap()])
        .args(["--seed", &seed.to_string(), "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    out.status.code().expect("ksim exits")
}

/// The DOM Chromium builds from `page` (serialized), or why it could not.
fn dump_dom(browser: &Path, page: &Path, profile: &Path) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed on {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fault_events(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter(|line| serde_json::from_str::<Value>(line).unwrap()["kind"] == "fault")
        .count()
}

fn timed_violations(dir: &Path) -> usize {
    let verdict: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdict.json")).unwrap()).unwrap();
    verdict["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("at_ms").is_some())
        .count()
}

/// What a page must show, whether read as text or as the browser's DOM.
fn check_page(dom: &str, dir: &Path, what: &str) {
    assert!(
        dom.contains("<svg class=\"timeline\""),
        "{what}: no timeline"
    );
    assert_eq!(
        dom.matches("<g class=\"fault\"").count(),
        fault_events(dir),
        "{what}: one fault band or tick per fault event"
    );
    assert_eq!(
        dom.matches("class=\"violation-marker\"").count(),
        timed_violations(dir),
        "{what}: one marker per violation with a time"
    );
    for needle in [
        "=\"http:",
        "=\"https:",
        "='http",
        "url(",
        "<script",
        "<link",
        "<img",
        "<iframe",
        "src=",
    ] {
        assert!(
            !dom.contains(needle),
            "{what}: `{needle}` loads from elsewhere"
        );
    }
}

#[test]
fn report_html_renders_in_a_browser_with_its_faults_and_violations() {
    let base = scratch("report-html");
    let failing = base.join("unclean-election-1");
    let passing = base.join("leader-failover-42");
    assert_eq!(ksim_run("zoo/unclean-election.toml", 1, &failing), 1);
    assert_eq!(ksim_run("leader-failover.toml", 42, &passing), 0);
    assert!(fault_events(&failing) >= 3 && fault_events(&passing) >= 6);
    assert!(timed_violations(&failing) >= 1);
    assert_eq!(timed_violations(&passing), 0);

    let mut pages = vec![];
    for dir in [&failing, &passing] {
        let text = std::fs::read_to_string(dir.join("report.html")).unwrap();
        check_page(&text, dir, "report.html as written");
        pages.push((dir, text));
    }
    let Some(browser) = chromium() else {
        println!(
            "skipping the browser half of report_html: no `chromium` on the PATH (Debian \
             package `chromium`; .ci/run installs it). The pages' text was checked."
        );
        return;
    };
    for (dir, _) in &pages {
        let dom = dump_dom(&browser, &dir.join("report.html"), &base.join("profile"));
        let what = format!("{} in chromium", dir.display());
        assert!(
            dom.contains("</svg>") && dom.contains("</html>"),
            "{what}: {dom}"
        );
        check_page(&dom, dir, &what);
    }
    let dom = dump_dom(
        &browser,
        &failing.join("report.html"),
        &base.join("profile"),
    );
    let row = &dom[dom
        .find("<tr id=\"violation-0\">")
        .expect("a violation row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("lost-write") && row.contains("href=\"#fault-0\""),
        "the lost write links the kill before it: {row}"
    );
    assert!(dom.contains("id=\"fault-0\""), "the link's target exists");
}
