//! AlterPartitionReassignments and ListPartitionReassignments (`kafka-reassign-partitions.sh`):
//! served by a node in a metadata quorum, which hands the request to the active controller (a
//! reassignment is its decision, as in Kafka). The controller moves the replicas: new ones join
//! as followers and copy the log, and once every target replica is in the ISR the partition's
//! replicas become the target (the leader moves if it was removed) and removed replicas delete
//! their copies.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};

use crate::broker::cluster::NOT_CONTROLLER;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: AlterPartitionReassignmentsRequest, _version: i16) -> AlterPartitionReassignmentsResponse {
    let Some(cluster) = &broker.cluster else {
        return AlterPartitionReassignmentsResponse::default().with_error_code(E::UnsupportedVersion.code());
    };
    let not_controller = |r: &AlterPartitionReassignmentsResponse| r.error_code == NOT_CONTROLLER;
    match cluster.to_controller(&req, not_controller, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "AlterPartitionReassignments could not reach the active controller");
            AlterPartitionReassignmentsResponse::default().with_error_code(E::RequestTimedOut.code())
        }
    }
}

pub async fn handle_list(broker: &Arc<Broker>, req: ListPartitionReassignmentsRequest, _version: i16) -> ListPartitionReassignmentsResponse {
    let Some(cluster) = &broker.cluster else {
        return ListPartitionReassignmentsResponse::default().with_error_code(E::UnsupportedVersion.code());
    };
    let not_controller = |r: &ListPartitionReassignmentsResponse| r.error_code == NOT_CONTROLLER;
    match cluster.to_controller(&req, not_controller, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "ListPartitionReassignments could not reach the active controller");
            ListPartitionReassignmentsResponse::default().with_error_code(E::RequestTimedOut.code())
        }
    }
}
