//! The checkers' toolkit: how findings become [`Violation`]s, written once for every
//! checker.
//!
//! Owns: the shape of a violation's text — `<subject>: <count> <what>: <examples>; and
//! <n> more` for many findings of one kind ([`Findings`]), `<partition>: <detail>` for a
//! single one ([`violation`]) — and how simulated times are written ([`seconds`]). A
//! violation quotes at most [`EXAMPLES`] examples and counts the rest, so a run with a
//! thousand lost records still reads in one line.
//!
//! Also the checkers' lookup tables: [`FxMap`], a hash map with a fast deterministic hash
//! for the ids and short strings they look up; no checker iterates one, so hash order
//! never reaches a verdict (ordered output comes from `BTreeMap`s and sorted `Vec`s).

use super::Violation;
use crate::broker::TopicPartition;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map for lookups only (never iterated for output): see [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A hash set for lookups only (never iterated for output).
pub type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// The Fx hash (rustc's): a multiply and a rotate per word, then a final mix so the low
/// bits (the bucket) depend on every input bit — values like `producer-1-1-1234` differ
/// only in the high bytes of their last word. Not resistant to chosen keys, which a
/// checker's keys (a run's own names, values and ids) are not.
#[derive(Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // murmur3's fmix64.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Examples quoted per violation; the rest are counted.
pub const EXAMPLES: usize = 5;

/// A simulated time, microseconds since the run started, written in seconds (`1.250s`).
pub fn seconds(at_us: u64) -> String {
    format!("{:.3}s", at_us as f64 / 1e6)
}

/// Collects findings of one kind about one subject (a partition, a node) into a single
/// violation.
pub struct Findings {
    check: &'static str,
    /// Written before the count (`orders/0: 3 records ...`).
    subject: Option<String>,
    partition: Option<String>,
    node: Option<String>,
    what: String,
    count: usize,
    first_at_us: Option<u64>,
    examples: Vec<String>,
}

impl Findings {
    /// Findings of `check` about `partition` (or the whole cluster): `what` they are.
    pub fn new(check: &'static str, partition: Option<&TopicPartition>, what: String) -> Self {
        let partition = partition.map(ToString::to_string);
        Findings {
            check,
            subject: partition.clone(),
            partition,
            node: None,
            what,
            count: 0,
            first_at_us: None,
            examples: Vec::new(),
        }
    }

    /// Findings of `check` about one node: `what` they are.
    pub fn of_node(check: &'static str, node: &str, what: &str) -> Self {
        Findings {
            subject: Some(node.to_string()),
            node: Some(node.to_string()),
            ..Findings::new(check, None, what.to_string())
        }
    }

    /// The node concerned (not written in the text).
    pub fn on_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    /// One finding at `at_us`, described by `example`.
    pub fn add(&mut self, at_us: u64, example: String) {
        self.count += 1;
        self.first_at_us = Some(self.first_at_us.map_or(at_us, |t| t.min(at_us)));
        if self.examples.len() < EXAMPLES {
            self.examples.push(example);
        }
    }

    /// The violation, if anything was found.
    pub fn into_violation(self) -> Option<Violation> {
        if self.count == 0 {
            return None;
        }
        let mut detail = String::new();
        if let Some(subject) = &self.subject {
            detail.push_str(&format!("{subject}: "));
        }
        detail.push_str(&format!(
            "{} {}: {}",
            self.count,
            self.what,
            self.examples.join("; ")
        ));
        let more = self.count - self.examples.len();
        if more > 0 {
            detail.push_str(&format!("; and {more} more"));
        }
        Some(Violation {
            check: self.check.to_string(),
            detail,
            at_ms: self.first_at_us.map(|us| us / 1000),
            partition: self.partition,
            node: self.node,
        })
    }
}

/// A single violation of `check`, about `partition` (written before `detail`) and `node`,
/// first evidenced at `at_us`.
pub fn violation(
    check: &str,
    partition: Option<&TopicPartition>,
    node: Option<&str>,
    at_us: impl Into<Option<u64>>,
    detail: String,
) -> Violation {
    let detail = match partition {
        Some(tp) => format!("{tp}: {detail}"),
        None => detail,
    };
    Violation {
        check: check.to_string(),
        detail,
        at_ms: at_us.into().map(|us| us / 1000),
        partition: partition.map(ToString::to_string),
        node: node.map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_quote_five_examples_and_count_the_rest() {
        let tp = TopicPartition::new("orders", 0);
        let mut found = Findings::new("lost-write", Some(&tp), "records missing".into());
        assert!(Findings::new("lost-write", None, "x".into())
            .into_violation()
            .is_none());
        for n in 0..7u64 {
            found.add(9_000 - n * 1000, format!("v{n}"));
        }
        let v = found.on_node("broker-1").into_violation().unwrap();
        assert_eq!(
            v.detail,
            "orders/0: 7 records missing: v0; v1; v2; v3; v4; and 2 more"
        );
        assert_eq!(
            (v.at_ms, v.partition.as_deref(), v.node.as_deref()),
            (Some(3), Some("orders/0"), Some("broker-1"))
        );
    }

    #[test]
    fn a_nodes_findings_name_the_node_first() {
        let mut found = Findings::of_node("lost-write", "writer-1", "records missing");
        found.add(1_500_000, format!("a at {}", seconds(1_500_000)));
        let v = found.into_violation().unwrap();
        assert_eq!(v.detail, "writer-1: 1 records missing: a at 1.500s");
        assert_eq!(v.node.as_deref(), Some("writer-1"));
        assert_eq!(v.partition, None);
    }

    #[test]
    fn a_single_violation_names_its_partition_first() {
        let tp = TopicPartition::new("orders", 1);
        let v = violation(
            "hw-monotonic",
            Some(&tp),
            Some("broker-2"),
            2_000,
            "x".into(),
        );
        assert_eq!((v.detail.as_str(), v.at_ms), ("orders/1: x", Some(2)));
        let v = violation("zk-replica-agreement", None, None, None, "y".into());
        assert_eq!((v.detail.as_str(), v.at_ms), ("y", None));
    }
}
