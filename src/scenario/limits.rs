//! How much a scenario may ask for: every bound that keeps a run finite in time and memory,
//! in one table.
//!
//! Owns: the limits `build` enforces beyond Kafka's and ZooKeeper's own value ranges. A
//! scenario that loads runs in bounded wall time and memory (minutes at most on one core of
//! a laptop, a few hundred MiB), so a typo such as `partitions = 4294967295` or
//! `duration = "24h"` is an error at its position, never an out-of-memory abort or a run
//! that seems to hang. Each limit is far above what a real scenario needs (the shipped ones
//! and everything `swarm` draws are an order of magnitude below), and the README's
//! "Limits" table repeats them for users.
//!
//! | what | limit | why |
//! |---|---|---|
//! | scenario file | 1 MiB | the shipped files are a few KiB; 10,000 faults take about 600 KiB |
//! | `zookeepers` | 9 | ensembles are 3, 5 or 7 servers; each server holds the whole tree |
//! | `brokers` | 64 | every broker hears every metadata change; six test any replication |
//! | `count`, summed per kind (producers, consumers, writers, ensemble clients) | 100 | each is a node with its own timers and history |
//! | `[[topic]]` tables | 100 | |
//! | `partitions` of a topic, `"offsets.topic.num.partitions"` | 1,000 | each is a log per replica |
//! | replicas: `partitions` × `replication.factor`, summed over the topics and `__consumer_offsets` | 3,000 | each follower replica is fetched on every broker tick |
//! | `registers` of an ensemble client | 1,000 | each client creates and tracks them all |
//! | `rate` of a producer, writer or ensemble client | 10,000 per second | |
//! | records and operations offered: each table's `count` × `rate` × (`duration` + `heal`) in seconds, summed | 5,000,000 | what the run and its checkers handle in a few minutes |
//! | `[[fault]]` tables | 10,000 | |
//! | faults the nemesis can draw: `duration` / the shortest `every` | 10,000 | |
//! | `duration`, `heal`, and every other duration | 1 h | simulated time |
//! | `tickTime` | 60,000 ms | a minute: sessions are negotiated within 2 to 20 ticks |
//! | `initLimit`, `syncLimit` | 1,000 ticks | ZooKeeper's defaults are 10 and 5 |
//! | Kafka `int` settings (`*.ms` timeouts, `batch.size`, `retries`, ...) and `snapCount` | 2,147,483,647 | the range Kafka and ZooKeeper read them in (Java `int`) |
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
/// Most partitions of one topic (and of `__consumer_offsets`).
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 1_000;
/// Most partition replicas in the cluster, `__consumer_offsets` included.
pub const MAX_REPLICAS: u64 = 3_000;
/// Most register znodes of one ensemble client.
pub const MAX_REGISTERS: u32 = 1_000;
/// Highest `rate` of one producer, writer or ensemble client, per simulated second.
pub const MAX_RATE: u32 = 10_000;
/// Most records and operations the workload tables offer over `duration` + `heal`.
pub const MAX_OFFERED_OPERATIONS: u64 = 5_000_000;
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
