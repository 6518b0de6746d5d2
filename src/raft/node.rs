//! [`RaftNode`]: one voter of the metadata quorum, built from openraft with our log store,
//! state machine adapter and transport. It starts, initializes the membership from the
//! configured voters, proposes payloads, answers who leads and what DescribeQuorum shows, and
//! shuts down; it never decides terms, votes or commits itself (openraft does).
//!
//! Kafka's timing properties and how they map onto openraft's timers:
//! - Kafka: a voter that has not heard from the leader for `controller.quorum.fetch.timeout.ms`
//!   (F, default 2000) stands for election; a candidate's wait is randomized by up to
//!   `controller.quorum.election.timeout.ms` (E, default 1000). So a follower should stand after
//!   a time in [F, F + E).
//! - openraft 0.9: a follower that saw a committed leader stands after its leader lease
//!   (= `election_timeout_max`) plus a random election timeout in [`election_timeout_min`,
//!   `election_timeout_max`), i.e. in [max + min, 2 max); it refuses votes while the lease runs.
//! - So `election_timeout_max` = (F + E) / 2 and `election_timeout_min` = F - max = (F - E) / 2:
//!   a follower stands after [F, F + E), as in Kafka, and its lease ((F + E) / 2) has expired by
//!   the time any candidate asks. This needs F > E (Kafka's defaults: 2000 > 1000).
//! - `fjord.controller.quorum.heartbeat.interval.ms` (no Kafka equivalent: KRaft followers poll
//!   the leader with Fetch; openraft's leader sends heartbeats) must be below (F - E) / 2.
//! - `controller.quorum.request.timeout.ms`: the deadline of one RPC (see `transport`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy as OpenraftSnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::log_store::{DEFAULT_ENTRY_BYTES_MAX, LogStore, LogStoreError, Payloads, RecoveryReport};
use super::state_machine::{SnapshotPolicy, SnapshotStoreError, StateMachineStore};
use super::transport::{self, NetworkFactory, PeerContacts, TransportConfig};
use super::{NodeId, StateMachine, TypeConfig};
use crate::storage::io::{FileIo, std_io};

/// The Raft directory's name under `metadata.log.dir` (never Kafka's `__cluster_metadata-0`).
pub const RAFT_DIR_NAME: &str = "fjord-raft";
/// The Raft directory under a `metadata.log.dir`.
pub fn raft_dir(metadata_log_dir: &std::path::Path) -> PathBuf {
    metadata_log_dir.join(RAFT_DIR_NAME)
}

/// Kafka's default `controller.quorum.election.timeout.ms`.
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 1000;
/// Kafka's default `controller.quorum.fetch.timeout.ms`.
pub const DEFAULT_FETCH_TIMEOUT_MS: u64 = 2000;
/// Default `fjord.controller.quorum.heartbeat.interval.ms`: a tenth of the fetch timeout.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 200;
/// Default `fjord.controller.quorum.propose.timeout.ms`: how long `propose` waits for its entry
/// to commit and apply.
pub const DEFAULT_PROPOSE_TIMEOUT_MS: u64 = 5000;
/// Default `fjord.metadata.log.entries.kept.after.snapshot`: log entries kept behind a snapshot
/// so a voter slightly behind catches up from the log rather than a whole snapshot.
pub const DEFAULT_ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1000;
/// How often the node checks whether Kafka's snapshot rule makes a snapshot due.
const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// After asking openraft for a snapshot, the node waits this long before asking again.
const SNAPSHOT_RETRIGGER_AFTER: Duration = Duration::from_secs(1);

/// Everything a voter needs, under Kafka's property names where they exist.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// `node.id`.
    pub node_id: NodeId,
    /// `controller.quorum.voters`: every voter's id and `host:port` (this node's included).
    pub voters: BTreeMap<NodeId, String>,
    /// The Raft directory: `<metadata.log.dir>/fjord-raft/` ([`RAFT_DIR_NAME`]).
    pub dir: PathBuf,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub fetch_timeout_ms: u64,
    /// `fjord.controller.quorum.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `fjord.controller.quorum.propose.timeout.ms`.
    pub propose_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`, `reconnect.backoff.ms`, `reconnect.backoff.max.ms`,
    /// `socket.request.max.bytes`.
    pub transport: TransportConfig,
    /// `metadata.log.max.record.bytes.between.snapshots`, `metadata.log.max.snapshot.interval.ms`.
    pub snapshot: SnapshotPolicy,
    /// `fjord.metadata.log.entries.kept.after.snapshot`.
    pub entries_kept_after_snapshot: u64,
    /// `fjord.metadata.log.entry.bytes.max`: the largest encoded entry (payload plus a few bytes).
    pub entry_bytes_max: usize,
    /// `fjord.peer.address.overrides`: where RPCs to a voter's `host:port` (as the membership
    /// names it) go instead; empty: where the membership says.
    pub peer_address_overrides: BTreeMap<String, String>,
    /// TLS and the SASL login to the other voters' controller listener.
    pub peer_security: super::transport::PeerSecurity,
    /// `controller.quorum.bootstrap.servers` naming other controllers (KIP-853): this node does
    /// not make a membership of its own when its log is empty; it waits for the leader to add it
    /// (AddRaftVoter), and `voters` may not name it.
    pub joining: bool,
    /// This node's metadata log dir `directory.id` (KIP-853's replica key), recorded with it in
    /// the membership when it starts a quorum of one; None: not known.
    pub directory_id: Option<uuid::Uuid>,
    /// Every voter's directory id, when the initial voters were given with them (`fjord format
    /// --initial-controllers`, as `kafka-storage.sh format --initial-controllers`): recorded in
    /// the membership the log starts with.
    pub voter_directory_ids: BTreeMap<NodeId, uuid::Uuid>,
}

impl RaftConfig {
    /// Kafka's defaults for everything but who and where.
    pub fn new(node_id: NodeId, voters: BTreeMap<NodeId, String>, dir: PathBuf) -> RaftConfig {
        RaftConfig {
            node_id,
            voters,
            dir,
            election_timeout_ms: DEFAULT_ELECTION_TIMEOUT_MS,
            fetch_timeout_ms: DEFAULT_FETCH_TIMEOUT_MS,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            propose_timeout_ms: DEFAULT_PROPOSE_TIMEOUT_MS,
            transport: TransportConfig::default(),
            snapshot: SnapshotPolicy::default(),
            entries_kept_after_snapshot: DEFAULT_ENTRIES_KEPT_AFTER_SNAPSHOT,
            entry_bytes_max: DEFAULT_ENTRY_BYTES_MAX,
            peer_address_overrides: BTreeMap::new(),
            peer_security: Default::default(),
            joining: false,
            directory_id: None,
            voter_directory_ids: BTreeMap::new(),
        }
    }

    /// openraft's `election_timeout_max`: (F + E) / 2 (see the module doc).
    fn election_timeout_max_ms(&self) -> u64 {
        (self.fetch_timeout_ms + self.election_timeout_ms) / 2
    }

    /// openraft's `election_timeout_min`: F - (F + E) / 2 (see the module doc).
    fn election_timeout_min_ms(&self) -> u64 {
        self.fetch_timeout_ms.saturating_sub(self.election_timeout_max_ms())
    }

    fn openraft_config(&self) -> Result<Config, StartError> {
        if self.election_timeout_ms == 0 || self.fetch_timeout_ms <= self.election_timeout_ms {
            return Err(StartError::InvalidConfig(format!(
                "controller.quorum.fetch.timeout.ms {} must be above controller.quorum.election.timeout.ms {} (above 0)",
                self.fetch_timeout_ms, self.election_timeout_ms
            )));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.election_timeout_min_ms() {
            return Err(StartError::InvalidConfig(format!(
                "fjord.controller.quorum.heartbeat.interval.ms {} must be above 0 and below (fetch.timeout.ms - election.timeout.ms) / 2 = {}",
                self.heartbeat_interval_ms,
                self.election_timeout_min_ms()
            )));
        }
        let config = Config {
            cluster_name: "fjord-metadata".to_string(),
            election_timeout_min: self.election_timeout_min_ms(),
            election_timeout_max: self.election_timeout_max_ms(),
            heartbeat_interval: self.heartbeat_interval_ms,
            install_snapshot_timeout: self.transport.request_timeout_ms,
            // Snapshots are taken by the node on Kafka's rule (see state_machine.rs).
            snapshot_policy: OpenraftSnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            ..Config::default()
        };
        config.validate().map_err(|e| StartError::InvalidConfig(e.to_string()))
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid raft config: {0}")]
    InvalidConfig(String),
    #[error(transparent)]
    LogStore(#[from] LogStoreError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotStoreError),
    #[error("raft failed to start: {0}")]
    Raft(String),
}

/// Why a proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader takes proposals; `leader` is who leads now, when known (id, `host:port`).
    #[error("not the quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, String)> },
    /// Committed at `index`, but the state machine rejected it (on every voter alike).
    #[error("entry {index} rejected by the state machine: {reason}")]
    Rejected { index: u64, reason: String },
    #[error("payload of {bytes} bytes over fjord.metadata.log.entry.bytes.max {max}")]
    TooLarge { bytes: usize, max: usize },
    /// No answer within `fjord.controller.quorum.propose.timeout.ms`: the entry may still commit.
    #[error("no commit within {timeout_ms} ms (the entry may still commit)")]
    Timeout { timeout_ms: u64 },
    /// The node is shutting down or stopped on a fatal error.
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// Why a voter was not added or removed (AddRaftVoter / RemoveRaftVoter, KIP-853).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoterChangeError {
    /// Only the leader changes the voters; `leader` is who leads now, when known.
    #[error("not the quorum leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, String)> },
    #[error("node {0} is already a voter")]
    DuplicateVoter(NodeId),
    #[error("node {0} is not a voter (with that directory id)")]
    VoterNotFound(NodeId),
    /// Another voter change is not committed yet: one at a time.
    #[error("another voter change is in progress")]
    InProgress,
    /// The change would leave no voter.
    #[error("the quorum cannot be left without voters")]
    LastVoter,
    /// The new voter did not catch up, or the change did not commit, within the timeout.
    #[error("{0}")]
    Timeout(String),
    #[error("raft node stopped: {0}")]
    Stopped(String),
}

/// One voter as DescribeQuorum shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterStatus {
    pub node_id: NodeId,
    pub addr: String,
    /// Its metadata log dir's `directory.id`, when the membership holds it (see [`super::voter_node`]).
    pub directory_id: Option<uuid::Uuid>,
    /// The last log index known replicated to this voter (Kafka's log end offset is this + 1).
    /// Known on the leader only (None elsewhere, and for a voter not yet matched).
    pub matched_index: Option<u64>,
    /// When this voter last answered this node (Kafka's lastFetchTimestamp); the leader itself
    /// is "now". None when it never answered.
    pub last_contact: Option<SystemTime>,
}

/// What DescribeQuorum needs, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub leader_id: Option<NodeId>,
    /// The Raft term: Kafka's leader epoch.
    pub leader_epoch: u64,
    /// The last committed index; Kafka's high watermark is this + 1.
    pub committed_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    pub is_leader: bool,
    pub voters: Vec<VoterStatus>,
    /// Replicas that follow the log without a vote: a controller being added (AddRaftVoter),
    /// or a removed voter whose broker goes on (RemoveRaftVoter of a combined node).
    pub learners: Vec<VoterStatus>,
}

impl QuorumStatus {
    /// Kafka's high watermark: the index after the last committed one.
    pub fn high_watermark(&self) -> u64 {
        self.committed_index.map(|i| i + 1).unwrap_or(0)
    }
}

/// One running voter. Cheap to share behind an `Arc`; `shutdown` stops it.
pub struct RaftNode {
    raft: Raft<TypeConfig>,
    config: RaftConfig,
    log: LogStore,
    state_machine: StateMachineStore,
    contacts: Arc<PeerContacts>,
    shutdown_tx: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    recovery: RecoveryReport,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("node_id", &self.config.node_id).finish_non_exhaustive()
    }
}

impl RaftNode {
    /// Opens the log and the latest snapshot under `config.dir`, starts openraft, and, when the
    /// log is empty, initializes the membership from `config.voters` (every voter may; "already
    /// initialized" is fine). A single voter elects itself at once. RPCs from the other voters
    /// reach it through [`RaftNode::handle_rpc`] or [`RaftNode::serve`].
    pub async fn start(config: RaftConfig, machine: Arc<dyn StateMachine>) -> Result<RaftNode, StartError> {
        RaftNode::start_with_io(config, machine, std_io()).await
    }

    /// [`RaftNode::start`] with a chosen file backend (tests use the fault-injecting one).
    pub async fn start_with_io(config: RaftConfig, machine: Arc<dyn StateMachine>, io: Arc<dyn FileIo>) -> Result<RaftNode, StartError> {
        if !config.joining && !config.voters.contains_key(&config.node_id) {
            return Err(StartError::InvalidConfig(format!(
                "node.id {} is not among controller.quorum.voters {:?}",
                config.node_id,
                config.voters.keys().collect::<Vec<_>>()
            )));
        }
        let openraft_config = Arc::new(config.openraft_config()?);
        let dir = config.dir.clone();
        let entry_bytes_max = config.entry_bytes_max;
        let (log, recovery, state_machine) = tokio::task::spawn_blocking(move || {
            let (log, recovery) = LogStore::open(io.clone(), &dir, entry_bytes_max)?;
            let state_machine = StateMachineStore::open(io, &dir, machine)?;
            Ok::<_, StartError>((log, recovery, state_machine))
        })
        .await
        .map_err(|e| StartError::Raft(format!("open task failed: {e}")))??;
        let contacts = Arc::new(PeerContacts::default());
        let network = NetworkFactory::new(config.transport, config.peer_security.clone(), contacts.clone(), Arc::new(config.peer_address_overrides.clone()));
        let raft = Raft::new(config.node_id, openraft_config, network, log.clone(), state_machine.clone())
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let (shutdown_tx, _) = watch::channel(false);
        let node = RaftNode {
            raft,
            config,
            log,
            state_machine,
            contacts,
            shutdown_tx,
            tasks: std::sync::Mutex::new(Vec::new()),
            recovery,
        };
        node.initialize_if_empty().await?;
        node.spawn_snapshot_monitor();
        Ok(node)
    }

    async fn initialize_if_empty(&self) -> Result<(), StartError> {
        let initialized = self.raft.is_initialized().await.map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized && self.config.joining {
            // The leader adds this node (as a learner catching up, then a voter): its
            // membership comes in the log.
            tracing::info!(node_id = self.config.node_id, "waiting to be added to the metadata quorum (AddRaftVoter)");
        } else if !initialized {
            // A quorum of one records its voter's directory id (removing a voter names it), as
            // do initial voters given with theirs.
            let lone = self.config.voters.len() == 1;
            let directory_id = |id: NodeId| match self.config.voter_directory_ids.get(&id) {
                Some(d) => Some(*d),
                None => self.config.directory_id.filter(|_| lone && id == self.config.node_id),
            };
            let members: BTreeMap<NodeId, BasicNode> = self.config.voters.iter().map(|(id, addr)| (*id, super::voter_node(addr, directory_id(*id)))).collect();
            match self.raft.initialize(members).await {
                Ok(()) => {}
                // Another voter's membership arrived first: fine.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Raft(e.to_string())),
            }
        } else if self.is_lone_voter() && self.raft.metrics().borrow().state != ServerState::Leader {
            // A lone voter has nobody to wait for: stand for election now, not after a timeout.
            self.raft.trigger().elect().await.map_err(|e| StartError::Raft(e.to_string()))?;
        }
        Ok(())
    }

    /// Whether the membership in the log names this node as its only voter (the voters in the
    /// config may be older: the membership changes with AddRaftVoter / RemoveRaftVoter).
    fn is_lone_voter(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        voters == [self.config.node_id]
    }

    /// The voters of the membership this node holds, with their `host:port` and directory id.
    pub fn voters(&self) -> BTreeMap<NodeId, (String, Option<uuid::Uuid>)> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership()
            .voter_ids()
            .filter_map(|id| m.membership().get_node(&id).map(|n| (id, (super::node_addr(n).to_string(), super::node_directory_id(n)))))
            .collect()
    }

    /// Whether the membership holds a change that is not committed yet (openraft's joint
    /// config, or a uniform one above the commit point).
    fn membership_change_pending(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let config = &m.membership_config;
        config.membership().get_joint_config().len() > 1 || config.log_id().as_ref().map(|l| l.index) > self.log.committed_index()
    }

    /// Adds voter `id` at `addr` (KIP-853's AddRaftVoter, on the leader): as a learner first, which
    /// the leader replicates to until it caught up, then to the voters (openraft's joint
    /// consensus, committed by the new set's majority). One change at a time; within `timeout`
    /// (a learner that did not catch up by then is removed again).
    pub async fn add_voter(&self, id: NodeId, addr: &str, directory_id: Option<uuid::Uuid>, timeout: Duration) -> Result<(), VoterChangeError> {
        self.check_voter_change()?;
        if self.voters().contains_key(&id) {
            return Err(VoterChangeError::DuplicateVoter(id));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        // openraft's blocking add_learner counts a learner within 5000 entries as caught up
        // (even one that never answered); Kafka's leader wants it at the log end, so this waits
        // until it holds the entry that made it a learner.
        let added = match tokio::time::timeout_at(deadline, self.raft.add_learner(id, super::voter_node(addr, directory_id), false)).await {
            Ok(Ok(response)) => response.log_id.index,
            Ok(Err(e)) => return Err(self.voter_change_error(e)),
            Err(_) => return Err(VoterChangeError::Timeout("the learner was not added in time".to_string())),
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let caught_up = self
            .raft
            .wait(Some(remaining))
            .metrics(|m| m.replication.as_ref().and_then(|r| r.get(&id)).and_then(|l| l.as_ref()).is_some_and(|l| l.index >= added), "the new voter caught up")
            .await;
        match caught_up {
            Ok(_) => {}
            Err(_) => {
                // Not caught up: the leader stops replicating to it (a later AddRaftVoter starts over).
                let forget = openraft::ChangeMembers::RemoveNodes(std::collections::BTreeSet::from([id]));
                let removed = tokio::time::timeout(Duration::from_millis(self.config.propose_timeout_ms), self.raft.change_membership(forget, false)).await;
                match removed {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(node_id = id, error = %e, "a learner that did not catch up could not be removed"),
                    Err(_) => tracing::warn!(node_id = id, "a learner that did not catch up was not removed in time"),
                }
                return Err(VoterChangeError::Timeout(format!("Aborted add voter operation for {id} since it is lagging behind")));
            }
        }
        let mut voters: std::collections::BTreeSet<NodeId> = self.voters().into_keys().collect();
        voters.insert(id);
        self.change_voters(voters, false, timeout).await
    }

    /// Removes voter `id` (KIP-853's RemoveRaftVoter, on the leader); `directory_id` must match
    /// the one the membership holds for it, when it holds one. A leader that removes itself
    /// leads until the change is committed, then steps down (openraft, as Kafka's leader resigns).
    /// `keep_as_learner`: the node stays a learner the leader replicates to (a node that is also
    /// a broker keeps following the log, as Kafka's removed voter goes on as an observer).
    pub async fn remove_voter(&self, id: NodeId, directory_id: Option<uuid::Uuid>, keep_as_learner: bool, timeout: Duration) -> Result<(), VoterChangeError> {
        self.check_voter_change()?;
        let mut voters = self.voters();
        match voters.get(&id) {
            Some((_, Some(held))) if directory_id.is_some_and(|d| d != *held) => return Err(VoterChangeError::VoterNotFound(id)),
            Some(_) => {}
            None => return Err(VoterChangeError::VoterNotFound(id)),
        }
        voters.remove(&id);
        if voters.is_empty() {
            return Err(VoterChangeError::LastVoter);
        }
        self.change_voters(voters.into_keys().collect(), keep_as_learner, timeout).await
    }

    fn check_voter_change(&self) -> Result<(), VoterChangeError> {
        if !self.is_leader() {
            return Err(VoterChangeError::NotLeader { leader: self.leader() });
        }
        if self.membership_change_pending() {
            return Err(VoterChangeError::InProgress);
        }
        Ok(())
    }

    /// `retain`: nodes leaving the voters stay learners (openraft's `retain`).
    async fn change_voters(&self, voters: std::collections::BTreeSet<NodeId>, retain: bool, timeout: Duration) -> Result<(), VoterChangeError> {
        match tokio::time::timeout(timeout, self.raft.change_membership(voters, retain)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.voter_change_error(e)),
            Err(_) => Err(VoterChangeError::Timeout("the voter change did not commit in time (it may still commit)".to_string())),
        }
    }

    fn voter_change_error(&self, e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> VoterChangeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => VoterChangeError::NotLeader {
                leader: forward.leader_id.map(|id| (id, forward.leader_node.as_ref().map(|n| super::node_addr(n).to_string()).unwrap_or_default())),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(openraft::error::ChangeMembershipError::InProgress(_))) => VoterChangeError::InProgress,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(openraft::error::ChangeMembershipError::EmptyMembership(_))) => VoterChangeError::LastVoter,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => VoterChangeError::Stopped(e.to_string()),
            RaftError::Fatal(e) => VoterChangeError::Stopped(e.to_string()),
        }
    }

    fn spawn_snapshot_monitor(&self) {
        let raft = self.raft.clone();
        let state_machine = self.state_machine.clone();
        let policy = self.config.snapshot;
        let mut shutdown = self.shutdown_tx.subscribe();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(SNAPSHOT_CHECK_INTERVAL);
            let mut last_trigger: Option<Instant> = None;
            loop {
                tokio::select! {
                    _ = transport::stopped(&mut shutdown) => return,
                    _ = ticker.tick() => {}
                }
                let now = Instant::now();
                if last_trigger.is_some_and(|t| now.duration_since(t) < SNAPSHOT_RETRIGGER_AFTER) {
                    continue;
                }
                if state_machine.snapshot_due(&policy, now) {
                    last_trigger = Some(now);
                    if raft.trigger().snapshot().await.is_err() {
                        return;
                    }
                }
            }
        });
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// What recovery found in the log at start.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Serves voter RPCs accepted on `listener` until shutdown (the tests' loopback listener; the
    /// broker's controller listener calls [`RaftNode::handle_rpc`] instead).
    pub fn serve(&self, listener: TcpListener) {
        let task = tokio::spawn(transport::serve(
            listener,
            self.raft.clone(),
            self.config.transport.request_bytes_max,
            self.shutdown_tx.subscribe(),
        ));
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }

    /// Serves one Raft RPC body (a request under `FJORD_RAFT_API_KEY`, header already parsed)
    /// and returns the response body.
    pub async fn handle_rpc(&self, body: Bytes) -> Bytes {
        transport::dispatch(&self.raft, &body).await
    }

    /// Appends `payload` to the quorum's log and waits until it is committed and applied here.
    /// Returns its log index.
    pub async fn propose(&self, payload: Vec<u8>) -> Result<u64, ProposeError> {
        // Room for the entry's own fields (log id, enum tag, length) in its encoding.
        const ENTRY_OVERHEAD_BYTES: usize = 64;
        let max = self.config.entry_bytes_max.saturating_sub(ENTRY_OVERHEAD_BYTES);
        if payload.len() > max {
            return Err(ProposeError::TooLarge { bytes: payload.len(), max });
        }
        let timeout_ms = self.config.propose_timeout_ms;
        let written = tokio::time::timeout(Duration::from_millis(timeout_ms), self.raft.client_write(payload))
            .await
            .map_err(|_| ProposeError::Timeout { timeout_ms })?;
        match written {
            Ok(response) => match response.data.rejected {
                None => Ok(response.log_id.index),
                Some(reason) => Err(ProposeError::Rejected { index: response.log_id.index, reason }),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => Err(ProposeError::NotLeader {
                leader: forward.leader_id.map(|id| (id, forward.leader_node.as_ref().map(|n| super::node_addr(n).to_string()).unwrap_or_default())),
            }),
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => Err(ProposeError::Stopped(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(ProposeError::Stopped(e.to_string())),
        }
    }

    /// The current leader, when known: (id, `host:port`).
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics().borrow().clone();
        let id = metrics.current_leader?;
        let addr = metrics.membership_config.membership().get_node(&id).map(|n| super::node_addr(n).to_string()).unwrap_or_default();
        Some((id, addr))
    }

    /// Whether this node leads the quorum now.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.config.node_id)
    }

    /// Waits until some voter is known as leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// Waits until this node has applied `index`, up to `timeout`.
    pub async fn wait_for_applied(&self, index: u64, timeout: Duration) -> bool {
        self.raft.wait(Some(timeout)).applied_index_at_least(Some(index), "applied").await.is_ok()
    }

    /// What an observer following the log is sent after the index `after` (None: from the
    /// start): the payloads of the entries committed and applied here, about `bytes_max` at most
    /// (see [`LogStore::payloads_after`]), and the last index they cover. `None` when the entry
    /// after `after` is behind this node's snapshot: the observer needs a snapshot first.
    pub fn committed_payloads_after(&self, after: Option<u64>, bytes_max: usize) -> Option<Payloads> {
        let applied = self.raft.metrics().borrow().last_applied.map(|l| l.index);
        let up_to = match (self.log.committed_index(), applied) {
            (Some(c), Some(a)) => c.min(a),
            _ => return Some(Payloads { entries: Vec::new(), covered: after }),
        };
        self.log.payloads_after(after, up_to, bytes_max)
    }

    /// The index of the last entry purged behind a snapshot here, if any.
    pub fn last_purged_index(&self) -> Option<u64> {
        self.log.last_purged_index()
    }

    /// What DescribeQuorum shows, as this node sees it.
    pub fn status(&self) -> QuorumStatus {
        let m = self.raft.metrics().borrow().clone();
        let is_leader = m.state == ServerState::Leader && m.current_leader == Some(self.config.node_id);
        let now_wall = SystemTime::now();
        let now = Instant::now();
        let replica = |id: NodeId| {
            let node = m.membership_config.membership().get_node(&id);
            let addr = node.map(|n| super::node_addr(n).to_string()).unwrap_or_default();
            let directory_id = node.and_then(super::node_directory_id);
            let (matched_index, last_contact) = if id == self.config.node_id {
                (if is_leader { m.last_log_index } else { None }, Some(now_wall))
            } else {
                let matched = if is_leader {
                    m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map(|l| l.index)
                } else {
                    None
                };
                let contact = self.contacts.last_contact(id).map(|t| now_wall - now.saturating_duration_since(t));
                (matched, contact)
            };
            VoterStatus { node_id: id, addr, directory_id, matched_index, last_contact }
        };
        let voters = m.membership_config.membership().voter_ids().map(replica).collect();
        let learners = m.membership_config.membership().learner_ids().map(replica).collect();
        QuorumStatus {
            node_id: self.config.node_id,
            leader_id: m.current_leader,
            leader_epoch: m.current_term,
            committed_index: self.log.committed_index(),
            last_applied_index: m.last_applied.map(|l| l.index),
            last_log_index: m.last_log_index,
            is_leader,
            voters,
            learners,
        }
    }

    /// Stops openraft, the RPC listener and the snapshot monitor. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft core did not stop cleanly");
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::tests::Recorder;

    fn config(dir: PathBuf, voters: BTreeMap<NodeId, String>, id: NodeId) -> RaftConfig {
        RaftConfig { fetch_timeout_ms: 300, election_timeout_ms: 150, heartbeat_interval_ms: 50, ..RaftConfig::new(id, voters, dir) }
    }

    #[tokio::test]
    async fn a_config_without_this_node_among_the_voters_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let voters = BTreeMap::from([(2, "127.0.0.1:1".to_string())]);
        let err = RaftNode::start(config(tmp.path().to_path_buf(), voters, 1), Arc::new(Recorder::default())).await.expect_err("refused");
        assert!(matches!(err, StartError::InvalidConfig(_)), "{err}");
    }

    #[tokio::test]
    async fn a_heartbeat_not_below_the_shortest_election_timer_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let voters = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        let bad = RaftConfig { heartbeat_interval_ms: 75, ..config(tmp.path().to_path_buf(), voters, 1) };
        let err = RaftNode::start(bad, Arc::new(Recorder::default())).await.expect_err("refused");
        assert!(matches!(err, StartError::InvalidConfig(_)), "{err}");
    }

    /// A single voter serving its loopback listener: a real Vote RPC gets an answer under its
    /// correlation id; garbage bodies get Malformed; a wrong api key or an oversized length closes
    /// only that connection.
    #[tokio::test]
    async fn the_rpc_listener_answers_raft_frames_and_drops_bad_ones() {
        use crate::raft::transport::{RaftRequest, RaftResponse, encode_request_frame, read_frame};
        use openraft::Vote;
        use openraft::raft::VoteRequest;
        use tokio::io::AsyncWriteExt;

        let tmp = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let voters = BTreeMap::from([(1, addr.to_string())]);
        let node = RaftNode::start(config(tmp.path().to_path_buf(), voters, 1), Arc::new(Recorder::default())).await.expect("start");
        node.serve(listener);
        assert_eq!(node.wait_for_leader(Duration::from_secs(5)).await, Some(1));

        let garbage = node.handle_rpc(Bytes::from_static(b"\xff\xff\xff")).await;
        assert!(matches!(postcard::from_bytes::<RaftResponse>(&garbage), Ok(RaftResponse::Malformed(_))));

        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // A stale candidate (term 0) asks for a vote: the leader refuses it, in a Vote response.
        let body = postcard::to_allocvec(&RaftRequest::Vote(VoteRequest::new(Vote::new(0, 9), None))).expect("encode");
        stream.write_all(&encode_request_frame(41, "test", &body)).await.expect("write");
        let response = read_frame(&mut stream, 1 << 20).await.expect("read").expect("a frame");
        assert_eq!(&response[..4], &41i32.to_be_bytes());
        match postcard::from_bytes::<RaftResponse>(&response[4..]) {
            Ok(RaftResponse::Vote(Ok(vote))) => assert!(!vote.vote_granted),
            other => panic!("expected a refused vote, got {other:?}"),
        }

        let mut wrong_api = encode_request_frame(42, "test", &body);
        // Metadata (ApiVersions is answered: it is a peer client's first request).
        wrong_api[4..6].copy_from_slice(&3i16.to_be_bytes());
        stream.write_all(&wrong_api).await.expect("write");
        assert!(read_frame(&mut stream, 1 << 20).await.expect("closed cleanly").is_none(), "connection closed");

        let mut oversized = tokio::net::TcpStream::connect(addr).await.expect("connect");
        oversized.write_all(&i32::MAX.to_be_bytes()).await.expect("write");
        assert!(read_frame(&mut oversized, 1 << 20).await.expect("closed cleanly").is_none(), "connection closed");

        // The node still serves: it commits.
        assert!(node.propose(b"still here".to_vec()).await.is_ok());
        node.shutdown().await;
    }

    #[test]
    fn kafka_timeouts_map_onto_openraft_timers() {
        let c = RaftConfig::new(1, BTreeMap::new(), PathBuf::from("x"));
        let o = c.openraft_config().expect("valid");
        assert_eq!((o.election_timeout_min, o.election_timeout_max, o.heartbeat_interval), (500, 1500, 200));
        let fetch_not_above_election = RaftConfig { election_timeout_ms: 2000, ..c };
        assert!(fetch_not_above_election.openraft_config().is_err());
        assert_eq!(o.snapshot_policy, OpenraftSnapshotPolicy::Never);
    }
}
