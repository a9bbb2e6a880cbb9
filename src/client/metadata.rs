//! A client's view of the cluster: which brokers exist and who leads each partition of the
//! topics it uses, in which leader epoch. Kafka's client `Metadata`.
//!
//! Owns: the partition → (leader, leader epoch) map, the known brokers (the bootstrap list
//! plus the live brokers the last answer named), and when to ask again: at once after a
//! core reports stale leadership (`request_update`), after `retry.backoff.ms` when an
//! answer is incomplete or lost, and every `metadata.max.age.ms` regardless.
//!
//! Invariant (KIP-320): a partition's known leader epoch never goes backwards. A Metadata
//! answer from a broker that has not yet heard of a newer leader (it carries an older
//! epoch) is ignored for that partition, so a client never returns to a deposed leader.
//! An epoch learnt elsewhere counts too (Kafka's `updateLastSeenEpochIfNewer`): a group
//! member handed a committed offset with the leader epoch of its last record ignores
//! leaders of older epochs until it hears of that epoch, even as a new process.

use crate::broker::{BrokerId, PartitionState, Topic, TopicPartition};
use crate::log::LeaderEpoch;
use std::collections::{BTreeMap, BTreeSet};

/// Who leads one partition, as the client last learnt it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLeader {
    /// The leader; `None` while the partition is offline.
    pub leader: Option<BrokerId>,
    /// Its leader epoch.
    pub leader_epoch: LeaderEpoch,
}

/// The cluster as one client sees it.
#[derive(Clone, Debug)]
pub struct Metadata {
    topics: Vec<String>,
    bootstrap: Vec<BrokerId>,
    brokers: BTreeSet<BrokerId>,
    partitions: BTreeMap<TopicPartition, PartitionLeader>,
    /// Epochs learnt elsewhere (committed offsets): answers with older ones are ignored.
    last_seen: BTreeMap<TopicPartition, LeaderEpoch>,
    need_update: bool,
    in_flight: bool,
    /// When the last request was sent (for the retry backoff).
    last_attempt_ms: Option<u64>,
    /// When the last complete answer arrived (for metadata.max.age.ms).
    last_refresh_ms: u64,
}

impl Metadata {
    /// Nothing known yet but the bootstrap brokers; an update is wanted at once.
    pub fn new(topics: Vec<String>, bootstrap: Vec<BrokerId>) -> Metadata {
        assert!(!bootstrap.is_empty(), "a client needs bootstrap brokers");
        Metadata {
            topics,
            bootstrap,
            brokers: BTreeSet::new(),
            partitions: BTreeMap::new(),
            last_seen: BTreeMap::new(),
            need_update: true,
            in_flight: false,
            last_attempt_ms: None,
            last_refresh_ms: 0,
        }
    }

    /// Asks about `topics` too (a group leader assigns the topics of every member); an
    /// update is wanted at once when one is new.
    pub fn add_topics<'t>(&mut self, topics: impl IntoIterator<Item = &'t String>) {
        for topic in topics {
            if !self.topics.contains(topic) {
                self.topics.push(topic.clone());
                self.need_update = true;
            }
        }
    }

    /// The topics asked about.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Brokers to ask: the live brokers last named, then the bootstrap list.
    pub fn candidates(&self) -> Vec<BrokerId> {
        let mut all: Vec<BrokerId> = self.brokers.iter().copied().collect();
        for b in &self.bootstrap {
            if !all.contains(b) {
                all.push(*b);
            }
        }
        all
    }

    /// Leadership changed or is unknown: ask again as soon as possible.
    pub fn request_update(&mut self) {
        self.need_update = true;
    }

    /// Whether an update was requested and not yet answered.
    pub fn update_requested(&self) -> bool {
        self.need_update
    }

    /// Whether a Metadata request should be sent now.
    pub fn should_send(&self, now_ms: u64, retry_backoff_ms: u64, max_age_ms: u64) -> bool {
        if self.in_flight {
            return false;
        }
        let backed_off = self
            .last_attempt_ms
            .is_none_or(|at| now_ms >= at + retry_backoff_ms);
        let stale = now_ms >= self.last_refresh_ms + max_age_ms;
        backed_off && (self.need_update || stale)
    }

    /// A Metadata request was sent.
    pub fn on_sent(&mut self, now_ms: u64) {
        self.in_flight = true;
        self.last_attempt_ms = Some(now_ms);
    }

    /// `epoch` of `tp` was seen elsewhere (a committed offset's leader epoch): a leader of an
    /// older epoch is not the leader any more; until an answer names one of `epoch` or
    /// newer, the partition has no known leader.
    pub fn see_epoch(&mut self, tp: &TopicPartition, epoch: LeaderEpoch) {
        let seen = self.last_seen.entry(*tp).or_insert(epoch);
        *seen = (*seen).max(epoch);
        if let Some(known) = self.partitions.get_mut(tp) {
            if known.leader_epoch < epoch {
                *known = PartitionLeader {
                    leader: None,
                    leader_epoch: epoch,
                };
                self.need_update = true;
            }
        }
    }

    /// The request was lost (connection closed or timed out): ask again after the backoff.
    pub fn on_lost(&mut self) {
        self.in_flight = false;
        self.need_update = true;
    }

    /// An answer. Returns the partitions whose leader or epoch changed.
    pub fn on_response(
        &mut self,
        brokers: &[BrokerId],
        partitions: &[(TopicPartition, PartitionState)],
        now_ms: u64,
    ) -> Vec<TopicPartition> {
        self.in_flight = false;
        if !brokers.is_empty() {
            self.brokers = brokers.iter().copied().collect();
        }
        let mut changed = Vec::new();
        for (tp, state) in partitions {
            if !self.topics.iter().any(|t| *t == tp.topic)
                || self
                    .last_seen
                    .get(tp)
                    .is_some_and(|e| state.leader_epoch < *e)
            {
                continue;
            }
            let new = PartitionLeader {
                leader: state.leader,
                leader_epoch: state.leader_epoch,
            };
            match self.partitions.get(tp) {
                // KIP-320: never go back to an older epoch.
                Some(old) if new.leader_epoch < old.leader_epoch => continue,
                Some(old) if *old == new => continue,
                _ => {}
            }
            self.partitions.insert(*tp, new);
            changed.push(*tp);
        }
        // Complete only when every topic has partitions and every partition a leader;
        // otherwise keep asking (after the backoff), as Kafka does for unknown leaders.
        let complete = self
            .topics
            .iter()
            .all(|t| self.partition_count(t).is_some())
            && self.partitions.values().all(|p| p.leader.is_some())
            && self
                .last_seen
                .keys()
                .all(|tp| self.partitions.contains_key(tp));
        self.need_update = !complete;
        if complete {
            self.last_refresh_ms = now_ms;
        }
        changed
    }

    /// The partition's leader and epoch, if known.
    pub fn leader(&self, tp: &TopicPartition) -> Option<PartitionLeader> {
        self.partitions.get(tp).copied()
    }

    /// The broker leading `tp` and its leader epoch, if the metadata names a leader.
    pub fn led_by(&self, tp: &TopicPartition) -> Option<(BrokerId, LeaderEpoch)> {
        let known = self.partitions.get(tp)?;
        Some((known.leader?, known.leader_epoch))
    }

    /// How many partitions `topic` has, once known.
    pub fn partition_count(&self, topic: impl Into<Topic>) -> Option<u32> {
        let topic = topic.into();
        let n = self
            .partitions
            .keys()
            .filter(|tp| tp.topic == topic)
            .count() as u32;
        (n > 0).then_some(n)
    }

    /// `topic`'s partition count (as [`partition_count`](Self::partition_count)), with the
    /// ones that have a leader put in `available` (cleared first): one walk, no allocation
    /// once `available` has room.
    pub fn count_and_available(&self, topic: Topic, available: &mut Vec<u32>) -> Option<u32> {
        available.clear();
        let mut n = 0;
        for (tp, p) in &self.partitions {
            if tp.topic == topic {
                n += 1;
                if p.leader.is_some() {
                    available.push(tp.partition);
                }
            }
        }
        (n > 0).then_some(n)
    }

    /// The partitions of `topic` that have a leader (Kafka's available partitions).
    pub fn available(&self, topic: impl Into<Topic>) -> Vec<u32> {
        let topic = topic.into();
        self.partitions
            .iter()
            .filter(|(tp, p)| tp.topic == topic && p.leader.is_some())
            .map(|(tp, _)| tp.partition)
            .collect()
    }

    /// Every known partition of the client's topics.
    pub fn partitions(&self) -> impl Iterator<Item = (&TopicPartition, &PartitionLeader)> {
        self.partitions.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ControllerEpoch, PartitionEpoch};

    pub(crate) fn state(leader: Option<u32>, epoch: i32) -> PartitionState {
        PartitionState {
            leader: leader.map(BrokerId),
            leader_epoch: LeaderEpoch(epoch),
            isr: vec![],
            elr: vec![],
            controller_epoch: ControllerEpoch(1),
            partition_epoch: PartitionEpoch(0),
            replicas: vec![],
        }
    }

    #[test]
    fn an_older_leader_epoch_is_ignored_kip_320() {
        let tp = TopicPartition::new("t", 0);
        let mut m = Metadata::new(vec!["t".into()], vec![BrokerId(1)]);
        assert!(m.should_send(0, 100, 300_000));
        m.on_sent(0);
        assert!(!m.should_send(1, 100, 300_000), "one request at a time");
        m.on_response(&[BrokerId(1), BrokerId(2)], &[(tp, state(Some(2), 5))], 2);
        assert!(!m.update_requested());
        assert_eq!(m.leader(&tp).unwrap().leader, Some(BrokerId(2)));
        let changed = m.on_response(&[], &[(tp, state(Some(1), 4))], 3);
        assert!(changed.is_empty());
        assert_eq!(m.leader(&tp).unwrap().leader_epoch, LeaderEpoch(5));
        assert_eq!(m.candidates(), vec![BrokerId(1), BrokerId(2)]);
    }

    #[test]
    fn an_offline_partition_keeps_the_update_wanted_with_backoff() {
        let mut m = Metadata::new(vec!["t".into()], vec![BrokerId(1)]);
        m.on_sent(0);
        m.on_response(
            &[BrokerId(1)],
            &[
                (TopicPartition::new("t", 0), state(Some(1), 0)),
                (TopicPartition::new("t", 1), state(None, 0)),
            ],
            10,
        );
        assert!(m.update_requested());
        assert_eq!(m.available("t"), vec![0]);
        let mut available = vec![7, 7, 7];
        assert_eq!(
            m.count_and_available(Topic::new("t"), &mut available),
            m.partition_count("t")
        );
        assert_eq!(available, m.available("t"));
        assert_eq!(
            m.count_and_available(Topic::new("none"), &mut available),
            None
        );
        assert!(available.is_empty());
        assert_eq!(m.partition_count("t"), Some(2));
        assert!(!m.should_send(50, 100, 300_000));
        assert!(m.should_send(100, 100, 300_000));
    }

    /// Kafka's `updateLastSeenEpochIfNewer`: an epoch learnt from a committed offset makes
    /// a leader of an older epoch unknown, and answers naming one are ignored until one of
    /// that epoch comes. (Found by swarm seed 782: a restarted group member took its
    /// metadata from a deposed leader with a shorter log, was told OFFSET_OUT_OF_RANGE and
    /// reset its committed position to the log start.)
    #[test]
    fn an_epoch_seen_in_a_committed_offset_ignores_older_leaders() {
        let tp = TopicPartition::new("t", 0);
        let mut m = Metadata::new(vec!["t".into()], vec![BrokerId(1)]);
        m.on_response(&[BrokerId(1), BrokerId(2)], &[(tp, state(Some(2), 2))], 0);
        m.see_epoch(&tp, LeaderEpoch(3));
        assert_eq!(m.leader(&tp).unwrap().leader, None);
        assert!(m.update_requested());
        // The deposed leader answers about itself: ignored.
        m.on_response(&[BrokerId(2)], &[(tp, state(Some(2), 2))], 10);
        assert_eq!(m.leader(&tp).unwrap().leader, None);
        assert!(m.update_requested());
        m.on_response(&[BrokerId(1)], &[(tp, state(Some(1), 3))], 20);
        assert_eq!(m.leader(&tp).unwrap().leader, Some(BrokerId(1)));
        assert!(!m.update_requested());
        // An older epoch seen later changes nothing.
        m.see_epoch(&tp, LeaderEpoch(1));
        assert_eq!(m.leader(&tp).unwrap().leader, Some(BrokerId(1)));
    }
}
