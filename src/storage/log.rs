//! PartitionLog: the segments of one partition, its log start / log end / flushed offsets, append with offset assignment and idempotence checks, roll, read up to a bound, timestamp lookup, truncation and retention. It knows nothing of requests or the high watermark's owner.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;

use super::io::{FileIo, FileRange, IoFile};
use super::producer_state::{self, AppendedBatch, BatchMetadata, CompletedTxn, ProducerStateManager, SequenceCheck};
use super::txn_index::AbortedTxn;
use crate::records::batch::HEADER_SIZE;
use crate::records::control;
use super::recovery;
use super::cleaner;
use super::leader_epoch::{Divergence, LeaderEpochCache};
use super::segment::Segment;
use super::{LogConfig, Result, StorageError, TimestampType, parse_file_name};
use crate::records::RecordsError;
use crate::records::validate::{self, ValidatedBatches};
use crate::types::TopicPartition;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches under LogAppendTime, else -1 (Kafka's produce response).
    pub log_append_time_ms: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    pub log_start_offset: i64,
    pub record_count: i64,
}

/// Whole batches read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSlice {
    /// Whole batches, byte-identical to what is on disk. Empty when nothing is readable.
    pub bytes: Bytes,
    /// Base offset of the first batch (may be below the fetch offset), -1 if empty.
    pub first_offset: i64,
    /// Last offset of the last batch, -1 if empty.
    pub last_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Whole batches located in the log but not read: what Fetch sends file-to-socket. The one read
/// path; [`LogRange::materialize`] turns it into a [`ReadSlice`] for callers that need bytes.
#[derive(Debug, Clone)]
pub struct LogRange {
    /// The batches' place in their segment file; `None` when nothing is readable.
    pub records: Option<FileRange>,
    /// Base offset of the first batch (may be below the fetch offset), -1 if empty.
    pub first_offset: i64,
    /// Last offset of the last batch, -1 if empty.
    pub last_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// The part of the same file the disk should read ahead for this reader
    /// (`fjord.fetch.readahead.bytes`), to be asked for off the partition's lock; `None` when the
    /// reader's window is still mostly there, or it reads near the end of the data.
    pub readahead: Option<FileRange>,
}

impl LogRange {
    /// Bytes of whole batches in the range (0 when empty).
    pub fn len(&self) -> usize {
        self.records.as_ref().map_or(0, |r| r.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the located batches into memory.
    pub fn materialize(self) -> Result<ReadSlice> {
        let bytes = match &self.records {
            Some(r) => r.read_bytes()?,
            None => Bytes::new(),
        };
        Ok(ReadSlice {
            bytes,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        })
    }
}

/// What rolls left unsynced (see `PartitionLog::take_roll_flush`): the sealed segments' log and
/// index files, the producer snapshots, and the directory entries of the files they created.
#[derive(Debug)]
pub struct RollFlush {
    /// (base offset, its log and index files) of each sealed segment not yet durable.
    segments: Vec<(i64, [Arc<dyn IoFile>; 3])>,
    snapshots: Vec<Arc<dyn IoFile>>,
    /// The directory to fsync and the count of directory changes that fsync covers.
    dir: Option<DirSync>,
}

/// A directory fsync owed for files created in it: the `changes` count it covers (see
/// `PartitionLog::dir_changes`).
#[derive(Debug, Clone)]
pub struct DirSync {
    io: Arc<dyn FileIo>,
    path: PathBuf,
    changes: u64,
}

impl DirSync {
    fn sync(&self) -> std::io::Result<()> {
        self.io.sync_dir(&self.path)
    }
}

impl RollFlush {
    /// fdatasync of each file, then the directory fsync; needs no lock (the files are shared
    /// handles, a sealed segment is never appended to, and an fsync of a file deleted meanwhile
    /// is harmless).
    pub fn sync(&self) -> std::io::Result<()> {
        for f in self.segments.iter().flat_map(|(_, files)| files).chain(&self.snapshots) {
            f.sync_data()?;
        }
        self.dir.as_ref().map_or(Ok(()), DirSync::sync)
    }
}

/// What opening the log had to do; tests use it to prove a clean open did not scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenStats {
    pub segments: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
    pub replayed_batches: u64,
    pub producer_snapshot_offset: Option<i64>,
}

/// A partition's read bounds published for readers that must not take its lock (a fetch deciding
/// on an async worker whether it has anything to read before it parks, a refused produce naming
/// the log start): the high watermark, the last stable offset and the log start offset, stored
/// whenever one may have moved, before any waiter is woken.
/// A reader may see them late, never early: a fetch that sees nothing new parks and is woken by
/// the move it missed, and a fetch that sees something reads it under the lock.
#[derive(Debug)]
pub struct PublishedOffsets {
    high_watermark: AtomicI64,
    last_stable_offset: AtomicI64,
    log_start_offset: AtomicI64,
}

impl PublishedOffsets {
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset.load(Ordering::Acquire)
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
}

/// The durable log of one partition. Every method blocks on disk I/O; keep it behind a
/// `std::sync::Mutex` and call it from a thread that may block.
#[derive(Debug)]
pub struct PartitionLog {
    tp: TopicPartition,
    dir: PathBuf,
    config: LogConfig,
    io: Arc<dyn FileIo>,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    /// Everything below this offset is fsynced (Kafka's recovery point).
    recovery_point: i64,
    /// What consumers may read; set by the replica manager once appends are acknowledged.
    high_watermark: i64,
    /// `high_watermark` and the last stable offset for lock-free readers ([`PublishedOffsets`]).
    published: Arc<PublishedOffsets>,
    producers: ProducerStateManager,
    last_flush_ms: i64,
    unflushed_messages: i64,
    leader_epoch: i32,
    /// Which leader epoch wrote which offsets (leader-epoch-checkpoint).
    epochs: LeaderEpochCache,
    /// A roll sealed a segment whose data still needs an fsync (`take_roll_flush`).
    roll_flush_due: bool,
    /// The base offset of the segment the last roll sealed, while its last drop-behind window
    /// is still cached ([`PartitionLog::drop_sealed_tail`]).
    sealed_tail: Option<i64>,
    /// Producer snapshots rolls wrote and nobody fsynced yet.
    unsynced_snapshots: Vec<Arc<dyn IoFile>>,
    /// Files created in the directory so far (by rolls), and how many of them a directory
    /// fsync has made durable: a synced append to a segment whose directory entry could vanish
    /// in a power loss is not durable.
    dir_changes: u64,
    dir_synced: u64,
    /// The furthest end a durable-mode sync covered: (its segment, end offset).
    durable_synced: Option<(i64, i64)>,
    open_stats: OpenStats,
    /// Bumped by every truncation, so a sync taken before one cannot move the recovery point
    /// over data written after it (see [`PartitionLog::sync_target`]).
    truncations: u64,
    /// The newest producer snapshot describes the state at the log end (or the log is empty
    /// from its start): a clean close then writes none. Closing thousands of untouched
    /// partitions wrote and fsynced a snapshot for each.
    snapshot_at_end: bool,
    /// Bumped whenever a sealed segment's bytes change under the same file name (a truncation,
    /// a cleaner swap): a copy of the directory taken before is stale (a move between log dirs).
    rewrites: u64,
}

/// What a durable-mode sync needs, taken under the partition lock and used without it: the
/// active segment's file, the log end offset the sync will cover, the truncation count then,
/// and the directory fsync still owed for a segment a roll created.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    pub file: Arc<dyn IoFile>,
    pub end_offset: i64,
    /// The segment `file` belongs to.
    segment_base: i64,
    truncations: u64,
    dir: Option<DirSync>,
}

impl SyncTarget {
    /// The fsyncs (no lock needed): the directory if a roll created files in it since its last
    /// fsync, then the segment's data. Concurrent syncs of one file share an fdatasync in the
    /// io_uring backend.
    pub fn sync(&self) -> std::io::Result<()> {
        self.dir.as_ref().map_or(Ok(()), DirSync::sync)?;
        self.file.sync_data()
    }
}

impl PartitionLog {
    /// Creates a new empty partition directory and log.
    pub fn create(
        io: Arc<dyn FileIo>,
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Self> {
        io.create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            io.sync_dir(parent)?;
        }
        let log = Self::open(io.clone(), dir, tp, config, 0, 0, true, now_ms)?;
        // The first segment's directory entry must be durable too, or a synced append to it
        // could vanish with the file after a power loss.
        io.sync_dir(dir)?;
        Ok(log)
    }

    /// Opens an existing partition directory. `clean_shutdown` trusts the files; otherwise segments from
    /// the one containing `recovery_point` onwards are validated and a torn tail is cut.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        io: Arc<dyn FileIo>,
        dir: &Path,
        tp: TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset: i64,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Self> {
        recovery::complete_swaps(io.as_ref(), dir)?;
        recovery::clean_stray_files(io.as_ref(), dir)?;
        let mut segments = BTreeMap::new();
        for e in io.list_dir(dir)? {
            if let Some(base) = parse_file_name(&e.name, "log") {
                let seg = Segment::open(
                    io.clone(),
                    dir,
                    base,
                    config.index_interval_bytes,
                    now_ms,
                    false,
                )?;
                segments.insert(base, seg);
            }
        }
        let mut stats = OpenStats {
            segments: segments.len(),
            ..Default::default()
        };
        if !clean_shutdown && !segments.is_empty() {
            let from = segments
                .range(..=recovery_point)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(i64::MIN);
            stats.recovered_segments = segments.range(from..).count();
            stats.truncated_bytes = recovery::recover_log(&mut segments, recovery_point)?;
        }
        // Recovery rebuilt indexes in memory; only the active segment keeps them there.
        let last_base = segments.keys().next_back().copied();
        for (base, seg) in segments.iter_mut() {
            seg.set_active(Some(*base) == last_base)?;
        }
        if segments.is_empty() {
            let base = log_start_offset.max(0);
            segments.insert(
                base,
                Segment::create(io.clone(), dir, base, config.index_interval_bytes, now_ms)?,
            );
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_end_offset = segments
            .values()
            .next_back()
            .map_or(first_base, |s| s.next_offset());
        let log_start_offset = log_start_offset.max(first_base).min(log_end_offset);
        let recovery_point = if clean_shutdown {
            log_end_offset
        } else {
            recovery_point.min(log_end_offset)
        };
        // The cache can be derived again (one leader, epoch 0, since creation): a damaged file
        // is rewritten rather than failing the partition.
        let epochs = LeaderEpochCache::load(io.as_ref(), dir).unwrap_or_else(|e| {
            tracing::warn!(partition = %tp, error = %e, "rewriting an unreadable leader-epoch-checkpoint");
            LeaderEpochCache::default()
        });
        let mut log = Self {
            tp,
            dir: dir.to_path_buf(),
            config,
            io,
            segments,
            log_start_offset,
            log_end_offset,
            recovery_point,
            // A single-replica leader acknowledges everything it holds; a replica manager with followers
            // lowers this right after open.
            high_watermark: log_end_offset,
            published: Arc::new(PublishedOffsets { high_watermark: AtomicI64::new(-1), last_stable_offset: AtomicI64::new(-1), log_start_offset: AtomicI64::new(-1) }),
            producers: ProducerStateManager::new(),
            last_flush_ms: now_ms,
            unflushed_messages: 0,
            leader_epoch: -1,
            epochs,
            roll_flush_due: false,
            sealed_tail: None,
            unsynced_snapshots: Vec::new(),
            dir_changes: 0,
            dir_synced: 0,
            durable_synced: None,
            open_stats: stats,
            truncations: 0,
            snapshot_at_end: false,
            rewrites: 0,
        };
        // A single broker leads every partition from its creation, in epoch 0: the first open
        // records that (Kafka's leader does the same when it takes a partition over).
        // A full disk must not keep the broker from starting: the epoch is kept in memory and
        // written with the next assignment or open.
        if log.epochs.latest_epoch().is_none()
            && let Err(e) = log.epochs.assign(log.io.as_ref(), dir, super::leader_epoch::SINGLE_BROKER_LEADER_EPOCH, log.log_start_offset)
        {
            if !super::io::is_out_of_space(&e) {
                return Err(e.into());
            }
            tracing::warn!(partition = %log.tp, "disk full: the leader epoch checkpoint is written later");
        }
        log.leader_epoch = log.epochs.latest_epoch().unwrap_or(0);
        log.rebuild_producer_state()?;
        log.snapshot_at_end = log.open_stats.producer_snapshot_offset == Some(log.log_end_offset) || log.log_end_offset == log.log_start_offset;
        // Recovered bytes were read back, not fsynced: the recovery point stays where the
        // checkpoint put it (at most the log end) and moves at the next flush, as Kafka's loader
        // does. An fsync of every recovered partition here made a start after kill -9 with 5,000
        // partitions take 10-30 s; the next unclean start validates the same tail again instead.
        log.publish();
        Ok(log)
    }

    /// Loads the newest usable snapshot and replays batch headers from there to the log end.
    fn rebuild_producer_state(&mut self) -> Result<()> {
        producer_state::delete_snapshots_after(self.io.as_ref(), &self.dir, self.log_end_offset)?;
        let (from, state) = match ProducerStateManager::load_latest(
            self.io.as_ref(),
            &self.dir,
            self.log_end_offset,
        )? {
            Some((off, s)) => {
                self.open_stats.producer_snapshot_offset = Some(off);
                (off, s)
            }
            None => {
                self.open_stats.producer_snapshot_offset = None;
                (self.log_start_offset, ProducerStateManager::new())
            }
        };
        self.producers = state;
        let mut replayed = 0u64;
        let start_base = self
            .segments
            .range(..=from)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        let mut aborted: Vec<(i64, CompletedTxn)> = Vec::new();
        for seg in self.segments.range(start_base..).map(|(_, s)| s) {
            let (_, pos) = seg.offset_index_lookup(from)?;
            let producers = &mut self.producers;
            let mut failed = None;
            seg.scan_headers(pos as u64, |at, h| {
                if h.base_offset() >= from {
                    let marker = if h.is_control() {
                        match seg.read(at + HEADER_SIZE as u64, 64) {
                            Ok(b) => control::decode_marker(&b),
                            Err(e) => {
                                failed = Some(e);
                                return ControlFlow::Break(());
                            }
                        }
                    } else {
                        None
                    };
                    if let Some(t) = producers.replay(&h, marker).filter(|t| t.aborted) {
                        aborted.push((seg.base_offset(), t));
                    }
                    replayed += 1;
                }
                ControlFlow::Continue(())
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        // Markers past the last fsync may have written their index entry or not: add what is
        // missing (Kafka rebuilds the transaction index of recovered segments the same way).
        for (base, t) in aborted {
            let io = self.io.clone();
            if let Some(seg) = self.segments.get_mut(&base)
                && !seg.txn_index.contains(t.producer_id, t.last_offset)
            {
                let lso = self.producers.first_unstable_offset().unwrap_or(self.log_end_offset).min(self.log_end_offset);
                seg.txn_index.append(io.as_ref(), AbortedTxn { producer_id: t.producer_id, first_offset: t.first_offset, last_offset: t.last_offset, last_stable_offset: lso })?;
            }
        }
        self.open_stats.replayed_batches = replayed;
        Ok(())
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// Takes effect for later appends, rolls and retention runs.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    /// Offsets below this are fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    /// The high watermark: reads for consumers pass it as `upper_bound`.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// Moves the high watermark, clamped to [log start, log end].
    /// What read_committed consumers may read: the high watermark, or the first offset of the
    /// oldest open transaction when that is lower.
    pub fn last_stable_offset(&self) -> i64 {
        self.producers.first_unstable_offset().map_or(self.high_watermark, |o| o.min(self.high_watermark))
    }

    /// The aborted transactions whose records may lie in `from..upper` (a fetch's range): the
    /// entries of the segment holding `from` and every later one, as Kafka collects them.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let start = self.segments.range(..=from).next_back().map(|(b, _)| *b).unwrap_or(i64::MIN);
        self.segments
            .range(start..)
            .flat_map(|(_, s)| s.txn_index.entries().iter())
            .filter(|a| a.last_offset >= from && a.first_offset < upper)
            .copied()
            .collect()
    }

    /// Records an aborted transaction in the active segment's index, where its marker went.
    /// Records an aborted transaction in the active segment's `.txnindex`. Readers use the
    /// in-memory entry at once; should the file write fail (a full disk), the entry is written
    /// with the segment's next sync, and recovery rebuilds the index from the log anyway.
    fn index_aborted(&mut self, txn: CompletedTxn, end: i64) {
        let lso = self.producers.first_unstable_offset().unwrap_or(end).min(end);
        let io = self.io.clone();
        let entry = AbortedTxn { producer_id: txn.producer_id, first_offset: txn.first_offset, last_offset: txn.last_offset, last_stable_offset: lso };
        if let Err(e) = self.active().txn_index.append(io.as_ref(), entry) {
            tracing::warn!(partition = %self.tp, error = %e, "cannot write an aborted transaction's index entry yet; it is kept in memory");
        }
    }

    pub fn set_high_watermark(&mut self, offset: i64) {
        self.high_watermark = offset.clamp(self.log_start_offset, self.log_end_offset);
        self.publish();
    }
    /// See the field: how many times sealed segments changed in place.
    pub fn rewrites(&self) -> u64 {
        self.rewrites
    }
    /// The active segment's base offset and the bytes of whole batches in its `.log` file: what
    /// a reader without the lock may copy (the file only grows past it, unless a truncation
    /// counts a rewrite).
    pub fn active_segment_size(&self) -> (i64, u64) {
        self.segments.iter().next_back().map_or((self.log_end_offset, 0), |(b, s)| (*b, s.size()))
    }
    /// The base offsets of the sealed segments (every segment but the active one).
    pub fn sealed_segment_bases(&self) -> Vec<i64> {
        let n = self.segments.len().saturating_sub(1);
        self.segments.keys().take(n).copied().collect()
    }
    /// Carries what lives only in memory over from `old`, the same partition opened from
    /// another directory (a move between log dirs): the high watermark, the leader epoch in
    /// force, the config, and the published read bounds that lock-free readers already hold.
    pub fn take_over(&mut self, old: &PartitionLog) {
        self.config = old.config.clone();
        self.leader_epoch = old.leader_epoch;
        self.last_flush_ms = old.last_flush_ms;
        // Syncs and roll flushes taken on `old` may complete on this log: its counters go on
        // from `old`'s, every file here being fsynced already.
        self.truncations = old.truncations;
        self.rewrites = old.rewrites;
        self.dir_changes = old.dir_changes;
        self.dir_synced = old.dir_changes;
        self.high_watermark = old.high_watermark.clamp(self.log_start_offset, self.log_end_offset);
        self.published = old.published.clone();
        self.publish();
    }
    /// The read bounds for readers that do not take this log's lock.
    pub fn published(&self) -> Arc<PublishedOffsets> {
        self.published.clone()
    }
    /// Stores the high watermark, last stable offset and log start offset for
    /// [`PublishedOffsets`] readers; called wherever one may have moved.
    fn publish(&self) {
        self.published.log_start_offset.store(self.log_start_offset, Ordering::Release);
        self.published.high_watermark.store(self.high_watermark, Ordering::Release);
        self.published.last_stable_offset.store(self.last_stable_offset(), Ordering::Release);
    }
    pub fn open_stats(&self) -> OpenStats {
        self.open_stats
    }
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }
    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`, see
    /// [`ProducerStateManager::remove_expired_producers`]); no I/O. The next snapshot (roll or
    /// close) is written without them.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let removed = self.producers.remove_expired_producers(now_ms, expiration_ms);
        if removed > 0 {
            self.snapshot_at_end = false;
        }
        removed
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }
    /// The epoch of this partition's leader, stamped on every appended batch.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The latest epoch in the leader-epoch cache (what a follower asks its leader about).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch: (the largest known epoch <= `epoch`, the end offset of it).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    /// Where a follower cuts this log after its leader's OffsetForLeaderEpoch answer for
    /// [`PartitionLog::latest_epoch`]; see [`LeaderEpochCache::divergence`].
    pub fn divergence(&self, leader_epoch: i32, leader_end: i64) -> Divergence {
        self.epochs.divergence(self.log_end_offset, self.high_watermark(), leader_epoch, leader_end)
    }

    /// Stamped into every appended batch's partitionLeaderEpoch when >= 0.
    pub fn set_leader_epoch(&mut self, epoch: i32) {
        self.leader_epoch = epoch;
    }

    fn active(&mut self) -> &mut Segment {
        // open() and truncate_to() always leave at least one segment.
        self.segments
            .values_mut()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    /// The active segment, handed the settings an append uses first: handed over with each
    /// append, so a config change and every way a segment becomes active (roll, open,
    /// truncation) get the current values.
    fn active_for_append(&mut self) -> &mut Segment {
        let (step_bytes, segment_bytes) = (self.config.preallocate_step_bytes, self.config.segment_bytes);
        let (writeback_step, drop_behind) = (self.config.writeback_step_bytes, self.config.drop_behind_bytes);
        let active = self.active();
        active.set_preallocation(step_bytes, segment_bytes);
        active.set_writeback(writeback_step, drop_behind);
        active
    }

    /// The timestamp a roll by segment.ms compares: the append's, or now under LogAppendTime.
    fn incoming_timestamp(&self, validated: &ValidatedBatches, now_ms: i64) -> i64 {
        match self.config.message_timestamp_type {
            TimestampType::LogAppendTime => now_ms,
            TimestampType::CreateTime => validated.max_timestamp,
        }
    }

    /// Appends validated batches (from records::validate::validate on the same bytes). Offsets, and the
    /// timestamp under LogAppendTime, are written into `batches` in place; the bytes then go to disk with
    /// one write. A duplicate of a recent idempotent batch returns `DuplicateSequence` with the original
    /// offsets and appends nothing.
    pub fn append(&mut self, batches: &mut [u8], validated: &ValidatedBatches, now_ms: i64) -> Result<AppendInfo> {
        let appended = self.append_parts(batches, &[], validated, now_ms);
        // A marker may have closed a transaction: the last stable offset moved.
        self.publish();
        appended
    }

    /// As `append`, for batches the caller cannot change (a produce request's bytes): a single
    /// data batch of a CreateTime topic goes to disk as a rewritten copy of its 61-byte header
    /// plus the records untouched, so the records are never copied; anything else (LogAppendTime
    /// rewrites the CRC over the whole batch, markers are read back) is copied whole first.
    pub fn append_shared(&mut self, records: &[u8], validated: &ValidatedBatches, now_ms: i64) -> Result<AppendInfo> {
        if self.header_only_rewrite(validated) && records.len() > HEADER_SIZE {
            let mut head = [0u8; HEADER_SIZE];
            head.copy_from_slice(&records[..HEADER_SIZE]);
            let appended = self.append_parts(&mut head, &records[HEADER_SIZE..], validated, now_ms);
            self.publish();
            return appended;
        }
        let appended = self.append_parts(&mut records.to_vec(), &[], validated, now_ms);
        self.publish();
        appended
    }

    /// Whether an append of these batches changes nothing past their first header.
    fn header_only_rewrite(&self, validated: &ValidatedBatches) -> bool {
        validated.batches.len() == 1 && !validated.has_control && self.config.message_timestamp_type == TimestampType::CreateTime
    }

    /// The append: `batches` is written into (offsets, epoch, LogAppendTime); `tail`, when not
    /// empty, is the rest of a single batch whose header `batches` is (see `append_shared`).
    fn append_parts(&mut self, batches: &mut [u8], tail: &[u8], validated: &ValidatedBatches, now_ms: i64) -> Result<AppendInfo> {
        let split_ok = tail.is_empty() || (batches.len() == HEADER_SIZE && self.header_only_rewrite(validated));
        if validated.batches.is_empty() || validated.total_bytes != batches.len() + tail.len() || !split_ok {
            return Err(RecordsError::InvalidRecord {
                position: 0,
                reason: "append without validated batches",
            }
            .into());
        }
        if let SequenceCheck::Duplicate {
            first_offset,
            last_offset,
        } = self.producers.check(&validated.batches)?
        {
            return Err(StorageError::DuplicateSequence {
                base_offset: first_offset,
                last_offset,
            });
        }
        let incoming_timestamp = self.incoming_timestamp(validated, now_ms);
        self.maybe_roll(validated.total_bytes as u64, validated.offset_count, incoming_timestamp, now_ms)?;

        let base_offset = self.log_end_offset;
        let last_offset = validate::assign_offsets(batches, base_offset);
        debug_assert_eq!(last_offset, base_offset + validated.offset_count - 1);
        if self.leader_epoch >= 0 {
            validate::set_leader_epoch(batches, self.leader_epoch);
        }
        let (log_append_time_ms, max_timestamp, offset_of_max_timestamp) =
            match self.config.message_timestamp_type {
                TimestampType::LogAppendTime => {
                    validate::apply_log_append_time(batches, now_ms);
                    (now_ms, now_ms, base_offset)
                }
                TimestampType::CreateTime => (
                    -1,
                    validated.max_timestamp,
                    base_offset + validated.max_timestamp_offset_delta,
                ),
            };
        // The time index names the last offset of the batch holding the max timestamp, as Kafka's.
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let time_index_offset = shallow_offset_of_max_timestamp(validated, log_append_time, base_offset, last_offset);
        self.active_for_append().append_parts(
            batches,
            tail,
            base_offset,
            last_offset,
            max_timestamp,
            time_index_offset,
        )?;
        // The batches are in the log whole from here on: nothing below may fail the append
        // (its offsets are taken, and an error would have the producer resend them).
        self.log_end_offset = last_offset + 1;
        self.snapshot_at_end = false;
        self.drop_sealed_tail();

        let (mut first, mut position) = (base_offset, 0usize);
        let mut completed = Vec::new();
        for b in &validated.batches {
            let last = first + b.last_offset_delta as i64;
            let marker = if b.is_control { batches.get(position + HEADER_SIZE..position + b.size_bytes).and_then(control::decode_marker) } else { None };
            let done = self.producers.update(&AppendedBatch {
                producer_id: b.producer_id,
                epoch: b.producer_epoch,
                is_transactional: b.is_transactional,
                marker,
                is_control: b.is_control,
                // What the batch header now says, as a replay of the log would see it.
                max_timestamp: if log_append_time_ms >= 0 { log_append_time_ms } else { b.max_timestamp },
                meta: BatchMetadata { first_seq: b.base_sequence, last_seq: b.last_sequence, first_offset: first, last_offset: last },
            });
            completed.extend(done);
            first = last + 1;
            position += b.size_bytes;
        }
        for txn in completed.into_iter().filter(|t| t.aborted) {
            self.index_aborted(txn, last_offset + 1);
        }
        self.unflushed_messages += validated.record_count;
        if self.unflushed_messages >= self.config.flush_interval_messages
            || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms
        {
            self.flush(now_ms)?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms,
            max_timestamp,
            offset_of_max_timestamp,
            log_start_offset: self.log_start_offset,
            record_count: validated.record_count,
        })
    }

    /// A follower's append of batches fetched from the leader: offsets, leader epochs and
    /// timestamps are kept as the leader wrote them (only framing, CRCs and growing offsets are
    /// checked, [`validate::validate_replicated`]); producer state follows the batches without
    /// sequence checks, as Kafka's appendAsFollower; each new leader epoch is recorded where its
    /// first batch starts. Batches go to the segment one by one, so each gets its own index
    /// entry as on the leader. A failure midway keeps the whole batches before it. `None` when
    /// the bytes hold no whole batch.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<Option<AppendInfo>> {
        let replicated = validate::validate_replicated(records, self.log_end_offset)?;
        let (Some(first), Some(last)) = (replicated.batches.first().copied(), replicated.batches.last().copied()) else {
            return Ok(None);
        };
        let max_timestamp = replicated.batches.iter().map(|b| b.summary.max_timestamp).max().unwrap_or(-1);
        let appended = self.append_replicated(records, &replicated, max_timestamp, now_ms);
        self.publish();
        appended?;
        let max = replicated.batches.iter().max_by_key(|b| (b.summary.max_timestamp, std::cmp::Reverse(b.base_offset))).copied().unwrap_or(last);
        Ok(Some(AppendInfo {
            base_offset: first.base_offset,
            last_offset: last.last_offset,
            log_append_time_ms: -1,
            max_timestamp,
            offset_of_max_timestamp: max.base_offset,
            log_start_offset: self.log_start_offset,
            record_count: replicated.record_count,
        }))
    }

    fn append_replicated(&mut self, records: &[u8], replicated: &validate::ReplicatedBatches, max_timestamp: i64, now_ms: i64) -> Result<()> {
        let (Some(first), Some(last)) = (replicated.batches.first(), replicated.batches.last()) else {
            return Ok(());
        };
        self.maybe_roll(replicated.bytes as u64, last.last_offset + 1 - first.base_offset, max_timestamp, now_ms)?;
        self.snapshot_at_end = false;
        for b in &replicated.batches {
            if b.leader_epoch >= 0 && self.epochs.latest_epoch().is_none_or(|e| e < b.leader_epoch) {
                self.epochs.assign(self.io.as_ref(), &self.dir, b.leader_epoch, b.base_offset)?;
            }
            let bytes = &records[b.position..b.position + b.summary.size_bytes];
            self.active_for_append().append_parts(bytes, &[], b.base_offset, b.last_offset, b.summary.max_timestamp, b.last_offset)?;
            self.log_end_offset = b.last_offset + 1;
            self.drop_sealed_tail();
            let marker = if b.summary.is_control { bytes.get(HEADER_SIZE..).and_then(control::decode_marker) } else { None };
            let completed = self.producers.update(&AppendedBatch {
                producer_id: b.summary.producer_id,
                epoch: b.summary.producer_epoch,
                is_transactional: b.summary.is_transactional,
                marker,
                is_control: b.summary.is_control,
                max_timestamp: b.summary.max_timestamp,
                meta: BatchMetadata { first_seq: b.summary.base_sequence, last_seq: b.summary.last_sequence, first_offset: b.base_offset, last_offset: b.last_offset },
            });
            for txn in completed.into_iter().filter(|t| t.aborted) {
                self.index_aborted(txn, b.last_offset + 1);
            }
        }
        self.unflushed_messages += replicated.record_count;
        if self.unflushed_messages >= self.config.flush_interval_messages || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms {
            self.flush(now_ms)?;
        }
        Ok(())
    }

    /// Records that `epoch` leads from the log end on (this broker became the partition's leader
    /// in it) and stamps it on the batches appended from now on.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<()> {
        self.leader_epoch = epoch;
        self.epochs.assign(self.io.as_ref(), &self.dir, epoch, self.log_end_offset)?;
        Ok(())
    }

    /// Rolls before an append that would overflow segment.bytes, comes more than segment.ms (less
    /// the segment's jitter) after the segment's first batch (timed by record timestamps, as Kafka:
    /// `incoming_timestamp` is the append's max timestamp), finds an index full (segment.index.bytes),
    /// or would push a relative offset or a file position past i32::MAX (Kafka's limits for index entries).
    fn maybe_roll(&mut self, append_bytes: u64, offset_count: i64, incoming_timestamp: i64, now_ms: i64) -> Result<()> {
        if self.active().is_empty() {
            return Ok(());
        }
        let waited_ms = self.active().time_waited_for_roll_ms(now_ms, incoming_timestamp)?;
        if self.roll_due(append_bytes, offset_count, waited_ms) {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// `maybe_roll`'s test, given how long the active (non-empty) segment has waited for a roll.
    fn roll_due(&self, append_bytes: u64, offset_count: i64, waited_ms: i64) -> bool {
        let Some(active) = self.segments.values().next_back() else { return false };
        let too_big = active.size() + append_bytes > self.config.segment_bytes;
        let too_old = waited_ms > self.config.segment_ms.saturating_sub(self.config.roll_jitter_ms(active.base_offset()));
        let index_full = active.indexes_full(self.config.segment_index_bytes);
        let offsets_overflow = self.log_end_offset + offset_count - 1 - active.base_offset() > i32::MAX as i64;
        // Index entries hold u32 positions; Kafka caps segment.bytes at 2 GiB for the same reason.
        let positions_overflow = active.size() + append_bytes > i32::MAX as u64;
        too_big || too_old || index_full || offsets_overflow || positions_overflow
    }

    /// Whether `append_shared` of these batches could wait for the disk: a roll (files created,
    /// the old segment sealed), anything the active segment's `append_would_wait` names, or the
    /// drop of a sealed segment's last window (`drop_sealed_tail`). When
    /// not, the append is one page-cache write of fewer than `io::NO_WAIT_WRITE_MAX_BYTES` (and,
    /// when an index entry is due, one small write into each index's tail page) and
    /// bookkeeping in memory, which an async worker may make itself (`api::produce::try_now`).
    /// Call it under the same lock as the append.
    pub fn append_would_wait(&mut self, validated: &ValidatedBatches, now_ms: i64) -> bool {
        let incoming_timestamp = self.incoming_timestamp(validated, now_ms);
        let active = self.active_for_append();
        let bytes = validated.total_bytes as u64;
        if active.append_would_wait(bytes) {
            return true;
        }
        let active_end = active.size() + bytes;
        if self.sealed_tail_due(active_end) {
            return true;
        }
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        // Without the segment's first timestamp in memory, finding it reads the segment.
        match active.time_waited_for_roll_cached(now_ms, incoming_timestamp) {
            Some(waited_ms) => self.roll_due(bytes, validated.offset_count, waited_ms),
            None => true,
        }
    }

    /// Seals the active segment, snapshots producer state at the log end and starts a new segment there.
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        let leo = self.log_end_offset;
        if self.segments.contains_key(&leo) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        // All or nothing, so a full disk leaves the log as it was and the next append simply
        // tries again: the new segment's files first (nothing else has changed if they cannot be
        // made), then everything that can fail on the old one, and only then the switch.
        let seg = match Segment::create(self.io.clone(), &self.dir, leo, self.config.index_interval_bytes, now_ms) {
            Ok(seg) => seg,
            Err(e) => {
                Segment::remove_files(self.io.as_ref(), &self.dir, leo);
                return Err(e.into());
            }
        };
        if let Err(e) = self.seal_for_roll(leo) {
            if let Err(rm) = seg.delete() {
                tracing::warn!(partition = %self.tp, base_offset = leo, error = %rm, "cannot remove the segment of a failed roll");
            }
            return Err(e);
        }
        self.dir_changes += 1;
        self.sealed_tail = self.segments.keys().next_back().copied();
        self.segments.insert(leo, seg);
        self.roll_flush_due = true;
        tracing::debug!(partition = %self.tp, base_offset = leo, elapsed_us = started.elapsed().as_micros() as u64, "rolled segment");
        Ok(())
    }

    /// Whether the segment the last roll sealed still holds a drop-behind window's worth of cached
    /// pages that an active segment of `active_end` bytes has left that far behind.
    fn sealed_tail_due(&self, active_end: u64) -> bool {
        let behind = self.config.drop_behind_bytes;
        self.sealed_tail.is_some() && self.config.writeback_step_bytes != 0 && behind != 0 && active_end >= behind
    }

    /// Drop-behind across a roll. The active segment drops its pages `drop.behind` bytes behind
    /// its end, so at a roll the sealed segment's last window is still cached; once the new
    /// active segment is a window long, those pages are as far behind the end of the log as any
    /// other dropped page, and they go too. Without this every roll left a window of the page
    /// cache behind (256 MiB per 1 GiB segment by default), so the page cache still grew with
    /// the log, by a quarter of what it was written. The roll's flush has written them by then;
    /// a page still dirty stays. A hint, as every drop.
    fn drop_sealed_tail(&mut self) {
        let active_end = self.active().size();
        if !self.sealed_tail_due(active_end) {
            return;
        }
        let active_base = self.segments.keys().next_back().copied();
        if let Some(base) = self.sealed_tail.take()
            && Some(base) != active_base
            && let Some(sealed) = self.segments.get_mut(&base)
        {
            sealed.drop_cached_tail();
        }
    }

    /// The old active segment's part of a roll to `leo`: its final index entries and the producer
    /// snapshot at `leo`. Nothing here waits for the disk. The sealed segment's data and indexes,
    /// the snapshot and the directory entries are fsynced after the roll, off the lock
    /// (`take_roll_flush`), as Kafka flushes a rolled segment from its scheduler: an fsync of a
    /// whole segment inside an append stalled produce for seconds, and the index, snapshot and
    /// directory fsyncs still cost tens of milliseconds. On failure the segment is still active
    /// and resident (an extra time index entry for its max timestamp is harmless).
    fn seal_for_roll(&mut self, leo: i64) -> Result<()> {
        let sealed = self.active();
        let already_durable = !sealed.is_dirty();
        sealed.seal_unsynced()?;
        if already_durable {
            // A full flush synced its data and the recovery point may already be past it, so
            // the final time index entry cannot wait for the roll flush, which will not include
            // this segment (rare: a flush at the exact end of a segment).
            sealed.sync_indexes()?;
        }
        let snapshot = self.producers.write_snapshot_unsynced(self.io.as_ref(), &self.dir, leo)?;
        self.unsynced_snapshots.push(snapshot);
        self.snapshot_at_end = true;
        let sealed = self.active();
        if already_durable {
            sealed.release_preallocation();
        }
        // The entries were written by seal_unsynced: eviction only drops the memory.
        sealed.set_active(false)?;
        Ok(())
    }

    /// The fsyncs a roll left to do, once per roll: the sealed segments below the active one
    /// that are not yet durable (log and indexes), the snapshots, and the directory. None when
    /// no roll happened since the last call. Run `RollFlush::sync` without the log's lock, then
    /// `complete_roll_flush`.
    pub fn take_roll_flush(&mut self) -> Option<RollFlush> {
        if !std::mem::take(&mut self.roll_flush_due) {
            return None;
        }
        let active = *self.segments.keys().next_back()?;
        let segments: Vec<(i64, [Arc<dyn IoFile>; 3])> =
            self.segments.range(..active).filter(|(_, s)| s.is_dirty()).map(|(b, s)| (*b, s.unsynced_files())).collect();
        let snapshots = std::mem::take(&mut self.unsynced_snapshots);
        let dir = self.dir_sync_owed();
        (!segments.is_empty() || !snapshots.is_empty() || dir.is_some()).then_some(RollFlush { segments, snapshots, dir })
    }

    /// After `RollFlush::sync`: the segments are clean and hold no blocks reserved past their
    /// end, the directory entries it covered are durable, and the recovery point moves as far
    /// as the syncs now allow. The reserve is given back here, under the lock but after the
    /// segment's fdatasync, rather than in the roll: the ftruncate waits for the journal commit
    /// that fsync was part of, and a sealed segment may be active again after a truncation.
    pub fn complete_roll_flush(&mut self, done: &RollFlush) {
        let active = self.segments.keys().next_back().copied();
        for (base, _) in &done.segments {
            if let Some(seg) = self.segments.get_mut(base) {
                seg.mark_synced();
                if Some(*base) != active {
                    seg.release_preallocation();
                }
            }
        }
        if let Some(d) = &done.dir {
            self.dir_synced = self.dir_synced.max(d.changes);
        }
        self.advance_recovery_point();
    }

    /// For a full flush or close: fsyncs the snapshots and the directory entries rolls left
    /// unsynced (their segments are synced by the caller).
    fn sync_what_rolls_left(&mut self) -> Result<()> {
        for snapshot in std::mem::take(&mut self.unsynced_snapshots) {
            snapshot.sync_data()?;
        }
        if let Some(d) = self.dir_sync_owed() {
            d.sync()?;
            self.dir_synced = d.changes;
        }
        Ok(())
    }

    /// The directory fsync owed for files rolls created since the last one, if any.
    fn dir_sync_owed(&self) -> Option<DirSync> {
        (self.dir_changes > self.dir_synced).then(|| DirSync { io: self.io.clone(), path: self.dir.clone(), changes: self.dir_changes })
    }

    /// Reads whole batches starting with the one containing `fetch_offset`, up to `max_bytes` (but at
    /// least one batch), and only batches entirely below `upper_bound` (the high watermark).
    pub fn read(&self, fetch_offset: i64, max_bytes: usize, upper_bound: i64) -> Result<ReadSlice> {
        self.read_range(fetch_offset, max_bytes, upper_bound)?.materialize()
    }

    /// Locates what [`PartitionLog::read`] would return without reading it: the segment file, the
    /// position and the length of those whole batches.
    pub fn read_range(&self, fetch_offset: i64, max_bytes: usize, upper_bound: i64) -> Result<LogRange> {
        if fetch_offset < self.log_start_offset || fetch_offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: fetch_offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        let mut out = LogRange {
            records: None,
            first_offset: -1,
            last_offset: -1,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
            readahead: None,
        };
        let upper = upper_bound.min(self.log_end_offset);
        if fetch_offset >= upper {
            return Ok(out);
        }
        let from = self
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        for seg in self.segments.range(from..).map(|(_, s)| s) {
            if let Some(r) = seg.locate_batches(fetch_offset, max_bytes, upper)? {
                out.records = Some(FileRange { file: seg.log_file().clone(), position: r.position, len: r.len });
                out.readahead = seg
                    .readahead_after(r.position + r.len as u64, self.config.readahead_bytes)
                    .map(|(position, len)| FileRange { file: seg.log_file().clone(), position, len: len as usize });
                out.first_offset = r.first_offset;
                out.last_offset = r.last_offset;
                return Ok(out);
            }
            if !seg.is_empty() && seg.next_offset() > fetch_offset {
                // The batch holding fetch_offset exists but crosses the upper bound. (An empty
                // segment, or one whose tail compaction removed, holds nothing at or after
                // fetch_offset: the next segment may.)
                break;
            }
        }
        Ok(out)
    }

    /// ListOffsets by timestamp: the first record at or after `timestamp`, as (offset, timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        for seg in self.segments.values() {
            if seg.next_offset() <= self.log_start_offset || seg.max_timestamp() < timestamp {
                continue;
            }
            if let Some(found) = seg.find_offset_by_timestamp(timestamp, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets -3 (MAX_TIMESTAMP): the largest timestamp and the offset of the first record
    /// carrying it; None for a log without timestamps.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let Some(seg) = self
            .segments
            .values()
            .filter(|s| s.max_timestamp() >= 0 && s.next_offset() > self.log_start_offset)
            .max_by_key(|s| (s.max_timestamp(), -s.base_offset()))
        else {
            return Ok(None);
        };
        let ts = seg.max_timestamp();
        Ok(Some(
            seg.find_offset_by_timestamp(ts, self.log_start_offset)?
                .map_or((ts, seg.offset_of_max_timestamp()), |(o, t)| (t, o)),
        ))
    }

    /// Removes every batch with an offset >= `offset` (a batch containing it goes whole), then
    /// rebuilds producer state from the snapshots that are still valid.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        if offset == self.log_end_offset {
            // Nothing to cut, but epochs that begin at the end (led without a record) go, as
            // Kafka's truncation forgets them: a follower settling its divergence needs that.
            self.epochs.truncate_from_end(self.io.as_ref(), &self.dir, self.log_end_offset)?;
            return Ok(());
        }
        if offset > self.log_end_offset {
            return Ok(());
        }
        self.truncations += 1;
        self.rewrites += 1;
        self.snapshot_at_end = false;
        self.durable_synced = None;
        // Segments starting at or after `offset` hold nothing that survives.
        let doomed: Vec<i64> = self.segments.range(offset..).map(|(b, _)| *b).collect();
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete()?;
            }
        }
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.set_active(true)?;
            seg.truncate_to(offset)?;
        }
        if self.segments.is_empty() {
            let seg = Segment::create(
                self.io.clone(),
                &self.dir,
                offset,
                self.config.index_interval_bytes,
                now_ms,
            )?;
            self.segments.insert(offset, seg);
        }
        self.log_end_offset = self
            .segments
            .values()
            .next_back()
            .map_or(offset, Segment::next_offset);
        self.log_start_offset = self.log_start_offset.min(self.log_end_offset);
        self.recovery_point = self.recovery_point.min(self.log_end_offset);
        self.high_watermark = self.high_watermark.min(self.log_end_offset);
        // Epochs that began in what was cut are forgotten (a follower truncating a divergent
        // tail); the leader epoch stamped on new appends stays what the partition says.
        let epochs = self.epochs.truncate_from_end(self.io.as_ref(), &self.dir, self.log_end_offset);
        let rebuilt = self.rebuild_producer_state();
        self.publish();
        epochs?;
        rebuilt
    }

    /// fsyncs every segment with unsynced appends and moves the recovery point to the log end.
    pub fn flush(&mut self, now_ms: i64) -> Result<()> {
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        for seg in self.segments.range_mut(from..).map(|(_, s)| s) {
            seg.flush()?;
        }
        self.sync_what_rolls_left()?;
        self.recovery_point = self.log_end_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// Durable mode, step 1 (under the partition lock): what to fdatasync so that everything
    /// appended now is durable. Only the active segment's `.log` file: in durable mode every
    /// acks=all append to an older segment was synced before it was answered (the rest of a
    /// sealed segment is synced by its roll flush), and indexes need no sync because recovery
    /// rebuilds them for the segment holding the recovery point.
    pub fn sync_target(&self) -> SyncTarget {
        let active = self.segments.values().next_back().expect("a partition log always has an active segment");
        SyncTarget {
            file: active.log_file().clone(),
            end_offset: self.log_end_offset,
            segment_base: active.base_offset(),
            truncations: self.truncations,
            dir: self.dir_sync_owed(),
        }
    }

    /// Durable mode, step 3 (under the lock again, after `target.sync()` succeeded
    /// without it): moves the recovery point to the synced end. Concurrent syncs may finish in
    /// any order, so it only grows; a truncation in between voids the sync (the data it covered
    /// may be gone and new unsynced data may sit below its end). The segment stays marked dirty,
    /// so a later `flush` still syncs its indexes. A sealed segment whose roll flush has not
    /// finished yet holds the recovery point below it: the point promises that everything before
    /// it is durable.
    pub fn mark_synced(&mut self, target: &SyncTarget) {
        if let Some(d) = &target.dir {
            self.dir_synced = self.dir_synced.max(d.changes);
        }
        if target.truncations != self.truncations {
            return;
        }
        let end = target.end_offset.min(self.log_end_offset);
        if self.durable_synced.is_none_or(|(_, e)| e < end) {
            self.durable_synced = Some((target.segment_base, end));
        }
        self.advance_recovery_point();
    }

    /// Moves the recovery point as far as the syncs allow. A sealed segment that is not dirty is
    /// durable (a roll flush, a full flush or the open synced it), so everything below the first
    /// dirty sealed segment, or below the active one, is; a durable sync reaches on to its end
    /// when nothing before its segment is dirty.
    fn advance_recovery_point(&mut self) {
        let first_dirty = self.segments.iter().rev().skip(1).filter(|(_, s)| s.is_dirty()).map(|(b, _)| *b).last();
        let active = self.segments.keys().next_back().copied().unwrap_or(self.log_end_offset);
        let mut end = first_dirty.unwrap_or(active);
        if let Some((base, synced)) = self.durable_synced
            && first_dirty.is_none_or(|d| d >= base)
        {
            end = end.max(synced);
        }
        self.recovery_point = self.recovery_point.max(end.min(self.log_end_offset));
    }

    /// For the background flusher: flushes when `flush.ms` has passed since the last flush and something
    /// is unflushed. Returns whether it flushed.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<bool> {
        let due = self.recovery_point < self.log_end_offset
            && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms;
        if due {
            self.flush(now_ms)?;
        }
        Ok(due)
    }

    /// Deletes sealed segments past retention.ms (by their largest timestamp, like Kafka) and then the
    /// oldest ones while the log stays at least retention.bytes large. The active segment is never
    /// deleted, and nothing is under a cleanup.policy without "delete". Returns how many segments went.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize> {
        if !self.config.deletes() {
            return Ok(0);
        }
        let active_base = self.segments.keys().next_back().copied();
        let mut doomed = Vec::new();
        if self.config.retention_ms >= 0 {
            for (base, seg) in &self.segments {
                if Some(*base) == active_base
                    || now_ms.saturating_sub(seg.largest_timestamp()) <= self.config.retention_ms
                {
                    break;
                }
                doomed.push(*base);
            }
        }
        if self.config.retention_bytes >= 0 {
            let already: i64 = doomed
                .iter()
                .filter_map(|b| self.segments.get(b))
                .map(|s| s.size() as i64)
                .sum();
            let mut excess = self.size_bytes() as i64 - already - self.config.retention_bytes;
            for (base, seg) in self
                .segments
                .range(doomed.last().map_or(i64::MIN, |b| b + 1)..)
            {
                if Some(*base) == active_base || excess < seg.size() as i64 {
                    break;
                }
                excess -= seg.size() as i64;
                doomed.push(*base);
            }
        }
        for base in &doomed {
            if let Some(seg) = self.segments.remove(base) {
                tracing::info!(partition = %self.tp, base_offset = base, "deleting segment by retention");
                seg.delete()?;
            }
        }
        if let Some(first) = self.segments.keys().next() {
            self.log_start_offset = self.log_start_offset.max(*first);
            self.high_watermark = self.high_watermark.max(self.log_start_offset);
            self.publish();
        }
        Ok(doomed.len())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (never past the high watermark)
    /// and deletes the sealed segments that now lie wholly below it. Returns the new log start.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        if offset < 0 || offset > self.high_watermark {
            return Err(StorageError::OffsetOutOfRange { requested: offset, log_start: self.log_start_offset, log_end: self.high_watermark });
        }
        self.log_start_offset = self.log_start_offset.max(offset);
        self.publish();
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            // A segment goes when the next one starts at or below the log start.
            if pair[1] > self.log_start_offset {
                break;
            }
            if let Some(seg) = self.segments.remove(&pair[0]) {
                tracing::info!(partition = %self.tp, base_offset = pair[0], "deleting segment below the log start offset (DeleteRecords)");
                seg.delete()?;
            }
        }
        Ok(self.log_start_offset)
    }

    /// Plans a compaction pass (cleanup.policy=compact): the sealed segments below the high
    /// watermark whose records are all older than min.compaction.lag.ms are cleanable; offsets
    /// from `first_dirty` (the cleaner's checkpoint) on were not cleaned yet. Due when the dirty
    /// share of the cleanable bytes reaches min.cleanable.dirty.ratio, or when the oldest dirty
    /// segment passed max.compaction.lag.ms. None when not due.
    pub fn plan_clean(&self, first_dirty: i64, now_ms: i64) -> Option<cleaner::CleanPlan> {
        if !self.config.compacts() {
            return None;
        }
        let active_base = self.segments.keys().next_back().copied();
        let lag_horizon = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
        let mut segments = Vec::new();
        for (base, seg) in &self.segments {
            let uncleanable = Some(*base) == active_base
                || seg.next_offset() > self.last_stable_offset()
                || (self.config.min_compaction_lag_ms > 0 && seg.largest_timestamp() > lag_horizon);
            if uncleanable {
                break;
            }
            segments.push(cleaner::SourceSegment {
                base_offset: *base,
                next_offset: seg.next_offset(),
                size: seg.size(),
                largest_timestamp: seg.largest_timestamp(),
                file: seg.log.clone(),
            });
        }
        let first_dirty = first_dirty.max(self.log_start_offset);
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: Vec<&cleaner::SourceSegment> = segments.iter().filter(|s| s.base_offset >= first_dirty).collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
        if dirty.is_empty() || total == 0 {
            return None;
        }
        let ratio = dirty_bytes as f64 / total as f64;
        let overdue = self.config.max_compaction_lag_ms != i64::MAX
            && now_ms.saturating_sub(dirty[0].largest_timestamp) > self.config.max_compaction_lag_ms;
        if ratio < self.config.min_cleanable_dirty_ratio && !overdue {
            return None;
        }
        let first_dirty = dirty[0].base_offset;
        Some(cleaner::CleanPlan {
            tp: self.tp.clone(),
            dir: self.dir.clone(),
            io: self.io.clone(),
            config: self.config.clone(),
            segments,
            first_dirty,
            aborted: self.segments.values().flat_map(|s| s.txn_index.entries().iter().copied()).collect(),
        })
    }

    /// Swaps cleaned segments in for the ones they replace. If any replaced segment changed or
    /// went away since the plan (retention ran), the whole pass is dropped: returns false and
    /// removes the `.cleaned` files. Per cleaned segment: rename to `.swap` and fsync the dir
    /// (from here recovery finishes the swap), delete the replaced segments, rename into place.
    pub fn commit_clean(&mut self, output: &cleaner::CleanOutput, now_ms: i64) -> Result<bool> {
        let unchanged = output.segments.iter().all(|c| {
            c.sources.iter().all(|(base, size)| {
                self.segments.get(base).is_some_and(|s| s.size() == *size)
                    && self.segments.keys().next_back() != Some(base)
            })
        });
        if !unchanged {
            for c in &output.segments {
                cleaner::remove_files(self.io.as_ref(), &self.dir, c.base_offset, cleaner::CLEANED_SUFFIX);
            }
            return Ok(false);
        }
        self.rewrites += 1;
        for c in &output.segments {
            let cleaned = Segment::file_paths(&self.dir, c.base_offset, cleaner::CLEANED_SUFFIX);
            let swap = Segment::file_paths(&self.dir, c.base_offset, cleaner::SWAP_SUFFIX);
            let live = Segment::file_paths(&self.dir, c.base_offset, "");
            // Indexes first: a `.log.swap` then implies its indexes are swaps too. Into place the
            // log goes first, so while it is still a swap no new index is live (recovery relies
            // on both, see recovery::complete_swaps).
            for (from, to) in cleaned.iter().zip(&swap).rev() {
                self.io.rename(from, to)?;
            }
            self.io.sync_dir(&self.dir)?;
            for (base, _) in &c.sources {
                if let Some(seg) = self.segments.remove(base) {
                    seg.delete()?;
                }
            }
            for (from, to) in swap.iter().zip(&live) {
                self.io.rename(from, to)?;
            }
            self.io.sync_dir(&self.dir)?;
            let seg = Segment::open(self.io.clone(), &self.dir, c.base_offset, self.config.index_interval_bytes, now_ms, false)?;
            self.segments.insert(c.base_offset, seg);
        }
        Ok(true)
    }

    /// Clean close: seals the active segment (final time index entry), fsyncs, snapshots producer state.
    pub fn close(&mut self) -> Result<()> {
        self.active().seal()?;
        for seg in self.segments.values_mut() {
            // A roll flush that failed left its segment's reserve.
            seg.release_preallocation();
            seg.flush()?;
        }
        self.sync_what_rolls_left()?;
        if !self.snapshot_at_end {
            self.producers.write_snapshot(self.io.as_ref(), &self.dir, self.log_end_offset)?;
            self.snapshot_at_end = true;
        }
        self.recovery_point = self.log_end_offset;
        Ok(())
    }
}

impl Segment {
    pub(crate) fn offset_index_lookup(&self, offset: i64) -> std::io::Result<(i64, u32)> {
        self.offset_index.lookup(offset)
    }
}

/// The last offset of the first batch carrying the append's max timestamp (under LogAppendTime
/// every batch carries the same time, so the first one); the append's last offset when no batch
/// carries a timestamp.
fn shallow_offset_of_max_timestamp(validated: &ValidatedBatches, log_append_time: bool, base_offset: i64, last_offset: i64) -> i64 {
    let mut batch_base = base_offset;
    for b in &validated.batches {
        let batch_last = batch_base + b.last_offset_delta as i64;
        if log_append_time || (validated.max_timestamp >= 0 && b.max_timestamp == validated.max_timestamp) {
            return batch_last;
        }
        batch_base = batch_last + 1;
    }
    last_offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_support::{batch_with, simple_batch};
    use crate::records::batch::{BatchHeader, BatchIter};
    use crate::records::validate::{ValidateConfig, validate};
    use crate::storage::io::{FaultConfig, FaultyIo};
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;

    // The same suite runs on the std and the io_uring backend.
    crate::storage::io::on_each_backend! {
    const NOW: i64 = 1_700_000_000_000;

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }
    fn small_cfg() -> LogConfig {
        LogConfig {
            segment_bytes: 1_000,
            index_interval_bytes: 200,
            ..LogConfig::default()
        }
    }
    fn new_log(dir: &Path, cfg: LogConfig) -> PartitionLog {
        PartitionLog::create(io(), &dir.join("t-0"), tp(), cfg, NOW).expect("create")
    }
    fn reopen(dir: &Path, cfg: LogConfig, recovery_point: i64, clean: bool) -> PartitionLog {
        PartitionLog::open(
            io(),
            &dir.join("t-0"),
            tp(),
            cfg,
            recovery_point,
            0,
            clean,
            NOW,
        )
        .expect("open")
    }
    /// Appends and returns the bytes as stored (offsets assigned).
    fn append(log: &mut PartitionLog, mut bytes: Vec<u8>) -> (AppendInfo, Vec<u8>) {
        let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
        let info = log.append(&mut bytes, &v, NOW).expect("append");
        (info, bytes)
    }
    fn try_append(log: &mut PartitionLog, mut bytes: Vec<u8>) -> Result<AppendInfo> {
        let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
        log.append(&mut bytes, &v, NOW)
    }
    fn read_all(log: &PartitionLog, from: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = from;
        while next < log.log_end_offset() {
            let r = log.read(next, 1 << 20, i64::MAX).expect("read");
            assert!(!r.bytes.is_empty(), "no progress at {next}");
            out.extend_from_slice(&r.bytes);
            next = r.last_offset + 1;
        }
        out
    }

    #[test]
    fn a_segment_rolls_when_its_index_is_full_as_segment_index_bytes_says() {
        // index.interval.bytes 0: an offset index entry per append after the first. 24 bytes hold
        // 3 offset entries (8 bytes) and 2 time entries (12 bytes): the time index fills first.
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig { index_interval_bytes: 0, segment_index_bytes: 24, ..LogConfig::default() };
        let mut log = new_log(dir.path(), cfg.clone());
        for _ in 0..10 {
            append(&mut log, simple_batch(1));
        }
        assert!(log.segment_count() > 1, "rolled on a full index");
        for seg in log.segments.values() {
            assert!(seg.offset_index.len() <= 3 && seg.time_index.len() <= 2, "no index past segment.index.bytes");
        }
        // The default (10 MiB) never rolls these few appends.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig { index_interval_bytes: 0, ..LogConfig::default() });
        for _ in 0..10 {
            append(&mut log, simple_batch(1));
        }
        assert_eq!(log.segment_count(), 1);
    }

    #[test]
    fn segment_jitter_takes_a_fixed_share_of_segment_ms_per_segment() {
        let cfg = LogConfig { segment_jitter_ms: 1_000, ..LogConfig::default() };
        let jitters: Vec<i64> = (0..50).map(|base| cfg.roll_jitter_ms(base)).collect();
        assert!(jitters.iter().all(|j| (0..1_000).contains(j)));
        assert!(jitters.iter().any(|j| *j != jitters[0]), "segments do not share one jitter");
        assert_eq!(cfg.roll_jitter_ms(7), cfg.roll_jitter_ms(7), "stable across restarts");
        assert_eq!(LogConfig::default().roll_jitter_ms(7), 0);
        // A batch 600 ms after the segment's first with segment.ms 1000 rolls when the jitter is
        // above 400 ms.
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig { segment_ms: 1_000, segment_jitter_ms: 1_000, ..LogConfig::default() };
        let mut log = new_log(dir.path(), cfg.clone());
        append(&mut log, batch_with(1, Some(&[NOW]), Compression::None, None));
        append(&mut log, batch_with(1, Some(&[NOW + 600]), Compression::None, None));
        assert_eq!(log.segment_count() > 1, cfg.roll_jitter_ms(0) > 400);
    }

    #[test]
    fn appends_get_consecutive_offsets_and_read_back_byte_identical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        let (a, ab) = append(&mut log, simple_batch(3));
        let (b, bb) = append(&mut log, simple_batch(2));
        let (c, cb) = append(&mut log, simple_batch(4));
        assert_eq!((a.base_offset, a.last_offset), (0, 2));
        assert_eq!((b.base_offset, b.last_offset), (3, 4));
        assert_eq!((c.base_offset, c.last_offset), (5, 8));
        assert_eq!(a.log_append_time_ms, -1);
        assert_eq!(log.log_end_offset(), 9);
        let all = [ab.clone(), bb.clone(), cb.clone()].concat();
        assert_eq!(read_all(&log, 0), all);
        let r = log.read(0, 1 << 20, i64::MAX).expect("read");
        assert_eq!(r.bytes.as_ref(), all.as_slice());
        assert_eq!((r.first_offset, r.last_offset), (0, 8));
        validate(&r.bytes, &ValidateConfig::default()).expect("stored batches keep valid CRCs");
    }

    #[test]
    fn a_fetch_in_the_middle_of_a_batch_gets_the_whole_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        append(&mut log, simple_batch(3));
        let (_, second) = append(&mut log, simple_batch(5));
        let r = log.read(6, 1 << 20, i64::MAX).expect("read");
        assert_eq!(r.first_offset, 3);
        assert_eq!(r.bytes.as_ref(), second.as_slice());
    }

    #[test]
    fn reads_never_include_a_batch_reaching_the_upper_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        let (_, a) = append(&mut log, simple_batch(3)); // 0..=2
        let (_, b) = append(&mut log, simple_batch(2)); // 3..=4
        append(&mut log, simple_batch(4)); // 5..=8
        let bytes = |upper| log.read(0, 1 << 20, upper).expect("read").bytes.to_vec();
        assert_eq!(bytes(5), [a.clone(), b.clone()].concat());
        assert_eq!(bytes(4), a);
        assert_eq!(bytes(3), a);
        assert!(bytes(2).is_empty());
        assert!(
            log.read(5, 1 << 20, 5).expect("read").bytes.is_empty(),
            "fetch at the bound is empty"
        );
        log.set_high_watermark(100);
        assert_eq!(log.high_watermark(), 9, "clamped to the log end");
        assert!(
            log.read(3, 1 << 20, 4).expect("read").bytes.is_empty(),
            "the batch holding the bound is hidden"
        );
    }

    #[test]
    fn max_bytes_below_the_first_batch_still_returns_that_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        let (_, a) = append(&mut log, simple_batch(3));
        let (_, b) = append(&mut log, simple_batch(3));
        assert_eq!(
            log.read(0, 1, i64::MAX).expect("read").bytes.as_ref(),
            a.as_slice()
        );
        assert_eq!(
            log.read(0, a.len() + b.len() - 1, i64::MAX)
                .expect("read")
                .bytes
                .as_ref(),
            a.as_slice()
        );
        assert_eq!(
            log.read(0, a.len() + b.len(), i64::MAX)
                .expect("read")
                .bytes
                .len(),
            a.len() + b.len()
        );
    }

    #[test]
    fn a_read_range_locates_exactly_the_batches_read_returns_without_reading_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), small_cfg());
        for i in 0..40 {
            append(&mut log, simple_batch(1 + i % 4));
        }
        for (offset, max_bytes, upper) in [(0, 1 << 20, i64::MAX), (7, 300, i64::MAX), (30, 1, 60), (12, 1 << 20, 13), (50, 1 << 20, 20)] {
            let range = log.read_range(offset, max_bytes, upper).expect("range");
            let read = log.read(offset, max_bytes, upper).expect("read");
            assert_eq!(range.len(), read.bytes.len(), "({offset}, {max_bytes}, {upper})");
            assert_eq!((range.first_offset, range.last_offset), (read.first_offset, read.last_offset));
            assert_eq!(range.clone().materialize().expect("materialize"), read);
            if let Some(r) = &range.records {
                let seg = log.segments.range(..=range.first_offset).next_back().map(|(_, s)| s).expect("segment");
                assert!(Arc::ptr_eq(&r.file, seg.log_file()), "the range names the segment's open file");
                assert!(r.position + r.len as u64 <= seg.size());
            }
        }
    }

    #[test]
    fn a_located_range_stays_readable_after_retention_deletes_its_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig { retention_bytes: 1_000, retention_ms: -1, ..small_cfg() };
        let mut log = new_log(dir.path(), cfg);
        for _ in 0..30 {
            append(&mut log, simple_batch(2));
        }
        let range = log.read_range(0, 1 << 20, i64::MAX).expect("range");
        let before = log.read(0, 1 << 20, i64::MAX).expect("read").bytes;
        let first_file = Segment::log_path(&dir.path().join("t-0"), 0);
        assert!(log.apply_retention(NOW).expect("retention") > 0);
        assert!(log.log_start_offset() > 0 && !first_file.exists(), "the segment was deleted");
        let r = range.records.as_ref().expect("records");
        assert_eq!(r.read_bytes().expect("still readable"), before, "unlinked, but open through the range");
    }

    #[test]
    fn ranges_cover_many_small_batches_and_single_batches_larger_than_the_scan_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        let mut stored = Vec::new();
        for _ in 0..500 {
            stored.push(append(&mut log, simple_batch(1)).1);
        }
        let big = batch_with(1000, None, Compression::None, None);
        assert!(big.len() > 3 * 8192, "big batch is {} bytes", big.len());
        stored.push(append(&mut log, big).1);
        stored.push(append(&mut log, simple_batch(3)).1);
        let all = stored.concat();
        let r = log.read_range(0, 1 << 20, i64::MAX).expect("range");
        assert_eq!(r.len(), all.len());
        assert_eq!(r.records.as_ref().expect("records").read_bytes().expect("bytes"), all);
        // Stopping inside the run of small batches lands on a batch boundary.
        let limit = stored[..123].iter().map(Vec::len).sum::<usize>() + 5;
        assert_eq!(log.read_range(0, limit, i64::MAX).expect("range").len(), limit - 5);
        // From the big batch: it alone exceeds max_bytes and still comes whole.
        let from_big = log.read_range(500, 10, i64::MAX).expect("range");
        assert_eq!((from_big.first_offset, from_big.last_offset, from_big.len()), (500, 1499, stored[500].len()));
    }

    #[test]
    fn reads_outside_the_log_are_out_of_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        append(&mut log, simple_batch(2));
        assert!(matches!(
            log.read(-1, 100, i64::MAX),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            log.read(3, 100, i64::MAX),
            Err(StorageError::OffsetOutOfRange { log_end: 2, .. })
        ));
        assert!(log.read(2, 100, i64::MAX).expect("at LEO").bytes.is_empty());
    }

    #[test]
    fn segments_roll_by_size_and_reads_cross_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), small_cfg());
        let mut all = Vec::new();
        for i in 0..40 {
            all.extend(append(&mut log, simple_batch(1 + i % 4)).1);
        }
        assert!(
            log.segment_count() > 3,
            "rolled into {} segments",
            log.segment_count()
        );
        let last = log.segment_base_offsets().last().copied();
        for (base, seg) in &log.segments {
            assert_eq!(
                seg.offset_index.is_resident(),
                Some(*base) == last,
                "only the active index stays in memory"
            );
            assert!(seg.size() <= 1_000);
            assert!(
                !seg.offset_index.is_empty() || seg.size() <= 400,
                "sparse index entries are written"
            );
        }
        assert_eq!(read_all(&log, 0), all);
        // Every offset reads from the batch containing it.
        for off in 0..log.log_end_offset() {
            let r = log.read(off, 1, i64::MAX).expect("read");
            assert!(
                r.first_offset <= off && off <= r.last_offset,
                "offset {off} -> {}..{}",
                r.first_offset,
                r.last_offset
            );
        }
        let names: Vec<String> = std::fs::read_dir(dir.path().join("t-0"))
            .expect("ls")
            .map(|e| e.expect("e").file_name().into_string().expect("utf8"))
            .collect();
        assert!(names.contains(&"00000000000000000000.log".to_string()));
        assert!(
            names.iter().any(|n| n.ends_with(".snapshot")),
            "roll snapshots producer state"
        );
    }

    #[test]
    fn the_active_segment_preallocates_by_the_configured_step_and_sealed_ones_keep_no_reserve_after_their_roll_flush() {
        let allocated = |seg: &Segment| crate::storage::io::allocated_bytes(seg.log_file().as_ref());
        let reserve_free = |seg: &Segment| allocated(seg) <= seg.size().div_ceil(4096) * 4096 + 4096;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig { segment_bytes: 100_000, preallocate_step_bytes: 32 * 1024, ..LogConfig::default() };
        let mut log = new_log(dir.path(), cfg.clone());
        let mut all = Vec::new();
        while log.segment_count() < 4 {
            all.extend(append(&mut log, simple_batch(100)).1);
            // As the replica manager does after every append.
            if let Some(job) = log.take_roll_flush() {
                job.sync().expect("roll flush");
                log.complete_roll_flush(&job);
            }
            let (active, sealed) = log.segments.values().collect::<Vec<_>>().split_last().map(|(a, s)| (*a, s.to_vec())).expect("segments");
            assert!(active.preallocated_end >= active.size() && active.preallocated_end > 0, "the active segment reserves ahead");
            assert!(allocated(active) >= active.preallocated_end, "{} bytes for a reserve to {}", allocated(active), active.preallocated_end);
            assert_eq!(active.log_file().len().expect("len"), active.size());
            for seg in sealed {
                assert!(reserve_free(seg), "sealed segment {}: {} bytes for {}", seg.base_offset(), allocated(seg), seg.size());
                assert!(seg.size() <= 100_000);
            }
        }
        assert_eq!(read_all(&log, 0), all);
        // A crash: the active segment's reserve is still on disk; recovery gives it back and
        // finds the same data.
        drop(log);
        let mut log = reopen(dir.path(), cfg.clone(), 0, false);
        assert_eq!(read_all(&log, 0), all);
        assert!(log.segments.values().all(reserve_free), "recovery released every reserve");
        all.extend(append(&mut log, simple_batch(100)).1);
        let active = log.segments.values().next_back().expect("active");
        assert!(active.preallocated_end > active.size() && allocated(active) >= active.preallocated_end, "reserving again after recovery");
        log.close().expect("close");
        assert!(log.segments.values().all(reserve_free), "a clean close releases the active reserve");
        drop(log);
        let log = reopen(dir.path(), cfg, 0, true);
        assert_eq!(read_all(&log, 0), all);
    }

    #[test]
    fn flush_moves_the_recovery_point_by_message_count_and_by_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            flush_interval_messages: 5,
            flush_interval_ms: 1_000,
            ..LogConfig::default()
        };
        let mut log = new_log(dir.path(), cfg);
        append(&mut log, simple_batch(3));
        assert_eq!(log.recovery_point(), 0);
        append(&mut log, simple_batch(2));
        assert_eq!(log.recovery_point(), 5, "flush.messages reached");
        append(&mut log, simple_batch(1));
        assert!(!log.flush_if_due(NOW + 999).expect("flush"));
        assert!(log.flush_if_due(NOW + 1_000).expect("flush"));
        assert_eq!(log.recovery_point(), 6);
        assert!(
            !log.flush_if_due(NOW + 5_000)
                .expect("nothing left to flush")
        );
    }

    #[test]
    fn segments_roll_by_age() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(
            dir.path(),
            LogConfig {
                segment_ms: 1_000,
                ..LogConfig::default()
            },
        );
        // Timed as Kafka does, from the max timestamp of the segment's first batch to that of the
        // batch arriving, not from the segment's creation: the log was made at NOW, its first
        // batch comes 5 s later, and the next ones do not roll until they are more than
        // segment.ms after it (the wall clock plays no part while batches carry timestamps).
        let at = |ts: i64| batch_with(1, Some(&[ts]), Compression::None, None);
        let first = NOW + 5_000;
        for (ts, now) in [(first, first), (first + 6, first + 6), (first + 1_000, first + 9_000)] {
            let mut b = at(ts);
            let v = validate(&b, &ValidateConfig::default()).expect("valid");
            log.append(&mut b, &v, now).expect("append");
            assert_eq!(log.segment_count(), 1, "batch at {ts}");
        }
        let mut b = at(first + 1_001);
        let v = validate(&b, &ValidateConfig::default()).expect("valid");
        log.append(&mut b, &v, first).expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 3]);
        // After a reopen the first batch's timestamp is read back from the log.
        let cfg = log.config.clone();
        log.close().expect("close");
        drop(log);
        let mut log = reopen(dir.path(), cfg, 3, true);
        let mut b = at(first + 2_001);
        let v = validate(&b, &ValidateConfig::default()).expect("valid");
        log.append(&mut b, &v, first).expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 3], "1000 ms after the active segment's first batch");
        let mut b = at(first + 2_002);
        let v = validate(&b, &ValidateConfig::default()).expect("valid");
        log.append(&mut b, &v, first).expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 3, 5]);
    }

    #[test]
    fn segments_without_timestamps_roll_by_the_wall_clock_since_creation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig { segment_ms: 1_000, ..LogConfig::default() });
        let at = || batch_with(1, Some(&[-1]), Compression::None, None);
        for now in [NOW, NOW + 1_000] {
            let mut b = at();
            let v = validate(&b, &ValidateConfig::default()).expect("valid");
            log.append(&mut b, &v, now).expect("append");
        }
        assert_eq!(log.segment_count(), 1);
        let mut b = at();
        let v = validate(&b, &ValidateConfig::default()).expect("valid");
        log.append(&mut b, &v, NOW + 1_001).expect("append");
        assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    }

    #[test]
    fn retention_by_time_deletes_old_sealed_segments_and_moves_log_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            retention_ms: 10_000,
            ..small_cfg()
        };
        let mut log = new_log(dir.path(), cfg);
        for i in 0..30 {
            let ts = if i < 20 { NOW - 100_000 } else { NOW };
            append(
                &mut log,
                batch_with(2, Some(&[ts, ts]), Compression::None, None),
            );
        }
        let before = log.segment_count();
        let deleted = log.apply_retention(NOW).expect("retention");
        assert!(deleted > 0 && log.segment_count() == before - deleted);
        let start = log.log_start_offset();
        assert_eq!(Some(&start), log.segment_base_offsets().first());
        assert!(start > 0 && start <= 40);
        assert!(matches!(
            log.read(start - 1, 100, i64::MAX),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        log.read(start, 100, i64::MAX)
            .expect("first retained offset is readable");
        assert_eq!(
            log.apply_retention(NOW).expect("again"),
            0,
            "recent segments stay"
        );
    }

    #[test]
    fn retention_leaves_a_compact_only_log_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            retention_ms: 10_000,
            retention_bytes: 1,
            cleanup_policy: "compact".into(),
            ..small_cfg()
        };
        let mut log = new_log(dir.path(), cfg.clone());
        for _ in 0..30 {
            append(
                &mut log,
                batch_with(2, Some(&[NOW - 100_000, NOW - 100_000]), Compression::None, None),
            );
        }
        let before = log.segment_count();
        assert!(before > 1);
        assert_eq!(log.apply_retention(NOW).expect("retention"), 0);
        assert_eq!((log.segment_count(), log.log_start_offset()), (before, 0));
        log.update_config(LogConfig { cleanup_policy: "compact,delete".into(), ..cfg });
        assert!(log.apply_retention(NOW).expect("retention") > 0, "compact,delete also deletes");
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            retention_bytes: 2_000,
            retention_ms: -1,
            ..small_cfg()
        };
        let mut log = new_log(dir.path(), cfg);
        for _ in 0..60 {
            append(&mut log, simple_batch(2));
        }
        let deleted = log.apply_retention(NOW).expect("retention");
        assert!(deleted > 0);
        assert!(log.size_bytes() >= 2_000, "size {}", log.size_bytes());
        let first = *log.segments.values().next().map(|s| &s.size).expect("seg");
        assert!(
            log.size_bytes() - first < 2_000,
            "one more deletion would have been possible"
        );
        assert_eq!(
            Some(log.log_start_offset()),
            log.segment_base_offsets().first().copied()
        );
    }

    #[test]
    fn offset_for_timestamp_finds_the_first_record_across_segments_and_inside_compressed_batches() {
        for compression in [Compression::None, Compression::Lz4, Compression::Gzip] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = new_log(dir.path(), small_cfg());
            // Timestamps grow by 100 per batch; inside a batch they are out of order.
            let mut base_ts = 10_000;
            for _ in 0..20 {
                let ts = [base_ts + 50, base_ts + 10, base_ts + 90, base_ts + 30];
                append(&mut log, batch_with(4, Some(&ts), compression, None));
                base_ts += 100;
            }
            assert!(log.segment_count() > 1 || compression != Compression::None);
            // Batch 7 holds offsets 28..=31 with timestamps 10750, 10710, 10790, 10730.
            assert_eq!(
                log.offset_for_timestamp(10_705).expect("ts"),
                Some((28, 10_750)),
                "{compression:?}"
            );
            assert_eq!(
                log.offset_for_timestamp(10_751).expect("ts"),
                Some((30, 10_790)),
                "{compression:?}"
            );
            assert_eq!(log.offset_for_timestamp(0).expect("ts"), Some((0, 10_050)));
            assert_eq!(log.offset_for_timestamp(100_000).expect("ts"), None);
            assert_eq!(log.max_timestamp().expect("max"), Some((11_990, 78)));
        }
    }

    #[test]
    fn log_append_time_stamps_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let mut log = new_log(dir.path(), cfg);
        let (info, stored) = append(&mut log, simple_batch(3));
        assert_eq!(info.log_append_time_ms, NOW);
        let h = BatchHeader::parse(&stored).expect("h");
        assert_eq!(h.max_timestamp(), NOW);
        validate(
            &log.read(0, 1000, i64::MAX).expect("read").bytes,
            &ValidateConfig::default(),
        )
        .expect("CRC recomputed");
        assert_eq!(log.offset_for_timestamp(NOW).expect("ts"), Some((0, NOW)));
    }

    #[test]
    fn idempotent_duplicates_gaps_and_epochs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig::default());
        let p = |seq, n| batch_with(n, None, Compression::None, Some((42, 0, seq)));
        append(&mut log, simple_batch(2));
        let (first, _) = append(&mut log, p(0, 3));
        append(&mut log, p(3, 2));
        match try_append(&mut log, p(0, 3)) {
            Err(StorageError::DuplicateSequence {
                base_offset,
                last_offset,
            }) => {
                assert_eq!(
                    (base_offset, last_offset),
                    (first.base_offset, first.last_offset)
                )
            }
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert_eq!(log.log_end_offset(), 7, "a duplicate appends nothing");
        assert!(matches!(
            try_append(&mut log, p(9, 1)),
            Err(StorageError::OutOfOrderSequence { expected: 5, .. })
        ));
        let new_epoch = batch_with(1, None, Compression::None, Some((42, 1, 0)));
        append(&mut log, new_epoch);
        assert!(matches!(
            try_append(
                &mut log,
                batch_with(1, None, Compression::None, Some((42, 0, 5)))
            ),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
    }

    fn producer_log(dir: &Path) -> (PartitionLog, AppendInfo) {
        let mut log = new_log(dir, small_cfg());
        let mut last = None;
        for i in 0..30 {
            let (info, _) = append(
                &mut log,
                batch_with(2, None, Compression::None, Some((7, 0, i * 2))),
            );
            last = Some(info);
        }
        (log, last.expect("appended"))
    }

    #[test]
    fn producer_state_survives_a_clean_reopen_without_scanning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, last) = producer_log(dir.path());
        log.close().expect("close");
        drop(log);
        let mut log = reopen(dir.path(), small_cfg(), 0, true);
        let stats = log.open_stats();
        assert_eq!(stats.recovered_segments, 0, "clean open must not scan");
        assert_eq!(stats.replayed_batches, 0, "snapshot at the log end");
        assert_eq!(stats.producer_snapshot_offset, Some(60));
        assert!(matches!(
            try_append(&mut log, batch_with(2, None, Compression::None, Some((7, 0, 58)))),
            Err(StorageError::DuplicateSequence { base_offset, .. }) if base_offset == last.base_offset
        ));
        append(
            &mut log,
            batch_with(1, None, Compression::None, Some((7, 0, 60))),
        );
    }

    #[test]
    fn an_expired_producer_is_left_out_of_the_close_snapshot_and_does_not_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, _) = producer_log(dir.path());
        log.close().expect("close");
        drop(log);
        // The snapshot at the log end carries producer 7; a close with nothing appended would
        // write none, so the expiry itself must make the next close write one.
        let mut log = reopen(dir.path(), small_cfg(), 0, true);
        assert!(log.producer_state().entry(7).is_some());
        assert_eq!(log.remove_expired_producers(i64::MAX, 1), 1);
        log.close().expect("close");
        drop(log);
        let mut log = reopen(dir.path(), small_cfg(), 0, true);
        assert_eq!(log.open_stats().replayed_batches, 0, "the snapshot at the log end was rewritten");
        assert!(log.producer_state().entry(7).is_none(), "the expired producer came back");
        // Its retry of an old batch is now an unknown producer's batch: appended again.
        let (info, _) = append(&mut log, batch_with(2, None, Compression::None, Some((7, 0, 58))));
        assert_eq!(info.base_offset, 60);
    }

    #[test]
    fn producer_state_is_rebuilt_after_an_unclean_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, last) = producer_log(dir.path());
        drop(log); // no close: no final snapshot, no sealed time index
        let mut log = reopen(dir.path(), small_cfg(), 0, false);
        let stats = log.open_stats();
        assert!(stats.recovered_segments > 0);
        assert!(
            stats.replayed_batches > 0,
            "replayed from the last roll snapshot"
        );
        assert_eq!(log.log_end_offset(), 60);
        assert!(matches!(
            try_append(&mut log, batch_with(2, None, Compression::None, Some((7, 0, 58)))),
            Err(StorageError::DuplicateSequence { base_offset, .. }) if base_offset == last.base_offset
        ));
        assert!(matches!(
            try_append(
                &mut log,
                batch_with(1, None, Compression::None, Some((7, 0, 61)))
            ),
            Err(StorageError::OutOfOrderSequence { expected: 60, .. })
        ));
    }

    /// Appends batches, returns their stored bytes, and the log dir's active segment file.
    fn two_batch_log(dir: &Path) -> (Vec<u8>, Vec<u8>, PathBuf) {
        let mut log = new_log(dir, LogConfig::default());
        let (_, a) = append(&mut log, simple_batch(3));
        let (_, b) = append(&mut log, simple_batch(4));
        log.flush(NOW).expect("flush");
        (a, b, Segment::log_path(&dir.join("t-0"), 0))
    }

    #[test]
    fn a_torn_tail_at_every_byte_is_cut_back_to_the_previous_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, path) = two_batch_log(dir.path());
        let full = std::fs::read(&path).expect("read");
        assert_eq!(full, [a.clone(), b.clone()].concat());
        for cut in a.len()..full.len() {
            std::fs::write(&path, &full[..cut]).expect("tear");
            let log = reopen(dir.path(), LogConfig::default(), 0, false);
            assert_eq!(log.log_end_offset(), 3, "cut at {cut}");
            assert_eq!(
                log.read(0, 1 << 20, i64::MAX).expect("read").bytes.as_ref(),
                a.as_slice()
            );
            assert_eq!(
                std::fs::metadata(&path).expect("meta").len(),
                a.len() as u64
            );
        }
    }

    #[test]
    fn a_corrupt_crc_in_the_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, path) = two_batch_log(dir.path());
        let mut full = std::fs::read(&path).expect("read");
        let i = a.len() + b.len() - 3;
        full[i] ^= 0x10;
        std::fs::write(&path, &full).expect("corrupt");
        let log = reopen(dir.path(), LogConfig::default(), 0, false);
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.open_stats().truncated_bytes, b.len() as u64);
    }

    /// A log on a FaultyIo without faults, which counts the fsyncs.
    fn counted_log(dir: &Path, cfg: LogConfig) -> (FaultyIo, PartitionLog) {
        let faulty = FaultyIo::new(io(), FaultConfig::default());
        let fio: Arc<dyn FileIo> = Arc::new(faulty.clone());
        let log = PartitionLog::create(fio, &dir.join("t-0"), tp(), cfg, NOW).expect("create");
        (faulty, log)
    }

    /// Appends small batches until the log has `segments` segments.
    fn roll_until(log: &mut PartitionLog, segments: usize) {
        while log.segments.len() < segments {
            append(log, simple_batch(3));
        }
    }

    #[test]
    fn a_roll_waits_for_no_fsync_and_its_flush_syncs_segments_snapshots_and_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, mut log) = counted_log(dir.path(), small_cfg());
        let before = faulty.syncs();
        roll_until(&mut log, 3);
        assert_eq!(faulty.syncs(), before, "neither appends nor rolls wait for the disk");
        assert_eq!(log.recovery_point(), 0);
        let job = log.take_roll_flush().expect("rolls happened");
        assert_eq!((job.segments.len(), job.snapshots.len()), (2, 2));
        assert!(job.dir.is_some(), "the rolls created files");
        assert!(log.sync_target().dir.is_some(), "a durable sync would owe the directory too");
        job.sync().expect("roll flush");
        assert_eq!(faulty.syncs(), before + 2 * 3 + 2 + 1, "log and two indexes per sealed segment, two snapshots, one directory");
        log.complete_roll_flush(&job);
        let active = *log.segments.keys().next_back().expect("active");
        assert_eq!(log.recovery_point(), active, "everything below the active segment is durable");
        assert!(log.sync_target().dir.is_none(), "the directory fsync is done");
        assert!(log.take_roll_flush().is_none(), "one job per roll");
        // An unclean reopen trusts the sealed segments and starts from the roll's snapshot.
        let stored = read_all(&log, 0);
        let rp = log.recovery_point();
        drop(log);
        let log = reopen(dir.path(), small_cfg(), rp, false);
        assert_eq!(read_all(&log, 0), stored);
        assert_eq!(log.open_stats().recovered_segments, 1, "only the active segment is scanned");
        assert_eq!(log.open_stats().producer_snapshot_offset, Some(active));
    }

    #[test]
    fn appends_queue_their_pages_for_writeback_every_step_in_whole_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let step = 64 * 1024;
        let cfg = LogConfig { writeback_step_bytes: step, segment_bytes: 1 << 20, ..LogConfig::default() };
        let (faulty, mut log) = counted_log(dir.path(), cfg);
        while log.segments.len() < 3 {
            append(&mut log, simple_batch(50));
        }
        let ranges = faulty.writebacks();
        assert!(ranges.len() >= 2 * (1 << 20) / step as usize - 2, "{} hints for two segments", ranges.len());
        // Per segment the ranges follow each other from 0, in whole pages of at least a step.
        let mut next = 0;
        for (from, len) in ranges {
            if from == 0 {
                next = 0;
            }
            assert_eq!(from, next, "contiguous");
            assert!(len >= step && (from + len) % 4096 == 0, "({from}, {len})");
            next = from + len;
        }
        let active = log.segments.values().next_back().expect("active");
        assert!(active.writeback_from <= active.size() && active.size() - active.writeback_from < step + 4096);
        // 0 turns it off.
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, mut log) = counted_log(dir.path(), LogConfig { writeback_step_bytes: 0, ..small_cfg() });
        for _ in 0..50 {
            append(&mut log, simple_batch(50));
        }
        assert!(faulty.writebacks().is_empty());
    }

    #[test]
    fn written_pages_leave_the_cache_only_far_enough_behind_the_end_and_after_their_writeback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (step, behind): (u64, u64) = (64 * 1024, 256 * 1024);
        // Segments of 4 MiB, so that drops start a 2 MiB folio before the last one's end
        // inside a file, not at its start.
        let cfg = LogConfig { writeback_step_bytes: step, drop_behind_bytes: behind, segment_bytes: 4 << 20, ..LogConfig::default() };
        let (faulty, mut log) = counted_log(dir.path(), cfg);
        while log.segments.len() < 3 {
            append(&mut log, simple_batch(50));
        }
        let drops = faulty.drops();
        assert!(drops.iter().any(|&(from, _)| from > 0), "some drop starts inside its file");
        assert!(drops.len() as u64 >= 2 * ((1 << 20) - behind) / step - 2, "{} drops for two segments", drops.len());
        // Per segment each drop starts a folio before the last one's end (a large folio across
        // it was skipped then) and ends further on in whole pages, never reaching past what had
        // been queued for writeback when it was made, except a sealed segment's last window
        // (its roll's flush writes it; the next test), which reaches a folio past the end.
        let folio = 2 << 20;
        let sealed_ends: Vec<u64> = log.segments.values().rev().skip(1).map(|s| s.size().div_ceil(4096) * 4096).collect();
        let (writebacks, mut next) = (faulty.writebacks(), 0);
        for (from, len) in drops {
            let tail = sealed_ends.iter().any(|&e| from + len == e + folio);
            let end = if tail { from + len - folio } else { from + len };
            if end <= next {
                next = 0; // the next segment's first drop
            }
            assert_eq!(from, next.saturating_sub(folio), "({from}, {len}) starts a folio before {next}");
            assert!(end > next && end % 4096 == 0, "({from}, {len})");
            assert!(tail || writebacks.iter().any(|&(w, l)| w + l >= end + behind), "({from}, {len}) is {behind} behind a writeback");
            next = end;
        }
        let active = log.segments.values().next_back().expect("active");
        assert!(active.dropped_to <= active.writeback_from.saturating_sub(behind), "the last {behind} bytes stay cached");
        // The data is all still there: a drop is a hint about memory.
        assert_eq!(read_all(&log, 0).len(), log.segments.values().map(|s| s.size() as usize).sum::<usize>());
        // 0 turns it off.
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, mut log) = counted_log(dir.path(), LogConfig { writeback_step_bytes: step, drop_behind_bytes: 0, segment_bytes: 1 << 20, ..LogConfig::default() });
        while log.segments.len() < 2 {
            append(&mut log, simple_batch(50));
        }
        assert!(!faulty.writebacks().is_empty() && faulty.drops().is_empty());
    }

    #[test]
    fn a_sealed_segments_last_window_leaves_the_cache_once_the_next_segment_is_a_window_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (step, behind): (u64, u64) = (64 * 1024, 256 * 1024);
        let cfg = LogConfig { writeback_step_bytes: step, drop_behind_bytes: behind, segment_bytes: 1 << 20, ..LogConfig::default() };
        let (faulty, mut log) = counted_log(dir.path(), cfg);
        roll_until(&mut log, 2);
        let sealed = log.segments.values().next().expect("sealed");
        let (sealed_end, sealed_dropped) = (sealed.size().div_ceil(4096) * 4096, sealed.dropped_to);
        assert!(sealed_end - sealed_dropped >= behind, "at the roll its last {behind} bytes are cached");
        // Until the new segment is a window long, the sealed segment's pages stay.
        let mut batch = simple_batch(50);
        let mut validated = validate(&batch, &ValidateConfig::default()).expect("valid");
        while log.active().size() + (validated.total_bytes as u64) < behind {
            let end = log.active().size() + validated.total_bytes as u64;
            assert!(!log.sealed_tail_due(end));
            log.append(&mut batch, &validated, NOW).expect("append");
            batch = simple_batch(50);
            validated = validate(&batch, &ValidateConfig::default()).expect("valid");
        }
        assert!(faulty.drops().iter().all(|&(f, l)| f + l <= sealed_dropped), "nothing of the window dropped yet");
        // The append that makes it a window long is one that may wait, and drops the rest at once.
        assert!(log.append_would_wait(&validated, NOW), "the drop is work an async worker must not do");
        log.append(&mut batch, &validated, NOW).expect("append");
        // From a folio before the last drop's end to a folio past the data (large folios).
        let (folio, from) = (2 << 20, sealed_dropped.saturating_sub(2 << 20));
        let tail: Vec<_> = faulty.drops().into_iter().filter(|&(f, l)| f + l == sealed_end + folio).collect();
        assert_eq!(tail, vec![(from, sealed_end + folio - from)], "the rest of the sealed segment, once");
        assert_eq!(log.segments.values().next().expect("sealed").dropped_to, sealed_end);
        // Only once.
        for _ in 0..20 {
            append(&mut log, simple_batch(50));
        }
        assert_eq!(faulty.drops().iter().filter(|&&(f, l)| f + l == sealed_end + folio).count(), 1);
        // The data is all still there.
        assert_eq!(read_all(&log, 0).len(), log.segments.values().map(|s| s.size() as usize).sum::<usize>());
    }

    #[test]
    fn readers_get_read_ahead_half_a_window_at_a_time_and_readers_near_the_end_never() {
        let dir = tempfile::tempdir().expect("tempdir");
        let window: u64 = 64 * 1024;
        let cfg = LogConfig { readahead_bytes: window, segment_bytes: 1 << 20, ..LogConfig::default() };
        let mut log = new_log(dir.path(), cfg);
        while log.segments.values().next().expect("segment").size() < 600 * 1024 {
            append(&mut log, simple_batch(50));
        }
        let size = log.segments.values().next().expect("segment").size();
        // A consumer streaming from the start: a quarter window first, then windows that follow
        // each other without gaps or overlaps, each asked for once at least half was missing.
        let (mut offset, mut asked_to, mut asks) = (0i64, 0u64, 0);
        loop {
            let r = log.read_range(offset, 8 * 1024, i64::MAX).expect("read");
            let Some(rec) = &r.records else { break };
            let end = rec.position + rec.len as u64;
            if let Some(ra) = &r.readahead {
                assert!(Arc::ptr_eq(&ra.file, &rec.file), "the same segment file");
                let from = if asks == 0 { end } else { asked_to };
                assert_eq!(ra.position, from, "the window continues where the last one ended");
                if asks == 0 {
                    assert_eq!(ra.len as u64, window / 4, "a new reader's first window");
                } else {
                    let ra_end = ra.position + ra.len as u64;
                    assert!(ra.len as u64 >= window / 2 || ra_end == size, "half a window, or the rest of the file");
                    assert!(ra_end <= (end + window).min(size));
                }
                asked_to = ra.position + ra.len as u64;
                asks += 1;
            }
            assert!(asked_to >= end || end + window / 2 > size, "the reader never outruns its window");
            offset = r.last_offset + 1;
        }
        assert_eq!(asked_to, size, "the whole file was asked for, up to its end");
        let expect = (size - window) / (window / 2);
        assert!(asks as u64 >= expect - 1 && asks as u64 <= expect + 2, "{asks} asks for {size} bytes");
        // A second reader elsewhere keeps its own window; the first one's is left alone.
        let r = log.read_range(0, 8 * 1024, i64::MAX).expect("read");
        let ra = r.readahead.expect("a new reader at the start");
        assert_eq!(ra.position, r.records.as_ref().map(|x| x.position + x.len as u64).expect("records"));
        assert_eq!(ra.len as u64, window / 4);
        // A reader near the end of the data (tailing the log) asks for nothing.
        let last = log.log_end_offset() - 1;
        assert!(log.read_range(last, 8 * 1024, i64::MAX).expect("read").readahead.is_none());
        // 0 turns it off.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), LogConfig { readahead_bytes: 0, segment_bytes: 1 << 20, ..LogConfig::default() });
        for _ in 0..200 {
            append(&mut log, simple_batch(50));
        }
        assert!(log.read_range(0, 8 * 1024, i64::MAX).expect("read").readahead.is_none());
    }

    #[test]
    fn a_durable_sync_after_a_roll_also_syncs_the_directory_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, mut log) = counted_log(dir.path(), small_cfg());
        roll_until(&mut log, 2);
        let target = log.sync_target();
        let before = faulty.syncs();
        target.sync().expect("sync");
        assert_eq!(faulty.syncs(), before + 2, "the new segment's directory entry, then its data");
        log.mark_synced(&target);
        let next = log.sync_target();
        assert!(next.dir.is_none());
        next.sync().expect("sync");
        assert_eq!(faulty.syncs(), before + 3, "data only");
    }

    #[test]
    fn a_full_flush_syncs_what_rolls_left_and_a_roll_right_after_it_syncs_the_final_index_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, mut log) = counted_log(dir.path(), small_cfg());
        roll_until(&mut log, 2);
        let _ = log.take_roll_flush();
        log.flush(NOW).expect("flush");
        assert!(log.sync_target().dir.is_none(), "flush synced the directory");
        assert!(log.unsynced_snapshots.is_empty(), "flush synced the roll's snapshot");
        assert_eq!(log.recovery_point(), log.log_end_offset());
        // Nothing appended since the flush: the sealed segment's data is durable and the recovery
        // point is past it, so the roll syncs its final index entry at once: one fsync of the
        // time index, which got it; the offset index is unchanged since the flush, so no fsync.
        let before = faulty.syncs();
        log.roll(NOW).expect("roll");
        assert_eq!(faulty.syncs(), before + 1);
        let job = log.take_roll_flush().expect("a roll happened");
        assert!(job.segments.is_empty(), "the sealed segment was already durable");
    }

    #[test]
    fn closing_a_log_nothing_was_appended_to_since_it_opened_syncs_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, mut log) = counted_log(dir.path(), small_cfg());
        roll_until(&mut log, 3);
        log.close().expect("close");
        drop(log);
        let fio: Arc<dyn FileIo> = Arc::new(faulty.clone());
        let mut log = PartitionLog::open(fio, &dir.path().join("t-0"), tp(), small_cfg(), 0, 0, true, NOW).expect("reopen");
        let (syncs, written) = (faulty.syncs(), faulty.written_bytes());
        log.close().expect("close again");
        assert_eq!((faulty.syncs(), faulty.written_bytes()), (syncs, written), "no fsync, no snapshot, no index write");
        // One append later, the close syncs and snapshots again.
        append(&mut log, simple_batch(2));
        log.close().expect("close after an append");
        assert!(faulty.syncs() > syncs && faulty.written_bytes() > written);
        let end = log.log_end_offset();
        drop(log);
        let log = reopen(dir.path(), small_cfg(), 0, false);
        assert_eq!(log.log_end_offset(), end, "everything is there after a full recovery");
        assert_eq!(log.open_stats().producer_snapshot_offset, Some(end), "the last close's snapshot is at the log end");
    }

    #[test]
    fn only_segments_from_the_recovery_point_are_scanned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), small_cfg());
        for _ in 0..40 {
            append(&mut log, simple_batch(2));
        }
        // A roll leaves its segment's fsync to the caller, off the lock (the replica manager's job).
        assert_eq!(log.recovery_point(), 0, "nothing is durable before the roll flush");
        let job = log.take_roll_flush().expect("rolls happened");
        assert!(log.take_roll_flush().is_none(), "one job per roll");
        job.sync().unwrap();
        log.complete_roll_flush(&job);
        let segments = log.segment_count();
        let rp = log.recovery_point();
        assert!(segments > 3 && rp > 0);
        assert_eq!(rp, *log.segment_base_offsets().last().unwrap(), "everything below the active segment is durable");
        drop(log);
        let log = reopen(dir.path(), small_cfg(), rp, false);
        assert_eq!(log.open_stats().recovered_segments, 1);
        assert_eq!(log.log_end_offset(), 80);
        assert_eq!(log.recovery_point(), rp, "recovered data is not fsynced at open: the recovery point stays");
    }

    #[test]
    fn a_corrupt_middle_segment_drops_everything_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), small_cfg());
        for _ in 0..40 {
            append(&mut log, simple_batch(2));
        }
        let bases = log.segment_base_offsets();
        drop(log);
        let victim = Segment::log_path(&dir.path().join("t-0"), bases[1]);
        let mut bytes = std::fs::read(&victim).expect("read");
        bytes[100] ^= 0xff;
        std::fs::write(&victim, &bytes).expect("write");
        let log = reopen(dir.path(), small_cfg(), 0, false);
        assert_eq!(log.segment_base_offsets().len(), 2);
        assert!(log.log_end_offset() >= bases[1] && log.log_end_offset() < bases[2]);
    }

    #[test]
    fn truncate_to_removes_later_batches_and_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), small_cfg());
        let mut stored = Vec::new();
        for _ in 0..30 {
            stored.push(append(&mut log, simple_batch(2)).1);
        }
        log.truncate_to(21, NOW).expect("truncate");
        assert_eq!(log.log_end_offset(), 20, "the batch holding 21 goes whole");
        assert_eq!(read_all(&log, 0), stored[..10].concat());
        let (info, _) = append(&mut log, simple_batch(1));
        assert_eq!(info.base_offset, 20);
        log.truncate_to(0, NOW).expect("truncate all");
        assert_eq!(log.log_end_offset(), 0);
        assert_eq!(log.segment_count(), 1);
    }

    #[test]
    fn crash_at_a_random_byte_keeps_a_prefix_of_the_appended_batches() {
        for seed in 1..=20u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let crash_after = 500 + (seed * 7919) % 6_000;
            println!("seed {seed}: crash after {crash_after} bytes");
            let faulty = FaultyIo::new(
                io(),
                FaultConfig {
                    seed,
                    crash_after_bytes: Some(crash_after),
                    flip_bit_ppm: 0,
                    ..Default::default()
                },
            );
            let fio: Arc<dyn FileIo> = Arc::new(faulty.clone());
            let mut log =
                PartitionLog::create(fio, &dir.path().join("t-0"), tp(), small_cfg(), NOW)
                    .expect("create");
            let mut stored = Vec::new();
            for i in 0..60 {
                if faulty.crashed() {
                    break;
                }
                let (_, b) = append(&mut log, simple_batch(1 + (i + seed as usize) % 3));
                stored.extend(b);
            }
            assert!(faulty.crashed(), "seed {seed}");
            drop(log);
            let log = reopen(dir.path(), small_cfg(), 0, false);
            let got = read_all(&log, 0);
            assert!(
                stored.starts_with(&got),
                "seed {seed}: recovered bytes are not a prefix"
            );
            let mut it = BatchIter::new(&got);
            assert_eq!(
                it.by_ref()
                    .last()
                    .map(|b| b.header().last_offset() + 1)
                    .unwrap_or(0),
                log.log_end_offset()
            );
        }
    }

    #[test]
    fn bit_flips_in_the_tail_are_cut_and_never_served() {
        let mut cuts = 0;
        for seed in 1..=12u64 {
            println!("seed {seed}");
            let dir = tempfile::tempdir().expect("tempdir");
            let faulty = FaultyIo::new(
                io(),
                FaultConfig {
                    seed,
                    crash_after_bytes: None,
                    flip_bit_ppm: 150_000,
                    ..Default::default()
                },
            );
            let fio: Arc<dyn FileIo> = Arc::new(faulty);
            let mut log =
                PartitionLog::create(fio, &dir.path().join("t-0"), tp(), small_cfg(), NOW)
                    .expect("create");
            let mut stored = Vec::new();
            for i in 0..30 {
                stored.push(append(&mut log, simple_batch(1 + i % 3)).1);
            }
            drop(log);
            let log = reopen(dir.path(), small_cfg(), 0, false);
            let got = read_all(&log, 0);
            let mut next = 0;
            for (i, b) in BatchIter::new(&got).enumerate() {
                let h = b.header();
                assert_eq!(
                    h.computed_crc(),
                    Some(h.crc()),
                    "seed {seed}: served a corrupt batch"
                );
                assert!(
                    h.base_offset() >= next,
                    "seed {seed}: offsets went backwards"
                );
                next = h.last_offset() + 1;
                // Everything the CRC covers is what the producer sent.
                assert_eq!(
                    &b.bytes[21..],
                    &stored[i][21..],
                    "seed {seed}: batch {i} differs"
                );
            }
            assert_eq!(next, log.log_end_offset(), "seed {seed}");
            cuts += usize::from(log.open_stats().truncated_bytes > 0);
        }
        assert!(cuts > 0, "the flips must have hit the log somewhere");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_appends_read_back_byte_identical_from_any_offset(
            counts in proptest::collection::vec(1usize..6, 1..40),
            reads in proptest::collection::vec((any::<u16>(), 1usize..3000), 1..20),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = new_log(dir.path(), small_cfg());
            let mut batches: Vec<(i64, i64, Vec<u8>)> = Vec::new();
            for c in counts {
                let (info, b) = append(&mut log, simple_batch(c));
                batches.push((info.base_offset, info.last_offset, b));
            }
            prop_assert_eq!(read_all(&log, 0), batches.iter().flat_map(|b| b.2.clone()).collect::<Vec<_>>());
            let leo = log.log_end_offset();
            for (off, max_bytes) in reads {
                let off = off as i64 % (leo + 1);
                let r = log.read(off, max_bytes, leo).expect("read");
                if off == leo {
                    prop_assert!(r.bytes.is_empty());
                    continue;
                }
                let first = batches.iter().position(|b| b.1 >= off).expect("batch");
                prop_assert_eq!(r.first_offset, batches[first].0);
                let mut expect = batches[first].2.clone();
                for b in &batches[first + 1..] {
                    let seg_of = |o: i64| log.segments.range(..=o).next_back().map(|(k, _)| *k);
                    if expect.len() + b.2.len() > max_bytes || seg_of(b.0) != seg_of(batches[first].0) {
                        break;
                    }
                    expect.extend_from_slice(&b.2);
                }
                prop_assert_eq!(r.bytes.as_ref(), expect.as_slice());
            }
        }
    }

    /// One transactional batch of `count` records from `pid` at `epoch`, sequences from `seq`.
    fn txn_batch(pid: i64, epoch: i16, seq: i32, count: usize) -> Vec<u8> {
        crate::records::batch::test_support::transactional_batch(&vec![(Some("k"), Some("v")); count], 1_000, (pid, epoch, seq))
    }

    fn append_marker(log: &mut PartitionLog, pid: i64, epoch: i16, control: control::ControlType) -> AppendInfo {
        let mut bytes = control::encode_marker(pid, epoch, control::Marker { control, coordinator_epoch: 0 }, NOW).to_vec();
        let v = validate(&bytes, &ValidateConfig { allow_control_batches: true, ..ValidateConfig::default() }).expect("valid");
        let info = log.append(&mut bytes, &v, NOW).expect("append marker");
        let end = log.log_end_offset();
        log.set_high_watermark(end);
        info
    }

    fn append_acked(log: &mut PartitionLog, bytes: Vec<u8>) -> AppendInfo {
        let (info, _) = append(log, bytes);
        let end = log.log_end_offset();
        log.set_high_watermark(end);
        info
    }

    #[test]
    fn published_offsets_follow_the_high_watermark_last_stable_and_log_start_offsets_everywhere_they_move() {
        use control::ControlType::Commit;
        let dir = tempfile::tempdir().unwrap();
        let mut log = new_log(dir.path(), LogConfig::default());
        let published = log.published();
        let seen = |log: &PartitionLog| {
            assert_eq!((published.high_watermark(), published.last_stable_offset()), (log.high_watermark(), log.last_stable_offset()));
            assert_eq!(published.log_start_offset(), log.log_start_offset());
            (published.high_watermark(), published.last_stable_offset())
        };
        assert_eq!(seen(&log), (0, 0), "an empty log publishes at creation");
        append(&mut log, simple_batch(3));
        assert_eq!(seen(&log), (0, 0), "an append alone moves no bound");
        log.set_high_watermark(3);
        assert_eq!(seen(&log), (3, 3));
        append_acked(&mut log, txn_batch(1, 0, 0, 2)); // 3..=4, open
        assert_eq!(seen(&log), (5, 3), "an open transaction holds the last stable offset");
        append_marker(&mut log, 1, 0, Commit); // 5
        assert_eq!(seen(&log), (6, 6));
        append_acked(&mut log, simple_batch(2)); // 6..=7
        assert_eq!(log.delete_records_before(2).expect("delete records"), 2);
        assert_eq!((seen(&log), published.log_start_offset()), ((8, 8), 2), "DeleteRecords publishes the log start");
        log.truncate_to(6, NOW).expect("truncate");
        assert_eq!(seen(&log), (6, 6), "truncation lowers the published high watermark");
        drop(log);
        let log = reopen(dir.path(), LogConfig::default(), 0, false);
        let published = log.published();
        assert_eq!((published.high_watermark(), published.last_stable_offset()), (6, 6), "a reopened log publishes at open");
    }

    #[test]
    fn open_transactions_hold_the_last_stable_offset_and_aborts_are_indexed() {
        use control::ControlType::{Abort, Commit};
        let dir = tempfile::tempdir().unwrap();
        let mut log = new_log(dir.path(), LogConfig::default());
        append_acked(&mut log, simple_batch(3)); // 0..=2
        assert_eq!(log.last_stable_offset(), 3);
        append_acked(&mut log, txn_batch(1, 0, 0, 2)); // 3..=4
        append_acked(&mut log, txn_batch(2, 0, 0, 2)); // 5..=6
        append_acked(&mut log, txn_batch(1, 0, 2, 1)); // 7
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (8, 3));
        assert_eq!(append_marker(&mut log, 1, 0, Abort).base_offset, 8);
        assert_eq!(log.last_stable_offset(), 5);
        let aborted = log.aborted_transactions(0, 100);
        assert_eq!(aborted.len(), 1);
        assert_eq!((aborted[0].producer_id, aborted[0].first_offset, aborted[0].last_offset, aborted[0].last_stable_offset), (1, 3, 8, 5));
        // Only transactions overlapping the fetched range are listed.
        assert!(log.aborted_transactions(9, 100).is_empty());
        assert!(log.aborted_transactions(0, 3).is_empty());
        append_marker(&mut log, 2, 0, Commit);
        assert_eq!(log.last_stable_offset(), 10);
        assert_eq!(log.aborted_transactions(0, 100).len(), 1, "a commit is not indexed");
        // A read bounded by the LSO does not return the open transaction's batch.
        append_acked(&mut log, txn_batch(3, 0, 0, 2)); // 10..=11
        append_acked(&mut log, simple_batch(1)); // 12
        assert_eq!(log.last_stable_offset(), 10);
        assert_eq!(log.read(10, 1 << 20, log.last_stable_offset()).unwrap().bytes.len(), 0);
        assert_eq!(log.producer_state().entry(3).map(|e| e.current_txn_first_offset), Some(10));
    }

    #[test]
    fn transaction_state_and_the_abort_index_survive_clean_and_unclean_restarts() {
        use control::ControlType::Abort;
        let dir = tempfile::tempdir().unwrap();
        let mut log = new_log(dir.path(), small_cfg());
        append_acked(&mut log, txn_batch(1, 0, 0, 2)); // 0..=1
        append_marker(&mut log, 1, 0, Abort); // 2
        for i in 0..20 {
            append_acked(&mut log, txn_batch(2, 0, i * 3, 3)); // an open transaction across rolls
        }
        assert!(log.segment_count() > 1, "the test wants the open transaction to span segments");
        assert_eq!(log.last_stable_offset(), 3);
        log.close().unwrap();
        drop(log);
        let log = reopen(dir.path(), small_cfg(), 0, true);
        assert_eq!(log.last_stable_offset(), 3);
        assert_eq!(log.aborted_transactions(0, 100).len(), 1);
        drop(log);
        // A crash that lost the index file and every snapshot: the replay rebuilds both.
        let part = dir.path().join("t-0");
        for e in std::fs::read_dir(&part).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "txnindex" || x == "snapshot") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let mut log = reopen(dir.path(), small_cfg(), 0, false);
        assert_eq!(log.last_stable_offset(), 3);
        let aborted = log.aborted_transactions(0, 100);
        assert_eq!((aborted.len(), aborted[0].first_offset, aborted[0].last_offset), (1, 0, 2));
        let end = append_marker(&mut log, 2, 0, Abort).base_offset;
        assert_eq!(log.last_stable_offset(), end + 1);
        assert_eq!(log.aborted_transactions(0, end + 1).len(), 2);
    }

    #[test]
    fn a_batch_appended_as_header_and_records_is_stored_as_if_appended_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut whole, mut split) = (new_log(&dir.path().join("a"), LogConfig::default()), new_log(&dir.path().join("b"), LogConfig::default()));
        let mut seq = 0;
        for i in 0..5 {
            let b = batch_with(3 + i, None, Compression::Lz4, Some((9, 0, seq)));
            seq += 3 + i as i32;
            append(&mut whole, b.clone());
            let v = validate(&b, &ValidateConfig::default()).unwrap();
            split.append_shared(&b, &v, NOW).unwrap();
        }
        assert_eq!(read_all(&whole, 0), read_all(&split, 0));
        // A duplicate is still found.
        let b = batch_with(3, None, Compression::Lz4, Some((9, 0, 0)));
        let v = validate(&b, &ValidateConfig::default()).unwrap();
        assert!(matches!(split.append_shared(&b, &v, NOW), Err(StorageError::DuplicateSequence { .. })));
        // LogAppendTime rewrites the CRC over the whole batch: the header-only path must refuse
        // it, and append_shared copies instead, leaving a valid batch.
        let mut lat = new_log(&dir.path().join("c"), LogConfig { message_timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() });
        let b = simple_batch(2);
        let v = validate(&b, &ValidateConfig::default()).unwrap();
        let mut head = [0u8; HEADER_SIZE];
        head.copy_from_slice(&b[..HEADER_SIZE]);
        assert!(lat.append_parts(&mut head, &b[HEADER_SIZE..], &v, NOW).is_err());
        assert_eq!(lat.log_end_offset(), 0);
        lat.append_shared(&b, &v, NOW).unwrap();
        let stored = read_all(&lat, 0);
        let h = BatchHeader::parse(&stored).unwrap();
        assert_eq!((h.computed_crc(), h.max_timestamp()), (Some(h.crc()), NOW));
    }

    #[test]
    fn a_durable_sync_outside_the_lock_moves_the_recovery_point_and_survives_an_unclean_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::sync::Mutex::new(new_log(dir.path(), LogConfig { segment_bytes: 4_000, ..small_cfg() }));
        // Producers append under the lock and sync without it, as durable-mode produce does.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let (target, rolled) = {
                            let mut l = log.lock().expect("lock");
                            append(&mut l, simple_batch(2));
                            (l.sync_target(), l.take_roll_flush())
                        };
                        // As the replica manager does: a roll's fsync of the sealed segment.
                        if let Some(job) = rolled {
                            job.sync().expect("roll flush");
                            log.lock().expect("lock").complete_roll_flush(&job);
                        }
                        target.sync().expect("sync");
                        log.lock().expect("lock").mark_synced(&target);
                    }
                });
            }
        });
        let log = log.into_inner().expect("lock");
        assert_eq!(log.log_end_offset(), 8 * 20 * 2);
        assert_eq!(log.recovery_point(), log.log_end_offset(), "every acknowledged append was synced");
        let stored = read_all(&log, 0);
        let rp = log.recovery_point();
        drop(log);
        let log = reopen(dir.path(), small_cfg(), rp, false);
        assert_eq!(read_all(&log, 0), stored);
    }

    #[test]
    fn a_truncation_voids_a_sync_taken_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = new_log(dir.path(), small_cfg());
        for _ in 0..3 {
            append(&mut log, simple_batch(2));
        }
        let target = log.sync_target();
        assert_eq!(target.end_offset, 6);
        log.truncate_to(2, NOW).expect("truncate");
        append(&mut log, simple_batch(10));
        target.sync().expect("sync");
        log.mark_synced(&target);
        assert_eq!(log.recovery_point(), 0, "the unsynced re-append below offset 6 is not durable");
        let t = log.sync_target();
        t.sync().expect("sync");
        log.mark_synced(&t);
        assert_eq!(log.recovery_point(), 12);
    }


    #[test]
    fn a_follower_copies_the_leaders_batches_epochs_and_producers_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut leader = new_log(dir.path(), small_cfg());
        let fdir = tempfile::tempdir().expect("tempdir");
        let mut follower = new_log(fdir.path(), small_cfg());
        append(&mut leader, simple_batch(3));
        leader.begin_leader_epoch(4).expect("epoch 4");
        let idempotent = batch_with(2, None, Compression::None, Some((77, 0, 0)));
        append(&mut leader, idempotent);
        append(&mut leader, simple_batch(5));
        let bytes = read_all(&leader, 0);

        // Fetched in two pieces, the first cut inside a batch (as a size-limited fetch is).
        let cut = BatchIter::new(&bytes).next().expect("batch").bytes.len() + 20;
        let info = follower.append_as_follower(&bytes[..cut], NOW).expect("append").expect("one whole batch");
        assert_eq!((info.base_offset, info.last_offset, follower.log_end_offset()), (0, 2, 3));
        let next = follower.log_end_offset();
        let from = bytes.len() - read_all(&leader, next).len();
        follower.append_as_follower(&bytes[from..], NOW).expect("append").expect("the rest");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(read_all(&follower, 0), bytes, "byte for byte the leader's batches");
        assert_eq!(follower.end_offset_for_epoch(0), leader.end_offset_for_epoch(0));
        assert_eq!(follower.end_offset_for_epoch(4), (4, 10));
        assert_eq!(follower.producer_state().producers().map(|(id, _)| id).collect::<Vec<_>>(), vec![77]);

        // Nothing below the log end is taken again, and garbage is refused without a change.
        assert!(follower.append_as_follower(&bytes, NOW).is_err(), "offsets must grow past the log end");
        let mut corrupt = bytes[from..].to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        follower.truncate_to(3, NOW).expect("truncate");
        assert_eq!(follower.end_offset_for_epoch(4), (-1, -1), "epoch 4 began at 3 and is forgotten");
        assert_eq!(follower.end_offset_for_epoch(0), (0, 3));
        assert!(follower.append_as_follower(&corrupt, NOW).is_err(), "CRC");
        assert_eq!(follower.append_as_follower(&[], NOW).expect("nothing"), None);

        // What survives a reopen: the same bytes and epochs.
        follower.append_as_follower(&bytes[from..], NOW).expect("append again");
        follower.close().expect("close");
        let follower = PartitionLog::open(io(), &fdir.path().join("t-0"), tp(), small_cfg(), 0, 0, true, NOW).expect("open");
        assert_eq!(read_all(&follower, 0), bytes);
        assert_eq!(follower.end_offset_for_epoch(4), (4, 10));
    }
    }
}
