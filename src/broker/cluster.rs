//! What a broker in a metadata quorum knows of the cluster: the latest metadata image this node
//! has applied (shared with the Raft state machine that applies it, which lives in `node`), its
//! own registration, and the channel to the active controller. A single node without a quorum
//! has none of this (`Broker::cluster` is `None`) and answers from its own metadata as before.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::{AllocateProducerIdsRequest, BrokerId, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::Request;
use tokio::sync::{Mutex, watch};

use crate::client::{BrokerClient, ClientConfig, ClientError};
use crate::metadata::MetadataImage;

/// The image this node applied last and its log offset; watchers wake on every change.
pub struct ClusterState {
    pub node_id: i32,
    image: RwLock<Arc<MetadataImage>>,
    applied: watch::Sender<u64>,
    /// This broker's epoch from its latest registration (-1 before it registered).
    broker_epoch: AtomicI64,
    pub controllers: ControllerChannel,
    /// Partitions with an AlterPartition in flight.
    pub pending_isr: super::isr::PendingIsr,
    /// Set once the controller said this broker caught up with the metadata log (its applied
    /// offset reached its registration): the publisher acts on no image before that.
    caught_up: watch::Sender<bool>,
    /// Set once the publisher acted on the first caught-up image: the client listener accepts
    /// nothing before that, as Kafka's broker enables request processing only after its initial
    /// catch-up (a restarted node replaying the metadata log would otherwise answer Metadata from
    /// the past images on the way, naming leaders long gone).
    published: watch::Sender<bool>,
    /// The runtime that carries this node's network calls, for request handler threads that
    /// must wait for one.
    pub runtime: tokio::runtime::Handle,
    /// Connections to other brokers (transaction markers), by address.
    peers: Mutex<std::collections::HashMap<std::net::SocketAddr, Arc<BrokerClient>>>,
    /// TLS to the other brokers when the inter-broker listener is SSL (set once at startup).
    inter_broker_tls: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
    /// The SASL login to the other brokers when the inter-broker listener is SASL (set once).
    inter_broker_sasl: std::sync::OnceLock<Arc<crate::config::SaslClientSettings>>,
    /// `fjord.peer.address.overrides` (set once at startup): where connections to another
    /// broker's endpoint go instead.
    peer_address_overrides: std::sync::OnceLock<crate::config::PeerAddressOverrides>,
}

impl ClusterState {
    pub fn new(node_id: i32, controllers: ControllerChannel) -> ClusterState {
        ClusterState {
            node_id,
            image: RwLock::new(Arc::new(MetadataImage::new())),
            applied: watch::channel(0).0,
            broker_epoch: AtomicI64::new(-1),
            controllers,
            pending_isr: Default::default(),
            caught_up: watch::channel(false).0,
            published: watch::channel(false).0,
            runtime: tokio::runtime::Handle::current(),
            peers: Mutex::new(std::collections::HashMap::new()),
            inter_broker_tls: std::sync::OnceLock::new(),
            inter_broker_sasl: std::sync::OnceLock::new(),
            peer_address_overrides: std::sync::OnceLock::new(),
        }
    }

    /// Brokers reach each other over TLS with `tls` (an SSL inter-broker listener).
    pub fn set_inter_broker_tls(&self, tls: Arc<rustls::ClientConfig>) {
        let _ = self.inter_broker_tls.set(tls);
    }

    /// Brokers log in to each other with `sasl` (a SASL inter-broker listener).
    pub fn set_inter_broker_sasl(&self, sasl: Arc<crate::config::SaslClientSettings>) {
        let _ = self.inter_broker_sasl.set(sasl);
    }

    /// The SASL login of connections to other brokers; None: no SASL.
    pub fn inter_broker_sasl(&self) -> Option<Arc<crate::config::SaslClientSettings>> {
        self.inter_broker_sasl.get().cloned()
    }

    /// Connections to other brokers' endpoints go where `overrides` says (a fault test's proxies).
    pub fn set_peer_address_overrides(&self, overrides: crate::config::PeerAddressOverrides) {
        let _ = self.peer_address_overrides.set(overrides);
    }

    /// The TLS of connections to other brokers; None: plaintext.
    pub fn inter_broker_tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.inter_broker_tls.get().cloned()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The state machine's hand-over: `image` is the state after the entry at `offset`.
    pub fn publish(&self, image: Arc<MetadataImage>, offset: u64) {
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = image;
        self.applied.send_replace(offset);
    }

    /// The offset of the last applied metadata entry (a heartbeat's current metadata offset).
    pub fn applied_offset(&self) -> u64 {
        *self.applied.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Waits until this node has applied `offset`, up to `timeout`; whether it did.
    pub async fn wait_for_offset(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= offset)).await.is_ok_and(|r| r.is_ok())
    }

    /// The controller's heartbeat answer said this broker has caught up with the metadata log.
    pub fn set_caught_up(&self) {
        self.caught_up.send_if_modified(|c| !std::mem::replace(c, true));
    }

    /// Waits until [`ClusterState::set_caught_up`].
    pub async fn wait_caught_up(&self) {
        let mut rx = self.caught_up.subscribe();
        let _ = rx.wait_for(|c| *c).await.map(|_| ());
    }

    /// The publisher brought the broker up to a caught-up image: clients may be served.
    pub fn set_published(&self) {
        self.published.send_if_modified(|c| !std::mem::replace(c, true));
    }

    /// Waits until [`ClusterState::set_published`].
    pub async fn wait_published(&self) {
        let mut rx = self.published.subscribe();
        let _ = rx.wait_for(|c| *c).await.map(|_| ());
    }

    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    /// A connection to the broker at `peer`, made when there is none or the last one broke.
    pub async fn peer(&self, peer: &crate::client::PeerAddr, client_id: &str) -> Result<Arc<BrokerClient>, ClientError> {
        let addr = peer.addr;
        let mut peers = self.peers.lock().await;
        if let Some(c) = peers.get(&addr)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let config = ClientConfig { tls: self.inter_broker_tls(), tls_server_name: Some(peer.host.clone()), sasl: self.inter_broker_sasl(), ..ClientConfig::new(client_id) };
        let client = Arc::new(BrokerClient::connect(addr, config).await?);
        peers.insert(addr, client.clone());
        Ok(client)
    }

    /// Runs `f` on the node's runtime and waits for it on this (request handler) thread. Callers
    /// are handler threads or `spawn_blocking`; should one be a runtime worker after all (a task
    /// that calls a blocking coordinator write), the wait first hands the worker's other tasks to
    /// another thread (`block_in_place`): blocked workers would otherwise wait for futures no
    /// worker is left to run, and the runtime's timers with them, for good.
    pub fn wait_on<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            let _ = tx.send(f.await);
        });
        match tokio::runtime::Handle::try_current() {
            // Off a worker (a handler or blocking thread) it only blocks this thread.
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| rx.recv().ok()),
            _ => rx.recv().ok(),
        }
    }

    /// `request` to the broker at `peer`, waited for on this (request handler) thread.
    pub fn send_to_broker<R: Request + Send + Sync + 'static>(self: &Arc<Self>, peer: crate::client::PeerAddr, client_id: String, request: R) -> Option<Result<R::Response, String>>
    where
        R::Response: Send,
    {
        let c = self.clone();
        self.wait_on(async move {
            match c.peer(&peer, &client_id).await {
                Ok(client) => client.send(&request).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Where other brokers reach broker `id`: its endpoint on `listener` (the inter-broker
    /// listener), else its first; connected to at that endpoint's `fjord.peer.address.overrides`
    /// entry when it has one (the certificate is still checked for the advertised host).
    pub fn broker_addr(&self, id: i32, listener: Option<&str>) -> Option<crate::client::PeerAddr> {
        use std::net::ToSocketAddrs;
        let image = self.image();
        let registration = image.broker(id)?;
        let endpoint = registration.end_points.iter().find(|e| Some(e.name.as_str()) == listener).or(registration.end_points.first())?;
        let addr = match self.peer_address_overrides.get().filter(|o| !o.is_empty()) {
            Some(overrides) => overrides.apply(&format!("{}:{}", endpoint.host, endpoint.port)).to_socket_addrs().ok()?.next()?,
            None => (endpoint.host.as_str(), endpoint.port).to_socket_addrs().ok()?.next()?,
        };
        Some(crate::client::PeerAddr { host: endpoint.host.clone(), addr })
    }

    /// `request` at the active controller, found again while a voter answers NOT_CONTROLLER
    /// (`not_controller` reads that from the response) or none answers, until `timeout`.
    pub async fn to_controller<R: Request>(&self, request: &R, not_controller: impl Fn(&R::Response) -> bool, timeout: Duration) -> Result<R::Response, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no controller answered");
        while tokio::time::Instant::now() < deadline {
            match self.controllers.send(request).await {
                Ok(r) if not_controller(&r) => {
                    self.controllers.not_controller().await;
                    last = "no active controller".into();
                }
                Ok(r) => return Ok(r),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(CONTROLLER_RETRY).await;
        }
        Err(last)
    }

    /// Waits until `seen` holds or `deadline` passes: a broker that asked the controller for a
    /// change waits for the applied metadata to bring it here before it answers. False on
    /// timeout.
    pub async fn until_seen(deadline: tokio::time::Instant, seen: impl Fn() -> bool) -> bool {
        while !seen() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// CreateTopics at the active controller.
    pub async fn create_topics(&self, request: &CreateTopicsRequest, timeout: Duration) -> Result<CreateTopicsResponse, String> {
        self.to_controller(request, |r: &CreateTopicsResponse| r.topics.iter().any(|t| t.error_code == NOT_CONTROLLER), timeout).await
    }

    /// A block of producer ids from the active controller (AllocateProducerIds): `(first, len)`,
    /// asked again while no controller answers or it says NOT_CONTROLLER, until `timeout`.
    pub async fn allocate_producer_ids(&self, timeout: Duration) -> Result<(i64, i64), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no controller answered");
        while tokio::time::Instant::now() < deadline {
            let request = AllocateProducerIdsRequest::default().with_broker_id(BrokerId(self.node_id)).with_broker_epoch(self.broker_epoch());
            match self.controllers.send(&request).await {
                Ok(r) if r.error_code == NOT_CONTROLLER => {
                    self.controllers.not_controller().await;
                    last = "no active controller".into();
                }
                Ok(r) if r.error_code == 0 && r.producer_id_start.0 >= 0 && r.producer_id_len > 0 => {
                    return Ok((r.producer_id_start.0, r.producer_id_len as i64));
                }
                // Not registered yet (STALE_BROKER_EPOCH, ...): registration comes first.
                Ok(r) => last = format!("controller error {}", r.error_code),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(CONTROLLER_RETRY).await;
        }
        Err(last)
    }
}

/// Kafka's NOT_CONTROLLER.
pub const NOT_CONTROLLER: i16 = 41;
/// How long a request waits before trying the controller again.
const CONTROLLER_RETRY: Duration = Duration::from_millis(100);

/// Where a node learns the voters of a dynamic quorum (KIP-853) as they change.
pub enum VoterSource {
    /// A static quorum: `controller.quorum.voters` alone.
    Fixed,
    /// A voter: its Raft membership (`host:port` by node id; None while it holds none).
    Membership(Box<dyn Fn() -> Option<BTreeMap<i32, String>> + Send + Sync>),
    /// A broker-only node that learned the voters from `controller.quorum.bootstrap.servers`:
    /// each new connection asks the voter it reached (DescribeCluster for controller endpoints,
    /// KIP-919) who the voters are and who leads, as Kafka's brokers follow the leader they
    /// are told of.
    Ask,
}

/// Requests from this broker to the active controller (registration, heartbeats, AlterPartition,
/// forwarded CreateTopics): one connection to the voter believed active, replaced when it breaks
/// or answers NOT_CONTROLLER (the caller then calls [`ControllerChannel::not_controller`]).
pub struct ControllerChannel {
    voters: std::sync::RwLock<BTreeMap<i32, String>>,
    source: VoterSource,
    /// Who the local Raft node believes leads the quorum, when this node is a voter.
    leader_hint: Box<dyn Fn() -> Option<i32> + Send + Sync>,
    config: ClientConfig,
    /// The host each voter's certificate must be valid for (its `controller.quorum.voters`
    /// host), when the controller listener has TLS.
    server_names: BTreeMap<i32, String>,
    current: Mutex<Option<(i32, Arc<BrokerClient>)>>,
    /// The voter tried last when no leader is known (round robin).
    next_guess: std::sync::atomic::AtomicUsize,
}

impl ControllerChannel {
    pub fn new(voters: BTreeMap<i32, String>, leader_hint: Box<dyn Fn() -> Option<i32> + Send + Sync>, config: ClientConfig) -> ControllerChannel {
        ControllerChannel { voters: std::sync::RwLock::new(voters), source: VoterSource::Fixed, leader_hint, config, server_names: BTreeMap::new(), current: Mutex::new(None), next_guess: Default::default() }
    }

    /// The voters change with the quorum's membership, learned from `source`.
    pub fn with_voter_source(mut self, source: VoterSource) -> ControllerChannel {
        self.source = source;
        self
    }

    /// The voters this channel knows now (node id, `host:port`).
    pub fn voters(&self) -> BTreeMap<i32, String> {
        self.voters.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Each voter's certificate is checked for its host in `names` (by node id), not for the
    /// address connected to (which a fault test's override may change).
    pub fn with_server_names(mut self, names: BTreeMap<i32, String>) -> ControllerChannel {
        self.server_names = names;
        self
    }

    /// Sends `request` to the voter believed active and returns its answer (which may still say
    /// NOT_CONTROLLER: see [`ControllerChannel::not_controller`]).
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, ClientError> {
        let client = self.client().await?;
        let result = client.send(request).await;
        if result.is_err() {
            self.current.lock().await.take();
        }
        result
    }

    /// As [`ControllerChannel::send`], a request of one of Fjord's private api keys
    /// ([`BrokerClient::send_private`]): its response body.
    pub async fn send_private(&self, api_key: i16, version: i16, body: &[u8]) -> Result<bytes::Bytes, ClientError> {
        let client = self.client().await?;
        let result = client.send_private(api_key, version, body).await;
        if result.is_err() {
            self.current.lock().await.take();
        }
        result
    }

    /// The voter asked last is not the active controller: the next request looks again.
    pub async fn not_controller(&self) {
        self.current.lock().await.take();
    }

    async fn client(&self) -> Result<Arc<BrokerClient>, ClientError> {
        let mut current = self.current.lock().await;
        if let VoterSource::Membership(membership) = &self.source
            && let Some(voters) = membership().filter(|v| !v.is_empty())
        {
            *self.voters.write().unwrap_or_else(|e| e.into_inner()) = voters;
        }
        let voters = self.voters();
        let hinted = (self.leader_hint)().filter(|id| voters.contains_key(id));
        // The open connection serves until its voter says it does not lead (the caller's
        // `not_controller`), it breaks, or the local Raft node names another leader. A node
        // without a hint (broker-only) must not guess anew per request: its heartbeats, AlterPartition
        // and forwarded requests would then reconnect each time and, taking turns over the voters
        // at fixed intervals, could keep missing the leader for many seconds.
        if let Some((id, client)) = current.as_ref()
            && !client.is_closed()
            && hinted.is_none_or(|h| h == *id)
        {
            return Ok(client.clone());
        }
        let target = match hinted {
            Some(id) => id,
            None => {
                let ids: Vec<i32> = voters.keys().copied().collect();
                *ids.get(self.next_guess.fetch_add(1, Ordering::Relaxed) % ids.len().max(1)).ok_or_else(|| ClientError::Resolve("no voter of the metadata quorum is known".into()))?
            }
        };
        let client = self.connect(target, &voters[&target]).await?;
        if !matches!(self.source, VoterSource::Ask) {
            *current = Some((target, client.clone()));
            return Ok(client);
        }
        // Ask the voter reached who the voters are and who leads; go to the leader it names.
        let (target, client) = match self.ask_voters(&client).await {
            Some((learned, Some(leader))) if leader != target => {
                let hostport = learned[&leader].clone();
                *self.voters.write().unwrap_or_else(|e| e.into_inner()) = learned;
                (leader, self.connect(leader, &hostport).await?)
            }
            Some((learned, _)) => {
                *self.voters.write().unwrap_or_else(|e| e.into_inner()) = learned;
                (target, client)
            }
            None => (target, client),
        };
        *current = Some((target, client.clone()));
        Ok(client)
    }

    /// On a broker-only node of a dynamic quorum ([`VoterSource::Ask`]): asks the voter this
    /// channel reaches who the voters and the leader are now, so that voters added later are
    /// known when the ones known before are gone; a leader elsewhere drops the connection.
    pub async fn refresh_voters(&self) {
        if !matches!(self.source, VoterSource::Ask) {
            return;
        }
        let Ok(client) = self.client().await else { return };
        if let Some((learned, leader)) = self.ask_voters(&client).await {
            *self.voters.write().unwrap_or_else(|e| e.into_inner()) = learned;
            let mut current = self.current.lock().await;
            if leader.is_some() && current.as_ref().is_some_and(|(id, _)| Some(*id) != leader) {
                current.take();
            }
        }
    }

    async fn connect(&self, target: i32, hostport: &str) -> Result<Arc<BrokerClient>, ClientError> {
        let addr = tokio::net::lookup_host(hostport).await.ok().and_then(|mut a| a.next()).ok_or_else(|| ClientError::Resolve(hostport.to_string()))?;
        let config = ClientConfig { tls_server_name: self.server_names.get(&target).cloned().or_else(|| self.config.tls_server_name.clone()), ..self.config.clone() };
        Ok(Arc::new(BrokerClient::connect(addr, config).await?))
    }

    /// DescribeCluster for controller endpoints at a voter: the voters (never empty) and the
    /// leader when it is one of them; None when it does not answer so.
    async fn ask_voters(&self, client: &BrokerClient) -> Option<(BTreeMap<i32, String>, Option<i32>)> {
        use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
        let answer: DescribeClusterResponse = client.send_version(&DescribeClusterRequest::default().with_endpoint_type(2), 1).await.ok()?;
        if answer.error_code != 0 || answer.brokers.is_empty() {
            return None;
        }
        let voters: BTreeMap<i32, String> = answer.brokers.iter().map(|b| (b.broker_id.0, format!("{}:{}", b.host, b.port))).collect();
        let leader = Some(answer.controller_id.0).filter(|l| voters.contains_key(l));
        Some((voters, leader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::tests::register;

    fn state_with_broker_2() -> ClusterState {
        let channel = ControllerChannel::new(BTreeMap::new(), Box::new(|| None), ClientConfig::new("test"));
        let state = ClusterState::new(1, channel);
        let mut image = MetadataImage::new();
        image.apply(&register(2, 1, None, false)).expect("register");
        state.publish(Arc::new(image), 1);
        state
    }

    #[tokio::test]
    async fn broker_addr_is_the_registered_endpoint_unless_an_override_names_it() {
        let plain = state_with_broker_2();
        assert_eq!(plain.broker_addr(2, Some("PLAINTEXT")).map(|p| p.addr), Some("127.0.0.1:9092".parse().unwrap()));
        let proxied = state_with_broker_2();
        proxied.set_peer_address_overrides(crate::config::PeerAddressOverrides::parse("127.0.0.1:9092=127.0.0.1:30002,127.0.0.1:9093=127.0.0.1:30003").unwrap());
        let via = proxied.broker_addr(2, Some("PLAINTEXT")).expect("an address");
        assert_eq!((via.addr, via.host.as_str()), ("127.0.0.1:30002".parse().unwrap(), "127.0.0.1"), "the link's proxy, the advertised host kept");
        assert_eq!(proxied.broker_addr(3, Some("PLAINTEXT")), None, "an unregistered broker has no address");
    }

    /// A wait from a runtime worker (a `tokio::spawn` task) on a runtime of one worker: the
    /// future waited for needs a worker, and gets one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_wait_on_a_runtime_worker_does_not_stall_the_runtime() {
        let state = Arc::new(state_with_broker_2());
        let task = tokio::spawn(async move {
            state.wait_on(async {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                7
            })
        });
        // Watched from this (block_on) thread without the runtime's timers: a stalled worker
        // would stop them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !task.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(task.is_finished(), "the runtime stalled");
        assert_eq!(task.await.expect("task"), Some(7));
    }

    /// A fake voter on 127.0.0.1: answers ApiVersions, and BrokerHeartbeat with success when
    /// `leads`, else NOT_CONTROLLER; counts the connections it accepted.
    async fn fake_voter(leads: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use bytes::{BufMut, BytesMut};
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, RequestHeader};
        use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    loop {
                        let mut prefix = [0u8; 4];
                        if s.read_exact(&mut prefix).await.is_err() {
                            return;
                        }
                        let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
                        if s.read_exact(&mut frame).await.is_err() {
                            return;
                        }
                        let mut frame = bytes::Bytes::from(frame);
                        let (key, version) = (i16::from_be_bytes([frame[0], frame[1]]), i16::from_be_bytes([frame[2], frame[3]]));
                        let mut body = BytesMut::new();
                        let (header_version, flexible_response_header) = if key == 18 {
                            (ApiVersionsRequest::header_version(version), false)
                        } else {
                            (BrokerHeartbeatRequest::header_version(version), true)
                        };
                        let correlation_id = RequestHeader::decode(&mut frame, header_version).expect("header").correlation_id;
                        if key == 18 {
                            let heartbeat = ApiVersion::default().with_api_key(63).with_min_version(0).with_max_version(1);
                            ApiVersionsResponse::default().with_api_keys(vec![heartbeat]).encode(&mut body, version).expect("encode");
                        } else {
                            BrokerHeartbeatResponse::default().with_error_code(if leads { 0 } else { NOT_CONTROLLER }).encode(&mut body, version).expect("encode");
                        }
                        let mut out = BytesMut::new();
                        out.put_i32((4 + usize::from(flexible_response_header) + body.len()) as i32);
                        out.put_i32(correlation_id);
                        if flexible_response_header {
                            out.put_u8(0);
                        }
                        out.extend_from_slice(&body);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// A broker-only node has no local Raft node to name the leader: once it found the active
    /// controller it keeps that connection, so every request reaches it on the first try. (It
    /// used to guess the next voter for every request: most of them reached a voter that does
    /// not lead, each over a new connection, and a forwarded request retried at fixed intervals
    /// beside the heartbeats could miss the leader until it timed out.)
    #[tokio::test]
    async fn without_a_leader_hint_the_channel_keeps_the_voter_that_leads() {
        use kafka_protocol::messages::BrokerHeartbeatRequest;
        let mut voters = BTreeMap::new();
        let mut accepted = Vec::new();
        for (id, leads) in [(1, false), (2, true), (3, false)] {
            let (addr, count) = fake_voter(leads).await;
            voters.insert(id, addr);
            accepted.push(count);
        }
        let channel = ControllerChannel::new(voters, Box::new(|| None), ClientConfig::new("test"));
        let heartbeat = BrokerHeartbeatRequest::default().with_broker_id(BrokerId(4));
        let mut misses = 0;
        for _ in 0..30 {
            let answer = channel.send(&heartbeat).await.expect("answered");
            if answer.error_code == NOT_CONTROLLER {
                misses += 1;
                channel.not_controller().await;
            }
        }
        assert!(misses <= 2, "only while looking for the leader: {misses} misses");
        let connections: Vec<usize> = accepted.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        assert_eq!(connections[1], 1, "one connection to the leader, kept: {connections:?}");
        assert!(connections[0] <= 1 && connections[2] <= 1, "{connections:?}");
    }
}
