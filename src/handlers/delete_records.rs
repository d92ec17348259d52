//! DeleteRecords (v0–v2): moves each partition's log start offset (`offset` -1 means the high
//! watermark) on its owning shard and answers the new low watermark. The move is durable
//! before the answer (the log start checkpoint is fdatasync'ed); whole segments below it are
//! deleted. An offset above the high watermark gets OFFSET_OUT_OF_RANGE, as in Kafka.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use uuid::Uuid;

use crate::protocol::error_code;
use crate::server::Shard;

/// (topic id, partition, offset) asked of one owner.
type Deletion = (Uuid, i32, i64);
/// Position in the response: (topic index, partition index).
type Slot = (usize, usize);

pub async fn handle(shard: &Rc<Shard>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let catalog = shard.catalog();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut by_owner: BTreeMap<usize, Vec<(Slot, Deletion)>> = BTreeMap::new();
    for (topic_index, topic) in request.topics.into_iter().enumerate() {
        let meta = catalog.topic(&topic.name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (slot, partition) in topic.partitions.into_iter().enumerate() {
            let index = partition.partition_index;
            let mut result = DeleteRecordsPartitionResult::default()
                .with_partition_index(index)
                .with_low_watermark(-1);
            match meta {
                Some(meta) if index >= 0 && index < meta.partition_count => {
                    let owner = shard.shards.owner_of(&meta.id, index);
                    by_owner
                        .entry(owner)
                        .or_default()
                        .push(((topic_index, slot), (meta.id, index, partition.offset)));
                }
                _ => result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let parts = by_owner.into_iter().map(|(owner, items)| {
        let (slots, deletions): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let sent = shard.run_on(owner, move |owner_shard| delete_all(owner_shard, deletions));
        async move {
            let answers = sent
                .await
                .unwrap_or_else(|_| vec![(error_code::NOT_LEADER_OR_FOLLOWER, -1); slots.len()]);
            slots.into_iter().zip(answers).collect::<Vec<_>>()
        }
    });
    for ((topic_index, slot), (code, low_watermark)) in join_all(parts).await.into_iter().flatten()
    {
        let result = &mut topics[topic_index].partitions[slot];
        result.error_code = code;
        result.low_watermark = low_watermark;
    }
    DeleteRecordsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}

/// Runs on the owning shard: (error, low watermark) per deletion.
async fn delete_all(shard: Rc<Shard>, deletions: Vec<Deletion>) -> Vec<(i16, i64)> {
    let mut answers = Vec::with_capacity(deletions.len());
    for (topic_id, partition, offset) in deletions {
        let Some(owned) = shard.partition(&topic_id, partition) else {
            answers.push((error_code::KAFKA_STORAGE_ERROR, -1));
            continue;
        };
        answers.push(match owned.log.delete_records_before(offset).await {
            Ok(low_watermark) => (error_code::NONE, low_watermark),
            Err(error) => (error_code::from_storage(&error), -1),
        });
    }
    answers
}
