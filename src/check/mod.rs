//! Independent checkers: they read the history of what clients were told, the events nodes
//! announced, and the final logs read back from disk — never the internals of the cores.
//!
//! Owns: the check names of the contract (`CHECKS`), which checks apply to a scenario, and
//! the [`Violation`] record every checker produces.

/// Every check name of the contract, with whether it is a safety or a liveness check.
pub const CHECKS: &[(&str, CheckKind)] = &[
    ("lost-write", CheckKind::Safety),
    ("duplicate", CheckKind::Safety),
    ("inconsistent-offsets", CheckKind::Safety),
    ("nonmonotonic-poll", CheckKind::Safety),
    ("poll-skip", CheckKind::Safety),
    ("phantom-read", CheckKind::Safety),
    ("reorder", CheckKind::Safety),
    ("unseen", CheckKind::Safety),
    ("single-leader-per-epoch", CheckKind::Safety),
    ("leader-epoch-monotonic", CheckKind::Safety),
    ("hw-monotonic", CheckKind::Safety),
    ("committed-prefix-agreement", CheckKind::Safety),
    ("no-truncation-below-hw", CheckKind::Safety),
    ("single-controller-per-epoch", CheckKind::Safety),
    ("controller-epoch-monotonic", CheckKind::Safety),
    ("exclusive-assignment", CheckKind::Safety),
    ("commit-monotonic", CheckKind::Safety),
    ("stale-commit-accepted", CheckKind::Safety),
    ("zk-linearizable-writes", CheckKind::Safety),
    ("zk-replica-agreement", CheckKind::Safety),
    ("zk-ephemeral-lifetime", CheckKind::Safety),
    ("zk-session-monotonic", CheckKind::Safety),
    ("converges", CheckKind::Liveness),
];

/// Whether a failed check is a safety or a liveness violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Something bad happened (exit 1).
    Safety,
    /// Something good did not happen within the bound (exit 3).
    Liveness,
}

/// The kind of a check by name, or `None` for a name the contract does not know.
pub fn check_kind(name: &str) -> Option<CheckKind> {
    CHECKS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}
