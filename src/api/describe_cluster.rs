//! DescribeCluster: this node as the only broker and the controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: DescribeClusterRequest, _version: i16) -> DescribeClusterResponse {
    let node = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_host(str_bytes(broker.advertised.host.clone()))
        .with_port(broker.advertised.port as i32);
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![node])
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    // Only brokers are served here (endpoint type 1); a controller-endpoint query is refused.
    if req.endpoint_type != 1 {
        resp.error_code = kafka_protocol::error::ResponseError::UnsupportedEndpointType.code();
        resp.error_message = Some(str_bytes("The broker endpoint type is the only one served"));
        resp.brokers.clear();
    }
    resp
}
