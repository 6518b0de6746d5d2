//! The fetch purgatory: parked fetches (min_bytes / max_wait) watch their partitions and are woken
//! only when one of those partitions' high watermark moves, as Kafka's DelayedFetch is keyed by
//! partition. Owns the watcher lists; it never reads a log.
//!
//! A fetch registers before it first reads (so an append between its read and its wait is not
//! lost: the wake leaves a permit), waits on its own `Notify`, re-reads, and unregisters when its
//! [`Watch`] is dropped, so a partition nobody appends to holds no dead watchers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::types::TopicPartition;

/// Shards of the watcher map: appends to different partitions rarely meet on one lock.
const SHARDS: usize = 16;

type Watchers = HashMap<TopicPartition, Vec<(u64, Arc<Notify>)>>;

pub struct Purgatory {
    shards: Vec<Mutex<Watchers>>,
    next_id: AtomicU64,
}

impl Default for Purgatory {
    fn default() -> Self {
        Purgatory { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), next_id: AtomicU64::new(0) }
    }
}

impl Purgatory {
    fn shard(&self, tp: &TopicPartition) -> &Mutex<Watchers> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tp.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Watches `partitions` until the returned [`Watch`] is dropped; [`Watch::changed`] completes
    /// once any of them moved its high watermark after this call.
    pub fn watch<'a>(self: &Arc<Self>, partitions: impl IntoIterator<Item = &'a TopicPartition>) -> Watch {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut watched = Vec::new();
        for tp in partitions {
            if watched.contains(tp) {
                continue;
            }
            self.shard(tp).lock().unwrap_or_else(|e| e.into_inner()).entry(tp.clone()).or_default().push((id, notify.clone()));
            watched.push(tp.clone());
        }
        Watch { purgatory: self.clone(), id, notify, watched }
    }

    /// The partition's high watermark moved: wakes every fetch watching it.
    pub fn wake(&self, tp: &TopicPartition) {
        let shard = self.shard(tp).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watchers) = shard.get(tp) {
            for (_, n) in watchers {
                // notify_one leaves a permit when the fetch is between its read and its wait.
                n.notify_one();
            }
        }
    }

    /// Partitions with at least one watcher.
    #[cfg(test)]
    fn watched_partitions(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len()).sum()
    }
}

/// One parked fetch's registration.
pub struct Watch {
    purgatory: Arc<Purgatory>,
    id: u64,
    notify: Arc<Notify>,
    watched: Vec<TopicPartition>,
}

impl Watch {
    /// Completes once a watched partition's high watermark moved since the last completion (or
    /// since the watch began).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for tp in &self.watched {
            let mut shard = self.purgatory.shard(tp).lock().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = shard.get_mut(tp) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    shard.remove(tp);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t".to_string(), p)
    }

    #[tokio::test]
    async fn a_wake_before_the_wait_is_not_lost() {
        let p = Arc::new(Purgatory::default());
        let w = p.watch([&tp(0)]);
        p.wake(&tp(0));
        tokio::time::timeout(Duration::from_secs(1), w.changed()).await.expect("the permit left by the wake");
    }

    #[tokio::test]
    async fn only_the_watched_partitions_wake_a_fetch() {
        let p = Arc::new(Purgatory::default());
        let w = p.watch([&tp(0), &tp(1)]);
        p.wake(&tp(2));
        assert!(tokio::time::timeout(Duration::from_millis(50), w.changed()).await.is_err(), "another partition's append");
        p.wake(&tp(1));
        tokio::time::timeout(Duration::from_secs(1), w.changed()).await.expect("a watched partition's append");
    }

    #[tokio::test]
    async fn dropping_a_watch_leaves_no_watchers_behind() {
        let p = Arc::new(Purgatory::default());
        let a = p.watch([&tp(0), &tp(1), &tp(0)]);
        let b = p.watch([&tp(1)]);
        assert_eq!(p.watched_partitions(), 2);
        drop(a);
        assert_eq!(p.watched_partitions(), 1);
        drop(b);
        assert_eq!(p.watched_partitions(), 0);
    }
}
