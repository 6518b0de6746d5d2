//! Wire tests: a real broker on 127.0.0.1:0, spoken to with encoded Kafka requests. Each test
//! names the behaviour it proves, including the answers to bad input.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_topic(c: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> create_topics_response::CreatableTopicResult {
    let t = create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    resp.topics.into_iter().next().unwrap()
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])])
}

async fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> produce_response::PartitionProduceResponse {
    let resp = c.send(&produce_req(topic, partition, records, -1), 9).await;
    let p = resp.responses[0].partition_responses[0].clone();
    if p.error_code != 0 {
        eprintln!("produce to {topic}-{partition}: error {} {:?}", p.error_code, p.error_message);
    }
    p
}

fn fetch_req(topic: &str, id: uuid::Uuid, partition: i32, offset: i64, max_wait: i32, min_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(topic)).with_topic_id(id).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ])])
}

async fn fetch(c: &mut Client, topic: &str, partition: i32, offset: i64, version: i16) -> fetch_response::PartitionData {
    let resp = c.send(&fetch_req(topic, uuid::Uuid::nil(), partition, offset, 0, 0), version).await;
    assert_eq!(resp.error_code, 0);
    resp.responses[0].partitions[0].clone()
}

fn decoded_offsets(records: &Bytes) -> Vec<i64> {
    let mut b = records.clone();
    let mut out = vec![];
    while !b.is_empty() {
        let set = RecordBatchDecoder::decode(&mut b).unwrap();
        out.extend(set.records.iter().map(|r| r.offset));
    }
    out
}

#[tokio::test]
async fn api_versions_lists_served_apis_and_answers_unknown_versions_with_ranges() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let resp = c.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
    let join = resp.api_keys.iter().find(|k| k.api_key == ApiKey::JoinGroup as i16).expect("groups are advertised");
    assert_eq!((join.min_version, join.max_version), (2, 9), "Kafka 4.0 serves JoinGroup from v2 (KIP-896)");
    let add = resp.api_keys.iter().find(|k| k.api_key == ApiKey::AddPartitionsToTxn as i16).expect("transactions are advertised");
    assert_eq!((add.min_version, add.max_version), (0, 5));
    // KIP-890 part 2 on a new cluster, as Kafka 4.0 formats one: finalized at 2 (v3 leaves the
    // supported range out, its lowest level being 0).
    let tv = resp.finalized_features.iter().find(|f| f.name.as_str() == "transaction.version").expect("transaction.version");
    assert_eq!((tv.min_version_level, tv.max_version_level), (2, 2));

    // An ApiVersions version from the future: UNSUPPORTED_VERSION plus our ranges, in v0 format.
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(18);
    frame.put_i16(99);
    frame.put_i32(77);
    frame.put_i16(-1);
    c.send_raw(&frame).await;
    let mut resp = c.read_frame().await.unwrap();
    assert_eq!(get_i32(&mut resp), 77);
    let body = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut resp, 0).unwrap();
    assert_eq!(body.error_code, E::UnsupportedVersion.code());
    assert!(!body.api_keys.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn metadata_auto_creates_topics_and_rejects_bad_names() {
    let b = TestBroker::start(&["num.partitions=3"]).await;
    let mut c = b.client().await;
    let req = MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name("auto"))),
        metadata_request::MetadataRequestTopic::default().with_name(Some(name("bad name!"))),
    ]));
    let resp = c.send(&req, 12).await;
    assert_eq!(resp.brokers.len(), 1);
    assert_eq!(resp.brokers[0].port as u16, b.addr.port());
    let auto = &resp.topics[0];
    assert_eq!(auto.error_code, 0);
    assert_eq!(auto.partitions.len(), 3);
    assert!(!auto.topic_id.is_nil());
    assert_eq!(resp.topics[1].error_code, E::InvalidTopicException.code());

    // By id (v10+), and unknown ids.
    let id = auto.topic_id;
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(None).with_topic_id(id),
        metadata_request::MetadataRequestTopic::default().with_name(None).with_topic_id(uuid::Uuid::from_u128(5)),
    ]));
    let resp = c.send(&by_id, 12).await;
    assert_eq!(resp.topics[0].name.as_ref().unwrap().0.as_str(), "auto");
    assert_eq!(resp.topics[1].error_code, E::UnknownTopicId.code());
    b.stop().await;

    let b = TestBroker::start(&["auto.create.topics.enable=false"]).await;
    let mut c = b.client().await;
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name("nope")))]));
    assert_eq!(c.send(&req, 9).await.topics[0].error_code, E::UnknownTopicOrPartition.code());
    b.stop().await;
}

#[tokio::test]
async fn produce_then_fetch_round_trips_at_old_and_new_versions() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let t = create_topic(&mut c, "rt", 2, &[]).await;
    assert_eq!(t.error_code, 0);
    let p = produce(&mut c, "rt", 1, batch(5, 1000, Compression::None)).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let p = produce(&mut c, "rt", 1, batch(3, 2000, Compression::Lz4)).await;
    assert_eq!((p.error_code, p.base_offset), (0, 5));
    for version in [4, 11, 12] {
        let part = fetch(&mut c, "rt", 1, 0, version).await;
        assert_eq!(part.error_code, 0);
        assert_eq!(part.high_watermark, 8);
        assert_eq!(decoded_offsets(part.records.as_ref().unwrap()), (0..8).collect::<Vec<_>>());
    }
    // v13+ names topics by id.
    let resp = c.send(&fetch_req("", t.topic_id, 1, 0, 0, 0), 17).await;
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    assert_eq!(decoded_offsets(part.records.as_ref().unwrap()).len(), 8);
    let resp = c.send(&fetch_req("", uuid::Uuid::from_u128(9), 0, 0, 0, 0), 13).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, E::UnknownTopicId.code());

    // A fetch in the middle of a batch gets the whole batch; at the high watermark, nothing.
    let part = fetch(&mut c, "rt", 1, 6, 12).await;
    assert_eq!(decoded_offsets(part.records.as_ref().unwrap()), vec![5, 6, 7]);
    let part = fetch(&mut c, "rt", 1, 8, 12).await;
    assert!(part.records.as_ref().unwrap().is_empty());
    assert_eq!(part.error_code, 0);
    // Past the log end offset.
    let part = fetch(&mut c, "rt", 1, 9, 12).await;
    assert_eq!(part.error_code, E::OffsetOutOfRange.code());
    b.stop().await;
}

#[tokio::test]
async fn long_poll_fetch_is_woken_by_an_append() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "lp", 1, &[]).await;
    let mut consumer = b.client().await;
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let resp = consumer.send(&fetch_req("lp", uuid::Uuid::nil(), 0, 0, 10_000, 1), 12).await;
        (started.elapsed(), resp)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    produce(&mut c, "lp", 0, batch(1, 1, Compression::None)).await;
    let (elapsed, resp) = waiting.await.unwrap();
    assert!(elapsed < std::time::Duration::from_secs(5), "woken by the append, not the timeout: {elapsed:?}");
    assert_eq!(decoded_offsets(resp.responses[0].partitions[0].records.as_ref().unwrap()), vec![0]);

    // With no data the fetch waits max_wait_ms and answers empty.
    let started = std::time::Instant::now();
    let resp = c.send(&fetch_req("lp", uuid::Uuid::nil(), 0, 1, 300, 1), 12).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert!(resp.responses[0].partitions[0].records.as_ref().unwrap().is_empty());
    b.stop().await;
}

#[tokio::test]
async fn parked_fetches_hold_no_handler_thread_and_only_their_partitions_append_wakes_them() {
    // One request handler thread: if a parked fetch held it, the produce below could not run.
    let b = TestBroker::start(&["num.io.threads=1", "queued.max.requests=1"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "pk", 2, &[]).await;
    let mut parked = Vec::new();
    for partition in [0, 1, 1, 1] {
        let mut consumer = b.client().await;
        parked.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let resp = consumer.send(&fetch_req("pk", uuid::Uuid::nil(), partition, 0, 4_000, 1), 12).await;
            (started.elapsed(), resp)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    produce(&mut c, "pk", 0, batch(2, 1, Compression::None)).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the produce ran while four fetches were parked");
    let mut parked = parked.into_iter();
    let (elapsed, resp) = parked.next().unwrap().await.unwrap();
    assert!(elapsed < std::time::Duration::from_millis(3_500), "partition 0's fetch woken by its append: {elapsed:?}");
    assert_eq!(decoded_offsets(resp.responses[0].partitions[0].records.as_ref().unwrap()), vec![0, 1]);
    for other in parked {
        assert!(!other.is_finished(), "partition 1's fetches stay parked");
        other.abort();
    }
    b.stop().await;
}

#[tokio::test]
async fn bad_records_get_kafkas_error_codes_per_partition() {
    let b = TestBroker::start(&["message.max.bytes=2000"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "bad", 1, &[]).await;

    // Wrong CRC.
    let mut corrupt = BytesMut::from(&batch(3, 1, Compression::None)[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(produce(&mut c, "bad", 0, corrupt.freeze()).await.error_code, E::CorruptMessage.code());

    // Larger than message.max.bytes.
    let big: Vec<u8> = (0..5000).map(|i| (i * 7) as u8).collect();
    let mut buf = BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut buf,
        &[record(0, 1, "k", &big)],
        &kafka_protocol::records::RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    assert_eq!(produce(&mut c, "bad", 0, buf.freeze()).await.error_code, E::MessageTooLarge.code());

    // Magic < 2 (a v1 message set): produce v3+ carries v2 batches only.
    let mut v1 = BytesMut::from(&batch(1, 1, Compression::None)[..]);
    v1[16] = 1;
    assert_eq!(produce(&mut c, "bad", 0, v1.freeze()).await.error_code, E::InvalidRecord.code());

    // Unknown partition and unknown topic.
    assert_eq!(produce(&mut c, "bad", 7, batch(1, 1, Compression::None)).await.error_code, E::UnknownTopicOrPartition.code());
    assert_eq!(produce(&mut c, "nosuch", 0, batch(1, 1, Compression::None)).await.error_code, E::UnknownTopicOrPartition.code());

    // Invalid acks.
    let resp = c.send(&produce_req("bad", 0, batch(1, 1, Compression::None), 2), 9).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, E::InvalidRequiredAcks.code());

    // Nothing of that reached the log.
    let part = fetch(&mut c, "bad", 0, 0, 12).await;
    assert_eq!(part.high_watermark, 0);

    // acks=0: no response; the next request is answered normally.
    let frame = c.encode_request(&produce_req("bad", 0, batch(2, 1, Compression::None), 0), 9);
    c.send_raw(&frame).await;
    let md = c.send(&MetadataRequest::default().with_topics(Some(vec![])), 12).await;
    assert!(md.topics.is_empty());
    let part = fetch(&mut c, "bad", 0, 0, 12).await;
    assert_eq!(part.high_watermark, 2);

    // acks=0 to an unknown partition: the broker closes the connection, as Kafka does.
    let frame = c.encode_request(&produce_req("bad", 9, batch(1, 1, Compression::None), 0), 9);
    c.send_raw(&frame).await;
    assert!(c.is_closed().await);
    b.stop().await;
}

/// What the reference Kafka 4.0 answered the same requests with (compat-tests/kafka-diff).
#[tokio::test]
async fn a_partitions_records_are_framed_as_kafka_frames_them() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "framed", 1, &[]).await;
    let one = batch(2, now_ms(), Compression::None);
    let joined = |parts: &[&[u8]]| Bytes::from(parts.concat());
    let code = |p: &produce_response::PartitionProduceResponse| (p.error_code, p.base_offset, p.log_start_offset);

    // Two whole batches, a batch cut short: INVALID_RECORD before the log, log start not named.
    assert_eq!(code(&produce(&mut c, "framed", 0, joined(&[&one, &one])).await), (E::InvalidRecord.code(), -1, -1));
    assert_eq!(code(&produce(&mut c, "framed", 0, one.slice(..one.len() - 10)).await), (E::InvalidRecord.code(), -1, -1));
    // A length below any batch's: CORRUPT_MESSAGE, in Kafka's words.
    let mut tiny = BytesMut::from(&one[..]);
    tiny[8..12].copy_from_slice(&5i32.to_be_bytes());
    let p = produce(&mut c, "framed", 0, tiny.freeze()).await;
    assert_eq!(p.error_code, E::CorruptMessage.code());
    assert_eq!(p.error_message.as_deref(), Some("Record size 5 is less than the minimum record overhead (14)"));
    // A whole batch followed by bytes that are no whole batch: the batch is appended, the rest
    // dropped, as Kafka trims them.
    assert_eq!(code(&produce(&mut c, "framed", 0, joined(&[&one, &[0u8; 5]])).await), (0, 0, 0));
    assert_eq!(code(&produce(&mut c, "framed", 0, joined(&[&one, &one[..40]])).await), (0, 2, 0));
    let part = fetch(&mut c, "framed", 0, 0, 12).await;
    assert_eq!(part.high_watermark, 4);
    let mut records = part.records.clone().unwrap();
    let batches = RecordBatchDecoder::decode_all(&mut records).expect("two whole batches");
    assert_eq!(batches.iter().map(|s| s.records.len()).collect::<Vec<_>>(), vec![2, 2]);

    // A refusal of the log names the partition's log start offset (here after DeleteRecords).
    let deleted = c
        .send(&DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name("framed"))
            .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(1)])]), 2)
        .await;
    assert_eq!(deleted.topics[0].partitions[0].low_watermark, 1);
    let late = produce(&mut c, "framed", 0, batch(1, now_ms() + 7_200_000, Compression::None)).await;
    assert_eq!((late.error_code, late.log_start_offset), (E::InvalidTimestamp.code(), 1));

    // A fetch past the end: the error alone, every offset -1 and no aborted list, as Kafka.
    let out = fetch(&mut c, "framed", 0, 100, 12).await;
    assert_eq!((out.error_code, out.high_watermark, out.last_stable_offset, out.log_start_offset), (E::OffsetOutOfRange.code(), -1, -1, -1));
    assert!(out.aborted_transactions.is_none());
    b.stop().await;
}

#[tokio::test]
async fn a_partition_named_twice_is_appended_once_with_its_last_entry() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "twice", 2, &[]).await;
    let entry = |p: i32, n: usize| produce_request::PartitionProduceData::default().with_index(p).with_records(Some(batch(n, now_ms(), Compression::None)));
    let topic = |parts| produce_request::TopicProduceData::default().with_name(name("twice")).with_partition_data(parts);
    // Partition 0 twice in one topic entry, partition 1 in two entries of the topic.
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![topic(vec![entry(0, 2), entry(0, 3), entry(1, 1)]), topic(vec![entry(1, 4)])]);
    let resp = c.send(&req, 9).await;
    assert_eq!(resp.responses.len(), 1, "one answer per topic");
    let answered: Vec<(i32, i16, i64)> = resp.responses[0].partition_responses.iter().map(|p| (p.index, p.error_code, p.base_offset)).collect();
    assert_eq!(answered, vec![(0, 0, 0), (1, 0, 0)]);
    assert_eq!(fetch(&mut c, "twice", 0, 0, 12).await.high_watermark, 3);
    assert_eq!(fetch(&mut c, "twice", 1, 0, 12).await.high_watermark, 4);
    b.stop().await;
}

#[tokio::test]
async fn transactional_records_without_a_transactional_id_are_refused_for_the_whole_request() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "txn-less", 2, &[]).await;
    let pid = c.send(&InitProducerIdRequest::default().with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1), 4).await;
    let txn = producer_batch(vec![record(0, now_ms(), "k", b"v")], (pid.producer_id.0, pid.producer_epoch, 0), true);
    let req = ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name("txn-less"))
        .with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(txn)),
            produce_request::PartitionProduceData::default().with_index(1).with_records(Some(batch(1, now_ms(), Compression::None))),
        ])]);
    let resp = c.send(&req, 9).await;
    let codes: Vec<i16> = resp.responses[0].partition_responses.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec![E::TransactionalIdAuthorizationFailed.code(); 2]);
    assert_eq!(fetch(&mut c, "txn-less", 1, 0, 12).await.high_watermark, 0, "the plain partition was not appended either");
    b.stop().await;
}

#[tokio::test]
async fn unknown_ids_empty_names_and_duplicates_get_kafkas_answers() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // A topic named by an unknown id (its name field empty, not null): UNKNOWN_TOPIC_ID, no name.
    let md = c.send(&MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(""))).with_topic_id(uuid::Uuid::from_u128(42))])), 12).await;
    assert_eq!((md.topics[0].error_code, md.topics[0].name.is_none()), (E::UnknownTopicId.code(), true));
    // A config describe of a topic no topic can be: INVALID_TOPIC_EXCEPTION.
    let dc = c
        .send(&DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str(""))]), 4)
        .await;
    assert_eq!(dc.results[0].error_code, E::InvalidTopicException.code());
    // LeaveGroup of a group that does not exist: each member unknown, the request itself fine.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("no-such-group")))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(StrBytes::from_static_str("m"))]);
    let r = c.send(&leave, 5).await;
    assert_eq!((r.error_code, r.members.iter().map(|m| m.error_code).collect::<Vec<_>>()), (0, vec![E::UnknownMemberId.code()]));
    // A topic named twice in one CreateTopics: answered once, created never.
    let t = create_topics_request::CreatableTopic::default().with_name(name("dup")).with_num_partitions(1).with_replication_factor(1);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t.clone(), t]).with_timeout_ms(5000), 7).await;
    assert_eq!(r.topics.len(), 1);
    assert_eq!((r.topics[0].error_code, r.topics[0].error_message.as_deref()), (E::InvalidRequest.code(), Some("Duplicate topic name.")));
    b.stop().await;
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let b = TestBroker::start(&["socket.request.max.bytes=1000000"]).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("oversized length", 2_000_000i32.to_be_bytes().to_vec()),
        ("too short for a header", { let mut v = 3i32.to_be_bytes().to_vec(); v.extend([0, 1, 2]); v }),
        ("unknown api key", { let mut v = 8i32.to_be_bytes().to_vec(); v.extend(1234i16.to_be_bytes()); v.extend([0, 0, 0, 0, 0, 1]); v }),
        ("unsupported version of a served api", { let mut v = 10i32.to_be_bytes().to_vec(); v.extend(3i16.to_be_bytes()); v.extend(99i16.to_be_bytes()); v.extend([0, 0, 0, 1, 0xff, 0xff]); v }),
        ("garbage body", { let mut v = 20i32.to_be_bytes().to_vec(); v.extend(3i16.to_be_bytes()); v.extend(12i16.to_be_bytes()); v.extend([0xff; 16]); v }),
        // Metadata v1 whose topic array claims 2^31-1 entries: must not allocate for them.
        ("huge array count", { let mut v = 14i32.to_be_bytes().to_vec(); v.extend(3i16.to_be_bytes()); v.extend(1i16.to_be_bytes()); v.extend([0, 0, 0, 1, 0xff, 0xff]); v.extend(i32::MAX.to_be_bytes()); v }),
    ];
    let mut healthy = b.client().await;
    for (what, bytes) in cases {
        let mut c = b.client().await;
        c.send_raw(&bytes).await;
        assert!(c.is_closed().await, "{what}: connection should be closed");
        let resp = healthy.send(&ApiVersionsRequest::default(), 3).await;
        assert_eq!(resp.error_code, 0, "{what}: other connections keep working");
    }
    // A truncated body followed by EOF does not hang the broker.
    let mut c = b.client().await;
    c.send_raw(&100i32.to_be_bytes()).await;
    c.send_raw(&[0, 18, 0, 0]).await;
    drop(c);
    assert_eq!(healthy.send(&ApiVersionsRequest::default(), 0).await.error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_a_bad_frame_after_them_closes_only_after_they_are() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "pipe", 1, &[]).await;
    // Five produces, a fetch of all of them and an ApiVersions in one write, then a frame with
    // a negative length: every request before the bad frame is answered, in order, then the
    // connection closes.
    let mut bytes = BytesMut::new();
    let produce_req = |i: i64| {
        ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("pipe")))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch(2, i, Compression::None)))])])
    };
    for i in 0..5 {
        bytes.extend_from_slice(&c.encode_request(&produce_req(i), 9));
    }
    bytes.extend_from_slice(&c.encode_request(&fetch_req("pipe", uuid::Uuid::nil(), 0, 0, 0, 1), 12));
    bytes.extend_from_slice(&c.encode_request(&ApiVersionsRequest::default(), 0));
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    c.send_raw(&bytes).await;
    for corr in 1..=7 {
        let mut frame = c.read_frame().await.unwrap_or_else(|| panic!("response {corr} before the close"));
        let header_version = match corr {
            1..=5 => ApiKey::Produce.response_header_version(9),
            6 => ApiKey::Fetch.response_header_version(12),
            _ => 0,
        };
        let header = ResponseHeader::decode(&mut frame, header_version).expect("header");
        // Correlation ids 1-7 continue after create_topic's 1: the client counts from there.
        assert_eq!(header.correlation_id, corr + 1, "responses in request order");
        match corr {
            1..=5 => {
                let r = ProduceResponse::decode(&mut frame, 9).expect("produce response");
                assert_eq!(r.responses[0].partition_responses[0].base_offset, 2 * (corr as i64 - 1), "appended in request order");
            }
            6 => {
                let r = FetchResponse::decode(&mut frame, 12).expect("fetch response");
                let records = r.responses[0].partitions[0].records.as_ref().expect("records");
                assert_eq!(decoded_offsets(records), (0..10).collect::<Vec<_>>(), "the fetch saw every produce before it");
            }
            _ => assert_eq!(ApiVersionsResponse::decode(&mut frame, 0).expect("api versions").error_code, 0),
        }
    }
    assert!(c.is_closed().await, "the bad frame closes the connection");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_of_any_size_append_in_request_order() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "order", 2, &[]).await;
    let pid = c.send(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1), 4).await;
    let (id, epoch) = (pid.producer_id.0, pid.producer_epoch);
    // 40 idempotent produces in one write, small (tried on the connection's async worker) and
    // large (on a handler thread, while the next frame is read) in turn, some to both
    // partitions: an append made ahead of the one before it would be refused as out of order.
    // Each answer comes in order, with the offsets of the request order.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let value = vec![7u8; 1024];
    let mut seqs = [0i32; 2];
    let mut expected = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..40 {
        let n = if i % 2 == 0 { 100 } else { 2 };
        let partitions: &[i32] = if i % 3 == 0 { &[0, 1] } else { &[(i % 2) as i32] };
        let data = partitions
            .iter()
            .map(|&p| {
                let recs = (0..n).map(|r| record(r as i64, now_ms, "k", &value)).collect();
                let records = producer_batch(recs, (id, epoch, seqs[p as usize]), false);
                expected.push((i, p, seqs[p as usize] as i64));
                seqs[p as usize] += n as i32;
                produce_request::PartitionProduceData::default().with_index(p).with_records(Some(records))
            })
            .collect();
        let req = ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default().with_name(name("order")).with_partition_data(data)]);
        bytes.extend_from_slice(&c.encode_request(&req, 9));
    }
    c.send_raw(&bytes).await;
    let first_corr = c.correlation_id() - 39;
    let mut answered = Vec::new();
    for i in 0..40 {
        let mut frame = c.read_frame().await.expect("an answer for every request");
        let header = ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9)).expect("header");
        assert_eq!(header.correlation_id, first_corr + i, "in request order");
        let r = ProduceResponse::decode(&mut frame, 9).expect("produce response");
        for p in &r.responses[0].partition_responses {
            assert_eq!(p.error_code, 0, "request {i} partition {}: {:?}", p.index, p.error_message);
            answered.push((i, p.index, p.base_offset));
        }
    }
    answered.sort();
    expected.sort();
    assert_eq!(answered, expected, "offsets in request order: each partition's offsets follow its sequences");
    assert_eq!(fetch(&mut c, "order", 0, 0, 12).await.high_watermark, seqs[0] as i64);
    assert_eq!(fetch(&mut c, "order", 1, 0, 12).await.high_watermark, seqs[1] as i64);
    b.stop().await;
}

#[tokio::test]
async fn idle_connections_close_after_max_idle_ms_but_never_during_a_request() {
    let b = TestBroker::start(&["connections.max.idle.ms=300"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "quiet", 1, &[]).await;
    // A long poll three times the idle limit is a request in flight, not idleness.
    let started = std::time::Instant::now();
    let resp = c.send(&fetch_req("quiet", uuid::Uuid::nil(), 0, 0, 900, 1), 12).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(850), "waited out max_wait_ms");
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    // Then nothing: closed once the idle limit has passed since that answer.
    let answered = std::time::Instant::now();
    assert!(c.is_closed().await, "an idle connection is closed");
    let idle = answered.elapsed();
    assert!(idle >= std::time::Duration::from_millis(250), "not before connections.max.idle.ms: {idle:?}");
    // A connection that keeps talking stays open.
    let mut busy = b.client().await;
    for _ in 0..6 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(busy.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    }
    b.stop().await;
}

#[tokio::test]
async fn idempotent_producer_duplicates_are_deduplicated_and_gaps_refused() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "idem", 1, &[]).await;
    let pid = c.send(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1), 4).await;
    assert_eq!(pid.error_code, 0);
    let (id, epoch) = (pid.producer_id.0, pid.producer_epoch);
    assert!(id >= 0);
    let first = produce(&mut c, "idem", 0, idempotent_batch(3, id, epoch, 0)).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let second = produce(&mut c, "idem", 0, idempotent_batch(2, id, epoch, 3)).await;
    assert_eq!((second.error_code, second.base_offset), (0, 3));
    // A retry of the first batch: success with its original offset, nothing appended.
    let retry = produce(&mut c, "idem", 0, idempotent_batch(3, id, epoch, 0)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    // A gap in sequences.
    let gap = produce(&mut c, "idem", 0, idempotent_batch(1, id, epoch, 9)).await;
    assert_eq!(gap.error_code, E::OutOfOrderSequenceNumber.code());
    assert_eq!(fetch(&mut c, "idem", 0, 0, 12).await.high_watermark, 5);

    // A transactional id gets the coordinator's producer id; its timeout must be within bounds.
    let txn_init = |timeout_ms| InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))).with_transaction_timeout_ms(timeout_ms).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let txn = c.send(&txn_init(0), 4).await;
    assert_eq!(txn.error_code, E::InvalidTransactionTimeout.code());
    let txn = c.send(&txn_init(60_000), 4).await;
    assert_eq!((txn.error_code, txn.producer_epoch), (0, 0));
    assert!(txn.producer_id.0 >= 0 && txn.producer_id != pid.producer_id);

    // After a clean restart the retry is still recognised.
    let mut b = b;
    b.restart().await;
    let mut c = b.client().await;
    let retry = produce(&mut c, "idem", 0, idempotent_batch(2, id, epoch, 3)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 3));
    assert_eq!(fetch(&mut c, "idem", 0, 0, 12).await.high_watermark, 5);
    b.stop().await;
}

async fn list_offset(c: &mut Client, topic: &str, ts: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts)])]);
    let resp = c.send(&req, 9).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[tokio::test]
async fn list_offsets_by_timestamp_finds_the_first_record_at_or_after_it() {
    // The batches carry 1970 timestamps: retention (checked every 100 ms here) must keep them.
    let b = TestBroker::start(&["log.segment.bytes=200", "log.retention.ms=-1"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "lo", 1, &[]).await;
    // Compressed batches across several segments: offsets 0..=9 at ts 100..=109, 10..=19 at 200..=209, ...
    for i in 0..5 {
        produce(&mut c, "lo", 0, batch(10, 100 * (i + 1), Compression::Gzip)).await;
    }
    assert_eq!(list_offset(&mut c, "lo", -2).await, (0, 0, -1));
    assert_eq!(list_offset(&mut c, "lo", -1).await, (0, 50, -1));
    assert_eq!(list_offset(&mut c, "lo", 105).await, (0, 5, 105));
    assert_eq!(list_offset(&mut c, "lo", 150).await, (0, 10, 200));
    assert_eq!(list_offset(&mut c, "lo", 407).await, (0, 37, 407));
    assert_eq!(list_offset(&mut c, "lo", 10_000).await.1, -1);
    assert_eq!(list_offset(&mut c, "lo", -3).await, (0, 49, 509));
    b.stop().await;
}

#[tokio::test]
async fn create_and_delete_topics_validate_like_kafka() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "ok", 2, &[("retention.ms", "1000")]).await.error_code, 0);
    assert_eq!(create_topic(&mut c, "ok", 2, &[]).await.error_code, E::TopicAlreadyExists.code());
    assert_eq!(create_topic(&mut c, "o.k", 0, &[]).await.error_code, E::InvalidPartitions.code());
    assert_eq!(create_topic(&mut c, "x", 1, &[("no.such.config", "1")]).await.error_code, E::InvalidConfig.code());
    assert_eq!(create_topic(&mut c, "x", 1, &[("retention.ms", "soon")]).await.error_code, E::InvalidConfig.code());
    assert_eq!(create_topic(&mut c, "bad/name", 1, &[]).await.error_code, E::InvalidTopicException.code());
    let rf3 = create_topics_request::CreatableTopic::default().with_name(name("rf3")).with_num_partitions(1).with_replication_factor(3);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![rf3]), 7).await;
    assert_eq!(resp.topics[0].error_code, E::InvalidReplicationFactor.code());
    let v = create_topics_request::CreatableTopic::default().with_name(name("vonly")).with_num_partitions(1).with_replication_factor(-1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![v]).with_validate_only(true), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
    let md = c.send(&MetadataRequest::default().with_topics(None), 12).await;
    let names: Vec<String> = md.topics.iter().map(|t| t.name.as_ref().unwrap().0.to_string()).collect();
    assert_eq!(names, vec!["ok".to_string()]);

    let del = c.send(&DeleteTopicsRequest::default().with_topic_names(vec![name("ok"), name("missing")]), 5).await;
    assert_eq!(del.responses[0].error_code, 0);
    assert_eq!(del.responses[1].error_code, E::UnknownTopicOrPartition.code());
    let md = c.send(&MetadataRequest::default().with_topics(None), 12).await;
    assert!(md.topics.is_empty());
    // A deleted topic's name can be used again, with a new id and no old data.
    assert_eq!(create_topic(&mut c, "ok", 1, &[]).await.error_code, 0);
    assert_eq!(fetch(&mut c, "ok", 0, 0, 12).await.high_watermark, 0);
    b.stop().await;
}

#[tokio::test]
async fn describe_configs_reports_overrides_and_defaults_with_sources() {
    let b = TestBroker::start(&["log.segment.bytes=5000000"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "cfg", 1, &[("retention.ms", "1234")]).await;
    let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("cfg")).with_configuration_keys(None),
        describe_configs_request::DescribeConfigsResource::default().with_resource_type(4).with_resource_name(StrBytes::from_static_str("1")).with_configuration_keys(None),
        describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("nope")),
    ]);
    let resp = c.send(&req, 4).await;
    let topic = &resp.results[0];
    let get = |n: &str| topic.configs.iter().find(|c| c.name.as_str() == n).unwrap().clone();
    assert_eq!(get("retention.ms").value.unwrap().as_str(), "1234");
    assert_eq!(get("retention.ms").config_source, 1);
    assert_eq!(get("segment.bytes").value.unwrap().as_str(), "5000000");
    assert_eq!(get("segment.bytes").config_source, 4);
    assert_eq!(get("cleanup.policy").config_source, 5);
    // As Kafka: flush.ms has its topic default while log.flush.interval.ms is unset (null), and
    // the unset broker property is no synonym.
    assert_eq!(get("flush.ms").value.unwrap().as_str(), "9223372036854775807");
    assert_eq!(get("flush.ms").config_source, 5);
    assert!(get("flush.ms").synonyms.is_empty());
    let broker_cfg = &resp.results[1];
    assert_eq!(broker_cfg.error_code, 0);
    assert!(broker_cfg.configs.iter().any(|c| c.name.as_str() == "message.max.bytes"));
    assert_eq!(resp.results[2].error_code, E::UnknownTopicOrPartition.code());
    b.stop().await;
}

/// Values, sources and synonyms as the reference Kafka 4.0 describes them (kafka-configs.sh
/// --describe --all on both, a broker started with the same three settings): a property Kafka
/// derives from another one is null, a null default has no synonym, node.id stands for broker.id,
/// and a group config names its default under its own name.
#[tokio::test]
async fn described_values_and_synonyms_are_kafkas() {
    let b = TestBroker::start(&["node.id=1", "log.retention.hours=24", "group.consumer.heartbeat.interval.ms=6000"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "t", 1, &[]).await;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(32)
        .with_resource_name(StrBytes::from_static_str("g"))
        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
            .with_name(StrBytes::from_static_str("consumer.session.timeout.ms"))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_static_str("50000")))])]);
    assert_eq!(c.send(&alter, 1).await.responses[0].error_code, 0);
    let resource = |kind: i8, name: &'static str| describe_configs_request::DescribeConfigsResource::default().with_resource_type(kind).with_resource_name(StrBytes::from_static_str(name)).with_configuration_keys(None);
    let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![resource(4, "1"), resource(2, "t"), resource(32, "g")]);
    let resp = c.send(&req, 4).await;
    type Entry = (Option<String>, i8, Vec<(String, Option<String>, i8)>);
    let get = |r: usize, n: &str| -> Entry {
        let e = resp.results[r].configs.iter().find(|e| e.name.as_str() == n).unwrap_or_else(|| panic!("{n} described"));
        let synonyms = e.synonyms.iter().map(|s| (s.name.to_string(), s.value.as_ref().map(|v| v.to_string()), s.source)).collect();
        (e.value.as_ref().map(|v| v.to_string()), e.config_source, synonyms)
    };
    let syn = |n: &str, v: &str, source: i8| (n.to_string(), Some(v.to_string()), source);
    let (broker, topic, group) = (0, 1, 2);
    // Broker: log.retention.ms is null while the hours decide it; a null default lists nothing.
    assert_eq!(get(broker, "log.retention.ms"), (None, 5, vec![]));
    assert_eq!(get(broker, "log.roll.ms"), (None, 5, vec![]));
    assert_eq!(get(broker, "log.retention.hours"), (Some("24".into()), 4, vec![syn("log.retention.hours", "24", 4), syn("log.retention.hours", "168", 5)]));
    assert_eq!(get(broker, "broker.rack"), (None, 5, vec![]));
    assert_eq!(get(broker, "replica.selector.class"), (None, 5, vec![]));
    assert_eq!(get(broker, "group.consumer.assignors").0.as_deref(), Some("uniform,range"));
    assert_eq!(get(broker, "broker.id"), (Some("1".into()), 4, vec![syn("broker.id", "1", 4), syn("broker.id", "-1", 5)]));
    // Topic: the effective retention, from the hours, with no synonym (none sets log.retention.ms).
    assert_eq!(get(topic, "retention.ms"), (Some("86400000".into()), 5, vec![]));
    assert_eq!(get(topic, "segment.ms"), (Some("604800000".into()), 5, vec![]));
    // Group: the broker's value under the group config's own name, or the group's override alone.
    assert_eq!(get(group, "consumer.heartbeat.interval.ms"), (Some("6000".into()), 5, vec![syn("consumer.heartbeat.interval.ms", "6000", 5)]));
    assert_eq!(get(group, "consumer.session.timeout.ms"), (Some("50000".into()), 8, vec![syn("consumer.session.timeout.ms", "50000", 8)]));
    assert_eq!(get(group, "share.auto.offset.reset"), (Some("latest".into()), 5, vec![syn("share.auto.offset.reset", "latest", 5)]));
    b.stop().await;
}

#[tokio::test]
async fn describe_topic_partitions_paginates_with_a_cursor() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "a", 3, &[]).await;
    create_topic(&mut c, "b", 2, &[]).await;
    let resp = c.send(&DescribeTopicPartitionsRequest::default().with_response_partition_limit(4), 0).await;
    let seen: usize = resp.topics.iter().map(|t| t.partitions.len()).sum();
    assert_eq!(seen, 4);
    let cursor = resp.next_cursor.expect("more to come");
    assert_eq!((cursor.topic_name.0.as_str(), cursor.partition_index), ("b", 1));
    let next = DescribeTopicPartitionsRequest::default()
        .with_response_partition_limit(4)
        .with_cursor(Some(describe_topic_partitions_request::Cursor::default().with_topic_name(name("b")).with_partition_index(1)));
    let resp = c.send(&next, 0).await;
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].partitions[0].partition_index, 1);
    assert!(resp.next_cursor.is_none());
    b.stop().await;
}

#[tokio::test]
async fn topics_ids_configs_and_data_survive_a_clean_restart() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let t = create_topic(&mut c, "keep", 2, &[("retention.ms", "86400000")]).await;
    produce(&mut c, "keep", 1, batch(4, 10, Compression::Snappy)).await;
    let before = fetch(&mut c, "keep", 1, 0, 12).await.records.unwrap();
    drop(c);
    b.restart().await;
    let mut c = b.client().await;
    let md = c.send(&MetadataRequest::default().with_topics(None), 12).await;
    assert_eq!(md.topics.len(), 1);
    assert_eq!(md.topics[0].topic_id, t.topic_id);
    assert_eq!(md.topics[0].partitions.len(), 2);
    assert_eq!(fetch(&mut c, "keep", 1, 0, 12).await.records.unwrap(), before);
    let p = produce(&mut c, "keep", 1, batch(1, 10, Compression::None)).await;
    assert_eq!(p.base_offset, 4);
    b.stop().await;
}

#[tokio::test]
async fn retention_by_bytes_moves_the_log_start_offset() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "ret", 1, &[("segment.bytes", "500"), ("retention.bytes", "1000")]).await;
    for i in 0..20 {
        produce(&mut c, "ret", 0, batch(2, i, Compression::None)).await;
    }
    let mut start = 0;
    for _ in 0..50 {
        start = list_offset(&mut c, "ret", -2).await.1;
        if start > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(start > 0, "retention ran and moved the log start offset");
    // Offset 0 is below it now; the answer names no offsets (Kafka's: the client resets with
    // ListOffsets, which gave `start` above).
    let part = fetch(&mut c, "ret", 0, 0, 12).await;
    assert_eq!((part.error_code, part.log_start_offset), (E::OffsetOutOfRange.code(), -1));
    b.stop().await;
}


/// Every served version of every API answers a representative request with a response that
/// decodes at that version (fields a version lacks must not be set, or encoding fails).
#[tokio::test]
async fn every_served_version_of_every_api_is_answered() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let t = create_topic(&mut c, "sweep", 1, &[]).await;
    produce(&mut c, "sweep", 0, batch(3, 1, Compression::None)).await;
    for v in 0..=4 {
        assert_eq!(c.send(&ApiVersionsRequest::default(), v).await.error_code, 0, "ApiVersions v{v}");
    }
    for v in 0..=13 {
        let topic = metadata_request::MetadataRequestTopic::default().with_name(Some(name("sweep")));
        let req = MetadataRequest::default().with_topics(Some(vec![topic]));
        let resp = c.send(&req, v).await;
        assert_eq!(resp.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 1, "Metadata v{v}");
    }
    for v in 3..=12 {
        let resp = c.send(&produce_req("sweep", 0, batch(1, 1, Compression::None), 1), v).await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0, "Produce v{v}");
    }
    for v in 4..=17 {
        let mut req = fetch_req(if v >= 13 { "" } else { "sweep" }, if v >= 13 { t.topic_id } else { uuid::Uuid::nil() }, 0, 0, 0, 0);
        if v < 7 {
            req.session_epoch = -1;
        }
        if v < 12 {
            for topic in &mut req.topics {
                for p in &mut topic.partitions {
                    p.last_fetched_epoch = -1;
                }
            }
        }
        let resp = c.send(&req, v).await;
        let part = &resp.responses[0].partitions[0];
        assert_eq!(part.error_code, 0, "Fetch v{v}");
        assert_eq!(decoded_offsets(part.records.as_ref().unwrap()).len(), 13, "Fetch v{v}");
    }
    for v in 1..=10 {
        let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name("sweep"))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
        let resp = c.send(&req, v).await;
        assert_eq!(resp.topics[0].partitions[0].offset, 13, "ListOffsets v{v}");
    }
    for v in 2..=7 {
        let topic = format!("ct{v}");
        let req = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name(&topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
        assert_eq!(c.send(&req, v).await.topics[0].error_code, 0, "CreateTopics v{v}");
        let resp = if v >= 6 {
            c.send(&DeleteTopicsRequest::default().with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(name(&topic)))]), 6).await
        } else {
            c.send(&DeleteTopicsRequest::default().with_topic_names(vec![name(&topic)]), v.max(1)).await
        };
        assert_eq!(resp.responses[0].error_code, 0, "DeleteTopics for v{v}");
    }
    for v in 0..=5 {
        let req = InitProducerIdRequest::default().with_transactional_id(None).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
        assert_eq!(c.send(&req, v).await.error_code, 0, "InitProducerId v{v}");
    }
    for v in 1..=4 {
        let mut req = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("sweep"))
            .with_configuration_keys(None)]);
        req.include_documentation = v >= 3;
        let resp = c.send(&req, v).await;
        assert_eq!(resp.results[0].error_code, 0, "DescribeConfigs v{v}");
        assert!(!resp.results[0].configs.is_empty());
    }
    for v in 0..=2 {
        let resp = c.send(&DescribeClusterRequest::default(), v).await;
        assert_eq!((resp.error_code, resp.brokers.len()), (0, 1), "DescribeCluster v{v}");
    }
    b.stop().await;
}

#[tokio::test]
async fn an_address_at_max_connections_per_ip_has_its_next_connection_closed_and_others_served() {
    let b = TestBroker::start(&["max.connections.per.ip=2"]).await;
    let mut first = b.client().await;
    let mut second = b.client().await;
    assert_eq!(first.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    assert_eq!(second.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    let mut third = b.client().await;
    assert!(third.is_closed().await, "the third connection from 127.0.0.1 is closed on arrival");
    assert_eq!(first.send(&ApiVersionsRequest::default(), 3).await.error_code, 0, "the address's open connections keep working");
    drop(second);
    // The slot comes back once the broker has seen the close.
    let mut again = None;
    for _ in 0..50 {
        let mut c = b.client().await;
        let frame = c.encode_request(&ApiVersionsRequest::default(), 3);
        c.send_raw(&frame).await;
        if c.read_frame().await.is_some() {
            again = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed connection frees its address's slot");
    b.stop().await;

    // An override for the address replaces the default.
    let b = TestBroker::start(&["max.connections.per.ip=1", "max.connections.per.ip.overrides=127.0.0.1:3"]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = b.client().await;
        assert_eq!(c.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
        open.push(c);
    }
    assert!(b.client().await.is_closed().await, "the fourth is past the override");
    b.stop().await;
}
