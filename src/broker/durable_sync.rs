//! Durable mode's high watermark (`fjord.log.flush.on.acks.all`): consumers read only what is
//! fsynced, so the high watermark follows the recovery point, never the log end; appends no
//! produce waits to sync (acks 0/1, coordinator writes, markers) get a background fsync that
//! moves it. Owns no log and answers no request.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::storage::log_dir_failure::LogDirFailures;
use crate::storage::log_manager::SharedLog;
use crate::storage::{PartitionLog, StorageError};
use crate::types::TopicPartition;

/// After a sync moved the recovery point: everything below it is on the disk, so readers may
/// see it. The high watermark never moves back here.
pub fn publish_synced(log: &mut PartitionLog) {
    let synced = log.recovery_point();
    if synced > log.high_watermark() {
        log.set_high_watermark(synced);
    }
}

/// One background fsync queued per partition at a time: appends while one waits to start are
/// covered by it, because it takes its sync target (the log end) only when it starts.
#[derive(Debug, Default)]
pub struct BackgroundSyncs {
    queued: Mutex<HashSet<TopicPartition>>,
}

/// What a background sync needs, all owned (it runs on the blocking pool).
pub struct SyncJob {
    pub tp: TopicPartition,
    pub log: SharedLog,
    pub dir: PathBuf,
    pub failures: Arc<LogDirFailures>,
    pub purgatory: Arc<super::purgatory::Purgatory>,
}

impl BackgroundSyncs {
    /// Queues an fsync of the partition's appends so far (unless one is queued already), which
    /// then moves the high watermark and wakes parked fetches. Runs inline without a runtime.
    pub fn schedule(self: &Arc<Self>, job: SyncJob) {
        if !self.queued.lock().unwrap_or_else(|e| e.into_inner()).insert(job.tp.clone()) {
            return;
        }
        let me = self.clone();
        let run = move || {
            me.queued.lock().unwrap_or_else(|e| e.into_inner()).remove(&job.tp);
            if job.failures.is_offline(&job.dir) {
                return;
            }
            let target = job.log.lock().unwrap_or_else(|e| e.into_inner()).sync_target();
            if let Err(e) = target.sync() {
                job.failures.report(&job.dir, "durable-mode fsync", &StorageError::from(e));
                return;
            }
            {
                let mut log = job.log.lock().unwrap_or_else(|e| e.into_inner());
                log.mark_synced(&target);
                publish_synced(&mut log);
            }
            job.purgatory.wake(&job.tp);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(run)),
            Err(_) => run(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::replica_manager::{ReplicaError, ReplicaManager};
    use crate::records::batch::test_support::simple_batch;
    use crate::storage::io::{Backend, FaultConfig, FaultOp, FaultyIo, StdIo};
    use crate::storage::{LogConfig, LogManager};
    use bytes::Bytes;

    /// A replica manager over one log dir on a FaultyIo, without a runtime (background work runs inline).
    fn replicas(dir: &std::path::Path, durable: bool, cfg: LogConfig) -> (FaultyIo, ReplicaManager) {
        let faulty = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
        let io: Arc<dyn crate::storage::io::FileIo> = Arc::new(faulty.clone());
        let logs = LogManager::open(vec![dir.to_path_buf()], cfg, io.clone()).expect("open");
        (faulty, ReplicaManager::new(logs, Backend { io, name: "faulty", uring_stats: None, budget: None }, durable, 1))
    }

    fn batch(n: usize) -> Bytes {
        Bytes::from(simple_batch(n))
    }

    fn is_offline(r: Result<impl std::fmt::Debug, ReplicaError>) -> bool {
        matches!(r, Err(ReplicaError::Storage(StorageError::LogDirOffline(_))))
    }

    #[test]
    fn in_durable_mode_readers_see_only_what_is_fsynced_and_a_failed_fsync_takes_the_dir_offline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, rm) = replicas(dir.path(), true, LogConfig::default());
        let tp = TopicPartition::new("d", 0);
        rm.create_partition(&tp, LogConfig::default()).expect("create");

        let (_, sync) = rm.append_for_produce(&tp, &batch(2), -1).expect("append");
        let sync = sync.expect("acks=all owes a sync in durable mode");
        assert_eq!(rm.offsets(&tp).expect("offsets").high_watermark, 0, "appended is not yet readable");
        assert!(rm.read_range(&tp, 0, 1 << 20, true, false).expect("read").records.is_none());
        rm.complete_sync(&sync).expect("sync");
        assert_eq!(rm.offsets(&tp).expect("offsets").high_watermark, 2, "readable once fsynced");

        // acks=1 and coordinator writes get a background sync (inline here) that publishes them.
        let (_, none) = rm.append_for_produce(&tp, &batch(1), 1).expect("append");
        assert!(none.is_none());
        assert_eq!(rm.offsets(&tp).expect("offsets").high_watermark, 3);
        rm.append(&tp, &batch(1)).expect("append");
        assert_eq!(rm.offsets(&tp).expect("offsets").high_watermark, 4);

        faulty.inject(dir.path(), FaultOp::Sync, libc::EIO);
        let (_, sync) = rm.append_for_produce(&tp, &batch(2), -1).expect("the write itself works");
        assert!(rm.complete_sync(&sync.expect("owed")).is_err(), "the fsync failed");
        let failures = faulty.injected_failures();
        assert!(is_offline(rm.offsets(&tp)), "the record whose fsync failed is never readable");
        assert!(is_offline(rm.read_range(&tp, 4, 1 << 20, true, false)));
        faulty.heal();
        assert!(is_offline(rm.append_for_produce(&tp, &batch(1), -1)), "no resumption once fsync works again");
        assert!(is_offline(rm.delete_records(&tp, 1)));
        assert!(is_offline(rm.end_offset_for_epoch(&tp, 0)));
        assert!(is_offline(rm.offset_for_timestamp(&tp, 0)));
        assert_eq!(faulty.injected_failures(), failures, "nothing tried the dir again");
    }

    #[test]
    fn a_read_eio_takes_the_dir_offline_and_a_short_read_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (faulty, rm) = replicas(dir.path(), false, LogConfig::default());
        let tp = TopicPartition::new("r", 0);
        rm.create_partition(&tp, LogConfig::default()).expect("create");
        rm.append(&tp, &batch(3)).expect("append");
        rm.append(&tp, &batch(3)).expect("append");
        assert!(rm.read(&tp, 3, 1 << 20).is_ok(), "a read in the middle of the log (through the index and a header)");
        faulty.inject(dir.path(), FaultOp::Read, libc::EIO);
        let failed = rm.read(&tp, 3, 1 << 20);
        assert!(matches!(failed, Err(ReplicaError::Storage(StorageError::Io(_)))), "the read itself fails: {failed:?}");
        faulty.heal();
        assert!(is_offline(rm.offsets(&tp)), "the dir is offline after the read EIO");
        assert!(is_offline(rm.append(&tp, &batch(1))));

        let other = tempfile::tempdir().expect("tempdir");
        let (faulty, rm) = replicas(other.path(), false, LogConfig::default());
        rm.create_partition(&tp, LogConfig::default()).expect("create");
        rm.append(&tp, &batch(3)).expect("append");
        faulty.inject(other.path(), FaultOp::Read, libc::EMFILE);
        assert!(rm.read(&tp, 0, 1 << 20).is_err());
        faulty.heal();
        assert!(rm.offsets(&tp).is_ok(), "an error that says nothing of the disk leaves the dir online");
    }

    #[test]
    fn a_failed_roll_flush_takes_the_dir_offline_instead_of_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig { segment_bytes: 300, ..LogConfig::default() };
        let (faulty, rm) = replicas(dir.path(), false, cfg.clone());
        let tp = TopicPartition::new("r", 0);
        rm.create_partition(&tp, cfg).expect("create");
        rm.append(&tp, &batch(3)).expect("append");
        assert_eq!(rm.offsets(&tp).expect("offsets").high_watermark, 3, "default mode: readable at once");
        faulty.inject(dir.path(), FaultOp::Sync, libc::EIO);
        let mut rolled = false;
        for _ in 0..10 {
            match rm.append(&tp, &batch(3)) {
                Ok(_) => {}
                Err(e) => {
                    assert!(matches!(e, ReplicaError::Storage(StorageError::LogDirOffline(_))), "{e}");
                    rolled = true;
                    break;
                }
            }
        }
        assert!(rolled, "a roll's fsync failed and the next append found the dir offline");
        assert!(faulty.injected_failures() >= 1);
        assert!(is_offline(rm.read(&tp, 0, 1 << 20)));
    }
}
