//! The simulation harness: one madsim runtime per seed, on a fresh OS thread.
//!
//! Owns: [`simulate`] — prepare the run directory, build the world on a runtime seeded with
//! the run's seed, drive it through its phases, and hand back what was recorded (and, when
//! the nodes' disks were memory-backed, their files). Nothing
//! inside a run reads the wall clock, an unseeded RNG or hash order; the only OS thread is
//! the one the runtime lives on. A panic anywhere in the run becomes a [`Crash`] in the
//! output, never a dead process.

mod guard;
mod logging;
mod nemesis;
mod network;
mod nodes;
mod world;

pub use logging::RunLog;
pub use nodes::RunDisks;
pub use world::WorldOutcome;

use crate::disk::{Backing, DiskImage};
use crate::history::Crash;
use crate::node::progress::Progress;
use crate::node::recorder::{sim_now_us, Record, Recorder, RunClock};
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
    /// Everything announced and every client operation, in order: the recorder's own
    /// record, moved out of it (the recorder keeps a handle for Ctrl-C).
    pub record: Arc<Record>,
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
    /// The coverage marks the run hit, with how often ([`crate::coverage`]); not part of
    /// the trace.
    pub marks: BTreeMap<String, u64>,
    /// Each node's files as the run left them, by node name, when its disks were
    /// memory-backed (empty when file-backed: the files are in the run directory). Their
    /// buffers, handed over, not copied; take them to free them.
    pub disks: BTreeMap<String, DiskImage>,
}

/// Runs `scenario` with `seed`, recording into `recorder` (fresh), logging into `log` (the
/// run's `ksim.log`) and keeping node data on `disks` (fresh): files under `run_dir` (which
/// the caller has prepared, [`crate::report::run_dir::prepare`]), or memory, handed back in
/// [`SimOutput::disks`]. The trace does not depend on the backing. Then, once the
/// runtime is gone, runs `then` on what it produced (the checks), on the same thread, so
/// they reuse the memory the run freed instead of growing the process by their own. Blocks
/// until both are done. A panic in `then` is the caller's (it resumes on the calling thread).
pub fn simulate<R: Send>(
    scenario: &Scenario,
    seed: u64,
    run_dir: &Path,
    disks: &RunDisks,
    recorder: &Recorder,
    log: &RunLog,
    then: impl FnOnce(&mut SimOutput) -> R + Send,
) -> io::Result<(SimOutput, R)> {
    fs::create_dir_all(run_dir)?;
    fs::write(run_dir.join("scenario.toml"), &scenario.source)?;

    let shared = Arc::new(scenario.clone());
    let run_dir: PathBuf = run_dir.to_path_buf();
    let (recorder, log, disks) = (recorder.clone(), log.clone(), disks.clone());
    let joined = std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name(format!("ksim-seed-{seed}"))
            .stack_size(64 << 20)
            .spawn_scoped(scope, move || {
                let mut output = run_on_this_thread(shared, seed, run_dir, disks, recorder, log)?;
                guard::leave_run_thread();
                let after = panic::catch_unwind(AssertUnwindSafe(|| then(&mut output)));
                io::Result::Ok(after.map(|after| (output, after)))
            })
            .map(|thread| thread.join())
    })?;
    match joined {
        Ok(Ok(Ok(done))) => Ok(done),
        Ok(Ok(Err(payload))) => panic::resume_unwind(payload),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::other("the simulation thread died")),
    }
}

/// Hands the pages the run's nodes freed back to the system before the checks build their
/// tables: glibc keeps freed small blocks in its arena, and the checks' large tables come
/// from fresh mappings, so without this the process would hold both at its peak. (Other
/// allocators return memory on their own.)
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it
    // touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn run_on_this_thread(
    scenario: Arc<Scenario>,
    seed: u64,
    run_dir: PathBuf,
    disks: RunDisks,
    recorder: Recorder,
    log_file: RunLog,
) -> io::Result<SimOutput> {
    guard::enter_run_thread();
    // Counts are per thread; start from zero even if this thread were reused.
    crate::node::counters::take();
    crate::coverage::take();
    crate::disk::calls::take();
    let log_guard = logging::install(&log_file);
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
        let disks = disks.clone();
        async move {
            let _clock = RunClock::hold();
            let outcome = World::new(scenario, run_dir, disks, recorder, progress)
                .run()
                .await;
            (outcome, sim_now_us())
        }
    };
    let ran = panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(world)));
    drop(runtime);
    release_freed_memory();
    // Every node is gone: its files are what a restart would find. A memory-backed disk
    // hands its buffers over; a file-backed one stays where it is, in the run directory.
    let mut images = BTreeMap::new();
    for (name, disk) in disks.take() {
        if disk.backing() == Backing::Memory {
            images.insert(name, disk.take_image()?);
        }
    }
    // Replicas hold the same bytes: keep each content once while the checks read them.
    crate::disk::share_identical(images.values_mut());
    let counters: BTreeMap<String, u64> = crate::node::counters::take()
        .named()
        .into_iter()
        .chain(crate::disk::calls::take().named())
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    let marks = crate::coverage::take();
    drop(log_guard);
    log_file.flush();

    let record = recorder.finish();
    let last_us = record.events.last().map_or(0, |e| e.at_us);
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
        record,
        trace_hash: recorder.trace_hash(),
        sim_us,
        world,
        crash,
        counters,
        marks,
        disks: images,
    })
}
