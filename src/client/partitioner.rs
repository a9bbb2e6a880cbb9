//! Where a producer's record goes: Kafka's key hash and its two keyless partitioners.
//!
//! Owns: [`murmur2`] (Kafka's variant of MurmurHash2, bit for bit: seed `0x9747b28c`,
//! `m = 0x5bd1e995`, `r = 24`, little-endian 4-byte blocks), [`to_positive`], and
//! [`Partitioner`], which picks a partition for one record:
//! - with a key: `to_positive(murmur2(key)) % partitions`, over *all* partitions (available
//!   or not), so one key always lands in one partition while the partition count stays;
//! - without a key, `round-robin`: a counter over the *available* partitions (those with a
//!   leader), or over all of them when none is available (Kafka's `RoundRobinPartitioner`);
//! - without a key, `uniform-sticky` (KIP-794, Kafka's built-in partitioner since 3.3): stay
//!   on one partition until `batch.size` bytes went to it, then pick the next one at random
//!   among the available partitions (all if none is available), which may be the same one.
//!
//! Simplifications vs Kafka: the sticky partitioner switches as soon as `batch.size` bytes
//! went to the current partition (Kafka also waits until the partition's batches are full,
//! up to twice `batch.size`), and does not weigh partitions by queue length
//! (`partitioner.adaptive.partitioning.enable`) or avoid slow brokers
//! (`partitioner.availability.timeout.ms`, off by default in Kafka too).
//!
//! Pure: randomness comes in as an `&mut impl Rng` argument.

use rand::Rng;

/// The keyless partitioner (`partitioner.class`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PartitionerKind {
    /// KIP-794's uniform sticky partitioner: Kafka's default.
    #[default]
    UniformSticky,
    /// One record per partition in turn, over the available partitions.
    RoundRobin,
}

/// Kafka's murmur2 (`Utils.murmur2`): 32-bit MurmurHash2 with Kafka's seed, as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's `int` arithmetic wraps; `(byte & 0xff)` makes every byte unsigned, so u32
    // wrapping arithmetic on `u8 as u32` is the same computation.
    let mut h = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        // Java's switch falls through from case 3 to case 1.
        if tail.len() == 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `MIN`).
pub fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}

/// The partition of a keyed record: `to_positive(murmur2(key)) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partitions
}

/// Chooses partitions for one producer's records of one topic.
#[derive(Clone, Debug)]
pub struct Partitioner {
    kind: PartitionerKind,
    batch_size: usize,
    /// Round robin: the next counter value (Kafka's per-topic `AtomicInteger`).
    counter: u32,
    /// Uniform sticky: the current partition and the bytes that went to it so far.
    sticky: Option<(u32, usize)>,
}

impl Partitioner {
    /// A partitioner of this kind; `batch_size` is the producer's `batch.size`.
    pub fn new(kind: PartitionerKind, batch_size: usize) -> Partitioner {
        Partitioner {
            kind,
            batch_size,
            counter: 0,
            sticky: None,
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> PartitionerKind {
        self.kind
    }

    /// The partition for a record of `bytes` bytes (its size in the batch) with `key`,
    /// given the topic's partition count and the partitions that have a leader now.
    /// Uniform sticky counts the bytes toward the current partition.
    pub fn partition(
        &mut self,
        key: Option<&[u8]>,
        bytes: usize,
        partitions: u32,
        available: &[u32],
        rng: &mut impl Rng,
    ) -> u32 {
        assert!(partitions > 0, "a topic has at least one partition");
        if let Some(key) = key {
            return partition_for_key(key, partitions);
        }
        match self.kind {
            PartitionerKind::RoundRobin => {
                let next = self.counter;
                self.counter = self.counter.wrapping_add(1);
                let next = to_positive(next as i32);
                if available.is_empty() {
                    next % partitions
                } else {
                    available[(next % available.len() as u32) as usize]
                }
            }
            PartitionerKind::UniformSticky => {
                let (partition, produced) = match self.sticky {
                    Some((p, produced)) if p < partitions => (p, produced),
                    _ => (Self::pick(partitions, available, rng), 0),
                };
                let produced = produced + bytes;
                self.sticky = if produced >= self.batch_size {
                    // KIP-794: batch.size bytes went here; the next record starts a new stint.
                    Some((Self::pick(partitions, available, rng), 0))
                } else {
                    Some((partition, produced))
                };
                partition
            }
        }
    }

    /// The sticky partition the next keyless record goes to, if one is chosen.
    pub fn sticky_partition(&self) -> Option<u32> {
        self.sticky.map(|(p, _)| p)
    }

    fn pick(partitions: u32, available: &[u32], rng: &mut impl Rng) -> u32 {
        if available.is_empty() {
            rng.gen_range(0..partitions)
        } else {
            available[rng.gen_range(0..available.len())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    /// apache/kafka `UtilsTest.testMurmur2`: Kafka's own vectors.
    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit_like_java() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(
            to_positive(-973932308),
            (-973932308i32 & 0x7fff_ffff) as u32
        );
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn bytes_above_0x7f_hash_as_unsigned_like_javas_and_0xff() {
        // All four tail lengths and a full block with high bytes: the hash is a function
        // of the bytes, and a high byte differs from its sign-extended reading.
        let high = murmur2(&[0xff, 0x80, 0x81]);
        assert_ne!(high, murmur2(&[0x7f, 0x00, 0x01]));
        assert_eq!(high, murmur2(&[0xff, 0x80, 0x81]));
        for len in 0..9 {
            let data: Vec<u8> = (0..len).map(|i| 0xf0 + i as u8).collect();
            let _ = murmur2(&data);
        }
    }

    #[test]
    fn a_key_always_maps_to_one_partition_over_all_partitions() {
        let mut p = Partitioner::new(PartitionerKind::UniformSticky, 16384);
        let mut rng = StdRng::seed_from_u64(1);
        let expected = to_positive(murmur2(b"foobar")) % 7;
        for _ in 0..10 {
            // Even when that partition has no leader (not in `available`).
            assert_eq!(
                p.partition(Some(b"foobar"), 100, 7, &[0], &mut rng),
                expected
            );
        }
        assert_eq!(partition_for_key(b"21", 3), to_positive(-973932308) % 3);
    }

    #[test]
    fn round_robin_cycles_over_available_partitions_only() {
        let mut p = Partitioner::new(PartitionerKind::RoundRobin, 16384);
        let mut rng = StdRng::seed_from_u64(1);
        let got: Vec<u32> = (0..6)
            .map(|_| p.partition(None, 10, 4, &[0, 2, 3], &mut rng))
            .collect();
        assert_eq!(got, vec![0, 2, 3, 0, 2, 3]);
        // None available: all partitions in turn.
        let got: Vec<u32> = (0..4)
            .map(|_| p.partition(None, 10, 4, &[], &mut rng))
            .collect();
        assert_eq!(got, vec![2, 3, 0, 1], "the counter carries on");
    }

    /// KIP-794: a keyless record goes to the sticky partition until batch.size bytes went
    /// there; then a new partition is drawn among the available ones.
    #[test]
    fn uniform_sticky_switches_after_batch_size_bytes() {
        let batch_size = 1000;
        let mut p = Partitioner::new(PartitionerKind::UniformSticky, batch_size);
        let mut rng = StdRng::seed_from_u64(7);
        let available = [1, 2, 4];
        let mut per_partition = BTreeMap::new();
        let mut switches = 0;
        for i in 0..3000 {
            let before = p.sticky_partition();
            let partition = p.partition(None, 100, 5, &available, &mut rng);
            assert!(available.contains(&partition), "only available partitions");
            if let Some(before) = before {
                assert_eq!(partition, before, "goes where the sticky partition was");
            }
            *per_partition.entry(partition).or_insert(0usize) += 100;
            // 10 records of 100 bytes fill batch.size: the stint ends exactly there.
            let produced = p.sticky.unwrap().1;
            assert_eq!(produced, ((i + 1) % 10) * 100, "record {i}");
            if produced == 0 && p.sticky_partition() != Some(partition) {
                switches += 1;
            }
        }
        assert!(switches > 150, "a new draw usually moves: {switches}");
        assert_eq!(
            per_partition.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 4],
            "spreads over every available partition"
        );
        for bytes in per_partition.values() {
            assert!(*bytes > 50_000, "roughly uniform: {per_partition:?}");
        }
    }

    #[test]
    fn uniform_sticky_stays_put_below_batch_size() {
        let mut p = Partitioner::new(PartitionerKind::UniformSticky, 16384);
        let mut rng = StdRng::seed_from_u64(3);
        let first = p.partition(None, 1000, 3, &[], &mut rng);
        for _ in 0..15 {
            assert_eq!(p.partition(None, 1000, 3, &[], &mut rng), first);
        }
        // The 17th record crosses 16384 bytes (17 000): it still goes to `first`, and the
        // next stint starts afterwards.
        assert_eq!(p.partition(None, 1000, 3, &[], &mut rng), first);
        assert_eq!(p.sticky.unwrap().1, 0, "a new stint starts");
    }
}
