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

impl Log {
    /// Opens (or creates) the log in `dir`, recovering the tail: batches are checked from the
    /// last clean point; the log is truncated at the first bad byte and indexes rebuilt.
    ///
    /// Segments whose `.index`/`.timeindex` files are present and consistent were fsynced
    /// before those files were written (at seal or close) and are trusted; the first segment
    /// without them and every later one (at least the active segment) are scanned, so
    /// recovery time is bounded by the unsealed tail, not the log size.
    pub async fn open(dir: &Path, config: LogConfig, io: Rc<IoDriver>) -> Result<Rc<Log>> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let dir_file = File::open(dir).map_err(|e| io_error(dir, e))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker).map_err(|e| io_error(&marker, e))?;
        }
        let checkpoint_start = std::fs::read_to_string(dir.join(LOG_START_OFFSET_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok());

        let mut base_offsets = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if stem.len() == 20 {
                if let Ok(base_offset) = stem.parse::<i64>() {
                    base_offsets.push(base_offset);
                }
            }
        }
        base_offsets.sort_unstable();

        let mut segments = BTreeMap::new();
        if base_offsets.is_empty() {
            let base_offset = checkpoint_start.unwrap_or(0).max(0);
            segments.insert(base_offset, Segment::create(dir, base_offset)?);
        } else {
            let last_index = base_offsets.len() - 1;
            let mut scanning = false;
            let mut expected_base = base_offsets[0];
            let mut drop_from = None;
            for (i, &base_offset) in base_offsets.iter().enumerate() {
                let mut segment = Segment::open(dir, base_offset)?;
                if !scanning && i < last_index && !segment.load_indexes(&io).await? {
                    scanning = true;
                }
                if scanning || i == last_index {
                    let truncated = segment
                        .recover(&io, config.index_interval_bytes, expected_base)
                        .await?;
                    if truncated > 0 {
                        tracing::warn!(
                            dir = %dir.display(),
                            offset = segment.next_offset,
                            bytes_truncated = truncated,
                            clean_shutdown = clean,
                            "truncated torn or corrupt segment tail"
                        );
                        if i < last_index {
                            drop_from = Some(i + 1);
                        }
                    }
                    // Stale index files of a scanned segment must not be trusted after a
                    // later crash; they are written again when it is sealed or closed.
                    segment.remove_index_files();
                }
                expected_base = segment.next_offset;
                segments.insert(base_offset, segment);
                if drop_from.is_some() {
                    break;
                }
            }
            if let Some(first_dropped) = drop_from {
                // Everything after a truncation point is gone: the offsets must stay dense.
                for &base_offset in &base_offsets[first_dropped..] {
                    tracing::warn!(
                        dir = %dir.display(),
                        base_offset,
                        "removing segment after truncation point"
                    );
                    for extension in ["log", "index", "timeindex"] {
                        let _ = std::fs::remove_file(file_path(dir, base_offset, extension));
                    }
                }
            }
        }

        let mut state = State {
            config,
            segments,
            log_start_offset: 0,
            log_end_offset: 0,
            high_watermark: 0,
            writes: BTreeMap::new(),
            durable_offset: 0,
            fsync_in_flight: false,
            dir_dirty: false,
            max_timestamp: None,
            failed: None,
            closed: false,
        };
        let first_base = *state.segments.keys().next().unwrap_or(&0);
        let log_end_offset = state.active().next_offset;
        let mut max_timestamp = None;
        for segment in state.segments.values() {
            if let Some((timestamp, relative)) = segment.time_index.last() {
                if max_timestamp.is_none_or(|(t, _)| timestamp > t) {
                    max_timestamp = Some((timestamp, segment.base_offset + relative as i64));
                }
            }
        }
        state.max_timestamp = max_timestamp;
        state.log_end_offset = log_end_offset;
        state.high_watermark = log_end_offset;
        state.durable_offset = log_end_offset;
        state.log_start_offset = checkpoint_start
            .unwrap_or(first_base)
            .clamp(first_base, log_end_offset);

        let log = Rc::new_cyclic(|self_ref| Log {
            dir: dir.to_path_buf(),
            io,
            dir_file: Rc::new(dir_file),
            state: RefCell::new(state),
            high_watermark_changed: Notify::new(),
            fsync_done: Notify::new(),
            self_ref: self_ref.clone(),
        });
        spawn_flusher(Rc::downgrade(&log));
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.state.borrow().config.clone()
    }

    /// Applies new settings (segment size/time, max message bytes, timestamp type, ...).
    pub fn set_config(&self, config: LogConfig) {
        self.state.borrow_mut().config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// The offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.state.borrow().log_end_offset
    }

    /// Offsets below it are written and readable.
    pub fn high_watermark(&self) -> i64 {
        self.state.borrow().high_watermark
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .values()
            .map(|s| s.size_bytes)
            .sum()
    }

    /// Base offsets of the segments, oldest first (the last is active).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.borrow().segments.keys().copied().collect()
    }

    /// Offsets below it are covered by a completed fdatasync.
    pub fn durable_offset(&self) -> i64 {
        self.state.borrow().durable_offset
    }

    fn this(&self) -> Rc<Log> {
        self.self_ref
            .upgrade()
            .expect("a Log is only used through its Rc")
    }

    /// Validates `records` (one or more v2 batches from a produce request), assigns offsets,
    /// rewrites base offsets (and timestamps for LogAppendTime), and writes them. Returns when
    /// the write has completed and, if `durable` and the fsync policy is `Always`, when an
    /// fdatasync covering it has completed (group commit: appends arriving while an fsync is
    /// in flight share the next one). Rolls the segment first when size or time says so.
    pub async fn append(
        &self,
        records: Bytes,
        now_ms: i64,
        durable: bool,
    ) -> Result<AppendOutcome> {
        let max_message_bytes = self.state.borrow().config.max_message_bytes;
        let headers = validate_batches(&records, max_message_bytes)?;
        let offset_count: i64 = headers.iter().map(|h| h.last_offset_delta as i64 + 1).sum();
        let total_bytes = records.len() as u64;

        // Everything up to the spawn is synchronous: offsets and file positions are reserved
        // in call order.
        let (outcome, write, fsync_always) = {
            let mut state = self.state.borrow_mut();
            state.check_usable(&self.dir)?;
            let config = state.config.clone();
            let log_end_offset = state.log_end_offset;
            let roll = {
                let active = state.active();
                !active.is_empty()
                    && (active.size_bytes + total_bytes > config.segment_bytes
                        || active
                            .first_timestamp()
                            .is_some_and(|t| now_ms.saturating_sub(t) > config.segment_ms)
                        || !active.can_hold(log_end_offset + offset_count - 1, total_bytes))
            };
            if roll {
                self.roll(&mut state)?;
            }
            let log_append_time = config.message_timestamp_type == TimestampType::LogAppendTime;
            // The one copy of the batch bytes: offsets (and timestamps) are rewritten in it.
            let mut bytes = BytesMut::from(&records[..]);
            let base_offset = state.log_end_offset;
            let mut offset = base_offset;
            let mut at = 0usize;
            let mut stamped = Vec::with_capacity(headers.len());
            for header in &headers {
                let batch = &mut bytes[at..at + header.total_len()];
                set_base_offset(batch, offset);
                let mut header = *header;
                header.base_offset = offset;
                if log_append_time {
                    set_log_append_time(batch, now_ms);
                    header.max_timestamp = now_ms;
                }
                stamped.push((header, at as u64));
                offset += header.last_offset_delta as i64 + 1;
                at += header.total_len();
            }
            let active = state.active();
            let position = active.size_bytes;
            for (header, at) in &stamped {
                active.index_batch(header, position + at, config.index_interval_bytes);
            }
            active.size_bytes += total_bytes;
            let file = active.file.clone();
            for (header, _) in &stamped {
                state.observe_timestamp(header.max_timestamp, header.base_offset);
            }
            state.log_end_offset = offset;
            state.writes.insert(base_offset, (offset, false));

            let log = self.this();
            let bytes = bytes.freeze();
            let write = tokio::task::spawn_local(async move {
                let result = log.io.write_at(&file, position, bytes).await;
                log.complete_write(base_offset, result)
            });
            let outcome = AppendOutcome {
                base_offset,
                last_offset: offset - 1,
                log_append_time_ms: if log_append_time { now_ms } else { -1 },
                log_start_offset: state.log_start_offset,
            };
            (outcome, write, config.fsync == FsyncPolicy::Always)
        };
        match write.await {
            Ok(result) => result?,
            Err(join_error) => {
                return Err(io_error(&self.dir, std::io::Error::other(join_error)));
            }
        }
        if durable && fsync_always {
            self.flush_through(outcome.last_offset + 1).await?;
        } else {
            // Answer only once the batch is readable: an earlier write may still be in flight.
            self.wait_for_offset(outcome.last_offset).await;
            let state = self.state.borrow();
            state.check_failed(&self.dir)?;
            if state.high_watermark <= outcome.last_offset {
                return Err(StorageError::Closed(self.dir.clone()));
            }
        }
        Ok(outcome)
    }

    /// Folds a completed write into the high watermark (in offset order).
    fn complete_write(&self, base_offset: i64, result: std::io::Result<()>) -> Result<()> {
        let mut state = self.state.borrow_mut();
        if let Err(error) = result {
            tracing::error!(dir = %self.dir.display(), base_offset, %error, "segment write failed; partition is failed");
            state.failed = Some((error.kind(), error.to_string()));
            drop(state);
            self.high_watermark_changed.notify_waiters();
            return Err(io_error(&self.dir, error));
        }
        if let Some(write) = state.writes.get_mut(&base_offset) {
            write.1 = true;
        }
        let before = state.high_watermark;
        let fields = &mut *state;
        while let Some(entry) = fields.writes.first_entry() {
            let (end_offset, completed) = *entry.get();
            if !completed {
                break;
            }
            assert_eq!(
                *entry.key(),
                fields.high_watermark,
                "writes are folded in offset order"
            );
            entry.remove();
            fields.high_watermark = end_offset;
        }
        assert!(state.high_watermark <= state.log_end_offset);
        let moved = state.high_watermark != before;
        drop(state);
        if moved {
            self.high_watermark_changed.notify_waiters();
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset. The old one is sealed in the
    /// background: once its writes complete and an fsync covers them, its index files are
    /// written (which is what lets recovery skip it).
    fn roll(&self, state: &mut State) -> Result<()> {
        let new_base = state.log_end_offset;
        let old_base = state.active().base_offset;
        assert!(new_base > old_base, "roll of an empty segment");
        let segment = Segment::create(&self.dir, new_base)?;
        state.segments.insert(new_base, segment);
        state.dir_dirty = true;
        let log = self.this();
        tokio::task::spawn_local(async move {
            if let Err(error) = log.flush_through(new_base).await {
                tracing::warn!(dir = %log.dir.display(), old_base, %error, "sealing segment failed; it will be rescanned at open");
                return;
            }
            let mut state = log.state.borrow_mut();
            if let Some(segment) = state.segments.get_mut(&old_base) {
                if !segment.indexes_on_disk {
                    if let Err(error) = segment.write_indexes() {
                        tracing::warn!(%error, "writing segment indexes failed; it will be rescanned at open");
                    }
                }
            }
        });
        Ok(())
    }

    /// Flushes everything written so far (for `FsyncPolicy::IntervalMs` callers and tests).
    pub async fn flush(&self) -> Result<()> {
        let high_watermark = self.high_watermark();
        self.flush_through(high_watermark).await
    }

    /// Returns once an fdatasync covers every offset below `end_offset` (group commit: one
    /// fsync in flight per log; whoever waits when it finishes starts the next one, covering
    /// every write completed by then).
    async fn flush_through(&self, end_offset: i64) -> Result<()> {
        // An fsync only covers completed writes; wait for the ones below `end_offset` first.
        if end_offset > 0 {
            self.wait_for_offset(end_offset - 1).await;
        }
        loop {
            let fsync_done = self.fsync_done.notified();
            {
                let mut state = self.state.borrow_mut();
                state.check_failed(&self.dir)?;
                if state.durable_offset >= end_offset {
                    return Ok(());
                }
                if state.high_watermark < end_offset {
                    // Closed before the writes completed.
                    return Err(StorageError::Closed(self.dir.clone()));
                }
                if !state.fsync_in_flight {
                    self.start_fsync(&mut state);
                }
            }
            fsync_done.await;
        }
    }

    fn start_fsync(&self, state: &mut State) {
        let covered = state.high_watermark;
        let durable = state.durable_offset;
        // Every segment holding offsets in [durable, covered): usually only the active one,
        // two around a roll.
        let files: Vec<Rc<File>> = state
            .segments
            .values()
            .filter(|s| s.base_offset < covered && s.next_offset > durable)
            .map(|s| s.file.clone())
            .collect();
        let sync_dir = std::mem::take(&mut state.dir_dirty);
        state.fsync_in_flight = true;
        let log = self.this();
        tokio::task::spawn_local(async move {
            let mut result = Ok(());
            for file in &files {
                result = log.io.fdatasync(file).await;
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok() && sync_dir {
                result = log.io.fdatasync(&log.dir_file).await;
            }
            {
                let mut state = log.state.borrow_mut();
                state.fsync_in_flight = false;
                match result {
                    Ok(()) => state.durable_offset = state.durable_offset.max(covered),
                    Err(error) => {
                        tracing::error!(dir = %log.dir.display(), %error, "fdatasync failed; partition is failed");
                        // After a failed fsync the page cache may have dropped the data
                        // (fsyncgate); nothing later can be acknowledged as durable.
                        state.failed = Some((error.kind(), error.to_string()));
                    }
                }
            }
            log.fsync_done.notify_waiters();
            log.high_watermark_changed.notify_waiters();
        });
    }

    /// Reads whole batches starting with the one that contains `offset`, up to `max_bytes`
    /// but always at least one whole batch (KIP-74), never past the high watermark.
    /// `offset == high_watermark` gives empty records; outside `[log_start, hw]` gives
    /// `OffsetOutOfRange`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome> {
        let (log_start_offset, high_watermark, first_segment, index_interval_bytes) = {
            let state = self.state.borrow();
            state.check_usable(&self.dir)?;
            if offset < state.log_start_offset || offset > state.high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: state.log_start_offset,
                    log_end_offset: state.high_watermark,
                });
            }
            let first_segment = state
                .segments
                .range(..=offset)
                .next_back()
                .map(|(base, _)| *base)
                .unwrap_or(state.log_start_offset);
            (
                state.log_start_offset,
                state.high_watermark,
                first_segment,
                state.config.index_interval_bytes,
            )
        };
        let outcome = |records: Bytes| ReadOutcome {
            records,
            high_watermark,
            log_start_offset,
        };
        if offset == high_watermark {
            return Ok(outcome(Bytes::new()));
        }
        let mut segment_base = first_segment;
        loop {
            // Copied out of the state: no borrow is held across the reads below.
            let Some((file, path, mut position, segment_end)) = ({
                let state = self.state.borrow();
                state.segments.get(&segment_base).map(|s| {
                    (
                        s.file.clone(),
                        s.path.clone(),
                        s.position_for(offset),
                        s.size_bytes,
                    )
                })
            }) else {
                return Ok(outcome(Bytes::new()));
            };
            while position < segment_end {
                // Enough for the wanted bytes plus the gap the sparse index leaves before the
                // requested offset.
                let want = (segment_end - position).min(
                    max_bytes as u64 + index_interval_bytes as u64 + BATCH_HEADER_LEN as u64 * 4,
                ) as usize;
                let chunk = self
                    .io
                    .read_at(&file, position, want)
                    .await
                    .map_err(|e| io_error(&path, e))?;
                let mut iter = BatchIter::new(&chunk);
                let mut taken: Option<(usize, usize)> = None;
                let mut reached_high_watermark = false;
                for (header, range) in iter.by_ref() {
                    if header.base_offset >= high_watermark {
                        reached_high_watermark = true;
                        break;
                    }
                    if header.last_offset() < offset {
                        continue;
                    }
                    match taken {
                        None => taken = Some((range.start, range.end)),
                        Some((start, _)) if range.end - start > max_bytes => break,
                        Some((start, _)) => taken = Some((start, range.end)),
                    }
                }
                if let Some((start, end)) = taken {
                    return Ok(outcome(chunk.slice(start..end)));
                }
                if reached_high_watermark {
                    return Ok(outcome(Bytes::new()));
                }
                if iter.position() > 0 {
                    position += iter.position() as u64;
                    continue;
                }
                // The batch at `position` is larger than the chunk: read it whole.
                let header = match BatchHeader::parse(&chunk) {
                    Ok(header) if position + header.total_len() as u64 <= segment_end => header,
                    _ => break, // unwritten or corrupt bytes: nothing more in this segment
                };
                if header.base_offset >= high_watermark {
                    return Ok(outcome(Bytes::new()));
                }
                if header.last_offset() < offset {
                    position += header.total_len() as u64;
                    continue;
                }
                let batch = self
                    .io
                    .read_at(&file, position, header.total_len())
                    .await
                    .map_err(|e| io_error(&path, e))?;
                if batch.len() != header.total_len() {
                    break;
                }
                return Ok(outcome(batch));
            }
            // The offset lies past this segment's batches: continue with the next segment.
            let next = {
                let state = self.state.borrow();
                state
                    .segments
                    .range(segment_base + 1..)
                    .next()
                    .map(|(base, _)| *base)
            };
            match next {
                Some(base) if base < high_watermark => segment_base = base,
                _ => return Ok(outcome(Bytes::new())),
            }
        }
    }

    /// Resolves once the high watermark is above `offset` (or the log is closed). Used by
    /// fetch long-polling; the caller races it against its own deadline.
    pub async fn wait_for_offset(&self, offset: i64) {
        loop {
            let changed = self.high_watermark_changed.notified();
            {
                let state = self.state.borrow();
                if state.high_watermark > offset || state.closed || state.failed.is_some() {
                    return;
                }
            }
            changed.await;
        }
    }

    /// ListOffsets by time: the first offset whose batch max timestamp is >= `timestamp_ms`,
    /// with that timestamp; `None` if there is none.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimestampLookup>> {
        let candidate = {
            let state = self.state.borrow();
            state.check_usable(&self.dir)?;
            // Segments' time indexes hold running maxima, so the first segment with an entry
            // at or above the target holds the first batch that reaches it.
            state
                .segments
                .values()
                .find_map(|s| {
                    s.time_index
                        .first_at_or_after(timestamp_ms)
                        .map(|(_, relative)| s.base_offset + relative as i64)
                })
                .filter(|&offset| offset < state.high_watermark)
                .map(|offset| offset.max(state.log_start_offset))
        };
        let Some(offset) = candidate else {
            return Ok(None);
        };
        self.lookup_in_batch(offset, timestamp_ms).await
    }

    /// Reads the batch holding `offset` and finds its first record at or after `timestamp_ms`.
    async fn lookup_in_batch(
        &self,
        offset: i64,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampLookup>> {
        let read = self.read(offset, 1).await?;
        let Some((_, range)) = BatchIter::new(&read.records).next() else {
            return Ok(None);
        };
        Ok(
            find_record_by_timestamp(&read.records[range], timestamp_ms).map(
                |(offset, timestamp_ms)| TimestampLookup {
                    offset,
                    timestamp_ms,
                },
            ),
        )
    }

    /// ListOffsets -3 (KIP-734): the offset of the record with the largest timestamp.
    pub async fn max_timestamp(&self) -> Result<Option<TimestampLookup>> {
        let candidate = {
            let state = self.state.borrow();
            state.check_usable(&self.dir)?;
            state.max_timestamp.filter(|&(_, offset)| {
                offset < state.high_watermark && offset >= state.log_start_offset
            })
        };
        let Some((timestamp_ms, offset)) = candidate else {
            return Ok(None);
        };
        self.lookup_in_batch(offset, timestamp_ms).await
    }

    /// Rolls the active segment if it is older than `segment.ms`; called by a periodic tick.
    pub async fn roll_if_due(&self, now_ms: i64) -> Result<()> {
        let mut state = self.state.borrow_mut();
        state.check_usable(&self.dir)?;
        let segment_ms = state.config.segment_ms;
        let active = state.active();
        let due = !active.is_empty()
            && active
                .first_timestamp()
                .is_some_and(|t| now_ms.saturating_sub(t) > segment_ms);
        if due {
            self.roll(&mut state)?;
        }
        Ok(())
    }

    /// Flushes everything, writes indexes and a clean-shutdown marker, and closes the files.
    pub async fn close(&self) -> Result<()> {
        let log_end_offset = {
            let state = self.state.borrow();
            if state.closed {
                return Ok(());
            }
            state.check_failed(&self.dir)?;
            state.log_end_offset
        };
        // Let the writes in flight land, then stop accepting new work.
        self.flush_through(log_end_offset).await?;
        {
            let mut state = self.state.borrow_mut();
            state.closed = true;
            for segment in state.segments.values_mut() {
                if !segment.indexes_on_disk {
                    segment.write_indexes()?;
                }
            }
            let checkpoint = self.dir.join(LOG_START_OFFSET_FILE);
            std::fs::write(&checkpoint, state.log_start_offset.to_string())
                .map_err(|e| io_error(&checkpoint, e))?;
        }
        self.high_watermark_changed.notify_waiters();
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::write(&marker, b"").map_err(|e| io_error(&marker, e))?;
        self.io
            .fdatasync(&self.dir_file)
            .await
            .map_err(|e| io_error(&self.dir, e))?;
        Ok(())
    }

    /// Closes the log and removes its directory.
    pub async fn delete(&self) -> Result<()> {
        let closed = self.close().await;
        {
            let mut state = self.state.borrow_mut();
            state.closed = true;
        }
        self.high_watermark_changed.notify_waiters();
        if let Err(error) = closed {
            // The data is being removed anyway; a failed flush does not matter.
            tracing::debug!(%error, "close before delete failed");
        }
        std::fs::remove_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))
    }
}

/// Background flush for `FsyncPolicy::IntervalMs`: one local task per log, holding only a weak
/// reference across its sleeps so it ends with the log. It re-reads the policy each round, so
/// `set_config` takes effect.
fn spawn_flusher(log: Weak<Log>) {
    tokio::task::spawn_local(async move {
        loop {
            let interval_ms = {
                let Some(log) = log.upgrade() else { return };
                let state = log.state.borrow();
                if state.closed {
                    return;
                }
                match state.config.fsync {
                    FsyncPolicy::IntervalMs(ms) => Some(ms.max(1)),
                    _ => None,
                }
            };
            let sleep_ms = interval_ms.unwrap_or(FLUSHER_IDLE_MS);
            tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)).await;
            if interval_ms.is_none() {
                continue;
            }
            let Some(log) = log.upgrade() else { return };
            let pending = {
                let state = log.state.borrow();
                state.high_watermark > state.durable_offset && !state.closed
            };
            if pending {
                if let Err(error) = log.flush().await {
                    tracing::warn!(dir = %log.dir.display(), %error, "background flush failed");
                    return;
                }
            }
        }
    });
}
