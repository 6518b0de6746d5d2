//! The coordinator's side of the KIP-848 consumer protocol: ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe, member-epoch checks of offset commits and fetches, session expiry, and
//! the dynamic group configs, and the group's records in `__consumer_offsets` (written as they
//! change, so members resume after a restart). Drives the pure `consumer::ConsumerGroup` under the coordinator's
//! lock; never awaits, never touches the broker (topics come in as a `TopicsView`).

use std::collections::BTreeMap;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::GroupError;
use super::offsets::GroupKey;
use super::assignor;
use super::consumer::{CommitCheck, ConsumerGroup, ConsumerGroupState, HeartbeatError, HeartbeatInput, HeartbeatOutput, LEAVE_EPOCH, STATIC_LEAVE_EPOCH, TopicsView};
use super::coordinator::{Entry, GroupCoordinator};
use super::state::GroupState;
use super::GroupLog;

/// Group config names (Kafka's GroupConfig) that this coordinator reads.
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug)]
pub struct ConsumerGroupSummary {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberSummary>,
}

#[derive(Clone, Debug)]
pub struct ConsumerMemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: assignor::Assignment,
    pub target_assignment: assignor::Assignment,
    /// It speaks the classic protocol (a group in migration).
    pub classic: bool,
}

/// A heartbeat's answer: the member's view plus the interval the client should keep, and the
/// write it waits for when the group's changes linger (`group.coordinator.append.linger.ms`).
#[derive(Debug)]
pub struct ConsumerHeartbeatOutcome {
    pub output: HeartbeatOutput,
    pub heartbeat_interval_ms: i32,
    pub write: Option<LingeringWrite>,
}

/// The write a heartbeat's answer waits for: the group's changes so far, written together once
/// the linger has passed (Kafka's coordinator batches its appends the same way, so a heartbeat
/// that changes the group is answered after about the linger, as Kafka answers it).
#[derive(Debug)]
pub struct LingeringWrite {
    /// Ok once written; the write's error otherwise (the changes are undone then).
    pub written: oneshot::Receiver<Result<(), GroupError>>,
    /// Set for the heartbeat that began the batch: its caller writes it (`write_lingering`)
    /// after this many ms.
    pub write_after_ms: Option<u64>,
}

/// A consumer group's changes that are not written yet: the group as last written (restored if
/// the write fails), whether the batch created the group, and the heartbeats to answer.
pub(super) struct Unwritten {
    written: (Option<ConsumerGroup>, Option<i64>),
    created: bool,
    waiters: Vec<oneshot::Sender<Result<(), GroupError>>>,
}

impl Unwritten {
    /// The changes are written (or superseded by the group's tombstones): answer them all.
    pub(super) fn settle(self) {
        for w in self.waiters {
            let _ = w.send(Ok(()));
        }
    }

    /// The changes could not be written: the heartbeats that made them fail with `err`.
    pub(super) fn fail(self, err: &GroupError) {
        for w in self.waiters {
            let _ = w.send(Err(err.clone()));
        }
    }

    /// The group as last written, before these changes.
    pub(super) fn written(&self) -> (Option<ConsumerGroup>, Option<i64>) {
        self.written.clone()
    }
}

pub(super) fn map_error(e: HeartbeatError) -> GroupError {
    match e {
        HeartbeatError::UnknownMemberId => GroupError::UnknownMemberId,
        HeartbeatError::FencedMemberEpoch => GroupError::FencedMemberEpoch,
        HeartbeatError::UnreleasedInstanceId => GroupError::UnreleasedInstanceId,
        HeartbeatError::GroupMaxSizeReached => GroupError::GroupMaxSizeReached,
        HeartbeatError::InvalidRegularExpression(m) => GroupError::InvalidRegularExpression(m),
        HeartbeatError::FencedInstanceId => GroupError::FencedInstanceId,
        HeartbeatError::IllegalGeneration => GroupError::IllegalGeneration,
        HeartbeatError::RebalanceInProgress => GroupError::RebalanceInProgress,
        HeartbeatError::InconsistentGroupProtocol(m) => {
            tracing::info!("{m}");
            GroupError::InconsistentGroupProtocol
        }
    }
}

impl GroupCoordinator {
    fn group_config_int(&self, group_id: &str, name: &str, default: i32) -> i32 {
        let configs = self.group_configs.lock().unwrap_or_else(|e| e.into_inner());
        configs.get(group_id).and_then(|c| c.get(name)).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// The session timeout of a consumer group's members: the group's override or the broker's.
    pub fn consumer_session_timeout_ms(&self, group_id: &str) -> i32 {
        self.group_config_int(group_id, CONSUMER_SESSION_TIMEOUT_MS, self.config.consumer_session_timeout_ms)
    }

    pub fn consumer_heartbeat_interval_ms(&self, group_id: &str) -> i32 {
        self.group_config_int(group_id, CONSUMER_HEARTBEAT_INTERVAL_MS, self.config.consumer_heartbeat_interval_ms)
    }

    /// The dynamic configs (overrides only) of one group.
    pub fn group_configs(&self, group_id: &str) -> BTreeMap<String, String> {
        self.group_configs.lock().unwrap_or_else(|e| e.into_inner()).get(group_id).cloned().unwrap_or_default()
    }

    /// Replaces one group's overrides (already validated and stored by the caller); empty removes.
    pub fn set_group_configs(&self, group_id: &str, configs: BTreeMap<String, String>) {
        let mut all = self.group_configs.lock().unwrap_or_else(|e| e.into_inner());
        if configs.is_empty() {
            all.remove(group_id);
        } else {
            all.insert(group_id.to_string(), configs);
        }
    }

    /// Every group's overrides, for the broker's checkpoint.
    pub fn all_group_configs(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.group_configs.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub(super) fn default_assignor(&self) -> String {
        self.config.consumer_assignors.first().cloned().unwrap_or_else(|| assignor::UNIFORM.to_string())
    }

    /// ConsumerGroupHeartbeat: join (epoch 0), heartbeat, or leave (-1, static -2). Field checks
    /// that need no group state are the api layer's.
    pub fn consumer_heartbeat(&self, log: &dyn GroupLog, group_id: &str, mut input: HeartbeatInput, topics: &TopicsView) -> Result<ConsumerHeartbeatOutcome, GroupError> {
        if let Some(a) = &input.server_assignor {
            match assignor::short_name(a) {
                Some(short) if self.config.consumer_assignors.iter().any(|c| c == short) => input.server_assignor = Some(short.to_string()),
                _ => return Err(GroupError::UnsupportedAssignor(format!("Server assignor {a} is not supported. Supported assignors: {}.", self.config.consumer_assignors.join(", ")))),
            }
        }
        let interval = self.consumer_heartbeat_interval_ms(group_id);
        let default_assignor = self.default_assignor();
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        self.current(log, &mut groups, group_id, now);
        let leaving = input.member_epoch == LEAVE_EPOCH || input.member_epoch == STATIC_LEAVE_EPOCH;
        let created = !groups.contains_key(group_id);
        if created {
            // Kafka answers GROUP_ID_NOT_FOUND here; UNKNOWN_MEMBER_ID makes the member rejoin
            // with epoch 0 (groups survive restarts, so this is a deleted or expired group).
            if input.member_epoch != 0 {
                return Err(GroupError::UnknownMemberId);
            }
            groups.insert(group_id.to_string(), Entry::new(group_id));
        }
        let Some(e) = groups.get_mut(group_id) else { return Err(GroupError::CoordinatorNotAvailable) };
        // A classic group with members becomes a consumer group when a member of the consumer
        // protocol joins it, as the migration policy allows (`migration.rs`); the conversion is
        // written with the joining member's change, or undone with it.
        let mut upgraded = None;
        if e.consumer.is_none() && (e.group.state != GroupState::Empty || !e.group.members.is_empty()) {
            if input.member_epoch != 0 || e.group.members.is_empty() || !self.may_upgrade(e) {
                return Err(GroupError::NotConsumerGroup(group_id.to_string()));
            }
            upgraded = Some(self.upgrade(e, topics, now)?);
        }
        // What the heartbeat changes is undone if its records cannot be written (Kafka's runtime
        // reverts its in-memory state when the append fails, and fails the request): back to the
        // group as last written, which is older than now while earlier changes linger.
        let undo = Self::undo_point(e);
        let created = created || e.unwritten.as_ref().is_some_and(|u| u.created);
        if e.consumer.is_none() {
            // An empty classic group becomes a consumer group.
            if input.member_epoch != 0 {
                return Err(GroupError::UnknownMemberId);
            }
            e.consumer = Some(ConsumerGroup::new(group_id));
        }
        // The last consumer-protocol member leaves for good and only classic members stay: the
        // group becomes classic instead (`migration.rs`).
        if input.member_epoch == LEAVE_EPOCH && e.consumer.as_ref().is_some_and(|g| self.downgrade_due(g, &input.member_id)) {
            if !self.downgrade(log, e, &input.member_id, now) {
                return Err(GroupError::CoordinatorNotAvailable);
            }
            let output = HeartbeatOutput { member_id: input.member_id, member_epoch: LEAVE_EPOCH, assignment: None };
            return Ok(ConsumerHeartbeatOutcome { output, heartbeat_interval_ms: interval, write: None });
        }
        let result = self.consumer_heartbeat_locked(group_id, e, input, topics, leaving, &default_assignor, now);
        if let Some(u) = upgraded {
            if let Err(err) = result {
                Self::undo_upgrade(e, u);
                return Err(err);
            }
            self.finish_upgrade(log, e, u)?;
            return result.map(|output| ConsumerHeartbeatOutcome { output, heartbeat_interval_ms: interval, write: None });
        }
        // What the heartbeat changed is written before the member hears of it. With a linger,
        // an accepted heartbeat's changes (or an earlier one's, still unwritten) wait for the
        // batch; its answer waits for the write.
        let linger = self.config.append_linger_ms;
        if linger > 0 && result.is_ok() && (e.unwritten.is_some() || Self::consumer_changes(e).is_some()) {
            let (tx, rx) = oneshot::channel();
            let first = e.unwritten.is_none();
            e.unwritten.get_or_insert_with(|| Unwritten { written: undo, created, waiters: Vec::new() }).waiters.push(tx);
            let write = LingeringWrite { written: rx, write_after_ms: first.then_some(linger) };
            return result.map(|output| ConsumerHeartbeatOutcome { output, heartbeat_interval_ms: interval, write: Some(write) });
        }
        // Written now. When it cannot be, the member is not told of a change that is not
        // durable: the change is undone and the heartbeat fails with a retriable error
        // (COORDINATOR_NOT_AVAILABLE), as do the lingering ones it carried.
        if let Err(err) = self.write_or_undo(log, e, undo) {
            if created {
                groups.remove(group_id);
            }
            return Err(err);
        }
        result.map(|output| ConsumerHeartbeatOutcome { output, heartbeat_interval_ms: interval, write: None })
    }

    /// Writes a consumer group's lingering changes as one batch and answers the heartbeats that
    /// wait for them. When the write fails the group returns to what was last written and they
    /// fail with the write's error (a retriable one). Nothing to do when something else wrote
    /// them meanwhile (a session expiry, the group's tombstones).
    pub fn write_lingering(&self, log: &dyn GroupLog, group_id: &str) {
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        let Some(e) = groups.get_mut(group_id) else { return };
        if e.unwritten.is_none() {
            return;
        }
        if let Err(err) = self.write_consumer_records(log, e) {
            tracing::warn!(group = %group_id, error = %err, "consumer group heartbeats failed: their records could not be written; changes undone");
            let Some(u) = e.unwritten.take() else { return };
            (e.consumer, e.empty_since_ms) = u.written();
            let created = u.created;
            u.fail(&err);
            // A group the batch created goes again, unless offsets were committed to it meanwhile.
            if created && e.offsets.is_empty() && e.pending_txn_is_empty() {
                groups.remove(group_id);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn consumer_heartbeat_locked(&self, group_id: &str, e: &mut Entry, input: HeartbeatInput, topics: &TopicsView, leaving: bool, default_assignor: &str, now: u64) -> Result<HeartbeatOutput, GroupError> {
        let default_assignor = default_assignor.to_string();
        let g = e.consumer.as_mut().expect("consumer group set above");
        let output = if leaving {
            let out = g.leave(&input.member_id, input.instance_id.as_deref(), input.member_epoch, &default_assignor).map_err(map_error)?;
            tracing::info!(group = %group_id, member = %input.member_id, epoch = input.member_epoch, "consumer group member left");
            out
        } else {
            let max = self.config.consumer_max_size.min(self.config.max_size);
            let (member, epoch, owned) = (input.member_id.clone(), input.member_epoch, input.owned.as_ref().map(|o| o.values().map(|s| s.len()).sum::<usize>()));
            let out = g.heartbeat(input, topics, &default_assignor, max, now).map_err(|e| {
                tracing::debug!(group = %group_id, %member, epoch, ?owned, error = ?e, "consumer group heartbeat refused");
                map_error(e)
            })?;
            tracing::debug!(group = %group_id, %member, epoch, ?owned, answer_epoch = out.member_epoch, sent = ?out.assignment, "consumer group heartbeat");
            if out.assignment.is_some() {
                tracing::debug!(group = %group_id, member = %out.member_id, epoch = out.member_epoch, group_epoch = g.group_epoch, "consumer group assignment sent");
            }
            out
        };
        if g.members.is_empty() {
            e.empty_since_ms.get_or_insert_with(super::coordinator::wall_ms);
        } else {
            e.empty_since_ms = None;
        }
        Ok(output)
    }

    /// Writes what changed in a consumer group's records since the last write: tombstones for
    /// members that are gone (current assignment, target, then metadata, the order Kafka's
    /// replay expects), then every record whose value changed. A failed write (a session
    /// expiry's) is logged and retried with the next change (the whole difference is written then).
    pub(super) fn persist_consumer(&self, log: &dyn GroupLog, e: &mut Entry) {
        if let Err(err) = self.write_consumer_records(log, e) {
            tracing::warn!(group = %e.group.id, error = %err, "could not store consumer group records; retried on the next change");
        }
    }

    /// The write of `persist_consumer`, with its error; the records last written are updated
    /// only when it succeeds.
    /// Lingering changes are written by it too, and their heartbeats answered.
    pub(super) fn write_consumer_records(&self, log: &dyn GroupLog, e: &mut Entry) -> Result<(), GroupError> {
        if let Some((records, now)) = Self::consumer_changes(e) {
            self.write(log, &e.group.id, records)?;
            e.consumer_records = now;
        }
        if let Some(u) = e.unwritten.take() {
            u.settle();
        }
        Ok(())
    }

    /// The records a write of the consumer group would append (None: nothing changed), and the
    /// group's records as they are now.
    #[allow(clippy::type_complexity)]
    fn consumer_changes(e: &Entry) -> Option<(Vec<(Bytes, Option<Bytes>)>, BTreeMap<GroupKey, Bytes>)> {
        let g = e.consumer.as_ref()?;
        if g.members.is_empty() && e.consumer_records.is_empty() {
            // Nobody ever joined (a refused first heartbeat): nothing worth a record.
            return None;
        }
        let now = g.records();
        let mut out: Vec<(Bytes, Option<Bytes>)> = e.consumer_records.keys().rev().filter(|k| !now.contains_key(*k)).map(|k| (k.encode(), None)).collect();
        out.extend(now.iter().filter(|(k, v)| e.consumer_records.get(*k) != Some(*v)).map(|(k, v)| (k.encode(), Some(v.clone()))));
        (!out.is_empty()).then_some((out, now))
    }

    /// Tombstones for every consumer-protocol record of the group (it is deleted, expired, or
    /// becomes a classic group), members' first and the group epoch last.
    pub(super) fn consumer_tombstones(e: &Entry) -> Vec<(Bytes, Option<Bytes>)> {
        let mut keys = e.consumer_records.clone();
        if e.consumer.is_some() || !keys.is_empty() {
            let group = e.group.id.clone();
            for k in [GroupKey::ConsumerMetadata { group: group.clone() }, GroupKey::ConsumerPartitionMetadata { group: group.clone() }, GroupKey::ConsumerTargetMetadata { group }] {
                keys.entry(k).or_default();
            }
        }
        keys.keys().rev().map(|k| (k.encode(), None)).collect()
    }

    /// Removes consumer-protocol members whose session or revocation time ran out; returns
    /// whether any went.
    pub(super) fn expire_consumer_members(&self, e: &mut Entry, now: u64) -> bool {
        let Some(g) = e.consumer.as_mut() else { return false };
        if g.members.is_empty() {
            return false;
        }
        let session_ms = self.consumer_session_timeout_ms(&g.id).max(0) as u64;
        let expired = g.expired_members(now, session_ms);
        let default_assignor = self.default_assignor();
        for id in &expired {
            tracing::info!(group = %g.id, member = %id, "consumer group member session expired, or it did not revoke, rejoin or sync in time; removed");
            if self.downgrade_due(g, id) {
                // The group becomes classic without it at the next settle.
                e.downgrade_leaving = Some(id.clone());
                continue;
            }
            g.remove_member(id, &default_assignor);
        }
        !expired.is_empty()
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(&self, log: &dyn GroupLog, group_id: &str) -> Result<ConsumerGroupSummary, GroupError> {
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        let e = self.current(log, &mut groups, group_id, now).ok_or_else(|| GroupError::ConsumerGroupNotFound(group_id.to_string()))?;
        let Some(g) = e.consumer.as_ref() else {
            return Err(if e.group.state == GroupState::Dead {
                GroupError::ConsumerGroupNotFound(group_id.to_string())
            } else {
                GroupError::NotConsumerGroup(group_id.to_string())
            });
        };
        let members = g
            .members
            .values()
            .map(|m| ConsumerMemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.shown_epoch(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.clone(),
                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                assignment: m.assigned.clone(),
                target_assignment: g.target.get(&m.id).cloned().unwrap_or_default(),
                classic: m.classic.is_some(),
            })
            .collect();
        Ok(ConsumerGroupSummary { state: g.state(), group_epoch: g.group_epoch, assignment_epoch: g.assignment_epoch, assignor: g.assignor.clone(), members })
    }

    /// The member check of an OffsetCommit (or OffsetFetch v9) on a consumer group; Ok(None) when
    /// the group is not one (the classic checks apply).
    pub(super) fn check_consumer_member(e: &Entry, member_id: &str, epoch: i32) -> Option<Result<(), GroupError>> {
        let g = e.consumer.as_ref()?;
        Some(g.validate_commit(member_id, epoch).map_err(|c| match c {
            CommitCheck::UnknownMemberId => GroupError::UnknownMemberId,
            CommitCheck::StaleMemberEpoch => GroupError::StaleMemberEpoch,
            CommitCheck::IllegalGeneration => GroupError::IllegalGeneration,
        }))
    }

    /// Whether `member_id` is a member of the consumer-protocol group `group_id` that speaks the
    /// consumer protocol (such members must commit with OffsetCommit v9+, which carries the
    /// member epoch; classic members commit with their generation, at any version).
    pub fn is_consumer_member(&self, group_id: &str, member_id: &str) -> bool {
        let shards = self.groups.view_current();
        let groups = shards.lock_id(group_id);
        groups.get(group_id).and_then(|e| e.consumer.as_ref()).and_then(|g| g.members.get(member_id)).is_some_and(|m| m.classic.is_none())
    }

    /// OffsetFetch v9 with a member id and epoch: the member must be current.
    pub fn check_offset_fetch_member(&self, log: &dyn GroupLog, group_id: &str, member_id: Option<&str>, epoch: i32) -> Result<(), GroupError> {
        let Some(member_id) = member_id else { return Ok(()) };
        if epoch < 0 {
            return Ok(());
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        match self.current(log, &mut groups, group_id, now) {
            Some(e) if e.consumer.is_some() => {
                let g = e.consumer.as_ref().expect("checked");
                let m = g.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
                match (epoch == m.member_epoch, m.classic.is_some()) {
                    (true, _) => Ok(()),
                    (false, true) => Err(GroupError::IllegalGeneration),
                    (false, false) => Err(GroupError::StaleMemberEpoch),
                }
            }
            Some(_) => Ok(()),
            None => Err(GroupError::UnknownMemberId),
        }
    }
}
