//! DescribeCluster on a broker listener: the live brokers and the controller. v1 asks for an
//! endpoint type: only brokers are served here, so a controller query gets MISMATCHED_ENDPOINT_TYPE
//! and any other type UNSUPPORTED_ENDPOINT_TYPE, with Kafka 4.0's texts (the controller listener
//! answers controller queries, `node::controller_listener`). v2 (KIP-1073) marks fenced
//! brokers; this node answers, so it is never fenced, whatever include_fenced_brokers asks.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::acl::ResourceType;
use crate::broker::Broker;

/// Kafka's endpoint types (DescribeCluster v1+).
pub(crate) const ENDPOINT_TYPE_BROKER: i8 = 1;
pub(crate) const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

/// Kafka's refusal of a DescribeCluster that asks for another endpoint type than the listener
/// serves (`served`): MISMATCHED_ENDPOINT_TYPE for a known type, UNSUPPORTED_ENDPOINT_TYPE for an
/// unknown one (INVALID_REQUEST both at v0), with Kafka 4.0's texts.
pub(crate) fn endpoint_type_refusal(served: i8, requested: i8, version: i16) -> Option<(i16, String)> {
    let name = |t: i8| if t == ENDPOINT_TYPE_BROKER { "BROKER" } else { "CONTROLLER" };
    let v0 = |code: i16| if version == 0 { E::InvalidRequest.code() } else { code };
    match requested {
        t if t == served => None,
        ENDPOINT_TYPE_BROKER | ENDPOINT_TYPE_CONTROLLER => {
            Some((v0(E::MismatchedEndpointType.code()), format!("The request was sent to an endpoint of type {}, but we wanted an endpoint of type {}", name(served), name(requested))))
        }
        other => Some((v0(E::UnsupportedEndpointType.code()), format!("Unsupported endpoint type {other}"))),
    }
}

/// Answers with the brokers' endpoints on `listener`, the listener the request arrived on.
pub async fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest, version: i16, listener: &str) -> DescribeClusterResponse {
    let refused = |code: i16, message: String| {
        DescribeClusterResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(message)))
            .with_endpoint_type(ENDPOINT_TYPE_BROKER)
            .with_controller_id(BrokerId(-1))
            .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    if let Some((code, message)) = endpoint_type_refusal(ENDPOINT_TYPE_BROKER, req.endpoint_type, version) {
        return refused(code, message);
    }
    let brokers = broker
        .live_brokers_on(listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.map(str_bytes))
                .with_is_fenced(false)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(brokers)
        .with_endpoint_type(ENDPOINT_TYPE_BROKER)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations { ResourceType::Cluster.all_operations() } else { AUTHORIZED_OPERATIONS_OMITTED })
}
