//! OffsetFetch (v1–v9): one group (v1–v7) or several (v8+), each answered by its
//! coordinator shard; a partition without a committed offset reads -1. With a KIP-848
//! member id and epoch (v9), the epoch is checked.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};

use super::util::{str_bytes, topic_name};
use crate::coordinator::records::OffsetValue;
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

/// One group's question: which partitions (None: all it has), and who asks.
struct GroupQuery {
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(String, i32)>,
}

/// One group's answer: (topic, partition) → offset, or a group-level error.
type GroupAnswer = Result<BTreeMap<(String, i32), Option<OffsetValue>>, i16>;

pub async fn handle(
    shard: &Rc<Shard>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    let response = OffsetFetchResponse::default().with_throttle_time_ms(0);
    if version >= 8 {
        let mut groups = Vec::new();
        for group in request.groups {
            let query = GroupQuery {
                group_id: group.group_id.to_string(),
                topics: group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                }),
                member: group
                    .member_id
                    .map(|m| (m.to_string(), group.member_epoch))
                    .filter(|(m, _)| !m.is_empty()),
            };
            let group_id = query.group_id.clone();
            let answer = fetch_group(shard, query).await;
            let mut out =
                OffsetFetchResponseGroup::default().with_group_id(GroupId(str_bytes(&group_id)));
            match answer {
                Ok(offsets) => {
                    out.topics = by_topic(offsets)
                        .into_iter()
                        .map(|(topic, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic_name(&topic))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, value)| {
                                            let (offset, epoch, metadata) = fields(value);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(index)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(str_bytes(&metadata)))
                                                .with_error_code(error_code::NONE)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    out.error_code = error_code::NONE;
                }
                Err(code) => out.error_code = code,
            }
            groups.push(out);
        }
        return response.with_groups(groups);
    }
    let query = GroupQuery {
        group_id: request.group_id.to_string(),
        topics: request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        }),
        member: None,
    };
    let requested = query.topics.clone();
    match fetch_group(shard, query).await {
        Ok(offsets) => response.with_error_code(error_code::NONE).with_topics(
            by_topic(offsets)
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, value)| {
                                    let (offset, epoch, metadata) = fields(value);
                                    let mut partition = OffsetFetchResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(offset)
                                        .with_metadata(Some(str_bytes(&metadata)))
                                        .with_error_code(error_code::NONE);
                                    if version >= 5 {
                                        partition.committed_leader_epoch = epoch;
                                    }
                                    partition
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(code) => {
            // v1 has no group-level error: each partition carries it.
            let topics = requested
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|index| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(-1)
                                        .with_metadata(Some(str_bytes("")))
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            let response = response.with_topics(topics);
            if version >= 2 {
                response.with_error_code(code)
            } else {
                response
            }
        }
    }
}

fn fields(value: Option<OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

fn by_topic(
    offsets: BTreeMap<(String, i32), Option<OffsetValue>>,
) -> BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> {
    let mut topics: BTreeMap<String, Vec<(i32, Option<OffsetValue>)>> = BTreeMap::new();
    for ((topic, partition), value) in offsets {
        topics.entry(topic).or_default().push((partition, value));
    }
    topics
}

async fn fetch_group(shard: &Rc<Shard>, query: GroupQuery) -> GroupAnswer {
    if query.group_id.is_empty() {
        return Err(error_code::INVALID_GROUP_ID);
    }
    let group_id = query.group_id.clone();
    let topics = query.topics.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, false, move |owner, _| async move {
            let checked = owner.groups.with_existing(&query.group_id, |entry| {
                if let (Some((member_id, epoch)), GroupKind::Consumer(group)) =
                    (&query.member, &entry.kind)
                {
                    group.validate_member_epoch(member_id, *epoch)?;
                }
                Ok(answer(&entry.offsets, &query.topics))
            });
            match checked {
                Some(result) => result,
                None => Ok(answer(&BTreeMap::new(), &query.topics)),
            }
        })
        .await;
    match outcome {
        Ok(Some(answer)) => answer,
        // No __consumer_offsets yet: no group has committed anything.
        Ok(None) => Ok(self::answer(&BTreeMap::new(), &topics)),
        Err(code) => Err(code),
    }
}

fn answer(
    offsets: &BTreeMap<(String, i32), OffsetValue>,
    topics: &Option<Vec<(String, Vec<i32>)>>,
) -> BTreeMap<(String, i32), Option<OffsetValue>> {
    match topics {
        None => offsets
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
        Some(topics) => topics
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.iter().map(move |&p| {
                    let key = (topic.clone(), p);
                    let value = offsets.get(&key).cloned();
                    (key, value)
                })
            })
            .collect(),
    }
}
