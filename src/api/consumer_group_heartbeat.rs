//! ConsumerGroupHeartbeat (KIP-848): request field checks, topic ids <-> names, and the answer;
//! membership, epochs and assignments are the coordinator's. A first request at v0 may come
//! without a member id (the broker makes one); from v1 the client names itself.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::group::GroupError;
use crate::group::assignor;
use crate::group::consumer::{HeartbeatInput, LEAVE_EPOCH, STATIC_LEAVE_EPOCH, TopicsView};

/// Every topic as the group coordinator sees it: name -> (id, partition count).
pub(crate) fn topics_view(broker: &Broker) -> TopicsView {
    broker.metadata.topics().into_iter().map(|t| (t.name.clone(), (t.id, t.partitions))).collect()
}

/// The checks Kafka makes before looking at the group (INVALID_REQUEST with its messages).
fn validate(req: &ConsumerGroupHeartbeatRequest, version: i16) -> Result<(), GroupError> {
    let invalid = |m: &str| Err(GroupError::InvalidRequest(m.to_string()));
    if req.group_id.0.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if req.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return invalid("InstanceId can't be empty.");
    }
    if req.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
        return invalid("RackId can't be empty.");
    }
    if version >= 1 && req.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            // Kafka 4.0 also refuses null here. Fjord accepts it: librdkafka 2.12 rejoins with null
            // when it subscribes again right after its leave was answered (0045
            // subscribe_many_updates), and treats INVALID_REQUEST as fatal; a null list owns nothing.
            if req.topic_partitions.as_ref().is_some_and(|t| !t.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
            }
        }
        STATIC_LEAVE_EPOCH => {
            if req.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
            if req.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        e if e > 0 || e == LEAVE_EPOCH => {
            if req.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        _ => return invalid("MemberEpoch is invalid."),
    }
    Ok(())
}

fn to_wire(a: &assignor::Assignment, topics: &TopicsView) -> Assignment {
    let topic_partitions = a
        .iter()
        .filter_map(|(t, ps)| topics.get(t).map(|(id, _)| TopicPartitions::default().with_topic_id(*id).with_partitions(ps.iter().copied().collect())))
        .collect();
    Assignment::default().with_topic_partitions(topic_partitions)
}

pub async fn handle(broker: &Arc<Broker>, req: ConsumerGroupHeartbeatRequest, version: i16, client_id: String, client_host: String) -> ConsumerGroupHeartbeatResponse {
    let fail = |e: GroupError, member_id: Option<String>| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error_code::group(&e))
            .with_error_message(Some(str_bytes(e.to_string())))
            .with_member_id(member_id.map(str_bytes))
            .with_member_epoch(-1)
            .with_heartbeat_interval_ms(0)
    };
    if !broker.features.consumer_groups_enabled() {
        // group.version is finalized at 0: the consumer protocol is off, and Kafka 4.0 answers
        // UNSUPPORTED_VERSION with no message (the Java consumer stops on it; it does not fall back).
        return ConsumerGroupHeartbeatResponse::default().with_error_code(kafka_protocol::error::ResponseError::UnsupportedVersion.code());
    }
    if let Err(e) = validate(&req, version) {
        return fail(e, None);
    }
    if let Some(e) = super::offline_group(broker, &req.group_id.0) {
        return fail(e, None);
    }
    let topics = topics_view(broker);
    let by_id: std::collections::HashMap<uuid::Uuid, &String> = topics.iter().map(|(name, (id, _))| (*id, name)).collect();
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = assignor::Assignment::new();
        for tp in tps {
            if let Some(name) = by_id.get(&tp.topic_id) {
                a.entry((*name).clone()).or_default().extend(tp.partitions.iter().copied());
            }
        }
        a
    });
    let member_id = if req.member_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { req.member_id.to_string() };
    let input = HeartbeatInput {
        member_id: member_id.clone(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req.subscribed_topic_names.as_ref().map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id,
        client_host,
    };
    match broker.groups.consumer_heartbeat(&**broker, &req.group_id.0, input, &topics) {
        Ok(out) => {
            if let Some(write) = out.write {
                if let Some(ms) = write.write_after_ms {
                    let (broker, group_id) = (broker.clone(), req.group_id.0.to_string());
                    // The write blocks until `__consumer_offsets`' replicas have it (in a
                    // cluster): on a blocking thread, never on a runtime worker, whose
                    // follower fetches it waits for. Not on the handler pool either: the
                    // heartbeats waiting for this write may hold every handler thread.
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        let _ = tokio::task::spawn_blocking(move || broker.groups.write_lingering(&*broker, &group_id)).await;
                    });
                }
                match write.written.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return fail(e, Some(member_id)),
                    // The group went (deleted or expired) before its changes were written.
                    Err(_) => return fail(GroupError::CoordinatorNotAvailable, Some(member_id)),
                }
            }
            ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(out.output.member_id)))
            .with_member_epoch(out.output.member_epoch)
            .with_heartbeat_interval_ms(out.heartbeat_interval_ms)
            .with_assignment(out.output.assignment.as_ref().map(|a| to_wire(a, &topics)))
        }
        Err(e) => fail(e, Some(member_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;

    fn join() -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes("m"))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![]))
            .with_topic_partitions(Some(vec![]))
    }

    #[test]
    fn missing_or_empty_fields_are_invalid_requests() {
        assert_eq!(validate(&join(), 1), Ok(()));
        let invalid = |r: ConsumerGroupHeartbeatRequest, v: i16| matches!(validate(&r, v), Err(GroupError::InvalidRequest(_)));
        assert!(invalid(join().with_group_id(GroupId(str_bytes(""))), 1));
        assert!(invalid(join().with_member_id(str_bytes("")), 1));
        assert!(!invalid(join().with_member_id(str_bytes("")), 0), "v0 joins may leave the id to the broker");
        assert!(invalid(join().with_rebalance_timeout_ms(-1), 1));
        assert!(!invalid(join().with_topic_partitions(None), 1), "null owned partitions on a join are accepted");
        assert!(invalid(join().with_topic_partitions(Some(vec![Owned::default()])), 1));
        assert!(invalid(join().with_subscribed_topic_names(None), 1));
        assert!(invalid(join().with_instance_id(Some(str_bytes(""))), 1));
        assert!(invalid(join().with_member_epoch(-2), 1), "a static leave needs an instance id");
        assert!(invalid(join().with_member_epoch(-3), 1));
        assert_eq!(validate(&join().with_member_epoch(5).with_rebalance_timeout_ms(-1).with_topic_partitions(None), 1), Ok(()));
    }
}
