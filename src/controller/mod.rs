//! The controller's decisions, as Kafka's quorum controller makes them: broker registration,
//! heartbeats and fencing, topic and partition creation, deletion, ISR changes from leaders
//! (AlterPartition), leader elections, controlled shutdown, producer-id blocks and config changes.
//! Every decision is a pure function of the committed `MetadataImage` (plus the controller-local
//! heartbeat table) that returns the records to append and a typed answer; nothing here applies
//! records, touches the network, a clock or a file. The caller appends the records to the metadata
//! log and applies them to its image once committed.
pub mod cluster;
pub mod configs;
pub mod partition_change;
pub mod placement;
pub mod producer_ids;
pub mod replication;

pub use cluster::{BrokerHeartbeatReply, BrokerHeartbeatRequest, BrokerRegistrationReply, BrokerRegistrationRequest};
pub use configs::{AlterConfigOp, AlterConfigOpType};
pub use partition_change::{Election, PartitionChangeBuilder};
pub use placement::{place_replicas, validate_manual_assignment, PlacementError, UsableBroker};
pub use producer_ids::{ProducerIdsBlock, PRODUCER_ID_BLOCK_SIZE};
pub use replication::{
    AlterPartitionData, AlterPartitionRequest, AlterPartitionTopic, AlterPartitionTopicResult, BrokerState, CreatableTopic,
    CreatePartitionsTopic, CreatedTopic, PartitionState, TopicRef,
};

use std::collections::BTreeMap;

use crate::metadata::records::MetadataRecord;

/// `broker.session.timeout.ms` default: a broker not heard from for this long is fenced.
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 9_000;

/// The controller settings its decisions read, under Kafka's property names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`
    pub broker_session_timeout_ms: u64,
    /// `unclean.leader.election.enable` (the cluster default; a topic config overrides it)
    pub unclean_leader_election_enable: bool,
    /// `num.partitions`: used when CreateTopics asks for -1 partitions
    pub num_partitions: i32,
    /// `default.replication.factor`: used when CreateTopics asks for replication factor -1
    pub default_replication_factor: i16,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            unclean_leader_election_enable: false,
            num_partitions: 1,
            default_replication_factor: 1,
        }
    }
}

/// Records to append and the answer to give once they are committed (Kafka's `ControllerResult`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerResult<T> {
    pub records: Vec<MetadataRecord>,
    pub response: T,
}

impl<T> ControllerResult<T> {
    pub fn new(records: Vec<MetadataRecord>, response: T) -> Self {
        Self { records, response }
    }
}

/// The controller's refusals, one variant per Kafka error it answers with; `error_code` is the
/// wire code. The message is what Kafka puts in the response's error message.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControllerError {
    #[error("UNKNOWN_TOPIC_OR_PARTITION: {0}")]
    UnknownTopicOrPartition(String),
    #[error("UNKNOWN_TOPIC_ID: {0}")]
    UnknownTopicId(String),
    #[error("INVALID_TOPIC_EXCEPTION: {0}")]
    InvalidTopicException(String),
    #[error("TOPIC_ALREADY_EXISTS: {0}")]
    TopicAlreadyExists(String),
    #[error("INVALID_PARTITIONS: {0}")]
    InvalidPartitions(String),
    #[error("INVALID_REPLICATION_FACTOR: {0}")]
    InvalidReplicationFactor(String),
    #[error("INVALID_REPLICA_ASSIGNMENT: {0}")]
    InvalidReplicaAssignment(String),
    #[error("INVALID_CONFIG: {0}")]
    InvalidConfig(String),
    #[error("INVALID_REQUEST: {0}")]
    InvalidRequest(String),
    #[error("STALE_BROKER_EPOCH: {0}")]
    StaleBrokerEpoch(String),
    #[error("DUPLICATE_BROKER_REGISTRATION: {0}")]
    DuplicateBrokerRegistration(String),
    #[error("BROKER_ID_NOT_REGISTERED: {0}")]
    BrokerIdNotRegistered(String),
    #[error("UNSUPPORTED_VERSION: {0}")]
    UnsupportedVersion(String),
    #[error("FENCED_LEADER_EPOCH")]
    FencedLeaderEpoch,
    #[error("INVALID_UPDATE_VERSION")]
    InvalidUpdateVersion,
    #[error("NOT_CONTROLLER")]
    NotController,
    #[error("INELIGIBLE_REPLICA: {0}")]
    IneligibleReplica(String),
    #[error("NEW_LEADER_ELECTED")]
    NewLeaderElected,
    #[error("UNKNOWN_SERVER_ERROR: {0}")]
    UnknownServerError(String),
}

impl ControllerError {
    /// Kafka's error code for this error.
    pub fn error_code(&self) -> i16 {
        match self {
            ControllerError::UnknownServerError(_) => -1,
            ControllerError::UnknownTopicOrPartition(_) => 3,
            ControllerError::InvalidTopicException(_) => 17,
            ControllerError::UnsupportedVersion(_) => 35,
            ControllerError::TopicAlreadyExists(_) => 36,
            ControllerError::InvalidPartitions(_) => 37,
            ControllerError::InvalidReplicationFactor(_) => 38,
            ControllerError::InvalidReplicaAssignment(_) => 39,
            ControllerError::InvalidConfig(_) => 40,
            ControllerError::NotController => 41,
            ControllerError::InvalidRequest(_) => 42,
            ControllerError::FencedLeaderEpoch => 74,
            ControllerError::StaleBrokerEpoch(_) => 77,
            ControllerError::InvalidUpdateVersion => 95,
            ControllerError::UnknownTopicId(_) => 100,
            ControllerError::DuplicateBrokerRegistration(_) => 101,
            ControllerError::BrokerIdNotRegistered(_) => 102,
            ControllerError::IneligibleReplica(_) => 107,
            ControllerError::NewLeaderElected => 108,
        }
    }
}

impl From<PlacementError> for ControllerError {
    fn from(e: PlacementError) -> Self {
        match e.error_code() {
            38 => ControllerError::InvalidReplicationFactor(e.to_string()),
            _ => ControllerError::InvalidReplicaAssignment(e.to_string()),
        }
    }
}

/// The controller's state that is not in the metadata log: when each broker last heartbeat.
/// It is rebuilt empty when a controller takes over (every broker then gets a fresh session from
/// its next heartbeat, as in Kafka, where a new active controller starts all sessions anew).
#[derive(Clone, Debug, Default)]
pub struct Controller {
    pub config: ControllerConfig,
    last_heartbeat_ms: BTreeMap<i32, u64>,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Self {
        Self { config, last_heartbeat_ms: BTreeMap::new() }
    }

    /// When `broker_id` last heartbeat or registered, if this controller has heard from it.
    pub fn last_heartbeat_ms(&self, broker_id: i32) -> Option<u64> {
        self.last_heartbeat_ms.get(&broker_id).copied()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::metadata::image::MetadataImage;
    use uuid::Uuid;

    /// An image with unfenced brokers `1..=n`, each at epoch 100 + id, racks as given.
    pub fn cluster(n: i32, racks: &[&str]) -> MetadataImage {
        let mut image = MetadataImage::new();
        for id in 1..=n {
            let rack = if racks.is_empty() { None } else { Some(racks[(id as usize - 1) % racks.len()]) };
            let mut rec = crate::metadata::image::tests::register(id, 100 + id as i64, rack, false);
            if let MetadataRecord::RegisterBroker(r) = &mut rec {
                r.incarnation_id = Uuid::from_u128(id as u128);
            }
            image.apply(&rec).unwrap();
        }
        image
    }

    /// Applies a result's records to the image, failing the test if one is refused.
    pub fn commit<T>(image: &mut MetadataImage, result: &ControllerResult<T>) {
        for r in &result.records {
            image.apply(r).unwrap_or_else(|e| panic!("record {r:?} refused: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_kafkas() {
        assert_eq!(ControllerError::UnknownTopicOrPartition(String::new()).error_code(), 3);
        assert_eq!(ControllerError::InvalidUpdateVersion.error_code(), 95);
        assert_eq!(ControllerError::DuplicateBrokerRegistration(String::new()).error_code(), 101);
        assert_eq!(ControllerError::IneligibleReplica(String::new()).error_code(), 107);
        assert_eq!(ControllerError::from(PlacementError::AllBrokersFenced).error_code(), 38);
        assert_eq!(ControllerError::from(PlacementError::DuplicateBroker(1)).error_code(), 39);
    }
}
