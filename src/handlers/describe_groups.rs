//! DescribeGroups (v0–v6): state, protocol and members; member metadata and assignments
//! only once the group is Stable, as Kafka shows them. An unknown group is "Dead" (and
//! GROUP_ID_NOT_FOUND from v6).

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::util::str_bytes;
use crate::coordinator::classic::GroupState;
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut groups = Vec::new();
    for group in request.groups {
        groups.push(describe_one(shard, group.to_string(), version).await);
    }
    DescribeGroupsResponse::default()
        .with_throttle_time_ms(0)
        .with_groups(groups)
}

fn dead(group_id: &str, version: i16) -> DescribedGroup {
    let group = DescribedGroup::default()
        .with_group_id(GroupId(str_bytes(group_id)))
        .with_group_state(str_bytes("Dead"))
        .with_error_code(if version >= 6 {
            error_code::GROUP_ID_NOT_FOUND
        } else {
            error_code::NONE
        });
    if version >= 6 {
        group.with_error_message(Some(str_bytes(&format!("Group {group_id} not found."))))
    } else {
        group
    }
}

async fn describe_one(shard: &Rc<Shard>, group_id: String, version: i16) -> DescribedGroup {
    if group_id.is_empty() {
        return dead(&group_id, version).with_error_code(error_code::INVALID_GROUP_ID);
    }
    let id = group_id.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, false, move |owner, _| async move {
            owner.groups.with_existing(&id, |entry| {
                let mut described = DescribedGroup::default()
                    .with_group_id(GroupId(str_bytes(&id)))
                    .with_error_code(error_code::NONE)
                    .with_group_state(str_bytes(entry.state_name()))
                    .with_protocol_type(str_bytes(&entry.protocol_type()));
                match &entry.kind {
                    GroupKind::Classic(group) => {
                        let stable = group.state == GroupState::Stable;
                        if stable {
                            described.protocol_data =
                                str_bytes(group.protocol_name.as_deref().unwrap_or(""));
                        }
                        described.members = group
                            .describe_members()
                            .into_iter()
                            .map(|(member, metadata)| {
                                let mut out = DescribedGroupMember::default()
                                    .with_member_id(str_bytes(&member.id))
                                    .with_client_id(str_bytes(&member.client_id))
                                    .with_client_host(str_bytes(&member.client_host));
                                if version >= 4 {
                                    out.group_instance_id =
                                        member.instance_id.as_deref().map(str_bytes);
                                }
                                if stable {
                                    out.member_metadata = metadata;
                                    out.member_assignment = member.assignment.clone();
                                }
                                out
                            })
                            .collect();
                    }
                    GroupKind::Consumer(group) => {
                        described.members = group
                            .describe()
                            .into_iter()
                            .map(|member| {
                                let mut out = DescribedGroupMember::default()
                                    .with_member_id(str_bytes(&member.member_id))
                                    .with_client_id(str_bytes(&member.client_id))
                                    .with_client_host(str_bytes(&member.client_host));
                                if version >= 4 {
                                    out.group_instance_id =
                                        member.instance_id.as_deref().map(str_bytes);
                                }
                                out
                            })
                            .collect();
                    }
                }
                described
            })
        })
        .await;
    match outcome {
        Ok(Some(Some(described))) => described,
        Ok(Some(None)) | Ok(None) => dead(&group_id, version),
        Err(code) => dead(&group_id, version).with_error_code(code),
    }
}
