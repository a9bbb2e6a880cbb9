//! Per-run logs: tracing output of one seed, stamped with simulated time and node name,
//! filtered by `RUST_LOG`, written to `<run>/ksim.log`.
//!
//! Owns: the thread-local subscriber a run thread installs, and [`RunLog`], where its lines
//! go. Each seed runs on its own OS thread with its own subscriber, so parallel seeds of a
//! sweep never share a log. A sweep's log is held in memory (up to [`HELD_MAX`]) until the
//! verdict says whether the seed keeps it, so a passing seed never writes one.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
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

/// A log line: `<simulated time> <LEVEL> <spans> <message> <field>=<value> ...`, the
/// layout of tracing-subscriber's default format without a target, written
/// straight into the line: the default format's per-character escaping of terminal codes
/// cost more than the rest of a line, and this log is a file, never a terminal.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        SimTime.format_time(&mut writer)?;
        write!(writer, " {:>5} ", event.metadata().level().as_str())?;
        // Spans (madsim's `node{..}:task{..}`, when `RUST_LOG` lets them through).
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                seen = true;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{{{fields}}}")?;
                    }
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        }
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writeln!(writer)
    }
}

/// Writes an event's fields: the message as it is, the others as `name=value` (`Debug`).
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.writer.write_char(' ');
        }
        let name = field.name();
        self.result = self.result.and_then(|()| match name {
            "message" => write!(self.writer, "{value:?}"),
            name => write!(
                self.writer,
                "{}={value:?}",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        });
    }
}

/// The most log bytes a deferred [`RunLog`] holds in memory; past it, the log goes to its
/// file as usual (a very verbose seed is written then, pass or fail).
pub const HELD_MAX: usize = 4 << 20;

/// A run's `ksim.log`, shared by the run's subscriber and the caller (which settles it at
/// the end). Written to its file as it goes ([`RunLog::create`]), or held in memory until
/// the caller [`keep`](RunLog::keep)s or [`discard`](RunLog::discard)s it
/// ([`RunLog::deferred`]).
#[derive(Clone)]
pub struct RunLog(Arc<Mutex<Sink>>);

struct Sink {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    held: Vec<u8>,
    discarded: bool,
}

impl RunLog {
    /// A log written to `path` (created now) as the run goes.
    pub fn create(path: &Path) -> io::Result<RunLog> {
        let file = BufWriter::new(File::create(path)?);
        Ok(RunLog::with(path, Some(file)))
    }

    /// A log held in memory: `path` is written only if the caller keeps it (or it outgrows
    /// [`HELD_MAX`]).
    pub fn deferred(path: &Path) -> RunLog {
        RunLog::with(path, None)
    }

    fn with(path: &Path, file: Option<BufWriter<File>>) -> RunLog {
        RunLog(Arc::new(Mutex::new(Sink {
            path: path.to_path_buf(),
            file,
            held: Vec::new(),
            discarded: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Sink> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes buffered lines to the file (if it has one yet).
    pub fn flush(&self) {
        if let Some(file) = &mut self.lock().file {
            let _ = file.flush();
        }
    }

    /// The log is kept: what is held goes to its file, and later lines follow it.
    pub fn keep(&self) -> io::Result<()> {
        let mut sink = self.lock();
        sink.discarded = false;
        sink.open()?;
        match &mut sink.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }

    /// The log is not kept: what is held is dropped, and nothing more is held or written
    /// (a file it already spilled to stays, for the caller to delete).
    pub fn discard(&self) {
        let mut sink = self.lock();
        sink.held = Vec::new();
        sink.discarded = true;
        if let Some(file) = &mut sink.file {
            let _ = file.flush();
        }
    }
}

impl Sink {
    /// Creates the file (if not yet) and moves what is held into it.
    fn open(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(BufWriter::new(File::create(&self.path)?));
        }
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            if let Some(file) = &mut self.file {
                file.write_all(&held)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.discarded {
            return Ok(());
        }
        if self.file.is_none() {
            if self.held.len() + buf.len() <= HELD_MAX {
                self.held.extend_from_slice(buf);
                return Ok(());
            }
            self.open()?;
        }
        match &mut self.file {
            Some(file) => file.write_all(buf),
            None => Ok(()),
        }
    }
}

/// One writer handle per log line.
pub struct LogLine(RunLog);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A log that cannot be written never stops the run.
        let _ = self.0.lock().write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(self.clone())
    }
}

/// Installs a subscriber writing to `log` on this thread; keep the guard for the run.
pub fn install(log: &RunLog) -> tracing::subscriber::DefaultGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing::subscriber::set_default(subscriber(log, filter))
}

fn subscriber(log: &RunLog, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log.clone())
        .with_ansi(false)
        .event_format(Line)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ksim-runlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn line(log: &RunLog, text: &[u8]) {
        log.make_writer().write_all(text).unwrap();
    }

    #[test]
    fn a_deferred_log_is_written_only_if_kept() {
        let dir = scratch("deferred");
        let (kept, dropped) = (dir.join("kept.log"), dir.join("dropped.log"));
        let log = RunLog::deferred(&kept);
        line(&log, b"one\n");
        assert!(!kept.exists(), "held in memory");
        log.keep().unwrap();
        line(&log, b"two\n");
        log.flush();
        assert_eq!(std::fs::read(&kept).unwrap(), b"one\ntwo\n");

        let log = RunLog::deferred(&dropped);
        line(&log, b"one\n");
        log.discard();
        line(&log, b"two\n");
        log.flush();
        assert!(!dropped.exists(), "never written");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_deferred_log_past_its_limit_goes_to_its_file_whole() {
        let dir = scratch("spill");
        let path = dir.join("ksim.log");
        let log = RunLog::deferred(&path);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(HELD_MAX >> 20) + 1 {
            line(&log, &chunk);
        }
        log.flush();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, (HELD_MAX + (1 << 20)) as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The run's line format is the default format's (no target), byte for byte: spans,
    /// levels, the message, `%`, `?`, string and `r#` fields.
    #[test]
    fn lines_read_as_the_default_format_would_write_them() {
        fn emit() {
            tracing::info!("broker-1 hw {}", r#"{"hw":3,"partition":"orders/0"}"#);
            let span = tracing::info_span!("node", id = 1, name = "zk-1");
            let _entered = span.enter();
            let task = tracing::info_span!("task", id = 7);
            let _task = task.enter();
            tracing::warn!(broker = %"broker-2", session = 7, end = "expired", r#type = 3u8, "zk-session-ended");
            tracing::debug!(op = ?Some(1), "zk-completed");
        }
        let dir = scratch("format");
        let (ours, theirs) = (dir.join("ours.log"), dir.join("theirs.log"));
        let log = RunLog::create(&ours).unwrap();
        tracing::subscriber::with_default(subscriber(&log, EnvFilter::new("debug")), emit);
        log.flush();
        let reference = RunLog::create(&theirs).unwrap();
        let default = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_writer(reference.clone())
            .with_ansi(false)
            .with_timer(SimTime)
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(default, emit);
        reference.flush();
        let ours = std::fs::read_to_string(&ours).unwrap();
        assert_eq!(ours, std::fs::read_to_string(&theirs).unwrap());
        assert_eq!(ours.lines().count(), 3, "{ours}");
        assert!(
            ours.contains(
                r#"WARN node{id=1 name="zk-1"}:task{id=7}: zk-session-ended broker=broker-2 session=7 end="expired" type=3"#
            ),
            "{ours}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_created_log_is_a_file_at_once() {
        let dir = scratch("created");
        let path = dir.join("ksim.log");
        let log = RunLog::create(&path).unwrap();
        assert!(path.exists());
        line(&log, b"one\n");
        log.keep().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
