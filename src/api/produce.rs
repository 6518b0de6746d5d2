//! Produce: per-partition validation and append, acks 0 / 1 / -1 (in durable mode -1 is answered after fdatasync). acks=0 gets no response.
//! Per-partition faults go into the response; one partition's error never fails the others.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{error_code, str_bytes, topic_name};
use crate::broker::Broker;
use crate::broker::replica_manager::{AckError, PendingSync, ReplicaError};
use crate::records::RecordsError;
use crate::records::batch::{self, BatchHeader, CompressionCodec};
use crate::storage::StorageError;
use crate::types::TopicPartition;

fn failed(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

/// What the connection does after a produce.
pub enum Outcome {
    Respond(ProduceResponse),
    /// acks=all: every partition is appended; the response is due once their fdatasyncs are
    /// done (durable mode) and their in-sync replicas have copied them ([`Durable::answer`]).
    /// Nothing else remains to be done for the request, so the connection may handle the next
    /// one meanwhile.
    AfterSync(Durable),
    /// acks=0 and everything was appended: no response.
    Silent,
    /// acks=0 and a partition failed: Kafka closes the connection so the client refreshes metadata.
    Close,
}

/// What [`transaction_check`] found.
enum TxnCheck {
    Pass,
    /// Refused with this code and message.
    Refused(i16, Option<String>),
    /// Only the coordinator can tell, which a no-wait scope does not wait for.
    WouldWait,
}

/// Transactional records may only go to a partition of the producer's open transaction (as
/// Kafka's partition verification checks): otherwise a late or stray write would open a
/// transaction no coordinator will end, and hold the last stable offset back for good. From v12
/// (a KIP-890 producer, which sends no AddPartitionsToTxn) the partition joins the transaction
/// here instead. A request with transactional records names its transactional id
/// ([`names_no_transactional_id`]).
///
/// Inside a no-wait scope ([`try_now`]) only a batch of a transaction already open on the
/// partition passes (the check needs no coordinator then); any other is [`TxnCheck::WouldWait`].
fn transaction_check(broker: &Broker, transactional_id: &str, tp: &TopicPartition, records: &bytes::Bytes, version: i16) -> TxnCheck {
    use crate::txn::TxnError;
    let Some(h) = BatchHeader::parse(records) else { return TxnCheck::Pass };
    if !h.is_transactional() || h.is_control() {
        return TxnCheck::Pass;
    }
    if crate::storage::io::nowait::active() {
        return if broker.replicas.has_ongoing_txn(tp, h.producer_id(), h.producer_epoch()) { TxnCheck::Pass } else { TxnCheck::WouldWait };
    }
    let add = version >= ADD_PARTITION_PRODUCE_MIN_VERSION;
    let Err(e) = broker.check_txn_partition(transactional_id, h.producer_id(), h.producer_epoch(), tp, add) else { return TxnCheck::Pass };
    tracing::info!(partition = %tp, %transactional_id, error = %e, add, "transactional produce refused");
    let not_added = || (E::InvalidTxnState.code(), Some("Partition was not added to the transaction".into()));
    let (code, why) = match e {
        TxnError::ProducerFenced => (E::InvalidProducerEpoch.code(), None),
        // The coordinator could not be reached or could not write: Kafka's retriable answer.
        TxnError::Log(_) => (E::NotEnoughReplicas.code(), None),
        // v11 clients can abort on TRANSACTION_ABORTABLE (KIP-890 part 1), older ones only know
        // INVALID_TXN_STATE.
        TxnError::InvalidTxnState if version == ABORTABLE_PRODUCE_VERSION => (E::TransactionAbortable.code(), None),
        _ if !add => not_added(),
        // A refused add: the coordinator's code, which the producer acts on.
        TxnError::InvalidProducerIdMapping => (E::InvalidProducerIdMapping.code(), None),
        TxnError::ConcurrentTransactions => (E::ConcurrentTransactions.code(), None),
        _ => not_added(),
    };
    TxnCheck::Refused(code, why)
}

/// From this Produce version a transactional batch adds its partition to the transaction
/// (KIP-890 part 2), instead of being verified against it.
const ADD_PARTITION_PRODUCE_MIN_VERSION: i16 = 12;

/// The Produce version whose failed verification is TRANSACTION_ABORTABLE, as Kafka answers it.
const ABORTABLE_PRODUCE_VERSION: i16 = 11;

/// A request carrying transactional records without a transactional id: Kafka refuses all of it,
/// every partition with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, before looking at any.
fn names_no_transactional_id(req: &ProduceRequest) -> bool {
    req.transactional_id.is_none()
        && req.topic_data.iter().flat_map(|t| &t.partition_data).any(|p| p.records.as_deref().and_then(BatchHeader::parse).is_some_and(|h| h.magic() == 2 && h.is_transactional()))
}

/// Kafka reads a request's partitions into a map: a partition named twice (in one topic entry or
/// in two entries of its topic) is appended once, with its last entry's records, and answered
/// once, under its topic's first entry.
fn last_entry_per_partition(topic_data: Vec<TopicProduceData>) -> Vec<TopicProduceData> {
    let named = topic_data.iter().map(|t| t.partition_data.len()).sum::<usize>();
    if named <= 1 {
        return topic_data;
    }
    let distinct: std::collections::HashSet<(&str, i32)> = topic_data.iter().flat_map(|t| t.partition_data.iter().map(move |p| (t.name.0.as_str(), p.index))).collect();
    if distinct.len() == named {
        return topic_data;
    }
    let mut merged: Vec<TopicProduceData> = Vec::new();
    for topic in topic_data {
        let at = match merged.iter().position(|m| m.name == topic.name) {
            Some(at) => at,
            None => {
                merged.push(TopicProduceData::default().with_name(topic.name.clone()).with_topic_id(topic.topic_id));
                merged.len() - 1
            }
        };
        for p in topic.partition_data {
            let entries = &mut merged[at].partition_data;
            match entries.iter_mut().find(|e| e.index == p.index) {
                Some(e) => *e = p,
                None => entries.push(p),
            }
        }
    }
    merged
}

/// The smallest batchLength any batch has (Kafka's LegacyRecord.RECORD_OVERHEAD_V0: the iterator
/// frames legacy messages too, so this is below a v2 header's).
const BATCH_LENGTH_MIN: i32 = 14;

/// The size of the whole batch at the start of `rest`, as Kafka's batch iterator frames it: None
/// when `rest` does not hold a whole one; an error when its length or magic cannot be a batch's.
fn whole_batch_at(rest: &[u8]) -> Result<Option<usize>, (i16, String)> {
    let Some(length) = rest.get(batch::BATCH_LENGTH_OFFSET..batch::LOG_OVERHEAD).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
        return Ok(None);
    };
    if length < BATCH_LENGTH_MIN {
        return Err((E::CorruptMessage.code(), format!("Record size {length} is less than the minimum record overhead ({BATCH_LENGTH_MIN})")));
    }
    let Some(&magic) = rest.get(batch::MAGIC_OFFSET) else {
        return Ok(None);
    };
    let magic = magic as i8;
    if !(0..=2).contains(&magic) {
        return Err((E::CorruptMessage.code(), format!("Invalid magic found in record: {magic}")));
    }
    let size = batch::LOG_OVERHEAD + length as usize;
    Ok((rest.len() >= size).then_some(size))
}

/// Kafka's checks of a partition's records before any partition state (v3+): one whole v2 batch,
/// zstd only from v7 (KIP-110). Bytes after the batch that are not a whole batch are dropped, as
/// Kafka trims them before its append; a second whole batch is refused. Returns the batch.
fn one_batch(records: &bytes::Bytes, version: i16) -> Result<bytes::Bytes, (i16, String)> {
    let Some(size) = whole_batch_at(records)? else {
        return Err((E::InvalidRecord.code(), format!("Produce requests with version {version} must have at least one record batch per partition")));
    };
    if records[batch::MAGIC_OFFSET] != 2 {
        return Err((E::InvalidRecord.code(), format!("Produce requests with version {version} are only allowed to contain record batches with magic version 2")));
    }
    if version < ZSTD_PRODUCE_MIN_VERSION && BatchHeader::parse(records).is_some_and(|h| h.compression() == CompressionCodec::Zstd) {
        return Err((E::UnsupportedCompressionType.code(), format!("Produce requests with version {version} are not allowed to use ZStandard compression")));
    }
    if whole_batch_at(&records[size..])?.is_some() {
        return Err((E::InvalidRecord.code(), format!("Produce requests with version {version} are only allowed to contain exactly one record batch per partition")));
    }
    Ok(if size == records.len() { records.clone() } else { records.slice(..size) })
}

/// Whether a refused append's answer names the partition's log start offset, as Kafka's does for
/// what its log refuses; not for a corrupt or oversized batch or a partition not served here.
fn names_log_start(code: i16) -> bool {
    ![E::CorruptMessage, E::MessageTooLarge, E::RecordListTooLarge, E::UnknownTopicOrPartition, E::NotLeaderOrFollower, E::KafkaStorageError].iter().any(|e| e.code() == code)
}

/// The answer of a durable-mode produce, owed once its partitions are fdatasynced.
pub struct Durable {
    /// (topic index, partition index in its response, the sync owed before answering).
    syncs: Vec<(usize, usize, PendingSync)>,
    /// (topic index, partition index in its response, what the followers must copy first).
    waits: Vec<(usize, usize, ReplicaWait)>,
    responses: Vec<TopicProduceResponse>,
    version: i16,
    /// The request's timeout_ms, from its receipt.
    deadline: tokio::time::Instant,
}

/// An acks=all append the partition's other in-sync replicas have not copied yet.
pub struct ReplicaWait {
    tp: TopicPartition,
    published: Arc<crate::storage::log::PublishedOffsets>,
    acked_at: i64,
    min_isr: i32,
}

impl Durable {
    /// Fdatasyncs every appended partition, then gives the response. Each sync runs on its own
    /// blocking thread without the partition lock, so concurrent syncs of a file meet in the
    /// storage backend and share fsyncs (group commit), also those of one connection's
    /// pipelined requests. A failed sync fails that partition with KAFKA_STORAGE_ERROR: the
    /// records are in the log but not known to be durable.
    pub async fn answer(self, broker: Arc<Broker>) -> ProduceResponse {
        let Durable { syncs, waits, mut responses, version, deadline } = self;
        let handles: Vec<_> = syncs
            .into_iter()
            .map(|(t, p, sync)| {
                let b = broker.clone();
                (t, p, tokio::task::spawn_blocking(move || b.replicas.complete_sync(&sync).map_err(|e| (sync.tp, e))))
            })
            .collect();
        for (t, p, handle) in handles {
            let error = match handle.await {
                Ok(Ok(())) => continue,
                Ok(Err((tp, e))) => {
                    tracing::error!(partition = %tp, error = %e, "durable-mode fdatasync failed");
                    e.to_string()
                }
                Err(e) => {
                    tracing::error!(error = %e, "durable-mode sync task failed");
                    e.to_string()
                }
            };
            if let Some(resp) = responses.get_mut(t).and_then(|r| r.partition_responses.get_mut(p)) {
                // Versions before 8 have no error message field (see the version fix-up in handle).
                *resp = failed(resp.index, E::KafkaStorageError.code(), (version >= 8).then_some(error));
            }
        }
        // Then the followers (Kafka's DelayedProduce): each partition on its own purgatory.
        for (t, p, wait) in waits {
            let acked = broker.replicas.wait_for_replicas(&wait.tp, &wait.published, wait.acked_at, wait.min_isr, deadline).await;
            let code = match acked {
                Ok(()) => continue,
                Err(AckError::TimedOut) => E::RequestTimedOut.code(),
                Err(AckError::NotLeader) => E::NotLeaderOrFollower.code(),
                Err(AckError::NotEnoughReplicasAfterAppend) => E::NotEnoughReplicasAfterAppend.code(),
            };
            if let Some(resp) = responses.get_mut(t).and_then(|r| r.partition_responses.get_mut(p))
                && resp.error_code == 0
            {
                *resp = failed(resp.index, code, None);
            }
        }
        with_leader_hints(&broker, ProduceResponse::default().with_responses(responses), version)
    }
}

/// KIP-951 (v10+): each NOT_LEADER_OR_FOLLOWER partition names its current leader, and the
/// response carries those leaders' endpoints, so the producer retries there at once.
fn with_leader_hints(broker: &Broker, mut response: ProduceResponse, version: i16) -> ProduceResponse {
    if version < 10 {
        return response;
    }
    let mut nodes: Vec<NodeEndpoint> = Vec::new();
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            if !super::wants_leader_hint(p.error_code, false) {
                continue;
            }
            let hint = super::leader_hint(broker, t.name.0.as_str(), p.index);
            p.current_leader = LeaderIdAndEpoch::default().with_leader_id(BrokerId(hint.leader)).with_leader_epoch(hint.leader_epoch);
            if let Some(n) = hint.node
                && !nodes.iter().any(|e| e.node_id.0 == n.id)
            {
                nodes.push(NodeEndpoint::default().with_node_id(BrokerId(n.id)).with_host(str_bytes(n.host)).with_port(n.port as i32).with_rack(n.rack.map(str_bytes)));
            }
        }
    }
    response.node_endpoints = nodes;
    response
}

/// Produce requests smaller than this, to one partition, are tried on the connection's async
/// worker first ([`try_now`]).
pub const TRY_NOW_MAX_BYTES: usize = crate::storage::io::NO_WAIT_WRITE_MAX_BYTES;

/// A small produce to one partition, handled on the calling async worker when its append cannot
/// wait for the disk or a lock (see `ReplicaManager::append_with_control`): a produce request of a
/// few records then costs no trip to a handler thread and back, which at 20k single-record
/// requests a second was two thread switches a record (a third of the broker's CPU samples were
/// the scheduler's switch) and most of its p99. A transactional batch is handled here when its
/// transaction is open on the partition already, so a transaction's first batch on each of its
/// partitions goes to a handler thread (the coordinator may write) and the rest do not. None: it
/// must be handled on a handler thread, and nothing of it was appended (one partition, so the
/// only append is the one that declined).
pub fn try_now(broker: &Arc<Broker>, req: &ProduceRequest, version: i16) -> Option<Outcome> {
    let one_partition = matches!(req.topic_data.as_slice(), [t] if t.partition_data.len() == 1);
    if !one_partition {
        return None;
    }
    crate::storage::io::nowait::run(|| handle_checked(broker, req.clone(), version))
}

/// Validates and appends every partition; never waits for the replicas or a durable-mode sync
/// (it hands them back). On a request handler thread: appends may wait for the disk.
pub fn handle(broker: &Arc<Broker>, req: ProduceRequest, version: i16) -> Outcome {
    handle_checked(broker, req, version).unwrap_or_else(|| unreachable!("only a no-wait scope declines an append"))
}

/// Produce carries zstd batches from v7 on (KIP-110); an older request with one is refused with
/// UNSUPPORTED_COMPRESSION_TYPE, whatever the topic's compression.type.
const ZSTD_PRODUCE_MIN_VERSION: i16 = 7;

/// `handle`; None when an append declined to wait inside a no-wait scope ([`try_now`]).
fn handle_checked(broker: &Arc<Broker>, mut req: ProduceRequest, version: i16) -> Option<Outcome> {
    let acks = req.acks;
    if names_no_transactional_id(&req) {
        let code = E::TransactionalIdAuthorizationFailed.code();
        let responses = req
            .topic_data
            .iter()
            .map(|t| TopicProduceResponse::default().with_name(topic_name(t.name.0.to_string())).with_topic_id(t.topic_id).with_partition_responses(t.partition_data.iter().map(|p| failed(p.index, code, None)).collect()))
            .collect();
        return Some(if acks == 0 { Outcome::Close } else { Outcome::Respond(ProduceResponse::default().with_responses(responses)) });
    }
    req.topic_data = last_entry_per_partition(std::mem::take(&mut req.topic_data));
    let mut declined = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Durable mode: (topic index, partition index in its response, the sync owed before answering).
    let mut syncs: Vec<(usize, usize, PendingSync)> = Vec::new();
    let mut waits: Vec<(usize, usize, ReplicaWait)> = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(req.timeout_ms.max(0) as u64);
    for topic in req.topic_data {
        let topic_index = responses.len();
        let name = topic.name.0.to_string();
        let meta = broker.metadata.topic(&name);
        // BrokerTopicMetrics: bytes and records appended, counted once per topic of the request.
        let (mut bytes_in, mut messages_in) = (0u64, 0u64);
        let partitions = topic
            .partition_data
            .into_iter()
            .enumerate()
            .map(|(partition_index, pd)| {
                // In Kafka's order: the partition exists, its records are one batch, the acks
                // are valid, then the partition's own state.
                let Some(meta) = &meta else {
                    return failed(pd.index, E::UnknownTopicOrPartition.code(), None);
                };
                if pd.index < 0 || pd.index >= meta.partitions {
                    return failed(pd.index, E::UnknownTopicOrPartition.code(), None);
                }
                let Some(records) = pd.records else {
                    return failed(pd.index, E::InvalidRecord.code(), Some("no records".into()));
                };
                let records = match one_batch(&records, version) {
                    Ok(batch) => batch,
                    Err((code, why)) => return failed(pd.index, code, Some(why)),
                };
                if !matches!(acks, -1 | 0 | 1) {
                    return failed(pd.index, E::InvalidRequiredAcks.code(), None);
                }
                if meta.is_internal() {
                    return failed(pd.index, E::InvalidTopicException.code(), Some(format!("Cannot append to internal topic {name}")));
                }
                let tp = TopicPartition::new(name.clone(), pd.index);
                if broker.cluster.is_some() && broker.replicas.partition(&tp).is_none() {
                    // A partition of the cluster with no replica here: another broker leads it.
                    return failed(pd.index, E::NotLeaderOrFollower.code(), None);
                }
                if let Some(partition) = broker.replicas.partition(&tp) {
                    let state = partition.lock();
                    if let Err(e) = state.check_leader(-1) {
                        return failed(pd.index, error_code::partition(&e), None);
                    }
                    if acks == -1
                        && let Err(e) = state.check_min_isr(meta.settings.min_insync_replicas)
                    {
                        let mut resp = failed(pd.index, error_code::partition(&e), None);
                        resp.log_start_offset = broker.replicas.published(&tp).map_or(-1, |p| p.log_start_offset());
                        return resp;
                    }
                }
                if let Some(id) = &req.transactional_id {
                    match transaction_check(broker, id.0.as_str(), &tp, &records, version) {
                        TxnCheck::Pass => {}
                        TxnCheck::Refused(code, why) => return failed(pd.index, code, why),
                        TxnCheck::WouldWait => {
                            declined = true;
                            return failed(pd.index, E::KafkaStorageError.code(), None);
                        }
                    }
                }
                match broker.replicas.append_for_produce(&tp, &records, acks) {
                    Ok((a, sync)) => {
                        bytes_in += records.len() as u64;
                        messages_in += (a.acked_at - a.base_offset).max(0) as u64;
                        if let Some(sync) = sync {
                            syncs.push((topic_index, partition_index, sync));
                        }
                        if acks == -1
                            && let Some(published) = broker.replicas.published(&tp)
                            && published.high_watermark() < a.acked_at
                        {
                            let min_isr = meta.settings.min_insync_replicas;
                            waits.push((topic_index, partition_index, ReplicaWait { tp: tp.clone(), published, acked_at: a.acked_at, min_isr }));
                        }
                        PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_base_offset(a.base_offset)
                        .with_log_append_time_ms(a.log_append_time_ms)
                        .with_log_start_offset(a.log_start_offset)
                    }
                    Err(ReplicaError::Storage(StorageError::Io(e))) if crate::storage::io::nowait::active() && crate::storage::io::nowait::is_would_block(&e) => {
                        declined = true;
                        failed(pd.index, E::KafkaStorageError.code(), None)
                    }
                    Err(e) => {
                        let code = error_code::replica(&e);
                        if error_code::is_server_fault(code) {
                            if let Some(left_out) = crate::fault_log::APPEND_FAULTS.allow(std::time::Instant::now(), crate::fault_log::FAULT_LOG_INTERVAL) {
                                tracing::error!(partition = %tp, error = %e, similar_left_out = left_out, "append failed");
                            }
                        } else {
                            tracing::info!(partition = %tp, error = %e, "produce rejected");
                        }
                        let mut resp = failed(pd.index, code, Some(e.to_string()));
                        if names_log_start(code) {
                            resp.log_start_offset = broker.replicas.published(&tp).map_or(-1, |p| p.log_start_offset());
                        }
                        if let ReplicaError::Storage(StorageError::Records(RecordsError::InvalidTimestamp { base_offset, records, window })) = &e {
                            // As Kafka words it, one record error per record out of the window.
                            resp.error_message = Some(str_bytes("One or more records have been rejected due to invalid timestamp"));
                            resp.record_errors = records
                                .iter()
                                .map(|r| {
                                    let why = format!(
                                        "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{}, {}]",
                                        r.timestamp,
                                        base_offset.saturating_add(r.offset_delta),
                                        window.earliest,
                                        window.latest
                                    );
                                    BatchIndexAndErrorMessage::default().with_batch_index(r.index).with_batch_index_error_message(Some(str_bytes(why)))
                                })
                                .collect();
                        }
                        if let ReplicaError::Storage(StorageError::Records(RecordsError::MissingKeys { record_indexes })) = &e {
                            // KIP-467: which records of the batch were refused, and why.
                            let why = format!("Compacted topic cannot accept message without key in topic partition {tp}.");
                            resp.record_errors = record_indexes
                                .iter()
                                .map(|i| BatchIndexAndErrorMessage::default().with_batch_index(*i).with_batch_index_error_message(Some(str_bytes(why.clone()))))
                                .collect();
                        }
                        resp
                    }
                }
            })
            .collect();
        let partitions: Vec<PartitionProduceResponse> = partitions;
        if declined {
            return None;
        }
        if meta.is_some() {
            // Only known topics get series: a client naming random topics must not grow the map.
            let counters = broker.metrics.topic(&name);
            counters.produce_requests.fetch_add(1, Relaxed);
            counters.bytes_in.fetch_add(bytes_in, Relaxed);
            counters.messages_in.fetch_add(messages_in, Relaxed);
            if partitions.iter().any(|p| p.error_code != 0) {
                counters.failed_produce_requests.fetch_add(1, Relaxed);
            }
        }
        let partitions = partitions
            .into_iter()
            .map(|mut p| {
                // Fields a version does not have keep their defaults, or encoding fails.
                if version < 5 {
                    p.log_start_offset = -1;
                }
                if version < 8 {
                    p.error_message = None;
                    p.record_errors.clear();
                }
                p
            })
            .collect();
        // The name is a copy: the request's is a slice of its frame, which an acks=all answer
        // would keep alive (records and all) until it goes out.
        responses.push(TopicProduceResponse::default().with_name(topic_name(name)).with_topic_id(topic.topic_id).with_partition_responses(partitions));
    }
    if !syncs.is_empty() || !waits.is_empty() {
        // Only acks=-1 owes syncs and waits, so a response is always due.
        return Some(Outcome::AfterSync(Durable { syncs, waits, responses, version, deadline }));
    }
    if acks == 0 {
        let failed = responses.iter().flat_map(|t| &t.partition_responses).any(|p| p.error_code != 0);
        return Some(if failed { Outcome::Close } else { Outcome::Silent });
    }
    Some(Outcome::Respond(with_leader_hints(broker, ProduceResponse::default().with_responses(responses), version)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use kafka_protocol::records::Compression;

    /// A node on loopback with its log dir in `dir`, no HTTP listener, and `extra` settings.
    async fn start_node(dir: &tempfile::TempDir, extra: &[&str]) -> crate::node::RunningNode {
        let mut overrides = vec!["listeners=PLAINTEXT://127.0.0.1:0".to_string(), format!("log.dirs={}", dir.path().display()), "fjord.http.listener=none".to_string()];
        overrides.extend(extra.iter().map(|s| s.to_string()));
        crate::node::start(crate::config::Config::load(None, &overrides).expect("config")).await.expect("node starts")
    }

    /// A small one-partition produce is handled on the caller's async worker when its append
    /// cannot wait, and declined untouched when it could (here the new segment's first
    /// preallocation step), or when it names several partitions or a transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_produce_is_handled_now_only_when_its_append_cannot_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start_node(&dir, &[]).await;
        let broker = node.broker.clone();
        broker.create_topic("now", 2, Default::default()).expect("topic");
        let records = || Some(crate::storage::kafka_dir::encode_batch(0, &[(None, b"v".to_vec())], false, Compression::None).expect("batch").into());
        let request = |partitions: &[i32]| {
            ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(crate::api::topic_name("now"))
                    .with_partition_data(partitions.iter().map(|p| PartitionProduceData::default().with_index(*p).with_records(records())).collect()),
            ])
        };
        let offset = |o: Outcome| match o {
            Outcome::Respond(r) => (r.responses[0].partition_responses[0].error_code, r.responses[0].partition_responses[0].base_offset),
            _ => panic!("acks=1 is answered"),
        };
        let leo = |b: &Arc<Broker>| b.replicas.offsets(&TopicPartition::new("now", 0)).expect("offsets").high_watermark;
        assert!(try_now(&broker, &request(&[0]), 9).is_none(), "the first append reserves the segment's blocks");
        assert_eq!(leo(&broker), 0, "declined untouched");
        let b = broker.clone();
        let req = request(&[0]);
        let first = tokio::task::spawn_blocking(move || handle(&b, req, 9)).await.expect("handled");
        assert_eq!(offset(first), (0, 0));
        assert_eq!(offset(try_now(&broker, &request(&[0]), 9).expect("a plain page-cache write")), (0, 1));
        assert_eq!(leo(&broker), 2);
        assert!(try_now(&broker, &request(&[0, 1]), 9).is_none(), "two partitions go to a handler thread");
        // A transaction's first batch on the partition needs its coordinator (at v12 it adds
        // the partition, a write), so it goes to a handler thread; its next batches need only
        // the log's word that the transaction is open there.
        let b = broker.clone();
        let (pid, epoch) = tokio::task::spawn_blocking(move || b.txns.init_producer_id(&*b, "t", 60_000, None)).await.expect("ran").expect("producer id");
        let transactional = |seq: i32| {
            let mut req = request(&[0]);
            req.transactional_id = Some(kafka_protocol::messages::TransactionalId(str_bytes("t")));
            let batch = crate::records::batch::test_support::transactional_batch(&[(None, Some("v"))], crate::broker::replica_manager::now_ms(), (pid, epoch, seq));
            req.topic_data[0].partition_data[0].records = Some(batch.into());
            req
        };
        assert!(try_now(&broker, &transactional(0), 12).is_none(), "the transaction's first batch here");
        assert_eq!(leo(&broker), 2);
        let (b, req) = (broker.clone(), transactional(0));
        let first = tokio::task::spawn_blocking(move || handle(&b, req, 12)).await.expect("handled");
        assert_eq!(offset(first), (0, 2));
        assert_eq!(offset(try_now(&broker, &transactional(1), 12).expect("the transaction is open here")), (0, 3));
        let mut plain = request(&[0]);
        plain.transactional_id = Some(kafka_protocol::messages::TransactionalId(str_bytes("t")));
        assert_eq!(offset(try_now(&broker, &plain, 12).expect("a batch outside transactions needs no check")), (0, 4));
        node.shutdown().await;
    }

    /// An acks=all answer owed until its partitions are synced (durable mode) holds nothing of
    /// its request: the request's strings are slices of its frame, and one kept in the answer
    /// kept the whole frame, records and all, for as long as the answer was owed (a producer's
    /// pipelined 1 MB requests held up to 9 MB per connection).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_owed_acks_all_answer_keeps_no_slice_of_its_request_frame() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = start_node(&dir, &["fjord.log.flush.on.acks.all=true"]).await;
        let broker = node.broker.clone();
        broker.create_topic("owed", 1, Default::default()).expect("topic");

        let records = crate::storage::kafka_dir::encode_batch(0, &[(None, b"v".to_vec())], false, Compression::None).expect("batch");
        let version = 9;
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(crate::api::topic_name("owed"))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records.into()))]),
        ]);
        let mut frame = BytesMut::new();
        request.encode(&mut frame, version).expect("encode");
        let frame = frame.freeze();
        let inside = |p: *const u8| frame.as_ptr_range().contains(&p);
        let decoded = ProduceRequest::decode(&mut frame.clone(), version).expect("decode");
        assert!(inside(decoded.topic_data[0].name.0.as_ptr()), "the decoded name is a slice of the frame");

        let b = broker.clone();
        let outcome = tokio::task::spawn_blocking(move || handle(&b, decoded, version)).await.expect("handled");
        let Outcome::AfterSync(durable) = outcome else { panic!("durable mode owes acks=all answers") };
        assert_eq!(durable.responses.len(), 1);
        assert_eq!(durable.responses[0].name.0.as_str(), "owed");
        assert!(!inside(durable.responses[0].name.0.as_ptr()), "the owed answer names its topic with a slice of the request frame");
        let resp = durable.answer(broker).await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        node.shutdown().await;
    }
}
