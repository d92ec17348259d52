//! Tidelog's tiered storage: sealed segments uploaded to an object store and read back.
//!
//! This crate owns the object layout, the per-partition manifest and the remote reads. It sees
//! segments only as files and offsets handed to it (`SealedSegment`) and must not know Kafka
//! requests or schedule anything: when to upload, retry or apply retention is the broker's.
//!
//! - `config`: the `--tier-*` flags → an `object_store` backend (`file://` directory, the
//!   embedded default, or `s3://` with bounded timeouts and retries).
//! - `store`: `RemoteStore`, the object layout — segment uploads (multipart when large),
//!   the manifest, deletes, orphan cleanup.
//! - `manifest`: which remote segments exist.
//! - `reader` (+ `cache`): `RemoteReader`, whole batches by offset through the segment's
//!   index and a bounded, single-flight cache of 1 MiB range GETs.
//!
//! Layout (ARCHITECTURE.md, "Tiering"):
//! `<prefix>/<topic>-<topic id>/<partition>/<20-digit base offset>-<unique id>.{log,index,timeindex}`
//! and `<prefix>/<topic>-<topic id>/<partition>/manifest.json`. A segment is listed in the
//! manifest only after all its objects are stored, so a crash in between leaves an orphan,
//! never a hole.

mod cache;
mod config;
mod error;
mod manifest;
mod reader;
mod store;
#[cfg(test)]
mod testing;

pub use config::TierConfig;
pub use error::{Result, TieringError};
pub use manifest::{PartitionManifest, RemoteSegment};
pub use reader::{ReaderStats, RemoteReader, CHUNK_BYTES};
pub use store::{
    PartitionPath, RemoteStore, SealedSegment, MULTIPART_PART_BYTES, MULTIPART_THRESHOLD_BYTES,
};
