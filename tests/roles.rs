//! Nodes with one role on loopback: three controller-only voters (`process.roles=controller`)
//! and two broker-only nodes (`process.roles=broker`) that follow the metadata log as observers.
//! A topic of replication factor 2 lives on the two brokers only; acks=all produce and a fetch
//! work; the active controller stops and another voter takes over; a broker restarted from an
//! empty metadata image catches up from the leader's snapshot plus the log after it and rejoins
//! the ISR; Metadata lists the brokers only and DescribeQuorum three voters and two observers.
//! And a mixed quorum: a broker-only node beside three combined nodes.

mod common;

use std::net::SocketAddr;

use common::{Client, eventually};
use fjord::config::Config;
use fjord::node::{RunningController, RunningNode};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use common::free_port;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

const COMMON: &[&str] = &[
    "controller.listener.names=CONTROLLER",
    "broker.session.timeout.ms=3000",
    "broker.heartbeat.interval.ms=200",
    "fjord.http.listener=none",
    "replica.lag.time.max.ms=2000",
    // Voters snapshot often and keep no log behind the snapshot: a broker starting anew must
    // install a snapshot before it can follow the log.
    "metadata.log.max.record.bytes.between.snapshots=1",
    "fjord.metadata.log.entries.kept.after.snapshot=0",
];

fn config(node_id: i32, roles: &str, listeners: &str, voters: &str, dir: &std::path::Path) -> Config {
    let mut o: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    o.extend([
        format!("node.id={node_id}"),
        format!("process.roles={roles}"),
        format!("listeners={listeners}"),
        format!("controller.quorum.voters={voters}"),
        format!("log.dirs={}", dir.display()),
    ]);
    Config::load(None, &o).expect("config")
}

async fn metadata(addr: SocketAddr, topic: &str) -> MetadataResponse {
    let mut c = Client::connect(addr).await;
    let req = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))])).with_allow_auto_topic_creation(false);
    c.send(&req, 12).await
}


fn produce(topic: &str, n: usize) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(0).with_records(Some(common::batch(n, 1_000, Compression::None)));
    ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])])
}

fn fetch(topic: &str) -> FetchRequest {
    let p = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![p])])
}

async fn describe_quorum(addr: SocketAddr) -> DescribeQuorumResponse {
    eventually("DescribeQuorum answered", async || {
        let mut c = Client::connect(addr).await;
        let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![describe_quorum_request::PartitionData::default().with_partition_index(0)])]);
        let r = c.send(&req, 2).await;
        (r.error_code == 0 && r.topics[0].partitions[0].error_code == 0).then_some(r)
    })
    .await
}

async fn create_topic(addr: SocketAddr, topic: &str, replication_factor: i16) -> i16 {
    let mut c = Client::connect(addr).await;
    let t = CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(replication_factor);
    c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await.topics[0].error_code
}

/// Produces `n` records acks=all to partition 0's leader, retried while leadership moves.
async fn produce_to_leader(brokers: &[(i32, SocketAddr)], topic: &str, n: usize) -> i64 {
    eventually("acks=all produce", async || {
        let m = metadata(brokers[0].1, topic).await;
        let leader = m.topics[0].partitions.first()?.leader_id.0;
        let addr = brokers.iter().find(|(id, _)| *id == leader)?.1;
        let r = Client::connect(addr).await.send(&produce(topic, n), 9).await;
        let p = &r.responses[0].partition_responses[0];
        (p.error_code == 0).then_some(p.base_offset)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_only_and_broker_only_nodes_form_a_cluster() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let controller_config = |i: usize| config(i as i32 + 1, "controller", &format!("CONTROLLER://127.0.0.1:{}", ports[i]), &voters, dirs[i].path());
    let broker_config = |id: i32, port: u16| config(id, "broker", &format!("PLAINTEXT://127.0.0.1:{port}"), &voters, dirs[id as usize - 1].path());

    // A controller-only config is not a broker: node::start refuses it by name.
    assert!(fjord::node::start(controller_config(0)).await.is_err());
    let starts: Vec<_> = (0..3).map(|i| tokio::spawn(fjord::node::start_controller(controller_config(i)))).collect();
    let mut controllers: Vec<Option<RunningController>> = Vec::new();
    for s in starts {
        controllers.push(Some(s.await.unwrap().expect("controller starts")));
    }
    let mut brokers: Vec<Option<RunningNode>> = Vec::new();
    for id in [4, 5] {
        brokers.push(Some(fjord::node::start(broker_config(id, 0)).await.expect("broker starts")));
    }
    let addrs = |b: &[Option<RunningNode>]| -> Vec<(i32, SocketAddr)> { b.iter().flatten().map(|r| (r.broker.config.node_id, r.local_addr)).collect() };
    let first = brokers[0].as_ref().unwrap().local_addr;

    // Metadata lists the two brokers only, never a controller.
    let listed = eventually("both brokers registered and unfenced", async || {
        let m = metadata(first, "none").await;
        let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        ids.sort();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    assert_eq!(listed, vec![4, 5]);
    // Kafka's brokers name a live broker as the controller: clients cannot reach controllers.
    assert!([4, 5].contains(&metadata(first, "none").await.controller_id.0));

    // Replication factor 2 places on the two brokers; a third replica has nowhere to go.
    assert_eq!(create_topic(first, "roles", 2).await, 0);
    assert_eq!(create_topic(first, "too-many", 3).await, 38, "INVALID_REPLICATION_FACTOR: controllers hold no replicas");
    let m = metadata(first, "roles").await;
    let mut replicas: Vec<i32> = m.topics[0].partitions[0].replica_nodes.iter().map(|b| b.0).collect();
    replicas.sort();
    assert_eq!(replicas, vec![4, 5]);
    assert_eq!(produce_to_leader(&addrs(&brokers), "roles", 5).await, 0);
    // Either broker serves a consumer (Fetch v11+, KIP-392): the leader, or a follower once its
    // high watermark caught up.
    eventually("the records served by the first broker", async || {
        let f = Client::connect(first).await.send(&fetch("roles"), 12).await;
        let p = &f.responses[0].partitions[0];
        (p.error_code == 0 && p.high_watermark == 5).then_some(())
    })
    .await;

    // DescribeQuorum through a broker: three voters, the two brokers as observers.
    let q = describe_quorum(first).await;
    let p = &q.topics[0].partitions[0];
    let mut voter_ids: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    voter_ids.sort();
    assert_eq!(voter_ids, vec![1, 2, 3]);
    let observer_ids = eventually("both brokers observing", async || {
        let q = describe_quorum(first).await;
        let mut ids: Vec<i32> = q.topics[0].partitions[0].observers.iter().map(|o| o.replica_id.0).collect();
        ids.sort();
        (ids == [4, 5]).then_some(ids)
    })
    .await;
    assert_eq!(observer_ids, vec![4, 5]);
    assert!(q.nodes.iter().all(|n| (1..=3).contains(&n.node_id.0)) && q.nodes.len() == 3, "nodes are the voters: {:?}", q.nodes);
    // A controller-only node's directory holds the metadata log only.
    let entries: Vec<String> = std::fs::read_dir(dirs[0].path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(entries, vec!["fjord-raft".to_string()]);

    // The active controller stops: another voter leads, decides, and produce goes on. (Asked
    // now: the quorum may have elected again since DescribeQuorum named its leader.)
    let leader = eventually("an active controller", async || controllers.iter().position(|c| c.as_ref().is_some_and(|c| c.is_leader()))).await;
    controllers[leader].take().unwrap().shutdown().await;
    eventually("a new active controller", async || controllers.iter().flatten().any(|c| c.is_leader()).then_some(())).await;
    eventually("a topic created by the new controller", async || (create_topic(first, "after", 2).await == 0).then_some(())).await;
    assert_eq!(produce_to_leader(&addrs(&brokers), "roles", 5).await, 5);

    // A broker restarts with an empty metadata image: it installs the leader's snapshot, follows
    // the log after it, and rejoins the ISR of the partition it replicates.
    let restarted = brokers[1].take().unwrap();
    let port = restarted.local_addr.port();
    restarted.shutdown().await;
    assert_eq!(produce_to_leader(&addrs(&brokers), "roles", 5).await, 10, "acks=all once the stopped broker left the ISR");
    brokers[1] = Some(fjord::node::start(broker_config(5, port)).await.expect("broker restarts"));
    let isr = eventually("the restarted broker back in the ISR", async || {
        let m = metadata(first, "roles").await;
        let mut isr: Vec<i32> = m.topics[0].partitions[0].isr_nodes.iter().map(|b| b.0).collect();
        isr.sort();
        (isr == [4, 5]).then_some(isr)
    })
    .await;
    assert_eq!(isr, vec![4, 5]);
    let restarted_addr = brokers[1].as_ref().unwrap().local_addr;
    let m = metadata(restarted_addr, "after").await;
    assert_eq!(m.topics[0].error_code, 0, "the restarted broker knows the topic made while it was away");
    assert_eq!(produce_to_leader(&addrs(&brokers), "roles", 5).await, 15);
    // The active controller knows observers from their fetches in its leadership: both
    // brokers, each having fetched some of the log.
    let q = eventually("both brokers observing the new leader", async || {
        let q = describe_quorum(restarted_addr).await;
        let p = &q.topics[0].partitions[0];
        (p.observers.len() == 2 && p.observers.iter().all(|o| o.log_end_offset > 0)).then_some(q)
    })
    .await;
    let p = &q.topics[0].partitions[0];
    assert_eq!(p.current_voters.len(), 3);
    let mut observers: Vec<i32> = p.observers.iter().map(|o| o.replica_id.0).collect();
    observers.sort();
    assert_eq!(observers, vec![4, 5]);
    // Each observer's DirectoryId is its metadata log dir's directory.id (its only log dir
    // here), as Kafka's observers send it with their fetches; voters named by a static
    // controller.quorum.voters show none, as in Kafka.
    for o in &p.observers {
        let node = brokers.iter().flatten().find(|b| b.broker.config.node_id == o.replica_id.0).expect("a running broker");
        assert_eq!(o.replica_directory_id, node.broker.directory_ids[0], "observer {}", o.replica_id.0);
        assert!(!o.replica_directory_id.is_nil());
    }
    assert!(p.current_voters.iter().all(|v| v.replica_directory_id.is_nil()), "{:?}", p.current_voters);

    for b in brokers.iter_mut() {
        if let Some(r) = b.take() {
            r.shutdown().await;
        }
    }
    for c in controllers.iter_mut() {
        if let Some(r) = c.take() {
            r.shutdown().await;
        }
    }
}

/// A mixed quorum: three combined broker+controller nodes and one broker-only node. The
/// broker-only node registers with the combined nodes' active controller, holds a replica of a
/// topic spread over all four brokers, and is the only observer.
/// The value of a gauge without labels in a Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_voter_shows_the_quorum_on_metrics_and_a_controller_only_node_serves_http() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let with_http = |mut c: Config| {
        let mut o: Vec<String> = COMMON.iter().filter(|s| !s.starts_with("fjord.http.listener")).map(|s| s.to_string()).collect();
        o.push("fjord.http.listener=127.0.0.1:0".into());
        let full = Config::load(None, &o).expect("config");
        c.http = full.http;
        c
    };
    // Nodes 1 and 2 are controllers only, node 3 a combined broker and controller.
    let starts: Vec<_> = (0..2).map(|i| tokio::spawn(fjord::node::start_controller(with_http(config(i as i32 + 1, "controller", &format!("CONTROLLER://127.0.0.1:{}", ports[i]), &voters, dirs[i].path()))))).collect();
    let node = fjord::node::start(with_http(config(3, "broker,controller", &format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[2]), &voters, dirs[2].path()))).await.expect("combined node starts");
    let mut controllers: Vec<RunningController> = Vec::new();
    for s in starts {
        controllers.push(s.await.unwrap().expect("controller starts"));
    }
    let http: Vec<SocketAddr> = controllers.iter().map(|c| c.http_addr().expect("a controller-only node's HTTP listener")).chain([node.http_addr.expect("HTTP")]).collect();
    eventually("the broker registered", async || (metadata(node.local_addr, "none").await.brokers.len() == 1).then_some(())).await;
    assert_eq!(create_topic(node.local_addr, "watched", 1).await, 0);

    for (i, addr) in http.iter().enumerate() {
        assert_eq!(common::http_get(*addr, "/health").await.0, 200);
        eventually("ready: a leader is known", async || (common::http_get(*addr, "/ready").await.0 == 200).then_some(())).await;
        if i < 2 {
            assert_eq!(common::http_get(*addr, "/").await.0, 404, "no console on a controller-only node");
        }
    }
    let scrapes = eventually("every voter applied the topic", async || {
        let mut texts = Vec::new();
        for addr in &http {
            let (status, text) = common::http_get(*addr, "/metrics").await;
            if status != 200 || gauge(&text, "kafka_controller_kafkacontroller_globaltopiccount") != Some(1.0) {
                return None;
            }
            texts.push(text);
        }
        Some(texts)
    })
    .await;
    let active: f64 = scrapes.iter().map(|t| gauge(t, "kafka_controller_kafkacontroller_activecontrollercount").expect("activecontrollercount")).sum();
    assert_eq!(active, 1.0, "one active controller among the voters");
    let leaders: Vec<f64> = scrapes.iter().map(|t| gauge(t, "kafka_server_raftmetrics_current_leader").expect("current_leader")).collect();
    assert!(leaders.iter().all(|l| *l == leaders[0] && (1.0..=3.0).contains(l)), "every voter names the same leader: {leaders:?}");
    for t in &scrapes {
        assert_eq!(gauge(t, "kafka_controller_kafkacontroller_activebrokercount"), Some(1.0));
        assert_eq!(gauge(t, "kafka_controller_kafkacontroller_fencedbrokercount"), Some(0.0));
        assert_eq!(gauge(t, "kafka_controller_kafkacontroller_globalpartitioncount"), Some(1.0));
        assert!(gauge(t, "kafka_server_raftmetrics_high_watermark").is_some_and(|h| h >= 1.0));
        assert!(gauge(t, "kafka_controller_kafkacontroller_lastappliedrecordoffset").is_some_and(|o| o >= 0.0));
        assert!(gauge(t, "process_resident_memory_bytes").is_some_and(|r| r > 0.0));
    }
    assert!(gauge(&scrapes[2], "kafka_server_replicamanager_partitioncount").is_some(), "the combined node shows its broker's families too");
    assert!(gauge(&scrapes[0], "kafka_server_replicamanager_partitioncount").is_none(), "a controller-only node has no broker families");

    node.shutdown().await;
    for c in controllers {
        c.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_only_node_joins_a_quorum_of_combined_nodes() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut configs: Vec<Config> = (0..3).map(|i| config(i as i32 + 1, "broker,controller", &format!("PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[i]), &voters, dirs[i].path())).collect();
    configs.push(config(4, "broker", "PLAINTEXT://127.0.0.1:0", &voters, dirs[3].path()));
    let starts: Vec<_> = configs.into_iter().map(|c| tokio::spawn(fjord::node::start(c))).collect();
    let mut nodes: Vec<RunningNode> = Vec::new();
    for s in starts {
        nodes.push(s.await.unwrap().expect("node starts"));
    }
    let broker_only = nodes[3].local_addr;
    eventually("four brokers registered", async || (metadata(broker_only, "none").await.brokers.len() == 4).then_some(())).await;
    assert!(nodes[3].controller_addr().is_none(), "a broker-only node has no controller listener");
    assert_eq!(create_topic(broker_only, "mixed", 4).await, 0);
    let m = metadata(broker_only, "mixed").await;
    assert_eq!(m.topics[0].partitions[0].replica_nodes.len(), 4);
    let addrs: Vec<(i32, SocketAddr)> = nodes.iter().map(|n| (n.broker.config.node_id, n.local_addr)).collect();
    assert_eq!(produce_to_leader(&addrs, "mixed", 3).await, 0);
    let observers = eventually("the broker-only node observing", async || {
        let q = describe_quorum(nodes[0].local_addr).await;
        let p = &q.topics[0].partitions[0];
        let ids: Vec<i32> = p.observers.iter().map(|o| o.replica_id.0).collect();
        (p.current_voters.len() == 3 && ids == [4]).then_some(ids)
    })
    .await;
    assert_eq!(observers, vec![4]);
    for n in nodes {
        n.shutdown().await;
    }
}
