//! The data tree's rules, one test each (semantics.md, "ZooKeeper-like ensemble", and
//! ZooKeeper's programmer's guide: znodes, stat, sequential names, multi, watches).

use super::*;
use crate::zk::{CreateMode, Xid};

const S1: SessionId = SessionId(1);
const S2: SessionId = SessionId(2);
const GONE: SessionId = SessionId(9);

use CreateMode::{Ephemeral, EphemeralSequential, Persistent, PersistentSequential};

/// A tree driven like a replica: writes go through `prep` then `apply` at the next zxid,
/// and the invariants are checked after every step.
struct Replica {
    tree: DataTree,
    zxid: u64,
}

impl Replica {
    /// Sessions S1 and S2 live (zxids 1 and 2).
    fn new() -> Replica {
        let mut replica = Replica {
            tree: DataTree::new(),
            zxid: 0,
        };
        for session in [S1, S2] {
            let applied = replica.apply(&Txn::CreateSession {
                session,
                timeout_ms: 6000,
            });
            assert_eq!(applied.result, Ok(OpResult::SessionCreated));
        }
        replica
    }

    fn apply(&mut self, txn: &Txn) -> Applied {
        self.zxid += 1;
        let applied = self.tree.apply(&header(self.zxid), txn);
        assert_eq!(self.tree.verify(), Ok(()));
        assert_eq!(self.tree.last_zxid(), Zxid(self.zxid));
        applied
    }

    fn write(&mut self, session: SessionId, op: Op) -> Applied {
        let txn = self.tree.prep(session, &op);
        self.apply(&txn)
    }

    /// A write that must succeed; its result.
    fn ok(&mut self, session: SessionId, op: Op) -> OpResult {
        let applied = self.write(session, op.clone());
        applied
            .result
            .unwrap_or_else(|e| panic!("{op:?} failed: {e:?}"))
    }

    /// A write that must fail with `error` (index `None`), changing nothing but the zxid.
    fn fails(&mut self, session: SessionId, op: Op, error: ZkError) {
        self.fails_at(session, op, OpError { error, index: None });
    }

    fn fails_at(&mut self, session: SessionId, op: Op, error: OpError) {
        let before = self.tree.snapshot();
        let txn = self.tree.prep(session, &op);
        assert_eq!(
            txn,
            Txn::Error {
                error: error.clone()
            },
            "{op:?}"
        );
        let applied = self.apply(&txn);
        assert_eq!(applied.result, Err(error), "{op:?}");
        assert_eq!(applied.events, vec![]);
        assert_unchanged_but_zxid(&before, &self.tree);
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree
            .stat(path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }
}

fn header(zxid: u64) -> TxnHeader {
    TxnHeader {
        zxid: Zxid(zxid),
        session: SessionId::NONE,
        xid: Xid(0),
        time_ms: 0,
    }
}

fn assert_unchanged_but_zxid(before: &Snapshot, tree: &DataTree) {
    let after = tree.snapshot();
    assert_eq!(before.nodes, after.nodes);
    assert_eq!(before.sessions, after.sessions);
}

fn create(path: &str, mode: CreateMode) -> Op {
    Op::Create {
        path: path.to_string(),
        data: path.as_bytes().to_vec(),
        mode,
    }
}

fn delete(path: &str, version: i32) -> Op {
    Op::Delete {
        path: path.to_string(),
        version,
    }
}

fn set_data(path: &str, data: &[u8], version: i32) -> Op {
    Op::SetData {
        path: path.to_string(),
        data: data.to_vec(),
        version,
    }
}

fn check(path: &str, version: i32) -> Op {
    Op::Check {
        path: path.to_string(),
        version,
    }
}

fn multi(ops: Vec<Op>) -> Op {
    Op::Multi { ops }
}

fn created(path: &str) -> String {
    path.to_string()
}

fn ev(event: EventType, path: &str) -> WatchedEvent {
    WatchedEvent {
        event,
        path: path.to_string(),
    }
}

fn at(error: ZkError, index: usize) -> OpError {
    OpError {
        error,
        index: Some(index),
    }
}

use EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};

// --- the tree and its stats ---

#[test]
fn a_new_tree_is_only_the_root() {
    let tree = DataTree::new();
    assert_eq!(tree.last_zxid(), Zxid::ZERO);
    assert_eq!(tree.get_data("/"), Ok((vec![], Stat::default())));
    assert_eq!(tree.children("/"), Ok(vec![]));
    assert_eq!(tree.sessions(), vec![]);
    assert_eq!(tree.node_count(), 1);
    assert_eq!(tree, DataTree::default());
    assert_eq!(tree.verify(), Ok(()));
}

#[test]
fn create_stamps_the_new_stat_and_bumps_the_parents_cversion_pzxid_and_count() {
    let mut r = Replica::new();
    let result = r.ok(S1, create("/a", Persistent));
    let z = Zxid(3);
    let expected = Stat {
        czxid: z,
        mzxid: z,
        pzxid: z,
        version: 0,
        cversion: 0,
        ephemeral_owner: SessionId::NONE,
        data_length: 2,
        num_children: 0,
    };
    assert_eq!(
        result,
        OpResult::Created {
            path: created("/a"),
            stat: expected.clone()
        }
    );
    assert_eq!(r.tree.get_data("/a"), Ok((b"/a".to_vec(), expected)));
    let root = r.stat("/");
    assert_eq!((root.cversion, root.pzxid, root.num_children), (1, z, 1));
    assert_eq!(
        root.mzxid,
        Zxid::ZERO,
        "a child does not change the parent's data"
    );

    r.ok(S1, create("/a/e", Ephemeral));
    assert_eq!(r.stat("/a/e").ephemeral_owner, S1);
    assert_eq!(r.tree.children("/"), Ok(vec!["a".to_string()]));
    assert_eq!(r.tree.children("/a"), Ok(vec!["e".to_string()]));
    assert_eq!(r.tree.ephemerals_of(S1), vec!["/a/e".to_string()]);
}

#[test]
fn delete_bumps_the_parents_cversion_and_pzxid_and_lowers_its_count() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/a/x", Persistent));
    r.ok(S1, create("/a/y", Persistent));
    assert_eq!(r.ok(S1, delete("/a/x", 0)), OpResult::Deleted);
    let a = r.stat("/a");
    assert_eq!((a.cversion, a.pzxid, a.num_children), (3, Zxid(6), 1));
    assert_eq!(r.tree.stat("/a/x"), None);
    assert_eq!(r.tree.get_data("/a/x"), Err(ZkError::NoNode));
    assert_eq!(r.tree.children("/a"), Ok(vec!["y".to_string()]));
}

#[test]
fn set_data_replaces_the_data_and_bumps_version_and_mzxid() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    let result = r.ok(S1, set_data("/a", b"hello", 0));
    let stat = r.stat("/a");
    assert_eq!(result, OpResult::DataSet { stat: stat.clone() });
    assert_eq!(
        (stat.version, stat.mzxid, stat.czxid),
        (1, Zxid(4), Zxid(3))
    );
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.pzxid, Zxid(3), "data changes do not touch pzxid");
    r.ok(S1, set_data("/a", b"", -1));
    assert_eq!(r.tree.get_data("/a").unwrap().0, b"");
    assert_eq!(r.stat("/a").version, 2);
    // prep decides the version; apply installs it.
    assert_eq!(
        r.tree.prep(S1, &set_data("/a", b"x", 2)),
        Txn::SetData {
            path: "/a".to_string(),
            data: b"x".to_vec(),
            version: 3
        }
    );
}

#[test]
fn sequential_names_append_the_parents_cversion_which_counts_deletes_too() {
    let mut r = Replica::new();
    r.ok(S1, create("/q", Persistent));
    let name = |result: OpResult| match result {
        OpResult::Created { path, .. } => path,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        name(r.ok(S1, create("/q/n-", PersistentSequential))),
        "/q/n-0000000000"
    );
    assert_eq!(
        name(r.ok(S1, create("/q/n-", EphemeralSequential))),
        "/q/n-0000000001"
    );
    r.ok(S1, create("/q/plain", Persistent));
    r.ok(S1, delete("/q/plain", -1));
    // cversion is now 4: two sequential creates, one create, one delete.
    assert_eq!(
        name(r.ok(S1, create("/q/n-", PersistentSequential))),
        "/q/n-0000000004"
    );
    // A prefix may end with '/': the counter is the whole name.
    assert_eq!(
        name(r.ok(S1, create("/q/", PersistentSequential))),
        "/q/0000000005"
    );
    assert_eq!(
        name(r.ok(S1, create("/", PersistentSequential))),
        "/0000000001"
    );
    assert_eq!(r.stat("/q/n-0000000001").ephemeral_owner, S1);
    // The resolved name may collide with an existing znode.
    r.ok(S1, create("/q/n-0000000007", Persistent));
    r.fails(
        S1,
        create("/q/n-", PersistentSequential),
        ZkError::NodeExists,
    );
}

// --- validation errors ---

#[test]
fn bad_paths_are_bad_arguments_for_every_operation() {
    let mut r = Replica::new();
    for path in ["", "a", "/a/", "//", "/a//b", "/.", "/a/..", "/a\0"] {
        r.fails(S1, create(path, Persistent), ZkError::BadArguments);
        r.fails(S1, create(path, Ephemeral), ZkError::BadArguments);
        r.fails(S1, delete(path, -1), ZkError::BadArguments);
        r.fails(S1, set_data(path, b"", -1), ZkError::BadArguments);
        r.fails_at(
            S1,
            multi(vec![check(path, -1)]),
            at(ZkError::BadArguments, 0),
        );
        assert_eq!(r.tree.get_data(path), Err(ZkError::BadArguments));
        assert_eq!(r.tree.children(path), Err(ZkError::BadArguments));
        assert_eq!(r.tree.stat(path), None);
        let exists = Op::Exists {
            path: path.to_string(),
            watch: false,
        };
        assert_eq!(r.tree.read(&exists), Err(ZkError::BadArguments.into()));
    }
    // A sequential prefix "/a/" is fine, "/a//" is not.
    r.fails(
        S1,
        create("/a//", PersistentSequential),
        ZkError::BadArguments,
    );
}

#[test]
fn create_errors() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/e", Ephemeral));
    r.fails(S1, create("/", Persistent), ZkError::NodeExists);
    r.fails(S1, create("/a", Persistent), ZkError::NodeExists);
    r.fails(S1, create("/a", Ephemeral), ZkError::NodeExists);
    r.fails(S1, create("/missing/x", Persistent), ZkError::NoNode);
    r.fails(
        S1,
        create("/missing/x", PersistentSequential),
        ZkError::NoNode,
    );
    r.fails(
        S1,
        create("/e/x", Persistent),
        ZkError::NoChildrenForEphemerals,
    );
    r.fails(
        S1,
        create("/e/x", EphemeralSequential),
        ZkError::NoChildrenForEphemerals,
    );
    // Ephemeral znodes need a session; persistent ones do not.
    r.fails(
        SessionId::NONE,
        create("/b", Ephemeral),
        ZkError::BadArguments,
    );
    r.fails(
        SessionId::NONE,
        create("/b", EphemeralSequential),
        ZkError::BadArguments,
    );
    r.ok(SessionId::NONE, create("/b", Persistent));
}

#[test]
fn delete_errors() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/a/x", Persistent));
    r.fails(S1, delete("/", -1), ZkError::BadArguments);
    r.fails(S1, delete("/nope", -1), ZkError::NoNode);
    r.fails(S1, delete("/a/x", 1), ZkError::BadVersion);
    r.fails(S1, delete("/a", -1), ZkError::NotEmpty);
    // The version is checked before the children (ZooKeeper's order).
    r.fails(S1, delete("/a", 5), ZkError::BadVersion);
    r.ok(S1, delete("/a/x", 0));
    r.ok(S1, delete("/a", -1));
}

#[test]
fn set_data_errors() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.fails(S1, set_data("/nope", b"x", -1), ZkError::NoNode);
    r.fails(S1, set_data("/a", b"x", 1), ZkError::BadVersion);
    r.ok(S1, set_data("/a", b"x", 0));
    r.fails(S1, set_data("/a", b"x", 0), ZkError::BadVersion);
    r.ok(S1, set_data("/", b"root data", -1));
}

#[test]
fn check_only_inside_a_multi() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.fails(S1, check("/a", -1), ZkError::BadArguments);
    assert_eq!(
        r.ok(S1, multi(vec![check("/a", 0), check("/a", -1)])),
        OpResult::Multi {
            results: vec![OpResult::Checked, OpResult::Checked]
        }
    );
    r.fails_at(S1, multi(vec![check("/nope", -1)]), at(ZkError::NoNode, 0));
    r.fails_at(
        S1,
        multi(vec![check("/a", 0), check("/a", 3)]),
        at(ZkError::BadVersion, 1),
    );
}

#[test]
fn every_write_of_an_expired_session_fails_with_session_expired() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    let writes = [
        create("/b", Persistent),
        create("/b", Ephemeral),
        delete("/a", -1),
        set_data("/a", b"x", -1),
        check("/a", -1),
        multi(vec![]),
        multi(vec![set_data("/a", b"x", -1)]),
        Op::CloseSession,
    ];
    for op in writes {
        r.fails(GONE, op, ZkError::SessionExpired);
    }
    // SessionId::NONE (the leader's own writes) is not a session to expire.
    r.ok(SessionId::NONE, set_data("/a", b"x", -1));
    r.fails(SessionId::NONE, Op::CloseSession, ZkError::BadArguments);
}

#[test]
fn reads_and_sync_are_not_writes() {
    let mut r = Replica::new();
    let path = "/".to_string();
    let reads = [
        Op::GetData {
            path: path.clone(),
            watch: false,
        },
        Op::Exists {
            path: path.clone(),
            watch: true,
        },
        Op::GetChildren {
            path: path.clone(),
            watch: false,
        },
        Op::Sync { path },
    ];
    for op in reads {
        r.fails(S1, op.clone(), ZkError::BadArguments);
        r.fails(GONE, op, ZkError::BadArguments);
    }
}

#[test]
fn read_answers_get_data_exists_and_get_children() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/a/x", Persistent));
    let stat = r.stat("/a");
    let read = |op: Op| r.tree.read(&op);
    let path = |p: &str| p.to_string();
    assert_eq!(
        read(Op::GetData {
            path: path("/a"),
            watch: true
        }),
        Ok(OpResult::Data {
            data: b"/a".to_vec(),
            stat: stat.clone()
        })
    );
    assert_eq!(
        read(Op::Exists {
            path: path("/a"),
            watch: false
        }),
        Ok(OpResult::Exists { stat: Some(stat) })
    );
    assert_eq!(
        read(Op::Exists {
            path: path("/b"),
            watch: false
        }),
        Ok(OpResult::Exists { stat: None })
    );
    assert_eq!(
        read(Op::GetChildren {
            path: path("/a"),
            watch: false
        }),
        Ok(OpResult::Children {
            children: vec![path("x")]
        })
    );
    assert_eq!(
        read(Op::GetData {
            path: path("/b"),
            watch: false
        }),
        Err(ZkError::NoNode.into())
    );
    assert_eq!(
        read(create("/c", Persistent)),
        Err(ZkError::BadArguments.into())
    );
    assert_eq!(read(Op::CloseSession), Err(ZkError::BadArguments.into()));
}

// --- multi ---

#[test]
fn multi_is_all_or_nothing() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    let op = multi(vec![
        create("/b", Persistent),
        set_data("/a", b"new", 0),
        delete("/nope", -1),
        create("/c", Persistent),
    ]);
    r.fails_at(S1, op, at(ZkError::NoNode, 2));
    assert_eq!(r.tree.stat("/b"), None);
    assert_eq!(r.stat("/a").version, 0);
}

#[test]
fn multi_ops_see_the_effects_of_earlier_ops() {
    let mut r = Replica::new();
    let result = r.ok(
        S1,
        multi(vec![
            create("/a", Persistent),
            create("/a/x", Persistent),
            set_data("/a/x", b"v1", 0),
            set_data("/a/x", b"v2", 1),
            check("/a/x", 2),
            create("/a/s-", PersistentSequential),
            create("/a/s-", EphemeralSequential),
        ]),
    );
    let OpResult::Multi { results } = result else {
        panic!("{result:?}")
    };
    let names: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            OpResult::Created { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        ["/a", "/a/x", "/a/s-0000000001", "/a/s-0000000002"],
        "sequential names in one multi see the earlier creates"
    );
    assert_eq!(r.tree.get_data("/a/x").unwrap().0, b"v2");
    assert_eq!(r.stat("/a/x").version, 2);
    // All ops of a multi share its zxid.
    assert_eq!(r.stat("/a/x").czxid, r.stat("/a/x").mzxid);

    // Delete the children, then the parent.
    r.ok(
        S1,
        multi(vec![
            delete("/a/x", 2),
            delete("/a/s-0000000001", -1),
            delete("/a/s-0000000002", -1),
            delete("/a", 0),
        ]),
    );
    assert_eq!(r.tree.children("/"), Ok(vec![]));
    assert_eq!(r.tree.ephemerals_of(S1), Vec::<String>::new());
    // A multi's later op fails on an earlier op's effect.
    r.fails_at(
        S1,
        multi(vec![create("/b", Persistent), create("/b", Persistent)]),
        at(ZkError::NodeExists, 1),
    );
    r.fails_at(
        S1,
        multi(vec![
            create("/b", Persistent),
            set_data("/b", b"", 0),
            check("/b", 0),
        ]),
        at(ZkError::BadVersion, 2),
    );
}

#[test]
fn multi_refuses_nested_multis_reads_and_close_session() {
    let mut r = Replica::new();
    let refused = [
        multi(vec![]),
        Op::CloseSession,
        Op::Sync {
            path: "/".to_string(),
        },
        Op::GetData {
            path: "/".to_string(),
            watch: false,
        },
    ];
    for op in refused {
        r.fails_at(
            S1,
            multi(vec![create("/a", Persistent), op]),
            at(ZkError::BadArguments, 1),
        );
    }
}

#[test]
fn an_empty_multi_is_fine() {
    let mut r = Replica::new();
    assert_eq!(r.tree.prep(S1, &multi(vec![])), Txn::Multi { txns: vec![] });
    let applied = r.write(S1, multi(vec![]));
    assert_eq!(applied.result, Ok(OpResult::Multi { results: vec![] }));
    assert_eq!(applied.events, vec![]);
}

#[test]
fn events_in_the_order_of_the_changes() {
    let mut r = Replica::new();
    let applied = r.write(S1, create("/a", Persistent));
    assert_eq!(
        applied.events,
        vec![ev(NodeCreated, "/a"), ev(NodeChildrenChanged, "/")]
    );
    let applied = r.write(S1, set_data("/a", b"x", -1));
    assert_eq!(applied.events, vec![ev(NodeDataChanged, "/a")]);
    let applied = r.write(
        S1,
        multi(vec![
            create("/a/x", Persistent),
            check("/a", -1),
            set_data("/a/x", b"x", -1),
            delete("/a/x", -1),
        ]),
    );
    assert_eq!(
        applied.events,
        vec![
            ev(NodeCreated, "/a/x"),
            ev(NodeChildrenChanged, "/a"),
            ev(NodeDataChanged, "/a/x"),
            ev(NodeDeleted, "/a/x"),
            ev(NodeChildrenChanged, "/a"),
        ]
    );
    let applied = r.write(S1, delete("/a", -1));
    assert_eq!(
        applied.events,
        vec![ev(NodeDeleted, "/a"), ev(NodeChildrenChanged, "/")]
    );
}

// --- sessions ---

#[test]
fn close_session_deletes_its_ephemerals_in_path_order_and_fires_their_events() {
    let mut r = Replica::new();
    r.ok(S1, create("/p", Persistent));
    r.ok(S1, create("/p/e2", Ephemeral));
    r.ok(S1, create("/e1", Ephemeral));
    r.ok(S2, create("/p/other", Ephemeral));
    r.ok(S1, create("/p/kept", Persistent));
    assert_eq!(
        r.tree.ephemerals_of(S1),
        vec!["/e1".to_string(), "/p/e2".to_string()]
    );
    assert_eq!(
        r.tree.prep(S1, &Op::CloseSession),
        Txn::CloseSession { session: S1 }
    );
    let applied = r.write(S1, Op::CloseSession);
    assert_eq!(applied.result, Ok(OpResult::Closed));
    assert_eq!(
        applied.events,
        vec![
            ev(NodeDeleted, "/e1"),
            ev(NodeChildrenChanged, "/"),
            ev(NodeDeleted, "/p/e2"),
            ev(NodeChildrenChanged, "/p"),
        ]
    );
    let z = Zxid(r.zxid);
    assert_eq!((r.stat("/p").pzxid, r.stat("/").pzxid), (z, z));
    assert_eq!(
        r.tree.children("/p"),
        Ok(vec!["kept".to_string(), "other".to_string()])
    );
    assert_eq!(r.tree.ephemerals_of(S1), Vec::<String>::new());
    assert_eq!(r.tree.session_timeout(S1), None);
    assert_eq!(r.tree.sessions(), vec![(S2, 6000)]);
    // Its writes now fail; closing it again is refused by prep...
    r.fails(S1, create("/x", Persistent), ZkError::SessionExpired);
    r.fails(S1, Op::CloseSession, ZkError::SessionExpired);
    // ...and a leader's expiry of an unknown session applies as a no-op.
    let before = r.tree.snapshot();
    let applied = r.apply(&Txn::CloseSession { session: S1 });
    assert_eq!(
        applied,
        Applied {
            result: Ok(OpResult::Closed),
            events: vec![]
        }
    );
    assert_unchanged_but_zxid(&before, &r.tree);
}

#[test]
fn create_session_is_idempotent_and_updates_the_timeout() {
    let mut r = Replica::new();
    r.ok(S1, create("/e", Ephemeral));
    let applied = r.apply(&Txn::CreateSession {
        session: S1,
        timeout_ms: 4000,
    });
    assert_eq!(applied.result, Ok(OpResult::SessionCreated));
    assert_eq!(r.tree.sessions(), vec![(S1, 4000), (S2, 6000)]);
    assert_eq!(r.tree.ephemerals_of(S1), vec!["/e".to_string()]);
    let applied = r.apply(&Txn::CreateSession {
        session: SessionId::NONE,
        timeout_ms: 4000,
    });
    assert_eq!(applied.result, Err(ZkError::BadArguments.into()));
    assert_eq!(r.tree.session_timeout(SessionId::NONE), None);
}

// --- apply is total ---

#[test]
fn an_error_txn_changes_nothing_but_the_zxid() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    let before = r.tree.snapshot();
    let error = at(ZkError::BadVersion, 3);
    let applied = r.apply(&Txn::Error {
        error: error.clone(),
    });
    assert_eq!(
        applied,
        Applied {
            result: Err(error),
            events: vec![]
        }
    );
    assert_unchanged_but_zxid(&before, &r.tree);
    assert_eq!(r.tree.last_zxid(), Zxid(4));
}

#[test]
fn a_txn_that_does_not_fit_the_tree_changes_nothing_and_returns_its_error() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/e", Ephemeral));
    let txn_create = |path: &str, owner| Txn::Create {
        path: path.to_string(),
        data: vec![],
        ephemeral_owner: owner,
    };
    let txn_delete = |path: &str| Txn::Delete {
        path: path.to_string(),
    };
    let txn_set = |path: &str, version| Txn::SetData {
        path: path.to_string(),
        data: vec![1],
        version,
    };
    let cases = [
        (txn_create("/a", SessionId::NONE), ZkError::NodeExists),
        (txn_create("/", SessionId::NONE), ZkError::NodeExists),
        (txn_create("/x/y", SessionId::NONE), ZkError::NoNode),
        (
            txn_create("/e/y", SessionId::NONE),
            ZkError::NoChildrenForEphemerals,
        ),
        (txn_create("/b", GONE), ZkError::SessionExpired),
        (txn_create("b", SessionId::NONE), ZkError::BadArguments),
        (txn_delete("/x"), ZkError::NoNode),
        (txn_delete("/"), ZkError::BadArguments),
        (txn_set("/x", 1), ZkError::NoNode),
        (txn_set("/a", 0), ZkError::BadVersion),
        (txn_set("/a", 7), ZkError::BadVersion),
        (Txn::Check { path: "/x".into() }, ZkError::NoNode),
    ];
    for (txn, error) in cases {
        let before = r.tree.snapshot();
        let applied = r.apply(&txn);
        assert_eq!(
            applied,
            Applied {
                result: Err(error.into()),
                events: vec![]
            },
            "{txn:?}"
        );
        assert_unchanged_but_zxid(&before, &r.tree);
    }
    // A multi is all or nothing even when its failure is only found at apply.
    let not_empty = Txn::Multi {
        txns: vec![txn_create("/a/x", SessionId::NONE), txn_delete("/a")],
    };
    let nested = Txn::Multi {
        txns: vec![txn_set("/a", 1), Txn::Multi { txns: vec![] }],
    };
    let session_inside = Txn::Multi {
        txns: vec![txn_delete("/e"), Txn::CloseSession { session: S1 }],
    };
    let cases = [
        (not_empty, at(ZkError::NotEmpty, 1)),
        (nested, at(ZkError::BadArguments, 1)),
        (session_inside, at(ZkError::BadArguments, 1)),
    ];
    for (txn, error) in cases {
        let before = r.tree.snapshot();
        let applied = r.apply(&txn);
        assert_eq!(
            applied,
            Applied {
                result: Err(error),
                events: vec![]
            },
            "{txn:?}"
        );
        assert_unchanged_but_zxid(&before, &r.tree);
    }
}

#[test]
#[should_panic(expected = "zxids must increase")]
fn applying_an_old_zxid_is_a_bug() {
    let mut tree = DataTree::new();
    tree.apply(&header(5), &Txn::Multi { txns: vec![] });
    tree.apply(&header(5), &Txn::Multi { txns: vec![] });
}

// --- snapshots and digests ---

#[test]
fn a_snapshot_round_trips_with_the_same_digest() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/a/x", Ephemeral));
    r.ok(S2, create("/a/s", PersistentSequential));
    r.ok(S2, set_data("/a", b"data", 0));
    let snapshot = r.tree.snapshot();
    let paths: Vec<_> = snapshot.nodes.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(paths, ["/", "/a", "/a/s0000000001", "/a/x"]);
    let json = serde_json::to_string(&snapshot).unwrap();
    let decoded: Snapshot = serde_json::from_str(&json).unwrap();
    let restored = DataTree::from_snapshot(&decoded).unwrap();
    assert_eq!(restored, r.tree);
    assert_eq!(restored.digest(), r.tree.digest());
    assert_eq!(restored.ephemerals_of(S1), vec!["/a/x".to_string()]);

    // Any change changes the digest, even an Error txn (it moves last_zxid).
    let digest = r.tree.digest();
    r.fails(S1, delete("/nope", -1), ZkError::NoNode);
    assert_ne!(r.tree.digest(), digest);
    let digest = r.tree.digest();
    r.ok(S1, set_data("/a", b"data", -1));
    assert_ne!(r.tree.digest(), digest, "same data, new version and mzxid");
    assert_eq!(DataTree::new().digest(), DataTree::new().digest());
}

#[test]
fn from_snapshot_refuses_what_a_tree_cannot_be() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    r.ok(S1, create("/a/x", Persistent));
    r.ok(S1, create("/e", Ephemeral));
    let good = r.tree.snapshot();
    assert!(DataTree::from_snapshot(&good).is_ok());
    let node = |s: &mut Snapshot, path: &str| -> usize {
        s.nodes.iter().position(|n| n.path == path).unwrap()
    };
    type Mutation = Box<dyn Fn(&mut Snapshot)>;
    let broken: Vec<(&str, Mutation)> = vec![
        (
            "no root",
            Box::new(move |s| {
                s.nodes.remove(0);
            }),
        ),
        (
            "no parent",
            Box::new(move |s| {
                let i = node(s, "/a");
                s.nodes.remove(i);
            }),
        ),
        ("unsorted", Box::new(move |s| s.nodes.swap(1, 2))),
        (
            "duplicate",
            Box::new(move |s| s.nodes.push(s.nodes[3].clone())),
        ),
        (
            "bad path",
            Box::new(move |s| s.nodes[3].path = "/e/".into()),
        ),
        (
            "wrong count",
            Box::new(move |s| s.nodes[1].stat.num_children = 2),
        ),
        ("wrong length", Box::new(move |s| s.nodes[1].data.push(0))),
        (
            "dead owner",
            Box::new(move |s| {
                s.sessions.remove(0);
            }),
        ),
        (
            "ephemeral parent",
            Box::new(move |s| s.nodes[1].stat.ephemeral_owner = S2),
        ),
        (
            "ephemeral root",
            Box::new(move |s| s.nodes[0].stat.ephemeral_owner = S2),
        ),
        (
            "future zxid",
            Box::new(move |s| s.nodes[1].stat.mzxid = Zxid(99)),
        ),
        (
            "mzxid before czxid",
            Box::new(move |s| s.nodes[1].stat.mzxid = Zxid(1)),
        ),
        (
            "session zero",
            Box::new(move |s| s.sessions.insert(0, (SessionId::NONE, 1))),
        ),
        (
            "sessions unsorted",
            Box::new(move |s| s.sessions.swap(0, 1)),
        ),
        (
            "sessions duplicated",
            Box::new(move |s| s.sessions.push((S2, 1))),
        ),
        ("empty", Box::new(move |s| s.nodes.clear())),
    ];
    for (why, mutation) in broken {
        let mut snapshot = good.clone();
        mutation(&mut snapshot);
        assert!(
            DataTree::from_snapshot(&snapshot).is_err(),
            "{why}: {snapshot:?}"
        );
    }
}

// --- watches ---

fn watched(watcher: SessionId, event: EventType, path: &str) -> (SessionId, WatchedEvent) {
    (watcher, ev(event, path))
}

#[test]
fn an_exists_watch_on_a_missing_path_fires_on_create() {
    let mut r = Replica::new();
    let mut watches = WatchManager::default();
    watches.add_data_watch("/a", S1);
    let applied = r.write(S2, create("/a", Persistent));
    assert_eq!(
        watches.trigger(&applied.events),
        vec![watched(S1, NodeCreated, "/a")]
    );
    assert!(watches.is_empty());
}

#[test]
fn delete_fires_data_and_child_watches_once_per_watcher() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    let mut watches = WatchManager::default();
    watches.add_data_watch("/a", S2);
    watches.add_child_watch("/a", S2);
    watches.add_child_watch("/a", S1);
    watches.add_child_watch("/", S1);
    let applied = r.write(S1, delete("/a", -1));
    assert_eq!(
        watches.trigger(&applied.events),
        vec![
            watched(S1, NodeDeleted, "/a"),
            watched(S2, NodeDeleted, "/a"),
            watched(S1, NodeChildrenChanged, "/"),
        ]
    );
    assert!(watches.is_empty());
}

#[test]
fn watches_are_one_shot() {
    let mut r = Replica::new();
    r.ok(S1, create("/a", Persistent));
    let mut watches = WatchManager::default();
    watches.add_child_watch("/a", S1);
    watches.add_data_watch("/a", S2);
    let applied = r.write(S1, create("/a/x", Persistent));
    assert_eq!(
        watches.trigger(&applied.events),
        vec![watched(S1, NodeChildrenChanged, "/a")]
    );
    let applied = r.write(S1, create("/a/y", Persistent));
    assert_eq!(watches.trigger(&applied.events), vec![]);
    // One event per watcher and (event, path) even when a multi changes it twice.
    let applied = r.write(
        S1,
        multi(vec![set_data("/a", b"1", -1), set_data("/a", b"2", -1)]),
    );
    assert_eq!(applied.events.len(), 2);
    assert_eq!(
        watches.trigger(&applied.events),
        vec![watched(S2, NodeDataChanged, "/a")]
    );
    assert!(watches.is_empty());
}

#[test]
fn remove_watcher_forgets_only_its_watches() {
    let mut watches = WatchManager::default();
    watches.add_data_watch("/b", S1);
    watches.add_data_watch("/a", S1);
    watches.add_child_watch("/a", S1);
    watches.add_data_watch("/a", S2);
    assert_eq!(
        watches.watches_of(S1),
        (
            vec!["/a".to_string(), "/b".to_string()],
            vec!["/a".to_string()]
        )
    );
    watches.remove_watcher(S1);
    assert_eq!(watches.watches_of(S1), (vec![], vec![]));
    assert_eq!(watches.watches_of(S2), (vec!["/a".to_string()], vec![]));
    let events = [ev(NodeDeleted, "/a"), ev(NodeCreated, "/b")];
    assert_eq!(
        watches.trigger(&events),
        vec![watched(S2, NodeDeleted, "/a")]
    );
    assert!(watches.is_empty());
}
