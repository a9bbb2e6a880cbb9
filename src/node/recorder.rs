//! The record of a run: protocol and fault events, the client history, and the trace hash.
//!
//! Owns: [`Recorder`], shared by the world and every node shell of one run. Entries are kept
//! in the order they happen on the simulated timeline, stamped with simulated time. The
//! trace hash is FNV-1a over a compact binary form of every entry in that order ([`hash`]:
//! an `E` or `H`, the time, the node, then the announcement or the operation through a serde
//! serializer that feeds the hasher directly; the JSON lines of `events.jsonl` and
//! `history.jsonl` are written only at the end, never computed for the hash). Nothing in an
//! entry depends on wall time, task ids, paths or hash order (maps are sorted maps), so the
//! same binary, scenario and seed give the same hash in any process.
//!
//! At the end of a run [`Recorder::finish`] moves the record out (no copy); mid-run readers
//! (Ctrl-C) copy it with [`Recorder::snapshot`], which still sees a finished record.
//!
//! Every entry is also logged (events at info, history at debug) to the run's `ksim.log`.
//!
//! Checkers see only what is recorded here (and the final logs on disk): events are what
//! nodes announce, history is what clients were told.

pub mod hash;

use crate::history::{Announcement, Event, HistoryEntry, NodeName, Op};
use hash::Fnv64;
use std::collections::BTreeMap;
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

/// What a run recorded: its events and its client history, in order.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Everything announced.
    pub events: Vec<Event>,
    /// Every client operation.
    pub history: Vec<HistoryEntry>,
}

#[derive(Default)]
struct Inner {
    record: Record,
    /// The record moved out by [`Recorder::finish`] (shared, so Ctrl-C can still write it).
    finished: Option<Arc<Record>>,
    hash: Fnv64,
    /// Every node's name, once: entries share it.
    names: BTreeMap<String, NodeName>,
}

impl Inner {
    fn record(&self) -> &Record {
        self.finished.as_deref().unwrap_or(&self.record)
    }

    /// `node`'s shared name.
    fn name(&mut self, node: &str) -> NodeName {
        if let Some(name) = self.names.get(node) {
            return name.share();
        }
        let name = NodeName::new(node);
        self.names.insert(node.to_string(), name.share());
        name
    }
}

/// Simulated time since the run started, in microseconds (0 outside a runtime).
pub fn sim_now_us() -> u64 {
    RUN_CLOCK.with(|clock| match &*clock.borrow() {
        Some(time) => time.elapsed().as_micros() as u64,
        None => madsim::time::TimeHandle::try_current()
            .map(|time| time.elapsed().as_micros() as u64)
            .unwrap_or(0),
    })
}

/// The simulated instant now: `madsim::time::Instant::now()`, the same value, without
/// the clone of madsim's time handle that each `Instant::now()` makes (its
/// `clock_gettime`) while a run holds its clock ([`RunClock`]).
pub fn sim_instant() -> madsim::time::Instant {
    RUN_CLOCK.with(|clock| match &*clock.borrow() {
        Some(time) => time.now_instant(),
        None => madsim::time::Instant::now(),
    })
}

thread_local! {
    /// The clock of the run on this thread, while it runs ([`RunClock`]): asking madsim
    /// for its handle clones two `Arc`s each time, and the nodes ask on every turn.
    static RUN_CLOCK: std::cell::RefCell<Option<madsim::time::TimeHandle>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps the current runtime's clock at hand for [`sim_now_us`] on this thread until
/// dropped. Made inside the runtime (it panics outside one); the same answers as without
/// it, only cheaper.
pub struct RunClock(());

impl RunClock {
    /// Holds the current runtime's clock.
    pub fn hold() -> Self {
        let time = madsim::time::TimeHandle::current();
        RUN_CLOCK.with(|clock| *clock.borrow_mut() = Some(time));
        RunClock(())
    }
}

impl Drop for RunClock {
    fn drop(&mut self) {
        RUN_CLOCK.with(|clock| clock.borrow_mut().take());
    }
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
        let at_us = sim_now_us();
        let announced = announced.into();
        if tracing::enabled!(tracing::Level::INFO) {
            let mut kind = String::new();
            let mut detail = Vec::new();
            announced.write_kind_and_detail(&mut kind, &mut detail);
            if detail.is_empty() {
                tracing::info!("{node} {kind}");
            } else {
                let detail = String::from_utf8_lossy(&detail);
                tracing::info!("{node} {kind} {detail}");
            }
        }
        self.last_at_us.store(at_us, Ordering::Relaxed);
        let mut inner = self.lock();
        let hash = &mut inner.hash;
        hash.write(b"E");
        hash.unsigned(at_us);
        hash.str(node);
        hash.value(&announced);
        let node = inner.name(node);
        inner.record.events.push(Event {
            at_us,
            node,
            announced,
        });
    }

    /// Records a client operation of `node` now.
    pub fn history(&self, node: &str, op: Op) {
        let at_us = sim_now_us();
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!("{node} {}", serde_json::to_string(&op).unwrap_or_default());
        }
        self.last_at_us.store(at_us, Ordering::Relaxed);
        let mut inner = self.lock();
        let hash = &mut inner.hash;
        hash.write(b"H");
        hash.unsigned(at_us);
        hash.str(node);
        hash.value(&op);
        let node = inner.name(node);
        inner.record.history.push(HistoryEntry { at_us, node, op });
    }

    /// The trace hash of everything recorded so far.
    pub fn trace_hash(&self) -> u64 {
        self.lock().hash.0
    }

    /// Copies of the events and the history (a reader from outside the run, mid-run or
    /// after [`finish`](Self::finish)).
    pub fn snapshot(&self) -> (Vec<Event>, Vec<HistoryEntry>) {
        let inner = self.lock();
        let record = inner.record();
        (record.events.clone(), record.history.clone())
    }

    /// Ends the record: moves what was recorded out without copying it, and keeps a shared
    /// handle for [`snapshot`](Self::snapshot). Called once, when the run is over; anything
    /// recorded after it starts a new, empty record (and still counts in the hash).
    pub fn finish(&self) -> Arc<Record> {
        let mut inner = self.lock();
        let mut record = std::mem::take(&mut inner.record);
        // What is recorded is what the checks get: no spare capacity.
        record.events.shrink_to_fit();
        record.history.shrink_to_fit();
        if let Some(earlier) = inner.finished.take() {
            // Finished twice: keep the first part in front.
            let mut whole = Arc::unwrap_or_clone(earlier);
            whole.events.append(&mut record.events);
            whole.history.append(&mut record.history);
            record = whole;
        }
        let record = Arc::new(record);
        inner.finished = Some(record.clone());
        record
    }

    /// Simulated time of the last event or history entry, microseconds.
    pub fn last_at_us(&self) -> u64 {
        self.last_at_us.load(Ordering::Relaxed)
    }

    /// Number of history entries recorded so far.
    pub fn history_len(&self) -> usize {
        self.lock().record().history.len()
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
        let d = Recorder::new();
        d.event("world", stop());
        d.history("writer-1", Op::Append { value: "w".into() });
        assert_ne!(a.trace_hash(), d.trace_hash());
        let e = Recorder::new();
        e.event("world", stop());
        e.history("writer-2", Op::Append { value: "v".into() });
        assert_ne!(a.trace_hash(), e.trace_hash());
    }

    /// The hash of a fixed record, pinned: it moves only with the binary form (or the
    /// record's types), and then every run's trace hash moves with it.
    #[test]
    fn the_hash_of_a_fixed_record_is_pinned() {
        let a = Recorder::new();
        a.event("world", stop());
        a.history("writer-1", Op::Append { value: "v".into() });
        assert_eq!(format!("{:016x}", a.trace_hash()), "dc52dd017254ba4c");
    }

    #[test]
    fn finish_moves_the_record_out_and_snapshot_still_sees_it() {
        let a = Recorder::new();
        a.event("world", stop());
        a.history("writer-1", Op::Append { value: "v".into() });
        let hash = a.trace_hash();
        let record = a.finish();
        assert_eq!((record.events.len(), record.history.len()), (1, 1));
        assert_eq!(a.trace_hash(), hash);
        let (events, history) = a.snapshot();
        assert_eq!(
            (events, history),
            (record.events.clone(), record.history.clone())
        );
        assert_eq!(a.history_len(), 1);
    }
}
