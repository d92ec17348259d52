//! Tidelog: a Kafka-compatible message broker.
//!
//! - `config`: flags, environment and TOML file, validated once.
//! - `server`: the thread-per-core runtime: shards, mailboxes, connections, the controller.
//! - `protocol`: framing, supported versions, error codes around the `kafka-protocol` codec.
//! - `handlers`: one module per Kafka API, behind one dispatch table.
//! - `coordinator`: consumer groups and their offsets in `__consumer_offsets`.
//! - `tier`: the shard's side of tiered storage (uploads, remote reads, remote retention).
//! - `catalog`: topics and configs as a metadata log applied to immutable snapshots.

pub mod catalog;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod handlers;
pub mod protocol;
pub mod server;
pub mod tier;
