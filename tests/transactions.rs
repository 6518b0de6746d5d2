//! Wire tests of transactions, Kafka's classic protocol: the coordinator APIs (InitProducerId,
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn) with the exact error codes Kafka
//! gives, what read_committed readers see (the last stable offset, aborted transactions, markers),
//! offsets committed inside a transaction, the admin APIs (DescribeTransactions, ListTransactions,
//! DescribeProducers), transactions surviving a restart and being aborted at their timeout.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{BatchDecodeInfo, Record, RecordBatchDecoder};

const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn tid(v: &str) -> TransactionalId {
    TransactionalId(s(v))
}

async fn create_topic(c: &mut Client, topic: &str, partitions: i32) {
    let t = create_topics_request::CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(1);
    let resp = c.send(&CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(5000), 7).await;
    assert_eq!(resp.topics[0].error_code, 0, "create {topic}");
}

/// InitProducerId for a transactional id: (error, producer id, epoch).
async fn init(c: &mut Client, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(tid(id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.send(&req, 4).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// InitProducerId that must succeed.
async fn init_ok(c: &mut Client, id: &str, timeout_ms: i32) -> (i64, i16) {
    let (code, pid, epoch) = init(c, id, timeout_ms).await;
    assert_eq!(code, 0, "InitProducerId {id}");
    assert!(pid >= 0);
    (pid, epoch)
}

fn txn_topics(parts: &[(&str, &[i32])]) -> Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic> {
    parts.iter().map(|(t, ps)| add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(name(t)).with_partitions(ps.to_vec())).collect()
}

/// AddPartitionsToTxn at v0-3 (one transaction): every (topic, partition, code) of the answer.
async fn add_partitions(c: &mut Client, id: &str, pid: i64, epoch: i16, parts: &[(&str, &[i32])], version: i16) -> Vec<(String, i32, i16)> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid(id))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(txn_topics(parts));
    let r = c.send(&req, version).await;
    assert!(r.results_by_transaction.is_empty(), "v{version} answers by topic");
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.partition_error_code)))
        .collect()
}

/// AddPartitionsToTxn v3 of one topic's partitions: the single code all of them got.
async fn add_partitions_code(c: &mut Client, id: &str, pid: i64, epoch: i16, topic: &str, parts: &[i32], version: i16) -> i16 {
    let results = add_partitions(c, id, pid, epoch, &[(topic, parts)], version).await;
    assert_eq!(results.len(), parts.len());
    let code = results[0].2;
    assert!(results.iter().all(|r| r.2 == code), "{results:?}");
    code
}

async fn end_txn(c: &mut Client, id: &str, pid: i64, epoch: i16, commit: bool, version: i16) -> i16 {
    let req = EndTxnRequest::default().with_transactional_id(tid(id)).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(commit);
    c.send(&req, version).await.error_code
}

/// One transactional batch of `n` records from a producer, sequences from `first_seq`.
fn txn_batch(n: usize, pid: i64, epoch: i16, first_seq: i32) -> Bytes {
    // Timestamps of now, as a producer's: the markers carry the broker's clock, and a segment rolls
    // once a batch comes more than segment.ms after its first batch's timestamp (as Kafka's).
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let recs = (0..n).map(|i| record(i as i64, now_ms + i as i64, &format!("k{i}"), format!("txn-{i}").as_bytes())).collect();
    producer_batch(recs, (pid, epoch, first_seq), true)
}

/// Produce v9 of one batch with the request's transactional id: (error, base offset).
async fn produce(c: &mut Client, id: Option<&str>, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default().with_transactional_id(id.map(tid)).with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))]),
    ]);
    let p = &c.send(&req, 9).await.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// What a fetch of one partition answered.
#[derive(Debug)]
struct Fetched {
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    /// (producer id, first offset); None when the field was null.
    aborted: Option<Vec<(i64, i64)>>,
    batches: Vec<BatchDecodeInfo>,
    records: Bytes,
}

impl Fetched {
    /// Data (non-control) records.
    fn data_records(&self) -> Vec<Record> {
        RecordBatchDecoder::decode_all(&mut self.records.clone()).unwrap().into_iter().flat_map(|s| s.records).filter(|r| !r.control).collect()
    }

    /// The control records' types (0 abort, 1 commit), in log order.
    fn markers(&self) -> Vec<i16> {
        RecordBatchDecoder::decode_all(&mut self.records.clone())
            .unwrap()
            .into_iter()
            .flat_map(|s| s.records)
            .filter(|r| r.control)
            .map(|r| {
                let k = r.key.expect("a control record has a key");
                i16::from_be_bytes([k[2], k[3]])
            })
            .collect()
    }
}

/// Fetch v11 of one partition from `offset`, answered at once.
async fn fetch(c: &mut Client, topic: &str, partition: i32, offset: i64, isolation: i8) -> Fetched {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation)
        .with_topics(vec![fetch_request::FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ])]);
    let resp = c.send(&req, 11).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    Fetched {
        error: p.error_code,
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        aborted: p.aborted_transactions.as_ref().map(|v| v.iter().map(|a| (a.producer_id.0, a.first_offset)).collect()),
        batches: RecordBatchDecoder::decode_batch_info(&mut records.clone()).unwrap(),
        records,
    }
}

/// ListOffsets v5 latest (-1) of one partition at an isolation level.
async fn latest(c: &mut Client, topic: &str, partition: i32, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation).with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(-1)]),
    ]);
    let p = &c.send(&req, 5).await.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

async fn describe_txn(c: &mut Client, id: &str) -> describe_transactions_response::TransactionState {
    let r = c.send(&DescribeTransactionsRequest::default().with_transactional_ids(vec![tid(id)]), 0).await;
    assert_eq!(r.transaction_states.len(), 1);
    r.transaction_states[0].clone()
}

/// DescribeTransactions' partitions as (topic, partition), sorted.
fn txn_partitions(t: &describe_transactions_response::TransactionState) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = t.topics.iter().flat_map(|d| d.partitions.iter().map(|p| (d.topic.0.to_string(), *p))).collect();
    v.sort();
    v
}

/// DescribeProducers v0 of one partition: (producer id, epoch, last sequence, current txn start offset).
async fn producers(c: &mut Client, topic: &str, partition: i32) -> Vec<(i64, i32, i32, i64)> {
    let req = DescribeProducersRequest::default()
        .with_topics(vec![describe_producers_request::TopicRequest::default().with_name(name(topic)).with_partition_indexes(vec![partition])]);
    let r = c.send(&req, 0).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.active_producers.iter().map(|a| (a.producer_id.0, a.producer_epoch, a.last_sequence, a.current_txn_start_offset)).collect()
}

#[tokio::test]
async fn a_committed_transaction_is_held_back_from_read_committed_until_its_markers_and_commit_retries_are_idempotent() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "tx", 2).await;
    let found = c.send(&FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![s("t1")]), 4).await;
    let coord = &found.coordinators[0];
    assert_eq!((coord.error_code, coord.key.as_str(), coord.host.as_str(), coord.port), (0, "t1", "127.0.0.1", b.addr.port() as i32));

    let (pid, epoch) = init_ok(&mut c, "t1", 60_000).await;
    assert_eq!(epoch, 0, "a new transactional id starts at epoch 0");
    let added = add_partitions(&mut c, "t1", pid, epoch, &[("tx", &[0, 1])], 3).await;
    assert_eq!(added, vec![("tx".to_string(), 0, 0), ("tx".to_string(), 1, 0)]);
    for p in 0..2 {
        assert_eq!(produce(&mut c, Some("t1"), "tx", p, txn_batch(3, pid, epoch, 0)).await, (0, 0), "transactional produce to tx-{p}");
    }
    for p in 0..2 {
        let f = fetch(&mut c, "tx", p, 0, READ_COMMITTED).await;
        assert_eq!((f.error, f.high_watermark, f.last_stable_offset), (0, 3, 0), "the open transaction holds the LSO at its first offset");
        assert!(f.batches.is_empty(), "nothing below the LSO: {:?}", f.batches);
        assert_eq!(f.aborted.as_deref(), Some(&[][..]));
        let f = fetch(&mut c, "tx", p, 0, READ_UNCOMMITTED).await;
        assert_eq!(f.data_records().len(), 3, "read_uncommitted sees the open transaction's records");
        assert!(f.batches[0].transactional && f.batches[0].producer_id == pid);
    }
    assert_eq!(end_txn(&mut c, "t1", pid, epoch, true, 3).await, 0, "commit");
    for p in 0..2 {
        let f = fetch(&mut c, "tx", p, 0, READ_COMMITTED).await;
        assert_eq!((f.error, f.high_watermark, f.last_stable_offset), (0, 4, 4), "the commit marker releases the LSO");
        assert_eq!(f.aborted.as_deref(), Some(&[][..]));
        let values: Vec<Bytes> = f.data_records().into_iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(values, vec![Bytes::from_static(b"txn-0"), Bytes::from_static(b"txn-1"), Bytes::from_static(b"txn-2")]);
        assert_eq!(f.markers(), vec![1], "one commit marker");
        let marker = f.batches.last().unwrap();
        assert!(marker.control && marker.transactional && marker.producer_id == pid && marker.min_offset == 3);
    }
    assert_eq!(end_txn(&mut c, "t1", pid, epoch, true, 3).await, 0, "a retried commit succeeds again");
    assert_eq!(end_txn(&mut c, "t1", pid, epoch, false, 3).await, E::InvalidTxnState.code(), "abort after commit");
    assert_eq!(fetch(&mut c, "tx", 0, 0, READ_COMMITTED).await.high_watermark, 4, "the retry wrote no second marker");
    b.stop().await;
}

#[tokio::test]
async fn an_aborted_transaction_is_listed_for_read_committed_and_list_offsets_read_committed_answers_the_lso() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "ab", 1).await;
    let (pid, epoch) = init_ok(&mut c, "t2", 60_000).await;
    // A committed transaction (0..=1, marker 2), then an aborted one (3..=4, marker 5) at the
    // same epoch: sequences go on across the transactions.
    assert_eq!(add_partitions_code(&mut c, "t2", pid, epoch, "ab", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t2"), "ab", 0, txn_batch(2, pid, epoch, 0)).await, (0, 0));
    assert_eq!(end_txn(&mut c, "t2", pid, epoch, true, 3).await, 0);
    assert_eq!(add_partitions_code(&mut c, "t2", pid, epoch, "ab", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t2"), "ab", 0, txn_batch(2, pid, epoch, 2)).await, (0, 3));
    assert_eq!(end_txn(&mut c, "t2", pid, epoch, false, 3).await, 0, "abort");
    assert_eq!(end_txn(&mut c, "t2", pid, epoch, false, 3).await, 0, "a retried abort succeeds again");
    assert_eq!(end_txn(&mut c, "t2", pid, epoch, true, 3).await, E::InvalidTxnState.code(), "commit after abort");

    let f = fetch(&mut c, "ab", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.error, f.high_watermark, f.last_stable_offset), (0, 6, 6));
    assert_eq!(f.aborted, Some(vec![(pid, 3)]), "only the aborted transaction is listed, with its first offset");
    assert_eq!(f.markers(), vec![1, 0], "commit marker, then abort marker");
    assert_eq!(f.data_records().len(), 4, "the records come back; the client drops the aborted ones");
    let f = fetch(&mut c, "ab", 0, 4, READ_COMMITTED).await;
    assert_eq!(f.aborted, Some(vec![(pid, 3)]), "a fetch inside the aborted range lists it too");

    let f = fetch(&mut c, "ab", 0, 0, READ_UNCOMMITTED).await;
    assert!(f.aborted.as_ref().is_none_or(|a| a.is_empty()), "read_uncommitted lists no aborted transactions: {:?}", f.aborted);
    assert_eq!(f.data_records().len(), 4);
    assert_eq!(f.batches.len(), 4, "two data batches and two markers");
    let control: Vec<bool> = f.batches.iter().map(|h| h.control).collect();
    assert_eq!(control, vec![false, true, false, true]);
    assert_eq!(f.batches.last().unwrap().min_offset, 5);

    // A third transaction, left open, holds ListOffsets read_committed latest at its first offset.
    let (pid3, e3) = init_ok(&mut c, "t3", 60_000).await;
    assert_ne!(pid3, pid);
    assert_eq!(add_partitions_code(&mut c, "t3", pid3, e3, "ab", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t3"), "ab", 0, txn_batch(2, pid3, e3, 0)).await, (0, 6));
    let committed = latest(&mut c, "ab", 0, READ_COMMITTED).await;
    let uncommitted = latest(&mut c, "ab", 0, READ_UNCOMMITTED).await;
    assert_eq!((committed, uncommitted), (6, 8));
    assert_eq!(fetch(&mut c, "ab", 0, 0, READ_COMMITTED).await.last_stable_offset, committed, "ListOffsets and Fetch agree on the LSO");
    for offset in [7, 8] {
        let f = fetch(&mut c, "ab", 0, offset, READ_COMMITTED).await;
        assert_eq!((f.error, f.high_watermark, f.last_stable_offset), (0, 8, 6), "read_committed fetch at {offset}, above the LSO");
        assert!(f.batches.is_empty(), "nothing above the LSO: {:?}", f.batches);
    }
    assert_eq!(end_txn(&mut c, "t3", pid3, e3, true, 3).await, 0);
    assert_eq!(latest(&mut c, "ab", 0, READ_COMMITTED).await, 9, "after its marker the LSO is the high watermark");
    b.stop().await;
}

#[tokio::test]
async fn the_coordinator_refuses_bad_timeouts_unknown_partitions_wrong_producers_stale_epochs_and_stray_writes() {
    let b = TestBroker::start(&["transaction.max.timeout.ms=60000"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "known", 2).await;
    for timeout in [0, -1, 60_001] {
        let (code, pid, epoch) = init(&mut c, "t", timeout).await;
        assert_eq!((code, pid, epoch), (E::InvalidTransactionTimeout.code(), -1, -1), "timeout {timeout}");
    }
    let (pid, e0) = init_ok(&mut c, "t", 60_000).await;
    assert_eq!(end_txn(&mut c, "t", pid, e0, true, 3).await, E::InvalidTxnState.code(), "EndTxn with no transaction");

    let r = add_partitions(&mut c, "t", pid, e0, &[("nope", &[0]), ("known", &[0])], 3).await;
    assert_eq!(
        r,
        vec![("nope".to_string(), 0, E::UnknownTopicOrPartition.code()), ("known".to_string(), 0, E::OperationNotAttempted.code())],
        "an unknown topic fails the whole request"
    );
    let r = add_partitions(&mut c, "t", pid, e0, &[("known", &[0, 9])], 3).await;
    assert_eq!(r, vec![("known".to_string(), 0, E::OperationNotAttempted.code()), ("known".to_string(), 9, E::UnknownTopicOrPartition.code())]);
    assert_eq!(describe_txn(&mut c, "t").await.transaction_state.as_str(), "Empty", "nothing was added");

    assert_eq!(add_partitions_code(&mut c, "t", pid + 1000, e0, "known", &[0], 3).await, E::InvalidProducerIdMapping.code(), "wrong producer id");
    assert_eq!(add_partitions_code(&mut c, "unknown-id", pid, e0, "known", &[0], 3).await, E::InvalidProducerIdMapping.code(), "unknown transactional id");
    assert_eq!(end_txn(&mut c, "t", pid + 1000, e0, true, 3).await, E::InvalidProducerIdMapping.code());

    assert_eq!(add_partitions_code(&mut c, "t", pid, e0, "known", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t"), "known", 0, txn_batch(1, pid, e0, 0)).await.0, 0);
    assert_eq!(produce(&mut c, Some("t"), "known", 1, txn_batch(1, pid, e0, 0)).await.0, E::InvalidTxnState.code(), "a partition not in the transaction");
    assert!(fetch(&mut c, "known", 1, 0, READ_UNCOMMITTED).await.batches.is_empty(), "the stray write was not appended");

    // A second producer of the same id: same producer id, bumped epoch; the open transaction is aborted.
    let (pid2, e1) = init_ok(&mut c, "t", 60_000).await;
    assert_eq!(pid2, pid);
    assert!(e1 > e0, "bumped epoch {e1}");
    let f = fetch(&mut c, "known", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.last_stable_offset, f.high_watermark, f.aborted), (2, 2, Some(vec![(pid, 0)])), "the fenced transaction was aborted");
    let d = describe_txn(&mut c, "t").await;
    assert_eq!((d.transaction_state.as_str(), d.producer_epoch), ("Empty", e1));

    for (v, want) in [(0, E::InvalidProducerEpoch), (1, E::InvalidProducerEpoch), (2, E::ProducerFenced), (3, E::ProducerFenced)] {
        assert_eq!(add_partitions_code(&mut c, "t", pid, e0, "known", &[0], v).await, want.code(), "AddPartitionsToTxn v{v} stale epoch");
        assert_eq!(end_txn(&mut c, "t", pid, e0, true, v).await, want.code(), "EndTxn v{v} stale epoch");
    }
    assert_eq!(add_partitions_code(&mut c, "t", pid, e1, "known", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t"), "known", 0, txn_batch(1, pid, e0, 1)).await.0, E::InvalidProducerEpoch.code(), "the fenced producer's write");
    assert_eq!(produce(&mut c, Some("t"), "known", 0, txn_batch(1, pid, e1, 0)).await, (0, 2), "the new epoch writes from sequence 0");
    assert_eq!(end_txn(&mut c, "t", pid, e1, true, 3).await, 0);
    let f = fetch(&mut c, "known", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.last_stable_offset, f.high_watermark), (4, 4));
    assert_eq!(f.markers(), vec![0, 1], "the fencing abort, then the new producer's commit");
    b.stop().await;
}

#[tokio::test]
async fn add_partitions_to_txn_v4_answers_each_transaction_of_a_batch_and_verify_only_adds_nothing() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "v4", 2).await;
    let (pa, ea) = init_ok(&mut c, "a", 60_000).await;
    let (pb, eb) = init_ok(&mut c, "b", 60_000).await;
    let txn = |id: &str, pid: i64, epoch: i16, verify_only: bool, parts: &[i32]| {
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(tid(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(txn_topics(&[("v4", parts)]))
    };
    let codes = |r: &AddPartitionsToTxnResponse| -> Vec<(String, Vec<(String, i32, i16)>)> {
        r.results_by_transaction
            .iter()
            .map(|t| {
                let parts = t
                    .topic_results
                    .iter()
                    .flat_map(|tr| tr.results_by_partition.iter().map(|p| (tr.name.0.to_string(), p.partition_index, p.partition_error_code)))
                    .collect();
                (t.transactional_id.0.to_string(), parts)
            })
            .collect()
    };
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn("a", pa, ea, true, &[0]), txn("b", pb, eb, false, &[0, 1])]);
    let r = c.send(&req, 4).await;
    assert_eq!(r.error_code, 0);
    assert!(r.results_by_topic_v3_and_below.is_empty(), "v4 answers by transaction");
    assert_eq!(
        codes(&r),
        vec![
            ("a".to_string(), vec![("v4".to_string(), 0, E::InvalidTxnState.code())]),
            ("b".to_string(), vec![("v4".to_string(), 0, 0), ("v4".to_string(), 1, 0)]),
        ]
    );
    assert_eq!(describe_txn(&mut c, "a").await.transaction_state.as_str(), "Empty", "verify_only opened nothing");
    let d = describe_txn(&mut c, "b").await;
    assert_eq!((d.transaction_state.as_str(), txn_partitions(&d)), ("Ongoing", vec![("v4".to_string(), 0), ("v4".to_string(), 1)]));

    // Verifying what is in the transaction succeeds; verifying one partition more does not.
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn("b", pb, eb, true, &[1]), txn("a", pa, ea + 1, false, &[0])]);
    let r = c.send(&req, 5).await;
    assert_eq!(
        codes(&r),
        vec![("b".to_string(), vec![("v4".to_string(), 1, 0)]), ("a".to_string(), vec![("v4".to_string(), 0, E::ProducerFenced.code())])]
    );
    let r = c.send(&AddPartitionsToTxnRequest::default().with_transactions(vec![txn("a", pa, ea, true, &[0]), txn("b", pb, eb, true, &[0, 1])]), 4).await;
    assert_eq!(codes(&r)[1].1.iter().map(|p| p.2).collect::<Vec<_>>(), vec![0, 0]);
    assert_eq!(codes(&r)[0].1[0].2, E::InvalidTxnState.code());
    b.stop().await;
}

async fn offset_fetch(c: &mut Client, group: &str, topic: &str, partition: i32, require_stable: bool) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default().with_name(name(topic)).with_partition_indexes(vec![partition])]))
        .with_require_stable(require_stable);
    let r = c.send(&req, 7).await;
    assert_eq!(r.error_code, 0);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

async fn txn_offset_commit(c: &mut Client, id: &str, pid: i64, epoch: i16, group: &str, topic: &str, partition: i32, offset: i64) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(tid(id))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_group_instance_id(None)
        .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default().with_name(name(topic)).with_partitions(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s("m"))),
        ])]);
    let r = c.send(&req, 3).await;
    r.topics[0].partitions[0].error_code
}

#[tokio::test]
async fn offsets_committed_in_a_transaction_are_unstable_until_it_commits_and_need_add_offsets_to_txn() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "in", 2).await;
    let (pid, epoch) = init_ok(&mut c, "t5", 60_000).await;
    let r = c.send(&AddOffsetsToTxnRequest::default().with_transactional_id(tid("t5")).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_group_id(GroupId(s("g"))), 3).await;
    assert_eq!(r.error_code, 0, "AddOffsetsToTxn");
    assert_eq!(txn_offset_commit(&mut c, "t5", pid, epoch, "g", "in", 1, 42).await, 0);
    assert_eq!(offset_fetch(&mut c, "g", "in", 1, true).await.0, E::UnstableOffsetCommit.code(), "require_stable while the transaction is open");
    assert_eq!(offset_fetch(&mut c, "g", "in", 1, false).await, (0, -1), "the pending offset is not committed yet");
    assert_eq!(offset_fetch(&mut c, "g", "in", 0, true).await, (0, -1), "another partition is stable");
    let d = describe_txn(&mut c, "t5").await;
    let parts = txn_partitions(&d);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].0, "__consumer_offsets", "the group's offsets partition is in the transaction");
    assert_eq!(end_txn(&mut c, "t5", pid, epoch, true, 3).await, 0);
    assert_eq!(offset_fetch(&mut c, "g", "in", 1, true).await, (0, 42), "committed with the transaction");
    assert_eq!(offset_fetch(&mut c, "g", "in", 1, false).await, (0, 42));

    // An aborted transaction's offsets are dropped.
    let r = c.send(&AddOffsetsToTxnRequest::default().with_transactional_id(tid("t5")).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_group_id(GroupId(s("g"))), 3).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(txn_offset_commit(&mut c, "t5", pid, epoch, "g", "in", 1, 99).await, 0);
    assert_eq!(end_txn(&mut c, "t5", pid, epoch, false, 3).await, 0);
    assert_eq!(offset_fetch(&mut c, "g", "in", 1, true).await, (0, 42), "the aborted offset never shows");

    let (pid6, e6) = init_ok(&mut c, "t5b", 60_000).await;
    assert_eq!(txn_offset_commit(&mut c, "t5b", pid6, e6, "g", "in", 0, 7).await, E::InvalidTxnState.code(), "without AddOffsetsToTxn");
    assert_eq!(offset_fetch(&mut c, "g", "in", 0, false).await, (0, -1));
    b.stop().await;
}

#[tokio::test]
async fn an_open_transaction_survives_a_restart_holding_the_lso_and_commits_afterwards() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "rs", 1).await;
    let (pid, epoch) = init_ok(&mut c, "t6", 60_000).await;
    assert_eq!(add_partitions_code(&mut c, "t6", pid, epoch, "rs", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t6"), "rs", 0, txn_batch(3, pid, epoch, 0)).await, (0, 0));
    drop(c);
    b.restart().await;

    let mut c = b.client().await;
    let f = fetch(&mut c, "rs", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.error, f.high_watermark, f.last_stable_offset), (0, 3, 0), "the LSO is still held at the transaction's first offset");
    assert!(f.batches.is_empty());
    let d = describe_txn(&mut c, "t6").await;
    assert_eq!((d.error_code, d.transaction_state.as_str(), d.producer_id.0, d.producer_epoch), (0, "Ongoing", pid, epoch));
    assert_eq!(txn_partitions(&d), vec![("rs".to_string(), 0)]);
    assert_eq!(d.transaction_timeout_ms, 60_000);
    assert!(d.transaction_start_time_ms > 0);
    assert_eq!(producers(&mut c, "rs", 0).await, vec![(pid, epoch as i32, 2, 0)], "the partition's producer state survived too");

    assert_eq!(end_txn(&mut c, "t6", pid, epoch, true, 3).await, 0, "the same producer commits after the restart");
    let f = fetch(&mut c, "rs", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.high_watermark, f.last_stable_offset), (4, 4));
    assert_eq!(f.data_records().len(), 3, "the records are readable committed");
    assert_eq!(f.markers(), vec![1]);
    drop(c);
    b.restart().await;

    let mut c = b.client().await;
    let d = describe_txn(&mut c, "t6").await;
    assert_eq!((d.transaction_state.as_str(), d.producer_id.0, d.producer_epoch), ("CompleteCommit", pid, epoch));
    assert!(d.topics.is_empty());
    let f = fetch(&mut c, "rs", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.high_watermark, f.last_stable_offset, f.data_records().len()), (4, 4, 3));
    assert_eq!(end_txn(&mut c, "t6", pid, epoch, true, 3).await, 0, "the commit retried after a restart still succeeds");
    b.stop().await;
}

#[tokio::test]
async fn describe_and_list_transactions_and_describe_producers_show_the_coordinator_and_partition_state() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "adm", 1).await;
    let d = describe_txn(&mut c, "never").await;
    assert_eq!((d.error_code, d.transactional_id.0.as_str()), (E::TransactionalIdNotFound.code(), "never"));

    let (p_open, e_open) = init_ok(&mut c, "open", 60_000).await;
    let (p_idle, _) = init_ok(&mut c, "idle", 60_000).await;
    assert_eq!(add_partitions_code(&mut c, "open", p_open, e_open, "adm", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("open"), "adm", 0, txn_batch(2, p_open, e_open, 0)).await, (0, 0));

    let list = |states: &[&str]| ListTransactionsRequest::default().with_state_filters(states.iter().map(|x| s(x)).collect()).with_duration_filter(-1);
    let ids = |r: &ListTransactionsResponse| {
        let mut v: Vec<(String, i64, String)> =
            r.transaction_states.iter().map(|t| (t.transactional_id.0.to_string(), t.producer_id.0, t.transaction_state.to_string())).collect();
        v.sort();
        v
    };
    let r = c.send(&list(&[]), 1).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(ids(&r), vec![("idle".to_string(), p_idle, "Empty".to_string()), ("open".to_string(), p_open, "Ongoing".to_string())]);
    let r = c.send(&list(&["Ongoing"]), 1).await;
    assert_eq!(ids(&r), vec![("open".to_string(), p_open, "Ongoing".to_string())]);
    assert!(r.unknown_state_filters.is_empty());
    let r = c.send(&list(&["Ongoing", "Bogus"]), 1).await;
    assert_eq!(ids(&r), vec![("open".to_string(), p_open, "Ongoing".to_string())]);
    assert_eq!(r.unknown_state_filters.iter().map(|x| x.to_string()).collect::<Vec<_>>(), vec!["Bogus"]);
    let r = c.send(&list(&["Bogus"]), 1).await;
    assert!(r.transaction_states.is_empty(), "only unknown states match nothing: {:?}", ids(&r));
    assert_eq!(r.unknown_state_filters.len(), 1);
    let r = c.send(&list(&[]).with_producer_id_filters(vec![ProducerId(p_idle)]), 0).await;
    assert_eq!(ids(&r), vec![("idle".to_string(), p_idle, "Empty".to_string())], "v0 by producer id");

    let d = describe_txn(&mut c, "open").await;
    assert_eq!((d.error_code, d.transaction_state.as_str(), d.producer_id.0, d.transaction_timeout_ms), (0, "Ongoing", p_open, 60_000));
    assert_eq!(txn_partitions(&d), vec![("adm".to_string(), 0)]);
    assert_eq!(producers(&mut c, "adm", 0).await, vec![(p_open, e_open as i32, 1, 0)], "the open transaction's first offset");

    assert_eq!(end_txn(&mut c, "open", p_open, e_open, false, 3).await, 0);
    assert_eq!(producers(&mut c, "adm", 0).await, vec![(p_open, e_open as i32, 1, -1)], "no open transaction after the marker");
    assert_eq!(describe_txn(&mut c, "open").await.transaction_state.as_str(), "CompleteAbort");
    let r = c.send(&list(&["Ongoing"]), 1).await;
    assert!(r.transaction_states.is_empty());
    let r = c.send(&DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default().with_name(name("nope")).with_partition_indexes(vec![0])]), 0).await;
    assert_eq!(r.topics[0].partitions[0].error_code, E::UnknownTopicOrPartition.code());
    b.stop().await;
}

#[tokio::test]
async fn a_transaction_past_its_timeout_is_aborted_with_a_fence_and_releases_the_lso() {
    let b = TestBroker::start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=100"]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "to", 1).await;
    let (pid, epoch) = init_ok(&mut c, "t8", 1000).await;
    assert_eq!(add_partitions_code(&mut c, "t8", pid, epoch, "to", &[0], 3).await, 0);
    assert_eq!(produce(&mut c, Some("t8"), "to", 0, txn_batch(2, pid, epoch, 0)).await, (0, 0));
    assert_eq!(fetch(&mut c, "to", 0, 0, READ_COMMITTED).await.last_stable_offset, 0);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let d = loop {
        let d = describe_txn(&mut c, "t8").await;
        if d.transaction_state.as_str() == "CompleteAbort" {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "not aborted within 5 s: {d:?}");
        assert_eq!(d.transaction_state.as_str(), "Ongoing");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // Two epochs up at transaction.version 2 (a new cluster's level), as Kafka 4.0's coordinator.
    assert_eq!((d.producer_id.0, d.producer_epoch), (pid, epoch + 2), "the abort bumped the epoch");
    assert_eq!(end_txn(&mut c, "t8", pid, epoch, true, 3).await, E::ProducerFenced.code());
    assert_eq!(end_txn(&mut c, "t8", pid, epoch, false, 3).await, E::ProducerFenced.code());
    assert_eq!(produce(&mut c, Some("t8"), "to", 0, txn_batch(1, pid, epoch, 2)).await.0, E::InvalidProducerEpoch.code());
    let f = fetch(&mut c, "to", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.high_watermark, f.last_stable_offset), (3, 3), "the abort marker released the LSO");
    assert_eq!(f.aborted, Some(vec![(pid, 0)]));
    assert_eq!(f.markers(), vec![0]);
    assert_eq!(f.batches.last().unwrap().producer_epoch, epoch + 2, "the marker carries the bumped epoch");
    b.stop().await;
}

#[tokio::test]
async fn add_partitions_to_txn_verify_only_answers_each_partition_by_its_membership() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "vp", 2).await;
    let (pid, epoch) = init_ok(&mut c, "v", 60_000).await;
    assert_eq!(add_partitions_code(&mut c, "v", pid, epoch, "vp", &[0], 3).await, 0);
    let t = add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
        .with_transactional_id(tid("v"))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_verify_only(true)
        .with_topics(txn_topics(&[("vp", &[0, 1])]));
    let r = c.send(&AddPartitionsToTxnRequest::default().with_transactions(vec![t]), 4).await;
    let codes: Vec<(i32, i16)> = r.results_by_transaction[0].topic_results[0].results_by_partition.iter().map(|p| (p.partition_index, p.partition_error_code)).collect();
    // Kafka's TransactionCoordinator.handleVerifyPartitionsInTransaction: NONE for a partition in
    // the transaction, an error only for the one that is not (INVALID_TXN_STATE as the classic
    // coordinator answers it; Kafka 4.x says TRANSACTION_ABORTABLE).
    assert_eq!(codes[0], (0, 0), "partition 0 is in the transaction");
    assert_eq!(codes[1], (1, E::InvalidTxnState.code()), "partition 1 is not");
    b.stop().await;
}

/// Produce of one batch with the request's transactional id at `version`: (error, base offset).
async fn produce_at(c: &mut Client, id: &str, topic: &str, partition: i32, records: Bytes, version: i16) -> (i16, i64) {
    let req = ProduceRequest::default().with_transactional_id(Some(tid(id))).with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))]),
    ]);
    let p = &c.send(&req, version).await.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// EndTxn v5: (error, producer id, epoch) of the answer.
async fn end_txn_v5(c: &mut Client, id: &str, pid: i64, epoch: i16, commit: bool) -> (i16, i64, i16) {
    let req = EndTxnRequest::default().with_transactional_id(tid(id)).with_producer_id(ProducerId(pid)).with_producer_epoch(epoch).with_committed(commit);
    let r = c.send(&req, 5).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// KIP-890 part 2, as a Java 4.0 producer speaks it once transaction.version is 2 (a new
/// cluster's level): no AddPartitionsToTxn or AddOffsetsToTxn, a new epoch from every EndTxn v5.
#[tokio::test]
async fn kip890_partitions_join_by_producing_and_every_end_moves_the_epoch_up() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    create_topic(&mut c, "k", 1).await;
    let (pid, e) = init_ok(&mut c, "t890", 60_000).await;
    // Verified up to v11 (v11 can abort on TRANSACTION_ABORTABLE), added from v12.
    assert_eq!(produce_at(&mut c, "t890", "k", 0, txn_batch(2, pid, e, 0), 10).await.0, E::InvalidTxnState.code());
    assert_eq!(produce_at(&mut c, "t890", "k", 0, txn_batch(2, pid, e, 0), 11).await.0, E::TransactionAbortable.code());
    assert_eq!(produce_at(&mut c, "t890", "k", 0, txn_batch(2, pid, e, 0), 12).await, (0, 0));
    assert_eq!(produce_at(&mut c, "t890", "k", 0, txn_batch(1, pid, e + 1, 0), 12).await.0, E::InvalidProducerEpoch.code(), "an epoch the coordinator does not know");
    let r = c.send(&TxnOffsetCommitRequest::default().with_transactional_id(tid("t890")).with_group_id(GroupId(s("g890"))).with_producer_id(ProducerId(pid)).with_producer_epoch(e).with_generation_id(-1).with_topics(vec![
        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default().with_name(name("k")).with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(2)]),
    ]), 5).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "TxnOffsetCommit v5 adds the offsets partition");
    let mut parts = txn_partitions(&describe_txn(&mut c, "t890").await);
    parts.sort();
    assert_eq!(parts.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["__consumer_offsets", "k"]);

    assert_eq!(end_txn_v5(&mut c, "t890", pid, e, true).await, (0, pid, e + 1));
    assert_eq!(offset_fetch(&mut c, "g890", "k", 0, true).await, (0, 2), "the offset committed with the transaction");
    let f = fetch(&mut c, "k", 0, 0, READ_COMMITTED).await;
    assert_eq!((f.data_records().len(), f.markers(), f.last_stable_offset), (2, vec![1], 3));
    assert_eq!(f.batches.last().map(|b| b.producer_epoch), Some(e + 1), "the marker carries the new epoch");
    // The next transaction at the new epoch starts its sequences at 0; the old epoch is fenced.
    assert_eq!(produce_at(&mut c, "t890", "k", 0, txn_batch(1, pid, e + 1, 0), 12).await, (0, 3));
    assert_eq!(produce_at(&mut c, "t890", "k", 0, txn_batch(1, pid, e, 2), 12).await.0, E::InvalidProducerEpoch.code());
    assert_eq!(end_txn_v5(&mut c, "t890", pid, e + 1, false).await, (0, pid, e + 2));
    // A retry at the old epoch is answered with the new one, also after a restart; the other
    // outcome is INVALID_TXN_STATE, and a v4 end keeps the epoch (the classic protocol).
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(end_txn_v5(&mut c, "t890", pid, e + 1, false).await, (0, pid, e + 2));
    assert_eq!(end_txn_v5(&mut c, "t890", pid, e + 1, true).await.0, E::InvalidTxnState.code());
    assert_eq!(end_txn_v5(&mut c, "t890", pid, e + 3, false).await.0, E::ProducerFenced.code());
    assert_eq!(end_txn(&mut c, "t890", pid, e + 2, false, 4).await, 0);
    assert_eq!(describe_txn(&mut c, "t890").await.producer_epoch, e + 2);
    b.stop().await;
}
