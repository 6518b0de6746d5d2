//! Append-time checks of a produce request's records (framing, magic, CRC32C, sizes, counts, timestamps, records matching the header) and broker offset assignment; records are walked (streaming, for compressed batches) but never kept.

use super::RecordsError;
use super::batch::{self, BatchHeader, BatchIter, CompressionCodec, IterEnd};
use super::walk::{TimestampWindow, WalkError, WalkLimits, walk_records};

/// The limits validation applies; built by the caller from the topic's LogConfig.
#[derive(Debug, Clone, Copy)]
pub struct ValidateConfig {
    /// `max.message.bytes`: the largest single batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.before.max.ms`: how far in the past a timestamp may be. `None`: unchecked.
    pub timestamp_before_max_ms: Option<i64>,
    /// `message.timestamp.after.max.ms`: how far in the future a timestamp may be. `None`: unchecked.
    pub timestamp_after_max_ms: Option<i64>,
    /// Control batches (transaction markers) are written by the coordinator, never by clients.
    pub allow_control_batches: bool,
    /// Wall clock for the timestamp window.
    pub now_ms: i64,
    /// cleanup.policy includes compact: every record needs a key (checked by the same record walk
    /// every batch gets).
    pub require_keys: bool,
}

impl Default for ValidateConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1_048_588,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: None,
            allow_control_batches: false,
            now_ms: 0,
            require_keys: false,
        }
    }
}

/// What the producer-state check needs from each batch, copied out of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub last_sequence: i32,
    pub records_count: i32,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub is_transactional: bool,
    pub is_control: bool,
    pub size_bytes: usize,
}

/// The result of [`validate`]: a summary per batch plus totals, so later stages never re-parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidatedBatches {
    /// One entry per batch, in order. Produce v3+ from real clients carries exactly one batch per
    /// partition (Kafka refuses more with INVALID_RECORD); the api layer enforces that, not this module.
    pub batches: Vec<BatchSummary>,
    pub record_count: i64,
    /// Offsets the request will consume: sum of (lastOffsetDelta + 1).
    pub offset_count: i64,
    /// Largest maxTimestamp over the batches (-1 if none carried one).
    pub max_timestamp: i64,
    /// Offset delta from the first assigned offset to the base of the batch holding `max_timestamp`.
    pub max_timestamp_offset_delta: i64,
    pub has_transactional: bool,
    pub has_control: bool,
    pub total_bytes: usize,
}

impl ValidatedBatches {
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }
}

/// Checks `records` the way the Java broker does before appending. Returns the first problem found.
pub fn validate(records: &[u8], cfg: &ValidateConfig) -> Result<ValidatedBatches, RecordsError> {
    let mut out = ValidatedBatches {
        max_timestamp: -1,
        ..Default::default()
    };
    let mut iter = BatchIter::new(records);
    for framed in iter.by_ref() {
        let position = framed.position;
        let h = match BatchHeader::parse(framed.bytes) {
            Some(h) => h,
            None => {
                return Err(RecordsError::CorruptMessage {
                    position,
                    reason: "batch shorter than header",
                });
            }
        };
        // Magic first: an old message set has a different layout, so nothing else can be trusted.
        if h.magic() != 2 {
            return Err(RecordsError::UnsupportedMessageFormat { magic: h.magic() });
        }
        if framed.bytes.len() > cfg.max_message_bytes {
            return Err(RecordsError::MessageTooLarge {
                size: framed.bytes.len(),
                max: cfg.max_message_bytes,
            });
        }
        if h.computed_crc() != Some(h.crc()) {
            return Err(RecordsError::CorruptMessage {
                position,
                reason: "CRC32C mismatch",
            });
        }
        if let CompressionCodec::Unknown(_) = h.compression() {
            return Err(RecordsError::InvalidRecord {
                position,
                reason: "unknown compression codec",
            });
        }
        let count = h.records_count();
        if count < 1 {
            return Err(RecordsError::InvalidRecord {
                position,
                reason: "batch has no records",
            });
        }
        // Producers write contiguous offsets; requiring it means records_count and the offset range agree,
        // so offset assignment from the header alone is exact.
        if h.last_offset_delta() != count - 1 {
            return Err(RecordsError::InvalidRecord {
                position,
                reason: "lastOffsetDelta != recordsCount - 1",
            });
        }
        if h.is_control() && !cfg.allow_control_batches {
            return Err(RecordsError::InvalidRecord {
                position,
                reason: "clients may not write control batches",
            });
        }
        if h.is_transactional() && h.producer_id() < 0 {
            return Err(RecordsError::InvalidRecord {
                position,
                reason: "transactional batch without producer id",
            });
        }
        // The records must match the header: as many as recordsCount, nothing after them, each
        // well formed. Compressed batches are streamed (memory bounded by walk::SCRATCH_BYTES).
        // Every record's timestamp is checked against the window, as Kafka does: a header's max
        // timestamp may lie.
        let timestamps = (cfg.timestamp_before_max_ms.is_some() || cfg.timestamp_after_max_ms.is_some()).then(|| TimestampWindow {
            earliest: cfg.timestamp_before_max_ms.map_or(cfg.now_ms.saturating_sub(i64::MAX), |before| cfg.now_ms.saturating_sub(before)),
            latest: cfg.timestamp_after_max_ms.map_or(i64::MAX, |after| cfg.now_ms.saturating_add(after)),
        });
        let limits = WalkLimits { record_bytes_max: cfg.max_message_bytes, need_keys: cfg.require_keys && !h.is_control(), timestamps };
        let found = walk_records(framed.bytes, &limits).map_err(|e| match e {
            WalkError::Invalid(reason) => RecordsError::InvalidRecord { position, reason },
            WalkError::RecordTooLarge { size, max } => RecordsError::RecordTooLarge { size, max },
        })?;
        if let Some(window) = timestamps
            && !found.out_of_window.is_empty()
        {
            return Err(RecordsError::InvalidTimestamp { base_offset: h.base_offset(), records: found.out_of_window, window });
        }
        if !found.keyless.is_empty() {
            return Err(RecordsError::MissingKeys { record_indexes: found.keyless });
        }
        if h.max_timestamp() > out.max_timestamp {
            out.max_timestamp = h.max_timestamp();
            out.max_timestamp_offset_delta = out.offset_count;
        }
        out.batches.push(BatchSummary {
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
            last_sequence: h.last_sequence(),
            records_count: count,
            last_offset_delta: h.last_offset_delta(),
            max_timestamp: h.max_timestamp(),
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
            size_bytes: framed.bytes.len(),
        });
        out.record_count += count as i64;
        out.offset_count += h.last_offset_delta() as i64 + 1;
        out.has_transactional |= h.is_transactional();
        out.has_control |= h.is_control();
        out.total_bytes += framed.bytes.len();
    }
    match iter.end() {
        Some(IterEnd::Clean) => {}
        _ => {
            return Err(RecordsError::CorruptMessage {
                position: iter.valid_end(),
                reason: "batchLength does not match the remaining bytes",
            });
        }
    }
    if out.batches.is_empty() {
        return Err(RecordsError::InvalidRecord {
            position: 0,
            reason: "no record batches",
        });
    }
    Ok(out)
}

/// One batch of a leader's log as a follower receives it, offsets already assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicatedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The leader epoch the batch was appended under (its partitionLeaderEpoch).
    pub leader_epoch: i32,
    /// Where the batch starts in the fetched bytes, and its size.
    pub position: usize,
    pub summary: BatchSummary,
}

/// What [`validate_replicated`] found: the whole batches, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicatedBatches {
    pub batches: Vec<ReplicatedBatch>,
    /// The bytes the whole batches take (a partial batch at the end is left out).
    pub bytes: usize,
    pub record_count: i64,
}

/// The checks a follower makes on what it fetched from the leader, as Kafka's appendAsFollower:
/// framing, magic, CRC32C and offsets that only grow, starting at or after `log_end_offset`
/// (a compacted leader log has gaps). Records are not walked: the leader validated them. A
/// partial batch at the end (a fetch cut at its size limit) is left for the next fetch.
pub fn validate_replicated(records: &[u8], log_end_offset: i64) -> Result<ReplicatedBatches, RecordsError> {
    let mut out = ReplicatedBatches::default();
    let mut next = log_end_offset;
    let mut iter = BatchIter::new(records);
    for framed in iter.by_ref() {
        let position = framed.position;
        let Some(h) = BatchHeader::parse(framed.bytes) else {
            return Err(RecordsError::CorruptMessage { position, reason: "batch shorter than header" });
        };
        if h.magic() != 2 {
            return Err(RecordsError::UnsupportedMessageFormat { magic: h.magic() });
        }
        if h.computed_crc() != Some(h.crc()) {
            return Err(RecordsError::CorruptMessage { position, reason: "CRC32C mismatch" });
        }
        if h.last_offset_delta() < 0 || h.records_count() < 0 {
            return Err(RecordsError::InvalidRecord { position, reason: "negative lastOffsetDelta or recordsCount" });
        }
        if h.base_offset() < next {
            return Err(RecordsError::InvalidRecord { position, reason: "replicated offsets do not grow past the log end" });
        }
        let last_offset = h.base_offset().checked_add(h.last_offset_delta() as i64).ok_or(RecordsError::InvalidRecord { position, reason: "offset overflow" })?;
        out.batches.push(ReplicatedBatch {
            base_offset: h.base_offset(),
            last_offset,
            leader_epoch: h.partition_leader_epoch(),
            position,
            summary: BatchSummary {
                producer_id: h.producer_id(),
                producer_epoch: h.producer_epoch(),
                base_sequence: h.base_sequence(),
                last_sequence: h.last_sequence(),
                records_count: h.records_count(),
                last_offset_delta: h.last_offset_delta(),
                max_timestamp: h.max_timestamp(),
                is_transactional: h.is_transactional(),
                is_control: h.is_control(),
                size_bytes: framed.bytes.len(),
            },
        });
        out.bytes += framed.bytes.len();
        out.record_count += h.records_count() as i64;
        next = last_offset + 1;
    }
    match iter.end() {
        Some(IterEnd::Clean) | Some(IterEnd::Truncated) => Ok(out),
        _ => Err(RecordsError::CorruptMessage { position: iter.valid_end(), reason: "batchLength does not match the remaining bytes" }),
    }
}

/// Writes consecutive base offsets into already validated batches, starting at `base_offset`, and
/// returns the last offset assigned. Only the base offset changes, so CRCs stay valid.
pub fn assign_offsets(records: &mut [u8], base_offset: i64) -> i64 {
    let mut next = base_offset;
    let mut position = 0;
    while let Some(h) = records.get(position..).and_then(BatchHeader::parse) {
        let size = h.total_size();
        let delta = h.last_offset_delta() as i64;
        batch::set_base_offset(&mut records[position..], next);
        next += delta + 1;
        position += size.max(batch::HEADER_SIZE);
    }
    next - 1
}

/// For `message.timestamp.type=LogAppendTime`: stamps every batch with `now_ms` (recomputing CRCs).
pub fn apply_log_append_time(records: &mut [u8], now_ms: i64) {
    let mut position = 0;
    while let Some(h) = records.get(position..).and_then(BatchHeader::parse) {
        let size = h
            .total_size()
            .max(batch::HEADER_SIZE)
            .min(records.len() - position);
        batch::set_log_append_time(&mut records[position..position + size], now_ms);
        position += size;
    }
}

/// Stamps every batch with the leader epoch it was appended under.
pub fn set_leader_epoch(records: &mut [u8], epoch: i32) {
    let mut position = 0;
    while let Some(h) = records.get(position..).and_then(BatchHeader::parse) {
        let size = h.total_size().max(batch::HEADER_SIZE);
        batch::set_partition_leader_epoch(&mut records[position..], epoch);
        position += size;
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::test_support::*;
    use super::*;
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;

    fn cfg() -> ValidateConfig {
        ValidateConfig::default()
    }

    #[test]
    fn a_compacted_topic_refuses_records_without_key_naming_each_one() {
        let batch = keyed_batch(&[(Some("a"), Some("1")), (None, Some("2")), (Some("c"), None), (None, None)], 5, Compression::Zstd, None);
        assert!(validate(&batch, &cfg()).is_ok(), "any record goes to a delete-policy topic");
        let compacted = ValidateConfig { require_keys: true, ..cfg() };
        assert_eq!(validate(&batch, &compacted), Err(RecordsError::MissingKeys { record_indexes: vec![1, 3] }));
        let keyed = keyed_batch(&[(Some("a"), Some("1")), (Some("c"), None)], 5, Compression::Lz4, None);
        assert!(validate(&keyed, &compacted).is_ok(), "a tombstone has a key");
    }

    #[test]
    fn records_that_do_not_match_the_header_are_invalid_records_on_compacted_and_other_topics() {
        let compacted = ValidateConfig { require_keys: true, ..cfg() };
        // One record under a header claiming 2^31-1 (issue 14 D2/D3): refused, nothing reserved.
        let mut lying = simple_batch(1);
        for (at, v) in [(batch::RECORDS_COUNT_OFFSET, i32::MAX), (batch::LAST_OFFSET_DELTA_OFFSET, i32::MAX - 1)] {
            lying[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        let crc = crc32c::crc32c(&lying[batch::ATTRIBUTES_OFFSET..]);
        lying[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        for c in [cfg(), compacted] {
            assert!(matches!(validate(&lying, &c), Err(RecordsError::InvalidRecord { position: 0, .. })));
        }
        // The same as the second batch of a request: its position is reported.
        let mut two = simple_batch(2);
        let at = two.len();
        two.extend(&lying);
        assert!(matches!(validate(&two, &cfg()), Err(RecordsError::InvalidRecord { position, .. }) if position == at));
    }

    #[test]
    fn a_decompressed_record_above_max_message_bytes_is_too_large() {
        let b = batch_with(1, None, Compression::None, None);
        let small = ValidateConfig { max_message_bytes: b.len(), ..cfg() };
        validate(&b, &small).expect("uncompressed records are bounded by the batch");
        let big = keyed_batch(&[(Some("k"), Some(&"x".repeat(4000)))], 5, Compression::Zstd, None);
        let small = ValidateConfig { max_message_bytes: 1000, ..cfg() };
        assert!(big.len() < 1000);
        assert!(matches!(validate(&big, &small), Err(RecordsError::RecordTooLarge { max: 1000, .. })));
    }

    #[test]
    fn valid_batches_are_summarised() {
        let mut bytes = batch_with(3, Some(&[5, 50, 7]), Compression::None, Some((4, 1, 10)));
        bytes.extend(batch_with(
            2,
            Some(&[8, 9]),
            Compression::Lz4,
            Some((4, 1, 13)),
        ));
        let v = validate(&bytes, &cfg()).expect("valid");
        assert_eq!(v.batch_count(), 2);
        assert_eq!(v.record_count, 5);
        assert_eq!(v.offset_count, 5);
        assert_eq!(v.max_timestamp, 50);
        assert_eq!(v.max_timestamp_offset_delta, 0);
        assert_eq!(v.batches[1].base_sequence, 13);
        assert_eq!(v.batches[1].last_sequence, 14);
        assert_eq!(v.total_bytes, bytes.len());
    }

    #[test]
    fn offsets_are_assigned_consecutively() {
        let mut bytes = simple_batch(3);
        let first = bytes.len();
        bytes.extend(simple_batch(2));
        assert_eq!(assign_offsets(&mut bytes, 100), 104);
        let a = BatchHeader::parse(&bytes).expect("a");
        let b = BatchHeader::parse(&bytes[first..]).expect("b");
        assert_eq!((a.base_offset(), b.base_offset()), (100, 103));
        validate(&bytes, &cfg()).expect("CRC untouched");
    }

    #[test]
    fn log_append_time_keeps_batches_valid() {
        let mut bytes = simple_batch(3);
        bytes.extend(simple_batch(1));
        apply_log_append_time(&mut bytes, 777);
        let v = validate(&bytes, &cfg()).expect("valid");
        assert!(v.batches.iter().all(|b| b.max_timestamp == 777));
    }

    #[test]
    fn corrupt_crc_is_refused() {
        let mut bytes = simple_batch(2);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            validate(&bytes, &cfg()),
            Err(RecordsError::CorruptMessage { .. })
        ));
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let mut bytes = simple_batch(2);
        bytes.extend([1, 2, 3]);
        assert!(matches!(
            validate(&bytes, &cfg()),
            Err(RecordsError::CorruptMessage { .. })
        ));
    }

    #[test]
    fn old_magic_is_refused_distinctly() {
        let mut bytes = simple_batch(2);
        bytes[batch::MAGIC_OFFSET] = 1;
        assert_eq!(
            validate(&bytes, &cfg()),
            Err(RecordsError::UnsupportedMessageFormat { magic: 1 })
        );
    }

    #[test]
    fn oversized_batch_is_refused() {
        let bytes = simple_batch(20);
        let small = ValidateConfig {
            max_message_bytes: bytes.len() - 1,
            ..cfg()
        };
        assert!(matches!(
            validate(&bytes, &small),
            Err(RecordsError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn empty_input_and_empty_batch_are_invalid() {
        assert!(matches!(
            validate(&[], &cfg()),
            Err(RecordsError::InvalidRecord { .. })
        ));
        let mut bytes = simple_batch(1);
        // Zero records with a consistent CRC: the batch is well formed but empty.
        bytes[batch::RECORDS_COUNT_OFFSET..batch::RECORDS_COUNT_OFFSET + 4]
            .copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[batch::ATTRIBUTES_OFFSET..]);
        bytes[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate(&bytes, &cfg()),
            Err(RecordsError::InvalidRecord { .. })
        ));
    }

    #[test]
    fn timestamps_outside_the_window_are_refused_only_when_configured() {
        let bytes = batch_with(1, Some(&[1_000]), Compression::None, None);
        let c = ValidateConfig {
            now_ms: 100_000,
            ..cfg()
        };
        validate(&bytes, &c).expect("unchecked by default");
        let c = ValidateConfig {
            timestamp_before_max_ms: Some(10),
            ..c
        };
        assert!(matches!(
            validate(&bytes, &c),
            Err(RecordsError::InvalidTimestamp { .. })
        ));
        let c = ValidateConfig {
            now_ms: 0,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: Some(10),
            ..c
        };
        assert!(matches!(
            validate(&bytes, &c),
            Err(RecordsError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn a_follower_takes_whole_batches_with_growing_offsets_and_leaves_a_cut_one() {
        let mut a = batch_with(3, None, Compression::None, None);
        assign_offsets(&mut a, 10);
        let mut b = batch_with(2, None, Compression::None, None);
        assign_offsets(&mut b, 20); // a gap, as compaction leaves
        set_leader_epoch(&mut b, 6);
        let both = [a.clone(), b.clone()].concat();
        let r = validate_replicated(&both, 10).expect("valid");
        assert_eq!(r.batches.iter().map(|b| (b.base_offset, b.last_offset, b.leader_epoch)).collect::<Vec<_>>(), vec![(10, 12, -1), (20, 21, 6)]);
        assert_eq!((r.bytes, r.record_count), (both.len(), 5));
        let cut = validate_replicated(&both[..both.len() - 1], 10).expect("a cut batch is left");
        assert_eq!(cut.batches.len(), 1);
        assert!(validate_replicated(&both, 11).is_err(), "offsets below the log end");
        assert!(validate_replicated(&[b.clone(), a.clone()].concat(), 0).is_err(), "offsets going back");
        let mut bad = a.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(validate_replicated(&bad, 0).is_err(), "CRC");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = validate(&bytes, &cfg());
            let _ = validate_replicated(&bytes, 0);
            let mut copy = bytes.clone();
            let _ = assign_offsets(&mut copy, 0);
            set_leader_epoch(&mut copy, 1);
            apply_log_append_time(&mut copy, 1);
        }

        #[test]
        fn valid_batch_sequences_validate_and_get_consecutive_offsets(
            specs in proptest::collection::vec((1usize..8, 0usize..3), 1..6),
            base in 0i64..1_000_000,
        ) {
            let codecs = [Compression::None, Compression::Lz4, Compression::Gzip];
            let mut bytes = Vec::new();
            for (count, codec) in &specs {
                bytes.extend(batch_with(*count, None, codecs[*codec], None));
            }
            let v = validate(&bytes, &cfg()).expect("valid");
            let total: usize = specs.iter().map(|s| s.0).sum();
            prop_assert_eq!(v.record_count, total as i64);
            prop_assert_eq!(v.batch_count(), specs.len());
            prop_assert_eq!(assign_offsets(&mut bytes, base), base + total as i64 - 1);
            let mut next = base;
            for b in BatchIter::new(&bytes) {
                prop_assert_eq!(b.header().base_offset(), next);
                next = b.header().last_offset() + 1;
            }
            validate(&bytes, &cfg()).expect("still valid after offset assignment");
        }

        #[test]
        fn mutated_valid_batches_never_panic(count in 1usize..5, flip in 0usize..400, bit in 0u8..8) {
            let mut bytes = simple_batch(count);
            let i = flip % bytes.len();
            bytes[i] ^= 1 << bit;
            let r = validate(&bytes, &cfg());
            // Only the base offset and leader epoch lie outside the CRC; elsewhere a flip must be caught.
            if !(0..8).contains(&i) && !(12..16).contains(&i) {
                prop_assert!(r.is_err());
            }
        }
    }
}
