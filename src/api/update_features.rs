//! UpdateFeatures (KIP-584): finalizes feature levels within what this broker supports, all or
//! none: the first refused update fails the request with INVALID_UPDATE_VERSION and Kafka's text.
//! validate_only (v1+) checks without applying; v0's allow_downgrade is a safe downgrade. v0-1
//! answer each feature on success, v2 only the top-level code (as Kafka 4.0 does).

use std::sync::Arc;

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::features::{FeatureUpdate, UpgradeType};

pub async fn handle(broker: &Arc<Broker>, req: UpdateFeaturesRequest, version: i16) -> UpdateFeaturesResponse {
    let updates: Vec<FeatureUpdate> = req
        .feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            name: u.feature.to_string(),
            level: u.max_version_level,
            upgrade_type: match version {
                0 if u.allow_downgrade => UpgradeType::SafeDowngrade,
                0 => UpgradeType::Upgrade,
                _ => UpgradeType::from_code(u.upgrade_type),
            },
        })
        .collect();
    match broker.features.update(&updates, req.validate_only, broker.config.node_id) {
        Ok(finalized) => {
            if !req.validate_only {
                tracing::info!(epoch = finalized.epoch, levels = ?finalized.levels, "feature levels finalized");
            }
            // Kafka 4.0 sets each result's message to "NONE" (its name for no error).
            let results = if version >= 2 {
                Vec::new()
            } else {
                updates.iter().map(|u| UpdatableFeatureResult::default().with_feature(str_bytes(u.name.clone())).with_error_message(Some(str_bytes("NONE")))).collect()
            };
            UpdateFeaturesResponse::default().with_error_message(None).with_results(results)
        }
        Err(e) => {
            tracing::info!(error = %e, "UpdateFeatures refused");
            UpdateFeaturesResponse::default()
                .with_error_code(error_code::feature(&e))
                .with_error_message(Some(str_bytes(format!("The update failed for all features since the following feature had an error: {e}"))))
        }
    }
}
