//! madsim's floor (`ksim bench-floor`, hidden): the same number of frames, flushes, timers
//! and disk calls a ksim run asked of madsim, replayed on bare madsim with no protocol work
//! on top, so `ksim bench` can state ksim's cost as a multiple of the runtime's own.
//!
//! Owns: the floor's load ([`FloorLoad`]) and its one run ([`run_floor`]). Every node
//! listens for one TCP stream and reads whole frames off it (length prefix, then the
//! body: a copy, no decoding); every node writes frames of the mean size to the next node
//! in a ring, flushing them in as many batches as ksim flushed; every node owns a
//! [`SimDisk`] and reads, appends and fsyncs a file through it. The work is spread evenly
//! over `timers` ticks, each one `sleep_until`, so the floor arms as many timers as ksim's
//! shells did. The fsyncs' simulated cost is dropped, not slept (ksim's sleeps for it are
//! among its counted timers).

use crate::disk::{Disk, DiskFile, SimDisk, SimDiskConfig};
use crate::node::counters;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the floor replays: totals over one run of `sim_ms` simulated milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FloorLoad {
    /// Nodes on the runtime.
    pub nodes: u64,
    /// Simulated duration.
    pub sim_ms: u64,
    /// Frames written, and their bytes (length prefixes included).
    pub frames: u64,
    /// Bytes of all frames.
    pub frame_bytes: u64,
    /// Stream flushes.
    pub flushes: u64,
    /// Timers armed.
    pub timers: u64,
    /// Disk reads, and the bytes they asked for.
    pub disk_reads: u64,
    /// Bytes of all reads.
    pub disk_read_bytes: u64,
    /// Disk writes, and their bytes.
    pub disk_writes: u64,
    /// Bytes of all writes.
    pub disk_write_bytes: u64,
    /// File and directory syncs.
    pub disk_syncs: u64,
}

/// Port of the floor's listeners.
const PORT: u16 = 9092;

fn addr(node: u64) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(
            10,
            99,
            (node / 250) as u8,
            (node % 250 + 1) as u8,
        )),
        PORT,
    )
}

/// `total` spread over `ticks`: how much is due by tick `k` (1-based), cumulative.
fn due(total: u64, k: u64, ticks: u64) -> u64 {
    (u128::from(total) * u128::from(k) / u128::from(ticks.max(1))) as u64
}

/// One node's share of `total` (node `i` of `n`; the first ones take the remainder).
fn share(total: u64, i: u64, n: u64) -> u64 {
    total / n + u64::from(i < total % n)
}

/// Runs the floor on a fresh madsim runtime seeded with `seed`, node disks under `dir`.
/// Returns what it did, counted like a ksim run (the same [`counters`]).
pub fn run_floor(load: &FloorLoad, dir: &Path, seed: u64) -> io::Result<FloorLoad> {
    crate::report::run_dir::prepare(dir).map_err(io::Error::other)?;
    let load = load.clone();
    let dir = dir.to_path_buf();
    std::thread::Builder::new()
        .name("ksim-floor".into())
        .stack_size(64 << 20)
        .spawn(move || on_this_thread(load, dir, seed))?
        .join()
        .map_err(|_| io::Error::other("the floor's thread panicked"))?
}

fn on_this_thread(load: FloorLoad, dir: PathBuf, seed: u64) -> io::Result<FloorLoad> {
    counters::take();
    crate::disk::calls::take();
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let handle = runtime.handle().clone();
    let load_in = load.clone();
    let drove: io::Result<()> = runtime.block_on(async move {
        let n = load_in.nodes.max(2);
        let mut drivers = Vec::new();
        for i in 0..n {
            let node = handle
                .create_node()
                .name(format!("floor-{i}"))
                .ip(addr(i).ip())
                .build();
            let disk = SimDisk::new(
                dir.join(format!("floor-{i}")),
                seed ^ i,
                SimDiskConfig::default(),
            )?;
            node.spawn(listen(addr(i)));
            let load = load_in.clone();
            drivers.push(node.spawn(drive(load, i, n, disk)));
        }
        for driver in drivers {
            driver
                .await
                .map_err(|_| io::Error::other("a floor node panicked"))??;
        }
        Ok(())
    });
    drove?;
    let shell = counters::take();
    let disk = crate::disk::calls::take();
    Ok(FloorLoad {
        nodes: load.nodes.max(2),
        sim_ms: load.sim_ms,
        frames: shell.frames,
        frame_bytes: shell.frame_bytes,
        flushes: shell.flushes,
        timers: shell.timers,
        disk_reads: disk.reads,
        disk_read_bytes: disk.read_bytes,
        disk_writes: disk.writes,
        disk_write_bytes: disk.write_bytes,
        disk_syncs: disk.syncs + disk.dir_syncs,
    })
}

/// Accepts streams and reads whole frames off each until it ends.
async fn listen(at: SocketAddr) {
    let Ok(listener) = madsim::net::TcpListener::bind(at).await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        madsim::task::spawn(async move {
            let mut len = [0u8; 4];
            while stream.read_exact(&mut len).await.is_ok() {
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if stream.read_exact(&mut body).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Node `i`'s share of the load, spread over its ticks.
async fn drive(load: FloorLoad, i: u64, n: u64, disk: SimDisk) -> io::Result<()> {
    // Let every listener bind before connecting (one timer more than ksim's count).
    crate::node::sleep(Duration::from_millis(1)).await;
    let start = madsim::time::Instant::now();
    let mut stream = madsim::net::TcpStream::connect(addr((i + 1) % n)).await?;
    let mut file = disk.create(Path::new("data"))?;
    let body_bytes = (load.frame_bytes / load.frames.max(1)).saturating_sub(4) as usize;
    let mut frame = vec![0x5a_u8; 4 + body_bytes];
    frame[..4].copy_from_slice(&(body_bytes as u32).to_be_bytes());
    let read_len = (load.disk_read_bytes / load.disk_reads.max(1)) as usize;
    let write_len = (load.disk_write_bytes / load.disk_writes.max(1)) as usize;
    let mut read_buf = vec![0u8; read_len];
    let write_buf = vec![0xa5_u8; write_len];
    let [frames, flushes, reads, writes, syncs] = [
        load.frames,
        load.flushes,
        load.disk_reads,
        load.disk_writes,
        load.disk_syncs,
    ]
    .map(|total| share(total, i, n));
    let ticks = share(load.timers, i, n).max(1);
    let period = Duration::from_millis(load.sim_ms).div_f64(ticks as f64);
    let mut done = [0u64; 5];
    let mut position = 0u64;
    for k in 1..=ticks {
        crate::node::sleep_until(start + period.mul_f64(k as f64)).await;
        let now = [frames, flushes, reads, writes, syncs].map(|total| due(total, k, ticks));
        let [new_frames, new_flushes, new_reads, new_writes, new_syncs] =
            [0, 1, 2, 3, 4].map(|j| now[j] - done[j]);
        done = now;
        // Frames, in as many flushed batches as are due (the rest wait for a later flush).
        for batch in 0..new_flushes.max(1) {
            let count = share(new_frames, batch, new_flushes.max(1));
            for _ in 0..count {
                counters::count(|c| {
                    c.frames += 1;
                    c.frame_bytes += frame.len() as u64;
                });
                stream.write_all(&frame).await?;
            }
            if new_flushes > 0 {
                counters::count(|c| c.flushes += 1);
                stream.flush().await?;
            }
        }
        for _ in 0..new_writes {
            file.append(&write_buf)?;
        }
        for _ in 0..new_reads {
            let len = file.len();
            position = (position + 4096) % len.max(1);
            file.read_at(
                position.min(len.saturating_sub(read_len as u64)),
                &mut read_buf,
            )?;
        }
        for _ in 0..new_syncs {
            file.sync()?;
        }
        disk.take_sync_debt();
    }
    stream.shutdown().await
}
