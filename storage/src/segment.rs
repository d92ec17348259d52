//! One segment of a partition log: `<base offset>.log` plus its in-memory indexes, and the
//! recovery scan that rebuilds them from the log file.
//!
//! Owns file naming, index maintenance on append, index files, and checking stored batches.
//! Offsets, the high watermark and fsync ordering belong to `log`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{check_stored_batch, BatchHeader, BATCH_HEADER_LEN};
use crate::error::{Result, StorageError};
use crate::index::{OffsetIndex, TimeIndex};
use crate::io::IoDriver;

/// Bytes read per step when scanning a segment at recovery.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

pub fn io_error(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `<20-digit zero-padded base offset>.<extension>`, as Kafka names segment files.
pub fn file_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{extension}"))
}

pub struct Segment {
    pub base_offset: i64,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes reserved by appends (written or in flight); the next append goes here.
    pub size_bytes: u64,
    /// One past the last offset appended to this segment.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Bytes appended since the last offset index entry.
    bytes_since_index_entry: u64,
    /// Whether `.index` and `.timeindex` on disk describe the whole, fsynced segment. Only
    /// then may recovery trust them instead of scanning.
    pub indexes_on_disk: bool,
}

impl Segment {
    /// Creates an empty segment file (truncating a leftover one of the same name).
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let path = file_path(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        Ok(Segment::with_file(base_offset, path, file, 0))
    }

    /// Opens an existing segment file, without reading it.
    pub fn open(dir: &Path, base_offset: i64) -> Result<Segment> {
        let path = file_path(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let size = file.metadata().map_err(|e| io_error(&path, e))?.len();
        Ok(Segment::with_file(base_offset, path, file, size))
    }

    fn with_file(base_offset: i64, path: PathBuf, file: File, size_bytes: u64) -> Segment {
        Segment {
            base_offset,
            path,
            file: Arc::new(file),
            size_bytes,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            indexes_on_disk: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    fn relative(&self, offset: i64) -> u32 {
        debug_assert!(offset >= self.base_offset && offset - self.base_offset <= u32::MAX as i64);
        (offset - self.base_offset) as u32
    }

    /// Records a batch placed at `position` in the indexes (sparse: an offset index entry once
    /// `index_interval_bytes` have passed since the previous one, and for the first batch).
    pub fn index_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u32) {
        let relative = self.relative(header.base_offset);
        if position == 0 || self.bytes_since_index_entry >= index_interval_bytes as u64 {
            self.offset_index.push(relative, position as u32);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_len() as u64;
        self.time_index.observe(header.max_timestamp, relative);
        self.next_offset = header.last_offset() + 1;
    }

    /// Whether `offset` could fit this segment's 32-bit relative offsets and positions.
    pub fn can_hold(&self, last_offset: i64, extra_bytes: u64) -> bool {
        last_offset - self.base_offset <= i32::MAX as i64
            && self.size_bytes + extra_bytes <= i32::MAX as u64
    }

    /// File position at or below the batch that holds `offset`.
    pub fn position_for(&self, offset: i64) -> u64 {
        if offset <= self.base_offset {
            return 0;
        }
        let relative = (offset - self.base_offset).min(u32::MAX as i64) as u32;
        self.offset_index.lookup(relative) as u64
    }

    /// Timestamp of the segment's first batch, which `segment.ms` counts from (as Kafka does).
    pub fn first_timestamp(&self) -> Option<i64> {
        self.time_index.first().map(|(t, _)| t)
    }

    /// Loads `.index` and `.timeindex` if both exist and are consistent with the log file.
    /// `next_offset` is taken from the last time index entry's batch lower bound and then
    /// confirmed by reading the last indexed batches.
    pub async fn load_indexes(&mut self, io: &IoDriver) -> Result<bool> {
        let offset_path = file_path(
            self.path.parent().unwrap_or(Path::new(".")),
            self.base_offset,
            "index",
        );
        let time_path = offset_path.with_extension("timeindex");
        let (Ok(offset_bytes), Ok(time_bytes)) =
            (std::fs::read(&offset_path), std::fs::read(&time_path))
        else {
            return Ok(false);
        };
        let (Some(offset_index), Some(time_index)) = (
            OffsetIndex::decode(&offset_bytes, self.size_bytes),
            TimeIndex::decode(&time_bytes),
        ) else {
            return Ok(false);
        };
        if self.size_bytes > 0 && time_index.last().is_none() {
            return Ok(false);
        }
        // The segment's end offset: walk from the last offset index entry to the end of file
        // (at most one index interval plus a batch) without CRC checks, since the file was
        // fsynced before these indexes were written.
        let start = offset_index.lookup(u32::MAX) as u64;
        let mut next_offset = self.base_offset;
        let mut position = start;
        while position < self.size_bytes {
            let want = ((self.size_bytes - position) as usize).min(SCAN_CHUNK_BYTES);
            let chunk = io
                .read_at(&self.file, position, want)
                .await
                .map_err(|e| io_error(&self.path, e))?;
            let mut iter = crate::batch::BatchIter::new(&chunk);
            for (header, _) in iter.by_ref() {
                next_offset = header.last_offset() + 1;
            }
            if iter.position() == 0 {
                // A batch larger than the chunk: read its header for its length.
                match BatchHeader::parse(&chunk) {
                    Ok(header) if header.total_len() as u64 <= self.size_bytes - position => {
                        next_offset = header.last_offset() + 1;
                        position += header.total_len() as u64;
                        continue;
                    }
                    _ => return Ok(false),
                }
            }
            position += iter.position() as u64;
        }
        if position != self.size_bytes {
            return Ok(false);
        }
        self.offset_index = offset_index;
        self.time_index = time_index;
        self.next_offset = next_offset;
        self.indexes_on_disk = true;
        Ok(true)
    }

    /// Writes `.index` and `.timeindex` from memory. The caller has fsynced the log file first,
    /// so indexes on disk never describe bytes that a crash could lose.
    pub fn write_indexes(&mut self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let offset_path = file_path(&dir, self.base_offset, "index");
        let time_path = file_path(&dir, self.base_offset, "timeindex");
        // Blocking writes on the shard thread: they are small (8 bytes per index interval)
        // and happen only when a segment is sealed or the log closes.
        std::fs::write(&offset_path, self.offset_index.encode())
            .map_err(|e| io_error(&offset_path, e))?;
        std::fs::write(&time_path, self.time_index.encode())
            .map_err(|e| io_error(&time_path, e))?;
        self.indexes_on_disk = true;
        Ok(())
    }

    /// Cuts the segment back to `position`, where the batch with offset `next_offset` was to
    /// start (its write failed): the file, the in-memory indexes and the end offset.
    pub fn truncate_to(&mut self, position: u64, next_offset: i64) -> Result<()> {
        self.file
            .set_len(position)
            .map_err(|e| io_error(&self.path, e))?;
        self.size_bytes = position;
        self.next_offset = next_offset.max(self.base_offset);
        let relative = self.relative(self.next_offset);
        self.offset_index.truncate_from(relative);
        self.time_index.truncate_from(relative);
        // Forces an index entry for the next batch, whose position is past every kept entry.
        self.bytes_since_index_entry = u64::MAX / 2;
        if self.indexes_on_disk {
            self.remove_index_files();
        }
        Ok(())
    }

    /// Removes the segment's files (retention); open handles keep reading until dropped.
    pub fn remove_files(&self) {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for extension in ["log", "index", "timeindex"] {
            let _ = std::fs::remove_file(file_path(&dir, self.base_offset, extension));
        }
    }

    /// Removes the index files so that a crash after more appends cannot trust stale ones.
    pub fn remove_index_files(&mut self) {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for extension in ["index", "timeindex"] {
            let _ = std::fs::remove_file(file_path(&dir, self.base_offset, extension));
        }
        self.indexes_on_disk = false;
    }

    /// Scans the whole file batch by batch (length, magic, CRC, offsets increasing from
    /// `expected_base`), rebuilding the indexes, and truncates it at the first bad byte.
    /// Returns the bytes truncated.
    pub async fn recover(
        &mut self,
        io: &IoDriver,
        index_interval_bytes: u32,
        expected_base: i64,
    ) -> Result<u64> {
        self.offset_index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.bytes_since_index_entry = 0;
        self.next_offset = expected_base.max(self.base_offset);
        let file_len = self.size_bytes;
        let mut position = 0u64;
        // End of the last good batch: everything after it is cut.
        let mut valid_end = 0u64;
        'scan: while position < file_len {
            let want = ((file_len - position) as usize).min(SCAN_CHUNK_BYTES);
            let mut chunk: Bytes = io
                .read_at(&self.file, position, want)
                .await
                .map_err(|e| io_error(&self.path, e))?;
            let mut consumed = 0usize;
            loop {
                let rest = &chunk[consumed..];
                if rest.is_empty() {
                    break;
                }
                let header = match BatchHeader::parse(rest) {
                    Ok(header) => header,
                    Err(_) if rest.len() < BATCH_HEADER_LEN && consumed > 0 => break,
                    Err(_) => break 'scan,
                };
                let total_len = header.total_len();
                if total_len as u64 > file_len - position - consumed as u64 {
                    break 'scan; // torn: the file ends inside this batch
                }
                if total_len > rest.len() {
                    if consumed > 0 {
                        break; // read the next chunk from this batch on
                    }
                    // One batch larger than the chunk: read it whole.
                    chunk = io
                        .read_at(&self.file, position, total_len)
                        .await
                        .map_err(|e| io_error(&self.path, e))?;
                    continue;
                }
                let Ok(header) = check_stored_batch(&rest[..total_len]) else {
                    break 'scan;
                };
                if header.base_offset < self.next_offset
                    || header.last_offset() < header.base_offset
                    || !self.can_hold(header.last_offset(), 0)
                {
                    break 'scan;
                }
                let at = position + consumed as u64;
                self.index_batch(&header, at, index_interval_bytes);
                consumed += total_len;
                valid_end = at + total_len as u64;
            }
            if consumed == 0 {
                break;
            }
            position += consumed as u64;
        }
        let truncated = file_len - valid_end;
        if truncated > 0 {
            self.file
                .set_len(valid_end)
                .map_err(|e| io_error(&self.path, e))?;
            self.size_bytes = valid_end;
        }
        Ok(truncated)
    }
}
