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
    /// Each check's cases — a hand-made record that breaks its rule, and ones that keep
    /// it — are the table `src/check/testdata/client_history.txt` (read by `check::tables`).
    #[test]
    fn client_history_rules() {
        crate::check::tables::run_broker_table("src/check/testdata/client_history.txt");
    }
}
