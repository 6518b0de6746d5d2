//! Moving a partition between log dirs (AlterReplicaLogDirs): a copy made beside the live log, then switched in atomically; it never sees a request type and touches files only through `io`.
//!
//! Kafka copies into a "future" replica that a fetcher thread keeps catching up until it swaps.
//! Fjord does a simpler equivalent (`LogManager::run_move`, on a thread of its own):
//! 1. `<dest>/<topic>-<partition>.<uuid>-future` is made and the sealed segments (log and
//!    indexes) are copied into it without the partition's lock: produce and fetch go on.
//! 2. Under the lock (appends wait, reads of published data do not): the log is closed as at a
//!    clean shutdown (active segment sealed, producer snapshot written), every file the copy
//!    lacks or that changed since is copied (the active segment and its indexes, producer
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
        let copied = (|| -> Result<u64> {
            io.sync_dir(dest)?;
            // 1. Sealed segments, without the lock.
            let (sealed, rewrites, log_end) = {
                let l = lock_log(&log)?;
                (l.sealed_segment_bases(), l.rewrites(), l.log_end_offset())
            };
            for (i, base) in sealed.iter().enumerate() {
                for ext in ["log", "index", "timeindex", "txnindex"] {
                    let name = file_name(*base, ext);
                    // Retention or DeleteRecords may delete it meanwhile: step 2 settles that.
                    if let Some(len) = copy_file(io, &src_dir.join(&name), &future.join(&name))? {
                        state.copied_bytes.fetch_add(len, Ordering::Relaxed);
                    }
                }
                let next = sealed.get(i + 1).copied().unwrap_or(log_end);
                state.lag.store(log_end - next, Ordering::Relaxed);
            }
            Ok(rewrites)
        })();
        let moved = copied.and_then(|rewrites| self.finish_move(tp, &source, dest, &future, &log, state, rewrites));
        if let Err(e) = moved {
            // The copy is not authoritative until its rename: drop it.
            if io.exists(&future).unwrap_or(false) {
                if let Err(r) = io.remove_dir_all(&future) {
                    tracing::warn!(dir = %future.display(), error = %r, "cannot remove the abandoned copy; the next start removes it");
                }
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
        let closed = l.close();
        if let Err(e) = closed {
            self.failures.report(source, "closing a log to move it", &e);
            return Err(e);
        }
        let opened_again = |l: &mut PartitionLog| -> Result<()> {
            // The old log, closed for the copy, takes appends again.
            let again = PartitionLog::open(self.io.clone(), &src_dir, tp.clone(), l.config().clone(), l.log_end_offset(), l.log_start_offset(), true, now_ms())?;
            let mut again = again;
            again.take_over(l);
            *l = again;
            Ok(())
        };
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
                // A sealed segment's file copied in step 1 is the same file unless its length
                // changed or the log rewrote sealed segments since: a sealed segment only ever
                // changes by a truncation or a cleaner swap, and both count as rewrites.
                let fresh = !rewritten && sealed.contains(&e.name) && copied.get(&e.name) == Some(&len);
                if !fresh {
                    copy_file(io, &e.path, &future.join(&e.name))?;
                    state.copied_bytes.fetch_add(len, Ordering::Relaxed);
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

/// Copies `from` to `to` (created or cut to nothing first) and fsyncs the copy. `None` when
/// `from` does not exist.
fn copy_file(io: &dyn FileIo, from: &Path, to: &Path) -> Result<Option<u64>> {
    let src = match io.open(from, OpenMode::ReadWrite) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let len = src.len()?;
    let dst = io.open(to, OpenMode::CreateReadWrite)?;
    dst.set_len(0)?;
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min(len as usize).max(1)];
    let mut pos = 0u64;
    while pos < len {
        let want = buf.len().min((len - pos) as usize);
        let n = src.read_full_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
    }
    dst.sync_data()?;
    Ok(Some(pos))
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
