//! FindCoordinator: this single node coordinates every group (key type 0) and every
//! transactional id (key type 1).

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;

/// (error code, node id, host, port) for one key.
fn locate(broker: &Broker, key_type: i8) -> (i16, i32, String, i32) {
    match key_type {
        0 | 1 => (0, broker.config.node_id, broker.advertised.host.clone(), broker.advertised.port as i32),
        _ => (E::InvalidRequest.code(), -1, String::new(), -1),
    }
}

pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key: StrBytes| {
                let (code, node, host, port) = locate(broker, req.key_type);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(None)
            })
            .collect();
        return FindCoordinatorResponse::default().with_error_message(None).with_coordinators(coordinators);
    }
    let (code, node, host, port) = locate(broker, if version >= 1 { req.key_type } else { 0 });
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(None)
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port)
}
