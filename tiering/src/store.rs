//! `RemoteStore`: the object layout over an `object_store` backend — uploads, the manifest,
//! deletes and listings of one partition's directory. Reads through the cache are
//! `reader.rs`; this module knows nothing of record batches.

use std::collections::HashSet;
use std::io::Read;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use uuid::Uuid;

use crate::config::{self, TierConfig};
use crate::error::{Result, TieringError};
use crate::manifest::{PartitionManifest, RemoteSegment};

/// A `.log` larger than this goes up as a multipart upload, so no single request carries a
/// whole segment (S3 caps a single PUT at 5 GiB, and a failed part is retried alone).
pub const MULTIPART_THRESHOLD_BYTES: u64 = 8 << 20;
/// Part size of multipart uploads: above S3's 5 MiB minimum for every part but the last.
pub const MULTIPART_PART_BYTES: usize = 8 << 20;
/// Parts in flight per upload; with the part being read, bounds an upload's memory to
/// `(MULTIPART_PARTS_IN_FLIGHT + 1) * MULTIPART_PART_BYTES`.
const MULTIPART_PARTS_IN_FLIGHT: usize = 2;

/// The objects of one remote segment, by extension.
pub(crate) const SEGMENT_EXTENSIONS: [&str; 3] = ["log", "index", "timeindex"];
const MANIFEST_NAME: &str = "manifest.json";

/// Where a partition's objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPath {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// A sealed local segment, as the storage crate describes it.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub log_file: PathBuf,
    pub index_file: PathBuf,
    pub time_index_file: PathBuf,
}

#[derive(Debug)]
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl RemoteStore {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> RemoteStore {
        RemoteStore {
            store,
            prefix: Path::from(prefix),
        }
    }

    /// Opens a `file:///path` store (the directory is created). For S3 use `from_config`.
    pub fn from_url(url: &str) -> Result<RemoteStore> {
        RemoteStore::from_config(&TierConfig {
            url: url.to_string(),
            ..TierConfig::default()
        })
    }

    /// Opens the store the `--tier-*` flags name: `file:///path` (a local directory, created)
    /// or `s3://bucket[/prefix]` (AWS_* variables first, the flags override them; bounded
    /// timeouts and few retries, see `config.rs`). Builds the client only: no request is made,
    /// so an unreachable store shows at the first upload or read, not here.
    pub fn from_config(config: &TierConfig) -> Result<RemoteStore> {
        let opened = config::open(config)?;
        Ok(RemoteStore::new(opened.store, &opened.prefix))
    }

    fn partition_dir(&self, partition: &PartitionPath) -> Path {
        let topic_dir = format!("{}-{}", partition.topic, partition.topic_id.simple());
        let mut path = self.prefix.clone();
        for part in [topic_dir, partition.partition.to_string()] {
            path = path.join(part);
        }
        path
    }

    pub(crate) fn object(
        &self,
        partition: &PartitionPath,
        segment: &RemoteSegment,
        extension: &str,
    ) -> Path {
        self.partition_dir(partition).join(format!(
            "{:020}-{}.{extension}",
            segment.base_offset, segment.unique_id
        ))
    }

    fn manifest_path(&self, partition: &PartitionPath) -> Path {
        self.partition_dir(partition).join(MANIFEST_NAME)
    }

    /// Uploads a sealed segment's objects, then records it in the manifest. Only after this
    /// returns may the local copy be deleted. Read-modify-write of the manifest: the caller
    /// must be the partition's only writer.
    pub async fn upload_segment(
        &self,
        partition: &PartitionPath,
        segment: &SealedSegment,
    ) -> Result<RemoteSegment> {
        let remote = self.upload_segment_objects(partition, segment).await?;
        let mut manifest = self.read_manifest(partition).await?;
        manifest.add(remote.clone());
        if let Err(error) = self.write_manifest(partition, &manifest).await {
            // Unlisted objects are orphans; removing them now saves a cleanup pass. If this
            // fails too, `cleanup_orphans` removes them later.
            let _ = self.delete_segment_objects(partition, &remote).await;
            return Err(error);
        }
        Ok(remote)
    }

    /// Uploads the segment's `.log` (multipart above `MULTIPART_THRESHOLD_BYTES`, one PUT
    /// otherwise), `.index` and `.timeindex` under names no other upload uses, so a retry never
    /// overwrites objects a reader may be using. Does not touch the manifest: until the caller
    /// lists the returned segment there, its objects are orphans. On failure, the objects
    /// already stored are deleted as far as the store lets us.
    pub async fn upload_segment_objects(
        &self,
        partition: &PartitionPath,
        segment: &SealedSegment,
    ) -> Result<RemoteSegment> {
        let mut remote = RemoteSegment {
            base_offset: segment.base_offset,
            last_offset: segment.last_offset,
            size_bytes: 0,
            max_timestamp_ms: segment.max_timestamp_ms,
            unique_id: Uuid::new_v4().simple().to_string(),
        };
        match self.upload_files(partition, segment, &remote).await {
            Ok(size_bytes) => {
                remote.size_bytes = size_bytes;
                Ok(remote)
            }
            Err(error) => {
                let _ = self.delete_segment_objects(partition, &remote).await;
                Err(error)
            }
        }
    }

    /// Returns the size of the uploaded `.log`.
    async fn upload_files(
        &self,
        partition: &PartitionPath,
        segment: &SealedSegment,
        remote: &RemoteSegment,
    ) -> Result<u64> {
        let log_path = self.object(partition, remote, "log");
        let size_bytes = self.upload_log(&segment.log_file, &log_path).await?;
        for (extension, file) in [
            ("index", &segment.index_file),
            ("timeindex", &segment.time_index_file),
        ] {
            let path = self.object(partition, remote, extension);
            let bytes = read_local(file.clone()).await?;
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|source| store_error(&path, source))?;
        }
        Ok(size_bytes)
    }

    async fn upload_log(&self, file: &std::path::Path, path: &Path) -> Result<u64> {
        let file_path = file.to_path_buf();
        let file_len =
            blocking(file, move || std::fs::metadata(&file_path).map(|m| m.len())).await?;
        if file_len <= MULTIPART_THRESHOLD_BYTES {
            let bytes = read_local(file.to_path_buf()).await?;
            let size_bytes = bytes.len() as u64;
            self.store
                .put(path, PutPayload::from(bytes))
                .await
                .map_err(|source| store_error(path, source))?;
            return Ok(size_bytes);
        }
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|source| store_error(path, source))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
        match stream_file_into(file, &mut writer).await {
            Ok(size_bytes) => {
                writer
                    .finish()
                    .await
                    .map_err(|source| store_error(path, source))?;
                Ok(size_bytes)
            }
            Err(error) => {
                // Parts already stored cost money on S3 until the upload is aborted.
                let _ = writer.abort().await;
                Err(error.with_store_path(path))
            }
        }
    }

    /// The partition's manifest (empty if none was written yet).
    pub async fn read_manifest(&self, partition: &PartitionPath) -> Result<PartitionManifest> {
        let path = self.manifest_path(partition);
        match self.store.get(&path).await {
            Ok(found) => {
                let bytes = found
                    .bytes()
                    .await
                    .map_err(|source| store_error(&path, source))?;
                serde_json::from_slice(&bytes).map_err(|e| TieringError::CorruptManifest {
                    path: path.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(PartitionManifest::default()),
            Err(source) => Err(store_error(&path, source)),
        }
    }

    /// Replaces the partition's manifest with one PUT, which object stores make atomic:
    /// readers see the old manifest or the new one, never a mix.
    pub async fn write_manifest(
        &self,
        partition: &PartitionPath,
        manifest: &PartitionManifest,
    ) -> Result<()> {
        let path = self.manifest_path(partition);
        let json = serde_json::to_vec(manifest).map_err(|e| TieringError::CorruptManifest {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        self.store
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|source| store_error(&path, source))?;
        Ok(())
    }

    /// Deletes a segment's objects. Objects already gone are fine: deletes are retried after
    /// partial failures, and an upload may have failed before storing all three.
    pub async fn delete_segment_objects(
        &self,
        partition: &PartitionPath,
        segment: &RemoteSegment,
    ) -> Result<()> {
        let paths = SEGMENT_EXTENSIONS
            .iter()
            .map(|extension| self.object(partition, segment, extension))
            .collect();
        self.delete_objects(paths).await.map(|_| ())
    }

    /// Deletes the objects under the partition's directory that `manifest` does not reference:
    /// what a crash between upload and manifest update left behind. Returns how many. Must not
    /// run concurrently with an upload of the same partition, whose objects are not listed yet.
    pub async fn cleanup_orphans(
        &self,
        partition: &PartitionPath,
        manifest: &PartitionManifest,
    ) -> Result<usize> {
        let mut referenced: HashSet<Path> = manifest
            .segments
            .iter()
            .flat_map(|segment| {
                SEGMENT_EXTENSIONS
                    .iter()
                    .map(move |extension| self.object(partition, segment, extension))
            })
            .collect();
        referenced.insert(self.manifest_path(partition));
        let orphans: Vec<Path> = self
            .list_partition(partition)
            .await?
            .into_iter()
            .map(|meta| meta.location)
            .filter(|location| !referenced.contains(location))
            .collect();
        if !orphans.is_empty() {
            tracing::info!(
                topic = %partition.topic,
                partition = partition.partition,
                count = orphans.len(),
                "deleting orphaned remote objects"
            );
        }
        self.delete_objects(orphans).await
    }

    /// Deletes everything of the partition (its topic was deleted). The manifest goes first,
    /// so a crash part way leaves orphans, never a manifest naming missing objects.
    pub async fn delete_partition(&self, partition: &PartitionPath) -> Result<()> {
        self.delete_objects(vec![self.manifest_path(partition)])
            .await?;
        let rest = self
            .list_partition(partition)
            .await?
            .into_iter()
            .map(|meta| meta.location)
            .collect();
        self.delete_objects(rest).await.map(|_| ())
    }

    /// Total bytes stored under the partition's directory (observability and tests).
    pub async fn stored_bytes(&self, partition: &PartitionPath) -> Result<u64> {
        Ok(self
            .list_partition(partition)
            .await?
            .iter()
            .map(|meta| meta.size)
            .sum())
    }

    /// Reads a byte range of a remote segment's `.log` object (a range GET).
    pub async fn read_log_range(
        &self,
        partition: &PartitionPath,
        segment: &RemoteSegment,
        range: Range<u64>,
    ) -> Result<Bytes> {
        self.get_range(&self.object(partition, segment, "log"), range)
            .await
    }

    pub(crate) async fn get_range(&self, path: &Path, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(path, range)
            .await
            .map_err(|source| store_error(path, source))
    }

    /// The whole object, or `None` when it does not exist.
    pub(crate) async fn get_if_exists(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.store.get(path).await {
            Ok(found) => found
                .bytes()
                .await
                .map(Some)
                .map_err(|source| store_error(path, source)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(store_error(path, source)),
        }
    }

    async fn list_partition(
        &self,
        partition: &PartitionPath,
    ) -> Result<Vec<object_store::ObjectMeta>> {
        let dir = self.partition_dir(partition);
        self.store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| store_error(&dir, source))
    }

    /// Deletes `paths` (in bulk where the store can), counting those that existed.
    async fn delete_objects(&self, paths: Vec<Path>) -> Result<usize> {
        if paths.is_empty() {
            return Ok(0);
        }
        let first = paths[0].clone();
        let mut results = self
            .store
            .delete_stream(futures_util::stream::iter(paths.into_iter().map(Ok)).boxed());
        let mut deleted = 0;
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                // Bulk deletes report some errors for the whole call, not per path.
                Err(source) => return Err(store_error(&first, source)),
            }
        }
        Ok(deleted)
    }
}

/// Feeds the file into the multipart writer part by part, never holding more than the parts
/// in flight plus one. Returns the bytes read.
async fn stream_file_into(file: &std::path::Path, writer: &mut WriteMultipart) -> Result<u64> {
    let file_path = file.to_path_buf();
    let mut handle = Some(blocking(file, move || std::fs::File::open(&file_path)).await?);
    let mut total_bytes = 0u64;
    loop {
        writer
            .wait_for_capacity(MULTIPART_PARTS_IN_FLIGHT)
            .await
            .map_err(|source| store_error(&Path::from(""), source))?;
        let Some(open) = handle.take() else {
            break;
        };
        let (open, part) = blocking(file, move || {
            let mut part = Vec::with_capacity(MULTIPART_PART_BYTES);
            let mut reader = open.take(MULTIPART_PART_BYTES as u64);
            reader.read_to_end(&mut part)?;
            Ok((reader.into_inner(), part))
        })
        .await?;
        if part.is_empty() {
            break;
        }
        total_bytes += part.len() as u64;
        // A short part is the last one: don't read past what was the end of the file.
        if part.len() == MULTIPART_PART_BYTES {
            handle = Some(open);
        }
        writer.put(Bytes::from(part));
    }
    Ok(total_bytes)
}

impl TieringError {
    /// Names the object for store errors raised where only the upload knew it.
    fn with_store_path(self, path: &Path) -> TieringError {
        match self {
            TieringError::Store { source, .. } => store_error(path, source),
            other => other,
        }
    }
}

/// Runs blocking file I/O off the caller's thread: the broker's shards are single-threaded
/// runtimes that must keep serving while a segment of a gigabyte is read.
async fn blocking<T: Send + 'static>(
    file: &std::path::Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let local_error = |source| TieringError::LocalIo {
        path: file.display().to_string(),
        source,
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| local_error(std::io::Error::other(join)))?
        .map_err(local_error)
}

async fn read_local(file: PathBuf) -> Result<Vec<u8>> {
    let path = file.clone();
    blocking(&path, move || std::fs::read(&file)).await
}

pub(crate) fn store_error(path: &Path, source: object_store::Error) -> TieringError {
    TieringError::Store {
        path: path.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::*;
    use crate::testing::{partition, random_shapes, write_segment, CountingStore, Rng};

    fn counting_in_memory() -> (Arc<CountingStore>, RemoteStore) {
        let counting = Arc::new(CountingStore::new(
            Arc::new(InMemory::new()),
            Duration::ZERO,
        ));
        let store = RemoteStore::new(counting.clone(), "cluster/tiered");
        (counting, store)
    }

    #[tokio::test]
    async fn upload_segment_lists_it_in_the_manifest_and_range_reads_work() {
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let written = write_segment(local.path(), 0, &[(3, 10), (2, 20)]);
        let store =
            RemoteStore::from_url(&format!("file://{}", remote_dir.path().display())).unwrap();
        let partition = partition("t", 3);
        let remote = store
            .upload_segment(&partition, &written.sealed)
            .await
            .unwrap();
        assert_eq!(remote.size_bytes, written.log.len() as u64);
        assert_eq!((remote.base_offset, remote.last_offset), (0, 4));
        let manifest = store.read_manifest(&partition).await.unwrap();
        assert_eq!(manifest.segments, vec![remote.clone()]);
        let bytes = store
            .read_log_range(&partition, &remote, 0..8)
            .await
            .unwrap();
        assert_eq!(&bytes[..], &written.log[..8]);
        assert!(RemoteStore::from_url("ftp://x").is_err());
    }

    #[tokio::test]
    async fn a_large_log_goes_up_multipart_and_a_small_one_in_one_put() {
        let seed = 7;
        println!("seed {seed}");
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let shapes = random_shapes(&mut Rng::new(seed), (9 << 20) + 123_457);
        let large = write_segment(local.path(), 0, &shapes);
        assert!(large.log.len() as u64 > MULTIPART_THRESHOLD_BYTES);
        let small = write_segment(local.path(), 1_000_000, &[(5, 100)]);

        let local_store = config::open_local(&remote_dir.path().display().to_string())
            .unwrap()
            .store;
        let backends: [(&str, Arc<dyn ObjectStore>); 2] = [
            ("in-memory", Arc::new(InMemory::new())),
            ("local directory", local_store),
        ];
        for (name, backend) in backends {
            let counting = Arc::new(CountingStore::new(backend, Duration::ZERO));
            let store = RemoteStore::new(counting.clone(), "");
            let partition = partition("big", 0);
            let remote = store
                .upload_segment_objects(&partition, &large.sealed)
                .await
                .unwrap();
            assert_eq!(
                counting.multipart_uploads.load(Ordering::SeqCst),
                1,
                "{name}"
            );
            assert_eq!(remote.size_bytes, large.log.len() as u64, "{name}");
            let stored = store
                .read_log_range(&partition, &remote, 0..remote.size_bytes)
                .await
                .unwrap();
            assert!(
                stored[..] == large.log[..],
                "{name}: multipart object differs"
            );
            let index = store
                .get_if_exists(&store.object(&partition, &remote, "index"))
                .await
                .unwrap();
            assert_eq!(
                index.as_deref(),
                Some(&std::fs::read(&large.sealed.index_file).unwrap()[..])
            );
            assert!(
                store
                    .read_manifest(&partition)
                    .await
                    .unwrap()
                    .segments
                    .is_empty(),
                "{name}: upload_segment_objects must not touch the manifest"
            );

            store
                .upload_segment_objects(&partition, &small.sealed)
                .await
                .unwrap();
            assert_eq!(
                counting.multipart_uploads.load(Ordering::SeqCst),
                1,
                "{name}"
            );
            assert_eq!(
                store.stored_bytes(&partition).await.unwrap(),
                (large.log.len() + small.log.len()) as u64
                    + [&large, &small]
                        .iter()
                        .map(|s| {
                            std::fs::metadata(&s.sealed.index_file).unwrap().len()
                                + std::fs::metadata(&s.sealed.time_index_file).unwrap().len()
                        })
                        .sum::<u64>(),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_upload_leaves_no_objects_behind() {
        let local = tempfile::tempdir().unwrap();
        let written = write_segment(local.path(), 0, &[(2, 50)]);
        let mut sealed = written.sealed.clone();
        sealed.time_index_file = local.path().join("missing.timeindex");
        let (_, store) = counting_in_memory();
        let partition = partition("t", 0);
        let error = store
            .upload_segment_objects(&partition, &sealed)
            .await
            .unwrap_err();
        assert!(matches!(error, TieringError::LocalIo { .. }), "{error}");
        assert_eq!(store.stored_bytes(&partition).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn orphan_cleanup_keeps_listed_objects_and_removes_the_rest() {
        let local = tempfile::tempdir().unwrap();
        let listed = write_segment(local.path(), 0, &[(3, 10)]);
        let unlisted = write_segment(local.path(), 3, &[(2, 10)]);
        let (counting, store) = counting_in_memory();
        let partition = partition("t", 1);
        let neighbour = partition_like(&partition, 2);

        let kept = store
            .upload_segment(&partition, &listed.sealed)
            .await
            .unwrap();
        // A crash between upload and manifest update, twice for the same segment (a retry).
        let orphan_a = store
            .upload_segment_objects(&partition, &unlisted.sealed)
            .await
            .unwrap();
        let orphan_b = store
            .upload_segment_objects(&partition, &unlisted.sealed)
            .await
            .unwrap();
        assert_ne!(orphan_a.unique_id, orphan_b.unique_id);
        let stray = store.partition_dir(&partition).join("stray.tmp");
        counting
            .put(&stray, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        store
            .upload_segment(&neighbour, &unlisted.sealed)
            .await
            .unwrap();

        let manifest = store.read_manifest(&partition).await.unwrap();
        assert_eq!(
            store.cleanup_orphans(&partition, &manifest).await.unwrap(),
            7
        );
        assert_eq!(
            store.cleanup_orphans(&partition, &manifest).await.unwrap(),
            0
        );
        assert_eq!(store.read_manifest(&partition).await.unwrap(), manifest);
        for extension in SEGMENT_EXTENSIONS {
            let kept_object = store.object(&partition, &kept, extension);
            assert!(store.get_if_exists(&kept_object).await.unwrap().is_some());
            let orphan_object = store.object(&partition, &orphan_a, extension);
            assert!(store.get_if_exists(&orphan_object).await.unwrap().is_none());
        }
        let neighbour_manifest = store.read_manifest(&neighbour).await.unwrap();
        assert_eq!(neighbour_manifest.segments.len(), 1);
        assert_eq!(
            store
                .cleanup_orphans(&neighbour, &neighbour_manifest)
                .await
                .unwrap(),
            0,
            "another partition's objects are not this one's orphans"
        );
    }

    fn partition_like(partition: &PartitionPath, index: i32) -> PartitionPath {
        PartitionPath {
            partition: index,
            ..partition.clone()
        }
    }

    #[tokio::test]
    async fn delete_partition_removes_everything_of_that_partition_only() {
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let first = write_segment(local.path(), 0, &[(3, 10)]);
        let second = write_segment(local.path(), 3, &[(2, 1000)]);
        let store =
            RemoteStore::from_url(&format!("file://{}", remote_dir.path().display())).unwrap();
        let doomed = partition("t", 1);
        // Partition 10 shares the prefix "1" as a string, not as a path segment.
        let survivor = partition_like(&doomed, 10);
        for sealed in [&first.sealed, &second.sealed] {
            store.upload_segment(&doomed, sealed).await.unwrap();
            store.upload_segment(&survivor, sealed).await.unwrap();
        }
        store
            .upload_segment_objects(&doomed, &first.sealed)
            .await
            .unwrap();
        let survivor_bytes = store.stored_bytes(&survivor).await.unwrap();
        assert!(store.stored_bytes(&doomed).await.unwrap() > survivor_bytes);

        store.delete_partition(&doomed).await.unwrap();
        assert_eq!(store.stored_bytes(&doomed).await.unwrap(), 0);
        assert!(store
            .read_manifest(&doomed)
            .await
            .unwrap()
            .segments
            .is_empty());
        assert_eq!(store.stored_bytes(&survivor).await.unwrap(), survivor_bytes);
        assert_eq!(
            store.read_manifest(&survivor).await.unwrap().segments.len(),
            2
        );
        // Deleting what is already gone is not an error (a retried topic deletion).
        store.delete_partition(&doomed).await.unwrap();
    }

    #[tokio::test]
    async fn delete_segment_objects_tolerates_missing_objects() {
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let written = write_segment(local.path(), 0, &[(3, 10)]);
        let store =
            RemoteStore::from_url(&format!("file://{}", remote_dir.path().display())).unwrap();
        let partition = partition("t", 0);
        let remote = store
            .upload_segment_objects(&partition, &written.sealed)
            .await
            .unwrap();
        let index = store.object(&partition, &remote, "index");
        store.store.delete(&index).await.unwrap();
        store
            .delete_segment_objects(&partition, &remote)
            .await
            .unwrap();
        assert_eq!(store.stored_bytes(&partition).await.unwrap(), 0);
        store
            .delete_segment_objects(&partition, &remote)
            .await
            .unwrap();
    }
}
