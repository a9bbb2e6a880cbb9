//! Independent checkers: they read the history of what clients were told, the events nodes
//! announced, and the final logs read back from the nodes' disks ([`NodeData`]: the run
//! directory, or a memory-backed run's disk images) — never the internals of the cores.
//!
//! Owns: which checks apply to a scenario, and the [`Violation`] record every checker
//! produces. The check names themselves are the scenario layer's
//! ([`CheckName`](crate::scenario::CheckName)): a scenario names them before anything runs.

mod broker_events;
mod client_history;
mod control;
mod final_log;
mod group;
pub mod kafka;
pub mod linearizable;
mod liveness;
mod node_data;
mod processing;
mod replication;
#[cfg(test)]
mod tables;
#[cfg(test)]
mod test_support;
mod toolkit;
mod transactions;
mod writer;
pub mod zk;

pub use final_log::{read_final_log, FinalLog};
pub use node_data::{NodeData, NodeDisk, NodeFile};

use crate::history::{Event, HistoryEntry};
pub use crate::scenario::CheckKind;
use crate::scenario::{CheckName, Scenario};
use serde::Serialize;

/// One anomaly a check found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The check's contract name.
    pub check: String,
    /// What was found: which records, offsets, node and when.
    pub detail: String,
    /// Simulated time of the first evidence, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// The partition concerned (`topic/p`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The node concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The outcome of one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// The check's contract name.
    pub check: &'static str,
    /// Safety or liveness.
    pub kind: CheckKind,
    /// What it found; empty when it passed.
    pub violations: Vec<Violation>,
}

impl CheckResult {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What the checkers get: the scenario, what was recorded, and every node's data as the run
/// left it (in the run directory, or in memory images).
pub struct CheckInput<'a> {
    /// The scenario that ran.
    pub scenario: &'a Scenario,
    /// Announced events, in order.
    pub events: &'a [Event],
    /// Client history, in order.
    pub history: &'a [HistoryEntry],
    /// Where each node's files are.
    pub nodes: NodeData<'a>,
}

/// Runs every check that applies to the scenario, in the contract's order.
pub fn run_checks(input: &CheckInput<'_>) -> Vec<CheckResult> {
    let mut results = Vec::new();
    if !input.scenario.writers.is_empty() {
        let logs = writer::final_logs(input);
        results.push(result("lost-write", writer::lost_write(input, &logs)));
        results.push(result(
            "inconsistent-offsets",
            writer::inconsistent_offsets(input, &logs),
        ));
    }
    if input.scenario.cluster.zookeepers > 0 {
        let servers: Vec<zk::ServerFiles> = input
            .scenario
            .zk_names()
            .iter()
            .map(|name| zk::read_server_files(input.nodes, name))
            .collect();
        if !input.scenario.zk_clients.is_empty() {
            results.push(result(
                "zk-linearizable-writes",
                zk::linearizable_writes(input),
            ));
        }
        results.push(result(
            "zk-replica-agreement",
            zk::replica_agreement(input, &servers),
        ));
        results.push(result(
            "zk-ephemeral-lifetime",
            zk::ephemeral_lifetime(input, &servers),
        ));
        if !input.scenario.zk_clients.is_empty() {
            results.push(result("zk-session-monotonic", zk::session_monotonic(input)));
        }
    }
    if input.scenario.cluster.brokers > 0 {
        let logs = kafka::read_replica_logs(input);
        let mut facts = kafka::Facts::new(input.events, input.history, &logs);
        facts.read_committed = input.scenario.read_committed_consumers();
        for found in kafka::run(input, &facts) {
            merge(&mut results, found);
        }
        for found in group::run(input, &facts) {
            merge(&mut results, found);
        }
    }
    merge(
        &mut results,
        result("converges", liveness::converges(input)),
    );
    let order = |r: &CheckResult| CheckName::parse(r.check);
    results.sort_by_key(order);
    results
}

/// Adds a check's result, folding it into an earlier result of the same check (writers
/// and brokers both answer `lost-write` and `inconsistent-offsets`).
fn merge(results: &mut Vec<CheckResult>, found: CheckResult) {
    match results.iter_mut().find(|r| r.check == found.check) {
        Some(earlier) => earlier.violations.extend(found.violations),
        None => results.push(found),
    }
}

fn result(check: &'static str, violations: Vec<Violation>) -> CheckResult {
    CheckResult {
        check,
        kind: CheckName::parse(check)
            .expect("a contract check name")
            .kind(),
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(check: &'static str, detail: &str) -> CheckResult {
        result(
            check,
            vec![Violation {
                check: check.to_string(),
                detail: detail.to_string(),
                at_ms: None,
                partition: None,
                node: None,
            }],
        )
    }

    #[test]
    fn a_check_answered_by_writers_and_brokers_is_one_result_with_both_findings() {
        let mut results = vec![found("lost-write", "writer-1"), found("converges", "x")];
        merge(&mut results, found("lost-write", "orders/0"));
        merge(&mut results, found("duplicate", "orders/0"));
        assert_eq!(results.len(), 3);
        let details: Vec<&str> = results[0]
            .violations
            .iter()
            .map(|v| v.detail.as_str())
            .collect();
        assert_eq!(details, ["writer-1", "orders/0"]);
        assert_eq!(results[2].check, "duplicate");
    }
}
