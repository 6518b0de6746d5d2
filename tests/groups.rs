//! Wire tests of classic consumer groups: membership and rebalances, session expiry, offsets that
//! survive a restart, generation checks and the admin APIs, against a broker on 127.0.0.1:0.

mod common;

use common::groups::*;
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;



/// Fast groups: no initial delay, session timeouts down to 100 ms.
const FAST: &[&str] = &["group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=100", "num.partitions=2"];


/// Joins at v9: MEMBER_ID_REQUIRED first, then the join proper (which may park).
async fn join(c: &mut Client, group: &str, session_ms: i32) -> JoinGroupResponse {
    let first = c.send(&join_req(group, "", session_ms), 9).await;
    assert_eq!(first.error_code, E::MemberIdRequired.code());
    assert!(first.member_id.starts_with("wire-test-"), "{:?}", first.member_id);
    c.send(&join_req(group, &first.member_id, session_ms), 9).await
}


fn heartbeat_req(group: &str, generation: i32, member: &str) -> HeartbeatRequest {
    HeartbeatRequest::default().with_group_id(gid(group)).with_generation_id(generation).with_member_id(s(member)).with_group_instance_id(None)
}

fn commit_req(group: &str, generation: i32, member: &str, topic: &str, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_group_instance_id(None)
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s("meta"))),
        ])])
}

async fn ensure_topic(c: &mut Client, topic: &str) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]))
        .with_allow_auto_topic_creation(true);
    assert_eq!(c.send(&req, 12).await.topics[0].error_code, 0);
}

async fn fetch_offset(c: &mut Client, group: &str, topic: &str, partition: i32, version: i16) -> (i16, i64, Option<String>) {
    let req = OffsetFetchRequest::default().with_group_id(gid(group)).with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![partition])]));
    let resp = c.send(&req, version).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset, p.metadata.as_ref().map(|m| m.to_string()))
}

#[tokio::test]
async fn find_coordinator_names_this_broker_for_groups_and_transactions() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    let resp = c.send(&FindCoordinatorRequest::default().with_key(s("g")), 3).await;
    assert_eq!((resp.error_code, resp.port), (0, b.addr.port() as i32));
    let resp = c.send(&FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("a"), s("b")]), 6).await;
    assert_eq!(resp.coordinators.len(), 2);
    assert!(resp.coordinators.iter().all(|k| k.error_code == 0 && k.port == b.addr.port() as i32 && k.host.as_str() == "127.0.0.1"));
    let txn = c.send(&FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("t")]), 4).await;
    assert_eq!((txn.coordinators[0].error_code, txn.coordinators[0].port), (0, b.addr.port() as i32));
    let bad = c.send(&FindCoordinatorRequest::default().with_key_type(2).with_coordinator_keys(vec![s("t")]), 4).await;
    assert_eq!(bad.coordinators[0].error_code, E::InvalidRequest.code());
    b.stop().await;
}

/// Partitions and error code of `topic` in a Metadata answer that may not create it.
async fn topic_partitions(c: &mut Client, topic: &str) -> (i16, usize) {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]))
        .with_allow_auto_topic_creation(false);
    let resp = c.send(&req, 12).await;
    (resp.topics[0].error_code, resp.topics[0].partitions.len())
}

#[tokio::test]
async fn find_coordinator_creates_the_coordinators_internal_topic_before_it_answers() {
    let b = TestBroker::start(&[FAST, &["offsets.topic.num.partitions=7", "transaction.state.log.num.partitions=3"]].concat()).await;
    let mut c = b.client().await;
    let missing = E::UnknownTopicOrPartition.code();
    assert_eq!(topic_partitions(&mut c, "__consumer_offsets").await, (missing, 0));
    assert_eq!(topic_partitions(&mut c, "__transaction_state").await, (missing, 0));
    let resp = c.send(&FindCoordinatorRequest::default().with_key(s("g")), 3).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(topic_partitions(&mut c, "__consumer_offsets").await, (0, 7));
    assert_eq!(topic_partitions(&mut c, "__transaction_state").await, (missing, 0));
    let txn = c.send(&FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("t")]), 4).await;
    assert_eq!(txn.coordinators[0].error_code, 0);
    assert_eq!(topic_partitions(&mut c, "__transaction_state").await, (0, 3));
    b.stop().await;
}

#[tokio::test]
async fn two_members_join_the_leader_assigns_and_both_get_their_assignment() {
    let b = TestBroker::start(FAST).await;
    let mut c1 = b.client().await;
    let mut c2 = b.client().await;
    let j1 = join(&mut c1, "g2", 10_000).await;
    assert_eq!((j1.error_code, j1.generation_id), (0, 1));
    assert_eq!(j1.leader, j1.member_id);
    let s1 = c1.send(&sync_req("g2", 1, &j1.member_id, vec![(&j1.member_id, b"all")]), 5).await;
    assert_eq!((s1.error_code, &s1.assignment[..]), (0, &b"all"[..]));

    // A second member triggers a rebalance; the first learns it from its heartbeat and rejoins.
    let first = c2.send(&join_req("g2", "", 10_000), 9).await;
    let m2 = first.member_id.to_string();
    let pending = tokio::spawn(async move {
        let r = c2.send(&join_req("g2", &m2, 10_000), 9).await;
        (c2, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let hb = c1.send(&heartbeat_req("g2", 1, &j1.member_id), 4).await;
    assert_eq!(hb.error_code, E::RebalanceInProgress.code());
    let j1b = c1.send(&join_req("g2", &j1.member_id, 10_000), 9).await;
    let (mut c2, j2) = pending.await.unwrap();
    assert_eq!((j1b.error_code, j2.error_code, j1b.generation_id, j2.generation_id), (0, 0, 2, 2));
    assert_eq!(j1b.leader, j1.member_id, "the first joiner stays leader");
    assert_eq!(j1b.members.len(), 2, "the leader sees every member's metadata");
    assert!(j2.members.is_empty());
    assert_eq!(j1b.protocol_name.as_deref(), Some("range"));

    // The follower's sync parks until the leader's arrives.
    let m2 = j2.member_id.to_string();
    let follower = tokio::spawn(async move { c2.send(&sync_req("g2", 2, &m2, vec![]), 5).await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let leader = c1.send(&sync_req("g2", 2, &j1.member_id, vec![(&j1.member_id, b"p0"), (&j2.member_id, b"p1")]), 5).await;
    let follower = follower.await.unwrap();
    assert_eq!((leader.error_code, &leader.assignment[..]), (0, &b"p0"[..]));
    assert_eq!((follower.error_code, &follower.assignment[..]), (0, &b"p1"[..]));
    assert_eq!(c1.send(&heartbeat_req("g2", 2, &j1.member_id), 4).await.error_code, 0);
    assert_eq!(c1.send(&heartbeat_req("g2", 1, &j1.member_id), 4).await.error_code, E::IllegalGeneration.code());
    assert_eq!(c1.send(&heartbeat_req("g2", 2, "nobody"), 4).await.error_code, E::UnknownMemberId.code());

    // DescribeGroups shows the stable group with both members and their assignments.
    let d = c1.send(&DescribeGroupsRequest::default().with_groups(vec![gid("g2"), gid("missing")]), 5).await;
    let g = &d.groups[0];
    assert_eq!((g.group_state.as_str(), g.protocol_type.as_str(), g.protocol_data.as_str()), ("Stable", "consumer", "range"));
    assert_eq!(g.members.len(), 2);
    assert!(g.members.iter().all(|m| m.client_host.as_str() == "/127.0.0.1" && m.client_id.as_str() == "wire-test" && &m.member_metadata[..] == b"sub"));
    assert_eq!(d.groups[1].group_state.as_str(), "Dead");
    b.stop().await;
}

#[tokio::test]
async fn a_member_without_heartbeats_is_expelled_after_its_session_timeout() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    let j = join(&mut c, "gexp", 300).await;
    assert_eq!(j.error_code, 0);
    c.send(&sync_req("gexp", 1, &j.member_id, vec![]), 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(c.send(&heartbeat_req("gexp", 1, &j.member_id), 4).await.error_code, E::UnknownMemberId.code());
    let d = c.send(&DescribeGroupsRequest::default().with_groups(vec![gid("gexp")]), 5).await;
    assert_eq!(d.groups[0].group_state.as_str(), "Empty");
    assert!(d.groups[0].members.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn session_timeouts_outside_the_broker_bounds_are_refused() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    let r = c.send(&join_req("gb", "", 50), 9).await;
    assert_eq!(r.error_code, E::InvalidSessionTimeout.code());
    let r = c.send(&join_req("gb", "", 2_000_000), 9).await;
    assert_eq!(r.error_code, E::InvalidSessionTimeout.code());
    b.stop().await;
}

#[tokio::test]
async fn commits_fetch_back_and_survive_a_restart() {
    let mut b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "orders").await;
    let j = join(&mut c, "gc", 10_000).await;
    c.send(&sync_req("gc", 1, &j.member_id, vec![]), 5).await;
    let r = c.send(&commit_req("gc", 1, &j.member_id, "orders", 1, 42), 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    // A stale generation and an unknown partition are refused.
    let r = c.send(&commit_req("gc", 0, &j.member_id, "orders", 1, 43), 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::IllegalGeneration.code());
    let r = c.send(&commit_req("gc", 1, &j.member_id, "orders", 9, 1), 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::UnknownTopicOrPartition.code());
    let r = c.send(&commit_req("gc", 1, "stranger", "orders", 0, 1), 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::UnknownMemberId.code());
    // A simple commit while the group has a member is refused too.
    let r = c.send(&commit_req("gc", -1, "", "orders", 0, 1), 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::UnknownMemberId.code());
    assert_eq!(fetch_offset(&mut c, "gc", "orders", 1, 7).await, (0, 42, Some("meta".into())));
    assert_eq!(fetch_offset(&mut c, "gc", "orders", 0, 7).await.1, -1);
    drop(c);

    b.restart().await;
    let mut c = b.client().await;
    for v in [1, 5, 7] {
        assert_eq!(fetch_offset(&mut c, "gc", "orders", 1, v).await.1, 42, "OffsetFetch v{v}");
    }
    // v8+: several groups; null topics means every committed partition.
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(gid("gc")).with_member_id(None).with_topics(None),
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(gid("none")).with_member_id(None).with_topics(None),
    ]);
    let resp = c.send(&req, 9).await;
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(resp.groups[0].topics[0].partitions[0].committed_offset, 42);
    assert!(resp.groups[1].topics.is_empty());
    let d = c.send(&DescribeGroupsRequest::default().with_groups(vec![gid("gc")]), 5).await;
    // The member is still there (its session restarted with the broker, as in Kafka).
    let g = &d.groups[0];
    assert_eq!((g.group_state.as_str(), g.protocol_type.as_str(), g.members.len()), ("Stable", "consumer", 1));
    assert_eq!(g.members[0].member_id, j.member_id);
    b.stop().await;
}

#[tokio::test]
async fn simple_commits_with_generation_minus_one_work_on_an_empty_group() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "simple").await;
    for v in [2, 5, 8, 9] {
        let r = c.send(&commit_req("gs", -1, "", "simple", 0, 10 + v as i64), v).await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{v}");
        assert_eq!(fetch_offset(&mut c, "gs", "simple", 0, 6).await.1, 10 + v as i64);
    }
    let mut big = commit_req("gs", -1, "", "simple", 0, 1);
    big.topics[0].partitions[0].committed_metadata = Some(s(&"x".repeat(5000)));
    let r = c.send(&big, 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::OffsetMetadataTooLarge.code());
    // An unknown group with a real generation: ILLEGAL_GENERATION, as Kafka.
    let r = c.send(&commit_req("nosuch", 3, "m", "simple", 0, 1), 9).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::IllegalGeneration.code());
    b.stop().await;
}

#[tokio::test]
async fn deleting_a_topic_removes_every_groups_committed_offsets_of_it() {
    let mut b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "doomed").await;
    ensure_topic(&mut c, "stays").await;
    for (group, topic, partition, offset) in [("gd", "doomed", 0, 11), ("gd", "doomed", 1, 12), ("gd", "stays", 0, 13), ("ge", "doomed", 0, 14)] {
        let r = c.send(&commit_req(group, -1, "", topic, partition, offset), 9).await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }
    let del = c.send(&DeleteTopicsRequest::default().with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(TopicName(s("doomed"))))]), 6).await;
    assert_eq!(del.responses[0].error_code, 0);
    // Every committed partition of each group (null topics): the deleted topic's are gone, as
    // Kafka's coordinator drops them; the admin tool's group describe would fail on them.
    let committed = |resp: &OffsetFetchResponse| -> Vec<Vec<(String, i32, i64)>> {
        resp.groups
            .iter()
            .map(|g| g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))).collect())
            .collect()
    };
    let all = OffsetFetchRequest::default().with_groups(
        ["gd", "ge"].iter().map(|g| offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(gid(g)).with_member_id(None).with_topics(None)).collect(),
    );
    let want = vec![vec![("stays".to_string(), 0, 13)], vec![]];
    assert_eq!(committed(&c.send(&all, 9).await), want);
    // Re-created under the name, the topic starts without the old positions.
    ensure_topic(&mut c, "doomed").await;
    assert_eq!(fetch_offset(&mut c, "gd", "doomed", 0, 7).await.1, -1);
    drop(c);
    // The tombstones are durable: a restart does not bring the offsets back.
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(committed(&c.send(&all, 9).await), want);
    b.stop().await;
}

#[tokio::test]
async fn list_delete_groups_and_offset_delete_respect_membership() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "lt").await;
    c.send(&commit_req("empty-group", -1, "", "lt", 0, 5), 9).await;
    let j = join(&mut c, "busy-group", 10_000).await;
    c.send(&sync_req("busy-group", 1, &j.member_id, vec![]), 5).await;

    let all = c.send(&ListGroupsRequest::default(), 3).await;
    let mut names: Vec<String> = all.groups.iter().map(|g| g.group_id.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["busy-group", "empty-group"]);
    let stable = c.send(&ListGroupsRequest::default().with_states_filter(vec![s("Stable")]), 4).await;
    assert_eq!(stable.groups.len(), 1);
    assert_eq!((stable.groups[0].group_id.as_str(), stable.groups[0].group_state.as_str()), ("busy-group", "Stable"));
    let v5 = c.send(&ListGroupsRequest::default().with_types_filter(vec![s("classic")]), 5).await;
    assert_eq!(v5.groups.len(), 2);

    let od = OffsetDeleteRequest::default().with_group_id(gid("busy-group")).with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default()
        .with_name(TopicName(s("lt")))
        .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)])]);
    assert_eq!(c.send(&od, 0).await.topics[0].partitions[0].error_code, E::GroupSubscribedToTopic.code());
    let mut od_empty = od.clone();
    od_empty.group_id = gid("empty-group");
    let r = c.send(&od_empty, 0).await;
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(fetch_offset(&mut c, "empty-group", "lt", 0, 7).await.1, -1);

    let del = c.send(&DeleteGroupsRequest::default().with_groups_names(vec![gid("empty-group"), gid("busy-group"), gid("ghost")]), 2).await;
    let codes: Vec<i16> = del.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, E::NonEmptyGroup.code(), E::GroupIdNotFound.code()]);

    // Once the member leaves, the group is Empty and may be deleted.
    let leave = LeaveGroupRequest::default().with_group_id(gid("busy-group")).with_members(vec![leave_group_request::MemberIdentity::default()
        .with_member_id(j.member_id.clone())
        .with_group_instance_id(None)
        .with_reason(None)]);
    let r = c.send(&leave, 5).await;
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    let del = c.send(&DeleteGroupsRequest::default().with_groups_names(vec![gid("busy-group")]), 2).await;
    assert_eq!(del.results[0].error_code, 0);
    assert!(c.send(&ListGroupsRequest::default(), 5).await.groups.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn the_initial_rebalance_delay_applies_only_to_an_empty_group() {
    let b = TestBroker::start(&["group.initial.rebalance.delay.ms=600", "group.min.session.timeout.ms=100"]).await;
    let mut c1 = b.client().await;
    let started = std::time::Instant::now();
    let j1 = join(&mut c1, "gd", 10_000).await;
    assert_eq!(j1.error_code, 0);
    assert!(started.elapsed() >= std::time::Duration::from_millis(550), "the first rebalance waits the delay");
    c1.send(&sync_req("gd", 1, &j1.member_id, vec![]), 5).await;
    // A follower joining the existing group: rebalance completes once the leader rejoins.
    let mut c2 = b.client().await;
    let first = c2.send(&join_req("gd", "", 10_000), 9).await;
    let m2 = first.member_id.to_string();
    let started = std::time::Instant::now();
    let pending = tokio::spawn(async move { c2.send(&join_req("gd", &m2, 10_000), 9).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let j1b = c1.send(&join_req("gd", &j1.member_id, 10_000), 9).await;
    let j2 = pending.await.unwrap();
    assert_eq!((j1b.error_code, j2.error_code, j2.generation_id), (0, 0, 2));
    assert!(started.elapsed() < std::time::Duration::from_millis(500), "no initial delay for an existing group: {:?}", started.elapsed());
    b.stop().await;
}

#[tokio::test]
async fn static_members_rejoin_without_a_rebalance_and_stale_ids_are_fenced() {
    let b = TestBroker::start(FAST).await;
    let mut c1 = b.client().await;
    let mut c2 = b.client().await;
    let static_join = |member: &str| join_req("gst", member, 10_000).with_group_instance_id(Some(s("instance-1")));
    // The leader is a dynamic member; the static one follows.
    let j1 = join(&mut c1, "gst", 10_000).await;
    c1.send(&sync_req("gst", 1, &j1.member_id, vec![]), 5).await;
    let pending = tokio::spawn(async move {
        let r = c2.send(&static_join(""), 9).await;
        (c2, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let j1b = c1.send(&join_req("gst", &j1.member_id, 10_000), 9).await;
    let (mut c2, js) = pending.await.unwrap();
    assert_eq!((js.error_code, js.generation_id), (0, 2));
    let m2 = js.member_id.to_string();
    let follower = tokio::spawn(async move {
        let r = c2.send(&sync_req("gst", 2, &m2, vec![]), 5).await;
        (c2, r)
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    c1.send(&sync_req("gst", j1b.generation_id, &j1.member_id, vec![(&js.member_id, b"static-part")]), 5).await;
    let (mut c2, _) = follower.await.unwrap();

    // The static member restarts: a new member id, same generation, same assignment.
    let again = c2.send(&static_join(""), 9).await;
    assert_eq!((again.error_code, again.generation_id), (0, 2));
    assert_ne!(again.member_id, js.member_id);
    let sy = c2.send(&sync_req("gst", 2, &again.member_id, vec![]), 5).await;
    assert_eq!((sy.error_code, &sy.assignment[..]), (0, &b"static-part"[..]));
    // The old member id is fenced.
    let stale = c2.send(&heartbeat_req("gst", 2, &js.member_id).with_group_instance_id(Some(s("instance-1"))), 4).await;
    assert_eq!(stale.error_code, E::FencedInstanceId.code());
    let d = c2.send(&DescribeGroupsRequest::default().with_groups(vec![gid("gst")]), 5).await;
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    b.stop().await;
}

/// Every served version of every group API answers, and its response decodes at that version
/// (fields a version lacks must stay at their defaults, or encoding fails).
#[tokio::test]
async fn every_served_version_of_the_group_apis_is_answered() {
    let b = TestBroker::start(FAST).await;
    let mut c = b.client().await;
    ensure_topic(&mut c, "sw").await;
    for v in 0..=6 {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        let resp = c.send(&req, v).await;
        let code = if v >= 4 { resp.coordinators[0].error_code } else { resp.error_code };
        assert_eq!(code, 0, "FindCoordinator v{v}");
    }
    for v in 0..=9i16 {
        let group = format!("sweep{v}");
        // JoinGroup is served from v2, as in Kafka 4.0 (KIP-896); the other group APIs from v0.
        let jv = v.max(2);
        let mut req = join_req(&group, "", 10_000);
        if jv < 5 {
            req.group_instance_id = None;
        }
        if jv < 8 {
            req.reason = None;
        }
        let mut j = c.send(&req, jv).await;
        if jv >= 4 {
            assert_eq!(j.error_code, E::MemberIdRequired.code(), "JoinGroup v{jv}");
            j = c.send(&join_req(&group, &j.member_id, 10_000), jv).await;
        }
        assert_eq!((j.error_code, j.generation_id), (0, 1), "JoinGroup v{jv}");
        let sv = v.min(5);
        let mut sreq = sync_req(&group, 1, &j.member_id, vec![(&j.member_id, b"a")]);
        if sv < 5 {
            sreq.protocol_type = None;
            sreq.protocol_name = None;
        }
        let sr = c.send(&sreq, sv).await;
        assert_eq!((sr.error_code, &sr.assignment[..]), (0, &b"a"[..]), "SyncGroup v{sv}");
        let hv = v.min(4);
        assert_eq!(c.send(&heartbeat_req(&group, 1, &j.member_id), hv).await.error_code, 0, "Heartbeat v{hv}");
        for cv in 2..=9 {
            let r = c.send(&commit_req(&group, 1, &j.member_id, "sw", 0, cv as i64), cv).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{cv}");
        }
        for fv in 1..=7 {
            assert_eq!(fetch_offset(&mut c, &group, "sw", 0, fv).await.1, 9, "OffsetFetch v{fv}");
        }
        for dv in 0..=5 {
            let d = c.send(&DescribeGroupsRequest::default().with_groups(vec![gid(&group)]), dv).await;
            assert_eq!(d.groups[0].members.len(), 1, "DescribeGroups v{dv}");
        }
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default().with_group_id(gid(&group)).with_members(vec![leave_group_request::MemberIdentity::default()
                .with_member_id(j.member_id.clone())
                .with_group_instance_id(None)
                .with_reason(None)])
        } else {
            LeaveGroupRequest::default().with_group_id(gid(&group)).with_member_id(j.member_id.clone())
        };
        assert_eq!(c.send(&leave, lv).await.error_code, 0, "LeaveGroup v{lv}");
    }
    for v in 0..=5 {
        assert_eq!(c.send(&ListGroupsRequest::default(), v).await.groups.len(), 10, "ListGroups v{v}");
    }
    for v in 0..=2 {
        let del = c.send(&DeleteGroupsRequest::default().with_groups_names(vec![gid(&format!("sweep{v}"))]), v).await;
        assert_eq!(del.results[0].error_code, 0, "DeleteGroups v{v}");
    }
    b.stop().await;
}
