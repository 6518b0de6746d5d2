//! ElectLeaders (`kafka-leader-election.sh`): served by a node in a metadata quorum, which
//! hands the request to the active controller (the election is its decision, as in Kafka). A
//! single node holds the only replica of each partition and leads it, so it answers itself:
//! there is never an election to hold.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use crate::broker::Broker;
use crate::broker::cluster::NOT_CONTROLLER;
use crate::controller::ControllerError;

pub async fn handle(broker: &Arc<Broker>, req: ElectLeadersRequest, version: i16) -> ElectLeadersResponse {
    let Some(cluster) = &broker.cluster else {
        return fit_version(&req, single_node(broker, &req), version);
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

/// A single node's answer, as Kafka's controller gives it for a partition whose preferred
/// replica leads (preferred) or that has a leader (unclean): ELECTION_NOT_NEEDED; an unknown topic
/// or partition is UNKNOWN_TOPIC_OR_PARTITION in Kafka's words.
fn single_node(broker: &Broker, req: &ElectLeadersRequest) -> ElectLeadersResponse {
    let Some(topics) = &req.topic_partitions else {
        // Every partition: only elections held are listed, and none is.
        return ElectLeadersResponse::default();
    };
    let partitions: Vec<(String, i32)> = topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect();
    let decided = partitions
        .iter()
        .map(|(topic, p)| match broker.metadata.topic(topic) {
            None => Err(ControllerError::UnknownTopicOrPartition(format!("No such topic as {topic}"))),
            Some(m) if *p < 0 || *p >= m.partitions => Err(ControllerError::UnknownTopicOrPartition(format!("No such partition as {topic}-{p}"))),
            Some(_) => Err(ControllerError::ElectionNotNeeded),
        })
        .collect();
    results(partitions, decided, false)
}

/// The response for the decided partitions, grouped by topic. Asked for every partition (`all`),
/// the partitions that needed no election are left out, as Kafka's controller leaves them out.
pub(crate) fn results(partitions: Vec<(String, i32)>, decided: Vec<Result<(), ControllerError>>, all: bool) -> ElectLeadersResponse {
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> = std::collections::BTreeMap::new();
    for ((topic, p), result) in partitions.into_iter().zip(decided) {
        let r = PartitionResult::default().with_partition_id(p);
        let r = match result {
            Ok(()) => r,
            Err(ControllerError::ElectionNotNeeded) if all => continue,
            Err(e) => r.with_error_code(e.error_code()).with_error_message(Some(super::str_bytes(e.message()))),
        };
        by_topic.entry(topic).or_default().push(r);
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic.into_iter().map(|(t, rs)| ReplicaElectionResult::default().with_topic(TopicName(super::str_bytes(t))).with_partition_result(rs)).collect(),
    )
}

/// v0 has no top-level error code: a request-wide error goes on every partition asked for, as
/// Kafka's error response does, or the answer could not be encoded.
fn fit_version(req: &ElectLeadersRequest, mut r: ElectLeadersResponse, version: i16) -> ElectLeadersResponse {
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
