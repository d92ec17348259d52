//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! metadata of its last five batches (first/last sequence and offsets), as Kafka's
//! `ProducerStateManager` keeps it.
//!
//! The log consults it before assigning offsets: a retried batch whose sequence range matches
//! a cached one gets that batch's offsets back and is not written again; a sequence gap gives
//! `OutOfOrderSequence`, an older epoch `InvalidProducerEpoch`. The state is snapshotted to
//! `<offset>.snapshot` when a segment is sealed and at close, and rebuilt at open from the
//! newest snapshot plus a scan of the batches after it.
//!
//! Semantics follow Kafka 3.x `ProducerAppendInfo` for non-transactional batches (KIP-98,
//! KIP-360): a producer with no state accepts any sequence (its state may have been removed
//! by retention or DeleteRecords), so UNKNOWN_PRODUCER_ID is never produced here; a new
//! epoch must start at sequence 0 unless no epoch was known.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;

/// Batches remembered per producer for duplicate detection; Kafka's producers keep at most
/// five requests in flight per partition when idempotent, so a retry is always among them.
pub const BATCHES_PER_PRODUCER: usize = 5;
/// Extension of producer-state snapshot files, named by the offset they describe.
pub const SNAPSHOT_EXTENSION: &str = "snapshot";
/// First bytes of a snapshot file: format and version.
const SNAPSHOT_MAGIC: &[u8; 8] = b"TLPSNAP1";

/// What a producer's batch may not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("out of order sequence number for producer {producer_id}: found {found}, expected {expected} (epoch {producer_epoch})")]
    OutOfOrderSequence {
        producer_id: i64,
        producer_epoch: i16,
        found: i32,
        expected: i32,
    },
    #[error("epoch {producer_epoch} of producer {producer_id} is older than the last seen epoch {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        producer_epoch: i16,
        current_epoch: i16,
    },
    #[error("transactional batches are not supported yet (producer {producer_id})")]
    Transactional { producer_id: i64 },
    #[error("invalid producer fields: {0}")]
    Invalid(String),
}

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_epoch: i16,
    /// Oldest first; at most `BATCHES_PER_PRODUCER`.
    pub batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    pub fn last_sequence(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_sequence)
    }

    pub fn last_timestamp(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.max_timestamp)
    }

    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
}

/// A producer's state as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

/// The outcome of checking a batch against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch (producer id -1): nothing to check or record.
    NotIdempotent,
    /// A new batch, to be appended and then recorded.
    Append,
    /// A retry of a batch already in the log at these offsets.
    Duplicate(BatchMetadata),
}

/// Kafka's `inSequence`: sequences wrap from i32::MAX to 0.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

fn batch_last_sequence(header: &BatchHeader) -> i32 {
    // Sequences wrap around i32::MAX (KIP-98), like offsets do not.
    ((header.base_sequence as i64 + header.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn summaries(&self) -> Vec<ProducerSummary> {
        self.producers
            .iter()
            .map(|(&producer_id, entry)| ProducerSummary {
                producer_id,
                producer_epoch: entry.producer_epoch,
                last_sequence: entry.last_sequence(),
                last_timestamp: entry.last_timestamp(),
            })
            .collect()
    }

    /// Checks a client's batch before it is appended (Kafka's `ProducerAppendInfo` for
    /// `AppendOrigin.CLIENT`).
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, ProducerError> {
        if header.producer_id < 0 {
            if header.is_transactional() {
                return Err(ProducerError::Invalid(
                    "a transactional batch needs a producer id".into(),
                ));
            }
            return Ok(SequenceCheck::NotIdempotent);
        }
        if header.is_transactional() || header.is_control() {
            return Err(ProducerError::Transactional {
                producer_id: header.producer_id,
            });
        }
        if header.producer_epoch < 0 || header.base_sequence < 0 {
            return Err(ProducerError::Invalid(format!(
                "producer {} sent epoch {} and base sequence {}",
                header.producer_id, header.producer_epoch, header.base_sequence
            )));
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // No state (new producer, or its state was removed with old segments): any
            // sequence is accepted, as Kafka does since KIP-360.
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.producer_epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                current_epoch: entry.producer_epoch,
            });
        }
        let last_sequence = batch_last_sequence(header);
        if header.producer_epoch == entry.producer_epoch {
            if let Some(duplicate) = entry.batches.iter().find(|b| {
                b.first_sequence == header.base_sequence && b.last_sequence == last_sequence
            }) {
                return Ok(SequenceCheck::Duplicate(*duplicate));
            }
            match entry.batches.back() {
                Some(last) if header.base_sequence != next_sequence(last.last_sequence) => {
                    Err(ProducerError::OutOfOrderSequence {
                        producer_id: header.producer_id,
                        producer_epoch: header.producer_epoch,
                        found: header.base_sequence,
                        expected: next_sequence(last.last_sequence),
                    })
                }
                _ => Ok(SequenceCheck::Append),
            }
        } else if header.base_sequence != 0 {
            // A bumped epoch starts its sequences over (KIP-360).
            Err(ProducerError::OutOfOrderSequence {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                found: header.base_sequence,
                expected: 0,
            })
        } else {
            Ok(SequenceCheck::Append)
        }
    }

    /// Records a batch that is now in the log (at append, and when replaying at recovery,
    /// where no check is made: what is in the log was accepted).
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                producer_epoch: header.producer_epoch,
                batches: VecDeque::new(),
            });
        if header.producer_epoch != entry.producer_epoch {
            entry.producer_epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: batch_last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        });
    }

    /// Forgets batches at or above `offset` (their write failed and the log was cut back).
    /// A producer left with no batch is removed, so its next batch is accepted whatever its
    /// sequence (the epoch it may have bumped with the lost batch is forgotten too).
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.first_offset < offset);
            !entry.batches.is_empty()
        });
    }

    /// Removes producers whose last batch lies below the log start offset (Kafka does so when
    /// retention or DeleteRecords moves the log start).
    pub fn remove_below(&mut self, log_start_offset: i64) {
        self.producers
            .retain(|_, entry| entry.last_offset() >= log_start_offset);
    }

    /// The snapshot file's bytes: magic, entry count, entries, CRC-32C of everything before.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.producers.len() * 40);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (producer_id, entry) in &self.producers {
            out.extend_from_slice(&producer_id.to_be_bytes());
            out.extend_from_slice(&entry.producer_epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot file; `None` for anything `encode` could not have written.
    pub fn decode(bytes: &[u8]) -> Option<ProducerStateMap> {
        let body_len = bytes.len().checked_sub(4)?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut reader = Reader { bytes: body, at: 0 };
        if reader.take(8)? != SNAPSHOT_MAGIC {
            return None;
        }
        let count = u32::from_be_bytes(reader.take(4)?.try_into().ok()?);
        let mut map = ProducerStateMap::default();
        for _ in 0..count {
            let producer_id = reader.i64()?;
            let producer_epoch = i16::from_be_bytes(reader.take(2)?.try_into().ok()?);
            let batch_count = reader.take(1)?[0] as usize;
            if batch_count > BATCHES_PER_PRODUCER {
                return None;
            }
            let mut batches = VecDeque::with_capacity(batch_count);
            for _ in 0..batch_count {
                batches.push_back(BatchMetadata {
                    first_sequence: reader.i32()?,
                    last_sequence: reader.i32()?,
                    first_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                    max_timestamp: reader.i64()?,
                });
            }
            map.producers.insert(
                producer_id,
                ProducerEntry {
                    producer_epoch,
                    batches,
                },
            );
        }
        (reader.at == body.len()).then_some(map)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(slice)
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// `<20-digit offset>.snapshot` in `dir`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_EXTENSION}"))
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let stem = name.to_str()?.strip_suffix(".snapshot")?.to_string();
            (stem.len() == 20)
                .then(|| stem.parse::<i64>().ok())
                .flatten()
        })
        .collect();
    offsets.sort_unstable();
    offsets
}
