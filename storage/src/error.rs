//! The storage crate's one error type. The broker maps each variant to a Kafka error code in
//! exactly one place.

use std::path::PathBuf;

use crate::batch::BatchError;
use crate::producer::ProducerError;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A produced batch failed validation (CRC, magic, lengths, record count).
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// An I/O error on a partition's file; the partition is failed, the broker stays up.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An idempotent producer's batch broke its sequence or epoch rules.
    #[error("{0}")]
    Producer(#[from] ProducerError),
    /// The log was closed or deleted while the operation waited.
    #[error("log {0} is closed")]
    Closed(PathBuf),
}
