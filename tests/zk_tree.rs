//! Model-based test of the ensemble's data tree: random writes of three sessions (create in
//! all four modes, delete, setData with right/wrong/any versions, check, multi, close and
//! create session, leader expiry) over a small path alphabet, each decided by `prep` and
//! applied by `apply` at increasing zxids, against an independent model (a map of path →
//! data, versions, zxids and owner that recomputes the rules from scratch).
//!
//! After every step (semantics.md, "ZooKeeper-like ensemble"):
//! - `apply`'s result and events equal the model's, and `prep` ok ⇒ `apply` ok;
//! - the observable state (get_data / stat / children of every path, sessions, ephemerals)
//!   equals the model's, and the tree's invariants hold;
//! - `from_snapshot(snapshot)` rebuilds an equal tree with the same digest.
//!
//! Also: `apply` is total on arbitrary transactions (a failed one changes nothing but the
//! zxid), and `from_snapshot` never panics on arbitrary or mutated snapshots — it returns an
//! error or a consistent tree that snapshots back to its input.

use ksim::zk::tree::{DataTree, Snapshot, SnapshotNode};
use ksim::zk::{
    CreateMode, EventType, Op, OpError, OpResult, SessionId, Stat, Txn, TxnHeader, WatchedEvent,
    Xid, ZkError, Zxid,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Paths ops name directly: valid ones, then the root and invalid ones.
const PATHS: [&str; 9] = [
    "/a", "/b", "/a/x", "/a/y", "/b/x", "/", "a", "/a/", "/a/./x",
];
const VALID_PATHS: usize = 5;
/// Prefixes of sequential creates.
const PREFIXES: [&str; 3] = ["/a/s", "/b/s", "/a/"];
/// Sessions 1–3 start live; 4 only lives if a step creates it; 0 is `SessionId::NONE`.
const SESSIONS: u64 = 5;

// --- the model ---

#[derive(Clone, Debug)]
struct MNode {
    data: Vec<u8>,
    czxid: u64,
    mzxid: u64,
    pzxid: u64,
    version: i32,
    cversion: i32,
    owner: u64,
}

#[derive(Clone, Debug, Default)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    sessions: BTreeMap<u64, u32>,
}

type Outcome = (Result<OpResult, OpError>, Vec<WatchedEvent>);

fn valid(path: &str) -> bool {
    path == "/"
        || (path.starts_with('/')
            && path[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0')))
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => panic!("model: {path} has no parent"),
    }
}

fn event(event: EventType, path: &str) -> WatchedEvent {
    WatchedEvent {
        event,
        path: path.to_string(),
    }
}

impl Model {
    fn new() -> Model {
        let root = MNode {
            data: vec![],
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            version: 0,
            cversion: 0,
            owner: 0,
        };
        let mut model = Model::default();
        model.nodes.insert("/".to_string(), root);
        model
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| p.as_str() != "/" && parent_of(p) == path)
            .map(|p| p[p.rfind('/').unwrap() + 1..].to_string())
            .collect()
    }

    fn stat(&self, path: &str) -> Option<Stat> {
        let n = self.nodes.get(path)?;
        Some(Stat {
            czxid: Zxid(n.czxid),
            mzxid: Zxid(n.mzxid),
            pzxid: Zxid(n.pzxid),
            version: n.version,
            cversion: n.cversion,
            ephemeral_owner: SessionId(n.owner),
            data_length: n.data.len() as u32,
            num_children: self.children(path).len() as u32,
        })
    }

    fn ephemerals_of(&self, session: u64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.owner == session && session != 0)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A client write at `zxid`, as ZooKeeper defines it.
    fn write(&mut self, session: u64, op: &Op, zxid: u64) -> Outcome {
        let mut events = vec![];
        let is_read = matches!(
            op,
            Op::GetData { .. } | Op::Exists { .. } | Op::GetChildren { .. } | Op::Sync { .. }
        );
        if is_read {
            return (Err(ZkError::BadArguments.into()), events);
        }
        if session != 0 && !self.sessions.contains_key(&session) {
            return (Err(ZkError::SessionExpired.into()), events);
        }
        let result = match op {
            Op::Check { .. } => Err(ZkError::BadArguments.into()),
            Op::CloseSession if session == 0 => Err(ZkError::BadArguments.into()),
            Op::CloseSession => Ok(self.close(session, zxid, &mut events)),
            Op::Multi { ops } => {
                let mut after = self.clone();
                let mut results = vec![];
                let mut failed = None;
                for (i, op) in ops.iter().enumerate() {
                    match after.one(session, op, zxid, &mut events) {
                        Ok(result) => results.push(result),
                        Err(error) => {
                            failed = Some(OpError {
                                error,
                                index: Some(i),
                            });
                            break;
                        }
                    }
                }
                match failed {
                    Some(error) => {
                        events.clear();
                        Err(error)
                    }
                    None => {
                        *self = after;
                        Ok(OpResult::Multi { results })
                    }
                }
            }
            op => self.one(session, op, zxid, &mut events).map_err(Into::into),
        };
        (result, events)
    }

    fn check_version(&self, path: &str, version: i32) -> Result<&MNode, ZkError> {
        if !valid(path) {
            return Err(ZkError::BadArguments);
        }
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        if version != -1 && version != node.version {
            return Err(ZkError::BadVersion);
        }
        Ok(node)
    }

    fn one(
        &mut self,
        session: u64,
        op: &Op,
        zxid: u64,
        events: &mut Vec<WatchedEvent>,
    ) -> Result<OpResult, ZkError> {
        match op {
            Op::Create { path, data, mode } => {
                if mode.is_ephemeral() && session == 0 {
                    return Err(ZkError::BadArguments);
                }
                let path = if mode.is_sequential() {
                    let probe = format!("{path}0000000000");
                    if !valid(&probe) {
                        return Err(ZkError::BadArguments);
                    }
                    let parent = self.nodes.get(parent_of(&probe)).ok_or(ZkError::NoNode)?;
                    format!("{path}{:010}", parent.cversion)
                } else {
                    path.clone()
                };
                if !valid(&path) {
                    return Err(ZkError::BadArguments);
                }
                if path == "/" {
                    return Err(ZkError::NodeExists);
                }
                let parent = self.nodes.get(parent_of(&path)).ok_or(ZkError::NoNode)?;
                if parent.owner != 0 {
                    return Err(ZkError::NoChildrenForEphemerals);
                }
                if self.nodes.contains_key(&path) {
                    return Err(ZkError::NodeExists);
                }
                let owner = if mode.is_ephemeral() { session } else { 0 };
                let node = MNode {
                    data: data.clone(),
                    czxid: zxid,
                    mzxid: zxid,
                    pzxid: zxid,
                    version: 0,
                    cversion: 0,
                    owner,
                };
                self.nodes.insert(path.clone(), node);
                events.push(event(EventType::NodeCreated, &path));
                self.child_changed(&path, zxid, events);
                let stat = self.stat(&path).unwrap();
                Ok(OpResult::Created { path, stat })
            }
            Op::Delete { path, version } => {
                if path == "/" {
                    return Err(ZkError::BadArguments);
                }
                self.check_version(path, *version)?;
                if !self.children(path).is_empty() {
                    return Err(ZkError::NotEmpty);
                }
                self.remove(path, zxid, events);
                Ok(OpResult::Deleted)
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                self.check_version(path, *version)?;
                let node = self.nodes.get_mut(path).unwrap();
                node.data = data.clone();
                node.version += 1;
                node.mzxid = zxid;
                events.push(event(EventType::NodeDataChanged, path));
                Ok(OpResult::DataSet {
                    stat: self.stat(path).unwrap(),
                })
            }
            Op::Check { path, version } => {
                self.check_version(path, *version)?;
                Ok(OpResult::Checked)
            }
            _ => Err(ZkError::BadArguments),
        }
    }

    fn child_changed(&mut self, path: &str, zxid: u64, events: &mut Vec<WatchedEvent>) {
        let parent = parent_of(path).to_string();
        let node = self.nodes.get_mut(&parent).unwrap();
        node.cversion += 1;
        node.pzxid = zxid;
        events.push(event(EventType::NodeChildrenChanged, &parent));
    }

    fn remove(&mut self, path: &str, zxid: u64, events: &mut Vec<WatchedEvent>) {
        self.nodes.remove(path);
        events.push(event(EventType::NodeDeleted, path));
        self.child_changed(path, zxid, events);
    }

    fn close(&mut self, session: u64, zxid: u64, events: &mut Vec<WatchedEvent>) -> OpResult {
        for path in self.ephemerals_of(session) {
            self.remove(&path, zxid, events);
        }
        self.sessions.remove(&session);
        OpResult::Closed
    }
}

// --- generated steps ---

#[derive(Clone, Copy, Debug)]
enum Version {
    Any,
    Right,
    Wrong,
}

#[derive(Clone, Debug)]
enum Target {
    /// One of `PATHS`.
    Named(usize),
    /// The i-th existing znode (mod their number): reaches sequential names.
    Existing(usize),
}

#[derive(Clone, Debug)]
enum GenOp {
    Create {
        target: Target,
        sequential_prefix: Option<usize>,
        ephemeral: bool,
        data: u8,
    },
    Delete(Target, Version),
    SetData(Target, Version, u8),
    Check(Target, Version),
    Multi(Vec<GenOp>),
    CloseSession,
    Read(Target),
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        session: u64,
        op: GenOp,
    },
    /// `Txn::CreateSession` (the server proposes it on connect).
    CreateSession {
        session: u64,
        timeout_ms: u32,
    },
    /// `Txn::CloseSession` proposed by the leader (expiry), live or not.
    Expire {
        session: u64,
    },
}

/// A path to act on; `existing` weighs how often it is one of the znodes.
fn target_weighted(existing: u32) -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => (0..VALID_PATHS).prop_map(Target::Named),
        1 => (VALID_PATHS..PATHS.len()).prop_map(Target::Named),
        existing => any::<usize>().prop_map(Target::Existing),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    target_weighted(5)
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::Any),
        Just(Version::Right),
        Just(Version::Wrong)
    ]
}

fn simple_op() -> impl Strategy<Value = GenOp> {
    prop_oneof![
        6 => (target_weighted(1), prop::option::weighted(0.3, 0..PREFIXES.len()), any::<bool>(), 0u8..4)
            .prop_map(|(target, sequential_prefix, ephemeral, data)| GenOp::Create {
                target,
                sequential_prefix,
                ephemeral,
                data,
            }),
        2 => (target(), version()).prop_map(|(t, v)| GenOp::Delete(t, v)),
        2 => (target(), version(), 0u8..4).prop_map(|(t, v, d)| GenOp::SetData(t, v, d)),
        1 => (target(), version()).prop_map(|(t, v)| GenOp::Check(t, v)),
    ]
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    prop_oneof![
        30 => simple_op(),
        10 => prop::collection::vec(simple_op(), 1..=3).prop_map(GenOp::Multi),
        1 => prop::collection::vec(
            prop_oneof![simple_op(), Just(GenOp::CloseSession), target().prop_map(GenOp::Read)],
            1..=3,
        )
        .prop_map(GenOp::Multi),
        1 => Just(GenOp::CloseSession),
        1 => target().prop_map(GenOp::Read),
        1 => Just(GenOp::Multi(vec![])),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (prop_oneof![1 => Just(0u64), 10 => 1..SESSIONS - 1, 1 => Just(SESSIONS - 1)], gen_op())
            .prop_map(|(session, op)| Step::Write { session, op }),
        3 => (1..SESSIONS, 1u32..4).prop_map(|(session, timeout_ms)| Step::CreateSession {
            session,
            timeout_ms: timeout_ms * 1000,
        }),
        1 => (0..SESSIONS).prop_map(|session| Step::Expire { session }),
    ]
}

impl GenOp {
    /// The client op, with targets and versions resolved against the model's state now.
    fn resolve(&self, model: &Model) -> Op {
        let path = |target: &Target| match target {
            Target::Named(i) => PATHS[*i].to_string(),
            Target::Existing(i) => model
                .nodes
                .keys()
                .nth(i % model.nodes.len())
                .unwrap()
                .clone(),
        };
        let version = |path: &str, v: Version| {
            let current = model.nodes.get(path).map_or(0, |n| n.version);
            match v {
                Version::Any => -1,
                Version::Right => current,
                Version::Wrong => current + 1,
            }
        };
        match self {
            GenOp::Create {
                target,
                sequential_prefix,
                ephemeral,
                data,
            } => {
                let (path, mode) = match (sequential_prefix, ephemeral) {
                    (Some(i), false) => {
                        (PREFIXES[*i].to_string(), CreateMode::PersistentSequential)
                    }
                    (Some(i), true) => (PREFIXES[*i].to_string(), CreateMode::EphemeralSequential),
                    (None, false) => (path(target), CreateMode::Persistent),
                    (None, true) => (path(target), CreateMode::Ephemeral),
                };
                Op::Create {
                    path,
                    data: vec![*data; *data as usize],
                    mode,
                }
            }
            GenOp::Delete(target, v) => {
                let path = path(target);
                let version = version(&path, *v);
                Op::Delete { path, version }
            }
            GenOp::SetData(target, v, data) => {
                let path = path(target);
                let version = version(&path, *v);
                Op::SetData {
                    path,
                    data: vec![*data; *data as usize],
                    version,
                }
            }
            GenOp::Check(target, v) => {
                let path = path(target);
                let version = version(&path, *v);
                Op::Check { path, version }
            }
            GenOp::Multi(ops) => Op::Multi {
                ops: ops.iter().map(|op| op.resolve(model)).collect(),
            },
            GenOp::CloseSession => Op::CloseSession,
            GenOp::Read(target) => Op::GetData {
                path: path(target),
                watch: true,
            },
        }
    }
}

// --- the run ---

fn header(zxid: u64, session: u64) -> TxnHeader {
    TxnHeader {
        zxid: Zxid(zxid),
        session: SessionId(session),
        xid: Xid(zxid),
        time_ms: 0,
    }
}

/// A tree and its model after sessions 1–3 were created (zxids 1–3).
fn start() -> (DataTree, Model, u64) {
    let mut tree = DataTree::new();
    let mut model = Model::new();
    for session in 1..=3 {
        let txn = Txn::CreateSession {
            session: SessionId(session),
            timeout_ms: 6000,
        };
        tree.apply(&header(session, 0), &txn);
        model.sessions.insert(session, 6000);
    }
    (tree, model, 3)
}

/// Runs one step on both; returns what `apply` did and what the model expected.
fn run_step(tree: &mut DataTree, model: &mut Model, zxid: u64, step: &Step) -> (Outcome, Outcome) {
    let (session, txn, expected) = match step {
        Step::Write { session, op } => {
            let op = op.resolve(model);
            let txn = tree.prep(SessionId(*session), &op);
            let expected = model.write(*session, &op, zxid);
            if !matches!(txn, Txn::Error { .. }) {
                assert!(
                    expected.0.is_ok(),
                    "prep accepted what must fail: {op:?} → {txn:?}"
                );
            }
            (*session, txn, expected)
        }
        Step::CreateSession {
            session,
            timeout_ms,
        } => {
            model.sessions.insert(*session, *timeout_ms);
            let txn = Txn::CreateSession {
                session: SessionId(*session),
                timeout_ms: *timeout_ms,
            };
            (*session, txn, (Ok(OpResult::SessionCreated), vec![]))
        }
        Step::Expire { session } => {
            let mut events = vec![];
            let result = model.close(*session, zxid, &mut events);
            let txn = Txn::CloseSession {
                session: SessionId(*session),
            };
            (0, txn, (Ok(result), events))
        }
    };
    let applied = tree.apply(&header(zxid, session), &txn);
    if !matches!(txn, Txn::Error { .. }) {
        assert!(
            applied.result.is_ok(),
            "prep ok but apply failed: {txn:?} → {applied:?}"
        );
    }
    ((applied.result, applied.events), expected)
}

/// The tree shows exactly the model's state.
fn assert_same_state(tree: &DataTree, model: &Model, zxid: u64) {
    assert_eq!(tree.last_zxid(), Zxid(zxid));
    assert_eq!(tree.verify(), Ok(()));
    let mut paths: Vec<String> = PATHS.iter().map(|p| p.to_string()).collect();
    paths.extend(model.nodes.keys().cloned());
    for path in &paths {
        assert_eq!(tree.stat(path), model.stat(path), "stat {path}");
        let expected_data = if !valid(path) {
            Err(ZkError::BadArguments)
        } else {
            model
                .nodes
                .get(path.as_str())
                .map(|n| (n.data.clone(), model.stat(path).unwrap()))
                .ok_or(ZkError::NoNode)
        };
        assert_eq!(tree.get_data(path), expected_data, "get_data {path}");
        let expected_children = expected_data.map(|_| model.children(path));
        assert_eq!(tree.children(path), expected_children, "children {path}");
    }
    assert_eq!(tree.node_count(), model.nodes.len());
    let sessions: Vec<_> = model
        .sessions
        .iter()
        .map(|(&id, &t)| (SessionId(id), t))
        .collect();
    assert_eq!(tree.sessions(), sessions);
    for session in 0..SESSIONS {
        assert_eq!(
            tree.ephemerals_of(SessionId(session)),
            model.ephemerals_of(session)
        );
        let timeout = model.sessions.get(&session).copied();
        assert_eq!(tree.session_timeout(SessionId(session)), timeout);
    }
    let restored = DataTree::from_snapshot(&tree.snapshot()).expect("a tree's own snapshot");
    assert_eq!(restored.digest(), tree.digest());
    assert_eq!(&restored, tree);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_tree_follows_the_model(steps in prop::collection::vec(step(), 1..=60)) {
        let (mut tree, mut model, mut zxid) = start();
        for step in &steps {
            zxid += 1;
            let (actual, expected) = run_step(&mut tree, &mut model, zxid, step);
            prop_assert_eq!(actual, expected, "step {:?}", step);
            assert_same_state(&tree, &model, zxid);
        }
    }

    #[test]
    fn from_snapshot_never_panics_on_a_mutated_snapshot(
        steps in prop::collection::vec(step(), 0..=30),
        mutations in prop::collection::vec(mutation(), 1..=3),
    ) {
        let (mut tree, mut model, mut zxid) = start();
        for step in &steps {
            zxid += 1;
            let _ = run_step(&mut tree, &mut model, zxid, step);
        }
        let mut snapshot = tree.snapshot();
        for m in &mutations {
            m.apply(&mut snapshot);
        }
        check_from_snapshot(&snapshot);
    }

    #[test]
    fn from_snapshot_never_panics_on_an_arbitrary_snapshot(snapshot in arbitrary_snapshot()) {
        check_from_snapshot(&snapshot);
    }

    #[test]
    fn apply_is_total_and_a_failed_txn_changes_nothing(
        steps in prop::collection::vec(step(), 0..=20),
        txns in prop::collection::vec(raw_txn(), 1..=20),
    ) {
        let (mut tree, mut model, mut zxid) = start();
        for step in &steps {
            zxid += 1;
            let _ = run_step(&mut tree, &mut model, zxid, step);
        }
        for txn in &txns {
            zxid += 1;
            let before = tree.snapshot();
            let applied = tree.apply(&header(zxid, 0), txn);
            prop_assert_eq!(tree.verify(), Ok(()));
            prop_assert_eq!(tree.last_zxid(), Zxid(zxid));
            if applied.result.is_err() {
                let after = tree.snapshot();
                prop_assert_eq!(&before.nodes, &after.nodes, "{:?}", txn);
                prop_assert_eq!(&before.sessions, &after.sessions);
                prop_assert!(applied.events.is_empty());
            }
        }
    }
}

/// `from_snapshot` returns an error or a consistent tree whose snapshot is the input.
fn check_from_snapshot(snapshot: &Snapshot) {
    if let Ok(tree) = DataTree::from_snapshot(snapshot) {
        assert_eq!(tree.verify(), Ok(()));
        assert_eq!(&tree.snapshot(), snapshot);
    }
}

// --- snapshot mutations and arbitrary snapshots ---

#[derive(Clone, Debug)]
enum Mutation {
    RemoveNode(usize),
    DuplicateNode(usize),
    SwapNodes(usize, usize),
    RenameNode(usize, usize),
    SetNumChildren(usize, u32),
    SetOwner(usize, u64),
    SetDataLength(usize, u32),
    SetZxids(usize, u64, u64, u64),
    SetSnapshotZxid(u64),
    RemoveSession(usize),
    AddSession(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let i = || any::<usize>();
    prop_oneof![
        i().prop_map(Mutation::RemoveNode),
        i().prop_map(Mutation::DuplicateNode),
        (i(), i()).prop_map(|(a, b)| Mutation::SwapNodes(a, b)),
        (i(), 0..PATHS.len()).prop_map(|(a, p)| Mutation::RenameNode(a, p)),
        (i(), 0u32..4).prop_map(|(a, n)| Mutation::SetNumChildren(a, n)),
        (i(), 0..SESSIONS).prop_map(|(a, s)| Mutation::SetOwner(a, s)),
        (i(), 0u32..4).prop_map(|(a, n)| Mutation::SetDataLength(a, n)),
        (i(), 0u64..70, 0u64..70, 0u64..70).prop_map(|(a, c, m, p)| Mutation::SetZxids(a, c, m, p)),
        (0u64..70).prop_map(Mutation::SetSnapshotZxid),
        i().prop_map(Mutation::RemoveSession),
        (0..SESSIONS + 1).prop_map(Mutation::AddSession),
    ]
}

impl Mutation {
    fn apply(&self, s: &mut Snapshot) {
        let n = s.nodes.len().max(1);
        match *self {
            Mutation::RemoveNode(i) if !s.nodes.is_empty() => {
                s.nodes.remove(i % n);
            }
            Mutation::DuplicateNode(i) if !s.nodes.is_empty() => {
                let copy = s.nodes[i % n].clone();
                s.nodes.insert(i % n, copy);
            }
            Mutation::SwapNodes(a, b) if !s.nodes.is_empty() => s.nodes.swap(a % n, b % n),
            Mutation::RenameNode(a, p) if !s.nodes.is_empty() => {
                s.nodes[a % n].path = PATHS[p].to_string()
            }
            Mutation::SetNumChildren(a, v) => {
                if let Some(stat) = stat_at(s, a) {
                    stat.num_children = v;
                }
            }
            Mutation::SetOwner(a, v) => {
                if let Some(stat) = stat_at(s, a) {
                    stat.ephemeral_owner = SessionId(v);
                }
            }
            Mutation::SetDataLength(a, v) => {
                if let Some(stat) = stat_at(s, a) {
                    stat.data_length = v;
                }
            }
            Mutation::SetZxids(a, c, m, p) => {
                if let Some(stat) = stat_at(s, a) {
                    (stat.czxid, stat.mzxid, stat.pzxid) = (Zxid(c), Zxid(m), Zxid(p));
                }
            }
            Mutation::SetSnapshotZxid(z) => s.zxid = Zxid(z),
            Mutation::RemoveSession(i) if !s.sessions.is_empty() => {
                let len = s.sessions.len();
                s.sessions.remove(i % len);
            }
            Mutation::AddSession(id) => {
                s.sessions.push((SessionId(id), 1000));
                s.sessions.sort();
            }
            _ => {}
        }
    }
}

fn stat_at(s: &mut Snapshot, i: usize) -> Option<&mut Stat> {
    let n = s.nodes.len();
    (n > 0).then(|| &mut s.nodes[i % n].stat)
}

fn arbitrary_snapshot() -> impl Strategy<Value = Snapshot> {
    let all_paths: Vec<&'static str> = PATHS.iter().chain(PREFIXES.iter()).copied().collect();
    let snapshot_node = (
        prop::sample::select(all_paths),
        prop::collection::vec(any::<u8>(), 0..3),
        (0u64..6, 0u64..6, 0u64..6),
        (-1i32..3, -1i32..3, 0..SESSIONS),
        (0u32..3, 0u32..3),
    )
        .prop_map(
            |(path, data, (c, m, p), (version, cversion, owner), (data_length, num_children))| {
                SnapshotNode {
                    path: path.to_string(),
                    data,
                    stat: Stat {
                        czxid: Zxid(c),
                        mzxid: Zxid(m),
                        pzxid: Zxid(p),
                        version,
                        cversion,
                        ephemeral_owner: SessionId(owner),
                        data_length,
                        num_children,
                    },
                }
            },
        );
    (
        0u64..8,
        prop::collection::vec(snapshot_node, 0..8),
        any::<bool>(),
        prop::collection::vec((0..SESSIONS, 0u32..3), 0..4),
    )
        .prop_map(|(zxid, mut nodes, sorted, sessions)| {
            if sorted {
                nodes.sort_by(|a, b| a.path.cmp(&b.path));
                nodes.dedup_by(|a, b| a.path == b.path);
            }
            let sessions = sessions
                .into_iter()
                .map(|(s, t)| (SessionId(s), t))
                .collect();
            Snapshot {
                zxid: Zxid(zxid),
                nodes,
                sessions,
            }
        })
}

/// A transaction from nowhere: mostly ones that do not fit the tree.
fn raw_txn() -> impl Strategy<Value = Txn> {
    let all_paths: Vec<&'static str> = PATHS.iter().chain(PREFIXES.iter()).copied().collect();
    let path = prop::sample::select(all_paths).prop_map(str::to_string);
    let simple = prop_oneof![
        (path.clone(), 0..SESSIONS).prop_map(|(path, owner)| Txn::Create {
            path,
            data: vec![1],
            ephemeral_owner: SessionId(owner),
        }),
        path.clone().prop_map(|path| Txn::Delete { path }),
        (path.clone(), -1i32..3).prop_map(|(path, version)| Txn::SetData {
            path,
            data: vec![2, 2],
            version,
        }),
        path.prop_map(|path| Txn::Check { path }),
        (0..SESSIONS).prop_map(|s| Txn::CloseSession {
            session: SessionId(s)
        }),
        (0..SESSIONS).prop_map(|s| Txn::CreateSession {
            session: SessionId(s),
            timeout_ms: 2000,
        }),
        Just(Txn::Error {
            error: ZkError::NoNode.into()
        }),
    ];
    prop_oneof![
        3 => simple.clone(),
        2 => prop::collection::vec(simple, 0..=3).prop_map(|txns| Txn::Multi { txns }),
    ]
}
