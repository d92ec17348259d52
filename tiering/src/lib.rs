//! Tidelog's tiered storage: sealed segments uploaded to an object store and read back.
//!
//! This crate owns the object layout, the per-partition manifest and the remote reads. It sees
//! segments only as files and offsets handed to it (`SealedSegment`) and must not know Kafka
//! requests. What is here now is the interface and the object layout, over any
//! `object_store` backend (a local directory is the embedded default); the upload scheduler,
//! the read cache and remote retention arrive with the tiering issue.
//!
//! Layout (ARCHITECTURE.md, "Tiering"):
//! `<prefix>/<topic>-<topic id>/<partition>/<20-digit base offset>-<unique id>.{log,index,timeindex}`
//! and `<prefix>/<topic>-<topic id>/<partition>/manifest.json`. A segment is listed in the
//! manifest only after all its objects are stored, so a crash in between leaves an orphan,
//! never a hole.

mod error;
mod manifest;
mod store;

pub use error::{Result, TieringError};
pub use manifest::{PartitionManifest, RemoteSegment};
pub use store::{PartitionPath, RemoteStore, SealedSegment};
