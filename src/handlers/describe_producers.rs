//! DescribeProducers (v0, KIP-664): the idempotent producers each partition remembers (id,
//! epoch, last sequence, last timestamp), read from the partition's producer state on its
//! owning shard. No transactions yet: coordinator epoch and transaction start are -1.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use tidelog_storage::ProducerSummary;
use uuid::Uuid;

use crate::protocol::error_code;
use crate::server::Shard;

type Answer = Result<Vec<ProducerSummary>, i16>;
/// Position in the response: (topic index, partition index).
type Slot = (usize, usize);
/// A partition asked about: (topic id, partition index).
type Key = (Uuid, i32);

pub async fn handle(
    shard: &Rc<Shard>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let catalog = shard.catalog();
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut by_owner: BTreeMap<usize, Vec<(Slot, Key)>> = BTreeMap::new();
    for (topic_index, topic) in request.topics.into_iter().enumerate() {
        let meta = catalog.topic(&topic.name);
        let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
        for (slot, index) in topic.partition_indexes.into_iter().enumerate() {
            let mut response = PartitionResponse::default().with_partition_index(index);
            match meta {
                Some(meta) if index >= 0 && index < meta.partition_count => {
                    let owner = shard.shards.owner_of(&meta.id, index);
                    by_owner
                        .entry(owner)
                        .or_default()
                        .push(((topic_index, slot), (meta.id, index)));
                }
                _ => response.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            partitions.push(response);
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let parts = by_owner.into_iter().map(|(owner, items)| {
        let (slots, keys): (Vec<_>, Vec<_>) = items.into_iter().unzip();
        let sent = shard.run_on(owner, move |owner_shard| async move {
            keys.into_iter()
                .map(|(topic_id, partition)| -> Answer {
                    owner_shard
                        .partition(&topic_id, partition)
                        .map(|owned| owned.log.producers())
                        .ok_or(error_code::KAFKA_STORAGE_ERROR)
                })
                .collect::<Vec<_>>()
        });
        async move {
            let answers = sent
                .await
                .unwrap_or_else(|_| vec![Err(error_code::NOT_LEADER_OR_FOLLOWER); slots.len()]);
            slots.into_iter().zip(answers).collect::<Vec<_>>()
        }
    });
    for ((topic_index, slot), answer) in join_all(parts).await.into_iter().flatten() {
        let response = &mut topics[topic_index].partitions[slot];
        match answer {
            Ok(producers) => {
                response.active_producers = producers
                    .into_iter()
                    .map(|p| {
                        ProducerState::default()
                            .with_producer_id(ProducerId(p.producer_id))
                            .with_producer_epoch(p.producer_epoch as i32)
                            .with_last_sequence(p.last_sequence)
                            .with_last_timestamp(p.last_timestamp)
                            .with_coordinator_epoch(-1)
                            .with_current_txn_start_offset(-1)
                    })
                    .collect()
            }
            Err(code) => response.error_code = code,
        }
    }
    DescribeProducersResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
