//! A Fjord node: startup and shutdown wiring. Loads the broker (storage, metadata, coordinators),
//! binds the listeners, serves, and stops everything in order. The only layer that knows both the
//! broker and the server; nothing below calls back up into it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::{self, Broker};
use crate::config::Config;
use format::metadata_log_dir;

pub mod cluster;
pub mod controller_listener;
pub mod format;
pub mod observer;
pub mod voters;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Broker(#[from] broker::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot listen on fjord.http.listener {addr}: {source}")]
    HttpBind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Listen(#[from] crate::server::listener::BindError),
    #[error("loading the broker panicked")]
    LoadPanicked,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("metadata quorum: {0}")]
    Raft(#[from] crate::raft::StartError),
    #[error("initial controllers: {0}")]
    InitialControllers(String),
    #[error("bootstrap metadata: {0}")]
    Bootstrap(String),
}

/// What a node in a metadata quorum runs besides the broker.
struct QuorumParts {
    state: Arc<broker::cluster::ClusterState>,
    /// The voter's part (`process.roles` names controller); None on a broker-only node.
    voter: Option<VoterParts>,
    /// A broker-only node's fetch of the metadata log from the active controller
    /// ([`observer::follow`]).
    observer: Option<JoinHandle<()>>,
}

/// A voter's Raft node, active-controller service and controller listener.
struct VoterParts {
    raft: Arc<crate::raft::RaftNode>,
    service: Arc<cluster::ControllerService>,
    controller_addr: SocketAddr,
}

/// A started node: its bound addresses and the handles needed to stop it.
pub struct RunningNode {
    pub broker: Arc<Broker>,
    /// Where the first client listener is bound.
    pub local_addr: SocketAddr,
    /// Where each client listener is bound, by listener name, in `listeners` order.
    pub listener_addrs: Vec<(String, SocketAddr)>,
    /// Where the HTTP listener (`/metrics`, `/health`, `/ready`) is bound; None when
    /// `fjord.http.listener=none`.
    pub http_addr: Option<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
    quorum: Option<QuorumParts>,
}

/// Opens storage and metadata on the storage backend `io.backend` names, binds the listener and
/// starts serving.
pub async fn start(config: Config) -> Result<RunningNode, StartError> {
    let backend = crate::storage::io::select_backend(&config.io_backend)
        .map_err(broker::StartError::IoBackend)?
        .with_open_files_budget(config.log_open_files_max);
    start_with_backend(config, backend).await
}

/// As [`start`], on a storage backend chosen by the caller (fault-injection tests).
pub async fn start_with_backend(mut config: Config, backend: crate::storage::io::Backend) -> Result<RunningNode, StartError> {
    if !config.topology.roles.broker {
        return Err(StartError::Unsupported("process.roles=controller: a controller-only node runs no broker (start it with node::start_controller)"));
    }
    discover_voters(&mut config).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The HTTP listener first: /health and /ready (503) answer while the logs load.
    let http_state = Arc::new(crate::http::HttpState::default());
    let (http_addr, http_task) = start_http(&config, &http_state, &shutdown_rx, "/metrics, /health, /ready and the console").await?;
    // Recovery reads and fsyncs the logs: off the async workers.
    let mut loaded = match tokio::task::spawn_blocking(move || broker::load(config, backend)).await {
        Ok(loaded) => loaded?,
        Err(_) => return Err(StartError::LoadPanicked),
    };
    let mut quorum = match loaded.config().topology.quorum.clone() {
        Some(q) => {
            let parts = start_quorum(loaded.config(), &q, metadata_log_directory_id(loaded.config(), loaded.directory_ids()), shutdown_rx.clone()).await?;
            loaded.join_cluster(parts.state.clone());
            Some(parts)
        }
        None => None,
    };
    let config = loaded.config();
    let listeners = crate::server::listener::bind(config).await?;
    let local_addr = listeners.first().map(|l| l.local_addr).ok_or(StartError::Unsupported("listeners: no listener to serve"))?;
    let listener_addrs: Vec<(String, SocketAddr)> = listeners.iter().map(|l| (l.listener.name.clone(), l.local_addr)).collect();
    let endpoints = listeners
        .iter()
        .map(|l| broker::ListenerEndpoint { name: l.listener.name.clone(), protocol: l.listener.protocol, endpoint: config.listener_advertised_endpoint(&l.listener, l.local_addr) })
        .collect();
    let broker = Broker::assemble(loaded, endpoints, shutdown_rx.clone()).await?;
    http_state.set_broker(broker.clone());
    if let Some(v) = quorum.as_ref().and_then(|q| q.voter.as_ref()) {
        http_state.set_quorum(quorum_source(v.raft.clone(), v.service.clone()));
    }
    let mut tasks = broker::spawn_background_tasks(&broker);
    tasks.extend(http_task);
    if let Some(q) = &mut quorum {
        tasks.push(tokio::spawn(broker::publisher::run(broker.clone(), q.state.clone())));
        tasks.push(tokio::spawn(broker::lifecycle::run(broker.clone(), q.state.clone())));
        if let Some(v) = &q.voter {
            tasks.push(tokio::spawn(v.service.clone().run_fencing(shutdown_rx.clone())));
        }
        tasks.extend(q.observer.take());
        tasks.push(tokio::spawn(broker::isr::run_shrinker(broker.clone())));
    }
    let server = match &quorum {
        None => {
            log_serving(&broker, local_addr, &listener_addrs);
            http_state.set_ready();
            tokio::spawn(crate::server::listener::serve(listeners, broker.clone()))
        }
        // In a quorum, clients are served once the broker acted on a caught-up metadata image
        // (Kafka's broker enables request processing after its initial catch-up): until then a
        // restarted node would answer from the past images it replays. Connections wait in the
        // listen backlog meanwhile.
        Some(q) => {
            let (cluster, broker, mut stop, addrs, http_state) = (q.state.clone(), broker.clone(), shutdown_rx.clone(), listener_addrs.clone(), http_state.clone());
            tracing::info!(addr = %local_addr, "client listeners bound; serving once caught up with the metadata log");
            tokio::spawn(async move {
                tokio::select! {
                    _ = cluster.wait_published() => {}
                    _ = crate::raft::transport::stopped(&mut stop) => return,
                }
                log_serving(&broker, local_addr, &addrs);
                http_state.set_ready();
                crate::server::listener::serve(listeners, broker).await
            })
        }
    };
    Ok(RunningNode { broker, local_addr, listener_addrs, http_addr, shutdown_tx, tasks, server, quorum })
}

fn log_serving(broker: &Broker, local_addr: SocketAddr, listener_addrs: &[(String, SocketAddr)]) {
    for (l, (_, addr)) in broker.listener_endpoints.iter().zip(listener_addrs) {
        tracing::info!(listener = %l.name, protocol = ?l.protocol, addr = %addr, advertised = %format!("{}:{}", l.endpoint.host, l.endpoint.port), "listening");
    }
    tracing::info!(
        addr = %local_addr,
        advertised = %format!("{}:{}", broker.advertised.host, broker.advertised.port),
        cluster_id = %broker.cluster_id,
        node_id = broker.config.node_id,
        "Fjord is serving"
    );
}

/// What this controller writes into a new cluster's log if it is the first active one: the
/// SCRAM credentials of the `bootstrap.checkpoint` Kafka's `kafka-storage.sh format --add-scram`
/// left in the metadata log dir. A malformed file stops the start, as it stops Kafka's.
fn read_bootstrap(metadata_log_dir: &std::path::Path) -> Result<cluster::Bootstrap, StartError> {
    use crate::storage::kafka_dir::{BOOTSTRAP_CHECKPOINT_FILE, read_bootstrap_metadata};
    let Some(boot) = read_bootstrap_metadata(metadata_log_dir).map_err(StartError::Bootstrap)? else {
        return Ok(cluster::Bootstrap::default());
    };
    let fjords = crate::broker::features::METADATA_VERSION_4_0_IV3;
    if let Some((_, level)) = boot.features.iter().find(|(name, _)| name == crate::broker::features::METADATA_VERSION)
        && *level != fjords
    {
        tracing::warn!(file = BOOTSTRAP_CHECKPOINT_FILE, level, running = fjords, "the bootstrap metadata.version is not the one Fjord runs (4.0-IV3): a new cluster starts at 4.0-IV3");
    }
    Ok(cluster::Bootstrap { scram: boot.scram })
}

/// The `directory.id` of the metadata log dir, when it is one of `log.dirs` (their
/// meta.properties hold the ids): a broker-only node sends it with its metadata fetches, as
/// Kafka's observers do, and DescribeQuorum shows it.
fn metadata_log_directory_id(config: &Config, directory_ids: &[uuid::Uuid]) -> Option<uuid::Uuid> {
    let dir = metadata_log_dir(config);
    config.log_dirs.iter().position(|d| *d == dir).and_then(|i| directory_ids.get(i).copied())
}

/// Joins the metadata quorum: on a voter, starts its Raft node with the metadata image as its
/// state machine and serves the controller listener (voter RPCs, brokers' registrations,
/// heartbeats and metadata fetches); on a broker-only node, follows the log from the active
/// controller as an observer ([`observer`]). `directory_id`: the metadata log dir's
/// `directory.id` ([`metadata_log_directory_id`]).
async fn start_quorum(config: &Config, quorum: &crate::config::QuorumConfig, directory_id: Option<uuid::Uuid>, stop: watch::Receiver<bool>) -> Result<QuorumParts, StartError> {
    let voters: std::collections::BTreeMap<i32, String> = quorum.voters.iter().map(|(id, e)| (*id, format!("{}:{}", e.host, e.port))).collect();
    // Where this node connects to each voter's controller listener: the voter's address, or its
    // `fjord.peer.address.overrides` entry (a fault test's proxy for this directed link).
    let overrides = &config.peer_address_overrides;
    let voters_to_connect: std::collections::BTreeMap<i32, String> = voters.iter().map(|(id, a)| (*id, overrides.apply(a).to_string())).collect();
    if !overrides.is_empty() {
        tracing::info!(overrides = ?overrides, "fjord.peer.address.overrides: connections to other nodes go through these addresses");
    }
    let raft_cell: Arc<std::sync::OnceLock<Arc<crate::raft::RaftNode>>> = Arc::default();
    let hint = raft_cell.clone();
    let leader_hint = Box::new(move || hint.get().and_then(|r| r.leader()).map(|(id, _)| id as i32));
    let controller_security = controller_security(config)?;
    let server_names: std::collections::BTreeMap<i32, String> = quorum.voters.iter().map(|(id, e)| (*id, e.host.clone())).collect();
    let channel_to_controllers = |hint| controller_channel(config, &voters_to_connect, hint, &controller_security).with_server_names(server_names.clone());
    // Where the voters of a dynamic quorum (KIP-853) come from as they change: a voter's own
    // membership; a broker-only node that learned them from the bootstrap servers asks them.
    let voter_source = || {
        if config.topology.roles.controller {
            let (cell, overrides) = (raft_cell.clone(), overrides.clone());
            broker::cluster::VoterSource::Membership(Box::new(move || {
                let raft = cell.get()?;
                Some(raft.voters().into_iter().map(|(id, (addr, _))| (id as i32, overrides.apply(&addr).to_string())).collect())
            }))
        } else if !quorum.bootstrap.is_empty() {
            broker::cluster::VoterSource::Ask
        } else {
            broker::cluster::VoterSource::Fixed
        }
    };
    let state = Arc::new(broker::cluster::ClusterState::new(config.node_id, channel_to_controllers(leader_hint).with_voter_source(voter_source())));
    state.set_peer_address_overrides(overrides.clone());
    // An SSL inter-broker listener: the other brokers are reached over TLS (a bad store stops startup).
    if let Some(l) = config.topology.inter_broker_listener_name.as_deref().and_then(|n| config.topology.listeners.iter().find(|l| l.name == n))
        && let Some(ssl) = &l.ssl
    {
        let tls = crate::server::tls::client_config(&l.name, ssl).map_err(crate::server::listener::BindError::from)?;
        state.set_inter_broker_tls(tls);
    }
    // A SASL inter-broker listener: this broker logs in to the others (checked at startup).
    if let Some(sasl) = &config.topology.inter_broker_sasl {
        state.set_inter_broker_sasl(Arc::new(sasl.clone()));
    }
    let machine = Arc::new(cluster::ImageMachine::new(state.clone()));
    if !config.topology.roles.controller {
        // Its own connection: a fetch held by the leader must not delay heartbeats.
        let channel = Arc::new(channel_to_controllers(Box::new(|| None)).with_voter_source(voter_source()));
        if !quorum.bootstrap.is_empty() {
            tokio::spawn(refresh_voters(vec![channel.clone(), state.clone()], stop.clone()));
        }
        let observer = tokio::spawn(observer::follow(config.node_id, directory_id, machine, channel, stop));
        tracing::info!(voters = ?voters, "following the metadata log from the active controller (broker-only node)");
        return Ok(QuorumParts { state, voter: None, observer: Some(observer) });
    }
    let raft_voters = voters.iter().map(|(id, addr)| (*id as u64, addr.clone())).collect();
    let metadata_log_dir = metadata_log_dir(config);
    let bootstrap = read_bootstrap(&metadata_log_dir)?;
    let derived_cluster_id = quorum.cluster_id.clone().unwrap_or_else(|| crate::broker::metadata::quorum_node_cluster_id(&config.log_dirs[0], config.node_id, &quorum.voters));
    // In a dynamic quorum (KIP-853), the metadata log dir's meta.properties, as Kafka's format
    // writes it: the cluster id (the one the controllers answered when joining, else derived
    // from the voters) and this controller's directory id (its replica key with its node id,
    // which `kafka-metadata-quorum.sh add-controller` reads from there). A static quorum's
    // controller-only node keeps its metadata log dir to the Raft log alone, as before.
    let meta = if quorum.dynamic {
        std::fs::create_dir_all(&metadata_log_dir).map_err(|e| StartError::Broker(broker::StartError::LogDir(metadata_log_dir.clone(), e)))?;
        crate::broker::metadata::load_or_create_meta_properties(std::slice::from_ref(&metadata_log_dir), config.node_id, Some(derived_cluster_id))
            .map_err(|e| StartError::Broker(broker::StartError::from(e)))?
    } else {
        crate::broker::metadata::MetaProperties { cluster_id: derived_cluster_id, directory_ids: Vec::new() }
    };
    let mut raft_config = crate::raft::RaftConfig::new(config.node_id as u64, raft_voters, crate::raft::raft_dir(&metadata_log_dir));
    // Not among the voters: it joins when the operator adds it (AddRaftVoter), or its log holds
    // the membership already.
    raft_config.joining = !quorum.voters.contains_key(&config.node_id);
    raft_config.directory_id = meta.directory_ids.first().copied();
    raft_config.voter_directory_ids = quorum.directory_ids.iter().map(|(id, d)| (*id as u64, *d)).collect();
    raft_config.election_timeout_ms = config.long("controller.quorum.election.timeout.ms").unwrap_or(1000).max(1) as u64;
    raft_config.fetch_timeout_ms = config.long("controller.quorum.fetch.timeout.ms").unwrap_or(2000).max(2) as u64;
    raft_config.snapshot = crate::raft::SnapshotPolicy {
        max_record_bytes_between_snapshots: config.long("metadata.log.max.record.bytes.between.snapshots").unwrap_or(crate::raft::state_machine::DEFAULT_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS as i64).max(1) as u64,
        max_snapshot_interval_ms: config.long("metadata.log.max.snapshot.interval.ms").unwrap_or(crate::raft::state_machine::DEFAULT_MAX_SNAPSHOT_INTERVAL_MS as i64).max(0) as u64,
    };
    raft_config.peer_address_overrides = voters.values().filter(|a| overrides.apply(a) != a.as_str()).map(|a| (a.clone(), overrides.apply(a).to_string())).collect();
    raft_config.peer_security = controller_security.clone();
    raft_config.entries_kept_after_snapshot = config.long("fjord.metadata.log.entries.kept.after.snapshot").unwrap_or(crate::raft::node::DEFAULT_ENTRIES_KEPT_AFTER_SNAPSHOT as i64).max(0) as u64;
    let controller_listener = config.topology.controller_listener().ok_or(StartError::Unsupported("controller.listener.names: no controller listener"))?;
    let bind = format!("{}:{}", controller_listener.endpoint.host, controller_listener.endpoint.port);
    let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
    let controller_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
    let raft = Arc::new(crate::raft::RaftNode::start(raft_config, machine).await?);
    let _ = raft_cell.set(raft.clone());
    let controller_config = crate::controller::ControllerConfig {
        broker_session_timeout_ms: config.long("broker.session.timeout.ms").unwrap_or(9000).max(1) as u64,
        unclean_leader_election_enable: config.value("unclean.leader.election.enable").is_some_and(|v| v == "true"),
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
    };
    let cluster_id = meta.cluster_id.clone();
    let service = Arc::new(
        cluster::ControllerService::new(raft.clone(), controller_listener.name.clone(), state.clone(), controller_config, cluster_id)
            .with_dynamic_voters(quorum.dynamic)
            .with_bootstrap(bootstrap),
    );
    let security = controller_listener::ListenerSecurity {
        tls: match &controller_listener.ssl {
            Some(ssl) => {
                let server = crate::server::tls::server_config(&controller_listener.name, ssl).map_err(crate::server::listener::BindError::from)?;
                Some((tokio_rustls::TlsAcceptor::from(server), ssl.principal_mapping.clone()))
            }
            None => None,
        },
        sasl: controller_listener.sasl.clone(),
        sasl_max_receive_bytes: config.sasl_server_max_receive_size,
        failed_authentication_delay_ms: config.connection_failed_authentication_delay_ms,
    };
    tokio::spawn(controller_listener::serve(listener, service.clone(), config.socket_request_max_bytes, config.authorizer.clone(), security, stop));
    tracing::info!(addr = %controller_addr, voters = ?voters, "controller listener serving the metadata quorum");
    Ok(QuorumParts { state, voter: Some(VoterParts { raft, service, controller_addr }), observer: None })
}

/// How often a broker-only node of a dynamic quorum asks the controllers who the voters are.
const VOTERS_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Something that holds a channel to the controllers.
trait HasControllerChannel: Send + Sync {
    fn channel(&self) -> &broker::cluster::ControllerChannel;
}

impl HasControllerChannel for broker::cluster::ControllerChannel {
    fn channel(&self) -> &broker::cluster::ControllerChannel {
        self
    }
}

impl HasControllerChannel for broker::cluster::ClusterState {
    fn channel(&self) -> &broker::cluster::ControllerChannel {
        &self.controllers
    }
}

/// A broker-only node of a dynamic quorum (KIP-853): its channels to the controllers learn the
/// voters anew every [`VOTERS_REFRESH_INTERVAL`], until `stop` (Kafka's brokers read the voter
/// set from the metadata log; Fjord's observers are sent the metadata records only).
async fn refresh_voters(channels: Vec<Arc<dyn HasControllerChannel>>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(VOTERS_REFRESH_INTERVAL) => {}
            _ = crate::raft::transport::stopped(&mut stop) => return,
        }
        for c in &channels {
            tokio::select! {
                _ = c.channel().refresh_voters() => {}
                _ = crate::raft::transport::stopped(&mut stop) => return,
            }
        }
    }
}

/// TLS and the SASL login to the controller listener (a bad store stops startup).
fn controller_security(config: &Config) -> Result<crate::raft::transport::PeerSecurity, StartError> {
    let tls = match (&config.topology.controller_ssl, config.topology.controller_listener_names.first()) {
        (Some(ssl), Some(name)) => Some(crate::server::tls::client_config(name, ssl).map_err(crate::server::listener::BindError::from)?),
        _ => None,
    };
    Ok(crate::raft::transport::PeerSecurity { tls, sasl: config.topology.controller_sasl.clone().map(Arc::new) })
}

/// A node given `controller.quorum.bootstrap.servers` that name other controllers (no voters)
/// asks them who the voters are and the cluster id, as Kafka's nodes discover a dynamic quorum:
/// DescribeCluster for controller endpoints (KIP-919) to each in turn until one answers with the
/// voters. Waits at most `initial.broker.registration.timeout.ms`, as Kafka's broker gives up on
/// reaching the controllers at startup. A controller whose metadata log already exists asks
/// nobody: its log holds the membership (it joined before, or is joining still).
async fn discover_voters(config: &mut Config) -> Result<(), StartError> {
    use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
    let metadata_dir = metadata_log_dir(config);
    if config.topology.roles.controller && raft_log_exists(&metadata_dir) {
        return Ok(());
    }
    // Formatted with initial voters (`fjord format --initial-controllers`, or Kafka's own format
    // of a dynamic quorum): the quorum starts with them, asking nobody.
    let listener = config.topology.controller_listener_names.first().cloned();
    if config.topology.roles.controller
        && let Some(quorum) = config.topology.quorum.as_mut().filter(|q| q.dynamic)
        && let Some((initial, formatted_by)) = format::initial_controllers(&metadata_dir, listener.as_deref()).map_err(StartError::InitialControllers)?
    {
        quorum.voters = initial.iter().map(|c| (c.id, c.endpoint.clone())).collect();
        quorum.directory_ids = initial.iter().map(|c| (c.id, c.directory_id)).collect();
        tracing::info!(voters = ?quorum.voters, formatted_by, "starting the metadata quorum with its initial controllers");
        return Ok(());
    }
    let Some(quorum) = config.topology.quorum.as_mut().filter(|q| q.voters.is_empty() && !q.bootstrap.is_empty()) else {
        return Ok(());
    };
    let bootstrap = quorum.bootstrap.clone();
    let security = controller_security(config)?;
    let client = crate::client::ClientConfig {
        request_timeout: Duration::from_millis(config.long("controller.quorum.request.timeout.ms").unwrap_or(2000).max(100) as u64),
        tls: security.tls.clone(),
        sasl: security.sasl.clone(),
        ..crate::client::ClientConfig::new(format!("broker-{}-to-controller", config.node_id))
    };
    let timeout = Duration::from_millis(config.long("initial.broker.registration.timeout.ms").unwrap_or(60_000).max(1) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = String::new();
    loop {
        for server in &bootstrap {
            let asked = async {
                let addr = tokio::net::lookup_host((server.host.as_str(), server.port)).await.map_err(|e| e.to_string())?.next().ok_or("no address")?;
                let client = crate::client::BrokerClient::connect(addr, crate::client::ClientConfig { tls_server_name: Some(server.host.clone()), ..client.clone() }).await.map_err(|e| e.to_string())?;
                let answer: DescribeClusterResponse = client.send_version(&DescribeClusterRequest::default().with_endpoint_type(2), 1).await.map_err(|e| e.to_string())?;
                if answer.error_code != 0 {
                    return Err(format!("error {} {}", answer.error_code, answer.error_message.as_deref().unwrap_or("")));
                }
                Ok::<_, String>(answer)
            };
            match asked.await {
                Ok(answer) if !answer.brokers.is_empty() => {
                    let voters: std::collections::BTreeMap<i32, crate::config::Endpoint> =
                        answer.brokers.iter().map(|b| (b.broker_id.0, crate::config::Endpoint { host: b.host.to_string(), port: b.port.clamp(0, u16::MAX as i32) as u16 })).collect();
                    if voters.contains_key(&config.node_id) && !config.topology.roles.controller {
                        return Err(StartError::Unsupported("controller.quorum.bootstrap.servers: this broker-only node's node.id is a voter of the quorum it names"));
                    }
                    tracing::info!(bootstrap = %format!("{}:{}", server.host, server.port), voters = ?voters, cluster_id = %answer.cluster_id, "learned the metadata quorum's voters (controller.quorum.bootstrap.servers)");
                    if let Some(q) = config.topology.quorum.as_mut() {
                        q.voters = voters;
                        q.cluster_id = Some(answer.cluster_id.to_string()).filter(|c| !c.is_empty());
                    }
                    return Ok(());
                }
                Ok(_) => last_error = format!("{}:{} named no voters", server.host, server.port),
                Err(e) => last_error = format!("{}:{}: {e}", server.host, server.port),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(error = %last_error, timeout_ms = timeout.as_millis() as u64, "no controller in controller.quorum.bootstrap.servers answered");
            return Err(StartError::Unsupported("controller.quorum.bootstrap.servers: no controller answered within initial.broker.registration.timeout.ms"));
        }
        tracing::debug!(error = %last_error, "no controller answered yet; trying again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether this node's Raft log directory holds anything (it started in a quorum before).
fn raft_log_exists(metadata_log_dir: &std::path::Path) -> bool {
    std::fs::read_dir(crate::raft::raft_dir(metadata_log_dir)).is_ok_and(|mut d| d.next().is_some())
}

/// A connection to whichever voter is the active controller (`controller.quorum.voters`).
fn controller_channel(config: &Config, voters: &std::collections::BTreeMap<i32, String>, leader_hint: Box<dyn Fn() -> Option<i32> + Send + Sync>, security: &crate::raft::transport::PeerSecurity) -> broker::cluster::ControllerChannel {
    let client = crate::client::ClientConfig {
        request_timeout: Duration::from_millis(config.long("controller.quorum.request.timeout.ms").unwrap_or(2000).max(100) as u64),
        tls: security.tls.clone(),
        sasl: security.sasl.clone(),
        ..crate::client::ClientConfig::new(format!("broker-{}-to-controller", config.node_id))
    };
    broker::cluster::ControllerChannel::new(voters.clone(), leader_hint, client)
}

/// A started controller-only node (`process.roles=controller`): a voter of the metadata quorum
/// running the Raft node, the active controller when it leads, the controller listener, and the
/// HTTP listener's `/metrics` (the quorum), `/health` and `/ready` (a leader is known). It
/// holds no partitions and serves no client listener: no broker registers for it, so it is never
/// a replica, a coordinator, or in a Metadata response. Its only directory is the metadata log's
/// (`metadata.log.dir`, else the first of `log.dirs`).
pub struct RunningController {
    controller_addr: SocketAddr,
    /// Where its HTTP listener is bound (`/metrics`, `/health`, `/ready`); None when
    /// `fjord.http.listener=none`.
    http_addr: Option<SocketAddr>,
    raft: Arc<crate::raft::RaftNode>,
    service: Arc<cluster::ControllerService>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a controller-only node (see [`RunningController`]).
pub async fn start_controller(mut config: Config) -> Result<RunningController, StartError> {
    discover_voters(&mut config).await?;
    let roles = config.topology.roles;
    let quorum = match &config.topology.quorum {
        Some(q) if roles.controller && !roles.broker => q.clone(),
        _ => return Err(StartError::Unsupported("start_controller: process.roles must be controller alone, with controller.quorum.voters")),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // `/health` from the start; `/ready` and `/metrics` once the quorum has a leader.
    let http_state = Arc::new(crate::http::HttpState::default());
    let (http_addr, http_task) = start_http(&config, &http_state, &shutdown_rx, "/metrics, /health and /ready (no console on a controller-only node)").await?;
    let mut tasks: Vec<JoinHandle<()>> = http_task.into_iter().collect();
    // A voter's directory id goes nowhere: with static controller.quorum.voters Kafka's
    // DescribeQuorum shows none for voters either.
    let parts = start_quorum(&config, &quorum, None, shutdown_rx.clone()).await?;
    let VoterParts { raft, service, controller_addr } = parts.voter.ok_or(StartError::Unsupported("a controller-only node is a voter"))?;
    http_state.set_quorum(quorum_source(raft.clone(), service.clone()));
    tasks.push(tokio::spawn(service.clone().run_fencing(shutdown_rx.clone())));
    let (leader, mut stop) = (raft.clone(), shutdown_rx);
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::select! {
                known = leader.wait_for_leader(Duration::from_secs(1)) => if known.is_some() { http_state.set_ready(); return },
                _ = crate::raft::transport::stopped(&mut stop) => return,
            }
        }
    }));
    tracing::info!(addr = %controller_addr, node_id = config.node_id, "Fjord controller is serving (controller-only node)");
    Ok(RunningController { controller_addr, http_addr, raft, service, shutdown_tx, tasks })
}

/// Binds `fjord.http.listener` (none: no listener) and serves `state` on it until `stop`; a port
/// that cannot be bound stops startup. `serving` says what, for the log line.
async fn start_http(config: &Config, state: &Arc<crate::http::HttpState>, stop: &watch::Receiver<bool>, serving: &str) -> Result<(Option<SocketAddr>, Option<JoinHandle<()>>), StartError> {
    let http = crate::http::bind(&config.http, config.ssl_reload_check_interval_ms).await.map_err(|source| {
        let addr = config.http.listener.as_ref().map(|e| format!("{}:{}", e.host, e.port)).unwrap_or_default();
        StartError::HttpBind { addr, source }
    })?;
    let http_addr = http.as_ref().map(|h| h.local_addr);
    let task = http.map(|bound| {
        tracing::info!(addr = %bound.local_addr, https = bound.is_https(), "HTTP listener serving {serving}");
        tokio::spawn(crate::http::serve(bound, state.clone(), config.http.clone(), stop.clone()))
    });
    Ok((http_addr, task))
}

/// What `/metrics` shows of the quorum on a voter: its Raft state and its applied image's counts.
fn quorum_source(raft: Arc<crate::raft::RaftNode>, service: Arc<cluster::ControllerService>) -> crate::http::QuorumSource {
    Arc::new(move || {
        let status = raft.status();
        let image = service.image();
        let (fenced, unfenced): (Vec<_>, Vec<_>) = image.brokers().values().partition(|b| b.fenced);
        let partitions = || image.topics().flat_map(|t| t.partitions.values());
        crate::metrics::QuorumView {
            active: status.is_leader,
            leader_id: status.leader_id,
            epoch: status.leader_epoch,
            committed_offset: status.committed_index,
            last_applied_offset: status.last_applied_index,
            log_end_offset: status.last_log_index,
            high_watermark: status.high_watermark(),
            brokers_active: unfenced.len(),
            brokers_fenced: fenced.len(),
            topics: image.topics().count(),
            partitions: partitions().count(),
            offline_partitions: partitions().filter(|p| p.leader < 0).count(),
        }
    })
}

impl RunningController {
    /// Where its controller listener is bound.
    pub fn controller_addr(&self) -> SocketAddr {
        self.controller_addr
    }

    /// Where its HTTP listener is bound, if it has one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Whether it leads the metadata quorum now (is the active controller).
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The metadata image it applied last.
    pub fn image(&self) -> Arc<crate::metadata::MetadataImage> {
        self.service.image()
    }

    /// Stops the controller listener, the fencing task and the Raft node.
    pub async fn shutdown(self) {
        tracing::info!("shutting down the controller");
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.raft.shutdown().await;
    }
}

impl RunningNode {
    /// Where client listener `name` (upper case, as in `listeners`) is bound.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// The voters this node's channel to the active controller knows now (node id, `host:port`);
    /// empty outside a quorum. A broker-only node of a dynamic quorum learns them anew every
    /// few seconds.
    pub fn controller_voters(&self) -> std::collections::BTreeMap<i32, String> {
        self.quorum.as_ref().map(|q| q.state.controllers.voters()).unwrap_or_default()
    }

    /// Where the controller listener of a node in a quorum is bound.
    pub fn controller_addr(&self) -> Option<SocketAddr> {
        self.quorum.as_ref().and_then(|q| q.voter.as_ref()).map(|v| v.controller_addr)
    }

    /// Stops accepting, lets in-flight requests finish within shutdown.timeout.ms, then flushes
    /// and closes every log (writing the clean-shutdown marker).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        if let Some(q) = &self.quorum {
            broker::lifecycle::controlled_shutdown(&self.broker, &q.state, Duration::from_millis(self.broker.config.shutdown_timeout_ms.min(5000))).await;
        }
        let _ = self.shutdown_tx.send(true);
        self.broker.fetchers.stop();
        let deadline = Duration::from_millis(self.broker.config.shutdown_timeout_ms);
        if tokio::time::timeout(deadline, self.server).await.is_err() {
            tracing::warn!("in-flight requests did not finish within shutdown.timeout.ms");
        }
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(v) = self.quorum.as_ref().and_then(|q| q.voter.as_ref()) {
            v.raft.shutdown().await;
        }
        let broker = self.broker.clone();
        match tokio::task::spawn_blocking(move || broker.replicas.logs().close()).await {
            Ok(Ok(())) => tracing::info!("logs closed cleanly"),
            Ok(Err(e)) => tracing::error!(error = %e, "closing logs failed; next start recovers"),
            Err(e) => tracing::error!(error = %e, "closing logs panicked; next start recovers"),
        }
        if let Some(stats) = &self.broker.replicas.backend().uring_stats {
            // How well batching and group commit worked over the broker's life (benchmarks read it).
            let c = stats.snapshot();
            tracing::info!(rounds = c.rounds, ops = c.ops, fsync_requests = c.fsync_requests, fsyncs_issued = c.fsyncs_issued, fsyncs_coalesced = c.fsyncs_coalesced, "io_uring counters");
        }
    }
}
