//! A client's connections to brokers: Kafka's `NetworkClient`, without the sockets.
//!
//! Owns: one connection per broker at most, its state (connecting, ready), the requests in
//! flight on it with what the core needs to remember about each (`T`), correlation ids,
//! reconnect backoff, and the two timeouts that tear a connection down:
//! `socket.connection.setup.timeout.ms` for a connect that never completes and
//! `request.timeout.ms` for a request that is never answered. A connection that closes —
//! asked by the core, refused, reset, or timed out — loses every request in flight on it:
//! the core gets their contexts back and must treat their outcome as unknown.
//!
//! Connections are named by a [`ConnectionId`] that is never reused, so an event from a
//! connection the core already gave up on (a late response, a late close) is recognised
//! and ignored; the shell needs no extra bookkeeping to stay safe.
//!
//! Simplifications vs Kafka: reconnect backoff doubles per consecutive failure without
//! jitter (Kafka adds 20% jitter); one connection per broker.

use crate::broker::proto::{Request, RequestBody, Response, ResponseBody};
use crate::broker::{BrokerId, KafkaError};
use std::collections::BTreeMap;

/// One connection to a broker, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// What a client core asks its shell to do with connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetAction {
    /// Open a TCP connection to `broker`, then report `on_connected(connection)` or
    /// `on_closed(connection)`.
    Connect {
        /// The broker.
        broker: BrokerId,
        /// The name of the new connection in later actions and events.
        connection: ConnectionId,
    },
    /// Write `request` on the open connection.
    Send {
        /// The broker at the other end.
        broker: BrokerId,
        /// The connection.
        connection: ConnectionId,
        /// The request.
        request: Request,
    },
    /// Close the connection; the core already treats it as gone (no `on_closed` needed).
    Close {
        /// The broker at the other end.
        broker: BrokerId,
        /// The connection.
        connection: ConnectionId,
    },
}

/// The timeouts and backoffs of a client's connections (Kafka's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// `request.timeout.ms` (30000): no answer this long closes the connection.
    pub request_timeout_ms: u64,
    /// `socket.connection.setup.timeout.ms` (10000).
    pub connection_setup_timeout_ms: u64,
    /// `reconnect.backoff.ms` (50): wait after a failed or closed connection.
    pub reconnect_backoff_ms: u64,
    /// `reconnect.backoff.max.ms` (1000): the backoff doubles up to this.
    pub reconnect_backoff_max_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            request_timeout_ms: 30_000,
            connection_setup_timeout_ms: 10_000,
            reconnect_backoff_ms: 50,
            reconnect_backoff_max_ms: 1_000,
        }
    }
}

/// A request whose answer never came, handed back to the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost<T> {
    /// The broker it was sent to.
    pub broker: BrokerId,
    /// What the core remembered about it.
    pub context: T,
    /// `NETWORK_EXCEPTION` (the connection closed) or `REQUEST_TIMED_OUT`.
    pub error: KafkaError,
}

#[derive(Clone, Debug)]
struct Connection<T> {
    id: ConnectionId,
    ready: bool,
    since_ms: u64,
    in_flight: BTreeMap<u64, (u64, T)>,
}

/// Every connection of one client core; `T` is what the core remembers per request.
#[derive(Clone, Debug)]
pub struct Network<T> {
    config: NetConfig,
    next_connection: u64,
    next_correlation: u64,
    connections: BTreeMap<BrokerId, Connection<T>>,
    /// Per broker: consecutive failures and when a new attempt is allowed.
    backoff: BTreeMap<BrokerId, (u32, u64)>,
    out: Vec<NetAction>,
}

impl<T> Network<T> {
    /// No connections yet.
    pub fn new(config: NetConfig) -> Self {
        Network {
            config,
            next_connection: 1,
            next_correlation: 1,
            connections: BTreeMap::new(),
            backoff: BTreeMap::new(),
            out: Vec::new(),
        }
    }

    /// The actions produced so far, in order.
    pub fn take_actions(&mut self) -> Vec<NetAction> {
        std::mem::take(&mut self.out)
    }

    /// Whether requests can be sent to `broker` now.
    pub fn is_ready(&self, broker: BrokerId) -> bool {
        self.connections.get(&broker).is_some_and(|c| c.ready)
    }

    /// Requests in flight to `broker` (that expect an answer).
    pub fn in_flight(&self, broker: BrokerId) -> usize {
        self.connections
            .get(&broker)
            .map_or(0, |c| c.in_flight.len())
    }

    /// Requests in flight on every connection.
    pub fn in_flight_total(&self) -> usize {
        self.connections.values().map(|c| c.in_flight.len()).sum()
    }

    /// Whether a connection to `broker` exists or may be opened now.
    pub fn can_connect(&self, broker: BrokerId, now_ms: u64) -> bool {
        self.connections.contains_key(&broker)
            || self
                .backoff
                .get(&broker)
                .is_none_or(|(_, until)| now_ms >= *until)
    }

    /// Starts connecting to `broker` unless connected, connecting or backing off.
    pub fn connect(&mut self, broker: BrokerId, now_ms: u64) {
        if self.connections.contains_key(&broker) || !self.can_connect(broker, now_ms) {
            return;
        }
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.connections.insert(
            broker,
            Connection {
                id,
                ready: false,
                since_ms: now_ms,
                in_flight: BTreeMap::new(),
            },
        );
        self.out.push(NetAction::Connect {
            broker,
            connection: id,
        });
    }

    /// Sends `body` to `broker`, which must be ready. With a `context` the answer is
    /// awaited (and counted in flight); without one none is expected (acks=0).
    /// Returns the correlation id.
    pub fn send(
        &mut self,
        broker: BrokerId,
        body: RequestBody,
        context: Option<T>,
        now_ms: u64,
    ) -> u64 {
        let connection = self
            .connections
            .get_mut(&broker)
            .filter(|c| c.ready)
            .expect("send on a ready connection");
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        if let Some(context) = context {
            connection
                .in_flight
                .insert(correlation_id, (now_ms, context));
        }
        self.out.push(NetAction::Send {
            broker,
            connection: connection.id,
            request: Request {
                correlation_id,
                body,
            },
        });
        correlation_id
    }

    /// The broker the connection leads to, if it is current.
    fn broker_of(&self, connection: ConnectionId) -> Option<BrokerId> {
        self.connections
            .iter()
            .find(|(_, c)| c.id == connection)
            .map(|(b, _)| *b)
    }

    /// The connection opened; returns its broker, or `None` if it is not current.
    pub fn on_connected(&mut self, connection: ConnectionId, now_ms: u64) -> Option<BrokerId> {
        let broker = self.broker_of(connection)?;
        let c = self.connections.get_mut(&broker).expect("current");
        if !c.ready {
            c.ready = true;
            c.since_ms = now_ms;
            self.backoff.remove(&broker);
        }
        Some(broker)
    }

    /// The connection failed to open or broke: everything in flight on it is lost.
    pub fn on_closed(&mut self, connection: ConnectionId, now_ms: u64) -> Vec<Lost<T>> {
        match self.broker_of(connection) {
            Some(broker) => self.drop_connection(broker, KafkaError::NetworkException, now_ms),
            None => Vec::new(),
        }
    }

    /// Closes the connection to `broker` (if any) at the core's request.
    pub fn close(&mut self, broker: BrokerId, now_ms: u64) -> Vec<Lost<T>> {
        let Some(c) = self.connections.get(&broker) else {
            return Vec::new();
        };
        self.out.push(NetAction::Close {
            broker,
            connection: c.id,
        });
        self.drop_connection(broker, KafkaError::NetworkException, now_ms)
    }

    fn drop_connection(
        &mut self,
        broker: BrokerId,
        error: KafkaError,
        now_ms: u64,
    ) -> Vec<Lost<T>> {
        let Some(c) = self.connections.remove(&broker) else {
            return Vec::new();
        };
        let failures = if c.ready {
            1
        } else {
            self.backoff.get(&broker).map_or(0, |(n, _)| *n) + 1
        };
        let wait = self
            .config
            .reconnect_backoff_ms
            .saturating_mul(1 << (failures - 1).min(20))
            .min(
                self.config
                    .reconnect_backoff_max_ms
                    .max(self.config.reconnect_backoff_ms),
            );
        self.backoff
            .insert(broker, (failures, now_ms.saturating_add(wait)));
        c.in_flight
            .into_values()
            .map(|(_, context)| Lost {
                broker,
                context,
                error,
            })
            .collect()
    }

    /// An answer arrived: returns the broker, the request's context and the body, or
    /// `None` if the connection is not current or the correlation id is unknown.
    pub fn on_response(
        &mut self,
        connection: ConnectionId,
        response: Response,
    ) -> Option<(BrokerId, T, ResponseBody)> {
        let broker = self.broker_of(connection)?;
        let c = self.connections.get_mut(&broker)?;
        let (_, context) = c.in_flight.remove(&response.correlation_id)?;
        Some((broker, context, response.body))
    }

    /// Closes connections whose setup or oldest request took too long (like Kafka's
    /// `NetworkClient`, which disconnects on a request timeout); returns what was lost.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Lost<T>> {
        let expired: Vec<(BrokerId, KafkaError)> = self
            .connections
            .iter()
            .filter_map(|(broker, c)| {
                if !c.ready {
                    let late = now_ms.saturating_sub(c.since_ms)
                        >= self.config.connection_setup_timeout_ms;
                    return late.then_some((*broker, KafkaError::NetworkException));
                }
                let oldest = c.in_flight.values().map(|(sent, _)| *sent).min()?;
                let late = now_ms.saturating_sub(oldest) >= self.config.request_timeout_ms;
                late.then_some((*broker, KafkaError::RequestTimedOut))
            })
            .collect();
        let mut lost = Vec::new();
        for (broker, error) in expired {
            let id = self.connections[&broker].id;
            self.out.push(NetAction::Close {
                broker,
                connection: id,
            });
            lost.extend(self.drop_connection(broker, error, now_ms));
        }
        lost
    }

    /// Kafka's `leastLoadedNode`: a ready broker with the fewest requests in flight; else
    /// a broker being connected to; else the first one that may be connected to now.
    /// `None` if every candidate is backing off.
    pub fn least_loaded(
        &self,
        candidates: impl IntoIterator<Item = BrokerId>,
        now_ms: u64,
    ) -> Option<BrokerId> {
        let candidates: Vec<BrokerId> = candidates.into_iter().collect();
        let ready = candidates
            .iter()
            .filter(|b| self.is_ready(**b))
            .min_by_key(|b| self.in_flight(**b));
        if let Some(b) = ready {
            return Some(*b);
        }
        if let Some(b) = candidates.iter().find(|b| self.connections.contains_key(b)) {
            return Some(*b);
        }
        candidates
            .into_iter()
            .find(|b| self.can_connect(*b, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> RequestBody {
        RequestBody::Metadata { topics: vec![] }
    }

    fn connected(net: &mut Network<&'static str>, broker: BrokerId) -> ConnectionId {
        net.connect(broker, 0);
        let Some(NetAction::Connect { connection, .. }) = net.take_actions().pop() else {
            panic!("a connect");
        };
        assert_eq!(net.on_connected(connection, 1), Some(broker));
        connection
    }

    #[test]
    fn a_closed_connection_loses_its_requests_and_ignores_late_events() {
        let mut net = Network::new(NetConfig::default());
        let b = BrokerId(1);
        let conn = connected(&mut net, b);
        let id = net.send(b, metadata(), Some("m"), 2);
        assert_eq!(net.in_flight(b), 1);
        let lost = net.on_closed(conn, 3);
        assert_eq!(
            lost,
            vec![Lost {
                broker: b,
                context: "m",
                error: KafkaError::NetworkException
            }]
        );
        let late = Response {
            correlation_id: id,
            body: ResponseBody::UpdateMetadata { error: None },
        };
        assert!(net.on_response(conn, late).is_none(), "stale connection");
        assert!(net.on_closed(conn, 4).is_empty());
        assert!(!net.can_connect(b, 4), "reconnect backoff");
        assert!(net.can_connect(b, 3 + 50));
    }

    /// Kafka's NetworkClient: a request unanswered for request.timeout.ms disconnects.
    #[test]
    fn request_timeout_closes_the_connection() {
        let mut net = Network::new(NetConfig::default());
        let b = BrokerId(2);
        let conn = connected(&mut net, b);
        net.send(b, metadata(), Some("a"), 10);
        net.take_actions();
        assert!(net.tick(10 + 29_999).is_empty());
        let lost = net.tick(10 + 30_000);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].error, KafkaError::RequestTimedOut);
        assert_eq!(
            net.take_actions(),
            vec![NetAction::Close {
                broker: b,
                connection: conn
            }]
        );
        assert!(!net.is_ready(b));
    }

    #[test]
    fn connection_setup_timeout_and_backoff_doubling() {
        let mut net: Network<()> = Network::new(NetConfig::default());
        let b = BrokerId(3);
        net.connect(b, 0);
        net.tick(10_000);
        assert!(!net.can_connect(b, 10_049));
        assert!(net.can_connect(b, 10_050));
        net.connect(b, 10_050);
        let Some(NetAction::Connect { connection, .. }) = net.take_actions().pop() else {
            panic!()
        };
        net.on_closed(connection, 10_051);
        assert!(
            !net.can_connect(b, 10_051 + 99),
            "second failure waits twice as long"
        );
        assert!(net.can_connect(b, 10_051 + 100));
    }

    #[test]
    fn least_loaded_prefers_ready_brokers_with_fewest_requests() {
        let mut net = Network::new(NetConfig::default());
        connected(&mut net, BrokerId(1));
        connected(&mut net, BrokerId(2));
        net.send(BrokerId(1), metadata(), Some("x"), 0);
        let all = [BrokerId(1), BrokerId(2), BrokerId(3)];
        assert_eq!(net.least_loaded(all, 0), Some(BrokerId(2)));
        assert_eq!(net.least_loaded([BrokerId(3)], 0), Some(BrokerId(3)));
        // acks=0 style: no context, nothing in flight.
        net.send(BrokerId(2), metadata(), None, 0);
        assert_eq!(net.in_flight(BrokerId(2)), 0);
    }
}
