//! The outbound broker client: how one Fjord node talks Kafka to another (a follower's Fetch, a
//! broker's registration and heartbeats to the controller, AlterPartition, transaction markers).
//! One TCP connection per peer; requests are pipelined on it and matched to their responses by
//! correlation id, as Kafka's NetworkClient does. The peer's API versions are learnt once with
//! ApiVersions, and each request goes at the highest version both sides speak. Every response
//! length is checked before it sizes a buffer; a bad frame or a broken connection fails every
//! request waiting on it, and the caller connects again. On a SASL listener the connection logs
//! in right after ApiVersions (SaslHandshake, then SaslAuthenticate: [`sasl`]) before any other
//! request, and logs in again on the same connection a little before its session ends
//! (KIP-368): the requests in flight are answered first, the requests issued meanwhile wait for
//! the new login, and a failed one closes the client. Knows nothing of partitions or logs.

pub mod sasl;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::frame::{FrameError, check_response_len};

/// ApiVersions' error code for a request version the peer does not speak (it then answers v0).
const UNSUPPORTED_VERSION: i16 = 35;
/// Requests queued for the writer of one connection before senders wait.
const SEND_QUEUE_DEPTH: usize = 256;

/// How a client connects and how long it waits (Kafka's names where a broker has them).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Sent in every request header (Kafka's followers send "broker-<id>-fetcher-<n>").
    pub client_id: String,
    pub connect_timeout: Duration,
    /// How long one request may wait for its response (`request.timeout.ms`; for followers
    /// `replica.socket.timeout.ms`).
    pub request_timeout: Duration,
    /// The largest response accepted (for followers: `replica.fetch.response.max.bytes` plus
    /// the response's framing). A longer length prefix closes the connection.
    pub max_response_bytes: usize,
    /// TLS to the peer (an SSL inter-broker listener): its certificate is checked against the
    /// listener's trust store and, with `ssl.endpoint.identification.algorithm=https`, for
    /// `tls_server_name`. None: plaintext.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the peer's certificate must be valid for: its advertised host (a DNS name or an
    /// IP address), as Kafka checks it; None: the address connected to.
    pub tls_server_name: Option<String>,
    /// The SASL login on a SASL_PLAINTEXT or SASL_SSL listener; None: no SASL.
    pub sasl: Option<Arc<crate::config::SaslClientSettings>>,
}

/// Where a broker reaches another: the host it advertises (what its certificate names) and the
/// address that resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub host: String,
    pub addr: SocketAddr,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} ({})", self.host, self.addr.port(), self.addr.ip())
    }
}

impl ClientConfig {
    pub fn new(client_id: impl Into<String>) -> Self {
        ClientConfig {
            client_id: client_id.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 100 << 20,
            tls: None,
            tls_server_name: None,
            sasl: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("no answer from {0} within the timeout")]
    Timeout(SocketAddr),
    #[error("connection to {0} is closed")]
    Disconnected(SocketAddr),
    #[error("bad frame from {addr}: {source}")]
    Frame { addr: SocketAddr, source: FrameError },
    #[error("{addr} does not serve api key {api_key} in versions we speak ({ours:?}; it has {theirs:?})")]
    Unsupported { addr: SocketAddr, api_key: i16, ours: (i16, i16), theirs: Option<(i16, i16)> },
    #[error("encoding a request for {addr}: {reason}")]
    Encode { addr: SocketAddr, reason: String },
    #[error("decoding a response from {addr}: {reason}")]
    Decode { addr: SocketAddr, reason: String },
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("ApiVersions to {addr} answered error {code}")]
    Handshake { addr: SocketAddr, code: i16 },
    /// The SASL login failed: wrong credentials, a mechanism the peer does not enable, or a
    /// peer that could not prove it holds the credential. Retrying with the same settings fails
    /// the same way until an operator changes them.
    #[error("SASL authentication to {addr} as {user} with {mechanism} failed: {reason}")]
    Authentication { addr: SocketAddr, user: String, mechanism: &'static str, reason: String },
}

/// The fraction of a SASL session's lifetime after which a connection logs in again, before
/// the peer ends the session (Kafka's client re-authenticates between 85% and 95% of it).
const SESSION_REFRESH_PERCENT: u64 = 85;
/// Permits of a connection's gate: each request in flight holds one, a re-authentication all of
/// them. Far more than the requests a connection ever has in flight.
const GATE_PERMITS: u32 = 1 << 20;
/// Logins that failed and were logged, by peer and client id (a node's fetcher, its controller
/// channel, ...), kept until one succeeds: a broker retrying a wrong password every backoff logs
/// it once, not once a second. Bounded by the peers and roles a node has.
static AUTH_FAILURES_LOGGED: std::sync::LazyLock<Mutex<std::collections::HashSet<(SocketAddr, String)>>> = std::sync::LazyLock::new(Mutex::default);
const AUTH_FAILURES_LOGGED_MAX: usize = 4096;

fn log_auth_failure(client_id: &str, e: &ClientError) {
    let ClientError::Authentication { addr, .. } = e else { return };
    let mut logged = AUTH_FAILURES_LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if logged.len() >= AUTH_FAILURES_LOGGED_MAX {
        logged.clear();
    }
    if logged.insert((*addr, client_id.to_string())) {
        tracing::error!(peer = %addr, client_id, error = %e, "cannot log in to another node; retrying quietly until it works (check the username and password of the JAAS configuration)");
    } else {
        tracing::debug!(peer = %addr, client_id, error = %e, "SASL authentication failed again");
    }
}

fn log_auth_success(client_id: &str, addr: SocketAddr) {
    if AUTH_FAILURES_LOGGED.lock().unwrap_or_else(|p| p.into_inner()).remove(&(addr, client_id.to_string())) {
        tracing::info!(peer = %addr, client_id, "SASL authentication to the peer succeeds again");
    }
}

/// Waiters for responses, by correlation id.
type Pending = Arc<Mutex<HashMap<i32, oneshot::Sender<Bytes>>>>;

/// A connection to one broker.
#[derive(Debug)]
pub struct BrokerClient {
    addr: SocketAddr,
    config: ClientConfig,
    outgoing: mpsc::Sender<Bytes>,
    pending: Pending,
    next_correlation: AtomicI32,
    closed: Arc<AtomicBool>,
    /// The peer's (min, max) version per api key.
    versions: HashMap<i16, (i16, i16)>,
    /// When the SASL session is due for re-authentication (see [`SESSION_REFRESH_PERCENT`]);
    /// None: no session lifetime.
    reauthenticate_at: Mutex<Option<std::time::Instant>>,
    /// Requests hold a permit from sending until answered; a re-authentication takes every
    /// permit, so it begins once the requests before it are answered (the peer handles a
    /// connection's requests in order, and must see the new login alone) and the requests after
    /// it wait until it ends. Fair: a waiting re-authentication is not overtaken.
    gate: tokio::sync::Semaphore,
    /// The task reading responses: aborted when the client goes, so the connection closes at once
    /// even when the peer never closes its end (a silent peer, a cut link).
    reader: tokio::task::AbortHandle,
}

impl BrokerClient {
    /// Connects and learns the peer's API versions.
    pub async fn connect(addr: SocketAddr, config: ClientConfig) -> Result<BrokerClient, ClientError> {
        let stream = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
            Err(_) => return Err(ClientError::Timeout(addr)),
        };
        let _ = stream.set_nodelay(true);
        let (read, write): (Box<dyn AsyncRead + Send + Unpin>, Box<dyn AsyncWrite + Send + Unpin>) = match &config.tls {
            None => {
                let (read, write) = stream.into_split();
                (Box::new(read), Box::new(write))
            }
            Some(tls) => {
                let name = match config.tls_server_name.as_deref().map(|h| rustls::pki_types::ServerName::try_from(h.to_string())) {
                    Some(Ok(name)) => name,
                    Some(Err(e)) => return Err(ClientError::Connect { addr, source: std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not a server name: {e}")) }),
                    None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                };
                let connector = tokio_rustls::TlsConnector::from(tls.clone());
                let stream = match tokio::time::timeout(config.connect_timeout, connector.connect(name, stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
                    Err(_) => return Err(ClientError::Timeout(addr)),
                };
                let (read, write) = tokio::io::split(stream);
                (Box::new(read), Box::new(write))
            }
        };
        let (outgoing, queued) = mpsc::channel(SEND_QUEUE_DEPTH);
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_frames(write, queued, closed.clone()));
        let reader = tokio::spawn(read_frames(read, pending.clone(), closed.clone(), addr, config.max_response_bytes)).abort_handle();
        let mut client = BrokerClient {
            addr,
            config,
            outgoing,
            pending,
            next_correlation: AtomicI32::new(0),
            closed,
            versions: HashMap::new(),
            reauthenticate_at: Mutex::new(None),
            gate: tokio::sync::Semaphore::new(GATE_PERMITS as usize),
            reader,
        };
        client.versions = client.handshake().await?;
        client.log_in().await?;
        Ok(client)
    }

    /// Logs in when the connection has a SASL login, and sets when to log in again.
    async fn log_in(&self) -> Result<(), ClientError> {
        let Some(sasl) = self.config.sasl.clone() else { return Ok(()) };
        match self.authenticate(&sasl).await {
            Ok(session_lifetime_ms) => {
                log_auth_success(&self.config.client_id, self.addr);
                let due = (session_lifetime_ms > 0).then(|| {
                    let refresh_ms = session_lifetime_ms as u64 * SESSION_REFRESH_PERCENT / 100;
                    std::time::Instant::now() + Duration::from_millis(refresh_ms)
                });
                *self.reauthenticate_at.lock().unwrap_or_else(|p| p.into_inner()) = due;
                Ok(())
            }
            Err(e) => {
                log_auth_failure(&self.config.client_id, &e);
                Err(e)
            }
        }
    }

    fn reauthentication_due(&self) -> bool {
        self.reauthenticate_at.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| std::time::Instant::now() >= at)
    }

    /// Lets a request go out: waits, at most the request timeout, for a permit of the gate, after
    /// re-authenticating first when the session is due for it (KIP-368). The permit is held until
    /// the request is answered.
    async fn admit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ClientError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let timed_out = |_| ClientError::Timeout(self.addr);
        let closed = |_| ClientError::Disconnected(self.addr);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(ClientError::Disconnected(self.addr));
            }
            if !self.reauthentication_due() {
                return tokio::time::timeout_at(deadline, self.gate.acquire()).await.map_err(timed_out)?.map_err(closed);
            }
            let all = tokio::time::timeout_at(deadline, self.gate.acquire_many(GATE_PERMITS)).await.map_err(timed_out)?.map_err(closed)?;
            // Another request may have logged in again while this one waited.
            if self.reauthentication_due() {
                self.reauthenticate().await?;
            }
            drop(all);
        }
    }

    /// Logs in again on this connection; the caller holds every permit of the gate. A failure,
    /// or a caller giving up halfway (the peer then waits for the rest of the exchange), closes
    /// the client: its requests fail with [`ClientError::Disconnected`] and its owner connects
    /// again.
    async fn reauthenticate(&self) -> Result<(), ClientError> {
        struct CloseUnlessDone<'a>(&'a BrokerClient, bool);
        impl Drop for CloseUnlessDone<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    self.0.closed.store(true, Ordering::Release);
                    self.0.gate.close();
                }
            }
        }
        let mut guard = CloseUnlessDone(self, false);
        tracing::debug!(peer = %self.addr, client_id = %self.config.client_id, "SASL session due: re-authenticating on the same connection");
        self.log_in().await?;
        guard.1 = true;
        Ok(())
    }

    /// Logs in: SaslHandshake v1 (tokens inside SaslAuthenticate, as Kafka's client does since
    /// KIP-152), then the mechanism's tokens. The session's lifetime in ms (0: none).
    async fn authenticate(&self, sasl: &crate::config::SaslClientSettings) -> Result<i64, ClientError> {
        use crate::config::SaslMechanism;
        use crate::broker::scram::Mechanism as Scram;
        let mechanism = sasl.mechanism.name();
        let failed = |reason: String| ClientError::Authentication { addr: self.addr, user: sasl.username.clone(), mechanism, reason };
        let handshake_version = match self.peer_versions(SaslHandshakeRequest::KEY) {
            Some((min, max)) if min <= 1 && max >= 1 => 1,
            theirs => return Err(ClientError::Unsupported { addr: self.addr, api_key: SaslHandshakeRequest::KEY, ours: (1, 1), theirs }),
        };
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let answer = self.exchange(&handshake, handshake_version).await?;
        if answer.error_code != 0 {
            let offered: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(failed(format!("the listener does not enable {mechanism} (error {}; it offers {})", answer.error_code, offered.join(", "))));
        }
        let version = self.version_for::<SaslAuthenticateRequest>()?;
        // One token out, the server's token back; a refusal ends the login with its message.
        let exchange = |token: Vec<u8>| async move {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
            let answer = self.exchange(&request, version).await?;
            if answer.error_code != 0 {
                let message = answer.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                return Err(failed(format!("error {}: {message}", answer.error_code)));
            }
            Ok::<_, ClientError>((answer.auth_bytes, answer.session_lifetime_ms))
        };
        let scram = match sasl.mechanism {
            SaslMechanism::Plain => {
                let (_, lifetime) = exchange(sasl::plain_token(&sasl.username, &sasl.password.0)).await?;
                return Ok(lifetime);
            }
            SaslMechanism::ScramSha256 => Scram::Sha256,
            SaslMechanism::ScramSha512 => Scram::Sha512,
            // Refused at startup (config::SaslClientSettings).
            SaslMechanism::OAuthBearer => return Err(failed("a node does not log in with OAUTHBEARER".into())),
        };
        let nonce = crate::server::sasl::server_nonce();
        let (client, first) = sasl::ScramClient::start(scram, &sasl.username, &sasl.password.0, &nonce).map_err(|e| failed(e.to_string()))?;
        let (server_first, _) = exchange(first).await?;
        let (fin, awaiting) = client.server_first(&server_first).map_err(|e| failed(e.to_string()))?;
        let (server_final, lifetime) = exchange(fin).await?;
        awaiting.server_final(&server_final).map_err(|e| failed(e.to_string()))?;
        Ok(lifetime)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the owner should connect again: the connection broke (a bad frame, the peer
    /// closed it, a re-authentication failed); a closed client fails every request with
    /// [`ClientError::Disconnected`]. A SASL session near its end is renewed on the connection.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The peer's (min, max) versions of `api_key`, if it serves it.
    pub fn peer_versions(&self, api_key: i16) -> Option<(i16, i16)> {
        self.versions.get(&api_key).copied()
    }

    /// ApiVersions v3 (with this software's name), or v0 when the peer does not speak v3.
    async fn handshake(&self) -> Result<HashMap<i16, (i16, i16)>, ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("fjord"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.exchange(&request, 3).await?;
        if response.error_code == UNSUPPORTED_VERSION {
            response = self.exchange(&ApiVersionsRequest::default(), 0).await?;
        }
        if response.error_code != 0 {
            return Err(ClientError::Handshake { addr: self.addr, code: response.error_code });
        }
        Ok(response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect())
    }

    /// The highest version of `R` both sides speak.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        let ours = (R::VERSIONS.min, R::VERSIONS.max);
        let theirs = self.peer_versions(R::KEY);
        match theirs {
            Some((min, max)) if max.min(ours.1) >= min.max(ours.0) => Ok(max.min(ours.1)),
            _ => Err(ClientError::Unsupported { addr: self.addr, api_key: R::KEY, ours, theirs }),
        }
    }

    /// Sends `request` at the highest version both sides speak and waits for its response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, ClientError> {
        let version = self.version_for::<R>()?;
        self.send_version(request, version).await
    }

    /// Sends `request` at `version` and waits, at most the request timeout, for its response
    /// (and as long again at most while the connection logs in again).
    pub async fn send_version<R: Request>(&self, request: &R, version: i16) -> Result<R::Response, ClientError> {
        let _permit = self.admit().await?;
        self.exchange(request, version).await
    }

    /// Sends `request` at `version` past the gate (the login's own exchanges) and waits, at most
    /// the request timeout, for its response.
    async fn exchange<R: Request>(&self, request: &R, version: i16) -> Result<R::Response, ClientError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ClientError::Disconnected(self.addr));
        }
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let frame = self.encode(request, version, correlation_id)?;
        let mut body = self.round_trip(correlation_id, frame).await?;
        let decode_error = |e: anyhow::Error| ClientError::Decode { addr: self.addr, reason: e.to_string() };
        // The ApiVersions response header is v0 at every version, so an old peer's answer to a
        // newer request parses.
        let header_version = if R::KEY == 18 { 0 } else { R::Response::header_version(version) };
        ResponseHeader::decode(&mut body, header_version).map_err(decode_error)?;
        R::Response::decode(&mut body, version).map_err(decode_error)
    }

    /// Sends a request of Fjord's private `api_key` (outside Kafka's range; the peer must be a
    /// Fjord node) with `body` under a v1 request header, and returns the response body after
    /// its v0 header. Waits at most the request timeout (and as long again at most while the
    /// connection logs in again).
    pub async fn send_private(&self, api_key: i16, version: i16, body: &[u8]) -> Result<Bytes, ClientError> {
        let _permit = self.admit().await?;
        if self.closed.load(Ordering::Acquire) {
            return Err(ClientError::Disconnected(self.addr));
        }
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let frame = crate::raft::transport::encode_private_request_frame(api_key, version, correlation_id, &self.config.client_id, body);
        let mut response = self.round_trip(correlation_id, Bytes::from(frame)).await?;
        if response.len() < 4 {
            return Err(ClientError::Decode { addr: self.addr, reason: "response shorter than its header".into() });
        }
        Ok(response.split_off(4))
    }

    /// Queues `frame` and waits, at most the request timeout, for the response under
    /// `correlation_id` (its body, response header included).
    async fn round_trip(&self, correlation_id: i32, frame: Bytes) -> Result<Bytes, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(correlation_id, reply);
        let forget = || drop(self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&correlation_id));
        let waited = tokio::time::timeout(self.config.request_timeout, async {
            self.outgoing.send(frame).await.map_err(|_| ClientError::Disconnected(self.addr))?;
            answer.await.map_err(|_| ClientError::Disconnected(self.addr))
        })
        .await;
        match waited {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => {
                forget();
                Err(e)
            }
            Err(_) => {
                // A late answer finds no waiter and is dropped.
                forget();
                Err(ClientError::Timeout(self.addr))
            }
        }
    }

    fn encode<R: Request>(&self, request: &R, version: i16, correlation_id: i32) -> Result<Bytes, ClientError> {
        let encode_error = |e: anyhow::Error| ClientError::Encode { addr: self.addr, reason: e.to_string() };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.config.client_id.clone())));
        let header_version = R::header_version(version);
        let size = header.compute_size(header_version).map_err(encode_error)? + request.compute_size(version).map_err(encode_error)?;
        let len = i32::try_from(size).map_err(|_| ClientError::Encode { addr: self.addr, reason: format!("{size} bytes") })?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(len);
        header.encode(&mut buf, header_version).map_err(encode_error)?;
        request.encode(&mut buf, version).map_err(encode_error)?;
        Ok(buf.freeze())
    }
}

impl Drop for BrokerClient {
    fn drop(&mut self) {
        // The writer ends when the last sender goes; the reader is stopped here, which drops the
        // socket's read half: with the write half gone too, the connection closes. (Left to the
        // peer, a reader on a silent or cut connection would live on with its socket.)
        self.closed.store(true, Ordering::Release);
        self.reader.abort();
    }
}

async fn write_frames(mut write: Box<dyn AsyncWrite + Send + Unpin>, mut queued: mpsc::Receiver<Bytes>, closed: Arc<AtomicBool>) {
    while let Some(frame) = queued.recv().await {
        if write.write_all(&frame).await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Release);
    let _ = write.shutdown().await;
}

/// Reads response frames until the connection ends or a frame is bad, handing each to its
/// waiter; then fails every waiter (dropping them) and marks the client closed.
async fn read_frames(mut read: Box<dyn AsyncRead + Send + Unpin>, pending: Pending, closed: Arc<AtomicBool>, addr: SocketAddr, max_bytes: usize) {
    loop {
        let mut prefix = [0u8; 4];
        if read.read_exact(&mut prefix).await.is_err() {
            break;
        }
        let len = match check_response_len(prefix, max_bytes) {
            Ok(len) => len,
            Err(source) => {
                tracing::warn!(peer = %addr, error = %source, "closing the connection to a broker: bad response frame");
                break;
            }
        };
        let mut frame = vec![0u8; len];
        if read.read_exact(&mut frame).await.is_err() {
            break;
        }
        // At least the correlation id is there (checked with the length); the decoder reads the
        // whole header again.
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let waiter = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&correlation_id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Bytes::from(frame));
            }
            None => tracing::debug!(peer = %addr, correlation_id, "response nobody waits for (timed out)"),
        }
    }
    closed.store(true, Ordering::Release);
    pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use tokio::net::TcpListener;

    fn quick() -> ClientConfig {
        ClientConfig { request_timeout: Duration::from_millis(300), connect_timeout: Duration::from_secs(2), ..ClientConfig::new("test") }
    }

    /// What a fake SASL peer saw on its one connection.
    #[derive(Default)]
    struct PeerLog {
        /// Api keys in the order received.
        keys: Vec<i16>,
        /// A SaslHandshake arrived while a request was unanswered, or a request between a
        /// SaslHandshake and its SaslAuthenticate.
        violations: Vec<String>,
    }

    fn response_frame<R: Encodable>(correlation_id: i32, body: &R, version: i16, flexible: bool) -> Bytes {
        let mut out = BytesMut::new();
        let size = 4 + usize::from(flexible) + body.compute_size(version).unwrap();
        out.put_i32(size as i32);
        out.put_i32(correlation_id);
        if flexible {
            out.put_u8(0);
        }
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    /// A peer serving one SASL_PLAINTEXT connection (PLAIN, sessions of `session_ms`): every
    /// SaslAuthenticate after the `logins_allowed`-th fails. Metadata is answered 50 ms late,
    /// from a task of its own, so requests are in flight together.
    async fn sasl_peer(session_ms: i64, logins_allowed: usize) -> (SocketAddr, Arc<Mutex<PeerLog>>, tokio::task::JoinHandle<()>) {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use kafka_protocol::messages::{MetadataResponse, SaslAuthenticateResponse, SaslHandshakeResponse};
        use std::sync::atomic::AtomicUsize;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(PeerLog::default()));
        let seen = log.clone();
        let peer = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let (mut read, mut write) = s.into_split();
            let (tx, mut rx) = mpsc::channel::<Bytes>(64);
            let unanswered = Arc::new(AtomicUsize::new(0));
            let answered = unanswered.clone();
            let writer = tokio::spawn(async move {
                while let Some(f) = rx.recv().await {
                    // Counted as answered before the client can see it: a violation is never
                    // one of timing.
                    answered.fetch_sub(1, Ordering::AcqRel);
                    if write.write_all(&f).await.is_err() {
                        return;
                    }
                }
            });
            let (mut logins, mut in_handshake) = (0, false);
            loop {
                let mut prefix = [0u8; 4];
                if read.read_exact(&mut prefix).await.is_err() {
                    break;
                }
                let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
                read.read_exact(&mut frame).await.unwrap();
                let mut frame = Bytes::from(frame);
                let key = i16::from_be_bytes([frame[0], frame[1]]);
                let version = i16::from_be_bytes([frame[2], frame[3]]);
                let header_version = match key {
                    18 => ApiVersionsRequest::header_version(version),
                    17 => SaslHandshakeRequest::header_version(version),
                    36 => SaslAuthenticateRequest::header_version(version),
                    _ => MetadataRequest::header_version(version),
                };
                let corr = RequestHeader::decode(&mut frame, header_version).unwrap().correlation_id;
                {
                    let mut seen = seen.lock().unwrap();
                    seen.keys.push(key);
                    if key == 17 && unanswered.load(Ordering::Acquire) > 0 {
                        let n = seen.keys.len();
                        seen.violations.push(format!("SaslHandshake with requests unanswered (request {n})"));
                    }
                    if in_handshake && key != 36 {
                        seen.violations.push(format!("api key {key} during a login"));
                    }
                }
                in_handshake = key == 17;
                unanswered.fetch_add(1, Ordering::AcqRel);
                let answer = match key {
                    18 => {
                        let keys = [(18, 0, 3), (17, 0, 1), (36, 0, 2), (3, 0, 12)];
                        let body = ApiVersionsResponse::default().with_api_keys(keys.iter().map(|&(k, min, max)| ApiVersion::default().with_api_key(k).with_min_version(min).with_max_version(max)).collect());
                        response_frame(corr, &body, version, false)
                    }
                    17 => response_frame(corr, &SaslHandshakeResponse::default().with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]), version, false),
                    36 => {
                        logins += 1;
                        let body = if logins <= logins_allowed {
                            SaslAuthenticateResponse::default().with_session_lifetime_ms(session_ms)
                        } else {
                            SaslAuthenticateResponse::default().with_error_code(58).with_error_message(Some(StrBytes::from_static_str("Authentication failed")))
                        };
                        response_frame(corr, &body, version, version >= 2)
                    }
                    _ => {
                        let (tx, f) = (tx.clone(), response_frame(corr, &MetadataResponse::default(), version, version >= 9));
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let _ = tx.send(f).await;
                        });
                        continue;
                    }
                };
                if tx.send(answer).await.is_err() {
                    break;
                }
            }
            drop(tx);
            let _ = writer.await;
        });
        (addr, log, peer)
    }

    fn plain_login() -> ClientConfig {
        let sasl = crate::config::SaslClientSettings { mechanism: crate::config::SaslMechanism::Plain, username: "broker".into(), password: crate::config::Secret("secret".into()) };
        ClientConfig { request_timeout: Duration::from_secs(5), sasl: Some(Arc::new(sasl)), ..ClientConfig::new("test") }
    }

    #[tokio::test]
    async fn a_due_session_is_renewed_on_the_connection_after_the_requests_in_flight() {
        // Sessions of 400 ms: a new login at 340 ms, several within the test.
        let (addr, log, peer) = sasl_peer(400, usize::MAX).await;
        let client = Arc::new(BrokerClient::connect(addr, plain_login()).await.expect("login"));
        // Four senders, so requests are in flight when the session falls due; they go on until
        // the peer saw three renewals (a loaded machine only makes that take longer).
        let logins = |log: &Mutex<PeerLog>| log.lock().unwrap().keys.iter().filter(|&&k| k == 36).count();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let (client, log) = (client.clone(), log.clone());
                tokio::spawn(async move {
                    let mut served = 0;
                    while logins(&log) < 4 && std::time::Instant::now() < deadline {
                        client.send(&MetadataRequest::default()).await.expect("served across sessions");
                        served += 1;
                    }
                    served
                })
            })
            .collect();
        for s in senders {
            assert!(s.await.unwrap() > 3);
        }
        assert!(!client.is_closed());
        drop(client);
        peer.await.unwrap();
        assert!(logins(&log) >= 4, "the first login and three renewals on the one connection: {}", logins(&log));
        let log = log.lock().unwrap();
        assert!(log.violations.is_empty(), "{:?}", log.violations);
    }

    #[tokio::test]
    async fn a_failed_reauthentication_closes_the_client() {
        let (addr, log, peer) = sasl_peer(300, 1).await;
        let client = BrokerClient::connect(addr, plain_login()).await.expect("login");
        client.send(&MetadataRequest::default()).await.expect("served in the session");
        // 85% of the session: the next request logs in again first, and is refused with it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = client.send(&MetadataRequest::default()).await.unwrap_err();
        assert!(matches!(err, ClientError::Authentication { .. }), "{err}");
        assert!(client.is_closed(), "the owner connects again");
        let err = client.send(&MetadataRequest::default()).await.unwrap_err();
        assert!(matches!(err, ClientError::Disconnected(_)), "{err}");
        drop(client);
        peer.await.unwrap();
        assert_eq!(log.lock().unwrap().keys, [18, 17, 36, 3, 17, 36], "no request after the refused login");
    }

    #[tokio::test]
    async fn a_silent_peer_times_the_handshake_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let err = BrokerClient::connect(addr, quick()).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout(a) if a == addr), "{err}");
        held.abort();
    }

    #[tokio::test]
    async fn a_client_that_gave_up_closes_its_connection_though_the_peer_never_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        assert!(BrokerClient::connect(addr, quick()).await.is_err());
        let mut s = held.await.unwrap().unwrap();
        // The peer reads the ApiVersions request, then the close: no task keeps the socket open.
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the client's side was not shut down");
        // And nothing reads there any more: bytes the peer sends now are refused (a reset), where
        // a reader left running would take them and wait for the rest of the frame.
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if s.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(refused.is_ok(), "the client's socket is still open for reading");
    }

    #[tokio::test]
    async fn an_oversized_response_closes_the_connection_before_anything_is_allocated() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut prefix = [0u8; 4];
            s.read_exact(&mut prefix).await.unwrap();
            let mut request = vec![0u8; i32::from_be_bytes(prefix) as usize];
            s.read_exact(&mut request).await.unwrap();
            // A length prefix of 2 GiB - 1: refused from the prefix alone.
            s.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
            s
        });
        let err = BrokerClient::connect(addr, ClientConfig { max_response_bytes: 1 << 20, ..quick() }).await.unwrap_err();
        assert!(matches!(err, ClientError::Disconnected(_)), "the waiter is failed, not left hanging: {err}");
        drop(peer.await.unwrap());
    }

    #[tokio::test]
    async fn a_version_neither_side_shares_is_refused_before_sending() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A peer that answers ApiVersions v3 with only ApiVersions 0-3 served.
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut prefix = [0u8; 4];
            s.read_exact(&mut prefix).await.unwrap();
            let mut request = Bytes::from({
                let mut r = vec![0u8; i32::from_be_bytes(prefix) as usize];
                s.read_exact(&mut r).await.unwrap();
                r
            });
            let header = RequestHeader::decode(&mut request, 2).unwrap();
            let body = ApiVersionsResponse::default().with_api_keys(vec![
                kafka_protocol::messages::api_versions_response::ApiVersion::default().with_api_key(18).with_min_version(0).with_max_version(3),
            ]);
            let mut out = BytesMut::new();
            let size = 4 + body.compute_size(3).unwrap();
            out.put_i32(size as i32);
            out.put_i32(header.correlation_id);
            body.encode(&mut out, 3).unwrap();
            s.write_all(&out).await.unwrap();
            s
        });
        let client = BrokerClient::connect(addr, quick()).await.expect("handshake");
        assert_eq!(client.peer_versions(18), Some((0, 3)));
        let err = client.send(&MetadataRequest::default()).await.unwrap_err();
        assert!(matches!(err, ClientError::Unsupported { api_key: 3, theirs: None, .. }), "{err}");
        drop(peer.await.unwrap());
    }
}
