//! LogManager: the log.dirs, the partition directories in them (create, load, delete), checkpoints, flush, retention and the clean-shutdown marker. It holds partition logs behind std mutexes and never runs async code.
//!
//! A log dir goes offline on the errors `log_dir_failure` names; from then on nothing here touches
//! its files again (flush, retention, cleaner, checkpoints, close and deletes skip it) and new
//! partitions go to the other dirs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::checkpoint::{self, CLEANER_OFFSET_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT};
use super::cleaner::{self, CleanerConfig};
use super::io::FileIo;
use super::log::{PartitionLog, PublishedOffsets};
use super::log_dir_failure::LogDirFailures;
use super::{LogConfig, Result, StorageError};
use crate::types::TopicPartition;

/// Kafka's marker: present in a log dir only between a clean close and the next open.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Suffix of a partition directory being deleted.
pub const DELETE_DIR_SUFFIX: &str = "-delete";
/// Suffix of a partition's copy being made in another log dir (AlterReplicaLogDirs): never
/// authoritative, so an open removes it (see `log_move`).
pub const FUTURE_DIR_SUFFIX: &str = "-future";
/// In a partition directory: the copy a move committed. If the partition's old directory is
/// still there at open (a crash between the two renames), this one wins and the old one goes.
pub const MOVED_MARKER_FILE: &str = ".fjord-moved";

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A shared partition log. Lock it only for the duration of one call; never across an `.await`.
pub type SharedLog = Arc<Mutex<PartitionLog>>;

/// Locks a partition log. A poisoned lock means a panic in the middle of a change, so the in-memory
/// state cannot be trusted: report it instead of carrying on.
pub fn lock_log(log: &SharedLog) -> Result<MutexGuard<'_, PartitionLog>> {
    log.lock().map_err(|_| {
        StorageError::Corrupt("partition log lock poisoned by an earlier panic".into())
    })
}

/// One log dir as DescribeLogDirs reports it.
#[derive(Debug)]
pub struct LogDirUsage {
    pub dir: PathBuf,
    pub partitions: Vec<(TopicPartition, u64)>,
    /// Partitions being moved into this dir: (partition, bytes copied so far, offsets the copy
    /// lags behind the log end), Kafka's "future" replicas.
    pub futures: Vec<(TopicPartition, u64, i64)>,
    /// (total, usable) bytes of its file system; an error means the dir is not usable.
    pub space: std::io::Result<(u64, u64)>,
    /// Why the dir is offline (then `partitions` is empty: nothing in it is served).
    pub offline: Option<String>,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) log_dir: PathBuf,
    pub(super) log: SharedLog,
    /// The log's read bounds, readable without its lock ([`PublishedOffsets`]).
    published: Arc<PublishedOffsets>,
    /// The cleaner's position: offsets below it were compacted (cleaner-offset-checkpoint).
    pub(super) first_dirty: Arc<AtomicI64>,
}

/// All partition logs of this broker. Every method blocks on disk I/O.
#[derive(Debug)]
pub struct LogManager {
    pub(super) log_dirs: Vec<PathBuf>,
    default_config: LogConfig,
    pub(super) io: Arc<dyn FileIo>,
    logs: RwLock<HashMap<TopicPartition, Entry>>,
    /// Per log dir, whether the last shutdown was clean (informational).
    clean_at_open: Vec<bool>,
    /// Serializes checkpoint writers (periodic task, retention, DeleteRecords, cleaner, close):
    /// two at once would share the temp file, and the later rename could install stale offsets.
    pub(super) checkpoint_lock: Mutex<()>,
    /// `num.recovery.threads.per.data.dir`: threads that load and close partitions.
    threads_per_dir: usize,
    /// The log dirs taken offline by an I/O error.
    pub(super) failures: Arc<LogDirFailures>,
    /// Partitions being moved to another log dir (`log_move`), with where to and how far.
    pub(super) moves: Mutex<HashMap<TopicPartition, Arc<super::log_move::MoveState>>>,
    /// `replica.alter.log.dirs.io.max.bytes.per.second`: the pace of a move's unlocked copy.
    pub(super) move_io_rate: std::sync::atomic::AtomicU64,
    /// Where a replica not hosted yet is to be created (an AlterReplicaLogDirs that came first, as
    /// Kafka's LogManager.preferredLogDirs); taken by [`LogManager::create_log`]. The api layer
    /// asks only for partitions the metadata has, which bounds it.
    pub(super) preferred_dirs: Mutex<HashMap<TopicPartition, PathBuf>>,
}

/// Kafka's default of `num.recovery.threads.per.data.dir`.
pub const DEFAULT_RECOVERY_THREADS_PER_DIR: usize = 2;

/// Runs `f` over `items` on up to `threads` scoped threads, each taking the next item; the results
/// come back in the items' order. One thread (or one item) runs on the caller's thread.
fn on_threads<T: Send, R: Send>(threads: usize, items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((i, item)) = next else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        // A panic in `f` is a broken invariant: carry it to the caller.
        workers.into_iter().map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    for (i, r) in done.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter().map(|r| r.expect("every item ran")).collect()
}

impl LogManager {
    /// Loads every partition in `log_dirs`, finishing interrupted deletes. If a dir holds the clean
    /// shutdown marker its files are trusted; otherwise each partition recovers from its checkpointed
    /// recovery point. The marker is removed once the dir is loaded, so a crash from now on is unclean.
    pub fn open(
        log_dirs: Vec<PathBuf>,
        default_config: LogConfig,
        io: Arc<dyn FileIo>,
    ) -> Result<Self> {
        Self::open_at(log_dirs, default_config, io, now_ms())
    }

    pub fn open_at(
        log_dirs: Vec<PathBuf>,
        default_config: LogConfig,
        io: Arc<dyn FileIo>,
        now_ms: i64,
    ) -> Result<Self> {
        Self::open_with_threads(log_dirs, default_config, io, now_ms, DEFAULT_RECOVERY_THREADS_PER_DIR)
    }

    /// As [`LogManager::open_at`], loading (and after an unclean stop recovering) each dir's
    /// partitions on `threads_per_dir` threads (`num.recovery.threads.per.data.dir`); the same
    /// threads flush and close them at [`LogManager::close`]. Partitions are independent, and
    /// their loads wait mostly on the disk, so a few threads overlap those waits.
    pub fn open_with_threads(
        log_dirs: Vec<PathBuf>,
        default_config: LogConfig,
        io: Arc<dyn FileIo>,
        now_ms: i64,
        threads_per_dir: usize,
    ) -> Result<Self> {
        let threads_per_dir = threads_per_dir.max(1);
        for dir in &log_dirs {
            io.create_dir_all(dir)?;
        }
        super::log_move::finish_interrupted_moves(io.as_ref(), &log_dirs)?;
        let mut logs: HashMap<TopicPartition, Entry> = HashMap::new();
        let mut clean_at_open = Vec::with_capacity(log_dirs.len());
        for dir in &log_dirs {
            io.create_dir_all(dir)?;
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            let clean = io.exists(&marker)?;
            clean_at_open.push(clean);
            let recovery: HashMap<_, _> =
                checkpoint::read_offsets(io.as_ref(), &dir.join(RECOVERY_POINT_CHECKPOINT))?
                    .into_iter()
                    .collect();
            let starts: HashMap<_, _> =
                checkpoint::read_offsets(io.as_ref(), &dir.join(LOG_START_OFFSET_CHECKPOINT))?
                    .into_iter()
                    .collect();
            let cleaned: HashMap<_, _> =
                checkpoint::read_offsets(io.as_ref(), &dir.join(CLEANER_OFFSET_CHECKPOINT))?
                    .into_iter()
                    .collect();
            let mut found: Vec<(TopicPartition, PathBuf)> = Vec::new();
            for e in io.list_dir(dir)? {
                if !e.is_dir {
                    continue;
                }
                if e.name.ends_with(DELETE_DIR_SUFFIX) {
                    tracing::info!(dir = %e.path.display(), "finishing deletion of partition directory");
                    io.remove_dir_all(&e.path)?;
                    continue;
                }
                // Kafka's KRaft metadata log, in a log dir Kafka left: read once when the dir
                // is adopted (broker::adopt), never opened, written or served as a partition.
                if e.name == super::kafka_dir::CLUSTER_METADATA_DIR {
                    continue;
                }
                let Some(tp) = TopicPartition::from_dir_name(&e.name) else {
                    tracing::warn!(dir = %e.path.display(), "ignoring directory that is not a partition");
                    continue;
                };
                if let Some(other) = logs.get(&tp) {
                    // The same partition in two log dirs: picking one would silently hide the other's data.
                    return Err(StorageError::Corrupt(format!(
                        "partition {tp} exists in both {} and {}",
                        other.log_dir.display(),
                        dir.display()
                    )));
                }
                found.push((tp, e.path));
            }
            let opened: Vec<Result<(TopicPartition, PartitionLog)>> = on_threads(threads_per_dir, found, |(tp, path)| {
                let rp = recovery.get(&tp).copied().unwrap_or(0);
                let start = starts.get(&tp).copied().unwrap_or(0);
                let log = PartitionLog::open(io.clone(), &path, tp.clone(), default_config.clone(), rp, start, clean, now_ms)?;
                let stats = log.open_stats();
                if stats.truncated_bytes > 0 {
                    tracing::warn!(partition = %tp, truncated_bytes = stats.truncated_bytes, "recovered partition");
                }
                Ok((tp, log))
            });
            for r in opened {
                let (tp, log) = r?;
                let first_dirty = Arc::new(AtomicI64::new(cleaned.get(&tp).copied().unwrap_or(0)));
                logs.insert(
                    tp,
                    Entry {
                        log_dir: dir.clone(),
                        published: log.published(),
                        log: Arc::new(Mutex::new(log)),
                        first_dirty,
                    },
                );
            }
            if clean {
                io.remove_file(&marker)?;
                io.sync_dir(dir)?;
            }
        }
        Ok(Self {
            failures: Arc::new(LogDirFailures::new(log_dirs.len())),
            log_dirs,
            default_config,
            io,
            logs: RwLock::new(logs),
            clean_at_open,
            checkpoint_lock: Mutex::new(()),
            threads_per_dir,
            moves: Mutex::new(HashMap::new()),
            move_io_rate: std::sync::atomic::AtomicU64::new(u64::MAX),
            preferred_dirs: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Entry>> {
        // The map only ever holds complete entries, so a poisoned lock still guards consistent data.
        self.logs.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn write_map(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Entry>> {
        self.logs.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.log_dirs
    }
    pub fn default_config(&self) -> &LogConfig {
        &self.default_config
    }
    /// Whether each log dir (same order as `log_dirs`) had the clean shutdown marker at open.
    pub fn clean_at_open(&self) -> &[bool] {
        &self.clean_at_open
    }

    /// The offline log dirs (shared with whoever else sees storage errors).
    pub fn failures(&self) -> &Arc<LogDirFailures> {
        &self.failures
    }

    /// The log dir holding `tp`.
    pub fn log_dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        self.read_map().get(tp).map(|e| e.log_dir.clone())
    }

    /// `LogDirOffline` when `tp`'s log dir is offline: callers answer with it instead of touching
    /// the log. Costs an atomic load while every dir is online.
    pub fn offline_error(&self, tp: &TopicPartition) -> Option<StorageError> {
        if !self.failures.any_offline() {
            return None;
        }
        let dir = self.log_dir_of(tp)?;
        self.failures.is_offline(&dir).then_some(StorageError::LogDirOffline(dir))
    }

    /// Applies the log dir failure policy to an error `what` got on `tp`'s log. Returns whether
    /// its dir is offline now.
    pub fn report(&self, tp: &TopicPartition, what: &str, e: &StorageError) -> bool {
        self.log_dir_of(tp).is_some_and(|dir| self.failures.report(&dir, what, e))
    }

    /// A background pass's result on one log in `dir`: an error that takes the dir offline is
    /// reported and becomes `None` (the pass goes on with the other dirs); others are returned.
    fn guard<T>(&self, dir: &std::path::Path, what: &str, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if self.failures.report(dir, what, &e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a partition log in the log dir holding the fewest partitions.
    pub fn create_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        let mut map = self.write_map();
        if map.contains_key(tp) {
            return Err(StorageError::AlreadyExists(tp.to_string()));
        }
        // Counting every partition per dir costs a walk of the map; with one dir there is no
        // choice. An offline dir is never chosen.
        let online: Vec<&PathBuf> = self.log_dirs.iter().filter(|d| !self.failures.is_offline(d)).collect();
        let preferred = self.preferred_dirs.lock().unwrap_or_else(|e| e.into_inner()).remove(tp).filter(|d| online.contains(&d));
        let log_dir = match online.as_slice() {
            _ if preferred.is_some() => preferred.as_ref().expect("checked"),
            [] => return Err(StorageError::LogDirOffline(self.log_dirs.first().cloned().unwrap_or_default())),
            [only] => *only,
            dirs => *dirs
                .iter()
                .min_by_key(|d| map.values().filter(|e| &e.log_dir == **d).count())
                .expect("not empty"),
        }
        .clone();
        let dir = log_dir.join(tp.dir_name());
        let existed = self.io.exists(&dir)?;
        let log = match PartitionLog::create(self.io.clone(), &dir, tp.clone(), config, now_ms()) {
            Ok(log) => log,
            Err(e) => {
                // A creation that failed midway (EMFILE, ENOSPC) leaves no half-made directory
                // behind: it would be loaded as a partition no topic owns at the next start.
                if self.failures.report(&log_dir, "creating a partition", &e) {
                    return Err(e);
                }
                // NotFound: the creation failed before making the directory, nothing to remove.
                if !existed
                    && let Err(rm) = self.io.remove_dir_all(&dir)
                    && rm.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(dir = %dir.display(), error = %rm, "could not remove a partition directory whose creation failed");
                    self.failures.report(&log_dir, "removing a partition whose creation failed", &rm.into());
                }
                return Err(e);
            }
        };
        let published = log.published();
        let shared = Arc::new(Mutex::new(log));
        map.insert(
            tp.clone(),
            Entry {
                log_dir,
                published,
                log: shared.clone(),
                first_dirty: Arc::new(AtomicI64::new(0)),
            },
        );
        Ok(shared)
    }

    /// Returns the log, creating it with `config` if it does not exist.
    pub fn get_or_create_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        if let Some(l) = self.get(tp) {
            return Ok(l);
        }
        match self.create_log(tp, config) {
            Err(StorageError::AlreadyExists(_)) => self
                .get(tp)
                .ok_or_else(|| StorageError::UnknownPartition(tp.to_string())),
            other => other,
        }
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        self.read_map().get(tp).map(|e| e.log.clone())
    }

    /// [`LogManager::get`] for a caller that must not wait: `None` when the map is being changed
    /// or a log dir is offline (the caller asks again where it may wait), `Some(None)` for a
    /// partition this broker does not have.
    pub fn try_get(&self, tp: &TopicPartition) -> Option<Option<SharedLog>> {
        Some(self.try_map()?.get(tp).map(|e| e.log.clone()))
    }

    /// The partition's published read bounds, for a caller that must not wait (an async worker):
    /// memory only, no lock of the log, and no wait for the partition map either (its writers hold
    /// it across a partition's creation, which touches the disk). `None` when the map is being
    /// changed, the partition is unknown, or a log dir is offline: the caller then asks the log
    /// itself, on a handler thread.
    pub fn try_published(&self, tp: &TopicPartition) -> Option<Arc<PublishedOffsets>> {
        self.try_map()?.get(tp).map(|e| e.published.clone())
    }

    /// The partition map for a caller that must not wait: None while it is being changed or
    /// while a log dir is offline.
    fn try_map(&self) -> Option<std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Entry>>> {
        if self.failures.any_offline() {
            return None;
        }
        match self.logs.try_read() {
            Ok(map) => Some(map),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Renames the directory to `<topic>-<partition>.<uuid>-delete` (atomic, survives a crash as a
    /// finished delete) and then removes it.
    pub fn delete_log(&self, tp: &TopicPartition) -> Result<()> {
        let entry = self
            .write_map()
            .remove(tp)
            .ok_or_else(|| StorageError::UnknownPartition(tp.to_string()))?;
        if self.failures.is_offline(&entry.log_dir) {
            // Nothing is written in an offline dir: the directory stays (a restart reports it
            // as owned by no topic, and an operator removes it).
            tracing::warn!(partition = %tp, dir = %entry.log_dir.display(), "deleted partition's files left in the offline log dir");
            return Ok(());
        }
        let dir = lock_log(&entry.log)?.dir().to_path_buf();
        // Its files are closed now where nobody else holds the log (a rollback after EMFILE needs
        // the descriptors back for the directory fsync below).
        drop(entry.log);
        // A move that committed while this waited for the lock put the log in another log dir.
        let log_dir = dir.parent().map_or_else(|| entry.log_dir.clone(), std::path::Path::to_path_buf);
        let doomed = log_dir.join(format!(
            "{}.{}{}",
            tp.dir_name(),
            uuid::Uuid::new_v4().simple(),
            DELETE_DIR_SUFFIX
        ));
        let removed = (|| -> Result<()> {
            self.io.rename(&dir, &doomed)?;
            self.io.sync_dir(&log_dir)?;
            self.io.remove_dir_all(&doomed)?;
            Ok(())
        })();
        if let Err(e) = &removed {
            self.failures.report(&log_dir, "deleting a partition", e);
        }
        removed
    }

    pub fn update_config(&self, tp: &TopicPartition, config: LogConfig) -> Result<()> {
        let log = self
            .get(tp)
            .ok_or_else(|| StorageError::UnknownPartition(tp.to_string()))?;
        lock_log(&log)?.update_config(config);
        Ok(())
    }

    pub fn all_partitions(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.read_map().keys().cloned().collect();
        v.sort();
        v
    }

    /// Every partition log in an online log dir.
    fn snapshot_entries(&self) -> Vec<(TopicPartition, PathBuf, SharedLog)> {
        self.read_map()
            .iter()
            .filter(|(_, e)| !self.failures.is_offline(&e.log_dir))
            .map(|(tp, e)| (tp.clone(), e.log_dir.clone(), e.log.clone()))
            .collect()
    }

    /// fsyncs every log in an online dir. A failure takes its dir offline and the others go on.
    pub fn flush_all(&self, now_ms: i64) -> Result<()> {
        for (_, dir, log) in self.snapshot_entries() {
            if self.failures.is_offline(&dir) {
                continue;
            }
            let r = lock_log(&log)?.flush(now_ms);
            self.guard(&dir, "flush", r)?;
        }
        Ok(())
    }

    /// For a periodic task: flushes every log whose `flush.ms` has passed. Returns how many flushed.
    pub fn flush_due(&self, now_ms: i64) -> Result<usize> {
        let mut flushed = 0;
        for (_, dir, log) in self.snapshot_entries() {
            if self.failures.is_offline(&dir) {
                continue;
            }
            let r = lock_log(&log)?.flush_if_due(now_ms);
            flushed += usize::from(self.guard(&dir, "flush.ms flush", r)?.unwrap_or(false));
        }
        Ok(flushed)
    }

    /// Writes each log dir's recovery-point and log-start-offset checkpoints.
    pub fn checkpoint(&self) -> Result<()> {
        let _one_writer = self.checkpoint_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.checkpoint_locked(None)
    }

    /// [`LogManager::checkpoint`] for a caller holding `checkpoint_lock`. `moving`: a partition
    /// whose lock the caller holds, written with the given (log dir, recovery point, log start
    /// offset) instead of being read from its log.
    pub(super) fn checkpoint_locked(&self, moving: Option<(&TopicPartition, &std::path::Path, i64, i64)>) -> Result<()> {
        let entries = self.snapshot_entries();
        let mut first_error = None;
        for dir in &self.log_dirs {
            if self.failures.is_offline(dir) {
                continue;
            }
            let mut rps = Vec::new();
            let mut starts = Vec::new();
            for (tp, log_dir, log) in &entries {
                if log_dir != dir {
                    continue;
                }
                // The moving partition's lock is the caller's: its values come with the call.
                if let Some((m, _, rp, start)) = moving
                    && m == tp
                {
                    rps.push((tp.clone(), rp));
                    starts.push((tp.clone(), start));
                    continue;
                }
                let l = lock_log(log)?;
                rps.push((tp.clone(), l.recovery_point()));
                starts.push((tp.clone(), l.log_start_offset()));
            }
            // A moving partition is written in the dir it goes to as well as in its own.
            if let Some((tp, to, rp, start)) = moving
                && to == dir.as_path()
            {
                rps.push((tp.clone(), rp));
                starts.push((tp.clone(), start));
            }
            let moved_here = |tp: &TopicPartition| moving.is_some_and(|(m, to, ..)| m == tp && to == dir.as_path());
            let mut cleaned: Vec<(TopicPartition, i64)> = self
                .read_map()
                .iter()
                .filter(|(tp, e)| (&e.log_dir == dir || moved_here(tp)) && e.first_dirty.load(Ordering::Relaxed) > 0)
                .map(|(tp, e)| (tp.clone(), e.first_dirty.load(Ordering::Relaxed)))
                .collect();
            rps.sort();
            starts.sort();
            cleaned.sort();
            let written = checkpoint::write_offsets(self.io.as_ref(), &dir.join(CLEANER_OFFSET_CHECKPOINT), &cleaned)
                .and_then(|()| checkpoint::write_offsets(self.io.as_ref(), &dir.join(RECOVERY_POINT_CHECKPOINT), &rps))
                .and_then(|()| checkpoint::write_offsets(self.io.as_ref(), &dir.join(LOG_START_OFFSET_CHECKPOINT), &starts));
            // One dir's fault does not keep the others' checkpoints from being written.
            if let Err(e) = self.guard(dir, "writing checkpoints", written.map_err(StorageError::from)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Applies retention to every partition; returns the number of segments deleted.
    pub fn run_retention(&self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        for (_, dir, log) in self.snapshot_entries() {
            if self.failures.is_offline(&dir) {
                continue;
            }
            let r = lock_log(&log)?.apply_retention(now_ms);
            deleted += self.guard(&dir, "retention", r)?.unwrap_or(0);
        }
        if deleted > 0 {
            self.checkpoint()?;
        }
        Ok(deleted)
    }

    /// Kafka's periodic producer expiration check: every log in an online dir forgets the
    /// producers idle for `expiration_ms` (`producer.id.expiration.ms`). Each log is locked only
    /// for its own walk of its producers (no I/O). Returns how many producers were forgotten.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let mut removed = 0;
        for (tp, dir, log) in self.snapshot_entries() {
            if self.failures.is_offline(&dir) {
                continue;
            }
            match lock_log(&log) {
                Ok(mut l) => removed += l.remove_expired_producers(now_ms, expiration_ms),
                // A poisoned log answers its own errors; the pass goes on with the others.
                Err(e) => tracing::debug!(partition = %tp, error = %e, "producer expiration skips a log"),
            }
        }
        removed
    }

    /// For DescribeLogDirs: every log dir with its partitions and their sizes in bytes, and the
    /// dir's file system (total, usable) bytes.
    pub fn dir_usage(&self) -> Vec<LogDirUsage> {
        let entries = self.snapshot_entries();
        self.log_dirs
            .iter()
            .map(|dir| {
                if let Some((_, cause)) = self.failures.offline_dirs().into_iter().find(|(d, _)| d == dir) {
                    return LogDirUsage { dir: dir.clone(), partitions: Vec::new(), futures: Vec::new(), space: Err(std::io::Error::other(cause.clone())), offline: Some(cause) };
                }
                let mut partitions: Vec<(TopicPartition, u64)> = entries
                    .iter()
                    .filter(|(_, d, _)| d == dir)
                    .filter_map(|(tp, _, log)| lock_log(log).ok().map(|l| (tp.clone(), l.size_bytes())))
                    .collect();
                partitions.sort();
                let mut futures: Vec<(TopicPartition, u64, i64)> = self
                    .moves
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    // Once switched in, the copy is the partition: listed once, as current.
                    .filter(|(tp, _)| !partitions.iter().any(|(p, _)| p == *tp))
                    .filter_map(|(tp, m)| m.future_progress(dir).map(|(bytes, lag)| (tp.clone(), bytes, lag)))
                    .collect();
                futures.sort();
                LogDirUsage { dir: dir.clone(), partitions, futures, space: self.io.disk_space(dir), offline: None }
            })
            .collect()
    }

    /// One compaction pass over every log that is due (see `PartitionLog::plan_clean`): planned
    /// and swapped in under the log's lock, the reading and writing done without it, so produce
    /// and fetch go on meanwhile. `threads` cleaners (`log.cleaner.threads`) take the logs one at
    /// a time, each with its share of the buffers ([`CleanerConfig::per_thread`]); 0 cleans
    /// nothing, as Kafka's cleaner with no threads. A log whose pass fails is logged and
    /// skipped. Returns how many logs were cleaned.
    pub fn run_cleaner(&self, cfg: &CleanerConfig, threads: usize, now_ms: i64) -> Result<usize> {
        if threads == 0 {
            return Ok(0);
        }
        let entries: Vec<(TopicPartition, PathBuf, SharedLog, Arc<AtomicI64>)> = self
            .read_map()
            .iter()
            .filter(|(_, e)| !self.failures.is_offline(&e.log_dir))
            .map(|(tp, e)| (tp.clone(), e.log_dir.clone(), e.log.clone(), e.first_dirty.clone()))
            .collect();
        let share = cfg.per_thread(threads.min(entries.len()));
        let outcomes = on_threads(threads, entries, |(tp, dir, log, first_dirty)| self.clean_one(&tp, &dir, &log, &first_dirty, &share, now_ms));
        let mut cleaned = 0;
        for outcome in outcomes {
            cleaned += usize::from(outcome?);
        }
        if cleaned > 0 {
            self.checkpoint()?;
        }
        Ok(cleaned)
    }

    /// One log's compaction pass (see [`LogManager::run_cleaner`]): whether it was cleaned. Only
    /// a poisoned log lock is an error; a failed pass is logged (and may take its dir offline).
    fn clean_one(&self, tp: &TopicPartition, dir: &Path, log: &SharedLog, first_dirty: &AtomicI64, cfg: &CleanerConfig, now_ms: i64) -> Result<bool> {
        if self.failures.is_offline(dir) {
            return Ok(false);
        }
        if self.is_moving(tp) {
            // Its sealed segments are being copied: a swap now would make the copy start over.
            return Ok(false);
        }
        let Some(plan) = lock_log(log)?.plan_clean(first_dirty.load(Ordering::Relaxed), now_ms) else { return Ok(false) };
        let started = std::time::Instant::now();
        let output = match cleaner::clean(&plan, cfg, now_ms) {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(false),
            Err(e) => {
                if !self.failures.report(dir, "cleaning", &e) {
                    tracing::warn!(partition = %tp, error = %e, "cleaning failed; will retry");
                }
                return Ok(false);
            }
        };
        match lock_log(log)?.commit_clean(&output, now_ms) {
            Ok(true) => {
                first_dirty.store(output.next_dirty, Ordering::Relaxed);
                let s = output.stats;
                tracing::info!(partition = %tp, segments = output.segments.len(), bytes_read = s.bytes_read, bytes_written = s.bytes_written,
                    records_read = s.records_read, records_kept = s.records_kept, tombstones_dropped = s.tombstones_dropped,
                    cleaned_up_to = output.next_dirty, ms = started.elapsed().as_millis() as u64, "log cleaned");
                Ok(true)
            }
            Ok(false) => {
                tracing::debug!(partition = %tp, "log changed during cleaning; pass dropped");
                Ok(false)
            }
            Err(e) => {
                if !self.failures.report(dir, "swapping in cleaned segments", &e) {
                    tracing::warn!(partition = %tp, error = %e, "swapping in cleaned segments failed; recovery finishes it at the next start");
                }
                Ok(false)
            }
        }
    }

    /// Clean close: every log is sealed, flushed and snapshotted (on `num.recovery.threads.per.data.dir`
    /// threads per dir), checkpoints are written, then the marker. Nothing may be appended afterwards
    /// (the marker would lie). Closes every log, then checkpoints. A log that cannot close (a full disk, EIO) does not
    /// stop the others from closing; its recovery point stays where its last good flush left
    /// it, and no dir gets the clean-shutdown marker, so the next start re-validates every
    /// partition from its recovery point instead of trusting files a failed close left behind.
    pub fn close(&self) -> Result<()> {
        let threads = self.threads_per_dir * self.log_dirs.len();
        // Logs in offline dirs are left as they are: recovery makes of them what is on disk.
        let closed = on_threads(threads, self.snapshot_entries(), |(tp, dir, log)| (tp, dir, lock_log(&log).and_then(|mut l| l.close())));
        let mut first_error = None;
        let mut failed = 0usize;
        for (tp, dir, r) in closed {
            if let Err(e) = r {
                self.failures.report(&dir, "closing a log", &e);
                if failed == 0 {
                    tracing::error!(partition = %tp, error = %e, "cannot close the partition's log; the next start recovers it");
                }
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        self.checkpoint()?;
        if let Some(e) = first_error {
            // A close that failed may have taken a dir offline: never a marker then.
            tracing::error!(partitions = failed, "logs not closed cleanly; no clean-shutdown marker written");
            return Err(e);
        }
        // An offline dir gets no marker: its next open recovers each partition from its
        // checkpointed recovery point, cutting a torn tail.
        for dir in self.log_dirs.iter().filter(|d| !self.failures.is_offline(d)) {
            let r = checkpoint::write_atomic(self.io.as_ref(), &dir.join(CLEAN_SHUTDOWN_FILE), b"");
            self.guard(dir, "writing the clean-shutdown marker", r.map_err(StorageError::from))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_support::{batch_with, simple_batch};
    use crate::records::validate::{ValidateConfig, validate};
    use crate::storage::io::StdIo;
    use kafka_protocol::records::Compression;

    fn io() -> Arc<dyn FileIo> {
        Arc::new(StdIo)
    }
    fn append(log: &SharedLog, mut bytes: Vec<u8>) -> i64 {
        let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
        lock_log(log)
            .expect("lock")
            .append(&mut bytes, &v, now_ms())
            .expect("append")
            .last_offset
    }

    #[test]
    fn cleaners_compact_every_due_log_on_their_threads_and_none_with_zero_threads() {
        use crate::records::batch::test_support::keyed_batch;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig { cleanup_policy: "compact".into(), segment_bytes: 1024, ..LogConfig::default() };
        let m = LogManager::open(vec![dir.path().to_path_buf()], cfg.clone(), io()).expect("open");
        let logs: Vec<SharedLog> = (0..3).map(|p| m.create_log(&TopicPartition::new("keys", p), cfg.clone()).expect("create")).collect();
        for log in &logs {
            // The same two keys again and again: most records are superseded.
            for i in 0..40 {
                let v = format!("value-{i}");
                append(log, keyed_batch(&[(Some("a"), Some(&v)), (Some("b"), Some(&v))], now_ms(), Compression::None, None));
            }
            lock_log(log).expect("lock").set_high_watermark(i64::MAX);
        }
        let sizes = || logs.iter().map(|l| lock_log(l).expect("lock").size_bytes()).collect::<Vec<_>>();
        let before = sizes();
        assert_eq!(m.run_cleaner(&CleanerConfig::default(), 0, now_ms()).expect("no cleaners"), 0);
        assert_eq!(sizes(), before, "no cleaner, nothing compacted");
        assert_eq!(m.run_cleaner(&CleanerConfig::default(), 2, now_ms()).expect("two cleaners"), 3, "every due log, on two threads");
        for (after, before) in sizes().into_iter().zip(before) {
            assert!(after < before / 2, "compacted: {after} of {before} bytes");
        }
        // Each cleaner gets its share of the buffers, as Kafka's totals.
        let share = CleanerConfig::default().per_thread(4);
        assert_eq!((share.dedupe_buffer_bytes, share.io_buffer_bytes), (134_217_728 / 4, 524_288 / 4));
    }

    #[test]
    fn clean_close_writes_the_marker_and_reopen_trusts_and_consumes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = vec![dir.path().to_path_buf()];
        let tp = TopicPartition::new("orders", 3);
        {
            let m = LogManager::open(dirs.clone(), LogConfig::default(), io()).expect("open");
            let log = m.create_log(&tp, LogConfig::default()).expect("create");
            assert!(matches!(
                m.create_log(&tp, LogConfig::default()),
                Err(StorageError::AlreadyExists(_))
            ));
            append(&log, simple_batch(3));
            append(
                &log,
                batch_with(2, None, Compression::None, Some((5, 0, 0))),
            );
            m.close().expect("close");
        }
        let marker = dir.path().join(CLEAN_SHUTDOWN_FILE);
        assert!(marker.exists());
        let rp = std::fs::read_to_string(dir.path().join(RECOVERY_POINT_CHECKPOINT))
            .expect("checkpoint");
        assert_eq!(rp, "0\n1\norders 3 5\n");
        let m = LogManager::open(dirs.clone(), LogConfig::default(), io()).expect("reopen");
        assert_eq!(m.clean_at_open(), &[true]);
        assert!(
            !marker.exists(),
            "a crash from now on must count as unclean"
        );
        let log = m.get(&tp).expect("loaded");
        {
            let l = lock_log(&log).expect("lock");
            assert_eq!(l.log_end_offset(), 5);
            assert_eq!(l.open_stats().recovered_segments, 0);
            assert!(l.producer_state().entry(5).is_some());
        }
        assert_eq!(m.all_partitions(), vec![tp.clone()]);
        drop(m);
        // No close this time: the next open is unclean and recovers from the checkpointed point.
        let m = LogManager::open(dirs, LogConfig::default(), io()).expect("reopen unclean");
        assert_eq!(m.clean_at_open(), &[false]);
        assert_eq!(
            lock_log(&m.get(&tp).expect("loaded"))
                .expect("lock")
                .log_end_offset(),
            5
        );
    }

    #[test]
    fn delete_log_removes_the_directory_and_open_finishes_interrupted_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = vec![dir.path().to_path_buf()];
        let m = LogManager::open(dirs.clone(), LogConfig::default(), io()).expect("open");
        let tp = TopicPartition::new("gone", 0);
        let log = m.create_log(&tp, LogConfig::default()).expect("create");
        append(&log, simple_batch(1));
        drop(log);
        m.delete_log(&tp).expect("delete");
        assert!(m.get(&tp).is_none());
        assert!(matches!(
            m.delete_log(&tp),
            Err(StorageError::UnknownPartition(_))
        ));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with("gone-0")),
            "{names:?}"
        );
        drop(m);

        std::fs::create_dir_all(dir.path().join("half-0.0123abcd-delete")).expect("mkdir");
        std::fs::write(
            dir.path()
                .join("half-0.0123abcd-delete/00000000000000000000.log"),
            b"x",
        )
        .expect("write");
        std::fs::create_dir_all(dir.path().join("not_a_partition")).expect("mkdir");
        let m = LogManager::open(dirs, LogConfig::default(), io()).expect("reopen");
        assert!(!dir.path().join("half-0.0123abcd-delete").exists());
        assert!(m.all_partitions().is_empty());
    }

    #[test]
    fn partitions_spread_over_log_dirs_and_retention_checkpoints_log_start() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let cfg = LogConfig {
            segment_bytes: 500,
            retention_bytes: 600,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let m = LogManager::open(dirs.clone(), cfg.clone(), io()).expect("open");
        let t0 = TopicPartition::new("x", 0);
        let t1 = TopicPartition::new("x", 1);
        let l0 = m.create_log(&t0, cfg.clone()).expect("create");
        m.create_log(&t1, cfg.clone()).expect("create");
        assert!(a.path().join("x-0").is_dir() && b.path().join("x-1").is_dir());
        for _ in 0..20 {
            append(&l0, simple_batch(2));
        }
        assert!(m.run_retention(now_ms()).expect("retention") > 0);
        let start = lock_log(&l0).expect("lock").log_start_offset();
        assert!(start > 0);
        let starts = std::fs::read_to_string(a.path().join(LOG_START_OFFSET_CHECKPOINT))
            .expect("checkpoint");
        assert_eq!(starts, format!("0\n1\nx 0 {start}\n"));
        m.update_config(&t1, LogConfig::default()).expect("update");
        assert!(matches!(
            m.update_config(&TopicPartition::new("y", 0), cfg),
            Err(StorageError::UnknownPartition(_))
        ));
        m.flush_all(now_ms()).expect("flush");
        drop(l0);
        m.close().expect("close");
        drop(m);
        let m = LogManager::open(dirs, LogConfig::default(), io()).expect("reopen");
        assert_eq!(
            lock_log(&m.get(&t0).expect("t0"))
                .expect("lock")
                .log_start_offset(),
            start
        );
    }

    #[test]
    fn the_same_partition_in_two_log_dirs_fails_open() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(a.path().join("dup-0")).expect("mkdir");
        std::fs::create_dir_all(b.path().join("dup-0")).expect("mkdir");
        let r = LogManager::open(
            vec![a.path().to_path_buf(), b.path().to_path_buf()],
            LogConfig::default(),
            io(),
        );
        assert!(matches!(r, Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn a_malformed_checkpoint_fails_open_instead_of_resetting_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(RECOVERY_POINT_CHECKPOINT), "garbage").expect("write");
        assert!(
            LogManager::open(vec![dir.path().to_path_buf()], LogConfig::default(), io()).is_err()
        );
    }

    /// Opens fail with EMFILE once `opens_left` is used up: the process out of descriptors.
    #[derive(Debug)]
    struct RunsOutOfDescriptors {
        inner: Arc<dyn FileIo>,
        opens_left: std::sync::atomic::AtomicUsize,
    }
    impl FileIo for RunsOutOfDescriptors {
        fn open(&self, path: &std::path::Path, mode: crate::storage::io::OpenMode) -> std::io::Result<Arc<dyn crate::storage::io::IoFile>> {
            if self.opens_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
            }
            self.inner.open(path, mode)
        }
        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
            self.inner.rename(from, to)
        }
        fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.inner.remove_file(path)
        }
        fn remove_dir_all(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.inner.remove_dir_all(path)
        }
        fn create_dir_all(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.inner.create_dir_all(path)
        }
        fn sync_dir(&self, path: &std::path::Path) -> std::io::Result<()> {
            self.inner.sync_dir(path)
        }
        fn list_dir(&self, path: &std::path::Path) -> std::io::Result<Vec<crate::storage::io::DirEntry>> {
            self.inner.list_dir(path)
        }
        fn exists(&self, path: &std::path::Path) -> std::io::Result<bool> {
            self.inner.exists(path)
        }
        fn disk_space(&self, path: &std::path::Path) -> std::io::Result<(u64, u64)> {
            self.inner.disk_space(path)
        }
    }

    #[test]
    fn a_partition_whose_creation_runs_out_of_descriptors_leaves_no_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tp = TopicPartition::new("emfile", 0);
        // Every open count a creation makes: the first segment's files, the leader-epoch checkpoint.
        for opens in 0..6 {
            let io = Arc::new(RunsOutOfDescriptors { inner: io(), opens_left: std::sync::atomic::AtomicUsize::new(opens) });
            let m = LogManager::open(vec![dir.path().to_path_buf()], LogConfig::default(), io.clone()).expect("open");
            match m.create_log(&tp, LogConfig::default()) {
                Err(e) => {
                    assert!(e.to_string().contains("Too many open files") || e.to_string().contains("os error 24"), "{e}");
                    assert!(!dir.path().join(tp.dir_name()).exists(), "after {opens} opens: the half-made directory is gone");
                    assert!(m.get(&tp).is_none());
                }
                Ok(_) => {
                    // Enough descriptors for a whole partition: it is there, then deleted for the next round.
                    assert!(dir.path().join(tp.dir_name()).exists());
                    m.delete_log(&tp).expect("delete");
                }
            }
        }
    }

    #[test]
    fn partitions_load_and_close_on_several_threads_as_on_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = vec![dir.path().to_path_buf()];
        {
            let m = LogManager::open_with_threads(dirs.clone(), LogConfig::default(), io(), now_ms(), 4).expect("open");
            for p in 0..20 {
                let log = m.create_log(&TopicPartition::new("par", p), LogConfig::default()).expect("create");
                for _ in 0..=p {
                    append(&log, simple_batch(2));
                }
            }
            m.close().expect("close on 4 threads");
        }
        for threads in [1, 3] {
            let m = LogManager::open_with_threads(dirs.clone(), LogConfig::default(), io(), now_ms(), threads).expect("open");
            assert!(m.clean_at_open()[0]);
            for p in 0..20 {
                let log = m.get(&TopicPartition::new("par", p)).expect("loaded");
                assert_eq!(lock_log(&log).expect("lock").log_end_offset(), 2 * (i64::from(p) + 1), "par-{p} on {threads} threads");
            }
            m.close().expect("close");
        }
    }

    #[test]
    fn an_fsync_eio_takes_its_dir_offline_and_nothing_touches_it_again_while_the_other_dir_serves() {
        use crate::storage::io::{FaultConfig, FaultOp, FaultyIo};
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let faulty = FaultyIo::new(io(), FaultConfig::default());
        let m = LogManager::open(dirs.clone(), LogConfig::default(), Arc::new(faulty.clone())).expect("open");
        let (bad, good) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        let lbad = m.create_log(&bad, LogConfig::default()).expect("create");
        let lgood = m.create_log(&good, LogConfig::default()).expect("create");
        assert_eq!((m.log_dir_of(&bad).as_deref(), m.log_dir_of(&good).as_deref()), (Some(a.path()), Some(b.path())));
        append(&lbad, simple_batch(3));
        m.flush_all(now_ms()).expect("flush while healthy");
        append(&lbad, simple_batch(2));
        append(&lgood, simple_batch(2));

        faulty.inject(a.path(), FaultOp::Sync, libc::EIO);
        m.flush_all(now_ms()).expect("one dir's fault is no error of the pass");
        assert_eq!(faulty.injected_failures(), 1);
        assert!(matches!(m.offline_error(&bad), Some(StorageError::LogDirOffline(d)) if d == a.path()));
        assert!(m.offline_error(&good).is_none());
        assert_eq!(lock_log(&lgood).expect("lock").recovery_point(), 2, "the other dir was flushed");

        // Nothing tries the faulty dir again: flush, flush.ms, retention, checkpoints, close.
        append(&lgood, simple_batch(1));
        m.flush_all(now_ms()).expect("flush");
        m.flush_due(i64::MAX).expect("flush due");
        m.run_retention(now_ms()).expect("retention");
        m.checkpoint().expect("checkpoint of the online dir");
        assert_eq!(faulty.injected_failures(), 1, "no second attempt on the offline dir");

        // A new partition goes to the online dir even though the offline one holds fewer.
        let fresh = TopicPartition::new("u", 0);
        m.create_log(&fresh, LogConfig::default()).expect("create");
        assert_eq!(m.log_dir_of(&fresh).as_deref(), Some(b.path()));
        let usage = m.dir_usage();
        assert!(usage[0].offline.as_deref().is_some_and(|c| c.contains("flush")), "{:?}", usage[0].offline);
        assert!(usage[0].partitions.is_empty() && usage[1].offline.is_none() && usage[1].partitions.len() == 2);

        m.close().expect("close of the online dir");
        assert_eq!(faulty.injected_failures(), 1);
        assert!(!a.path().join(CLEAN_SHUTDOWN_FILE).exists(), "the offline dir is recovered at the next start");
        assert!(b.path().join(CLEAN_SHUTDOWN_FILE).exists());
        drop((lbad, lgood, m));

        // A restart recovers from the disk: the data that was fsynced is there.
        let m = LogManager::open(dirs, LogConfig::default(), io()).expect("reopen");
        assert_eq!(m.clean_at_open(), &[false, true]);
        assert!(m.offline_error(&bad).is_none(), "a restart brings the dir back");
        assert!(lock_log(&m.get(&bad).expect("loaded")).expect("lock").log_end_offset() >= 3, "the fsynced records survive");
        assert_eq!(lock_log(&m.get(&good).expect("loaded")).expect("lock").log_end_offset(), 3);
    }

    #[test]
    fn a_clean_enospc_keeps_the_dir_online_and_a_write_eio_takes_it_offline() {
        use crate::storage::io::{FaultConfig, FaultOp, FaultyIo};
        let a = tempfile::tempdir().expect("tempdir");
        let faulty = FaultyIo::new(io(), FaultConfig::default());
        let m = LogManager::open(vec![a.path().to_path_buf()], LogConfig::default(), Arc::new(faulty.clone())).expect("open");
        let tp = TopicPartition::new("w", 0);
        let log = m.create_log(&tp, LogConfig::default()).expect("create");
        let try_append = |bytes: Vec<u8>| {
            let mut bytes = bytes;
            let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
            let r = lock_log(&log).expect("lock").append(&mut bytes, &v, now_ms());
            r.map_err(|e| (m.report(&tp, "append", &e), e))
        };
        faulty.fill_disk();
        let (offline, e) = try_append(simple_batch(2)).expect_err("disk full");
        assert!(!offline && crate::storage::io::is_out_of_space(match &e { StorageError::Io(io) => io, _ => panic!("{e}") }), "{e}");
        m.checkpoint().expect_err("a full disk fails the checkpoint's write too");
        assert!(m.offline_error(&tp).is_none(), "a clean ENOSPC keeps the dir online");
        faulty.free_space();
        assert_eq!(try_append(simple_batch(2)).expect("works again").base_offset, 0, "nothing of the refused append stayed");

        faulty.inject(a.path(), FaultOp::Write, libc::EIO);
        let (offline, e) = try_append(simple_batch(2)).expect_err("EIO");
        assert!(offline, "{e}");
        assert!(matches!(m.offline_error(&tp), Some(StorageError::LogDirOffline(_))));
    }

    #[test]
    fn a_partition_creation_refused_by_a_full_disk_leaves_nothing_and_keeps_the_dir_online() {
        use crate::storage::io::{FaultConfig, FaultyIo};
        let a = tempfile::tempdir().expect("tempdir");
        let faulty = FaultyIo::new(io(), FaultConfig::default());
        let m = LogManager::open(vec![a.path().to_path_buf()], LogConfig::default(), Arc::new(faulty.clone())).expect("open");
        let tp = TopicPartition::new("full", 0);
        faulty.fill_disk();
        // The directory is never made; removing it on the way out finds nothing (ENOENT), which
        // once took the broker's only log dir offline and halted it.
        assert!(m.create_log(&tp, LogConfig::default()).is_err());
        assert!(!a.path().join(tp.dir_name()).exists());
        assert!(m.failures().offline_dirs().is_empty(), "a refused creation says nothing of the disk");
        faulty.free_space();
        m.create_log(&tp, LogConfig::default()).expect("created once space is freed");
    }

    #[test]
    fn an_enospc_whose_undo_fails_takes_the_dir_offline() {
        use crate::storage::io::{FaultConfig, FaultOp, FaultyIo};
        let a = tempfile::tempdir().expect("tempdir");
        let faulty = FaultyIo::new(io(), FaultConfig { seed: 7, ..Default::default() });
        let m = LogManager::open(vec![a.path().to_path_buf()], LogConfig { preallocate_step_bytes: 0, ..LogConfig::default() }, Arc::new(faulty.clone())).expect("open");
        let tp = TopicPartition::new("undo", 0);
        let log = m.create_log(&tp, LogConfig { preallocate_step_bytes: 0, ..LogConfig::default() }).expect("create");
        append(&log, simple_batch(1));
        faulty.fill_disk();
        faulty.inject(a.path(), FaultOp::SetLen, libc::EIO);
        let mut bytes = simple_batch(2);
        let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
        let e = lock_log(&log).expect("lock").append(&mut bytes, &v, now_ms()).expect_err("full");
        assert!(e.to_string().contains("undoing the append failed"), "{e}");
        assert!(m.report(&tp, "append", &e), "the log's files are in an unknown state");
    }

    #[test]
    fn an_fsync_enospc_takes_the_dir_offline() {
        use crate::storage::io::{FaultConfig, FaultOp, FaultyIo};
        let a = tempfile::tempdir().expect("tempdir");
        let faulty = FaultyIo::new(io(), FaultConfig::default());
        let m = LogManager::open(vec![a.path().to_path_buf()], LogConfig::default(), Arc::new(faulty.clone())).expect("open");
        let tp = TopicPartition::new("s", 0);
        let log = m.create_log(&tp, LogConfig::default()).expect("create");
        append(&log, simple_batch(1));
        faulty.inject(a.path(), FaultOp::Sync, libc::ENOSPC);
        m.flush_all(now_ms()).expect("reported, not returned");
        assert!(m.offline_error(&tp).is_some());
        assert!(matches!(m.create_log(&TopicPartition::new("s", 1), LogConfig::default()), Err(StorageError::LogDirOffline(_))), "no online dir left");
    }
}
