//! One partition's change, decided the way Kafka's `PartitionChangeBuilder` decides it: given the
//! current registration and target ISR / replicas / recovery state, elect a leader when needed and
//! emit the smallest `PartitionChangeRecord`, or nothing when nothing changes. The leader field is
//! set (bumping the leader epoch) exactly when the leader changes or a replica is removed from the
//! assignment; any record bumps the partition epoch. As Kafka from metadata version 3.6 on, an ISR
//! shrink alone does not bump the leader epoch. Eligible leader replicas (KIP-966) are not modelled:
//! they are off by default in Kafka 4.0, so an ISR never becomes empty.

use uuid::Uuid;

use crate::metadata::image::PartitionRegistration;
use crate::metadata::records::{LeaderRecoveryState, PartitionChangeRecord, NO_LEADER};

/// How to choose a leader when the current one is not acceptable (Kafka's `Election`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// The first replica if it is in the ISR and acceptable, else as `Online`.
    Preferred,
    /// Keep an acceptable ISR leader, else the first acceptable ISR member in replica order.
    Online,
    /// As `Online`, then any acceptable replica outside the ISR (`unclean.leader.election.enable`).
    Unclean,
}

pub struct PartitionChangeBuilder<'a> {
    partition: &'a PartitionRegistration,
    topic_id: Uuid,
    partition_id: i32,
    is_acceptable_leader: &'a dyn Fn(i32) -> bool,
    election: Election,
    target_isr: Vec<i32>,
    target_replicas: Vec<i32>,
    target_removing: Vec<i32>,
    target_adding: Vec<i32>,
    target_leader_recovery_state: LeaderRecoveryState,
}

impl<'a> PartitionChangeBuilder<'a> {
    pub fn new(partition: &'a PartitionRegistration, topic_id: Uuid, partition_id: i32, is_acceptable_leader: &'a dyn Fn(i32) -> bool) -> Self {
        Self {
            partition,
            topic_id,
            partition_id,
            is_acceptable_leader,
            election: Election::Online,
            target_isr: partition.isr.clone(),
            target_replicas: partition.replicas.clone(),
            target_removing: partition.removing_replicas.clone(),
            target_adding: partition.adding_replicas.clone(),
            target_leader_recovery_state: partition.leader_recovery_state,
        }
    }

    pub fn election(mut self, election: Election) -> Self {
        self.election = election;
        self
    }
    pub fn target_isr(mut self, isr: Vec<i32>) -> Self {
        self.target_isr = isr;
        self
    }
    pub fn target_replicas(mut self, replicas: Vec<i32>) -> Self {
        self.target_replicas = replicas;
        self
    }
    pub fn target_removing(mut self, removing: Vec<i32>) -> Self {
        self.target_removing = removing;
        self
    }
    pub fn target_adding(mut self, adding: Vec<i32>) -> Self {
        self.target_adding = adding;
        self
    }
    pub fn target_leader_recovery_state(mut self, state: LeaderRecoveryState) -> Self {
        self.target_leader_recovery_state = state;
        self
    }

    /// As Kafka's `LeaderAcceptor`: the broker may lead (registered, unfenced, not shutting down)
    /// and still has the log dir that held its replica.
    fn is_acceptable(&self, replica: i32) -> bool {
        (self.is_acceptable_leader)(replica) && !self.partition.lost_replicas.contains(&replica)
    }

    fn is_valid_new_leader(&self, replica: i32) -> bool {
        self.target_isr.contains(&replica) && self.is_acceptable(replica)
    }

    /// The leader to have and whether it was chosen outside the ISR.
    fn elect_leader(&self) -> (i32, bool) {
        if self.election == Election::Preferred
            && let Some(&first) = self.target_replicas.first()
            && self.is_valid_new_leader(first)
        {
            return (first, false);
        }
        if self.is_valid_new_leader(self.partition.leader) {
            return (self.partition.leader, false);
        }
        if let Some(&r) = self.target_replicas.iter().find(|&&r| self.is_valid_new_leader(r)) {
            return (r, false);
        }
        if self.election == Election::Unclean
            && let Some(&r) = self.target_replicas.iter().find(|&&r| self.is_acceptable(r))
        {
            return (r, true);
        }
        (NO_LEADER, false)
    }

    /// A reassignment completes (Kafka's `maybeCompleteReassignment`) when, without the removing
    /// replicas, the ISR is not empty and holds every remaining replica: the removing replicas
    /// then leave the assignment and the ISR, and adding/removing are cleared.
    fn complete_reassignment_if_needed(&mut self) {
        if self.target_removing.is_empty() && self.target_adding.is_empty() {
            return;
        }
        let removing = &self.target_removing;
        let isr: Vec<i32> = self.target_isr.iter().copied().filter(|r| !removing.contains(r)).collect();
        let replicas: Vec<i32> = self.target_replicas.iter().copied().filter(|r| !removing.contains(r)).collect();
        if isr.is_empty() || replicas.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return;
        }
        self.target_isr = isr;
        self.target_replicas = replicas;
        self.target_removing.clear();
        self.target_adding.clear();
    }

    /// The change record, or `None` when the partition would not change.
    pub fn build(mut self) -> Option<PartitionChangeRecord> {
        let mut record = PartitionChangeRecord::new(self.topic_id, self.partition_id);
        self.complete_reassignment_if_needed();

        let (leader, unclean) = self.elect_leader();
        if leader != self.partition.leader {
            record.leader = Some(leader);
            if unclean {
                // Data may be lost: the new leader's log is the truth, alone in the ISR.
                record.isr = Some(vec![leader]);
                if self.partition.leader_recovery_state != LeaderRecoveryState::Recovering {
                    record.leader_recovery_state = Some(LeaderRecoveryState::Recovering);
                }
            }
        }
        // Removing a replica from the assignment fences it by bumping the leader epoch.
        if record.leader.is_none() && !self.partition.replicas.iter().all(|r| self.target_replicas.contains(r)) {
            record.leader = Some(self.partition.leader);
        }
        if record.isr.is_none() && !self.target_isr.is_empty() && self.target_isr != self.partition.isr {
            record.isr = Some(self.target_isr.clone());
        }
        if self.target_replicas != self.partition.replicas {
            record.replicas = Some(self.target_replicas.clone());
        }
        if self.target_removing != self.partition.removing_replicas {
            record.removing_replicas = Some(self.target_removing.clone());
        }
        if self.target_adding != self.partition.adding_replicas {
            record.adding_replicas = Some(self.target_adding.clone());
        }
        if record.leader_recovery_state.is_none() && self.target_leader_recovery_state != self.partition.leader_recovery_state {
            record.leader_recovery_state = Some(self.target_leader_recovery_state);
        }
        let no_op = record.isr.is_none()
            && record.leader.is_none()
            && record.replicas.is_none()
            && record.removing_replicas.is_none()
            && record.adding_replicas.is_none()
            && record.leader_recovery_state.is_none();
        if no_op { None } else { Some(record) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            removing_replicas: vec![],
            adding_replicas: vec![],
            leader,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            leader_epoch: 5,
            partition_epoch: 9,
            lost_replicas: vec![],
        }
    }

    const T: Uuid = Uuid::from_u128(1);

    #[test]
    fn nothing_to_change_gives_no_record() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let all = |_| true;
        assert_eq!(PartitionChangeBuilder::new(&p, T, 0, &all).build(), None);
    }

    #[test]
    fn isr_shrink_changes_the_isr_only_and_does_not_bump_the_leader_epoch() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let all = |_| true;
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).target_isr(vec![1, 2]).build().unwrap();
        assert_eq!((r.isr, r.leader), (Some(vec![1, 2]), None));
        let merged = p.merge(&PartitionChangeRecord { isr: Some(vec![1, 2]), ..PartitionChangeRecord::new(T, 0) });
        assert_eq!((merged.leader_epoch, merged.partition_epoch), (5, 10));
    }

    #[test]
    fn an_unacceptable_leader_is_replaced_by_the_first_acceptable_isr_member_in_replica_order() {
        let p = reg(&[1, 2, 3], &[3, 2, 1], 1);
        let not1 = |r| r != 1;
        let r = PartitionChangeBuilder::new(&p, T, 0, &not1).target_isr(vec![3, 2]).build().unwrap();
        assert_eq!((r.leader, r.isr), (Some(2), Some(vec![3, 2])));
    }

    #[test]
    fn no_acceptable_isr_member_leaves_no_leader_and_keeps_the_last_isr_member() {
        let p = reg(&[1, 2], &[1], 1);
        let not1 = |r| r != 1;
        // The target ISR would be empty: Kafka keeps the ISR and sets the leader to -1.
        let r = PartitionChangeBuilder::new(&p, T, 0, &not1).target_isr(vec![]).build().unwrap();
        assert_eq!((r.leader, r.isr), (Some(NO_LEADER), None));
    }

    #[test]
    fn unclean_election_picks_a_live_replica_outside_the_isr_and_marks_recovering() {
        let p = reg(&[1, 2], &[1], 1);
        let not1 = |r| r != 1;
        let r = PartitionChangeBuilder::new(&p, T, 0, &not1).target_isr(vec![]).election(Election::Unclean).build().unwrap();
        assert_eq!(r.leader, Some(2));
        assert_eq!(r.isr, Some(vec![2]));
        assert_eq!(r.leader_recovery_state, Some(LeaderRecoveryState::Recovering));
    }

    #[test]
    fn a_replica_that_lost_its_log_dir_is_never_elected() {
        // Broker 1, the last ISR member, came back without the disk that held its replica.
        let mut p = reg(&[1, 2, 3], &[1], NO_LEADER);
        p.lost_replicas = vec![1];
        let all = |_| true;
        assert_eq!(PartitionChangeBuilder::new(&p, T, 0, &all).build(), None, "no clean leader: the partition stays offline");
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).election(Election::Preferred).build();
        assert_eq!(r, None, "not even as the preferred replica");
        // An unclean election takes a replica that kept its data.
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).target_isr(vec![]).election(Election::Unclean).build().unwrap();
        assert_eq!((r.leader, r.isr.clone()), (Some(2), Some(vec![2])));
        // Once the ISR took it back in (it caught up with a leader), it may lead again.
        let back = p.merge(&r).merge(&PartitionChangeRecord { isr: Some(vec![2, 1]), ..PartitionChangeRecord::new(T, 0) });
        assert!(back.lost_replicas.is_empty());
        let r = PartitionChangeBuilder::new(&back, T, 0, &all).election(Election::Preferred).build().unwrap();
        assert_eq!(r.leader, Some(1));
    }

    #[test]
    fn preferred_election_moves_leadership_back_to_the_first_replica() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 2);
        let all = |_| true;
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).election(Election::Preferred).build().unwrap();
        assert_eq!(r.leader, Some(1));
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).build();
        assert_eq!(r, None, "an online election keeps a valid leader");
    }

    #[test]
    fn removing_a_replica_bumps_the_leader_epoch_even_with_the_same_leader() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let all = |_| true;
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).target_replicas(vec![1, 2]).target_isr(vec![1, 2]).build().unwrap();
        assert_eq!((r.leader, r.replicas), (Some(1), Some(vec![1, 2])));
        // Adding a replica does not.
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).target_replicas(vec![1, 2, 3, 4]).build().unwrap();
        assert_eq!(r.leader, None);
    }

    #[test]
    fn a_stale_leader_with_no_leader_now_gets_one_when_an_isr_member_returns() {
        let p = reg(&[1, 2], &[1], NO_LEADER);
        let all = |_| true;
        let r = PartitionChangeBuilder::new(&p, T, 0, &all).build().unwrap();
        assert_eq!(r.leader, Some(1));
    }
}
