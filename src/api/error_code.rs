//! The single place where internal errors become Kafka error codes (and messages), chosen as the
//! Java broker chooses them. Handlers never spell numeric codes.

use kafka_protocol::error::ResponseError as E;

use crate::broker::metadata::MetadataError;
use crate::broker::replica_manager::ReplicaError;
use crate::records::RecordsError;
use crate::storage::StorageError;

pub const NONE: i16 = 0;

/// A refused ACL binding or filter, or ACLs that could not be stored.
pub fn acl(e: &crate::broker::acl::AclError) -> i16 {
    use crate::broker::acl::AclError;
    match e {
        AclError::InvalidRequest(_) => E::InvalidRequest.code(),
        AclError::Storage(_) => E::KafkaStorageError.code(),
        // Kafka's controller: a CreateAcls over the bound is a PolicyViolationException; a
        // DeleteAcls filter over it fails with a non-API exception, i.e. UNKNOWN_SERVER_ERROR.
        AclError::TooManyToAdd(_) => E::PolicyViolation.code(),
        AclError::TooManyToRemove(_) => E::UnknownServerError.code(),
    }
}

/// A refused GetTelemetrySubscriptions or PushTelemetry, as Kafka's ClientMetricsManager answers.
pub fn telemetry(e: &crate::broker::client_telemetry::TelemetryError) -> i16 {
    use crate::broker::client_telemetry::TelemetryError as T;
    match e {
        T::InvalidRequest(_) => E::InvalidRequest.code(),
        T::Throttled(_) => E::ThrottlingQuotaExceeded.code(),
        T::UnknownSubscriptionId(_) => E::UnknownSubscriptionId.code(),
        T::UnsupportedCompressionType(_) => E::UnsupportedCompressionType.code(),
        T::TooLarge(_) => E::TelemetryTooLarge.code(),
    }
}

/// A telemetry payload the receiver could not read: INVALID_RECORD, Kafka's answer to a failing
/// receiver.
pub fn telemetry_receiver(_e: &crate::metrics::client_telemetry::ReceiveError) -> i16 {
    E::InvalidRecord.code()
}

pub fn records(e: &RecordsError) -> i16 {
    match e {
        RecordsError::CorruptMessage { .. } => E::CorruptMessage.code(),
        RecordsError::MessageTooLarge { .. } => E::MessageTooLarge.code(),
        RecordsError::RecordTooLarge { .. } => E::MessageTooLarge.code(),
        // Produce v3+ carries only magic 2; Kafka answers older magic with INVALID_RECORD.
        RecordsError::UnsupportedMessageFormat { .. } => E::InvalidRecord.code(),
        RecordsError::InvalidRecord { .. } => E::InvalidRecord.code(),
        RecordsError::MissingKeys { .. } => E::InvalidRecord.code(),
        RecordsError::InvalidTimestamp { .. } => E::InvalidTimestamp.code(),
    }
}

pub fn storage(e: &StorageError) -> i16 {
    match e {
        StorageError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
        StorageError::Records(r) => records(r),
        StorageError::DuplicateSequence { .. } => E::DuplicateSequenceNumber.code(),
        StorageError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber.code(),
        StorageError::InvalidProducerEpoch { .. } => E::InvalidProducerEpoch.code(),
        StorageError::Io(_) | StorageError::Corrupt(_) | StorageError::LogDirOffline(_) => E::KafkaStorageError.code(),
        StorageError::UnknownPartition(_) => E::UnknownTopicOrPartition.code(),
        StorageError::AlreadyExists(_) => E::UnknownServerError.code(),
    }
}

/// AlterReplicaLogDirs' per-partition errors, as Kafka's ReplicaManager answers them.
pub fn log_move(e: &crate::storage::log_move::MoveError) -> i16 {
    use crate::storage::log_move::MoveError;
    match e {
        MoveError::LogDirNotFound(_) => E::LogDirNotFound.code(),
        MoveError::NoReplica(_) => E::ReplicaNotAvailable.code(),
        MoveError::NameTooLong(_) => E::InvalidTopicException.code(),
        MoveError::Storage(s) => storage(s),
    }
}

pub fn replica(e: &ReplicaError) -> i16 {
    match e {
        ReplicaError::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
        ReplicaError::Storage(s) => storage(s),
        ReplicaError::Partition(p) => partition(p),
    }
}

pub fn partition(e: &crate::broker::partition::PartitionError) -> i16 {
    use crate::broker::partition::PartitionError as P;
    match e {
        P::NotLeaderOrFollower => E::NotLeaderOrFollower.code(),
        P::FencedLeaderEpoch => E::FencedLeaderEpoch.code(),
        P::UnknownLeaderEpoch => E::UnknownLeaderEpoch.code(),
        P::StaleEpoch => E::StaleControllerEpoch.code(),
        P::NotEnoughReplicas => E::NotEnoughReplicas.code(),
    }
}

pub fn metadata(e: &MetadataError) -> i16 {
    match e {
        MetadataError::TopicExists(_) => E::TopicAlreadyExists.code(),
        MetadataError::InvalidTopic(_) => E::InvalidTopicException.code(),
        MetadataError::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
        MetadataError::Corrupt { .. } | MetadataError::Io(_) | MetadataError::Adopt(_) => E::KafkaStorageError.code(),
        MetadataError::Controller { code, .. } => *code,
        MetadataError::ControllerUnreachable(_) => E::RequestTimedOut.code(),
    }
}

/// The per-user code of a SCRAM credential alteration or description.
/// A refused feature update is INVALID_UPDATE_VERSION; a features file that cannot be written
/// is the broker's fault.
pub fn feature(e: &crate::broker::features::FeatureError) -> i16 {
    use crate::broker::features::FeatureError as F;
    match e {
        F::InvalidUpdateVersion { .. } => E::InvalidUpdateVersion.code(),
        F::Corrupt { .. } | F::Io(_) => E::UnknownServerError.code(),
    }
}

pub fn scram(e: &crate::broker::scram::ScramError) -> i16 {
    use crate::broker::scram::ScramError as S;
    match e {
        S::DuplicateResource(_) => E::DuplicateResource.code(),
        S::ResourceNotFound(_) => E::ResourceNotFound.code(),
        S::UnacceptableCredential(_) => E::UnacceptableCredential.code(),
        S::UnsupportedMechanism => E::UnsupportedSaslMechanism.code(),
        S::Storage(_) => E::KafkaStorageError.code(),
    }
}

pub fn quota(e: &crate::broker::quotas::QuotaError) -> i16 {
    use crate::broker::quotas::QuotaError as Q;
    match e {
        Q::InvalidRequest(_) => E::InvalidRequest.code(),
        // Kafka's answer to an entity type it does not know.
        Q::UnsupportedEntityType(_) => E::UnsupportedVersion.code(),
        Q::Storage(_) => E::KafkaStorageError.code(),
    }
}

/// Errors worth a log line at warn: the broker's own faults, not a client's mistake.
pub fn is_server_fault(code: i16) -> bool {
    code == E::KafkaStorageError.code() || code == E::UnknownServerError.code()
}

/// Kafka's code for a failed write to a coordinator's internal topic, as both of Kafka's
/// coordinators turn the log's error into a coordinator error. The group coordinator does it once
/// for every group API (OffsetCommit, TxnOffsetCommit, JoinGroup, SyncGroup, Heartbeat,
/// LeaveGroup, ConsumerGroupHeartbeat, DeleteGroups, OffsetDelete: Kafka 4.0's
/// `handleOperationException`), the transaction coordinator once for every state write
/// (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn: `appendTransactionToLog`), and
/// the two agree on every case Fjord can meet, so no API differs:
/// - the partition's storage failed (its dir offline, a disk fault): NOT_COORDINATOR. The client
///   looks the coordinator up again; FindCoordinator answers COORDINATOR_NOT_AVAILABLE while the
///   partition is offline, so it waits and retries instead of writing to a dead partition;
/// - the batch is too large: UNKNOWN_SERVER_ERROR (no retry helps; Kafka's older offset manager
///   answered INVALID_COMMIT_OFFSET_SIZE, its 4.0 coordinator no longer does);
/// - the topic is missing or being created: COORDINATOR_NOT_AVAILABLE (retriable);
/// - anything else is unexpected: UNKNOWN_SERVER_ERROR, as Kafka answers an unexpected exception.
pub fn coordinator_log(e: &crate::coordinator::LogError) -> i16 {
    use crate::coordinator::LogError as L;
    match e {
        L::PartitionOffline(_) | L::Storage(_) | L::NotLeader(_) => E::NotCoordinator.code(),
        L::RecordTooLarge(_) => E::UnknownServerError.code(),
        L::TopicUnavailable(_) => E::CoordinatorNotAvailable.code(),
        L::Other(_) => E::UnknownServerError.code(),
    }
}

pub fn group(e: &crate::group::GroupError) -> i16 {
    use crate::group::GroupError as G;
    match e {
        G::InvalidGroupId => E::InvalidGroupId.code(),
        G::CoordinatorNotAvailable => E::CoordinatorNotAvailable.code(),
        G::CoordinatorLoadInProgress => E::CoordinatorLoadInProgress.code(),
        G::UnknownMemberId => E::UnknownMemberId.code(),
        G::MemberIdRequired => E::MemberIdRequired.code(),
        G::IllegalGeneration => E::IllegalGeneration.code(),
        G::RebalanceInProgress => E::RebalanceInProgress.code(),
        G::InconsistentGroupProtocol => E::InconsistentGroupProtocol.code(),
        G::InvalidSessionTimeout => E::InvalidSessionTimeout.code(),
        G::GroupMaxSizeReached => E::GroupMaxSizeReached.code(),
        G::FencedInstanceId => E::FencedInstanceId.code(),
        G::NonEmptyGroup => E::NonEmptyGroup.code(),
        G::GroupIdNotFound => E::GroupIdNotFound.code(),
        G::OffsetMetadataTooLarge => E::OffsetMetadataTooLarge.code(),
        G::GroupSubscribedToTopic => E::GroupSubscribedToTopic.code(),
        G::FencedMemberEpoch => E::FencedMemberEpoch.code(),
        G::StaleMemberEpoch => E::StaleMemberEpoch.code(),
        G::UnreleasedInstanceId => E::UnreleasedInstanceId.code(),
        G::UnsupportedAssignor(_) => E::UnsupportedAssignor.code(),
        G::InvalidRequest(_) => E::InvalidRequest.code(),
        G::InvalidRegularExpression(_) => E::InvalidRegularExpression.code(),
        G::NotConsumerGroup(_) | G::NotClassicGroup(_) | G::ConsumerGroupNotFound(_) => E::GroupIdNotFound.code(),
        G::Log(l) => coordinator_log(l),
    }
}

/// A group result as a code: NONE for success.
pub fn group_result(r: &Result<(), crate::group::GroupError>) -> i16 {
    r.as_ref().err().map_or(NONE, group)
}

/// Kafka's code for a transaction error. `fenced_known`: the request version has
/// PRODUCER_FENCED (KIP-588); older clients get INVALID_PRODUCER_EPOCH, as Kafka answers them.
pub fn txn(e: &crate::txn::TxnError, fenced_known: bool) -> i16 {
    use crate::txn::TxnError as T;
    match e {
        T::InvalidTransactionTimeout => E::InvalidTransactionTimeout.code(),
        T::ProducerFenced if fenced_known => E::ProducerFenced.code(),
        T::ProducerFenced => E::InvalidProducerEpoch.code(),
        T::InvalidProducerIdMapping => E::InvalidProducerIdMapping.code(),
        T::ConcurrentTransactions => E::ConcurrentTransactions.code(),
        T::InvalidTxnState => E::InvalidTxnState.code(),
        T::TransactionalIdNotFound => E::TransactionalIdNotFound.code(),
        T::Log(l) => coordinator_log(l),
    }
}

/// A transaction result as a code: NONE for success.
pub fn txn_result(r: &Result<(), crate::txn::TxnError>, fenced_known: bool) -> i16 {
    r.as_ref().err().map_or(NONE, |e| txn(e, fenced_known))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::LogError as L;
    use crate::group::GroupError;
    use crate::txn::TxnError;

    /// Each kind of coordinator log failure with the code Kafka 4.0's coordinators answer for it.
    fn kinds() -> Vec<(L, i16)> {
        vec![
            (L::PartitionOffline("d".into()), E::NotCoordinator.code()),
            (L::Storage("EIO".into()), E::NotCoordinator.code()),
            (L::RecordTooLarge("big".into()), E::UnknownServerError.code()),
            (L::TopicUnavailable("creating".into()), E::CoordinatorNotAvailable.code()),
            (L::Other("?".into()), E::UnknownServerError.code()),
        ]
    }

    #[test]
    fn a_failed_internal_write_answers_kafkas_code_on_every_group_and_transaction_api() {
        for (kind, code) in kinds() {
            // OffsetCommit, TxnOffsetCommit, JoinGroup, SyncGroup, Heartbeat, LeaveGroup and
            // ConsumerGroupHeartbeat answer through `group`.
            assert_eq!(group(&GroupError::Log(kind.clone())), code, "{kind:?}");
            assert_eq!(group_result(&Err(GroupError::Log(kind.clone()))), code, "{kind:?}");
            // InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn through `txn`, old
            // and new versions alike.
            for fenced_known in [false, true] {
                assert_eq!(txn(&TxnError::Log(kind.clone()), fenced_known), code, "{kind:?}");
                assert_eq!(txn_result(&Err(TxnError::Log(kind.clone())), fenced_known), code, "{kind:?}");
            }
        }
    }
}
