//! Three combined broker+controller nodes on loopback, in one metadata quorum: brokers register
//! and are unfenced, a topic created through any node is placed on all three with leaders and
//! ISRs from the controller, acks=all produce to a leader is replicated, and when the leader's
//! node stops its partitions get a new leader from the ISR that still has every record; a
//! follower that stops fetching leaves the ISR (AlterPartition) and rejoins once caught up.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Client;
use fjord::config::Config;
use fjord::node::RunningNode;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

struct Node {
    running: Option<RunningNode>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_cluster(n: i32, extra: &[&str]) -> Vec<Node> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let voters = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
    let starts = (0..n).map(|i| {
        let dir = tempfile::tempdir().unwrap();
        let mut o = vec![
            format!("node.id={}", i + 1),
            format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}", ports[i as usize]),
            "controller.listener.names=CONTROLLER".to_string(),
            format!("controller.quorum.voters={voters}"),
            format!("log.dirs={}", dir.path().display()),
            "broker.session.timeout.ms=3000".to_string(),
            "broker.heartbeat.interval.ms=200".to_string(),
        ];
        o.extend(extra.iter().map(|s| s.to_string()));
        let config = Config::load(None, &o).expect("config");
        async move { Node { running: Some(fjord::node::start(config).await.expect("node starts")), _dir: dir } }
    });
    futures_join(starts).await
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

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 15 s");
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

    for n in nodes.iter_mut() {
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
    let isr = eventually("the ISR without the lagging follower", async || {
        let p = p0(&metadata(first, "lag").await);
        let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
        (!isr.contains(&follower)).then_some(isr)
    })
    .await;
    assert_eq!(isr.len(), 2);

    // Its fetcher starts again with the next metadata change and it catches up: back in the ISR.
    eventually("the follower back in the ISR", async || {
        let p = p0(&metadata(first, "lag").await);
        p.isr_nodes.iter().any(|b| b.0 == follower).then_some(())
    })
    .await;

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
