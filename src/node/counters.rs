//! Counts of what the shells ask of madsim on this OS thread — frames written, flushes,
//! timers armed — for `ksim bench`, which replays the same counts on bare madsim (its floor).
//!
//! Per thread, like [`crate::disk::calls`]: a run lives on its runtime's one thread. Counting
//! never changes what a shell does and never enters the record, so the trace hash does not
//! see it.

use std::cell::Cell;

/// Shell activity since the last [`take`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShellCalls {
    /// Frames written to a TCP stream.
    pub frames: u64,
    /// Their bytes, length prefixes included.
    pub frame_bytes: u64,
    /// Flushes of a TCP stream (each hands one batch to the simulated network).
    pub flushes: u64,
    /// Timers armed (`sleep`, `sleep_until`), whether they fired or were dropped.
    pub timers: u64,
    /// Nodes created on the runtime (a restart reuses its node).
    pub nodes: u64,
}

impl ShellCalls {
    /// The counts as `(name, value)` pairs, for `verdict.json`.
    pub fn named(&self) -> [(&'static str, u64); 5] {
        [
            ("frames", self.frames),
            ("frame_bytes", self.frame_bytes),
            ("flushes", self.flushes),
            ("timers", self.timers),
            ("nodes", self.nodes),
        ]
    }
}

thread_local! {
    static CALLS: Cell<ShellCalls> = Cell::new(ShellCalls::default());
}

/// The counts so far on this thread; they restart from zero.
pub fn take() -> ShellCalls {
    CALLS.with(|calls| calls.replace(ShellCalls::default()))
}

/// Adds to this thread's counts.
pub(crate) fn count(f: impl FnOnce(&mut ShellCalls)) {
    CALLS.with(|calls| {
        let mut now = calls.get();
        f(&mut now);
        calls.set(now);
    });
}
