//! Topic and partition decisions (Kafka's `ReplicationControlManager`): CreateTopics,
//! CreatePartitions, DeleteTopics, AlterPartition from a partition leader, preferred leader
//! elections, partition reassignments, and the leader/ISR updates that follow a broker being
//! fenced, unfenced or shut down.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::cluster::check_broker_epoch;
use super::partition_change::{Election, PartitionChangeBuilder};
use super::placement::{place_replicas, validate_manual_assignment, UsableBroker};
use super::{Controller, ControllerConfig, ControllerError, ControllerResult};
use crate::metadata::image::{ConfigResource, MetadataImage, PartitionRegistration};
use crate::metadata::records::*;

/// "No broker" for the broker-to-remove / broker-to-add arguments of the leader/ISR updates.
pub(crate) const NO_BROKER: i32 = -1;
/// The topic config that allows electing a leader outside the ISR.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";
/// How many times CreateTopics draws a topic id before giving up on a generator that keeps
/// returning taken ids.
const TOPIC_ID_DRAWS_MAX: usize = 16;

/// A topic of a CreateTopics request. `num_partitions` / `replication_factor` of -1 take the
/// controller's defaults; `assignments` (partition index, broker ids) replaces both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatableTopic {
    pub name: String,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// A topic of a CreatePartitions request: the new total `count`, and optionally the new
/// partitions' assignments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatePartitionsTopic {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// ElectLeaders' election type (Kafka's `ElectionType`: 0 preferred, 1 unclean).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// A topic named in DeleteTopics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// An ISR member of an AlterPartition request; `broker_epoch` -1 when the leader does not know it
/// (requests below version 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerState {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionData {
    pub partition_index: i32,
    pub leader_epoch: i32,
    pub new_isr: Vec<BrokerState>,
    pub leader_recovery_state: LeaderRecoveryState,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionTopic {
    pub topic_id: Uuid,
    pub partitions: Vec<AlterPartitionData>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topics: Vec<AlterPartitionTopic>,
}

/// A partition's state after an accepted AlterPartition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub leader_recovery_state: LeaderRecoveryState,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterPartitionTopicResult {
    pub topic_id: Uuid,
    pub partitions: Vec<(i32, Result<PartitionState, ControllerError>)>,
}

/// One partition of AlterPartitionReassignments: `replicas: None` cancels its reassignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassignablePartition {
    pub topic: String,
    pub partition_index: i32,
    pub replicas: Option<Vec<i32>>,
}

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition_index: i32,
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

/// Kafka's topic name rules, in its controller's words ([`crate::metadata::topic_name_refusal`]).
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    crate::metadata::topic_name_refusal(name).map_or(Ok(()), |why| Err(ControllerError::InvalidTopicException(why)))
}

/// Brokers placement may use: registered and not in controlled shutdown.
fn usable_brokers(image: &MetadataImage) -> Vec<UsableBroker> {
    image
        .brokers()
        .values()
        .filter(|b| !b.in_controlled_shutdown)
        .map(|b| UsableBroker { id: b.id, rack: b.rack.clone(), fenced: b.fenced })
        .collect()
}

/// (topic id, partition id) of every partition whose registration matches.
pub(crate) fn partitions_where(image: &MetadataImage, f: impl Fn(&PartitionRegistration) -> bool) -> Vec<(Uuid, i32)> {
    let mut out = Vec::new();
    for t in image.topics() {
        for (&pid, p) in &t.partitions {
            if f(p) {
                out.push((t.id, pid));
            }
        }
    }
    out
}

pub(crate) fn partitions_led_by(image: &MetadataImage, broker_id: i32) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    image.topics().flat_map(move |t| t.partitions.iter().filter(move |(_, p)| p.leader == broker_id).map(move |(&pid, _)| (t.id, pid)))
}

fn unclean_election_enabled(image: &MetadataImage, config: &ControllerConfig, topic_name: &str) -> bool {
    let from = |r: ConfigResource| image.config(&r, UNCLEAN_LEADER_ELECTION_ENABLE).map(|v| v.eq_ignore_ascii_case("true"));
    from(ConfigResource::topic(topic_name))
        .or_else(|| from(ConfigResource::broker("")))
        .unwrap_or(config.unclean_leader_election_enable)
}

/// Kafka's `generateLeaderAndIsrUpdates`: for each partition, drop `broker_to_remove` from the ISR
/// (never emptying it) and elect a leader among acceptable ISR members. `broker_to_add` counts as
/// acceptable although the image still shows it fenced (it is being unfenced by the same batch).
pub(crate) fn leader_and_isr_updates(
    image: &MetadataImage,
    config: &ControllerConfig,
    broker_to_remove: i32,
    broker_to_add: i32,
    partitions: Vec<(Uuid, i32)>,
) -> Vec<MetadataRecord> {
    let acceptable = |r: i32| r != broker_to_remove && (r == broker_to_add || image.is_broker_active(r));
    let mut records = Vec::new();
    for (topic_id, pid) in partitions {
        let (Some(topic), Some(p)) = (image.topic_by_id(topic_id), image.partition(topic_id, pid)) else { continue };
        let election = if unclean_election_enabled(image, config, &topic.name) { Election::Unclean } else { Election::Online };
        let isr: Vec<i32> = p.isr.iter().copied().filter(|&r| r != broker_to_remove).collect();
        if let Some(change) = PartitionChangeBuilder::new(p, topic_id, pid, &acceptable).election(election).target_isr(isr).build() {
            records.push(MetadataRecord::PartitionChange(change));
        }
    }
    records
}

impl Controller {
    /// CreateTopics: validates each topic, places or checks its replicas, and writes a Topic
    /// record, one Partition record per partition (ISR = the active replicas, leader = the first
    /// of them in replica order, epochs 0) and its configs. `new_topic_id` draws fresh ids;
    /// `seed` rotates placement. One result per requested topic, in request order.
    pub fn create_topics(
        &self,
        image: &MetadataImage,
        topics: &[CreatableTopic],
        mut new_topic_id: impl FnMut() -> Uuid,
        seed: u64,
    ) -> ControllerResult<Vec<Result<CreatedTopic, ControllerError>>> {
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        let mut names_in_request = BTreeSet::new();
        let duplicates: BTreeSet<&str> = topics.iter().map(|t| t.name.as_str()).filter(|n| !names_in_request.insert(*n)).collect();
        let mut created_names: BTreeSet<String> = BTreeSet::new();
        let mut created_ids: BTreeSet<Uuid> = BTreeSet::new();
        for (i, topic) in topics.iter().enumerate() {
            if duplicates.contains(topic.name.as_str()) {
                results.push(Err(ControllerError::InvalidRequest(format!("Duplicate topic name {}", topic.name))));
                continue;
            }
            match self.create_topic(image, topic, &created_names, &created_ids, &mut new_topic_id, seed.wrapping_add(i as u64)) {
                Ok((created, recs)) => {
                    created_names.insert(topic.name.clone());
                    created_ids.insert(created.topic_id);
                    records.extend(recs);
                    results.push(Ok(created));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        ControllerResult::new(records, results)
    }

    fn create_topic(
        &self,
        image: &MetadataImage,
        topic: &CreatableTopic,
        created_in_request: &BTreeSet<String>,
        ids_in_request: &BTreeSet<Uuid>,
        new_topic_id: &mut impl FnMut() -> Uuid,
        seed: u64,
    ) -> Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError> {
        validate_topic_name(&topic.name)?;
        if image.topic_by_name(&topic.name).is_some() {
            return Err(ControllerError::TopicAlreadyExists(format!("Topic '{}' already exists.", topic.name)));
        }
        // '.' and '_' collide in metric names, so Kafka refuses names that differ only there.
        let normalized = topic.name.replace('.', "_");
        let existing = image.topics().map(|t| t.name.clone()).chain(created_in_request.iter().cloned());
        for other in existing {
            if other != topic.name && other.replace('.', "_") == normalized {
                return Err(ControllerError::InvalidTopicException(format!(
                    "Topic '{}' collides with existing topic: {other}",
                    topic.name
                )));
            }
        }
        let assignments: Vec<Vec<i32>> = if !topic.assignments.is_empty() {
            if topic.replication_factor != -1 {
                return Err(ControllerError::InvalidRequest("A manual partition assignment was specified, but replication factor was not set to -1.".into()));
            }
            if topic.num_partitions != -1 {
                return Err(ControllerError::InvalidRequest("A manual partition assignment was specified, but numPartitions was not set to -1.".into()));
            }
            let mut sorted = topic.assignments.clone();
            sorted.sort_by_key(|(idx, _)| *idx);
            if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(ControllerError::InvalidReplicaAssignment(format!("Found multiple manual partition assignments for partition {}", w[0].0)));
            }
            let mut out = Vec::with_capacity(sorted.len());
            for (expected, (idx, replicas)) in sorted.into_iter().enumerate() {
                if idx != expected as i32 {
                    return Err(ControllerError::InvalidReplicaAssignment("partitions should be a consecutive 0-based integer sequence".into()));
                }
                let rf = out.first().map(|f: &Vec<i32>| f.len());
                validate_manual_assignment(&replicas, |id| image.broker(id).is_some(), rf)?;
                if !replicas.iter().any(|&r| image.is_broker_active(r)) {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "All brokers specified in the manual partition assignment for partition {idx} are fenced or in controlled shutdown."
                    )));
                }
                out.push(replicas);
            }
            out
        } else {
            let num_partitions = if topic.num_partitions == -1 { self.config.num_partitions } else { topic.num_partitions };
            let rf = if topic.replication_factor == -1 { self.config.default_replication_factor } else { topic.replication_factor };
            if num_partitions <= 0 {
                return Err(ControllerError::InvalidPartitions(format!("Number of partitions was set to an invalid non-positive value {num_partitions}.")));
            }
            if rf <= 0 {
                return Err(ControllerError::InvalidReplicationFactor("Replication factor must be larger than 0, or -1 to use the default value.".into()));
            }
            place_replicas(&usable_brokers(image), 0, num_partitions, rf as i32, seed)?
        };
        // Kafka draws again when an id is zero or taken; a broken generator must not loop forever.
        let topic_id = (0..TOPIC_ID_DRAWS_MAX)
            .map(|_| new_topic_id())
            .find(|id| !id.is_nil() && image.topic_by_id(*id).is_none() && !ids_in_request.contains(id))
            .ok_or_else(|| ControllerError::UnknownServerError("could not draw an unused topic id".into()))?;
        let mut records = vec![MetadataRecord::Topic(TopicRecord { name: topic.name.clone(), topic_id })];
        for (pid, replicas) in assignments.iter().enumerate() {
            records.push(MetadataRecord::Partition(new_partition(image, topic_id, pid as i32, replicas, topic.replication_factor)?));
        }
        for (name, value) in &topic.configs {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: topic.name.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            }));
        }
        let created = CreatedTopic {
            topic_id,
            num_partitions: assignments.len() as i32,
            replication_factor: assignments.first().map_or(0, |r| r.len() as i16),
        };
        Ok((created, records))
    }

    /// CreatePartitions: grows each topic to `count` partitions with placed or given replicas.
    pub fn create_partitions(
        &self,
        image: &MetadataImage,
        topics: &[CreatePartitionsTopic],
        seed: u64,
    ) -> ControllerResult<Vec<Result<(), ControllerError>>> {
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        for (i, t) in topics.iter().enumerate() {
            match self.create_partitions_of(image, t, seed.wrapping_add(i as u64)) {
                Ok(recs) => {
                    records.extend(recs);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        ControllerResult::new(records, results)
    }

    fn create_partitions_of(&self, image: &MetadataImage, t: &CreatePartitionsTopic, seed: u64) -> Result<Vec<MetadataRecord>, ControllerError> {
        let topic = image
            .topic_by_name(&t.name)
            .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("Unable to locate topic {}", t.name)))?;
        let current = topic.partitions.len() as i32;
        if t.count < current {
            return Err(ControllerError::InvalidPartitions(format!(
                "The topic {} currently has {current} partition(s); {} would not be an increase.",
                t.name, t.count
            )));
        }
        if t.count == current {
            return Err(ControllerError::InvalidPartitions(format!("Topic already has {current} partition(s).")));
        }
        let additional = t.count - current;
        let rf = topic.partitions.values().next().map_or(0, |p| p.replicas.len());
        let assignments = match &t.assignments {
            Some(given) => {
                if given.len() != additional as usize {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                        given.len()
                    )));
                }
                for (k, replicas) in given.iter().enumerate() {
                    validate_manual_assignment(replicas, |id| image.broker(id).is_some(), Some(rf))?;
                    if !replicas.iter().any(|&r| image.is_broker_active(r)) {
                        return Err(ControllerError::InvalidReplicaAssignment(format!(
                            "All brokers specified in the manual partition assignment for partition {} are fenced or in controlled shutdown.",
                            current + k as i32
                        )));
                    }
                }
                given.clone()
            }
            None => place_replicas(&usable_brokers(image), current, additional, rf as i32, seed)?,
        };
        let mut records = Vec::new();
        for (k, replicas) in assignments.iter().enumerate() {
            records.push(MetadataRecord::Partition(new_partition(image, topic.id, current + k as i32, replicas, rf as i16)?));
        }
        Ok(records)
    }

    /// DeleteTopics: one RemoveTopic record per existing topic; the image drops its configs too.
    pub fn delete_topics(&self, image: &MetadataImage, topics: &[TopicRef]) -> ControllerResult<Vec<Result<Uuid, ControllerError>>> {
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        let mut seen = BTreeSet::new();
        for t in topics {
            let found = match t {
                TopicRef::Name(n) => image.topic_by_name(n).ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("Unable to locate topic {n}"))),
                TopicRef::Id(id) => image.topic_by_id(*id).ok_or_else(|| ControllerError::UnknownTopicId(format!("Unable to locate topic ID {id}"))),
            };
            match found {
                Ok(topic) if !seen.insert(topic.id) => {
                    results.push(Err(ControllerError::InvalidRequest(format!("Duplicate topic {} in the request", topic.name))))
                }
                Ok(topic) => {
                    records.push(MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: topic.id }));
                    results.push(Ok(topic.id));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        ControllerResult::new(records, results)
    }

    /// AlterPartition from a partition leader: checks epochs and the new ISR as Kafka does
    /// (NOT_CONTROLLER for epochs ahead of ours, FENCED_LEADER_EPOCH, INVALID_REQUEST for a
    /// requester that is not the leader or an ISR without it, INVALID_UPDATE_VERSION for a stale
    /// partition epoch, INELIGIBLE_REPLICA for a fenced / shutting-down / re-registered broker),
    /// then writes the ISR change. A whole request from a broker at a stale epoch is refused.
    pub fn alter_partition(
        &self,
        image: &MetadataImage,
        request: &AlterPartitionRequest,
    ) -> Result<ControllerResult<Vec<AlterPartitionTopicResult>>, ControllerError> {
        check_broker_epoch(image, request.broker_id, request.broker_epoch)?;
        let mut records = Vec::new();
        let mut out = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            let Some(topic_image) = image.topic_by_id(topic.topic_id) else {
                for p in &topic.partitions {
                    partitions.push((p.partition_index, Err(ControllerError::UnknownTopicId(format!("Unable to locate topic ID {}", topic.topic_id)))));
                }
                out.push(AlterPartitionTopicResult { topic_id: topic.topic_id, partitions });
                continue;
            };
            let acceptable = |r: i32| image.is_broker_active(r);
            let election = if unclean_election_enabled(image, &self.config, &topic_image.name) { Election::Unclean } else { Election::Online };
            for data in &topic.partitions {
                let partition = topic_image.partitions.get(&data.partition_index);
                let result = validate_alter_partition(image, request.broker_id, partition, data).and_then(|()| {
                    let Some(partition) = partition else { return Err(ControllerError::UnknownTopicOrPartition(String::new())) };
                    let isr: Vec<i32> = data.new_isr.iter().map(|b| b.broker_id).collect();
                    let change = PartitionChangeBuilder::new(partition, topic.topic_id, data.partition_index, &acceptable)
                        .election(election)
                        .target_isr(isr)
                        .target_leader_recovery_state(data.leader_recovery_state)
                        .build();
                    let after = match change {
                        Some(change) => {
                            let after = partition.merge(&change);
                            let leader_changed = change.leader.is_some_and(|l| l != request.broker_id);
                            records.push(MetadataRecord::PartitionChange(change));
                            if leader_changed {
                                return Err(ControllerError::NewLeaderElected);
                            }
                            after
                        }
                        None => partition.clone(),
                    };
                    Ok(PartitionState {
                        leader_id: after.leader,
                        leader_epoch: after.leader_epoch,
                        isr: after.isr,
                        leader_recovery_state: after.leader_recovery_state,
                        partition_epoch: after.partition_epoch,
                    })
                });
                partitions.push((data.partition_index, result));
            }
            out.push(AlterPartitionTopicResult { topic_id: topic.topic_id, partitions });
        }
        Ok(ControllerResult::new(records, out))
    }

    /// ElectLeaders (Kafka's `electLeader`), one result per (topic, partition) in request order.
    /// PREFERRED: the first replica becomes leader when it is an active ISR member
    /// (ELECTION_NOT_NEEDED when it leads already, PREFERRED_LEADER_NOT_AVAILABLE when it cannot).
    /// UNCLEAN: only for a partition without a leader, any active replica may be chosen
    /// (ELECTION_NOT_NEEDED when it has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE when none can lead).
    pub fn elect_leaders(
        &self,
        image: &MetadataImage,
        election_type: ElectionType,
        partitions: &[(String, i32)],
    ) -> ControllerResult<Vec<Result<(), ControllerError>>> {
        let acceptable = |r: i32| image.is_broker_active(r);
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(partitions.len());
        for (topic, pid) in partitions {
            let Some(t) = image.topic_by_name(topic) else {
                results.push(Err(ControllerError::UnknownTopicOrPartition(format!("No such topic as {topic}"))));
                continue;
            };
            let Some(p) = t.partitions.get(pid) else {
                results.push(Err(ControllerError::UnknownTopicOrPartition(format!("No such partition as {topic}-{pid}"))));
                continue;
            };
            let not_needed = match election_type {
                ElectionType::Preferred => p.replicas.first() == Some(&p.leader),
                ElectionType::Unclean => p.leader != NO_LEADER,
            };
            if not_needed {
                results.push(Err(ControllerError::ElectionNotNeeded));
                continue;
            }
            let election = match election_type {
                ElectionType::Preferred => Election::Preferred,
                ElectionType::Unclean => Election::Unclean,
            };
            match PartitionChangeBuilder::new(p, t.id, *pid, &acceptable).election(election).build() {
                Some(change) => {
                    records.push(MetadataRecord::PartitionChange(change));
                    results.push(Ok(()));
                }
                None => results.push(Err(match election_type {
                    ElectionType::Preferred => ControllerError::PreferredLeaderNotAvailable,
                    ElectionType::Unclean => ControllerError::EligibleLeadersNotAvailable,
                })),
            }
        }
        ControllerResult::new(records, results)
    }
}

impl Controller {
    /// AlterPartitionReassignments. A new target puts the partition's replicas at target plus
    /// the replicas being removed, records adding/removing, and completes at once when the ISR
    /// already holds every target replica; later ISR expansions (AlterPartition) complete it, and
    /// the leader moves if it was removed. `replicas: None` reverts an ongoing reassignment
    /// (NO_REASSIGNMENT_IN_PROGRESS if there is none; INVALID_REPLICA_ASSIGNMENT when reverting
    /// would need an unclean election the topic does not allow).
    pub fn alter_partition_reassignments(
        &self,
        image: &MetadataImage,
        partitions: &[ReassignablePartition],
    ) -> ControllerResult<Vec<Result<(), ControllerError>>> {
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(partitions.len());
        let mut working = image.clone();
        for target in partitions {
            match reassign_one(&working, &self.config, target) {
                Ok(Some(change)) => {
                    let record = MetadataRecord::PartitionChange(change);
                    // Decided on an image holding the earlier changes of this request, so two
                    // entries for one partition stay consistent.
                    if let Err(e) = working.apply(&record) {
                        results.push(Err(ControllerError::UnknownServerError(e.to_string())));
                        continue;
                    }
                    records.push(record);
                    results.push(Ok(()));
                }
                Ok(None) => results.push(Ok(())),
                Err(e) => results.push(Err(e)),
            }
        }
        ControllerResult::new(records, results)
    }
}

/// ListPartitionReassignments: every partition with replicas being added or removed.
pub fn list_partition_reassignments(image: &MetadataImage) -> Vec<OngoingReassignment> {
    let mut out = Vec::new();
    for t in image.topics() {
        for (&pid, p) in &t.partitions {
            if !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty() {
                out.push(OngoingReassignment {
                    topic: t.name.clone(),
                    partition_index: pid,
                    replicas: p.replicas.clone(),
                    adding_replicas: p.adding_replicas.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition_index).cmp(&(&b.topic, b.partition_index)));
    out
}

fn reassign_one(image: &MetadataImage, config: &ControllerConfig, target: &ReassignablePartition) -> Result<Option<PartitionChangeRecord>, ControllerError> {
    let topic = image
        .topic_by_name(&target.topic)
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("Unable to find a topic named {}.", target.topic)))?;
    let part = topic
        .partitions
        .get(&target.partition_index)
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("Unable to find partition {}:{}.", target.topic, target.partition_index)))?;
    let acceptable = |r: i32| image.is_broker_active(r);
    let unclean = unclean_election_enabled(image, config, &topic.name);
    let election = if unclean { Election::Unclean } else { Election::Online };
    let builder = PartitionChangeBuilder::new(part, topic.id, target.partition_index, &acceptable).election(election);
    match &target.replicas {
        Some(replicas) => {
            validate_manual_assignment(replicas, |id| image.broker(id).is_some(), None)?;
            let removing: Vec<i32> = part.replicas.iter().copied().filter(|r| !replicas.contains(r)).collect::<BTreeSet<_>>().into_iter().collect();
            let adding: Vec<i32> = replicas.iter().copied().filter(|r| !part.replicas.contains(r)).collect::<BTreeSet<_>>().into_iter().collect();
            let mut all = replicas.clone();
            all.extend(&removing);
            Ok(builder.target_replicas(all).target_removing(removing).target_adding(adding).build())
        }
        None => {
            if part.adding_replicas.is_empty() && part.removing_replicas.is_empty() {
                return Err(ControllerError::NoReassignmentInProgress);
            }
            let original: Vec<i32> = part.replicas.iter().copied().filter(|r| !part.adding_replicas.contains(r)).collect();
            let mut isr: Vec<i32> = part.isr.iter().copied().filter(|r| !part.adding_replicas.contains(r)).collect();
            if isr.is_empty() {
                let Some(&first) = original.first() else {
                    return Err(ControllerError::InvalidReplicaAssignment("Invalid replica assignment: addingReplicas contains all replicas.".into()));
                };
                if !unclean {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "Unable to revert partition assignment for {}:{} because it would require an unclean leader election.",
                        target.topic, target.partition_index
                    )));
                }
                isr.push(first);
            }
            Ok(builder.target_isr(isr).target_replicas(original).target_removing(vec![]).target_adding(vec![]).build())
        }
    }
}

fn new_partition(image: &MetadataImage, topic_id: Uuid, partition_id: i32, replicas: &[i32], replication_factor: i16) -> Result<PartitionRecord, ControllerError> {
    let isr: Vec<i32> = replicas.iter().copied().filter(|&r| image.is_broker_active(r)).collect();
    let Some(&leader) = isr.first() else {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): All brokers are currently fenced or in controlled shutdown."
        )));
    };
    Ok(PartitionRecord {
        partition_id,
        topic_id,
        replicas: replicas.to_vec(),
        isr,
        removing_replicas: vec![],
        adding_replicas: vec![],
        leader,
        leader_recovery_state: LeaderRecoveryState::Recovered,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// Kafka's `validateAlterPartitionData`, in Kafka's order.
fn validate_alter_partition(
    image: &MetadataImage,
    broker_id: i32,
    partition: Option<&PartitionRegistration>,
    data: &AlterPartitionData,
) -> Result<(), ControllerError> {
    let Some(p) = partition else {
        return Err(ControllerError::UnknownTopicOrPartition(format!("No such partition {}", data.partition_index)));
    };
    if data.leader_epoch > p.leader_epoch || data.partition_epoch > p.partition_epoch {
        return Err(ControllerError::NotController);
    }
    if data.leader_epoch < p.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch);
    }
    if broker_id != p.leader {
        return Err(ControllerError::InvalidRequest(format!("Broker {broker_id} is not the leader {} of the partition", p.leader)));
    }
    if data.partition_epoch < p.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion);
    }
    let isr: Vec<i32> = data.new_isr.iter().map(|b| b.broker_id).collect();
    let distinct: BTreeSet<i32> = isr.iter().copied().collect();
    if isr.is_empty() || distinct.len() != isr.len() || !isr.iter().all(|r| p.replicas.contains(r)) {
        return Err(ControllerError::InvalidRequest(format!("Invalid ISR {isr:?} for replicas {:?}", p.replicas)));
    }
    if !isr.contains(&p.leader) {
        return Err(ControllerError::InvalidRequest(format!("The ISR {isr:?} does not include the leader {}", p.leader)));
    }
    if data.leader_recovery_state == LeaderRecoveryState::Recovering && isr.len() > 1 {
        return Err(ControllerError::InvalidRequest("An ISR of more than one replica while the leader is recovering".into()));
    }
    if p.leader_recovery_state == LeaderRecoveryState::Recovered && data.leader_recovery_state == LeaderRecoveryState::Recovering {
        return Err(ControllerError::InvalidRequest("The leader recovery state cannot change from RECOVERED to RECOVERING".into()));
    }
    let ineligible: Vec<i32> = data
        .new_isr
        .iter()
        .filter(|b| match image.broker(b.broker_id) {
            None => true,
            Some(reg) => reg.fenced || reg.in_controlled_shutdown || (b.broker_epoch != -1 && b.broker_epoch != reg.epoch),
        })
        .map(|b| b.broker_id)
        .collect();
    if !ineligible.is_empty() {
        return Err(ControllerError::IneligibleReplica(format!("Ineligible replicas {ineligible:?} in the new ISR {isr:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{cluster, commit};
    use crate::controller::{BrokerHeartbeatRequest, BrokerRegistrationRequest};

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(0xabc0 + n)
        }
    }

    fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
        CreatableTopic { name: name.into(), num_partitions: partitions, replication_factor: rf, assignments: vec![], configs: vec![] }
    }

    fn create(c: &Controller, image: &mut MetadataImage, t: CreatableTopic) -> Uuid {
        let id = Uuid::new_v4();
        let r = c.create_topics(image, &[t], move || id, 0);
        commit(image, &r);
        r.response[0].as_ref().unwrap().topic_id
    }

    #[test]
    fn create_topics_places_replicas_with_leader_epoch_zero_and_full_isr() {
        let c = Controller::default();
        let mut image = cluster(3, &[]);
        let mut t = topic("orders", 6, 3);
        t.configs = vec![("retention.ms".into(), "60000".into())];
        let r = c.create_topics(&image, &[t], ids(), 1);
        let created = r.response[0].clone().unwrap();
        assert_eq!((created.num_partitions, created.replication_factor), (6, 3));
        commit(&mut image, &r);
        let topic = image.topic_by_name("orders").unwrap();
        assert_eq!(topic.partitions.len(), 6);
        for p in topic.partitions.values() {
            assert_eq!(p.replicas.len(), 3);
            assert_eq!(p.isr, p.replicas);
            assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (p.replicas[0], 0, 0));
        }
        assert_eq!(image.config(&ConfigResource::topic("orders"), "retention.ms"), Some("60000"));
    }

    #[test]
    fn create_topics_defaults_and_refusals_carry_kafkas_errors() {
        let c = Controller::new(ControllerConfig { num_partitions: 3, default_replication_factor: 2, ..ControllerConfig::default() });
        let mut image = cluster(2, &[]);
        create(&c, &mut image, topic("a.b", -1, -1));
        let p = &image.topic_by_name("a.b").unwrap().partitions;
        assert_eq!((p.len(), p[&0].replicas.len()), (3, 2));
        let r = c.create_topics(
            &image,
            &[topic("a.b", 1, 1), topic("a_b", 1, 1), topic("bad/name", 1, 1), topic("x", 0, 1), topic("y", 1, 3), topic("z", 1, 0), topic("d", 1, 1), topic("d", 1, 1)],
            ids(),
            0,
        );
        let codes: Vec<i16> = r.response.iter().map(|x| x.as_ref().unwrap_err().error_code()).collect();
        assert_eq!(codes, vec![36, 17, 17, 37, 38, 38, 42, 42]);
        assert!(r.records.is_empty());
    }

    #[test]
    fn create_topics_with_explicit_assignments_validates_them() {
        let c = Controller::default();
        let mut image = cluster(3, &[]);
        let manual = |a: Vec<(i32, Vec<i32>)>| CreatableTopic { assignments: a, ..topic("m", -1, -1) };
        let r = c.create_topics(&image, &[manual(vec![(0, vec![3, 1]), (1, vec![1, 2])])], ids(), 0);
        commit(&mut image, &r);
        let p = &image.topic_by_name("m").unwrap().partitions;
        assert_eq!((p[&0].leader, p[&1].leader), (3, 1));
        let bad = [
            manual(vec![(0, vec![1, 1])]),
            manual(vec![(0, vec![9])]),
            manual(vec![(0, vec![1]), (1, vec![1, 2])]),
            manual(vec![(1, vec![1])]),
            CreatableTopic { assignments: vec![(0, vec![1])], ..topic("n", 1, -1) },
        ];
        for (i, t) in bad.iter().enumerate() {
            let t = CreatableTopic { name: format!("n{i}"), ..t.clone() };
            let r = c.create_topics(&image, &[t], ids(), 0);
            let code = r.response[0].as_ref().unwrap_err().error_code();
            assert_eq!(code, if i == 4 { 42 } else { 39 }, "case {i}");
        }
    }

    #[test]
    fn a_fenced_replica_is_left_out_of_the_new_isr_and_never_leads() {
        let c = Controller::default();
        let mut image = cluster(3, &[]);
        image.apply(&MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: 1, broker_epoch: 101, fenced: Some(true), in_controlled_shutdown: None,
        })).unwrap();
        let r = c.create_topics(&image, &[CreatableTopic { assignments: vec![(0, vec![1, 2])], ..topic("f", -1, -1) }], ids(), 0);
        commit(&mut image, &r);
        let p = &image.topic_by_name("f").unwrap().partitions[&0];
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        let r = c.create_topics(&image, &[CreatableTopic { assignments: vec![(0, vec![1])], ..topic("g", -1, -1) }], ids(), 0);
        assert_eq!(r.response[0].as_ref().unwrap_err().error_code(), 39);
    }

    #[test]
    fn taken_or_nil_topic_ids_are_drawn_again() {
        let c = Controller::default();
        let mut image = cluster(1, &[]);
        let a = create(&c, &mut image, topic("a", 1, 1));
        let mut draws = vec![Uuid::from_u128(2), Uuid::from_u128(2), Uuid::nil(), a].into_iter();
        let r = c.create_topics(&image, &[topic("b", 1, 1), topic("c", 1, 1)], move || draws.next().unwrap_or(Uuid::nil()), 0);
        assert_eq!(r.response[0].as_ref().unwrap().topic_id, Uuid::from_u128(2));
        assert_eq!(r.response[1].as_ref().unwrap_err().error_code(), -1, "only taken or nil ids left");
        commit(&mut image, &r);
    }

    #[test]
    fn create_partitions_grows_topics_and_refuses_shrinking() {
        let c = Controller::default();
        let mut image = cluster(3, &[]);
        create(&c, &mut image, topic("t", 2, 2));
        let r = c.create_partitions(&image, &[CreatePartitionsTopic { name: "t".into(), count: 5, assignments: None }], 0);
        assert_eq!(r.response, vec![Ok(())]);
        commit(&mut image, &r);
        let parts = &image.topic_by_name("t").unwrap().partitions;
        assert_eq!(parts.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(parts.values().all(|p| p.replicas.len() == 2));
        let cases = [
            (CreatePartitionsTopic { name: "t".into(), count: 4, assignments: None }, 37),
            (CreatePartitionsTopic { name: "t".into(), count: 5, assignments: None }, 37),
            (CreatePartitionsTopic { name: "nope".into(), count: 9, assignments: None }, 3),
            (CreatePartitionsTopic { name: "t".into(), count: 7, assignments: Some(vec![vec![1, 2]]) }, 39),
            (CreatePartitionsTopic { name: "t".into(), count: 6, assignments: Some(vec![vec![1, 2, 3]]) }, 39),
        ];
        for (t, code) in cases {
            let r = c.create_partitions(&image, std::slice::from_ref(&t), 0);
            assert_eq!(r.response[0].as_ref().unwrap_err().error_code(), code, "{t:?}");
        }
        let r = c.create_partitions(&image, &[CreatePartitionsTopic { name: "t".into(), count: 6, assignments: Some(vec![vec![3, 1]]) }], 0);
        commit(&mut image, &r);
        assert_eq!(image.partition(image.topic_by_name("t").unwrap().id, 5).unwrap().leader, 3);
    }

    #[test]
    fn delete_topics_by_name_and_id() {
        let c = Controller::default();
        let mut image = cluster(1, &[]);
        let a = create(&c, &mut image, topic("a", 1, 1));
        create(&c, &mut image, topic("b", 1, 1));
        let r = c.delete_topics(&image, &[TopicRef::Id(a), TopicRef::Name("b".into()), TopicRef::Name("zz".into()), TopicRef::Id(Uuid::from_u128(5)), TopicRef::Name("a".into())]);
        let codes: Vec<i16> = r.response.iter().map(|x| x.as_ref().map_or_else(|e| e.error_code(), |_| 0)).collect();
        assert_eq!(codes, vec![0, 0, 3, 100, 42]);
        commit(&mut image, &r);
        assert_eq!(image.topics().count(), 0);
    }

    fn isr(ids: &[i32]) -> Vec<BrokerState> {
        ids.iter().map(|&broker_id| BrokerState { broker_id, broker_epoch: -1 }).collect()
    }

    fn alter(topic_id: Uuid, leader: i32, leader_epoch: i32, partition_epoch: i32, new_isr: &[i32]) -> AlterPartitionRequest {
        AlterPartitionRequest {
            broker_id: leader,
            broker_epoch: 100 + leader as i64,
            topics: vec![AlterPartitionTopic {
                topic_id,
                partitions: vec![AlterPartitionData {
                    partition_index: 0,
                    leader_epoch,
                    new_isr: isr(new_isr),
                    leader_recovery_state: LeaderRecoveryState::Recovered,
                    partition_epoch,
                }],
            }],
        }
    }

    fn one(r: &ControllerResult<Vec<AlterPartitionTopicResult>>) -> Result<PartitionState, ControllerError> {
        r.response[0].partitions[0].1.clone()
    }

    #[test]
    fn alter_partition_shrinks_and_expands_the_isr_bumping_only_the_partition_epoch() {
        let c = Controller::default();
        let mut image = cluster(3, &[]);
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2, 3])], ..topic("t", -1, -1) });
        let r = c.alter_partition(&image, &alter(t, 1, 0, 0, &[1, 2])).unwrap();
        assert_eq!(one(&r), Ok(PartitionState { leader_id: 1, leader_epoch: 0, isr: vec![1, 2], leader_recovery_state: LeaderRecoveryState::Recovered, partition_epoch: 1 }));
        commit(&mut image, &r);
        // The same request again is now stale.
        let r2 = c.alter_partition(&image, &alter(t, 1, 0, 0, &[1, 2])).unwrap();
        assert_eq!(one(&r2), Err(ControllerError::InvalidUpdateVersion));
        let r = c.alter_partition(&image, &alter(t, 1, 0, 1, &[1, 2, 3])).unwrap();
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.isr.clone(), p.leader_epoch, p.partition_epoch), (vec![1, 2, 3], 0, 2));
        // Unchanged ISR: no record, the current state back.
        let r = c.alter_partition(&image, &alter(t, 1, 0, 2, &[1, 2, 3])).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(one(&r).unwrap().partition_epoch, 2);
    }

    #[test]
    fn alter_partition_refusals_follow_kafkas_order_and_codes() {
        let c = Controller::default();
        let mut image = cluster(4, &[]);
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2, 3])], ..topic("t", -1, -1) });
        // Move the partition to leader epoch 1, partition epoch 1.
        let mut change = PartitionChangeRecord::new(t, 0);
        change.leader = Some(1);
        image.apply(&MetadataRecord::PartitionChange(change)).unwrap();
        let code = |image: &MetadataImage, req: AlterPartitionRequest| one(&c.alter_partition(image, &req).unwrap()).unwrap_err();
        assert_eq!(code(&image, alter(t, 1, 2, 1, &[1])), ControllerError::NotController);
        assert_eq!(code(&image, alter(t, 1, 0, 1, &[1])), ControllerError::FencedLeaderEpoch);
        assert_eq!(code(&image, alter(t, 2, 1, 1, &[2])).error_code(), 42, "not the leader: INVALID_REQUEST as Kafka 4.0");
        assert_eq!(code(&image, alter(t, 1, 1, 0, &[1])), ControllerError::InvalidUpdateVersion);
        assert_eq!(code(&image, alter(t, 1, 1, 1, &[1, 4])).error_code(), 42, "not a replica");
        assert_eq!(code(&image, alter(t, 1, 1, 1, &[2, 3])).error_code(), 42, "without the leader");
        let mut unknown = alter(t, 1, 1, 1, &[1]);
        unknown.topics[0].partitions[0].partition_index = 7;
        assert_eq!(code(&image, unknown).error_code(), 3);
        let mut unknown_topic = alter(Uuid::from_u128(1), 1, 1, 1, &[1]);
        unknown_topic.topics[0].partitions[0].partition_index = 0;
        assert_eq!(code(&image, unknown_topic).error_code(), 100);
        // A fenced broker or one at another epoch may not join the ISR.
        image.apply(&MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
            broker_id: 3, broker_epoch: 103, fenced: Some(true), in_controlled_shutdown: None,
        })).unwrap();
        assert_eq!(code(&image, alter(t, 1, 1, 1, &[1, 3])).error_code(), 107);
        let mut stale = alter(t, 1, 1, 1, &[1, 2]);
        stale.topics[0].partitions[0].new_isr[1].broker_epoch = 5;
        assert_eq!(code(&image, stale).error_code(), 107);
        // The whole request from a stale broker epoch.
        let mut req = alter(t, 1, 1, 1, &[1]);
        req.broker_epoch = 1;
        assert_eq!(c.alter_partition(&image, &req).unwrap_err().error_code(), 77);
    }

    fn reassign(topic: &str, replicas: Option<&[i32]>) -> ReassignablePartition {
        ReassignablePartition { topic: topic.into(), partition_index: 0, replicas: replicas.map(<[i32]>::to_vec) }
    }

    #[test]
    fn a_reassignment_adds_replicas_then_completes_when_they_join_the_isr() {
        let c = Controller::default();
        let mut image = cluster(4, &[]);
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2, 3])], ..topic("t", -1, -1) });
        // Move replica 1 (the leader) to 4.
        let r = c.alter_partition_reassignments(&image, &[reassign("t", Some(&[4, 2, 3]))]);
        assert_eq!(r.response, vec![Ok(())]);
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap().clone();
        assert_eq!((p.replicas.clone(), p.adding_replicas.clone(), p.removing_replicas.clone()), (vec![4, 2, 3, 1], vec![4], vec![1]));
        assert_eq!((p.leader, p.leader_epoch), (1, 0), "adding a replica does not bump the leader epoch");
        let listed = list_partition_reassignments(&image);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].adding_replicas, vec![4]);
        // The leader reports 4 in sync: the reassignment completes, 1 leaves, leadership moves.
        let r = c.alter_partition(&image, &alter(t, 1, 0, p.partition_epoch, &[1, 2, 3, 4])).unwrap();
        assert_eq!(one(&r), Err(ControllerError::NewLeaderElected));
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch), (vec![4, 2, 3], vec![2, 3, 4], 4, 1));
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        assert!(list_partition_reassignments(&image).is_empty());
    }

    #[test]
    fn a_reordering_or_removal_within_the_isr_completes_at_once() {
        let c = Controller::default();
        let mut image = cluster(3, &[]);
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2, 3])], ..topic("t", -1, -1) });
        let r = c.alter_partition_reassignments(&image, &[reassign("t", Some(&[2, 3]))]);
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch), (vec![2, 3], vec![2, 3], 2, 1));
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        // The same assignment again changes nothing.
        let r = c.alter_partition_reassignments(&image, &[reassign("t", Some(&[2, 3]))]);
        assert!(r.records.is_empty());
    }

    #[test]
    fn cancelling_reverts_to_the_original_replicas() {
        let c = Controller::default();
        let mut image = cluster(4, &[]);
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2])], ..topic("t", -1, -1) });
        assert_eq!(c.alter_partition_reassignments(&image, &[reassign("t", None)]).response[0], Err(ControllerError::NoReassignmentInProgress));
        let r = c.alter_partition_reassignments(&image, &[reassign("t", Some(&[3, 4]))]);
        commit(&mut image, &r);
        assert_eq!(image.partition(t, 0).unwrap().replicas, vec![3, 4, 1, 2]);
        let r = c.alter_partition_reassignments(&image, &[reassign("t", None)]);
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![1, 2], vec![1, 2], 1));
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        let bad = c.alter_partition_reassignments(&image, &[reassign("t", Some(&[1, 1])), reassign("t", Some(&[9])), reassign("zz", Some(&[1]))]);
        let codes: Vec<i16> = bad.response.iter().map(|x| x.as_ref().unwrap_err().error_code()).collect();
        assert_eq!(codes, vec![39, 39, 3]);
    }

    /// The same requests, in the same order, as were sent (AlterPartition v3 on the controller
    /// listener) to the active controller of a 3-broker Kafka 4.0 reference cluster whose brokers
    /// had epochs 6, 7 and 17, for a partition with replicas [1, 2, 3] led by 1. Kafka answered
    /// the codes asserted here.
    #[test]
    fn alter_partition_answers_what_the_kafka_reference_controller_answered() {
        let c = Controller::default();
        let mut image = MetadataImage::new();
        for (id, epoch) in [(1, 6), (2, 7), (3, 17)] {
            let mut rec = crate::metadata::image::tests::register(id, epoch, None, false);
            if let MetadataRecord::RegisterBroker(r) = &mut rec {
                r.fenced = false;
            }
            image.apply(&rec).unwrap();
        }
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2, 3])], ..topic("ap", -1, -1) });
        let req = |broker_id: i32, broker_epoch: i64, topic_id: Uuid, partition_index: i32, leader_epoch: i32, isr: &[(i32, i64)], partition_epoch: i32| AlterPartitionRequest {
            broker_id,
            broker_epoch,
            topics: vec![AlterPartitionTopic {
                topic_id,
                partitions: vec![AlterPartitionData {
                    partition_index,
                    leader_epoch,
                    new_isr: isr.iter().map(|&(broker_id, broker_epoch)| BrokerState { broker_id, broker_epoch }).collect(),
                    leader_recovery_state: LeaderRecoveryState::Recovered,
                    partition_epoch,
                }],
            }],
        };
        let answer = |image: &MetadataImage, r: AlterPartitionRequest| -> Result<i16, i16> {
            match c.alter_partition(image, &r) {
                Err(e) => Err(e.error_code()),
                Ok(res) => Ok(res.response[0].partitions[0].1.as_ref().map_or_else(|e| e.error_code(), |_| 0)),
            }
        };
        let other = Uuid::from_bytes([1; 16]);
        let cases: Vec<(&str, AlterPartitionRequest, Result<i16, i16>)> = vec![
            ("non-leader broker 2 sends", req(2, 7, t, 0, 0, &[(2, 7), (3, 17)], 0), Ok(42)),
            ("leader epoch ahead", req(1, 6, t, 0, 1, &[(1, 6), (2, 7)], 0), Ok(41)),
            ("partition epoch ahead", req(1, 6, t, 0, 0, &[(1, 6), (2, 7)], 1), Ok(41)),
            ("leader epoch behind", req(1, 6, t, 0, -1, &[(1, 6), (2, 7)], 0), Ok(74)),
            ("stale broker epoch", req(1, 5, t, 0, 0, &[(1, 6), (2, 7)], 0), Err(77)),
            ("unknown topic id", req(1, 6, other, 0, 0, &[(1, 6)], 0), Ok(100)),
            ("unknown partition", req(1, 6, t, 5, 0, &[(1, 6)], 0), Ok(3)),
            ("isr without the leader", req(1, 6, t, 0, 0, &[(2, 7), (3, 17)], 0), Ok(42)),
            ("isr with a non-replica", req(1, 6, t, 0, 0, &[(1, 6), (4, 1)], 0), Ok(42)),
            ("isr member at another broker epoch", req(1, 6, t, 0, 0, &[(1, 6), (2, 99)], 0), Ok(107)),
        ];
        for (name, r, expected) in cases {
            assert_eq!(answer(&image, r), expected, "{name}");
        }
        // Kafka: NONE, leader 1, leader epoch 0, ISR [1, 2], partition epoch 1.
        let r = c.alter_partition(&image, &req(1, 6, t, 0, 0, &[(1, 6), (2, 7)], 0)).unwrap();
        assert_eq!(one(&r), Ok(PartitionState { leader_id: 1, leader_epoch: 0, isr: vec![1, 2], leader_recovery_state: LeaderRecoveryState::Recovered, partition_epoch: 1 }));
        commit(&mut image, &r);
        assert_eq!(answer(&image, req(1, 6, t, 0, 0, &[(1, 6), (2, 7)], 0)), Ok(95), "same request again");
        // Kafka: NONE, ISR [1, 2, 3], partition epoch 2.
        let r = c.alter_partition(&image, &req(1, 6, t, 0, 0, &[(1, 6), (2, 7), (3, 17)], 1)).unwrap();
        assert_eq!(one(&r).unwrap().partition_epoch, 2);
        commit(&mut image, &r);
        // Broker 3 killed and fenced (Kafka wrote ISR [1, 2] then the fence); it may not rejoin.
        let mut shrink = PartitionChangeRecord::new(t, 0);
        shrink.isr = Some(vec![1, 2]);
        image.apply(&MetadataRecord::PartitionChange(shrink)).unwrap();
        image.apply(&MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord { broker_id: 3, broker_epoch: 17, fenced: Some(true), in_controlled_shutdown: None })).unwrap();
        assert_eq!(answer(&image, req(1, 6, t, 0, 0, &[(1, 6), (2, 7), (3, 17)], 3)), Ok(107));
    }

    /// The kafka-leader-election.sh runs against a 3-broker Kafka 4.0 reference cluster, replayed:
    /// a partition with replicas [1, 2, 3] led by 1 (already preferred: ELECTION_NOT_NEEDED, also
    /// for UNCLEAN since it has a leader; partition 7: UNKNOWN_TOPIC_OR_PARTITION); broker 1 shut
    /// down (leader 2, ISR [2, 3]): PREFERRED_LEADER_NOT_AVAILABLE; broker 1 back in the ISR
    /// [2, 3, 1]: success, and Kafka wrote the single change {leader: 1}.
    #[test]
    fn elect_leaders_answers_what_the_kafka_reference_cluster_answered() {
        let mut c = Controller::default();
        let mut image = cluster(3, &[]);
        let t = create(&c, &mut image, CreatableTopic { assignments: vec![(0, vec![1, 2, 3]), (1, vec![2, 3, 1])], ..topic("el", -1, -1) });
        let p0 = vec![("el".to_string(), 0)];
        let code = |r: &ControllerResult<Vec<Result<(), ControllerError>>>| r.response[0].as_ref().map_or_else(|e| e.error_code(), |_| 0);
        assert_eq!(code(&c.elect_leaders(&image, ElectionType::Preferred, &p0)), 84);
        assert_eq!(code(&c.elect_leaders(&image, ElectionType::Unclean, &p0)), 84);
        assert_eq!(code(&c.elect_leaders(&image, ElectionType::Preferred, &[("el".to_string(), 7)])), 3);
        // Broker 1 shuts down (controlled): leader 2, ISR [2, 3].
        let shut = BrokerHeartbeatRequest { broker_id: 1, broker_epoch: 101, current_metadata_offset: 1000, want_fence: false, want_shut_down: true };
        for now_ms in [0, 10] {
            let r = c.broker_heartbeat(&image, &shut, now_ms).unwrap();
            commit(&mut image, &r);
        }
        assert_eq!((image.partition(t, 0).unwrap().leader, image.partition(t, 0).unwrap().isr.clone()), (2, vec![2, 3]));
        assert_eq!(code(&c.elect_leaders(&image, ElectionType::Preferred, &p0)), 80);
        // Broker 1 comes back as a new incarnation, is unfenced and rejoins the ISR.
        let req = BrokerRegistrationRequest { broker_id: 1, incarnation_id: Uuid::from_u128(77), listeners: vec![], features: vec![], rack: None, log_dirs: vec![] };
        let r = c.register_broker(&image, &req, 500, 20).unwrap();
        commit(&mut image, &r);
        let hb = BrokerHeartbeatRequest { broker_id: 1, broker_epoch: 500, current_metadata_offset: 500, want_fence: false, want_shut_down: false };
        let r = c.broker_heartbeat(&image, &hb, 30).unwrap();
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap().clone();
        let r = c.alter_partition(&image, &AlterPartitionRequest {
            broker_id: 2,
            broker_epoch: 102,
            topics: vec![AlterPartitionTopic { topic_id: t, partitions: vec![AlterPartitionData {
                partition_index: 0,
                leader_epoch: p.leader_epoch,
                new_isr: isr(&[2, 3, 1]),
                leader_recovery_state: LeaderRecoveryState::Recovered,
                partition_epoch: p.partition_epoch,
            }] }],
        }).unwrap();
        commit(&mut image, &r);
        let before = image.partition(t, 0).unwrap().clone();
        let r = c.elect_leaders(&image, ElectionType::Preferred, &p0);
        assert_eq!(code(&r), 0);
        assert_eq!(r.records, vec![MetadataRecord::PartitionChange(PartitionChangeRecord { leader: Some(1), ..PartitionChangeRecord::new(t, 0) })]);
        commit(&mut image, &r);
        let after = image.partition(t, 0).unwrap();
        assert_eq!((after.leader, after.leader_epoch, after.partition_epoch, after.isr.clone()), (1, before.leader_epoch + 1, before.partition_epoch + 1, vec![2, 3, 1]));
        c.config.unclean_leader_election_enable = true;
        assert_eq!(code(&c.elect_leaders(&image, ElectionType::Unclean, &p0)), 84);
    }
}
