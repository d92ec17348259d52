//! Request frames in, response frames out: `int32 length` + header + body.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

use tidelog_storage::FileSlice;

use super::api::SUPPORTED;
use super::error_code;

/// Encodes a complete response frame.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> anyhow::Result<Bytes> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version)? + response.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    response.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

/// A piece of a response frame: encoded bytes, or record bytes still in a segment file.
#[derive(Debug, Clone)]
pub enum Piece {
    Memory(Bytes),
    /// Sent with `sendfile(2)`, from the page cache straight to the socket.
    File(FileSlice),
}

impl Piece {
    pub fn len(&self) -> usize {
        match self {
            Piece::Memory(bytes) => bytes.len(),
            Piece::File(slice) => slice.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response frame in pieces: encoded fields, and record data shared with the log reads
/// rather than copied (written out with vectored writes and `sendfile`).
pub type Frame = Vec<Piece>;

/// A frame of one buffer.
pub fn single(bytes: Bytes) -> Frame {
    vec![Piece::Memory(bytes)]
}

/// Encodes a response frame whose large byte fields (Fetch's records) are the keys of
/// `shared`: each such field becomes the piece it maps to instead of a copy of its bytes. A
/// key may be a placeholder (see `placeholder`) standing for a file range: its bytes are never
/// read, and the encoding fails unless every file piece was placed.
pub fn encode_response_sharing<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
    shared: Vec<(Bytes, Piece)>,
) -> anyhow::Result<Frame> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version)? + response.compute_size(version)?;
    let file_pieces = shared
        .iter()
        .filter(|(_, piece)| matches!(piece, Piece::File(_)))
        .count();
    let mut buf = SegmentedBuf::new(shared);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    response.encode(&mut buf, version)?;
    let frame = buf.finish();
    let written: usize = frame.iter().map(Piece::len).sum();
    anyhow::ensure!(
        written == 4 + size,
        "encoded {written} bytes for a {size}-byte frame"
    );
    let placed = frame
        .iter()
        .filter(|piece| matches!(piece, Piece::File(_)))
        .count();
    anyhow::ensure!(
        placed == file_pieces,
        "{placed} of {file_pieces} file ranges were placed in the frame"
    );
    Ok(frame)
}

/// Address space that stands in for record bytes still in segment files while a response is
/// encoded: the encoder needs a slice of the right length, and `SegmentedBuf` recognises it by
/// address and puts the file range in its place. It is a read-only, never-written anonymous
/// mapping (the zero page; no memory is committed), so the slices are valid memory and
/// distinct ranges of it are distinct placeholders.
const PLACEHOLDER_SPACE_BYTES: usize = 16 << 30;

fn placeholder_space() -> Option<&'static [u8]> {
    static SPACE: std::sync::OnceLock<Option<&'static [u8]>> = std::sync::OnceLock::new();
    *SPACE.get_or_init(|| {
        // SAFETY: a fresh anonymous mapping, never unmapped, so a 'static slice over it is
        // valid; it is only ever read.
        unsafe {
            let address = libc::mmap(
                std::ptr::null_mut(),
                PLACEHOLDER_SPACE_BYTES,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if address == libc::MAP_FAILED {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "cannot reserve address space for sendfile placeholders; fetches copy record bytes"
                );
                return None;
            }
            Some(std::slice::from_raw_parts(
                address as *const u8,
                PLACEHOLDER_SPACE_BYTES,
            ))
        }
    })
}

/// A placeholder of `len` bytes at `offset` in the placeholder space; placeholders of one
/// response must not overlap. None past the end of the space (or without one).
pub fn placeholder(offset: usize, len: usize) -> Option<Bytes> {
    let space = placeholder_space()?;
    let end = offset.checked_add(len)?;
    space.get(offset..end).map(Bytes::from_static)
}

/// Slices of at least this size that are one of the shared buffers are referenced; smaller
/// ones are copied (and a file range smaller than this cannot be placed).
pub const MIN_SHARED_BYTES: usize = 1024;

/// A `ByteBufMut` that collects the encoding in segments: fields go into a growing buffer,
/// and a slice that is exactly one of the `shared` buffers becomes a segment of its own.
struct SegmentedBuf {
    segments: Vec<Piece>,
    current: BytesMut,
    /// Bytes in `segments`.
    sealed_len: usize,
    shared: Vec<(Bytes, Piece)>,
    /// Where the next key is looked for first: fields are encoded in the order the caller
    /// listed them, so the search usually ends at once.
    next_shared: usize,
}

impl SegmentedBuf {
    fn new(shared: Vec<(Bytes, Piece)>) -> SegmentedBuf {
        SegmentedBuf {
            segments: Vec::new(),
            current: BytesMut::with_capacity(1024),
            sealed_len: 0,
            next_shared: 0,
            shared: shared
                .into_iter()
                .filter(|(key, piece)| key.len() == piece.len() && key.len() >= MIN_SHARED_BYTES)
                .collect(),
        }
    }

    fn seal_current(&mut self) {
        if !self.current.is_empty() {
            let part = self.current.split().freeze();
            self.sealed_len += part.len();
            self.segments.push(Piece::Memory(part));
        }
    }

    fn finish(mut self) -> Frame {
        self.seal_current();
        self.segments
    }
}

// SAFETY: every method delegates to `current`, a `BytesMut`, except `put_slice`, which
// either delegates or appends a whole segment; `remaining_mut` is what BytesMut allows.
unsafe impl BufMut for SegmentedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= MIN_SHARED_BYTES {
            let is_key =
                |(key, _): &(Bytes, Piece)| key.as_ptr() == src.as_ptr() && key.len() == src.len();
            let next = self.next_shared;
            let found = self.shared[next..]
                .iter()
                .position(is_key)
                .map(|i| next + i)
                .or_else(|| self.shared[..next].iter().position(is_key));
            if let Some(index) = found {
                self.next_shared = index + 1;
                let segment = self.shared[index].1.clone();
                self.seal_current();
                self.sealed_len += segment.len();
                self.segments.push(segment);
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SegmentedBuf {
    fn offset(&self) -> usize {
        self.sealed_len + self.current.len()
    }

    // Gaps (seek/range) are only used when encoding record batches, never for a response
    // with records passed through; they stay inside the unsealed buffer.
    fn seek(&mut self, offset: usize) {
        let local = offset.saturating_sub(self.sealed_len);
        self.current.resize(local, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.sealed_len);
        let end = r.end.saturating_sub(self.sealed_len);
        &mut self.current[start..end]
    }
}

/// The answer to an ApiVersions request of a version we do not know: Kafka's v0 layout
/// (header v0, error code, int32-counted `(key, min, max)` array, nothing else) with
/// UNSUPPORTED_VERSION, so that the client retries with a version from the list.
pub fn api_versions_unsupported_v0(correlation_id: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(16 + SUPPORTED.len() * 6);
    buf.put_i32(0); // length, patched below
    buf.put_i32(correlation_id);
    buf.put_i16(error_code::UNSUPPORTED_VERSION);
    buf.put_i32(SUPPORTED.len() as i32);
    for &(api, min, max) in SUPPORTED {
        buf.put_i16(api as i16);
        buf.put_i16(min);
        buf.put_i16(max);
    }
    let length = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&length.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn response(records: &[Bytes]) -> FetchResponse {
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_topic_id(uuid::Uuid::from_u128(7))
            .with_partitions(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        PartitionData::default()
                            .with_partition_index(i as i32)
                            .with_high_watermark(100)
                            .with_records(Some(r.clone()))
                    })
                    .collect(),
            )])
    }

    /// The bytes a frame stands for, file ranges read from their files.
    fn joined(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in frame {
            match piece {
                Piece::Memory(bytes) => out.extend_from_slice(bytes),
                Piece::File(slice) => out.extend_from_slice(&slice.read_bytes().expect("reads")),
            }
        }
        out
    }

    #[test]
    fn shared_records_are_referenced_and_the_frame_is_byte_identical() {
        let records: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![i; if i == 1 { 10 } else { 5000 }]))
            .collect();
        // The third partition's records stay in a file, behind a placeholder.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        std::fs::write(&path, [vec![9u8; 100], records[2].to_vec()].concat()).expect("writes");
        let file = std::sync::Arc::new(std::fs::File::open(&path).expect("opens"));
        let slice = FileSlice {
            file,
            position: 100,
            len: records[2].len(),
        };
        let stand_in = placeholder(records[0].len(), records[2].len()).expect("placeholder");
        for version in 4..=18 {
            let mut response = response(&records);
            if version < 13 {
                response.responses[0].topic_id = uuid::Uuid::nil();
            } else {
                response.responses[0].topic = TopicName(StrBytes::from_static_str(""));
            }
            let plain = encode_response(9, version, &response).expect("encodes");
            response.responses[0].partitions[2].records = Some(stand_in.clone());
            let shared = vec![
                (records[0].clone(), Piece::Memory(records[0].clone())),
                (records[1].clone(), Piece::Memory(records[1].clone())),
                (stand_in.clone(), Piece::File(slice.clone())),
            ];
            let frame = encode_response_sharing(9, version, &response, shared).expect("encodes");
            assert_eq!(joined(&frame), plain.to_vec(), "version {version}");
            // The large memory buffer is a segment of its own, not a copy; the file range is
            // a piece of its own.
            assert!(
                frame
                    .iter()
                    .any(|p| matches!(p, Piece::Memory(b) if b.as_ptr() == records[0].as_ptr())),
                "version {version}"
            );
            assert!(frame.iter().any(
                |p| matches!(p, Piece::File(f) if f.position == 100 && f.len == records[2].len())
            ));
        }
    }

    #[test]
    fn a_file_range_that_cannot_be_placed_fails_the_encoding() {
        let records: Vec<Bytes> = vec![Bytes::from(vec![1u8; 4096])];
        let response = response(&records);
        let file = std::sync::Arc::new(tempfile::tempfile().expect("tempfile"));
        // The placeholder is not the response's records: the file range would be lost, and the
        // frame would carry the placeholder's zeros instead.
        let stand_in = placeholder(0, 4096).expect("placeholder");
        let shared = vec![(
            stand_in,
            Piece::File(FileSlice {
                file,
                position: 0,
                len: 4096,
            }),
        )];
        assert!(encode_response_sharing(1, 12, &response, shared).is_err());
    }
}
