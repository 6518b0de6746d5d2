//! ConsumerGroupDescribe (KIP-848): groups of the consumer protocol with their epochs, members,
//! assignments and targets. A classic group answers GROUP_ID_NOT_FOUND ("is not a consumer
//! group"), as Kafka does, so admin clients fall back to DescribeGroups.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use super::consumer_group_heartbeat::topics_view;
use super::{AUTHORIZED_OPERATIONS_OMITTED, error_code, str_bytes, topic_name};
use crate::broker::acl::ResourceType;
use crate::broker::Broker;
use crate::group::assignor;
use crate::group::consumer::TopicsView;


fn to_wire(a: &assignor::Assignment, topics: &TopicsView) -> Assignment {
    let topic_partitions = a
        .iter()
        .filter_map(|(t, ps)| {
            topics.get(t).map(|(id, _)| TopicPartitions::default().with_topic_id(*id).with_topic_name(topic_name(t.clone())).with_partitions(ps.iter().copied().collect()))
        })
        .collect();
    Assignment::default().with_topic_partitions(topic_partitions)
}

pub async fn handle(broker: &Arc<Broker>, req: ConsumerGroupDescribeRequest, _version: i16) -> ConsumerGroupDescribeResponse {
    let ops = if req.include_authorized_operations { ResourceType::Group.all_operations() } else { AUTHORIZED_OPERATIONS_OMITTED };
    let topics = topics_view(broker);
    let groups: Vec<DescribedGroup> = req
        .group_ids
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default().with_authorized_operations(ops);
            if !broker.features.consumer_groups_enabled() {
                // group.version 0: each group answered UNSUPPORTED_VERSION, as Kafka 4.0 does.
                return base.with_group_id(id).with_error_code(kafka_protocol::error::ResponseError::UnsupportedVersion.code());
            }
            match broker.groups.consumer_describe(&**broker, &id.0) {
                Err(e) => base
                    .with_group_id(id)
                    .with_error_code(error_code::group(&e))
                    .with_error_message(Some(str_bytes(e.to_string())))
                    .with_group_state(str_bytes("Dead")),
                Ok(g) => base
                    .with_group_id(id)
                    .with_group_state(str_bytes(g.state.as_str()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(str_bytes(g.assignor))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_instance_id(m.instance_id.map(str_bytes))
                                    .with_rack_id(m.rack_id.map(str_bytes))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_subscribed_topic_names(m.subscribed_topic_names.into_iter().map(topic_name).collect())
                                    .with_subscribed_topic_regex(m.subscribed_topic_regex.map(str_bytes))
                                    .with_assignment(to_wire(&m.assignment, &topics))
                                    .with_target_assignment(to_wire(&m.target_assignment, &topics))
                                    // 1: a member of the consumer protocol, 0: a classic one.
                                    .with_member_type(if m.classic { 0 } else { 1 })
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    let groups = groups.into_iter().map(|g| if g.error_code != 0 { g.with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED) } else { g }).collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

