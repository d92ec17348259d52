//! ConsumerGroupHeartbeat (v0–v1, KIP-848): the member's heartbeat carries its subscription
//! and owned partitions; the group's answer carries its epoch and assignment. A change of
//! the group epoch is written to `__consumer_offsets`.

use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::util::str_bytes;
use crate::coordinator::consumer_group::{ConsumerGroup, HeartbeatInput, HeartbeatOutput};
use crate::coordinator::records::GroupRecord;
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ConsumerGroupHeartbeatRequest,
    client_id: String,
    peer: SocketAddr,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return error_response(error_code::INVALID_GROUP_ID, "the group id is empty");
    }
    let input = HeartbeatInput {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|s| s.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned: request.topic_partitions.as_ref().map(|owned| {
            owned
                .iter()
                .map(|t| (t.topic_id, t.partitions.clone()))
                .collect()
        }),
        client_id,
        client_host: format!("/{}", peer.ip()),
    };
    let id = group_id.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, true, move |owner, partition| async move {
            let settings = coordinator::consumer_settings(&owner);
            let topics = coordinator::topics_by_name(&owner.catalog());
            let (output, epoch_record) = owner.groups.with_entry(&id, partition.index, |entry| {
                if let GroupKind::Classic(group) = &entry.kind {
                    if !group.is_empty() {
                        return (
                            Err("the group is a classic group with members".to_string()),
                            None,
                        );
                    }
                    // An empty classic group (or one that only holds offsets) becomes a
                    // KIP-848 group, keeping its offsets.
                    let mut converted = ConsumerGroup::new(id.clone());
                    converted.set_group_epoch(group.generation.max(0));
                    entry.kind = GroupKind::Consumer(converted);
                }
                let GroupKind::Consumer(group) = &mut entry.kind else {
                    return (Err("not a consumer group".to_string()), None);
                };
                let before = group.group_epoch();
                let output = group.heartbeat(input, &topics, &settings, std::time::Instant::now());
                let record = (group.group_epoch() != before).then(|| GroupRecord::ConsumerGroup {
                    group: id.clone(),
                    epoch: Some(group.group_epoch()),
                });
                (Ok(output), record)
            });
            if let Some(record) = epoch_record {
                if let Err(code) = coordinator::append(&partition, &[record]).await {
                    return Err((
                        code,
                        "the group's new epoch could not be written".to_string(),
                    ));
                }
            }
            output.map_err(|message| (error_code::GROUP_ID_NOT_FOUND, message))
        })
        .await;
    match outcome {
        Ok(Some(Ok(output))) => response(output),
        Ok(Some(Err((code, message)))) => error_response(code, &message),
        Ok(None) => error_response(error_code::COORDINATOR_NOT_AVAILABLE, "no coordinator"),
        Err(code) => error_response(code, "the coordinator is not available here"),
    }
}

fn error_response(code: i16, message: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
        .with_member_epoch(-1)
}

fn response(output: HeartbeatOutput) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(output.error_code)
        .with_error_message(output.error_message.as_deref().map(str_bytes))
        .with_member_id(output.member_id.as_deref().map(str_bytes))
        .with_member_epoch(output.member_epoch)
        .with_heartbeat_interval_ms(output.heartbeat_interval_ms)
        .with_assignment(output.assignment.map(|assignment| {
            Assignment::default().with_topic_partitions(
                assignment
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        TopicPartitions::default()
                            .with_topic_id(topic_id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        }))
}
