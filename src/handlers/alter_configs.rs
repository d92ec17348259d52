//! AlterConfigs (the legacy, non-incremental form): the given configs replace all of a
//! topic's overrides. Broker configs are static here (flags, environment, file).

use std::rc::Rc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::topic_admin::{alter_topic_configs, validate_configs, AdminError};
use super::util::str_bytes;
use crate::protocol::error_code;
use crate::server::Shard;

pub fn broker_configs_are_static() -> AdminError {
    (
        error_code::INVALID_REQUEST,
        "Tidelog's broker configs are static: set them with flags, TIDELOG_* variables or --config"
            .to_string(),
    )
}

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
            RESOURCE_BROKER => Some(Err(broker_configs_are_static())),
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
