//! How much a scenario may ask for: every bound that keeps a run finite in time and memory,
//! in one table.
//!
//! Owns: the limits `build` (single values) and `budget` (sums and products) enforce beyond
//! Kafka's and ZooKeeper's own value ranges. A scenario that loads runs in bounded wall time
//! and memory: measured on the release build (2-core machine), scenarios at these limits
//! (alone and combined) took at most about 3 minutes and 4.2 GiB (100 producers of one
//! record per batch over 100 partitions, read by 5 consumers a record per poll); what the
//! swarm draws at its largest, 20 seconds and 0.6 GiB. A typo such as
//! `partitions = 4294967295` or `duration = "24h"` is an error at its position, never an
//! out-of-memory abort or a run that seems to hang. Each limit is far above what a real
//! scenario needs (the shipped ones and everything `swarm` draws stay well below), and the
//! README's "Limits" table repeats them for users.
//!
//! | what | limit | why |
//! |---|---|---|
//! | scenario file | 1 MiB | the shipped files are a few KiB; 10,000 faults take about 600 KiB |
//! | `zookeepers` | 9 | ensembles are 3, 5 or 7 servers |
//! | `brokers` | 64 | |
//! | `count`, summed per kind (producers, consumers, writers, ensemble clients) | 100 | |
//! | `[[topic]]` tables | 100 | |
//! | partitions in all: every topic's `partitions`, `"offsets.topic.num.partitions"` (default 50) once a group needs `__consumer_offsets`, and `"transaction.state.log.num.partitions"` (default 50) once a producer has a `transactional.id` | 100 | every partition costs on every broker tick and every fetch; 300 partitions under 100 producers ran at a third of real time |
//! | replicas in all (partitions × replication factor) | 300 | |
//! | brokers × partitions in all | 1,000 | every broker is sent the state of every partition on each leader or ISR change: memory grows with brokers × partitions² (16 brokers × 1,000 partitions took 6 GiB) |
//! | partition-seconds: (replicas + partitions read by consumers) × (`duration` + `heal`) in seconds | 250,000 | a busy replica costs up to 0.5 ms of wall time per simulated second |
//! | records and operations offered: each `[[producer]]`, `[[writer]]` and `[[zk_client]]` table's `count` × `rate` × (`duration` + `heal`) in seconds, summed | 500,000 | a record spread over many partitions by many slow producers (a batch each) costs up to 3 KiB until the checks end; the swarm draws up to 483,000 |
//! | records read: an assign-mode reader reads every record of its topics, a group each record once | 2,500,000 | each poll that returns records is a history entry (up to 1.3 KiB with the checkers' share); the swarm draws up to 2,100,000 |
//! | ensemble replay: faults (scheduled, plus the most the nemesis can draw) × operations the `[[zk_client]]` tables offer | 200,000,000 | a restarted ensemble server reads its whole transaction log back, and a new leader syncs followers from it |
//! | `registers` of an ensemble client | 1,000 | |
//! | `rate` of a producer, writer or ensemble client | 10,000 per second | |
//! | `txn-records` of a transactional producer | 10,000 | a transaction's records are held by the brokers (the LSO waits for its end); Kafka's applications commit far more often |
//! | `[[fault]]` tables | 10,000 | |
//! | faults the nemesis can draw: `duration` / the shortest `every` | 10,000 | |
//! | `duration`, `heal`, and every other duration | 1 h | simulated time |
//! | `tickTime` | 60,000 ms | sessions are negotiated within 2 to 20 ticks |
//! | `initLimit`, `syncLimit` | 1,000 ticks | ZooKeeper's defaults are 10 and 5 |
//! | Kafka `int` settings (timeouts in ms, `batch.size`, `retries`, ...) and `snapCount` | 2,147,483,647 | the range Kafka and ZooKeeper read them in (Java `int`) |
//! | Kafka `long` settings (`linger.ms`, `log.flush.interval.*`, `replica.lag.time.max.ms`) | 9,223,372,036,854,775,807 | Java `long` |

use std::time::Duration;

/// Largest scenario file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most ensemble servers.
pub const MAX_ZOOKEEPERS: u32 = 9;
/// Most brokers.
pub const MAX_BROKERS: u32 = 64;
/// Most producers, consumers, writers or ensemble clients, each kind summed over its tables.
pub const MAX_CLIENTS_PER_KIND: u32 = 100;
/// Most `[[topic]]` tables.
pub const MAX_TOPICS: usize = 100;
/// Most partitions in all: over the topics, `__consumer_offsets` when a group needs it and
/// `__transaction_state` when a producer is transactional.
pub const MAX_PARTITIONS: u32 = 100;
/// Most partition replicas in the cluster, `__consumer_offsets` included.
pub const MAX_REPLICAS: u64 = 300;
/// Most brokers × partitions in all (each broker holds the state of every partition).
pub const MAX_BROKER_PARTITIONS: u64 = 1_000;
/// Most (replicas + partitions read by consumers) × (`duration` + `heal`) in seconds.
pub const MAX_PARTITION_SECONDS: u64 = 250_000;
/// Most records and operations the workload tables offer over `duration` + `heal`.
pub const MAX_OFFERED_OPERATIONS: u64 = 500_000;
/// Most records the consumers read over `duration` + `heal`.
pub const MAX_RECORDS_READ: u64 = 2_500_000;
/// Most faults (scheduled, plus the most the nemesis can draw) × ensemble operations offered.
pub const MAX_ENSEMBLE_REPLAY: u64 = 200_000_000;
/// Most register znodes of one ensemble client.
pub const MAX_REGISTERS: u32 = 1_000;
/// Highest `rate` of one producer, writer or ensemble client, per simulated second.
pub const MAX_RATE: u32 = 10_000;
/// Most records in one transaction (`txn-records`).
pub const MAX_TXN_RECORDS: u32 = 10_000;

/// The longest `commit.interval.ms` of a `[[processor]]` (a minute: a transaction held
/// open longer only delays what the checks can see).
pub const MAX_COMMIT_INTERVAL_MS: u64 = 60_000;
/// Most `[[fault]]` tables, and most faults the nemesis can draw in one run.
pub const MAX_FAULTS: usize = 10_000;
/// Longest `duration`, `heal` and any other duration in a scenario.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// Highest `tickTime`, in milliseconds.
pub const MAX_TICK_TIME_MS: u64 = 60_000;
/// Highest `initLimit` and `syncLimit`, in ticks.
pub const MAX_LIMIT_TICKS: u32 = 1_000;
/// Highest value of a Kafka (or ZooKeeper) `int` setting.
pub const JAVA_INT_MAX: u64 = i32::MAX as u64;
/// Highest value of a Kafka `long` setting.
pub const JAVA_LONG_MAX: u64 = i64::MAX as u64;
