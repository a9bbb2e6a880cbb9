//! Counts of the file-system calls [`SimDisk`](super::SimDisk) serves on this OS thread:
//! what `ksim bench` compares with madsim's floor.
//!
//! Per thread, because a run lives on one OS thread (its madsim runtime's) and a sweep runs
//! several runs at once on separate threads. Counting never changes what a disk does and
//! never enters a run's record, so the trace hash does not see it.

use std::cell::Cell;

/// File-system calls served, since the last [`take`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCalls {
    /// `read_at` calls.
    pub reads: u64,
    /// Bytes asked for by `read_at`.
    pub read_bytes: u64,
    /// `write_at` calls (appends included).
    pub writes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// File syncs (fdatasync).
    pub syncs: u64,
    /// Directory syncs.
    pub dir_syncs: u64,
    /// Name and length changes: create, open, rename, remove, truncate, list.
    pub metadata: u64,
}

impl DiskCalls {
    /// The counts as `(name, value)` pairs, for `verdict.json`.
    pub fn named(&self) -> [(&'static str, u64); 7] {
        [
            ("disk_reads", self.reads),
            ("disk_read_bytes", self.read_bytes),
            ("disk_writes", self.writes),
            ("disk_write_bytes", self.write_bytes),
            ("disk_syncs", self.syncs),
            ("disk_dir_syncs", self.dir_syncs),
            ("disk_metadata", self.metadata),
        ]
    }
}

thread_local! {
    static CALLS: Cell<DiskCalls> = Cell::new(DiskCalls::default());
}

/// The counts so far on this thread; they restart from zero.
pub fn take() -> DiskCalls {
    CALLS.with(|calls| calls.replace(DiskCalls::default()))
}

/// Adds one call to this thread's counts.
pub(super) fn count(f: impl FnOnce(&mut DiskCalls)) {
    CALLS.with(|calls| {
        let mut now = calls.get();
        f(&mut now);
        calls.set(now);
    });
}
