//! The record of a run: protocol and fault events, the client history, and the trace hash.
//!
//! Owns: [`Recorder`], shared by the world and every node shell of one run. Entries are kept
//! in the order they happen on the simulated timeline, stamped with simulated time. The
//! trace hash is FNV-1a over every entry's JSON line in that order; nothing in an entry
//! depends on wall time, task ids, paths or hash order (JSON objects are sorted maps), so
//! the same binary, scenario and seed give the same hash in any process.
//!
//! Every entry is also logged (events at info, history at debug) to the run's `ksim.log`.
//!
//! Checkers see only what is recorded here (and the final logs on disk): events are what
//! nodes announce, history is what clients were told.

use crate::history::{Announcement, Event, HistoryEntry, Op};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared, ordered record of one run.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    /// Simulated time of the last record, for a clock shown outside the run (read only
    /// there: nothing inside a run depends on it).
    last_at_us: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    events: Vec<Event>,
    history: Vec<HistoryEntry>,
    hash: Fnv64,
}

/// FNV-1a, 64-bit: tiny, stable across platforms and Rust releases.
#[derive(Clone, Copy)]
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Simulated time since the run started, in microseconds (0 outside a runtime).
pub fn sim_now_us() -> u64 {
    madsim::time::TimeHandle::try_current()
        .map(|time| time.elapsed().as_micros() as u64)
        .unwrap_or(0)
}

impl Recorder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event announced by `node` now.
    pub fn event(&self, node: &str, announced: impl Into<Announcement>) {
        let event = Event {
            at_us: sim_now_us(),
            node: node.to_string(),
            announced: announced.into(),
        };
        let line = serde_json::to_vec(&event).expect("events serialize");
        let (kind, detail) = event.announced.kind_and_detail();
        if detail.is_null() {
            tracing::info!("{node} {kind}");
        } else {
            tracing::info!("{node} {kind} {detail}");
        }
        self.last_at_us.store(event.at_us, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.hash.write(b"E");
        inner.hash.write(&line);
        inner.events.push(event);
    }

    /// Records a client operation of `node` now.
    pub fn history(&self, node: &str, op: Op) {
        let entry = HistoryEntry {
            at_us: sim_now_us(),
            node: node.to_string(),
            op,
        };
        let line = serde_json::to_vec(&entry).expect("history serializes");
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                "{node} {}",
                serde_json::to_string(&entry.op).unwrap_or_default()
            );
        }
        self.last_at_us.store(entry.at_us, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.hash.write(b"H");
        inner.hash.write(&line);
        inner.history.push(entry);
    }

    /// The trace hash of everything recorded so far.
    pub fn trace_hash(&self) -> u64 {
        self.lock().hash.0
    }

    /// Copies of the events and the history.
    pub fn snapshot(&self) -> (Vec<Event>, Vec<HistoryEntry>) {
        let inner = self.lock();
        (inner.events.clone(), inner.history.clone())
    }

    /// Simulated time of the last event or history entry, microseconds.
    pub fn last_at_us(&self) -> u64 {
        self.last_at_us.load(Ordering::Relaxed)
    }

    /// Number of history entries recorded so far.
    pub fn history_len(&self) -> usize {
        self.lock().history.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::WorldEvent;

    fn stop() -> WorldEvent {
        WorldEvent::Stop {}
    }

    #[test]
    fn hash_depends_on_content_and_order() {
        let a = Recorder::new();
        a.event("world", stop());
        a.history("writer-1", Op::Append { value: "v".into() });
        let b = Recorder::new();
        b.history("writer-1", Op::Append { value: "v".into() });
        b.event("world", stop());
        let c = Recorder::new();
        c.event("world", stop());
        c.history("writer-1", Op::Append { value: "v".into() });
        assert_ne!(a.trace_hash(), b.trace_hash());
        assert_eq!(a.trace_hash(), c.trace_hash());
    }
}
