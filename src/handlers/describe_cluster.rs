//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers (this one).

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::util::str_bytes;
use crate::protocol::error_code;
use crate::server::Shard;

/// `endpoint_type` 1: brokers (2, controllers, is answered the same: this node is both).
pub fn handle(shard: &Rc<Shard>, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let config = &shard.config;
    let catalog = shard.catalog();
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(config.node_id))
        .with_host(str_bytes(&config.advertised_host))
        .with_port(i32::from(config.advertised_port))
        .with_rack(None)
        .with_is_fenced(false);
    DescribeClusterResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(error_code::NONE)
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&catalog.cluster_id))
        .with_controller_id(BrokerId(config.node_id))
        .with_brokers(vec![broker])
        .with_cluster_authorized_operations(i32::MIN)
}
