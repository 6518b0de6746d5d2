//! DescribeQuorum (`kafka-metadata-quorum.sh describe --status / --replication`): served by a
//! node in a metadata quorum, which asks the active controller, as Kafka's brokers forward it.
//! The controller answers from its Raft state (`node::controller_listener`).

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::broker::cluster::NOT_CONTROLLER;

pub async fn handle(broker: &Arc<Broker>, req: DescribeQuorumRequest, version: i16) -> DescribeQuorumResponse {
    let Some(cluster) = &broker.cluster else {
        // Not advertised without a quorum; a client that sends it anyway learns there is none.
        return DescribeQuorumResponse::default().with_error_code(E::UnsupportedVersion.code());
    };
    // A voter that does not lead the quorum answers NOT_LEADER_OR_FOLLOWER for the partition.
    let not_leader = |r: &DescribeQuorumResponse| {
        r.error_code == NOT_CONTROLLER || r.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code == E::NotLeaderOrFollower.code())
    };
    let r = match cluster.to_controller(&req, not_leader, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => DescribeQuorumResponse::default().with_error_code(E::RequestTimedOut.code()).with_error_message(Some(str_bytes(format!("no active controller answered: {e}")))),
    };
    fit_version(r, version)
}

/// The controller answers at the version this node asked it with (the newest); the client's may
/// be older, and a field its version lacks must be left at its default or the response cannot be
/// encoded (v0 has no fetch timestamps, v0-1 no nodes, directory ids or error messages).
fn fit_version(mut r: DescribeQuorumResponse, version: i16) -> DescribeQuorumResponse {
    if version < 2 {
        r.error_message = None;
        r.nodes.clear();
    }
    for p in r.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        if version < 2 {
            p.error_message = None;
        }
        for replica in p.current_voters.iter_mut().chain(p.observers.iter_mut()) {
            if version < 2 {
                replica.replica_directory_id = Default::default();
            }
            if version < 1 {
                replica.last_fetch_timestamp = -1;
                replica.last_caught_up_timestamp = -1;
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_response::{Node, PartitionData, ReplicaState, TopicData};
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn a_controller_answer_at_v2_encodes_at_every_version_the_client_may_ask() {
        let voter = ReplicaState::default().with_log_end_offset(7).with_last_fetch_timestamp(1).with_last_caught_up_timestamp(1).with_replica_directory_id(uuid::Uuid::from_u128(9));
        let partition = PartitionData::default().with_leader_id(kafka_protocol::messages::BrokerId(2)).with_error_message(Some(str_bytes("x"))).with_current_voters(vec![voter.clone()]).with_observers(vec![voter]);
        let full = DescribeQuorumResponse::default().with_topics(vec![TopicData::default().with_partitions(vec![partition])]).with_nodes(vec![Node::default()]);
        for version in 0..=2 {
            let r = fit_version(full.clone(), version);
            assert_eq!(r.topics[0].partitions[0].leader_id.0, 2);
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
