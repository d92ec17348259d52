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
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::shard::Shard;
use crate::handlers;
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
            Ok(Prepared::Immediate(bytes)) => Pending::Ready(vec![bytes]),
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
    let mut body = BytesMut::zeroed(size as usize);
    match reader.read_exact(&mut body).await {
        Ok(_) => Ok(Some(body.freeze())),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(FrameError::Truncated)
        }
        Err(error) => Err(error.into()),
    }
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

/// Writes a frame's pieces with vectored writes (one syscall for the usual case).
async fn write_frame(writer: &mut OwnedWriteHalf, frame: &[Bytes]) -> std::io::Result<()> {
    let mut index = 0;
    let mut offset = 0;
    loop {
        while index < frame.len() && offset >= frame[index].len() {
            index += 1;
            offset = 0;
        }
        if index >= frame.len() {
            return Ok(());
        }
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&frame[index][offset..])
            .chain(frame[index + 1..].iter().map(|b| &b[..]))
            .take(64)
            .map(std::io::IoSlice::new)
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && index < frame.len() {
            let rest = frame[index].len() - offset;
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
            if write_frame(&mut writer, &frame).await.is_err() {
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}
