//! The control checks: what the controllers announced ([`ControllerEvent`]).
//!
//! Owns: `single-controller-per-epoch`, `controller-epoch-monotonic`.
//!
//! # Rules
//!
//! - `single-controller-per-epoch`: two brokers announce `controller-elected` in one epoch.
//! - `controller-epoch-monotonic`: a `controller-elected` epoch below an earlier one; or,
//!   per partition, a state written by a controller of an older epoch after one of a newer
//!   epoch (`partition-state` events in `partition_epoch` order). The epoch check on every
//!   controller write rules the second out: it is what a zombie controller does (KAFKA-6082).

use super::broker_events::Kind;
use super::kafka::Facts;
use super::toolkit::{seconds, violation};
use super::Violation;
use crate::broker::controller::ControllerEvent;
use crate::broker::{ControllerEpoch, PartitionEpoch, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

impl Facts<'_> {
    /// `single-controller-per-epoch`.
    pub fn single_controller_per_epoch(&self) -> Vec<Violation> {
        const CHECK: &str = "single-controller-per-epoch";
        let mut out = Vec::new();
        let mut elected: BTreeMap<ControllerEpoch, (&str, u64)> = BTreeMap::new();
        let mut reported = BTreeSet::new();
        for event in self.events.of(&[Kind::ControllerElected]) {
            let Some(&ControllerEvent::ControllerElected {
                controller_epoch: epoch,
            }) = event.announced.controller()
            else {
                continue;
            };
            match elected.get(&epoch) {
                None => {
                    elected.insert(epoch, (event.broker, event.at_us));
                }
                Some(&(first, at)) if first != event.broker && reported.insert(epoch) => {
                    out.push(violation(
                        CHECK,
                        None,
                        Some(event.broker),
                        event.at_us,
                        format!(
                            "controller epoch {epoch} has two controllers: {first} elected at {} \
                             and {} at {}",
                            seconds(at),
                            event.broker,
                            seconds(event.at_us)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        out
    }

    /// `controller-epoch-monotonic`.
    pub fn controller_epoch_monotonic(&self) -> Vec<Violation> {
        const CHECK: &str = "controller-epoch-monotonic";
        let mut out = Vec::new();
        let mut greatest: Option<(ControllerEpoch, &str, u64)> = None;
        for event in self.events.of(&[Kind::ControllerElected]) {
            let Some(&ControllerEvent::ControllerElected {
                controller_epoch: epoch,
            }) = event.announced.controller()
            else {
                continue;
            };
            match greatest {
                Some((before, by, at)) if epoch < before => out.push(violation(
                    CHECK,
                    None,
                    Some(event.broker),
                    event.at_us,
                    format!(
                        "{} was elected controller in epoch {epoch} at {}, after {by} in epoch \
                         {before} at {}",
                        event.broker,
                        seconds(event.at_us),
                        seconds(at)
                    ),
                )),
                Some((before, _, _)) if epoch == before => {}
                _ => greatest = Some((epoch, event.broker, event.at_us)),
            }
        }
        // Per partition: (partition_epoch, controller_epoch, by, at) of every written state.
        let mut written: BTreeMap<
            &TopicPartition,
            Vec<(PartitionEpoch, ControllerEpoch, &str, u64)>,
        > = BTreeMap::new();
        for event in self.events.of(&[Kind::PartitionState]) {
            if let Some(ControllerEvent::PartitionState {
                partition,
                controller_epoch,
                partition_epoch,
                ..
            }) = event.announced.controller()
            {
                written.entry(partition).or_default().push((
                    *partition_epoch,
                    *controller_epoch,
                    event.broker,
                    event.at_us,
                ));
            }
        }
        for (tp, mut states) in written {
            states.sort_by_key(|&(version, _, _, at)| (version, at));
            let mut newest: Option<(PartitionEpoch, ControllerEpoch, &str, u64)> = None;
            for state in states {
                let (version, epoch, by, at) = state;
                match newest {
                    Some((v0, e0, by0, at0)) if epoch < e0 => out.push(violation(
                        CHECK,
                        Some(tp),
                        Some(by),
                        at,
                        format!(
                            "{by} wrote partition epoch {version} as controller epoch {epoch} \
                             (at {}), after {by0} wrote partition epoch {v0} as controller \
                             epoch {e0} (at {})",
                            seconds(at),
                            seconds(at0)
                        ),
                    )),
                    _ => newest = Some(state),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    /// Each check's cases — a hand-made record that breaks its rule, and ones that keep
    /// it — are the table `src/check/testdata/control.txt` (read by `check::tables`).
    #[test]
    fn control_rules() {
        crate::check::tables::run_broker_table("src/check/testdata/control.txt");
    }
}
