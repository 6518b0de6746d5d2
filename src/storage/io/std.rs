//! Portable FileIo backend on std::fs with pread/pwrite; no buffering and no policy of its own.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::{DirEntry, FileIo, IoFile, OpenMode};

/// std::fs backend. Stateless, so it is a unit struct.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdIo;

#[derive(Debug)]
struct StdFile(File);

impl IoFile for StdFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if super::nowait::active() {
            return super::nowait::read_at_fd(self.0.as_raw_fd(), buf, pos);
        }
        self.0.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }
    fn write_all_vectored_at(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        super::pwritev_all(self.0.as_raw_fd(), parts, pos, |buf, at| self.0.write_all_at(buf, at))
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data().map_err(super::sync_failure)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        preallocate_fd(self.0.as_raw_fd(), offset, len)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        start_writeback_fd(self.0.as_raw_fd(), offset, len)
    }
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        drop_cached_fd(self.0.as_raw_fd(), offset, len)
    }
    fn will_need(&self, offset: u64, len: u64) -> io::Result<()> {
        will_need_fd(self.0.as_raw_fd(), offset, len)
    }
    fn is_cached(&self, pos: u64) -> bool {
        is_cached_fd(self.0.as_raw_fd(), pos)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.0.as_raw_fd())
    }
}

/// sync_file_range(SYNC_FILE_RANGE_WRITE) of `[offset, offset + len)` on `fd`: what every
/// backend's `start_writeback` means. A plain call on the caller's thread in both backends: it
/// only queues the pages for writeback, and small operations measured faster there than
/// through the ring's thread.
pub(super) fn start_writeback_fd(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: a plain syscall on a descriptor this file owns; no memory is passed.
    if unsafe { libc::sync_file_range(fd, offset, len, libc::SYNC_FILE_RANGE_WRITE) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// posix_fadvise(POSIX_FADV_DONTNEED) of `[offset, offset + len)` on `fd`: what every backend's
/// `drop_cached` means, on the caller's thread like `start_writeback`. The kernel drops the
/// clean pages of the range and leaves dirty ones and those under writeback.
pub(super) fn drop_cached_fd(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: a plain syscall on a descriptor this file owns; no memory is passed.
    match unsafe { libc::posix_fadvise(fd, offset, len, libc::POSIX_FADV_DONTNEED) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Bytes asked of one fadvise WILLNEED. The kernel reads at most the larger of the device's
/// read-ahead size and its largest request per call (128 KiB and 512 KiB are common), so a
/// window is asked for in pieces this big.
const WILL_NEED_CHUNK_BYTES: u64 = 512 * 1024;

/// posix_fadvise(POSIX_FADV_WILLNEED) of `[offset, offset + len)` on `fd`, in pieces of
/// [`WILL_NEED_CHUNK_BYTES`]: what every backend's `will_need` means. The kernel queues the reads
/// of the pages not cached and returns; it waits only while the device's queue is full.
pub(super) fn will_need_fd(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    let end = offset.checked_add(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut at = offset;
    while at < end {
        let n = (end - at).min(WILL_NEED_CHUNK_BYTES);
        let (Ok(o), Ok(l)) = (i64::try_from(at), i64::try_from(n)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: a plain syscall on a descriptor this file owns; no memory is passed.
        match unsafe { libc::posix_fadvise(fd, o, l, libc::POSIX_FADV_WILLNEED) } {
            0 => {}
            e => return Err(io::Error::from_raw_os_error(e)),
        }
        at += n;
    }
    Ok(())
}

/// A one-byte preadv2(RWF_NOWAIT) at `pos`: true when the kernel served it from the page cache.
/// EAGAIN (not cached), an error, or a kernel without the flag all say false.
pub(super) fn is_cached_fd(fd: RawFd, pos: u64) -> bool {
    let Ok(pos) = libc::off_t::try_from(pos) else { return false };
    let mut byte = 0u8;
    let iov = libc::iovec { iov_base: (&mut byte as *mut u8).cast(), iov_len: 1 };
    // SAFETY: the iovec points at a live one-byte buffer for the duration of the call.
    unsafe { libc::preadv2(fd, &iov, 1, pos, libc::RWF_NOWAIT) == 1 }
}

/// fallocate(FALLOC_FL_KEEP_SIZE) of `[offset, offset + len)` on `fd`; what every backend's
/// `preallocate` means (the io_uring one uses this when the kernel lacks IORING_OP_FALLOCATE).
pub(super) fn preallocate_fd(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "preallocation range past off_t"));
    };
    loop {
        // SAFETY: fallocate takes no pointers; `fd` is open for writing for the call.
        if unsafe { libc::fallocate(fd, libc::FALLOC_FL_KEEP_SIZE, off, n) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return preallocation_result(Err(e));
        }
    }
}

/// Maps "this file system (or kernel) has no fallocate" to success, warning once per process:
/// preallocation is an optimization, and appends work the same without it.
pub(super) fn preallocation_result(r: io::Result<()>) -> io::Result<()> {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match r {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(error = %e, "fallocate is not supported here; segments are not preallocated");
            }
            Ok(())
        }
        other => other,
    }
}

impl FileIo for StdIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        if mode == OpenMode::CreateReadWrite {
            o.create(true);
        }
        Ok(Arc::new(StdFile(o.open(path)?)))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all().map_err(super::sync_failure)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(path)? {
            let e = e?;
            // Names that are not UTF-8 cannot be Kafka files; skip rather than fail the whole directory.
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            out.push(DirEntry {
                name,
                path: e.path(),
                is_dir: e.file_type()?.is_dir(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn disk_space(&self, path: &Path) -> io::Result<(u64, u64)> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs for the call.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let unit = st.f_frsize as u64;
        Ok((st.f_blocks as u64 * unit, st.f_bavail as u64 * unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_io_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = StdIo;
        let p = dir.path().join("a");
        assert!(
            io.open(&p, OpenMode::ReadWrite).is_err(),
            "missing file must not be created"
        );
        let f = io.open(&p, OpenMode::CreateReadWrite).expect("create");
        f.write_all_at(b"hello", 0).expect("write");
        f.write_all_at(b"world", 5).expect("write");
        let mut buf = [0u8; 16];
        assert_eq!(f.read_full_at(&mut buf, 3).expect("read"), 7);
        assert_eq!(&buf[..7], b"loworld");
        f.set_len(4).expect("truncate");
        assert_eq!(f.len().expect("len"), 4);
        io.rename(&p, &dir.path().join("b")).expect("rename");
        io.sync_dir(dir.path()).expect("sync dir");
        let names: Vec<_> = io
            .list_dir(dir.path())
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["b".to_string()]);
    }
}
