//! Kafka 4.0's stock `config/server.properties` shape: a combined node whose
//! `controller.quorum.bootstrap.servers` names only its own controller listener, with the controller
//! listener advertised. It starts a quorum with itself as its one voter; clients produce and
//! fetch; the controller listener answers DescribeCluster for a controller endpoint (KIP-919, what
//! `--bootstrap-controller` tools send) and refuses a broker query; a transactional id's
//! `__transaction_state` gets `transaction.state.log.min.isr` capped at its replicas; a restart
//! keeps the same cluster id and the topic. And separate roles: a controller-only quorum of one
//! started the same way, and a broker-only node that learns the voters from
//! `controller.quorum.bootstrap.servers` (or gives up after `initial.broker.registration.timeout.ms`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{free_port, Client, eventually};
use fjord::config::Config;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn stock_config(dir: &std::path::Path, port: u16, controller_port: u16) -> Config {
    let o = [
        "process.roles=broker,controller".to_string(),
        "node.id=1".to_string(),
        format!("controller.quorum.bootstrap.servers=localhost:{controller_port}"),
        format!("listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
        "inter.broker.listener.name=PLAINTEXT".to_string(),
        format!("advertised.listeners=PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller_port}"),
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL".to_string(),
        "num.network.threads=3".to_string(),
        "offsets.topic.replication.factor=1".to_string(),
        "transaction.state.log.replication.factor=1".to_string(),
        "transaction.state.log.min.isr=2".to_string(),
        "fjord.http.listener=none".to_string(),
        format!("log.dirs={}", dir.display()),
    ];
    Config::load(None, &o).expect("Kafka's stock config")
}


async fn describe_cluster(addr: SocketAddr, endpoint_type: i8) -> DescribeClusterResponse {
    let mut c = Client::connect(addr).await;
    c.send(&DescribeClusterRequest::default().with_endpoint_type(endpoint_type).with_include_cluster_authorized_operations(true), 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_4_stock_server_properties_run_a_quorum_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let (port, controller_port) = (free_port(), free_port());
    let node = fjord::node::start(stock_config(dir.path(), port, controller_port)).await.expect("starts");
    let addr = node.local_addr;
    let controller: SocketAddr = format!("127.0.0.1:{controller_port}").parse().unwrap();

    // The controller listener answers controller queries with itself as the active controller.
    let cluster = eventually("a controller", async || Some(describe_cluster(controller, 2).await).filter(|r| r.controller_id.0 == 1)).await;
    assert_eq!(cluster.error_code, 0);
    assert_eq!(cluster.endpoint_type, 2);
    assert_eq!(cluster.brokers.len(), 1, "the one voter");
    assert_eq!((cluster.brokers[0].broker_id.0, cluster.brokers[0].host.as_str(), cluster.brokers[0].port), (1, "localhost", controller_port as i32), "at its advertised controller endpoint");
    assert!(cluster.cluster_authorized_operations > 0, "every cluster operation without an authorizer");
    let broker_query = describe_cluster(controller, 1).await;
    assert_eq!(broker_query.error_code, 114, "MISMATCHED_ENDPOINT_TYPE");
    assert_eq!(broker_query.error_message.as_deref(), Some("The request was sent to an endpoint of type CONTROLLER, but we wanted an endpoint of type BROKER"));
    assert_eq!(describe_cluster(controller, 7).await.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
    // The broker listener's view names the same cluster and the broker at its advertised endpoint.
    // Listed once unfenced: its first heartbeat may still be on the way.
    let brokers = eventually("the broker listed", async || Some(describe_cluster(addr, 1).await).filter(|r| !r.brokers.is_empty())).await;
    assert_eq!(brokers.cluster_id, cluster.cluster_id);
    assert_eq!(brokers.brokers.iter().map(|b| (b.broker_id.0, b.port)).collect::<Vec<_>>(), vec![(1, port as i32)], "the controller endpoint is not a broker endpoint");

    // Clients work: a topic, an acks=all produce, a fetch.
    let mut c = Client::connect(addr).await;
    let created = c.send(&CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(name("t")).with_num_partitions(1).with_replication_factor(-1)]).with_timeout_ms(10_000), 5).await;
    assert_eq!(created.topics[0].error_code, 0);
    eventually("the produce acknowledged once the leadership is applied", async || {
        let data = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(common::batch(5, 1_000, Compression::None)));
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![produce_request::TopicProduceData::default().with_name(name("t")).with_partition_data(vec![data])]);
        let code = Client::connect(addr).await.send(&req, 9).await.responses[0].partition_responses[0].error_code;
        assert!(code == 0 || code == 6, "acknowledged, or NOT_LEADER_OR_FOLLOWER until the leadership is applied: {code}");
        (code == 0).then_some(())
    })
    .await;

    // __transaction_state: made on a transactional id's first use, min.insync.replicas from
    // transaction.state.log.min.isr (2) capped at its one replica, so transactions still commit.
    let init = eventually("a producer id", async || {
        let r = Client::connect(addr).await.send(&InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx")))).with_transaction_timeout_ms(10_000), 4).await;
        (r.error_code == 0).then_some(r)
    })
    .await;
    assert!(init.producer_id.0 >= 0);
    let configs = c
        .send(&DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default().with_resource_type(2).with_resource_name(StrBytes::from_static_str("__transaction_state")).with_configuration_keys(Some(vec![StrBytes::from_static_str("min.insync.replicas")]))]), 4)
        .await;
    assert_eq!(configs.results[0].configs.iter().map(|e| e.value.as_deref().map(str::to_string)).collect::<Vec<_>>(), vec![Some("1".to_string())]);

    // A restart keeps the quorum, the cluster id and the topic.
    node.shutdown().await;
    let node = fjord::node::start(stock_config(dir.path(), port, controller_port)).await.expect("restarts");
    let again = eventually("a controller after the restart", async || Some(describe_cluster(controller, 2).await).filter(|r| r.controller_id.0 == 1)).await;
    assert_eq!(again.cluster_id, cluster.cluster_id);
    let fetched = eventually("the records after the restart", async || {
        let p = fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
        let req = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default().with_topic(name("t")).with_partitions(vec![p])]);
        let r = Client::connect(node.local_addr).await.send(&req, 12).await;
        let p = &r.responses[0].partitions[0];
        (p.error_code == 0 && p.high_watermark == 5).then(|| p.records.clone())
    })
    .await;
    assert!(fetched.is_some_and(|r| !r.is_empty()));
    node.shutdown().await;
}

/// The `bootstrap.checkpoint` Kafka 4.0's `kafka-storage.sh format` wrote with `--add-scram
/// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' --add-scram
/// 'SCRAM-SHA-512=[name=bob,iterations=8192,password=bob-secret]'`.
const KAFKA_BOOTSTRAP: &[u8] = include_bytes!("../src/storage/testdata/kafka-4.0-bootstrap.checkpoint");

async fn scram_users(addr: SocketAddr) -> Vec<(String, Vec<(i8, i32)>)> {
    let r = Client::connect(addr).await.send(&DescribeUserScramCredentialsRequest::default().with_users(None), 0).await;
    assert_eq!(r.error_code, 0);
    r.results.iter().map(|u| (u.user.to_string(), u.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect())).collect()
}

/// A log dir formatted by Kafka's own `kafka-storage.sh format --add-scram`, or by `fjord format
/// --add-scram` with the same users: the new cluster's first active controller writes the
/// credentials into the metadata log, once. A credential deleted afterwards stays deleted across
/// a restart (the file is not read into the log again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_scram_credentials_are_written_into_a_new_clusters_log_once() {
    let kafkas = tempfile::tempdir().unwrap();
    std::fs::write(kafkas.path().join("bootstrap.checkpoint"), KAFKA_BOOTSTRAP).unwrap();
    users_bootstrapped_once(kafkas.path(), free_port(), free_port()).await;
    let fjords = tempfile::tempdir().unwrap();
    let (port, controller_port) = (free_port(), free_port());
    let scram = ["SCRAM-SHA-256=[name=alice,password=alice-secret]", "SCRAM-SHA-512=[name=bob,iterations=8192,password=bob-secret]"];
    let request = fjord::node::format::FormatRequest {
        cluster_id: None,
        initial_controllers: vec![],
        scram: scram.iter().map(|a| fjord::node::format::parse_add_scram(a).expect("parses")).collect(),
        ignore_formatted: false,
    };
    fjord::node::format::format(&stock_config(fjords.path(), port, controller_port), &request).expect("formats");
    users_bootstrapped_once(fjords.path(), port, controller_port).await;
}

async fn users_bootstrapped_once(dir: &std::path::Path, port: u16, controller_port: u16) {
    let node = fjord::node::start(stock_config(dir, port, controller_port)).await.expect("starts");
    let users = eventually("the bootstrap credentials", async || Some(scram_users(node.local_addr).await).filter(|u| !u.is_empty())).await;
    assert_eq!(users, vec![("alice".to_string(), vec![(1, 4096)]), ("bob".to_string(), vec![(2, 8192)])]);
    let deletion = alter_user_scram_credentials_request::ScramCredentialDeletion::default().with_name(StrBytes::from_static_str("alice")).with_mechanism(1);
    let r = Client::connect(node.local_addr).await.send(&AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]), 0).await;
    assert_eq!(r.results.iter().map(|u| u.error_code).collect::<Vec<_>>(), vec![0]);
    node.shutdown().await;
    let node = fjord::node::start(stock_config(dir, port, controller_port)).await.expect("restarts");
    let controller: SocketAddr = format!("127.0.0.1:{controller_port}").parse().unwrap();
    eventually("a controller after the restart", async || Some(describe_cluster(controller, 2).await).filter(|r| r.controller_id.0 == 1)).await;
    // An alteration through the new active controller: its answer waits until this broker has
    // applied the log up to it, so the list after it is the log's.
    let r = Client::connect(node.local_addr).await.send(&AlterUserScramCredentialsRequest::default().with_deletions(vec![alter_user_scram_credentials_request::ScramCredentialDeletion::default().with_name(StrBytes::from_static_str("nobody")).with_mechanism(1)]), 0).await;
    assert_eq!(r.results.iter().map(|u| u.error_code).collect::<Vec<_>>(), vec![91], "RESOURCE_NOT_FOUND");
    assert_eq!(scram_users(node.local_addr).await, vec![("bob".to_string(), vec![(2, 8192)])]);
    node.shutdown().await;
}

fn node_config(dir: &std::path::Path, roles: &str, node_id: i32, listeners: &str, bootstrap: &str, extra: &[&str]) -> Config {
    let mut o = vec![
        format!("process.roles={roles}"),
        format!("node.id={node_id}"),
        format!("controller.quorum.bootstrap.servers={bootstrap}"),
        format!("listeners={listeners}"),
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".to_string(),
        "broker.heartbeat.interval.ms=200".to_string(),
        "fjord.http.listener=none".to_string(),
        format!("log.dirs={}", dir.display()),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    Config::load(None, &o).expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_learns_the_voters_from_bootstrap_servers() {
    let (cdir, bdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let controller_port = free_port();
    let bootstrap = format!("127.0.0.1:{controller_port}");
    let controller = fjord::node::start_controller(node_config(cdir.path(), "controller", 1, &format!("CONTROLLER://127.0.0.1:{controller_port}"), &bootstrap, &[])).await.expect("a controller-only quorum of one");
    let broker = fjord::node::start(node_config(bdir.path(), "broker", 2, "PLAINTEXT://127.0.0.1:0", &bootstrap, &[])).await.expect("the broker finds the voters");
    let addr = broker.local_addr;
    let controller_addr: SocketAddr = bootstrap.parse().unwrap();
    // The broker registered with the controller it learned of, and serves a replicated topic.
    eventually("the broker listed", async || {
        let r = describe_cluster(addr, 1).await;
        (r.brokers.iter().map(|b| b.broker_id.0).collect::<Vec<_>>() == vec![2]).then_some(())
    })
    .await;
    assert_eq!(describe_cluster(addr, 1).await.cluster_id, describe_cluster(controller_addr, 2).await.cluster_id, "one cluster id on both roles");
    let mut c = Client::connect(addr).await;
    let created = c.send(&CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default().with_name(name("t")).with_num_partitions(1).with_replication_factor(1)]).with_timeout_ms(10_000), 5).await;
    assert_eq!(created.topics[0].error_code, 0);
    eventually("the produce acknowledged", async || {
        let data = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(common::batch(3, 1_000, Compression::None)));
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![produce_request::TopicProduceData::default().with_name(name("t")).with_partition_data(vec![data])]);
        (Client::connect(addr).await.send(&req, 9).await.responses[0].partition_responses[0].error_code == 0).then_some(())
    })
    .await;
    broker.shutdown().await;

    // Nobody at the bootstrap address: the broker gives up within its registration timeout.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let started = std::time::Instant::now();
    let refused = fjord::node::start(node_config(bdir.path(), "broker", 2, "PLAINTEXT://127.0.0.1:0", &nowhere, &["initial.broker.registration.timeout.ms=500"])).await;
    assert!(refused.is_err(), "no controller answered");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded by initial.broker.registration.timeout.ms");
    controller.shutdown().await;
}
