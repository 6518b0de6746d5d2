//! GetTelemetrySubscriptions (API 71, KIP-714): the client instance's id (a new one for a zero
//! id), the metrics its matching subscriptions ask for, its push interval and how it may push.
//! Matching and the interval check live in `broker::client_telemetry`.

use kafka_protocol::messages::{GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse};

use super::{Session, error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::client_telemetry::{ACCEPTED_COMPRESSION_TYPES, ClientAttributes};

/// The client behind `session`, as the `match` selectors see it.
pub(super) fn client_attributes(session: &Session) -> ClientAttributes {
    ClientAttributes {
        client_id: session.client_id.clone().unwrap_or_default(),
        software_name: session.client_software.as_ref().map(|(name, _)| name.clone()),
        software_version: session.client_software.as_ref().map(|(_, version)| version.clone()),
        source_address: session.peer.ip().to_string(),
        source_port: session.peer.port(),
        connection_id: session.id,
    }
}

pub fn handle(broker: &Broker, session: &Session, req: GetTelemetrySubscriptionsRequest) -> GetTelemetrySubscriptionsResponse {
    let client = client_attributes(session);
    match broker.client_telemetry.get(&broker.client_metrics, req.client_instance_id, &client) {
        Ok(s) => GetTelemetrySubscriptionsResponse::default()
            .with_client_instance_id(s.client_instance_id)
            .with_subscription_id(s.subscription_id)
            .with_accepted_compression_types(ACCEPTED_COMPRESSION_TYPES.to_vec())
            .with_push_interval_ms(s.push_interval_ms)
            .with_telemetry_max_bytes(broker.client_telemetry.max_bytes)
            // Kafka asks for deltas; Fjord's receiver shows the latest values on /metrics, where
            // a counter is cumulative, so with it on the client is asked for cumulative sums.
            .with_delta_temporality(broker.telemetry_receiver.is_none())
            .with_requested_metrics(s.metrics.into_iter().map(str_bytes).collect()),
        Err(e) => {
            tracing::debug!(peer = %session.peer, error = %e, "GetTelemetrySubscriptions refused");
            // Kafka's error answer carries the code and nothing else.
            GetTelemetrySubscriptionsResponse::default().with_error_code(error_code::telemetry(&e))
        }
    }
}
