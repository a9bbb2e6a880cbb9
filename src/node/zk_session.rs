//! A node's ensemble session: the plumbing around a [`ClientCore`] that brokers and
//! ensemble clients share.
//!
//! Owns: the connection to one ensemble server at a time ([`connect`]: one TCP stream per
//! generation; events of an older generation are ignored, so a replaced connection's late
//! responses never reach the core), executing the core's transport actions (connect, send,
//! disconnect), ticking it, and opening a new session [`NEW_SESSION_DELAY_MS`] after one
//! ended (Kafka's broker re-creates its ZooKeeper session after an expiry; the clients of
//! the Jepsen-style workload do the same). What the session tells its application —
//! completions, watches, a session opened or ended — comes back as the core's own
//! [`ClientEvent`]s, in the order it produced them. The protocol (failover, pings, timeouts, exactly-once
//! completion) is the core's, in `zk::client`.

use super::net::{frame_writer, read_frame, send_frame, Hello};
use crate::zk::client::{ClientAction, ClientConfig, ClientCore, ClientEvent};
use crate::zk::proto::{ClientRequest, ServerResponse};
use crate::zk::{Op, ServerId, SessionId, Xid};
use madsim::net::TcpStream;
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How long after a session ended a new one is opened.
pub const NEW_SESSION_DELAY_MS: u64 = 200;

/// What a connection to an ensemble server reports (see [`connect`]).
#[derive(Debug)]
pub enum ConnEvent {
    /// Up: send requests through `tx`.
    Open {
        /// The connection's generation.
        generation: u64,
        /// Requests go here.
        tx: UnboundedSender<ClientRequest>,
    },
    /// A response or notification arrived.
    Response {
        /// The connection's generation.
        generation: u64,
        /// What arrived.
        response: ServerResponse,
    },
    /// Failed to open, or closed.
    Closed {
        /// The connection's generation.
        generation: u64,
    },
}

/// One ensemble session of a node, and its connection.
pub struct ZkSession {
    core: ClientCore,
    servers: Vec<(ServerId, SocketAddr)>,
    /// The connection asked for last; events of older ones are stale.
    generation: u64,
    /// Where requests go while that connection is open.
    tx: Option<UnboundedSender<ClientRequest>>,
    /// When to open a new session, after one ended.
    new_session_at_ms: Option<u64>,
}

impl ZkSession {
    /// A session with `servers` asking for `session_timeout`, starting at a server drawn
    /// from `rng`; it connects at its first tick.
    pub fn new(
        servers: &[(ServerId, SocketAddr)],
        session_timeout: Duration,
        rng: &mut impl Rng,
        now_ms: u64,
    ) -> ZkSession {
        let config = ClientConfig {
            servers: servers.iter().map(|(id, _)| *id).collect(),
            session_timeout_ms: u32::try_from(session_timeout.as_millis()).unwrap_or(u32::MAX),
            first_server: rng.gen_range(0..servers.len().max(1)),
        };
        ZkSession {
            core: ClientCore::new(config, now_ms),
            servers: servers.to_vec(),
            generation: 0,
            tx: None,
            new_session_at_ms: None,
        }
    }

    /// The current session (NONE before the first one opens).
    pub fn session(&self) -> SessionId {
        self.core.session()
    }

    /// Whether requests can be sent now.
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// Sends `op`; its completion comes back as [`ClientEvent::Completed`].
    pub fn submit(&mut self, op: Op, now_ms: u64) -> Xid {
        self.core.submit(op, now_ms)
    }

    /// Time passes: the core's pings, timeouts and reconnects, and a new session once the
    /// delay after the last one's end is over.
    pub fn tick(&mut self, now_ms: u64) {
        self.core.tick(now_ms);
        if self.new_session_at_ms.is_some_and(|at| now_ms >= at) {
            self.new_session_at_ms = None;
            self.core.start_session(now_ms);
        }
    }

    /// What a connection reported; a stale connection's reports are dropped.
    pub fn on_connection(&mut self, event: ConnEvent, now_ms: u64) {
        match event {
            ConnEvent::Open { generation, tx } if generation == self.generation => {
                self.tx = Some(tx);
                self.core.on_connected(now_ms);
            }
            ConnEvent::Response {
                generation,
                response,
            } if generation == self.generation => self.core.on_response(response, now_ms),
            ConnEvent::Closed { generation } if generation == self.generation => {
                self.tx = None;
                self.core.on_closed(now_ms);
            }
            _ => {}
        }
    }

    /// Executes the core's transport actions — a new connection reports to `inbox`, each
    /// event wrapped by `wrap` — and returns what the application must hear, in order.
    pub fn take_events<E: Send + 'static>(
        &mut self,
        inbox: &UnboundedSender<E>,
        wrap: fn(ConnEvent) -> E,
        now_ms: u64,
    ) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        for action in self.core.take_actions() {
            match action {
                ClientAction::Connect { server } => {
                    self.generation += 1;
                    self.tx = None;
                    let addr = self
                        .servers
                        .iter()
                        .find(|(id, _)| *id == server)
                        .map(|(_, addr)| *addr)
                        .expect("a known server");
                    madsim::task::spawn(connect(addr, self.generation, inbox.clone(), wrap));
                }
                ClientAction::Send(request) => {
                    if let Some(tx) = &self.tx {
                        let _ = tx.send(request);
                    }
                }
                ClientAction::Disconnect => {
                    // Dropping the sender ends the writer; the stale reader is ignored.
                    self.generation += 1;
                    self.tx = None;
                }
                ClientAction::Deliver(event) => {
                    if let ClientEvent::SessionEnded { .. } = event {
                        self.new_session_at_ms = Some(now_ms + NEW_SESSION_DELAY_MS);
                    }
                    events.push(event);
                }
            }
        }
        events
    }
}

/// Opens a connection to an ensemble server for generation `generation` and pumps it
/// until it closes, reporting through `inbox` (each event wrapped by `wrap`). Exactly one
/// `Closed` ends every generation, opened or not.
pub async fn connect<E>(
    addr: SocketAddr,
    generation: u64,
    inbox: UnboundedSender<E>,
    wrap: fn(ConnEvent) -> E,
) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        let _ = inbox.send(wrap(ConnEvent::Closed { generation }));
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    if send_frame(&mut writer, &Hello::Client).await.is_err() {
        let _ = inbox.send(wrap(ConnEvent::Closed { generation }));
        return;
    }
    let (tx, rx) = unbounded_channel();
    madsim::task::spawn(frame_writer::<_, ClientRequest>(writer, rx));
    if inbox
        .send(wrap(ConnEvent::Open { generation, tx }))
        .is_err()
    {
        return;
    }
    while let Ok(Some(response)) = read_frame::<_, ServerResponse>(&mut reader).await {
        let event = ConnEvent::Response {
            generation,
            response,
        };
        if inbox.send(wrap(event)).is_err() {
            return;
        }
    }
    let _ = inbox.send(wrap(ConnEvent::Closed { generation }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::net::{node_addr, KIND_ZK};
    use crate::zk::client::SessionEnd;
    use crate::zk::Zxid;
    use rand::SeedableRng;

    fn connected(session: u64) -> ServerResponse {
        ServerResponse::Connected {
            session: SessionId(session),
            timeout_ms: 6000,
            zxid: Zxid(0),
        }
    }

    #[test]
    fn a_stale_connection_never_reaches_the_core_and_an_ended_session_is_renewed_after_the_delay() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(async {
            let servers: Vec<_> = (1..=3)
                .map(|n| (ServerId(n), node_addr(KIND_ZK, n as u32)))
                .collect();
            let mut rng = rand::rngs::StdRng::seed_from_u64(1);
            let mut zk = ZkSession::new(&servers, Duration::from_secs(6), &mut rng, 0);
            let (inbox, _reports) = unbounded_channel::<ConnEvent>();
            zk.tick(0);
            assert_eq!(zk.take_events(&inbox, |e| e, 0), vec![]);
            assert_eq!(zk.generation, 1, "the first tick connects");

            // An older connection's opening is not this one's: nothing goes out on it.
            let (stale_tx, mut stale_rx) = unbounded_channel();
            zk.on_connection(ConnEvent::Open { generation: 0, tx: stale_tx }, 1);
            assert_eq!(zk.take_events(&inbox, |e| e, 1), vec![]);
            assert!(stale_rx.try_recv().is_err());
            let (tx, mut rx) = unbounded_channel();
            zk.on_connection(ConnEvent::Open { generation: 1, tx }, 1);
            assert_eq!(zk.take_events(&inbox, |e| e, 1), vec![]);
            assert!(
                matches!(rx.try_recv(), Ok(ClientRequest::Connect { session, .. }) if session == SessionId::NONE),
                "the handshake goes out on the current connection"
            );

            let stale = ConnEvent::Response {
                generation: 0,
                response: connected(7),
            };
            zk.on_connection(stale, 2);
            assert!(!zk.is_connected(), "a stale answer is dropped");
            let current = ConnEvent::Response {
                generation: 1,
                response: connected(7),
            };
            zk.on_connection(current, 2);
            let events = zk.take_events(&inbox, |e| e, 2);
            assert!(
                matches!(&events[..], [ClientEvent::SessionOpen { session, new: true, .. }] if *session == SessionId(7)),
                "{events:?}"
            );
            assert!(zk.is_connected());

            // Expired: the connection is dropped, and a new session opens 200 ms later.
            let expired = ConnEvent::Response {
                generation: 1,
                response: ServerResponse::SessionExpired {
                    session: SessionId(7),
                },
            };
            zk.on_connection(expired, 10);
            let events = zk.take_events(&inbox, |e| e, 10);
            assert_eq!(
                events,
                vec![ClientEvent::SessionEnded {
                    session: SessionId(7),
                    end: SessionEnd::Expired
                }]
            );
            assert_eq!(zk.generation, 2, "disconnected");
            zk.tick(10 + NEW_SESSION_DELAY_MS - 1);
            zk.take_events(&inbox, |e| e, 10 + NEW_SESSION_DELAY_MS - 1);
            assert_eq!(zk.generation, 2, "not yet");
            zk.tick(10 + NEW_SESSION_DELAY_MS);
            zk.take_events(&inbox, |e| e, 10 + NEW_SESSION_DELAY_MS);
            assert_eq!(zk.generation, 3, "a new session connects");
            assert_eq!(zk.session(), SessionId::NONE);
        });
    }
}
