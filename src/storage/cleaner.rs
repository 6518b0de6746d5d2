//! Log compaction (cleanup.policy=compact): keeps the latest record of every key in the sealed
//! segments of a log, with offsets unchanged. This file owns the work done without the log's lock
//! (reading sealed segments, building the key map, writing `.cleaned` segments); `PartitionLog`
//! plans a pass and swaps the result in (`plan_clean` / `commit_clean`). It never touches the
//! active segment and never decides when to clean a log that is not due.
//!
//! What is kept, as Kafka's cleaner does:
//! - a record whose key has no later record in the cleaned range;
//! - a tombstone (null value) only while its segment is younger than delete.retention.ms, so that a
//!   consumer reading from the start within that time still sees the delete;
//! - records of aborted transactions dropped, and nothing at or past the last stable offset
//!   cleaned (an open transaction's outcome is unknown). A cleaned segment has no `.txnindex`:
//!   the aborted records its sources' indexes pointed at are gone with them (a transaction whose
//!   marker lies past the cleaned range keeps its entry in the marker's segment);
//! - control batches untouched; records without a key are dropped (a compacted topic refuses them
//!   at produce time, so only data written before the policy changed has them).
//!
//! A batch whose records all stay is copied byte for byte; one that loses some is re-encoded with
//! its own codec, producer fields and timestamps; one that loses all is dropped. Crash safety is
//! Kafka's: `.cleaned` files are written and fsynced first, renamed to `.swap` (the commit point),
//! then the replaced segments are deleted and the swaps renamed into place. `recovery` finishes an
//! interrupted swap and deletes leftover `.cleaned` files.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

use super::io::{FileIo, IoFile};
use super::segment::Segment;
use super::txn_index::AbortedTxn;
use super::{LogConfig, Result, StorageError};
use crate::records::batch::{self, BatchHeader, CompressionCodec, LOG_OVERHEAD, MIN_BATCH_LENGTH};
use crate::types::TopicPartition;

/// Suffix of segment files the cleaner is still writing.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of cleaned segment files that are committed but not yet in place.
pub const SWAP_SUFFIX: &str = ".swap";

/// Bytes one key costs in the key map, on top of the key itself (hash table slot, offset,
/// `Bytes` header): what `log.cleaner.dedupe.buffer.size` is counted in.
const KEY_MAP_ENTRY_OVERHEAD_BYTES: usize = 48;

/// Broker-wide cleaner settings (Kafka's log.cleaner.* properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerConfig {
    /// log.cleaner.dedupe.buffer.size: memory for the key map of one pass.
    pub dedupe_buffer_bytes: usize,
    /// log.cleaner.io.buffer.size: read size when scanning segments.
    pub io_buffer_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig { dedupe_buffer_bytes: 134_217_728, io_buffer_bytes: 524_288 }
    }
}

impl CleanerConfig {
    /// One of `threads` cleaners' share: Kafka's two buffer sizes are totals across all
    /// cleaner threads (`log.cleaner.threads`), so each thread gets its part of them.
    pub fn per_thread(&self, threads: usize) -> CleanerConfig {
        let threads = threads.max(1);
        CleanerConfig { dedupe_buffer_bytes: (self.dedupe_buffer_bytes / threads).max(1), io_buffer_bytes: (self.io_buffer_bytes / threads).max(1) }
    }
}

/// A sealed segment as the cleaner reads it, without the log lock: sealed segments never change
/// until the cleaner or retention replaces them, and `commit_clean` checks they are still there.
#[derive(Debug, Clone)]
pub struct SourceSegment {
    pub base_offset: i64,
    pub next_offset: i64,
    pub size: u64,
    pub largest_timestamp: i64,
    pub file: Arc<dyn IoFile>,
}

/// One pass over one log, planned under its lock.
#[derive(Debug, Clone)]
pub struct CleanPlan {
    pub tp: TopicPartition,
    pub dir: PathBuf,
    pub io: Arc<dyn FileIo>,
    pub config: LogConfig,
    /// Every cleanable segment, oldest first (the clean part and the dirty part).
    pub segments: Vec<SourceSegment>,
    /// Offsets from here on have not been cleaned yet (a segment boundary).
    pub first_dirty: i64,
    /// Every aborted transaction of the log: their records are dropped, their markers kept.
    pub aborted: Vec<AbortedTxn>,
}

impl CleanPlan {
    /// Whether a batch holds records of an aborted transaction.
    fn is_aborted(&self, h: &BatchHeader<'_>) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.aborted.iter().any(|a| a.producer_id == h.producer_id() && a.first_offset <= h.base_offset() && h.base_offset() <= a.last_offset)
    }
}

/// One cleaned segment written as `.cleaned` files, replacing `sources` (consecutive segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanedSegment {
    pub base_offset: i64,
    /// (base offset, size) of each replaced segment, to check nothing changed meanwhile.
    pub sources: Vec<(i64, u64)>,
}

/// What a pass produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanOutput {
    pub segments: Vec<CleanedSegment>,
    /// Where the next pass starts its key map: the end of what this pass deduplicated.
    pub next_dirty: i64,
    pub stats: CleanStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_dropped: u64,
    pub keys: u64,
}

/// Latest offset per key over the dirty range, bounded by a memory budget.
struct KeyMap {
    latest: HashMap<Bytes, i64>,
    bytes: usize,
}

impl KeyMap {
    fn cost(key: &Bytes) -> usize {
        key.len() + KEY_MAP_ENTRY_OVERHEAD_BYTES
    }
}

/// Walks the whole batches of a segment file in `io_buffer_bytes` reads (more for a batch larger
/// than that). Stops at the first batch that does not frame, which recovery already cut for
/// every segment it checked.
fn for_each_batch(seg: &SourceSegment, io_buffer_bytes: usize, mut f: impl FnMut(&[u8]) -> Result<ControlFlow<()>>) -> Result<()> {
    let mut buf = vec![0u8; io_buffer_bytes.max(batch::HEADER_SIZE)];
    let mut position = 0u64;
    while position + LOG_OVERHEAD as u64 <= seg.size {
        let want = ((seg.size - position) as usize).min(buf.len());
        let got = seg.file.read_full_at(&mut buf[..want], position)?;
        let mut at = 0usize;
        while at + LOG_OVERHEAD <= got {
            let length = i32::from_be_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
            if length < MIN_BATCH_LENGTH {
                return Ok(());
            }
            let total = LOG_OVERHEAD + length as usize;
            if position + (at + total) as u64 > seg.size {
                return Ok(());
            }
            if at + total > got {
                if at == 0 {
                    if buf.len() >= total {
                        // The file ended before the size the segment recorded.
                        return Ok(());
                    }
                    // One batch larger than the buffer: grow to it (bounded by the segment).
                    buf.resize(total, 0);
                }
                break;
            }
            if f(&buf[at..at + total])?.is_break() {
                return Ok(());
            }
            at += total;
        }
        if at == 0 && got < LOG_OVERHEAD {
            break;
        }
        position += at as u64;
    }
    Ok(())
}

/// Largest decompressed size of one batch the cleaner decodes. A compressed batch can hold far
/// more than it takes on disk (each record within `max.message.bytes`, a gibibyte in all from a
/// few kilobytes of zstd); one past this bound is measured with a streaming walk and kept whole,
/// its keys left out of the key map. That only keeps records longer than compaction would (a
/// record goes only when the map holds a later offset for its key), never drops one too early.
/// Kafka has no property for this: its cleaner streams compressed batches record by record.
pub const CLEANER_BATCH_DECODED_BYTES_MAX: usize = 64 << 20;

/// Whether the cleaner may decode `raw` whole: uncompressed batches (their size is their
/// records'), and compressed ones whose records walk to at most [`CLEANER_BATCH_DECODED_BYTES_MAX`].
fn decodable(raw: &[u8], h: &BatchHeader<'_>) -> bool {
    if h.compression() == CompressionCodec::None {
        return true;
    }
    match crate::records::walk::visit_records(raw, &mut |_| ControlFlow::Continue(())) {
        Ok(bytes) if bytes <= CLEANER_BATCH_DECODED_BYTES_MAX => true,
        Ok(bytes) => {
            tracing::warn!(base_offset = h.base_offset(), decompressed_bytes = bytes, "a compressed batch too large to decode in the cleaner is kept whole");
            false
        }
        // A batch that does not walk cannot be decoded either: the decode reports it.
        Err(_) => true,
    }
}

fn decode(bytes: &[u8]) -> Result<kafka_protocol::records::RecordSet> {
    let mut b = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode(&mut b).map_err(|e| StorageError::Corrupt(format!("cleaner cannot decode a batch: {e}")))
}

fn codec(c: CompressionCodec) -> Compression {
    match c {
        CompressionCodec::Gzip => Compression::Gzip,
        CompressionCodec::Snappy => Compression::Snappy,
        CompressionCodec::Lz4 => Compression::Lz4,
        CompressionCodec::Zstd => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Records the latest offset of every key in the dirty segments, in order, until the budget is
/// spent. Returns the offset the map covers up to (a segment boundary), or None when not even
/// the first dirty segment fits.
fn build_key_map(plan: &CleanPlan, cfg: &CleanerConfig, map: &mut KeyMap, stats: &mut CleanStats) -> Result<Option<i64>> {
    let mut covered = None;
    for seg in plan.segments.iter().filter(|s| s.base_offset >= plan.first_dirty) {
        let mut segment_keys: HashMap<Bytes, i64> = HashMap::new();
        let mut new_bytes = 0usize;
        // The budget is checked as keys come in, so the map never grows past it.
        let mut over = false;
        for_each_batch(seg, cfg.io_buffer_bytes, |raw| {
            let Some(h) = BatchHeader::parse(raw) else { return Ok(ControlFlow::Continue(())) };
            if h.is_control() || plan.is_aborted(&h) || !decodable(raw, &h) {
                return Ok(ControlFlow::Continue(()));
            }
            for r in decode(raw)?.records {
                if let Some(k) = r.key {
                    if !map.latest.contains_key(&k) && !segment_keys.contains_key(&k) {
                        new_bytes += KeyMap::cost(&k);
                        if map.bytes + new_bytes > cfg.dedupe_buffer_bytes {
                            over = true;
                            return Ok(ControlFlow::Break(()));
                        }
                    }
                    segment_keys.insert(k, r.offset);
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if over {
            if covered.is_none() {
                tracing::warn!(partition = %plan.tp, segment = seg.base_offset, needed = new_bytes, "log.cleaner.dedupe.buffer.size too small for one segment; not cleaning");
            }
            break;
        }
        map.bytes += new_bytes;
        map.latest.extend(segment_keys);
        covered = Some(seg.next_offset.max(seg.base_offset));
        // The next segment's base is the exact boundary; next_offset may sit below it after
        // an earlier clean removed the tail of this one.
        if let Some(next) = plan.segments.iter().find(|s| s.base_offset > seg.base_offset) {
            covered = Some(next.base_offset);
        }
    }
    stats.keys = map.latest.len() as u64;
    Ok(covered)
}

/// Consecutive source segments whose cleaned form goes into one segment: together at most
/// segment.bytes, and offsets within what an index entry can address.
fn group_segments(segments: &[SourceSegment], segment_bytes: u64) -> Vec<Vec<&SourceSegment>> {
    let mut groups: Vec<Vec<&SourceSegment>> = Vec::new();
    for seg in segments {
        if let Some(g) = groups.last_mut() {
            let size: u64 = g.iter().map(|s| s.size).sum();
            let base = g[0].base_offset;
            if size + seg.size <= segment_bytes && seg.next_offset - base <= i32::MAX as i64 {
                g.push(seg);
                continue;
            }
        }
        groups.push(vec![seg]);
    }
    groups
}

/// The retained part of one batch: None to drop it, Some(bytes) to write (the original bytes
/// when nothing was removed).
fn filter_batch(raw: &[u8], map: &KeyMap, drop_tombstones: bool, stats: &mut CleanStats) -> Result<Option<Vec<u8>>> {
    let Some(h) = BatchHeader::parse(raw) else { return Ok(None) };
    if h.is_control() || !decodable(raw, &h) {
        return Ok(Some(raw.to_vec()));
    }
    let set = decode(raw)?;
    let total = set.records.len();
    stats.records_read += total as u64;
    let mut kept = Vec::with_capacity(total);
    for r in set.records {
        let Some(k) = &r.key else { continue };
        if map.latest.get(k).is_some_and(|latest| *latest > r.offset) {
            continue;
        }
        if r.value.is_none() && drop_tombstones {
            stats.tombstones_dropped += 1;
            continue;
        }
        kept.push(r);
    }
    stats.records_kept += kept.len() as u64;
    if kept.is_empty() {
        return Ok(None);
    }
    if kept.len() == total {
        return Ok(Some(raw.to_vec()));
    }
    if h.producer_id() < 0 {
        // Without a producer the batch has no sequence (-1); the encoder derives the base
        // sequence from the first record, so give the records the sequence that yields -1.
        let first = kept[0].offset;
        for r in &mut kept {
            r.sequence = (-1i64 + (r.offset - first)) as i32;
        }
    }
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: codec(h.compression()) };
    RecordBatchEncoder::encode(&mut out, &kept, &options).map_err(|e| StorageError::Corrupt(format!("cleaner cannot encode a batch: {e}")))?;
    let mut out = out.to_vec();
    if h.timestamp_type() == batch::TimestampType::LogAppendTime {
        // The broker's time stamp is the batch's, not the records'; keep it.
        crate::records::validate::apply_log_append_time(&mut out, h.max_timestamp());
    }
    Ok(Some(out))
}

/// Runs one planned pass: key map over the dirty segments, then every cleanable segment up to
/// the end of that map rewritten into `.cleaned` segments (fsynced). Nothing live is touched;
/// `PartitionLog::commit_clean` swaps the result in. None when there is nothing to do.
pub fn clean(plan: &CleanPlan, cfg: &CleanerConfig, now_ms: i64) -> Result<Option<CleanOutput>> {
    let mut stats = CleanStats::default();
    let mut map = KeyMap { latest: HashMap::new(), bytes: 0 };
    let Some(end) = build_key_map(plan, cfg, &mut map, &mut stats)? else { return Ok(None) };
    let sources: Vec<SourceSegment> = plan.segments.iter().filter(|s| s.base_offset < end).cloned().collect();
    let mut done = Vec::new();
    let mut current = None;
    if let Err(e) = write_groups(plan, cfg, &map, &sources, now_ms, &mut stats, &mut done, &mut current) {
        for base in done.iter().map(|s: &CleanedSegment| s.base_offset).chain(current) {
            remove_files(plan.io.as_ref(), &plan.dir, base, CLEANED_SUFFIX);
        }
        return Err(e);
    }
    Ok(Some(CleanOutput { segments: done, next_dirty: end, stats }))
}

/// Writes one `.cleaned` segment per group of sources. `current` names the segment being
/// written, so a failure can remove it with the finished ones.
#[allow(clippy::too_many_arguments)]
fn write_groups(
    plan: &CleanPlan,
    cfg: &CleanerConfig,
    map: &KeyMap,
    sources: &[SourceSegment],
    now_ms: i64,
    stats: &mut CleanStats,
    done: &mut Vec<CleanedSegment>,
    current: &mut Option<i64>,
) -> Result<()> {
    let tombstone_horizon = now_ms.saturating_sub(plan.config.delete_retention_ms);
    for group in group_segments(sources, plan.config.segment_bytes) {
        let base = group[0].base_offset;
        *current = Some(base);
        let mut out = Segment::create_with_suffix(plan.io.clone(), &plan.dir, base, plan.config.index_interval_bytes, now_ms, CLEANED_SUFFIX)?;
        for seg in &group {
            stats.bytes_read += seg.size;
            let drop_tombstones = seg.largest_timestamp < tombstone_horizon;
            for_each_batch(seg, cfg.io_buffer_bytes, |raw| {
                if BatchHeader::parse(raw).is_some_and(|h| plan.is_aborted(&h)) {
                    return Ok(ControlFlow::Continue(()));
                }
                if let Some(bytes) = filter_batch(raw, map, drop_tombstones, stats)? {
                    let h = BatchHeader::parse(&bytes).ok_or_else(|| StorageError::Corrupt("cleaner wrote an unparsable batch".into()))?;
                    out.append(&bytes, h.base_offset(), h.last_offset(), h.max_timestamp(), h.last_offset())?;
                    stats.bytes_written += bytes.len() as u64;
                }
                Ok(ControlFlow::Continue(()))
            })?;
        }
        out.seal()?;
        drop(out);
        *current = None;
        done.push(CleanedSegment { base_offset: base, sources: group.iter().map(|s| (s.base_offset, s.size)).collect() });
    }
    Ok(())
}

/// Best-effort removal of one segment's files under `suffix` (an abandoned pass).
pub fn remove_files(io: &dyn FileIo, dir: &Path, base_offset: i64, suffix: &str) {
    for p in Segment::file_paths(dir, base_offset, suffix) {
        match io.remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => tracing::warn!(file = %p.display(), error = %e, "cannot remove cleaner file"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_support::keyed_batch;
    use crate::records::validate::{ValidateConfig, validate};
    use crate::storage::PartitionLog;
    use std::collections::BTreeMap;

    // The same suite runs on the std and the io_uring backend.
    crate::storage::io::on_each_backend! {
    const NOW: i64 = 1_700_000_000_000;

    fn cfg() -> LogConfig {
        LogConfig { segment_bytes: 2_000, index_interval_bytes: 200, cleanup_policy: "compact".into(), ..LogConfig::default() }
    }

    fn open(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::open(io(), &dir.join("t-0"), TopicPartition::new("t", 0), config, 0, 0, true, NOW).expect("open")
    }

    fn new_log(dir: &Path, config: LogConfig) -> PartitionLog {
        PartitionLog::create(io(), &dir.join("t-0"), TopicPartition::new("t", 0), config, NOW).expect("create")
    }

    fn append(log: &mut PartitionLog, mut bytes: Vec<u8>) {
        let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
        log.append(&mut bytes, &v, NOW).expect("append");
        // As the replica manager does once the append is acknowledged.
        log.set_high_watermark(log.log_end_offset());
    }

    /// Every record the log serves from offset 0, as (offset, key, value), checking each batch's
    /// CRC on the way (a re-encoded batch must be as valid as a produced one).
    fn records(log: &PartitionLog) -> Vec<(i64, Option<String>, Option<String>)> {
        let mut out = Vec::new();
        let mut next = 0;
        while next < log.log_end_offset() {
            let r = log.read(next, 1 << 20, i64::MAX).expect("read");
            assert!(!r.bytes.is_empty(), "no progress at {next}");
            let mut at = 0;
            while at < r.bytes.len() {
                let h = BatchHeader::parse(&r.bytes[at..]).expect("header");
                assert_eq!(h.computed_crc(), Some(h.crc()), "batch at offset {} has a bad CRC", h.base_offset());
                for rec in decode(&r.bytes[at..at + h.total_size()]).expect("decode").records {
                    let s = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).expect("utf8"));
                    out.push((rec.offset, s(rec.key), s(rec.value)));
                }
                at += h.total_size();
            }
            next = r.last_offset + 1;
        }
        out
    }

    /// 60 batches of 4 records over 10 keys; key 3 ends as a tombstone. Returns the original
    /// records by offset.
    fn fill(log: &mut PartitionLog, compression: Compression, ts: i64) -> BTreeMap<i64, (Option<String>, Option<String>)> {
        let mut original = BTreeMap::new();
        let mut n = 0i64;
        for b in 0..60 {
            let recs: Vec<(String, Option<String>)> = (0..4)
                .map(|i| {
                    let k = (b * 4 + i) % 10;
                    let v = if k == 3 && b >= 50 { None } else { Some(format!("v{n}-{}", "x".repeat(20))) };
                    n += 1;
                    (format!("k{k}"), v)
                })
                .collect();
            let refs: Vec<(Option<&str>, Option<&str>)> = recs.iter().map(|(k, v)| (Some(k.as_str()), v.as_deref())).collect();
            let base = log.log_end_offset();
            append(log, keyed_batch(&refs, ts, compression, None));
            for (i, (k, v)) in recs.into_iter().enumerate() {
                original.insert(base + i as i64, (Some(k), v));
            }
        }
        original
    }

    fn run(log: &mut PartitionLog, first_dirty: i64, now: i64) -> Option<CleanOutput> {
        let plan = log.plan_clean(first_dirty, now)?;
        let out = clean(&plan, &CleanerConfig::default(), now).expect("clean")?;
        assert!(log.commit_clean(&out, now).expect("commit"));
        Some(out)
    }

    fn check_compacted(log: &PartitionLog, original: &BTreeMap<i64, (Option<String>, Option<String>)>, cleaned_below: i64) {
        let got = records(log);
        let mut latest: BTreeMap<String, i64> = BTreeMap::new();
        for (o, (k, _)) in original {
            latest.insert(k.clone().expect("key"), *o);
        }
        let mut seen_below = std::collections::HashSet::new();
        for (offset, key, value) in &got {
            assert_eq!(original.get(offset), Some(&(key.clone(), value.clone())), "offset {offset} changed");
            let key = key.clone().expect("key");
            if *offset < cleaned_below {
                assert!(seen_below.insert(key.clone()), "key {key} twice in the cleaned range");
                // In the cleaned range only records no later record supersedes remain.
                let later = original.range(offset + 1..cleaned_below).any(|(_, (k, _))| k.as_deref() == Some(key.as_str()));
                assert!(!later, "offset {offset} of {key} was superseded inside the cleaned range");
            }
        }
        // A consumer from the start ends with the latest value of every key.
        let mut view: BTreeMap<String, Option<String>> = BTreeMap::new();
        for (_, k, v) in &got {
            view.insert(k.clone().expect("key"), v.clone());
        }
        for (k, o) in latest {
            assert_eq!(view.get(&k), Some(&original[&o].1), "latest value of {k}");
        }
    }

    #[test]
    fn a_compressed_batch_too_large_to_decode_is_kept_whole_and_drops_nothing_early() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), cfg());
        append(&mut log, keyed_batch(&[(Some("k0"), Some("a")), (Some("k1"), Some("a"))], 5, Compression::None, None));
        // 70 records of 1,000,000 bytes: a few kilobytes of zstd, past the decode bound once
        // decompressed; its first record supersedes k0 at offset 0.
        let value = "x".repeat(1_000_000);
        let keys: Vec<String> = (0..70).map(|i| if i == 0 { "k0".to_string() } else { format!("big{i}") }).collect();
        let big: Vec<(Option<&str>, Option<&str>)> = keys.iter().map(|k| (Some(k.as_str()), Some(value.as_str()))).collect();
        let bytes = keyed_batch(&big, 5, Compression::Zstd, None);
        assert!(bytes.len() < 100_000);
        append(&mut log, bytes);
        append(&mut log, keyed_batch(&[(Some("k1"), Some("b"))], 5, Compression::None, None));
        while log.segment_count() < 5 {
            append(&mut log, keyed_batch(&[(Some("filler"), Some("f"))], 5, Compression::None, None));
        }
        run(&mut log, 0, NOW).expect("a pass ran");
        let got = records(&log);
        let at = |o: i64| got.iter().find(|r| r.0 == o).map(|r| (r.1.clone(), r.2.as_ref().map(String::len)));
        assert_eq!(at(0), Some((Some("k0".into()), Some(1))), "k0 stays: the batch superseding it was not decoded, so not in the key map");
        assert_eq!(at(1), None, "k1 goes: a later decodable batch supersedes it");
        assert_eq!((2..72).filter(|o| at(*o).is_some()).count(), 70, "the large batch is kept whole");
        assert_eq!(at(72), Some((Some("k1".into()), Some(1))));
    }

    #[test]
    fn compaction_keeps_the_latest_record_per_key_with_offsets_unchanged() {
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd, Compression::Gzip, Compression::Snappy] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = new_log(dir.path(), cfg());
            let original = fill(&mut log, compression, NOW);
            let segments_before = log.segment_count();
            assert!(segments_before > 3, "{compression:?}: needs several sealed segments");
            let out = run(&mut log, 0, NOW).expect("due: everything is dirty");
            assert!(out.stats.records_kept < out.stats.records_read, "{compression:?}: {:?}", out.stats);
            assert_eq!(out.stats.tombstones_dropped, 0, "tombstones are young");
            check_compacted(&log, &original, out.next_dirty);
            assert!(log.segment_count() <= segments_before);
            // Clean: nothing is dirty now.
            assert!(log.plan_clean(out.next_dirty, NOW).is_none());
            // The result survives a clean reopen and an unclean one (recovery walks it).
            drop(log);
            let log = open(dir.path(), cfg());
            check_compacted(&log, &original, out.next_dirty);
            drop(log);
            let log = PartitionLog::open(io(), &dir.path().join("t-0"), TopicPartition::new("t", 0), cfg(), 0, 0, false, NOW).expect("open");
            check_compacted(&log, &original, out.next_dirty);
        }
    }

    #[test]
    fn a_range_located_before_a_clean_still_reads_the_replaced_segment_whole() {
        // A fetch located its batches, then the cleaner swapped the segment before the send: the
        // range's open file still holds the old, uncompacted batches.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), cfg());
        fill(&mut log, Compression::None, NOW);
        let range = log.read_range(0, 1 << 20, i64::MAX).expect("range");
        let before = log.read(0, 1 << 20, i64::MAX).expect("read").bytes;
        let out = run(&mut log, 0, NOW).expect("due");
        assert!(out.stats.records_kept < out.stats.records_read);
        assert_ne!(log.read(0, 1 << 20, i64::MAX).expect("read").bytes, before, "the log now serves the cleaned segment");
        let r = range.records.as_ref().expect("records");
        assert_eq!(r.read_bytes().expect("old file still open"), before);
    }

    #[test]
    fn tombstones_go_after_delete_retention_and_keyless_records_always() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig { delete_retention_ms: 1_000, ..cfg() };
        let mut log = new_log(dir.path(), config);
        let old = NOW - 10_000;
        append(&mut log, keyed_batch(&[(Some("a"), Some("1")), (None, Some("keyless")), (Some("b"), Some("2"))], old, Compression::None, None));
        append(&mut log, keyed_batch(&[(Some("a"), None), (Some("c"), Some("3"))], old, Compression::None, None));
        log.roll(NOW).expect("roll");
        append(&mut log, keyed_batch(&[(Some("d"), Some("4"))], NOW, Compression::None, None));
        let out = run(&mut log, 0, NOW).expect("due");
        assert_eq!(out.stats.tombstones_dropped, 1);
        let got: Vec<_> = records(&log).into_iter().map(|(o, k, v)| (o, k.unwrap_or_default(), v.unwrap_or_default())).collect();
        assert_eq!(got, vec![(2, "b".into(), "2".into()), (4, "c".into(), "3".into()), (5, "d".into(), "4".into())]);
        assert_eq!(log.log_start_offset(), 0, "compaction never moves the log start");
    }

    #[test]
    fn a_young_tombstone_stays_and_the_dirty_ratio_decides_when_to_clean_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), cfg());
        fill(&mut log, Compression::None, NOW);
        let out = run(&mut log, 0, NOW).expect("due");
        assert!(records(&log).iter().any(|(_, k, v)| k.as_deref() == Some("k3") && v.is_none()), "the tombstone is kept");
        // The segment that was active is now sealed and dirty: about 3/4 of the cleanable bytes.
        append(&mut log, keyed_batch(&[(Some("k1"), Some("new"))], NOW, Compression::None, None));
        log.roll(NOW).expect("roll");
        let segments = log.segment_count();
        log.update_config(LogConfig { min_cleanable_dirty_ratio: 0.9, ..cfg() });
        assert!(log.plan_clean(out.next_dirty, NOW).is_none(), "below min.cleanable.dirty.ratio");
        log.update_config(cfg());
        let again = run(&mut log, out.next_dirty, NOW).expect("due at 0.5");
        assert!(again.next_dirty > out.next_dirty);
        assert_eq!(records(&log).iter().filter(|(_, k, _)| k.as_deref() == Some("k1")).count(), 1);
        assert!(log.segment_count() < segments, "the small cleaned segments are merged into one");
    }

    #[test]
    fn nothing_is_cleaned_under_delete_policy_or_within_min_compaction_lag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig { cleanup_policy: "delete".into(), ..cfg() });
        fill(&mut log, Compression::None, NOW);
        assert!(log.plan_clean(0, NOW).is_none());
        log.update_config(LogConfig { min_compaction_lag_ms: 60_000, ..cfg() });
        assert!(log.plan_clean(0, NOW).is_none(), "every record is younger than the lag");
        assert!(log.plan_clean(0, NOW + 120_000).is_some());
    }

    #[test]
    fn idempotent_batches_keep_their_producer_and_sequences_when_re_encoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), cfg());
        append(&mut log, keyed_batch(&[(Some("a"), Some("1")), (Some("b"), Some("2")), (Some("c"), Some("3"))], NOW, Compression::Lz4, Some((7, 0, 0))));
        append(&mut log, keyed_batch(&[(Some("a"), Some("4"))], NOW, Compression::Lz4, Some((7, 0, 3))));
        log.roll(NOW).expect("roll");
        append(&mut log, keyed_batch(&[(Some("z"), Some("0"))], NOW, Compression::None, Some((7, 0, 4))));
        run(&mut log, 0, NOW).expect("due");
        let r = log.read(0, 1 << 20, i64::MAX).expect("read");
        let h = BatchHeader::parse(&r.bytes).expect("header");
        assert_eq!((h.base_offset(), h.last_offset(), h.producer_id(), h.base_sequence()), (1, 2, 7, 1));
        assert_eq!(h.compression(), CompressionCodec::Lz4);
        // A retry of the last batch is still a duplicate after the clean and a reopen.
        drop(log);
        let mut log = open(dir.path(), cfg());
        let mut retry = keyed_batch(&[(Some("z"), Some("0"))], NOW, Compression::None, Some((7, 0, 4)));
        let v = validate(&retry, &ValidateConfig::default()).expect("valid");
        assert!(matches!(log.append(&mut retry, &v, NOW), Err(StorageError::DuplicateSequence { .. })));
    }

    #[test]
    fn a_pass_is_dropped_when_retention_changed_the_log_meanwhile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig { cleanup_policy: "compact,delete".into(), retention_ms: 1_000, ..cfg() });
        fill(&mut log, Compression::None, NOW - 10_000);
        let plan = log.plan_clean(0, NOW).expect("due");
        let out = clean(&plan, &CleanerConfig::default(), NOW).expect("clean").expect("output");
        assert!(log.apply_retention(NOW).expect("retention") > 0);
        assert!(!log.commit_clean(&out, NOW).expect("commit"));
        let left: Vec<String> = std::fs::read_dir(dir.path().join("t-0")).expect("ls").map(|e| e.expect("e").file_name().into_string().expect("utf8")).collect();
        assert!(left.iter().all(|n| !n.ends_with(CLEANED_SUFFIX)), "{left:?}");
    }

    #[test]
    fn a_crash_before_the_swap_keeps_the_old_segments_and_after_it_finishes_the_swap() {
        // Before the commit point: .cleaned files are removed at open, the data is as it was.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), cfg());
        let original = fill(&mut log, Compression::None, NOW);
        let plan = log.plan_clean(0, NOW).expect("due");
        let out = clean(&plan, &CleanerConfig::default(), NOW).expect("clean").expect("output");
        let cleaned_log = |base: i64| Segment::file_paths(&dir.path().join("t-0"), base, CLEANED_SUFFIX)[0].clone();
        assert!(out.segments.iter().all(|c| cleaned_log(c.base_offset).exists()), "the pass wrote .cleaned files");
        drop(log);
        let log = PartitionLog::open(io(), &dir.path().join("t-0"), TopicPartition::new("t", 0), cfg(), 0, 0, false, NOW).expect("open");
        assert!(out.segments.iter().all(|c| !cleaned_log(c.base_offset).exists()), "open removed them");
        let all: Vec<_> = records(&log).into_iter().map(|(o, k, v)| (o, (k, v))).collect();
        assert_eq!(all, original.clone().into_iter().collect::<Vec<_>>(), "nothing lost, nothing cleaned");
        drop(log);

        // After the commit point (all files renamed to .swap, old segments partly deleted):
        // the next open finishes the swap.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir2.path(), cfg());
        let original = fill(&mut log, Compression::None, NOW);
        let plan = log.plan_clean(0, NOW).expect("due");
        let out2 = clean(&plan, &CleanerConfig::default(), NOW).expect("clean").expect("output");
        let pdir = dir2.path().join("t-0");
        drop(log);
        for c in &out2.segments {
            for (from, to) in Segment::file_paths(&pdir, c.base_offset, CLEANED_SUFFIX).iter().zip(Segment::file_paths(&pdir, c.base_offset, SWAP_SUFFIX)) {
                std::fs::rename(from, to).expect("rename");
            }
        }
        // The first replaced segment's log file is already gone, the others are still there.
        std::fs::remove_file(Segment::file_paths(&pdir, out2.segments[0].base_offset, "")[0].clone()).expect("rm");
        let log = PartitionLog::open(io(), &pdir, TopicPartition::new("t", 0), cfg(), 0, 0, false, NOW).expect("open");
        check_compacted(&log, &original, out2.next_dirty);
        let left: Vec<String> = std::fs::read_dir(&pdir).expect("ls").map(|e| e.expect("e").file_name().into_string().expect("utf8")).collect();
        assert!(left.iter().all(|n| !n.ends_with(SWAP_SUFFIX) && !n.ends_with(CLEANED_SUFFIX)), "{left:?}");
    }

    #[test]
    fn a_key_map_budget_smaller_than_the_dirty_log_cleans_a_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), cfg());
        let original = fill(&mut log, Compression::None, NOW);
        let plan = log.plan_clean(0, NOW).expect("due");
        let tiny = CleanerConfig { dedupe_buffer_bytes: 1, ..CleanerConfig::default() };
        assert!(clean(&plan, &tiny, NOW).expect("clean").is_none(), "not even one segment fits");
        // Room for the 10 keys of one segment: the pass covers part of the dirty log at most.
        let some = CleanerConfig { dedupe_buffer_bytes: 10 * (3 + KEY_MAP_ENTRY_OVERHEAD_BYTES), ..CleanerConfig::default() };
        let out = clean(&plan, &some, NOW).expect("clean").expect("output");
        assert!(out.next_dirty > plan.first_dirty);
        assert!(log.commit_clean(&out, NOW).expect("commit"));
        check_compacted(&log, &original, out.next_dirty);
    }

    #[test]
    fn aborted_records_go_and_nothing_past_the_last_stable_offset_is_cleaned() {
        use crate::records::batch::test_support::transactional_batch;
        use crate::records::control::{self, ControlType, Marker};
        let dir = tempfile::tempdir().unwrap();
        let mut log = new_log(dir.path(), cfg());
        let marker = |log: &mut PartitionLog, pid| {
            let mut b = control::encode_marker(pid, 0, Marker { control: ControlType::Abort, coordinator_epoch: 0 }, NOW).to_vec();
            let v = validate(&b, &ValidateConfig { allow_control_batches: true, ..ValidateConfig::default() }).unwrap();
            log.append(&mut b, &v, NOW).unwrap();
            log.set_high_watermark(log.log_end_offset());
        };
        append(&mut log, keyed_batch(&[(Some("a"), Some("1"))], NOW, Compression::None, None)); // 0
        append(&mut log, transactional_batch(&[(Some("a"), Some("aborted")), (Some("b"), Some("x"))], NOW, (5, 0, 0))); // 1..=2
        marker(&mut log, 5); // 3
        let filler = "f".repeat(100);
        for i in 0..40 {
            append(&mut log, keyed_batch(&[(Some(&format!("c{}", i % 5)), Some(&filler))], NOW, Compression::None, None));
        }
        let open_at = log.log_end_offset();
        append(&mut log, transactional_batch(&[(Some("a"), Some("open"))], NOW, (6, 0, 0)));
        for i in 0..40 {
            append(&mut log, keyed_batch(&[(Some(&format!("c{}", i % 5)), Some(&filler))], NOW, Compression::None, None));
        }
        assert_eq!(log.last_stable_offset(), open_at);
        let plan = log.plan_clean(0, NOW).expect("due");
        assert!(plan.segments.iter().all(|s| s.next_offset <= open_at), "a segment past the LSO was planned");
        let out = clean(&plan, &CleanerConfig::default(), NOW).unwrap().expect("cleaned");
        assert!(log.commit_clean(&out, NOW).unwrap());
        let got = records(&log);
        let at = |o: i64| got.iter().find(|r| r.0 == o).cloned();
        // The committed "a" stays: the aborted one neither survives nor supersedes it.
        assert_eq!(at(0), Some((0, Some("a".into()), Some("1".into()))));
        assert_eq!((at(1), at(2)), (None, None));
        assert!(at(3).is_some(), "the abort marker is kept");
        assert_eq!(at(open_at).map(|r| r.2), Some(Some("open".into())));
    }
    }
}
