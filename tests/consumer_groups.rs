//! Wire tests of KIP-848 consumer groups (ConsumerGroupHeartbeat, ConsumerGroupDescribe, member
//! epochs in OffsetCommit) and of GROUP config resources, against a broker on 127.0.0.1:0.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::groups::*;
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;



/// Short sessions and heartbeats so expiry is quick (but longer than creating __consumer_offsets).
const FAST: &[&str] = &[
    "group.consumer.min.session.timeout.ms=100",
    "group.consumer.session.timeout.ms=2000",
    "group.consumer.min.heartbeat.interval.ms=10",
    "group.consumer.heartbeat.interval.ms=50",
];

async fn create_topic(c: &mut Client, topic: &str, partitions: i32) {
    let t = create_topics_request::CreatableTopic::default().with_name(TopicName(s(topic))).with_num_partitions(partitions).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}





#[tokio::test]
async fn two_members_share_partitions_and_a_partition_moves_only_after_revocation() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 4).await;

    let a = c.send(&consumer_join_req("g", "a", &["t"]), 1).await;
    assert_eq!((a.error_code, a.member_epoch, a.member_id.as_deref()), (0, 1, Some("a")));
    assert_eq!(a.heartbeat_interval_ms, 50);
    let a_owned = owned(&a);
    assert_eq!(partitions(&a_owned), BTreeSet::from([0, 1, 2, 3]));

    // b joins at epoch 2 and waits: a still owns everything.
    let bj = c.send(&consumer_join_req("g", "b", &["t"]), 1).await;
    assert_eq!((bj.error_code, bj.member_epoch), (0, 2));
    assert!(partitions(&owned(&bj)).is_empty());

    // a is asked to revoke two partitions and stays at epoch 1 until it reports them gone.
    let a2 = c.send(&consumer_beat_req("g", "a", 1, Some(a_owned.clone())), 1).await;
    assert_eq!((a2.error_code, a2.member_epoch), (0, 1));
    let a_kept = owned(&a2);
    assert_eq!(partitions(&a_kept).len(), 2);
    let b2 = c.send(&consumer_beat_req("g", "b", 2, Some(vec![])), 1).await;
    assert!(b2.assignment.is_none(), "nothing freed yet");

    let a3 = c.send(&consumer_beat_req("g", "a", 1, Some(a_kept.clone())), 1).await;
    assert_eq!((a3.error_code, a3.member_epoch), (0, 2));
    let b3 = c.send(&consumer_beat_req("g", "b", 2, Some(vec![])), 1).await;
    let b_owned = owned(&b3);
    assert_eq!(partitions(&b_owned).len(), 2);
    assert!(partitions(&b_owned).is_disjoint(&partitions(&a_kept)));

    // ConsumerGroupDescribe shows a stable group; DescribeGroups refuses it as Kafka 4.0 does.
    let d = c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("g")]), 1).await;
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str(), g.group_epoch, g.assignment_epoch), (0, "Stable", 2, 2));
    assert_eq!(g.members.len(), 2);
    let classic = c.send(&DescribeGroupsRequest::default().with_groups(vec![gid("g")]), 5).await;
    assert_eq!((classic.groups[0].error_code, classic.groups[0].group_state.as_str()), (0, "Dead"), "v5 has no error message: Dead");
    let listed = c.send(&ListGroupsRequest::default().with_types_filter(vec![s("consumer")]), 5).await;
    assert_eq!(listed.groups.iter().map(|g| (g.group_id.as_str(), g.group_type.as_str())).collect::<Vec<_>>(), vec![("g", "consumer")]);

    // A classic JoinGroup cannot enter it.
    let join = JoinGroupRequest::default()
        .with_group_id(gid("g"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s("x"))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range"))]);
    assert_eq!(c.send(&join, 9).await.error_code, E::InconsistentGroupProtocol.code());

    // a leaves: b gets everything at the next epoch; the group cannot be deleted while b is in.
    let left = c.send(&consumer_beat_req("g", "a", -1, None), 1).await;
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let b4 = c.send(&consumer_beat_req("g", "b", 2, Some(b_owned)), 1).await;
    assert_eq!(b4.member_epoch, 3);
    assert_eq!(partitions(&owned(&b4)), BTreeSet::from([0, 1, 2, 3]));
    let del = c.send(&DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]), 2).await;
    assert_eq!(del.results[0].error_code, E::NonEmptyGroup.code());
    b.stop().await;
}

#[tokio::test]
async fn fenced_epochs_unknown_members_and_invalid_requests_are_refused() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 1).await;
    let a = c.send(&consumer_join_req("g", "a", &["t"]), 1).await;
    assert_eq!(a.member_epoch, 1);
    assert_eq!(c.send(&consumer_beat_req("g", "a", 7, None), 1).await.error_code, E::FencedMemberEpoch.code());
    assert_eq!(c.send(&consumer_beat_req("g", "zz", 1, None), 1).await.error_code, E::UnknownMemberId.code());
    assert_eq!(c.send(&consumer_join_req("g", "", &["t"]), 1).await.error_code, E::InvalidRequest.code(), "v1 needs a member id");
    assert_eq!(c.send(&consumer_join_req("g", "a", &["t"]).with_rebalance_timeout_ms(-1), 1).await.error_code, E::InvalidRequest.code());
    assert_eq!(c.send(&consumer_join_req("g", "c", &["t"]).with_server_assignor(Some(s("sticky"))), 1).await.error_code, E::UnsupportedAssignor.code());
    assert_eq!(c.send(&consumer_join_req("g", "c", &[]).with_subscribed_topic_regex(Some(s("("))), 1).await.error_code, E::InvalidRegularExpression.code());
    // v0 may leave the member id to the broker.
    let v0 = c.send(&consumer_join_req("g2", "", &["t"]), 0).await;
    assert_eq!(v0.error_code, 0);
    assert!(!v0.member_id.unwrap_or_default().is_empty());
    // A classic group with members is not a consumer group.
    let join = JoinGroupRequest::default()
        .with_group_id(gid("classic"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range"))]);
    let first = c.send(&join, 3).await;
    assert_eq!(first.error_code, 0);
    assert_eq!(c.send(&consumer_join_req("classic", "m", &["t"]), 1).await.error_code, E::GroupIdNotFound.code());
    let d = c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("classic"), gid("nope")]), 1).await;
    assert_eq!(d.groups[0].error_code, E::GroupIdNotFound.code());
    assert!(d.groups[0].error_message.as_deref().unwrap_or("").contains("is not a consumer group"));
    assert_eq!(d.groups[1].error_code, E::GroupIdNotFound.code());
    b.stop().await;
}

#[tokio::test]
async fn offset_commits_carry_the_member_epoch() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 1).await;
    let a = c.send(&consumer_join_req("g", "a", &["t"]), 1).await;
    let commit = |member: &str, epoch: i32| {
        OffsetCommitRequest::default().with_group_id(gid("g")).with_member_id(s(member)).with_generation_id_or_member_epoch(epoch).with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(42),
            ]),
        ])
    };
    let code = |r: &OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(code(&c.send(&commit("a", a.member_epoch), 9).await), 0);
    assert_eq!(code(&c.send(&commit("a", a.member_epoch - 1), 9).await), E::StaleMemberEpoch.code());
    assert_eq!(code(&c.send(&commit("x", 1), 9).await), E::UnknownMemberId.code());
    assert_eq!(code(&c.send(&commit("a", a.member_epoch), 8).await), E::UnsupportedVersion.code(), "members send their epoch (v9)");
    assert_eq!(code(&c.send(&commit("", -1), 9).await), E::UnknownMemberId.code(), "an admin commit needs an empty group");
    // OffsetFetch v9 checks the member too, and returns the commit.
    let fetch = |member: &str, epoch: i32| {
        OffsetFetchRequest::default().with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(gid("g"))
            .with_member_id(Some(s(member)))
            .with_member_epoch(epoch)
            .with_topics(None)])
    };
    let f = c.send(&fetch("a", 1), 9).await;
    assert_eq!(f.groups[0].error_code, 0);
    assert_eq!(f.groups[0].topics[0].partitions[0].committed_offset, 42);
    assert_eq!(c.send(&fetch("a", 0), 9).await.groups[0].error_code, E::StaleMemberEpoch.code());
    b.stop().await;
}

#[tokio::test]
async fn a_silent_member_is_removed_after_its_session_timeout() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 2).await;
    let a = c.send(&consumer_join_req("g", "a", &["t"]), 1).await;
    assert_eq!(partitions(&owned(&a)).len(), 2);
    let bj = c.send(&consumer_join_req("g", "b", &["t"]), 1).await;
    assert_eq!(bj.member_epoch, 2);
    // b keeps heartbeating; a falls silent and its partitions come to b after the session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut got = BTreeSet::new();
    let mut epoch = 2;
    while got.len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let owned_now: Vec<Owned> = vec![];
        let r = c.send(&consumer_beat_req("g", "b", epoch, Some(owned_now)), 1).await;
        assert_eq!(r.error_code, 0);
        epoch = r.member_epoch;
        if r.assignment.is_some() {
            got = partitions(&owned(&r));
        }
    }
    assert_eq!(got, BTreeSet::from([0, 1]));
    assert_eq!(c.send(&consumer_beat_req("g", "a", 1, None), 1).await.error_code, E::UnknownMemberId.code());
    b.stop().await;
}

fn describe_group_configs(group: &str) -> DescribeConfigsRequest {
    DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(32)
        .with_resource_name(s(group))
        .with_configuration_keys(None)])
}

fn alter_group_config(group: &str, name: &str, value: &str) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(32)
        .with_resource_name(s(group))
        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(0)
            .with_value(Some(s(value)))])])
}

#[tokio::test]
async fn group_configs_are_described_altered_validated_and_survive_a_restart() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let values = |r: &DescribeConfigsResponse| -> BTreeMap<String, (Option<String>, i8)> {
        r.results[0].configs.iter().map(|e| (e.name.to_string(), (e.value.as_ref().map(|v| v.to_string()), e.config_source))).collect()
    };
    // Any group id, known or not, has Kafka 4.0's six group configs with the broker defaults.
    let d = c.send(&describe_group_configs("nobody"), 4).await;
    assert_eq!(d.results[0].error_code, 0);
    let v = values(&d);
    assert_eq!(v.len(), 6, "{v:?}");
    assert_eq!(v["consumer.session.timeout.ms"], (Some("45000".into()), 5));
    assert_eq!(v["consumer.heartbeat.interval.ms"], (Some("5000".into()), 5));
    assert_eq!(v["share.auto.offset.reset"].0.as_deref(), Some("latest"));

    let r = c.send(&alter_group_config("g", "consumer.session.timeout.ms", "50000"), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    assert_eq!(values(&c.send(&describe_group_configs("g"), 4).await)["consumer.session.timeout.ms"], (Some("50000".into()), 8));
    // Out of group.consumer.min/max.session.timeout.ms, unknown names: INVALID_CONFIG.
    for (name, value) in [("consumer.session.timeout.ms", "1000"), ("consumer.session.timeout.ms", "70000"), ("consumer.heartbeat.interval.ms", "x"), ("nope", "1")] {
        let r = c.send(&alter_group_config("g", name, value), 1).await;
        assert_eq!(r.responses[0].error_code, E::InvalidConfig.code(), "{name}={value}");
    }
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(values(&c.send(&describe_group_configs("g"), 4).await)["consumer.session.timeout.ms"], (Some("50000".into()), 8));
    b.stop().await;
}

#[tokio::test]
async fn the_group_heartbeat_interval_follows_the_group_config() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 1).await;
    let r = c.send(&alter_group_config("g", "consumer.heartbeat.interval.ms", "7000"), 1).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(c.send(&consumer_join_req("g", "a", &["t"]), 1).await.heartbeat_interval_ms, 7000);
    assert_eq!(c.send(&consumer_join_req("other", "a", &["t"]), 1).await.heartbeat_interval_ms, 5000);
    b.stop().await;
}
