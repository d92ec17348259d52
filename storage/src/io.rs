//! The per-shard I/O driver: positional writes, reads and fdatasync on segment files.
//!
//! Two engines behind one interface: io_uring (one ring per shard; completions are reaped by one
//! local task woken through an eventfd registered with the ring) and a portable engine
//! (positional I/O on tokio's blocking pool) for where io_uring cannot be set up. Buffers and
//! files of in-flight operations are owned by the driver until the kernel completes them, so a
//! dropped future never leaves the kernel writing into freed memory.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Submission queue entries per ring: bounds how many operations one `submit` hands over.
const RING_ENTRIES: u32 = 256;
/// Most pieces one vectored write takes (the kernel's IOV_MAX).
const MAX_IOVECS: usize = 1024;
/// Completion queue entries: more operations may be in flight than the submission queue
/// holds; past this the kernel buffers completions (IORING_FEAT_NODROP) and `reap` flushes.
const CQ_ENTRIES: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoEngine {
    /// io_uring if it can be set up, else portable (said once in the log).
    Auto,
    Uring,
    Portable,
}

pub struct IoDriver {
    engine: Engine,
}

enum Engine {
    Uring(Rc<Uring>),
    Portable,
}

impl IoDriver {
    /// Creates the driver. Must be called inside a tokio current-thread runtime with a
    /// `LocalSet` (the uring engine spawns its completion reaper with `spawn_local`).
    /// `Uring` fails if the ring cannot be set up; `Auto` falls back to portable.
    pub fn new(engine: IoEngine) -> std::io::Result<Rc<IoDriver>> {
        let engine = match engine {
            IoEngine::Portable => Engine::Portable,
            IoEngine::Uring => Engine::Uring(Uring::start()?),
            IoEngine::Auto => match Uring::start() {
                Ok(uring) => Engine::Uring(uring),
                Err(error) => {
                    // Every shard builds a driver; one line per process is enough.
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| {
                        tracing::warn!(
                            %error,
                            "io_uring unavailable; segment I/O uses the portable engine (blocking pool)"
                        )
                    });
                    Engine::Portable
                }
            },
        };
        Ok(Rc::new(IoDriver { engine }))
    }

    /// "io_uring" or "portable".
    pub fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Uring(_) => "io_uring",
            Engine::Portable => "portable",
        }
    }

    /// Writes all of `buf` at `offset` (retrying short writes).
    pub async fn write_at(&self, file: &Arc<File>, offset: u64, buf: Bytes) -> std::io::Result<()> {
        self.write_pieces_at(file, offset, vec![buf]).await
    }

    /// Writes `pieces` back to back at `offset` (one vectored write for the usual case,
    /// retrying short writes): a batch whose header was rewritten goes out as the new header
    /// bytes plus the untouched rest of the received buffer, without copying it.
    pub async fn write_pieces_at(
        &self,
        file: &Arc<File>,
        offset: u64,
        pieces: Vec<Bytes>,
    ) -> std::io::Result<()> {
        match &self.engine {
            Engine::Uring(uring) => {
                let total: usize = pieces.iter().map(Bytes::len).sum();
                let mut written = 0usize;
                while written < total {
                    // The pieces not yet written, the first one trimmed.
                    let mut skip = written;
                    let mut rest: Vec<Bytes> = Vec::new();
                    for piece in &pieces {
                        if skip >= piece.len() {
                            skip -= piece.len();
                            continue;
                        }
                        rest.push(piece.slice(skip..));
                        skip = 0;
                        if rest.len() == MAX_IOVECS {
                            break;
                        }
                    }
                    let iovecs: Vec<libc::iovec> = rest
                        .iter()
                        .map(|piece| libc::iovec {
                            iov_base: piece.as_ptr() as *mut libc::c_void,
                            iov_len: piece.len(),
                        })
                        .collect();
                    // SAFETY of the pointers: the iovec array and the pieces move into the
                    // in-flight table together; neither heap allocation moves or is freed
                    // before the kernel is done with them.
                    let entry = opcode::Writev::new(
                        types::Fd(file.as_raw_fd()),
                        iovecs.as_ptr(),
                        iovecs.len() as u32,
                    )
                    .offset(offset + written as u64)
                    .build();
                    let (result, _) =
                        submit(uring, entry, OpBuf::Writev(rest, iovecs), file.clone()).await?;
                    if result == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    written += result;
                }
                Ok(())
            }
            Engine::Portable => {
                let file = Arc::clone(file);
                blocking(move || {
                    let mut at = offset;
                    for piece in &pieces {
                        file.write_all_at(piece, at)?;
                        at += piece.len() as u64;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// Reads up to `len` bytes at `offset`; shorter only at end of file.
    pub async fn read_at(
        &self,
        file: &Arc<File>,
        offset: u64,
        len: usize,
    ) -> std::io::Result<Bytes> {
        match &self.engine {
            Engine::Uring(uring) => {
                let mut buf = BytesMut::with_capacity(len);
                while buf.len() < len {
                    let filled = buf.len();
                    let want = (len - filled).min(u32::MAX as usize >> 1) as u32;
                    // SAFETY of the pointer: the BytesMut moves into the in-flight table and
                    // its heap allocation does not move while the kernel fills it.
                    let ptr = unsafe { buf.as_mut_ptr().add(filled) };
                    let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), ptr, want)
                        .offset(offset + filled as u64)
                        .build();
                    let (result, back) =
                        submit(uring, entry, OpBuf::Read(buf), file.clone()).await?;
                    let OpBuf::Read(mut back) = back else {
                        unreachable!("a read op hands back its read buffer")
                    };
                    // SAFETY: the kernel initialised `result` bytes after `filled`.
                    unsafe { back.set_len(filled + result) };
                    buf = back;
                    if result == 0 {
                        break; // end of file
                    }
                }
                Ok(buf.freeze())
            }
            Engine::Portable => {
                let file = Arc::clone(file);
                blocking(move || {
                    let mut buf = vec![0u8; len];
                    let mut filled = 0usize;
                    while filled < len {
                        match file.read_at(&mut buf[filled..], offset + filled as u64) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    buf.truncate(filled);
                    Ok(Bytes::from(buf))
                })
                .await
            }
        }
    }

    /// fdatasync of `file`.
    pub async fn fdatasync(&self, file: &Arc<File>) -> std::io::Result<()> {
        match &self.engine {
            Engine::Uring(uring) => {
                let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd()))
                    .flags(types::FsyncFlags::DATASYNC)
                    .build();
                submit(uring, entry, OpBuf::None, file.clone()).await?;
                Ok(())
            }
            Engine::Portable => {
                let file = Arc::clone(file);
                blocking(move || file.sync_data()).await
            }
        }
    }
}

/// Runs `work` on tokio's blocking pool. The file it uses is a `dup` of the caller's, so a
/// dropped future cannot close a descriptor the blocking thread still uses.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) => Err(std::io::Error::other(join_error)),
    }
}

/// What an in-flight operation keeps alive until its completion arrives.
enum OpBuf {
    None,
    /// Held only so that the kernel's source bytes, and the iovec array that points into
    /// them, outlive the write.
    Writev(
        #[allow(dead_code)] Vec<Bytes>,
        #[allow(dead_code)] Vec<libc::iovec>,
    ),
    Read(BytesMut),
}

enum OpState {
    /// Submitted; the waker of the future waiting for it, if it was polled.
    Pending(Option<Waker>),
    /// Completed with this `cqe.result()`.
    Done(i32),
    /// The future was dropped before completion; the reaper frees the entry when the kernel is
    /// done with the buffer.
    Abandoned,
}

struct Op {
    state: OpState,
    buf: OpBuf,
    _file: Arc<File>,
}

struct Uring {
    ring: RefCell<IoUring>,
    ops: RefCell<HashMap<u64, Op>>,
    next_user_data: Cell<u64>,
    eventfd: AsyncFd<OwnedFd>,
}

impl Uring {
    fn start() -> std::io::Result<Rc<Uring>> {
        let ring = IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(RING_ENTRIES)?;
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        let uring = Rc::new(Uring {
            ring: RefCell::new(ring),
            ops: RefCell::new(HashMap::new()),
            next_user_data: Cell::new(1),
            // SAFETY: the eventfd is owned by the AsyncFd and closed only when it drops.
            eventfd: unsafe { AsyncFd::register_with_interest(eventfd, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?,
        });
        // The reaper keeps the ring alive while it waits on the eventfd (which the ring owns),
        // so the ring lives until the runtime drops this task; its `Drop` then waits for the
        // operations still in flight.
        let reaper_uring = uring.clone();
        tokio::task::spawn_local(async move {
            let uring = reaper_uring;
            loop {
                let readable = uring.eventfd.readable().await;
                let Ok(mut guard) = readable else {
                    tracing::error!("io_uring eventfd failed; completions stop");
                    return;
                };
                // Reset the eventfd counter before draining so a completion posted during the
                // drain raises a fresh edge.
                let mut counter = [0u8; 8];
                // SAFETY: reading 8 bytes into a local buffer from a nonblocking eventfd.
                unsafe {
                    libc::read(
                        guard.get_inner().as_raw_fd(),
                        counter.as_mut_ptr().cast(),
                        counter.len(),
                    )
                };
                guard.clear_ready();
                drop(guard);
                uring.reap();
            }
        });
        Ok(uring)
    }

    /// Drains the completion queue, recording results and waking their futures.
    fn reap(&self) {
        let mut wakers = Vec::new();
        {
            let mut ring = self.ring.borrow_mut();
            let mut ops = self.ops.borrow_mut();
            loop {
                let mut completions = Vec::new();
                completions.extend(ring.completion().map(|cqe| (cqe.user_data(), cqe.result())));
                for (user_data, result) in completions {
                    let Some(op) = ops.get_mut(&user_data) else {
                        continue;
                    };
                    match std::mem::replace(&mut op.state, OpState::Done(result)) {
                        OpState::Pending(waker) => wakers.extend(waker),
                        OpState::Abandoned => {
                            ops.remove(&user_data);
                        }
                        OpState::Done(_) => {}
                    }
                }
                // Completions past the CQ's size wait in the kernel (IORING_FEAT_NODROP) and are
                // only moved into the CQ by an enter; no new eventfd signal comes for them.
                if !ring.submission().cq_overflow() {
                    break;
                }
                if let Err(error) = ring.submit() {
                    tracing::warn!(%error, "io_uring enter to flush overflowed completions failed");
                    break;
                }
            }
        }
        // Woken outside the borrows: a waker may run code that submits again.
        for waker in wakers {
            waker.wake();
        }
    }

    /// Queues `entry` and submits it to the kernel without waiting.
    fn push(&self, entry: squeue::Entry, buf: OpBuf, file: Arc<File>) -> std::io::Result<u64> {
        let user_data = self.next_user_data.get();
        self.next_user_data.set(user_data.wrapping_add(1));
        let entry = entry.user_data(user_data);
        let mut ring = self.ring.borrow_mut();
        // SAFETY: the buffer and file the entry points to move into `ops` below and stay there
        // until the completion for `user_data` is reaped.
        let pushed = unsafe { ring.submission().push(&entry).is_ok() };
        if !pushed {
            // Queue full: hand the queued entries to the kernel, then there is room.
            if let Err(error) = ring.submit() {
                return Err(match error.raw_os_error() {
                    // Completions are backed up: wait for the reaper, then retry.
                    Some(libc::EBUSY) | Some(libc::EINTR) => std::io::ErrorKind::WouldBlock.into(),
                    _ => error,
                });
            }
            // SAFETY: as above.
            if unsafe { ring.submission().push(&entry).is_err() } {
                return Err(std::io::Error::from(std::io::ErrorKind::WouldBlock));
            }
        }
        self.ops.borrow_mut().insert(
            user_data,
            Op {
                state: OpState::Pending(None),
                buf,
                _file: file,
            },
        );
        // Once queued, the entry cannot be taken back: the kernel may read it at the next
        // enter. So a failed submit (EBUSY, EINTR, ...) leaves it queued for the next one,
        // and the op keeps its buffer until its completion.
        if let Err(error) = ring.submit() {
            if error.raw_os_error() != Some(libc::EBUSY)
                && error.raw_os_error() != Some(libc::EINTR)
            {
                tracing::warn!(%error, "io_uring submit failed; entry stays queued");
            }
        }
        Ok(user_data)
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // The kernel may still be writing into buffers we own: wait for every in-flight op
        // before the ring and the buffers go away.
        let ring = self.ring.get_mut();
        let ops = self.ops.get_mut();
        while ops.values().any(|op| !matches!(op.state, OpState::Done(_))) {
            if ring.submit_and_wait(1).is_err() {
                break;
            }
            for cqe in ring.completion() {
                ops.remove(&cqe.user_data());
            }
        }
    }
}

/// Submits one operation and waits for its completion: `(bytes transferred, buffer back)`.
async fn submit(
    uring: &Rc<Uring>,
    entry: squeue::Entry,
    buf: OpBuf,
    file: Arc<File>,
) -> std::io::Result<(usize, OpBuf)> {
    let mut buf = Some(buf);
    loop {
        let user_data = loop {
            match uring.push(entry.clone(), OpBuf::None, file.clone()) {
                Ok(user_data) => break user_data,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The kernel has not taken the queued entries yet; let the reaper run.
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e),
            }
        };
        // The buffer joins its op right after the push (no await between them).
        if let Some(op) = uring.ops.borrow_mut().get_mut(&user_data) {
            op.buf = buf.take().unwrap_or(OpBuf::None);
        }
        let completion = Completion {
            uring: uring.clone(),
            user_data,
        };
        let (result, back) = completion.await;
        if result == -libc::EINTR || result == -libc::EAGAIN {
            buf = Some(back);
            continue;
        }
        if result < 0 {
            return Err(std::io::Error::from_raw_os_error(-result));
        }
        return Ok((result as usize, back));
    }
}

/// Resolves when the op `user_data` completes; dropping it early leaves the op's buffer to the
/// reaper.
struct Completion {
    uring: Rc<Uring>,
    user_data: u64,
}

impl Future for Completion {
    type Output = (i32, OpBuf);
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut ops = self.uring.ops.borrow_mut();
        let Some(op) = ops.get_mut(&self.user_data) else {
            // Only `poll` after completion removes the entry, and it is not polled again.
            return Poll::Ready((-libc::ECANCELED, OpBuf::None));
        };
        match op.state {
            OpState::Done(result) => {
                let op = ops.remove(&self.user_data);
                Poll::Ready((result, op.map(|op| op.buf).unwrap_or(OpBuf::None)))
            }
            _ => {
                op.state = OpState::Pending(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let mut ops = self.uring.ops.borrow_mut();
        if let Some(op) = ops.get_mut(&self.user_data) {
            if matches!(op.state, OpState::Done(_)) {
                ops.remove(&self.user_data);
            } else {
                op.state = OpState::Abandoned;
            }
        }
    }
}
