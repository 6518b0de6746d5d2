//! Wire tests of the HTTP listener: `/metrics` parsed as Prometheus text moves as produce, fetch
//! and offset commits say it should (bytes and messages in, bytes out, log end offsets, lag,
//! requests per API); `/health`, `/ready`, unknown paths and methods; the listener's limits.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn http_addr(b: &TestBroker) -> std::net::SocketAddr {
    b.running.as_ref().and_then(|r| r.http_addr).expect("the test broker has an HTTP listener")
}

/// The scrape, parsed by a Prometheus text-format parser: value by metric name and labels.
struct Scrape {
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    async fn of(b: &TestBroker) -> Scrape {
        let (status, body) = http_get(http_addr(b), "/metrics").await;
        assert_eq!(status, 200, "{body}");
        let lines = body.lines().map(|l| Ok(l.to_string()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
        Scrape { samples: parsed.samples }
    }

    /// The value of the one sample of `metric` whose labels include `labels` exactly as given
    /// (no other label when `labels` is empty).
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: HashMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.metric == metric && *s.labels == want).map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
    }

    fn histogram(&self, metric: &str, labels: &[(&str, &str)]) -> Vec<prometheus_parse::HistogramCount> {
        let want: HashMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match self.samples.iter().find(|s| s.metric == metric && *s.labels == want).map(|s| &s.value) {
            Some(prometheus_parse::Value::Histogram(b)) => b.clone(),
            other => panic!("no histogram {metric}{labels:?}: {other:?}"),
        }
    }

    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(metric, labels).unwrap_or_else(|| panic!("no sample {metric}{labels:?}"))
    }
}

async fn create_topic(c: &mut Client, topic: &str, partitions: i32) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

async fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name(topic))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

async fn fetch(c: &mut Client, topic: &str, partition: i32, offset: i64) -> fetch_response::PartitionData {
    let req = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_min_bytes(0).with_max_bytes(50 << 20).with_session_epoch(-1).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ]),
    ]);
    c.send(&req, 12).await.responses.remove(0).partitions.remove(0)
}

async fn commit(c: &mut Client, group: &str, topic: &str, partition: i32, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default().with_group_id(GroupId(s(group))).with_generation_id_or_member_epoch(-1).with_member_id(s("")).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(partition).with_committed_offset(offset),
        ]),
    ]);
    c.send(&req, 8).await.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn metrics_move_with_produce_fetch_and_commits() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "orders", 2).await;
    let before = Scrape::of(&b).await;
    assert_eq!(before.value("kafka_server_brokertopicmetrics_bytesin_total", &[("topic", "orders")]), None, "no series before traffic");
    assert_eq!(before.get("kafka_log_log_logendoffset", &[("topic", "orders"), ("partition", "0")]), 0.0);

    let (p0, p1) = (batch(5, 1_000, Compression::None), batch(3, 1_000, Compression::None));
    assert_eq!(produce(&mut c, "orders", 0, p0.clone()).await, 0);
    assert_eq!(produce(&mut c, "orders", 1, p1.clone()).await, 0);
    assert_eq!(produce(&mut c, "no-such-topic", 0, batch(1, 1_000, Compression::None)).await, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let fetched = fetch(&mut c, "orders", 0, 0).await;
    let fetched_bytes = fetched.records.as_ref().map_or(0, |r| r.len());
    assert_eq!(fetched_bytes, p0.len(), "the whole batch comes back");
    assert_eq!(commit(&mut c, "billing", "orders", 0, 2).await, 0);
    assert_eq!(commit(&mut c, "billing", "orders", 1, 3).await, 0);

    let m = Scrape::of(&b).await;
    let produced = (p0.len() + p1.len()) as f64;
    assert_eq!(m.get("kafka_server_brokertopicmetrics_bytesin_total", &[("topic", "orders")]), produced);
    assert_eq!(m.get("kafka_server_brokertopicmetrics_messagesin_total", &[("topic", "orders")]), 8.0);
    assert!(m.get("kafka_server_brokertopicmetrics_bytesin_total", &[]) >= produced, "the all-topics series holds the topic's");
    assert_eq!(m.value("kafka_server_brokertopicmetrics_bytesin_total", &[("topic", "no-such-topic")]), None, "unknown topics get no series");
    assert_eq!(m.get("kafka_server_brokertopicmetrics_totalproducerequests_total", &[("topic", "orders")]), 2.0);
    assert_eq!(m.get("kafka_server_brokertopicmetrics_bytesout_total", &[("topic", "orders")]), fetched_bytes as f64);
    assert_eq!(m.get("kafka_server_brokertopicmetrics_totalfetchrequests_total", &[("topic", "orders")]), 1.0);

    for (partition, end, bytes) in [("0", 5.0, p0.len()), ("1", 3.0, p1.len())] {
        let tp = [("topic", "orders"), ("partition", partition)];
        assert_eq!(m.get("kafka_log_log_logendoffset", &tp), end, "partition {partition}");
        assert_eq!(m.get("kafka_log_log_logstartoffset", &tp), 0.0);
        assert_eq!(m.get("kafka_log_log_size", &tp), bytes as f64, "batches are stored as sent");
        assert_eq!(m.get("kafka_cluster_partition_underreplicated", &tp), 0.0);
    }
    assert_eq!(m.get("kafka_server_replicamanager_underreplicatedpartitions", &[]), 0.0);
    assert_eq!(m.get("kafka_controller_kafkacontroller_offlinepartitionscount", &[]), 0.0);

    let g0 = [("consumergroup", "billing"), ("topic", "orders"), ("partition", "0")];
    let g1 = [("consumergroup", "billing"), ("topic", "orders"), ("partition", "1")];
    assert_eq!(m.get("kafka_consumergroup_current_offset", &g0), 2.0);
    assert_eq!(m.get("kafka_consumergroup_lag", &g0), 3.0, "log end 5 - committed 2");
    assert_eq!(m.get("kafka_consumergroup_lag", &g1), 0.0, "caught up");
    assert_eq!(m.get("kafka_consumergroup_lag_sum", &[("consumergroup", "billing")]), 3.0);
    assert_eq!(m.get("kafka_coordinator_group_groupmetadatamanager_numgroups", &[]), 1.0);
    assert_eq!(m.get("kafka_coordinator_group_groupmetadatamanager_numgroupsempty", &[]), 1.0, "a group that only commits is Empty");
    assert_eq!(m.get("fjord_group_count", &[("state", "Empty"), ("type", "classic")]), 1.0);

    assert_eq!(m.get("kafka_network_requestmetrics_requests_total", &[("request", "Produce")]), 3.0);
    assert_eq!(m.get("kafka_network_requestmetrics_errors_total", &[("request", "Produce"), ("error", "NONE")]), 2.0);
    assert_eq!(m.get("kafka_network_requestmetrics_errors_total", &[("request", "Produce"), ("error", "UNKNOWN_TOPIC_OR_PARTITION")]), 1.0);
    assert_eq!(m.get("kafka_network_requestmetrics_requests_total", &[("request", "FetchConsumer")]), 1.0);
    assert_eq!(m.value("kafka_network_requestmetrics_requests_total", &[("request", "FetchFollower")]), None, "no follower fetched");
    assert_eq!(m.get("kafka_network_requestmetrics_requests_total", &[("request", "OffsetCommit")]), 2.0);
    assert_eq!(m.get("kafka_network_requestmetrics_requests_total", &[("request", "CreateTopics")]), 1.0);
    assert_eq!(m.get("kafka_network_requestmetrics_errors_total", &[("request", "OffsetCommit"), ("error", "NONE")]), 2.0);
    // Every API's codes count, not only produce, fetch and commits: the topic created once.
    assert_eq!(m.get("kafka_network_requestmetrics_errors_total", &[("request", "CreateTopics"), ("error", "NONE")]), 1.0);
    // A DescribeGroups of a group that does not exist answers it Dead with NONE; one that
    // names no group answers nothing, and nothing is counted.
    let described = c.send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("billing"))]), 5).await;
    assert_eq!(described.groups[0].error_code, 0);
    let unknown_config = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("nope"))]);
    assert_eq!(c.send(&unknown_config, 4).await.results[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let m = Scrape::of(&b).await;
    assert_eq!(m.get("kafka_network_requestmetrics_errors_total", &[("request", "DescribeGroups"), ("error", "NONE")]), 1.0);
    assert_eq!(m.get("kafka_network_requestmetrics_errors_total", &[("request", "DescribeConfigs"), ("error", "UNKNOWN_TOPIC_OR_PARTITION")]), 1.0);
    assert_eq!(m.get("kafka_network_requestmetrics_totaltimems_count", &[("request", "Produce")]), 3.0);
    assert!(m.get("kafka_network_requestmetrics_totaltimems_sum", &[("request", "Produce")]) > 0.0);
    let buckets = m.histogram("kafka_network_requestmetrics_totaltimems", &[("request", "Produce")]);
    assert_eq!(buckets.last().map(|b| (b.less_than, b.count)), Some((f64::INFINITY, 3.0)), "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "cumulative buckets");

    assert_eq!(m.get("kafka_server_socketservermetrics_connection_count", &[("listener", "PLAINTEXT")]), 1.0, "this test's client");
    assert!(m.get("process_resident_memory_bytes", &[]) > 0.0);
    assert!(m.get("process_open_fds", &[]) > 0.0);
    assert!(m.get("process_cpu_seconds_total", &[]) > 0.0);

    // A second fetch and the lag after the group catches up.
    fetch(&mut c, "orders", 1, 0).await;
    assert_eq!(commit(&mut c, "billing", "orders", 0, 5).await, 0);
    drop(c);
    let m2 = Scrape::of(&b).await;
    assert_eq!(m2.get("kafka_consumergroup_lag", &g0), 0.0);
    assert_eq!(m2.get("kafka_server_brokertopicmetrics_bytesout_total", &[("topic", "orders")]), (p0.len() + p1.len()) as f64);
    assert_eq!(m2.get("kafka_network_requestmetrics_requests_total", &[("request", "FetchConsumer")]), 2.0);
    b.stop().await;
}

#[tokio::test]
async fn fdatasyncs_of_durable_mode_are_timed() {
    let b = TestBroker::start(&["fjord.log.flush.on.acks.all=true"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "durable", 1).await;
    // Process-wide: other tests of this binary may sync too, so only growth is asserted.
    let count = |s: &Scrape| s.histogram("fjord_fsync_time_ms", &[]).last().map_or(0.0, |b| b.count);
    let before = count(&Scrape::of(&b).await);
    assert_eq!(produce(&mut c, "durable", 0, batch(3, 1_000, Compression::None)).await, 0, "acks=all answered after its fdatasync");
    let after = Scrape::of(&b).await;
    assert!(count(&after) > before, "{before} -> {}", count(&after));
    assert!(after.get("fjord_fsync_time_ms_sum", &[]) > 0.0);
    b.stop().await;
}

#[tokio::test]
async fn deleting_a_topic_removes_its_series() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "gone", 1).await;
    assert_eq!(produce(&mut c, "gone", 0, batch(2, 1_000, Compression::None)).await, 0);
    assert!(Scrape::of(&b).await.value("kafka_server_brokertopicmetrics_bytesin_total", &[("topic", "gone")]).is_some());
    let r = c.send(&DeleteTopicsRequest::default().with_topic_names(vec![name("gone")]).with_timeout_ms(5000), 4).await;
    assert_eq!(r.responses[0].error_code, 0);
    let m = Scrape::of(&b).await;
    assert_eq!(m.value("kafka_server_brokertopicmetrics_bytesin_total", &[("topic", "gone")]), None);
    assert_eq!(m.value("kafka_log_log_logendoffset", &[("topic", "gone"), ("partition", "0")]), None);
    b.stop().await;
}

#[tokio::test]
async fn health_ready_unknown_paths_and_methods() {
    let b = TestBroker::start(&[]).await;
    let addr = http_addr(&b);
    assert_eq!(http_get(addr, "/health").await, (200, "ok\n".to_string()));
    assert_eq!(http_get(addr, "/ready").await.0, 200, "a started single node is ready");
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    assert_eq!(http_get(addr, "/").await.0, 200, "the web console");
    assert_eq!(http_get(addr, "/metrics/extra").await.0, 404);
    assert_eq!(http_request(addr, "POST", "/metrics").await.0, 405);
    assert_eq!(http_request(addr, "PUT", "/ready").await.0, 405);
    b.stop().await;
}

#[tokio::test]
async fn the_listener_can_be_turned_off_and_a_taken_port_stops_startup() {
    let off = TestBroker::start(&["fjord.http.listener=none"]).await;
    assert!(off.running.as_ref().unwrap().http_addr.is_none());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let o = vec!["listeners=PLAINTEXT://127.0.0.1:0".to_string(), format!("log.dirs={}", dir.path().display()), format!("fjord.http.listener=127.0.0.1:{port}")];
    let config = fjord::config::Config::load(None, &o).expect("config");
    match fjord::node::start(config).await {
        Err(e) => assert!(e.to_string().contains("fjord.http.listener"), "{e}"),
        Ok(_) => panic!("started with its HTTP port taken"),
    }
    off.stop().await;
}

#[tokio::test]
async fn a_silent_http_client_is_cut_and_connections_are_bounded() {
    let b = TestBroker::start(&["fjord.http.request.timeout.ms=300", "fjord.http.connections.max=1"]).await;
    let addr = http_addr(&b);
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // While the silent client holds the one slot, another connection is closed at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = second.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(2), second.read_to_end(&mut buf)).await.expect("closed in time");
    assert!(n.map_or(true, |_| buf.is_empty()), "over fjord.http.connections.max: closed without an answer");
    // The silent one is disconnected after fjord.http.request.timeout.ms.
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut buf)).await.expect("a silent client is cut");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Its slot is free again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(http_get(addr, "/health").await.0, 200);
    b.stop().await;
}
