//! The replication throttles (KIP-73), as Kafka's ReplicationQuotaManager keeps them: one
//! byte rate per direction and broker (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`), measured as Kafka's `SimpleRate` over
//! `replication.quota.window.num` samples of `replication.quota.window.size.seconds`. Which
//! partitions are throttled is each topic's (`config::ThrottledReplicas` in its settings); the
//! leader's fetch path and the follower's fetcher ask [`ReplicationQuota::is_exceeded`] before
//! moving a throttled partition's bytes and [`ReplicationQuota::record`] the bytes moved. Knows
//! nothing of partitions, requests or sockets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::quotas::Rate;

/// Which way a throttle bounds replication (names Kafka's quota types: `LeaderReplication`,
/// `FollowerReplication`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Leader,
    Follower,
}

/// One direction's throttle on this broker.
pub struct ReplicationQuota {
    pub direction: Direction,
    /// Bytes a second; `u64::MAX` is unthrottled (Kafka's Long.MAX_VALUE default).
    quota_bytes_per_second: AtomicU64,
    rate: Mutex<Rate>,
    window_ms: u64,
    samples: usize,
    epoch: Instant,
}

impl ReplicationQuota {
    /// An unthrottled quota measured over `samples` windows of `window_seconds`.
    pub fn new(direction: Direction, samples: usize, window_seconds: u64) -> ReplicationQuota {
        ReplicationQuota {
            direction,
            quota_bytes_per_second: AtomicU64::new(u64::MAX),
            rate: Mutex::new(Rate::default()),
            window_ms: window_seconds.saturating_mul(1000).max(1),
            samples: samples.max(1),
            epoch: Instant::now(),
        }
    }

    /// A new bound from now on; what was recorded stays recorded (Kafka's `updateQuota`).
    pub fn set_quota(&self, bytes_per_second: u64) {
        self.quota_bytes_per_second.store(bytes_per_second, Ordering::Relaxed);
    }

    pub fn quota(&self) -> u64 {
        self.quota_bytes_per_second.load(Ordering::Relaxed)
    }

    /// Whether the measured rate is above the bound now: throttled partitions are then held back
    /// (Kafka's `isQuotaExceeded`; a rate equal to the bound is within it).
    pub fn is_exceeded(&self) -> bool {
        self.is_exceeded_at(self.now_ms())
    }

    /// Counts bytes moved for throttled partitions, whether or not the bound is exceeded (in-sync
    /// replicas' bytes count too, as in Kafka: the bound is on all throttled traffic).
    pub fn record(&self, bytes: u64) {
        if bytes > 0 {
            self.record_at(bytes, self.now_ms());
        }
    }

    /// The measured rate, in bytes a second (the `byte-rate` metric of Kafka's quota types).
    pub fn byte_rate(&self) -> f64 {
        self.lock().measure_simple(self.now_ms(), self.window_ms, self.samples)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rate> {
        self.rate.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_exceeded_at(&self, now: u64) -> bool {
        let quota = self.quota();
        if quota == u64::MAX {
            // Unthrottled: no lock on the fetch path of a broker without a throttle.
            return false;
        }
        self.lock().measure_simple(now, self.window_ms, self.samples) > quota as f64
    }

    fn record_at(&self, bytes: u64, now: u64) {
        self.lock().record(bytes as f64, now, self.window_ms, self.samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ThrottledReplicas;

    #[test]
    fn an_unthrottled_quota_is_never_exceeded() {
        let q = ReplicationQuota::new(Direction::Leader, 11, 1);
        q.record_at(u64::MAX / 2, 0);
        assert!(!q.is_exceeded_at(0));
    }

    #[test]
    fn the_rate_is_measured_over_at_least_one_window_and_bounds_at_the_quota() {
        let q = ReplicationQuota::new(Direction::Leader, 11, 1);
        q.set_quota(1_000_000);
        assert!(!q.is_exceeded_at(0), "nothing recorded yet");
        // A first megabyte at t=0: one window's worth is exactly the bound, which is within it
        // (not judged over the few ms since the sample began).
        q.record_at(1_000_000, 0);
        assert!(!q.is_exceeded_at(10));
        // A second one right after: 2 MB over one window is over the bound...
        q.record_at(1_000_000, 20);
        assert!(q.is_exceeded_at(20));
        assert!(q.is_exceeded_at(1_500));
        // ... until two seconds have passed since the first sample began.
        assert!(!q.is_exceeded_at(2_000));
        // A lower bound applies at once to what was recorded; a higher one too.
        q.set_quota(500_000);
        assert!(q.is_exceeded_at(2_000));
        q.set_quota(u64::MAX);
        assert!(!q.is_exceeded_at(2_000));
    }

    #[test]
    fn samples_older_than_the_windows_no_longer_count() {
        let q = ReplicationQuota::new(Direction::Follower, 3, 1);
        q.set_quota(100);
        q.record_at(10_000, 0);
        assert!(q.is_exceeded_at(2_999), "10 kB over 3 s is over 100 B/s");
        assert!(!q.is_exceeded_at(3_000), "the sample expired after 3 windows");
        // A quota of 0 (Kafka's minimum) holds throttled partitions back once anything moved.
        q.set_quota(0);
        assert!(!q.is_exceeded_at(3_000));
        q.record_at(1, 3_000);
        assert!(q.is_exceeded_at(3_001));
    }

    #[test]
    fn a_steady_fetcher_is_held_to_the_quota_over_time() {
        // A fetcher that takes 100 kB whenever the quota allows, polled every 10 ms for 20 s,
        // moves about quota × time (plus the one fetch let through before the bound bites).
        let q = ReplicationQuota::new(Direction::Leader, 11, 1);
        q.set_quota(1_000_000);
        let mut moved = 0u64;
        for now in (0..20_000).step_by(10) {
            if !q.is_exceeded_at(now) {
                q.record_at(100_000, now);
                moved += 100_000;
            }
        }
        assert!((19_000_000..=21_200_000).contains(&moved), "moved {moved} bytes in 20 s at 1 MB/s");
    }

    #[test]
    fn throttled_replica_lists_keep_this_brokers_partitions_or_every_one() {
        assert_eq!(ThrottledReplicas::parse("", 1), ThrottledReplicas::None);
        assert_eq!(ThrottledReplicas::parse(" * ", 1), ThrottledReplicas::All);
        let t = ThrottledReplicas::parse("0:1, 2:1,1:2,2:1,5:3", 1);
        assert_eq!(t, ThrottledReplicas::Partitions(vec![0, 2].into()));
        assert!(t.contains(0) && t.contains(2) && !t.contains(1) && !t.contains(5));
        assert_eq!(ThrottledReplicas::parse("0:2,1:3", 1), ThrottledReplicas::None, "other brokers' entries only");
        assert!(ThrottledReplicas::All.contains(7));
        assert!(!ThrottledReplicas::None.contains(0));
    }
}
