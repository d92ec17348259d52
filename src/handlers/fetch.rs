//! Fetch (v4+): reads from the owning shards, long-polls until `min_bytes` are available or
//! `max_wait_ms` passes, honours `max_bytes` / `partition_max_bytes` (at least one whole
//! batch, KIP-74), and keeps incremental fetch sessions (KIP-227).
//!
//! Long-polling waits on the owning shards: each is asked to resolve when any of its
//! partitions grows past what was read, and the first to answer (or the deadline, or
//! shutdown) ends the wait, after which everything is read again.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, select_all};
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tidelog_storage::{FileSlice, Records};
use tokio::time::Instant;
use uuid::Uuid;

use super::util::topic_name;
use crate::protocol::error_code;
use crate::protocol::frame::{self, Piece};
use crate::server::fetch_session::{FetchSession, TopicKey};
use crate::server::{SessionPartition, Shard};

/// One partition to read, in response order.
#[derive(Clone)]
struct Target {
    key: TopicKey,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
}

/// A resolved target: the topic exists and the partition is in range.
#[derive(Clone)]
struct ReadItem {
    index: usize,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
}

#[derive(Clone)]
struct ReadResult {
    error_code: i16,
    records: Option<Records>,
    high_watermark: i64,
    log_start_offset: i64,
}

impl ReadResult {
    fn error(code: i16) -> ReadResult {
        ReadResult {
            error_code: code,
            records: None,
            high_watermark: -1,
            log_start_offset: -1,
        }
    }

    fn bytes(&self) -> usize {
        self.records.as_ref().map_or(0, Records::len)
    }
}

/// How the request relates to fetch sessions.
enum SessionMode {
    Sessionless,
    /// A new session (or none if the cache is disabled): answer every partition.
    Full(i32),
    /// An existing session: answer only partitions with news.
    Incremental(i32),
}

/// Record data smaller than this is copied into memory; larger, page-cached data is sent from
/// its segment file with `sendfile` (below this, the extra syscalls cost more than the copy).
const SENDFILE_MIN_BYTES: usize = 64 * 1024;

/// A Fetch response and the pieces its records stand for: each partition's `records` is a key
/// of `shared` (a placeholder where the bytes are still in a segment file), for
/// `encode_response_sharing`.
pub struct FetchOutput {
    pub response: FetchResponse,
    pub shared: Vec<(Bytes, Piece)>,
}

pub async fn handle(shard: &Rc<Shard>, request: FetchRequest, version: i16) -> FetchOutput {
    let (mode, targets) = match resolve_session(shard, &request, version) {
        Ok(resolved) => resolved,
        Err(code) => {
            return FetchOutput {
                response: FetchResponse::default()
                    .with_throttle_time_ms(0)
                    .with_error_code(code)
                    .with_session_id(0),
                shared: Vec::new(),
            };
        }
    };

    let catalog = shard.catalog();
    let mut results: Vec<ReadResult> = Vec::with_capacity(targets.len());
    let mut items = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let topic = match &target.key {
            TopicKey::Name(name) => catalog.topic(name),
            TopicKey::Id(id) => catalog.topic_by_id(id),
        };
        let result = match topic {
            None if matches!(target.key, TopicKey::Id(_)) => {
                ReadResult::error(error_code::UNKNOWN_TOPIC_ID)
            }
            None => ReadResult::error(error_code::UNKNOWN_TOPIC_OR_PARTITION),
            Some(topic) if target.partition < 0 || target.partition >= topic.partition_count => {
                ReadResult::error(error_code::UNKNOWN_TOPIC_OR_PARTITION)
            }
            Some(topic) => {
                items.push(ReadItem {
                    index,
                    topic_id: topic.id,
                    partition: target.partition,
                    fetch_offset: target.fetch_offset,
                    max_bytes: target.partition_max_bytes.max(0) as usize,
                });
                ReadResult::error(error_code::NONE)
            }
        };
        results.push(result);
    }

    let max_bytes = request.max_bytes.max(0) as usize;
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let mut shutdown = shard.shutdown_signal();
    loop {
        let read = read_all(shard, &items, max_bytes).await;
        for (item, result) in items.iter().zip(read) {
            results[item.index] = result;
        }
        trim_to_max_bytes(&mut results, max_bytes);
        let total: usize = results.iter().map(ReadResult::bytes).sum();
        let any_error = results.iter().any(|r| r.error_code != error_code::NONE);
        if total >= min_bytes.max(1) || any_error || items.is_empty() || Instant::now() >= deadline
        {
            break;
        }
        let wait = wait_for_data(shard, &items, &results, deadline);
        tokio::select! {
            _ = wait => {}
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        }
        if Instant::now() >= deadline {
            // One last read below picks up whatever arrived in time.
            let read = read_all(shard, &items, max_bytes).await;
            for (item, result) in items.iter().zip(read) {
                results[item.index] = result;
            }
            trim_to_max_bytes(&mut results, max_bytes);
            break;
        }
    }

    let session_id = match mode {
        SessionMode::Sessionless => 0,
        SessionMode::Full(id) | SessionMode::Incremental(id) => id,
    };
    let incremental = matches!(mode, SessionMode::Incremental(_));
    let mut included = vec![true; targets.len()];
    if session_id != 0 {
        let mut sessions = shard.fetch_sessions.borrow_mut();
        if let Some(session) = sessions.get_mut(session_id) {
            for (index, target) in targets.iter().enumerate() {
                let key = (target.key.clone(), target.partition);
                let Some(state) = session.partitions.get_mut(&key) else {
                    continue;
                };
                let result = &results[index];
                let news = result.bytes() > 0
                    || result.error_code != error_code::NONE
                    || result.high_watermark != state.last_high_watermark
                    || result.log_start_offset != state.last_log_start_offset;
                state.last_high_watermark = result.high_watermark;
                state.last_log_start_offset = result.log_start_offset;
                included[index] = !incremental || news;
            }
        }
    }

    let node_id = BrokerId(shard.config.node_id);
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut shared: Vec<(Bytes, Piece)> = Vec::new();
    let mut placeholder_offset = 0usize;
    for (index, target) in targets.iter().enumerate() {
        if !included[index] {
            continue;
        }
        let result = &results[index];
        let records = match result.records.clone().unwrap_or_default() {
            Records::Memory(bytes) => {
                shared.push((bytes.clone(), Piece::Memory(bytes.clone())));
                bytes
            }
            Records::File(slice) => match frame::placeholder(placeholder_offset, slice.len) {
                Some(stand_in) => {
                    placeholder_offset += slice.len;
                    shared.push((stand_in.clone(), Piece::File(slice)));
                    stand_in
                }
                None => read_into_memory(&slice),
            },
        };
        let mut partition = PartitionData::default()
            .with_partition_index(target.partition)
            .with_error_code(result.error_code)
            .with_high_watermark(result.high_watermark)
            .with_last_stable_offset(result.high_watermark)
            .with_aborted_transactions(Some(Vec::new()))
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(records));
        // Fields newer than the request's version must keep their defaults.
        if version >= 5 {
            partition.log_start_offset = result.log_start_offset;
        }
        if version >= 12 {
            partition.current_leader.leader_id = node_id;
            partition.current_leader.leader_epoch = 0;
        }
        let same_topic = topics.last().is_some_and(|t| match &target.key {
            TopicKey::Name(name) => t.topic.as_str() == name,
            TopicKey::Id(id) => t.topic_id == *id,
        });
        if !same_topic {
            let mut topic = FetchableTopicResponse::default();
            match &target.key {
                TopicKey::Name(name) => topic.topic = topic_name(name),
                TopicKey::Id(id) => topic.topic_id = *id,
            }
            topics.push(topic);
        }
        if let Some(topic) = topics.last_mut() {
            topic.partitions.push(partition);
        }
    }
    FetchOutput {
        response: FetchResponse::default()
            .with_throttle_time_ms(0)
            .with_error_code(error_code::NONE)
            .with_session_id(if version >= 7 { session_id } else { 0 })
            .with_responses(topics),
        shared,
    }
}

/// The bytes of a file range, for the rare response too large for the placeholder space. They
/// were in the page cache a moment ago; an error gives the partition no records this time
/// (the consumer fetches again).
fn read_into_memory(slice: &FileSlice) -> Bytes {
    slice.read_bytes().unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read records for a fetch response");
        Bytes::new()
    })
}

/// Applies the request to the session cache and returns the partitions to read.
fn resolve_session(
    shard: &Rc<Shard>,
    request: &FetchRequest,
    version: i16,
) -> Result<(SessionMode, Vec<Target>), i16> {
    let requested: Vec<Target> = request
        .topics
        .iter()
        .flat_map(|topic| {
            let key = if version >= 13 {
                TopicKey::Id(topic.topic_id)
            } else {
                TopicKey::Name(topic.topic.to_string())
            };
            topic.partitions.iter().map(move |p| Target {
                key: key.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
            })
        })
        .collect();
    let mut sessions = shard.fetch_sessions.borrow_mut();
    const FINAL_EPOCH: i32 = -1;
    const INITIAL_EPOCH: i32 = 0;
    match request.session_epoch {
        FINAL_EPOCH => {
            if request.session_id != 0 {
                sessions.remove(request.session_id);
            }
            Ok((SessionMode::Sessionless, requested))
        }
        INITIAL_EPOCH => {
            if request.session_id != 0 {
                sessions.remove(request.session_id);
            }
            let partitions: IndexMap<(TopicKey, i32), SessionPartition> = requested
                .iter()
                .map(|t| {
                    (
                        (t.key.clone(), t.partition),
                        SessionPartition {
                            fetch_offset: t.fetch_offset,
                            partition_max_bytes: t.partition_max_bytes,
                            last_high_watermark: -1,
                            last_log_start_offset: -1,
                        },
                    )
                })
                .collect();
            match sessions.create(partitions) {
                Some(id) => Ok((SessionMode::Full(id), requested)),
                None => Ok((SessionMode::Sessionless, requested)),
            }
        }
        epoch => {
            let session = sessions
                .get_mut(request.session_id)
                .ok_or(error_code::FETCH_SESSION_ID_NOT_FOUND)?;
            if session.epoch != epoch {
                return Err(error_code::INVALID_FETCH_SESSION_EPOCH);
            }
            session.epoch = FetchSession::next_epoch(epoch);
            for target in requested {
                let entry = session
                    .partitions
                    .entry((target.key, target.partition))
                    .or_insert(SessionPartition {
                        fetch_offset: target.fetch_offset,
                        partition_max_bytes: target.partition_max_bytes,
                        last_high_watermark: -1,
                        last_log_start_offset: -1,
                    });
                entry.fetch_offset = target.fetch_offset;
                entry.partition_max_bytes = target.partition_max_bytes;
            }
            for forgotten in &request.forgotten_topics_data {
                let key = if version >= 13 {
                    TopicKey::Id(forgotten.topic_id)
                } else {
                    TopicKey::Name(forgotten.topic.to_string())
                };
                for partition in &forgotten.partitions {
                    session.partitions.shift_remove(&(key.clone(), *partition));
                }
            }
            let targets = session
                .partitions
                .iter()
                .map(|((key, partition), state)| Target {
                    key: key.clone(),
                    partition: *partition,
                    fetch_offset: state.fetch_offset,
                    partition_max_bytes: state.partition_max_bytes,
                })
                .collect();
            Ok((SessionMode::Incremental(request.session_id), targets))
        }
    }
}

/// Reads every item on its owning shard; results in the order of `items`.
async fn read_all(shard: &Rc<Shard>, items: &[ReadItem], max_bytes: usize) -> Vec<ReadResult> {
    let mut by_owner: BTreeMap<usize, Vec<(usize, ReadItem)>> = BTreeMap::new();
    for (position, item) in items.iter().enumerate() {
        let owner = shard.shards.owner_of(&item.topic_id, item.partition);
        by_owner
            .entry(owner)
            .or_default()
            .push((position, item.clone()));
    }
    let reads = by_owner.into_values().map(|owned| {
        let positions: Vec<usize> = owned.iter().map(|(p, _)| *p).collect();
        let owned_items: Vec<ReadItem> = owned.into_iter().map(|(_, item)| item).collect();
        let sent = shard.run_on(
            shard
                .shards
                .owner_of(&owned_items[0].topic_id, owned_items[0].partition),
            move |owner| read_owned(owner, owned_items, max_bytes),
        );
        async move {
            let results = sent.await.unwrap_or_else(|_| {
                vec![ReadResult::error(error_code::NOT_LEADER_OR_FOLLOWER); positions.len()]
            });
            positions.into_iter().zip(results).collect::<Vec<_>>()
        }
    });
    let mut results = vec![ReadResult::error(error_code::NONE); items.len()];
    for (position, result) in join_all(reads).await.into_iter().flatten() {
        results[position] = result;
    }
    results
}

/// Runs on the owning shard.
async fn read_owned(shard: Rc<Shard>, items: Vec<ReadItem>, max_bytes: usize) -> Vec<ReadResult> {
    let sendfile_min = if shard.config.fetch_sendfile {
        SENDFILE_MIN_BYTES
    } else {
        usize::MAX
    };
    let reads = items.into_iter().map(|item| {
        let partition = shard.partition(&item.topic_id, item.partition);
        let shard = shard.clone();
        async move {
            let Some(partition) = partition else {
                return ReadResult::error(error_code::KAFKA_STORAGE_ERROR);
            };
            let log = &partition.log;
            let limit = item.max_bytes.min(max_bytes.max(1));
            let tiered = log.config().remote_storage;
            if tiered {
                // Below the local log start, a tiered partition reads from object storage.
                match crate::tier::read(&shard, &partition, item.fetch_offset, limit).await {
                    crate::tier::RemoteRead::NotRemote => {}
                    crate::tier::RemoteRead::Records(records) => {
                        return ReadResult {
                            error_code: error_code::NONE,
                            records: Some(Records::Memory(records)),
                            high_watermark: log.high_watermark(),
                            log_start_offset: crate::tier::earliest_offset(&shard, &partition)
                                .await,
                        };
                    }
                    crate::tier::RemoteRead::Failed(error) => {
                        tracing::warn!(dir = %log.dir().display(), %error, offset = item.fetch_offset, "remote read failed");
                        return ReadResult {
                            error_code: error_code::KAFKA_STORAGE_ERROR,
                            records: None,
                            high_watermark: log.high_watermark(),
                            log_start_offset: log.log_start_offset(),
                        };
                    }
                }
            }
            match log
                .read_shared(item.fetch_offset, limit, sendfile_min)
                .await
            {
                Ok(outcome) => ReadResult {
                    error_code: error_code::NONE,
                    records: Some(outcome.records),
                    high_watermark: outcome.high_watermark,
                    log_start_offset: if tiered {
                        crate::tier::earliest_offset(&shard, &partition).await
                    } else {
                        outcome.log_start_offset
                    },
                },
                Err(error) => {
                    let code = error_code::from_storage(&error);
                    if code == error_code::KAFKA_STORAGE_ERROR {
                        tracing::error!(dir = %log.dir().display(), %error, "read failed");
                    }
                    ReadResult {
                        error_code: code,
                        records: None,
                        high_watermark: log.high_watermark(),
                        log_start_offset: log.log_start_offset(),
                    }
                }
            }
        }
    });
    join_all(reads).await
}

/// Keeps the response within `max_bytes`: partitions are filled in order, and the first
/// non-empty one is kept whole even if it alone is larger (KIP-74).
fn trim_to_max_bytes(results: &mut [ReadResult], max_bytes: usize) {
    let mut total = 0usize;
    for result in results.iter_mut() {
        let size = result.bytes();
        if size == 0 {
            continue;
        }
        if total > 0 && total + size > max_bytes {
            result.records = Some(Records::default());
        } else {
            total += size;
        }
    }
}

/// Resolves when any partition has grown past what this fetch last saw, or at the deadline.
async fn wait_for_data(
    shard: &Rc<Shard>,
    items: &[ReadItem],
    results: &[ReadResult],
    deadline: Instant,
) {
    let mut by_owner: BTreeMap<usize, Vec<(Uuid, i32, i64)>> = BTreeMap::new();
    for item in items {
        let seen = results[item.index].high_watermark.max(item.fetch_offset);
        let owner = shard.shards.owner_of(&item.topic_id, item.partition);
        by_owner
            .entry(owner)
            .or_default()
            .push((item.topic_id, item.partition, seen));
    }
    let waits: Vec<_> = by_owner
        .into_iter()
        .map(|(owner, watched)| {
            Box::pin(shard.run_on(owner, move |owner_shard| async move {
                let waits: Vec<_> = watched
                    .into_iter()
                    .filter_map(|(topic_id, partition, seen)| {
                        let owned = owner_shard.partition(&topic_id, partition)?;
                        Some(Box::pin(
                            async move { owned.log.wait_for_offset(seen).await },
                        ))
                    })
                    .collect();
                if waits.is_empty() {
                    tokio::time::sleep_until(deadline).await;
                } else {
                    let _ = tokio::time::timeout_at(deadline, select_all(waits)).await;
                }
            }))
        })
        .collect();
    if waits.is_empty() {
        tokio::time::sleep_until(deadline).await;
    } else {
        let _ = tokio::time::timeout_at(deadline, select_all(waits)).await;
    }
}
