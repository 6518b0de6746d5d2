//! Why a coordinator's write to (or read of) its internal topic failed, in the terms Kafka's
//! coordinators distinguish: the partition is not served from here (its log dir is offline, a
//! storage fault), the batch is too large, the topic is missing or being created, or anything
//! else. The broker's `GroupLog` / `TxnLog` implementations classify storage errors into it; the
//! coordinators carry it unchanged inside their own errors, and `api::error_code` turns it into
//! each API's code. Knows nothing of requests, files or error codes.

/// A failed append to, or read of, a partition of `__consumer_offsets` or `__transaction_state`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The partition's log dir is offline (Kafka: the partition is no longer led here, the
    /// coordinator resigned it; KAFKA_STORAGE_ERROR / NOT_LEADER_OR_FOLLOWER from the log).
    #[error("the internal partition is offline: {0}")]
    PartitionOffline(String),
    /// This broker no longer leads the partition (its leadership moved to another broker):
    /// the coordinator has moved with it (Kafka: NOT_COORDINATOR).
    #[error("the internal partition is led elsewhere: {0}")]
    NotLeader(String),
    /// The write failed on the disk without (yet) taking the dir offline, e.g. a full disk whose
    /// append was undone (Kafka: KAFKA_STORAGE_ERROR).
    #[error("storage error on the internal partition: {0}")]
    Storage(String),
    /// The batch is larger than the partition accepts (Kafka: MESSAGE_TOO_LARGE,
    /// RECORD_LIST_TOO_LARGE, INVALID_FETCH_SIZE).
    #[error("record too large for the internal topic: {0}")]
    RecordTooLarge(String),
    /// The internal topic or the partition does not exist (yet): it could not be created, or it
    /// is being created (Kafka: UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS).
    #[error("the internal topic is not available: {0}")]
    TopicUnavailable(String),
    /// Anything else (a batch the coordinator could not encode, a producer id that could not be
    /// reserved): unexpected, logged and answered as a server error.
    #[error("{0}")]
    Other(String),
}
