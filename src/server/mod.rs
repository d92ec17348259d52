//! The thread-per-core server.
//!
//! `run` starts one OS thread per shard, each pinned to a core and running a current-thread
//! tokio runtime with a `LocalSet`. Each shard accepts connections on its own `SO_REUSEPORT`
//! listener, owns a subset of the partitions (`ShardSet::owner_of`), and reaches the others
//! only through their mailboxes. Shard 0 also hosts the metadata controller, the single writer
//! of the metadata log. The main thread only waits for a signal and orchestrates shutdown.

mod connection;
pub mod controller;
pub mod fetch_session;
mod listener;
pub mod producer_ids;
mod runtime;
pub mod shard;

pub use fetch_session::{FetchSessionCache, SessionPartition};
pub use runtime::run;
pub use shard::{Shard, ShardSet, ShardUnavailable};
