//! AlterPartitionReassignments and ListPartitionReassignments (`kafka-reassign-partitions.sh`):
//! served by a node in a metadata quorum, which hands the request to the active controller (a
//! reassignment is its decision, as in Kafka). The controller moves the replicas: new ones join
//! as followers and copy the log, and once every target replica is in the ISR the partition's
//! replicas become the target (the leader moves if it was removed) and removed replicas delete
//! their copies.
//!
//! A single node has one replica of each partition and nowhere to move it: a reassignment to
//! that replica is done already (what `kafka-reassign-partitions.sh` sends when its JSON only
//! moves log dirs), any other is refused per partition, and none is ever in progress.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse};

use crate::broker::cluster::NOT_CONTROLLER;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: AlterPartitionReassignmentsRequest, _version: i16) -> AlterPartitionReassignmentsResponse {
    let Some(cluster) = &broker.cluster else {
        return single_node(broker, req);
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
        // Nothing is ever being reassigned on a single node.
        return ListPartitionReassignmentsResponse::default();
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

/// The single node's answer, per partition: its own replica is the assignment already; another
/// replica list is INVALID_REPLICA_ASSIGNMENT (no such broker), a cancellation
/// NO_REASSIGNMENT_IN_PROGRESS, as Kafka's controller answers them.
fn single_node(broker: &Arc<Broker>, req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let me = broker.config.node_id;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let meta = broker.metadata.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let (code, message) = match &p.replicas {
                        _ if !meta.as_ref().is_some_and(|m| p.partition_index >= 0 && p.partition_index < m.partitions) => (E::UnknownTopicOrPartition.code(), None),
                        None => (E::NoReassignmentInProgress.code(), None),
                        Some(r) if r.len() == 1 && r[0].0 == me => (0, None),
                        Some(r) => (E::InvalidReplicaAssignment.code(), Some(format!("a single node holds the only replica (node {me}); replicas {:?} cannot be assigned", r.iter().map(|b| b.0).collect::<Vec<_>>()))),
                    };
                    ReassignablePartitionResponse::default().with_partition_index(p.partition_index).with_error_code(code).with_error_message(message.map(crate::api::str_bytes))
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}
