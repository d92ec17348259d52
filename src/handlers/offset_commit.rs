//! OffsetCommit (v2–v9): checks the committer against the group (generation for classic
//! members, member epoch for KIP-848 members, nobody consuming for simple commits), writes
//! the offsets to `__consumer_offsets` durably, then makes them visible.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::coordinator::records::{GroupRecord, OffsetValue};
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

/// One partition's commit: index, offset, leader epoch, metadata.
type PartitionCommit = (i32, i64, i32, String);

pub async fn handle(shard: &Rc<Shard>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let requested: Vec<(String, Vec<PartitionCommit>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let shape: Vec<(String, Vec<i32>)> = requested
        .iter()
        .map(|(topic, partitions)| (topic.clone(), partitions.iter().map(|p| p.0).collect()))
        .collect();
    if group_id.is_empty() {
        return response(&shape, |_, _| error_code::INVALID_GROUP_ID);
    }
    let member_id = request.member_id.to_string();
    let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = request.generation_id_or_member_epoch;
    let id = group_id.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, true, move |owner, partition| async move {
            let allowed =
                owner
                    .groups
                    .with_entry(&id, partition.index, |entry| match &entry.kind {
                        GroupKind::Classic(group) => {
                            if group.is_empty() && group.generation == 0 && generation >= 0 {
                                // Kafka: a generation for a group that never had one.
                                Err(error_code::ILLEGAL_GENERATION)
                            } else {
                                group.validate_commit(
                                    &member_id,
                                    instance_id.as_deref(),
                                    generation,
                                )
                            }
                        }
                        GroupKind::Consumer(group) => {
                            if generation < 0 && member_id.is_empty() {
                                if group.is_empty() {
                                    Ok(())
                                } else {
                                    Err(error_code::UNKNOWN_MEMBER_ID)
                                }
                            } else {
                                group.validate_member_epoch(&member_id, generation)
                            }
                        }
                    });
            let now_ms = crate::clock::now_ms();
            let mut results: Vec<(String, i32, i16)> = Vec::new();
            let mut records = Vec::new();
            for (topic, partitions) in requested {
                for (index, offset, leader_epoch, metadata) in partitions {
                    let code = match allowed {
                        Err(code) => code,
                        Ok(()) if metadata.len() > MAX_METADATA_BYTES => {
                            error_code::OFFSET_METADATA_TOO_LARGE
                        }
                        Ok(()) => {
                            records.push(GroupRecord::Offset {
                                group: id.clone(),
                                topic: topic.clone(),
                                partition: index,
                                value: Some(OffsetValue {
                                    offset,
                                    leader_epoch,
                                    metadata,
                                    commit_timestamp_ms: now_ms,
                                }),
                            });
                            error_code::NONE
                        }
                    };
                    results.push((topic.clone(), index, code));
                }
            }
            if let Err(code) = coordinator::append(&partition, &records).await {
                for result in results.iter_mut() {
                    if result.2 == error_code::NONE {
                        result.2 = code;
                    }
                }
                return results;
            }
            owner.groups.with_entry(&id, partition.index, |entry| {
                for record in records {
                    if let GroupRecord::Offset {
                        topic,
                        partition,
                        value: Some(value),
                        ..
                    } = record
                    {
                        entry.offsets.insert((topic, partition), value);
                    }
                }
            });
            results
        })
        .await;
    match outcome {
        Ok(Some(results)) => response(&shape, |topic, index| {
            results
                .iter()
                .find(|(t, p, _)| t == topic && *p == index)
                .map(|r| r.2)
                .unwrap_or(error_code::UNKNOWN_SERVER_ERROR)
        }),
        Ok(None) => response(&shape, |_, _| error_code::COORDINATOR_NOT_AVAILABLE),
        Err(code) => response(&shape, |_, _| code),
    }
}

fn response(shape: &[(String, Vec<i32>)], code: impl Fn(&str, i32) -> i16) -> OffsetCommitResponse {
    OffsetCommitResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(
            shape
                .iter()
                .map(|(topic, partitions)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(super::util::topic_name(topic))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|&index| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_error_code(code(topic, index))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
