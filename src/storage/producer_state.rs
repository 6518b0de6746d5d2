//! Producer state of one partition: per producer id the epoch, the last five batches' sequences and offsets (idempotence) and the open transaction's first offset (the last stable offset), plus its snapshot files; it checks sequences from batch summaries and never reads the log itself.
//!
//! Producers idle for `producer.id.expiration.ms` are forgotten ([`ProducerStateManager::remove_expired_producers`]),
//! as Kafka forgets them: otherwise every producer id that ever wrote to a partition (each restart
//! of an idempotent Java client is a new one) stays in memory and in every snapshot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checkpoint::write_atomic;
use super::io::{FileIo, IoFile, OpenMode};
use super::{StorageError, file_name, parse_file_name};
use crate::records::batch::BatchHeader;
use crate::records::control::{ControlType, Marker};
use crate::records::validate::BatchSummary;

/// Kafka keeps the last five batches per producer: the Java client has at most five in flight.
pub const MAX_CACHED_BATCHES: usize = 5;
/// Snapshot files kept per partition; older ones are deleted.
pub const MAX_SNAPSHOTS: usize = 2;
/// Kafka's default of `producer.id.expiration.ms`: a producer idle this long is forgotten.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

const SNAPSHOT_MAGIC: &[u8; 4] = b"FJPS";
/// Version 2 added the open transaction, last timestamp and coordinator epoch per producer.
const SNAPSHOT_VERSION: u16 = 2;

/// One appended batch as the dedup cache remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What is known about one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// First offset of the producer's open transaction on this partition, -1 when none.
    pub current_txn_first_offset: i64,
    /// Max timestamp of the producer's last batch (DescribeProducers), -1 when unknown.
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote the producer's last marker, -1 when none.
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry { epoch: 0, batches: VecDeque::new(), current_txn_first_offset: -1, last_timestamp: -1, coordinator_epoch: -1 }
    }
}

/// One batch as it was appended (or replayed), for [`ProducerStateManager::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub is_transactional: bool,
    /// For a control batch: the transaction marker it carries (None for other control records).
    pub marker: Option<Marker>,
    pub is_control: bool,
    pub max_timestamp: i64,
    pub meta: BatchMetadata,
}

/// A transaction a marker ended on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// The outcome of checking a request's batches before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended at these offsets: answer success, do not append.
    Duplicate { first_offset: i64, last_offset: i64 },
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

/// Per-partition producer state, like Kafka's ProducerStateManager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset (derived from `producers`): the smallest bounds the last
    /// stable offset.
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }
    /// Every producer with state here (DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }
    /// First offset of the oldest open transaction: no read_committed consumer may read past it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Whether `e` is expired at `now_ms`: it has no open transaction here, and its last batch's
    /// max timestamp (the producer's CreateTime, or the append time on a LogAppendTime topic) is
    /// `expiration_ms` or more in the past, as Kafka decides it. An entry without a timestamp
    /// (-1) is expired, as in Kafka.
    pub fn is_expired(e: &ProducerEntry, now_ms: i64, expiration_ms: i64) -> bool {
        e.current_txn_first_offset < 0 && now_ms.saturating_sub(e.last_timestamp) >= expiration_ms
    }

    /// Forgets every expired producer (see [`Self::is_expired`]); returns how many. A producer
    /// that writes again afterwards is an unknown producer: its first batch is accepted whatever
    /// its epoch and sequence, and a retry of a batch from before the expiry is appended again
    /// (Kafka 4.0 answers the same). A producer in a transaction stays until its marker.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| !Self::is_expired(e, now_ms, expiration_ms));
        // `ongoing` holds only producers with an open transaction, which never expire.
        debug_assert!(self.ongoing.values().all(|id| self.producers.contains_key(id)));
        before - self.producers.len()
    }

    /// Checks every batch of a request in order, as if the earlier ones had been appended. Any
    /// duplicate makes the whole request a duplicate, as in Kafka.
    pub fn check(&self, batches: &[BatchSummary]) -> Result<SequenceCheck, StorageError> {
        // Earlier batches of the same request by the same producer: (pid, epoch, last seq). Tiny.
        let mut pending: Vec<(i64, i16, i32)> = Vec::new();
        for b in batches {
            if b.producer_id < 0 {
                continue;
            }
            let known = pending
                .iter()
                .rev()
                .find(|p| p.0 == b.producer_id)
                .map(|p| (p.1, Some(p.2)))
                .or_else(|| {
                    self.producers
                        .get(&b.producer_id)
                        .map(|e| (e.epoch, e.batches.back().map(|m| m.last_seq)))
                });
            if let Some((epoch, last_seq)) = known {
                if b.producer_epoch < epoch {
                    return Err(StorageError::InvalidProducerEpoch {
                        producer_id: b.producer_id,
                        current: epoch,
                        received: b.producer_epoch,
                    });
                }
                // Batches without a sequence (markers, and the offsets a coordinator writes for a
                // transaction) are checked for their epoch only.
                if !b.is_control && b.base_sequence >= 0 {
                    if b.producer_epoch == epoch {
                        if let Some(e) = self.producers.get(&b.producer_id)
                            && e.epoch == b.producer_epoch
                            && let Some(m) = e.batches.iter().find(|m| {
                                m.first_seq == b.base_sequence && m.last_seq == b.last_sequence
                            })
                        {
                            return Ok(SequenceCheck::Duplicate {
                                first_offset: m.first_offset,
                                last_offset: m.last_offset,
                            });
                        }
                        if let Some(last) = last_seq
                            && b.base_sequence != next_seq(last)
                        {
                            return Err(StorageError::OutOfOrderSequence {
                                producer_id: b.producer_id,
                                expected: next_seq(last),
                                received: b.base_sequence,
                            });
                        }
                    } else if b.base_sequence != 0 {
                        // A bumped epoch restarts sequences at zero.
                        return Err(StorageError::OutOfOrderSequence {
                            producer_id: b.producer_id,
                            expected: 0,
                            received: b.base_sequence,
                        });
                    }
                }
            }
            // Unknown producer: accepted whatever the sequence (its state may have been lost to
            // retention), as Kafka does.
            // Only multi-batch requests need the running state; the common single batch allocates nothing.
            if batches.len() > 1 {
                let last = if b.is_control {
                    known.and_then(|k| k.1).unwrap_or(-1)
                } else {
                    b.last_sequence
                };
                pending.push((b.producer_id, b.producer_epoch, last));
            }
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch. A transactional data batch opens the producer's transaction
    /// here if none is open; a marker closes it and returns what it ended.
    pub fn update(&mut self, b: &AppendedBatch) -> Option<CompletedTxn> {
        if b.producer_id < 0 {
            return None;
        }
        let e = self.producers.entry(b.producer_id).or_insert_with(|| ProducerEntry { epoch: b.epoch, ..Default::default() });
        if b.epoch != e.epoch {
            // A new epoch restarts sequences; an open transaction stays open until its marker
            // (a coordinator fencing a producer writes the marker at the bumped epoch).
            e.epoch = b.epoch;
            e.batches.clear();
        }
        e.last_timestamp = b.max_timestamp;
        if b.is_control {
            let marker = b.marker?;
            e.coordinator_epoch = marker.coordinator_epoch;
            if e.current_txn_first_offset < 0 {
                return None;
            }
            let first_offset = std::mem::replace(&mut e.current_txn_first_offset, -1);
            self.ongoing.remove(&first_offset);
            return Some(CompletedTxn {
                producer_id: b.producer_id,
                first_offset,
                last_offset: b.meta.last_offset,
                aborted: marker.control == ControlType::Abort,
            });
        }
        if b.is_transactional && e.current_txn_first_offset < 0 {
            e.current_txn_first_offset = b.meta.first_offset;
            self.ongoing.insert(b.meta.first_offset, b.producer_id);
        }
        if b.meta.first_seq < 0 {
            return None;
        }
        if e.batches.len() == MAX_CACHED_BATCHES {
            e.batches.pop_front();
        }
        e.batches.push_back(b.meta);
        None
    }

    /// Replays one batch header read from the log (rebuild after open or truncation); `marker` is
    /// the decoded marker of a control batch.
    pub fn replay(&mut self, h: &BatchHeader<'_>, marker: Option<Marker>) -> Option<CompletedTxn> {
        self.update(&AppendedBatch {
            producer_id: h.producer_id(),
            epoch: h.producer_epoch(),
            is_transactional: h.is_transactional(),
            marker,
            is_control: h.is_control(),
            max_timestamp: h.max_timestamp(),
            meta: BatchMetadata {
                first_seq: h.base_sequence(),
                last_seq: h.last_sequence(),
                first_offset: h.base_offset(),
                last_offset: h.last_offset(),
            },
        })
    }

    /// Serialized snapshot: magic, version, count, entries, then a CRC32C of all of it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(16 + self.producers.len() * (31 + MAX_CACHED_BATCHES * 24));
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.current_txn_first_offset.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for m in &e.batches {
                out.extend_from_slice(&m.first_seq.to_be_bytes());
                out.extend_from_slice(&m.last_seq.to_be_bytes());
                out.extend_from_slice(&m.first_offset.to_be_bytes());
                out.extend_from_slice(&m.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot, Fjord's or one Apache Kafka wrote (a log dir Kafka left, served in
    /// place); `None` for anything malformed (the caller then falls back to an older one).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.starts_with(SNAPSHOT_MAGIC) {
            return match super::kafka_dir::decode_producer_snapshot(bytes) {
                Ok(entries) => Some(Self::from_entries(entries)),
                Err(e) => {
                    tracing::debug!(error = %e, "not a Kafka producer snapshot either");
                    None
                }
            };
        }
        let body_len = bytes.len().checked_sub(4)?;
        let (body, crc) = bytes.split_at(body_len);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = Reader(body);
        if r.take(4)? != SNAPSHOT_MAGIC {
            return None;
        }
        let version = u16::from_be_bytes(r.array()?);
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return None;
        }
        let count = u32::from_be_bytes(r.array()?) as usize;
        let mut producers = HashMap::with_capacity(count.min(body.len() / 11));
        for _ in 0..count {
            let id = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let mut entry = ProducerEntry { epoch, ..Default::default() };
            if version >= 2 {
                entry.current_txn_first_offset = i64::from_be_bytes(r.array()?);
                entry.last_timestamp = i64::from_be_bytes(r.array()?);
                entry.coordinator_epoch = i32::from_be_bytes(r.array()?);
            }
            let n = r.take(1)?[0] as usize;
            let mut batches = VecDeque::with_capacity(n.min(MAX_CACHED_BATCHES));
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    first_offset: i64::from_be_bytes(r.array()?),
                    last_offset: i64::from_be_bytes(r.array()?),
                });
            }
            entry.batches = batches;
            producers.insert(id, entry);
        }
        let ongoing = producers
            .iter()
            .filter(|(_, e)| e.current_txn_first_offset >= 0)
            .map(|(id, e)| (e.current_txn_first_offset, *id))
            .collect();
        r.0.is_empty().then_some(Self { producers, ongoing })
    }

    /// A state holding these producers (the last entry of a repeated id wins).
    fn from_entries(entries: Vec<(i64, ProducerEntry)>) -> Self {
        let producers: HashMap<i64, ProducerEntry> = entries.into_iter().collect();
        let ongoing = producers
            .iter()
            .filter(|(_, e)| e.current_txn_first_offset >= 0)
            .map(|(id, e)| (e.current_txn_first_offset, *id))
            .collect();
        Self { producers, ongoing }
    }

    pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
        dir.join(file_name(offset, "snapshot"))
    }

    /// Writes `<offset>.snapshot` atomically and prunes old snapshots down to [`MAX_SNAPSHOTS`].
    pub fn write_snapshot(&self, io: &dyn FileIo, dir: &Path, offset: i64) -> io::Result<()> {
        write_atomic(io, &Self::snapshot_path(dir, offset), &self.encode())?;
        Self::prune_snapshots(io, dir)
    }

    /// A roll's snapshot: `<offset>.snapshot` written in place and not fsynced, so the roll does
    /// not wait for the disk; the caller fsyncs the returned file and the directory later, off
    /// the partition lock (Kafka's roll defers its snapshot flush the same way). A crash before
    /// that may leave the file empty or torn: its CRC then fails and the open falls back to an
    /// older snapshot and replays more of the log.
    pub fn write_snapshot_unsynced(&self, io: &dyn FileIo, dir: &Path, offset: i64) -> io::Result<Arc<dyn IoFile>> {
        let f = io.open(&Self::snapshot_path(dir, offset), OpenMode::CreateReadWrite)?;
        f.set_len(0)?;
        f.write_all_at(&self.encode(), 0)?;
        Self::prune_snapshots(io, dir)?;
        Ok(f)
    }

    fn prune_snapshots(io: &dyn FileIo, dir: &Path) -> io::Result<()> {
        let offsets = snapshot_offsets(io, dir)?;
        for old in offsets.iter().rev().skip(MAX_SNAPSHOTS) {
            io.remove_file(&Self::snapshot_path(dir, *old))?;
        }
        Ok(())
    }

    /// The newest readable snapshot at or below `max_offset`, with its offset.
    pub fn load_latest(
        io: &dyn FileIo,
        dir: &Path,
        max_offset: i64,
    ) -> io::Result<Option<(i64, Self)>> {
        for off in snapshot_offsets(io, dir)?
            .into_iter()
            .rev()
            .filter(|o| *o <= max_offset)
        {
            let f = io.open(&Self::snapshot_path(dir, off), OpenMode::ReadWrite)?;
            let mut buf = vec![0u8; f.len()? as usize];
            let n = f.read_full_at(&mut buf, 0)?;
            buf.truncate(n);
            match Self::decode(&buf) {
                Some(s) => return Ok(Some((off, s))),
                None => {
                    tracing::warn!(offset = off, dir = %dir.display(), "ignoring corrupt producer snapshot")
                }
            }
        }
        Ok(None)
    }
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn snapshot_offsets(io: &dyn FileIo, dir: &Path) -> io::Result<Vec<i64>> {
    let mut v: Vec<i64> = io
        .list_dir(dir)?
        .iter()
        .filter_map(|e| parse_file_name(&e.name, "snapshot"))
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Deletes snapshots above `offset` (after a truncation they describe offsets that no longer exist).
pub fn delete_snapshots_after(io: &dyn FileIo, dir: &Path, offset: i64) -> io::Result<()> {
    for off in snapshot_offsets(io, dir)?
        .into_iter()
        .filter(|o| *o > offset)
    {
        io.remove_file(&ProducerStateManager::snapshot_path(dir, off))?;
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::StdIo;

    fn summary(pid: i64, epoch: i16, base: i32, count: i32) -> BatchSummary {
        BatchSummary {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: base,
            last_sequence: base + (count - 1),
            records_count: count,
            last_offset_delta: count - 1,
            max_timestamp: 0,
            is_transactional: false,
            is_control: false,
            size_bytes: 100,
        }
    }

    fn appended(s: &mut ProducerStateManager, b: &BatchSummary, first_offset: i64) {
        assert_eq!(
            s.check(std::slice::from_ref(b)).expect("check"),
            SequenceCheck::Append
        );
        s.update(&AppendedBatch {
            producer_id: b.producer_id,
            epoch: b.producer_epoch,
            is_transactional: b.is_transactional,
            marker: None,
            is_control: false,
            max_timestamp: b.max_timestamp,
            meta: BatchMetadata {
                first_seq: b.base_sequence,
                last_seq: b.last_sequence,
                first_offset,
                last_offset: first_offset + b.last_offset_delta as i64,
            },
        });
    }

    #[test]
    fn duplicates_of_any_of_the_last_five_batches_are_detected() {
        let mut s = ProducerStateManager::new();
        for i in 0..6 {
            appended(&mut s, &summary(1, 0, i * 2, 2), 100 + i as i64 * 2);
        }
        // Batch 0 fell out of the cache, batch 1 is still there.
        assert_eq!(
            s.check(&[summary(1, 0, 2, 2)]).expect("dup"),
            SequenceCheck::Duplicate {
                first_offset: 102,
                last_offset: 103
            }
        );
        assert!(matches!(
            s.check(&[summary(1, 0, 0, 2)]),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused_and_new_epochs_restart_at_zero() {
        let mut s = ProducerStateManager::new();
        appended(&mut s, &summary(7, 3, 0, 5), 0);
        assert!(matches!(
            s.check(&[summary(7, 3, 6, 1)]),
            Err(StorageError::OutOfOrderSequence {
                expected: 5,
                received: 6,
                ..
            })
        ));
        assert!(matches!(
            s.check(&[summary(7, 2, 5, 1)]),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            s.check(&[summary(7, 4, 3, 1)]),
            Err(StorageError::OutOfOrderSequence { .. })
        ));
        appended(&mut s, &summary(7, 4, 0, 1), 5);
        assert_eq!(s.entry(7).map(|e| e.epoch), Some(4));
    }

    #[test]
    fn unknown_producers_and_non_idempotent_batches_are_accepted() {
        let s = ProducerStateManager::new();
        assert_eq!(
            s.check(&[summary(9, 0, 42, 1)]).expect("ok"),
            SequenceCheck::Append
        );
        assert_eq!(
            s.check(&[summary(-1, -1, -1, 3)]).expect("ok"),
            SequenceCheck::Append
        );
    }

    #[test]
    fn batches_in_one_request_are_checked_in_sequence() {
        let mut s = ProducerStateManager::new();
        appended(&mut s, &summary(1, 0, 0, 2), 0);
        assert_eq!(
            s.check(&[summary(1, 0, 2, 2), summary(1, 0, 4, 1)])
                .expect("ok"),
            SequenceCheck::Append
        );
        assert!(
            s.check(&[summary(1, 0, 2, 2), summary(1, 0, 5, 1)])
                .is_err()
        );
    }

    #[test]
    fn sequence_wraps_to_zero() {
        let mut s = ProducerStateManager::new();
        let mut b = summary(1, 0, i32::MAX - 1, 2);
        b.last_sequence = i32::MAX;
        appended(&mut s, &b, 0);
        assert_eq!(
            s.check(&[summary(1, 0, 0, 1)]).expect("ok"),
            SequenceCheck::Append
        );
    }

    fn at(mut b: BatchSummary, max_timestamp: i64) -> BatchSummary {
        b.max_timestamp = max_timestamp;
        b
    }

    #[test]
    fn expiry_forgets_idle_producers_and_keeps_recent_ones_and_open_transactions() {
        let mut s = ProducerStateManager::new();
        appended(&mut s, &at(summary(1, 0, 0, 2), 1_000), 0);
        appended(&mut s, &at(summary(2, 0, 0, 1), 95_000), 2);
        let mut txn = at(summary(3, 0, 0, 1), 1_000);
        txn.is_transactional = true;
        appended(&mut s, &txn, 3);
        // Exactly the expiration old is expired (Kafka compares with >=); one ms less is not.
        appended(&mut s, &at(summary(4, 0, 0, 1), 90_000), 4);
        appended(&mut s, &at(summary(5, 0, 0, 1), 90_001), 5);
        assert_eq!(s.remove_expired_producers(100_000, 10_000), 2);
        let mut left: Vec<i64> = s.producers().map(|(id, _)| id).collect();
        left.sort_unstable();
        assert_eq!(left, vec![2, 3, 5], "1 and 4 idle; 3 is in a transaction; 2 and 5 recent");
        assert_eq!(s.first_unstable_offset(), Some(3), "the open transaction still bounds the LSO");
        // Its marker ends the transaction; from then on the producer ages like any other.
        s.update(&AppendedBatch {
            producer_id: 3,
            epoch: 0,
            is_transactional: true,
            marker: Some(Marker { control: ControlType::Commit, coordinator_epoch: 0 }),
            is_control: true,
            max_timestamp: 2_000,
            meta: BatchMetadata { first_seq: -1, last_seq: -1, first_offset: 6, last_offset: 6 },
        });
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.remove_expired_producers(100_000, 10_000), 1);
        assert!(s.entry(3).is_none());
        assert_eq!(s.remove_expired_producers(100_000, 10_000), 0, "nothing more to forget");
    }

    #[test]
    fn a_forgotten_producer_is_an_unknown_producer_again() {
        let mut s = ProducerStateManager::new();
        appended(&mut s, &at(summary(1, 3, 0, 2), 1_000), 0);
        appended(&mut s, &at(summary(1, 3, 2, 2), 1_000), 2);
        assert!(matches!(s.check(&[summary(1, 3, 0, 2)]), Ok(SequenceCheck::Duplicate { first_offset: 0, .. })));
        assert_eq!(s.remove_expired_producers(1_000 + DEFAULT_PRODUCER_ID_EXPIRATION_MS, DEFAULT_PRODUCER_ID_EXPIRATION_MS), 1);
        // No duplicate detected any more, no gap, no fencing of an older epoch.
        assert_eq!(s.check(&[summary(1, 3, 0, 2)]).expect("retry"), SequenceCheck::Append);
        assert_eq!(s.check(&[summary(1, 3, 17, 1)]).expect("gap"), SequenceCheck::Append);
        assert_eq!(s.check(&[summary(1, 2, 5, 1)]).expect("older epoch"), SequenceCheck::Append);
        // Its next batch makes it known again, and sequences are checked from there.
        appended(&mut s, &at(summary(1, 3, 17, 1), 200_000_000), 4);
        assert!(matches!(s.check(&[summary(1, 3, 0, 1)]), Err(StorageError::OutOfOrderSequence { expected: 18, .. })));
    }

    #[test]
    fn snapshots_after_expiry_leave_forgotten_producers_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerStateManager::new();
        appended(&mut s, &at(summary(1, 0, 0, 2), 1_000), 0);
        appended(&mut s, &at(summary(2, 0, 0, 1), 50_000), 2);
        s.write_snapshot(&StdIo, dir.path(), 3).expect("write");
        assert_eq!(s.remove_expired_producers(50_000, 10_000), 1);
        s.write_snapshot(&StdIo, dir.path(), 3).expect("rewrite at the same offset");
        let (_, loaded) = ProducerStateManager::load_latest(&StdIo, dir.path(), 3).expect("load").expect("some");
        assert!(loaded.entry(1).is_none(), "the expired producer is not in the snapshot");
        assert_eq!(loaded.entry(2).map(|e| e.last_timestamp), Some(50_000));
        assert_eq!(loaded, s);
        // A snapshot from before the expiry still carries it (an unclean stop may load one):
        // the same expiry then forgets it again, so a restart does not bring it back.
        let mut old = ProducerStateManager::new();
        appended(&mut old, &at(summary(1, 0, 0, 2), 1_000), 0);
        appended(&mut old, &at(summary(2, 0, 0, 1), 50_000), 2);
        old.write_snapshot(&StdIo, dir.path(), 2).expect("write older");
        let (off, mut reloaded) = ProducerStateManager::load_latest(&StdIo, dir.path(), 2).expect("load").expect("some");
        assert_eq!(off, 2);
        assert!(reloaded.entry(1).is_some());
        assert_eq!(reloaded.remove_expired_producers(50_000, 10_000), 1);
        assert_eq!(reloaded, s);
    }

    #[test]
    fn a_kafka_snapshot_keeps_the_last_batch_deduplicated() {
        // Kafka's version-1 snapshot: producer 7, epoch 2, last batch seq 5..9 at offsets 20..24.
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend_from_slice(&7i64.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&9i32.to_be_bytes());
        body.extend_from_slice(&24i64.to_be_bytes());
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(&1_000i64.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&(-1i64).to_be_bytes());
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        let s = ProducerStateManager::decode(&bytes).expect("a Kafka snapshot decodes");
        assert!(matches!(s.check(&[summary(7, 2, 5, 5)]), Ok(SequenceCheck::Duplicate { first_offset: 20, last_offset: 24 })));
        assert_eq!(s.check(&[summary(7, 2, 10, 1)]).expect("next"), SequenceCheck::Append);
        assert!(matches!(s.check(&[summary(7, 2, 12, 1)]), Err(StorageError::OutOfOrderSequence { .. })));
        assert!(s.first_unstable_offset().is_none());
    }

    #[test]
    fn snapshots_round_trip_reject_corruption_and_are_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerStateManager::new();
        appended(&mut s, &summary(1, 0, 0, 2), 0);
        appended(&mut s, &summary(2, 5, 0, 1), 2);
        let bytes = s.encode();
        assert_eq!(ProducerStateManager::decode(&bytes), Some(s.clone()));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert_eq!(ProducerStateManager::decode(&bad), None, "flip at {i}");
            assert_eq!(
                ProducerStateManager::decode(&bytes[..i]),
                None,
                "cut at {i}"
            );
        }
        for off in [3, 10, 20] {
            s.write_snapshot(&StdIo, dir.path(), off).expect("write");
        }
        assert_eq!(
            snapshot_offsets(&StdIo, dir.path()).expect("list"),
            vec![10, 20]
        );
        let (off, loaded) = ProducerStateManager::load_latest(&StdIo, dir.path(), 15)
            .expect("load")
            .expect("some");
        assert_eq!((off, loaded), (10, s));
        delete_snapshots_after(&StdIo, dir.path(), 10).expect("delete");
        assert_eq!(
            snapshot_offsets(&StdIo, dir.path()).expect("list"),
            vec![10]
        );
    }
}
