//! The cluster metadata log's record types (Kafka's `__cluster_metadata` records) and their byte
//! codec. Pure data and bytes: no I/O, no image logic. Decoding hostile bytes never panics and never
//! allocates more than the input can justify.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The first byte of every encoded batch of records. Bumped when a record's shape changes so an
/// old node refuses a log it cannot read instead of misreading it.
pub const METADATA_FORMAT_VERSION: u8 = 1;

/// The largest encoded batch `decode_records` accepts. A Raft entry larger than this is refused
/// before any record is decoded.
pub const METADATA_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// `PartitionRecord.leader` / `PartitionRegistration.leader` when no replica leads.
pub const NO_LEADER: i32 = -1;

/// Kafka's `LeaderRecoveryState`: RECOVERING after an unclean election until the leader's log
/// is known to be consistent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LeaderRecoveryState {
    #[default]
    Recovered,
    Recovering,
}

impl LeaderRecoveryState {
    /// Kafka's wire value (0 recovered, 1 recovering).
    pub fn value(self) -> i8 {
        match self {
            LeaderRecoveryState::Recovered => 0,
            LeaderRecoveryState::Recovering => 1,
        }
    }
}

/// Kafka's `ConfigResource.Type` for the resources whose configs live in the metadata log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResourceType {
    Topic,
    Broker,
    ClientMetrics,
    Group,
}

impl ConfigResourceType {
    /// Kafka's wire code (2 topic, 4 broker, 16 client metrics, 32 group).
    pub fn code(self) -> i8 {
        match self {
            ConfigResourceType::Topic => 2,
            ConfigResourceType::Broker => 4,
            ConfigResourceType::ClientMetrics => 16,
            ConfigResourceType::Group => 32,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            2 => Some(ConfigResourceType::Topic),
            4 => Some(ConfigResourceType::Broker),
            16 => Some(ConfigResourceType::ClientMetrics),
            32 => Some(ConfigResourceType::Group),
            _ => None,
        }
    }
}

/// One listener a broker registered (`RegisterBrokerRecord.EndPoints`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

/// A feature version range a broker supports (`RegisterBrokerRecord.Features`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    #[serde(with = "uuid_as_u128")]
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// The log directories a broker registered with, by their `directory.id` (Kafka's
/// `RegisterBrokerRecord.LogDirs`). A record of its own, written right after the broker's
/// `RegisterBroker`, so that metadata logs written before it still decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerDirectoriesRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    #[serde(with = "uuids_as_u128")]
    pub directories: Vec<Uuid>,
}

/// A replica whose data went with a log directory its broker no longer has (it registered
/// without it): Kafka's `DirectoryId.LOST` in the partition's directories. Such a replica may not
/// lead until it has rejoined the ISR, so a wiped disk is never elected over the copies that hold
/// the records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDirectoryLostRecord {
    #[serde(with = "uuid_as_u128")]
    pub topic_id: Uuid,
    pub partition_id: i32,
    pub broker_id: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceBrokerRecord {
    /// Kafka names these `Id` and `Epoch`.
    pub id: i32,
    pub epoch: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnfenceBrokerRecord {
    pub id: i32,
    pub epoch: i64,
}

/// Kafka encodes `Fenced` / `InControlledShutdown` as int8 with 0 = no change; here `None` is no
/// change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationChangeRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub fenced: Option<bool>,
    pub in_controlled_shutdown: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    #[serde(with = "uuid_as_u128")]
    pub topic_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub partition_id: i32,
    #[serde(with = "uuid_as_u128")]
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    pub leader_recovery_state: LeaderRecoveryState,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A change to one partition. Every field but the ids is optional as in Kafka (`None` = unchanged;
/// Kafka writes `Leader = -2` for "no leader change"). A `Some` leader bumps the leader epoch, and
/// every change record bumps the partition epoch, when applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    pub partition_id: i32,
    #[serde(with = "uuid_as_u128")]
    pub topic_id: Uuid,
    pub isr: Option<Vec<i32>>,
    pub leader: Option<i32>,
    pub replicas: Option<Vec<i32>>,
    pub removing_replicas: Option<Vec<i32>>,
    pub adding_replicas: Option<Vec<i32>>,
    pub leader_recovery_state: Option<LeaderRecoveryState>,
}

impl PartitionChangeRecord {
    /// A change record that changes nothing yet.
    pub fn new(topic_id: Uuid, partition_id: i32) -> Self {
        Self {
            partition_id,
            topic_id,
            isr: None,
            leader: None,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTopicRecord {
    #[serde(with = "uuid_as_u128")]
    pub topic_id: Uuid,
}

/// One config key of one resource; `value: None` deletes the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub resource_type: ConfigResourceType,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// The controller handed the block ending before `next_producer_id` to `broker_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub next_producer_id: i64,
}

/// A finalized feature level; level 0 removes the feature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScramCredentialRecord {
    pub name: String,
    /// Kafka's `ScramMechanism` type (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub mechanism: i8,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
}

/// A client quota value set or removed (Kafka's `ClientQuotaRecord`): the entity as (entity type,
/// name; None for the `<default>` entity) pairs, the quota key and its value. The value is kept
/// as the bits of the double so records compare exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuotaRecord {
    pub entity: Vec<(String, Option<String>)>,
    pub key: String,
    pub value_bits: u64,
    pub remove: bool,
}

/// One ACL binding (Kafka's `AccessControlEntryRecord`): its id, then the binding with Kafka's
/// numeric codes of the ACL enums (resource type, pattern type, operation, permission type), as
/// CreateAcls carries them. The controller writes only bindings it has checked.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccessControlEntryRecord {
    #[serde(with = "uuid_as_u128")]
    pub id: Uuid,
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

/// The ACL binding with this id is removed (Kafka's `RemoveAccessControlEntryRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveAccessControlEntryRecord {
    #[serde(with = "uuid_as_u128")]
    pub id: Uuid,
}

/// One record of the metadata log, named after Kafka's `MetadataRecordType`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    UnregisterBroker(UnregisterBrokerRecord),
    FenceBroker(FenceBrokerRecord),
    UnfenceBroker(UnfenceBrokerRecord),
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    RemoveTopic(RemoveTopicRecord),
    Config(ConfigRecord),
    ProducerIds(ProducerIdsRecord),
    FeatureLevel(FeatureLevelRecord),
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    NoOp,
    // New kinds go last: postcard numbers the variants in order, and logs already written keep
    // their numbers.
    BrokerDirectories(BrokerDirectoriesRecord),
    ReplicaDirectoryLost(ReplicaDirectoryLostRecord),
    ClientQuota(ClientQuotaRecord),
    AccessControlEntry(AccessControlEntryRecord),
    RemoveAccessControlEntry(RemoveAccessControlEntryRecord),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataCodecError {
    #[error("empty metadata batch (no format version byte)")]
    Empty,
    #[error("metadata format version {0} is not supported (this node reads {METADATA_FORMAT_VERSION})")]
    UnsupportedFormatVersion(u8),
    #[error("metadata batch of {0} bytes exceeds {METADATA_BATCH_BYTES_MAX}")]
    TooLarge(usize),
    #[error("malformed metadata batch: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the metadata records")]
    TrailingBytes(usize),
}

/// Encodes records as one Raft payload: the format version byte, then the postcard encoding.
pub fn encode_records(records: &[MetadataRecord]) -> Vec<u8> {
    let out = vec![METADATA_FORMAT_VERSION];
    // Serializing into a Vec of plain data types cannot fail: no maps with non-string keys, no
    // unsized sequences.
    match postcard::to_extend(records, out) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard cannot fail on metadata records: {e}"),
    }
}

/// Decodes one Raft payload. Hostile input yields an error: postcard checks every length against
/// the bytes left before reading, and serde caps a sequence's pre-allocation, so the memory used is
/// bounded by a small multiple of the input size.
pub fn decode_records(bytes: &[u8]) -> Result<Vec<MetadataRecord>, MetadataCodecError> {
    let (&version, body) = bytes.split_first().ok_or(MetadataCodecError::Empty)?;
    if version != METADATA_FORMAT_VERSION {
        return Err(MetadataCodecError::UnsupportedFormatVersion(version));
    }
    if bytes.len() > METADATA_BATCH_BYTES_MAX {
        return Err(MetadataCodecError::TooLarge(bytes.len()));
    }
    let (records, rest) = postcard::take_from_bytes::<Vec<MetadataRecord>>(body)
        .map_err(|e| MetadataCodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(MetadataCodecError::TrailingBytes(rest.len()));
    }
    Ok(records)
}

/// Topic ids travel as one u128 (postcard writes it as a varint); `Uuid`'s own serde form would
/// need the crate's serde feature.
mod uuid_as_u128 {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u128(id.as_u128())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        u128::deserialize(d).map(Uuid::from_u128)
    }
}

mod uuids_as_u128 {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(ids: &[Uuid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|id| id.as_u128()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Uuid>, D::Error> {
        Vec::<u128>::deserialize(d).map(|ids| ids.into_iter().map(Uuid::from_u128).collect())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    fn arb_ids() -> impl Strategy<Value = Vec<i32>> {
        prop::collection::vec(-1i32..6, 0..5)
    }

    pub fn arb_record() -> impl Strategy<Value = MetadataRecord> {
        let s = "[a-z._-]{0,12}";
        prop_oneof![
            (any::<i32>(), arb_uuid(), any::<i64>(), prop::collection::vec((s, s, any::<u16>(), any::<i16>()), 0..3),
                prop::collection::vec((s, any::<i16>(), any::<i16>()), 0..3), prop::option::of(s), any::<bool>(), any::<bool>())
                .prop_map(|(broker_id, incarnation_id, broker_epoch, eps, fs, rack, fenced, in_controlled_shutdown)| {
                    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                        broker_id,
                        incarnation_id,
                        broker_epoch,
                        end_points: eps
                            .into_iter()
                            .map(|(name, host, port, security_protocol)| BrokerEndpoint { name, host, port, security_protocol })
                            .collect(),
                        features: fs
                            .into_iter()
                            .map(|(name, min_supported_version, max_supported_version)| BrokerFeature {
                                name,
                                min_supported_version,
                                max_supported_version,
                            })
                            .collect(),
                        rack,
                        fenced,
                        in_controlled_shutdown,
                    })
                }),
            (any::<i32>(), any::<i64>()).prop_map(|(broker_id, broker_epoch)| MetadataRecord::UnregisterBroker(
                UnregisterBrokerRecord { broker_id, broker_epoch }
            )),
            (any::<i32>(), any::<i64>()).prop_map(|(id, epoch)| MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })),
            (any::<i32>(), any::<i64>()).prop_map(|(id, epoch)| MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch })),
            (any::<i32>(), any::<i64>(), any::<Option<bool>>(), any::<Option<bool>>()).prop_map(|(broker_id, broker_epoch, fenced, in_controlled_shutdown)| {
                MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord { broker_id, broker_epoch, fenced, in_controlled_shutdown })
            }),
            (s, arb_uuid()).prop_map(|(name, topic_id)| MetadataRecord::Topic(TopicRecord { name, topic_id })),
            (any::<i32>(), arb_uuid(), arb_ids(), arb_ids(), arb_ids(), -1i32..6, any::<bool>(), any::<i32>(), any::<i32>()).prop_map(
                |(partition_id, topic_id, replicas, isr, removing_replicas, leader, rec, leader_epoch, partition_epoch)| {
                    MetadataRecord::Partition(PartitionRecord {
                        partition_id,
                        topic_id,
                        replicas,
                        isr,
                        removing_replicas,
                        adding_replicas: vec![],
                        leader,
                        leader_recovery_state: if rec { LeaderRecoveryState::Recovering } else { LeaderRecoveryState::Recovered },
                        leader_epoch,
                        partition_epoch,
                    })
                }
            ),
            (any::<i32>(), arb_uuid(), prop::option::of(arb_ids()), prop::option::of(-1i32..6), prop::option::of(arb_ids())).prop_map(
                |(partition_id, topic_id, isr, leader, replicas)| {
                    MetadataRecord::PartitionChange(PartitionChangeRecord {
                        isr,
                        leader,
                        replicas,
                        adding_replicas: Some(vec![]),
                        ..PartitionChangeRecord::new(topic_id, partition_id)
                    })
                }
            ),
            arb_uuid().prop_map(|topic_id| MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id })),
            (s, s, prop::option::of(s)).prop_map(|(resource_name, name, value)| MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name,
                name,
                value
            })),
            (any::<i32>(), any::<i64>(), any::<i64>()).prop_map(|(broker_id, broker_epoch, next_producer_id)| {
                MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id, broker_epoch, next_producer_id })
            }),
            (s, any::<i16>()).prop_map(|(name, feature_level)| MetadataRecord::FeatureLevel(FeatureLevelRecord { name, feature_level })),
            (s, any::<i8>(), prop::collection::vec(any::<u8>(), 0..8), any::<i32>()).prop_map(|(name, mechanism, salt, iterations)| {
                MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                    name,
                    mechanism,
                    stored_key: salt.clone(),
                    server_key: salt.iter().rev().copied().collect(),
                    salt,
                    iterations,
                })
            }),
            (s, any::<i8>()).prop_map(|(name, mechanism)| MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord { name, mechanism })),
            Just(MetadataRecord::NoOp),
            (any::<i32>(), any::<i64>(), prop::collection::vec(arb_uuid(), 0..3)).prop_map(|(broker_id, broker_epoch, directories)| {
                MetadataRecord::BrokerDirectories(BrokerDirectoriesRecord { broker_id, broker_epoch, directories })
            }),
            (arb_uuid(), any::<i32>(), any::<i32>()).prop_map(|(topic_id, partition_id, broker_id)| {
                MetadataRecord::ReplicaDirectoryLost(ReplicaDirectoryLostRecord { topic_id, partition_id, broker_id })
            }),
            (prop::collection::vec((s, prop::option::of(s)), 1..3), s, any::<u64>(), any::<bool>()).prop_map(|(entity, key, value_bits, remove)| {
                MetadataRecord::ClientQuota(ClientQuotaRecord { entity, key, value_bits, remove })
            }),
            (arb_uuid(), any::<i8>(), s, any::<i8>(), s, s, any::<i8>(), any::<i8>()).prop_map(|(id, resource_type, resource_name, pattern_type, principal, host, operation, permission_type)| {
                MetadataRecord::AccessControlEntry(AccessControlEntryRecord { id, resource_type, resource_name, pattern_type, principal, host, operation, permission_type })
            }),
            arb_uuid().prop_map(|id| MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id })),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip_through_the_versioned_frame(records in prop::collection::vec(arb_record(), 0..20)) {
            let bytes = encode_records(&records);
            prop_assert_eq!(bytes[0], METADATA_FORMAT_VERSION);
            prop_assert_eq!(decode_records(&bytes), Ok(records));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_records(&bytes);
            let mut framed = vec![METADATA_FORMAT_VERSION];
            framed.extend_from_slice(&bytes);
            let _ = decode_records(&framed);
        }

        #[test]
        fn flipped_bytes_of_a_valid_batch_never_panic(records in prop::collection::vec(arb_record(), 1..6), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = encode_records(&records);
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let _ = decode_records(&bytes);
        }
    }

    #[test]
    fn empty_unknown_version_and_trailing_bytes_are_refused() {
        assert_eq!(decode_records(&[]), Err(MetadataCodecError::Empty));
        assert_eq!(decode_records(&[9, 0]), Err(MetadataCodecError::UnsupportedFormatVersion(9)));
        let mut bytes = encode_records(&[MetadataRecord::NoOp]);
        bytes.push(0);
        assert_eq!(decode_records(&bytes), Err(MetadataCodecError::TrailingBytes(1)));
    }

    #[test]
    fn record_kinds_keep_their_numbers_in_logs_already_written() {
        // One record of each of the first and of the last old kind, as earlier versions wrote them.
        let fence = [METADATA_FORMAT_VERSION, 1, 2, 3, 8];
        assert_eq!(decode_records(&fence), Ok(vec![MetadataRecord::FenceBroker(FenceBrokerRecord { id: -2, epoch: 4 })]));
        assert_eq!(encode_records(&[MetadataRecord::NoOp]), vec![METADATA_FORMAT_VERSION, 1, 14]);
        let lost = MetadataRecord::ReplicaDirectoryLost(ReplicaDirectoryLostRecord { topic_id: Uuid::from_u128(1), partition_id: 0, broker_id: 3 });
        assert_eq!(encode_records(&[lost]), vec![METADATA_FORMAT_VERSION, 1, 16, 1, 0, 6]);
        // The kinds added since keep theirs too: ClientQuota 17, then the ACL records 18 and 19.
        let quota = MetadataRecord::ClientQuota(ClientQuotaRecord { entity: vec![], key: "k".into(), value_bits: 0, remove: true });
        assert_eq!(encode_records(&[quota]), vec![METADATA_FORMAT_VERSION, 1, 17, 0, 1, b'k', 0, 1]);
        let acl = MetadataRecord::AccessControlEntry(AccessControlEntryRecord {
            id: Uuid::from_u128(2),
            resource_type: 2,
            resource_name: "t".into(),
            pattern_type: 3,
            principal: "User:a".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        });
        assert_eq!(encode_records(&[acl]), [&[METADATA_FORMAT_VERSION, 1, 18, 2, 2, 1, b't', 3, 6][..], b"User:a", &[1, b'*', 3, 3]].concat());
        let removed = MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: Uuid::from_u128(2) });
        assert_eq!(decode_records(&[METADATA_FORMAT_VERSION, 1, 19, 2]), Ok(vec![removed]));
    }

    #[test]
    fn a_huge_element_count_does_not_allocate_it() {
        // Format byte, then a varint count of u32::MAX NoOp records with nothing behind it.
        let bytes = [METADATA_FORMAT_VERSION, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(decode_records(&bytes), Err(MetadataCodecError::Malformed(_))));
        // A string that claims 4 GiB in a 10-byte batch.
        let topic = [METADATA_FORMAT_VERSION, 1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a'];
        assert!(matches!(decode_records(&topic), Err(MetadataCodecError::Malformed(_))));
    }
}
