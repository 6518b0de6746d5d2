//! Differential check against Apache Kafka: the same requests (edge cases of produce, fetch,
//! offsets, topic admin, groups and producers) go to a Fjord broker and to a reference Kafka broker,
//! and the answers are compared field by field after dropping what legitimately differs (topic
//! ids, node ids, timestamps, throttle times, error messages). A measurement of compatibility, not
//! a unit test: `compat-tests/kafka-diff/run.sh` starts both brokers and runs it.
//!
//! cargo run --release --example kafka_diff -- FJORD_HOST:PORT KAFKA_HOST:PORT [CASE_SUBSTRING]
//! Prints PASS or FAIL per case (FAIL with both answers), NOTE lines for differing error messages,
//! and exits non-zero when any case differs.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use common::{Client, batch, producer_batch, record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A name of this run as the protocol's string.
fn nm(v: &str) -> StrBytes {
    s(&named(v))
}

/// A name as the report shows it: without the run's suffix.
fn shown(v: &str) -> String {
    v.replace(run_suffix(), "")
}

/// This run's suffix for every topic, group and transactional id, so a case meets no state an
/// earlier run left on a broker that is still up.
fn run_suffix() -> &'static str {
    static SUFFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SUFFIX.get_or_init(|| format!("-{}", now_ms() % 1_000_000_000))
}

/// A name of this run: `kd-...` names get the run's suffix (others, such as invalid names, do not).
fn named(v: &str) -> String {
    if v.starts_with("kd-") { format!("{v}{}", run_suffix()) } else { v.to_string() }
}

fn tn(v: &str) -> TopicName {
    TopicName(s(&named(v)))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What a case reports: lines compared exactly, and error messages shown when they differ.
#[derive(Default)]
struct Out {
    lines: Vec<String>,
    messages: Vec<String>,
}

impl Out {
    fn line(&mut self, l: impl Into<String>) {
        self.lines.push(l.into());
    }
    fn message(&mut self, what: &str, m: &Option<StrBytes>) {
        self.messages.push(format!("{what}: {}", m.as_ref().map_or("null", |m| m.as_str())));
    }
}

/// One broker under test: its address and a connection.
struct Side {
    addr: SocketAddr,
    c: Client,
}

impl Side {
    async fn fresh(&mut self) -> Client {
        Client::connect(self.addr).await
    }
}

async fn create(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let t = create_topics_request::CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs.iter().map(|(k, v)| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)))).collect());
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert!(matches!(r.topics[0].error_code, 0 | 36), "create {name}: {:?}", r.topics[0].error_message);
    // Until every partition has a leader (Kafka elects them a moment after the answer).
    for _ in 0..100 {
        let md = c.send(&MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(tn(name)))])), 12).await;
        let t = &md.topics[0];
        if t.error_code == 0 && t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader_id.0 >= 0) {
            // And the leader serves them (Kafka's metadata can name a leader a moment before).
            let mut served = true;
            for p in 0..partitions {
                served &= c.send(&list_offsets_req(name, p, -1, 0), 9).await.topics[0].partitions[0].error_code == 0;
            }
            if served {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("topic {name} has no leaders");
}

fn produce_req(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(tn(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])])
}

/// A produce's per-partition answers: error code, base offset (when appended), log start offset.
fn produce_lines(out: &mut Out, r: &ProduceResponse) {
    for t in &r.responses {
        for p in &t.partition_responses {
            out.line(format!("produce {} p{}: error {} base_offset {} log_start {} record_errors {:?}", shown(&t.name.0), p.index, p.error_code, p.base_offset, p.log_start_offset, p.record_errors.iter().map(|e| e.batch_index).collect::<Vec<_>>()));
            out.message(&format!("produce p{}", p.index), &p.error_message);
        }
    }
}

async fn produce(c: &mut Client, out: &mut Out, version: i16, topic: &str, partition: i32, records: Bytes) {
    let r = c.send(&produce_req(topic, partition, 1, records), version).await;
    produce_lines(out, &r);
}

fn fetch_req(topics: Vec<fetch_request::FetchTopic>) -> FetchRequest {
    FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_min_bytes(1).with_max_bytes(1 << 20).with_isolation_level(0).with_topics(topics)
}

fn fetch_topic(topic: &str, partition: i32, offset: i64, max: i32) -> fetch_request::FetchTopic {
    fetch_request::FetchTopic::default()
        .with_topic(tn(topic))
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(max).with_log_start_offset(-1)])
}

fn fetch_lines(out: &mut Out, r: &FetchResponse) {
    out.line(format!("fetch: error {}", r.error_code));
    for t in &r.responses {
        for p in &t.partitions {
            let mut records = p.records.clone().unwrap_or_default();
            let n = if records.is_empty() { 0 } else { RecordBatchDecoder::decode_all(&mut records).map_or(-1, |sets| sets.iter().map(|s| s.records.len() as i64).sum()) };
            out.line(format!(
                "fetch {} p{}: error {} hw {} lso {} log_start {} aborted {:?} records {n}",
                shown(&t.topic.0), p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset, p.log_start_offset, p.aborted_transactions.as_ref().map(|a| a.len())
            ));
        }
    }
}

fn list_offsets_req(topic: &str, partition: i32, timestamp: i64, isolation: i8) -> ListOffsetsRequest {
    ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(tn(topic))
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp)])])
}

/// A legacy (magic 1) message set of one record, as producers before 0.11 wrote them.
fn magic1_message_set() -> Bytes {
    let mut msg = BytesMut::new();
    msg.put_i8(1); // magic
    msg.put_i8(0); // attributes
    msg.put_i64(now_ms());
    msg.put_i32(-1); // key
    msg.put_i32(5);
    msg.put_slice(b"hello");
    let crc = crc32fast_ieee(&msg);
    let mut set = BytesMut::new();
    set.put_i64(0);
    set.put_i32((msg.len() + 4) as i32);
    set.put_u32(crc);
    set.put_slice(&msg);
    set.freeze()
}

/// CRC-32 (IEEE), which legacy messages carry.
fn crc32fast_ieee(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

async fn init_producer(c: &mut Client, txn: Option<&str>, timeout_ms: i32) -> InitProducerIdResponse {
    c.send(&InitProducerIdRequest::default().with_transactional_id(txn.map(|t| TransactionalId(nm(t)))).with_transaction_timeout_ms(timeout_ms).with_producer_id(ProducerId(-1)).with_producer_epoch(-1), 4).await
}

/// Waits until the broker's group and transaction coordinators and its producer ids are ready
/// (a fresh Kafka creates its internal topics on first use and answers NOT_COORDINATOR, then
/// COORDINATOR_LOAD_IN_PROGRESS, for a moment).
async fn warm_up(c: &mut Client) {
    for _ in 0..300 {
        let mut ready = true;
        for key_type in [0, 1] {
            let r = c.send(&FindCoordinatorRequest::default().with_key_type(key_type).with_coordinator_keys(vec![nm("kd-warm-up")]), 4).await;
            ready &= r.coordinators[0].error_code == 0;
        }
        ready = ready && init_producer(c, None, 60_000).await.error_code == 0 && init_producer(c, Some("kd-warm-up"), 60_000).await.error_code == 0;
        let g = c.send(&OffsetFetchRequest::default().with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(nm("kd-warm-up"))).with_topics(None)]), 8).await;
        ready = ready && g.groups[0].error_code == 0;
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the broker's coordinators never became ready");
}

type CaseFn = for<'a> fn(&'a mut Side, &'a mut Out) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

macro_rules! case {
    ($name:literal, |$side:ident, $out:ident| $body:block) => {
        ($name, (|$side: &mut Side, $out: &mut Out| Box::pin(async move $body)) as CaseFn)
    };
}

fn cases() -> Vec<(&'static str, CaseFn)> {
    vec![
        case!("produce-unknown-topic", |sd, out| {
            produce(&mut sd.c, out, 9, "kd-missing", 0, batch(1, now_ms(), Compression::None)).await;
        }),
        case!("produce-partition-out-of-range", |sd, out| {
            create(&mut sd.c, "kd-pr", 2, &[]).await;
            produce(&mut sd.c, out, 9, "kd-pr", 5, batch(1, now_ms(), Compression::None)).await;
            produce(&mut sd.c, out, 9, "kd-pr", -1, batch(1, now_ms(), Compression::None)).await;
        }),
        case!("produce-invalid-acks", |sd, out| {
            create(&mut sd.c, "kd-acks", 1, &[]).await;
            let r = sd.c.send(&produce_req("kd-acks", 0, 2, batch(1, now_ms(), Compression::None)), 9).await;
            produce_lines(out, &r);
        }),
        case!("produce-bad-crc", |sd, out| {
            create(&mut sd.c, "kd-crc", 1, &[]).await;
            let mut b = BytesMut::from(&batch(2, now_ms(), Compression::None)[..]);
            let last = b.len() - 1;
            b[last] ^= 0xff;
            produce(&mut sd.c, out, 9, "kd-crc", 0, b.freeze()).await;
        }),
        case!("produce-too-large-for-topic", |sd, out| {
            create(&mut sd.c, "kd-large", 1, &[("max.message.bytes", "200")]).await;
            produce(&mut sd.c, out, 9, "kd-large", 0, batch(20, now_ms(), Compression::None)).await;
        }),
        case!("produce-magic-1", |sd, out| {
            create(&mut sd.c, "kd-m1", 1, &[]).await;
            produce(&mut sd.c, out, 9, "kd-m1", 0, magic1_message_set()).await;
        }),
        case!("produce-timestamps", |sd, out| {
            create(&mut sd.c, "kd-ts", 1, &[]).await;
            // Two hours ahead: past Kafka 4.0's message.timestamp.after.max.ms (1 h).
            produce(&mut sd.c, out, 9, "kd-ts", 0, batch(1, now_ms() + 2 * 3_600_000, Compression::None)).await;
            // A day ago is fine by default (message.timestamp.before.max.ms is unbounded; older
            // records would race with retention.ms, 7 days by the largest timestamp).
            produce(&mut sd.c, out, 9, "kd-ts", 0, batch(1, now_ms() - 86_400_000, Compression::None)).await;
        }),
        case!("produce-record-count-mismatch", |sd, out| {
            create(&mut sd.c, "kd-cnt", 1, &[]).await;
            let mut b = BytesMut::from(&batch(3, now_ms(), Compression::None)[..]);
            // recordsCount at byte 57; the CRC (from byte 21 on) recomputed so only the count is wrong.
            b[57..61].copy_from_slice(&5i32.to_be_bytes());
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            produce(&mut sd.c, out, 9, "kd-cnt", 0, b.freeze()).await;
        }),
        case!("produce-empty-records", |sd, out| {
            // (Null records are not asked: Kafka 4.0 fails on them with a NullPointerException and
            // never answers the request, which no client relies on.)
            create(&mut sd.c, "kd-empty", 1, &[]).await;
            produce(&mut sd.c, out, 9, "kd-empty", 0, Bytes::new()).await;
        }),
        case!("produce-batch-framing", |sd, out| {
            create(&mut sd.c, "kd-frame", 1, &[]).await;
            let one = batch(2, now_ms(), Compression::None);
            let joined = |parts: &[&[u8]]| Bytes::from(parts.concat());
            // Two whole batches in one partition's records.
            produce(&mut sd.c, out, 9, "kd-frame", 0, joined(&[&one, &one])).await;
            // A whole batch, then bytes that are not one: zeros, the start of a batch.
            produce(&mut sd.c, out, 9, "kd-frame", 0, joined(&[&one, &[0u8; 5]])).await;
            produce(&mut sd.c, out, 9, "kd-frame", 0, joined(&[&one, &one[..20]])).await;
            produce(&mut sd.c, out, 9, "kd-frame", 0, joined(&[&one, &one[..40]])).await;
            // A batch cut short, and one whose length is below any batch's.
            produce(&mut sd.c, out, 9, "kd-frame", 0, one.slice(..one.len() - 10)).await;
            let mut tiny = BytesMut::from(&one[..]);
            tiny[8..12].copy_from_slice(&5i32.to_be_bytes());
            produce(&mut sd.c, out, 9, "kd-frame", 0, tiny.freeze()).await;
            let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-frame", 0, 0, 1 << 20)]), 12).await;
            fetch_lines(out, &f);
        }),
        case!("produce-same-partition-twice", |sd, out| {
            create(&mut sd.c, "kd-twice", 1, &[]).await;
            let p = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch(2, now_ms(), Compression::None)));
            let r = sd.c.send(&ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(tn("kd-twice"))
                .with_partition_data(vec![p.clone(), p])]), 9).await;
            produce_lines(out, &r);
            let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-twice", 0, 0, 1 << 20)]), 12).await;
            fetch_lines(out, &f);
        }),
        case!("produce-idempotent-sequences", |sd, out| {
            create(&mut sd.c, "kd-idem", 1, &[]).await;
            let pid = init_producer(&mut sd.c, None, 60_000).await;
            out.line(format!("init: error {} epoch {}", pid.error_code, pid.producer_epoch));
            let recs = |n: usize| (0..n).map(|i| record(i as i64, now_ms(), "k", b"v")).collect::<Vec<_>>();
            // A first batch must start at sequence 0.
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(2), (pid.producer_id.0, pid.producer_epoch, 5), false)).await;
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(2), (pid.producer_id.0, pid.producer_epoch, 0), false)).await;
            // The same batch again: a duplicate, answered with the first append's offset.
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(2), (pid.producer_id.0, pid.producer_epoch, 0), false)).await;
            // A gap, an older epoch, a newer epoch not at 0.
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(1), (pid.producer_id.0, pid.producer_epoch, 7), false)).await;
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(1), (pid.producer_id.0, pid.producer_epoch + 1, 3), false)).await;
            // A producer id the broker never gave out.
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(1), (987_654_321, 0, 0), false)).await;
            produce(&mut sd.c, out, 9, "kd-idem", 0, producer_batch(recs(1), (987_654_322, 0, 4), false)).await;
        }),
        case!("produce-transactional-outside-a-transaction", |sd, out| {
            create(&mut sd.c, "kd-txo", 1, &[]).await;
            let pid = init_producer(&mut sd.c, Some("kd-txo-id"), 60_000).await;
            out.line(format!("init: error {} epoch {}", pid.error_code, pid.producer_epoch));
            let recs = vec![record(0, now_ms(), "k", b"v")];
            produce(&mut sd.c, out, 9, "kd-txo", 0, producer_batch(recs.clone(), (pid.producer_id.0, pid.producer_epoch, 0), true)).await;
            // The same, with the request naming the transactional id (no transaction begun).
            let mut named_req = produce_req("kd-txo", 0, 1, producer_batch(recs.clone(), (pid.producer_id.0, pid.producer_epoch, 0), true));
            named_req.transactional_id = Some(TransactionalId(nm("kd-txo-id")));
            let r = sd.c.send(&named_req, 9).await;
            produce_lines(out, &r);
            // A transactional batch from a producer id with no transactional id at all.
            let plain = init_producer(&mut sd.c, None, 60_000).await;
            produce(&mut sd.c, out, 9, "kd-txo", 0, producer_batch(recs, (plain.producer_id.0, plain.producer_epoch, 0), true)).await;
        }),
        case!("fetch-offsets-out-of-range", |sd, out| {
            create(&mut sd.c, "kd-foor", 1, &[]).await;
            produce(&mut sd.c, out, 9, "kd-foor", 0, batch(3, now_ms(), Compression::None)).await;
            for offset in [3, 4, 100, -1, -5] {
                let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-foor", 0, offset, 1 << 20)]), 12).await;
                out.line(format!("offset {offset}"));
                fetch_lines(out, &f);
            }
        }),
        case!("fetch-unknown-topic-and-partition", |sd, out| {
            create(&mut sd.c, "kd-fu", 1, &[]).await;
            let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-fu", 3, 0, 1 << 20), fetch_topic("kd-fu-missing", 0, 0, 1 << 20)]), 12).await;
            fetch_lines(out, &f);
            let mut by_id = fetch_topic("", 0, 0, 1 << 20);
            by_id.topic_id = uuid_from(0x1234_5678);
            let f = sd.c.send(&fetch_req(vec![by_id]), 13).await;
            out.line(format!("v13 unknown id: error {} topics {}", f.error_code, f.responses.len()));
            for t in &f.responses {
                for p in &t.partitions {
                    out.line(format!("v13 p{}: error {}", p.partition_index, p.error_code));
                }
            }
        }),
        case!("fetch-tiny-max-bytes", |sd, out| {
            create(&mut sd.c, "kd-tiny", 2, &[]).await;
            produce(&mut sd.c, out, 9, "kd-tiny", 0, batch(5, now_ms(), Compression::None)).await;
            produce(&mut sd.c, out, 9, "kd-tiny", 0, batch(5, now_ms(), Compression::None)).await;
            produce(&mut sd.c, out, 9, "kd-tiny", 1, batch(5, now_ms(), Compression::None)).await;
            for (max, part_max) in [(1 << 20, 0), (1 << 20, 10), (0, 1 << 20), (10, 1 << 20)] {
                let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-tiny", 0, 0, part_max), fetch_topic("kd-tiny", 1, 0, part_max)]).with_max_bytes(max), 12).await;
                out.line(format!("max_bytes {max} partition_max_bytes {part_max}"));
                fetch_lines(out, &f);
            }
        }),
        case!("list-offsets-special-timestamps", |sd, out| {
            create(&mut sd.c, "kd-lo", 1, &[]).await;
            let t0 = now_ms() - 10_000;
            produce(&mut sd.c, out, 9, "kd-lo", 0, batch(3, t0, Compression::None)).await;
            produce(&mut sd.c, out, 9, "kd-lo", 0, batch(2, t0 - 5_000, Compression::None)).await;
            for ts in [-1, -2, -3, -4, -5, -6, 0, t0 - 5_000, t0 + 1, t0 + 2, t0 + 3, now_ms() + 60_000] {
                let r = sd.c.send(&list_offsets_req("kd-lo", 0, ts, 0), 9).await;
                let p = &r.topics[0].partitions[0];
                let ts_label = if ts > t0 + 1_000 { "future".to_string() } else if ts > 1_000_000 { format!("t0{:+}", ts - t0) } else { ts.to_string() };
                let ts_out = if p.timestamp > 1_000_000 { format!("t0{:+}", p.timestamp - t0) } else { p.timestamp.to_string() };
                out.line(format!("timestamp {ts_label}: error {} offset {} timestamp {ts_out}", p.error_code, p.offset));
            }
            let r = sd.c.send(&list_offsets_req("kd-lo", 7, -1, 0), 9).await;
            out.line(format!("partition 7: error {}", r.topics[0].partitions[0].error_code));
            let r = sd.c.send(&list_offsets_req("kd-lo-missing", 0, -1, 0), 9).await;
            out.line(format!("missing topic: error {}", r.topics[0].partitions[0].error_code));
        }),
        case!("metadata-names", |sd, out| {
            for (name, auto) in [("kd bad name", true), ("kd-md-none", false), ("__kd-underscore", false), ("kd.dot", false)] {
                let md = sd.c.send(&MetadataRequest::default().with_allow_auto_topic_creation(auto).with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(tn(name)))])), 12).await;
                let t = &md.topics[0];
                out.line(format!("{name} auto {auto}: error {} partitions {} internal {}", t.error_code, t.partitions.len(), t.is_internal));
            }
            let md = sd.c.send(&MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_topic_id(uuid_from(42))])), 12).await;
            out.line(format!("unknown id: error {} name {:?}", md.topics[0].error_code, md.topics[0].name.as_ref().map(|n| n.0.to_string())));
        }),
        case!("create-topics-refusals", |sd, out| {
            create(&mut sd.c, "kd-exists", 1, &[]).await;
            let t = |name: &str| create_topics_request::CreatableTopic::default().with_name(tn(name)).with_num_partitions(1).with_replication_factor(1);
            // The reference broker and Fjord both run as node 1.
            let assign = |parts: &[(i32, &[i32])]| parts.iter().map(|(p, ids)| create_topics_request::CreatableReplicaAssignment::default().with_partition_index(*p).with_broker_ids(ids.iter().map(|b| BrokerId(*b)).collect())).collect::<Vec<_>>();
            let cfg = |k: &str, v: &str| create_topics_request::CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v)));
            let topics = vec![
                t("kd-exists"),
                t("kd-zero").with_num_partitions(0),
                t("kd-negative").with_num_partitions(-5),
                t("kd-default").with_num_partitions(-1).with_replication_factor(-1),
                t("kd-rf0").with_replication_factor(0),
                t("kd-rf3").with_replication_factor(3),
                t("kd-badcfg").with_configs(vec![cfg("no.such.config", "1")]),
                t("kd-badval").with_configs(vec![cfg("retention.ms", "abc")]),
                t("kd-badpolicy").with_configs(vec![cfg("cleanup.policy", "shred")]),
                t("kd-nullval").with_configs(vec![create_topics_request::CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(None)]),
                t(".."),
                t("kd-bad/slash"),
                t(&"k".repeat(250)),
                t("kd-assign").with_num_partitions(-1).with_replication_factor(-1).with_assignments(vec![create_topics_request::CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(99)])]),
                t("kd-assign-and-count").with_assignments(vec![create_topics_request::CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1)])]),
                t("kd-assign-and-partitions").with_replication_factor(-1).with_assignments(assign(&[(0, &[1])])),
                t("kd-assign-empty").with_num_partitions(-1).with_replication_factor(-1).with_assignments(assign(&[(0, &[])])),
                t("kd-assign-twice").with_num_partitions(-1).with_replication_factor(-1).with_assignments(assign(&[(0, &[1, 1])])),
                t("kd-assign-gap").with_num_partitions(-1).with_replication_factor(-1).with_assignments(assign(&[(1, &[1])])),
                t("kd-assign-same-partition").with_num_partitions(-1).with_replication_factor(-1).with_assignments(assign(&[(0, &[1]), (0, &[1])])),
                t("kd-assign-ok").with_num_partitions(-1).with_replication_factor(-1).with_assignments(assign(&[(0, &[1]), (1, &[1])])),
            ];
            let r = sd.c.send(&CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(10_000).with_validate_only(true), 7).await;
            for t in &r.topics {
                out.line(format!("{}: error {} partitions {} rf {} configs {}", shown(&t.name.0), t.error_code, t.num_partitions, t.replication_factor, t.configs.as_ref().map_or(0, |c| c.len())));
                out.message(&shown(&t.name.0), &t.error_message);
            }
            // The same name twice in one request.
            let r = sd.c.send(&CreateTopicsRequest::default().with_topics(vec![t("kd-dup"), t("kd-dup")]).with_timeout_ms(10_000), 7).await;
            for t in &r.topics {
                out.line(format!("dup {}: error {}", shown(&t.name.0), t.error_code));
                out.message(&shown(&t.name.0), &t.error_message);
            }
        }),
        case!("delete-and-grow-topics", |sd, out| {
            create(&mut sd.c, "kd-grow", 2, &[]).await;
            let r = sd.c.send(&DeleteTopicsRequest::default().with_topic_names(vec![tn("kd-del-missing")]).with_timeout_ms(5000), 5).await;
            out.line(format!("delete missing: error {}", r.responses[0].error_code));
            let r = sd.c.send(&DeleteTopicsRequest::default().with_topics(vec![delete_topics_request::DeleteTopicState::default().with_topic_id(uuid_from(7))]).with_timeout_ms(5000), 6).await;
            out.line(format!("delete unknown id: error {}", r.responses[0].error_code));
            let grow = |name: &str, count: i32| create_partitions_request::CreatePartitionsTopic::default().with_name(tn(name)).with_count(count);
            let r = sd.c.send(&CreatePartitionsRequest::default().with_topics(vec![grow("kd-grow", 1), grow("kd-del-missing", 3)]).with_timeout_ms(5000), 3).await;
            // Answers come in no set order (clients match them by name).
            let mut results: Vec<_> = r.results.iter().collect();
            results.sort_by(|a, b| a.name.0.cmp(&b.name.0));
            for t in results {
                out.line(format!("grow {}: error {}", shown(&t.name.0), t.error_code));
                out.message(&shown(&t.name.0), &t.error_message);
            }
            let r = sd.c.send(&CreatePartitionsRequest::default().with_topics(vec![grow("kd-grow", 2)]).with_timeout_ms(5000), 3).await;
            out.line(format!("grow to the same count: error {}", r.results[0].error_code));
            out.message("same count", &r.results[0].error_message);
        }),
        case!("delete-records", |sd, out| {
            create(&mut sd.c, "kd-dr", 1, &[]).await;
            produce(&mut sd.c, out, 9, "kd-dr", 0, batch(4, now_ms(), Compression::None)).await;
            for offset in [10, 2, 1, -1, -7] {
                let r = sd.c.send(&DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(tn("kd-dr"))
                    .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(offset)])]), 2).await;
                let p = &r.topics[0].partitions[0];
                out.line(format!("delete before {offset}: error {} low watermark {}", p.error_code, p.low_watermark));
            }
        }),
        case!("offset-commit-and-fetch", |sd, out| {
            create(&mut sd.c, "kd-oc", 1, &[]).await;
            let commit = |group: &str, generation: i32, member: &str, topic: &str, offset: i64| {
                OffsetCommitRequest::default().with_group_id(GroupId(nm(group))).with_generation_id_or_member_epoch(generation).with_member_id(s(member)).with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(tn(topic))
                    .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset).with_committed_metadata(Some(s("m")))])])
            };
            for (group, generation, member, topic, offset) in [("kd-g1", -1, "", "kd-oc", 5), ("kd-g1", 5, "someone", "kd-oc", 6), ("kd-g1", -1, "", "kd-oc-missing", 1), ("kd-g1", -1, "", "kd-oc", -3)] {
                let r = sd.c.send(&commit(group, generation, member, topic, offset), 8).await;
                out.line(format!("commit {group} gen {generation} {topic}@{offset}: error {}", r.topics[0].partitions[0].error_code));
            }
            for group in ["kd-g1", "kd-g-none"] {
                let r = sd.c.send(&OffsetFetchRequest::default().with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(nm(group))).with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default().with_name(tn("kd-oc")).with_partition_indexes(vec![0, 4])]))]), 8).await;
                let g = &r.groups[0];
                for t in &g.topics {
                    for p in &t.partitions {
                        out.line(format!("fetch {group} p{}: error {} offset {} metadata {:?}", p.partition_index, p.error_code, p.committed_offset, p.metadata.as_ref().map(|m| m.to_string())));
                    }
                }
                out.line(format!("fetch {group}: error {}", g.error_code));
            }
        }),
        case!("group-calls-on-unknown-groups", |sd, out| {
            let g = GroupId(nm("kd-nogroup"));
            let r = sd.c.send(&DescribeGroupsRequest::default().with_groups(vec![g.clone()]), 5).await;
            out.line(format!("describe: error {} state {} protocol type {}", r.groups[0].error_code, r.groups[0].group_state, r.groups[0].protocol_type));
            let r = sd.c.send(&HeartbeatRequest::default().with_group_id(g.clone()).with_generation_id(1).with_member_id(s("m")), 4).await;
            out.line(format!("heartbeat: error {}", r.error_code));
            let r = sd.c.send(&SyncGroupRequest::default().with_group_id(g.clone()).with_generation_id(1).with_member_id(s("m")).with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s("range"))), 5).await;
            out.line(format!("sync: error {}", r.error_code));
            let r = sd.c.send(&LeaveGroupRequest::default().with_group_id(g.clone()).with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s("m"))]), 5).await;
            out.line(format!("leave: error {} members {:?}", r.error_code, r.members.iter().map(|m| m.error_code).collect::<Vec<_>>()));
            let r = sd.c.send(&DeleteGroupsRequest::default().with_groups_names(vec![g.clone()]), 2).await;
            out.line(format!("delete: error {}", r.results[0].error_code));
            let r = sd.c.send(&OffsetDeleteRequest::default().with_group_id(g.clone()).with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default().with_name(tn("kd-oc")).with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)])]), 0).await;
            out.line(format!("offset delete: error {}", r.error_code));
        }),
        case!("join-group-edges", |sd, out| {
            let join = |group: &str, member: &str, ptype: &str, session: i32| {
                JoinGroupRequest::default().with_group_id(GroupId(nm(group))).with_session_timeout_ms(session).with_rebalance_timeout_ms(10_000).with_member_id(s(member)).with_protocol_type(s(ptype)).with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"x"))])
            };
            let r = sd.c.send(&join("kd-jg", "", "consumer", 10_000), 9).await;
            out.line(format!("first join: error {} member id given {}", r.error_code, !r.member_id.is_empty()));
            let r = sd.c.send(&join("kd-jg", "", "consumer", 1), 9).await;
            out.line(format!("session 1 ms: error {}", r.error_code));
            let r = sd.c.send(&join("kd-jg", "", "consumer", 1_000_000_000), 9).await;
            out.line(format!("session too long: error {}", r.error_code));
            let r = sd.c.send(&join("kd-jg", "unknown-member", "consumer", 10_000), 9).await;
            out.line(format!("unknown member: error {}", r.error_code));
            let r = sd.c.send(&join("", "", "consumer", 10_000), 9).await;
            out.line(format!("empty group id: error {}", r.error_code));
        }),
        case!("find-coordinator-and-init-producer", |sd, out| {
            for (key_type, key) in [(0, "kd-fc"), (1, "kd-fc-txn"), (2, "kd-fc"), (7, "kd-fc")] {
                let r = sd.c.send(&FindCoordinatorRequest::default().with_key_type(key_type).with_coordinator_keys(vec![nm(key)]), 4).await;
                out.line(format!("find key type {key_type}: error {}", r.coordinators[0].error_code));
            }
            let r = init_producer(&mut sd.c, Some("kd-ip"), 2_000_000_000).await;
            out.line(format!("init timeout too long: error {}", r.error_code));
            let r = init_producer(&mut sd.c, Some("kd-ip"), 0).await;
            out.line(format!("init timeout 0: error {}", r.error_code));
            let r = init_producer(&mut sd.c, Some(""), 60_000).await;
            out.line(format!("init empty transactional id: error {}", r.error_code));
        }),
        case!("transaction-calls-out-of-order", |sd, out| {
            create(&mut sd.c, "kd-tx", 1, &[]).await;
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-tx-never"))).with_producer_id(ProducerId(5)).with_producer_epoch(0).with_committed(true), 4).await;
            out.line(format!("end unknown: error {}", r.error_code));
            let pid = init_producer(&mut sd.c, Some("kd-tx-id"), 60_000).await;
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-tx-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_committed(true), 4).await;
            out.line(format!("end with nothing begun: error {}", r.error_code));
            let add = |epoch: i16, topic: &str| {
                AddPartitionsToTxnRequest::default().with_v3_and_below_transactional_id(TransactionalId(nm("kd-tx-id"))).with_v3_and_below_producer_id(pid.producer_id).with_v3_and_below_producer_epoch(epoch).with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(tn(topic)).with_partitions(vec![0])])
            };
            for (epoch, topic) in [(pid.producer_epoch + 3, "kd-tx"), (pid.producer_epoch, "kd-tx-missing"), (pid.producer_epoch, "kd-tx")] {
                let r = sd.c.send(&add(epoch, topic), 3).await;
                let res = &r.results_by_topic_v3_and_below[0];
                out.line(format!("add {topic} epoch +{}: error {} partitions {:?}", epoch - pid.producer_epoch, r.error_code, res.results_by_partition.iter().map(|p| p.partition_error_code).collect::<Vec<_>>()));
            }
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-tx-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_committed(false), 4).await;
            out.line(format!("abort: error {}", r.error_code));
        }),
        case!("configs-describe-and-alter-refusals", |sd, out| {
            create(&mut sd.c, "kd-cfg", 1, &[]).await;
            let res = |rtype: i8, name: &str| describe_configs_request::DescribeConfigsResource::default().with_resource_type(rtype).with_resource_name(nm(name)).with_configuration_keys(Some(vec![s("retention.ms")]));
            let r = sd.c.send(&DescribeConfigsRequest::default().with_resources(vec![res(2, "kd-cfg-missing"), res(2, ""), res(4, "99"), res(4, "abc"), res(2, "kd-cfg")]), 4).await;
            for x in &r.results {
                out.line(format!("describe {} {}: error {} configs {:?}", x.resource_type, shown(&x.resource_name), x.error_code, x.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()), c.config_source)).collect::<Vec<_>>()));
            }
            let alter = |name: &str, op: i8, value: Option<&str>| {
                IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(nm("kd-cfg")).with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default().with_name(s(name)).with_config_operation(op).with_value(value.map(s)),
                ])])
            };
            // (An unknown operation, 9, is not asked: Kafka 4.0 answers UNKNOWN_SERVER_ERROR,
            // Fjord INVALID_REQUEST.)
            for (name, op, value) in [("no.such.config", 0, Some("1")), ("retention.ms", 0, Some("abc")), ("retention.ms", 1, None), ("cleanup.policy", 2, Some("compact")), ("cleanup.policy", 2, Some("shred")), ("retention.ms", 2, Some("5")), ("segment.bytes", 0, Some("10"))] {
                let r = sd.c.send(&alter(name, op, value), 1).await;
                out.line(format!("alter {name} op {op} {value:?}: error {}", r.responses[0].error_code));
                out.message(name, &r.responses[0].error_message);
            }
            let twice = IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(nm("kd-cfg")).with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default().with_name(s("retention.ms")).with_config_operation(0).with_value(Some(s("5"))),
                incremental_alter_configs_request::AlterableConfig::default().with_name(s("retention.ms")).with_config_operation(0).with_value(Some(s("6"))),
            ])]);
            let r = sd.c.send(&twice, 1).await;
            out.line(format!("alter a key twice: error {}", r.responses[0].error_code));
            out.message("twice", &r.responses[0].error_message);
        }),
        case!("create-partitions-assignments", |sd, out| {
            create(&mut sd.c, "kd-cp", 1, &[]).await;
            let grow = |count: i32, assignments: Option<Vec<Vec<i32>>>| {
                CreatePartitionsRequest::default().with_timeout_ms(5000).with_validate_only(true).with_topics(vec![create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(tn("kd-cp"))
                    .with_count(count)
                    .with_assignments(assignments.map(|a| a.into_iter().map(|ids| create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(ids.into_iter().map(BrokerId).collect())).collect()))])
            };
            for (count, assignments) in [(2, Some(vec![vec![99]])), (2, Some(vec![vec![1, 1]])), (2, Some(vec![vec![]])), (3, Some(vec![vec![1]])), (2, Some(vec![vec![1]])), (2, None), (0, None), (-1, None)] {
                let r = sd.c.send(&grow(count, assignments.clone()), 3).await;
                out.line(format!("grow to {count} with {assignments:?}: error {}", r.results[0].error_code));
                out.message(&format!("grow to {count}"), &r.results[0].error_message);
            }
        }),
        case!("describe-producers", |sd, out| {
            create(&mut sd.c, "kd-dp", 2, &[]).await;
            let pid = init_producer(&mut sd.c, None, 60_000).await;
            let recs = (0..3).map(|i| record(i, now_ms(), "k", b"v")).collect::<Vec<_>>();
            produce(&mut sd.c, out, 9, "kd-dp", 0, producer_batch(recs, (pid.producer_id.0, pid.producer_epoch, 0), false)).await;
            let r = sd.c.send(&DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default().with_name(tn("kd-dp")).with_partition_indexes(vec![0, 1, 7])]), 0).await;
            for t in &r.topics {
                for p in &t.partitions {
                    let producers: Vec<_> = p.active_producers.iter().map(|a| (a.producer_id.0 == pid.producer_id.0, a.producer_epoch, a.last_sequence, a.coordinator_epoch, a.current_txn_start_offset)).collect();
                    out.line(format!("p{}: error {} producers {producers:?}", p.partition_index, p.error_code));
                }
            }
        }),
        case!("describe-and-list-transactions", |sd, out| {
            let pid = init_producer(&mut sd.c, Some("kd-dt"), 45_000).await;
            out.line(format!("init: error {}", pid.error_code));
            let r = sd.c.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(nm("kd-dt")), TransactionalId(nm("kd-dt-none"))]), 0).await;
            for t in &r.transaction_states {
                let pid_shown = if t.error_code == 0 { "given".to_string() } else { t.producer_id.0.to_string() };
                out.line(format!("{}: error {} state {} timeout {} producer {pid_shown} epoch {} start {} topics {}", shown(&t.transactional_id.0), t.error_code, t.transaction_state, t.transaction_timeout_ms, t.producer_epoch, t.transaction_start_time_ms, t.topics.len()));
            }
            let r = sd.c.send(&ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing")]), 1).await;
            out.line(format!("list ongoing: error {} unknown filters {:?} ours {}", r.error_code, r.unknown_state_filters.iter().map(|f| f.to_string()).collect::<Vec<_>>(), r.transaction_states.iter().any(|t| t.transactional_id.0.ends_with(run_suffix()))));
            let r = sd.c.send(&ListTransactionsRequest::default().with_state_filters(vec![s("Bogus")]), 1).await;
            out.line(format!("list bogus: error {} unknown filters {:?}", r.error_code, r.unknown_state_filters.iter().map(|f| f.to_string()).collect::<Vec<_>>()));
            let r = sd.c.send(&ListTransactionsRequest::default().with_duration_filter(-5), 1).await;
            out.line(format!("list negative duration: error {}", r.error_code));
        }),
        case!("offset-for-leader-epoch", |sd, out| {
            create(&mut sd.c, "kd-ofle", 1, &[]).await;
            produce(&mut sd.c, out, 9, "kd-ofle", 0, batch(3, now_ms(), Compression::None)).await;
            for (partition, current, epoch) in [(0, -1, 0), (0, -1, 5), (0, 7, 0), (0, -1, -1), (4, -1, 0)] {
                let r = sd.c.send(&OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(tn("kd-ofle"))
                    .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_partition(partition).with_current_leader_epoch(current).with_leader_epoch(epoch)])]), 4).await;
                let p = &r.topics[0].partitions[0];
                out.line(format!("p{partition} current {current} epoch {epoch}: error {} leader_epoch {} end_offset {}", p.error_code, p.leader_epoch, p.end_offset));
            }
        }),
        case!("acls-without-an-authorizer", |sd, out| {
            let r = sd.c.send(&DescribeAclsRequest::default().with_resource_type_filter(1).with_pattern_type_filter(1).with_operation(1).with_permission_type(1), 3).await;
            out.line(format!("describe: error {}", r.error_code));
            let creation = create_acls_request::AclCreation::default().with_resource_type(2).with_resource_name(s("t")).with_resource_pattern_type(3).with_principal(s("User:x")).with_host(s("*")).with_operation(3).with_permission_type(3);
            let r = sd.c.send(&CreateAclsRequest::default().with_creations(vec![creation]), 3).await;
            out.line(format!("create: errors {:?}", r.results.iter().map(|x| x.error_code).collect::<Vec<_>>()));
        }),
        case!("describe-log-dirs-sizes", |sd, out| {
            create(&mut sd.c, "kd-dld", 2, &[]).await;
            produce(&mut sd.c, out, 9, "kd-dld", 0, batch(10, now_ms(), Compression::None)).await;
            let r = sd.c.send(&DescribeLogDirsRequest::default().with_topics(Some(vec![describe_log_dirs_request::DescribableLogDirTopic::default().with_topic(tn("kd-dld")).with_partitions(vec![0, 1, 9])])), 4).await;
            out.line(format!("error {} dirs {}", r.error_code, r.results.len()));
            for d in &r.results {
                for t in &d.topics {
                    let mut parts: Vec<_> = t.partitions.iter().map(|p| (p.partition_index, p.partition_size, p.offset_lag, p.is_future_key)).collect();
                    parts.sort();
                    out.line(format!("dir error {} {}: {parts:?}", d.error_code, shown(&t.name.0)));
                }
            }
        }),
        case!("transactional-offsets-out-of-order", |sd, out| {
            create(&mut sd.c, "kd-txoc", 1, &[]).await;
            let pid = init_producer(&mut sd.c, Some("kd-txoc-id"), 60_000).await;
            let r = sd.c.send(&AddOffsetsToTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-txoc-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch + 1).with_group_id(GroupId(nm("kd-txoc-g"))), 3).await;
            out.line(format!("add offsets, wrong epoch: error {}", r.error_code));
            let commit = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(nm("kd-txoc-id")))
                .with_group_id(GroupId(nm("kd-txoc-g")))
                .with_producer_id(pid.producer_id)
                .with_producer_epoch(pid.producer_epoch)
                .with_generation_id(-1)
                .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(tn("kd-txoc"))
                    .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1)])]);
            let r = sd.c.send(&commit, 3).await;
            out.line(format!("txn offset commit, group not added: errors {:?}", r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect::<Vec<_>>()));
            let r = sd.c.send(&AddOffsetsToTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-txoc-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_group_id(GroupId(nm("kd-txoc-g"))), 3).await;
            out.line(format!("add offsets: error {}", r.error_code));
            let r = sd.c.send(&commit, 3).await;
            out.line(format!("txn offset commit: errors {:?}", r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect::<Vec<_>>()));
            let r = sd.c.send(&commit.clone().with_producer_epoch(pid.producer_epoch + 2), 3).await;
            out.line(format!("txn offset commit, newer epoch: errors {:?}", r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect::<Vec<_>>()));
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-txoc-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_committed(true), 4).await;
            out.line(format!("commit: error {}", r.error_code));
        }),
        case!("transactional-offsets-of-a-consumer-protocol-member", |sd, out| {
            create(&mut sd.c, "kd-txcg", 1, &[]).await;
            let r = sd.c.send(&ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(nm("kd-txcg-g"))).with_member_id(s("kd-txcg-m")).with_member_epoch(0).with_rebalance_timeout_ms(30_000).with_subscribed_topic_names(Some(vec![tn("kd-txcg")])).with_topic_partitions(Some(vec![])), 0).await;
            out.line(format!("join: error {} epoch {}", r.error_code, r.member_epoch));
            let epoch = r.member_epoch;
            let pid = init_producer(&mut sd.c, Some("kd-txcg-id"), 60_000).await;
            let r = sd.c.send(&AddOffsetsToTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-txcg-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_group_id(GroupId(nm("kd-txcg-g"))), 3).await;
            out.line(format!("add offsets: error {}", r.error_code));
            // The group metadata a consumer hands its producer: member id and member epoch.
            let commit = |member: &str, epoch: i32| {
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(nm("kd-txcg-id")))
                    .with_group_id(GroupId(nm("kd-txcg-g")))
                    .with_producer_id(pid.producer_id)
                    .with_producer_epoch(pid.producer_epoch)
                    .with_member_id(s(member))
                    .with_generation_id(epoch)
                    .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(tn("kd-txcg"))
                        .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1)])])
            };
            for (what, member, e) in [("its epoch", "kd-txcg-m", epoch), ("a newer epoch", "kd-txcg-m", epoch + 3), ("an unknown member", "kd-txcg-x", epoch)] {
                let r = sd.c.send(&commit(member, e), 3).await;
                out.line(format!("txn offset commit, {what}: errors {:?}", r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect::<Vec<_>>()));
            }
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-txcg-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_committed(true), 4).await;
            out.line(format!("commit: error {}", r.error_code));
        }),
        case!("read-committed-around-a-transaction", |sd, out| {
            create(&mut sd.c, "kd-rc", 1, &[]).await;
            produce(&mut sd.c, out, 9, "kd-rc", 0, batch(2, now_ms(), Compression::None)).await;
            let pid = init_producer(&mut sd.c, Some("kd-rc-id"), 60_000).await;
            let add = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(nm("kd-rc-id")))
                .with_v3_and_below_producer_id(pid.producer_id)
                .with_v3_and_below_producer_epoch(pid.producer_epoch)
                .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(tn("kd-rc")).with_partitions(vec![0])]);
            let r = sd.c.send(&add, 3).await;
            out.line(format!("add: errors {:?}", r.results_by_topic_v3_and_below.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code)).collect::<Vec<_>>()));
            let mut req = produce_req("kd-rc", 0, -1, producer_batch((0..3).map(|i| record(i, now_ms(), "k", b"v")).collect(), (pid.producer_id.0, pid.producer_epoch, 0), true));
            req.transactional_id = Some(TransactionalId(nm("kd-rc-id")));
            let r = sd.c.send(&req, 9).await;
            produce_lines(out, &r);
            produce(&mut sd.c, out, 9, "kd-rc", 0, batch(1, now_ms(), Compression::None)).await;
            for isolation in [0, 1] {
                let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-rc", 0, 0, 1 << 20)]).with_isolation_level(isolation), 12).await;
                out.line(format!("isolation {isolation}"));
                fetch_lines(out, &f);
                let r = sd.c.send(&list_offsets_req("kd-rc", 0, -1, isolation), 9).await;
                out.line(format!("latest offset: {}", r.topics[0].partitions[0].offset));
            }
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm("kd-rc-id"))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_committed(false), 4).await;
            out.line(format!("abort: error {}", r.error_code));
            // The marker is written a moment after the answer.
            for _ in 0..50 {
                let r = sd.c.send(&list_offsets_req("kd-rc", 0, -1, 1), 9).await;
                if r.topics[0].partitions[0].offset == 7 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-rc", 0, 0, 1 << 20)]).with_isolation_level(1), 12).await;
            out.line("after the abort, read_committed");
            fetch_lines(out, &f);
        }),
        case!("kip890-produce-adds-partitions-and-end-txn-bumps-the-epoch", |sd, out| {
            // KIP-890 part 2 (transaction.version 2, both brokers' default): Produce v12 adds its
            // partition to the transaction, and every EndTxn v5 moves the producer one epoch up.
            create(&mut sd.c, "kd-890", 2, &[]).await;
            let id = "kd-890-id";
            let pid = init_producer(&mut sd.c, Some(id), 60_000).await;
            let (p, e) = (pid.producer_id, pid.producer_epoch);
            out.line(format!("init: error {} epoch {e}", pid.error_code));
            let txn_produce = |partition: i32, epoch: i16, seq: i32| {
                let mut req = produce_req("kd-890", partition, -1, producer_batch((0..2).map(|i| record(i, now_ms(), "k", b"v")).collect(), (p.0, epoch, seq), true));
                req.transactional_id = Some(TransactionalId(nm(id)));
                req
            };
            // Not added by the producer: verified (and refused) up to v11, added from v12.
            for v in [10, 11, 12] {
                out.line(format!("produce v{v}, partition not added"));
                produce_lines(out, &sd.c.send(&txn_produce(0, e, 0), v).await);
            }
            out.line("produce v12, another partition, a newer epoch, then the current one");
            produce_lines(out, &sd.c.send(&txn_produce(1, e + 1, 0), 12).await);
            produce_lines(out, &sd.c.send(&txn_produce(1, e, 0), 12).await);
            let end = |epoch: i16, commit: bool| EndTxnRequest::default().with_transactional_id(TransactionalId(nm(id))).with_producer_id(p).with_producer_epoch(epoch).with_committed(commit);
            // Kafka answers before its markers are written: retried while it says CONCURRENT_TRANSACTIONS.
            let end_txn = async |c: &mut Client, out: &mut Out, what: &str, epoch: i16, commit: bool, v: i16| {
                let mut r = c.send(&end(epoch, commit), v).await;
                for _ in 0..50 {
                    if r.error_code != 51 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    r = c.send(&end(epoch, commit), v).await;
                }
                out.line(format!("{what}: error {} same id {} epoch {}", r.error_code, r.producer_id == p, r.producer_epoch - e));
            };
            end_txn(&mut sd.c, out, "commit v5", e, true, 5).await;
            end_txn(&mut sd.c, out, "commit v5 again at the old epoch", e, true, 5).await;
            end_txn(&mut sd.c, out, "abort v5 at the old epoch", e, false, 5).await;
            end_txn(&mut sd.c, out, "commit v5 two epochs up", e + 2, true, 5).await;
            end_txn(&mut sd.c, out, "commit v5 with nothing open", e + 1, true, 5).await;
            out.line("the next transaction at the new epoch, then a write at the old one");
            let mut r = sd.c.send(&txn_produce(0, e + 1, 0), 12).await;
            for _ in 0..50 {
                if r.responses[0].partition_responses[0].error_code != 51 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                r = sd.c.send(&txn_produce(0, e + 1, 0), 12).await;
            }
            produce_lines(out, &r);
            produce_lines(out, &sd.c.send(&txn_produce(0, e, 2), 12).await);
            end_txn(&mut sd.c, out, "abort v5", e + 1, false, 5).await;
            end_txn(&mut sd.c, out, "abort v5 with nothing open", e + 2, false, 5).await;
            end_txn(&mut sd.c, out, "its retry", e + 2, false, 5).await;
            end_txn(&mut sd.c, out, "abort v4 at the current epoch", e + 3, false, 4).await;
            end_txn(&mut sd.c, out, "commit v4 at the current epoch", e + 3, true, 4).await;
            // Each batch of partition 0: data or marker, and its epoch above the first.
            for _ in 0..50 {
                if sd.c.send(&list_offsets_req("kd-890", 0, -1, 1), 9).await.topics[0].partitions[0].offset == 6 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-890", 0, 0, 1 << 20)]), 12).await;
            let mut records = f.responses[0].partitions[0].records.clone().unwrap_or_default();
            let batches: Vec<String> = RecordBatchDecoder::decode_all(&mut records)
                .map(|sets| sets.iter().flat_map(|s| s.records.first()).map(|r| format!("{}{}", if r.control { "marker@" } else { "data@" }, r.producer_epoch - e)).collect())
                .unwrap_or_default();
            out.line(format!("partition 0: {batches:?}"));
        }),
        case!("kip890-txn-offset-commit-adds-the-offsets-partition", |sd, out| {
            create(&mut sd.c, "kd-890o", 1, &[]).await;
            let id = "kd-890o-id";
            let pid = init_producer(&mut sd.c, Some(id), 60_000).await;
            let commit = |epoch: i16| {
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(nm(id)))
                    .with_group_id(GroupId(nm("kd-890o-g")))
                    .with_producer_id(pid.producer_id)
                    .with_producer_epoch(epoch)
                    .with_generation_id(-1)
                    .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(tn("kd-890o"))
                        .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(5)])])
            };
            let codes = |r: &TxnOffsetCommitResponse| r.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect::<Vec<_>>();
            // Without AddOffsetsToTxn: refused up to v4, the offsets partition added from v5.
            for v in [3, 4, 5] {
                out.line(format!("txn offset commit v{v}: errors {:?}", codes(&sd.c.send(&commit(pid.producer_epoch), v).await)));
            }
            out.line(format!("txn offset commit v5, a newer epoch: errors {:?}", codes(&sd.c.send(&commit(pid.producer_epoch + 1), 5).await)));
            let d = sd.c.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(nm(id))]), 0).await;
            let st = &d.transaction_states[0];
            out.line(format!("describe: error {} state {} topics {:?}", st.error_code, st.transaction_state.as_str(), st.topics.iter().map(|t| t.topic.0.as_str().to_string()).collect::<Vec<_>>()));
            let r = sd.c.send(&EndTxnRequest::default().with_transactional_id(TransactionalId(nm(id))).with_producer_id(pid.producer_id).with_producer_epoch(pid.producer_epoch).with_committed(true), 5).await;
            out.line(format!("commit v5: error {} epoch {}", r.error_code, r.producer_epoch - pid.producer_epoch));
            // The committed offset, once the marker is in (read_committed OffsetFetch waits for it).
            let mut committed = -2;
            for _ in 0..50 {
                let g = sd.c.send(&OffsetFetchRequest::default().with_require_stable(true).with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(nm("kd-890o-g"))).with_topics(None)]), 8).await;
                let found = g.groups[0].topics.iter().flat_map(|t| t.partitions.iter()).map(|p| (p.error_code, p.committed_offset)).next();
                if let Some((0, o)) = found {
                    committed = o;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            out.line(format!("committed offset: {committed}"));
        }),
        case!("consumer-group-heartbeat-edges", |sd, out| {
            create(&mut sd.c, "kd-cgh", 2, &[]).await;
            let beat_in = |group: &str, member: &str, epoch: i32| {
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(nm(group)))
                    .with_member_id(s(member))
                    .with_member_epoch(epoch)
                    .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
                    .with_subscribed_topic_names(if epoch == 0 { Some(vec![tn("kd-cgh")]) } else { None })
                    .with_topic_partitions(if epoch == 0 { Some(vec![]) } else { None })
            };
            let beat = |member: &str, epoch: i32| beat_in("kd-cgh-g", member, epoch);
            let r = sd.c.send(&beat("kd-member-a", 0), 0).await;
            // (Its first assignment is left out: a fresh Kafka may give it on a later heartbeat.)
            out.line(format!("join: error {} epoch {} interval {}", r.error_code, r.member_epoch, r.heartbeat_interval_ms));
            let r = sd.c.send(&beat("kd-member-a", 9), 0).await;
            out.line(format!("wrong epoch: error {}", r.error_code));
            let r = sd.c.send(&beat("kd-member-b", 3), 0).await;
            out.line(format!("unknown member: error {}", r.error_code));
            // (In a group of its own: a member joined here stays.)
            let r = sd.c.send(&beat_in("kd-cgh-other", "", 0), 0).await;
            out.line(format!("empty member id: error {} member id given {}", r.error_code, r.member_id.as_ref().is_some_and(|m| !m.is_empty())));
            let r = sd.c.send(&beat("kd-member-a", -1), 0).await;
            out.line(format!("leave: error {} epoch {}", r.error_code, r.member_epoch));
            // A classic join to the same group id, now an empty consumer group.
            let r = sd.c.send(&JoinGroupRequest::default().with_group_id(GroupId(nm("kd-cgh-g"))).with_session_timeout_ms(10_000).with_rebalance_timeout_ms(10_000).with_protocol_type(s("consumer")).with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"x"))]), 9).await;
            out.line(format!("classic join after: error {}", r.error_code));
        }),
        case!("consumer-protocol-static-members", |sd, out| {
            create(&mut sd.c, "kd-cps", 4, &[]).await;
            let topic_id = {
                let md = sd.c.send(&MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(tn("kd-cps")))])), 12).await;
                md.topics[0].topic_id
            };
            let owning = |ps: &[i32]| Some(vec![consumer_group_heartbeat_request::TopicPartitions::default().with_topic_id(topic_id).with_partitions(ps.to_vec())]);
            let beat = |member: &str, instance: Option<&str>, epoch: i32| {
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(nm("kd-cps-g")))
                    .with_member_id(s(member))
                    .with_instance_id(instance.map(s))
                    .with_member_epoch(epoch)
                    .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
                    .with_subscribed_topic_names(if epoch == 0 { Some(vec![tn("kd-cps")]) } else { None })
                    .with_topic_partitions(if epoch == 0 { Some(vec![]) } else { None })
            };
            let count = |r: &ConsumerGroupHeartbeatResponse| r.assignment.as_ref().map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum::<usize>());
            // A static member alone, until it holds every partition at a settled epoch (the
            // new topic may reach the coordinator a heartbeat late).
            let mut r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), 0), 0).await;
            let mut held: Vec<i32> = Vec::new();
            for _ in 0..20 {
                if let Some(a) = &r.assignment {
                    held = a.topic_partitions.iter().flat_map(|t| t.partitions.clone()).collect();
                }
                if held.len() == 4 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), r.member_epoch).with_topic_partitions(owning(&held)), 0).await;
            }
            let epoch = r.member_epoch;
            out.line(format!("static member: error {} holds {}", r.error_code, held.len()));
            // A dynamic member joins: the static one must give two up; it reports owning all four
            // (stays at its epoch), then none (moves on at once).
            let b = sd.c.send(&beat("kd-cps-b", None, 0), 0).await;
            out.line(format!("dynamic member: error {} epoch +{} assigned {:?}", b.error_code, b.member_epoch - epoch, count(&b)));
            let r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), epoch).with_topic_partitions(owning(&held)), 0).await;
            out.line(format!("static member owning all: error {} epoch +{} assigned {:?}", r.error_code, r.member_epoch - epoch, count(&r)));
            let r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), r.member_epoch).with_topic_partitions(owning(&[])), 0).await;
            out.line(format!("static member owning none: error {} epoch +{} assigned {:?}", r.error_code, r.member_epoch - epoch, count(&r)));
            let a_epoch = r.member_epoch;
            // Another member id with the instance while it is held; the holder's temporary leave.
            let r = sd.c.send(&beat("kd-cps-c", Some("kd-cps-i"), 0), 0).await;
            out.line(format!("the instance taken while held: error {}", r.error_code));
            let r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), -2), 0).await;
            out.line(format!("temporary leave: error {} epoch {}", r.error_code, r.member_epoch));
            let r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), a_epoch), 0).await;
            out.line(format!("heartbeat after the temporary leave: error {}", r.error_code));
            let d = sd.c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(nm("kd-cps-g"))]), 1).await;
            let mut members: Vec<(String, i32, usize)> = d.groups[0].members.iter().map(|m| (m.member_id.to_string(), if m.member_epoch < 0 { m.member_epoch } else { m.member_epoch - a_epoch }, m.assignment.topic_partitions.iter().map(|t| t.partitions.len()).sum())).collect();
            members.sort();
            out.line(format!("described while it is away: error {} members {members:?}", d.groups[0].error_code));
            // It comes back under a new member id: the same epoch and partitions, no rebalance.
            let r = sd.c.send(&beat("kd-cps-c", Some("kd-cps-i"), 0), 0).await;
            out.line(format!("back under a new id: error {} epoch +{} assigned {:?}", r.error_code, r.member_epoch - a_epoch, count(&r)));
            let r = sd.c.send(&beat("kd-cps-a", Some("kd-cps-i"), a_epoch), 0).await;
            out.line(format!("the old id's heartbeat: error {}", r.error_code));
            let d = sd.c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(nm("kd-cps-g"))]), 1).await;
            let g = &d.groups[0];
            let mut members: Vec<(String, i32)> = g.members.iter().map(|m| (m.member_id.to_string(), m.member_epoch - a_epoch)).collect();
            members.sort();
            out.line(format!("described: error {} epoch +{} members {members:?}", g.error_code, g.group_epoch - a_epoch));
            // It leaves for good: the group epoch moves and the other member is given more.
            let r = sd.c.send(&beat("kd-cps-c", Some("kd-cps-i"), -1), 0).await;
            out.line(format!("leave: error {} epoch {}", r.error_code, r.member_epoch));
            let r = sd.c.send(&beat("kd-cps-b", None, b.member_epoch).with_topic_partitions(owning(&[])), 0).await;
            out.line(format!("dynamic member after: error {} epoch +{}", r.error_code, r.member_epoch - a_epoch));
        }),
        case!("produce-codecs-and-log-append-time", |sd, out| {
            create(&mut sd.c, "kd-codec", 1, &[]).await;
            create(&mut sd.c, "kd-lat", 1, &[("message.timestamp.type", "LogAppendTime")]).await;
            for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
                produce(&mut sd.c, out, 9, "kd-codec", 0, batch(5, now_ms(), codec)).await;
            }
            let f = sd.c.send(&fetch_req(vec![fetch_topic("kd-codec", 0, 0, 1 << 20)]), 12).await;
            fetch_lines(out, &f);
            let r = sd.c.send(&produce_req("kd-lat", 0, 1, batch(2, 1_000, Compression::None)), 9).await;
            let p = &r.responses[0].partition_responses[0];
            out.line(format!("log append time: error {} base_offset {} stamped {}", p.error_code, p.base_offset, p.log_append_time_ms > 1_000_000));
            let lo = sd.c.send(&list_offsets_req("kd-lat", 0, -3, 0), 9).await;
            out.line(format!("max timestamp: offset {} stamped by the broker {}", lo.topics[0].partitions[0].offset, lo.topics[0].partitions[0].timestamp > 1_000_000));
            // A topic deleted, then produced to.
            let r = sd.c.send(&DeleteTopicsRequest::default().with_topic_names(vec![tn("kd-lat")]).with_timeout_ms(5000), 5).await;
            out.line(format!("delete: error {}", r.responses[0].error_code));
            for _ in 0..50 {
                let md = sd.c.send(&MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(tn("kd-lat")))])), 12).await;
                if md.topics[0].error_code != 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            produce(&mut sd.c, out, 9, "kd-lat", 0, batch(1, now_ms(), Compression::None)).await;
        }),
        case!("producer-epoch-bump-fences-the-old-epoch", |sd, out| {
            create(&mut sd.c, "kd-bump", 1, &[]).await;
            let first = init_producer(&mut sd.c, None, 60_000).await;
            let recs = |n: usize| (0..n).map(|i| record(i as i64, now_ms(), "k", b"v")).collect::<Vec<_>>();
            produce(&mut sd.c, out, 9, "kd-bump", 0, producer_batch(recs(2), (first.producer_id.0, first.producer_epoch, 0), false)).await;
            // KIP-360: the producer asks to bump its own epoch.
            let bumped = sd.c.send(&InitProducerIdRequest::default().with_transaction_timeout_ms(60_000).with_producer_id(first.producer_id).with_producer_epoch(first.producer_epoch), 4).await;
            out.line(format!("bump: error {} same id {} epoch +{}", bumped.error_code, bumped.producer_id == first.producer_id, bumped.producer_epoch - first.producer_epoch));
            produce(&mut sd.c, out, 9, "kd-bump", 0, producer_batch(recs(1), (first.producer_id.0, bumped.producer_epoch, 0), false)).await;
            produce(&mut sd.c, out, 9, "kd-bump", 0, producer_batch(recs(1), (first.producer_id.0, first.producer_epoch, 2), false)).await;
            // A bump asked with a stale epoch.
            let stale = sd.c.send(&InitProducerIdRequest::default().with_transaction_timeout_ms(60_000).with_producer_id(first.producer_id).with_producer_epoch(first.producer_epoch), 4).await;
            out.line(format!("stale bump: error {}", stale.error_code));
            let r = sd.c.send(&DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default().with_name(tn("kd-bump")).with_partition_indexes(vec![0])]), 0).await;
            let p = &r.topics[0].partitions[0];
            out.line(format!("producers: {:?}", p.active_producers.iter().map(|a| (a.producer_epoch - first.producer_epoch as i32, a.last_sequence)).collect::<Vec<_>>()));
        }),
        case!("classic-and-consumer-protocol-members-in-one-group", |sd, out| {
            create(&mut sd.c, "kd-mix", 2, &[]).await;
            let topic = named("kd-mix");
            let beat = |group: &str, member: &str, epoch: i32| {
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(nm(group)))
                    .with_member_id(s(member))
                    .with_member_epoch(epoch)
                    .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
                    .with_subscribed_topic_names(if epoch == 0 { Some(vec![tn("kd-mix")]) } else { None })
                    .with_topic_partitions(if epoch == 0 { Some(vec![]) } else { None })
            };
            let mut sub = BytesMut::new();
            sub.put_i16(1);
            ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_string(topic.clone())]).encode(&mut sub, 1).expect("encodes");
            let join = |group: &str, member: &str, protocol_type: &str| {
                JoinGroupRequest::default()
                    .with_group_id(GroupId(nm(group)))
                    .with_member_id(s(member))
                    .with_session_timeout_ms(30_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_protocol_type(s(protocol_type))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(sub.clone().freeze())])
            };
            let sync = |group: &str, member: &str, generation: i32, name: &str| {
                SyncGroupRequest::default().with_group_id(GroupId(nm(group))).with_generation_id(generation).with_member_id(s(member)).with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s(name)))
            };
            // A consumer group with a consumer-protocol member; a classic member joins it.
            let r = sd.c.send(&beat("kd-mix-g", "kd-mix-a", 0), 0).await;
            out.line(format!("consumer-protocol join: error {} epoch {}", r.error_code, r.member_epoch));
            let first = sd.c.send(&join("kd-mix-g", "", "consumer"), 9).await;
            out.line(format!("classic join: error {} member id given {}", first.error_code, !first.member_id.is_empty()));
            let c = first.member_id.to_string();
            let joined = sd.c.send(&join("kd-mix-g", &c, "consumer"), 9).await;
            out.line(format!(
                "classic join with its id: error {} generation {} leader {:?} protocol {:?} members {}",
                joined.error_code,
                joined.generation_id,
                joined.leader.to_string(),
                joined.protocol_name.as_ref().map(|p| p.to_string()),
                joined.members.len()
            ));
            let g = joined.generation_id;
            let r = sd.c.send(&sync("kd-mix-g", &c, g, "range"), 5).await;
            out.line(format!("sync: error {} protocol {:?}", r.error_code, r.protocol_name.as_ref().map(|p| p.to_string())));
            let r = sd.c.send(&sync("kd-mix-g", &c, g + 3, "range"), 5).await;
            out.line(format!("sync, wrong generation: error {}", r.error_code));
            let r = sd.c.send(&sync("kd-mix-g", &c, g, "roundrobin"), 5).await;
            out.line(format!("sync, another protocol name: error {}", r.error_code));
            let r = sd.c.send(&HeartbeatRequest::default().with_group_id(GroupId(nm("kd-mix-g"))).with_generation_id(g + 1).with_member_id(s(&c)), 4).await;
            out.line(format!("heartbeat, wrong generation: error {}", r.error_code));
            let commit = |generation: i32| {
                OffsetCommitRequest::default().with_group_id(GroupId(nm("kd-mix-g"))).with_generation_id_or_member_epoch(generation).with_member_id(s(&c)).with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(tn("kd-mix"))
                    .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(0)])])
            };
            let r = sd.c.send(&commit(g), 8).await;
            out.line(format!("classic commit, v8: error {}", r.topics[0].partitions[0].error_code));
            let r = sd.c.send(&commit(g + 1), 8).await;
            out.line(format!("classic commit, wrong generation: error {}", r.topics[0].partitions[0].error_code));
            let r = sd.c.send(&join("kd-mix-g", "", "connect"), 9).await;
            out.line(format!("another protocol type: error {}", r.error_code));
            let r = sd.c.send(&LeaveGroupRequest::default().with_group_id(GroupId(nm("kd-mix-g"))).with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s(&c))]), 5).await;
            out.line(format!("classic leave: error {} member errors {:?}", r.error_code, r.members.iter().map(|m| m.error_code).collect::<Vec<_>>()));
            let r = sd.c.send(&beat("kd-mix-g", "kd-mix-a", -1), 0).await;
            out.line(format!("consumer-protocol leave: error {}", r.error_code));

            // A stable classic group that a consumer-protocol member joins (upgrade), then leaves
            // (downgrade).
            let first = sd.c.send(&join("kd-mix-up", "", "consumer"), 9).await;
            let c = first.member_id.to_string();
            let joined = sd.c.send(&join("kd-mix-up", &c, "consumer"), 9).await;
            let g = joined.generation_id;
            let mut assignment = BytesMut::new();
            assignment.put_i16(1);
            ConsumerProtocolAssignment::default().with_assigned_partitions(vec![consumer_protocol_assignment::TopicPartition::default().with_topic(TopicName(StrBytes::from_string(topic.clone()))).with_partitions(vec![0, 1])]).encode(&mut assignment, 1).expect("encodes");
            let r = sd.c.send(&sync("kd-mix-up", &c, g, "range").with_assignments(vec![sync_group_request::SyncGroupRequestAssignment::default().with_member_id(s(&c)).with_assignment(assignment.freeze())]), 5).await;
            out.line(format!("classic group: join error {} leader {} sync error {}", joined.error_code, joined.leader == joined.member_id, r.error_code));
            let r = sd.c.send(&beat("kd-mix-up", "kd-mix-b", 0), 0).await;
            out.line(format!("consumer-protocol join of a classic group: error {} epoch is generation + 1 {}", r.error_code, r.member_epoch == g + 1));
            let r = sd.c.send(&HeartbeatRequest::default().with_group_id(GroupId(nm("kd-mix-up"))).with_generation_id(g).with_member_id(s(&c)), 4).await;
            out.line(format!("classic heartbeat after it: error {}", r.error_code));
            let r = sd.c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(nm("kd-mix-up"))]), 1).await;
            let mut types: Vec<i8> = r.groups[0].members.iter().map(|m| m.member_type).collect();
            types.sort();
            out.line(format!("described: error {} member types {types:?}", r.groups[0].error_code));
            let r = sd.c.send(&beat("kd-mix-up", "kd-mix-b", -1), 0).await;
            out.line(format!("consumer-protocol leave: error {}", r.error_code));
            let r = sd.c.send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(nm("kd-mix-up"))]), 5).await;
            let d = &r.groups[0];
            out.line(format!("classic again: error {} state {} protocol type {} members {}", d.error_code, d.group_state, d.protocol_type, d.members.len()));
            let r = sd.c.send(&HeartbeatRequest::default().with_group_id(GroupId(nm("kd-mix-up"))).with_generation_id(g).with_member_id(s(&c)), 4).await;
            out.line(format!("classic heartbeat after the downgrade: error {}", r.error_code));
        }),
        case!("a-classic-static-member-replaces-the-last-consumer-protocol-member", |sd, out| {
            create(&mut sd.c, "kd-rep", 2, &[]).await;
            let topic = named("kd-rep");
            let beat = |group: &str, member: &str, instance: &str, epoch: i32| {
                ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(nm(group)))
                    .with_member_id(s(member))
                    .with_instance_id(Some(s(instance)))
                    .with_member_epoch(epoch)
                    .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
                    .with_subscribed_topic_names(if epoch == 0 { Some(vec![tn("kd-rep")]) } else { None })
                    .with_topic_partitions(if epoch == 0 { Some(vec![]) } else { None })
            };
            let mut sub = BytesMut::new();
            sub.put_i16(1);
            ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_string(topic.clone())]).encode(&mut sub, 1).expect("encodes");
            let join = |group: &str, instance: &str| {
                JoinGroupRequest::default()
                    .with_group_id(GroupId(nm(group)))
                    .with_group_instance_id(Some(s(instance)))
                    .with_session_timeout_ms(30_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(sub.clone().freeze())])
            };
            for (group, others) in [("kd-rep-g", 0), ("kd-rep-h", 1)] {
                // A static consumer-protocol member holding both partitions (and in the second
                // group another consumer-protocol member, which keeps the group a consumer group).
                let r = sd.c.send(&beat(group, "kd-rep-a", "kd-rep-i", 0), 0).await;
                // (The group epoch may move once more as the new topic reaches the coordinator:
                // epochs are shown relative to the last one seen.)
                let r = sd.c.send(&beat(group, "kd-rep-a", "kd-rep-i", r.member_epoch), 0).await;
                out.line(format!("{group}: static consumer-protocol member: error {}", r.error_code));
                let mut epoch = r.member_epoch;
                for i in 0..others {
                    let r = sd.c.send(&beat(group, &format!("kd-rep-o{i}"), &format!("kd-rep-o{i}"), 0), 0).await;
                    out.line(format!("{group}: another consumer-protocol member: error {} epoch +{}", r.error_code, r.member_epoch - epoch));
                    epoch = r.member_epoch;
                }
                // The same instance comes back as a classic consumer.
                let joined = sd.c.send(&join(group, "kd-rep-i"), 9).await;
                out.line(format!(
                    "{group}: classic static join: error {} new member id {} generation +{} leader {:?} protocol {:?} members {}",
                    joined.error_code,
                    joined.member_id.as_str() != "kd-rep-a",
                    joined.generation_id - epoch,
                    joined.leader.to_string(),
                    joined.protocol_name.as_ref().map(|p| p.to_string()),
                    joined.members.len()
                ));
                let r = sd.c.send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(nm(group))]), 5).await;
                let d = &r.groups[0];
                out.line(format!("{group}: described: error {} state {:?} protocol type {:?} protocol {:?} members {}", d.error_code, d.group_state.to_string(), d.protocol_type.to_string(), d.protocol_data.to_string(), d.members.len()));
                let r = sd.c.send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(nm(group))]), 1).await;
                out.line(format!("{group}: consumer group describe: error {} members {}", r.groups[0].error_code, r.groups[0].members.len()));
                let sync = SyncGroupRequest::default()
                    .with_group_id(GroupId(nm(group)))
                    .with_generation_id(joined.generation_id)
                    .with_member_id(joined.member_id.clone())
                    .with_group_instance_id(Some(s("kd-rep-i")))
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(joined.protocol_name.clone());
                let r = sd.c.send(&sync, 5).await;
                let partitions = <ConsumerProtocolAssignment as kafka_protocol::protocol::Decodable>::decode(&mut r.assignment.slice(r.assignment.len().min(2)..), 1).map(|a| a.assigned_partitions.iter().map(|t| t.partitions.len()).sum::<usize>()).unwrap_or(0);
                out.line(format!("{group}: sync: error {} partitions {partitions}", r.error_code));
                let hb = HeartbeatRequest::default().with_group_id(GroupId(nm(group))).with_generation_id(joined.generation_id).with_member_id(joined.member_id.clone()).with_group_instance_id(Some(s("kd-rep-i")));
                let r = sd.c.send(&hb, 4).await;
                out.line(format!("{group}: classic heartbeat: error {}", r.error_code));
                let r = sd.c.send(&beat(group, "kd-rep-a", "kd-rep-i", 1), 0).await;
                out.line(format!("{group}: the replaced member's heartbeat: error {}", r.error_code));
                for epoch in [-2, -1] {
                    let r = sd.c.send(&beat(group, "kd-rep-a", "kd-rep-i", epoch), 0).await;
                    out.line(format!("{group}: the replaced member leaves with epoch {epoch}: error {}", r.error_code));
                }
                let r = sd.c.send(&beat(group, "kd-rep-x", "kd-rep-nobody", 1), 0).await;
                out.line(format!("{group}: an unknown instance's heartbeat: error {}", r.error_code));
                if others > 0 {
                    // A consumer-protocol member takes the classic static member's instance: no
                    // leave is needed first (only between two consumer-protocol members).
                    let r = sd.c.send(&beat(group, "kd-rep-z", "kd-rep-i", 0), 0).await;
                    out.line(format!("{group}: a consumer-protocol member takes the classic member's instance: error {}", r.error_code));
                    let r = sd.c.send(&hb, 4).await;
                    out.line(format!("{group}: the classic member's heartbeat after it: error {}", r.error_code));
                }
            }
        }),
        case!("group-admin-edges", |sd, out| {
            create(&mut sd.c, "kd-ga", 1, &[]).await;
            // A classic member joins and syncs; the group then has a member.
            let join = JoinGroupRequest::default().with_group_id(GroupId(nm("kd-ga-g"))).with_session_timeout_ms(30_000).with_rebalance_timeout_ms(30_000).with_protocol_type(s("consumer")).with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"x"))]);
            let first = sd.c.send(&join, 9).await;
            let member = first.member_id.clone();
            let joined = sd.c.send(&join.clone().with_member_id(member.clone()), 9).await;
            out.line(format!("join: error {} generation {} leader {}", joined.error_code, joined.generation_id, joined.leader == member));
            let r = sd.c.send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(nm("kd-ga-g"))]), 2).await;
            out.line(format!("delete while a member is in: error {}", r.results[0].error_code));
            let r = sd.c.send(&HeartbeatRequest::default().with_group_id(GroupId(nm("kd-ga-g"))).with_generation_id(joined.generation_id + 5).with_member_id(member.clone()), 4).await;
            out.line(format!("heartbeat, wrong generation: error {}", r.error_code));
            let r = sd.c.send(&SyncGroupRequest::default().with_group_id(GroupId(nm("kd-ga-g"))).with_generation_id(joined.generation_id).with_member_id(member.clone()).with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s("roundrobin"))), 5).await;
            out.line(format!("sync, another protocol name: error {}", r.error_code));
            let r = sd.c.send(&ListGroupsRequest::default().with_states_filter(vec![s("Empty")]), 5).await;
            out.line(format!("list empty groups: error {} ours {}", r.error_code, r.groups.iter().any(|g| g.group_id.0.ends_with(run_suffix()))));
            let r = sd.c.send(&ListGroupsRequest::default().with_types_filter(vec![s("classic")]), 5).await;
            out.line(format!("list classic groups: error {} ours {}", r.error_code, r.groups.iter().any(|g| g.group_id.0.ends_with(run_suffix()))));
            let r = sd.c.send(&LeaveGroupRequest::default().with_group_id(GroupId(nm("kd-ga-g"))).with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(member.clone())]), 5).await;
            out.line(format!("leave: error {} members {:?}", r.error_code, r.members.iter().map(|m| m.error_code).collect::<Vec<_>>()));
            let r = sd.c.send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(nm("kd-ga-g"))]), 2).await;
            out.line(format!("delete after: error {}", r.results[0].error_code));
        }),
        case!("cluster-and-scram-describes", |sd, out| {
            let r = sd.c.send(&DescribeClusterRequest::default(), 1).await;
            out.line(format!("cluster: error {} endpoint type {} controller {} brokers {:?} ops {}", r.error_code, r.endpoint_type, r.controller_id.0, r.brokers.iter().map(|b| (b.broker_id.0, b.rack.clone())).collect::<Vec<_>>(), r.cluster_authorized_operations));
            let r = sd.c.send(&DescribeUserScramCredentialsRequest::default().with_users(Some(vec![describe_user_scram_credentials_request::UserName::default().with_name(s("kd-nobody"))])), 0).await;
            out.line(format!("scram: error {} results {:?}", r.error_code, r.results.iter().map(|x| x.error_code).collect::<Vec<_>>()));
            let r = sd.c.send(&DescribeUserScramCredentialsRequest::default().with_users(Some(vec![describe_user_scram_credentials_request::UserName::default().with_name(s("a")), describe_user_scram_credentials_request::UserName::default().with_name(s("a"))])), 0).await;
            out.line(format!("scram twice: error {} results {:?}", r.error_code, r.results.iter().map(|x| x.error_code).collect::<Vec<_>>()));
        }),
        case!("legacy-alter-configs", |sd, out| {
            create(&mut sd.c, "kd-lac", 1, &[]).await;
            let alter = |configs: Vec<(&str, Option<&str>)>| {
                AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default().with_resource_type(2).with_resource_name(nm("kd-lac")).with_configs(
                    configs.into_iter().map(|(k, v)| alter_configs_request::AlterableConfig::default().with_name(s(k)).with_value(v.map(s))).collect(),
                )])
            };
            for configs in [vec![("retention.ms", Some("1000"))], vec![("no.such", Some("1"))], vec![("retention.ms", Some("x"))], vec![("retention.ms", None)], vec![("retention.ms", Some("1")), ("retention.ms", Some("2"))]] {
                let r = sd.c.send(&alter(configs.clone()), 2).await;
                out.line(format!("alter {configs:?}: error {}", r.responses[0].error_code));
                out.message("alter", &r.responses[0].error_message);
            }
        }),
        case!("list-offsets-inside-compressed-batches", |sd, out| {
            create(&mut sd.c, "kd-loc", 1, &[]).await;
            let t0 = now_ms() - 10_000;
            let mut recs: Vec<_> = (0..5).map(|i| record(i, t0 + i * 10, &format!("k{i}"), b"v")).collect();
            // The largest timestamp in the middle of the batch.
            recs[2].timestamp = t0 + 100;
            let mut buf = BytesMut::new();
            kafka_protocol::records::RecordBatchEncoder::encode(&mut buf, &recs, &kafka_protocol::records::RecordEncodeOptions { version: 2, compression: Compression::Lz4 }).expect("encodes");
            produce(&mut sd.c, out, 9, "kd-loc", 0, buf.freeze()).await;
            for ts in [t0, t0 + 5, t0 + 10, t0 + 25, t0 + 40, t0 + 41, t0 + 100, -3] {
                let r = sd.c.send(&list_offsets_req("kd-loc", 0, ts, 0), 9).await;
                let p = &r.topics[0].partitions[0];
                let label = if ts < 0 { ts.to_string() } else { format!("t0+{}", ts - t0) };
                let got = if p.timestamp > 0 { format!("t0+{}", p.timestamp - t0) } else { p.timestamp.to_string() };
                out.line(format!("{label}: error {} offset {} timestamp {got}", p.error_code, p.offset));
            }
        }),
    ]
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let fjord: SocketAddr = args.next().expect("FJORD_HOST:PORT").parse().expect("an address");
    let kafka: SocketAddr = args.next().expect("KAFKA_HOST:PORT").parse().expect("an address");
    let only = args.next();
    let mut sides = [Side { addr: fjord, c: Client::connect(fjord).await }, Side { addr: kafka, c: Client::connect(kafka).await }];
    for side in sides.iter_mut() {
        warm_up(&mut side.c).await;
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, run) in cases() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let mut outs = Vec::new();
        for side in sides.iter_mut() {
            side.c = side.fresh().await;
            eprintln!("{name} on {}", side.addr);
            let mut out = Out::default();
            run(side, &mut out).await;
            outs.push(out);
        }
        let (f, k) = (&outs[0], &outs[1]);
        if f.lines == k.lines {
            passed += 1;
            println!("PASS {name}");
            // KAFKA_DIFF_SHOW=1 prints what both answered.
            if std::env::var_os("KAFKA_DIFF_SHOW").is_some() {
                f.lines.iter().for_each(|l| println!("  {l}"));
            }
        } else {
            failed += 1;
            println!("FAIL {name}");
            for (i, (a, b)) in f.lines.iter().zip(&k.lines).enumerate() {
                if a != b {
                    println!("  [{i}] fjord: {a}\n  [{i}] kafka: {b}");
                }
            }
            if f.lines.len() != k.lines.len() {
                println!("  fjord gave {} lines, kafka {}", f.lines.len(), k.lines.len());
            }
            if std::env::var_os("KAFKA_DIFF_SHOW").is_some() {
                k.lines.iter().for_each(|l| println!("  kafka: {l}"));
            }
        }
        for (a, b) in f.messages.iter().zip(&k.messages) {
            if a != b {
                println!("  NOTE message differs: fjord {a:?}, kafka {b:?}");
            }
        }
    }
    println!("{passed} cases agree, {failed} differ");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
