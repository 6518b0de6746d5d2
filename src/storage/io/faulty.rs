//! A FileIo wrapper for crash and fault tests: seeded torn writes (a simulated crash after N bytes), bit flips and a full disk (ENOSPC); it is never used in production.
//!
//! After the simulated crash every mutating call is silently dropped, as if the process had died; the
//! test then reopens the directory with the real backend and checks what recovery makes of it.
//! A full disk is modelled as a file system does it: what needs new space (a write past a file's
//! end, growing it, reserving blocks, creating a file) fails with ENOSPC, while overwrites,
//! truncation, renames and removals still work; a write past the end may land a prefix first.
//! Injected errors ([`FaultyIo::inject`]) fail one kind of call (fsync, write, resize) on the files
//! under one directory with a chosen errno, as a failing disk or file system does, until healed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{DirEntry, FileIo, IoFile, OpenMode};

/// What to break. Tests print `seed` so a failure can be replayed.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultConfig {
    pub seed: u64,
    /// Crash once this many bytes have been written in total; the crossing write is torn.
    pub crash_after_bytes: Option<u64>,
    /// Chance, in parts per million, that a write has one random bit flipped.
    pub flip_bit_ppm: u32,
    /// The disk fills up at this mutating call (counted from 0 over writes, length changes,
    /// reservations, creations, renames, removals and syncs): that call and every later one that
    /// needs space fails with ENOSPC until [`FaultyIo::free_space`].
    pub full_at_mutation: Option<u64>,
}

#[derive(Debug)]
struct FaultState {
    cfg: FaultConfig,
    rng: u64,
    written: u64,
    crashed: bool,
    /// fdatasyncs and directory fsyncs delegated so far.
    syncs: u64,
    /// The (offset, len) of every writeback hint delegated so far.
    writebacks: Vec<(u64, u64)>,
    /// The (offset, len) of every drop_cached hint delegated so far.
    drops: Vec<(u64, u64)>,
    /// The (offset, len) of every will_need hint delegated so far.
    will_needs: Vec<(u64, u64)>,
    /// Mutating calls seen so far (the clock of `full_at_mutation`).
    mutations: u64,
    /// The disk is full: calls that need space fail with ENOSPC.
    full: bool,
    /// ENOSPC failures returned so far.
    enospc: u64,
    /// Injected errors: (directory, kind of call, errno).
    injected: Vec<(PathBuf, FaultOp, i32)>,
    /// Calls failed by an injected error so far.
    injected_failures: u64,
}

/// A kind of call [`FaultyIo::inject`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `sync_data` of a file and `sync_dir` of a directory (the error as a backend reports a
    /// failed fsync: see `io::sync_failure`).
    Sync,
    /// `write_all_at`: nothing of the write lands.
    Write,
    /// `set_len`: the length stays.
    SetLen,
    /// `read_at`: nothing is read.
    Read,
}

impl FaultState {
    /// xorshift64*: deterministic from the seed, no dependency.
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Counts one mutating call; true when the disk is full for it (it becomes full at
    /// `full_at_mutation`).
    fn mutation_finds_disk_full(&mut self) -> bool {
        if self.cfg.full_at_mutation == Some(self.mutations) {
            self.full = true;
        }
        self.mutations += 1;
        self.full
    }

    fn no_space(&mut self) -> io::Error {
        self.enospc += 1;
        io::Error::from_raw_os_error(libc::ENOSPC)
    }

    /// The injected error for `op` on `path`, if one applies (counted).
    fn injected(&mut self, path: &Path, op: FaultOp) -> Option<io::Error> {
        let errno = self.injected.iter().find(|(dir, o, _)| *o == op && path.starts_with(dir)).map(|(_, _, e)| *e)?;
        self.injected_failures += 1;
        let e = io::Error::from_raw_os_error(errno);
        Some(if op == FaultOp::Sync { super::sync_failure(e) } else { e })
    }
}

/// The wrapper. Cloning shares the fault state.
#[derive(Debug, Clone)]
pub struct FaultyIo {
    inner: Arc<dyn FileIo>,
    state: Arc<Mutex<FaultState>>,
}

fn lock(state: &Mutex<FaultState>) -> MutexGuard<'_, FaultState> {
    // A panic in another test thread must not hide this one's faults.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultyIo {
    pub fn new(inner: Arc<dyn FileIo>, cfg: FaultConfig) -> Self {
        let rng = cfg.seed.max(1);
        Self {
            inner,
            state: Arc::new(Mutex::new(FaultState {
                cfg,
                rng,
                written: 0,
                crashed: false,
                syncs: 0,
                writebacks: Vec::new(),
                drops: Vec::new(),
                will_needs: Vec::new(),
                mutations: 0,
                full: false,
                enospc: 0,
                injected: Vec::new(),
                injected_failures: 0,
            })),
        }
    }
    /// True once the simulated crash happened.
    pub fn crashed(&self) -> bool {
        lock(&self.state).crashed
    }
    /// Bytes written so far (including the torn prefix).
    pub fn written_bytes(&self) -> u64 {
        lock(&self.state).written
    }
    /// fdatasyncs and directory fsyncs delegated so far (tests prove what waits for the disk).
    pub fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }
    /// The (offset, len) of every `start_writeback` delegated so far, in order.
    pub fn writebacks(&self) -> Vec<(u64, u64)> {
        lock(&self.state).writebacks.clone()
    }
    /// The (offset, len) of every `drop_cached` delegated so far, in order.
    pub fn drops(&self) -> Vec<(u64, u64)> {
        lock(&self.state).drops.clone()
    }
    /// The (offset, len) of every `will_need` delegated so far, in order.
    pub fn will_needs(&self) -> Vec<(u64, u64)> {
        lock(&self.state).will_needs.clone()
    }
    /// Crash now: every later mutation is dropped.
    pub fn crash(&self) {
        lock(&self.state).crashed = true;
    }
    /// Fill the disk now: calls that need space fail with ENOSPC until `free_space`.
    pub fn fill_disk(&self) {
        lock(&self.state).full = true;
    }
    /// The disk fills at the `n`th mutating call from now (0: the next one).
    pub fn fill_disk_after(&self, n: u64) {
        let mut st = lock(&self.state);
        st.cfg.full_at_mutation = Some(st.mutations + n);
    }
    /// Space was freed: calls that need space work again.
    pub fn free_space(&self) {
        let mut st = lock(&self.state);
        st.full = false;
        st.cfg.full_at_mutation = None;
    }
    /// Mutating calls seen so far (to enumerate every point where the disk can fill).
    pub fn mutations(&self) -> u64 {
        lock(&self.state).mutations
    }
    /// ENOSPC failures returned so far.
    pub fn enospc_count(&self) -> u64 {
        lock(&self.state).enospc
    }
    /// From now on every `op` on a file (or, for syncs, the directory) under `dir` fails with
    /// `errno` (EIO: a failing disk; ENOSPC from an fsync: a thin or remote volume out of space).
    pub fn inject(&self, dir: &Path, op: FaultOp, errno: i32) {
        lock(&self.state).injected.push((dir.to_path_buf(), op, errno));
    }
    /// Removes every injected error: the disk works again.
    pub fn heal(&self) {
        lock(&self.state).injected.clear();
    }
    /// Calls failed by an injected error so far (tests prove what was, or was not, tried again).
    pub fn injected_failures(&self) -> u64 {
        lock(&self.state).injected_failures
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn IoFile>,
    state: Arc<Mutex<FaultState>>,
    path: PathBuf,
}

// `raw_fd` keeps its default (None): handing out the inner descriptor would let sendfile bypass this
// wrapper, so the connection reads such ranges through `read_at` instead.
impl IoFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        if let Some(e) = lock(&self.state).injected(&self.path, FaultOp::Read) {
            return Err(e);
        }
        self.inner.read_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.crashed {
            return Ok(());
        }
        if let Some(e) = st.injected(&self.path, FaultOp::Write) {
            return Err(e);
        }
        if st.mutation_finds_disk_full() {
            // Overwriting blocks the file has needs no space; growing it does. A seeded prefix
            // of the growing part may land first, as a short write on a filling disk does.
            let len = self.inner.len()?;
            let end = pos + buf.len() as u64;
            if end > len {
                let fits = len.saturating_sub(pos) as usize;
                let prefix = fits + (st.next() % (buf.len() - fits + 1) as u64) as usize;
                let err = st.no_space();
                drop(st);
                if prefix > 0 {
                    self.inner.write_all_at(&buf[..prefix], pos)?;
                }
                return Err(err);
            }
        }
        let mut keep = buf.len();
        if let Some(limit) = st.cfg.crash_after_bytes
            && st.written + buf.len() as u64 > limit
        {
            keep = (limit - st.written.min(limit)) as usize;
            st.crashed = true;
        }
        st.written += keep as u64;
        let mut data = buf[..keep].to_vec();
        if st.cfg.flip_bit_ppm > 0
            && !data.is_empty()
            && (st.next() % 1_000_000) < st.cfg.flip_bit_ppm as u64
        {
            let i = (st.next() % data.len() as u64) as usize;
            data[i] ^= 1 << (st.next() % 8);
        }
        drop(st);
        self.inner.write_all_at(&data, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        {
            let mut st = lock(&self.state);
            if st.crashed {
                return Ok(());
            }
            if let Some(e) = st.injected(&self.path, FaultOp::Sync) {
                return Err(e);
            }
            // Written data already has its blocks here: an fsync needs no new space.
            st.mutation_finds_disk_full();
            st.syncs += 1;
        }
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.crashed {
            return Ok(());
        }
        if let Some(e) = st.injected(&self.path, FaultOp::SetLen) {
            return Err(e);
        }
        if st.mutation_finds_disk_full() && len > self.inner.len()? {
            return Err(st.no_space());
        }
        drop(st);
        self.inner.set_len(len)
    }
    /// Delegated, outside the crash model: a reservation with KEEP_SIZE is not data (no bytes
    /// counted toward the crash, no bit flips, the length unchanged), so only whether it happens
    /// at all follows the crash, like every other mutation.
    fn preallocate(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.crashed {
            return Ok(());
        }
        if st.mutation_finds_disk_full() {
            return Err(st.no_space());
        }
        drop(st);
        self.inner.preallocate(offset, len)
    }
    /// Delegated like `preallocate`: a hint about when pages reach the disk, not data.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        {
            let mut st = lock(&self.state);
            if st.crashed {
                return Ok(());
            }
            st.writebacks.push((offset, len));
        }
        self.inner.start_writeback(offset, len)
    }
    /// Delegated like `start_writeback`: a hint about memory, not data.
    fn drop_cached(&self, offset: u64, len: u64) -> io::Result<()> {
        {
            let mut st = lock(&self.state);
            if st.crashed {
                return Ok(());
            }
            st.drops.push((offset, len));
        }
        self.inner.drop_cached(offset, len)
    }

    fn will_need(&self, offset: u64, len: u64) -> io::Result<()> {
        lock(&self.state).will_needs.push((offset, len));
        self.inner.will_need(offset, len)
    }

    fn is_cached(&self, pos: u64) -> bool {
        self.inner.is_cached(pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl FaultyIo {
    /// Not crashed; counts the call as a mutation.
    fn alive(&self) -> bool {
        let mut st = lock(&self.state);
        st.mutation_finds_disk_full();
        !st.crashed
    }
}

impl FileIo for FaultyIo {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn IoFile>> {
        if mode == OpenMode::CreateReadWrite && !self.inner.exists(path)? {
            let mut st = lock(&self.state);
            if !st.crashed && st.mutation_finds_disk_full() {
                return Err(st.no_space());
            }
        }
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(FaultyFile {
            inner,
            state: self.state.clone(),
            path: path.to_path_buf(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.alive() {
            self.inner.rename(from, to)
        } else {
            Ok(())
        }
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if self.alive() {
            self.inner.remove_file(path)
        } else {
            Ok(())
        }
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.alive() {
            self.inner.remove_dir_all(path)
        } else {
            Ok(())
        }
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if !self.inner.exists(path)? {
            let mut st = lock(&self.state);
            if !st.crashed && st.mutation_finds_disk_full() {
                return Err(st.no_space());
            }
        }
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if let Some(e) = lock(&self.state).injected(path, FaultOp::Sync) {
            return Err(e);
        }
        if self.alive() {
            lock(&self.state).syncs += 1;
            self.inner.sync_dir(path)
        } else {
            Ok(())
        }
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

    #[test]
    fn crash_tears_the_crossing_write_and_drops_later_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = FaultyIo::new(
            Arc::new(StdIo),
            FaultConfig {
                seed: 1,
                crash_after_bytes: Some(7),
                flip_bit_ppm: 0,
                ..Default::default()
            },
        );
        let f = io
            .open(&dir.path().join("f"), OpenMode::CreateReadWrite)
            .expect("open");
        f.write_all_at(b"abcd", 0).expect("w1");
        f.write_all_at(b"efgh", 4).expect("w2");
        f.write_all_at(b"ijkl", 8).expect("w3");
        assert!(io.crashed());
        assert_eq!(
            std::fs::read(dir.path().join("f")).expect("read"),
            b"abcdefg"
        );
    }

    #[test]
    fn preallocation_is_no_data_for_the_crash_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = FaultyIo::new(Arc::new(StdIo), FaultConfig { seed: 3, crash_after_bytes: Some(8), flip_bit_ppm: 1_000_000, ..Default::default() });
        let p = dir.path().join("f");
        let f = io.open(&p, OpenMode::CreateReadWrite).expect("open");
        f.preallocate(0, 1 << 20).expect("preallocate");
        assert_eq!((io.written_bytes(), io.crashed()), (0, false), "a reservation is not a write");
        assert_eq!(std::fs::metadata(&p).expect("stat").len(), 0);
        let blocks = || std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&p).expect("stat")) * 512;
        assert!(blocks() >= 1 << 20, "delegated to the real backend");
        f.write_all_at(&[0u8; 16], 0).expect("torn write");
        assert!(io.crashed());
        f.set_len(8).expect("dropped");
        f.preallocate(0, 4 << 20).expect("dropped too");
        assert!(blocks() < 4 << 20, "nothing happens after the crash");
    }

    #[test]
    fn bit_flips_are_deterministic_per_seed() {
        let run = |seed| {
            let dir = tempfile::tempdir().expect("tempdir");
            let io = FaultyIo::new(
                Arc::new(StdIo),
                FaultConfig {
                    seed,
                    crash_after_bytes: None,
                    flip_bit_ppm: 1_000_000,
                    ..Default::default()
                },
            );
            let f = io
                .open(&dir.path().join("f"), OpenMode::CreateReadWrite)
                .expect("open");
            f.write_all_at(&[0u8; 32], 0).expect("write");
            std::fs::read(dir.path().join("f")).expect("read")
        };
        let a = run(42);
        assert_eq!(a, run(42));
        assert_eq!(a.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
    }
}
