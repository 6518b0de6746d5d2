//! An open-files budget over any FileIo backend: files past `fjord.log.open.files.max` are closed least recently used first (CLOCK) and reopened by path on their next use, so descriptors do not grow with the partition count; it never reads or changes file contents.
//!
//! Kafka keeps every segment file of every partition open and asks operators for a huge
//! `ulimit -n`; a broker with 20,000 descriptors then stops accepting connections at about 6,600
//! partitions (three files each). Here a handle ([`BudgetFile`]) stays valid while its file is
//! closed: the next operation reopens it (`O_RDWR`, never creating) and may close another one.
//!
//! What keeps that correct:
//! - An operation clones the open file's `Arc` for its duration, so a file closed by the budget
//!   meanwhile keeps its descriptor until the operation ends (the count of descriptors may pass
//!   the budget by the operations in flight).
//! - [`IoFile::raw_fd`] is `None` on a handle: a descriptor used across calls (sendfile) comes from
//!   [`IoFile::pinned`], the open file itself, held by the caller until it is done.
//! - Renames and removals go through [`BudgetIo`] too: a handle follows its file to the new name
//!   (a directory rename moves every handle under it); a handle whose name was removed or replaced
//!   by another file is never closed while open (it could not be reopened), and one closed then
//!   fails with NotFound instead of reopening a different file.
//! - Closing a descriptor loses no data: dirty pages belong to the inode and a later fdatasync on
//!   a reopened descriptor writes them. (A write-back error the kernel reported to the closed
//!   descriptor alone is not seen by the new one; Linux reports it to descriptors open at the time.)

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{DirEntry, FileIo, IoFile, OpenMode};

/// The least budget [`default_open_files_max`] derives, however low the limit.
pub const MIN_OPEN_FILES: usize = 64;
/// Descriptors the derived budget leaves to sockets and other files, at least.
pub const RESERVED_DESCRIPTORS_MIN: usize = 256;

/// `fjord.log.open.files.max` when it is 0: three quarters of the soft RLIMIT_NOFILE (a quarter,
/// at least [`RESERVED_DESCRIPTORS_MIN`], stays for connections, directories being synced and
/// checkpoints), never below [`MIN_OPEN_FILES`].
pub fn default_open_files_max() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 1024 };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX).min(1 << 30);
    soft.saturating_sub((soft / 4).max(RESERVED_DESCRIPTORS_MIN)).max(MIN_OPEN_FILES)
}

/// Counters of one budget; read them with [`BudgetIo::stats`].
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// The budget: most files held open at once (operations in flight may hold a few more).
    pub max_open: usize,
    /// Files held open now.
    pub open_now: AtomicUsize,
    /// Files closed to make room.
    pub evictions: AtomicU64,
    /// Closed files opened again on use.
    pub reopens: AtomicU64,
    /// Opens that found no file to close (every open one in use or pinned by a removal).
    pub over_budget: AtomicU64,
}

/// The shared state: which handles are open (the clock ring) and where every live handle's file is.
#[derive(Debug, Default)]
struct State {
    /// Open handles in clock order (some may have died or closed since: skipped and dropped).
    ring: Vec<Weak<BudgetFile>>,
    hand: usize,
    /// Every live handle by (path, id): renames and removals find the handles under a path here.
    paths: BTreeMap<(PathBuf, u64), Weak<BudgetFile>>,
}

#[derive(Debug)]
struct Budget {
    stats: BudgetStats,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Live handles, to know when `paths` holds mostly dead entries.
    live: AtomicUsize,
    warned: AtomicBool,
}

impl Budget {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state holds only weak references and positions: still consistent after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes files until one more may open (at most `max_open` held), then counts it as open.
    /// Returns the closed files, to be dropped (closed) after the lock is released.
    fn reserve(&self, st: &mut State) -> Vec<Arc<dyn IoFile>> {
        let max = self.stats.max_open;
        let mut closed = Vec::new();
        let mut steps = 0usize;
        let limit = 2 * st.ring.len() + 2;
        while self.stats.open_now.load(Ordering::Relaxed) >= max && steps < limit && !st.ring.is_empty() {
            steps += 1;
            if st.hand >= st.ring.len() {
                st.hand = 0;
            }
            let Some(h) = st.ring[st.hand].upgrade() else {
                st.ring.swap_remove(st.hand);
                continue;
            };
            if h.gone.load(Ordering::Relaxed) {
                // Its name no longer leads to it: it stays open until its handle goes.
                st.ring.swap_remove(st.hand);
                continue;
            }
            if h.referenced.swap(false, Ordering::Relaxed) {
                st.hand += 1; // a second chance: used since the hand last passed
                continue;
            }
            let Ok(mut slot) = h.slot.try_lock() else {
                st.hand += 1; // being reopened or used right now
                continue;
            };
            if let Some(f) = slot.take() {
                self.stats.open_now.fetch_sub(1, Ordering::Relaxed);
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                closed.push(f);
            }
            drop(slot);
            st.ring.swap_remove(st.hand);
        }
        if self.stats.open_now.load(Ordering::Relaxed) >= max {
            self.stats.over_budget.fetch_add(1, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(max_open = max, "every open segment file is in use; opening past fjord.log.open.files.max");
            }
        }
        self.stats.open_now.fetch_add(1, Ordering::Relaxed);
        closed
    }

    /// Puts an open handle on the clock, dropping dead entries when they are most of the ring.
    fn enlist(&self, st: &mut State, h: Weak<BudgetFile>) {
        st.ring.push(h);
        if st.ring.len() > 2 * self.stats.open_now.load(Ordering::Relaxed) + 64 {
            st.ring.retain(|w| w.strong_count() > 0);
            st.hand = 0;
        }
    }

    /// Closes up to `n` files that are not in use, whatever the budget: after the process ran out
    /// of descriptors (EMFILE), so the open that failed can be tried again.
    fn shed(&self, n: usize) {
        let mut closed = Vec::new();
        {
            let mut st = self.state();
            let mut i = 0;
            while closed.len() < n && i < st.ring.len() {
                let Some(h) = st.ring[i].upgrade() else {
                    st.ring.swap_remove(i);
                    continue;
                };
                if !h.gone.load(Ordering::Relaxed)
                    && let Ok(mut slot) = h.slot.try_lock()
                    && let Some(f) = slot.take()
                {
                    self.stats.open_now.fetch_sub(1, Ordering::Relaxed);
                    self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                    closed.push(f);
                    drop(slot);
                    st.ring.swap_remove(i);
                    continue;
                }
                i += 1;
            }
        }
        drop(closed);
    }

    /// The live handles whose path is `path` or lies under it.
    fn handles_under(st: &State, path: &Path) -> Vec<Arc<BudgetFile>> {
        st.paths
            .range((path.to_path_buf(), 0)..)
            .take_while(|((p, _), _)| p.starts_with(path))
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }
}

/// A FileIo whose files count against an open-files budget. Wraps any backend.
#[derive(Debug, Clone)]
pub struct BudgetIo {
    inner: Arc<dyn FileIo>,
    budget: Arc<Budget>,
}

impl BudgetIo {
    /// `max_open` files at most (at least 1).
    pub fn new(inner: Arc<dyn FileIo>, max_open: usize) -> BudgetIo {
        let stats = BudgetStats { max_open: max_open.max(1), ..BudgetStats::default() };
        let budget = Budget { stats, state: Mutex::default(), next_id: AtomicU64::new(0), live: AtomicUsize::new(0), warned: AtomicBool::new(false) };
        BudgetIo { inner, budget: Arc::new(budget) }
    }

    pub fn stats(&self) -> &BudgetStats {
        &self.budget.stats
    }

    /// Opens through the inner backend; on EMFILE/ENFILE closes some idle files and tries once more.
    fn open_inner(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        open_retrying(self.inner.as_ref(), &self.budget, path, mode)
    }

    /// Marks every handle at or under `path` as no longer reachable by its name.
    fn mark_gone(st: &State, path: &Path) {
        for h in Budget::handles_under(st, path) {
            h.gone.store(true, Ordering::Relaxed);
            h.path_generation.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn open_retrying(io: &dyn FileIo, budget: &Budget, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
    match io.open(path, mode) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            let n = (budget.stats.open_now.load(Ordering::Relaxed) / 8).max(8);
            tracing::warn!(error = %e, closing = n, "out of descriptors opening a segment file; closing idle ones");
            budget.shed(n);
            io.open(path, mode)
        }
        other => other,
    }
}

/// One file under the budget: open now or closed until its next use.
#[derive(Debug)]
pub struct BudgetFile {
    me: Weak<BudgetFile>,
    budget: Arc<Budget>,
    io: Arc<dyn FileIo>,
    /// Where the file is now (renames move it); read by a reopen.
    path: Mutex<PathBuf>,
    /// Bumped by every rename or removal touching the path, so a reopen racing one is retried.
    path_generation: AtomicU64,
    /// The name no longer leads to this file (removed, or replaced by a rename onto it).
    gone: AtomicBool,
    /// Used since the clock hand last passed.
    referenced: AtomicBool,
    slot: Mutex<Option<Arc<dyn IoFile>>>,
}

impl BudgetFile {
    fn slot(&self) -> MutexGuard<'_, Option<Arc<dyn IoFile>>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open file, reopened (and another closed) if the budget had closed it.
    fn file(&self) -> io::Result<Arc<dyn IoFile>> {
        self.referenced.store(true, Ordering::Relaxed);
        let mut slot = if super::nowait::active() {
            // Another thread may hold the slot while it reopens the file: not worth a wait here.
            match self.slot.try_lock() {
                Ok(slot) => slot,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Err(super::nowait::would_block()),
            }
        } else {
            self.slot()
        };
        if let Some(f) = slot.as_ref() {
            return Ok(f.clone());
        }
        if super::nowait::active() {
            // Reopening is an open(2), and may close another file first: off the async worker.
            return Err(super::nowait::would_block());
        }
        loop {
            if self.gone.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::NotFound, "segment file removed or replaced while closed by the open-files budget"));
            }
            let generation = self.path_generation.load(Ordering::Acquire);
            let path = self.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let closed = self.budget.reserve(&mut self.budget.state());
            drop(closed);
            let f = match open_retrying(self.io.as_ref(), &self.budget, &path, OpenMode::ReadWrite) {
                Ok(f) => f,
                Err(e) => {
                    self.budget.stats.open_now.fetch_sub(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let mut st = self.budget.state();
            if self.path_generation.load(Ordering::Acquire) != generation {
                // Renamed or removed while we opened: what we opened may be another file.
                drop(st);
                self.budget.stats.open_now.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            self.budget.enlist(&mut st, self.me.clone());
            drop(st);
            self.budget.stats.reopens.fetch_add(1, Ordering::Relaxed);
            *slot = Some(f.clone());
            return Ok(f);
        }
    }
}

impl Drop for BudgetFile {
    fn drop(&mut self) {
        let open = self.slot.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if open.is_some() {
            self.budget.stats.open_now.fetch_sub(1, Ordering::Relaxed);
        }
        self.budget.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl IoFile for BudgetFile {
    /// Open, and its slot not being reopened by another thread right now.
    fn is_open(&self) -> bool {
        match self.slot.try_lock() {
            Ok(slot) => slot.is_some(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().is_some(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        }
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file()?.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.file()?.write_all_at(buf, pos)
    }
    fn write_all_vectored_at(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        self.file()?.write_all_vectored_at(parts, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        // Every backend's fdatasync passes here: timed once for /metrics (an fsync takes
        // milliseconds; two clock reads do not show).
        let file = self.file()?;
        let started = std::time::Instant::now();
        let synced = file.sync_data();
        crate::metrics::FSYNC_TIME.observe(started.elapsed());
        synced
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file()?.set_len(len)
    }
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file()?.preallocate(offset, len)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file()?.start_writeback(offset, len)
    }
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file()?.drop_cached(offset, len)
    }
    fn will_need(&self, offset: u64, len: u64) -> io::Result<()> {
        self.file()?.will_need(offset, len)
    }
    fn is_cached(&self, pos: u64) -> bool {
        self.file().is_ok_and(|f| f.is_cached(pos))
    }
    fn len(&self) -> io::Result<u64> {
        self.file()?.len()
    }
    /// None: the budget may close this descriptor between two calls; see [`IoFile::pinned`].
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
    fn pinned(&self) -> io::Result<Option<Arc<dyn IoFile>>> {
        self.file().map(Some)
    }
    fn read_full_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        // One reopen at most for the whole read, not one per chunk.
        self.file()?.read_full_at(buf, pos)
    }
}

impl FileIo for BudgetIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        let closed = self.budget.reserve(&mut self.budget.state());
        drop(closed);
        let f = match self.open_inner(path, mode) {
            Ok(f) => f,
            Err(e) => {
                self.budget.stats.open_now.fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let id = self.budget.next_id.fetch_add(1, Ordering::Relaxed);
        self.budget.live.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new_cyclic(|me| BudgetFile {
            me: me.clone(),
            budget: self.budget.clone(),
            io: self.inner.clone(),
            path: Mutex::new(path.to_path_buf()),
            path_generation: AtomicU64::new(0),
            gone: AtomicBool::new(false),
            referenced: AtomicBool::new(true),
            slot: Mutex::new(Some(f)),
        });
        let mut st = self.budget.state();
        st.paths.insert((path.to_path_buf(), id), Arc::downgrade(&h));
        if st.paths.len() > 2 * self.budget.live.load(Ordering::Relaxed) + 64 {
            st.paths.retain(|_, w| w.strong_count() > 0);
        }
        self.budget.enlist(&mut st, Arc::downgrade(&h));
        Ok(h)
    }

    /// Renames on disk and moves the handles at or under `from` to `to`; handles at or under `to`
    /// (replaced) are marked gone. Done under the budget's lock, so no reopen sees a half-moved name.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.budget.state();
        self.inner.rename(from, to)?;
        Self::mark_gone(&st, to);
        let moved: Vec<((PathBuf, u64), Weak<BudgetFile>)> = st
            .paths
            .range((from.to_path_buf(), 0)..)
            .take_while(|((p, _), _)| p.starts_with(from))
            .map(|(k, w)| (k.clone(), w.clone()))
            .collect();
        for ((old, id), w) in moved {
            st.paths.remove(&(old.clone(), id));
            let Some(h) = w.upgrade() else { continue };
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            *h.path.lock().unwrap_or_else(|e| e.into_inner()) = new.clone();
            h.path_generation.fetch_add(1, Ordering::Release);
            // A handle renamed onto a replaced name is the file there now.
            h.gone.store(false, Ordering::Relaxed);
            st.paths.insert((new, id), w);
        }
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        Self::mark_gone(&self.budget.state(), path);
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        Self::mark_gone(&self.budget.state(), path);
        self.inner.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn disk_space(&self, path: &Path) -> io::Result<(u64, u64)> {
        self.inner.disk_space(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::StdIo;

    fn budget_io(max: usize) -> BudgetIo {
        BudgetIo::new(Arc::new(StdIo), max)
    }
    fn open_now(b: &BudgetIo) -> usize {
        b.stats().open_now.load(Ordering::Relaxed)
    }
    fn read_all(f: &dyn IoFile) -> Vec<u8> {
        let mut buf = vec![0u8; f.len().expect("len") as usize];
        assert_eq!(f.read_full_at(&mut buf, 0).expect("read"), buf.len());
        buf
    }

    #[test]
    fn many_files_never_hold_more_than_the_budget_and_read_back_after_eviction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = budget_io(16);
        let files: Vec<Arc<dyn IoFile>> = (0..200)
            .map(|i| {
                let f = b.open(&dir.path().join(format!("{i}.log")), OpenMode::CreateReadWrite).expect("open");
                f.write_all_at(format!("file {i} ").as_bytes(), 0).expect("write");
                assert!(open_now(&b) <= 16, "{} open after {i}", open_now(&b));
                f
            })
            .collect();
        // Interleaved appends and reads across all of them, twice round.
        for round in 0..2 {
            for (i, f) in files.iter().enumerate() {
                let end = f.len().expect("len");
                f.write_all_at(format!("r{round}").as_bytes(), end).expect("append");
                f.sync_data().expect("sync");
                assert!(open_now(&b) <= 16);
                assert_eq!(read_all(f.as_ref()), format!("file {i} {}", (0..=round).map(|r| format!("r{r}")).collect::<String>()).into_bytes());
            }
        }
        assert!(b.stats().evictions.load(Ordering::Relaxed) >= 200 - 16);
        assert!(b.stats().reopens.load(Ordering::Relaxed) > 0);
        assert_eq!(b.stats().over_budget.load(Ordering::Relaxed), 0);
        drop(files);
        assert_eq!(open_now(&b), 0, "dropped handles give their files back");
    }

    #[test]
    fn a_reopen_never_creates_a_file_and_a_handle_follows_renames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = budget_io(1);
        let a = b.open(&dir.path().join("a"), OpenMode::CreateReadWrite).expect("open");
        a.write_all_at(b"alpha", 0).expect("write");
        let sub = dir.path().join("p-0");
        b.create_dir_all(&sub).expect("mkdir");
        let c = b.open(&sub.join("c"), OpenMode::CreateReadWrite).expect("open c closes a");
        c.write_all_at(b"gamma", 0).expect("write");
        // `a` is closed now; renamed while closed, it reopens under its new name.
        b.rename(&dir.path().join("a"), &dir.path().join("b")).expect("rename");
        assert_eq!(read_all(a.as_ref()), b"alpha");
        // A directory rename moves the handles under it.
        b.rename(&sub, &dir.path().join("p-0.x-delete")).expect("rename dir");
        assert_eq!(read_all(c.as_ref()), b"gamma");
        // Removed while closed: an error, never a new empty file.
        b.remove_file(&dir.path().join("b")).expect("rm");
        let err = a.len().expect_err("closed and removed");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!dir.path().join("b").exists());
    }

    #[test]
    fn a_removed_or_replaced_open_file_stays_open_and_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = budget_io(2);
        let old = b.open(&dir.path().join("seg"), OpenMode::CreateReadWrite).expect("open");
        old.write_all_at(b"old data", 0).expect("write");
        // Replaced by a rename onto its name while open (compaction's swap): kept open.
        let new = b.open(&dir.path().join("seg.swap"), OpenMode::CreateReadWrite).expect("open");
        new.write_all_at(b"new data", 0).expect("write");
        b.rename(&dir.path().join("seg.swap"), &dir.path().join("seg")).expect("swap in");
        for i in 0..10 {
            b.open(&dir.path().join(format!("other{i}")), OpenMode::CreateReadWrite).expect("open");
        }
        assert_eq!(read_all(old.as_ref()), b"old data", "the replaced file, not the new one");
        assert_eq!(read_all(new.as_ref()), b"new data", "the moved handle reads under its new name");
        let gone = b.open(&dir.path().join("gone"), OpenMode::CreateReadWrite).expect("open");
        gone.write_all_at(b"still here", 0).expect("write");
        b.remove_file(&dir.path().join("gone")).expect("rm");
        for i in 0..10 {
            b.open(&dir.path().join(format!("more{i}")), OpenMode::CreateReadWrite).expect("open");
        }
        assert_eq!(read_all(gone.as_ref()), b"still here", "removed while open: never closed by the budget");
    }

    #[test]
    fn a_pinned_file_keeps_its_descriptor_through_evictions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = budget_io(1);
        let f = b.open(&dir.path().join("x.log"), OpenMode::CreateReadWrite).expect("open");
        f.write_all_at(b"zero-copy bytes", 0).expect("write");
        assert_eq!(f.raw_fd(), None, "a handle never lends a descriptor the budget may close");
        let pinned = f.pinned().expect("pin").expect("an open file");
        let fd = pinned.raw_fd().expect("a real descriptor");
        // Other files push `x.log` out of the budget; the pinned descriptor stays valid and
        // still names x.log (a closed and reused number would read another file).
        let others: Vec<_> = (0..4)
            .map(|i| {
                let o = b.open(&dir.path().join(format!("o{i}")), OpenMode::CreateReadWrite).expect("open");
                o.write_all_at(b"other file", 0).expect("write");
                o
            })
            .collect();
        assert!(b.stats().evictions.load(Ordering::Relaxed) >= 1);
        let mut buf = [0u8; 15];
        // SAFETY: pread into a live buffer on a descriptor `pinned` keeps open.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert_eq!(n, 15);
        assert_eq!(&buf, b"zero-copy bytes");
        drop(others);
    }

    #[test]
    fn partition_logs_append_read_and_reopen_under_a_tiny_budget() {
        use crate::records::batch::test_support::simple_batch;
        use crate::records::validate::{ValidateConfig, validate};
        use crate::storage::log::PartitionLog;
        use crate::storage::LogConfig;
        use crate::types::TopicPartition;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = budget_io(8);
        let io: Arc<dyn FileIo> = Arc::new(b.clone());
        let cfg = LogConfig { segment_bytes: 600, index_interval_bytes: 100, ..LogConfig::default() };
        let mut logs: Vec<PartitionLog> = (0..40)
            .map(|p| PartitionLog::create(io.clone(), &dir.path().join(format!("t-{p}")), TopicPartition::new("t", p), cfg.clone(), 1).expect("create"))
            .collect();
        for _ in 0..6 {
            for log in logs.iter_mut() {
                let mut bytes = simple_batch(3);
                let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
                log.append(&mut bytes, &v, 1).expect("append");
                assert!(open_now(&b) <= 8, "{}", open_now(&b));
            }
        }
        for log in logs.iter_mut() {
            assert!(log.segment_count() > 1, "rolled");
            let r = log.read(0, 1 << 20, log.log_end_offset()).expect("read");
            assert_eq!((r.first_offset, r.log_end_offset), (0, 18));
            log.close().expect("close");
        }
        drop(logs);
        assert_eq!(open_now(&b), 0);
        for p in 0..40 {
            let log = PartitionLog::open(io.clone(), &dir.path().join(format!("t-{p}")), TopicPartition::new("t", p), cfg.clone(), 0, 0, true, 2).expect("open");
            assert_eq!(log.log_end_offset(), 18);
            assert!(open_now(&b) <= 8);
        }
    }
}
