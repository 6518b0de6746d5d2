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

pub mod cluster;
pub mod controller_listener;

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
}

/// What a node in a metadata quorum runs besides the broker.
struct QuorumParts {
    state: Arc<broker::cluster::ClusterState>,
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
pub async fn start_with_backend(config: Config, backend: crate::storage::io::Backend) -> Result<RunningNode, StartError> {
    if config.topology.quorum.is_some() && !(config.topology.roles.broker && config.topology.roles.controller) {
        // Refused rather than started half-working: a broker-only node would need the metadata
        // fetched from the quorum, a controller-only node nothing to lead.
        return Err(StartError::Unsupported("process.roles: a node in a metadata quorum must be both broker and controller for now"));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The HTTP listener first: /health and /ready (503) answer while the logs load.
    let http_state = Arc::new(crate::http::HttpState::default());
    let http = crate::http::bind(&config.http).await.map_err(|source| {
        let addr = config.http.listener.as_ref().map(|e| format!("{}:{}", e.host, e.port)).unwrap_or_default();
        StartError::HttpBind { addr, source }
    })?;
    let http_addr = http.as_ref().map(|h| h.local_addr);
    let http_task = http.map(|bound| {
        tracing::info!(addr = %bound.local_addr, https = bound.is_https(), "HTTP listener serving /metrics, /health, /ready and the console");
        tokio::spawn(crate::http::serve(bound, http_state.clone(), config.http.clone(), shutdown_rx.clone()))
    });
    // Recovery reads and fsyncs the logs: off the async workers.
    let mut loaded = match tokio::task::spawn_blocking(move || broker::load(config, backend)).await {
        Ok(loaded) => loaded?,
        Err(_) => return Err(StartError::LoadPanicked),
    };
    let quorum = match loaded.config().topology.quorum.clone() {
        Some(q) => {
            let parts = start_quorum(loaded.config(), &q, shutdown_rx.clone()).await?;
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
    let mut tasks = broker::spawn_background_tasks(&broker);
    tasks.extend(http_task);
    if let Some(q) = &quorum {
        tasks.push(tokio::spawn(broker::publisher::run(broker.clone(), q.state.clone())));
        tasks.push(tokio::spawn(broker::lifecycle::run(broker.clone(), q.state.clone())));
        tasks.push(tokio::spawn(q.service.clone().run_fencing(shutdown_rx.clone())));
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

/// Starts this node's Raft voter with the metadata image as its state machine, and serves the
/// controller listener (voter RPCs, brokers' registrations and heartbeats).
async fn start_quorum(config: &Config, quorum: &crate::config::QuorumConfig, stop: watch::Receiver<bool>) -> Result<QuorumParts, StartError> {
    let voters: std::collections::BTreeMap<i32, String> = quorum.voters.iter().map(|(id, e)| (*id, format!("{}:{}", e.host, e.port))).collect();
    let raft_cell: Arc<std::sync::OnceLock<Arc<crate::raft::RaftNode>>> = Arc::default();
    let hint = raft_cell.clone();
    let leader_hint = Box::new(move || hint.get().and_then(|r| r.leader()).map(|(id, _)| id as i32));
    let client = crate::client::ClientConfig {
        request_timeout: Duration::from_millis(config.long("controller.quorum.request.timeout.ms").unwrap_or(2000).max(100) as u64),
        ..crate::client::ClientConfig::new(format!("broker-{}-to-controller", config.node_id))
    };
    let channel = broker::cluster::ControllerChannel::new(voters.clone(), leader_hint, client);
    let state = Arc::new(broker::cluster::ClusterState::new(config.node_id, channel));
    let raft_voters = voters.iter().map(|(id, addr)| (*id as u64, addr.clone())).collect();
    // Kafka's metadata.log.dir: the first log dir unless set.
    let metadata_log_dir = config.value("metadata.log.dir").filter(|d| !d.trim().is_empty()).map(std::path::PathBuf::from).unwrap_or_else(|| config.log_dirs[0].clone());
    let mut raft_config = crate::raft::RaftConfig::new(config.node_id as u64, raft_voters, crate::raft::raft_dir(&metadata_log_dir));
    raft_config.election_timeout_ms = config.long("controller.quorum.election.timeout.ms").unwrap_or(1000).max(1) as u64;
    raft_config.fetch_timeout_ms = config.long("controller.quorum.fetch.timeout.ms").unwrap_or(2000).max(2) as u64;
    let controller_listener = config.topology.controller_listener().ok_or(StartError::Unsupported("controller.listener.names: no controller listener"))?;
    let bind = format!("{}:{}", controller_listener.endpoint.host, controller_listener.endpoint.port);
    let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
    let controller_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
    let machine = Arc::new(cluster::ImageMachine::new(state.clone()));
    let raft = Arc::new(crate::raft::RaftNode::start(raft_config, machine).await?);
    let _ = raft_cell.set(raft.clone());
    let controller_config = crate::controller::ControllerConfig {
        broker_session_timeout_ms: config.long("broker.session.timeout.ms").unwrap_or(9000).max(1) as u64,
        unclean_leader_election_enable: config.value("unclean.leader.election.enable").is_some_and(|v| v == "true"),
        num_partitions: config.num_partitions,
        default_replication_factor: config.default_replication_factor,
    };
    let service = Arc::new(cluster::ControllerService::new(raft.clone(), controller_listener.name.clone(), state.clone(), controller_config));
    tokio::spawn(controller_listener::serve(listener, service.clone(), config.socket_request_max_bytes, config.authorizer.clone(), stop));
    tracing::info!(addr = %controller_addr, voters = ?voters, "controller listener serving the metadata quorum");
    Ok(QuorumParts { state, raft, service, controller_addr })
}

impl RunningNode {
    /// Where client listener `name` (upper case, as in `listeners`) is bound.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Where the controller listener of a node in a quorum is bound.
    pub fn controller_addr(&self) -> Option<SocketAddr> {
        self.quorum.as_ref().map(|q| q.controller_addr)
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
        if let Some(q) = &self.quorum {
            q.raft.shutdown().await;
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
