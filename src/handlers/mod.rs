//! Request handlers: one module per Kafka API, and the dispatch table that routes a decoded
//! request to its handler and encodes the answer.
//!
//! A handler runs on the shard of the connection that received the request; it reaches
//! partitions of other shards through `Shard::run_on`, and metadata changes through the
//! controller on shard 0.

mod alter_configs;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sync_group;
pub(crate) mod topic_admin;
mod util;

use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::messages::{RequestHeader, RequestKind};

use crate::protocol::frame::{self, encode_response, encode_response_sharing, Frame};
use crate::server::Shard;

/// Handles one request. `Ok(None)` means no response is sent (Produce with acks=0); `Err`
/// closes the connection.
pub async fn handle(
    shard: Rc<Shard>,
    header: RequestHeader,
    request: RequestKind,
    peer: SocketAddr,
) -> Result<Option<Frame>, String> {
    let version = header.request_api_version;
    let client_id = || {
        header
            .client_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default()
    };
    let correlation_id = header.correlation_id;
    macro_rules! reply {
        ($response:expr) => {
            encode_response(correlation_id, version, &$response)
                .map(|bytes| Some(frame::single(bytes)))
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
        RequestKind::Fetch(request) => {
            // Record data is referenced from the read buffers, not copied into the frame.
            let output = fetch::handle(&shard, request, version).await;
            encode_response_sharing(correlation_id, version, &output.response, output.shared)
                .map(Some)
                .map_err(|e| format!("encoding the response failed: {e}"))
        }
        RequestKind::ListOffsets(request) => {
            reply!(list_offsets::handle(&shard, request, version).await)
        }
        RequestKind::FindCoordinator(request) => {
            reply!(find_coordinator::handle(&shard, request, version).await)
        }
        RequestKind::JoinGroup(request) => {
            reply!(join_group::handle(&shard, request, version, client_id(), peer).await)
        }
        RequestKind::SyncGroup(request) => {
            reply!(sync_group::handle(&shard, request, version).await)
        }
        RequestKind::Heartbeat(request) => reply!(heartbeat::handle(&shard, request).await),
        RequestKind::LeaveGroup(request) => {
            reply!(leave_group::handle(&shard, request, version).await)
        }
        RequestKind::OffsetCommit(request) => {
            reply!(offset_commit::handle(&shard, request).await)
        }
        RequestKind::OffsetFetch(request) => {
            reply!(offset_fetch::handle(&shard, request, version).await)
        }
        RequestKind::OffsetDelete(request) => {
            reply!(offset_delete::handle(&shard, request).await)
        }
        RequestKind::ListGroups(request) => {
            reply!(list_groups::handle(&shard, request, version).await)
        }
        RequestKind::DescribeGroups(request) => {
            reply!(describe_groups::handle(&shard, request, version).await)
        }
        RequestKind::DeleteGroups(request) => {
            reply!(delete_groups::handle(&shard, request).await)
        }
        RequestKind::ConsumerGroupHeartbeat(request) => {
            reply!(consumer_group_heartbeat::handle(&shard, request, client_id(), peer).await)
        }
        RequestKind::ConsumerGroupDescribe(request) => {
            reply!(consumer_group_describe::handle(&shard, request).await)
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
