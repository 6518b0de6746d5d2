//! The one table of APIs Fjord serves and their version ranges; ApiVersions is built from it.
//! An API that is not in this table is not advertised, so clients do not try it.

use kafka_protocol::messages::ApiKey;

/// (api key, advertised min, max). Produce is advertised from v0 because librdkafka otherwise
/// disables compression; versions below `served_min` are still refused.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    // v0-v1 went with Kafka 4.0 (KIP-896), as OffsetCommit v0-v1 and CreateTopics v0-v1 did.
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    // A single node answers a reassignment to its own replica (what kafka-reassign-partitions.sh
    // sends to move log dirs) as done; a quorum node hands them to the controller.
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    // No authorizer: the ACL APIs answer SECURITY_DISABLED, as Kafka 4.0 does without one.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::UpdateFeatures, 0, 2),
    // A single node answers it itself (no election is ever needed there); in a quorum the active
    // controller decides.
    (ApiKey::ElectLeaders, 0, 2),
    // Kafka 4.0's ListClientMetricsResources (KIP-714); kafka-protocol names API 74 by its later
    // name, ListConfigResources, whose v0 is the same message.
    (ApiKey::ListConfigResources, 0, 0),
    // Served by the authenticator of a SASL listener before authentication; elsewhere and
    // afterwards answered ILLEGAL_SASL_STATE, as Kafka does.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// APIs served only by a node in a metadata quorum (a single node has no quorum to describe).
pub const CLUSTER_ONLY: &[(ApiKey, i16, i16)] = &[(ApiKey::DescribeQuorum, 0, 2)];

/// KIP-714 client telemetry: always answered, but advertised only with a telemetry receiver
/// (`fjord.client.telemetry.enabled`), as Kafka advertises them only with a metric reporter that
/// receives telemetry, so that clients do not collect and push metrics nobody reads.
pub const TELEMETRY: &[(ApiKey, i16, i16)] = &[
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::PushTelemetry, 0, 0),
];

/// The APIs a node advertises: [`SUPPORTED`], plus [`CLUSTER_ONLY`] in a quorum, plus
/// [`TELEMETRY`] with a telemetry receiver.
pub fn served_table(clustered: bool, telemetry: bool) -> impl Iterator<Item = &'static (ApiKey, i16, i16)> {
    SUPPORTED.iter().chain(CLUSTER_ONLY.iter().filter(move |_| clustered)).chain(TELEMETRY.iter().filter(move |_| telemetry))
}

fn in_table(table: &[(ApiKey, i16, i16)], key: ApiKey, version: i16) -> bool {
    table.iter().any(|(k, min, max)| *k == key && (*min..=*max).contains(&version))
}

/// [`is_served`] on a node in a quorum or not; the [`TELEMETRY`] APIs are answered on every node.
pub fn is_served_on(key: ApiKey, version: i16, clustered: bool) -> bool {
    is_served(key, version) || (clustered && in_table(CLUSTER_ONLY, key, version)) || in_table(TELEMETRY, key, version)
}

/// The lowest version actually served (what kafka-protocol can decode).
pub fn served_min(key: ApiKey) -> i16 {
    match key {
        ApiKey::Produce => 3,
        _ => advertised(key).map(|(min, _)| min).unwrap_or(i16::MAX),
    }
}

pub fn advertised(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|(_, min, max)| (*min, *max))
}

/// Whether a request at this version can be decoded and answered.
pub fn is_served(key: ApiKey, version: i16) -> bool {
    match advertised(key) {
        Some((_, max)) => version >= served_min(key) && version <= max,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    #[test]
    fn every_advertised_range_is_decodable_by_the_codec() {
        for (key, min, max) in SUPPORTED.iter().chain(CLUSTER_ONLY).chain(TELEMETRY) {
            let codec = key.valid_versions();
            assert!(served_min(*key) >= codec.min, "{key:?} min {min}");
            assert!(*max <= codec.max, "{key:?} max {max}");
        }
        assert_eq!(ProduceRequest::VERSIONS.min, 3);
    }

    #[test]
    fn produce_v0_is_advertised_but_not_served() {
        assert_eq!(advertised(ApiKey::Produce), Some((0, 12)));
        assert!(!is_served(ApiKey::Produce, 2));
        assert!(is_served(ApiKey::Produce, 3));
        assert!(!is_served(ApiKey::JoinGroup, 10));
        assert_eq!(advertised(ApiKey::JoinGroup), Some((2, 9)), "Kafka 4.0's range");
        assert!(!is_served(ApiKey::OffsetCommit, 1));
    }
}
