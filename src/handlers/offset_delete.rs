//! OffsetDelete (v0): removes a group's committed offsets for some partitions, unless the
//! group's members still subscribe to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use std::rc::Rc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::util::topic_name;
use crate::coordinator::records::GroupRecord;
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(shard: &Rc<Shard>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    let requested: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let response = OffsetDeleteResponse::default().with_throttle_time_ms(0);
    if group_id.is_empty() {
        return response.with_error_code(error_code::INVALID_GROUP_ID);
    }
    let id = group_id.clone();
    let topics = requested.clone();
    let outcome = coordinator::on_group_shard(
        shard,
        &group_id,
        false,
        move |owner, partition| async move {
            let catalog = owner.catalog();
            let all_topics = coordinator::topics_by_name(&catalog);
            let planned = owner.groups.with_existing(&id, |entry| {
                let (subscribed, consumer_protocol) = match &entry.kind {
                    GroupKind::Classic(group) => (
                        group.subscribed_topics(),
                        group.is_empty() || group.protocol_type.as_deref() == Some("consumer"),
                    ),
                    GroupKind::Consumer(group) => (
                        group
                            .subscribed_topic_names(&all_topics)
                            .into_iter()
                            .collect(),
                        true,
                    ),
                };
                if !consumer_protocol {
                    return Err(error_code::NON_EMPTY_GROUP);
                }
                let mut results = Vec::new();
                let mut records = Vec::new();
                for (topic, partitions) in &topics {
                    let blocked = subscribed.contains(topic);
                    let codes: Vec<(i32, i16)> = partitions
                        .iter()
                        .map(|&index| {
                            if blocked {
                                return (index, error_code::GROUP_SUBSCRIBED_TO_TOPIC);
                            }
                            if entry.offsets.remove(&(topic.clone(), index)).is_some() {
                                records.push(GroupRecord::Offset {
                                    group: id.clone(),
                                    topic: topic.clone(),
                                    partition: index,
                                    value: None,
                                });
                            }
                            (index, error_code::NONE)
                        })
                        .collect();
                    results.push((topic.clone(), codes));
                }
                Ok((results, records))
            });
            match planned {
                None => Err(error_code::GROUP_ID_NOT_FOUND),
                Some(Err(code)) => Err(code),
                Some(Ok((results, records))) => {
                    // The offsets are already gone from memory; a failed write means they come
                    // back after a restart, which the error tells the client.
                    match coordinator::append(&partition, &records).await {
                        Ok(()) => Ok(results),
                        Err(code) => Err(code),
                    }
                }
            }
        },
    )
    .await;
    match outcome {
        Ok(Some(Ok(results))) => response.with_error_code(error_code::NONE).with_topics(
            results
                .into_iter()
                .map(|(topic, codes)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(topic_name(&topic))
                        .with_partitions(
                            codes
                                .into_iter()
                                .map(|(index, code)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Ok(Some(Err(code))) | Err(code) => response.with_error_code(code),
        Ok(None) => response.with_error_code(error_code::GROUP_ID_NOT_FOUND),
    }
}
