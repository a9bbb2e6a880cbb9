//! The shell of an ensemble client: timers and the history around a [`ZkSession`] and its
//! [`Workload`].
//!
//! Owns: pacing the workload (one operation in flight, at the configured rate), session
//! churn, and recording every call, outcome, session change and watch into the history —
//! exactly what the client was told, nothing more. The connection to the ensemble is the
//! session's.

use super::zk_session::{ConnEvent, ZkSession};
use crate::history::{Op as HistoryOp, ZkOutcome};
use crate::node::progress::Progress;
use crate::node::recorder::sim_instant;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::node::run_rng;
use crate::zk::client::{ClientEvent, Outcome};
use crate::zk::workload::Workload;
use crate::zk::{ServerId, Xid};
use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::unbounded_channel;

/// How often the core is ticked.
const TICK: Duration = Duration::from_millis(20);

/// Everything a client node needs; shared by all its incarnations.
pub struct ZkClientNode {
    /// Node name, `zk-client-<n>`.
    pub name: String,
    /// 1-based client number (makes its register values unique).
    pub index: u32,
    /// The ensemble.
    pub servers: Vec<(ServerId, SocketAddr)>,
    /// Operations per simulated second.
    pub rate: u32,
    /// Registers the workload writes.
    pub registers: u32,
    /// The session timeout asked for.
    pub session_timeout: Duration,
    /// Mean time between closing the session and opening a new one, if churning.
    pub churn: Option<Duration>,
    /// Where the history goes.
    pub recorder: Recorder,
    /// Liveness probes.
    pub progress: Progress,
    /// How many times this node has started.
    pub incarnations: AtomicU64,
}

fn now_ms() -> u64 {
    sim_now_us() / 1000
}

impl ZkClientNode {
    fn history(&self, op: HistoryOp) {
        self.recorder.history(&self.name, op);
    }

    /// One incarnation: a fresh process with no session, running the workload until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        self.history(HistoryOp::ZkStart { incarnation });
        let mut rng = run_rng();
        let mut session = ZkSession::new(&self.servers, self.session_timeout, &mut rng, now_ms());
        let mut workload = Workload::new(self.index, self.registers);
        let (inbox_tx, mut inbox) = unbounded_channel::<ConnEvent>();
        // `now_ms` counts from the run's start; this instant is that start.
        let start = sim_instant() - Duration::from_millis(now_ms());
        let period = Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)));
        let mut in_flight: Option<Xid> = None;
        let mut next_op_ms = now_ms();
        let mut next_churn_ms = self.next_churn(&mut rng);
        // A seeded phase: nodes' timers must not march in step with each other or with
        // the world's fault schedule, or faults could never land mid-operation.
        let mut next_tick = sim_instant() + TICK.mul_f64(rng.gen_range(0.0..1.0));

        let mut due =
            crate::node::Deadline::new(next_tick.min(start + Duration::from_millis(next_op_ms)));
        loop {
            due.set(next_tick.min(start + Duration::from_millis(next_op_ms)));
            tokio::select! {
                biased;
                event = inbox.recv() => {
                    let Some(event) = event else { return };
                    session.on_connection(event, now_ms());
                }
                _ = &mut due => {
                    if sim_instant() >= next_tick {
                        next_tick += TICK;
                    }
                    let now = now_ms();
                    session.tick(now);
                    if session.is_connected() && in_flight.is_none() {
                        if next_churn_ms.is_some_and(|at| now >= at) {
                            next_churn_ms = self.next_churn(&mut rng);
                            in_flight = Some(self.call(&mut session, crate::zk::Op::CloseSession));
                        } else if now >= next_op_ms {
                            let op = workload.next(&mut rng);
                            in_flight = Some(self.call(&mut session, op));
                            let jitter = rng.gen_range(0.5..1.5);
                            next_op_ms = now + period.mul_f64(jitter).as_millis() as u64;
                        }
                    }
                }
            }
            for event in session.take_events(&inbox_tx, |e| e, now_ms()) {
                match event {
                    ClientEvent::Completed { xid, op, outcome } => {
                        if in_flight == Some(xid) {
                            in_flight = None;
                        }
                        workload.completed(&op, &outcome);
                        let outcome = match outcome {
                            Outcome::Done {
                                result: Ok(result),
                                zxid,
                            } => {
                                self.progress.acked(&self.name);
                                ZkOutcome::Ok {
                                    zxid: zxid.0,
                                    result,
                                }
                            }
                            Outcome::Done {
                                result: Err(error),
                                zxid,
                            } => {
                                self.progress.acked(&self.name);
                                ZkOutcome::Fail {
                                    zxid: zxid.0,
                                    error,
                                }
                            }
                            Outcome::Unknown { error } => ZkOutcome::Unknown { error },
                            Outcome::NotSent { error } => ZkOutcome::NotSent { error },
                        };
                        self.history(HistoryOp::ZkReturn {
                            session: session.session().0,
                            xid: xid.0,
                            outcome: Box::new(outcome),
                        });
                    }
                    ClientEvent::Watch { event, zxid } => {
                        self.history(HistoryOp::ZkWatch {
                            session: session.session().0,
                            zxid: zxid.0,
                            event,
                        });
                    }
                    ClientEvent::SessionOpen {
                        session: opened,
                        server,
                        zxid,
                        ..
                    } => {
                        self.history(HistoryOp::ZkSession {
                            session: opened.0,
                            event: "open".into(),
                            server: Some(server.0),
                            zxid: Some(zxid.0),
                        });
                    }
                    ClientEvent::SessionEnded {
                        session: ended,
                        end,
                    } => {
                        workload.session_ended();
                        self.history(HistoryOp::ZkSession {
                            session: ended.0,
                            event: end.name().into(),
                            server: None,
                            zxid: None,
                        });
                    }
                }
            }
        }
    }

    /// Records the call, then hands it to the session.
    fn call(&self, session: &mut ZkSession, op: crate::zk::Op) -> Xid {
        let id = session.session().0;
        let xid = session.submit(op.clone(), now_ms());
        self.history(HistoryOp::ZkCall {
            session: id,
            xid: xid.0,
            request: Box::new(op),
        });
        xid
    }

    fn next_churn(&self, rng: &mut impl Rng) -> Option<u64> {
        self.churn.map(|mean| {
            let wait = mean.mul_f64(rng.gen_range(0.5..1.5)).as_millis();
            now_ms().saturating_add(u64::try_from(wait).unwrap_or(u64::MAX))
        })
    }
}
