//! ConsumerGroupDescribe (v0–v1, KIP-848): epochs, assignor, and each member's
//! subscription, assignment and target assignment. A classic or unknown group is
//! GROUP_ID_NOT_FOUND (clients then fall back to DescribeGroups).

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId,
};
use uuid::Uuid;

use super::util::{str_bytes, topic_name};
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::new();
    for group in request.group_ids {
        groups.push(describe_one(shard, group.to_string()).await);
    }
    ConsumerGroupDescribeResponse::default()
        .with_throttle_time_ms(0)
        .with_groups(groups)
}

fn not_found(group_id: &str, code: i16) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(GroupId(str_bytes(group_id)))
        .with_error_code(code)
        .with_error_message(Some(str_bytes(&format!("Group {group_id} not found."))))
        .with_group_state(str_bytes("Dead"))
        .with_authorized_operations(i32::MIN)
}

async fn describe_one(shard: &Rc<Shard>, group_id: String) -> DescribedGroup {
    if group_id.is_empty() {
        return not_found(&group_id, error_code::INVALID_GROUP_ID);
    }
    let id = group_id.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, false, move |owner, _| async move {
            let catalog = owner.catalog();
            let names: BTreeMap<Uuid, String> = catalog
                .topics_by_id
                .values()
                .map(|t| (t.id, t.name.clone()))
                .collect();
            let assignment = |map: &BTreeMap<Uuid, Vec<i32>>| {
                Assignment::default().with_topic_partitions(
                    map.iter()
                        .map(|(id, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(*id)
                                .with_topic_name(topic_name(
                                    names.get(id).map(String::as_str).unwrap_or(""),
                                ))
                                .with_partitions(partitions.clone())
                        })
                        .collect(),
                )
            };
            owner.groups.with_existing(&id, |entry| match &entry.kind {
                GroupKind::Consumer(group) => Some(
                    DescribedGroup::default()
                        .with_group_id(GroupId(str_bytes(&id)))
                        .with_error_code(error_code::NONE)
                        .with_group_state(str_bytes(group.state_name()))
                        .with_group_epoch(group.group_epoch())
                        .with_assignment_epoch(group.assignment_epoch())
                        .with_assignor_name(str_bytes(group.assignor_name()))
                        .with_authorized_operations(i32::MIN)
                        .with_members(
                            group
                                .describe()
                                .into_iter()
                                .map(|m| {
                                    Member::default()
                                        .with_member_id(str_bytes(&m.member_id))
                                        .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                        .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                        .with_member_epoch(m.member_epoch)
                                        .with_client_id(str_bytes(&m.client_id))
                                        .with_client_host(str_bytes(&m.client_host))
                                        .with_subscribed_topic_names(
                                            m.subscribed_topic_names
                                                .iter()
                                                .map(|n| topic_name(n))
                                                .collect(),
                                        )
                                        .with_subscribed_topic_regex(
                                            m.subscribed_topic_regex.as_deref().map(str_bytes),
                                        )
                                        .with_assignment(assignment(&m.assignment))
                                        .with_target_assignment(assignment(&m.target_assignment))
                                })
                                .collect(),
                        ),
                ),
                GroupKind::Classic(_) => None,
            })
        })
        .await;
    match outcome {
        Ok(Some(Some(Some(described)))) => described,
        Ok(_) => not_found(&group_id, error_code::GROUP_ID_NOT_FOUND),
        Err(code) => not_found(&group_id, code),
    }
}
