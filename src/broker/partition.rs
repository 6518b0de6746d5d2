//! One partition's replication state beside its log, as Kafka's `Partition` keeps it: who leads it
//! in which leader epoch, its replicas and in-sync replicas (ISR), how far each follower has
//! fetched, and the rules built on them — the high watermark is the smallest log end offset in
//! the ISR, a follower behind for `replica.lag.time.max.ms` leaves the ISR, a follower caught up
//! to the high watermark may rejoin it, acks=all needs `min.insync.replicas`.
//!
//! A single node leads every partition with itself as the only replica. The cluster's metadata
//! changes a partition through [`Partition::make_leader`] and [`Partition::make_follower`]; no
//! disk and no sockets here.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// No leader (`leader_id` -1 in Metadata).
pub const NO_LEADER: i32 = -1;

/// What the controller decides for a partition (Kafka's LeaderAndIsr / PartitionRecord fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change of the partition's state (ISR, replicas, leader).
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Why a request naming a leader epoch, or needing a leader, is refused; each is a Kafka error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("this broker is not the partition's leader")]
    NotLeaderOrFollower,
    /// The request's epoch is older than the partition's.
    #[error("the leader epoch in the request is older than the partition's")]
    FencedLeaderEpoch,
    /// The request's epoch is newer: this broker has not heard of it yet.
    #[error("the leader epoch in the request is newer than the partition's")]
    UnknownLeaderEpoch,
    /// A leader or ISR change older than what the partition has.
    #[error("stale leader or partition epoch")]
    StaleEpoch,
    #[error("the in-sync replicas are fewer than min.insync.replicas")]
    NotEnoughReplicas,
}

/// A follower as the leader sees it through its fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch.
    log_end: i64,
    /// The last time the follower was known to hold everything the leader had (Kafka's
    /// lastCaughtUpTimeMs).
    last_caught_up_ms: i64,
    /// The leader's log end offset and the time at the follower's previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

/// The replication state of one partition without its lock (the pure part, tested alone).
#[derive(Clone, Debug)]
pub struct ReplicationState {
    local: i32,
    state: LeaderAndIsr,
    /// Progress of each other replica, kept while this broker leads.
    followers: BTreeMap<i32, FollowerProgress>,
}

impl ReplicationState {
    /// A partition this node leads alone in `leader_epoch`.
    pub fn single_node(local: i32, leader_epoch: i32) -> Self {
        let state = LeaderAndIsr { leader: local, leader_epoch, partition_epoch: 0, replicas: vec![local], isr: vec![local] };
        ReplicationState { local, state, followers: BTreeMap::new() }
    }

    /// A replica in a cluster before the metadata named its leader: led by no one, at no epoch,
    /// so whatever the metadata says next is newer.
    pub fn awaiting_metadata(local: i32) -> Self {
        let state = LeaderAndIsr { leader: NO_LEADER, leader_epoch: -1, partition_epoch: -1, replicas: vec![], isr: vec![] };
        ReplicationState { local, state, followers: BTreeMap::new() }
    }

    pub fn state(&self) -> &LeaderAndIsr {
        &self.state
    }

    pub fn is_leader(&self) -> bool {
        self.state.leader == self.local
    }

    /// A client's `current_leader_epoch` against the partition's (KIP-320): -1 is not checked.
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        match current_leader_epoch {
            e if e > self.state.leader_epoch => Err(PartitionError::UnknownLeaderEpoch),
            e if e >= 0 && e < self.state.leader_epoch => Err(PartitionError::FencedLeaderEpoch),
            _ => Ok(()),
        }
    }

    /// What a consumer's fetch from any replica needs (KIP-392, Fetch v11+): this broker holds a
    /// replica of a partition with a leader (it leads or follows), in the epoch the client names.
    pub fn check_replica(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        self.check_epoch(current_leader_epoch)?;
        if self.state.leader >= 0 && (self.is_leader() || self.state.replicas.contains(&self.local)) { Ok(()) } else { Err(PartitionError::NotLeaderOrFollower) }
    }

    /// The replica a consumer in `client_rack` should fetch `fetch_offset` from instead of this
    /// leader, as Kafka's leader asks its RackAwareReplicaSelector (KIP-392): the candidates are
    /// the leader and the in-sync followers that hold the offset (their last fetch reached past
    /// it) and are live (`rack_of` knows them: `Some(rack)`); of those in the client's rack, the
    /// leader if it is one, else the follower with the largest log end, then the most recently
    /// caught up. None (fetch here) when this broker does not lead, the client names no rack, or
    /// no other replica in its rack qualifies.
    pub fn preferred_read_replica(&self, client_rack: &str, fetch_offset: i64, now_ms: i64, rack_of: impl Fn(i32) -> Option<Option<String>>) -> Option<i32> {
        if !self.is_leader() || client_rack.is_empty() {
            return None;
        }
        let in_rack = |id: i32| rack_of(id).flatten().is_some_and(|r| r == client_rack);
        if in_rack(self.local) {
            return None;
        }
        self.followers
            .iter()
            .filter(|(id, f)| self.state.isr.contains(id) && f.log_end >= fetch_offset && in_rack(**id))
            .max_by_key(|(id, f)| (f.log_end, f.last_caught_up_ms.min(now_ms), std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// What a produce, or a consumer's fetch, needs: this broker leads, in the epoch the client
    /// names (if it names one).
    pub fn check_leader(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        self.check_epoch(current_leader_epoch)?;
        if self.is_leader() { Ok(()) } else { Err(PartitionError::NotLeaderOrFollower) }
    }

    fn is_stale(&self, next: &LeaderAndIsr) -> bool {
        next.leader_epoch < self.state.leader_epoch || (next.leader_epoch == self.state.leader_epoch && next.partition_epoch < self.state.partition_epoch)
    }

    /// This broker leads from now on. The followers' progress starts over in a new epoch; ISR
    /// members count as caught up now, so none is dropped before it could fetch. Returns whether
    /// the leader epoch changed (the log then records the new epoch at its end).
    pub fn make_leader(&mut self, next: LeaderAndIsr, local_log_end: i64, now_ms: i64) -> Result<bool, PartitionError> {
        if self.is_stale(&next) {
            return Err(PartitionError::StaleEpoch);
        }
        debug_assert_eq!(next.leader, self.local);
        let new_epoch = next.leader_epoch != self.state.leader_epoch || !self.is_leader();
        if new_epoch {
            self.followers.clear();
        }
        for &r in next.replicas.iter().filter(|&&r| r != self.local) {
            let in_isr = next.isr.contains(&r);
            self.followers.entry(r).or_insert(FollowerProgress {
                log_end: -1,
                last_caught_up_ms: if in_isr { now_ms } else { -1 },
                last_fetch_leader_end: local_log_end,
                last_fetch_ms: now_ms,
            });
        }
        self.followers.retain(|r, _| next.replicas.contains(r));
        self.state = next;
        Ok(new_epoch)
    }

    /// Another broker (or none) leads from now on; this one fetches from it.
    pub fn make_follower(&mut self, next: LeaderAndIsr) -> Result<bool, PartitionError> {
        if self.is_stale(&next) {
            return Err(PartitionError::StaleEpoch);
        }
        let changed = next.leader != self.state.leader || next.leader_epoch != self.state.leader_epoch;
        self.followers.clear();
        self.state = next;
        Ok(changed)
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at `leader_log_end`.
    /// As Kafka: the follower is caught up now if it asked for the leader's end, and was caught
    /// up at its previous fetch if it asked for what the leader's end was then.
    pub fn record_follower_fetch(&mut self, replica: i32, fetch_offset: i64, leader_log_end: i64, now_ms: i64) -> Result<(), PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let Some(f) = self.followers.get_mut(&replica) else {
            return Err(PartitionError::NotLeaderOrFollower);
        };
        if fetch_offset >= leader_log_end {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_leader_end = leader_log_end;
        f.last_fetch_ms = now_ms;
        Ok(())
    }

    /// The high watermark the leader may publish: the smallest log end offset in the ISR (its own
    /// included), never below `current` (a high watermark does not go back while one leads).
    pub fn high_watermark(&self, local_log_end: i64, current: i64) -> i64 {
        if !self.is_leader() {
            return current;
        }
        let isr_min = self
            .state
            .isr
            .iter()
            .filter(|&&r| r != self.local)
            .map(|r| self.followers.get(r).map_or(-1, |f| f.log_end))
            .fold(local_log_end, i64::min);
        isr_min.max(current)
    }

    /// The ISR without the followers behind for longer than `lag_max_ms`
    /// (`replica.lag.time.max.ms`), if any is; never empty, and the leader always stays.
    pub fn isr_to_shrink(&self, local_log_end: i64, now_ms: i64, lag_max_ms: i64) -> Option<Vec<i32>> {
        if !self.is_leader() {
            return None;
        }
        let out_of_sync = |r: &i32| {
            *r != self.local
                && self.followers.get(r).is_none_or(|f| f.log_end != local_log_end && now_ms - f.last_caught_up_ms > lag_max_ms)
        };
        let keep: Vec<i32> = self.state.isr.iter().copied().filter(|r| !out_of_sync(r)).collect();
        (keep.len() < self.state.isr.len()).then_some(keep)
    }

    /// The ISR with `replica` added, when it is a replica outside the ISR that has caught up to
    /// the high watermark and to the start of the current leader epoch (Kafka's condition).
    pub fn isr_to_expand(&self, replica: i32, high_watermark: i64, epoch_start_offset: i64) -> Option<Vec<i32>> {
        if !self.is_leader() || self.state.isr.contains(&replica) {
            return None;
        }
        let f = self.followers.get(&replica)?;
        (f.log_end >= high_watermark && f.log_end >= epoch_start_offset).then(|| {
            let mut isr = self.state.isr.clone();
            isr.push(replica);
            isr
        })
    }

    /// acks=all is taken only while the ISR has at least `min_isr` members.
    pub fn check_min_isr(&self, min_isr: i32) -> Result<(), PartitionError> {
        if (self.state.isr.len() as i64) < i64::from(min_isr) { Err(PartitionError::NotEnoughReplicas) } else { Ok(()) }
    }

    /// The controller accepted an ISR change (AlterPartition's answer).
    pub fn apply_isr(&mut self, isr: Vec<i32>, partition_epoch: i32) -> Result<(), PartitionError> {
        if partition_epoch < self.state.partition_epoch {
            return Err(PartitionError::StaleEpoch);
        }
        self.state.isr = isr;
        self.state.partition_epoch = partition_epoch;
        Ok(())
    }
}

/// One partition's replication state behind its lock, shared by the request handlers.
#[derive(Debug)]
pub struct Partition {
    state: Mutex<ReplicationState>,
}

impl Partition {
    pub fn new(state: ReplicationState) -> Self {
        Partition { state: Mutex::new(state) }
    }

    /// The state, locked: held only for memory work, never across I/O.
    pub fn lock(&self) -> MutexGuard<'_, ReplicationState> {
        // Every change is a whole-field assignment, so a poisoned lock still guards a state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn leader_and_isr(&self) -> LeaderAndIsr {
        self.lock().state().clone()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.lock().state().leader_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(isr: &[i32]) -> ReplicationState {
        let mut s = ReplicationState::single_node(1, 0);
        let next = LeaderAndIsr { leader: 1, leader_epoch: 1, partition_epoch: 1, replicas: vec![1, 2, 3], isr: isr.to_vec() };
        assert_eq!(s.make_leader(next, 100, 1_000), Ok(true));
        s
    }

    #[test]
    fn a_single_node_leads_alone_and_checks_epochs_as_kip_320() {
        let s = ReplicationState::single_node(7, 3);
        assert!(s.is_leader());
        assert_eq!(s.state().replicas, vec![7]);
        assert_eq!(s.check_leader(-1), Ok(()));
        assert_eq!(s.check_leader(3), Ok(()));
        assert_eq!(s.check_leader(2), Err(PartitionError::FencedLeaderEpoch));
        assert_eq!(s.check_leader(4), Err(PartitionError::UnknownLeaderEpoch));
        assert_eq!(s.high_watermark(42, 0), 42, "alone, the high watermark is the log end");
        assert_eq!(s.check_min_isr(1), Ok(()));
        assert_eq!(s.check_min_isr(2), Err(PartitionError::NotEnoughReplicas));
    }

    #[test]
    fn the_preferred_read_replica_is_a_caught_up_in_sync_follower_in_the_consumers_rack() {
        let racks = |down: i32| move |id: i32| (id != down).then(|| Some(["", "a", "b", "b"][id as usize].to_string()));
        let mut s = led(&[1, 2, 3]);
        s.record_follower_fetch(2, 100, 100, 1_000).unwrap();
        s.record_follower_fetch(3, 90, 100, 1_000).unwrap();
        assert_eq!(s.preferred_read_replica("", 50, 2_000, racks(0)), None, "no client rack: the leader");
        assert_eq!(s.preferred_read_replica("a", 50, 2_000, racks(0)), None, "the leader is in the client's rack");
        assert_eq!(s.preferred_read_replica("b", 50, 2_000, racks(0)), Some(2), "the in-rack follower with the larger log end");
        assert_eq!(s.preferred_read_replica("b", 95, 2_000, racks(0)), Some(2), "only a follower holding the offset");
        assert_eq!(s.preferred_read_replica("b", 101, 2_000, racks(0)), None, "no follower holds it yet");
        assert_eq!(s.preferred_read_replica("b", 50, 2_000, racks(2)), Some(3), "a broker that is not live is skipped");
        assert_eq!(s.preferred_read_replica("c", 50, 2_000, racks(0)), None, "nobody in the rack: the leader");
        let mut s = led(&[1, 3]);
        s.record_follower_fetch(2, 100, 100, 1_000).unwrap();
        s.record_follower_fetch(3, 100, 100, 1_000).unwrap();
        assert_eq!(s.preferred_read_replica("b", 50, 2_000, racks(0)), Some(3), "a follower outside the ISR is not chosen");
        // A follower replica never redirects: only the leader chooses.
        let mut f = ReplicationState::awaiting_metadata(2);
        f.make_follower(LeaderAndIsr { leader: 1, leader_epoch: 1, partition_epoch: 1, replicas: vec![1, 2, 3], isr: vec![1, 2, 3] }).unwrap();
        assert_eq!(f.preferred_read_replica("b", 0, 2_000, racks(0)), None);
        assert_eq!(f.check_replica(1), Ok(()), "a follower serves consumers (KIP-392)");
        assert_eq!(f.check_replica(0), Err(PartitionError::FencedLeaderEpoch));
        assert_eq!(f.check_leader(1), Err(PartitionError::NotLeaderOrFollower));
        assert_eq!(ReplicationState::awaiting_metadata(2).check_replica(-1), Err(PartitionError::NotLeaderOrFollower), "no leader known yet");
    }

    #[test]
    fn the_high_watermark_is_the_slowest_in_sync_replica_and_never_goes_back() {
        let mut s = led(&[1, 2, 3]);
        assert_eq!(s.high_watermark(100, 90), 90, "followers that never fetched hold it where it was");
        s.record_follower_fetch(2, 95, 100, 1_100).unwrap();
        s.record_follower_fetch(3, 98, 100, 1_100).unwrap();
        assert_eq!(s.high_watermark(100, 90), 95);
        s.record_follower_fetch(2, 100, 100, 1_200).unwrap();
        assert_eq!(s.high_watermark(100, 90), 98);
        // A replica outside the ISR does not hold it back.
        let mut s = led(&[1, 2]);
        s.record_follower_fetch(2, 100, 100, 1_100).unwrap();
        assert_eq!(s.high_watermark(100, 0), 100);
    }

    #[test]
    fn a_follower_behind_for_the_lag_time_leaves_the_isr_and_rejoins_when_caught_up() {
        let mut s = led(&[1, 2, 3]);
        // Follower 2 keeps up; 3 stops fetching.
        s.record_follower_fetch(2, 100, 100, 1_000).unwrap();
        s.record_follower_fetch(3, 100, 100, 1_000).unwrap();
        assert_eq!(s.isr_to_shrink(150, 30_000, 30_000), None, "exactly the lag time is not yet out");
        s.record_follower_fetch(2, 150, 150, 30_500).unwrap();
        assert_eq!(s.isr_to_shrink(150, 31_001, 30_000), Some(vec![1, 2]));
        s.apply_isr(vec![1, 2], 2).unwrap();
        assert_eq!(s.isr_to_expand(3, 150, 100), None, "not caught up to the high watermark");
        s.record_follower_fetch(3, 150, 150, 32_000).unwrap();
        assert_eq!(s.isr_to_expand(3, 150, 100), Some(vec![1, 2, 3]));
        assert_eq!(s.isr_to_expand(2, 150, 100), None, "already in");
        assert_eq!(s.apply_isr(vec![1], 1), Err(PartitionError::StaleEpoch));
    }

    #[test]
    fn a_follower_reading_the_leaders_previous_end_counts_as_caught_up_then() {
        let mut s = led(&[1, 2]);
        s.record_follower_fetch(2, 100, 100, 1_000).unwrap();
        // The leader appended; the follower's next fetch asks for the old end: it had everything
        // the leader had at its previous fetch, so it was caught up then.
        s.record_follower_fetch(2, 100, 200, 40_000).unwrap();
        assert_eq!(s.isr_to_shrink(200, 41_000, 30_000), Some(vec![1]), "caught up at 1 000, 40 s ago");
        s.record_follower_fetch(2, 200, 300, 41_000).unwrap();
        assert_eq!(s.isr_to_shrink(300, 42_000, 30_000), None, "caught up at 40 000");
    }

    #[test]
    fn stale_changes_are_refused_and_a_follower_does_not_lead() {
        let mut s = led(&[1, 2, 3]);
        let old = LeaderAndIsr { leader: 2, leader_epoch: 0, partition_epoch: 5, replicas: vec![1, 2, 3], isr: vec![2] };
        assert_eq!(s.make_follower(old), Err(PartitionError::StaleEpoch));
        let next = LeaderAndIsr { leader: 2, leader_epoch: 2, partition_epoch: 2, replicas: vec![1, 2, 3], isr: vec![1, 2, 3] };
        assert_eq!(s.make_follower(next), Ok(true));
        assert!(!s.is_leader());
        assert_eq!(s.check_leader(2), Err(PartitionError::NotLeaderOrFollower));
        assert_eq!(s.check_epoch(2), Ok(()), "a follower still checks epochs (follower fetches)");
        assert_eq!(s.record_follower_fetch(3, 0, 0, 0), Err(PartitionError::NotLeaderOrFollower));
        assert_eq!(s.high_watermark(500, 80), 80, "a follower takes the leader's high watermark");
        assert_eq!(s.isr_to_shrink(500, i64::MAX / 2, 1), None);
    }
}
