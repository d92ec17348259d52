//! `RemoteReader`: whole record batches from remote segments, through a bounded cache.
//!
//! A read finds its start position in the segment's `.index` object (fetched once, decoded,
//! cached), then walks batch headers in the `.log` object, which it reads as fixed, aligned
//! 1 MiB chunks by range GET. Chunks and indexes share one LRU bounded in bytes; a chunk that
//! several fetches want while it is in flight is fetched once (single-flight). Knows batches
//! only through `tidelog_storage::batch` headers, and Kafka requests not at all.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use object_store::path::Path;
use tidelog_storage::batch::{BatchHeader, BATCH_HEADER_LEN};
use tidelog_storage::index::OffsetIndex;

use crate::cache::Lru;
use crate::error::{Result, TieringError};
use crate::manifest::RemoteSegment;
use crate::store::{PartitionPath, RemoteStore};

/// Size and alignment of `.log` range GETs. Large enough that a fetch of consecutive batches
/// costs few requests, small enough that a cold single-batch fetch stays cheap.
pub const CHUNK_BYTES: u64 = 1 << 20;
/// Cache weight charged per decoded index on top of its entries, so that empty indexes of
/// many segments still count against the bound.
const INDEX_OVERHEAD_BYTES: u64 = 64;
/// Share of the cache bound kept for indexes, apart from chunks: every read of a segment
/// needs its index, so a scan through many chunks must not evict it (an index is about
/// 1/500 of its segment at Kafka's 4 KiB index interval).
const INDEX_CACHE_SHARE: u64 = 8;

/// Counters since the reader was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Range GETs of `.log` chunks.
    pub range_gets: u64,
    /// Chunk and index lookups served without a GET of their own: from the cache, or by
    /// joining a GET already in flight.
    pub cache_hits: u64,
    /// Bytes received by `.log` range GETs and `.index` GETs.
    pub bytes_fetched: u64,
    /// GETs of `.index` objects.
    pub index_gets: u64,
    /// Bytes the cache holds now (chunks, plus decoded indexes with their overhead).
    pub cached_bytes: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Chunk { log: String, chunk: u64 },
    Index { index: String },
}

#[derive(Clone)]
enum Cached {
    Chunk(Bytes),
    Index(Arc<OffsetIndex>),
}

type Fetch = Shared<BoxFuture<'static, Result<Cached, Arc<TieringError>>>>;

struct ReaderState {
    /// `.log` chunks, within `cache_bytes - cache_bytes / INDEX_CACHE_SHARE`.
    chunks: Lru<CacheKey, Cached>,
    /// Decoded indexes, within `cache_bytes / INDEX_CACHE_SHARE`.
    indexes: Lru<CacheKey, Cached>,
    /// GETs under way; removed by the fetch itself when it completes, in the same critical
    /// section that caches its result, so a lookup finds one or the other.
    in_flight: HashMap<CacheKey, Fetch>,
}

impl ReaderState {
    fn lru(&mut self, key: &CacheKey) -> &mut Lru<CacheKey, Cached> {
        match key {
            CacheKey::Chunk { .. } => &mut self.chunks,
            CacheKey::Index { .. } => &mut self.indexes,
        }
    }
}

struct Inner {
    store: Arc<RemoteStore>,
    state: Mutex<ReaderState>,
    range_gets: AtomicU64,
    cache_hits: AtomicU64,
    bytes_fetched: AtomicU64,
    index_gets: AtomicU64,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, ReaderState> {
        // The critical sections only move entries between maps; a panic in one leaves the
        // maps consistent, so a poisoned lock is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads whole record batches from remote segments through a bounded cache. Send + Sync;
/// share it through an `Arc`.
pub struct RemoteReader {
    inner: Arc<Inner>,
}

impl RemoteReader {
    /// `cache_bytes` bounds the chunks and indexes kept between reads (0 keeps none); an
    /// eighth of it is kept for indexes.
    pub fn new(store: Arc<RemoteStore>, cache_bytes: u64) -> RemoteReader {
        RemoteReader {
            inner: Arc::new(Inner {
                store,
                state: Mutex::new(ReaderState {
                    chunks: Lru::new(cache_bytes - cache_bytes / INDEX_CACHE_SHARE),
                    indexes: Lru::new(cache_bytes / INDEX_CACHE_SHARE),
                    in_flight: HashMap::new(),
                }),
                range_gets: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                bytes_fetched: AtomicU64::new(0),
                index_gets: AtomicU64::new(0),
            }),
        }
    }

    pub fn stats(&self) -> ReaderStats {
        ReaderStats {
            range_gets: self.inner.range_gets.load(Ordering::Relaxed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            bytes_fetched: self.inner.bytes_fetched.load(Ordering::Relaxed),
            index_gets: self.inner.index_gets.load(Ordering::Relaxed),
            cached_bytes: {
                let state = self.inner.state();
                state.chunks.weight() + state.indexes.weight()
            },
        }
    }

    /// Whole batches starting with the one that holds `offset` (earlier batches are skipped),
    /// up to `max_bytes` but always at least one whole batch (KIP-74), never past the
    /// segment's end. Empty when `offset` is past the segment's last offset.
    pub async fn read(
        &self,
        partition: &PartitionPath,
        segment: &RemoteSegment,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Bytes> {
        if offset > segment.last_offset || segment.size_bytes == 0 {
            return Ok(Bytes::new());
        }
        let start = if offset <= segment.base_offset {
            0
        } else {
            let index = self.index(partition, segment).await?;
            // Offsets past u32 from the base cannot be indexed; the last entry is the best start.
            let relative = u32::try_from(offset - segment.base_offset).unwrap_or(u32::MAX);
            u64::from(index.lookup(relative))
        };
        let mut log = LogCursor {
            reader: self,
            path: self.inner.store.object(partition, segment, "log"),
            size_bytes: segment.size_bytes,
            held: BTreeMap::new(),
        };

        // The index is sparse: skip the batches between its entry and `offset`.
        let mut position = start;
        let first = loop {
            if position >= log.size_bytes {
                // The manifest's last offset is past the last batch; nothing to return.
                return Ok(Bytes::new());
            }
            let header = log.header_at(position).await?;
            if header.last_offset() >= offset {
                break header;
            }
            position += header.total_len() as u64;
        };
        let begin = position;
        let mut end = begin + first.total_len() as u64;
        if end > log.size_bytes {
            return Err(log.corrupt(begin, "batch runs past the end of the segment".into()));
        }
        // At `max_bytes` already (the first batch alone may pass it): the next header, maybe in
        // another chunk, cannot change the answer.
        while end < log.size_bytes && end - begin < max_bytes as u64 {
            // A failure after the first batch (a corrupt header, a failed GET) ends this read
            // early with the whole batches it has; the next read, starting there, reports it.
            let Ok(header) = log.header_at(end).await else {
                break;
            };
            let next_end = end + header.total_len() as u64;
            if next_end > log.size_bytes || next_end - begin > max_bytes as u64 {
                break;
            }
            end = next_end;
        }
        log.bytes(begin..end).await
    }

    /// The segment's decoded offset index, fetched once and cached.
    async fn index(
        &self,
        partition: &PartitionPath,
        segment: &RemoteSegment,
    ) -> Result<Arc<OffsetIndex>> {
        let path = self.inner.store.object(partition, segment, "index");
        let key = CacheKey::Index {
            index: path.to_string(),
        };
        let store = self.inner.store.clone();
        let weak = Arc::downgrade(&self.inner);
        let segment_bytes = segment.size_bytes;
        let fetch = async move {
            if let Some(inner) = weak.upgrade() {
                inner.index_gets.fetch_add(1, Ordering::Relaxed);
            }
            let bytes = match store.get_if_exists(&path).await? {
                Some(bytes) => bytes,
                None => {
                    // Correct without it, only slower: every read scans from the start.
                    tracing::warn!(%path, "remote offset index missing; scanning the segment");
                    Bytes::new()
                }
            };
            if let Some(inner) = weak.upgrade() {
                inner
                    .bytes_fetched
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            let index = OffsetIndex::decode(&bytes, segment_bytes).ok_or_else(|| {
                TieringError::CorruptIndex {
                    path: path.to_string(),
                    segment_bytes,
                }
            })?;
            let weight = bytes.len() as u64 + INDEX_OVERHEAD_BYTES;
            Ok((Cached::Index(Arc::new(index)), weight))
        };
        match self.cached(key, fetch).await? {
            Cached::Index(index) => Ok(index),
            Cached::Chunk(_) => unreachable!("index keys hold indexes"),
        }
    }

    /// Chunk `chunk` of the `.log` object at `path`, of `size_bytes` bytes.
    async fn chunk(&self, path: &Path, size_bytes: u64, chunk: u64) -> Result<Bytes> {
        let key = CacheKey::Chunk {
            log: path.to_string(),
            chunk,
        };
        let range = chunk * CHUNK_BYTES..((chunk + 1) * CHUNK_BYTES).min(size_bytes);
        let store = self.inner.store.clone();
        let weak = Arc::downgrade(&self.inner);
        let path = path.clone();
        let fetch = async move {
            if let Some(inner) = weak.upgrade() {
                inner.range_gets.fetch_add(1, Ordering::Relaxed);
            }
            let bytes = store.get_range(&path, range.clone()).await?;
            if let Some(inner) = weak.upgrade() {
                inner
                    .bytes_fetched
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            if bytes.len() as u64 != range.end - range.start {
                return Err(TieringError::CorruptSegment {
                    path: path.to_string(),
                    position: range.start,
                    reason: format!(
                        "range GET of {} bytes returned {}: the object is shorter than the manifest says",
                        range.end - range.start,
                        bytes.len()
                    ),
                });
            }
            let weight = bytes.len() as u64;
            Ok((Cached::Chunk(bytes), weight))
        };
        match self.cached(key, fetch).await? {
            Cached::Chunk(bytes) => Ok(bytes),
            Cached::Index(_) => unreachable!("chunk keys hold chunks"),
        }
    }

    /// The cached value for `key`, or the result of joining its fetch in flight, or of
    /// starting `fetch` (which yields the value and its cache weight).
    async fn cached(
        &self,
        key: CacheKey,
        fetch: impl std::future::Future<Output = Result<(Cached, u64)>> + Send + 'static,
    ) -> Result<Cached> {
        let shared = {
            let mut state = self.inner.state();
            if let Some(value) = state.lru(&key).get(&key) {
                self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(value);
            }
            if let Some(in_flight) = state.in_flight.get(&key) {
                self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
                in_flight.clone()
            } else {
                // Weak: the map holds this future, which must not keep the reader alive.
                let weak: Weak<Inner> = Arc::downgrade(&self.inner);
                let completed_key = key.clone();
                let shared = async move {
                    let result = fetch.await;
                    if let Some(inner) = weak.upgrade() {
                        let mut state = inner.state();
                        state.in_flight.remove(&completed_key);
                        if let Ok((value, weight)) = &result {
                            let lru = state.lru(&completed_key);
                            lru.insert(completed_key, value.clone(), *weight);
                        }
                    }
                    // Errors are not cached: the next read tries again.
                    result.map(|(value, _)| value).map_err(Arc::new)
                }
                .boxed()
                .shared();
                state.in_flight.insert(key, shared.clone());
                shared
            }
        };
        shared.await.map_err(TieringError::Shared)
    }
}

/// One read's view of a `.log` object: the chunks it has touched stay held until the read
/// ends, so a cache smaller than the read never makes it fetch a chunk twice.
struct LogCursor<'a> {
    reader: &'a RemoteReader,
    path: Path,
    size_bytes: u64,
    held: BTreeMap<u64, Bytes>,
}

impl LogCursor<'_> {
    async fn chunk(&mut self, chunk: u64) -> Result<Bytes> {
        if let Some(bytes) = self.held.get(&chunk) {
            return Ok(bytes.clone());
        }
        let bytes = self
            .reader
            .chunk(&self.path, self.size_bytes, chunk)
            .await?;
        self.held.insert(chunk, bytes.clone());
        Ok(bytes)
    }

    /// The bytes of `range`, which must lie inside the object: a slice of one chunk when it
    /// fits in one, else assembled from each chunk it spans.
    async fn bytes(&mut self, range: Range<u64>) -> Result<Bytes> {
        debug_assert!(range.start < range.end && range.end <= self.size_bytes);
        let first = range.start / CHUNK_BYTES;
        let last = (range.end - 1) / CHUNK_BYTES;
        let within = |chunk: u64| {
            let chunk_start = chunk * CHUNK_BYTES;
            (range.start.max(chunk_start) - chunk_start) as usize
                ..(range.end.min(chunk_start + CHUNK_BYTES) - chunk_start) as usize
        };
        if first == last {
            // `chunk` checked the chunk's length against the object size, so this is in bounds.
            return Ok(self.chunk(first).await?.slice(within(first)));
        }
        let mut assembled = BytesMut::with_capacity((range.end - range.start) as usize);
        for chunk in first..=last {
            let bytes = self.chunk(chunk).await?;
            assembled.extend_from_slice(&bytes[within(chunk)]);
        }
        Ok(assembled.freeze())
    }

    async fn header_at(&mut self, position: u64) -> Result<BatchHeader> {
        let header_end = position + BATCH_HEADER_LEN as u64;
        if header_end > self.size_bytes {
            return Err(self.corrupt(position, "batch header runs past the end".into()));
        }
        let bytes = self.bytes(position..header_end).await?;
        BatchHeader::parse(&bytes).map_err(|e| self.corrupt(position, e.to_string()))
    }

    fn corrupt(&self, position: u64, reason: String) -> TieringError {
        TieringError::CorruptSegment {
            path: self.path.to_string(),
            position,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    use super::*;
    use crate::testing::{
        partition, random_shapes, write_segment, CountingStore, Rng, WrittenSegment,
    };

    struct Fixture {
        counting: Arc<CountingStore>,
        store: Arc<RemoteStore>,
        partition: PartitionPath,
        remote: RemoteSegment,
        written: WrittenSegment,
        _local: tempfile::TempDir,
    }

    async fn fixture(
        backend: Arc<dyn ObjectStore>,
        get_delay: Duration,
        base_offset: i64,
        shapes: &[(usize, usize)],
    ) -> Fixture {
        let local = tempfile::tempdir().unwrap();
        let written = write_segment(local.path(), base_offset, shapes);
        let counting = Arc::new(CountingStore::new(backend, get_delay));
        let store = Arc::new(RemoteStore::new(counting.clone(), "tiered"));
        let partition = partition("events", 0);
        let remote = store
            .upload_segment(&partition, &written.sealed)
            .await
            .unwrap();
        Fixture {
            counting,
            store,
            partition,
            remote,
            written,
            _local: local,
        }
    }

    /// The bytes a read from `offset` must return: the batch holding it, then following whole
    /// batches while they fit in `max_bytes`.
    fn expected(written: &WrittenSegment, offset: i64, max_bytes: usize) -> &[u8] {
        let first = written.batch_holding(offset);
        let begin = written.batches[first].range.start;
        let mut end = written.batches[first].range.end;
        for batch in &written.batches[first + 1..] {
            if batch.range.end - begin > max_bytes {
                break;
            }
            end = batch.range.end;
        }
        &written.log[begin..end]
    }

    #[tokio::test]
    async fn every_offset_reads_back_whole_batches_byte_for_byte() {
        let seed = 0x5eed_0001;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let shapes = random_shapes(&mut rng, 5 << 20);
        let remote_dir = tempfile::tempdir().unwrap();
        let local_store = crate::config::open_local(&remote_dir.path().display().to_string())
            .unwrap()
            .store;
        let f = fixture(local_store, Duration::ZERO, 1_000, &shapes).await;
        let reader = RemoteReader::new(f.store.clone(), 3 << 20);
        let (base, last) = (f.remote.base_offset, f.remote.last_offset);
        for offset in base..=last {
            for max_bytes in [0, 1 + rng.below(300_000) as usize, 4 << 20] {
                let bytes = reader
                    .read(&f.partition, &f.remote, offset, max_bytes)
                    .await
                    .unwrap();
                assert!(
                    bytes[..] == *expected(&f.written, offset, max_bytes),
                    "offset {offset} max_bytes {max_bytes}: {} bytes read",
                    bytes.len()
                );
            }
        }
        let before = reader
            .read(&f.partition, &f.remote, base - 10, 0)
            .await
            .unwrap();
        assert_eq!(before[..], *expected(&f.written, base, 0));
        let past = reader
            .read(&f.partition, &f.remote, last + 1, 1 << 20)
            .await
            .unwrap();
        assert!(past.is_empty());
        let all = reader
            .read(&f.partition, &f.remote, base, usize::MAX)
            .await
            .unwrap();
        assert!(
            all[..] == f.written.log[..],
            "a large max_bytes reads to the end"
        );
        let stats = reader.stats();
        assert_eq!(stats.index_gets, 1, "the index is fetched once: {stats:?}");
        assert!(stats.cache_hits > stats.range_gets, "{stats:?}");
    }

    #[tokio::test]
    async fn batches_spanning_chunk_boundaries_are_assembled_from_each_chunk() {
        // 100 KB batches: the eleventh straddles the first 1 MiB boundary; then one batch of
        // 2.5 MB covering three chunks.
        let mut shapes = vec![(1, 100_000); 12];
        shapes.push((5, 500_000));
        shapes.push((1, 10));
        let f = fixture(Arc::new(InMemory::new()), Duration::ZERO, 0, &shapes).await;
        let straddling = f
            .written
            .batches
            .iter()
            .find(|b| b.range.start < CHUNK_BYTES as usize && b.range.end > CHUNK_BYTES as usize)
            .expect("a batch straddles the first chunk boundary")
            .clone();

        let reader = RemoteReader::new(f.store.clone(), 16 << 20);
        let bytes = reader
            .read(&f.partition, &f.remote, straddling.base_offset, 0)
            .await
            .unwrap();
        assert!(bytes[..] == f.written.log[straddling.range.clone()]);
        assert_eq!(reader.stats().range_gets, 2, "chunks 0 and 1");

        let big = &f.written.batches[12];
        assert!(big.range.len() > 2 * CHUNK_BYTES as usize);
        let bytes = reader
            .read(&f.partition, &f.remote, big.base_offset + 3, 0)
            .await
            .unwrap();
        assert!(bytes[..] == f.written.log[big.range.clone()]);
        let chunks_spanned = (big.range.end as u64 - 1) / CHUNK_BYTES + 1;
        assert_eq!(reader.stats().range_gets, chunks_spanned);
        assert_eq!(f.counting.log_gets(), chunks_spanned);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_byte_bound() {
        let shapes = vec![(2, 30_000); 200];
        let f = fixture(Arc::new(InMemory::new()), Duration::ZERO, 0, &shapes).await;
        assert!(f.written.log.len() > 10 * CHUNK_BYTES as usize);
        let cache_bytes = 2 * CHUNK_BYTES + CHUNK_BYTES / 2;
        let reader = RemoteReader::new(f.store.clone(), cache_bytes);
        let mut offset = f.remote.base_offset;
        while offset <= f.remote.last_offset {
            let bytes = reader
                .read(&f.partition, &f.remote, offset, 300_000)
                .await
                .unwrap();
            assert!(bytes[..] == *expected(&f.written, offset, 300_000));
            let stats = reader.stats();
            assert!(stats.cached_bytes <= cache_bytes, "{stats:?}");
            let last_read = tidelog_storage::batch::BatchIter::new(&bytes)
                .last()
                .expect("at least one batch");
            offset = last_read.0.last_offset() + 1;
        }
        let chunk_count = (f.written.log.len() as u64).div_ceil(CHUNK_BYTES);
        assert_eq!(reader.stats().range_gets, chunk_count, "each chunk once");

        // The last chunk is still cached; the first was evicted long ago.
        let gets = reader.stats().range_gets;
        reader
            .read(&f.partition, &f.remote, f.remote.last_offset, 0)
            .await
            .unwrap();
        assert_eq!(reader.stats().range_gets, gets);
        reader
            .read(&f.partition, &f.remote, f.remote.base_offset, 0)
            .await
            .unwrap();
        assert_eq!(reader.stats().range_gets, gets + 1);

        // A zero-byte cache keeps nothing, and reads still work.
        let uncached = RemoteReader::new(f.store.clone(), 0);
        for round in 1..=2 {
            uncached.read(&f.partition, &f.remote, 0, 0).await.unwrap();
            assert_eq!(uncached.stats().range_gets, round);
            assert_eq!(uncached.stats().cached_bytes, 0);
        }
    }

    #[tokio::test]
    async fn concurrent_reads_of_a_cold_chunk_share_one_get() {
        let shapes = vec![(3, 2_000); 1_000];
        // Slow GETs, so that every read below arrives while the first GET is in flight.
        let f = fixture(
            Arc::new(InMemory::new()),
            Duration::from_millis(50),
            500,
            &shapes,
        )
        .await;
        assert!(f.written.log.len() > 3 * CHUNK_BYTES as usize);
        let reader = Arc::new(RemoteReader::new(f.store.clone(), 8 << 20));
        let concurrent_reads = |offsets: Vec<i64>, max_bytes: usize| {
            let reads: Vec<_> = offsets
                .iter()
                .map(|&offset| {
                    let reader = reader.clone();
                    let (partition, remote) = (f.partition.clone(), f.remote.clone());
                    tokio::spawn(async move {
                        reader.read(&partition, &remote, offset, max_bytes).await
                    })
                })
                .collect();
            let written = &f.written;
            async move {
                let results = futures_util::future::join_all(reads).await;
                for (offset, result) in offsets.iter().zip(results) {
                    let bytes = result.unwrap().unwrap();
                    assert!(bytes[..] == *expected(written, *offset, max_bytes));
                }
            }
        };
        // The upload read the manifest.
        let gets_before = f.counting.gets.load(std::sync::atomic::Ordering::SeqCst);

        // Cold index and cold chunk 0: each is fetched once.
        concurrent_reads((1..=16).map(|i| 500 + i * 7).collect(), 10_000).await;
        assert_eq!(f.counting.log_gets(), 1, "one GET of chunk 0");
        let gets = f.counting.gets.load(std::sync::atomic::Ordering::SeqCst) - gets_before;
        assert_eq!(gets - 1, 1, "one GET of the index");

        // Warm index, cold chunk 2: every read reaches the chunk at once.
        let in_chunk_2: Vec<i64> = f
            .written
            .batches
            .iter()
            .filter(|b| {
                b.range.start as u64 >= 2 * CHUNK_BYTES + 8192
                    && b.range.end as u64 <= 3 * CHUNK_BYTES
            })
            .take(16)
            .map(|b| b.base_offset + 1)
            .collect();
        assert_eq!(in_chunk_2.len(), 16);
        concurrent_reads(in_chunk_2, 0).await;
        assert_eq!(f.counting.log_gets(), 2, "one GET of chunk 2");
        let stats = reader.stats();
        assert_eq!((stats.range_gets, stats.index_gets), (2, 1), "{stats:?}");
        // Phase one: 15 joined the index GET, 15 the chunk GET; phase two: 16 cached index
        // lookups, 15 joined the chunk GET.
        assert_eq!(stats.cache_hits, (15 + 15) + (16 + 15), "{stats:?}");
    }

    #[tokio::test]
    async fn failed_gets_are_not_cached_and_a_missing_index_falls_back_to_a_scan() {
        let shapes = vec![(2, 100); 10];
        let f = fixture(Arc::new(InMemory::new()), Duration::ZERO, 0, &shapes).await;
        let reader = RemoteReader::new(f.store.clone(), 8 << 20);
        let index = f.store.object(&f.partition, &f.remote, "index");
        let log = f.store.object(&f.partition, &f.remote, "log");
        f.counting.delete(&index).await.unwrap();
        let bytes = reader.read(&f.partition, &f.remote, 7, 0).await.unwrap();
        assert_eq!(bytes[..], *expected(&f.written, 7, 0));

        f.counting.delete(&log).await.unwrap();
        let cold = RemoteReader::new(f.store.clone(), 8 << 20);
        for attempt in 1..=2 {
            let error = cold.read(&f.partition, &f.remote, 0, 0).await.unwrap_err();
            assert!(error.to_string().contains(".log"), "{error}");
            assert_eq!(cold.stats().range_gets, attempt);
        }
        f.counting
            .put(&log, PutPayload::from(f.written.log.clone()))
            .await
            .unwrap();
        assert!(!cold
            .read(&f.partition, &f.remote, 0, 0)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_corrupt_index_or_segment_is_an_error_not_a_panic() {
        let shapes = vec![(2, 100); 10];
        let f = fixture(Arc::new(InMemory::new()), Duration::ZERO, 0, &shapes).await;
        let index = f.store.object(&f.partition, &f.remote, "index");
        f.counting
            .put(&index, PutPayload::from_static(b"seven b"))
            .await
            .unwrap();
        let reader = RemoteReader::new(f.store.clone(), 8 << 20);
        let error = reader
            .read(&f.partition, &f.remote, 5, 0)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("index"), "{error}");

        // Garbage where batches should be, and a manifest size past the object's end.
        let log = f.store.object(&f.partition, &f.remote, "log");
        f.counting
            .put(&log, PutPayload::from(vec![0xffu8; f.written.log.len()]))
            .await
            .unwrap();
        let reader = RemoteReader::new(f.store.clone(), 8 << 20);
        let error = reader
            .read(&f.partition, &f.remote, 0, 0)
            .await
            .unwrap_err();
        assert!(
            matches!(error, TieringError::CorruptSegment { .. }),
            "{error}"
        );
        let mut longer = f.remote.clone();
        longer.size_bytes += 10;
        let reader = RemoteReader::new(f.store.clone(), 8 << 20);
        let error = reader.read(&f.partition, &longer, 0, 0).await.unwrap_err();
        assert!(error.to_string().contains("shorter"), "{error}");
    }

    #[test]
    fn reader_is_send_and_sync_and_its_futures_are_send() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<RemoteReader>();
        send_sync::<RemoteStore>();
        let store = Arc::new(RemoteStore::new(Arc::new(InMemory::new()), ""));
        let reader = RemoteReader::new(store.clone(), 0);
        let partition = partition("t", 0);
        let segment = RemoteSegment {
            base_offset: 0,
            last_offset: 0,
            size_bytes: 0,
            max_timestamp_ms: 0,
            unique_id: "u".into(),
        };
        send(&reader.read(&partition, &segment, 0, 0));
        send(&store.cleanup_orphans(&partition, &Default::default()));
        send(&store.delete_partition(&partition));
        let sealed = crate::SealedSegment {
            base_offset: 0,
            last_offset: 0,
            max_timestamp_ms: 0,
            log_file: "x".into(),
            index_file: "x".into(),
            time_index_file: "x".into(),
        };
        send(&store.upload_segment_objects(&partition, &sealed));
    }
}
