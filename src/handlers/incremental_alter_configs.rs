//! IncrementalAlterConfigs (KIP-339): SET, DELETE, APPEND and SUBTRACT (the last two for list
//! configs such as `cleanup.policy`) applied to a topic's current overrides, or to the dynamic
//! broker configs.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::topic_admin::{
    alter_broker_configs, alter_topic_configs, check_broker_name, AdminError,
};
use super::util::str_bytes;
use crate::catalog::broker_config;
use crate::catalog::topic_config::{self, ConfigType};
use crate::protocol::error_code;
use crate::server::Shard;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One operation on one config.
#[derive(Clone)]
struct ConfigOp {
    name: String,
    operation: i8,
    value: Option<String>,
}

type Change = Box<
    dyn FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, AdminError> + Send,
>;

pub async fn handle(
    shard: &Rc<Shard>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut outcomes: Vec<Option<Result<(), AdminError>>> = Vec::new();
    let mut changes: Vec<(String, Change)> = Vec::new();
    for resource in &request.resources {
        let outcome = match resource.resource_type {
            RESOURCE_TOPIC => {
                let ops = config_ops(resource);
                match check_ops(Scope::Topic, &ops) {
                    Ok(()) => {
                        let change: Change =
                            Box::new(move |current| apply_ops(Scope::Topic, current, &ops));
                        changes.push((resource.resource_name.to_string(), change));
                        None
                    }
                    Err(error) => Some(Err(error)),
                }
            }
            RESOURCE_BROKER => {
                let ops = config_ops(resource);
                let checked = check_broker_name(shard, resource.resource_name.as_str())
                    .and_then(|()| check_ops(Scope::Broker, &ops));
                Some(match checked {
                    Ok(()) => {
                        alter_broker_configs(
                            shard,
                            move |current| apply_ops(Scope::Broker, current, &ops),
                            request.validate_only,
                        )
                        .await
                    }
                    Err(error) => Err(error),
                })
            }
            other => Some(Err((
                error_code::INVALID_REQUEST,
                format!("Unsupported resource type {other}"),
            ))),
        };
        outcomes.push(outcome);
    }
    let mut applied = alter_topic_configs(shard, changes, request.validate_only)
        .await
        .into_iter();
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let outcome = outcome.unwrap_or_else(|| {
                applied.next().unwrap_or_else(|| {
                    Err((error_code::UNKNOWN_SERVER_ERROR, "lost result".into()))
                })
            });
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match outcome {
                Ok(()) => base.with_error_code(error_code::NONE),
                Err((code, message)) => base
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}

fn config_ops(
    resource: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
) -> Vec<ConfigOp> {
    resource
        .configs
        .iter()
        .map(|c| ConfigOp {
            name: c.name.to_string(),
            operation: c.config_operation,
            value: c.value.as_ref().map(|v| v.to_string()),
        })
        .collect()
}

/// Which configs the operations apply to.
#[derive(Clone, Copy)]
enum Scope {
    Topic,
    Broker,
}

impl Scope {
    /// The config's type, or why it cannot be changed.
    fn config_type(self, name: &str) -> Result<ConfigType, String> {
        match self {
            Scope::Topic => topic_config::find(name)
                .map(|d| d.config_type)
                .ok_or_else(|| format!("Unknown topic config name: {name}")),
            Scope::Broker => broker_config::find(name)
                .and_then(|c| topic_config::find(c.topic_config))
                .map(|d| d.config_type)
                .ok_or_else(|| broker_config::not_dynamic(name)),
        }
    }

    fn validate(self, name: &str, value: &str) -> Result<(), String> {
        match self {
            Scope::Topic => topic_config::validate(name, value),
            Scope::Broker => broker_config::validate(name, value),
        }
    }

    fn default(self, name: &str) -> Option<&'static str> {
        match self {
            Scope::Topic => topic_config::find(name).map(|d| d.default),
            Scope::Broker => broker_config::default_value(name),
        }
    }
}

/// Checks names, operations and values before anything is planned.
fn check_ops(scope: Scope, ops: &[ConfigOp]) -> Result<(), AdminError> {
    let invalid = |message: String| (error_code::INVALID_CONFIG, message);
    for op in ops {
        let config_type = scope.config_type(&op.name).map_err(invalid)?;
        match op.operation {
            OP_DELETE => {}
            OP_SET | OP_APPEND | OP_SUBTRACT => {
                let value = op
                    .value
                    .as_deref()
                    .ok_or_else(|| invalid(format!("Null value not supported for {}", op.name)))?;
                if op.operation != OP_SET && config_type != ConfigType::List {
                    return Err((
                        error_code::INVALID_CONFIG,
                        format!(
                            "Config value append or subtract is not allowed for config key {}",
                            op.name
                        ),
                    ));
                }
                scope.validate(&op.name, value).map_err(invalid)?;
            }
            other => {
                return Err((
                    error_code::INVALID_REQUEST,
                    format!("Unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(())
}

fn apply_ops(
    scope: Scope,
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
) -> Result<BTreeMap<String, String>, AdminError> {
    let mut configs = current.clone();
    for op in ops {
        let value = op.value.clone().unwrap_or_default();
        match op.operation {
            OP_SET => {
                configs.insert(op.name.clone(), value);
            }
            OP_DELETE => {
                configs.remove(&op.name);
            }
            OP_APPEND | OP_SUBTRACT => {
                let existing = configs
                    .get(&op.name)
                    .map(String::as_str)
                    .or_else(|| scope.default(&op.name))
                    .unwrap_or("");
                let mut items: Vec<String> = existing
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if op.operation == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(op.name.clone(), items.join(","));
            }
            _ => {}
        }
    }
    Ok(configs)
}
