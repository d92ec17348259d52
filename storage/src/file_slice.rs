//! Record bytes handed out as a range of a segment file rather than a buffer, so that the
//! network layer can send them with `sendfile(2)`: the kernel moves page-cache pages to the
//! socket and the bytes never pass through user space.
//!
//! A slice is only handed out for bytes that are already written (below the high watermark)
//! and, by `is_cached`, already in the page cache: `sendfile` on a shard's thread must not
//! wait for the disk. Segment files only grow while a slice can exist (a cut-back after a full
//! disk removes unacknowledged bytes above the high watermark), and an unlinked file stays
//! readable through the `Arc<File>` a slice holds, so retention cannot pull bytes from under
//! a response being sent.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

/// Whole record batches in `[position, position + len)` of `file`.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

impl FileSlice {
    /// The slice's bytes, read into memory (a blocking `pread`: for bytes already in the page
    /// cache, or off the hot path).
    pub fn read_bytes(&self) -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }
}

/// What a read hands out: bytes in memory, or a range of a segment file.
#[derive(Debug, Clone)]
pub enum Records {
    Memory(Bytes),
    File(FileSlice),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Memory(bytes) => bytes.len(),
            Records::File(slice) => slice.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Records {
    fn default() -> Self {
        Records::Memory(Bytes::new())
    }
}

/// `cachestat(2)` (Linux 6.5): the same number on every architecture that has it.
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Set once `cachestat` turned out to be missing (older kernel, seccomp): then nothing is
/// known to be cached and every read goes through memory.
static CACHESTAT_MISSING: AtomicBool = AtomicBool::new(false);

const PAGE_BYTES: u64 = 4096;

/// Whether every page of `[position, position + len)` of `file` is in the page cache.
/// False when the kernel cannot tell.
pub fn is_cached(file: &File, position: u64, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    if CACHESTAT_MISSING.load(Ordering::Relaxed) {
        return false;
    }
    let mut range = CachestatRange {
        off: position,
        len: len as u64,
    };
    let mut stat = Cachestat::default();
    // SAFETY: both pointers are to live, properly laid out structs of the kernel's ABI; the
    // kernel writes only `stat`.
    let result = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &mut range as *mut CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        if matches!(error.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) {
            CACHESTAT_MISSING.store(true, Ordering::Relaxed);
            tracing::info!("cachestat(2) is unavailable; fetches copy record bytes through memory instead of sendfile");
        }
        return false;
    }
    let first_page = position / PAGE_BYTES;
    let end_page = (position + len as u64).div_ceil(PAGE_BYTES);
    stat.nr_cache >= end_page - first_page
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_freshly_written_file_is_cached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let mut file = File::create(&path).expect("create");
        file.write_all(&vec![7u8; 64 * 1024]).expect("write");
        let file = File::open(&path).expect("open");
        // Either the kernel has cachestat and the dirty pages count as cached, or it has not
        // and the answer is a safe "no".
        let cached = is_cached(&file, 100, 60_000);
        assert_eq!(cached, !CACHESTAT_MISSING.load(Ordering::Relaxed));
        assert!(is_cached(&file, 0, 0));
    }
}
