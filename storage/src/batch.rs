//! Record batch v2 (magic 2) headers: the one place in Tidelog that parses them.
//!
//! Layout (Kafka's `DefaultRecordBatch`), all big-endian:
//! ```text
//! 0  base_offset i64        8  batch_length i32      12 partition_leader_epoch i32
//! 16 magic i8               17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16         23 last_offset_delta i32 27 base_timestamp i64
//! 35 max_timestamp i64      43 producer_id i64       51 producer_epoch i16
//! 53 base_sequence i32      57 record_count i32      61 records...
//! ```
//! `batch_length` counts the bytes after itself, so a batch occupies `batch_length + 12` bytes.

/// Bytes before the records of a v2 batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes of base offset + batch length, enough to find the next batch.
pub const BATCH_PREFIX_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported magic {0} (only record batch v2 is accepted)")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: header says {expected:#010x}, computed {computed:#010x}")]
    CrcMismatch { expected: u32, computed: u32 },
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: u32 },
    #[error("corrupt batch: {0}")]
    Corrupt(String),
}

/// Offset of the CRC field; the CRC covers everything after it (from `attributes` on).
const CRC_OFFSET: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const RECORD_COUNT_OFFSET: usize = 57;
/// Attributes bit 3: the batch's timestamps are the broker's append time.
const ATTR_LOG_APPEND_TIME: i16 = 0x08;

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf` (no CRC check).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        // The length check above makes every fixed-position read below in bounds.
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, RECORD_COUNT_OFFSET),
        };
        if header.magic != 2 {
            return Err(BatchError::UnsupportedMagic(header.magic));
        }
        if (header.batch_length as i64) < (BATCH_HEADER_LEN - BATCH_PREFIX_LEN) as i64 {
            return Err(BatchError::Corrupt(format!(
                "batch_length {} is shorter than the v2 header",
                header.batch_length
            )));
        }
        Ok(header)
    }

    /// Bytes the whole batch occupies (`batch_length + 12`).
    pub fn total_len(&self) -> usize {
        // `parse` rejects negative lengths, so the cast cannot wrap for parsed headers.
        (self.batch_length.max(0) as usize) + BATCH_PREFIX_LEN
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Compression codec id (attributes bits 0..2): 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Reads a zigzag varint (Kafka's `varint`/`varlong`) at `*pos`, advancing it. `None` when
/// the bytes end or the encoding is longer than 10 bytes.
fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Appends a zigzag varint.
fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        if raw < 0x80 {
            out.push(raw as u8);
            return;
        }
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
}

/// One record of an uncompressed batch, as far as storage needs it.
struct RecordView {
    offset_delta: i64,
    timestamp_delta: i64,
}

/// Walks the records of an uncompressed batch (the bytes after the header), calling `visit`
/// for each; returns how many there were. Each record is `length varint` then `length` bytes
/// (attributes i8, timestampDelta varlong, offsetDelta varint, key, value, headers).
fn walk_records(
    records: &[u8],
    mut visit: impl FnMut(RecordView) -> bool,
) -> Result<usize, BatchError> {
    let mut pos = 0usize;
    let mut count = 0usize;
    while pos < records.len() {
        let length = read_varlong(records, &mut pos)
            .ok_or_else(|| BatchError::Corrupt("bad record length varint".into()))?;
        let remaining = records.len() - pos;
        if length < 1 || length as u64 > remaining as u64 {
            return Err(BatchError::Corrupt(format!(
                "record {count} length {length} does not fit in the {remaining} bytes left"
            )));
        }
        let body = &records[pos..pos + length as usize];
        pos += length as usize;
        count += 1;
        // Body: attributes (1 byte), then the two deltas.
        let mut at = 1usize;
        let timestamp_delta = read_varlong(body, &mut at);
        let offset_delta = read_varlong(body, &mut at);
        let (Some(timestamp_delta), Some(offset_delta)) = (timestamp_delta, offset_delta) else {
            return Err(BatchError::Corrupt(format!("record {} header", count - 1)));
        };
        if !visit(RecordView {
            offset_delta,
            timestamp_delta,
        }) {
            break;
        }
    }
    Ok(count)
}

/// Checks one whole batch: length consistent with `bytes.len()`, magic 2, CRC-32C, record count
/// non-negative and, for uncompressed batches, equal to the records actually present, and
/// `last_offset_delta` consistent with the record count.
pub fn validate_batch(bytes: &[u8], max_message_bytes: u32) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let total_len = header.total_len();
    if total_len > max_message_bytes as usize {
        return Err(BatchError::TooLarge {
            size: total_len,
            max: max_message_bytes,
        });
    }
    if total_len != bytes.len() {
        if total_len > bytes.len() {
            return Err(BatchError::Truncated {
                needed: total_len,
                available: bytes.len(),
            });
        }
        return Err(BatchError::Corrupt(format!(
            "batch_length says {total_len} bytes, batch has {}",
            bytes.len()
        )));
    }
    let computed = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            computed,
        });
    }
    if header.record_count < 0 {
        return Err(BatchError::Corrupt(format!(
            "negative record count {}",
            header.record_count
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::Corrupt(format!(
            "negative last_offset_delta {}",
            header.last_offset_delta
        )));
    }
    // Kafka clients always produce dense offset deltas; a batch claiming more offsets than
    // records would make the log's offsets disagree with what consumers see.
    if header.record_count > 0 && header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::Corrupt(format!(
            "last_offset_delta {} with {} records",
            header.last_offset_delta, header.record_count
        )));
    }
    if header.compression() == 0 {
        let present = walk_records(&bytes[BATCH_HEADER_LEN..], |_| true)?;
        if present != header.record_count as usize {
            return Err(BatchError::Corrupt(format!(
                "record_count {} but {present} records present",
                header.record_count
            )));
        }
    }
    Ok(header)
}

/// Splits a produce request's `records` into its batches and validates each; an empty or
/// partial trailing batch is an error.
pub fn validate_batches(
    records: &[u8],
    max_message_bytes: u32,
) -> Result<Vec<BatchHeader>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_LEN,
            available: 0,
        });
    }
    let mut headers = Vec::new();
    let mut position = 0usize;
    while position < records.len() {
        let rest = &records[position..];
        let header = BatchHeader::parse(rest)?;
        let total_len = header.total_len();
        if total_len > max_message_bytes as usize {
            return Err(BatchError::TooLarge {
                size: total_len,
                max: max_message_bytes,
            });
        }
        let Some(batch) = rest.get(..total_len) else {
            return Err(BatchError::Truncated {
                needed: total_len,
                available: rest.len(),
            });
        };
        headers.push(validate_batch(batch, max_message_bytes)?);
        position += total_len;
    }
    Ok(headers)
}

/// Rewrites the base offset (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Marks the batch LogAppendTime with `timestamp_ms` as its max timestamp and recomputes the
/// CRC, as Kafka does for topics with `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    if batch.len() < BATCH_HEADER_LEN {
        // Only called on validated batches; a short slice is left untouched rather than
        // panicking.
        return;
    }
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Checks a batch read back from disk: header, whole length present and CRC. Cheaper than
/// [`validate_batch`] (no record walk); used by recovery.
pub fn check_stored_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let Some(batch) = bytes.get(..header.total_len()) else {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: bytes.len(),
        });
    };
    let computed = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            computed,
        });
    }
    if header.last_offset_delta < 0 || header.record_count < 0 {
        return Err(BatchError::Corrupt("negative offset delta or count".into()));
    }
    Ok(header)
}

/// The first record of `batch` whose timestamp is at least `timestamp_ms`, as (offset,
/// timestamp). Exact for uncompressed CreateTime batches; for LogAppendTime batches every
/// record carries the max timestamp; for compressed batches (not decompressed here) it is the
/// batch's base offset and max timestamp.
pub fn find_record_by_timestamp(batch: &[u8], timestamp_ms: i64) -> Option<(i64, i64)> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.max_timestamp < timestamp_ms {
        return None;
    }
    if header.is_log_append_time() || header.compression() != 0 {
        return Some((header.base_offset, header.max_timestamp));
    }
    let records = batch.get(BATCH_HEADER_LEN..header.total_len())?;
    let mut found = None;
    let _ = walk_records(records, |record| {
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        if timestamp >= timestamp_ms {
            found = Some((header.base_offset + record.offset_delta, timestamp));
            return false;
        }
        true
    });
    // Records may carry timestamps below the header's max (clients compute it); fall back to
    // the batch when no record qualifies.
    found.or(Some((header.base_offset, header.max_timestamp)))
}

/// Iterates over the whole batches at the start of `bytes`, stopping at the first incomplete
/// or unparsable one. Yields each header with the batch's byte range.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BatchIter { bytes, position: 0 }
    }

    /// Bytes consumed by the batches yielded so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (BatchHeader, std::ops::Range<usize>);
    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.bytes.get(self.position..)?;
        let header = BatchHeader::parse(rest).ok()?;
        let total_len = header.total_len();
        if total_len > rest.len() {
            return None;
        }
        let range = self.position..self.position + total_len;
        self.position += total_len;
        Some((header, range))
    }
}

/// A record's optional key and value, as [`build_batch`] takes them.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed v2 batch with one record per `(key, value)`, record `i` stamped
/// `base_timestamp_ms + i`. For tests (here and in the broker) and tools; the broker never
/// builds batches on the produce path.
pub fn build_batch(base_offset: i64, base_timestamp_ms: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (index, (key, value)) in records.iter().enumerate() {
        let mut record = vec![0u8]; // attributes
        write_varlong(&mut record, index as i64); // timestamp delta
        write_varlong(&mut record, index as i64); // offset delta
        for field in [key, value] {
            match field {
                Some(bytes) => {
                    write_varlong(&mut record, bytes.len() as i64);
                    record.extend_from_slice(bytes);
                }
                None => write_varlong(&mut record, -1),
            }
        }
        write_varlong(&mut record, 0); // headers
        write_varlong(&mut body, record.len() as i64);
        body.extend_from_slice(&record);
    }
    let count = records.len() as i32;
    let max_timestamp = base_timestamp_ms + (count.max(1) - 1) as i64;
    let mut batch = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    batch.extend_from_slice(&base_offset.to_be_bytes());
    let batch_length = (BATCH_HEADER_LEN - BATCH_PREFIX_LEN + body.len()) as i32;
    batch.extend_from_slice(&batch_length.to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&[0u8; 4]); // crc, filled below
    batch.extend_from_slice(&0i16.to_be_bytes()); // attributes
    batch.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // last offset delta
    batch.extend_from_slice(&base_timestamp_ms.to_be_bytes());
    batch.extend_from_slice(&max_timestamp.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&count.to_be_bytes());
    batch.extend_from_slice(&body);
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Like [`build_batch`], with the idempotent-producer fields set (CRC recomputed).
pub fn build_producer_batch(
    base_timestamp_ms: i64,
    records: &[KeyValue<'_>],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let mut batch = build_batch(0, base_timestamp_ms, records);
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(count: usize) -> Vec<u8> {
        let values: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("value-{i}").into_bytes())
            .collect();
        let records: Vec<KeyValue<'_>> = values
            .iter()
            .map(|v| (Some(&b"key"[..]), Some(v.as_slice())))
            .collect();
        build_batch(0, 1_000, &records)
    }

    fn recrc(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn parses_and_validates_built_batch() {
        let batch = sample(5);
        let header = validate_batch(&batch, 1 << 20).unwrap();
        assert_eq!(header.record_count, 5);
        assert_eq!(header.last_offset_delta, 4);
        assert_eq!(header.total_len(), batch.len());
        assert_eq!(header.base_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_004);
        assert_eq!(header.compression(), 0);
        let mut two = batch.clone();
        two.extend_from_slice(&sample(1));
        assert_eq!(validate_batches(&two, 1 << 20).unwrap().len(), 2);
        assert!(validate_batch(&build_batch(0, 0, &[(None, None)]), 100).is_ok());
    }

    #[test]
    fn rejects_bad_batches() {
        let batch = sample(3);
        let mut bad_magic = batch.clone();
        bad_magic[16] = 1;
        assert_eq!(
            validate_batch(&bad_magic, 1 << 20),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut bad_crc = batch.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        assert!(matches!(
            validate_batch(&bad_crc, 1 << 20),
            Err(BatchError::CrcMismatch { .. })
        ));
        assert!(matches!(
            validate_batch(&batch[..batch.len() - 1], 1 << 20),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            validate_batches(&batch[..30], 1 << 20),
            Err(BatchError::Truncated { .. })
        ));
        assert!(validate_batches(&[], 1 << 20).is_err());
        assert!(matches!(
            validate_batch(&batch, 50),
            Err(BatchError::TooLarge { .. })
        ));
        let mut wrong_count = batch.clone();
        wrong_count[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
            .copy_from_slice(&2i32.to_be_bytes());
        wrong_count[23..27].copy_from_slice(&1i32.to_be_bytes());
        recrc(&mut wrong_count);
        assert!(matches!(
            validate_batch(&wrong_count, 1 << 20),
            Err(BatchError::Corrupt(_))
        ));
        let mut wrong_delta = batch.clone();
        wrong_delta[23..27].copy_from_slice(&7i32.to_be_bytes());
        recrc(&mut wrong_delta);
        assert!(matches!(
            validate_batch(&wrong_delta, 1 << 20),
            Err(BatchError::Corrupt(_))
        ));
        let mut trailing = batch.clone();
        trailing.push(0);
        assert!(validate_batch(&trailing, 1 << 20).is_err());
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut batch = sample(2);
        set_log_append_time(&mut batch, 42_000);
        set_base_offset(&mut batch, 77);
        let header = validate_batch(&batch, 1 << 20).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 42_000);
        assert_eq!(header.base_offset, 77);
        assert_eq!(find_record_by_timestamp(&batch, 0), Some((77, 42_000)));
    }

    #[test]
    fn finds_records_by_timestamp() {
        let batch = sample(4); // timestamps 1000..=1003
        assert_eq!(find_record_by_timestamp(&batch, 500), Some((0, 1_000)));
        assert_eq!(find_record_by_timestamp(&batch, 1_002), Some((2, 1_002)));
        assert_eq!(find_record_by_timestamp(&batch, 1_004), None);
    }

    #[test]
    fn iterator_stops_at_partial_batch() {
        let mut bytes = sample(2);
        let first_len = bytes.len();
        bytes.extend_from_slice(&sample(3));
        bytes.truncate(bytes.len() - 5);
        let mut iter = BatchIter::new(&bytes);
        assert_eq!(iter.next().map(|(_, r)| r), Some(0..first_len));
        assert!(iter.next().is_none());
        assert_eq!(iter.position(), first_len);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: every prefix length and mutated valid batches.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = sample(4);
        for _ in 0..5_000 {
            let mut bytes = valid.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            bytes.truncate((next() as usize) % (bytes.len() + 1));
            let _ = validate_batches(&bytes, 1 << 20);
            let _ = check_stored_batch(&bytes);
            let _ = find_record_by_timestamp(&bytes, 1_001);
            let _ = BatchIter::new(&bytes).count();
            let noise: Vec<u8> = (0..(next() % 200)).map(|_| next() as u8).collect();
            let _ = validate_batches(&noise, 1 << 20);
            let _ = BatchIter::new(&noise).count();
        }
    }
}
