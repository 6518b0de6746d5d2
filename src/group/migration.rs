//! KIP-848's online migration between the group protocols, as Kafka 4.0 serves it: a classic
//! group with members becomes a consumer group when a consumer-protocol member joins it
//! (upgrade), classic members keep joining, syncing, heartbeating and leaving with the classic
//! calls inside a consumer group (their assignments made by the coordinator), and the group
//! becomes classic again when its last consumer-protocol member is gone (downgrade), as
//! `group.consumer.migration.policy` allows. Each conversion is written as one batch: the old
//! form's tombstones, then the new form's records. Runs under the group's shard lock; never awaits.

use super::consumer::{ClassicJoinInput, ConsumerGroup, TopicsView};
use super::consumer_coordinator::map_error;
use super::coordinator::{Entry, GroupCoordinator, JoinOutcome, JoinRequest, SyncOutcome};
use super::offsets;
use super::state::Group;
use super::{GroupError, GroupLog};
use crate::protocol::consumer::{self as embedded, PROTOCOL_TYPE};

/// What an upgrade replaced, to put back if the heartbeat that caused it fails.
pub(super) struct Upgraded {
    classic: Group,
    stored_generation: i32,
}

impl GroupCoordinator {
    /// A classic JoinGroup to a consumer group with members (Kafka's
    /// classicGroupJoinToConsumerGroup). Answered at once: the generation is the member's epoch,
    /// the leader nobody (the coordinator assigns), and the member syncs for its assignment.
    pub(super) fn classic_join_to_consumer(&self, log: &dyn GroupLog, e: &mut Entry, req: JoinRequest, now: u64) -> JoinOutcome {
        let g = e.consumer.as_ref().expect("a consumer group");
        let max = self.config.consumer_max_size.min(self.config.max_size);
        let known = !req.member_id.is_empty() && g.members.contains_key(&req.member_id);
        let member_id = if req.member_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { req.member_id.clone() };
        if g.members.len() >= max && !known {
            return JoinOutcome::error(GroupError::GroupMaxSizeReached, &member_id);
        }
        if !g.supports_classic(&req.protocol_type, &req.protocols) {
            tracing::info!(group = %req.group_id, member = %member_id, "Member {member_id}'s protocols are not supported.");
            return JoinOutcome::error(GroupError::InconsistentGroupProtocol, &member_id);
        }
        if req.member_id.is_empty() && req.require_known_member_id && req.instance_id.is_none() {
            return JoinOutcome::error(GroupError::MemberIdRequired, &member_id);
        }
        // Every protocol of a consumer carries the same subscription.
        let Some(subscription) = req.protocols.first().and_then(|(_, m)| embedded::decode_subscription(m.clone())) else {
            tracing::info!(group = %req.group_id, member = %member_id, "a classic member's subscription is not the consumer protocol's; refused");
            return JoinOutcome::error(GroupError::InconsistentGroupProtocol, &member_id);
        };
        let input = ClassicJoinInput {
            member_id: member_id.clone(),
            new_member: req.member_id.is_empty(),
            instance_id: req.instance_id.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            subscription,
            client_id: req.client_id,
            client_host: req.client_host,
        };
        let undo = Self::undo_point(e);
        let default_assignor = self.default_assignor();
        let g = e.consumer.as_mut().expect("a consumer group");
        // The group as it was, when this join replaces its last consumer-protocol member.
        let replacing = input.instance_id.as_deref().and_then(|iid| g.member_by_instance(iid)).map(|m| m.id.clone()).filter(|old| self.downgrade_on_replace_due(g, old)).map(|old| (old, g.clone()));
        let out = match g.classic_join(input, &req.topics, &default_assignor, max, now) {
            Ok(out) => out,
            Err(err) => return JoinOutcome::error(map_error(err), &member_id),
        };
        let protocol = g.members.get(&out.member_id).and_then(|m| m.classic.as_ref()).map(|c| c.protocol_name().to_string());
        e.empty_since_ms = None;
        if let Some((old, before)) = replacing {
            let joining = e.consumer.as_ref().and_then(|g| g.members.get(&out.member_id)).cloned();
            let classic = before.to_classic(&old, joining.as_ref(), now);
            if let Err(err) = self.convert_to_classic(log, e, classic, None) {
                tracing::warn!(group = %req.group_id, error = %err, "consumer group not downgraded: its records could not be written; the join is undone");
                (e.consumer, e.empty_since_ms) = undo;
                if let Some(u) = e.unwritten.take() {
                    u.fail(&err);
                }
                return JoinOutcome::error(err, &member_id);
            }
            tracing::info!(group = %req.group_id, member = %out.member_id, replaced = %old, "Downgrade group {} from consumer to classic: its last consumer-protocol member was replaced by a classic static member.", req.group_id);
        } else if let Err(err) = self.write_or_undo(log, e, undo) {
            return JoinOutcome::error(err, &member_id);
        }
        tracing::info!(group = %req.group_id, member = %out.member_id, epoch = out.member_epoch, "classic member joined the consumer group");
        JoinOutcome {
            error: None,
            generation: out.member_epoch,
            protocol_type: Some(PROTOCOL_TYPE.to_string()),
            protocol,
            leader: String::new(),
            member_id: out.member_id,
            members: vec![],
            skip_assignment: false,
        }
    }

    /// A classic LeaveGroup to a consumer group: per-member results; the remaining members'
    /// targets are written (or the whole request fails with the write's error).
    pub(super) fn classic_leave_consumer_group(&self, log: &dyn GroupLog, e: &mut Entry, members: &[(String, Option<String>)]) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let undo = Self::undo_point(e);
        let default_assignor = self.default_assignor();
        let g = e.consumer.as_mut().expect("a consumer group");
        let results: Vec<Result<(), GroupError>> = members
            .iter()
            .map(|(member_id, instance_id)| {
                g.classic_leave(member_id, instance_id.as_deref(), &default_assignor)
                    .map(|id| tracing::info!(group = %g.id, member = %id, "classic member left the consumer group"))
                    .map_err(map_error)
            })
            .collect();
        if g.members.is_empty() {
            e.empty_since_ms.get_or_insert_with(super::coordinator::wall_ms);
        }
        self.write_or_undo(log, e, undo)?;
        Ok(results)
    }

    /// Whether a consumer-protocol member's first heartbeat may turn this classic group with
    /// members into a consumer group (Kafka's validateOnlineUpgrade).
    pub(super) fn may_upgrade(&self, e: &Entry) -> bool {
        let g = &e.group;
        if !self.config.migration_policy.upgrades() {
            tracing::info!(group = %g.id, "Cannot upgrade classic group {} to consumer group because the online upgrade is disabled.", g.id);
            false
        } else if g.protocol_type.as_deref() != Some(PROTOCOL_TYPE) {
            tracing::info!(group = %g.id, "Cannot upgrade classic group {} to consumer group because the group does not use the consumer embedded protocol.", g.id);
            false
        } else if g.members.len() > self.config.consumer_max_size {
            tracing::info!(group = %g.id, "Cannot upgrade classic group {} to consumer group because the group size exceeds the consumer group maximum size.", g.id);
            false
        } else {
            true
        }
    }

    /// Turns a classic group with members into a consumer group in memory (nothing written yet:
    /// the heartbeat that caused it writes the conversion with its own change, `finish_upgrade`).
    /// Err (GROUP_ID_NOT_FOUND, as Kafka) when a member's bytes are not the consumer protocol's.
    pub(super) fn upgrade(&self, e: &mut Entry, topics: &TopicsView, now: u64) -> Result<Upgraded, GroupError> {
        let id = e.group.id.clone();
        let g = ConsumerGroup::from_classic(&e.group, topics, &self.default_assignor(), now).map_err(|why| {
            tracing::warn!(group = %id, reason = %why, "Cannot upgrade the classic group {id} to consumer group because the embedded consumer protocol is malformed.");
            GroupError::NotConsumerGroup(id.clone())
        })?;
        let classic = std::mem::replace(&mut e.group, Group::new(id));
        let stored_generation = std::mem::replace(&mut e.stored_generation, 0);
        e.consumer = Some(g);
        e.consumer_records.clear();
        Ok(Upgraded { classic, stored_generation })
    }

    /// Puts the classic group back when the heartbeat that upgraded it failed.
    pub(super) fn undo_upgrade(e: &mut Entry, u: Upgraded) {
        e.group = u.classic;
        e.stored_generation = u.stored_generation;
        e.consumer = None;
        e.consumer_records.clear();
        e.unwritten = None;
    }

    /// Writes an upgrade with the change of the heartbeat that caused it, as one batch: the
    /// classic group's tombstone, then every record of the consumer group. The classic members'
    /// parked joins and syncs are told to rejoin (they join the consumer group then).
    pub(super) fn finish_upgrade(&self, log: &dyn GroupLog, e: &mut Entry, u: Upgraded) -> Result<(), GroupError> {
        let id = e.group.id.clone();
        let mut records = vec![(offsets::encode_group_key(&id), None)];
        let now_records = e.consumer.as_ref().map(|g| g.records()).unwrap_or_default();
        records.extend(now_records.iter().map(|(k, v)| (k.encode(), Some(v.clone()))));
        if let Err(err) = self.write(log, &id, records) {
            tracing::warn!(group = %id, error = %err, "classic group not upgraded: its records could not be written");
            Self::undo_upgrade(e, u);
            return Err(err);
        }
        e.consumer_records = now_records;
        if let Some(w) = e.unwritten.take() {
            w.settle();
        }
        for (member, tx) in e.join_waiters.drain() {
            let _ = tx.send(JoinOutcome::error(GroupError::RebalanceInProgress, &member));
        }
        for (_, tx) in e.sync_waiters.drain() {
            let _ = tx.send(SyncOutcome::error(GroupError::RebalanceInProgress));
        }
        tracing::info!(group = %id, generation = u.classic.generation, members = u.classic.members.len(), "classic group upgraded to a consumer group");
        Ok(())
    }

    /// The state to go back to if a change cannot be written: the group as last written (older
    /// than now while changes linger).
    pub(super) fn undo_point(e: &Entry) -> (Option<ConsumerGroup>, Option<i64>) {
        match &e.unwritten {
            Some(u) => u.written(),
            None => (e.consumer.clone(), e.empty_since_ms),
        }
    }

    /// Writes a consumer group's changes now. When they cannot be, the group goes back to `undo`
    /// and the lingering heartbeats fail with the write's error too.
    pub(super) fn write_or_undo(&self, log: &dyn GroupLog, e: &mut Entry, undo: (Option<ConsumerGroup>, Option<i64>)) -> Result<(), GroupError> {
        if let Err(err) = self.write_consumer_records(log, e) {
            tracing::warn!(group = %e.group.id, error = %err, "consumer group change not written; undone");
            (e.consumer, e.empty_since_ms) = undo;
            if let Some(u) = e.unwritten.take() {
                u.fail(&err);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Whether the group should become classic instead of losing `leaving`, its last member of
    /// the consumer protocol (Kafka's validateOnlineDowngradeWithFencedMember).
    pub(super) fn downgrade_due(&self, g: &ConsumerGroup, leaving: &str) -> bool {
        if g.members.len() <= 1 || !g.all_classic_except(leaving) {
            return false;
        }
        if !self.config.migration_policy.downgrades() {
            tracing::info!(group = %g.id, "Cannot downgrade consumer group {} to classic group because the online downgrade is disabled.", g.id);
            return false;
        }
        if g.members.len() - 1 > self.config.max_size {
            tracing::info!(group = %g.id, "Cannot downgrade consumer group {} to classic group because its group size is greater than classic group max size.", g.id);
            return false;
        }
        true
    }

    /// Whether a classic static member replacing `replaced`, the group's last member of the
    /// consumer protocol, turns the group classic (Kafka's
    /// validateOnlineDowngradeWithReplacedMemberId): unlike a leave, one member is enough.
    fn downgrade_on_replace_due(&self, g: &ConsumerGroup, replaced: &str) -> bool {
        if !g.all_classic_except(replaced) {
            return false;
        }
        if !self.config.migration_policy.downgrades() {
            tracing::info!(group = %g.id, "Cannot downgrade consumer group {} to classic group because the online downgrade is disabled.", g.id);
            return false;
        }
        if g.members.len() > self.config.max_size {
            tracing::info!(group = %g.id, "Cannot downgrade consumer group {} to classic group because its group size is greater than classic group max size.", g.id);
            return false;
        }
        true
    }

    /// Turns a consumer group into the classic group of its members but `leaving` (all classic),
    /// as one batch: the consumer records' tombstones, then the classic group's record. The
    /// classic group rebalances at once, so every member rejoins. Returns whether it did; a
    /// failed write is logged and changes nothing.
    pub(super) fn downgrade(&self, log: &dyn GroupLog, e: &mut Entry, leaving: &str, now: u64) -> bool {
        let Some(g) = e.consumer.as_ref() else { return false };
        let classic = g.to_classic(leaving, None, now);
        let id = classic.id.clone();
        if let Err(err) = self.convert_to_classic(log, e, classic, Some(now)) {
            tracing::warn!(group = %id, error = %err, "consumer group not downgraded: its records could not be written");
            return false;
        }
        tracing::info!(group = %id, member = %leaving, generation = e.group.generation, "Downgrade group {id} from consumer to classic.");
        true
    }

    /// Writes the conversion to `classic` as one batch (the consumer records' tombstones, then
    /// the classic group's record) and puts it in the consumer group's place, rebalancing it
    /// from `rebalance_at` when given. A failed write changes nothing.
    fn convert_to_classic(&self, log: &dyn GroupLog, e: &mut Entry, classic: Group, rebalance_at: Option<u64>) -> Result<(), GroupError> {
        let mut records = Self::consumer_tombstones(e);
        records.push(Self::group_record(&classic));
        self.write(log, &classic.id, records)?;
        if let Some(u) = e.unwritten.take() {
            u.settle();
        }
        e.stored_generation = classic.generation;
        e.group = classic;
        e.consumer = None;
        e.consumer_records.clear();
        if let Some(now) = rebalance_at {
            self.start_rebalance(e, now);
        }
        Ok(())
    }
}
