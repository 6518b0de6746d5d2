//! Request builders the group wire tests share (classic JoinGroup/SyncGroup, KIP-848 heartbeats); no broker logic.
#![allow(dead_code)]

use std::collections::BTreeSet;

use bytes::Bytes;
pub use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A classic JoinGroup of a range consumer ("sub" as its subscription metadata).
pub fn join_req(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(5000)
        .with_member_id(s(member))
        .with_group_instance_id(None)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"sub"))])
        .with_reason(None)
}

/// A classic SyncGroup; the leader passes (member, assignment) pairs.
pub fn sync_req(group: &str, generation: i32, member: &str, assignments: Vec<(&str, &[u8])>) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_group_instance_id(None)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| sync_group_request::SyncGroupRequestAssignment::default().with_member_id(s(m)).with_assignment(Bytes::copy_from_slice(a)))
                .collect(),
        )
}

/// A KIP-848 member's first heartbeat (epoch 0) subscribing to `topics`.
pub fn consumer_join_req(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(s(t))).collect()))
        .with_topic_partitions(Some(vec![]))
}

/// A KIP-848 heartbeat at `epoch`, reporting `owned` partitions (None: unchanged).
pub fn consumer_beat_req(group: &str, member: &str, epoch: i32, owned: Option<Vec<Owned>>) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(owned)
}

/// The assignment of a response as (topic id, partitions) pairs, for reporting it back as owned.
pub fn owned(resp: &ConsumerGroupHeartbeatResponse) -> Vec<Owned> {
    let a = resp.assignment.as_ref().expect("an assignment");
    a.topic_partitions.iter().map(|tp| Owned::default().with_topic_id(tp.topic_id).with_partitions(tp.partitions.clone())).collect()
}

pub fn partitions(o: &[Owned]) -> BTreeSet<i32> {
    o.iter().flat_map(|t| t.partitions.iter().copied()).collect()
}
