//! What each API must be allowed before it runs, as Kafka's KafkaApis asks its authorizer: the
//! dispatch calls these with the typed request before the handler, so a refused part of a request
//! has no effect. Refused topics, partitions and groups are taken out of the request and answered
//! here with Kafka's errors (TOPIC_AUTHORIZATION_FAILED per partition, GROUP_AUTHORIZATION_FAILED,
//! CLUSTER_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED); what the principal may not
//! describe is left out of listings (Metadata of all topics, ListGroups, OffsetFetch of all
//! offsets). Without an authorizer ([`guard`] gives `None`) nothing here runs.

use std::net::IpAddr;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;

use super::Session;
use crate::broker::Broker;
use crate::broker::acl::{Authorizer, CLUSTER_NAME, Operation, ResourceType};

/// One connection's principal and host before an authorizer.
pub(crate) struct Guard<'a> {
    authorizer: &'a Authorizer,
    /// The session's principal (shared, so the session stays free for the handler).
    principal: std::sync::Arc<str>,
    host: IpAddr,
}

/// The guard of a request, or `None` when the broker has no authorizer.
pub(crate) fn guard<'a>(broker: &'a Broker, session: &Session) -> Option<Guard<'a>> {
    Some(Guard { authorizer: broker.authorizer.as_ref()?, principal: session.principal.clone(), host: session.peer.ip() })
}

impl Guard<'_> {
    pub fn topic(&self, op: Operation, name: &str) -> bool {
        self.authorizer.authorize(&self.principal, self.host, op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: Operation, name: &str) -> bool {
        self.authorizer.authorize(&self.principal, self.host, op, ResourceType::Group, name)
    }

    pub fn cluster(&self, op: Operation) -> bool {
        self.authorizer.authorize(&self.principal, self.host, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn transactional_id(&self, op: Operation, id: &str) -> bool {
        self.authorizer.authorize(&self.principal, self.host, op, ResourceType::TransactionalId, id)
    }

    /// The authorized-operations bit field of a resource: its supported operations this
    /// principal is allowed (Kafka's `authorizedOperations`).
    pub fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        crate::broker::acl::operations_field(resource_type.operations().iter().copied().filter(|&op| self.authorizer.authorize(&self.principal, self.host, op, resource_type, name)))
    }

    /// The cluster's authorized operations as Metadata and DescribeCluster report them: 0
    /// without DESCRIBE on the cluster, as Kafka answers.
    fn cluster_operations(&self) -> i32 {
        if self.cluster(Operation::Describe) { self.operations(ResourceType::Cluster, CLUSTER_NAME) } else { 0 }
    }

    /// CreateTopics and auto-creation: CREATE on the cluster or on the topic.
    fn create_topic(&self, name: &str) -> bool {
        self.cluster(Operation::Create) || self.topic(Operation::Create, name)
    }
}

const TOPIC_DENIED: i16 = E::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = E::GroupAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = E::ClusterAuthorizationFailed.code();
const TXN_DENIED: i16 = E::TransactionalIdAuthorizationFailed.code();
/// Kafka's message for a topic CreateTopics may not create (checked against Kafka 4.0).
const TOPIC_CREATE_DENIED_MESSAGE: &str = "Authorization failed.";

/// A topic's name, from the request's name or (newer versions) its topic id.
fn name_of(broker: &Broker, name: &TopicName, id: uuid::Uuid) -> Option<String> {
    if !name.0.is_empty() {
        return Some(name.0.to_string());
    }
    broker.metadata.topic_by_id(id).map(|m| m.name.clone())
}

/// Produce: WRITE on each topic; a transactional produce also WRITE on its transactional id
/// (refused: every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED). Returns the refused topics'
/// answers.
pub(crate) fn produce(g: &Guard, broker: &Broker, req: &mut ProduceRequest) -> Vec<produce_response::TopicProduceResponse> {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    let code = match &req.transactional_id {
        Some(id) if !g.transactional_id(Operation::Write, id) => Some(TXN_DENIED),
        _ => None,
    };
    let mut refused = Vec::new();
    req.topic_data.retain(|t| {
        let code = code.or_else(|| match name_of(broker, &t.name, t.topic_id) {
            Some(name) if !g.topic(Operation::Write, &name) => Some(TOPIC_DENIED),
            _ => None,
        });
        let Some(code) = code else { return true };
        let partitions = t
            .partition_data
            .iter()
            .map(|p| PartitionProduceResponse::default().with_index(p.index).with_error_code(code).with_base_offset(-1).with_log_append_time_ms(-1).with_log_start_offset(-1))
            .collect();
        // A copy of the name: a slice of the request would keep its whole frame (its records)
        // alive until the answer goes out.
        refused.push(TopicProduceResponse::default().with_name(super::topic_name(t.name.0.as_str())).with_topic_id(t.topic_id).with_partition_responses(partitions));
        false
    });
    refused
}

/// Fetch: a follower (replica id set) needs CLUSTER_ACTION on the cluster, a consumer READ on
/// each topic; refused partitions get TOPIC_AUTHORIZATION_FAILED, as Kafka answers both.
pub(crate) fn fetch(g: &Guard, broker: &Broker, req: &mut FetchRequest) -> Vec<fetch_response::FetchableTopicResponse> {
    use fetch_response::{FetchableTopicResponse, PartitionData};
    let follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
    let cluster_ok = !follower || g.cluster(Operation::ClusterAction);
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = cluster_ok && (follower || name_of(broker, &t.topic, t.topic_id).is_none_or(|name| g.topic(Operation::Read, &name)));
        if !ok {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(TOPIC_DENIED)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(Some(bytes::Bytes::new()))
                })
                .collect();
            refused.push(FetchableTopicResponse::default().with_topic(t.topic.clone()).with_topic_id(t.topic_id).with_partitions(partitions));
        }
        ok
    });
    refused
}

/// ListOffsets: DESCRIBE on each topic (a follower's request: CLUSTER_ACTION).
pub(crate) fn list_offsets(g: &Guard, req: &mut ListOffsetsRequest) -> Vec<list_offsets_response::ListOffsetsTopicResponse> {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let follower = req.replica_id.0 >= 0;
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = if follower { g.cluster(Operation::ClusterAction) } else { g.topic(Operation::Describe, &t.name.0) };
        if !ok {
            let partitions = t
                .partitions
                .iter()
                .map(|p| ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_error_code(TOPIC_DENIED).with_timestamp(-1).with_offset(-1).with_leader_epoch(-1))
                .collect();
            refused.push(ListOffsetsTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions));
        }
        ok
    });
    refused
}

/// Metadata, before: a named topic the principal may not DESCRIBE, or may not create when the
/// request would auto-create it, is answered TOPIC_AUTHORIZATION_FAILED and not looked up.
pub(crate) fn metadata_request(g: &Guard, broker: &Broker, req: &mut MetadataRequest) -> Vec<metadata_response::MetadataResponseTopic> {
    let auto_create = req.allow_auto_topic_creation && broker.config.auto_create_topics;
    let mut refused = Vec::new();
    if let Some(topics) = req.topics.as_mut() {
        topics.retain(|t| {
            let Some(name) = t.name.as_ref() else { return true };
            let exists = broker.metadata.topic(&name.0).is_some();
            let ok = g.topic(Operation::Describe, &name.0) && (exists || !auto_create || g.create_topic(&name.0));
            if !ok {
                refused.push(metadata_response::MetadataResponseTopic::default().with_name(Some(name.clone())).with_error_code(TOPIC_DENIED));
            }
            ok
        });
    }
    refused
}

/// Metadata, after: topics the principal may not DESCRIBE are left out of a listing of every
/// topic, and answered TOPIC_AUTHORIZATION_FAILED (without their name) when asked for by id.
pub(crate) fn metadata_response(g: &Guard, all_topics: bool, resp: &mut MetadataResponse) {
    let hidden = |t: &metadata_response::MetadataResponseTopic| t.error_code == 0 && t.name.as_ref().is_some_and(|n| !g.topic(Operation::Describe, &n.0));
    if all_topics {
        resp.topics.retain(|t| !hidden(t));
    }
    for t in resp.topics.iter_mut() {
        if hidden(t) {
            *t = metadata_response::MetadataResponseTopic::default().with_topic_id(t.topic_id).with_error_code(TOPIC_DENIED);
        } else if t.topic_authorized_operations != super::AUTHORIZED_OPERATIONS_OMITTED {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = g.operations(ResourceType::Topic, &name.0);
            }
        }
    }
    if resp.cluster_authorized_operations != super::AUTHORIZED_OPERATIONS_OMITTED {
        resp.cluster_authorized_operations = g.cluster_operations();
    }
}

/// DescribeTopicPartitions: each described topic's operations this principal is allowed.
pub(crate) fn describe_topic_partitions(g: &Guard, resp: &mut DescribeTopicPartitionsResponse) {
    for t in resp.topics.iter_mut() {
        if t.error_code == 0 {
            if let Some(name) = &t.name {
                t.topic_authorized_operations = g.operations(ResourceType::Topic, &name.0);
            }
        }
    }
}

/// DescribeCluster: the cluster's operations this principal is allowed, when asked for.
pub(crate) fn describe_cluster(g: &Guard, resp: &mut DescribeClusterResponse) {
    if resp.cluster_authorized_operations != super::AUTHORIZED_OPERATIONS_OMITTED {
        resp.cluster_authorized_operations = g.cluster_operations();
    }
}

/// FindCoordinator: DESCRIBE on the group, or on the transactional id. Returns the refused
/// keys' answers (v4+), or `Some` answer of a refused single-key request.
pub(crate) fn find_coordinator(g: &Guard, req: &mut FindCoordinatorRequest, version: i16) -> Result<Vec<find_coordinator_response::Coordinator>, FindCoordinatorResponse> {
    // Kafka's message is its error's own ("Group authorization failed.", checked against Kafka 4.0).
    let (ok, code, message): (Box<dyn Fn(&str) -> bool + '_>, i16, String) = match req.key_type {
        1 => (Box::new(|k| g.transactional_id(Operation::Describe, k)), TXN_DENIED, "Transactional Id authorization failed.".to_string()),
        _ => (Box::new(|k| g.group(Operation::Describe, k)), GROUP_DENIED, "Group authorization failed.".to_string()),
    };
    if version < 4 {
        if ok(&req.key) {
            return Ok(Vec::new());
        }
        return Err(FindCoordinatorResponse::default().with_error_code(code).with_error_message(Some(super::str_bytes(message))).with_node_id(BrokerId(-1)).with_host(super::str_bytes("")).with_port(-1));
    }
    let mut refused = Vec::new();
    req.coordinator_keys.retain(|k| {
        let allowed = ok(k);
        if !allowed {
            refused.push(find_coordinator_response::Coordinator::default().with_key(k.clone()).with_error_code(code).with_error_message(Some(super::str_bytes(message.clone()))).with_node_id(BrokerId(-1)).with_host(super::str_bytes("")).with_port(-1));
        }
        allowed
    });
    Ok(refused)
}

/// OffsetCommit: READ on the group (refused: every partition GROUP_AUTHORIZATION_FAILED), then
/// READ on each topic.
pub(crate) fn offset_commit(g: &Guard, broker: &Broker, req: &mut OffsetCommitRequest) -> Vec<offset_commit_response::OffsetCommitResponseTopic> {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let code = if g.group(Operation::Read, &req.group_id.0) { None } else { Some(GROUP_DENIED) };
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let code = code.or_else(|| name_of(broker, &t.name, t.topic_id).filter(|n| !g.topic(Operation::Read, n)).map(|_| TOPIC_DENIED));
        let Some(code) = code else { return true };
        let partitions = t.partitions.iter().map(|p| OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)).collect();
        refused.push(OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_topic_id(t.topic_id).with_partitions(partitions));
        false
    });
    refused
}

/// OffsetFetch, before: DESCRIBE on each group; a refused group is taken out of the request.
/// Returns the refused groups (v8+) or whether the one group (v0-7) is refused.
pub(crate) fn offset_fetch_request(g: &Guard, req: &mut OffsetFetchRequest, version: i16) -> (bool, Vec<offset_fetch_response::OffsetFetchResponseGroup>) {
    if version < 8 {
        return (!g.group(Operation::Describe, &req.group_id.0), Vec::new());
    }
    let mut refused = Vec::new();
    req.groups.retain(|grp| {
        let ok = g.group(Operation::Describe, &grp.group_id.0);
        if !ok {
            refused.push(offset_fetch_response::OffsetFetchResponseGroup::default().with_group_id(grp.group_id.clone()).with_error_code(GROUP_DENIED));
        }
        ok
    });
    (false, refused)
}

/// OffsetFetch, after: offsets of topics the principal may not DESCRIBE are left out of an
/// all-offsets answer and answered TOPIC_AUTHORIZATION_FAILED when asked for by name.
pub(crate) fn offset_fetch_response(g: &Guard, req_all: impl Fn(&str) -> bool, resp: &mut OffsetFetchResponse) {
    let all = req_all("");
    resp.topics.retain_mut(|t| {
        if g.topic(Operation::Describe, &t.name.0) {
            return true;
        }
        for p in t.partitions.iter_mut() {
            *p = offset_fetch_response::OffsetFetchResponsePartition::default().with_partition_index(p.partition_index).with_committed_offset(-1).with_committed_leader_epoch(-1).with_error_code(TOPIC_DENIED);
        }
        !all
    });
    for grp in resp.groups.iter_mut() {
        let all = req_all(&grp.group_id.0);
        grp.topics.retain_mut(|t| {
            if g.topic(Operation::Describe, &t.name.0) {
                return true;
            }
            for p in t.partitions.iter_mut() {
                *p = offset_fetch_response::OffsetFetchResponsePartitions::default().with_partition_index(p.partition_index).with_committed_offset(-1).with_committed_leader_epoch(-1).with_error_code(TOPIC_DENIED);
            }
            !all
        });
    }
}

/// DescribeGroups: a group the principal may not DESCRIBE is answered GROUP_AUTHORIZATION_FAILED
/// with nothing of its state (the lookup has no effect, so it is filtered after).
pub(crate) fn describe_groups(g: &Guard, resp: &mut DescribeGroupsResponse) {
    for grp in resp.groups.iter_mut() {
        if !g.group(Operation::Describe, &grp.group_id.0) {
            *grp = describe_groups_response::DescribedGroup::default().with_group_id(grp.group_id.clone()).with_error_code(GROUP_DENIED);
        } else if grp.error_code == 0 && grp.authorized_operations != super::AUTHORIZED_OPERATIONS_OMITTED {
            grp.authorized_operations = g.operations(ResourceType::Group, &grp.group_id.0);
        }
    }
}

/// ConsumerGroupDescribe: as DescribeGroups, DESCRIBE on each group (Kafka does not look a
/// refused group up; the lookup here has no effect, so it is filtered after).
pub(crate) fn consumer_group_describe(g: &Guard, resp: &mut ConsumerGroupDescribeResponse) {
    for grp in resp.groups.iter_mut() {
        if !g.group(Operation::Describe, &grp.group_id.0) {
            *grp = consumer_group_describe_response::DescribedGroup::default().with_group_id(grp.group_id.clone()).with_error_code(GROUP_DENIED);
        } else if grp.error_code == 0 && grp.authorized_operations != super::AUTHORIZED_OPERATIONS_OMITTED {
            grp.authorized_operations = g.operations(ResourceType::Group, &grp.group_id.0);
        }
    }
}

/// DescribeProducers: READ on each topic; a refused topic's partitions answer
/// TOPIC_AUTHORIZATION_FAILED (Kafka's check, before it looks at the topic).
pub(crate) fn describe_producers(g: &Guard, req: &mut DescribeProducersRequest) -> Vec<describe_producers_response::TopicResponse> {
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = g.topic(Operation::Read, &t.name.0);
        if !ok {
            let partitions = t.partition_indexes.iter().map(|&p| describe_producers_response::PartitionResponse::default().with_partition_index(p).with_error_code(TOPIC_DENIED)).collect();
            refused.push(describe_producers_response::TopicResponse::default().with_name(t.name.clone()).with_partitions(partitions));
        }
        ok
    });
    refused
}

/// DescribeTransactions: DESCRIBE on each transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED
/// and nothing of its state otherwise), and of a transaction's partitions only those of topics
/// the principal may DESCRIBE.
pub(crate) fn describe_transactions(g: &Guard, resp: &mut DescribeTransactionsResponse) {
    for state in resp.transaction_states.iter_mut() {
        if !g.transactional_id(Operation::Describe, &state.transactional_id.0) {
            *state = describe_transactions_response::TransactionState::default().with_transactional_id(state.transactional_id.clone()).with_error_code(TXN_DENIED);
        }
        state.topics.retain(|t| g.topic(Operation::Describe, &t.topic.0));
    }
}

/// ListTransactions: only the transactional ids the principal may DESCRIBE.
pub(crate) fn list_transactions(g: &Guard, resp: &mut ListTransactionsResponse) {
    resp.transaction_states.retain(|t| g.transactional_id(Operation::Describe, &t.transactional_id.0));
}

/// ListGroups: every group with DESCRIBE on the cluster, else those the principal may DESCRIBE.
pub(crate) fn list_groups(g: &Guard, resp: &mut ListGroupsResponse) {
    if !g.cluster(Operation::Describe) {
        resp.groups.retain(|grp| g.group(Operation::Describe, &grp.group_id.0));
    }
}

/// DeleteGroups: DELETE on each group.
pub(crate) fn delete_groups(g: &Guard, req: &mut DeleteGroupsRequest) -> Vec<delete_groups_response::DeletableGroupResult> {
    let mut refused = Vec::new();
    req.groups_names.retain(|grp| {
        let ok = g.group(Operation::Delete, &grp.0);
        if !ok {
            refused.push(delete_groups_response::DeletableGroupResult::default().with_group_id(grp.clone()).with_error_code(GROUP_DENIED));
        }
        ok
    });
    refused
}

/// CreateTopics: CREATE on the cluster or on each topic.
pub(crate) fn create_topics(g: &Guard, req: &mut CreateTopicsRequest) -> Vec<create_topics_response::CreatableTopicResult> {
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = g.create_topic(&t.name.0);
        if !ok {
            refused.push(
                create_topics_response::CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(super::str_bytes(TOPIC_CREATE_DENIED_MESSAGE)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
        }
        ok
    });
    refused
}

/// DeleteTopics: DELETE on each topic (by name before v6, by name or id from v6).
pub(crate) fn delete_topics(g: &Guard, broker: &Broker, req: &mut DeleteTopicsRequest) -> Vec<delete_topics_response::DeletableTopicResult> {
    let mut refused = Vec::new();
    let mut deny = |name: Option<TopicName>, id: uuid::Uuid| {
        refused.push(delete_topics_response::DeletableTopicResult::default().with_name(name).with_topic_id(id).with_error_code(TOPIC_DENIED));
    };
    req.topic_names.retain(|n| {
        let ok = g.topic(Operation::Delete, &n.0);
        if !ok {
            deny(Some(n.clone()), uuid::Uuid::nil());
        }
        ok
    });
    req.topics.retain(|t| {
        let name = t.name.clone().map(|n| n.0.to_string()).or_else(|| broker.metadata.topic_by_id(t.topic_id).map(|m| m.name.clone()));
        let ok = name.is_none_or(|n| g.topic(Operation::Delete, &n));
        if !ok {
            deny(t.name.clone(), t.topic_id);
        }
        ok
    });
    refused
}

/// InitProducerId: a transactional producer needs WRITE on its transactional id; an idempotent
/// one IDEMPOTENT_WRITE on the cluster or WRITE on some topic. The refusal's code, if refused.
pub(crate) fn init_producer_id(g: &Guard, req: &InitProducerIdRequest) -> Option<i16> {
    match &req.transactional_id {
        Some(id) if !id.0.is_empty() => (!g.transactional_id(Operation::Write, id)).then_some(TXN_DENIED),
        _ => {
            let ok = g.cluster(Operation::IdempotentWrite) || g.authorizer.authorize_any(&g.principal, g.host, Operation::Write, ResourceType::Topic);
            (!ok).then_some(CLUSTER_DENIED)
        }
    }
}

/// EndTxn, AddOffsetsToTxn, AddPartitionsToTxn (v0-3): WRITE on the transactional id.
pub(crate) fn transaction(g: &Guard, id: &str) -> Option<i16> {
    (!g.transactional_id(Operation::Write, id)).then_some(TXN_DENIED)
}

/// ConsumerGroupHeartbeat: READ on the group; then, when the request names its subscribed
/// topics, DESCRIBE on every one of them, or the whole heartbeat is TOPIC_AUTHORIZATION_FAILED
/// (no member id, no message), as Kafka 4.0's KafkaApis answers: a member may not learn of topics
/// it cannot describe through its assignment (librdkafka 0109 [kip848] expects it).
pub(crate) fn consumer_group_heartbeat(g: &Guard, req: &ConsumerGroupHeartbeatRequest) -> Option<i16> {
    if !g.group(Operation::Read, &req.group_id) {
        return Some(GROUP_DENIED);
    }
    let names = req.subscribed_topic_names.as_deref().unwrap_or_default();
    names.iter().any(|t| !g.topic(Operation::Describe, t)).then_some(TOPIC_DENIED)
}

/// An API only brokers and controllers send (WriteTxnMarkers, ...): CLUSTER_ACTION on the cluster.
pub(crate) fn cluster_action(g: &Guard) -> Option<i16> {
    (!g.cluster(Operation::ClusterAction)).then_some(CLUSTER_DENIED)
}

/// A cluster-wide operation (the ACL APIs: ALTER / DESCRIBE; the SCRAM APIs: ALTER / DESCRIBE).
pub(crate) fn cluster(g: &Guard, op: Operation) -> Option<i16> {
    (!g.cluster(op)).then_some(CLUSTER_DENIED)
}

/// The answer to a request refused as a whole (one resource decides it: a group, a transactional
/// id, the cluster), before its handler runs; `None` when it may go on (or is checked per part
/// in the dispatch). Decodes a copy of the body: only requests without bulk data come here.
pub(crate) fn refuse_whole(g: &Guard, key: ApiKey, version: i16, body: &bytes::Bytes) -> Result<Option<Box<dyn Encodable>>, anyhow::Error> {
    use kafka_protocol::protocol::Decodable;
    let mut b = body.clone();
    macro_rules! decode {
        ($req:ty) => {
            <$req>::decode(&mut b, version)?
        };
    }
    // Kafka's message names its internal request object; Fjord says what failed, in Kafka's
    // words for the error.
    let cluster_message = || Some(super::str_bytes("Cluster authorization failed."));
    let refused: Option<Box<dyn Encodable>> = match key {
        ApiKey::JoinGroup => {
            let r = decode!(JoinGroupRequest);
            (!g.group(Operation::Read, &r.group_id)).then(|| Box::new(JoinGroupResponse::default().with_error_code(GROUP_DENIED).with_generation_id(-1).with_protocol_name(Some(super::str_bytes("")))) as Box<dyn Encodable>)
        }
        ApiKey::SyncGroup => {
            let r = decode!(SyncGroupRequest);
            (!g.group(Operation::Read, &r.group_id)).then(|| Box::new(SyncGroupResponse::default().with_error_code(GROUP_DENIED)) as Box<dyn Encodable>)
        }
        ApiKey::Heartbeat => {
            let r = decode!(HeartbeatRequest);
            (!g.group(Operation::Read, &r.group_id)).then(|| Box::new(HeartbeatResponse::default().with_error_code(GROUP_DENIED)) as Box<dyn Encodable>)
        }
        ApiKey::LeaveGroup => {
            let r = decode!(LeaveGroupRequest);
            (!g.group(Operation::Read, &r.group_id)).then(|| Box::new(LeaveGroupResponse::default().with_error_code(GROUP_DENIED)) as Box<dyn Encodable>)
        }
        ApiKey::InitProducerId => {
            let r = decode!(InitProducerIdRequest);
            init_producer_id(g, &r).map(|code| Box::new(InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)) as Box<dyn Encodable>)
        }
        ApiKey::EndTxn => {
            let r = decode!(EndTxnRequest);
            transaction(g, &r.transactional_id).map(|code| Box::new(EndTxnResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)) as Box<dyn Encodable>)
        }
        ApiKey::AddOffsetsToTxn => {
            let r = decode!(AddOffsetsToTxnRequest);
            transaction(g, &r.transactional_id)
                .or_else(|| (!g.group(Operation::Read, &r.group_id)).then_some(GROUP_DENIED))
                .map(|code| Box::new(AddOffsetsToTxnResponse::default().with_error_code(code)) as Box<dyn Encodable>)
        }
        ApiKey::WriteTxnMarkers => {
            let r = decode!(WriteTxnMarkersRequest);
            cluster_action(g).map(|code| {
                let markers = r
                    .markers
                    .iter()
                    .map(|m| {
                        let topics = m
                            .topics
                            .iter()
                            .map(|t| {
                                let partitions = t.partition_indexes.iter().map(|&p| write_txn_markers_response::WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(code)).collect();
                                write_txn_markers_response::WritableTxnMarkerTopicResult::default().with_name(t.name.clone()).with_partitions(partitions)
                            })
                            .collect();
                        write_txn_markers_response::WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
                    })
                    .collect();
                Box::new(WriteTxnMarkersResponse::default().with_markers(markers)) as Box<dyn Encodable>
            })
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let r = decode!(ConsumerGroupHeartbeatRequest);
            consumer_group_heartbeat(g, &r).map(|code| Box::new(ConsumerGroupHeartbeatResponse::default().with_error_code(code).with_error_message(None).with_member_id(None)) as Box<dyn Encodable>)
        }
        ApiKey::ElectLeaders => cluster(g, Operation::Alter).map(|code| Box::new(ElectLeadersResponse::default().with_error_code(code)) as Box<dyn Encodable>),
        ApiKey::AlterPartitionReassignments => {
            cluster(g, Operation::Alter).map(|code| Box::new(AlterPartitionReassignmentsResponse::default().with_error_code(code).with_error_message(cluster_message())) as Box<dyn Encodable>)
        }
        ApiKey::ListPartitionReassignments => {
            cluster(g, Operation::Describe).map(|code| Box::new(ListPartitionReassignmentsResponse::default().with_error_code(code).with_error_message(cluster_message())) as Box<dyn Encodable>)
        }
        ApiKey::UpdateFeatures => cluster(g, Operation::Alter).map(|code| Box::new(UpdateFeaturesResponse::default().with_error_code(code).with_error_message(cluster_message())) as Box<dyn Encodable>),
        // KIP-714's ListClientMetricsResources (API 74): DESCRIBE_CONFIGS on the cluster.
        ApiKey::ListConfigResources => cluster(g, Operation::DescribeConfigs).map(|code| Box::new(ListConfigResourcesResponse::default().with_error_code(code)) as Box<dyn Encodable>),
        ApiKey::AlterReplicaLogDirs => {
            let r = decode!(AlterReplicaLogDirsRequest);
            cluster(g, Operation::Alter).map(|code| {
                // Every partition asked for, under its topic, as Kafka answers.
                let mut topics: Vec<alter_replica_log_dirs_response::AlterReplicaLogDirTopicResult> = Vec::new();
                for t in r.dirs.iter().flat_map(|d| d.topics.iter()) {
                    let partitions = t.partitions.iter().map(|&p| alter_replica_log_dirs_response::AlterReplicaLogDirPartitionResult::default().with_partition_index(p).with_error_code(code));
                    match topics.iter_mut().find(|x| x.topic_name == t.name) {
                        Some(x) => x.partitions.extend(partitions),
                        None => topics.push(alter_replica_log_dirs_response::AlterReplicaLogDirTopicResult::default().with_topic_name(t.name.clone()).with_partitions(partitions.collect())),
                    }
                }
                Box::new(AlterReplicaLogDirsResponse::default().with_results(topics)) as Box<dyn Encodable>
            })
        }
        ApiKey::DescribeLogDirs => cluster(g, Operation::Describe).map(|code| Box::new(DescribeLogDirsResponse::default().with_error_code(code)) as Box<dyn Encodable>),
        ApiKey::OffsetDelete => {
            let r = decode!(OffsetDeleteRequest);
            (!g.group(Operation::Delete, &r.group_id)).then(|| Box::new(OffsetDeleteResponse::default().with_error_code(GROUP_DENIED)) as Box<dyn Encodable>)
        }
        ApiKey::AddPartitionsToTxn if version < 4 => {
            // A producer's own request: WRITE on its transactional id, then WRITE on each topic;
            // every partition gets the refusal.
            let r = decode!(AddPartitionsToTxnRequest);
            let txn = transaction(g, &r.v3_and_below_transactional_id);
            let topic_refused = r.v3_and_below_topics.iter().any(|t| !g.topic(Operation::Write, &t.name.0));
            txn.or(topic_refused.then_some(TOPIC_DENIED)).map(|code| {
                let topics = r
                    .v3_and_below_topics
                    .iter()
                    .map(|t| {
                        let code = if txn.is_none() && g.topic(Operation::Write, &t.name.0) { E::OperationNotAttempted.code() } else { code };
                        let partitions = t.partitions.iter().map(|&p| add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default().with_partition_index(p).with_partition_error_code(code)).collect();
                        add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(partitions)
                    })
                    .collect();
                Box::new(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)) as Box<dyn Encodable>
            })
        }
        // v4+ batches transactions for brokers verifying a producer's partitions (KIP-890).
        ApiKey::AddPartitionsToTxn => cluster_action(g).map(|code| Box::new(AddPartitionsToTxnResponse::default().with_error_code(code)) as Box<dyn Encodable>),
        // Client quotas are cluster configs: DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster.
        ApiKey::DescribeClientQuotas => {
            cluster(g, Operation::DescribeConfigs).map(|code| Box::new(DescribeClientQuotasResponse::default().with_error_code(code).with_error_message(cluster_message()).with_entries(None)) as Box<dyn Encodable>)
        }
        ApiKey::AlterClientQuotas => {
            let r = decode!(AlterClientQuotasRequest);
            cluster(g, Operation::AlterConfigs).map(|code| {
                let entries = r
                    .entries
                    .iter()
                    .map(|e| {
                        let entity = e.entity.iter().map(|x| alter_client_quotas_response::EntityData::default().with_entity_type(x.entity_type.clone()).with_entity_name(x.entity_name.clone())).collect();
                        alter_client_quotas_response::EntryData::default().with_error_code(code).with_error_message(cluster_message()).with_entity(entity)
                    })
                    .collect();
                Box::new(AlterClientQuotasResponse::default().with_entries(entries)) as Box<dyn Encodable>
            })
        }
        ApiKey::CreateAcls => {
            let r = decode!(CreateAclsRequest);
            cluster(g, Operation::Alter).map(|code| {
                let results = r.creations.iter().map(|_| create_acls_response::AclCreationResult::default().with_error_code(code).with_error_message(cluster_message())).collect();
                Box::new(CreateAclsResponse::default().with_results(results)) as Box<dyn Encodable>
            })
        }
        ApiKey::DeleteAcls => {
            let r = decode!(DeleteAclsRequest);
            cluster(g, Operation::Alter).map(|code| {
                let results = r.filters.iter().map(|_| delete_acls_response::DeleteAclsFilterResult::default().with_error_code(code).with_error_message(cluster_message())).collect();
                Box::new(DeleteAclsResponse::default().with_filter_results(results)) as Box<dyn Encodable>
            })
        }
        ApiKey::DescribeAcls => cluster(g, Operation::Describe).map(|code| Box::new(DescribeAclsResponse::default().with_error_code(code).with_error_message(cluster_message())) as Box<dyn Encodable>),
        ApiKey::DescribeUserScramCredentials => {
            cluster(g, Operation::Describe).map(|code| Box::new(DescribeUserScramCredentialsResponse::default().with_error_code(code).with_error_message(cluster_message())) as Box<dyn Encodable>)
        }
        ApiKey::AlterUserScramCredentials => {
            let r = decode!(AlterUserScramCredentialsRequest);
            cluster(g, Operation::Alter).map(|code| {
                let users: std::collections::BTreeSet<_> = r.deletions.iter().map(|d| d.name.clone()).chain(r.upsertions.iter().map(|u| u.name.clone())).collect();
                let results = users.into_iter().map(|u| alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default().with_user(u).with_error_code(code).with_error_message(cluster_message())).collect();
                Box::new(AlterUserScramCredentialsResponse::default().with_results(results)) as Box<dyn Encodable>
            })
        }
        _ => None,
    };
    Ok(refused)
}

/// What `refuse_whole` answers with: any response message, encoded at the request's version.
pub(crate) trait Encodable: Send {
    fn encode_frame(&self, key: ApiKey, version: i16, corr: i32) -> Result<super::ResponseFrame, super::FrameError>;
    /// Its error codes, for the errors metric.
    fn count_errors(&self, version: i16, count: &mut dyn FnMut(i16));
}

impl<M: kafka_protocol::protocol::Encodable + super::error_counts::ErrorCounts + Send> Encodable for M {
    fn encode_frame(&self, key: ApiKey, version: i16, corr: i32) -> Result<super::ResponseFrame, super::FrameError> {
        super::encode(key, version, corr, self)
    }

    fn count_errors(&self, version: i16, count: &mut dyn FnMut(i16)) {
        self.error_codes(version, count)
    }
}

/// CreatePartitions: ALTER on each topic.
pub(crate) fn create_partitions(g: &Guard, req: &mut CreatePartitionsRequest) -> Vec<create_partitions_response::CreatePartitionsTopicResult> {
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = g.topic(Operation::Alter, &t.name.0);
        if !ok {
            refused.push(create_partitions_response::CreatePartitionsTopicResult::default().with_name(t.name.clone()).with_error_code(TOPIC_DENIED).with_error_message(None));
        }
        ok
    });
    refused
}

/// DeleteRecords: DELETE on each topic.
pub(crate) fn delete_records(g: &Guard, req: &mut DeleteRecordsRequest) -> Vec<delete_records_response::DeleteRecordsTopicResult> {
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = g.topic(Operation::Delete, &t.name.0);
        if !ok {
            let partitions = t.partitions.iter().map(|p| DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1).with_error_code(TOPIC_DENIED)).collect();
            refused.push(DeleteRecordsTopicResult::default().with_name(t.name.clone()).with_partitions(partitions));
        }
        ok
    });
    refused
}

/// A config resource's check (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs): a topic's
/// own permission, a group's, else (broker, broker logger, client metrics) the cluster's; the
/// refusal's code if refused.
fn config_resource(g: &Guard, op: Operation, resource_type: i8, name: &str) -> Option<i16> {
    match resource_type {
        2 => (!g.topic(op, name)).then_some(TOPIC_DENIED),
        32 => (!g.group(op, name)).then_some(GROUP_DENIED),
        _ => (!g.cluster(op)).then_some(CLUSTER_DENIED),
    }
}

/// Takes out of `resources` those `op` is refused on (a topic, a group, else the cluster), each
/// answered with `refused(resource, code)`: the config APIs' shared check.
fn refuse_config_resources<T, R>(g: &Guard, op: Operation, resources: &mut Vec<T>, key: fn(&T) -> (i8, &str), refused: fn(&T, i16) -> R) -> Vec<R> {
    let mut out = Vec::new();
    resources.retain(|r| {
        let (resource_type, name) = key(r);
        match config_resource(g, op, resource_type, name) {
            None => true,
            Some(code) => {
                out.push(refused(r, code));
                false
            }
        }
    });
    out
}

/// DescribeConfigs: DESCRIBE_CONFIGS on each resource.
pub(crate) fn describe_configs(g: &Guard, req: &mut DescribeConfigsRequest) -> Vec<describe_configs_response::DescribeConfigsResult> {
    refuse_config_resources(g, Operation::DescribeConfigs, &mut req.resources, |r| (r.resource_type, r.resource_name.as_str()), |r, code| {
        describe_configs_response::DescribeConfigsResult::default()
            .with_error_code(code)
            .with_error_message(None)
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone())
    })
}

/// IncrementalAlterConfigs: ALTER_CONFIGS on each resource.
pub(crate) fn incremental_alter_configs(g: &Guard, req: &mut IncrementalAlterConfigsRequest) -> Vec<incremental_alter_configs_response::AlterConfigsResourceResponse> {
    refuse_config_resources(g, Operation::AlterConfigs, &mut req.resources, |r| (r.resource_type, r.resource_name.as_str()), |r, code| {
        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_error_code(code)
            .with_error_message(None)
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone())
    })
}

/// AlterConfigs: ALTER_CONFIGS on each resource.
pub(crate) fn alter_configs(g: &Guard, req: &mut AlterConfigsRequest) -> Vec<alter_configs_response::AlterConfigsResourceResponse> {
    refuse_config_resources(g, Operation::AlterConfigs, &mut req.resources, |r| (r.resource_type, r.resource_name.as_str()), |r, code| {
        alter_configs_response::AlterConfigsResourceResponse::default()
            .with_error_code(code)
            .with_error_message(None)
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone())
    })
}

/// TxnOffsetCommit: WRITE on the transactional id, READ on the group, READ on each topic; a
/// partition gets the first refusal that applies.
pub(crate) fn txn_offset_commit(g: &Guard, req: &mut TxnOffsetCommitRequest) -> Vec<txn_offset_commit_response::TxnOffsetCommitResponseTopic> {
    use txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
    let code = transaction(g, &req.transactional_id).or_else(|| (!g.group(Operation::Read, &req.group_id)).then_some(GROUP_DENIED));
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let Some(code) = code.or_else(|| (!g.topic(Operation::Read, &t.name.0)).then_some(TOPIC_DENIED)) else { return true };
        let partitions = t.partitions.iter().map(|p| TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)).collect();
        refused.push(TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions));
        false
    });
    refused
}

/// OffsetForLeaderEpoch: a follower's needs CLUSTER_ACTION, a client's DESCRIBE on each topic.
pub(crate) fn offset_for_leader_epoch(g: &Guard, req: &mut OffsetForLeaderEpochRequest) -> Vec<offset_for_leader_epoch_response::OffsetForLeaderTopicResult> {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let follower = req.replica_id.0 >= 0;
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = if follower { g.cluster(Operation::ClusterAction) } else { g.topic(Operation::Describe, &t.topic.0) };
        if !ok {
            let partitions = t.partitions.iter().map(|p| EpochEndOffset::default().with_partition(p.partition).with_error_code(TOPIC_DENIED).with_leader_epoch(-1).with_end_offset(-1)).collect();
            refused.push(OffsetForLeaderTopicResult::default().with_topic(t.topic.clone()).with_partitions(partitions));
        }
        ok
    });
    refused
}

/// OffsetDelete: READ on each topic (DELETE on the group is checked as a whole).
pub(crate) fn offset_delete(g: &Guard, req: &mut OffsetDeleteRequest) -> Vec<offset_delete_response::OffsetDeleteResponseTopic> {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    let mut refused = Vec::new();
    req.topics.retain(|t| {
        let ok = g.topic(Operation::Read, &t.name.0);
        if !ok {
            let partitions = t.partitions.iter().map(|p| OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(TOPIC_DENIED)).collect();
            refused.push(OffsetDeleteResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions));
        }
        ok
    });
    refused
}
