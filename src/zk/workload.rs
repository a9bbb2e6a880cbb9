//! What an ensemble client does: a Jepsen-style workload of one operation at a time.
//!
//! Owns: choosing the next operation and learning from outcomes. The mix: compare-and-set
//! on a few register znodes (setData with the version last seen; a refresh read after
//! BADVERSION or an unknown outcome), sequential creates, ephemeral creates and deletes of
//! the client's own ephemerals, child listings with watches, and small multis. Register
//! values are unique per client and run (`client << 32 | counter`), so the linearizability
//! checker can tell every write apart.
//!
//! Pure: randomness is an argument; the shell sends the operations and reports outcomes.

use super::client::Outcome;
use super::types::{CreateMode, Op, OpResult, ZkError};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};

/// The parent of every register.
pub const REGISTERS: &str = "/registers";
/// Sequential znodes.
pub const SEQUENTIAL: &str = "/seq";
/// Ephemeral znodes.
pub const EPHEMERAL: &str = "/eph";
/// Multi-op znodes.
pub const MULTI: &str = "/multi";

/// The path of register `k`.
pub fn register_path(k: u32) -> String {
    format!("{REGISTERS}/r-{k}")
}

/// The register index of a path, if it is a register.
pub fn register_of(path: &str) -> Option<u32> {
    path.strip_prefix(REGISTERS)?
        .strip_prefix("/r-")?
        .parse()
        .ok()
}

/// Encodes a register value as znode data.
pub fn encode_value(value: i64) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// Decodes znode data written by [`encode_value`].
pub fn decode_value(data: &[u8]) -> Option<i64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// One client's workload.
#[derive(Clone, Debug)]
pub struct Workload {
    client: u32,
    registers: u32,
    setup: VecDeque<Op>,
    /// The version last seen of each register; `None` = refresh before writing.
    versions: BTreeMap<u32, Option<i32>>,
    counter: u64,
    ephemerals: Vec<String>,
}

impl Workload {
    /// Client `client` (1-based) over `registers` registers.
    pub fn new(client: u32, registers: u32) -> Workload {
        let mut setup: VecDeque<Op> = [REGISTERS, SEQUENTIAL, EPHEMERAL, MULTI]
            .iter()
            .map(|p| Op::Create {
                path: p.to_string(),
                data: Vec::new(),
                mode: CreateMode::Persistent,
            })
            .collect();
        for k in 0..registers {
            setup.push_back(Op::Create {
                path: register_path(k),
                data: encode_value(0),
                mode: CreateMode::Persistent,
            });
        }
        Workload {
            client,
            registers,
            setup,
            versions: (0..registers).map(|k| (k, None)).collect(),
            counter: 0,
            ephemerals: Vec::new(),
        }
    }

    fn next_value(&mut self) -> i64 {
        self.counter += 1;
        (i64::from(self.client) << 32) | self.counter as i64
    }

    fn name(&mut self, parent: &str) -> String {
        self.counter += 1;
        format!("{parent}/c{}-{}", self.client, self.counter)
    }

    /// The next operation.
    pub fn next(&mut self, rng: &mut impl Rng) -> Op {
        if let Some(op) = self.setup.pop_front() {
            return op;
        }
        let k = rng.gen_range(0..self.registers.max(1));
        match rng.gen_range(0..100) {
            0..=44 if self.registers > 0 => match self.versions[&k] {
                Some(version) => {
                    let value = self.next_value();
                    Op::SetData {
                        path: register_path(k),
                        data: encode_value(value),
                        version,
                    }
                }
                None => Op::GetData {
                    path: register_path(k),
                    watch: false,
                },
            },
            45..=59 if self.registers > 0 => Op::GetData {
                path: register_path(k),
                watch: rng.gen_bool(0.3),
            },
            60..=71 => {
                let value = self.next_value();
                Op::Create {
                    path: format!("{SEQUENTIAL}/c{}-", self.client),
                    data: encode_value(value),
                    mode: CreateMode::PersistentSequential,
                }
            }
            72..=83 => Op::Create {
                path: self.name(EPHEMERAL),
                data: Vec::new(),
                mode: CreateMode::Ephemeral,
            },
            84..=91 if !self.ephemerals.is_empty() => {
                let i = rng.gen_range(0..self.ephemerals.len());
                Op::Delete {
                    path: self.ephemerals[i].clone(),
                    version: -1,
                }
            }
            84..=91 => Op::GetChildren {
                path: EPHEMERAL.to_string(),
                watch: true,
            },
            _ => {
                let path = self.name(MULTI);
                Op::Multi {
                    ops: vec![
                        Op::Create {
                            path: path.clone(),
                            data: Vec::new(),
                            mode: CreateMode::Persistent,
                        },
                        Op::SetData {
                            path,
                            data: b"set".to_vec(),
                            version: 0,
                        },
                    ],
                }
            }
        }
    }

    /// Learns from how an operation ended.
    pub fn completed(&mut self, op: &Op, outcome: &Outcome) {
        let result = match outcome {
            Outcome::Done { result, .. } => Some(result),
            Outcome::Unknown { .. } | Outcome::NotSent { .. } => None,
        };
        let setup = match op {
            Op::Create {
                path,
                mode: CreateMode::Persistent,
                ..
            } => {
                [REGISTERS, SEQUENTIAL, EPHEMERAL, MULTI].contains(&path.as_str())
                    || register_of(path).is_some()
            }
            _ => false,
        };
        if setup {
            match result {
                Some(Ok(_)) => {}
                Some(Err(e)) if e.error == ZkError::NodeExists => {}
                _ => self.setup.push_front(op.clone()),
            }
            return;
        }
        match op {
            Op::SetData { path, .. } | Op::GetData { path, .. } => {
                let Some(k) = register_of(path) else { return };
                let seen = match result {
                    Some(Ok(OpResult::DataSet { stat }))
                    | Some(Ok(OpResult::Data { stat, .. })) => Some(stat.version),
                    Some(Err(e)) if e.error == ZkError::NoNode => {
                        self.setup.push_back(Op::Create {
                            path: path.clone(),
                            data: encode_value(0),
                            mode: CreateMode::Persistent,
                        });
                        None
                    }
                    _ => None,
                };
                self.versions.insert(k, seen);
            }
            Op::Create {
                path,
                mode: CreateMode::Ephemeral,
                ..
            } => {
                if matches!(result, Some(Ok(_))) {
                    self.ephemerals.push(path.clone());
                }
            }
            Op::Delete { path, .. }
                if matches!(result, Some(Ok(_)))
                    || matches!(result, Some(Err(e)) if e.error == ZkError::NoNode) =>
            {
                self.ephemerals.retain(|p| p != path);
            }
            _ => {}
        }
    }

    /// The session ended: the ephemerals went with it.
    pub fn session_ended(&mut self) {
        self.ephemerals.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::types::{OpError, Stat, Zxid};
    use rand::SeedableRng;

    #[test]
    fn setup_comes_first_and_is_retried_until_done() {
        let mut w = Workload::new(1, 2);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let first = w.next(&mut rng);
        assert!(matches!(&first, Op::Create { path, .. } if path == REGISTERS));
        w.completed(
            &first,
            &Outcome::Unknown {
                error: ZkError::ConnectionLoss,
            },
        );
        assert_eq!(w.next(&mut rng), first, "retried");
        w.completed(
            &first,
            &Outcome::Done {
                result: Err(OpError::from(ZkError::NodeExists)),
                zxid: Zxid(1),
            },
        );
        assert!(matches!(w.next(&mut rng), Op::Create { path, .. } if path == SEQUENTIAL));
    }

    #[test]
    fn cas_uses_the_version_last_seen_and_refreshes_after_badversion() {
        let mut w = Workload::new(3, 1);
        w.setup.clear();
        let read = Op::GetData {
            path: register_path(0),
            watch: false,
        };
        let stat = Stat {
            version: 4,
            ..Stat::default()
        };
        w.completed(
            &read,
            &Outcome::Done {
                result: Ok(OpResult::Data {
                    data: encode_value(0),
                    stat,
                }),
                zxid: Zxid(2),
            },
        );
        assert_eq!(w.versions[&0], Some(4));
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cas = (0..100)
            .map(|_| w.next(&mut rng))
            .find(|op| matches!(op, Op::SetData { .. }))
            .unwrap();
        assert!(
            matches!(&cas, Op::SetData { version: 4, data, .. } if decode_value(data).unwrap() >> 32 == 3)
        );
        w.completed(
            &cas,
            &Outcome::Done {
                result: Err(OpError::from(ZkError::BadVersion)),
                zxid: Zxid(3),
            },
        );
        assert_eq!(w.versions[&0], None, "refresh before the next write");
    }
}
