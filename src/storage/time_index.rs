//! The sparse time index (`.timeindex`: max timestamp so far i64 BE, relative offset u32 BE); it knows nothing of batches.

use std::io;
use std::path::Path;
use std::sync::Arc;

use super::io::{FileIo, IoFile};
use super::offset_index::EntryFile;

fn i64_at(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}
fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[8], b[9], b[10], b[11]])
}

/// Sparse map from "largest timestamp so far" to the offset of the batch where it first appeared. Both
/// columns grow, so the entry at or below a target timestamp says where a scan for it may start.
#[derive(Debug)]
pub struct TimeIndex {
    entries: EntryFile,
    base_offset: i64,
}

impl TimeIndex {
    pub const ENTRY_SIZE: usize = 12;

    /// Opens or creates the index; see OffsetIndex::open for what `resident` means.
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
            let mut prev: Option<(i64, u32)> = None;
            for i in 0..idx.entries.len() {
                let e = idx.raw(i)?;
                if prev.is_some_and(|p| e.0 < p.0 || e.1 < p.1) {
                    break;
                }
                prev = Some(e);
                keep = i + 1;
            }
            idx.entries.truncate_entries(keep)?;
        }
        Ok(idx)
    }

    pub(crate) fn raw(&self, i: usize) -> io::Result<(i64, u32)> {
        let e = self.entries.entry(i)?;
        Ok((i64_at(&e), u32_at(&e)))
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
    pub fn make_resident(&mut self) -> io::Result<()> {
        self.entries.make_resident()
    }
    pub fn evict(&mut self) -> io::Result<()> {
        self.entries.evict()
    }
    /// The last entry as (timestamp, absolute offset).
    pub fn last_entry(&self) -> io::Result<Option<(i64, i64)>> {
        let n = self.len();
        if n == 0 {
            return Ok(None);
        }
        let (ts, rel) = self.raw(n - 1)?;
        Ok(Some((ts, self.base_offset + rel as i64)))
    }

    /// The largest entry with timestamp <= `timestamp` as (timestamp, offset); None when every entry is
    /// later (the scan then starts at the segment's beginning).
    pub fn lookup(&self, timestamp: i64) -> io::Result<Option<(i64, i64)>> {
        let n = self.entries.partition_point(|e| i64_at(e) <= timestamp)?;
        if n == 0 {
            return Ok(None);
        }
        let (ts, rel) = self.raw(n - 1)?;
        Ok(Some((ts, self.base_offset + rel as i64)))
    }

    /// Appends (timestamp, offset) if the timestamp is larger than the last one, as Kafka does.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> io::Result<()> {
        if let Some((last_ts, last_off)) = self.last_entry()?
            && (timestamp <= last_ts || offset < last_off)
        {
            return Ok(());
        }
        let rel = offset - self.base_offset;
        debug_assert!(
            (0..=u32::MAX as i64).contains(&rel),
            "relative offset overflow"
        );
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&(rel as u32).to_be_bytes());
        self.entries.push(&e)
    }

    /// Removes entries for offsets >= `offset`.
    /// Keeps the first `n` entries (undoing a failed append).
    pub(crate) fn truncate_entries(&mut self, n: usize) -> io::Result<()> {
        self.entries.truncate_entries(n)
    }
    pub fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .entries
            .partition_point(|e| base + (u32_at(e) as i64) < offset)?;
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
    fn lookup_and_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.timeindex");
        let mut idx = TimeIndex::open(&StdIo, &p, 50, true).expect("open");
        assert_eq!(idx.lookup(5).expect("lookup"), None);
        idx.maybe_append(100, 50).expect("a");
        idx.maybe_append(90, 55)
            .expect("older timestamps are skipped");
        idx.maybe_append(200, 60).expect("b");
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(99).expect("lookup"), None);
        assert_eq!(idx.lookup(100).expect("lookup"), Some((100, 50)));
        assert_eq!(idx.lookup(199).expect("lookup"), Some((100, 50)));
        assert_eq!(idx.lookup(i64::MAX).expect("lookup"), Some((200, 60)));
        idx.sync().expect("sync");
        let mut idx = TimeIndex::open(&StdIo, &p, 50, false).expect("reopen");
        assert_eq!(idx.last_entry().expect("last"), Some((200, 60)));
        idx.truncate_to_offset(60).expect("truncate");
        assert_eq!(idx.last_entry().expect("last"), Some((100, 50)));
    }

    #[test]
    fn garbage_file_opens_without_panicking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("g.timeindex");
        std::fs::write(&p, [0xffu8; 29]).expect("write");
        let idx = TimeIndex::open(&StdIo, &p, 0, true).expect("open");
        assert_eq!(idx.len(), 2);
    }
}
