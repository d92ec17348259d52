//! `RemoteStore`: the object layout over an `object_store` backend.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;

use crate::error::{Result, TieringError};
use crate::manifest::{PartitionManifest, RemoteSegment};

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

    /// Opens the store a `--tier-url` names. `file:///path` is supported here; `s3://`
    /// arrives with the tiering issue.
    pub fn from_url(url: &str) -> Result<RemoteStore> {
        if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path).map_err(|source| TieringError::LocalIo {
                path: path.to_string(),
                source,
            })?;
            let local =
                object_store::local::LocalFileSystem::new_with_prefix(path).map_err(|source| {
                    TieringError::Store {
                        path: path.to_string(),
                        source,
                    }
                })?;
            return Ok(RemoteStore::new(Arc::new(local), ""));
        }
        Err(TieringError::UnsupportedUrl(url.to_string()))
    }

    fn partition_dir(&self, partition: &PartitionPath) -> Path {
        let topic_dir = format!("{}-{}", partition.topic, partition.topic_id.simple());
        let mut path = self.prefix.clone();
        for part in [topic_dir, partition.partition.to_string()] {
            path = path.join(part);
        }
        path
    }

    fn object(&self, partition: &PartitionPath, segment: &RemoteSegment, extension: &str) -> Path {
        self.partition_dir(partition).join(format!(
            "{:020}-{}.{extension}",
            segment.base_offset, segment.unique_id
        ))
    }

    fn manifest_path(&self, partition: &PartitionPath) -> Path {
        self.partition_dir(partition).join("manifest.json")
    }

    /// Uploads a sealed segment's three files, then records it in the manifest. Only after
    /// this returns may the local copy be deleted.
    pub async fn upload_segment(
        &self,
        partition: &PartitionPath,
        segment: &SealedSegment,
    ) -> Result<RemoteSegment> {
        let log = read_local(&segment.log_file)?;
        let remote = RemoteSegment {
            base_offset: segment.base_offset,
            last_offset: segment.last_offset,
            size_bytes: log.len() as u64,
            max_timestamp_ms: segment.max_timestamp_ms,
            unique_id: Uuid::new_v4().simple().to_string(),
        };
        let files = [
            ("log", log),
            ("index", read_local(&segment.index_file)?),
            ("timeindex", read_local(&segment.time_index_file)?),
        ];
        for (extension, bytes) in files {
            let path = self.object(partition, &remote, extension);
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|source| store_error(&path, source))?;
        }
        let mut manifest = self.read_manifest(partition).await?;
        manifest.add(remote.clone());
        self.write_manifest(partition, &manifest).await?;
        Ok(remote)
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

    async fn write_manifest(
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

    /// Reads a byte range of a remote segment's `.log` object (a range GET).
    pub async fn read_log_range(
        &self,
        partition: &PartitionPath,
        segment: &RemoteSegment,
        range: Range<u64>,
    ) -> Result<Bytes> {
        let path = self.object(partition, segment, "log");
        self.store
            .get_range(&path, range)
            .await
            .map_err(|source| store_error(&path, source))
    }
}

fn read_local(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TieringError::LocalIo {
        path: path.display().to_string(),
        source,
    })
}

fn store_error(path: &Path, source: object_store::Error) -> TieringError {
    TieringError::Store {
        path: path.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_then_range_read_through_a_local_directory() {
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let files = ["log", "index", "timeindex"].map(|ext| {
            let path = local.path().join(format!("00000000000000000000.{ext}"));
            std::fs::write(&path, format!("{ext}-bytes")).unwrap();
            path
        });
        let url = format!("file://{}", remote_dir.path().display());
        let store = RemoteStore::from_url(&url).unwrap();
        let partition = PartitionPath {
            topic: "t".into(),
            topic_id: Uuid::new_v4(),
            partition: 3,
        };
        let sealed = SealedSegment {
            base_offset: 0,
            last_offset: 9,
            max_timestamp_ms: 5,
            log_file: files[0].clone(),
            index_file: files[1].clone(),
            time_index_file: files[2].clone(),
        };
        let remote = store.upload_segment(&partition, &sealed).await.unwrap();
        let manifest = store.read_manifest(&partition).await.unwrap();
        assert_eq!(manifest.segments, vec![remote.clone()]);
        let bytes = store
            .read_log_range(&partition, &remote, 0..3)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"log");
        assert!(RemoteStore::from_url("ftp://x").is_err());
    }
}
