//! CreatePartitions: raise a topic's partition count; validate_only checks without changing.

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::topic_admin::create_partitions;
use super::util::str_bytes;
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
    let changes = request
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.count))
        .collect();
    let results = create_partitions(shard, changes, request.validate_only).await;
    let results = names
        .into_iter()
        .zip(results)
        .map(|(name, result)| {
            let entry = CreatePartitionsTopicResult::default().with_name(name);
            match result {
                Ok(()) => entry.with_error_code(error_code::NONE),
                Err((code, message)) => entry
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}
