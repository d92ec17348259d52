//! LeaveGroup (v0–v5): one member (v0–v2) or a batch by member id or instance id (v3+,
//! KIP-345). A departure starts a rebalance for those who stay.

use std::rc::Rc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::util::str_bytes;
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.to_string();
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let response = LeaveGroupResponse::default().with_throttle_time_ms(0);
    if group_id.is_empty() {
        return response.with_error_code(error_code::INVALID_GROUP_ID);
    }
    let id = group_id.clone();
    let members = leaving.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, true, move |owner, partition| async move {
            let now = std::time::Instant::now();
            let now_ms = crate::clock::now_ms();
            let (codes, record) = owner
                .groups
                .with_existing(&id, |entry| match &mut entry.kind {
                    GroupKind::Classic(group) => {
                        let codes: Vec<i16> = members
                            .iter()
                            .map(|(member, instance)| {
                                group.leave(member, instance.as_deref(), now, now_ms)
                            })
                            .collect();
                        let record = (group.state == coordinator::classic::GroupState::Empty
                            && codes.contains(&error_code::NONE))
                        .then(|| coordinator::records::GroupRecord::ClassicGroup {
                            group: id.clone(),
                            value: Some(group.to_record(now_ms)),
                        });
                        (codes, record)
                    }
                    GroupKind::Consumer(_) => {
                        (vec![error_code::UNKNOWN_MEMBER_ID; members.len()], None)
                    }
                })
                .unwrap_or_else(|| (vec![error_code::UNKNOWN_MEMBER_ID; members.len()], None));
            if let Some(record) = record {
                let _ = coordinator::append(&partition, &[record]).await;
            }
            codes
        })
        .await;
    let codes = match outcome {
        Ok(Some(codes)) => codes,
        Ok(None) => vec![error_code::UNKNOWN_MEMBER_ID; leaving.len()],
        Err(code) => return response.with_error_code(code),
    };
    if version >= 3 {
        response.with_error_code(error_code::NONE).with_members(
            leaving
                .into_iter()
                .zip(codes)
                .map(|((member_id, instance_id), code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&member_id))
                        .with_group_instance_id(instance_id.as_deref().map(str_bytes))
                        .with_error_code(code)
                })
                .collect(),
        )
    } else {
        response.with_error_code(codes.first().copied().unwrap_or(error_code::NONE))
    }
}
