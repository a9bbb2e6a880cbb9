//! Coverage marks: named "sometimes" assertions (FoundationDB's `CODE_PROBE`, TigerBeetle's
//! marks). A check says what must never happen; a mark says what a good test must make
//! happen at least once — a follower truncating below its high watermark, a commit fenced
//! mid-rebalance, a power cut inside an fsync. A scenario that never reaches a mark cannot
//! find the bugs that live behind it, however many seeds it runs.
//!
//! Owns: the list of marks ([`Mark`], one name and one sentence each) and the per-run
//! tally. The protocol cores call [`hit`] where an interesting state is reached; the
//! simulation takes the tally at the end of a run ([`take`]) into `verdict.json`, and
//! `ksim sweep`, `ksim swarm` and `ksim coverage` count on how many seeds each mark was hit.
//!
//! A mark is a side channel, never an input: hitting one changes nothing a node does or
//! records, so the trace hash cannot see it. The tally is per OS thread, like the shells'
//! call counters (`node::counters`): a run lives on its runtime's one thread, and the
//! simulation clears the tally when a run starts.

use std::cell::RefCell;
use std::collections::BTreeMap;

macro_rules! marks {
    ($($variant:ident = $name:literal : $about:literal,)*) => {
        /// A named state worth reaching. Names are kebab-case and stable: they appear in
        /// `verdict.json`, sweep summaries and `reports/coverage.md`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Mark {
            $(
                #[doc = $about]
                $variant,
            )*
        }

        impl Mark {
            /// Every mark, in declaration order.
            pub const ALL: &'static [Mark] = &[$(Mark::$variant,)*];

            /// The mark's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Mark::$variant => $name,)*
                }
            }

            /// What reaching it means, in one sentence.
            pub fn about(self) -> &'static str {
                match self {
                    $(Mark::$variant => $about,)*
                }
            }
        }
    };
}

marks! {
    // --- replication (broker::replica, broker::controller) ---
    FollowerTruncatesBelowHw = "follower-truncates-below-hw":
        "A follower's truncation cut its log below its own high watermark (an HW it believed committed was not: unclean election, lost unflushed tail).",
    FollowerTruncatesDivergentTail = "follower-truncates-divergent-tail":
        "A follower found where its log diverges from its new leader's and cut the records past it.",
    ElectionWithOutOfSyncReplicasAlive = "election-with-out-of-sync-replicas-alive":
        "The controller elected a leader while an assigned replica outside the ISR was alive.",
    UncleanElection = "unclean-election":
        "The controller elected a leader from outside the ISR (unclean.leader.election.enable).",
    NoLeaderEligible = "no-leader-eligible":
        "A partition was left without a leader: no live replica could be elected.",
    IsrShrink = "isr-shrink":
        "A leader removed a lagging follower from the ISR.",
    IsrBelowMinInsync = "isr-below-min-insync":
        "An acks=all produce was refused because the ISR was smaller than min.insync.replicas.",
    ProduceDuplicateBatch = "produce-duplicate-batch":
        "A leader recognised a retried idempotent batch it already held and answered with its offset instead of appending it again.",
    ProduceOutOfOrderSequence = "produce-out-of-order-sequence":
        "A leader refused an idempotent batch whose sequence skipped ahead (OUT_OF_ORDER_SEQUENCE_NUMBER).",
    ProduceUnverifiedTxnBatch = "produce-unverified-txn-batch":
        "A leader refused a transactional batch its transaction coordinator had not verified, or whose verification a marker had voided (KIP-890 part 1, INVALID_TXN_STATE).",
    FetchFencedLeaderEpoch = "fetch-fenced-leader-epoch":
        "A replica refused a fetch or epoch lookup carrying another leader epoch than its own (FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH).",
    // --- the controller ---
    ControllerMoved = "controller-moved":
        "A broker won the controller election in a later controller epoch (an earlier controller had resigned, died or lost its session).",
    StaleControllerRequestRefused = "stale-controller-request-refused":
        "A broker refused a request of a controller epoch older than one it had seen.",
    StaleBrokerEpochRefused = "stale-broker-epoch-refused":
        "A broker refused a LeaderAndIsr addressed to another of its incarnations (its broker epoch, KIP-380).",
    // --- groups (broker::coordinator, client) ---
    CommitAcrossCoordinatorMove = "commit-across-coordinator-move":
        "An offset commit was in flight when its group's coordinator moved: its append finished after the group was unloaded, or failed because the partition's leadership had moved.",
    CommitFenced = "commit-fenced":
        "The coordinator refused a member's offset commit for an old generation or an unknown member (the member was fenced mid-commit).",
    CommitDuringRebalance = "commit-during-rebalance":
        "The coordinator took a member's offset commit while its group was preparing a rebalance (the member had not heard yet; Kafka stores it in the current generation).",
    MemberExpired = "member-expired":
        "The coordinator removed a member whose session timed out.",
    StaticMemberReplaced = "static-member-replaced":
        "A static member rejoined under a new member id and took its instance's place without a rebalance.",
    CooperativeRevocation = "cooperative-revocation":
        "A cooperative-sticky member gave up partitions it owned, to be reassigned in a follow-up rebalance.",
    CoordinatorLoadedWithGroups = "coordinator-loaded-with-groups":
        "A broker became coordinator of an offsets partition and loaded groups from its log.",
    OffsetResetByListOffsets = "offset-reset-by-list-offsets":
        "A consumer without a position took the one ListOffsets named (auto.offset.reset).",
    ListOffsetsNotAvailable = "list-offsets-not-available":
        "A new leader could not name its latest offset yet: its high watermark was below its epoch's start.",
    // --- transactions (broker::txn_coordinator) ---
    TxnEpochFenced = "txn-epoch-fenced":
        "An InitProducerId for a transactional.id with an ongoing transaction fenced its producer: the epoch was bumped and the transaction aborted.",
    TxnTimedOutAborted = "txn-timed-out-aborted":
        "The transaction coordinator aborted a transaction that stayed ongoing past its transaction.timeout.ms.",
    TxnMarkersResentOnLoad = "txn-markers-resent-on-load":
        "A new transaction coordinator loaded a transaction in PrepareCommit or PrepareAbort and sent its markers again.",
    // --- the log engine (log::recovery) ---
    RecoveryTruncatesBadCrc = "recovery-truncates-bad-crc":
        "Log recovery found a batch whose CRC did not match and cut the log there.",
    RecoveryTruncatesTornTail = "recovery-truncates-torn-tail":
        "Log recovery found a torn (partly written) batch at the end of a segment and cut it off.",
    RecoveryRebuildsIndex = "recovery-rebuilds-index":
        "Log recovery rebuilt an offset index it could not trust.",
    // --- the disk model (disk::sim) ---
    PowerLossInsideFsync = "power-loss-inside-fsync":
        "The power failed while an fsync was in progress on the disk.",
    PowerLossLosesUnsyncedBytes = "power-loss-loses-unsynced-bytes":
        "A power cut discarded or tore bytes written but not yet synced.",
    // --- the ensemble (zk) ---
    ZabTruncSync = "zab-trunc-sync":
        "A ZooKeeper leader synced a follower with TRUNC (the follower held transactions the new epoch does not).",
    ZabSnapSync = "zab-snap-sync":
        "A ZooKeeper leader synced a follower with SNAP (its whole tree).",
    SessionExpiresWithEphemerals = "session-expires-with-ephemerals":
        "A ZooKeeper session expired while it owned ephemeral znodes (they were deleted with it).",
    ZkLeaderLosesQuorum = "zk-leader-loses-quorum":
        "A ZooKeeper leader stepped down because it lost a quorum of followers.",
}

thread_local! {
    static TALLY: RefCell<BTreeMap<Mark, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts one hit of `mark` on this thread's run.
pub fn hit(mark: Mark) {
    TALLY.with(|tally| *tally.borrow_mut().entry(mark).or_insert(0) += 1);
}

/// The marks hit on this thread since the last call, by name, with how often; the tally
/// restarts empty.
pub fn take() -> BTreeMap<String, u64> {
    TALLY.with(|tally| {
        std::mem::take(&mut *tally.borrow_mut())
            .into_iter()
            .map(|(mark, n)| (mark.name().to_string(), n))
            .collect()
    })
}

/// The mark called `name`, if there is one.
pub fn by_name(name: &str) -> Option<Mark> {
    Mark::ALL.iter().copied().find(|m| m.name() == name)
}

/// Seeds on which each mark was hit, over many runs: what `ksim sweep`, `ksim swarm` and
/// `ksim coverage` print.
#[derive(Clone, Debug, Default)]
pub struct SeedCounts {
    /// Runs counted.
    pub runs: u64,
    /// Per mark name: on how many of the runs it was hit.
    pub seeds: BTreeMap<String, u64>,
}

impl SeedCounts {
    /// Adds one run's marks.
    pub fn add(&mut self, marks: &BTreeMap<String, u64>) {
        self.runs += 1;
        for (name, hits) in marks {
            if *hits > 0 {
                *self.seeds.entry(name.clone()).or_insert(0) += 1;
            }
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &SeedCounts) {
        self.runs += other.runs;
        for (name, n) in &other.seeds {
            *self.seeds.entry(name.clone()).or_insert(0) += n;
        }
    }

    /// On how many runs `mark` was hit.
    pub fn of(&self, mark: Mark) -> u64 {
        self.seeds.get(mark.name()).copied().unwrap_or(0)
    }

    /// The marks never hit, in declaration order.
    pub fn never_hit(&self) -> Vec<Mark> {
        Mark::ALL
            .iter()
            .copied()
            .filter(|m| self.of(*m) == 0)
            .collect()
    }

    /// The summary lines a sweep prints: how many marks were hit, then each hit mark with
    /// its seed count, then the names of those never hit.
    pub fn summary_lines(&self) -> Vec<String> {
        let hit = Mark::ALL.len() - self.never_hit().len();
        let mut lines = vec![format!(
            "coverage: {hit} of {} marks hit on {} runs",
            Mark::ALL.len(),
            self.runs
        )];
        let width = Mark::ALL.iter().map(|m| m.name().len()).max().unwrap_or(0);
        for mark in Mark::ALL {
            let n = self.of(*mark);
            if n > 0 {
                let seeds = if n == 1 { "seed" } else { "seeds" };
                lines.push(format!("  {:<width$} {n} {seeds}", mark.name()));
            }
        }
        let never: Vec<&str> = self.never_hit().iter().map(|m| m.name()).collect();
        if !never.is_empty() {
            lines.push(format!("  never hit: {}", never.join(", ")));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_found_back() {
        let mut seen = std::collections::BTreeSet::new();
        for mark in Mark::ALL {
            let name = mark.name();
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name}"
            );
            assert_eq!(by_name(name), Some(*mark));
            assert!(mark.about().ends_with('.'), "{name}: one sentence");
        }
        assert_eq!(by_name("no-such-mark"), None);
    }

    #[test]
    fn the_tally_counts_hits_and_restarts_empty() {
        take();
        hit(Mark::ZabTruncSync);
        hit(Mark::ZabTruncSync);
        hit(Mark::CommitFenced);
        let tally = take();
        assert_eq!(tally.get("zab-trunc-sync"), Some(&2));
        assert_eq!(tally.get("commit-fenced"), Some(&1));
        assert_eq!(tally.len(), 2);
        assert!(take().is_empty());
    }

    #[test]
    fn seed_counts_count_runs_not_hits() {
        let mut counts = SeedCounts::default();
        counts.add(&BTreeMap::from([("zab-trunc-sync".to_string(), 5)]));
        counts.add(&BTreeMap::from([
            ("zab-trunc-sync".to_string(), 1),
            ("commit-fenced".to_string(), 1),
        ]));
        counts.add(&BTreeMap::new());
        assert_eq!(counts.runs, 3);
        assert_eq!(counts.of(Mark::ZabTruncSync), 2);
        assert_eq!(counts.of(Mark::CommitFenced), 1);
        assert!(!counts.never_hit().contains(&Mark::ZabTruncSync));
        assert!(counts.never_hit().contains(&Mark::ZabSnapSync));
        let lines = counts.summary_lines();
        assert!(lines[0].starts_with(&format!(
            "coverage: 2 of {} marks hit on 3 runs",
            Mark::ALL.len()
        )));
        assert!(lines.last().unwrap().contains("zab-snap-sync"));
    }
}
