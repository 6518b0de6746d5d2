//! Moving a partition between log dirs (AlterReplicaLogDirs): a copy made beside the live log, then switched in atomically; it never sees a request type and touches files only through `io`.
//!
//! Kafka copies into a "future" replica that a fetcher thread keeps catching up until it swaps.
//! Fjord does a simpler equivalent (`LogManager::run_move`, on a thread of its own):
//! 1. `<dest>/<topic>-<partition>.<uuid>-future` is made and the sealed segments (log and
//!    indexes), then the active segment's `.log` as far as it was written, are copied into it
//!    without the partition's lock: produce and fetch go on.
//! 2. Under the lock (appends wait, reads of published data do not): the log is closed as at a
//!    clean shutdown (active segment sealed, producer snapshot written), every file the copy
//!    lacks or that changed since is copied (a `.log` that only grew: just its new bytes; the
//!    active segment's indexes, producer
//!    snapshots, `leader-epoch-checkpoint`, `partition.metadata`, anything else there), files the
//!    source no longer has are dropped, each file and the directory are fsynced, and the marker
//!    `.fjord-moved` is written in the copy.
//! 3. The dest dir's checkpoints get the partition's recovery point and log start offset; then
//!    the commit point: the future directory is renamed to `<topic>-<partition>` and the dest
//!    dir fsynced.
//! 4. The log opened from there (trusted: it was closed cleanly) replaces the old one inside
//!    the same lock, keeping the high watermark, leader epoch and published read bounds; the
//!    lock is released.
//! 5. The old directory is renamed to `-delete` (fsync) and removed, then the marker goes and
//!    the checkpoints are written again.
//!
//! A crash before 3's rename leaves a `-future` directory, which the next open removes: the old
//! directory serves. After it, the marked copy wins over an old directory still there, which the
//! open removes. So the partition is whole in exactly one dir at every restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::checkpoint;
use super::io::{FileIo, OpenMode};
use super::log::PartitionLog;
use super::log_manager::{DELETE_DIR_SUFFIX, FUTURE_DIR_SUFFIX, LogManager, MOVED_MARKER_FILE, lock_log, now_ms};
use super::{Result, StorageError, file_name};
use crate::types::TopicPartition;

/// Bytes read and written per step of a file copy.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// A copy's pace: at most `rate` bytes a second (read again after every chunk, so a change
/// applies to a copy under way), Kafka's `replica.alter.log.dirs.io.max.bytes.per.second`.
struct Pace<'a> {
    rate: &'a AtomicU64,
}

impl Pace<'_> {
    /// After `bytes` were copied in `took`: sleeps what the rate asks for beyond it.
    fn after(&self, bytes: usize, took: std::time::Duration) {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == u64::MAX || rate == 0 {
            return;
        }
        let due = std::time::Duration::from_secs_f64(bytes as f64 / rate as f64);
        if let Some(rest) = due.checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
}

impl LogManager {
    /// Sets `replica.alter.log.dirs.io.max.bytes.per.second` (`u64::MAX`: unthrottled).
    pub fn set_move_io_rate(&self, bytes_per_second: u64) {
        self.move_io_rate.store(bytes_per_second.max(1), Ordering::Relaxed);
    }
}

/// Files of a partition directory a move never copies: leftovers that an open removes anyway,
/// and an old move's marker (the copy gets its own).
fn not_copied(name: &str) -> bool {
    name == MOVED_MARKER_FILE || [".deleted", ".cleaned", ".swap", ".tmp"].iter().any(|s| name.ends_with(s))
}

/// One partition's move as DescribeLogDirs shows it.
#[derive(Debug)]
pub struct MoveState {
    /// Where to. A new request for the same partition changes it, and the mover starts over.
    dest: Mutex<PathBuf>,
    /// Bytes of the copy made so far.
    copied_bytes: AtomicU64,
    /// Offsets the copy is behind the log end (Kafka's future replica lag).
    lag: AtomicI64,
}

impl MoveState {
    fn dest(&self) -> PathBuf {
        self.dest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// (bytes copied, offset lag) when the partition is being moved into `dir`.
    pub(super) fn future_progress(&self, dir: &Path) -> Option<(u64, i64)> {
        (self.dest() == dir).then(|| (self.copied_bytes.load(Ordering::Relaxed), self.lag.load(Ordering::Relaxed)))
    }
}

/// Why a move cannot be asked for.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The destination is not one of `log.dirs` (or not an absolute path).
    #[error("log dir {0} is not one of log.dirs")]
    LogDirNotFound(String),
    /// This broker holds no replica of the partition.
    #[error("no replica of {0} here")]
    NoReplica(TopicPartition),
    /// The copy's directory name would be longer than a file name may be.
    #[error("the topic name of {0} is too long to move the partition")]
    NameTooLong(TopicPartition),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a move request did.
#[derive(Debug, PartialEq, Eq)]
pub enum MoveStarted {
    /// The partition is in that dir already and no move is under way: nothing to do.
    AlreadyThere,
    /// A mover must be started (`LogManager::run_move`).
    Started,
    /// A move was under way; its destination is the new one now.
    Redirected,
}

impl LogManager {
    /// The configured log dir `path` names: absolute, compared by components.
    fn configured_dir(&self, path: &str) -> Option<PathBuf> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return None;
        }
        self.log_dirs.iter().find(|d| d.as_path() == p || std::path::absolute(d).is_ok_and(|a| a == p)).cloned()
    }

    /// Whether `tp` is being moved to another log dir.
    pub fn is_moving(&self, tp: &TopicPartition) -> bool {
        self.moves.lock().unwrap_or_else(|e| e.into_inner()).contains_key(tp)
    }

    /// Asks for `tp` to be moved to the log dir `dest`. Checks and records it; the copy is made
    /// by [`LogManager::run_move`], which the caller starts on a thread of its own when this
    /// answers `Started`.
    pub fn request_move(&self, tp: &TopicPartition, dest: &str) -> Result<MoveStarted, MoveError> {
        // `<topic>-<partition>.<32 hex digits>-future`, as in `move_once`.
        if tp.dir_name().len() + 1 + 32 + FUTURE_DIR_SUFFIX.len() > 255 {
            return Err(MoveError::NameTooLong(tp.clone()));
        }
        let dest = self.configured_dir(dest).ok_or_else(|| MoveError::LogDirNotFound(dest.to_string()))?;
        if self.failures.is_offline(&dest) {
            return Err(StorageError::LogDirOffline(dest).into());
        }
        let current = self.log_dir_of(tp).ok_or_else(|| MoveError::NoReplica(tp.clone()))?;
        if let Some(e) = self.offline_error(tp) {
            return Err(e.into());
        }
        let mut moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = moves.get(tp) {
            *m.dest.lock().unwrap_or_else(|e| e.into_inner()) = dest;
            return Ok(MoveStarted::Redirected);
        }
        if current == dest {
            return Ok(MoveStarted::AlreadyThere);
        }
        moves.insert(tp.clone(), Arc::new(MoveState { dest: Mutex::new(dest), copied_bytes: AtomicU64::new(0), lag: AtomicI64::new(0) }));
        Ok(MoveStarted::Started)
    }

    /// Drops a recorded move that will not run (no thread could be made for it).
    pub fn forget_move(&self, tp: &TopicPartition) {
        self.moves.lock().unwrap_or_else(|e| e.into_inner()).remove(tp);
    }

    /// Moves `tp` to the dir [`LogManager::request_move`] recorded, following a later request's
    /// change of destination, then forgets the move. Blocks on disk I/O for as long as the copy
    /// takes: run it on a thread of its own. A failed move leaves the partition where it was
    /// (or, when its new dir failed after the commit, in that dir, offline) and is logged.
    pub fn run_move(&self, tp: &TopicPartition) -> Result<()> {
        let result = loop {
            let Some(state) = self.moves.lock().unwrap_or_else(|e| e.into_inner()).get(tp).cloned() else { return Ok(()) };
            let dest = state.dest();
            let r = self.move_once(tp, &dest, &state);
            let mut moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
            if r.is_err() || state.dest() == dest {
                moves.remove(tp);
                break r;
            }
            // Redirected meanwhile: go again to the new destination.
        };
        if let Err(e) = &result {
            tracing::warn!(partition = %tp, error = %e, "moving the partition to another log dir failed");
        }
        result
    }

    /// One move of `tp` to `dest` (the steps in this module's header).
    fn move_once(&self, tp: &TopicPartition, dest: &Path, state: &MoveState) -> Result<()> {
        let Some((source, log)) = self.read_map().get(tp).map(|e| (e.log_dir.clone(), e.log.clone())) else {
            return Err(StorageError::UnknownPartition(tp.to_string()));
        };
        if source == dest {
            return Ok(());
        }
        if self.failures.is_offline(dest) || self.failures.is_offline(&source) {
            return Err(StorageError::LogDirOffline(if self.failures.is_offline(dest) { dest.to_path_buf() } else { source }));
        }
        let io = self.io.as_ref();
        let src_dir = source.join(tp.dir_name());
        let future = dest.join(format!("{}.{}{}", tp.dir_name(), uuid::Uuid::new_v4().simple(), FUTURE_DIR_SUFFIX));
        io.create_dir_all(&future)?;
        // Only this unlocked copy is paced: the locked step holds appends up, so it runs at full speed.
        let pace = Pace { rate: &self.move_io_rate };
        let copied = (|| -> Result<u64> {
            io.sync_dir(dest)?;
            // 1. Sealed segments, without the lock.
            let (sealed, rewrites, log_end, (active_base, active_bytes)) = {
                let l = lock_log(&log)?;
                (l.sealed_segment_bases(), l.rewrites(), l.log_end_offset(), l.active_segment_size())
            };
            for (i, base) in sealed.iter().enumerate() {
                for ext in ["log", "index", "timeindex", "txnindex"] {
                    let name = file_name(*base, ext);
                    // Retention or DeleteRecords may delete it meanwhile: step 2 settles that.
                    if let Some(len) = copy_file(io, &src_dir.join(&name), &future.join(&name), 0, None, Some(&pace))? {
                        state.copied_bytes.fetch_add(len, Ordering::Relaxed);
                    }
                }
                let next = sealed.get(i + 1).copied().unwrap_or(active_base);
                state.lag.store(log_end - next, Ordering::Relaxed);
            }
            // The active segment as far as it was written: step 2 then copies only what was
            // appended since, so appends wait for that and not for a whole large segment.
            let name = file_name(active_base, "log");
            if let Some(len) = copy_file(io, &src_dir.join(&name), &future.join(&name), 0, Some(active_bytes), Some(&pace))? {
                state.copied_bytes.fetch_add(len, Ordering::Relaxed);
            }
            Ok(rewrites)
        })();
        let moved = copied.and_then(|rewrites| self.finish_move(tp, &source, dest, &future, &log, state, rewrites));
        if let Err(e) = moved {
            // The copy is not authoritative until its rename: drop it.
            if io.exists(&future).unwrap_or(false)
                && let Err(r) = io.remove_dir_all(&future)
            {
                tracing::warn!(dir = %future.display(), error = %r, "cannot remove the abandoned copy; the next start removes it");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Steps 2 to 5: under the partition's lock, complete the copy and switch.
    /// `rewrites`: the log's count of in-place rewrites when step 1 began.
    #[allow(clippy::too_many_arguments)]
    fn finish_move(&self, tp: &TopicPartition, source: &Path, dest: &Path, future: &Path, log: &super::log_manager::SharedLog, state: &MoveState, rewrites: u64) -> Result<()> {
        let io = self.io.as_ref();
        let src_dir = source.join(tp.dir_name());
        // Checkpoint writers take this before a log's lock: take it first too.
        let one_writer = self.checkpoint_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut l = lock_log(log)?;
        let still_ours = self.read_map().get(tp).is_some_and(|e| Arc::ptr_eq(&e.log, log) && e.log_dir == source);
        if !still_ours {
            return Err(StorageError::UnknownPartition(format!("{tp} was deleted or moved during the move")));
        }
        // What step 1 copied is still valid unless sealed segments changed in place since.
        let rewritten = l.rewrites() != rewrites;
        let opened_again = |l: &mut PartitionLog| -> Result<()> {
            // The old log, closed for the copy, takes appends again.
            // Not trusted as clean: the close may have failed half-way. From the recovery point
            // on the tail is checked (nothing, after a close that succeeded).
            let again = PartitionLog::open(self.io.clone(), &src_dir, tp.clone(), l.config().clone(), l.recovery_point(), l.log_start_offset(), false, now_ms())?;
            let mut again = again;
            again.take_over(l);
            *l = again;
            Ok(())
        };
        if let Err(e) = l.close() {
            if !self.failures.report(source, "closing a log to move it", &e) {
                opened_again(&mut l)?;
            }
            return Err(e);
        }
        let completed = (|| -> Result<()> {
            let mut copied: HashMap<String, u64> = HashMap::new();
            for e in io.list_dir(future)? {
                if !e.is_dir {
                    let f = io.open(&e.path, OpenMode::ReadWrite)?;
                    copied.insert(e.name, f.len()?);
                }
            }
            let sealed: std::collections::HashSet<String> = l
                .sealed_segment_bases()
                .iter()
                .flat_map(|b| ["log", "index", "timeindex", "txnindex"].map(|ext| file_name(*b, ext)))
                .collect();
            let mut wanted = std::collections::HashSet::new();
            for e in io.list_dir(&src_dir)? {
                if e.is_dir || not_copied(&e.name) {
                    continue;
                }
                wanted.insert(e.name.clone());
                let len = io.open(&e.path, OpenMode::ReadWrite)?.len()?;
                // A segment's bytes copied in step 1 are still the file's unless the log rewrote
                // segments in place since: a `.log` only grows otherwise (a truncation or a
                // cleaner swap counts as a rewrite), so only its new bytes are copied. A sealed
                // segment's indexes are as final as its log; the active one's are copied again.
                let had = copied.get(&e.name).copied().filter(|c| !rewritten && *c <= len);
                match had {
                    Some(c) if sealed.contains(&e.name) && c == len => {}
                    Some(c) if e.name.ends_with(".log") => {
                        copy_file(io, &e.path, &future.join(&e.name), c, None, None)?;
                        state.copied_bytes.fetch_add(len - c, Ordering::Relaxed);
                    }
                    _ => {
                        copy_file(io, &e.path, &future.join(&e.name), 0, None, None)?;
                        state.copied_bytes.fetch_add(len, Ordering::Relaxed);
                    }
                }
            }
            for name in copied.keys().filter(|n| !wanted.contains(*n)) {
                io.remove_file(&future.join(name))?;
            }
            io.sync_dir(future)?;
            checkpoint::write_atomic(io, &future.join(MOVED_MARKER_FILE), b"")?;
            // No older marker may stay in the source: at a restart it must lose to the copy.
            if io.exists(&src_dir.join(MOVED_MARKER_FILE))? {
                io.remove_file(&src_dir.join(MOVED_MARKER_FILE))?;
                io.sync_dir(&src_dir)?;
            }
            state.lag.store(0, Ordering::Relaxed);
            // 3. The dest dir's checkpoints know the partition before it appears there.
            self.checkpoint_locked(Some((tp, dest, l.log_end_offset(), l.log_start_offset())))?;
            Ok(())
        })();
        if let Err(e) = completed {
            opened_again(&mut l).inspect_err(|r| {
                self.failures.report(source, "reopening a log after a failed move", r);
            })?;
            return Err(e);
        }
        let final_dir = dest.join(tp.dir_name());
        if let Err(e) = io.rename(future, &final_dir).map_err(StorageError::from).and_then(|()| io.sync_dir(dest).map_err(StorageError::from)) {
            // Whether the rename reached the disk is unknown: the dest dir goes offline, and the
            // old log serves on (a restart settles it by the marker).
            let e = StorageError::from(std::io::Error::other(format!("committing the move: {e}")));
            self.failures.fail(dest, "committing a partition move", &e);
            opened_again(&mut l)?;
            return Err(e);
        }
        // 4. The committed copy serves from here on.
        let switched = PartitionLog::open(self.io.clone(), &final_dir, tp.clone(), l.config().clone(), l.log_end_offset(), l.log_start_offset(), true, now_ms());
        if let Some(e) = self.write_map().get_mut(tp) {
            e.log_dir = dest.to_path_buf();
        }
        match switched {
            Ok(mut new) => {
                new.take_over(&l);
                *l = new;
            }
            Err(e) => {
                // The copy is what a restart loads: the old log must take no more appends.
                self.failures.fail(dest, "opening a moved log", &e);
                return Err(e);
            }
        }
        drop(l);
        // 5. The old directory goes, then the marker.
        let doomed = source.join(format!("{}.{}{}", tp.dir_name(), uuid::Uuid::new_v4().simple(), DELETE_DIR_SUFFIX));
        let cleaned = (|| -> Result<()> {
            io.rename(&src_dir, &doomed)?;
            io.sync_dir(source)?;
            io.remove_dir_all(&doomed)?;
            Ok(())
        })();
        if let Err(e) = cleaned {
            self.failures.report(source, "removing a moved partition's old directory", &e);
            return Err(e);
        }
        io.remove_file(&final_dir.join(MOVED_MARKER_FILE))?;
        io.sync_dir(&final_dir)?;
        self.checkpoint_locked(None)?;
        drop(one_writer);
        tracing::info!(partition = %tp, from = %source.display(), to = %dest.display(), "partition moved to another log dir");
        Ok(())
    }
}

/// Copies `from`'s bytes from `start` to `end` (default: its length) into `to` at the same
/// positions, `to` being created or cut to `start` first, and fsyncs the copy, at `pace` if
/// given. Returns the bytes copied, `None` when `from` does not exist.
fn copy_file(io: &dyn FileIo, from: &Path, to: &Path, start: u64, end: Option<u64>, pace: Option<&Pace>) -> Result<Option<u64>> {
    let src = match io.open(from, OpenMode::ReadWrite) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = src.len()?.min(end.unwrap_or(u64::MAX));
    let dst = io.open(to, OpenMode::CreateReadWrite)?;
    dst.set_len(start)?;
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min(len.saturating_sub(start) as usize).max(1)];
    let mut pos = start;
    while pos < len {
        let want = buf.len().min((len - pos) as usize);
        let started = std::time::Instant::now();
        let n = src.read_full_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
        if let Some(p) = pace {
            p.after(n, started.elapsed());
        }
    }
    dst.sync_data()?;
    Ok(Some(pos - start))
}

/// At open, before any partition is loaded: removes the copies of moves that never committed
/// (`-future`) and, for a partition whose committed copy (with the marker) sits beside its old
/// directory in another log dir, removes the old one, then the marker.
pub fn finish_interrupted_moves(io: &dyn FileIo, log_dirs: &[PathBuf]) -> Result<()> {
    let mut seen: HashMap<TopicPartition, Vec<(PathBuf, PathBuf)>> = HashMap::new();
    for dir in log_dirs {
        for e in io.list_dir(dir)? {
            if !e.is_dir {
                continue;
            }
            if e.name.ends_with(FUTURE_DIR_SUFFIX) {
                tracing::info!(dir = %e.path.display(), "removing the copy of a partition move that did not finish");
                io.remove_dir_all(&e.path)?;
                io.sync_dir(dir)?;
                continue;
            }
            if let Some(tp) = TopicPartition::from_dir_name(&e.name) {
                seen.entry(tp).or_default().push((dir.clone(), e.path));
            }
        }
    }
    for (tp, places) in seen.into_iter().filter(|(_, p)| p.len() > 1) {
        let mut marked = Vec::new();
        for (dir, path) in &places {
            if io.exists(&path.join(MOVED_MARKER_FILE))? {
                marked.push((dir, path));
            }
        }
        // Anything else (no marker, or several) is left for the open to refuse.
        let [(_, keep)] = marked.as_slice() else { continue };
        for (dir, path) in places.iter().filter(|(_, p)| p != *keep) {
            tracing::info!(partition = %tp, old = %path.display(), new = %keep.display(), "finishing an interrupted partition move");
            let doomed = dir.join(format!("{}.{}{}", tp.dir_name(), uuid::Uuid::new_v4().simple(), DELETE_DIR_SUFFIX));
            io.rename(path, &doomed)?;
            io.sync_dir(dir)?;
            io.remove_dir_all(&doomed)?;
        }
        io.remove_file(&keep.join(MOVED_MARKER_FILE))?;
        io.sync_dir(keep)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::BatchIter;
    use crate::records::batch::test_support::simple_batch;
    use crate::records::validate::{ValidateConfig, validate};
    use crate::storage::LogConfig;
    use crate::storage::io::{DirEntry, IoFile, StdIo};
    use crate::storage::log_manager::SharedLog;
    use std::sync::atomic::AtomicUsize;

    fn io() -> Arc<dyn FileIo> {
        Arc::new(StdIo)
    }
    fn cfg() -> LogConfig {
        LogConfig { segment_bytes: 400, index_interval_bytes: 64, ..LogConfig::default() }
    }
    fn append(log: &SharedLog, n: usize) {
        let mut bytes = simple_batch(n);
        let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
        let mut l = lock_log(log).expect("lock");
        let end = l.append(&mut bytes, &v, now_ms()).expect("append").last_offset + 1;
        // Acknowledged at once, as a single broker does.
        l.set_high_watermark(end);
    }
    /// Every offset from the log start to the log end, read back batch by batch: each once, in order.
    fn read_all(log: &SharedLog) -> Vec<i64> {
        let l = lock_log(log).expect("lock");
        let (mut at, end) = (l.log_start_offset(), l.log_end_offset());
        let mut offsets = Vec::new();
        while at < end {
            let s = l.read(at, 1 << 20, end).expect("read");
            for b in BatchIter::new(&s.bytes) {
                let h = b.header();
                offsets.extend((h.base_offset()..=h.last_offset()).filter(|o| *o >= at));
            }
            at = s.last_offset + 1;
        }
        offsets
    }
    fn dirs(a: &tempfile::TempDir, b: &tempfile::TempDir) -> Vec<PathBuf> {
        vec![a.path().to_path_buf(), b.path().to_path_buf()]
    }
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir).expect("ls").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_throttled_move_copies_at_the_configured_rate() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("open");
        let tp = TopicPartition::new("slow", 0);
        let log = m.create_log(&tp, cfg()).expect("create");
        for _ in 0..40 {
            append(&log, 3);
        }
        let bytes: u64 = names(&a.path().join("slow-0")).iter().map(|n| std::fs::metadata(a.path().join("slow-0").join(n)).map_or(0, |f| f.len())).sum();
        // About half a second of copying at this rate.
        let rate = (bytes * 2).max(1);
        m.set_move_io_rate(rate);
        let started = std::time::Instant::now();
        assert_eq!(m.request_move(&tp, b.path().to_str().expect("utf8")).expect("start"), MoveStarted::Started);
        m.run_move(&tp).expect("move");
        let took = started.elapsed();
        assert!(took >= std::time::Duration::from_millis(300), "{bytes} bytes at {rate} B/s took only {took:?}");
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(b.path()));
        // Unthrottled again: the move back is not paced.
        m.set_move_io_rate(u64::MAX);
        let started = std::time::Instant::now();
        assert_eq!(m.request_move(&tp, a.path().to_str().expect("utf8")).expect("start"), MoveStarted::Started);
        m.run_move(&tp).expect("move back");
        assert!(started.elapsed() < took, "unthrottled {:?} vs throttled {took:?}", started.elapsed());
    }

    #[test]
    fn a_moved_partition_keeps_every_record_its_files_and_log_start_and_reopens_in_its_new_dir() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("open");
        let tp = TopicPartition::new("mv", 0);
        let log = m.create_log(&tp, cfg()).expect("create");
        std::fs::write(a.path().join("mv-0/partition.metadata"), "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n").expect("write");
        for _ in 0..30 {
            append(&log, 3);
        }
        lock_log(&log).expect("lock").delete_records_before(10).expect("delete records");
        let published = m.try_published(&tp).expect("published");
        assert!(lock_log(&log).expect("lock").segment_count() > 3, "several sealed segments to copy");
        let before = read_all(&log);
        let source_files: Vec<String> = names(&a.path().join("mv-0")).into_iter().filter(|n| !n.ends_with(".snapshot")).collect();

        assert!(matches!(m.request_move(&tp, "relative/dir"), Err(MoveError::LogDirNotFound(_))));
        assert!(matches!(m.request_move(&tp, "/no/such/dir"), Err(MoveError::LogDirNotFound(_))));
        assert!(matches!(m.request_move(&TopicPartition::new("none", 0), b.path().to_str().expect("utf8")), Err(MoveError::NoReplica(_))));
        assert_eq!(m.request_move(&tp, a.path().to_str().expect("utf8")).expect("same dir"), MoveStarted::AlreadyThere);
        let dest = format!("{}/", b.path().display());
        assert_eq!(m.request_move(&tp, &dest).expect("start"), MoveStarted::Started);
        assert!(m.is_moving(&tp));
        let usage = m.dir_usage();
        assert_eq!(usage[1].futures.iter().map(|f| &f.0).collect::<Vec<_>>(), vec![&tp], "the copy shows as a future replica");
        assert_eq!(usage[0].partitions.len(), 1);
        m.run_move(&tp).expect("move");

        assert!(!m.is_moving(&tp));
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(b.path()));
        assert!(!a.path().join("mv-0").exists());
        assert!(names(a.path()).iter().all(|n| !n.starts_with("mv-0")), "{:?}", names(a.path()));
        assert!(names(b.path()).iter().all(|n| !n.ends_with(FUTURE_DIR_SUFFIX)));
        let moved = names(&b.path().join("mv-0"));
        for f in &source_files {
            assert!(moved.contains(f), "{f} came along: {moved:?}");
        }
        assert!(moved.iter().any(|n| n.ends_with(".snapshot")), "the producer snapshot came along: {moved:?}");
        assert!(!moved.contains(&MOVED_MARKER_FILE.to_string()));
        assert!(m.dir_usage()[1].futures.is_empty());
        assert_eq!(m.dir_usage()[1].partitions.len(), 1);

        // Same lock, same published bounds; appends and reads go on in the new dir.
        assert!(Arc::ptr_eq(&log, &m.get(&tp).expect("log")));
        assert!(Arc::ptr_eq(&published, &m.try_published(&tp).expect("published")));
        assert_eq!(lock_log(&log).expect("lock").dir(), b.path().join("mv-0"));
        assert_eq!(read_all(&log), before);
        assert_eq!(before.first(), Some(&10));
        append(&log, 2);
        assert_eq!(published.high_watermark(), 92, "readers holding the old bounds see the moved log's");
        let after = read_all(&log);
        assert_eq!(after, (10..92).collect::<Vec<_>>());
        drop(log);
        drop(m);

        // A kill -9 now: the start finds the partition in its new dir with its log start offset.
        let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("reopen");
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(b.path()));
        let log = m.get(&tp).expect("loaded");
        assert_eq!(read_all(&log), after);
        assert_eq!(lock_log(&log).expect("lock").leader_epoch(), 0);
    }

    #[test]
    fn a_move_follows_a_new_destination_and_a_move_back_is_one() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("open");
        let tp = TopicPartition::new("back", 0);
        let log = m.create_log(&tp, cfg()).expect("create");
        append(&log, 5);
        assert_eq!(m.request_move(&tp, b.path().to_str().expect("utf8")).expect("start"), MoveStarted::Started);
        assert_eq!(m.request_move(&tp, a.path().to_str().expect("utf8")).expect("redirect"), MoveStarted::Redirected);
        m.run_move(&tp).expect("move");
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(a.path()));
        assert_eq!(names(b.path()).iter().filter(|n| n.starts_with("back-0")).count(), 0);
        assert_eq!(m.request_move(&tp, b.path().to_str().expect("utf8")).expect("start"), MoveStarted::Started);
        m.run_move(&tp).expect("move");
        assert_eq!(m.request_move(&tp, a.path().to_str().expect("utf8")).expect("start"), MoveStarted::Started);
        m.run_move(&tp).expect("move back");
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(a.path()));
        assert_eq!(read_all(&log), (0..5).collect::<Vec<_>>());
    }

    #[test]
    fn appends_during_the_copy_of_sealed_segments_are_all_in_the_moved_log() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let m = Arc::new(LogManager::open(dirs(&a, &b), cfg(), io()).expect("open"));
        let tp = TopicPartition::new("busy", 0);
        let log = m.create_log(&tp, cfg()).expect("create");
        for _ in 0..200 {
            append(&log, 1);
        }
        m.request_move(&tp, b.path().to_str().expect("utf8")).expect("start");
        let mover = {
            let (m, tp) = (m.clone(), tp.clone());
            std::thread::spawn(move || m.run_move(&tp))
        };
        let mut appended = 200;
        while !mover.is_finished() || appended < 400 {
            append(&log, 1);
            appended += 1;
        }
        mover.join().expect("join").expect("move");
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(b.path()));
        assert_eq!(read_all(&log), (0..appended).collect::<Vec<_>>());
    }

    /// A file system that stops changing after `ops_left` more operations: what a kill -9 at that
    /// point leaves (each operation before it reached the disk, none after it did).
    #[derive(Debug)]
    struct DiesAfter {
        inner: Arc<dyn FileIo>,
        ops_left: AtomicUsize,
    }
    impl DiesAfter {
        fn step(&self) -> std::io::Result<()> {
            match self.ops_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
                Ok(_) => Ok(()),
                Err(_) => Err(std::io::Error::other("killed")),
            }
        }
    }
    #[derive(Debug)]
    struct DyingFile {
        inner: Arc<dyn IoFile>,
        fs: Arc<DiesAfter>,
    }
    impl IoFile for DyingFile {
        fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
            self.inner.read_at(buf, pos)
        }
        fn write_all_at(&self, buf: &[u8], pos: u64) -> std::io::Result<()> {
            self.fs.step()?;
            self.inner.write_all_at(buf, pos)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.fs.step()?;
            self.inner.sync_data()
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.fs.step()?;
            self.inner.set_len(len)
        }
        fn preallocate(&self, offset: u64, len: u64) -> std::io::Result<()> {
            self.inner.preallocate(offset, len)
        }
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
    }
    #[derive(Debug, Clone)]
    struct Dying(Arc<DiesAfter>);
    impl FileIo for Dying {
        fn open(&self, path: &Path, mode: OpenMode) -> std::io::Result<Arc<dyn IoFile>> {
            if mode == OpenMode::CreateReadWrite {
                self.0.step()?;
            }
            Ok(Arc::new(DyingFile { inner: self.0.inner.open(path, mode)?, fs: self.0.clone() }))
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            self.0.step()?;
            self.0.inner.rename(from, to)
        }
        fn remove_file(&self, path: &Path) -> std::io::Result<()> {
            self.0.step()?;
            self.0.inner.remove_file(path)
        }
        fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
            self.0.step()?;
            self.0.inner.remove_dir_all(path)
        }
        fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
            self.0.step()?;
            self.0.inner.create_dir_all(path)
        }
        fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
            self.0.step()?;
            self.0.inner.sync_dir(path)
        }
        fn list_dir(&self, path: &Path) -> std::io::Result<Vec<DirEntry>> {
            self.0.inner.list_dir(path)
        }
        fn exists(&self, path: &Path) -> std::io::Result<bool> {
            self.0.inner.exists(path)
        }
        fn disk_space(&self, path: &Path) -> std::io::Result<(u64, u64)> {
            self.0.inner.disk_space(path)
        }
    }

    #[test]
    fn a_kill_at_any_step_of_a_move_leaves_the_partition_whole_in_one_dir() {
        let mut finished = false;
        for kill_at in 0.. {
            let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
            let tp = TopicPartition::new("kill", 0);
            let fs = Arc::new(DiesAfter { inner: io(), ops_left: AtomicUsize::new(usize::MAX) });
            let m = LogManager::open(dirs(&a, &b), cfg(), Arc::new(Dying(fs.clone()))).expect("open");
            let log = m.create_log(&tp, cfg()).expect("create");
            for _ in 0..20 {
                append(&log, 2);
            }
            lock_log(&log).expect("lock").delete_records_before(7).expect("delete records");
            m.checkpoint().expect("checkpoint");
            let want = read_all(&log);
            m.request_move(&tp, b.path().to_str().expect("utf8")).expect("start");
            fs.ops_left.store(kill_at, Ordering::SeqCst);
            let moved = m.run_move(&tp);
            drop((log, m));

            let m = LogManager::open(dirs(&a, &b), cfg(), io()).unwrap_or_else(|e| panic!("open after a kill at step {kill_at}: {e}"));
            let homes: Vec<bool> = [a.path(), b.path()].iter().map(|d| d.join("kill-0").exists()).collect();
            assert_eq!(homes.iter().filter(|h| **h).count(), 1, "kill at step {kill_at}: {homes:?}");
            for d in [a.path(), b.path()] {
                let left: Vec<String> = names(d).into_iter().filter(|n| n.starts_with("kill-0") && n != "kill-0").collect();
                assert!(left.is_empty(), "kill at step {kill_at}: {left:?}");
            }
            // A marker outlives a kill between the old dir's removal and its own: only in the
            // committed copy, where it is harmless (a later move removes it before its commit).
            assert!(!a.path().join("kill-0").join(MOVED_MARKER_FILE).exists(), "kill at step {kill_at}");
            let log = m.get(&tp).expect("loaded");
            assert_eq!(read_all(&log), want, "kill at step {kill_at}");
            if moved.is_ok() {
                assert_eq!(m.log_dir_of(&tp).as_deref(), Some(b.path()));
                finished = true;
                println!("a move takes {kill_at} steps; a kill at each of them checked");
                break;
            }
        }
        assert!(finished);
    }

    #[test]
    fn an_open_drops_an_unfinished_copy_and_prefers_a_committed_one() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let tp = TopicPartition::new("two", 0);
        {
            let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("open");
            let log = m.create_log(&tp, cfg()).expect("create");
            append(&log, 4);
            m.close().expect("close");
        }
        // An unfinished copy in b: gone at open, the partition served from a.
        std::fs::create_dir_all(b.path().join("two-0.0123456789abcdef0123456789abcdef-future")).expect("mkdir");
        std::fs::write(b.path().join("two-0.0123456789abcdef0123456789abcdef-future/00000000000000000000.log"), b"torn").expect("write");
        {
            let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("open");
            assert_eq!(names(b.path()).iter().filter(|n| n.starts_with("two-0")).count(), 0);
            assert_eq!(m.log_dir_of(&tp).as_deref(), Some(a.path()));
            m.close().expect("close");
        }
        // A committed copy in b (marker) beside the old dir in a: the copy wins.
        std::fs::create_dir_all(b.path().join("two-0")).expect("mkdir");
        for f in names(&a.path().join("two-0")) {
            std::fs::copy(a.path().join("two-0").join(&f), b.path().join("two-0").join(&f)).expect("copy");
        }
        std::fs::write(b.path().join("two-0").join(MOVED_MARKER_FILE), b"").expect("marker");
        let m = LogManager::open(dirs(&a, &b), cfg(), io()).expect("open");
        assert_eq!(m.log_dir_of(&tp).as_deref(), Some(b.path()));
        assert!(!a.path().join("two-0").exists());
        assert!(!b.path().join("two-0").join(MOVED_MARKER_FILE).exists());
        assert_eq!(read_all(&m.get(&tp).expect("log")), (0..4).collect::<Vec<_>>());
    }
}
