//! ApiVersions: the served API ranges from protocol::versions, and from v3 the features this
//! broker supports with the levels finalized for the cluster and their epoch (KIP-584). An
//! unknown request version gets UNSUPPORTED_VERSION with the ranges (encoded at v0 by the caller).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::broker::features::SUPPORTED as SUPPORTED_FEATURES;
use crate::protocol::versions::served_table;

fn api_keys(clustered: bool, telemetry: bool) -> Vec<ApiVersion> {
    served_table(clustered, telemetry)
        .map(|(key, min, max)| ApiVersion::default().with_api_key(*key as i16).with_min_version(*min).with_max_version(*max))
        .collect()
}

pub fn unsupported_version(clustered: bool, telemetry: bool) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_error_code(ResponseError::UnsupportedVersion.code()).with_api_keys(api_keys(clustered, telemetry))
}

pub async fn handle(broker: &Arc<Broker>, _req: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    let resp = ApiVersionsResponse::default().with_api_keys(api_keys(broker.cluster.is_some(), broker.config.telemetry.enabled));
    if version < 3 {
        return resp;
    }
    // Kafka leaves features whose lowest level is 0 out of v3's answer (clients before v4 read a
    // 0 minimum as invalid).
    let supported = SUPPORTED_FEATURES
        .iter()
        .filter(|f| version >= 4 || f.min_level != 0)
        .map(|f| SupportedFeatureKey::default().with_name(str_bytes(f.name)).with_min_version(f.min_level).with_max_version(f.max_level))
        .collect();
    let finalized = broker.features.finalized();
    // A feature finalized at level 0 is left out, as Kafka leaves it out: it reads as off.
    let levels = finalized
        .levels
        .iter()
        .filter(|(_, level)| **level > 0)
        .map(|(name, level)| FinalizedFeatureKey::default().with_name(str_bytes(*name)).with_min_version_level(*level).with_max_version_level(*level))
        .collect();
    resp.with_supported_features(supported).with_finalized_features_epoch(finalized.epoch).with_finalized_features(levels)
}
