//! Wire tests of what Kafka 4.0 serves at its newest versions (Produce v12, ListOffsets v10,
//! Metadata v13, DescribeGroups v6, DescribeCluster v2) and of feature versions (KIP-584:
//! ApiVersions' features, UpdateFeatures, behaviour that follows group.version), against a
//! broker on 127.0.0.1:0. The expected answers are those the reference Kafka 4.0 broker gave to
//! the same requests.

mod common;

use bytes::Bytes;
use common::groups::*;
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;
const UNSAFE_DOWNGRADE: i8 = 3;

async fn create_topic(c: &mut Client, topic: &str) {
    let t = create_topics_request::CreatableTopic::default().with_name(TopicName(s(topic))).with_num_partitions(1).with_replication_factor(1);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    let p = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records));
    let t = produce_request::TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![p]);
    ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![t])
}

fn list_offsets_req(topic: &str, timestamp: i64) -> ListOffsetsRequest {
    let p = list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp);
    let t = list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![p]);
    ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![t])
}

fn update(feature: &str, level: i16, upgrade_type: i8) -> FeatureUpdateKey {
    FeatureUpdateKey::default().with_feature(s(feature)).with_max_version_level(level).with_upgrade_type(upgrade_type)
}

fn update_req(updates: Vec<FeatureUpdateKey>, validate_only: bool) -> UpdateFeaturesRequest {
    UpdateFeaturesRequest::default().with_timeout_ms(5000).with_feature_updates(updates).with_validate_only(validate_only)
}

/// (name, min, max) of the supported features and (name, level) of the finalized ones, with the epoch.
async fn features(c: &mut Client) -> (Vec<(String, i16, i16)>, Vec<(String, i16)>, i64) {
    let r = c.send(&ApiVersionsRequest::default(), 4).await;
    assert_eq!(r.error_code, 0);
    let supported = r.supported_features.iter().map(|f| (f.name.to_string(), f.min_version, f.max_version)).collect();
    let finalized = r
        .finalized_features
        .iter()
        .map(|f| {
            assert_eq!(f.min_version_level, f.max_version_level, "{}: one finalized level", f.name);
            (f.name.to_string(), f.max_version_level)
        })
        .collect();
    (supported, finalized, r.finalized_features_epoch)
}

fn owned(v: &[(&str, i16)]) -> Vec<(String, i16)> {
    v.iter().map(|(n, l)| (n.to_string(), *l)).collect()
}

#[tokio::test]
async fn produce_v12_list_offsets_v10_and_metadata_v13_answer_as_their_predecessors_plus_their_fields() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t").await;
    let r = c.send(&produce_req("t", batch(3, 1_000, Compression::None)), 12).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let r = c.send(&produce_req("t", batch(2, 2_000, Compression::None)), 12).await;
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 3);

    // v10 adds timeout_ms (the wait for tiered storage): every offset is local, any timeout answers.
    for timeout_ms in [0, -1, 30_000] {
        let r = c.send(&list_offsets_req("t", -1).with_timeout_ms(timeout_ms), 10).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset, p.leader_epoch), (0, 5, 0), "latest, timeout_ms {timeout_ms}");
    }
    let by_time = c.send(&list_offsets_req("t", 2_000), 10).await;
    assert_eq!((by_time.topics[0].partitions[0].offset, by_time.topics[0].partitions[0].timestamp), (3, 2_000));
    // Nothing at or after the timestamp: no offset and no leader epoch (Kafka's -1, -1).
    let none = c.send(&list_offsets_req("t", 9_999), 10).await;
    assert_eq!((none.topics[0].partitions[0].offset, none.topics[0].partitions[0].leader_epoch), (-1, -1));
    // Special timestamps need the version that brought them; unknown ones are refused (Kafka 4.0
    // answers UNSUPPORTED_VERSION for -3 before v7, -4 before v8, -5 before v9, and -6 or below).
    for (timestamp, version, code) in [(-3i64, 6i16, 35i16), (-3, 7, 0), (-4, 7, 35), (-4, 8, 0), (-5, 8, 35), (-5, 9, 0), (-6, 10, 35), (-100, 10, 35)] {
        let r = c.send(&list_offsets_req("t", timestamp), version).await;
        assert_eq!(r.topics[0].partitions[0].error_code, code, "timestamp {timestamp} at v{version}");
    }

    // v13 adds a top-level error code: NONE for a served request.
    let r = c.send(&MetadataRequest::default().with_topics(None), 13).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics.iter().map(|t| (t.name.as_ref().map(|n| n.to_string()), t.partitions.len())).collect::<Vec<_>>(), vec![(Some("t".to_string()), 1)]);
    b.stop().await;
}

#[tokio::test]
async fn describe_groups_v6_answers_unknown_and_consumer_groups_with_group_id_not_found_and_its_message() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t").await;
    let joined = c.send(&consumer_join_req("cg", "m1", &["t"]), 1).await;
    assert_eq!(joined.error_code, 0);

    let ids = vec![gid("nosuch"), gid("cg")];
    let v5 = c.send(&DescribeGroupsRequest::default().with_groups(ids.clone()), 5).await;
    for g in &v5.groups {
        assert_eq!((g.error_code, g.group_state.as_str()), (0, "Dead"), "{}: v5 has no error for it", g.group_id.as_str());
    }
    let v6 = c.send(&DescribeGroupsRequest::default().with_groups(ids), 6).await;
    let answers: Vec<(&str, i16, Option<&str>, &str)> =
        v6.groups.iter().map(|g| (g.group_id.as_str(), g.error_code, g.error_message.as_deref(), g.group_state.as_str())).collect();
    assert_eq!(
        answers,
        vec![
            ("nosuch", E::GroupIdNotFound.code(), Some("Group nosuch not found."), "Dead"),
            ("cg", E::GroupIdNotFound.code(), Some("Group cg is not a classic group."), "Dead"),
        ]
    );
    b.stop().await;
}

#[tokio::test]
async fn describe_cluster_v2_marks_no_broker_fenced_and_refuses_other_endpoint_types_as_kafka() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    for include_fenced in [false, true] {
        let r = c.send(&DescribeClusterRequest::default().with_include_fenced_brokers(include_fenced), 2).await;
        assert_eq!((r.error_code, r.endpoint_type, r.controller_id.0), (0, 1, 1));
        assert_eq!(r.brokers.iter().map(|n| (n.broker_id.0, n.port, n.is_fenced)).collect::<Vec<_>>(), vec![(1, b.addr.port() as i32, false)]);
        assert!(!r.cluster_id.is_empty());
    }
    for v in [1i16, 2] {
        let r = c.send(&DescribeClusterRequest::default().with_endpoint_type(2), v).await;
        assert_eq!((r.error_code, r.endpoint_type, r.controller_id.0, r.cluster_id.as_str(), r.brokers.len()), (E::MismatchedEndpointType.code(), 1, -1, "", 0));
        assert_eq!(r.error_message.as_deref(), Some("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER"));
        let r = c.send(&DescribeClusterRequest::default().with_endpoint_type(3), v).await;
        assert_eq!((r.error_code, r.error_message.as_deref()), (E::UnsupportedEndpointType.code(), Some("Unsupported endpoint type 3")));
    }
    b.stop().await;
}

#[tokio::test]
async fn api_versions_v4_carries_what_fjord_implements_v3_less_and_v2_no_features() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let (supported, finalized, epoch) = features(&mut c).await;
    let supported: Vec<(&str, i16, i16)> = supported.iter().map(|(n, a, z)| (n.as_str(), *a, *z)).collect();
    assert_eq!(supported, vec![("group.version", 0, 1), ("kraft.version", 0, 1), ("metadata.version", 25, 25), ("transaction.version", 0, 2)]);
    // Level 0 (kraft.version, a static quorum) is left out, as Kafka leaves it out.
    assert_eq!(finalized, owned(&[("group.version", 1), ("metadata.version", 25), ("transaction.version", 2)]));
    assert_eq!(epoch, 0);
    // v3 leaves out the features whose lowest level is 0, as Kafka 4.0 does.
    let v3 = c.send(&ApiVersionsRequest::default(), 3).await;
    let names: Vec<&str> = v3.supported_features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["metadata.version"]);
    assert_eq!(v3.finalized_features.len(), 3);
    let v2 = c.send(&ApiVersionsRequest::default(), 2).await;
    assert!(v2.supported_features.is_empty() && v2.finalized_features.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn update_features_refuses_with_kafkas_errors_and_changes_nothing() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let before = features(&mut c).await;
    let prefix = "The update failed for all features since the following feature had an error: ";
    let cases = [
        (vec![update("group.version", 5, UPGRADE)], "Invalid update version 5 for feature group.version. Local controller 1 only supports versions 0-1"),
        (vec![update("foo.version", 1, UPGRADE)], "Invalid update version 1 for feature foo.version. Local controller 1 does not support this feature."),
        (
            vec![update("group.version", 0, UPGRADE)],
            "Invalid update version 0 for feature group.version. Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.",
        ),
        (vec![update("group.version", 1, 7)], "Invalid update version 1 for feature group.version. The controller does not support the given upgrade type."),
        (vec![update("metadata.version", -1, UNSAFE_DOWNGRADE)], "Invalid update version -1 for feature metadata.version. A feature version cannot be less than 0."),
        (vec![update("metadata.version", 24, SAFE_DOWNGRADE)], "Invalid update version 24 for feature metadata.version. Local controller 1 only supports versions 25-25"),
        (vec![update("transaction.version", 3, UPGRADE)], "Invalid update version 3 for feature transaction.version. Local controller 1 only supports versions 0-2"),
        // One bad update refuses the good one beside it.
        (vec![update("group.version", 0, SAFE_DOWNGRADE), update("foo", 1, UPGRADE)], "Invalid update version 1 for feature foo. Local controller 1 does not support this feature."),
    ];
    for v in [1i16, 2] {
        for validate_only in [true, false] {
            for (updates, reason) in &cases {
                let r = c.send(&update_req(updates.clone(), validate_only), v).await;
                assert_eq!((r.error_code, r.error_message.as_deref()), (E::InvalidUpdateVersion.code(), Some(format!("{prefix}{reason}").as_str())), "v{v}");
                assert!(r.results.is_empty());
            }
        }
    }
    assert_eq!(features(&mut c).await, before);
    b.stop().await;
}

#[tokio::test]
async fn group_version_0_turns_consumer_groups_off_durably_until_upgraded() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t").await;

    // validate_only changes nothing; v1 answers each feature ("NONE" as Kafka 4.0 does), v2 none.
    let r = c.send(&update_req(vec![update("group.version", 0, SAFE_DOWNGRADE)], true), 1).await;
    assert_eq!(r.results.iter().map(|x| (x.feature.as_str(), x.error_code, x.error_message.as_deref())).collect::<Vec<_>>(), vec![("group.version", 0, Some("NONE"))]);
    assert_eq!((r.error_code, r.error_message.as_deref()), (0, None));
    assert_eq!(features(&mut c).await.2, 0);
    let r = c.send(&update_req(vec![update("group.version", 0, SAFE_DOWNGRADE)], false), 2).await;
    assert_eq!((r.error_code, r.results.len()), (0, 0));
    let (_, finalized, epoch) = features(&mut c).await;
    assert_eq!((finalized, epoch), (owned(&[("metadata.version", 25), ("transaction.version", 2)]), 1));

    // As Kafka with group.version 0: the consumer protocol answers UNSUPPORTED_VERSION, no message.
    let beat = c.send(&consumer_join_req("cg", "m1", &["t"]), 1).await;
    assert_eq!((beat.error_code, beat.error_message.as_deref(), beat.member_id.as_deref()), (E::UnsupportedVersion.code(), None, None));
    let d = c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("cg")]), 1).await;
    assert_eq!((d.groups[0].error_code, d.groups[0].error_message.as_deref()), (E::UnsupportedVersion.code(), None));

    // Durable: a restart keeps the level and the epoch.
    b.restart().await;
    let mut c = b.client().await;
    let (_, finalized, epoch) = features(&mut c).await;
    assert_eq!((finalized, epoch), (owned(&[("metadata.version", 25), ("transaction.version", 2)]), 1));
    assert_eq!(c.send(&consumer_join_req("cg", "m1", &["t"]), 1).await.error_code, E::UnsupportedVersion.code());

    // v0 speaks allow_downgrade instead of an upgrade type; an upgrade turns the protocol back on.
    let v0 = UpdateFeaturesRequest::default().with_timeout_ms(5000).with_feature_updates(vec![update("group.version", 1, UPGRADE)]);
    assert_eq!(c.send(&v0, 0).await.error_code, 0);
    let (_, finalized, epoch) = features(&mut c).await;
    assert_eq!((finalized, epoch), (owned(&[("group.version", 1), ("metadata.version", 25), ("transaction.version", 2)]), 2));
    let beat = c.send(&consumer_join_req("cg", "m1", &["t"]), 1).await;
    assert_eq!((beat.error_code, beat.member_epoch), (0, 1));
    // The same level again is no change: the epoch stays.
    assert_eq!(c.send(&update_req(vec![update("group.version", 1, UPGRADE)], false), 1).await.error_code, 0);
    assert_eq!(features(&mut c).await.2, 2);
    b.stop().await;
}
