//! A node in a metadata quorum: the Raft state machine that builds the metadata image, and the
//! active controller that decides what goes into the log. The controller's decisions are the
//! pure functions of `controller`; here they are serialized (one at a time, on the image that
//! holds every decision before them), proposed to the quorum, and answered once applied.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::broker::cluster::ClusterState;
use crate::controller::{Controller, ControllerConfig, ControllerError, ControllerResult};
use crate::controller::cluster::METADATA_VERSION_FEATURE;
use crate::metadata::records::{FeatureLevelRecord, MetadataRecord, UserScramCredentialRecord};
use crate::metadata::{MetadataImage, decode_records, encode_records};
use crate::raft::{ApplyError, ProposeError, RaftNode, StateMachine};

/// The metadata image as a Raft state machine: each committed entry is a batch of metadata
/// records applied all or nothing; the image is handed to the broker ([`ClusterState::publish`]).
pub struct ImageMachine {
    state: Arc<ClusterState>,
    current: Mutex<Arc<MetadataImage>>,
}

impl ImageMachine {
    pub fn new(state: Arc<ClusterState>) -> ImageMachine {
        ImageMachine { state, current: Mutex::new(Arc::new(MetadataImage::new())) }
    }
}

impl StateMachine for ImageMachine {
    fn apply(&self, index: u64, payload: &[u8]) -> Result<(), ApplyError> {
        let records = decode_records(payload).map_err(|e| ApplyError::Rejected(e.to_string()))?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (**current).clone();
        let applied = next.apply_batch(index, &records);
        // The offset moves even past a refused batch (it changed nothing, on every node alike).
        let next = Arc::new(next);
        *current = next.clone();
        self.state.publish(next, index);
        applied.map_err(|e| {
            tracing::warn!(index, error = %e, "metadata batch refused by the image");
            ApplyError::Rejected(e.to_string())
        })
    }

    fn snapshot(&self) -> (u64, Vec<u8>) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (current.offset, encode_records(&current.to_snapshot_records()))
    }

    fn install_snapshot(&self, last_index: u64, bytes: &[u8]) -> Result<(), ApplyError> {
        let records = decode_records(bytes).map_err(|e| ApplyError::Fatal(format!("metadata snapshot: {e}")))?;
        let image = MetadataImage::from_snapshot_records(last_index, &records).map_err(|e| ApplyError::Fatal(format!("metadata snapshot: {e}")))?;
        let image = Arc::new(image);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = image.clone();
        self.state.publish(image, last_index);
        Ok(())
    }
}

/// How long a new active controller waits for its log to be applied before it decides anything.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// The active controller, when this voter leads the quorum.
pub struct ControllerService {
    pub raft: Arc<RaftNode>,
    /// The controller listener's name (DescribeQuorum v2 lists the voters' endpoints under it).
    pub listener_name: String,
    state: Arc<ClusterState>,
    config: ControllerConfig,
    /// The controller's own state (heartbeats) and the Raft term it belongs to: a new term
    /// starts it anew, as a new active controller starts every session anew.
    inner: tokio::sync::Mutex<(u64, Controller)>,
    /// The broker-only nodes following the log from this voter while it leads.
    pub observers: super::observer::Observers,
    /// The cluster id the quorum's nodes share (DescribeCluster on the controller listener).
    pub cluster_id: String,
    /// Held by the AddRaftVoter / RemoveRaftVoter being served: voters change one at a time
    /// (KIP-853); another one meanwhile is answered REQUEST_TIMED_OUT, as Kafka's leader does.
    pub voter_change: tokio::sync::Mutex<()>,
    /// A dynamic quorum (kraft.version 1): its voters may change. A static one's may not, as
    /// Kafka's quorum at kraft.version 0 refuses AddRaftVoter and RemoveRaftVoter.
    pub dynamic: bool,
    /// What the first active controller of a new cluster writes into its log ([`Bootstrap`]).
    bootstrap: Bootstrap,
}

/// The metadata a new cluster's log starts with, as Kafka's first active controller writes its
/// bootstrap metadata: metadata.version, and the SCRAM credentials `kafka-storage.sh format
/// --add-scram` left in the metadata log dir's `bootstrap.checkpoint`. A log with metadata.version
/// finalized has been bootstrapped (the same mark as Kafka's), so it is written once per
/// cluster, by whichever controller is active first.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    pub scram: Vec<UserScramCredentialRecord>,
}

impl Bootstrap {
    /// The records to write into `image`'s log; None when it is bootstrapped already. A
    /// credential the log holds already is left as it is.
    fn records(&self, image: &MetadataImage) -> Option<Vec<MetadataRecord>> {
        if image.feature_level(METADATA_VERSION_FEATURE).is_some() {
            return None;
        }
        let level = crate::broker::features::METADATA_VERSION_4_0_IV3;
        let mut records = vec![MetadataRecord::FeatureLevel(FeatureLevelRecord { name: METADATA_VERSION_FEATURE.into(), feature_level: level })];
        records.extend(self.scram.iter().filter(|c| image.scram_credential(&c.name, c.mechanism).is_none()).cloned().map(MetadataRecord::UserScramCredential));
        Some(records)
    }
}

impl ControllerService {
    pub fn new(raft: Arc<RaftNode>, listener_name: String, state: Arc<ClusterState>, config: ControllerConfig, cluster_id: String) -> ControllerService {
        let inner = tokio::sync::Mutex::new((u64::MAX, Controller::new(config.clone())));
        ControllerService {
            raft,
            listener_name,
            state,
            config,
            inner,
            observers: Default::default(),
            cluster_id,
            voter_change: tokio::sync::Mutex::new(()),
            dynamic: false,
            bootstrap: Bootstrap::default(),
        }
    }

    /// What it writes into a new cluster's log when it is the first active controller.
    pub fn with_bootstrap(mut self, bootstrap: Bootstrap) -> ControllerService {
        self.bootstrap = bootstrap;
        self
    }

    /// Its voters may change (a dynamic quorum, KIP-853).
    pub fn with_dynamic_voters(mut self, dynamic: bool) -> ControllerService {
        self.dynamic = dynamic;
        self
    }

    /// The voters this node's channel to the active controller knows (its membership's, else
    /// those learned from `controller.quorum.bootstrap.servers`).
    pub fn known_voters(&self) -> std::collections::BTreeMap<i32, String> {
        self.state.controllers.voters()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.state.image()
    }

    /// Makes one decision on the image holding every decision before it, proposes its records
    /// and returns its answer once they are applied here. NOT_CONTROLLER when this voter does
    /// not lead the quorum.
    pub async fn decide<T>(
        &self,
        f: impl FnOnce(&mut Controller, &MetadataImage, i64) -> Result<ControllerResult<T>, ControllerError>,
    ) -> Result<T, ControllerError> {
        let mut inner = self.inner.lock().await;
        let status = self.raft.status();
        if !status.is_leader {
            return Err(ControllerError::NotController);
        }
        if inner.0 != status.leader_epoch {
            inner.0 = status.leader_epoch;
            inner.1 = Controller::new(self.config.clone());
            tracing::info!(term = status.leader_epoch, "this node is the active controller");
        }
        let mut last = status.last_log_index.unwrap_or(0);
        if !self.raft.wait_for_applied(last, CATCH_UP_TIMEOUT).await {
            return Err(ControllerError::NotController);
        }
        let mut image = self.state.image();
        if let Some(records) = self.bootstrap.records(&image) {
            last = self.propose(&records).await?;
            if !self.raft.wait_for_applied(last, CATCH_UP_TIMEOUT).await {
                return Err(ControllerError::NotController);
            }
            image = self.state.image();
            tracing::info!(metadata_version = ?image.feature_level(METADATA_VERSION_FEATURE), scram_credentials = records.len() - 1, "wrote the new cluster's bootstrap metadata");
        }
        // The offset the records will most likely get (a broker epoch is the offset of its
        // registration record): the next index, decisions being made one at a time.
        let next_offset = (last + 1) as i64;
        let result = f(&mut inner.1, &image, next_offset)?;
        if !result.records.is_empty() {
            self.propose(&result.records).await?;
        }
        Ok(result.response)
    }

    /// Proposes one batch of records; its log index.
    async fn propose(&self, records: &[MetadataRecord]) -> Result<u64, ControllerError> {
        match self.raft.propose(encode_records(records)).await {
            Ok(index) => Ok(index),
            Err(ProposeError::NotLeader { .. }) => Err(ControllerError::NotController),
            Err(e) => Err(ControllerError::UnknownServerError(e.to_string())),
        }
    }

    /// Fences the brokers that stopped heartbeating, while this voter is active; until `stop`.
    pub async fn run_fencing(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis((self.config.broker_session_timeout_ms / 8).clamp(50, 1000)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::raft::transport::stopped(&mut stop) => return,
            }
            if !self.raft.is_leader() {
                continue;
            }
            let now = crate::broker::replica_manager::now_ms() as u64;
            let decided = tokio::select! {
                d = self.decide(|c, image, _| Ok(c.fence_stale_brokers(image, now))) => d,
                // A quorum that lost its majority would hold the proposal until its timeout.
                _ = crate::raft::transport::stopped(&mut stop) => return,
            };
            match decided {
                Ok(fenced) if !fenced.is_empty() => tracing::warn!(brokers = ?fenced, "fenced brokers whose session expired (broker.session.timeout.ms)"),
                Ok(_) | Err(ControllerError::NotController) => {}
                Err(e) => tracing::warn!(error = %e, "fencing stale brokers failed"),
            }
        }
    }
}
