//! Test support: sealed segments written the way storage writes them, and an `ObjectStore`
//! wrapper that counts requests and can slow GETs down so concurrent readers overlap.

use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tidelog_storage::batch::build_batch;
use tidelog_storage::index::{OffsetIndex, TimeIndex};
use uuid::Uuid;

use crate::store::SealedSegment;

/// Kafka's default `index.interval.bytes`.
const INDEX_INTERVAL_BYTES: usize = 4096;

pub fn partition(name: &str, index: i32) -> crate::PartitionPath {
    crate::PartitionPath {
        topic: name.into(),
        topic_id: Uuid::new_v4(),
        partition: index,
    }
}

/// A batch as written: its offsets and where it lies in the `.log`.
#[derive(Debug, Clone)]
pub struct WrittenBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub range: Range<usize>,
}

pub struct WrittenSegment {
    pub sealed: SealedSegment,
    pub log: Vec<u8>,
    pub batches: Vec<WrittenBatch>,
}

impl WrittenSegment {
    /// Index of the batch holding `offset`.
    pub fn batch_holding(&self, offset: i64) -> usize {
        self.batches
            .iter()
            .position(|b| b.base_offset <= offset && offset <= b.last_offset)
            .expect("offset inside the segment")
    }
}

/// Small deterministic generator (xorshift64*): tests print the seed they use.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// Writes `.log`, `.index` and `.timeindex` for batches of the given `(record count, value
/// bytes per record)`, indexed every 4 KiB as storage does.
pub fn write_segment(
    dir: &FsPath,
    base_offset: i64,
    batch_shapes: &[(usize, usize)],
) -> WrittenSegment {
    let mut log = Vec::new();
    let mut batches = Vec::new();
    let mut offset_index = OffsetIndex::default();
    let mut time_index = TimeIndex::default();
    let mut bytes_since_entry = 0;
    let mut next_offset = base_offset;
    for (batch_number, &(record_count, value_bytes)) in batch_shapes.iter().enumerate() {
        let value = vec![b'a' + (batch_number % 26) as u8; value_bytes];
        let key = format!("key-{batch_number}");
        let records: Vec<_> = (0..record_count)
            .map(|_| (Some(key.as_bytes()), Some(value.as_slice())))
            .collect();
        let batch = build_batch(next_offset, 1_000 + next_offset, &records);
        let relative = (next_offset - base_offset) as u32;
        if log.is_empty() || bytes_since_entry >= INDEX_INTERVAL_BYTES {
            offset_index.push(relative, log.len() as u32);
            bytes_since_entry = 0;
        }
        bytes_since_entry += batch.len();
        time_index.observe(1_000 + next_offset + record_count as i64 - 1, relative);
        let last_offset = next_offset + record_count as i64 - 1;
        batches.push(WrittenBatch {
            base_offset: next_offset,
            last_offset,
            range: log.len()..log.len() + batch.len(),
        });
        log.extend_from_slice(&batch);
        next_offset = last_offset + 1;
    }
    let name = format!("{base_offset:020}");
    let paths = ["log", "index", "timeindex"].map(|ext| dir.join(format!("{name}.{ext}")));
    std::fs::write(&paths[0], &log).unwrap();
    std::fs::write(&paths[1], offset_index.encode()).unwrap();
    std::fs::write(&paths[2], time_index.encode()).unwrap();
    let [log_file, index_file, time_index_file] = paths;
    WrittenSegment {
        sealed: SealedSegment {
            base_offset,
            last_offset: next_offset - 1,
            max_timestamp_ms: 1_000 + next_offset - 1,
            log_file,
            index_file,
            time_index_file,
        },
        log,
        batches,
    }
}

/// Batch shapes adding up to about `total_bytes`, with sizes drawn from `rng`: mostly small
/// batches (many per index interval), some of tens of KiB, now and then one larger than a
/// chunk.
pub fn random_shapes(rng: &mut Rng, total_bytes: usize) -> Vec<(usize, usize)> {
    let mut shapes = Vec::new();
    let mut bytes = 0;
    while bytes < total_bytes {
        let (count, value_bytes) = match rng.below(20) {
            0 => (3, 400_000 + rng.below(200_000) as usize),
            1..=5 => (
                1 + rng.below(8) as usize,
                2_000 + rng.below(20_000) as usize,
            ),
            _ => (1 + rng.below(5) as usize, 10 + rng.below(300) as usize),
        };
        shapes.push((count, value_bytes));
        bytes += count * (value_bytes + 20) + 61;
    }
    shapes
}

/// Counts requests to the wrapped store; GETs can be delayed.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    get_delay: Duration,
    pub gets: AtomicU64,
    pub log_gets: AtomicU64,
    pub multipart_uploads: AtomicU64,
    pub puts: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, get_delay: Duration) -> CountingStore {
        CountingStore {
            inner,
            get_delay,
            gets: AtomicU64::new(0),
            log_gets: AtomicU64::new(0),
            multipart_uploads: AtomicU64::new(0),
            puts: AtomicU64::new(0),
        }
    }

    fn count_get(&self, location: &Path) {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if location.as_ref().ends_with(".log") {
            self.log_gets.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn log_gets(&self) -> u64 {
        self.log_gets.load(Ordering::SeqCst)
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.multipart_uploads.fetch_add(1, Ordering::SeqCst);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.count_get(location);
        if !self.get_delay.is_zero() {
            tokio::time::sleep(self.get_delay).await;
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.count_get(location);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
