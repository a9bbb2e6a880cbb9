//! [`LogError`]: everything a log operation can fail with.
//!
//! Bad bytes on disk and bad input are values of this type, never panics; only a broken
//! internal invariant (a bug) panics.

use super::{BatchError, Offset};
use std::fmt;
use std::io;

/// Why a log operation failed.
#[derive(Debug)]
pub enum LogError {
    /// The disk failed; the message says what the log was doing.
    Io(io::Error),
    /// Recovery found data missing or invalid below the recovery point: synced data is
    /// corrupt (or a previous run lied about durability).
    CorruptBelowRecoveryPoint {
        /// File name of the segment.
        segment: String,
        /// Byte position of the first bad or missing batch.
        position: u64,
        /// The checkpointed recovery point.
        recovery_point: Offset,
        /// What was found.
        detail: String,
    },
    /// A read found a segment's bytes inconsistent with its index or length.
    CorruptSegment {
        /// File name of the segment.
        segment: String,
        /// Byte position of the bad batch.
        position: u64,
        /// What was found.
        detail: String,
    },
    /// The offset is below the log start offset or above the LEO.
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// First offset of the log.
        log_start: Offset,
        /// Log end offset.
        log_end: Offset,
    },
    /// A batch handed to `append_as_follower` is invalid.
    InvalidBatch(BatchError),
    /// A follower batch does not start where the log ends (or offsets are not dense).
    NonMonotonicOffset {
        /// The offset the batch had to start at.
        expected: Offset,
        /// The offset it starts at.
        found: Offset,
    },
    /// An append with no records.
    EmptyBatch,
    /// A batch too large to encode or to index (over 2 GiB).
    BatchTooLarge {
        /// Its size in bytes.
        size: usize,
    },
    /// A mutating call on a log opened with `open_read_only`.
    ReadOnly,
    /// A checkpoint file does not parse.
    MalformedCheckpoint {
        /// Its path.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl LogError {
    /// Wraps an I/O error with what the log was doing, keeping its kind.
    pub(crate) fn io(context: impl fmt::Display) -> impl FnOnce(io::Error) -> LogError {
        move |e| LogError::Io(io::Error::new(e.kind(), format!("{context}: {e}")))
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io(e) => write!(f, "I/O error: {e}"),
            LogError::CorruptBelowRecoveryPoint {
                segment,
                position,
                recovery_point,
                detail,
            } => write!(
                f,
                "corruption below the recovery point {recovery_point} in {segment} at byte \
                 {position}: {detail}"
            ),
            LogError::CorruptSegment {
                segment,
                position,
                detail,
            } => write!(f, "corrupt segment {segment} at byte {position}: {detail}"),
            LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            } => write!(f, "offset {offset} out of range [{log_start}, {log_end}]"),
            LogError::InvalidBatch(e) => write!(f, "invalid batch: {e}"),
            LogError::NonMonotonicOffset { expected, found } => write!(
                f,
                "batch starts at offset {found}, the log expects {expected}"
            ),
            LogError::EmptyBatch => write!(f, "empty batch"),
            LogError::BatchTooLarge { size } => write!(f, "batch of {size} bytes is too large"),
            LogError::ReadOnly => write!(f, "the log was opened read-only"),
            LogError::MalformedCheckpoint { path, detail } => {
                write!(f, "malformed checkpoint {path}: {detail}")
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io(e) => Some(e),
            LogError::InvalidBatch(e) => Some(e),
            _ => None,
        }
    }
}

impl From<BatchError> for LogError {
    fn from(e: BatchError) -> Self {
        LogError::InvalidBatch(e)
    }
}
