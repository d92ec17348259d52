//! Client connections: accept, read frames, dispatch, write responses in request order.
//!
//! Kafka processes a connection's requests in the order they were sent, and answers in that
//! order. Tidelog keeps both promises while still overlapping the one case that matters for
//! throughput: consecutive Produce requests run concurrently (their appends start in request
//! order, so offsets follow it, and pipelined `acks=all` requests share group-commit fsyncs),
//! while any other request starts only after every earlier request has finished, and a Produce
//! after another kind of request waits for it. So a Fetch sent after a Produce sees it. A
//! writer task sends the responses strictly in request order. At most
//! `max_inflight_requests_per_connection` requests are in flight; beyond that, reading pauses
//! and TCP pushes back on the client.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use tidelog_storage::FileSlice;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::shard::Shard;
use crate::handlers;
use crate::protocol::frame::Piece;
use crate::protocol::{api, frame};

pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    let mut shutdown = shard.shutdown_signal();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(serve(shard.clone(), stream, peer));
                }
                Err(error) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(shard = shard.id, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// Waits until this shard's connections have closed, or `timeout` passes.
pub async fn drain(shard: &Rc<Shard>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while shard.connection_count.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A response slot, in request order.
enum Pending {
    Ready(frame::Frame),
    Handler(JoinHandle<Result<Option<frame::Frame>, String>>),
}

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: i64, max: u32 },
    #[error("frame has a negative size {0}")]
    NegativeSize(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Requests of one connection being handled, for the ordering rule in the module doc.
#[derive(Default)]
struct InFlight {
    total: Cell<usize>,
    non_produce: Cell<usize>,
    finished: Notify,
}

impl InFlight {
    /// Waits until a request of this kind may start.
    async fn admit(&self, is_produce: bool) {
        let busy = || {
            if is_produce {
                self.non_produce.get() > 0
            } else {
                self.total.get() > 0
            }
        };
        while busy() {
            let finished = self.finished.notified();
            // Re-check after registering, so a finish in between is not missed.
            if !busy() {
                return;
            }
            finished.await;
        }
    }
}

/// Counts one request as in flight until dropped (when its handler task ends, however).
struct InFlightGuard {
    in_flight: Rc<InFlight>,
    is_produce: bool,
}

impl InFlightGuard {
    fn new(in_flight: Rc<InFlight>, is_produce: bool) -> InFlightGuard {
        in_flight.total.set(in_flight.total.get() + 1);
        if !is_produce {
            in_flight.non_produce.set(in_flight.non_produce.get() + 1);
        }
        InFlightGuard {
            in_flight,
            is_produce,
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let in_flight = &self.in_flight;
        in_flight.total.set(in_flight.total.get().saturating_sub(1));
        if !self.is_produce {
            in_flight
                .non_produce
                .set(in_flight.non_produce.get().saturating_sub(1));
        }
        in_flight.finished.notify_waiters();
    }
}

struct ConnectionGuard(Rc<Shard>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let count = &self.0.connection_count;
        count.set(count.get().saturating_sub(1));
    }
}

async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    shard.connection_count.set(shard.connection_count.get() + 1);
    let _guard = ConnectionGuard(shard.clone());
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let (queue_tx, queue_rx) = mpsc::channel(shard.config.max_inflight_requests_per_connection);
    let writer_task = tokio::task::spawn_local(write_responses(writer, queue_rx));
    let mut shutdown = shard.shutdown_signal();
    let max_request_bytes = shard.config.max_request_bytes;
    let in_flight = Rc::new(InFlight::default());
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max_request_bytes) => frame,
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(error)) => {
                tracing::debug!(%peer, %error, "connection error");
                break;
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection");
                break;
            }
        };
        let pending = match prepare(frame) {
            Ok(Prepared::Immediate(bytes)) => Pending::Ready(frame::single(bytes)),
            Ok(Prepared::Request(request)) => {
                let (header, request) = *request;
                let is_produce = matches!(request, RequestKind::Produce(_));
                in_flight.admit(is_produce).await;
                let guard = InFlightGuard::new(in_flight.clone(), is_produce);
                let handler = handlers::handle(shard.clone(), header, request, peer);
                Pending::Handler(tokio::task::spawn_local(async move {
                    let _guard = guard;
                    handler.await
                }))
            }
            Err(reason) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                break;
            }
        };
        if queue_tx.send(pending).await.is_err() {
            break;
        }
    }
    drop(queue_tx);
    let _ = writer_task.await;
}

async fn read_frame(
    reader: &mut BufReader<OwnedReadHalf>,
    max_request_bytes: u32,
) -> Result<Option<Bytes>, FrameError> {
    let mut size_bytes = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut size_bytes[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    if size as u32 > max_request_bytes {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max: max_request_bytes,
        });
    }
    // Read into spare capacity rather than a zeroed buffer: a produce frame is megabytes,
    // and zeroing it first would cost as much as a copy.
    let size = size as usize;
    let mut body = BytesMut::with_capacity(size);
    while body.len() < size {
        let wanted = size - body.len();
        if reader.read_buf(&mut (&mut body).limit(wanted)).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(body.freeze()))
}

enum Prepared {
    /// Answered without a handler (ApiVersions of an unknown version).
    Immediate(Bytes),
    Request(Box<(RequestHeader, RequestKind)>),
}

/// Decodes a frame's header and body. An error closes the connection, as Kafka does for
/// unknown APIs, unsupported versions (other than ApiVersions) and malformed requests.
fn prepare(mut frame: Bytes) -> Result<Prepared, String> {
    if frame.len() < 8 {
        return Err(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
    if !api::is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            return Ok(Prepared::Immediate(frame::api_versions_unsupported_v0(
                correlation_id,
            )));
        }
        return Err(format!("unsupported version {version} of {api:?}"));
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| format!("malformed {api:?} v{version} request header: {e}"))?;
    let request = RequestKind::decode(api, &mut frame, version)
        .map_err(|e| format!("malformed {api:?} v{version} request: {e}"))?;
    Ok(Prepared::Request(Box::new((header, request))))
}

/// Writes a frame: runs of in-memory pieces with vectored writes (one syscall for the usual
/// case), file ranges with `sendfile`.
async fn write_frame(writer: &mut OwnedWriteHalf, frame: &[Piece]) -> std::io::Result<()> {
    let mut start = 0;
    while start < frame.len() {
        if let Piece::File(slice) = &frame[start] {
            send_file(writer, slice).await?;
            start += 1;
            continue;
        }
        let end = frame[start..]
            .iter()
            .position(|piece| matches!(piece, Piece::File(_)))
            .map_or(frame.len(), |i| start + i);
        let run: Vec<&[u8]> = frame[start..end]
            .iter()
            .map(|piece| match piece {
                Piece::Memory(bytes) => &bytes[..],
                Piece::File(_) => &[][..],
            })
            .collect();
        write_all_vectored(writer, &run).await?;
        start = end;
    }
    Ok(())
}

async fn write_all_vectored(writer: &mut OwnedWriteHalf, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut index = 0;
    let mut offset = 0;
    loop {
        while index < parts.len() && offset >= parts[index].len() {
            index += 1;
            offset = 0;
        }
        if index >= parts.len() {
            return Ok(());
        }
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&parts[index][offset..])
            .chain(parts[index + 1..].iter().copied())
            .take(64)
            .map(std::io::IoSlice::new)
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && index < parts.len() {
            let rest = parts[index].len() - offset;
            if written >= rest {
                written -= rest;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
}

/// Sends a range of a segment file with `sendfile(2)`: the kernel hands page-cache pages to
/// the socket, with no copy through user space. The socket is non-blocking; on a full send
/// buffer this waits for writability like any other write. A file shorter than the range (it
/// cannot be, for bytes below the high watermark) is an error that closes the connection:
/// the frame's length was already promised.
async fn send_file(writer: &mut OwnedWriteHalf, slice: &FileSlice) -> std::io::Result<()> {
    let stream: &TcpStream = writer.as_ref();
    let socket = stream.as_raw_fd();
    let file = slice.file.as_raw_fd();
    let mut position = slice.position as libc::off_t;
    let mut remaining = slice.len;
    while remaining > 0 {
        let count = remaining.min(1 << 30);
        let sent = stream.try_io(Interest::WRITABLE, || {
            let mut offset = position;
            // SAFETY: both descriptors are open for the duration of the call (the stream is
            // borrowed, the file held by `slice`); `offset` is a live local.
            let sent = unsafe { libc::sendfile(socket, file, &mut offset, count) };
            if sent < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(sent as usize)
            }
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended before the range a fetch response promised",
                ))
            }
            Ok(sent) => {
                position += sent as libc::off_t;
                remaining -= sent;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stream.writable().await?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

async fn write_responses(mut writer: OwnedWriteHalf, mut queue: mpsc::Receiver<Pending>) {
    while let Some(pending) = queue.recv().await {
        let response = match pending {
            Pending::Ready(bytes) => Some(bytes),
            Pending::Handler(handle) => match handle.await {
                Ok(Ok(response)) => response,
                Ok(Err(reason)) => {
                    tracing::error!("cannot answer a request ({reason}); closing connection");
                    break;
                }
                Err(error) => {
                    tracing::error!(%error, "request handler failed; closing connection");
                    break;
                }
            },
        };
        if let Some(frame) = response {
            if let Err(error) = write_frame(&mut writer, &frame).await {
                tracing::debug!(%error, "cannot write a response; closing connection");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}
