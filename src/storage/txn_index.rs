//! The aborted-transaction index of one segment (`<base>.txnindex`, Kafka's layout: 34-byte entries of version, producer id, first offset, last offset, last stable offset), held in memory and appended to the file; it does not decide what is aborted.

use std::io;
use std::path::{Path, PathBuf};

use super::file_name;
use super::io::{FileIo, OpenMode};

/// Bytes per entry: version (2) + producer id (8) + first (8) + last (8) + last stable offset (8).
pub const ENTRY_SIZE: usize = 34;
const ENTRY_VERSION: i16 = 0;

/// One aborted transaction: its data spans `first_offset..last_offset` (the abort marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| b[at..at + 8].try_into().ok().map(i64::from_be_bytes);
        (i16::from_be_bytes([b[0], b[1]]) == ENTRY_VERSION).then_some(())?;
        Some(AbortedTxn { producer_id: i64_at(2)?, first_offset: i64_at(10)?, last_offset: i64_at(18)?, last_stable_offset: i64_at(26)? })
    }
}

/// The entries of one segment, in the order their markers were written (ascending last offset).
#[derive(Debug, Default)]
pub struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    /// Appended since the last sync.
    dirty: bool,
    /// Leading entries that are in the file; the rest wait for a write that failed (a full
    /// disk) and go with the next append or sync.
    written: usize,
}

impl TxnIndex {
    pub fn path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(file_name(base_offset, "txnindex"))
    }

    /// Loads the index; a missing file is an empty index. A torn last entry (a crash during its
    /// write) and anything not in the entry format end the entries: the log replay adds back what
    /// the markers say.
    pub fn load(io: &dyn FileIo, dir: &Path, base_offset: i64) -> io::Result<Self> {
        let path = Self::path(dir, base_offset);
        let mut entries = Vec::new();
        if io.exists(&path)? {
            let f = io.open(&path, OpenMode::ReadWrite)?;
            let mut buf = vec![0u8; f.len()? as usize];
            let n = f.read_full_at(&mut buf, 0)?;
            for chunk in buf[..n].chunks_exact(ENTRY_SIZE) {
                match AbortedTxn::decode(chunk) {
                    Some(e) => entries.push(e),
                    None => break,
                }
            }
            if entries.len() * ENTRY_SIZE != n {
                f.set_len((entries.len() * ENTRY_SIZE) as u64)?;
            }
        }
        let written = entries.len();
        Ok(TxnIndex { path, entries, dirty: false, written })
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn contains(&self, producer_id: i64, last_offset: i64) -> bool {
        self.entries.iter().any(|e| e.producer_id == producer_id && e.last_offset == last_offset)
    }

    /// Adds an entry; it serves readers at once. The file write may fail (a full disk): the
    /// entry then stays in memory and is written with the next append or sync.
    pub fn append(&mut self, io: &dyn FileIo, entry: AbortedTxn) -> io::Result<()> {
        self.entries.push(entry);
        self.dirty = true;
        self.write_pending(io)
    }

    /// Writes the entries the file does not hold yet; a failed write is cut back out of the
    /// file, so it never holds a torn entry.
    fn write_pending(&mut self, io: &dyn FileIo) -> io::Result<()> {
        if self.written == self.entries.len() {
            return Ok(());
        }
        let f = io.open(&self.path, OpenMode::CreateReadWrite)?;
        let bytes: Vec<u8> = self.entries[self.written..].iter().flat_map(|e| e.encode()).collect();
        if let Err(e) = f.write_all_at(&bytes, (self.written * ENTRY_SIZE) as u64) {
            let _ = f.set_len((self.written * ENTRY_SIZE) as u64);
            return Err(e);
        }
        self.written = self.entries.len();
        Ok(())
    }

    /// Drops the entries whose marker is at or after `offset` (the log was cut there).
    pub fn truncate_to(&mut self, io: &dyn FileIo, offset: i64) -> io::Result<()> {
        let keep = self.entries.iter().take_while(|e| e.last_offset < offset).count();
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            if self.written > keep {
                let f = io.open(&self.path, OpenMode::CreateReadWrite)?;
                f.set_len((keep * ENTRY_SIZE) as u64)?;
                self.written = keep;
            }
            self.dirty = true;
        }
        Ok(())
    }

    /// fsync if anything was written since the last one.
    pub fn sync(&mut self, io: &dyn FileIo) -> io::Result<()> {
        self.write_pending(io)?;
        if self.dirty {
            io.open(&self.path, OpenMode::CreateReadWrite)?.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    pub fn remove(io: &dyn FileIo, dir: &Path, base_offset: i64) -> io::Result<()> {
        match io.remove_file(&Self::path(dir, base_offset)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::StdIo;

    fn txn(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: last + 1 }
    }

    #[test]
    fn entries_survive_a_reload_in_kafkas_layout_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let io = StdIo;
        let mut idx = TxnIndex::load(&io, dir.path(), 0).unwrap();
        assert!(idx.entries().is_empty());
        idx.append(&io, txn(7, 3, 10)).unwrap();
        idx.append(&io, txn(8, 5, 12)).unwrap();
        let raw = std::fs::read(TxnIndex::path(dir.path(), 0)).unwrap();
        assert_eq!(raw.len(), 2 * ENTRY_SIZE);
        assert_eq!(&raw[..10], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
        // A torn third entry.
        let mut torn = raw.clone();
        torn.extend_from_slice(&[0, 0, 1, 2, 3]);
        std::fs::write(TxnIndex::path(dir.path(), 0), &torn).unwrap();
        let idx = TxnIndex::load(&io, dir.path(), 0).unwrap();
        assert_eq!(idx.entries(), &[txn(7, 3, 10), txn(8, 5, 12)]);
        assert_eq!(std::fs::read(TxnIndex::path(dir.path(), 0)).unwrap(), raw);
    }

    #[test]
    fn truncation_keeps_only_what_the_log_holds_and_remove_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let io = StdIo;
        let mut idx = TxnIndex::load(&io, dir.path(), 0).unwrap();
        for i in 0..4 {
            idx.append(&io, txn(i, i * 10, i * 10 + 5)).unwrap();
        }
        idx.truncate_to(&io, 30).unwrap();
        assert_eq!(idx.entries().len(), 3);
        assert_eq!(TxnIndex::load(&io, dir.path(), 0).unwrap().entries().len(), 3);
        TxnIndex::remove(&io, dir.path(), 0).unwrap();
        TxnIndex::remove(&io, dir.path(), 0).unwrap();
        assert!(TxnIndex::load(&io, dir.path(), 0).unwrap().entries().is_empty());
    }
}
