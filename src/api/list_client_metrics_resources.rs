//! ListClientMetricsResources (API 74 v0, KIP-714): the names of the client metrics subscriptions,
//! those with at least one config set. kafka-protocol calls the message ListConfigResources (its
//! later name); v0 is the same on the wire. The authorizer's check runs before this.

use std::sync::Arc;

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, _req: ListConfigResourcesRequest, _version: i16) -> ListConfigResourcesResponse {
    let resources = broker.client_metrics.names().into_iter().map(|name| ConfigResource::default().with_resource_name(str_bytes(name))).collect();
    ListConfigResourcesResponse::default().with_config_resources(resources)
}
