//! The ensemble's wire protocol: what servers say to each other (election and ZAB) and what
//! clients and servers say to each other.
//!
//! Owns: [`PeerMessage`], [`ClientRequest`], [`ServerResponse`] and the election [`Vote`].
//! Every leader↔follower message carries the leader's epoch, so a message that arrives late
//! from an older leadership (a clogged link delivering its backlog) is recognised and
//! ignored. Frames are serde-encoded by the shells; nothing here does I/O.

use super::tree::Snapshot;
use super::types::{
    Epoch, Op, OpError, OpResult, ServerId, SessionId, TxnRecord, WatchedEvent, Xid, Zxid,
};
use serde::{Deserialize, Serialize};

/// A server's election vote: who should lead, and that candidate's credentials.
/// Votes compare by (epoch, zxid, leader id): the candidate with the newest history wins,
/// ties broken by the higher id (ZooKeeper's fast leader election).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The proposed leader.
    pub leader: ServerId,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader's current epoch.
    pub epoch: Epoch,
}

impl Vote {
    /// Whether `self` is a better candidate than `other` (cases:
    /// `src/zk/testdata/vote_order.txt`).
    pub fn beats(&self, other: &Vote) -> bool {
        (self.epoch, self.zxid, self.leader) > (other.epoch, other.zxid, other.leader)
    }
}

/// What a server is doing, as announced in election notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    /// Electing a leader.
    Looking,
    /// Following the leader of its vote.
    Following,
    /// Leading.
    Leading,
}

/// How a leader brings a follower's log in line with its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Append these transactions (the follower's log is a prefix of the leader's).
    Diff {
        /// Transactions after the follower's last zxid.
        txns: Vec<TxnRecord>,
    },
    /// Drop everything after `to` (the follower has transactions the leader does not),
    /// then append `txns`.
    Trunc {
        /// The last zxid to keep.
        to: Zxid,
        /// Transactions after `to`.
        txns: Vec<TxnRecord>,
    },
    /// Replace everything with this snapshot, then append `txns`.
    Snap {
        /// The leader's data tree.
        snapshot: Snapshot,
        /// Transactions after the snapshot.
        txns: Vec<TxnRecord>,
    },
}

impl SyncMode {
    /// The mode's name: `diff`, `trunc`, `snap`.
    pub fn name(&self) -> &'static str {
        match self {
            SyncMode::Diff { .. } => "diff",
            SyncMode::Trunc { .. } => "trunc",
            SyncMode::Snap { .. } => "snap",
        }
    }

    /// The transactions appended after the diff, truncation or snapshot.
    pub fn txns(&self) -> &[TxnRecord] {
        match self {
            SyncMode::Diff { txns }
            | SyncMode::Trunc { txns, .. }
            | SyncMode::Snap { txns, .. } => txns,
        }
    }
}

/// Server-to-server messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerMessage {
    /// Election: my vote in `round`, and what I am doing.
    Notification {
        /// The sender's election round (ZooKeeper's logical clock).
        round: u64,
        /// The sender's vote.
        vote: Vote,
        /// The sender's state.
        state: PeerState,
    },
    /// Follower → leader: discovery starts; my accepted epoch and last zxid.
    FollowerInfo {
        /// The follower's accepted epoch.
        accepted_epoch: Epoch,
        /// The follower's last logged zxid.
        last_zxid: Zxid,
    },
    /// Leader → follower: the new epoch.
    LeaderInfo {
        /// The epoch the leader proposes.
        epoch: Epoch,
    },
    /// Follower → leader: I accepted `epoch`; my current epoch and last zxid.
    AckEpoch {
        /// The accepted epoch.
        epoch: Epoch,
        /// The follower's current epoch (of its last NEWLEADER).
        current_epoch: Epoch,
        /// The follower's last logged zxid.
        last_zxid: Zxid,
    },
    /// Leader → follower: bring your log in line.
    Sync {
        /// The leader's epoch.
        epoch: Epoch,
        /// Diff, truncation or snapshot.
        mode: SyncMode,
    },
    /// Leader → follower: everything up to `last_zxid` is the new epoch's history.
    NewLeader {
        /// The leader's epoch.
        epoch: Epoch,
        /// The last zxid of the synced history.
        last_zxid: Zxid,
    },
    /// Follower → leader: NEWLEADER acknowledged; my log holds everything up to `last_zxid`.
    AckNewLeader {
        /// The leader's epoch.
        epoch: Epoch,
        /// The follower's last logged zxid.
        last_zxid: Zxid,
    },
    /// Leader → follower: the epoch is established; apply up to `committed` and serve.
    UpToDate {
        /// The leader's epoch.
        epoch: Epoch,
        /// Everything up to here is committed.
        committed: Zxid,
    },
    /// Leader → follower: log this transaction.
    Proposal {
        /// The leader's epoch.
        epoch: Epoch,
        /// The transaction.
        record: TxnRecord,
    },
    /// Follower → leader: everything up to `zxid` is durable in my log.
    Ack {
        /// The leader's epoch.
        epoch: Epoch,
        /// The last durable zxid.
        zxid: Zxid,
    },
    /// Leader → follower: everything up to `zxid` is committed.
    Commit {
        /// The leader's epoch.
        epoch: Epoch,
        /// The last committed zxid.
        zxid: Zxid,
    },
    /// Follower → leader: a client's write (or sync, or new session) to order.
    Request {
        /// The leader's epoch.
        epoch: Epoch,
        /// The client's session.
        session: SessionId,
        /// The request id.
        xid: Xid,
        /// What the client asks.
        request: ForwardedRequest,
    },
    /// Leader → follower: a `sync` the follower forwarded is ordered after `zxid`.
    SyncPoint {
        /// The leader's epoch.
        epoch: Epoch,
        /// The client's session.
        session: SessionId,
        /// The request id.
        xid: Xid,
        /// Answer once applied up to here.
        zxid: Zxid,
    },
    /// Follower → leader: is this session still alive?
    Revalidate {
        /// The leader's epoch.
        epoch: Epoch,
        /// The session a client reconnects with.
        session: SessionId,
    },
    /// Leader → follower: the session's fate.
    Revalidated {
        /// The leader's epoch.
        epoch: Epoch,
        /// The session.
        session: SessionId,
        /// Its timeout if it is alive, `None` if it expired.
        timeout_ms: Option<u32>,
    },
    /// Heartbeat both ways; a follower reports the sessions its clients kept alive.
    Ping {
        /// The leader's epoch.
        epoch: Epoch,
        /// Sessions touched since the last ping (follower → leader).
        touched: Vec<SessionId>,
    },
}

impl PeerMessage {
    /// The leader epoch a leader↔follower message belongs to (`None` for election and
    /// discovery messages, which are validated otherwise).
    pub fn epoch(&self) -> Option<Epoch> {
        match self {
            PeerMessage::Notification { .. }
            | PeerMessage::FollowerInfo { .. }
            | PeerMessage::LeaderInfo { .. } => None,
            PeerMessage::AckEpoch { epoch, .. }
            | PeerMessage::Sync { epoch, .. }
            | PeerMessage::NewLeader { epoch, .. }
            | PeerMessage::AckNewLeader { epoch, .. }
            | PeerMessage::UpToDate { epoch, .. }
            | PeerMessage::Proposal { epoch, .. }
            | PeerMessage::Ack { epoch, .. }
            | PeerMessage::Commit { epoch, .. }
            | PeerMessage::Request { epoch, .. }
            | PeerMessage::SyncPoint { epoch, .. }
            | PeerMessage::Revalidate { epoch, .. }
            | PeerMessage::Revalidated { epoch, .. }
            | PeerMessage::Ping { epoch, .. } => Some(*epoch),
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            PeerMessage::Notification { .. } => "notification",
            PeerMessage::FollowerInfo { .. } => "follower-info",
            PeerMessage::LeaderInfo { .. } => "leader-info",
            PeerMessage::AckEpoch { .. } => "ack-epoch",
            PeerMessage::Sync { .. } => "sync",
            PeerMessage::NewLeader { .. } => "new-leader",
            PeerMessage::AckNewLeader { .. } => "ack-new-leader",
            PeerMessage::UpToDate { .. } => "up-to-date",
            PeerMessage::Proposal { .. } => "proposal",
            PeerMessage::Ack { .. } => "ack",
            PeerMessage::Commit { .. } => "commit",
            PeerMessage::Request { .. } => "request",
            PeerMessage::SyncPoint { .. } => "sync-point",
            PeerMessage::Revalidate { .. } => "revalidate",
            PeerMessage::Revalidated { .. } => "revalidated",
            PeerMessage::Ping { .. } => "ping",
        }
    }
}

/// What a follower forwards to the leader on a client's behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedRequest {
    /// A write operation (or `CloseSession`).
    Write {
        /// The operation.
        op: Op,
    },
    /// A `sync`: tell me when I have everything ordered before it.
    Sync,
    /// A new session with this timeout (the session id was chosen by the follower).
    CreateSession {
        /// The negotiated timeout.
        timeout_ms: u32,
    },
}

/// Client → server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientRequest {
    /// Open a new session (`session` = NONE) or resume one; the client has seen
    /// everything up to `last_zxid`, and re-registers its watches.
    Connect {
        /// The session to resume, or NONE for a new one.
        session: SessionId,
        /// The timeout the client asks for.
        timeout_ms: u32,
        /// The newest zxid the client has seen: the server must not be behind it.
        last_zxid: Zxid,
        /// Watches to re-register (ZooKeeper's SetWatches), relative to `last_zxid`.
        watches: WatchSet,
    },
    /// An operation.
    Request {
        /// The request id.
        xid: Xid,
        /// The operation.
        op: Op,
    },
    /// Keep the session alive.
    Ping,
}

/// The watches a client holds, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSet {
    /// Data watches left by `getData` (fire on change or deletion).
    pub data: Vec<String>,
    /// Data watches left by `exists` (fire on creation, change or deletion).
    pub exist: Vec<String>,
    /// Child watches left by `getChildren`.
    pub child: Vec<String>,
}

impl WatchSet {
    /// Whether there is no watch.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.exist.is_empty() && self.child.is_empty()
    }
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerResponse {
    /// The session is open (new or resumed).
    Connected {
        /// The session.
        session: SessionId,
        /// The negotiated timeout.
        timeout_ms: u32,
        /// The server's last applied zxid.
        zxid: Zxid,
    },
    /// This server will not take the connection (behind the client, or not serving): try
    /// another one.
    Refused {
        /// Why.
        reason: String,
    },
    /// The session expired (or was closed): it is gone for good.
    SessionExpired {
        /// The session.
        session: SessionId,
    },
    /// The answer to a request.
    Reply {
        /// The request id.
        xid: Xid,
        /// For a write its zxid; for a read the server's last applied zxid.
        zxid: Zxid,
        /// What happened.
        result: Result<OpResult, OpError>,
    },
    /// A watch fired.
    Watch {
        /// The server's last applied zxid when it fired.
        zxid: Zxid,
        /// What happened.
        event: WatchedEvent,
    },
    /// Answer to a ping.
    Pong {
        /// The server's last applied zxid.
        zxid: Zxid,
    },
}
