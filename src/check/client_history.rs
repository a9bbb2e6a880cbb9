//! The client-history checks of a Kafka cluster: what producers were told and what
//! consumers read, against the final log of each partition (`check::kafka`).
//!
//! Owns: `lost-write`, `duplicate`, `inconsistent-offsets`, `nonmonotonic-poll`,
//! `poll-skip`, `phantom-read`, `reorder` (for brokers; the writers' `lost-write` and
//! `inconsistent-offsets` are `check::writer`'s).
//!
//! **History** (see `crate::history`): `ClientStart` (fresh process), `Send` (value
//! `<producer>-<incarnation>-<n>` with `n` the send counter of that incarnation, `acks`,
//! `idempotent`), `SendReturn` (`SendOutcome::Ok { partition, offset }` is an
//! acknowledgement), `Assign` (the position of each listed partition is set: a consumer
//! records every seek and offset reset as an `Assign` too), `Poll` (records of one partition).
//!
//! # Rules
//!
//! - `lost-write`: an acknowledged value (at or above the final log's start offset: retention
//!   is not a loss) is nowhere in the final log. It fails for acks=1 records too — the
//!   `zombie-leader-acks1` zoo entry needs it to — but reports them in their own violation,
//!   labelled expected by config (acks=1 acknowledges the leader's local append only); a
//!   scenario that accepts that loss says so with `[expect]`.
//! - `duplicate`: a value at two offsets of the final log. Reported with idempotence off too
//!   (labelled expected by config), as the contract asks.
//! - `inconsistent-offsets`: two polls disagree on the value at an offset; a poll and the
//!   final log hold different values at an offset while the polled value is elsewhere in the
//!   final log (a value absent from it is a `phantom-read`); an acknowledged value sits in
//!   the final log, but not at its acknowledged offset (absent is a `lost-write`).
//! - `nonmonotonic-poll`: a consumer's poll of a partition returns an offset below the
//!   position it had reached (the last offset returned + 1, or the position of the last
//!   `Assign`) in the same process. `poll-skip`: it returns an offset above that position
//!   while the final log holds offsets in between.
//! - `phantom-read`: a polled value (at or above the final log's start) is not in the final log.
//! - `reorder`: in the final log, the first occurrences of one producer incarnation's values
//!   are not in send order. Reported with idempotence off too, labelled expected by config.

use super::kafka::Facts;
use super::toolkit::{seconds, Findings};
use super::Violation;
use crate::broker::{Acks, TopicPartition};
use crate::history::{HistoryEntry, Op, SendOutcome};
use std::collections::{BTreeMap, BTreeSet};

impl<'a> Facts<'a> {
    fn acknowledged(
        &self,
    ) -> impl Iterator<Item = (&'a HistoryEntry, &'a str, &'a TopicPartition, u64)> {
        self.history.iter().filter_map(|entry| match &entry.op {
            Op::SendReturn {
                value,
                outcome: SendOutcome::Ok { partition, offset },
            } => Some((entry, value.as_str(), partition, *offset)),
            _ => None,
        })
    }

    fn polls(
        &self,
    ) -> impl Iterator<Item = (&'a HistoryEntry, &'a TopicPartition, &'a [(u64, String)])> {
        self.history.iter().filter_map(|entry| match &entry.op {
            Op::Poll { partition, records } => Some((entry, partition, records.as_slice())),
            _ => None,
        })
    }

    /// `lost-write`.
    pub fn lost_write(&self) -> Vec<Violation> {
        // (partition, acks=1?) → findings.
        let mut lost: BTreeMap<(&TopicPartition, bool), Findings> = BTreeMap::new();
        for (entry, value, tp, offset) in self.acknowledged() {
            let sent = self.sends.get(value);
            let leader_only = sent.is_some_and(|s| s.acks == Acks::Leader);
            let reference = self.references.get(tp);
            if let Some(r) = reference {
                if offset < r.log.log_start || r.offsets.contains_key(value) {
                    continue;
                }
            }
            let findings = lost.entry((tp, leader_only)).or_insert_with(|| {
                let whose = match reference {
                    Some(r) => r.describe(),
                    None => "no readable replica log".to_string(),
                };
                let what = if leader_only {
                    format!(
                        "records acknowledged under acks=1 missing ({whose}; expected by config: \
                         acks=1 acknowledges the leader's local append only)"
                    )
                } else {
                    let acks = match sent.map(|s| s.acks) {
                        Some(Acks::All) => "acks=all",
                        Some(Acks::None) => "acks=0",
                        _ => "unknown acks",
                    };
                    format!("records acknowledged under {acks} missing ({whose})")
                };
                Findings::new("lost-write", Some(tp), what)
            });
            findings.add(
                entry.at_us,
                format!(
                    "{value} from {} at offset {offset} at {}",
                    entry.node,
                    seconds(entry.at_us)
                ),
            );
        }
        lost.into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `duplicate`.
    pub fn duplicate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (tp, r) in &self.references {
            let mut by_class: BTreeMap<bool, Findings> = BTreeMap::new();
            for (value, offsets) in &r.offsets {
                if offsets.len() < 2 {
                    continue;
                }
                let idempotent = self.sends.get(value).is_some_and(|s| s.idempotent);
                let findings = by_class.entry(idempotent).or_insert_with(|| {
                    let what = if idempotent {
                        format!(
                            "values of idempotent producers at two offsets ({})",
                            r.describe()
                        )
                    } else {
                        format!(
                            "values at two offsets ({}; expected by config: the producer is \
                             not idempotent)",
                            r.describe()
                        )
                    };
                    Findings::new("duplicate", Some(tp), what)
                });
                findings.add(self.stop_us, format!("{value} at offsets {offsets:?}"));
            }
            out.extend(by_class.into_values().filter_map(Findings::into_violation));
        }
        out
    }

    /// `inconsistent-offsets`.
    pub fn inconsistent_offsets(&self) -> Vec<Violation> {
        let mut findings: BTreeMap<&TopicPartition, Findings> = BTreeMap::new();
        let mut add = |tp: &'a TopicPartition, at_us: u64, example: String| {
            findings
                .entry(tp)
                .or_insert_with(|| {
                    Findings::new(
                        "inconsistent-offsets",
                        Some(tp),
                        "disagreements on the record at an offset".to_string(),
                    )
                })
                .add(at_us, example);
        };
        // Polls against earlier polls (of any consumer) and against the final log.
        let mut first_read: BTreeMap<(&TopicPartition, u64), (&str, &str, u64)> = BTreeMap::new();
        for (entry, tp, records) in self.polls() {
            for (offset, value) in records {
                match first_read.get(&(tp, *offset)) {
                    Some((earlier, by, at)) if *earlier != value => add(
                        tp,
                        entry.at_us,
                        format!(
                            "offset {offset}: {by} read {earlier} at {} but {} read {value} at {}",
                            seconds(*at),
                            entry.node,
                            seconds(entry.at_us)
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        first_read.insert((tp, *offset), (value, &entry.node, entry.at_us));
                    }
                }
                let Some(r) = self.references.get(tp) else {
                    continue;
                };
                let Some(held) = r.at.get(offset) else {
                    continue;
                };
                if *held != value && r.offsets.contains_key(value.as_str()) {
                    add(
                        tp,
                        entry.at_us,
                        format!(
                            "offset {offset}: {} read {value} at {} but the {} holds {held} \
                             there and {value} at {:?}",
                            entry.node,
                            seconds(entry.at_us),
                            r.describe(),
                            r.offsets[value.as_str()]
                        ),
                    );
                }
            }
        }
        // Acknowledged offsets against the final log.
        for (entry, value, tp, offset) in self.acknowledged() {
            let Some(r) = self.references.get(tp) else {
                continue;
            };
            if let Some(held) = r.offsets.get(value) {
                if !held.contains(&offset) {
                    add(
                        tp,
                        entry.at_us,
                        format!(
                            "{value} acknowledged to {} at offset {offset} at {} but the {} \
                             holds it at {held:?}",
                            entry.node,
                            seconds(entry.at_us),
                            r.describe()
                        ),
                    );
                }
            }
        }
        findings
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// Walks each consumer's polls against its positions; returns (`nonmonotonic-poll`,
    /// `poll-skip`) findings.
    fn walk_polls(&self) -> (Vec<Violation>, Vec<Violation>) {
        type Key<'k> = (&'k str, &'k TopicPartition);
        let mut backwards: BTreeMap<Key<'a>, Findings> = BTreeMap::new();
        let mut skips: BTreeMap<Key<'a>, Findings> = BTreeMap::new();
        // Consumer → partition → (position, where it came from).
        let mut positions: BTreeMap<Key<'a>, (u64, String)> = BTreeMap::new();
        for entry in self.history {
            let consumer = entry.node.as_str();
            let (partition, records) = match &entry.op {
                Op::ClientStart { .. } => {
                    positions.retain(|(c, _), _| *c != consumer);
                    continue;
                }
                Op::Assign { partitions } => {
                    for (tp, position) in partitions {
                        let since = format!("assigned at {} from {position}", seconds(entry.at_us));
                        positions.insert((consumer, tp), (*position, since));
                    }
                    continue;
                }
                // A group member owns exactly these from here on (a reassignment).
                Op::GroupAssign { partitions, .. } => {
                    positions.retain(|(c, tp), _| {
                        *c != consumer || partitions.iter().any(|(p, _)| p == *tp)
                    });
                    for (tp, position) in partitions {
                        let since = format!("assigned at {} from {position}", seconds(entry.at_us));
                        positions.insert((consumer, tp), (*position, since));
                    }
                    continue;
                }
                Op::Poll { partition, records } => (partition, records),
                _ => continue,
            };
            let key = (consumer, partition);
            let at = seconds(entry.at_us);
            for (offset, _) in records {
                if let Some((position, since)) = positions.get(&key) {
                    let example =
                        format!("offset {offset} at {at} at position {position} ({since})");
                    if offset < position {
                        backwards
                            .entry(key)
                            .or_insert_with(|| {
                                let what = format!("{consumer}: polls going backwards");
                                Findings::new("nonmonotonic-poll", Some(partition), what)
                                    .on_node(consumer)
                            })
                            .add(entry.at_us, example);
                    } else if let Some(r) = self.references.get(partition) {
                        let missed: Vec<u64> =
                            r.at.range(*position..*offset).map(|(o, _)| *o).collect();
                        if let Some(first) = missed.first() {
                            skips
                                .entry(key)
                                .or_insert_with(|| {
                                    let what = format!(
                                        "{consumer}: polls skipping offsets the {} holds",
                                        r.describe()
                                    );
                                    Findings::new("poll-skip", Some(partition), what)
                                        .on_node(consumer)
                                })
                                .add(
                                    entry.at_us,
                                    format!(
                                        "{example}, skipping {} offsets from {first}",
                                        missed.len()
                                    ),
                                );
                        }
                    }
                }
                let since = format!("after offset {offset} polled at {at}");
                positions.insert(key, (offset + 1, since));
            }
        }
        let collect = |found: BTreeMap<Key<'a>, Findings>| -> Vec<Violation> {
            found
                .into_values()
                .filter_map(Findings::into_violation)
                .collect()
        };
        (collect(backwards), collect(skips))
    }

    /// `nonmonotonic-poll`.
    pub fn nonmonotonic_poll(&self) -> Vec<Violation> {
        self.walk_polls().0
    }

    /// `poll-skip`.
    pub fn poll_skip(&self) -> Vec<Violation> {
        self.walk_polls().1
    }

    /// `phantom-read`.
    pub fn phantom_read(&self) -> Vec<Violation> {
        let mut findings: BTreeMap<&TopicPartition, Findings> = BTreeMap::new();
        for (entry, tp, records) in self.polls() {
            let reference = self.references.get(tp);
            for (offset, value) in records {
                if let Some(r) = reference {
                    if *offset < r.log.log_start || r.offsets.contains_key(value.as_str()) {
                        continue;
                    }
                }
                findings
                    .entry(tp)
                    .or_insert_with(|| {
                        let whose = match reference {
                            Some(r) => r.describe(),
                            None => "no readable replica log".to_string(),
                        };
                        Findings::new(
                            "phantom-read",
                            Some(tp),
                            format!("polled records not in the final log ({whose})"),
                        )
                    })
                    .add(
                        entry.at_us,
                        format!(
                            "{value} at offset {offset} polled by {} at {}",
                            entry.node,
                            seconds(entry.at_us)
                        ),
                    );
            }
        }
        findings
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `reorder`.
    pub fn reorder(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        for (tp, r) in &self.references {
            let mut by_class: BTreeMap<bool, Findings> = BTreeMap::new();
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            // (producer, incarnation) → (greatest send number so far, its offset).
            let mut last: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
            for (offset, value) in &r.log.records {
                if !seen.insert(value.as_str()) {
                    continue;
                }
                let Some((producer, incarnation, n)) = split_value(value) else {
                    continue;
                };
                match last.get(&(producer, incarnation)) {
                    Some(&(before, before_at)) if n < before => {
                        let idempotent =
                            self.sends.get(value.as_str()).is_some_and(|s| s.idempotent);
                        by_class
                            .entry(idempotent)
                            .or_insert_with(|| {
                                let what = if idempotent {
                                    format!(
                                        "records of idempotent producers out of send order ({})",
                                        r.describe()
                                    )
                                } else {
                                    format!(
                                        "records out of send order ({}; expected by config: the \
                                         producer is not idempotent)",
                                        r.describe()
                                    )
                                };
                                Findings::new("reorder", Some(tp), what)
                            })
                            .add(
                                self.stop_us,
                                format!(
                                    "{value} (send {n}) at offset {offset} after send {before} \
                                     at offset {before_at}"
                                ),
                            );
                    }
                    Some(&(before, _)) if n == before => {}
                    _ => {
                        last.insert((producer, incarnation), (n, *offset));
                    }
                }
            }
            out.extend(by_class.into_values().filter_map(Findings::into_violation));
        }
        out
    }
}

/// Splits `<producer>-<incarnation>-<n>` (the producer's name has dashes of its own).
fn split_value(value: &str) -> Option<(&str, &str, u64)> {
    let (rest, n) = value.rsplit_once('-')?;
    let (producer, incarnation) = rest.rsplit_once('-')?;
    incarnation.parse::<u64>().ok()?;
    Some((producer, incarnation, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    //! Each check fires on hand-made history and final logs that break its rule, and stays
    //! quiet on ones that keep it: the checkers can fail.
    use super::*;
    use crate::broker::Acks;
    use crate::check::kafka::ReplicaLogs;
    use crate::check::test_support::*;

    #[test]
    fn lost_write_fires_for_an_acknowledged_record_missing_from_the_final_leaders_log() {
        let history = acked(&[(A, 0), (B, 1)], Acks::All);
        // broker-2 leads at the end with a shorter log; broker-1 still holds B.
        let replicas = logs(vec![
            (1, flog(0, &[(0, A), (1, B)])),
            (2, flog(0, &[(0, A)])),
        ]);
        let events = [
            leader(10, 1, 0, 1),
            follower(20, 1, 0, 2, 2),
            leader(20, 2, 0, 2),
        ];
        let found = Facts::new(&events, &history, &replicas).lost_write();
        one(&found, "producer-1-1-1 from producer-1 at offset 1");
        assert!(found[0].detail.contains("under acks=all"));
        assert!(found[0]
            .detail
            .contains("final log of broker-2, the final leader"));
        assert_eq!(found[0].partition.as_deref(), Some("orders/0"));
        assert_eq!(found[0].at_ms, Some(1));

        // Without events, the longest log is the final log: nothing lost.
        assert!(Facts::new(&[], &history, &replicas).lost_write().is_empty());
        // Retention deleted offset 0 of the final log: not a loss.
        let retained = logs(vec![(1, flog(1, &[(1, B)]))]);
        assert!(Facts::new(&[], &history, &retained).lost_write().is_empty());
    }

    #[test]
    fn lost_write_reports_acks_1_losses_apart_as_expected_by_config() {
        let mut history = acked(&[(A, 0)], Acks::All);
        history.extend([send(5000, B, Acks::Leader, false), ok(5500, B, 0, 1)]);
        let replicas = logs(vec![(1, flog(0, &[(0, A)]))]);
        let found = Facts::new(&[], &history, &replicas).lost_write();
        one(&found, "acks=1");
        assert!(found[0].detail.contains("expected by config"));

        // With no replica log at all, every acknowledged record is lost.
        let found = Facts::new(&[], &history, &ReplicaLogs::new()).lost_write();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].detail.contains("no readable replica log"));
    }

    #[test]
    fn duplicate_fires_on_a_value_at_two_offsets() {
        let idempotent = vec![send(0, A, Acks::All, true), send(1, B, Acks::All, true)];
        let twice = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, A)]))]);
        let found = Facts::new(&[], &idempotent, &twice).duplicate();
        one(&found, "producer-1-1-0 at offsets [0, 2]");
        assert!(found[0].detail.contains("idempotent producers"));

        let plain = vec![send(0, A, Acks::All, false)];
        let found = Facts::new(&[], &plain, &twice).duplicate();
        one(&found, "expected by config");

        let once = logs(vec![(1, flog(0, &[(0, A), (1, B)]))]);
        assert!(Facts::new(&[], &idempotent, &once).duplicate().is_empty());
    }

    #[test]
    fn inconsistent_offsets_fires_when_reads_or_acknowledgements_disagree() {
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, C)]))]);
        // Two consumers disagree on offset 1.
        let reads = [
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            poll(20, "consumer-2", 0, &[(1, C)]),
        ];
        let found = Facts::new(&[], &reads, &final_log).inconsistent_offsets();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0]
            .detail
            .contains("offset 1: consumer-1 read producer-1-1-1"));
        assert!(
            found[0].detail.contains("2 disagreements"),
            "the read of C at 1 also disagrees with the final log: {}",
            found[0].detail
        );

        // Acknowledged at 1, but the final log holds it at 2.
        let moved = acked(&[(C, 1)], Acks::All);
        let found = Facts::new(&[], &moved, &final_log).inconsistent_offsets();
        one(&found, "holds it at [2]");

        // Agreement, and a value absent from the final log (that is a phantom-read).
        let fine = [
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            poll(20, "consumer-2", 0, &[(0, A), (1, B), (2, C)]),
            poll(30, "consumer-3", 0, &[(3, "producer-1-1-9")]),
        ];
        assert!(Facts::new(&[], &fine, &final_log)
            .inconsistent_offsets()
            .is_empty());
        let acked_ok = acked(&[(A, 0), (B, 1)], Acks::All);
        assert!(Facts::new(&[], &acked_ok, &final_log)
            .inconsistent_offsets()
            .is_empty());
    }

    #[test]
    fn nonmonotonic_poll_fires_when_a_consumer_goes_back_without_an_assign() {
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, C)]))]);
        let back = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            poll(20, "consumer-1", 0, &[(1, B), (2, C)]),
        ];
        let found = Facts::new(&[], &back, &final_log).nonmonotonic_poll();
        one(&found, "offset 1 at 0.000s at position 2");
        assert_eq!(found[0].node.as_deref(), Some("consumer-1"));

        // A seek back (recorded as an Assign) and a restarted process are not backwards.
        let seek = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A), (1, B)]),
            assign(15, "consumer-1", 0, 1),
            poll(20, "consumer-1", 0, &[(1, B), (2, C)]),
            h(30, "consumer-1", Op::ClientStart { incarnation: 2 }),
            poll(40, "consumer-1", 0, &[(0, A)]),
            // Another consumer's positions are its own.
            assign(50, "consumer-2", 0, 0),
            poll(60, "consumer-2", 0, &[(0, A)]),
        ];
        let facts = Facts::new(&[], &seek, &final_log);
        assert!(facts.nonmonotonic_poll().is_empty());
        assert!(facts.poll_skip().is_empty());
    }

    #[test]
    fn poll_skip_fires_when_a_consumer_jumps_over_offsets_the_final_log_holds() {
        let d = "producer-1-1-3";
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B), (2, C), (3, d)]))]);
        let jump = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A)]),
            poll(20, "consumer-1", 0, &[(3, d)]),
        ];
        let found = Facts::new(&[], &jump, &final_log).poll_skip();
        one(&found, "skipping 2 offsets from 1");
        assert!(Facts::new(&[], &jump, &final_log)
            .nonmonotonic_poll()
            .is_empty());

        // A seek forward is not a skip; nor is jumping over offsets retention deleted.
        let seek = [
            assign(0, "consumer-1", 0, 0),
            poll(10, "consumer-1", 0, &[(0, A)]),
            assign(15, "consumer-1", 0, 3),
            poll(20, "consumer-1", 0, &[(3, d)]),
        ];
        assert!(Facts::new(&[], &seek, &final_log).poll_skip().is_empty());
        let retained = logs(vec![(1, flog(3, &[(3, d)]))]);
        assert!(Facts::new(&[], &jump, &retained).poll_skip().is_empty());
    }

    #[test]
    fn phantom_read_fires_on_a_polled_record_absent_from_the_final_log() {
        let final_log = logs(vec![(1, flog(0, &[(0, A), (1, B)]))]);
        let read = [poll(10, "consumer-1", 0, &[(0, A), (1, B), (2, C)])];
        let found = Facts::new(&[], &read, &final_log).phantom_read();
        one(&found, "producer-1-1-2 at offset 2 polled by consumer-1");

        let fine = [poll(10, "consumer-1", 0, &[(0, A), (1, B)])];
        assert!(Facts::new(&[], &fine, &final_log).phantom_read().is_empty());
        // Below the final log's start: retention, not a phantom.
        let retained = logs(vec![(1, flog(3, &[]))]);
        assert!(Facts::new(&[], &read, &retained).phantom_read().is_empty());
    }

    #[test]
    fn reorder_fires_when_one_incarnations_records_leave_send_order() {
        let history = [send(0, A, Acks::All, true)];
        let out_of_order = logs(vec![(1, flog(0, &[(0, B), (1, C), (2, A)]))]);
        let found = Facts::new(&[], &history, &out_of_order).reorder();
        one(
            &found,
            "producer-1-1-0 (send 0) at offset 2 after send 2 at offset 1",
        );
        assert!(found[0].detail.contains("idempotent producers"));

        // A new incarnation counts from 0 again; a duplicate's second copy is not a reorder;
        // another producer interleaves freely.
        let fine = logs(vec![(
            1,
            flog(
                0,
                &[
                    (0, A),
                    (1, C),
                    (2, "producer-1-2-0"),
                    (3, A),
                    (4, "producer-2-1-0"),
                    (5, "producer-1-2-1"),
                ],
            ),
        )]);
        assert!(Facts::new(&[], &history, &fine).reorder().is_empty());
    }
}
