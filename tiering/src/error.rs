//! The tiering crate's one error type.

use std::sync::Arc;

pub type Result<T, E = TieringError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TieringError {
    #[error("unsupported tier URL '{0}' (expected file:///path or s3://bucket/prefix)")]
    UnsupportedUrl(String),
    #[error("cannot configure the object store for {url}: {source}")]
    StoreConfig {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("object store error on {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("reading local segment file {path}: {source}")]
    LocalIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {path} is corrupt: {reason}")]
    CorruptManifest { path: String, reason: String },
    #[error("offset index {path} is corrupt for a segment of {segment_bytes} bytes")]
    CorruptIndex { path: String, segment_bytes: u64 },
    #[error("remote segment {path} is corrupt at byte {position}: {reason}")]
    CorruptSegment {
        path: String,
        position: u64,
        reason: String,
    },
    /// A fetch that several readers waited on failed; each of them gets the same error.
    #[error(transparent)]
    Shared(Arc<TieringError>),
}
