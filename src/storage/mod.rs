//! The durable log: Kafka's on-disk layout (segments, indexes, checkpoints), recovery and retention; it never sees request types and touches files only through `io`.
//!
//! Execution model (README, "Architecture"): every call here may block on a disk, so it runs on a
//! request handler thread (`broker::io_pool`, `num.io.threads`) or the blocking pool, never on an
//! async worker, except inside an `io::nowait` scope: there reads never wait (RWF_NOWAIT), locks
//! are tried, and an append is made only when `PartitionLog::append_would_wait` says it is
//! small page-cache writes (the log's, and the indexes' tail pages when an entry is due). A `PartitionLog` lives behind a `std::sync::Mutex` (see `LogManager::get`) that
//! serializes its appends: lock for one call, never across `.await`. Waiting is not done here:
//! parked fetches sit in `broker::purgatory`, woken by their partition's high watermark.
//!
//! How callers use it:
//! - Produce: `records::validate::validate(bytes, &config.validate_config(now))`, then
//!   `PartitionLog::append(&mut bytes, &validated, now)`. `DuplicateSequence` means success with the
//!   original offsets; after a successful append the caller moves the high watermark.
//! - Fetch: `PartitionLog::read(offset, max_bytes, upper_bound)` with the high watermark as bound.
//! - Durability points: log end offset (appended, in the page cache), recovery point (fsynced; moved by
//!   `flush`, `roll`, `flush.messages`/`flush.ms` and durable-mode syncs), high watermark (what
//!   consumers may read).
//! - Durable mode: `sync_target()` under the lock, `target.file.sync_data()` without it (so
//!   concurrent producers' syncs meet in the io_uring backend's group commit), then
//!   `mark_synced(&target)` under the lock.
//! - Faults: a failed fsync or an unexplained write error takes the partition's log dir offline
//!   (`log_dir_failure` holds the policy; `LogManager::report` applies it, `offline_error` is the
//!   check before touching a log); a cleanly undone ENOSPC does not.
//! - Shutdown: `LogManager::close` seals and fsyncs every log, writes producer snapshots and checkpoints,
//!   then `.kafka_cleanshutdown` in each log dir. `LogManager::open` trusts a dir holding the marker (no
//!   scan) and deletes it; without it, each partition re-validates from its checkpointed recovery point.
//!   Call `LogManager::checkpoint` periodically so an unclean start scans only the tail.

pub mod checkpoint;
pub mod cleaner;
pub mod io;
pub mod kafka_dir;
pub mod leader_epoch;
pub mod log;
pub mod log_dir_failure;
pub mod log_manager;
pub mod log_move;
pub mod offset_index;
pub mod producer_state;
pub mod recovery;
pub mod segment;
pub mod time_index;
pub mod txn_index;

#[cfg(test)]
mod full_disk_tests;

pub use self::io::FileRange;
pub use self::log::{AppendInfo, LogRange, PartitionLog, ReadSlice, SyncTarget};
pub use self::log_manager::LogManager;

use crate::records::RecordsError;
use crate::records::recompress::TopicCompression;
use crate::records::validate::ValidateConfig;

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Kafka's per-topic log settings, with Kafka's defaults. `-1` means unlimited where Kafka says so.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: each segment rolls up to this much before segment.ms (its share
    /// derived from its base offset), so partitions created together do not roll together.
    pub segment_jitter_ms: i64,
    /// `segment.index.bytes`: the largest offset index (and time index) of a segment, in bytes;
    /// the active segment rolls once either index holds as many entries as fit (Kafka's
    /// `isFull`: 8-byte offset entries, 12-byte time entries).
    pub segment_index_bytes: u64,
    /// `compression.type` (with `compression.<codec>.level`): the codec batches are stored in.
    pub compression: TopicCompression,
    /// `retention.ms`: delete sealed segments whose largest timestamp is older. -1: keep forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log stays at least this large. -1: no limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `flush.messages`: fsync after this many messages. i64::MAX: leave it to the OS (Kafka's default).
    pub flush_interval_messages: i64,
    /// `flush.ms`: fsync when the last flush is older than this.
    pub flush_interval_ms: i64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` / `after.max.ms` (Kafka's defaults: unlimited / 1 hour).
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    /// `cleanup.policy`: "delete", "compact" or both (comma-separated).
    pub cleanup_policy: String,
    /// `delete.retention.ms`: how long the cleaner keeps tombstones.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: share of the cleanable bytes not yet cleaned before a pass.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a segment with records younger than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty segment older than this is cleaned whatever the ratio.
    pub max_compaction_lag_ms: i64,
    /// `fjord.log.preallocate.step.bytes` (broker-wide, no topic override): the active segment
    /// reserves disk blocks this far ahead of its appends, without changing its size; 0: never.
    pub preallocate_step_bytes: u64,
    /// `fjord.log.writeback.step.bytes` (broker-wide): each time the active segment has grown
    /// this much, its new pages are queued for writeback (sync_file_range), so the fsync of a
    /// rolled segment, a durable-mode sync or a flush finds little left to write; 0 (the
    /// default): leave it to the kernel's flusher. Off by default because the call runs on the
    /// appending thread and blocks when the disk's queue is full, so a burst faster than the
    /// disk is no longer absorbed by the page cache (produce 1M x 1 KiB: 0.92x with 4 MiB).
    pub writeback_step_bytes: u64,
    /// `fjord.log.drop.behind.bytes` (broker-wide): pages of the active segment this far behind
    /// its end, queued for writeback at least this long ago, are dropped from the page cache,
    /// so appends reuse freed memory rather than new pages (a VM whose balloon reclaims free
    /// memory makes every new page fault on the host: page-cache writes measured x2, produce
    /// x1.6). 0 (the default): keep them, as Kafka does, until the kernel reclaims them.
    pub drop_behind_bytes: u64,
    /// `fjord.fetch.readahead.bytes` (broker-wide): how far ahead of a reader the disk is asked
    /// to read (fadvise WILLNEED), so a consumer behind what the page cache holds finds its next
    /// fetches read while it handles this one; 0: leave it to the kernel's own read-ahead.
    pub readahead_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_jitter_ms: 0,
            segment_index_bytes: 10_485_760,
            compression: TopicCompression::Producer,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            flush_interval_messages: i64::MAX,
            flush_interval_ms: i64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            cleanup_policy: "delete".to_string(),
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            preallocate_step_bytes: 8_388_608,
            writeback_step_bytes: 0,
            drop_behind_bytes: 0,
            readahead_bytes: 16_777_216,
        }
    }
}

impl LogConfig {
    /// The jitter taken off segment.ms for the segment at `base_offset`: a share of
    /// segment.jitter.ms fixed per segment (Kafka draws it at random when the segment is made;
    /// derived here so it holds across restarts).
    pub fn roll_jitter_ms(&self, base_offset: i64) -> i64 {
        if self.segment_jitter_ms <= 0 {
            return 0;
        }
        // SplitMix64's finalizer: neighbouring offsets get unrelated jitters.
        let mut z = (base_offset as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % self.segment_jitter_ms as u64) as i64
    }

    /// Whether retention (retention.ms / retention.bytes) deletes old segments: only under the
    /// delete policy, as in Kafka. A compacted-only topic keeps every segment.
    pub fn deletes(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p.trim() == "delete")
    }

    /// Whether the cleaner keeps only the latest record per key.
    pub fn compacts(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p.trim() == "compact")
    }

    /// The validation limits this config implies, for records::validate::validate.
    pub fn validate_config(&self, now_ms: i64) -> ValidateConfig {
        // LogAppendTime replaces the producer's timestamps: Kafka checks none of them then.
        let create_time = self.message_timestamp_type == TimestampType::CreateTime;
        let window = |ms: i64| (create_time && ms != i64::MAX && ms >= 0).then_some(ms);
        ValidateConfig {
            max_message_bytes: self.max_message_bytes,
            timestamp_before_max_ms: window(self.message_timestamp_before_max_ms),
            timestamp_after_max_ms: window(self.message_timestamp_after_max_ms),
            allow_control_batches: false,
            now_ms,
            require_keys: self.compacts(),
        }
    }
}

/// Storage failures. Per-partition ones go into the response; Io and Corrupt usually mean the log dir is bad.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error(transparent)]
    Records(#[from] RecordsError),
    /// Already appended: answer success with these offsets and do not append again.
    #[error("duplicate sequence; already at offsets {base_offset}..={last_offset}")]
    DuplicateSequence { base_offset: i64, last_offset: i64 },
    #[error(
        "out of order sequence for producer {producer_id}: expected {expected}, got {received}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("producer {producer_id} epoch {received} is older than {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        received: i16,
    },
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error("partition log {0} not found")]
    UnknownPartition(String),
    #[error("partition log {0} already exists")]
    AlreadyExists(String),
    /// The partition's log dir went offline after an I/O error (see `log_dir_failure`).
    #[error("log dir {} is offline after an I/O error", .0.display())]
    LogDirOffline(std::path::PathBuf),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// `<20-digit zero padded offset>.<ext>`, Kafka's file naming.
pub fn file_name(offset: i64, ext: &str) -> String {
    format!("{offset:020}.{ext}")
}

/// Parses Kafka's file naming back: `Some(offset)` for `<digits>.<ext>`.
pub fn parse_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_kafka_style() {
        assert_eq!(file_name(42, "log"), "00000000000000000042.log");
        assert_eq!(parse_file_name("00000000000000000042.log", "log"), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.index", "log"), None);
        assert_eq!(parse_file_name("42.log", "log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log", "log"), None);
    }
}
