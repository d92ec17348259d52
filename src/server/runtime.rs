//! Starting the shards, waiting for a signal, and stopping them in order.
//!
//! Shutdown runs in two phases across all shards: first every shard stops accepting and
//! drains its connections (in-flight requests are answered), then every shard closes its
//! logs. Doing the phases across all shards keeps a connection on one shard from forwarding
//! to a shard whose logs are already closed.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tidelog_storage::{IoDriver, IoEngine};
use tokio::sync::mpsc;

use super::connection;
use super::controller::Controller;
use super::listener::{bind_reuseport, pin_current_thread};
use super::shard::{Job, Shard, ShardSet, MAILBOX_CAPACITY};
use crate::catalog::store::MetadataStore;
use crate::config::{BrokerConfig, IoEngineChoice};

/// How long connections get to finish their in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the broker until SIGINT or SIGTERM.
pub fn run(config: BrokerConfig) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let config = Arc::new(config);
    // Handlers first, so that a signal during start-up is not fatal by default action.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut terminate, mut interrupt) = signals.block_on(async {
        anyhow::Ok((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    raise_open_file_limit();
    keep_large_buffers_in_the_heap();
    let (store, catalog) = MetadataStore::open(&config.data_dir, config.node_id)
        .map_err(|e| anyhow::anyhow!("cannot open data dir {}: {e}", config.data_dir.display()))?;
    let catalog = Arc::new(catalog);

    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..config.shard_count {
        let (tx, rx) = mpsc::channel::<Job>(MAILBOX_CAPACITY);
        senders.push(tx);
        receivers.push(rx);
    }
    let shards = Arc::new(ShardSet::new(senders));

    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let mut threads = Vec::new();
    let mut store = Some(store);
    for (id, mailbox) in receivers.into_iter().enumerate() {
        let config = config.clone();
        let shards = shards.clone();
        let catalog = catalog.clone();
        let store = if id == 0 { store.take() } else { None };
        let ready_tx = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("shard-{id}"))
            .spawn(move || shard_main(id, config, shards, catalog, store, mailbox, ready_tx))?;
        threads.push(thread);
    }
    drop(ready_tx);
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                stop_all(&shards);
                return Err(error);
            }
            Err(_) => return Err(anyhow::anyhow!("a shard thread died while starting")),
        }
    }
    tracing::info!(
        listen = %config.listen,
        advertised = %format!("{}:{}", config.advertised_host, config.advertised_port),
        shards = config.shard_count,
        data_dir = %config.data_dir.display(),
        "tidelog started"
    );

    signals.block_on(async {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
        }
        shutdown(&shards).await;
    });
    drop(shards);
    for thread in threads {
        let _ = thread.join();
    }
    tracing::info!("tidelog stopped");
    Ok(())
}

/// Request frames and fetch reads are buffers of up to a few MiB. glibc serves allocations
/// above its mmap threshold (128 KiB at first) with fresh mappings, so every such buffer costs
/// page faults and the kernel zeroing its pages (13% of broker CPU in a catch-up read profile).
/// A high threshold keeps them in the shard's heap arena, where freed buffers are reused.
fn keep_large_buffers_in_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before the shard threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Raises the soft limit on open files to the hard limit: every partition keeps its active
/// segment open and every client a socket, and the common soft default (1024) would cap a
/// broker at a few hundred partitions. Said once in the log.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return;
            }
        }
        tracing::info!(
            soft_before = before,
            limit = limit.rlim_cur,
            "open file limit"
        );
    }
}

async fn shutdown(shards: &Arc<ShardSet>) {
    let drains: Vec<_> = (0..shards.len())
        .map(|id| {
            shards.call(id, |shard| async move {
                shard.begin_shutdown();
                shard.groups.abort_waiters();
                connection::drain(&shard, DRAIN_TIMEOUT).await;
            })
        })
        .collect();
    futures_util::future::join_all(drains).await;
    let closes: Vec<_> = (0..shards.len())
        .map(|id| shards.call(id, |shard| async move { shard.close_logs().await }))
        .collect();
    futures_util::future::join_all(closes).await;
    for id in 0..shards.len() {
        shards
            .post(id, Box::new(|shard| shard.exit_requested.set(true)))
            .await;
    }
}

/// Asks every shard to stop (used when start-up fails half way).
fn stop_all(shards: &Arc<ShardSet>) {
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    if let Ok(runtime) = runtime {
        runtime.block_on(shutdown(shards));
    }
}

fn shard_main(
    id: usize,
    config: Arc<BrokerConfig>,
    shards: Arc<ShardSet>,
    catalog: Arc<crate::catalog::Catalog>,
    store: Option<MetadataStore>,
    mut mailbox: mpsc::Receiver<Job>,
    ready_tx: std::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let cpu = pin_current_thread(id);
    tracing::debug!(shard = id, ?cpu, "shard thread started");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready_tx.send(Err(error.into()));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let engine = match config.io_engine {
            IoEngineChoice::Auto => IoEngine::Auto,
            IoEngineChoice::Uring => IoEngine::Uring,
            IoEngineChoice::Portable => IoEngine::Portable,
        };
        let io = match IoDriver::new(engine) {
            Ok(io) => io,
            Err(error) => {
                let _ = ready_tx.send(Err(anyhow::anyhow!(
                    "shard {id}: cannot start the I/O engine: {error}"
                )));
                return;
            }
        };
        if id == 0 {
            tracing::info!(engine = io.engine_name(), "I/O engine");
        }
        let controller = store.map(|store| Rc::new(Controller::new(store, catalog.clone())));
        let shard = Rc::new(Shard::new(
            id,
            config.clone(),
            shards,
            io,
            catalog.clone(),
            controller,
        ));
        shard.apply_catalog(catalog).await;
        let listener = match bind_reuseport(config.listen) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready_tx.send(Err(anyhow::anyhow!(
                    "cannot listen on {}: {error}",
                    config.listen
                )));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));

        tokio::task::spawn_local(connection::accept_loop(shard.clone(), listener));
        tokio::task::spawn_local(periodic_tasks(shard.clone()));
        tokio::task::spawn_local(group_timers(shard.clone()));
        tokio::task::spawn_local(tier_uploads(shard.clone()));
        // Jobs run until the main thread's last shutdown phase asks this shard to exit.
        while let Some(job) = mailbox.recv().await {
            job(shard.clone());
            if shard.exit_requested.get() {
                break;
            }
        }
    });
}

/// Once a second: roll segments that have grown old (`segment.ms`), and delete whole old
/// segments by `retention.ms` / `retention.bytes` / the log start offset.
async fn periodic_tasks(shard: Rc<Shard>) {
    let mut shutdown = shard.shutdown_signal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        let now_ms = crate::clock::now_ms();
        for partition in shard.owned_partitions() {
            if let Err(error) = partition.log.roll_if_due(now_ms).await {
                tracing::warn!(dir = %partition.log.dir().display(), %error, "time-based roll failed");
            }
            if let Err(error) = partition.log.enforce_retention(now_ms).await {
                tracing::warn!(dir = %partition.log.dir().display(), %error, "retention failed");
            }
        }
    }
}

/// Consumer-group timeouts every `coordinator::TICK`; expired offsets once a minute.
async fn group_timers(shard: Rc<Shard>) {
    let mut shutdown = shard.shutdown_signal();
    let mut tick = tokio::time::interval(crate::coordinator::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_expiry = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        let now = std::time::Instant::now();
        let expire_offsets = now.duration_since(last_expiry) >= Duration::from_secs(60);
        if expire_offsets {
            last_expiry = now;
        }
        crate::coordinator::tick(&shard, now, expire_offsets).await;
    }
}

/// Tiered storage: every `--tier-upload-interval-ms`, uploads and remote retention.
async fn tier_uploads(shard: Rc<Shard>) {
    let mut shutdown = shard.shutdown_signal();
    let mut tick =
        tokio::time::interval(Duration::from_millis(shard.config.tier.upload_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shard.tier.upload_finished.notified() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        crate::tier::tick(&shard).await;
    }
}
