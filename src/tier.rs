//! The broker's side of tiered storage, per shard: uploads of sealed segments of the tiered
//! partitions this shard owns, the manifests that say what is remote, remote retention, and
//! reads of offsets below the local log start.
//!
//! Order of events for a segment: sealed and durable locally → its objects stored → the
//! manifest (the truth for what is remote) rewritten with it → only then does the log learn
//! that it is remote (`set_remote_end_offset`) and local retention may delete it. A crash
//! between the objects and the manifest leaves orphans, cleaned up when the partition's
//! manifest is next loaded; never a hole.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidelog_storage::batch::{find_record_by_timestamp, BatchIter};
use tidelog_tiering::{
    PartitionManifest, PartitionPath, RemoteReader, RemoteSegment, RemoteStore, SealedSegment,
};
use uuid::Uuid;

use crate::server::shard::OwnedPartition;
use crate::server::Shard;

/// Longest wait between upload attempts of a failing partition.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One tiered partition's remote state.
pub struct PartitionTier {
    pub path: PartitionPath,
    pub manifest: RefCell<PartitionManifest>,
    loaded: Cell<bool>,
    load_lock: tokio::sync::Mutex<()>,
    uploading: Cell<bool>,
    failures: Cell<u32>,
    next_attempt: Cell<Instant>,
    pub last_error: RefCell<Option<String>>,
}

impl PartitionTier {
    fn new(path: PartitionPath) -> PartitionTier {
        PartitionTier {
            path,
            manifest: RefCell::new(PartitionManifest::default()),
            loaded: Cell::new(false),
            load_lock: tokio::sync::Mutex::new(()),
            uploading: Cell::new(false),
            failures: Cell::new(0),
            next_attempt: Cell::new(Instant::now()),
            last_error: RefCell::new(None),
        }
    }

    fn fail(&self, what: &str, error: String) {
        let failures = self.failures.get().saturating_add(1);
        self.failures.set(failures);
        let backoff =
            Duration::from_millis(500u64.saturating_mul(1 << failures.min(8))).min(MAX_BACKOFF);
        self.next_attempt.set(Instant::now() + backoff);
        tracing::warn!(
            topic = %self.path.topic,
            partition = self.path.partition,
            %error,
            retry_in_ms = backoff.as_millis() as u64,
            "{what} failed"
        );
        *self.last_error.borrow_mut() = Some(error);
    }

    fn succeeded(&self) {
        self.failures.set(0);
        *self.last_error.borrow_mut() = None;
    }

    /// Bytes stored remotely.
    pub fn remote_bytes(&self) -> u64 {
        self.manifest
            .borrow()
            .segments
            .iter()
            .map(|s| s.size_bytes)
            .sum()
    }
}

/// A shard's tiering state.
pub struct ShardTier {
    store: Option<Arc<RemoteStore>>,
    reader: Option<Arc<RemoteReader>>,
    partitions: RefCell<HashMap<(Uuid, i32), Rc<PartitionTier>>>,
    uploads_in_flight: Cell<usize>,
    /// Woken when an upload finishes, so the next one starts at once instead of at the next
    /// tick (an idle slot costs upload throughput).
    pub upload_finished: tokio::sync::Notify,
}

impl ShardTier {
    /// Opens the object store `--tier-url` names; a bad one is logged and tiering stays off
    /// (the broker itself keeps working).
    pub fn new(config: &crate::config::BrokerConfig) -> ShardTier {
        let store = match RemoteStore::from_config(&config.tier.store) {
            Ok(store) => Some(Arc::new(store)),
            Err(error) => {
                tracing::error!(url = %config.tier.store.url, %error, "cannot open the tiered storage; tiering is off");
                None
            }
        };
        let per_shard_cache = config.tier.cache_bytes / config.shard_count.max(1) as u64;
        let reader = store
            .as_ref()
            .map(|store| Arc::new(RemoteReader::new(store.clone(), per_shard_cache)));
        ShardTier {
            store,
            reader,
            partitions: RefCell::new(HashMap::new()),
            uploads_in_flight: Cell::new(0),
            upload_finished: tokio::sync::Notify::new(),
        }
    }

    fn partition(&self, owned: &OwnedPartition) -> Rc<PartitionTier> {
        self.partitions
            .borrow_mut()
            .entry((owned.topic.id, owned.index))
            .or_insert_with(|| {
                Rc::new(PartitionTier::new(PartitionPath {
                    topic: owned.topic.name.clone(),
                    topic_id: owned.topic.id,
                    partition: owned.index,
                }))
            })
            .clone()
    }

    /// The tier state of a partition, if it has one.
    pub fn existing(&self, topic_id: &Uuid, partition: i32) -> Option<Rc<PartitionTier>> {
        self.partitions
            .borrow()
            .get(&(*topic_id, partition))
            .cloned()
    }

    /// A deleted topic's partition: its remote objects are deleted in the background.
    pub fn forget_deleted(&self, owned: &OwnedPartition) {
        let tiered = owned.log.config().remote_storage;
        let known = self
            .partitions
            .borrow_mut()
            .remove(&(owned.topic.id, owned.index));
        let (Some(store), true) = (self.store.clone(), tiered || known.is_some()) else {
            return;
        };
        let path = PartitionPath {
            topic: owned.topic.name.clone(),
            topic_id: owned.topic.id,
            partition: owned.index,
        };
        tokio::task::spawn_local(async move {
            match store.delete_partition(&path).await {
                Ok(()) => {
                    tracing::info!(topic = %path.topic, partition = path.partition, "deleted remote data of a deleted topic")
                }
                Err(error) => {
                    tracing::warn!(topic = %path.topic, partition = path.partition, %error, "could not delete remote data of a deleted topic")
                }
            }
        });
    }
}

fn failpoint_after_upload() -> bool {
    static FAILPOINT: OnceLock<bool> = OnceLock::new();
    *FAILPOINT
        .get_or_init(|| std::env::var("TIDELOG_FAILPOINT").is_ok_and(|v| v == "tier-after-upload"))
}

/// Reads the manifest the first time the partition is used after start, and removes orphans
/// a crash left between an upload and its manifest update.
async fn ensure_loaded(shard: &Shard, tier: &PartitionTier, owned: &OwnedPartition) -> bool {
    if tier.loaded.get() {
        return true;
    }
    let _guard = tier.load_lock.lock().await;
    if tier.loaded.get() {
        return true;
    }
    let Some(store) = shard.tier.store.clone() else {
        return false;
    };
    let manifest = match store.read_manifest(&tier.path).await {
        Ok(manifest) => manifest,
        Err(error) => {
            tier.fail("reading the remote manifest", error.to_string());
            return false;
        }
    };
    match store.cleanup_orphans(&tier.path, &manifest).await {
        Ok(0) => {}
        Ok(removed) => {
            tracing::info!(topic = %tier.path.topic, partition = tier.path.partition, removed, "removed orphaned remote objects")
        }
        Err(error) => {
            tracing::warn!(topic = %tier.path.topic, partition = tier.path.partition, %error, "could not clean up orphaned remote objects")
        }
    }
    owned.log.set_remote_end_offset(manifest.end_offset());
    *tier.manifest.borrow_mut() = manifest;
    tier.loaded.set(true);
    true
}

/// One line per tiered partition with what is remote, what waits to be uploaded (the upload
/// lag) and the last error; logged every minute by the shard's tiering task.
pub fn log_status(shard: &Shard) {
    for owned in shard.owned_partitions() {
        if !owned.log.config().remote_storage {
            continue;
        }
        let Some(tier) = shard.tier.existing(&owned.topic.id, owned.index) else {
            continue;
        };
        let end = tier.manifest.borrow().end_offset();
        let pending: Vec<_> = owned
            .log
            .sealed_segments()
            .into_iter()
            .filter(|s| s.base_offset >= end)
            .collect();
        tracing::info!(
            topic = %owned.topic.name,
            partition = owned.index,
            remote_segments = tier.manifest.borrow().segments.len(),
            remote_bytes = tier.remote_bytes(),
            upload_lag_segments = pending.len(),
            upload_lag_bytes = pending.iter().map(|s| s.size_bytes).sum::<u64>(),
            last_error = tier.last_error.borrow().as_deref().unwrap_or("none"),
            "tiered storage status"
        );
    }
}

/// One pass over the shard's tiered partitions: start uploads, apply remote retention.
pub async fn tick(shard: &Rc<Shard>) {
    if shard.tier.store.is_none() {
        return;
    }
    let now = Instant::now();
    let now_ms = crate::clock::now_ms();
    for owned in shard.owned_partitions() {
        if !owned.log.config().remote_storage {
            continue;
        }
        let tier = shard.tier.partition(&owned);
        if tier.uploading.get() || now < tier.next_attempt.get() {
            continue;
        }
        if !ensure_loaded(shard, &tier, &owned).await {
            continue;
        }
        apply_remote_retention(shard, &tier, &owned, now_ms).await;
        if shard.tier.uploads_in_flight.get() >= shard.config.tier.upload_concurrency {
            continue;
        }
        let end = tier.manifest.borrow().end_offset();
        let next = owned
            .log
            .sealed_segments()
            .into_iter()
            .find(|segment| segment.base_offset >= end);
        let Some(segment) = next else {
            continue;
        };
        tier.uploading.set(true);
        shard
            .tier
            .uploads_in_flight
            .set(shard.tier.uploads_in_flight.get() + 1);
        let shard = shard.clone();
        tokio::task::spawn_local(async move {
            let started = Instant::now();
            let bytes = segment.size_bytes;
            upload(&shard, &tier, &owned, segment).await;
            // Bandwidth bound: the slot is held until the upload's share of the shard's
            // bytes-per-second budget has passed.
            let budget = shard.config.tier.upload_bytes_per_sec / shard.shards.len().max(1) as u64;
            if budget > 0 {
                let allowed = Duration::from_secs_f64(bytes as f64 / budget as f64);
                if let Some(rest) = allowed.checked_sub(started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
            tier.uploading.set(false);
            shard
                .tier
                .uploads_in_flight
                .set(shard.tier.uploads_in_flight.get().saturating_sub(1));
            shard.tier.upload_finished.notify_one();
        });
    }
}

async fn upload(
    shard: &Shard,
    tier: &PartitionTier,
    owned: &OwnedPartition,
    segment: tidelog_storage::SealedSegmentInfo,
) {
    let Some(store) = shard.tier.store.clone() else {
        return;
    };
    let started = Instant::now();
    let sealed = SealedSegment {
        base_offset: segment.base_offset,
        last_offset: segment.next_offset - 1,
        max_timestamp_ms: segment.max_timestamp_ms,
        log_file: segment.log_file.clone(),
        index_file: segment.index_file.clone(),
        time_index_file: segment.time_index_file.clone(),
    };
    let remote = match store.upload_segment_objects(&tier.path, &sealed).await {
        Ok(remote) => remote,
        Err(error) => {
            tier.fail("segment upload", error.to_string());
            return;
        }
    };
    if failpoint_after_upload() {
        tracing::error!("failpoint tier-after-upload: aborting between upload and manifest update");
        std::process::abort();
    }
    let mut manifest = tier.manifest.borrow().clone();
    manifest.add(remote.clone());
    if let Err(error) = store.write_manifest(&tier.path, &manifest).await {
        tier.fail("manifest update", error.to_string());
        // The objects are orphans now; they are removed at the next manifest load.
        let _ = store.delete_segment_objects(&tier.path, &remote).await;
        return;
    }
    let end = manifest.end_offset();
    *tier.manifest.borrow_mut() = manifest;
    owned.log.set_remote_end_offset(end);
    tier.succeeded();
    tracing::info!(
        topic = %tier.path.topic,
        partition = tier.path.partition,
        base_offset = remote.base_offset,
        last_offset = remote.last_offset,
        bytes = remote.size_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "uploaded segment"
    );
}

/// `retention.ms` / `retention.bytes` over the whole log: the oldest remote segments go
/// first (manifest updated before their objects are deleted, so a reader never finds a
/// listed segment missing), and the log start offset follows.
async fn apply_remote_retention(
    shard: &Shard,
    tier: &PartitionTier,
    owned: &OwnedPartition,
    now_ms: i64,
) {
    let config = owned.log.config();
    let doomed: Vec<RemoteSegment> = {
        let manifest = tier.manifest.borrow();
        let local_bytes = owned.log.size_bytes();
        let mut total: u64 =
            manifest.segments.iter().map(|s| s.size_bytes).sum::<u64>() + local_bytes;
        let mut doomed = Vec::new();
        for segment in &manifest.segments {
            let expired = config.retention_ms >= 0
                && now_ms.saturating_sub(segment.max_timestamp_ms) > config.retention_ms;
            let oversized = config.retention_bytes >= 0
                && total.saturating_sub(segment.size_bytes) >= config.retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            total = total.saturating_sub(segment.size_bytes);
            doomed.push(segment.clone());
        }
        doomed
    };
    if doomed.is_empty() {
        return;
    }
    let Some(store) = shard.tier.store.clone() else {
        return;
    };
    let mut manifest = tier.manifest.borrow().clone();
    manifest
        .segments
        .retain(|s| !doomed.iter().any(|d| d.unique_id == s.unique_id));
    manifest.version += 1;
    if let Err(error) = store.write_manifest(&tier.path, &manifest).await {
        tier.fail("remote retention", error.to_string());
        return;
    }
    *tier.manifest.borrow_mut() = manifest;
    let new_start = doomed.last().map_or(0, |s| s.last_offset + 1);
    if new_start > owned.log.log_start_offset() {
        if let Err(error) = owned.log.delete_records_before(new_start).await {
            tracing::warn!(%error, "moving the log start after remote retention failed");
        }
    }
    for segment in &doomed {
        if let Err(error) = store.delete_segment_objects(&tier.path, segment).await {
            tracing::warn!(topic = %tier.path.topic, partition = tier.path.partition, %error, "could not delete an expired remote segment");
        }
    }
    tracing::info!(
        topic = %tier.path.topic,
        partition = tier.path.partition,
        segments = doomed.len(),
        log_start_offset = new_start,
        "remote retention deleted segments"
    );
}

/// The first offset stored anywhere: remote segments included.
pub async fn earliest_offset(shard: &Shard, owned: &OwnedPartition) -> i64 {
    let local = owned.log.log_start_offset();
    if !owned.log.config().remote_storage {
        return local;
    }
    let tier = shard.tier.partition(owned);
    if !ensure_loaded(shard, &tier, owned).await {
        return local;
    }
    let remote = tier
        .manifest
        .borrow()
        .segments
        .first()
        .map(|s| s.base_offset);
    remote.map_or(local, |remote| remote.min(local))
}

/// The last offset in object storage (ListOffsets -5), or -1.
pub async fn latest_tiered_offset(shard: &Shard, owned: &OwnedPartition) -> i64 {
    if !owned.log.config().remote_storage {
        return -1;
    }
    let tier = shard.tier.partition(owned);
    if !ensure_loaded(shard, &tier, owned).await {
        return -1;
    }
    let end = tier.manifest.borrow().end_offset();
    end - 1
}

/// What a fetch below the local log start gets.
pub enum RemoteRead {
    /// The offset is local (or the topic is not tiered): read the local log.
    NotRemote,
    Records(Bytes),
    Failed(String),
}

pub async fn read(
    shard: &Shard,
    owned: &OwnedPartition,
    offset: i64,
    max_bytes: usize,
) -> RemoteRead {
    if !owned.log.config().remote_storage || offset >= owned.log.log_start_offset() {
        return RemoteRead::NotRemote;
    }
    let tier = shard.tier.partition(owned);
    if !ensure_loaded(shard, &tier, owned).await {
        return RemoteRead::Failed(
            tier.last_error
                .borrow()
                .clone()
                .unwrap_or_else(|| "tiered storage unavailable".into()),
        );
    }
    let segment = tier.manifest.borrow().find(offset).cloned();
    let (Some(segment), Some(reader)) = (segment, shard.tier.reader.clone()) else {
        return RemoteRead::NotRemote;
    };
    match reader.read(&tier.path, &segment, offset, max_bytes).await {
        Ok(records) => {
            read_ahead(reader, &tier, &segment, &records, max_bytes);
            RemoteRead::Records(records)
        }
        Err(error) => RemoteRead::Failed(error.to_string()),
    }
}

/// A consumer reading a cold range will want what follows: fetch it into the cache in the
/// background, so the next fetch finds it (single-flight: a fetch arriving meanwhile joins
/// the same GET).
fn read_ahead(
    reader: Arc<RemoteReader>,
    tier: &PartitionTier,
    segment: &RemoteSegment,
    records: &Bytes,
    max_bytes: usize,
) {
    let Some(last) = BatchIter::new(records).last().map(|(h, _)| h.last_offset()) else {
        return;
    };
    let next = last + 1;
    if next > segment.last_offset {
        return;
    }
    let path = tier.path.clone();
    let segment = segment.clone();
    tokio::task::spawn_local(async move {
        let _ = reader.read(&path, &segment, next, max_bytes).await;
    });
}

/// ListOffsets by time for a tiered partition: the remote segments are searched first when
/// the timestamp is older than what is local. `None`: look locally.
pub async fn offset_for_timestamp(
    shard: &Shard,
    owned: &OwnedPartition,
    timestamp_ms: i64,
) -> Option<(i64, i64)> {
    if !owned.log.config().remote_storage {
        return None;
    }
    let tier = shard.tier.partition(owned);
    if !ensure_loaded(shard, &tier, owned).await {
        return None;
    }
    let local_start = owned.log.log_start_offset();
    let candidate = tier
        .manifest
        .borrow()
        .segments
        .iter()
        .find(|s| s.max_timestamp_ms >= timestamp_ms && s.base_offset < local_start)
        .cloned()?;
    let reader = shard.tier.reader.clone()?;
    let mut offset = candidate.base_offset;
    while offset <= candidate.last_offset {
        let bytes = reader
            .read(&tier.path, &candidate, offset, 1 << 20)
            .await
            .ok()?;
        let mut last = None;
        for (header, range) in BatchIter::new(&bytes) {
            if let Some(hit) = bytes
                .get(range)
                .and_then(|b| find_record_by_timestamp(b, timestamp_ms))
            {
                return Some((hit.1, hit.0));
            }
            last = Some(header.last_offset());
        }
        offset = last? + 1;
    }
    None
}
