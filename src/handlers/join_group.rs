//! JoinGroup (v0–v9): routed to the group's coordinator shard, where the classic group's
//! state machine answers at once or when the rebalance completes.

use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::util::str_bytes;
use crate::coordinator::classic::{JoinOutcome, JoinParams, Reply};
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: JoinGroupRequest,
    version: i16,
    client_id: String,
    peer: SocketAddr,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    if group_id.is_empty() {
        return response(
            JoinOutcome::error(error_code::INVALID_GROUP_ID, &member_id),
            version,
        );
    }
    let params = JoinParams {
        member_id: member_id.clone(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id,
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves for both.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let id = group_id.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, true, move |owner, partition| async move {
            let settings = coordinator::classic_settings(&owner);
            let now = std::time::Instant::now();
            let now_ms = crate::clock::now_ms();
            let reply = owner.groups.with_entry(&id, partition.index, |entry| {
                if let GroupKind::Consumer(group) = &entry.kind {
                    if !group.is_empty() {
                        return Reply::Now(JoinOutcome::error(
                            error_code::INCONSISTENT_GROUP_PROTOCOL,
                            &params.member_id,
                        ));
                    }
                    // An empty KIP-848 group may become a classic one (Kafka converts it too).
                    entry.kind = GroupKind::Classic(Box::new(
                        coordinator::classic::ClassicGroup::new(id.clone(), now_ms),
                    ));
                }
                match &mut entry.kind {
                    GroupKind::Classic(group) => group.join(params, &settings, now, now_ms),
                    GroupKind::Consumer(_) => Reply::Now(JoinOutcome::error(
                        error_code::INCONSISTENT_GROUP_PROTOCOL,
                        "",
                    )),
                }
            });
            match reply {
                Reply::Now(outcome) => outcome,
                Reply::Wait(rx) => rx
                    .await
                    .unwrap_or_else(|_| JoinOutcome::error(error_code::NOT_COORDINATOR, "")),
            }
        })
        .await;
    match outcome {
        Ok(Some(outcome)) => response(outcome, version),
        Ok(None) => response(
            JoinOutcome::error(error_code::COORDINATOR_NOT_AVAILABLE, &member_id),
            version,
        ),
        Err(code) => response(JoinOutcome::error(code, &member_id), version),
    }
}

fn response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_leader(str_bytes(&outcome.leader))
        .with_member_id(str_bytes(&outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(member_id, instance_id, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&member_id))
                        .with_group_instance_id(if version >= 5 {
                            instance_id.as_deref().map(str_bytes)
                        } else {
                            None
                        })
                        .with_metadata(metadata)
                })
                .collect(),
        );
    // The protocol name is nullable only from v7, where the protocol type joins it.
    if version >= 7 {
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
    } else {
        response.protocol_name = Some(str_bytes(outcome.protocol_name.as_deref().unwrap_or("")));
    }
    response
}
