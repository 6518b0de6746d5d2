//! The Raft log on disk for openraft: framed entries in one append-only file, the vote, the
//! committed log id and the last purged log id in an atomically replaced state file. It never
//! decides anything about terms or commits (openraft does) and never looks inside payloads.
//!
//! Files under the directory given by the caller (Fjord uses `<metadata.log.dir>/fjord-raft/`):
//! - `raft.log`: entries back to back, each `length u32 | crc32c u32 | term u64 | index u64 |
//!   body` (big endian; `length` counts the bytes after itself; the CRC32C covers term, index
//!   and body; the body is the postcard encoding of the openraft entry).
//! - `raft-state`: version byte + postcard of the vote, the committed log id and the last purged
//!   log id, replaced with `write_atomic` (temp file, fsync, rename, fsync dir).
//!
//! Appends are written and fsynced before openraft is told they are durable. File I/O runs on
//! `spawn_blocking`; the entries are also kept in memory (the metadata log is bounded by
//! snapshots and purges), so reads never touch the disk and never wait for an append.
//! At open, recovery keeps every whole entry whose length and CRC check and cuts the file at the
//! first torn or corrupt one; every length read from disk is checked before it sizes a buffer.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{NodeId, TypeConfig};
use crate::storage::checkpoint::{read_small, write_atomic};
use crate::storage::io::{FileIo, IoFile, OpenMode};

/// The log file's name inside the Raft directory.
pub const LOG_FILE_NAME: &str = "raft.log";
/// The vote / committed / purged state file's name inside the Raft directory.
pub const STATE_FILE_NAME: &str = "raft-state";
const COMPACT_FILE_NAME: &str = "raft.log.compact";
const STATE_VERSION: u8 = 0;
/// Bytes of an entry frame before its body: length, CRC32C, term, index.
pub const ENTRY_HEADER_BYTES: usize = 4 + 4 + 8 + 8;
/// Bytes the length field counts besides the body: CRC32C, term, index.
const FRAMED_FIELDS_BYTES: usize = 4 + 8 + 8;
/// Default for `fjord.metadata.log.entry.bytes.max`: the largest encoded entry body accepted on
/// append and trusted on read (Kafka's KRaft client caps a metadata batch at 8 MiB).
pub const DEFAULT_ENTRY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Purged entries are removed from the file (by rewriting what is kept) once they take at least
/// this share of the file: 1/2.
const COMPACT_WHEN_PURGED_NUMERATOR: u64 = 1;
const COMPACT_WHEN_PURGED_DENOMINATOR: u64 = 2;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The buffer ends inside the frame (a torn write at the tail).
    #[error("frame incomplete: {needed} bytes needed, {available} available")]
    Incomplete { needed: usize, available: usize },
    /// The length field is below the fixed fields or above `fjord.metadata.log.entry.bytes.max`.
    #[error("frame length {length} out of range (body max {body_bytes_max})")]
    BadLength { length: u64, body_bytes_max: usize },
    #[error("frame CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("frame body does not decode: {0}")]
    BadBody(String),
    /// The header's term/index disagree with the entry's log id.
    #[error("frame header (term {term}, index {index}) disagrees with its entry {entry}")]
    Mismatch { term: u64, index: u64, entry: String },
}

/// Failures of the log store itself (opening, recovery); I/O failures while openraft runs become
/// openraft's `StorageError`.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("raft log I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("raft state file {path} is corrupt: {reason}")]
    CorruptState { path: PathBuf, reason: String },
    /// Whole entries that check out but do not follow each other: not a torn write, a bug.
    #[error("raft log entries not contiguous: index {found} after {previous}")]
    NotContiguous { previous: u64, found: u64 },
    #[error("entry body is {bytes} bytes, over fjord.metadata.log.entry.bytes.max {max}")]
    EntryTooLarge { bytes: usize, max: usize },
    #[error("entry does not encode: {0}")]
    Encode(String),
}

/// Encodes one entry as a frame appended to `out`.
pub fn encode_entry(entry: &Entry<TypeConfig>, body_bytes_max: usize, out: &mut Vec<u8>) -> Result<(), LogStoreError> {
    let body = postcard::to_allocvec(entry).map_err(|e| LogStoreError::Encode(e.to_string()))?;
    if body.len() > body_bytes_max {
        return Err(LogStoreError::EntryTooLarge { bytes: body.len(), max: body_bytes_max });
    }
    let length = (FRAMED_FIELDS_BYTES + body.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&entry.log_id.leader_id.term.to_be_bytes());
    out.extend_from_slice(&entry.log_id.index.to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// The frame length `buf` (at least 4 bytes) announces, checked against the limit before any
/// buffer is sized from it. Returns the whole frame's size.
pub fn frame_size(buf: &[u8], body_bytes_max: usize) -> Result<usize, FrameError> {
    if buf.len() < 4 {
        return Err(FrameError::Incomplete { needed: 4, available: buf.len() });
    }
    let length = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if length < FRAMED_FIELDS_BYTES || length - FRAMED_FIELDS_BYTES > body_bytes_max {
        return Err(FrameError::BadLength { length: length as u64, body_bytes_max });
    }
    Ok(4 + length)
}

/// Decodes the frame at the start of `buf`: the entry and the bytes it took. Never panics,
/// whatever the bytes.
pub fn decode_entry(buf: &[u8], body_bytes_max: usize) -> Result<(Entry<TypeConfig>, usize), FrameError> {
    let size = frame_size(buf, body_bytes_max)?;
    if buf.len() < size {
        return Err(FrameError::Incomplete { needed: size, available: buf.len() });
    }
    let frame = &buf[..size];
    let stored = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let computed = crc32c::crc32c(&frame[8..]);
    if stored != computed {
        return Err(FrameError::BadCrc { stored, computed });
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&frame[8..16]);
    let term = u64::from_be_bytes(word);
    word.copy_from_slice(&frame[16..24]);
    let index = u64::from_be_bytes(word);
    let entry: Entry<TypeConfig> = postcard::from_bytes(&frame[ENTRY_HEADER_BYTES..]).map_err(|e| FrameError::BadBody(e.to_string()))?;
    if entry.log_id.leader_id.term != term || entry.log_id.index != index {
        return Err(FrameError::Mismatch { term, index, entry: entry.log_id.to_string() });
    }
    Ok((entry, size))
}

/// What `raft-state` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PersistedState {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

/// Payloads an observer is sent ([`LogStore::payloads_after`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payloads {
    /// `(index, payload)` of each entry that carries one, in log order.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The last index covered (entries without a payload included); None when nothing is.
    pub covered: Option<u64>,
}

/// The entries in memory: index -> (file position of its frame, entry).
#[derive(Debug, Default)]
struct Entries {
    by_index: BTreeMap<u64, (u64, Entry<TypeConfig>)>,
}

/// The open log file and where the next frame goes; used from blocking threads only.
#[derive(Debug)]
struct LogFile {
    io: Arc<dyn FileIo>,
    dir: PathBuf,
    file: Arc<dyn IoFile>,
    end_pos: u64,
}

/// What recovery found at open, for the startup log line and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whole entries kept (purged ones not counted).
    pub entries_kept: usize,
    /// Bytes cut from the tail of `raft.log` (a torn or corrupt write); 0 for a clean file.
    pub bytes_cut: u64,
    /// Why the tail was cut, when it was.
    pub cut_reason: Option<String>,
}

/// openraft's log storage (`RaftLogStorage`). Cloning shares the same log.
#[derive(Debug, Clone)]
pub struct LogStore {
    file: Arc<Mutex<LogFile>>,
    entries: Arc<RwLock<Entries>>,
    state: Arc<Mutex<PersistedState>>,
    committed_index_plus_one: Arc<AtomicU64>,
    body_bytes_max: usize,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogStoreError + '_ {
    move |source| LogStoreError::Io { path: path.to_path_buf(), source }
}

fn join_failed(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("raft log I/O task failed: {e}"))
}

impl LogStore {
    /// Opens (creating if missing) the log under `dir`, recovering a torn or corrupt tail.
    /// Blocking: call it from a thread that may block (or before the runtime serves).
    pub fn open(io: Arc<dyn FileIo>, dir: &Path, body_bytes_max: usize) -> Result<(LogStore, RecoveryReport), LogStoreError> {
        io.create_dir_all(dir).map_err(io_err(dir))?;
        let state_path = dir.join(STATE_FILE_NAME);
        let state = match read_small(io.as_ref(), &state_path).map_err(io_err(&state_path))? {
            None => PersistedState::default(),
            Some(bytes) => decode_state(&bytes).map_err(|reason| LogStoreError::CorruptState { path: state_path.clone(), reason })?,
        };
        // A crash during a compaction may leave its temp file; the rename did not happen.
        let compact_path = dir.join(COMPACT_FILE_NAME);
        if io.exists(&compact_path).map_err(io_err(&compact_path))? {
            io.remove_file(&compact_path).map_err(io_err(&compact_path))?;
        }
        let log_path = dir.join(LOG_FILE_NAME);
        let file = io.open(&log_path, OpenMode::CreateReadWrite).map_err(io_err(&log_path))?;
        let len = file.len().map_err(io_err(&log_path))?;
        let mut entries = Entries::default();
        let mut report = RecoveryReport::default();
        let mut pos = 0u64;
        let mut header = [0u8; 4];
        let mut previous: Option<u64> = None;
        let purged_index = state.last_purged.map(|l| l.index);
        while pos < len {
            let n = file.read_full_at(&mut header, pos).map_err(io_err(&log_path))?;
            let size = match frame_size(&header[..n], body_bytes_max) {
                Ok(size) => size,
                Err(e) => {
                    report.cut_reason = Some(e.to_string());
                    break;
                }
            };
            if pos + size as u64 > len {
                report.cut_reason = Some(FrameError::Incomplete { needed: size, available: (len - pos) as usize }.to_string());
                break;
            }
            let mut frame = vec![0u8; size];
            let n = file.read_full_at(&mut frame, pos).map_err(io_err(&log_path))?;
            let (entry, _) = match decode_entry(&frame[..n], body_bytes_max) {
                Ok(decoded) => decoded,
                Err(e) => {
                    report.cut_reason = Some(e.to_string());
                    break;
                }
            };
            let index = entry.log_id.index;
            if purged_index.is_none_or(|p| index > p) {
                if let Some(prev) = previous
                    && index != prev + 1
                {
                    return Err(LogStoreError::NotContiguous { previous: prev, found: index });
                }
                previous = Some(index);
                entries.by_index.insert(index, (pos, entry));
            }
            pos += size as u64;
        }
        if pos < len {
            report.bytes_cut = len - pos;
            tracing::warn!(path = %log_path.display(), bytes_cut = report.bytes_cut, reason = ?report.cut_reason, "raft log: cutting a torn or corrupt tail");
            file.set_len(pos).map_err(io_err(&log_path))?;
            file.sync_data().map_err(io_err(&log_path))?;
        }
        report.entries_kept = entries.by_index.len();
        let committed = state.committed.map(|c| c.index + 1).unwrap_or(0);
        let store = LogStore {
            file: Arc::new(Mutex::new(LogFile { io, dir: dir.to_path_buf(), file, end_pos: pos })),
            entries: Arc::new(RwLock::new(entries)),
            state: Arc::new(Mutex::new(state)),
            committed_index_plus_one: Arc::new(AtomicU64::new(committed)),
            body_bytes_max,
        };
        Ok((store, report))
    }

    /// The committed index openraft last saved (Kafka's high watermark of the metadata log is the
    /// next one), shared with the node's status.
    pub fn committed_index(&self) -> Option<u64> {
        match self.committed_index_plus_one.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// The index of the last entry purged behind a snapshot, if any.
    pub fn last_purged_index(&self) -> Option<u64> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).last_purged.map(|l| l.index)
    }

    /// The payloads of the entries after `after` up to `up_to` (both log indexes; `after` None
    /// from the start), for an observer following the log: `(index, payload)` of each entry that
    /// carries one (blank and membership entries carry none), at most `bytes_max` of payload but
    /// always at least one entry, and the last index covered. `None` when the entry after `after`
    /// is purged (behind a snapshot): the observer needs the snapshot first.
    pub fn payloads_after(&self, after: Option<u64>, up_to: u64, bytes_max: usize) -> Option<Payloads> {
        let start = after.map_or(0, |a| a.saturating_add(1));
        if self.last_purged_index().is_some_and(|p| start <= p) {
            return None;
        }
        if start > up_to {
            return Some(Payloads { entries: Vec::new(), covered: after });
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut covered = after;
        // From the start (nothing purged), the log begins at its first entry, whatever its index.
        let mut expected = after.map(|a| a.saturating_add(1));
        for (index, (_, entry)) in entries.by_index.range(start..=up_to) {
            // A purge ran between the check above and this read: the start is gone.
            if expected.is_some_and(|e| *index != e) {
                return None;
            }
            if let openraft::EntryPayload::Normal(payload) = &entry.payload {
                if !out.is_empty() && bytes + payload.len() > bytes_max {
                    break;
                }
                bytes += payload.len();
                out.push((*index, payload.clone()));
            }
            covered = Some(*index);
            expected = Some(index + 1);
        }
        // Nothing found where committed entries must be: purged meanwhile.
        if covered == after {
            return None;
        }
        Some(Payloads { entries: out, covered })
    }

    fn read_entries(&self, start: u64, end_exclusive: Option<u64>) -> Vec<Entry<TypeConfig>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let range = match end_exclusive {
            Some(end) if end <= start => return Vec::new(),
            Some(end) => entries.by_index.range(start..end),
            None => entries.by_index.range(start..),
        };
        range.map(|(_, (_, e))| e.clone()).collect()
    }

    /// Writes the state file with `change` applied, on a blocking thread.
    async fn persist_state(&self, change: impl FnOnce(&mut PersistedState) + Send + 'static) -> io::Result<()> {
        let state = self.state.clone();
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            // The log file lock also serializes state writes (one writer of raft-state at a time).
            let log = file.lock().unwrap_or_else(|p| p.into_inner());
            let mut next = state.lock().unwrap_or_else(|p| p.into_inner()).clone();
            change(&mut next);
            let path = log.dir.join(STATE_FILE_NAME);
            write_atomic(log.io.as_ref(), &path, &encode_state(&next))?;
            *state.lock().unwrap_or_else(|p| p.into_inner()) = next;
            Ok(())
        })
        .await
        .map_err(join_failed)?
    }
}

fn encode_state(state: &PersistedState) -> Vec<u8> {
    let mut out = vec![STATE_VERSION];
    // Options of plain structs: postcard cannot fail on them short of running out of memory.
    match postcard::to_allocvec(state) {
        Ok(body) => out.extend_from_slice(&body),
        Err(e) => unreachable!("raft state encodes: {e}"),
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode_state(bytes: &[u8]) -> Result<PersistedState, String> {
    if bytes.len() < 5 {
        return Err(format!("{} bytes, too short", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err("CRC32C mismatch".to_string());
    }
    if body[0] != STATE_VERSION {
        return Err(format!("unknown version {}", body[0]));
    }
    postcard::from_bytes(&body[1..]).map_err(|e| e.to_string())
}

fn bound_start(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        std::ops::Bound::Included(s) => *s,
        std::ops::Bound::Excluded(s) => s.saturating_add(1),
        std::ops::Bound::Unbounded => 0,
    }
}

fn bound_end(range: &impl RangeBounds<u64>) -> Option<u64> {
    match range.end_bound() {
        std::ops::Bound::Included(e) => Some(e.saturating_add(1)),
        std::ops::Bound::Excluded(e) => Some(*e),
        std::ops::Bound::Unbounded => None,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.read_entries(bound_start(&range), bound_end(&range)))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged = self.state.lock().unwrap_or_else(|p| p.into_inner()).last_purged;
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let last = entries.by_index.values().next_back().map(|(_, e)| e.log_id).or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.persist_state(move |s| s.vote = Some(vote)).await.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.persist_state(move |s| s.committed = committed).await.map_err(|e| StorageIOError::write(&e))?;
        self.committed_index_plus_one.store(committed.map(|c| c.index + 1).unwrap_or(0), Ordering::Release);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut frames = Vec::new();
        let mut sizes = Vec::with_capacity(entries.len());
        for entry in &entries {
            let before = frames.len();
            encode_entry(entry, self.body_bytes_max, &mut frames).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            sizes.push((frames.len() - before) as u64);
        }
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut log = file.lock().unwrap_or_else(|p| p.into_inner());
            let start = log.end_pos;
            log.file.write_all_at(&frames, start)?;
            log.file.sync_data()?;
            log.end_pos += frames.len() as u64;
            Ok::<u64, io::Error>(start)
        })
        .await
        .map_err(join_failed)
        .and_then(|r| r);
        match written {
            Ok(start) => {
                {
                    let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
                    let mut pos = start;
                    for (entry, size) in entries.into_iter().zip(sizes) {
                        map.by_index.insert(entry.log_id.index, (pos, entry));
                        pos += size;
                    }
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let storage_error = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(storage_error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let cut_pos = {
            let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
            let cut = map.by_index.range(log_id.index..).next().map(|(_, (pos, _))| *pos);
            map.by_index.split_off(&log_id.index);
            cut
        };
        let Some(cut_pos) = cut_pos else { return Ok(()) };
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = file.lock().unwrap_or_else(|p| p.into_inner());
            log.file.set_len(cut_pos)?;
            log.file.sync_data()?;
            log.end_pos = cut_pos;
            Ok::<(), io::Error>(())
        })
        .await
        .map_err(join_failed)
        .and_then(|r| r)
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // First durable: the purge point. Entries up to it are ignored at open from then on.
        self.persist_state(move |s| {
            if s.last_purged.is_none_or(|p| p.index < log_id.index) {
                s.last_purged = Some(log_id);
            }
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?;
        let kept: Vec<(u64, u64, Entry<TypeConfig>)> = {
            let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
            let rest = map.by_index.split_off(&(log_id.index + 1));
            map.by_index = rest;
            map.by_index.iter().map(|(i, (pos, e))| (*i, *pos, e.clone())).collect()
        };
        let first_kept_pos = kept.first().map(|(_, pos, _)| *pos);
        let body_bytes_max = self.body_bytes_max;
        let file = self.file.clone();
        let compacted = tokio::task::spawn_blocking(move || compact(&file, first_kept_pos, &kept, body_bytes_max))
            .await
            .map_err(join_failed)
            .and_then(|r| r)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        if let Some(positions) = compacted {
            let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
            for (index, pos) in positions {
                if let Some(slot) = map.by_index.get_mut(&index) {
                    slot.0 = pos;
                }
            }
        }
        Ok(())
    }
}

/// Removes purged frames from the file when they are at least half of it: empties the file when
/// nothing is kept, else rewrites the kept frames into a temp file renamed over the log. Returns
/// the kept entries' new positions when it rewrote.
fn compact(
    file: &Mutex<LogFile>,
    first_kept_pos: Option<u64>,
    kept: &[(u64, u64, Entry<TypeConfig>)],
    body_bytes_max: usize,
) -> io::Result<Option<Vec<(u64, u64)>>> {
    let mut log = file.lock().unwrap_or_else(|p| p.into_inner());
    let Some(first) = first_kept_pos else {
        if log.end_pos > 0 {
            log.file.set_len(0)?;
            log.file.sync_data()?;
            log.end_pos = 0;
        }
        return Ok(None);
    };
    if first * COMPACT_WHEN_PURGED_DENOMINATOR < log.end_pos * COMPACT_WHEN_PURGED_NUMERATOR {
        return Ok(None);
    }
    let mut frames = Vec::new();
    let mut positions = Vec::with_capacity(kept.len());
    for (index, _, entry) in kept {
        positions.push((*index, frames.len() as u64));
        encode_entry(entry, body_bytes_max, &mut frames).map_err(io::Error::other)?;
    }
    let tmp_path = log.dir.join(COMPACT_FILE_NAME);
    let log_path = log.dir.join(LOG_FILE_NAME);
    let tmp = log.io.open(&tmp_path, OpenMode::CreateReadWrite)?;
    tmp.set_len(0)?;
    tmp.write_all_at(&frames, 0)?;
    tmp.sync_data()?;
    log.io.rename(&tmp_path, &log_path)?;
    log.io.sync_dir(&log.dir)?;
    log.file = log.io.open(&log_path, OpenMode::ReadWrite)?;
    log.end_pos = frames.len() as u64;
    Ok(Some(positions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::std_io;
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};
    use proptest::prelude::*;

    fn entry(term: u64, index: u64, payload: &[u8]) -> Entry<TypeConfig> {
        Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Normal(payload.to_vec()) }
    }

    fn open(dir: &Path) -> (LogStore, RecoveryReport) {
        LogStore::open(std_io(), dir, DEFAULT_ENTRY_BYTES_MAX).expect("open")
    }

    /// Appends through openraft's API, waiting for the durable callback.
    async fn append(store: &mut LogStore, entries: Vec<Entry<TypeConfig>>) {
        store.blocking_append(entries).await.expect("append");
    }

    fn indexes(entries: &[Entry<TypeConfig>]) -> Vec<u64> {
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn append_read_truncate_purge_and_reopen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut store, report) = open(tmp.path());
        assert_eq!(report, RecoveryReport::default());
        append(&mut store, (1..=10).map(|i| entry(1, i, format!("p{i}").as_bytes())).collect()).await;
        assert_eq!(indexes(&store.try_get_log_entries(3..6).await.expect("read")), vec![3, 4, 5]);
        assert_eq!(indexes(&store.try_get_log_entries(9..).await.expect("read")), vec![9, 10]);
        store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 8)).await.expect("truncate");
        append(&mut store, vec![entry(2, 8, b"new8")]).await;
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.expect("purge");
        let vote = Vote::new(2, 1);
        store.save_vote(&vote).await.expect("vote");
        let committed = Some(LogId::new(CommittedLeaderId::new(2, 1), 8));
        store.save_committed(committed).await.expect("committed");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
        assert_eq!(state.last_log_id.map(|l| (l.leader_id.term, l.index)), Some((2, 8)));
        drop(store);

        let (mut store, report) = open(tmp.path());
        assert_eq!(report.bytes_cut, 0);
        let all = store.try_get_log_entries(0..).await.expect("read");
        assert_eq!(indexes(&all), vec![4, 5, 6, 7, 8]);
        assert_eq!(all[4].payload, EntryPayload::Normal(b"new8".to_vec()));
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(store.read_committed().await.expect("committed"), committed);
        assert_eq!(store.committed_index(), Some(8));
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(3));
    }

    /// What an observer is sent: payload entries only, bounded by bytes (one at least), up to
    /// the committed index given; None once its next entry is behind the purge point.
    #[tokio::test]
    async fn payloads_after_skips_entries_without_payload_and_says_when_purged() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(tmp.path());
        let blank = Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), 3), payload: EntryPayload::Blank };
        append(&mut store, vec![entry(1, 1, b"a"), entry(1, 2, b"bb"), blank, entry(1, 4, b"dddd"), entry(1, 5, b"e")]).await;
        let p = |entries: Vec<(u64, &[u8])>, covered: Option<u64>| Some(Payloads { entries: entries.into_iter().map(|(i, b)| (i, b.to_vec())).collect(), covered });
        assert_eq!(store.payloads_after(None, 4, 1 << 20), p(vec![(1, b"a"), (2, b"bb"), (4, b"dddd")], Some(4)));
        // The blank entry is covered though it carries nothing.
        assert_eq!(store.payloads_after(Some(2), 3, 1 << 20), p(vec![], Some(3)));
        // A byte bound still sends one entry, then stops before the next payload that would pass
        // it (the blank entry between them is covered).
        assert_eq!(store.payloads_after(Some(1), 5, 1), p(vec![(2, b"bb")], Some(3)));
        assert_eq!(store.payloads_after(Some(5), 5, 1 << 20), p(vec![], Some(5)));
        // Any index from the wire is answered, never a panic.
        assert_eq!(store.payloads_after(Some(u64::MAX), 5, 1 << 20), p(vec![], Some(u64::MAX)));
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 2)).await.expect("purge");
        assert_eq!(store.payloads_after(Some(1), 5, 1 << 20), None);
        assert_eq!(store.payloads_after(Some(2), 5, 1 << 20).map(|p| (p.entries.len(), p.covered)), Some((2, Some(5))));
    }

    #[tokio::test]
    async fn purge_compacts_the_file_and_positions_stay_right() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(tmp.path());
        append(&mut store, (1..=10).map(|i| entry(1, i, &[i as u8; 100])).collect()).await;
        let before = std::fs::metadata(tmp.path().join(LOG_FILE_NAME)).expect("meta").len();
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 7)).await.expect("purge");
        let after = std::fs::metadata(tmp.path().join(LOG_FILE_NAME)).expect("meta").len();
        assert!(after * 3 < before, "purged frames removed: {before} -> {after}");
        // Truncating after the rewrite cuts at the rewritten position.
        store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 10)).await.expect("truncate");
        append(&mut store, vec![entry(3, 10, b"x"), entry(3, 11, b"y")]).await;
        store.purge(LogId::new(CommittedLeaderId::new(1, 1), 20)).await.expect("purge all");
        assert_eq!(std::fs::metadata(tmp.path().join(LOG_FILE_NAME)).expect("meta").len(), 0);
        append(&mut store, vec![entry(3, 21, b"z")]).await;
        drop(store);
        let (mut store, report) = open(tmp.path());
        assert_eq!(report.bytes_cut, 0);
        assert_eq!(indexes(&store.try_get_log_entries(0..).await.expect("read")), vec![21]);
    }

    #[tokio::test]
    async fn recovery_cuts_a_torn_tail_and_keeps_what_is_before() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(tmp.path());
        append(&mut store, (1..=5).map(|i| entry(1, i, b"payload")).collect()).await;
        drop(store);
        let path = tmp.path().join(LOG_FILE_NAME);
        let full = std::fs::read(&path).expect("read");
        let frame = full.len() / 5;
        // Every cut inside the last frame keeps exactly the first four entries.
        for cut in (4 * frame + 1)..full.len() {
            std::fs::write(&path, &full[..cut]).expect("write");
            let (mut store, report) = open(tmp.path());
            assert_eq!(report.bytes_cut, (cut - 4 * frame) as u64, "cut at {cut}");
            assert_eq!(indexes(&store.try_get_log_entries(0..).await.expect("read")), vec![1, 2, 3, 4]);
            assert_eq!(std::fs::metadata(&path).expect("meta").len(), (4 * frame) as u64);
            // And the next append lands right after the kept entries.
            append(&mut store, vec![entry(2, 5, b"again")]).await;
        }
        // A flipped bit in the third frame's body cuts from there.
        let mut flipped = full.clone();
        flipped[2 * frame + ENTRY_HEADER_BYTES + 1] ^= 0x40;
        std::fs::write(&path, &flipped).expect("write");
        let (mut store, report) = open(tmp.path());
        assert!(report.cut_reason.as_deref().is_some_and(|r| r.contains("CRC")), "{report:?}");
        assert_eq!(indexes(&store.try_get_log_entries(0..).await.expect("read")), vec![1, 2]);
        // A huge length field is refused before anything is allocated from it.
        let mut huge = full[..frame].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(&[0u8; 40]);
        std::fs::write(&path, &huge).expect("write");
        let (mut store, report) = open(tmp.path());
        assert!(report.cut_reason.as_deref().is_some_and(|r| r.contains("out of range")), "{report:?}");
        assert_eq!(indexes(&store.try_get_log_entries(0..).await.expect("read")), vec![1]);
    }

    /// A crash at every byte of a run of appends, a truncate and state writes (the fault-injecting
    /// backend drops every write after the crash point, tearing the crossing one): reopening with
    /// the real backend keeps every append acknowledged before the crash and only whole entries.
    #[tokio::test]
    async fn a_crash_at_every_byte_keeps_acknowledged_entries() {
        use crate::storage::io::{FaultConfig, FaultyIo};
        let run = |io: Arc<dyn FileIo>, dir: PathBuf, faulty: Option<FaultyIo>| async move {
            let (mut store, _) = LogStore::open(io, &dir, DEFAULT_ENTRY_BYTES_MAX).expect("open");
            let mut acknowledged = Vec::new();
            for i in 1..=8u64 {
                let crashed_before = faulty.as_ref().is_some_and(|f| f.crashed());
                store.blocking_append(vec![entry(1, i, format!("entry-{i}").as_bytes())]).await.expect("append");
                if !crashed_before && !faulty.as_ref().is_some_and(|f| f.crashed()) {
                    acknowledged.push(i);
                }
                if i == 4 {
                    store.save_vote(&Vote::new(1, 1)).await.expect("vote");
                    store.save_committed(Some(LogId::new(CommittedLeaderId::new(1, 1), 3))).await.expect("committed");
                }
                if i == 6 {
                    store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 6)).await.expect("truncate");
                    acknowledged.retain(|a| *a < 6);
                    let crashed_before = faulty.as_ref().is_some_and(|f| f.crashed());
                    store.blocking_append(vec![entry(2, 6, b"entry-6-term-2")]).await.expect("append");
                    if !crashed_before && !faulty.as_ref().is_some_and(|f| f.crashed()) {
                        acknowledged.push(6);
                    }
                }
            }
            acknowledged
        };
        let total = {
            let tmp = tempfile::tempdir().expect("tempdir");
            let faulty = FaultyIo::new(std_io(), FaultConfig::default());
            run(Arc::new(faulty.clone()), tmp.path().to_path_buf(), Some(faulty.clone())).await;
            faulty.written_bytes()
        };
        for crash_after in 0..total {
            let tmp = tempfile::tempdir().expect("tempdir");
            let faulty = FaultyIo::new(std_io(), FaultConfig { crash_after_bytes: Some(crash_after), ..FaultConfig::default() });
            let acknowledged = run(Arc::new(faulty.clone()), tmp.path().to_path_buf(), Some(faulty.clone())).await;
            let (mut store, _) = LogStore::open(std_io(), tmp.path(), DEFAULT_ENTRY_BYTES_MAX)
                .unwrap_or_else(|e| panic!("reopen after a crash at byte {crash_after}: {e}"));
            let kept = store.try_get_log_entries(0..).await.expect("read");
            let kept_indexes = indexes(&kept);
            assert_eq!(kept_indexes, (1..=kept.len() as u64).collect::<Vec<_>>(), "a prefix, crash at {crash_after}");
            assert!(acknowledged.iter().all(|i| kept_indexes.contains(i)), "acknowledged {acknowledged:?} kept {kept_indexes:?}, crash at {crash_after}");
            for e in &kept {
                let expected = if e.log_id.index == 6 && e.log_id.leader_id.term == 2 { b"entry-6-term-2".to_vec() } else { format!("entry-{}", e.log_id.index).into_bytes() };
                assert_eq!(e.payload, EntryPayload::Normal(expected), "crash at {crash_after}");
            }
        }
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_lost_vote() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join(STATE_FILE_NAME), b"\x00garbage!").expect("write");
        let err = LogStore::open(std_io(), tmp.path(), DEFAULT_ENTRY_BYTES_MAX).expect_err("corrupt");
        assert!(matches!(err, LogStoreError::CorruptState { .. }), "{err}");
    }

    #[test]
    fn oversized_entries_are_refused_on_encode() {
        let mut out = Vec::new();
        let err = encode_entry(&entry(1, 1, &[0u8; 200]), 100, &mut out).expect_err("too large");
        assert!(matches!(err, LogStoreError::EntryTooLarge { .. }));
    }

    proptest! {
        #[test]
        fn entry_codec_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_entry(&bytes, 256);
        }

        #[test]
        fn entry_codec_never_panics_on_a_mutated_frame(payload in proptest::collection::vec(any::<u8>(), 0..200), flip in any::<usize>(), bit in 0u8..8, cut in any::<usize>()) {
            let mut out = Vec::new();
            encode_entry(&entry(3, 42, &payload), DEFAULT_ENTRY_BYTES_MAX, &mut out).expect("encode");
            let (back, used) = decode_entry(&out, DEFAULT_ENTRY_BYTES_MAX).expect("decode");
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(back, entry(3, 42, &payload));
            let mut bad = out.clone();
            let i = flip % bad.len();
            bad[i] ^= 1 << bit;
            prop_assert!(decode_entry(&bad, DEFAULT_ENTRY_BYTES_MAX).is_err());
            let _ = decode_entry(&out[..cut % out.len()], DEFAULT_ENTRY_BYTES_MAX);
        }
    }
}
