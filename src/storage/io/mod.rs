//! The FileIo seam: every file and directory operation storage performs goes through it; it holds no Kafka knowledge.
//!
//! Calls are synchronous and may block on the disk; callers run them on a thread that may block
//! (spawn_blocking or a dedicated storage thread). Two backends implement it: `uring` (io_uring on
//! its own thread, batched submissions, group commit) and `std` (portable pread/pwrite);
//! [`select_backend`] picks one from `io.backend`, and [`Backend::with_open_files_budget`] puts
//! its files under `fjord.log.open.files.max` (`budget`: closed least recently used, reopened on use).

use ::std::io;
use ::std::os::fd::RawFd;
use ::std::path::{Path, PathBuf};
use ::std::sync::Arc;

use bytes::Bytes;

pub mod budget;
pub mod faulty;
pub mod nowait;
pub mod std;
pub mod uring;

pub use self::budget::BudgetIo;
pub use self::faulty::{FaultConfig, FaultOp, FaultyIo};
pub use self::std::StdIo;
pub use self::uring::UringIo;

/// Most parts one vectored write takes; an append has two (its rewritten header, its records).
const VECTORED_PARTS_MAX: usize = 4;

/// The largest append an async worker makes itself (inside `nowait`, a page-cache write of a few
/// KiB); larger ones run on a request handler thread. Every backend writes with pwrite on the
/// caller's thread.
pub const NO_WAIT_WRITE_MAX_BYTES: usize = 64 * 1024;

/// Writes what a vectored write of `parts` at `pos` left after its first `done` bytes, part by
/// part with `write` (a short write is rare: a signal, a disk filling midway).
fn write_rest(parts: &[&[u8]], pos: u64, mut done: usize, mut write: impl FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<()> {
    let mut at = pos;
    for part in parts {
        let skip = done.min(part.len());
        done -= skip;
        if skip < part.len() {
            write(&part[skip..], at + skip as u64)?;
        }
        at += part.len() as u64;
    }
    Ok(())
}

/// pwritev of `parts` at `pos` on `fd`, then whatever a short write left, with `write`.
pub(crate) fn pwritev_all(fd: RawFd, parts: &[&[u8]], pos: u64, write: impl FnMut(&[u8], u64) -> io::Result<()>) -> io::Result<()> {
    if parts.len() > VECTORED_PARTS_MAX || parts.len() < 2 {
        return write_rest(parts, pos, 0, write);
    }
    let mut iov = [libc::iovec { iov_base: ::std::ptr::null_mut(), iov_len: 0 }; VECTORED_PARTS_MAX];
    for (v, part) in iov.iter_mut().zip(parts) {
        *v = libc::iovec { iov_base: part.as_ptr() as *mut libc::c_void, iov_len: part.len() };
    }
    let offset = libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let written = loop {
        // SAFETY: the iovecs point into `parts`, which outlive the call; the kernel only reads them.
        let n = unsafe { libc::pwritev(fd, iov.as_ptr(), parts.len() as libc::c_int, offset) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    write_rest(parts, pos, written, write)
}

/// One open file. Positional reads and writes only, so a handle can be shared without a cursor.
pub trait IoFile: Send + Sync + ::std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Writes `parts` back to back from `pos`: one system call (pwritev) where the backend can,
    /// so an append whose header was rewritten is still one write. This default writes the parts
    /// one after the other (the fault-injecting backend tears each on its own).
    fn write_all_vectored_at(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        write_rest(parts, pos, 0, |buf, at| self.write_all_at(buf, at))
    }
    /// fdatasync: the data (and the size) are durable when this returns.
    fn sync_data(&self) -> io::Result<()>;
    /// Whether the file is open now, so a write needs no open(2) first. Default: always (only
    /// the open-files budget closes files).
    fn is_open(&self) -> bool {
        true
    }
    /// Truncates or extends the file. Also gives back blocks reserved beyond the end by
    /// [`IoFile::preallocate`] (ftruncate frees them even when the length does not change).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves disk blocks for `[offset, offset + len)` without changing the file's length
    /// (fallocate with FALLOC_FL_KEEP_SIZE): `len()`, reads and sendfile ranges are unaffected,
    /// later writes there find their blocks allocated. A file system without fallocate makes this
    /// a no-op (logged once); other failures (ENOSPC) are returned.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Starts writing `[offset, offset + len)` back to the disk without waiting for it and
    /// without promising durability (sync_file_range with SYNC_FILE_RANGE_WRITE): a hint that
    /// keeps the file's dirty pages few, so a later fsync has little left to write. Default:
    /// nothing (a wrapper that is not a kernel file).
    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Drops the clean cached pages of `[offset, offset + len)` (dirty ones and those under
    /// writeback stay): a hint that frees memory, never data. Default: nothing.
    fn drop_cached(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Starts reading `[offset, offset + len)` into the page cache without waiting for it
    /// (fadvise WILLNEED): a hint that lets the disk work ahead of a reader. It may block while
    /// the reads are queued, so callers make it off the async workers. Default: nothing.
    fn will_need(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Whether the byte at `pos` is in the page cache, found without waiting for the disk
    /// (a one-byte preadv2 with RWF_NOWAIT): lets a reader skip a `will_need` hint for what is
    /// cached already. Default: false (unknown).
    fn is_cached(&self, _pos: u64) -> bool {
        false
    }
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The kernel file descriptor behind this file, for sendfile(2) straight to a socket. `None`
    /// when reads must go through `read_at` (a wrapper that wants to see or alter every read);
    /// callers then read the bytes into memory instead.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// The open file behind this handle, kept open (its descriptor valid) for as long as the
    /// returned Arc lives: what a caller that uses `raw_fd` across calls (sendfile while the
    /// socket drains) must hold. `None`: this handle is the open file itself. A handle whose file
    /// may be closed between calls (the open-files budget) returns it, reopened if need be.
    fn pinned(&self) -> io::Result<Option<Arc<dyn IoFile>>> {
        Ok(None)
    }

    /// Fills `buf` from `pos`, or returns how many bytes were available if the file ends first.
    fn read_full_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.read_at(&mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// Whole batches located in a segment file but not read: the file (kept open by the Arc, so a
/// segment deleted by retention or replaced by compaction stays readable until the range has been
/// sent), the position of the first batch and the length. A fetch sends it with sendfile; callers
/// that need the bytes materialize it.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<dyn IoFile>,
    pub position: u64,
    pub len: usize,
}

impl FileRange {
    /// Reads the range into memory. A file shorter than the range (truncated since it was located)
    /// is an error, never a short result: the range promised whole batches.
    pub fn read_bytes(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        self.read_into(&mut buf, 0)?;
        Ok(Bytes::from(buf))
    }

    /// Fills `buf` with the range's bytes starting `skip` bytes into it; UnexpectedEof if the file
    /// ends first. Lets a writer without a file descriptor stream the range through a bounded buffer.
    pub fn read_into(&self, buf: &mut [u8], skip: usize) -> io::Result<()> {
        assert!(skip + buf.len() <= self.len, "read past the end of the range");
        let got = self.file.read_full_at(buf, self.position + skip as u64)?;
        if got < buf.len() {
            return Err(self.truncated(skip + got));
        }
        Ok(())
    }

    /// The error for a file that ended `at` bytes into the range.
    pub fn truncated(&self, at: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("segment file ends {at} bytes into a {}-byte range at position {}", self.len, self.position),
        )
    }
}

/// Whether an I/O error says the file system is out of space (ENOSPC): the failures a full disk
/// causes, which storage survives (undone appends, recovery without index rebuilds) rather than
/// treats as a broken log dir.
pub fn is_out_of_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
}

/// What a backend returns for a failed fsync (`sync_data`, `sync_dir`). ENOSPC from an fsync is
/// not a full disk that storage can undo: written pages could not be made durable and their
/// state is unknown. So it is reported with another kind, and nothing that survives a clean
/// ENOSPC (see [`is_out_of_space`]) mistakes it for one; every other error passes unchanged.
pub fn sync_failure(e: io::Error) -> io::Error {
    if is_out_of_space(&e) { io::Error::other(format!("fsync failed: {e}")) } else { e }
}

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading and writing.
    ReadWrite,
    /// Create if missing (keeping existing contents), read and write.
    CreateReadWrite,
}

/// A directory entry as storage needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The file system as storage sees it. Object safe: shared as `Arc<dyn FileIo>`.
pub trait FileIo: Send + Sync + ::std::fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory, making creates, renames and removes in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// (total, available to this process) bytes of the file system holding `path`.
    fn disk_space(&self, path: &Path) -> io::Result<(u64, u64)>;
}

/// The portable backend, shared.
pub fn std_io() -> Arc<dyn FileIo> {
    Arc::new(StdIo)
}

/// A backend chosen from `io.backend`, with its name for the startup log line.
#[derive(Debug, Clone)]
pub struct Backend {
    pub io: Arc<dyn FileIo>,
    /// "uring" or "std".
    pub name: &'static str,
    /// The io_uring counters when that backend runs.
    pub uring_stats: Option<Arc<uring::UringStats>>,
    /// The open-files budget over `io`, when one is set.
    pub budget: Option<BudgetIo>,
}

impl Backend {
    /// Puts every file this backend opens under an open-files budget of `max_open` files
    /// (`fjord.log.open.files.max`; 0 = [`budget::default_open_files_max`]).
    pub fn with_open_files_budget(self, max_open: usize) -> Backend {
        let max_open = if max_open == 0 { budget::default_open_files_max() } else { max_open };
        let b = BudgetIo::new(self.io, max_open);
        Backend { io: Arc::new(b.clone()), name: self.name, uring_stats: self.uring_stats, budget: Some(b) }
    }
}

/// `io.backend`: `uring` must get io_uring (an error otherwise); `std` is the portable backend;
/// `auto` probes io_uring and, if the kernel refuses it (old kernel, seccomp in a container,
/// `kernel.io_uring_disabled`), warns once and uses `std`.
pub fn select_backend(choice: &str) -> io::Result<Backend> {
    let std_backend = || Backend { io: Arc::new(StdIo), name: "std", uring_stats: None, budget: None };
    let uring = || -> io::Result<Backend> {
        uring::probe()?;
        let u = UringIo::new()?;
        Ok(Backend { uring_stats: Some(u.stats()), io: Arc::new(u), name: "uring", budget: None })
    };
    match choice {
        "std" => Ok(std_backend()),
        "uring" => uring().map_err(|e| io::Error::new(e.kind(), format!("io.backend=uring but io_uring is unavailable: {e}"))),
        "auto" => Ok(uring().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "io_uring unavailable; using the portable std backend");
            std_backend()
        })),
        other => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("io.backend={other}: expected auto, uring or std"))),
    }
}

/// One io_uring backend shared by every test in the process: its thread lives as long as the
/// test binary, instead of one ring per test.
#[cfg(test)]
pub fn uring_for_tests() -> Arc<dyn FileIo> {
    static RING: ::std::sync::OnceLock<UringIo> = ::std::sync::OnceLock::new();
    Arc::new(RING.get_or_init(|| UringIo::new().expect("io_uring on the test machine")).clone())
}

/// Runs a test module's body once per backend, so both pass the same storage suite: expands to
/// `mod std_backend` and `mod uring_backend`, each with its own `fn io() -> Arc<dyn FileIo>`.
#[cfg(test)]
macro_rules! on_each_backend {
    ($($body:tt)*) => {
        mod std_backend {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            fn io() -> ::std::sync::Arc<dyn $crate::storage::io::FileIo> {
                ::std::sync::Arc::new($crate::storage::io::StdIo)
            }
            $($body)*
        }
        mod uring_backend {
            #[allow(unused_imports)]
            use super::*;
            #[allow(dead_code)]
            fn io() -> ::std::sync::Arc<dyn $crate::storage::io::FileIo> {
                $crate::storage::io::uring_for_tests()
            }
            $($body)*
        }
    };
}
#[cfg(test)]
pub(crate) use on_each_backend;

/// Bytes of disk behind `file` (fstat's st_blocks, 512-byte units), preallocated ones included.
#[cfg(test)]
pub(crate) fn allocated_bytes(file: &dyn IoFile) -> u64 {
    let fd = file.raw_fd().expect("a backend with a real descriptor");
    let mut st: libc::stat = unsafe { ::std::mem::zeroed() };
    // SAFETY: fstat on a descriptor the file keeps open, into a zeroed stat.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0, "fstat: {}", io::Error::last_os_error());
    st.st_blocks as u64 * 512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_a_short_vectored_write_continues_where_it_stopped() {
        let mut out = Vec::new();
        write_rest(&[b"abc", b"defg", b"h"], 10, 5, |buf, at| {
            out.push((buf.to_vec(), at));
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec![(b"fg".to_vec(), 15), (b"h".to_vec(), 17)]);
    }

    on_each_backend! {
    #[test]
    fn a_vectored_write_lands_its_parts_back_to_back_small_and_through_the_ring() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = io().open(&dir.path().join("v"), OpenMode::CreateReadWrite).expect("open");
        file.write_all_at(b"0123", 0).unwrap();
        file.write_all_vectored_at(&[b"ab", b"cde"], 4).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all_vectored_at(&[&big[..61], &big[61..]], 9).unwrap();
        let mut back = vec![0u8; 9 + big.len()];
        assert_eq!(file.read_full_at(&mut back, 0).unwrap(), back.len());
        assert_eq!(&back[..9], b"0123abcde");
        assert!(back[9..] == big[..], "the large write's parts in order");
    }

    #[test]
    fn start_writeback_queues_written_pages_and_changes_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = io().open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("create");
        f.write_all_at(&[3u8; 1 << 20], 0).expect("write");
        f.start_writeback(0, 1 << 20).expect("writeback of written pages");
        f.start_writeback(1 << 20, 1 << 20).expect("past the end is nothing to do");
        assert_eq!(f.len().expect("len"), 1 << 20);
        let mut buf = vec![0u8; 1 << 20];
        assert_eq!(f.read_full_at(&mut buf, 0).expect("read"), 1 << 20);
        assert!(buf.iter().all(|b| *b == 3));
        assert!(f.start_writeback(u64::MAX, 1).is_err(), "an offset the kernel cannot take");
    }

    #[test]
    fn drop_cached_frees_pages_and_changes_no_data_dirty_or_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = io().open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("create");
        f.write_all_at(&[5u8; 1 << 20], 0).expect("write");
        f.drop_cached(0, 1 << 20).expect("drop while dirty: the pages stay");
        f.sync_data().expect("sync");
        f.drop_cached(0, 1 << 20).expect("drop once clean");
        f.drop_cached(1 << 20, 1 << 20).expect("past the end is nothing to do");
        let mut buf = vec![0u8; 1 << 20];
        assert_eq!(f.read_full_at(&mut buf, 0).expect("read"), 1 << 20);
        assert!(buf.iter().all(|b| *b == 5), "read back from the disk");
        assert!(f.drop_cached(u64::MAX, 1).is_err(), "an offset the kernel cannot take");
    }

    #[test]
    fn will_need_reads_dropped_pages_back_into_the_cache_and_is_cached_tells() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = io().open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("create");
        let len: u64 = 2 << 20;
        f.write_all_at(&vec![9u8; len as usize], 0).expect("write");
        assert!(f.is_cached(len - 1), "just written");
        assert!(!f.is_cached(len), "past the end of the file");
        f.sync_data().expect("sync");
        f.drop_cached(0, len).expect("drop");
        // A file system that keeps every page in memory (tmpfs) drops nothing; elsewhere the
        // pages are gone now and come back only through the hint (or a read).
        if !f.is_cached(len - 1) {
            f.will_need(0, len).expect("hint");
            let deadline = ::std::time::Instant::now() + ::std::time::Duration::from_secs(10);
            while !f.is_cached(len - 1) {
                assert!(::std::time::Instant::now() < deadline, "the hinted pages never arrived");
                ::std::thread::sleep(::std::time::Duration::from_millis(5));
            }
        }
        f.will_need(len, len).expect("past the end is nothing to do");
        let mut buf = vec![0u8; len as usize];
        assert_eq!(f.read_full_at(&mut buf, 0).expect("read"), len as usize);
        assert!(buf.iter().all(|b| *b == 9), "a hint changes no data");
        assert!(f.will_need(u64::MAX, 1).is_err(), "a range the kernel cannot take");
    }

    #[test]
    fn preallocate_reserves_blocks_past_the_end_without_changing_the_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = io().open(&dir.path().join("f"), OpenMode::CreateReadWrite).expect("create");
        f.write_all_at(&[7u8; 100], 0).expect("write");
        let before = allocated_bytes(f.as_ref());
        assert!(before <= 4096, "{before}");
        f.preallocate(100, 1 << 20).expect("preallocate");
        assert_eq!(f.len().expect("len"), 100, "KEEP_SIZE: the length is the data's");
        assert!(allocated_bytes(f.as_ref()) >= 1 << 20, "{} bytes allocated", allocated_bytes(f.as_ref()));
        let mut buf = [0u8; 64];
        assert_eq!(f.read_at(&mut buf, 100).expect("read at the end"), 0, "still the end of file");
        f.preallocate(0, 0).expect("an empty range is nothing to do");
        // Writes into the reserve extend the length as usual; a truncation to the length gives
        // back what is left of the reserve.
        f.write_all_at(&[8u8; 5000], 100).expect("write into the reserve");
        assert_eq!(f.len().expect("len"), 5100);
        f.set_len(5100).expect("truncate to the length");
        assert_eq!(f.len().expect("len"), 5100);
        assert!(allocated_bytes(f.as_ref()) <= 8192, "{} bytes allocated after the release", allocated_bytes(f.as_ref()));
        let mut back = vec![0u8; 5100];
        assert_eq!(f.read_full_at(&mut back, 0).expect("read"), 5100);
        assert!(back[..100].iter().all(|&b| b == 7) && back[100..].iter().all(|&b| b == 8));
    }
    }

    #[test]
    fn backend_selection_follows_io_backend() {
        assert_eq!(select_backend("std").expect("std").name, "std");
        assert_eq!(select_backend("uring").expect("uring here").name, "uring");
        assert_eq!(select_backend("auto").expect("auto").name, "uring", "this kernel has io_uring");
        assert!(select_backend("aio").is_err());
    }
}
