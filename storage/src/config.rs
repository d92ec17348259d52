//! Per-log settings, mirroring Kafka's topic configs of the same names.

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// When appended bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every append that asks for durability waits for an fdatasync covering it (group commit).
    Always,
    /// Flushed in the background at most this many milliseconds apart.
    IntervalMs(u64),
    /// Left to the kernel.
    Never,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest batch accepted (whole batch, header included).
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `retention.ms` (-1: unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` (-1: unlimited).
    pub retention_bytes: i64,
    pub fsync: FsyncPolicy,
    /// `remote.storage.enable`: sealed segments go to object storage, and local retention
    /// (below) may delete only what is already remote.
    pub remote_storage: bool,
    /// `local.retention.ms` / `local.retention.bytes`, already resolved (-2 replaced by the
    /// total retention). Used instead of `retention_*` when `remote_storage` is on.
    pub local_retention_ms: i64,
    pub local_retention_bytes: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            fsync: FsyncPolicy::Always,
            remote_storage: false,
            local_retention_ms: 7 * 24 * 60 * 60 * 1000,
            local_retention_bytes: -1,
        }
    }
}
