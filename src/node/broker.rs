//! The shell of a broker: sockets, the ensemble session, timers and the disk around
//! [`BrokerCore`].
//!
//! Owns: the listener (clients, followers and the controller connect to it), one outgoing
//! link per peer broker (requests queued while it opens; its loss reported to the core),
//! the broker's ensemble session (a [`ZkSession`]: a new session after one ends), ticking the core, paying simulated time for its fsyncs before
//! anything it decided leaves the node, and announcing its events. No protocol decisions.

use super::kafka_net::{open_link, serve, LinkEvent, ServerEvent};
use super::net::{node_addr, Hello, KIND_BROKER};
use super::pay_sync_debt;
use super::zk_session::{ConnEvent, ZkSession};
use crate::broker::proto::{Request, Response};
use crate::broker::server::{BrokerAction, BrokerConfig, BrokerCore};
use crate::broker::BrokerId;
use crate::disk::SimDisk;
use crate::history::{Announcement, ShellEvent};
use crate::node::progress::Progress;
use crate::node::recorder::sim_instant;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::node::run_rng;
use crate::zk::client::ClientEvent;
use crate::zk::{ServerId, SessionId, Xid};
use madsim::net::TcpListener;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How often the core is ticked.
const TICK: Duration = Duration::from_millis(10);

/// A broker node; shared by all its incarnations.
pub struct BrokerNode {
    /// `broker-<n>`.
    pub name: String,
    /// The broker's configuration (its incarnation is set per start).
    pub config: BrokerConfig,
    /// The ensemble.
    pub zk_servers: Vec<(ServerId, SocketAddr)>,
    /// The broker's session timeout (Kafka's `zookeeper.session.timeout.ms`).
    pub session_timeout: Duration,
    /// Its disk.
    pub disk: SimDisk,
    /// Where events go.
    pub recorder: Recorder,
    /// Liveness probes.
    pub progress: Progress,
    /// How many times it has started.
    pub incarnations: AtomicU64,
}

enum Inbox {
    Server(ServerEvent),
    Peer(LinkEvent),
    Zk(ConnEvent),
}

fn now_ms() -> u64 {
    sim_now_us() / 1000
}

/// One outgoing link to a peer broker.
#[derive(Default)]
struct Link {
    generation: u64,
    tx: Option<UnboundedSender<Request>>,
    connecting: bool,
    queued: Vec<Request>,
}

impl BrokerNode {
    fn announce(&self, announced: impl Into<Announcement>) {
        self.recorder.event(&self.name, announced);
    }

    /// One incarnation: open the listener, join the ensemble, serve until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        let me = self.config.id;
        self.announce(ShellEvent::BrokerStarted { incarnation });
        let mut rng = run_rng();
        let mut config = self.config.clone();
        config.incarnation = incarnation;
        let mut core = BrokerCore::new(config, self.disk.clone());
        let (inbox_tx, mut inbox) = unbounded_channel::<Inbox>();
        let listener = match TcpListener::bind(node_addr(KIND_BROKER, me.0)).await {
            Ok(l) => l,
            Err(e) => {
                self.announce(ShellEvent::ListenFailed {
                    error: e.to_string(),
                });
                return;
            }
        };
        madsim::task::spawn(serve(listener, inbox_tx.clone(), Inbox::Server));

        let mut zk = ZkSession::new(&self.zk_servers, self.session_timeout, &mut rng, now_ms());
        let mut zk_calls: BTreeMap<Xid, u64> = BTreeMap::new();
        let mut session = SessionId::NONE;

        let mut conns: BTreeMap<u64, UnboundedSender<Response>> = BTreeMap::new();
        let mut links: BTreeMap<BrokerId, Link> = BTreeMap::new();
        let mut next_tick = sim_instant() + TICK.mul_f64(rng.gen_range(0.0..1.0));

        let mut due = crate::node::Deadline::new(next_tick);
        loop {
            let mut ticked = false;
            due.set(next_tick);
            tokio::select! {
                biased;
                event = inbox.recv() => {
                    let Some(event) = event else { return };
                    let now = now_ms();
                    match event {
                        Inbox::Server(ServerEvent::Open { conn, tx, .. }) => {
                            conns.insert(conn, tx);
                        }
                        Inbox::Server(ServerEvent::Request { conn, request }) => {
                            core.on_request(conn, request, now);
                        }
                        Inbox::Server(ServerEvent::Closed { conn }) => {
                            conns.remove(&conn);
                        }
                        Inbox::Peer(LinkEvent::Open { link, generation, tx }) => {
                            let peer = BrokerId(link as u32);
                            if let Some(l) = links.get_mut(&peer).filter(|l| l.generation == generation) {
                                l.connecting = false;
                                for request in l.queued.drain(..) {
                                    let _ = tx.send(request);
                                }
                                l.tx = Some(tx);
                            }
                        }
                        Inbox::Peer(LinkEvent::Response { link, generation, response }) => {
                            let peer = BrokerId(link as u32);
                            if links.get(&peer).is_some_and(|l| l.generation == generation) {
                                core.on_peer_response(peer, response, now);
                            }
                        }
                        Inbox::Peer(LinkEvent::Closed { link, generation }) => {
                            let peer = BrokerId(link as u32);
                            if let Some(l) = links.get_mut(&peer).filter(|l| l.generation == generation) {
                                *l = Link { generation, ..Link::default() };
                                core.on_peer_closed(peer, now);
                            }
                        }
                        Inbox::Zk(event) => zk.on_connection(event, now),
                    }
                }
                _ = &mut due => {
                    next_tick += TICK;
                    ticked = true;
                    let now = now_ms();
                    zk.tick(now);
                    core.tick(now);
                }
            }
            // The ensemble session's actions.
            for event in zk.take_events(&inbox_tx, Inbox::Zk, now_ms()) {
                match event {
                    ClientEvent::Completed { xid, op, outcome } => {
                        tracing::debug!(broker = %self.name, ?op, ?outcome, "zk-completed");
                        if let Some(id) = zk_calls.remove(&xid) {
                            core.on_zk_outcome(id, outcome, now_ms());
                        }
                    }
                    ClientEvent::Watch { event, .. } => core.on_watch(&event),
                    ClientEvent::SessionOpen {
                        session: s,
                        server,
                        new,
                        ..
                    } => {
                        tracing::debug!(broker = %self.name, session = s.0, server = server.0, new, "zk-session-open");
                        if s != session {
                            session = s;
                            core.on_session_started(s, now_ms());
                        }
                    }
                    ClientEvent::SessionEnded { session: s, end } => {
                        tracing::debug!(broker = %self.name, session = s.0, end = end.name(), "zk-session-ended");
                        session = SessionId::NONE;
                        zk_calls.clear();
                        core.on_session_lost();
                    }
                }
            }
            // What the broker decided leaves only once its writes are durable.
            pay_sync_debt(&self.disk).await;
            let now = now_ms();
            core.after_change(now);
            for action in core.take_actions() {
                match action {
                    BrokerAction::Zk { id, op } => {
                        let xid = zk.submit(op, now);
                        zk_calls.insert(xid, id);
                    }
                    BrokerAction::SendToBroker { to, request } => {
                        let link = links.entry(to).or_default();
                        if let Some(tx) = &link.tx {
                            let _ = tx.send(request);
                        } else {
                            link.queued.push(request);
                            if !link.connecting {
                                link.connecting = true;
                                link.generation += 1;
                                let hello = Hello::Broker {
                                    from: me.0,
                                    incarnation,
                                };
                                open_link(
                                    u64::from(to.0),
                                    link.generation,
                                    node_addr(KIND_BROKER, to.0),
                                    hello,
                                    inbox_tx.clone(),
                                    Inbox::Peer,
                                );
                            }
                        }
                    }
                    BrokerAction::Respond { conn, response } => {
                        if let Some(tx) = conns.get(&conn) {
                            let _ = tx.send(response);
                        }
                    }
                    BrokerAction::Announce(announced) => self.announce(announced),
                }
            }
            // Liveness probes, refreshed every tick: a registered broker is serving.
            if ticked {
                if core.broker_epoch().is_some() {
                    self.progress.ready(&self.name);
                }
                self.progress.broker_state(
                    &self.name,
                    core.led_partitions(),
                    core.active_controller_epoch(),
                );
                self.progress
                    .coordinated_groups(&self.name, core.coordinated_groups());
            }
        }
    }
}
