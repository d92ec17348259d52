//! Request frames in, response frames out: `int32 length` + header + body.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

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

/// A response frame in pieces: encoded fields, and record data shared with the log reads
/// rather than copied (written out with one vectored write).
pub type Frame = Vec<Bytes>;

/// Encodes a response frame whose large byte fields (Fetch's records) are among `shared`:
/// those are referenced, not copied, so record bytes go from the read buffer to the socket
/// without a user-space copy.
pub fn encode_response_sharing<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
    shared: Vec<Bytes>,
) -> anyhow::Result<Frame> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version)? + response.compute_size(version)?;
    let mut buf = SegmentedBuf::new(shared);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    response.encode(&mut buf, version)?;
    let frame = buf.finish();
    let written: usize = frame.iter().map(Bytes::len).sum();
    anyhow::ensure!(
        written == 4 + size,
        "encoded {written} bytes for a {size}-byte frame"
    );
    Ok(frame)
}

/// Slices of at least this size that are one of the shared buffers are referenced.
const MIN_SHARED_BYTES: usize = 1024;

/// A `ByteBufMut` that collects the encoding in segments: fields go into a growing buffer,
/// and a slice that is exactly one of the `shared` buffers becomes a segment of its own.
struct SegmentedBuf {
    segments: Vec<Bytes>,
    current: BytesMut,
    /// Bytes in `segments`.
    sealed_len: usize,
    shared: Vec<Bytes>,
}

impl SegmentedBuf {
    fn new(shared: Vec<Bytes>) -> SegmentedBuf {
        SegmentedBuf {
            segments: Vec::new(),
            current: BytesMut::with_capacity(1024),
            sealed_len: 0,
            shared: shared
                .into_iter()
                .filter(|b| b.len() >= MIN_SHARED_BYTES)
                .collect(),
        }
    }

    fn seal_current(&mut self) {
        if !self.current.is_empty() {
            let part = self.current.split().freeze();
            self.sealed_len += part.len();
            self.segments.push(part);
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
            let found = self
                .shared
                .iter()
                .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
                .cloned();
            if let Some(segment) = found {
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

    #[test]
    fn shared_records_are_referenced_and_the_frame_is_byte_identical() {
        let records: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![i; if i == 1 { 10 } else { 5000 }]))
            .collect();
        for version in 4..=18 {
            let mut response = response(&records);
            if version < 13 {
                response.responses[0].topic_id = uuid::Uuid::nil();
            } else {
                response.responses[0].topic = TopicName(StrBytes::from_static_str(""));
            }
            let plain = encode_response(9, version, &response).expect("encodes");
            let frame =
                encode_response_sharing(9, version, &response, records.clone()).expect("encodes");
            let joined: Vec<u8> = frame.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(joined, plain.to_vec(), "version {version}");
            // The two large record buffers are segments of their own, not copies.
            for big in [&records[0], &records[2]] {
                assert!(
                    frame.iter().any(|s| s.as_ptr() == big.as_ptr()),
                    "version {version}"
                );
            }
        }
    }
}
