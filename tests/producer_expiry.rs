//! Wire tests of `producer.id.expiration.ms`: an idle idempotent producer is forgotten by the
//! partition (DescribeProducers stops listing it) and its next batches get what Kafka 4.0 answers
//! an unknown producer. The same scenario runs against the reference Kafka broker when
//! FJORD_REFERENCE_BOOTSTRAP names one (an ignored test), so the two answers can be compared.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn create_topic(c: &mut Client, topic: &str) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
}

/// `n` records stamped now from (producer id, epoch, first sequence): (error code, base offset).
async fn produce(c: &mut Client, topic: &str, producer: (i64, i16, i32), n: usize) -> (i16, i64) {
    let ts = now_ms();
    let recs = (0..n).map(|i| record(i as i64, ts, "k", b"v")).collect();
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(producer_batch(recs, producer, false)))])]);
    // A broker with a controller (Kafka) answers NOT_LEADER_OR_FOLLOWER until the new
    // partition's leadership reached it; retrying then is what a client does.
    let start = Instant::now();
    loop {
        let resp = c.send(&req, 9).await;
        let p = &resp.responses[0].partition_responses[0];
        if p.error_code != NOT_LEADER_OR_FOLLOWER || start.elapsed() > Duration::from_secs(10) {
            return (p.error_code, p.base_offset);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The producer ids DescribeProducers lists for partition 0, sorted.
async fn producers(c: &mut Client, topic: &str) -> Vec<i64> {
    let req = DescribeProducersRequest::default()
        .with_topics(vec![describe_producers_request::TopicRequest::default().with_name(name(topic)).with_partition_indexes(vec![0])]);
    let r = c.send(&req, 0).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut v: Vec<i64> = p.active_producers.iter().map(|a| a.producer_id.0).collect();
    v.sort_unstable();
    v
}

/// The scenario, for any broker whose producer ids expire within `expiry_max`: returns how long
/// the producers took to disappear.
async fn expire_and_come_back(addr: SocketAddr, topic: &str, expiry_max: Duration) -> Duration {
    let mut c = Client::connect(addr).await;
    create_topic(&mut c, topic).await;
    // Producer ids no InitProducerId handed out: an idempotent produce does not check them.
    let (p1, p2) = (900_001, 900_002);
    assert_eq!(produce(&mut c, topic, (p1, 0, 0), 3).await, (0, 0));
    assert_eq!(produce(&mut c, topic, (p1, 0, 3), 2).await, (0, 3));
    assert_eq!(produce(&mut c, topic, (p1, 0, 0), 3).await, (0, 0), "a retry is a duplicate: the original offsets");
    assert_eq!(produce(&mut c, topic, (p1, 0, 9), 1).await.0, OUT_OF_ORDER_SEQUENCE_NUMBER, "a gap");
    assert_eq!(produce(&mut c, topic, (p2, 1, 0), 1).await, (0, 5));
    assert_eq!(produce(&mut c, topic, (p2, 0, 1), 1).await.0, INVALID_PRODUCER_EPOCH, "an older epoch is fenced");
    assert_eq!(producers(&mut c, topic).await, vec![p1, p2]);

    let idle = Instant::now();
    while !producers(&mut c, topic).await.is_empty() {
        assert!(idle.elapsed() < expiry_max, "producers still listed after {:?}", idle.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expired_after = idle.elapsed();

    // Forgotten: the retry of the first batch is appended again, as an unknown producer's batch.
    assert_eq!(produce(&mut c, topic, (p1, 0, 0), 3).await, (0, 6), "after expiry a retry is new data");
    // Known again from that batch on: the gap is refused as before.
    assert_eq!(produce(&mut c, topic, (p1, 0, 9), 1).await.0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // An unknown producer's first batch is accepted whatever its sequence, and an epoch older
    // than the one forgotten is not fenced any more.
    assert_eq!(produce(&mut c, topic, (p2, 0, 42), 1).await, (0, 9), "any sequence and epoch from a forgotten producer");
    assert_eq!(produce(&mut c, topic, (p2, 0, 44), 1).await.0, OUT_OF_ORDER_SEQUENCE_NUMBER, "known again");
    assert_eq!(producers(&mut c, topic).await, vec![p1, p2]);
    expired_after
}

#[tokio::test]
async fn an_idle_producer_is_forgotten_and_its_next_batch_is_an_unknown_producers() {
    let b = TestBroker::start(&["producer.id.expiration.ms=1000", "producer.id.expiration.check.interval.ms=100"]).await;
    let took = expire_and_come_back(b.addr, "expiry", Duration::from_secs(10)).await;
    // Not before the expiration (the last batch was stamped just before the wait began).
    assert!(took >= Duration::from_millis(900), "forgotten after {took:?}");
    b.stop().await;
}

fn tid(v: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(v.to_string()))
}

/// Produce v9 of one batch, with the request's transactional id: the error code.
async fn produce_batch(c: &mut Client, txn: Option<&str>, topic: &str, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_transactional_id(txn.map(tid)).with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

async fn wait_until_gone(c: &mut Client, topic: &str, producer_id: i64) {
    let start = Instant::now();
    while producers(c, topic).await.contains(&producer_id) {
        assert!(start.elapsed() < Duration::from_secs(10), "producer {producer_id} still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_open_transaction_keeps_its_producer_and_a_restart_does_not_bring_an_expired_one_back() {
    let mut b = TestBroker::start(&["producer.id.expiration.ms=1000", "producer.id.expiration.check.interval.ms=100"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "kept").await;
    // Batches stamped in 1970 are far past the expiration at the first pass.
    let long_ago = |n: usize| (0..n).map(|i| record(i as i64, 1_000, "k", b"v")).collect::<Vec<_>>();
    assert_eq!(produce_batch(&mut c, None, "kept", producer_batch(long_ago(1), (7, 0, 0), false)).await, 0);
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(tid("tx-kept")))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.send(&init, 4).await;
    assert_eq!(r.error_code, 0);
    let (txn_pid, epoch) = (r.producer_id.0, r.producer_epoch);
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid("tx-kept"))
        .with_v3_and_below_producer_id(ProducerId(txn_pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name("kept")).with_partitions(vec![0])]);
    let r = c.send(&add, 3).await;
    assert_eq!(r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0);
    assert_eq!(produce_batch(&mut c, Some("tx-kept"), "kept", producer_batch(long_ago(2), (txn_pid, epoch, 0), true)).await, 0);

    wait_until_gone(&mut c, "kept", 7).await;
    // Several passes later the producer in the transaction is still there (its batch is as old).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(producers(&mut c, "kept").await, vec![txn_pid], "a producer with an open transaction is kept");
    // Its commit marker is stamped now: from there it ages like any producer.
    let end = EndTxnRequest::default().with_transactional_id(tid("tx-kept")).with_producer_id(ProducerId(txn_pid)).with_producer_epoch(epoch).with_committed(true);
    assert_eq!(c.send(&end, 3).await.error_code, 0);
    let committed = Instant::now();
    wait_until_gone(&mut c, "kept", txn_pid).await;
    assert!(committed.elapsed() >= Duration::from_millis(800), "expired {:?} after its marker", committed.elapsed());

    // A producer the partition forgot stays forgotten across a restart; one it remembers stays.
    assert_eq!(produce(&mut c, "kept", (8, 0, 0), 1).await, (0, 4), "after the records at 1-2 and their marker at 3");
    drop(c);
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(producers(&mut c, "kept").await, vec![8], "only the recent producer after the restart");
    b.stop().await;
}

/// Runs the scenario against a reference broker started with a short expiration, e.g.
/// `producer.id.expiration.ms=3000` and `producer.id.expiration.check.interval.ms=500`:
/// `FJORD_REFERENCE_BOOTSTRAP=127.0.0.1:PORT cargo test --test producer_expiry -- --ignored`.
#[tokio::test]
#[ignore = "needs a reference Kafka broker (FJORD_REFERENCE_BOOTSTRAP)"]
async fn the_reference_broker_answers_the_same() {
    let Ok(addr) = std::env::var("FJORD_REFERENCE_BOOTSTRAP") else {
        panic!("set FJORD_REFERENCE_BOOTSTRAP to a reference broker's address");
    };
    let addr: SocketAddr = addr.parse().expect("host:port");
    let topic = format!("expiry-{}", now_ms());
    let took = expire_and_come_back(addr, &topic, Duration::from_secs(60)).await;
    eprintln!("reference broker forgot the producers after {took:?}");
}

/// IncrementalAlterConfigs SET of `producer.id.expiration.ms` on this broker: (error code, message).
async fn set_expiration(c: &mut Client, value: &str) -> (i16, Option<String>) {
    alter_broker_config(c, "producer.id.expiration.ms", value, false).await
}

#[tokio::test]
async fn the_expiration_changes_at_run_time_and_a_bad_value_is_refused_in_kafkas_words() {
    let b = TestBroker::start(&["producer.id.expiration.check.interval.ms=100"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "dyn").await;
    assert_eq!(produce(&mut c, "dyn", (11, 0, 0), 1).await, (0, 0));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(producers(&mut c, "dyn").await, vec![11], "the default keeps a producer for a day");
    // Kafka answers these with INVALID_REQUEST; Fjord's AlterConfigs answers every refused broker
    // config with INVALID_CONFIG (api/alter_configs.rs), with Kafka's message.
    let (code, msg) = set_expiration(&mut c, "0").await;
    assert_ne!(code, 0);
    assert_eq!(msg.as_deref(), Some("Invalid value 0 for configuration producer.id.expiration.ms: Value must be at least 1"));
    let (code, msg) = set_expiration(&mut c, "abc").await;
    assert_ne!(code, 0);
    assert_eq!(msg.as_deref(), Some("Invalid value abc for configuration producer.id.expiration.ms: Not a number of type INT"));
    assert_eq!(producers(&mut c, "dyn").await, vec![11]);
    assert_eq!(set_expiration(&mut c, "200").await, (0, None));
    let start = Instant::now();
    while !producers(&mut c, "dyn").await.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "the new expiration was not applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop().await;
}
