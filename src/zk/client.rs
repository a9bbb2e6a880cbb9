//! A ZooKeeper client: one session over a connection that fails over between servers.
//!
//! Owns: the client side of the session protocol. It connects to one server at a time
//! (rotating through the ensemble), opens or resumes its session, tells each server the
//! newest zxid it has seen (a server behind it refuses the connection, so the client never
//! goes back in time), re-registers its watches on reconnect, pings to keep the session
//! alive, and completes every request exactly once:
//! - with the server's answer (a definite outcome);
//! - with `CONNECTIONLOSS` if the connection broke first — the outcome is **unknown**: the
//!   write may or may not have been committed;
//! - with `SESSIONEXPIRED` once the ensemble expired the session (pending writes are
//!   unknown too: they may have committed before the expiry).
//!
//! Pure: the shell opens and closes TCP connections when asked, and feeds back responses,
//! failures and ticks with the current time.

use super::proto::{ClientRequest, ServerResponse, WatchSet};
use super::types::{Op, OpError, OpResult, ServerId, SessionId, WatchedEvent, Xid, ZkError, Zxid};
use std::collections::{BTreeMap, BTreeSet};

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered.
    Done {
        /// Its answer.
        result: Result<OpResult, OpError>,
        /// The zxid of the answer.
        zxid: Zxid,
    },
    /// The answer never came: the request may or may not have taken effect.
    Unknown {
        /// Why: `CONNECTIONLOSS` or `SESSIONEXPIRED`.
        error: ZkError,
    },
    /// Not sent: the client had no session to send it on.
    NotSent {
        /// Why.
        error: ZkError,
    },
}

/// What the shell must do, or tell the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Open a TCP connection to this server, then call `on_connected` (or `on_closed`).
    Connect {
        /// The server.
        server: ServerId,
    },
    /// Send on the open connection.
    Send(ClientRequest),
    /// Close the open connection.
    Disconnect,
    /// Tell the application.
    Deliver(ClientEvent),
}

/// What the client tells its application, in the order it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A request finished.
    Completed {
        /// The request id.
        xid: Xid,
        /// The operation.
        op: Op,
        /// How it ended.
        outcome: Outcome,
    },
    /// A watch fired.
    Watch {
        /// What happened.
        event: WatchedEvent,
        /// The server's zxid when it fired.
        zxid: Zxid,
    },
    /// The session is open (new or resumed) on this server.
    SessionOpen {
        /// The session.
        session: SessionId,
        /// The negotiated timeout.
        timeout_ms: u32,
        /// The server.
        server: ServerId,
        /// The server's zxid.
        zxid: Zxid,
        /// Whether it is a new session.
        new: bool,
    },
    /// The session is gone for this client.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// How.
        end: SessionEnd,
    },
}

/// How a session ended for its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Our close was committed.
    Closed,
    /// The ensemble told us it expired.
    Expired,
    /// We gave it up: our close's connection broke, so whether the close was committed is
    /// unknown. Nobody said it expired; if the close was not committed, the ensemble
    /// expires it after its timeout (ZooKeeper's client `close()` does the same).
    Abandoned,
}

impl SessionEnd {
    /// The name the history records.
    pub fn name(self) -> &'static str {
        match self {
            SessionEnd::Closed => "closed",
            SessionEnd::Expired => "expired",
            SessionEnd::Abandoned => "abandoned",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Disconnected {
        retry_at_ms: u64,
    },
    Connecting {
        server: ServerId,
        since_ms: u64,
    },
    Handshaking {
        server: ServerId,
        since_ms: u64,
    },
    Connected {
        server: ServerId,
    },
    /// The session ended; `start_session` opens a new one.
    Ended,
}

/// A client's configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The ensemble.
    pub servers: Vec<ServerId>,
    /// The session timeout to ask for.
    pub session_timeout_ms: u32,
    /// Which server to try first (rotates from there).
    pub first_server: usize,
}

/// One client session.
pub struct ClientCore {
    config: ClientConfig,
    state: State,
    session: SessionId,
    timeout_ms: u32,
    last_zxid: Zxid,
    next_server: usize,
    next_xid: u64,
    pending: BTreeMap<Xid, Op>,
    closing: Option<Xid>,
    data_watches: BTreeSet<String>,
    exist_watches: BTreeSet<String>,
    child_watches: BTreeSet<String>,
    last_sent_ms: u64,
    last_heard_ms: u64,
    out: Vec<ClientAction>,
}

/// Pause between connection attempts.
const RETRY_MS: u64 = 100;

impl ClientCore {
    /// A client that starts connecting at once.
    pub fn new(config: ClientConfig, now_ms: u64) -> ClientCore {
        let timeout_ms = config.session_timeout_ms;
        let next_server = config.first_server % config.servers.len().max(1);
        ClientCore {
            config,
            state: State::Disconnected {
                retry_at_ms: now_ms,
            },
            session: SessionId::NONE,
            timeout_ms,
            last_zxid: Zxid::ZERO,
            next_server,
            next_xid: 1,
            pending: BTreeMap::new(),
            closing: None,
            data_watches: BTreeSet::new(),
            exist_watches: BTreeSet::new(),
            child_watches: BTreeSet::new(),
            last_sent_ms: now_ms,
            last_heard_ms: now_ms,
            out: Vec::new(),
        }
    }

    /// What to do, in order.
    pub fn take_actions(&mut self) -> Vec<ClientAction> {
        std::mem::take(&mut self.out)
    }

    fn deliver(&mut self, event: ClientEvent) {
        self.out.push(ClientAction::Deliver(event));
    }

    /// The session (NONE before the first one opens).
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The newest zxid seen.
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    /// Whether requests can be sent now.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { .. })
    }

    /// Whether the session ended (a new one needs `start_session`).
    pub fn has_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// After the session ended: start over with a new session.
    pub fn start_session(&mut self, now_ms: u64) {
        if self.state == State::Ended {
            self.session = SessionId::NONE;
            self.timeout_ms = self.config.session_timeout_ms;
            self.data_watches.clear();
            self.exist_watches.clear();
            self.child_watches.clear();
            self.state = State::Disconnected {
                retry_at_ms: now_ms,
            };
            self.tick(now_ms);
        }
    }

    /// Sends `op`; its completion comes back as [`ClientEvent::Completed`].
    pub fn submit(&mut self, op: Op, now_ms: u64) -> Xid {
        let xid = Xid(self.next_xid);
        self.next_xid += 1;
        if !self.is_connected() || self.closing.is_some() {
            let error = if self.state == State::Ended {
                ZkError::SessionExpired
            } else {
                ZkError::ConnectionLoss
            };
            self.deliver(ClientEvent::Completed {
                xid,
                op,
                outcome: Outcome::NotSent { error },
            });
            return xid;
        }
        if op == Op::CloseSession {
            self.closing = Some(xid);
        }
        self.pending.insert(xid, op.clone());
        self.last_sent_ms = now_ms;
        self.out
            .push(ClientAction::Send(ClientRequest::Request { xid, op }));
        xid
    }

    /// Time passes: pings, dead-connection detection, reconnects.
    pub fn tick(&mut self, now_ms: u64) {
        let timeout = u64::from(self.timeout_ms);
        match self.state {
            State::Disconnected { retry_at_ms } if now_ms >= retry_at_ms => {
                let server = self.config.servers[self.next_server];
                self.next_server = (self.next_server + 1) % self.config.servers.len();
                self.state = State::Connecting {
                    server,
                    since_ms: now_ms,
                };
                self.out.push(ClientAction::Connect { server });
            }
            State::Connecting { since_ms, .. } | State::Handshaking { since_ms, .. } => {
                // ZooKeeper gives each server a share of the session timeout to answer.
                let share = (timeout / self.config.servers.len() as u64).max(RETRY_MS);
                if now_ms.saturating_sub(since_ms) > share {
                    self.lost(now_ms);
                }
            }
            State::Connected { .. } => {
                if now_ms.saturating_sub(self.last_heard_ms) > timeout * 2 / 3 {
                    self.lost(now_ms);
                } else if now_ms.saturating_sub(self.last_sent_ms) >= timeout / 3 {
                    self.last_sent_ms = now_ms;
                    self.out.push(ClientAction::Send(ClientRequest::Ping));
                }
            }
            _ => {}
        }
    }

    /// The TCP connection asked for is open: say who we are.
    pub fn on_connected(&mut self, now_ms: u64) {
        let State::Connecting { server, .. } = self.state else {
            return;
        };
        self.state = State::Handshaking {
            server,
            since_ms: now_ms,
        };
        self.last_heard_ms = now_ms;
        let watches = WatchSet {
            data: self.data_watches.iter().cloned().collect(),
            exist: self.exist_watches.iter().cloned().collect(),
            child: self.child_watches.iter().cloned().collect(),
        };
        self.out.push(ClientAction::Send(ClientRequest::Connect {
            session: self.session,
            timeout_ms: self.timeout_ms,
            last_zxid: self.last_zxid,
            watches,
        }));
    }

    /// The connection could not be opened, or broke.
    pub fn on_closed(&mut self, now_ms: u64) {
        if matches!(
            self.state,
            State::Connecting { .. } | State::Handshaking { .. } | State::Connected { .. }
        ) {
            self.lost(now_ms);
        }
    }

    /// Every request in flight is of unknown outcome; try the next server.
    fn lost(&mut self, now_ms: u64) {
        self.out.push(ClientAction::Disconnect);
        for (xid, op) in std::mem::take(&mut self.pending) {
            self.deliver(ClientEvent::Completed {
                xid,
                op,
                outcome: Outcome::Unknown {
                    error: ZkError::ConnectionLoss,
                },
            });
        }
        if self.closing.take().is_some() {
            // Our close may or may not have been committed; the session is abandoned.
            self.end(SessionEnd::Abandoned);
            return;
        }
        self.state = State::Disconnected {
            retry_at_ms: now_ms + RETRY_MS,
        };
    }

    fn end(&mut self, end: SessionEnd) {
        if self.session != SessionId::NONE {
            self.deliver(ClientEvent::SessionEnded {
                session: self.session,
                end,
            });
        }
        self.state = State::Ended;
    }

    /// A message from the server.
    pub fn on_response(&mut self, response: ServerResponse, now_ms: u64) {
        self.last_heard_ms = now_ms;
        match response {
            ServerResponse::Connected {
                session,
                timeout_ms,
                zxid,
            } => {
                let State::Handshaking { server, .. } = self.state else {
                    return;
                };
                let new = self.session == SessionId::NONE;
                self.session = session;
                self.timeout_ms = timeout_ms;
                self.last_zxid = self.last_zxid.max(zxid);
                self.state = State::Connected { server };
                self.deliver(ClientEvent::SessionOpen {
                    session,
                    timeout_ms,
                    server,
                    zxid,
                    new,
                });
            }
            ServerResponse::Refused { .. } => self.lost(now_ms),
            ServerResponse::SessionExpired { .. } => {
                self.out.push(ClientAction::Disconnect);
                for (xid, op) in std::mem::take(&mut self.pending) {
                    self.deliver(ClientEvent::Completed {
                        xid,
                        op,
                        outcome: Outcome::Unknown {
                            error: ZkError::SessionExpired,
                        },
                    });
                }
                self.closing = None;
                self.end(SessionEnd::Expired);
            }
            ServerResponse::Reply { xid, zxid, result } => {
                self.last_zxid = self.last_zxid.max(zxid);
                let Some(op) = self.pending.remove(&xid) else {
                    return;
                };
                if result.is_ok() || matches!(op, Op::Exists { .. }) {
                    match &op {
                        Op::GetData { path, watch: true } => {
                            self.data_watches.insert(path.clone());
                        }
                        Op::Exists { path, watch: true } => {
                            self.exist_watches.insert(path.clone());
                        }
                        Op::GetChildren { path, watch: true } => {
                            self.child_watches.insert(path.clone());
                        }
                        _ => {}
                    }
                }
                let closed = self.closing == Some(xid) && result.is_ok();
                self.deliver(ClientEvent::Completed {
                    xid,
                    op,
                    outcome: Outcome::Done { result, zxid },
                });
                if closed {
                    self.closing = None;
                    self.out.push(ClientAction::Disconnect);
                    self.end(SessionEnd::Closed);
                }
            }
            ServerResponse::Watch { zxid, event } => {
                self.last_zxid = self.last_zxid.max(zxid);
                self.data_watches.remove(&event.path);
                self.exist_watches.remove(&event.path);
                if matches!(
                    event.event,
                    super::types::EventType::NodeChildrenChanged
                        | super::types::EventType::NodeDeleted
                ) {
                    self.child_watches.remove(&event.path);
                }
                self.deliver(ClientEvent::Watch { event, zxid });
            }
            ServerResponse::Pong { zxid } => {
                self.last_zxid = self.last_zxid.max(zxid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::types::{CreateMode, EventType, Stat};

    fn client() -> ClientCore {
        let config = ClientConfig {
            servers: vec![ServerId(1), ServerId(2), ServerId(3)],
            session_timeout_ms: 3_000,
            first_server: 1,
        };
        ClientCore::new(config, 0)
    }

    fn open(c: &mut ClientCore) {
        c.tick(0);
        c.on_connected(1);
        c.on_response(
            ServerResponse::Connected {
                session: SessionId(7),
                timeout_ms: 3_000,
                zxid: Zxid(5),
            },
            2,
        );
        c.take_actions();
    }

    #[test]
    fn connects_to_its_first_server_then_asks_for_a_new_session() {
        let mut c = client();
        c.tick(0);
        assert_eq!(
            c.take_actions(),
            vec![ClientAction::Connect {
                server: ServerId(2)
            }]
        );
        c.on_connected(1);
        let actions = c.take_actions();
        assert!(matches!(
            &actions[0],
            ClientAction::Send(ClientRequest::Connect {
                session: SessionId(0),
                last_zxid: Zxid(0),
                ..
            })
        ));
        c.on_response(
            ServerResponse::Connected {
                session: SessionId(7),
                timeout_ms: 3_000,
                zxid: Zxid(5),
            },
            2,
        );
        assert!(matches!(
            c.take_actions()[0],
            ClientAction::Deliver(ClientEvent::SessionOpen { new: true, .. })
        ));
        assert_eq!(c.last_zxid(), Zxid(5));
    }

    #[test]
    fn a_broken_connection_makes_pending_writes_unknown_and_resumes_the_session_elsewhere() {
        let mut c = client();
        open(&mut c);
        let xid = c.submit(
            Op::SetData {
                path: "/r".into(),
                data: vec![1],
                version: 3,
            },
            10,
        );
        c.on_closed(20);
        let actions = c.take_actions();
        assert!(
            actions.contains(&ClientAction::Deliver(ClientEvent::Completed {
                xid,
                op: Op::SetData {
                    path: "/r".into(),
                    data: vec![1],
                    version: 3
                },
                outcome: Outcome::Unknown {
                    error: ZkError::ConnectionLoss
                }
            }))
        );
        c.tick(20 + RETRY_MS);
        assert_eq!(
            c.take_actions(),
            vec![ClientAction::Connect {
                server: ServerId(3)
            }],
            "the next server"
        );
        c.on_connected(200);
        assert!(
            matches!(
                &c.take_actions()[0],
                ClientAction::Send(ClientRequest::Connect {
                    session: SessionId(7),
                    last_zxid: Zxid(5),
                    ..
                })
            ),
            "same session, last zxid seen"
        );
    }

    #[test]
    fn a_refusal_moves_on_to_another_server() {
        let mut c = client();
        c.tick(0);
        c.on_connected(1);
        c.on_response(
            ServerResponse::Refused {
                reason: "behind".into(),
            },
            2,
        );
        assert!(c.take_actions().contains(&ClientAction::Disconnect));
        c.tick(2 + RETRY_MS);
        assert_eq!(
            c.take_actions(),
            vec![ClientAction::Connect {
                server: ServerId(3)
            }]
        );
    }

    #[test]
    fn expiry_ends_the_session_and_a_new_one_can_start() {
        let mut c = client();
        open(&mut c);
        c.on_response(
            ServerResponse::SessionExpired {
                session: SessionId(7),
            },
            50,
        );
        assert!(c
            .take_actions()
            .contains(&ClientAction::Deliver(ClientEvent::SessionEnded {
                session: SessionId(7),
                end: SessionEnd::Expired
            })));
        assert!(c.has_ended());
        let xid = c.submit(
            Op::GetData {
                path: "/".into(),
                watch: false,
            },
            60,
        );
        assert!(
            matches!(&c.take_actions()[0], ClientAction::Deliver(ClientEvent::Completed { xid: x, outcome: Outcome::NotSent { error: ZkError::SessionExpired }, .. }) if *x == xid)
        );
        c.start_session(70);
        assert!(matches!(c.take_actions()[0], ClientAction::Connect { .. }));
        assert_eq!(c.session(), SessionId::NONE);
    }

    #[test]
    fn pings_keep_the_session_alive_and_silence_drops_the_connection() {
        let mut c = client();
        open(&mut c);
        c.tick(1_000);
        assert_eq!(
            c.take_actions(),
            vec![ClientAction::Send(ClientRequest::Ping)]
        );
        c.on_response(ServerResponse::Pong { zxid: Zxid(9) }, 1_001);
        assert_eq!(c.last_zxid(), Zxid(9));
        c.tick(1_001 + 2_001);
        assert!(
            c.take_actions().contains(&ClientAction::Disconnect),
            "no word for 2/3 of the timeout"
        );
    }

    #[test]
    fn watches_are_kept_until_they_fire_and_re_registered_on_reconnect() {
        let mut c = client();
        open(&mut c);
        let xid = c.submit(
            Op::GetData {
                path: "/w".into(),
                watch: true,
            },
            10,
        );
        c.on_response(
            ServerResponse::Reply {
                xid,
                zxid: Zxid(6),
                result: Ok(OpResult::Data {
                    data: vec![],
                    stat: Stat::default(),
                }),
            },
            11,
        );
        c.on_closed(12);
        c.tick(12 + RETRY_MS);
        c.on_connected(300);
        let actions = c.take_actions();
        assert!(actions.iter().any(|a| matches!(a, ClientAction::Send(ClientRequest::Connect { watches, .. }) if watches.data == vec!["/w".to_string()])));
        c.on_response(
            ServerResponse::Watch {
                zxid: Zxid(8),
                event: WatchedEvent {
                    event: EventType::NodeDataChanged,
                    path: "/w".into(),
                },
            },
            301,
        );
        assert!(c.data_watches.is_empty(), "one-shot");
        let _ = CreateMode::Persistent;
    }

    /// A close whose connection breaks is of unknown outcome: the client gives the session
    /// up, but nobody told it the session expired. (Found by swarm seed 675: recorded as
    /// `expired`, it made zk-ephemeral-lifetime flag a session whose close was never
    /// committed before the run ended.)
    #[test]
    fn a_close_lost_with_its_connection_abandons_the_session() {
        let mut c = client();
        open(&mut c);
        c.submit(Op::CloseSession, 10);
        c.take_actions();
        c.on_closed(20);
        assert!(c
            .take_actions()
            .contains(&ClientAction::Deliver(ClientEvent::SessionEnded {
                session: SessionId(7),
                end: SessionEnd::Abandoned
            })));
        assert!(c.has_ended());
    }

    #[test]
    fn closing_the_session_ends_it() {
        let mut c = client();
        open(&mut c);
        let xid = c.submit(Op::CloseSession, 10);
        c.on_response(
            ServerResponse::Reply {
                xid,
                zxid: Zxid(7),
                result: Ok(OpResult::Closed),
            },
            11,
        );
        assert!(c
            .take_actions()
            .contains(&ClientAction::Deliver(ClientEvent::SessionEnded {
                session: SessionId(7),
                end: SessionEnd::Closed
            })));
        assert!(c.has_ended());
    }
}
