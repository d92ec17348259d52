//! The metadata controller: the one writer of the metadata log, living on shard 0.
//!
//! A change is planned against the current catalog, written durably to the metadata log,
//! applied to a new catalog snapshot, and handed to every shard; the caller is answered only
//! when all shards have applied it, so a topic created on one connection is usable at once
//! on every other. Changes are serialized by an async lock, so planning never races.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::shard::Shard;
use crate::catalog::store::MetadataStore;
use crate::catalog::{Catalog, MetadataRecord};

pub struct Controller {
    store: RefCell<Option<MetadataStore>>,
    catalog: RefCell<Arc<Catalog>>,
    lock: tokio::sync::Mutex<()>,
}

impl Controller {
    pub fn new(store: MetadataStore, catalog: Arc<Catalog>) -> Controller {
        Controller {
            store: RefCell::new(Some(store)),
            catalog: RefCell::new(catalog),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Plans a change against the current catalog (`plan` returns the records to write and
    /// the answer for the caller), writes and publishes it, and returns the answer.
    pub async fn update<T>(
        &self,
        shard: &Rc<Shard>,
        plan: impl FnOnce(&Catalog) -> (Vec<MetadataRecord>, T),
    ) -> std::io::Result<T> {
        let _guard = self.lock.lock().await;
        let current = self.catalog.borrow().clone();
        let (records, answer) = plan(&current);
        if records.is_empty() {
            return Ok(answer);
        }
        let store = self
            .store
            .borrow_mut()
            .take()
            .ok_or_else(|| std::io::Error::other("metadata store unavailable"))?;
        // The write and its fdatasync block: do them off the shard's thread.
        let to_write = records.clone();
        let (store, written) = tokio::task::spawn_blocking(move || {
            let mut store = store;
            let written = store.append(&to_write);
            (store, written)
        })
        .await
        .map_err(std::io::Error::other)?;
        *self.store.borrow_mut() = Some(store);
        written?;

        let mut next = Catalog::clone(&current);
        for record in &records {
            next.apply(record);
        }
        let next = Arc::new(next);
        *self.catalog.borrow_mut() = next.clone();
        publish(shard, next).await;
        Ok(answer)
    }
}

/// Hands a snapshot to every shard and waits until all have applied it.
async fn publish(shard: &Rc<Shard>, catalog: Arc<Catalog>) {
    let mut applied = Vec::new();
    for target in 0..shard.shards.len() {
        let catalog = catalog.clone();
        applied.push(shard.run_on(target, move |s| async move {
            s.apply_catalog(catalog).await;
        }));
    }
    for result in futures_util::future::join_all(applied).await {
        if let Err(error) = result {
            tracing::warn!(%error, "a shard did not apply the metadata change");
        }
    }
}
