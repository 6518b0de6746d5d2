//! Scopes in which storage must not wait: reads are served from the page cache or fail at once,
//! locks are tried, never waited for. An async worker runs work in such a scope to skip the trip to
//! a handler thread when everything it needs is in memory, and makes that trip when not.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with waiting forbidden on this thread: file reads through the backends fail with
/// [`io::ErrorKind::WouldBlock`] instead of waiting for the disk, and callers that check
/// [`active`] try their locks. The previous state comes back afterwards, also on a panic.
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    with_scope(true, f)
}

/// Runs `f` with waiting allowed again on this thread: for work inside [`run`] that was checked
/// beforehand not to wait, and must not fail for a moment's wait it meets after all (a lock
/// another thread holds briefly). The previous state comes back afterwards, also on a panic.
pub fn allowing_waits<T>(f: impl FnOnce() -> T) -> T {
    with_scope(false, f)
}

/// Runs `f` with the scope `active`, then puts back the one before (also on a panic).
fn with_scope<T>(active: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ACTIVE.with(|a| a.replace(active)));
    f()
}

/// Whether this thread is inside [`run`].
pub fn active() -> bool {
    ACTIVE.with(Cell::get)
}

/// The error that says "this would have waited": the caller retries where waiting is allowed.
pub fn would_block() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "would wait for the disk or a lock; retried off the async worker")
}

pub fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// pread that never waits for the disk (preadv2 with RWF_NOWAIT): bytes in the page cache are
/// read, anything else is [`would_block`]. A kernel or file system that refuses the flag also
/// answers `would_block`, so the caller simply takes the waiting path.
pub(super) fn read_at_fd(fd: RawFd, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let Ok(pos) = libc::off_t::try_from(pos) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    loop {
        // SAFETY: the iovec points at `buf`, live and writable for the duration of the call.
        let n = unsafe { libc::preadv2(fd, &iov, 1, pos, libc::RWF_NOWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => return Err(would_block()),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_scope_is_per_thread_nests_and_ends_on_panic() {
        assert!(!active());
        run(|| {
            assert!(active());
            run(|| assert!(active()));
            assert!(active(), "an inner scope restores the outer one");
            std::thread::spawn(|| assert!(!active(), "another thread may wait")).join().unwrap();
            allowing_waits(|| assert!(!active(), "waits allowed again inside"));
            assert!(active(), "and forbidden again after");
        });
        assert!(!active());
        let _ = std::panic::catch_unwind(|| run(|| panic!("inside")));
        assert!(!active(), "a panic leaves the scope");
    }

    #[test]
    fn cached_bytes_are_read_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello, page cache").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let mut buf = [0u8; 5];
        match read_at_fd(f.as_raw_fd(), &mut buf, 7) {
            Ok(n) => assert_eq!(&buf[..n], b"page "),
            // A file system without RWF_NOWAIT reads says so the only way it can.
            Err(e) => assert!(is_would_block(&e), "{e}"),
        }
        let mut past_end = [0u8; 4];
        assert!(matches!(read_at_fd(f.as_raw_fd(), &mut past_end, 1 << 20), Ok(0) | Err(_)));
    }
}
