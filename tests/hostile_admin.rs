//! Wire tests of hostile admin requests (issue 14, D4): CreateTopics / CreatePartitions asking for
//! more partitions than one request may create are refused up front with Kafka's answer and create
//! nothing; a small open-files budget still serves hundreds of partitions; restarts recover.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

const POLICY_VIOLATION: i16 = 44;
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";
const TOO_LARGE_BATCH: &str = "Unable to perform excessively large batch operation.";

/// Partition directories in the broker's log dir (names with a `-<n>` suffix).
fn partition_dirs(b: &TestBroker) -> usize {
    std::fs::read_dir(b.dir.path())
        .expect("log dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && e.file_name().to_string_lossy().rsplit_once('-').is_some_and(|(_, n)| n.parse::<u32>().is_ok()))
        .count()
}

async fn partitions_of(c: &mut Client, topic: &str) -> Option<usize> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let r = c.send(&req, 12).await;
    (r.topics[0].error_code == 0).then(|| r.topics[0].partitions.len())
}

fn message(m: &Option<StrBytes>) -> String {
    m.as_ref().map(|m| m.to_string()).unwrap_or_default()
}

/// One batch of one record whose value names its partition.
fn tagged_batch(topic: &str, partition: i32, round: u32) -> Bytes {
    let recs = vec![record(0, 1_000, "k", format!("{topic}/{partition}/{round}").as_bytes())];
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

async fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    let r = c.send(&req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The record values of one partition from offset 0 (one Fetch v11 of up to 1 MiB).
async fn values(c: &mut Client, topic: &str, partition: i32) -> Vec<String> {
    let fetch = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(partition).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    let r = c.send(&fetch, 11).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch {topic}-{partition}");
    let mut bytes = p.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).expect("batches");
        out.extend(set.records.into_iter().map(|r| String::from_utf8(r.value.expect("value").to_vec()).expect("utf8")));
    }
    out
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topics(topics: &[(&str, i32)], validate_only: bool) -> CreateTopicsRequest {
    let topics = topics
        .iter()
        .map(|(t, n)| create_topics_request::CreatableTopic::default().with_name(name(t)).with_num_partitions(*n).with_replication_factor(1))
        .collect();
    CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(30_000).with_validate_only(validate_only)
}

fn create_partitions(topics: &[(&str, i32)], validate_only: bool) -> CreatePartitionsRequest {
    let topics = topics
        .iter()
        .map(|(t, n)| create_partitions_request::CreatePartitionsTopic::default().with_name(name(t)).with_count(*n).with_assignments(None))
        .collect();
    CreatePartitionsRequest::default().with_topics(topics).with_timeout_ms(30_000).with_validate_only(validate_only)
}

/// Runs the oversized requests against a broker and prints each answer, one line each: how the
/// answers below were taken from the reference Kafka broker (`FJORD_REFERENCE=127.0.0.1:PORT
/// cargo test --test hostile_admin reference_answers -- --ignored --nocapture`).
#[tokio::test]
#[ignore = "needs a reference Kafka broker in FJORD_REFERENCE"]
async fn reference_answers() {
    let addr = std::env::var("FJORD_REFERENCE").expect("FJORD_REFERENCE=host:port").parse().expect("address");
    let mut c = Client::connect(addr).await;
    let suffix = std::process::id();
    let _ = c.send(&create_topics(&[("existing", 1)], false), 7).await;
    let t = |s: &str| format!("{s}-{suffix}");
    let show_ct = |what: &str, r: &CreateTopicsResponse| {
        for x in &r.topics {
            println!("CreateTopics {what}: topic {} error {} message {:?} partitions {}", x.name.0, x.error_code, x.error_message.as_ref().map(|m| m.to_string()), x.num_partitions);
        }
    };
    for (what, topics, vo) in [
        ("one topic 10001", vec![(t("a"), 10_001)], false),
        ("one topic 30000", vec![(t("b"), 30_000)], false),
        ("one topic 10001 validate_only", vec![(t("c"), 10_001)], true),
        ("one topic 10000 validate_only", vec![(t("d"), 10_000)], true),
        ("two topics 5000+5000 validate_only", vec![(t("e1"), 5_000), (t("e2"), 5_000)], true),
        ("two topics 5000+5001 validate_only", vec![(t("f1"), 5_000), (t("f2"), 5_001)], true),
        ("three topics 4000 each", vec![(t("g1"), 4_000), (t("g2"), 4_000), (t("g3"), 4_000)], false),
        ("small + huge", vec![(t("h1"), 1), (t("h2"), 10_001)], false),
        ("small + bad name + huge", vec![(t("i1"), 1), ("bad name!".to_string(), 1), (t("i2"), 10_001)], false),
        ("9999 validate_only", vec![(t("j"), 9_999)], true),
        ("existing 1 + new 4999 + new 5000 validate_only", vec![("existing".to_string(), 1), (t("k1"), 4_999), (t("k2"), 5_000)], true),
        ("existing 5000 + new 5000 validate_only", vec![("existing".to_string(), 5_000), (t("l1"), 5_000)], true),
        ("bad name 5000 + new 5000 validate_only", vec![("bad name!".to_string(), 5_000), (t("m1"), 5_000)], true),
        ("default(-1) + new 10000 validate_only", vec![(t("n0"), -1), (t("n1"), 10_000)], true),
    ] {
        let topics: Vec<(&str, i32)> = topics.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let r = c.send(&create_topics(&topics, vo), 7).await;
        show_ct(what, &r);
    }
    let r = c.send(&create_topics(&[(&t("grow"), 1), (&t("grow2"), 1)], false), 7).await;
    show_ct("setup", &r);
    let show_cp = |what: &str, r: &CreatePartitionsResponse| {
        for x in &r.results {
            println!("CreatePartitions {what}: topic {} error {} message {:?}", x.name.0, x.error_code, x.error_message.as_ref().map(|m| m.to_string()));
        }
    };
    for (what, topics, vo) in [
        ("to 100000", vec![(t("grow"), 100_000)], false),
        ("to 100000 validate_only", vec![(t("grow"), 100_000)], true),
        ("to 10001 (adds 10000) validate_only", vec![(t("grow"), 10_001)], true),
        ("to 10002 (adds 10001) validate_only", vec![(t("grow"), 10_002)], true),
        ("two topics to 6000 each validate_only", vec![(t("grow"), 6_000), (t("grow2"), 6_000)], true),
        ("two topics: 3 and 100000", vec![(t("grow"), 3), (t("grow2"), 100_000)], false),
    ] {
        let topics: Vec<(&str, i32)> = topics.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        let r = c.send(&create_partitions(&topics, vo), 3).await;
        show_cp(what, &r);
    }
    let req = MetadataRequest::default().with_topics(None);
    let m = c.send(&req, 12).await;
    for x in m.topics.iter().filter(|x| x.name.as_ref().is_some_and(|n| n.0.ends_with(&suffix.to_string()))) {
        println!("Metadata after: {} partitions {}", x.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(), x.partitions.len());
    }
}

#[tokio::test]
async fn create_topics_past_the_partition_limit_gets_kafkas_answer_and_creates_nothing() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // Each case: the topics, validate_only, the message every topic gets (Kafka 4.0's answers).
    for (topics, validate_only, msg) in [
        (vec![("a", 10_001)], false, TOO_MANY_PARTITIONS),
        (vec![("b", 30_000)], false, TOO_MANY_PARTITIONS),
        (vec![("c", 10_001)], true, TOO_MANY_PARTITIONS),
        (vec![("g1", 4_000), ("g2", 4_000), ("g3", 4_000)], false, TOO_MANY_PARTITIONS),
        (vec![("h1", 1), ("h2", 10_001)], false, TOO_MANY_PARTITIONS),
        (vec![("i1", 1), ("bad name!", 1), ("i2", 10_001)], false, TOO_MANY_PARTITIONS),
        (vec![("n0", -1), ("n1", 10_000)], true, TOO_MANY_PARTITIONS),
        // Within the partition limit, but one record per topic too many.
        (vec![("d", 10_000)], false, TOO_LARGE_BATCH),
        (vec![("e1", 5_000), ("e2", 5_000)], true, TOO_LARGE_BATCH),
    ] {
        let r = c.send(&create_topics(&topics, validate_only), 7).await;
        assert_eq!(r.topics.len(), topics.len());
        for (t, (want, _)) in r.topics.iter().zip(&topics) {
            assert_eq!(t.name.0.as_str(), *want);
            assert_eq!((t.error_code, message(&t.error_message).as_str()), (POLICY_VIOLATION, msg), "{topics:?}");
            assert_eq!(t.num_partitions, -1);
        }
    }
    assert_eq!(partition_dirs(&b), 0, "nothing was made");
    for t in ["a", "b", "d", "g1", "h1", "i1"] {
        assert_eq!(partitions_of(&mut c, t).await, None, "{t} does not exist");
    }
    // A topic that already exists makes no records: its neighbour's 5,000 partitions pass.
    assert_eq!(c.send(&create_topics(&[("existing", 1)], false), 7).await.topics[0].error_code, 0);
    let r = c.send(&create_topics(&[("existing", 5_000), ("l1", 5_000)], true), 7).await;
    assert_eq!(r.topics[0].error_code, E::TopicAlreadyExists.code());
    assert_eq!((r.topics[1].error_code, r.topics[1].num_partitions), (0, 5_000));
    // ... but counts in the partition total, and the topics that would be made count their records.
    let r = c.send(&create_topics(&[("existing", 1), ("k1", 4_999), ("k2", 5_000)], true), 7).await;
    assert!(r.topics.iter().all(|t| t.error_code == POLICY_VIOLATION && message(&t.error_message) == TOO_LARGE_BATCH), "{r:?}");
    let r = c.send(&create_topics(&[("j", 9_999)], true), 7).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 9_999), "9,999 is within both limits");
    assert_eq!(partition_dirs(&b), 1, "only 'existing' was made");
    // The broker still serves.
    assert_eq!(produce(&mut c, "existing", 0, tagged_batch("existing", 0, 0)).await.0, 0);
    b.stop().await;
}

#[tokio::test]
async fn create_partitions_past_the_partition_limit_is_refused_and_creates_nothing() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let r = c.send(&create_topics(&[("grow", 1), ("grow2", 1)], false), 7).await;
    assert!(r.topics.iter().all(|t| t.error_code == 0));
    for validate_only in [false, true] {
        let r = c.send(&create_partitions(&[("grow", 100_000)], validate_only), 3).await;
        assert_eq!((r.results[0].error_code, message(&r.results[0].error_message).as_str()), (POLICY_VIOLATION, TOO_MANY_PARTITIONS));
    }
    // 10,000 more is within the limit (checked, not made); the second topic's growth past the
    // request's running total is refused, the first one's is served.
    let r = c.send(&create_partitions(&[("grow", 10_001)], true), 3).await;
    assert_eq!(r.results[0].error_code, 0, "adding exactly 10,000");
    let r = c.send(&create_partitions(&[("grow", 3), ("grow2", 10_000)], false), 3).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!((r.results[1].error_code, message(&r.results[1].error_message).as_str()), (POLICY_VIOLATION, TOO_MANY_PARTITIONS));
    assert_eq!(partitions_of(&mut c, "grow").await, Some(3));
    assert_eq!(partitions_of(&mut c, "grow2").await, Some(1));
    assert_eq!(partition_dirs(&b), 4);
    b.stop().await;
}

#[tokio::test]
async fn a_creation_that_fails_midway_leaves_no_partition_and_no_topic() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // A plain file where partition 5's directory must go: its creation fails after 0..4 were made.
    std::fs::write(b.dir.path().join("half-5"), b"in the way").expect("blocker");
    let r = c.send(&create_topics(&[("half", 8)], false), 7).await;
    assert_eq!(r.topics[0].error_code, E::KafkaStorageError.code(), "{r:?}");
    assert_eq!(partition_dirs(&b), 0, "partitions 0..4 were removed again");
    assert_eq!(partitions_of(&mut c, "half").await, None, "no metadata for the half-made topic");
    // The same for CreatePartitions: the topic keeps its count and its new partitions are gone.
    assert_eq!(c.send(&create_topics(&[("more", 2)], false), 7).await.topics[0].error_code, 0);
    std::fs::write(b.dir.path().join("more-6"), b"in the way").expect("blocker");
    let r = c.send(&create_partitions(&[("more", 9)], false), 3).await;
    assert_eq!(r.results[0].error_code, E::KafkaStorageError.code(), "{r:?}");
    assert_eq!(partitions_of(&mut c, "more").await, Some(2));
    assert_eq!(partition_dirs(&b), 2);
    // Once the way is clear both work, and the broker kept serving throughout.
    std::fs::remove_file(b.dir.path().join("half-5")).expect("rm");
    std::fs::remove_file(b.dir.path().join("more-6")).expect("rm");
    assert_eq!(c.send(&create_topics(&[("half", 8)], false), 7).await.topics[0].error_code, 0);
    assert_eq!(c.send(&create_partitions(&[("more", 9)], false), 3).await.results[0].error_code, 0);
    assert_eq!(partition_dirs(&b), 17);
    let mut fresh = b.client().await;
    assert_eq!(produce(&mut fresh, "half", 7, tagged_batch("half", 7, 0)).await.0, 0);
    b.stop().await;
}

/// Produces one tagged record to each partition and checks every partition holds exactly the
/// records of the rounds so far, in order.
async fn produce_and_check_all(c: &mut Client, topic: &str, partitions: i32, round: u32) {
    for p in 0..partitions {
        let (err, offset) = produce(c, topic, p, tagged_batch(topic, p, round)).await;
        assert_eq!((err, offset), (0, i64::from(round)), "produce {topic}-{p} round {round}");
    }
    for p in 0..partitions {
        let want: Vec<String> = (0..=round).map(|r| format!("{topic}/{p}/{r}")).collect();
        assert_eq!(values(c, topic, p).await, want, "{topic}-{p}");
    }
}

#[tokio::test]
async fn a_small_open_files_budget_serves_hundreds_of_partitions_and_survives_restarts() {
    const PARTITIONS: i32 = 300;
    const BUDGET: usize = 64;
    let mut b = TestBroker::start(&["fjord.log.open.files.max=64", "num.recovery.threads.per.data.dir=4"]).await;
    let mut c = b.client().await;
    assert_eq!(c.send(&create_topics(&[("wide", PARTITIONS)], false), 7).await.topics[0].error_code, 0);
    produce_and_check_all(&mut c, "wide", PARTITIONS, 0).await;
    let stats = |b: &TestBroker| {
        let budget = b.running.as_ref().expect("running").broker.replicas.backend().budget.clone().expect("a budget");
        let s = budget.stats();
        (s.max_open, s.open_now.load(std::sync::atomic::Ordering::Relaxed), s.evictions.load(std::sync::atomic::Ordering::Relaxed))
    };
    let (max, open, evictions) = stats(&b);
    assert_eq!(max, BUDGET);
    assert!(open <= BUDGET, "{open} files open");
    assert!(evictions > 0, "900 segment files went through a budget of 64");
    // A clean restart, then an unclean one (a copy of the running broker's files: no clean
    // shutdown marker), each followed by more records everywhere.
    b.restart().await;
    let mut c = b.client().await;
    produce_and_check_all(&mut c, "wide", PARTITIONS, 1).await;
    assert!(stats(&b).1 <= BUDGET);
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_dir(b.dir.path(), crashed.path());
    b.stop().await;
    assert!(!crashed.path().join(".kafka_cleanshutdown").exists(), "an unclean copy");
    let overrides = vec![
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        format!("log.dirs={}", crashed.path().display()),
        "fjord.log.open.files.max=64".to_string(),
        "fjord.http.listener=none".to_string(),
    ];
    let running = fjord::node::start(fjord::config::Config::load(None, &overrides).expect("config")).await.expect("unclean start");
    let logs = running.broker.replicas.logs();
    for p in 0..PARTITIONS {
        let log = logs.get(&fjord::types::TopicPartition::new("wide".to_string(), p)).expect("log");
        let l = fjord::storage::log_manager::lock_log(&log).expect("lock");
        assert_eq!(l.log_end_offset(), 2, "wide-{p} recovered whole");
        assert!(l.recovery_point() <= l.log_end_offset());
    }
    let mut c = Client::connect(running.local_addr).await;
    produce_and_check_all(&mut c, "wide", PARTITIONS, 2).await;
    running.shutdown().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}
