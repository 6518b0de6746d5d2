//! Replication throttles (KIP-73) on a three-node cluster on loopback: a replica added by a
//! reassignment copies 10 MB no faster than `leader.replication.throttled.rate` (on the leader)
//! or `follower.replication.throttled.rate` (on the new replica) allows for the partitions the
//! topic lists as throttled; in-sync replicas of throttled partitions keep up with acks=all
//! produce while the throttle is exceeded; a new replica is held back entirely while it is, and
//! copies at once when the broker config is deleted (a dynamic change, no restart).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::Client;
use fjord::config::Config;
use fjord::node::RunningNode;
use fjord::types::TopicPartition;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

struct Node {
    running: Option<RunningNode>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn broker(&self) -> &std::sync::Arc<fjord::broker::Broker> {
        &self.running.as_ref().unwrap().broker
    }
}

use common::free_port;

async fn start_cluster(n: i32) -> Vec<Node> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let starts: Vec<_> = (0..n)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let o = vec![
                format!("node.id={}", i + 1),
                format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[i as usize]),
                "controller.listener.names=CONTROLLER".to_string(),
                format!("controller.quorum.voters={voters}"),
                format!("log.dirs={}", dir.path().display()),
                "broker.session.timeout.ms=3000".to_string(),
                "broker.heartbeat.interval.ms=200".to_string(),
                "fjord.http.listener=127.0.0.1:0".to_string(),
            ];
            let config = Config::load(None, &o).expect("config");
            tokio::spawn(async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } })
        })
        .collect();
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap());
    }
    nodes
}

async fn stop(nodes: &mut [Node]) {
    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

fn addr(node: &Node) -> SocketAddr {
    node.running.as_ref().unwrap().local_addr
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn metadata(addr: SocketAddr, topic: &str) -> MetadataResponse {
    let mut c = Client::connect(addr).await;
    let req = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))])).with_allow_auto_topic_creation(false);
    c.send(&req, 12).await
}

/// Polls `f` every 50 ms until it answers, for at most `limit` (a loaded machine is slow).
async fn eventually<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A topic of one partition on `replicas` (the first leads), once its leader serves it.
async fn create_topic(nodes: &[Node], topic: &str, replicas: &[i32]) {
    let mut c = Client::connect(addr(&nodes[0])).await;
    let t = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(replicas.iter().map(|&b| BrokerId(b)).collect())]);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let tp = TopicPartition::new(topic, 0);
    let leader = nodes[replicas[0] as usize - 1].broker();
    eventually("the topic's leader leads with the whole ISR", Duration::from_secs(20), async || {
        leader.replicas.partition(&tp).map(|p| p.leader_and_isr()).filter(|s| s.leader == replicas[0] && s.isr.len() == replicas.len()).map(|_| ())
    })
    .await;
}

/// One uncompressed batch of `n` records of `value_bytes` each.
fn big_batch(n: usize, value_bytes: usize) -> bytes::Bytes {
    let value: Vec<u8> = (0..value_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let recs: Vec<_> = (0..n).map(|i| common::record(i as i64, 1_000 + i as i64, &format!("k{i}"), &value)).collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).unwrap();
    buf.freeze()
}

/// Produces one batch to partition 0 of `topic` (acks=all, 5 s timeout): its error code.
async fn produce(c: &mut Client, topic: &str, records: bytes::Bytes) -> i16 {
    let data = PartitionProduceData::default().with_index(0).with_records(Some(records));
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

/// IncrementalAlterConfigs of one resource (2 topic, 4 broker): SET (`Some`) or DELETE (`None`)
/// each key. Panics unless accepted.
async fn alter(addr: SocketAddr, resource_type: i8, resource: &str, ops: &[(&str, Option<&str>)]) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let configs = ops
        .iter()
        .map(|(k, v)| AlterableConfig::default().with_name(s(k)).with_config_operation(if v.is_some() { 0 } else { 1 }).with_value(v.map(s)))
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(resource)).with_configs(configs)]);
    let r = Client::connect(addr).await.send(&req, 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{resource}: {:?}", r.responses[0].error_message);
}

/// Moves partition 0 of `topic` to `replicas` (AlterPartitionReassignments).
async fn reassign(addr: SocketAddr, topic: &str, replicas: &[i32]) {
    let req = AlterPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(vec![alter_partition_reassignments_request::ReassignableTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![alter_partition_reassignments_request::ReassignablePartition::default()
            .with_partition_index(0)
            .with_replicas(Some(replicas.iter().map(|&b| BrokerId(b)).collect()))])]);
    let r = Client::connect(addr).await.send(&req, 0).await;
    assert_eq!((r.error_code, r.responses[0].partitions[0].error_code), (0, 0), "{:?}", r.responses[0].partitions[0].error_message);
}

fn log_end(node: &Node, topic: &str) -> Option<i64> {
    node.broker().replicas.follower_position(&TopicPartition::new(topic, 0)).ok().map(|(end, _, _)| end)
}

/// Which side a test throttles.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Leader,
    Follower,
}

/// Records of 100 kB, 5 to a batch, 20 batches: 10 MB.
const BATCHES: usize = 20;
const RECORDS_PER_BATCH: usize = 5;
const VALUE_BYTES: usize = 100_000;
/// The throttle during the catch-up, in bytes a second: 10 MB take at least 4.5 s at it (one
/// fetch of replica.fetch.max.bytes may go through before the rate is over it).
const RATE: u64 = 2_000_000;

/// Node 1 leads every topic; node 2 is the replica a reassignment adds (throttled on node 1 as
/// leader, or on node 2 as follower); node 3 is an in-sync follower of a throttled partition.
async fn throttles_bound_catch_up_but_not_the_isr(side: Side) {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3).await;
    let a: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    eventually("three brokers listed", Duration::from_secs(30), async || (metadata(a[0], "none").await.brokers.len() == 3).then_some(())).await;
    // Where the throttle applies: the leader (node 1) serving, or the new replica (node 2) fetching.
    let (throttled_broker, list_key, rate_key) = match side {
        Side::Leader => (1, "leader.replication.throttled.replicas", "leader.replication.throttled.rate"),
        Side::Follower => (2, "follower.replication.throttled.replicas", "follower.replication.throttled.rate"),
    };
    let isr_list = match side {
        Side::Leader => "0:1".to_string(),
        // The in-sync follower is node 3 on the follower side.
        Side::Follower => "0:3".to_string(),
    };

    // "moved": 10 MB on node 1 alone, to be copied to node 2. "isr": on nodes 1 and 3, in sync.
    // "late": 1 MB on node 1 alone, to be copied to node 2 while the throttle is over its rate.
    create_topic(&nodes, "moved", &[1]).await;
    create_topic(&nodes, "isr", &[1, 3]).await;
    create_topic(&nodes, "late", &[1]).await;
    let mut c1 = Client::connect(a[0]).await;
    for _ in 0..BATCHES {
        assert_eq!(produce(&mut c1, "moved", big_batch(RECORDS_PER_BATCH, VALUE_BYTES)).await, 0);
    }
    for _ in 0..2 {
        assert_eq!(produce(&mut c1, "late", big_batch(RECORDS_PER_BATCH, VALUE_BYTES)).await, 0);
    }
    let total = log_end(&nodes[0], "moved").unwrap();
    assert_eq!(total, (BATCHES * RECORDS_PER_BATCH) as i64);

    // The throttle as kafka-reassign-partitions.sh --throttle sets it: the rate on the broker,
    // the replicas on the topics. Every partition here is throttled on the broker concerned.
    let throttled_replica = format!("0:{throttled_broker}");
    for topic in ["moved", "late"] {
        alter(a[0], 2, topic, &[(list_key, Some(&throttled_replica))]).await;
    }
    alter(a[0], 2, "isr", &[(list_key, Some(&isr_list))]).await;
    alter(a[throttled_broker - 1], 4, &throttled_broker.to_string(), &[(rate_key, Some(&RATE.to_string()))]).await;
    // Each broker applies topic configs as its metadata arrives.
    let on_throttled_broker: &[&str] = if side == Side::Leader { &["moved", "late", "isr"] } else { &["moved", "late"] };
    for &topic in on_throttled_broker {
        let b = nodes[throttled_broker - 1].broker();
        eventually("the throttled replicas listed on the broker", Duration::from_secs(20), async || {
            b.metadata.topic(topic).filter(|t| if side == Side::Leader { t.settings.leader_throttled.contains(0) } else { t.settings.follower_throttled.contains(0) }).map(|_| ())
        })
        .await;
    }
    if side == Side::Follower {
        let b = nodes[2].broker();
        eventually("the in-sync replica throttled on node 3", Duration::from_secs(20), async || b.metadata.topic("isr").filter(|t| t.settings.follower_throttled.contains(0)).map(|_| ())).await;
        // Node 3 throttles its own fetches too: set the rate there as well.
        alter(a[2], 4, "3", &[(rate_key, Some("1"))]).await;
    }

    // The catch-up of 10 MB takes at least what the rate implies.
    let started = Instant::now();
    reassign(a[0], "moved", &[1, 2]).await;
    eventually("node 2 copies the 10 MB", Duration::from_secs(120), async || (log_end(&nodes[1], "moved") == Some(total)).then_some(())).await;
    let took = started.elapsed();
    let bytes = (BATCHES * RECORDS_PER_BATCH * VALUE_BYTES) as f64;
    let bound = Duration::from_secs_f64((bytes - 1_048_576.0) / RATE as f64 * 0.6);
    assert!(took >= bound, "10 MB copied in {took:?} at {RATE} B/s (at least {bound:?} expected)");
    eprintln!("10 MB copied in {took:?} at {RATE} B/s");

    // A rate of 1 B/s after megabytes: over it for the next windows.
    let rate_to = async |value: Option<&str>| alter(a[throttled_broker - 1], 4, &throttled_broker.to_string(), &[(rate_key, value)]).await;
    rate_to(Some("1")).await;
    let quota = if side == Side::Leader { &nodes[0].broker().leader_quota } else { &nodes[1].broker().follower_quota };
    eventually("the throttle exceeded", Duration::from_secs(10), async || quota.is_exceeded().then_some(())).await;

    // A new replica is held back while the throttle is over its rate...
    reassign(a[0], "late", &[1, 2]).await;
    let late_total = log_end(&nodes[0], "late").unwrap();
    eventually("node 2 follows the late partition", Duration::from_secs(20), async || log_end(&nodes[1], "late").map(|_| ())).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(quota.is_exceeded(), "still over 1 B/s");
    assert_eq!(log_end(&nodes[1], "late"), Some(0), "nothing copied while the throttle is exceeded");
    // ... and copies at once when the rate is deleted (back to Kafka's unbounded default).
    rate_to(None).await;
    eventually("node 2 copies the late partition unthrottled", Duration::from_secs(30), async || (log_end(&nodes[1], "late") == Some(late_total)).then_some(())).await;
    assert!(!quota.is_exceeded());

    // In-sync replicas of throttled partitions are never held back: acks=all keeps working while
    // the throttle concerned is over its rate (the late partition's megabyte counted).
    rate_to(Some("1")).await;
    let isr_quota = if side == Side::Leader { &nodes[0].broker().leader_quota } else { &nodes[2].broker().follower_quota };
    let produced = Instant::now();
    for _ in 0..5 {
        assert_eq!(produce(&mut c1, "isr", big_batch(2, 10_000)).await, 0, "acks=all with the ISR's follower throttled");
        assert!(isr_quota.is_exceeded(), "the throttle on the in-sync replica's path is exceeded");
    }
    assert!(produced.elapsed() < Duration::from_secs(9), "five acks=all produces took {:?}", produced.elapsed());
    assert_eq!(log_end(&nodes[2], "isr"), log_end(&nodes[0], "isr"), "node 3 keeps up");

    stop(&mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_throttle_bounds_a_new_replicas_catch_up_but_not_the_isr() {
    throttles_bound_catch_up_but_not_the_isr(Side::Leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_follower_throttle_bounds_a_new_replicas_catch_up_but_not_the_isr() {
    throttles_bound_catch_up_but_not_the_isr(Side::Follower).await;
}

/// (value, source, type) of each config DescribeConfigs lists for broker resource `resource`.
async fn describe_broker(c: &mut Client, resource: &str) -> std::collections::BTreeMap<String, (Option<String>, i8, i8)> {
    let req = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s(resource))
        .with_configuration_keys(None)]);
    let r = c.send(&req, 4).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
    r.results[0].configs.iter().map(|e| (e.name.to_string(), (e.value.as_ref().map(|v| v.to_string()), e.config_source, e.config_type))).collect()
}

/// The synonyms' sources DescribeConfigs (with synonyms) gives one config of broker resource "1".
async fn synonym_sources(c: &mut Client, key: &str) -> Vec<i8> {
    let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s("1"))
        .with_configuration_keys(Some(vec![s(key)]))]);
    let r = c.send(&req, 4).await;
    r.results[0].configs.iter().filter(|e| e.name.as_str() == key).flat_map(|e| e.synonyms.iter().map(|s| s.source)).collect()
}

/// IncrementalAlterConfigs of one config: (error code, message).
async fn try_alter(c: &mut Client, resource_type: i8, resource: &str, key: &str, value: Option<&str>) -> (i16, Option<String>) {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let op = AlterableConfig::default().with_name(s(key)).with_config_operation(if value.is_some() { 0 } else { 1 }).with_value(value.map(s));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(s(resource)).with_configs(vec![op])]);
    let r = c.send(&req, 1).await;
    (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()))
}

/// The rates are dynamic broker configs as in Kafka 4.0 (checked with kafka-configs.sh against
/// it): listed only where set (DYNAMIC_BROKER_CONFIG / DYNAMIC_DEFAULT_BROKER_CONFIG, type LONG),
/// refused below 0 or when not a number with Kafka's words, applied at once (this broker's value
/// over the cluster default's), Long.MAX_VALUE again when deleted. Throttled replica lists that do
/// not parse are refused on the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_rates_are_dynamic_broker_configs_listed_only_where_set() {
    let b = common::TestBroker::start(&[]).await;
    let broker = b.running.as_ref().unwrap().broker.clone();
    let mut c = b.client().await;
    const LEADER: &str = "leader.replication.throttled.rate";
    const FOLLOWER: &str = "follower.replication.throttled.rate";
    let listed = describe_broker(&mut c, "1").await;
    assert!(!listed.contains_key(LEADER) && !listed.contains_key(FOLLOWER), "unset rates are not listed, as by Kafka");
    assert_eq!(listed.get("replication.quota.window.num").map(|e| (e.0.as_deref(), e.1)), Some((Some("11"), 5)));
    assert_eq!(listed.get("replication.quota.window.size.seconds").map(|e| (e.0.as_deref(), e.1)), Some((Some("1"), 5)));

    assert_eq!(try_alter(&mut c, 4, "1", LEADER, Some("1000000")).await, (0, None));
    assert_eq!(try_alter(&mut c, 4, "", FOLLOWER, Some("3000000")).await, (0, None));
    let listed = describe_broker(&mut c, "1").await;
    assert_eq!(listed.get(LEADER), Some(&(Some("1000000".to_string()), 2, 5)), "DYNAMIC_BROKER_CONFIG, LONG");
    assert_eq!(listed.get(FOLLOWER), Some(&(Some("3000000".to_string()), 3, 5)), "DYNAMIC_DEFAULT_BROKER_CONFIG, LONG");
    assert_eq!(describe_broker(&mut c, "").await.get(FOLLOWER).map(|e| e.1), Some(3));
    // No DEFAULT_CONFIG synonym: Kafka has no static default for a dynamic-only config.
    assert_eq!(synonym_sources(&mut c, LEADER).await, vec![2]);
    assert_eq!(synonym_sources(&mut c, FOLLOWER).await, vec![3]);
    assert_eq!((broker.leader_quota.quota(), broker.follower_quota.quota()), (1_000_000, 3_000_000));
    assert_eq!(try_alter(&mut c, 4, "1", FOLLOWER, Some("2000000")).await, (0, None));
    assert_eq!(broker.follower_quota.quota(), 2_000_000, "this broker's value over the default");

    let (code, msg) = try_alter(&mut c, 4, "1", LEADER, Some("-1")).await;
    assert_eq!((code, msg.as_deref()), (42, Some("Invalid value -1 for configuration leader.replication.throttled.rate: Value must be at least 0")));
    let (code, msg) = try_alter(&mut c, 4, "1", LEADER, Some("abc")).await;
    assert_eq!((code, msg.as_deref()), (42, Some("Invalid value abc for configuration leader.replication.throttled.rate: Not a number of type LONG")));
    assert_eq!(broker.leader_quota.quota(), 1_000_000, "a refused value changes nothing");

    for (resource, key) in [("1", LEADER), ("1", FOLLOWER), ("", FOLLOWER)] {
        assert_eq!(try_alter(&mut c, 4, resource, key, None).await, (0, None));
    }
    let listed = describe_broker(&mut c, "1").await;
    assert!(!listed.contains_key(LEADER) && !listed.contains_key(FOLLOWER));
    assert_eq!((broker.leader_quota.quota(), broker.follower_quota.quota()), (u64::MAX, u64::MAX));

    let mut t = CreatableTopic::default().with_name(name("t")).with_num_partitions(1).with_replication_factor(1);
    t.configs.push(create_topics_request::CreatableTopicConfig::default().with_name(s("leader.replication.throttled.replicas")).with_value(Some(s("0:1"))));
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert!(broker.metadata.topic("t").unwrap().settings.leader_throttled.contains(0));
    let (code, msg) = try_alter(&mut c, 2, "t", "follower.replication.throttled.replicas", Some("0-1")).await;
    assert_eq!(code, 40, "INVALID_CONFIG: {msg:?}");
    assert_eq!(try_alter(&mut c, 2, "t", "leader.replication.throttled.replicas", None).await, (0, None));
    assert!(!broker.metadata.topic("t").unwrap().settings.leader_throttled.contains(0));
    b.stop().await;
}
