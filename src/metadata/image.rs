//! `MetadataImage`: the state the metadata log's records build (brokers, topics and partitions,
//! configs, features, producer-id blocks, SCRAM credentials, client quotas, ACL bindings) and the
//! Raft log offset it reflects.
//! It applies records and writes/reads snapshots; it makes no decisions (that is `controller/`).
//! A record that does not fit the image (an unknown topic, a stale broker epoch) is refused with a
//! typed error and leaves the image unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::records::*;

/// A registered broker as the image knows it (`RegisterBrokerRecord` plus fencing changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub incarnation_id: Uuid,
    pub epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub supported_features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    /// The `directory.id`s of the log dirs it registered with (empty when it named none).
    pub directories: Vec<Uuid>,
}

impl BrokerRegistration {
    /// Registered, unfenced and not shutting down: may lead and join ISRs (Kafka's `isActive`).
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One partition's replica assignment, ISR, leader and epochs (Kafka's `PartitionRegistration`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    pub leader_recovery_state: LeaderRecoveryState,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas whose broker registered without the log dir that held them (Kafka's
    /// `DirectoryId.LOST`): not acceptable leaders until they rejoin the ISR.
    pub lost_replicas: Vec<i32>,
}

impl PartitionRegistration {
    /// The registration after `change`: a leader in the change bumps the leader epoch, and every
    /// change bumps the partition epoch (Kafka's `PartitionRegistration.merge`).
    pub fn merge(&self, change: &PartitionChangeRecord) -> PartitionRegistration {
        let mut next = self.clone();
        if let Some(isr) = &change.isr {
            // A replica the ISR takes (back) in has caught up with a leader: its data is whole again.
            next.lost_replicas.retain(|r| !isr.contains(r) || self.isr.contains(r));
            next.isr = isr.clone();
        }
        if let Some(replicas) = &change.replicas {
            next.lost_replicas.retain(|r| replicas.contains(r));
            next.replicas = replicas.clone();
        }
        if let Some(removing) = &change.removing_replicas {
            next.removing_replicas = removing.clone();
        }
        if let Some(adding) = &change.adding_replicas {
            next.adding_replicas = adding.clone();
        }
        if let Some(leader) = change.leader {
            next.leader = leader;
            next.leader_epoch = self.leader_epoch.wrapping_add(1);
        }
        if let Some(state) = change.leader_recovery_state {
            next.leader_recovery_state = state;
        }
        next.partition_epoch = self.partition_epoch.wrapping_add(1);
        next
    }

    fn to_record(&self, topic_id: Uuid, partition_id: i32) -> PartitionRecord {
        PartitionRecord {
            partition_id,
            topic_id,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            removing_replicas: self.removing_replicas.clone(),
            adding_replicas: self.adding_replicas.clone(),
            leader: self.leader,
            leader_recovery_state: self.leader_recovery_state,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        }
    }

    fn from_record(r: &PartitionRecord) -> PartitionRegistration {
        PartitionRegistration {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            removing_replicas: r.removing_replicas.clone(),
            adding_replicas: r.adding_replicas.clone(),
            leader: r.leader,
            leader_recovery_state: r.leader_recovery_state,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            lost_replicas: Vec::new(),
        }
    }
}

/// A topic and its partitions. Shared behind an `Arc` so a cloned image costs one pointer per topic
/// and a reader keeps its snapshot while the writer replaces the topics it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// A config resource: its type and name ("" is the cluster-wide default for brokers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigResource {
    pub resource_type: ConfigResourceType,
    pub name: String,
}

impl ConfigResource {
    pub fn topic(name: impl Into<String>) -> Self {
        Self { resource_type: ConfigResourceType::Topic, name: name.into() }
    }
    pub fn broker(name: impl Into<String>) -> Self {
        Self { resource_type: ConfigResourceType::Broker, name: name.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("unknown broker {0}")]
    UnknownBroker(i32),
    #[error("broker {broker_id} has epoch {current}, the record carries {record}")]
    StaleBrokerEpoch { broker_id: i32, current: i64, record: i64 },
    #[error("topic name {0:?} already exists")]
    DuplicateTopicName(String),
    #[error("topic id {0} already exists")]
    DuplicateTopicId(Uuid),
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("unknown partition {partition_id} of topic {topic_id}")]
    UnknownPartition { topic_id: Uuid, partition_id: i32 },
    #[error("broker {broker_id} is not a replica of partition {partition_id} of topic {topic_id}")]
    NotAReplica { topic_id: Uuid, partition_id: i32, broker_id: i32 },
    #[error("invalid partition id {0}")]
    InvalidPartitionId(i32),
    #[error("producer id block would move back from {current} to {record}")]
    ProducerIdsBackwards { current: i64, record: i64 },
    #[error("no SCRAM credential for {name} with mechanism {mechanism}")]
    UnknownScramCredential { name: String, mechanism: i8 },
    #[error("ACL id {0} already exists")]
    DuplicateAclId(Uuid),
    #[error("the ACL binding of id {0} exists already under another id")]
    DuplicateAcl(Uuid),
    #[error("unknown ACL id {0}")]
    UnknownAclId(Uuid),
}

/// The cluster metadata at one offset of the metadata log. `Clone` is cheap for readers: topics are
/// shared by `Arc`, the other maps are small.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetadataImage {
    /// The Raft log index of the last record applied (0 for the empty image).
    pub offset: u64,
    features: BTreeMap<String, i16>,
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics_by_id: BTreeMap<Uuid, Arc<TopicImage>>,
    topic_ids_by_name: BTreeMap<String, Uuid>,
    configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The first producer id not yet handed out (Kafka's `ProducerIdsImage.nextProducerId`).
    next_producer_id: i64,
    scram_credentials: BTreeMap<(String, i8), ScramCredential>,
    /// Client quotas: entity (type -> name, None for `<default>`) -> key -> the double's bits.
    client_quotas: BTreeMap<BTreeMap<String, Option<String>>, BTreeMap<String, u64>>,
    /// ACL bindings by id (Kafka's `AclsImage`); every binding appears once. Shared between
    /// images (copied on the first ACL change), so the image's copy per applied batch does not
    /// copy thousands of ACLs, and an unchanged set is seen by pointer ([`Self::acls_unchanged`]).
    acls: Arc<BTreeMap<Uuid, AccessControlEntryRecord>>,
    /// The same bindings with the nil id, to refuse a second id for one binding without a scan.
    acl_bindings: Arc<std::collections::BTreeSet<AccessControlEntryRecord>>,
}

impl MetadataImage {
    pub fn new() -> Self {
        Self::default()
    }

    // ---- readers ----

    pub fn features(&self) -> &BTreeMap<String, i16> {
        &self.features
    }
    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }
    pub fn brokers(&self) -> &BTreeMap<i32, BrokerRegistration> {
        &self.brokers
    }
    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }
    /// Registered, unfenced and not in controlled shutdown.
    pub fn is_broker_active(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(BrokerRegistration::is_active)
    }
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics_by_id.values()
    }
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id.get(&id)
    }
    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids_by_name.get(name).and_then(|id| self.topics_by_id.get(id))
    }
    pub fn partition(&self, topic_id: Uuid, partition_id: i32) -> Option<&PartitionRegistration> {
        self.topics_by_id.get(&topic_id)?.partitions.get(&partition_id)
    }
    pub fn configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.configs.get(resource)
    }
    pub fn config(&self, resource: &ConfigResource, name: &str) -> Option<&str> {
        self.configs.get(resource)?.get(name).map(String::as_str)
    }
    pub fn all_configs(&self) -> &BTreeMap<ConfigResource, BTreeMap<String, String>> {
        &self.configs
    }
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }
    pub fn scram_credential(&self, name: &str, mechanism: i8) -> Option<&ScramCredential> {
        self.scram_credentials.get(&(name.to_string(), mechanism))
    }
    pub fn scram_credentials(&self) -> &BTreeMap<(String, i8), ScramCredential> {
        &self.scram_credentials
    }
    /// Every client quota entity with its values.
    pub fn client_quotas(&self) -> BTreeMap<BTreeMap<String, Option<String>>, BTreeMap<String, f64>> {
        self.client_quotas.iter().map(|(e, v)| (e.clone(), v.iter().map(|(k, bits)| (k.clone(), f64::from_bits(*bits))).collect())).collect()
    }

    /// Every ACL binding, by id.
    pub fn acls(&self) -> &BTreeMap<Uuid, AccessControlEntryRecord> {
        &self.acls
    }
    /// Whether `other` holds the same ACLs: by pointer when no ACL record came between them.
    pub fn acls_unchanged(&self, other: &MetadataImage) -> bool {
        Arc::ptr_eq(&self.acls, &other.acls) || self.acls == other.acls
    }

    // ---- writers ----

    /// Applies the records of one Raft entry at log index `offset`. The records apply all or
    /// nothing; the offset moves to `offset` either way, because every node refuses the same
    /// entry the same way and the image then reflects the log through that index (the refused
    /// entry changed nothing). The caller logs the error.
    pub fn apply_batch(&mut self, offset: u64, records: &[MetadataRecord]) -> Result<(), ImageError> {
        let result = if records.len() <= 1 {
            // One record is already all or nothing: no copy needed.
            records.first().map_or(Ok(()), |record| self.apply(record))
        } else {
            let mut next = self.clone();
            let result = records.iter().try_for_each(|record| next.apply(record));
            if result.is_ok() {
                *self = next;
            }
            result
        };
        self.offset = offset;
        result
    }

    /// Applies one record. A record that does not fit the image is refused and the image is left
    /// unchanged (every check comes before any change).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                self.brokers.insert(
                    r.broker_id,
                    BrokerRegistration {
                        id: r.broker_id,
                        incarnation_id: r.incarnation_id,
                        epoch: r.broker_epoch,
                        end_points: r.end_points.clone(),
                        supported_features: r.features.clone(),
                        rack: r.rack.clone(),
                        fenced: r.fenced,
                        in_controlled_shutdown: r.in_controlled_shutdown,
                        directories: Vec::new(),
                    },
                );
            }
            MetadataRecord::BrokerDirectories(r) => {
                self.broker_at_epoch(r.broker_id, r.broker_epoch)?.directories = r.directories.clone();
            }
            MetadataRecord::UnregisterBroker(r) => {
                self.broker_at_epoch(r.broker_id, r.broker_epoch)?;
                self.brokers.remove(&r.broker_id);
            }
            MetadataRecord::FenceBroker(r) => {
                self.broker_at_epoch(r.id, r.epoch)?.fenced = true;
            }
            MetadataRecord::UnfenceBroker(r) => {
                self.broker_at_epoch(r.id, r.epoch)?.fenced = false;
            }
            MetadataRecord::BrokerRegistrationChange(r) => {
                let broker = self.broker_at_epoch(r.broker_id, r.broker_epoch)?;
                if let Some(fenced) = r.fenced {
                    broker.fenced = fenced;
                }
                if let Some(in_controlled_shutdown) = r.in_controlled_shutdown {
                    broker.in_controlled_shutdown = in_controlled_shutdown;
                }
            }
            MetadataRecord::Topic(r) => {
                if self.topic_ids_by_name.contains_key(&r.name) {
                    return Err(ImageError::DuplicateTopicName(r.name.clone()));
                }
                if self.topics_by_id.contains_key(&r.topic_id) {
                    return Err(ImageError::DuplicateTopicId(r.topic_id));
                }
                self.topic_ids_by_name.insert(r.name.clone(), r.topic_id);
                self.topics_by_id.insert(
                    r.topic_id,
                    Arc::new(TopicImage { name: r.name.clone(), id: r.topic_id, partitions: BTreeMap::new() }),
                );
            }
            MetadataRecord::Partition(r) => {
                if r.partition_id < 0 {
                    return Err(ImageError::InvalidPartitionId(r.partition_id));
                }
                let topic = self.topics_by_id.get_mut(&r.topic_id).ok_or(ImageError::UnknownTopicId(r.topic_id))?;
                Arc::make_mut(topic).partitions.insert(r.partition_id, PartitionRegistration::from_record(r));
            }
            MetadataRecord::PartitionChange(r) => {
                let topic = self.topics_by_id.get_mut(&r.topic_id).ok_or(ImageError::UnknownTopicId(r.topic_id))?;
                let current = topic
                    .partitions
                    .get(&r.partition_id)
                    .ok_or(ImageError::UnknownPartition { topic_id: r.topic_id, partition_id: r.partition_id })?;
                let merged = current.merge(r);
                Arc::make_mut(topic).partitions.insert(r.partition_id, merged);
            }
            MetadataRecord::ReplicaDirectoryLost(r) => {
                let topic = self.topics_by_id.get_mut(&r.topic_id).ok_or(ImageError::UnknownTopicId(r.topic_id))?;
                let unknown = ImageError::UnknownPartition { topic_id: r.topic_id, partition_id: r.partition_id };
                let partition = topic.partitions.get(&r.partition_id).ok_or(unknown)?;
                if !partition.replicas.contains(&r.broker_id) {
                    return Err(ImageError::NotAReplica { topic_id: r.topic_id, partition_id: r.partition_id, broker_id: r.broker_id });
                }
                if !partition.lost_replicas.contains(&r.broker_id) {
                    // A change to the registration like any other (Kafka carries it in a
                    // PartitionChangeRecord): the partition epoch moves.
                    let partition = Arc::make_mut(topic).partitions.get_mut(&r.partition_id).expect("looked up above");
                    partition.lost_replicas.push(r.broker_id);
                    partition.partition_epoch = partition.partition_epoch.wrapping_add(1);
                }
            }
            MetadataRecord::RemoveTopic(r) => {
                let topic = self.topics_by_id.remove(&r.topic_id).ok_or(ImageError::UnknownTopicId(r.topic_id))?;
                self.topic_ids_by_name.remove(&topic.name);
                // As Kafka: a removed topic's configs go with it.
                self.configs.remove(&ConfigResource::topic(topic.name.clone()));
            }
            MetadataRecord::Config(r) => {
                let resource = ConfigResource { resource_type: r.resource_type, name: r.resource_name.clone() };
                match &r.value {
                    Some(value) => {
                        self.configs.entry(resource).or_default().insert(r.name.clone(), value.clone());
                    }
                    None => {
                        if let Some(map) = self.configs.get_mut(&resource) {
                            map.remove(&r.name);
                            if map.is_empty() {
                                self.configs.remove(&resource);
                            }
                        }
                    }
                }
            }
            MetadataRecord::ProducerIds(r) => {
                if r.next_producer_id < self.next_producer_id {
                    return Err(ImageError::ProducerIdsBackwards { current: self.next_producer_id, record: r.next_producer_id });
                }
                self.next_producer_id = r.next_producer_id;
            }
            MetadataRecord::FeatureLevel(r) => {
                if r.feature_level == 0 {
                    self.features.remove(&r.name);
                } else {
                    self.features.insert(r.name.clone(), r.feature_level);
                }
            }
            MetadataRecord::UserScramCredential(r) => {
                self.scram_credentials.insert(
                    (r.name.clone(), r.mechanism),
                    ScramCredential {
                        salt: r.salt.clone(),
                        stored_key: r.stored_key.clone(),
                        server_key: r.server_key.clone(),
                        iterations: r.iterations,
                    },
                );
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                if self.scram_credentials.remove(&(r.name.clone(), r.mechanism)).is_none() {
                    return Err(ImageError::UnknownScramCredential { name: r.name.clone(), mechanism: r.mechanism });
                }
            }
            MetadataRecord::ClientQuota(r) => {
                let entity: BTreeMap<String, Option<String>> = r.entity.iter().cloned().collect();
                if r.remove {
                    if let Some(values) = self.client_quotas.get_mut(&entity) {
                        values.remove(&r.key);
                        if values.is_empty() {
                            self.client_quotas.remove(&entity);
                        }
                    }
                } else {
                    self.client_quotas.entry(entity).or_default().insert(r.key.clone(), r.value_bits);
                }
            }
            MetadataRecord::AccessControlEntry(r) => {
                if self.acls.contains_key(&r.id) {
                    return Err(ImageError::DuplicateAclId(r.id));
                }
                let binding = AccessControlEntryRecord { id: Uuid::nil(), ..r.clone() };
                if self.acl_bindings.contains(&binding) {
                    return Err(ImageError::DuplicateAcl(r.id));
                }
                Arc::make_mut(&mut self.acl_bindings).insert(binding);
                Arc::make_mut(&mut self.acls).insert(r.id, r.clone());
            }
            MetadataRecord::RemoveAccessControlEntry(r) => {
                if !self.acls.contains_key(&r.id) {
                    return Err(ImageError::UnknownAclId(r.id));
                }
                let removed = Arc::make_mut(&mut self.acls).remove(&r.id).ok_or(ImageError::UnknownAclId(r.id))?;
                Arc::make_mut(&mut self.acl_bindings).remove(&AccessControlEntryRecord { id: Uuid::nil(), ..removed });
            }
            MetadataRecord::NoOp => {}
        }
        Ok(())
    }

    fn broker_at_epoch(&mut self, id: i32, epoch: i64) -> Result<&mut BrokerRegistration, ImageError> {
        let broker = self.brokers.get_mut(&id).ok_or(ImageError::UnknownBroker(id))?;
        if broker.epoch != epoch {
            return Err(ImageError::StaleBrokerEpoch { broker_id: id, current: broker.epoch, record: epoch });
        }
        Ok(broker)
    }

    // ---- snapshots ----

    /// The records that rebuild this image from an empty one: features, brokers, topics with their
    /// partitions, configs, the producer-id block, SCRAM credentials, client quotas, ACLs.
    pub fn to_snapshot_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            out.push(MetadataRecord::FeatureLevel(FeatureLevelRecord { name: name.clone(), feature_level: *level }));
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.epoch,
                end_points: b.end_points.clone(),
                features: b.supported_features.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
                in_controlled_shutdown: b.in_controlled_shutdown,
            }));
            if !b.directories.is_empty() {
                out.push(MetadataRecord::BrokerDirectories(BrokerDirectoriesRecord { broker_id: b.id, broker_epoch: b.epoch, directories: b.directories.clone() }));
            }
        }
        for t in self.topics_by_id.values() {
            out.push(MetadataRecord::Topic(TopicRecord { name: t.name.clone(), topic_id: t.id }));
            for (id, p) in &t.partitions {
                out.push(MetadataRecord::Partition(p.to_record(t.id, *id)));
                for &broker_id in &p.lost_replicas {
                    out.push(MetadataRecord::ReplicaDirectoryLost(ReplicaDirectoryLostRecord { topic_id: t.id, partition_id: *id, broker_id }));
                }
            }
        }
        for (resource, map) in &self.configs {
            for (name, value) in map {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: resource.resource_type,
                    resource_name: resource.name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        if self.next_producer_id != 0 {
            // Which broker took the last block does not matter once it is committed.
            out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        for ((name, mechanism), c) in &self.scram_credentials {
            out.push(MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: name.clone(),
                mechanism: *mechanism,
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            }));
        }
        for (entity, values) in &self.client_quotas {
            for (key, bits) in values {
                let entity = entity.iter().map(|(t, n)| (t.clone(), n.clone())).collect();
                out.push(MetadataRecord::ClientQuota(ClientQuotaRecord { entity, key: key.clone(), value_bits: *bits, remove: false }));
            }
        }
        out.extend(self.acls.values().cloned().map(MetadataRecord::AccessControlEntry));
        out
    }

    /// Rebuilds an image from a snapshot's records, at the snapshot's last included log index.
    pub fn from_snapshot_records(offset: u64, records: &[MetadataRecord]) -> Result<Self, ImageError> {
        let mut image = MetadataImage::new();
        image.apply_batch(offset, records)?;
        Ok(image)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn register(id: i32, epoch: i64, rack: Option<&str>, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            incarnation_id: Uuid::from_u128(id as u128 + 1000),
            broker_epoch: epoch,
            end_points: vec![BrokerEndpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092, security_protocol: 0 }],
            features: vec![],
            rack: rack.map(str::to_string),
            fenced,
            in_controlled_shutdown: false,
        })
    }

    pub fn partition(topic_id: Uuid, partition_id: i32, replicas: &[i32], isr: &[i32], leader: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            partition_id,
            topic_id,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    }

    fn topic(name: &str, id: u128) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord { name: name.into(), topic_id: Uuid::from_u128(id) })
    }

    #[test]
    fn topics_are_found_by_name_and_id_and_removal_drops_their_configs() {
        let mut image = MetadataImage::new();
        let id = Uuid::from_u128(7);
        image.apply(&topic("orders", 7)).unwrap();
        image.apply(&partition(id, 0, &[1, 2], &[1, 2], 1)).unwrap();
        image
            .apply(&MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: "orders".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            }))
            .unwrap();
        assert_eq!(image.topic_by_name("orders").unwrap().id, id);
        assert_eq!(image.topic_by_id(id).unwrap().name, "orders");
        assert_eq!(image.partition(id, 0).unwrap().leader, 1);
        assert_eq!(image.config(&ConfigResource::topic("orders"), "retention.ms"), Some("1000"));
        image.apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id })).unwrap();
        assert!(image.topic_by_name("orders").is_none());
        assert!(image.configs(&ConfigResource::topic("orders")).is_none());
    }

    #[test]
    fn records_about_unknown_things_are_refused_and_change_nothing() {
        let mut image = MetadataImage::new();
        image.apply(&topic("a", 1)).unwrap();
        let before = image.clone();
        let unknown = Uuid::from_u128(99);
        assert_eq!(image.apply(&partition(unknown, 0, &[1], &[1], 1)), Err(ImageError::UnknownTopicId(unknown)));
        assert_eq!(
            image.apply(&MetadataRecord::PartitionChange(PartitionChangeRecord::new(Uuid::from_u128(1), 3))),
            Err(ImageError::UnknownPartition { topic_id: Uuid::from_u128(1), partition_id: 3 })
        );
        assert_eq!(image.apply(&topic("a", 2)), Err(ImageError::DuplicateTopicName("a".into())));
        assert_eq!(image.apply(&topic("b", 1)), Err(ImageError::DuplicateTopicId(Uuid::from_u128(1))));
        assert_eq!(image.apply(&MetadataRecord::FenceBroker(FenceBrokerRecord { id: 4, epoch: 0 })), Err(ImageError::UnknownBroker(4)));
        assert_eq!(image.apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: unknown })), Err(ImageError::UnknownTopicId(unknown)));
        assert_eq!(image, before);
    }

    #[test]
    fn broker_records_with_a_stale_epoch_are_refused() {
        let mut image = MetadataImage::new();
        image.apply(&register(1, 10, None, true)).unwrap();
        assert_eq!(
            image.apply(&MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 9 })),
            Err(ImageError::StaleBrokerEpoch { broker_id: 1, current: 10, record: 9 })
        );
        image.apply(&MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id: 1, epoch: 10 })).unwrap();
        assert!(image.is_broker_active(1));
        image
            .apply(&MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord {
                broker_id: 1,
                broker_epoch: 10,
                fenced: None,
                in_controlled_shutdown: Some(true),
            }))
            .unwrap();
        assert!(!image.is_broker_active(1));
        assert!(!image.broker(1).unwrap().fenced);
        image.apply(&MetadataRecord::UnregisterBroker(UnregisterBrokerRecord { broker_id: 1, broker_epoch: 10 })).unwrap();
        assert!(image.broker(1).is_none());
    }

    #[test]
    fn partition_change_bumps_epochs_as_kafka_merges_it() {
        let mut image = MetadataImage::new();
        let id = Uuid::from_u128(1);
        image.apply(&topic("a", 1)).unwrap();
        image.apply(&partition(id, 0, &[1, 2, 3], &[1, 2, 3], 1)).unwrap();
        // ISR only: partition epoch +1, leader epoch unchanged.
        let mut change = PartitionChangeRecord::new(id, 0);
        change.isr = Some(vec![1, 2]);
        image.apply(&MetadataRecord::PartitionChange(change)).unwrap();
        let p = image.partition(id, 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone()), (1, 0, 1, vec![1, 2]));
        // A leader (even the same one) bumps both.
        let mut change = PartitionChangeRecord::new(id, 0);
        change.leader = Some(2);
        image.apply(&MetadataRecord::PartitionChange(change)).unwrap();
        let p = image.partition(id, 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 2));
    }

    #[test]
    fn a_cloned_image_keeps_its_snapshot_while_the_original_changes() {
        let mut image = MetadataImage::new();
        let id = Uuid::from_u128(1);
        image.apply(&topic("a", 1)).unwrap();
        image.apply(&partition(id, 0, &[1], &[1], 1)).unwrap();
        let reader = image.clone();
        assert!(Arc::ptr_eq(reader.topic_by_id(id).unwrap(), image.topic_by_id(id).unwrap()));
        let mut change = PartitionChangeRecord::new(id, 0);
        change.leader = Some(-1);
        image.apply(&MetadataRecord::PartitionChange(change)).unwrap();
        assert_eq!(reader.partition(id, 0).unwrap().leader, 1);
        assert_eq!(image.partition(id, 0).unwrap().leader, -1);
    }

    #[test]
    fn apply_batch_is_all_or_nothing_and_records_the_offset() {
        let mut image = MetadataImage::new();
        let bad = [topic("a", 1), partition(Uuid::from_u128(2), 0, &[1], &[1], 1)];
        assert!(image.apply_batch(5, &bad).is_err());
        assert_eq!(image, MetadataImage { offset: 5, ..MetadataImage::new() });
        image.apply_batch(6, &bad[..1]).unwrap();
        assert_eq!(image.offset, 6);
    }

    #[test]
    fn a_refused_batch_changes_nothing_but_the_offset_still_moves() {
        let mut image = MetadataImage::new();
        image.apply_batch(3, &[]).unwrap();
        assert_eq!(image.offset, 3);
        let before = image.clone();
        assert!(image.apply_batch(4, &[MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: Uuid::from_u128(1) })]).is_err());
        assert_eq!(image.offset, 4);
        assert_eq!(MetadataImage { offset: 3, ..image.clone() }, before);
    }

    /// Timings for the report; run with `cargo test --release --lib measure_image -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_image_costs() {
        use std::time::Instant;
        let mut records = Vec::new();
        for b in 0..100 {
            records.push(register(b, b as i64, Some("r"), false));
        }
        for t in 0..10_000u128 {
            let topic_id = Uuid::from_u128(t + 1);
            records.push(MetadataRecord::Topic(TopicRecord { name: format!("topic-{t}"), topic_id }));
            for p in 0..10 {
                let r = [p % 100, (p + 1) % 100, (p + 2) % 100];
                records.push(partition(topic_id, p, &r, &r, r[0]));
            }
        }
        let t0 = Instant::now();
        let image = MetadataImage::from_snapshot_records(1, &records).unwrap();
        let build = t0.elapsed();
        let t0 = Instant::now();
        let bytes = encode_records(&image.to_snapshot_records());
        let encode = t0.elapsed();
        let t0 = Instant::now();
        let decoded = decode_records(&bytes).unwrap();
        let decode = t0.elapsed();
        assert_eq!(decoded.len(), records.len());
        let t0 = Instant::now();
        let n = 100;
        for _ in 0..n {
            std::hint::black_box(image.clone());
        }
        let clone = t0.elapsed() / n;
        let mut img = image.clone();
        let t0 = Instant::now();
        for i in 0..n as u128 {
            let mut c = PartitionChangeRecord::new(Uuid::from_u128(i + 1), 0);
            c.isr = Some(vec![0, 1]);
            img.apply_batch(2 + i as u64, &[MetadataRecord::PartitionChange(c)]).unwrap();
        }
        let one = t0.elapsed() / n;
        let t0 = Instant::now();
        for i in 0..n as u128 {
            let mut c = PartitionChangeRecord::new(Uuid::from_u128(i + 1), 1);
            c.isr = Some(vec![1, 2]);
            img.apply_batch(200 + i as u64, &[MetadataRecord::PartitionChange(c.clone()), MetadataRecord::NoOp]).unwrap();
        }
        let two = t0.elapsed() / n;
        println!(
            "10k topics x 10 partitions, 100 brokers: build from snapshot records {build:?}; snapshot {} bytes, encode {encode:?}, decode {decode:?}; clone {clone:?}; one-record batch {one:?}; two-record batch {two:?}",
            bytes.len()
        );
    }

    #[test]
    fn producer_ids_and_features_and_scram_apply() {
        let mut image = MetadataImage::new();
        image.apply(&MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id: 1, broker_epoch: 1, next_producer_id: 1000 })).unwrap();
        assert_eq!(
            image.apply(&MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id: 1, broker_epoch: 1, next_producer_id: 999 })),
            Err(ImageError::ProducerIdsBackwards { current: 1000, record: 999 })
        );
        image.apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord { name: "metadata.version".into(), feature_level: 25 })).unwrap();
        assert_eq!(image.feature_level("metadata.version"), Some(25));
        image.apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord { name: "metadata.version".into(), feature_level: 0 })).unwrap();
        assert_eq!(image.feature_level("metadata.version"), None);
        let remove = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord { name: "alice".into(), mechanism: 1 });
        assert!(image.apply(&remove).is_err());
        image
            .apply(&MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: "alice".into(),
                mechanism: 1,
                salt: vec![1],
                stored_key: vec![2],
                server_key: vec![3],
                iterations: 4096,
            }))
            .unwrap();
        assert_eq!(image.scram_credential("alice", 1).unwrap().iterations, 4096);
        image.apply(&remove).unwrap();
        assert!(image.scram_credential("alice", 1).is_none());
    }

    fn acl(id: u128, resource_name: &str, principal: &str, operation: i8) -> MetadataRecord {
        MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
            id: Uuid::from_u128(id),
            resource_type: 2,
            resource_name: resource_name.into(),
            pattern_type: 3,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission_type: 3,
        })
    }

    #[test]
    fn acl_bindings_are_added_once_and_removed_by_id() {
        let mut image = MetadataImage::new();
        image.apply(&acl(1, "t", "User:u", 3)).unwrap();
        assert_eq!(image.apply(&acl(1, "other", "User:u", 3)), Err(ImageError::DuplicateAclId(Uuid::from_u128(1))));
        assert_eq!(image.apply(&acl(2, "t", "User:u", 3)), Err(ImageError::DuplicateAcl(Uuid::from_u128(2))), "the same binding twice");
        image.apply(&acl(2, "t", "User:u", 4)).unwrap();
        assert_eq!(image.acls().len(), 2);
        let again = acl(3, "t", "User:u", 4);
        let snapshot = image.to_snapshot_records();
        assert_eq!(MetadataImage::from_snapshot_records(7, &snapshot).unwrap().acls(), image.acls());
        let remove = MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: Uuid::from_u128(1) });
        image.apply(&remove).unwrap();
        assert_eq!(image.apply(&remove), Err(ImageError::UnknownAclId(Uuid::from_u128(1))));
        assert_eq!(image.acls().keys().copied().collect::<Vec<_>>(), vec![Uuid::from_u128(2)]);
        assert_eq!(image.apply(&again), Err(ImageError::DuplicateAcl(Uuid::from_u128(3))), "still there under id 2");
        image.apply(&acl(3, "t", "User:u", 3)).unwrap();
        assert_eq!(image.acls().len(), 2, "a removed binding may come back under a new id");
    }

    /// Records that mostly fit an image: few topic ids, names and brokers so they collide.
    pub(crate) fn arb_fitting_record() -> impl Strategy<Value = MetadataRecord> {
        let tid = (0u128..4).prop_map(Uuid::from_u128);
        let ids = prop::collection::vec(0i32..4, 0..4);
        prop_oneof![
            (0i32..4, 0i64..3, prop::option::of("[ab]"), any::<bool>()).prop_map(|(id, e, rack, f)| register(id, e, rack.as_deref(), f)),
            (0i32..4, 0i64..3).prop_map(|(id, epoch)| MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })),
            (0i32..4, 0i64..3).prop_map(|(id, epoch)| MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch })),
            (0i32..4, 0i64..3).prop_map(|(broker_id, broker_epoch)| MetadataRecord::UnregisterBroker(UnregisterBrokerRecord { broker_id, broker_epoch })),
            (0i32..4, 0i64..3, any::<Option<bool>>(), any::<Option<bool>>()).prop_map(|(broker_id, broker_epoch, fenced, in_controlled_shutdown)| {
                MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord { broker_id, broker_epoch, fenced, in_controlled_shutdown })
            }),
            (prop_oneof!["[a-b]".boxed(), Just("__consumer_offsets".to_string()).boxed(), Just("__transaction_state".to_string()).boxed()], tid.clone())
                .prop_map(|(name, topic_id)| MetadataRecord::Topic(TopicRecord { name, topic_id })),
            (tid.clone(), 0i32..3, ids.clone(), ids.clone(), -1i32..4).prop_map(|(t, p, r, i, l)| partition(t, p, &r, &i, l)),
            (tid.clone(), 0i32..3, prop::option::of(ids.clone()), prop::option::of(-1i32..4), prop::option::of(ids.clone())).prop_map(
                |(topic_id, partition_id, isr, leader, replicas)| MetadataRecord::PartitionChange(PartitionChangeRecord {
                    isr,
                    leader,
                    replicas,
                    ..PartitionChangeRecord::new(topic_id, partition_id)
                })
            ),
            tid.prop_map(|topic_id| MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })),
            ("[a-d]", "[xy]", prop::option::of("[0-9]{1,2}"), any::<bool>()).prop_map(|(resource_name, name, value, topic)| MetadataRecord::Config(ConfigRecord {
                resource_type: if topic { ConfigResourceType::Topic } else { ConfigResourceType::Broker },
                resource_name,
                name,
                value
            })),
            (0i64..5000).prop_map(|next_producer_id| MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id: 0, broker_epoch: 0, next_producer_id })),
            ("[fg]", 0i16..3).prop_map(|(name, feature_level)| MetadataRecord::FeatureLevel(FeatureLevelRecord { name, feature_level })),
            ("[uv]", 1i8..3).prop_map(|(name, mechanism)| MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name,
                mechanism,
                salt: vec![1, 2],
                stored_key: vec![3],
                server_key: vec![4],
                iterations: 4096
            })),
            ("[uv]", 1i8..3).prop_map(|(name, mechanism)| MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord { name, mechanism })),
            Just(MetadataRecord::NoOp),
            ("[uv]", prop::option::of("[uv]"), "[kl]", 0u64..3, any::<bool>()).prop_map(|(t, n, key, value_bits, remove)| {
                MetadataRecord::ClientQuota(ClientQuotaRecord { entity: vec![(t, n)], key, value_bits, remove })
            }),
            (0u128..4, "[ab]", "User:[uv]", 3i8..5).prop_map(|(id, resource_name, principal, operation)| acl(id, &resource_name, &principal, operation)),
            (0u128..4).prop_map(|id| MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: Uuid::from_u128(id) })),
        ]
    }

    proptest! {
        #[test]
        fn snapshot_records_rebuild_an_equal_image(records in prop::collection::vec(arb_fitting_record(), 0..80), offset in any::<u64>()) {
            let mut image = MetadataImage::new();
            for r in &records {
                let before = image.clone();
                if image.apply(r).is_err() {
                    prop_assert_eq!(&image, &before, "a refused record changed the image");
                }
            }
            image.offset = offset;
            let snapshot = image.to_snapshot_records();
            // The snapshot survives the wire codec too.
            let decoded = decode_records(&encode_records(&snapshot)).unwrap();
            let rebuilt = MetadataImage::from_snapshot_records(offset, &decoded).unwrap();
            prop_assert_eq!(rebuilt, image);
        }
    }
}
