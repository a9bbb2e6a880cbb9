//! Building a scenario's nodes on the runtime: one function per kind of node.
//!
//! Owns: turning the scenario's tables into node shells — names, addresses, disks, configs
//! — and registering each with madsim, wrapped so a panic becomes a recorded crash. Nodes
//! are created in a fixed order (ensemble servers, writers, ensemble clients), so node ids
//! and everything seeded from them are the same on every run of a seed.

use super::guard::guarded;
use super::progress::Progress;
use super::run_rng;
use super::trace::Recorder;
use crate::broker::controller::{ControllerConfig, TopicSpec};
use crate::broker::coordinator::{CoordinatorConfig, DEFAULT_OFFSETS_PARTITIONS, OFFSETS_TOPIC};
use crate::broker::replica::ReplicaConfig;
use crate::broker::server::BrokerConfig as BrokerCoreConfig;
use crate::broker::BrokerId;
use crate::client::assignor::Assignor;
use crate::client::consumer::{ConsumerConfig as ConsumerCoreConfig, GroupConfig};
use crate::disk::{SimDisk, SimDiskConfig};
use crate::node::broker::BrokerNode;
use crate::node::kafka_client::{broker_ids, ConsumerNode, ProducerNode};
use crate::node::net::{
    node_addr, KIND_BROKER, KIND_CONSUMER, KIND_PRODUCER, KIND_WRITER, KIND_ZK, KIND_ZK_CLIENT,
};
use crate::node::writer::WriterNode;
use crate::node::zk_client::ZkClientNode;
use crate::node::zk_server::ZkServerNode;
use crate::node::{log_config, writers};
use crate::scenario::{AssignmentStrategy, Scenario};
use crate::zk::server::{ServerConfig, ServerLegacy};
use crate::zk::ServerId;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::Rng;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Kafka's `zookeeper.session.timeout.ms` (the ensemble negotiates it into
/// [2, 20] × tickTime).
const BROKER_SESSION_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(crate::scenario::BROKER_ZK_SESSION_TIMEOUT_MS);

/// ZooKeeper's defaults for the ensemble's settings.
const DEFAULT_TICK_MS: u64 = crate::scenario::ZK_DEFAULT_TICK_MS;
const DEFAULT_INIT_LIMIT: u32 = 10;
const DEFAULT_SYNC_LIMIT: u32 = 5;
/// ZooKeeper's default `snapCount`: transactions between snapshots.
const DEFAULT_SNAP_COUNT: u64 = 100_000;

/// What kind of node it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A standalone log writer.
    Writer,
    /// An ensemble server.
    Zk,
    /// An ensemble client.
    ZkClient,
    /// A broker.
    Broker,
    /// A producer.
    Producer,
    /// A consumer.
    Consumer,
}

impl NodeKind {
    /// Servers hold data and are what partition shapes split.
    pub fn is_server(self) -> bool {
        matches!(self, NodeKind::Zk | NodeKind::Broker)
    }
}

/// A node as the world knows it.
pub struct Built {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: NodeKind,
    /// Its madsim id.
    pub id: NodeId,
    /// Its disk, if it has one.
    pub disk: Option<SimDisk>,
}

/// Everything node construction needs from the world.
pub struct Context<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The run directory (node data goes in `<run>/<node>/`).
    pub run_dir: &'a Path,
    /// The run's record.
    pub recorder: &'a Recorder,
    /// The run's probes.
    pub progress: &'a Progress,
    /// The runtime.
    pub handle: &'a Handle,
}

impl Context<'_> {
    fn disk(&self, name: &str) -> SimDisk {
        SimDisk::new(
            self.run_dir.join(name),
            run_rng().gen::<u64>(),
            SimDiskConfig::default(),
        )
        .unwrap_or_else(|e| panic!("cannot create the data directory of {name}: {e}"))
    }

    /// Registers a node whose main future is `make()`, restarted by madsim on restart.
    fn spawn<F, Fut>(&self, name: &str, addr: std::net::SocketAddr, make: F) -> NodeId
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (recorder, progress, node) = (
            self.recorder.clone(),
            self.progress.clone(),
            name.to_string(),
        );
        self.handle
            .create_node()
            .name(name)
            .ip(addr.ip())
            .init(move || guarded(node.clone(), recorder.clone(), progress.clone(), make()))
            .build()
            .id()
    }
}

/// Every node of the scenario, created on the runtime.
pub fn build_all(ctx: &Context<'_>) -> Vec<Built> {
    let mut built = zk_servers(ctx);
    built.extend(brokers(ctx));
    built.extend(kafka_clients(ctx));
    built.extend(log_writers(ctx));
    built.extend(zk_clients(ctx));
    built
}

fn zk_servers(ctx: &Context<'_>) -> Vec<Built> {
    let scenario = ctx.scenario;
    let zk = &scenario.cluster.zookeeper;
    let names = scenario.zk_names();
    let ids: Vec<ServerId> = (1..=names.len() as u64).map(ServerId).collect();
    let addrs: BTreeMap<ServerId, std::net::SocketAddr> = ids
        .iter()
        .map(|&id| (id, node_addr(KIND_ZK, id.0 as u32)))
        .collect();
    let mut built = Vec::new();
    for (name, &id) in names.iter().zip(&ids) {
        let disk = ctx.disk(name);
        let node = Arc::new(ZkServerNode {
            name: name.clone(),
            config: ServerConfig {
                id,
                servers: ids.clone(),
                tick_ms: zk.tick_time_ms.unwrap_or(DEFAULT_TICK_MS),
                init_limit: u64::from(zk.init_limit.unwrap_or(DEFAULT_INIT_LIMIT)),
                sync_limit: u64::from(zk.sync_limit.unwrap_or(DEFAULT_SYNC_LIMIT)),
                snap_count: zk.snap_count.unwrap_or(DEFAULT_SNAP_COUNT),
                incarnation: 0,
                legacy: ServerLegacy {
                    diff_only_sync: scenario.legacy.zk_diff_only_sync,
                    ack_before_sync: scenario.legacy.zk_ack_before_sync,
                },
            },
            addrs: addrs.clone(),
            force_sync: zk.force_sync.unwrap_or(true),
            disk: disk.clone(),
            recorder: ctx.recorder.clone(),
            progress: ctx.progress.clone(),
            incarnations: AtomicU64::new(0),
        });
        let id_ = ctx.spawn(name, addrs[&id], move || node.clone().run());
        ctx.recorder.event(
            name,
            "node-created",
            serde_json::json!({ "kind": "zk", "addr": addrs[&id].to_string() }),
        );
        built.push(Built {
            name: name.clone(),
            kind: NodeKind::Zk,
            id: id_,
            disk: Some(disk),
        });
    }
    built
}

fn log_writers(ctx: &Context<'_>) -> Vec<Built> {
    let mut built = Vec::new();
    for (index, plan) in writers(ctx.scenario).into_iter().enumerate() {
        let disk = ctx.disk(&plan.name);
        let node = Arc::new(WriterNode {
            name: plan.name.clone(),
            rate: plan.rate,
            log: log_config(&plan.config),
            flush_interval_ms: plan.config.log_flush_interval_ms,
            disk: disk.clone(),
            recorder: ctx.recorder.clone(),
            progress: ctx.progress.clone(),
            incarnations: AtomicU64::new(0),
        });
        let addr = node_addr(KIND_WRITER, index as u32 + 1);
        let id = ctx.spawn(&plan.name, addr, move || node.clone().run());
        ctx.recorder.event(
            &plan.name,
            "node-created",
            serde_json::json!({ "kind": "writer" }),
        );
        built.push(Built {
            name: plan.name,
            kind: NodeKind::Writer,
            id,
            disk: Some(disk),
        });
    }
    built
}

fn zk_clients(ctx: &Context<'_>) -> Vec<Built> {
    let scenario = ctx.scenario;
    let servers: Vec<(ServerId, std::net::SocketAddr)> = (1..=scenario.cluster.zookeepers)
        .map(|i| (ServerId(u64::from(i)), node_addr(KIND_ZK, i)))
        .collect();
    let specs = scenario
        .zk_clients
        .iter()
        .flat_map(|spec| std::iter::repeat_n(spec, spec.count as usize));
    let mut built = Vec::new();
    for (index, (name, spec)) in scenario
        .zk_client_names()
        .into_iter()
        .zip(specs)
        .enumerate()
    {
        let node = Arc::new(ZkClientNode {
            name: name.clone(),
            index: index as u32 + 1,
            servers: servers.clone(),
            rate: spec.rate,
            registers: spec.registers,
            session_timeout: spec.session_timeout,
            churn: spec.churn,
            recorder: ctx.recorder.clone(),
            progress: ctx.progress.clone(),
            incarnations: AtomicU64::new(0),
        });
        let addr = node_addr(KIND_ZK_CLIENT, index as u32 + 1);
        let id = ctx.spawn(&name, addr, move || node.clone().run());
        ctx.recorder.event(
            &name,
            "node-created",
            serde_json::json!({ "kind": "zk-client" }),
        );
        built.push(Built {
            name,
            kind: NodeKind::ZkClient,
            id,
            disk: None,
        });
    }
    built
}

fn zk_addrs(scenario: &Scenario) -> Vec<(ServerId, std::net::SocketAddr)> {
    (1..=scenario.cluster.zookeepers)
        .map(|i| (ServerId(u64::from(i)), node_addr(KIND_ZK, i)))
        .collect()
}

fn brokers(ctx: &Context<'_>) -> Vec<Built> {
    let scenario = ctx.scenario;
    let n = scenario.cluster.brokers;
    let config = &scenario.cluster.broker;
    let all: Vec<BrokerId> = broker_ids(n);
    let topics: Vec<TopicSpec> = scenario
        .topics
        .iter()
        .map(|t| TopicSpec {
            name: t.name.clone(),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
            min_insync_replicas: t
                .min_insync_replicas
                .or(config.min_insync_replicas)
                .unwrap_or(1) as usize,
        })
        .collect();
    // Consumer groups need the internal offsets topic (Kafka creates it on the first
    // FindCoordinator; the first controller creates it here with the others).
    let coordinator = CoordinatorConfig {
        offsets_partitions: config
            .offsets_topic_num_partitions
            .unwrap_or(DEFAULT_OFFSETS_PARTITIONS),
        initial_rebalance_delay_ms: config
            .group_initial_rebalance_delay_ms
            .unwrap_or(crate::scenario::GROUP_INITIAL_REBALANCE_DELAY_MS),
        min_session_timeout_ms: crate::scenario::GROUP_MIN_SESSION_TIMEOUT_MS,
        max_session_timeout_ms: crate::scenario::GROUP_MAX_SESSION_TIMEOUT_MS,
        legacy_unfenced_offset_commits: scenario.legacy.unfenced_offset_commits,
    };
    let mut topics = topics;
    if scenario.consumers.iter().any(|c| c.group.is_some()) {
        topics.push(TopicSpec {
            name: OFFSETS_TOPIC.to_string(),
            partitions: coordinator.offsets_partitions,
            replication_factor: config.offsets_topic_replication_factor.unwrap_or(3).min(n),
            min_insync_replicas: config.min_insync_replicas.unwrap_or(1) as usize,
        });
    }
    let topic_min_isr = scenario
        .topics
        .iter()
        .filter_map(|t| t.min_insync_replicas.map(|m| (t.name.clone(), m as usize)))
        .collect();
    let mut built = Vec::new();
    for id in 1..=n {
        let name = format!("broker-{id}");
        let disk = ctx.disk(&name);
        let broker = BrokerId(id);
        let node = Arc::new(BrokerNode {
            name: name.clone(),
            config: BrokerCoreConfig {
                id: broker,
                incarnation: 0,
                replica: ReplicaConfig {
                    replica_lag_time_max_ms: config.replica_lag_time_max_ms.unwrap_or(30_000),
                    min_insync_replicas: config.min_insync_replicas.unwrap_or(1) as usize,
                    legacy_lenient_min_isr: scenario.legacy.lenient_min_isr,
                    legacy_offsets_for_leader_epoch_v0: scenario.legacy.offsets_for_leader_epoch_v0,
                    legacy_truncate_to_hw: scenario.legacy.truncate_to_hw,
                    truncate_on_fetch: false,
                    log: log_config(config),
                },
                topic_min_isr: BTreeMap::clone(&topic_min_isr),
                controller: ControllerConfig {
                    broker_id: broker,
                    brokers: all.clone(),
                    topics: topics.clone(),
                    unclean_leader_election: config.unclean_leader_election_enable.unwrap_or(false),
                    legacy_unfenced_writes: scenario.legacy.unfenced_controller_writes,
                    eligible_leader_replicas: !scenario.legacy.lenient_min_isr,
                },
                coordinator: coordinator.clone(),
            },
            zk_servers: zk_addrs(scenario),
            session_timeout: BROKER_SESSION_TIMEOUT,
            disk: disk.clone(),
            recorder: ctx.recorder.clone(),
            progress: ctx.progress.clone(),
            incarnations: AtomicU64::new(0),
        });
        let addr = node_addr(KIND_BROKER, id);
        let node_id = ctx.spawn(&name, addr, move || node.clone().run());
        ctx.recorder.event(
            &name,
            "node-created",
            serde_json::json!({ "kind": "broker", "addr": addr.to_string() }),
        );
        built.push(Built {
            name,
            kind: NodeKind::Broker,
            id: node_id,
            disk: Some(disk),
        });
    }
    built
}

fn kafka_clients(ctx: &Context<'_>) -> Vec<Built> {
    let scenario = ctx.scenario;
    let bootstrap = broker_ids(scenario.cluster.brokers);
    let mut built = Vec::new();
    let mut index = 0;
    for spec in &scenario.producers {
        for _ in 0..spec.count {
            index += 1;
            let name = format!("producer-{index}");
            let config = spec.client_config(bootstrap.clone());
            let node = Arc::new(ProducerNode {
                name: name.clone(),
                config,
                rate: spec.rate,
                keys: spec.keys,
                recorder: ctx.recorder.clone(),
                progress: ctx.progress.clone(),
                incarnations: AtomicU64::new(0),
            });
            let id = ctx.spawn(&name, node_addr(KIND_PRODUCER, index), move || {
                node.clone().run()
            });
            ctx.recorder.event(
                &name,
                "node-created",
                serde_json::json!({ "kind": "producer" }),
            );
            built.push(Built {
                name,
                kind: NodeKind::Producer,
                id,
                disk: None,
            });
        }
    }
    let mut index = 0;
    for spec in &scenario.consumers {
        for k in 0..spec.count {
            index += 1;
            let name = format!("consumer-{index}");
            let mut config = ConsumerCoreConfig::new(spec.topics.clone(), bootstrap.clone());
            config.group = spec.group.as_ref().map(|group| {
                let c = &spec.config;
                let mut g = GroupConfig::new(group, &name);
                g.assignor = match c.partition_assignment_strategy {
                    Some(AssignmentStrategy::CooperativeSticky) => Assignor::CooperativeSticky,
                    Some(AssignmentStrategy::Range) | None => Assignor::Range,
                };
                g.session_timeout_ms = c.session_timeout_ms.unwrap_or(g.session_timeout_ms);
                g.heartbeat_interval_ms =
                    c.heartbeat_interval_ms.unwrap_or(g.heartbeat_interval_ms);
                g.max_poll_interval_ms = c.max_poll_interval_ms.unwrap_or(g.max_poll_interval_ms);
                g.enable_auto_commit = c.enable_auto_commit.unwrap_or(g.enable_auto_commit);
                g.auto_commit_interval_ms = c
                    .auto_commit_interval_ms
                    .unwrap_or(g.auto_commit_interval_ms);
                g.legacy_commit_before_process = scenario.legacy.commit_before_process;
                g.legacy_cooperative_no_holdback = scenario.legacy.cooperative_no_holdback;
                // One instance id per process: several consumers of one table get `-<k>`.
                g.group_instance_id = c.group_instance_id.as_ref().map(|id| {
                    if spec.count == 1 {
                        id.clone()
                    } else {
                        format!("{id}-{}", k + 1)
                    }
                });
                g
            });
            let node = Arc::new(ConsumerNode {
                name: name.clone(),
                config,
                recorder: ctx.recorder.clone(),
                progress: ctx.progress.clone(),
                incarnations: AtomicU64::new(0),
            });
            let id = ctx.spawn(&name, node_addr(KIND_CONSUMER, index), move || {
                node.clone().run()
            });
            ctx.recorder.event(
                &name,
                "node-created",
                serde_json::json!({ "kind": "consumer" }),
            );
            built.push(Built {
                name,
                kind: NodeKind::Consumer,
                id,
                disk: None,
            });
        }
    }
    built
}
