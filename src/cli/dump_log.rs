//! `ksim dump-log <PATH> [--records]`: what one file of a node's data directory holds,
//! printed the way Kafka's `kafka-dump-log.sh` prints a segment (and ZooKeeper's log and
//! snapshot formatters print theirs).
//!
//! Owns: choosing a decoder from the file's name ([`FileKind`]), reading the file in bounded
//! pieces, and the text of the dump. It knows no format itself: batches are read by the log
//! engine's [`inspect_batch`], index entries by its index decoder and sanity check,
//! checkpoints by [`CheckpointFile::parse`] and the epoch cache's [`parse_entry`], ensemble
//! transactions and snapshots by the store's [`decode_txn`] and [`decode_snapshot`].
//!
//! Reads only the file named, through positioned reads, and writes nothing. Memory stays
//! bounded by what the file holds, never by what its bytes claim: a segment is read batch
//! by batch, a batch's bytes only once its length prefix is known to fit in what is left of
//! the file (so a giant length allocates nothing); an index 64 KiB at a time; checkpoints
//! (at most 1 MiB) and snapshots (at most 256 MiB) whole.
//!
//! Corruption is reported, never a panic: each problem is one line that names where it is
//! ("batch at position P: CRC mismatch (stored X, computed Y)", "truncated batch at position
//! P: ..."). A segment's decoding goes on past a batch whose CRC, header fields or records
//! are bad (its length prefix and magic framed it, as `kafka-dump-log.sh` goes on past an
//! invalid batch) and stops where the framing is lost — a torn or zero-filled tail, a
//! length too small for a header or running past the end, a magic other than 2 — saying
//! how many bytes were left undecoded. The last line sums up, with the number of problems.
//!
//! Exit codes (contract: "0, 2 on unreadable input"): 0 when the file was read, whatever it
//! holds — corruption is in the output and counted on its last line, as Kafka's tool prints
//! `isValid: false` and exits 0; 2 when the file cannot be read (missing, a directory or
//! another non-regular file, an I/O error) or its name is no kind this command knows.

use crate::broker::epoch_cache::{parse_entry, EpochEntry};
use crate::broker::server::REPLICATION_OFFSET_CHECKPOINT;
use crate::log::{check_index_entry, parse_segment_file_name, IndexEntry, INDEX_ENTRY_BYTES};
use crate::log::{
    inspect_batch, BatchError, BatchInspection, CheckpointFile, ControlRecord, Offset, Record,
    BATCH_HEADER_BYTES, LEADER_EPOCH_CHECKPOINT, LOG_OVERHEAD, LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_OFFSET_CHECKPOINT,
};
use crate::zk::store::{
    decode_snapshot, decode_txn, parse_snapshot_file_name, DATA_DIR, TXN_LOG_DIR,
};
use crate::zk::Zxid;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The largest checkpoint file read (they hold a few lines).
const CHECKPOINT_MAX_BYTES: u64 = 1 << 20;
/// The largest snapshot read (ksim's are far smaller).
const SNAPSHOT_MAX_BYTES: u64 = 256 << 20;
/// Bytes of an index read at once (a multiple of the entry size).
const INDEX_CHUNK_BYTES: usize = 64 << 10;

/// What a file is, by its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `<base offset>.log` (20 digits, as the engine names it): record batches.
    Segment {
        /// The segment's base offset, from its name.
        base: Offset,
        /// It lies in an ensemble server's `version-2/log/`: its records are transactions.
        txn_log: bool,
    },
    /// `<base offset>.index`: a segment's offset index.
    Index {
        /// The segment's base offset, from its name.
        base: Offset,
    },
    /// `leader-epoch-checkpoint`: a partition replica's epoch → start offset entries.
    LeaderEpochCheckpoint,
    /// `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
    /// `replication-offset-checkpoint`: offsets in Kafka's checkpoint format.
    OffsetCheckpoint,
    /// `snapshot.<zxid>`: an ensemble server's data tree.
    Snapshot {
        /// The zxid its name carries.
        zxid: Zxid,
    },
}

impl FileKind {
    /// The kind of the file at `path`, from its name (and, for a `.log`, its directory);
    /// `None` if dump-log knows no such file.
    pub fn of(path: &Path) -> Option<FileKind> {
        let name = path.file_name()?.to_str()?;
        if let Some(base) = parse_segment_file_name(name, "log") {
            return Some(FileKind::Segment {
                base,
                txn_log: in_txn_log_dir(path),
            });
        }
        if let Some(base) = parse_segment_file_name(name, "index") {
            return Some(FileKind::Index { base });
        }
        if name == LEADER_EPOCH_CHECKPOINT {
            return Some(FileKind::LeaderEpochCheckpoint);
        }
        if [
            RECOVERY_POINT_OFFSET_CHECKPOINT,
            LOG_START_OFFSET_CHECKPOINT,
            REPLICATION_OFFSET_CHECKPOINT,
        ]
        .contains(&name)
        {
            return Some(FileKind::OffsetCheckpoint);
        }
        parse_snapshot_file_name(name).map(|zxid| FileKind::Snapshot { zxid })
    }
}

/// Whether `path` lies in `version-2/log/` (the path as given, else as the file system
/// resolves it: `ksim dump-log 00000000000000000000.log` from inside that directory).
fn in_txn_log_dir(path: &Path) -> bool {
    let check = |path: &Path| {
        let parent = path.parent();
        parent.and_then(Path::file_name) == Some(TXN_LOG_DIR.as_ref())
            && parent.and_then(Path::parent).and_then(Path::file_name) == Some(DATA_DIR.as_ref())
    };
    check(path) || std::fs::canonicalize(path).is_ok_and(|full| check(&full))
}

/// Why a file could not be dumped (exit 2).
#[derive(Debug)]
pub enum DumpError {
    /// Its name is no kind dump-log knows.
    UnknownKind(PathBuf),
    /// It cannot be opened or read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::UnknownKind(path) => write!(
                f,
                "{}: not a file dump-log knows; expected a segment (<base offset>.log, 20 \
                 digits), an offset index (<base offset>.index), a {LEADER_EPOCH_CHECKPOINT}, an offset \
                 checkpoint ({RECOVERY_POINT_OFFSET_CHECKPOINT}, {LOG_START_OFFSET_CHECKPOINT}, \
                 {REPLICATION_OFFSET_CHECKPOINT}), or an ensemble's transaction log \
                 ({DATA_DIR}/{TXN_LOG_DIR}/<base offset>.log) or snapshot \
                 ({DATA_DIR}/snapshot.<zxid>)",
                path.display()
            ),
            DumpError::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for DumpError {}

/// What a dump found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Batches, index entries, checkpoint entries or znodes printed.
    pub items: u64,
    /// Problems reported (corruption, torn bytes, values out of range).
    pub problems: u64,
}

/// Positioned reads of a file's bytes (a real file, or a buffer in tests).
pub trait ReadAt {
    /// The length in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `position`, or fails (`UnexpectedEof` past the end).
    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(position).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A regular file opened read-only, its length taken once.
struct FileSource {
    file: File,
    len: u64,
}

impl ReadAt for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, position: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, position)
    }
}

/// `ksim dump-log`: prints the dump on stdout; the exit code (see the module doc).
pub fn cmd_dump_log(path: &Path, records: bool) -> u8 {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = dump(path, records, &mut out);
    let _ = out.flush();
    drop(out);
    match result {
        Ok(_) => 0,
        Err(error) => {
            super::err!("error: {error}");
            super::EXIT_USAGE
        }
    }
}

/// Dumps the file at `path` to `out`. An output that fails (a closed pipe) ends the dump
/// quietly; only the input's failures are errors.
pub fn dump(path: &Path, records: bool, out: &mut dyn Write) -> Result<DumpSummary, DumpError> {
    let kind = FileKind::of(path).ok_or_else(|| DumpError::UnknownKind(path.to_path_buf()))?;
    let unreadable = |error: io::Error| DumpError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let source = FileSource {
        file,
        len: metadata.len(),
    };
    let mut out = Out::new(out);
    out.line(format_args!("Dumping {}", path.display()));
    dump_source(&kind, &source, records, &mut out).map_err(unreadable)?;
    Ok(out.summary)
}

/// Dumps `source`, a file of `kind`, to `out` (without the `Dumping` line); fails only
/// when a read of `source` does.
pub fn dump_bytes(
    kind: &FileKind,
    source: &dyn ReadAt,
    records: bool,
    out: &mut dyn Write,
) -> io::Result<DumpSummary> {
    let mut out = Out::new(out);
    dump_source(kind, source, records, &mut out)?;
    Ok(out.summary)
}

fn dump_source(
    kind: &FileKind,
    source: &dyn ReadAt,
    records: bool,
    out: &mut Out<'_>,
) -> io::Result<()> {
    match kind {
        FileKind::Segment { base, txn_log } => SegmentDump {
            source,
            out,
            records,
            txn_log: *txn_log,
        }
        .run(*base),
        FileKind::Index { base } => dump_index(source, *base, out),
        FileKind::LeaderEpochCheckpoint => dump_epoch_checkpoint(source, out),
        FileKind::OffsetCheckpoint => dump_offset_checkpoint(source, out),
        FileKind::Snapshot { zxid } => dump_snapshot(source, *zxid, records, out),
    }
}

/// The dump's output: lines, a count of problems, and whether the output still takes them.
struct Out<'a> {
    sink: &'a mut dyn Write,
    summary: DumpSummary,
    closed: bool,
}

impl<'a> Out<'a> {
    fn new(sink: &'a mut dyn Write) -> Self {
        Out {
            sink,
            summary: DumpSummary::default(),
            closed: false,
        }
    }

    fn line(&mut self, args: fmt::Arguments<'_>) {
        if !self.closed && writeln!(self.sink, "{args}").is_err() {
            self.closed = true;
        }
    }

    fn item(&mut self, args: fmt::Arguments<'_>) {
        self.summary.items += 1;
        self.line(args);
    }

    fn problem(&mut self, args: fmt::Arguments<'_>) {
        self.summary.problems += 1;
        self.line(args);
    }

    /// The last line: `summary: <items> <noun><detail>; <problems>`.
    fn finish(&mut self, noun: &str, detail: fmt::Arguments<'_>) {
        let items = self.summary.items;
        let problems = match self.summary.problems {
            0 => "no problems".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        };
        self.line(format_args!("summary: {items} {noun}{detail}; {problems}"));
    }
}

/// A segment, batch by batch.
struct SegmentDump<'s, 'o, 'w> {
    source: &'s dyn ReadAt,
    out: &'o mut Out<'w>,
    records: bool,
    txn_log: bool,
}

impl SegmentDump<'_, '_, '_> {
    fn run(&mut self, base: Offset) -> io::Result<()> {
        let len = self.source.len();
        self.out.line(format_args!("Log starting offset: {base}"));
        // A segment name's base offset fits in i64 (`parse_segment_file_name`).
        let mut expected = Some(base.0 as i64);
        let mut position = 0u64;
        let mut buf = Vec::new();
        let mut record_count = 0u64;
        while position < len && !self.out.closed {
            let left = len - position;
            match self.read_batch(position, left, &mut buf)? {
                Err(why) => {
                    self.report_unframed(position, left, &why);
                    self.out.line(format_args!(
                        "stopped: {left} bytes from position {position} not decoded"
                    ));
                    break;
                }
                Ok(batch) => {
                    self.print_batch(position, &batch, expected);
                    record_count += batch.records.len() as u64;
                    expected = match batch.header_error {
                        None => batch.last_offset().and_then(|last| last.checked_add(1)),
                        Some(_) => None,
                    };
                    position += batch.size as u64;
                }
            }
        }
        let records = if self.records {
            format!(", {record_count} records")
        } else {
            String::new()
        };
        self.out.finish(
            "batches",
            format_args!("{records} in {position} of {len} bytes"),
        );
        Ok(())
    }

    /// The batch at `position` with `left` bytes to the end of the file: its header first,
    /// then its whole bytes once its length is known to fit.
    fn read_batch(
        &self,
        position: u64,
        left: u64,
        buf: &mut Vec<u8>,
    ) -> io::Result<Result<BatchInspection, BatchError>> {
        buf.resize(left.min(BATCH_HEADER_BYTES as u64) as usize, 0);
        self.source.read_exact_at(position, buf)?;
        match inspect_batch(buf, self.records) {
            Err(BatchError::Truncated { needed, .. })
                if needed > buf.len() && needed as u64 <= left =>
            {
                buf.resize(needed, 0);
                self.source.read_exact_at(position, buf)?;
                Ok(inspect_batch(buf, self.records))
            }
            other => Ok(other),
        }
    }

    fn report_unframed(&mut self, position: u64, left: u64, why: &BatchError) {
        match why {
            BatchError::Truncated { .. } if left < LOG_OVERHEAD as u64 => {
                self.out.problem(format_args!(
                    "truncated header at position {position}: {left} bytes left, a batch \
                     header is {BATCH_HEADER_BYTES}"
                ))
            }
            BatchError::Truncated { needed, .. } => self.out.problem(format_args!(
                "truncated batch at position {position}: its length says {needed} bytes, \
                 {left} left"
            )),
            other => self
                .out
                .problem(format_args!("batch at position {position}: {other}")),
        }
    }

    fn print_batch(&mut self, position: u64, b: &BatchInspection, expected: Option<i64>) {
        let last = b
            .last_offset()
            .map_or_else(|| "overflows".to_string(), |last| last.to_string());
        let mut attributes = if b.attributes != 0 {
            format!(" attributes: {:#06x}", b.attributes)
        } else {
            String::new()
        };
        if b.is_transactional() {
            attributes.push_str(" isTransactional: true");
        }
        if b.is_control() {
            attributes.push_str(" isControl: true");
        }
        self.out.item(format_args!(
            "baseOffset: {} lastOffset: {last} count: {} partitionLeaderEpoch: {} producerId: {} \
             producerEpoch: {} baseSequence: {}{attributes} position: {position} size: {} \
             baseTimestamp: {} maxTimestamp: {} crc: {:#010x} isValid: {}",
            b.base_offset,
            b.record_count,
            b.partition_leader_epoch,
            b.producer_id,
            b.producer_epoch,
            b.base_sequence,
            b.size,
            b.base_timestamp_ms,
            b.max_timestamp_ms,
            b.crc,
            b.crc_valid(),
        ));
        if !b.crc_valid() {
            self.out.problem(format_args!(
                "batch at position {position}: CRC mismatch (stored {:#010x}, computed {:#010x})",
                b.crc, b.computed_crc
            ));
        }
        if let Some(error) = &b.header_error {
            self.out
                .problem(format_args!("batch at position {position}: {error}"));
        }
        if let Some(expected) = expected.filter(|e| *e != b.base_offset) {
            self.out.problem(format_args!(
                "batch at position {position}: starts at offset {}, expected {expected}",
                b.base_offset
            ));
        }
        for record in &b.records {
            self.print_record(record, b.is_control());
        }
        if let Some(error) = &b.records_error {
            self.out
                .problem(format_args!("batch at position {position}: {error}"));
        }
    }

    /// One record; a control batch's record also as the transaction marker it holds, as
    /// `kafka-dump-log.sh` prints `endTxnMarker: COMMIT coordinatorEpoch: 0`.
    fn print_record(&mut self, record: &Record, control: bool) {
        let mut headers = if record.headers.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = record
                .headers
                .iter()
                .map(|(key, value)| format!("{key:?}: {}", show_bytes(Some(value))))
                .collect();
            format!(" headers: [{}]", list.join(", "))
        };
        if control {
            match ControlRecord::parse(record.key.as_deref(), record.value.as_deref()) {
                Ok(marker) => headers.push_str(&format!(
                    " endTxnMarker: {} coordinatorEpoch: {}",
                    marker.kind.name(),
                    marker.coordinator_epoch
                )),
                Err(e) => self.out.problem(format_args!(
                    "control record at offset {}: {e}",
                    record.offset
                )),
            }
        }
        let offset = record.offset;
        if !self.txn_log {
            self.out.line(format_args!(
                "| offset: {offset} timestamp: {} key: {} value: {}{headers}",
                record.timestamp_ms,
                show_bytes(record.key.as_deref()),
                show_bytes(record.value.as_deref()),
            ));
            return;
        }
        match decode_txn(record.value.as_deref()) {
            Ok(txn) => {
                let header = &txn.header;
                let body = serde_json::to_string(&txn.txn).unwrap_or_else(|e| e.to_string());
                self.out.line(format_args!(
                    "| offset: {offset} zxid: {} session: {} xid: {} time: {} txn: {body}",
                    header.zxid, header.session, header.xid.0, header.time_ms
                ));
                let zxid_key = header.zxid.0.to_be_bytes();
                if record.key.as_deref() != Some(&zxid_key[..]) {
                    self.out.problem(format_args!(
                        "record at offset {offset}: key {} is not its zxid {}",
                        show_bytes(record.key.as_deref()),
                        header.zxid
                    ));
                }
            }
            Err(why) => {
                self.out.line(format_args!(
                    "| offset: {offset} key: {} value: {}",
                    show_bytes(record.key.as_deref()),
                    show_bytes(record.value.as_deref())
                ));
                self.out
                    .problem(format_args!("record at offset {offset}: {why}"));
            }
        }
    }
}

/// A key, value or header value: `null`, a quoted string if UTF-8, else `0x` and hex.
fn show_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_string(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(_) => {
                let mut hex = String::with_capacity(2 + 2 * bytes.len());
                hex.push_str("0x");
                for byte in bytes {
                    hex.push_str(&format!("{byte:02x}"));
                }
                hex
            }
        },
    }
}

/// An offset index, entry by entry, each checked against the one before (the log's own
/// sanity check, without the segment: dump-log reads only the index).
fn dump_index(source: &dyn ReadAt, base: Offset, out: &mut Out<'_>) -> io::Result<()> {
    let len = source.len();
    let whole = len - len % INDEX_ENTRY_BYTES as u64;
    let mut previous: Option<IndexEntry> = None;
    let mut chunk = Vec::new();
    let mut position = 0u64;
    while position < whole && !out.closed {
        chunk.resize((whole - position).min(INDEX_CHUNK_BYTES as u64) as usize, 0);
        source.read_exact_at(position, &mut chunk)?;
        for bytes in chunk.chunks_exact(INDEX_ENTRY_BYTES) {
            let entry = IndexEntry::decode(bytes.try_into().expect("an 8-byte chunk"));
            out.item(format_args!(
                "offset: {} position: {}",
                base.plus(u64::from(entry.relative_offset)),
                entry.position
            ));
            if let Err(why) = check_index_entry(previous, entry, None) {
                out.problem(format_args!("entry at position {position}: {why}"));
            }
            previous = Some(entry);
            position += INDEX_ENTRY_BYTES as u64;
        }
    }
    if whole < len {
        out.problem(format_args!(
            "torn entry at position {whole}: {} trailing bytes, an entry is {INDEX_ENTRY_BYTES}",
            len - whole
        ));
    }
    out.finish("entries", format_args!(" in {len} bytes"));
    Ok(())
}

/// The whole of a small file, or `None` (reported) if it is larger than `max` bytes.
fn read_small(
    source: &dyn ReadAt,
    max: u64,
    what: &str,
    out: &mut Out<'_>,
) -> io::Result<Option<Vec<u8>>> {
    let len = source.len();
    if len > max {
        out.problem(format_args!(
            "{len} bytes, more than the {max} a {what} can be: not decoded"
        ));
        return Ok(None);
    }
    let mut bytes = vec![0u8; len as usize];
    source.read_exact_at(0, &mut bytes)?;
    Ok(Some(bytes))
}

/// A `leader-epoch-checkpoint`: each entry checked against the last good one, as the
/// epoch cache loads it.
fn dump_epoch_checkpoint(source: &dyn ReadAt, out: &mut Out<'_>) -> io::Result<()> {
    let mut previous: Option<EpochEntry> = None;
    for (index, line) in checkpoint_entries(source, out)?.iter().enumerate() {
        match parse_entry(line, previous) {
            Ok(entry) => {
                out.item(format_args!(
                    "epoch: {} startOffset: {}",
                    entry.epoch, entry.start_offset
                ));
                previous = Some(entry);
            }
            Err(why) => out.problem(format_args!("entry #{index}: {why}")),
        }
    }
    finish_checkpoint(out);
    Ok(())
}

/// An offset checkpoint: `offset` entries (recovery point, log start) or `topic partition
/// offset` entries (the broker's high watermarks).
fn dump_offset_checkpoint(source: &dyn ReadAt, out: &mut Out<'_>) -> io::Result<()> {
    let offset = |text: &String| {
        text.parse::<u64>()
            .map_err(|_| format!("bad offset {text:?}"))
    };
    for (index, line) in checkpoint_entries(source, out)?.iter().enumerate() {
        let text = match line.as_slice() {
            [one] => offset(one).map(|o| format!("offset: {o}")),
            [topic, partition, last] => {
                offset(last).map(|o| format!("topic: {topic} partition: {partition} offset: {o}"))
            }
            _ => Err(format!(
                "expected `offset` or `topic partition offset`, got {line:?}"
            )),
        };
        match text {
            Ok(text) => out.item(format_args!("{text}")),
            Err(why) => out.problem(format_args!("entry #{index}: {why}")),
        }
    }
    finish_checkpoint(out);
    Ok(())
}

/// The entries of a checkpoint file in Kafka's text format; none (reported) if it does not
/// parse.
fn checkpoint_entries(source: &dyn ReadAt, out: &mut Out<'_>) -> io::Result<Vec<Vec<String>>> {
    let Some(bytes) = read_small(source, CHECKPOINT_MAX_BYTES, "checkpoint", out)? else {
        return Ok(Vec::new());
    };
    Ok(CheckpointFile::parse(&bytes).unwrap_or_else(|why| {
        out.problem(format_args!("malformed checkpoint: {why}"));
        Vec::new()
    }))
}

fn finish_checkpoint(out: &mut Out<'_>) {
    out.finish("entries", format_args!(""));
}

/// An ensemble snapshot: its sessions and znodes (with `records`, their data too).
fn dump_snapshot(
    source: &dyn ReadAt,
    named: Zxid,
    records: bool,
    out: &mut Out<'_>,
) -> io::Result<()> {
    if let Some(bytes) = read_small(source, SNAPSHOT_MAX_BYTES, "snapshot", out)? {
        match decode_snapshot(&bytes) {
            Err(why) => out.problem(format_args!("not a valid snapshot: {why}")),
            Ok(snapshot) => {
                out.line(format_args!(
                    "zxid: {} znodes: {} sessions: {}",
                    snapshot.zxid,
                    snapshot.nodes.len(),
                    snapshot.sessions.len()
                ));
                if snapshot.zxid != named {
                    out.problem(format_args!(
                        "the snapshot holds zxid {}, its name says {named}",
                        snapshot.zxid
                    ));
                }
                for (session, timeout_ms) in &snapshot.sessions {
                    out.line(format_args!("session: {session} timeout: {timeout_ms}ms"));
                }
                for node in &snapshot.nodes {
                    let s = &node.stat;
                    let data = if records {
                        format!(" data: {}", show_bytes(Some(&node.data)))
                    } else {
                        String::new()
                    };
                    out.item(format_args!(
                        "znode: {} czxid: {} mzxid: {} pzxid: {} version: {} cversion: {} \
                         ephemeralOwner: {} dataLength: {} numChildren: {}{data}",
                        node.path,
                        s.czxid,
                        s.mzxid,
                        s.pzxid,
                        s.version,
                        s.cversion,
                        s.ephemeral_owner,
                        s.data_length,
                        s.num_children
                    ));
                }
            }
        }
    }
    out.finish("znodes", format_args!(""));
    Ok(())
}

#[cfg(test)]
mod tests;
