//! ApiVersions: the APIs and version ranges this broker implements (KIP-511 for v3+).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::protocol::{api::SUPPORTED, error_code};

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code::NONE)
        .with_api_keys(api_keys)
        .with_throttle_time_ms(0)
        .with_finalized_features_epoch(-1)
}
