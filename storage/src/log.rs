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
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::Notify;

use crate::batch::{
    find_record_by_timestamp, set_base_offset, set_log_append_time, validate_batches, BatchHeader,
    BatchIter, BATCH_HEADER_LEN,
};
use crate::config::{FsyncPolicy, LogConfig, TimestampType};
use crate::error::{Result, StorageError};
use crate::file_slice::{is_cached, FileSlice, Records};
use crate::io::IoDriver;
use crate::producer::{
    list_snapshots, snapshot_path, ProducerStateMap, ProducerSummary, SequenceCheck,
};
use crate::segment::{file_path, io_error, Segment};

/// Written by `close`, removed by `open`: its presence at open means the previous run ended
/// cleanly.
const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
/// The log start offset, as decimal text: written durably (temporary file, fdatasync, rename,
/// directory fdatasync) whenever retention or DeleteRecords moves it, and at close.
const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// Producer-state snapshots kept; recovery reads the newest valid one.
const SNAPSHOTS_KEPT: usize = 3;
/// How often the background flusher re-reads the config when the policy is not `IntervalMs`.
const FLUSHER_IDLE_MS: u64 = 1000;

pub struct Log {
    dir: PathBuf,
    io: Rc<IoDriver>,
    /// The directory itself, fsynced after segment files are created so they survive a crash.
    state: RefCell<State>,
    /// Woken whenever the high watermark moves, or the log closes or fails.
    high_watermark_changed: Notify,
    /// Woken whenever an fsync finishes.
    fsync_done: Notify,
    /// Serializes checkpoint writes, so that a slower writer of an older log start offset
    /// cannot rename its file over a newer one.
    checkpoint_lock: tokio::sync::Mutex<()>,
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
    /// Writes reserved but not yet folded into the high watermark, by base offset.
    writes: BTreeMap<i64, PendingWrite>,
    /// Set when a write failed for lack of space (ENOSPC, EDQUOT): the log is cut back to this
    /// offset once no write is in flight, and appends are refused until then. Unlike other
    /// I/O errors this does not fail the partition: writing resumes when space returns.
    rewind_to: Option<i64>,
    /// Idempotent producers' recent batches, for duplicate and sequence checks.
    producers: ProducerStateMap,
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
    /// Tiered logs: offsets below this are safely in object storage (listed in the remote
    /// manifest), so local retention may delete segments that end at or below it.
    remote_end_offset: i64,
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

    /// A read at `offset` may go ahead: the log is usable and `offset` is in
    /// `[log start, high watermark]`.
    fn check_readable(&self, dir: &Path, offset: i64) -> Result<()> {
        self.check_usable(dir)?;
        if offset < self.log_start_offset || offset > self.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.high_watermark,
            });
        }
        Ok(())
    }

    fn observe_timestamp(&mut self, max_timestamp: i64, base_offset: i64) {
        if self.max_timestamp.is_none_or(|(t, _)| max_timestamp > t) {
            self.max_timestamp = Some((max_timestamp, base_offset));
        }
    }
}

/// A reserved write: where it goes, and whether it has finished.
#[derive(Debug, Clone, Copy)]
struct PendingWrite {
    end_offset: i64,
    segment_base: i64,
    position: u64,
    /// Finished without error.
    completed: bool,
    /// Finished with an error (or was cut back).
    failed: bool,
}

/// Out of space: ENOSPC, or a quota (EDQUOT).
fn is_disk_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || matches!(
            error.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        )
}

fn disk_full_error(dir: &Path, what: &str) -> StorageError {
    StorageError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::StorageFull, what.to_string()),
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

/// A sealed, durable segment's files, for upload to object storage.
#[derive(Debug, Clone)]
pub struct SealedSegmentInfo {
    pub base_offset: i64,
    /// One past its last offset.
    pub next_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp_ms: i64,
    pub log_file: PathBuf,
    pub index_file: PathBuf,
    pub time_index_file: PathBuf,
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

/// Appends at least this large are written from the received buffer in pieces instead of
/// being copied (below it, the copy costs less than the longer iovec list).
const VECTORED_APPEND_MIN_BYTES: usize = 64 * 1024;

/// What `read_shared` returns.
#[derive(Debug, Clone)]
pub struct SharedReadOutcome {
    pub records: Records,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// A read whose batch boundaries the offset index gives.
struct IndexedRead {
    file: Arc<File>,
    path: PathBuf,
    position: u64,
    len: usize,
    high_watermark: i64,
    log_start_offset: i64,
}

/// Plans a read of whole batches from `offset` within its segment, up to `max_bytes`, from the
/// offset index alone: `offset` must start an indexed batch, and the read ends at an indexed
/// batch boundary or at the high watermark's position. None when the index cannot tell (then
/// the caller parses the bytes instead).
fn plan_indexed_read(state: &State, offset: i64, max_bytes: usize) -> Option<IndexedRead> {
    if state.rewind_to.is_some() {
        return None; // a cut-back is pending: positions above the high watermark may move
    }
    let (&base, segment) = state.segments.range(..=offset).next_back()?;
    let relative = u32::try_from(offset - base).ok()?;
    let (entry_offset, position) = segment.offset_index.floor_entry(relative)?;
    if entry_offset != relative {
        return None;
    }
    // Bytes below the high watermark: up to the first write not yet folded into it, when
    // that write is in this segment.
    let readable_end = match state.writes.values().next() {
        Some(write) if write.segment_base == base => write.position,
        Some(write) if write.segment_base < base => return None,
        _ => segment.size_bytes,
    };
    let position = position as u64;
    if position >= readable_end {
        return None;
    }
    let limit = position.saturating_add(max_bytes as u64);
    let end = if readable_end <= limit {
        readable_end
    } else {
        let up_to = u32::try_from(limit).unwrap_or(u32::MAX);
        segment
            .offset_index
            .last_position_in(position as u32, up_to)? as u64
    };
    Some(IndexedRead {
        file: segment.file.clone(),
        path: segment.path.clone(),
        position,
        len: usize::try_from(end - position).ok()?,
        high_watermark: state.high_watermark,
        log_start_offset: state.log_start_offset,
    })
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
                // A crash during a roll can leave the new segment's file while the old one's
                // last writes (never acknowledged: no fsync covered them) are lost: a gap.
                // Offsets must stay dense, so what follows the gap goes, as after a truncation.
                if drop_from.is_none()
                    && i < last_index
                    && segment.next_offset != base_offsets[i + 1]
                {
                    tracing::warn!(
                        dir = %dir.display(),
                        segment_end = segment.next_offset,
                        next_base = base_offsets[i + 1],
                        clean_shutdown = clean,
                        "gap between segments after a crash; later segments removed"
                    );
                    drop_from = Some(i + 1);
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
            rewind_to: None,
            producers: ProducerStateMap::default(),
            durable_offset: 0,
            fsync_in_flight: false,
            dir_dirty: false,
            max_timestamp: None,
            failed: None,
            closed: false,
            remote_end_offset: 0,
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
        state.producers = recover_producers(dir, &io, &state.segments, log_end_offset).await?;
        state.producers.remove_below(state.log_start_offset);

        let log = Rc::new_cyclic(|self_ref| Log {
            dir: dir.to_path_buf(),
            io,
            state: RefCell::new(state),
            high_watermark_changed: Notify::new(),
            fsync_done: Notify::new(),
            checkpoint_lock: tokio::sync::Mutex::new(()),
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

    /// The partition directory, opened for an fsync of its entries. Opened on demand (segment
    /// creation, checkpoints, close) rather than held, so that a partition costs one open file
    /// (its active segment) and 10,000 partitions fit common descriptor limits.
    fn open_dir(&self) -> std::io::Result<Arc<File>> {
        File::open(&self.dir).map(Arc::new)
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
        let reserved = {
            let state = self.state.borrow();
            state.check_usable(&self.dir)?;
            if state.rewind_to.is_some() {
                return Err(disk_full_error(
                    &self.dir,
                    "no space left on device: the log is being cut back to its last good batch",
                ));
            }
            // Idempotent producers (Kafka's ProducerAppendInfo): a retry of a batch still
            // remembered gets its original offsets and is not written again.
            if let Some(duplicate) = check_producers(&state.producers, &headers)? {
                Err(AppendOutcome {
                    base_offset: duplicate.first_offset,
                    last_offset: duplicate.last_offset,
                    log_append_time_ms: -1,
                    log_start_offset: state.log_start_offset,
                })
            } else {
                Ok(())
            }
        };
        let fsync_always = self.state.borrow().config.fsync == FsyncPolicy::Always;
        if let Err(duplicate) = reserved {
            // The original may still be in flight: answer as its own append would be.
            self.wait_appended(&duplicate, durable && fsync_always)
                .await?;
            return Ok(duplicate);
        }
        let (outcome, write) = {
            let mut state = self.state.borrow_mut();
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
            // Base offsets (and, for LogAppendTime, timestamps and CRCs) are rewritten. Small
            // appends, and LogAppendTime ones, are copied once and rewritten in the copy; large
            // ones keep the received bytes and go out as pieces, each batch's new 8-byte base
            // offset followed by the rest of the batch as received (one vectored write).
            let mut copy = (log_append_time || records.len() < VECTORED_APPEND_MIN_BYTES)
                .then(|| BytesMut::from(&records[..]));
            let mut pieces: Vec<Bytes> = Vec::new();
            // The rewritten base offsets of a piece-wise append, one buffer for all batches.
            let mut new_base_offsets = BytesMut::new();
            if copy.is_none() {
                new_base_offsets.reserve(8 * headers.len());
            }
            let base_offset = state.log_end_offset;
            let mut offset = base_offset;
            let mut at = 0usize;
            let mut stamped = Vec::with_capacity(headers.len());
            for header in &headers {
                let mut header = *header;
                header.base_offset = offset;
                match copy.as_mut() {
                    Some(bytes) => {
                        let batch = &mut bytes[at..at + header.total_len()];
                        set_base_offset(batch, offset);
                        if log_append_time {
                            set_log_append_time(batch, now_ms);
                            header.max_timestamp = now_ms;
                        }
                    }
                    None => {
                        new_base_offsets.put_i64(offset);
                        pieces.push(new_base_offsets.split().freeze());
                        pieces.push(records.slice(at + 8..at + header.total_len()));
                    }
                }
                stamped.push((header, at as u64));
                offset += header.last_offset_delta as i64 + 1;
                at += header.total_len();
            }
            let active = state.active();
            let position = active.size_bytes;
            let segment_base = active.base_offset;
            for (header, at) in &stamped {
                active.index_batch(header, position + at, config.index_interval_bytes);
            }
            active.size_bytes += total_bytes;
            let file = active.file.clone();
            for (header, _) in &stamped {
                state.observe_timestamp(header.max_timestamp, header.base_offset);
                state.producers.record(header);
            }
            state.log_end_offset = offset;
            state.writes.insert(
                base_offset,
                PendingWrite {
                    end_offset: offset,
                    segment_base,
                    position,
                    completed: false,
                    failed: false,
                },
            );

            let log = self.this();
            let copy = copy.map(BytesMut::freeze);
            let write = tokio::task::spawn_local(async move {
                let result = match copy {
                    Some(bytes) => log.io.write_at(&file, position, bytes).await,
                    None => log.io.write_pieces_at(&file, position, pieces).await,
                };
                log.complete_write(base_offset, result)
            });
            let outcome = AppendOutcome {
                base_offset,
                last_offset: offset - 1,
                log_append_time_ms: if log_append_time { now_ms } else { -1 },
                log_start_offset: state.log_start_offset,
            };
            (outcome, write)
        };
        match write.await {
            Ok(result) => result?,
            Err(join_error) => {
                return Err(io_error(&self.dir, std::io::Error::other(join_error)));
            }
        }
        self.wait_appended(&outcome, durable && fsync_always)
            .await?;
        Ok(outcome)
    }

    /// Waits until an appended range is readable, or durable when `durable`.
    async fn wait_appended(&self, outcome: &AppendOutcome, durable: bool) -> Result<()> {
        if durable {
            return self.flush_through(outcome.last_offset + 1).await;
        }
        // Answer only once the batch is readable: an earlier write may still be in flight.
        self.wait_for_written(outcome.last_offset).await;
        let state = self.state.borrow();
        state.check_failed(&self.dir)?;
        if state.high_watermark <= outcome.last_offset {
            return Err(self.lost_write_error(&state, outcome.last_offset + 1));
        }
        Ok(())
    }

    /// Why offsets below `end_offset` will never be readable: cut back after a full disk, or
    /// the log closed.
    fn lost_write_error(&self, state: &State, end_offset: i64) -> StorageError {
        if state.log_end_offset < end_offset || state.rewind_to.is_some() {
            disk_full_error(&self.dir, "no space left on device; the write was not kept")
        } else {
            StorageError::Closed(self.dir.clone())
        }
    }

    /// Folds a completed write into the high watermark (in offset order). A write that failed
    /// for lack of space starts a cut-back instead of failing the partition.
    fn complete_write(&self, base_offset: i64, result: std::io::Result<()>) -> Result<()> {
        let mut state = self.state.borrow_mut();
        let outcome = match result {
            Err(error) if is_disk_full(&error) => {
                tracing::warn!(dir = %self.dir.display(), base_offset, %error, "segment write failed for lack of space; cutting the log back");
                if let Some(write) = state.writes.get_mut(&base_offset) {
                    write.failed = true;
                }
                state.rewind_to = Some(state.rewind_to.map_or(base_offset, |r| r.min(base_offset)));
                Err(io_error(&self.dir, error))
            }
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), base_offset, %error, "segment write failed; partition is failed");
                state.failed = Some((error.kind(), error.to_string()));
                drop(state);
                self.high_watermark_changed.notify_waiters();
                return Err(io_error(&self.dir, error));
            }
            Ok(()) => {
                let cut = state.rewind_to.is_some_and(|r| base_offset >= r);
                if let Some(write) = state.writes.get_mut(&base_offset) {
                    // A write above a failed one lands after a gap: it is cut back too.
                    write.completed = !cut;
                    write.failed = cut;
                }
                if cut {
                    Err(disk_full_error(
                        &self.dir,
                        "no space left on device for an earlier batch; this one was cut back",
                    ))
                } else {
                    Ok(())
                }
            }
        };
        let before = state.high_watermark;
        let fields = &mut *state;
        while let Some(entry) = fields.writes.first_entry() {
            let write = *entry.get();
            if !write.completed {
                break;
            }
            assert_eq!(
                *entry.key(),
                fields.high_watermark,
                "writes are folded in offset order"
            );
            entry.remove();
            fields.high_watermark = write.end_offset;
        }
        assert!(state.high_watermark <= state.log_end_offset);
        let mut moved = state.high_watermark != before;
        if state.rewind_to.is_some() && state.writes.values().all(|w| w.completed || w.failed) {
            if let Err(error) = self.rewind(&mut state) {
                tracing::error!(dir = %self.dir.display(), %error, "cutting the log back failed; partition is failed");
                state.failed = Some((std::io::ErrorKind::Other, error.to_string()));
            }
            moved = true;
        }
        drop(state);
        if moved {
            self.high_watermark_changed.notify_waiters();
        }
        outcome
    }

    /// Cuts the log back to the first failed write once nothing is in flight: segments
    /// created after it are removed, its segment is truncated to where it was to start, and
    /// producer state forgets the lost batches. Appends resume from there.
    fn rewind(&self, state: &mut State) -> Result<()> {
        let Some((&rewind_offset, first_lost)) = state.writes.iter().next() else {
            state.rewind_to = None;
            return Ok(());
        };
        let first_lost = *first_lost;
        assert_eq!(
            rewind_offset, state.high_watermark,
            "writes below the cut are folded"
        );
        let later: Vec<i64> = state
            .segments
            .range(first_lost.segment_base + 1..)
            .map(|(base, _)| *base)
            .collect();
        for base in later {
            if let Some(segment) = state.segments.remove(&base) {
                segment.remove_files();
            }
        }
        if let Some(segment) = state.segments.get_mut(&first_lost.segment_base) {
            segment.truncate_to(first_lost.position, rewind_offset)?;
        }
        state.writes.clear();
        state.log_end_offset = rewind_offset;
        state.producers.truncate_from(rewind_offset);
        state.rewind_to = None;
        state.dir_dirty = true;
        tracing::warn!(dir = %self.dir.display(), offset = rewind_offset, "log cut back after a full disk; appends resume");
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
        // Producer state exactly at the roll point (as Kafka snapshots at roll); written once
        // the data below it is durable, so recovery can start its producer scan here.
        let snapshot = state.producers.encode();
        let log = self.this();
        tokio::task::spawn_local(async move {
            if let Err(error) = log.flush_through(new_base).await {
                tracing::warn!(dir = %log.dir.display(), old_base, %error, "sealing segment failed; it will be rescanned at open");
                return;
            }
            {
                let mut state = log.state.borrow_mut();
                // A cut-back after a full disk may have made the old segment active again:
                // only a segment that is sealed and wholly durable gets index files.
                let durable = state.durable_offset;
                let sealed = state.segments.range(old_base + 1..).next().is_some();
                if let Some(segment) = state.segments.get_mut(&old_base) {
                    if sealed && segment.next_offset <= durable && !segment.indexes_on_disk {
                        if let Err(error) = segment.write_indexes() {
                            tracing::warn!(%error, "writing segment indexes failed; it will be rescanned at open");
                        }
                    }
                }
            }
            write_snapshot(&log.dir, new_base, &snapshot);
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
            self.wait_for_written(end_offset - 1).await;
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
                    // Closed, or cut back after a full disk, before the writes completed.
                    return Err(self.lost_write_error(&state, end_offset));
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
        let files: Vec<Arc<File>> = state
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
                result = match log.open_dir() {
                    Ok(dir_file) => log.io.fdatasync(&dir_file).await,
                    Err(error) => Err(error),
                };
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
            state.check_readable(&self.dir, offset)?;
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

    /// Like `read`, for serving consumers: when the read starts at a batch the offset index
    /// names exactly (every batch of a log written in batches of at least
    /// `index_interval_bytes`, as bulk producers write), the batch boundaries come from the index
    /// and the bytes are not parsed; if there are at least `min_file_bytes` of them and they are
    /// all in the page cache, they come back as a range of the segment file, to be sent with
    /// `sendfile` without passing through user space. Every other case is `read`.
    pub async fn read_shared(
        &self,
        offset: i64,
        max_bytes: usize,
        min_file_bytes: usize,
    ) -> Result<SharedReadOutcome> {
        let planned = {
            let state = self.state.borrow();
            state.check_readable(&self.dir, offset)?;
            if offset == state.high_watermark {
                return Ok(SharedReadOutcome {
                    records: Records::default(),
                    high_watermark: state.high_watermark,
                    log_start_offset: state.log_start_offset,
                });
            }
            plan_indexed_read(&state, offset, max_bytes)
        };
        let fallback = |outcome: ReadOutcome| SharedReadOutcome {
            records: Records::Memory(outcome.records),
            high_watermark: outcome.high_watermark,
            log_start_offset: outcome.log_start_offset,
        };
        let Some(plan) = planned else {
            return self.read(offset, max_bytes).await.map(fallback);
        };
        let outcome = |records: Records| SharedReadOutcome {
            records,
            high_watermark: plan.high_watermark,
            log_start_offset: plan.log_start_offset,
        };
        if plan.len >= min_file_bytes && is_cached(&plan.file, plan.position, plan.len) {
            return Ok(outcome(Records::File(FileSlice {
                file: plan.file,
                position: plan.position,
                len: plan.len,
            })));
        }
        let bytes = self
            .io
            .read_at(&plan.file, plan.position, plan.len)
            .await
            .map_err(|e| io_error(&plan.path, e))?;
        if bytes.len() != plan.len {
            // Shorter than the index promised: let the parsing read decide what is there.
            return self.read(offset, max_bytes).await.map(fallback);
        }
        Ok(outcome(Records::Memory(bytes)))
    }

    /// Like `wait_for_offset`, for an offset that was appended: also resolves when a cut-back
    /// after a full disk removed it.
    async fn wait_for_written(&self, offset: i64) {
        loop {
            let changed = self.high_watermark_changed.notified();
            {
                let state = self.state.borrow();
                if state.high_watermark > offset
                    || state.log_end_offset <= offset
                    || state.closed
                    || state.failed.is_some()
                {
                    return;
                }
            }
            changed.await;
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
            // Everything is flushed: a snapshot at the log end lets the next open skip the
            // producer scan entirely.
            write_snapshot(&self.dir, state.log_end_offset, &state.producers.encode());
        }
        self.high_watermark_changed.notify_waiters();
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::write(&marker, b"").map_err(|e| io_error(&marker, e))?;
        let dir_file = self.open_dir().map_err(|e| io_error(&self.dir, e))?;
        self.io
            .fdatasync(&dir_file)
            .await
            .map_err(|e| io_error(&self.dir, e))?;
        Ok(())
    }

    /// The idempotent producers with state in this partition (DescribeProducers).
    pub fn producers(&self) -> Vec<ProducerSummary> {
        self.state.borrow().producers.summaries()
    }

    /// Deletes whole old segments by `retention.ms` (a segment whose newest record is older),
    /// `retention.bytes` (while the log without the oldest segment is still at least that
    /// big) and the log start offset (segments wholly below it). Never the active segment,
    /// nor one with writes in flight. Returns the base offsets deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<Vec<i64>> {
        let deletable = {
            let state = self.state.borrow();
            state.check_usable(&self.dir)?;
            // A tiered log keeps locally what local retention says, and never deletes a
            // segment that is not yet safely remote.
            let tiered = state.config.remote_storage;
            let (retention_ms, retention_bytes) = if tiered {
                (
                    state.config.local_retention_ms,
                    state.config.local_retention_bytes,
                )
            } else {
                (state.config.retention_ms, state.config.retention_bytes)
            };
            let mut remaining_bytes: u64 = state.segments.values().map(|s| s.size_bytes).sum();
            let mut deletable = Vec::new();
            let mut iter = state.segments.values().peekable();
            while let Some(segment) = iter.next() {
                // The active segment (the last) is never deleted.
                let Some(next) = iter.peek() else { break };
                if next.base_offset > state.high_watermark {
                    break;
                }
                let below_start = next.base_offset <= state.log_start_offset;
                let expired = retention_ms >= 0
                    && segment
                        .time_index
                        .last()
                        .is_none_or(|(t, _)| now_ms.saturating_sub(t) > retention_ms);
                let oversized = retention_bytes >= 0
                    && remaining_bytes - segment.size_bytes >= retention_bytes as u64;
                if !(below_start || expired || oversized) {
                    break;
                }
                if tiered && !below_start && next.base_offset > state.remote_end_offset {
                    break;
                }
                remaining_bytes -= segment.size_bytes;
                deletable.push((segment.base_offset, next.base_offset));
            }
            deletable
        };
        let Some(&(_, new_first_base)) = deletable.last() else {
            return Ok(Vec::new());
        };
        self.advance_log_start(new_first_base).await?;
        Ok(deletable.into_iter().map(|(base, _)| base).collect())
    }

    /// Tiered logs: everything below `offset` is now in object storage.
    pub fn set_remote_end_offset(&self, offset: i64) {
        let mut state = self.state.borrow_mut();
        state.remote_end_offset = state.remote_end_offset.max(offset);
    }

    /// Sealed segments (not the active one) that are wholly durable and have their index
    /// files on disk: what tiering may upload, oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegmentInfo> {
        let mut state = self.state.borrow_mut();
        let durable = state.durable_offset.min(state.high_watermark);
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        let mut sealed = Vec::new();
        // Every segment but the last (active) one.
        for base in bases.iter().take(bases.len().saturating_sub(1)) {
            let Some(segment) = state.segments.get_mut(base) else {
                break;
            };
            if segment.next_offset > durable || segment.next_offset <= segment.base_offset {
                break;
            }
            if !segment.indexes_on_disk {
                // A segment recovered by a rescan has no index files until now.
                if let Err(error) = segment.write_indexes() {
                    tracing::warn!(dir = %self.dir.display(), base, %error, "cannot write a sealed segment's indexes");
                    break;
                }
            }
            sealed.push(SealedSegmentInfo {
                base_offset: segment.base_offset,
                next_offset: segment.next_offset,
                size_bytes: segment.size_bytes,
                max_timestamp_ms: segment.time_index.last().map(|(t, _)| t).unwrap_or(-1),
                log_file: segment.path.clone(),
                index_file: crate::segment::file_path(&self.dir, segment.base_offset, "index"),
                time_index_file: crate::segment::file_path(
                    &self.dir,
                    segment.base_offset,
                    "timeindex",
                ),
            });
        }
        sealed
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark) and
    /// deletes the segments wholly below it. Returns the new log start offset (Kafka's low
    /// watermark). An offset above the high watermark is `OffsetOutOfRange`; one below the
    /// log start changes nothing.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let target = {
            let state = self.state.borrow();
            state.check_usable(&self.dir)?;
            let target = if offset == -1 {
                state.high_watermark
            } else {
                offset
            };
            if target < 0 || target > state.high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: state.log_start_offset,
                    log_end_offset: state.high_watermark,
                });
            }
            target
        };
        self.advance_log_start(target).await?;
        Ok(self.log_start_offset())
    }

    /// Moves the log start offset up to `offset` (never down), makes it durable, then removes
    /// the segments wholly below it with their files and older producer snapshots.
    async fn advance_log_start(&self, offset: i64) -> Result<()> {
        let moved = {
            let mut state = self.state.borrow_mut();
            if offset > state.log_start_offset {
                state.log_start_offset = offset;
                state.producers.remove_below(offset);
                true
            } else {
                false
            }
        };
        if moved {
            // Durable before any file goes: a crash in between must not bring deleted
            // records back as readable.
            self.write_checkpoint().await?;
        }
        let removed: Vec<Segment> = {
            let mut state = self.state.borrow_mut();
            let log_start_offset = state.log_start_offset;
            let mut removable = Vec::new();
            let mut iter = state.segments.iter().peekable();
            while let Some((&base, _)) = iter.next() {
                match iter.peek() {
                    Some((&next_base, _)) if next_base <= log_start_offset => removable.push(base),
                    _ => break,
                }
            }
            removable
                .into_iter()
                .filter_map(|base| state.segments.remove(&base))
                .collect()
        };
        if let Some(first_kept) = self.segment_base_offsets().first().copied() {
            for snapshot in list_snapshots(&self.dir) {
                if snapshot < first_kept {
                    let _ = std::fs::remove_file(snapshot_path(&self.dir, snapshot));
                }
            }
        }
        for segment in &removed {
            tracing::info!(dir = %self.dir.display(), base_offset = segment.base_offset, "deleting segment below the log start offset");
            segment.remove_files();
        }
        Ok(())
    }

    /// Writes the log start offset durably: temporary file, fdatasync, rename over the
    /// checkpoint, fdatasync of the directory.
    async fn write_checkpoint(&self) -> Result<()> {
        let _guard = self.checkpoint_lock.lock().await;
        let value = self.log_start_offset();
        let path = self.dir.join(LOG_START_OFFSET_FILE);
        let temporary = self.dir.join(format!("{LOG_START_OFFSET_FILE}.tmp"));
        let file = File::create(&temporary).map_err(|e| io_error(&temporary, e))?;
        std::io::Write::write_all(&mut &file, value.to_string().as_bytes())
            .map_err(|e| io_error(&temporary, e))?;
        let file = Arc::new(file);
        self.io
            .fdatasync(&file)
            .await
            .map_err(|e| io_error(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io_error(&path, e))?;
        let dir_file = self.open_dir().map_err(|e| io_error(&self.dir, e))?;
        self.io
            .fdatasync(&dir_file)
            .await
            .map_err(|e| io_error(&self.dir, e))
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

/// Checks every batch of an append against the producer state. A duplicate (a retry of a
/// remembered batch) is returned as such: Kafka answers it with the original offsets and
/// writes nothing. Several batches of one producer in one append are checked in sequence.
fn check_producers(
    producers: &ProducerStateMap,
    headers: &[BatchHeader],
) -> Result<Option<crate::producer::BatchMetadata>> {
    if headers
        .iter()
        .all(|h| h.producer_id < 0 && !h.is_transactional())
    {
        return Ok(None);
    }
    if let [header] = headers {
        return match producers.check(header)? {
            SequenceCheck::Duplicate(original) => Ok(Some(original)),
            SequenceCheck::Append | SequenceCheck::NotIdempotent => Ok(None),
        };
    }
    // Rare (clients send one batch per partition): check against a staged copy.
    let mut staged = producers.clone();
    for header in headers {
        match staged.check(header)? {
            SequenceCheck::Duplicate(original) => return Ok(Some(original)),
            SequenceCheck::Append | SequenceCheck::NotIdempotent => staged.record(header),
        }
    }
    Ok(None)
}

/// Writes a producer-state snapshot `<offset>.snapshot` (temporary file, then rename) and
/// keeps only the newest few. Not fsynced: a lost or torn snapshot (caught by its CRC) only
/// makes recovery start its producer scan from an older one.
fn write_snapshot(dir: &Path, offset: i64, encoded: &[u8]) {
    let path = snapshot_path(dir, offset);
    let temporary = path.with_extension("snapshot.tmp");
    let written =
        std::fs::write(&temporary, encoded).and_then(|()| std::fs::rename(&temporary, &path));
    if let Err(error) = written {
        tracing::warn!(path = %path.display(), %error, "writing producer state snapshot failed");
        let _ = std::fs::remove_file(&temporary);
        return;
    }
    let snapshots = list_snapshots(dir);
    if snapshots.len() > SNAPSHOTS_KEPT {
        for &old in &snapshots[..snapshots.len() - SNAPSHOTS_KEPT] {
            let _ = std::fs::remove_file(snapshot_path(dir, old));
        }
    }
}

/// Rebuilds producer state at open: the newest valid snapshot at or below the log end,
/// then the batches after it (usually only the recovered tail of the active segment, which
/// recovery has just checked). Snapshots above the log end (a cut tail) are removed.
async fn recover_producers(
    dir: &Path,
    io: &IoDriver,
    segments: &BTreeMap<i64, Segment>,
    log_end_offset: i64,
) -> Result<ProducerStateMap> {
    let first_base = segments.keys().next().copied().unwrap_or(0);
    let mut start = first_base;
    let mut producers = ProducerStateMap::default();
    for offset in list_snapshots(dir).into_iter().rev() {
        let path = snapshot_path(dir, offset);
        if offset > log_end_offset {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if offset < first_base {
            break;
        }
        match std::fs::read(&path)
            .ok()
            .and_then(|bytes| ProducerStateMap::decode(&bytes))
        {
            Some(map) => {
                producers = map;
                start = offset;
                break;
            }
            None => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable producer state snapshot");
            }
        }
    }
    if start >= log_end_offset {
        return Ok(producers);
    }
    let first_segment = segments
        .range(..=start)
        .next_back()
        .map(|(base, _)| *base)
        .unwrap_or(first_base);
    for segment in segments.range(first_segment..).map(|(_, s)| s) {
        let mut position = segment.position_for(start);
        while position < segment.size_bytes {
            let want = ((segment.size_bytes - position) as usize).min(1024 * 1024);
            let chunk = io
                .read_at(&segment.file, position, want)
                .await
                .map_err(|e| io_error(&segment.path, e))?;
            let mut iter = BatchIter::new(&chunk);
            for (header, _) in iter.by_ref() {
                if header.base_offset >= start {
                    producers.record(&header);
                }
            }
            if iter.position() > 0 {
                position += iter.position() as u64;
                continue;
            }
            // One batch larger than the chunk: only its header matters here.
            match BatchHeader::parse(&chunk) {
                Ok(header) if header.total_len() as u64 <= segment.size_bytes - position => {
                    if header.base_offset >= start {
                        producers.record(&header);
                    }
                    position += header.total_len() as u64;
                }
                // Recovery has already cut the tail at the first bad byte; stop at anything odd.
                _ => break,
            }
        }
    }
    Ok(producers)
}
