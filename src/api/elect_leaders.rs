//! ElectLeaders (`kafka-leader-election.sh`): served by a node in a metadata quorum, which
//! hands the request to the active controller (the election is its decision, as in Kafka).

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use crate::broker::Broker;
use crate::broker::cluster::NOT_CONTROLLER;

pub async fn handle(broker: &Arc<Broker>, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let Some(cluster) = &broker.cluster else {
        return fit_version(&req, ElectLeadersResponse::default().with_error_code(E::UnsupportedVersion.code()), version);
    };
    let not_controller = |r: &ElectLeadersResponse| r.error_code == NOT_CONTROLLER;
    let r = match cluster.to_controller(&req, not_controller, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "ElectLeaders could not reach the active controller");
            ElectLeadersResponse::default().with_error_code(E::RequestTimedOut.code())
        }
    };
    fit_version(&req, r, version)
}

/// v0 has no top-level error code: a request-wide error goes on every partition asked for, as
/// Kafka's error response does, or the answer could not be encoded.
fn fit_version(req: &ElectLeadersRequest, mut r: ElectLeadersResponse, version: i16) -> ElectLeadersResponse {
    use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
    if version >= 1 || r.error_code == 0 {
        return r;
    }
    let code = std::mem::take(&mut r.error_code);
    r.replica_election_results = req
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| ReplicaElectionResult::default().with_topic(t.topic.clone()).with_partition_result(t.partitions.iter().map(|p| PartitionResult::default().with_partition_id(*p).with_error_code(code)).collect()))
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn a_request_wide_error_encodes_at_v0_on_every_partition() {
        let req = ElectLeadersRequest::default().with_topic_partitions(Some(vec![TopicPartitions::default().with_topic(kafka_protocol::messages::TopicName("t".into())).with_partitions(vec![0, 1])]));
        let r = fit_version(&req, ElectLeadersResponse::default().with_error_code(E::RequestTimedOut.code()), 0);
        let mut buf = bytes::BytesMut::new();
        r.encode(&mut buf, 0).expect("encodes at v0");
        let codes: Vec<i16> = r.replica_election_results[0].partition_result.iter().map(|p| p.error_code).collect();
        assert_eq!(codes, vec![E::RequestTimedOut.code(); 2]);
        let r = fit_version(&req, ElectLeadersResponse::default().with_error_code(E::RequestTimedOut.code()), 1);
        assert_eq!(r.error_code, E::RequestTimedOut.code(), "v1 keeps it at the top");
    }
}
