//! DeleteTopics: by name (v1–v5 `topic_names`, v6 `topics[].name`) or by id (v6).

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use super::topic_admin::{delete_topics, TopicRef};
use super::util::{str_bytes, topic_name};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let references: Vec<TopicRef> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => TopicRef::Name(name.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|name| TopicRef::Name(name.to_string()))
            .collect()
    };
    let results = delete_topics(shard, references.clone()).await;
    let responses = references
        .into_iter()
        .zip(results)
        .map(|(reference, result)| {
            let mut entry = DeletableTopicResult::default();
            match &reference {
                TopicRef::Name(name) => entry.name = Some(topic_name(name)),
                TopicRef::Id(id) => entry.topic_id = *id,
            }
            match result {
                Ok(topic) => {
                    entry.name = Some(topic_name(&topic.name));
                    if version >= 6 {
                        entry.topic_id = topic.id;
                    }
                    entry.error_code = error_code::NONE;
                }
                Err((code, message)) => {
                    entry.error_code = code;
                    if version >= 5 {
                        entry.error_message = Some(str_bytes(&message));
                    }
                }
            }
            entry
        })
        .collect();
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}
