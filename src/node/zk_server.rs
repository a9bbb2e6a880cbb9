//! The shell of an ensemble server: sockets, timers and disk around [`ServerCore`].
//!
//! Owns: recovering the core's state from disk (epoch files, the newest valid snapshot, the
//! transaction log on the log engine), the peer mesh (one outbound TCP stream per peer,
//! reconnected forever; inbound streams tagged with the sender's incarnation so a restarted
//! peer's old stream is recognised as stale), client connections, ticking the core, and
//! executing its actions in order. A durable action (log append, truncation, snapshot,
//! epoch files) is synced and its simulated fsync time paid before the next action runs.
//! No protocol decisions are made here.
//!
//! On disk (`<node>/version-2/`, after ZooKeeper's layout): `log/` (the transaction log: one
//! record per transaction, key = zxid as 8 big-endian bytes, value = the `TxnRecord` as
//! JSON), `snapshot.<zxid in hex>` (JSON of the data tree), `acceptedEpoch` and
//! `currentEpoch` (decimal).

use super::net::{read_frame, write_frame, Hello};
use super::pay_sync_debt;
use crate::disk::{read_whole, write_atomic, Disk, SimDisk};
use crate::history::ShellEvent;
use crate::log::{BatchBuilder, BatchMeta, Log, LogConfig, Offset};
use crate::node::progress::Progress;
use crate::node::recorder::{sim_now_us, Recorder};
use crate::zk::proto::{ClientRequest, PeerMessage, ServerResponse};
use crate::zk::server::{Action, ConnId, Recovered, ServerConfig, ServerCore, ZkServerEvent};
use crate::zk::tree::{DataTree, Snapshot};
use crate::zk::{Epoch, ServerId, TxnRecord, Zxid};
use madsim::net::{TcpListener, TcpStream};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often the core is ticked.
const TICK: Duration = Duration::from_millis(20);
/// Pause between connection attempts to a peer.
const RETRY: Duration = Duration::from_millis(100);
/// A flush that takes longer means the link is dead.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Snapshots kept on disk.
const SNAPSHOTS_KEPT: usize = 3;

const DATA_DIR: &str = "version-2";

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

/// The transaction log on the log engine, with the zxid of every record.
struct TxnLog {
    log: Log<SimDisk>,
    /// `(zxid, offset)` of every record, in order.
    index: Vec<(Zxid, Offset)>,
}

impl ZkServerNode {
    fn data(&self, name: &str) -> PathBuf {
        Path::new(DATA_DIR).join(name)
    }

    /// One incarnation: recover, connect, serve until killed.
    pub async fn run(self: Arc<Self>) {
        let incarnation = self.incarnations.fetch_add(1, Ordering::Relaxed) + 1;
        let (mut txn_log, recovered) = match self.recover() {
            Ok(state) => state,
            Err(error) => {
                self.recorder
                    .event(&self.name, ShellEvent::RecoveryFailed { error });
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
            txn_log: &mut txn_log,
            peers,
            clients: BTreeMap::new(),
            latest_inbound: BTreeMap::new(),
        };
        if let Err(error) = shell.execute(core.take_actions()).await {
            self.recorder
                .event(&self.name, ShellEvent::DiskFailed { error });
            return;
        }
        // A seeded phase, so servers' ticks do not march in step (see the client shell).
        let phase = TICK.mul_f64(rand::Rng::gen_range(&mut crate::node::run_rng(), 0.0..1.0));
        let mut next_tick = madsim::time::Instant::now() + phase;
        loop {
            tokio::select! {
                biased;
                message = inbox.recv() => {
                    let Some(message) = message else { return };
                    shell.deliver(&mut core, message);
                }
                _ = madsim::time::sleep_until(next_tick) => {
                    next_tick += TICK;
                    core.tick(now_ms());
                }
            }
            if let Err(error) = shell.execute(core.take_actions()).await {
                self.recorder
                    .event(&self.name, ShellEvent::DiskFailed { error });
                return;
            }
        }
    }

    /// Reads the epoch files, the newest valid snapshot and the transaction log.
    fn recover(&self) -> Result<(TxnLog, Recovered), String> {
        let disk = &self.disk;
        disk.create_dir_all(Path::new(DATA_DIR))
            .map_err(|e| e.to_string())?;
        let epoch = |name: &str| -> Result<Epoch, String> {
            let path = self.data(name);
            if !disk.exists(&path) {
                return Ok(Epoch(0));
            }
            let bytes = read_whole(disk, &path).map_err(|e| format!("{name}: {e}"))?;
            String::from_utf8_lossy(&bytes)
                .trim()
                .parse()
                .map(Epoch)
                .map_err(|_| {
                    format!(
                        "{name} holds {:?}, not an epoch",
                        String::from_utf8_lossy(&bytes)
                    )
                })
        };
        let accepted_epoch = epoch("acceptedEpoch")?;
        let current_epoch = epoch("currentEpoch")?;

        let mut snapshot = None;
        for name in self.snapshot_names()?.into_iter().rev() {
            let bytes = read_whole(disk, &self.data(&name)).map_err(|e| e.to_string())?;
            match serde_json::from_slice::<Snapshot>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|s| DataTree::from_snapshot(&s).map(|_| s))
            {
                Ok(s) => {
                    snapshot = Some(s);
                    break;
                }
                Err(error) => self.recorder.event(
                    &self.name,
                    ShellEvent::BadSnapshot {
                        file: name.to_string(),
                        error,
                    },
                ),
            }
        }

        let config = LogConfig {
            segment_bytes: 1 << 20,
            flush_interval_messages: None,
            retention_ms: None,
            ..LogConfig::default()
        };
        let (log, report) =
            Log::open(disk.clone(), &self.data("log"), config).map_err(|e| e.to_string())?;
        if report.truncated_at.is_some() {
            self.recorder
                .event(&self.name, ShellEvent::TxnLogRecovered { recovery: report });
        }
        let mut txn_log = TxnLog {
            log,
            index: Vec::new(),
        };
        let mut records = Vec::new();
        let mut next = txn_log.log.log_start_offset();
        let end = txn_log.log.log_end_offset();
        'read: while next < end {
            let batch = txn_log
                .log
                .read_records(next, 1 << 20)
                .map_err(|e| e.to_string())?;
            let Some(last) = batch.last() else { break };
            next = last.offset.plus(1);
            for record in batch {
                let parsed = record
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice::<TxnRecord>(v).ok())
                    .filter(|r| txn_log.index.last().is_none_or(|(z, _)| *z < r.header.zxid));
                let Some(parsed) = parsed else {
                    // A record the log engine found intact but that does not parse or is out
                    // of order: a bug. Say so, and drop it and everything after.
                    self.recorder.event(
                        &self.name,
                        ShellEvent::BadTxnRecord {
                            offset: record.offset,
                        },
                    );
                    txn_log
                        .log
                        .truncate_to(record.offset)
                        .map_err(|e| e.to_string())?;
                    break 'read;
                };
                txn_log.index.push((parsed.header.zxid, record.offset));
                records.push(parsed);
            }
        }
        let base = snapshot.as_ref().map_or(Zxid::ZERO, |s: &Snapshot| s.zxid);
        let log = records
            .into_iter()
            .filter(|r| r.header.zxid > base)
            .collect();
        Ok((
            txn_log,
            Recovered {
                accepted_epoch,
                current_epoch,
                snapshot,
                log,
            },
        ))
    }

    /// Snapshot file names, oldest first.
    fn snapshot_names(&self) -> Result<Vec<String>, String> {
        let mut names: Vec<String> = self
            .disk
            .list(Path::new(DATA_DIR))
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|n| n.starts_with("snapshot.") && !n.ends_with(".tmp"))
            .collect();
        names.sort();
        Ok(names)
    }
}

struct Shell<'a> {
    node: &'a ZkServerNode,
    txn_log: &'a mut TxnLog,
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
    async fn execute(&mut self, actions: Vec<Action>) -> Result<(), String> {
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
                    for record in records {
                        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
                        let mut batch = BatchBuilder::new(BatchMeta {
                            base_timestamp_ms: record.header.time_ms,
                            ..BatchMeta::default()
                        });
                        batch.push(
                            record.header.time_ms,
                            Some(&record.header.zxid.0.to_be_bytes()),
                            Some(&value),
                            &[],
                        );
                        let info = self
                            .txn_log
                            .log
                            .append(&mut batch)
                            .map_err(|e| e.to_string())?;
                        self.txn_log
                            .index
                            .push((record.header.zxid, info.base_offset));
                    }
                    if durable {
                        self.sync_log().await?;
                    }
                }
                Action::TruncateLog { to } => {
                    let first = self.txn_log.index.partition_point(|(z, _)| *z <= to);
                    if let Some(&(_, offset)) = self.txn_log.index.get(first) {
                        self.txn_log
                            .log
                            .truncate_to(offset)
                            .map_err(|e| e.to_string())?;
                        self.txn_log.index.truncate(first);
                    }
                    pay_sync_debt(&node.disk).await;
                }
                Action::ResetLog => {
                    let start = self.txn_log.log.log_start_offset();
                    self.txn_log
                        .log
                        .truncate_to(start)
                        .map_err(|e| e.to_string())?;
                    self.txn_log.index.clear();
                    pay_sync_debt(&node.disk).await;
                }
                Action::WriteSnapshot { snapshot } => {
                    let name = format!("snapshot.{:016x}", snapshot.zxid.0);
                    let bytes = serde_json::to_vec(&snapshot).map_err(|e| e.to_string())?;
                    write_atomic(&node.disk, &node.data(&name), &bytes)
                        .map_err(|e| e.to_string())?;
                    let names = node.snapshot_names()?;
                    for old in names
                        .iter()
                        .take(names.len().saturating_sub(SNAPSHOTS_KEPT))
                    {
                        node.disk
                            .remove(&node.data(old))
                            .map_err(|e| e.to_string())?;
                    }
                    pay_sync_debt(&node.disk).await;
                }
                Action::PersistEpochs { accepted, current } => {
                    write_atomic(
                        &node.disk,
                        &node.data("acceptedEpoch"),
                        format!("{}\n", accepted.0).as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
                    write_atomic(
                        &node.disk,
                        &node.data("currentEpoch"),
                        format!("{}\n", current.0).as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
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

    /// With `forceSync`, the appended records are durable before anything else happens.
    async fn sync_log(&mut self) -> Result<(), String> {
        if self.node.force_sync {
            self.txn_log.log.flush().map_err(|e| e.to_string())?;
        }
        pay_sync_debt(&self.node.disk).await;
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
            madsim::task::spawn(client_writer(writer, rx));
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

/// Writes responses to a client, a flush per batch; ends (closing the stream) when the
/// server drops the sender.
async fn client_writer<W: tokio::io::AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: UnboundedReceiver<ServerResponse>,
) {
    while let Some(first) = rx.recv().await {
        let mut ok = write_frame(&mut writer, &first).await.is_ok();
        while ok {
            match rx.try_recv() {
                Ok(msg) => ok = write_frame(&mut writer, &msg).await.is_ok(),
                Err(_) => break,
            }
        }
        if !ok || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
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
                madsim::time::sleep(RETRY).await;
                continue;
            }
        };
        if write_frame(&mut stream, &hello).await.is_err() || stream.flush().await.is_err() {
            continue;
        }
        loop {
            let Some(first) = rx.recv().await else { return };
            let mut ok = write_frame(&mut stream, &first).await.is_ok();
            while ok {
                match rx.try_recv() {
                    Ok(msg) => ok = write_frame(&mut stream, &msg).await.is_ok(),
                    Err(_) => break,
                }
            }
            ok = ok
                && matches!(
                    madsim::time::timeout(FLUSH_TIMEOUT, stream.flush()).await,
                    Ok(Ok(()))
                );
            if !ok {
                let _ = inbox.send(Inbox::OutboundLost { peer });
                break;
            }
        }
    }
}
