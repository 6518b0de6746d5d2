//! Wire tests of topic settings doing what Kafka's do: compression.type makes the broker store
//! batches in the topic's codec, and a bad value is refused with INVALID_CONFIG (40) in Kafka's
//! words, whichever API carries it.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create_topic(c: &mut Client, topic: &str, configs: &[(&str, &str)]) -> create_topics_response::CreatableTopicResult {
    let t = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(s(topic)))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(configs.iter().map(|(k, v)| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)))).collect());
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    resp.topics.into_iter().next().unwrap()
}

async fn produce(c: &mut Client, topic: &str, records: Bytes) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(TopicName(s(topic)))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].clone()
}

/// The stored bytes from `offset` (Fetch v12, by name).
async fn fetch(c: &mut Client, topic: &str, offset: i64) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ])]);
    let p = c.send(&req, 12).await.responses[0].partitions[0].clone();
    assert_eq!(p.error_code, 0);
    p.records.unwrap_or_default()
}

fn attributes(batch: &[u8]) -> i16 {
    i16::from_be_bytes([batch[21], batch[22]])
}

/// An idempotent producer's batch of `n` records in `compression`.
fn producer_batch_in(n: usize, compression: Compression, first_seq: i32) -> Bytes {
    let recs: Vec<_> = (0..n)
        .map(|i| {
            let mut r = record(i as i64, 1_000 + i as i64, &format!("k{i}"), format!("value-{i}-{}", "x".repeat(i % 50)).as_bytes());
            r.producer_id = 77;
            r.producer_epoch = 2;
            r.sequence = first_seq + i as i32;
            r
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression }).unwrap();
    buf.freeze()
}

fn contents(mut bytes: Bytes) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
    let mut out = vec![];
    while !bytes.is_empty() {
        out.extend(RecordBatchDecoder::decode(&mut bytes).unwrap().records.into_iter().map(|r| (r.offset, r.timestamp, r.key, r.value)));
    }
    out
}

#[tokio::test]
async fn lz4_produced_to_a_zstd_topic_is_stored_and_fetched_as_zstd_with_the_same_records() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "z", &[("compression.type", "zstd"), ("compression.zstd.level", "7")]).await.error_code, 0);
    let sent = producer_batch_in(200, Compression::Lz4, 0);
    assert_eq!(attributes(&sent) & 7, 3, "sent as lz4");
    let first = produce(&mut c, "z", sent.clone()).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let stored = fetch(&mut c, "z", 0).await;
    assert_eq!(attributes(&stored) & 7, 4, "stored as zstd");
    assert_eq!(contents(stored.clone()), contents(sent.clone()), "the same records at the same offsets");
    // The producer's fields are kept: its retry is a duplicate answered with the first offset.
    let h = &stored[..61];
    assert_eq!(i64::from_be_bytes(h[43..51].try_into().unwrap()), 77);
    assert_eq!(i32::from_be_bytes(h[53..57].try_into().unwrap()), 0, "base sequence");
    let retry = produce(&mut c, "z", sent).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0), "dedup by producer id and sequence");
    // A zstd batch is kept as sent (no rewrite), the next sequence goes on.
    let zstd = producer_batch_in(3, Compression::Zstd, 200);
    assert_eq!(produce(&mut c, "z", zstd.clone()).await.base_offset, 200);
    let tail = fetch(&mut c, "z", 200).await;
    assert_eq!(&tail[16..], &zstd[16..], "a batch already in the topic's codec is stored byte for byte (but its base offset and leader epoch)");
    // The producer default keeps every codec.
    assert_eq!(create_topic(&mut c, "p", &[]).await.error_code, 0);
    let lz4 = producer_batch_in(5, Compression::Lz4, 0);
    produce(&mut c, "p", lz4.clone()).await;
    assert_eq!(attributes(&fetch(&mut c, "p", 0).await) & 7, 3);
    b.stop().await;
}

#[tokio::test]
async fn a_zstd_batch_needs_produce_v7_as_in_kafka() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "z7", &[]).await.error_code, 0);
    assert_eq!(create_topic(&mut c, "zt", &[("compression.type", "zstd")]).await.error_code, 0);
    let produce_at = |topic: &str, records: Bytes| {
        ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))])])
    };
    let zstd = producer_batch_in(3, Compression::Zstd, 0);
    for version in [3, 6] {
        for topic in ["z7", "zt"] {
            let r = c.send(&produce_at(topic, zstd.clone()), version).await.responses[0].partition_responses[0].clone();
            assert_eq!(r.error_code, E::UnsupportedCompressionType.code(), "v{version} to {topic}: whatever the topic's codec");
        }
    }
    // Nothing was appended: the same batch is the first one at v7.
    let r = c.send(&produce_at("z7", zstd), 7).await.responses[0].partition_responses[0].clone();
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    // Other codecs go in any served version; a zstd topic rewrites them into zstd.
    let lz4 = producer_batch_in(2, Compression::Lz4, 0);
    let r = c.send(&produce_at("zt", lz4), 3).await.responses[0].partition_responses[0].clone();
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    assert_eq!(attributes(&fetch(&mut c, "zt", 0).await) & 7, 4);
    b.stop().await;
}

#[tokio::test]
async fn the_broker_default_compression_type_applies_and_a_rebuilt_batch_over_max_message_bytes_is_too_large() {
    let b = TestBroker::start(&["compression.type=gzip"]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "g", &[]).await.error_code, 0);
    produce(&mut c, "g", batch(10, 1_000, Compression::Snappy)).await;
    assert_eq!(attributes(&fetch(&mut c, "g", 0).await) & 7, 1, "the broker's compression.type is the topic default");
    // 40 KB of zeros as zstd is tiny; uncompressed it passes max.message.bytes.
    assert_eq!(create_topic(&mut c, "u", &[("compression.type", "uncompressed"), ("max.message.bytes", "20000")]).await.error_code, 0);
    let zeros = vec![0u8; 1_000];
    let recs: Vec<_> = (0..40).map(|i| record(i, 1_000, "k", &zeros)).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::Zstd }).unwrap();
    assert!(buf.len() < 20_000);
    let r = produce(&mut c, "u", buf.freeze()).await;
    assert_eq!(r.error_code, E::MessageTooLarge.code());
    let small: Vec<_> = (0..10).map(|i| record(i, 1_000, "k", &zeros)).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &small, &RecordEncodeOptions { version: 2, compression: Compression::Zstd }).unwrap();
    assert_eq!(produce(&mut c, "u", buf.freeze()).await.error_code, 0);
    assert_eq!(attributes(&fetch(&mut c, "u", 0).await) & 7, 0, "stored uncompressed");
    b.stop().await;
}

#[tokio::test]
async fn an_invalid_topic_config_is_refused_with_invalid_config_in_kafkas_words() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let r = create_topic(&mut c, "bad", &[("compression.zstd.level", "23")]).await;
    assert_eq!(r.error_code, E::InvalidConfig.code());
    assert_eq!(r.error_message.as_deref(), Some("Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22"));
    let r = create_topic(&mut c, "bad", &[("message.downconversion.enable", "true")]).await;
    assert_eq!((r.error_code, r.error_message.as_deref()), (E::InvalidConfig.code(), Some("Unknown topic config name: message.downconversion.enable")));
    let r = create_topic(&mut c, "bad", &[("remote.storage.enable", "true")]).await;
    assert_eq!(r.error_code, E::InvalidConfig.code());
    // Kafka 4.0's other topic configs are accepted.
    let ok = create_topic(&mut c, "ok", &[("preallocate", "true"), ("unclean.leader.election.enable", "true"), ("segment.jitter.ms", "100"), ("compression.lz4.level", "17")]).await;
    assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
    // IncrementalAlterConfigs and AlterConfigs refuse the same way.
    let inc = IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("ok"))
        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default().with_name(s("compression.type")).with_config_operation(0).with_value(Some(s("foo")))])]);
    let r = c.send(&inc, 1).await.responses[0].clone();
    assert_eq!(r.error_code, E::InvalidConfig.code());
    assert_eq!(r.error_message.as_deref(), Some("Invalid value foo for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"));
    let alter = AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("ok"))
        .with_configs(vec![alter_configs_request::AlterableConfig::default().with_name(s("segment.index.bytes")).with_value(Some(s("3")))])]);
    let r = c.send(&alter, 1).await.responses[0].clone();
    assert_eq!(r.error_code, E::InvalidConfig.code());
    assert_eq!(r.error_message.as_deref(), Some("Invalid value 3 for configuration segment.index.bytes: Value must be at least 4"));
    b.stop().await;
}

/// `log.cleaner.threads` is a dynamic broker config, as in Kafka: a change within half to double
/// the current count is taken (DescribeConfigs shows it), others are refused in Kafka's words.
#[tokio::test]
async fn log_cleaner_threads_change_at_run_time_within_kafkas_bounds() {
    let b = TestBroker::start(&["log.cleaner.threads=2"]).await;
    let mut c = b.client().await;
    // Kafka 4.0's words, as kafka-configs.sh shows them (for 0 it says "/ by zero").
    let wrapped = |why: &str| format!("Invalid value org.apache.kafka.common.config.ConfigException: {why} for configuration Invalid dynamic configuration");
    for (value, refusal) in [
        ("0", wrapped("Log cleaner threads should be at least 1")),
        ("5", wrapped("Log cleaner threads cannot be increased to more than double the current value 2")),
        ("x", "Invalid value x for configuration log.cleaner.threads: Not a number of type INT".to_string()),
    ] {
        let (code, msg) = alter_broker_config(&mut c, "log.cleaner.threads", value, false).await;
        assert_ne!(code, 0, "{value}");
        assert_eq!(msg.as_deref(), Some(refusal.as_str()), "{value}");
    }
    assert_eq!(alter_broker_config(&mut c, "log.cleaner.threads", "4", false).await, (0, None));
    assert_eq!(b.running.as_ref().expect("running").broker.config.log_cleaner_threads().expect("valid"), 4, "applied");
    let (code, msg) = alter_broker_config(&mut c, "log.cleaner.threads", "1", false).await;
    assert_eq!((code != 0, msg), (true, Some(wrapped("Log cleaner threads cannot be reduced to less than half the current value 4"))));
    b.stop().await;
}
