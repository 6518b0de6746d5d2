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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Broker(#[from] broker::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("loading the broker panicked")]
    LoadPanicked,
    #[error("{0}")]
    Unsupported(&'static str),
}

/// A started node: its bound address and the handles needed to stop it.
pub struct RunningNode {
    pub broker: Arc<Broker>,
    pub local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
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
    if config.topology.quorum.is_some() {
        // Refused rather than started as a single node that ignores its quorum.
        return Err(StartError::Unsupported("controller.quorum.voters: a node in a metadata quorum cannot start yet (the cluster is being wired in; run without a quorum for a single node)"));
    }
    // Recovery reads and fsyncs the logs: off the async workers.
    let loaded = match tokio::task::spawn_blocking(move || broker::load(config, backend)).await {
        Ok(loaded) => loaded?,
        Err(_) => return Err(StartError::LoadPanicked),
    };
    let config = loaded.config();
    let bind_error = |source| StartError::Bind { addr: config.bind_addr(), source };
    let listener = crate::server::listener::bind(config).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let advertised = config.advertised_endpoint(local_addr);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let broker = Broker::assemble(loaded, advertised, shutdown_rx).await?;
    let tasks = broker::spawn_background_tasks(&broker);
    let server = tokio::spawn(crate::server::listener::serve(listener, broker.clone()));
    tracing::info!(
        addr = %local_addr,
        advertised = %format!("{}:{}", broker.advertised.host, broker.advertised.port),
        cluster_id = %broker.cluster_id,
        node_id = broker.config.node_id,
        "Fjord is serving"
    );
    Ok(RunningNode { broker, local_addr, shutdown_tx, tasks, server })
}

impl RunningNode {
    /// Stops accepting, lets in-flight requests finish within shutdown.timeout.ms, then flushes
    /// and closes every log (writing the clean-shutdown marker).
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        let _ = self.shutdown_tx.send(true);
        self.broker.fetchers.stop();
        let deadline = Duration::from_millis(self.broker.config.shutdown_timeout_ms);
        if tokio::time::timeout(deadline, self.server).await.is_err() {
            tracing::warn!("in-flight requests did not finish within shutdown.timeout.ms");
        }
        for t in self.tasks {
            let _ = t.await;
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
