//! Raft RPCs between voters over TCP, framed as Kafka requests so the controller listener can
//! later dispatch them: it moves openraft's AppendEntries, Vote and full-snapshot messages and
//! never decides anything about them (the local openraft instance does).
//!
//! Request: `length i32 | api_key i16 (FJORD_RAFT_API_KEY) | api_version i16 (0) |
//! correlation_id i32 | client_id nullable string | body`, where the header is Kafka's request
//! header v1 and the body is the postcard encoding of [`RaftRequest`]. Response: `length i32 |
//! correlation_id i32 | body` (postcard of [`RaftResponse`]). Every length read from the wire is
//! checked against `socket.request.max.bytes` before a buffer is sized from it.
//!
//! Client side: one connection per peer, owned by one task (requests queue in a bounded channel,
//! one in flight at a time, no lock held across an await). The connection is a
//! [`BrokerClient`](crate::client::BrokerClient), so a voter reaches an SSL / SASL controller
//! listener as brokers reach it ([`PeerSecurity`]): TLS, ApiVersions, then the SASL login, before
//! the first RPC; a login due for renewal (KIP-368) connects afresh. A failed connect backs off
//! (`reconnect.backoff.ms` doubling up to `reconnect.backoff.max.ms`); every request has a
//! deadline (`controller.quorum.request.timeout.ms`, or openraft's shorter TTL). A peer that
//! cannot be reached is openraft's `Unreachable`; a connection that fails mid-request or times
//! out is `NetworkError`; an error the remote Raft returned is `RemoteError`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::error::{Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, Raft, Snapshot, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::{NodeId, TypeConfig};
use crate::client::{BrokerClient, ClientConfig, ClientError};

/// The private API key of Raft RPCs, outside Kafka's range so a Kafka client never sends it.
pub const FJORD_RAFT_API_KEY: i16 = 32000;
/// The only version of the Raft RPC body.
pub const FJORD_RAFT_API_VERSION: i16 = 0;
/// The client id voters put in their request headers.
pub const FJORD_RAFT_CLIENT_ID: &str = "fjord-raft";
/// Default for `socket.request.max.bytes` (Kafka's: 100 MiB): the largest frame either side reads.
pub const DEFAULT_REQUEST_BYTES_MAX: usize = 104_857_600;
/// Kafka's default `controller.quorum.request.timeout.ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 2000;
/// Kafka's default `reconnect.backoff.ms`.
pub const DEFAULT_RECONNECT_BACKOFF_MS: u64 = 50;
/// Kafka's default `reconnect.backoff.max.ms`.
pub const DEFAULT_RECONNECT_BACKOFF_MAX_MS: u64 = 1000;
/// Requests queued for one peer's connection task before callers wait.
const PEER_QUEUE_MAX: usize = 64;
/// api key, api version, correlation id, client id length.
const REQUEST_HEADER_FIXED_BYTES: usize = 2 + 2 + 4 + 2;

/// Transport settings, under Kafka's property names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// `controller.quorum.request.timeout.ms`: the longest a request waits for its response.
    pub request_timeout_ms: u64,
    /// `reconnect.backoff.ms`: the wait after a first failed connect.
    pub reconnect_backoff_ms: u64,
    /// `reconnect.backoff.max.ms`: the longest wait between connects.
    pub reconnect_backoff_max_ms: u64,
    /// `socket.request.max.bytes`: the largest request or response frame accepted.
    pub request_bytes_max: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            reconnect_backoff_ms: DEFAULT_RECONNECT_BACKOFF_MS,
            reconnect_backoff_max_ms: DEFAULT_RECONNECT_BACKOFF_MAX_MS,
            request_bytes_max: DEFAULT_REQUEST_BYTES_MAX,
        }
    }
}

impl TransportConfig {
    /// The wait before connect attempt number `failures + 1`.
    fn backoff_after(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        Duration::from_millis(self.reconnect_backoff_ms.saturating_mul(1 << shift).min(self.reconnect_backoff_max_ms))
    }
}

/// The body of a Raft RPC request.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    /// A whole snapshot in one message (openraft's `full_snapshot`).
    FullSnapshot { vote: Vote<NodeId>, meta: SnapshotMeta<NodeId, BasicNode>, data: Vec<u8> },
}

/// The body of a Raft RPC response.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    FullSnapshot(Result<SnapshotResponse<NodeId>, Fatal<NodeId>>),
    /// The request body did not decode.
    Malformed(String),
}

/// How a voter secures its connections to the other voters' controller listener: TLS (the
/// controller listener's trust and key stores) and the SASL login
/// (`sasl.mechanism.controller.protocol`); both None: plaintext.
#[derive(Clone, Debug, Default)]
pub struct PeerSecurity {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<Arc<crate::config::SaslClientSettings>>,
}

/// Framing and connection failures.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("frame length {length} out of range (max {max} bytes, socket.request.max.bytes)")]
    BadLength { length: i64, max: usize },
    #[error("not a Raft request: api key {api_key}, version {api_version}")]
    WrongApi { api_key: i16, api_version: i16 },
    #[error("request header malformed: {0}")]
    BadHeader(&'static str),
    #[error("response correlation id {got}, expected {expected}")]
    CorrelationMismatch { got: i32, expected: i32 },
    #[error("body does not decode: {0}")]
    BadBody(String),
    #[error("peer {target} at {addr} unreachable: {reason}")]
    Unreachable { target: NodeId, addr: String, reason: String },
    #[error("request to peer {target} timed out after {timeout_ms} ms")]
    Timeout { target: NodeId, timeout_ms: u64 },
    #[error("peer connection task stopped")]
    Stopped,
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// Kafka's request header v1, as a Raft request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// A whole Raft request frame, length prefix included.
pub fn encode_request_frame(correlation_id: i32, client_id: &str, body: &[u8]) -> Vec<u8> {
    encode_private_request_frame(FJORD_RAFT_API_KEY, FJORD_RAFT_API_VERSION, correlation_id, client_id, body)
}

/// A whole request frame of one of Fjord's private api keys (the Raft RPCs, an observer's
/// metadata fetch), length prefix included.
pub fn encode_private_request_frame(api_key: i16, api_version: i16, correlation_id: i32, client_id: &str, body: &[u8]) -> Vec<u8> {
    let client = client_id.as_bytes();
    let client_len = client.len().min(i16::MAX as usize);
    let length = REQUEST_HEADER_FIXED_BYTES + client_len + body.len();
    let mut out = Vec::with_capacity(4 + length);
    out.extend_from_slice(&(length as i32).to_be_bytes());
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&api_version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&(client_len as i16).to_be_bytes());
    out.extend_from_slice(&client[..client_len]);
    out.extend_from_slice(body);
    out
}

/// Splits a Raft request frame (without its length prefix) into header and body. Never panics.
pub fn parse_request(frame: &[u8]) -> Result<(RequestHeader, &[u8]), TransportError> {
    parse_private_request(frame, FJORD_RAFT_API_KEY, FJORD_RAFT_API_VERSION)
}

/// Splits a request frame of the private `expected_key` at `expected_version` (without its
/// length prefix) into header and body; any other key or version is refused. Never panics.
pub fn parse_private_request(frame: &[u8], expected_key: i16, expected_version: i16) -> Result<(RequestHeader, &[u8]), TransportError> {
    if frame.len() < REQUEST_HEADER_FIXED_BYTES {
        return Err(TransportError::BadHeader("shorter than the fixed header fields"));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    if api_key != expected_key || api_version != expected_version {
        return Err(TransportError::WrongApi { api_key, api_version });
    }
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let client_len = i16::from_be_bytes([frame[8], frame[9]]);
    let rest = &frame[REQUEST_HEADER_FIXED_BYTES..];
    let (client_id, body) = if client_len < 0 {
        if client_len != -1 {
            return Err(TransportError::BadHeader("negative client id length other than -1"));
        }
        (None, rest)
    } else {
        let n = client_len as usize;
        if n > rest.len() {
            return Err(TransportError::BadHeader("client id beyond the frame"));
        }
        let id = std::str::from_utf8(&rest[..n]).map_err(|_| TransportError::BadHeader("client id not UTF-8"))?;
        (Some(id.to_string()), &rest[n..])
    };
    Ok((RequestHeader { api_key, api_version, correlation_id, client_id }, body))
}

/// A whole response frame, length prefix included.
pub fn encode_response_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads one length-prefixed frame, checking the length against `max` before allocating.
/// `Ok(None)` at a clean end of stream before a frame starts.
pub async fn read_frame(stream: &mut (impl AsyncReadExt + Unpin), max: usize) -> Result<Option<Vec<u8>>, TransportError> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = i32::from_be_bytes(len);
    if length < 0 || length as usize > max {
        return Err(TransportError::BadLength { length: length as i64, max });
    }
    let mut frame = vec![0u8; length as usize];
    stream.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

fn encode_response(response: &RaftResponse) -> Vec<u8> {
    postcard::to_allocvec(response).unwrap_or_else(|e| {
        // Only an allocation failure could get here; answer something the caller can decode.
        postcard::to_allocvec(&RaftResponse::Malformed(format!("response does not encode: {e}"))).unwrap_or_default()
    })
}

/// Serves one request body (postcard of [`RaftRequest`]) with the local Raft and returns the
/// response body. What a controller listener calls for `FJORD_RAFT_API_KEY`.
pub async fn dispatch(raft: &Raft<TypeConfig>, body: &[u8]) -> Bytes {
    let response = match postcard::from_bytes::<RaftRequest>(body) {
        Err(e) => RaftResponse::Malformed(e.to_string()),
        Ok(RaftRequest::AppendEntries(req)) => RaftResponse::AppendEntries(raft.append_entries(req).await),
        Ok(RaftRequest::Vote(req)) => RaftResponse::Vote(raft.vote(req).await),
        Ok(RaftRequest::FullSnapshot { vote, meta, data }) => {
            RaftResponse::FullSnapshot(raft.install_full_snapshot(vote, Snapshot { meta, snapshot: Box::new(data) }).await)
        }
    };
    Bytes::from(encode_response(&response))
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send; drop it here rather than across a select.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Accepts voter connections on `listener` and serves their requests with `raft` until
/// `shutdown` turns true; every connection task stops with it.
pub async fn serve(listener: TcpListener, raft: Raft<TypeConfig>, request_bytes_max: usize, shutdown: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let raft = raft.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, raft, request_bytes_max, shutdown).await {
                            tracing::debug!(%peer, error = %e, "raft connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "raft listener accept failed");
                    tokio::time::sleep(Duration::from_millis(DEFAULT_RECONNECT_BACKOFF_MS)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn serve_connection(
    mut stream: TcpStream,
    raft: Raft<TypeConfig>,
    request_bytes_max: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), TransportError> {
    let _ = stream.set_nodelay(true);
    loop {
        let frame = tokio::select! {
            _ = stopped(&mut shutdown) => return Ok(()),
            frame = read_frame(&mut stream, request_bytes_max) => frame?,
        };
        let Some(frame) = frame else { return Ok(()) };
        // The client's first request, as on the controller listener.
        if let Some(answer) = api_versions_answer(&frame) {
            stream.write_all(&answer).await?;
            continue;
        }
        let (header, body) = parse_request(&frame)?;
        let response = dispatch(&raft, body).await;
        stream.write_all(&encode_response_frame(header.correlation_id, &response)).await?;
    }
}

/// The answer to an ApiVersions request (the peer client's first request) on the tests' Raft
/// listener: no Kafka API, only the Raft RPC behind it. None: not an ApiVersions request.
fn api_versions_answer(frame: &[u8]) -> Option<Vec<u8>> {
    use kafka_protocol::protocol::Encodable;
    let prefix = crate::protocol::header::peek_prefix(frame)?;
    if prefix.api_key != 18 {
        return None;
    }
    let version = prefix.api_version.clamp(0, 3);
    let body = kafka_protocol::messages::ApiVersionsResponse::default();
    let mut out = bytes::BytesMut::new();
    body.encode(&mut out, version).ok()?;
    // The ApiVersions response header is v0 (the correlation id alone) at every version.
    Some(encode_response_frame(prefix.correlation_id, &out))
}

/// Last successful response from each peer (Kafka's DescribeQuorum last fetch / caught-up time
/// is the nearest equivalent), shared by every client of one node.
#[derive(Debug, Default)]
pub struct PeerContacts {
    last_ok: Mutex<BTreeMap<NodeId, Instant>>,
}

impl PeerContacts {
    pub fn last_contact(&self, peer: NodeId) -> Option<Instant> {
        self.last_ok.lock().unwrap_or_else(|p| p.into_inner()).get(&peer).copied()
    }
    fn record(&self, peer: NodeId) {
        self.last_ok.lock().unwrap_or_else(|p| p.into_inner()).insert(peer, Instant::now());
    }
}

struct Call {
    body: Vec<u8>,
    deadline: tokio::time::Instant,
    reply: oneshot::Sender<Result<Vec<u8>, TransportError>>,
}

/// The one connection to one peer, owned by its task.
struct PeerTask {
    target: NodeId,
    /// Where to connect (`host:port`; a fault test's override already applied).
    addr: String,
    /// The host the peer's certificate must be valid for: the voter's host in the membership.
    server_name: String,
    config: TransportConfig,
    security: PeerSecurity,
    client: Option<BrokerClient>,
    failures: u32,
    retry_at: Option<tokio::time::Instant>,
}

impl PeerTask {
    async fn run(mut self, mut calls: mpsc::Receiver<Call>) {
        while let Some(call) = calls.recv().await {
            if call.reply.is_closed() {
                continue;
            }
            let result = self.call(&call.body, call.deadline).await;
            let _ = call.reply.send(result);
        }
    }

    async fn connect(&mut self, deadline: tokio::time::Instant) -> Result<(), TransportError> {
        // A broken connection, or a SASL session near its end, is replaced.
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        self.client = None;
        if let Some(at) = self.retry_at
            && tokio::time::Instant::now() < at
        {
            return Err(self.unreachable("backing off after a failed connect"));
        }
        let looked_up = tokio::time::timeout_at(deadline, tokio::net::lookup_host(self.addr.clone())).await;
        let resolved = match looked_up {
            Ok(Ok(mut addrs)) => addrs.next(),
            Ok(Err(e)) => return Err(self.connect_failed(e.to_string())),
            Err(_) => return Err(self.connect_failed("resolving timed out".to_string())),
        };
        let Some(addr) = resolved else { return Err(self.connect_failed("resolves to no address".to_string())) };
        let request_timeout = Duration::from_millis(self.config.request_timeout_ms);
        let client_config = ClientConfig {
            client_id: FJORD_RAFT_CLIENT_ID.to_string(),
            connect_timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
            request_timeout,
            max_response_bytes: self.config.request_bytes_max,
            tls: self.security.tls.clone(),
            tls_server_name: Some(self.server_name.clone()),
            sasl: self.security.sasl.clone(),
        };
        match tokio::time::timeout_at(deadline, BrokerClient::connect(addr, client_config)).await {
            Ok(Ok(client)) => {
                self.client = Some(client);
                self.failures = 0;
                self.retry_at = None;
                Ok(())
            }
            // Connected but no answer: the peer is there and slow (or a silent proxy), as a
            // request that times out.
            Ok(Err(ClientError::Timeout(_))) | Err(_) => Err(TransportError::Timeout { target: self.target, timeout_ms: request_timeout.as_millis() as u64 }),
            Ok(Err(e)) => Err(self.connect_failed(e.to_string())),
        }
    }

    fn connect_failed(&mut self, reason: String) -> TransportError {
        self.failures = self.failures.saturating_add(1);
        self.retry_at = Some(tokio::time::Instant::now() + self.config.backoff_after(self.failures));
        self.unreachable(&reason)
    }

    fn unreachable(&self, reason: &str) -> TransportError {
        TransportError::Unreachable { target: self.target, addr: self.addr.clone(), reason: reason.to_string() }
    }

    async fn call(&mut self, body: &[u8], deadline: tokio::time::Instant) -> Result<Vec<u8>, TransportError> {
        self.connect(deadline).await?;
        let Some(client) = self.client.as_ref() else { return Err(self.unreachable("not connected")) };
        let result = match tokio::time::timeout_at(deadline, client.send_private(FJORD_RAFT_API_KEY, FJORD_RAFT_API_VERSION, body)).await {
            Ok(Ok(response)) => Ok(response.to_vec()),
            Ok(Err(ClientError::Timeout(_))) | Err(_) => Err(TransportError::Timeout {
                target: self.target,
                timeout_ms: deadline.saturating_duration_since(tokio::time::Instant::now()).as_millis() as u64,
            }),
            Ok(Err(e)) => Err(TransportError::Io(io::Error::other(e.to_string()))),
        };
        if result.is_err() {
            // The connection's state is unknown (a response may still come): start over.
            self.client = None;
        }
        result
    }
}

/// Each peer's address and the queue of its connection task.
type PeerQueues = BTreeMap<NodeId, (String, mpsc::Sender<Call>)>;

/// openraft's network factory: one connection task per peer, shared by every client of it.
#[derive(Clone)]
pub struct NetworkFactory {
    config: TransportConfig,
    security: PeerSecurity,
    peers: Arc<Mutex<PeerQueues>>,
    contacts: Arc<PeerContacts>,
    /// `fjord.peer.address.overrides`: a peer's address as the membership names it -> where to
    /// connect instead (a fault test's per-link proxy).
    address_overrides: Arc<BTreeMap<String, String>>,
}

impl NetworkFactory {
    pub fn new(config: TransportConfig, security: PeerSecurity, contacts: Arc<PeerContacts>, address_overrides: Arc<BTreeMap<String, String>>) -> NetworkFactory {
        NetworkFactory { config, security, peers: Arc::new(Mutex::new(BTreeMap::new())), contacts, address_overrides }
    }

    /// The connection task to `target` at `addr` (where to connect), whose certificate must be
    /// valid for `server_name`.
    fn peer(&self, target: NodeId, addr: &str, server_name: &str) -> mpsc::Sender<Call> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, tx)) = peers.get(&target)
            && known == addr
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_MAX);
        let task = PeerTask {
            target,
            addr: addr.to_string(),
            server_name: server_name.to_string(),
            config: self.config,
            security: self.security.clone(),
            client: None,
            failures: 0,
            retry_at: None,
        };
        tokio::spawn(task.run(rx));
        peers.insert(target, (addr.to_string(), tx.clone()));
        tx
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let node_addr = super::node_addr(node);
        let addr = self.address_overrides.get(node_addr).map_or(node_addr, String::as_str).to_string();
        // The membership's host (not an override's): what the peer's certificate names.
        let server_name = node_addr.rsplit_once(':').map_or(node_addr, |(host, _)| host).trim_start_matches('[').trim_end_matches(']').to_string();
        PeerClient { target, calls: self.peer(target, &addr, &server_name), config: self.config, contacts: self.contacts.clone() }
    }
}

/// openraft's client to one peer.
pub struct PeerClient {
    target: NodeId,
    calls: mpsc::Sender<Call>,
    config: TransportConfig,
    contacts: Arc<PeerContacts>,
}

impl PeerClient {
    /// The request timeout, cut down to openraft's TTL for this request when that is shorter.
    fn timeout(&self, option: &RPCOption) -> Duration {
        option.hard_ttl().min(Duration::from_millis(self.config.request_timeout_ms))
    }

    async fn request(&self, request: &RaftRequest, timeout: Duration) -> Result<RaftResponse, TransportError> {
        let body = postcard::to_allocvec(request).map_err(|e| TransportError::BadBody(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let (reply, answer) = oneshot::channel();
        self.calls.send(Call { body, deadline, reply }).await.map_err(|_| TransportError::Stopped)?;
        let bytes = match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(TransportError::Stopped),
            Err(_) => return Err(TransportError::Timeout { target: self.target, timeout_ms: timeout.as_millis() as u64 }),
        };
        let response: RaftResponse = postcard::from_bytes(&bytes).map_err(|e| TransportError::BadBody(e.to_string()))?;
        self.contacts.record(self.target);
        Ok(response)
    }
}

fn rpc_error<E: std::error::Error>(e: TransportError) -> RPCError<NodeId, BasicNode, E> {
    match e {
        TransportError::Unreachable { .. } | TransportError::Stopped => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected(what: &str) -> TransportError {
    TransportError::BadBody(format!("unexpected response: {what}"))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.request(&RaftRequest::AppendEntries(rpc), self.timeout(&option)).await.map_err(rpc_error)? {
            RaftResponse::AppendEntries(Ok(r)) => Ok(r),
            RaftResponse::AppendEntries(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            RaftResponse::Malformed(m) => Err(rpc_error(unexpected(&m))),
            other => Err(rpc_error(unexpected(&format!("{other:?}")))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.request(&RaftRequest::Vote(rpc), self.timeout(&option)).await.map_err(rpc_error)? {
            RaftResponse::Vote(Ok(r)) => Ok(r),
            RaftResponse::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            RaftResponse::Malformed(m) => Err(rpc_error(unexpected(&m))),
            other => Err(rpc_error(unexpected(&format!("{other:?}")))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let request = RaftRequest::FullSnapshot { vote, meta: snapshot.meta, data: *snapshot.snapshot };
        // A snapshot may take longer than one ordinary request: openraft's TTL for it, at least
        // the request timeout.
        let ttl = option.hard_ttl().max(Duration::from_millis(self.config.request_timeout_ms));
        let sent = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            sent = self.request(&request, ttl) => sent,
        };
        match sent {
            Ok(RaftResponse::FullSnapshot(Ok(r))) => Ok(r),
            Ok(RaftResponse::FullSnapshot(Err(e))) => Err(StreamingError::RemoteError(RemoteError::new(self.target, e))),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(&unexpected(&format!("{other:?}"))))),
            Err(e @ (TransportError::Unreachable { .. } | TransportError::Stopped)) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
            Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
        }
    }

    fn backoff(&self) -> Backoff {
        let config = self.config;
        Backoff::new((1..).map(move |failures| config.backoff_after(failures)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_frame_round_trips_with_kafka_header_v1() {
        let frame = encode_request_frame(7, FJORD_RAFT_CLIENT_ID, b"body");
        assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize, frame.len() - 4);
        assert_eq!(&frame[4..6], &32000i16.to_be_bytes());
        let (header, body) = parse_request(&frame[4..]).expect("parse");
        assert_eq!(
            header,
            RequestHeader {
                api_key: FJORD_RAFT_API_KEY,
                api_version: 0,
                correlation_id: 7,
                client_id: Some(FJORD_RAFT_CLIENT_ID.to_string())
            }
        );
        assert_eq!(body, b"body");
    }

    #[test]
    fn other_api_keys_and_bad_headers_are_refused() {
        let mut frame = encode_request_frame(1, "c", b"")[4..].to_vec();
        frame[0..2].copy_from_slice(&18i16.to_be_bytes()); // ApiVersions
        assert!(matches!(parse_request(&frame), Err(TransportError::WrongApi { .. })));
        let mut frame = encode_request_frame(1, "c", b"")[4..].to_vec();
        frame[8..10].copy_from_slice(&100i16.to_be_bytes());
        assert!(matches!(parse_request(&frame), Err(TransportError::BadHeader(_))));
        frame[8..10].copy_from_slice(&(-1i16).to_be_bytes());
        let (header, body) = parse_request(&frame).expect("null client id");
        assert_eq!(header.client_id, None);
        assert_eq!(body, b"c");
    }

    #[tokio::test]
    async fn oversized_and_negative_lengths_are_refused_before_allocating() {
        let mut wire: &[u8] = &i32::MAX.to_be_bytes();
        assert!(matches!(read_frame(&mut wire, 1024).await, Err(TransportError::BadLength { .. })));
        let mut wire: &[u8] = &(-5i32).to_be_bytes();
        assert!(matches!(read_frame(&mut wire, 1024).await, Err(TransportError::BadLength { .. })));
        let mut wire: &[u8] = &[];
        assert!(read_frame(&mut wire, 1024).await.expect("eof").is_none());
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let config = TransportConfig::default();
        let waits: Vec<u64> = (1..=6).map(|f| config.backoff_after(f).as_millis() as u64).collect();
        assert_eq!(waits, vec![50, 100, 200, 400, 800, 1000]);
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_unreachable_then_backs_off() {
        // A port that was bound and released: nothing listens there.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let mut factory = NetworkFactory::new(TransportConfig::default(), PeerSecurity::default(), Arc::new(PeerContacts::default()), Arc::default());
        let mut client = factory.new_client(2, &BasicNode::new(addr)).await;
        let vote = VoteRequest::new(Vote::new(1, 1), None);
        let first = client.vote(vote.clone(), RPCOption::new(Duration::from_secs(1))).await;
        assert!(matches!(first, Err(RPCError::Unreachable(_))), "{first:?}");
        let started = Instant::now();
        let second = client.vote(vote, RPCOption::new(Duration::from_secs(1))).await;
        assert!(matches!(second, Err(RPCError::Unreachable(_))), "{second:?}");
        assert!(started.elapsed() < Duration::from_millis(40), "backing off answers at once");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_as_a_network_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let holder = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(stream);
        });
        let config = TransportConfig { request_timeout_ms: 100, ..TransportConfig::default() };
        let mut factory = NetworkFactory::new(config, PeerSecurity::default(), Arc::new(PeerContacts::default()), Arc::default());
        let mut client = factory.new_client(2, &BasicNode::new(addr)).await;
        let started = Instant::now();
        let answer = client.vote(VoteRequest::new(Vote::new(1, 1), None), RPCOption::new(Duration::from_secs(5))).await;
        assert!(matches!(answer, Err(RPCError::Network(_))), "{answer:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "request timeout applies: {:?}", started.elapsed());
        holder.abort();
    }

    #[tokio::test]
    async fn a_peer_address_override_sends_rpcs_to_the_overriding_address() {
        // The membership names a dead port; the override points at a listener (a fault test's
        // proxy), which is where the vote must arrive.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy = listener.local_addr().expect("addr");
        let overrides = Arc::new(BTreeMap::from([(dead.to_string(), proxy.to_string())]));
        let config = TransportConfig { request_timeout_ms: 200, ..TransportConfig::default() };
        let mut factory = NetworkFactory::new(config, PeerSecurity::default(), Arc::new(PeerContacts::default()), overrides);
        let mut client = factory.new_client(2, &BasicNode::new(dead)).await;
        // The accepted stream is held, silent, until the end of the test.
        let accepted = tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(5), listener.accept()).await.ok().and_then(Result::ok) });
        let answer = client.vote(VoteRequest::new(Vote::new(1, 1), None), RPCOption::new(Duration::from_secs(1))).await;
        let held = accepted.await.expect("join");
        assert!(held.is_some(), "the override's listener got the connection");
        assert!(matches!(answer, Err(RPCError::Network(_))), "the silent proxy times out rather than being unreachable: {answer:?}");
    }

    proptest! {
        #[test]
        fn parse_request_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_request(&bytes);
            let _ = postcard::from_bytes::<RaftRequest>(&bytes);
        }
    }
}
