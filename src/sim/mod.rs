//! The simulation harness: one madsim runtime per seed, on a fresh OS thread.
//!
//! Owns: [`simulate`] — prepare the run directory, build the world on a runtime seeded with
//! the run's seed, drive it through its phases, and hand back what was recorded. Nothing
//! inside a run reads the wall clock, an unseeded RNG or hash order; the only OS thread is
//! the one the runtime lives on. A panic anywhere in the run becomes a [`Crash`] in the
//! output, never a dead process.

mod guard;
mod logging;
mod nemesis;
mod network;
mod nodes;
mod world;

pub use world::WorldOutcome;

use crate::history::{Crash, Event, HistoryEntry};
use crate::node::progress::Progress;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use world::World;

/// Slack on top of setup + duration + heal before madsim's time limit aborts a run.
const TIME_LIMIT_SLACK: Duration = Duration::from_secs(120);

/// What one seeded simulation produced.
#[derive(Debug)]
pub struct SimOutput {
    /// The seed.
    pub seed: u64,
    /// Everything announced, in order.
    pub events: Vec<Event>,
    /// Every client operation, in order.
    pub history: Vec<HistoryEntry>,
    /// Hash of the ordered events and history.
    pub trace_hash: u64,
    /// Simulated time at the end, microseconds.
    pub sim_us: u64,
    /// Phase times and convergence.
    pub world: WorldOutcome,
    /// A node (or the world) panicked.
    pub crash: Option<Crash>,
    /// What the run asked of madsim and its disks (frames, flushes, timers, disk calls):
    /// counted beside the record, never in it, so the trace hash does not see them.
    pub counters: BTreeMap<String, u64>,
}

/// Runs `scenario` with `seed`, recording into `recorder` (fresh) and writing node data and
/// `ksim.log` under `run_dir`, which the caller has prepared
/// ([`crate::report::run_dir::prepare`]). Blocks until the run ends.
pub fn simulate(
    scenario: &Scenario,
    seed: u64,
    run_dir: &Path,
    recorder: &Recorder,
) -> io::Result<SimOutput> {
    fs::create_dir_all(run_dir)?;
    fs::write(run_dir.join("scenario.toml"), &scenario.source)?;

    let scenario = Arc::new(scenario.clone());
    let run_dir: PathBuf = run_dir.to_path_buf();
    let recorder = recorder.clone();
    std::thread::Builder::new()
        .name(format!("ksim-seed-{seed}"))
        .stack_size(64 << 20)
        .spawn(move || run_on_this_thread(scenario, seed, run_dir, recorder))?
        .join()
        .map_err(|_| io::Error::other("the simulation thread died"))?
}

fn run_on_this_thread(
    scenario: Arc<Scenario>,
    seed: u64,
    run_dir: PathBuf,
    recorder: Recorder,
) -> io::Result<SimOutput> {
    guard::enter_run_thread();
    // Counts are per thread; start from zero even if this thread were reused.
    crate::node::counters::take();
    crate::disk::calls::take();
    let (log_file, log_guard) = logging::install(&run_dir.join("ksim.log"))?;
    let progress = Progress::default();

    let mut runtime =
        madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    runtime.set_time_limit(
        scenario
            .duration
            .saturating_add(scenario.heal)
            .saturating_add(TIME_LIMIT_SLACK),
    );
    let world = {
        let (scenario, recorder, progress) = (scenario.clone(), recorder.clone(), progress.clone());
        async move {
            let outcome = World::new(scenario, run_dir, recorder, progress)
                .run()
                .await;
            (outcome, sim_now_us())
        }
    };
    let ran = panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(world)));
    drop(runtime);
    let counters: BTreeMap<String, u64> = crate::node::counters::take()
        .named()
        .into_iter()
        .chain(crate::disk::calls::take().named())
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    drop(log_guard);
    log_file.flush();

    let (events, history) = recorder.snapshot();
    let last_us = events.last().map_or(0, |e| e.at_us);
    let (world, sim_us, crash) = match ran {
        Ok((world, sim_us)) => (world, sim_us, progress.crash()),
        Err(payload) => {
            let message =
                guard::take_last_panic().unwrap_or_else(|| guard::payload_message(&*payload));
            let crash = Crash {
                node: "world".into(),
                message,
                at_us: last_us,
            };
            (WorldOutcome::default(), last_us, Some(crash))
        }
    };
    Ok(SimOutput {
        seed,
        events,
        history,
        trace_hash: recorder.trace_hash(),
        sim_us,
        world,
        crash,
        counters,
    })
}
