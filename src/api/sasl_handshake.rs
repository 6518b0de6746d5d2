//! SaslHandshake outside a SASL exchange: on a listener without SASL, or on an authenticated
//! connection that may not re-authenticate (no `connections.max.reauth.ms`). Kafka answers it
//! ILLEGAL_SASL_STATE and keeps the connection; so does Fjord. The exchange itself is
//! `server::sasl`'s.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use crate::broker::Broker;

pub async fn handle(_broker: &Arc<Broker>, _req: SaslHandshakeRequest, _version: i16) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}
