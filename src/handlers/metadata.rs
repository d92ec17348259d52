//! Metadata: brokers (this one), cluster and controller ids, and topics with their ids and
//! partitions (leader, replicas and ISR are this node). Unknown topics are created when the
//! client allows it (v4+ `allow_auto_topic_creation`; always allowed before v4) and the broker
//! has `--auto-create-topics` on.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::topic_admin::{create_topics, NewTopic};
use super::util::{str_bytes, topic_name};
use crate::catalog::{validate_topic_name, TopicMeta};
use crate::protocol::error_code;
use crate::server::Shard;

/// What one requested topic resolved to.
enum Lookup {
    Found(Arc<TopicMeta>),
    Error {
        name: Option<String>,
        id: Uuid,
        code: i16,
    },
}

pub async fn handle(shard: &Rc<Shard>, request: MetadataRequest, version: i16) -> MetadataResponse {
    let config = &shard.config;
    let catalog = shard.catalog();
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let lookups: Vec<Lookup> = match requested {
        None => catalog
            .topics_by_name
            .values()
            .map(|t| Lookup::Found(t.clone()))
            .collect(),
        Some(topics) => {
            let auto_create =
                config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
            let mut lookups = Vec::with_capacity(topics.len());
            let mut to_create = Vec::new();
            for topic in &topics {
                match &topic.name {
                    Some(name) => match catalog.topic(name) {
                        Some(meta) => lookups.push(Lookup::Found(meta.clone())),
                        None => {
                            let code = if validate_topic_name(name).is_err() {
                                error_code::INVALID_TOPIC_EXCEPTION
                            } else {
                                if auto_create {
                                    to_create.push(name.to_string());
                                }
                                error_code::UNKNOWN_TOPIC_OR_PARTITION
                            };
                            lookups.push(Lookup::Error {
                                name: Some(name.to_string()),
                                id: Uuid::nil(),
                                code,
                            });
                        }
                    },
                    None => match catalog.topic_by_id(&topic.topic_id) {
                        Some(meta) => lookups.push(Lookup::Found(meta.clone())),
                        None => lookups.push(Lookup::Error {
                            name: None,
                            id: topic.topic_id,
                            code: error_code::UNKNOWN_TOPIC_ID,
                        }),
                    },
                }
            }
            if !to_create.is_empty() {
                auto_create_topics(shard, &mut lookups, to_create).await;
            }
            lookups
        }
    };

    let node_id = BrokerId(config.node_id);
    let topics = lookups
        .into_iter()
        .map(|lookup| match lookup {
            Lookup::Found(topic) => describe_topic(&topic, node_id, version),
            Lookup::Error { name, id, code } => MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(name.as_deref().map(topic_name))
                .with_topic_id(if version >= 10 { id } else { Uuid::nil() })
                .with_topic_authorized_operations(i32::MIN),
        })
        .collect();
    let broker = MetadataResponseBroker::default()
        .with_node_id(node_id)
        .with_host(str_bytes(&config.advertised_host))
        .with_port(i32::from(config.advertised_port))
        .with_rack(None);
    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_brokers(vec![broker])
        .with_cluster_id((version >= 2).then(|| str_bytes(&catalog.cluster_id)))
        .with_controller_id(if version >= 1 { node_id } else { BrokerId(-1) })
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

/// Creates the missing topics and replaces their lookups with the created topics (or with the
/// creation's error; a topic created meanwhile by another client counts as found).
async fn auto_create_topics(shard: &Rc<Shard>, lookups: &mut [Lookup], names: Vec<String>) {
    let new_topics = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partitions: -1,
            replication_factor: -1,
            assigned_partitions: 0,
            configs: Vec::new(),
        })
        .collect();
    let results = create_topics(shard, new_topics, false).await;
    let catalog = shard.catalog();
    for (name, result) in names.iter().zip(results) {
        let replacement = match result {
            Ok(topic) => Lookup::Found(topic),
            Err((code, message)) => match catalog.topic(name) {
                Some(topic) => Lookup::Found(topic.clone()),
                None => {
                    tracing::warn!(topic = %name, code, "auto-creation failed: {message}");
                    Lookup::Error {
                        name: Some(name.clone()),
                        id: Uuid::nil(),
                        code: error_code::LEADER_NOT_AVAILABLE,
                    }
                }
            },
        };
        for lookup in lookups.iter_mut() {
            if matches!(lookup, Lookup::Error { name: Some(n), .. } if n == name) {
                *lookup = replacement;
                break;
            }
        }
    }
}

fn describe_topic(topic: &TopicMeta, node_id: BrokerId, version: i16) -> MetadataResponseTopic {
    let partitions = (0..topic.partition_count)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_error_code(error_code::NONE)
                .with_partition_index(index)
                .with_leader_id(node_id)
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![node_id])
                .with_isr_nodes(vec![node_id])
                .with_offline_replicas(vec![])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(error_code::NONE)
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(if version >= 10 { topic.id } else { Uuid::nil() })
        .with_is_internal(version >= 1 && topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
