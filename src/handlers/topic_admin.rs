//! Metadata changes shared by the admin handlers (and Metadata's auto-creation): each is
//! planned and committed by the controller on shard 0 against its current catalog, so checks
//! such as "the topic already exists" cannot race.

use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use crate::catalog::{topic_config, validate_topic_name, Catalog, MetadataRecord, TopicMeta};
use crate::protocol::error_code;
use crate::server::Shard;

/// A Kafka error code with its message.
pub type AdminError = (i16, String);

pub struct NewTopic {
    pub name: String,
    /// -1: the broker's default.
    pub partitions: i32,
    pub replication_factor: i16,
    /// Partitions given by manual replica assignment (0: none given).
    pub assigned_partitions: i32,
    pub configs: Vec<(String, Option<String>)>,
}

/// Runs `plan` on the controller and commits its records.
async fn on_controller<T, P>(shard: &Rc<Shard>, plan: P) -> Result<T, AdminError>
where
    T: Send + 'static,
    P: FnOnce(&Catalog) -> (Vec<MetadataRecord>, T) + Send + 'static,
{
    let outcome = shard
        .run_on(0, move |controller_shard| async move {
            let controller = controller_shard
                .controller()
                .ok_or_else(|| "shard 0 has no controller".to_string())?;
            controller
                .update(&controller_shard, plan)
                .await
                .map_err(|e| format!("metadata log write failed: {e}"))
        })
        .await;
    match outcome {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(message)) => Err((error_code::KAFKA_STORAGE_ERROR, message)),
        Err(unavailable) => Err((error_code::UNKNOWN_SERVER_ERROR, unavailable.to_string())),
    }
}

/// Validates config overrides for a topic; the first bad one is the error.
pub fn validate_configs(
    configs: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, AdminError> {
    let mut valid = BTreeMap::new();
    for (name, value) in configs {
        let value = value.clone().ok_or_else(|| {
            (
                error_code::INVALID_CONFIG,
                format!("Null value not supported for topic configs: {name}"),
            )
        })?;
        topic_config::validate(name, &value).map_err(|m| (error_code::INVALID_CONFIG, m))?;
        valid.insert(name.clone(), value);
    }
    Ok(valid)
}

/// Creates topics; with `validate_only`, checks them without creating anything. Results are
/// in the order of `topics`.
pub async fn create_topics(
    shard: &Rc<Shard>,
    topics: Vec<NewTopic>,
    validate_only: bool,
) -> Vec<Result<Arc<TopicMeta>, AdminError>> {
    let count = topics.len();
    let default_partitions = shard.config.default_partitions;
    let planned = on_controller(shard, move |catalog| {
        let mut records = Vec::new();
        let mut results = Vec::new();
        let mut seen = HashSet::new();
        for topic in topics {
            let result = plan_topic(catalog, &topic, default_partitions, &mut seen);
            let result = result.map(|meta| {
                if !validate_only {
                    records.push(MetadataRecord::CreateTopic {
                        name: meta.name.clone(),
                        id: meta.id,
                        partitions: meta.partition_count,
                        configs: meta.configs.clone(),
                    });
                }
                Arc::new(meta)
            });
            results.push(result);
        }
        (records, results)
    })
    .await;
    planned.unwrap_or_else(|error| vec![Err(error); count])
}

fn plan_topic(
    catalog: &Catalog,
    topic: &NewTopic,
    default_partitions: i32,
    seen: &mut HashSet<String>,
) -> Result<TopicMeta, AdminError> {
    validate_topic_name(&topic.name).map_err(|m| (error_code::INVALID_TOPIC_EXCEPTION, m))?;
    if !seen.insert(topic.name.clone()) {
        return Err((
            error_code::INVALID_REQUEST,
            format!(
                "Topic '{}' appears more than once in the request",
                topic.name
            ),
        ));
    }
    if catalog.topic(&topic.name).is_some() {
        return Err((
            error_code::TOPIC_ALREADY_EXISTS,
            format!("Topic '{}' already exists.", topic.name),
        ));
    }
    let partitions = if topic.assigned_partitions > 0 {
        topic.assigned_partitions
    } else if topic.partitions == -1 {
        default_partitions
    } else {
        topic.partitions
    };
    if partitions < 1 {
        return Err((
            error_code::INVALID_PARTITIONS,
            "Number of partitions must be larger than 0.".to_string(),
        ));
    }
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        return Err((
            error_code::INVALID_REPLICATION_FACTOR,
            format!(
                "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only 1 broker(s) are registered.",
                topic.replication_factor, topic.replication_factor
            ),
        ));
    }
    let configs = validate_configs(&topic.configs)?;
    Ok(TopicMeta {
        name: topic.name.clone(),
        id: Uuid::new_v4(),
        partition_count: partitions,
        configs,
    })
}

/// Deletes topics, each named by name or by id. Results in the order of `topics`.
pub async fn delete_topics(
    shard: &Rc<Shard>,
    topics: Vec<TopicRef>,
) -> Vec<Result<Arc<TopicMeta>, AdminError>> {
    let count = topics.len();
    let planned = on_controller(shard, move |catalog| {
        let mut records = Vec::new();
        let mut deleted = HashSet::new();
        let results = topics
            .into_iter()
            .map(|reference| {
                let topic = resolve(catalog, &reference)?.clone();
                if deleted.insert(topic.id) {
                    records.push(MetadataRecord::DeleteTopic { id: topic.id });
                }
                Ok(topic)
            })
            .collect();
        (records, results)
    })
    .await;
    planned.unwrap_or_else(|error| vec![Err(error); count])
}

/// A topic named by name or by id, as requests do.
#[derive(Debug, Clone)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

pub fn resolve<'a>(
    catalog: &'a Catalog,
    reference: &TopicRef,
) -> Result<&'a Arc<TopicMeta>, AdminError> {
    match reference {
        TopicRef::Name(name) => catalog.topic(name).ok_or_else(|| {
            (
                error_code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("This server does not host this topic: {name}"),
            )
        }),
        TopicRef::Id(id) => catalog.topic_by_id(id).ok_or_else(|| {
            (
                error_code::UNKNOWN_TOPIC_ID,
                format!("This server does not host this topic ID: {id}"),
            )
        }),
    }
}

/// Raises partition counts: `(topic name, new count)`. Results in order.
pub async fn create_partitions(
    shard: &Rc<Shard>,
    requests: Vec<(String, i32)>,
    validate_only: bool,
) -> Vec<Result<(), AdminError>> {
    let count = requests.len();
    let planned = on_controller(shard, move |catalog| {
        let mut records = Vec::new();
        let results = requests
            .into_iter()
            .map(|(name, new_count)| {
                let topic = resolve(catalog, &TopicRef::Name(name))?;
                if new_count <= topic.partition_count {
                    let verb = if new_count == topic.partition_count { "already has" } else { "has" };
                    return Err((
                        error_code::INVALID_PARTITIONS,
                        format!(
                            "Topic {} {verb} {} partitions; the new count {new_count} must be larger.",
                            topic.name, topic.partition_count
                        ),
                    ));
                }
                if !validate_only {
                    records.push(MetadataRecord::CreatePartitions {
                        id: topic.id,
                        count: new_count,
                    });
                }
                Ok(())
            })
            .collect();
        (records, results)
    })
    .await;
    planned.unwrap_or_else(|error| vec![Err(error); count])
}

/// Replaces topics' config overrides: `change` maps a topic's current overrides to the new
/// ones (or an error). Results in order.
pub async fn alter_topic_configs<C>(
    shard: &Rc<Shard>,
    changes: Vec<(String, C)>,
    validate_only: bool,
) -> Vec<Result<(), AdminError>>
where
    C: FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>
        + Send
        + 'static,
{
    let count = changes.len();
    let planned = on_controller(shard, move |catalog| {
        let mut records = Vec::new();
        let results = changes
            .into_iter()
            .map(|(name, change)| {
                let topic = resolve(catalog, &TopicRef::Name(name))?;
                let configs = change(&topic.configs)?;
                if !validate_only && configs != topic.configs {
                    records.push(MetadataRecord::SetTopicConfigs {
                        id: topic.id,
                        configs,
                    });
                }
                Ok(())
            })
            .collect();
        (records, results)
    })
    .await;
    planned.unwrap_or_else(|error| vec![Err(error); count])
}

/// Replaces the dynamic broker configs: `change` maps the current ones to the new ones (or an
/// error).
pub async fn alter_broker_configs<C>(
    shard: &Rc<Shard>,
    change: C,
    validate_only: bool,
) -> Result<(), AdminError>
where
    C: FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError>
        + Send
        + 'static,
{
    on_controller(shard, move |catalog| {
        match change(&catalog.broker_configs) {
            Ok(configs) if !validate_only && configs != catalog.broker_configs => {
                (vec![MetadataRecord::SetBrokerConfigs { configs }], Ok(()))
            }
            Ok(_) => (Vec::new(), Ok(())),
            Err(error) => (Vec::new(), Err(error)),
        }
    })
    .await?
}

/// The broker a config request names: this node's id, or "" for the cluster-wide default
/// (the same thing on a single node).
pub fn check_broker_name(shard: &Shard, name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name == shard.config.node_id.to_string() {
        Ok(())
    } else {
        Err((
            error_code::INVALID_REQUEST,
            format!("Unknown broker {name}"),
        ))
    }
}
