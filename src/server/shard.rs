//! One shard's state and the mailboxes between shards.
//!
//! A shard's state is single-threaded (`Rc`, `RefCell`); other shards reach it only by sending
//! a job to its mailbox: a closure that runs on the target shard's thread and answers through
//! a oneshot channel (the pattern Seastar calls `submit_to`). Values cross shards by move
//! (`Bytes` without copying).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use tidelog_storage::{FsyncPolicy, IoDriver, Log};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::controller::Controller;
use super::fetch_session::FetchSessionCache;
use crate::catalog::{topic_config, Catalog, TopicMeta};
use crate::config::BrokerConfig;

/// A unit of work for a shard, run on that shard's thread.
pub type Job = Box<dyn FnOnce(Rc<Shard>) + Send>;

/// Mailbox capacity per shard: jobs queued before senders wait (back-pressure).
pub const MAILBOX_CAPACITY: usize = 4096;

/// The target shard is gone (shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("shard {0} is not accepting work")]
pub struct ShardUnavailable(pub usize);

/// Handles to every shard's mailbox. Shared by all shards (`Arc`); sending is the only thing
/// it allows.
pub struct ShardSet {
    mailboxes: Vec<mpsc::Sender<Job>>,
}

impl ShardSet {
    pub fn new(mailboxes: Vec<mpsc::Sender<Job>>) -> ShardSet {
        ShardSet { mailboxes }
    }

    pub fn len(&self) -> usize {
        self.mailboxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.mailboxes.is_empty()
    }

    /// The shard owning a partition: a stable hash of the topic id picks the shard of
    /// partition 0, and the topic's partitions follow round-robin from there, so a topic's
    /// partitions spread evenly over the shards.
    pub fn owner_of(&self, topic_id: &Uuid, partition: i32) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in topic_id.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let shards = self.mailboxes.len() as u64;
        ((hash % shards + partition.max(0) as u64) % shards) as usize
    }

    /// Sends a job without waiting for any answer (used to stop shards).
    pub async fn post(&self, target: usize, job: Job) {
        if let Some(mailbox) = self.mailboxes.get(target) {
            let _ = mailbox.send(job).await;
        }
    }

    /// Runs `work` on shard `target` and returns its result. Callable from any thread.
    pub async fn call<F, Fut, R>(&self, target: usize, work: F) -> Result<R, ShardUnavailable>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |shard| {
            tokio::task::spawn_local(async move {
                let _ = reply_tx.send(work(shard).await);
            });
        });
        let mailbox = self.mailboxes.get(target).ok_or(ShardUnavailable(target))?;
        mailbox
            .send(job)
            .await
            .map_err(|_| ShardUnavailable(target))?;
        reply_rx.await.map_err(|_| ShardUnavailable(target))
    }
}

/// A partition this shard owns.
pub struct OwnedPartition {
    pub topic: Arc<TopicMeta>,
    pub index: i32,
    pub log: Rc<Log>,
}

pub struct Shard {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    pub shards: Arc<ShardSet>,
    pub io: Rc<IoDriver>,
    pub fsync: FsyncPolicy,
    catalog: RefCell<Arc<Catalog>>,
    partitions: RefCell<HashMap<(Uuid, i32), Rc<OwnedPartition>>>,
    pub fetch_sessions: RefCell<FetchSessionCache>,
    /// The consumer groups whose `__consumer_offsets` partitions this shard owns.
    pub groups: crate::coordinator::Coordinator,
    /// Tiered storage for the partitions this shard owns.
    pub tier: crate::tier::ShardTier,
    controller: Option<Rc<Controller>>,
    /// Producer ids for InitProducerId; only shard 0 (with the controller) has one.
    pub producer_ids: Option<Rc<super::producer_ids::ProducerIdAllocator>>,
    shutdown_tx: watch::Sender<bool>,
    /// Open client connections, for draining at shutdown.
    pub connection_count: Cell<usize>,
    /// Set by the last shutdown phase: the shard's thread leaves its mailbox loop.
    pub exit_requested: Cell<bool>,
}

impl Shard {
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        shards: Arc<ShardSet>,
        io: Rc<IoDriver>,
        catalog: Arc<Catalog>,
        controller: Option<Rc<Controller>>,
    ) -> Shard {
        let slots = config.fetch_session_cache_slots;
        let fsync = config.fsync;
        let producer_ids = controller.as_ref().map(|_| {
            Rc::new(super::producer_ids::ProducerIdAllocator::new(
                &config.data_dir,
            ))
        });
        let tier = crate::tier::ShardTier::new(&config);
        Shard {
            id,
            config,
            tier,
            shards,
            io,
            fsync,
            catalog: RefCell::new(catalog),
            partitions: RefCell::new(HashMap::new()),
            fetch_sessions: RefCell::new(FetchSessionCache::new(id, slots)),
            groups: crate::coordinator::Coordinator::default(),
            controller,
            producer_ids,
            shutdown_tx: watch::channel(false).0,
            connection_count: Cell::new(0),
            exit_requested: Cell::new(false),
        }
    }

    /// The latest metadata snapshot this shard has applied.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// The controller; only shard 0 has one.
    pub fn controller(&self) -> Option<Rc<Controller>> {
        self.controller.clone()
    }

    /// The log of a partition this shard owns.
    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<Rc<OwnedPartition>> {
        self.partitions
            .borrow()
            .get(&(*topic_id, partition))
            .cloned()
    }

    pub fn owned_partitions(&self) -> Vec<Rc<OwnedPartition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Runs `work` on shard `target`: directly when it is this shard, else through its
    /// mailbox.
    pub async fn run_on<F, Fut, R>(
        self: &Rc<Self>,
        target: usize,
        work: F,
    ) -> Result<R, ShardUnavailable>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            Ok(work(self.clone()).await)
        } else {
            self.shards.call(target, work).await
        }
    }

    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Makes `catalog` this shard's view: deletes the logs of partitions that are gone, opens
    /// those of new partitions it owns, and applies changed configs. Called at start and by
    /// the controller after each change, one at a time.
    pub async fn apply_catalog(self: &Rc<Self>, catalog: Arc<Catalog>) {
        let mut wanted: HashSet<(Uuid, i32)> = HashSet::new();
        for topic in catalog.topics_by_id.values() {
            for partition in 0..topic.partition_count {
                if self.shards.owner_of(&topic.id, partition) == self.id {
                    wanted.insert((topic.id, partition));
                }
            }
        }
        let gone: Vec<Rc<OwnedPartition>> = {
            let mut partitions = self.partitions.borrow_mut();
            let keys: Vec<_> = partitions
                .keys()
                .filter(|key| !wanted.contains(key))
                .copied()
                .collect();
            keys.iter()
                .filter_map(|key| partitions.remove(key))
                .collect()
        };
        for owned in gone {
            self.tier.forget_deleted(&owned);
            if let Err(error) = owned.log.delete().await {
                tracing::error!(dir = %owned.log.dir().display(), %error, "could not delete a deleted topic's log");
            }
        }
        for (topic_id, partition) in wanted {
            let Some(topic) = catalog.topic_by_id(&topic_id).cloned() else {
                continue;
            };
            let config = topic_config::log_config(
                &catalog.effective_topic_configs(&topic),
                self.fsync,
                self.config.tier.remote_storage_default,
            );
            let existing = self.partition(&topic_id, partition);
            match existing {
                Some(owned) => {
                    if owned.log.config() != config {
                        owned.log.set_config(config);
                    }
                    if !Arc::ptr_eq(&owned.topic, &topic) {
                        self.partitions.borrow_mut().insert(
                            (topic_id, partition),
                            Rc::new(OwnedPartition {
                                topic,
                                index: partition,
                                log: owned.log.clone(),
                            }),
                        );
                    }
                }
                None => {
                    let dir = self.partition_dir(&topic.name, partition);
                    if let Err(error) = prepare_partition_dir(&dir, &topic_id) {
                        tracing::error!(dir = %dir.display(), %error, "cannot prepare partition directory");
                        continue;
                    }
                    match Log::open(&dir, config, self.io.clone()).await {
                        Ok(log) => {
                            self.partitions.borrow_mut().insert(
                                (topic_id, partition),
                                Rc::new(OwnedPartition {
                                    topic,
                                    index: partition,
                                    log,
                                }),
                            );
                        }
                        Err(error) => {
                            tracing::error!(dir = %dir.display(), %error, "cannot open partition log");
                        }
                    }
                }
            }
        }
        *self.catalog.borrow_mut() = catalog;
    }

    /// A receiver that turns `true` when the shard begins to shut down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown_tx.borrow()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    /// Closes every owned log cleanly (indexes written, clean-shutdown marker left).
    pub async fn close_logs(&self) {
        let owned: Vec<_> = self
            .partitions
            .borrow_mut()
            .drain()
            .map(|(_, p)| p)
            .collect();
        for partition in owned {
            if let Err(error) = partition.log.close().await {
                tracing::error!(dir = %partition.log.dir().display(), %error, "error closing log");
            }
        }
    }
}

/// Makes sure `dir` holds this topic id's partition: a directory left by a deleted topic of
/// the same name (a crash between the delete and the removal) is removed first. Writes
/// Kafka's `partition.metadata` file.
fn prepare_partition_dir(dir: &std::path::Path, topic_id: &Uuid) -> std::io::Result<()> {
    let metadata_path = dir.join("partition.metadata");
    let expected = format!(
        "version: 0\ntopic_id: {}\n",
        crate::catalog::store::base64_url(topic_id.as_bytes())
    );
    match std::fs::read_to_string(&metadata_path) {
        Ok(text) if text == expected => return Ok(()),
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "removing a stale partition directory of an earlier topic with this name");
            std::fs::remove_dir_all(dir)?;
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&metadata_path, expected)?;
    Ok(())
}
