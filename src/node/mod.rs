//! Node shells: the only code that owns madsim time, tasks and a node's disk.
//!
//! Owns: paying simulated time for fsyncs ([`pay_sync_debt`]), the run's RNG ([`run_rng`]),
//! and the per-kind shells.
//! A shell makes no protocol decisions; it feeds a core (or the log engine) and announces
//! what happened to the [`Recorder`](recorder::Recorder); [`progress`] holds the probes the
//! world ends its phases on.
//!
//! Shells: [`writer`] (standalone log writers), [`zk_server`] and [`zk_client`] (the
//! ensemble), [`broker`] and [`kafka_client`] (brokers, producers, consumers); [`net`]
//! frames their TCP traffic and writes it in batches, [`kafka_net`] carries Kafka's
//! request/response connections and [`zk_session`] the ensemble sessions of brokers and
//! ensemble clients.

pub mod broker;
pub mod counters;
pub mod kafka_client;
pub mod kafka_net;
pub mod net;
pub mod processor;
pub mod progress;
pub mod recorder;
pub mod writer;
pub mod zk_client;
pub mod zk_server;
pub mod zk_session;

use crate::disk::SimDisk;
use crate::node::recorder::sim_instant;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

/// The run's random number generator: madsim's global RNG, seeded with the run's seed.
/// Every random choice inside a run (jitter, random targets, fault timing, disk seeds)
/// draws from it, in the deterministic order the runtime schedules tasks.
pub fn run_rng() -> madsim::rand::GlobalRng {
    // Despite its name, this is madsim's seeded global RNG, not the OS's.
    madsim::rand::thread_rng()
}

/// Sleeps off the simulated time the disk's syncs cost since the last call.
pub async fn pay_sync_debt(disk: &SimDisk) {
    let debt = disk.take_sync_debt();
    if debt > Duration::ZERO {
        sleep(debt).await;
    }
}

/// `madsim::time::sleep`, counted ([`counters`]): every timer a shell or the world arms
/// goes through here or [`sleep_until`].
pub fn sleep(duration: Duration) -> CountedSleep {
    CountedSleep(madsim::time::sleep(duration))
}

/// `madsim::time::sleep_until`, counted ([`counters`]).
pub fn sleep_until(deadline: madsim::time::Instant) -> CountedSleep {
    CountedSleep(madsim::time::sleep_until(deadline))
}

/// A madsim `Sleep` that counts the timers it arms: madsim adds a timer each time a sleep
/// is polled before its deadline, so that is what is counted, not the sleeps created.
#[derive(Debug)]
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct CountedSleep(madsim::time::Sleep);

impl Future for CountedSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let poll = Pin::new(&mut self.0).poll(cx);
        if poll.is_pending() {
            counters::count(|c| c.timers += 1);
        }
        poll
    }
}

/// The next deadline of a shell's event loop, awaited as `&mut deadline` in every `select!`
/// turn. madsim arms a new timer each time a `Sleep` is polled before its deadline, so a
/// fresh `sleep_until` per turn arms one per message received; a `Deadline` arms one per
/// deadline (counted, [`counters`]) and only re-arms when the deadline or the waiting task
/// changes. A timer left behind by an earlier deadline only wakes the loop for a turn that
/// finds nothing due.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Deadline {
    sleep: madsim::time::Sleep,
    armed: Option<(madsim::time::Instant, std::task::Waker)>,
}

impl Deadline {
    /// A deadline at `at` (at least a millisecond from now, as `sleep_until`).
    pub fn new(at: madsim::time::Instant) -> Self {
        Deadline {
            sleep: madsim::time::sleep_until(at),
            armed: None,
        }
    }

    /// When it falls due.
    pub fn at(&self) -> madsim::time::Instant {
        self.sleep.deadline()
    }

    /// Moves it to `at`, but at least a millisecond from now, as madsim's (and tokio's)
    /// `sleep_until` does: a deadline already past must not fire at once in every turn of
    /// a loop that does not move it (a shell waiting for a connection before its next
    /// operation would spin at one instant forever).
    pub fn set(&mut self, at: madsim::time::Instant) {
        let soonest = sim_instant() + Duration::from_millis(1);
        Pin::new(&mut self.sleep).reset(at.max(soonest));
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.sleep.is_elapsed() {
            self.armed = None;
            return Poll::Ready(());
        }
        let at = self.sleep.deadline();
        if let Some((armed_at, waker)) = &self.armed {
            if *armed_at == at && waker.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        let poll = Pin::new(&mut self.sleep).poll(cx);
        if poll.is_pending() {
            counters::count(|c| c.timers += 1);
            self.armed = Some((at, cx.waker().clone()));
        }
        poll
    }
}

/// The node's wall clock in epoch milliseconds — simulated, so record timestamps and
/// time-based retention are deterministic.
pub fn now_epoch_ms() -> i64 {
    madsim::time::TimeHandle::current()
        .now_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop that sets its deadline to an instant already past (nothing moved it) waits a
    /// millisecond per turn, as with `sleep_until`, instead of spinning at one instant.
    #[test]
    fn a_past_deadline_falls_due_a_millisecond_later() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(async {
            let start = madsim::time::Instant::now();
            let mut due = Deadline::new(start);
            for _ in 0..3 {
                due.set(start);
                (&mut due).await;
            }
            assert!(madsim::time::Instant::now() >= start + Duration::from_millis(3));
            due.set(madsim::time::Instant::now() + Duration::from_millis(50));
            (&mut due).await;
            assert!(madsim::time::Instant::now() >= start + Duration::from_millis(53));
        });
    }
}
