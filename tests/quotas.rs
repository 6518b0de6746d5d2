//! Wire tests of client quotas: AlterClientQuotas / DescribeClientQuotas with Kafka's answers,
//! kept across a restart, and producer_byte_rate / consumer_byte_rate enforced as Kafka does
//! (KIP-219): the response carries the throttle time and the connection reads nothing more for
//! that long; a throttled fetch carries no records. request_percentage (KIP-124),
//! controller_mutation_rate (KIP-599, THROTTLING_QUOTA_EXCEEDED per topic) and the connection
//! creation rates of KIP-612 (an address's connection_creation_rate, max.connection.creation.rate).

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<alter_client_quotas_request::EntityData> {
    parts.iter().map(|(t, n)| alter_client_quotas_request::EntityData::default().with_entity_type(s(t)).with_entity_name(n.map(s))).collect()
}

fn set(parts: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> alter_client_quotas_request::EntryData {
    alter_client_quotas_request::EntryData::default().with_entity(entity(parts)).with_ops(
        ops.iter().map(|(k, v)| alter_client_quotas_request::OpData::default().with_key(s(k)).with_value(v.unwrap_or(0.0)).with_remove(v.is_none())).collect(),
    )
}

async fn alter(c: &mut Client, entries: Vec<alter_client_quotas_request::EntryData>) -> Vec<(i16, Option<String>)> {
    let resp = c.send(&AlterClientQuotasRequest::default().with_entries(entries), 1).await;
    resp.entries.into_iter().map(|e| (e.error_code, e.error_message.map(|m| m.to_string()))).collect()
}

async fn describe(c: &mut Client, components: Vec<describe_client_quotas_request::ComponentData>, strict: bool) -> DescribeClientQuotasResponse {
    c.send(&DescribeClientQuotasRequest::default().with_components(components).with_strict(strict), 1).await
}

fn component(t: &str, match_type: i8, name: Option<&str>) -> describe_client_quotas_request::ComponentData {
    describe_client_quotas_request::ComponentData::default().with_entity_type(s(t)).with_match_type(match_type).with_match(name.map(s))
}

async fn create_topic(c: &mut Client, topic: &str) {
    let t = create_topics_request::CreatableTopic::default().with_name(TopicName(s(topic))).with_num_partitions(1).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

/// One uncompressed batch of `n` records of `size` bytes each.
fn big_batch(n: usize, size: usize) -> Bytes {
    let value = vec![b'x'; size];
    let recs: Vec<_> = (0..n).map(|i| record(i as i64, 1_000 + i as i64, "k", &value)).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(TopicName(s(topic)))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))])])
}

fn fetch_request(topic: &str, offset: i64) -> FetchRequest {
    FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
        fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(10 << 20)]),
    ])
}

#[tokio::test]
async fn quotas_are_altered_and_described_with_kafkas_errors_and_kept_across_a_restart() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let results = alter(
        &mut c,
        vec![
            set(&[("user", Some("alice"))], &[("producer_byte_rate", Some(1024.0)), ("consumer_byte_rate", Some(4096.0))]),
            set(&[("user", Some("alice")), ("client-id", None)], &[("producer_byte_rate", Some(512.0))]),
            set(&[("client-id", Some("app"))], &[("producer_byte_rate", Some(1.5))]),
            set(&[("user", Some("bob"))], &[("no_such_quota", Some(1.0))]),
            set(&[("ip", Some("127.0.0.1")), ("user", Some("bob"))], &[("connection_creation_rate", Some(1.0))]),
            set(&[], &[("producer_byte_rate", Some(1.0))]),
        ],
    )
    .await;
    assert_eq!(results[0], (0, None));
    assert_eq!(results[1], (0, None));
    assert_eq!(results[2], (42, Some("producer_byte_rate cannot be a fractional value.".into())));
    assert_eq!(results[3], (42, Some("Invalid configuration key no_such_quota".into())));
    assert_eq!(results[4].0, 42, "IP entities do not combine with users");
    assert_eq!(results[5], (42, Some("Invalid empty client quota entity".into())));

    b.restart().await;
    let mut c = b.client().await;
    let all = describe(&mut c, vec![component("user", 0, Some("alice"))], false).await;
    assert_eq!(all.error_code, 0);
    let entries = all.entries.unwrap();
    assert_eq!(entries.len(), 2, "alice's own entity and alice with the default client, after a restart");
    let strict = describe(&mut c, vec![component("user", 0, Some("alice"))], true).await.entries.unwrap();
    assert_eq!(strict.len(), 1);
    let mut values: Vec<(String, f64)> = strict[0].values.iter().map(|v| (v.key.to_string(), v.value)).collect();
    values.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(values, vec![("consumer_byte_rate".to_string(), 4096.0), ("producer_byte_rate".to_string(), 1024.0)]);
    let default_client = describe(&mut c, vec![component("client-id", 1, None)], false).await.entries.unwrap();
    assert_eq!(default_client[0].entity.iter().find(|e| e.entity_type.as_str() == "client-id").unwrap().entity_name, None, "the <default> entity has a null name");

    let bad = describe(&mut c, vec![component("user", 0, None)], false).await;
    assert_eq!((bad.error_code, bad.entries.is_none()), (42, true));
    assert_eq!(bad.error_message.as_deref(), Some("Request specified MATCH_TYPE_EXACT, but set match string to null."));
    assert_eq!(describe(&mut c, vec![component("group", 2, None)], false).await.error_code, 35, "an unknown entity type");

    assert_eq!(alter(&mut c, vec![set(&[("user", Some("alice"))], &[("producer_byte_rate", None), ("consumer_byte_rate", None)])]).await[0].0, 0);
    assert_eq!(describe(&mut c, vec![component("user", 0, Some("alice"))], true).await.entries.unwrap().len(), 0, "removing every value removes the entity");
    b.stop().await;
}

#[tokio::test]
async fn a_producer_over_its_byte_rate_is_told_its_throttle_time_and_muted_for_it() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "quota-produce").await;
    // The wire tests' client id; 20 KB/s measured over 10 s lets about 200 KB through at once.
    assert_eq!(alter(&mut c, vec![set(&[("client-id", Some("wire-test"))], &[("producer_byte_rate", Some(20_000.0))])]).await[0].0, 0);
    let batch = big_batch(100, 1000);
    let first = c.send(&produce_request("quota-produce", batch.clone()), 9).await;
    assert_eq!((first.responses[0].partition_responses[0].error_code, first.throttle_time_ms), (0, 0), "100 KB is within the window's allowance");
    let second = c.send(&produce_request("quota-produce", batch.clone()), 9).await;
    assert_eq!(second.responses[0].partition_responses[0].error_code, 0, "a throttled produce is still appended");
    // About 200 KB over 10 s at 20 KB/s: (20 - 20) / 20 * 10 s = 0 or a few ms; the third is over.
    let third = c.send(&produce_request("quota-produce", batch.clone()), 9).await;
    let throttle = third.throttle_time_ms.max(second.throttle_time_ms);
    assert!(throttle >= 4000, "about (30 KB/s - 20 KB/s) / 20 KB/s * 10 s = 5 s of throttle, got {throttle} ms");
    // The connection reads nothing during the throttle time.
    let started = Instant::now();
    let resp = c.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(resp.error_code, 0);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(third.throttle_time_ms as u64 * 9 / 10), "muted for the throttle time: waited {waited:?} for {} ms", third.throttle_time_ms);
    // Another client id has no quota.
    let mut other = Client::connect(b.addr).await;
    let frame = {
        use bytes::BufMut;
        let header = RequestHeader::default().with_request_api_key(0).with_request_api_version(9).with_correlation_id(1).with_client_id(Some(s("unlimited")));
        let mut body = BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&header, &mut body, 2).unwrap();
        kafka_protocol::protocol::Encodable::encode(&produce_request("quota-produce", batch.clone()), &mut body, 9).unwrap();
        let mut f = BytesMut::new();
        f.put_i32(body.len() as i32);
        f.extend_from_slice(&body);
        f
    };
    for _ in 0..3 {
        other.send_raw(&frame).await;
        let mut resp = other.read_frame().await.expect("an answer");
        let _ = kafka_protocol::protocol::Decodable::decode(&mut resp, 1).map(|_: ResponseHeader| ()).unwrap();
        let p: ProduceResponse = kafka_protocol::protocol::Decodable::decode(&mut resp, 9).unwrap();
        assert_eq!(p.throttle_time_ms, 0, "a client id without a quota is never throttled");
    }
    b.stop().await;
}

#[tokio::test]
async fn a_consumer_over_its_byte_rate_gets_an_empty_throttled_fetch_and_is_muted_for_the_throttle_time() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "quota-fetch").await;
    for _ in 0..4 {
        let r = c.send(&produce_request("quota-fetch", big_batch(50, 1000)), 9).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    // 10 KB/s over 10 s: a fetch carries at most 100 KB (Kafka's cap), here one 50 KB batch or two.
    assert_eq!(alter(&mut c, vec![set(&[("client-id", Some("wire-test"))], &[("consumer_byte_rate", Some(10_000.0))])]).await[0].0, 0);
    let mut offset = 0;
    let mut throttled = None;
    for _ in 0..4 {
        let resp = c.send(&fetch_request("quota-fetch", offset), 12).await;
        if resp.throttle_time_ms > 0 {
            assert!(resp.responses.is_empty(), "a throttled fetch carries no records");
            throttled = Some(resp.throttle_time_ms);
            break;
        }
        let records = resp.responses[0].partitions[0].records.clone().unwrap_or_default();
        assert!(!records.is_empty() && records.len() <= 110_000, "each fetch is capped near the window's allowance: {} bytes", records.len());
        let mut bytes = records;
        while !bytes.is_empty() {
            let batch = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
            offset = batch.records.last().unwrap().offset + 1;
        }
    }
    let throttle = throttled.expect("the consumer went over 10 KB/s");
    assert!(offset > 0 && offset < 200, "some records came before the throttle, not all: {offset}");
    // The connection reads nothing more until the throttle time is over.
    let started = Instant::now();
    assert_eq!(c.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(throttle as u64 * 9 / 10), "muted for the throttle time: waited {waited:?} for {throttle} ms");
    b.stop().await;
}

#[tokio::test]
async fn a_client_over_its_request_percentage_is_told_its_throttle_time_and_muted_for_it() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // 0.01 % of a thread measured over at least 10 s: 1 ms of handling time in all.
    assert_eq!(alter(&mut c, vec![set(&[("client-id", Some("wire-test"))], &[("request_percentage", Some(0.01))])]).await[0].0, 0);
    let mut throttle = 0;
    for _ in 0..5000 {
        let resp = c.send(&MetadataRequest::default().with_topics(None), 12).await;
        if resp.throttle_time_ms > 0 {
            throttle = resp.throttle_time_ms;
            break;
        }
    }
    assert!(throttle > 0 && throttle <= 1000, "throttled, at most one quota window: {throttle} ms");
    let started = Instant::now();
    let resp = c.send(&ApiVersionsRequest::default(), 3).await;
    let waited = started.elapsed();
    assert_eq!(resp.error_code, 0);
    assert!(waited >= Duration::from_millis(throttle as u64 * 9 / 10), "muted for the throttle time: waited {waited:?} for {throttle} ms");
    assert!(resp.throttle_time_ms > 0, "ApiVersions is not exempt, as in Kafka: {}", resp.throttle_time_ms);
    b.stop().await;
}

fn creatable(name: &str, partitions: i32) -> create_topics_request::CreatableTopic {
    create_topics_request::CreatableTopic::default().with_name(TopicName(s(name))).with_num_partitions(partitions).with_replication_factor(1)
}

#[tokio::test]
async fn create_topics_over_controller_mutation_rate_gets_throttling_quota_exceeded_from_v6_and_is_throttled_before() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // 1 partition/s: a full bucket holds 11 windows of 1 s, 11 partitions.
    assert_eq!(alter(&mut c, vec![set(&[("client-id", Some("wire-test"))], &[("controller_mutation_rate", Some(1.0))])]).await[0].0, 0);
    let create = |topics: Vec<create_topics_request::CreatableTopic>| CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(5000);
    let first = c.send(&create(vec![creatable("m1", 10)]), 7).await;
    assert_eq!((first.topics[0].error_code, first.throttle_time_ms), (0, 0));
    // 1 left: 2 taken although it goes below zero, and not throttled yet (Kafka's strict quota).
    let second = c.send(&create(vec![creatable("m2", 2)]), 7).await;
    assert_eq!((second.topics[0].error_code, second.throttle_time_ms), (0, 0));
    let third = c.send(&create(vec![creatable("m3", 1), creatable("m4", 1)]), 7).await;
    for t in &third.topics {
        assert_eq!(t.error_code, 89, "THROTTLING_QUOTA_EXCEEDED for {}", t.name.0.as_str());
        assert_eq!(t.error_message.as_deref(), Some("The throttling quota has been exceeded."));
    }
    assert!(third.throttle_time_ms > 500 && third.throttle_time_ms <= 1000, "1 partition below zero at 1/s: {} ms", third.throttle_time_ms);
    // v5 and older are never refused: created, then throttled (another connection: this one is muted).
    let mut old = b.client().await;
    let v5 = old.send(&create(vec![creatable("m5", 3)]), 5).await;
    assert_eq!(v5.topics[0].error_code, 0, "created");
    assert!(v5.throttle_time_ms > 0, "and throttled after: {} ms", v5.throttle_time_ms);
    // DeleteTopics v5+ is strict too.
    let mut other = b.client().await;
    let del = other.send(&DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("m1"))]).with_timeout_ms(5000), 5).await;
    assert_eq!(del.responses[0].error_code, 89, "deleting is charged to the same bucket");
    assert!(del.throttle_time_ms > 0);
    b.stop().await;
}

/// Opens a connection and asks ApiVersions: Some(time to the answer), None when the broker closed
/// the connection instead (with the time it took).
async fn connect_and_ask(addr: std::net::SocketAddr) -> (Option<Duration>, Duration) {
    let started = Instant::now();
    let mut c = Client::connect(addr).await;
    let frame = c.encode_request(&ApiVersionsRequest::default(), 3);
    c.send_raw(&frame).await;
    let answered = c.read_frame().await.is_some();
    (answered.then(|| started.elapsed()), started.elapsed())
}

#[tokio::test]
async fn connections_over_an_address_connection_creation_rate_are_closed_after_the_throttle_time() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let results = alter(
        &mut c,
        vec![
            set(&[("ip", Some("127.0.0.1"))], &[("connection_creation_rate", Some(1.0))]),
            set(&[("ip", None)], &[("connection_creation_rate", Some(100.0))]),
            set(&[("ip", Some("127.0.0.2"))], &[("producer_byte_rate", Some(1.0))]),
        ],
    )
    .await;
    assert_eq!((results[0].0, results[1].0), (0, 0));
    assert_eq!(results[2], (42, Some("Invalid configuration key producer_byte_rate".into())));
    let ips = describe(&mut c, vec![component("ip", 2, None)], false).await.entries.unwrap();
    assert_eq!(ips.len(), 2, "the address and the <default> address");
    // 1 per second over at least 10 s: 10 connections, then the 11th is over.
    for i in 0..10 {
        let (answered, _) = connect_and_ask(b.addr).await;
        assert!(answered.is_some(), "connection {i} is within the quota");
    }
    let (answered, took) = connect_and_ask(b.addr).await;
    assert!(answered.is_none(), "the 11th connection is closed unanswered");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(5), "closed after the throttle time (about 1 s, at most one window): {took:?}");
    // The connection opened before the quota is not affected.
    assert_eq!(c.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn over_max_connection_creation_rate_accepting_waits() {
    let b = TestBroker::start(&["max.connection.creation.rate=2"]).await;
    // 2 per second over at least 10 s: 20 connections at once, then accepting waits.
    for i in 0..20 {
        let (answered, _) = connect_and_ask(b.addr).await;
        assert!(answered.is_some_and(|t| t < Duration::from_millis(300)), "connection {i} is accepted at once: {answered:?}");
    }
    let (answered, _) = connect_and_ask(b.addr).await;
    let waited = answered.expect("a delayed connection is still served");
    assert!(waited >= Duration::from_millis(400), "(2.1/s - 2/s) / 2/s * 10 s = 500 ms of wait: {waited:?}");
    b.stop().await;
}

/// max.connection.creation.rate is a dynamic broker config, as in Kafka: set by AlterConfigs on
/// the broker (cluster default, resource ""), it holds new connections back at once; a bad value
/// is refused; deleting it lifts the limit.
#[tokio::test]
async fn max_connection_creation_rate_changes_at_run_time() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let set = |value: Option<&str>| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(""))
            .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                .with_name(s("max.connection.creation.rate"))
                .with_config_operation(if value.is_some() { 0 } else { 1 })
                .with_value(value.map(s))])])
    };
    let r = c.send(&set(Some("-1")), 1).await;
    assert_eq!(r.responses[0].error_code, 42, "INVALID_REQUEST for a negative rate: {:?}", r.responses[0].error_message);
    // Unlimited so far: 30 connections at once are all answered at once.
    for i in 0..30 {
        let (answered, _) = connect_and_ask(b.addr).await;
        assert!(answered.is_some_and(|t| t < Duration::from_millis(300)), "connection {i} before the limit: {answered:?}");
    }
    let r = c.send(&set(Some("2")), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    // The 30 connections made before still count in the 10 s window: the next one waits.
    let (answered, _) = connect_and_ask(b.addr).await;
    let waited = answered.expect("a held-back connection is still served");
    assert!(waited >= Duration::from_millis(400), "held back under the new limit: {waited:?}");
    let r = c.send(&set(None), 1).await;
    assert_eq!(r.responses[0].error_code, 0);
    for i in 0..5 {
        let (answered, _) = connect_and_ask(b.addr).await;
        assert!(answered.is_some_and(|t| t < Duration::from_millis(300)), "connection {i} after the limit was deleted: {answered:?}");
    }
    b.stop().await;
}
