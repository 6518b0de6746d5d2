//! Dispatch: one match on the api key. Each handler decodes nothing itself: it receives the typed
//! request and returns the typed response, which is encoded here at the request's version.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
pub(crate) mod alter_client_quotas;
mod alter_configs;
pub(crate) mod alter_user_scram_credentials;
mod alter_replica_log_dirs;
mod api_versions;
mod error_counts;
mod authorize;
mod consumer_group_describe;
mod consumer_group_heartbeat;
pub(crate) mod create_acls;
mod create_partitions;
mod create_topics;
pub(crate) mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
pub(crate) mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod alter_partition_reassignments;
pub(crate) mod elect_leaders;
mod end_txn;
pub mod error_code;
mod fetch;
mod find_coordinator;
mod get_telemetry_subscriptions;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_client_metrics_resources;
mod list_groups;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod push_telemetry;
mod sasl_authenticate;
mod sasl_handshake;
mod sync_group;
mod txn_offset_commit;
mod update_features;
mod write_txn_markers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::anyhow;
use error_counts::ErrorCounts;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::broker::Broker;
use crate::broker::quotas::QuotaKind;
use crate::metrics::RequestKind;
use crate::protocol::chain::Piece;
use crate::protocol::header::{decode_request_header, encode_response_pieces, peek_prefix};
use crate::protocol::versions;
use crate::storage::FileRange;

/// Per-connection state the handlers may need.
pub struct Session {
    /// This connection's number, unique in the process (Kafka's connection id).
    pub id: u64,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    /// The listener the connection arrived on: Metadata, FindCoordinator and DescribeCluster
    /// answer with that listener's endpoints, as Kafka does.
    pub listener: Arc<str>,
    /// Who the client is: `User:<name>` once a SASL listener authenticated it, else Kafka's
    /// `User:ANONYMOUS` (for ACLs, later).
    pub principal: Arc<str>,
    /// The client's software name and version from its ApiVersions (v3+), for KIP-714
    /// subscription matching.
    pub client_software: Option<(String, String)>,
    /// Until when the connection reads no request: a client over its quota is muted for its
    /// throttle time after the response that told it (KIP-219).
    pub muted_until: Option<tokio::time::Instant>,
}

impl Session {
    pub fn new(peer: SocketAddr, listener: Arc<str>) -> Session {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Session { id, peer, client_id: None, listener, principal: Arc::from(ANONYMOUS), client_software: None, muted_until: None }
    }

    /// The user a quota is looked up for: the principal's name (`ANONYMOUS` before or without
    /// authentication).
    fn quota_user(&self) -> &str {
        self.principal.strip_prefix("User:").unwrap_or(&self.principal)
    }

    /// Records `bytes` of `kind` against the client's quota; the throttle time in ms, for which
    /// the connection is then muted (0: within quota).
    fn throttle(&mut self, broker: &Broker, kind: QuotaKind, bytes: usize) -> i32 {
        let ms = broker.quotas.record(kind, self.quota_user(), self.client_id.as_deref().unwrap_or(""), bytes as u64);
        self.mute(ms);
        ms.min(i32::MAX as u64) as i32
    }

    /// Records `handled` (the time from the decoded request to its encoded answer, less any
    /// wait in the purgatory) against the client's request_percentage; the throttle time in ms,
    /// for which the connection is then muted (0: within quota).
    fn request_throttle(&mut self, broker: &Broker, handled: std::time::Duration) -> i32 {
        let ms = broker.quotas.record_request_time(self.quota_user(), self.client_id.as_deref().unwrap_or(""), handled.as_nanos().min(u64::MAX as u128) as u64);
        self.mute(ms);
        ms.min(i32::MAX as u64) as i32
    }

    fn mute(&mut self, ms: u64) {
        if ms > 0 {
            let until = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
            self.muted_until = Some(self.muted_until.map_or(until, |u| u.max(until)));
        }
    }
}

/// A response's throttle_time_ms, raised to a quota's throttle time (the field is written only
/// at the versions that have it). Responses without the field (SASL, DescribeQuorum,
/// WriteTxnMarkers) have nothing to raise: the connection is still muted.
trait ThrottleTime {
    fn raise_throttle(&mut self, ms: i32);
}

macro_rules! throttle_time {
    ($($t:ty),* $(,)?) => {$(
        impl ThrottleTime for $t {
            fn raise_throttle(&mut self, ms: i32) {
                self.throttle_time_ms = self.throttle_time_ms.max(ms);
            }
        }
    )*};
}

macro_rules! no_throttle_time {
    ($($t:ty),* $(,)?) => {$(
        impl ThrottleTime for $t {
            fn raise_throttle(&mut self, _ms: i32) {}
        }
    )*};
}

throttle_time!(
    ApiVersionsResponse,
    GetTelemetrySubscriptionsResponse,
    PushTelemetryResponse,
    ProduceResponse,
    MetadataResponse,
    ListOffsetsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    InitProducerIdResponse,
    DescribeClusterResponse,
    DescribeTopicPartitionsResponse,
    DescribeConfigsResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    DescribeGroupsResponse,
    ListGroupsResponse,
    DeleteGroupsResponse,
    OffsetDeleteResponse,
    CreatePartitionsResponse,
    DeleteRecordsResponse,
    AlterReplicaLogDirsResponse,
    DescribeLogDirsResponse,
    OffsetForLeaderEpochResponse,
    AlterConfigsResponse,
    IncrementalAlterConfigsResponse,
    DescribeAclsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    TxnOffsetCommitResponse,
    DescribeTransactionsResponse,
    ListTransactionsResponse,
    DescribeProducersResponse,
    DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse,
    DescribeClientQuotasResponse,
    AlterClientQuotasResponse,
    UpdateFeaturesResponse,
    ListConfigResourcesResponse,
    ElectLeadersResponse,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
);
no_throttle_time!(WriteTxnMarkersResponse, SaslHandshakeResponse, SaslAuthenticateResponse, DescribeQuorumResponse);

/// Kafka's principal of a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Why a request ended its connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The client sent something undecodable or unsupported (Kafka closes the connection).
    #[error("malformed request: {0}")]
    Malformed(anyhow::Error),
    /// An acks=0 produce failed on some partition; closing tells the client (as Kafka does).
    #[error("acks=0 produce failed on a partition")]
    AcksZeroFailed,
    /// The broker could not encode its own response: a Fjord bug, never the client's fault.
    #[error("cannot encode the response to {key:?} v{version}: {source}")]
    Encode { key: ApiKey, version: i16, source: anyhow::Error },
    /// The task computing a later answer ([`Reply::Later`]) panicked: a Fjord bug.
    #[error("the task answering a request failed: {0}")]
    AnswerLost(#[from] tokio::task::JoinError),
}

/// One chunk of an encoded response frame.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Encoded fields (header, partition metadata, length prefixes), or shared bytes.
    Memory(Bytes),
    /// A fetch response's record batches, still in their segment file: the connection sends them
    /// file-to-socket.
    File(FileRange),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Memory(b) => b.len(),
            Chunk::File(r) => r.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An encoded response frame as chunks, in order.
pub type ResponseFrame = Vec<Chunk>;

/// What a handled request owes its client.
pub enum Reply {
    /// The response, or None when none is due (acks=0 produce).
    Now(Option<ResponseFrame>),
    /// Every effect of the request is done and only its answer waits (durable-mode produce,
    /// on its fdatasyncs, in a task of its own): the connection may handle the next request
    /// meanwhile, and still sends this answer first.
    Later(tokio::task::JoinHandle<Result<ResponseFrame, FrameError>>),
}

impl Reply {
    fn now(frame: ResponseFrame) -> Reply {
        Reply::Now(Some(frame))
    }
}

/// Whether handling `frame` may give [`Reply::Later`] (it is a Produce): only such requests
/// are handled while earlier answers are still owed; any other waits until they are sent.
pub fn may_answer_later(frame: &[u8]) -> bool {
    peek_prefix(frame).is_some_and(|p| p.api_key == ApiKey::Produce as i16)
}

/// Handles one request frame (without its length prefix). `Err`: the connection must be closed.
/// Counts the request and its time to an answer (Kafka's RequestMetrics; a durable-mode produce
/// answered later is timed to its handoff).
pub async fn handle_frame(broker: &Arc<Broker>, session: &mut Session, frame: Bytes) -> Result<Reply, FrameError> {
    let started = std::time::Instant::now();
    let mut kind = peek_prefix(&frame).map(|p| RequestKind::Api(p.api_key));
    let reply = dispatch(broker, session, frame, &mut kind).await;
    if let Some(kind) = kind {
        broker.metrics.record_request(kind, started.elapsed());
    }
    reply
}

/// Counts every error code of a response (NONE included), as Kafka's errors metric.
fn count_errors<M: ErrorCounts>(broker: &Broker, kind: RequestKind, version: i16, response: &M) {
    response.error_codes(version, &mut |code| broker.metrics.record_error(kind, code));
}

/// A response's frame, its error codes counted for the request's API.
fn answer<M: kafka_protocol::protocol::Encodable + ErrorCounts>(broker: &Broker, key: ApiKey, version: i16, corr: i32, body: &M) -> Result<ResponseFrame, FrameError> {
    count_errors(broker, RequestKind::Api(key as i16), version, body);
    encode(key, version, corr, body)
}

async fn dispatch(broker: &Arc<Broker>, session: &mut Session, frame: Bytes, kind: &mut Option<RequestKind>) -> Result<Reply, FrameError> {
    let prefix = peek_prefix(&frame).ok_or_else(|| FrameError::Malformed(anyhow!("request shorter than a header")))?;
    let key = ApiKey::try_from(prefix.api_key).map_err(|_| FrameError::Malformed(anyhow!("unknown api key {}", prefix.api_key)))?;
    let version = prefix.api_version;
    let corr = prefix.correlation_id;
    let request_bytes = frame.len() + 4;
    if !versions::is_served_on(key, version, broker.cluster.is_some()) {
        if key == ApiKey::ApiVersions {
            // The client does not know our versions yet: tell it, in the v0 format all know.
            tracing::debug!(version, "ApiVersions at an unknown version; answering with our ranges");
            return answer(broker, key, 0, corr, &api_versions::unsupported_version(broker.cluster.is_some(), broker.config.telemetry.enabled)).map(Reply::now);
        }
        return Err(FrameError::Malformed(anyhow!("{key:?} v{version} is not supported")));
    }
    let mut body = frame;
    let header = decode_request_header(key, version, &mut body).map_err(FrameError::Malformed)?;
    if session.client_id.is_none() {
        session.client_id = header.client_id.as_ref().map(|c| c.to_string());
    }
    tracing::trace!(peer = %session.peer, client = session.client_id.as_deref().unwrap_or(""), ?key, version, corr, "request");
    // With an authorizer, a request one resource decides (a group, a transactional id, the
    // cluster) is refused here before its handler; the others are checked per part below.
    let guard = authorize::guard(broker, session);
    // request_percentage (KIP-124) counts the time from here to the encoded answer. Exempt as in
    // Kafka: cluster actions (WriteTxnMarkers) and, below, follower fetches and acks=0 produces.
    let started = std::time::Instant::now();
    let exempt = key == ApiKey::WriteTxnMarkers;
    macro_rules! answer {
        ($resp:expr) => {{
            let mut resp = $resp;
            if !exempt {
                let ms = session.request_throttle(broker, started.elapsed());
                ThrottleTime::raise_throttle(&mut resp, ms);
            }
            answer(broker, key, version, corr, &resp).map(Reply::now)
        }};
    }
    if let Some(g) = &guard
        && let Some(refused) = authorize::refuse_whole(g, key, version, &body).map_err(FrameError::Malformed)?
    {
        refused.count_errors(version, &mut |code| broker.metrics.record_error(RequestKind::Api(key as i16), code));
        return refused.encode_frame(key, version, corr).map(Reply::now);
    }
    macro_rules! serve {
        ($req:ty, $handler:expr) => {{
            let req = <$req>::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let resp = $handler(broker, req, version).await;
            answer!(resp)
        }};
    }
    // Handlers that may touch a disk (append, read, checkpoint, create or delete a log, write a
    // coordinator's record) run on a request handler thread ([`crate::broker::io_pool`]); their
    // `async` bodies never wait for anything but the disk, so the thread drives them to the end.
    macro_rules! serve_on_pool {
        ($req:ty, $handler:expr) => {{
            let req = <$req>::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let resp = broker.io_pool.run(move || rt.block_on($handler(&b, req, version))).await;
            answer!(resp)
        }};
    }
    // Handlers on the request handler threads whose answer loses what the principal may not
    // see afterwards (`$filter`, with an authorizer).
    macro_rules! serve_on_pool_filtered {
        ($req:ty, $handler:expr, $filter:expr) => {{
            let req = <$req>::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let mut resp = broker.io_pool.run(move || rt.block_on($handler(&b, req, version))).await;
            if let Some(g) = &guard {
                $filter(g, &mut resp);
            }
            answer!(resp)
        }};
    }
    // Handlers on the request handler threads whose request loses its refused parts first
    // (`$check` takes them out and answers them), their answers added to `$field`.
    macro_rules! serve_on_pool_checked {
        ($req:ty, $handler:expr, $check:expr, $field:ident) => {{
            let mut req = <$req>::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = match &guard {
                Some(g) => $check(g, &mut req),
                None => Vec::new(),
            };
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let mut resp = broker.io_pool.run(move || rt.block_on($handler(&b, req, version))).await;
            resp.$field.extend(refused);
            answer!(resp)
        }};
    }
    // CreateTopics, CreatePartitions and DeleteTopics: the partitions they create or delete are
    // charged to the client's controller_mutation_rate (KIP-599), strictly (per-topic
    // THROTTLING_QUOTA_EXCEEDED) from version `$strict` on; the connection is then muted for the
    // throttle time the answer carries.
    macro_rules! serve_mutation {
        ($req:ty, $handler:expr, $check:expr, $field:ident, $strict:expr) => {{
            let mut req = <$req>::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = match &guard {
                Some(g) => $check(g, &mut req),
                None => Vec::new(),
            };
            let quota = broker.quotas.mutation_quota(session.quota_user(), session.client_id.as_deref().unwrap_or(""), version >= $strict);
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let mut resp = broker.io_pool.run(move || rt.block_on($handler(&b, req, version, quota))).await;
            resp.$field.extend(refused);
            session.mute(resp.throttle_time_ms.max(0) as u64);
            answer!(resp)
        }};
    }
    // KIP-951 leader endpoints (Produce, Fetch) are made on the first client listener: moved to
    // the connection's listener, leaving out a broker without one, as Metadata does.
    macro_rules! on_listener {
        ($nodes:expr) => {
            if !$nodes.is_empty() && *session.listener != *broker.default_listener() {
                $nodes.retain_mut(|n| match broker.broker_endpoint_on(n.node_id.0, &session.listener) {
                    Some((host, port)) => {
                        n.host = str_bytes(host);
                        n.port = port as i32;
                        true
                    }
                    None => false,
                });
            }
        };
    }
    match key {
        ApiKey::ApiVersions => {
            let req = ApiVersionsRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            if version >= 3 {
                session.client_software = Some((req.client_software_name.to_string(), req.client_software_version.to_string()));
            }
            answer!(api_versions::handle(broker, req, version).await)
        }
        ApiKey::GetTelemetrySubscriptions => {
            let req = GetTelemetrySubscriptionsRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            answer!(get_telemetry_subscriptions::handle(broker, session, req))
        }
        ApiKey::PushTelemetry => {
            let req = PushTelemetryRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            answer!(push_telemetry::handle(broker, session, req))
        }
        ApiKey::Metadata => {
            let mut req = MetadataRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let all_topics = req.topics.is_none() || (version == 0 && req.topics.as_ref().is_some_and(Vec::is_empty));
            let refused = guard.as_ref().map(|g| authorize::metadata_request(g, broker, &mut req)).unwrap_or_default();
            let rt = tokio::runtime::Handle::current();
            let (b, listener) = (broker.clone(), session.listener.clone());
            let mut resp = broker.io_pool.run(move || rt.block_on(metadata::handle(&b, req, version, &listener))).await;
            if let Some(g) = &guard {
                authorize::metadata_response(g, all_topics, &mut resp);
                resp.topics.extend(refused);
            }
            answer!(resp)
        }
        ApiKey::Produce => {
            let mut req = ProduceRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = guard.as_ref().map(|g| authorize::produce(g, broker, &mut req)).unwrap_or_default();
            // A small one-partition append that cannot wait is made right here; anything else
            // (or one that would wait after all) on a handler thread.
            let now = if request_bytes < produce::TRY_NOW_MAX_BYTES { produce::try_now(broker, &req, version) } else { None };
            let outcome = match now {
                Some(outcome) => outcome,
                None => {
                    let b = broker.clone();
                    broker.io_pool.run(move || produce::handle(&b, req, version)).await
                }
            };
            // The request's size against producer_byte_rate (acks=0 too: its connection is muted).
            let throttle_ms = session.throttle(broker, QuotaKind::Produce, request_bytes);
            match outcome {
                produce::Outcome::Respond(mut resp) => {
                    resp.responses.extend(refused);
                    // KIP-951 leaders' endpoints: those of the connection's listener.
                    on_listener!(resp.node_endpoints);
                    resp.throttle_time_ms = resp.throttle_time_ms.max(throttle_ms);
                    answer!(resp)
                }
                produce::Outcome::AfterSync(durable) => {
                    // Handled up to the handoff: only the answer waits for the disk now.
                    let throttle_ms = throttle_ms.max(session.request_throttle(broker, started.elapsed()));
                    let broker = broker.clone();
                    Ok(Reply::Later(tokio::spawn(async move {
                        let mut resp = durable.answer(broker.clone()).await;
                        resp.responses.extend(refused);
                        resp.throttle_time_ms = resp.throttle_time_ms.max(throttle_ms);
                        answer(&broker, key, version, corr, &resp)
                    })))
                }
                // acks=0 with a refused topic: closing tells the client, as Kafka does.
                produce::Outcome::Silent if !refused.is_empty() => Err(FrameError::AcksZeroFailed),
                produce::Outcome::Silent => Ok(Reply::Now(None)),
                produce::Outcome::Close => Err(FrameError::AcksZeroFailed),
            }
        }
        ApiKey::Fetch => {
            // The record batches stay in their segment files: the response carries placeholders
            // for them, and the file ranges fill their slots after encoding.
            let mut req = FetchRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = guard.as_ref().map(|g| authorize::fetch(g, broker, &mut req)).unwrap_or_default();
            // A consumer's fetch is measured against consumer_byte_rate, once any quota is set.
            let consumer = req.replica_id.0 < 0 && req.replica_state.replica_id.0 < 0;
            let quota_id = (consumer && broker.quotas.enabled()).then(|| (session.quota_user().to_string(), session.client_id.clone().unwrap_or_default()));
            if let Some((user, client_id)) = &quota_id
                && let Some(most) = broker.quotas.max_bytes_in_window(QuotaKind::Fetch, user, client_id)
            {
                // Kafka's cap: no more than the quota lets through in its window at once.
                req.max_bytes = req.max_bytes.min(most.min(i32::MAX as u64) as i32);
            }
            let mut fetched = fetch::handle(broker, req, version).await;
            fetched.response.responses.extend(refused);
            let fetch_kind = if fetched.follower { RequestKind::FetchFollower } else { RequestKind::FetchConsumer };
            *kind = Some(fetch_kind);
            count_errors(broker, fetch_kind, version, &fetched.response);
            on_listener!(fetched.response.node_endpoints);
            let files = std::mem::take(&mut fetched.files);
            let frame = encode_with_files(key, version, corr, &fetched.response, files)?;
            let Some((user, client_id)) = quota_id else {
                return Ok(Reply::now(frame));
            };
            // A consumer's handling time, less its wait in the purgatory, against request_percentage.
            let request_ms = session.request_throttle(broker, started.elapsed().saturating_sub(fetched.parked));
            let bytes: usize = frame.iter().map(Chunk::len).sum();
            let throttle_ms = session.throttle(broker, QuotaKind::Fetch, bytes).max(request_ms);
            if throttle_ms == 0 {
                return Ok(Reply::now(frame));
            }
            // Over consumer_byte_rate or request_percentage: as Kafka, the records are not sent
            // (and not counted), only the throttle time; the consumer fetches them again after it.
            broker.quotas.unrecord(QuotaKind::Fetch, &user, &client_id, bytes as u64);
            let mut throttled = fetched.response;
            throttled.responses.clear();
            throttled.throttle_time_ms = throttle_ms;
            answer(broker, key, version, corr, &throttled).map(Reply::now)
        }
        ApiKey::ListOffsets => serve_on_pool_checked!(ListOffsetsRequest, list_offsets::handle, authorize::list_offsets, topics),
        ApiKey::CreateTopics => serve_mutation!(CreateTopicsRequest, create_topics::handle, authorize::create_topics, topics, 6),
        ApiKey::DeleteTopics => serve_mutation!(DeleteTopicsRequest, delete_topics::handle, |g, r| authorize::delete_topics(g, broker, r), responses, 5),
        ApiKey::InitProducerId => serve_on_pool!(InitProducerIdRequest, init_producer_id::handle),
        ApiKey::DescribeCluster => {
            let req = DescribeClusterRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let mut resp = describe_cluster::handle(broker, req, version, &session.listener).await;
            if let Some(g) = &guard {
                authorize::describe_cluster(g, &mut resp);
            }
            answer!(resp)
        }
        ApiKey::DescribeTopicPartitions => {
            let req = DescribeTopicPartitionsRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let resp = match &guard {
                Some(g) => {
                    let mut resp = describe_topic_partitions::describe(broker, req, &|topic: &str| g.topic(crate::broker::acl::Operation::Describe, topic));
                    authorize::describe_topic_partitions(g, &mut resp);
                    resp
                }
                None => describe_topic_partitions::describe(broker, req, &|_: &str| true),
            };
            answer!(resp)
        }
        ApiKey::DescribeConfigs => {
            let mut req = DescribeConfigsRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = guard.as_ref().map(|g| authorize::describe_configs(g, &mut req)).unwrap_or_default();
            let mut resp = describe_configs::handle(broker, req, version).await;
            resp.results.extend(refused);
            answer!(resp)
        }
        ApiKey::FindCoordinator => {
            let mut req = FindCoordinatorRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = match guard.as_ref().map(|g| authorize::find_coordinator(g, &mut req, version)) {
                Some(Err(resp)) => return answer!(resp),
                Some(Ok(refused)) => refused,
                None => Vec::new(),
            };
            let rt = tokio::runtime::Handle::current();
            let (b, listener) = (broker.clone(), session.listener.clone());
            let mut resp = broker.io_pool.run(move || rt.block_on(find_coordinator::handle(&b, req, version, &listener))).await;
            resp.coordinators.extend(refused);
            answer!(resp)
        }
        ApiKey::JoinGroup => {
            // JoinGroup alone needs the connection: member ids and DescribeGroups show the client.
            let req = JoinGroupRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let client_id = session.client_id.clone().unwrap_or_default();
            let client_host = format!("/{}", session.peer.ip());
            let resp = join_group::handle(broker, req, version, client_id, client_host).await;
            answer!(resp)
        }
        ApiKey::ConsumerGroupHeartbeat => {
            // Like JoinGroup, the member's client id and host come from the connection.
            let req = ConsumerGroupHeartbeatRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let client_id = session.client_id.clone().unwrap_or_default();
            let client_host = format!("/{}", session.peer.ip());
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let resp = broker.io_pool.run(move || rt.block_on(consumer_group_heartbeat::handle(&b, req, version, client_id, client_host))).await;
            answer!(resp)
        }
        ApiKey::ConsumerGroupDescribe => serve_on_pool_filtered!(ConsumerGroupDescribeRequest, consumer_group_describe::handle, authorize::consumer_group_describe),
        ApiKey::SyncGroup => serve!(SyncGroupRequest, sync_group::handle),
        ApiKey::Heartbeat => serve_on_pool!(HeartbeatRequest, heartbeat::handle),
        ApiKey::LeaveGroup => serve_on_pool!(LeaveGroupRequest, leave_group::handle),
        ApiKey::OffsetCommit => {
            let mut req = OffsetCommitRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = guard.as_ref().map(|g| authorize::offset_commit(g, broker, &mut req)).unwrap_or_default();
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let mut resp = broker.io_pool.run(move || rt.block_on(offset_commit::handle(&b, req, version))).await;
            resp.topics.extend(refused);
            answer!(resp)
        }
        ApiKey::OffsetFetch => {
            let mut req = OffsetFetchRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let (group_refused, refused) = guard.as_ref().map(|g| authorize::offset_fetch_request(g, &mut req, version)).unwrap_or_default();
            if group_refused {
                let resp = OffsetFetchResponse::default().with_error_code(kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code());
                return answer!(resp);
            }
            // Which groups asked for all their offsets ("" stands for the v0-7 request's one group).
            let all_single = req.topics.is_none();
            let all_groups: std::collections::BTreeSet<String> = req.groups.iter().filter(|g| g.topics.is_none()).map(|g| g.group_id.0.to_string()).collect();
            let rt = tokio::runtime::Handle::current();
            let b = broker.clone();
            let mut resp = broker.io_pool.run(move || rt.block_on(offset_fetch::handle(&b, req, version))).await;
            if let Some(g) = &guard {
                authorize::offset_fetch_response(g, |group| if group.is_empty() { all_single } else { all_groups.contains(group) }, &mut resp);
                resp.groups.extend(refused);
            }
            answer!(resp)
        }
        ApiKey::DescribeGroups => serve_on_pool_filtered!(DescribeGroupsRequest, describe_groups::handle, authorize::describe_groups),
        ApiKey::ListGroups => serve_on_pool_filtered!(ListGroupsRequest, list_groups::handle, authorize::list_groups),
        ApiKey::DeleteGroups => serve_on_pool_checked!(DeleteGroupsRequest, delete_groups::handle, authorize::delete_groups, results),
        ApiKey::OffsetDelete => serve_on_pool_checked!(OffsetDeleteRequest, offset_delete::handle, authorize::offset_delete, topics),
        ApiKey::CreatePartitions => serve_mutation!(CreatePartitionsRequest, create_partitions::handle, authorize::create_partitions, results, 3),
        ApiKey::DeleteRecords => serve_on_pool_checked!(DeleteRecordsRequest, delete_records::handle, authorize::delete_records, topics),
        ApiKey::AlterReplicaLogDirs => serve_on_pool!(AlterReplicaLogDirsRequest, alter_replica_log_dirs::handle),
        ApiKey::DescribeLogDirs => serve_on_pool!(DescribeLogDirsRequest, describe_log_dirs::handle),
        ApiKey::OffsetForLeaderEpoch => {
            let mut req = OffsetForLeaderEpochRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = guard.as_ref().map(|g| authorize::offset_for_leader_epoch(g, &mut req)).unwrap_or_default();
            let mut resp = offset_for_leader_epoch::handle(broker, req, version).await;
            resp.topics.extend(refused);
            answer!(resp)
        }
        ApiKey::AlterConfigs => serve_on_pool_checked!(AlterConfigsRequest, alter_configs::handle, authorize::alter_configs, responses),
        ApiKey::IncrementalAlterConfigs => serve_on_pool_checked!(IncrementalAlterConfigsRequest, incremental_alter_configs::handle, authorize::incremental_alter_configs, responses),
        // An ACL request with an UNKNOWN element is refused while parsing, by Kafka too: the
        // connection closes (checked against Kafka 4.0 with DescribeAcls).
        ApiKey::DescribeAcls | ApiKey::CreateAcls | ApiKey::DeleteAcls if unknown_acl_element(key, version, &body)? => {
            Err(FrameError::Malformed(anyhow!("{key:?} contains UNKNOWN elements")))
        }
        ApiKey::DescribeAcls => serve!(DescribeAclsRequest, describe_acls::handle),
        ApiKey::CreateAcls => serve_on_pool!(CreateAclsRequest, create_acls::handle),
        ApiKey::DeleteAcls => serve_on_pool!(DeleteAclsRequest, delete_acls::handle),
        ApiKey::AddPartitionsToTxn => serve_on_pool!(AddPartitionsToTxnRequest, add_partitions_to_txn::handle),
        ApiKey::AddOffsetsToTxn => serve_on_pool!(AddOffsetsToTxnRequest, add_offsets_to_txn::handle),
        ApiKey::EndTxn => serve_on_pool!(EndTxnRequest, end_txn::handle),
        ApiKey::TxnOffsetCommit => serve_on_pool_checked!(TxnOffsetCommitRequest, txn_offset_commit::handle, authorize::txn_offset_commit, topics),
        ApiKey::WriteTxnMarkers => serve_on_pool!(WriteTxnMarkersRequest, write_txn_markers::handle),
        ApiKey::DescribeTransactions => serve_on_pool_filtered!(DescribeTransactionsRequest, describe_transactions::handle, authorize::describe_transactions),
        ApiKey::ListTransactions => serve_on_pool_filtered!(ListTransactionsRequest, list_transactions::handle, authorize::list_transactions),
        ApiKey::DescribeProducers => {
            let mut req = DescribeProducersRequest::decode(&mut body, version).map_err(FrameError::Malformed)?;
            let refused = guard.as_ref().map(|g| authorize::describe_producers(g, &mut req)).unwrap_or_default();
            let mut resp = describe_producers::handle(broker, req, version).await;
            resp.topics.extend(refused);
            answer!(resp)
        }
        ApiKey::DescribeUserScramCredentials => serve!(DescribeUserScramCredentialsRequest, describe_user_scram_credentials::handle),
        ApiKey::AlterUserScramCredentials => serve_on_pool!(AlterUserScramCredentialsRequest, alter_user_scram_credentials::handle),
        ApiKey::DescribeClientQuotas => serve!(DescribeClientQuotasRequest, describe_client_quotas::handle),
        ApiKey::AlterClientQuotas => serve!(AlterClientQuotasRequest, alter_client_quotas::handle),
        ApiKey::UpdateFeatures => serve_on_pool!(UpdateFeaturesRequest, update_features::handle),
        ApiKey::ListConfigResources => serve!(ListConfigResourcesRequest, list_client_metrics_resources::handle),
        // Reached once authenticated, or on a listener without SASL: the authenticator
        // (server::sasl) serves these before authentication.
        ApiKey::SaslHandshake => serve!(SaslHandshakeRequest, sasl_handshake::handle),
        ApiKey::SaslAuthenticate => serve!(SaslAuthenticateRequest, sasl_authenticate::handle),
        ApiKey::DescribeQuorum => serve!(DescribeQuorumRequest, describe_quorum::handle),
        ApiKey::ElectLeaders => serve!(ElectLeadersRequest, elect_leaders::handle),
        ApiKey::AlterPartitionReassignments => serve!(AlterPartitionReassignmentsRequest, alter_partition_reassignments::handle),
        ApiKey::ListPartitionReassignments => serve!(ListPartitionReassignmentsRequest, alter_partition_reassignments::handle_list),
        other => Err(FrameError::Malformed(anyhow!("{other:?} is in the version table but has no handler"))),
    }
}

/// Whether an ACL request names an UNKNOWN resource type, pattern type, operation or permission.
fn unknown_acl_element(key: ApiKey, version: i16, body: &Bytes) -> Result<bool, FrameError> {
    use crate::broker::acl::has_unknown_code as unknown;
    let mut b = body.clone();
    let malformed = FrameError::Malformed;
    Ok(match key {
        ApiKey::DescribeAcls => {
            let r = DescribeAclsRequest::decode(&mut b, version).map_err(malformed)?;
            unknown(r.resource_type_filter, r.pattern_type_filter, r.operation, r.permission_type)
        }
        ApiKey::CreateAcls => {
            let r = CreateAclsRequest::decode(&mut b, version).map_err(malformed)?;
            r.creations.iter().any(|c| unknown(c.resource_type, c.resource_pattern_type, c.operation, c.permission_type))
        }
        ApiKey::DeleteAcls => {
            let r = DeleteAclsRequest::decode(&mut b, version).map_err(malformed)?;
            r.filters.iter().any(|f| unknown(f.resource_type_filter, f.pattern_type_filter, f.operation, f.permission_type))
        }
        _ => false,
    })
}

fn encode<M: kafka_protocol::protocol::Encodable>(key: ApiKey, version: i16, corr: i32, body: &M) -> Result<ResponseFrame, FrameError> {
    encode_with_files(key, version, corr, body, Vec::new())
}

/// A response frame for a request answered outside the dispatch (the SASL exchange).
pub fn encode_response<M: kafka_protocol::protocol::Encodable>(key: ApiKey, version: i16, corr: i32, body: &M) -> Result<ResponseFrame, FrameError> {
    encode(key, version, corr, body)
}

/// Encodes a response whose byte fields may hold placeholders (`protocol::chain::placeholder`):
/// slot `i` becomes `files[i]`, which must have the placeholder's length.
fn encode_with_files<M: kafka_protocol::protocol::Encodable>(
    key: ApiKey,
    version: i16,
    corr: i32,
    body: &M,
    files: Vec<FileRange>,
) -> Result<ResponseFrame, FrameError> {
    let fail = |source: anyhow::Error| FrameError::Encode { key, version, source };
    let pieces = encode_response_pieces(key, version, corr, body).map_err(fail)?;
    let mut files: Vec<Option<FileRange>> = files.into_iter().map(Some).collect();
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Bytes(b) => Ok(Chunk::Memory(b)),
            Piece::Slot { slot, len } => match files.get_mut(slot).and_then(Option::take) {
                Some(f) if f.len == len => Ok(Chunk::File(f)),
                Some(f) => Err(fail(anyhow!("slot {slot} holds {len} bytes but its file range {}", f.len))),
                None => Err(fail(anyhow!("slot {slot} has no file range (or was encoded twice)"))),
            },
        })
        .collect()
}

/// What a client reading from the leader must be told before its request is looked at: this
/// broker does not lead the partition (NOT_LEADER_OR_FOLLOWER), or its `current_leader_epoch` is
/// newer (UNKNOWN_LEADER_EPOCH) or older (FENCED_LEADER_EPOCH) than the partition's (KIP-320;
/// -1 is not checked). `None` for a partition without a replica here: the caller's own lookup
/// answers that.
pub(crate) fn leader_epoch_error(broker: &Broker, tp: &crate::types::TopicPartition, current_leader_epoch: i32) -> Option<i16> {
    let partition = broker.replicas.partition(tp)?;
    let state = partition.lock();
    state.check_leader(current_leader_epoch).err().map(|e| error_code::partition(&e))
}

/// As [`leader_epoch_error`] for a consumer's fetch that any replica may serve (KIP-392, Fetch
/// v11+): this broker must hold a replica of a led partition, leader or follower.
pub(crate) fn replica_epoch_error(broker: &Broker, tp: &crate::types::TopicPartition, current_leader_epoch: i32) -> Option<i16> {
    let partition = broker.replicas.partition(tp)?;
    let state = partition.lock();
    state.check_replica(current_leader_epoch).err().map(|e| error_code::partition(&e))
}

/// KIP-951: where a client refused with NOT_LEADER_OR_FOLLOWER (or FENCED_LEADER_EPOCH) should
/// go, from this broker's metadata, so it can retry before its next Metadata request: the
/// leader and its epoch (-1 and -1 when none is known, as Kafka answers), and the leader's
/// endpoint when it is a live broker.
pub(crate) struct LeaderHint {
    pub leader: i32,
    pub leader_epoch: i32,
    pub node: Option<crate::broker::BrokerInfo>,
}

pub(crate) fn leader_hint(broker: &Broker, topic: &str, partition: i32) -> LeaderHint {
    let state = leader_and_isr(broker, topic, partition);
    if state.leader < 0 {
        return LeaderHint { leader: -1, leader_epoch: -1, node: None };
    }
    let node = broker.live_brokers().into_iter().find(|b| b.id == state.leader);
    LeaderHint { leader: state.leader, leader_epoch: state.leader_epoch, node }
}

/// Whether a partition error code is one a KIP-951 leader hint goes with (Fetch adds
/// FENCED_LEADER_EPOCH to Produce's NOT_LEADER_OR_FOLLOWER).
pub(crate) fn wants_leader_hint(code: i16, fenced_too: bool) -> bool {
    code == kafka_protocol::error::ResponseError::NotLeaderOrFollower.code() || (fenced_too && code == kafka_protocol::error::ResponseError::FencedLeaderEpoch.code())
}

/// A partition's leader, epochs, replicas and ISR as Metadata and DescribeTopicPartitions show
/// them. A partition of a known topic without a replica here shows no leader.
pub(crate) fn leader_and_isr(broker: &Broker, topic: &str, partition: i32) -> crate::broker::partition::LeaderAndIsr {
    if let Some(state) = broker.cluster_partition(topic, partition) {
        return state;
    }
    let tp = crate::types::TopicPartition::new(topic.to_string(), partition);
    match broker.replicas.partition(&tp) {
        Some(p) => p.leader_and_isr(),
        None => crate::broker::partition::LeaderAndIsr {
            leader: crate::broker::partition::NO_LEADER,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: vec![broker.config.node_id],
            isr: Vec::new(),
        },
    }
}

fn broker_ids(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

/// Which brokers are live (registered and unfenced), to report a partition's offline replicas
/// as Kafka does (Metadata v5+, DescribeTopicPartitions): `None` on a single node, whose one
/// broker is this one.
fn live_broker_ids(broker: &Broker) -> Option<std::collections::BTreeSet<i32>> {
    broker.cluster.as_ref()?;
    Some(broker.live_brokers().into_iter().map(|b| b.id).collect())
}

/// The replicas on brokers that are not live (a fenced or unregistered broker).
fn offline_replicas(live: Option<&std::collections::BTreeSet<i32>>, replicas: &[i32]) -> Vec<BrokerId> {
    match live {
        None => Vec::new(),
        Some(live) => replicas.iter().copied().filter(|r| !live.contains(r)).map(BrokerId).collect(),
    }
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

/// NOT_COORDINATOR for a group whose `__consumer_offsets` partition is in an offline log dir,
/// checked before the group is looked at in memory: Kafka unloads such a partition's groups and
/// answers every request for them so, and clients look for the coordinator again (FindCoordinator
/// then answers COORDINATOR_NOT_AVAILABLE).
///
/// In a cluster, a partition the applied metadata names this broker leader of, which the broker
/// has not taken over yet (its groups still loading), answers COORDINATOR_LOAD_IN_PROGRESS as
/// Kafka's loading coordinator does: clients retry here instead of looking the coordinator up
/// again (librdkafka returns NOT_COORDINATOR from a committed-offsets query to the caller).
pub(crate) fn offline_group(broker: &Broker, group: &str) -> Option<crate::group::GroupError> {
    let partitions = broker.metadata.topic(crate::group::OFFSETS_TOPIC)?.partitions;
    offline_group_partition(broker, crate::records::internal::partition_for(group, partitions))
}

/// [`offline_group`] of the groups of one `__consumer_offsets` partition.
pub(crate) fn offline_group_partition(broker: &Broker, partition: i32) -> Option<crate::group::GroupError> {
    use crate::group::OFFSETS_TOPIC;
    broker.metadata.topic(OFFSETS_TOPIC)?;
    if !broker.coordinator_partition_offline_at(OFFSETS_TOPIC, partition) {
        return None;
    }
    if broker.coordinator_partition_loading_at(OFFSETS_TOPIC, partition) {
        return Some(crate::group::GroupError::CoordinatorLoadInProgress);
    }
    Some(crate::group::GroupError::Log(crate::coordinator::LogError::PartitionOffline(format!("{OFFSETS_TOPIC}-{partition} is not coordinated here"))))
}

/// "Not requested" marker for authorized-operations fields (Kafka's Integer.MIN_VALUE).
pub(crate) const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::chain::placeholder;
    use crate::storage::io::{FileIo, OpenMode, StdIo};
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::Encodable;

    fn fetch_response(records: Vec<Bytes>) -> FetchResponse {
        let parts = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| PartitionData::default().with_partition_index(i as i32).with_high_watermark(9).with_records(Some(r)))
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default().with_topic(topic_name("t")).with_partitions(parts)])
    }

    #[test]
    fn a_fetch_frame_keeps_its_fields_in_memory_and_its_records_as_file_chunks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StdIo.open(&dir.path().join("f.log"), OpenMode::CreateReadWrite).expect("open");
        let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        file.write_all_at(&data, 0).expect("write");
        let ranges = [(100u64, 20_000usize), (30_000, 7)];
        let files: Vec<FileRange> = ranges.iter().map(|&(position, len)| FileRange { file: file.clone(), position, len }).collect();
        let real: Vec<Bytes> = ranges.iter().map(|&(p, l)| Bytes::copy_from_slice(&data[p as usize..p as usize + l])).collect();
        for version in [4i16, 11, 12, 16] {
            let held = fetch_response(vec![placeholder(0, 20_000).expect("slot"), placeholder(1, 7).expect("slot")]);
            let chunks = encode_with_files(ApiKey::Fetch, version, 42, &held, files.clone()).expect("encode");
            let kinds: Vec<bool> = chunks.iter().map(|c| matches!(c, Chunk::File(_))).collect();
            assert_eq!(kinds.iter().filter(|f| **f).count(), 2, "v{version}: both record sets are file chunks: {kinds:?}");
            // What the socket will carry: memory chunks as they are, file chunks read from the file.
            let wire: Vec<u8> = chunks
                .iter()
                .flat_map(|c| match c {
                    Chunk::Memory(b) => b.to_vec(),
                    Chunk::File(r) => r.read_bytes().expect("range").to_vec(),
                })
                .collect();
            let mut flat = BytesMut::new();
            let header_version = ApiKey::Fetch.response_header_version(version);
            let header = ResponseHeader::default().with_correlation_id(42);
            let body = fetch_response(real.clone());
            let size = header.compute_size(header_version).expect("size") + body.compute_size(version).expect("size");
            flat.extend_from_slice(&(size as i32).to_be_bytes());
            header.encode(&mut flat, header_version).expect("header");
            body.encode(&mut flat, version).expect("body");
            assert!(wire == flat.to_vec(), "v{version}: the frame equals one encoded with the bytes themselves");
        }
    }

    #[test]
    fn a_slot_without_its_file_range_or_of_another_length_is_an_encode_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StdIo.open(&dir.path().join("f.log"), OpenMode::CreateReadWrite).expect("open");
        let held = fetch_response(vec![placeholder(0, 100).expect("slot")]);
        let wrong = FileRange { file, position: 0, len: 99 };
        assert!(matches!(encode_with_files(ApiKey::Fetch, 12, 1, &held, vec![wrong]), Err(FrameError::Encode { .. })));
        assert!(matches!(encode_with_files(ApiKey::Fetch, 12, 1, &held, Vec::new()), Err(FrameError::Encode { .. })));
    }
}

/// The handlers for callers inside the process (the web console): an action taken there is the
/// Kafka request of that API, handled by the same code, at the newest version Fjord serves, on a
/// request handler thread as the connection would run it, after the same ACL checks as the
/// caller's principal (`session`; with an authorizer). Nothing here is a second implementation.
pub mod inprocess {
    use std::sync::Arc;

    use kafka_protocol::messages::*;

    use super::{Session, authorize, create_topics, delete_topics, offset_commit, produce};
    pub(crate) use super::authorize::Guard;
    use crate::broker::Broker;
    // The console's operator is no client: no controller_mutation_rate applies.
    use crate::broker::quotas::MutationQuota;
    use crate::protocol::versions;

    /// The ACL guard of an in-process caller's principal, or `None` without an authorizer.
    pub(crate) fn guard<'a>(broker: &'a Broker, session: &Session) -> Option<Guard<'a>> {
        authorize::guard(broker, session)
    }

    fn newest(key: ApiKey) -> i16 {
        versions::SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|(_, _, max)| *max).expect("the api is in the version table")
    }

    /// CreateTopics: CREATE on the cluster or on each topic.
    pub async fn create_topics(broker: &Arc<Broker>, session: &Session, mut req: CreateTopicsRequest) -> CreateTopicsResponse {
        let refused = guard(broker, session).map(|g| authorize::create_topics(&g, &mut req)).unwrap_or_default();
        let (rt, b, version) = (tokio::runtime::Handle::current(), broker.clone(), newest(ApiKey::CreateTopics));
        let mut resp = broker.io_pool.run(move || rt.block_on(create_topics::handle(&b, req, version, MutationQuota::unbounded()))).await;
        resp.topics.extend(refused);
        resp
    }

    /// DeleteTopics: DELETE on each topic.
    pub async fn delete_topics(broker: &Arc<Broker>, session: &Session, mut req: DeleteTopicsRequest) -> DeleteTopicsResponse {
        let refused = guard(broker, session).map(|g| authorize::delete_topics(&g, broker, &mut req)).unwrap_or_default();
        let (rt, b, version) = (tokio::runtime::Handle::current(), broker.clone(), newest(ApiKey::DeleteTopics));
        let mut resp = broker.io_pool.run(move || rt.block_on(delete_topics::handle(&b, req, version, MutationQuota::unbounded()))).await;
        resp.responses.extend(refused);
        resp
    }

    /// Produce: WRITE on each topic. acks must be 1 or -1: an in-process caller always wants the
    /// answer.
    pub async fn produce(broker: &Arc<Broker>, session: &Session, mut req: ProduceRequest) -> ProduceResponse {
        let refused = guard(broker, session).map(|g| authorize::produce(&g, broker, &mut req)).unwrap_or_default();
        if req.topic_data.is_empty() {
            return ProduceResponse::default().with_responses(refused);
        }
        let (b, version) = (broker.clone(), newest(ApiKey::Produce));
        let mut resp = match broker.io_pool.run(move || produce::handle(&b, req, version)).await {
            produce::Outcome::Respond(resp) => resp,
            produce::Outcome::AfterSync(durable) => durable.answer(broker.clone()).await,
            produce::Outcome::Silent | produce::Outcome::Close => ProduceResponse::default(),
        };
        resp.responses.extend(refused);
        resp
    }

    /// A topic's configs as DescribeConfigs answers them: (name, value, Kafka's source name).
    pub fn topic_configs(broker: &Broker, overrides: &std::collections::BTreeMap<String, String>) -> Vec<(String, Option<String>, &'static str)> {
        super::describe_configs::topic_configs(broker, overrides)
            .into_iter()
            .map(|d| {
                let source = match d.source {
                    1 => "DYNAMIC_TOPIC_CONFIG",
                    2 => "DYNAMIC_BROKER_CONFIG",
                    3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
                    4 => "STATIC_BROKER_CONFIG",
                    5 => "DEFAULT_CONFIG",
                    _ => "UNKNOWN",
                };
                (d.name, d.value, source)
            })
            .collect()
    }

    /// OffsetCommit: READ on the group, then READ on each topic.
    pub async fn offset_commit(broker: &Arc<Broker>, session: &Session, mut req: OffsetCommitRequest) -> OffsetCommitResponse {
        let refused = guard(broker, session).map(|g| authorize::offset_commit(&g, broker, &mut req)).unwrap_or_default();
        if req.topics.is_empty() {
            return OffsetCommitResponse::default().with_topics(refused);
        }
        let (rt, b, version) = (tokio::runtime::Handle::current(), broker.clone(), newest(ApiKey::OffsetCommit));
        let mut resp = broker.io_pool.run(move || rt.block_on(offset_commit::handle(&b, req, version))).await;
        resp.topics.extend(refused);
        resp
    }
}
