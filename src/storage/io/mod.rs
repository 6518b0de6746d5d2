//! The FileIo seam: every file and directory operation storage performs goes through it; it holds no Kafka knowledge.
//!
//! Calls are synchronous and may block on the disk; callers run them on a thread that may block
//! (spawn_blocking or a dedicated storage thread). An io_uring backend will implement the same trait.

use ::std::io;
use ::std::path::{Path, PathBuf};
use ::std::sync::Arc;

pub mod faulty;
pub mod std;

pub use self::faulty::{FaultConfig, FaultyIo};
pub use self::std::StdIo;

/// One open file. Positional reads and writes only, so a handle can be shared without a cursor.
pub trait IoFile: Send + Sync + ::std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// fdatasync: the data (and the size) are durable when this returns.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
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
