//! Partition replication between two brokers on 127.0.0.1:0, with leadership assigned by hand
//! (the metadata quorum that decides it in a cluster is not wired yet): the follower copies the
//! leader's log through Fetch, the leader's high watermark waits for it, acks=all produces are
//! answered only once the follower has the records, and a follower refuses clients.

mod common;

use std::time::Duration;

use common::TestBroker;
use fjord::broker::partition::LeaderAndIsr;
use fjord::broker::replica_manager::now_ms;
use fjord::types::TopicPartition;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// A leader as the fetcher is given it: its address, advertised as that IP.
fn peer(addr: std::net::SocketAddr) -> fjord::client::PeerAddr {
    fjord::client::PeerAddr { host: addr.ip().to_string(), addr }
}

fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

async fn create(b: &TestBroker, topic: &'static str) {
    let mut c = b.client().await;
    let t = CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1);
    let r = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5_000), 7).await;
    assert_eq!(r.topics[0].error_code, 0);
}

fn produce(topic: &'static str, n: usize, acks: i16, timeout_ms: i32) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(0).with_records(Some(common::batch(n, 1_000, Compression::None)));
    ProduceRequest::default().with_acks(acks).with_timeout_ms(timeout_ms).with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])])
}

fn consumer_fetch(topic: &'static str) -> FetchRequest {
    let p = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![p])])
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn a_follower_copies_its_leader_and_acks_all_waits_for_it() {
    let _ = tracing_subscriber::fmt().with_env_filter("fjord=debug").with_test_writer().try_init();
    let leader = TestBroker::start(&["node.id=1"]).await;
    let follower = TestBroker::start(&["node.id=2"]).await;
    create(&leader, "r").await;
    create(&follower, "r").await;
    let tp = TopicPartition::new("r", 0);
    let (lb, fb) = (leader.running.as_ref().unwrap().broker.clone(), follower.running.as_ref().unwrap().broker.clone());
    let state = LeaderAndIsr { leader: 1, leader_epoch: 1, partition_epoch: 1, replicas: vec![1, 2], isr: vec![1, 2] };
    lb.replicas.become_leader(&tp, state.clone(), now_ms()).expect("lead");
    fb.replicas.become_follower(&tp, state).expect("follow");
    let topic_id = lb.metadata.topic("r").expect("topic").id;
    fb.fetchers.follow(&fb, tp.clone(), topic_id, 1, peer(leader.addr), 1);

    // acks=all is answered once the follower has the records: the high watermark waits for it.
    let mut c = leader.client().await;
    let r = c.send(&produce("r", 5, -1, 10_000), 9).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let (end, _, epoch) = fb.replicas.follower_position(&tp).expect("position");
    assert_eq!((end, epoch), (5, Some(1)), "the follower has all five, under the leader's epoch");
    let consumed = c.send(&consumer_fetch("r"), 12).await;
    assert_eq!(consumed.responses[0].partitions[0].high_watermark, 5);

    // The follower takes the leader's high watermark with its next fetch.
    let fb2 = fb.clone();
    let tp2 = tp.clone();
    wait_for(move || fb2.replicas.offsets(&tp2).map(|o| o.high_watermark).unwrap_or(0) == 5).await;

    // A follower takes no produce; a consumer's fetch it serves from v11 up to its high watermark
    // (KIP-392, as Kafka's followers do), and refuses before v11.
    let mut fc = follower.client().await;
    let refused = fc.send(&produce("r", 1, 1, 1_000), 9).await;
    assert_eq!(refused.responses[0].partition_responses[0].error_code, E::NotLeaderOrFollower.code());
    let served = fc.send(&consumer_fetch("r"), 12).await;
    assert_eq!((served.responses[0].partitions[0].error_code, served.responses[0].partitions[0].high_watermark), (0, 5));
    let refused = fc.send(&consumer_fetch("r"), 10).await;
    assert_eq!(refused.responses[0].partitions[0].error_code, E::NotLeaderOrFollower.code());

    // With the follower stopped (and the ISR unchanged: no controller shrinks it here), acks=all
    // times out while acks=1 is answered at once.
    fb.fetchers.stop();
    let r = c.send(&produce("r", 2, -1, 500), 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, E::RequestTimedOut.code());
    let r = c.send(&produce("r", 2, 1, 500), 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let consumed = c.send(&consumer_fetch("r"), 12).await;
    assert_eq!(consumed.responses[0].partitions[0].high_watermark, 5, "consumers see only what the ISR has");

    // The follower resumes and catches up: the high watermark moves to the leader's end.
    fb.fetchers.follow(&fb, tp.clone(), topic_id, 1, peer(leader.addr), 1);
    let lb2 = lb.clone();
    let tp2 = tp.clone();
    wait_for(move || lb2.replicas.offsets(&tp2).map(|o| o.high_watermark).unwrap_or(0) == 9).await;
    assert_eq!(fb.replicas.follower_position(&tp).expect("position").0, 9);

    follower.stop().await;
    leader.stop().await;
}

#[tokio::test]
async fn a_follower_cuts_a_tail_its_new_leader_never_had() {
    let a = TestBroker::start(&["node.id=1"]).await;
    let b = TestBroker::start(&["node.id=2"]).await;
    create(&a, "d").await;
    create(&b, "d").await;
    let tp = TopicPartition::new("d", 0);
    let (ab, bb) = (a.running.as_ref().unwrap().broker.clone(), b.running.as_ref().unwrap().broker.clone());

    // Epoch 1: b leads alone and takes 3 records a never copies.
    let alone = LeaderAndIsr { leader: 2, leader_epoch: 1, partition_epoch: 1, replicas: vec![1, 2], isr: vec![2] };
    bb.replicas.become_leader(&tp, alone.clone(), now_ms()).expect("lead");
    ab.replicas.become_follower(&tp, alone).expect("follow");
    let mut bc = b.client().await;
    assert_eq!(bc.send(&produce("d", 3, 1, 1_000), 9).await.responses[0].partition_responses[0].error_code, 0);

    // Epoch 2: a leads (an unclean choice, made by hand) and takes 2 records; b follows it and
    // must drop its 3 records of epoch 1, which a never had.
    let moved = LeaderAndIsr { leader: 1, leader_epoch: 2, partition_epoch: 2, replicas: vec![1, 2], isr: vec![1] };
    ab.replicas.become_leader(&tp, moved.clone(), now_ms()).expect("lead");
    bb.replicas.become_follower(&tp, moved).expect("follow");
    let mut ac = a.client().await;
    assert_eq!(ac.send(&produce("d", 2, 1, 1_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    bb.fetchers.follow(&bb, tp.clone(), ab.metadata.topic("d").expect("topic").id, 1, peer(a.addr), 2);
    let bb2 = bb.clone();
    let tp2 = tp.clone();
    wait_for(move || bb2.replicas.follower_position(&tp2).map(|p| (p.0, p.2)).ok() == Some((2, Some(2)))).await;
    let fetched = ac.send(&consumer_fetch("d"), 12).await;
    let mut from_a = fetched.responses[0].partitions[0].records.clone().expect("records");
    let a_batches = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut from_a).expect("decode");
    assert_eq!(a_batches.iter().map(|b| b.records.len()).sum::<usize>(), 2, "the leader's two records, and nothing of b's old tail");

    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_tail_from_an_epoch_the_leader_never_had_is_cut_even_when_the_leaders_log_is_longer() {
    let a = TestBroker::start(&["node.id=1"]).await;
    let b = TestBroker::start(&["node.id=2"]).await;
    create(&a, "e").await;
    create(&b, "e").await;
    let tp = TopicPartition::new("e", 0);
    let (ab, bb) = (a.running.as_ref().unwrap().broker.clone(), b.running.as_ref().unwrap().broker.clone());
    let topic_id = ab.metadata.topic("e").expect("topic").id;
    let (mut ac, mut bc) = (a.client().await, b.client().await);
    let state = |leader, leader_epoch, isr: &[i32]| LeaderAndIsr { leader, leader_epoch, partition_epoch: leader_epoch, replicas: vec![1, 2], isr: isr.to_vec() };

    // Epoch 1: a leads, b copies 0..5.
    ab.replicas.become_leader(&tp, state(1, 1, &[1, 2]), now_ms()).expect("lead");
    bb.replicas.become_follower(&tp, state(1, 1, &[1, 2])).expect("follow");
    bb.fetchers.follow(&bb, tp.clone(), topic_id, 1, peer(a.addr), 1);
    assert_eq!(ac.send(&produce("e", 5, -1, 10_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    bb.fetchers.unfollow(&tp);
    // Epoch 2: a goes on alone and writes 5..10, which b never copies.
    ab.replicas.become_leader(&tp, state(1, 2, &[1]), now_ms()).expect("lead");
    bb.replicas.become_follower(&tp, state(1, 2, &[1])).expect("follow");
    assert_eq!(ac.send(&produce("e", 5, 1, 1_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    // Epoch 3: b leads (an unclean choice, by hand) and writes 5..8 in epoch 3.
    bb.replicas.become_leader(&tp, state(2, 3, &[2]), now_ms()).expect("lead");
    ab.replicas.become_follower(&tp, state(2, 3, &[2])).expect("follow");
    assert_eq!(bc.send(&produce("e", 3, 1, 1_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    // Epoch 4: a leads again with its 10 records plus one; b follows. Asked about epoch 3, a
    // answers (epoch 2, end 10): past b's end of 8, yet b's 5..8 are not a's. b must cut to 5
    // (where its epochs <= 2 ended) and copy a's 5..11.
    ab.replicas.become_leader(&tp, state(1, 4, &[1]), now_ms()).expect("lead");
    bb.replicas.become_follower(&tp, state(1, 4, &[1])).expect("follow");
    assert_eq!(ac.send(&produce("e", 1, 1, 1_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    bb.fetchers.follow(&bb, tp.clone(), topic_id, 1, peer(a.addr), 4);
    let bb2 = bb.clone();
    let tp2 = tp.clone();
    wait_for(move || bb2.replicas.offsets(&tp2).map(|o| o.high_watermark).unwrap_or(0) == 11).await;
    let (_, copied) = bb.replicas.read(&tp, 5, 1 << 20).expect("read");
    let mut copied = copied;
    let batches = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut copied).expect("decode");
    let epochs: Vec<(i64, i32)> = batches.iter().flat_map(|b| b.records.iter().map(|r| (r.offset, r.partition_leader_epoch))).collect();
    assert_eq!(epochs, vec![(5, 2), (6, 2), (7, 2), (8, 2), (9, 2), (10, 4)], "b holds a's records from 5 on, none of its own epoch 3");

    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_follower_whose_latest_epoch_had_no_records_settles_and_fetches() {
    let a = TestBroker::start(&["node.id=1"]).await;
    let b = TestBroker::start(&["node.id=2"]).await;
    create(&a, "z").await;
    create(&b, "z").await;
    let tp = TopicPartition::new("z", 0);
    let (ab, bb) = (a.running.as_ref().unwrap().broker.clone(), b.running.as_ref().unwrap().broker.clone());
    let topic_id = ab.metadata.topic("z").expect("topic").id;
    let state = |leader, leader_epoch, isr: &[i32]| LeaderAndIsr { leader, leader_epoch, partition_epoch: leader_epoch, replicas: vec![1, 2], isr: isr.to_vec() };

    // Epoch 1: a leads and writes 0..5, b copies them.
    ab.replicas.become_leader(&tp, state(1, 1, &[1, 2]), now_ms()).expect("lead");
    bb.replicas.become_follower(&tp, state(1, 1, &[1, 2])).expect("follow");
    bb.fetchers.follow(&bb, tp.clone(), topic_id, 1, peer(a.addr), 1);
    let mut ac = a.client().await;
    assert_eq!(ac.send(&produce("z", 5, -1, 10_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    bb.fetchers.unfollow(&tp);
    // Epochs 2 and 3 are led by b, then a, without a record written.
    bb.replicas.become_leader(&tp, state(2, 2, &[1, 2]), now_ms()).expect("lead");
    ab.replicas.become_follower(&tp, state(2, 2, &[1, 2])).expect("follow");
    ab.replicas.become_leader(&tp, state(1, 3, &[1, 2]), now_ms()).expect("lead");
    bb.replicas.become_follower(&tp, state(1, 3, &[1, 2])).expect("follow");
    // Epoch 4: b leads and writes one record; a follows. Asked about epoch 3, b answers for its
    // epoch 2 (ending at 5, a's end), which a does not know: a must forget its empty epoch 3,
    // agree on epoch 1 and fetch.
    bb.replicas.become_leader(&tp, state(2, 4, &[2]), now_ms()).expect("lead");
    ab.replicas.become_follower(&tp, state(2, 4, &[2])).expect("follow");
    let mut bc = b.client().await;
    assert_eq!(bc.send(&produce("z", 1, 1, 1_000), 9).await.responses[0].partition_responses[0].error_code, 0);
    ab.fetchers.follow(&ab, tp.clone(), bb.metadata.topic("z").expect("topic").id, 2, peer(b.addr), 4);
    let ab2 = ab.clone();
    let tp2 = tp.clone();
    wait_for(move || ab2.replicas.follower_position(&tp2).map(|p| (p.0, p.2)).ok() == Some((6, Some(4)))).await;

    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn groups_of_an_offsets_partition_led_elsewhere_are_not_coordinated_here() {
    let b = TestBroker::start(&["node.id=1"]).await;
    let mut c = b.client().await;
    let found = c.send(&FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![StrBytes::from_static_str("g")]), 4).await;
    assert_eq!(found.coordinators[0].error_code, 0, "creates __consumer_offsets and answers this broker");
    let broker = b.running.as_ref().unwrap().broker.clone();
    let partitions = broker.metadata.topic("__consumer_offsets").expect("offsets topic").partitions;
    let tp = TopicPartition::new("__consumer_offsets", fjord::records::internal::partition_for("g", partitions));
    let elsewhere = LeaderAndIsr { leader: 2, leader_epoch: 1, partition_epoch: 1, replicas: vec![1, 2], isr: vec![2] };
    broker.replicas.become_follower(&tp, elsewhere).expect("follow");

    let found = c.send(&FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![StrBytes::from_static_str("g")]), 4).await;
    assert_eq!(found.coordinators[0].error_code, E::CoordinatorNotAvailable.code(), "no coordinator handed out for a partition led elsewhere");
    let hb = c.send(&HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))).with_member_id(StrBytes::from_static_str("m")).with_generation_id(1), 4).await;
    assert_eq!(hb.error_code, E::NotCoordinator.code());
    let other = c.send(&FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![StrBytes::from_static_str("other-group-on-another-partition")]), 4).await;
    if fjord::records::internal::partition_for("other-group-on-another-partition", partitions) != tp.partition {
        assert_eq!(other.coordinators[0].error_code, 0, "groups of partitions led here are unaffected");
    }
    b.stop().await;
}

/// KIP-320: a consumer's Fetch (v12+) names the epoch of the last batch it fetched; when this
/// log has no such history up to the fetch offset (it was truncated under the consumer, an
/// unclean election), the answer carries no records and the diverging epoch with where it ends
/// here, so the consumer detects the truncation instead of reading records that are not the ones
/// it skipped.
#[tokio::test]
async fn a_consumer_fetch_whose_last_fetched_epoch_diverged_gets_the_diverging_epoch() {
    let leader = TestBroker::start(&["node.id=1"]).await;
    create(&leader, "k").await;
    let tp = TopicPartition::new("k", 0);
    let lb = leader.running.as_ref().unwrap().broker.clone();
    let mut c = leader.client().await;
    // Epoch 1 writes offsets 0..5, epoch 3 writes 5..10.
    for epoch in [1, 3] {
        lb.replicas.become_leader(&tp, LeaderAndIsr { leader: 1, leader_epoch: epoch, partition_epoch: epoch, replicas: vec![1], isr: vec![1] }, now_ms()).expect("lead");
        let r = c.send(&produce("k", 5, -1, 10_000), 9).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = |offset: i64, last_fetched_epoch: i32| {
        let mut f = consumer_fetch("k");
        f.topics[0].partitions[0] = f.topics[0].partitions[0].clone().with_fetch_offset(offset).with_last_fetched_epoch(last_fetched_epoch).with_current_leader_epoch(3);
        f
    };
    // Epoch 2 up to offset 7: never led here; this log's epoch 1 ended at 5.
    let r = c.send(&fetch(7, 2), 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.diverging_epoch.epoch, p.diverging_epoch.end_offset), (0, 1, 5));
    assert!(p.records.as_ref().is_none_or(|r| r.is_empty()), "no records with a diverging epoch");
    assert_eq!(p.high_watermark, 10);
    // A consistent history reads on, with no diverging epoch.
    let r = c.send(&fetch(5, 1), 12).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.diverging_epoch.epoch, p.diverging_epoch.end_offset), (-1, -1));
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    drop(leader);
}
