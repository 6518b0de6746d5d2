//! One log segment: the `.log` file plus its `.index`, `.timeindex` and `.txnindex`; append, positional read, offset and timestamp lookup, seal, truncate, delete. It does not decide when to roll or what to retain.

use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};


use super::file_name;
use super::io::{FileIo, IoFile, OpenMode};
use super::offset_index::OffsetIndex;
use super::time_index::TimeIndex;
use super::txn_index::TxnIndex;
use crate::records::batch::{self, BatchHeader, HEADER_SIZE, MIN_BATCH_LENGTH};

/// A run of whole batches located in one segment's `.log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRead {
    /// File position of the first batch.
    pub position: u64,
    /// Bytes of whole batches from `position`.
    pub len: usize,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Bytes read at a time while walking batch headers: a page or two, small enough for the stack.
const SCAN_WINDOW_BYTES: usize = 8192;

/// The page size the writeback and drop hints round to (the kernel acts on whole pages).
const PAGE_BYTES: u64 = 4096;
/// The largest page-cache folio (a PMD, 2 MiB on x86-64 and arm64 with 4 KiB pages). The kernel
/// drops only the folios wholly inside a DONTNEED range, so each drop starts this much before the
/// end of the last one: a large folio across that end was skipped then and is inside now. Without
/// the overlap, 12% of every segment stayed cached on ext4 (kernel 6.18, large folios).
const LARGEST_FOLIO_BYTES: u64 = 2 << 20;

/// One segment. Field visibility is crate-wide so recovery can rebuild it in place.
#[derive(Debug)]
pub struct Segment {
    pub(crate) io: Arc<dyn FileIo>,
    pub(crate) dir: PathBuf,
    pub(crate) base_offset: i64,
    pub(crate) log: Arc<dyn IoFile>,
    pub(crate) size: u64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// Aborted transactions whose abort marker is in this segment.
    pub(crate) txn_index: TxnIndex,
    pub(crate) index_interval_bytes: u64,
    pub(crate) bytes_since_last_index_entry: u64,
    /// Largest batch maxTimestamp in this segment, -1 when none.
    pub(crate) max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (what Kafka's time index names).
    pub(crate) offset_of_max_timestamp: i64,
    /// The max timestamp of the segment's first append, which segment.ms is timed from (Kafka's
    /// rolling-based timestamp); None until known (an empty segment, or not yet read after open).
    pub(crate) rolling_timestamp: Option<i64>,
    /// One past the last offset stored here (== base offset when empty).
    pub(crate) next_offset: i64,
    /// Wall clock at creation/open: the age of a segment without timestamps (for segment.ms and retention).
    pub(crate) created_ms: i64,
    /// Appended since the last fsync.
    pub(crate) dirty: bool,
    /// Disk blocks are reserved up to here (fallocate, KEEP_SIZE): `size` when nothing is. The
    /// file's length stays `size`; only the blocks behind it exist ahead of the writes.
    pub(crate) preallocated_end: u64,
    /// `fjord.log.preallocate.step.bytes` (0: no preallocation) and `segment.bytes`, given by the
    /// log with each append ([`Segment::set_preallocation`]).
    pub(crate) preallocate_step_bytes: u64,
    pub(crate) segment_bytes: u64,
    /// `fjord.log.writeback.step.bytes` (0: off), given by the log with each append, and where
    /// the next writeback starts: everything before it was queued for writeback.
    pub(crate) writeback_step_bytes: u64,
    pub(crate) writeback_from: u64,
    /// `fjord.log.drop.behind.bytes` (0: off), given with the writeback step, and where the next
    /// drop starts: the cached pages before it were dropped (those clean at the time).
    pub(crate) drop_behind_bytes: u64,
    pub(crate) dropped_to: u64,
    /// Where readers of this file have had the disk read ahead for them ([`Segment::readahead_after`]).
    pub(crate) readahead: ReadaheadMarks,
}

/// The part of a segment's state an append changes (see [`Segment::undo_append`]).
#[derive(Debug, Clone, Copy)]
struct TailState {
    rolling_timestamp: Option<i64>,
    size: u64,
    dirty: bool,
    bytes_since_last_index_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    next_offset: i64,
    offset_index_entries: usize,
    time_index_entries: usize,
}

/// Readers of one segment that readahead keeps apart: consumers at this many different places
/// each keep their own window; one more takes the place of the least recent.
const READAHEAD_STREAMS: usize = 4;

/// The ends of the read-ahead windows of the segment's last few readers. Reads happen under the
/// partition's lock, so the atomics only give the shared `&Segment` somewhere to write.
#[derive(Debug, Default)]
pub(crate) struct ReadaheadMarks {
    ends: [AtomicU64; READAHEAD_STREAMS],
    next: AtomicUsize,
}

impl Segment {
    pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(file_name(base_offset, "log"))
    }
    pub fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(file_name(base_offset, "index"))
    }
    pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
        dir.join(file_name(base_offset, "timeindex"))
    }

    /// The segment's three files (log, offset index, time index), with `suffix` appended to each
    /// name (`""` for the live files; `.cleaned` / `.swap` while the cleaner replaces segments).
    pub fn file_paths(dir: &Path, base_offset: i64, suffix: &str) -> [PathBuf; 3] {
        ["log", "index", "timeindex"].map(|ext| dir.join(format!("{}{suffix}", file_name(base_offset, ext))))
    }

    /// Creates an empty segment, replacing any leftover files with the same base offset.
    pub fn create(
        io: Arc<dyn FileIo>,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
    ) -> io::Result<Self> {
        Self::create_with_suffix(io, dir, base_offset, index_interval_bytes, now_ms, "")
    }

    /// As `create`, under file names carrying `suffix` (the cleaner writes `.cleaned` segments
    /// beside the live ones). Such a segment is written, sealed and dropped, never served.
    pub fn create_with_suffix(
        io: Arc<dyn FileIo>,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
        suffix: &str,
    ) -> io::Result<Self> {
        let [log_path, index_path, time_path] = Self::file_paths(dir, base_offset, suffix);
        let log = io.open(&log_path, OpenMode::CreateReadWrite)?;
        log.set_len(0)?;
        let mut offset_index = OffsetIndex::open(io.as_ref(), &index_path, base_offset, true)?;
        offset_index.clear()?;
        let mut time_index = TimeIndex::open(
            io.as_ref(),
            &time_path,
            base_offset,
            true,
        )?;
        time_index.clear()?;
        // A cleaned segment is never served, and its live namesake's index must stay.
        let txn_index = if suffix.is_empty() {
            TxnIndex::remove(io.as_ref(), dir, base_offset)?;
            TxnIndex::load(io.as_ref(), dir, base_offset)?
        } else {
            TxnIndex::default()
        };
        Ok(Self {
            io,
            dir: dir.to_path_buf(),
            base_offset,
            log,
            size: 0,
            offset_index,
            time_index,
            txn_index,
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            next_offset: base_offset,
            created_ms: now_ms,
            dirty: false,
            preallocated_end: 0,
            preallocate_step_bytes: 0,
            segment_bytes: u64::MAX,
            writeback_step_bytes: 0,
            writeback_from: 0,
            drop_behind_bytes: 0,
            dropped_to: 0,
            readahead: ReadaheadMarks::default(),
        })
    }

    /// Opens an existing segment trusting its files (a clean shutdown, or before recovery rebuilds it).
    /// Only the bytes after the last index entry are scanned, to find the next offset. `active` keeps
    /// the indexes in memory for appends; sealed segments look them up on disk.
    pub fn open(
        io: Arc<dyn FileIo>,
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        now_ms: i64,
        active: bool,
    ) -> io::Result<Self> {
        let log = io.open(&Self::log_path(dir, base_offset), OpenMode::ReadWrite)?;
        let size = log.len()?;
        let index_path = Self::index_path(dir, base_offset);
        let mut offset_index = OffsetIndex::open(io.as_ref(), &index_path, base_offset, active)?;
        // An entry past the end of the log can only come from a crash; it would send reads nowhere.
        offset_index.truncate_to_position(size.min(u32::MAX as u64) as u32)?;
        let time_path = Self::time_index_path(dir, base_offset);
        let time_index = TimeIndex::open(io.as_ref(), &time_path, base_offset, active)?;
        let txn_index = TxnIndex::load(io.as_ref(), dir, base_offset)?;
        let mut seg = Self {
            io,
            dir: dir.to_path_buf(),
            base_offset,
            log,
            size,
            offset_index,
            time_index,
            txn_index,
            index_interval_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            next_offset: base_offset,
            created_ms: now_ms,
            dirty: false,
            // Blocks a crash left reserved past the end are not known here; recovery gives them
            // back, and a reservation over them again costs nothing.
            preallocated_end: size,
            preallocate_step_bytes: 0,
            segment_bytes: u64::MAX,
            writeback_step_bytes: 0,
            writeback_from: 0,
            drop_behind_bytes: 0,
            dropped_to: 0,
            readahead: ReadaheadMarks::default(),
        };
        seg.reload_tail_state()?;
        Ok(seg)
    }

    /// Recomputes next offset and max timestamp from the last index entries plus a header scan of
    /// the bytes after them. The time index's last entry carries the max timestamp of everything
    /// before it, because seal and close append it. Entries a crash left pointing at a batch that
    /// is not whole, or at offsets past the log end, are dropped first; indexes that do not name
    /// batches by their last offset (an older Fjord named them by their base offset) are rebuilt.
    pub(crate) fn reload_tail_state(&mut self) -> io::Result<()> {
        self.rolling_timestamp = None;
        while let Some((_, pos)) = self.offset_index.last_entry()? {
            if self.whole_batch_at(pos as u64)?.is_some() {
                break;
            }
            self.offset_index.truncate_to_position(pos)?;
        }
        if self.indexes_name_other_offsets()? {
            tracing::info!(segment = %self.log_path_buf().display(), "rebuilding indexes whose entries do not name batches by their last offset (an older Fjord's, or zero-filled ones Kafka preallocated and a crash left)");
            return self.rebuild_indexes();
        }
        let (_, start) = self.offset_index.lookup(i64::MAX)?;
        let mut end = start as u64;
        let mut next = self.base_offset;
        let mut tail_max = (-1i64, self.base_offset);
        self.scan_headers(start as u64, |pos, h| {
            next = h.last_offset() + 1;
            end = pos + h.total_size() as u64;
            if h.max_timestamp() > tail_max.0 {
                tail_max = (h.max_timestamp(), h.last_offset());
            }
            ControlFlow::Continue(())
        })?;
        self.next_offset = next.max(self.base_offset);
        self.time_index.truncate_to_offset(self.next_offset)?;
        let (mut max_ts, mut max_off) = self.time_index.last_entry()?.unwrap_or((-1, self.base_offset));
        if tail_max.0 > max_ts {
            (max_ts, max_off) = tail_max;
        }
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = max_off;
        self.bytes_since_last_index_entry = end - start as u64;
        Ok(())
    }

    /// The (base, last) offsets of the batch at `position` if it lies whole in the log.
    fn whole_batch_at(&self, position: u64) -> io::Result<Option<(i64, i64)>> {
        let mut found = None;
        self.scan_headers(position, |_, h| {
            found = Some((h.base_offset(), h.last_offset()));
            ControlFlow::Break(())
        })?;
        Ok(found)
    }

    /// Whether the last entry of either index names its batch by anything but the batch's last
    /// offset, as Kafka's entries do. Indexes are written in one style per segment, so the last
    /// entries tell; an open reads that part of the log anyway.
    fn indexes_name_other_offsets(&self) -> io::Result<bool> {
        if let Some((offset, pos)) = self.offset_index.last_entry()?
            && self.whole_batch_at(pos as u64)?.is_some_and(|(_, last)| last != offset)
        {
            return Ok(true);
        }
        if let Some((_, offset)) = self.time_index.last_entry()?
            && let Some((_, raw)) = self.find_batch(offset)?
            && BatchHeader::parse(&raw).is_some_and(|h| h.base_offset() <= offset && h.last_offset() != offset)
        {
            return Ok(true);
        }
        Ok(false)
    }

    /// Rebuilds both indexes from the batch headers (no CRC checks: that is recovery's job), as
    /// appends would have written them; a sealed segment also gets its closing time index entry.
    pub(crate) fn rebuild_indexes(&mut self) -> io::Result<()> {
        let resident = self.offset_index.is_resident();
        self.offset_index.clear()?;
        self.time_index.clear()?;
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.rolling_timestamp = None;
        self.next_offset = self.base_offset;
        let mut batches = Vec::new();
        self.scan_headers(0, |pos, h| {
            batches.push((pos, h.total_size() as u64, h.last_offset(), h.max_timestamp()));
            ControlFlow::Continue(())
        })?;
        for (pos, len, last, max_ts) in batches {
            self.note_appended(pos, len, last, max_ts, last)?;
        }
        if !resident {
            if self.max_timestamp >= 0 {
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            }
            self.offset_index.evict()?;
            self.time_index.evict()?;
        }
        Ok(())
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Whether either index holds as many entries as `index_bytes_max` (segment.index.bytes) has
    /// room for, as Kafka's `isFull`: the segment must roll before its next append.
    pub fn indexes_full(&self, index_bytes_max: u64) -> bool {
        let fits = |entry_size: usize| (index_bytes_max / entry_size as u64) as usize;
        self.offset_index.len() >= fits(OffsetIndex::ENTRY_SIZE) || self.time_index.len() >= fits(TimeIndex::ENTRY_SIZE)
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// One past the last offset in this segment.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// How long the segment has waited for a time roll, as Kafka measures it: from the max
    /// timestamp of its first batch to `incoming_timestamp` (the max timestamp of the append
    /// asking), or from its creation/open to `now_ms` when its first batch carries no timestamp.
    /// The first batch's timestamp is read from the log once after an open.
    pub fn time_waited_for_roll_ms(&mut self, now_ms: i64, incoming_timestamp: i64) -> io::Result<i64> {
        if self.rolling_timestamp.is_none() && self.size > 0 {
            let mut first = None;
            self.scan_headers(0, |_, h| {
                first = Some(h.max_timestamp());
                ControlFlow::Break(())
            })?;
            self.rolling_timestamp = first;
        }
        Ok(self.time_waited_for_roll_cached(now_ms, incoming_timestamp).unwrap_or_else(|| now_ms.saturating_sub(self.created_ms)))
    }

    /// As `time_waited_for_roll_ms` without reading: None when the first batch's timestamp of a
    /// non-empty segment is not in memory yet.
    pub fn time_waited_for_roll_cached(&self, now_ms: i64, incoming_timestamp: i64) -> Option<i64> {
        match self.rolling_timestamp {
            Some(ts) if ts >= 0 => Some(incoming_timestamp.saturating_sub(ts)),
            None if self.size > 0 => None,
            _ => Some(now_ms.saturating_sub(self.created_ms)),
        }
    }
    /// What retention.ms compares with: the largest record timestamp, like Kafka, or the segment's
    /// creation/open time when no batch carried a timestamp.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }
    pub fn log_path_buf(&self) -> PathBuf {
        Self::log_path(&self.dir, self.base_offset)
    }

    /// How far ahead appends reserve disk blocks: `step_bytes` at a time (0: never), never past
    /// `segment_bytes` (the roll size) unless one batch alone is larger.
    pub fn set_preallocation(&mut self, step_bytes: u64, segment_bytes: u64) {
        self.preallocate_step_bytes = step_bytes;
        self.segment_bytes = segment_bytes;
    }

    /// How often appends queue their pages for writeback (`write_behind`), and how far behind
    /// the end written pages leave the page cache; 0: never.
    pub fn set_writeback(&mut self, step_bytes: u64, drop_behind_bytes: u64) {
        self.writeback_step_bytes = step_bytes;
        self.drop_behind_bytes = drop_behind_bytes;
    }

    /// Before an append ending at `end`: if it passes the reserved end, reserves the next step
    /// from there, at least to `end` and at most to segment.bytes (or `end`, when one batch alone
    /// is larger; the log rolls before a segment would grow past segment.bytes otherwise). Fewer,
    /// larger extents for a file that grows by small appends, and the space is claimed before the
    /// write rather than by it. A failure (ENOSPC) is a warning, never the append's error: the
    /// write itself reports a real lack of space. The failed step counts as done, so a full disk
    /// costs one warning per step, not one per append.
    fn reserve_ahead(&mut self, end: u64) {
        if self.preallocate_step_bytes == 0 || end <= self.preallocated_end {
            return;
        }
        let from = self.preallocated_end.max(self.size);
        let to = from.saturating_add(self.preallocate_step_bytes).max(end).min(self.segment_bytes.max(end));
        if let Err(e) = self.log.preallocate(from, to - from) {
            // A full disk fails the write that follows too, and that failure is what gets
            // reported (rate-limited), so it is not logged here once per append as well.
            if super::io::is_out_of_space(&e) {
                tracing::debug!(segment = %self.log_path_buf().display(), error = %e, "cannot preallocate segment blocks");
                self.preallocated_end = to;
                return;
            }
            tracing::warn!(segment = %self.log_path_buf().display(), from, bytes = to - from, error = %e, "cannot preallocate segment blocks; appending without");
        }
        self.preallocated_end = to;
    }

    /// After an append: once `writeback_step_bytes` of whole pages were appended since the last
    /// time, queues them for writeback. Without this, a segment's data stays dirty until the
    /// kernel's flusher (30 s) or the fsync after its roll; that fsync then writes the whole
    /// segment, and on ext4 every append that grows a file waits for the journal commit the
    /// fsync forces (appends stalled 15-150 ms at the p99 with 64 MiB segments). A hint: a
    /// failure is logged at debug and appends go on.
    fn write_behind(&mut self) {
        let end = self.size / PAGE_BYTES * PAGE_BYTES;
        if self.writeback_step_bytes == 0 || end < self.writeback_from.saturating_add(self.writeback_step_bytes) {
            return;
        }
        if let Err(e) = self.log.start_writeback(self.writeback_from, end - self.writeback_from) {
            tracing::debug!(segment = %self.log_path_buf().display(), error = %e, "cannot start writeback");
        }
        self.writeback_from = end;
        self.drop_behind(end);
    }

    /// After queueing writeback up to `end`: drops the cached pages more than
    /// `drop_behind_bytes` behind it. They were queued for writeback when the end was at least
    /// that much closer, so most are clean by now and go back to the free lists, where the next
    /// appends find them (on a VM that reclaims free memory, a page the guest has not used
    /// lately faults on the host first: page-cache writes measured 2x faster into reused
    /// pages). Pages still dirty stay cached. A hint: a failure is logged at debug.
    fn drop_behind(&mut self, end: u64) {
        let to = end.saturating_sub(self.drop_behind_bytes) / PAGE_BYTES * PAGE_BYTES;
        if self.drop_behind_bytes == 0 || to <= self.dropped_to {
            return;
        }
        self.drop_cached_to(to, 0);
    }

    /// Drops every cached page of this sealed segment that `drop_behind` left (its last window),
    /// for `PartitionLog::drop_sealed_tail`. Skipped when the open-files budget has closed the
    /// file: reopening it only to drop pages would cost more than it saves.
    pub(crate) fn drop_cached_tail(&mut self) {
        let end = self.size.div_ceil(PAGE_BYTES) * PAGE_BYTES;
        if end <= self.dropped_to || !self.log.is_open() {
            return;
        }
        // The last folio may reach beyond the end of the data.
        self.drop_cached_to(end, LARGEST_FOLIO_BYTES);
    }

    /// Drops the cached pages from a folio before `dropped_to` (a large folio across it was
    /// skipped by the last drop) up to `to`, and `past` bytes beyond, then moves `dropped_to`
    /// there. A hint: a failure is logged at debug.
    fn drop_cached_to(&mut self, to: u64, past: u64) {
        let from = self.dropped_to.saturating_sub(LARGEST_FOLIO_BYTES);
        if let Err(e) = self.log.drop_cached(from, to + past - from) {
            tracing::debug!(segment = %self.log_path_buf().display(), error = %e, "cannot drop cached pages");
        }
        self.dropped_to = to;
    }

    /// Gives back the blocks reserved past the end (ftruncate to the current size frees them),
    /// so a segment that is no longer appended to holds only its data. Housekeeping like the
    /// reservation: a failure is a warning (the blocks stay until recovery or deletion), not
    /// the failure of the roll or close that asked for it.
    pub(crate) fn release_preallocation(&mut self) {
        if self.preallocated_end > self.size
            && let Err(e) = self.log.set_len(self.size)
        {
            tracing::warn!(segment = %self.log_path_buf().display(), error = %e, "cannot give back preallocated segment blocks");
        }
        self.preallocated_end = self.size;
    }

    /// Appends already validated, offset-assigned batches with one positional write.
    pub fn append(
        &mut self,
        batches: &[u8],
        first_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        offset_of_max_timestamp: i64,
    ) -> io::Result<()> {
        self.append_parts(batches, &[], first_offset, last_offset, max_timestamp, offset_of_max_timestamp)
    }

    /// As `append`, for batches given in two pieces written back to back (a rewritten header and
    /// the untouched rest, so the records are not copied to join them).
    ///
    /// All or nothing: a failed write of the log or of an index page (ENOSPC, EIO) undoes the
    /// append before the error returns. The log file is cut back to where the batches began and
    /// the index entries they added are dropped, in memory and on disk, so no rejected batch can
    /// later be read, recovered or shadow the batches that reuse its offsets.
    pub fn append_parts(
        &mut self,
        head: &[u8],
        tail: &[u8],
        first_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        offset_of_max_timestamp: i64,
    ) -> io::Result<()> {
        debug_assert!(first_offset >= self.next_offset, "offsets must grow");
        let before = self.tail_state();
        let position = self.size;
        let len = (head.len() + tail.len()) as u64;
        self.reserve_ahead(position + len);
        let written = if tail.is_empty() { self.log.write_all_at(head, position) } else { self.log.write_all_vectored_at(&[head, tail], position) };
        if let Err(e) = written {
            return Err(self.undo_append(&before, e));
        }
        self.size += len;
        self.dirty = true;
        if let Err(e) = self.note_appended(position, len, last_offset, max_timestamp, offset_of_max_timestamp) {
            return Err(self.undo_append(&before, e));
        }
        self.write_behind();
        Ok(())
    }

    /// Whether an append of `len` bytes would do more than plain page-cache writes (the log's and,
    /// when an entry is due, the two indexes' tail pages, which the last entry wrote) and its
    /// bookkeeping in memory: reserve blocks (`reserve_ahead`), queue writeback or drop pages
    /// (`write_behind`), go through the io_uring thread (a bulk write), or reopen a file the
    /// open-files budget closed. Checked before a produce is appended on an async worker
    /// (`PartitionLog::append_would_wait`); any of these sends it to a handler thread.
    pub(crate) fn append_would_wait(&self, len: u64) -> bool {
        let end = self.size + len;
        let reserves = self.preallocate_step_bytes != 0 && end > self.preallocated_end;
        let indexes_closed = self.bytes_since_last_index_entry > self.index_interval_bytes && !(self.offset_index.file().is_open() && self.time_index.file().is_open());
        let writes_back = self.writeback_step_bytes != 0 && end / PAGE_BYTES * PAGE_BYTES >= self.writeback_from.saturating_add(self.writeback_step_bytes);
        reserves || indexes_closed || writes_back || len >= super::io::NO_WAIT_WRITE_MAX_BYTES as u64 || !self.log.is_open()
    }

    /// What an append changes, taken before it so a failed one can be undone.
    fn tail_state(&self) -> TailState {
        TailState {
            rolling_timestamp: self.rolling_timestamp,
            size: self.size,
            dirty: self.dirty,
            bytes_since_last_index_entry: self.bytes_since_last_index_entry,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            next_offset: self.next_offset,
            offset_index_entries: self.offset_index.len(),
            time_index_entries: self.time_index.len(),
        }
    }

    /// Puts the segment back as `before` says: the log file cut to its old size (which also gives
    /// back blocks reserved past it: a full disk gets its space back), the index entries added
    /// since dropped. Returns the error to report for the append that failed with `cause`:
    /// `cause` itself when the undo worked, else an error that is not ENOSPC (the files' state
    /// is unknown, so the log dir goes offline: see `log_dir_failure`). Cutting needs no free
    /// space, but may fail all the same (EIO).
    fn undo_append(&mut self, before: &TailState, cause: io::Error) -> io::Error {
        let mut undo_failed = None;
        if let Err(e) = self.log.set_len(before.size) {
            tracing::warn!(segment = %self.log_path_buf().display(), error = %e, "cannot cut a failed append back out of the log");
            undo_failed = Some(e);
        }
        self.size = before.size;
        self.rolling_timestamp = before.rolling_timestamp;
        self.preallocated_end = before.size;
        self.dirty = before.dirty;
        self.bytes_since_last_index_entry = before.bytes_since_last_index_entry;
        self.max_timestamp = before.max_timestamp;
        self.offset_of_max_timestamp = before.offset_of_max_timestamp;
        self.next_offset = before.next_offset;
        let cut = self.offset_index.truncate_entries(before.offset_index_entries).and_then(|()| self.time_index.truncate_entries(before.time_index_entries));
        if let Err(e) = cut {
            tracing::warn!(segment = %self.log_path_buf().display(), error = %e, "cannot drop the index entries of a failed append");
            undo_failed.get_or_insert(e);
        }
        match undo_failed {
            None => cause,
            Some(undo) => io::Error::other(format!("{cause}; undoing the append failed too: {undo}")),
        }
    }

    /// Index bookkeeping shared by append and recovery, entry for entry what Kafka writes: once
    /// more than index.interval.bytes were appended since the last entry, the append gets an offset
    /// index entry naming its **last** offset and the position of its first byte, and the time index
    /// gets the largest timestamp so far with the last offset of the batch holding it (only when that
    /// timestamp grew). `offset_of_max_timestamp` is that last offset. The entries go to the index
    /// files at once (page cache, not fsynced), so a crash or a copy of the directory sees them, as
    /// it sees Kafka's memory-mapped indexes.
    pub(crate) fn note_appended(
        &mut self,
        position: u64,
        len: u64,
        last_offset: i64,
        max_timestamp: i64,
        offset_of_max_timestamp: i64,
    ) -> io::Result<()> {
        if position == 0 {
            self.rolling_timestamp = Some(max_timestamp);
        }
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = offset_of_max_timestamp;
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            self.offset_index.append(last_offset, position as u32)?;
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            self.offset_index.write_pending()?;
            self.time_index.write_pending()?;
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += len;
        self.next_offset = last_offset + 1;
        Ok(())
    }

    /// The bookkeeping of `note_appended` without index entries (recovery on a full disk).
    pub(crate) fn note_unindexed(&mut self, last_offset: i64, max_timestamp: i64, offset_of_max_timestamp: i64) {
        self.rolling_timestamp.get_or_insert(max_timestamp);
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = offset_of_max_timestamp;
        }
        self.next_offset = last_offset + 1;
    }

    /// Raw read of up to `max_len` bytes at `position` (clamped to the segment size).
    pub fn read(&self, position: u64, max_len: usize) -> io::Result<Vec<u8>> {
        let len = (self.size.saturating_sub(position)).min(max_len as u64) as usize;
        let mut buf = vec![0u8; len];
        let got = self.log.read_full_at(&mut buf, position)?;
        buf.truncate(got);
        Ok(buf)
    }

    /// Visits batch headers from `position` until the callback breaks or the framing ends; records
    /// are never parsed. Headers are read through one window of [`SCAN_WINDOW_BYTES`] on the stack:
    /// many small batches cost one pread per window rather than one per batch, and a large batch
    /// costs one short read however large it is.
    pub(crate) fn scan_headers(
        &self,
        mut position: u64,
        mut f: impl FnMut(u64, BatchHeader<'_>) -> ControlFlow<()>,
    ) -> io::Result<()> {
        let mut window = [0u8; SCAN_WINDOW_BYTES];
        // The window holds the file's bytes [start, start + filled).
        let (mut start, mut filled) = (0u64, 0usize);
        while position + HEADER_SIZE as u64 <= self.size {
            if position < start || position + HEADER_SIZE as u64 > start + filled as u64 {
                let want = (self.size - position).min(SCAN_WINDOW_BYTES as u64) as usize;
                filled = self.log.read_full_at(&mut window[..want], position)?;
                start = position;
                if filled < HEADER_SIZE {
                    break;
                }
            }
            let at = (position - start) as usize;
            let Some(h) = BatchHeader::parse(&window[at..at + HEADER_SIZE]) else {
                break;
            };
            if h.batch_length() < MIN_BATCH_LENGTH || position + h.total_size() as u64 > self.size {
                break;
            }
            if f(position, h).is_break() {
                break;
            }
            position += h.total_size() as u64;
        }
        Ok(())
    }

    /// Position and header of the first batch whose last offset is >= `offset` (the batch containing
    /// it, or the next one if the offset is missing). Index lookup, then a short header scan.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, [u8; HEADER_SIZE])>> {
        let (_, start) = self.offset_index.lookup(offset)?;
        let mut found = None;
        self.scan_headers(start as u64, |pos, h| {
            if h.last_offset() >= offset {
                let mut raw = [0u8; HEADER_SIZE];
                raw.copy_from_slice(&h.bytes()[..HEADER_SIZE]);
                found = Some((pos, raw));
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found)
    }

    /// Locates whole batches starting with the one containing `offset`: at most `max_bytes` unless
    /// the first batch alone is larger (it is still returned whole), and only batches whose last
    /// offset is below `upper_bound`. Reads batch headers only; `None` when nothing qualifies.
    pub fn locate_batches(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> io::Result<Option<SegmentRead>> {
        // One header walk from the index entry: batches before the one holding `offset` are
        // skipped, then whole batches are taken while they fit and stay below the bound.
        let (_, start) = self.offset_index.lookup(offset)?;
        let mut found: Option<SegmentRead> = None;
        self.scan_headers(start as u64, |pos, h| {
            if h.last_offset() < offset {
                return ControlFlow::Continue(());
            }
            let rel = found.map_or(0, |r| (pos - r.position) as usize);
            let fits = rel + h.total_size() <= max_bytes || rel == 0;
            if !fits || h.last_offset() >= upper_bound {
                return ControlFlow::Break(());
            }
            let r = found.get_or_insert(SegmentRead {
                position: pos,
                len: 0,
                first_offset: h.base_offset(),
                last_offset: h.last_offset(),
            });
            r.len = rel + h.total_size();
            r.last_offset = h.last_offset();
            ControlFlow::Continue(())
        })?;
        Ok(found)
    }

    /// The part of the file to read ahead for a reader whose read ends at `end`, if any: up to
    /// `window_bytes` past `end`, within the file. A reader continues the window a previous read
    /// asked for when `end` lies inside it; the rest of its window is asked for once at least half
    /// of it is missing (or the file ends inside it), so a reader streaming through the file asks
    /// every half window. A reader
    /// with no window yet gets a quarter of one (a reader jumping around costs little disk), and
    /// one near the end of the data (a consumer tailing the log, whose pages were just written)
    /// gets nothing and takes no place among the remembered windows.
    pub fn readahead_after(&self, end: u64, window_bytes: u64) -> Option<(u64, u64)> {
        let limit = self.size;
        if window_bytes == 0 || end >= limit {
            return None;
        }
        let marks = &self.readahead;
        let ahead = end..=end.saturating_add(window_bytes);
        if let Some(m) = marks.ends.iter().find(|m| ahead.contains(&m.load(Ordering::Relaxed))) {
            let asked_to = m.load(Ordering::Relaxed);
            let want_to = end.saturating_add(window_bytes).min(limit);
            // Less than half missing: later, unless the rest of the file is all that is left.
            if want_to <= asked_to || (want_to - asked_to < window_bytes / 2 && want_to < limit) {
                return None;
            }
            m.store(want_to, Ordering::Relaxed);
            return Some((asked_to, want_to - asked_to));
        }
        let first_to = end.saturating_add(window_bytes / 4).min(limit);
        if first_to - end < window_bytes / 8 {
            return None;
        }
        let i = marks.next.fetch_add(1, Ordering::Relaxed) % READAHEAD_STREAMS;
        marks.ends[i].store(first_to, Ordering::Relaxed);
        Some((end, first_to - end))
    }

    /// The open `.log` file, shared: a located range stays readable after the segment is deleted.
    pub fn log_file(&self) -> &Arc<dyn IoFile> {
        &self.log
    }

    /// The first record with timestamp >= `target` in this segment, as (offset, timestamp). Offsets below
    /// `min_offset` are skipped (the log start offset may sit inside the first segment).
    pub fn find_offset_by_timestamp(
        &self,
        target: i64,
        min_offset: i64,
    ) -> io::Result<Option<(i64, i64)>> {
        if self.max_timestamp < target {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .lookup(target)?
            .map_or(self.base_offset, |(_, off)| off)
            .max(min_offset);
        let (_, start) = self.offset_index.lookup(start_offset)?;
        let mut found: Option<(u64, usize)> = None;
        self.scan_headers(start as u64, |pos, h| {
            if h.last_offset() >= start_offset && h.max_timestamp() >= target {
                found = Some((pos, h.total_size()));
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        let Some((pos, size)) = found else {
            return Ok(None);
        };
        let bytes = self.read(pos, size)?;
        Ok(first_record_at_or_after(&bytes, target, min_offset))
    }

    /// fsync the log and write + fsync the indexes.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.dirty {
            self.log.sync_data()?;
            self.dirty = false;
        }
        self.offset_index.sync()?;
        self.txn_index.sync(self.io.as_ref())?;
        self.time_index.sync()
    }

    /// Called when the segment stops being active (roll) or at clean close: records the final max
    /// timestamp in the time index so a later open can trust its last entry, then flushes.
    pub fn seal(&mut self) -> io::Result<()> {
        self.seal_unsynced()?;
        self.release_preallocation();
        self.flush()
    }

    /// As `seal` but nothing is fsynced except an aborted-transaction index that changed: the
    /// index entries are written, and the log data and the two indexes are left to a later fsync
    /// of `unsynced_files` off the partition lock (a roll's flush), as Kafka's roll leaves them
    /// to its scheduler. A roll then costs page-cache writes, not fsyncs inside an append.
    /// Until that fsync the recovery point stays below this segment, and recovery rebuilds the
    /// indexes of every segment from the recovery point on. Blocks reserved past the end stay
    /// until `release_preallocation`: giving them back is an ftruncate that waits for the
    /// filesystem's journal, which a roll measured at 7 ms of its 9.
    pub fn seal_unsynced(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
        }
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        self.txn_index.sync(self.io.as_ref())
    }

    /// The files a flush of this segment syncs: log, offset index, time index.
    pub fn unsynced_files(&self) -> [Arc<dyn IoFile>; 3] {
        [self.log.clone(), self.offset_index.file().clone(), self.time_index.file().clone()]
    }

    /// fsync of the two indexes (their pending entries written first).
    pub fn sync_indexes(&mut self) -> io::Result<()> {
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Whether log data was appended since the last fsync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Records that the log data was fsynced by someone holding its file (the roll flush).
    pub fn mark_synced(&mut self) {
        self.dirty = false;
    }

    /// Active segments keep their indexes in memory for appends; sealed ones drop them (lookups then
    /// read the index files), so memory does not grow with the amount of log kept.
    pub fn set_active(&mut self, active: bool) -> io::Result<()> {
        if active {
            self.offset_index.make_resident()?;
            self.time_index.make_resident()
        } else {
            self.offset_index.evict()?;
            self.time_index.evict()
        }
    }

    /// Removes every batch whose last offset is >= `offset` (a batch containing `offset` goes whole).
    /// Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<u64> {
        let Some((cut, raw)) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let cut_base = BatchHeader::parse(&raw)
            .map_or(offset, |h| h.base_offset())
            .min(offset);
        let removed = self.size - cut;
        self.log.set_len(cut)?;
        self.size = cut;
        self.preallocated_end = cut;
        self.writeback_from = self.writeback_from.min(cut);
        self.dropped_to = self.dropped_to.min(cut);
        self.dirty = true;
        self.offset_index
            .truncate_to_position(cut.min(u32::MAX as u64) as u32)?;
        // Time index entries name batch base offsets; anything at or past the cut batch is gone.
        self.time_index.truncate_to_offset(cut_base)?;
        self.txn_index.truncate_to(self.io.as_ref(), cut_base)?;
        self.reload_tail_state()?;
        Ok(removed)
    }

    /// Best effort, for a segment whose creation failed halfway: removes whichever of its files
    /// exist (a full disk may have let the `.log` be made and not the indexes).
    pub(crate) fn remove_files(io: &dyn FileIo, dir: &Path, base_offset: i64) {
        let [log, index, time] = Self::file_paths(dir, base_offset, "");
        for p in [log, index, time, TxnIndex::path(dir, base_offset)] {
            match io.remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(file = %p.display(), error = %e, "cannot remove the file of a segment that failed to be created");
                }
                _ => {}
            }
        }
    }

    /// Deletes the segment's files. Index files may be missing (they are rebuilt when absent).
    pub fn delete(self) -> io::Result<()> {
        let paths = [
            Self::log_path(&self.dir, self.base_offset),
            Self::index_path(&self.dir, self.base_offset),
            Self::time_index_path(&self.dir, self.base_offset),
            TxnIndex::path(&self.dir, self.base_offset),
        ];
        let fs = self.io.clone();
        drop(self);
        for p in paths {
            match fs.remove_file(&p) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }
}

/// Decodes one whole batch (decompressing if needed) and returns the first record with timestamp >=
/// `target` and offset >= `min_offset`. Kafka answers ListOffsets with the record's offset, not the
/// batch's, so this is the one place storage decodes records. LogAppendTime batches carry one time.
pub(crate) fn first_record_at_or_after(
    bytes: &[u8],
    target: i64,
    min_offset: i64,
) -> Option<(i64, i64)> {
    let h = BatchHeader::parse(bytes)?;
    if h.timestamp_type() == batch::TimestampType::LogAppendTime {
        return (h.max_timestamp() >= target)
            .then(|| (h.base_offset().max(min_offset), h.max_timestamp()));
    }
    // The records are walked through a small buffer, never decoded whole: a stored compressed
    // batch may decompress to far more than it takes on disk.
    let (base_offset, base_timestamp) = (h.base_offset(), h.base_timestamp());
    let mut found = None;
    let walked = crate::records::walk::visit_records(bytes, &mut |r| {
        let (offset, timestamp) = (base_offset + r.offset_delta, base_timestamp + r.timestamp_delta);
        if timestamp >= target && offset >= min_offset {
            found = Some((offset, timestamp));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match walked {
        Ok(_) => found,
        Err(e) => {
            // A batch that cannot be walked still bounds the answer: fall back to the batch,
            // which is what Kafka did before KIP-734.
            tracing::warn!(error = ?e, "cannot read a batch's records for a timestamp lookup; answering with its base offset");
            Some((h.base_offset().max(min_offset), h.max_timestamp()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::test_support::{batch_with, simple_batch};
    use crate::records::validate::assign_offsets;
    use kafka_protocol::records::Compression;


    // The same suite runs on the std and the io_uring backend.
    crate::storage::io::on_each_backend! {
    /// Appends `n` batches of 2 records with growing timestamps; returns the stored bytes per batch.
    fn fill(seg: &mut Segment, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..n {
            let ts = 1_000 + i as i64 * 10;
            let mut b = batch_with(2, Some(&[ts, ts + 5]), Compression::None, None);
            let base = seg.next_offset();
            let last = assign_offsets(&mut b, base);
            seg.append(&b, base, last, ts + 5, last).expect("append");
            out.push(b);
        }
        out
    }

    /// Appends `n` batches of 3 records, the middle one carrying the batch's max timestamp (so
    /// lookups have a start, a middle and an end per batch); returns (position, base, last) each.
    fn fill3(seg: &mut Segment, n: usize) -> Vec<(u64, i64, i64)> {
        let mut out = Vec::new();
        for i in 0..n {
            let ts = 1_000 + i as i64 * 10;
            let mut b = batch_with(3, Some(&[ts, ts + 5, ts + 2]), Compression::None, None);
            let base = seg.next_offset();
            let last = assign_offsets(&mut b, base);
            out.push((seg.size(), base, last));
            seg.append(&b, base, last, ts + 5, last).expect("append");
        }
        out
    }

    /// Every entry as Kafka writes it: an offset index entry names the last offset of the batch
    /// at its position; a time index entry names the last offset of a batch whose max timestamp
    /// is the entry's, the largest up to there.
    fn assert_kafka_entries(seg: &Segment, batches: &[(u64, i64, i64)]) {
        for i in 0..seg.offset_index.len() {
            let (rel, pos) = seg.offset_index.raw(i).expect("entry");
            let b = batches.iter().find(|b| b.0 == pos as u64).expect("entry at a batch start");
            assert_eq!(seg.base_offset + rel as i64, b.2, "offset index entry {i} names the batch's last offset");
        }
        for i in 0..seg.time_index.len() {
            let (ts, rel) = seg.time_index.raw(i).expect("entry");
            let off = seg.base_offset + rel as i64;
            let j = batches.iter().position(|b| b.2 == off).expect("time index entry names a batch's last offset");
            assert_eq!(ts, 1_000 + j as i64 * 10 + 5, "time index entry {i}");
        }
    }

    #[test]
    fn entries_name_last_offsets_and_lookups_find_starts_middles_and_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 100, 500, 0).expect("create");
        let batches = fill3(&mut seg, 60);
        let batch_len = batches[1].0 - batches[0].0;
        assert!(500 / batch_len >= 3, "several batches per index interval ({batch_len} bytes each)");
        assert!(seg.offset_index.len() >= 8 && seg.time_index.len() >= 8);
        assert_kafka_entries(&seg, &batches);
        // The first entry comes once more than index.interval.bytes precede a batch, as Kafka's.
        let first = batches.iter().position(|b| b.0 > 500).expect("a batch past the interval");
        assert_eq!(seg.offset_index.raw(0).expect("entry"), ((batches[first].2 - 100) as u32, batches[first].0 as u32));
        for &(pos, base, last) in &batches {
            for off in [base, base + 1, last] {
                let (at, raw) = seg.find_batch(off).expect("find").expect("some");
                assert_eq!((at, BatchHeader::parse(&raw).expect("h").base_offset()), (pos, base), "offset {off}");
                let r = seg.locate_batches(off, 1, i64::MAX).expect("locate").expect("some");
                assert_eq!((r.position, r.first_offset, r.last_offset), (pos, base, last), "offset {off}");
            }
            // Timestamps: the batch's first record (ts), then one only its middle record reaches.
            let ts = 1_000 + (base - 100) / 3 * 10;
            assert_eq!(seg.find_offset_by_timestamp(ts, 0).expect("ts"), Some((base, ts)));
            assert_eq!(seg.find_offset_by_timestamp(ts + 3, 0).expect("ts"), Some((base + 1, ts + 5)));
        }
        assert!(seg.find_batch(batches.last().expect("b").2 + 1).expect("find").is_none());
    }

    #[test]
    fn truncation_at_a_batch_start_middle_or_end_keeps_exactly_the_entries_of_the_batches_before() {
        for pick in [0i64, 1, 2] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut seg = Segment::create(io(), dir.path(), 0, 500, 0).expect("create");
            let batches = fill3(&mut seg, 40);
            // Cut inside the batch of the 9th offset index entry: at its start, middle or end.
            let (rel, pos) = seg.offset_index.raw(8).expect("entry");
            let cut = batches.iter().find(|b| b.0 == pos as u64).expect("batch");
            assert_eq!(cut.2, rel as i64);
            seg.truncate_to(cut.1 + pick).expect("truncate");
            let kept: Vec<_> = batches.iter().copied().filter(|b| b.0 < cut.0).collect();
            assert_eq!((seg.size(), seg.next_offset()), (cut.0, cut.1), "offset {}", cut.1 + pick);
            assert_eq!(seg.offset_index.len(), 8);
            assert!(seg.time_index.last_entry().expect("io").is_some_and(|(_, off)| off < cut.1));
            assert_kafka_entries(&seg, &kept);
            // Appends after the cut index as a fresh segment would.
            let more = fill3(&mut seg, 10);
            let all: Vec<_> = kept.iter().chain(&more).copied().collect();
            assert_kafka_entries(&seg, &all);
            for &(pos, base, last) in &all {
                assert_eq!(seg.find_batch(base + 1).expect("find").map(|f| f.0), Some(pos), "offsets {base}..={last}");
            }
        }
    }

    #[test]
    fn entries_reach_the_index_files_as_data_arrives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 300, 0).expect("create");
        let batches = fill3(&mut seg, 30);
        let on_disk = |p: PathBuf| std::fs::metadata(p).expect("meta").len() as usize;
        assert!(seg.offset_index.len() > 5);
        assert_eq!(on_disk(Segment::index_path(dir.path(), 0)), seg.offset_index.len() * OffsetIndex::ENTRY_SIZE);
        assert_eq!(on_disk(Segment::time_index_path(dir.path(), 0)), seg.time_index.len() * TimeIndex::ENTRY_SIZE);
        // What a copy of the directory taken now holds reads back as the live segment does.
        drop(seg);
        let seg = Segment::open(io(), dir.path(), 0, 300, 0, false).expect("open");
        assert_kafka_entries(&seg, &batches);
        assert_eq!(seg.next_offset(), batches.last().expect("b").2 + 1);
    }

    #[test]
    fn entries_past_a_torn_tail_are_dropped_and_recovery_rebuilds_the_same_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 300, 0).expect("create");
        let batches = fill3(&mut seg, 30);
        let (_, last_pos) = seg.offset_index.last_entry().expect("io").expect("entry");
        let entries = seg.offset_index.len();
        drop(seg);
        // A crash tore the log inside the last indexed batch: its entry (and a time index entry
        // naming an offset now gone) point into or past the torn tail.
        let cut = last_pos as u64 + 20;
        std::fs::OpenOptions::new().write(true).open(Segment::log_path(dir.path(), 0)).expect("open").set_len(cut).expect("cut");
        let kept: Vec<_> = batches.iter().copied().filter(|b| b.0 < last_pos as u64).collect();
        let seg = Segment::open(io(), dir.path(), 0, 300, 0, false).expect("open");
        assert_eq!(seg.offset_index.len(), entries - 1);
        assert_eq!(seg.next_offset(), kept.last().expect("b").2 + 1);
        assert!(seg.time_index.last_entry().expect("io").is_none_or(|(_, off)| off < seg.next_offset()));
        assert_kafka_entries(&seg, &kept);
        let mut seg = seg;
        let r = crate::storage::recovery::recover_segment(&mut seg).expect("recover");
        assert_eq!((r.valid_bytes, r.truncated_bytes), (last_pos as u64, cut - last_pos as u64));
        assert_eq!(seg.next_offset(), kept.last().expect("b").2 + 1);
        assert_eq!(seg.offset_index.len(), entries - 1);
        assert_kafka_entries(&seg, &kept);
        for &(pos, base, last) in &kept {
            assert_eq!(seg.find_batch(last).expect("find").map(|f| f.0), Some(pos), "offset {base}..={last}");
        }
    }

    #[test]
    fn indexes_naming_base_offsets_are_rebuilt_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 300, 0).expect("create");
        let batches = fill3(&mut seg, 30);
        seg.seal().expect("seal");
        let (kafka_index, kafka_time) = (
            std::fs::read(Segment::index_path(dir.path(), 0)).expect("read"),
            std::fs::read(Segment::time_index_path(dir.path(), 0)).expect("read"),
        );
        drop(seg);
        // What an older Fjord wrote: the same entries naming each batch by its base offset.
        let by_base = |bytes: &[u8], size: usize, at: usize| -> Vec<u8> {
            let mut out = bytes.to_vec();
            for e in out.chunks_mut(size) {
                let rel = u32::from_be_bytes(e[at..at + 4].try_into().expect("4 bytes")) as i64;
                let b = batches.iter().find(|b| b.2 == rel).expect("a batch's last offset");
                e[at..at + 4].copy_from_slice(&(b.1 as u32).to_be_bytes());
            }
            out
        };
        std::fs::write(Segment::index_path(dir.path(), 0), by_base(&kafka_index, 8, 0)).expect("write");
        std::fs::write(Segment::time_index_path(dir.path(), 0), by_base(&kafka_time, 12, 8)).expect("write");
        for active in [false, true] {
            let seg = Segment::open(io(), dir.path(), 0, 300, 0, active).expect("open");
            assert_eq!(seg.next_offset(), batches.last().expect("b").2 + 1);
            assert_eq!(seg.max_timestamp(), 1_000 + 29 * 10 + 5);
            drop(seg);
            assert_eq!(std::fs::read(Segment::index_path(dir.path(), 0)).expect("read"), kafka_index, "active: {active}");
            if !active {
                assert_eq!(std::fs::read(Segment::time_index_path(dir.path(), 0)).expect("read"), kafka_time);
            }
        }
        // Only the time index in the old style (a segment too small for offset index entries).
        let small = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), small.path(), 0, 4096, 0).expect("create");
        let batches = fill3(&mut seg, 3);
        seg.seal().expect("seal");
        drop(seg);
        let mut e = 1_025i64.to_be_bytes().to_vec();
        e.extend((batches[2].1 as u32).to_be_bytes());
        std::fs::write(Segment::time_index_path(small.path(), 0), &e).expect("write");
        let seg = Segment::open(io(), small.path(), 0, 4096, 0, false).expect("open");
        assert_eq!(seg.time_index.last_entry().expect("io"), Some((1_025, batches[2].2)));
    }

    #[test]
    fn index_entries_are_sparse_and_lookups_land_on_the_containing_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 100, 300, 0).expect("create");
        let batches = fill(&mut seg, 30);
        let batch_len = batches[0].len() as u64;
        assert!(seg.offset_index.len() > 2);
        assert!(
            (seg.offset_index.len() as u64) < seg.size() / batch_len,
            "index is sparse"
        );
        for off in 100..160 {
            let (pos, raw) = seg.find_batch(off).expect("find").expect("some");
            let h = BatchHeader::parse(&raw).expect("h");
            assert!(h.base_offset() <= off && off <= h.last_offset());
            assert_eq!(pos, (off - 100) as u64 / 2 * batch_len);
        }
        assert!(seg.find_batch(160).expect("find").is_none());
    }

    #[test]
    fn reopen_recovers_next_offset_and_max_timestamp_after_seal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 300, 0).expect("create");
        fill(&mut seg, 25);
        seg.seal().expect("seal");
        let (next, max_ts, size) = (seg.next_offset(), seg.max_timestamp(), seg.size());
        drop(seg);
        let seg = Segment::open(io(), dir.path(), 0, 300, 0, false).expect("open");
        assert_eq!(
            (seg.next_offset(), seg.max_timestamp(), seg.size()),
            (next, max_ts, size)
        );
        assert_eq!(seg.max_timestamp(), 1_245);
    }

    #[test]
    fn an_index_entry_past_the_log_end_is_dropped_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 100, 0).expect("create");
        fill(&mut seg, 10);
        seg.flush().expect("flush");
        let entries = seg.offset_index.len();
        let cut = seg.offset_index.last_entry().expect("io").expect("entry").1 as u64;
        drop(seg);
        std::fs::OpenOptions::new()
            .write(true)
            .open(Segment::log_path(dir.path(), 0))
            .expect("open")
            .set_len(cut)
            .expect("truncate");
        let seg = Segment::open(io(), dir.path(), 0, 100, 0, false).expect("open");
        assert_eq!(seg.offset_index.len(), entries - 1);
        assert_eq!(seg.size(), cut);
        assert!(
            seg.next_offset() > 0
                && seg
                    .find_batch(seg.next_offset() - 1)
                    .expect("find")
                    .is_some()
        );
    }

    #[test]
    fn timestamp_lookup_respects_a_minimum_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 100, 0).expect("create");
        fill(&mut seg, 10);
        assert_eq!(
            seg.find_offset_by_timestamp(1_000, 0).expect("ts"),
            Some((0, 1_000))
        );
        assert_eq!(
            seg.find_offset_by_timestamp(1_000, 3).expect("ts"),
            Some((3, 1_015))
        );
        assert_eq!(
            seg.find_offset_by_timestamp(1_041, 0).expect("ts"),
            Some((9, 1_045))
        );
        assert_eq!(seg.find_offset_by_timestamp(5_000, 0).expect("ts"), None);
    }

    #[test]
    fn delete_removes_all_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 7, 100, 0).expect("create");
        fill(&mut seg, 2);
        seg.flush().expect("flush");
        std::fs::remove_file(Segment::time_index_path(dir.path(), 7)).expect("rm");
        seg.delete().expect("delete tolerates a missing index");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    /// Bytes of disk behind the segment's `.log` (fstat st_blocks), preallocated ones included.
    fn allocated(seg: &Segment) -> u64 {
        crate::storage::io::allocated_bytes(seg.log_file().as_ref())
    }

    /// Whether the file holds no block past its data: at most its size in 4 KiB blocks, plus one
    /// block of slack for the file system's own rounding.
    fn nothing_reserved_past(seg: &Segment) -> bool {
        allocated(seg) <= seg.size().div_ceil(4096) * 4096 + 4096
    }

    /// Appends batches of 100 records (about 3 KiB) while they fit in `limit` bytes, checking
    /// after each that the file is exactly as long as its batches; returns them with their base offsets.
    fn append_up_to(seg: &mut Segment, limit: u64, mut after_each: impl FnMut(&Segment)) -> Vec<(i64, Vec<u8>)> {
        let (mut stored, start) = (Vec::new(), seg.size());
        loop {
            let mut b = simple_batch(100);
            if seg.size() + b.len() as u64 > limit {
                return stored;
            }
            let base = seg.next_offset();
            let last = assign_offsets(&mut b, base);
            seg.append(&b, base, last, 1_000, base).expect("append");
            stored.push((base, b));
            let total = start + stored.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
            assert_eq!((seg.size(), seg.log_file().len().expect("len")), (total, total), "sizes are the data's");
            after_each(seg);
        }
    }

    fn assert_reads_back(seg: &Segment, stored: &[(i64, Vec<u8>)]) {
        for (base, b) in stored {
            let (pos, _) = seg.find_batch(*base).expect("find").expect("stored");
            assert_eq!(&seg.read(pos, b.len()).expect("read"), b, "batch at offset {base}");
        }
        assert!(seg.read(seg.size(), 4096).expect("read at the end").is_empty(), "nothing readable past the data");
    }

    #[test]
    fn appends_reserve_blocks_step_by_step_and_sealing_gives_the_rest_back() {
        const STEP: u64 = 64 * 1024;
        const SEGMENT_BYTES: u64 = 300 * 1024;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 4096, 0).expect("create");
        seg.set_preallocation(STEP, SEGMENT_BYTES);
        let mut reserved_ends = Vec::new();
        let stored = append_up_to(&mut seg, SEGMENT_BYTES, |seg| {
            assert!(seg.size() <= seg.preallocated_end && seg.preallocated_end <= SEGMENT_BYTES, "{} / {}", seg.size(), seg.preallocated_end);
            assert!(allocated(seg) >= seg.preallocated_end, "{} allocated, {} reserved", allocated(seg), seg.preallocated_end);
            if reserved_ends.last() != Some(&seg.preallocated_end) {
                reserved_ends.push(seg.preallocated_end);
            }
        });
        assert_eq!(reserved_ends, [STEP, 2 * STEP, 3 * STEP, 4 * STEP, SEGMENT_BYTES], "one step at a time, the last one cut at segment.bytes");
        assert_reads_back(&seg, &stored);
        let size = seg.size();
        seg.seal().expect("seal");
        assert_eq!(seg.size(), size);
        assert!(nothing_reserved_past(&seg), "sealed: {} bytes allocated for {size}", allocated(&seg));
        drop(seg);
        let seg = Segment::open(io(), dir.path(), 0, 4096, 0, false).expect("reopen");
        assert_eq!(seg.size(), size);
        assert_reads_back(&seg, &stored);
    }

    #[test]
    fn a_batch_larger_than_the_step_is_covered_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 4096, 0).expect("create");
        seg.set_preallocation(1024, 1_000_000);
        let stored = append_up_to(&mut seg, 10_000, |seg| assert!(seg.preallocated_end >= seg.size()));
        assert_reads_back(&seg, &stored);
        // Truncation gives the reserve back with the data.
        seg.set_preallocation(1 << 20, 1 << 30);
        append_up_to(&mut seg, 20_000, |_| {});
        assert!(allocated(&seg) >= 1 << 20);
        seg.truncate_to(stored[1].0).expect("truncate");
        assert_eq!(seg.preallocated_end, seg.size());
        assert!(nothing_reserved_past(&seg), "{} bytes allocated for {}", allocated(&seg), seg.size());
    }

    #[test]
    fn without_a_step_nothing_is_reserved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 4096, 0).expect("create");
        seg.set_preallocation(0, 1 << 30);
        let stored = append_up_to(&mut seg, 100_000, |seg| assert!(nothing_reserved_past(seg)));
        assert_eq!(seg.preallocated_end, 0);
        assert_reads_back(&seg, &stored);
    }

    #[test]
    fn a_failed_preallocation_does_not_fail_the_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(io(), dir.path(), 0, 4096, 0).expect("create");
        // A range past any file size limit: every backend's fallocate refuses it.
        seg.set_preallocation(u64::MAX, u64::MAX);
        let stored = append_up_to(&mut seg, 20_000, |_| {});
        assert!(stored.len() > 1);
        assert_reads_back(&seg, &stored);
        seg.seal().expect("seal");
        assert!(nothing_reserved_past(&seg));
    }

    #[test]
    fn undecodable_batches_fall_back_to_the_batch_base_offset() {
        let mut b = simple_batch(3);
        assign_offsets(&mut b, 10);
        let last = b.len() - 1;
        b[last] ^= 0xff; // corrupt the last record body
        let got = first_record_at_or_after(&b, 0, 0);
        assert!(got.is_some());
    }
    }
}
