//! Framed messages over madsim's simulated TCP.
//!
//! Owns: the wire framing every node speaks — a 4-byte big-endian length, then a JSON
//! document — and the [`Hello`] frame that opens every connection, naming who connects.
//! TCP (not madsim's datagram endpoints) because ZAB needs FIFO delivery: madsim's
//! `TcpStream` delivers every byte in order under loss and clogs, while datagrams reorder
//! and drop (see architecture.md). Nothing is sent until a flush, and each flush costs the
//! receiver a simulated millisecond, so writers batch every queued frame into one flush.

use crate::zk::ServerId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The port every node listens on.
pub const PORT: u16 = 2181;

/// Largest frame accepted: a snapshot of a simulated tree fits easily; a corrupt length
/// does not make a reader allocate gigabytes.
pub const MAX_FRAME: usize = 64 << 20;

/// The first frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "hello", rename_all = "kebab-case")]
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

/// Writes one frame (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await
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
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
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

    #[test]
    fn addresses_are_distinct_per_kind_and_index() {
        assert_ne!(node_addr(KIND_ZK, 1), node_addr(KIND_ZK_CLIENT, 1));
        assert_ne!(node_addr(KIND_ZK, 1), node_addr(KIND_ZK, 2));
        assert_eq!(node_addr(KIND_ZK, 1).to_string(), "10.1.0.2:2181");
    }
}
