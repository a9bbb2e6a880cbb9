//! Opening a log: recovery after a clean shutdown, a crash or a power cut.
//!
//! Owns: [`Log::open`], [`Log::open_read_only`] and the [`RecoveryReport`].
//!
//! What recovery trusts (Kafka's `LogLoader`, synchronously):
//! - The recovery-point checkpoint: every record below it was durable when it was written.
//!   Missing or malformed → 0 (validate everything), noted in the report.
//! - Segments wholly below the recovery point (the next segment starts at or below it)
//!   are trusted: only their index is sanity-checked (whole entries, increasing, inside
//!   the file, the last one pointing at a batch that ends at its offset) and the batches
//!   from the last index entry on are validated up to the end, which must be exactly where
//!   the next segment starts. An index that fails is rebuilt by validating the whole
//!   segment.
//! - The segment holding the recovery point and every later one are validated batch by
//!   batch (length, magic, header ranges, CRC, records, base offset = expected next
//!   offset). The first invalid batch, a gap between segments, or the end of the data ends
//!   the log: the segment is cut there and every later segment is deleted. Their indexes
//!   are rebuilt.
//! - Data that ends or is invalid *below* the recovery point is corruption of synced data:
//!   [`LogError::CorruptBelowRecoveryPoint`], a reported error — never a panic, and nothing
//!   on disk is changed before it is detected. Above the recovery point a torn tail is
//!   normal.
//!
//! A writable open then makes the recovered state durable (cut files and rebuilt indexes
//! synced, validated segments synced, directory synced) and sets the recovery point to the
//! LEO. A read-only open runs the same checks, keeps the valid lengths in memory and
//! changes nothing on disk.
//!
//! Simplification vs Kafka: no clean-shutdown marker, so the active segment is always
//! validated on open (it costs a read of one segment).

use super::batch::{parse_header, BATCH_HEADER_BYTES};
use super::checkpoint::CheckpointFile;
use super::engine::{
    Log, LEADER_EPOCH_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_OFFSET_CHECKPOINT,
};
use super::index::{parse_index, IndexEntry, OffsetIndex};
use super::segment::{index_file_name, log_file_name, parse_file_name, scan, ScanFrom, Segment};
use super::{LogConfig, LogError, Offset};
use crate::coverage::Mark;
use crate::disk::{Disk, DiskFile};
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecoveryReport {
    /// The checkpointed recovery point recovery started from (0 if none).
    pub recovery_point: Offset,
    /// Log start offset after recovery.
    pub log_start_offset: Offset,
    /// LEO after recovery.
    pub log_end_offset: Offset,
    /// Segments validated batch by batch.
    pub segments_validated: usize,
    /// Batches validated (CRC and records checked).
    pub batches_validated: u64,
    /// Where the log was cut, if it was (the LEO after recovery).
    pub truncated_at: Option<Offset>,
    /// Bytes cut or deleted (torn tails, dropped segments).
    pub bytes_truncated: u64,
    /// Segment files deleted because they came after the cut.
    pub segments_dropped: Vec<String>,
    /// Index files written because they were missing, stale or untrustworthy.
    pub indexes_rebuilt: usize,
    /// Anything else worth knowing: missing checkpoints, removed leftovers, odd files.
    pub notes: Vec<String>,
}

/// A segment found on disk and what recovery decided about it.
struct Loaded<F> {
    segment: Segment<F>,
    /// The index must be (re)written from `segment.index` (it came from a scan).
    rebuild_index: bool,
    /// The file is longer than the valid bytes: cut it.
    file_len: u64,
    /// The first invalid batch failed its CRC (rather than ending early or malformed).
    bad_crc: bool,
}

impl<D: Disk> Log<D> {
    /// Opens the log in `dir` (created if missing), recovering it; see the module doc.
    pub fn open(
        disk: D,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(Self, RecoveryReport), LogError> {
        Self::recover(disk, dir, config, false)
    }

    /// Opens the log in `dir` with the same recovery checks but changes nothing on disk:
    /// valid lengths are kept in memory; mutating calls return [`LogError::ReadOnly`].
    /// A missing directory reads as an empty log.
    pub fn open_read_only(
        disk: D,
        dir: &Path,
        config: LogConfig,
    ) -> Result<(Self, RecoveryReport), LogError> {
        Self::recover(disk, dir, config, true)
    }

    fn recover(
        disk: D,
        dir: &Path,
        config: LogConfig,
        read_only: bool,
    ) -> Result<(Self, RecoveryReport), LogError> {
        let dir = dir.to_path_buf();
        let mut report = RecoveryReport::default();
        if !read_only {
            disk.create_dir_all(&dir)
                .map_err(LogError::io(format!("creating {}", dir.display())))?;
        }
        let names = match disk.list(&dir) {
            Ok(names) => names,
            Err(e) if read_only && e.kind() == io::ErrorKind::NotFound => {
                report
                    .notes
                    .push(format!("{} does not exist: empty log", dir.display()));
                Vec::new()
            }
            Err(e) => return Err(LogError::io(format!("listing {}", dir.display()))(e)),
        };

        // Sort out the directory's files.
        let mut leftovers = Vec::new();
        let mut logs = Vec::new();
        let mut indexes = BTreeSet::new();
        for name in &names {
            if name.ends_with(".tmp") {
                report.notes.push(format!("removed leftover {name}"));
                leftovers.push(name.clone());
            } else if name == RECOVERY_POINT_OFFSET_CHECKPOINT
                || name == LOG_START_OFFSET_CHECKPOINT
                || name == LEADER_EPOCH_CHECKPOINT
            {
            } else if let Some(base) = parse_file_name(name, "log") {
                logs.push(base);
            } else if let Some(base) = parse_file_name(name, "index") {
                indexes.insert(base);
            } else {
                report.notes.push(format!("ignored unknown file {name}"));
            }
        }
        logs.sort();
        for base in &indexes {
            if logs.binary_search(base).is_err() {
                let name = index_file_name(*base);
                report.notes.push(format!("removed orphan index {name}"));
                leftovers.push(name);
            }
        }

        let checkpointed_rp =
            read_offset_checkpoint(&disk, &dir, RECOVERY_POINT_OFFSET_CHECKPOINT, &mut report)?;
        let log_start_cp =
            read_offset_checkpoint(&disk, &dir, LOG_START_OFFSET_CHECKPOINT, &mut report)?;
        let recovery_point = checkpointed_rp.unwrap_or(Offset(0));
        report.recovery_point = recovery_point;

        let mut recovery = Recovery {
            disk: &disk,
            dir: &dir,
            config: &config,
            recovery_point,
            report: &mut report,
        };
        let (loaded, dropped) = recovery.load(&logs, log_start_cp)?;

        let mut log = Log {
            disk: disk.clone(),
            dir: dir.clone(),
            config,
            read_only,
            segments: Vec::new(),
            empty_base: log_start_cp.unwrap_or(Offset(0)),
            recovery_point,
            dir_dirty: false,
        };
        if read_only {
            log.segments = loaded.into_iter().map(|l| l.segment).collect();
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            log.recovery_point = recovery_point.clamp(start, end);
        } else {
            log.apply(loaded, &dropped, &leftovers, &mut report)?;
        }
        log.check_invariants();
        report.log_start_offset = log.log_start_offset();
        report.log_end_offset = log.log_end_offset();
        Ok((log, report))
    }

    /// Makes the recovered state real and durable (writable open only).
    fn apply(
        &mut self,
        loaded: Vec<Loaded<D::File>>,
        dropped: &[Offset],
        leftovers: &[String],
        report: &mut RecoveryReport,
    ) -> Result<(), LogError> {
        for name in leftovers {
            let path = self.dir.join(name);
            self.disk
                .remove(&path)
                .map_err(LogError::io(format!("removing {}", path.display())))?;
            self.dir_dirty = true;
        }
        for base in dropped {
            self.remove_segment_files(*base)?;
        }
        for mut l in loaded {
            let name = l.segment.name();
            if l.file_len > l.segment.size {
                crate::coverage::hit(if l.bad_crc {
                    Mark::RecoveryTruncatesBadCrc
                } else {
                    Mark::RecoveryTruncatesTornTail
                });
                l.segment
                    .log
                    .truncate(l.segment.size)
                    .map_err(LogError::io(format!("truncating {name}")))?;
                l.segment.log_dirty = true;
            }
            // Validated segments are synced (a crash may have left them only in the page
            // cache), so the recovery point can move to the LEO.
            l.segment.sync_log()?;
            let index_path = self.dir.join(index_file_name(l.segment.base_offset));
            let file = if l.rebuild_index {
                let (file, rewritten) = persist_index(&self.disk, &index_path, &l.segment.index)?;
                report.indexes_rebuilt += usize::from(rewritten);
                if rewritten {
                    crate::coverage::hit(Mark::RecoveryRebuildsIndex);
                }
                file
            } else {
                self.disk
                    .open(&index_path)
                    .map_err(LogError::io(format!("opening {}", index_path.display())))?
            };
            l.segment.index_file = Some(file);
            self.segments.push(l.segment);
        }
        if self.segments.is_empty() {
            let base = self.empty_base;
            let segment = self.create_segment(base)?;
            self.segments.push(segment);
        }
        // Always: names created before a crash may not be durable yet.
        self.dir_dirty = true;
        self.sync_dir_if_dirty()?;
        self.recovery_point = self.log_end_offset();
        Ok(())
    }
}

/// The segments recovery keeps, and the base offsets of those it deletes.
type Plan<F> = (Vec<Loaded<F>>, Vec<Offset>);

/// Phase one of recovery: reads and checks, changes nothing.
struct Recovery<'a, D: Disk> {
    disk: &'a D,
    dir: &'a Path,
    config: &'a LogConfig,
    recovery_point: Offset,
    report: &'a mut RecoveryReport,
}

impl<D: Disk> Recovery<'_, D> {
    /// Loads the segments `logs` (sorted base offsets); returns the ones kept and the base
    /// offsets of the ones to delete.
    fn load(
        &mut self,
        logs: &[Offset],
        log_start_cp: Option<Offset>,
    ) -> Result<Plan<D::File>, LogError> {
        if logs.is_empty() {
            let base = log_start_cp.unwrap_or(Offset(0));
            if self.recovery_point > base {
                return Err(self.corrupt(base, 0, "no segment files at all".into()));
            }
            return Ok((Vec::new(), Vec::new()));
        }
        // The segment holding the recovery point: the last one starting at or below it.
        let first_validated = logs
            .partition_point(|b| *b <= self.recovery_point)
            .saturating_sub(1);
        let mut loaded = Vec::new();
        for i in 0..first_validated {
            loaded.push(self.load_trusted(logs[i], logs[i + 1])?);
        }
        let mut expected = logs[first_validated];
        let mut stop: Option<(Offset, u64, String)> = None;
        let mut dropped = Vec::new();
        for &base in &logs[first_validated..] {
            if stop.is_none() && base != expected {
                stop = Some((
                    base,
                    0,
                    format!("segment starts at offset {base}, expected {expected}"),
                ));
                self.report.truncated_at = Some(expected);
            }
            if stop.is_some() {
                self.report.bytes_truncated += self.file_len(&log_file_name(base))?;
                self.report.segments_dropped.push(log_file_name(base));
                dropped.push(base);
                continue;
            }
            let l = self.load_validated(base)?;
            if l.file_len > l.segment.size {
                stop = Some((base, l.segment.size, l_stop_detail(&l)));
                self.report.truncated_at = Some(l.segment.next_offset);
                self.report.bytes_truncated += l.file_len - l.segment.size;
            }
            expected = l.segment.next_offset;
            loaded.push(l);
        }
        if expected < self.recovery_point {
            let (base, position, detail) = match stop {
                Some(stop) => stop,
                None => {
                    let last = loaded.last().expect("a validated segment");
                    (
                        last.segment.base_offset,
                        last.segment.size,
                        format!("the data ends at offset {expected}"),
                    )
                }
            };
            return Err(self.corrupt(base, position, detail));
        }
        Ok((loaded, dropped))
    }

    /// A segment wholly below the recovery point, followed by one starting at `next_base`.
    fn load_trusted(
        &mut self,
        base: Offset,
        next_base: Offset,
    ) -> Result<Loaded<D::File>, LogError> {
        let name = log_file_name(base);
        let log = self.open(&name)?;
        let len = log.len();
        let trusted = match self.read_index(base, len)? {
            Ok(entries) => tail_start(&log, base, entries.last())
                .map_err(LogError::io(format!("reading {name}")))?
                .map(|from| (from, entries)),
            Err(why) => Err(why),
        };
        match trusted {
            Ok((from, entries)) => {
                let tail = scan(&log, from, len, true, None)
                    .map_err(LogError::io(format!("scanning {name}")))?;
                if tail.stop.is_none() && tail.next_offset == next_base {
                    let last_position = entries.last().map_or(0, |e| e.position as u64);
                    let known_max = (from.position == 0).then_some(tail.max_timestamp_ms);
                    return Ok(Loaded {
                        segment: Segment {
                            base_offset: base,
                            log,
                            index_file: None,
                            index: OffsetIndex::from_file_entries(entries),
                            size: len,
                            next_offset: next_base,
                            max_timestamp_ms: known_max.flatten(),
                            bytes_since_index: len - last_position,
                            log_dirty: false,
                            index_dirty: false,
                        },
                        rebuild_index: false,
                        file_len: len,
                        bad_crc: false,
                    });
                }
                self.report.notes.push(format!(
                    "index of {name} does not lead to a valid tail ending at {next_base}: \
                     revalidating the segment"
                ));
            }
            Err(why) => self
                .report
                .notes
                .push(format!("index of {name} untrustworthy ({why}): rebuilt")),
        }
        let l = self.validate(base, log)?;
        if l.file_len > l.segment.size || l.segment.next_offset != next_base {
            let detail = if l.file_len > l.segment.size {
                l_stop_detail(&l)
            } else {
                format!(
                    "segment ends at offset {}, the next one starts at {next_base}",
                    l.segment.next_offset
                )
            };
            return Err(self.corrupt(base, l.segment.size, detail));
        }
        Ok(l)
    }

    /// A segment at or above the recovery point: every batch validated.
    fn load_validated(&mut self, base: Offset) -> Result<Loaded<D::File>, LogError> {
        let log = self.open(&log_file_name(base))?;
        self.validate(base, log)
    }

    fn validate(&mut self, base: Offset, log: D::File) -> Result<Loaded<D::File>, LogError> {
        let len = log.len();
        let scan = scan(
            &log,
            ScanFrom::start(base),
            len,
            true,
            Some(self.config.index_interval_bytes),
        )
        .map_err(LogError::io(format!("scanning {}", log_file_name(base))))?;
        self.report.segments_validated += 1;
        self.report.batches_validated += scan.batches;
        if let Some(detail) = &scan.stop {
            self.report
                .notes
                .push(format!("{}: {detail}", log_file_name(base)));
        }
        Ok(Loaded {
            segment: Segment {
                base_offset: base,
                log,
                index_file: None,
                index: OffsetIndex::from_file_entries(scan.index),
                size: scan.end,
                next_offset: scan.next_offset,
                max_timestamp_ms: scan.max_timestamp_ms,
                bytes_since_index: scan.bytes_since_index,
                // A writable open syncs it: a crash may have left it in the page cache.
                log_dirty: true,
                index_dirty: false,
            },
            rebuild_index: true,
            file_len: len,
            bad_crc: scan
                .stop
                .as_deref()
                .is_some_and(|why| why.starts_with("CRC mismatch")),
        })
    }

    /// The index entries of segment `base` if its file is there and sane.
    fn read_index(
        &mut self,
        base: Offset,
        segment_len: u64,
    ) -> Result<Result<Vec<IndexEntry>, String>, LogError> {
        let path = self.dir.join(index_file_name(base));
        if !self.disk.exists(&path) {
            return Ok(Err("missing".into()));
        }
        let file = self
            .disk
            .open(&path)
            .map_err(LogError::io(format!("opening {}", path.display())))?;
        let mut bytes = vec![0u8; file.len() as usize];
        file.read_exact_at(0, &mut bytes)
            .map_err(LogError::io(format!("reading {}", path.display())))?;
        Ok(parse_index(&bytes, segment_len))
    }

    fn open(&self, name: &str) -> Result<D::File, LogError> {
        let path = self.dir.join(name);
        self.disk
            .open(&path)
            .map_err(LogError::io(format!("opening {}", path.display())))
    }

    fn file_len(&self, name: &str) -> Result<u64, LogError> {
        Ok(self.open(name)?.len())
    }

    fn corrupt(&self, base: Offset, position: u64, detail: String) -> LogError {
        LogError::CorruptBelowRecoveryPoint {
            segment: log_file_name(base),
            position,
            recovery_point: self.recovery_point,
            detail,
        }
    }
}

/// Where to validate a trusted segment's tail from: the batch at its last index entry,
/// which must be a batch header whose last offset is the entry's (else the index is not to
/// be trusted); the segment start without entries.
fn tail_start<F: DiskFile>(
    log: &F,
    base: Offset,
    last_entry: Option<&IndexEntry>,
) -> io::Result<Result<ScanFrom, String>> {
    let Some(entry) = last_entry else {
        return Ok(Ok(ScanFrom::start(base)));
    };
    let position = entry.position as u64;
    let mut bytes = [0u8; BATCH_HEADER_BYTES];
    if position + bytes.len() as u64 > log.len() {
        return Ok(Err(format!(
            "last entry {entry:?} points past the last batch header"
        )));
    }
    log.read_exact_at(position, &mut bytes)?;
    let header = match parse_header(&bytes) {
        Ok(header) => header,
        Err(e) => return Ok(Err(format!("last entry {entry:?}: {e}"))),
    };
    let indexed = base.plus(entry.relative_offset as u64);
    if header.last_offset() != indexed {
        return Ok(Err(format!(
            "last entry {entry:?} holds offset {indexed}, its batch ends at {}",
            header.last_offset()
        )));
    }
    Ok(Ok(ScanFrom {
        segment_base: base,
        position,
        offset: header.base_offset,
    }))
}

fn l_stop_detail<F: DiskFile>(l: &Loaded<F>) -> String {
    format!(
        "{} invalid bytes after offset {} at byte {}",
        l.file_len - l.segment.size,
        l.segment.next_offset,
        l.segment.size
    )
}

/// Reads a one-offset checkpoint; missing or malformed → `None`, noted.
fn read_offset_checkpoint<D: Disk>(
    disk: &D,
    dir: &Path,
    name: &str,
    report: &mut RecoveryReport,
) -> Result<Option<Offset>, LogError> {
    let path: PathBuf = dir.join(name);
    let entries = match CheckpointFile::read(disk, &path) {
        Ok(Some(entries)) => entries,
        Ok(None) => {
            report.notes.push(format!("no {name}"));
            return Ok(None);
        }
        Err(e @ LogError::MalformedCheckpoint { .. }) => {
            report.notes.push(format!("ignored {e}"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match entries.as_slice() {
        [entry] if entry.len() == 1 => match entry[0].parse::<u64>() {
            Ok(offset) if offset <= i64::MAX as u64 => Ok(Some(Offset(offset))),
            _ => {
                report
                    .notes
                    .push(format!("ignored {name}: bad offset {:?}", entry[0]));
                Ok(None)
            }
        },
        _ => {
            report
                .notes
                .push(format!("ignored {name}: expected one entry of one field"));
            Ok(None)
        }
    }
}

/// Makes the index file of a segment hold exactly `index` and be durable; returns the
/// open file and whether it had to be (re)written.
fn persist_index<D: Disk>(
    disk: &D,
    path: &Path,
    index: &OffsetIndex,
) -> Result<(D::File, bool), LogError> {
    let context = || format!("writing {}", path.display());
    let wanted = index.encode_all();
    if disk.exists(path) {
        let mut file = disk.open(path).map_err(LogError::io(context()))?;
        if file.len() == wanted.len() as u64 {
            let mut have = vec![0u8; wanted.len()];
            file.read_exact_at(0, &mut have)
                .map_err(LogError::io(context()))?;
            if have == wanted {
                file.sync().map_err(LogError::io(context()))?;
                return Ok((file, false));
            }
        }
    }
    let mut file = disk.create(path).map_err(LogError::io(context()))?;
    file.write_at(0, &wanted).map_err(LogError::io(context()))?;
    file.sync().map_err(LogError::io(context()))?;
    Ok((file, true))
}
