//! Wire tests of AlterReplicaLogDirs: a broker on 127.0.0.1:0 with two log dirs moves a partition
//! from one to the other while it is produced to; every record is fetched back once and in order,
//! DescribeLogDirs reports the new dir, and a restart loads the partition from there.

mod common;

use bytes::{Buf, Bytes};
use common::*;
use fjord::config::Config;
use fjord::types::TopicPartition;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn config(a: &std::path::Path, b: &std::path::Path, port: u16) -> Config {
    two_dirs_config(a, b, port, &[])
}

async fn produce(c: &mut Client, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name("t"))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(records))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

/// Every offset fetched from `t`-0, from offset 0 to the high watermark, batch by batch.
async fn fetch_all(c: &mut Client) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut at = 0;
    loop {
        let req = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name("t"))
            .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(at).with_partition_max_bytes(1 << 20)])]);
        let p = c.send(&req, 11).await.responses[0].partitions[0].clone();
        assert_eq!(p.error_code, 0);
        let mut records = p.records.unwrap_or_default();
        if records.is_empty() {
            assert_eq!(at, p.high_watermark, "everything up to the high watermark was read");
            return offsets;
        }
        while records.remaining() >= 27 {
            let base = records.get_i64();
            let len = records.get_i32() as usize;
            let last = base + i64::from(i32::from_be_bytes(records[11..15].try_into().expect("4 bytes")));
            records.advance(len);
            offsets.extend((base..=last).filter(|o| *o >= at));
            at = last + 1;
        }
    }
}

fn alter(dir: &str, topic: &str, partitions: Vec<i32>) -> AlterReplicaLogDirsRequest {
    AlterReplicaLogDirsRequest::default().with_dirs(vec![alter_replica_log_dirs_request::AlterReplicaLogDir::default()
        .with_path(StrBytes::from_string(dir.to_string()))
        .with_topics(vec![alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default().with_name(name(topic)).with_partitions(partitions)])])
}

/// Where DescribeLogDirs lists `t`-0: (dir, is a future replica) for each listing.
async fn listed(c: &mut Client) -> Vec<(String, bool)> {
    let dirs = c.send(&DescribeLogDirsRequest::default().with_topics(None), 4).await.results;
    let mut out = Vec::new();
    for d in dirs {
        for t in d.topics.iter().filter(|t| t.name.0.as_str() == "t") {
            for p in t.partitions.iter().filter(|p| p.partition_index == 0) {
                out.push((d.log_dir.to_string(), p.is_future_key));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_to_the_other_log_dir_while_produced_to_and_stays_there_after_a_restart() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (a_s, b_s) = (a.path().display().to_string(), b.path().display().to_string());
    let running = fjord::node::start(config(a.path(), b.path(), 0)).await.expect("broker starts");
    let addr = running.local_addr;
    let mut c = Client::connect(addr).await;
    let small = create_topics_request::CreatableTopicConfig::default().with_name(StrBytes::from_static_str("segment.bytes")).with_value(Some(StrBytes::from_static_str("600")));
    let t = create_topics_request::CreatableTopic::default().with_name(name("t")).with_num_partitions(1).with_replication_factor(1).with_configs(vec![small]);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    let tp = TopicPartition::new("t", 0);
    assert_eq!(running.broker.replicas.logs().log_dir_of(&tp).as_deref(), Some(a.path()));
    let mut produced = 0;
    for i in 0..40 {
        assert_eq!(produce(&mut c, batch(5, 1_000 + i, Compression::None)).await, 0);
        produced += 5;
    }
    // Several segments: the move copies the sealed ones, then the active one.
    assert!(running.broker.replicas.logs().get(&tp).expect("log").lock().expect("lock").segment_count() > 3);

    // What cannot be moved, per partition, as Kafka answers.
    let r = c.send(&alter("relative", "t", vec![0]), 2).await.results;
    assert_eq!(r[0].partitions[0].error_code, E::LogDirNotFound.code());
    let r = c.send(&alter("/not/a/log/dir", "t", vec![0]), 1).await.results;
    assert_eq!(r[0].partitions[0].error_code, E::LogDirNotFound.code());
    let r = c.send(&alter(&b_s, "nope", vec![0]), 2).await.results;
    assert_eq!((r[0].topic_name.0.as_str(), r[0].partitions[0].error_code), ("nope", E::UnknownTopicOrPartition.code()));
    let r = c.send(&alter(&b_s, "t", vec![7]), 2).await.results;
    assert_eq!(r[0].partitions[0].error_code, E::UnknownTopicOrPartition.code());
    let r = c.send(&alter(&a_s, "t", vec![0]), 2).await.results;
    assert_eq!(r[0].partitions[0].error_code, 0, "already there: nothing to do");
    assert_eq!(listed(&mut c).await, vec![(a_s.clone(), false)]);

    // The move, with produce going on meanwhile.
    let r = c.send(&alter(&b_s, "t", vec![0]), 2).await.results;
    assert_eq!(r[0].partitions[0].error_code, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert_eq!(produce(&mut c, batch(2, 5_000, Compression::None)).await, 0);
        produced += 2;
        let l = listed(&mut c).await;
        if l == vec![(b_s.clone(), false)] {
            break;
        }
        assert!(l.contains(&(a_s.clone(), false)), "served from the old dir until the switch: {l:?}");
        assert!(std::time::Instant::now() < deadline, "the move did not finish: {l:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(running.broker.replicas.logs().log_dir_of(&tp).as_deref(), Some(b.path()));
    // The old directory goes right after the switch.
    while running.broker.replicas.logs().is_moving(&tp) {
        assert!(std::time::Instant::now() < deadline, "the old directory was not removed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!a.path().join("t-0").exists());
    assert_eq!(fetch_all(&mut c).await, (0..produced).collect::<Vec<_>>());
    for i in 0..5 {
        assert_eq!(produce(&mut c, batch(3, 9_000 + i, Compression::None)).await, 0);
        produced += 3;
    }
    assert_eq!(fetch_all(&mut c).await, (0..produced).collect::<Vec<_>>());
    drop(c);
    running.shutdown().await;

    let running = fjord::node::start(config(a.path(), b.path(), addr.port())).await.expect("restart");
    let mut c = Client::connect(running.local_addr).await;
    assert_eq!(running.broker.replicas.logs().log_dir_of(&tp).as_deref(), Some(b.path()));
    assert_eq!(listed(&mut c).await, vec![(b_s.clone(), false)]);
    assert_eq!(fetch_all(&mut c).await, (0..produced).collect::<Vec<_>>());
    assert_eq!(produce(&mut c, batch(1, 10_000, Compression::None)).await, 0);
    drop(c);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_takes_a_reassignment_to_its_own_replica_as_done_and_refuses_others() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let running = fjord::node::start(config(a.path(), b.path(), 0)).await.expect("broker starts");
    let me = running.broker.config.node_id;
    let mut c = Client::connect(running.local_addr).await;
    let t = create_topics_request::CreatableTopic::default().with_name(name("t")).with_num_partitions(1).with_replication_factor(1);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    let part = |i: i32, replicas: Option<Vec<i32>>| {
        alter_partition_reassignments_request::ReassignablePartition::default().with_partition_index(i).with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    // What kafka-reassign-partitions.sh sends for a JSON that only moves log dirs, and others.
    let req = AlterPartitionReassignmentsRequest::default().with_timeout_ms(5000).with_topics(vec![alter_partition_reassignments_request::ReassignableTopic::default()
        .with_name(name("t"))
        .with_partitions(vec![part(0, Some(vec![me])), part(0, Some(vec![me + 1])), part(0, None), part(3, Some(vec![me]))])]);
    let resp = c.send(&req, 0).await;
    assert_eq!(resp.error_code, 0);
    let codes: Vec<i16> = resp.responses[0].partitions.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, vec![0, E::InvalidReplicaAssignment.code(), E::NoReassignmentInProgress.code(), E::UnknownTopicOrPartition.code()]);
    let list = c.send(&ListPartitionReassignmentsRequest::default().with_timeout_ms(5000).with_topics(None), 0).await;
    assert_eq!((list.error_code, list.topics.len()), (0, 0), "nothing is ever being reassigned");
    drop(c);
    running.shutdown().await;
}
