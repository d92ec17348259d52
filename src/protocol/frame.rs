//! Request frames in, response frames out: `int32 length` + header + body.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
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
