//! Tidelog's partition log.
//!
//! Owns everything that touches a partition's files: record-batch v2 headers (parsed here and
//! nowhere else), segments in Kafka's on-disk layout (`<base offset>.log`, `.index`,
//! `.timeindex`), appends and reads through a per-shard I/O driver (io_uring, or a portable
//! fallback), fsync, recovery of torn tails, segment rolling, retention, and idempotent-producer state.
//!
//! It must not know Kafka requests, networking, or any tokio task other than the I/O driver's
//! completion reaper. Everything here is single-threaded: a `Log` belongs to one shard and is
//! used through `Rc`.

pub mod batch;
pub mod config;
pub mod error;
pub mod file_slice;
pub mod io;
pub mod log;
pub mod producer;

pub mod index;
mod segment;

pub use batch::{BatchError, BatchHeader};
pub use config::{FsyncPolicy, LogConfig, TimestampType};
pub use error::{Result, StorageError};
pub use file_slice::{FileSlice, Records};
pub use io::{IoDriver, IoEngine};
pub use log::{
    AppendOutcome, Log, ReadOutcome, SealedSegmentInfo, SharedReadOutcome, TimestampLookup,
};
pub use producer::{ProducerError, ProducerSummary};
