//! What a valid scenario may ask for that the simulator cannot run yet.
//!
//! Owns: one list, [`reject_unsupported`]. Only standalone log writers (`[[writer]]`) and
//! node faults on them exist today; everything else in the contract is parsed and validated
//! in full (so mistakes are still reported precisely) and then refused here with
//! `not supported yet: ...` at the key — never silently ignored, which would make a scenario
//! pass without testing what it says. As features land, delete their lines.

use std::ops::Range;

use toml::Spanned;

use super::build::Problem;
use super::model::{FaultAction, Target};
use super::raw::RawScenario;
use super::target::parse_target;

/// The first (in file order) part of a validated scenario the simulator cannot run yet.
pub(super) fn reject_unsupported(raw: &RawScenario) -> Result<(), Problem> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    let mut refuse = |span: Range<usize>, what: &str| found.push((span, what.to_string()));

    if let Some(cluster) = &raw.cluster {
        // ZooKeeper-like ensemble.
        if let Some(zookeepers) = cluster.zookeepers.as_ref().filter(|z| *z.get_ref() > 0) {
            refuse(
                zookeepers.span(),
                "`zookeepers` > 0 (no ensemble yet; only [[writer]] nodes run)",
            );
        }
        if let Some(zookeeper) = &cluster.zookeeper {
            let keys = [
                span_of(&zookeeper.tick_time),
                span_of(&zookeeper.init_limit),
                span_of(&zookeeper.sync_limit),
                span_of(&zookeeper.force_sync),
            ];
            for span in keys.into_iter().flatten() {
                refuse(span, "[cluster.zookeeper] settings (no ensemble yet)");
            }
        }
        // Brokers. Their log.* settings are fine: writers use them too.
        if let Some(brokers) = cluster.brokers.as_ref().filter(|b| *b.get_ref() > 0) {
            refuse(
                brokers.span(),
                "`brokers` > 0 (no brokers yet; only [[writer]] nodes run)",
            );
        }
        if let Some(broker) = &cluster.broker {
            let keys = [
                span_of(&broker.replica_lag_time_max_ms),
                span_of(&broker.unclean_leader_election_enable),
                span_of(&broker.min_insync_replicas),
                span_of(&broker.default_replication_factor),
                span_of(&broker.offsets_topic_num_partitions),
                span_of(&broker.offsets_topic_replication_factor),
                span_of(&broker.group_initial_rebalance_delay_ms),
            ];
            for span in keys.into_iter().flatten() {
                refuse(
                    span,
                    "[cluster.broker] settings other than `log.*` (no brokers yet)",
                );
            }
        }
    }
    // Workloads other than writers.
    for topic in &raw.topic {
        refuse(
            topic.span(),
            "[[topic]] (no brokers yet; only [[writer]] nodes run)",
        );
    }
    for producer in &raw.producer {
        refuse(
            producer.span(),
            "[[producer]] (no brokers yet; only [[writer]] nodes run)",
        );
    }
    for consumer in &raw.consumer {
        refuse(
            consumer.span(),
            "[[consumer]] (no brokers yet; only [[writer]] nodes run)",
        );
    }
    // Faults: node faults on writers only; no network faults.
    for fault in &raw.fault {
        let fault = fault.get_ref();
        let action = *fault.action.get_ref();
        if matches!(
            action,
            FaultAction::Partition
                | FaultAction::Heal
                | FaultAction::Clog
                | FaultAction::Unclog
                | FaultAction::Loss
        ) {
            refuse(
                fault.action.span(),
                &format!("`{action}` faults (no network faults yet)"),
            );
        }
        if let Some(text) = &fault.target {
            let target = parse_target(text.get_ref());
            if !matches!(
                target,
                Ok(Target::Node(_) | Target::Killed | Target::RandomWriter | Target::AllWriters)
            ) {
                let what = format!(
                    "target `{}` (only writer nodes, `killed`, `random-writer` and \
                     `all-writers` yet)",
                    text.get_ref()
                );
                refuse(text.span(), &what);
            }
        }
    }
    // Random faults.
    if let Some(nemesis) = &raw.nemesis {
        let first_key = [nemesis.actions.span(), nemesis.every.span()]
            .into_iter()
            .min_by_key(|span| span.start);
        refuse(
            first_key.unwrap_or_default(),
            "[nemesis] (write explicit [[fault]]s for now)",
        );
    }
    // Legacy switches all belong to brokers and the ensemble.
    if let Some(legacy) = &raw.legacy {
        for (key, switch) in legacy.switches() {
            if let Some(on) = switch.as_ref().filter(|s| *s.get_ref()) {
                refuse(
                    on.span(),
                    &format!("[legacy] `{key}` (no brokers or ensemble yet)"),
                );
            }
        }
    }

    match found.into_iter().min_by_key(|(span, _)| span.start) {
        Some((span, what)) => Err(Problem {
            span,
            message: format!("not supported yet: {what}"),
        }),
        None => Ok(()),
    }
}

fn span_of<T>(value: &Option<Spanned<T>>) -> Option<Range<usize>> {
    value.as_ref().map(Spanned::span)
}
