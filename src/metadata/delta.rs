//! The local changes one broker must act on when the metadata image moves from one version to the
//! next: partitions to lead, to follow, to stop and delete, and the group / transaction coordinator
//! partitions to load or unload. Pure comparison of two images; it acts on nothing itself.

use uuid::Uuid;

use super::image::{MetadataImage, PartitionRegistration};
use crate::types::TopicPartition;

// The internal topics' names are repeated here (a test checks them against `group` and `txn`)
// so that the metadata layer does not depend on the coordinators above it.
/// `__consumer_offsets`: its leaders host the group coordinator.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `__transaction_state`: its leaders host the transaction coordinator.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// This node became (or stays, at a new epoch) leader of the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalLeader {
    pub topic_partition: TopicPartition,
    pub topic_id: Uuid,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
}

/// This node is a follower (or a replica with no leader, `leader_id == -1`) of the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFollower {
    pub topic_partition: TopicPartition,
    pub topic_id: Uuid,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// The topic was deleted.
    TopicRemoved,
    /// The topic remains but this node is no longer one of the partition's replicas.
    ReplicaMovedAway,
}

/// Stop the replica and delete its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalDelete {
    pub topic_partition: TopicPartition,
    pub topic_id: Uuid,
    pub reason: DeleteReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorKind {
    /// Group coordinator (`__consumer_offsets`).
    Group,
    /// Transaction coordinator (`__transaction_state`).
    Transaction,
}

impl CoordinatorKind {
    fn of_topic(name: &str) -> Option<Self> {
        match name {
            OFFSETS_TOPIC => Some(CoordinatorKind::Group),
            TRANSACTION_STATE_TOPIC => Some(CoordinatorKind::Transaction),
            _ => None,
        }
    }
}

/// Load the coordinator state of an internal-topic partition this node now leads
/// (`newly_elected`), or, when it led it already, take the new leader epoch as the coordinator
/// epoch (a leader epoch bump without a leader change, as when a replica is removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorLoad {
    pub kind: CoordinatorKind,
    pub partition: i32,
    pub leader_epoch: i32,
    pub newly_elected: bool,
}

/// Unload the coordinator state of a partition this node no longer leads. `leader_epoch` is the
/// partition's new leader epoch, `None` when the partition is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorUnload {
    pub kind: CoordinatorKind,
    pub partition: i32,
    pub leader_epoch: Option<i32>,
}

/// What one broker must do between two images. Each list is in (topic name, partition) order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalChanges {
    pub leaders: Vec<LocalLeader>,
    pub followers: Vec<LocalFollower>,
    pub deletes: Vec<LocalDelete>,
    pub coordinators_to_load: Vec<CoordinatorLoad>,
    pub coordinators_to_unload: Vec<CoordinatorUnload>,
}

impl LocalChanges {
    pub fn is_empty(&self) -> bool {
        self == &LocalChanges::default()
    }
}

/// The changes `node_id` must act on when the image moves from `prev` to `next`. A partition is
/// reported as leader or follower when it is new to this node or its registration changed (any
/// change bumps the partition epoch); unchanged partitions are not reported.
pub fn local_changes(prev: &MetadataImage, next: &MetadataImage, node_id: i32) -> LocalChanges {
    let mut out = LocalChanges::default();

    // Leaders and followers in the new image.
    for topic in next.topics() {
        let coordinator = CoordinatorKind::of_topic(&topic.name);
        for (&pid, part) in &topic.partitions {
            if !part.replicas.contains(&node_id) {
                continue;
            }
            let old: Option<&PartitionRegistration> = prev.partition(topic.id, pid);
            if old == Some(part) {
                continue;
            }
            let tp = TopicPartition::new(topic.name.clone(), pid);
            let was_leader = old.is_some_and(|o| o.leader == node_id);
            if part.leader == node_id {
                out.leaders.push(LocalLeader {
                    topic_partition: tp,
                    topic_id: topic.id,
                    leader_epoch: part.leader_epoch,
                    partition_epoch: part.partition_epoch,
                    isr: part.isr.clone(),
                    replicas: part.replicas.clone(),
                });
                let epoch_changed = old.is_none_or(|o| o.leader_epoch != part.leader_epoch);
                if let Some(kind) = coordinator
                    && (!was_leader || epoch_changed)
                {
                    out.coordinators_to_load.push(CoordinatorLoad { kind, partition: pid, leader_epoch: part.leader_epoch, newly_elected: !was_leader });
                }
            } else {
                out.followers.push(LocalFollower {
                    topic_partition: tp,
                    topic_id: topic.id,
                    leader_id: part.leader,
                    leader_epoch: part.leader_epoch,
                    partition_epoch: part.partition_epoch,
                    replicas: part.replicas.clone(),
                });
                if let (Some(kind), true) = (coordinator, was_leader) {
                    out.coordinators_to_unload.push(CoordinatorUnload { kind, partition: pid, leader_epoch: Some(part.leader_epoch) });
                }
            }
        }
    }

    // Replicas this node held before and holds no more.
    for topic in prev.topics() {
        let coordinator = CoordinatorKind::of_topic(&topic.name);
        let next_topic = next.topic_by_id(topic.id);
        for (&pid, part) in &topic.partitions {
            if !part.replicas.contains(&node_id) {
                continue;
            }
            let reason = match next_topic {
                None => DeleteReason::TopicRemoved,
                Some(t) => match t.partitions.get(&pid) {
                    None => DeleteReason::TopicRemoved,
                    Some(p) if !p.replicas.contains(&node_id) => DeleteReason::ReplicaMovedAway,
                    Some(_) => continue,
                },
            };
            out.deletes.push(LocalDelete { topic_partition: TopicPartition::new(topic.name.clone(), pid), topic_id: topic.id, reason });
            if let (Some(kind), true) = (coordinator, part.leader == node_id) {
                let new_epoch = next_topic.and_then(|t| t.partitions.get(&pid)).map(|p| p.leader_epoch);
                out.coordinators_to_unload.push(CoordinatorUnload { kind, partition: pid, leader_epoch: new_epoch });
            }
        }
    }

    let by_tp = |a: &TopicPartition, b: &TopicPartition| a.cmp(b);
    out.leaders.sort_by(|a, b| by_tp(&a.topic_partition, &b.topic_partition));
    out.followers.sort_by(|a, b| by_tp(&a.topic_partition, &b.topic_partition));
    out.deletes.sort_by(|a, b| by_tp(&a.topic_partition, &b.topic_partition));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::tests::{partition, register};
    use crate::metadata::records::*;

    const ME: i32 = 1;

    fn with_topic(image: &mut MetadataImage, name: &str, id: u128, parts: &[(&[i32], &[i32], i32)]) -> Uuid {
        let topic_id = Uuid::from_u128(id);
        image.apply(&MetadataRecord::Topic(TopicRecord { name: name.into(), topic_id })).unwrap();
        for (i, (replicas, isr, leader)) in parts.iter().enumerate() {
            image.apply(&partition(topic_id, i as i32, replicas, isr, *leader)).unwrap();
        }
        topic_id
    }

    fn change(image: &mut MetadataImage, topic_id: Uuid, pid: i32, f: impl FnOnce(&mut PartitionChangeRecord)) {
        let mut c = PartitionChangeRecord::new(topic_id, pid);
        f(&mut c);
        image.apply(&MetadataRecord::PartitionChange(c)).unwrap();
    }

    fn base() -> MetadataImage {
        let mut image = MetadataImage::new();
        for id in 1..=3 {
            image.apply(&register(id, 1, None, false)).unwrap();
        }
        image
    }

    #[test]
    fn a_new_topic_makes_this_node_leader_of_some_partitions_and_follower_of_others() {
        let prev = base();
        let mut next = prev.clone();
        let id = with_topic(&mut next, "t", 1, &[(&[1, 2], &[1, 2], 1), (&[2, 1], &[2, 1], 2), (&[2, 3], &[2, 3], 2)]);
        let c = local_changes(&prev, &next, ME);
        assert_eq!(
            c.leaders,
            vec![LocalLeader {
                topic_partition: TopicPartition::new("t", 0),
                topic_id: id,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: vec![1, 2],
                replicas: vec![1, 2]
            }]
        );
        assert_eq!(c.followers.len(), 1);
        assert_eq!((c.followers[0].topic_partition.partition, c.followers[0].leader_id), (1, 2));
        assert!(c.deletes.is_empty() && c.coordinators_to_load.is_empty());
    }

    #[test]
    fn internal_topic_names_are_the_coordinators_own() {
        assert_eq!(OFFSETS_TOPIC, crate::group::OFFSETS_TOPIC);
        assert_eq!(TRANSACTION_STATE_TOPIC, crate::txn::TRANSACTION_STATE_TOPIC);
    }

    #[test]
    fn unchanged_partitions_are_not_reported() {
        let mut prev = base();
        with_topic(&mut prev, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
        let next = prev.clone();
        assert!(local_changes(&prev, &next, ME).is_empty());
    }

    #[test]
    fn losing_leadership_makes_this_node_a_follower_at_the_new_epoch() {
        let mut prev = base();
        let id = with_topic(&mut prev, "t", 1, &[(&[1, 2], &[1, 2], 1)]);
        let mut next = prev.clone();
        change(&mut next, id, 0, |c| {
            c.leader = Some(2);
            c.isr = Some(vec![2]);
        });
        let c = local_changes(&prev, &next, ME);
        assert!(c.leaders.is_empty());
        assert_eq!((c.followers[0].leader_id, c.followers[0].leader_epoch), (2, 1));
        // And the other way round: node 2 sees nothing to delete, only its new leadership.
        let c2 = local_changes(&prev, &next, 2);
        assert_eq!((c2.leaders[0].leader_epoch, c2.leaders[0].isr.clone()), (1, vec![2]));
    }

    #[test]
    fn an_isr_change_is_reported_to_the_leader_with_the_new_partition_epoch() {
        let mut prev = base();
        let id = with_topic(&mut prev, "t", 1, &[(&[1, 2, 3], &[1, 2, 3], 1)]);
        let mut next = prev.clone();
        change(&mut next, id, 0, |c| c.isr = Some(vec![1, 2]));
        let c = local_changes(&prev, &next, ME);
        assert_eq!((c.leaders[0].leader_epoch, c.leaders[0].partition_epoch, c.leaders[0].isr.clone()), (0, 1, vec![1, 2]));
    }

    #[test]
    fn a_removed_topic_deletes_its_replicas() {
        let mut prev = base();
        let id = with_topic(&mut prev, "t", 1, &[(&[1, 2], &[1, 2], 1), (&[2, 3], &[2, 3], 2)]);
        let mut next = prev.clone();
        next.apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id })).unwrap();
        let c = local_changes(&prev, &next, ME);
        assert_eq!(
            c.deletes,
            vec![LocalDelete { topic_partition: TopicPartition::new("t", 0), topic_id: id, reason: DeleteReason::TopicRemoved }]
        );
    }

    #[test]
    fn a_replica_moved_away_is_deleted_and_a_replica_moved_here_is_followed() {
        let mut prev = base();
        let id = with_topic(&mut prev, "t", 1, &[(&[1, 2], &[1, 2], 2), (&[2, 3], &[2, 3], 2)]);
        let mut next = prev.clone();
        change(&mut next, id, 0, |c| {
            c.replicas = Some(vec![2, 3]);
            c.isr = Some(vec![2, 3]);
            c.leader = Some(2);
        });
        change(&mut next, id, 1, |c| c.replicas = Some(vec![2, 3, 1]));
        let c = local_changes(&prev, &next, ME);
        assert_eq!(c.deletes[0].reason, DeleteReason::ReplicaMovedAway);
        assert_eq!(c.deletes[0].topic_partition.partition, 0);
        assert_eq!(c.followers.len(), 1);
        assert_eq!(c.followers[0].topic_partition.partition, 1);
    }

    #[test]
    fn a_recreated_topic_deletes_the_old_id_and_follows_the_new_one() {
        let mut prev = base();
        let old = with_topic(&mut prev, "t", 1, &[(&[1, 2], &[1, 2], 2)]);
        let mut next = prev.clone();
        next.apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: old })).unwrap();
        let new = with_topic(&mut next, "t", 2, &[(&[1, 2], &[1, 2], 2)]);
        let c = local_changes(&prev, &next, ME);
        assert_eq!((c.deletes[0].topic_id, c.deletes[0].reason), (old, DeleteReason::TopicRemoved));
        assert_eq!(c.followers[0].topic_id, new);
    }

    use proptest::prelude::*;

    const NAMES: [&str; 4] = ["a", "b", OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC];

    fn arb_replicas() -> impl Strategy<Value = Vec<i32>> {
        prop::sample::subsequence(vec![0, 1, 2, 3], 1..4).prop_shuffle()
    }

    /// Up to four topics (two of them the coordinators' internal topics) of 1-3 partitions each.
    fn arb_topics() -> impl Strategy<Value = Vec<MetadataRecord>> {
        prop::collection::vec(prop::collection::vec((arb_replicas(), any::<prop::sample::Index>(), prop::bool::weighted(0.1)), 1..4), 1..5).prop_map(|topics| {
            let mut out = Vec::new();
            for (k, parts) in topics.into_iter().enumerate() {
                let topic_id = Uuid::from_u128(k as u128 + 1);
                out.push(MetadataRecord::Topic(TopicRecord { name: NAMES[k].into(), topic_id }));
                for (pid, (replicas, at, leaderless)) in parts.into_iter().enumerate() {
                    let leader = if leaderless { -1 } else { replicas[at.index(replicas.len())] };
                    out.push(partition(topic_id, pid as i32, &replicas, &replicas, leader));
                }
            }
            out
        })
    }

    /// A change to one of those partitions, a topic deletion, or a topic recreated under a new id.
    fn arb_change() -> impl Strategy<Value = Vec<MetadataRecord>> {
        prop_oneof![
            4 => (0u128..4, 0i32..3, prop::option::of(-1i32..4), prop::option::of(arb_replicas()), prop::option::of(arb_replicas())).prop_map(
                |(t, pid, leader, replicas, isr)| vec![MetadataRecord::PartitionChange(PartitionChangeRecord {
                    leader,
                    replicas,
                    isr,
                    ..PartitionChangeRecord::new(Uuid::from_u128(t + 1), pid)
                })]
            ),
            1 => (0u128..4).prop_map(|t| vec![MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: Uuid::from_u128(t + 1) })]),
            1 => (0usize..4, arb_replicas(), 0i32..4).prop_map(|(k, replicas, leader)| {
                let topic_id = Uuid::from_u128(100 + k as u128);
                vec![
                    MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: Uuid::from_u128(k as u128 + 1) }),
                    MetadataRecord::Topic(TopicRecord { name: NAMES[k].into(), topic_id }),
                    partition(topic_id, 0, &replicas, &replicas, leader),
                ]
            }),
        ]
    }

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            let _ = image.apply(r);
        }
    }

    proptest::proptest! {
        // Coordinator elections are rare in random histories: more cases to see a few dozen.
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// For any two images (the second built on the first): every changed or new partition
        /// this node is a replica of is reported exactly once, as leader iff it leads it; every
        /// replica it lost is deleted; nothing unchanged is reported; coordinator loads and unloads
        /// are only for the two internal topics and agree with the leader lists.
        #[test]
        fn local_changes_cover_every_transition_exactly_once(
            first in arb_topics(),
            second in proptest::collection::vec(arb_change(), 0..12),
            node in 0i32..4,
        ) {
            let mut prev = MetadataImage::new();
            apply_all(&mut prev, &first);
            let mut next = prev.clone();
            for batch in &second {
                let _ = next.apply_batch(0, batch);
            }
            let c = local_changes(&prev, &next, node);
            let mut reported = std::collections::BTreeSet::new();
            for l in &c.leaders {
                proptest::prop_assert!(reported.insert((l.topic_id, l.topic_partition.partition)));
                proptest::prop_assert_eq!(next.partition(l.topic_id, l.topic_partition.partition).unwrap().leader, node);
            }
            for f in &c.followers {
                proptest::prop_assert!(reported.insert((f.topic_id, f.topic_partition.partition)));
                proptest::prop_assert_ne!(f.leader_id, node);
            }
            for t in next.topics() {
                for (pid, p) in &t.partitions {
                    let changed = prev.partition(t.id, *pid) != Some(p);
                    let expected = p.replicas.contains(&node) && changed;
                    proptest::prop_assert_eq!(reported.contains(&(t.id, *pid)), expected, "{}-{}", t.name, pid);
                }
            }
            let mut deleted = std::collections::BTreeSet::new();
            for d in &c.deletes {
                proptest::prop_assert!(deleted.insert((d.topic_id, d.topic_partition.partition)));
                proptest::prop_assert!(!reported.contains(&(d.topic_id, d.topic_partition.partition)));
                let still_here = next.partition(d.topic_id, d.topic_partition.partition).is_some_and(|p| p.replicas.contains(&node));
                proptest::prop_assert!(!still_here);
            }
            for t in prev.topics() {
                for (pid, p) in &t.partitions {
                    let kept = next.partition(t.id, *pid).is_some_and(|n| n.replicas.contains(&node));
                    proptest::prop_assert_eq!(deleted.contains(&(t.id, *pid)), p.replicas.contains(&node) && !kept);
                }
            }
            let topic_of = |k: CoordinatorKind| if k == CoordinatorKind::Group { OFFSETS_TOPIC } else { TRANSACTION_STATE_TOPIC };
            for l in &c.coordinators_to_load {
                let tp = TopicPartition::new(topic_of(l.kind), l.partition);
                let led = c.leaders.iter().find(|x| x.topic_partition == tp);
                proptest::prop_assert!(led.is_some_and(|x| x.leader_epoch == l.leader_epoch));
            }
            // Every internal partition this node stopped leading is unloaded; none it still leads.
            for t in prev.topics().filter(|t| t.name == OFFSETS_TOPIC || t.name == TRANSACTION_STATE_TOPIC) {
                for (pid, p) in &t.partitions {
                    let still = next.partition(t.id, *pid).is_some_and(|n| n.leader == node && n.replicas.contains(&node));
                    let unloaded = c.coordinators_to_unload.iter().any(|u| topic_of(u.kind) == t.name && u.partition == *pid);
                    proptest::prop_assert_eq!(unloaded, p.leader == node && !still, "{}-{}", t.name, pid);
                }
            }
        }
    }

    #[test]
    fn coordinators_load_on_becoming_leader_and_unload_on_losing_it() {
        let mut prev = base();
        let offsets = with_topic(&mut prev, OFFSETS_TOPIC, 1, &[(&[1, 2], &[1, 2], 2), (&[1, 2], &[1, 2], 1)]);
        let txn = with_topic(&mut prev, TRANSACTION_STATE_TOPIC, 2, &[(&[1, 2], &[1, 2], 1)]);
        let mut next = prev.clone();
        change(&mut next, offsets, 0, |c| c.leader = Some(1));
        change(&mut next, offsets, 1, |c| c.leader = Some(2));
        change(&mut next, txn, 0, |c| c.isr = Some(vec![1]));
        let c = local_changes(&prev, &next, ME);
        assert_eq!(c.coordinators_to_load, vec![CoordinatorLoad { kind: CoordinatorKind::Group, partition: 0, leader_epoch: 1, newly_elected: true }]);
        assert_eq!(
            c.coordinators_to_unload,
            vec![CoordinatorUnload { kind: CoordinatorKind::Group, partition: 1, leader_epoch: Some(1) }]
        );
        // An ISR change under the same leader neither loads nor unloads the transaction coordinator.
        assert!(c.leaders.iter().any(|l| l.topic_id == txn));

        // A leader epoch bump under the same leader (a replica removed) hands the coordinator its
        // new epoch without a reload.
        let mut bumped = next.clone();
        change(&mut bumped, txn, 0, |c| {
            c.replicas = Some(vec![1]);
            c.leader = Some(1);
        });
        let c = local_changes(&next, &bumped, ME);
        assert_eq!(
            c.coordinators_to_load,
            vec![CoordinatorLoad { kind: CoordinatorKind::Transaction, partition: 0, leader_epoch: 1, newly_elected: false }]
        );

        let mut gone = next.clone();
        gone.apply(&MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: txn })).unwrap();
        let c = local_changes(&next, &gone, ME);
        assert_eq!(
            c.coordinators_to_unload,
            vec![CoordinatorUnload { kind: CoordinatorKind::Transaction, partition: 0, leader_epoch: None }]
        );
    }
}
