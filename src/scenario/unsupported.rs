//! What a valid scenario may ask for that the simulator cannot run yet.
//!
//! Owns: one list, [`reject_unsupported`]. Standalone log writers, the ensemble with its
//! clients, node faults and network faults exist today; everything else in the contract is parsed and validated
//! in full (so mistakes are still reported precisely) and then refused here with
//! `not supported yet: ...` at the key — never silently ignored, which would make a scenario
//! pass without testing what it says. As features land, delete their lines.

use std::ops::Range;

use toml::Spanned;

use super::build::Problem;
use super::model::Target;
use super::raw::RawScenario;
use super::target::parse_target;

/// The first (in file order) part of a validated scenario the simulator cannot run yet.
pub(super) fn reject_unsupported(raw: &RawScenario) -> Result<(), Problem> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    let mut refuse = |span: Range<usize>, what: &str| found.push((span, what.to_string()));

    if let Some(cluster) = &raw.cluster {
        // Brokers. Their log.* settings are fine: writers use them too.
        if let Some(brokers) = cluster.brokers.as_ref().filter(|b| *b.get_ref() > 0) {
            refuse(brokers.span(), "`brokers` > 0 (no brokers yet)");
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
        refuse(topic.span(), "[[topic]] (no brokers yet)");
    }
    for producer in &raw.producer {
        refuse(producer.span(), "[[producer]] (no brokers yet)");
    }
    for consumer in &raw.consumer {
        refuse(consumer.span(), "[[consumer]] (no brokers yet)");
    }
    // Fault targets that need brokers.
    for fault in &raw.fault {
        let fault = fault.get_ref();
        if let Some(text) = &fault.target {
            let target = parse_target(text.get_ref());
            if !target.as_ref().is_ok_and(supported_target) {
                let what = format!(
                    "target `{}` (brokers, controllers and coordinators come with the \
                     brokers)",
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
    // Legacy switches of the brokers.
    if let Some(legacy) = &raw.legacy {
        for (key, switch) in legacy.switches() {
            if key.starts_with("zk-") {
                continue;
            }
            if let Some(on) = switch.as_ref().filter(|s| *s.get_ref()) {
                refuse(on.span(), &format!("[legacy] `{key}` (no brokers yet)"));
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

/// Targets the world can resolve today: nodes, the ensemble's leader, random or all of
/// a kind that exists, and partition shapes over them.
fn supported_target(target: &Target) -> bool {
    match target {
        Target::Node(_)
        | Target::Killed
        | Target::RandomWriter
        | Target::AllWriters
        | Target::ZkLeader
        | Target::RandomZk
        | Target::Halves
        | Target::Bridge => true,
        Target::Isolate(inner) => supported_target(inner),
        Target::Leader { .. }
        | Target::Controller
        | Target::Coordinator(_)
        | Target::RandomBroker
        | Target::AllBrokers => false,
    }
}

fn span_of<T>(value: &Option<Spanned<T>>) -> Option<Range<usize>> {
    value.as_ref().map(Spanned::span)
}
