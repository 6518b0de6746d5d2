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
    CreatePartitionsTopic, CreatedTopic, ElectionType, OngoingReassignment, PartitionState, ReassignablePartition, TopicRef,
    list_partition_reassignments, validate_topic_name,
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
    #[error("NO_REASSIGNMENT_IN_PROGRESS")]
    NoReassignmentInProgress,
    #[error("PREFERRED_LEADER_NOT_AVAILABLE")]
    PreferredLeaderNotAvailable,
    #[error("ELIGIBLE_LEADERS_NOT_AVAILABLE")]
    EligibleLeadersNotAvailable,
    #[error("ELECTION_NOT_NEEDED")]
    ElectionNotNeeded,
    #[error("UNKNOWN_SERVER_ERROR: {0}")]
    UnknownServerError(String),
}

impl ControllerError {
    /// The error's message as Kafka's controller words it, without the error name.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((_, message)) => message.to_string(),
            None => text,
        }
    }

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
            ControllerError::NoReassignmentInProgress => 85,
            ControllerError::PreferredLeaderNotAvailable => 80,
            ControllerError::EligibleLeadersNotAvailable => 83,
            ControllerError::ElectionNotNeeded => 84,
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

/// The controller's state that is not in the metadata image: when each broker last heartbeat,
/// and the log offset of each broker's latest registration record. It starts empty when a
/// controller takes over: every broker then gets a fresh session from its next heartbeat (as in
/// Kafka, where a new active controller starts all sessions anew), and a broker's caught-up
/// threshold falls back to its broker epoch (the offset of its first registration by this
/// incarnation; a later same-incarnation registration's offset is known only to the controller
/// that wrote it).
#[derive(Clone, Debug, Default)]
pub struct Controller {
    pub config: ControllerConfig,
    last_heartbeat_ms: BTreeMap<i32, u64>,
    registration_offsets: BTreeMap<i32, i64>,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Self {
        Self { config, last_heartbeat_ms: BTreeMap::new(), registration_offsets: BTreeMap::new() }
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
    use crate::metadata::image::MetadataImage;
    use crate::metadata::records::{BrokerEndpoint, LeaderRecoveryState, NO_LEADER};
    use proptest::prelude::*;
    use uuid::Uuid;

    /// One step a cluster can take; indexes pick brokers, topics and partitions modulo what exists.
    #[derive(Clone, Debug)]
    enum Step {
        Register { broker: i32, new_incarnation: bool, wiped: bool },
        Heartbeat { broker: i32, caught_up: bool, want_shut_down: bool, want_fence: bool },
        Tick { ms: u64 },
        CreateTopic { partitions: i32, rf: i16 },
        CreatePartitions { topic: usize, more: i32 },
        DeleteTopic { topic: usize },
        ShrinkIsr { topic: usize, partition: i32 },
        ExpandIsr { topic: usize, partition: i32 },
        Preferred { topic: usize, partition: i32 },
        Unregister { broker: i32 },
        Reassign { topic: usize, partition: i32, replicas: Option<Vec<i32>> },
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1i32..5, any::<bool>(), prop::bool::weighted(0.3))
                .prop_map(|(broker, new_incarnation, wiped)| Step::Register { broker, new_incarnation, wiped: new_incarnation && wiped }),
            (1i32..5, any::<bool>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
                .prop_map(|(broker, caught_up, want_shut_down, want_fence)| Step::Heartbeat { broker, caught_up, want_shut_down, want_fence }),
            (0u64..12_000).prop_map(|ms| Step::Tick { ms }),
            (1i32..4, 1i16..4).prop_map(|(partitions, rf)| Step::CreateTopic { partitions, rf }),
            (0usize..8, 1i32..3).prop_map(|(topic, more)| Step::CreatePartitions { topic, more }),
            (0usize..8).prop_map(|topic| Step::DeleteTopic { topic }),
            (0usize..8, 0i32..4).prop_map(|(topic, partition)| Step::ShrinkIsr { topic, partition }),
            (0usize..8, 0i32..4).prop_map(|(topic, partition)| Step::ExpandIsr { topic, partition }),
            (0usize..8, 0i32..4).prop_map(|(topic, partition)| Step::Preferred { topic, partition }),
            (1i32..5).prop_map(|broker| Step::Unregister { broker }),
            (0usize..8, 0i32..4, prop::option::weighted(0.8, prop::sample::subsequence(vec![1, 2, 3, 4], 1..4).prop_shuffle()))
                .prop_map(|(topic, partition, replicas)| Step::Reassign { topic, partition, replicas }),
        ]
    }

    /// Kafka's invariants on every partition of an image.
    fn check_invariants(image: &MetadataImage) -> Result<(), String> {
        for t in image.topics() {
            for (pid, p) in &t.partitions {
                let at = format!("{}-{pid} {p:?}", t.name);
                let distinct: std::collections::BTreeSet<_> = p.isr.iter().collect();
                if p.isr.is_empty() || distinct.len() != p.isr.len() || !p.isr.iter().all(|r| p.replicas.contains(r)) {
                    return Err(format!("bad ISR: {at}"));
                }
                if p.leader != NO_LEADER && !(p.isr.contains(&p.leader) && image.is_broker_active(p.leader)) {
                    return Err(format!("leader not an active ISR member: {at}"));
                }
                if p.leader == NO_LEADER && p.isr.iter().any(|&r| image.is_broker_active(r) && !p.lost_replicas.contains(&r)) {
                    return Err(format!("no leader although an ISR member is active: {at}"));
                }
                if p.lost_replicas.contains(&p.leader) || !p.lost_replicas.iter().all(|r| p.replicas.contains(r)) {
                    return Err(format!("a replica that lost its log dir leads, or a lost replica outside the assignment: {at}"));
                }
                if !p.adding_replicas.iter().chain(&p.removing_replicas).all(|r| p.replicas.contains(r))
                    || p.adding_replicas.iter().any(|r| p.removing_replicas.contains(r))
                {
                    return Err(format!("adding/removing replicas outside the assignment: {at}"));
                }
                if p.leader_recovery_state != LeaderRecoveryState::Recovered {
                    return Err(format!("unclean election without it being enabled: {at}"));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any sequence of registrations, heartbeats, expiries, topic changes and ISR changes keeps
        /// every ISR non-empty and within the replicas, every leader an active ISR member (or -1
        /// only when no ISR member is active), epochs never going back, and every record batch
        /// applicable to the image it was decided on.
        #[test]
        fn controller_decisions_keep_kafkas_partition_invariants(steps in prop::collection::vec(arb_step(), 1..60)) {
            let mut c = Controller::new(ControllerConfig::default());
            let mut image = MetadataImage::new();
            let mut now_ms = 0u64;
            let mut next_offset = 1i64;
            let mut next_id = 1u128;
            let mut incarnations = std::collections::BTreeMap::new();
            let mut directories = std::collections::BTreeMap::new();
            // Three brokers up first, so most steps act on topics that exist.
            let bootstrap = [1, 2, 3].into_iter().flat_map(|b| [Step::Register { broker: b, new_incarnation: false, wiped: false }, Step::Heartbeat { broker: b, caught_up: true, want_shut_down: false, want_fence: false }]);
            let opening = [Step::CreateTopic { partitions: 3, rf: 3 }, Step::CreateTopic { partitions: 2, rf: 2 }];
            for step in bootstrap.chain(opening).chain(steps) {
                let before = image.clone();
                let records: Vec<MetadataRecord> = match step.clone() {
                    Step::Register { broker, new_incarnation, wiped } => {
                        let inc = incarnations.entry(broker).or_insert(broker as u128 * 1000);
                        if new_incarnation { *inc += 1; }
                        // A wiped broker comes back with a log dir formatted anew.
                        let dir = directories.entry(broker).or_insert(broker as u128 * 1000 + 500);
                        if wiped { *dir += 1; }
                        let req = BrokerRegistrationRequest {
                            broker_id: broker,
                            incarnation_id: Uuid::from_u128(*inc),
                            listeners: vec![BrokerEndpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092, security_protocol: 0 }],
                            features: vec![],
                            rack: Some(format!("r{}", broker % 2)),
                            log_dirs: vec![Uuid::from_u128(*dir)],
                        };
                        c.register_broker(&image, &req, next_offset, now_ms).map(|r| r.records).unwrap_or_default()
                    }
                    Step::Heartbeat { broker, caught_up, want_shut_down, want_fence } => match image.broker(broker) {
                        Some(b) => {
                            let req = BrokerHeartbeatRequest {
                                broker_id: broker,
                                broker_epoch: b.epoch,
                                current_metadata_offset: if caught_up { next_offset } else { b.epoch - 1 },
                                want_fence,
                                want_shut_down,
                            };
                            c.broker_heartbeat(&image, &req, now_ms).unwrap().records
                        }
                        None => vec![],
                    },
                    Step::Tick { ms } => {
                        now_ms += ms;
                        c.fence_stale_brokers(&image, now_ms).records
                    }
                    Step::CreateTopic { partitions, rf } => {
                        let t = CreatableTopic { name: format!("t{next_id}"), num_partitions: partitions, replication_factor: rf, assignments: vec![], configs: vec![] };
                        let id = Uuid::from_u128(next_id);
                        next_id += 1;
                        c.create_topics(&image, &[t], move || id, next_id as u64).records
                    }
                    Step::CreatePartitions { topic, more } => match image.topics().nth(topic) {
                        Some(t) => {
                            let req = CreatePartitionsTopic { name: t.name.clone(), count: t.partitions.len() as i32 + more, assignments: None };
                            c.create_partitions(&image, &[req], 3).records
                        }
                        None => vec![],
                    },
                    Step::DeleteTopic { topic } => match image.topics().nth(topic) {
                        Some(t) => c.delete_topics(&image, &[TopicRef::Id(t.id)]).records,
                        None => vec![],
                    },
                    Step::ShrinkIsr { topic, partition } | Step::ExpandIsr { topic, partition } => {
                        let expand = matches!(step, Step::ExpandIsr { .. });
                        match image.topics().nth(topic).and_then(|t| Some((t.id, t.partitions.get(&partition)?.clone()))) {
                            Some((topic_id, p)) if p.leader != NO_LEADER => {
                                let isr: Vec<i32> = if expand {
                                    p.replicas.clone()
                                } else {
                                    p.isr.iter().copied().filter(|&r| r == p.leader || r % 2 == 0).collect()
                                };
                                let leader_epoch_of = image.broker(p.leader).map_or(-1, |b| b.epoch);
                                let req = AlterPartitionRequest {
                                    broker_id: p.leader,
                                    broker_epoch: leader_epoch_of,
                                    topics: vec![AlterPartitionTopic {
                                        topic_id,
                                        partitions: vec![AlterPartitionData {
                                            partition_index: partition,
                                            leader_epoch: p.leader_epoch,
                                            new_isr: isr.iter().map(|&broker_id| BrokerState { broker_id, broker_epoch: -1 }).collect(),
                                            leader_recovery_state: LeaderRecoveryState::Recovered,
                                            partition_epoch: p.partition_epoch,
                                        }],
                                    }],
                                };
                                c.alter_partition(&image, &req).map(|r| r.records).unwrap_or_default()
                            }
                            _ => vec![],
                        }
                    }
                    Step::Preferred { topic, partition } => match image.topics().nth(topic) {
                        Some(t) => c.elect_leaders(&image, ElectionType::Preferred, &[(t.name.clone(), partition)]).records,
                        None => vec![],
                    },
                    Step::Unregister { broker } => c.unregister_broker(&image, broker).map(|r| r.records).unwrap_or_default(),
                    Step::Reassign { topic, partition, ref replicas } => match image.topics().nth(topic) {
                        Some(t) => {
                            let target = ReassignablePartition { topic: t.name.clone(), partition_index: partition, replicas: replicas.clone() };
                            c.alter_partition_reassignments(&image, &[target]).records
                        }
                        None => vec![],
                    },
                };
                if let Err(e) = image.apply_batch(next_offset as u64, &records) {
                    return Err(TestCaseError::fail(format!("{step:?} produced records the image refuses: {e}\n{records:?}")));
                }
                next_offset += records.len().max(1) as i64;
                // Unregistering a broker leaves it in replica lists (Kafka does the same), so only
                // the partitions' ISR/leader invariants and epoch monotonicity are checked.
                check_invariants(&image).map_err(|e| TestCaseError::fail(format!("after {step:?}: {e}")))?;
                for t in image.topics() {
                    if let Some(old) = before.topic_by_id(t.id) {
                        for (pid, p) in &t.partitions {
                            if let Some(o) = old.partitions.get(pid) {
                                prop_assert!(p.leader_epoch >= o.leader_epoch && p.partition_epoch >= o.partition_epoch);
                                if p != o {
                                    prop_assert!(p.partition_epoch > o.partition_epoch, "a change without a partition epoch bump");
                                }
                                if p.leader != o.leader {
                                    prop_assert!(p.leader_epoch > o.leader_epoch, "a leader change without a leader epoch bump");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

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
