//! The record batch codec: Kafka's record batch format v2 ("magic 2"), byte for byte.
//!
//! Owns: [`BatchBuilder`] (encodes records straight into one buffer, like Kafka's
//! `MemoryRecordsBuilder`), [`decode_batch`] / [`decode_batches`] (bytes → [`RecordBatch`]),
//! the header walk the segments use ([`check_batch`]), a field-by-field reading for dumps
//! that survives a bad CRC ([`inspect_batch`]), and [`BatchError`]; and the transaction
//! markers: control batches holding one [`ControlRecord`] (COMMIT or ABORT), built by
//! [`BatchBuilder::end_txn_marker`] and read back by [`RecordBatch::control_record`] /
//! [`read_control_record`], malformed ones being a [`ControlRecordError`].
//!
//! Layout (big-endian fixed-width integers; varints are zigzag, like protobuf's `sint`):
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 = 2 | crc u32
//! | attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64
//! | producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
//! record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
//!         | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
//!         | headerCount varint | (headerKeyLength varint | key utf8 | headerValueLength varint | value)*
//! ```
//!
//! `batchLength` counts the bytes after itself; the CRC-32C covers `attributes` to the end,
//! so the leader can stamp `baseOffset` and `partitionLeaderEpoch` without recomputing it.
//!
//! Invariants: decoding never panics, whatever the bytes: every malformed input is a
//! [`BatchError`] value. A batch that decodes has `recordCount == lastOffsetDelta + 1 >= 1`
//! and its records carry offset deltas `0, 1, 2, ...` (offsets are dense).
//!
//! Attributes: bit 0x10 marks a transactional batch, 0x20 a control batch (Kafka's
//! `TRANSACTIONAL_FLAG_MASK`, `CONTROL_FLAG_MASK`); a builder writes 0 unless told
//! otherwise, so a plain batch's bytes are what they always were. A control batch is
//! transactional too (0x30), carries the producer id and epoch of the transaction it ends
//! and base sequence -1, and holds one record: key = version i16 (0) | type i16 (ABORT 0,
//! COMMIT 1), value = version i16 (0) | coordinatorEpoch i32 (Kafka's `ControlRecordType`
//! and `EndTransactionMarker`).
//!
//! Simplifications vs Kafka: no compression, no empty batches (Kafka keeps them after
//! compaction, which ksim does not do), header values cannot be null, and the only control
//! records are transaction markers of version 0 (Kafka also tolerates unknown control types
//! and newer versions with trailing fields; ksim reports them as errors).

use super::{LeaderEpoch, Offset, ProducerId};
use std::fmt;

/// Bytes before `batchLength` ends: `baseOffset` + `batchLength` (Kafka's LOG_OVERHEAD).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed batch header, up to and including `recordCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// The only record format this codec speaks.
pub const MAGIC: i8 = 2;
/// Attribute bit of a batch written inside a transaction (Kafka's `TRANSACTIONAL_FLAG_MASK`).
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
/// Attribute bit of a control batch (Kafka's `CONTROL_FLAG_MASK`).
pub const CONTROL_FLAG: i16 = 0x20;

const LENGTH_AT: usize = 8;
const EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
/// The smallest encodable record: length, attributes, and five one-byte varints.
const MIN_RECORD_BYTES: usize = 7;

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset: the batch's base offset plus the record's offset delta.
    pub offset: Offset,
    /// Absolute timestamp: the batch's base timestamp plus the record's delta.
    pub timestamp_ms: i64,
    /// `None` encodes as length -1.
    pub key: Option<Vec<u8>>,
    /// `None` encodes as length -1 (a tombstone in Kafka).
    pub value: Option<Vec<u8>>,
    /// Header keys are UTF-8; values are bytes.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// One decoded record batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Epoch of the leader that appended the batch (KIP-101); -1 if none.
    pub partition_leader_epoch: LeaderEpoch,
    /// Kafka's batch attributes: [`TRANSACTIONAL_FLAG`], [`CONTROL_FLAG`]; 0 otherwise.
    pub attributes: i16,
    /// `last offset - base offset`.
    pub last_offset_delta: i32,
    /// Timestamp the record deltas are relative to.
    pub base_timestamp_ms: i64,
    /// Largest record timestamp.
    pub max_timestamp_ms: i64,
    /// Idempotent producer id; -1 if none.
    pub producer_id: ProducerId,
    /// Idempotent producer epoch; -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record; -1 if none.
    pub base_sequence: i32,
    /// The records, offsets dense from `base_offset`.
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// Offset of the last record.
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset.0 + self.last_offset_delta as u64)
    }

    /// Offset just after the last record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.last_offset().0 + 1)
    }

    /// Whether the batch was written inside a transaction (control batches are too).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Whether the batch is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// The transaction marker of a control batch: its one record, parsed.
    pub fn control_record(&self) -> Result<ControlRecord, ControlRecordError> {
        if !self.is_control() {
            return Err(ControlRecordError::NotAControlBatch);
        }
        match self.records.as_slice() {
            [record] => ControlRecord::parse(record.key.as_deref(), record.value.as_deref()),
            records => Err(ControlRecordError::RecordCount(records.len())),
        }
    }
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than the batch needs.
    Truncated {
        /// Bytes the batch (or its length prefix) needs.
        needed: usize,
        /// Bytes there were.
        available: usize,
    },
    /// `batchLength` is smaller than a header or absurd.
    BadLength {
        /// The stored `batchLength`.
        length: i32,
    },
    /// `magic` is not 2.
    BadMagic {
        /// The stored magic byte.
        magic: i8,
    },
    /// The CRC-32C does not match the bytes.
    BadCrc {
        /// CRC stored in the batch.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A header field is out of range (negative offset, count inconsistent with deltas...).
    BadHeader {
        /// What is wrong.
        detail: String,
    },
    /// The records section does not parse.
    BadRecords {
        /// Index of the record that failed.
        record: usize,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => {
                write!(
                    f,
                    "truncated batch: needs {needed} bytes, {available} available"
                )
            }
            BatchError::BadLength { length } => write!(f, "bad batch length {length}"),
            BatchError::BadMagic { magic } => write!(f, "bad magic {magic} (expected {MAGIC})"),
            BatchError::BadCrc { stored, computed } => {
                write!(
                    f,
                    "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            BatchError::BadHeader { detail } => write!(f, "bad batch header: {detail}"),
            BatchError::BadRecords { record, detail } => {
                write!(f, "bad record #{record}: {detail}")
            }
        }
    }
}

impl std::error::Error for BatchError {}

/// The producer-side fields of a batch being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Written into `partitionLeaderEpoch`.
    pub leader_epoch: LeaderEpoch,
    /// Record timestamps are stored relative to this.
    pub base_timestamp_ms: i64,
    /// -1 when the producer is not idempotent.
    pub producer_id: ProducerId,
    /// -1 when the producer is not idempotent.
    pub producer_epoch: i16,
    /// -1 when the producer is not idempotent.
    pub base_sequence: i32,
}

impl Default for BatchMeta {
    fn default() -> Self {
        BatchMeta {
            leader_epoch: LeaderEpoch::NONE,
            base_timestamp_ms: 0,
            producer_id: ProducerId::NONE,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// Builds one v2 batch directly into its encoded buffer (like Kafka's
/// `MemoryRecordsBuilder`): records are encoded as they are pushed, with no per-record
/// allocation; [`BatchBuilder::encode`] stamps the header and CRC in place.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    meta: BatchMeta,
    attributes: i16,
    count: i32,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    /// An empty batch.
    pub fn new(meta: BatchMeta) -> Self {
        Self::with_capacity(meta, BATCH_HEADER_BYTES + 256)
    }

    /// An empty batch whose buffer holds `bytes` before it grows.
    pub fn with_capacity(meta: BatchMeta, bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(BATCH_HEADER_BYTES));
        buf.resize(BATCH_HEADER_BYTES, 0);
        BatchBuilder {
            buf,
            meta,
            attributes: 0,
            count: 0,
            max_timestamp_ms: i64::MIN,
        }
    }

    /// A control batch holding one transaction marker (Kafka's
    /// `MemoryRecords.withEndTransactionMarker`): attributes transactional + control, the
    /// producer id and epoch of `meta` (the transaction's), base sequence -1 whatever `meta`
    /// says, and one record stamped `meta.base_timestamp_ms`. Encode it with
    /// [`BatchBuilder::encode`].
    pub fn end_txn_marker(meta: BatchMeta, marker: ControlRecord) -> Self {
        let meta = BatchMeta {
            base_sequence: -1,
            ..meta
        };
        let mut builder = Self::new(meta);
        builder.attributes = TRANSACTIONAL_FLAG | CONTROL_FLAG;
        builder.push(
            meta.base_timestamp_ms,
            Some(&marker.key_bytes()),
            Some(&marker.value_bytes()),
            &[],
        );
        builder
    }

    /// Marks the batch as written inside a transaction (attribute 0x10), or not.
    pub fn set_transactional(&mut self, transactional: bool) {
        if transactional {
            self.attributes |= TRANSACTIONAL_FLAG;
        } else {
            self.attributes &= !TRANSACTIONAL_FLAG;
        }
    }

    /// Whether the batch is marked transactional.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Appends one record. Keys, values and headers must each be shorter than 2 GiB.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) {
        assert!(self.count < i32::MAX, "batch record count overflows i32");
        let timestamp_delta = timestamp_ms.wrapping_sub(self.meta.base_timestamp_ms);
        let offset_delta = self.count;
        let mut body = 1 // attributes
            + varlong_size(timestamp_delta)
            + varint_size(offset_delta)
            + bytes_field_size(key)
            + bytes_field_size(value)
            + varint_size(len_i32(headers.len()));
        for (k, v) in headers {
            body += bytes_field_size(Some(k.as_bytes())) + bytes_field_size(Some(v));
        }
        let body = len_i32(body);
        self.buf.reserve(varint_size(body) + body as usize);
        put_varint(&mut self.buf, body);
        self.buf.push(0); // record attributes: unused in v2
        put_varlong(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, offset_delta);
        put_bytes_field(&mut self.buf, key);
        put_bytes_field(&mut self.buf, value);
        put_varint(&mut self.buf, len_i32(headers.len()));
        for (k, v) in headers {
            put_bytes_field(&mut self.buf, Some(k.as_bytes()));
            put_bytes_field(&mut self.buf, Some(v));
        }
        self.count += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the encoded batch, header included.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The producer-side fields.
    pub fn meta(&self) -> BatchMeta {
        self.meta
    }

    /// Largest record timestamp (the base timestamp while empty).
    pub fn max_timestamp_ms(&self) -> i64 {
        if self.is_empty() {
            self.meta.base_timestamp_ms
        } else {
            self.max_timestamp_ms
        }
    }

    /// Empties the batch for reuse, keeping the buffer's allocation: it is then what
    /// [`BatchBuilder::new`] gives (not transactional).
    pub fn clear(&mut self, meta: BatchMeta) {
        self.buf.truncate(BATCH_HEADER_BYTES);
        self.buf.fill(0);
        self.meta = meta;
        self.attributes = 0;
        self.count = 0;
        self.max_timestamp_ms = i64::MIN;
    }

    /// Stamps the header (with `base_offset`) and the CRC, and returns the encoded batch.
    /// The builder stays usable: more records can be pushed and the batch encoded again.
    ///
    /// Panics if the batch is empty or larger than 2 GiB, or `base_offset` leaves no room
    /// for its records below `i64::MAX`: callers check those first.
    pub fn encode(&mut self, base_offset: Offset) -> &[u8] {
        assert!(!self.is_empty(), "encoding an empty batch");
        let length = i32::try_from(self.buf.len() - LOG_OVERHEAD).expect("batch under 2 GiB");
        let last_delta = self.count - 1;
        assert!(
            base_offset.0 <= (i64::MAX - last_delta as i64) as u64,
            "base offset {} out of the i64 range",
            base_offset.0
        );
        let max_timestamp = self.max_timestamp_ms();
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&(base_offset.0 as i64).to_be_bytes());
        b[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        b[EPOCH_AT..EPOCH_AT + 4].copy_from_slice(&self.meta.leader_epoch.0.to_be_bytes());
        b[MAGIC_AT] = MAGIC as u8;
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&self.attributes.to_be_bytes());
        b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&last_delta.to_be_bytes());
        b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8]
            .copy_from_slice(&self.meta.base_timestamp_ms.to_be_bytes());
        b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
        b[PRODUCER_ID_AT..PRODUCER_ID_AT + 8]
            .copy_from_slice(&self.meta.producer_id.0.to_be_bytes());
        b[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2]
            .copy_from_slice(&self.meta.producer_epoch.to_be_bytes());
        b[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4]
            .copy_from_slice(&self.meta.base_sequence.to_be_bytes());
        b[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        &self.buf
    }
}

/// The fixed header of a batch, parsed and range-checked (not CRC-checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Size of the whole batch in bytes, `LOG_OVERHEAD + batchLength`.
    pub size: usize,
    /// `partitionLeaderEpoch`.
    pub leader_epoch: LeaderEpoch,
    /// Stored CRC.
    pub crc: u32,
    /// `attributes`: [`TRANSACTIONAL_FLAG`], [`CONTROL_FLAG`].
    pub attributes: i16,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// `maxTimestamp`.
    pub max_timestamp_ms: i64,
    /// `recordCount`.
    pub record_count: i32,
    /// `producerId`: -1 when the producer is not idempotent.
    pub producer_id: ProducerId,
    /// `producerEpoch`: -1 when the producer is not idempotent.
    pub producer_epoch: i16,
    /// `baseSequence`: -1 when the producer is not idempotent.
    pub base_sequence: i32,
}

impl BatchHeader {
    /// Offset of the last record.
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset.0 + self.last_offset_delta as u64)
    }

    /// Offset just after the last record.
    pub fn next_offset(&self) -> Offset {
        Offset(self.last_offset().0 + 1)
    }

    /// Whether the batch was written inside a transaction (control batches are too).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Whether the batch is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

/// The size of the batch starting at `bytes` from its length prefix alone, if the prefix
/// is there and plausible. Used to walk a run of batches without parsing them.
pub fn batch_size(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD,
            available: bytes.len(),
        });
    }
    let length = i32::from_be_bytes(bytes[LENGTH_AT..LENGTH_AT + 4].try_into().unwrap());
    if length < (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32 {
        return Err(BatchError::BadLength { length });
    }
    Ok(LOG_OVERHEAD + length as usize)
}

/// Parses and range-checks the fixed header at the start of `bytes` (at least
/// [`BATCH_HEADER_BYTES`] of them needed); checks neither the CRC nor the records.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let size = batch_size(bytes)?;
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_BYTES,
            available: bytes.len(),
        });
    }
    let magic = bytes[MAGIC_AT] as i8;
    if magic != MAGIC {
        return Err(BatchError::BadMagic { magic });
    }
    let base_offset = be_i64(bytes, 0);
    let last_offset_delta = be_i32(bytes, LAST_OFFSET_DELTA_AT);
    let record_count = be_i32(bytes, RECORD_COUNT_AT);
    let bad = |detail: String| Err(BatchError::BadHeader { detail });
    if base_offset < 0 {
        return bad(format!("negative base offset {base_offset}"));
    }
    if last_offset_delta < 0 {
        return bad(format!("negative last offset delta {last_offset_delta}"));
    }
    if base_offset > i64::MAX - last_offset_delta as i64 {
        return bad(format!(
            "last offset overflows: base {base_offset} + delta {last_offset_delta}"
        ));
    }
    if record_count as i64 != last_offset_delta as i64 + 1 {
        return bad(format!(
            "record count {record_count} does not match last offset delta {last_offset_delta}"
        ));
    }
    if (record_count as usize).saturating_mul(MIN_RECORD_BYTES) > size - BATCH_HEADER_BYTES {
        return bad(format!(
            "{record_count} records cannot fit in {} bytes",
            size - BATCH_HEADER_BYTES
        ));
    }
    Ok(BatchHeader {
        base_offset: Offset(base_offset as u64),
        size,
        leader_epoch: LeaderEpoch(be_i32(bytes, EPOCH_AT)),
        crc: be_u32(bytes, CRC_AT),
        attributes: be_i16(bytes, ATTRIBUTES_AT),
        last_offset_delta,
        max_timestamp_ms: be_i64(bytes, MAX_TIMESTAMP_AT),
        record_count,
        producer_id: ProducerId(be_i64(bytes, PRODUCER_ID_AT)),
        producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
        base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
    })
}

/// Stamps `baseOffset` and `partitionLeaderEpoch` into the encoded batch at the start of
/// `bytes` (what a leader does to a producer's batch). Neither field is covered by the
/// CRC-32C (it starts at `attributes`), so the batch stays valid without recomputing it.
/// Fails if `bytes` is not a whole valid batch or the offsets would overflow `i64`.
pub fn restamp_batch(
    bytes: &mut [u8],
    base_offset: Offset,
    leader_epoch: LeaderEpoch,
) -> Result<BatchHeader, BatchError> {
    let header = check_batch(bytes)?;
    if base_offset.0 > (i64::MAX - header.last_offset_delta as i64) as u64 {
        return Err(BatchError::BadHeader {
            detail: format!("base offset {base_offset} out of the i64 range"),
        });
    }
    bytes[0..8].copy_from_slice(&(base_offset.0 as i64).to_be_bytes());
    bytes[EPOCH_AT..EPOCH_AT + 4].copy_from_slice(&leader_epoch.0.to_be_bytes());
    Ok(BatchHeader {
        base_offset,
        leader_epoch,
        ..header
    })
}

/// Fully validates the batch at the start of `bytes` — length, magic, header ranges, CRC
/// and every record — without allocating. Returns its header; bytes after it are ignored.
pub fn check_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = checked_header(bytes)?;
    walk_records(&bytes[..header.size], &header, |_| Ok(()))?;
    Ok(header)
}

/// Decodes the first batch of `bytes`; returns it and the bytes it took. Never panics.
pub fn decode_batch(bytes: &[u8]) -> Result<(RecordBatch, usize), BatchError> {
    let header = checked_header(bytes)?;
    let bytes = &bytes[..header.size];
    let base_timestamp_ms = be_i64(bytes, BASE_TIMESTAMP_AT);
    let mut records = Vec::with_capacity(header.record_count as usize);
    collect_records(bytes, &header, &mut records)?;
    let batch = RecordBatch {
        base_offset: header.base_offset,
        partition_leader_epoch: header.leader_epoch,
        attributes: header.attributes,
        last_offset_delta: header.last_offset_delta,
        base_timestamp_ms,
        max_timestamp_ms: header.max_timestamp_ms,
        producer_id: ProducerId(be_i64(bytes, PRODUCER_ID_AT)),
        producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
        base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
        records,
    };
    Ok((batch, header.size))
}

/// A record of a batch, borrowed from the batch's bytes ([`visit_batch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Its offset.
    pub offset: Offset,
    /// Its key, if any.
    pub key: Option<&'a [u8]>,
    /// Its value, if any.
    pub value: Option<&'a [u8]>,
}

/// Checks the first batch of `bytes` as [`decode_batch`] does and hands its records to
/// `each` in order, borrowed instead of copied; returns its header and the bytes it took.
/// On a bad record it stops with the error, after handing over the records before it.
/// Never panics.
pub fn visit_batch<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(RecordRef<'a>),
) -> Result<(BatchHeader, usize), BatchError> {
    let header = checked_header(bytes)?;
    let bytes = &bytes[..header.size];
    walk_records(bytes, &header, |view| {
        each(RecordRef {
            offset: Offset(header.base_offset.0 + view.offset_delta as u64),
            key: view.key,
            value: view.value,
        });
        Ok(())
    })?;
    let size = header.size;
    Ok((header, size))
}

/// Decodes the records of a whole batch whose header parsed (`bytes.len() ==
/// header.size`) into `out`, in order; on a bad record, `out` keeps those before it.
fn collect_records(
    bytes: &[u8],
    header: &BatchHeader,
    out: &mut Vec<Record>,
) -> Result<(), BatchError> {
    let base_timestamp_ms = be_i64(bytes, BASE_TIMESTAMP_AT);
    walk_records(bytes, header, |view| {
        let mut headers = Vec::with_capacity(view.header_count);
        let mut pos = 0;
        for _ in 0..view.header_count {
            // Already validated by the walk: these reads cannot fail.
            let key = read_bytes_field(view.headers, &mut pos)
                .ok()
                .flatten()
                .unwrap_or_default();
            let value = read_bytes_field(view.headers, &mut pos)
                .ok()
                .flatten()
                .unwrap_or_default();
            headers.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
        }
        out.push(Record {
            offset: Offset(header.base_offset.0 + view.offset_delta as u64),
            timestamp_ms: base_timestamp_ms.wrapping_add(view.timestamp_delta),
            key: view.key.map(<[u8]>::to_vec),
            value: view.value.map(<[u8]>::to_vec),
            headers,
        });
        Ok(())
    })
}

/// A batch read field by field, for a dump (`ksim dump-log`, like Kafka's
/// `kafka-dump-log.sh`): unlike [`decode_batch`], a CRC mismatch or a field out of range
/// does not hide the other fields. Fields are as stored, unchecked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInspection {
    /// Bytes of the whole batch (`LOG_OVERHEAD + batchLength`).
    pub size: usize,
    /// `baseOffset` (negative only in a corrupt batch).
    pub base_offset: i64,
    /// `partitionLeaderEpoch`.
    pub partition_leader_epoch: LeaderEpoch,
    /// The CRC-32C stored in the batch.
    pub crc: u32,
    /// The CRC-32C of the batch's bytes from `attributes` to its end.
    pub computed_crc: u32,
    /// `attributes`: [`TRANSACTIONAL_FLAG`], [`CONTROL_FLAG`].
    pub attributes: i16,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// `baseTimestamp`.
    pub base_timestamp_ms: i64,
    /// `maxTimestamp`.
    pub max_timestamp_ms: i64,
    /// `producerId`.
    pub producer_id: ProducerId,
    /// `producerEpoch`.
    pub producer_epoch: i16,
    /// `baseSequence`.
    pub base_sequence: i32,
    /// `recordCount`.
    pub record_count: i32,
    /// Why the header's fields are out of range (what [`parse_header`] says), if they are.
    pub header_error: Option<BatchError>,
    /// When asked for and the header is in range: the records that decode, in order.
    pub records: Vec<Record>,
    /// Why the records stopped decoding, if they did.
    pub records_error: Option<BatchError>,
}

impl BatchInspection {
    /// Whether the stored CRC matches the bytes.
    pub fn crc_valid(&self) -> bool {
        self.crc == self.computed_crc
    }

    /// `baseOffset + lastOffsetDelta`, if it does not overflow.
    pub fn last_offset(&self) -> Option<i64> {
        self.base_offset
            .checked_add(i64::from(self.last_offset_delta))
    }

    /// Whether the stored attributes mark a transactional batch.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Whether the stored attributes mark a control batch.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
}

/// Reads the batch at the start of `bytes` for a dump, decoding its records too when
/// `with_records`. An `Err` means the batch cannot be framed, so neither can the bytes
/// after it: fewer bytes than its length prefix or a header needs
/// ([`BatchError::Truncated`]), a length too small for a header
/// ([`BatchError::BadLength`]), or a magic other than 2 ([`BatchError::BadMagic`]).
/// Everything else wrong is in the [`BatchInspection`]. Never panics; allocates only for
/// the records of a batch that lies whole in `bytes`.
pub fn inspect_batch(bytes: &[u8], with_records: bool) -> Result<BatchInspection, BatchError> {
    let size = batch_size(bytes)?;
    if bytes.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: bytes.len(),
        });
    }
    let bytes = &bytes[..size];
    let magic = bytes[MAGIC_AT] as i8;
    if magic != MAGIC {
        return Err(BatchError::BadMagic { magic });
    }
    let header = parse_header(bytes);
    let mut records = Vec::new();
    let mut records_error = None;
    if let (true, Ok(header)) = (with_records, &header) {
        records.reserve(header.record_count as usize);
        records_error = collect_records(bytes, header, &mut records).err();
    }
    Ok(BatchInspection {
        size,
        base_offset: be_i64(bytes, 0),
        partition_leader_epoch: LeaderEpoch(be_i32(bytes, EPOCH_AT)),
        crc: be_u32(bytes, CRC_AT),
        computed_crc: crc32c::crc32c(&bytes[ATTRIBUTES_AT..]),
        attributes: be_i16(bytes, ATTRIBUTES_AT),
        last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA_AT),
        base_timestamp_ms: be_i64(bytes, BASE_TIMESTAMP_AT),
        max_timestamp_ms: be_i64(bytes, MAX_TIMESTAMP_AT),
        producer_id: ProducerId(be_i64(bytes, PRODUCER_ID_AT)),
        producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
        base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
        record_count: be_i32(bytes, RECORD_COUNT_AT),
        header_error: header.err(),
        records,
        records_error,
    })
}

/// Decodes a concatenation of whole batches (what `Log::read` returns). Never panics.
pub fn decode_batches(mut bytes: &[u8]) -> Result<Vec<RecordBatch>, BatchError> {
    let mut batches = Vec::new();
    while !bytes.is_empty() {
        let (batch, used) = decode_batch(bytes)?;
        batches.push(batch);
        bytes = &bytes[used..];
    }
    Ok(batches)
}

/// What a transaction marker says (Kafka's `ControlRecordType` of an end-of-transaction
/// marker: the codes are Kafka's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ControlRecordType {
    /// The transaction's records are to be skipped by `read_committed` readers (code 0).
    Abort,
    /// The transaction's records are visible to `read_committed` readers (code 1).
    Commit,
}

impl ControlRecordType {
    /// The type's code in a control record key.
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }

    /// Kafka's name, `ABORT` or `COMMIT`.
    pub fn name(self) -> &'static str {
        match self {
            ControlRecordType::Abort => "ABORT",
            ControlRecordType::Commit => "COMMIT",
        }
    }
}

/// A transaction marker: the one record of a control batch (Kafka's `EndTransactionMarker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRecord {
    /// COMMIT or ABORT.
    pub kind: ControlRecordType,
    /// The epoch of the transaction coordinator that wrote the marker: a partition refuses
    /// a marker from an older coordinator than the last one it heard from.
    pub coordinator_epoch: i32,
}

/// The version of control record keys and marker values this codec writes and reads.
pub const CONTROL_RECORD_VERSION: i16 = 0;
const CONTROL_KEY_BYTES: usize = 4;
const END_TXN_MARKER_VALUE_BYTES: usize = 6;

impl ControlRecord {
    /// The record key: version i16 | type i16.
    pub fn key_bytes(&self) -> [u8; CONTROL_KEY_BYTES] {
        let mut key = [0; CONTROL_KEY_BYTES];
        key[0..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        key[2..4].copy_from_slice(&self.kind.code().to_be_bytes());
        key
    }

    /// The record value: version i16 | coordinatorEpoch i32.
    pub fn value_bytes(&self) -> [u8; END_TXN_MARKER_VALUE_BYTES] {
        let mut value = [0; END_TXN_MARKER_VALUE_BYTES];
        value[0..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        value[2..6].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        value
    }

    /// Parses a control record's key and value. Never panics.
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Self, ControlRecordError> {
        let key = key.ok_or(ControlRecordError::NullKey)?;
        if key.len() != CONTROL_KEY_BYTES {
            return Err(ControlRecordError::KeySize(key.len()));
        }
        let key_version = be_i16(key, 0);
        if key_version != CONTROL_RECORD_VERSION {
            return Err(ControlRecordError::KeyVersion(key_version));
        }
        let kind = match be_i16(key, 2) {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => return Err(ControlRecordError::UnknownType(other)),
        };
        let value = value.ok_or(ControlRecordError::NullValue)?;
        if value.len() != END_TXN_MARKER_VALUE_BYTES {
            return Err(ControlRecordError::ValueSize(value.len()));
        }
        let value_version = be_i16(value, 0);
        if value_version != CONTROL_RECORD_VERSION {
            return Err(ControlRecordError::ValueVersion(value_version));
        }
        Ok(ControlRecord {
            kind,
            coordinator_epoch: be_i32(value, 2),
        })
    }
}

/// Why a batch does not hold a transaction marker this codec reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRecordError {
    /// The bytes are not a valid batch.
    Batch(BatchError),
    /// The batch's attributes do not mark it as a control batch.
    NotAControlBatch,
    /// A control batch holds exactly one record; this one holds this many.
    RecordCount(usize),
    /// The control record's key is null.
    NullKey,
    /// The key is not 4 bytes (version i16, type i16).
    KeySize(usize),
    /// The key's version is not 0.
    KeyVersion(i16),
    /// The key's type is neither ABORT (0) nor COMMIT (1).
    UnknownType(i16),
    /// The marker's value is null.
    NullValue,
    /// The value is not 6 bytes (version i16, coordinatorEpoch i32).
    ValueSize(usize),
    /// The value's version is not 0.
    ValueVersion(i16),
}

impl fmt::Display for ControlRecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlRecordError::Batch(e) => write!(f, "{e}"),
            ControlRecordError::NotAControlBatch => f.write_str("not a control batch"),
            ControlRecordError::RecordCount(n) => {
                write!(f, "a control batch holds one record, this one {n}")
            }
            ControlRecordError::NullKey => f.write_str("control record key is null"),
            ControlRecordError::KeySize(n) => {
                write!(
                    f,
                    "control record key is {n} bytes, expected {CONTROL_KEY_BYTES}"
                )
            }
            ControlRecordError::KeyVersion(v) => write!(f, "control record key version {v}"),
            ControlRecordError::UnknownType(t) => write!(f, "unknown control record type {t}"),
            ControlRecordError::NullValue => f.write_str("transaction marker value is null"),
            ControlRecordError::ValueSize(n) => write!(
                f,
                "transaction marker value is {n} bytes, expected {END_TXN_MARKER_VALUE_BYTES}"
            ),
            ControlRecordError::ValueVersion(v) => {
                write!(f, "transaction marker value version {v}")
            }
        }
    }
}

impl std::error::Error for ControlRecordError {}

impl From<BatchError> for ControlRecordError {
    fn from(e: BatchError) -> Self {
        ControlRecordError::Batch(e)
    }
}

impl From<ControlRecordError> for BatchError {
    /// A marker that does not parse is a bad record of its batch.
    fn from(e: ControlRecordError) -> Self {
        match e {
            ControlRecordError::Batch(e) => e,
            other => BatchError::BadRecords {
                record: 0,
                detail: other.to_string(),
            },
        }
    }
}

/// The transaction marker of the control batch at the start of `bytes`, read without
/// allocating; the batch is fully validated first (like [`check_batch`]). Never panics.
pub fn read_control_record(bytes: &[u8]) -> Result<ControlRecord, ControlRecordError> {
    let header = checked_header(bytes)?;
    if !header.is_control() {
        return Err(ControlRecordError::NotAControlBatch);
    }
    if header.record_count != 1 {
        return Err(ControlRecordError::RecordCount(
            header.record_count as usize,
        ));
    }
    let mut marker = Err(ControlRecordError::RecordCount(0));
    walk_records(&bytes[..header.size], &header, |view| {
        marker = ControlRecord::parse(view.key, view.value);
        Ok(())
    })?;
    marker
}

/// Presence of the whole batch, magic, CRC, then the header ranges: a corrupted byte in
/// the CRC'd range reports as `BadCrc` whatever field it hit.
fn checked_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let size = batch_size(bytes)?;
    if bytes.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: bytes.len(),
        });
    }
    let magic = bytes[MAGIC_AT] as i8;
    if magic != MAGIC {
        return Err(BatchError::BadMagic { magic });
    }
    let stored = be_u32(bytes, CRC_AT);
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES_AT..size]);
    if computed != stored {
        return Err(BatchError::BadCrc { stored, computed });
    }
    parse_header(bytes)
}

/// One record as it lies in the buffer.
struct RecordView<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    /// The encoded headers (validated), `header_count` of them.
    headers: &'a [u8],
    header_count: usize,
}

/// Walks and validates every record of a whole batch (`batch.len() == header.size`).
fn walk_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    mut visit: impl FnMut(RecordView<'a>) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    let mut pos = BATCH_HEADER_BYTES;
    for index in 0..header.record_count as usize {
        let bad = |detail: &str| BatchError::BadRecords {
            record: index,
            detail: detail.to_string(),
        };
        let length = read_varint(batch, &mut pos).map_err(bad)?;
        if length < 0 || length as usize > batch.len() - pos {
            return Err(bad("record length out of range"));
        }
        let record = &batch[pos..pos + length as usize];
        pos += length as usize;
        let view = parse_record(record).map_err(bad)?;
        if view.offset_delta as usize != index {
            return Err(bad(
                "offset delta is not the record's index (offsets not dense)",
            ));
        }
        visit(view)?;
    }
    if pos != batch.len() {
        return Err(BatchError::BadRecords {
            record: header.record_count as usize,
            detail: format!("{} bytes after the last record", batch.len() - pos),
        });
    }
    Ok(())
}

fn parse_record(record: &[u8]) -> Result<RecordView<'_>, &'static str> {
    let mut pos = 0;
    let _attributes = *record.first().ok_or("empty record")?;
    pos += 1;
    let timestamp_delta = read_varlong(record, &mut pos)?;
    let offset_delta = read_varint(record, &mut pos)?;
    let key = read_bytes_field(record, &mut pos)?;
    let value = read_bytes_field(record, &mut pos)?;
    let header_count = read_varint(record, &mut pos)?;
    if header_count < 0 {
        return Err("negative header count");
    }
    let headers_start = pos;
    for _ in 0..header_count {
        let key = read_bytes_field(record, &mut pos)?.ok_or("null header key")?;
        std::str::from_utf8(key).map_err(|_| "header key is not UTF-8")?;
        read_bytes_field(record, &mut pos)?.ok_or("null header value")?;
    }
    if pos != record.len() {
        return Err("record length does not match its fields");
    }
    Ok(RecordView {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers: &record[headers_start..],
        header_count: header_count as usize,
    })
}

/// A length-prefixed byte field: varint length (-1 = null) then the bytes.
fn read_bytes_field<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, &'static str> {
    let length = read_varint(buf, pos)?;
    if length == -1 {
        return Ok(None);
    }
    if length < 0 || length as usize > buf.len() - *pos {
        return Err("field length out of range");
    }
    let field = &buf[*pos..*pos + length as usize];
    *pos += length as usize;
    Ok(Some(field))
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("record field under 2 GiB")
}

fn bytes_field_size(field: Option<&[u8]>) -> usize {
    match field {
        None => 1,
        Some(b) => varint_size(len_i32(b.len())) + b.len(),
    }
}

fn put_bytes_field(buf: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, len_i32(b.len()));
            buf.extend_from_slice(b);
        }
    }
}

/// Zigzag-encodes `value` as a varint (at most 5 bytes).
pub fn put_varint(buf: &mut Vec<u8>, value: i32) {
    put_unsigned(buf, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

/// Zigzag-encodes `value` as a varlong (at most 10 bytes).
pub fn put_varlong(buf: &mut Vec<u8>, value: i64) {
    put_unsigned(buf, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(buf: &mut Vec<u8>, mut raw: u64) {
    while raw >= 0x80 {
        buf.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    buf.push(raw as u8);
}

/// Encoded size of a zigzag varint.
pub fn varint_size(value: i32) -> usize {
    unsigned_size(((value << 1) ^ (value >> 31)) as u32 as u64)
}

/// Encoded size of a zigzag varlong.
pub fn varlong_size(value: i64) -> usize {
    unsigned_size(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_size(raw: u64) -> usize {
    let bits = 64 - (raw | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes a zigzag varint at `*pos`, advancing it; rejects overlong encodings.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, &'static str> {
    let raw = read_unsigned(buf, pos, 32)?;
    let raw = raw as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Decodes a zigzag varlong at `*pos`, advancing it; rejects overlong encodings.
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, &'static str> {
    let raw = read_unsigned(buf, pos, 64)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(buf: &[u8], pos: &mut usize, bits: u32) -> Result<u64, &'static str> {
    let mut raw = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos).ok_or("varint runs past the end")?;
        *pos += 1;
        let payload = (byte & 0x7f) as u64;
        if shift + 7 > bits && (payload >> (bits - shift)) != 0 {
            return Err("varint overflows");
        }
        raw |= payload << shift;
        if byte & 0x80 == 0 {
            return Ok(raw);
        }
        shift += 7;
        if shift >= bits {
            return Err("varint too long");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> BatchMeta {
        BatchMeta {
            leader_epoch: LeaderEpoch(7),
            base_timestamp_ms: 1_000,
            producer_id: ProducerId(42),
            producer_epoch: 3,
            base_sequence: 100,
        }
    }

    fn sample(base: u64) -> (BatchBuilder, Vec<u8>) {
        let mut b = BatchBuilder::new(meta());
        b.push(1_000, Some(b"k1"), Some(b"v1"), &[]);
        b.push(999, None, Some(b""), &[("h", b"x"), ("é", b"")]);
        b.push(5_000, Some(b""), None, &[]);
        let bytes = b.encode(Offset(base)).to_vec();
        (b, bytes)
    }

    #[test]
    fn builder_output_decodes_to_what_was_pushed() {
        let (b, bytes) = sample(10);
        assert_eq!(bytes.len(), b.size_bytes());
        let (batch, used) = decode_batch(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(batch.base_offset, Offset(10));
        assert_eq!(batch.last_offset(), Offset(12));
        assert_eq!(batch.next_offset(), Offset(13));
        assert_eq!(batch.partition_leader_epoch, LeaderEpoch(7));
        assert_eq!(batch.max_timestamp_ms, 5_000);
        assert_eq!(
            (batch.producer_id, batch.producer_epoch, batch.base_sequence),
            (ProducerId(42), 3, 100)
        );
        let r = &batch.records;
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].offset, Offset(10));
        assert_eq!(r[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(r[1].timestamp_ms, 999);
        assert_eq!(r[1].key, None);
        assert_eq!(r[1].value.as_deref(), Some(&b""[..]));
        assert_eq!(
            r[1].headers,
            vec![("h".to_string(), b"x".to_vec()), ("é".to_string(), vec![])]
        );
        assert_eq!(r[2].value, None);
        assert_eq!(r[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(check_batch(&bytes).unwrap().next_offset(), Offset(13));
    }

    #[test]
    fn restamp_sets_offset_and_epoch_and_keeps_the_crc_valid() {
        let (_, mut bytes) = sample(0);
        let header = restamp_batch(&mut bytes, Offset(500), LeaderEpoch(9)).unwrap();
        assert_eq!(header.base_offset, Offset(500));
        assert_eq!(
            (header.producer_id, header.producer_epoch),
            (ProducerId(42), 3)
        );
        assert_eq!(header.base_sequence, 100);
        let (batch, _) = decode_batch(&bytes).unwrap();
        assert_eq!(batch.base_offset, Offset(500));
        assert_eq!(batch.partition_leader_epoch, LeaderEpoch(9));
        assert_eq!(batch.records[2].offset, Offset(502));
        let mut bad = bytes.clone();
        bad[ATTRIBUTES_AT + 3] ^= 1;
        assert!(matches!(
            restamp_batch(&mut bad, Offset(0), LeaderEpoch(0)),
            Err(BatchError::BadCrc { .. })
        ));
        assert!(restamp_batch(&mut bytes, Offset(i64::MAX as u64), LeaderEpoch(0)).is_err());
    }

    #[test]
    fn clear_reuses_the_buffer_and_encodes_identically() {
        let (mut b, first) = sample(0);
        b.clear(meta());
        assert!(b.is_empty());
        assert_eq!(b.size_bytes(), BATCH_HEADER_BYTES);
        b.push(1_000, Some(b"k1"), Some(b"v1"), &[]);
        b.push(999, None, Some(b""), &[("h", b"x"), ("é", b"")]);
        b.push(5_000, Some(b""), None, &[]);
        assert_eq!(b.encode(Offset(0)), &first[..]);
    }

    #[test]
    fn decode_batches_reads_a_concatenation_and_rejects_a_partial_tail() {
        let (_, a) = sample(0);
        let (_, b) = sample(3);
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let batches = decode_batches(&both).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].base_offset, Offset(3));
        assert!(decode_batches(&[]).unwrap().is_empty());
        assert!(matches!(
            decode_batches(&both[..both.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_in_the_crc_range_is_detected() {
        let (_, bytes) = sample(0);
        for at in ATTRIBUTES_AT..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[at] ^= 1 << bit;
                assert!(
                    matches!(decode_batch(&bad), Err(BatchError::BadCrc { .. })),
                    "flip at {at} bit {bit} undetected"
                );
            }
        }
    }

    #[test]
    fn inspect_reports_every_field_and_survives_a_bad_crc() {
        let (_, bytes) = sample(10);
        let (batch, size) = decode_batch(&bytes).unwrap();
        let good = inspect_batch(&bytes, true).unwrap();
        assert_eq!(good.size, size);
        assert!(good.crc_valid());
        assert_eq!(
            (good.base_offset, good.last_offset(), good.record_count),
            (10, Some(12), 3)
        );
        assert_eq!(good.partition_leader_epoch, batch.partition_leader_epoch);
        assert_eq!(
            (good.producer_id, good.producer_epoch, good.base_sequence),
            (ProducerId(42), 3, 100)
        );
        assert_eq!(
            (good.base_timestamp_ms, good.max_timestamp_ms),
            (1_000, 5_000)
        );
        assert_eq!(
            (good.header_error.clone(), good.records_error.clone()),
            (None, None)
        );
        assert_eq!(good.records, batch.records);
        assert!(inspect_batch(&bytes, false).unwrap().records.is_empty());
        // A flipped byte in a record: the CRC says so, the fields are still there.
        let mut bad = bytes.clone();
        bad[BATCH_HEADER_BYTES + 2] ^= 0x40;
        let flipped = inspect_batch(&bad, true).unwrap();
        assert!(!flipped.crc_valid());
        assert_eq!(flipped.crc, good.crc);
        assert_eq!(flipped.base_offset, 10);
        // A flipped record count: out of range, and the records are not walked.
        let mut bad = bytes.clone();
        bad[RECORD_COUNT_AT + 3] ^= 0x10;
        let miscounted = inspect_batch(&bad, true).unwrap();
        assert!(matches!(
            miscounted.header_error,
            Some(BatchError::BadHeader { .. })
        ));
        assert!(miscounted.records.is_empty());
        // What cannot be framed is an error: torn, a giant length, a bad magic.
        assert!(matches!(
            inspect_batch(&bytes[..size - 1], true),
            Err(BatchError::Truncated { .. })
        ));
        let mut giant = bytes.clone();
        giant[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            inspect_batch(&giant, true),
            Err(BatchError::Truncated {
                needed: LOG_OVERHEAD + i32::MAX as usize,
                available: size
            })
        );
        let mut magic = bytes.clone();
        magic[MAGIC_AT] = 1;
        assert_eq!(
            inspect_batch(&magic, true),
            Err(BatchError::BadMagic { magic: 1 })
        );
    }

    #[test]
    fn header_errors_are_typed() {
        let (_, bytes) = sample(0);
        let mut bad = bytes.clone();
        bad[MAGIC_AT] = 1;
        assert_eq!(decode_batch(&bad), Err(BatchError::BadMagic { magic: 1 }));
        let mut bad = bytes.clone();
        bad[LENGTH_AT..LENGTH_AT + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            decode_batch(&bad),
            Err(BatchError::BadLength { length: 10 })
        );
        let mut bad = bytes.clone();
        bad[0] = 0x80; // negative base offset
        assert!(matches!(
            decode_batch(&bad),
            Err(BatchError::BadHeader { .. })
        ));
        assert!(matches!(
            decode_batch(&bytes[..5]),
            Err(BatchError::Truncated { needed: 12, .. })
        ));
        let zeros = vec![0u8; 100];
        assert!(matches!(
            decode_batch(&zeros),
            Err(BatchError::BadLength { length: 0 })
        ));
    }

    #[test]
    fn varint_edge_cases_round_trip_with_kafka_sizes() {
        for (v, size) in [
            (0i32, 1usize),
            (-1, 1),
            (1, 1),
            (-64, 1),
            (63, 1),
            (64, 2),
            (i32::MAX, 5),
            (i32::MIN, 5),
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), size, "{v}");
            assert_eq!(varint_size(v), size);
            let mut pos = 0;
            assert_eq!(read_varint(&buf, &mut pos), Ok(v));
            assert_eq!(pos, size);
        }
        for (v, size) in [
            (0i64, 1usize),
            (-1, 1),
            (i64::MAX, 10),
            (i64::MIN, 10),
            (i32::MAX as i64 + 1, 5),
        ] {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), size, "{v}");
            assert_eq!(varlong_size(v), size);
            let mut pos = 0;
            assert_eq!(read_varlong(&buf, &mut pos), Ok(v));
        }
        // Zigzag matches protobuf/Kafka: -1 -> 1, 1 -> 2.
        let mut buf = Vec::new();
        put_varint(&mut buf, -1);
        put_varint(&mut buf, 1);
        assert_eq!(buf, vec![1, 2]);
    }

    #[test]
    fn overlong_and_unterminated_varints_are_errors() {
        let mut pos = 0;
        assert!(read_varint(&[0xff; 5], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0xff; 10], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0x80; 3], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[], &mut pos).is_err());
    }

    #[test]
    fn batches_are_plain_unless_marked_transactional() {
        let (_, plain) = sample(0);
        assert_eq!(be_i16(&plain, ATTRIBUTES_AT), 0, "existing bytes unchanged");
        let header = check_batch(&plain).unwrap();
        assert!(!header.is_transactional() && !header.is_control());
        let mut b = BatchBuilder::new(meta());
        b.set_transactional(true);
        assert!(b.is_transactional());
        b.push(1_000, Some(b"k"), Some(b"v"), &[]);
        let bytes = b.encode(Offset(4)).to_vec();
        let (batch, _) = decode_batch(&bytes).unwrap();
        assert_eq!(batch.attributes, TRANSACTIONAL_FLAG);
        assert!(batch.is_transactional() && !batch.is_control());
        let header = parse_header(&bytes).unwrap();
        assert!(header.is_transactional() && !header.is_control());
        let inspected = inspect_batch(&bytes, false).unwrap();
        assert!(inspected.is_transactional() && !inspected.is_control());
        assert_eq!(
            batch.control_record(),
            Err(ControlRecordError::NotAControlBatch)
        );
        assert_eq!(
            read_control_record(&bytes),
            Err(ControlRecordError::NotAControlBatch)
        );
        // Clearing gives what `new` gives: a plain batch.
        b.clear(meta());
        assert!(!b.is_transactional());
        b.push(1_000, Some(b"k"), Some(b"v"), &[]);
        assert_eq!(be_i16(b.encode(Offset(0)), ATTRIBUTES_AT), 0);
        b.set_transactional(true);
        b.set_transactional(false);
        assert_eq!(be_i16(b.encode(Offset(0)), ATTRIBUTES_AT), 0);
    }

    #[test]
    fn an_end_txn_marker_round_trips_in_kafkas_layout() {
        for (kind, code) in [
            (ControlRecordType::Abort, 0u8),
            (ControlRecordType::Commit, 1),
        ] {
            let marker = ControlRecord {
                kind,
                coordinator_epoch: 0x0102_0304,
            };
            let mut b = BatchBuilder::end_txn_marker(meta(), marker);
            let bytes = b.encode(Offset(77)).to_vec();
            let (batch, _) = decode_batch(&bytes).unwrap();
            assert_eq!(batch.attributes, 0x30);
            assert!(batch.is_transactional() && batch.is_control());
            assert_eq!(
                (batch.producer_id, batch.producer_epoch, batch.base_sequence),
                (ProducerId(42), 3, -1),
                "the transaction's producer, no sequence"
            );
            assert_eq!(batch.records.len(), 1);
            let record = &batch.records[0];
            assert_eq!(record.offset, Offset(77));
            assert_eq!(record.timestamp_ms, 1_000);
            assert_eq!(record.key.as_deref(), Some(&[0, 0, 0, code][..]));
            assert_eq!(record.value.as_deref(), Some(&[0, 0, 1, 2, 3, 4][..]));
            assert_eq!(batch.control_record(), Ok(marker));
            assert_eq!(read_control_record(&bytes), Ok(marker));
            let header = check_batch(&bytes).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(kind.name(), ["ABORT", "COMMIT"][code as usize]);
        }
    }

    #[test]
    fn malformed_control_records_are_typed_errors() {
        use ControlRecordError as E;
        let key = |version: i16, kind: i16| {
            let mut k = version.to_be_bytes().to_vec();
            k.extend_from_slice(&kind.to_be_bytes());
            k
        };
        let value = |version: i16, epoch: i32| {
            let mut v = version.to_be_bytes().to_vec();
            v.extend_from_slice(&epoch.to_be_bytes());
            v
        };
        let good_key = key(0, 1);
        let good_value = value(0, 5);
        assert_eq!(
            ControlRecord::parse(Some(&good_key), Some(&good_value)),
            Ok(ControlRecord {
                kind: ControlRecordType::Commit,
                coordinator_epoch: 5
            })
        );
        /// A key, a value and what parsing them says.
        type Case = (Option<Vec<u8>>, Option<Vec<u8>>, ControlRecordError);
        let cases: Vec<Case> = vec![
            (None, Some(good_value.clone()), E::NullKey),
            (Some(vec![0, 0, 1]), Some(good_value.clone()), E::KeySize(3)),
            (Some(vec![0; 5]), Some(good_value.clone()), E::KeySize(5)),
            (Some(key(1, 1)), Some(good_value.clone()), E::KeyVersion(1)),
            (
                Some(key(-1, 0)),
                Some(good_value.clone()),
                E::KeyVersion(-1),
            ),
            (Some(key(0, 2)), Some(good_value.clone()), E::UnknownType(2)),
            (
                Some(key(0, -1)),
                Some(good_value.clone()),
                E::UnknownType(-1),
            ),
            (Some(good_key.clone()), None, E::NullValue),
            (Some(good_key.clone()), Some(vec![0; 4]), E::ValueSize(4)),
            (Some(good_key.clone()), Some(vec![]), E::ValueSize(0)),
            (
                Some(good_key.clone()),
                Some(value(3, 0)),
                E::ValueVersion(3),
            ),
        ];
        for (k, v, expected) in cases {
            assert_eq!(
                ControlRecord::parse(k.as_deref(), v.as_deref()),
                Err(expected.clone())
            );
            // The same record inside a control batch: both readers say the same.
            let mut b = BatchBuilder::new(meta());
            b.attributes = TRANSACTIONAL_FLAG | CONTROL_FLAG;
            b.push(1_000, k.as_deref(), v.as_deref(), &[]);
            let bytes = b.encode(Offset(0)).to_vec();
            assert_eq!(read_control_record(&bytes), Err(expected.clone()));
            let (batch, _) = decode_batch(&bytes).expect("a valid batch, a bad marker");
            assert_eq!(batch.control_record(), Err(expected.clone()));
            assert!(matches!(
                BatchError::from(expected),
                BatchError::BadRecords { record: 0, .. }
            ));
        }
        // Two records in a control batch; a corrupt control batch.
        let marker = ControlRecord {
            kind: ControlRecordType::Abort,
            coordinator_epoch: 1,
        };
        let mut b = BatchBuilder::end_txn_marker(meta(), marker);
        b.push(
            1_000,
            Some(&marker.key_bytes()),
            Some(&marker.value_bytes()),
            &[],
        );
        let bytes = b.encode(Offset(0)).to_vec();
        assert_eq!(read_control_record(&bytes), Err(E::RecordCount(2)));
        assert_eq!(
            decode_batch(&bytes).unwrap().0.control_record(),
            Err(E::RecordCount(2))
        );
        let mut bad = bytes.clone();
        bad[BATCH_HEADER_BYTES + 3] ^= 1;
        assert!(matches!(
            read_control_record(&bad),
            Err(E::Batch(BatchError::BadCrc { .. }))
        ));
        assert!(matches!(
            read_control_record(&bytes[..20]),
            Err(E::Batch(BatchError::Truncated { .. }))
        ));
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        let mut b = BatchBuilder::new(BatchMeta {
            base_timestamp_ms: i64::MIN,
            ..BatchMeta::default()
        });
        b.push(i64::MAX, None, None, &[]);
        b.push(i64::MIN, None, None, &[]);
        let bytes = b.encode(Offset(0)).to_vec();
        let (batch, _) = decode_batch(&bytes).unwrap();
        assert_eq!(batch.records[0].timestamp_ms, i64::MAX);
        assert_eq!(batch.records[1].timestamp_ms, i64::MIN);
        assert_eq!(batch.max_timestamp_ms, i64::MAX);
    }
}
