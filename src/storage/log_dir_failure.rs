//! Log dir failure, as Kafka's LogDirFailureChannel: which storage errors take a log dir offline, and the set of offline dirs. It decides, logs the event once and remembers it; it performs no I/O and never brings a dir back online (a restart does, recovering from what is on disk).
//!
//! The policy. After a failed fsync the state of the data is unknown: Linux may have dropped the
//! dirty pages and report success to the next fsync, so retrying would acknowledge records that
//! are not on the disk. After a write that failed for an unexplained reason (EIO) the same holds.
//! So a log dir goes offline on:
//! - any failed fsync: a segment's data or indexes, a producer snapshot, a checkpoint, a
//!   directory, a durable-mode sync, a roll flush, a `flush.ms` / `flush.messages` flush, close.
//!   Backends report an fsync's ENOSPC with another kind (`io::sync_failure`), so it counts here;
//! - a read's EIO (the replica manager reports only that errno for reads: a short read says
//!   nothing of the disk);
//! - any other I/O error of a storage operation (write, create, rename, remove, resize), except
//!   ENOSPC that storage undid (an append cut back, a roll or a partition creation removed, a
//!   checkpoint's temp file abandoned: the log is as before and the next try may work once space
//!   is freed), EMFILE/ENFILE (the process out of descriptors) and a name in the way (EEXIST,
//!   ENOTDIR, EISDIR: a file where a partition directory must go). Those say nothing about the
//!   disk, and the operations that meet them change nothing or undo themselves (a partition
//!   creation removes what it made; finding nothing to remove, ENOENT, is no failure). An undo
//!   that fails itself reports an error that is not ENOSPC, so it counts.
//!
//! Offline means (enforced by `LogManager` and the replica manager, which ask [`LogDirFailures`]):
//! every partition in the dir answers KAFKA_STORAGE_ERROR, nothing in it is read, written or
//! fsynced again (background flush, retention, cleaner and checkpoints skip it, or they would hit
//! the same fault over and over), new partitions go to other dirs, and DescribeLogDirs reports
//! the dir with KAFKA_STORAGE_ERROR. When every log dir is offline the hook set with
//! [`LogDirFailures::on_all_offline`] runs (the broker exits, as Kafka halts).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, RwLock};

use super::StorageError;

/// Whether `e`, from a storage operation on a log dir, takes that dir offline (see the policy above).
pub fn takes_dir_offline(e: &StorageError) -> bool {
    match e {
        StorageError::Io(io) => {
            let says_nothing_of_the_disk = matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::EEXIST | libc::ENOTDIR | libc::EISDIR));
            !super::io::is_out_of_space(io) && !says_nothing_of_the_disk
        }
        _ => false,
    }
}

/// The offline log dirs of this broker. Shared by the log manager and the replica manager.
pub struct LogDirFailures {
    /// How many log dirs there are (to tell when all are offline).
    dirs: usize,
    /// Offline dirs with the cause that took each offline, in the order they failed.
    offline: RwLock<Vec<(PathBuf, String)>>,
    /// `offline.len()`, read without the lock on every produce and fetch.
    offline_count: AtomicUsize,
    on_all_offline: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for LogDirFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDirFailures").field("dirs", &self.dirs).field("offline", &self.offline_dirs()).finish()
    }
}

impl LogDirFailures {
    /// Every one of `dirs` log dirs online.
    pub fn new(dirs: usize) -> Self {
        Self { dirs, offline: RwLock::new(Vec::new()), offline_count: AtomicUsize::new(0), on_all_offline: OnceLock::new() }
    }

    /// What to do once every log dir is offline (set once, by whoever owns the process).
    pub fn on_all_offline(&self, f: impl Fn() + Send + Sync + 'static) {
        if self.on_all_offline.set(Box::new(f)).is_err() {
            tracing::warn!("the all-log-dirs-offline hook was already set");
        }
    }

    pub fn is_offline(&self, dir: &Path) -> bool {
        self.offline_count.load(Ordering::Acquire) > 0 && self.offline.read().unwrap_or_else(|e| e.into_inner()).iter().any(|(d, _)| d == dir)
    }

    /// Whether any log dir is offline (a check that takes no lock).
    pub fn any_offline(&self) -> bool {
        self.offline_count.load(Ordering::Acquire) > 0
    }

    /// The offline dirs with their causes.
    pub fn offline_dirs(&self) -> Vec<(PathBuf, String)> {
        self.offline.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes `dir` offline because `what` failed with `cause`; logs it once, at error level. Returns
    /// whether the dir went offline now (false: it already was).
    pub fn fail(&self, dir: &Path, what: &str, cause: &dyn Display) -> bool {
        let all = {
            let mut offline = self.offline.write().unwrap_or_else(|e| e.into_inner());
            if offline.iter().any(|(d, _)| d == dir) {
                tracing::debug!(dir = %dir.display(), what, error = %cause, "another failure in an offline log dir");
                return false;
            }
            let cause = format!("{what}: {cause}");
            tracing::error!(dir = %dir.display(), error = %cause, "log dir offline: its partitions answer KAFKA_STORAGE_ERROR and nothing in it is read or written until a restart");
            offline.push((dir.to_path_buf(), cause));
            self.offline_count.store(offline.len(), Ordering::Release);
            offline.len() >= self.dirs
        };
        if all {
            tracing::error!(dirs = self.dirs, "every log dir is offline");
            if let Some(f) = self.on_all_offline.get() {
                f();
            }
        }
        true
    }

    /// Applies the policy to an error `what` got in `dir`: takes the dir offline if it says so.
    /// Returns whether the dir is offline now.
    pub fn report(&self, dir: &Path, what: &str, e: &StorageError) -> bool {
        if takes_dir_offline(e) {
            self.fail(dir, what, e);
            return true;
        }
        self.is_offline(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    fn io_err(errno: i32) -> StorageError {
        StorageError::Io(io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn eio_and_fsync_failures_go_offline_a_clean_enospc_and_client_errors_do_not() {
        assert!(takes_dir_offline(&io_err(libc::EIO)));
        assert!(takes_dir_offline(&io_err(libc::EROFS)));
        assert!(!takes_dir_offline(&io_err(libc::ENOSPC)), "an undone append on a full disk");
        assert!(!takes_dir_offline(&io_err(libc::EMFILE)));
        assert!(!takes_dir_offline(&io_err(libc::ENOTDIR)), "a file where a partition directory must go");
        let fsync_enospc = StorageError::Io(crate::storage::io::sync_failure(io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(takes_dir_offline(&fsync_enospc), "ENOSPC from an fsync: pages may be lost");
        assert!(fsync_enospc.to_string().contains("fsync failed"), "{fsync_enospc}");
        assert!(!takes_dir_offline(&StorageError::OffsetOutOfRange { requested: 9, log_start: 0, log_end: 1 }));
        assert!(!takes_dir_offline(&StorageError::Corrupt("lock poisoned".into())));
    }

    #[test]
    fn a_dir_goes_offline_once_and_the_hook_runs_when_the_last_one_does() {
        let f = LogDirFailures::new(2);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        f.on_all_offline(move || {
            r.fetch_add(1, Ordering::Relaxed);
        });
        let (a, b) = (Path::new("/data/a"), Path::new("/data/b"));
        assert!(!f.any_offline() && !f.is_offline(a));
        assert!(!f.report(a, "append", &io_err(libc::ENOSPC)), "a clean ENOSPC keeps it online");
        assert!(f.report(a, "fsync", &io_err(libc::EIO)));
        assert!(f.is_offline(a) && !f.is_offline(b) && f.any_offline());
        assert!(!f.fail(a, "fsync", &"again"), "already offline");
        assert_eq!(f.offline_dirs().len(), 1);
        assert!(f.offline_dirs()[0].1.contains("fsync"), "{:?}", f.offline_dirs());
        assert_eq!(runs.load(Ordering::Relaxed), 0);
        assert!(f.fail(b, "write", &"EIO"));
        assert_eq!(runs.load(Ordering::Relaxed), 1, "every dir offline");
    }
}
