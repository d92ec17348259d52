//! SyncGroup (v0–v5): followers wait for the leader's assignment; the leader's is written to
//! `__consumer_offsets` (the group's metadata record) before anyone is answered.

use std::rc::Rc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::util::str_bytes;
use crate::coordinator::classic::{SyncOutcome, SyncParams, SyncReply};
use crate::coordinator::records::GroupRecord;
use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let group_id = request.group_id.to_string();
    if group_id.is_empty() {
        return response(error_outcome(error_code::INVALID_GROUP_ID), version);
    }
    let id = group_id.clone();
    let outcome =
        coordinator::on_group_shard(shard, &group_id, true, move |owner, partition| async move {
            let now = std::time::Instant::now();
            let now_ms = crate::clock::now_ms();
            let member_id = request.member_id.to_string();
            let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
            let protocol_type = request.protocol_type.as_ref().map(|s| s.to_string());
            let protocol_name = request.protocol_name.as_ref().map(|s| s.to_string());
            let assignments = request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect();
            let reply = owner
                .groups
                .with_existing(&id, |entry| match &mut entry.kind {
                    GroupKind::Classic(group) => group.sync(
                        SyncParams {
                            member_id: &member_id,
                            instance_id: instance_id.as_deref(),
                            generation: request.generation_id,
                            protocol: (protocol_type.as_deref(), protocol_name.as_deref()),
                            assignments,
                        },
                        now,
                        now_ms,
                    ),
                    GroupKind::Consumer(_) => {
                        SyncReply::Now(error_outcome(error_code::UNKNOWN_MEMBER_ID))
                    }
                });
            let reply =
                reply.unwrap_or(SyncReply::Now(error_outcome(error_code::UNKNOWN_MEMBER_ID)));
            match reply {
                SyncReply::Now(outcome) => outcome,
                SyncReply::Wait(rx) => rx
                    .await
                    .unwrap_or_else(|_| error_outcome(error_code::NOT_COORDINATOR)),
                SyncReply::Store {
                    generation,
                    value,
                    wait,
                } => {
                    let record = GroupRecord::ClassicGroup {
                        group: id.clone(),
                        value: Some(value),
                    };
                    let stored = coordinator::append(&partition, &[record]).await.is_ok();
                    owner.groups.with_existing(&id, |entry| {
                        if let GroupKind::Classic(group) = &mut entry.kind {
                            group.complete_sync(
                                generation,
                                stored,
                                std::time::Instant::now(),
                                crate::clock::now_ms(),
                            );
                        }
                    });
                    wait.await
                        .unwrap_or_else(|_| error_outcome(error_code::NOT_COORDINATOR))
                }
            }
        })
        .await;
    match outcome {
        Ok(Some(outcome)) => response(outcome, version),
        Ok(None) => response(
            error_outcome(error_code::COORDINATOR_NOT_AVAILABLE),
            version,
        ),
        Err(code) => response(error_outcome(code), version),
    }
}

fn error_outcome(error: i16) -> SyncOutcome {
    SyncOutcome {
        error,
        protocol_type: None,
        protocol_name: None,
        assignment: Default::default(),
    }
}

fn response(outcome: SyncOutcome, version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(outcome.error)
        .with_assignment(outcome.assignment);
    if version >= 5 {
        response.protocol_type = outcome.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = outcome.protocol_name.as_deref().map(str_bytes);
    }
    response
}
