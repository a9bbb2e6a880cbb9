//! [`LeaderEpochCache`]: one partition replica's leader epoch → start offset map
//! (KIP-101/279), checkpointed in the partition directory as `leader-epoch-checkpoint`.
//!
//! Owns: which leader epochs this replica's log holds and where each begins. It answers
//! `OffsetsForLeaderEpoch` ([`LeaderEpochCache::end_offset_for`]): the end offset of an
//! epoch is the start offset of the next known epoch, or the LEO for the latest one. A
//! follower compares the leader's answer with its own to find where the logs diverge,
//! which replaces Kafka's old truncate-to-high-watermark rule (KAFKA-1211, KIP-101).
//!
//! Invariants (asserted after every change): epochs strictly increase and start offsets
//! never decrease along the entries; every epoch is ≥ 0. The checkpoint file is Kafka's
//! `CheckpointFile` text (`0`, count, then `epoch startOffset` lines) and is rewritten
//! atomically (temp file, sync, rename, sync dir) on every change before the call
//! returns, so what is on disk is always a state the cache was in.
//!
//! Simplification vs Kafka: Kafka's `assign` also evicts entries that conflict with a
//! newer epoch at a lower offset; here such an assignment is refused (it cannot happen
//! once followers truncate before they append, which this replica enforces).

use crate::disk::Disk;
use crate::log::{CheckpointFile, LeaderEpoch, LogError, Offset};
use std::path::{Path, PathBuf};

/// One entry: `epoch` began at `start_offset` (its first batch's base offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: LeaderEpoch,
    /// The offset of the first record written in it.
    pub start_offset: Offset,
}

/// The leader epoch cache of one partition replica, backed by its checkpoint file.
pub struct LeaderEpochCache<D: Disk> {
    disk: D,
    path: PathBuf,
    /// Sorted by epoch and by start offset.
    entries: Vec<EpochEntry>,
}

/// One line of a `leader-epoch-checkpoint` (`epoch startOffset`) following `previous`: the
/// entry, or why the line is malformed or out of order (epochs strictly increase from 0,
/// start offsets never decrease). Never panics.
pub fn parse_entry(line: &[String], previous: Option<EpochEntry>) -> Result<EpochEntry, String> {
    let [epoch, offset] = line else {
        return Err(format!("expected `epoch offset`, got {line:?}"));
    };
    let epoch: i32 = epoch.parse().map_err(|_| format!("bad epoch {epoch:?}"))?;
    let offset: u64 = offset
        .parse()
        .map_err(|_| format!("bad offset {offset:?}"))?;
    let entry = EpochEntry {
        epoch: LeaderEpoch(epoch),
        start_offset: Offset(offset),
    };
    let monotonic = previous
        .is_none_or(|last| last.epoch < entry.epoch && last.start_offset <= entry.start_offset);
    if epoch < 0 || !monotonic {
        return Err(format!("entry {line:?} out of order"));
    }
    Ok(entry)
}

impl<D: Disk> LeaderEpochCache<D> {
    /// Loads the cache from the checkpoint at `path` (empty if the file does not exist).
    /// A malformed file, or entries that are not monotonic, is a typed error.
    pub fn load(disk: D, path: &Path) -> Result<Self, LogError> {
        let mut entries: Vec<EpochEntry> = Vec::new();
        for line in CheckpointFile::read(&disk, path)?.unwrap_or_default() {
            let entry = parse_entry(&line, entries.last().copied()).map_err(|detail| {
                LogError::MalformedCheckpoint {
                    path: path.display().to_string(),
                    detail,
                }
            })?;
            entries.push(entry);
        }
        Ok(LeaderEpochCache {
            disk,
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The entries, oldest epoch first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest entry, if any.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.latest().map(|e| e.epoch)
    }

    /// Where `epoch` began, if the cache holds it.
    pub fn start_offset_of(&self, epoch: LeaderEpoch) -> Option<Offset> {
        self.entries
            .iter()
            .find(|e| e.epoch == epoch)
            .map(|e| e.start_offset)
    }

    /// Records that `epoch` begins at `start_offset`, if `epoch` is newer than the latest
    /// and `start_offset` is not below the latest entry's start. An entry for an older
    /// epoch that starts at the same offset held no record: it is replaced. Returns
    /// whether the cache changed (and was checkpointed).
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> Result<bool, LogError> {
        assert!(epoch.0 >= 0, "assigning epoch {epoch}");
        if let Some(last) = self.latest() {
            if epoch <= last.epoch || start_offset < last.start_offset {
                return Ok(false);
            }
            if start_offset == last.start_offset {
                self.entries.pop();
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.changed()?;
        Ok(true)
    }

    /// The answer to `OffsetsForLeaderEpoch(requested)` (KIP-279): the largest known epoch
    /// ≤ `requested` and the offset where it ends — the start of the next known epoch,
    /// or `leo` if it is the latest. If `requested` is below every known epoch (or
    /// [`LeaderEpoch::NONE`]): `NONE` and the first epoch's start offset (the whole log
    /// diverges). `None` if the cache is empty or `requested` is newer than every
    /// known epoch (nothing can be said).
    pub fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        leo: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let latest = self.latest()?;
        if requested > latest.epoch {
            return None;
        }
        if requested == latest.epoch {
            return Some((latest.epoch, leo));
        }
        let above = self.entries.partition_point(|e| e.epoch <= requested);
        let next_start = self.entries[above].start_offset;
        if above == 0 {
            return Some((LeaderEpoch::NONE, next_start));
        }
        Some((self.entries[above - 1].epoch, next_start))
    }

    /// Drops every entry that starts at or after `end_offset` (after the log was
    /// truncated to `end_offset`).
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> Result<(), LogError> {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.changed()?;
        }
        Ok(())
    }

    /// Forgets what lies below `start_offset` (after old segments were deleted): entries
    /// wholly below it go; the one spanning it now starts at it.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> Result<(), LogError> {
        let spanning = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if spanning == 0 {
            return Ok(());
        }
        let first = spanning - 1;
        if first == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        self.entries.drain(..first);
        self.entries[0].start_offset = start_offset;
        self.changed()
    }

    /// Asserts the invariants and rewrites the checkpoint.
    fn changed(&mut self) -> Result<(), LogError> {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].epoch < pair[1].epoch && pair[0].start_offset <= pair[1].start_offset,
                "leader epoch cache out of order: {:?}",
                self.entries
            );
        }
        let lines: Vec<Vec<String>> = self
            .entries
            .iter()
            .map(|e| vec![e.epoch.0.to_string(), e.start_offset.0.to_string()])
            .collect();
        CheckpointFile::write(&self.disk, &self.path, &lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::FsDisk;

    struct TempRoot(PathBuf);

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cache(name: &str) -> (LeaderEpochCache<FsDisk>, FsDisk, TempRoot) {
        let root = std::env::temp_dir().join(format!("ksim-epochs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let disk = FsDisk::new(&root).unwrap();
        let cache = LeaderEpochCache::load(disk.clone(), Path::new("cp")).unwrap();
        (cache, disk, TempRoot(root))
    }

    fn entries(c: &LeaderEpochCache<FsDisk>) -> Vec<(i32, u64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch.0, e.start_offset.0))
            .collect()
    }

    #[test]
    fn assign_accepts_only_newer_epochs_at_or_after_the_last_start() {
        let (mut c, _, _root) = cache("assign");
        assert!(c.assign(LeaderEpoch(1), Offset(0)).unwrap());
        assert!(!c.assign(LeaderEpoch(1), Offset(5)).unwrap(), "same epoch");
        assert!(!c.assign(LeaderEpoch(0), Offset(5)).unwrap(), "older epoch");
        assert!(c.assign(LeaderEpoch(3), Offset(4)).unwrap());
        assert!(
            !c.assign(LeaderEpoch(4), Offset(2)).unwrap(),
            "offset went back"
        );
        // Epoch 3 held nothing when epoch 5 starts at the same offset: replaced.
        assert!(c.assign(LeaderEpoch(5), Offset(4)).unwrap());
        assert_eq!(entries(&c), vec![(1, 0), (5, 4)]);
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(5)));
        assert_eq!(c.start_offset_of(LeaderEpoch(1)), Some(Offset(0)));
        assert_eq!(c.start_offset_of(LeaderEpoch(3)), None);
    }

    #[test]
    fn end_offset_for_follows_kip_279() {
        let (mut c, _, _root) = cache("end");
        assert_eq!(c.end_offset_for(LeaderEpoch(0), Offset(0)), None);
        c.assign(LeaderEpoch(1), Offset(2)).unwrap();
        c.assign(LeaderEpoch(3), Offset(5)).unwrap();
        c.assign(LeaderEpoch(4), Offset(9)).unwrap();
        let leo = Offset(12);
        let cases = [
            (4, Some((4, 12))), // the latest epoch ends at the LEO
            (3, Some((3, 9))),  // a known epoch ends where the next starts
            (2, Some((1, 5))),  // unknown: the largest known ≤ 2, ending where 3 starts
            (1, Some((1, 5))),
            (0, Some((-1, 2))), // below every epoch: NONE, the first start
            (-1, Some((-1, 2))),
            (7, None), // newer than anything known
        ];
        for (requested, expected) in cases {
            let got = c
                .end_offset_for(LeaderEpoch(requested), leo)
                .map(|(e, o)| (e.0, o.0));
            assert_eq!(got, expected, "requested {requested}");
        }
    }

    #[test]
    fn truncation_from_either_end_and_the_checkpoint_survives_reload() {
        let (mut c, disk, _root) = cache("trunc");
        for (epoch, start) in [(0, 0), (2, 3), (3, 7), (6, 10)] {
            c.assign(LeaderEpoch(epoch), Offset(start)).unwrap();
        }
        c.truncate_from_end(Offset(7)).unwrap();
        assert_eq!(entries(&c), vec![(0, 0), (2, 3)]);
        c.truncate_from_end(Offset(100)).unwrap();
        assert_eq!(entries(&c), vec![(0, 0), (2, 3)]);
        c.assign(LeaderEpoch(4), Offset(8)).unwrap();
        c.truncate_from_start(Offset(5)).unwrap();
        assert_eq!(entries(&c), vec![(2, 5), (4, 8)]);
        c.truncate_from_start(Offset(2)).unwrap();
        assert_eq!(entries(&c), vec![(2, 5), (4, 8)]);
        let text = std::fs::read_to_string(disk.root().join("cp")).unwrap();
        assert_eq!(text, "0\n2\n2 5\n4 8\n");
        let again = LeaderEpochCache::load(disk.clone(), Path::new("cp")).unwrap();
        assert_eq!(entries(&again), vec![(2, 5), (4, 8)]);
        std::fs::write(disk.root().join("cp"), "0\n2\n4 5\n2 8\n").unwrap();
        assert!(matches!(
            LeaderEpochCache::load(disk, Path::new("cp")),
            Err(LogError::MalformedCheckpoint { .. })
        ));
    }
}
