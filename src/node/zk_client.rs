//! The shell of an ensemble client: TCP connections, timers and the history around
//! [`ClientCore`] and its [`Workload`].
//!
//! Owns: opening and closing the connection the core asks for (each connection gets a
//! generation number; anything arriving from an older one is ignored), pacing the workload
//! (one operation in flight, at the configured rate), session churn, and recording every
//! call, outcome, session change and watch into the history — exactly what the client was
//! told, nothing more.

use super::net::{frame_writer, read_frame, send_frame, Hello};
use crate::sim::{run_rng, sim_now_us, Op as HistoryOp, Progress, Recorder, ZkOutcome};
use crate::zk::client::{ClientAction, ClientConfig, ClientCore, Outcome};
use crate::zk::proto::{ClientRequest, ServerResponse};
use crate::zk::workload::Workload;
use crate::zk::{ServerId, Xid};
use madsim::net::TcpStream;
use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How often the core is ticked.
const TICK: Duration = Duration::from_millis(20);
/// How long after its session ended the client opens a new one.
const NEW_SESSION_DELAY: Duration = Duration::from_millis(200);

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

/// What a connection to an ensemble server reports (see [`connect`]).
#[derive(Debug)]
pub enum ConnEvent {
    /// Up: send requests through `tx`.
    Open {
        /// The connection's generation.
        generation: u64,
        /// Requests go here.
        tx: UnboundedSender<ClientRequest>,
    },
    /// A response or notification arrived.
    Response {
        /// The connection's generation.
        generation: u64,
        /// What arrived.
        response: ServerResponse,
    },
    /// Failed to open, or closed.
    Closed {
        /// The connection's generation.
        generation: u64,
    },
}

fn now_ms() -> u64 {
    sim_now_us() / 1000
}

struct Connection {
    generation: u64,
    tx: Option<UnboundedSender<ClientRequest>>,
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
        let config = ClientConfig {
            servers: self.servers.iter().map(|(id, _)| *id).collect(),
            session_timeout_ms: u32::try_from(self.session_timeout.as_millis()).unwrap_or(u32::MAX),
            first_server: rng.gen_range(0..self.servers.len().max(1)),
        };
        let mut core = ClientCore::new(config, now_ms());
        let mut workload = Workload::new(self.index, self.registers);
        let (inbox_tx, mut inbox) = unbounded_channel::<ConnEvent>();
        // `now_ms` counts from the run's start; this instant is that start.
        let start = madsim::time::Instant::now() - Duration::from_millis(now_ms());
        let mut conn = Connection {
            generation: 0,
            tx: None,
        };
        let period = Duration::from_secs_f64(1.0 / f64::from(self.rate.max(1)));
        let mut in_flight: Option<Xid> = None;
        let mut next_op_ms = now_ms();
        let mut next_churn_ms = self.next_churn(&mut rng);
        let mut new_session_ms: Option<u64> = None;
        // A seeded phase: nodes' timers must not march in step with each other or with
        // the world's fault schedule, or faults could never land mid-operation.
        let mut next_tick = madsim::time::Instant::now() + TICK.mul_f64(rng.gen_range(0.0..1.0));

        loop {
            tokio::select! {
                biased;
                event = inbox.recv() => match event {
                    Some(ConnEvent::Open { generation, tx }) if generation == conn.generation => {
                        conn.tx = Some(tx);
                        core.on_connected(now_ms());
                    }
                    Some(ConnEvent::Response { generation, response }) if generation == conn.generation => {
                        core.on_response(response, now_ms());
                    }
                    Some(ConnEvent::Closed { generation }) if generation == conn.generation => {
                        conn.tx = None;
                        core.on_closed(now_ms());
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = madsim::time::sleep_until(next_tick.min(start + Duration::from_millis(next_op_ms))) => {
                    if madsim::time::Instant::now() >= next_tick {
                        next_tick += TICK;
                    }
                    let now = now_ms();
                    core.tick(now);
                    if new_session_ms.is_some_and(|at| now >= at) {
                        new_session_ms = None;
                        core.start_session(now);
                    }
                    if core.is_connected() && in_flight.is_none() {
                        if next_churn_ms.is_some_and(|at| now >= at) {
                            next_churn_ms = self.next_churn(&mut rng);
                            in_flight = Some(self.call(&mut core, crate::zk::Op::CloseSession));
                        } else if now >= next_op_ms {
                            let op = workload.next(&mut rng);
                            in_flight = Some(self.call(&mut core, op));
                            let jitter = rng.gen_range(0.5..1.5);
                            next_op_ms = now + period.mul_f64(jitter).as_millis() as u64;
                        }
                    }
                }
            }
            for action in core.take_actions() {
                match action {
                    ClientAction::Connect { server } => {
                        conn.generation += 1;
                        conn.tx = None;
                        let addr = self
                            .servers
                            .iter()
                            .find(|(id, _)| *id == server)
                            .map(|(_, a)| *a)
                            .expect("a known server");
                        madsim::task::spawn(connect(
                            addr,
                            conn.generation,
                            inbox_tx.clone(),
                            |e| e,
                        ));
                    }
                    ClientAction::Send(request) => {
                        if let Some(tx) = &conn.tx {
                            let _ = tx.send(request);
                        }
                    }
                    ClientAction::Disconnect => {
                        conn.generation += 1;
                        conn.tx = None;
                    }
                    ClientAction::Completed { xid, op, outcome } => {
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
                            session: core.session().0,
                            xid: xid.0,
                            outcome,
                        });
                    }
                    ClientAction::Watch { event, zxid } => {
                        self.history(HistoryOp::ZkWatch {
                            session: core.session().0,
                            zxid: zxid.0,
                            event,
                        });
                    }
                    ClientAction::SessionOpen {
                        session,
                        server,
                        zxid,
                        ..
                    } => {
                        self.history(HistoryOp::ZkSession {
                            session: session.0,
                            event: "open".into(),
                            server: Some(server.0),
                            zxid: Some(zxid.0),
                        });
                    }
                    ClientAction::SessionEnded { session, end } => {
                        workload.session_ended();
                        let event = end.name();
                        self.history(HistoryOp::ZkSession {
                            session: session.0,
                            event: event.into(),
                            server: None,
                            zxid: None,
                        });
                        new_session_ms = Some(now_ms() + NEW_SESSION_DELAY.as_millis() as u64);
                    }
                }
            }
        }
    }

    /// Records the call, then hands it to the core.
    fn call(&self, core: &mut ClientCore, op: crate::zk::Op) -> Xid {
        let session = core.session().0;
        let xid = core.submit(op.clone(), now_ms());
        self.history(HistoryOp::ZkCall {
            session,
            xid: xid.0,
            request: op,
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

/// Opens a connection to an ensemble server for generation `generation` and pumps it
/// until it closes, reporting through `inbox` (each event wrapped by `wrap`). Brokers use
/// it for their own sessions.
pub async fn connect<E>(
    addr: SocketAddr,
    generation: u64,
    inbox: UnboundedSender<E>,
    wrap: fn(ConnEvent) -> E,
) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        let _ = inbox.send(wrap(ConnEvent::Closed { generation }));
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    if send_frame(&mut writer, &Hello::Client).await.is_err() {
        let _ = inbox.send(wrap(ConnEvent::Closed { generation }));
        return;
    }
    let (tx, rx) = unbounded_channel();
    madsim::task::spawn(frame_writer(writer, rx));
    if inbox
        .send(wrap(ConnEvent::Open { generation, tx }))
        .is_err()
    {
        return;
    }
    while let Ok(Some(response)) = read_frame::<_, ServerResponse>(&mut reader).await {
        let event = ConnEvent::Response {
            generation,
            response,
        };
        if inbox.send(wrap(event)).is_err() {
            return;
        }
    }
    let _ = inbox.send(wrap(ConnEvent::Closed { generation }));
}
