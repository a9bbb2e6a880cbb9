//! `converges`: after the faults stop, the cluster serves again within `heal`.
//!
//! Every node that does client work — each log writer and each ensemble client — must get a
//! definite answer (an acknowledged append; a server's reply, success or error) after the
//! heal and within the bound. An ensemble client can only be answered by a serving server,
//! which needs an established leader, so this also covers "the ensemble has a leader".

use super::zk::is_definite_zk_answer;
use super::{CheckInput, Violation};
use crate::node::writers;
use crate::sim::Op;

/// `converges`.
pub fn converges(input: &CheckInput<'_>) -> Vec<Violation> {
    let Some(heal) = input
        .events
        .iter()
        .find(|e| e.node == "world" && e.kind == "heal")
    else {
        return vec![Violation {
            check: "converges".into(),
            detail: "the run ended before the heal".into(),
            at_ms: input.events.last().map(|e| e.at_us / 1000),
            partition: None,
            node: None,
        }];
    };
    let bound_us = heal.at_us + input.scenario.heal.as_micros() as u64;
    let mut active: Vec<String> = writers(input.scenario)
        .into_iter()
        .map(|p| p.name)
        .collect();
    active.extend(input.scenario.zk_client_names());
    active
        .into_iter()
        .filter(|name| {
            !input.history.iter().any(|e| {
                &e.node == name
                    && e.at_us >= heal.at_us
                    && e.at_us <= bound_us
                    && (matches!(e.op, Op::AppendOk { .. }) || is_definite_zk_answer(e))
            })
        })
        .map(|name| {
            let why = input
                .events
                .iter()
                .rev()
                .find(|e| e.node == name && e.kind.ends_with("-failed"))
                .map(|e| format!(" (last failure: {} {})", e.kind, e.detail))
                .unwrap_or_default();
            Violation {
                check: "converges".into(),
                detail: format!(
                    "{name}: no acknowledged operation within {}s after the heal at {:.3}s{why}",
                    input.scenario.heal.as_secs_f64(),
                    heal.at_us as f64 / 1e6
                ),
                at_ms: Some(bound_us / 1000),
                partition: None,
                node: Some(name),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::test_support::{
        append_ok as ok, world_event as world, writer_scenario as scenario,
    };
    use crate::scenario::Scenario;
    use crate::sim::{Event, HistoryEntry};
    use std::path::Path;

    fn input<'a>(
        s: &'a Scenario,
        events: &'a [Event],
        history: &'a [HistoryEntry],
    ) -> CheckInput<'a> {
        CheckInput {
            scenario: s,
            events,
            history,
            run_dir: Path::new("/nonexistent"),
        }
    }

    #[test]
    fn converges_fires_for_a_writer_silent_after_the_heal() {
        let s = scenario();
        let events = [world(1_000_000, "heal")];
        let history = [
            ok(500_000, "writer-2", "old", 0),
            ok(1_200_000, "writer-1", "new", 1),
        ];
        let found = converges(&input(&s, &events, &history));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].node.as_deref(), Some("writer-2"));

        // An acknowledgement after the bound (heal + 5s) does not count.
        let late = [
            ok(1_200_000, "writer-1", "x", 1),
            ok(6_100_000, "writer-2", "y", 1),
        ];
        assert_eq!(converges(&input(&s, &events, &late)).len(), 1);

        let both = [
            ok(1_200_000, "writer-1", "x", 1),
            ok(1_300_000, "writer-2", "y", 1),
        ];
        assert!(converges(&input(&s, &events, &both)).is_empty());

        // No heal at all (the run ended early): not converged.
        assert_eq!(converges(&input(&s, &[], &both)).len(), 1);
    }
}
