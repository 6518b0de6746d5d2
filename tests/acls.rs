//! ACL authorization on the wire: a broker with Kafka's StandardAuthorizer name configured, a
//! PLAINTEXT listener (its clients are User:ANONYMOUS) and a SASL_PLAINTEXT listener with PLAIN
//! users admin (a super user), alice and bob, on 127.0.0.1:0. Proves ACL CRUD with filters and
//! Kafka's per-binding errors, that ACLs survive a restart, that a user without permission gets
//! TOPIC_AUTHORIZATION_FAILED on produce and fetch and GROUP_AUTHORIZATION_FAILED on its group,
//! that Metadata shows only what the user may describe, that DENY wins and super users skip the
//! ACLs, and that the ACL APIs need ALTER / DESCRIBE on the cluster.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;


// Kafka's codes of the ACL enums.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const ANY: i8 = 1;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

async fn start(extra: &[&str]) -> TestBroker {
    let mut o = vec!["num.partitions=1"];
    o.extend(extra);
    TestBroker::authorized("User:admin", &o).await
}

fn sasl_addr(b: &TestBroker) -> SocketAddr {
    b.running.as_ref().unwrap().listener_addr("SASL_PLAINTEXT").expect("listener")
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(t: &str) -> TopicName {
    TopicName(s(t))
}

/// A client authenticated as `user` with SASL PLAIN.
async fn login(b: &TestBroker, user: &str) -> Client {
    let mut c = Client::connect(sasl_addr(b)).await;
    let h = c.send(&SaslHandshakeRequest::default().with_mechanism(s("PLAIN")), 1).await;
    assert_eq!(h.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    let a = c.send(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token.into_bytes())), 2).await;
    assert_eq!(a.error_code, 0, "{user} authenticates");
    c
}

fn creation(t: i8, resource: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(t)
        .with_resource_name(s(resource))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

async fn create_acls(c: &mut Client, creations: Vec<create_acls_request::AclCreation>) -> Vec<(i16, Option<String>)> {
    let resp = c.send(&CreateAclsRequest::default().with_creations(creations), 3).await;
    resp.results.iter().map(|r| (r.error_code, r.error_message.as_ref().map(|m| m.to_string()))).collect()
}

fn filter_all() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn delete_filter(resource_type: i8) -> delete_acls_request::DeleteAclsFilter {
    delete_acls_request::DeleteAclsFilter::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

/// (resource type, name, pattern, principal, operation, permission) of every ACL described.
fn described(resp: &DescribeAclsResponse) -> Vec<(i8, String, i8, String, i8, i8)> {
    let mut out = Vec::new();
    for r in &resp.resources {
        for a in &r.acls {
            out.push((r.resource_type, r.resource_name.to_string(), r.pattern_type, a.principal.to_string(), a.operation, a.permission_type));
        }
    }
    out.sort();
    out
}

async fn create_topic(c: &mut Client, topic: &str) -> i16 {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
    c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code
}

async fn produce(c: &mut Client, topic: &str) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch(3, 1_700_000_000_000, Compression::None)))])]);
    let resp = c.send(&req, 9).await;
    assert_eq!(resp.responses.len(), 1);
    resp.responses[0].partition_responses[0].error_code
}

async fn fetch(c: &mut Client, topic: &str) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    let resp = c.send(&req, 12).await;
    assert_eq!(resp.responses.len(), 1);
    resp.responses[0].partitions[0].error_code
}

/// The topics a Metadata request for every topic lists.
async fn all_topics(c: &mut Client) -> Vec<String> {
    let resp = c.send(&MetadataRequest::default().with_topics(None), 12).await;
    let mut names: Vec<String> = resp.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
    names.sort();
    names
}

async fn metadata_error(c: &mut Client, topic: &str, auto_create: bool) -> i16 {
    let req = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))])).with_allow_auto_topic_creation(auto_create);
    let resp = c.send(&req, 12).await;
    assert_eq!(resp.topics.len(), 1);
    resp.topics[0].error_code
}

async fn offset_commit(c: &mut Client, group: &str, topic: &str) -> i16 {
    let req = OffsetCommitRequest::default().with_group_id(GroupId(s(group))).with_generation_id_or_member_epoch(-1).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1)]),
    ]);
    c.send(&req, 8).await.topics[0].partitions[0].error_code
}

async fn join_group(c: &mut Client, group: &str) -> i16 {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::new())]);
    c.send(&req, 9).await.error_code
}

#[tokio::test]
async fn acls_are_created_described_by_filter_deleted_and_survive_a_restart() {
    let mut b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    let results = create_acls(
        &mut admin,
        vec![
            creation(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW),
            creation(TOPIC, "pay-", PREFIXED, "User:alice", WRITE, ALLOW),
            creation(GROUP, "*", LITERAL, "User:bob", ALL, ALLOW),
            creation(CLUSTER, "not-the-cluster", LITERAL, "User:bob", ALL, ALLOW),
            creation(TOPIC, "orders", LITERAL, "alice", READ, ALLOW),
            creation(TOPIC, "orders", MATCH, "User:alice", READ, ALLOW),
        ],
    )
    .await;
    assert_eq!(results[..3], [(0, None), (0, None), (0, None)]);
    assert_eq!(results[3], (42, Some("The only valid name for the CLUSTER resource is kafka-cluster".into())), "INVALID_REQUEST in Kafka's words");
    assert_eq!(results[4].0, 42);
    assert_eq!(results[5], (42, Some("Invalid patternType MATCH".into())));

    let all = described(&admin.send(&filter_all(), 3).await);
    assert_eq!(all.len(), 3);
    let matching = admin.send(&filter_all().with_resource_type_filter(TOPIC).with_resource_name_filter(Some(s("pay-eu"))).with_pattern_type_filter(MATCH), 3).await;
    assert_eq!(described(&matching), vec![(TOPIC, "pay-".into(), PREFIXED, "User:alice".into(), WRITE, ALLOW)], "MATCH: the prefixed ACL covering pay-eu");
    let mut other = login(&b, "admin").await;
    let frame = other.encode_request(&filter_all().with_operation(0), 3);
    other.send_raw(&frame).await;
    assert!(other.is_closed().await, "a filter with an UNKNOWN field closes the connection, as in Kafka");

    b.restart().await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(described(&admin.send(&filter_all(), 3).await), all, "the ACLs are durable");

    let delete = DeleteAclsRequest::default().with_filters(vec![
        delete_filter(TOPIC).with_principal_filter(Some(s("User:alice"))),
        delete_filter(ANY).with_pattern_type_filter(PREFIXED).with_resource_name_filter(Some(s("nothing-"))),
    ]);
    let deleted = admin.send(&delete, 3).await;
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 2);
    assert_eq!((deleted.filter_results[1].error_code, deleted.filter_results[1].matching_acls.len()), (0, 0), "a filter matching nothing");
    b.restart().await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(described(&admin.send(&filter_all(), 3).await), vec![(GROUP, "*".into(), LITERAL, "User:bob".into(), ALL, ALLOW)]);
    b.stop().await;
}

#[tokio::test]
async fn one_acl_change_is_bounded_at_ten_thousand_bindings_as_in_kafka() {
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    let many = |n: usize| (0..n).map(|i| creation(TOPIC, &format!("t-{i}"), LITERAL, "User:alice", READ, ALLOW)).collect::<Vec<_>>();
    let refused = create_acls(&mut admin, many(10_001)).await;
    assert_eq!(refused.len(), 10_001);
    assert!(refused.iter().all(|r| *r == (44, Some("Unable to perform excessively large batch operation.".into()))), "POLICY_VIOLATION for every binding: {:?}", refused[0]);
    assert!(described(&admin.send(&filter_all(), 3).await).is_empty(), "nothing was added");
    let made = create_acls(&mut admin, many(10_000)).await;
    assert!(made.iter().all(|r| r.0 == 0), "10,000 bindings are one change");
    // 10,001 stored: a filter matching them all fails, and so does a later one matching anything
    // (as Kafka 4.0 answers these two filters); none removes anything. Alone, the topics' filter
    // removes its 10,000.
    assert_eq!(create_acls(&mut admin, vec![creation(GROUP, "g", LITERAL, "User:alice", READ, ALLOW)]).await, vec![(0, None)]);
    let delete = DeleteAclsRequest::default().with_filters(vec![delete_filter(ANY), delete_filter(TOPIC)]);
    let deleted = admin.send(&delete, 3).await;
    assert_eq!(deleted.filter_results.iter().map(|r| r.error_code).collect::<Vec<_>>(), vec![-1, -1], "UNKNOWN_SERVER_ERROR");
    assert_eq!(described(&admin.send(&filter_all(), 3).await).len(), 10_001);
    let deleted = admin.send(&DeleteAclsRequest::default().with_filters(vec![delete_filter(TOPIC)]), 3).await;
    assert_eq!((deleted.filter_results[0].error_code, deleted.filter_results[0].matching_acls.len()), (0, 10_000));
    assert_eq!(described(&admin.send(&filter_all(), 3).await), vec![(GROUP, "g".into(), LITERAL, "User:alice".into(), READ, ALLOW)]);
    b.stop().await;
}

#[tokio::test]
async fn a_user_without_permission_is_refused_until_granted_and_sees_only_what_it_may_describe() {
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(create_topic(&mut admin, "orders").await, 0);
    assert_eq!(create_topic(&mut admin, "hidden").await, 0);
    assert_eq!(produce(&mut admin, "orders").await, 0, "a super user needs no ACL");

    let mut alice = login(&b, "alice").await;
    assert_eq!(produce(&mut alice, "orders").await, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(fetch(&mut alice, "orders").await, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(join_group(&mut alice, "g").await, GROUP_AUTHORIZATION_FAILED);
    assert_eq!(offset_commit(&mut alice, "g", "orders").await, GROUP_AUTHORIZATION_FAILED);
    assert!(all_topics(&mut alice).await.is_empty(), "no topic is shown to a principal that may describe none");
    assert_eq!(metadata_error(&mut alice, "orders", false).await, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(metadata_error(&mut alice, "brand-new", true).await, TOPIC_AUTHORIZATION_FAILED, "auto-creation needs CREATE");
    assert_eq!(create_topic(&mut alice, "mine").await, TOPIC_AUTHORIZATION_FAILED);
    let mut anonymous = b.client().await;
    assert_eq!(produce(&mut anonymous, "orders").await, TOPIC_AUTHORIZATION_FAILED, "PLAINTEXT clients are User:ANONYMOUS");

    let granted = create_acls(
        &mut admin,
        vec![
            creation(TOPIC, "orders", LITERAL, "User:alice", WRITE, ALLOW),
            creation(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW),
            creation(GROUP, "g", LITERAL, "User:alice", READ, ALLOW),
        ],
    )
    .await;
    assert!(granted.iter().all(|r| r.0 == 0), "{granted:?}");
    assert_eq!(produce(&mut alice, "orders").await, 0);
    assert_eq!(fetch(&mut alice, "orders").await, 0);
    assert_eq!(offset_commit(&mut alice, "g", "orders").await, 0);
    assert_eq!(offset_commit(&mut alice, "g", "hidden").await, TOPIC_AUTHORIZATION_FAILED, "a commit also needs READ on the topic");
    assert_eq!(all_topics(&mut alice).await, vec!["orders".to_string()], "READ and WRITE imply DESCRIBE; hidden stays hidden");
    assert_eq!(metadata_error(&mut alice, "hidden", false).await, TOPIC_AUTHORIZATION_FAILED);
    let find = alice.send(&FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("g"), s("other")]), 4).await;
    let codes: Vec<(String, i16)> = find.coordinators.iter().map(|c| (c.key.to_string(), c.error_code)).collect();
    assert!(codes.contains(&("g".into(), 0)) && codes.contains(&("other".into(), GROUP_AUTHORIZATION_FAILED)), "{codes:?}");
    let groups = alice.send(&ListGroupsRequest::default(), 4).await;
    assert!(groups.groups.iter().all(|g| g.group_id.0.as_str() == "g"), "only groups alice may describe are listed");
    let mut bob = login(&b, "bob").await;
    assert_eq!(produce(&mut bob, "orders").await, TOPIC_AUTHORIZATION_FAILED, "alice's ACLs are not bob's");
    b.stop().await;
}

#[tokio::test]
async fn deny_wins_over_allow_and_super_users_skip_the_acls() {
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(create_topic(&mut admin, "orders").await, 0);
    assert_eq!(create_topic(&mut admin, "audit").await, 0);
    let made = create_acls(
        &mut admin,
        vec![
            creation(TOPIC, "*", LITERAL, "User:*", ALL, ALLOW),
            creation(TOPIC, "audit", LITERAL, "User:alice", WRITE, DENY),
            creation(TOPIC, "*", LITERAL, "User:admin", ALL, DENY),
        ],
    )
    .await;
    assert!(made.iter().all(|r| r.0 == 0), "{made:?}");
    let mut alice = login(&b, "alice").await;
    assert_eq!(produce(&mut alice, "orders").await, 0, "User:* on every topic");
    assert_eq!(produce(&mut alice, "audit").await, TOPIC_AUTHORIZATION_FAILED, "the DENY wins");
    assert_eq!(fetch(&mut alice, "audit").await, 0, "a DENY of WRITE leaves READ");
    assert_eq!(produce(&mut admin, "audit").await, 0, "a super user is not denied");
    b.stop().await;
}

#[tokio::test]
async fn the_acl_apis_need_the_cluster_permission_and_answer_security_disabled_without_an_authorizer() {
    let b = start(&[]).await;
    let mut alice = login(&b, "alice").await;
    let made = create_acls(&mut alice, vec![creation(TOPIC, "t", LITERAL, "User:alice", ALL, ALLOW)]).await;
    assert_eq!(made[0].0, CLUSTER_AUTHORIZATION_FAILED, "CreateAcls needs ALTER on the cluster");
    assert_eq!(alice.send(&filter_all(), 3).await.error_code, CLUSTER_AUTHORIZATION_FAILED, "DescribeAcls needs DESCRIBE on the cluster");
    let mut admin = login(&b, "admin").await;
    assert_eq!(create_acls(&mut admin, vec![creation(CLUSTER, "kafka-cluster", LITERAL, "User:alice", 8, ALLOW)]).await[0].0, 0);
    assert_eq!(alice.send(&filter_all(), 3).await.error_code, 0, "DESCRIBE on the cluster granted");
    b.stop().await;

    let plain = TestBroker::start(&[]).await;
    let mut c = plain.client().await;
    let resp = c.send(&filter_all(), 3).await;
    assert_eq!((resp.error_code, resp.error_message.as_deref()), (54, Some("No Authorizer is configured on the broker")));
    assert_eq!(create_acls(&mut c, vec![creation(TOPIC, "t", LITERAL, "User:a", ALL, ALLOW)]).await[0], (54, Some("No Authorizer is configured.".into())));
    assert_eq!(create_topic(&mut c, "free").await, 0);
    assert_eq!(produce(&mut c, "free").await, 0, "without an authorizer everything is allowed");
    plain.stop().await;
}

#[tokio::test]
async fn admin_apis_are_refused_per_resource_without_their_permission() {
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(create_topic(&mut admin, "orders").await, 0);
    let mut alice = login(&b, "alice").await;
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(s("orders")).with_configuration_keys(None),
        describe_configs_request::DescribeConfigsResource::default().with_resource_type(4).with_resource_name(s("1")).with_configuration_keys(None),
    ]);
    let codes = |r: &DescribeConfigsResponse| r.results.iter().map(|x| (x.resource_type, x.error_code)).collect::<Vec<_>>();
    let resp = alice.send(&describe, 4).await;
    assert_eq!(codes(&resp), vec![(2, TOPIC_AUTHORIZATION_FAILED), (4, CLUSTER_AUTHORIZATION_FAILED)]);
    assert_eq!(codes(&admin.send(&describe, 4).await), vec![(2, 0), (4, 0)]);
    let partitions = CreatePartitionsRequest::default().with_timeout_ms(5000).with_topics(vec![create_partitions_request::CreatePartitionsTopic::default().with_name(name("orders")).with_count(2).with_assignments(None)]);
    assert_eq!(alice.send(&partitions, 3).await.results[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let delete = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
        .with_name(name("orders"))
        .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(0)])]);
    assert_eq!(alice.send(&delete, 2).await.topics[0].partitions[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let epoch = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
        .with_topic(name("orders"))
        .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_partition(0).with_current_leader_epoch(-1).with_leader_epoch(0)])]);
    assert_eq!(alice.send(&epoch, 4).await.topics[0].partitions[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(admin.send(&epoch, 4).await.topics[0].partitions[0].error_code, 0);
    let txn_commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_group_id(GroupId(s("g")))
        .with_producer_id(ProducerId(1))
        .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1)])]);
    assert_eq!(alice.send(&txn_commit, 3).await.topics[0].partitions[0].error_code, 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
    let init = alice.send(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000), 4).await;
    assert_eq!(init.error_code, CLUSTER_AUTHORIZATION_FAILED, "an idempotent producer needs WRITE on some topic");
    assert_eq!(create_acls(&mut admin, vec![creation(TOPIC, "orders", LITERAL, "User:alice", WRITE, ALLOW)]).await[0].0, 0);
    let init = alice.send(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000), 4).await;
    assert_eq!(init.error_code, 0, "WRITE on a topic is enough");
    let txn = alice.send(&InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s("tx")))).with_transaction_timeout_ms(60_000), 4).await;
    assert_eq!(txn.error_code, 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
    let move_dirs = AlterReplicaLogDirsRequest::default().with_dirs(vec![alter_replica_log_dirs_request::AlterReplicaLogDir::default()
        .with_path(s("/not/a/log/dir"))
        .with_topics(vec![alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default().with_name(name("orders")).with_partitions(vec![0, 1])])]);
    let codes = |r: &AlterReplicaLogDirsResponse| r.results.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.0.to_string(), p.partition_index, p.error_code))).collect::<Vec<_>>();
    let o = || "orders".to_string();
    assert_eq!(codes(&alice.send(&move_dirs, 2).await), vec![(o(), 0, CLUSTER_AUTHORIZATION_FAILED), (o(), 1, CLUSTER_AUTHORIZATION_FAILED)], "AlterReplicaLogDirs needs ALTER on the cluster");
    assert_eq!(codes(&admin.send(&move_dirs, 2).await), vec![(o(), 0, 57), (o(), 1, 3)], "LOG_DIR_NOT_FOUND; UNKNOWN_TOPIC_OR_PARTITION for a partition the topic lacks");
    b.stop().await;
}

#[tokio::test]
async fn client_metrics_subscriptions_need_the_cluster_config_permissions() {
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    let mut alice = login(&b, "alice").await;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(16)
        .with_resource_name(s("m1"))
        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default().with_name(s("interval.ms")).with_config_operation(0).with_value(Some(s("1000")))])]);
    let describe = DescribeConfigsRequest::default()
        .with_resources(vec![describe_configs_request::DescribeConfigsResource::default().with_resource_type(16).with_resource_name(s("m1")).with_configuration_keys(None)]);
    let list = ListConfigResourcesRequest::default();
    assert_eq!(alice.send(&alter, 1).await.responses[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(alice.send(&describe, 4).await.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(alice.send(&list, 0).await.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(admin.send(&alter, 1).await.responses[0].error_code, 0);
    // DESCRIBE_CONFIGS on the cluster lets alice describe and list, not alter.
    const DESCRIBE_CONFIGS: i8 = 10;
    assert_eq!(create_acls(&mut admin, vec![creation(CLUSTER, "kafka-cluster", LITERAL, "User:alice", DESCRIBE_CONFIGS, ALLOW)]).await[0].0, 0);
    let described = alice.send(&describe, 4).await;
    assert_eq!((described.results[0].error_code, described.results[0].configs.len()), (0, 1));
    let listed = alice.send(&list, 0).await;
    assert_eq!((listed.error_code, listed.config_resources.len()), (0, 1));
    assert_eq!(alice.send(&alter, 1).await.responses[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    b.stop().await;
}

#[tokio::test]
async fn describe_apis_show_only_what_the_principal_may_describe() {
    const TRANSACTIONAL_ID: i8 = 5;
    const DESCRIBE: i8 = 8;
    const TXN_DENIED: i16 = 53;
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    for t in ["orders", "secret"] {
        assert_eq!(create_topic(&mut admin, t).await, 0);
    }
    // An open transaction of the admin's on both topics.
    let init = admin.send(&InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s("tx1")))).with_transaction_timeout_ms(60_000), 4).await;
    assert_eq!(init.error_code, 0);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx1")))
        .with_v3_and_below_producer_id(init.producer_id)
        .with_v3_and_below_producer_epoch(init.producer_epoch)
        .with_v3_and_below_topics(["orders", "secret"].iter().map(|t| add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name(t)).with_partitions(vec![0])).collect());
    let added = admin.send(&add, 3).await;
    assert!(added.results_by_topic_v3_and_below.iter().all(|t| t.results_by_partition.iter().all(|p| p.partition_error_code == 0)));
    let mut alice = login(&b, "alice").await;

    let describe_txn = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s("tx1"))]);
    let list_txn = ListTransactionsRequest::default();
    let producers = DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default().with_name(name("orders")).with_partition_indexes(vec![0])]);
    let all_topics = DescribeTopicPartitionsRequest::default().with_response_partition_limit(100);
    let named = DescribeTopicPartitionsRequest::default().with_response_partition_limit(100).with_topics(
        ["orders", "secret"].iter().map(|t| describe_topic_partitions_request::TopicRequest::default().with_name(name(t))).collect(),
    );
    let group = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g"))]);
    let topic_codes = |r: &DescribeTopicPartitionsResponse| {
        r.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(), t.error_code, t.topic_id.is_nil())).collect::<Vec<_>>()
    };

    // Nothing granted: refusals, and nothing listed.
    let t = alice.send(&describe_txn, 0).await;
    assert_eq!((t.transaction_states[0].error_code, t.transaction_states[0].topics.len(), t.transaction_states[0].producer_id.0), (TXN_DENIED, 0, 0));
    assert!(alice.send(&list_txn, 0).await.transaction_states.is_empty(), "no transactional id it may describe");
    assert_eq!(alice.send(&producers, 0).await.topics[0].partitions[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(alice.send(&all_topics, 0).await.topics.is_empty(), "no topic it may describe");
    assert_eq!(topic_codes(&alice.send(&named, 0).await), vec![("orders".into(), TOPIC_AUTHORIZATION_FAILED, true), ("secret".into(), TOPIC_AUTHORIZATION_FAILED, true)]);
    assert_eq!(alice.send(&group, 0).await.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    // The admin (a super user) sees all of it.
    assert_eq!(admin.send(&describe_txn, 0).await.transaction_states[0].topics.len(), 2);
    assert_eq!(admin.send(&list_txn, 0).await.transaction_states.len(), 1);
    let listed: Vec<String> = admin.send(&all_topics, 0).await.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect();
    assert!(listed.contains(&"orders".to_string()) && listed.contains(&"secret".to_string()), "{listed:?}");

    // READ on orders (which implies DESCRIBE), DESCRIBE on tx1 and on the group.
    let grants = vec![
        creation(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW),
        creation(TRANSACTIONAL_ID, "tx1", LITERAL, "User:alice", DESCRIBE, ALLOW),
        creation(GROUP, "g", LITERAL, "User:alice", DESCRIBE, ALLOW),
    ];
    assert!(create_acls(&mut admin, grants).await.iter().all(|r| r.0 == 0));
    let t = alice.send(&describe_txn, 0).await;
    let state = &t.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.producer_id, init.producer_id);
    assert_eq!(state.topics.iter().map(|t| t.topic.0.to_string()).collect::<Vec<_>>(), vec!["orders"], "only the partitions of topics it may describe");
    assert_eq!(alice.send(&list_txn, 0).await.transaction_states.len(), 1);
    assert_eq!(alice.send(&producers, 0).await.topics[0].partitions[0].error_code, 0);
    assert_eq!(topic_codes(&alice.send(&all_topics, 0).await), vec![("orders".into(), 0, false)]);
    assert_eq!(topic_codes(&alice.send(&named, 0).await), vec![("orders".into(), 0, false), ("secret".into(), TOPIC_AUTHORIZATION_FAILED, true)]);
    assert_ne!(alice.send(&group, 0).await.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    b.stop().await;
}

#[tokio::test]
async fn authorized_operations_are_the_principals_own() {
    const DESCRIBE: i8 = 8;
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(create_topic(&mut admin, "orders").await, 0);
    assert_eq!(offset_commit(&mut admin, "g", "orders").await, 0);
    let grants = vec![creation(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW), creation(GROUP, "g", LITERAL, "User:alice", DESCRIBE, ALLOW)];
    assert!(create_acls(&mut admin, grants).await.iter().all(|r| r.0 == 0));
    let mut alice = login(&b, "alice").await;
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("orders")))]))
        .with_allow_auto_topic_creation(false)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    let groups = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]).with_include_authorized_operations(true);
    let cluster = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let topics = DescribeTopicPartitionsRequest::default().with_response_partition_limit(10).with_topics(vec![describe_topic_partitions_request::TopicRequest::default().with_name(name("orders"))]);
    let (read, describe) = (1 << 3, 1 << 8);
    // READ on the topic implies DESCRIBE; alice may not describe the cluster, so 0 for it.
    let m = alice.send(&metadata, 10).await;
    assert_eq!((m.topics[0].topic_authorized_operations, m.cluster_authorized_operations), (read | describe, 0));
    assert_eq!(alice.send(&groups, 5).await.groups[0].authorized_operations, describe);
    assert_eq!(alice.send(&cluster, 0).await.cluster_authorized_operations, 0);
    assert_eq!(alice.send(&topics, 0).await.topics[0].topic_authorized_operations, read | describe);
    // A super user is allowed every supported operation.
    let m = admin.send(&metadata, 10).await;
    assert_eq!(m.topics[0].topic_authorized_operations, 0b1101_1111_1000);
    assert_eq!(m.cluster_authorized_operations, 0b1_1111_1010_0000);
    assert_eq!(admin.send(&groups, 5).await.groups[0].authorized_operations, 0b1101_0100_1000);
    assert_eq!(admin.send(&cluster, 0).await.cluster_authorized_operations, 0b1_1111_1010_0000);
    // Not asked for: the field's default.
    let plain = alice.send(&DescribeClusterRequest::default(), 0).await;
    assert_eq!(plain.cluster_authorized_operations, i32::MIN);
    b.stop().await;
}

#[tokio::test]
async fn a_consumer_group_heartbeat_naming_a_topic_the_member_may_not_describe_is_refused_whole() {
    const DESCRIBE: i8 = 8;
    let b = start(&[]).await;
    let mut admin = login(&b, "admin").await;
    assert_eq!(create_topic(&mut admin, "orders").await, 0);
    assert_eq!(create_topic(&mut admin, "secret").await, 0);
    let grants = vec![creation(GROUP, "g", LITERAL, "User:alice", READ, ALLOW), creation(TOPIC, "orders", LITERAL, "User:alice", DESCRIBE, ALLOW)];
    assert!(create_acls(&mut admin, grants).await.iter().all(|r| r.0 == 0));
    let mut alice = login(&b, "alice").await;
    // Kafka 4.0 answers the whole heartbeat TOPIC_AUTHORIZATION_FAILED, with no member id, no
    // message and epoch 0 (asked of the reference broker), before the group sees the member.
    let refused = alice.send(&groups::consumer_join_req("g", "m1", &["orders", "secret"]), 1).await;
    assert_eq!((refused.error_code, refused.error_message.as_deref(), refused.member_id.as_deref(), refused.member_epoch), (TOPIC_AUTHORIZATION_FAILED, None, None, 0));
    let joined = alice.send(&groups::consumer_join_req("g", "m1", &["orders"]), 1).await;
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1), "every subscribed topic described: the member joins");
    let again = alice.send(&groups::consumer_beat_req("g", "m1", 1, None).with_subscribed_topic_names(Some(vec![name("orders"), name("secret")])), 1).await;
    assert_eq!(again.error_code, TOPIC_AUTHORIZATION_FAILED, "a member changing its subscription is checked too");
    let mut bob = login(&b, "bob").await;
    let other = bob.send(&groups::consumer_join_req("g", "m2", &["orders"]), 1).await;
    assert_eq!(other.error_code, GROUP_AUTHORIZATION_FAILED, "READ on the group is asked first");
    b.stop().await;
}
