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
//!   scenario that accepts that loss says so with `[expect]`. A record of a transaction its
//!   producer was told committed is lost too when the final log holds it only in an aborted
//!   transaction, or one never ended (`read_committed` readers never see it; Jepsen's lost
//!   write of Kafka transactions).
//! - `duplicate`: a value at two offsets of the final log. Reported with idempotence off too
//!   (labelled expected by config), as the contract asks.
//! - `inconsistent-offsets`: two polls disagree on the value at an offset; a poll and the
//!   final log hold different values at an offset while the polled value is elsewhere in the
//!   final log (a value absent from it is a `phantom-read`); an acknowledged value sits in
//!   the final log, but not at its acknowledged offset (absent is a `lost-write`).
//! - `nonmonotonic-poll`: a consumer's poll of a partition returns an offset below the
//!   position it had reached (the last offset returned + 1, or the position of the last
//!   `Assign`) in the same process. `poll-skip`: it returns an offset above that position
//!   while the final log holds offsets in between (for a `read_committed` consumer, offsets
//!   of records whose transaction the final log aborts do not count).
//! - `phantom-read`: a polled value (at or above the final log's start) is not in the final log.
//! - `reorder`: in the final log, the first occurrences of one producer incarnation's values
//!   are not in send order. Reported with idempotence off too, labelled expected by config.

use super::final_log::TxnFate;
use super::kafka::{Facts, PartId, Polled, Stream, ValueId};
use super::toolkit::{seconds, Findings, FxMap};
use super::Violation;
use crate::broker::Acks;
use crate::history::Op;
use std::collections::BTreeMap;
use std::fmt;

/// Where a consumer's position came from (written only into a violation).
#[derive(Clone, Copy)]
enum Since {
    /// An `Assign` or `GroupAssign` at `at_us` set it.
    Assigned { at_us: u64, position: u64 },
    /// A poll at `at_us` returned `offset`.
    Polled { offset: u64, at_us: u64 },
}

impl fmt::Display for Since {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Since::Assigned { at_us, position } => {
                write!(f, "assigned at {} from {position}", seconds(at_us))
            }
            Since::Polled { offset, at_us } => {
                write!(f, "after offset {offset} polled at {}", seconds(at_us))
            }
        }
    }
}

/// The first poll of each (partition, offset): per partition an array by offset when its
/// offsets are few enough (they count up from 0 in a run), else a map.
struct FirstReads<'p, 'a> {
    polls: &'p [Polled<'a>],
    /// Per partition, by offset: the index of the first poll of it, plus one (0: none).
    dense: Vec<Option<Vec<u32>>>,
    sparse: FxMap<(PartId, u64), u32>,
}

impl<'p, 'a> FirstReads<'p, 'a> {
    fn new(parts: usize, polls: &'p [Polled<'a>]) -> Self {
        let mut highest: Vec<Option<u64>> = vec![None; parts];
        for poll in polls {
            let h = &mut highest[poll.part as usize];
            *h = Some(h.map_or(poll.offset, |h| h.max(poll.offset)));
        }
        let room = 2 * polls.len() as u64 + 1024;
        let dense = highest
            .into_iter()
            .map(|h| {
                let h = h.filter(|&h| h < room)?;
                Some(vec![0; h as usize + 1])
            })
            .collect();
        FirstReads {
            polls,
            dense,
            sparse: FxMap::default(),
        }
    }

    /// The first poll of the offset poll `i` read, if an earlier one read it; else
    /// remembers poll `i` as its first.
    fn first(&mut self, i: usize) -> Option<&'p Polled<'a>> {
        let poll = &self.polls[i];
        let index = u32::try_from(i).expect("fewer than 2^32 polled records");
        let slot = match &mut self.dense[poll.part as usize] {
            Some(by_offset) => &mut by_offset[poll.offset as usize],
            None => self.sparse.entry((poll.part, poll.offset)).or_insert(0),
        };
        if *slot == 0 {
            *slot = index + 1;
            return None;
        }
        Some(&self.polls[*slot as usize - 1])
    }
}

impl<'a> Facts<'a> {
    /// `lost-write`.
    pub fn lost_write(&self) -> Vec<Violation> {
        let committed = super::transactions::committed_txn_values(self.history());
        // (partition, acks=1?, held but not committed?) → findings.
        let mut lost: BTreeMap<(PartId, bool, bool), Findings> = BTreeMap::new();
        for ack in &self.acks {
            let reference = self.reference_of(ack.part);
            let mut uncommitted = false;
            if let Some(r) = reference {
                if ack.offset < r.log.log_start {
                    continue;
                }
                if self.holds(ack.part, ack.value) {
                    // A record of a transaction its producer was told committed is lost
                    // to `read_committed` readers too when the log holds it only in an
                    // aborted (or never ended) transaction.
                    if !committed.contains_key(self.value(ack.value))
                        || self.visibly_held(ack.part, ack.value)
                    {
                        continue;
                    }
                    uncommitted = true;
                }
            }
            let sent = self.sent(ack.value);
            let leader_only = sent.is_some_and(|s| s.acks == Acks::Leader);
            let tp = self.part(ack.part);
            let key = (ack.part, leader_only, uncommitted);
            let findings = lost.entry(key).or_insert_with(|| {
                let whose = match reference {
                    Some(r) => r.describe(),
                    None => "no readable replica log".to_string(),
                };
                let what = if uncommitted {
                    format!(
                        "records of committed transactions held only as aborted or in a \
                         transaction never ended ({whose})"
                    )
                } else if leader_only {
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
            let entry = ack.entry;
            findings.add(
                entry.at_us,
                format!(
                    "{} from {} at offset {} at {}",
                    self.value(ack.value),
                    entry.node,
                    ack.offset,
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
        // Per partition, the values its final log holds at two offsets or more.
        let mut twice: Vec<Vec<ValueId>> = vec![Vec::new(); self.part_count()];
        for value in 0..self.value_count() as ValueId {
            let held = self.held(value);
            if held.len() < 2 {
                continue;
            }
            for run in held.chunk_by(|a, b| a.0 == b.0) {
                if run.len() > 1 {
                    twice[run[0].0 as usize].push(value);
                }
            }
        }
        let mut out = Vec::new();
        for (part, tp, r) in self.references() {
            let mut values = std::mem::take(&mut twice[part as usize]);
            values.sort_by_key(|&v| self.value(v));
            let mut by_class: BTreeMap<bool, Findings> = BTreeMap::new();
            for value in values {
                let idempotent = self.sent(value).is_some_and(|s| s.idempotent);
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
                let offsets: Vec<u64> = self.offsets(part, value).collect();
                findings.add(
                    self.stop_us,
                    format!("{} at offsets {offsets:?}", self.value(value)),
                );
            }
            out.extend(by_class.into_values().filter_map(Findings::into_violation));
        }
        out
    }

    /// `inconsistent-offsets`.
    pub fn inconsistent_offsets(&self) -> Vec<Violation> {
        let mut findings: BTreeMap<PartId, Findings> = BTreeMap::new();
        let mut add = |part: PartId, at_us: u64, example: String| {
            findings
                .entry(part)
                .or_insert_with(|| {
                    Findings::new(
                        "inconsistent-offsets",
                        Some(self.part(part)),
                        "disagreements on the record at an offset".to_string(),
                    )
                })
                .add(at_us, example);
        };
        // Polls against earlier polls (of any consumer) and against the final log.
        let mut first_reads = FirstReads::new(self.part_count(), &self.polls);
        for (
            i,
            &Polled {
                entry,
                part,
                offset,
                value,
            },
        ) in self.polls.iter().enumerate()
        {
            if let Some(first) = first_reads.first(i) {
                let (earlier, by) = (first.value, first.entry);
                if earlier != value {
                    add(
                        part,
                        entry.at_us,
                        format!(
                            "offset {offset}: {} read {} at {} but {} read {} at {}",
                            by.node,
                            self.value(earlier),
                            seconds(by.at_us),
                            entry.node,
                            self.value(value),
                            seconds(entry.at_us)
                        ),
                    );
                }
            }
            let Some(r) = self.reference_of(part) else {
                continue;
            };
            let Some(held) = r.value_at(offset) else {
                continue;
            };
            if held != value && self.holds(part, value) {
                let value_offsets: Vec<u64> = self.offsets(part, value).collect();
                let value = self.value(value);
                add(
                    part,
                    entry.at_us,
                    format!(
                        "offset {offset}: {} read {value} at {} but the {} holds {} \
                         there and {value} at {value_offsets:?}",
                        entry.node,
                        seconds(entry.at_us),
                        r.describe(),
                        self.value(held),
                    ),
                );
            }
        }
        // Acknowledged offsets against the final log.
        for ack in &self.acks {
            let Some(r) = self.reference_of(ack.part) else {
                continue;
            };
            let mut held = self.offsets(ack.part, ack.value).peekable();
            if held.peek().is_none() || held.any(|o| o == ack.offset) {
                continue;
            }
            let held: Vec<u64> = self.offsets(ack.part, ack.value).collect();
            let entry = ack.entry;
            add(
                ack.part,
                entry.at_us,
                format!(
                    "{} acknowledged to {} at offset {} at {} but the {} holds it at {held:?}",
                    self.value(ack.value),
                    entry.node,
                    ack.offset,
                    seconds(entry.at_us),
                    r.describe()
                ),
            );
        }
        findings
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// Walks each consumer's polls against its positions; returns (`nonmonotonic-poll`,
    /// `poll-skip`) findings.
    pub(super) fn walk_polls(&self) -> (Vec<Violation>, Vec<Violation>) {
        type Key<'k> = (&'k str, PartId);
        let mut backwards: BTreeMap<Key<'a>, Findings> = BTreeMap::new();
        let mut skips: BTreeMap<Key<'a>, Findings> = BTreeMap::new();
        // (consumer, partition) → (position, where it came from).
        let mut positions: FxMap<Key<'a>, (u64, Since)> = FxMap::default();
        for &entry in &self.others {
            let consumer = entry.node.as_str();
            let assigned = |position: u64| Since::Assigned {
                at_us: entry.at_us,
                position,
            };
            let (partition, records) = match &entry.op {
                Op::ClientStart { .. } => {
                    positions.retain(|(c, _), _| *c != consumer);
                    continue;
                }
                Op::Assign { partitions } => {
                    for (tp, position) in partitions {
                        if let Some(part) = self.part_id(tp) {
                            positions.insert((consumer, part), (*position, assigned(*position)));
                        }
                    }
                    continue;
                }
                // A group member owns exactly these from here on (a reassignment).
                Op::GroupAssign { partitions, .. } => {
                    positions.retain(|(c, _), _| *c != consumer);
                    for (tp, position) in partitions.iter() {
                        if let Some(part) = self.part_id(tp) {
                            positions.insert((consumer, part), (*position, assigned(*position)));
                        }
                    }
                    continue;
                }
                Op::Poll { partition, records } => (partition, records),
                _ => continue,
            };
            let Some(part) = self.part_id(partition) else {
                continue;
            };
            let read_committed = self.read_committed.iter().any(|c| c == consumer);
            let key = (consumer, part);
            let mut current = positions.get(&key).copied();
            for &(offset, _) in records {
                if let Some((position, since)) = current {
                    let example = || {
                        format!(
                            "offset {offset} at {} at position {position} ({since})",
                            seconds(entry.at_us)
                        )
                    };
                    if offset < position {
                        backwards
                            .entry(key)
                            .or_insert_with(|| {
                                let what = format!("{consumer}: polls going backwards");
                                Findings::new("nonmonotonic-poll", Some(partition), what)
                                    .on_node(consumer)
                            })
                            .add(entry.at_us, example());
                    } else if let Some(r) = self.reference_of(part).filter(|_| offset > position) {
                        let held = if read_committed && !r.log.txn_batches().is_empty() {
                            // Records of aborted transactions are not a read_committed
                            // consumer's to read: skipping them is no skip.
                            r.log
                                .between(position, offset)
                                .map_or((0, None), |records| {
                                    records
                                        .filter(|&(o, _)| {
                                            r.log.txn_fate(o) != Some(TxnFate::Aborted)
                                        })
                                        .fold((0, None), |(n, first), (o, _)| {
                                            (n + 1, first.or(Some(o)))
                                        })
                                })
                        } else {
                            r.held_between(position, offset)
                        };
                        if let (missed, Some(first)) = held {
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
                                        "{}, skipping {missed} offsets from {first}",
                                        example()
                                    ),
                                );
                        }
                    }
                }
                let since = Since::Polled {
                    offset,
                    at_us: entry.at_us,
                };
                current = Some((offset + 1, since));
            }
            if let Some(reached) = current {
                positions.insert(key, reached);
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
        let mut findings: BTreeMap<PartId, Findings> = BTreeMap::new();
        for poll in &self.polls {
            let reference = self.reference_of(poll.part);
            if let Some(r) = reference {
                if poll.offset < r.log.log_start || self.holds(poll.part, poll.value) {
                    continue;
                }
            }
            let entry = poll.entry;
            findings
                .entry(poll.part)
                .or_insert_with(|| {
                    let whose = match reference {
                        Some(r) => r.describe(),
                        None => "no readable replica log".to_string(),
                    };
                    Findings::new(
                        "phantom-read",
                        Some(self.part(poll.part)),
                        format!("polled records not in the final log ({whose})"),
                    )
                })
                .add(
                    entry.at_us,
                    format!(
                        "{} at offset {} polled by {} at {}",
                        self.value(poll.value),
                        poll.offset,
                        entry.node,
                        seconds(entry.at_us)
                    ),
                );
        }
        findings
            .into_values()
            .filter_map(Findings::into_violation)
            .collect()
    }

    /// `reorder`.
    pub fn reorder(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        // The partition whose final log last showed each value.
        let mut seen: Vec<PartId> = vec![PartId::MAX; self.value_count()];
        // Per producer incarnation: (greatest send number so far, its offset).
        let mut last: Vec<Option<(u64, u64)>> = vec![None; self.stream_count()];
        for (part, tp, r) in self.references() {
            let mut by_class: BTreeMap<bool, Findings> = BTreeMap::new();
            last.iter_mut().for_each(|l| *l = None);
            let mut last_named: FxMap<&str, Option<(u64, u64)>> = FxMap::default();
            for ((offset, value), &id) in r.log.records().zip(&r.ids) {
                if std::mem::replace(&mut seen[id as usize], part) == part {
                    continue;
                }
                let Some((incarnation, n)) = self.send_number(id) else {
                    continue;
                };
                let last = match incarnation {
                    Stream::Id(s) => &mut last[s],
                    Stream::Name(name) => last_named.entry(name).or_default(),
                };
                match *last {
                    Some((before, before_at)) if n < before => {
                        let idempotent = self.sent(id).is_some_and(|s| s.idempotent);
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
                    Some((before, _)) if n == before => {}
                    _ => *last = Some((n, offset)),
                }
            }
            out.extend(by_class.into_values().filter_map(Findings::into_violation));
        }
        out
    }
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
