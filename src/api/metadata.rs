//! Metadata: this node as the only broker, topics by name or (v10+) by id, auto-creation when
//! allowed by the request and by auto.create.topics.enable.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};

use super::{broker_ids, error_code, leader_and_isr, str_bytes, topic_name, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::metadata::{validate_topic_name, TopicMeta};
use crate::broker::acl::ResourceType;
use crate::broker::Broker;


fn partitions(broker: &Broker, t: &TopicMeta, version: i16) -> Vec<MetadataResponsePartition> {
    // Fields a version does not have must keep their defaults, or encoding fails.
    let live = if version >= 5 { super::live_broker_ids(broker) } else { None };
    (0..t.partitions)
        .map(|p| {
            let state = leader_and_isr(broker, &t.name, p);
            let error = if state.leader == crate::broker::partition::NO_LEADER { E::LeaderNotAvailable.code() } else { 0 };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p)
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(if version >= 7 { state.leader_epoch } else { -1 })
                .with_replica_nodes(broker_ids(&state.replicas))
                .with_isr_nodes(broker_ids(&state.isr))
                .with_offline_replicas(super::offline_replicas(live.as_ref(), &state.replicas))
        })
        .collect()
}

fn topic_response(broker: &Broker, t: &TopicMeta, ops: bool, version: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(t.name.clone())))
        .with_topic_id(if version >= 10 { t.id } else { uuid::Uuid::nil() })
        .with_is_internal(t.is_internal())
        .with_partitions(partitions(broker, t, version))
        .with_topic_authorized_operations(if ops { ResourceType::Topic.all_operations() } else { AUTHORIZED_OPERATIONS_OMITTED })
}

fn error_topic(name: Option<String>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// Answers with the brokers' endpoints on `listener`, the listener the request arrived on.
pub async fn handle(broker: &Arc<Broker>, req: MetadataRequest, version: i16, listener: &str) -> MetadataResponse {
    let ops = req.include_topic_authorized_operations;
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let allow_create = (version < 4 || req.allow_auto_topic_creation) && broker.config.auto_create_topics;
    let topics = match requested {
        None => broker.metadata.topics().iter().map(|t| topic_response(broker, t, ops, version)).collect(),
        Some(list) => list
            .into_iter()
            // A topic named by id (v12+) is looked up by it, whatever its name field holds, as
            // Kafka does once any id in the request is set.
            .map(|rt| match rt.name.filter(|_| rt.topic_id.is_nil()) {
                Some(name) => {
                    let name = name.0.to_string();
                    if let Some(t) = broker.metadata.topic(&name) {
                        return topic_response(broker, &t, ops, version);
                    }
                    if let Err(e) = validate_topic_name(&name) {
                        return error_topic(Some(name), uuid::Uuid::nil(), error_code::metadata(&e));
                    }
                    if !allow_create {
                        return error_topic(Some(name), uuid::Uuid::nil(), E::UnknownTopicOrPartition.code());
                    }
                    match broker.create_topic(&name, broker.config.num_partitions, BTreeMap::new()) {
                        Ok(t) => topic_response(broker, &t, ops, version),
                        // Another request created it meanwhile.
                        Err(crate::broker::metadata::MetadataError::TopicExists(_)) => match broker.metadata.topic(&name) {
                            Some(t) => topic_response(broker, &t, ops, version),
                            None => error_topic(Some(name), uuid::Uuid::nil(), E::UnknownTopicOrPartition.code()),
                        },
                        Err(e) => {
                            tracing::warn!(topic = %name, error = %e, "auto-creation failed");
                            error_topic(Some(name), uuid::Uuid::nil(), error_code::metadata(&e))
                        }
                    }
                }
                None => match broker.metadata.topic_by_id(rt.topic_id) {
                    Some(t) => topic_response(broker, &t, ops, version),
                    None => error_topic(None, rt.topic_id, E::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    let brokers = broker
        .live_brokers_on(listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port as i32)
                .with_rack(if version >= 1 { b.rack.map(str_bytes) } else { None })
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(if version >= 2 { Some(str_bytes(broker.cluster_id.clone())) } else { None })
        .with_controller_id(BrokerId(if version >= 1 { broker.config.node_id } else { -1 }))
        .with_topics(topics)
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations && (8..=10).contains(&version) {
            ResourceType::Cluster.all_operations()
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}
