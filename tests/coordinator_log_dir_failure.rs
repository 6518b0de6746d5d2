//! Wire tests of the coordinators on a failed log dir: a broker on 127.0.0.1:0 with two log dirs
//! on the fault-injecting backend, `__consumer_offsets` and `__transaction_state` with one
//! partition in each dir. After a write EIO in one dir, the groups and transactional ids whose
//! partition is there answer NOT_COORDINATOR and FindCoordinator hands out no coordinator for
//! them (COORDINATOR_NOT_AVAILABLE), while those on the other dir keep working.

mod common;

use std::sync::Arc;

use common::*;
use fjord::config::Config;
use fjord::group::OFFSETS_TOPIC;
use fjord::records::internal::partition_for;
use fjord::storage::io::{Backend, FaultConfig, FaultOp, FaultyIo, StdIo};
use fjord::txn::TRANSACTION_STATE_TOPIC;
use fjord::types::TopicPartition;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn config(a: &std::path::Path, b: &std::path::Path) -> Config {
    let o = [
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        format!("log.dirs={},{}", a.display(), b.display()),
        "offsets.topic.num.partitions=2".to_string(),
        "transaction.state.log.num.partitions=2".to_string(),
        "fjord.http.listener=none".to_string(),
    ];
    Config::load(None, &o).expect("test config")
}

/// The first id (prefix0, prefix1, ...) whose internal partition (of 2) is `partition`.
fn id_on(prefix: &str, partition: i32) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|id| partition_for(id, 2) == partition).expect("some id hashes there")
}

/// (error code, node id) of a v3 FindCoordinator (one key) and of a v4 one (a list of keys).
async fn find(c: &mut Client, key_type: i8, key: &str) -> [(i16, i32); 2] {
    let v3 = c.send(&FindCoordinatorRequest::default().with_key_type(key_type).with_key(s(key)), 3).await;
    let v4 = c.send(&FindCoordinatorRequest::default().with_key_type(key_type).with_coordinator_keys(vec![s(key)]), 4).await;
    [(v3.error_code, v3.node_id.0), (v4.coordinators[0].error_code, v4.coordinators[0].node_id.0)]
}

/// The code of a simple (no member) OffsetCommit of `t`-0 at `offset` for `group`.
async fn commit(c: &mut Client, group: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset),
        ])]);
    c.send(&req, 8).await.topics[0].partitions[0].error_code
}

/// The committed offset of `t`-0 for `group` (OffsetFetch v7), or the error code.
async fn committed(c: &mut Client, group: &str) -> Result<i64, i16> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default().with_name(TopicName(s("t"))).with_partition_indexes(vec![0])]));
    let resp = c.send(&req, 7).await;
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    let p = &resp.topics[0].partitions[0];
    if p.error_code != 0 { Err(p.error_code) } else { Ok(p.committed_offset) }
}

/// (error code, producer id) of InitProducerId for a transactional id.
async fn init_producer_id(c: &mut Client, transactional_id: &str) -> (i16, i64) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(transactional_id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let resp = c.send(&req, 4).await;
    (resp.error_code, resp.producer_id.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_transactional_ids_on_a_failed_log_dir_answer_not_coordinator_and_are_not_handed_out_while_the_other_dir_serves() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let faulty = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
    let backend = Backend { io: Arc::new(faulty.clone()), name: "faulty", uring_stats: None, budget: None };
    let running = fjord::node::start_with_backend(config(a.path(), b.path()), backend).await.expect("broker starts");
    let node = running.broker.config.node_id;
    let mut c = Client::connect(running.local_addr).await;

    let (group_a, group_b) = (id_on("group-", 0), id_on("group-", 1));
    let (txn_a, txn_b) = (id_on("txn-", 0), id_on("txn-", 1));
    // The first lookups create the internal topics; each new partition goes to the dir holding
    // the fewest, the first dir on a tie: partition 0 of each in `a`, partition 1 in `b`.
    assert_eq!(find(&mut c, 0, &group_a).await, [(0, node); 2]);
    assert_eq!(find(&mut c, 1, &txn_a).await, [(0, node); 2]);
    let logs = running.broker.replicas.logs();
    for topic in [OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC] {
        assert_eq!(logs.log_dir_of(&TopicPartition::new(topic, 0)).as_deref(), Some(a.path()), "{topic}-0 in the dir that fails");
        assert_eq!(logs.log_dir_of(&TopicPartition::new(topic, 1)).as_deref(), Some(b.path()), "{topic}-1 in the healthy dir");
    }
    let t = create_topics_request::CreatableTopic::default().with_name(TopicName(s("t"))).with_num_partitions(1).with_replication_factor(1);
    assert_eq!(c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code, 0);
    assert_eq!(commit(&mut c, &group_a, 1).await, 0);
    assert_eq!(commit(&mut c, &group_b, 1).await, 0);
    assert_eq!(init_producer_id(&mut c, &txn_a).await.0, 0);
    assert_eq!(init_producer_id(&mut c, &txn_b).await.0, 0);

    // Every write in `a` fails with EIO from now on: the first one takes the dir offline.
    faulty.inject(a.path(), FaultOp::Write, libc::EIO);
    let not_coordinator = E::NotCoordinator.code();
    assert_eq!(commit(&mut c, &group_a, 2).await, not_coordinator, "the write failed on the disk");
    faulty.heal();
    assert!(logs.offline_error(&TopicPartition::new(OFFSETS_TOPIC, 0)).is_some(), "the dir is offline");
    assert_eq!(commit(&mut c, &group_a, 3).await, not_coordinator, "the partition is offline, even with the disk healed");
    assert_eq!(committed(&mut c, &group_a).await, Err(not_coordinator), "reads of its groups too, as Kafka unloads them");
    let kept = running.broker.groups.fetch_offsets(&group_a, None);
    assert_eq!(kept[0].1[0].1.as_ref().map(|o| o.offset), Some(1), "no failed commit counts");
    let hb = HeartbeatRequest::default().with_group_id(GroupId(s(&group_a))).with_generation_id(1).with_member_id(s("m"));
    assert_eq!(c.send(&hb, 4).await.error_code, not_coordinator);
    assert_eq!(init_producer_id(&mut c, &txn_a).await.0, not_coordinator);

    // No coordinator is handed out for them: clients back off and look again.
    let unavailable = (E::CoordinatorNotAvailable.code(), -1);
    assert_eq!(find(&mut c, 0, &group_a).await, [unavailable; 2]);
    assert_eq!(find(&mut c, 1, &txn_a).await, [unavailable; 2]);

    // The groups and ids of the healthy dir are served as before.
    assert_eq!(find(&mut c, 0, &group_b).await, [(0, node); 2]);
    assert_eq!(find(&mut c, 1, &txn_b).await, [(0, node); 2]);
    assert_eq!(commit(&mut c, &group_b, 2).await, 0);
    assert_eq!(committed(&mut c, &group_b).await, Ok(2));
    let (code, _) = init_producer_id(&mut c, &txn_b).await;
    assert_eq!(code, 0, "an epoch bump is written to the healthy dir");

    drop(c);
    running.shutdown().await;
}

/// Probe, not a check: the same requests against any broker (the reference Kafka), to compare
/// the answers. `FJORD_PROBE_ADDR=127.0.0.1:PORT FJORD_PROBE_PHASE=setup|after cargo test --test
/// coordinator_log_dir_failure probe -- --ignored --nocapture`; `setup` creates the internal
/// topics (2 partitions each, as configured on the broker) and `t`, and commits; `after` (once
/// the dir of partition 0 or 1 is failed) prints each answer.
#[tokio::test]
#[ignore]
async fn probe_coordinator_answers_of_a_broker() {
    let addr = std::env::var("FJORD_PROBE_ADDR").expect("FJORD_PROBE_ADDR").parse().expect("an address");
    let phase = std::env::var("FJORD_PROBE_PHASE").unwrap_or_else(|_| "after".into());
    let mut c = Client::connect(addr).await;
    for p in 0..2 {
        let (group, txn) = (id_on("group-", p), id_on("txn-", p));
        if phase == "setup" {
            println!("partition {p}: find group {group} {:?}, find txn {txn} {:?}", find(&mut c, 0, &group).await, find(&mut c, 1, &txn).await);
            if p == 0 {
                let t = create_topics_request::CreatableTopic::default().with_name(TopicName(s("t"))).with_num_partitions(1).with_replication_factor(1);
                println!("create t: {}", c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await.topics[0].error_code);
            }
        }
        println!(
            "partition {p}: commit {group} {}, committed {:?}, init_producer_id {txn} {:?}, find group {:?}, find txn {:?}",
            commit(&mut c, &group, 5).await,
            committed(&mut c, &group).await,
            init_producer_id(&mut c, &txn).await,
            find(&mut c, 0, &group).await,
            find(&mut c, 1, &txn).await
        );
    }
}
