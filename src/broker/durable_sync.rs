//! Durable mode's high watermark (`fjord.log.flush.on.acks.all`): consumers read only what is fsynced, so the high watermark follows the recovery point, never the log end; appends no produce waits to sync (acks 0/1, coordinator writes, markers) get a background fsync that moves it. Owns no log and answers no request.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

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
    pub appended: Arc<Notify>,
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
            job.appended.notify_waiters();
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(run)),
            Err(_) => run(),
        }
    }
}
