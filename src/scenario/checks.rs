//! The contract's check names: the scenario layer owns them because a scenario names them
//! (`[expect] fails = "..."`, `tolerate = [...]`) before any checker runs.
//!
//! Owns: [`CheckName`] (one variant per check, in the contract's order, which is the order
//! verdicts list them in) and [`CheckKind`] (a failed safety check is exit 1, a failed
//! liveness check exit 3). The checkers implement them.

use serde::Serialize;
use std::fmt;

/// Whether a failed check is a safety or a liveness violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Something bad happened (exit 1).
    Safety,
    /// Something good did not happen within the bound (exit 3).
    Liveness,
}

macro_rules! check_names {
    ($($variant:ident = $name:literal, $kind:ident;)*) => {
        /// A check of the contract, by its kebab-case name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum CheckName {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl CheckName {
            /// Every check, in the contract's order.
            pub const ALL: &'static [CheckName] = &[$(CheckName::$variant),*];

            /// The contract name.
            pub fn name(self) -> &'static str {
                match self {
                    $(CheckName::$variant => $name,)*
                }
            }

            /// Safety or liveness.
            pub fn kind(self) -> CheckKind {
                match self {
                    $(CheckName::$variant => CheckKind::$kind,)*
                }
            }
        }
    };
}

check_names! {
    LostWrite = "lost-write", Safety;
    Duplicate = "duplicate", Safety;
    InconsistentOffsets = "inconsistent-offsets", Safety;
    NonmonotonicPoll = "nonmonotonic-poll", Safety;
    PollSkip = "poll-skip", Safety;
    PhantomRead = "phantom-read", Safety;
    Reorder = "reorder", Safety;
    Unseen = "unseen", Safety;
    SingleLeaderPerEpoch = "single-leader-per-epoch", Safety;
    LeaderEpochMonotonic = "leader-epoch-monotonic", Safety;
    HwMonotonic = "hw-monotonic", Safety;
    CommittedPrefixAgreement = "committed-prefix-agreement", Safety;
    NoTruncationBelowHw = "no-truncation-below-hw", Safety;
    SingleControllerPerEpoch = "single-controller-per-epoch", Safety;
    ControllerEpochMonotonic = "controller-epoch-monotonic", Safety;
    ExclusiveAssignment = "exclusive-assignment", Safety;
    CommitMonotonic = "commit-monotonic", Safety;
    StaleCommitAccepted = "stale-commit-accepted", Safety;
    ZkLinearizableWrites = "zk-linearizable-writes", Safety;
    ZkReplicaAgreement = "zk-replica-agreement", Safety;
    ZkEphemeralLifetime = "zk-ephemeral-lifetime", Safety;
    ZkSessionMonotonic = "zk-session-monotonic", Safety;
    AbortedRead = "aborted-read", Safety;
    ReadUncommitted = "read-uncommitted", Safety;
    TornTransaction = "torn-transaction", Safety;
    Converges = "converges", Liveness;
}

impl CheckName {
    /// The check with this contract name, or `None` for a name the contract does not know.
    pub fn parse(name: &str) -> Option<CheckName> {
        CheckName::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for CheckName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_only_converges_is_liveness() {
        assert_eq!(CheckName::ALL.len(), 26);
        for &check in CheckName::ALL {
            assert_eq!(CheckName::parse(check.name()), Some(check));
            assert_eq!(
                check.kind() == CheckKind::Liveness,
                check == CheckName::Converges
            );
        }
        assert_eq!(CheckName::parse("lost-writes"), None);
    }
}
