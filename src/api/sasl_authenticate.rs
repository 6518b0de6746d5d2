//! SaslAuthenticate outside a SASL exchange: on a listener without SASL, or after the connection
//! authenticated. Kafka answers ILLEGAL_SASL_STATE with this message and keeps the connection;
//! so does Fjord. The exchange itself is `server::sasl`'s.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(_broker: &Arc<Broker>, _req: SaslAuthenticateRequest, _version: i16) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ResponseError::IllegalSaslState.code())
        .with_error_message(Some(str_bytes("SaslAuthenticate request received after successful authentication")))
}
