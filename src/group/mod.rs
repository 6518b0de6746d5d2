//! Consumer groups, classic and KIP-848 ("consumer"): the coordinator (membership, rebalances,
//! timers), the pure state machines of both protocols, the server-side assignors, and committed
//! offsets with their `__consumer_offsets` record codec. Never imports `broker`: the log it
//! persists to is reached through the `GroupLog` trait the broker implements, and topics come in
//! as a `consumer::TopicsView`.

pub mod assignor;
pub mod consumer;
pub mod consumer_codec;
mod consumer_coordinator;
pub mod coordinator;
mod migration;
pub mod offsets;
pub mod state;

use bytes::Bytes;

pub use coordinator::GroupCoordinator;
use crate::coordinator::LogError;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Where group records go: partitions of `__consumer_offsets`, appended and replayed as
/// ordinary v2 record batches.
pub trait GroupLog: Sync {
    /// Appends one record batch to a partition, creating the topic on first use.
    fn append_group_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError>;
    /// Partition count of the topic, or None when it does not exist yet (nothing to replay).
    fn group_partitions(&self) -> Option<i32>;
    /// Whole batches of one partition from `offset` (or the log start, if later) up to the high
    /// watermark, at most about a megabyte; empty at the end.
    fn read_group_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError>;
    /// Why the groups of `partition` are not coordinated here (another broker leads it, it is
    /// still loading, its log dir is offline), or None when they are. Asked under the shard's
    /// lock by reads that must not answer from a shard being unloaded or not yet loaded.
    fn not_coordinating(&self, _partition: i32) -> Option<GroupError> {
        None
    }
}

/// Limits and timings of the coordinator, from the broker configuration.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offset_metadata_max_bytes: usize,
    /// Used for hashing until `__consumer_offsets` exists; afterwards its real partition count.
    pub offsets_topic_partitions: i32,
    /// offsets.retention.minutes, in ms: commits of a group without members expire this long
    /// after the group became empty (or after the commit, for groups that never had members).
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms.
    pub offsets_retention_check_interval_ms: u64,
    /// group.consumer.session.timeout.ms: a consumer-protocol member's session, unless the group
    /// overrides it (consumer.session.timeout.ms).
    pub consumer_session_timeout_ms: i32,
    /// group.consumer.heartbeat.interval.ms, unless the group overrides it.
    pub consumer_heartbeat_interval_ms: i32,
    /// group.consumer.max.size.
    pub consumer_max_size: usize,
    /// group.consumer.assignors as short names ("uniform", "range"); the first is the default.
    pub consumer_assignors: Vec<String>,
    /// group.coordinator.append.linger.ms: how long a consumer group's changes wait to be
    /// written together (0: written by the heartbeat that made them).
    pub append_linger_ms: u64,
    /// group.consumer.migration.policy: whether classic groups become consumer groups when a
    /// consumer-protocol member joins, and back when the last one leaves.
    pub migration_policy: MigrationPolicy,
}

/// group.consumer.migration.policy (KIP-848's online migration between the two protocols).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    Bidirectional,
}

impl MigrationPolicy {
    /// Kafka's names, in any case.
    pub fn parse(s: &str) -> Option<MigrationPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(MigrationPolicy::Disabled),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            _ => None,
        }
    }

    pub fn upgrades(self) -> bool {
        matches!(self, MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional)
    }

    pub fn downgrades(self) -> bool {
        matches!(self, MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional)
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4096,
            offsets_topic_partitions: 50,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: i32::MAX as usize,
            consumer_assignors: vec![assignor::UNIFORM.to_string(), assignor::RANGE.to_string()],
            append_linger_ms: 0,
            migration_policy: MigrationPolicy::Bidirectional,
        }
    }
}

/// Why a group operation failed; `api::error_code::group` turns it into Kafka's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    /// This broker leads the group's partition in the metadata it applied, and is still taking
    /// the partition over (loading its groups).
    #[error("the coordinator is loading the group's partition")]
    CoordinatorLoadInProgress,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("a member id is required; rejoin with the one given")]
    MemberIdRequired,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    #[error("session timeout outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("group.max.size reached")]
    GroupMaxSizeReached,
    #[error("fenced group instance id")]
    FencedInstanceId,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("no such group")]
    GroupIdNotFound,
    #[error("offset metadata larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("The coordinator received an invalid member epoch; the member must rejoin")]
    FencedMemberEpoch,
    #[error("The member epoch is stale")]
    StaleMemberEpoch,
    #[error("The instance id is still used by another member")]
    UnreleasedInstanceId,
    #[error("{0}")]
    UnsupportedAssignor(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidRegularExpression(String),
    #[error("Group {0} is not a consumer group.")]
    NotConsumerGroup(String),
    #[error("Group {0} is not a classic group.")]
    NotClassicGroup(String),
    #[error("Group {0} not found.")]
    ConsumerGroupNotFound(String),
    /// A write to `__consumer_offsets` failed; what failed decides the code.
    #[error("cannot write to {OFFSETS_TOPIC}: {0}")]
    Log(#[from] LogError),
}
