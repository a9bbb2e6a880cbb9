//! Checks of the ensemble, from the client history, the servers' role announcements and each
//! server's files read back from disk after the run — never from the servers' memory.
//!
//! - `zk-replica-agreement`: every server's transaction log is a run of one history, the
//!   reference: the log of the server with the newest transaction among the servers of the
//!   newest epoch (those whose last role announcement is `leading` or `following` in the
//!   greatest epoch any server's last announcement names; see [`EnsembleRoles`]).
//!   - A server of the newest epoch holds a contiguous run of the reference's history: no
//!     transaction the reference lacks (beyond what the reference has only in its snapshot),
//!     no gap, no different transaction under the same zxid.
//!   - Any other server (still in an older epoch — a leader deposed while paused, or its
//!     follower, that has not noticed yet —, looking, or restarted and not yet synced) has
//!     not rejoined, and `converges` reports it. Its log is judged the same way, except that
//!     it may end in a *fork*: transactions the reference lacks, all of one epoch, branching
//!     off where the reference went on in a newer epoch, with nothing of the reference's
//!     between its last shared transaction (or its snapshot) and the fork. That is exactly
//!     an uncommitted suffix, which ZAB's sync (TRUNC) removes when the server rejoins.
//!
//!   Why this is what ZAB guarantees: an epoch has one leader, which numbers its proposals
//!   and which every server logs in order, without gaps; a new epoch starts from a history
//!   holding every committed transaction, and its sync truncates each follower to that
//!   history before the follower logs anything of the new epoch. So a server's log is
//!   always a run of the committed history (from its snapshot on) followed, at most, by
//!   uncommitted proposals of the one epoch it last led or followed. What stays a violation
//!   on any server: a different transaction under a zxid the reference has; a gap (it lacks
//!   a reference transaction between two it holds, or before its fork); agreement again
//!   after its fork (an orphan kept across a sync, ZOOKEEPER-1154); a fork spanning epochs
//!   (an older epoch's transaction kept across a sync into a newer one was committed by
//!   that sync, so the newest history must hold it); a fork inside an epoch the reference
//!   goes on in (the reference cannot lack a proposal and hold a later one of the same
//!   leader).
//! - `zk-ephemeral-lifetime`: in the final state (the reference's newest snapshot and log),
//!   every ephemeral znode's session is alive; no session a client was told expired is
//!   alive; and an ephemeral a client created, never deleted, whose session lives, still
//!   exists.
//! - `zk-session-monotonic`: each client process sees non-decreasing zxids, across reconnects.
//!
//! The final state is replayed here with a small model of sessions and ephemerals of its own
//! (not the servers' data tree), from the on-disk formats: log records (key = zxid, value =
//! `TxnRecord` JSON) and snapshots (JSON).

use super::node_data::NodeData;
use super::toolkit::violation;
use super::{CheckInput, Violation};
use crate::disk::{read_whole, Disk};
use crate::history::{Announcement, Event, HistoryEntry, Op, ShellEvent, ZkOutcome};
use crate::log::{Log, LogConfig};
use crate::zk::server::ZkServerEvent;
use crate::zk::tree::Snapshot;
use crate::zk::{CreateMode, OpResult, SessionId, Txn, TxnRecord, Zxid};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

const DATA_DIR: &str = "version-2";

/// What a server left on disk.
#[derive(Clone, Debug, Default)]
pub struct ServerFiles {
    /// The server's node name.
    pub name: String,
    /// Logged transactions, in log order.
    pub log: Vec<TxnRecord>,
    /// The newest snapshot that parses.
    pub snapshot: Option<Snapshot>,
    /// Why the files could not be read, if they could not.
    pub error: Option<String>,
}

impl ServerFiles {
    /// The newest zxid it holds.
    pub fn last_zxid(&self) -> Zxid {
        self.log
            .last()
            .map(|r| r.header.zxid)
            .or(self.snapshot.as_ref().map(|s| s.zxid))
            .unwrap_or_default()
    }
}

/// Reads a server's transaction log and newest snapshot, read-only.
pub fn read_server_files(nodes: NodeData<'_>, name: &str) -> ServerFiles {
    let mut files = ServerFiles {
        name: name.to_string(),
        ..ServerFiles::default()
    };
    if let Err(error) = read_into(nodes.disk(name), &mut files) {
        files.error = Some(error);
    }
    files
}

fn read_into<D: Disk>(disk: D, files: &mut ServerFiles) -> Result<(), String> {
    let data = Path::new(DATA_DIR);
    let config = LogConfig {
        retention_ms: None,
        ..LogConfig::default()
    };
    let (log, _) =
        Log::open_read_only(disk.clone(), &data.join("log"), config).map_err(|e| e.to_string())?;
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let records = log.read_records(next, 1 << 20).map_err(|e| e.to_string())?;
        let Some(last) = records.last() else { break };
        next = last.offset.plus(1);
        for record in records {
            let value = record.value.unwrap_or_default();
            let parsed: TxnRecord = serde_json::from_slice(&value).map_err(|e| {
                format!(
                    "log record at offset {} is not a transaction: {e}",
                    record.offset
                )
            })?;
            files.log.push(parsed);
        }
    }
    let mut names: Vec<String> = disk
        .list(data)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("snapshot.") && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    for name in names.iter().rev() {
        if let Ok(snapshot) = read_whole(&disk, &data.join(name))
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).map_err(|e| e.to_string()))
        {
            files.snapshot = Some(snapshot);
            break;
        }
    }
    Ok(())
}

fn describe(txn: &Txn) -> String {
    match txn {
        Txn::CreateSession { session, .. } => format!("createSession {session}"),
        Txn::CloseSession { session } => format!("closeSession {session}"),
        Txn::Create { path, .. } => format!("create {path}"),
        Txn::Delete { path } => format!("delete {path}"),
        Txn::SetData { path, version, .. } => format!("setData {path} v{version}"),
        Txn::Check { path } => format!("check {path}"),
        Txn::Multi { txns } => format!("multi of {}", txns.len()),
        Txn::Error { error } => format!("error {}", error.error),
    }
}

/// A server's role as it last announced it (`leading`, `following`, `looking`,
/// `recovered`; see `zk::server`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerRole {
    /// Leads this epoch: a quorum acknowledged its NEWLEADER.
    Leading(u64),
    /// Follows the leader of this epoch: synced with it and serving.
    Following(u64),
    /// Electing a leader.
    Looking,
    /// Restarted and recovered from disk, not yet looking.
    Recovered,
}

impl ServerRole {
    /// The epoch it serves in, if it leads or follows.
    pub fn serving_epoch(self) -> Option<u64> {
        match self {
            ServerRole::Leading(epoch) | ServerRole::Following(epoch) => Some(epoch),
            ServerRole::Looking | ServerRole::Recovered => None,
        }
    }

    fn of(event: &Event) -> Option<ServerRole> {
        match &event.announced {
            Announcement::ZkServer(ZkServerEvent::Leading { epoch, .. }) => {
                Some(ServerRole::Leading(u64::from(epoch.0)))
            }
            // A follower without an epoch serves in no known epoch: not serving.
            Announcement::ZkServer(ZkServerEvent::Following { epoch, .. }) => {
                Some(epoch.map_or(ServerRole::Looking, |e| {
                    ServerRole::Following(u64::from(e.0))
                }))
            }
            Announcement::ZkServer(ZkServerEvent::Looking { .. }) => Some(ServerRole::Looking),
            Announcement::Shell(shell) if matches!(**shell, ShellEvent::Recovered { .. }) => {
                Some(ServerRole::Recovered)
            }
            _ => None,
        }
    }
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerRole::Leading(epoch) => write!(f, "leading in epoch {epoch}"),
            ServerRole::Following(epoch) => write!(f, "following in epoch {epoch}"),
            ServerRole::Looking => write!(f, "looking"),
            ServerRole::Recovered => write!(f, "recovered, not yet looking"),
        }
    }
}

/// The ensemble's servers as their role announcements leave them at some moment.
#[derive(Clone, Debug, Default)]
pub struct EnsembleRoles {
    /// Each server's last role announcement: the role and when (µs).
    pub last: BTreeMap<String, (ServerRole, u64)>,
}

impl EnsembleRoles {
    /// The roles `servers` announced at or before `until_us`.
    pub fn at(events: &[Event], servers: &[String], until_us: u64) -> EnsembleRoles {
        let mut last = BTreeMap::new();
        for event in events.iter().take_while(|e| e.at_us <= until_us) {
            if !servers.contains(&event.node) {
                continue;
            }
            if let Some(role) = ServerRole::of(event) {
                last.insert(event.node.clone(), (role, event.at_us));
            }
        }
        EnsembleRoles { last }
    }

    /// The newest epoch a server leads or follows in, by last announcements.
    pub fn newest_epoch(&self) -> Option<u64> {
        self.last
            .values()
            .filter_map(|(role, _)| role.serving_epoch())
            .max()
    }

    /// Whether `server` leads or follows in the newest epoch.
    pub fn in_newest_epoch(&self, server: &str) -> bool {
        let newest = self.newest_epoch();
        self.last
            .get(server)
            .is_some_and(|(role, _)| newest.is_some() && role.serving_epoch() == newest)
    }

    /// The server leading the newest epoch, if one still does.
    pub fn leader(&self) -> Option<&str> {
        let newest = self.newest_epoch()?;
        self.last
            .iter()
            .find(|(_, (role, _))| *role == ServerRole::Leading(newest))
            .map(|(name, _)| name.as_str())
    }
}

/// `zk-replica-agreement`.
pub fn replica_agreement(input: &CheckInput<'_>, servers: &[ServerFiles]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for files in servers {
        if let Some(error) = &files.error {
            violations.push(violation(
                "zk-replica-agreement",
                None,
                Some(&files.name),
                None,
                format!(
                    "{}: the transaction log cannot be read back: {error}",
                    files.name
                ),
            ));
        }
    }
    let roles = EnsembleRoles::at(input.events, &input.scenario.zk_names(), u64::MAX);
    let readable = servers.iter().filter(|f| f.error.is_none());
    let Some(reference) = readable
        .clone()
        .filter(|f| roles.in_newest_epoch(&f.name))
        .max_by_key(|f| (f.last_zxid(), f.log.len()))
    else {
        return violations;
    };
    for files in readable.filter(|f| f.name != reference.name) {
        // A server that has not rejoined the newest epoch may still hold a fork that
        // sync would truncate.
        let may_fork = !roles.in_newest_epoch(&files.name);
        if let Some(detail) = disagreement(reference, files, may_fork) {
            violations.push(violation(
                "zk-replica-agreement",
                None,
                Some(&files.name),
                None,
                detail,
            ));
        }
    }
    violations
}

/// Whether the reference's history lacks `zxid` only because it starts from a snapshot
/// taken after it: before the reference's log starts (or, with no log, up to its
/// snapshot) there is nothing to compare with.
fn before_reference_log(reference: &ServerFiles, zxid: Zxid) -> bool {
    match reference.log.first() {
        Some(first) => zxid < first.header.zxid,
        None => reference.snapshot.as_ref().is_some_and(|s| zxid <= s.zxid),
    }
}

/// The first way `files`' log departs from the reference's history, if it does. With
/// `may_fork`, the log may end in a fork: transactions the reference lacks, all of one
/// epoch, branching off where the reference went on in a newer epoch (see the module doc).
fn disagreement(reference: &ServerFiles, files: &ServerFiles, may_fork: bool) -> Option<String> {
    let history = &reference.log;
    let position: BTreeMap<Zxid, usize> = history
        .iter()
        .enumerate()
        .map(|(i, r)| (r.header.zxid, i))
        .collect();
    let (name, by) = (&files.name, &reference.name);
    // The first reference transaction after `zxid`.
    let after = |zxid: Zxid| history.get(history.partition_point(|r| r.header.zxid <= zxid));
    let mut expected: Option<usize> = None;
    let mut previous = Zxid::ZERO;
    // Where its log continues from: its snapshot, then each transaction it shares with the
    // reference (or holds from before the reference's log).
    let mut agreed = files.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid);
    // The first transaction of its fork.
    let mut fork: Option<&TxnRecord> = None;
    for record in &files.log {
        let zxid = record.header.zxid;
        let what = describe(&record.txn);
        match position.get(&zxid) {
            None if fork.is_none()
                && expected.is_none()
                && before_reference_log(reference, zxid) =>
            {
                agreed = agreed.max(zxid);
            }
            None if !may_fork => {
                return Some(format!(
                    "{name} holds transaction {zxid} ({what}) that {by}'s history does not"
                ));
            }
            None => match fork {
                Some(first) if zxid.epoch() != first.header.zxid.epoch() => {
                    return Some(format!(
                        "{name} holds {} ({}) and then {zxid} ({what}) of a newer epoch, \
                         neither in {by}'s history: kept across a sync into that epoch, {} \
                         was committed by it",
                        first.header.zxid,
                        describe(&first.txn),
                        first.header.zxid
                    ));
                }
                Some(_) => {}
                None => {
                    if let Some(skipped) = after(agreed).filter(|r| r.header.zxid < zxid) {
                        return Some(format!(
                            "{name} goes from {agreed} to {zxid} ({what}): it lacks {} ({}) \
                             that {by} has between them",
                            skipped.header.zxid,
                            describe(&skipped.txn)
                        ));
                    }
                    if let Some(next) =
                        after(zxid).filter(|r| r.header.zxid.epoch() <= zxid.epoch())
                    {
                        return Some(format!(
                            "{name} holds transaction {zxid} ({what}) that {by}'s history \
                             does not, though it goes on in that epoch with {} ({})",
                            next.header.zxid,
                            describe(&next.txn)
                        ));
                    }
                    fork = Some(record);
                }
            },
            Some(&i) => {
                if let Some(first) = fork {
                    return Some(format!(
                        "{name} holds {} ({}) that {by}'s history does not, and then {by}'s \
                         {zxid} ({what}) again",
                        first.header.zxid,
                        describe(&first.txn)
                    ));
                }
                if let Some(e) = expected {
                    if i != e {
                        let missing = &history[e.min(history.len() - 1)];
                        return Some(format!(
                            "{name} goes from {previous} to {zxid}: it lacks {} ({}) that {by} \
                             has between them",
                            missing.header.zxid,
                            describe(&missing.txn)
                        ));
                    }
                }
                if history[i] != *record {
                    return Some(format!(
                        "{name} and {by} hold different transactions under {zxid}: {what} vs {}",
                        describe(&history[i].txn)
                    ));
                }
                expected = Some(i + 1);
                previous = zxid;
                agreed = agreed.max(zxid);
            }
        }
    }
    None
}

/// The final sessions and ephemerals of a server: its snapshot, then its log replayed.
#[derive(Clone, Debug, Default)]
pub struct FinalSessions {
    /// Live sessions.
    pub sessions: BTreeSet<SessionId>,
    /// Ephemeral znode path → owner.
    pub ephemerals: BTreeMap<String, SessionId>,
}

impl FinalSessions {
    fn of(files: &ServerFiles) -> FinalSessions {
        let mut state = FinalSessions::default();
        let base = files.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid);
        if let Some(snapshot) = &files.snapshot {
            state.sessions = snapshot.sessions.iter().map(|(s, _)| *s).collect();
            for node in &snapshot.nodes {
                if node.stat.ephemeral_owner != SessionId::NONE {
                    state
                        .ephemerals
                        .insert(node.path.clone(), node.stat.ephemeral_owner);
                }
            }
        }
        for record in files.log.iter().filter(|r| r.header.zxid > base) {
            state.apply(&record.txn);
        }
        state
    }

    fn apply(&mut self, txn: &Txn) {
        match txn {
            Txn::CreateSession { session, .. } => {
                self.sessions.insert(*session);
            }
            Txn::CloseSession { session } => {
                self.sessions.remove(session);
                self.ephemerals.retain(|_, owner| owner != session);
            }
            Txn::Create {
                path,
                ephemeral_owner,
                ..
            } if *ephemeral_owner != SessionId::NONE => {
                self.ephemerals.insert(path.clone(), *ephemeral_owner);
            }
            Txn::Delete { path } => {
                self.ephemerals.remove(path);
            }
            Txn::Multi { txns } => txns.iter().for_each(|t| self.apply(t)),
            _ => {}
        }
    }
}

/// `zk-ephemeral-lifetime`.
pub fn ephemeral_lifetime(input: &CheckInput<'_>, servers: &[ServerFiles]) -> Vec<Violation> {
    let check = "zk-ephemeral-lifetime";
    let roles = EnsembleRoles::at(input.events, &input.scenario.zk_names(), u64::MAX);
    let Some(reference) = servers
        .iter()
        .filter(|f| f.error.is_none() && roles.in_newest_epoch(&f.name))
        .max_by_key(|f| (f.last_zxid(), f.log.len()))
    else {
        return Vec::new();
    };
    let state = FinalSessions::of(reference);
    let mut violations = Vec::new();
    for (path, owner) in &state.ephemerals {
        if !state.sessions.contains(owner) {
            violations.push(violation(
                check,
                None,
                Some(&reference.name),
                None,
                format!(
                    "ephemeral {path} outlives its session {owner} in the final state of {}",
                    reference.name
                ),
            ));
        }
    }
    // What clients were told.
    let mut created: BTreeMap<String, (SessionId, String, u64)> = BTreeMap::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut calls: BTreeMap<(String, u64), crate::zk::Op> = BTreeMap::new();
    for entry in input.history {
        match &entry.op {
            Op::ZkCall { xid, request, .. } => {
                calls.insert((entry.node.clone(), *xid), (**request).clone());
                if let crate::zk::Op::Delete { path, .. } = &**request {
                    deleted.insert(path.clone());
                }
            }
            Op::ZkReturn {
                session,
                xid,
                outcome,
            } => {
                let ZkOutcome::Ok {
                    result: OpResult::Created { path, .. },
                    ..
                } = &**outcome
                else {
                    continue;
                };
                let ephemeral = matches!(
                    calls.get(&(entry.node.clone(), *xid)),
                    Some(crate::zk::Op::Create {
                        mode: CreateMode::Ephemeral | CreateMode::EphemeralSequential,
                        ..
                    })
                );
                if ephemeral {
                    created.insert(
                        path.clone(),
                        (SessionId(*session), entry.node.clone(), entry.at_us),
                    );
                }
            }
            Op::ZkSession { session, event, .. }
                if &**event == "expired" || &**event == "closed" =>
            {
                let session = SessionId(*session);
                if state.sessions.contains(&session) && &**event == "expired" {
                    violations.push(violation(check, None, Some(&entry.node), Some(entry.at_us), format!("{} was told its session {session} expired, but it is alive in the final state", entry.node)));
                }
            }
            _ => {}
        }
    }
    for (path, (session, client, at_us)) in created {
        if state.sessions.contains(&session)
            && !deleted.contains(&path)
            && !state.ephemerals.contains_key(&path)
        {
            violations.push(violation(check, None, Some(&client), Some(at_us), format!("ephemeral {path} that {client} created in session {session} is gone though the session lives and nobody deleted it")));
        }
    }
    violations
}

/// `zk-session-monotonic`.
pub fn session_monotonic(input: &CheckInput<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut seen: BTreeMap<&str, (u64, u64)> = BTreeMap::new(); // node → (zxid, at)
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for entry in input.history {
        let zxid = match &entry.op {
            Op::ZkStart { .. } => {
                seen.remove(entry.node.as_str());
                continue;
            }
            Op::ZkReturn { outcome, .. } => match &**outcome {
                ZkOutcome::Ok { zxid, .. } | ZkOutcome::Fail { zxid, .. } => *zxid,
                _ => continue,
            },
            Op::ZkSession {
                zxid: Some(zxid), ..
            } => *zxid,
            Op::ZkWatch { zxid, .. } => *zxid,
            _ => continue,
        };
        let node = entry.node.as_str();
        if let Some(&(before, at)) = seen.get(node) {
            if zxid < before && reported.insert(node) {
                violations.push(violation(
                    "zk-session-monotonic",
                    None,
                    Some(node),
                    Some(entry.at_us),
                    format!(
                        "{node} saw zxid {} at {:.3}s after zxid {} at {:.3}s",
                        Zxid(zxid),
                        entry.at_us as f64 / 1e6,
                        Zxid(before),
                        at as f64 / 1e6
                    ),
                ));
            }
        }
        if seen.get(node).is_none_or(|(z, _)| zxid >= *z) {
            seen.insert(node, (zxid, entry.at_us));
        }
    }
    violations
}

/// Whether a history entry is a definite answer to an ensemble client.
pub fn is_definite_zk_answer(entry: &HistoryEntry) -> bool {
    match &entry.op {
        Op::ZkReturn { outcome, .. } => {
            matches!(&**outcome, ZkOutcome::Ok { .. } | ZkOutcome::Fail { .. })
        }
        _ => false,
    }
}

/// Search steps allowed per register before the linearizability check gives up.
const LINEARIZABILITY_BUDGET: u64 = 20_000_000;

/// `zk-linearizable-writes`: each register's creates and compare-and-sets, as clients saw
/// them, have a linearization consistent with real time. Reads are left out: ZooKeeper
/// serves them from the connected server, sequentially consistent, not linearizable.
pub fn linearizable_writes(input: &CheckInput<'_>) -> Vec<Violation> {
    use super::linearizable::{
        check, Operation, Outcome, RegisterOp, RegisterRet, VersionedRegister,
    };
    use crate::zk::workload::{decode_value, register_of};
    use crate::zk::ZkError;

    let mut client_ids: BTreeMap<&str, u64> = BTreeMap::new();
    let mut incarnation: BTreeMap<&str, u64> = BTreeMap::new();
    // (node, incarnation, xid) → (register, index into its history)
    let mut open: BTreeMap<(&str, u64, u64), (u32, usize)> = BTreeMap::new();
    // `None`: a definite no-op, dropped from the history.
    let mut registers: BTreeMap<u32, Vec<Option<Operation<VersionedRegister>>>> = BTreeMap::new();
    for entry in input.history {
        let node = entry.node.as_str();
        let next_id = client_ids.len() as u64 + 1;
        let client = *client_ids.entry(node).or_insert(next_id);
        match &entry.op {
            Op::ZkStart { incarnation: i } => {
                incarnation.insert(node, *i);
            }
            Op::ZkCall { xid, request, .. } => {
                let op = match &**request {
                    crate::zk::Op::Create { path, data, .. } => register_of(path)
                        .zip(decode_value(data))
                        .map(|(k, v)| (k, RegisterOp::Create(v))),
                    crate::zk::Op::SetData {
                        path,
                        data,
                        version,
                    } => register_of(path).zip(decode_value(data)).map(|(k, v)| {
                        (
                            k,
                            RegisterOp::Set {
                                value: v,
                                expected_version: *version,
                            },
                        )
                    }),
                    _ => None,
                };
                if let Some((k, op)) = op {
                    let ops = registers.entry(k).or_default();
                    ops.push(Some(Operation {
                        client,
                        call_us: entry.at_us,
                        return_us: None,
                        op,
                        ret: None,
                    }));
                    open.insert(
                        (node, incarnation.get(node).copied().unwrap_or(0), *xid),
                        (k, ops.len() - 1),
                    );
                }
            }
            Op::ZkReturn { xid, outcome, .. } => {
                let key = (node, incarnation.get(node).copied().unwrap_or(0), *xid);
                let Some((k, index)) = open.remove(&key) else {
                    continue;
                };
                let ops = registers.get_mut(&k).expect("opened");
                let ret = match &**outcome {
                    ZkOutcome::Ok {
                        result: OpResult::Created { .. },
                        ..
                    } => Some(Some(RegisterRet::Ok)),
                    ZkOutcome::Ok {
                        result: OpResult::DataSet { stat },
                        ..
                    } => Some(Some(RegisterRet::Version(stat.version))),
                    ZkOutcome::Fail { error, .. } => match error.error {
                        ZkError::NodeExists => Some(Some(RegisterRet::NodeExists)),
                        ZkError::NoNode => Some(Some(RegisterRet::NoNode)),
                        ZkError::BadVersion => Some(Some(RegisterRet::BadVersion)),
                        // Refused before it was ordered (e.g. its session had expired).
                        _ => None,
                    },
                    ZkOutcome::Ok { .. } => None,
                    ZkOutcome::NotSent { .. } => None,
                    ZkOutcome::Unknown { .. } => Some(None),
                };
                match ret {
                    Some(Some(ret)) => {
                        if let Some(op) = ops[index].as_mut() {
                            op.return_us = Some(entry.at_us);
                            op.ret = Some(ret);
                        }
                    }
                    // Unknown: it may or may not have happened, any time after its call.
                    Some(None) => {}
                    // Refused before it was ordered: it changed nothing.
                    None => ops[index] = None,
                }
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    for (k, ops) in registers {
        let ops: Vec<Operation<VersionedRegister>> = ops.into_iter().flatten().collect();
        let path = crate::zk::workload::register_path(k);
        match check(&VersionedRegister { value: None, version: 0 }, &ops, LINEARIZABILITY_BUDGET) {
            Outcome::Linearizable { .. } => {}
            Outcome::NotLinearizable(failure) => {
                let first = failure.stuck_at.iter().filter_map(|&i| ops.get(i)).map(|o| o.call_us).min();
                violations.push(violation(
                    "zk-linearizable-writes",
                    None,
                    None,
                    first,
                    format!("register {path}: {} operations are not linearizable: {}", ops.len(), failure.explained),
                ));
            }
            Outcome::Inconclusive { explored } => violations.push(violation(
                "zk-linearizable-writes",
                None,
                None,
                None,
                format!("register {path}: inconclusive: the search gave up after {explored} steps over {} operations", ops.len()),
            )),
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    //! `zk-replica-agreement` on hand-made role announcements and logs: zk-1 leads epoch 2,
    //! zk-2 follows it; zk-3's role and log vary. Zxids are written (epoch, counter).
    use super::*;
    use crate::scenario::{parse, Scenario};
    use crate::zk::{Epoch, TxnHeader, Xid};

    fn scenario() -> Scenario {
        let text = "name = \"t\"\nduration = \"10s\"\nheal = \"5s\"\n[cluster]\nzookeepers = 3\n\
                    [[zk_client]]\ncount = 1\nrate = 1\n";
        parse(Path::new("t.toml"), text.as_bytes()).unwrap()
    }

    fn role(at_us: u64, node: &str, kind: &str, epoch: u64) -> Event {
        crate::check::test_support::zk_role(at_us, node, kind, epoch)
    }

    /// The transaction at (epoch, counter): `setData /r v<counter>`, or `v<counter + 100>`
    /// for a different transaction under the same zxid.
    fn txn(epoch: u32, counter: u32, different: bool) -> TxnRecord {
        TxnRecord {
            header: TxnHeader {
                zxid: Zxid::new(Epoch(epoch), counter),
                session: SessionId::NONE,
                xid: Xid(0),
                time_ms: 0,
            },
            txn: Txn::SetData {
                path: "/r".into(),
                data: Vec::new(),
                version: counter as i32 + if different { 100 } else { 0 },
            },
        }
    }

    fn files(name: &str, log: &[(u32, u32)]) -> ServerFiles {
        ServerFiles {
            name: name.into(),
            log: log.iter().map(|&(e, c)| txn(e, c, false)).collect(),
            ..ServerFiles::default()
        }
    }

    /// The history of epochs 1 and 2 that zk-1 (leader of 2) and zk-2 hold.
    const HISTORY: &[(u32, u32)] = &[(1, 1), (1, 2), (2, 1), (2, 2)];

    /// zk-1 leads epoch 2 and zk-2 follows it; zk-3 last announced `zk3_role`.
    fn agreement(zk3_role: Event, zk2: ServerFiles, zk3: ServerFiles) -> Vec<Violation> {
        let s = scenario();
        let events = [
            role(1_000, "zk-1", "leading", 1),
            role(1_000, "zk-2", "following", 1),
            role(1_000, "zk-3", "following", 1),
            role(5_000, "zk-1", "leading", 2),
            role(5_000, "zk-2", "following", 2),
            zk3_role,
        ];
        let input = CheckInput {
            scenario: &s,
            events: &events,
            history: &[],
            nodes: crate::check::NodeData::Dir(Path::new("/nonexistent")),
        };
        replica_agreement(&input, &[files("zk-1", HISTORY), zk2, zk3])
    }

    fn deposed() -> Event {
        role(4_000, "zk-3", "leading", 1)
    }

    #[test]
    fn a_deposed_leaders_uncommitted_suffix_of_its_old_epoch_is_what_trunc_removes() {
        // zk-3 led epoch 1, was deposed while paused, and logged (1,3), (1,4) on resuming;
        // the run ended before it noticed. Its follower can end the same way, as can a
        // server looking or restarted.
        let zk3 = files("zk-3", &[(1, 1), (1, 2), (1, 3), (1, 4)]);
        assert_eq!(
            agreement(deposed(), files("zk-2", HISTORY), zk3.clone()),
            []
        );
        let follower = role(4_000, "zk-3", "following", 1);
        assert_eq!(agreement(follower, files("zk-2", HISTORY), zk3.clone()), []);
        let looking = role(6_000, "zk-3", "looking", 1);
        assert_eq!(agreement(looking, files("zk-2", HISTORY), zk3.clone()), []);
        // Forking right after a SNAP (its snapshot at (1,2), its log after it).
        let snapped = ServerFiles {
            snapshot: Some(Snapshot {
                zxid: Zxid::new(Epoch(1), 2),
                nodes: Vec::new(),
                sessions: Vec::new(),
            }),
            ..files("zk-3", &[(1, 3), (1, 4)])
        };
        assert_eq!(agreement(deposed(), files("zk-2", HISTORY), snapped), []);
        // A prefix of the history is fine too.
        assert_eq!(
            agreement(deposed(), files("zk-2", HISTORY), files("zk-3", &[(1, 1)])),
            []
        );
    }

    #[test]
    fn a_server_of_the_newest_epoch_holds_no_transaction_the_reference_lacks() {
        // ZOOKEEPER-1154: zk-2 follows epoch 2 but kept the orphan (1,3) it was not
        // truncated of.
        let zk2 = files("zk-2", &[(1, 1), (1, 2), (1, 3), (2, 1)]);
        let found = agreement(deposed(), zk2, files("zk-3", &[(1, 1)]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].node.as_deref(), Some("zk-2"));
        assert!(found[0].detail.contains("0x100000003"), "{found:?}");
    }

    #[test]
    fn a_different_transaction_under_the_same_zxid_is_flagged_in_any_epoch() {
        let mut zk2 = files("zk-2", HISTORY);
        zk2.log[2] = txn(2, 1, true);
        let found = agreement(deposed(), zk2, files("zk-3", &[(1, 1)]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0]
            .detail
            .contains("different transactions under 0x200000001"));

        // One zxid, one leader: an old-epoch server too, fork or not after it.
        let mut zk3 = files("zk-3", &[(1, 1), (1, 2), (1, 3)]);
        zk3.log[1] = txn(1, 2, true);
        let found = agreement(deposed(), files("zk-2", HISTORY), zk3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].node.as_deref(), Some("zk-3"));
        assert!(found[0]
            .detail
            .contains("different transactions under 0x100000002"));
    }

    #[test]
    fn a_gap_followed_by_agreement_is_flagged_in_any_epoch() {
        let zk2 = files("zk-2", &[(1, 1), (2, 1), (2, 2)]);
        let found = agreement(deposed(), zk2, files("zk-3", &[(1, 1)]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].detail.contains("it lacks 0x100000002"),
            "{found:?}"
        );

        let zk3 = files("zk-3", &[(1, 1), (2, 1)]);
        let found = agreement(deposed(), files("zk-2", HISTORY), zk3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].node.as_deref(), Some("zk-3"));
        assert!(
            found[0].detail.contains("it lacks 0x100000002"),
            "{found:?}"
        );
    }

    #[test]
    fn a_fork_is_only_an_uncommitted_suffix_where_the_reference_moved_to_a_newer_epoch() {
        let flagged = |log: &[(u32, u32)], expected: &str| {
            let found = agreement(deposed(), files("zk-2", HISTORY), files("zk-3", log));
            assert_eq!(found.len(), 1, "{log:?}: {found:?}");
            assert_eq!(found[0].node.as_deref(), Some("zk-3"));
            assert!(found[0].detail.contains(expected), "{log:?}: {found:?}");
        };
        // Agreement again after its own transaction: the orphan survived a sync.
        flagged(
            &[(1, 1), (1, 2), (1, 3), (2, 1)],
            "0x200000001 (setData /r v1) again",
        );
        // The fork skips a transaction of the history: it lacks (1,2).
        flagged(&[(1, 1), (1, 3)], "it lacks 0x100000002");
        // A fork that spans epochs: (1,3) was kept across a sync into epoch 3 and so
        // committed, yet the newest history lacks it.
        flagged(
            &[(1, 1), (1, 2), (1, 3), (3, 1)],
            "kept across a sync into that epoch",
        );
        // The history goes on in the fork's own epoch: every server logs an epoch's
        // proposals in order, so a history with (2,4) cannot lack zk-3's (2,3).
        let s = scenario();
        let events = [
            role(5_000, "zk-1", "leading", 2),
            role(5_000, "zk-2", "following", 2),
            role(6_000, "zk-3", "looking", 2),
        ];
        let input = CheckInput {
            scenario: &s,
            events: &events,
            history: &[],
            nodes: crate::check::NodeData::Dir(Path::new("/nonexistent")),
        };
        let found = replica_agreement(
            &input,
            &[
                files("zk-1", &[(2, 1), (2, 2), (2, 4)]),
                files("zk-2", &[(2, 1), (2, 2), (2, 4)]),
                files("zk-3", &[(2, 1), (2, 2), (2, 3)]),
            ],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0]
            .detail
            .contains("goes on in that epoch with 0x200000004"));
    }

    #[test]
    fn the_reference_is_a_server_of_the_newest_epoch() {
        // zk-3 led epoch 1 and holds the greatest zxid (its uncommitted (1,9) is above every
        // epoch-1 zxid, but below epoch 2's): the reference is still zk-1 of epoch 2.
        let roles = EnsembleRoles::at(
            &[
                role(4_000, "zk-3", "leading", 1),
                role(5_000, "zk-1", "leading", 2),
                role(5_000, "zk-2", "following", 2),
                role(6_000, "zk-client-1", "leading", 9),
            ],
            &scenario().zk_names(),
            u64::MAX,
        );
        assert_eq!(roles.newest_epoch(), Some(2));
        assert_eq!(roles.leader(), Some("zk-1"));
        assert!(roles.in_newest_epoch("zk-2") && !roles.in_newest_epoch("zk-3"));
    }
}
