//! The metadata catalog: topics, their ids, partition counts and config overrides.
//!
//! Changes are records (`MetadataRecord`) appended to a metadata log by one writer (the
//! controller on shard 0) and applied in order to an immutable `Catalog` value; every shard
//! holds an `Arc` of the latest snapshot, replaced by message, never shared behind a lock.

pub mod broker_config;
pub mod store;
pub mod topic_config;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change of metadata, as stored in the metadata log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        id: Uuid,
    },
    CreatePartitions {
        id: Uuid,
        count: i32,
    },
    /// Replaces the topic's config overrides as a whole.
    SetTopicConfigs {
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic broker configs as a whole.
    SetBrokerConfigs {
        configs: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partition_count: i32,
    /// Explicitly set configs; everything else takes the default.
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

/// An immutable view of all metadata at one version.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub cluster_id: String,
    /// Incremented by every applied record.
    pub version: u64,
    pub topics_by_name: BTreeMap<String, Arc<TopicMeta>>,
    pub topics_by_id: HashMap<Uuid, Arc<TopicMeta>>,
    /// Dynamic broker configs (`broker_config`), under Kafka's broker names.
    pub broker_configs: BTreeMap<String, String>,
}

impl Catalog {
    pub fn new(cluster_id: String) -> Catalog {
        Catalog {
            cluster_id,
            ..Catalog::default()
        }
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics_by_name.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics_by_id.get(id)
    }

    /// Applies one record. Records are validated by the controller before they are written,
    /// so one that does not fit (replayed from an older log, say) is skipped with a warning.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.version += 1;
        match record {
            MetadataRecord::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                let topic = Arc::new(TopicMeta {
                    name: name.clone(),
                    id: *id,
                    partition_count: *partitions,
                    configs: configs.clone(),
                });
                self.topics_by_name.insert(name.clone(), topic.clone());
                self.topics_by_id.insert(*id, topic);
            }
            MetadataRecord::DeleteTopic { id } => match self.topics_by_id.remove(id) {
                Some(topic) => {
                    self.topics_by_name.remove(&topic.name);
                }
                None => tracing::warn!(%id, "metadata log deletes an unknown topic"),
            },
            MetadataRecord::CreatePartitions { id, count } => {
                self.update_topic(id, |topic| topic.partition_count = *count)
            }
            MetadataRecord::SetTopicConfigs { id, configs } => {
                self.update_topic(id, |topic| topic.configs = configs.clone())
            }
            MetadataRecord::SetBrokerConfigs { configs } => self.broker_configs = configs.clone(),
        }
    }

    /// Topic config defaults set by dynamic broker configs (topic config name → value).
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        broker_config::topic_defaults(&self.broker_configs)
    }

    /// A topic's configs in force other than built-in defaults: the broker's dynamic defaults,
    /// then the topic's own overrides on top.
    pub fn effective_topic_configs(&self, topic: &TopicMeta) -> BTreeMap<String, String> {
        let mut configs = self.topic_defaults();
        configs.extend(topic.configs.clone());
        configs
    }

    fn update_topic(&mut self, id: &Uuid, change: impl FnOnce(&mut TopicMeta)) {
        let Some(old) = self.topics_by_id.get(id) else {
            tracing::warn!(%id, "metadata log changes an unknown topic");
            return;
        };
        let mut topic = TopicMeta::clone(old);
        change(&mut topic);
        let topic = Arc::new(topic);
        self.topics_by_name
            .insert(topic.name.clone(), topic.clone());
        self.topics_by_id.insert(*id, topic);
    }
}

/// Kafka's rules for topic names: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{c}'; legal characters are ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn apply_keeps_name_and_id_maps_in_step() {
        let mut catalog = Catalog::new("c".into());
        let id = Uuid::new_v4();
        catalog.apply(&MetadataRecord::CreateTopic {
            name: "t".into(),
            id,
            partitions: 2,
            configs: BTreeMap::new(),
        });
        catalog.apply(&MetadataRecord::CreatePartitions { id, count: 5 });
        assert_eq!(catalog.topic("t").unwrap().partition_count, 5);
        assert_eq!(catalog.topic_by_id(&id).unwrap().partition_count, 5);
        catalog.apply(&MetadataRecord::DeleteTopic { id });
        assert!(catalog.topic("t").is_none());
        assert!(catalog.topic_by_id(&id).is_none());
    }
}
