//! io_uring FileIo backend: one storage thread owns the ring and runs the segment file operations (bulk preads, fdatasync, fallocate, and file creation, rename, unlink, directory fsync) in batched submissions, with group commit for fdatasync; it never interprets file contents.
//!
//! What stays on std, on the caller's thread:
//! - every write (see `write_all_at`: a buffered write on ext4 goes from the ring to an io-wq
//!   worker and back, two more thread hops than a pwrite on the handler thread making the append);
//! - reads under 64 KiB (a round trip through the storage thread costs more than a page-cache
//!   copy of a few KiB: see `read_at`);
//! - `set_len` (ftruncate has an opcode only since 6.9) and `len` (fstat);
//! - the directory-tree calls `remove_dir_all`, `create_dir_all`, `list_dir`, `exists` and
//!   `disk_space`: recursive walks or calls io_uring has no opcode for (getdents, statvfs), run
//!   when a partition is created, loaded or deleted, not per segment;
//! - opening a file that exists (no journal wait: loading thousands of partitions is thousands of
//!   opens).
//!
//! Creating a file, rename and unlink go through the ring when the kernel has IORING_OP_OPENAT /
//! RENAMEAT / UNLINKAT (5.6 / 5.11 / 5.11), fallocate when it has IORING_OP_FALLOCATE; an opcode
//! the probe does not find makes that operation use the std call ([`RingOps`], one log line at
//! construction), so an older kernel still gets the ring for reads and fsyncs.
//!
//! How an operation travels:
//! - The caller (a request handler or a spawn_blocking thread; the trait is synchronous) puts a
//!   request on a bounded channel ([`QUEUE_DEPTH`]; a full queue blocks the caller, which is the
//!   backpressure) and sleeps on its thread's completion slot (a mutex + condvar reused by every
//!   operation of that thread, so there is no allocation per operation and no busy poll).
//! - The storage thread blocks on the channel while nothing is in flight. Otherwise it drains
//!   everything queued (up to the free ring entries), pushes one SQE per request, submits once
//!   with `submit_and_wait(1)`, reaps every completion that is ready and wakes those callers.
//!   While it waits for the kernel, a poll on an eventfd is in the ring and senders write the
//!   eventfd (only when the thread said it is waiting), so a read or another file's fsync is
//!   never stuck behind a slow fsync.
//! - Group commit: fdatasync requests for the same descriptor that are drained in the same round
//!   become one IORING_OP_FSYNC (DATASYNC) whose result completes all of them. That is sound
//!   because a caller asks for a sync only after its writes have completed, so one fsync issued
//!   after all of those requests arrived covers every one of their writes. Requests for a file
//!   whose fsync is already running (it may have started before their writes) park in one group
//!   and share the next fsync, issued when the running one completes: the slower the disk, the
//!   more they share.
//! - The thread runs while the backend or any file it opened is alive (each holds the shared
//!   state); the last one dropped closes the channel and joins the thread.
//!
//! Memory safety: an SQE points into the caller's buffer (or, for a path operation, into the
//! caller's NUL-terminated copy of the path). The caller stays blocked until its completion has
//! been reaped, and the thread never drops a request that is still in the kernel
//! (its state waits for every in-flight completion before it goes away, even while unwinding).

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use io_uring::{IoUring, opcode, types};

use super::std::{StdIo, drop_cached_fd, preallocate_fd, preallocation_result, start_writeback_fd, will_need_fd, is_cached_fd};
use super::{DirEntry, FileIo, IoFile, OpenMode};

/// Ring entries: how many operations may be in the kernel at once.
pub const RING_ENTRIES: u32 = 256;
/// Requests that may wait for the storage thread before callers block.
pub const QUEUE_DEPTH: usize = 1024;
/// Largest single read handed to the kernel; longer ones are split (the SQE length is u32).
const MAX_OP_BYTES: usize = 1 << 30;

/// Counters for tests and benchmarks. Monotonic; read them with [`UringIo::stats`].
#[derive(Debug, Default)]
pub struct UringStats {
    /// Requests callers sent (each completes once: `requests - ops` are queued or in the kernel).
    pub requests: AtomicU64,
    /// Operations in the kernel now (a gauge the storage thread sets each round).
    pub in_flight: AtomicU64,
    /// Submission rounds (one `submit_and_wait` each).
    pub rounds: AtomicU64,
    /// Requests completed (every caller wake-up).
    pub ops: AtomicU64,
    /// fdatasync requests callers made.
    pub fsync_requests: AtomicU64,
    /// fdatasyncs the kernel actually ran.
    pub fsyncs_issued: AtomicU64,
    /// fdatasync requests served by another request's fsync (requests - issued).
    pub fsyncs_coalesced: AtomicU64,
}

/// A snapshot of [`UringStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UringCounts {
    pub requests: u64,
    pub in_flight: u64,
    pub rounds: u64,
    pub ops: u64,
    pub fsync_requests: u64,
    pub fsyncs_issued: u64,
    pub fsyncs_coalesced: u64,
}

impl UringStats {
    pub fn snapshot(&self) -> UringCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UringCounts {
            requests: g(&self.requests),
            in_flight: g(&self.in_flight),
            rounds: g(&self.rounds),
            ops: g(&self.ops),
            fsync_requests: g(&self.fsync_requests),
            fsyncs_issued: g(&self.fsyncs_issued),
            fsyncs_coalesced: g(&self.fsyncs_coalesced),
        }
    }
}

/// Where one caller waits for its operation: the raw CQE result (bytes or -errno).
#[derive(Debug, Default)]
struct Slot {
    result: Mutex<Option<i32>>,
    done: Condvar,
}

impl Slot {
    fn complete(&self, res: i32) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(res);
        self.done.notify_one();
    }
    fn wait(&self) -> i32 {
        let mut r = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = r.take() {
                return v;
            }
            r = self.done.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }
}

thread_local! {
    // A thread has at most one operation in flight (the API is synchronous), so one slot per
    // thread serves all of them.
    static SLOT: Arc<Slot> = Arc::new(Slot::default());
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Read { ptr: *mut u8, len: u32, pos: u64 },
    DataSync,
    /// A full fsync (metadata too), for directories; never shared with other requests.
    Sync,
    /// fallocate(`mode`) of `[pos, pos + len)`.
    Fallocate { pos: u64, len: u64, mode: i32 },
    /// The path operations: `fd` is the directory paths are relative to (AT_FDCWD), the pointers
    /// are the caller's CStrings. An open's result is the new descriptor.
    OpenAt { path: *const libc::c_char, flags: i32, mode: libc::mode_t },
    RenameAt { from: *const libc::c_char, to: *const libc::c_char },
    UnlinkAt { path: *const libc::c_char },
}

#[derive(Debug)]
struct Request {
    fd: RawFd,
    kind: Kind,
    /// Taken when the request enters the ring; a request dropped before that (the storage thread
    /// gone, its queue discarded) completes its caller with ECANCELED instead of leaving it asleep.
    slot: Option<Arc<Slot>>,
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.complete(-libc::ECANCELED);
        }
    }
}

// SAFETY: the raw pointers point into the caller's buffer or path, which stays borrowed (the
// caller is blocked in `Slot::wait`) until the storage thread has reaped the operation's completion.
unsafe impl Send for Request {}

/// What the backend and its files share; the last one dropped stops the thread.
#[derive(Debug)]
struct Shared {
    tx: Option<SyncSender<Request>>,
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<UringStats>,
    /// The optional opcodes this ring runs; the others use the std call.
    ops: RingOps,
}

impl Shared {
    fn submit(&self, fd: RawFd, kind: Kind) -> io::Result<i32> {
        let slot = SLOT.with(Arc::clone);
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        tx.send(Request { fd, kind, slot: Some(slot.clone()) }).map_err(|_| stopped())?;
        self.wake.notify();
        Ok(slot.wait())
    }

    /// One whole operation (no partial results to continue): submitted again after EINTR, as
    /// std's wrappers do, and the kernel's -errno turned into an io::Error.
    fn run_op(&self, fd: RawFd, kind: Kind) -> io::Result<usize> {
        loop {
            match result(self.submit(fd, kind)?) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// openat(AT_FDCWD, path, flags, mode) through the ring: the new descriptor, owned.
    fn open_at(&self, path: &Path, flags: i32, mode: libc::mode_t) -> io::Result<OwnedFd> {
        let c = c_path(path)?;
        let fd = self.run_op(libc::AT_FDCWD, Kind::OpenAt { path: c.as_ptr(), flags, mode })?;
        let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("io_uring openat returned no descriptor"))?;
        // SAFETY: the kernel just created this descriptor for this call; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// A path as the kernel takes it. A NUL inside cannot name a file (std says the same).
fn c_path(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The opcodes beyond the data path that this backend uses when the kernel has them. Each one
/// missing sends that operation to the std call instead; none is needed for the ring to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingOps {
    pub openat: bool,
    pub renameat: bool,
    pub unlinkat: bool,
    pub fallocate: bool,
}

impl RingOps {
    pub const ALL: RingOps = RingOps { openat: true, renameat: true, unlinkat: true, fallocate: true };
    pub const NONE: RingOps = RingOps { openat: false, renameat: false, unlinkat: false, fallocate: false };

    fn from_probe(p: &io_uring::Probe) -> Self {
        RingOps {
            openat: p.is_supported(opcode::OpenAt::CODE),
            renameat: p.is_supported(opcode::RenameAt::CODE),
            unlinkat: p.is_supported(opcode::UnlinkAt::CODE),
            fallocate: p.is_supported(opcode::Fallocate::CODE),
        }
    }

    /// The operations of both.
    fn and(self, o: RingOps) -> Self {
        RingOps { openat: self.openat && o.openat, renameat: self.renameat && o.renameat, unlinkat: self.unlinkat && o.unlinkat, fallocate: self.fallocate && o.fallocate }
    }

    /// Names of the opcodes not available.
    pub fn missing(&self) -> Vec<&'static str> {
        [(self.openat, "OPENAT"), (self.renameat, "RENAMEAT"), (self.unlinkat, "UNLINKAT"), (self.fallocate, "FALLOCATE")]
            .into_iter()
            .filter(|(on, _)| !on)
            .map(|(_, name)| name)
            .collect()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish what is in flight and return; the wake-up
        // gets it out of a wait for the kernel.
        self.tx.take();
        self.wake.parked.store(true, Ordering::SeqCst);
        self.wake.notify();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("io_uring storage thread panicked");
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("io_uring storage thread has stopped")
}

/// The io_uring backend. Cloning shares the ring and its thread.
#[derive(Debug, Clone)]
pub struct UringIo {
    shared: Arc<Shared>,
}

impl UringIo {
    /// Creates the ring and starts the storage thread. Fails when the kernel refuses io_uring;
    /// optional opcodes it lacks ([`RingOps`]) fall back to the std calls.
    pub fn new() -> io::Result<Self> {
        Self::with_ops(RingOps::ALL)
    }

    /// As `new`, using at most `allowed` of the optional opcodes (tests use it to run the std
    /// fallbacks on a kernel that has every opcode).
    pub fn with_ops(allowed: RingOps) -> io::Result<Self> {
        let ring = IoUring::new(RING_ENTRIES)?;
        let mut p = io_uring::Probe::new();
        // No probe (before 5.6) means none of the optional opcodes can be trusted.
        let supported = match ring.submitter().register_probe(&mut p) {
            Ok(()) => RingOps::from_probe(&p),
            Err(_) => RingOps::NONE,
        };
        let ops = supported.and(allowed);
        let missing = supported.missing();
        if !missing.is_empty() {
            tracing::info!(missing = ?missing, "io_uring lacks these opcodes; those operations use the std calls");
        }
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let stats = Arc::new(UringStats::default());
        let thread_stats = stats.clone();
        let wake = Arc::new(Wake::new()?);
        let thread_wake = wake.clone();
        let thread = std::thread::Builder::new()
            .name("fjord-uring".into())
            .spawn(move || run(ring, rx, thread_wake, &thread_stats))?;
        Ok(Self { shared: Arc::new(Shared { tx: Some(tx), wake, thread: Some(thread), stats, ops }) })
    }

    /// The optional opcodes this backend runs through the ring.
    pub fn ops(&self) -> RingOps {
        self.shared.ops
    }

    /// The counters, shared: they stay readable after the backend is dropped.
    pub fn stats(&self) -> Arc<UringStats> {
        self.shared.stats.clone()
    }

    /// Wraps an already open file (tests use it for descriptors `open` would not produce).
    pub fn wrap(&self, file: File) -> Arc<dyn IoFile> {
        Arc::new(UringFile { file, shared: self.shared.clone() })
    }
}

/// Checks that the kernel runs io_uring with the operations this backend needs: a small ring,
/// the opcode probe, and one NOP through it. `Err` says why not; `Ok` tells which optional
/// opcodes are there (the backend uses std calls for the others).
pub fn probe() -> io::Result<RingOps> {
    let mut ring = IoUring::new(4)?;
    let mut p = io_uring::Probe::new();
    ring.submitter().register_probe(&mut p)?;
    let required = [(opcode::Read::CODE, "READ"), (opcode::Fsync::CODE, "FSYNC"), (opcode::PollAdd::CODE, "POLL_ADD")];
    for (code, name) in required {
        if !p.is_supported(code) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks IORING_OP_{name}")));
        }
    }
    let nop = opcode::Nop::new().build().user_data(7);
    // SAFETY: a NOP references no memory.
    unsafe { ring.submission().push(&nop) }.map_err(|_| io::Error::other("io_uring probe: submission queue full"))?;
    ring.submit_and_wait(1)?;
    match ring.completion().next() {
        Some(c) if c.result() >= 0 && c.user_data() == 7 => Ok(RingOps::from_probe(&p)),
        Some(c) => Err(io::Error::from_raw_os_error(-c.result())),
        None => Err(io::Error::other("io_uring probe: no completion for a NOP")),
    }
}

#[derive(Debug)]
struct UringFile {
    file: File,
    shared: Arc<Shared>,
}

fn result(res: i32) -> io::Result<usize> {
    if res < 0 { Err(io::Error::from_raw_os_error(-res)) } else { Ok(res as usize) }
}

/// Reads at least this large go through the ring; smaller ones are plain preads on the caller's
/// thread (see `read_at`).
pub(super) const RING_MIN_BYTES: usize = 64 * 1024;

impl UringFile {
    /// A read through the ring (one submission, completed on the storage thread).
    fn read_via_ring(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let len = buf.len().min(MAX_OP_BYTES) as u32;
        self.shared.run_op(self.file.as_raw_fd(), Kind::Read { ptr: buf.as_mut_ptr(), len, pos })
    }
}

impl IoFile for UringFile {
    /// Small reads are plain preads on the caller's thread: the fetch path's reads are header
    /// reads of a few KiB served from the page cache, and a round trip through the storage thread
    /// cost more than the read (consume throughput ×0.82 against std when every read went
    /// through the ring). Bulk reads (recovery, the cleaner, index loads) go through the ring.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if super::nowait::active() {
            return super::nowait::read_at_fd(self.file.as_raw_fd(), buf, pos);
        }
        if buf.len() < RING_MIN_BYTES {
            return std::os::unix::fs::FileExt::read_at(&self.file, buf, pos);
        }
        self.read_via_ring(buf, pos)
    }

    /// Writes are plain pwrites on the caller's thread, whatever their size. Small ones for the
    /// same reason as small reads, only more so: an append is made under the partition's lock on a
    /// request handler thread (a small one on a tokio worker), and two round trips through the
    /// storage thread at 20k single-record produce requests a second took the broker from 0.7 ms
    /// to 130 ms p50 end-to-end latency. Bulk ones (1 MB produce requests, the cleaner's segments,
    /// index files) because the ring gains them nothing: the caller is a thread that may block,
    /// and the kernel (ext4 has no async buffered writes) hands each to an io-wq worker, so a
    /// write through the ring woke the storage thread, an io-wq worker, the storage thread again
    /// and the caller. Measured on 2026-12-06 (`bench-produce-ab.sh`, 6 rounds, 1M x 1 KiB,
    /// docs/benchmarks.md): pwrites here gave 1.01-1.07x the produce rate at 0.91-0.98 of the
    /// broker CPU per GB of writes through the ring.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.file, buf, pos)
    }

    /// One pwritev on the caller's thread, as `write_all_at`; a short write continues part by part.
    fn write_all_vectored_at(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        super::pwritev_all(self.file.as_raw_fd(), parts, pos, |buf, at| self.write_all_at(buf, at))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.shared.stats.fsync_requests.fetch_add(1, Ordering::Relaxed);
        result(self.shared.submit(self.file.as_raw_fd(), Kind::DataSync)?).map(|_| ()).map_err(super::sync_failure)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// IORING_OP_FALLOCATE with FALLOC_FL_KEEP_SIZE, or fallocate(2) on a kernel without it.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let fd = self.file.as_raw_fd();
        if !self.shared.ops.fallocate {
            return preallocate_fd(fd, offset, len);
        }
        let kind = Kind::Fallocate { pos: offset, len, mode: libc::FALLOC_FL_KEEP_SIZE };
        preallocation_result(self.shared.run_op(fd, kind).map(drop))
    }

    /// On the caller's thread, like the small writes: it only queues pages for writeback.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        start_writeback_fd(self.file.as_raw_fd(), offset, len)
    }

    /// On the caller's thread too: the kernel only walks the range's cached pages.
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        drop_cached_fd(self.file.as_raw_fd(), offset, len)
    }

    /// On the caller's thread, which is never an async worker (see `IoFile::will_need`): a
    /// fire-and-forget operation in the ring would have to keep the file open until it completed.
    fn will_need(&self, offset: u64, len: u64) -> io::Result<()> {
        will_need_fd(self.file.as_raw_fd(), offset, len)
    }

    fn is_cached(&self, pos: u64) -> bool {
        is_cached_fd(self.file.as_raw_fd(), pos)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

/// Mode of files `open` creates: rw-r--r-- (before the umask).
const CREATE_MODE: libc::mode_t = 0o644;

impl FileIo for UringIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        if !self.shared.ops.openat {
            use std::os::unix::fs::OpenOptionsExt;
            let mut o = std::fs::OpenOptions::new();
            o.read(true).write(true);
            if mode == OpenMode::CreateReadWrite {
                o.create(true).mode(CREATE_MODE);
            }
            return Ok(self.wrap(o.open(path)?));
        }
        // An existing file opens on the caller's thread, like a small read: the inode is cached
        // and the open does not wait for the disk, while a round trip through the storage
        // thread per file made loading thousands of partitions (four files each) take seconds.
        // Only a creation, which may wait for the journal, goes through the ring.
        match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && mode == OpenMode::CreateReadWrite => {}
            other => return Ok(self.wrap(other?)),
        }
        let fd = self.shared.open_at(path, libc::O_RDWR | libc::O_CLOEXEC | libc::O_CREAT, CREATE_MODE)?;
        Ok(self.wrap(File::from(fd)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if !self.shared.ops.renameat {
            return StdIo.rename(from, to);
        }
        let (from, to) = (c_path(from)?, c_path(to)?);
        self.shared.run_op(libc::AT_FDCWD, Kind::RenameAt { from: from.as_ptr(), to: to.as_ptr() }).map(drop)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if !self.shared.ops.unlinkat {
            return StdIo.remove_file(path);
        }
        let c = c_path(path)?;
        self.shared.run_op(libc::AT_FDCWD, Kind::UnlinkAt { path: c.as_ptr() }).map(drop)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdIo.create_dir_all(path)
    }
    /// Opens the directory and fsyncs it (a full fsync: a directory's entries are its metadata).
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir: OwnedFd = if self.shared.ops.openat {
            self.shared.open_at(path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?
        } else {
            File::open(path)?.into()
        };
        self.shared.run_op(dir.as_raw_fd(), Kind::Sync).map(drop).map_err(super::sync_failure)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        StdIo.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdIo.exists(path)
    }
    fn disk_space(&self, path: &Path) -> io::Result<(u64, u64)> {
        StdIo.disk_space(path)
    }
}

/// One entry in flight: who waits for it. An fsync may have several waiters (group commit).
#[derive(Debug)]
struct Pending {
    fd: RawFd,
    is_sync: bool,
    waiters: Vec<Arc<Slot>>,
    /// When its SQE went into the ring.
    pushed_at: std::time::Instant,
}

/// user_data of the poll on the wake-up eventfd (pending entries use their index).
const WAKE: u64 = u64::MAX;

/// The storage thread's state. Dropping it (also while unwinding) first waits for every entry
/// still in the kernel, so no caller's buffer is released while the kernel may touch it.
struct Ring {
    ring: IoUring,
    /// Dropped after the in-flight wait: the requests still queued are then discarded, which
    /// completes their callers with ECANCELED, and later sends fail at once.
    rx: Receiver<Request>,
    wake: Arc<Wake>,
    /// Whether a poll on the wake-up eventfd is in the ring.
    poll_armed: bool,
    /// Indexed by user_data; `None` is a free entry.
    pending: Vec<Option<Pending>>,
    free: Vec<usize>,
    in_flight: usize,
    /// Group commit: fdatasync callers of a file whose fsync was already submitted. They wait for
    /// it to finish, then share one new fsync (one group per file; few files sync at once).
    parked_syncs: Vec<(RawFd, Vec<Arc<Slot>>)>,
    /// Groups whose file's fsync finished: submitted first in the next round.
    ready_syncs: Vec<(RawFd, Vec<Arc<Slot>>)>,
}

impl Ring {
    fn reap(&mut self, stats: &UringStats) {
        let cq: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
        for (ud, res) in cq {
            if ud == WAKE {
                self.poll_armed = false;
                self.wake.reset();
                continue;
            }
            let idx = ud as usize;
            let Some(p) = self.pending.get_mut(idx).and_then(Option::take) else {
                tracing::error!(user_data = ud, "io_uring completion for no pending operation");
                continue;
            };
            self.free.push(idx);
            self.in_flight -= 1;
            crate::metrics::URING_COMPLETION_TIME.observe(p.pushed_at.elapsed());
            // Counted before the waiters wake, so a caller that sees its operation done also
            // sees it counted.
            stats.ops.fetch_add(p.waiters.len() as u64, Ordering::Relaxed);
            for w in p.waiters {
                w.complete(res);
            }
            if p.is_sync
                && let Some(i) = self.parked_syncs.iter().position(|(fd, _)| *fd == p.fd)
            {
                let group = self.parked_syncs.swap_remove(i);
                self.ready_syncs.push(group);
            }
        }
    }

    /// Pushes one SQE for `waiters`; gives them back when the ring has no room this round.
    fn push(&mut self, fd: RawFd, kind: Kind, waiters: Vec<Arc<Slot>>) -> Result<usize, Vec<Arc<Slot>>> {
        let Some(idx) = self.free.pop() else { return Err(waiters) };
        let f = types::Fd(fd);
        let sqe = match kind {
            Kind::Read { ptr, len, pos } => opcode::Read::new(f, ptr, len).offset(pos).build(),
            Kind::DataSync => opcode::Fsync::new(f).flags(types::FsyncFlags::DATASYNC).build(),
            Kind::Sync => opcode::Fsync::new(f).build(),
            Kind::Fallocate { pos, len, mode } => opcode::Fallocate::new(f, len).offset(pos).mode(mode).build(),
            Kind::OpenAt { path, flags, mode } => opcode::OpenAt::new(f, path).flags(flags).mode(mode).build(),
            Kind::RenameAt { from, to } => opcode::RenameAt::new(f, from, f, to).build(),
            Kind::UnlinkAt { path } => opcode::UnlinkAt::new(f, path).build(),
        }
        .user_data(idx as u64);
        // SAFETY: the buffers and paths stay valid until the completion is reaped (see `Request`).
        if unsafe { self.ring.submission().push(&sqe) }.is_err() {
            self.free.push(idx);
            return Err(waiters);
        }
        self.pending[idx] = Some(Pending { fd, is_sync: matches!(kind, Kind::DataSync), waiters, pushed_at: std::time::Instant::now() });
        self.in_flight += 1;
        Ok(idx)
    }

    /// Puts a poll on the wake-up eventfd in the ring, so a request sent while the thread waits
    /// for the kernel is seen at once rather than after the next completion.
    fn arm_wake(&mut self) {
        if self.poll_armed {
            return;
        }
        let sqe = opcode::PollAdd::new(types::Fd(self.wake.efd.as_raw_fd()), libc::POLLIN as u32).build().user_data(WAKE);
        // SAFETY: a poll references no memory.
        if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
            self.poll_armed = true;
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The wake-up poll references no memory, so only real operations are waited for.
        while self.in_flight > 0 {
            if let Err(e) = self.ring.submit_and_wait(1)
                && e.kind() != io::ErrorKind::Interrupted
            {
                // The kernel no longer answers; callers cannot be released safely.
                tracing::error!(error = %e, in_flight = self.in_flight, "io_uring lost track of operations in flight; aborting");
                std::process::abort();
            }
            let stats = UringStats::default();
            self.reap(&stats);
        }
        // Callers parked for a group fsync that will not run now.
        for (_, group) in self.parked_syncs.drain(..).chain(self.ready_syncs.drain(..)) {
            for w in group {
                w.complete(-libc::ECANCELED);
            }
        }
    }
}

/// The storage thread: drain, push, submit once, reap, wake the callers; until the channel
/// closes and nothing is in flight.
fn run(ring: IoUring, rx: Receiver<Request>, wake: Arc<Wake>, stats: &UringStats) {
    // One SQ entry stays free for the wake-up poll.
    let capacity = ring.params().sq_entries() as usize - 1;
    let mut r = Ring {
        ring,
        rx,
        wake,
        poll_armed: false,
        pending: (0..capacity).map(|_| None).collect(),
        free: (0..capacity).rev().collect(),
        in_flight: 0,
        parked_syncs: Vec::new(),
        ready_syncs: Vec::new(),
    };
    let mut batch: VecDeque<Request> = VecDeque::with_capacity(capacity);
    // Entries of this round's fsyncs: not yet started, so a request for the same file may join.
    let mut round_syncs: Vec<usize> = Vec::new();
    let mut open = true;
    let drain = |r: &mut Ring, batch: &mut VecDeque<Request>, open: &mut bool| {
        while *open && batch.len() < r.free.len() {
            match r.rx.try_recv() {
                Ok(req) => batch.push_back(req),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => *open = false,
            }
        }
    };
    loop {
        if r.in_flight == 0 && batch.is_empty() && r.ready_syncs.is_empty() {
            if !open {
                return;
            }
            // Idle: sleep until a request arrives (or every sender is gone).
            match r.rx.recv() {
                Ok(req) => batch.push_back(req),
                Err(_) => return,
            }
        }
        // This round ends in a wait for the kernel: ask senders to wake us from it, then drain
        // (after setting the flag, so a request sent before it is seen here, one sent after it
        // rings the eventfd).
        if open {
            r.arm_wake();
            r.wake.parked.store(true, Ordering::SeqCst);
        }
        drain(&mut r, &mut batch, &mut open);
        round_syncs.clear();
        for (fd, group) in std::mem::take(&mut r.ready_syncs) {
            match r.push(fd, Kind::DataSync, group) {
                Ok(idx) => {
                    round_syncs.push(idx);
                    stats.fsyncs_issued.fetch_add(1, Ordering::Relaxed);
                }
                Err(group) => r.ready_syncs.push((fd, group)),
            }
        }
        while let Some(mut req) = batch.pop_front() {
            if let Kind::DataSync = req.kind {
                let slot = req.slot.take();
                // Same round: the fsync has not started, so it covers this caller's writes too.
                if let Some(&i) = round_syncs.iter().find(|&&i| r.pending[i].as_ref().is_some_and(|p| p.fd == req.fd))
                    && let Some(p) = r.pending[i].as_mut()
                {
                    p.waiters.extend(slot);
                    stats.fsyncs_coalesced.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // An fsync of this file is running and may have started before this caller's
                // writes: wait for it, then share the next one.
                if r.pending.iter().flatten().any(|p| p.is_sync && p.fd == req.fd) {
                    match r.parked_syncs.iter_mut().find(|(fd, _)| *fd == req.fd) {
                        Some((_, group)) => {
                            group.extend(slot);
                            stats.fsyncs_coalesced.fetch_add(1, Ordering::Relaxed);
                        }
                        None => r.parked_syncs.push((req.fd, slot.into_iter().collect())),
                    }
                    continue;
                }
                match r.push(req.fd, Kind::DataSync, slot.into_iter().collect()) {
                    Ok(idx) => {
                        round_syncs.push(idx);
                        stats.fsyncs_issued.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(waiters) => {
                        req.slot = waiters.into_iter().next();
                        batch.push_front(req);
                        break;
                    }
                }
                continue;
            }
            let waiters = req.slot.take().into_iter().collect();
            if let Err(waiters) = r.push(req.fd, req.kind, waiters) {
                req.slot = waiters.into_iter().next();
                batch.push_front(req);
                break;
            }
        }
        stats.rounds.fetch_add(1, Ordering::Relaxed);
        stats.in_flight.store(r.in_flight as u64, Ordering::Relaxed);
        match r.ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // The completion queue is full: reaping below makes room.
            }
            Err(e) => {
                // Cannot happen with a healthy ring; fail what is queued rather than spin.
                tracing::error!(error = %e, "io_uring submit failed");
                // Dropping a queued request completes its caller (ECANCELED).
                batch.clear();
            }
        }
        r.wake.parked.store(false, Ordering::SeqCst);
        r.reap(stats);
        stats.in_flight.store(r.in_flight as u64, Ordering::Relaxed);
    }
}

/// How callers wake the storage thread while it waits for the kernel: an eventfd the ring polls,
/// written only when the thread said it is about to sleep (so a busy ring costs no extra syscall).
#[derive(Debug)]
struct Wake {
    efd: OwnedFd,
    parked: AtomicBool,
}

impl Wake {
    fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a valid descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
        Ok(Self { efd: unsafe { OwnedFd::from_raw_fd(fd) }, parked: AtomicBool::new(false) })
    }
    fn notify(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to the owned eventfd. A failure (counter
            // full) still leaves the eventfd readable, which is all the wake-up needs.
            unsafe { libc::write(self.efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
    fn reset(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from the owned non-blocking eventfd.
        unsafe { libc::read(self.efd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn backend() -> UringIo {
        UringIo::new().expect("io_uring is available on the test machine")
    }

    #[test]
    fn the_probe_accepts_this_kernel() {
        // The test machine's kernel (6.x) has every optional opcode, so nothing falls back.
        assert_eq!(probe().expect("probe"), RingOps::ALL);
        assert_eq!(backend().ops(), RingOps::ALL);
        assert_eq!(RingOps::NONE.missing(), ["OPENAT", "RENAMEAT", "UNLINKAT", "FALLOCATE"]);
    }

    /// Requests the ring completed so far.
    fn ops(io: &UringIo) -> u64 {
        io.stats().ops.load(Ordering::Relaxed)
    }

    fn errno(r: io::Result<impl std::fmt::Debug>) -> (io::ErrorKind, Option<i32>) {
        let e = r.expect_err("the call fails");
        (e.kind(), e.raw_os_error())
    }

    /// open, rename, unlink and sync_dir with the results and errnos of their std calls, each
    /// through the ring (counted before the caller wakes, so the counts are exact here) or, for
    /// `RingOps::NONE`, through std only (a directory fsync still uses the ring's fsync).
    fn path_operations_round_trip(io: &UringIo) {
        let via_ring = |n: u64| if io.ops().openat { n } else { 0 };
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));

        let before = ops(io);
        assert_eq!(errno(io.open(&a, OpenMode::ReadWrite)), (io::ErrorKind::NotFound, Some(libc::ENOENT)), "no file is created");
        assert!(!a.exists());
        assert_eq!(ops(io) - before, 0, "opening (not creating) stays on the caller's thread");

        let before = ops(io);
        let f = io.open(&a, OpenMode::CreateReadWrite).expect("create");
        assert_eq!(ops(io) - before, via_ring(1));
        f.write_all_at(b"segment", 0).expect("write");
        let fd = f.raw_fd().expect("a real descriptor");
        // SAFETY: fcntl and fstat on a descriptor `f` keeps open, into a zeroed stat.
        let (fd_flags, mut st) = (unsafe { libc::fcntl(fd, libc::F_GETFD) }, unsafe { std::mem::zeroed::<libc::stat>() });
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        assert!(fd_flags & libc::FD_CLOEXEC != 0, "opened with O_CLOEXEC");
        assert_eq!(st.st_mode & 0o7733, 0o600, "created rw-r--r-- (less the umask)");
        // Reopening keeps the contents (no O_TRUNC) in both modes, on the caller's thread.
        for mode in [OpenMode::ReadWrite, OpenMode::CreateReadWrite] {
            let before = ops(io);
            let f = io.open(&a, mode).expect("reopen");
            assert_eq!(ops(io) - before, 0, "an existing file opens without the ring");
            assert_eq!(f.len().expect("len"), 7);
            // SAFETY: fcntl on a descriptor `f` keeps open.
            assert!(unsafe { libc::fcntl(f.raw_fd().expect("fd"), libc::F_GETFD) } & libc::FD_CLOEXEC != 0, "O_CLOEXEC");
        }

        let before = ops(io);
        io.rename(&a, &b).expect("rename");
        assert_eq!(ops(io) - before, if io.ops().renameat { 1 } else { 0 });
        assert!(!a.exists());
        assert_eq!(std::fs::read(&b).expect("read"), b"segment");
        assert_eq!(errno(io.rename(&a, &b)), (io::ErrorKind::NotFound, Some(libc::ENOENT)));
        assert_eq!(errno(io.rename(&b, &dir.path().join("no/such/dir"))), (io::ErrorKind::NotFound, Some(libc::ENOENT)));

        let before = ops(io);
        io.remove_file(&b).expect("unlink");
        assert_eq!(ops(io) - before, if io.ops().unlinkat { 1 } else { 0 });
        assert!(!b.exists());
        assert_eq!(errno(io.remove_file(&b)), (io::ErrorKind::NotFound, Some(libc::ENOENT)));
        assert_eq!(errno(io.remove_file(dir.path())).1, Some(libc::EISDIR), "unlink never removes a directory");
        // The unlinked file stays usable through its open handle, as with std.
        f.write_all_at(b"!", 7).expect("write after unlink");

        let before = ops(io);
        io.sync_dir(dir.path()).expect("sync dir");
        assert_eq!(ops(io) - before, via_ring(1) + 1, "the open (when on the ring), then a full fsync");
        assert_eq!(errno(io.sync_dir(&dir.path().join("gone"))), (io::ErrorKind::NotFound, Some(libc::ENOENT)));
        std::fs::write(&a, b"").expect("write");
        if io.ops().openat {
            assert_eq!(errno(io.sync_dir(&a)).1, Some(libc::ENOTDIR), "O_DIRECTORY refuses a file");
        }
        assert_eq!(errno(io.open(Path::new("/nul\0inside"), OpenMode::ReadWrite)).0, io::ErrorKind::InvalidInput);
    }

    #[test]
    fn open_rename_unlink_and_sync_dir_go_through_the_ring_with_std_errnos() {
        path_operations_round_trip(&backend());
    }

    #[test]
    fn without_the_optional_opcodes_the_std_calls_serve_them() {
        let io = UringIo::with_ops(RingOps::NONE).expect("io_uring");
        assert_eq!(io.ops(), RingOps::NONE);
        path_operations_round_trip(&io);
        // Preallocation falls back too, with the same effect.
        let dir = tempfile::tempdir().expect("tempdir");
        let f = io.open(&dir.path().join("p"), OpenMode::CreateReadWrite).expect("create");
        let before = ops(&io);
        f.preallocate(0, 1 << 20).expect("preallocate");
        assert_eq!(ops(&io), before, "fallocate on the caller's thread");
        assert!(super::super::allocated_bytes(f.as_ref()) >= 1 << 20);
        assert_eq!(f.len().expect("len"), 0);
    }

    #[test]
    fn preallocation_goes_through_the_ring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let f = io.open(&dir.path().join("p"), OpenMode::CreateReadWrite).expect("create");
        let before = ops(&io);
        f.preallocate(4096, 1 << 20).expect("preallocate");
        assert_eq!(ops(&io) - before, 1);
        assert!(super::super::allocated_bytes(f.as_ref()) >= 1 << 20);
        assert_eq!(f.len().expect("len"), 0, "KEEP_SIZE");
        // Errors come back as the kernel's errno: a descriptor opened read-only cannot fallocate.
        let ro = io.wrap(File::open(dir.path().join("p")).expect("open read-only"));
        assert_eq!(errno(ro.preallocate(0, 4096)).1, Some(libc::EBADF));
    }

    #[test]
    fn bulk_reads_go_through_the_ring_and_small_ones_and_writes_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let f = io.open(&dir.path().join("big"), OpenMode::CreateReadWrite).expect("create");
        let data: Vec<u8> = (0..RING_MIN_BYTES * 3).map(|i| (i % 251) as u8).collect();
        f.write_all_at(&data, 0).expect("write");
        let stats = io.stats();
        let before = stats.ops.load(Ordering::Relaxed);
        let mut big = vec![0u8; data.len()];
        assert_eq!(f.read_full_at(&mut big, 0).expect("bulk read"), data.len());
        assert_eq!(big, data);
        let mut small = [0u8; 100];
        assert_eq!(f.read_at(&mut small, 7).expect("small read"), 100);
        assert_eq!(&small[..], &data[7..107]);
        let bulk = stats.ops.load(Ordering::Relaxed);
        assert!(bulk > before, "the bulk read used the ring");
        assert_eq!(f.read_at(&mut small, 7).expect("small read"), 100);
        assert_eq!(stats.ops.load(Ordering::Relaxed), bulk, "small reads are preads");
        // Writes of any size are pwrites on the caller's thread.
        f.write_all_at(b"small", 3).expect("small write");
        f.write_all_at(&data, data.len() as u64).expect("bulk write");
        f.write_all_vectored_at(&[&data[..RING_MIN_BYTES], &data[RING_MIN_BYTES..]], 2 * data.len() as u64).expect("bulk vectored write");
        assert_eq!(stats.ops.load(Ordering::Relaxed), bulk, "writes are pwrites");
        let mut back = [0u8; 5];
        assert_eq!(f.read_full_at(&mut back, 3).expect("read"), 5);
        assert_eq!(&back, b"small");
        assert_eq!(f.len().expect("len"), 3 * data.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("big")).expect("read")[2 * data.len()..], data[..]);
    }

    #[test]
    fn positional_io_round_trips_and_keeps_the_real_fd() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let p = dir.path().join("a");
        assert!(io.open(&p, OpenMode::ReadWrite).is_err(), "missing file must not be created");
        let f = io.open(&p, OpenMode::CreateReadWrite).expect("create");
        f.write_all_at(b"hello", 0).expect("write");
        f.write_all_at(b"world", 5).expect("write");
        f.sync_data().expect("sync");
        let mut buf = [0u8; 16];
        assert_eq!(f.read_full_at(&mut buf, 3).expect("read"), 7);
        assert_eq!(&buf[..7], b"loworld");
        assert_eq!(f.read_at(&mut buf, 100).expect("read past the end"), 0);
        assert_eq!(std::fs::read(&p).expect("std read"), b"helloworld");
        let fd = f.raw_fd().expect("a real descriptor for sendfile");
        // SAFETY: fstat on a descriptor the file keeps open, into a zeroed stat.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        assert_eq!(st.st_size, 10);
    }

    #[test]
    fn concurrent_writers_from_many_threads_all_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let f = io.open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("open");
        const THREADS: usize = 16;
        const WRITES: usize = 8;
        const LEN: usize = RING_MIN_BYTES; // bulk writes, while bulk reads go through the ring
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let f = f.clone();
                s.spawn(move || {
                    for i in 0..WRITES {
                        let n = t * WRITES + i;
                        let buf = vec![(n % 251) as u8; LEN];
                        f.write_all_at(&buf, (n * LEN) as u64).expect("write");
                    }
                });
            }
        });
        let data = std::fs::read(dir.path().join("f")).expect("read");
        assert_eq!(data.len(), THREADS * WRITES * LEN);
        for (n, chunk) in data.chunks(LEN).enumerate() {
            assert!(chunk.iter().all(|&b| b == (n % 251) as u8), "chunk {n} is wrong");
        }
        let mut back = vec![0u8; LEN];
        assert_eq!(f.read_full_at(&mut back, (77 * LEN) as u64).expect("read"), LEN);
        assert!(back.iter().all(|&b| b == 77));
    }

    #[test]
    fn concurrent_fsyncs_of_one_file_are_coalesced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let f = io.open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("open");
        std::thread::scope(|s| {
            for t in 0..16u64 {
                let f = f.clone();
                s.spawn(move || {
                    for i in 0..50u64 {
                        f.write_all_at(&[t as u8; 64], (t * 50 + i) * 64).expect("write");
                        f.sync_data().expect("sync");
                    }
                });
            }
        });
        let c = io.stats().snapshot();
        assert_eq!(c.fsync_requests, 16 * 50);
        assert_eq!(c.fsyncs_issued + c.fsyncs_coalesced, c.fsync_requests, "{c:?}");
        assert!(c.fsyncs_coalesced > 0, "no fsync was shared: {c:?}");
    }

    #[test]
    fn kernel_errors_come_back_as_io_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let p = dir.path().join("ro");
        std::fs::write(&p, b"data").expect("write");
        let ro = io.wrap(File::open(&p).expect("open read-only"));
        let e = ro.write_all_at(b"x", 0).expect_err("writing a read-only file fails");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        let mut buf = [0u8; 4];
        assert_eq!(ro.read_full_at(&mut buf, 0).expect("reads still work"), 4);
        // A directory opened as a file: reads fail with EISDIR.
        let d = io.wrap(File::open(dir.path()).expect("open dir"));
        let e = d.read_at(&mut buf, 0).expect_err("reading a directory fails");
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "{e}");
        // The ring is still healthy afterwards.
        let f = io.open(&dir.path().join("ok"), OpenMode::CreateReadWrite).expect("open");
        f.write_all_at(b"fine", 0).expect("write");
    }

    #[test]
    fn the_thread_stops_when_the_backend_and_its_files_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = backend();
        let f = io.open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("open");
        let shared = Arc::downgrade(&io.shared);
        drop(io);
        // An open file keeps the ring alive.
        f.write_all_at(b"still works", 0).expect("write after the backend handle is gone");
        assert!(shared.upgrade().is_some());
        let started = Instant::now();
        drop(f);
        // Dropping the last handle joined the thread (Shared::drop), so nothing is left.
        assert!(shared.upgrade().is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
