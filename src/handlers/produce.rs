//! Produce (v3+): validate each partition's batches, assign offsets and write them on the
//! shard that owns the partition; acks=all waits for the fdatasync that covers the batch,
//! acks=1 for the write, acks=0 gets no response.
//!
//! Ordering: every append of a request is started (offsets assigned) before the handler
//! first waits, and handlers start in request order, so pipelined produce requests of one
//! connection land in the log in the order they were sent, as with Kafka.

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use uuid::Uuid;

use super::util::str_bytes;
use crate::clock::now_ms;
use crate::protocol::error_code;
use crate::server::Shard;

/// One partition's part of the request, sent to the owning shard.
struct Append {
    /// Position in the response: (topic index, partition index).
    slot: (usize, usize),
    topic_id: Uuid,
    partition: i32,
    records: Bytes,
}

struct Appended {
    slot: (usize, usize),
    error_code: i16,
    error_message: Option<String>,
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
}

pub async fn handle(
    shard: &Rc<Shard>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let catalog = shard.catalog();
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(request.topic_data.len());
    let mut by_owner: BTreeMap<usize, Vec<Append>> = BTreeMap::new();

    for (topic_index, topic) in request.topic_data.into_iter().enumerate() {
        // v13 (KIP-516) names topics by id only.
        let (meta, unknown_code) = if version >= 13 {
            (
                catalog.topic_by_id(&topic.topic_id),
                error_code::UNKNOWN_TOPIC_ID,
            )
        } else {
            (
                catalog.topic(&topic.name),
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
            )
        };
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        for (partition_slot, data) in topic.partition_data.into_iter().enumerate() {
            let mut response = failed(data.index, error_code::NONE);
            let code = match (meta, data.records) {
                _ if !matches!(acks, -1..=1) => error_code::INVALID_REQUIRED_ACKS,
                (None, _) => unknown_code,
                (Some(meta), _) if data.index < 0 || data.index >= meta.partition_count => {
                    error_code::UNKNOWN_TOPIC_OR_PARTITION
                }
                (Some(_), None) => error_code::CORRUPT_MESSAGE,
                (Some(meta), Some(records)) => {
                    let owner = shard.shards.owner_of(&meta.id, data.index);
                    by_owner.entry(owner).or_default().push(Append {
                        slot: (topic_index, partition_slot),
                        topic_id: meta.id,
                        partition: data.index,
                        records,
                    });
                    error_code::NONE
                }
            };
            response.error_code = code;
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses),
        );
    }

    let durable = acks == -1;
    let parts = by_owner.into_iter().map(|(owner, appends)| {
        let slots: Vec<_> = appends.iter().map(|a| (a.slot, a.partition)).collect();
        let sent = shard.run_on(owner, move |owner_shard| {
            append_all(owner_shard, appends, durable)
        });
        async move {
            sent.await.unwrap_or_else(|unavailable| {
                slots
                    .into_iter()
                    .map(|(slot, _)| Appended {
                        slot,
                        error_code: error_code::NOT_LEADER_OR_FOLLOWER,
                        error_message: Some(unavailable.to_string()),
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: -1,
                    })
                    .collect()
            })
        }
    });
    for appended in join_all(parts).await.into_iter().flatten() {
        let (topic_index, partition_slot) = appended.slot;
        let response = &mut responses[topic_index].partition_responses[partition_slot];
        response.error_code = appended.error_code;
        response.base_offset = appended.base_offset;
        response.log_append_time_ms = appended.log_append_time_ms;
        // Fields newer than the request's version must keep their defaults.
        if version >= 5 {
            response.log_start_offset = appended.log_start_offset;
        }
        if version >= 8 {
            response.error_message = appended.error_message.map(|m| str_bytes(&m));
        }
    }

    if acks == 0 {
        return None;
    }
    Some(
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(0),
    )
}

fn failed(index: i32, code: i16) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// Runs on the owning shard: starts every append at once (so their offsets are assigned in
/// request order), then waits for all.
async fn append_all(shard: Rc<Shard>, appends: Vec<Append>, durable: bool) -> Vec<Appended> {
    let now = now_ms();
    let pending = appends.into_iter().map(|append| {
        let partition = shard.partition(&append.topic_id, append.partition);
        async move {
            let Some(partition) = partition else {
                return Appended {
                    slot: append.slot,
                    error_code: error_code::KAFKA_STORAGE_ERROR,
                    error_message: Some("partition log is not available on this broker".into()),
                    base_offset: -1,
                    log_append_time_ms: -1,
                    log_start_offset: -1,
                };
            };
            match partition.log.append(append.records, now, durable).await {
                Ok(outcome) => Appended {
                    slot: append.slot,
                    error_code: error_code::NONE,
                    error_message: None,
                    base_offset: outcome.base_offset,
                    log_append_time_ms: outcome.log_append_time_ms,
                    log_start_offset: outcome.log_start_offset,
                },
                Err(error) => {
                    let code = error_code::from_storage(&error);
                    if code == error_code::KAFKA_STORAGE_ERROR {
                        tracing::error!(dir = %partition.log.dir().display(), %error, "append failed");
                    }
                    Appended {
                        slot: append.slot,
                        error_code: code,
                        error_message: Some(error.to_string()),
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: partition.log.log_start_offset(),
                    }
                }
            }
        }
    });
    join_all(pending).await
}
