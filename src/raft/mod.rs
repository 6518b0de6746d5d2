//! The metadata quorum: a Raft node built on openraft (storage, network and state machine adapter
//! are ours; terms, votes and commits are openraft's). Log entries carry opaque payloads (an
//! encoded batch of metadata records); this module never looks inside them.
//!
//! - `log_store` the Raft log and the vote on disk (`<metadata.log.dir>/fjord-raft/`).
//! - `state_machine` openraft's state machine over [`StateMachine`], with snapshots on disk.
//! - `transport` voter-to-voter RPCs in a Kafka request frame under [`transport::FJORD_RAFT_API_KEY`].
//! - `node` [`RaftNode`]: start, propose, leader, status (DescribeQuorum), shutdown.

pub mod log_store;
pub mod node;
pub mod state_machine;
pub mod transport;

/// A voter's id: Kafka's `node.id`.
pub type NodeId = u64;

/// The membership's node for a voter: its controller listener's `host:port`, then, for a voter
/// added through AddRaftVoter (KIP-853), `/` and its metadata log dir's `directory.id` (Kafka's
/// replica key is id and directory id; RemoveRaftVoter names both). Kept inside openraft's
/// `BasicNode` address so that it is replicated and persisted with the membership and logs written
/// before it still read (a `host:port` never holds a `/`).
pub fn voter_node(addr: &str, directory_id: Option<uuid::Uuid>) -> openraft::BasicNode {
    match directory_id {
        Some(d) => openraft::BasicNode::new(format!("{addr}/{d}")),
        None => openraft::BasicNode::new(addr),
    }
}

/// A membership node's `host:port` (see [`voter_node`]).
pub fn node_addr(node: &openraft::BasicNode) -> &str {
    node.addr.split_once('/').map_or(node.addr.as_str(), |(a, _)| a)
}

/// A membership node's directory id, when it joined with one (see [`voter_node`]).
pub fn node_directory_id(node: &openraft::BasicNode) -> Option<uuid::Uuid> {
    node.addr.split_once('/').and_then(|(_, d)| d.parse().ok())
}

/// What one applied entry answers to the proposer: `Err` when the state machine rejected it (the
/// same on every replica, so the entry is skipped everywhere).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplyOutcome {
    pub rejected: Option<String>,
}

pub use node::{ProposeError, QuorumStatus, RAFT_DIR_NAME, RaftConfig, RaftNode, StartError, VoterChangeError, VoterStatus, raft_dir};
pub use state_machine::SnapshotPolicy;
pub use transport::{FJORD_RAFT_API_KEY, TransportConfig};

openraft::declare_raft_types!(
    /// The openraft type configuration of the metadata quorum: opaque byte payloads, u64 node ids
    /// (Kafka's `node.id`), nodes addressed by `host:port`, snapshots held whole in memory.
    pub TypeConfig:
        D = Vec<u8>,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Vec<u8>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// A state machine's failure to apply an entry or install a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The payload is invalid for this state (deterministic: every replica rejects it the same
    /// way). The entry stays in the log, changes nothing, and its proposer gets
    /// [`ProposeError::Rejected`].
    #[error("entry rejected by the state machine: {0}")]
    Rejected(String),
    /// The state machine cannot go on (a bug, an undecodable snapshot). The Raft node stops.
    #[error("state machine failed: {0}")]
    Fatal(String),
}

/// The replicated state (the metadata image). It knows nothing of openraft: it sees payloads in
/// log order, exactly once per committed entry, and whole-state snapshots. It starts empty at every
/// start of the node; the node rebuilds it from the latest snapshot plus the log after it.
/// `apply` runs on an async worker: it must be quick and must not wait for a disk or a lock held
/// across I/O; `snapshot` and `install_snapshot` run on a blocking thread.
pub trait StateMachine: Send + Sync + 'static {
    /// Applies the payload of the committed entry at `index` (indexes grow; entries without a
    /// payload, such as a new leader's blank entry or a membership change, are not passed).
    fn apply(&self, index: u64, payload: &[u8]) -> Result<(), ApplyError>;
    /// The full state, encoded, with the index of the last entry applied to it.
    fn snapshot(&self) -> (u64, Vec<u8>);
    /// Replaces the whole state with a snapshot taken at `last_index`.
    fn install_snapshot(&self, last_index: u64, bytes: &[u8]) -> Result<(), ApplyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voter_node_carries_its_directory_id_after_its_address_and_old_nodes_still_read() {
        let d = uuid::Uuid::from_u128(7);
        let node = voter_node("host:9093", Some(d));
        assert_eq!((node_addr(&node), node_directory_id(&node)), ("host:9093", Some(d)));
        let old = openraft::BasicNode::new("[::1]:9093");
        assert_eq!((node_addr(&old), node_directory_id(&old)), ("[::1]:9093", None), "a membership written before directory ids");
        assert_eq!(voter_node("host:9093", None), openraft::BasicNode::new("host:9093"), "no directory id: the address alone, as before");
    }
}
