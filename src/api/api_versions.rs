//! ApiVersions: the served API ranges from protocol::versions. An unknown request version gets
//! UNSUPPORTED_VERSION with the ranges (encoded at v0 by the caller).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::broker::Broker;
use crate::protocol::versions::SUPPORTED;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| ApiVersion::default().with_api_key(*key as i16).with_min_version(*min).with_max_version(*max))
        .collect()
}

pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(ResponseError::UnsupportedVersion.code()).with_api_keys(api_keys())
}

pub async fn handle(_broker: &Arc<Broker>, _req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys()).with_finalized_features_epoch(-1)
}
