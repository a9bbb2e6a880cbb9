//! A Kafka consumer in assign mode (no group): it reads every partition of its topics.
//!
//! Owns: the assignment (every partition of the topics, learnt from metadata; new
//! partitions join it as they appear), the position of each partition (the next offset to
//! return), and the fetch loop: one Fetch request at a time per partition leader, carrying
//! each partition's position and the leader epoch the consumer believes current (KIP-320),
//! so a deposed or lagging leader answers `FENCED_LEADER_EPOCH` / `UNKNOWN_LEADER_EPOCH`
//! instead of serving stale data.
//!
//! What it reports for the history: [`ConsumerAction::Assign`] with every partition and its
//! position when the assignment starts or changes and whenever a position is reset (a seek,
//! so checkers do not mistake the jump for `nonmonotonic-poll` or `poll-skip`), and
//! [`ConsumerAction::Poll`] with the records of one partition a fetch returned at or after
//! the position, in offset order; the position then moves past the last one.
//!
//! Errors: `NOT_LEADER_OR_FOLLOWER`, `FENCED_LEADER_EPOCH`, `UNKNOWN_LEADER_EPOCH`,
//! `UNKNOWN_TOPIC_OR_PARTITION`, `LEADER_NOT_AVAILABLE`, `KAFKA_STORAGE_ERROR`: refresh
//! metadata and fetch the partition again after `retry.backoff.ms`.
//! `OFFSET_OUT_OF_RANGE`: the position is reset by `auto.offset.reset`.
//! A lost connection or a request timeout loses the fetch; it is simply sent again.
//!
//! `auto.offset.reset` (the testbed's default `earliest`, so every record is read; Kafka's
//! is `latest`): a partition without a position leaves the assignment until ListOffsets
//! from its leader names one (the log start, or where the consumer's reads end: the HW, or
//! the LSO for `read_committed`); the position found is recorded as a seek. With `earliest`
//! a new partition starts at offset 0 without asking (where every log starts until its
//! start moves; one that moved answers `OFFSET_OUT_OF_RANGE`), and an out-of-range
//! position goes straight to the log start the last fetch reported, if one did.
//!
//! Simplifications vs Kafka: no position validation with OffsetsForLeaderEpoch after a
//! leader change (a truncated position is caught by OFFSET_OUT_OF_RANGE instead); no fetch
//! sessions, no `max.poll.records` (a poll returns what one fetch brought).
//!
//! Transactions: control batches (COMMIT/ABORT markers) are skipped, the position moving
//! past them. With `isolation.level = read_committed` the broker reads below its last
//! stable offset and lists the aborted transactions in the range; the consumer skips a
//! transactional batch of a producer listed as aborted from the transaction's first offset
//! until that producer's ABORT marker (Kafka's `abortedProducerIds`).

use super::metadata::Metadata;
use super::network::{ConnectionId, Lost, NetAction, NetConfig, Network};
use crate::broker::proto::{
    FetchData, FetchPartition, Generation, IsolationLevel, ListOffsetsPartition, ListedOffset,
    OffsetSpec, RequestBody, Response, ResponseBody,
};
use crate::broker::{BrokerId, KafkaError, TopicPartition};
use crate::history::CompactString;
use crate::log::{decode_batches, ControlRecordType, LeaderEpoch, Offset, ProducerId};
use std::collections::{BTreeMap, BTreeSet};

/// A consumer's configuration, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The topics whose partitions it reads (all of them).
    pub topics: Vec<String>,
    /// `bootstrap.servers`.
    pub bootstrap: Vec<BrokerId>,
    /// `fetch.max.wait.ms` (default 500): how long a broker may hold an empty fetch.
    pub fetch_max_wait_ms: u64,
    /// `max.partition.fetch.bytes` (default 1 MiB).
    pub max_partition_fetch_bytes: u32,
    /// `request.timeout.ms` (default 30000).
    pub request_timeout_ms: u64,
    /// `retry.backoff.ms` (default 100).
    pub retry_backoff_ms: u64,
    /// `metadata.max.age.ms` (default 300000).
    pub metadata_max_age_ms: u64,
    /// `reconnect.backoff.ms` (default 50).
    pub reconnect_backoff_ms: u64,
    /// `socket.connection.setup.timeout.ms` (default 10000).
    pub connection_setup_timeout_ms: u64,
    /// `group.id` and the group settings: subscribe mode. `None`: assign mode.
    pub group: Option<GroupConfig>,
    /// `isolation.level` (default `read_uncommitted`).
    pub isolation_level: IsolationLevel,
    /// `auto.offset.reset`: where a partition without a position (nothing committed, or
    /// its position out of range) starts. The testbed's default is `earliest`, so every
    /// record is read (Kafka's is `latest`).
    pub auto_offset_reset: OffsetSpec,
}

impl ConsumerConfig {
    /// Kafka's defaults for reading `topics`, bootstrapping from `bootstrap`.
    pub fn new(topics: Vec<String>, bootstrap: Vec<BrokerId>) -> ConsumerConfig {
        ConsumerConfig {
            topics,
            bootstrap,
            fetch_max_wait_ms: 500,
            max_partition_fetch_bytes: 1 << 20,
            request_timeout_ms: 30_000,
            retry_backoff_ms: 100,
            metadata_max_age_ms: 300_000,
            reconnect_backoff_ms: 50,
            connection_setup_timeout_ms: 10_000,
            group: None,
            isolation_level: IsolationLevel::ReadUncommitted,
            auto_offset_reset: OffsetSpec::Earliest,
        }
    }

    fn net(&self) -> NetConfig {
        NetConfig {
            request_timeout_ms: self.request_timeout_ms,
            connection_setup_timeout_ms: self.connection_setup_timeout_ms,
            reconnect_backoff_ms: self.reconnect_backoff_ms,
            ..NetConfig::default()
        }
    }
}

/// What the consumer asks its shell to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerAction {
    /// Connection work.
    Net(NetAction),
    /// Record `Assign`: from here on each partition is read from this position.
    Assign {
        /// Every assigned partition with its position.
        partitions: Vec<(TopicPartition, u64)>,
    },
    /// Record `Poll`: these records of one partition were returned, in offset order.
    Poll {
        /// The partition.
        partition: TopicPartition,
        /// `(offset, value)` of each record (values decoded as UTF-8, lossily).
        records: Vec<(u64, CompactString)>,
    },
    /// Record a group assignment: from here on the member owns these partitions (and no
    /// others) in `generation`, reading each from its position.
    GroupAssign {
        /// The member and its generation.
        member: GroupMember,
        /// `(partition, position)` of each owned partition whose position is known.
        partitions: Vec<(TopicPartition, u64)>,
        /// Owned partitions whose committed offset is still being fetched.
        awaiting: Vec<TopicPartition>,
    },
    /// Record how an offset commit ended.
    Commit {
        /// The committing member and the generation it committed in.
        member: GroupMember,
        /// `(partition, offset)`: the next offset to read.
        offsets: Vec<(TopicPartition, u64)>,
        /// When the commit was sent.
        sent_ms: u64,
        /// `None`: the coordinator stored it.
        error: Option<KafkaError>,
    },
    /// A fetch answer just now left an assign-mode reader with nothing more to read (see
    /// [`ConsumerCore::caught_up`]): a sign of progress, though no record came.
    CaughtUp,
}

/// Who a group action is from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    /// `group.id`.
    pub group: String,
    /// The member id.
    pub member_id: String,
    /// The generation.
    pub generation: Generation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum InFlight {
    Metadata,
    /// A group request (`group.rs`).
    Group(group::GroupCall),
    /// The partitions asked for and the position each was fetched from.
    Fetch {
        partitions: Vec<(TopicPartition, Offset)>,
    },
    /// The partitions whose offset was asked for.
    ListOffsets {
        partitions: Vec<TopicPartition>,
    },
}

/// A partition without a position, finding one with ListOffsets (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Resetting {
    /// The offset it resets to.
    spec: OffsetSpec,
    /// A ListOffsets for it is in flight.
    asking: bool,
    retry_at_ms: u64,
}

impl Resetting {
    fn to(spec: OffsetSpec) -> Resetting {
        Resetting {
            spec,
            asking: false,
            retry_at_ms: 0,
        }
    }
}

/// One assigned partition.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PartitionFetch {
    position: Offset,
    /// The leader epoch of the record before the position (its batch's), when known: what
    /// a commit of the position carries (KIP-320).
    position_epoch: Option<LeaderEpoch>,
    /// The log start offset the last successful fetch reported.
    log_start_offset: Option<Offset>,
    fetching: bool,
    retry_at_ms: u64,
}

/// The consumer: feed it connection events, responses and ticks; take its actions.
pub struct ConsumerCore {
    config: ConsumerConfig,
    net: Network<InFlight>,
    metadata: Metadata,
    assignment: BTreeMap<TopicPartition, PartitionFetch>,
    /// Assigned (or owned) partitions without a position yet: not in `assignment` until
    /// ListOffsets names one.
    resetting: BTreeMap<TopicPartition, Resetting>,
    /// Brokers with a fetch in flight (Kafka sends one at a time per node).
    fetching_from: BTreeSet<BrokerId>,
    /// Subscribe mode: the group membership.
    group: Option<group::Membership>,
    /// Partitions whose last fetch answer left the position at the leader's high watermark:
    /// nothing more to read there for now.
    at_high_watermark: BTreeSet<TopicPartition>,
    /// The application paused fetching (Kafka's `pause()` of every partition).
    paused: bool,
    out: Vec<ConsumerAction>,
}

impl ConsumerCore {
    /// A consumer that starts by asking for metadata.
    pub fn new(config: ConsumerConfig) -> ConsumerCore {
        let metadata = Metadata::new(config.topics.clone(), config.bootstrap.clone());
        ConsumerCore {
            net: Network::new(config.net()),
            metadata,
            assignment: BTreeMap::new(),
            resetting: BTreeMap::new(),
            fetching_from: BTreeSet::new(),
            group: config.group.clone().map(group::Membership::new),
            at_high_watermark: BTreeSet::new(),
            paused: false,
            out: Vec::new(),
            config,
        }
    }

    /// What to do, in order.
    pub fn take_actions(&mut self) -> Vec<ConsumerAction> {
        self.flush_net();
        std::mem::take(&mut self.out)
    }

    /// An assign-mode reader has read everything there is: it knows every partition of its
    /// topics, and the last fetch answer of each left its position at the high watermark.
    /// (A reader of topics nobody writes to is caught up without ever returning a record.)
    pub fn caught_up(&self) -> bool {
        self.group.is_none()
            && !self.metadata.update_requested()
            && !self.assignment.is_empty()
            && self.resetting.is_empty()
            && self
                .assignment
                .keys()
                .all(|tp| self.at_high_watermark.contains(tp))
    }

    /// Pauses (or resumes) fetching: a paused consumer sends no Fetch, so it returns no
    /// records until resumed (a processor with records waiting for a transaction).
    pub fn set_paused(&mut self, paused: bool, now_ms: u64) {
        self.paused = paused;
        if !paused {
            self.drive(now_ms);
        }
    }

    /// Every assigned partition's position.
    pub fn positions(&self) -> BTreeMap<TopicPartition, Offset> {
        self.assignment
            .iter()
            .map(|(tp, p)| (*tp, p.position))
            .collect()
    }

    /// Time passes: backoffs, timeouts, metadata age.
    pub fn tick(&mut self, now_ms: u64) {
        let lost = self.net.tick(now_ms);
        self.on_lost(lost, now_ms);
        if self.group.is_some() {
            self.on_poll(now_ms);
        }
        self.drive(now_ms);
    }

    /// The connection asked for is open.
    pub fn on_connected(&mut self, connection: ConnectionId, now_ms: u64) {
        self.net.on_connected(connection, now_ms);
        self.drive(now_ms);
    }

    /// The connection could not be opened, or broke: its requests are lost.
    pub fn on_closed(&mut self, connection: ConnectionId, now_ms: u64) {
        let lost = self.net.on_closed(connection, now_ms);
        self.metadata.request_update();
        self.on_lost(lost, now_ms);
        self.drive(now_ms);
    }

    /// A broker answered.
    pub fn on_response(&mut self, connection: ConnectionId, response: Response, now_ms: u64) {
        let Some((broker, context, body)) = self.net.on_response(connection, response) else {
            return;
        };
        match (context, body) {
            (
                InFlight::Metadata,
                ResponseBody::Metadata {
                    brokers,
                    partitions,
                    ..
                },
            ) => {
                self.metadata.on_response(&brokers, &partitions, now_ms);
                if self.group.is_some() {
                    self.on_metadata_updated();
                }
            }
            (InFlight::Group(call), body) => self.on_group_response(call, body, now_ms),
            (
                InFlight::ListOffsets { partitions: asked },
                ResponseBody::ListOffsets { partitions },
            ) => {
                for tp in asked {
                    let result = partitions
                        .iter()
                        .find(|(p, _)| *p == tp)
                        .map(|(_, r)| *r)
                        .unwrap_or(Err(KafkaError::NetworkException));
                    self.on_listed(tp, result, now_ms);
                }
            }
            (InFlight::Fetch { partitions: asked }, ResponseBody::Fetch { partitions }) => {
                self.fetching_from.remove(&broker);
                for (tp, fetch_offset) in asked {
                    let result = partitions
                        .iter()
                        .find(|(p, _)| *p == tp)
                        .map(|(_, r)| r.clone())
                        .unwrap_or(Err(KafkaError::NetworkException));
                    self.on_partition_fetched(tp, fetch_offset, result, now_ms);
                }
                if self.caught_up() {
                    self.record(ConsumerAction::CaughtUp);
                }
            }
            // An answer of the wrong kind: a broker bug; treat it like a lost request.
            (context, _) => self.on_lost(
                vec![Lost {
                    broker,
                    context,
                    error: KafkaError::NetworkException,
                }],
                now_ms,
            ),
        }
        self.drive(now_ms);
    }

    fn flush_net(&mut self) {
        self.out
            .extend(self.net.take_actions().into_iter().map(ConsumerAction::Net));
    }

    fn record(&mut self, action: ConsumerAction) {
        self.flush_net();
        self.out.push(action);
    }

    fn drive(&mut self, now_ms: u64) {
        self.maybe_send_metadata(now_ms);
        if self.group.is_some() {
            self.drive_group(now_ms);
        } else {
            self.update_assignment();
        }
        self.send_fetches(now_ms);
        self.send_list_offsets(now_ms);
    }

    fn maybe_send_metadata(&mut self, now_ms: u64) {
        if !self.metadata.should_send(
            now_ms,
            self.config.retry_backoff_ms,
            self.config.metadata_max_age_ms,
        ) {
            return;
        }
        let Some(broker) = self.net.least_loaded(self.metadata.candidates(), now_ms) else {
            return;
        };
        if self.net.is_ready(broker) {
            let topics = self.metadata.topics().to_vec();
            self.net.send(
                broker,
                RequestBody::Metadata { topics },
                Some(InFlight::Metadata),
                now_ms,
            );
            self.metadata.on_sent(now_ms);
        } else {
            self.net.connect(broker, now_ms);
        }
    }

    /// Partitions the metadata names join the assignment: at offset 0 with
    /// `auto.offset.reset=earliest` (where every log starts until its start moves; one
    /// that moved answers `OFFSET_OUT_OF_RANGE`, and the reset asks ListOffsets), else
    /// once ListOffsets names their latest offset.
    fn update_assignment(&mut self) {
        let new: Vec<TopicPartition> = self
            .metadata
            .partitions()
            .map(|(tp, _)| tp)
            .filter(|tp| !self.assignment.contains_key(*tp) && !self.resetting.contains_key(*tp))
            .cloned()
            .collect();
        if new.is_empty() {
            return;
        }
        if self.config.auto_offset_reset == OffsetSpec::Latest {
            for tp in new {
                self.resetting.insert(tp, Resetting::to(OffsetSpec::Latest));
            }
            return;
        }
        for tp in new {
            self.assignment.insert(
                tp,
                PartitionFetch {
                    position: Offset(0),
                    position_epoch: None,
                    log_start_offset: None,
                    fetching: false,
                    retry_at_ms: 0,
                },
            );
        }
        self.record_assignment();
    }

    fn record_assignment(&mut self) {
        let partitions = self
            .assignment
            .iter()
            .map(|(tp, p)| (*tp, p.position.0))
            .collect();
        self.record(ConsumerAction::Assign { partitions });
    }

    /// One Fetch per leader without one in flight, for every partition it leads that is
    /// not being fetched or backing off.
    fn send_fetches(&mut self, now_ms: u64) {
        if self.paused {
            return;
        }
        let mut by_leader: BTreeMap<BrokerId, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, p) in &self.assignment {
            if p.fetching || now_ms < p.retry_at_ms {
                continue;
            }
            let Some((leader, leader_epoch)) = self.metadata.led_by(tp) else {
                continue;
            };
            if self.fetching_from.contains(&leader) {
                continue;
            }
            by_leader.entry(leader).or_default().push(FetchPartition {
                partition: *tp,
                fetch_offset: p.position,
                current_leader_epoch: Some(leader_epoch),
                last_fetched_epoch: None,
                max_bytes: self.config.max_partition_fetch_bytes,
            });
        }
        for (leader, partitions) in by_leader {
            if !self.net.is_ready(leader) {
                self.net.connect(leader, now_ms);
                continue;
            }
            let asked: Vec<(TopicPartition, Offset)> = partitions
                .iter()
                .map(|f| (f.partition, f.fetch_offset))
                .collect();
            for (tp, _) in &asked {
                self.assignment.get_mut(tp).expect("assigned").fetching = true;
            }
            self.net.send(
                leader,
                RequestBody::Fetch {
                    replica_id: None,
                    replica_epoch: crate::broker::BrokerEpoch(0),
                    max_wait_ms: self.config.fetch_max_wait_ms,
                    partitions,
                    isolation_level: self.config.isolation_level,
                },
                Some(InFlight::Fetch { partitions: asked }),
                now_ms,
            );
            self.fetching_from.insert(leader);
        }
    }

    fn on_partition_fetched(
        &mut self,
        tp: TopicPartition,
        fetch_offset: Offset,
        result: Result<FetchData, KafkaError>,
        now_ms: u64,
    ) {
        let backoff = now_ms.saturating_add(self.config.retry_backoff_ms);
        let Some(p) = self.assignment.get_mut(&tp) else {
            return;
        };
        p.fetching = false;
        if p.position != fetch_offset {
            return; // the position moved meanwhile (a reset): stale answer
        }
        match result {
            Ok(data) => {
                p.log_start_offset = Some(data.log_start_offset);
                let batches = match decode_batches(&data.records.0) {
                    Ok(batches) => batches,
                    Err(_) => {
                        // Corrupt bytes on the wire: Kafka's consumer raises to the
                        // application; here the partition is simply fetched again.
                        p.retry_at_ms = backoff;
                        return;
                    }
                };
                // Every batch reaching the position moves it past its end; a control
                // batch (a transaction's COMMIT or ABORT marker) hands out no record, as
                // in Kafka's fetcher, in either isolation level. `read_committed` also
                // skips the batches of aborted transactions: a producer listed as aborted
                // from its transaction's first offset on, until its ABORT marker.
                let read_committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
                let mut aborted = data.aborted_transactions;
                aborted.sort_by_key(|t| std::cmp::Reverse(t.first_offset));
                let mut aborted_producers = BTreeSet::new();
                let mut end = p.position;
                let mut records: Vec<(u64, CompactString)> = Vec::new();
                for batch in batches {
                    if batch.records.last().is_none_or(|r| r.offset < p.position) {
                        continue;
                    }
                    p.position_epoch = (batch.partition_leader_epoch.0 >= 0)
                        .then_some(batch.partition_leader_epoch);
                    end = end.max(batch.next_offset());
                    if read_committed && batch.producer_id != ProducerId::NONE {
                        while aborted
                            .last()
                            .is_some_and(|t| t.first_offset <= batch.last_offset())
                        {
                            let t = aborted.pop().expect("just seen");
                            aborted_producers.insert(t.producer_id);
                        }
                        if batch.is_control() {
                            if batch
                                .control_record()
                                .is_ok_and(|c| c.kind == ControlRecordType::Abort)
                            {
                                aborted_producers.remove(&batch.producer_id);
                            }
                        } else if batch.is_transactional()
                            && aborted_producers.contains(&batch.producer_id)
                        {
                            continue;
                        }
                    }
                    if batch.is_control() {
                        continue;
                    }
                    records.extend(
                        batch
                            .records
                            .into_iter()
                            .filter(|r| r.offset >= p.position)
                            .map(|r| {
                                let value = r.value.unwrap_or_default();
                                (r.offset.0, CompactString::from_utf8_lossy(&value))
                            }),
                    );
                }
                if end >= data.high_watermark {
                    self.at_high_watermark.insert(tp);
                } else {
                    self.at_high_watermark.remove(&tp);
                }
                if end > p.position {
                    p.position = end;
                }
                if !records.is_empty() && !self.hold_until_committed(&tp, &records, now_ms) {
                    self.record(ConsumerAction::Poll {
                        partition: tp,
                        records,
                    });
                }
            }
            Err(KafkaError::OffsetOutOfRange) => {
                self.at_high_watermark.remove(&tp);
                match (self.config.auto_offset_reset, p.log_start_offset) {
                    // auto.offset.reset=earliest, the log start known from the last
                    // fetch: a seek, recorded as such.
                    (OffsetSpec::Earliest, Some(earliest)) => {
                        p.retry_at_ms = backoff;
                        if p.position != earliest {
                            p.position = earliest;
                            self.record_assignment();
                        }
                    }
                    // Otherwise the position is gone until ListOffsets names one.
                    (spec, _) => {
                        self.assignment.remove(&tp);
                        self.resetting.insert(tp, Resetting::to(spec));
                        self.record_positions();
                    }
                }
            }
            Err(error) => {
                p.retry_at_ms = backoff;
                self.at_high_watermark.remove(&tp);
                if matches!(
                    error,
                    KafkaError::NotLeaderOrFollower
                        | KafkaError::FencedLeaderEpoch
                        | KafkaError::UnknownLeaderEpoch
                        | KafkaError::UnknownTopicOrPartition
                        | KafkaError::LeaderNotAvailable
                        | KafkaError::KafkaStorageError
                        | KafkaError::NetworkException
                ) {
                    self.metadata.request_update();
                }
            }
        }
    }

    /// One ListOffsets per leader for the partitions without a position that are not
    /// being asked about or backing off.
    fn send_list_offsets(&mut self, now_ms: u64) {
        let mut by_leader: BTreeMap<BrokerId, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (tp, r) in &self.resetting {
            if r.asking || now_ms < r.retry_at_ms {
                continue;
            }
            let Some((leader, leader_epoch)) = self.metadata.led_by(tp) else {
                continue;
            };
            by_leader
                .entry(leader)
                .or_default()
                .push(ListOffsetsPartition {
                    partition: *tp,
                    current_leader_epoch: Some(leader_epoch),
                    spec: r.spec,
                });
        }
        for (leader, partitions) in by_leader {
            if !self.net.is_ready(leader) {
                self.net.connect(leader, now_ms);
                continue;
            }
            let asked: Vec<TopicPartition> = partitions.iter().map(|q| q.partition).collect();
            for tp in &asked {
                self.resetting.get_mut(tp).expect("resetting").asking = true;
            }
            self.net.send(
                leader,
                RequestBody::ListOffsets {
                    isolation_level: self.config.isolation_level,
                    partitions,
                },
                Some(InFlight::ListOffsets { partitions: asked }),
                now_ms,
            );
        }
    }

    /// ListOffsets answered for `tp`: its position is found (a seek, recorded as such), or
    /// it is asked again after `retry.backoff.ms`.
    fn on_listed(
        &mut self,
        tp: TopicPartition,
        result: Result<ListedOffset, KafkaError>,
        now_ms: u64,
    ) {
        let Some(r) = self.resetting.get_mut(&tp) else {
            return; // given up meanwhile (revoked)
        };
        r.asking = false;
        match result {
            Ok(listed) => {
                crate::coverage::hit(crate::coverage::Mark::OffsetResetByListOffsets);
                self.resetting.remove(&tp);
                self.assignment.insert(
                    tp,
                    PartitionFetch {
                        position: listed.offset,
                        position_epoch: None,
                        log_start_offset: None,
                        fetching: false,
                        retry_at_ms: 0,
                    },
                );
                self.record_positions();
            }
            Err(error) => {
                r.retry_at_ms = now_ms.saturating_add(self.config.retry_backoff_ms);
                if error != KafkaError::OffsetNotAvailable {
                    self.metadata.request_update();
                }
            }
        }
    }

    /// Records the positions after a seek: the group assignment of a member, the
    /// assignment of an assign-mode reader.
    fn record_positions(&mut self) {
        if self.group.is_some() {
            self.record_group_assignment();
        } else {
            self.record_assignment();
        }
    }

    /// `tp` is no longer this consumer's: its position (or its reset) is dropped.
    fn forget(&mut self, tp: &TopicPartition) {
        self.assignment.remove(tp);
        self.resetting.remove(tp);
    }

    fn on_lost(&mut self, lost: Vec<Lost<InFlight>>, now_ms: u64) {
        for Lost {
            broker, context, ..
        } in lost
        {
            match context {
                InFlight::Metadata => self.metadata.on_lost(),
                InFlight::Group(call) => self.on_group_lost(call, now_ms),
                InFlight::ListOffsets { partitions } => {
                    self.metadata.request_update();
                    for tp in partitions {
                        if let Some(r) = self.resetting.get_mut(&tp) {
                            r.asking = false;
                        }
                    }
                }
                InFlight::Fetch { partitions } => {
                    self.fetching_from.remove(&broker);
                    self.metadata.request_update();
                    for (tp, _) in partitions {
                        self.at_high_watermark.remove(&tp);
                        if let Some(p) = self.assignment.get_mut(&tp) {
                            p.fetching = false;
                        }
                    }
                }
            }
        }
    }
}

mod group;
#[cfg(test)]
mod tests;

pub use group::{GroupConfig, DEFAULT_SESSION_TIMEOUT_MS};
