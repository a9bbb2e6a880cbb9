//! The controller (ZooKeeper mode): one broker elected through the ensemble decides every
//! partition's leader and ISR.
//!
//! Owns: controller election, the controller's cached view of the cluster (live brokers with
//! their broker epochs, assignments, partition states with their znode versions), topic
//! creation, leader election on broker loss, ISR changes asked for by leaders
//! (AlterPartition), and the LeaderAndIsr / UpdateMetadata requests that tell brokers.
//!
//! Rules (semantics.md, Controller):
//! - Election is one `multi`: create EPHEMERAL `/controller` and set `/controller_epoch` to
//!   epoch + 1 at the version read. Losing the race → watch `/controller`.
//! - Every write is `multi{check(/controller_epoch, version), write}`: a controller that was
//!   replaced fails with BADVERSION on the check and resigns. A controller whose session
//!   ends resigns at once (Kafka clears its event queue on session expiry).
//! - The legacy switch `unfenced-controller-writes` brings back the controller before
//!   Kafka 2.2 (KAFKA-6082). Writes carry no epoch check, and the controller resigns late.
//!   After its session ends it stays a zombie with its old view. In its next session it
//!   first finishes its queued work: state re-reads after writes of unknown outcome, and
//!   AlterPartitions that arrived meanwhile. Only then does it resign and look for the new
//!   controller. Writes from that stale view land after the new controller's.
//! - On broker loss: new leader = first live replica in assignment order that is in the
//!   ISR, else in the ELR (with `unclean.leader.election.enable`, else any live replica,
//!   ISR reset to it); ISR = old ISR ∩ live, never emptied (the last member stays, leader
//!   -1); leader_epoch + 1 on every leader or ISR change the controller makes. A broker back
//!   with a new broker epoch (a bounce) counts as lost, then back (KIP-380).
//! - The legacy switch `no-broker-epoch` brings back the controller before KIP-380
//!   (KAFKA-7165): membership is by broker id alone. A broker that restarted and registered
//!   again before the controller re-read `/brokers/ids` is not seen to have bounced: its
//!   partitions get no new leader and it gets no LeaderAndIsr until a state changes, so the
//!   partitions it led stay with a leader that does not know it leads. Brokers then accept
//!   controller requests whatever broker epoch they carry.
//! - Eligible leader replicas (KIP-966, carried over from KRaft to the state znode): a
//!   live replica leaving an ISR that falls below the topic's `min.insync.replicas` holds
//!   every committed record (strict min ISR froze the HW), so it may lead if the ISR dies.
//!   The ELR empties when the ISR is back at min ISR. Every broker death counts as an
//!   unclean shutdown (the testbed never stops a broker cleanly), so the dead leave the ELR
//!   at once. The legacy lenient min ISR turns the ELR off: without a frozen HW it is
//!   unsound, and Kafka before 4.0 had neither.
//!
//! Invariants (asserted): each election this core wins is in a newer controller epoch; a
//! state write starts from the cached state's partition epoch, in the controller's own epoch,
//! with a leader epoch no older; a successful write moves the partition epoch up and (with
//! the epoch check) never replaces a newer controller's state; a live broker's epoch is
//! only replaced by a larger one. The legacy zombie's stale writes are left to
//! `controller-epoch-monotonic`, not asserted.
//!
//! Pure: it asks for ensemble operations ([`ControllerAction::Zk`]) and gets their outcomes
//! back by id; it never awaits. One write per partition is in flight at a time; a write
//! whose outcome is unknown (connection loss) is resolved by re-reading the state znode.
//! Simplifications: no preferred-leader rebalancing, no partition reassignment, no topic
//! deletion; the topics come from the scenario and the first controller creates them.

use super::proto::{RequestBody, ResponseBody};
use super::types::{
    BrokerEpoch, BrokerId, ControllerEpoch, KafkaError, PartitionEpoch, PartitionState,
    TopicPartition,
};
use super::zk_paths::{self as paths, ControllerZnode, StateZnode, TopicZnode};
use crate::coverage::Mark;
use crate::log::LeaderEpoch;
use crate::zk::client::Outcome;
use crate::zk::{CreateMode, EventType, Op, OpResult, WatchedEvent, ZkError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A topic the cluster must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// `replication.factor`.
    pub replication_factor: u32,
    /// Its `min.insync.replicas` (the ELR exists only below it).
    pub min_insync_replicas: usize,
}

/// What the controller needs to know.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The broker it runs in.
    pub broker_id: BrokerId,
    /// Every broker of the cluster (for replica assignment).
    pub brokers: Vec<BrokerId>,
    /// Topics to create if missing.
    pub topics: Vec<TopicSpec>,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// LEGACY (KAFKA-6082): write partition states without the controller-epoch check, and
    /// resign only after the work queued before a session's end is done.
    pub legacy_unfenced_writes: bool,
    /// LEGACY (before KIP-380, KAFKA-7165): no broker epochs. The controller tells brokers
    /// apart by id alone, so a broker that bounced before the controller read
    /// `/brokers/ids` without it is not seen to have restarted; brokers and the controller
    /// do not fence requests by broker epoch.
    pub legacy_no_broker_epoch: bool,
    /// Keep eligible leader replicas (KIP-966). Sound only with strict min ISR, so the
    /// legacy lenient min ISR turns it off (as Kafka before 4.0 had neither).
    pub eligible_leader_replicas: bool,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum ControllerAction {
    /// Run `op` on the broker's ensemble session; feed the outcome to `on_zk_outcome(id, ..)`.
    Zk {
        /// Echoed back.
        id: u64,
        /// The operation.
        op: Op,
    },
    /// Send a controller request to a broker (LeaderAndIsr, UpdateMetadata).
    Send {
        /// The broker.
        to: BrokerId,
        /// The request.
        body: RequestBody,
    },
    /// Answer an AlterPartition request.
    Reply {
        /// The token the request came with.
        token: u64,
        /// The answer.
        body: ResponseBody,
    },
    /// Announce an event for the checkers and the timeline.
    Announce(ControllerEvent),
}

/// What a controller announces (node `broker-<n>`, the broker hosting it). Serialized as
/// `{"kind": <kebab-case name>, "detail": {fields}}`; partitions are written `"topic/p"`,
/// broker ids are numbers.
///
/// | kind | detail | when | checked by |
/// |---|---|---|---|
/// | `controller-elected` | `controller_epoch` | it won the controller election | `single-controller-per-epoch`, `controller-epoch-monotonic` |
/// | `partition-state` | `partition`, `leader`, `leader_epoch`, `isr`, `elr`, `controller_epoch`, `partition_epoch` | as controller, it wrote this state of the partition | `leader-epoch-monotonic`, `controller-epoch-monotonic` (in `partition_epoch` order: announcement order is not write order when a controller pauses) |
/// | `controller-resigned` | `controller_epoch`, `why` | it stopped being controller | not checked; for the timeline |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum ControllerEvent {
    /// It won the controller election in `controller_epoch`.
    ControllerElected {
        /// The epoch it won.
        controller_epoch: ControllerEpoch,
    },
    /// It stopped being controller.
    ControllerResigned {
        /// The epoch it led in.
        controller_epoch: ControllerEpoch,
        /// Why it resigned.
        why: String,
    },
    /// As controller, it wrote this state of `partition` (the write succeeded).
    PartitionState {
        /// The partition.
        #[serde(with = "super::types::tp_text")]
        partition: TopicPartition,
        /// The leader, if any.
        leader: Option<BrokerId>,
        /// The leader epoch written.
        leader_epoch: LeaderEpoch,
        /// The ISR written.
        isr: Vec<BrokerId>,
        /// The ELR written.
        elr: Vec<BrokerId>,
        /// The epoch of the controller that wrote it.
        controller_epoch: ControllerEpoch,
        /// The state znode's version after the write.
        partition_epoch: PartitionEpoch,
    },
}

/// Why an ensemble operation was issued.
#[derive(Clone, Debug, PartialEq)]
enum Purpose {
    /// `exists(/controller, watch)`.
    WatchController,
    /// `getData(/controller_epoch)` before trying to win.
    ReadEpoch,
    /// The election multi, for this epoch.
    Elect { epoch: ControllerEpoch },
    /// After an unknown election outcome: is `/controller` ours?
    ConfirmElection,
    /// `getData(/controller_epoch)` after confirming we won.
    ReadWonEpoch,
    /// `getChildren(/brokers/ids, watch)`.
    ReadBrokers,
    /// `getData(/brokers/ids/<id>)`: its czxid is the broker epoch.
    ReadBroker(BrokerId),
    /// `getChildren(/brokers/topics)`.
    ReadTopics,
    /// `getData(/brokers/topics/<t>)`.
    ReadTopic(String),
    /// The topic-creation multi.
    CreateTopic(String),
    /// `getData(state)`.
    ReadState(TopicPartition),
    /// A fenced write of a partition state; the reply token of an AlterPartition, if any.
    WriteState {
        tp: TopicPartition,
        state: PartitionState,
        reply: Option<u64>,
    },
}

/// The active controller's view.
#[derive(Clone, Debug, Default)]
struct Active {
    epoch: ControllerEpoch,
    /// `/controller_epoch`'s version: the fence.
    epoch_version: i32,
    /// Live brokers → broker epoch (czxid of their registration).
    live: BTreeMap<BrokerId, BrokerEpoch>,
    /// Broker reads outstanding (a membership change is processed when none are).
    broker_reads: BTreeSet<BrokerId>,
    /// The membership the pending broker reads will produce.
    next_live: BTreeMap<BrokerId, BrokerEpoch>,
    /// Assignment of every known partition.
    replicas: BTreeMap<TopicPartition, Vec<BrokerId>>,
    /// Partition states as last read or written.
    states: BTreeMap<TopicPartition, PartitionState>,
    /// Reads of topics and states outstanding before the view is complete.
    loading: usize,
    /// The brokers and topics are loaded.
    initialized: bool,
    /// Partitions with a state write in flight.
    writing: BTreeSet<TopicPartition>,
    /// AlterPartition requests waiting for a partition's write to end.
    waiting: Vec<(u64, AlterPartition)>,
}

/// An AlterPartition request.
#[derive(Clone, Debug, PartialEq)]
pub struct AlterPartition {
    /// The leader asking.
    pub broker_id: BrokerId,
    /// Its broker epoch.
    pub broker_epoch: BrokerEpoch,
    /// The partition.
    pub partition: TopicPartition,
    /// The leader epoch it leads in.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch its state has.
    pub partition_epoch: PartitionEpoch,
    /// The ISR it wants.
    pub new_isr: Vec<BrokerId>,
}

/// The controller core of one broker (every broker has one; at most one is active).
pub struct ControllerCore {
    config: ControllerConfig,
    /// `Some` while this broker is the active controller.
    active: Option<Active>,
    /// The newest controller epoch this core has won (0 before any): each win is newer.
    newest_won: ControllerEpoch,
    /// The broker has a session and takes part in elections.
    running: bool,
    /// LEGACY (KAFKA-6082): the session ended while active; the controller still acts on
    /// its old view until its queued work is done in the next session.
    zombie: bool,
    pending: BTreeMap<u64, Purpose>,
    next_id: u64,
    actions: Vec<ControllerAction>,
}

impl ControllerCore {
    /// A controller that has not started (no session yet).
    pub fn new(config: ControllerConfig) -> Self {
        ControllerCore {
            config,
            active: None,
            newest_won: ControllerEpoch(0),
            running: false,
            zombie: false,
            pending: BTreeMap::new(),
            next_id: 1,
            actions: Vec::new(),
        }
    }

    /// The actions accumulated since the last call.
    pub fn take_actions(&mut self) -> Vec<ControllerAction> {
        std::mem::take(&mut self.actions)
    }

    /// The controller epoch, while active.
    pub fn active_epoch(&self) -> Option<ControllerEpoch> {
        self.active.as_ref().map(|a| a.epoch)
    }

    /// Whether this is still the active controller of `epoch` and `to` a live broker of
    /// it: a controller request to `to` is still worth delivering.
    pub fn still_sends_to(&self, epoch: ControllerEpoch, to: BrokerId) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.epoch == epoch && a.live.contains_key(&to))
    }

    /// The broker epoch of `to`'s registration as this active controller knows it.
    pub fn live_broker_epoch(&self, to: BrokerId) -> Option<BrokerEpoch> {
        self.active.as_ref().and_then(|a| a.live.get(&to).copied())
    }

    /// The partition states, while active and loaded.
    pub fn states(&self) -> Option<&BTreeMap<TopicPartition, PartitionState>> {
        self.active
            .as_ref()
            .filter(|a| a.initialized)
            .map(|a| &a.states)
    }

    /// The broker registered in a fresh session: take part in controller elections (a
    /// zombie first finishes its queued work).
    pub fn start(&mut self) {
        self.running = true;
        self.pending.clear();
        if self.zombie {
            self.run_queued_work();
            return;
        }
        self.zk(
            Purpose::WatchController,
            Op::Exists {
                path: paths::CONTROLLER.into(),
                watch: true,
            },
        );
    }

    /// The broker's session ended (expired or closed): resign if active, and wait for
    /// `start` in the next session.
    pub fn on_session_lost(&mut self) {
        if self.config.legacy_unfenced_writes && self.active.is_some() {
            // LEGACY (KAFKA-6082): the session's end waits in the queue behind the work
            // already there; the controller does not know yet.
            self.zombie = true;
        } else {
            self.resign("session lost");
        }
        self.running = false;
        self.pending.clear();
    }

    /// LEGACY (KAFKA-6082): a zombie in its next session runs what was queued before it
    /// hears that its session ended. It re-reads the states whose writes were lost with the
    /// session and serves the AlterPartitions waiting. It resigns once all that is done.
    fn run_queued_work(&mut self) {
        let Some(active) = self.active.as_ref() else {
            self.zombie = false;
            self.retry_watch();
            return;
        };
        let unknown: Vec<TopicPartition> = active.writing.iter().cloned().collect();
        let waiting: BTreeSet<TopicPartition> = active
            .waiting
            .iter()
            .map(|(_, r)| r.partition)
            .filter(|tp| !active.writing.contains(tp))
            .collect();
        for tp in unknown {
            self.zk(
                Purpose::ReadState(tp),
                Op::GetData {
                    path: paths::state_path(&tp),
                    watch: false,
                },
            );
        }
        for tp in waiting {
            self.serve_waiting(&tp);
        }
        self.end_zombie_when_idle();
    }

    /// A zombie with nothing left in flight learns that its session ended: it resigns and
    /// looks for the controller like any broker.
    fn end_zombie_when_idle(&mut self) {
        if self.zombie && self.running && self.pending.is_empty() {
            self.zombie = false;
            self.resign("session lost");
            self.retry_watch();
        }
    }

    /// A watch of the broker's session fired.
    pub fn on_watch(&mut self, event: &WatchedEvent) {
        if !self.running {
            return;
        }
        match (event.event, event.path.as_str()) {
            (EventType::NodeDeleted, paths::CONTROLLER) => {
                if self.active.is_some() {
                    // Our own ephemeral is gone while our session lives: someone deleted it.
                    self.resign("/controller deleted");
                }
                self.zk(
                    Purpose::ReadEpoch,
                    Op::GetData {
                        path: paths::CONTROLLER_EPOCH.into(),
                        watch: false,
                    },
                );
            }
            (_, paths::CONTROLLER) => self.zk(
                Purpose::WatchController,
                Op::Exists {
                    path: paths::CONTROLLER.into(),
                    watch: true,
                },
            ),
            (EventType::NodeChildrenChanged, paths::BROKER_IDS) if self.active.is_some() => {
                self.read_brokers()
            }
            _ => {}
        }
    }

    /// The outcome of the operation `id`.
    pub fn on_zk_outcome(&mut self, id: u64, outcome: Outcome) {
        let Some(purpose) = self.pending.remove(&id) else {
            return;
        };
        if !self.running {
            return;
        }
        self.handle_outcome(purpose, outcome);
        self.end_zombie_when_idle();
    }

    fn handle_outcome(&mut self, purpose: Purpose, outcome: Outcome) {
        let result = match outcome {
            Outcome::Done { result, .. } => Ok(result),
            Outcome::Unknown { error } | Outcome::NotSent { error } => Err(error),
        };
        match purpose {
            Purpose::WatchController => match result {
                Ok(Ok(OpResult::Exists { stat: None })) => self.zk(
                    Purpose::ReadEpoch,
                    Op::GetData {
                        path: paths::CONTROLLER_EPOCH.into(),
                        watch: false,
                    },
                ),
                Ok(Ok(_)) => {}
                _ => self.retry_watch(),
            },
            Purpose::ReadEpoch => match result {
                Ok(Ok(OpResult::Data { data, stat })) => {
                    let epoch = parse_epoch(&data);
                    self.zk(
                        Purpose::Elect {
                            epoch: epoch.next(),
                        },
                        Op::Multi {
                            ops: vec![
                                self.create_controller_op(),
                                Op::SetData {
                                    path: paths::CONTROLLER_EPOCH.into(),
                                    data: epoch.next().to_string().into_bytes(),
                                    version: stat.version,
                                },
                            ],
                        },
                    );
                }
                Ok(Err(e)) if e.error == ZkError::NoNode => self.zk(
                    Purpose::Elect {
                        epoch: ControllerEpoch(1),
                    },
                    Op::Multi {
                        ops: vec![
                            self.create_controller_op(),
                            Op::Create {
                                path: paths::CONTROLLER_EPOCH.into(),
                                data: b"1".to_vec(),
                                mode: CreateMode::Persistent,
                            },
                        ],
                    },
                ),
                _ => self.retry_watch(),
            },
            Purpose::Elect { epoch } => match result {
                Ok(Ok(OpResult::Multi { results })) => {
                    let version = match results.get(1) {
                        Some(OpResult::DataSet { stat }) => stat.version,
                        _ => 0,
                    };
                    self.become_active(epoch, version);
                }
                Ok(Err(_)) => self.retry_watch(),
                Ok(Ok(_)) => self.retry_watch(),
                Err(ZkError::SessionExpired) => {}
                Err(_) => self.zk(
                    Purpose::ConfirmElection,
                    Op::GetData {
                        path: paths::CONTROLLER.into(),
                        watch: true,
                    },
                ),
            },
            Purpose::ConfirmElection => match result {
                Ok(Ok(OpResult::Data { data, .. }))
                    if paths::decode::<ControllerZnode>(&data)
                        .is_some_and(|c| c.brokerid == self.config.broker_id.0) =>
                {
                    self.zk(
                        Purpose::ReadWonEpoch,
                        Op::GetData {
                            path: paths::CONTROLLER_EPOCH.into(),
                            watch: false,
                        },
                    )
                }
                Ok(Ok(_)) => {}
                _ => self.retry_watch(),
            },
            Purpose::ReadWonEpoch => match result {
                Ok(Ok(OpResult::Data { data, stat })) => {
                    self.become_active(parse_epoch(&data), stat.version)
                }
                _ => self.zk(
                    Purpose::ReadWonEpoch,
                    Op::GetData {
                        path: paths::CONTROLLER_EPOCH.into(),
                        watch: false,
                    },
                ),
            },
            Purpose::ReadBrokers => match result {
                Ok(Ok(OpResult::Children { children })) => self.on_broker_ids(&children),
                _ => self.read_brokers(),
            },
            Purpose::ReadBroker(id) => {
                let Some(active) = self.active.as_mut() else {
                    return;
                };
                if !active.broker_reads.remove(&id) {
                    return;
                }
                match result {
                    Ok(Ok(OpResult::Data { stat, .. })) => {
                        active
                            .next_live
                            .insert(id, BrokerEpoch(stat.czxid.0 as i64));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        // Unknown: read again.
                        active.broker_reads.insert(id);
                        self.zk(
                            Purpose::ReadBroker(id),
                            Op::GetData {
                                path: paths::broker_path(id),
                                watch: false,
                            },
                        );
                        return;
                    }
                }
                if self
                    .active
                    .as_ref()
                    .is_some_and(|a| a.broker_reads.is_empty())
                {
                    self.membership_known();
                }
            }
            Purpose::ReadTopics => match result {
                Ok(Ok(OpResult::Children { children })) => self.on_topics(&children),
                _ => self.zk(
                    Purpose::ReadTopics,
                    Op::GetChildren {
                        path: paths::TOPICS.into(),
                        watch: false,
                    },
                ),
            },
            Purpose::ReadTopic(topic) => match result {
                Ok(Ok(OpResult::Data { data, .. })) => match paths::decode::<TopicZnode>(&data) {
                    Some(znode) => self.on_topic(&topic, &znode),
                    None => self.loaded_one(),
                },
                Ok(_) => self.loaded_one(),
                Err(_) => self.zk(
                    Purpose::ReadTopic(topic.clone()),
                    Op::GetData {
                        path: paths::topic_path(&topic),
                        watch: false,
                    },
                ),
            },
            Purpose::CreateTopic(topic) => match result {
                Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                    // Whatever happened, read back what is there.
                    self.zk(
                        Purpose::ReadTopic(topic.clone()),
                        Op::GetData {
                            path: paths::topic_path(&topic),
                            watch: false,
                        },
                    )
                }
            },
            Purpose::ReadState(tp) => self.on_state_read(tp, result),
            Purpose::WriteState { tp, state, reply } => {
                self.on_state_written(tp, state, reply, result)
            }
        }
    }

    /// An AlterPartition request from a partition leader; the answer comes back as a
    /// [`ControllerAction::Reply`] with `token`.
    pub fn on_alter_partition(&mut self, token: u64, request: AlterPartition) {
        let min_isr = self.min_isr(&request.partition.topic);
        let in_session = self.running;
        let Some(active) = self.active.as_mut() else {
            self.reply_alter(token, Err(KafkaError::NotController));
            return;
        };
        // A zombie between sessions queues it for the next one.
        if !active.initialized || !in_session || active.writing.contains(&request.partition) {
            active.waiting.push((token, request));
            return;
        }
        let verdict = validate_alter(active, &request, !self.config.legacy_no_broker_epoch);
        match verdict {
            Err(error) => self.reply_alter(token, Err(error)),
            Ok(None) => {
                let state = active.states[&request.partition].clone();
                self.reply_alter(token, Ok(state));
            }
            Ok(Some(state)) => {
                let live: BTreeSet<BrokerId> = active.live.keys().copied().collect();
                let rules = Rules {
                    unclean: self.config.unclean_leader_election,
                    eligible_leader_replicas: self.config.eligible_leader_replicas,
                    min_isr,
                    controller_epoch: active.epoch,
                };
                let state = state_after_alter(&state, &request.new_isr, &live, &rules);
                self.write_state(request.partition, state, Some(token));
            }
        }
    }

    fn min_isr(&self, topic: &str) -> usize {
        self.config
            .topics
            .iter()
            .find(|t| t.name == topic)
            .map_or(1, |t| t.min_insync_replicas)
    }

    fn reply_alter(&mut self, token: u64, result: Result<PartitionState, KafkaError>) {
        self.actions.push(ControllerAction::Reply {
            token,
            body: ResponseBody::AlterPartition { result },
        });
    }

    fn zk(&mut self, purpose: Purpose, op: Op) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, purpose);
        self.actions.push(ControllerAction::Zk { id, op });
    }

    fn retry_watch(&mut self) {
        if self.active.is_none() {
            self.zk(
                Purpose::WatchController,
                Op::Exists {
                    path: paths::CONTROLLER.into(),
                    watch: true,
                },
            );
        }
    }

    fn create_controller_op(&self) -> Op {
        Op::Create {
            path: paths::CONTROLLER.into(),
            data: paths::encode(&ControllerZnode {
                brokerid: self.config.broker_id.0,
            }),
            mode: CreateMode::Ephemeral,
        }
    }

    fn become_active(&mut self, epoch: ControllerEpoch, epoch_version: i32) {
        if self.active.is_some() {
            return;
        }
        // Each election sets `/controller_epoch` to one more than it read, under a version
        // check: a later win is in a newer epoch.
        assert!(
            epoch > self.newest_won,
            "controller epoch {epoch} won after epoch {}: controller epochs only grow",
            self.newest_won
        );
        self.newest_won = epoch;
        if epoch.0 > 1 {
            crate::coverage::hit(Mark::ControllerMoved);
        }
        self.active = Some(Active {
            epoch,
            epoch_version,
            ..Active::default()
        });
        self.actions.push(ControllerAction::Announce(
            ControllerEvent::ControllerElected {
                controller_epoch: epoch,
            },
        ));
        // Watch our own znode: if it vanishes while we live, resign.
        self.zk(
            Purpose::WatchController,
            Op::Exists {
                path: paths::CONTROLLER.into(),
                watch: true,
            },
        );
        self.read_brokers();
        self.zk(
            Purpose::ReadTopics,
            Op::GetChildren {
                path: paths::TOPICS.into(),
                watch: false,
            },
        );
        if let Some(active) = self.active.as_mut() {
            // The broker list and the topic list.
            active.loading = 2;
        }
    }

    fn resign(&mut self, why: &str) {
        if let Some(active) = self.active.take() {
            self.actions.push(ControllerAction::Announce(
                ControllerEvent::ControllerResigned {
                    controller_epoch: active.epoch,
                    why: why.to_string(),
                },
            ));
            for (token, _) in active.waiting {
                self.reply_alter(token, Err(KafkaError::NotController));
            }
            // Pending writes answer nothing more; their replies are dropped.
            let replies: Vec<u64> = self
                .pending
                .values()
                .filter_map(|p| match p {
                    Purpose::WriteState { reply, .. } => *reply,
                    _ => None,
                })
                .collect();
            for token in replies {
                self.reply_alter(token, Err(KafkaError::NotController));
            }
            self.pending
                .retain(|_, p| matches!(p, Purpose::WatchController));
        }
    }

    fn read_brokers(&mut self) {
        self.zk(
            Purpose::ReadBrokers,
            Op::GetChildren {
                path: paths::BROKER_IDS.into(),
                watch: true,
            },
        );
    }

    fn on_broker_ids(&mut self, children: &[String]) {
        let ids: BTreeSet<BrokerId> = children
            .iter()
            .filter_map(|c| c.parse().ok().map(BrokerId))
            .collect();
        let Some(active) = self.active.as_mut() else {
            return;
        };
        active.next_live.clear();
        active.broker_reads = ids.clone();
        if ids.is_empty() {
            self.membership_known();
            return;
        }
        for id in ids {
            self.zk(
                Purpose::ReadBroker(id),
                Op::GetData {
                    path: paths::broker_path(id),
                    watch: false,
                },
            );
        }
    }

    fn membership_known(&mut self) {
        let legacy = self.config.legacy_unfenced_writes;
        let no_broker_epoch = self.config.legacy_no_broker_epoch;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let old = std::mem::take(&mut active.live);
        active.live = std::mem::take(&mut active.next_live);
        if !legacy {
            // One session's reads never go back in time, and a broker's next registration
            // is created after its last: a broker epoch is only replaced by a larger one.
            // (A legacy zombie carries its view into its next session: left out.)
            for (id, epoch) in &active.live {
                if let Some(before) = old.get(id) {
                    assert!(
                        epoch >= before,
                        "broker {id}: broker epoch {epoch} replaced {before}: broker epochs \
                         only grow"
                    );
                }
            }
        }
        if !active.initialized {
            self.loaded_one();
            return;
        }
        // Brokers that are new, or back with a new epoch (a bounce), hear about their
        // partitions again.
        let changed: Vec<BrokerId> = active
            .live
            .iter()
            .filter(|(id, epoch)| {
                if no_broker_epoch {
                    // LEGACY (before KIP-380): membership by id; a broker that bounced
                    // between two reads of `/brokers/ids` looks as if it never left.
                    !old.contains_key(id)
                } else {
                    old.get(id) != Some(epoch)
                }
            })
            .map(|(id, _)| *id)
            .collect();
        // A bounce is a failure and a start (KIP-380): elect as if the bounced brokers
        // were gone (an unclean shutdown may have cost them their unflushed tail), then
        // again with them.
        let bounced: BTreeSet<BrokerId> = changed
            .iter()
            .copied()
            .filter(|id| old.contains_key(id))
            .collect();
        self.elect_without(&bounced);
        for id in changed {
            self.send_leader_and_isr(id, None);
        }
        self.send_update_metadata();
    }

    fn on_topics(&mut self, children: &[String]) {
        let existing: BTreeSet<&str> = children.iter().map(String::as_str).collect();
        let topics = self.config.topics.clone();
        let mut reads = 0;
        for spec in &topics {
            reads += 1;
            if existing.contains(spec.name.as_str()) {
                self.zk(
                    Purpose::ReadTopic(spec.name.clone()),
                    Op::GetData {
                        path: paths::topic_path(&spec.name),
                        watch: false,
                    },
                );
            } else {
                let op = self.create_topic_op(spec);
                self.zk(Purpose::CreateTopic(spec.name.clone()), op);
            }
        }
        if let Some(active) = self.active.as_mut() {
            active.loading += reads;
        }
        self.loaded_one();
    }

    /// Kafka's rack-unaware assignment, without its random start: partition `p`'s replicas
    /// are consecutive brokers from `p + shift`.
    fn assignment(&self, spec: &TopicSpec) -> BTreeMap<u32, Vec<u32>> {
        let brokers = &self.config.brokers;
        let n = brokers.len().max(1);
        let shift = spec.name.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        (0..spec.partitions)
            .map(|p| {
                let replicas = (0..spec.replication_factor as usize)
                    .map(|i| brokers[(p as usize + shift + i) % n].0)
                    .collect();
                (p, replicas)
            })
            .collect()
    }

    fn create_topic_op(&self, spec: &TopicSpec) -> Op {
        let active = self.active.as_ref().expect("active");
        let assignment = self.assignment(spec);
        let mut ops = Vec::new();
        if !self.config.legacy_unfenced_writes {
            ops.push(Op::Check {
                path: paths::CONTROLLER_EPOCH.into(),
                version: active.epoch_version,
            });
        }
        ops.push(Op::Create {
            path: paths::topic_path(&spec.name),
            data: paths::encode(&TopicZnode {
                partitions: assignment.clone(),
            }),
            mode: CreateMode::Persistent,
        });
        ops.push(Op::Create {
            path: paths::partitions_path(&spec.name),
            data: Vec::new(),
            mode: CreateMode::Persistent,
        });
        for (p, replicas) in &assignment {
            let tp = TopicPartition::new(spec.name.clone(), *p);
            // Every replica is in the first ISR (all logs are empty); the first live one
            // leads. Brokers not yet registered are not in it.
            let live: Vec<u32> = replicas
                .iter()
                .copied()
                .filter(|r| active.live.contains_key(&BrokerId(*r)))
                .collect();
            let isr = if live.is_empty() {
                replicas.clone()
            } else {
                live.clone()
            };
            let state = StateZnode {
                leader: live.first().map_or(-1, |&b| i64::from(b)),
                leader_epoch: 0,
                controller_epoch: active.epoch.0,
                isr,
                elr: Vec::new(),
            };
            ops.push(Op::Create {
                path: paths::partition_path(&tp),
                data: Vec::new(),
                mode: CreateMode::Persistent,
            });
            ops.push(Op::Create {
                path: paths::state_path(&tp),
                data: paths::encode(&state),
                mode: CreateMode::Persistent,
            });
        }
        Op::Multi { ops }
    }

    fn on_topic(&mut self, topic: &str, znode: &TopicZnode) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mut reads = Vec::new();
        for (p, replicas) in &znode.partitions {
            let tp = TopicPartition::new(topic, *p);
            active
                .replicas
                .insert(tp, replicas.iter().map(|&r| BrokerId(r)).collect());
            reads.push(tp);
        }
        active.loading += reads.len();
        for tp in reads {
            self.zk(
                Purpose::ReadState(tp),
                Op::GetData {
                    path: paths::state_path(&tp),
                    watch: false,
                },
            );
        }
        self.loaded_one();
    }

    fn on_state_read(
        &mut self,
        tp: TopicPartition,
        result: Result<Result<OpResult, crate::zk::OpError>, ZkError>,
    ) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        match result {
            Ok(Ok(OpResult::Data { data, stat })) => {
                if let Some(znode) = paths::decode::<StateZnode>(&data) {
                    let replicas = active.replicas.get(&tp).cloned().unwrap_or_default();
                    active
                        .states
                        .insert(tp, znode.to_state(PartitionEpoch(stat.version), replicas));
                }
            }
            Ok(_) => {}
            Err(_) => {
                self.zk(
                    Purpose::ReadState(tp),
                    Op::GetData {
                        path: paths::state_path(&tp),
                        watch: false,
                    },
                );
                return;
            }
        }
        let initialized = active.initialized;
        if initialized {
            // A re-read after an unknown write: the partition is free again.
            active.writing.remove(&tp);
            self.elect_where_needed();
            self.send_to_replicas(&tp);
            self.serve_waiting(&tp);
        } else {
            self.loaded_one();
        }
    }

    fn loaded_one(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        active.loading = active.loading.saturating_sub(1);
        if active.loading > 0 || active.initialized || !active.broker_reads.is_empty() {
            return;
        }
        active.initialized = true;
        self.elect_where_needed();
        let live: Vec<BrokerId> = self
            .active
            .as_ref()
            .map(|a| a.live.keys().copied().collect())
            .unwrap_or_default();
        for id in live {
            self.send_leader_and_isr(id, None);
        }
        self.send_update_metadata();
        let waiting: Vec<TopicPartition> = self
            .active
            .as_ref()
            .map(|a| a.waiting.iter().map(|(_, r)| r.partition).collect())
            .unwrap_or_default();
        for tp in waiting {
            self.serve_waiting(&tp);
        }
    }

    /// Elects leaders and shrinks ISRs for every partition the live set calls for.
    fn elect_where_needed(&mut self) {
        self.elect_without(&BTreeSet::new());
    }

    /// [`Self::elect_where_needed`], counting the `excluded` brokers as dead.
    fn elect_without(&mut self, excluded: &BTreeSet<BrokerId>) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        if !active.initialized {
            return;
        }
        let live: BTreeSet<BrokerId> = active
            .live
            .keys()
            .copied()
            .filter(|b| !excluded.contains(b))
            .collect();
        let mut writes = Vec::new();
        for (tp, state) in &active.states {
            if active.writing.contains(tp) {
                continue;
            }
            let rules = Rules {
                unclean: self.config.unclean_leader_election,
                eligible_leader_replicas: self.config.eligible_leader_replicas,
                min_isr: self.min_isr(&tp.topic),
                controller_epoch: active.epoch,
            };
            if let Some(next) = next_state(state, &live, &rules) {
                writes.push((*tp, next));
            }
        }
        for (tp, state) in writes {
            self.write_state(tp, state, None);
        }
    }

    fn write_state(&mut self, tp: TopicPartition, state: PartitionState, reply: Option<u64>) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let current = active
            .states
            .get(&tp)
            .map_or(PartitionEpoch(0), |s| s.partition_epoch);
        // The rules build the next state from the cached one: same version (the write is
        // conditioned on it), a leader epoch no older, and this controller's epoch.
        assert_eq!(
            state.partition_epoch, current,
            "{tp}: a state write must start from the cached partition epoch"
        );
        if let Some(cached) = active.states.get(&tp) {
            assert!(
                state.leader_epoch >= cached.leader_epoch,
                "{tp}: writing leader epoch {} over {}: leader epochs only grow",
                state.leader_epoch,
                cached.leader_epoch
            );
        }
        assert_eq!(
            state.controller_epoch, active.epoch,
            "{tp}: a controller writes in its own epoch"
        );
        active.writing.insert(tp);
        let set = Op::SetData {
            path: paths::state_path(&tp),
            data: paths::encode(&StateZnode::of(&state)),
            version: current.0,
        };
        let op = if self.config.legacy_unfenced_writes {
            // LEGACY (KAFKA-6082): no controller-epoch check; a zombie controller's write
            // lands.
            set
        } else {
            Op::Multi {
                ops: vec![
                    Op::Check {
                        path: paths::CONTROLLER_EPOCH.into(),
                        version: active.epoch_version,
                    },
                    set,
                ],
            }
        };
        self.zk(Purpose::WriteState { tp, state, reply }, op);
    }

    fn on_state_written(
        &mut self,
        tp: TopicPartition,
        mut state: PartitionState,
        reply: Option<u64>,
        result: Result<Result<OpResult, crate::zk::OpError>, ZkError>,
    ) {
        let unfenced = self.config.legacy_unfenced_writes;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        match result {
            Ok(Ok(result)) => {
                let stat = match result {
                    OpResult::Multi { results } => match results.into_iter().nth(1) {
                        Some(OpResult::DataSet { stat }) => Some(stat),
                        _ => None,
                    },
                    OpResult::DataSet { stat } => Some(stat),
                    _ => None,
                };
                let written_over = state.partition_epoch;
                state.partition_epoch = stat
                    .map_or(PartitionEpoch(state.partition_epoch.0 + 1), |s| {
                        PartitionEpoch(s.version)
                    });
                let cached = active.states.get(&tp);
                assert_written_state_is_newer(&tp, cached, &state, written_over, !unfenced);
                active.states.insert(tp, state.clone());
                active.writing.remove(&tp);
                self.actions.push(ControllerAction::Announce(
                    ControllerEvent::PartitionState {
                        partition: tp,
                        leader: state.leader,
                        leader_epoch: state.leader_epoch,
                        isr: state.isr.clone(),
                        elr: state.elr.clone(),
                        controller_epoch: state.controller_epoch,
                        partition_epoch: state.partition_epoch,
                    },
                ));
                if let Some(token) = reply {
                    self.reply_alter(token, Ok(state));
                }
                self.send_to_replicas(&tp);
                self.send_update_metadata();
                self.elect_where_needed();
                self.serve_waiting(&tp);
            }
            Ok(Err(e)) if e.error == ZkError::BadVersion && e.index == Some(0) && !unfenced => {
                // The controller epoch moved: another controller took over.
                if let Some(token) = reply {
                    self.reply_alter(token, Err(KafkaError::NotController));
                }
                self.resign("fenced by a newer controller epoch");
                self.retry_watch();
            }
            Ok(Err(_)) | Err(_) => {
                if let Some(token) = reply {
                    self.reply_alter(token, Err(KafkaError::InvalidUpdateVersion));
                }
                // Unknown outcome or a stale version: read the state back and go on from it.
                self.zk(
                    Purpose::ReadState(tp),
                    Op::GetData {
                        path: paths::state_path(&tp),
                        watch: false,
                    },
                );
            }
        }
    }

    fn serve_waiting(&mut self, tp: &TopicPartition) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if let Some(i) = active.waiting.iter().position(|(_, r)| &r.partition == tp) {
            let (token, request) = active.waiting.remove(i);
            self.on_alter_partition(token, request);
        }
    }

    fn send_to_replicas(&mut self, tp: &TopicPartition) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let Some(state) = active.states.get(tp) else {
            return;
        };
        let targets: Vec<BrokerId> = state
            .replicas
            .iter()
            .copied()
            .filter(|r| active.live.contains_key(r))
            .collect();
        for to in targets {
            self.send_leader_and_isr(to, Some(tp));
        }
    }

    /// LeaderAndIsr to `to` for one partition, or all it replicates.
    fn send_leader_and_isr(&mut self, to: BrokerId, only: Option<&TopicPartition>) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let Some(&broker_epoch) = active.live.get(&to) else {
            return;
        };
        let partitions: Vec<(TopicPartition, PartitionState)> = active
            .states
            .iter()
            .filter(|(tp, s)| only.is_none_or(|o| o == *tp) && s.replicas.contains(&to))
            .map(|(tp, s)| (*tp, s.clone()))
            .collect();
        if partitions.is_empty() {
            return;
        }
        self.actions.push(ControllerAction::Send {
            to,
            body: RequestBody::LeaderAndIsr {
                controller_id: self.config.broker_id,
                controller_epoch: active.epoch,
                broker_epoch,
                partitions,
            },
        });
    }

    fn send_update_metadata(&mut self) {
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let live_brokers: Vec<(BrokerId, BrokerEpoch)> =
            active.live.iter().map(|(id, e)| (*id, *e)).collect();
        let partitions: Vec<(TopicPartition, PartitionState)> = active
            .states
            .iter()
            .map(|(tp, s)| (*tp, s.clone()))
            .collect();
        for (to, _) in &live_brokers {
            self.actions.push(ControllerAction::Send {
                to: *to,
                body: RequestBody::UpdateMetadata {
                    controller_id: self.config.broker_id,
                    controller_epoch: active.epoch,
                    live_brokers: live_brokers.clone(),
                    partitions: partitions.clone(),
                },
            });
        }
    }
}

/// A state write succeeded: the znode version moved past the one it was conditioned on
/// (`written_over`), and the leader epoch did not go back. When `fenced` (the epoch check
/// on every write), the write also proves this controller is the newest, so no state it
/// replaces was written by a newer controller. The legacy unfenced zombie breaks exactly
/// that (KAFKA-6082), which `controller-epoch-monotonic` must catch, so it is not asserted
/// there.
fn assert_written_state_is_newer(
    tp: &TopicPartition,
    cached: Option<&PartitionState>,
    written: &PartitionState,
    written_over: PartitionEpoch,
    fenced: bool,
) {
    assert!(
        written.partition_epoch > written_over,
        "{tp}: partition epoch {} after a write over {written_over}: partition epochs only grow",
        written.partition_epoch
    );
    let Some(cached) = cached else {
        return;
    };
    assert!(
        written.partition_epoch > cached.partition_epoch
            && written.leader_epoch >= cached.leader_epoch,
        "{tp}: wrote partition epoch {} leader epoch {} over partition epoch {} leader epoch \
         {}: epochs only grow",
        written.partition_epoch,
        written.leader_epoch,
        cached.partition_epoch,
        cached.leader_epoch
    );
    if fenced {
        assert!(
            written.controller_epoch >= cached.controller_epoch,
            "{tp}: controller epoch {} wrote over controller epoch {}'s state: controller \
             epochs only grow",
            written.controller_epoch,
            cached.controller_epoch
        );
    }
}

fn parse_epoch(data: &[u8]) -> ControllerEpoch {
    ControllerEpoch(
        std::str::from_utf8(data)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0),
    )
}

/// What an AlterPartition may do: `Ok(Some(state))` to write (the current state, to be
/// given the new ISR), `Ok(None)` when it asks for the ISR already there. With
/// `broker_epochs` off (legacy, before KIP-380) the asking broker need only be live.
fn validate_alter(
    active: &Active,
    request: &AlterPartition,
    broker_epochs: bool,
) -> Result<Option<PartitionState>, KafkaError> {
    let Some(state) = active.states.get(&request.partition) else {
        return Err(KafkaError::UnknownTopicOrPartition);
    };
    let known = match active.live.get(&request.broker_id) {
        Some(epoch) => !broker_epochs || *epoch == request.broker_epoch,
        None => false,
    };
    if !known {
        return Err(KafkaError::StaleBrokerEpoch);
    }
    if state.leader != Some(request.broker_id) {
        return Err(KafkaError::NotLeaderOrFollower);
    }
    if request.leader_epoch != state.leader_epoch {
        return Err(KafkaError::FencedLeaderEpoch);
    }
    if request.partition_epoch != state.partition_epoch {
        return Err(KafkaError::InvalidUpdateVersion);
    }
    let valid = !request.new_isr.is_empty()
        && request.new_isr.contains(&request.broker_id)
        && request
            .new_isr
            .iter()
            .all(|r| state.replicas.contains(r) && active.live.contains_key(r));
    if !valid {
        return Err(KafkaError::InvalidUpdateVersion);
    }
    if request.new_isr == state.isr {
        return Ok(None);
    }
    Ok(Some(state.clone()))
}

/// What an election may do with a partition.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// Keep and elect from eligible leader replicas (KIP-966).
    pub eligible_leader_replicas: bool,
    /// The topic's `min.insync.replicas`.
    pub min_isr: usize,
    /// The deciding controller's epoch.
    pub controller_epoch: ControllerEpoch,
}

/// The state a leader's AlterPartition moving the ISR to `new_isr` writes: the new ISR, its
/// ELR ([`elr_after_alter`], none without eligible leader replicas), the deciding
/// controller's epoch. Leader and leader epoch stay: the leader changed only its ISR.
///
/// Cases: `src/broker/testdata/controller_election.txt`.
pub fn state_after_alter(
    state: &PartitionState,
    new_isr: &[BrokerId],
    live: &BTreeSet<BrokerId>,
    rules: &Rules,
) -> PartitionState {
    let mut next = state.clone();
    next.elr = if rules.eligible_leader_replicas {
        elr_after_alter(state, new_isr, rules.min_isr, live)
    } else {
        Vec::new()
    };
    next.isr = new_isr.to_vec();
    next.controller_epoch = rules.controller_epoch;
    next
}

/// The ELR after a leader's AlterPartition moves the ISR to `new_isr`: empty if the new ISR
/// holds at least `min_isr`; otherwise the live replicas leaving the ISR join it (the HW
/// froze with every record they hold), and earlier members stay unless they rejoin the
/// ISR. In assignment order.
pub fn elr_after_alter(
    state: &PartitionState,
    new_isr: &[BrokerId],
    min_isr: usize,
    live: &BTreeSet<BrokerId>,
) -> Vec<BrokerId> {
    if new_isr.len() >= min_isr {
        return Vec::new();
    }
    state
        .replicas
        .iter()
        .copied()
        .filter(|r| (state.isr.contains(r) || state.elr.contains(r)) && !new_isr.contains(r))
        .filter(|r| live.contains(r))
        .collect()
}

/// The state a partition must move to given the live brokers, or `None` if it is fine.
///
/// Every broker death counts as an unclean shutdown (the testbed never stops a broker
/// cleanly), so it leaves the ELR at once, rather than when it registers again.
///
/// Cases: `src/broker/testdata/controller_election.txt`.
pub fn next_state(
    state: &PartitionState,
    live: &BTreeSet<BrokerId>,
    rules: &Rules,
) -> Option<PartitionState> {
    let leader_live = state.leader.is_some_and(|l| live.contains(&l));
    let live_isr: Vec<BrokerId> = state
        .isr
        .iter()
        .copied()
        .filter(|r| live.contains(r))
        .collect();
    let live_elr: Vec<BrokerId> = if rules.eligible_leader_replicas {
        state
            .elr
            .iter()
            .copied()
            .filter(|r| live.contains(r))
            .collect()
    } else {
        Vec::new()
    };
    // The ELR that goes with an ISR: none once the ISR reaches min ISR.
    let elr_with = |isr: &[BrokerId]| -> Vec<BrokerId> {
        if isr.len() >= rules.min_isr {
            Vec::new()
        } else {
            live_elr
                .iter()
                .copied()
                .filter(|r| !isr.contains(r))
                .collect()
        }
    };
    let next_epoch = LeaderEpoch(state.leader_epoch.0 + 1);
    let with =
        |leader: Option<BrokerId>, leader_epoch: LeaderEpoch, isr: Vec<BrokerId>| PartitionState {
            leader,
            leader_epoch,
            elr: elr_with(&isr),
            isr,
            controller_epoch: rules.controller_epoch,
            partition_epoch: state.partition_epoch,
            replicas: state.replicas.clone(),
        };
    if leader_live {
        if live_isr.len() < state.isr.len() {
            // A follower in the ISR died: drop it.
            return Some(with(state.leader, next_epoch, live_isr));
        }
        if live_elr.len() < state.elr.len() {
            // An eligible replica died: it is eligible no more (same leader epoch).
            return Some(with(state.leader, state.leader_epoch, live_isr));
        }
        return None;
    }
    // Offline leader: first live replica in assignment order that is in the ISR, then in
    // the ELR.
    if let Some(leader) = state
        .replicas
        .iter()
        .copied()
        .find(|r| live_isr.contains(r))
    {
        if state
            .replicas
            .iter()
            .any(|r| live.contains(r) && !live_isr.contains(r))
        {
            crate::coverage::hit(Mark::ElectionWithOutOfSyncReplicasAlive);
        }
        return Some(with(Some(leader), next_epoch, live_isr));
    }
    if let Some(leader) = state
        .replicas
        .iter()
        .copied()
        .find(|r| live_elr.contains(r))
    {
        return Some(with(Some(leader), next_epoch, vec![leader]));
    }
    if rules.unclean {
        if let Some(leader) = state.replicas.iter().copied().find(|r| live.contains(r)) {
            crate::coverage::hit(Mark::UncleanElection);
            let mut next = with(Some(leader), next_epoch, vec![leader]);
            next.elr.clear();
            return Some(next);
        }
    }
    // No one to lead. Keep the last ISR member in the ISR (it is the one with every
    // committed record, and the last known leader); mark the partition offline once.
    if state.leader.is_none() {
        return (state.elr.len() > live_elr.len())
            .then(|| with(None, state.leader_epoch, state.isr.clone()));
    }
    let last = state
        .isr
        .iter()
        .copied()
        .find(|r| Some(*r) == state.leader)
        .or_else(|| state.isr.last().copied());
    crate::coverage::hit(Mark::NoLeaderEligible);
    Some(with(None, next_epoch, last.into_iter().collect()))
}

#[cfg(test)]
mod tests;
