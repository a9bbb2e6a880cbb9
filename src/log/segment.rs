//! [`Segment`]: one `<base>.log` file of record batches and its sparse `<base>.index`.
//!
//! Owns: appending whole batches (one write per append), the index rule, finding the batch
//! that holds an offset, reading whole batches, truncating at a batch boundary, and the
//! batch-by-batch [`scan`] that recovery and index rebuilds use.
//!
//! Invariants: `size` is the number of valid bytes — reads and appends never look past it,
//! even if the file is longer (a read-only recovery keeps a torn tail on disk); the batches
//! in `[0, size)` hold offsets `[base_offset, next_offset)` densely; relative offsets and
//! positions fit in u32 (the log rolls before they would not).

use super::batch::{batch_size, check_batch, parse_header, BatchHeader, BATCH_HEADER_BYTES};
use super::index::{IndexEntry, OffsetIndex, ENTRY_BYTES};
use super::{LogError, Offset};
use crate::disk::DiskFile;
use std::io;

/// Read size of a [`scan`].
const SCAN_CHUNK: usize = 1 << 20;

/// How much [`Segment::find_batch`] reads at once while walking batch headers from an index
/// entry: the default `index.interval.bytes` (4 KiB) of batches plus a header or so.
const FIND_WINDOW_BYTES: u64 = 8 << 10;

/// `<20-digit base offset>.log`.
pub(crate) fn log_file_name(base: Offset) -> String {
    format!("{:020}.log", base.0)
}

/// `<20-digit base offset>.index`.
pub(crate) fn index_file_name(base: Offset) -> String {
    format!("{:020}.index", base.0)
}

/// The base offset in a segment or index file name with the given extension.
pub(crate) fn parse_file_name(name: &str, extension: &str) -> Option<Offset> {
    let digits = name.strip_suffix(extension)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base: u64 = digits.parse().ok()?;
    (base <= i64::MAX as u64).then_some(Offset(base))
}

/// Where one batch of an append lies and what it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BatchSpan {
    pub base_offset: Offset,
    pub next_offset: Offset,
    pub size: u64,
    pub max_timestamp_ms: i64,
}

impl BatchSpan {
    pub fn of(header: &BatchHeader) -> Self {
        BatchSpan {
            base_offset: header.base_offset,
            next_offset: header.next_offset(),
            size: header.size as u64,
            max_timestamp_ms: header.max_timestamp_ms,
        }
    }
}

/// Fully validates the batch at the start of `bytes` and describes it.
pub(crate) fn check_batch_span(bytes: &[u8]) -> Result<BatchSpan, LogError> {
    Ok(BatchSpan::of(&check_batch(bytes)?))
}

/// One segment: its log file, its index, and what is known of its content.
pub(crate) struct Segment<F> {
    pub base_offset: Offset,
    pub log: F,
    /// `None` in a read-only log (nothing is ever written to it).
    pub index_file: Option<F>,
    pub index: OffsetIndex,
    /// Valid bytes.
    pub size: u64,
    /// Offset after the last batch.
    pub next_offset: Offset,
    /// Largest batch max-timestamp, once known (`None` until a scan of a trusted segment).
    pub max_timestamp_ms: Option<i64>,
    /// Bytes appended since the last index entry (or the segment start).
    pub bytes_since_index: u64,
    /// Log bytes written since the last sync.
    pub log_dirty: bool,
    /// Index file content not yet synced (or entries not yet written).
    pub index_dirty: bool,
}

impl<F: DiskFile> Segment<F> {
    pub fn name(&self) -> String {
        log_file_name(self.base_offset)
    }

    /// An I/O error with what was being done to this segment (built only on failure).
    fn io_error(&self, e: io::Error, action: &str) -> LogError {
        LogError::io(format!("{action} {}", self.name()))(e)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// `offset - base_offset`, which the caller guarantees fits in u32.
    pub fn relative(&self, offset: Offset) -> u32 {
        u32::try_from(offset.since(self.base_offset)).expect("relative offset fits in u32")
    }

    /// Whether `bytes` more bytes ending at `last_offset` still fit the u32 positions and
    /// relative offsets of this segment.
    pub fn can_index(&self, bytes: u64, last_offset: Offset) -> bool {
        self.size + bytes <= u32::MAX as u64
            && last_offset.since(self.base_offset) <= u32::MAX as u64
    }

    /// Appends whole, validated batches with one write, then writes the index entries this
    /// adds (unsynced). `spans` describe `bytes` in order.
    pub fn append(
        &mut self,
        bytes: &[u8],
        spans: &[BatchSpan],
        index_interval_bytes: u64,
    ) -> Result<(), LogError> {
        assert!(!spans.is_empty(), "appending no batch");
        assert_eq!(
            spans[0].base_offset, self.next_offset,
            "append must continue the segment's offsets"
        );
        assert_eq!(
            spans.iter().map(|s| s.size).sum::<u64>(),
            bytes.len() as u64,
            "spans must cover the bytes"
        );
        let last = spans[spans.len() - 1];
        assert!(self.can_index(bytes.len() as u64, Offset(last.next_offset.0 - 1)));
        // Write at the valid size, not the file length: bytes of a failed earlier write
        // past `size` are overwritten rather than kept as garbage in the middle.
        self.log
            .write_at(self.size, bytes)
            .map_err(|e| self.io_error(e, "appending to"))?;
        let mut position = self.size;
        let mut expected = self.next_offset;
        for span in spans {
            assert_eq!(span.base_offset, expected, "offsets must be dense");
            if self.bytes_since_index > index_interval_bytes {
                let entry = IndexEntry {
                    relative_offset: self.relative(Offset(span.next_offset.0 - 1)),
                    position: position as u32,
                };
                self.index.push(entry);
                self.index_dirty = true;
                self.bytes_since_index = 0;
            }
            self.bytes_since_index += span.size;
            position += span.size;
            expected = span.next_offset;
            self.max_timestamp_ms = Some(
                self.max_timestamp_ms
                    .map_or(span.max_timestamp_ms, |m| m.max(span.max_timestamp_ms)),
            );
        }
        self.size = position;
        self.next_offset = expected;
        self.log_dirty = true;
        // The new entries go to the index file now (unsynced), as a memory-mapped index
        // would have them in the page cache: a crash keeps them, a power cut may tear them.
        self.write_index()
    }

    /// Writes buffered index entries to the index file (no sync).
    pub fn write_index(&mut self) -> Result<(), LogError> {
        if self.index.unwritten_count() == 0 {
            return Ok(());
        }
        let Some(file) = self.index_file.as_mut() else {
            return Ok(());
        };
        let mut out = Vec::with_capacity(self.index.unwritten_count() * ENTRY_BYTES);
        let first = self.index.take_unwritten(&mut out);
        let base = self.base_offset;
        file.write_at((first * ENTRY_BYTES) as u64, &out)
            .map_err(|e| {
                LogError::io(format!("writing the index of {}", log_file_name(base)))(e)
            })?;
        self.index_dirty = true;
        Ok(())
    }

    /// Makes the log bytes durable (not the name: that is the directory's business).
    pub fn sync_log(&mut self) -> Result<(), LogError> {
        if self.log_dirty {
            self.log.sync().map_err(|e| self.io_error(e, "syncing"))?;
            self.log_dirty = false;
        }
        Ok(())
    }

    /// Writes buffered index entries and makes the index file durable.
    pub fn sync_index(&mut self) -> Result<(), LogError> {
        self.write_index()?;
        if self.index_dirty {
            if let Some(file) = self.index_file.as_mut() {
                file.sync().map_err(LogError::io(format!(
                    "syncing the index of {}",
                    self.name()
                )))?;
            }
            self.index_dirty = false;
        }
        Ok(())
    }

    /// The header of the batch at `position`, which must lie inside the valid bytes.
    pub fn read_header(&self, position: u64) -> Result<BatchHeader, LogError> {
        let corrupt = |detail: String| LogError::CorruptSegment {
            segment: self.name(),
            position,
            detail,
        };
        if position + BATCH_HEADER_BYTES as u64 > self.size {
            return Err(corrupt("batch header runs past the segment end".into()));
        }
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        self.log
            .read_exact_at(position, &mut buf)
            .map_err(|e| self.io_error(e, "reading"))?;
        self.checked_header(position, &buf)
    }

    /// The header in `bytes` (read at `position`), checked to fit in the valid bytes.
    fn checked_header(&self, position: u64, bytes: &[u8]) -> Result<BatchHeader, LogError> {
        let corrupt = |detail: String| LogError::CorruptSegment {
            segment: self.name(),
            position,
            detail,
        };
        let header = parse_header(bytes).map_err(|e| corrupt(e.to_string()))?;
        if position + header.size as u64 > self.size {
            return Err(corrupt("batch runs past the segment end".into()));
        }
        Ok(header)
    }

    /// The header of the batch at `position`, read through `window` (bytes of the segment
    /// from `*start`): refilled with one read of up to [`FIND_WINDOW_BYTES`] when the header
    /// is not inside it, so a scan over many small batches costs one read, not one per batch.
    fn header_through(
        &self,
        position: u64,
        window: &mut Vec<u8>,
        start: &mut u64,
    ) -> Result<BatchHeader, LogError> {
        let end = *start + window.len() as u64;
        if position < *start || position + BATCH_HEADER_BYTES as u64 > end {
            if position + BATCH_HEADER_BYTES as u64 > self.size {
                // The same error a single header read gives.
                return self.read_header(position);
            }
            let len = (self.size - position).min(FIND_WINDOW_BYTES) as usize;
            window.resize(len, 0);
            self.log
                .read_exact_at(position, window)
                .map_err(|e| self.io_error(e, "reading"))?;
            *start = position;
        }
        let at = (position - *start) as usize;
        self.checked_header(position, &window[at..at + BATCH_HEADER_BYTES])
    }

    /// Position of the batch holding `offset` (`base_offset <= offset < next_offset`): from
    /// the index entry at or below it (a batch ending at or before `offset`), walk forward.
    pub fn find_batch(&self, offset: Offset) -> Result<u64, LogError> {
        assert!(self.base_offset <= offset && offset < self.next_offset);
        let mut position = self.index.lookup(self.relative(offset)) as u64;
        let (mut window, mut start) = (Vec::new(), position);
        loop {
            let header = self.header_through(position, &mut window, &mut start)?;
            if header.base_offset > offset {
                return Err(LogError::CorruptSegment {
                    segment: self.name(),
                    position,
                    detail: format!(
                        "batch at {} found while looking for offset {offset}",
                        header.base_offset
                    ),
                });
            }
            if header.next_offset() > offset {
                return Ok(position);
            }
            position += header.size as u64;
        }
    }

    /// Appends to `out` the whole batches from `position` that fit in `budget` bytes — or,
    /// when `take_one`, at least the first one whatever its size (Kafka KIP-74). Returns
    /// whether the segment's end was reached.
    pub fn read_into(
        &self,
        position: u64,
        budget: usize,
        take_one: bool,
        out: &mut Vec<u8>,
    ) -> Result<bool, LogError> {
        if position >= self.size {
            return Ok(true);
        }
        let first = self.read_header(position)?.size;
        if first > budget && !take_one {
            return Ok(false);
        }
        let available = self.size - position;
        let want = (budget.max(first) as u64).min(available) as usize;
        let start = out.len();
        out.resize(start + want, 0);
        self.log
            .read_exact_at(position, &mut out[start..])
            .map_err(|e| self.io_error(e, "reading"))?;
        // Keep whole batches only.
        let mut used = 0;
        while used < want {
            let size = batch_size(&out[start + used..]).unwrap_or(usize::MAX);
            if size == usize::MAX && want - used >= 12 {
                out.truncate(start);
                return Err(LogError::CorruptSegment {
                    segment: self.name(),
                    position: position + used as u64,
                    detail: "bad batch length".into(),
                });
            }
            if size > want - used {
                break;
            }
            used += size;
        }
        out.truncate(start + used);
        Ok(position + used as u64 == self.size)
    }

    /// Cuts the segment at `position`, the start of the batch with base offset
    /// `next_offset`, and makes the cut durable (log and index synced).
    pub fn truncate_to(&mut self, position: u64, next_offset: Offset) -> Result<(), LogError> {
        assert!(position <= self.size && next_offset <= self.next_offset);
        let name = self.name();
        self.log
            .truncate(position)
            .map_err(LogError::io(format!("truncating {name}")))?;
        self.log
            .sync()
            .map_err(LogError::io(format!("syncing {name}")))?;
        self.log_dirty = false;
        let keep = self.index.truncate_to(self.relative(next_offset));
        if let Some(file) = self.index_file.as_mut() {
            file.truncate((keep * ENTRY_BYTES) as u64)
                .map_err(LogError::io(format!("truncating the index of {name}")))?;
            self.index_dirty = true;
        }
        self.sync_index()?;
        self.size = position;
        self.next_offset = next_offset;
        self.max_timestamp_ms = None;
        self.bytes_since_index = position - self.index.last().map_or(0, |e| e.position as u64);
        Ok(())
    }

    /// Largest timestamp in the segment, scanning batch headers if not yet known.
    pub fn max_timestamp(&mut self) -> Result<Option<i64>, LogError> {
        if self.max_timestamp_ms.is_none() && !self.is_empty() {
            let scan = scan(
                &self.log,
                ScanFrom::start(self.base_offset),
                self.size,
                false,
                None,
            )
            .map_err(|e| self.io_error(e, "scanning"))?;
            if let Some(stop) = scan.stop {
                return Err(LogError::CorruptSegment {
                    segment: self.name(),
                    position: scan.end,
                    detail: stop,
                });
            }
            self.max_timestamp_ms = scan.max_timestamp_ms;
        }
        Ok(self.max_timestamp_ms)
    }
}

/// Where a scan starts: a batch position and the offset the batch there must start at.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanFrom {
    pub segment_base: Offset,
    pub position: u64,
    pub offset: Offset,
}

impl ScanFrom {
    pub fn start(segment_base: Offset) -> Self {
        ScanFrom {
            segment_base,
            position: 0,
            offset: segment_base,
        }
    }
}

/// What a [`scan`] found.
#[derive(Clone, Debug)]
pub(crate) struct Scan {
    /// Position after the last valid batch.
    pub end: u64,
    /// Offset after the last valid batch.
    pub next_offset: Offset,
    pub max_timestamp_ms: Option<i64>,
    pub batches: u64,
    /// The index a scan from the segment start rebuilds (when asked to).
    pub index: Vec<IndexEntry>,
    pub bytes_since_index: u64,
    /// Why the scan stopped before `limit`; `None` if every byte was a valid batch.
    pub stop: Option<String>,
}

/// Walks batches from `from` up to byte `limit`, checking each one's length, header,
/// offset continuity and (when `verify`) CRC and records; stops at the first bad one.
/// With `index_interval_bytes`, rebuilds the index as appends would have built it.
pub(crate) fn scan<F: DiskFile>(
    file: &F,
    from: ScanFrom,
    limit: u64,
    verify: bool,
    index_interval_bytes: Option<u64>,
) -> io::Result<Scan> {
    let mut reader = ChunkReader {
        file,
        limit,
        start: 0,
        buf: Vec::new(),
    };
    let mut result = Scan {
        end: from.position,
        next_offset: from.offset,
        max_timestamp_ms: None,
        batches: 0,
        index: Vec::new(),
        bytes_since_index: 0,
        stop: None,
    };
    let mut position = from.position;
    while position < limit {
        match next_batch(&mut reader, position, result.next_offset, from, verify)? {
            Err(stop) => {
                result.stop = Some(stop);
                break;
            }
            Ok(header) => {
                if let Some(interval) = index_interval_bytes {
                    if result.bytes_since_index > interval {
                        result.index.push(IndexEntry {
                            relative_offset: (header.last_offset().0 - from.segment_base.0) as u32,
                            position: position as u32,
                        });
                        result.bytes_since_index = 0;
                    }
                    result.bytes_since_index += header.size as u64;
                }
                position += header.size as u64;
                result.end = position;
                result.next_offset = header.next_offset();
                result.batches += 1;
                result.max_timestamp_ms = Some(
                    result
                        .max_timestamp_ms
                        .map_or(header.max_timestamp_ms, |m| m.max(header.max_timestamp_ms)),
                );
            }
        }
    }
    Ok(result)
}

/// The batch at `position`, or why it is not a valid continuation of the segment.
fn next_batch<F: DiskFile>(
    reader: &mut ChunkReader<'_, F>,
    position: u64,
    expected: Offset,
    from: ScanFrom,
    verify: bool,
) -> io::Result<Result<BatchHeader, String>> {
    let Some(prefix) = reader.slice(position, BATCH_HEADER_BYTES)? else {
        return Ok(Err(format!(
            "{} bytes at the end are not a whole batch header",
            reader.limit - position
        )));
    };
    let header = match parse_header(prefix) {
        Ok(header) => header,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let end = position + header.size as u64;
    if end > reader.limit {
        return Ok(Err(format!(
            "batch of {} bytes runs past the end ({} bytes left)",
            header.size,
            reader.limit - position
        )));
    }
    if header.base_offset != expected {
        return Ok(Err(format!(
            "batch starts at offset {}, expected {expected}",
            header.base_offset
        )));
    }
    if end > u32::MAX as u64 || header.last_offset().0 - from.segment_base.0 > u32::MAX as u64 {
        return Ok(Err("batch overflows the segment's u32 index fields".into()));
    }
    if verify {
        let Some(bytes) = reader.slice(position, header.size)? else {
            unreachable!("the batch end was checked against the limit");
        };
        if let Err(e) = check_batch(bytes) {
            return Ok(Err(e.to_string()));
        }
    }
    Ok(Ok(header))
}

/// Reads a file forward in large chunks.
struct ChunkReader<'a, F> {
    file: &'a F,
    limit: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<F: DiskFile> ChunkReader<'_, F> {
    /// `len` bytes at `position`, or `None` if they extend past the limit.
    fn slice(&mut self, position: u64, len: usize) -> io::Result<Option<&[u8]>> {
        if position + len as u64 > self.limit {
            return Ok(None);
        }
        let end = position + len as u64;
        if position < self.start || end > self.start + self.buf.len() as u64 {
            let n = (len.max(SCAN_CHUNK) as u64).min(self.limit - position) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(position, &mut self.buf)?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }
}
