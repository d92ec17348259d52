//! DescribeConfigs: topic configs (overrides marked as dynamic topic configs, the rest as
//! defaults) and this broker's settings (read-only, static).

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::util::str_bytes;
use crate::catalog::broker_config::DYNAMIC_BROKER_CONFIGS;
use crate::catalog::topic_config::{self, ConfigType, TOPIC_CONFIGS};
use crate::config::BrokerConfig;
use crate::protocol::error_code;
use crate::server::Shard;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One described config.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    pub config_type: ConfigType,
    pub doc: &'static str,
}

/// Every topic config with the value in force: the topic's override, else the default set by
/// a dynamic broker config (`inherited`), else the built-in default.
pub fn topic_config_entries(
    overrides: &BTreeMap<String, String>,
    inherited: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .map(
            |def| match (overrides.get(def.name), inherited.get(def.name)) {
                (Some(value), _) => ConfigEntry {
                    name: def.name,
                    value: value.clone(),
                    source: SOURCE_DYNAMIC_TOPIC,
                    read_only: false,
                    config_type: def.config_type,
                    doc: def.doc,
                },
                (None, Some(value)) => ConfigEntry {
                    name: def.name,
                    value: value.clone(),
                    source: SOURCE_DYNAMIC_BROKER,
                    read_only: false,
                    config_type: def.config_type,
                    doc: def.doc,
                },
                (None, None) => ConfigEntry {
                    name: def.name,
                    value: def.default.to_string(),
                    source: SOURCE_DEFAULT,
                    read_only: false,
                    config_type: def.config_type,
                    doc: def.doc,
                },
            },
        )
        .collect()
}

/// The broker's settings under Kafka's names: the static ones read-only, then the dynamic ones
/// (set, or at their defaults).
fn broker_config_entries(
    config: &BrokerConfig,
    dynamic: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let advertised = format!(
        "PLAINTEXT://{}:{}",
        config.advertised_host, config.advertised_port
    );
    let entries: [(&'static str, String, ConfigType, &'static str); 10] = [
        (
            "node.id",
            config.node_id.to_string(),
            ConfigType::Int,
            "This broker's node id.",
        ),
        (
            "broker.id",
            config.node_id.to_string(),
            ConfigType::Int,
            "This broker's node id.",
        ),
        (
            "listeners",
            format!("PLAINTEXT://{}", config.listen),
            ConfigType::List,
            "Address clients connect to.",
        ),
        (
            "advertised.listeners",
            advertised,
            ConfigType::List,
            "Address given to clients in Metadata.",
        ),
        (
            "log.dirs",
            config.data_dir.display().to_string(),
            ConfigType::List,
            "Data directory.",
        ),
        (
            "num.partitions",
            config.default_partitions.to_string(),
            ConfigType::Int,
            "Default partition count.",
        ),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            ConfigType::Boolean,
            "Create topics on Metadata.",
        ),
        (
            "default.replication.factor",
            "1".to_string(),
            ConfigType::Int,
            "A single node keeps one replica.",
        ),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
            ConfigType::Int,
            "Largest request frame.",
        ),
        (
            "num.io.threads",
            config.shard_count.to_string(),
            ConfigType::Int,
            "Shards (threads pinned to cores).",
        ),
    ];
    let static_entries = entries
        .into_iter()
        .map(|(name, value, config_type, doc)| ConfigEntry {
            name,
            value,
            source: SOURCE_STATIC_BROKER,
            read_only: true,
            config_type,
            doc,
        });
    let dynamic_entries = DYNAMIC_BROKER_CONFIGS.iter().filter_map(|c| {
        let def = topic_config::find(c.topic_config)?;
        let (value, source) = match dynamic.get(c.name) {
            Some(value) => (value.clone(), SOURCE_DYNAMIC_BROKER),
            None => (def.default.to_string(), SOURCE_DEFAULT),
        };
        Some(ConfigEntry {
            name: c.name,
            value,
            source,
            read_only: false,
            config_type: def.config_type,
            doc: def.doc,
        })
    });
    static_entries.chain(dynamic_entries).collect()
}

pub fn handle(
    shard: &Rc<Shard>,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let catalog = shard.catalog();
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match catalog.topic(resource.resource_name.as_str()) {
                    Some(topic) => Ok(topic_config_entries(
                        &topic.configs,
                        &catalog.topic_defaults(),
                    )),
                    None => Err((
                        error_code::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("Topic {} does not exist", resource.resource_name.as_str()),
                    )),
                },
                RESOURCE_BROKER => {
                    let name = resource.resource_name.as_str();
                    if name.is_empty() || name == shard.config.node_id.to_string() {
                        Ok(broker_config_entries(
                            &shard.config,
                            &catalog.broker_configs,
                        ))
                    } else {
                        Err((
                            error_code::INVALID_REQUEST,
                            format!("Unknown broker {name}"),
                        ))
                    }
                }
                RESOURCE_BROKER_LOGGER => Ok(Vec::new()),
                other => Err((
                    error_code::INVALID_REQUEST,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let wanted = resource.configuration_keys.as_ref();
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                        })
                        .map(|e| {
                            describe_entry(
                                e,
                                request.include_synonyms,
                                request.include_documentation,
                                version,
                            )
                        })
                        .collect();
                    base.with_error_code(error_code::NONE).with_configs(configs)
                }
                Err((code, message)) => base
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

fn describe_entry(
    entry: ConfigEntry,
    include_synonyms: bool,
    include_documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        vec![DescribeConfigsSynonym::default()
            .with_name(str_bytes(entry.name))
            .with_value(Some(str_bytes(&entry.value)))
            .with_source(entry.source)]
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(Some(str_bytes(&entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(if version >= 3 {
            entry.config_type as i8
        } else {
            0
        })
        .with_documentation((include_documentation && version >= 3).then(|| str_bytes(entry.doc)))
}
