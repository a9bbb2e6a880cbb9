//! Kafka traffic over madsim's TCP: request/response connections between clients and
//! brokers and between brokers.
//!
//! Owns: the accept side ([`serve`]: every connection's requests go to the node's inbox
//! tagged with a connection id, and the node answers through that connection's sender)
//! and the connect side ([`open_link`]: one connection to one broker, tagged with a
//! caller-chosen link key and a generation so that events of a replaced connection are
//! recognised and ignored). Frames and the batched writer are `net`'s.
//! A connection that breaks is reported once; what was in flight on it is the caller's to
//! retry. No protocol decisions here.

use super::net::{frame_writer, read_frame, send_frame, Hello};
use crate::broker::proto::{Request, Response};
use madsim::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// What the accept side reports.
#[derive(Debug)]
pub enum ServerEvent {
    /// A connection opened; answer its requests through `tx`.
    Open {
        /// The connection's id, unique in this process.
        conn: u64,
        /// Who connected.
        hello: Hello,
        /// Responses go here.
        tx: UnboundedSender<Response>,
    },
    /// A request arrived.
    Request {
        /// The connection.
        conn: u64,
        /// The request.
        request: Request,
    },
    /// The connection closed.
    Closed {
        /// The connection.
        conn: u64,
    },
}

/// What the connect side reports.
#[derive(Debug)]
pub enum LinkEvent {
    /// The connection is up; send requests through `tx`.
    Open {
        /// The caller's key (e.g. a broker id).
        link: u64,
        /// The generation asked for.
        generation: u64,
        /// Requests go here.
        tx: UnboundedSender<Request>,
    },
    /// A response arrived.
    Response {
        /// The caller's key.
        link: u64,
        /// The generation.
        generation: u64,
        /// The response.
        response: Response,
    },
    /// The connection failed to open, or closed.
    Closed {
        /// The caller's key.
        link: u64,
        /// The generation.
        generation: u64,
    },
}

/// Accepts connections on `listener` until the node dies, reporting through `inbox`
/// (each event wrapped by `wrap`).
pub async fn serve<E: Send + 'static>(
    listener: TcpListener,
    inbox: UnboundedSender<E>,
    wrap: fn(ServerEvent) -> E,
) {
    let next_conn = Arc::new(AtomicU64::new(1));
    while let Ok((stream, _)) = listener.accept().await {
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        madsim::task::spawn(serve_connection(stream, conn, inbox.clone(), wrap));
    }
}

async fn serve_connection<E: Send + 'static>(
    stream: TcpStream,
    conn: u64,
    inbox: UnboundedSender<E>,
    wrap: fn(ServerEvent) -> E,
) {
    let (mut reader, writer) = tokio::io::split(stream);
    let Ok(Some(hello)) = read_frame::<_, Hello>(&mut reader).await else {
        return;
    };
    let (tx, rx) = unbounded_channel();
    madsim::task::spawn(frame_writer::<_, Response>(writer, rx));
    if inbox
        .send(wrap(ServerEvent::Open { conn, hello, tx }))
        .is_err()
    {
        return;
    }
    while let Ok(Some(request)) = read_frame::<_, Request>(&mut reader).await {
        if inbox
            .send(wrap(ServerEvent::Request { conn, request }))
            .is_err()
        {
            return;
        }
    }
    let _ = inbox.send(wrap(ServerEvent::Closed { conn }));
}

/// Opens one connection to `addr` for (`link`, `generation`) and pumps its responses
/// into `inbox` until it closes. Exactly one `Closed` ends every generation that was
/// asked for, opened or not.
pub fn open_link<E: Send + 'static>(
    link: u64,
    generation: u64,
    addr: SocketAddr,
    hello: Hello,
    inbox: UnboundedSender<E>,
    wrap: fn(LinkEvent) -> E,
) {
    madsim::task::spawn(async move {
        let closed = LinkEvent::Closed { link, generation };
        let Ok(stream) = TcpStream::connect(addr).await else {
            let _ = inbox.send(wrap(closed));
            return;
        };
        let (mut reader, mut writer) = tokio::io::split(stream);
        if send_frame(&mut writer, &hello).await.is_err() {
            let _ = inbox.send(wrap(closed));
            return;
        }
        let (tx, rx) = unbounded_channel();
        madsim::task::spawn(frame_writer::<_, Request>(writer, rx));
        if inbox
            .send(wrap(LinkEvent::Open {
                link,
                generation,
                tx,
            }))
            .is_err()
        {
            return;
        }
        while let Ok(Some(response)) = read_frame::<_, Response>(&mut reader).await {
            let event = LinkEvent::Response {
                link,
                generation,
                response,
            };
            if inbox.send(wrap(event)).is_err() {
                return;
            }
        }
        let _ = inbox.send(wrap(closed));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::proto::{RequestBody, ResponseBody};
    use crate::node::net::{node_addr, KIND_BROKER, KIND_PRODUCER};
    use std::time::Duration;

    #[derive(Debug)]
    enum Ev {
        Server(ServerEvent),
        Link(LinkEvent),
    }

    #[test]
    fn a_link_carries_requests_and_responses_and_reports_the_close() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(3, madsim::Config::default());
        runtime.block_on(async {
            let handle = madsim::runtime::Handle::current();
            let broker = node_addr(KIND_BROKER, 1);
            let server = handle
                .create_node()
                .name("broker-1")
                .ip(broker.ip())
                .build();
            // The broker answers every request with an empty Metadata.
            server.spawn(async move {
                let listener = TcpListener::bind(broker).await.unwrap();
                let (tx, mut rx) = unbounded_channel();
                madsim::task::spawn(serve(listener, tx, Ev::Server));
                let mut sender = None;
                while let Some(Ev::Server(event)) = rx.recv().await {
                    match event {
                        ServerEvent::Open { hello, tx, .. } => {
                            assert_eq!(
                                hello,
                                Hello::KafkaClient {
                                    name: "producer-1".into()
                                }
                            );
                            sender = Some(tx);
                        }
                        ServerEvent::Request { request, .. } => {
                            let body = ResponseBody::Metadata {
                                controller: None,
                                brokers: vec![],
                                partitions: vec![],
                            };
                            let response = Response {
                                correlation_id: request.correlation_id,
                                body,
                            };
                            sender.as_ref().unwrap().send(response).unwrap();
                        }
                        ServerEvent::Closed { .. } => {}
                    }
                }
            });
            let client_addr = node_addr(KIND_PRODUCER, 1);
            let client = handle
                .create_node()
                .name("producer-1")
                .ip(client_addr.ip())
                .build();
            let server_id = server.id();
            madsim::task::spawn(async move {
                crate::node::sleep(Duration::from_secs(1)).await;
                madsim::runtime::Handle::current().kill(server_id);
            });
            let seen = client
                .spawn(async move {
                    crate::node::sleep(Duration::from_millis(10)).await;
                    let (tx, mut rx) = unbounded_channel();
                    let hello = Hello::KafkaClient {
                        name: "producer-1".into(),
                    };
                    open_link(1, 7, broker, hello, tx, Ev::Link);
                    let mut seen = Vec::new();
                    while let Some(Ev::Link(event)) = rx.recv().await {
                        match event {
                            LinkEvent::Open { tx, .. } => {
                                for id in [10, 11] {
                                    let body = RequestBody::Metadata { topics: vec![] };
                                    let request = Request {
                                        correlation_id: id,
                                        body,
                                    };
                                    tx.send(request).unwrap();
                                }
                                std::mem::forget(tx);
                            }
                            LinkEvent::Response {
                                response,
                                generation,
                                ..
                            } => {
                                seen.push((generation, response.correlation_id));
                            }
                            LinkEvent::Closed { generation, .. } => {
                                seen.push((generation, 0));
                                break;
                            }
                        }
                    }
                    seen
                })
                .await
                .unwrap();
            assert_eq!(seen, vec![(7, 10), (7, 11), (7, 0)]);
        });
    }
}
