//! The Kafka v2 RecordBatch format shared by the wire and the disk: pure functions over bytes, no files, no tokio.

pub mod batch;
pub mod control;
pub mod internal;
pub mod partitioner;
pub mod recompress;
pub mod validate;
pub mod varint;
pub mod walk;

/// A record of no producer (no id, epoch or sequence), as Fjord's own writers make them (the
/// coordinators' internal batches, the admin CLI, the web console). Its sequence keeps
/// offset - sequence constant, which is how the encoder knows records share one batch (base
/// sequence -1).
pub fn plain_record(offset: i64, timestamp: i64, key: Option<bytes::Bytes>, value: Option<bytes::Bytes>) -> kafka_protocol::records::Record {
    kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset,
        sequence: offset as i32 - 1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Why a produce request's records were refused. The api layer maps each variant to a Kafka error code;
/// the mapping Kafka 4 uses is written on each variant so that layer does not have to guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// A CRC mismatch or a length that does not match the bytes. Kafka: CORRUPT_MESSAGE (2).
    #[error("corrupt record batch at byte {position}: {reason}")]
    CorruptMessage {
        position: usize,
        reason: &'static str,
    },
    /// A batch larger than `max.message.bytes`. Kafka: MESSAGE_TOO_LARGE (10).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// A decompressed record longer than `max.message.bytes`. Kafka has no such check at produce time
    /// (it accepts the record); Fjord refuses it (see walk::WalkLimits). MESSAGE_TOO_LARGE (10).
    #[error("a record of {size} bytes (decompressed) exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },
    /// A batch with magic 0 or 1 (or an unknown magic). Kafka 4 refuses these in Produce v3+ with
    /// INVALID_RECORD (87); older brokers said UNSUPPORTED_FOR_MESSAGE_FORMAT (43). Kept distinct so the
    /// api layer can pick per request version.
    #[error("record batch magic {magic} is not supported (only v2)")]
    UnsupportedMessageFormat { magic: i8 },
    /// A well-formed batch whose content Kafka refuses (empty batch, inconsistent counts, control batch
    /// from a client, unknown codec). Kafka: INVALID_RECORD (87).
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidRecord {
        position: usize,
        reason: &'static str,
    },
    /// Records without a key sent to a compacted topic (cleanup.policy=compact): the cleaner could
    /// never tell which record is the latest. Kafka: INVALID_RECORD (87) with one record error per
    /// offending record (KIP-467), by its index in the batch.
    #[error("compacted topic cannot accept records without key ({} in the batch)", record_indexes.len())]
    MissingKeys { record_indexes: Vec<i32> },
    /// Records stamped outside message.timestamp.before/after.max.ms (CreateTime topics). Kafka:
    /// INVALID_TIMESTAMP (32) with one record error per offending record, by its index.
    #[error("{} record(s) stamped outside [{}, {}]", records.len(), window.earliest, window.latest)]
    InvalidTimestamp { base_offset: i64, records: Vec<walk::OutOfWindow>, window: walk::TimestampWindow },
}
