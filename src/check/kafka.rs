//! Checks of the brokers: what producers were told, what consumers read, what brokers
//! announced, against the partition logs the replicas left on disk.
//!
//! Owns: which broker checks run ([`run`]), reading the replica logs back, and [`Facts`]:
//! everything the broker checks read, indexed once — the history, the brokers' events in
//! their incarnations (`check::broker_events`) and each partition's *final log*. The checks
//! themselves live by family: `check::client_history` (`lost-write`, `duplicate`,
//! `inconsistent-offsets`, `nonmonotonic-poll`, `poll-skip`, `phantom-read`, `reorder`),
//! `check::replication` (`single-leader-per-epoch`, `leader-epoch-monotonic`,
//! `hw-monotonic`, `committed-prefix-agreement`, `no-truncation-below-hw`) and
//! `check::control` (`single-controller-per-epoch`, `controller-epoch-monotonic`). They are
//! pure functions of the recorded history, the recorded events and the final logs read back
//! with the log engine — never of a broker's memory — so a broker bug cannot hide itself
//! from them. What brokers announce is typed: `broker::server::BrokerEvent`,
//! `broker::controller::ControllerEvent` (their docs are the contract).
//!
//! **Final logs.** Broker `n` is node `broker-<n>`; its data directory `<run>/broker-<n>/`
//! holds one log engine directory per replica it hosts, `kafka-logs/<topic>-<partition>/`
//! (Kafka's own layout). A record's value is the produced value (UTF-8), its key the
//! optional record key. A directory that does not exist means the broker hosts no replica.
//!
//! # Which log is "the final log"
//!
//! Per partition: the log of the *final leader*, the broker that announced `become-leader`
//! with the greatest leader epoch in its last incarnation without a later `become-follower`
//! — the events tell who leads at the end. If no broker does, the longest readable replica
//! log. Unreadable logs are never chosen; they are reported by `committed-prefix-agreement`.
//!
//! Each anomaly is reported under one check, so a bug-zoo scenario fails only the check it
//! names.

use super::broker_events::BrokerEvents;
use super::{read_final_log, result, CheckInput, CheckResult, FinalLog};
use crate::broker::{Acks, TopicPartition};
use crate::history::{Announcement, Event, HistoryEntry, Op, WorldEvent};
use crate::scenario::plan::log_config;
use std::collections::BTreeMap;
use std::path::Path;

/// A broker's directory of partition logs, inside its node directory.
pub const LOG_DIR: &str = "kafka-logs";

/// Every replica's final log: partition → broker node name → log.
pub type ReplicaLogs = BTreeMap<TopicPartition, BTreeMap<String, FinalLog>>;

/// Reads every replica log the scenario's brokers left for the scenario's topics.
pub fn read_replica_logs(input: &CheckInput<'_>) -> ReplicaLogs {
    let scenario = input.scenario;
    let config = log_config(&scenario.cluster.broker);
    let mut logs = ReplicaLogs::new();
    for n in 1..=scenario.cluster.brokers {
        let name = format!("broker-{n}");
        let node_dir = input.run_dir.join(&name);
        for topic in &scenario.topics {
            for p in 0..topic.partitions {
                let tp = TopicPartition::new(&topic.name, p);
                let dir = Path::new(LOG_DIR).join(tp.dir_name());
                if node_dir.join(&dir).is_dir() {
                    let log = read_final_log(&node_dir, &dir, config.clone());
                    logs.entry(tp).or_default().insert(name.clone(), log);
                }
            }
        }
    }
    logs
}

/// Runs every broker check that applies: the replication and control checks whenever
/// there are brokers; `lost-write`, `duplicate` and `reorder` with producers; the poll
/// checks with consumers; `inconsistent-offsets` with either.
pub fn run(input: &CheckInput<'_>, facts: &Facts<'_>) -> Vec<CheckResult> {
    let producers = !input.scenario.producers.is_empty();
    let consumers = !input.scenario.consumers.is_empty();
    let mut results = Vec::new();
    if producers {
        results.push(result("lost-write", facts.lost_write()));
        results.push(result("duplicate", facts.duplicate()));
    }
    if producers || consumers {
        results.push(result("inconsistent-offsets", facts.inconsistent_offsets()));
    }
    if consumers {
        results.push(result("nonmonotonic-poll", facts.nonmonotonic_poll()));
        results.push(result("poll-skip", facts.poll_skip()));
        results.push(result("phantom-read", facts.phantom_read()));
    }
    if producers {
        results.push(result("reorder", facts.reorder()));
    }
    results.push(result(
        "single-leader-per-epoch",
        facts.single_leader_per_epoch(),
    ));
    results.push(result(
        "leader-epoch-monotonic",
        facts.leader_epoch_monotonic(),
    ));
    results.push(result("hw-monotonic", facts.hw_monotonic()));
    results.push(result(
        "committed-prefix-agreement",
        facts.committed_prefix_agreement(),
    ));
    results.push(result(
        "no-truncation-below-hw",
        facts.no_truncation_below_hw(),
    ));
    results.push(result(
        "single-controller-per-epoch",
        facts.single_controller_per_epoch(),
    ));
    results.push(result(
        "controller-epoch-monotonic",
        facts.controller_epoch_monotonic(),
    ));
    results
}

/// What the history says about one produced value.
#[derive(Clone, Copy)]
pub(super) struct Sent {
    pub(super) acks: Acks,
    pub(super) idempotent: bool,
}

/// The log a partition's checks compare against, and how it was chosen.
pub(super) struct Reference<'a> {
    pub(super) broker: &'a str,
    pub(super) log: &'a FinalLog,
    pub(super) why: &'static str,
    /// Offset → value.
    pub(super) at: BTreeMap<u64, &'a str>,
    /// Value → offsets holding it, ascending.
    pub(super) offsets: BTreeMap<&'a str, Vec<u64>>,
}

impl Reference<'_> {
    pub(super) fn describe(&self) -> String {
        format!("final log of {}, {}", self.broker, self.why)
    }
}

/// Everything the broker checks read, indexed once.
pub struct Facts<'a> {
    /// The client history.
    pub(super) history: &'a [HistoryEntry],
    /// Every replica's final log.
    pub(super) logs: &'a ReplicaLogs,
    /// The brokers' events in their incarnations.
    pub(super) events: BrokerEvents<'a>,
    /// What the history says about each produced value.
    pub(super) sends: BTreeMap<&'a str, Sent>,
    /// Each partition's final log.
    pub(super) references: BTreeMap<&'a TopicPartition, Reference<'a>>,
    /// When the world stopped the run (or the last event).
    pub(super) stop_us: u64,
}

impl<'a> Facts<'a> {
    /// Indexes the events, the history and the replica logs.
    pub fn new(events: &'a [Event], history: &'a [HistoryEntry], logs: &'a ReplicaLogs) -> Self {
        let broker_events = BrokerEvents::new(events);
        let sends = history
            .iter()
            .filter_map(|entry| match &entry.op {
                Op::Send {
                    value,
                    acks,
                    idempotent,
                    ..
                } => Some((
                    value.as_str(),
                    Sent {
                        acks: *acks,
                        idempotent: *idempotent,
                    },
                )),
                _ => None,
            })
            .collect();
        let stop_us = events
            .iter()
            .rfind(|e| matches!(e.announced, Announcement::World(WorldEvent::Stop {})))
            .map_or_else(|| events.last().map_or(0, |e| e.at_us), |e| e.at_us);
        let mut facts = Facts {
            history,
            logs,
            events: broker_events,
            sends,
            references: BTreeMap::new(),
            stop_us,
        };
        facts.references = facts.choose_references();
        facts
    }

    fn choose_references(&self) -> BTreeMap<&'a TopicPartition, Reference<'a>> {
        let leaders = self.events.final_leaders();
        let mut chosen = BTreeMap::new();
        for (tp, replicas) in self.logs {
            let readable = |name: &str| replicas.get(name).filter(|log| log.error.is_none());
            let pick = leaders
                .get(tp)
                .and_then(|leader| {
                    let (name, log) = replicas.get_key_value(leader.as_str())?;
                    readable(name).map(|_| (name, log, "the final leader"))
                })
                .or_else(|| {
                    replicas
                        .iter()
                        .filter(|(_, log)| log.error.is_none())
                        .max_by_key(|(name, log)| (log.log_end, std::cmp::Reverse(*name)))
                        .map(|(name, log)| (name, log, "the longest replica log"))
                });
            if let Some((broker, log, why)) = pick {
                let mut offsets: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                for (offset, value) in &log.records {
                    offsets.entry(value.as_str()).or_default().push(*offset);
                }
                chosen.insert(
                    tp,
                    Reference {
                        broker,
                        log,
                        why,
                        at: log.records.iter().map(|(o, v)| (*o, v.as_str())).collect(),
                        offsets,
                    },
                );
            }
        }
        chosen
    }

    /// The final log of `tp` the checks judge against, with the offsets of each value in it.
    pub fn reference(&self, tp: &TopicPartition) -> Option<(&FinalLog, &BTreeMap<&str, Vec<u64>>)> {
        self.references.get(tp).map(|r| (r.log, &r.offsets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::{acked, leader, one, tp, A, B};
    use crate::log::{BatchBuilder, BatchMeta, Log, LogConfig};

    /// A scratch run directory, removed on drop.
    struct TempRun(std::path::PathBuf);

    impl Drop for TempRun {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_replica(run: &Path, broker: u32, values: &[&str]) {
        let disk = crate::disk::FsDisk::new(run.join(format!("broker-{broker}"))).unwrap();
        let dir = Path::new(LOG_DIR).join(tp(0).dir_name());
        let config = LogConfig {
            retention_ms: None,
            ..LogConfig::default()
        };
        let (mut log, _) = Log::open(disk, &dir, config).unwrap();
        for value in values {
            let mut batch = BatchBuilder::new(BatchMeta::default());
            batch.push(0, None, Some(value.as_bytes()), &[]);
            log.append(&mut batch).unwrap();
        }
        log.flush().unwrap();
    }

    #[test]
    fn run_reads_the_replica_logs_from_disk_and_applies_the_checks_of_the_workload() {
        let run =
            TempRun(std::env::temp_dir().join(format!("ksim-check-kafka-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&run.0);
        write_replica(&run.0, 1, &[A, B]);
        write_replica(&run.0, 2, &[A]);

        let text =
            "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n[[writer]]\ncount = 1\nrate = 1\n";
        let mut scenario = crate::scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap();
        scenario.cluster.brokers = 3;
        scenario.topics.push(crate::scenario::Topic {
            name: "orders".into(),
            partitions: 1,
            replication_factor: 2,
            min_insync_replicas: None,
        });
        let history = acked(&[(A, 0), (B, 1)], Acks::All);
        let events = [leader(10, 2, 0, 1)];

        // Without producers or consumers only the replication and control checks apply.
        let results = run_for(&scenario, &run.0, &events, &history);
        let names: Vec<&str> = results.iter().map(|r| r.check).collect();
        assert_eq!(
            names,
            [
                "single-leader-per-epoch",
                "leader-epoch-monotonic",
                "hw-monotonic",
                "committed-prefix-agreement",
                "no-truncation-below-hw",
                "single-controller-per-epoch",
                "controller-epoch-monotonic"
            ]
        );
        assert!(results.iter().all(CheckResult::passed));

        scenario.producers.push(crate::scenario::ProducerSpec {
            count: 1,
            topic: "orders".into(),
            rate: 10,
            keys: 0,
            config: Default::default(),
        });
        let results = run_for(&scenario, &run.0, &events, &history);
        let lost = results.iter().find(|r| r.check == "lost-write").unwrap();
        one(&lost.violations, "producer-1-1-1");
        assert!(lost.violations[0]
            .detail
            .contains("broker-2, the final leader"));
        for check in ["duplicate", "inconsistent-offsets", "reorder"] {
            assert!(results.iter().any(|r| r.check == check), "{check} runs");
        }
        assert!(!results.iter().any(|r| r.check == "phantom-read"));
        // broker-3 hosts no replica; broker-1's longer log alone passes.
        let results = run_for(&scenario, &run.0, &[], &history);
        assert!(results.iter().all(CheckResult::passed), "{results:#?}");
    }

    fn run_for(
        scenario: &crate::scenario::Scenario,
        run_dir: &Path,
        events: &[Event],
        history: &[HistoryEntry],
    ) -> Vec<CheckResult> {
        let input = CheckInput {
            scenario,
            events,
            history,
            run_dir,
        };
        let logs = read_replica_logs(&input);
        run(&input, &Facts::new(events, history, &logs))
    }
}
