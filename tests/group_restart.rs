//! Wire tests of groups across a broker restart: members of a classic group and of a KIP-848
//! consumer group carry on heartbeating and committing with their member ids and generation
//! (epochs) without a rebalance, and a member that does not come back is removed after its
//! session timeout, counted from the restart. Broker on 127.0.0.1:0 over a temp dir.

mod common;

use std::time::{Duration, Instant};

use common::groups::*;
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;



async fn create_topic(c: &mut Client, topic: &str, partitions: i32) {
    let t = create_topics_request::CreatableTopic::default().with_name(TopicName(s(topic))).with_num_partitions(partitions).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

/// An OffsetCommit of one partition by a member (generation or member epoch), at `version`.
async fn commit(c: &mut Client, group: &str, member: &str, generation: i32, partition: i32, offset: i64, version: i16) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(partition).with_committed_offset(offset),
        ])]);
    c.send(&req, version).await.topics[0].partitions[0].error_code
}

// ---- classic groups ----

const CLASSIC: &[&str] = &["group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=100"];



async fn heartbeat(c: &mut Client, group: &str, generation: i32, member: &str) -> i16 {
    c.send(&HeartbeatRequest::default().with_group_id(gid(group)).with_generation_id(generation).with_member_id(s(member)), 4).await.error_code
}

async fn describe(c: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    c.send(&DescribeGroupsRequest::default().with_groups(vec![gid(group)]), 5).await.groups.remove(0)
}

/// Two members, Stable at generation 2: `a` (long session) leads, `b` has a 3 s session.
async fn stable_classic_pair(b: &TestBroker, group: &str) -> (String, String) {
    let mut c1 = b.client().await;
    let mut c2 = b.client().await;
    let first = c1.send(&join_req(group, "", 30_000), 9).await;
    let j1 = c1.send(&join_req(group, &first.member_id, 30_000), 9).await;
    assert_eq!((j1.error_code, j1.generation_id), (0, 1));
    let a = j1.member_id.to_string();
    assert_eq!(c1.send(&sync_req(group, 1, &a, vec![(&a, b"all")]), 5).await.error_code, 0);
    let first = c2.send(&join_req(group, "", 3_000), 9).await;
    let m2 = first.member_id.to_string();
    let g = group.to_string();
    let pending = tokio::spawn(async move {
        let r = c2.send(&join_req(&g, &m2, 3_000), 9).await;
        (c2, r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let j1b = c1.send(&join_req(group, &a, 30_000), 9).await;
    let (mut c2, j2) = pending.await.unwrap();
    assert_eq!((j1b.error_code, j2.error_code, j1b.generation_id, j2.generation_id), (0, 0, 2, 2));
    let bm = j2.member_id.to_string();
    let g = group.to_string();
    let bm2 = bm.clone();
    let follower = tokio::spawn(async move { c2.send(&sync_req(&g, 2, &bm2, vec![]), 5).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leader = c1.send(&sync_req(group, 2, &a, vec![(&a, b"p0"), (&bm, b"p1")]), 5).await;
    assert_eq!((leader.error_code, follower.await.unwrap().error_code), (0, 0));
    (a, bm)
}

#[tokio::test]
async fn a_stable_classic_group_resumes_after_a_restart_without_a_rebalance() {
    let mut b = TestBroker::start(CLASSIC).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 2).await;
    let (a, m2) = stable_classic_pair(&b, "g").await;
    assert_eq!(commit(&mut c, "g", &a, 2, 0, 5, 8).await, 0);
    b.restart().await;

    let mut c = b.client().await;
    let d = describe(&mut c, "g").await;
    assert_eq!((d.group_state.as_str(), d.protocol_data.as_str(), d.members.len()), ("Stable", "range", 2));
    let by_id = |id: &str| d.members.iter().find(|m| m.member_id.as_str() == id).expect("member restored").clone();
    assert_eq!((&by_id(&a).member_assignment[..], &by_id(&m2).member_assignment[..]), (&b"p0"[..], &b"p1"[..]));
    assert_eq!((&by_id(&a).member_metadata[..], by_id(&a).client_host.as_str()), (&b"sub"[..], "/127.0.0.1"));
    // Both members carry on with their ids and generation: no UNKNOWN_MEMBER_ID, no rebalance.
    for m in [&a, &m2] {
        assert_eq!(heartbeat(&mut c, "g", 2, m).await, 0, "heartbeat of {m}");
        assert_eq!(commit(&mut c, "g", m, 2, 1, 7, 8).await, 0, "commit of {m}");
    }
    assert_eq!(heartbeat(&mut c, "g", 1, &a).await, E::IllegalGeneration.code());
    // The leader's rejoin with unchanged metadata would rebalance; its SyncGroup of the current
    // generation hands back its assignment.
    let s = c.send(&sync_req("g", 2, &m2, vec![]), 5).await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"p1"[..]));

    // m2 never heartbeats again: removed after its 3 s session (counted from the restart), and
    // the group rebalances for a, which keeps heartbeating.
    let start = Instant::now();
    let mut code = 0;
    while code == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        code = heartbeat(&mut c, "g", 2, &a).await;
    }
    assert_eq!(code, E::RebalanceInProgress.code(), "after {:?}", start.elapsed());
    assert!(start.elapsed() >= Duration::from_millis(2_000), "not before the session ends: {:?}", start.elapsed());
    let j = c.send(&join_req("g", &a, 30_000), 9).await;
    assert_eq!((j.error_code, j.generation_id, j.members.len()), (0, 3, 1));
    assert_eq!(heartbeat(&mut c, "g", 2, &m2).await, E::UnknownMemberId.code());
    b.stop().await;
}

#[tokio::test]
async fn an_emptied_or_deleted_classic_group_stays_so_after_a_restart() {
    let mut b = TestBroker::start(CLASSIC).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 2).await;
    let (a, m2) = stable_classic_pair(&b, "g").await;
    stable_classic_pair(&b, "gone").await;
    let leave = |g: &str, members: Vec<&str>| {
        LeaveGroupRequest::default()
            .with_group_id(gid(g))
            .with_members(members.into_iter().map(|m| leave_group_request::MemberIdentity::default().with_member_id(s(m))).collect())
    };
    assert_eq!(c.send(&leave("g", vec![&a, &m2]), 3).await.error_code, 0);
    let all: Vec<String> = describe(&mut c, "gone").await.members.iter().map(|m| m.member_id.to_string()).collect();
    assert_eq!(c.send(&leave("gone", all.iter().map(String::as_str).collect()), 3).await.error_code, 0);
    let del = c.send(&DeleteGroupsRequest::default().with_groups_names(vec![gid("gone")]), 2).await;
    assert_eq!(del.results[0].error_code, 0);
    b.restart().await;
    let mut c = b.client().await;
    let d = describe(&mut c, "g").await;
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Empty", 0));
    assert_eq!(heartbeat(&mut c, "g", 2, &a).await, E::UnknownMemberId.code());
    assert_eq!(describe(&mut c, "gone").await.group_state.as_str(), "Dead");
    b.stop().await;
}

// ---- KIP-848 consumer groups ----

const CONSUMER: &[&str] = &[
    "group.consumer.min.session.timeout.ms=100",
    "group.consumer.session.timeout.ms=3000",
    "group.consumer.min.heartbeat.interval.ms=10",
    "group.consumer.heartbeat.interval.ms=50",
];





#[tokio::test]
async fn a_consumer_group_resumes_after_a_restart_with_its_epochs_and_assignments() {
    let mut b = TestBroker::start(CONSUMER).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 4).await;
    // a gets all four at epoch 1; b joins (epoch 2); a gives two up; b gets them: Stable at 2.
    let a1 = c.send(&consumer_join_req("g", "a", &["t"]), 1).await;
    let a_all = owned(&a1);
    let b1 = c.send(&consumer_join_req("g", "b", &["t"]), 1).await;
    assert_eq!(b1.member_epoch, 2);
    let a2 = c.send(&consumer_beat_req("g", "a", 1, Some(a_all)), 1).await;
    let a_kept = owned(&a2);
    assert_eq!(partitions(&a_kept).len(), 2);
    assert_eq!(c.send(&consumer_beat_req("g", "a", 1, Some(a_kept.clone())), 1).await.member_epoch, 2);
    let b2 = c.send(&consumer_beat_req("g", "b", 2, Some(vec![])), 1).await;
    let b_got = owned(&b2);
    assert_eq!(partitions(&b_got).len(), 2);
    assert_eq!(c.send(&consumer_beat_req("g", "b", 2, Some(b_got.clone())), 1).await.error_code, 0);
    b.restart().await;

    let mut c = b.client().await;
    let d = c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("g")]), 0).await;
    let g = &d.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str(), g.group_epoch, g.assignment_epoch, g.members.len()), (0, "Stable", 2, 2, 2));
    for m in &g.members {
        let n: usize = m.assignment.topic_partitions.iter().map(|t| t.partitions.len()).sum();
        assert_eq!((m.member_epoch, n), (2, 2), "{}", m.member_id.as_str());
    }
    // Both carry on at epoch 2 with what they own: no error, no new epoch, nothing to change.
    for (m, own, p) in [("a", &a_kept, 0), ("b", &b_got, 1)] {
        let r = c.send(&consumer_beat_req("g", m, 2, Some(own.clone())), 1).await;
        assert_eq!((r.error_code, r.member_epoch), (0, 2), "heartbeat of {m}");
        assert!(r.assignment.is_none(), "no change for {m}");
        assert_eq!(commit(&mut c, "g", m, 2, p, 11, 9).await, 0, "commit of {m}");
    }
    assert_eq!(commit(&mut c, "g", "a", 1, 0, 12, 9).await, E::StaleMemberEpoch.code());

    // b never heartbeats again: after its session (3 s from the restart) a gets all four.
    let start = Instant::now();
    let (mut epoch, mut got) = (2, partitions(&a_kept));
    while got.len() < 4 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let own: Vec<Owned> = vec![];
        let r = c.send(&consumer_beat_req("g", "a", epoch, if epoch == 2 { None } else { Some(own) }), 1).await;
        assert_eq!(r.error_code, 0);
        epoch = r.member_epoch;
        if r.assignment.is_some() {
            got = partitions(&owned(&r));
        }
    }
    assert_eq!((got.len(), epoch), (4, 3), "after {:?}", start.elapsed());
    assert!(start.elapsed() >= Duration::from_millis(2_000), "not before the session ends: {:?}", start.elapsed());
    assert_eq!(c.send(&consumer_beat_req("g", "b", 2, None), 1).await.error_code, E::UnknownMemberId.code());

    // The expiry was written too: after another restart b is still gone and a has all four.
    b.restart().await;
    let mut c = b.client().await;
    let r = c.send(&consumer_beat_req("g", "a", 3, None), 1).await;
    assert_eq!((r.error_code, r.member_epoch), (0, 3));
    assert_eq!(c.send(&consumer_beat_req("g", "b", 2, None), 1).await.error_code, E::UnknownMemberId.code());
    // a leaves; the group is deleted; after a restart it does not come back.
    assert_eq!(c.send(&consumer_beat_req("g", "a", -1, None), 1).await.error_code, 0);
    let del = c.send(&DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]), 2).await;
    assert_eq!(del.results[0].error_code, 0);
    b.restart().await;
    let mut c = b.client().await;
    let d = c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("g")]), 0).await;
    assert_eq!(d.groups[0].error_code, E::GroupIdNotFound.code());
    b.stop().await;
}
