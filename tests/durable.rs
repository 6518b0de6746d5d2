//! Wire tests of durable mode (`fjord.log.flush.on.acks.all`): an acks=all produce is answered
//! only after its partition's data is fdatasynced (the recovery point covers it), on both storage
//! backends; acks=1 and the default configuration leave flushing to the OS.

mod common;

use bytes::Bytes;
use common::*;
use fjord::types::TopicPartition;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create_topic(c: &mut Client, topic: &str) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

fn produce_request(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))])])
}

async fn produce(c: &mut Client, topic: &str, records: Bytes, acks: i16) -> produce_response::PartitionProduceResponse {
    c.send(&produce_request(topic, records, acks), 9).await.responses[0].partition_responses[0].clone()
}

/// (recovery point, log end offset) of `topic`-0.
fn points(b: &TestBroker, topic: &str) -> (i64, i64) {
    let log = b.running.as_ref().expect("running").broker.replicas.logs().get(&TopicPartition::new(topic, 0)).expect("log");
    let log = log.lock().expect("lock");
    (log.recovery_point(), log.log_end_offset())
}

/// (recovery point, log end offset, high watermark) of `topic`-0, read under one lock.
fn high_watermark(b: &TestBroker, topic: &str) -> (i64, i64, i64) {
    let log = b.running.as_ref().expect("running").broker.replicas.logs().get(&TopicPartition::new(topic, 0)).expect("log");
    let log = log.lock().expect("lock");
    (log.recovery_point(), log.log_end_offset(), log.high_watermark())
}

async fn acks_all_is_synced_before_the_answer(backend: &str) {
    let b = TestBroker::start(&["fjord.log.flush.on.acks.all=true", &format!("io.backend={backend}")]).await;
    assert_eq!(b.running.as_ref().expect("running").broker.replicas.backend().name, backend);
    let mut c = b.client().await;
    create_topic(&mut c, "d").await;

    let p = produce(&mut c, "d", batch(5, 1_000, Compression::None), 1).await;
    assert_eq!(p.error_code, 0);
    // acks=1 is answered before any sync; a background fsync publishes it later, and until then
    // consumers cannot read it (the high watermark never passes the recovery point).
    let (synced, end, hw) = high_watermark(&b, "d");
    assert_eq!(end, 5);
    assert!(hw <= synced, "nothing unsynced is readable in durable mode: {hw} > {synced}");

    let p = produce(&mut c, "d", batch(5, 1_000, Compression::None), -1).await;
    assert_eq!((p.error_code, p.base_offset), (0, 5));
    assert_eq!(points(&b, "d"), (10, 10), "the answer came after the fsync");

    // Concurrent producers on one partition: every acks=all answer is covered by a sync.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let addr = b.addr;
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                for _ in 0..25 {
                    let p = produce(&mut c, "d", batch(2, 1_000, Compression::None), -1).await;
                    assert_eq!(p.error_code, 0);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("producer");
    }
    assert_eq!(points(&b, "d"), (410, 410));
    let stats = b.running.as_ref().expect("running").broker.replicas.backend().uring_stats.clone();
    let before = stats.as_ref().map(|s| s.snapshot());
    if let Some(s) = &before {
        eprintln!("io_uring counters after 200 concurrent durable produces: {s:?}");
        assert!(s.fsync_requests >= 201, "{s:?}");
    }

    // One connection pipelining 20 acks=all produces with an ApiVersions among them: the
    // connection appends each while the earlier ones wait for their syncs, and still answers
    // in request order, each answer covered by a sync.
    let mut bytes = Vec::new();
    for i in 0..21 {
        if i == 10 {
            bytes.extend_from_slice(&c.encode_request(&ApiVersionsRequest::default(), 3));
        } else {
            bytes.extend_from_slice(&c.encode_request(&produce_request("d", batch(2, 1_000, Compression::None), -1), 9));
        }
    }
    c.send_raw(&bytes).await;
    let mut next_offset = 410;
    for i in 0..21 {
        let mut frame = c.read_frame().await.expect("an answer for every request");
        if i == 10 {
            let header = ResponseHeader::decode(&mut frame, 0).expect("header");
            assert_eq!(header.correlation_id, c.correlation_id() - 20 + i, "in request order");
            assert_eq!(ApiVersionsResponse::decode(&mut frame, 3).expect("api versions").error_code, 0);
            continue;
        }
        let header = ResponseHeader::decode(&mut frame, ApiKey::Produce.response_header_version(9)).expect("header");
        assert_eq!(header.correlation_id, c.correlation_id() - 20 + i, "in request order");
        let r = ProduceResponse::decode(&mut frame, 9).expect("produce response");
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, next_offset));
        next_offset += 2;
        assert!(points(&b, "d").0 >= next_offset, "answered only once synced");
    }
    if let (Some(stats), Some(before)) = (stats, before) {
        let s = stats.snapshot();
        let (requests, issued) = (s.fsync_requests - before.fsync_requests, s.fsyncs_issued - before.fsyncs_issued);
        eprintln!("20 pipelined durable produces: {requests} fsync requests, {issued} fsyncs");
        assert!(requests >= 20 && issued < requests, "pipelined requests share fsyncs: {s:?}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mode_syncs_acks_all_produce_on_the_io_uring_backend() {
    acks_all_is_synced_before_the_answer("uring").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mode_syncs_acks_all_produce_on_the_std_backend() {
    acks_all_is_synced_before_the_answer("std").await;
}

#[tokio::test]
async fn without_durable_mode_acks_all_leaves_flushing_to_the_os() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "n").await;
    let p = produce(&mut c, "n", batch(5, 1_000, Compression::None), -1).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(points(&b, "n"), (0, 5));
    b.stop().await;
}
