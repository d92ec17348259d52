//! FindCoordinator: this single broker coordinates every group and transactional id. In v4+
//! several keys are asked at once (`coordinator_keys`).

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::util::str_bytes;
use crate::protocol::error_code;
use crate::server::Shard;

/// Kafka's key type for consumer groups (1 is transactional ids).
const GROUP_KEY_TYPE: i8 = 0;

pub async fn handle(
    shard: &Rc<Shard>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // Groups are coordinated through __consumer_offsets: create it on first need, as Kafka
    // does, so that the group's partition is open before the client arrives.
    let ready = if request.key_type == GROUP_KEY_TYPE {
        match crate::coordinator::offsets_topic(shard, true).await {
            Ok(_) => error_code::NONE,
            Err(code) => code,
        }
    } else {
        error_code::NONE
    };
    let config = &shard.config;
    let node_id = BrokerId(config.node_id);
    let host = str_bytes(&config.advertised_host);
    let port = i32::from(config.advertised_port);
    let mut response = FindCoordinatorResponse::default().with_throttle_time_ms(0);
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(node_id)
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(ready)
            })
            .collect();
    } else {
        response = response
            .with_error_code(ready)
            .with_node_id(node_id)
            .with_host(host)
            .with_port(port);
    }
    response
}
