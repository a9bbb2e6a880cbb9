//! The controller against a real data tree: sessions, ephemerals, watches and `multi` are
//! the ensemble's own (`zk::tree`), driven in memory.

use super::*;
use crate::broker::test_ens::Ens;
use crate::zk::{SessionId, Zxid};

struct Broker {
    id: BrokerId,
    session: SessionId,
    alive: bool,
    ctl: ControllerCore,
    inbox: Vec<RequestBody>,
    replies: Vec<(u64, ResponseBody)>,
    announced: Vec<ControllerEvent>,
}

struct Cluster {
    ens: Ens,
    brokers: Vec<Broker>,
    next_session: u64,
}

fn config(id: u32, brokers: u32) -> ControllerConfig {
    ControllerConfig {
        broker_id: BrokerId(id),
        brokers: (1..=brokers).map(BrokerId).collect(),
        topics: vec![TopicSpec {
            name: "orders".into(),
            partitions: 3,
            replication_factor: 3.min(brokers),
            min_insync_replicas: 1,
        }],
        unclean_leader_election: false,
        legacy_unfenced_writes: false,
        legacy_no_broker_epoch: false,
        eligible_leader_replicas: true,
    }
}

impl Cluster {
    fn new(n: u32) -> Cluster {
        let mut cluster = Cluster {
            ens: Ens::new(),
            brokers: Vec::new(),
            next_session: 1,
        };
        for id in 1..=n {
            cluster.brokers.push(Broker {
                id: BrokerId(id),
                session: SessionId::NONE,
                alive: false,
                ctl: ControllerCore::new(config(id, n)),
                inbox: Vec::new(),
                replies: Vec::new(),
                announced: Vec::new(),
            });
        }
        cluster
    }

    /// A broker opens a session, registers and starts its controller.
    fn start(&mut self, id: u32) {
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.ens.open(session);
        let b = &mut self.brokers[id as usize - 1];
        b.session = session;
        b.alive = true;
        let path = paths::broker_path(b.id);
        let fired = self.ens.ephemeral(session, &path, vec![]);
        self.brokers[id as usize - 1].ctl.start();
        self.deliver(fired);
        self.settle();
    }

    /// A broker's session expires (it died, or paused too long).
    fn expire(&mut self, id: u32) {
        let b = &mut self.brokers[id as usize - 1];
        b.alive = false;
        b.ctl.on_session_lost();
        let session = b.session;
        let fired = self.ens.expire(session);
        self.deliver(fired);
        self.settle();
    }

    fn deliver(&mut self, fired: Vec<(SessionId, WatchedEvent)>) {
        for (session, event) in fired {
            if let Some(b) = self
                .brokers
                .iter_mut()
                .find(|b| b.alive && b.session == session)
            {
                b.ctl.on_watch(&event);
            }
        }
    }

    /// Runs every requested operation until nothing more is asked.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            for i in 0..self.brokers.len() {
                let actions = self.brokers[i].ctl.take_actions();
                for action in actions {
                    progressed = true;
                    self.perform(i, action);
                }
            }
            if !progressed {
                return;
            }
        }
        panic!("the controllers never settle");
    }

    fn perform(&mut self, i: usize, action: ControllerAction) {
        let b = &mut self.brokers[i];
        match action {
            ControllerAction::Zk { id, op } => {
                if !b.alive {
                    return;
                }
                let (result, fired) = self.ens.run(b.session, &op);
                self.brokers[i].ctl.on_zk_outcome(
                    id,
                    Outcome::Done {
                        result,
                        zxid: Zxid::ZERO,
                    },
                );
                self.deliver(fired);
            }
            ControllerAction::Send { to, body } => {
                self.brokers[to.0 as usize - 1].inbox.push(body);
            }
            ControllerAction::Reply { token, body } => b.replies.push((token, body)),
            ControllerAction::Announce(event) => b.announced.push(event),
        }
    }

    /// A broker restarts and registers again before the controller hears that its old
    /// registration went: the deletion's watch reaches the controller only after the new
    /// znode exists (KIP-380's fast bounce; the controller was stalled meanwhile).
    fn bounce_unseen(&mut self, id: u32) {
        let old = self.brokers[id as usize - 1].session;
        let mut fired = self.ens.expire(old);
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.ens.open(session);
        let b = &mut self.brokers[id as usize - 1];
        b.session = session;
        b.ctl = ControllerCore::new(b.ctl.config.clone());
        let path = paths::broker_path(b.id);
        fired.extend(self.ens.ephemeral(session, &path, vec![]));
        self.brokers[id as usize - 1].ctl.start();
        self.deliver(fired);
        self.settle();
    }

    fn controllers(&self) -> Vec<(u32, u32)> {
        self.brokers
            .iter()
            .filter_map(|b| b.ctl.active_epoch().map(|e| (b.id.0, e.0)))
            .collect()
    }

    /// The controller of the newest epoch (a legacy zombie may still think it is one).
    fn active(&mut self) -> &mut Broker {
        self.brokers
            .iter_mut()
            .filter(|b| b.ctl.active_epoch().is_some())
            .max_by_key(|b| b.ctl.active_epoch())
            .expect("an active controller")
    }
}

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn started(n: u32) -> Cluster {
    let mut c = Cluster::new(n);
    for id in 1..=n {
        c.start(id);
    }
    c
}

#[test]
fn one_controller_is_elected_and_creates_the_topics_with_live_leaders() {
    let mut c = started(3);
    assert_eq!(c.controllers(), vec![(1, 1)]);
    let (data, _) = c.ens.tree.get_data(paths::CONTROLLER).unwrap();
    assert_eq!(paths::decode::<ControllerZnode>(&data).unwrap().brokerid, 1);
    for p in 0..3 {
        let state = c.ens.state(&tp(p));
        // Broker 1 registered alone before the others: the topic was created with it as
        // the only live replica, then the others joined and heard of their partitions.
        assert!(state.leader > 0, "{state:?}");
        assert!(state.isr.contains(&(state.leader as u32)));
    }
    // Every broker heard a LeaderAndIsr for its partitions, from controller epoch 1.
    for b in &c.brokers {
        assert!(b.inbox.iter().any(|r| matches!(
            r,
            RequestBody::LeaderAndIsr { controller_epoch: ControllerEpoch(1), partitions, .. } if !partitions.is_empty()
        )));
    }
    let announced = &c.active().announced;
    assert!(matches!(
        announced[0],
        ControllerEvent::ControllerElected { .. }
    ));
}

/// Every partition's leader asks for all its live replicas in the ISR (as after its
/// followers caught up).
fn full_isr(c: &mut Cluster) {
    for p in 0..3 {
        let state = c.active().ctl.states().unwrap()[&tp(p)].clone();
        let leader = state.leader.unwrap();
        let live = c.active().ctl.active.as_ref().unwrap().live.clone();
        let request = AlterPartition {
            broker_id: leader,
            broker_epoch: live[&leader],
            partition: tp(p),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr: state
                .replicas
                .iter()
                .copied()
                .filter(|r| live.contains_key(r))
                .collect(),
        };
        c.active()
            .ctl
            .on_alter_partition(100 + u64::from(p), request);
        c.settle();
    }
}

#[test]
fn a_dead_leader_is_replaced_by_the_first_live_isr_replica_with_a_new_epoch() {
    let mut c = started(3);
    full_isr(&mut c);
    let before: Vec<PartitionState> = (0..3)
        .map(|p| c.active().ctl.states().unwrap()[&tp(p)].clone())
        .collect();
    assert!(before.iter().all(|s| s.isr.len() == 3), "{before:?}");
    // Broker 2 dies (not the controller).
    c.expire(2);
    for (p, old) in before.iter().enumerate() {
        let now = c.ens.state(&tp(p as u32));
        assert!(!now.isr.contains(&2), "{now:?}");
        assert_eq!(now.leader_epoch, old.leader_epoch.0 + 1);
        if old.leader == Some(BrokerId(2)) {
            let expected = old.replicas.iter().find(|r| r.0 != 2).unwrap();
            assert_eq!(now.leader, i64::from(expected.0));
        } else {
            assert_eq!(now.leader, i64::from(old.leader.unwrap().0));
        }
    }
}

#[test]
fn the_controllers_death_elects_another_with_the_next_epoch() {
    let mut c = started(3);
    assert_eq!(c.controllers(), vec![(1, 1)]);
    c.expire(1);
    let controllers = c.controllers();
    assert_eq!(controllers.len(), 1);
    assert_eq!(controllers[0].1, 2);
    // The new controller moved leadership off broker 1.
    for p in 0..3 {
        let state = c.ens.state(&tp(p));
        assert_ne!(state.leader, 1);
        assert_eq!(state.controller_epoch, 2);
    }
}

#[test]
fn a_zombie_controllers_write_is_fenced_and_it_resigns() {
    let mut c = started(3);
    full_isr(&mut c);
    // Broker 3 wins epoch 2 while broker 1 still thinks it leads (its session expiry has
    // not reached it yet): replay by hand what a new election does.
    let (_, stat) = c.ens.tree.get_data(paths::CONTROLLER_EPOCH).unwrap();
    let op = Op::SetData {
        path: paths::CONTROLLER_EPOCH.into(),
        data: b"2".to_vec(),
        version: stat.version,
    };
    c.ens.write(SessionId::NONE, &op).0.unwrap();
    let before = c.ens.state(&tp(0));
    // Broker 2 dies; zombie controller 1 tries to move leadership.
    c.expire(2);
    assert_eq!(c.brokers[0].ctl.active_epoch(), None, "it resigned");
    assert!(c.brokers[0]
        .announced
        .iter()
        .any(|e| matches!(e, ControllerEvent::ControllerResigned { .. })));
    let after = c.ens.state(&tp(0));
    assert_eq!(after.leader_epoch, before.leader_epoch, "no write landed");
}

/// Three started brokers, all controllers with `unfenced-controller-writes` as given.
fn started_with(legacy_unfenced_writes: bool) -> Cluster {
    let mut c = Cluster::new(3);
    for b in &mut c.brokers {
        b.ctl.config.legacy_unfenced_writes = legacy_unfenced_writes;
    }
    for id in 1..=3 {
        c.start(id);
    }
    c
}

#[test]
fn legacy_unfenced_writes_let_a_zombie_controller_write() {
    let mut c = started_with(true);
    full_isr(&mut c);
    let (_, stat) = c.ens.tree.get_data(paths::CONTROLLER_EPOCH).unwrap();
    let op = Op::SetData {
        path: paths::CONTROLLER_EPOCH.into(),
        data: b"2".to_vec(),
        version: stat.version,
    };
    c.ens.write(SessionId::NONE, &op).0.unwrap();
    let before = c.ens.state(&tp(0));
    c.expire(2);
    assert_eq!(
        c.brokers[0].ctl.active_epoch(),
        Some(ControllerEpoch(1)),
        "still acting"
    );
    let after = c.ens.state(&tp(0));
    assert!(
        after.leader_epoch > before.leader_epoch,
        "the zombie's write landed"
    );
    assert_eq!(after.controller_epoch, 1);
}

/// Controller 1 sees broker 3 die, then pauses past its session (broker 2 takes over as
/// controller epoch 2 and puts broker 3, back, into every ISR). An AlterPartition from the
/// leader of orders/0 as controller 1 last knew it waits in broker 1's queue. Then broker 1
/// opens a new session. Returns the cluster and orders/0's state before it did.
fn controller_back_after_its_session(legacy_unfenced_writes: bool) -> (Cluster, StateZnode) {
    let mut c = started_with(legacy_unfenced_writes);
    full_isr(&mut c);
    c.expire(3);
    let stale = c.brokers[0].ctl.states().unwrap()[&tp(0)].clone();
    let leader = stale.leader.expect("a leader");
    let request = AlterPartition {
        broker_id: leader,
        broker_epoch: c.brokers[0].ctl.active.as_ref().unwrap().live[&leader],
        partition: tp(0),
        leader_epoch: stale.leader_epoch,
        partition_epoch: stale.partition_epoch,
        new_isr: vec![leader],
    };
    c.expire(1);
    let zombie = legacy_unfenced_writes.then_some((1, 1));
    let expected: Vec<(u32, u32)> = zombie.into_iter().chain([(2, 2)]).collect();
    assert_eq!(c.controllers(), expected);
    c.start(3);
    full_isr(&mut c);
    let before = c.ens.state(&tp(0));
    assert_eq!(
        (before.controller_epoch, before.isr.len()),
        (2, 2),
        "{before:?}"
    );
    c.brokers[0].ctl.on_alter_partition(7, request);
    c.start(1);
    (c, before)
}

#[test]
fn a_controller_resigns_when_its_session_ends() {
    let (c, before) = controller_back_after_its_session(false);
    let b1 = &c.brokers[0];
    assert!(matches!(
        b1.replies.last(),
        Some((
            7,
            ResponseBody::AlterPartition {
                result: Err(KafkaError::NotController)
            }
        ))
    ));
    assert_eq!(c.ens.state(&tp(0)), before, "nothing written since");
    assert_eq!(c.controllers(), vec![(2, 2)]);
}

#[test]
fn legacy_a_controller_back_after_its_session_writes_from_its_old_view_then_resigns() {
    let (c, before) = controller_back_after_its_session(true);
    // Its own write failed on the version; from the state it re-read, its old view (broker 3
    // dead) drops broker 3 from the ISR, in controller epoch 1 after epoch 2's writes.
    let after = c.ens.state(&tp(0));
    assert_eq!(after.controller_epoch, 1, "{after:?}");
    assert!(
        before.isr.contains(&3) && !after.isr.contains(&3),
        "{after:?}"
    );
    let b1 = &c.brokers[0];
    let zombie_write = b1
        .announced
        .iter()
        .rev()
        .find_map(|e| match e {
            ControllerEvent::PartitionState {
                controller_epoch, ..
            } => Some(*controller_epoch),
            _ => None,
        })
        .expect("the zombie announced its write");
    assert_eq!(zombie_write, ControllerEpoch(1));
    // Then it learnt its session had ended, resigned and left controller 2 alone.
    assert!(matches!(
        b1.announced.last().unwrap(),
        ControllerEvent::ControllerResigned { .. }
    ));
    assert_eq!(c.controllers(), vec![(2, 2)]);
}

/// KIP-380: a partition leader that is not the controller bounces faster than the
/// controller notices. With broker epochs the controller sees a new epoch for the same id:
/// a failure and a start — the partitions it led get new leaders, and it hears a
/// LeaderAndIsr for its new broker epoch. Without (legacy, KAFKA-7165) the membership looks
/// unchanged: nothing is elected and the broker is told nothing, though it has forgotten
/// what it led.
#[test]
fn a_fast_bounce_is_a_failure_and_a_start_unless_broker_epochs_are_off() {
    for legacy in [false, true] {
        let mut c = Cluster::new(3);
        for b in &mut c.brokers {
            b.ctl.config.legacy_no_broker_epoch = legacy;
        }
        for id in 1..=3 {
            c.start(id);
        }
        full_isr(&mut c);
        // Broker 1, the first controller, leads every partition: once it is gone the
        // leaders and the controller are brokers 2 and 3.
        c.expire(1);
        let controller = c.controllers()[0].0;
        let bounced = 5 - controller;
        let before: Vec<StateZnode> = (0..3).map(|p| c.ens.state(&tp(p))).collect();
        let led: Vec<u32> = (0..3)
            .filter(|&p| before[p as usize].leader == i64::from(bounced))
            .collect();
        assert!(!led.is_empty(), "broker {bounced} leads: {before:?}");
        let inbox = bounced as usize - 1;
        let heard = c.brokers[inbox].inbox.len();
        c.bounce_unseen(bounced);
        let path = paths::broker_path(BrokerId(bounced));
        let (_, stat) = c.ens.tree.get_data(&path).unwrap();
        let new_epoch = BrokerEpoch(stat.czxid.0 as i64);
        let told = c.brokers[inbox].inbox[heard..].iter().any(|r| {
            matches!(r, RequestBody::LeaderAndIsr { broker_epoch, .. } if *broker_epoch == new_epoch)
        });
        for &p in &led {
            let now = c.ens.state(&tp(p));
            if legacy {
                assert_eq!(now, before[p as usize], "legacy: partition {p} untouched");
            } else {
                assert_ne!(now.leader, i64::from(bounced), "partition {p} moved off it");
                assert!(now.leader_epoch > before[p as usize].leader_epoch);
            }
        }
        assert_eq!(
            told, !legacy,
            "legacy={legacy}: LeaderAndIsr to the new incarnation"
        );
    }
}

#[test]
fn alter_partition_checks_the_partition_epoch_and_answers_the_new_state() {
    let mut c = started(3);
    let state = c.active().ctl.states().unwrap()[&tp(1)].clone();
    let leader = state.leader.unwrap();
    let broker_epoch = c.active().ctl.active.as_ref().unwrap().live[&leader];
    let stale = AlterPartition {
        broker_id: leader,
        broker_epoch,
        partition: tp(1),
        leader_epoch: state.leader_epoch,
        partition_epoch: PartitionEpoch(state.partition_epoch.0 - 1),
        new_isr: vec![leader],
    };
    c.active().ctl.on_alter_partition(7, stale);
    c.settle();
    let good = AlterPartition {
        partition_epoch: state.partition_epoch,
        new_isr: state.replicas.clone(),
        ..AlterPartition {
            broker_id: leader,
            broker_epoch,
            partition: tp(1),
            leader_epoch: state.leader_epoch,
            partition_epoch: PartitionEpoch(0),
            new_isr: vec![],
        }
    };
    c.active().ctl.on_alter_partition(8, good);
    c.settle();
    let replies = c.active().replies.clone();
    assert_eq!(
        replies[0],
        (
            7,
            ResponseBody::AlterPartition {
                result: Err(KafkaError::InvalidUpdateVersion)
            }
        )
    );
    match &replies[1] {
        (8, ResponseBody::AlterPartition { result: Ok(new) }) => {
            assert_eq!(new.isr, state.replicas);
            assert_eq!(new.leader_epoch, state.leader_epoch);
            assert_eq!(new.partition_epoch.0, state.partition_epoch.0 + 1);
        }
        other => panic!("{other:?}"),
    }
}

/// The partition-state rules (`next_state`, `state_after_alter`) as a table: leader
/// election from the ISR, then the ELR, then unclean; ISR shrink and expand and the ELR
/// with them; min.insync.replicas.
#[test]
fn partition_state_rules() {
    crate::testdata::run_file("src/broker/testdata/controller_election.txt", |case| {
        let ids = |key: &str| -> Vec<BrokerId> {
            case.list::<u32>(key).into_iter().map(BrokerId).collect()
        };
        let leader = match case.value::<String>("leader").as_str() {
            "none" => None,
            id => Some(BrokerId(id.parse().unwrap_or_else(|e| case.fail(e)))),
        };
        let state = PartitionState {
            leader,
            leader_epoch: LeaderEpoch(case.value("epoch")),
            isr: ids("isr"),
            elr: case.values("elr").map_or_else(Vec::new, |_| ids("elr")),
            controller_epoch: ControllerEpoch(1),
            partition_epoch: PartitionEpoch(9),
            replicas: ids("replicas"),
        };
        let live: BTreeSet<BrokerId> = ids("live").into_iter().collect();
        let mut rules = Rules {
            unclean: false,
            eligible_leader_replicas: !case.has("no-elr"),
            min_isr: case.value("min-isr"),
            controller_epoch: ControllerEpoch(2),
        };
        let next = match case.command.as_str() {
            "next-state" => {
                rules.unclean = case.has("unclean");
                next_state(&state, &live, &rules)
            }
            "alter-isr" => Some(state_after_alter(&state, &ids("new-isr"), &live, &rules)),
            other => case.fail(format!("unknown command {other}")),
        };
        let Some(next) = next else {
            return "no change".into();
        };
        // What every written state has, whatever the case.
        assert_eq!(
            next.controller_epoch,
            ControllerEpoch(2),
            "{}:{}",
            case.source,
            case.line
        );
        assert_eq!(
            next.partition_epoch,
            PartitionEpoch(9),
            "the write bumps it, not the rule"
        );
        assert_eq!(next.replicas, state.replicas, "no reassignment");
        let list = |ids: &[BrokerId]| {
            let ids: Vec<String> = ids.iter().map(|b| b.0.to_string()).collect();
            format!("({})", ids.join(","))
        };
        format!(
            "leader={} epoch={} isr={} elr={}",
            next.leader.map_or("none".into(), |b| b.0.to_string()),
            next.leader_epoch.0,
            list(&next.isr),
            list(&next.elr)
        )
    });
}
