//! The outbound broker client (`fjord::client`) against a Fjord broker on 127.0.0.1:0: the
//! version handshake, typed requests at the highest shared version (CreateTopics, Produce,
//! Metadata, Fetch by topic id), many requests pipelined on one connection, and a closed peer.

mod common;

use std::sync::Arc;

use common::TestBroker;
use fjord::client::{BrokerClient, ClientConfig, ClientError};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

#[tokio::test]
async fn a_node_talks_to_a_broker_at_the_highest_shared_versions() {
    let broker = TestBroker::start(&[]).await;
    let client = Arc::new(BrokerClient::connect(broker.addr, ClientConfig::new("broker-1-fetcher-0")).await.expect("connect"));
    assert_eq!(client.version_for::<FetchRequest>().expect("fetch"), 17, "Fjord serves Fetch up to 17, as the crate speaks");

    let topic = CreatableTopic::default().with_name(TopicName(StrBytes::from_static_str("replicated"))).with_num_partitions(2).with_replication_factor(1);
    let created = client.send(&CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5_000)).await.expect("create");
    assert_eq!(created.topics[0].error_code, 0);

    let data = PartitionProduceData::default().with_index(1).with_records(Some(common::batch(3, 1_000, Compression::None)));
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("replicated"))).with_partition_data(vec![data])]);
    let produced = client.send(&produce).await.expect("produce");
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    // Pipelined: many requests in flight on the one connection, each answered to its sender.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let c = client.clone();
        set.spawn(async move {
            let t = MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str("replicated"))));
            c.send(&MetadataRequest::default().with_topics(Some(vec![t]))).await
        });
    }
    let mut topic_id = None;
    while let Some(answer) = set.join_next().await {
        let meta = answer.expect("join").expect("metadata");
        assert_eq!(meta.topics.len(), 1);
        assert_eq!(meta.topics[0].partitions.len(), 2);
        topic_id = Some(meta.topics[0].topic_id);
    }

    // Fetch v17 names the topic by id; the three records come back from offset 0.
    let partition = FetchPartition::default().with_partition(1).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default().with_topic_id(topic_id.expect("id")).with_partitions(vec![partition])]);
    let fetched = client.send(&fetch).await.expect("fetch");
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 3));
    let mut records = p.records.clone().expect("records");
    let batches = RecordBatchDecoder::decode_all(&mut records).expect("decode");
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 3);

    // The broker goes away: waiting requests and new ones fail, nothing hangs.
    broker.stop().await;
    let gone = client.send(&MetadataRequest::default()).await.unwrap_err();
    assert!(matches!(gone, ClientError::Disconnected(_) | ClientError::Timeout(_)), "{gone}");
    assert!(client.is_closed());
}
