//! The server core in an in-memory ensemble: FIFO links, a model disk per server, crashes,
//! restarts and partitions — no runtime, no sockets. Each test names the ZAB or ZooKeeper
//! rule it checks.

use super::*;
use crate::zk::types::CreateMode;
use std::collections::VecDeque;

const TICK_MS: u64 = 100;

#[derive(Clone, Debug, Default)]
struct ModelDisk {
    accepted: Epoch,
    current: Epoch,
    snapshot: Option<Snapshot>,
    log: Vec<TxnRecord>,
}

#[derive(Debug, Default)]
struct Client {
    server: usize,
    inbox: Vec<ServerResponse>,
    open: bool,
}

struct Cluster {
    now: u64,
    legacy: ServerLegacy,
    servers: Vec<Option<ServerCore>>,
    disks: Vec<ModelDisk>,
    incarnations: Vec<u64>,
    links: BTreeMap<(usize, usize), VecDeque<PeerMessage>>,
    cut: BTreeSet<(usize, usize)>,
    clients: BTreeMap<ConnId, Client>,
    next_conn: ConnId,
    events: Vec<(usize, ZkServerEvent)>,
    /// Drop every proposal a server sends (to make it log something nobody else has).
    mute_proposals_from: Option<usize>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster::with_legacy(n, ServerLegacy::default())
    }

    fn with_legacy(n: usize, legacy: ServerLegacy) -> Cluster {
        let mut cluster = Cluster {
            now: 0,
            legacy,
            servers: (0..n).map(|_| None).collect(),
            disks: vec![ModelDisk::default(); n],
            incarnations: vec![0; n],
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
            clients: BTreeMap::new(),
            next_conn: 1,
            events: Vec::new(),
            mute_proposals_from: None,
        };
        for i in 0..n {
            cluster.start(i);
        }
        cluster
    }

    fn config(&self, i: usize) -> ServerConfig {
        ServerConfig {
            id: ServerId(i as u64 + 1),
            servers: (1..=self.servers.len() as u64).map(ServerId).collect(),
            tick_ms: TICK_MS,
            init_limit: 10,
            sync_limit: 5,
            snap_count: 20,
            incarnation: self.incarnations[i],
            legacy: self.legacy,
        }
    }

    fn start(&mut self, i: usize) {
        self.incarnations[i] += 1;
        let disk = &self.disks[i];
        let base = disk.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid);
        let recovered = Recovered {
            accepted_epoch: disk.accepted,
            current_epoch: disk.current,
            snapshot: disk.snapshot.clone(),
            log: disk
                .log
                .iter()
                .filter(|r| r.header.zxid > base)
                .cloned()
                .collect(),
        };
        let mut server = ServerCore::new(self.config(i), recovered, self.now);
        let actions = server.take_actions();
        self.servers[i] = Some(server);
        self.execute(i, actions);
    }

    fn crash(&mut self, i: usize) {
        self.servers[i] = None;
        self.links.retain(|(from, to), _| *from != i && *to != i);
        for (conn, client) in self.clients.iter_mut() {
            if client.server == i {
                client.open = false;
                let _ = conn;
            }
        }
        // Peers see the TCP connections break.
        for j in 0..self.servers.len() {
            if let Some(server) = self.servers[j].as_mut() {
                server.on_peer_lost(ServerId(i as u64 + 1), self.now);
                let actions = server.take_actions();
                self.execute(j, actions);
            }
        }
    }

    fn partition(&mut self, side: &[usize]) {
        let n = self.servers.len();
        for a in 0..n {
            for b in 0..n {
                if side.contains(&a) != side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
        self.links.retain(|link, _| !self.cut.contains(link));
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, msg } => {
                    let to = to.0 as usize - 1;
                    let muted = self.mute_proposals_from == Some(i)
                        && matches!(msg, PeerMessage::Proposal { .. });
                    if !muted && !self.cut.contains(&(i, to)) && self.servers[to].is_some() {
                        self.links.entry((i, to)).or_default().push_back(msg);
                    }
                }
                Action::Reply { conn, msg } => {
                    if let Some(client) = self.clients.get_mut(&conn) {
                        if client.open {
                            client.inbox.push(msg);
                        }
                    }
                }
                Action::CloseClient { conn } => {
                    if let Some(client) = self.clients.get_mut(&conn) {
                        client.open = false;
                    }
                }
                Action::AppendLog { records, .. } => {
                    let disk = &mut self.disks[i];
                    for record in records {
                        assert!(
                            disk.log
                                .last()
                                .is_none_or(|r| r.header.zxid < record.header.zxid),
                            "log appends in zxid order"
                        );
                        disk.log.push(record);
                    }
                }
                Action::TruncateLog { to } => self.disks[i].log.retain(|r| r.header.zxid <= to),
                Action::ResetLog => self.disks[i].log.clear(),
                Action::WriteSnapshot { snapshot } => self.disks[i].snapshot = Some(snapshot),
                Action::PersistEpochs { accepted, current } => {
                    self.disks[i].accepted = accepted;
                    self.disks[i].current = current;
                }
                Action::Announce(event) => self.events.push((i, event)),
            }
        }
    }

    /// Delivers every queued message, in a fixed order, until the links are empty.
    fn deliver(&mut self) {
        for _ in 0..100_000 {
            let Some((&(from, to), _)) = self.links.iter().find(|(_, q)| !q.is_empty()) else {
                return;
            };
            let msg = self
                .links
                .get_mut(&(from, to))
                .unwrap()
                .pop_front()
                .unwrap();
            if let Some(server) = self.servers[to].as_mut() {
                server.on_peer(ServerId(from as u64 + 1), msg, self.now);
                let actions = server.take_actions();
                self.execute(to, actions);
            }
        }
        panic!("messages never stopped flowing");
    }

    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            for i in 0..self.servers.len() {
                if let Some(server) = self.servers[i].as_mut() {
                    server.tick(self.now);
                    let actions = server.take_actions();
                    self.execute(i, actions);
                }
            }
            self.deliver();
        }
    }

    fn server(&self, i: usize) -> &ServerCore {
        self.servers[i].as_ref().expect("running")
    }

    fn leader(&self) -> Option<usize> {
        (0..self.servers.len()).find(|&i| {
            self.servers[i]
                .as_ref()
                .is_some_and(|s| s.state() == PeerState::Leading && s.is_serving())
        })
    }

    fn all_serving(&self) -> bool {
        self.servers.iter().flatten().all(|s| s.is_serving())
    }

    fn client_send(&mut self, conn: ConnId, request: ClientRequest) {
        let i = self.clients[&conn].server;
        if let Some(server) = self.servers[i].as_mut() {
            server.on_client(conn, request, self.now);
            let actions = server.take_actions();
            self.execute(i, actions);
        }
    }

    /// Opens a new session on server `i`; returns the connection and session.
    fn connect(&mut self, i: usize, timeout_ms: u32) -> (ConnId, SessionId) {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.clients.insert(
            conn,
            Client {
                server: i,
                inbox: Vec::new(),
                open: true,
            },
        );
        self.client_send(
            conn,
            ClientRequest::Connect {
                session: SessionId::NONE,
                timeout_ms,
                last_zxid: Zxid::ZERO,
                watches: WatchSet::default(),
            },
        );
        self.run(100);
        let session = self.clients[&conn].inbox.iter().find_map(|m| match m {
            ServerResponse::Connected { session, .. } => Some(*session),
            _ => None,
        });
        (
            conn,
            session.unwrap_or_else(|| panic!("no session: {:?}", self.clients[&conn].inbox)),
        )
    }

    /// Sends a request and runs until its reply arrives.
    fn call(&mut self, conn: ConnId, xid: u64, op: Op) -> Result<OpResult, OpError> {
        self.client_send(conn, ClientRequest::Request { xid: Xid(xid), op });
        for _ in 0..50 {
            self.run(10);
            if let Some(result) = self.clients[&conn].inbox.iter().find_map(|m| match m {
                ServerResponse::Reply { xid: x, result, .. } if *x == Xid(xid) => {
                    Some(result.clone())
                }
                _ => None,
            }) {
                return result;
            }
        }
        panic!("no reply to xid {xid}: {:?}", self.clients[&conn].inbox);
    }

    fn digests(&self) -> Vec<u64> {
        self.servers
            .iter()
            .flatten()
            .map(|s| s.tree().digest())
            .collect()
    }

    fn saw(&self, wanted: impl Fn(&ZkServerEvent) -> bool) -> bool {
        self.events.iter().any(|(_, event)| wanted(event))
    }
}

fn create(path: &str, data: &str, mode: CreateMode) -> Op {
    Op::Create {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode,
    }
}

#[test]
fn three_servers_elect_the_highest_id_and_all_serve() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    assert_eq!(c.leader(), Some(2), "equal histories: the highest id leads");
    assert!(c.all_serving());
    assert!(
        c.saw(|e| matches!(e, ZkServerEvent::Leading { .. }))
            && c.saw(|e| matches!(e, ZkServerEvent::Following { .. }))
    );
    assert!(
        c.disks
            .iter()
            .all(|d| d.current == Epoch(1) && d.accepted == Epoch(1)),
        "epoch 1 persisted everywhere"
    );
}

/// ZOOKEEPER-1817: a server outside the election tells a looker the vote it follows, in the
/// epoch it serves — the leader's and every follower's the same — so a restarted server
/// finds a quorum of agreeing votes however the others came to follow.
#[test]
fn the_established_ensemble_answers_a_looker_with_the_epoch_it_serves_in() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    assert!(c.all_serving());
    // Two more epochs: the leader crashes, then the next one.
    for _ in 0..2 {
        let leader = c.leader().expect("a leader");
        c.crash(leader);
        c.run(3_000);
        c.start(leader);
        c.run(3_000);
        assert!(c.all_serving(), "the restarted server joined");
    }
    let epoch = c.server(c.leader().expect("a leader")).current_epoch();
    assert_eq!(epoch, Epoch(3));
    let looker = Vote {
        leader: ServerId(9),
        zxid: Zxid::ZERO,
        epoch: Epoch(0),
    };
    for i in 0..3 {
        let server = c.servers[i].as_mut().expect("running");
        server.on_peer(
            ServerId(if i == 0 { 2 } else { 1 }),
            PeerMessage::Notification {
                round: 1,
                vote: looker,
                state: PeerState::Looking,
            },
            c.now,
        );
        let answers: Vec<Vote> = server
            .take_actions()
            .into_iter()
            .filter_map(|a| match a {
                Action::Send {
                    msg: PeerMessage::Notification { vote, .. },
                    ..
                } => Some(vote),
                _ => None,
            })
            .collect();
        assert_eq!(answers.len(), 1, "server {} answers the looker", i + 1);
        assert_eq!(
            answers[0].epoch,
            epoch,
            "server {} reports the epoch it serves in",
            i + 1
        );
    }
}

#[test]
fn a_write_through_a_follower_commits_on_every_replica() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (conn, _) = c.connect(0, 4_000);
    let result = c
        .call(conn, 1, create("/a", "x", CreateMode::Persistent))
        .unwrap();
    assert!(matches!(result, OpResult::Created { ref path, .. } if path == "/a"));
    c.run(200);
    let digests = c.digests();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas agree");
    assert!(c.disks.iter().all(|d| d
        .log
        .iter()
        .any(|r| matches!(&r.txn, Txn::Create { path, .. } if path == "/a"))));
    // A failing write takes a zxid and answers the error in order.
    assert_eq!(
        c.call(conn, 2, create("/a", "y", CreateMode::Persistent)),
        Err(OpError {
            error: crate::zk::ZkError::NodeExists,
            index: None
        })
    );
}

#[test]
fn reads_wait_behind_the_sessions_pending_writes() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (conn, _) = c.connect(1, 4_000);
    c.client_send(
        conn,
        ClientRequest::Request {
            xid: Xid(1),
            op: create("/k", "v", CreateMode::Persistent),
        },
    );
    c.client_send(
        conn,
        ClientRequest::Request {
            xid: Xid(2),
            op: Op::GetData {
                path: "/k".into(),
                watch: false,
            },
        },
    );
    c.run(200);
    let replies: Vec<&ServerResponse> = c.clients[&conn]
        .inbox
        .iter()
        .filter(|m| matches!(m, ServerResponse::Reply { .. }))
        .collect();
    assert_eq!(replies.len(), 2);
    assert!(matches!(
        replies[0],
        ServerResponse::Reply {
            xid: Xid(1),
            result: Ok(OpResult::Created { .. }),
            ..
        }
    ));
    assert!(
        matches!(
            replies[1],
            ServerResponse::Reply {
                xid: Xid(2),
                result: Ok(OpResult::Data { .. }),
                ..
            }
        ),
        "the read saw its own write"
    );
}

#[test]
fn the_leader_crashes_and_a_new_one_keeps_every_committed_write() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (conn, _) = c.connect(0, 8_000);
    for k in 0..5 {
        c.call(
            conn,
            k,
            create(&format!("/n{k}"), "v", CreateMode::Persistent),
        )
        .unwrap();
    }
    let old = c.leader().unwrap();
    c.crash(old);
    c.run(3_000);
    let new = c.leader().expect("a new leader");
    assert_ne!(new, old);
    assert!(c.server(new).current_epoch() > Epoch(1));
    let (conn, _) = c.connect(new, 8_000);
    for k in 0..5 {
        assert!(c
            .call(
                conn,
                10 + k,
                Op::GetData {
                    path: format!("/n{k}"),
                    watch: false
                }
            )
            .is_ok());
    }
    c.start(old);
    c.run(3_000);
    assert!(c.all_serving(), "the old leader rejoined as a follower");
    assert_eq!(c.leader(), Some(new));
    let digests = c.digests();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn no_quorum_no_commit() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let leader = c.leader().unwrap();
    let (conn, _) = c.connect(leader, 8_000);
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    c.partition(&[leader]);
    c.client_send(
        conn,
        ClientRequest::Request {
            xid: Xid(1),
            op: create("/lost", "x", CreateMode::Persistent),
        },
    );
    c.run(300);
    assert!(
        !c.clients[&conn]
            .inbox
            .iter()
            .any(|m| matches!(m, ServerResponse::Reply { .. })),
        "a write on a minority never commits"
    );
    c.run(2_000);
    assert_ne!(
        c.server(leader).state(),
        PeerState::Leading,
        "the isolated leader steps down after syncLimit"
    );
    assert!(!c.clients[&conn].open, "its clients are disconnected");
    let new = c.leader().expect("the majority elects");
    assert!(others.contains(&new));
    c.heal();
    c.run(3_000);
    assert!(c.all_serving());
    // The minority's uncommitted proposal was truncated away on rejoining.
    for disk in &c.disks {
        assert!(!disk
            .log
            .iter()
            .any(|r| matches!(&r.txn, Txn::Create { path, .. } if path == "/lost")));
    }
}

/// ZOOKEEPER-1154's setup: the leader logs a proposal nobody else receives, then the
/// ensemble moves on without it. On rejoining it must be truncated (TRUNC), not kept.
fn leader_with_an_orphan_proposal(legacy: ServerLegacy) -> Cluster {
    let mut c = Cluster::with_legacy(3, legacy);
    c.run(2_000);
    let (conn, _) = c.connect(0, 8_000);
    c.call(conn, 1, create("/base", "v", CreateMode::Persistent))
        .unwrap();
    let leader = c.leader().unwrap();
    let (lconn, _) = c.connect(leader, 8_000);
    c.mute_proposals_from = Some(leader);
    c.client_send(
        lconn,
        ClientRequest::Request {
            xid: Xid(1),
            op: create("/orphan", "x", CreateMode::Persistent),
        },
    );
    c.run(20);
    assert!(c.disks[leader]
        .log
        .iter()
        .any(|r| matches!(&r.txn, Txn::Create { path, .. } if path == "/orphan")));
    c.crash(leader);
    c.mute_proposals_from = None;
    c.run(3_000);
    let new = c.leader().unwrap();
    let (conn, _) = c.connect(new, 8_000);
    c.call(conn, 1, create("/after", "v", CreateMode::Persistent))
        .unwrap();
    c.start(leader);
    c.run(3_000);
    c
}

#[test]
fn a_rejoining_server_truncates_what_the_new_leader_never_had() {
    let c = leader_with_an_orphan_proposal(ServerLegacy::default());
    assert!(
        c.events
            .iter()
            .any(|(_, e)| matches!(e, ZkServerEvent::Sync { mode, .. } if mode == "trunc")),
        "TRUNC was used"
    );
    for disk in &c.disks {
        assert!(!disk
            .log
            .iter()
            .any(|r| matches!(&r.txn, Txn::Create { path, .. } if path == "/orphan")));
    }
    let digests = c.digests();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas agree");
}

#[test]
fn legacy_diff_only_sync_keeps_the_orphan_and_replicas_diverge() {
    let c = leader_with_an_orphan_proposal(ServerLegacy {
        diff_only_sync: true,
        ..ServerLegacy::default()
    });
    let holders = c
        .disks
        .iter()
        .filter(|d| {
            d.log
                .iter()
                .any(|r| matches!(&r.txn, Txn::Create { path, .. } if path == "/orphan"))
        })
        .count();
    assert_eq!(
        holders, 1,
        "the old leader kept a transaction no one else has"
    );
}

#[test]
fn a_follower_far_behind_gets_a_snapshot() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let follower = (0..3).find(|&i| Some(i) != c.leader()).unwrap();
    c.crash(follower);
    c.run(1_000);
    let serving = (0..3)
        .find(|&i| i != follower && c.servers[i].is_some())
        .unwrap();
    let (conn, _) = c.connect(serving, 30_000);
    for k in 0..60 {
        c.call(
            conn,
            k,
            create(&format!("/s{k}"), "v", CreateMode::Persistent),
        )
        .unwrap();
    }
    c.start(follower);
    c.run(3_000);
    assert!(
        c.events
            .iter()
            .any(|(_, e)| matches!(e, ZkServerEvent::Sync { mode, .. } if mode == "snap")),
        "beyond the DIFF window: SNAP"
    );
    assert!(c.all_serving());
    let digests = c.digests();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert!(c.disks[follower].snapshot.is_some());
}

#[test]
fn a_silent_session_expires_its_ephemerals_die_and_its_client_is_told() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (quiet, session) = c.connect(0, 400);
    c.call(quiet, 1, create("/eph", "x", CreateMode::Ephemeral))
        .unwrap();
    let (watcher, _) = c.connect(1, 60_000);
    assert!(matches!(
        c.call(
            watcher,
            1,
            Op::Exists {
                path: "/eph".into(),
                watch: true
            }
        ),
        Ok(OpResult::Exists { stat: Some(_) })
    ));
    // No pings from `quiet`: the leader expires it after its timeout.
    c.run(2_000);
    assert!(c.saw(|e| matches!(e, ZkServerEvent::SessionExpired { .. })));
    assert!(c.clients[&quiet]
        .inbox
        .iter()
        .any(|m| matches!(m, ServerResponse::SessionExpired { session: s } if *s == session)));
    assert!(!c.clients[&quiet].open);
    assert!(c.clients[&watcher].inbox.iter().any(|m| matches!(m, ServerResponse::Watch { event, .. } if event.event == EventType::NodeDeleted && event.path == "/eph")), "the watch fired");
    for i in 0..3 {
        assert!(c.server(i).tree().stat("/eph").is_none());
        assert!(c.server(i).tree().session_timeout(session).is_none());
    }
}

#[test]
fn a_session_kept_alive_by_pings_survives_and_resumes_on_another_server() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (conn, session) = c.connect(0, 600);
    c.call(conn, 1, create("/mine", "x", CreateMode::Ephemeral))
        .unwrap();
    for _ in 0..20 {
        c.client_send(conn, ClientRequest::Ping);
        c.run(100);
    }
    assert!(!c.saw(|e| matches!(e, ZkServerEvent::SessionExpired { .. })));
    // Reconnect to another server with the same session.
    let conn2 = c.next_conn;
    c.next_conn += 1;
    c.clients.insert(
        conn2,
        Client {
            server: 2,
            inbox: Vec::new(),
            open: true,
        },
    );
    let last = c.server(0).applied();
    c.client_send(
        conn2,
        ClientRequest::Connect {
            session,
            timeout_ms: 600,
            last_zxid: last,
            watches: WatchSet::default(),
        },
    );
    c.run(50);
    assert!(c.clients[&conn2]
        .inbox
        .iter()
        .any(|m| matches!(m, ServerResponse::Connected { session: s, .. } if *s == session)));
    assert!(c.server(2).tree().stat("/mine").is_some());
}

#[test]
fn a_server_behind_the_client_refuses_it() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let conn = 99;
    c.clients.insert(
        conn,
        Client {
            server: 0,
            inbox: Vec::new(),
            open: true,
        },
    );
    c.client_send(
        conn,
        ClientRequest::Connect {
            session: SessionId::NONE,
            timeout_ms: 4_000,
            last_zxid: Zxid(u64::MAX),
            watches: WatchSet::default(),
        },
    );
    assert!(matches!(
        c.clients[&conn].inbox[0],
        ServerResponse::Refused { .. }
    ));
}

#[test]
fn a_sync_answers_only_once_the_server_caught_up() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (writer, _) = c.connect(2, 8_000);
    let (reader, _) = c.connect(0, 8_000);
    c.call(writer, 1, create("/fresh", "1", CreateMode::Persistent))
        .unwrap();
    assert_eq!(
        c.call(reader, 1, Op::Sync { path: "/".into() }),
        Ok(OpResult::Synced)
    );
    assert!(c
        .call(
            reader,
            2,
            Op::GetData {
                path: "/fresh".into(),
                watch: false
            }
        )
        .is_ok());
}

#[test]
fn a_restarted_server_recovers_from_snapshot_and_log() {
    let mut c = Cluster::new(3);
    c.run(2_000);
    let (conn, _) = c.connect(0, 30_000);
    for k in 0..45 {
        c.call(
            conn,
            k,
            create(&format!("/r{k}"), "v", CreateMode::Persistent),
        )
        .unwrap();
    }
    c.run(200);
    let before = c.digests();
    for i in 0..3 {
        c.crash(i);
    }
    for i in 0..3 {
        c.start(i);
    }
    c.run(3_000);
    assert!(c.all_serving());
    assert!(
        c.disks.iter().all(|d| d.snapshot.is_some()),
        "snapCount 20: snapshots were taken"
    );
    // Recovery replays everything; after the new epoch's first commit trees match again.
    let (conn, _) = c.connect(0, 30_000);
    c.call(
        conn,
        100,
        create("/after-restart", "v", CreateMode::Persistent),
    )
    .unwrap();
    c.run(200);
    let after = c.digests();
    assert!(after.windows(2).all(|w| w[0] == w[1]));
    assert_ne!(before[0], after[0]);
    for k in 0..45 {
        assert!(c.server(1).tree().stat(&format!("/r{k}")).is_some());
    }
}

/// `E:C` → the zxid of the C-th transaction of epoch E.
fn table_zxid(case: &crate::testdata::Case, text: &str) -> Zxid {
    let parsed = text
        .split_once(':')
        .and_then(|(e, c)| Some(Zxid::new(Epoch(e.parse().ok()?), c.parse().ok()?)));
    parsed.unwrap_or_else(|| case.fail(format!("`{text}`: a zxid is epoch:counter")))
}

fn table_zxid_text(zxid: Zxid) -> String {
    format!("{}:{}", zxid.epoch().0, zxid.counter())
}

fn table_zxids(zxids: &[Zxid]) -> String {
    let zxids: Vec<String> = zxids.iter().map(|&z| table_zxid_text(z)).collect();
    format!("({})", zxids.join(","))
}

/// The leader's sync for a joining follower ([`sync_plan`]): DIFF, TRUNC (+DIFF), SNAP, and
/// the legacy `diff_only_sync` (ZOOKEEPER-1154), as a table.
#[test]
fn sync_mode_rules() {
    crate::testdata::run_file("src/zk/testdata/sync_mode.txt", |case| {
        if case.command != "sync" {
            case.fail("unknown command");
        }
        let zxid = |key: &str| table_zxid(case, &case.value::<String>(key));
        let base = zxid("base");
        let follower = zxid("follower");
        let logged: Vec<Zxid> = case
            .list::<String>("log")
            .iter()
            .map(|z| table_zxid(case, z))
            .collect();
        if logged.first().is_some_and(|&z| z <= base) || logged.windows(2).any(|w| w[0] >= w[1]) {
            case.fail("the log ascends after the base snapshot");
        }
        let after = |z: Zxid| -> Vec<Zxid> { logged.iter().copied().filter(|&l| l > z).collect() };
        match sync_plan(follower, base, &logged, case.has("diff-only-sync")) {
            SyncPlan::Diff { after: from } => format!("DIFF txns={}", table_zxids(&after(from))),
            SyncPlan::Trunc { to } => format!(
                "TRUNC to={} txns={}",
                table_zxid_text(to),
                table_zxids(&after(to))
            ),
            SyncPlan::Snap => "SNAP".into(),
        }
    });
}
