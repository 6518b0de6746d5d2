//! Wire fuzzing: random and mutated request bodies behind valid headers, for every served API and
//! version. The broker must answer or close that connection, never crash, hang or stop serving
//! others. Deterministic per seed (printed); FJORD_FUZZ_SEED and FJORD_FUZZ_CASES override.

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use fjord::protocol::versions::{served_min, SUPPORTED};
use kafka_protocol::messages::ApiVersionsRequest;
use tokio::io::AsyncReadExt;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_body(rng: &mut XorShift) -> Vec<u8> {
    let len = rng.below(200) as usize;
    let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    // Bias toward interesting integers: counts and lengths of -1, 0, huge.
    for _ in 0..rng.below(4) {
        if body.len() >= 4 {
            let at = rng.below(body.len() as u64 - 3) as usize;
            let v: i32 = [i32::MAX, -1, 0, 1, 0x7fff, i32::MIN][rng.below(6) as usize];
            body[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
    }
    body
}

#[tokio::test]
async fn random_request_bodies_never_crash_or_hang_the_broker() {
    let seed: u64 = std::env::var("FJORD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_f10d);
    let cases: usize = std::env::var("FJORD_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    eprintln!("fuzz seed {seed} cases {cases}");
    let b = TestBroker::start(&["num.partitions=2"]).await;
    let mut healthy = b.client().await;
    let mut rng = XorShift(seed);
    let mut answered = 0;
    for case in 0..cases {
        let (key, _, max) = SUPPORTED[rng.below(SUPPORTED.len() as u64) as usize];
        let min = served_min(key);
        let version = min + rng.below((max - min + 1) as u64) as i16;
        let body = random_body(&mut rng);
        // Header v1 (key, version, correlation id, client id of 4 bytes) then random bytes, which
        // flexible versions also read their tagged header fields from: also fine.
        let mut frame = BytesMut::new();
        frame.put_i32((10 + body.len()) as i32);
        frame.put_i16(key as i16);
        frame.put_i16(version);
        frame.put_i32(case as i32);
        frame.put_i16(4);
        frame.extend_from_slice(&body);
        let mut c = b.client().await;
        c.send_raw(&frame).await;
        // Either a response frame or a close, within the timeout (never a hang).
        let mut len = [0u8; 4];
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), c.stream.read_exact(&mut len)).await;
        // A random body that decodes as a Fetch may legally long-poll for its max_wait_ms, and a
        // JoinGroup/SyncGroup may legally park until its group's rebalance ends.
        use kafka_protocol::messages::ApiKey as K;
        if matches!(key, K::Fetch | K::JoinGroup | K::SyncGroup) && outcome.is_err() {
            continue;
        }
        assert!(outcome.is_ok(), "seed {seed} case {case}: {key:?} v{version} hung");
        if outcome.unwrap().is_ok() {
            answered += 1;
        }
        if case % 50 == 0 {
            assert_eq!(healthy.send(&ApiVersionsRequest::default(), 3).await.error_code, 0, "seed {seed} case {case}");
        }
    }
    assert_eq!(healthy.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    eprintln!("{answered} of {cases} random requests decoded and were answered; the rest closed their connection");
    b.stop().await;
}

/// Valid requests with a few bytes overwritten: reaches deep into the decoders and handlers.
#[tokio::test]
async fn mutated_valid_requests_never_crash_or_hang_the_broker() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::Compression;
    let seed: u64 = std::env::var("FJORD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0xfeed_beef);
    let cases: usize = std::env::var("FJORD_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
    eprintln!("fuzz seed {seed} cases {cases}");
    let b = TestBroker::start(&["num.partitions=2"]).await;
    let mut enc = b.client().await;
    let topic = TopicName(StrBytes::from_static_str("fz"));
    let mut templates: Vec<BytesMut> = vec![];
    let md = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(topic.clone()))]));
    templates.push(enc.encode_request(&md, 12));
    templates.push(enc.encode_request(&md, 4));
    let produce = ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(topic.clone())
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch(3, 5, Compression::Lz4)))])]);
    templates.push(enc.encode_request(&produce, 9));
    templates.push(enc.encode_request(&produce, 3));
    let fetch = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(topic.clone())
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    // A mutated max_wait_ms makes a legal long poll of up to 24 days: that one may park.
    let fetch_template = templates.len();
    templates.push(enc.encode_request(&fetch, 12));
    let lo = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(topic.clone())
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(3)])]);
    templates.push(enc.encode_request(&lo, 9));
    let ct = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default().with_name(topic.clone()).with_num_partitions(2).with_replication_factor(1)]);
    templates.push(enc.encode_request(&ct, 7));
    let dc = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("fz"))
        .with_configuration_keys(None)]);
    templates.push(enc.encode_request(&dc, 4));
    // The topic exists so mutated requests reach the partition code paths.
    let mut setup = b.client().await;
    setup.send(&ct, 7).await;

    let mut healthy = b.client().await;
    let mut rng = XorShift(seed);
    let mut answered = 0;
    for case in 0..cases {
        let template = rng.below(templates.len() as u64) as usize;
        let mut frame = templates[template].clone();
        // Keep the length prefix and api key; mutate the rest.
        for _ in 0..1 + rng.below(3) {
            let at = 6 + rng.below(frame.len() as u64 - 6) as usize;
            if rng.below(2) == 0 || at + 4 > frame.len() {
                frame[at] = rng.next() as u8;
            } else {
                let v: i32 = [i32::MAX, -1, 0, 0x7fff_fff0, i32::MIN, 1 << 20][rng.below(6) as usize];
                frame[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        let mut c = b.client().await;
        c.send_raw(&frame).await;
        let mut len = [0u8; 4];
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), c.stream.read_exact(&mut len)).await;
        if template == fetch_template && outcome.is_err() {
            continue;
        }
        assert!(outcome.is_ok(), "seed {seed} case {case} hung: template {template} frame {:02x?}", &frame[..]);
        if outcome.unwrap().is_ok() {
            answered += 1;
        }
        if case % 50 == 0 {
            assert_eq!(healthy.send(&ApiVersionsRequest::default(), 3).await.error_code, 0, "seed {seed} case {case}");
        }
    }
    assert_eq!(healthy.send(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    eprintln!("{answered} of {cases} mutated requests decoded and were answered; the rest closed their connection");
    b.stop().await;
}
