//! A dynamic metadata quorum (KIP-853): a controller-only quorum of one started through
//! `controller.quorum.bootstrap.servers`, two more controllers started with bootstrap servers
//! naming it, which wait until AddRaftVoter (sent as `kafka-metadata-quorum.sh add-controller`
//! sends it, to the controller listener) makes them voters; Kafka's refusals of bad changes;
//! DescribeQuorum and DescribeCluster follow the membership; a broker-only node that learned the
//! voters when there was one keeps being served when that first controller stops; RemoveRaftVoter
//! takes the stopped one out; a restarted joined controller keeps its membership from its log.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, free_port, eventually};
use fjord::config::Config;
use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn node_config(dir: &std::path::Path, roles: &str, node_id: i32, listeners: &str, bootstrap: &str) -> Config {
    let o = [
        format!("process.roles={roles}"),
        format!("node.id={node_id}"),
        format!("controller.quorum.bootstrap.servers={bootstrap}"),
        format!("listeners={listeners}"),
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".to_string(),
        "broker.heartbeat.interval.ms=200".to_string(),
        "broker.session.timeout.ms=3000".to_string(),
        "fjord.http.listener=none".to_string(),
        format!("log.dirs={}", dir.display()),
    ];
    Config::load(None, &o).expect("config")
}


async fn describe_cluster(addr: SocketAddr) -> Option<DescribeClusterResponse> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut c = Client::over(stream);
    Some(c.send(&DescribeClusterRequest::default().with_endpoint_type(2), 1).await)
}

/// DescribeQuorum at `addr`: (error code, leader, voters with their directory ids).
async fn describe_quorum(addr: SocketAddr) -> (i16, i32, Vec<(i32, uuid::Uuid)>) {
    let mut c = Client::connect(addr).await;
    let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
        .with_topic_name(name("__cluster_metadata"))
        .with_partitions(vec![describe_quorum_request::PartitionData::default().with_partition_index(0)])]);
    let r = c.send(&req, 2).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_id.0, p.current_voters.iter().map(|v| (v.replica_id.0, v.replica_directory_id)).collect())
}

/// The observers DescribeQuorum at `addr` lists: (replica id, directory id).
async fn describe_observers(addr: SocketAddr) -> Vec<(i32, uuid::Uuid)> {
    let mut c = Client::connect(addr).await;
    let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
        .with_topic_name(name("__cluster_metadata"))
        .with_partitions(vec![describe_quorum_request::PartitionData::default().with_partition_index(0)])]);
    let r = c.send(&req, 2).await;
    r.topics[0].partitions[0].observers.iter().map(|o| (o.replica_id.0, o.replica_directory_id)).collect()
}

/// The `directory.id` a controller wrote in its metadata log dir's meta.properties (what the
/// stock tool reads for add-controller).
fn directory_id(dir: &std::path::Path) -> uuid::Uuid {
    let text = std::fs::read_to_string(dir.join("meta.properties")).expect("meta.properties in the metadata log dir");
    let id = text.lines().find_map(|l| l.strip_prefix("directory.id=")).expect("a directory.id");
    fjord::storage::kafka_dir::parse_kafka_uuid(id.trim()).expect("Kafka's uuid form")
}

fn add_voter(id: i32, directory_id: uuid::Uuid, port: u16, cluster_id: Option<&str>) -> AddRaftVoterRequest {
    let listener = Listener::default().with_name(StrBytes::from_static_str("CONTROLLER")).with_host(StrBytes::from_static_str("127.0.0.1")).with_port(port);
    AddRaftVoterRequest::default()
        .with_cluster_id(cluster_id.map(|c| StrBytes::from_string(c.to_string())))
        .with_timeout_ms(30_000)
        .with_voter_id(id)
        .with_voter_directory_id(directory_id)
        .with_listeners(vec![listener])
}

fn remove_voter(id: i32, directory_id: uuid::Uuid) -> RemoveRaftVoterRequest {
    RemoveRaftVoterRequest::default().with_cluster_id(None).with_voter_id(id).with_voter_directory_id(directory_id)
}

async fn send_add(addr: SocketAddr, req: &AddRaftVoterRequest) -> (i16, Option<String>) {
    let r = Client::connect(addr).await.send(req, 0).await;
    (r.error_code, r.error_message.map(|m| m.to_string()))
}

/// AddRaftVoter until it is not answered REQUEST_TIMED_OUT (which a leader answers until its
/// first entries are committed, as Kafka's does).
async fn add_when_ready(addr: SocketAddr, req: &AddRaftVoterRequest) -> (i16, Option<String>) {
    eventually("AddRaftVoter answered other than REQUEST_TIMED_OUT", async || Some(send_add(addr, req).await).filter(|r| r.0 != 7)).await
}

async fn send_remove(addr: SocketAddr, req: &RemoveRaftVoterRequest) -> (i16, Option<String>) {
    let r = Client::connect(addr).await.send(req, 0).await;
    (r.error_code, r.error_message.map(|m| m.to_string()))
}

/// Creates a topic through the broker at `addr` and produces to it acks=all (at `addr` or one of
/// `others`, whichever leads it), retried while the controller moves.
async fn create_and_produce(addr: SocketAddr, topic: &str) {
    create_and_produce_on(addr, &[], topic).await
}

async fn create_and_produce_on(addr: SocketAddr, others: &[SocketAddr], topic: &str) {
    eventually("the topic created", async || {
        let t = CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
        let r = Client::connect(addr).await.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5_000), 5).await;
        let code = r.topics[0].error_code;
        (code == 0 || code == 36).then_some(())
    })
    .await;
    eventually("the produce acknowledged", async || {
        let data = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(common::batch(3, 1_000, Compression::None)));
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![produce_request::TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])]);
        for at in std::iter::once(&addr).chain(others) {
            if Client::connect(*at).await.send(&req, 9).await.responses[0].partition_responses[0].error_code == 0 {
                return Some(());
            }
        }
        None
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controllers_join_and_leave_a_quorum_of_one_through_add_and_remove_raft_voter() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| format!("127.0.0.1:{p}").parse().unwrap()).collect();
    let first = format!("127.0.0.1:{}", ports[0]);
    let controller_config = |i: usize| node_config(dirs[i].path(), "controller", i as i32 + 1, &format!("CONTROLLER://127.0.0.1:{}", ports[i]), &first);

    // Controller 1 names only itself: a quorum of one. A broker-only node learns it as the voter.
    let c1 = fjord::node::start_controller(controller_config(0)).await.expect("a quorum of one");
    let cluster = eventually("controller 1 leads", async || describe_cluster(addrs[0]).await.filter(|r| r.controller_id.0 == 1)).await;
    let cluster_id = cluster.cluster_id.to_string();
    let broker = fjord::node::start(node_config(dirs[3].path(), "broker", 4, "PLAINTEXT://127.0.0.1:0", &first)).await.expect("the broker learns the voters");
    create_and_produce(broker.local_addr, "before").await;
    // kraft.version is finalized at 1 in a dynamic quorum.
    let versions = Client::connect(broker.local_addr).await.send(&ApiVersionsRequest::default(), 3).await;
    let kraft = versions.finalized_features.iter().find(|f| f.name.as_str() == "kraft.version").map(|f| (f.min_version_level, f.max_version_level));
    assert_eq!(kraft, Some((1, 1)), "kraft.version 1: {:?}", versions.finalized_features);

    // Controllers 2 and 3 name controller 1: they wait as non-voters, each with a directory id
    // in its metadata log dir's meta.properties and the cluster's id.
    let c2 = fjord::node::start_controller(controller_config(1)).await.expect("controller 2 starts to join");
    let c3 = fjord::node::start_controller(controller_config(2)).await.expect("controller 3 starts to join");
    let (d1, d2, d3) = (directory_id(dirs[0].path()), directory_id(dirs[1].path()), directory_id(dirs[2].path()));
    assert!(std::fs::read_to_string(dirs[1].path().join("meta.properties")).unwrap().contains(&format!("cluster.id={cluster_id}")), "the joining controller took the cluster's id");
    let (code, leader, voters) = describe_quorum(addrs[0]).await;
    assert_eq!((code, leader, voters), (0, 1, vec![(1, d1)]), "one voter, with its directory id");
    let waiting = describe_cluster(addrs[1]).await.expect("controller 2 answers");
    assert_eq!(waiting.brokers.iter().map(|b| (b.broker_id.0, b.port)).collect::<Vec<_>>(), vec![(1, ports[0] as i32)], "a controller not yet added names the voters it learned");

    // Kafka's refusals: a non-leader, a wrong cluster id, no directory id, no endpoint on the
    // controller listener, a voter already in, removing one that is not.
    assert_eq!(send_add(addrs[1], &add_voter(2, d2, ports[1], None)).await.0, 6, "NOT_LEADER_OR_FOLLOWER from a non-voter");
    let (code, message) = send_add(addrs[0], &add_voter(2, d2, ports[1], Some("not-the-cluster"))).await;
    assert_eq!(code, 104, "INCONSISTENT_CLUSTER_ID: {message:?}");
    assert_eq!(send_add(addrs[0], &add_voter(2, uuid::Uuid::nil(), ports[1], None)).await, (42, Some("Add voter request didn't include a valid voter".into())));
    let mut elsewhere = add_voter(2, d2, ports[1], None);
    elsewhere.listeners[0].name = StrBytes::from_static_str("OTHER");
    assert_eq!(send_add(addrs[0], &elsewhere).await.0, 42, "INVALID_REQUEST: no endpoint for the controller listener");
    assert_eq!(send_add(addrs[0], &add_voter(1, d1, ports[0], None)).await.0, 126, "DUPLICATE_VOTER");
    assert_eq!(send_remove(addrs[0], &remove_voter(7, d2)).await.0, 127, "VOTER_NOT_FOUND");
    assert_eq!(send_remove(addrs[0], &remove_voter(1, d2)).await.0, 127, "VOTER_NOT_FOUND: the voter's directory id differs");
    assert_eq!(send_remove(addrs[0], &remove_voter(1, d1)).await.0, 127, "VOTER_NOT_FOUND: the last voter stays");

    // AddRaftVoter makes them voters, one after the other.
    assert_eq!(add_when_ready(addrs[0], &add_voter(2, d2, ports[1], Some(&cluster_id))).await, (0, None));
    assert_eq!(add_when_ready(addrs[0], &add_voter(3, d3, ports[2], None)).await, (0, None));
    let (code, leader, voters) = describe_quorum(addrs[0]).await;
    assert_eq!((code, leader, voters), (0, 1, vec![(1, d1), (2, d2), (3, d3)]), "three voters, with their directory ids");
    let on_2 = eventually("controller 2 lists the voters", async || describe_cluster(addrs[1]).await.filter(|r| r.brokers.len() == 3)).await;
    assert_eq!((on_2.controller_id.0, on_2.cluster_id.to_string()), (1, cluster_id.clone()), "the same leader and cluster on a joined voter");
    // The joined voters hold the metadata: the topic made before they joined.
    eventually("controller 2 applied the topic made before it joined", async || c2.image().topic_by_name("before").map(|_| ())).await;

    // The broker, which learned of controller 1 alone at startup, learns the new voters.
    eventually("the broker knows the three voters", async || (broker.controller_voters().len() == 3).then_some(())).await;
    // Controller 1 stops: controller 2 or 3 leads, and the broker keeps being served (a new
    // topic, a produce).
    c1.shutdown().await;
    let new_leader = eventually("a new leader", async || describe_cluster(addrs[1]).await.map(|r| r.controller_id.0).filter(|l| *l == 2 || *l == 3)).await;
    create_and_produce(broker.local_addr, "after").await;

    // RemoveRaftVoter takes the stopped controller out.
    let leader_addr = addrs[new_leader as usize - 1];
    assert_eq!(send_remove(leader_addr, &remove_voter(1, d1)).await, (0, None));
    let (_, leader, voters) = describe_quorum(leader_addr).await;
    assert_eq!((leader, voters), (new_leader, vec![(2, d2), (3, d3)]));

    // A joined controller restarts: its log holds the membership (it asks nobody, its
    // bootstrap server being gone) and it votes again: the quorum of two commits once it is back.
    let (leading, restarted, follower) = if new_leader == 2 { (c2, 2usize, c3) } else { (c3, 1usize, c2) };
    follower.shutdown().await;
    let back = fjord::node::start_controller(controller_config(restarted)).await.expect("the joined controller restarts");
    let id = restarted as i32 + 1;
    eventually("the restarted controller is a voter of a quorum with a leader", async || {
        let r = describe_cluster(addrs[restarted]).await?;
        (r.brokers.iter().map(|b| b.broker_id.0).collect::<Vec<_>>() == vec![2, 3] && r.controller_id.0 >= 0).then_some(())
    })
    .await;
    create_and_produce(broker.local_addr, "restarted").await;
    let leader = eventually("a leader answers DescribeQuorum", async || describe_cluster(addrs[restarted]).await.map(|r| r.controller_id.0).filter(|l| *l >= 0)).await;
    let (_, _, voters) = describe_quorum(addrs[leader as usize - 1]).await;
    assert!(voters.iter().any(|(v, _)| *v == id), "node {id} is a voter after its restart: {voters:?}");

    broker.shutdown().await;
    back.shutdown().await;
    leading.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_change_one_at_a_time_a_lagging_one_is_not_added_and_a_static_quorum_keeps_its_voters() {
    let (sdir, ddir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A static quorum (controller.quorum.voters, kraft.version 0) refuses voter changes, as Kafka's.
    let port = free_port();
    let o = [
        "process.roles=controller".to_string(),
        "node.id=1".to_string(),
        format!("controller.quorum.voters=1@127.0.0.1:{port}"),
        format!("listeners=CONTROLLER://127.0.0.1:{port}"),
        "controller.listener.names=CONTROLLER".to_string(),
        "fjord.http.listener=none".to_string(),
        format!("log.dirs={}", sdir.path().display()),
    ];
    let fixed = fjord::node::start_controller(Config::load(None, &o).expect("config")).await.expect("a static quorum of one");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("controller 1 leads", async || describe_cluster(addr).await.filter(|r| r.controller_id.0 == 1)).await;
    let refused = send_add(addr, &add_voter(2, uuid::Uuid::new_v4(), free_port(), None)).await;
    assert_eq!(refused, (35, Some("Cluster doesn't support adding voter because the kraft.version feature is 0".into())), "UNSUPPORTED_VERSION");
    assert_eq!(send_remove(addr, &remove_voter(1, uuid::Uuid::new_v4())).await.0, 35);
    fixed.shutdown().await;

    // A dynamic quorum of one: a voter that never answers is not added (REQUEST_TIMED_OUT once
    // the request's timeout passes), and while it is tried another change waits its turn.
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let c1 = fjord::node::start_controller(node_config(ddir.path(), "controller", 1, &format!("CONTROLLER://127.0.0.1:{port}"), &format!("127.0.0.1:{port}"))).await.expect("a quorum of one");
    eventually("controller 1 leads", async || describe_cluster(addr).await.filter(|r| r.controller_id.0 == 1)).await;
    // The probe: removing the last voter, refused at once (VOTER_NOT_FOUND) when it gets its turn.
    let d1 = directory_id(ddir.path());
    let (busy, (code, message)) = eventually("a second change refused while the first is pending", async || {
        let mut nobody = add_voter(5, uuid::Uuid::new_v4(), free_port(), None);
        nobody.timeout_ms = 5_000;
        let pending = tokio::spawn(async move { send_add(addr, &nobody).await });
        loop {
            let r = send_remove(addr, &remove_voter(1, d1)).await;
            assert!(r.0 == 7 || r.0 == 127, "{r:?}");
            if r.0 == 7 && !pending.is_finished() {
                return Some((r, pending.await.unwrap()));
            }
            // The first change was answered before it started (a new leader answers
            // REQUEST_TIMED_OUT until its first entries commit, as Kafka's): again.
            if pending.is_finished() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(busy.1.as_deref(), Some("Request timed out waiting for leader to handle previous voter change request"));
    assert_eq!(code, 7, "REQUEST_TIMED_OUT: {message:?}");
    assert_eq!(message.as_deref(), Some("Aborted add voter operation for 5 since it is lagging behind"));
    let (_, leader, voters) = describe_quorum(addr).await;
    assert_eq!((leader, voters.iter().map(|v| v.0).collect::<Vec<_>>()), (1, vec![1]), "the voter that never caught up was not added");
    c1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_combined_node_joins_a_combined_quorum_of_one_and_replicates_its_partitions() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let first = format!("127.0.0.1:{}", ports[0].1);
    let combined = |i: usize| node_config(dirs[i].path(), "broker,controller", i as i32 + 1, &format!("PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}", ports[i].0, ports[i].1), &first);
    let n1 = fjord::node::start(combined(0)).await.expect("a combined quorum of one");
    let controller1: SocketAddr = first.parse().unwrap();
    eventually("node 1 leads", async || describe_cluster(controller1).await.filter(|r| r.controller_id.0 == 1)).await;
    let n2 = fjord::node::start(combined(1)).await.expect("node 2 starts to join");
    let d2 = directory_id(dirs[1].path());
    assert_eq!(add_when_ready(controller1, &add_voter(2, d2, ports[1].1, None)).await, (0, None));
    let (_, _, voters) = describe_quorum(controller1).await;
    assert_eq!(voters.iter().map(|v| v.0).collect::<Vec<_>>(), vec![1, 2]);
    // Node 2's broker registers and serves: a topic of two replicas, produced to acks=all.
    eventually("both brokers registered", async || {
        let r = Client::connect(n1.local_addr).await.send(&DescribeClusterRequest::default(), 1).await;
        (r.brokers.len() == 2).then_some(())
    })
    .await;
    let t = CreatableTopic::default().with_name(name("both")).with_num_partitions(1).with_replication_factor(2);
    let created = Client::connect(n2.local_addr).await.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 5).await;
    assert_eq!(created.topics[0].error_code, 0);
    eventually("an acks=all produce on the leader", async || {
        for addr in [n1.local_addr, n2.local_addr] {
            let data = produce_request::PartitionProduceData::default().with_index(0).with_records(Some(common::batch(2, 1_000, Compression::None)));
            let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5_000).with_topic_data(vec![produce_request::TopicProduceData::default().with_name(name("both")).with_partition_data(vec![data])]);
            if Client::connect(addr).await.send(&req, 9).await.responses[0].partition_responses[0].error_code == 0 {
                return Some(());
            }
        }
        None
    })
    .await;
    assert_eq!(describe_cluster(controller1).await.map(|r| r.cluster_id), Client::connect(n2.local_addr).await.send(&DescribeClusterRequest::default(), 1).await.cluster_id.into(), "one cluster id");

    // The leader removes itself: it answers once the change is committed, then steps down and
    // node 2 leads alone; node 1 stays a broker, and the cluster goes on deciding.
    let d1 = directory_id(dirs[0].path());
    assert_eq!(send_remove(controller1, &remove_voter(1, d1)).await, (0, None));
    let controller2: SocketAddr = format!("127.0.0.1:{}", ports[1].1).parse().unwrap();
    eventually("node 2 leads", async || describe_cluster(controller2).await.filter(|r| r.controller_id.0 == 2)).await;
    let (_, leader, voters) = describe_quorum(controller2).await;
    assert_eq!((leader, voters), (2, vec![(2, d2)]));
    // Node 1 goes on following the log without a vote: an observer, as Kafka lists it.
    eventually("node 1 listed as an observer", async || describe_observers(controller2).await.contains(&(1, d1)).then_some(())).await;
    create_and_produce_on(n1.local_addr, &[n2.local_addr], "after-removal").await;
    n2.shutdown().await;
    n1.shutdown().await;
}

/// `fjord format --initial-controllers` (as `kafka-storage.sh format --initial-controllers`):
/// three controllers formatted with the same list and cluster id start one dynamic quorum with
/// those three voters and their listed directory ids, asking nobody; a broker-only node joins
/// it; the quorum is dynamic (kraft.version 1): RemoveRaftVoter takes a follower out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controllers_formatted_with_initial_controllers_start_one_dynamic_quorum() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let addrs: Vec<SocketAddr> = ports.iter().map(|p| format!("127.0.0.1:{p}").parse().unwrap()).collect();
    let bootstrap = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let directory_ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
    let list = (0..3)
        .map(|i| format!("{}@127.0.0.1:{}:{}", i + 1, ports[i], fjord::broker::metadata::uuid_to_kafka_string(directory_ids[i])))
        .collect::<Vec<_>>()
        .join(",");
    let cluster_id = fjord::broker::metadata::uuid_to_kafka_string(uuid::Uuid::new_v4());
    let controller_config = |i: usize| node_config(dirs[i].path(), "controller", i as i32 + 1, &format!("CONTROLLER://127.0.0.1:{}", ports[i]), &bootstrap);
    let request = fjord::node::format::FormatRequest {
        cluster_id: Some(cluster_id.clone()),
        initial_controllers: fjord::node::format::parse_initial_controllers(&list).expect("the list"),
        scram: vec![],
        ignore_formatted: false,
    };
    for i in 0..3 {
        fjord::node::format::format(&controller_config(i), &request).expect("formats");
        assert_eq!(directory_id(dirs[i].path()), directory_ids[i], "the listed directory id in meta.properties");
    }
    let (c1, c2, c3) = tokio::join!(
        fjord::node::start_controller(controller_config(0)),
        fjord::node::start_controller(controller_config(1)),
        fjord::node::start_controller(controller_config(2))
    );
    let controllers = [c1.expect("controller 1"), c2.expect("controller 2"), c3.expect("controller 3")];
    let leader = eventually("a leader", async || describe_cluster(addrs[0]).await.map(|r| r.controller_id.0).filter(|l| *l > 0)).await;
    let leader_addr = addrs[leader as usize - 1];
    let (code, _, voters) = describe_quorum(leader_addr).await;
    assert_eq!((code, voters), (0, (1..=3).zip(directory_ids.iter().copied()).collect::<Vec<_>>()), "the three listed voters, with their directory ids");
    let answer = describe_cluster(addrs[2]).await.expect("controller 3 answers");
    assert_eq!(answer.cluster_id.to_string(), cluster_id, "the formatted cluster id");

    let broker = fjord::node::start(node_config(dirs[3].path(), "broker", 4, "PLAINTEXT://127.0.0.1:0", &bootstrap)).await.expect("a broker joins");
    create_and_produce(broker.local_addr, "formatted").await;
    let versions = Client::connect(broker.local_addr).await.send(&ApiVersionsRequest::default(), 3).await;
    let kraft = versions.finalized_features.iter().find(|f| f.name.as_str() == "kraft.version").map(|f| f.max_version_level);
    assert_eq!(kraft, Some(1), "a dynamic quorum");
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let removed = eventually("RemoveRaftVoter answered", async || Some(send_remove(leader_addr, &remove_voter(follower, directory_ids[follower as usize - 1])).await).filter(|r| r.0 != 7)).await;
    assert_eq!(removed, (0, None));
    let (_, _, voters) = describe_quorum(leader_addr).await;
    assert_eq!(voters.len(), 2, "{voters:?}");
    create_and_produce(broker.local_addr, "after-removal").await;

    broker.shutdown().await;
    for c in controllers {
        c.shutdown().await;
    }
}
