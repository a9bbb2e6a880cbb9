//! [`Log`]: one partition's log — appends, reads, truncation, rolling, flushing,
//! retention and checkpoints over a directory of segments (recovery is in `recovery.rs`).
//!
//! Durability protocol (the simulator cuts power, so every step is deliberate):
//! - `flush` syncs every segment with unsynced bytes, then the directory if a segment was
//!   created or removed since its last sync (a synced file whose name is not durable can
//!   vanish), and only then moves the recovery point to the LEO.
//! - `roll` flushes the old active segment and its index, creates the new segment, syncs
//!   the directory, and writes the recovery-point checkpoint (Kafka flushes at roll too).
//! - `truncate_to` lowers the recovery-point checkpoint *before* cutting data, so recovery
//!   never sees data missing below a checkpoint that was true when written; the cut and
//!   any segment removal are durable before it returns.
//! - `delete_old_segments` syncs the directory after removing files, so deleted records
//!   never come back after a power cut and the log start offset never moves backwards.
//! - Index entries are written to the index file by the append that adds them, but index
//!   files are not synced by `flush` (that would double the fsyncs of a
//!   flush-every-message log); they are synced at roll, truncation and close, and recovery
//!   checks or rebuilds them (a power cut may tear the active segment's).
//!
//! Invariants, asserted after every mutation: segments are sorted, offsets dense across
//! them, only the last (active) segment may be empty, `log start <= recovery point <= LEO`,
//! and `unflushed_messages == LEO - recovery point`.
//!
//! Simplifications vs Kafka: everything is synchronous (no background flusher, no
//! asynchronous segment deletion with `.deleted` files); the log start offset is always the
//! first segment's base offset (no DeleteRecords).

use super::batch::{decode_batches, restamp_batch, BatchBuilder, BatchError, Record, LOG_OVERHEAD};
use super::checkpoint::CheckpointFile;
use super::index::OffsetIndex;
use super::segment::{check_batch_span, index_file_name, log_file_name, BatchSpan, Segment};
use super::{LeaderEpoch, LogConfig, LogError, Offset};
use crate::disk::Disk;
use std::path::{Path, PathBuf};

/// File name of the recovery-point checkpoint (Kafka's `recovery-point-offset-checkpoint`).
pub const RECOVERY_POINT_OFFSET_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// File name of the log-start-offset checkpoint (Kafka's `log-start-offset-checkpoint`).
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// File name of a partition's leader-epoch cache checkpoint (Kafka's
/// `leader-epoch-checkpoint`). Written by the broker's replica, which owns the cache; the
/// log only knows the name so that recovery leaves it alone.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first appended record.
    pub base_offset: Offset,
    /// Offset of the last appended record.
    pub last_offset: Offset,
    /// A flush ran during this append (everything up to `last_offset` is durable).
    pub flushed: bool,
    /// A new segment was rolled before writing.
    pub rolled: bool,
}

/// One partition's log in a directory of a [`Disk`].
pub struct Log<D: Disk> {
    pub(super) disk: D,
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    pub(super) read_only: bool,
    /// Sorted by base offset. Never empty in a writable log; a read-only log of a missing
    /// or empty directory has none.
    pub(super) segments: Vec<Segment<D::File>>,
    /// Log start = LEO of a log without segments.
    pub(super) empty_base: Offset,
    /// Every record below it is durable.
    pub(super) recovery_point: Offset,
    /// A name in `dir` changed since the last `sync_dir`.
    pub(super) dir_dirty: bool,
}

impl<D: Disk> Log<D> {
    /// Appends a leader batch: assigns its base offset (the LEO), stamps header and CRC,
    /// rolls first if the batch does not fit the active segment, writes it with one write,
    /// and flushes after if `flush_interval_messages` says so.
    pub fn append(&mut self, batch: &mut BatchBuilder) -> Result<AppendInfo, LogError> {
        self.writable()?;
        if batch.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        let size = batch.size_bytes();
        if size - LOG_OVERHEAD > i32::MAX as usize {
            return Err(LogError::BatchTooLarge { size });
        }
        let base_offset = self.log_end_offset();
        let last_offset = base_offset.plus(batch.len() as u64 - 1);
        let rolled = self.maybe_roll(size as u64, last_offset)?;
        let span = BatchSpan {
            base_offset,
            next_offset: last_offset.plus(1),
            size: size as u64,
            max_timestamp_ms: batch.max_timestamp_ms(),
        };
        let bytes = batch.encode(base_offset);
        let interval = self.config.index_interval_bytes;
        self.active_mut().append(bytes, &[span], interval)?;
        let flushed = self.maybe_flush()?;
        self.check_invariants();
        Ok(AppendInfo {
            base_offset,
            last_offset,
            flushed,
            rolled,
        })
    }

    /// Appends one batch encoded elsewhere (a producer's, as a Produce request carries it):
    /// validates it whole (length, magic, CRC, records), stamps the LEO as its base offset
    /// and `leader_epoch` as its `partitionLeaderEpoch` (neither is under the CRC), and
    /// writes it like [`Log::append_as_follower`], flush policy included. `bytes` must be
    /// exactly one batch.
    pub fn append_encoded(
        &mut self,
        bytes: &[u8],
        leader_epoch: LeaderEpoch,
    ) -> Result<AppendInfo, LogError> {
        self.writable()?;
        if bytes.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        let mut owned = bytes.to_vec();
        let header = restamp_batch(&mut owned, self.log_end_offset(), leader_epoch)?;
        if header.size != owned.len() {
            return Err(LogError::InvalidBatch(BatchError::BadHeader {
                detail: format!("{} bytes after the batch", owned.len() - header.size),
            }));
        }
        self.append_as_follower(&owned)
    }

    /// Appends batches that already carry offsets (a follower's fetch result, as `read`
    /// returns them). Every batch is validated (length, magic, CRC, records) and must
    /// continue the log densely from the LEO; nothing is written unless all are valid.
    pub fn append_as_follower(&mut self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        self.writable()?;
        if batches.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        let mut spans = Vec::new();
        let mut expected = self.log_end_offset();
        let mut position = 0;
        while position < batches.len() {
            let span = check_batch_span(&batches[position..])?;
            if span.base_offset != expected {
                return Err(LogError::NonMonotonicOffset {
                    expected,
                    found: span.base_offset,
                });
            }
            expected = span.next_offset;
            position += span.size as usize;
            spans.push(span);
        }
        let base_offset = self.log_end_offset();
        let mut rolled = false;
        let (mut first, mut start) = (0, 0usize);
        while first < spans.len() {
            let lead = spans[first];
            rolled |= self.maybe_roll(lead.size, Offset(lead.next_offset.0 - 1))?;
            // Take every following batch that still fits without a roll: one write.
            let mut end = first + 1;
            let mut bytes = lead.size;
            while end < spans.len() {
                let next = spans[end];
                if self.needs_roll_after(bytes, next.size, Offset(next.next_offset.0 - 1)) {
                    break;
                }
                bytes += next.size;
                end += 1;
            }
            let interval = self.config.index_interval_bytes;
            let chunk = &batches[start..start + bytes as usize];
            self.active_mut()
                .append(chunk, &spans[first..end], interval)?;
            start += bytes as usize;
            first = end;
        }
        let flushed = self.maybe_flush()?;
        self.check_invariants();
        Ok(AppendInfo {
            base_offset,
            last_offset: Offset(expected.0 - 1),
            flushed,
            rolled,
        })
    }

    /// Raw encoded batches starting with the batch that contains `from`: whole batches up
    /// to `max_bytes`, but at least one whole batch even if it is larger (KIP-74). Empty
    /// when `from` is the LEO; `OffsetOutOfRange` below the log start or above the LEO.
    pub fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<u8>, LogError> {
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        if from < log_start || from > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset: from,
                log_start,
                log_end,
            });
        }
        let mut out = Vec::new();
        if from == log_end {
            return Ok(out);
        }
        let first = self.segment_index(from);
        let mut position = self.segments[first].find_batch(from)?;
        for segment in &self.segments[first..] {
            let take_one = out.is_empty();
            let budget = max_bytes.saturating_sub(out.len());
            if budget == 0 && !take_one {
                break;
            }
            if !segment.read_into(position, budget, take_one, &mut out)? {
                break;
            }
            position = 0;
        }
        Ok(out)
    }

    /// The records at offsets `>= from` of what [`Log::read`] returns, decoded.
    pub fn read_records(&self, from: Offset, max_bytes: usize) -> Result<Vec<Record>, LogError> {
        let bytes = self.read(from, max_bytes)?;
        let batches = decode_batches(&bytes)?;
        Ok(batches
            .into_iter()
            .flat_map(|b| b.records)
            .filter(|r| r.offset >= from)
            .collect())
    }

    /// Drops every record at or above `offset`. Truncation points are batch boundaries (as
    /// in Kafka): if `offset` falls inside a batch, the log is cut at that batch's base
    /// offset, so the LEO afterwards may be below `offset` — read it back with
    /// [`Log::log_end_offset`]. A no-op at or above the LEO; `OffsetOutOfRange` below the
    /// log start. Durable before it returns.
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        self.writable()?;
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        if offset >= log_end {
            return Ok(());
        }
        if offset < log_start {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let index = self.segment_index(offset);
        let position = self.segments[index].find_batch(offset)?;
        let target = self.segments[index].read_header(position)?.base_offset;
        if self.recovery_point > target {
            // Lower the durable claim first: a power cut between here and the cut below
            // must not leave a checkpoint above the data.
            self.recovery_point = target;
            self.write_offset_checkpoint(RECOVERY_POINT_OFFSET_CHECKPOINT, target)?;
        }
        for segment in self.segments.split_off(index + 1) {
            self.remove_segment_files(segment.base_offset)?;
        }
        self.segments[index].truncate_to(position, target)?;
        self.sync_dir_if_dirty()?;
        // Every remaining byte is synced: older segments at their roll, this one just now.
        self.recovery_point = target;
        self.check_invariants();
        Ok(())
    }

    /// Starts a new active segment at the LEO (a no-op if the active segment is empty).
    /// Flushes the old one and its index, syncs the directory and checkpoints the
    /// recovery point.
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.writable()?;
        if self.active().is_empty() {
            return Ok(());
        }
        let base = self.log_end_offset();
        let old = self.active_mut();
        old.sync_log()?;
        old.sync_index()?;
        let segment = self.create_segment(base)?;
        self.segments.push(segment);
        for segment in &mut self.segments {
            segment.sync_log()?;
        }
        self.sync_dir_if_dirty()?;
        self.recovery_point = base;
        self.write_offset_checkpoint(RECOVERY_POINT_OFFSET_CHECKPOINT, base)?;
        self.check_invariants();
        Ok(())
    }

    /// Makes everything up to the LEO durable: syncs segments with unsynced bytes and, if
    /// a segment was created or removed since, the directory. Recovery point := LEO.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.writable()?;
        if self.recovery_point == self.log_end_offset() && !self.dir_dirty {
            return Ok(());
        }
        for segment in &mut self.segments {
            segment.sync_log()?;
        }
        self.sync_dir_if_dirty()?;
        self.recovery_point = self.log_end_offset();
        self.check_invariants();
        Ok(())
    }

    /// Retention: deletes the oldest segments while they are past `retention.ms` (their
    /// largest timestamp older than `now_ms - retention_ms`) or while the log without them
    /// is still at least `retention.bytes`. Never the active segment. Advances the log
    /// start offset; the removal is durable. Returns the number of segments deleted.
    pub fn delete_old_segments(&mut self, now_ms: i64) -> Result<usize, LogError> {
        self.writable()?;
        let candidates = self.segments.len() - 1;
        let mut by_time = 0;
        if let Some(retention_ms) = self.config.retention_ms {
            let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
            for i in 0..candidates {
                match self.segments[i].max_timestamp()? {
                    Some(ts) if now_ms.saturating_sub(ts) > retention_ms => by_time = i + 1,
                    _ => break,
                }
            }
        }
        let mut by_size = 0;
        if let Some(retention_bytes) = self.config.retention_bytes {
            let mut excess = self.size_bytes().saturating_sub(retention_bytes);
            for segment in &self.segments[..candidates] {
                if excess < segment.size {
                    break;
                }
                excess -= segment.size;
                by_size += 1;
            }
        }
        let count = by_time.max(by_size);
        for segment in self.segments.drain(..count).collect::<Vec<_>>() {
            self.remove_segment_files(segment.base_offset)?;
        }
        self.sync_dir_if_dirty()?;
        self.check_invariants();
        Ok(count)
    }

    /// Persists the recovery point and log start offset checkpoints (atomically).
    pub fn checkpoint(&mut self) -> Result<(), LogError> {
        self.writable()?;
        self.write_offset_checkpoint(RECOVERY_POINT_OFFSET_CHECKPOINT, self.recovery_point)?;
        self.write_offset_checkpoint(LOG_START_OFFSET_CHECKPOINT, self.log_start_offset())
    }

    /// Clean shutdown: flush, sync the indexes, checkpoint. A read-only log just closes.
    pub fn close(mut self) -> Result<(), LogError> {
        if self.read_only {
            return Ok(());
        }
        self.flush()?;
        for segment in &mut self.segments {
            segment.sync_index()?;
        }
        self.checkpoint()
    }

    /// First offset of the log.
    pub fn log_start_offset(&self) -> Offset {
        self.segments
            .first()
            .map_or(self.empty_base, |s| s.base_offset)
    }

    /// LEO: the offset the next record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.segments
            .last()
            .map_or(self.empty_base, |s| s.next_offset)
    }

    /// Every record below it is durable.
    pub fn recovery_point(&self) -> Offset {
        self.recovery_point
    }

    /// Records appended since the last flush (`LEO - recovery point`).
    pub fn unflushed_messages(&self) -> u64 {
        self.log_end_offset().since(self.recovery_point)
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes of valid batches over all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    /// The log's directory on its disk.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Whether it was opened with `open_read_only`.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn writable(&self) -> Result<(), LogError> {
        if self.read_only {
            return Err(LogError::ReadOnly);
        }
        Ok(())
    }

    pub(super) fn active(&self) -> &Segment<D::File> {
        self.segments.last().expect("a writable log has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment<D::File> {
        self.segments
            .last_mut()
            .expect("a writable log has a segment")
    }

    /// Index of the segment holding `offset` (the last one whose base is `<= offset`).
    fn segment_index(&self, offset: Offset) -> usize {
        let after = self.segments.partition_point(|s| s.base_offset <= offset);
        assert!(after > 0, "offset {offset} below the first segment");
        after - 1
    }

    /// Whether a batch of `bytes` ending at `last_offset`, written after `pending` more
    /// bytes go to the active segment, needs a new segment.
    fn needs_roll_after(&self, pending: u64, bytes: u64, last_offset: Offset) -> bool {
        let active = self.active();
        if active.is_empty() && pending == 0 {
            return false;
        }
        active.size + pending + bytes > self.config.segment_bytes
            || !active.can_index(pending + bytes, last_offset)
    }

    fn maybe_roll(&mut self, bytes: u64, last_offset: Offset) -> Result<bool, LogError> {
        if self.needs_roll_after(0, bytes, last_offset) {
            self.roll()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn maybe_flush(&mut self) -> Result<bool, LogError> {
        match self.config.flush_interval_messages {
            Some(n) if self.unflushed_messages() >= n => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    pub(super) fn create_segment(&mut self, base: Offset) -> Result<Segment<D::File>, LogError> {
        let log_path = self.dir.join(log_file_name(base));
        let index_path = self.dir.join(index_file_name(base));
        let log = self
            .disk
            .create(&log_path)
            .map_err(LogError::io(format!("creating {}", log_path.display())))?;
        let index_file = self
            .disk
            .create(&index_path)
            .map_err(LogError::io(format!("creating {}", index_path.display())))?;
        self.dir_dirty = true;
        Ok(Segment {
            base_offset: base,
            log,
            index_file: Some(index_file),
            index: OffsetIndex::default(),
            size: 0,
            next_offset: base,
            max_timestamp_ms: None,
            bytes_since_index: 0,
            log_dirty: false,
            index_dirty: false,
        })
    }

    pub(super) fn remove_segment_files(&mut self, base: Offset) -> Result<(), LogError> {
        for name in [log_file_name(base), index_file_name(base)] {
            let path = self.dir.join(&name);
            if self.disk.exists(&path) {
                self.disk
                    .remove(&path)
                    .map_err(LogError::io(format!("removing {}", path.display())))?;
                self.dir_dirty = true;
            }
        }
        Ok(())
    }

    pub(super) fn sync_dir_if_dirty(&mut self) -> Result<(), LogError> {
        if self.dir_dirty {
            self.disk
                .sync_dir(&self.dir)
                .map_err(LogError::io(format!("syncing {}", self.dir.display())))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn write_offset_checkpoint(&self, name: &str, offset: Offset) -> Result<(), LogError> {
        CheckpointFile::write(
            &self.disk,
            &self.dir.join(name),
            &[vec![offset.0.to_string()]],
        )
    }

    /// The structural invariants; a failure is a bug in this module.
    pub(super) fn check_invariants(&self) {
        let mut expected = self.log_start_offset();
        for (i, segment) in self.segments.iter().enumerate() {
            assert_eq!(
                segment.base_offset, expected,
                "offsets must be dense across segments"
            );
            assert!(segment.next_offset >= segment.base_offset);
            assert_eq!(
                segment.is_empty(),
                segment.next_offset == segment.base_offset,
                "a segment is empty iff it holds no offset"
            );
            assert!(
                !segment.is_empty() || i + 1 == self.segments.len() || self.read_only,
                "only the active segment may be empty"
            );
            expected = segment.next_offset;
        }
        assert!(
            self.log_start_offset() <= self.recovery_point
                && self.recovery_point <= self.log_end_offset(),
            "log start {} <= recovery point {} <= LEO {}",
            self.log_start_offset(),
            self.recovery_point,
            self.log_end_offset()
        );
    }
}
