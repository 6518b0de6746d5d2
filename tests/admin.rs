//! Wire tests of the admin APIs: CreatePartitions, DeleteRecords, AlterConfigs and
//! IncrementalAlterConfigs, SCRAM credentials, the ACL APIs (no authorizer), each with the errors Kafka gives for bad requests, every served
//! version, and the effect surviving a restart.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create_topic(c: &mut Client, topic: &str, partitions: i32) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

async fn partitions_of(c: &mut Client, topic: &str) -> usize {
    let req = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))]));
    c.send(&req, 12).await.topics[0].partitions.len()
}

async fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

fn create_partitions(topic: &str, count: i32, validate_only: bool) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default().with_name(name(topic)).with_count(count).with_assignments(None)])
        .with_timeout_ms(5000)
        .with_validate_only(validate_only)
}

#[tokio::test]
async fn create_partitions_grows_a_topic_durably_and_refuses_what_kafka_refuses() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "grow", 2).await;
    let r = c.send(&create_partitions("grow", 5, true), 3).await;
    assert_eq!(r.results[0].error_code, 0, "validate_only");
    assert_eq!(partitions_of(&mut c, "grow").await, 2, "validate_only changes nothing");
    let r = c.send(&create_partitions("grow", 5, false), 3).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(partitions_of(&mut c, "grow").await, 5);
    assert_eq!(produce(&mut c, "grow", 4, batch(3, 1, Compression::None)).await, 0, "a new partition takes records");
    for (count, why) in [(5, "same count"), (3, "fewer")] {
        let r = c.send(&create_partitions("grow", count, false), 3).await;
        assert_eq!(r.results[0].error_code, E::InvalidPartitions.code(), "{why}");
        assert!(r.results[0].error_message.is_some());
    }
    let r = c.send(&create_partitions("nope", 3, false), 3).await;
    assert_eq!(r.results[0].error_code, E::UnknownTopicOrPartition.code());
    let mut req = create_partitions("grow", 7, false);
    req.topics[0].assignments = Some(vec![create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])]);
    assert_eq!(c.send(&req, 3).await.results[0].error_code, E::InvalidReplicaAssignment.code(), "one assignment for two new partitions");
    req.topics[0].assignments = Some(vec![create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(9)]); 2]);
    assert_eq!(c.send(&req, 3).await.results[0].error_code, E::InvalidReplicaAssignment.code(), "unknown broker");
    let mut dup = create_partitions("grow", 8, false);
    dup.topics.push(dup.topics[0].clone());
    assert!(c.send(&dup, 3).await.results.iter().all(|r| r.error_code == E::InvalidRequest.code()), "duplicate topic");
    for v in 0..=3 {
        let r = c.send(&create_partitions("grow", 6 + v as i32, false), v).await;
        assert_eq!(r.results[0].error_code, 0, "CreatePartitions v{v}");
    }
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(partitions_of(&mut c, "grow").await, 9, "the count survives a restart");
    b.stop().await;
}

fn delete_records(topic: &str, partition: i32, offset: i64) -> DeleteRecordsRequest {
    DeleteRecordsRequest::default()
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default().with_partition_index(partition).with_offset(offset)])])
        .with_timeout_ms(5000)
}

async fn earliest(c: &mut Client, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-2)])]);
    c.send(&req, 7).await.topics[0].partitions[0].offset
}

#[tokio::test]
async fn delete_records_moves_the_low_watermark_durably_and_refuses_offsets_past_the_high_watermark() {
    // The test batches carry 1970 timestamps: retention (checked every 100 ms here) is off so only
    // DeleteRecords moves the log start.
    let mut b = TestBroker::start(&["log.segment.bytes=1024", "log.retention.ms=-1"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "dr", 1).await;
    for _ in 0..20 {
        assert_eq!(produce(&mut c, "dr", 0, batch(5, 1, Compression::None)).await, 0);
    }
    let r = c.send(&delete_records("dr", 0, 37), 2).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 37));
    assert_eq!(earliest(&mut c, "dr").await, 37);
    let fetch = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(name("dr"))
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(10).with_partition_max_bytes(1 << 20)])]);
    assert_eq!(c.send(&fetch, 11).await.responses[0].partitions[0].error_code, E::OffsetOutOfRange.code(), "below the low watermark");
    let r = c.send(&delete_records("dr", 0, 20), 2).await;
    assert_eq!(r.topics[0].partitions[0].low_watermark, 37, "never moves back");
    let r = c.send(&delete_records("dr", 0, 101), 2).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::OffsetOutOfRange.code(), "past the high watermark");
    let r = c.send(&delete_records("dr", 3, 1), 2).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::UnknownTopicOrPartition.code());
    for v in 0..=2 {
        let r = c.send(&delete_records("dr", 0, 40 + v as i64), v).await;
        assert_eq!(r.topics[0].partitions[0].low_watermark, 40 + v as i64, "DeleteRecords v{v}");
    }
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(earliest(&mut c, "dr").await, 42, "the low watermark survives a restart");
    let r = c.send(&delete_records("dr", 0, -1), 2).await;
    assert_eq!(r.topics[0].partitions[0].low_watermark, 100, "-1 deletes up to the high watermark");
    assert_eq!(earliest(&mut c, "dr").await, 100);
    b.stop().await;
}

fn alter(resource_type: i8, resource: &str, configs: &[(&str, Option<&str>)], validate_only: bool) -> AlterConfigsRequest {
    AlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(resource))
        .with_configs(configs.iter().map(|(k, v)| alter_configs_request::AlterableConfig::default().with_name(s(k)).with_value(v.map(s))).collect())])
}

fn incremental(topic: &str, ops: &[(&str, i8, Option<&str>)]) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s(topic))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| incremental_alter_configs_request::AlterableConfig::default().with_name(s(k)).with_config_operation(*op).with_value(v.map(s)))
                .collect(),
        )])
}

/// (value, source) of one topic config.
async fn describe(c: &mut Client, topic: &str, key: &str) -> (Option<String>, i8) {
    let req = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s(topic))
        .with_configuration_keys(Some(vec![s(key)]))]);
    let resp = c.send(&req, 4).await;
    let e = &resp.results[0].configs[0];
    (e.value.as_ref().map(|v| v.to_string()), e.config_source)
}

#[tokio::test]
async fn alter_configs_replaces_a_topics_overrides_live_and_durably() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "cfg", 1).await;
    let r = c.send(&alter(2, "cfg", &[("retention.ms", Some("1234")), ("max.message.bytes", Some("2000"))], false), 2).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(describe(&mut c, "cfg", "retention.ms").await, (Some("1234".into()), 1));
    // Live: a batch over the new max.message.bytes is refused at once.
    let big = batch(200, 1, Compression::None);
    assert!(big.len() > 2000);
    assert_eq!(produce(&mut c, "cfg", 0, big.clone()).await, E::MessageTooLarge.code());
    // A second AlterConfigs replaces the whole set: max.message.bytes goes back to the default.
    let r = c.send(&alter(2, "cfg", &[("retention.ms", Some("99999"))], false), 1).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(describe(&mut c, "cfg", "max.message.bytes").await.1, 5, "default again");
    assert_eq!(produce(&mut c, "cfg", 0, big).await, 0);
    // validate_only and refusals change nothing.
    assert_eq!(c.send(&alter(2, "cfg", &[("retention.ms", Some("5"))], true), 0).await.responses[0].error_code, 0);
    for (req, code, why) in [
        (alter(2, "cfg", &[("no.such.config", Some("1"))], false), E::InvalidConfig.code(), "unknown key"),
        (alter(2, "cfg", &[("retention.ms", Some("soon"))], false), E::InvalidConfig.code(), "bad value"),
        (alter(2, "cfg", &[("retention.ms", None)], false), E::InvalidRequest.code(), "null value"),
        (alter(2, "nope", &[("retention.ms", Some("1"))], false), E::UnknownTopicOrPartition.code(), "unknown topic"),
        (alter(4, "1", &[("log.dirs", Some("/elsewhere"))], false), E::InvalidRequest.code(), "a static broker config"),
        (alter(4, "1", &[("message.max.bytes", Some("lots"))], false), E::InvalidRequest.code(), "a bad broker value"),
        (alter(4, "7", &[("log.retention.ms", Some("1"))], false), E::InvalidRequest.code(), "another broker"),
    ] {
        let r = c.send(&req, 2).await;
        assert_eq!(r.responses[0].error_code, code, "{why}");
        assert!(r.responses[0].error_message.is_some(), "{why}");
    }
    assert_eq!(describe(&mut c, "cfg", "retention.ms").await.0.as_deref(), Some("99999"));
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(describe(&mut c, "cfg", "retention.ms").await, (Some("99999".into()), 1), "survives a restart");
    b.stop().await;
}

#[tokio::test]
async fn incremental_alter_configs_sets_deletes_appends_and_subtracts() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "inc", 1).await;
    let r = c.send(&incremental("inc", &[("retention.ms", 0, Some("777")), ("cleanup.policy", 2, Some("compact"))]), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    assert_eq!(describe(&mut c, "inc", "cleanup.policy").await.0.as_deref(), Some("delete,compact"));
    assert_eq!(describe(&mut c, "inc", "retention.ms").await.0.as_deref(), Some("777"));
    // Compacted now: records without a key are refused, live.
    let keyless = Bytes::from(batch_without_key());
    assert_eq!(produce(&mut c, "inc", 0, keyless).await, E::InvalidRecord.code());
    let r = c.send(&incremental("inc", &[("cleanup.policy", 3, Some("delete")), ("retention.ms", 1, None)]), 0).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(describe(&mut c, "inc", "cleanup.policy").await.0.as_deref(), Some("compact"));
    assert_eq!(describe(&mut c, "inc", "retention.ms").await.1, 5, "deleted: the default again");
    for (req, code, why) in [
        (incremental("inc", &[("retention.ms", 2, Some("1"))]), E::InvalidConfig.code(), "append to a non-list config"),
        (incremental("inc", &[("retention.ms", 0, None)]), E::InvalidRequest.code(), "set to null"),
        (incremental("inc", &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)]), E::InvalidRequest.code(), "duplicate key"),
        (incremental("inc", &[("cleanup.policy", 0, Some("shred"))]), E::InvalidConfig.code(), "invalid value"),
        (incremental("nope", &[("retention.ms", 0, Some("1"))]), E::UnknownTopicOrPartition.code(), "unknown topic"),
    ] {
        let r = c.send(&req, 1).await;
        assert_eq!(r.responses[0].error_code, code, "{why}");
    }
    assert_eq!(describe(&mut c, "inc", "cleanup.policy").await.0.as_deref(), Some("compact"), "refusals changed nothing");
    b.stop().await;
}

fn batch_without_key() -> Vec<u8> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let r = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, [&r], &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.to_vec()
}

async fn describe_broker(c: &mut Client, resource: &str, key: &str) -> (Option<String>, i8, bool) {
    let req = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s(resource))
        .with_configuration_keys(Some(vec![s(key)]))]);
    let resp = c.send(&req, 4).await;
    assert_eq!(resp.results[0].error_code, 0);
    let e = &resp.results[0].configs[0];
    (e.value.as_ref().map(|v| v.to_string()), e.config_source, e.read_only)
}

#[tokio::test]
async fn dynamic_broker_configs_apply_to_inheriting_topics_live_and_survive_a_restart() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "dyn", 1).await;
    let big = batch(200, 1, Compression::None);
    assert!(big.len() > 2000);
    // The cluster default, then this broker's own value above it.
    let r = c.send(&alter(4, "", &[("message.max.bytes", Some("3000000"))], false), 2).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    assert_eq!(describe(&mut c, "dyn", "max.message.bytes").await, (Some("3000000".into()), 3), "inherited from the dynamic default");
    let r = c.send(&incremental_broker("1", &[("message.max.bytes", 0, Some("2000")), ("log.cleanup.policy", 2, Some("compact")), ("custom.key", 0, Some("x"))]), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    assert_eq!(describe(&mut c, "dyn", "max.message.bytes").await, (Some("2000".into()), 2), "this broker's value wins");
    assert_eq!(describe_broker(&mut c, "1", "log.cleanup.policy").await, (Some("delete,compact".into()), 2, false));
    assert_eq!(describe_broker(&mut c, "1", "custom.key").await.0.as_deref(), Some("x"), "custom configs are kept");
    assert!(describe_broker(&mut c, "1", "log.dirs").await.2, "static configs are read-only");
    assert_eq!(produce(&mut c, "dyn", 0, big.clone()).await, E::MessageTooLarge.code(), "applied to the existing topic at once");
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(produce(&mut c, "dyn", 0, big.clone()).await, E::MessageTooLarge.code(), "still after a restart");
    assert_eq!(describe_broker(&mut c, "", "message.max.bytes").await, (Some("3000000".into()), 3, false), "the default resource shows the default");
    assert_eq!(describe_broker(&mut c, "1", "message.max.bytes").await.0.as_deref(), Some("2000"));
    // Removing this broker's value falls back to the cluster default.
    let r = c.send(&incremental_broker("1", &[("message.max.bytes", 1, None)]), 1).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(produce(&mut c, "dyn", 0, big).await, 0);
    let r = c.send(&incremental_broker("1", &[("log.dirs", 0, Some("/x"))]), 1).await;
    assert_eq!(r.responses[0].error_code, E::InvalidRequest.code(), "static");
    b.stop().await;
}

fn incremental_broker(resource: &str, ops: &[(&str, i8, Option<&str>)]) -> IncrementalAlterConfigsRequest {
    let mut req = incremental("", ops);
    req.resources[0].resource_type = 4;
    req.resources[0].resource_name = s(resource);
    req
}

#[tokio::test]
async fn describe_log_dirs_lists_partitions_with_their_sizes_and_the_disk_space() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "ld", 2).await;
    create_topic(&mut c, "other", 1).await;
    assert_eq!(produce(&mut c, "ld", 1, batch(10, 1, Compression::None)).await, 0);
    for v in 1..=4 {
        let resp = c.send(&DescribeLogDirsRequest::default().with_topics(None), v).await;
        assert_eq!(resp.results.len(), 1, "DescribeLogDirs v{v}");
        let dir = &resp.results[0];
        assert_eq!(dir.error_code, 0);
        let ld = dir.topics.iter().find(|t| t.name.0.as_str() == "ld").expect("topic ld");
        let sizes: Vec<(i32, i64)> = ld.partitions.iter().map(|p| (p.partition_index, p.partition_size)).collect();
        assert_eq!(sizes.len(), 2);
        assert_eq!(sizes[0], (0, 0));
        assert!(sizes[1].1 > 0, "partition 1 holds the batch");
        if v >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        }
    }
    let one = describe_log_dirs_request::DescribableLogDirTopic::default().with_topic(name("ld")).with_partitions(vec![1]);
    let resp = c.send(&DescribeLogDirsRequest::default().with_topics(Some(vec![one])), 4).await;
    let topics = &resp.results[0].topics;
    assert_eq!(topics.len(), 1, "only the named topic");
    assert_eq!(topics[0].partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>(), vec![1]);
    b.stop().await;
}

fn epoch_req(topic: &str, partition: i32, current: i32, epoch: i32) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)])])
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_from_the_epoch_cache_and_appends_carry_the_epoch() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "ep", 1).await;
    assert_eq!(produce(&mut c, "ep", 0, batch(7, 1, Compression::None)).await, 0);
    for v in 2..=4 {
        let r = c.send(&epoch_req("ep", 0, 0, 0), v).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, 0, 7), "OffsetForLeaderEpoch v{v}");
    }
    let p = c.send(&epoch_req("ep", 0, -1, 3), 4).await.topics[0].partitions[0].clone();
    assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, -1, -1), "an epoch newer than the leader's is undefined");
    assert_eq!(c.send(&epoch_req("ep", 0, 5, 0), 4).await.topics[0].partitions[0].error_code, E::UnknownLeaderEpoch.code());
    assert_eq!(c.send(&epoch_req("ep", 9, 0, 0), 4).await.topics[0].partitions[0].error_code, E::UnknownTopicOrPartition.code());
    // The batch was stamped with the leader epoch, as Kafka's leader stamps it.
    let fetch = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(name("ep"))
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    let records = c.send(&fetch, 11).await.responses[0].partitions[0].records.clone().expect("records");
    assert_eq!(i32::from_be_bytes(records[12..16].try_into().unwrap()), 0, "partitionLeaderEpoch");
    // Fetch and ListOffsets check the client's current leader epoch the same way.
    let mut stale = fetch.clone();
    stale.topics[0].partitions[0].current_leader_epoch = 4;
    assert_eq!(c.send(&stale, 11).await.responses[0].partitions[0].error_code, E::UnknownLeaderEpoch.code());
    let lo = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(name("ep"))
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1).with_current_leader_epoch(4)])]);
    assert_eq!(c.send(&lo, 7).await.topics[0].partitions[0].error_code, E::UnknownLeaderEpoch.code());
    let checkpoint = std::fs::read_to_string(b.dir.path().join("ep-0").join("leader-epoch-checkpoint")).expect("leader-epoch-checkpoint");
    assert_eq!(checkpoint, "0\n1\n0 0\n");
    b.stop().await;
}

fn scram_upsert(user: &str, mechanism: i8, iterations: i32) -> alter_user_scram_credentials_request::ScramCredentialUpsertion {
    alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"salt"))
        .with_salted_password(Bytes::from_static(&[7u8; 32]))
}

fn scram_describe(users: Option<&[&str]>) -> DescribeUserScramCredentialsRequest {
    DescribeUserScramCredentialsRequest::default()
        .with_users(users.map(|u| u.iter().map(|n| describe_user_scram_credentials_request::UserName::default().with_name(s(n))).collect()))
}

/// (user, error code, [(mechanism, iterations)]) in the response's order.
fn described(r: &DescribeUserScramCredentialsResponse) -> Vec<(String, i16, Vec<(i8, i32)>)> {
    r.results.iter().map(|x| (x.user.to_string(), x.error_code, x.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect())).collect()
}

#[tokio::test]
async fn scram_credentials_are_stored_durably_described_without_secrets_and_bad_ones_refused() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let r = c.send(&scram_describe(Some(&["alice"])), 0).await;
    assert_eq!(r.error_code, 0, "per-user errors only");
    assert_eq!(described(&r), vec![("alice".into(), E::ResourceNotFound.code(), vec![])]);
    let alter = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        scram_upsert("alice", 1, 10000),
        scram_upsert("bob", 2, 4096),
        scram_upsert("carol", 1, 4095),
        scram_upsert("dave", 1, 16385),
        scram_upsert("erin", 0, 5000),
        scram_upsert("", 1, 5000),
        scram_upsert("frank", 1, 5000),
        scram_upsert("frank", 2, 5000),
    ]);
    let r = c.send(&alter, 0).await;
    let mut codes: Vec<(String, i16)> = r.results.iter().map(|x| (x.user.to_string(), x.error_code)).collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("".into(), E::UnacceptableCredential.code()),
            ("alice".into(), 0),
            ("bob".into(), 0),
            ("carol".into(), E::UnacceptableCredential.code()),
            ("dave".into(), E::UnacceptableCredential.code()),
            ("erin".into(), E::UnsupportedSaslMechanism.code()),
            ("frank".into(), E::DuplicateResource.code()),
        ]
    );
    let del = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![alter_user_scram_credentials_request::ScramCredentialDeletion::default().with_name(s("alice")).with_mechanism(2)]);
    assert_eq!(c.send(&del, 0).await.results[0].error_code, E::ResourceNotFound.code(), "alice has no SHA-512 credential");
    b.restart().await;
    let mut c = b.client().await;
    let all = described(&c.send(&scram_describe(None), 0).await);
    assert_eq!(all, vec![("alice".into(), 0, vec![(1, 10000)]), ("bob".into(), 0, vec![(2, 4096)])], "kept over a restart");
    assert_eq!(described(&c.send(&scram_describe(Some(&[])), 0).await), all, "an empty list is everyone");
    let r = c.send(&scram_describe(Some(&["bob", "bob"])), 0).await;
    assert_eq!(described(&r), vec![("bob".into(), E::DuplicateResource.code(), vec![])]);
    let stored = std::fs::read(b.dir.path().join("fjord-scram-credentials.checkpoint")).expect("stored");
    assert!(!stored.windows(32).any(|w| w == [7u8; 32]), "the salted password itself is not kept");
    let del = AlterUserScramCredentialsRequest::default()
        .with_deletions(vec![alter_user_scram_credentials_request::ScramCredentialDeletion::default().with_name(s("alice")).with_mechanism(1)]);
    assert_eq!(c.send(&del, 0).await.results[0].error_code, 0);
    assert_eq!(described(&c.send(&scram_describe(None), 0).await), vec![("bob".into(), 0, vec![(2, 4096)])]);
    b.stop().await;
}

/// Without an authorizer Kafka answers the three ACL APIs with SECURITY_DISABLED (MirrorMaker 2's
/// ACL sync and kafka-acls.sh read it as "no authorizer"); Fjord has none and answers the same,
/// at every version Kafka 4.0 serves.
#[tokio::test]
async fn acl_apis_answer_security_disabled_as_kafka_without_an_authorizer() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let disabled = E::SecurityDisabled.code();
    for v in 1..=3 {
        let resp = c.send(&DescribeAclsRequest::default().with_resource_type_filter(1).with_operation(1).with_permission_type(1), v).await;
        assert_eq!((resp.error_code, resp.error_message.as_deref()), (disabled, Some("No Authorizer is configured on the broker")), "DescribeAcls v{v}");
        assert!(resp.resources.is_empty());

        let creation = create_acls_request::AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("t1"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let resp = c.send(&CreateAclsRequest::default().with_creations(vec![creation.clone(), creation]), v).await;
        assert_eq!(resp.results.len(), 2, "CreateAcls v{v}");
        for r in &resp.results {
            assert_eq!((r.error_code, r.error_message.as_deref()), (disabled, Some("No Authorizer is configured.")), "CreateAcls v{v}");
        }

        let filter = delete_acls_request::DeleteAclsFilter::default().with_resource_type_filter(1).with_pattern_type_filter(1).with_operation(1).with_permission_type(1);
        let resp = c.send(&DeleteAclsRequest::default().with_filters(vec![filter]), v).await;
        assert_eq!(resp.filter_results.len(), 1, "DeleteAcls v{v}");
        assert_eq!(resp.filter_results[0].error_code, disabled, "DeleteAcls v{v}");
        assert!(resp.filter_results[0].matching_acls.is_empty());
    }
    b.stop().await;
}

/// kafka-leader-election.sh against a single node: its one replica of each partition leads, so
/// every election answers ELECTION_NOT_NEEDED (the tool prints "Valid replica already elected"),
/// an unknown topic or partition UNKNOWN_TOPIC_OR_PARTITION in Kafka's words, and "all partitions"
/// lists nothing, as the reference Kafka 4.0 answered the same requests.
#[tokio::test]
async fn leader_election_on_a_single_node_is_never_needed() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let versions = c.send(&ApiVersionsRequest::default(), 3).await;
    assert!(versions.api_keys.iter().any(|k| k.api_key == ApiKey::ElectLeaders as i16 && k.max_version == 2), "advertised");
    create_topic(&mut c, "el", 2).await;
    let asked = |election_type: i8, partitions: Option<Vec<(&str, i32)>>| {
        ElectLeadersRequest::default().with_election_type(election_type).with_timeout_ms(5000).with_topic_partitions(partitions.map(|ps| {
            ps.into_iter().map(|(t, p)| elect_leaders_request::TopicPartitions::default().with_topic(name(t)).with_partitions(vec![p])).collect()
        }))
    };
    let outcome = |r: &ElectLeadersResponse| -> Vec<(String, i32, i16, Option<String>)> {
        r.replica_election_results
            .iter()
            .flat_map(|t| t.partition_result.iter().map(move |p| (t.topic.0.to_string(), p.partition_id, p.error_code, p.error_message.as_ref().map(|m| m.to_string()))))
            .collect()
    };
    for election_type in [0, 1] {
        let r = c.send(&asked(election_type, Some(vec![("el", 0), ("el", 1)])), 2).await;
        assert_eq!(r.error_code, 0);
        let codes: Vec<(i32, i16)> = outcome(&r).into_iter().map(|(_, p, code, _)| (p, code)).collect();
        assert_eq!(codes, vec![(0, E::ElectionNotNeeded.code()), (1, E::ElectionNotNeeded.code())], "election type {election_type}");
    }
    let r = c.send(&asked(0, Some(vec![("nosuch", 0), ("el", 5)])), 2).await;
    assert_eq!(
        outcome(&r),
        vec![
            ("el".into(), 5, E::UnknownTopicOrPartition.code(), Some("No such partition as el-5".into())),
            ("nosuch".into(), 0, E::UnknownTopicOrPartition.code(), Some("No such topic as nosuch".into())),
        ]
    );
    let r = c.send(&asked(1, None), 2).await;
    assert_eq!((r.error_code, r.replica_election_results.len()), (0, 0), "every partition: no election held, none listed");
    // v0 has no top-level error: the answers stay per partition.
    let r = c.send(&asked(0, Some(vec![("el", 1)])), 0).await;
    assert_eq!(outcome(&r)[0].2, E::ElectionNotNeeded.code());
    b.stop().await;
}
