//! Framed messages over madsim's simulated TCP.
//!
//! Owns: the wire framing every node speaks — a 4-byte big-endian length, then the message
//! in postcard, a compact binary serde format (Kafka's own protocol is binary; JSON cost a
//! fifth of a run's CPU) — the [`Hello`] frame that opens every connection, naming who connects, and the
//! one batched writer every connection's sending side runs ([`write_batches`],
//! [`frame_writer`]). TCP (not madsim's datagram endpoints) because ZAB needs FIFO
//! delivery: madsim's `TcpStream` delivers every byte in order under loss and clogs, while
//! datagrams reorder and drop (see architecture.md).
//!
//! Batching: nothing is sent until a flush, and each flush costs the receiver a simulated
//! millisecond, so a writer waits for one frame, writes it and every frame already queued
//! behind it, and flushes them once.
//!
//! No flush timeout: madsim's flush hands the buffered bytes to the simulated network and
//! returns at once — a partition or a clog delays delivery, never the writer — so a timeout
//! around it could never fire (earlier copies of this loop had 10 s, 5 s or none). A dead
//! link is noticed where real systems notice it: by the reader (the stream ends) and by the
//! protocols' own timeouts (`syncLimit`, session timeouts, `request.timeout.ms`). A write
//! or flush that fails (the peer's node is gone) ends the writer.

use crate::zk::ServerId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;

/// The port every node listens on.
pub const PORT: u16 = 2181;

/// Largest frame accepted: a snapshot of a simulated tree fits easily; a corrupt length
/// does not make a reader allocate gigabytes.
pub const MAX_FRAME: usize = 64 << 20;

/// The first frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hello {
    /// A server of the ensemble, in its `incarnation`-th life.
    Peer {
        /// Who.
        from: ServerId,
        /// How many times it has started: a restarted peer's old streams are stale.
        incarnation: u64,
    },
    /// A client of the ensemble.
    Client,
    /// A broker, in its `incarnation`-th life (to another broker: follower fetches,
    /// controller requests).
    Broker {
        /// Its broker id.
        from: u32,
        /// How many times it has started.
        incarnation: u64,
    },
    /// A producer or consumer.
    KafkaClient {
        /// Its node name.
        name: String,
    },
}

/// The address of the `index`-th node (1-based) of a kind; kinds get separate /24s.
pub fn node_addr(kind: u8, index: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(
            10,
            kind,
            (index / 250) as u8,
            (index % 250 + 1) as u8,
        )),
        PORT,
    )
}

/// Address kind of ensemble servers.
pub const KIND_ZK: u8 = 1;
/// Address kind of ensemble clients.
pub const KIND_ZK_CLIENT: u8 = 2;
/// Address kind of log writers.
pub const KIND_WRITER: u8 = 3;
/// Address kind of brokers.
pub const KIND_BROKER: u8 = 4;
/// Address kind of producers.
pub const KIND_PRODUCER: u8 = 5;
/// Address kind of consumers.
pub const KIND_CONSUMER: u8 = 6;
/// Address kind of processors.
pub const KIND_PROCESSOR: u8 = 7;

thread_local! {
    /// A frame's bytes on their way in or out, kept between frames so that encoding and
    /// reading one allocates nothing (a run is one thread; a frame in use is taken out).
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Largest buffer kept between frames: a rare snapshot-sized frame is not held on to.
const SCRATCH_KEPT: usize = 1 << 20;

fn take_scratch() -> Vec<u8> {
    let mut buf = SCRATCH.with(|s| s.take());
    buf.clear();
    buf
}

fn give_scratch(buf: Vec<u8>) {
    if buf.capacity() <= SCRATCH_KEPT {
        SCRATCH.with(|s| s.set(buf));
    }
}

/// Writes one frame (not flushed): its length, then its body, in one write.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> io::Result<()> {
    let mut buf = take_scratch();
    buf.extend_from_slice(&[0; 4]);
    let mut buf = postcard::to_extend(msg, buf).map_err(io::Error::other)?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| io::Error::other("frame too large"))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    super::counters::count(|c| {
        c.frames += 1;
        c.frame_bytes += 4 + u64::from(len);
    });
    let written = w.write_all(&buf).await;
    give_scratch(buf);
    written
}

/// Writes one frame and flushes it: a connection's opening [`Hello`].
pub async fn send_frame<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    write_frame(w, msg).await?;
    super::counters::count(|c| c.flushes += 1);
    w.flush().await
}

/// Writes the frames queued on `rx` in batches, one flush per batch (see the module doc),
/// until the sender is dropped (`Ok`) or a write or flush fails (`Err`).
pub async fn write_batches<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    rx: &mut UnboundedReceiver<T>,
) -> io::Result<()> {
    while let Some(first) = rx.recv().await {
        write_frame(w, &first).await?;
        while let Ok(msg) = rx.try_recv() {
            write_frame(w, &msg).await?;
        }
        super::counters::count(|c| c.flushes += 1);
        w.flush().await?;
    }
    Ok(())
}

/// A connection's sending side: [`write_batches`], then shuts the stream down once the
/// sender is dropped; a failed write just ends it (the reading side reports the loss).
pub async fn frame_writer<W: AsyncWrite + Unpin, T: Serialize>(
    mut w: W,
    mut rx: UnboundedReceiver<T>,
) {
    if write_batches(&mut w, &mut rx).await.is_ok() {
        let _ = w.shutdown().await;
    }
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut body = take_scratch();
    body.resize(len, 0);
    let read = r.read_exact(&mut body).await;
    let msg = read.and_then(|_| {
        postcard::from_bytes(&body)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    });
    give_scratch(body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_clean_end_is_none() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(async {
            let mut buf: Vec<u8> = Vec::new();
            write_frame(
                &mut buf,
                &Hello::Peer {
                    from: ServerId(2),
                    incarnation: 3,
                },
            )
            .await
            .unwrap();
            write_frame(&mut buf, &Hello::Client).await.unwrap();
            let mut r = &buf[..];
            assert_eq!(
                read_frame::<_, Hello>(&mut r).await.unwrap(),
                Some(Hello::Peer {
                    from: ServerId(2),
                    incarnation: 3
                })
            );
            assert_eq!(
                read_frame::<_, Hello>(&mut r).await.unwrap(),
                Some(Hello::Client)
            );
            assert_eq!(read_frame::<_, Hello>(&mut r).await.unwrap(), None);
            let mut bad = &[0xff, 0xff, 0xff, 0xff][..];
            assert!(
                read_frame::<_, Hello>(&mut bad).await.is_err(),
                "an absurd length is refused"
            );
        });
    }

    /// Bytes written, and how many flushes sent them.
    #[derive(Default)]
    struct Counted {
        bytes: Vec<u8>,
        flushes: usize,
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.bytes.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            self.flushes += 1;
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn frames_queued_together_go_out_in_one_flush_until_the_sender_is_dropped() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        runtime.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            for from in 1..=3 {
                let hello = Hello::Peer {
                    from: ServerId(from),
                    incarnation: 1,
                };
                tx.send(hello).unwrap();
            }
            drop(tx);
            let mut out = Counted::default();
            write_batches(&mut out, &mut rx).await.unwrap();
            assert_eq!(out.flushes, 1, "one batch, one flush");
            let mut r = &out.bytes[..];
            for from in 1..=3 {
                let hello = read_frame::<_, Hello>(&mut r).await.unwrap().unwrap();
                assert_eq!(
                    hello,
                    Hello::Peer {
                        from: ServerId(from),
                        incarnation: 1
                    },
                    "in order"
                );
            }
            assert_eq!(read_frame::<_, Hello>(&mut r).await.unwrap(), None);
        });
    }

    /// Why the writer has no flush timeout: a clogged link delays delivery, not the flush.
    #[test]
    fn a_flush_on_a_clogged_link_returns_at_once_and_the_frame_arrives_after_the_unclog() {
        let runtime = madsim::runtime::Runtime::with_seed_and_config(2, madsim::Config::default());
        runtime.block_on(async {
            let handle = madsim::runtime::Handle::current();
            let server_addr = node_addr(KIND_ZK, 1);
            let server = handle
                .create_node()
                .name("zk-1")
                .ip(server_addr.ip())
                .build();
            let client = handle
                .create_node()
                .name("zk-client-1")
                .ip(node_addr(KIND_ZK_CLIENT, 1).ip())
                .build();
            let received = server.spawn(async move {
                let listener = madsim::net::TcpListener::bind(server_addr).await.unwrap();
                let (mut stream, _) = listener.accept().await.unwrap();
                read_frame::<_, Hello>(&mut stream).await.unwrap();
                madsim::time::Instant::now()
            });
            let (client_id, server_id) = (client.id(), server.id());
            let sent = client
                .spawn(async move {
                    madsim::time::sleep(std::time::Duration::from_millis(10)).await;
                    let mut stream = madsim::net::TcpStream::connect(server_addr).await.unwrap();
                    let net = madsim::net::NetSim::current();
                    net.clog_link(client_id, server_id);
                    let before = madsim::time::Instant::now();
                    send_frame(&mut stream, &Hello::Client).await.unwrap();
                    assert_eq!(
                        madsim::time::Instant::now(),
                        before,
                        "the flush did not wait"
                    );
                    madsim::time::sleep(std::time::Duration::from_secs(30)).await;
                    net.unclog_link(client_id, server_id);
                    (before, stream)
                })
                .await
                .unwrap();
            let received = received.await.unwrap();
            assert!(
                received >= sent.0 + std::time::Duration::from_secs(30),
                "delivered only after the unclog"
            );
        });
    }

    #[test]
    fn addresses_are_distinct_per_kind_and_index() {
        assert_ne!(node_addr(KIND_ZK, 1), node_addr(KIND_ZK_CLIENT, 1));
        assert_ne!(node_addr(KIND_ZK, 1), node_addr(KIND_ZK, 2));
        assert_eq!(node_addr(KIND_ZK, 1).to_string(), "10.1.0.2:2181");
    }
}
