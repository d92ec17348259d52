//! Producer ids for idempotent producers (InitProducerId), allocated on shard 0.
//!
//! Ids are handed out from blocks reserved durably in
//! `<data-dir>/__cluster_metadata/producer-id-block` (the end of the last reserved block, as
//! decimal text, written to a temporary file, fdatasync'ed and renamed). After a restart the
//! next id is that end: the unused rest of the old block is skipped, so an id is never
//! handed out twice, as with Kafka's ProducerIdManager blocks. Only shard 0 allocates, so
//! the state is single-threaded; reservations are serialized by an async lock.

use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Ids reserved per durable write.
const BLOCK_SIZE: i64 = 1000;
const BLOCK_FILE: &str = "producer-id-block";

pub struct ProducerIdAllocator {
    path: PathBuf,
    /// The next id to hand out; `None` until the block file has been read.
    next: Cell<Option<i64>>,
    /// End (exclusive) of the reserved block, as on disk.
    block_end: Cell<i64>,
    lock: tokio::sync::Mutex<()>,
}

impl ProducerIdAllocator {
    pub fn new(data_dir: &Path) -> ProducerIdAllocator {
        ProducerIdAllocator {
            path: data_dir.join("__cluster_metadata").join(BLOCK_FILE),
            next: Cell::new(None),
            block_end: Cell::new(0),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether `producer_id` is one this broker may have handed out (below every reserved
    /// block's end): only those get their epoch bumped (KIP-360).
    pub async fn was_allocated(&self, producer_id: i64) -> std::io::Result<bool> {
        let _guard = self.lock.lock().await;
        self.load().await?;
        Ok(producer_id >= 0 && producer_id < self.block_end.get())
    }

    /// A fresh producer id.
    pub async fn allocate(&self) -> std::io::Result<i64> {
        let _guard = self.lock.lock().await;
        self.load().await?;
        let next = self.next.get().unwrap_or(0);
        if next >= self.block_end.get() {
            let end = next + BLOCK_SIZE;
            write_durably(&self.path, end).await?;
            self.block_end.set(end);
        }
        self.next.set(Some(next + 1));
        Ok(next)
    }

    async fn load(&self) -> std::io::Result<()> {
        if self.next.get().is_some() {
            return Ok(());
        }
        let path = self.path.clone();
        let end = tokio::task::spawn_blocking(move || match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(error) => Err(error),
        })
        .await
        .map_err(std::io::Error::other)??;
        self.block_end.set(end.max(0));
        self.next.set(Some(end.max(0)));
        Ok(())
    }
}

/// Temporary file, fdatasync, rename, directory fsync, off the shard's thread.
async fn write_durably(path: &Path, end: i64) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temporary = path.with_extension("tmp");
        {
            let file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut &file, end.to_string().as_bytes())?;
            file.sync_data()?;
        }
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let first = ProducerIdAllocator::new(dir.path());
            assert_eq!(first.allocate().await.unwrap(), 0);
            assert_eq!(first.allocate().await.unwrap(), 1);
            assert!(first.was_allocated(1).await.unwrap());
            // A restart skips the rest of the reserved block.
            let second = ProducerIdAllocator::new(dir.path());
            assert_eq!(second.allocate().await.unwrap(), BLOCK_SIZE);
            assert!(!second.was_allocated(5 * BLOCK_SIZE).await.unwrap());
        });
    }
}
