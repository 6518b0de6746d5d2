//! Wire tests of log dir failure: a broker on 127.0.0.1:0 with two log dirs on the fault-injecting
//! backend. An fsync EIO in one dir takes it offline (KAFKA_STORAGE_ERROR for every request on its
//! partitions, for good), the other dir keeps serving, DescribeLogDirs shows the error, and a
//! restart on the portable backend recovers the fsynced data.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use fjord::config::Config;
use fjord::storage::io::{Backend, FaultConfig, FaultOp, FaultyIo, StdIo};
use fjord::types::TopicPartition;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn config(a: &std::path::Path, b: &std::path::Path, port: u16) -> Config {
    two_dirs_config(a, b, port, &["fjord.log.flush.on.acks.all=true"])
}

async fn produce(c: &mut Client, partition: i32, records: Bytes) -> i16 {
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(name("t"))
        .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

/// (error code, high watermark, bytes of records) of a fetch of `t`-`partition` from offset 0.
async fn fetch(c: &mut Client, partition: i32) -> (i16, i64, usize) {
    let req = FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition(partition).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    let p = c.send(&req, 11).await.responses[0].partitions[0].clone();
    (p.error_code, p.high_watermark, p.records.map_or(0, |r| r.len()))
}

async fn list_offsets(c: &mut Client, partition: i32) -> i16 {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(name("t"))
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1)])]);
    c.send(&req, 7).await.topics[0].partitions[0].error_code
}

async fn epoch_end(c: &mut Client, partition: i32) -> i16 {
    let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
        .with_topic(name("t"))
        .with_partitions(vec![offset_for_leader_epoch_request::OffsetForLeaderPartition::default().with_partition(partition).with_current_leader_epoch(-1).with_leader_epoch(0)])]);
    c.send(&req, 4).await.topics[0].partitions[0].error_code
}

async fn delete_records(c: &mut Client, partition: i32, offset: i64) -> i16 {
    let req = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
        .with_name(name("t"))
        .with_partitions(vec![delete_records_request::DeleteRecordsPartition::default().with_partition_index(partition).with_offset(offset)])]);
    c.send(&req, 2).await.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_eio_takes_the_log_dir_offline_for_good_while_the_other_dir_serves_and_a_restart_recovers() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let faulty = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
    let backend = Backend { io: Arc::new(faulty.clone()), name: "faulty", uring_stats: None, budget: None };
    let running = fjord::node::start_with_backend(config(a.path(), b.path(), 0), backend).await.expect("broker starts");
    let addr = running.local_addr;
    let mut c = Client::connect(addr).await;
    let t = create_topics_request::CreatableTopic::default().with_name(name("t")).with_num_partitions(2).with_replication_factor(1);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    let logs = running.broker.replicas.logs();
    assert_eq!(logs.log_dir_of(&TopicPartition::new("t", 0)).as_deref(), Some(a.path()), "t-0 in the dir that fails");
    assert_eq!(logs.log_dir_of(&TopicPartition::new("t", 1)).as_deref(), Some(b.path()));

    assert_eq!(produce(&mut c, 0, batch(3, 1_000, Compression::None)).await, 0);
    assert_eq!(produce(&mut c, 1, batch(3, 1_000, Compression::None)).await, 0);
    let (code, hw, _) = fetch(&mut c, 0).await;
    assert_eq!((code, hw), (0, 3));

    faulty.inject(a.path(), FaultOp::Sync, libc::EIO);
    let storage_error = E::KafkaStorageError.code();
    assert_eq!(produce(&mut c, 0, batch(2, 2_000, Compression::None)).await, storage_error, "the fsync failed: not acknowledged");
    faulty.heal();
    assert_eq!(produce(&mut c, 0, batch(2, 3_000, Compression::None)).await, storage_error, "no resumption once fsync works again");
    assert_eq!(fetch(&mut c, 0).await.0, storage_error, "nothing in the offline dir is readable");
    assert_eq!(list_offsets(&mut c, 0).await, storage_error);
    assert_eq!(epoch_end(&mut c, 0).await, storage_error);
    assert_eq!(delete_records(&mut c, 0, 1).await, storage_error);

    // The other log dir's partition keeps working.
    assert_eq!(produce(&mut c, 1, batch(2, 2_000, Compression::None)).await, 0);
    let (code, hw, bytes) = fetch(&mut c, 1).await;
    assert_eq!((code, hw), (0, 5));
    assert!(bytes > 0);
    assert_eq!(list_offsets(&mut c, 1).await, 0);

    let dirs = c.send(&DescribeLogDirsRequest::default().with_topics(None), 4).await.results;
    let code_of = |d: &std::path::Path| dirs.iter().find(|r| r.log_dir.as_str() == d.display().to_string()).map(|r| (r.error_code, r.topics.len()));
    assert_eq!(code_of(a.path()), Some((storage_error, 0)), "the offline dir, with nothing listed in it");
    assert_eq!(code_of(b.path()), Some((0, 1)));

    // A new topic's partitions all land in the online dir.
    let t = create_topics_request::CreatableTopic::default().with_name(name("fresh")).with_num_partitions(2).with_replication_factor(1);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    for p in 0..2 {
        assert_eq!(running.broker.replicas.logs().log_dir_of(&TopicPartition::new("fresh", p)).as_deref(), Some(b.path()));
    }
    let tried = faulty.injected_failures();
    drop(c);
    running.shutdown().await;
    assert_eq!(faulty.injected_failures(), tried, "shutdown touched nothing in the offline dir");
    assert!(!a.path().join(".kafka_cleanshutdown").exists(), "the offline dir is recovered at the next start");

    // A restart (portable backend) recovers the dir from what is on disk: the fsynced records.
    let running = fjord::node::start(config(a.path(), b.path(), addr.port())).await.expect("restart");
    let mut c = Client::connect(running.local_addr).await;
    let (code, hw, bytes) = fetch(&mut c, 0).await;
    assert_eq!(code, 0, "back online after the restart");
    assert!(hw >= 3 && bytes > 0, "the fsynced records are served (hw {hw})");
    assert_eq!(fetch(&mut c, 1).await.1, 5);
    assert_eq!(produce(&mut c, 0, batch(1, 4_000, Compression::None)).await, 0, "appends work again");
    drop(c);
    running.shutdown().await;
}
