//! ListOffsets (v1+): earliest (-2), latest (-1), max timestamp (-3, KIP-734), earliest local
//! (-4, KIP-405), latest tiered (-5, KIP-1005), or the first offset at or after a timestamp.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use uuid::Uuid;

use crate::protocol::error_code;
use crate::server::Shard;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

struct Lookup {
    slot: (usize, usize),
    topic_id: Uuid,
    partition: i32,
    timestamp: i64,
}

/// (error, timestamp, offset)
type Found = (i16, i64, i64);

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let catalog = shard.catalog();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut by_owner: BTreeMap<usize, Vec<Lookup>> = BTreeMap::new();
    for (topic_index, topic) in request.topics.into_iter().enumerate() {
        let meta = catalog.topic(&topic.name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (slot, partition) in topic.partitions.into_iter().enumerate() {
            let mut response = ListOffsetsPartitionResponse::default()
                .with_partition_index(partition.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            match meta {
                Some(meta)
                    if partition.partition_index >= 0
                        && partition.partition_index < meta.partition_count =>
                {
                    let owner = shard.shards.owner_of(&meta.id, partition.partition_index);
                    by_owner.entry(owner).or_default().push(Lookup {
                        slot: (topic_index, slot),
                        topic_id: meta.id,
                        partition: partition.partition_index,
                        timestamp: partition.timestamp,
                    });
                }
                _ => response.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let parts = by_owner.into_iter().map(|(owner, lookups)| {
        let slots: Vec<_> = lookups.iter().map(|l| l.slot).collect();
        let queries: Vec<_> = lookups
            .iter()
            .map(|l| (l.topic_id, l.partition, l.timestamp))
            .collect();
        let sent = shard.run_on(owner, move |owner_shard| lookup_all(owner_shard, queries));
        async move {
            let found = sent.await.unwrap_or_else(|_| {
                vec![(error_code::NOT_LEADER_OR_FOLLOWER, -1, -1); slots.len()]
            });
            slots.into_iter().zip(found).collect::<Vec<_>>()
        }
    });
    for ((topic_index, slot), (code, timestamp, offset)) in
        join_all(parts).await.into_iter().flatten()
    {
        let response = &mut topics[topic_index].partitions[slot];
        response.error_code = code;
        response.timestamp = timestamp;
        response.offset = offset;
        // leader_epoch exists from v4 on.
        let found = code == error_code::NONE && offset >= 0;
        response.leader_epoch = if found && version >= 4 { 0 } else { -1 };
    }
    ListOffsetsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}

/// Runs on the owning shard.
async fn lookup_all(shard: Rc<Shard>, queries: Vec<(Uuid, i32, i64)>) -> Vec<Found> {
    let mut found = Vec::with_capacity(queries.len());
    for (topic_id, partition, timestamp) in queries {
        let Some(owned) = shard.partition(&topic_id, partition) else {
            found.push((error_code::KAFKA_STORAGE_ERROR, -1, -1));
            continue;
        };
        let log = &owned.log;
        let answer = match timestamp {
            LATEST => Ok((-1, log.high_watermark())),
            EARLIEST => Ok((-1, crate::tier::earliest_offset(&shard, &owned).await)),
            EARLIEST_LOCAL => Ok((-1, log.log_start_offset())),
            LATEST_TIERED => Ok((-1, crate::tier::latest_tiered_offset(&shard, &owned).await)),
            MAX_TIMESTAMP => log
                .max_timestamp()
                .await
                .map(|hit| hit.map_or((-1, -1), |h| (h.timestamp_ms, h.offset))),
            t if t >= 0 => match crate::tier::offset_for_timestamp(&shard, &owned, t).await {
                Some(remote_hit) => Ok(remote_hit),
                None => log
                    .offset_for_timestamp(t)
                    .await
                    .map(|hit| hit.map_or((-1, -1), |h| (h.timestamp_ms, h.offset))),
            },
            _ => {
                found.push((error_code::INVALID_REQUEST, -1, -1));
                continue;
            }
        };
        found.push(match answer {
            Ok((ts, offset)) => (error_code::NONE, ts, offset),
            Err(error) => (error_code::from_storage(&error), -1, -1),
        });
    }
    found
}
