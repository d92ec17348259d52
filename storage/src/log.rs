//! A partition's log: an ordered set of segments, the active one last.
//!
//! Offsets are assigned synchronously when `append` is called (so concurrent appends from
//! several connections of one shard are ordered by call order); the high watermark advances
//! only over writes that have completed, in offset order.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::batch::{
    find_record_by_timestamp, set_base_offset, set_log_append_time, validate_batches, BatchHeader,
    BatchIter, BATCH_HEADER_LEN,
};
use crate::config::{FsyncPolicy, LogConfig, TimestampType};
use crate::error::{Result, StorageError};
use crate::io::IoDriver;
use crate::segment::{file_path, io_error, Segment};

/// Written by `close`, removed by `open`: its presence at open means the previous run ended
/// cleanly.
const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
/// The log start offset, as decimal text, written at close.
const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// How often the background flusher re-reads the config when the policy is not `IntervalMs`.
const FLUSHER_IDLE_MS: u64 = 1000;

pub struct Log {
    dir: PathBuf,
    io: Rc<IoDriver>,
    /// The directory itself, fsynced after segment files are created so they survive a crash.
    dir_file: Rc<File>,
    state: RefCell<State>,
    /// Woken whenever the high watermark moves, or the log closes or fails.
    high_watermark_changed: Notify,
    /// Woken whenever an fsync finishes.
    fsync_done: Notify,
    /// For the tasks a `Log` spawns (write completion, fsync, sealing), which must outlive a
    /// dropped `append` future: a reserved offset range whose write is abandoned half-way
    /// would stall the high watermark forever.
    self_ref: Weak<Log>,
}

struct State {
    config: LogConfig,
    /// Base offset → segment; the last one is active.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    /// Writes reserved but not yet folded into the high watermark: base offset → (end offset,
    /// completed).
    writes: BTreeMap<i64, (i64, bool)>,
    /// Offsets below this are covered by a completed fdatasync.
    durable_offset: i64,
    fsync_in_flight: bool,
    /// A segment file was created since the last directory fsync.
    dir_dirty: bool,
    /// Largest batch max timestamp and that batch's base offset.
    max_timestamp: Option<(i64, i64)>,
    /// The first I/O error: the partition is failed from then on (the broker stays up).
    failed: Option<(std::io::ErrorKind, String)>,
    closed: bool,
}

impl State {
    fn active(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn check_failed(&self, dir: &Path) -> Result<()> {
        match &self.failed {
            Some((kind, message)) => Err(StorageError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(*kind, message.clone()),
            }),
            None => Ok(()),
        }
    }

    fn check_usable(&self, dir: &Path) -> Result<()> {
        if self.closed {
            return Err(StorageError::Closed(dir.to_path_buf()));
        }
        self.check_failed(dir)
    }

    fn observe_timestamp(&mut self, max_timestamp: i64, base_offset: i64) {
        if self.max_timestamp.is_none_or(|(t, _)| max_timestamp > t) {
            self.max_timestamp = Some((max_timestamp, base_offset));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's append time when the log uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone)]
pub struct ReadOutcome {
    /// Whole batches, the first containing the requested offset. Empty when the offset is the
    /// high watermark.
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLookup {
    pub offset: i64,
    pub timestamp_ms: i64,
}

