//! Full-disk tests of the log: the disk fills at every mutating call of a run of appends and rolls in turn, and no acknowledged batch may be lost, no rejected one may survive, no offset may be reused, and appends must work again once space is freed. Tests only.

use std::path::Path;
use std::sync::Arc;

use kafka_protocol::records::Compression;

use super::io::{FaultConfig, FaultyIo, FileIo};
use super::{LogConfig, PartitionLog, StorageError};
use crate::records::batch::BatchIter;
use crate::records::batch::test_support::batch_with;
use crate::records::validate::{ValidateConfig, validate};
use crate::types::TopicPartition;

const NOW: i64 = 1_700_000_000_000;
const PRODUCER_ID: i64 = 7;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// Small segments, dense index entries and a small preallocation step: a short run rolls
/// several times and writes index pages, so every kind of write meets the full disk.
fn cfg() -> LogConfig {
    LogConfig { segment_bytes: 1_200, index_interval_bytes: 100, preallocate_step_bytes: 512, ..LogConfig::default() }
}

/// Batch `i` of the run: idempotent, its own timestamps (so its bytes are its own).
fn batch(i: usize, seq: i32) -> Vec<u8> {
    let count = 1 + i % 4;
    let ts: Vec<i64> = (0..count).map(|j| 10_000 + (i * 10 + j) as i64).collect();
    batch_with(count, Some(&ts), Compression::None, Some((PRODUCER_ID, 0, seq)))
}

/// What the producer of the test saw: the batches acknowledged, as stored (offsets assigned).
#[derive(Default)]
struct Run {
    acked: Vec<Vec<u8>>,
    next_seq: i32,
    next_batch: usize,
    rejected: usize,
}

impl Run {
    /// Appends batches until `n` more were acknowledged or `tries` appends were made. A rejected
    /// batch is retried as the producer would: the same sequence, next time.
    fn produce(&mut self, log: &mut PartitionLog, n: usize, tries: usize) {
        let target = self.acked.len() + n;
        for _ in 0..tries {
            if self.acked.len() >= target {
                return;
            }
            let mut bytes = batch(self.next_batch, self.next_seq);
            let v = validate(&bytes, &ValidateConfig::default()).expect("valid");
            match log.append(&mut bytes, &v, NOW) {
                Ok(info) => {
                    let expected_base: i64 = self.acked.iter().map(|b| record_count(b)).sum();
                    assert_eq!(info.base_offset, expected_base, "offsets follow the acknowledged batches, none reused or skipped");
                    self.next_seq += v.record_count as i32;
                    self.next_batch += 1;
                    self.acked.push(bytes);
                }
                Err(StorageError::Io(e)) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "only the full disk fails appends: {e}");
                    self.rejected += 1;
                }
                Err(e) => panic!("unexpected append error: {e}"),
            }
        }
    }

    fn records(&self) -> i64 {
        self.acked.iter().map(|b| record_count(b)).sum()
    }
}

fn record_count(batch: &[u8]) -> i64 {
    BatchIter::new(batch).map(|b| b.header().last_offset_delta() as i64 + 1).sum()
}

/// Everything the log holds from offset 0, batch by batch, as stored.
fn stored_batches(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let slice = log.read(offset, 1 << 20, log.log_end_offset()).expect("read");
        assert!(!slice.bytes.is_empty(), "nothing readable at {offset} below the log end {}", log.log_end_offset());
        for b in BatchIter::new(&slice.bytes) {
            out.push(b.bytes.to_vec());
            offset = b.header().last_offset() + 1;
        }
    }
    out
}

/// The log holds exactly the acknowledged batches, byte for byte, from offset 0 on.
fn assert_holds_exactly(log: &PartitionLog, run: &Run, what: &str) {
    assert_eq!(log.log_end_offset(), run.records(), "{what}: log end offset");
    let stored = stored_batches(log);
    assert_eq!(stored.len(), run.acked.len(), "{what}: batch count");
    for (i, (s, a)) in stored.iter().zip(&run.acked).enumerate() {
        assert!(s == a, "{what}: batch {i} differs from the one acknowledged");
    }
}

fn reopen(io: Arc<dyn FileIo>, dir: &Path, recovery_point: i64, clean: bool) -> PartitionLog {
    let mut log = PartitionLog::open(io, &dir.join("t-0"), tp(), cfg(), recovery_point, 0, clean, NOW).expect("reopen");
    log.set_high_watermark(log.log_end_offset());
    log
}

/// How the broker stops while (or after) the disk is full.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// kill -9 while the disk is full: the files stay as they are, nothing is closed.
    KillWhileFull,
    /// SIGTERM while the disk is full: a clean close is tried and may fail.
    CloseWhileFull,
    /// Space is freed, more is produced, then a clean close.
    CloseAfterFreeing,
}

/// One run: the disk fills at mutating call `full_at` (counted from the first append); appends
/// go on against the full disk, then the broker stops as `stop` says and starts again, and the
/// log must hold exactly what was acknowledged and take appends once space is back.
fn run_once(backend: Arc<dyn FileIo>, full_at: u64, stop: Stop) -> (u64, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let faulty = FaultyIo::new(backend.clone(), FaultConfig { seed: full_at + 1, ..FaultConfig::default() });
    let io: Arc<dyn FileIo> = Arc::new(faulty.clone());
    let mut log = PartitionLog::create(io, &dir.path().join("t-0"), tp(), cfg(), NOW).expect("create");
    let mut run = Run::default();
    faulty.fill_disk_after(full_at);
    run.produce(&mut log, 24, 40);
    log.set_high_watermark(log.log_end_offset());
    assert_holds_exactly(&log, &run, "while full");
    let mutations = faulty.mutations();

    let (recovery_point, clean) = match stop {
        Stop::KillWhileFull => (log.recovery_point(), false),
        Stop::CloseWhileFull => {
            let closed = log.close().is_ok();
            (log.recovery_point(), closed)
        }
        Stop::CloseAfterFreeing => {
            faulty.free_space();
            run.produce(&mut log, 6, 6);
            assert_eq!(run.acked.len(), run.next_batch, "every append works once space is back");
            log.set_high_watermark(log.log_end_offset());
            assert_holds_exactly(&log, &run, "after freeing");
            log.close().expect("close with space");
            (log.recovery_point(), true)
        }
    };
    drop(log);

    // The restart may find the disk still full: recovery must not lose anything then either.
    let mut log = reopen(Arc::new(faulty.clone()), dir.path(), recovery_point, clean);
    assert_holds_exactly(&log, &run, &format!("after the restart ({stop:?})"));
    faulty.free_space();
    let before = run.acked.len();
    run.produce(&mut log, 5, 5);
    assert_eq!(run.acked.len(), before + 5, "appends work after the restart once space is back");
    log.set_high_watermark(log.log_end_offset());
    assert_holds_exactly(&log, &run, "after the restart and freeing");
    log.close().expect("final close");
    drop(log);
    let log = reopen(backend, dir.path(), 0, false);
    assert_holds_exactly(&log, &run, "after a full recovery");
    (mutations, run.rejected)
}

crate::storage::io::on_each_backend! {
    /// Every point: the disk fills at each mutating call of the run in turn (log writes, index
    /// pages, preallocation, a roll's new files and snapshot, syncs), for each way of stopping.
    #[test]
    fn a_disk_filling_at_any_point_loses_no_acknowledged_batch_and_reuses_no_offset() {
        // A first run with the disk filling late tells how many mutating calls the run makes.
        let (total, _) = run_once(io(), u64::MAX / 2, Stop::KillWhileFull);
        assert!(total > 50, "the run exercises appends and rolls ({total} mutating calls)");
        let mut rejected = 0;
        for full_at in 0..total {
            for stop in [Stop::KillWhileFull, Stop::CloseWhileFull, Stop::CloseAfterFreeing] {
                eprintln!("full_at={full_at} stop={stop:?}");
                rejected += run_once(io(), full_at, stop).1;
            }
        }
        assert!(rejected > 0, "the full disk rejected appends");
    }
}
