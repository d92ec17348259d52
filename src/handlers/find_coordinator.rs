//! FindCoordinator: this single broker coordinates every group and transactional id. In v4+
//! several keys are asked at once (`coordinator_keys`).

use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::util::str_bytes;
use crate::protocol::error_code;
use crate::server::Shard;

pub fn handle(
    shard: &Rc<Shard>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
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
                    .with_error_code(error_code::NONE)
            })
            .collect();
    } else {
        response = response
            .with_error_code(error_code::NONE)
            .with_node_id(node_id)
            .with_host(host)
            .with_port(port);
    }
    response
}
