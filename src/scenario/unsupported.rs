//! What a valid scenario may ask for that the simulator cannot run yet.
//!
//! Owns: one list, [`reject_unsupported`]. Standalone log writers, the ensemble with its
//! clients, brokers with producers and consumers (assign mode and groups), node faults on
//! every target, network faults and the nemesis exist today; everything else in the contract is parsed and validated
//! in full (so mistakes are still reported precisely) and then refused here with
//! `not supported yet: ...` at the key — never silently ignored, which would make a scenario
//! pass without testing what it says. As features land, delete their lines.

use std::ops::Range;

use super::build::Problem;
use super::raw::RawScenario;

/// The first (in file order) part of a validated scenario the simulator cannot run yet.
pub(super) fn reject_unsupported(raw: &RawScenario) -> Result<(), Problem> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    let mut refuse = |span: Range<usize>, what: &str| found.push((span, what.to_string()));

    // Consumers start from the earliest offset when nothing is committed (no ListOffsets
    // yet for "latest").
    for consumer in &raw.consumer {
        let consumer = consumer.get_ref();
        let reset = consumer
            .config
            .as_ref()
            .and_then(|c| c.auto_offset_reset.as_ref());
        if let Some(reset) = reset.filter(|r| r.get_ref() != "earliest") {
            refuse(
                reset.span(),
                "`auto.offset.reset` other than \"earliest\" (no ListOffsets yet)",
            );
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
