//! A secured three-node quorum configured as a Kafka operator configures one: brokers reach each
//! other over a SASL_SSL listener logging in with SCRAM-SHA-512, nodes reach the controllers over
//! a SASL_SSL controller listener (PLAIN, client certificates required), the authorizer's
//! `super.users` names only the nodes' and the admin's SASL principals (no User:ANONYMOUS),
//! clients log in on their own SASL listener. Replication works only through the brokers' login,
//! also as their sessions expire (KIP-368); a principal without ACLs is refused; a broker with a
//! wrong inter-broker password stays out of the ISR while the others go on. A combined node and a
//! broker-only node show the controller listener's other shapes: SSL reached with a trust store
//! alone, SASL_PLAINTEXT with PLAIN. Certificates are made by the test.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{Client, eventually};
use fjord::config::Config;
use fjord::node::RunningNode;
use fjord::types::TopicPartition;
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const BROKER_PASSWORD: &str = "broker-scram-secret";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA and one certificate for 127.0.0.1 signed by it, as PEM files in `dir`: the key store
/// (key, certificate, CA) and the trust store (CA).
fn pki(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "fjord secured cluster test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("node key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "fjord-node");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("node cert");
    let keystore = dir.join("node.pem");
    std::fs::write(&keystore, format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.pem())).expect("key store");
    let truststore = dir.join("ca.pem");
    std::fs::write(&truststore, ca.pem()).expect("trust store");
    (keystore, truststore)
}

/// The configs of a three-node quorum: EXTERNAL (SASL_PLAINTEXT, PLAIN: admin and alice) for
/// clients, INTERNAL (SASL_SSL, SCRAM-SHA-512) between brokers, CONTROLLER for the quorum.
/// `internal_password(i)` is node i's inter-broker password.
fn configs(pki_dir: &std::path::Path, internal_password: impl Fn(usize) -> String, extra: &[&str]) -> Vec<(Config, tempfile::TempDir)> {
    let (keystore, truststore) = pki(pki_dir);
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    (0..3)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            let mut o = vec![
                format!("node.id={}", i + 1),
                format!("listeners=EXTERNAL://127.0.0.1:0,INTERNAL://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[i]),
                "listener.security.protocol.map=EXTERNAL:SASL_PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL".to_string(),
                "controller.listener.names=CONTROLLER".to_string(),
                format!("controller.quorum.voters={voters}"),
                "inter.broker.listener.name=INTERNAL".to_string(),
                format!("log.dirs={}", dir.path().display()),
                "broker.session.timeout.ms=3000".to_string(),
                "broker.heartbeat.interval.ms=200".to_string(),
                "fjord.http.listener=127.0.0.1:0".to_string(),
                "ssl.keystore.type=PEM".to_string(),
                format!("ssl.keystore.location={}", keystore.display()),
                "ssl.truststore.type=PEM".to_string(),
                format!("ssl.truststore.location={}", truststore.display()),
                "listener.name.external.sasl.enabled.mechanisms=PLAIN".to_string(),
                r#"listener.name.external.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret" user_alice="alice-secret";"#.to_string(),
                "listener.name.internal.sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512".to_string(),
                format!(r#"listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="{}";"#, internal_password(i)),
                // The quorum's own login: PLAIN, its users in the JAAS configuration (SCRAM's
                // credentials live in the metadata log the quorum must first form to hold).
                "listener.name.controller.sasl.enabled.mechanisms=PLAIN".to_string(),
                "sasl.mechanism.controller.protocol=PLAIN".to_string(),
                r#"listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="controller-secret" user_broker="controller-secret";"#.to_string(),
                "listener.name.controller.ssl.client.auth=required".to_string(),
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
                "super.users=User:broker;User:admin".to_string(),
            ];
            o.extend(extra.iter().map(|s| s.to_string()));
            (Config::load(None, &o).expect("config"), dir)
        })
        .collect()
}

async fn start_all(configs: &[(Config, tempfile::TempDir)]) -> Vec<RunningNode> {
    let handles: Vec<_> = configs.iter().map(|(c, _)| tokio::spawn(fjord::node::start(c.clone()))).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().expect("node starts"));
    }
    out
}


/// A client logged in with PLAIN on the EXTERNAL listener of `node`.
async fn login(node: &RunningNode, user: &str) -> Client {
    let mut c = Client::connect(node.listener_addr("EXTERNAL").expect("EXTERNAL listener")).await;
    assert_eq!(c.send(&SaslHandshakeRequest::default().with_mechanism(s("PLAIN")), 1).await.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    let r = c.send(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token.into_bytes())), 2).await;
    assert_eq!(r.error_code, 0, "{user} logs in: {:?}", r.error_message);
    c
}

/// Stores the brokers' SCRAM-SHA-512 credential (what `kafka-configs --alter --add-config
/// SCRAM-SHA-512=[...]` sends) through `admin`.
async fn add_broker_credential(admin: &mut Client) {
    let salt = b"secured-cluster-salt".to_vec();
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(BROKER_PASSWORD.as_bytes(), &salt, 4096, &mut salted);
    let u = ScramCredentialUpsertion::default().with_name(s("broker")).with_mechanism(2).with_iterations(4096).with_salted_password(Bytes::copy_from_slice(&salted)).with_salt(Bytes::from(salt));
    let r = admin.send(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]), 0).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
}

async fn metadata(c: &mut Client, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))])).with_allow_auto_topic_creation(false);
    c.send(&req, 12).await
}

async fn create_topic(admin: &mut Client, topic: &str) {
    let t = CreatableTopic::default()
        .with_name(TopicName(s(topic)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])]);
    let r = admin.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn produce(topic: &str, n: usize) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(0).with_records(Some(common::batch(n, 1_000, Compression::None)));
    ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![data])])
}

/// Produces `n` records with acks=all until the leader has the replicas it needs (retrying
/// NOT_LEADER_OR_FOLLOWER / UNKNOWN_TOPIC_OR_PARTITION / NOT_ENOUGH_REPLICAS / REQUEST_TIMED_OUT
/// while the topic settles); the final error code.
async fn produce_acks_all(c: &mut Client, topic: &str, n: usize) -> i16 {
    eventually("acks=all produce answered", async || {
        let code = c.send(&produce(topic, n), 9).await.responses[0].partition_responses[0].error_code;
        (![3, 6, 7, 19].contains(&code)).then_some(code)
    })
    .await
}

async fn shutdown(nodes: Vec<RunningNode>) {
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brokers_replicate_over_a_sasl_ssl_scram_inter_broker_listener_with_only_sasl_principals_super_users() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let pki_dir = tempfile::tempdir().unwrap();
    // KIP-368 sessions of 2 s between nodes: their connections must be renewed as they go.
    const SESSION_MS: u64 = 2000;
    let lifetimes = [format!("listener.name.internal.connections.max.reauth.ms={SESSION_MS}"), format!("listener.name.controller.connections.max.reauth.ms={SESSION_MS}")];
    let configs = configs(pki_dir.path(), |_| BROKER_PASSWORD.to_string(), &[lifetimes[0].as_str(), lifetimes[1].as_str()]);
    let nodes = start_all(&configs).await;
    let mut admin = login(&nodes[0], "admin").await;
    eventually("three brokers registered", async || (metadata(&mut admin, "none").await.brokers.len() == 3).then_some(())).await;
    add_broker_credential(&mut admin).await;
    create_topic(&mut admin, "secured").await;
    let m = metadata(&mut admin, "secured").await;
    let leader = m.topics[0].partitions[0].leader_id.0;
    let mut to_leader = login(&nodes[(leader - 1) as usize], "admin").await;
    assert_eq!(produce_acks_all(&mut to_leader, "secured", 5).await, 0, "acks=all answered: both followers fetched over SASL_SSL as User:broker");

    // Every replica holds the five records, and every one is in the ISR.
    let tp = TopicPartition::new("secured", 0);
    for (i, n) in nodes.iter().enumerate() {
        let b = &n.broker;
        eventually(&format!("node {} holds the records", i + 1), async || (b.replicas.follower_position(&tp).map(|(end, _, _)| end).ok() == Some(5)).then_some(())).await;
        let data = b.replicas.read_to_log_end(&tp, 0, 1 << 20).expect("read the replica");
        assert!(!data.is_empty(), "node {}: records read back", i + 1);
    }
    let isr = eventually("all three in the ISR", async || {
        let m = metadata(&mut admin, "secured").await;
        let isr: Vec<i32> = m.topics[0].partitions[0].isr_nodes.iter().map(|b| b.0).collect();
        (isr.len() == 3).then_some(isr)
    })
    .await;
    assert_eq!(isr.len(), 3);

    // The controller listener is SASL_SSL: plain text is not served; over TLS with the nodes'
    // login a DescribeQuorum is answered (User:broker is a super user), a wrong password fails.
    let controller = nodes[0].controller_addr().expect("a controller listener");
    let mut raw = Client::connect(controller).await;
    let versions = raw.encode_request(&ApiVersionsRequest::default(), 3);
    raw.send_raw(&versions).await;
    // (At most a TLS alert comes back, then the close: never an ApiVersions answer.)
    assert!(raw.read_frame().await.is_none(), "no TLS, no answer");
    let topology = &configs[0].0.topology;
    let ssl = topology.controller_ssl.as_ref().expect("TLS to the controllers");
    let client = |sasl: fjord::config::SaslClientSettings| fjord::client::ClientConfig {
        tls: Some(fjord::server::tls::client_config("CONTROLLER", ssl).expect("TLS client")),
        tls_server_name: Some("127.0.0.1".into()),
        sasl: Some(std::sync::Arc::new(sasl)),
        ..fjord::client::ClientConfig::new("test")
    };
    let node_login = topology.controller_sasl.clone().expect("the nodes' controller login");
    assert_eq!((node_login.mechanism, node_login.username.as_str()), (fjord::config::SaslMechanism::Plain, "broker"));
    let quorum = fjord::client::BrokerClient::connect(controller, client(node_login.clone())).await.expect("the nodes' login");
    let described = quorum.send(&DescribeQuorumRequest::default()).await.expect("DescribeQuorum");
    assert_eq!(described.error_code, 0);

    // Sessions end every 2 s; for three of them acks=all keeps being answered at once, so the
    // followers' fetchers (and the nodes' controller connections) log in again as they expire,
    // on the connections they have (KIP-368): no node's inter-broker listener serves a new one.
    // Meanwhile this client's DescribeQuorum is answered on its one connection (the server would
    // close the connection on a request after the session's end, failing it).
    let created = |n: &RunningNode| n.broker.metrics.connection_creation_total("INTERNAL");
    let created_before: Vec<u64> = nodes.iter().map(created).collect();
    assert!(created_before[(leader - 1) as usize] >= 2, "both followers fetch from the leader: {created_before:?}");
    let started = std::time::Instant::now();
    let mut produced = 5;
    while started.elapsed() < Duration::from_millis(3 * SESSION_MS) {
        let code = to_leader.send(&produce("secured", 1), 9).await.responses[0].partition_responses[0].error_code;
        assert_eq!(code, 0, "acks=all after {:?}", started.elapsed());
        produced += 1;
        let described = quorum.send(&DescribeQuorumRequest::default()).await.expect("DescribeQuorum across sessions");
        assert_eq!(described.error_code, 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = metadata(&mut admin, "secured").await;
    assert_eq!(m.topics[0].partitions[0].isr_nodes.len(), 3, "no follower fell out of the ISR");
    assert_eq!(nodes.iter().map(created).collect::<Vec<_>>(), created_before, "the fetchers re-authenticated on their connections");
    for (i, n) in nodes.iter().enumerate() {
        let b = &n.broker;
        eventually(&format!("node {} holds all {produced} records", i + 1), async || (b.replicas.follower_position(&tp).map(|(end, _, _)| end).ok() == Some(produced)).then_some(())).await;
    }

    // A principal without ACLs is refused.
    let mut alice = login(&nodes[(leader - 1) as usize], "alice").await;
    assert_eq!(alice.send(&produce("secured", 1), 9).await.responses[0].partition_responses[0].error_code, 29, "TOPIC_AUTHORIZATION_FAILED");

    // Idle past its session's end, the client still re-authenticates on the connection: the
    // server takes a re-authentication's SaslHandshake after the end, as Kafka does.
    tokio::time::sleep(Duration::from_millis(SESSION_MS + 500)).await;
    let described = quorum.send(&DescribeQuorumRequest::default()).await.expect("DescribeQuorum after an idle session end");
    assert_eq!(described.error_code, 0);
    assert!(!quorum.is_closed(), "one connection throughout (a BrokerClient never reconnects by itself)");
    let wrong = fjord::config::SaslClientSettings { password: fjord::config::Secret("nope".into()), ..node_login };
    let err = fjord::client::BrokerClient::connect(controller, client(wrong)).await.expect_err("a wrong password");
    assert!(matches!(err, fjord::client::ClientError::Authentication { .. }), "{err}");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_with_a_wrong_inter_broker_password_stays_out_of_the_isr_while_the_others_go_on() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let pki_dir = tempfile::tempdir().unwrap();
    let password = |i: usize| if i == 2 { "not-the-broker-password".to_string() } else { BROKER_PASSWORD.to_string() };
    let configs = configs(pki_dir.path(), password, &["replica.lag.time.max.ms=2000"]);
    let nodes = start_all(&configs).await;
    let mut admin = login(&nodes[0], "admin").await;
    eventually("three brokers registered", async || (metadata(&mut admin, "none").await.brokers.len() == 3).then_some(())).await;
    add_broker_credential(&mut admin).await;
    create_topic(&mut admin, "guarded").await;
    let leader = metadata(&mut admin, "guarded").await.topics[0].partitions[0].leader_id.0;
    assert_eq!(leader, 1, "the first replica of the assignment leads");
    // Node 3 cannot log in to node 1: the ISR shrinks to nodes 1 and 2 and acks=all goes on.
    assert_eq!(produce_acks_all(&mut admin, "guarded", 4).await, 0);
    let isr = eventually("node 3 out of the ISR", async || {
        let m = metadata(&mut admin, "guarded").await;
        let mut isr: Vec<i32> = m.topics[0].partitions[0].isr_nodes.iter().map(|b| b.0).collect();
        isr.sort();
        (!isr.contains(&3)).then_some(isr)
    })
    .await;
    assert_eq!(isr, vec![1, 2]);
    assert_eq!(produce_acks_all(&mut admin, "guarded", 3).await, 0, "the others keep working");
    let tp = TopicPartition::new("guarded", 0);
    let b2 = &nodes[1].broker;
    eventually("node 2 holds the records", async || (b2.replicas.follower_position(&tp).map(|(end, _, _)| end).ok() == Some(7)).then_some(())).await;
    assert_eq!(nodes[2].broker.replicas.follower_position(&tp).map(|(end, _, _)| end).ok(), Some(0), "node 3 fetched nothing");

    // What node 3's fetcher meets: an authentication failure, not a broken connection.
    let listener = configs[2].0.topology.listeners.iter().find(|l| l.name == "INTERNAL").expect("INTERNAL");
    let tls = fjord::server::tls::client_config("INTERNAL", listener.ssl.as_ref().expect("SASL_SSL")).expect("TLS client");
    let config = fjord::client::ClientConfig {
        tls: Some(tls),
        tls_server_name: Some("127.0.0.1".into()),
        sasl: configs[2].0.topology.inter_broker_sasl.clone().map(std::sync::Arc::new),
        ..fjord::client::ClientConfig::new("test")
    };
    let internal: SocketAddr = nodes[0].listener_addr("INTERNAL").expect("INTERNAL listener");
    let err = fjord::client::BrokerClient::connect(internal, config.clone()).await.expect_err("a wrong password");
    assert!(matches!(err, fjord::client::ClientError::Authentication { .. }), "{err}");
    assert!(err.to_string().contains("SCRAM-SHA-512") && !err.to_string().contains("not-the-broker-password"), "{err}");
    // With the right password the same client logs in and is served.
    let mut right = configs[0].0.topology.inter_broker_sasl.clone().expect("node 1's login");
    right.username = "broker".into();
    let ok = fjord::client::BrokerClient::connect(internal, fjord::client::ClientConfig { sasl: Some(std::sync::Arc::new(right)), ..config }).await.expect("the right password");
    let m = ok.send(&MetadataRequest::default().with_topics(None)).await.expect("Metadata after the login");
    assert_eq!(m.brokers.len(), 3);
    shutdown(nodes).await;
}

/// A one-node quorum whose controller listener is SSL with client certificates required, the
/// authorizer on and `super.users` as given.
async fn ssl_controller_node(pki_dir: &std::path::Path, dir: &std::path::Path, super_users: &str) -> RunningNode {
    let (keystore, truststore) = pki(pki_dir);
    let port = free_port();
    let o = [
        "node.id=1".to_string(),
        format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL".to_string(),
        "controller.listener.names=CONTROLLER".to_string(),
        format!("controller.quorum.voters=1@127.0.0.1:{port}"),
        format!("log.dirs={}", dir.display()),
        "fjord.http.listener=127.0.0.1:0".to_string(),
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", truststore.display()),
        "listener.name.controller.ssl.client.auth=required".to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        format!("super.users={super_users}"),
    ];
    let config = Config::load(None, &o).expect("config");
    assert!(config.topology.controller_ssl.is_some() && config.topology.controller_sasl.is_none());
    fjord::node::start(config).await.expect("node starts")
}

/// On an SSL controller listener with client certificates required a node's principal is its
/// certificate's (`User:CN=fjord-node`): named in `super.users`, its broker registers with the
/// controller (no SASL, no User:ANONYMOUS); not named, it cannot. Plain text is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_reaches_an_ssl_controller_listener_as_its_certificates_principal() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let (pki_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = ssl_controller_node(pki_dir.path(), dir.path(), "User:CN=fjord-node").await;
    let cluster = node.broker.cluster.clone().expect("in a quorum");
    eventually("the broker registered over TLS", async || (cluster.broker_epoch() >= 0).then_some(())).await;
    let mut raw = Client::connect(node.controller_addr().expect("a controller listener")).await;
    let versions = raw.encode_request(&ApiVersionsRequest::default(), 3);
    raw.send_raw(&versions).await;
    assert!(raw.read_frame().await.is_none(), "no TLS, no answer");
    node.shutdown().await;

    let (pki_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = ssl_controller_node(pki_dir.path(), dir.path(), "User:CN=someone-else").await;
    // Time for a registration that would succeed (the first one took well under this).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(node.broker.cluster.as_ref().expect("in a quorum").broker_epoch(), -1, "the certificate's principal is not a super user");
    node.shutdown().await;
}

/// A combined node (node 1, the one voter) whose controller listener CONTROLLER speaks
/// `protocol`, and a broker-only node (node 2) reaching it; both serve PLAINTEXT to clients and
/// to each other. `combined` and `broker` are each node's own extra properties.
async fn combined_and_broker_only(dirs: &[tempfile::TempDir; 2], protocol: &str, combined: &[String], broker: &[String]) -> (RunningNode, RunningNode) {
    let port = free_port();
    let common = |node_id: i32, dir: &std::path::Path| {
        vec![
            format!("node.id={node_id}"),
            format!("listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:{protocol}"),
            "controller.listener.names=CONTROLLER".to_string(),
            format!("controller.quorum.voters=1@127.0.0.1:{port}"),
            "inter.broker.listener.name=PLAINTEXT".to_string(),
            format!("log.dirs={}", dir.display()),
            "broker.session.timeout.ms=3000".to_string(),
            "broker.heartbeat.interval.ms=200".to_string(),
            "fjord.http.listener=none".to_string(),
        ]
    };
    let mut first = common(1, dirs[0].path());
    first.push(format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"));
    first.extend(combined.iter().cloned());
    let mut second = common(2, dirs[1].path());
    second.extend(["process.roles=broker".to_string(), "listeners=PLAINTEXT://127.0.0.1:0".to_string()]);
    second.extend(broker.iter().cloned());
    let combined = fjord::node::start(Config::load(None, &first).expect("combined node's config")).await.expect("combined node starts");
    let broker = fjord::node::start(Config::load(None, &second).expect("broker-only node's config")).await.expect("broker-only node starts");
    (combined, broker)
}

/// Waits until both nodes are registered brokers, as the combined node's Metadata shows them.
async fn both_registered(combined: &RunningNode, broker: &RunningNode) {
    let cluster = broker.broker.cluster.clone().expect("in a quorum");
    eventually("the broker-only node registered", async || (cluster.broker_epoch() >= 0).then_some(())).await;
    let mut c = Client::connect(combined.local_addr).await;
    eventually("two brokers in the metadata", async || (metadata(&mut c, "none").await.brokers.len() == 2).then_some(())).await;
}

/// An SSL controller listener that asks for no client certificate: a broker-only node with a
/// trust store and no key store reaches it, registers and is served, as Kafka's client needs
/// only the trust store then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_only_node_with_only_a_trust_store_joins_over_an_ssl_controller_listener() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let (pki_dir, dirs) = (tempfile::tempdir().unwrap(), [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()]);
    let (keystore, truststore) = pki(pki_dir.path());
    let trust = ["ssl.truststore.type=PEM".to_string(), format!("ssl.truststore.location={}", truststore.display())];
    let mut combined = vec!["ssl.keystore.type=PEM".to_string(), format!("ssl.keystore.location={}", keystore.display())];
    combined.extend(trust.iter().cloned());
    let (first, second) = combined_and_broker_only(&dirs, "SSL", &combined, &trust).await;
    assert!(second.broker.config.topology.controller_ssl.as_ref().is_some_and(|s| s.keystore.is_none()), "no key store on the broker-only node");
    both_registered(&first, &second).await;
    second.shutdown().await;
    first.shutdown().await;

    // The same node before a listener requiring client certificates offers none: not served.
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    combined.push("listener.name.controller.ssl.client.auth=required".to_string());
    let (first, second) = combined_and_broker_only(&dirs, "SSL", &combined, &trust).await;
    let registered = first.broker.cluster.clone().expect("in a quorum");
    eventually("the combined node registered", async || (registered.broker_epoch() >= 0).then_some(())).await;
    // Time for a registration that would succeed (the one above took well under this).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(second.broker.cluster.as_ref().expect("in a quorum").broker_epoch(), -1, "no client certificate, no registration");
    second.shutdown().await;
    first.shutdown().await;
}

/// A SASL_PLAINTEXT controller listener with PLAIN: the combined node's broker and a broker-only
/// node log in to it with the listener's JAAS login (`User:broker`, the one super user), register
/// and keep heartbeating across sessions of 1.5 s (KIP-368); a broker-only node with a wrong
/// password is refused and never registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_only_node_logs_in_to_a_sasl_plaintext_controller_listener() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let login = |password: &str| format!(r#"listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="{password}" user_broker="controller-secret";"#);
    let authorizer = ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(), "super.users=User:broker".to_string()];
    let mut combined = vec![
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN".to_string(),
        "listener.name.controller.connections.max.reauth.ms=1500".to_string(),
        "sasl.mechanism.controller.protocol=PLAIN".to_string(),
        login("controller-secret"),
    ];
    combined.extend(authorizer.iter().cloned());
    let broker = |password: &str| {
        let mut o = vec!["sasl.mechanism.controller.protocol=PLAIN".to_string(), login(password)];
        o.extend(authorizer.iter().cloned());
        o
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (first, second) = combined_and_broker_only(&dirs, "SASL_PLAINTEXT", &combined, &broker("controller-secret")).await;
    assert_eq!(second.broker.config.topology.controller_sasl.as_ref().map(|l| l.username.as_str()), Some("broker"));
    both_registered(&first, &second).await;
    // Three sessions later both are still registered and unfenced: their heartbeats went on
    // through each re-authentication.
    let epoch = second.broker.cluster.as_ref().expect("in a quorum").broker_epoch();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let mut c = Client::connect(first.local_addr).await;
    assert_eq!(metadata(&mut c, "none").await.brokers.len(), 2, "both brokers unfenced after three sessions");
    assert_eq!(second.broker.cluster.as_ref().expect("in a quorum").broker_epoch(), epoch, "no new registration");
    // The controller listener asks for SASL: plain text without a login is not served.
    let mut raw = Client::connect(first.controller_addr().expect("a controller listener")).await;
    let describe = raw.encode_request(&DescribeQuorumRequest::default(), 1);
    raw.send_raw(&describe).await;
    assert!(raw.read_frame().await.is_none(), "a request before the login closes the connection");
    second.shutdown().await;

    // A wrong password: the broker-only node starts but cannot log in, so never registers.
    let dir = tempfile::tempdir().unwrap();
    let port = first.controller_addr().expect("a controller listener").port();
    let mut o = vec![
        "node.id=3".to_string(),
        "process.roles=broker".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT".to_string(),
        "controller.listener.names=CONTROLLER".to_string(),
        format!("controller.quorum.voters=1@127.0.0.1:{port}"),
        "inter.broker.listener.name=PLAINTEXT".to_string(),
        format!("log.dirs={}", dir.path().display()),
        "broker.heartbeat.interval.ms=200".to_string(),
        "fjord.http.listener=none".to_string(),
    ];
    o.extend(broker("not-the-password"));
    let wrong = fjord::node::start(Config::load(None, &o).expect("config")).await.expect("starts");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(wrong.broker.cluster.as_ref().expect("in a quorum").broker_epoch(), -1, "a wrong password never registers");
    // Node 2 gone (fenced at the latest when its session times out), node 3 refused: one broker.
    eventually("only the combined node's broker", async || (metadata(&mut c, "none").await.brokers.len() == 1).then_some(())).await;
    assert_eq!(wrong.broker.cluster.as_ref().expect("in a quorum").broker_epoch(), -1, "still refused");
    wrong.shutdown().await;
    first.shutdown().await;
}
