//! Checks of the ensemble, from the client history and each server's files read back from
//! disk after the run — never from the servers' memory.
//!
//! - `zk-replica-agreement`: every server's transaction log is a contiguous run of one
//!   history (the log of the server with the newest transaction): no server holds a
//!   transaction the others' history lacks, or a different transaction under the same zxid.
//!   Servers not serving at the end are skipped (their uncommitted tails are legitimately
//!   unreconciled; `converges` reports them).
//! - `zk-ephemeral-lifetime`: in the final state (newest snapshot + log of that server), every
//!   ephemeral znode's session is alive; no session a client was told expired is alive; and
//!   an ephemeral a client created, never deleted, whose session lives, still exists.
//! - `zk-session-monotonic`: each client process sees non-decreasing zxids, across reconnects.
//!
//! The final state is replayed here with a small model of sessions and ephemerals of its own
//! (not the servers' data tree), from the on-disk formats: log records (key = zxid, value =
//! `TxnRecord` JSON) and snapshots (JSON).

use super::{CheckInput, Violation};
use crate::disk::{read_whole, Disk, FsDisk};
use crate::log::{Log, LogConfig};
use crate::sim::{HistoryEntry, Op, ZkOutcome};
use crate::zk::tree::Snapshot;
use crate::zk::{CreateMode, OpResult, SessionId, Txn, TxnRecord, Zxid};
use std::collections::{BTreeMap, BTreeSet};
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
pub fn read_server_files(run_dir: &Path, name: &str) -> ServerFiles {
    let mut files = ServerFiles {
        name: name.to_string(),
        ..ServerFiles::default()
    };
    if let Err(error) = read_into(&run_dir.join(name), &mut files) {
        files.error = Some(error);
    }
    files
}

fn read_into(node_dir: &Path, files: &mut ServerFiles) -> Result<(), String> {
    let disk = FsDisk::new(node_dir).map_err(|e| e.to_string())?;
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

fn violation(check: &str, node: Option<&str>, at_us: Option<u64>, detail: String) -> Violation {
    Violation {
        check: check.to_string(),
        detail,
        at_ms: at_us.map(|us| us / 1000),
        partition: None,
        node: node.map(str::to_string),
    }
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

/// Servers serving at the end of the run: their last announcement of a role is leading or
/// following (after a sync with the leader). A server still looking, or restarted and not yet
/// synced, may hold an unreconciled tail that the protocol would still truncate.
fn serving_at_end(input: &CheckInput<'_>) -> BTreeSet<String> {
    let mut last_role: BTreeMap<&str, &str> = BTreeMap::new();
    for event in input.events {
        if matches!(
            event.kind.as_str(),
            "leading" | "following" | "looking" | "recovered"
        ) {
            last_role.insert(&event.node, &event.kind);
        }
    }
    last_role
        .into_iter()
        .filter(|(_, role)| matches!(*role, "leading" | "following"))
        .map(|(node, _)| node.to_string())
        .collect()
}

/// `zk-replica-agreement`.
pub fn replica_agreement(input: &CheckInput<'_>, servers: &[ServerFiles]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for files in servers {
        if let Some(error) = &files.error {
            violations.push(violation(
                "zk-replica-agreement",
                Some(&files.name),
                None,
                format!(
                    "{}: the transaction log cannot be read back: {error}",
                    files.name
                ),
            ));
        }
    }
    let rejoined = serving_at_end(input);
    let candidates: Vec<&ServerFiles> = servers
        .iter()
        .filter(|f| f.error.is_none() && rejoined.contains(&f.name))
        .collect();
    let Some(reference) = candidates
        .iter()
        .max_by_key(|f| (f.last_zxid(), f.log.len()))
    else {
        return violations;
    };
    let position: BTreeMap<Zxid, usize> = reference
        .log
        .iter()
        .enumerate()
        .map(|(i, r)| (r.header.zxid, i))
        .collect();
    for files in &candidates {
        if files.name == reference.name {
            continue;
        }
        let mut expected: Option<usize> = None;
        let mut previous = Zxid::ZERO;
        for record in &files.log {
            let zxid = record.header.zxid;
            match position.get(&zxid) {
                None => {
                    // Before the reference's log starts is fine (the reference took a SNAP).
                    if reference.log.first().is_some_and(|f| zxid < f.header.zxid)
                        && expected.is_none()
                    {
                        continue;
                    }
                    violations.push(violation(
                        "zk-replica-agreement",
                        Some(&files.name),
                        None,
                        format!(
                            "{} holds transaction {zxid} ({}) that {}'s history does not",
                            files.name,
                            describe(&record.txn),
                            reference.name
                        ),
                    ));
                    break;
                }
                Some(&i) => {
                    if let Some(e) = expected {
                        if i != e {
                            let missing = &reference.log[e.min(reference.log.len() - 1)];
                            violations.push(violation(
                                "zk-replica-agreement",
                                Some(&files.name),
                                None,
                                format!("{} goes from {previous} to {zxid}: it lacks {} ({}) that {} has between them", files.name, missing.header.zxid, describe(&missing.txn), reference.name),
                            ));
                            break;
                        }
                    }
                    if reference.log[i] != *record {
                        violations.push(violation(
                            "zk-replica-agreement",
                            Some(&files.name),
                            None,
                            format!(
                                "{} and {} hold different transactions under {zxid}: {} vs {}",
                                files.name,
                                reference.name,
                                describe(&record.txn),
                                describe(&reference.log[i].txn)
                            ),
                        ));
                        break;
                    }
                    expected = Some(i + 1);
                    previous = zxid;
                }
            }
        }
    }
    violations
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
    let rejoined = serving_at_end(input);
    let Some(reference) = servers
        .iter()
        .filter(|f| f.error.is_none() && rejoined.contains(&f.name))
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
                calls.insert((entry.node.clone(), *xid), request.clone());
                if let crate::zk::Op::Delete { path, .. } = request {
                    deleted.insert(path.clone());
                }
            }
            Op::ZkReturn {
                session,
                xid,
                outcome:
                    ZkOutcome::Ok {
                        result: OpResult::Created { path, .. },
                        ..
                    },
            } => {
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
            Op::ZkSession { session, event, .. } if event == "expired" || event == "closed" => {
                let session = SessionId(*session);
                if state.sessions.contains(&session) && event == "expired" {
                    violations.push(violation(check, Some(&entry.node), Some(entry.at_us), format!("{} was told its session {session} expired, but it is alive in the final state", entry.node)));
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
            violations.push(violation(check, Some(&client), Some(at_us), format!("ephemeral {path} that {client} created in session {session} is gone though the session lives and nobody deleted it")));
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
            Op::ZkReturn {
                outcome: ZkOutcome::Ok { zxid, .. } | ZkOutcome::Fail { zxid, .. },
                ..
            } => *zxid,
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
    matches!(
        &entry.op,
        Op::ZkReturn {
            outcome: ZkOutcome::Ok { .. } | ZkOutcome::Fail { .. },
            ..
        }
    )
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
                let op = match request {
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
                let ret = match outcome {
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
                    first,
                    format!("register {path}: {} operations are not linearizable: {}", ops.len(), failure.explained),
                ));
            }
            Outcome::Inconclusive { explored } => violations.push(violation(
                "zk-linearizable-writes",
                None,
                None,
                format!("register {path}: inconclusive: the search gave up after {explored} steps over {} operations", ops.len()),
            )),
        }
    }
    violations
}
