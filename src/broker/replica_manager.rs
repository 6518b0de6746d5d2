//! Appends to and reads from partition logs for Produce, Fetch and ListOffsets: validation,
//! offsets, the high watermark readers may see, and the wake-up of parked fetches. Never decodes
//! individual records on the hot path and never exposes data above the high watermark.
//! A partition whose log dir is offline (`storage::log_dir_failure`) is answered with
//! KAFKA_STORAGE_ERROR and never touched; storage errors are reported there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::records::control::{self, Marker};
use crate::records::validate::validate;
use crate::records::RecordsError;
use crate::storage::leader_epoch::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use crate::storage::producer_state::ProducerEntry;
use crate::storage::txn_index::AbortedTxn;
use crate::storage::log_manager::LogManager;
use crate::storage::io::{nowait, Backend};
use crate::storage::leader_epoch::Divergence;
use crate::storage::log::{PublishedOffsets, RollFlush};
use crate::storage::{FileRange, LogConfig, PartitionLog, StorageError, SyncTarget};
use super::durable_sync::{self, BackgroundSyncs, SyncJob};
use crate::types::TopicPartition;

use super::partition::{LeaderAndIsr, Partition, PartitionError, ReplicationState};
use super::purgatory::Purgatory;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The outcome of one partition's append, as Produce reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// Broker time when the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The high watermark that acknowledges these records with acks=all: the offset after the
    /// last of them.
    pub acked_at: i64,
}

/// Why an acks=all produce was not acknowledged after its append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("the in-sync replicas did not copy the records within the request timeout")]
    TimedOut,
    #[error("this broker stopped leading the partition")]
    NotLeader,
    #[error("the in-sync replicas fell below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
}

/// Offsets of a partition that ListOffsets and Fetch report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Below the first open transaction: what read_committed consumers may see.
    pub last_stable_offset: i64,
}

/// What a fetch reads from one partition.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    pub offsets: PartitionOffsets,
    /// Where the batches are; None when nothing is readable.
    pub records: Option<FileRange>,
    /// For read_committed: the aborted transactions overlapping the records read.
    pub aborted: Vec<AbortedTxn>,
    /// What the disk should read ahead for this reader, asked for after the lock is released.
    pub readahead: Option<FileRange>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("this server does not host this topic-partition")]
    UnknownTopicOrPartition,
    /// Not the leader, a stale or unknown epoch, too few in-sync replicas.
    #[error(transparent)]
    Partition(PartitionError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A log's lock: taken, or only tried when `wait_free` (a no-wait scope), where a lock held
/// elsewhere answers [`nowait::would_block`].
fn lock_log(log: &std::sync::Mutex<PartitionLog>, wait_free: bool) -> Result<std::sync::MutexGuard<'_, PartitionLog>, ReplicaError> {
    if !wait_free {
        return Ok(log.lock().unwrap_or_else(|e| e.into_inner()));
    }
    match log.try_lock() {
        Ok(log) => Ok(log),
        Err(std::sync::TryLockError::Poisoned(e)) => Ok(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Err(StorageError::Io(nowait::would_block()).into()),
    }
}

/// The partition logs of this broker plus the purgatory of parked fetches.
pub struct ReplicaManager {
    logs: LogManager,
    /// Parked fetches, woken by their partition's high watermark moving: at append, or in
    /// durable mode at the sync that publishes it.
    pub purgatory: Arc<Purgatory>,
    /// The storage backend the logs use (its name and io_uring counters, for logs and tests).
    backend: Backend,
    /// `fjord.log.flush.on.acks.all`: acks=all waits for fdatasync.
    durable_acks_all: bool,
    /// Durable mode: the background fsyncs of appends no produce waits to sync.
    background_syncs: Arc<BackgroundSyncs>,
    /// This broker's `node.id`.
    local_node: i32,
    /// Each partition's replication state (leader, epochs, ISR), one per log.
    partitions: std::sync::RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// In a metadata quorum: new partitions wait for the metadata to name their leader.
    clustered: std::sync::atomic::AtomicBool,
}

/// An acks=all append in durable mode that still has to be fdatasynced before it is answered.
#[derive(Debug, Clone)]
pub struct PendingSync {
    pub tp: TopicPartition,
    pub target: SyncTarget,
}

impl ReplicaManager {
    /// Over the logs `logs` opened: this node leads each of them alone (a single node), in the
    /// leader epoch its log last recorded.
    pub fn new(logs: LogManager, backend: Backend, durable_acks_all: bool, local_node: i32) -> ReplicaManager {
        let mut partitions = HashMap::new();
        for tp in logs.all_partitions() {
            if let Some(log) = logs.get(&tp) {
                let epoch = log.lock().unwrap_or_else(|e| e.into_inner()).leader_epoch();
                partitions.insert(tp, Arc::new(Partition::new(ReplicationState::single_node(local_node, epoch))));
            }
        }
        ReplicaManager {
            logs,
            purgatory: Arc::new(Purgatory::default()),
            backend,
            durable_acks_all,
            background_syncs: Arc::default(),
            local_node,
            partitions: std::sync::RwLock::new(partitions),
            clustered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A broker in a metadata quorum: no partition is led here until the cluster's metadata
    /// says so (every partition, and every one made later, waits for its leader and replicas).
    pub fn await_metadata(&self) {
        self.clustered.store(true, std::sync::atomic::Ordering::Release);
        for p in self.partitions.read().unwrap_or_else(|e| e.into_inner()).values() {
            *p.lock() = ReplicationState::awaiting_metadata(self.local_node);
        }
    }

    /// Moves a led partition's high watermark to the smallest log end offset in its ISR (never
    /// back). Called with the log locked; the partition's lock is taken inside it (always in this
    /// order: log, then partition). Returns whether it moved.
    fn advance_high_watermark(&self, tp: &TopicPartition, log: &mut PartitionLog) -> bool {
        let (end, current) = (log.log_end_offset(), log.high_watermark());
        let hw = match self.partition(tp) {
            Some(p) => p.lock().high_watermark(end, current),
            None => end,
        };
        if hw == current {
            return false;
        }
        log.set_high_watermark(hw);
        true
    }

    /// This broker leads `tp` from now on, as `state` says (the cluster's metadata decided it).
    /// A new leader epoch is recorded at the log end and stamped on the appends that follow.
    pub fn become_leader(&self, tp: &TopicPartition, state: LeaderAndIsr, now_ms: i64) -> Result<(), ReplicaError> {
        let partition = self.partition(tp).ok_or(ReplicaError::UnknownTopicOrPartition)?;
        let log = self.log(tp)?;
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let epoch = state.leader_epoch;
        let new_epoch = partition.lock().make_leader(state, log.log_end_offset(), now_ms).map_err(ReplicaError::Partition)?;
        if new_epoch {
            log.begin_leader_epoch(epoch).map_err(|e| self.reported(tp, "leader epoch checkpoint", e))?;
        }
        if self.advance_high_watermark(tp, &mut log) {
            drop(log);
            self.purgatory.wake(tp);
        }
        Ok(())
    }

    /// Another broker leads `tp` from now on; the replica fetcher copies its log.
    pub fn become_follower(&self, tp: &TopicPartition, state: LeaderAndIsr) -> Result<(), ReplicaError> {
        let partition = self.partition(tp).ok_or(ReplicaError::UnknownTopicOrPartition)?;
        // Changed with the log locked, so a fetched batch or a truncation for the previous leader
        // or epoch, checked under the same lock, is either applied before or refused after.
        let log = self.log(tp)?;
        let guard = log.lock().unwrap_or_else(|e| e.into_inner());
        partition.lock().make_follower(state).map_err(ReplicaError::Partition)?;
        drop(guard);
        // Parked fetches and produces must learn that this broker no longer leads.
        self.purgatory.wake(tp);
        Ok(())
    }

    /// The leader's side of a follower's fetch: records how far `replica` has fetched, moves the
    /// high watermark if the ISR now holds more, and locates what the follower needs next (up to
    /// the log end, not the high watermark). Also returns the ISR with `replica` added when it
    /// has caught up (for an AlterPartition).
    pub fn read_for_follower(&self, tp: &TopicPartition, replica: i32, fetch_offset: i64, max_bytes: usize, now_ms: i64) -> Result<(PartitionRead, Option<Vec<i32>>), ReplicaError> {
        let partition = self.partition(tp).ok_or(ReplicaError::UnknownTopicOrPartition)?;
        let log = self.log(tp)?;
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        let end = log.log_end_offset();
        if fetch_offset > end || fetch_offset < log.log_start_offset() {
            return Err(StorageError::OffsetOutOfRange { requested: fetch_offset, log_start: log.log_start_offset(), log_end: end }.into());
        }
        partition.lock().record_follower_fetch(replica, fetch_offset, end, now_ms).map_err(ReplicaError::Partition)?;
        let moved = self.advance_high_watermark(tp, &mut log);
        let expand = {
            let (hw, epoch_start) = (log.high_watermark(), log.end_offset_for_epoch(log.leader_epoch() - 1).1.max(0));
            partition.lock().isr_to_expand(replica, hw, epoch_start)
        };
        let offsets = Self::offsets_of(&log);
        let located = log.read_range(fetch_offset, max_bytes, end).map_err(|e| self.read_failed(tp, "read", e))?;
        drop(log);
        if moved {
            self.purgatory.wake(tp);
        }
        Ok((PartitionRead { offsets, records: located.records, aborted: Vec::new(), readahead: located.readahead }, expand))
    }

    /// Whether `replica` is in the partition's ISR as this broker knows it (a replication throttle
    /// never holds an in-sync replica back). Memory only.
    pub fn is_in_sync(&self, tp: &TopicPartition, replica: i32) -> bool {
        self.partition(tp).is_some_and(|p| p.lock().state().isr.contains(&replica))
    }

    /// The follower's side: appends what was fetched from the leader and takes the leader's high
    /// watermark (never past this log's end). Returns the new log end offset.
    pub fn append_as_follower(&self, tp: &TopicPartition, leader_epoch: i32, records: &[u8], leader_high_watermark: i64) -> Result<i64, ReplicaError> {
        let log = self.log(tp)?;
        let (end, rolled) = {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            self.check_following(tp, leader_epoch)?;
            let appended = log.append_as_follower(records, now_ms());
            let rolled = log.take_roll_flush();
            if let Err(e) = appended {
                return Err(self.reported(tp, "follower append", e));
            }
            let hw = leader_high_watermark.min(log.log_end_offset()).max(log.high_watermark());
            log.set_high_watermark(hw);
            (log.log_end_offset(), rolled)
        };
        if let Some(job) = rolled {
            self.flush_rolled(tp, log.clone(), job);
        }
        self.purgatory.wake(tp);
        Ok(end)
    }

    /// A follower cuts a divergent tail from its log: the leader of `leader_epoch` answered
    /// OffsetForLeaderEpoch for the log's latest epoch with (`answer_epoch`, `answer_end`).
    /// Returns the decision it applied (where it cut, and whether to ask again).
    pub fn truncate_divergent(&self, tp: &TopicPartition, leader_epoch: i32, answer_epoch: i32, answer_end: i64) -> Result<Divergence, ReplicaError> {
        let log = self.log(tp)?;
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        self.check_following(tp, leader_epoch)?;
        let decision = log.divergence(answer_epoch, answer_end);
        if let Some(offset) = decision.truncate_to {
            log.truncate_to(offset, now_ms()).map_err(|e| self.reported(tp, "truncation", e))?;
        }
        Ok(decision)
    }

    /// A follower's write (a fetched batch, a truncation) is applied only while this broker still
    /// follows the leader of `leader_epoch`, the epoch the fetch was sent in (Kafka's fetcher
    /// checks its fetch state's epoch the same way). An answer that arrives after the broker became
    /// leader (a leader never cuts or overwrites its own log), or after it moved on to another
    /// leader or epoch (the old leader's records may not be the new one's), is dropped. Checked
    /// with the log locked, as `become_leader` and `become_follower` change the state with it
    /// locked.
    fn check_following(&self, tp: &TopicPartition, leader_epoch: i32) -> Result<(), ReplicaError> {
        let Some(partition) = self.partition(tp) else {
            return Err(ReplicaError::UnknownTopicOrPartition);
        };
        let state = partition.lock();
        if state.is_leader() {
            tracing::info!(partition = %tp, "a follower's write arrived after this broker became leader; dropped");
            return Err(ReplicaError::Partition(PartitionError::NotLeaderOrFollower));
        }
        if state.state().leader_epoch != leader_epoch {
            tracing::debug!(partition = %tp, fetched_in = leader_epoch, now = state.state().leader_epoch, "a follower's write from an earlier leader epoch arrived; dropped");
            return Err(ReplicaError::Partition(PartitionError::FencedLeaderEpoch));
        }
        Ok(())
    }

    /// Waits until the ISR holds everything below `acked_at` (the high watermark reached it), for
    /// an acks=all produce; Kafka's DelayedProduce, parked on the partition's purgatory. Gives up
    /// at `deadline` (REQUEST_TIMED_OUT), when this broker stops leading the partition
    /// (NOT_LEADER_OR_FOLLOWER), or when the ISR shrank below `min_isr` meanwhile
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND). Memory only: the published high watermark is read
    /// without the log's lock.
    pub async fn wait_for_replicas(&self, tp: &TopicPartition, published: &PublishedOffsets, acked_at: i64, min_isr: i32, deadline: tokio::time::Instant) -> Result<(), AckError> {
        let watch = self.purgatory.watch(std::iter::once(tp));
        loop {
            let Some(partition) = self.partition(tp) else {
                return Err(AckError::NotLeader);
            };
            {
                let state = partition.lock();
                if !state.is_leader() {
                    return Err(AckError::NotLeader);
                }
                if published.high_watermark() >= acked_at {
                    return if state.check_min_isr(min_isr).is_ok() { Ok(()) } else { Err(AckError::NotEnoughReplicasAfterAppend) };
                }
            }
            tokio::select! {
                _ = watch.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Err(AckError::TimedOut),
            }
        }
    }

    /// A follower's fetch position: its log end offset, its log start offset and the latest
    /// leader epoch its log knows (None for a log without epochs).
    pub fn follower_position(&self, tp: &TopicPartition) -> Result<(i64, i64, Option<i32>), ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        Ok((log.log_end_offset(), log.log_start_offset(), log.latest_epoch()))
    }

    /// The partition's published high watermark and last stable offset, for waiting on them
    /// without its lock. May wait for the partition map: call it from a handler thread.
    pub fn published(&self, tp: &TopicPartition) -> Option<Arc<PublishedOffsets>> {
        let log = self.logs.get(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        Some(log.published())
    }

    /// The replication state of a partition this broker holds a replica of. Memory only.
    /// The partitions led here whose ISR holds a follower behind for longer than `lag_max_ms`
    /// (`replica.lag.time.max.ms`), with the ISR they should shrink to.
    pub fn isr_shrinks(&self, now_ms: i64, lag_max_ms: i64) -> Vec<(TopicPartition, Vec<i32>)> {
        let partitions: Vec<(TopicPartition, Arc<Partition>)> =
            self.partitions.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(tp, p)| (tp.clone(), p.clone())).collect();
        let mut out = Vec::new();
        for (tp, partition) in partitions {
            if !partition.lock().is_leader() {
                continue;
            }
            let Some(log) = self.logs.get(&tp) else { continue };
            let end = log.lock().unwrap_or_else(|e| e.into_inner()).log_end_offset();
            if let Some(isr) = partition.lock().isr_to_shrink(end, now_ms, lag_max_ms) {
                out.push((tp, isr));
            }
        }
        out
    }

    /// Every partition with a replica here, by name (the map's lock held only to copy it).
    pub fn all_partitions(&self) -> Vec<(TopicPartition, Arc<Partition>)> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(tp, p)| (tp.clone(), p.clone())).collect()
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner()).get(tp).cloned()
    }

    /// The replica a consumer in `client_rack` should fetch from instead of this leader (KIP-392;
    /// see [`super::partition::ReplicationState::preferred_read_replica`]); `rack_of` knows the
    /// live brokers' racks.
    pub fn preferred_read_replica(&self, tp: &TopicPartition, client_rack: &str, fetch_offset: i64, rack_of: impl Fn(i32) -> Option<Option<String>>) -> Option<i32> {
        let partition = self.partition(tp)?;
        let state = partition.lock();
        state.preferred_read_replica(client_rack, fetch_offset, now_ms(), rack_of)
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Whether durable mode is on.
    pub fn durable_acks_all(&self) -> bool {
        self.durable_acks_all
    }

    pub fn logs(&self) -> &LogManager {
        &self.logs
    }

    fn log(&self, tp: &TopicPartition) -> Result<Arc<std::sync::Mutex<PartitionLog>>, ReplicaError> {
        if let Some(offline) = self.logs.offline_error(tp) {
            return Err(offline.into());
        }
        self.logs.get(tp).ok_or(ReplicaError::UnknownTopicOrPartition)
    }

    /// [`ReplicaManager::log`], or when `wait_free` (a no-wait scope) the partition map only
    /// tried: a map being changed or an offline log dir answers [`nowait::would_block`], and the
    /// caller asks again where it may wait.
    fn log_for(&self, tp: &TopicPartition, wait_free: bool) -> Result<Arc<std::sync::Mutex<PartitionLog>>, ReplicaError> {
        if !wait_free {
            return self.log(tp);
        }
        self.logs.try_get(tp).ok_or_else(|| StorageError::Io(nowait::would_block()))?.ok_or(ReplicaError::UnknownTopicOrPartition)
    }

    /// An error `what` got on `tp`'s log: reported to the log dir failure policy, passed on.
    fn reported(&self, tp: &TopicPartition, what: &str, e: StorageError) -> ReplicaError {
        self.logs.report(tp, what, &e);
        e.into()
    }

    /// A read's failure: EIO from the device takes the log dir offline, as a failed write does
    /// (Kafka's reads report any IOException). Other read errors (a range cut short by a
    /// concurrent truncation, EMFILE) say nothing of the disk and only fail this read.
    fn read_failed(&self, tp: &TopicPartition, what: &str, e: StorageError) -> ReplicaError {
        if matches!(&e, StorageError::Io(io) if io.raw_os_error() == Some(libc::EIO)) {
            return self.reported(tp, what, e);
        }
        e.into()
    }

    /// Validates and appends one partition's record batches. A duplicate from an idempotent
    /// producer's retry answers with the offset the batch got the first time.
    pub fn append(&self, tp: &TopicPartition, records: &Bytes) -> Result<Appended, ReplicaError> {
        self.append_with(tp, records, false).map(|(a, _)| a)
    }

    /// Produce's append: as [`ReplicaManager::append`], plus, for acks=all in durable mode, the
    /// sync the caller must complete ([`ReplicaManager::complete_sync`]) before answering. A
    /// duplicate gets one too: its original may have been acknowledged with acks=1 or still be
    /// on its way to the disk.
    pub fn append_for_produce(&self, tp: &TopicPartition, records: &Bytes, acks: i16) -> Result<(Appended, Option<PendingSync>), ReplicaError> {
        let (appended, target) = self.append_with(tp, records, acks == -1)?;
        let sync = (acks == -1 && self.durable_acks_all).then(|| PendingSync { tp: tp.clone(), target });
        Ok((appended, sync))
    }

    /// Durable mode, outside the partition lock: fdatasync the segment file (concurrent
    /// producers' syncs of one file share an fsync in the io_uring backend), then move the
    /// recovery point under the lock. Blocks on the disk: call it from spawn_blocking.
    pub fn complete_sync(&self, sync: &PendingSync) -> Result<(), ReplicaError> {
        let log = self.log(&sync.tp)?;
        sync.target.sync().map_err(|e| self.reported(&sync.tp, "durable-mode fsync", e.into()))?;
        {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.mark_synced(&sync.target);
            durable_sync::publish_synced(&mut log);
        }
        self.purgatory.wake(&sync.tp);
        Ok(())
    }

    /// Writes a transaction marker (a control batch) for `producer_id` at `epoch`: the end of
    /// its transaction on this partition. Markers pass the epoch check (a stale epoch is
    /// refused) but no sequence check.
    pub fn append_marker(&self, tp: &TopicPartition, producer_id: i64, epoch: i16, marker: Marker) -> Result<Appended, ReplicaError> {
        let batch = control::encode_marker(producer_id, epoch, marker, now_ms());
        self.append_with_control(tp, &batch, true, false).map(|(a, _)| a)
    }

    fn append_with(&self, tp: &TopicPartition, records: &Bytes, produce_syncs: bool) -> Result<(Appended, SyncTarget), ReplicaError> {
        self.append_with_control(tp, records, false, produce_syncs)
    }

    /// The append, and what a durable-mode sync of it would cover (taken under the same lock).
    /// `produce_syncs`: in durable mode the caller syncs it (acks=all); otherwise a background
    /// sync is queued, which moves the high watermark.
    ///
    /// Inside [`nowait::run`] (a produce tried on an async worker) it appends only when that
    /// cannot wait: the partition map and the log's lock are tried, and the log must say under
    /// that lock that the append is small page-cache writes (`PartitionLog::append_would_wait`).
    /// Otherwise it answers [`nowait::would_block`] (as a storage error) having changed nothing,
    /// and the caller makes the append on a handler thread.
    fn append_with_control(&self, tp: &TopicPartition, records: &Bytes, control_batches: bool, produce_syncs: bool) -> Result<(Appended, SyncTarget), ReplicaError> {
        let wait_free = nowait::active();
        let log = self.log_for(tp, wait_free)?;
        let lock = |log| lock_log(log, wait_free);
        let now = now_ms();
        let (mut limits, compression) = {
            let log = lock(&log)?;
            (log.config().validate_config(now), log.config().compression)
        };
        limits.allow_control_batches = control_batches;
        limits.require_keys &= !control_batches;
        let validated = validate(records, &limits).map_err(StorageError::from)?;
        // compression.type: a batch in another codec is rebuilt in the topic's, outside the lock.
        let (records, validated) = crate::records::recompress::to_topic_codec(records, validated, compression, &limits).map_err(StorageError::from)?;
        let records = &records;
        if validated.batch_count() != 1 {
            // Kafka: produce v3+ carries exactly one record batch per partition.
            return Err(StorageError::from(RecordsError::InvalidRecord { position: 0, reason: "expected exactly one record batch" }).into());
        }
        let (result, rolled) = {
            let mut log = lock(&log)?;
            if wait_free && log.append_would_wait(&validated, now) {
                return Err(StorageError::Io(nowait::would_block()).into());
            }
            // The records are not copied to set their base offset (see append_shared). Checked
            // above not to wait, the append itself runs as anywhere else: a budget slot that a
            // reader holds for a moment is waited for, not mistaken for a failed write.
            let appended = nowait::allowing_waits(|| log.append_shared(records, &validated, now));
            let rolled = log.take_roll_flush();
            let appended = match appended {
                Ok(info) => {
                    // Readers may see what every in-sync replica has (alone: the append itself);
                    // in durable mode only once it is fsynced (durable_sync).
                    if !self.durable_acks_all {
                        self.advance_high_watermark(tp, &mut log);
                    }
                    Ok(Appended {
                    base_offset: info.base_offset,
                    log_append_time_ms: info.log_append_time_ms,
                    log_start_offset: log.log_start_offset(),
                    acked_at: info.last_offset + 1,
                })
                }
                Err(StorageError::DuplicateSequence { base_offset, last_offset }) => Ok(Appended {
                    base_offset,
                    log_append_time_ms: -1,
                    log_start_offset: log.log_start_offset(),
                    // The original's acknowledgement may still be waiting for the replicas.
                    acked_at: last_offset + 1,
                }),
                Err(e) => Err(self.reported(tp, "append", e)),
            };
            (appended.map(|a| (a, log.sync_target())), rolled)
        };
        // Started once the lock is released: without a runtime the flush runs inline and takes it.
        if let Some(job) = rolled {
            self.flush_rolled(tp, log.clone(), job);
        }
        if result.is_ok() {
            if self.durable_acks_all
                && !produce_syncs
                && let Some(dir) = self.logs.log_dir_of(tp)
            {
                let failures = self.logs.failures().clone();
                self.background_syncs.schedule(SyncJob { tp: tp.clone(), log, dir, failures, purgatory: self.purgatory.clone() });
            }
            // In durable mode the high watermark moves at the sync, which wakes the fetches then.
            if !self.durable_acks_all {
                self.purgatory.wake(tp);
            }
        }
        result
    }

    /// fsyncs the segments a roll sealed, off the partition lock and off the request (on the
    /// blocking pool; inline without a runtime), then moves the recovery point past them. A
    /// failure takes the log dir offline: the sealed data's state is unknown.
    fn flush_rolled(&self, tp: &TopicPartition, log: Arc<std::sync::Mutex<PartitionLog>>, job: RollFlush) {
        let Some(dir) = self.logs.log_dir_of(tp) else { return };
        let (failures, durable, purgatory, tp) = (self.logs.failures().clone(), self.durable_acks_all, self.purgatory.clone(), tp.clone());
        let run = move || {
            if failures.is_offline(&dir) {
                return;
            }
            if let Err(e) = job.sync() {
                failures.report(&dir, "fsync of a rolled segment", &StorageError::from(e));
                return;
            }
            let started = std::time::Instant::now();
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let locked = started.elapsed();
            log.complete_roll_flush(&job);
            if durable {
                durable_sync::publish_synced(&mut log);
                drop(log);
                purgatory.wake(&tp);
            }
            tracing::debug!(lock_wait_us = locked.as_micros() as u64, under_lock_us = (started.elapsed() - locked).as_micros() as u64, "completed a roll flush");
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(run)),
            Err(_) => run(),
        }
    }

    /// OffsetForLeaderEpoch: (the partition's current leader epoch, (largest known epoch <=
    /// `epoch`, its end offset)).
    pub fn end_offset_for_epoch(&self, tp: &TopicPartition, epoch: i32) -> Result<(i32, (i32, i64)), ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        Ok((log.leader_epoch(), log.end_offset_for_epoch(epoch)))
    }

    pub fn offsets(&self, tp: &TopicPartition) -> Result<PartitionOffsets, ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Self::offsets_of(&log))
    }

    fn offsets_of(log: &PartitionLog) -> PartitionOffsets {
        PartitionOffsets { log_start_offset: log.log_start_offset(), high_watermark: log.high_watermark(), last_stable_offset: log.last_stable_offset() }
    }

    /// Reads whole batches from `fetch_offset`, below the high watermark, into memory (the
    /// coordinators replaying their internal topics). See [`ReplicaManager::read_range`].
    pub fn read(&self, tp: &TopicPartition, fetch_offset: i64, max_bytes: usize) -> Result<(PartitionOffsets, Bytes), ReplicaError> {
        let read = self.read_range(tp, fetch_offset, max_bytes, true, false)?;
        let data = match read.records {
            Some(r) => r.read_bytes().map_err(|e| self.read_failed(tp, "read", e.into()))?,
            None => Bytes::new(),
        };
        Ok((read.offsets, data))
    }

    /// Whole batches from `fetch_offset` up to the log end (not the high watermark): what a
    /// coordinator taking over an internal partition in a cluster replays, as Kafka's loader
    /// reads its log to the end.
    pub fn read_to_log_end(&self, tp: &TopicPartition, fetch_offset: i64, max_bytes: usize) -> Result<Bytes, ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        let end = log.log_end_offset();
        let from = fetch_offset.max(log.log_start_offset());
        if from >= end {
            return Ok(Bytes::new());
        }
        let located = log.read_range(from, max_bytes, end).map_err(|e| self.read_failed(tp, "read", e))?;
        drop(log);
        match located.records {
            Some(r) => r.read_bytes().map_err(|e| self.read_failed(tp, "read", e.into())),
            None => Ok(Bytes::new()),
        }
    }

    /// Locates whole batches from `fetch_offset`, below the high watermark (below the last
    /// stable offset for `read_committed`, with the aborted transactions of the range), without
    /// reading them (Fetch sends them file-to-socket). With `min_one` the first batch is
    /// returned even when larger than `max_bytes` (KIP-74); without it such a batch is left for
    /// a later fetch.
    ///
    /// Inside [`nowait::run`] it never waits: a partition map being changed, a log locked by an
    /// append, or bytes not in the page cache answer [`nowait::would_block`] (as a storage error)
    /// and the caller asks again where it may wait.
    pub fn read_range(&self, tp: &TopicPartition, fetch_offset: i64, max_bytes: usize, min_one: bool, read_committed: bool) -> Result<PartitionRead, ReplicaError> {
        self.read_range_after(tp, fetch_offset, UNDEFINED_EPOCH, max_bytes, min_one, read_committed).map(|(read, _)| read)
    }

    /// A fetch's read (KIP-320): as [`ReplicaManager::read_range`], unless the epoch of the last
    /// batch the reader fetched (`last_fetched_epoch`, Fetch v12+) shows that its copy diverged
    /// from this log (the log was truncated under it, an unclean election): then nothing is read
    /// and the answer is this log's (epoch, end offset) for that epoch, where the reader must
    /// truncate or validate its position, as Kafka's `Partition.readRecords`. An epoch this log
    /// cannot place (no epochs recorded, one newer than its latest) is not checked.
    pub fn read_range_after(&self, tp: &TopicPartition, fetch_offset: i64, last_fetched_epoch: i32, max_bytes: usize, min_one: bool, read_committed: bool) -> Result<(PartitionRead, Option<(i32, i64)>), ReplicaError> {
        let wait_free = nowait::active();
        let log = self.log_for(tp, wait_free)?;
        let log = lock_log(&log, wait_free)?;
        let offsets = Self::offsets_of(&log);
        if last_fetched_epoch >= 0 && fetch_offset >= offsets.log_start_offset {
            let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
            if epoch != UNDEFINED_EPOCH && end != UNDEFINED_EPOCH_OFFSET && (epoch < last_fetched_epoch || end < fetch_offset) {
                return Ok((PartitionRead { offsets, records: None, aborted: Vec::new(), readahead: None }, Some((epoch, end))));
            }
        }
        let upper = if read_committed { offsets.last_stable_offset } else { offsets.high_watermark };
        let located = log.read_range(fetch_offset, max_bytes, upper).map_err(|e| self.read_failed(tp, "read", e))?;
        let Some(records) = located.records.filter(|r| min_one || r.len <= max_bytes) else {
            return Ok((PartitionRead { offsets, records: None, aborted: Vec::new(), readahead: None }, None));
        };
        let aborted = if read_committed { log.aborted_transactions(fetch_offset, located.last_offset + 1) } else { Vec::new() };
        Ok((PartitionRead { offsets, records: Some(records), aborted, readahead: located.readahead }, None))
    }

    /// The producers with state on a partition (DescribeProducers), with the partition's open
    /// transactions' first offsets.
    /// Whether `producer_id` at `epoch` has a transaction open on this partition (its first
    /// transactional batch here was appended and no marker has ended it yet). In a no-wait scope
    /// a log locked elsewhere answers false.
    pub fn has_ongoing_txn(&self, tp: &TopicPartition, producer_id: i64, epoch: i16) -> bool {
        let wait_free = nowait::active();
        let Ok(log) = self.log_for(tp, wait_free) else { return false };
        let Ok(log) = lock_log(&log, wait_free) else { return false };
        log.producer_state().entry(producer_id).is_some_and(|e| e.epoch == epoch && e.current_txn_first_offset >= 0)
    }

    pub fn producers(&self, tp: &TopicPartition) -> Result<Vec<(i64, ProducerEntry)>, ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        Ok(log.producer_state().producers().map(|(id, e)| (id, e.clone())).collect())
    }

    /// The first offset whose timestamp is >= `timestamp`, with that record's timestamp.
    pub fn offset_for_timestamp(&self, tp: &TopicPartition, timestamp: i64) -> Result<Option<(i64, i64)>, ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.offset_for_timestamp(timestamp).map_err(|e| self.read_failed(tp, "read by timestamp", e))
    }

    /// The record with the largest timestamp: (timestamp, offset), or None for an empty log.
    pub fn max_timestamp(&self, tp: &TopicPartition) -> Result<Option<(i64, i64)>, ReplicaError> {
        let log = self.log(tp)?;
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.max_timestamp().map_err(|e| self.read_failed(tp, "read of the largest timestamp", e))
    }

    /// DeleteRecords for one partition: `offset` -1 means the high watermark. Returns the new
    /// low watermark (log start offset), checkpointed before the answer so it holds after a crash.
    pub fn delete_records(&self, tp: &TopicPartition, offset: i64) -> Result<i64, ReplicaError> {
        let log = self.log(tp)?;
        let start = {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            let offset = if offset == -1 { log.high_watermark() } else { offset };
            log.delete_records_before(offset).map_err(|e| self.reported(tp, "DeleteRecords", e))?
        };
        // A parked fetch below the new log start answers OFFSET_OUT_OF_RANGE now.
        self.purgatory.wake(tp);
        self.logs.checkpoint()?;
        if let Some(offline) = self.logs.offline_error(tp) {
            // The checkpoint that makes the new log start offset hold after a crash failed.
            return Err(offline.into());
        }
        Ok(start)
    }

    pub fn create_partition(&self, tp: &TopicPartition, config: LogConfig) -> Result<(), StorageError> {
        let log = self.logs.create_log(tp, config)?;
        let epoch = log.lock().unwrap_or_else(|e| e.into_inner()).leader_epoch();
        let state = if self.clustered.load(std::sync::atomic::Ordering::Acquire) {
            ReplicationState::awaiting_metadata(self.local_node)
        } else {
            ReplicationState::single_node(self.local_node, epoch)
        };
        let partition = Arc::new(Partition::new(state));
        self.partitions.write().unwrap_or_else(|e| e.into_inner()).insert(tp.clone(), partition);
        Ok(())
    }

    pub fn delete_partition(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        self.partitions.write().unwrap_or_else(|e| e.into_inner()).remove(tp);
        self.logs.delete_log(tp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_support::simple_batch;
    use crate::storage::io::{FileIo, StdIo};

    fn replicas(dir: &std::path::Path) -> ReplicaManager {
        let io: Arc<dyn FileIo> = Arc::new(StdIo);
        let logs = LogManager::open(vec![dir.to_path_buf()], LogConfig::default(), io.clone()).expect("open");
        ReplicaManager::new(logs, Backend { io, name: "std", uring_stats: None, budget: None }, false, 1)
    }

    fn would_block<T>(r: &Result<T, ReplicaError>) -> bool {
        matches!(r, Err(ReplicaError::Storage(StorageError::Io(e))) if nowait::is_would_block(e))
    }

    /// A produce tried on an async worker (a no-wait scope) is appended there only when the
    /// append is small page-cache writes: a held lock, a preallocation step, a roll or a bulk
    /// write are declined with nothing changed, and the same append is then made where waiting
    /// is allowed.
    #[test]
    fn inside_a_no_wait_scope_an_append_is_made_only_when_it_cannot_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rm = replicas(dir.path());
        let tp = TopicPartition::new("w", 0);
        let config = LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 1 << 30, ..LogConfig::default() };
        rm.create_partition(&tp, config).expect("create");
        let log = rm.logs.get(&tp).expect("log");
        let leo = || log.lock().expect("lock").log_end_offset();
        let small = Bytes::from(simple_batch(3));
        let now = |b: &Bytes| nowait::run(|| rm.append(&tp, b));
        // The new segment's first blocks are not reserved yet (preallocation step).
        assert!(would_block(&now(&small)), "a preallocation step waits");
        assert_eq!(leo(), 0, "nothing appended");
        rm.append(&tp, &small).expect("append off the worker");
        assert_eq!(now(&small).expect("one small write").base_offset, 3);
        assert_eq!(leo(), 6);
        // The log's lock held elsewhere.
        {
            let _held = log.lock().expect("lock");
            assert!(would_block(&now(&small)), "a held lock is not waited for");
        }
        assert_eq!(leo(), 6);
        // A bulk write goes through the storage thread.
        let value = "v".repeat(crate::storage::io::NO_WAIT_WRITE_MAX_BYTES);
        let bulk = Bytes::from(crate::records::batch::test_support::keyed_batch(&[(None, Some(value.as_str()))], now_ms(), kafka_protocol::records::Compression::None, None));
        assert!(would_block(&now(&bulk)), "a bulk write waits for the ring");
        assert_eq!(leo(), 6);
        // An append that would pass segment.bytes rolls first.
        let segments = || std::fs::read_dir(dir.path().join("w-0")).expect("dir").filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))).count();
        let mut appended = 6;
        while !would_block(&now(&small)) {
            appended += 3;
            assert_eq!(leo(), appended);
        }
        assert_eq!((leo(), segments()), (appended, 1), "a roll is declined before anything is written");
        rm.append(&tp, &small).expect("roll off the worker");
        assert_eq!((leo(), segments()), (appended + 3, 2));
    }

    /// An index entry due is written on the worker too: two small writes into the index files'
    /// tail pages, which the entry before wrote. The entries reach the files at once.
    #[test]
    fn inside_a_no_wait_scope_an_append_owing_an_index_entry_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rm = replicas(dir.path());
        let tp = TopicPartition::new("i", 0);
        let small = Bytes::from(simple_batch(3));
        // An entry is owed once more than 1.5 batches were appended since the last one.
        let interval = small.len() as u64 * 3 / 2;
        rm.create_partition(&tp, LogConfig { index_interval_bytes: interval, preallocate_step_bytes: 0, ..LogConfig::default() }).expect("create");
        let now = || nowait::run(|| rm.append(&tp, &small));
        let index_len = |ext: &str| std::fs::metadata(dir.path().join("i-0").join(format!("00000000000000000000.{ext}"))).expect("index file").len();
        assert!(now().is_ok() && now().is_ok(), "the first two appends owe no entry");
        assert_eq!((index_len("index"), index_len("timeindex")), (0, 0));
        assert_eq!(now().expect("an append owing an entry").base_offset, 6);
        assert_eq!((index_len("index"), index_len("timeindex")), (8, 12), "one entry in each index, in the files");
        assert!(now().is_ok() && now().is_ok());
        assert_eq!(index_len("index"), 16);
    }

    #[test]
    fn a_consumer_whose_last_fetched_epoch_diverged_gets_where_that_epoch_ends_instead_of_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rm = replicas(dir.path());
        let tp = TopicPartition::new("d", 0);
        rm.create_partition(&tp, LogConfig::default()).expect("create");
        let log = rm.logs.get(&tp).expect("log");
        // Epoch 1 wrote offsets 0..5, epoch 3 wrote 5..10 (epoch 2 was never led here).
        for (epoch, records) in [(1, 5), (3, 5)] {
            log.lock().expect("lock").begin_leader_epoch(epoch).expect("epoch");
            rm.append(&tp, &Bytes::from(simple_batch(records))).expect("append");
        }
        let read = |epoch: i32, offset: i64| rm.read_range_after(&tp, offset, epoch, 1 << 20, true, false).expect("read");
        // A consumer that fetched up to 7 in an epoch 2 this log never had: its copy diverged at 5.
        let (r, diverging) = read(2, 7);
        assert_eq!((diverging, r.records.is_some()), (Some((1, 5)), false));
        // One whose epoch 1 went on past where this log's epoch 1 ended (it was truncated).
        assert_eq!(read(1, 7).1, Some((1, 5)));
        // Consistent histories read on: epoch 1 up to its end, epoch 3 inside it.
        for (epoch, offset) in [(1, 5), (3, 8), (3, 10)] {
            let (r, diverging) = read(epoch, offset);
            assert_eq!(diverging, None, "epoch {epoch} at {offset}");
            assert_eq!(r.records.is_some(), offset < 10);
        }
        // No epoch (-1, before Fetch v12) or one this log cannot place (newer than its latest): no check.
        assert_eq!(read(-1, 7).1, None);
        assert_eq!(read(9, 7).1, None);
    }

    #[test]
    fn a_read_that_must_not_wait_finds_what_a_waiting_read_finds_or_gives_up_without_a_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rm = replicas(dir.path());
        let tp = TopicPartition::new("n", 0);
        rm.create_partition(&tp, LogConfig::default()).expect("create");
        for _ in 0..3 {
            rm.append(&tp, &Bytes::from(simple_batch(4))).expect("append");
        }
        let waited = rm.read_range(&tp, 5, 1 << 20, true, false).expect("read");
        let range = |r: &PartitionRead| r.records.as_ref().map(|f| (f.position, f.len));

        // Just written, so cached: the same batches without waiting.
        let free = nowait::run(|| rm.read_range(&tp, 5, 1 << 20, true, false));
        match &free {
            Ok(r) => assert_eq!((range(r), r.offsets.high_watermark), (range(&waited), 12)),
            Err(_) => assert!(would_block(&free), "{free:?}"),
        }

        // An append holding the partition's lock: given up at once, not waited for.
        let log = rm.logs.get(&tp).expect("log");
        let held = log.lock().expect("lock");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| tx.send(nowait::run(|| rm.read_range(&tp, 5, 1 << 20, true, false))).expect("send"));
            let answer = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("answered while the lock is held");
            assert!(would_block(&answer), "{answer:?}");
        });
        drop(held);

        // Pages evicted from the page cache: given up (or, where the file system cannot tell,
        // read), never a fault that takes the dir offline.
        let file = waited.records.as_ref().expect("records").file.clone();
        file.sync_data().expect("sync");
        file.drop_cached(0, 1 << 20).expect("drop cached");
        let cold = nowait::run(|| rm.read_range(&tp, 5, 1 << 20, true, false));
        assert!(cold.is_ok() || would_block(&cold), "{cold:?}");
        assert_eq!(range(&rm.read_range(&tp, 5, 1 << 20, true, false).expect("the dir stays online")), range(&waited));
    }
}
