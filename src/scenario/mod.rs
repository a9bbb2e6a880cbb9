//! STUB (replaced by the scenario branch at merge).
#![allow(missing_docs, dead_code)]
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}
impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}
impl std::error::Error for ScenarioError {}
pub fn load(_path: &Path) -> Result<Scenario, ScenarioError> {
    todo!()
}
pub fn parse(_file: &Path, _bytes: &[u8]) -> Result<Scenario, ScenarioError> {
    todo!()
}
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub about: String,
    pub duration: Duration,
    pub heal: Duration,
    pub seeds: SeedRange,
    pub cluster: Cluster,
    pub writers: Vec<WriterSpec>,
    pub faults: Vec<Fault>,
    pub expect: Option<Expect>,
    pub legacy: Legacy,
    pub source: String,
    pub path: PathBuf,
}
impl Scenario {
    pub fn writer_names(&self) -> Vec<String> {
        todo!()
    }
    pub fn node_names(&self) -> Vec<String> {
        todo!()
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    pub first: u64,
    pub last: u64,
}
impl SeedRange {
    pub fn parse(_text: &str) -> Result<SeedRange, String> {
        todo!()
    }
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
    pub fn iter(&self) -> impl Iterator<Item = u64> {
        self.first..=self.last
    }
}
pub fn parse_duration(_text: &str) -> Result<Duration, String> {
    todo!()
}
pub fn parse_seed(_text: &str) -> Result<u64, String> {
    todo!()
}
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub zookeepers: u32,
    pub brokers: u32,
    pub broker: BrokerConfig,
}
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrokerConfig {
    pub log_flush_interval_messages: Option<u64>,
    pub log_flush_interval_ms: Option<u64>,
    pub log_segment_bytes: Option<u64>,
    pub log_index_interval_bytes: Option<u64>,
    pub log_retention_bytes: Option<i64>,
    pub log_retention_ms: Option<i64>,
}
impl BrokerConfig {
    pub fn merged_over(&self, _base: &BrokerConfig) -> BrokerConfig {
        todo!()
    }
}
#[derive(Clone, Debug)]
pub struct WriterSpec {
    pub count: u32,
    pub rate: u32,
    pub config: BrokerConfig,
}
#[derive(Clone, Debug)]
pub struct Fault {
    pub at: Duration,
    pub action: FaultAction,
    pub target: Option<Target>,
    pub sides: Option<Vec<Vec<String>>>,
    pub rate: Option<f64>,
    pub line: usize,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    Kill,
    Restart,
    PowerLoss,
    Pause,
    Resume,
    Partition,
    Heal,
    Clog,
    Unclog,
    Loss,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Node(String),
    Leader { topic: String, partition: u32 },
    Controller,
    ZkLeader,
    Coordinator(String),
    RandomBroker,
    RandomZk,
    RandomWriter,
    Killed,
    AllBrokers,
    AllWriters,
    Halves,
    Bridge,
    Isolate(Box<Target>),
}
#[derive(Clone, Debug)]
pub struct Expect {
    pub fails: String,
    pub tolerate: Vec<String>,
}
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Legacy {}
