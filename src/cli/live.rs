//! Runs in progress, seen from outside their runtimes: Ctrl-C and the clock on a terminal.
//!
//! Owns: the registry of the runs of this process that have started and not yet written
//! their files, the SIGINT/SIGTERM handler that writes each one's partial record
//! (`verdict.json` with `"verdict": "interrupted"`, the events and history so far, its
//! `ksim.log` and its nodes' files (a sweep holds both in memory until then), the seed)
//! before the process exits with 130, and the simulated clock a long `ksim run` shows on a
//! terminal. Everything here only *reads* a run's recorder from another OS thread; nothing
//! inside a run depends on it, so determinism is untouched.

use crate::node::recorder::Recorder;
use crate::report::{self, Interrupted};
use crate::sim::{RunDisks, RunLog};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Exit code after Ctrl-C (128 + SIGINT, the shell's convention).
pub const EXIT_INTERRUPTED: u8 = 130;

struct Active {
    scenario: String,
    scenario_source: String,
    seed: u64,
    run_dir: PathBuf,
    recorder: Recorder,
    log: RunLog,
    disks: RunDisks,
    started: Instant,
}

fn active() -> MutexGuard<'static, BTreeMap<u64, Active>> {
    static ACTIVE: Mutex<BTreeMap<u64, Active>> = Mutex::new(BTreeMap::new());
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Held while a run writes its final files, so an interrupt never interleaves with them.
fn writing() -> MutexGuard<'static, ()> {
    static WRITING: Mutex<()> = Mutex::new(());
    WRITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// A run in the registry; dropping it removes the run.
pub struct Registration {
    id: u64,
}

impl Registration {
    /// Registers a run that is about to start, with its record, log and disks.
    pub fn new(
        scenario: &crate::scenario::Scenario,
        seed: u64,
        run_dir: PathBuf,
        recorder: &Recorder,
        log: &RunLog,
        disks: &RunDisks,
    ) -> Registration {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        active().insert(
            id,
            Active {
                scenario: scenario.name.clone(),
                scenario_source: scenario.source.clone(),
                seed,
                run_dir,
                recorder: recorder.clone(),
                log: log.clone(),
                disks: disks.clone(),
                started: Instant::now(),
            },
        );
        Registration { id }
    }

    /// Runs `write` (the run's final files) so that an interrupt either comes before it (and
    /// the interrupted record is written instead) or after it (and leaves the run alone).
    pub fn finish<T>(self, write: impl FnOnce() -> T) -> T {
        let _writing = writing();
        let out = write();
        active().remove(&self.id);
        out
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        active().remove(&self.id);
    }
}

/// Installs the SIGINT/SIGTERM handler (once per process; later calls do nothing).
pub fn install_interrupt_handler() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    // Without a handler (an exotic platform) Ctrl-C still stops ksim, only without a record.
    let _ = ctrlc::set_handler(on_interrupt);
}

fn on_interrupt() {
    let _writing = writing();
    let runs = std::mem::take(&mut *active());
    for run in runs.values() {
        // An interrupted run keeps its log and its nodes' files (a sweep's were held in
        // memory), whatever they are; once its checks have begun, its nodes' files are the
        // checks' (written after them only if the seed is kept).
        let _ = run.log.keep();
        let _ = run.disks.write_now(&run.run_dir);
        let (events, history) = run.recorder.snapshot();
        let record = Interrupted {
            scenario: &run.scenario,
            scenario_source: &run.scenario_source,
            seed: run.seed,
            run_dir: &run.run_dir,
            wall_ms: run.started.elapsed().as_millis() as u64,
        };
        match report::write_interrupted(&record, &events, &history) {
            Ok(()) => super::say_err(format_args!(
                "interrupted: seed {} at {:.1}s simulated; what it recorded is in {}",
                run.seed,
                run.recorder.last_at_us() as f64 / 1e6,
                run.run_dir.display()
            )),
            Err(error) => super::say_err(format_args!(
                "interrupted: seed {}: could not write {}: {error}",
                run.seed,
                run.run_dir.display()
            )),
        }
    }
    if runs.is_empty() {
        super::say_err(format_args!("interrupted"));
    }
    std::process::exit(i32::from(EXIT_INTERRUPTED));
}

/// Shows a run's simulated clock on stderr while it runs, if stderr is a terminal.
pub struct Clock {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Clock {
    /// Starts the clock of `recorder`'s run, `total` the most simulated time it can take.
    pub fn start(recorder: &Recorder, total: Duration) -> Clock {
        let done = Arc::new(AtomicBool::new(false));
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        if bar.is_hidden() {
            return Clock { done, thread: None };
        }
        let template = "{elapsed_precise} simulated {msg} [{bar:30}]";
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let (recorder, flag) = (recorder.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let at_us = recorder.last_at_us();
                bar.set_position(at_us / 1000);
                bar.set_message(format!("{:.1}s", at_us as f64 / 1e6));
                std::thread::sleep(Duration::from_millis(200));
            }
            bar.finish_and_clear();
        });
        Clock {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
