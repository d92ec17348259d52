//! The tiering crate's one error type.

pub type Result<T, E = TieringError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TieringError {
    #[error("unsupported tier URL '{0}' (expected file:///path or s3://bucket/prefix)")]
    UnsupportedUrl(String),
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
}
