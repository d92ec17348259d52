//! AlterConfigs (the legacy, non-incremental form): the given configs replace all of a
//! topic's overrides. Broker configs are static here (flags, environment, file).

use std::rc::Rc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::topic_admin::{
    alter_broker_configs, alter_topic_configs, check_broker_name, validate_configs, AdminError,
};
use super::util::str_bytes;
use crate::catalog::broker_config;
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(shard: &Rc<Shard>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut outcomes: Vec<Option<Result<(), AdminError>>> = Vec::new();
    let mut changes = Vec::new();
    for resource in &request.resources {
        let outcome = match resource.resource_type {
            RESOURCE_TOPIC => {
                let configs: Vec<_> = resource
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                match validate_configs(&configs) {
                    Ok(replacement) => {
                        changes.push((
                            resource.resource_name.to_string(),
                            move |_: &std::collections::BTreeMap<String, String>| Ok(replacement),
                        ));
                        None
                    }
                    Err(error) => Some(Err(error)),
                }
            }
            RESOURCE_BROKER => Some(alter_broker(shard, resource, request.validate_only).await),
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
            to_response(
                resource.resource_type,
                resource.resource_name.as_str(),
                outcome,
            )
        })
        .collect();
    AlterConfigsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(responses)
}

pub(super) fn to_response(
    resource_type: i8,
    resource_name: &str,
    outcome: Result<(), AdminError>,
) -> AlterConfigsResourceResponse {
    let base = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(str_bytes(resource_name));
    match outcome {
        Ok(()) => base.with_error_code(error_code::NONE),
        Err((code, message)) => base
            .with_error_code(code)
            .with_error_message(Some(str_bytes(&message))),
    }
}

/// AlterConfigs on the broker: the given configs become the whole set of dynamic broker
/// configs.
async fn alter_broker(
    shard: &Rc<Shard>,
    resource: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), AdminError> {
    check_broker_name(shard, resource.resource_name.as_str())?;
    let mut replacement = std::collections::BTreeMap::new();
    for config in &resource.configs {
        let name = config.name.to_string();
        let value = config
            .value
            .as_ref()
            .map(|v| v.to_string())
            .ok_or_else(|| {
                (
                    error_code::INVALID_CONFIG,
                    format!("Null value not supported for {name}"),
                )
            })?;
        broker_config::validate(&name, &value).map_err(|m| (error_code::INVALID_CONFIG, m))?;
        replacement.insert(name, value);
    }
    alter_broker_configs(shard, move |_| Ok(replacement), validate_only).await
}
