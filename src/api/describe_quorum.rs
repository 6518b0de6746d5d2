//! DescribeQuorum (`kafka-metadata-quorum.sh describe --status / --replication`): served by a
//! node in a metadata quorum, which asks the active controller, as Kafka's brokers forward it.
//! The controller answers from its Raft state (`node::controller_listener`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::broker::cluster::NOT_CONTROLLER;

pub async fn handle(broker: &Arc<Broker>, req: DescribeQuorumRequest, _version: i16) -> DescribeQuorumResponse {
    let Some(cluster) = &broker.cluster else {
        // Not advertised without a quorum; a client that sends it anyway learns there is none.
        return DescribeQuorumResponse::default().with_error_code(E::UnsupportedVersion.code());
    };
    // A voter that does not lead the quorum answers NOT_LEADER_OR_FOLLOWER for the partition.
    let not_leader = |r: &DescribeQuorumResponse| {
        r.error_code == NOT_CONTROLLER || r.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code == E::NotLeaderOrFollower.code())
    };
    match cluster.to_controller(&req, not_leader, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => DescribeQuorumResponse::default().with_error_code(E::RequestTimedOut.code()).with_error_message(Some(str_bytes(format!("no active controller answered: {e}")))),
    }
}
