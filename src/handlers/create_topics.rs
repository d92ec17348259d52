//! CreateTopics: partitions (or the default), replication factor 1 or -1, configs, and
//! validate_only. v5+ answers with the topic's id, partition count and configs.

use std::rc::Rc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use uuid::Uuid;

use super::describe_configs::topic_config_entries;
use super::topic_admin::{create_topics, NewTopic};
use super::util::str_bytes;
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
    let new_topics = request
        .topics
        .into_iter()
        .map(|topic| NewTopic {
            name: topic.name.to_string(),
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assigned_partitions: topic.assignments.len() as i32,
            configs: topic
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let results = create_topics(shard, new_topics, request.validate_only).await;
    let inherited = shard.catalog().topic_defaults();
    let topics = names
        .into_iter()
        .zip(results)
        .map(|(name, result)| {
            let base = CreatableTopicResult::default().with_name(name);
            match result {
                Ok(topic) => {
                    let configs = topic_config_entries(&topic.configs, &inherited)
                        .into_iter()
                        .map(|entry| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(entry.name))
                                .with_value(Some(str_bytes(&entry.value)))
                                .with_read_only(false)
                                .with_config_source(entry.source)
                                .with_is_sensitive(false)
                        })
                        .collect();
                    base.with_error_code(error_code::NONE)
                        .with_topic_id(if request.validate_only || version < 7 {
                            Uuid::nil()
                        } else {
                            topic.id
                        })
                        .with_num_partitions(if version >= 5 {
                            topic.partition_count
                        } else {
                            -1
                        })
                        .with_replication_factor(if version >= 5 { 1 } else { -1 })
                        .with_configs(if version >= 5 { Some(configs) } else { None })
                }
                Err((code, message)) => base
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_configs(None),
            }
        })
        .collect();
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(topics)
}
