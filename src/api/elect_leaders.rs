//! ElectLeaders (`kafka-leader-election.sh`): served by a node in a metadata quorum, which
//! hands the request to the active controller (the election is its decision, as in Kafka).

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use crate::broker::Broker;
use crate::broker::cluster::NOT_CONTROLLER;

pub async fn handle(broker: &Arc<Broker>, req: ElectLeadersRequest, _version: i16) -> ElectLeadersResponse {
    let Some(cluster) = &broker.cluster else {
        return ElectLeadersResponse::default().with_error_code(E::UnsupportedVersion.code());
    };
    let not_controller = |r: &ElectLeadersResponse| r.error_code == NOT_CONTROLLER;
    match cluster.to_controller(&req, not_controller, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "ElectLeaders could not reach the active controller");
            ElectLeadersResponse::default().with_error_code(E::RequestTimedOut.code())
        }
    }
}
