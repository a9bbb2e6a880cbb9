//! The shell of an ensemble server: sockets, timers and disk around [`ServerCore`].
//!
//! Owns: opening the server's [`FileTxnSnapLog`] (which recovers the epochs, the newest
//! valid snapshot and the transaction log) and announcing what recovery found, the peer
//! mesh (one outbound TCP stream per peer, reconnected forever; inbound streams tagged with
//! the sender's incarnation so a restarted peer's old stream is recognised as stale), client
//! connections, ticking the core, and executing its actions in order. A durable action (log
//! append, truncation, snapshot, epoch files) goes to the store, and its simulated fsync
//! time is paid before the next action runs. No protocol or durability decisions are made
//! here.

use super::net::{frame_writer, read_frame, send_frame, write_batches, Hello};
use super::pay_sync_debt;
use crate::disk::SimDisk;
use crate::history::ShellEvent;
use crate::node::progress::Progress;
use crate::node::recorder::sim_instant;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::zk::proto::{ClientRequest, PeerMessage, ServerResponse};
use crate::zk::server::{Action, ConnId, ServerConfig, ServerCore, ZkServerEvent};
use crate::zk::store::{FileTxnSnapLog, StoreError};
use crate::zk::ServerId;
use madsim::net::{TcpListener, TcpStream};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often the core is ticked.
const TICK: Duration = Duration::from_millis(20);
/// Pause between connection attempts to a peer.
const RETRY: Duration = Duration::from_millis(100);

/// Everything a server node needs; shared by all its incarnations.
pub struct ZkServerNode {
    /// Node name, `zk-<id>`.
    pub name: String,
    /// The core's configuration (the incarnation is filled in at each start).
    pub config: ServerConfig,
    /// Every server's address.
    pub addrs: BTreeMap<ServerId, SocketAddr>,
    /// ZooKeeper's `forceSync`: fsync the transaction log before acknowledging.
    pub force_sync: bool,
    /// The node's disk.
    pub disk: SimDisk,
    /// Where to announce events.
    pub recorder: Recorder,
    /// Liveness probes.
    pub progress: Progress,
    /// How many times this node has started.
    pub incarnations: AtomicU64,
}

enum Inbox {
    Peer {
        from: ServerId,
        incarnation: u64,
        msg: PeerMessage,
    },
    PeerGone {
        from: ServerId,
        incarnation: u64,
    },
    OutboundLost {
        peer: ServerId,
    },
    ClientOpen {
        conn: ConnId,
        tx: UnboundedSender<ServerResponse>,
    },
    Client {
        conn: ConnId,
        request: ClientRequest,
    },
    ClientClosed {
        conn: ConnId,
    },
}

fn now_ms() -> u64 {
    sim_now_us() / 1000
}

impl ZkServerNode {
    /// One incarnation: recover, connect, serve until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut found = Vec::new();
        let opened = FileTxnSnapLog::open(self.disk.clone(), self.force_sync, &mut found);
        for event in found {
            self.recorder.event(&self.name, event);
        }
        let (store, recovered) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                self.recorder.event(
                    &self.name,
                    ShellEvent::RecoveryFailed {
                        error: error.to_string(),
                    },
                );
                return;
            }
        };
        pay_sync_debt(&self.disk).await;
        self.recorder.event(
            &self.name,
            ShellEvent::Recovered {
                incarnation,
                accepted_epoch: recovered.accepted_epoch,
                current_epoch: recovered.current_epoch,
                snapshot: recovered.snapshot.as_ref().map(|s| s.zxid),
                logged: recovered.log.len(),
                last_zxid: recovered.log.last().map(|r| r.header.zxid),
            },
        );

        let (inbox_tx, mut inbox) = unbounded_channel::<Inbox>();
        let me = self.config.id;
        let listener = match TcpListener::bind(self.addrs[&me]).await {
            Ok(listener) => listener,
            Err(error) => {
                self.recorder.event(
                    &self.name,
                    ShellEvent::ListenFailed {
                        error: error.to_string(),
                    },
                );
                return;
            }
        };
        madsim::task::spawn(accept_loop(listener, inbox_tx.clone()));
        let mut peers = BTreeMap::new();
        for (&peer, &addr) in &self.addrs {
            if peer == me {
                continue;
            }
            let (tx, rx) = unbounded_channel();
            peers.insert(peer, tx);
            let hello = Hello::Peer {
                from: me,
                incarnation,
            };
            madsim::task::spawn(peer_writer(addr, hello, rx, inbox_tx.clone(), peer));
        }

        let mut config = self.config.clone();
        config.incarnation = incarnation;
        let mut core = ServerCore::new(config, recovered, now_ms());
        let mut shell = Shell {
            node: &self,
            store,
            peers,
            clients: BTreeMap::new(),
            latest_inbound: BTreeMap::new(),
        };
        if let Err(error) = shell.execute(core.take_actions()).await {
            self.disk_failed(&error);
            return;
        }
        // A seeded phase, so servers' ticks do not march in step (see the client shell).
        let phase = TICK.mul_f64(rand::Rng::gen_range(&mut crate::node::run_rng(), 0.0..1.0));
        let mut next_tick = sim_instant() + phase;
        let mut due = crate::node::Deadline::new(next_tick);
        loop {
            due.set(next_tick);
            tokio::select! {
                biased;
                message = inbox.recv() => {
                    let Some(message) = message else { return };
                    shell.deliver(&mut core, message);
                }
                _ = &mut due => {
                    next_tick += TICK;
                    core.tick(now_ms());
                }
            }
            if let Err(error) = shell.execute(core.take_actions()).await {
                self.disk_failed(&error);
                return;
            }
        }
    }

    fn disk_failed(&self, error: &StoreError) {
        self.recorder.event(
            &self.name,
            ShellEvent::DiskFailed {
                error: error.to_string(),
            },
        );
    }
}

struct Shell<'a> {
    node: &'a ZkServerNode,
    store: FileTxnSnapLog<SimDisk>,
    peers: BTreeMap<ServerId, UnboundedSender<PeerMessage>>,
    clients: BTreeMap<ConnId, UnboundedSender<ServerResponse>>,
    /// The newest incarnation heard from each peer: older streams are stale.
    latest_inbound: BTreeMap<ServerId, u64>,
}

impl Shell<'_> {
    fn deliver(&mut self, core: &mut ServerCore, message: Inbox) {
        let now = now_ms();
        match message {
            Inbox::Peer {
                from,
                incarnation,
                msg,
            } => {
                let latest = self.latest_inbound.entry(from).or_insert(incarnation);
                if incarnation < *latest {
                    return;
                }
                *latest = incarnation;
                core.on_peer(from, msg, now);
            }
            Inbox::PeerGone { from, incarnation } => {
                if self.latest_inbound.get(&from) == Some(&incarnation) {
                    core.on_peer_lost(from, now);
                }
            }
            Inbox::OutboundLost { peer } => core.on_peer_lost(peer, now),
            Inbox::ClientOpen { conn, tx } => {
                self.clients.insert(conn, tx);
            }
            Inbox::Client { conn, request } => core.on_client(conn, request, now),
            Inbox::ClientClosed { conn } => {
                self.clients.remove(&conn);
                core.on_client_closed(conn, now);
            }
        }
    }

    /// Executes the core's actions in order; durable ones are synced and paid for first.
    async fn execute(&mut self, actions: Vec<Action>) -> Result<(), StoreError> {
        let node = self.node;
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    if let Some(tx) = self.peers.get(&to) {
                        let _ = tx.send(msg);
                    }
                }
                Action::Reply { conn, msg } => {
                    if let Some(tx) = self.clients.get(&conn) {
                        let _ = tx.send(msg);
                    }
                }
                Action::CloseClient { conn } => {
                    // Dropping the sender ends the writer, which closes the stream.
                    self.clients.remove(&conn);
                }
                Action::AppendLog { records, durable } => {
                    self.store.append(&records)?;
                    if durable {
                        self.store.commit()?;
                        pay_sync_debt(&node.disk).await;
                    }
                }
                Action::TruncateLog { to } => {
                    self.store.truncate(to)?;
                    pay_sync_debt(&node.disk).await;
                }
                Action::ResetLog => {
                    self.store.reset()?;
                    pay_sync_debt(&node.disk).await;
                }
                Action::WriteSnapshot { snapshot } => {
                    self.store.save_snapshot(&snapshot)?;
                    pay_sync_debt(&node.disk).await;
                }
                Action::PersistEpochs { accepted, current } => {
                    self.store.persist_epochs(accepted, current)?;
                    pay_sync_debt(&node.disk).await;
                }
                Action::Announce(event) => {
                    match &event {
                        ZkServerEvent::Leading { epoch, .. } => {
                            node.progress
                                .zk_state(&node.name, "leading", u64::from(epoch.0))
                        }
                        ZkServerEvent::Following { epoch, .. } => node.progress.zk_state(
                            &node.name,
                            "following",
                            epoch.map_or(0, |e| u64::from(e.0)),
                        ),
                        ZkServerEvent::Looking { .. } => {
                            node.progress.zk_state(&node.name, "looking", 0)
                        }
                        _ => {}
                    }
                    node.recorder.event(&node.name, event);
                }
            }
        }
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, inbox: UnboundedSender<Inbox>) {
    let next_conn = Arc::new(AtomicU64::new(1));
    while let Ok((stream, _)) = listener.accept().await {
        madsim::task::spawn(serve_connection(stream, inbox.clone(), next_conn.clone()));
    }
}

async fn serve_connection(
    stream: TcpStream,
    inbox: UnboundedSender<Inbox>,
    next_conn: Arc<AtomicU64>,
) {
    let (mut reader, writer) = tokio::io::split(stream);
    match read_frame::<_, Hello>(&mut reader).await {
        Ok(Some(Hello::Peer { from, incarnation })) => {
            while let Ok(Some(msg)) = read_frame::<_, PeerMessage>(&mut reader).await {
                if inbox
                    .send(Inbox::Peer {
                        from,
                        incarnation,
                        msg,
                    })
                    .is_err()
                {
                    return;
                }
            }
            let _ = inbox.send(Inbox::PeerGone { from, incarnation });
        }
        Ok(Some(Hello::Client)) => {
            let conn = next_conn.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = unbounded_channel();
            madsim::task::spawn(frame_writer::<_, ServerResponse>(writer, rx));
            if inbox.send(Inbox::ClientOpen { conn, tx }).is_err() {
                return;
            }
            while let Ok(Some(request)) = read_frame::<_, ClientRequest>(&mut reader).await {
                if inbox.send(Inbox::Client { conn, request }).is_err() {
                    return;
                }
            }
            let _ = inbox.send(Inbox::ClientClosed { conn });
        }
        _ => {}
    }
}

/// Keeps a stream open to one peer, forever; messages sent while the link is down are
/// dropped (the protocol resends what matters), and a broken link is reported.
async fn peer_writer(
    addr: SocketAddr,
    hello: Hello,
    mut rx: UnboundedReceiver<PeerMessage>,
    inbox: UnboundedSender<Inbox>,
    peer: ServerId,
) {
    loop {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(_) => {
                while rx.try_recv().is_ok() {}
                if rx.is_closed() && inbox.is_closed() {
                    return;
                }
                crate::node::sleep(RETRY).await;
                continue;
            }
        };
        if send_frame(&mut stream, &hello).await.is_err() {
            continue;
        }
        if write_batches(&mut stream, &mut rx).await.is_ok() {
            return;
        }
        let _ = inbox.send(Inbox::OutboundLost { peer });
    }
}
