//! Fetch: whole batches from the fetch offset up to the high watermark, within max_bytes (the
//! first batch even when larger: KIP-74), long-polled until min_bytes or max_wait_ms in the purgatory, woken
//! by appends to the fetched partitions only. read_committed reads stop at the last stable offset and list the aborted
//! transactions of the range, so clients drop their records. Topics by name before v13, by id from v13. Fetch sessions are not created: every
//! response carries session id 0, which tells clients to keep sending full fetches. From v11 a
//! consumer may fetch from any replica (KIP-392): a follower serves up to its high watermark, and
//! with `replica.selector.class` the leader names a replica in the consumer's rack instead of
//! answering records. A follower's fetch of a partition its topic lists in
//! `leader.replication.throttled.replicas` for this broker gets no records while
//! `leader.replication.throttled.rate` is exceeded, unless the follower is in the ISR (Kafka's
//! `shouldLeaderThrottle`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};

use super::{error_code, leader_epoch_error, replica_epoch_error};
use crate::broker::replica_manager::ReplicaError;
use crate::broker::Broker;
use crate::protocol::chain::placeholder;
use crate::storage::io::nowait;
use crate::storage::FileRange;
use crate::types::TopicPartition;

/// A fetch response whose record batches are still in their segment files: each non-empty
/// `records` field is a placeholder for slot `i`, to be filled with `files[i]` after encoding.
pub struct Fetched {
    pub response: FetchResponse,
    pub files: Vec<FileRange>,
    /// A follower replica fetched (Kafka's FetchFollower request metrics), not a consumer.
    pub follower: bool,
    /// How long the fetch waited in the purgatory: not handling time (request_percentage).
    pub parked: Duration,
}

/// A partition of the request after its topic was resolved.
struct Wanted {
    /// Index into the response topics.
    topic: usize,
    tp: Option<TopicPartition>,
    partition: i32,
    fetch_offset: i64,
    /// The epoch of the last batch the consumer fetched (v12+; -1 when unknown), KIP-320.
    last_fetched_epoch: i32,
    max_bytes: i32,
    /// Set when the topic could not be resolved.
    error: i16,
    /// A follower fetches and the topic's `leader.replication.throttled.replicas` names this
    /// partition on this broker: its bytes count against the leader throttle.
    leader_throttled: bool,
}

fn partition_error(partition: i32, code: i16) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(Bytes::new()))
}

pub async fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16) -> Fetched {
    if req.session_id != 0 {
        // We never hand out session ids, so any incremental fetch names an unknown session.
        let response = FetchResponse::default().with_error_code(E::FetchSessionIdNotFound.code());
        return Fetched { response, files: Vec::new(), follower: false, parked: Duration::ZERO };
    }
    let by_id = version >= 13;
    // A follower names itself (replica_state from v15, replica_id before): it reads up to the log
    // end, and its fetch offsets tell the leader how far it has copied.
    let replica = if version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    // A consumer's fetch from v11 may be served by any replica, followers up to their high
    // watermark (KIP-392: Kafka reads from any replica once the request carries client metadata).
    let any_replica = replica < 0 && version >= 11;
    let mut topics: Vec<FetchableTopicResponse> = Vec::with_capacity(req.topics.len());
    let mut wanted = Vec::new();
    for t in &req.topics {
        let meta = if by_id { broker.metadata.topic_by_id(t.topic_id) } else { broker.metadata.topic(&t.topic.0) };
        let unknown = if by_id { E::UnknownTopicId.code() } else { E::UnknownTopicOrPartition.code() };
        let index = topics.len();
        topics.push(FetchableTopicResponse::default().with_topic(t.topic.clone()).with_topic_id(t.topic_id));
        for p in &t.partitions {
            let (tp, error) = match &meta {
                None => (None, unknown),
                Some(m) if p.partition < 0 || p.partition >= m.partitions => (None, E::UnknownTopicOrPartition.code()),
                Some(m) => {
                    let tp = TopicPartition::new(m.name.clone(), p.partition);
                    let refused = if any_replica { replica_epoch_error(broker, &tp, p.current_leader_epoch) } else { leader_epoch_error(broker, &tp, p.current_leader_epoch) };
                    match refused {
                        Some(code) => (None, code),
                        None => (Some(tp), 0),
                    }
                }
            };
            let leader_throttled = replica >= 0 && tp.is_some() && meta.as_ref().is_some_and(|m| m.settings.leader_throttled.contains(p.partition));
            wanted.push(Wanted {
                topic: index,
                tp,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                last_fetched_epoch: if version >= 12 { p.last_fetched_epoch } else { -1 },
                max_bytes: p.partition_max_bytes,
                error,
                leader_throttled,
            });
        }
    }
    let max_bytes = req.max_bytes.min(broker.config.fetch_max_bytes).max(0) as usize;
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    let reader = if replica >= 0 { Reader::Follower { replica } } else { Reader::Consumer { read_committed } };
    // With `replica.selector.class`, a leader points a consumer that names its rack at a replica
    // in it (the live brokers' racks, read at most once per fetch, and only by a leader).
    let selector: Option<Arc<Selector>> = (any_replica && broker.config.rack_aware_replica_selector && !req.rack_id.is_empty())
        .then(|| Arc::new(Selector { client_rack: req.rack_id.to_string(), racks: std::sync::OnceLock::new() }));
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Watch before the first read, so an append between a read and the wait is not missed.
    let watch = broker.replicas.purgatory.watch(wanted.iter().filter_map(|w| w.tp.as_ref()));
    let wanted = Arc::new(wanted);
    let mut parked = Duration::ZERO;
    loop {
        // A fetch that could only wait (a caught-up consumer) parks at once, without a pass on a
        // handler thread: two thread hops per record saved for a consumer at the log end.
        let must_wait = min_bytes > 0
            && !broker.is_shutting_down()
            && tokio::time::Instant::now() < deadline
            && matches!(reader, Reader::Consumer { .. })
            && selector.is_none()
            && nothing_to_read(broker, &wanted, read_committed);
        if !must_wait {
            // Locating batches reads index and segment pages. Here only if none of it waits (pages
            // in the page cache, locks free), else on a handler thread: a consumer reading what
            // is cached saves two thread hops per fetch.
            let mut read = match nowait::run(|| read_partitions(broker, &wanted, max_bytes, reader, version, selector.as_deref())) {
                Some(read) => read,
                None => {
                    let (b, w, s) = (broker.clone(), wanted.clone(), selector.clone());
                    broker
                        .io_pool
                        .run(move || read_partitions(&b, &w, max_bytes, reader, version, s.as_deref()).expect("only a pass that must not wait gives up"))
                        .await
                }
            };
            read_ahead(std::mem::take(&mut read.readahead));
            let expired = tokio::time::Instant::now() >= deadline;
            if read.bytes >= min_bytes || read.answer_now || expired || broker.is_shutting_down() {
                let mut topics = topics;
                count_bytes_out(broker, &wanted, &read.parts, reader);
                record_throttled_bytes(broker, &wanted, &read.parts);
                for (w, p) in wanted.iter().zip(read.parts) {
                    topics[w.topic].partitions.push(p);
                }
                let response = with_leader_hints(broker, FetchResponse::default().with_session_id(0).with_responses(topics), version);
                return Fetched { response, files: read.files, follower: matches!(reader, Reader::Follower { .. }), parked };
            }
        }
        let waited = std::time::Instant::now();
        tokio::select! {
            _ = watch.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
        parked += waited.elapsed();
    }
}

/// BrokerTopicMetrics of a fetch's final pass: record bytes out and one fetch request per topic
/// (failed when a partition of it failed); a follower's bytes count as replication bytes out.
fn count_bytes_out(broker: &Broker, wanted: &[Wanted], parts: &[PartitionData], reader: Reader) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &broker.metrics;
    let follower = matches!(reader, Reader::Follower { .. });
    // Partitions of a topic are adjacent in `wanted`: one counters lookup per topic.
    let mut current: Option<(&str, std::sync::Arc<crate::metrics::TopicCounters>, bool)> = None;
    for (w, p) in wanted.iter().zip(parts) {
        let bytes = p.records.as_ref().map_or(0, |r| r.len()) as u64;
        if follower {
            m.replication_bytes_out.fetch_add(bytes, Relaxed);
            continue;
        }
        let Some(tp) = &w.tp else { continue };
        if current.as_ref().is_none_or(|(t, _, _)| *t != tp.topic.as_str()) {
            let counters = m.topic(&tp.topic);
            counters.fetch_requests.fetch_add(1, Relaxed);
            current = Some((tp.topic.as_str(), counters, false));
        }
        if let Some((_, c, failed)) = &mut current {
            c.bytes_out.fetch_add(bytes, Relaxed);
            if p.error_code != 0 && !*failed {
                c.failed_fetch_requests.fetch_add(1, Relaxed);
                *failed = true;
            }
        }
    }
}

/// The bytes a follower's fetch carries for leader-throttled partitions count against
/// `leader.replication.throttled.rate`, in-sync followers' too (Kafka records them as the response
/// is sent, after the quota was asked per partition).
fn record_throttled_bytes(broker: &Broker, wanted: &[Wanted], parts: &[PartitionData]) {
    let bytes: usize = wanted.iter().zip(parts).filter(|(w, _)| w.leader_throttled).map(|(_, p)| p.records.as_ref().map_or(0, |r| r.len())).sum();
    broker.leader_quota.record(bytes as u64);
}

/// KIP-951 (v12+ per partition, v16+ endpoints): each NOT_LEADER_OR_FOLLOWER or
/// FENCED_LEADER_EPOCH partition names its current leader, so the consumer moves there at once.
fn with_leader_hints(broker: &Broker, mut response: FetchResponse, version: i16) -> FetchResponse {
    if version < 12 {
        return response;
    }
    let mut nodes: Vec<NodeEndpoint> = Vec::new();
    for t in &mut response.responses {
        if !t.partitions.iter().any(|p| super::wants_leader_hint(p.error_code, true)) {
            continue;
        }
        let name = if version >= 13 { broker.metadata.topic_by_id(t.topic_id).map(|m| m.name.clone()) } else { Some(t.topic.0.to_string()) };
        let Some(name) = name else { continue };
        for p in &mut t.partitions {
            if !super::wants_leader_hint(p.error_code, true) {
                continue;
            }
            let hint = super::leader_hint(broker, &name, p.partition_index);
            p.current_leader = LeaderIdAndEpoch::default().with_leader_id(BrokerId(hint.leader)).with_leader_epoch(hint.leader_epoch);
            if version >= 16
                && let Some(n) = hint.node
                && !nodes.iter().any(|e| e.node_id.0 == n.id)
            {
                nodes.push(NodeEndpoint::default().with_node_id(BrokerId(n.id)).with_host(super::str_bytes(n.host)).with_port(n.port as i32).with_rack(n.rack.map(super::str_bytes)));
            }
        }
    }
    response.node_endpoints = nodes;
    response
}

/// Whether every wanted partition is known, online and read up to its bound (the high watermark;
/// the last stable offset for read_committed), judged from the published bounds alone, without a
/// lock or the disk. False whenever it cannot tell: the caller then makes a real pass.
fn nothing_to_read(broker: &Broker, wanted: &[Wanted], read_committed: bool) -> bool {
    !wanted.is_empty()
        && wanted.iter().all(|w| {
            let Some(published) = w.tp.as_ref().and_then(|tp| broker.replicas.logs().try_published(tp)) else {
                return false;
            };
            let bound = if read_committed { published.last_stable_offset() } else { published.high_watermark() };
            w.fetch_offset == bound
        })
}

/// A consumer's rack and the live brokers' racks, for a leader's choice of the replica the
/// consumer should fetch from (KIP-392).
struct Selector {
    client_rack: String,
    /// Read when a partition led here first asks (a follower never does).
    racks: std::sync::OnceLock<std::collections::HashMap<i32, Option<String>>>,
}

/// Who reads: a consumer (up to the high watermark, or the last stable offset) or a follower
/// replica (up to the log end, recording its progress on the leader).
#[derive(Clone, Copy, Debug)]
enum Reader {
    Consumer { read_committed: bool },
    Follower { replica: i32 },
}

/// One pass over the wanted partitions.
struct Read {
    /// In `wanted` order; records are placeholders for `files`.
    parts: Vec<PartitionData>,
    files: Vec<FileRange>,
    /// Ranges the disk should read ahead for the partitions read ([`read_ahead`]).
    readahead: Vec<FileRange>,
    bytes: usize,
    /// A partition failed, or was pointed at another replica: the fetch is answered at once.
    answer_now: bool,
}

/// Read-ahead tasks on the blocking pool at once, broker-wide; a hint beyond them is dropped (the
/// fetch that needs the bytes reads them itself), so a busy disk cannot pile hints up.
const READAHEAD_TASKS_MAX: usize = 4;
static READAHEAD_TASKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Asks the disk to read these ranges into the page cache, on the blocking pool: the call may
/// wait while the device's queue is full, and must not hold up an async worker. A range whose
/// last byte is cached already is left out (data read recently, or written recently and still
/// cached, needs no disk), which makes the hint free for consumers reading from the cache. Only a
/// hint: a failure is logged at debug level and the fetch that needs the bytes reads them itself.
fn read_ahead(mut ranges: Vec<FileRange>) {
    use std::sync::atomic::Ordering;
    let asked = ranges.len();
    ranges.retain(|r| r.len > 0 && !r.file.is_cached(r.position + r.len as u64 - 1));
    crate::metrics::READAHEAD_CACHED.fetch_add((asked - ranges.len()) as u64, Ordering::Relaxed);
    if ranges.is_empty() {
        return;
    }
    if READAHEAD_TASKS.fetch_add(1, Ordering::AcqRel) >= READAHEAD_TASKS_MAX {
        READAHEAD_TASKS.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::READAHEAD_DROPPED.fetch_add(ranges.len() as u64, Ordering::Relaxed);
        tracing::debug!(ranges = ranges.len(), "read-ahead hints dropped: enough in flight");
        return;
    }
    crate::metrics::READAHEAD_HINTED.fetch_add(ranges.len() as u64, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || {
        for r in ranges {
            if let Err(e) = r.file.will_need(r.position, r.len as u64) {
                tracing::debug!(error = %e, position = r.position, len = r.len, "read-ahead hint failed");
            }
        }
        READAHEAD_TASKS.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The `records` field for a located range: a placeholder for the next file slot, or (only when
/// no placeholder can be made) the bytes themselves.
fn records_field(range: Option<FileRange>, files: &mut Vec<FileRange>) -> std::io::Result<Bytes> {
    let Some(range) = range else {
        return Ok(Bytes::new());
    };
    match placeholder(files.len(), range.len) {
        Some(p) => {
            files.push(range);
            Ok(p)
        }
        None => range.read_bytes(),
    }
}

/// Locates every wanted partition's batches once, reading none of them. Inside [`nowait::run`]
/// it gives up (`None`) at the first error, a wait it was refused or any other: the pass on a
/// handler thread then answers, logs and reports it.
fn read_partitions(broker: &Broker, wanted: &[Wanted], max_bytes: usize, reader: Reader, version: i16, selector: Option<&Selector>) -> Option<Read> {
    let wait_free = nowait::active();
    if wait_free && matches!(reader, Reader::Follower { .. }) {
        // A follower's fetch changes the leader's state (its progress, the high watermark):
        // always on a handler thread.
        return None;
    }
    let read_committed = matches!(reader, Reader::Consumer { read_committed: true });
    // log_start_offset exists from v5; older versions must leave it at its default.
    let start = |o: i64| if version >= 5 { o } else { -1 };
    let mut out = Vec::with_capacity(wanted.len());
    let mut files = Vec::new();
    let mut readahead = Vec::new();
    let mut total = 0usize;
    let mut any_error = false;
    let mut redirected = false;
    let mut min_one = true;
    for w in wanted {
        let Some(tp) = &w.tp else {
            any_error = true;
            out.push(partition_error(w.partition, w.error));
            continue;
        };
        // Another replica serves this consumer better: no read here, only where to go (Kafka's
        // leader answers the offsets and the preferred read replica, with no records).
        if let Some(s) = selector
            && let Some(preferred) = broker.replicas.preferred_read_replica(tp, &s.client_rack, w.fetch_offset, |id| s.racks.get_or_init(|| broker.live_brokers().into_iter().map(|b| (b.id, b.rack)).collect()).get(&id).cloned())
            && let Ok(o) = broker.replicas.offsets(tp)
        {
            out.push(
                PartitionData::default()
                    .with_partition_index(w.partition)
                    .with_high_watermark(o.high_watermark)
                    .with_last_stable_offset(o.last_stable_offset)
                    .with_log_start_offset(start(o.log_start_offset))
                    .with_preferred_read_replica(BrokerId(preferred))
                    .with_records(Some(Bytes::new())),
            );
            // Answered at once (Kafka does not park a fetch that names a preferred replica).
            redirected = true;
            continue;
        }
        let limit = (w.max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
        let mut diverging = None;
        let read = match reader {
            Reader::Consumer { read_committed } => broker.replicas.read_range_after(tp, w.fetch_offset, w.last_fetched_epoch, limit, min_one, read_committed).map(|(read, d)| {
                diverging = d;
                read
            }),
            Reader::Follower { replica } => broker.replicas.read_for_follower(tp, replica, w.fetch_offset, limit, crate::broker::replica_manager::now_ms()).map(|(mut read, expand)| {
                if let Some(isr) = expand {
                    crate::broker::isr::propose(broker, tp, isr);
                }
                // Held back after the follower's progress was recorded, as Kafka's readFromLog
                // empties a throttled partition's records after the read: the follower still
                // gets the high watermark, and its fetch offset still counts.
                if w.leader_throttled && broker.leader_quota.is_exceeded() && !broker.replicas.is_in_sync(tp, replica) {
                    read.records = None;
                    read.readahead = None;
                }
                read
            }),
        };
        let located = read.and_then(|read| {
            let len = read.records.as_ref().map_or(0, |r| r.len);
            readahead.extend(read.readahead);
            let data = records_field(read.records, &mut files).map_err(|e| ReplicaError::Storage(e.into()))?;
            Ok((read.offsets, read.aborted, len, data))
        });
        match located {
            Ok((offsets, aborted, len, data)) => {
                if len > 0 {
                    min_one = false;
                }
                total += len;
                let aborted = read_committed.then(|| {
                    aborted
                        .iter()
                        .map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset))
                        .collect()
                });
                // The consumer's copy diverged from this log: no records, where its epoch ends here.
                let diverging_epoch = diverging.map_or_else(EpochEndOffset::default, |(epoch, end_offset)| EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset));
                out.push(
                    PartitionData::default()
                        .with_partition_index(w.partition)
                        .with_diverging_epoch(diverging_epoch)
                        .with_high_watermark(offsets.high_watermark)
                        .with_last_stable_offset(offsets.last_stable_offset)
                        .with_log_start_offset(start(offsets.log_start_offset))
                        .with_aborted_transactions(aborted)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(Some(data)),
                );
            }
            Err(_) if wait_free => return None,
            Err(e) => {
                any_error = true;
                let code = match &e {
                    ReplicaError::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
                    other => error_code::replica(other),
                };
                if error_code::is_server_fault(code)
                    && let Some(left_out) = crate::fault_log::FETCH_FAULTS.allow(std::time::Instant::now(), crate::fault_log::FAULT_LOG_INTERVAL)
                {
                    tracing::error!(partition = %tp, error = %e, similar_left_out = left_out, "fetch failed");
                }
                // As Kafka answers a partition its log refused (OFFSET_OUT_OF_RANGE included):
                // the error alone, every offset -1, no aborted transactions list.
                out.push(partition_error(w.partition, code).with_aborted_transactions(None));
            }
        }
    }
    Some(Read { parts: out, files, readahead, bytes: total, answer_now: any_error || redirected })
}
