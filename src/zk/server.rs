//! A server of the ensemble: election, ZAB (discovery, sync, broadcast), sessions and
//! client requests, as one sans-IO state machine.
//!
//! Owns: the server's protocol state. The shell feeds it peer messages, client requests,
//! lost connections and ticks, each with the current time; it answers with [`Action`]s that
//! the shell executes **in order**, each durable action (log append, truncation, snapshot,
//! epoch files) completing before the next action starts. That ordering is the protocol's
//! durability argument: an `Ack` emitted after an `AppendLog` is sent only once the
//! proposal is synced, which is what ZAB's "an ACK means the proposal is on disk" requires.
//!
//! Phases (ZAB, as ZooKeeper implements it):
//! - **Election** (`election.rs`): LOOKING until a leader is decided.
//! - **Discovery**: followers send FOLLOWERINFO (accepted epoch, last zxid); with a quorum,
//!   the leader picks a new epoch above every accepted one (LEADERINFO); followers accept it
//!   durably and answer ACKEPOCH with their history's credentials. A leader that finds a
//!   follower with a newer history gives up.
//! - **Sync**: per follower, the leader sends DIFF (what it misses), TRUNC (drop what the
//!   leader does not have, then diff) or SNAP (its tree, when the follower is behind its
//!   in-memory log), then NEWLEADER. The follower makes the sync durable, persists the new
//!   current epoch, and ACKs. With a quorum of ACKs the leader's whole log is committed, it
//!   sends UPTODATE, and starts proposing.
//! - **Broadcast**: writes are validated by the leader on its speculative tree (every
//!   proposal applied) into a transaction with the next zxid, logged, and proposed; a
//!   follower ACKs once its log holds it durably; a quorum of durable copies commits it, in
//!   order; every server applies committed transactions and answers its own clients.
//!
//! Sessions: the leader tracks each session's deadline, pushed back by pings its followers
//! report, and expires a silent session with a replicated CloseSession transaction (which
//! deletes its ephemerals and fires watches). Clients get their replies in request order
//! per session (reads wait behind that session's pending writes). Reads are served by the
//! connected server from its applied tree.
//!
//! Legacy switches (bug-zoo.md), each a marked branch:
//! - `diff_only_sync` (ZOOKEEPER-1154): sync sends DIFF where TRUNC is needed.
//! - `ack_before_sync` (ZOOKEEPER-4646): a follower persists the new epoch and ACKs
//!   NEWLEADER before the synced transactions are durable (they are appended without an
//!   fsync, which comes only with the next durable append).
//!
//! Simplifications vs ZooKeeper: no observers, no dynamic reconfiguration, no read-only
//! mode, no session moved errors, no ACLs; the DIFF window is the transactions since the
//! previous snapshot; a follower that loses its leader or sees a gap goes back to election.

use super::election::{Decision, Election};
use super::proto::{
    ClientRequest, ForwardedRequest, PeerMessage, PeerState, ServerResponse, SyncMode, Vote,
    WatchSet,
};
use super::tree::{DataTree, Snapshot, WatchManager};
use super::types::{
    Epoch, EventType, Op, OpError, OpResult, ServerId, SessionId, Txn, TxnHeader, TxnRecord,
    WatchedEvent, Xid, Zxid,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A client connection, numbered by the shell.
pub type ConnId = u64;

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send to a peer (dropped if the link is down: the protocol tolerates loss).
    Send {
        /// The peer.
        to: ServerId,
        /// The message.
        msg: PeerMessage,
    },
    /// Send to a client connection.
    Reply {
        /// The connection.
        conn: ConnId,
        /// The message.
        msg: ServerResponse,
    },
    /// Close a client connection (after sending what was queued).
    CloseClient {
        /// The connection.
        conn: ConnId,
    },
    /// Append to the transaction log; with `durable`, make it (and everything appended
    /// before) durable before the next action.
    AppendLog {
        /// Records, in zxid order, after the log's last.
        records: Vec<TxnRecord>,
        /// Sync before going on (always, except the legacy `ack_before_sync` path).
        durable: bool,
    },
    /// Durably drop every logged record after `to`.
    TruncateLog {
        /// The last zxid to keep.
        to: Zxid,
    },
    /// Durably drop every logged record (a snapshot replaces them).
    ResetLog,
    /// Durably write a snapshot.
    WriteSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// Durably write the epoch files.
    PersistEpochs {
        /// The accepted epoch.
        accepted: Epoch,
        /// The current epoch.
        current: Epoch,
    },
    /// Announce an event (role changes, syncs, expiries) to the run's record.
    Announce(ZkServerEvent),
}

/// What an ensemble server announces (node `zk-<n>`). Serialized as
/// `{"kind": <kebab-case name>, "detail": {fields}}`; server ids, zxids, epochs and sessions
/// are numbers.
///
/// | kind | detail | when | read by |
/// |---|---|---|---|
/// | `looking` | `reason`, `round`, `last_zxid`, `epoch` (its current epoch) | it went back to leader election | `zk-replica-agreement` (a role ends); the world's probes |
/// | `elected` | `leader`, `round` | the election decided | timeline |
/// | `leading` | `epoch`, `last_zxid`, `followers` | as leader it established `epoch` with a quorum | `zk-replica-agreement`, `converges`; the world's probes |
/// | `following` | `leader`, `epoch` (null if none yet), `applied` | as follower it synced and serves | `zk-replica-agreement`, `converges`; the world's probes |
/// | `new-epoch` | `epoch`, `followers` | as leader it proposed a new epoch | timeline |
/// | `sync` | `follower`, `mode` (`diff`, `trunc`, `snap`), `follower_zxid`, `leader_zxid`, `txns` | as leader it synced a follower | timeline |
/// | `synced` | `mode`, `from`, `txns` | as follower it applied a sync | timeline |
/// | `truncated-applied` | `to`, `applied` | a sync dropped applied transactions (a committed one was lost) | timeline |
/// | `bad-snapshot` | `error` | the leader sent a snapshot that is not a tree | timeline |
/// | `learner-lost` | `follower` | as leader it lost a follower | timeline |
/// | `session-expired` | `session` | as leader it expired a session | `zk-ephemeral-lifetime` reads the history instead |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum ZkServerEvent {
    /// It went back to leader election.
    Looking {
        /// Why.
        reason: String,
        /// Its election round.
        round: u64,
        /// Its last logged zxid.
        last_zxid: Zxid,
        /// Its current epoch.
        epoch: Epoch,
    },
    /// The election decided.
    Elected {
        /// The leader voted for.
        leader: ServerId,
        /// The round it was decided in.
        round: u64,
    },
    /// As leader it established `epoch` with a quorum.
    Leading {
        /// The epoch it leads.
        epoch: Epoch,
        /// Its last logged zxid.
        last_zxid: Zxid,
        /// The followers established with it.
        followers: Vec<ServerId>,
    },
    /// As follower it synced and serves.
    Following {
        /// Its leader.
        leader: ServerId,
        /// The epoch it follows in.
        epoch: Option<Epoch>,
        /// The zxid it applied up to.
        applied: Zxid,
    },
    /// As leader it proposed a new epoch to these followers.
    NewEpoch {
        /// The epoch.
        epoch: Epoch,
        /// The followers.
        followers: Vec<ServerId>,
    },
    /// As leader it synced a follower.
    Sync {
        /// The follower.
        follower: ServerId,
        /// `diff`, `trunc` or `snap`.
        mode: String,
        /// The follower's last zxid.
        follower_zxid: Zxid,
        /// The leader's last zxid.
        leader_zxid: Zxid,
        /// Transactions sent after the diff, truncation or snapshot.
        txns: usize,
    },
    /// As follower it applied a sync.
    Synced {
        /// `diff`, `trunc` or `snap`.
        mode: String,
        /// Its last logged zxid before.
        from: Zxid,
        /// Transactions received.
        txns: usize,
    },
    /// A sync dropped applied transactions: a committed transaction was lost.
    TruncatedApplied {
        /// Where the log was cut.
        to: Zxid,
        /// What it had applied.
        applied: Zxid,
    },
    /// The leader sent a snapshot that is not a tree.
    BadSnapshot {
        /// Why not.
        error: String,
    },
    /// As leader it lost a follower.
    LearnerLost {
        /// The follower.
        follower: ServerId,
    },
    /// As leader it expired a session.
    SessionExpired {
        /// The session.
        session: SessionId,
    },
}

/// Legacy behaviours kept behind switches (bug-zoo.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerLegacy {
    /// ZOOKEEPER-1154: DIFF where TRUNC is needed.
    pub diff_only_sync: bool,
    /// ZOOKEEPER-4646: persist the epoch and ACK NEWLEADER before the sync is durable.
    pub ack_before_sync: bool,
}

/// A server's configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This server.
    pub id: ServerId,
    /// Every server of the ensemble, this one included.
    pub servers: Vec<ServerId>,
    /// ZooKeeper's `tickTime`.
    pub tick_ms: u64,
    /// Ticks a follower may take to connect and sync (`initLimit`).
    pub init_limit: u64,
    /// Ticks a follower may be silent (`syncLimit`).
    pub sync_limit: u64,
    /// A snapshot every this many applied transactions (ZooKeeper's `snapCount`).
    pub snap_count: u64,
    /// How many times this server has started: makes session ids unique.
    pub incarnation: u64,
    /// Legacy switches.
    pub legacy: ServerLegacy,
}

/// ZooKeeper's `tickTime` of the sample configuration every deployment starts from.
pub const DEFAULT_TICK_MS: u64 = 2_000;
/// `initLimit` of the sample configuration.
pub const DEFAULT_INIT_LIMIT: u64 = 10;
/// `syncLimit` of the sample configuration.
pub const DEFAULT_SYNC_LIMIT: u64 = 5;
/// ZooKeeper's default `snapCount`: transactions between snapshots.
pub const DEFAULT_SNAP_COUNT: u64 = 100_000;

impl Default for ServerConfig {
    /// A one-server ensemble with ZooKeeper's defaults.
    fn default() -> Self {
        ServerConfig {
            id: ServerId(1),
            servers: vec![ServerId(1)],
            tick_ms: DEFAULT_TICK_MS,
            init_limit: DEFAULT_INIT_LIMIT,
            sync_limit: DEFAULT_SYNC_LIMIT,
            snap_count: DEFAULT_SNAP_COUNT,
            incarnation: 0,
            legacy: ServerLegacy::default(),
        }
    }
}

impl ServerConfig {
    fn min_session_timeout_ms(&self) -> u32 {
        ticks_ms(2, self.tick_ms)
    }

    fn max_session_timeout_ms(&self) -> u32 {
        ticks_ms(20, self.tick_ms)
    }

    fn heartbeat_ms(&self) -> u64 {
        (self.tick_ms / 2).max(1)
    }
}

/// `ticks` × `tick_ms` as a session timeout, saturating (the scenario bounds `tickTime`,
/// but a timeout must not wrap to a small one if that bound is ever raised).
fn ticks_ms(ticks: u64, tick_ms: u64) -> u32 {
    u32::try_from(ticks.saturating_mul(tick_ms)).unwrap_or(u32::MAX)
}

/// What a restarting server read back from its disk.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The `acceptedEpoch` file.
    pub accepted_epoch: Epoch,
    /// The `currentEpoch` file.
    pub current_epoch: Epoch,
    /// The newest valid snapshot.
    pub snapshot: Option<Snapshot>,
    /// Logged transactions after the snapshot, in zxid order.
    pub log: Vec<TxnRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LearnerPhase {
    /// Sent FOLLOWERINFO; waiting for the new epoch.
    Info,
    /// Acknowledged the new epoch; waiting for its sync.
    EpochAcked,
    /// Sync and NEWLEADER sent; gets proposals and commits from now on.
    Synced,
    /// Acknowledged NEWLEADER: counts toward quorums.
    Established,
}

#[derive(Clone, Debug)]
struct Learner {
    accepted_epoch: Epoch,
    last_zxid: Zxid,
    phase: LearnerPhase,
    acked: Zxid,
    last_heard_ms: u64,
}

#[derive(Clone, Debug)]
struct Leader {
    vote: Vote,
    round: u64,
    started_ms: u64,
    /// The new epoch, once a quorum reported in.
    epoch: Option<Epoch>,
    established: bool,
    learners: BTreeMap<ServerId, Learner>,
    counter: u32,
    committed: Zxid,
    /// The committed tree with every proposal applied: where writes are validated.
    spec: Option<DataTree>,
    deadlines: BTreeMap<SessionId, u64>,
    closing: BTreeSet<SessionId>,
    next_ping_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FollowerPhase {
    Discovery,
    Syncing,
    /// NEWLEADER acknowledged: proposals are logged; waiting for UPTODATE.
    Synced,
    Serving,
}

#[derive(Clone, Debug)]
struct Follower {
    leader: ServerId,
    vote: Vote,
    round: u64,
    epoch: Option<Epoch>,
    phase: FollowerPhase,
    last_heard_ms: u64,
    next_info_ms: u64,
    committed: Zxid,
    touched: BTreeSet<SessionId>,
    /// Legacy `ack_before_sync`: the sync's disk actions, held until after the ACK.
    deferred: Vec<Action>,
}

#[derive(Clone, Debug)]
enum Role {
    Looking(Election),
    Following(Follower),
    Leading(Box<Leader>),
}

#[derive(Clone, Debug)]
enum Opening {
    Create {
        session: SessionId,
        watches: WatchSet,
        last_zxid: Zxid,
    },
    Revalidate {
        session: SessionId,
        watches: WatchSet,
        last_zxid: Zxid,
    },
}

#[derive(Clone, Debug, Default)]
struct Conn {
    session: Option<SessionId>,
    opening: Option<Opening>,
}

#[derive(Clone, Debug)]
enum Pending {
    Write {
        xid: Xid,
        done: Option<(Zxid, Result<OpResult, OpError>)>,
    },
    Read {
        xid: Xid,
        op: Op,
    },
    Sync {
        xid: Xid,
        until: Option<Zxid>,
    },
}

/// One server of the ensemble.
pub struct ServerCore {
    config: ServerConfig,
    quorum: usize,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// The snapshot the in-memory log follows.
    base: Snapshot,
    /// The newest snapshot taken since `base` (becomes `base` at the next one).
    latest_snapshot: Option<Snapshot>,
    applied_since_snapshot: u64,
    tree: DataTree,
    /// Every logged transaction after `base`, in zxid order.
    log: VecDeque<TxnRecord>,
    role: Role,
    round: u64,
    conns: BTreeMap<ConnId, Conn>,
    by_session: BTreeMap<SessionId, ConnId>,
    queues: BTreeMap<SessionId, VecDeque<Pending>>,
    watches: WatchManager,
    session_counter: u64,
    now_ms: u64,
    out: Vec<Action>,
}

impl ServerCore {
    /// A server starting from what it recovered from disk; it begins LOOKING.
    pub fn new(config: ServerConfig, recovered: Recovered, now_ms: u64) -> ServerCore {
        assert!(
            config.servers.contains(&config.id),
            "a server is part of its ensemble"
        );
        let tree = match &recovered.snapshot {
            Some(snapshot) => DataTree::from_snapshot(snapshot)
                .unwrap_or_else(|e| panic!("the shell handed over an invalid snapshot: {e}")),
            None => DataTree::new(),
        };
        let base = recovered
            .snapshot
            .clone()
            .unwrap_or_else(|| tree.snapshot());
        let mut last = base.zxid;
        for record in &recovered.log {
            assert!(record.header.zxid > last, "recovered log out of zxid order");
            last = record.header.zxid;
        }
        let first_vote = Vote {
            leader: config.id,
            zxid: last,
            epoch: recovered.current_epoch,
        };
        let (placeholder, _) = Election::start(config.id, &config.servers, 0, first_vote, now_ms);
        let mut server = ServerCore {
            quorum: config.servers.len() / 2 + 1,
            config,
            accepted_epoch: recovered.accepted_epoch,
            current_epoch: recovered.current_epoch,
            base,
            latest_snapshot: None,
            applied_since_snapshot: 0,
            tree,
            log: recovered.log.into_iter().collect(),
            // Replaced at once by `look`, which starts round 1 and announces it.
            role: Role::Looking(placeholder),
            round: 0,
            conns: BTreeMap::new(),
            by_session: BTreeMap::new(),
            queues: BTreeMap::new(),
            watches: WatchManager::default(),
            session_counter: 0,
            now_ms,
            out: Vec::new(),
        };
        server.look("started");
        server
    }

    /// The actions produced so far; the shell executes them in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    // ----- what the shell and the world may ask ------------------------------------------

    /// The newest logged zxid.
    pub fn last_logged(&self) -> Zxid {
        self.log.back().map_or(self.base.zxid, |r| r.header.zxid)
    }

    /// The last applied zxid.
    pub fn applied(&self) -> Zxid {
        self.tree.last_zxid()
    }

    /// The current epoch (of the last NEWLEADER this server took part in).
    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    /// LOOKING, FOLLOWING or LEADING.
    pub fn state(&self) -> PeerState {
        match self.role {
            Role::Looking(_) => PeerState::Looking,
            Role::Following(_) => PeerState::Following,
            Role::Leading(_) => PeerState::Leading,
        }
    }

    /// Whether it answers clients (an established leader, or a follower after UPTODATE).
    pub fn is_serving(&self) -> bool {
        match &self.role {
            Role::Looking(_) => false,
            Role::Following(f) => f.phase == FollowerPhase::Serving,
            Role::Leading(l) => l.established,
        }
    }

    /// The applied data tree (for tests and diagnostics).
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Time passes.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match &mut self.role {
            Role::Looking(election) => {
                let (outbox, decision) = election.tick(self.now_ms);
                self.send_all(outbox);
                if let Some(decision) = decision {
                    self.decided(decision);
                }
            }
            Role::Following(_) => self.tick_follower(),
            Role::Leading(_) => self.tick_leader(),
        }
    }

    /// A message from a peer.
    pub fn on_peer(&mut self, from: ServerId, msg: PeerMessage, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if !self.config.servers.contains(&from) || from == self.config.id {
            return;
        }
        if let PeerMessage::Notification { round, vote, state } = msg {
            self.on_notification(from, round, vote, state);
            return;
        }
        match &self.role {
            Role::Looking(_) => {}
            Role::Following(f) => {
                if f.leader == from {
                    self.on_leader_message(msg);
                }
            }
            Role::Leading(_) => self.on_learner_message(from, msg),
        }
    }

    /// A link with a peer broke (either direction).
    pub fn on_peer_lost(&mut self, peer: ServerId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let lost_learner = match &mut self.role {
            Role::Following(f) if f.leader == peer => {
                self.look("lost the link to the leader");
                false
            }
            Role::Leading(l) => l.learners.remove(&peer).is_some(),
            _ => false,
        };
        if lost_learner {
            self.announce(ZkServerEvent::LearnerLost { follower: peer });
        }
    }

    /// A client request on a connection.
    pub fn on_client(&mut self, conn: ConnId, request: ClientRequest, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match request {
            ClientRequest::Connect {
                session,
                timeout_ms,
                last_zxid,
                watches,
            } => self.on_connect(conn, session, timeout_ms, last_zxid, watches),
            ClientRequest::Request { xid, op } => self.on_request(conn, xid, op),
            ClientRequest::Ping => {
                if let Some(session) = self.conns.get(&conn).and_then(|c| c.session) {
                    self.touch(session);
                    let zxid = self.applied();
                    self.reply(conn, ServerResponse::Pong { zxid });
                }
            }
        }
    }

    /// A client connection closed.
    pub fn on_client_closed(&mut self, conn: ConnId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(session) = c.session {
                if self.by_session.get(&session) == Some(&conn) {
                    self.by_session.remove(&session);
                    self.queues.remove(&session);
                    self.watches.remove_watcher(session);
                }
            }
        }
    }

    // ----- helpers ---------------------------------------------------------------------------

    fn send(&mut self, to: ServerId, msg: PeerMessage) {
        self.out.push(Action::Send { to, msg });
    }

    fn send_all(&mut self, outbox: Vec<(ServerId, PeerMessage)>) {
        for (to, msg) in outbox {
            self.send(to, msg);
        }
    }

    fn reply(&mut self, conn: ConnId, msg: ServerResponse) {
        self.out.push(Action::Reply { conn, msg });
    }

    fn announce(&mut self, event: ZkServerEvent) {
        self.out.push(Action::Announce(event));
    }

    fn my_vote(&self) -> Vote {
        Vote {
            leader: self.config.id,
            zxid: self.last_logged(),
            epoch: self.current_epoch,
        }
    }

    // ----- election --------------------------------------------------------------------------

    /// Back to LOOKING: every client is disconnected, a new election round starts.
    fn look(&mut self, reason: &str) {
        self.disconnect_all_clients();
        self.round += 1;
        let (election, outbox) = Election::start(
            self.config.id,
            &self.config.servers,
            self.round,
            self.my_vote(),
            self.now_ms,
        );
        self.role = Role::Looking(election);
        self.announce(ZkServerEvent::Looking {
            reason: reason.to_string(),
            round: self.round,
            last_zxid: self.last_logged(),
            epoch: self.current_epoch,
        });
        self.send_all(outbox);
    }

    fn on_notification(&mut self, from: ServerId, round: u64, vote: Vote, state: PeerState) {
        let now = self.now_ms;
        match &mut self.role {
            Role::Looking(election) => {
                let (outbox, decision) = election.on_notification(from, round, vote, state, now);
                let round = election.round();
                self.round = self.round.max(round);
                self.send_all(outbox);
                if let Some(decision) = decision {
                    self.decided(decision);
                }
            }
            Role::Following(f) => {
                if state == PeerState::Looking {
                    let msg = PeerMessage::Notification {
                        round: f.round,
                        vote: f.vote,
                        state: PeerState::Following,
                    };
                    self.send(from, msg);
                }
            }
            Role::Leading(l) => {
                if state == PeerState::Looking {
                    let msg = PeerMessage::Notification {
                        round: l.round,
                        vote: l.vote,
                        state: PeerState::Leading,
                    };
                    self.send(from, msg);
                }
            }
        }
    }

    fn decided(&mut self, decision: Decision) {
        let Role::Looking(election) = &self.role else {
            unreachable!("only a looking server decides");
        };
        let (vote, round) = (election.vote(), election.round());
        self.round = self.round.max(round);
        self.announce(ZkServerEvent::Elected {
            leader: vote.leader,
            round,
        });
        match decision {
            Decision::Lead => {
                let leader = Leader {
                    vote,
                    round,
                    started_ms: self.now_ms,
                    epoch: None,
                    established: false,
                    learners: BTreeMap::new(),
                    counter: 0,
                    committed: Zxid::ZERO,
                    spec: None,
                    deadlines: BTreeMap::new(),
                    closing: BTreeSet::new(),
                    next_ping_ms: self.now_ms,
                };
                self.role = Role::Leading(Box::new(leader));
                // A one-server ensemble is its own quorum.
                self.maybe_decide_epoch();
            }
            Decision::Follow(leader) => {
                self.role = Role::Following(Follower {
                    leader,
                    vote,
                    round,
                    epoch: None,
                    phase: FollowerPhase::Discovery,
                    last_heard_ms: self.now_ms,
                    next_info_ms: self.now_ms,
                    committed: Zxid::ZERO,
                    touched: BTreeSet::new(),
                    deferred: Vec::new(),
                });
                self.tick_follower();
            }
        }
    }

    // ----- follower --------------------------------------------------------------------------

    fn follower(&mut self) -> &mut Follower {
        match &mut self.role {
            Role::Following(f) => f,
            _ => unreachable!("not following"),
        }
    }

    fn tick_follower(&mut self) {
        let (now, tick) = (self.now_ms, self.config.tick_ms);
        let limits = (self.config.init_limit, self.config.sync_limit);
        let (last_zxid, accepted) = (self.last_logged(), self.accepted_epoch);
        let f = self.follower();
        let limit = if f.phase == FollowerPhase::Serving {
            limits.1
        } else {
            limits.0
        };
        if now.saturating_sub(f.last_heard_ms) > limit.saturating_mul(tick) {
            self.look("the leader went silent");
            return;
        }
        if f.phase == FollowerPhase::Discovery && now >= f.next_info_ms {
            // FOLLOWERINFO until the leader answers: the link may have dropped the first.
            f.next_info_ms = now.saturating_add(tick / 2);
            let leader = f.leader;
            self.send(
                leader,
                PeerMessage::FollowerInfo {
                    accepted_epoch: accepted,
                    last_zxid,
                },
            );
        }
    }

    fn on_leader_message(&mut self, msg: PeerMessage) {
        let now = self.now_ms;
        let f = self.follower();
        f.last_heard_ms = now;
        let expected = f.epoch;
        if let Some(epoch) = msg.epoch() {
            if Some(epoch) != expected {
                return; // from an older leadership, or before LEADERINFO: stale
            }
        }
        match msg {
            PeerMessage::LeaderInfo { epoch } => self.on_leader_info(epoch),
            PeerMessage::Sync { mode, .. } => self.on_sync(mode),
            PeerMessage::NewLeader { epoch, last_zxid } => self.on_new_leader(epoch, last_zxid),
            PeerMessage::UpToDate { committed, .. } => self.on_up_to_date(committed),
            PeerMessage::Proposal { record, epoch } => self.on_proposal(epoch, record),
            PeerMessage::Commit { zxid, .. } => {
                let f = self.follower();
                f.committed = f.committed.max(zxid);
                if f.phase == FollowerPhase::Serving {
                    self.apply_up_to(zxid);
                }
            }
            PeerMessage::Ping { epoch, .. } => {
                let touched: Vec<SessionId> = std::mem::take(&mut self.follower().touched)
                    .into_iter()
                    .collect();
                let leader = self.follower().leader;
                self.send(leader, PeerMessage::Ping { epoch, touched });
            }
            PeerMessage::SyncPoint {
                session, xid, zxid, ..
            } => {
                if let Some(queue) = self.queues.get_mut(&session) {
                    for item in queue.iter_mut() {
                        if let Pending::Sync { xid: x, until } = item {
                            if *x == xid {
                                *until = Some(zxid);
                            }
                        }
                    }
                }
                self.drain(session);
            }
            PeerMessage::Revalidated {
                session,
                timeout_ms,
                ..
            } => self.on_revalidated(session, timeout_ms),
            _ => {}
        }
    }

    fn on_leader_info(&mut self, epoch: Epoch) {
        if self.follower().phase != FollowerPhase::Discovery {
            return;
        }
        if epoch < self.accepted_epoch {
            self.look("the leader's epoch is older than the accepted one");
            return;
        }
        if epoch > self.accepted_epoch {
            self.accepted_epoch = epoch;
            self.out.push(Action::PersistEpochs {
                accepted: epoch,
                current: self.current_epoch,
            });
        }
        let (current_epoch, last_zxid) = (self.current_epoch, self.last_logged());
        let f = self.follower();
        f.epoch = Some(epoch);
        f.phase = FollowerPhase::Syncing;
        let leader = f.leader;
        self.send(
            leader,
            PeerMessage::AckEpoch {
                epoch,
                current_epoch,
                last_zxid,
            },
        );
    }

    fn on_sync(&mut self, mode: SyncMode) {
        if self.follower().phase != FollowerPhase::Syncing {
            return;
        }
        let mut disk = Vec::new();
        let detail = ZkServerEvent::Synced {
            mode: mode.name().to_string(),
            from: self.last_logged(),
            txns: mode.txns().len(),
        };
        let txns = match mode {
            SyncMode::Diff { txns } => txns,
            SyncMode::Trunc { to, txns } => {
                crate::coverage::hit(crate::coverage::Mark::ZabTruncSync);
                self.truncate_log(to);
                disk.push(Action::TruncateLog { to });
                txns
            }
            SyncMode::Snap { snapshot, txns } => {
                crate::coverage::hit(crate::coverage::Mark::ZabSnapSync);
                let tree = match DataTree::from_snapshot(&snapshot) {
                    Ok(tree) => tree,
                    Err(e) => {
                        self.announce(ZkServerEvent::BadSnapshot { error: e });
                        self.look("the leader sent an invalid snapshot");
                        return;
                    }
                };
                self.tree = tree;
                self.log.clear();
                self.latest_snapshot = None;
                self.applied_since_snapshot = 0;
                disk.push(Action::WriteSnapshot {
                    snapshot: snapshot.clone(),
                });
                disk.push(Action::ResetLog);
                self.base = snapshot;
                txns
            }
        };
        let mut last = self.last_logged();
        for record in &txns {
            if record.header.zxid <= last {
                self.look("the sync is out of zxid order");
                return;
            }
            last = record.header.zxid;
        }
        if !txns.is_empty() {
            self.log.extend(txns.iter().cloned());
            // LEGACY (ZOOKEEPER-4646): the synced transactions are appended but not fsynced
            // before the ACK; the next durable append flushes them.
            let durable = !self.config.legacy.ack_before_sync;
            disk.push(Action::AppendLog {
                records: txns,
                durable,
            });
        }
        self.announce(detail);
        if self.config.legacy.ack_before_sync {
            // LEGACY (ZOOKEEPER-4646): the sync is made durable only after the ACK.
            self.follower().deferred = disk;
        } else {
            self.out.extend(disk);
        }
    }

    /// Drops every logged transaction after `to`; rebuilds the tree if it had applied any.
    fn truncate_log(&mut self, to: Zxid) {
        while self.log.back().is_some_and(|r| r.header.zxid > to) {
            self.log.pop_back();
        }
        if self.tree.last_zxid() > to {
            // Applied transactions are being dropped: only possible if a committed
            // transaction was lost. Rebuild from the snapshot, and say so.
            self.announce(ZkServerEvent::TruncatedApplied {
                to,
                applied: self.tree.last_zxid(),
            });
            self.tree = DataTree::from_snapshot(&self.base).expect("the base snapshot is valid");
            let upto = to;
            self.apply_up_to(upto);
        }
    }

    fn on_new_leader(&mut self, epoch: Epoch, last_zxid: Zxid) {
        if self.follower().phase != FollowerPhase::Syncing {
            return;
        }
        if !self.config.legacy.diff_only_sync {
            // TRUNC, DIFF and SNAP all end the log exactly where the leader's ends.
            assert_eq!(
                self.last_logged(),
                last_zxid,
                "after the sync, the log must end where the leader's does"
            );
        }
        // LEGACY (ZOOKEEPER-1154): a DIFF that should have been a TRUNC leaves transactions
        // the leader never had at the end of the log; the follower carries on regardless.
        self.current_epoch = epoch;
        // ZOOKEEPER-1817: the vote this follower reports to lookers names the epoch it
        // now follows in, as the leader's does (`establish`). With the epoch of the
        // election instead, the leader and a follower that decided in an older round
        // report different epochs, and a restarted server never finds a quorum of
        // agreeing votes outside the election: it looks forever.
        self.follower().vote.epoch = epoch;
        let leader = self.follower().leader;
        let persist = Action::PersistEpochs {
            accepted: self.accepted_epoch,
            current: epoch,
        };
        let ack = Action::Send {
            to: leader,
            msg: PeerMessage::AckNewLeader { epoch, last_zxid },
        };
        let deferred = std::mem::take(&mut self.follower().deferred);
        if self.config.legacy.ack_before_sync {
            // LEGACY (ZOOKEEPER-4646): new epoch and ACK first, the synced log after.
            self.out.push(persist);
            self.out.push(ack);
            self.out.extend(deferred);
        } else {
            self.out.push(persist);
            self.out.push(ack);
        }
        self.follower().phase = FollowerPhase::Synced;
    }

    fn on_up_to_date(&mut self, committed: Zxid) {
        let f = self.follower();
        if f.phase != FollowerPhase::Synced {
            return;
        }
        f.phase = FollowerPhase::Serving;
        f.committed = f.committed.max(committed);
        let (leader, epoch, upto) = (f.leader, f.epoch, f.committed);
        self.apply_up_to(upto);
        self.announce(ZkServerEvent::Following {
            leader,
            epoch,
            applied: self.applied(),
        });
    }

    fn on_proposal(&mut self, epoch: Epoch, record: TxnRecord) {
        let phase = self.follower().phase;
        if !matches!(phase, FollowerPhase::Synced | FollowerPhase::Serving) {
            return;
        }
        let last = self.last_logged();
        let zxid = record.header.zxid;
        let next = if last.epoch() == epoch {
            last.counter() + 1
        } else {
            1
        };
        if zxid.epoch() != epoch || zxid.counter() != next {
            self.look("a gap in the leader's proposals");
            return;
        }
        self.log.push_back(record.clone());
        self.out.push(Action::AppendLog {
            records: vec![record],
            durable: true,
        });
        let leader = self.follower().leader;
        self.send(leader, PeerMessage::Ack { epoch, zxid });
    }

    // ----- leader ----------------------------------------------------------------------------

    fn leader(&mut self) -> &mut Leader {
        match &mut self.role {
            Role::Leading(l) => l,
            _ => unreachable!("not leading"),
        }
    }

    fn tick_leader(&mut self) {
        let now = self.now_ms;
        let (tick, init, sync) = (
            self.config.tick_ms,
            self.config.init_limit,
            self.config.sync_limit,
        );
        let heartbeat = self.config.heartbeat_ms();
        let quorum = self.quorum;
        let l = self.leader();
        if !l.established {
            if now.saturating_sub(l.started_ms) > init.saturating_mul(tick) {
                self.look("no quorum of followers to establish the epoch");
            }
            return;
        }
        let alive = 1 + l
            .learners
            .values()
            .filter(|x| {
                x.phase == LearnerPhase::Established
                    && now.saturating_sub(x.last_heard_ms) <= sync.saturating_mul(tick)
            })
            .count();
        if alive < quorum {
            crate::coverage::hit(crate::coverage::Mark::ZkLeaderLosesQuorum);
            self.look("lost the quorum of followers");
            return;
        }
        if now >= l.next_ping_ms {
            l.next_ping_ms = now.saturating_add(heartbeat);
            let epoch = l.epoch.expect("established");
            let to: Vec<ServerId> = l
                .learners
                .iter()
                .filter(|(_, x)| {
                    matches!(x.phase, LearnerPhase::Synced | LearnerPhase::Established)
                })
                .map(|(id, _)| *id)
                .collect();
            for peer in to {
                self.send(
                    peer,
                    PeerMessage::Ping {
                        epoch,
                        touched: Vec::new(),
                    },
                );
            }
        }
        self.expire_sessions();
    }

    fn on_learner_message(&mut self, from: ServerId, msg: PeerMessage) {
        let now = self.now_ms;
        let l = self.leader();
        if let Some(learner) = l.learners.get_mut(&from) {
            learner.last_heard_ms = now;
        }
        if let Some(epoch) = msg.epoch() {
            if Some(epoch) != l.epoch {
                return;
            }
        }
        match msg {
            PeerMessage::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => self.on_follower_info(from, accepted_epoch, last_zxid),
            PeerMessage::AckEpoch {
                current_epoch,
                last_zxid,
                ..
            } => self.on_ack_epoch(from, current_epoch, last_zxid),
            PeerMessage::AckNewLeader { last_zxid, .. } => self.on_ack_new_leader(from, last_zxid),
            PeerMessage::Ack { zxid, .. } => self.on_ack(from, zxid),
            PeerMessage::Ping { touched, .. } => self.on_ping(touched),
            PeerMessage::Request {
                session,
                xid,
                request,
                ..
            } => self.on_forwarded_request(from, session, xid, request),
            PeerMessage::Revalidate { session, .. } => self.on_revalidate(from, session),
            _ => {}
        }
    }

    /// FOLLOWERINFO: a follower (re)starts discovery; whatever it did before is void.
    fn on_follower_info(&mut self, from: ServerId, accepted_epoch: Epoch, last_zxid: Zxid) {
        let learner = Learner {
            accepted_epoch,
            last_zxid,
            phase: LearnerPhase::Info,
            acked: Zxid::ZERO,
            last_heard_ms: self.now_ms,
        };
        let l = self.leader();
        l.learners.insert(from, learner);
        if let Some(epoch) = l.epoch {
            self.send(from, PeerMessage::LeaderInfo { epoch });
        } else {
            self.maybe_decide_epoch();
        }
    }

    /// ACKEPOCH: the follower accepted the new epoch; with a quorum, syncing starts.
    fn on_ack_epoch(&mut self, from: ServerId, current_epoch: Epoch, last_zxid: Zxid) {
        if (current_epoch, last_zxid) > (self.current_epoch, self.last_logged()) {
            self.look("a follower has a newer history");
            return;
        }
        let l = self.leader();
        let Some(learner) = l.learners.get_mut(&from) else {
            return;
        };
        if learner.phase != LearnerPhase::Info {
            return;
        }
        learner.phase = LearnerPhase::EpochAcked;
        learner.last_zxid = last_zxid;
        let quorum = self.quorum;
        let l = self.leader();
        let acked = 1 + l
            .learners
            .values()
            .filter(|x| x.phase != LearnerPhase::Info)
            .count();
        let syncing_started = l
            .learners
            .values()
            .any(|x| matches!(x.phase, LearnerPhase::Synced | LearnerPhase::Established));
        if syncing_started || l.established {
            self.sync_learner(from);
        } else if acked >= quorum {
            let ready: Vec<ServerId> = l
                .learners
                .iter()
                .filter(|(_, x)| x.phase == LearnerPhase::EpochAcked)
                .map(|(id, _)| *id)
                .collect();
            for peer in ready {
                self.sync_learner(peer);
            }
        }
    }

    /// ACK of NEWLEADER: the follower holds the new epoch's history; with a quorum, the
    /// epoch is established.
    fn on_ack_new_leader(&mut self, from: ServerId, last_zxid: Zxid) {
        let l = self.leader();
        let Some(learner) = l.learners.get_mut(&from) else {
            return;
        };
        if learner.phase != LearnerPhase::Synced {
            return;
        }
        learner.phase = LearnerPhase::Established;
        learner.acked = learner.acked.max(last_zxid);
        if l.established {
            let (epoch, committed) = (l.epoch.expect("established"), l.committed);
            self.send(from, PeerMessage::UpToDate { epoch, committed });
            self.try_commit();
        } else {
            let established = 1 + l
                .learners
                .values()
                .filter(|x| x.phase == LearnerPhase::Established)
                .count();
            if established >= self.quorum {
                self.establish();
            }
        }
    }

    /// ACK of proposals: everything up to `zxid` is durable at `from`.
    fn on_ack(&mut self, from: ServerId, zxid: Zxid) {
        let l = self.leader();
        if let Some(learner) = l.learners.get_mut(&from) {
            if learner.phase == LearnerPhase::Established {
                learner.acked = learner.acked.max(zxid);
            }
        }
        if self.leader().established {
            self.try_commit();
        }
    }

    /// PING from a follower: the sessions its clients kept alive.
    fn on_ping(&mut self, touched: Vec<SessionId>) {
        for session in touched {
            self.touch(session);
        }
    }

    /// REQUEST: a client's write, sync or new session forwarded by a serving follower.
    fn on_forwarded_request(
        &mut self,
        from: ServerId,
        session: SessionId,
        xid: Xid,
        request: ForwardedRequest,
    ) {
        let serving = self.leader().established
            && self.leader().learners.get(&from).is_some_and(|x| {
                matches!(x.phase, LearnerPhase::Synced | LearnerPhase::Established)
            });
        if !serving {
            return;
        }
        match request {
            ForwardedRequest::Write { op } => self.propose_op(session, xid, &op),
            ForwardedRequest::Sync => {
                let epoch = self.leader().epoch.expect("established");
                let zxid = self.last_logged();
                self.send(
                    from,
                    PeerMessage::SyncPoint {
                        epoch,
                        session,
                        xid,
                        zxid,
                    },
                );
            }
            ForwardedRequest::CreateSession { timeout_ms } => self.propose(
                session,
                xid,
                Txn::CreateSession {
                    session,
                    timeout_ms,
                },
            ),
        }
    }

    /// REVALIDATE: is a session a client reconnects with to `from` still alive?
    fn on_revalidate(&mut self, from: ServerId, session: SessionId) {
        if !self.leader().established {
            return;
        }
        let timeout_ms = self.live_session_timeout(session);
        if timeout_ms.is_some() {
            self.touch(session);
        }
        let epoch = self.leader().epoch.expect("established");
        self.send(
            from,
            PeerMessage::Revalidated {
                epoch,
                session,
                timeout_ms,
            },
        );
    }

    /// With a quorum of FOLLOWERINFO (counting ourselves), pick the new epoch.
    fn maybe_decide_epoch(&mut self) {
        let quorum = self.quorum;
        let accepted = self.accepted_epoch;
        let l = self.leader();
        if l.epoch.is_some() || 1 + l.learners.len() < quorum {
            return;
        }
        let max = l
            .learners
            .values()
            .map(|x| x.accepted_epoch)
            .max()
            .unwrap_or_default()
            .max(accepted);
        let epoch = Epoch(max.0 + 1);
        l.epoch = Some(epoch);
        let peers: Vec<ServerId> = l.learners.keys().copied().collect();
        self.accepted_epoch = epoch;
        self.out.push(Action::PersistEpochs {
            accepted: epoch,
            current: self.current_epoch,
        });
        self.announce(ZkServerEvent::NewEpoch {
            epoch,
            followers: peers.clone(),
        });
        for peer in peers {
            self.send(peer, PeerMessage::LeaderInfo { epoch });
        }
        if quorum == 1 {
            self.establish();
        }
    }

    /// How to bring a follower whose log ends at `peer_last` in line with ours: the
    /// [`sync_plan`] rule, with the transactions and snapshot it names.
    fn sync_mode_for(&self, peer_last: Zxid) -> SyncMode {
        let logged: Vec<Zxid> = self.log.iter().map(|r| r.header.zxid).collect();
        let after = |z: Zxid| -> Vec<TxnRecord> {
            self.log
                .iter()
                .filter(|r| r.header.zxid > z)
                .cloned()
                .collect()
        };
        let diff_only = self.config.legacy.diff_only_sync;
        match sync_plan(peer_last, self.base.zxid, &logged, diff_only) {
            SyncPlan::Diff { after: from } => SyncMode::Diff { txns: after(from) },
            SyncPlan::Trunc { to } => SyncMode::Trunc {
                to,
                txns: after(to),
            },
            SyncPlan::Snap => {
                let snapshot = self.tree.snapshot();
                let txns = after(snapshot.zxid);
                SyncMode::Snap { snapshot, txns }
            }
        }
    }

    fn sync_learner(&mut self, peer: ServerId) {
        let l = self.leader();
        let epoch = l.epoch.expect("the epoch is decided before syncing");
        let Some(learner) = l.learners.get(&peer) else {
            return;
        };
        let peer_last = learner.last_zxid;
        let mode = self.sync_mode_for(peer_last);
        let last_zxid = self.last_logged();
        self.announce(ZkServerEvent::Sync {
            follower: peer,
            mode: mode.name().to_string(),
            follower_zxid: peer_last,
            leader_zxid: last_zxid,
            txns: mode.txns().len(),
        });
        self.send(peer, PeerMessage::Sync { epoch, mode });
        self.send(peer, PeerMessage::NewLeader { epoch, last_zxid });
        if let Some(learner) = self.leader().learners.get_mut(&peer) {
            learner.phase = LearnerPhase::Synced;
        }
    }

    /// A quorum acknowledged NEWLEADER: our whole log is the new epoch's committed history.
    fn establish(&mut self) {
        let epoch = self.leader().epoch.expect("decided");
        self.current_epoch = epoch;
        self.out.push(Action::PersistEpochs {
            accepted: self.accepted_epoch,
            current: epoch,
        });
        let last = self.last_logged();
        self.apply_up_to(last);
        let now = self.now_ms;
        let sessions = self.tree.sessions();
        let spec = self.tree.clone();
        let l = self.leader();
        l.established = true;
        // ZOOKEEPER-1817: lookers hear the epoch this leader leads in (see `on_new_leader`).
        l.vote.epoch = epoch;
        l.committed = last;
        l.spec = Some(spec);
        l.counter = 0;
        // Every session gets a full timeout under the new leader.
        l.deadlines = sessions
            .iter()
            .map(|(s, t)| (*s, now + u64::from(*t)))
            .collect();
        l.closing.clear();
        let established: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, x)| x.phase == LearnerPhase::Established)
            .map(|(id, _)| *id)
            .collect();
        self.announce(ZkServerEvent::Leading {
            epoch,
            last_zxid: last,
            followers: established.clone(),
        });
        for peer in established {
            self.send(
                peer,
                PeerMessage::UpToDate {
                    epoch,
                    committed: last,
                },
            );
        }
    }

    /// Validates a client's write on the speculative tree and proposes the result.
    fn propose_op(&mut self, session: SessionId, xid: Xid, op: &Op) {
        let spec = self.leader().spec.as_ref().expect("established");
        let txn = spec.prep(session, op);
        self.propose(session, xid, txn);
    }

    fn propose(&mut self, session: SessionId, xid: Xid, txn: Txn) {
        let now = self.now_ms as i64;
        let l = self.leader();
        let epoch = l.epoch.expect("established");
        l.counter += 1;
        let header = TxnHeader {
            zxid: Zxid::new(epoch, l.counter),
            session,
            xid,
            time_ms: now,
        };
        let record = TxnRecord { header, txn };
        l.spec
            .as_mut()
            .expect("established")
            .apply(&record.header, &record.txn);
        let to: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, x)| matches!(x.phase, LearnerPhase::Synced | LearnerPhase::Established))
            .map(|(id, _)| *id)
            .collect();
        self.log.push_back(record.clone());
        self.out.push(Action::AppendLog {
            records: vec![record.clone()],
            durable: true,
        });
        for peer in to {
            self.send(
                peer,
                PeerMessage::Proposal {
                    epoch,
                    record: record.clone(),
                },
            );
        }
        self.try_commit();
    }

    /// Commits everything a quorum holds durably (the leader's own log counts).
    fn try_commit(&mut self) {
        let quorum = self.quorum;
        let last = self.last_logged();
        let l = self.leader();
        let mut acks: Vec<Zxid> = l
            .learners
            .values()
            .filter(|x| x.phase == LearnerPhase::Established)
            .map(|x| x.acked.min(last))
            .collect();
        acks.push(last);
        if acks.len() < quorum {
            return;
        }
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let commit = acks[quorum - 1];
        if commit <= l.committed {
            return;
        }
        l.committed = commit;
        let epoch = l.epoch.expect("established");
        let to: Vec<ServerId> = l
            .learners
            .iter()
            .filter(|(_, x)| matches!(x.phase, LearnerPhase::Synced | LearnerPhase::Established))
            .map(|(id, _)| *id)
            .collect();
        self.apply_up_to(commit);
        for peer in to {
            self.send(
                peer,
                PeerMessage::Commit {
                    epoch,
                    zxid: commit,
                },
            );
        }
    }

    fn live_session_timeout(&mut self, session: SessionId) -> Option<u32> {
        let l = self.leader();
        if l.closing.contains(&session) {
            return None;
        }
        l.spec
            .as_ref()
            .and_then(|spec| spec.session_timeout(session))
    }

    fn expire_sessions(&mut self) {
        let now = self.now_ms;
        let l = self.leader();
        let expired: Vec<SessionId> = l
            .deadlines
            .iter()
            .filter(|(s, deadline)| **deadline <= now && !l.closing.contains(s))
            .map(|(s, _)| *s)
            .collect();
        for session in expired {
            let l = self.leader();
            l.deadlines.remove(&session);
            let alive = l
                .spec
                .as_ref()
                .is_some_and(|spec| spec.session_timeout(session).is_some());
            if !alive {
                continue;
            }
            l.closing.insert(session);
            if !self.tree.ephemerals_of(session).is_empty() {
                crate::coverage::hit(crate::coverage::Mark::SessionExpiresWithEphemerals);
            }
            self.announce(ZkServerEvent::SessionExpired { session });
            self.propose(SessionId::NONE, Xid(0), Txn::CloseSession { session });
        }
    }

    // ----- applying committed transactions ---------------------------------------------------

    fn apply_up_to(&mut self, zxid: Zxid) {
        let applied = self.tree.last_zxid();
        let start = self.log.partition_point(|r| r.header.zxid <= applied);
        let end = self.log.partition_point(|r| r.header.zxid <= zxid);
        let records: Vec<TxnRecord> = self.log.range(start..end).cloned().collect();
        for record in records {
            self.apply_committed(&record);
        }
    }

    fn apply_committed(&mut self, record: &TxnRecord) {
        let header = &record.header;
        let applied = self.tree.apply(header, &record.txn);
        let zxid = header.zxid;
        for (session, event) in self.watches.trigger(&applied.events) {
            if let Some(&conn) = self.by_session.get(&session) {
                self.reply(conn, ServerResponse::Watch { zxid, event });
            }
        }
        match &record.txn {
            Txn::CreateSession {
                session,
                timeout_ms,
            } => {
                let opening = self.conns.iter().find_map(|(conn, c)| match &c.opening {
                    Some(Opening::Create {
                        session: s,
                        watches,
                        last_zxid,
                        ..
                    }) if s == session => Some((*conn, watches.clone(), *last_zxid)),
                    _ => None,
                });
                if let Some((conn, watches, last_zxid)) = opening {
                    self.open_session(conn, *session, *timeout_ms, &watches, last_zxid);
                }
                if let Role::Leading(l) = &mut self.role {
                    l.deadlines
                        .insert(*session, self.now_ms + u64::from(*timeout_ms));
                }
            }
            Txn::CloseSession { session } => {
                if let Some(queue) = self.queues.get_mut(session) {
                    for item in queue.iter_mut() {
                        if let Pending::Write { xid, done } = item {
                            if *xid == header.xid && header.session == *session {
                                *done = Some((zxid, applied.result.clone()));
                            }
                        }
                    }
                }
                self.drain(*session);
                if let Some(conn) = self.by_session.remove(session) {
                    let closed_by_client = header.session == *session;
                    if !closed_by_client {
                        self.reply(conn, ServerResponse::SessionExpired { session: *session });
                    }
                    self.out.push(Action::CloseClient { conn });
                    self.conns.remove(&conn);
                }
                self.queues.remove(session);
                self.watches.remove_watcher(*session);
                if let Role::Leading(l) = &mut self.role {
                    l.deadlines.remove(session);
                    l.closing.remove(session);
                }
            }
            _ => {
                if let Some(queue) = self.queues.get_mut(&header.session) {
                    for item in queue.iter_mut() {
                        if let Pending::Write { xid, done } = item {
                            if *xid == header.xid && done.is_none() {
                                *done = Some((zxid, applied.result.clone()));
                                break;
                            }
                        }
                    }
                }
                self.drain(header.session);
            }
        }
        self.applied_since_snapshot += 1;
        if self.applied_since_snapshot >= self.config.snap_count {
            self.take_snapshot();
        }
    }

    fn take_snapshot(&mut self) {
        self.applied_since_snapshot = 0;
        let snapshot = self.tree.snapshot();
        self.out.push(Action::WriteSnapshot {
            snapshot: snapshot.clone(),
        });
        if let Some(previous) = self.latest_snapshot.replace(snapshot) {
            // Keep the log since the previous snapshot: the DIFF window.
            while self
                .log
                .front()
                .is_some_and(|r| r.header.zxid <= previous.zxid)
            {
                self.log.pop_front();
            }
            self.base = previous;
        }
    }

    // ----- clients ---------------------------------------------------------------------------

    fn disconnect_all_clients(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.out.push(Action::CloseClient { conn });
        }
        self.conns.clear();
        self.by_session.clear();
        self.queues.clear();
        self.watches = WatchManager::default();
    }

    fn touch(&mut self, session: SessionId) {
        let now = self.now_ms;
        match &mut self.role {
            Role::Leading(l) => {
                if !l.closing.contains(&session) {
                    if let Some(timeout) = l.spec.as_ref().and_then(|s| s.session_timeout(session))
                    {
                        l.deadlines.insert(session, now + u64::from(timeout));
                    }
                }
            }
            Role::Following(f) => {
                f.touched.insert(session);
            }
            Role::Looking(_) => {}
        }
    }

    fn on_connect(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout_ms: u32,
        last_zxid: Zxid,
        watches: WatchSet,
    ) {
        if !self.is_serving() {
            self.reply(
                conn,
                ServerResponse::Refused {
                    reason: "not serving".into(),
                },
            );
            self.out.push(Action::CloseClient { conn });
            return;
        }
        if last_zxid > self.applied() {
            let reason = format!(
                "the client has seen zxid {last_zxid}, this server only {}",
                self.applied()
            );
            self.reply(conn, ServerResponse::Refused { reason });
            self.out.push(Action::CloseClient { conn });
            return;
        }
        let timeout_ms = timeout_ms.clamp(
            self.config.min_session_timeout_ms(),
            self.config.max_session_timeout_ms(),
        );
        if session == SessionId::NONE {
            self.session_counter += 1;
            let id = ((self.config.id.0 & 0xff) << 56)
                | ((self.config.incarnation & 0xffff) << 40)
                | self.session_counter;
            let session = SessionId(id);
            self.conns.insert(
                conn,
                Conn {
                    session: None,
                    opening: Some(Opening::Create {
                        session,
                        watches,
                        last_zxid,
                    }),
                },
            );
            self.forward(
                session,
                Xid(0),
                ForwardedRequest::CreateSession { timeout_ms },
            );
            return;
        }
        match &self.role {
            Role::Leading(_) => match self.live_session_timeout(session) {
                Some(timeout) => self.open_session(conn, session, timeout, &watches, last_zxid),
                None => self.expired(conn, session),
            },
            Role::Following(f) => {
                let (leader, epoch) = (f.leader, f.epoch.expect("serving"));
                self.conns.insert(
                    conn,
                    Conn {
                        session: None,
                        opening: Some(Opening::Revalidate {
                            session,
                            watches,
                            last_zxid,
                        }),
                    },
                );
                self.send(leader, PeerMessage::Revalidate { epoch, session });
            }
            Role::Looking(_) => unreachable!("serving"),
        }
    }

    fn expired(&mut self, conn: ConnId, session: SessionId) {
        self.reply(conn, ServerResponse::SessionExpired { session });
        self.out.push(Action::CloseClient { conn });
        self.conns.remove(&conn);
    }

    fn on_revalidated(&mut self, session: SessionId, timeout_ms: Option<u32>) {
        let waiting: Vec<(ConnId, WatchSet, Zxid)> = self
            .conns
            .iter()
            .filter_map(|(conn, c)| match &c.opening {
                Some(Opening::Revalidate {
                    session: s,
                    watches,
                    last_zxid,
                }) if *s == session => Some((*conn, watches.clone(), *last_zxid)),
                _ => None,
            })
            .collect();
        for (conn, watches, last_zxid) in waiting {
            match timeout_ms {
                Some(timeout) => self.open_session(conn, session, timeout, &watches, last_zxid),
                None => self.expired(conn, session),
            }
        }
    }

    fn open_session(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout_ms: u32,
        watches: &WatchSet,
        last_zxid: Zxid,
    ) {
        if let Some(old) = self.by_session.insert(session, conn) {
            if old != conn {
                // The session moved to a new connection: the old one is dead to us.
                self.out.push(Action::CloseClient { conn: old });
                self.conns.remove(&old);
                self.queues.remove(&session);
            }
        }
        self.conns.insert(
            conn,
            Conn {
                session: Some(session),
                opening: None,
            },
        );
        let zxid = self.applied();
        self.reply(
            conn,
            ServerResponse::Connected {
                session,
                timeout_ms,
                zxid,
            },
        );
        self.touch(session);
        self.rewatch(conn, session, watches, last_zxid);
    }

    /// ZooKeeper's SetWatches: fire what changed since the client's zxid, re-register the rest.
    fn rewatch(&mut self, conn: ConnId, session: SessionId, watches: &WatchSet, since: Zxid) {
        let zxid = self.applied();
        let mut fire = Vec::new();
        for path in &watches.data {
            match self.tree.stat(path) {
                None => fire.push(WatchedEvent {
                    event: EventType::NodeDeleted,
                    path: path.clone(),
                }),
                Some(stat) if stat.mzxid > since => fire.push(WatchedEvent {
                    event: EventType::NodeDataChanged,
                    path: path.clone(),
                }),
                Some(_) => self.watches.add_data_watch(path, session),
            }
        }
        for path in &watches.exist {
            match self.tree.stat(path) {
                Some(_) => fire.push(WatchedEvent {
                    event: EventType::NodeCreated,
                    path: path.clone(),
                }),
                None => self.watches.add_data_watch(path, session),
            }
        }
        for path in &watches.child {
            match self.tree.stat(path) {
                None => fire.push(WatchedEvent {
                    event: EventType::NodeDeleted,
                    path: path.clone(),
                }),
                Some(stat) if stat.pzxid > since => fire.push(WatchedEvent {
                    event: EventType::NodeChildrenChanged,
                    path: path.clone(),
                }),
                Some(_) => self.watches.add_child_watch(path, session),
            }
        }
        for event in fire {
            self.reply(conn, ServerResponse::Watch { zxid, event });
        }
    }

    fn on_request(&mut self, conn: ConnId, xid: Xid, op: Op) {
        let Some(session) = self.conns.get(&conn).and_then(|c| c.session) else {
            return; // not connected yet: the client waits for Connected before sending
        };
        self.touch(session);
        let queue = self.queues.entry(session).or_default();
        match &op {
            Op::Sync { .. } => {
                queue.push_back(Pending::Sync { xid, until: None });
                if let Role::Leading(_) = self.role {
                    let until = self.last_logged();
                    if let Some(Pending::Sync { until: u, .. }) =
                        self.queues.get_mut(&session).and_then(|q| q.back_mut())
                    {
                        *u = Some(until);
                    }
                } else {
                    self.forward(session, xid, ForwardedRequest::Sync);
                }
            }
            op if op.is_write() => {
                queue.push_back(Pending::Write { xid, done: None });
                self.forward(session, xid, ForwardedRequest::Write { op: op.clone() });
            }
            _ => queue.push_back(Pending::Read { xid, op }),
        }
        self.drain(session);
    }

    /// Sends a request to the leader (or handles it, if we lead).
    fn forward(&mut self, session: SessionId, xid: Xid, request: ForwardedRequest) {
        match &self.role {
            Role::Leading(_) => match request {
                ForwardedRequest::Write { op } => self.propose_op(session, xid, &op),
                ForwardedRequest::CreateSession { timeout_ms } => self.propose(
                    session,
                    xid,
                    Txn::CreateSession {
                        session,
                        timeout_ms,
                    },
                ),
                ForwardedRequest::Sync => {}
            },
            Role::Following(f) => {
                let (leader, epoch) = (f.leader, f.epoch.expect("serving"));
                self.send(
                    leader,
                    PeerMessage::Request {
                        epoch,
                        session,
                        xid,
                        request,
                    },
                );
            }
            Role::Looking(_) => {}
        }
    }

    /// Answers a session's requests in order, as far as they are complete.
    fn drain(&mut self, session: SessionId) {
        let Some(&conn) = self.by_session.get(&session) else {
            return;
        };
        loop {
            let applied = self.applied();
            let Some(front) = self.queues.get(&session).and_then(|q| q.front()) else {
                return;
            };
            let reply = match front {
                Pending::Write {
                    xid,
                    done: Some((zxid, result)),
                } => ServerResponse::Reply {
                    xid: *xid,
                    zxid: *zxid,
                    result: result.clone(),
                },
                Pending::Write { done: None, .. } => return,
                Pending::Sync {
                    xid,
                    until: Some(until),
                } if *until <= applied => ServerResponse::Reply {
                    xid: *xid,
                    zxid: applied,
                    result: Ok(OpResult::Synced),
                },
                Pending::Sync { .. } => return,
                Pending::Read { xid, op } => {
                    let result = self.tree.read(op);
                    if result.is_ok() || matches!(op, Op::Exists { .. }) {
                        match op {
                            Op::GetData { path, watch: true } => {
                                self.watches.add_data_watch(path, session)
                            }
                            Op::Exists { path, watch: true } => {
                                self.watches.add_data_watch(path, session)
                            }
                            Op::GetChildren { path, watch: true } => {
                                self.watches.add_child_watch(path, session)
                            }
                            _ => {}
                        }
                    }
                    ServerResponse::Reply {
                        xid: *xid,
                        zxid: applied,
                        result,
                    }
                }
            };
            self.queues
                .get_mut(&session)
                .expect("non-empty")
                .pop_front();
            self.reply(conn, reply);
        }
    }
}

/// How a leader brings a joining follower in line, in zxids: the rule behind
/// [`SyncMode`] (ZooKeeper's `LearnerHandler.syncFollower`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPlan {
    /// DIFF: send the logged transactions after `after`.
    Diff {
        /// The follower's last zxid, which the leader's history holds.
        after: Zxid,
    },
    /// TRUNC: the follower drops its transactions after `to`, the last zxid both hold; then
    /// the leader's transactions after `to` follow (TRUNC+DIFF).
    Trunc {
        /// The last zxid to keep.
        to: Zxid,
    },
    /// SNAP: send the leader's applied tree, then the logged transactions after it.
    Snap,
}

/// The sync for a follower whose log ends at `peer_last`, from a leader whose in-memory log
/// holds `logged` (ascending) after its snapshot at `base` (the DIFF window).
///
/// - At the leader's last zxid: an empty DIFF.
/// - Ahead of it (the follower logged proposals the leader never had): TRUNC to the
///   leader's last zxid.
/// - Before the DIFF window: SNAP.
/// - At `base` or a logged zxid: DIFF of the rest.
/// - Otherwise its last transactions are ones the leader never had: TRUNC to the newest
///   zxid below it the leader holds (the snapshot if none), then DIFF.
///
/// LEGACY (ZOOKEEPER-1154, `diff_only_sync`): DIFF where TRUNC is needed; the follower keeps
/// transactions that were never committed.
///
/// Cases: `src/zk/testdata/sync_mode.txt`.
pub fn sync_plan(peer_last: Zxid, base: Zxid, logged: &[Zxid], diff_only_sync: bool) -> SyncPlan {
    let last = logged.last().copied().unwrap_or(base);
    if peer_last == last {
        return SyncPlan::Diff { after: peer_last };
    }
    if peer_last > last {
        if diff_only_sync {
            // LEGACY (ZOOKEEPER-1154): the follower keeps what we never had.
            return SyncPlan::Diff { after: peer_last };
        }
        return SyncPlan::Trunc { to: last };
    }
    if peer_last < base {
        return SyncPlan::Snap;
    }
    if peer_last == base || logged.contains(&peer_last) {
        return SyncPlan::Diff { after: peer_last };
    }
    // The follower has transactions we do not: cut back to the last one we share.
    let common = logged
        .iter()
        .copied()
        .rfind(|&z| z < peer_last)
        .unwrap_or(base);
    if diff_only_sync {
        // LEGACY (ZOOKEEPER-1154): diff from the follower's zxid; its extra transactions
        // stay in its log.
        return SyncPlan::Diff { after: peer_last };
    }
    SyncPlan::Trunc { to: common }
}

#[cfg(test)]
mod tests;
