//! DescribeTopicPartitions (kafka-topics.sh --describe in Kafka 3.8+): topics by name, or all
//! topics when none are named, paginated by response_partition_limit and a cursor.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};

use super::{broker_ids, leader_and_isr, topic_name};
use crate::broker::acl::ResourceType;
use crate::broker::metadata::TopicMeta;
use crate::broker::Broker;

/// The answer, describing only topics `describable` allows (DESCRIBE on the topic, with an
/// authorizer): others are left out of an all-topics request and answered
/// TOPIC_AUTHORIZATION_FAILED, without an id or partitions and after the described ones, when
/// named (Kafka does not say whether they exist).
pub fn describe(broker: &Arc<Broker>, req: DescribeTopicPartitionsRequest, describable: &dyn Fn(&str) -> bool) -> DescribeTopicPartitionsResponse {
    // The broker's cap is max.request.partition.size.limit; a client may ask for fewer.
    let cap = broker.config.max_request_partition_size_limit;
    let limit = if req.response_partition_limit <= 0 { cap } else { req.response_partition_limit.min(cap) };
    // The topics to describe, sorted by name (pagination relies on the order).
    let mut names: Vec<String> = if req.topics.is_empty() {
        broker.metadata.topics().into_iter().map(|t| t.name.clone()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let mut refused = Vec::new();
    names.retain(|name| {
        let ok = describable(name);
        let before_cursor = req.cursor.as_ref().is_some_and(|c| name.as_str() < &*c.topic_name.0);
        if !ok && !req.topics.is_empty() && !before_cursor {
            refused.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name(name.clone())))
                    .with_error_code(E::TopicAuthorizationFailed.code())
                    .with_topic_authorized_operations(i32::MIN),
            );
        }
        ok
    });
    let (cursor_topic, cursor_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if let Some(start) = &cursor_topic {
            if &name < start {
                continue;
            }
        }
        let Some(meta): Option<std::sync::Arc<TopicMeta>> = broker.metadata.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(E::UnknownTopicOrPartition.code())
                    .with_topic_authorized_operations(i32::MIN),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name(name)).with_partition_index(0));
            break;
        }
        let first = if cursor_topic.as_deref() == Some(name.as_str()) { cursor_partition } else { 0 };
        let mut partitions = Vec::new();
        let mut p = first;
        let live = super::live_broker_ids(broker);
        while p < meta.partitions && budget > 0 {
            let state = leader_and_isr(broker, &meta.name, p);
            let error = if state.leader == crate::broker::partition::NO_LEADER { E::LeaderNotAvailable.code() } else { 0 };
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(error)
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(state.leader))
                    .with_leader_epoch(state.leader_epoch)
                    .with_replica_nodes(broker_ids(&state.replicas))
                    .with_isr_nodes(broker_ids(&state.isr))
                    .with_offline_replicas(super::offline_replicas(live.as_ref(), &state.replicas))
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![])),
            );
            p += 1;
            budget -= 1;
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(meta.name.clone())))
                .with_topic_id(meta.id)
                .with_is_internal(meta.is_internal())
                .with_partitions(partitions)
                .with_topic_authorized_operations(ResourceType::Topic.all_operations()),
        );
        if p < meta.partitions {
            next_cursor = Some(Cursor::default().with_topic_name(topic_name(meta.name.clone())).with_partition_index(p));
            break;
        }
    }
    topics.extend(refused);
    DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(next_cursor)
}
