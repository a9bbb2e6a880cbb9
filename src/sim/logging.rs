//! Per-run logs: tracing output of one seed, stamped with simulated time and node name,
//! filtered by `RUST_LOG`, written to `<run>/ksim.log`.
//!
//! Owns: the thread-local subscriber a run thread installs. Each seed runs on its own OS
//! thread with its own subscriber, so parallel seeds of a sweep never share a log.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Default filter: ksim's own info lines; madsim's internals off.
const DEFAULT_FILTER: &str = "info,madsim=off";

/// Timestamps log lines with simulated seconds since the run started.
struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let us = crate::node::recorder::sim_now_us();
        write!(w, "{:>4}.{:06}s", us / 1_000_000, us % 1_000_000)
    }
}

/// A buffered log file shared by the subscriber and the run (which flushes it at the end).
#[derive(Clone)]
pub struct LogFile(Arc<Mutex<BufWriter<File>>>);

impl LogFile {
    /// Flushes buffered lines to the file.
    pub fn flush(&self) {
        if let Ok(mut w) = self.0.lock() {
            let _ = w.flush();
        }
    }
}

/// One writer handle per log line.
pub struct LogLine(LogFile);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0 .0.lock() {
            Ok(mut w) => w.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(self.clone())
    }
}

/// Installs a subscriber writing to `path` on this thread; keep the guard for the run.
pub fn install(path: &Path) -> io::Result<(LogFile, tracing::subscriber::DefaultGuard)> {
    let file = LogFile(Arc::new(Mutex::new(BufWriter::new(File::create(path)?))));
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(file.clone())
        .with_ansi(false)
        .with_timer(SimTime)
        .with_target(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    Ok((file, guard))
}
