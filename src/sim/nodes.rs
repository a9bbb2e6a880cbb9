//! Building a scenario's nodes on the runtime: one function per kind of node.
//!
//! Owns: turning the scenario's tables into node shells — names, addresses, disks, configs
//! — and registering each with madsim, wrapped so a panic becomes a recorded crash. Nodes
//! are created in a fixed order (ensemble servers, writers, ensemble clients), so node ids
//! and everything seeded from them are the same on every run of a seed.

use super::guard::guarded;
use crate::broker::BrokerId;
use crate::disk::{Backing, SimDisk, SimDiskConfig};
use crate::history::WorldEvent;
use crate::node::broker::BrokerNode;
use crate::node::kafka_client::{broker_ids, ConsumerNode, ProducerNode};
use crate::node::net::{
    node_addr, KIND_BROKER, KIND_CONSUMER, KIND_PROCESSOR, KIND_PRODUCER, KIND_WRITER, KIND_ZK,
    KIND_ZK_CLIENT,
};
use crate::node::processor::ProcessorNode;
use crate::node::progress::Progress;
use crate::node::recorder::Recorder;
use crate::node::run_rng;
use crate::node::writer::WriterNode;
use crate::node::zk_client::ZkClientNode;
use crate::node::zk_server::ZkServerNode;
use crate::scenario::plan::{
    broker_config, consumer_config, log_config, processor_config, producer_config, writers,
    zk_force_sync, zk_server_config,
};
use crate::scenario::Scenario;
use crate::zk::ServerId;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use rand::Rng;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Kafka's `zookeeper.session.timeout.ms` (the ensemble negotiates it into
/// [2, 20] × tickTime).
const BROKER_SESSION_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(crate::broker::server::ZK_SESSION_TIMEOUT_MS);

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
    /// A consume-transform-produce processor (a group member and a transactional
    /// producer).
    Processor,
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

/// The nodes' disks of one run: where they keep their bytes, and each disk once made, by
/// node, in creation order. Cloning shares them: the run's caller takes a memory-backed
/// run's files once the runtime is gone, and an interrupt can write them out mid-run.
#[derive(Clone, Default)]
pub struct RunDisks {
    backing: Backing,
    made: Arc<Mutex<Vec<(String, SimDisk)>>>,
}

impl RunDisks {
    /// No disk yet; the disks will be of `backing`.
    pub fn new(backing: Backing) -> Self {
        RunDisks {
            backing,
            made: Arc::default(),
        }
    }

    /// Where the disks keep their bytes.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    fn made(&self) -> std::sync::MutexGuard<'_, Vec<(String, SimDisk)>> {
        self.made
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every disk made so far, by node; none is left registered.
    pub(super) fn take(&self) -> Vec<(String, SimDisk)> {
        std::mem::take(&mut *self.made())
    }

    /// Writes each memory-backed disk's files as they are now to `<dir>/<node>/` (file-backed
    /// disks are there already): what an interrupted run leaves of its nodes.
    pub fn write_now(&self, dir: &Path) -> std::io::Result<()> {
        let made: Vec<(String, SimDisk)> = self.made().clone();
        for (name, disk) in made {
            if disk.backing() == Backing::Memory {
                disk.image()?.write_to(&dir.join(name))?;
            }
        }
        Ok(())
    }
}

/// Everything node construction needs from the world.
pub struct Context<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The run directory (file-backed node data goes in `<run>/<node>/`).
    pub run_dir: &'a Path,
    /// The run's disks: their backing, and where each disk made is registered.
    pub disks: &'a RunDisks,
    /// The run's record.
    pub recorder: &'a Recorder,
    /// The run's probes.
    pub progress: &'a Progress,
    /// The runtime.
    pub handle: &'a Handle,
}

impl Context<'_> {
    fn disk(&self, name: &str) -> SimDisk {
        let disk = SimDisk::with_backing(
            self.disks.backing,
            self.run_dir.join(name),
            run_rng().gen::<u64>(),
            SimDiskConfig::default(),
        )
        .unwrap_or_else(|e| panic!("cannot create the data directory of {name}: {e}"));
        self.disks.made().push((name.to_string(), disk.clone()));
        disk
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
        crate::node::counters::count(|c| c.nodes += 1);
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
            config: zk_server_config(scenario, id),
            addrs: addrs.clone(),
            force_sync: zk_force_sync(scenario),
            disk: disk.clone(),
            recorder: ctx.recorder.clone(),
            progress: ctx.progress.clone(),
            incarnations: AtomicU64::new(0),
        });
        let id_ = ctx.spawn(name, addrs[&id], move || node.clone().run());
        ctx.recorder.event(
            name,
            WorldEvent::NodeCreated {
                kind: "zk".into(),
                addr: Some(addrs[&id].to_string()),
            },
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
            WorldEvent::NodeCreated {
                kind: "writer".into(),
                addr: None,
            },
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
            WorldEvent::NodeCreated {
                kind: "zk-client".into(),
                addr: None,
            },
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
    let mut built = Vec::new();
    for id in 1..=n {
        let name = format!("broker-{id}");
        let disk = ctx.disk(&name);
        let node = Arc::new(BrokerNode {
            name: name.clone(),
            config: broker_config(scenario, BrokerId(id)),
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
            WorldEvent::NodeCreated {
                kind: "broker".into(),
                addr: Some(addr.to_string()),
            },
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
        for k in 0..spec.count {
            index += 1;
            let name = format!("producer-{index}");
            let config = producer_config(spec, k, bootstrap.clone());
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
                WorldEvent::NodeCreated {
                    kind: "producer".into(),
                    addr: None,
                },
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
            let config = consumer_config(scenario, spec, k, &name, bootstrap.clone());
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
                WorldEvent::NodeCreated {
                    kind: "consumer".into(),
                    addr: None,
                },
            );
            built.push(Built {
                name,
                kind: NodeKind::Consumer,
                id,
                disk: None,
            });
        }
    }
    let mut index = 0;
    for spec in &scenario.processors {
        for k in 0..spec.count {
            index += 1;
            let name = format!("processor-{index}");
            let (consumer, producer) =
                processor_config(scenario, spec, k, &name, bootstrap.clone());
            let node = Arc::new(ProcessorNode {
                name: name.clone(),
                consumer,
                producer,
                commit_interval_ms: spec.commit_interval_ms,
                abort_percent: spec.producer.txn_abort_percent,
                recorder: ctx.recorder.clone(),
                progress: ctx.progress.clone(),
                incarnations: AtomicU64::new(0),
            });
            let id = ctx.spawn(&name, node_addr(KIND_PROCESSOR, index), move || {
                node.clone().run()
            });
            ctx.recorder.event(
                &name,
                WorldEvent::NodeCreated {
                    kind: "processor".into(),
                    addr: None,
                },
            );
            built.push(Built {
                name,
                kind: NodeKind::Processor,
                id,
                disk: None,
            });
        }
    }
    built
}
