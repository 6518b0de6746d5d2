//! Three combined broker+controller nodes on loopback, in one metadata quorum: brokers register
//! and are unfenced, a topic created through any node is placed on all three with leaders and
//! ISRs from the controller, acks=all produce to a leader is replicated, and when the leader's
//! node stops its partitions get a new leader from the ISR that still has every record; a
//! follower that stops fetching leaves the ISR (AlterPartition) and rejoins once caught up.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Client, eventually};
use fjord::config::Config;
use fjord::node::RunningNode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// NOT_LEADER_OR_FOLLOWER.
const E_NOT_LEADER_OR_FOLLOWER: i16 = 6;

struct Node {
    running: Option<RunningNode>,
    _dir: tempfile::TempDir,
}

use common::free_port;

async fn start_cluster(n: i32, extra: &[&str]) -> Vec<Node> {
    let starts = node_configs(n, extra).into_iter().map(|(config, dir)| async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } });
    futures_join(starts).await
}

/// The configs of an `n`-node quorum (controller ports chosen now, client ports by the kernel).
fn node_configs(n: i32, extra: &[&str]) -> Vec<(Config, tempfile::TempDir)> {
    node_configs_with(n, extra, |_| vec![])
}

/// As [`node_configs`], with more properties for each node from `per_node(its data dir)`
/// (log.dirs is the data dir unless they set it).
fn node_configs_with(n: i32, extra: &[&str], per_node: impl Fn(&std::path::Path) -> Vec<String>) -> Vec<(Config, tempfile::TempDir)> {
    node_configs_on(n, "PLAINTEXT://127.0.0.1:0", extra, per_node)
}

/// As [`node_configs_with`], with these client listeners (beside each node's controller listener).
fn node_configs_on(n: i32, client_listeners: &str, extra: &[&str], per_node: impl Fn(&std::path::Path) -> Vec<String>) -> Vec<(Config, tempfile::TempDir)> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    (0..n).map(|i| {
        let dir = tempfile::tempdir().unwrap();
        let mut o = vec![
            format!("node.id={}", i + 1),
            format!("listeners={client_listeners},CONTROLLER://127.0.0.1:{}", ports[i as usize]),
            "controller.listener.names=CONTROLLER".to_string(),
            format!("controller.quorum.voters={voters}"),
            format!("log.dirs={}", dir.path().display()),
            "broker.session.timeout.ms=3000".to_string(),
            "broker.heartbeat.interval.ms=200".to_string(),
            // Several nodes in one process: each HTTP listener on a port the kernel picks.
            "fjord.http.listener=127.0.0.1:0".to_string(),
        ];
        o.extend(extra.iter().map(|s| s.to_string()));
        o.extend(per_node(dir.path()));
        (Config::load(None, &o).expect("config"), dir)
    })
    .collect()
}

async fn futures_join<F: std::future::Future<Output = Node> + Send + 'static>(fs: impl Iterator<Item = F>) -> Vec<Node> {
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn addr(node: &Node) -> SocketAddr {
    node.running.as_ref().unwrap().local_addr
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn metadata(addr: SocketAddr, topic: &str) -> MetadataResponse {
    let mut c = Client::connect(addr).await;
    let req = MetadataRequest::default().with_topics(Some(vec![kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))])).with_allow_auto_topic_creation(false);
    c.send(&req, 12).await
}


fn produce(topic: &str, partition: i32, n: usize) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(partition).with_records(Some(common::batch(n, 1_000, Compression::None)));
    ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])])
}

fn fetch(topic: &str, partition: i32) -> FetchRequest {
    let p = FetchPartition::default().with_partition(partition).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![p])])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_and_fail_over() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &[]).await;
    let first = addr(&nodes[0]);
    let ids: std::collections::BTreeSet<String> = nodes.iter().map(|n| n.running.as_ref().unwrap().broker.cluster_id.clone()).collect();
    assert_eq!(ids.len(), 1, "one cluster id on every node: {ids:?}");

    // Every broker registers and is unfenced: Metadata lists all three.
    eventually("three brokers listed", async || {
        let m = metadata(first, "none").await;
        (m.brokers.len() == 3).then_some(())
    })
    .await;

    // DescribeQuorum through any broker: the active controller, three voters, a high watermark.
    let q = eventually("DescribeQuorum", async || {
        let mut c = Client::connect(first).await;
        let req = DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![describe_quorum_request::PartitionData::default().with_partition_index(0)])]);
        let r = c.send(&req, 2).await;
        (r.error_code == 0 && r.topics[0].partitions[0].error_code == 0).then_some(r)
    })
    .await;
    let p = &q.topics[0].partitions[0];
    assert!((1..=3).contains(&p.leader_id.0) && p.leader_epoch >= 1 && p.high_watermark > 0, "{p:?}");
    assert_eq!(p.current_voters.len(), 3);
    assert_eq!(q.nodes.len(), 3);

    // A topic of three partitions, three replicas each, created through node 1.
    let mut c = Client::connect(first).await;
    let t = CreatableTopic::default().with_name(name("c")).with_num_partitions(3).with_replication_factor(3);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!((r.topics[0].num_partitions, r.topics[0].replication_factor), (3, 3));
    let m = metadata(first, "c").await;
    let t = &m.topics[0];
    assert_eq!(t.partitions.len(), 3);
    let leaders: std::collections::BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
    for p in &t.partitions {
        assert_eq!((p.replica_nodes.len(), p.isr_nodes.len()), (3, 3), "partition {}", p.partition_index);
    }
    assert_eq!(leaders.len(), 3, "leaders spread over the brokers: {leaders:?}");

    // acks=all to partition 0's leader: answered once all three have the records.
    let leader = t.partitions.iter().find(|p| p.partition_index == 0).unwrap().leader_id.0;
    let leader_addr = addr(&nodes[(leader - 1) as usize]);
    let mut lc = Client::connect(leader_addr).await;
    let r = eventually("produce to the new leader", async || {
        let r = lc.send(&produce("c", 0, 5), 9).await;
        // Retried only while the leader does not know it leads yet (nothing was appended).
        (![3, 6].contains(&r.responses[0].partition_responses[0].error_code)).then_some(r)
    })
    .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let f = lc.send(&fetch("c", 0), 12).await;
    assert_eq!(f.responses[0].partitions[0].high_watermark, 5);

    // A broker that does not lead partition 0 refuses a produce to it, naming the leader
    // (KIP-951, Produce v10+ with the leader's endpoint). A consumer's fetch it serves from v11 up
    // to its high watermark (KIP-392), as Kafka 4.0's followers do; before v11 it refuses it.
    let other = if leader == 1 { 2 } else { 1 };
    let mut oc = Client::connect(addr(&nodes[(other - 1) as usize])).await;
    let leader_epoch = metadata(first, "c").await.topics[0].partitions.iter().find(|p| p.partition_index == 0).unwrap().leader_epoch;
    let refused = oc.send(&produce("c", 0, 1), 10).await;
    let p = &refused.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!((p.current_leader.leader_id.0, p.current_leader.leader_epoch), (leader, leader_epoch));
    let endpoints: Vec<(i32, i32)> = refused.node_endpoints.iter().map(|n| (n.node_id.0, n.port)).collect();
    assert_eq!(endpoints, vec![(leader, leader_addr.port() as i32)]);
    eventually("the follower serves the records up to its high watermark", async || {
        let p = oc.send(&fetch("c", 0), 12).await.responses[0].partitions[0].clone();
        (p.error_code == 0 && p.high_watermark == 5 && p.records.is_some_and(|r| !r.is_empty())).then_some(())
    })
    .await;
    assert_eq!(oc.send(&fetch("c", 0), 10).await.responses[0].partitions[0].error_code, 6, "NOT_LEADER_OR_FOLLOWER before v11");

    // acks=all answered: every ISR member holds the five records.
    let tp = fjord::types::TopicPartition::new("c", 0);
    let isr: Vec<i32> = metadata(leader_addr, "c").await.topics[0].partitions.iter().find(|p| p.partition_index == 0).unwrap().isr_nodes.iter().map(|b| b.0).collect();
    for id in &isr {
        let b = &nodes[(*id - 1) as usize].running.as_ref().unwrap().broker;
        let end = b.replicas.follower_position(&tp).map(|(end, _, _)| end);
        assert_eq!(end.ok(), Some(5), "ISR member {id} of {isr:?} holds the acknowledged records");
    }

    // The leader's node stops (controlled shutdown): another ISR member leads, with every record.
    let stopped = nodes[(leader - 1) as usize].running.take().unwrap();
    stopped.shutdown().await;
    let survivor = addr(&nodes[if leader == 1 { 1 } else { 0 }]);
    let new_leader = eventually("a new leader for partition 0", async || {
        let m = metadata(survivor, "c").await;
        let p = m.topics[0].partitions.iter().find(|p| p.partition_index == 0)?;
        (p.leader_id.0 != leader && p.leader_id.0 >= 0).then_some(p.leader_id.0)
    })
    .await;
    // Once the stopped node is fenced, Metadata reports its replicas offline.
    eventually("the stopped node's replicas reported offline", async || {
        let m = metadata(survivor, "c").await;
        m.topics[0].partitions.iter().all(|p| p.offline_replicas.iter().map(|b| b.0).collect::<Vec<_>>() == vec![leader]).then_some(())
    })
    .await;
    let mut nc = Client::connect(addr(&nodes[(new_leader - 1) as usize])).await;
    let r = eventually("produce to the new leader", async || {
        let r = nc.send(&produce("c", 0, 5), 9).await;
        // Retried only while the new leader does not know it leads yet (nothing was appended).
        (r.responses[0].partition_responses[0].error_code != 6).then_some(r)
    })
    .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 5), "the new leader had all five records");
    let f = nc.send(&fetch("c", 0), 12).await;
    assert_eq!(f.responses[0].partitions[0].high_watermark, 10);

    // kafka-leader-election's request: partition 0's preferred leader is down, the others lead.
    let elect = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default().with_topic(name("c")).with_partitions(vec![0, 1, 2])]))
        .with_timeout_ms(10_000);
    let r = nc.send(&elect, 2).await;
    assert_eq!(r.error_code, 0);
    let codes: std::collections::BTreeMap<i32, i16> = r.replica_election_results[0].partition_result.iter().map(|p| (p.partition_id, p.error_code)).collect();
    let preferred: std::collections::BTreeMap<i32, i32> = t.partitions.iter().map(|p| (p.partition_index, p.replica_nodes[0].0)).collect();
    for (p, code) in &codes {
        // 80 PREFERRED_LEADER_NOT_AVAILABLE where the preferred replica is the stopped node; 84
        // ELECTION_NOT_NEEDED where it leads; 0 where it was elected back.
        let expected: &[i16] = if preferred[p] == leader { &[80] } else { &[0, 84] };
        assert!(expected.contains(code), "partition {p}: {code}");
    }

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

/// Kafka's broker enables request processing only after its initial catch-up with the metadata
/// log: a node that cannot catch up (no quorum yet) answers no client, and a request sent
/// meanwhile is answered, from a caught-up image, once it has. (A restarted node replaying the
/// log used to answer Metadata from the past images on the way, naming itself leader of
/// partitions that had moved.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_serves_clients_only_once_caught_up_with_the_metadata_log() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut configs = node_configs(3, &[]).into_iter();
    let (config, dir) = configs.next().unwrap();
    let first = Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir };
    let mut c = Client::connect(addr(&first)).await;
    let req = MetadataRequest::default().with_topics(Some(vec![])).with_allow_auto_topic_creation(false);
    let pending = tokio::spawn(async move { c.send(&req, 12).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!pending.is_finished(), "a node without a quorum answered a client before catching up");
    let http = first.running.as_ref().and_then(|r| r.http_addr).expect("an HTTP listener");
    assert_eq!(common::http_get(http, "/health").await.0, 200, "the process is up");
    assert_eq!(common::http_get(http, "/ready").await.0, 503, "not ready before catching up with the metadata log");

    let rest = futures_join(configs.map(|(config, dir)| async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } })).await;
    let m = tokio::time::timeout(Duration::from_secs(15), pending).await.expect("answered once caught up").unwrap();
    // Brokers are listed once unfenced; this one may still be waiting for its first heartbeat.
    assert!(!m.brokers.is_empty() && m.brokers.iter().all(|b| (1..=3).contains(&b.node_id.0)), "the caught-up image lists the registered brokers: {:?}", m.brokers);
    assert_eq!(common::http_get(http, "/ready").await.0, 200, "ready once serving clients");

    for mut n in rest.into_iter().chain(std::iter::once(first)) {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_follower_leaves_the_isr_and_rejoins_when_caught_up() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &["replica.lag.time.max.ms=1000"]).await;
    let first = addr(&nodes[0]);
    eventually("three brokers listed", async || (metadata(first, "none").await.brokers.len() == 3).then_some(())).await;
    let mut c = Client::connect(first).await;
    let t = CreatableTopic::default().with_name(name("lag")).with_num_partitions(1).with_replication_factor(3);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0);
    let p0 = |m: &MetadataResponse| m.topics[0].partitions[0].clone();
    let leader = p0(&metadata(first, "lag").await).leader_id.0;
    let follower = (1..=3).find(|&id| id != leader).unwrap();

    // The follower stops fetching but keeps heartbeating: it is not fenced, only behind.
    let fb = nodes[(follower - 1) as usize].running.as_ref().unwrap().broker.clone();
    eventually("the follower fetching", async || (!fb.fetchers.followed().is_empty()).then_some(())).await;
    fb.fetchers.stop();
    let mut lc = Client::connect(addr(&nodes[(leader - 1) as usize])).await;
    let r = eventually("produce", async || {
        let r = lc.send(&produce("lag", 0, 3), 9).await;
        (![3, 6].contains(&r.responses[0].partition_responses[0].error_code)).then_some(r)
    })
    .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0), "acks=all answered once the lagging follower left the ISR");
    // The leader asked for the ISR without the follower (the acks=all answer needed it), the
    // shrink restarted the follower's fetcher, it caught up and was asked back in: two ISR
    // changes, ending with all three. (The window without it can be shorter than a poll.)
    let lb = nodes[(leader - 1) as usize].running.as_ref().unwrap().broker.clone();
    let tp = fjord::types::TopicPartition::new("lag", 0);
    let state = eventually("the follower back in the ISR after a shrink", async || {
        let s = lb.replicas.partition(&tp)?.leader_and_isr();
        (s.isr.len() == 3 && s.partition_epoch >= 2).then_some(s)
    })
    .await;
    assert!(state.isr.contains(&follower), "{state:?}");

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// (error code, coordinator node id) of FindCoordinator for a group.
async fn find_group_coordinator(addr: SocketAddr, group: &str) -> (i16, i32) {
    let mut c = Client::connect(addr).await;
    let r = c.send(&FindCoordinatorRequest::default().with_key_type(0).with_key(s(group)), 3).await;
    (r.error_code, r.node_id.0)
}

async fn commit(addr: SocketAddr, group: &str, offset: i64) -> i16 {
    let mut c = Client::connect(addr).await;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(name("c")).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset),
        ])]);
    c.send(&req, 8).await.topics[0].partitions[0].error_code
}

async fn committed(addr: SocketAddr, group: &str) -> Result<i64, i16> {
    let mut c = Client::connect(addr).await;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default().with_name(name("c")).with_partition_indexes(vec![0])]));
    let resp = c.send(&req, 7).await;
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    let p = &resp.topics[0].partitions[0];
    if p.error_code != 0 { Err(p.error_code) } else { Ok(p.committed_offset) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn committed_offsets_move_with_the_coordinator() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &["offsets.topic.num.partitions=3"]).await;
    let first = addr(&nodes[0]);
    eventually("three brokers listed", async || (metadata(first, "none").await.brokers.len() == 3).then_some(())).await;
    let mut c = Client::connect(first).await;
    let t = CreatableTopic::default().with_name(name("c")).with_num_partitions(1).with_replication_factor(3);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await.topics[0].error_code, 0);

    // The coordinator is the leader of the group's __consumer_offsets partition (made RF 3).
    let coordinator = eventually("a coordinator", async || {
        let (code, node) = find_group_coordinator(first, "g").await;
        (code == 0).then_some(node)
    })
    .await;
    let at = addr(&nodes[(coordinator - 1) as usize]);
    eventually("a commit at the coordinator", async || (commit(at, "g", 42).await == 0).then_some(())).await;
    assert_eq!(committed(at, "g").await, Ok(42));

    // Its node stops: the partition's new leader loads the group's offsets and coordinates it.
    nodes[(coordinator - 1) as usize].running.take().unwrap().shutdown().await;
    let survivor = addr(&nodes[if coordinator == 1 { 1 } else { 0 }]);
    let next = eventually("a new coordinator", async || {
        let (code, node) = find_group_coordinator(survivor, "g").await;
        (code == 0 && node != coordinator).then_some(node)
    })
    .await;
    let at = addr(&nodes[(next - 1) as usize]);
    let offset = eventually("the committed offset at the new coordinator", async || committed(at, "g").await.ok()).await;
    assert_eq!(offset, 42, "the new coordinator resumed the group's committed offset");
    assert_eq!(commit(at, "g", 43).await, 0);
    assert_eq!(committed(at, "g").await, Ok(43));

    // The topic deleted: the broker leading the group's offsets partition drops the group's
    // offsets of it when its publisher sees the deletion (as Kafka's coordinator).
    let del = DeleteTopicsRequest::default().with_topic_names(vec![name("c")]).with_timeout_ms(10_000);
    assert_eq!(Client::connect(survivor).await.send(&del, 4).await.responses[0].error_code, 0);
    eventually("the deleted topic's offset gone at the coordinator", async || (committed(at, "g").await == Ok(-1)).then_some(())).await;

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

/// KIP-848 groups in a cluster: a group's records go to its `__consumer_offsets` partition and
/// the heartbeats that changed it are answered once the partition's replicas have them. Writes
/// of many groups lingering at once used to wait for the followers on the runtime's own workers,
/// which then could not serve the follower fetches they waited for: every join failed after the
/// write timeout (librdkafka's KIP-848 tests against a 3-node cluster timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_groups_joining_at_once_in_a_cluster_get_their_assignments() {
    use common::groups::consumer_join_req;
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &["offsets.topic.num.partitions=3"]).await;
    let first = addr(&nodes[0]);
    eventually("three brokers listed", async || (metadata(first, "none").await.brokers.len() == 3).then_some(())).await;
    let t = CreatableTopic::default().with_name(name("k")).with_num_partitions(3).with_replication_factor(3);
    assert_eq!(Client::connect(first).await.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await.topics[0].error_code, 0);
    let groups: Vec<String> = (0..16).map(|i| format!("g{i}")).collect();
    let all: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    for g in &groups {
        eventually("a coordinator", async || (find_group_coordinator(first, g).await.0 == 0).then_some(())).await;
    }
    let joins: Vec<_> = groups
        .iter()
        .map(|g| {
            let (g, all) = (g.clone(), all.clone());
            tokio::spawn(async move {
                // As a client: the coordinator found again while it answers that it is loading
                // the group's partition or is not (yet, or any more) its leader, which a loaded
                // machine can make last a moment after FindCoordinator named it.
                let mut last = None;
                for _ in 0..100 {
                    let (code, node) = find_group_coordinator(all[0], &g).await;
                    if code == 0 {
                        let r = Client::connect(all[(node - 1) as usize]).await.send(&consumer_join_req(&g, "m", &["k"]), 1).await;
                        if ![14, 15, 16].contains(&r.error_code) {
                            return r;
                        }
                        last = Some(r);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                last.expect("a coordinator answered")
            })
        })
        .collect();
    for (g, join) in groups.iter().zip(joins) {
        let r = join.await.expect("join task");
        assert_eq!((r.error_code, r.error_message.as_deref().map(|m| m.to_string())), (0, None), "group {g}");
        assert!(r.member_epoch > 0 && r.assignment.is_some(), "group {g}: {r:?}");
    }
    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_configs_and_deletion_are_cluster_wide() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &[]).await;
    let a: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    eventually("three brokers listed", async || (metadata(a[0], "none").await.brokers.len() == 3).then_some(())).await;
    let mut c0 = Client::connect(a[0]).await;
    let t = CreatableTopic::default().with_name(name("w")).with_num_partitions(1).with_replication_factor(2);
    assert_eq!(c0.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await.topics[0].error_code, 0);

    // Grown through node 2: every node sees three partitions, each with two replicas and a leader.
    let mut c1 = Client::connect(a[1]).await;
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default().with_name(name("w")).with_count(3).with_assignments(None)])
        .with_timeout_ms(10_000);
    let r = c1.send(&grow, 3).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
    for addr in &a {
        let m = eventually("three partitions everywhere", async || {
            let m = metadata(*addr, "w").await;
            (m.topics[0].partitions.len() == 3 && m.topics[0].partitions.iter().all(|p| p.leader_id.0 >= 0)).then_some(m)
        })
        .await;
        assert!(m.topics[0].partitions.iter().all(|p| p.replica_nodes.len() == 2));
    }

    // The controller's refusals reach the client with their own codes and messages.
    let refuse = |count: i32, assignment: Option<Vec<i32>>| {
        let assignments = assignment.map(|ids| vec![create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(ids.into_iter().map(BrokerId).collect())]);
        CreatePartitionsRequest::default()
            .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default().with_name(name("w")).with_count(count).with_assignments(assignments)])
            .with_timeout_ms(10_000)
    };
    let r = c1.send(&refuse(2, None), 3).await;
    assert_eq!(r.results[0].error_code, 37, "INVALID_PARTITIONS: {:?}", r.results[0].error_message);
    let r = c1.send(&refuse(4, Some(vec![1, 9])), 3).await;
    assert_eq!(r.results[0].error_code, 39, "INVALID_REPLICA_ASSIGNMENT: {:?}", r.results[0].error_message);
    assert!(r.results[0].error_message.as_deref().is_some_and(|m| !m.contains("error 39")), "the controller's own message: {:?}", r.results[0].error_message);

    // A config set through node 3 is what node 1 describes.
    let mut c2 = Client::connect(a[2]).await;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("w"))
        .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default().with_name(s("retention.ms")).with_config_operation(0).with_value(Some(s("123456")))])]);
    assert_eq!(c2.send(&alter, 1).await.responses[0].error_code, 0);
    let describe = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s("w"))
        .with_configuration_keys(Some(vec![s("retention.ms")]))]);
    let value = eventually("the config on node 1", async || {
        let r = c0.send(&describe, 4).await;
        let v = r.results[0].configs[0].value.as_ref().map(|v| v.to_string());
        (v.as_deref() == Some("123456")).then_some(v)
    })
    .await;
    assert_eq!(value.as_deref(), Some("123456"));

    // Deleted through node 2: gone from every node, and from their disks.
    let del = DeleteTopicsRequest::default().with_topic_names(vec![name("w")]).with_timeout_ms(10_000);
    assert_eq!(c1.send(&del, 4).await.responses[0].error_code, 0);
    for (i, addr) in a.iter().enumerate() {
        eventually("the topic gone everywhere", async || (metadata(*addr, "w").await.topics[0].error_code == 3).then_some(())).await;
        let b = &nodes[i].running.as_ref().unwrap().broker;
        eventually("its logs gone", async || b.replicas.logs().all_partitions().iter().all(|tp| tp.topic != "w").then_some(())).await;
    }

    // SCRAM credentials set through node 3 are the metadata log's: every node has them (its SASL
    // listeners authenticate with the same store), and a deletion through node 1 reaches all.
    let up = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(s("carol"))
        .with_mechanism(2)
        .with_iterations(4096)
        .with_salt(bytes::Bytes::from_static(b"cluster-salt"))
        .with_salted_password(bytes::Bytes::from(vec![7u8; 64]));
    let r = c2.send(&AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]), 0).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
    let describe = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![describe_user_scram_credentials_request::UserName::default().with_name(s("carol"))]));
    for addr in &a {
        let mut c = Client::connect(*addr).await;
        let infos = eventually("carol's credential on every node", async || {
            let r = c.send(&describe, 0).await;
            (r.results[0].error_code == 0).then(|| r.results[0].credential_infos.iter().map(|i| (i.mechanism, i.iterations)).collect::<Vec<_>>())
        })
        .await;
        assert_eq!(infos, vec![(2, 4096)]);
    }
    let deletion = |name: &str| {
        AlterUserScramCredentialsRequest::default().with_deletions(vec![alter_user_scram_credentials_request::ScramCredentialDeletion::default().with_name(s(name)).with_mechanism(2)])
    };
    assert_eq!(c0.send(&deletion("carol"), 0).await.results[0].error_code, 0);
    assert_eq!(c0.send(&deletion("carol"), 0).await.results[0].error_code, 91, "the controller knows it is gone: RESOURCE_NOT_FOUND");
    for addr in &a {
        let mut c = Client::connect(*addr).await;
        eventually("carol gone from every node", async || (c.send(&describe, 0).await.results[0].error_code == 91).then_some(())).await;
    }

    // Client quotas set through node 2 are the metadata log's too: every node describes them.
    let quota = AlterClientQuotasRequest::default().with_entries(vec![alter_client_quotas_request::EntryData::default()
        .with_entity(vec![alter_client_quotas_request::EntityData::default().with_entity_type(s("client-id")).with_entity_name(Some(s("slow-app")))])
        .with_ops(vec![alter_client_quotas_request::OpData::default().with_key(s("producer_byte_rate")).with_value(2048.0)])]);
    let r = c1.send(&quota, 1).await;
    assert_eq!(r.entries[0].error_code, 0, "{:?}", r.entries[0].error_message);
    let describe = DescribeClientQuotasRequest::default()
        .with_components(vec![describe_client_quotas_request::ComponentData::default().with_entity_type(s("client-id")).with_match_type(0).with_match(Some(s("slow-app")))]);
    for addr in &a {
        let mut c = Client::connect(*addr).await;
        let value = eventually("the quota on every node", async || {
            let r = c.send(&describe, 1).await;
            r.entries.and_then(|e| e.first().map(|e| e.values[0].value))
        })
        .await;
        assert_eq!(value, 2048.0);
    }

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_commits_on_partitions_other_brokers_lead() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &["transaction.state.log.num.partitions=1"]).await;
    let a: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    eventually("three brokers listed", async || (metadata(a[0], "none").await.brokers.len() == 3).then_some(())).await;
    let mut c0 = Client::connect(a[0]).await;
    let t = CreatableTopic::default().with_name(name("x")).with_num_partitions(3).with_replication_factor(1);
    assert_eq!(c0.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await.topics[0].error_code, 0);
    let leaders: Vec<i32> = metadata(a[0], "x").await.topics[0].partitions.iter().map(|p| p.leader_id.0).collect();

    let coordinator = eventually("a transaction coordinator", async || {
        let mut c = Client::connect(a[0]).await;
        let r = c.send(&FindCoordinatorRequest::default().with_key_type(1).with_key(s("tx")), 3).await;
        (r.error_code == 0).then_some(r.node_id.0)
    })
    .await;
    let mut cc = Client::connect(a[(coordinator - 1) as usize]).await;
    let (pid, epoch) = eventually("InitProducerId", async || {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r = cc.send(&req, 4).await;
        (r.error_code == 0).then_some((r.producer_id.0, r.producer_epoch))
    })
    .await;
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name("x")).with_partitions(vec![0, 1, 2])]);
    let r = cc.send(&add, 3).await;
    assert!(r.results_by_topic_v3_and_below[0].results_by_partition.iter().all(|p| p.partition_error_code == 0), "{r:?}");

    // Two records into each partition, at its leader, in two batches: the first is verified with
    // the coordinator, the second finds the transaction open on the partition.
    let txn_produce = |p: i32, seq: i32| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let recs = vec![common::record(0, now, "k", b"v")];
        let batch = common::producer_batch(recs, (pid, epoch, seq), true);
        let data = PartitionProduceData::default().with_index(p).with_records(Some(batch));
        ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx"))))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default().with_name(name("x")).with_partition_data(vec![data])])
    };
    for (p, leader) in leaders.iter().enumerate() {
        let mut lc = Client::connect(a[(*leader - 1) as usize]).await;
        for seq in 0..2 {
            assert_eq!(lc.send(&txn_produce(p as i32, seq), 9).await.responses[0].partition_responses[0].error_code, 0);
        }
    }
    // Offsets committed in the transaction through a group coordinator on another node than the
    // transaction's: that node checks the producer with the transaction coordinator.
    let (group, group_coordinator) = eventually("a group coordinated elsewhere", async || {
        for i in 0..64 {
            let g = format!("g{i}");
            let (code, node) = find_group_coordinator(a[0], &g).await;
            if code == 0 && node != coordinator {
                return Some((g, node));
            }
        }
        None
    })
    .await;
    let add = AddOffsetsToTxnRequest::default().with_transactional_id(TransactionalId(s("tx"))).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_group_id(GroupId(StrBytes::from_string(group.clone())));
    assert_eq!(cc.send(&add, 3).await.error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
            .with_name(name("x"))
            .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1)])]);
    let mut gc = Client::connect(a[(group_coordinator - 1) as usize]).await;
    let code = eventually("the group coordinator loaded", async || {
        let code = gc.send(&commit, 3).await.topics[0].partitions[0].error_code;
        // Retried as clients do while the new coordinator loads its partition.
        (![14, 16].contains(&code)).then_some(code)
    })
    .await;
    assert_eq!(code, 0, "TxnOffsetCommit at node {group_coordinator} for a transaction coordinated by {coordinator}");
    let end = EndTxnRequest::default().with_transactional_id(TransactionalId(s("tx"))).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(true);
    assert_eq!(cc.send(&end, 3).await.error_code, 0);

    // Every partition gets its commit marker, wherever it is led: read_committed sees the records.
    for (p, leader) in leaders.iter().enumerate() {
        let mut lc = Client::connect(a[(*leader - 1) as usize]).await;
        let lso = eventually("the commit marker at the partition's leader", async || {
            let f = fetch("x", p as i32).with_isolation_level(1);
            let r = lc.send(&f, 12).await;
            let part = &r.responses[0].partitions[0];
            (part.last_stable_offset == 3).then_some(part.last_stable_offset)
        })
        .await;
        assert_eq!(lso, 3, "two records and the marker on x-{p} (led by {leader}, coordinator {coordinator})");
    }
    // After the marker a transactional batch of the ended transaction is refused (the
    // coordinator is asked again: the transaction is no longer open on the partition).
    let (p, leader) = leaders.iter().enumerate().find(|(_, l)| **l != coordinator).map(|(p, l)| (p as i32, *l)).unwrap_or((0, leaders[0]));
    let mut lc = Client::connect(a[(leader - 1) as usize]).await;
    assert_eq!(lc.send(&txn_produce(p, 2), 9).await.responses[0].partition_responses[0].error_code, 48, "INVALID_TXN_STATE");

    // A KIP-890 transaction of the same producer: Produce v12 at each partition's leader adds the
    // partition (AddPartitionsToTxn v5 to the coordinator when that is another node), TxnOffsetCommit
    // v5 adds the group's offsets partition, and EndTxn v5 moves the epoch up.
    let kip890_produce = |p: i32, epoch: i16, seq: i32| {
        let mut req = txn_produce(p, 0);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let batch = common::producer_batch(vec![common::record(0, now, "k", b"v")], (pid, epoch, seq), true);
        req.topic_data[0].partition_data[0].records = Some(batch);
        req
    };
    for (p, leader) in leaders.iter().enumerate() {
        let mut lc = Client::connect(a[(*leader - 1) as usize]).await;
        for seq in 2..4 {
            assert_eq!(lc.send(&kip890_produce(p as i32, epoch, seq), 12).await.responses[0].partition_responses[0].error_code, 0, "x-{p} led by {leader}, coordinator {coordinator}");
        }
    }
    assert_eq!(gc.send(&commit, 5).await.topics[0].partitions[0].error_code, 0, "TxnOffsetCommit v5 without AddOffsetsToTxn");
    let r = cc.send(&end, 5).await;
    assert_eq!((r.error_code, r.producer_id.0, r.producer_epoch), (0, pid, epoch + 1));
    for (p, leader) in leaders.iter().enumerate() {
        let mut lc = Client::connect(a[(*leader - 1) as usize]).await;
        eventually("the KIP-890 commit marker", async || {
            let r = lc.send(&fetch("x", p as i32).with_isolation_level(1), 12).await;
            (r.responses[0].partitions[0].last_stable_offset == 6).then_some(())
        })
        .await;
        // The old epoch is fenced by the coordinator (or by the marker, where it leads).
        assert_eq!(lc.send(&kip890_produce(p as i32, epoch, 4), 12).await.responses[0].partition_responses[0].error_code, 47, "INVALID_PRODUCER_EPOCH on x-{p}");
    }

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

/// Idempotent producers on different nodes get different producer ids: the blocks come from the
/// active controller (AllocateProducerIds), not from each node's own file, which gave id 0 on
/// every node. Two producers sharing an id on one partition break each other's sequences
/// (OUT_OF_ORDER_SEQUENCE_NUMBER, or a batch taken for the other's duplicate and acknowledged
/// without being written: the fault-injection checker lost acknowledged records that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producer_ids_are_unique_across_the_cluster() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let nodes = start_cluster(3, &[]).await;
    eventually("three brokers listed", async || {
        let m = metadata(addr(&nodes[0]), "none").await;
        (m.brokers.len() == 3).then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for node in &nodes {
        let mut c = Client::connect(addr(node)).await;
        for _ in 0..2 {
            let r = eventually("InitProducerId", async || {
                let r: InitProducerIdResponse = c.send(&InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000).with_producer_id(ProducerId(-1)).with_producer_epoch(-1), 4).await;
                (r.error_code == 0).then_some(r)
            })
            .await;
            assert_eq!(r.producer_epoch, 0);
            ids.push(r.producer_id.0);
        }
    }
    let distinct: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "every producer id once: {ids:?}");
}

/// A coordinator writes `__consumer_offsets` only where its partition is led: on a follower the
/// write is refused (NOT_COORDINATOR to the client) instead of appended to the follower's replica.
/// The cluster checker saw a stale coordinator on a follower append at offsets the leader had
/// filled with other records in the same leader epoch; the follower's fetcher then stalled for
/// good on that partition ("replicated offsets do not grow past the log end", 70k warnings).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_refuses_coordinator_writes_to_its_replica() {
    use fjord::coordinator::LogError;
    use fjord::group::GroupLog;
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let nodes = start_cluster(3, &[]).await;
    let first = addr(&nodes[0]);
    eventually("three brokers listed", async || (metadata(first, "none").await.brokers.len() == 3).then_some(())).await;
    let mut c = Client::connect(first).await;
    let key = StrBytes::from_static_str("g");
    eventually("a group coordinator", async || {
        let r: FindCoordinatorResponse = c.send(&FindCoordinatorRequest::default().with_key(key.clone()), 3).await;
        (r.error_code == 0).then_some(())
    })
    .await;
    let leader = eventually("__consumer_offsets-0 led", async || {
        let m = metadata(first, "__consumer_offsets").await;
        let p = m.topics.first()?.partitions.iter().find(|p| p.partition_index == 0)?.clone();
        (p.leader_id.0 > 0 && p.isr_nodes.len() == 3).then_some(p.leader_id.0)
    })
    .await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let fb = nodes[(follower - 1) as usize].running.as_ref().unwrap().broker.clone();
    let tp = fjord::types::TopicPartition::new("__consumer_offsets".to_string(), 0);
    eventually("the follower's replica", async || fb.replicas.partition(&tp).map(|_| ())).await;
    let batch = common::batch(1, 1_000, Compression::None);
    let r = fb.append_group_batch(0, batch);
    assert!(matches!(r, Err(LogError::NotLeader(_))), "a follower's coordinator write: {r:?}");
    let lb = nodes[(leader - 1) as usize].running.as_ref().unwrap().broker.clone();
    let end = lb.replicas.follower_position(&tp).unwrap().0;
    assert_eq!(fb.replicas.follower_position(&tp).unwrap().0, end, "the follower's log end is the leader's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reassignment_copies_the_log_to_new_replicas_then_drops_the_old_one() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let mut nodes = start_cluster(3, &[]).await;
    let a: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    eventually("three brokers listed", async || (metadata(a[0], "none").await.brokers.len() == 3).then_some(())).await;

    // One partition, one replica on node 1, with five records.
    let mut c = Client::connect(a[1]).await;
    let t = CreatableTopic::default()
        .with_name(name("m"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![create_topics_request::CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1)])]);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let mut c1 = Client::connect(a[0]).await;
    let r = eventually("produce to node 1", async || {
        let r = c1.send(&produce("m", 0, 5), 9).await;
        // Node 1 may not know the topic made through node 2 yet (3), or not lead it yet (6).
        (![3, 6].contains(&r.responses[0].partition_responses[0].error_code)).then_some(r)
    })
    .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    // A target of another size is refused without allow_replication_factor_change (v1).
    let reassign = |replicas: Option<Vec<i32>>, allow: bool| {
        AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_allow_replication_factor_change(allow)
            .with_topics(vec![alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(name("m"))
                .with_partitions(vec![alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))])])
    };
    let r = c.send(&reassign(Some(vec![2, 3]), false), 1).await;
    assert_eq!((r.error_code, r.responses[0].partitions[0].error_code), (0, 38), "INVALID_REPLICATION_FACTOR: {:?}", r.responses[0].partitions[0].error_message);
    let r = c.send(&reassign(None, true), 1).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 85, "NO_REASSIGNMENT_IN_PROGRESS");

    // Moved to nodes 2 and 3 through node 2: they copy the log, then node 1's replica goes.
    let r = c.send(&reassign(Some(vec![2, 3]), true), 1).await;
    assert_eq!((r.error_code, r.responses[0].partitions[0].error_code), (0, 0), "{:?}", r.responses[0].partitions[0].error_message);
    let list = ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000).with_topics(None);
    let m = eventually("the reassignment completes", async || {
        let ongoing = c.send(&list, 0).await;
        assert_eq!(ongoing.error_code, 0);
        let m = metadata(a[2], "m").await;
        let p = &m.topics[0].partitions[0];
        let replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
        (ongoing.topics.is_empty() && replicas == vec![2, 3] && p.isr_nodes.len() == 2).then_some(m)
    })
    .await;
    let leader = m.topics[0].partitions[0].leader_id.0;
    assert!([2, 3].contains(&leader), "a target replica leads: {leader}");
    let tp = fjord::types::TopicPartition::new("m", 0);
    for id in [2, 3] {
        let b = &nodes[id - 1].running.as_ref().unwrap().broker;
        assert_eq!(b.replicas.follower_position(&tp).map(|(end, _, _)| end).ok(), Some(5), "node {id} holds the five records");
    }
    let old = &nodes[0].running.as_ref().unwrap().broker;
    eventually("node 1's replica deleted", async || old.replicas.logs().all_partitions().iter().all(|p| p.topic != "m").then_some(())).await;
    let mut lc = Client::connect(a[leader as usize - 1]).await;
    let f = eventually("the new leader serves the records", async || {
        let f = lc.send(&fetch("m", 0), 12).await;
        (f.responses[0].partitions[0].high_watermark == 5).then_some(f)
    })
    .await;
    assert_eq!(f.responses[0].partitions[0].error_code, 0);

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

/// A broker that comes back without its log dir (a lost disk: `meta.properties` is written anew
/// with a new `directory.id`) is not elected leader of a partition whose last ISR member it was:
/// its empty log would have the replica that still holds the records truncate to nothing.
/// The partition stays offline as Kafka's (directory ids, KIP-858) until an unclean election
/// takes the replica that kept its data; the wiped one then copies it and rejoins the ISR.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_back_without_its_log_dir_is_not_elected_over_the_replica_that_has_the_records() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    // The metadata log on a disk of its own (metadata.log.dir): only the data disk is lost.
    let configs = node_configs_with(3, &[], |dir| vec![format!("log.dirs={}", dir.join("data").display()), format!("metadata.log.dir={}", dir.join("meta").display())]);
    let start = |i: usize| {
        let config = configs[i].0.clone();
        async move { fjord::node::start(config).await.expect("node starts") }
    };
    let mut running: Vec<Option<RunningNode>> = futures_join_running(vec![start(0), start(1), start(2)]).await;
    let a = |running: &[Option<RunningNode>], id: usize| running[id - 1].as_ref().unwrap().local_addr;
    eventually("three brokers listed", async || (metadata(a(&running, 2), "none").await.brokers.len() == 3).then_some(())).await;

    // One partition on nodes 3 (leader) and 1, five records on both.
    let mut c2 = Client::connect(a(&running, 2)).await;
    let t = CreatableTopic::default()
        .with_name(name("w"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![create_topics_request::CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(3), BrokerId(1)])]);
    let r = c2.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let mut c3 = Client::connect(a(&running, 3)).await;
    let produced = async |c: &mut Client| {
        eventually("produce to node 3", async || {
            let r = c.send(&produce("w", 0, 5), 9).await;
            let p = &r.responses[0].partition_responses[0];
            (![3, 6].contains(&p.error_code)).then_some((p.error_code, p.base_offset))
        })
        .await
    };
    assert_eq!(produced(&mut c3).await, (0, 0));
    let isr = async |running: &[Option<RunningNode>]| -> (i32, Vec<i32>) {
        let m = metadata(a(running, 2), "w").await;
        let p = &m.topics[0].partitions[0];
        let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
        isr.sort();
        (p.leader_id.0, isr)
    };
    eventually("node 1 in the ISR", async || (isr(&running).await.1.len() == 2).then_some(())).await;

    // Node 1 stops (it leaves the ISR); five more records go to node 3 alone; node 3 stops,
    // staying the partition's last ISR member, with no leader.
    running[0].take().unwrap().shutdown().await;
    eventually("node 1 out of the ISR", async || (isr(&running).await.1 == vec![3]).then_some(())).await;
    assert_eq!(produced(&mut c3).await, (0, 5));
    running[2].take().unwrap().shutdown().await;
    eventually("no leader", async || (isr(&running).await == (-1, vec![3])).then_some(())).await;

    // Node 1 returns; node 3 returns with its log dir wiped.
    running[0] = Some(start(0).await);
    let dir = configs[2].0.log_dirs[0].clone();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    running[2] = Some(start(2).await);
    eventually("three brokers listed again", async || (metadata(a(&running, 2), "none").await.brokers.len() == 3).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(isr(&running).await, (-1, vec![3]), "the wiped replica is not elected: the partition stays offline");

    // An unclean election (kafka-leader-election --election-type unclean) takes node 1, which
    // has the first five records; node 3 copies them and rejoins the ISR.
    let elect = ElectLeadersRequest::default()
        .with_election_type(1)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default().with_topic(name("w")).with_partitions(vec![0])]))
        .with_timeout_ms(10_000);
    let r = c2.send(&elect, 2).await;
    assert_eq!((r.error_code, r.replica_election_results[0].partition_result[0].error_code), (0, 0));
    eventually("node 1 leads, node 3 back in the ISR", async || (isr(&running).await == (1, vec![1, 3])).then_some(())).await;
    let mut c1 = Client::connect(a(&running, 1)).await;
    let f = c1.send(&fetch("w", 0), 12).await;
    assert_eq!(f.responses[0].partitions[0].high_watermark, 5, "the records node 1 held were kept");
    let tp = fjord::types::TopicPartition::new("w", 0);
    assert_eq!(running[2].as_ref().unwrap().broker.replicas.follower_position(&tp).map(|(end, _, _)| end).ok(), Some(5));

    for r in running.into_iter().flatten() {
        r.shutdown().await;
    }
}

async fn futures_join_running<F: std::future::Future<Output = RunningNode> + Send + 'static>(fs: Vec<F>) -> Vec<Option<RunningNode>> {
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(Some(h.await.unwrap()));
    }
    out
}

/// ACLs in a quorum are the metadata log's. Three nodes with Kafka's StandardAuthorizer, a
/// PLAINTEXT listener (its clients, and the brokers reaching each other on it, are
/// User:ANONYMOUS, which `super.users` names as Kafka requires: replica fetches need
/// CLUSTER_ACTION, the controller listener too) and a SASL_PLAINTEXT one for alice. An ACL
/// created through node 3 is described by all three and lets alice produce on node 1, where she
/// was refused; deleted through node 1, it is gone and grants nothing anywhere; a node stopped
/// meanwhile comes back with the ACLs of the metadata log before it serves anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acls_are_the_metadata_logs_on_every_node() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    const ALLOW: i8 = 3;
    const WRITE: i8 = 4;
    const READ: i8 = 3;
    let jaas = r#"listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob-secret";"#;
    let configs = node_configs_on(
        3,
        "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        &[
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN",
            jaas,
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ANONYMOUS",
        ],
        |_| vec![],
    );
    let start = |i: usize| {
        let config = configs[i].0.clone();
        async move { fjord::node::start(config).await.expect("node starts") }
    };
    let mut running: Vec<Option<RunningNode>> = futures_join_running(vec![start(0), start(1), start(2)]).await;
    let a = |running: &[Option<RunningNode>], id: usize| running[id - 1].as_ref().unwrap().local_addr;
    let sasl = |running: &[Option<RunningNode>], id: usize| running[id - 1].as_ref().unwrap().listener_addr("SASL_PLAINTEXT").expect("SASL listener");
    eventually("three brokers listed", async || (metadata(a(&running, 1), "none").await.brokers.len() == 3).then_some(())).await;

    // A topic led by node 1 and replicated to all three: acks=all needs the followers' fetches,
    // which the authorizer allows the inter-broker principal (a super user).
    let mut admin1 = Client::connect(a(&running, 1)).await;
    let t = CreatableTopic::default()
        .with_name(name("secured"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![create_topics_request::CreatableReplicaAssignment::default().with_partition_index(0).with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])]);
    let r = admin1.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let code = eventually("acks=all produce on node 1", async || {
        let code = admin1.send(&produce("secured", 0, 2), 9).await.responses[0].partition_responses[0].error_code;
        (![3, 6].contains(&code)).then_some(code)
    })
    .await;
    assert_eq!(code, 0, "the followers' fetches were authorized");

    let login = async |addr: SocketAddr, user: &str| {
        let mut c = Client::connect(addr).await;
        assert_eq!(c.send(&SaslHandshakeRequest::default().with_mechanism(s("PLAIN")), 1).await.error_code, 0);
        let token = format!("\0{user}\0{user}-secret");
        assert_eq!(c.send(&SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token.into_bytes())), 2).await.error_code, 0, "{user} logs in");
        c
    };
    let alice_produces = async |c: &mut Client| c.send(&produce("secured", 0, 1), 9).await.responses[0].partition_responses[0].error_code;
    let mut alice1 = login(sasl(&running, 1), "alice").await;
    assert_eq!(alice_produces(&mut alice1).await, 29, "TOPIC_AUTHORIZATION_FAILED without an ACL");

    let creation = |principal: &str, op: i8| {
        create_acls_request::AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("secured"))
            .with_resource_pattern_type(3)
            .with_principal(s(principal))
            .with_host(s("*"))
            .with_operation(op)
            .with_permission_type(ALLOW)
    };
    let all = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let described = |r: &DescribeAclsResponse| -> Vec<(String, String, i8)> {
        let mut out: Vec<(String, String, i8)> = r.resources.iter().flat_map(|res| res.acls.iter().map(|x| (res.resource_name.to_string(), x.principal.to_string(), x.operation))).collect();
        out.sort();
        out
    };

    // Created through node 3, which checks each binding as Kafka does before the controller
    // stores any: the bad one fails alone with Kafka's message.
    let mut admin3 = Client::connect(a(&running, 3)).await;
    let bad = creation("User:alice", WRITE).with_resource_type(4);
    let r = admin3.send(&CreateAclsRequest::default().with_creations(vec![creation("User:alice", WRITE), bad]), 3).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
    assert_eq!((r.results[1].error_code, r.results[1].error_message.as_deref()), (42, Some("The only valid name for the CLUSTER resource is kafka-cluster")));
    let alice_write = vec![("secured".to_string(), "User:alice".to_string(), WRITE)];
    assert_eq!(described(&admin3.send(&all, 3).await), alice_write, "node 3 answered once it had the ACL");
    for id in 1..=3 {
        let mut c = Client::connect(a(&running, id)).await;
        let seen = eventually("the ACL on every node", async || {
            let d = described(&c.send(&all, 3).await);
            (!d.is_empty()).then_some(d)
        })
        .await;
        assert_eq!(seen, alice_write, "node {id}");
    }
    let code = eventually("alice may write on node 1", async || {
        let code = alice_produces(&mut alice1).await;
        (code != 29).then_some(code)
    })
    .await;
    assert_eq!(code, 0, "the ACL created through node 3 is enforced on node 1");

    // Node 2 stops; meanwhile bob gets READ and alice's ACL is deleted through node 1.
    running[1].take().unwrap().shutdown().await;
    let r = admin3.send(&CreateAclsRequest::default().with_creations(vec![creation("User:bob", READ)]), 3).await;
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
    let delete = DeleteAclsRequest::default().with_filters(vec![delete_acls_request::DeleteAclsFilter::default()
        .with_resource_type_filter(2)
        .with_resource_name_filter(Some(s("secured")))
        .with_pattern_type_filter(3)
        .with_principal_filter(Some(s("User:alice")))
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)]);
    let r = admin1.send(&delete, 3).await;
    assert_eq!(r.filter_results[0].error_code, 0, "{:?}", r.filter_results[0].error_message);
    let matched: Vec<(String, i8)> = r.filter_results[0].matching_acls.iter().map(|m| (m.principal.to_string(), m.operation)).collect();
    assert_eq!(matched, vec![("User:alice".to_string(), WRITE)], "the deleted binding is reported");
    assert_eq!(alice_produces(&mut alice1).await, 29, "node 1 answered the deletion once it no longer granted");
    let bob_read = vec![("secured".to_string(), "User:bob".to_string(), READ)];
    let mut alice3 = login(sasl(&running, 3), "alice").await;
    eventually("alice refused on node 3", async || (alice_produces(&mut alice3).await == 29).then_some(())).await;
    eventually("only bob's ACL on node 3", async || (described(&admin3.send(&all, 3).await) == bob_read).then_some(())).await;

    // Node 2 back: it serves its first client only after catching up, so the very first answers
    // already carry the metadata log's ACLs (replayed from its log and the leader's).
    running[1] = Some(start(1).await);
    let mut admin2 = Client::connect(a(&running, 2)).await;
    assert_eq!(described(&admin2.send(&all, 3).await), bob_read, "the restarted node has the ACLs of the metadata log");
    let mut alice2 = login(sasl(&running, 2), "alice").await;
    assert_eq!(alice_produces(&mut alice2).await, 29, "and no longer grants the deleted one");

    for r in running.into_iter().flatten() {
        r.shutdown().await;
    }
}

/// The controller listener authorizes as Kafka's controller does: its principal is
/// User:ANONYMOUS (it is served in plain text), which needs CLUSTER_ACTION on the cluster for
/// anything but ApiVersions. A one-node quorum whose super.users leaves it out refuses its own
/// broker's registration (the connection is closed), so the broker never registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_listener_refuses_a_principal_that_is_not_a_super_user() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    // With the principal a super user the same node registers.
    let configs = node_configs(1, &["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer", "super.users=User:ANONYMOUS"]);
    let node = fjord::node::start(configs[0].0.clone()).await.expect("node starts");
    let cluster = node.broker.cluster.clone().expect("in a quorum");
    eventually("the broker registered", async || (cluster.broker_epoch() >= 0).then_some(())).await;
    node.shutdown().await;

    let configs = node_configs(1, &["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer", "super.users=User:admin"]);
    let node = fjord::node::start(configs[0].0.clone()).await.expect("node starts");
    let mut c = Client::connect(node.controller_addr().expect("a controller listener")).await;
    assert_eq!(c.send(&ApiVersionsRequest::default(), 3).await.error_code, 0, "ApiVersions needs nothing");
    let heartbeat = c.encode_request(&BrokerHeartbeatRequest::default().with_broker_id(BrokerId(1)).with_broker_epoch(1), 1);
    c.send_raw(&heartbeat).await;
    assert!(c.is_closed().await, "a heartbeat without CLUSTER_ACTION is refused");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cluster = node.broker.cluster.as_ref().expect("in a quorum");
    assert_eq!(cluster.broker_epoch(), -1, "the node's own broker could not register");
    node.shutdown().await;
}

/// `inter.broker.listener.name` an SSL listener with `ssl.client.auth=required`: followers fetch
/// and brokers talk to each other over mutual TLS (the listener's trust store checks the peer's
/// certificate for its address, its key store is the client certificate), so an acks=all
/// produce is answered once both followers fetched the records over TLS. Clients use PLAINTEXT.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brokers_replicate_over_an_ssl_inter_broker_listener_with_mutual_tls() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "fjord cluster test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = KeyPair::generate().expect("broker key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params").signed_by(&key, &ca, &ca_key).expect("broker cert");
    let pki = tempfile::tempdir().unwrap();
    let keystore = pki.path().join("broker.pem");
    std::fs::write(&keystore, format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.pem())).expect("key store");
    let truststore = pki.path().join("ca.pem");
    std::fs::write(&truststore, ca.pem()).expect("trust store");
    let extra = [
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT".to_string(),
        "inter.broker.listener.name=SSL".to_string(),
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", truststore.display()),
        "listener.name.ssl.ssl.client.auth=required".to_string(),
    ];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let configs = node_configs_on(3, "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", &extra, |_| vec![]);
    let nodes = futures_join(configs.into_iter().map(|(config, dir)| async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } })).await;
    let first = addr(&nodes[0]);
    eventually("three brokers listed", async || (metadata(first, "none").await.brokers.len() == 3).then_some(())).await;
    let mut c = Client::connect(first).await;
    let t = CreatableTopic::default().with_name(name("tls")).with_num_partitions(1).with_replication_factor(3);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let m = metadata(first, "tls").await;
    let p = &m.topics[0].partitions[0];
    assert_eq!((p.replica_nodes.len(), p.isr_nodes.len()), (3, 3));
    let mut lc = Client::connect(addr(&nodes[(p.leader_id.0 - 1) as usize])).await;
    let r = eventually("produce to the new leader", async || {
        let r = lc.send(&produce("tls", 0, 5), 9).await;
        (![3, 6].contains(&r.responses[0].partition_responses[0].error_code)).then_some(r)
    })
    .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "acks=all answered: both followers fetched over TLS");
    assert_eq!(lc.send(&fetch("tls", 0), 12).await.responses[0].partitions[0].high_watermark, 5);
    let m = metadata(first, "tls").await;
    assert_eq!(m.topics[0].partitions[0].isr_nodes.len(), 3, "every follower stays in the ISR");
    for mut n in nodes {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

/// KIP-714 client metrics subscriptions in a quorum are the metadata log's, as in Kafka: altered
/// through node 1, they are described and listed on node 3, and a client of node 2 gets their
/// metrics and interval from GetTelemetrySubscriptions; a node stopped meanwhile comes back
/// with the log's set (a deletion made while it was down included).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_metrics_subscriptions_are_the_metadata_logs_on_every_node() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let configs = node_configs(3, &[]);
    let start = |i: usize| {
        let config = configs[i].0.clone();
        async move { fjord::node::start(config).await.expect("node starts") }
    };
    let mut running: Vec<Option<RunningNode>> = futures_join_running(vec![start(0), start(1), start(2)]).await;
    let a = |running: &[Option<RunningNode>], id: usize| running[id - 1].as_ref().unwrap().local_addr;
    eventually("three brokers listed", async || (metadata(a(&running, 1), "none").await.brokers.len() == 3).then_some(())).await;

    let alter = |name: &str, ops: &[(i8, &str, Option<&str>)]| {
        let configs = ops
            .iter()
            .map(|(op, k, v)| incremental_alter_configs_request::AlterableConfig::default().with_name(s(k)).with_config_operation(*op).with_value(v.map(s)))
            .collect();
        IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(16)
            .with_resource_name(s(name))
            .with_configs(configs)])
    };
    let list = async |c: &mut Client| -> Vec<String> { c.send(&ListConfigResourcesRequest::default(), 0).await.config_resources.iter().map(|r| r.resource_name.to_string()).collect() };
    let describe = async |c: &mut Client, name: &str| -> Vec<(String, String)> {
        let req = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(16)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
        let r = c.send(&req, 4).await;
        r.results[0].configs.iter().map(|d| (d.name.to_string(), d.value.as_ref().map(|v| v.to_string()).unwrap_or_default())).collect()
    };

    let mut admin1 = Client::connect(a(&running, 1)).await;
    let set = [(0, "metrics", Some("org.apache.kafka.producer.")), (0, "interval.ms", Some("1000"))];
    let r = admin1.send(&alter("prod", &set), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    let r = admin1.send(&alter("other", &[(0, "interval.ms", Some("2000")), (0, "match", Some("client_id=nobody"))]), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    // Refused as on a single node, before the controller.
    let r = admin1.send(&alter("bad", &[(0, "interval.ms", Some("10"))]), 1).await;
    assert_eq!(r.responses[0].error_code, 42, "{:?}", r.responses[0].error_message);

    let mut admin3 = Client::connect(a(&running, 3)).await;
    eventually("both subscriptions listed on node 3", async || (list(&mut admin3).await == ["other", "prod"]).then_some(())).await;
    assert_eq!(describe(&mut admin3, "prod").await, vec![("interval.ms".to_string(), "1000".to_string()), ("metrics".to_string(), "org.apache.kafka.producer.".to_string())]);
    let mut client2 = Client::connect(a(&running, 2)).await;
    let g = eventually("node 2 matches the subscription", async || {
        let g = client2.send(&GetTelemetrySubscriptionsRequest::default(), 0).await;
        (g.error_code == 0 && g.push_interval_ms == 1000).then_some(g)
    })
    .await;
    assert_eq!(g.requested_metrics.iter().map(|m| m.to_string()).collect::<Vec<_>>(), vec!["org.apache.kafka.producer."]);

    // Node 2 stops; "other" is deleted through node 3 meanwhile.
    running[1].take().unwrap().shutdown().await;
    let r = admin3.send(&alter("other", &[(1, "interval.ms", None), (1, "match", None)]), 1).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    eventually("only prod on node 1", async || (list(&mut admin1).await == ["prod"]).then_some(())).await;
    running[1] = Some(start(1).await);
    let mut admin2 = Client::connect(a(&running, 2)).await;
    assert_eq!(list(&mut admin2).await, vec!["prod"], "the restarted node has the metadata log's subscriptions");
    assert_eq!(describe(&mut admin2, "prod").await.len(), 2);

    for r in running.into_iter().flatten() {
        r.shutdown().await;
    }
}

/// Dynamic broker configs in a quorum are the metadata log's (BROKER ConfigRecords), as in Kafka:
/// a cluster default set through node 1 is described on nodes 2 and 3 with source
/// DYNAMIC_DEFAULT_BROKER_CONFIG and bounds their follower throttle and their replicas' retention;
/// broker 3's own value is set through node 3 (node 1 refuses another broker's id, as Kafka 4.0)
/// and changes only broker 3; a static property or a value that is not a number is refused with
/// Kafka's words and changes nothing anywhere; a legacy AlterConfigs replaces the whole default
/// set (a key left out goes everywhere); two alterations of different keys at once through two
/// nodes both stay; a restarted node has the log's values back, and no node
/// writes the single-node file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamic_broker_configs_are_the_metadata_logs_on_every_node() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    const RETENTION: &str = "log.retention.ms";
    const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
    let configs = node_configs(3, &[]);
    let start = |i: usize| {
        let config = configs[i].0.clone();
        async move { fjord::node::start(config).await.expect("node starts") }
    };
    let mut running: Vec<Option<RunningNode>> = futures_join_running(vec![start(0), start(1), start(2)]).await;
    let a = |running: &[Option<RunningNode>], id: usize| running[id - 1].as_ref().unwrap().local_addr;
    let broker = |running: &[Option<RunningNode>], id: usize| running[id - 1].as_ref().unwrap().broker.clone();
    eventually("three brokers listed", async || (metadata(a(&running, 1), "none").await.brokers.len() == 3).then_some(())).await;
    let alter = |name: &str, ops: &[(i8, &str, Option<&str>)]| {
        let configs = ops
            .iter()
            .map(|(op, k, v)| incremental_alter_configs_request::AlterableConfig::default().with_name(s(k)).with_config_operation(*op).with_value(v.map(s)))
            .collect();
        IncrementalAlterConfigsRequest::default().with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(name))
            .with_configs(configs)])
    };
    let outcome = |r: &IncrementalAlterConfigsResponse| (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()));
    // (value, source) of each config DescribeConfigs lists for broker resource `name`.
    let describe = async |c: &mut Client, name: &str| -> std::collections::BTreeMap<String, (String, i8)> {
        let req = DescribeConfigsRequest::default().with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
        let r = c.send(&req, 4).await;
        assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0].error_message);
        r.results[0].configs.iter().map(|d| (d.name.to_string(), (d.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), d.config_source))).collect()
    };
    // The retention the replica of dyn-0 on node `id` enforces.
    let tp = fjord::types::TopicPartition::new("dyn", 0);
    let retention_here = |running: &[Option<RunningNode>], id: usize| broker(running, id).replicas.logs().get(&tp).map(|l| l.lock().unwrap().config().retention_ms);

    let mut admin1 = Client::connect(a(&running, 1)).await;
    let topic = CreatableTopic::default().with_name(name("dyn")).with_num_partitions(1).with_replication_factor(3);
    let r = admin1.send(&CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    eventually("a replica of dyn-0 on every node", async || (1..=3).all(|id| retention_here(&running, id).is_some()).then_some(())).await;
    let week_ms = 7 * 24 * 3_600_000;
    assert_eq!(retention_here(&running, 2), Some(week_ms), "log.retention.hours' default");

    // The cluster default, through node 1: node 1 has applied it when it answers.
    let r = admin1.send(&alter("", &[(0, RETENTION, Some("3600000")), (0, FOLLOWER_RATE, Some("5000000"))]), 1).await;
    assert_eq!(outcome(&r), (0, None));
    assert_eq!(broker(&running, 1).follower_quota.quota(), 5_000_000, "applied on the receiving node before the answer");
    let mut admin2 = Client::connect(a(&running, 2)).await;
    let mut admin3 = Client::connect(a(&running, 3)).await;
    for (id, c) in [(2, &mut admin2), (3, &mut admin3)] {
        eventually("the default applied on the other nodes", async || (broker(&running, id).follower_quota.quota() == 5_000_000).then_some(())).await;
        assert_eq!(retention_here(&running, id), Some(3_600_000), "node {id}'s replica follows the default");
        let own = describe(c, &id.to_string()).await;
        assert_eq!(own.get(RETENTION), Some(&("3600000".to_string(), 3)), "node {id}: DYNAMIC_DEFAULT_BROKER_CONFIG");
        assert_eq!(own.get(FOLLOWER_RATE), Some(&("5000000".to_string(), 3)));
        let default = describe(c, "").await;
        assert_eq!(default.keys().collect::<Vec<_>>(), vec![FOLLOWER_RATE, RETENTION], "node {id} describes the cluster default");
    }

    // Broker 3's own value: another broker's id is refused by node 1 (the admin client sends a
    // broker's resource to that broker), then set through node 3.
    let r = admin1.send(&alter("3", &[(0, RETENTION, Some("7200000"))]), 1).await;
    assert_eq!(outcome(&r), (42, Some("Unexpected broker id, expected 1, but received 3".to_string())));
    let r = admin3.send(&alter("3", &[(0, RETENTION, Some("7200000"))]), 1).await;
    assert_eq!(outcome(&r), (0, None));
    assert_eq!(retention_here(&running, 3), Some(7_200_000), "applied on node 3 before the answer");
    assert_eq!(describe(&mut admin3, "3").await.get(RETENTION), Some(&("7200000".to_string(), 2)), "DYNAMIC_BROKER_CONFIG");
    assert_eq!(describe(&mut admin2, "2").await.get(RETENTION), Some(&("3600000".to_string(), 3)), "broker 2 keeps the default");
    assert_eq!(retention_here(&running, 2), Some(3_600_000));
    assert_eq!(retention_here(&running, 1), Some(3_600_000));

    // Refusals, with Kafka 4.0's words, change nothing anywhere.
    let r = admin2.send(&alter("", &[(0, "log.dirs", Some("/elsewhere"))]), 1).await;
    assert_eq!(r.responses[0].error_code, 42, "{:?}", r.responses[0].error_message);
    assert_eq!(outcome(&r).1.as_deref(), Some("Cannot update these configs dynamically: Set(log.dirs)"), "Kafka 4.0's words");
    let not_a_number = Some("Invalid value abc for configuration log.retention.ms: Not a number of type LONG".to_string());
    let r = admin2.send(&alter("", &[(0, RETENTION, Some("abc"))]), 1).await;
    assert_eq!(outcome(&r), (42, not_a_number.clone()));
    // Also where this broker's own value hides the default's: the default holds for all brokers.
    let r = admin3.send(&alter("", &[(0, RETENTION, Some("abc"))]), 1).await;
    assert_eq!(outcome(&r), (42, not_a_number));
    let r = admin1.send(&alter("x", &[(0, RETENTION, Some("1"))]), 1).await;
    assert_eq!(outcome(&r), (42, Some("Node id must be an integer, but it is: x".to_string())));
    for (id, c) in [(1, &mut admin1), (2, &mut admin2), (3, &mut admin3)] {
        let default = describe(c, "").await;
        assert_eq!(default.get(RETENTION), Some(&("3600000".to_string(), 3)), "node {id} unchanged");
        assert!(!default.contains_key("log.dirs"));
    }

    // A legacy AlterConfigs on node 2 replaces the whole default set: the follower rate goes.
    let req = AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(4)
        .with_resource_name(s(""))
        .with_configs(vec![alter_configs_request::AlterableConfig::default().with_name(s(RETENTION)).with_value(Some(s("1800000")))])]);
    let r = admin2.send(&req, 2).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
    for id in 1..=3 {
        eventually("the follower rate gone everywhere", async || (broker(&running, id).follower_quota.quota() == u64::MAX).then_some(())).await;
    }
    eventually("node 1's replica follows the new default", async || (retention_here(&running, 1) == Some(1_800_000)).then_some(())).await;
    assert_eq!(retention_here(&running, 3), Some(7_200_000), "broker 3's own value over the default");

    // Two alterations of the default at once through different nodes, each of a key the other
    // leaves alone: both stay, whichever the controller takes first (a node sends only the keys
    // it changes, not its possibly stale view of the others).
    for round in 1..=3u64 {
        let retention = (900_000 * round).to_string();
        let rate = (6_000_000 + round).to_string();
        let (set_retention, set_rate) = (alter("", &[(0, RETENTION, Some(&retention))]), alter("", &[(0, FOLLOWER_RATE, Some(&rate))]));
        let (r1, r2) = tokio::join!(admin1.send(&set_retention, 1), admin2.send(&set_rate, 1));
        assert_eq!((outcome(&r1), outcome(&r2)), ((0, None), (0, None)));
        let want = (Some(&(retention.clone(), 3)), Some(&(rate.clone(), 3)));
        for c in [&mut admin1, &mut admin2, &mut admin3] {
            eventually("both changes on every node", async || {
                let default = describe(c, "").await;
                ((default.get(RETENTION), default.get(FOLLOWER_RATE)) == want).then_some(())
            })
            .await;
        }
    }

    // Node 3 restarts: the default and its own value come back from the metadata log.
    running[2].take().unwrap().shutdown().await;
    running[2] = Some(start(2).await);
    let mut admin3 = Client::connect(a(&running, 3)).await;
    let own = eventually("node 3 serves its configs again", async || {
        let own = describe(&mut admin3, "3").await;
        own.contains_key(RETENTION).then_some(own)
    })
    .await;
    assert_eq!(own.get(RETENTION), Some(&("7200000".to_string(), 2)), "the restarted node has its own value");
    assert_eq!(describe(&mut admin3, "").await.get(RETENTION), Some(&("2700000".to_string(), 3)), "and the cluster default");
    eventually("node 3's replica enforces its own value again", async || (retention_here(&running, 3) == Some(7_200_000)).then_some(())).await;
    for (_, dir) in &configs {
        assert!(!dir.path().join("fjord-broker-configs.checkpoint").exists(), "a cluster node keeps no dynamic configs file");
    }

    for r in running.into_iter().flatten() {
        r.shutdown().await;
    }
}

/// AlterReplicaLogDirs in a cluster: on every node of an RF-3 partition (its leader and both
/// followers) the replica moves to the node's other log dir while acks=all produce goes on; the
/// ISR stays whole, each node lists the partition in its new dir, and every replica holds every
/// record (a follower's fetcher keeps appending to the replica being moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_move_between_log_dirs_on_leader_and_followers_while_produced_to() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let configs = node_configs_with(3, &[], |d| vec![format!("log.dirs={},{}", d.join("a").display(), d.join("b").display())]);
    let dirs: Vec<(String, String)> = configs.iter().map(|(_, d)| (d.path().join("a").display().to_string(), d.path().join("b").display().to_string())).collect();
    let starts = configs.into_iter().map(|(config, dir)| async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } });
    let mut nodes = futures_join(starts).await;
    let a: Vec<SocketAddr> = nodes.iter().map(addr).collect();
    eventually("three brokers listed", async || (metadata(a[0], "none").await.brokers.len() == 3).then_some(())).await;

    let mut c = Client::connect(a[0]).await;
    let small = create_topics_request::CreatableTopicConfig::default().with_name(StrBytes::from_static_str("segment.bytes")).with_value(Some(StrBytes::from_static_str("2000")));
    let t = CreatableTopic::default().with_name(name("ld")).with_num_partitions(1).with_replication_factor(3).with_configs(vec![small]);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let m = eventually("a leader and a full ISR", async || {
        let m = metadata(a[0], "ld").await;
        let p = &m.topics[0].partitions[0];
        (p.leader_id.0 > 0 && p.isr_nodes.len() == 3).then_some(m)
    })
    .await;
    let leader = m.topics[0].partitions[0].leader_id.0 as usize;
    let mut lc = Client::connect(a[leader - 1]).await;
    let mut produced = 0i64;
    // The metadata may name the leader before the leader has taken the partition over.
    let first = eventually("the leader takes produce", async || {
        let r = lc.send(&produce("ld", 0, 5), 9).await;
        let code = r.responses[0].partition_responses[0].error_code;
        (code != E_NOT_LEADER_OR_FOLLOWER).then_some(code)
    })
    .await;
    assert_eq!(first, 0);
    produced += 5;
    let send = async |lc: &mut Client, n: usize| {
        let r = lc.send(&produce("ld", 0, n), 9).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    };
    for _ in 1..30 {
        send(&mut lc, 5).await;
        produced += 5;
    }
    let tp = fjord::types::TopicPartition::new("ld", 0);
    let in_dir = |node: &Node| node.running.as_ref().unwrap().broker.replicas.logs().log_dir_of(&tp).map(|p| p.display().to_string());
    // Each node moves its replica to the dir it is not in, asked on that node (as Kafka, the
    // request names this broker's dirs), the leader's last.
    let mut order: Vec<usize> = (1..=3).filter(|n| *n != leader).collect();
    order.push(leader);
    for n in order {
        let now = in_dir(&nodes[n - 1]).expect("a replica on every node");
        let to = if now == dirs[n - 1].0 { dirs[n - 1].1.clone() } else { dirs[n - 1].0.clone() };
        let mut nc = Client::connect(a[n - 1]).await;
        let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![alter_replica_log_dirs_request::AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(to.clone()))
            .with_topics(vec![alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default().with_name(name("ld")).with_partitions(vec![0])])]);
        let r = nc.send(&req, 2).await;
        assert_eq!(r.results[0].partitions[0].error_code, 0, "node {n}");
        let mut rounds = 0;
        while in_dir(&nodes[n - 1]).as_deref() != Some(to.as_str()) || nodes[n - 1].running.as_ref().unwrap().broker.replicas.logs().is_moving(&tp) {
            send(&mut lc, 2).await;
            produced += 2;
            rounds += 1;
            assert!(rounds < 2000, "node {n}: the move to {to} did not finish");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let dirs_listed = nc.send(&DescribeLogDirsRequest::default().with_topics(None), 4).await.results;
        let listed: Vec<(String, bool)> = dirs_listed
            .iter()
            .flat_map(|d| d.topics.iter().filter(|t| t.name.0.as_str() == "ld").flat_map(move |t| t.partitions.iter().map(move |p| (d.log_dir.to_string(), p.is_future_key))))
            .collect();
        assert_eq!(listed, vec![(to.clone(), false)], "node {n} lists the replica in its new dir only");
    }
    for _ in 0..5 {
        send(&mut lc, 3).await;
        produced += 3;
    }
    let m = metadata(a[0], "ld").await;
    assert_eq!(m.topics[0].partitions[0].isr_nodes.len(), 3, "the ISR stayed whole");
    for (i, node) in nodes.iter().enumerate() {
        let b = &node.running.as_ref().unwrap().broker;
        eventually(&format!("node {} holds every record", i + 1), async || (b.replicas.follower_position(&tp).map(|(end, _, _)| end).ok() == Some(produced)).then_some(())).await;
    }
    let f = lc.send(&fetch("ld", 0), 12).await;
    assert_eq!((f.responses[0].partitions[0].error_code, f.responses[0].partitions[0].high_watermark), (0, produced));
    // And the same bytes: each replica's whole log read back from its new dir.
    let whole = |node: &Node| {
        let b = &node.running.as_ref().unwrap().broker;
        let (mut out, mut at) = (Vec::new(), 0i64);
        loop {
            let data = b.replicas.read_to_log_end(&tp, at, 1 << 20).expect("read the replica");
            if data.is_empty() {
                return out;
            }
            // Batch by batch: base offset (8), length (4), ..., last offset delta at 23..27.
            let mut rest = &data[..];
            while rest.len() >= 27 {
                let len = i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize + 12;
                let base = i64::from_be_bytes(rest[..8].try_into().unwrap());
                at = base + i64::from(i32::from_be_bytes(rest[23..27].try_into().unwrap())) + 1;
                out.extend_from_slice(&rest[..len]);
                rest = &rest[len..];
            }
        }
    };
    let leader_log = whole(&nodes[leader - 1]);
    assert!(!leader_log.is_empty());
    for (i, node) in nodes.iter().enumerate() {
        assert!(whole(node) == leader_log, "node {}'s replica differs from the leader's", i + 1);
    }
    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_fetches_from_a_replica_in_its_rack() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=info").with_test_writer().try_init();
    let next_id = std::sync::atomic::AtomicI32::new(1);
    let configs = node_configs_with(3, &["replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"], |_| {
        vec![format!("broker.rack=rack-{}", next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed))]
    });
    let mut nodes = futures_join(configs.into_iter().map(|(config, dir)| async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } })).await;
    let first = addr(&nodes[0]);
    eventually("three brokers listed", async || (metadata(first, "none").await.brokers.len() == 3).then_some(())).await;
    let mut c = Client::connect(first).await;
    let t = CreatableTopic::default().with_name(name("racks")).with_num_partitions(1).with_replication_factor(3);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(10_000), 7).await.topics[0].error_code, 0);
    let (leader, epoch) = eventually("a leader with the whole ISR", async || {
        let p = metadata(first, "racks").await.topics[0].partitions.first()?.clone();
        (p.leader_id.0 > 0 && p.isr_nodes.len() == 3).then_some((p.leader_id.0, p.leader_epoch))
    })
    .await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let at = |id: i32| addr(&nodes[(id - 1) as usize]);
    let mut lc = Client::connect(at(leader)).await;
    eventually("acks=all produce", async || (lc.send(&produce("racks", 0, 5), 9).await.responses[0].partition_responses[0].error_code == 0).then_some(())).await;
    let from = |rack: &str, epoch: i32| {
        let mut f = fetch("racks", 0).with_rack_id(StrBytes::from_string(rack.to_string()));
        f.topics[0].partitions[0].current_leader_epoch = epoch;
        f
    };

    // The leader points a consumer in the follower's rack at the follower, with no records, once
    // the follower holds the offset; a consumer in its own rack, or naming none, reads here.
    let redirected = eventually("the leader names the follower", async || {
        let r = lc.send(&from(&format!("rack-{follower}"), epoch), 12).await;
        let p = r.responses[0].partitions[0].clone();
        (p.preferred_read_replica.0 == follower).then_some(p)
    })
    .await;
    assert_eq!(redirected.error_code, 0);
    assert!(redirected.records.as_ref().is_none_or(|r| r.is_empty()), "no records with a preferred replica");
    assert_eq!(redirected.high_watermark, 5);
    for rack in [format!("rack-{leader}"), String::new(), "elsewhere".to_string()] {
        let p = lc.send(&from(&rack, epoch), 12).await.responses[0].partitions[0].clone();
        assert_eq!((p.error_code, p.preferred_read_replica.0), (0, -1), "rack {rack:?}");
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()), "rack {rack:?}: records from the leader");
    }

    // The follower serves the consumer up to its high watermark (Fetch v11+), in the current epoch.
    let mut fc = Client::connect(at(follower)).await;
    let served = eventually("the follower serves the records", async || {
        let p = fc.send(&from(&format!("rack-{follower}"), epoch), 12).await.responses[0].partitions[0].clone();
        (p.error_code == 0 && p.high_watermark == 5 && p.records.as_ref().is_some_and(|r| !r.is_empty())).then_some(p)
    })
    .await;
    assert_eq!(served.preferred_read_replica.0, -1, "a follower never redirects");
    assert_eq!(served.records.as_ref().map(|r| r.len()), leader_records_len(&mut lc, epoch).await, "the same batch as the leader's");
    let p = fc.send(&from("", epoch + 1), 12).await.responses[0].partitions[0].clone();
    assert_eq!(p.error_code, 75, "UNKNOWN_LEADER_EPOCH for an epoch the follower has not seen");
    let p = fc.send(&fetch("racks", 0), 10).await.responses[0].partitions[0].clone();
    assert_eq!(p.error_code, 6, "before v11 a consumer fetches from the leader only: NOT_LEADER_OR_FOLLOWER");

    for n in nodes.iter_mut() {
        if let Some(r) = n.running.take() {
            r.shutdown().await;
        }
    }
}

/// The size of what the leader answers a consumer naming no rack (the whole log here).
async fn leader_records_len(leader: &mut Client, epoch: i32) -> Option<usize> {
    let mut f = fetch("racks", 0);
    f.topics[0].partitions[0].current_leader_epoch = epoch;
    leader.send(&f, 12).await.responses[0].partitions[0].records.as_ref().map(|r| r.len())
}
