//! A coordinator's state keyed by id (group id, transactional id), split into one shard per
//! partition of its internal topic, each behind its own lock, as Kafka's coordinator runtime
//! runs one shard per `__consumer_offsets` / `__transaction_state` partition. An id lives in the
//! shard of the partition its records go to (`records::internal::partition_for`), so the records
//! of one partition are written in the order their shard applies the changes, and ids on
//! different partitions never wait for each other. Never does I/O itself; never hands out two
//! shard locks at once to one caller by itself.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use crate::records::internal::partition_for;

type Shard<V> = Mutex<HashMap<String, V>>;

pub struct Shards<V> {
    /// One map per partition. The outer lock is taken for writing only when the partition count
    /// changes (the topic was created with another count than the one used until then), which
    /// moves every id to the shard of its new partition.
    shards: RwLock<Vec<Shard<V>>>,
}

/// The shards at one partition count, for the span of one operation. Lock one shard at a time:
/// taking a second while holding one may deadlock with another operation doing the reverse.
/// Do not take a second view on the same thread while holding one (a waiting re-shard would
/// block it).
pub struct ShardsView<'a, V> {
    shards: RwLockReadGuard<'a, Vec<Shard<V>>>,
}

fn make<V>(partitions: usize) -> Vec<Shard<V>> {
    (0..partitions).map(|_| Mutex::new(HashMap::new())).collect()
}

impl<V> Shards<V> {
    /// Empty shards for `partitions` partitions (at least one).
    pub fn new(partitions: i32) -> Shards<V> {
        Shards { shards: RwLock::new(make(partitions.max(1) as usize)) }
    }

    /// The shards at `partitions` partitions (the topic's count, or the configured one while the
    /// topic does not exist); when that differs from the count used so far, every id first moves
    /// to the shard of the partition it now hashes to.
    pub fn view(&self, partitions: i32) -> ShardsView<'_, V> {
        let want = partitions.max(1) as usize;
        loop {
            {
                let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
                if shards.len() == want {
                    return ShardsView { shards };
                }
            }
            let mut shards = self.shards.write().unwrap_or_else(|e| e.into_inner());
            if shards.len() != want {
                let old = std::mem::replace(&mut *shards, make(want));
                let from = old.len();
                for shard in old {
                    for (id, v) in shard.into_inner().unwrap_or_else(|e| e.into_inner()) {
                        let p = partition_for(&id, want as i32) as usize;
                        shards[p].get_mut().unwrap_or_else(|e| e.into_inner()).insert(id, v);
                    }
                }
                tracing::info!(from, to = want, "coordinator state re-sharded to the internal topic's partition count");
            }
        }
    }

    /// The shards as they are, without looking at the partition count: for reads that need no
    /// log (an id is always in the shard its hash gives at the current count).
    pub fn view_current(&self) -> ShardsView<'_, V> {
        ShardsView { shards: self.shards.read().unwrap_or_else(|e| e.into_inner()) }
    }
}

impl<V> ShardsView<'_, V> {
    /// The partition count the shards follow.
    pub fn partitions(&self) -> i32 {
        self.shards.len() as i32
    }

    /// The partition (and shard) of an id.
    pub fn partition_of(&self, id: &str) -> i32 {
        partition_for(id, self.partitions())
    }

    /// The shard of one partition; None outside the count.
    pub fn lock(&self, partition: i32) -> Option<MutexGuard<'_, HashMap<String, V>>> {
        let shard = self.shards.get(usize::try_from(partition).ok()?)?;
        Some(shard.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The shard of one partition if nobody holds it (tests: proves a lock is held).
    #[cfg(test)]
    pub fn try_lock(&self, partition: i32) -> Option<MutexGuard<'_, HashMap<String, V>>> {
        self.shards.get(usize::try_from(partition).ok()?)?.try_lock().ok()
    }

    /// The shard holding `id`.
    pub fn lock_id(&self, id: &str) -> MutexGuard<'_, HashMap<String, V>> {
        self.shards[self.partition_of(id) as usize].lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_live_in_the_shard_of_their_partition_and_move_when_the_count_changes() {
        let shards: Shards<u32> = Shards::new(0);
        assert_eq!(shards.view_current().partitions(), 1, "at least one shard");
        let ids: Vec<String> = (0..200).map(|i| format!("group-{i}")).collect();
        {
            let view = shards.view(50);
            for (i, id) in ids.iter().enumerate() {
                view.lock_id(id).insert(id.clone(), i as u32);
            }
            for id in &ids {
                let p = partition_for(id, 50);
                assert_eq!(view.partition_of(id), p);
                assert!(view.lock(p).unwrap().contains_key(id));
            }
            assert!(view.lock(50).is_none() && view.lock(-1).is_none());
        }
        // The topic turned out to have 7 partitions: every id is found where 7 puts it.
        let view = shards.view(7);
        assert_eq!(view.partitions(), 7);
        let mut seen = 0;
        for p in 0..7 {
            let shard = view.lock(p).unwrap();
            for id in shard.keys() {
                assert_eq!(partition_for(id, 7), p);
            }
            seen += shard.len();
        }
        assert_eq!(seen, ids.len());
        assert_eq!(view.lock_id("group-42").get("group-42"), Some(&42));
    }

    #[test]
    fn a_held_shard_does_not_block_another_partition_but_blocks_its_own() {
        let shards: Shards<()> = Shards::new(4);
        let view = shards.view(4);
        let _held = view.lock(0).unwrap();
        std::thread::scope(|s| {
            // Another thread gets shard 1 while shard 0 is held...
            s.spawn(|| assert!(shards.view(4).lock(1).is_some())).join().unwrap();
            // ...but not shard 0.
            s.spawn(|| assert!(shards.view_current().try_lock(0).is_none()))
            .join()
            .unwrap();
        });
    }
}
