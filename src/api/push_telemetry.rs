//! PushTelemetry (API 72, KIP-714): a client's metrics, checked as Kafka checks them (instance,
//! interval, subscription id, compression type, `telemetry.max.bytes`) and handed to the built-in
//! receiver when `fjord.client.telemetry.enabled`; without it an accepted push is dropped, as
//! Kafka drops it without a receiver.

use kafka_protocol::messages::{PushTelemetryRequest, PushTelemetryResponse};

use super::get_telemetry_subscriptions::client_attributes;
use super::{Session, error_code};
use crate::broker::Broker;
use crate::broker::client_telemetry::PushRequest;
use crate::metrics::client_telemetry::decode;
use std::time::Duration;

pub fn handle(broker: &Broker, session: &Session, req: PushTelemetryRequest) -> PushTelemetryResponse {
    let push = PushRequest {
        client_instance_id: req.client_instance_id,
        subscription_id: req.subscription_id,
        terminating: req.terminating,
        compression_type: req.compression_type,
        metrics_len: req.metrics.len(),
    };
    match broker.client_telemetry.push(&broker.client_metrics, &push, &client_attributes(session)) {
        Ok(accepted) => {
            let Some(receiver) = &broker.telemetry_receiver else { return PushTelemetryResponse::default() };
            if req.metrics.is_empty() {
                return PushTelemetryResponse::default();
            }
            match decode(accepted.compression_type, &req.metrics, broker.config.telemetry.decompressed_max_bytes) {
                Ok(points) => {
                    receiver.record(req.client_instance_id, &accepted.client.client_id, points, Duration::from_millis(accepted.keep_ms));
                    PushTelemetryResponse::default()
                }
                Err(e) => {
                    // Kafka answers a receiver that fails with INVALID_RECORD.
                    tracing::debug!(peer = %session.peer, error = %e, "telemetry push not readable");
                    PushTelemetryResponse::default().with_error_code(error_code::telemetry_receiver(&e))
                }
            }
        }
        Err(e) => {
            tracing::debug!(peer = %session.peer, error = %e, "PushTelemetry refused");
            PushTelemetryResponse::default().with_error_code(error_code::telemetry(&e))
        }
    }
}
