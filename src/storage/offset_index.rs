//! The sparse offset index (`.index`: relative offset u32 BE, file position u32 BE) and the append-only entry file both indexes share; it knows nothing of batches.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::io::{FileIo, IoFile, OpenMode};

/// Pending entries are written once this many bytes are buffered: one write per page instead of one per
/// entry. Unwritten entries are only lost in a crash, and recovery rebuilds the tail's indexes anyway.
const WRITE_BEHIND_BYTES: usize = 4096;

/// Largest entry size of any index (the time index's 12 bytes).
pub(crate) const MAX_ENTRY_SIZE: usize = 12;

/// An append-only file of fixed-size entries. The active segment's indexes are resident (mirrored in
/// memory, appended to, written behind); sealed segments' are not, and lookups binary-search the file
/// with a handful of small preads served from the page cache. That keeps memory flat however much log
/// a broker holds, which is what Kafka gets from mmap.
#[derive(Debug)]
pub(crate) struct EntryFile {
    file: Arc<dyn IoFile>,
    path: PathBuf,
    entry_size: usize,
    /// Some while resident.
    data: Option<Vec<u8>>,
    /// Bytes already in the file.
    written: usize,
    /// The file changed (written or cut) since its last fsync: `sync` costs nothing otherwise,
    /// so closing thousands of partitions does not fsync thousands of unchanged index files.
    unsynced: bool,
}

impl EntryFile {
    pub(crate) fn open(
        io: &dyn FileIo,
        path: &Path,
        entry_size: usize,
        resident: bool,
    ) -> io::Result<Self> {
        debug_assert!(entry_size <= MAX_ENTRY_SIZE);
        let file = io.open(path, OpenMode::CreateReadWrite)?;
        let len = file.len()? as usize;
        let whole = len - len % entry_size;
        // A partial trailing entry is a torn write: drop it so later appends line up.
        if whole != len {
            file.set_len(whole as u64)?;
        }
        let mut f = Self {
            file,
            path: path.to_path_buf(),
            entry_size,
            data: None,
            written: whole,
            unsynced: whole != len,
        };
        if resident {
            f.make_resident()?;
        }
        Ok(f)
    }
    /// Loads the entries into memory (for appends, or a full sanity check).
    pub(crate) fn make_resident(&mut self) -> io::Result<()> {
        if self.data.is_none() {
            let mut data = vec![0u8; self.written];
            let got = self.file.read_full_at(&mut data, 0)?;
            data.truncate(got - got % self.entry_size);
            self.written = data.len();
            self.data = Some(data);
        }
        Ok(())
    }
    /// Writes pending entries and drops the in-memory copy.
    pub(crate) fn evict(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.data = None;
        Ok(())
    }
    pub(crate) fn is_resident(&self) -> bool {
        self.data.is_some()
    }
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
    fn len_bytes(&self) -> usize {
        self.data.as_ref().map_or(self.written, Vec::len)
    }
    pub(crate) fn len(&self) -> usize {
        self.len_bytes() / self.entry_size
    }
    /// Entry `i`, copied out (the first `entry_size` bytes are meaningful).
    pub(crate) fn entry(&self, i: usize) -> io::Result<[u8; MAX_ENTRY_SIZE]> {
        let mut out = [0u8; MAX_ENTRY_SIZE];
        let at = i * self.entry_size;
        match &self.data {
            Some(d) => out[..self.entry_size].copy_from_slice(&d[at..at + self.entry_size]),
            None => {
                let got = self
                    .file
                    .read_full_at(&mut out[..self.entry_size], at as u64)?;
                if got < self.entry_size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "index file shrank under us",
                    ));
                }
            }
        }
        Ok(out)
    }
    pub(crate) fn push(&mut self, entry: &[u8]) -> io::Result<()> {
        debug_assert_eq!(entry.len(), self.entry_size);
        self.make_resident()?;
        let data = self.data.get_or_insert_with(Vec::new);
        data.extend_from_slice(entry);
        if data.len() - self.written >= WRITE_BEHIND_BYTES {
            self.write_pending()?;
        }
        Ok(())
    }
    /// Keeps the first `n` entries.
    pub(crate) fn truncate_entries(&mut self, n: usize) -> io::Result<()> {
        let keep = n * self.entry_size;
        if keep >= self.len_bytes() {
            return Ok(());
        }
        if let Some(d) = &mut self.data {
            d.truncate(keep);
        }
        if self.written > keep {
            self.unsynced = true;
            self.file.set_len(keep as u64)?;
            self.written = keep;
        }
        Ok(())
    }
    /// Writes the entries not yet in the file. A failed write (a full disk) may have landed a
    /// prefix: the file is cut back to the entries it held before, so it never holds a torn or
    /// unconfirmed entry, and the pending ones stay in memory for the next try. On an async worker
    /// (`io::nowait`), a file the open-files budget closed or is reopening at that moment is not
    /// waited for (the write answers would-block, having written nothing): the entries stay
    /// pending, as after a crash before the write, and the next write of this index (its next
    /// entry, a roll, a flush) takes them.
    pub(crate) fn write_pending(&mut self) -> io::Result<()> {
        if let Some(d) = &self.data
            && self.written < d.len()
        {
            self.unsynced = true;
            if let Err(e) = self.file.write_all_at(&d[self.written..], self.written as u64) {
                if e.kind() == io::ErrorKind::WouldBlock && crate::storage::io::nowait::active() {
                    return Ok(());
                }
                let _ = self.file.set_len(self.written as u64);
                return Err(e);
            }
            self.written = d.len();
        }
        Ok(())
    }
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.write_pending()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
    /// The file, for an fsync by someone who does not hold the index (a roll's flush).
    pub(crate) fn file(&self) -> &Arc<dyn IoFile> {
        &self.file
    }
    pub(crate) fn size_bytes(&self) -> usize {
        self.len_bytes()
    }
    /// Number of leading entries for which `pred` holds (`pred` must be true then false along the file).
    pub(crate) fn partition_point(&self, pred: impl Fn(&[u8]) -> bool) -> io::Result<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if pred(&self.entry(mid)?) {
                lo = mid + 1
            } else {
                hi = mid
            }
        }
        Ok(lo)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Sparse map from offset to file position within one segment.
#[derive(Debug)]
pub struct OffsetIndex {
    entries: EntryFile,
    base_offset: i64,
}

impl OffsetIndex {
    pub const ENTRY_SIZE: usize = 8;

    /// Opens or creates the index. A resident open also drops any entry that breaks monotonic order
    /// (only a crash leaves one, and recovery rebuilds the indexes of segments it scans anyway).
    pub fn open(
        io: &dyn FileIo,
        path: &Path,
        base_offset: i64,
        resident: bool,
    ) -> io::Result<Self> {
        let mut idx = Self {
            entries: EntryFile::open(io, path, Self::ENTRY_SIZE, resident)?,
            base_offset,
        };
        if resident {
            let mut keep = 0;
            let mut prev: Option<(u32, u32)> = None;
            for i in 0..idx.entries.len() {
                let e = idx.raw(i)?;
                if prev.is_some_and(|p| e.0 <= p.0 || e.1 <= p.1) {
                    break;
                }
                prev = Some(e);
                keep = i + 1;
            }
            idx.entries.truncate_entries(keep)?;
        }
        Ok(idx)
    }

    pub(crate) fn raw(&self, i: usize) -> io::Result<(u32, u32)> {
        let e = self.entries.entry(i)?;
        Ok((u32_at(&e, 0), u32_at(&e, 4)))
    }
    pub fn path(&self) -> &Path {
        self.entries.path()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn size_bytes(&self) -> usize {
        self.entries.size_bytes()
    }
    pub fn is_resident(&self) -> bool {
        self.entries.is_resident()
    }
    pub fn make_resident(&mut self) -> io::Result<()> {
        self.entries.make_resident()
    }
    pub fn evict(&mut self) -> io::Result<()> {
        self.entries.evict()
    }
    /// The last entry as (absolute offset, position).
    pub fn last_entry(&self) -> io::Result<Option<(i64, u32)>> {
        let n = self.len();
        if n == 0 {
            return Ok(None);
        }
        let (rel, pos) = self.raw(n - 1)?;
        Ok(Some((self.base_offset + rel as i64, pos)))
    }

    /// The largest entry with offset <= `offset`, or (base offset, 0) when there is none.
    pub fn lookup(&self, offset: i64) -> io::Result<(i64, u32)> {
        if offset < self.base_offset {
            return Ok((self.base_offset, 0));
        }
        let rel = (offset - self.base_offset).min(u32::MAX as i64) as u32;
        let n = self.entries.partition_point(|e| u32_at(e, 0) <= rel)?;
        if n == 0 {
            return Ok((self.base_offset, 0));
        }
        let (r, p) = self.raw(n - 1)?;
        Ok((self.base_offset + r as i64, p))
    }

    /// Appends an entry; offsets and positions must grow (callers guarantee it; stale ones are ignored).
    pub fn append(&mut self, offset: i64, position: u32) -> io::Result<()> {
        let rel = offset - self.base_offset;
        debug_assert!(
            (0..=u32::MAX as i64).contains(&rel),
            "relative offset overflow"
        );
        if let Some((last_off, last_pos)) = self.last_entry()?
            && (offset <= last_off || position <= last_pos)
        {
            return Ok(());
        }
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&(rel as u32).to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.entries.push(&e)
    }

    /// Removes entries for offsets >= `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let keep = if offset <= self.base_offset {
            0
        } else {
            let rel = (offset - self.base_offset).min(u32::MAX as i64 + 1);
            self.entries
                .partition_point(|e| (u32_at(e, 0) as i64) < rel)?
        };
        self.entries.truncate_entries(keep)
    }

    /// Removes entries pointing at or past `position` (the log was cut there).
    /// Keeps the first `n` entries (undoing a failed append).
    pub(crate) fn truncate_entries(&mut self, n: usize) -> io::Result<()> {
        self.entries.truncate_entries(n)
    }
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| u32_at(e, 4) < position)?;
        self.entries.truncate_entries(keep)
    }

    pub fn clear(&mut self) -> io::Result<()> {
        self.entries.truncate_entries(0)
    }
    pub fn write_pending(&mut self) -> io::Result<()> {
        self.entries.write_pending()
    }
    pub fn sync(&mut self) -> io::Result<()> {
        self.entries.sync()
    }
    pub fn file(&self) -> &Arc<dyn IoFile> {
        self.entries.file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::StdIo;

    #[test]
    fn lookup_finds_the_largest_entry_at_or_below() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&StdIo, &p, 100, true).expect("open");
        assert_eq!(idx.lookup(150).expect("lookup"), (100, 0));
        idx.append(110, 4096).expect("append");
        idx.append(120, 8192).expect("append");
        idx.append(115, 9000).expect("stale entries are ignored");
        assert_eq!(idx.lookup(99).expect("lookup"), (100, 0));
        assert_eq!(idx.lookup(109).expect("lookup"), (100, 0));
        assert_eq!(idx.lookup(110).expect("lookup"), (110, 4096));
        assert_eq!(idx.lookup(119).expect("lookup"), (110, 4096));
        assert_eq!(idx.lookup(10_000).expect("lookup"), (120, 8192));
        idx.sync().expect("sync");
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), 16);

        let mut idx = OffsetIndex::open(&StdIo, &p, 100, false).expect("reopen");
        assert_eq!(idx.len(), 2);
        idx.truncate_to_offset(120).expect("truncate");
        assert_eq!(idx.last_entry().expect("last"), Some((110, 4096)));
        idx.truncate_to_position(4096).expect("truncate");
        assert!(idx.is_empty());
    }

    /// On an async worker a write that would wait (a file the open-files budget closed) leaves
    /// the entries pending, untouched in the file; the next write takes them. Elsewhere the
    /// same error is an error.
    #[test]
    fn a_write_that_would_wait_on_an_async_worker_leaves_the_entries_pending() {
        use crate::storage::io::{FaultConfig, FaultOp, FaultyIo, nowait};
        let dir = tempfile::tempdir().expect("tempdir");
        let io = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
        let p = dir.path().join("00000000000000000000.index");
        let mut idx = OffsetIndex::open(&io, &p, 0, true).expect("open");
        idx.append(1, 100).expect("append");
        io.inject(dir.path(), FaultOp::Write, libc::EAGAIN);
        assert!(idx.write_pending().is_err(), "off the worker it is an error");
        nowait::run(|| idx.write_pending()).expect("on the worker it waits for the next write");
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), 0);
        io.heal();
        idx.append(2, 200).expect("append");
        idx.write_pending().expect("write");
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), 16, "both entries");
    }

    #[test]
    fn torn_and_non_monotonic_entries_are_dropped_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.index");
        let mut bytes = Vec::new();
        for (r, pos) in [(1u32, 10u32), (2, 20), (2, 30), (3, 40)] {
            bytes.extend(r.to_be_bytes());
            bytes.extend(pos.to_be_bytes());
        }
        bytes.extend([1, 2, 3]);
        std::fs::write(&p, &bytes).expect("write");
        let idx = OffsetIndex::open(&StdIo, &p, 0, true).expect("open");
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.last_entry().expect("last"), Some((2, 20)));
    }
}
