//! [`OffsetIndex`]: a segment's sparse offset index (Kafka's `OffsetIndex`).
//!
//! Each entry maps a batch's *last* offset, relative to the segment's base offset, to the
//! batch's byte position in the segment: 8 bytes on disk, relative offset u32 BE then
//! position u32 BE. That is what Kafka's `LogSegment.recover` writes (its `append` indexes
//! a whole append alike: the append's last offset at the append's first byte); ksim indexes
//! batch by batch both when appending and when rebuilding, so a rebuilt index equals the
//! appended one. An entry is added for the first batch appended after more than
//! `index.interval.bytes` bytes went in since the previous entry, so a lookup walks about
//! that many bytes of batch headers at most.
//!
//! Lookup (Kafka's `lookup`, then `searchForOffsetWithSize`): the last entry whose offset
//! is `<=` the target names a batch ending at or before the target, so the batch holding
//! the target starts there or later; the segment walks batch headers forward from it.
//! Truncation keeps the entries of the batches wholly below the cut.
//!
//! Invariants: relative offsets and positions both strictly increase; an entry points at
//! the start of a batch whose last offset it holds. Entries live in memory (a lookup is a
//! binary search) and reach the index file as they are appended — one small write per
//! append that adds one, as Kafka's memory-mapped index puts them in the page cache — and
//! are synced at roll, truncation and close. A power cut can leave the active segment's
//! index short or torn, so recovery never trusts it: the active segment is always validated
//! and its index rebuilt from its batches, compared with the file and rewritten if they
//! differ. A rolled segment's index was synced at its roll; recovery still checks it
//! ([`parse_index`], then the batch at its last entry) before using it.
//!
//! Simplification vs Kafka: no memory-mapped, preallocated file (so no trailing zeros to
//! trim after a crash).

/// One index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The batch's last offset minus the segment base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

impl IndexEntry {
    /// Decodes one on-disk entry.
    pub fn decode(bytes: [u8; ENTRY_BYTES]) -> IndexEntry {
        let [o0, o1, o2, o3, p0, p1, p2, p3] = bytes;
        IndexEntry {
            relative_offset: u32::from_be_bytes([o0, o1, o2, o3]),
            position: u32::from_be_bytes([p0, p1, p2, p3]),
        }
    }

    fn encode_into(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
}

/// Bytes per entry on disk.
pub(crate) const ENTRY_BYTES: usize = 8;

/// The in-memory index of one segment, and how much of it is in its file.
#[derive(Clone, Debug, Default)]
pub(crate) struct OffsetIndex {
    entries: Vec<IndexEntry>,
    /// Entries `[..written]` are in the index file (maybe unsynced).
    written: usize,
}

impl OffsetIndex {
    /// An index whose entries are all already in the file.
    pub fn from_file_entries(entries: Vec<IndexEntry>) -> Self {
        let written = entries.len();
        OffsetIndex { entries, written }
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<IndexEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry after every existing one.
    pub fn push(&mut self, entry: IndexEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "index entries must increase: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// Position of the last indexed batch whose last offset is `<= relative_offset` (0,
    /// the segment start, if none): the batch holding `relative_offset` starts there or
    /// later.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let after = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if after == 0 {
            0
        } else {
            self.entries[after - 1].position
        }
    }

    /// Drops the entries at or above `relative_offset` (the batches reaching a cut made at
    /// `relative_offset`); returns the number of entries that stay in the file (the file
    /// must be cut to that many entries).
    pub fn truncate_to(&mut self, relative_offset: u32) -> usize {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
        self.written = self.written.min(keep);
        self.written
    }

    /// Entries not yet in the file, encoded; marks them written.
    pub fn take_unwritten(&mut self, out: &mut Vec<u8>) -> usize {
        let start = self.written;
        for e in &self.entries[start..] {
            e.encode_into(out);
        }
        self.written = self.entries.len();
        start
    }

    pub fn unwritten_count(&self) -> usize {
        self.entries.len() - self.written
    }

    /// Encodes every entry (the whole file).
    pub fn encode_all(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for e in &self.entries {
            e.encode_into(&mut out);
        }
        out
    }
}

/// Why `entry` cannot follow `previous` (`None`: it is the first) in the index of a segment
/// of `segment_size` bytes (`None`: unknown). The first entry indexes a batch that more than
/// `index.interval.bytes` preceded, so neither of its fields is 0; both fields strictly
/// increase from entry to entry.
pub(crate) fn check_entry(
    previous: Option<IndexEntry>,
    entry: IndexEntry,
    segment_size: Option<u64>,
) -> Result<(), String> {
    match previous {
        Some(last)
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position =>
        {
            return Err(format!("entry {entry:?} does not increase after {last:?}"));
        }
        None if entry.relative_offset == 0 || entry.position == 0 => {
            return Err(format!("first entry {entry:?} points at the segment start"));
        }
        _ => {}
    }
    match segment_size {
        Some(size) if entry.position as u64 >= size => Err(format!(
            "entry {entry:?} points past the segment end {size}"
        )),
        _ => Ok(()),
    }
}

/// Parses an index file and checks it is sane for a segment of `segment_size` bytes:
/// whole entries, strictly increasing, positions inside the segment. Never panics.
pub(crate) fn parse_index(bytes: &[u8], segment_size: u64) -> Result<Vec<IndexEntry>, String> {
    if bytes.len() % ENTRY_BYTES != 0 {
        return Err(format!(
            "size {} is not a multiple of {ENTRY_BYTES}",
            bytes.len()
        ));
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
    for chunk in bytes.chunks_exact(ENTRY_BYTES) {
        let entry = IndexEntry::decode(chunk.try_into().expect("an 8-byte chunk"));
        check_entry(entries.last().copied(), entry, Some(segment_size))?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(relative_offset: u32, position: u32) -> IndexEntry {
        IndexEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn lookup_finds_the_last_entry_at_or_below() {
        let mut index = OffsetIndex::default();
        assert_eq!(index.lookup(5), 0);
        index.push(e(10, 100));
        index.push(e(20, 250));
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 100);
        assert_eq!(index.lookup(19), 100);
        assert_eq!(index.lookup(20), 250);
        assert_eq!(index.lookup(u32::MAX), 250);
    }

    #[test]
    fn encode_parse_round_trip_and_truncate() {
        let mut index = OffsetIndex::default();
        index.push(e(10, 100));
        index.push(e(20, 250));
        let mut out = Vec::new();
        assert_eq!(index.take_unwritten(&mut out), 0);
        assert_eq!(out, index.encode_all());
        assert_eq!(parse_index(&out, 251).unwrap(), index.entries());
        assert!(parse_index(&out, 250).is_err(), "position past the end");
        assert!(parse_index(&out[..7], 1000).is_err());
        let mut swapped = out[8..].to_vec();
        swapped.extend_from_slice(&out[..8]);
        assert!(parse_index(&swapped, 1000).is_err());
        assert_eq!(index.truncate_to(20), 1);
        assert_eq!(index.entries(), &[e(10, 100)]);
        assert_eq!(index.truncate_to(10), 0);
        assert_eq!(index.unwritten_count(), 0);
    }
}
