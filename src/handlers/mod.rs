//! Request handlers: one module per Kafka API, and the dispatch table that routes a decoded
//! request to its handler and encodes the answer.
//!
//! A handler runs on the shard of the connection that received the request; it reaches
//! partitions of other shards through `Shard::run_on`, and metadata changes through the
//! controller on shard 0.

mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_producers;
mod fetch;
mod find_coordinator;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod produce;
mod topic_admin;
mod util;

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::{RequestHeader, RequestKind};

use crate::protocol::frame::encode_response;
use crate::server::Shard;

/// Handles one request. `Ok(None)` means no response is sent (Produce with acks=0); `Err`
/// closes the connection.
pub async fn handle(
    shard: Rc<Shard>,
    header: RequestHeader,
    request: RequestKind,
) -> Result<Option<Bytes>, String> {
    let version = header.request_api_version;
    let correlation_id = header.correlation_id;
    macro_rules! reply {
        ($response:expr) => {
            encode_response(correlation_id, version, &$response)
                .map(Some)
                .map_err(|e| format!("encoding the response failed: {e}"))
        };
    }
    match request {
        RequestKind::ApiVersions(request) => reply!(api_versions::handle(request, version)),
        RequestKind::Metadata(request) => reply!(metadata::handle(&shard, request, version).await),
        RequestKind::Produce(request) => match produce::handle(&shard, request, version).await {
            Some(response) => reply!(response),
            None => Ok(None),
        },
        RequestKind::Fetch(request) => reply!(fetch::handle(&shard, request, version).await),
        RequestKind::ListOffsets(request) => {
            reply!(list_offsets::handle(&shard, request, version).await)
        }
        RequestKind::FindCoordinator(request) => {
            reply!(find_coordinator::handle(&shard, request, version))
        }
        RequestKind::CreateTopics(request) => {
            reply!(create_topics::handle(&shard, request, version).await)
        }
        RequestKind::DeleteTopics(request) => {
            reply!(delete_topics::handle(&shard, request, version).await)
        }
        RequestKind::CreatePartitions(request) => {
            reply!(create_partitions::handle(&shard, request).await)
        }
        RequestKind::DescribeConfigs(request) => {
            reply!(describe_configs::handle(&shard, request, version))
        }
        RequestKind::AlterConfigs(request) => {
            reply!(alter_configs::handle(&shard, request).await)
        }
        RequestKind::IncrementalAlterConfigs(request) => {
            reply!(incremental_alter_configs::handle(&shard, request).await)
        }
        RequestKind::DescribeLogDirs(request) => {
            reply!(describe_log_dirs::handle(&shard, request, version).await)
        }
        RequestKind::DescribeCluster(request) => {
            reply!(describe_cluster::handle(&shard, request))
        }
        RequestKind::DeleteRecords(request) => {
            reply!(delete_records::handle(&shard, request).await)
        }
        RequestKind::InitProducerId(request) => {
            reply!(init_producer_id::handle(&shard, request).await)
        }
        RequestKind::DescribeProducers(request) => {
            reply!(describe_producers::handle(&shard, request).await)
        }
        other => Err(format!(
            "no handler for {:?}",
            std::mem::discriminant(&other)
        )),
    }
}
