//! Heartbeat (v0–v4): keeps a classic member's session and tells it to rejoin during a
//! rebalance.

use std::rc::Rc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::coordinator::{self, GroupKind};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(shard: &Rc<Shard>, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.to_string();
    let error = if group_id.is_empty() {
        error_code::INVALID_GROUP_ID
    } else {
        let id = group_id.clone();
        let outcome =
            coordinator::on_group_shard(shard, &group_id, true, move |owner, _| async move {
                let member_id = request.member_id.to_string();
                let instance_id = request.group_instance_id.as_ref().map(|s| s.to_string());
                owner
                    .groups
                    .with_existing(&id, |entry| match &mut entry.kind {
                        GroupKind::Classic(group) => group.heartbeat(
                            &member_id,
                            instance_id.as_deref(),
                            request.generation_id,
                            std::time::Instant::now(),
                        ),
                        GroupKind::Consumer(_) => error_code::UNKNOWN_MEMBER_ID,
                    })
                    .unwrap_or(error_code::UNKNOWN_MEMBER_ID)
            })
            .await;
        match outcome {
            Ok(Some(code)) => code,
            Ok(None) => error_code::COORDINATOR_NOT_AVAILABLE,
            Err(code) => code,
        }
    };
    HeartbeatResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(error)
}
