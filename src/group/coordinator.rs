//! The group coordinator: owns every group in the shard of its `__consumer_offsets` partition
//! (one lock per partition, as Kafka's coordinator runtime: groups on different partitions never
//! wait for each other, and a partition's records are written under its shard's lock, in the
//! order the changes are applied), drives the state machine of `state.rs`, parks
//! JoinGroup/SyncGroup requests on oneshot channels (never holding a lock across an await),
//! expires sessions and rebalances from a periodic tick, persists commits and group metadata
//! through `GroupLog`, and brings groups back with their members at load. Every method that may
//! write is synchronous and must run where blocking on a disk is allowed (the request handler
//! pool, spawn_blocking); the only async ones wait for a parked answer and never write. It
//! answers with `GroupError`s; the api layer picks the codes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::consumer::{ConsumerGroup, StoredConsumerGroup};
use super::consumer_coordinator::map_error;
use super::consumer_codec;
use super::offsets::{self, CodecError, CommittedOffset, GroupKey, OffsetStore, StoredMember};
use super::state::{Group, GroupState, Member};
use super::{GroupConfig, GroupError, GroupLog};
use crate::coordinator::LogError;
use crate::coordinator::shards::{Shards, ShardsView};
use crate::protocol::consumer::PROTOCOL_TYPE;

/// Slack on top of the rebalance timeout before a parked request gives up on its own: the tick
/// normally answers it at the deadline; this only bounds the wait if something went wrong.
const PARK_SLACK_MS: u64 = 5_000;

pub(super) fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A JoinGroup as the coordinator needs it.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a first join without member id gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a returning static leader can be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
    /// Every topic: a classic member joining a consumer group is assigned by the coordinator.
    pub topics: super::consumer::TopicsView,
}

#[derive(Clone, Debug, Default)]
pub struct JoinOutcome {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: (member id, instance id, metadata for the chosen protocol).
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader keeps the current assignment instead of computing a new one.
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub fn error(e: GroupError, member_id: &str) -> JoinOutcome {
        JoinOutcome { error: Some(e), generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

#[derive(Clone, Debug, Default)]
pub struct SyncOutcome {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(e: GroupError) -> SyncOutcome {
        SyncOutcome { error: Some(e), ..Default::default() }
    }
}

/// A JoinGroup parked until its rebalance completes (`GroupCoordinator::join_wait`).
#[derive(Debug)]
pub struct JoinWait {
    rx: oneshot::Receiver<JoinOutcome>,
    group_id: String,
    member_id: String,
    wait_ms: u64,
}

/// A follower's SyncGroup parked until the leader's assignment (`GroupCoordinator::sync_wait`).
#[derive(Debug)]
pub struct SyncWait {
    rx: oneshot::Receiver<SyncOutcome>,
    group_id: String,
    member_id: String,
    generation: i32,
    wait_ms: u64,
}

/// A parked SyncGroup whose rebalance timeout passed (`GroupCoordinator::sync_timed_out`).
#[derive(Debug)]
pub struct SyncTimedOut {
    group_id: String,
    member_id: String,
    generation: i32,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

#[derive(Clone, Debug)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// One offset a client commits.
#[derive(Clone, Debug)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub(super) struct Entry {
    pub(super) group: Group,
    /// Set while the group speaks the KIP-848 consumer protocol (then `group` stays Empty).
    pub(super) consumer: Option<super::consumer::ConsumerGroup>,
    pub(super) offsets: OffsetStore,
    /// Wall-clock ms when the group was last seen without members (None while it has members);
    /// the start of its offsets' retention, as Kafka's current-state timestamp.
    pub(super) empty_since_ms: Option<i64>,
    pub(super) join_waiters: HashMap<String, oneshot::Sender<JoinOutcome>>,
    pub(super) sync_waiters: HashMap<String, oneshot::Sender<SyncOutcome>>,
    /// Generation last written as group metadata, so an emptied group is written once.
    pub(super) stored_generation: i32,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id: they
    /// replace the committed ones when the transaction commits.
    pending_txn: HashMap<i64, OffsetStore>,
    /// The consumer-protocol records last written for this group (key -> value), so that a
    /// change writes only what differs, and deletion knows what to tombstone.
    pub(super) consumer_records: BTreeMap<GroupKey, Bytes>,
    /// The consumer group's changes waiting for `group.coordinator.append.linger.ms`.
    pub(super) unwritten: Option<super::consumer_coordinator::Unwritten>,
    /// The last consumer-protocol member, whose session ended: the group becomes classic without
    /// it at the next settle (`migration.rs`).
    pub(super) downgrade_leaving: Option<String>,
}

impl Entry {
    pub(super) fn new(id: &str) -> Entry {
        Entry { group: Group::new(id), consumer: None, offsets: OffsetStore::new(), empty_since_ms: None, join_waiters: HashMap::new(), sync_waiters: HashMap::new(), stored_generation: 0, pending_txn: HashMap::new(), consumer_records: BTreeMap::new(), unwritten: None, downgrade_leaving: None }
    }

    /// Whether no transaction has offsets pending for the group.
    pub(super) fn pending_txn_is_empty(&self) -> bool {
        self.pending_txn.is_empty()
    }

    /// Whether members of either protocol are in the group.
    pub(super) fn has_members(&self) -> bool {
        !self.group.members.is_empty() || self.consumer.as_ref().is_some_and(|g| !g.members.is_empty())
    }

    fn parked(&self, id: &str) -> bool {
        self.join_waiters.contains_key(id) || self.sync_waiters.contains_key(id)
    }

    fn join_outcome_for(&self, id: &str) -> JoinOutcome {
        let g = &self.group;
        let leader = g.leader.clone().unwrap_or_default();
        let members = if leader == id {
            let protocol = g.protocol.clone().unwrap_or_default();
            g.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol))).collect()
        } else {
            vec![]
        };
        JoinOutcome {
            error: None,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            leader,
            member_id: id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// Tells a member parked in join or sync that it is out (removed, fenced, replaced).
    fn evict_waiters(&mut self, id: &str, e: GroupError) {
        if let Some(tx) = self.join_waiters.remove(id) {
            let _ = tx.send(JoinOutcome::error(e.clone(), id));
        }
        if let Some(tx) = self.sync_waiters.remove(id) {
            let _ = tx.send(SyncOutcome::error(e));
        }
    }
}

pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    /// Every group, in the shard of its `__consumer_offsets` partition.
    pub(super) groups: Shards<Entry>,
    /// Dynamic group configs (consumer.session.timeout.ms, ...) by group id; the broker stores
    /// them durably and hands them over at startup and on every change.
    pub(super) group_configs: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// Wall-clock ms of the last offset-expiry pass.
    last_expiry_ms: Mutex<i64>,
    epoch: Instant,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator { groups: Shards::new(config.offsets_topic_partitions), config, group_configs: Mutex::new(HashMap::new()), last_expiry_ms: Mutex::new(wall_ms()), epoch: Instant::now() }
    }

    /// Milliseconds on a monotonic clock: timeouts must not jump with the wall clock.
    pub(super) fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The shards at `__consumer_offsets`' partition count: the configured one until the topic
    /// exists (it is then created with that count), so a group's shard is always the partition
    /// its records are written to.
    pub(super) fn shards(&self, log: &dyn GroupLog) -> ShardsView<'_, Entry> {
        self.groups.view(log.group_partitions().unwrap_or(self.config.offsets_topic_partitions))
    }

    fn partition(&self, log: &dyn GroupLog, group_id: &str) -> i32 {
        offsets::partition_for(group_id, log.group_partitions().unwrap_or(self.config.offsets_topic_partitions))
    }

    pub(super) fn write(&self, log: &dyn GroupLog, group_id: &str, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let batch = offsets::encode_batch(&records, wall_ms()).map_err(LogError::Other)?;
        Ok(log.append_group_batch(self.partition(log, group_id), batch)?)
    }

    /// Writes the group's metadata record (members and assignments as they are now). A failure
    /// is logged and returned; the stored generation stays the one last written.
    fn store_group(&self, log: &dyn GroupLog, e: &mut Entry) -> Result<(), GroupError> {
        let id = e.group.id.clone();
        self.write(log, &id, vec![Self::group_record(&e.group)])
            .inspect(|()| e.stored_generation = e.group.generation)
            .inspect_err(|err| tracing::warn!(group = %id, error = %err, "could not store group metadata"))
    }

    /// The group's metadata record: members and assignments as they are now.
    pub(super) fn group_record(g: &Group) -> (Bytes, Option<Bytes>) {
        let protocol = g.protocol.clone().unwrap_or_default();
        let members: Vec<StoredMember> = g
            .members
            .values()
            .map(|m| StoredMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        let value = offsets::encode_group_value(
            g.protocol_type.as_deref().unwrap_or(""),
            g.generation,
            g.protocol.as_deref(),
            g.leader.as_deref(),
            wall_ms(),
            &members,
        );
        (offsets::encode_group_key(&g.id), Some(value))
    }

    /// After any change: fail parked syncs once a rebalance started, finish the join phase when
    /// due (answering every parked join), and record a group that became empty.
    fn settle(&self, log: &dyn GroupLog, e: &mut Entry, now: u64) {
        if e.group.state == GroupState::PreparingRebalance {
            for (_, tx) in e.sync_waiters.drain() {
                let _ = tx.send(SyncOutcome::error(GroupError::RebalanceInProgress));
            }
        }
        if e.group.join_complete_due(now) {
            for m in e.group.complete_join() {
                tracing::info!(group = %e.group.id, member = %m.id, "member did not rejoin in time; removed");
                e.evict_waiters(&m.id, GroupError::UnknownMemberId);
            }
            let waiters: Vec<_> = e.join_waiters.drain().collect();
            for (id, tx) in waiters {
                let _ = tx.send(e.join_outcome_for(&id));
            }
            for m in e.group.members.values_mut() {
                m.last_seen_ms = now;
            }
            tracing::info!(group = %e.group.id, generation = e.group.generation, members = e.group.members.len(), "rebalance completed");
        }
        if e.group.state == GroupState::Empty && e.group.generation != e.stored_generation {
            // Retried at the next change or tick while the generation stays unstored.
            let _ = self.store_group(log, e);
        }
        // A consumer-protocol member expired: the others' new targets are written, or the group
        // becomes classic when only classic members are left.
        if let Some(leaving) = e.downgrade_leaving.take() {
            // A failed write leaves the member in place; its expiry finds it again.
            self.downgrade(log, e, &leaving, now);
        }
        self.persist_consumer(log, e);
    }

    pub(super) fn start_rebalance(&self, e: &mut Entry, now: u64) {
        let delay = if e.group.state == GroupState::Empty { self.config.initial_rebalance_delay_ms } else { 0 };
        e.group.prepare_rebalance(now, delay);
        tracing::info!(group = %e.group.id, generation = e.group.generation, "preparing to rebalance");
    }

    /// JoinGroup, the part that changes the group and writes its record (run it where a disk
    /// write may block): an immediate answer, or a parked request to hand to `join_wait`.
    pub fn join_start(&self, log: &dyn GroupLog, req: JoinRequest) -> Result<JoinOutcome, JoinWait> {
        let member_id = req.member_id.clone();
        let group_id = req.group_id.clone();
        let wait_ms = req.rebalance_timeout_ms.max(req.session_timeout_ms).max(0) as u64 + PARK_SLACK_MS;
        self.join_locked(log, req).map_err(|rx| JoinWait { rx, group_id, member_id, wait_ms })
    }

    /// JoinGroup, the wait for the rebalance's outcome (bounded by the rebalance timeout). Writes
    /// nothing: it may run on an async worker.
    pub async fn join_wait(&self, wait: JoinWait, mut shutdown: watch::Receiver<bool>) -> JoinOutcome {
        let JoinWait { rx, group_id, member_id, wait_ms } = wait;
        let result = tokio::select! {
            r = tokio::time::timeout(Duration::from_millis(wait_ms), rx) => r,
            _ = shutdown.changed() => return JoinOutcome::error(GroupError::CoordinatorNotAvailable, &member_id),
        };
        match result {
            Ok(Ok(outcome)) => outcome,
            // Sender dropped (group deleted) or the safety bound passed: the client rejoins.
            _ => {
                let shards = self.groups.view_current();
                let mut groups = shards.lock_id(&group_id);
                if let Some(e) = groups.get_mut(&group_id) {
                    e.join_waiters.retain(|_, tx| !tx.is_closed());
                }
                JoinOutcome::error(GroupError::RebalanceInProgress, &member_id)
            }
        }
    }

    /// JoinGroup in one call, both parts on the caller's thread (tests).
    #[cfg(test)]
    pub async fn join(&self, log: &dyn GroupLog, req: JoinRequest, shutdown: watch::Receiver<bool>) -> JoinOutcome {
        match self.join_start(log, req) {
            Ok(outcome) => outcome,
            Err(wait) => self.join_wait(wait, shutdown).await,
        }
    }

    /// The locked part of JoinGroup: an immediate answer, or the receiver of a parked one.
    fn join_locked(&self, log: &dyn GroupLog, req: JoinRequest) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let err = |e: GroupError| Ok(JoinOutcome::error(e, &req.member_id));
        if req.group_id.is_empty() {
            return err(GroupError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms || req.session_timeout_ms > self.config.max_session_timeout_ms {
            return err(GroupError::InvalidSessionTimeout);
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(&req.group_id);
        self.current(log, &mut groups, &req.group_id, now);
        if !req.member_id.is_empty() && !groups.contains_key(&req.group_id) {
            return err(GroupError::UnknownMemberId);
        }
        let e = groups.entry(req.group_id.clone()).or_insert_with(|| Entry::new(&req.group_id));
        if e.group.state == GroupState::Dead {
            return err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(g) = &e.consumer {
            // A consumer-protocol group with members takes classic members in (KIP-848's
            // migration); an empty one becomes classic again.
            if !g.members.is_empty() {
                return Ok(self.classic_join_to_consumer(log, e, req, now));
            }
            let tombstones = Self::consumer_tombstones(e);
            if let Err(e) = self.write(log, &req.group_id, tombstones) {
                return err(e);
            }
            e.consumer = None;
            e.consumer_records.clear();
            if let Some(u) = e.unwritten.take() {
                u.settle();
            }
        }
        if !e.group.supports(&req.protocol_type, &req.protocols) {
            return err(GroupError::InconsistentGroupProtocol);
        }
        let (tx, rx) = oneshot::channel();
        if req.member_id.is_empty() {
            // A static member coming back under a new member id takes its old place.
            if let Some(iid) = &req.instance_id {
                if let Some(old) = e.group.member_by_instance(iid).map(|m| m.id.clone()) {
                    return self.rejoin_static(log, e, &req, iid, &old, tx, rx, now);
                }
            }
            if e.group.size() >= self.config.max_size {
                return err(GroupError::GroupMaxSizeReached);
            }
            let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if req.require_known_member_id && req.instance_id.is_none() {
                let timeout = req.session_timeout_ms.max(0) as u64;
                e.group.pending.insert(new_id.clone(), now + timeout);
                return Ok(JoinOutcome::error(GroupError::MemberIdRequired, &new_id));
            }
            self.add_and_rebalance(log, e, &req, new_id, tx, now);
            return Err(rx);
        }
        if e.group.pending.contains_key(&req.member_id) {
            if e.group.members.len() >= self.config.max_size {
                e.group.pending.remove(&req.member_id);
                return err(GroupError::GroupMaxSizeReached);
            }
            let id = req.member_id.clone();
            self.add_and_rebalance(log, e, &req, id, tx, now);
            return Err(rx);
        }
        if let Some(iid) = &req.instance_id {
            if let Some(m) = e.group.member_by_instance(iid) {
                if m.id != req.member_id {
                    return err(GroupError::FencedInstanceId);
                }
            }
        }
        if !e.group.members.contains_key(&req.member_id) {
            return err(GroupError::UnknownMemberId);
        }
        let id = req.member_id.clone();
        let is_leader = e.group.leader.as_deref() == Some(id.as_str());
        match e.group.state {
            GroupState::Empty | GroupState::Dead => return err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                e.group.update_member(&id, req.protocols, req.session_timeout_ms, req.rebalance_timeout_ms, now);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let unchanged = e.group.same_protocols(&id, &req.protocols);
                let resend = unchanged && (e.group.state == GroupState::CompletingRebalance || !is_leader);
                if resend {
                    // A retried or duplicate join: the current generation is still right.
                    if let Some(m) = e.group.members.get_mut(&id) {
                        m.last_seen_ms = now;
                    }
                    return Ok(e.join_outcome_for(&id));
                }
                self.start_rebalance(e, now);
                e.group.update_member(&id, req.protocols, req.session_timeout_ms, req.rebalance_timeout_ms, now);
            }
        }
        if let Some(old) = e.join_waiters.insert(id.clone(), tx) {
            let _ = old.send(JoinOutcome::error(GroupError::RebalanceInProgress, &id));
        }
        self.settle(log, e, now);
        Err(rx)
    }

    /// A static member restarted (JoinGroup without member id, known group.instance.id): it gets
    /// a new member id in the old one's place, and the old instance's parked requests are fenced.
    /// As in Kafka (KIP-345), a Stable group whose selected protocol stays the same does not
    /// rebalance: the member gets the current generation and, at SyncGroup, its old assignment.
    /// A returning leader is told to skip the assignment (JoinGroup v9+), or, on older versions,
    /// sees the old leader id so it does not act as leader. Otherwise the group rebalances.
    #[allow(clippy::too_many_arguments)]
    fn rejoin_static(
        &self,
        log: &dyn GroupLog,
        e: &mut Entry,
        req: &JoinRequest,
        instance_id: &str,
        old: &str,
        tx: oneshot::Sender<JoinOutcome>,
        rx: oneshot::Receiver<JoinOutcome>,
        now: u64,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let new_id = format!("{instance_id}-{}", uuid::Uuid::new_v4());
        e.evict_waiters(old, GroupError::FencedInstanceId);
        let was_leader = e.group.leader.as_deref() == Some(old);
        e.group.replace_member_id(old, &new_id);
        if let Some(m) = e.group.members.get_mut(&new_id) {
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
        }
        e.group.update_member(&new_id, req.protocols.clone(), req.session_timeout_ms, req.rebalance_timeout_ms, now);
        match e.group.state {
            GroupState::Stable if e.group.select_protocol() == e.group.protocol => {
                // The new member id is in use even if this record is lost: the member's next
                // heartbeat or commit works, and a restart brings back the old id, which the
                // member replaces again by rejoining.
                let _ = self.store_group(log, e);
                let mut out = e.join_outcome_for(&new_id);
                if was_leader {
                    if req.supports_skip_assignment {
                        out.skip_assignment = true;
                    } else {
                        out.leader = old.to_string();
                        out.members.clear();
                    }
                }
                tracing::info!(group = %req.group_id, instance = %instance_id, member = %new_id, "static member rejoined without rebalance");
                return Ok(out);
            }
            // CompletingRebalance: the leader may be assigning to the old member id, so the
            // generation must be redone (as Kafka does).
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.start_rebalance(e, now);
                e.group.update_member(&new_id, req.protocols.clone(), req.session_timeout_ms, req.rebalance_timeout_ms, now);
            }
            GroupState::PreparingRebalance | GroupState::Dead => {}
        }
        e.join_waiters.insert(new_id, tx);
        self.settle(log, e, now);
        Err(rx)
    }

    fn add_and_rebalance(&self, log: &dyn GroupLog, e: &mut Entry, req: &JoinRequest, id: String, tx: oneshot::Sender<JoinOutcome>, now: u64) {
        let mut m = Member::new(id.clone(), req.protocols.clone(), req.session_timeout_ms, req.rebalance_timeout_ms, now);
        m.instance_id = req.instance_id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        match e.group.state {
            GroupState::PreparingRebalance => {
                e.group.add_member(m, &req.protocol_type);
                e.group.extend_initial_delay(now, self.config.initial_rebalance_delay_ms);
                // A longer rebalance timeout of the newcomer extends the deadline.
                e.group.rebalance_deadline_ms = e.group.rebalance_deadline_ms.max(now + req.rebalance_timeout_ms.max(0) as u64);
            }
            _ => {
                e.group.add_member(m, &req.protocol_type);
                self.start_rebalance(e, now);
                if let Some(m) = e.group.members.get_mut(&id) {
                    m.joined = true;
                }
            }
        }
        tracing::info!(group = %e.group.id, member = %id, "member joined");
        e.join_waiters.insert(id, tx);
        self.settle(log, e, now);
    }

    /// Validates that `member_id` (and its instance id) belong to the group at this generation.
    fn check_member(e: &Entry, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if let Some(iid) = instance_id {
            if let Some(m) = e.group.member_by_instance(iid) {
                if m.id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
            }
        }
        if !e.group.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != e.group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// SyncGroup, the part that changes the group and writes its record (run it where a disk
    /// write may block): the leader's assignments are handed to every member and it is answered;
    /// a follower is answered at once or parked, to be handed to `sync_wait`.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_start(
        &self,
        log: &dyn GroupLog,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: BTreeMap<String, Bytes>,
    ) -> Result<SyncOutcome, SyncWait> {
        if group_id.is_empty() {
            return Ok(SyncOutcome::error(GroupError::InvalidGroupId));
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        let Some(e) = self.current(log, &mut groups, group_id, now) else { return Ok(SyncOutcome::error(GroupError::UnknownMemberId)) };
        if let Some(g) = e.consumer.as_mut() {
            return Ok(match g.classic_sync(member_id, instance_id, generation, protocol_type, protocol, now) {
                Ok((assignment, protocol)) => SyncOutcome { error: None, protocol_type: Some(PROTOCOL_TYPE.to_string()), protocol: Some(protocol), assignment },
                Err(e) => SyncOutcome::error(map_error(e)),
            });
        }
        if let Err(err) = Self::check_member(e, member_id, instance_id, generation) {
            return Ok(SyncOutcome::error(err));
        }
        if protocol_type.is_some_and(|p| Some(p) != e.group.protocol_type.as_deref()) || protocol.is_some_and(|p| Some(p) != e.group.protocol.as_deref()) {
            return Ok(SyncOutcome::error(GroupError::InconsistentGroupProtocol));
        }
        let done = |e: &Entry| SyncOutcome {
            error: None,
            protocol_type: e.group.protocol_type.clone(),
            protocol: e.group.protocol.clone(),
            assignment: e.group.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        };
        if let Some(m) = e.group.members.get_mut(member_id) {
            m.last_seen_ms = now;
        }
        match e.group.state {
            GroupState::Empty | GroupState::Dead => return Ok(SyncOutcome::error(GroupError::UnknownMemberId)),
            GroupState::PreparingRebalance => return Ok(SyncOutcome::error(GroupError::RebalanceInProgress)),
            GroupState::Stable => return Ok(done(e)),
            GroupState::CompletingRebalance => {}
        }
        if e.group.leader.as_deref() == Some(member_id) {
            e.group.complete_sync(assignments);
            if let Err(err) = self.store_group(log, e) {
                // As Kafka: an assignment that was not stored is not handed out. The leader and
                // every member waiting in SyncGroup get the error (NOT_COORDINATOR after a
                // storage fault: they look the coordinator up again and rejoin), and the group
                // rebalances.
                for m in e.group.members.values_mut() {
                    m.assignment = Bytes::new();
                }
                for (_, tx) in e.sync_waiters.drain() {
                    let _ = tx.send(SyncOutcome::error(err.clone()));
                }
                self.start_rebalance(e, now);
                return Ok(SyncOutcome::error(err));
            }
            let waiters: Vec<_> = e.sync_waiters.drain().collect();
            for (id, tx) in waiters {
                let assignment = e.group.members.get(&id).map(|m| m.assignment.clone()).unwrap_or_default();
                let _ = tx.send(SyncOutcome { error: None, protocol_type: e.group.protocol_type.clone(), protocol: e.group.protocol.clone(), assignment });
            }
            tracing::info!(group = %group_id, generation, "group is stable");
            return Ok(done(e));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(old) = e.sync_waiters.insert(member_id.to_string(), tx) {
            let _ = old.send(SyncOutcome::error(GroupError::RebalanceInProgress));
        }
        let wait_ms = e.group.members.get(member_id).map(|m| m.rebalance_timeout_ms.max(0) as u64).unwrap_or(0);
        Err(SyncWait { rx, group_id: group_id.to_string(), member_id: member_id.to_string(), generation, wait_ms })
    }

    /// SyncGroup, a follower's wait for the leader's assignment. Writes nothing: it may run on
    /// an async worker. Err when the rebalance timeout passed: hand it to `sync_timed_out`.
    pub async fn sync_wait(&self, wait: SyncWait, mut shutdown: watch::Receiver<bool>) -> Result<SyncOutcome, SyncTimedOut> {
        let SyncWait { rx, group_id, member_id, generation, wait_ms } = wait;
        let result = tokio::select! {
            r = tokio::time::timeout(Duration::from_millis(wait_ms), rx) => r,
            _ = shutdown.changed() => return Ok(SyncOutcome::error(GroupError::CoordinatorNotAvailable)),
        };
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            _ => Err(SyncTimedOut { group_id, member_id, generation }),
        }
    }

    /// The leader did not assign within the rebalance timeout: everyone rejoins. May write the
    /// group's record (run it where a disk write may block).
    pub fn sync_timed_out(&self, log: &dyn GroupLog, t: SyncTimedOut) -> SyncOutcome {
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(&t.group_id);
        if let Some(e) = groups.get_mut(&t.group_id) {
            e.sync_waiters.remove(&t.member_id);
            if e.group.state == GroupState::CompletingRebalance && e.group.generation == t.generation {
                self.start_rebalance(e, now);
                self.settle(log, e, now);
            }
        }
        SyncOutcome::error(GroupError::RebalanceInProgress)
    }

    /// SyncGroup in one call, every part on the caller's thread (tests).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        log: &dyn GroupLog,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: BTreeMap<String, Bytes>,
        shutdown: watch::Receiver<bool>,
    ) -> SyncOutcome {
        match self.sync_start(log, group_id, generation, member_id, instance_id, protocol_type, protocol, assignments) {
            Ok(outcome) => outcome,
            Err(wait) => match self.sync_wait(wait, shutdown).await {
                Ok(outcome) => outcome,
                Err(t) => self.sync_timed_out(log, t),
            },
        }
    }

    pub fn heartbeat(&self, log: &dyn GroupLog, group_id: &str, generation: i32, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        let e = self.current(log, &mut groups, group_id, now).ok_or(GroupError::UnknownMemberId)?;
        if let Some(g) = e.consumer.as_mut() {
            return g.classic_heartbeat(member_id, instance_id, generation, now).map_err(map_error);
        }
        if matches!(e.group.state, GroupState::Empty | GroupState::Dead) {
            return Err(GroupError::UnknownMemberId);
        }
        // Membership, then the generation, then the state, as Kafka 4.0's coordinator checks
        // them: a member of another generation is not told of a rebalance and keeps no session.
        if let Some(iid) = instance_id {
            if e.group.member_by_instance(iid).is_some_and(|m| m.id != member_id) {
                return Err(GroupError::FencedInstanceId);
            }
        }
        let m = e.group.members.get_mut(member_id).ok_or(GroupError::UnknownMemberId)?;
        if generation != e.group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        m.last_seen_ms = now;
        if e.group.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for each (member id, instance id); per-member results.
    pub fn leave(&self, log: &dyn GroupLog, group_id: &str, members: &[(String, Option<String>)]) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        // A group that does not exist has none of the members (each answered UNKNOWN_MEMBER_ID,
        // with no error for the request itself, as Kafka answers).
        let Some(e) = self.current(log, &mut groups, group_id, now) else {
            return Ok(members.iter().map(|_| Err(GroupError::UnknownMemberId)).collect());
        };
        if e.consumer.is_some() {
            return self.classic_leave_consumer_group(log, e, members);
        }
        let mut results = vec![];
        for (member_id, instance_id) in members {
            let id = match instance_id {
                Some(iid) => match e.group.member_by_instance(iid) {
                    Some(m) if member_id.is_empty() || *member_id == m.id => Some(m.id.clone()),
                    Some(_) => {
                        results.push(Err(GroupError::FencedInstanceId));
                        continue;
                    }
                    None => None,
                },
                None => Some(member_id.clone()),
            };
            let Some(id) = id else {
                results.push(Err(GroupError::UnknownMemberId));
                continue;
            };
            if e.group.pending.remove(&id).is_some() {
                results.push(Ok(()));
                continue;
            }
            match e.group.remove_member(&id) {
                Some(_) => {
                    tracing::info!(group = %group_id, member = %id, "member left");
                    e.evict_waiters(&id, GroupError::UnknownMemberId);
                    e.group.on_member_gone(now);
                    results.push(Ok(()));
                }
                None => results.push(Err(GroupError::UnknownMemberId)),
            }
        }
        self.settle(log, e, now);
        Ok(results)
    }

    /// The records of a commit and what memory takes once they are written: (a result per
    /// offset, the records, (result index, partition, value) of each accepted offset). Offsets
    /// with metadata over offset.metadata.max.bytes are refused one by one.
    #[allow(clippy::type_complexity)]
    fn commit_records(&self, group_id: &str, commits: Vec<OffsetCommit>, ts: i64) -> (Vec<Result<(), GroupError>>, Vec<(Bytes, Option<Bytes>)>, Vec<(usize, (String, i32), CommittedOffset)>) {
        let mut results = Vec::with_capacity(commits.len());
        let mut records = vec![];
        let mut accepted = vec![];
        for c in commits {
            let metadata = c.metadata.unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            let value = CommittedOffset { offset: c.offset, leader_epoch: c.leader_epoch, metadata, commit_timestamp_ms: ts };
            records.push((offsets::encode_offset_key(group_id, &c.topic, c.partition), Some(offsets::encode_offset_value(&value))));
            accepted.push((results.len(), (c.topic, c.partition), value));
            results.push(Ok(()));
        }
        (results, records, accepted)
    }

    /// OffsetCommit. `generation == -1` is an admin/simple commit (whatever the member id), allowed
    /// only while the group has no members. Returns per-offset results.
    pub fn commit(
        &self,
        log: &dyn GroupLog,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        commits: Vec<OffsetCommit>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        self.current(log, &mut groups, group_id, now);
        // Generation -1 is an admin client or a consumer without group management (which may
        // still send its member id, as librdkafka's KIP-848 consumer does): allowed while empty.
        let simple = generation < 0;
        if !groups.contains_key(group_id) {
            if !simple {
                return Err(GroupError::IllegalGeneration);
            }
            groups.insert(group_id.to_string(), Entry::new(group_id));
        }
        let Some(e) = groups.get_mut(group_id) else { return Err(GroupError::CoordinatorNotAvailable) };
        if let Some(check) = Self::check_consumer_member(e, member_id, generation) {
            // A consumer-protocol group: the member epoch is checked (KIP-848).
            check?;
        } else {
            match e.group.state {
                GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
                _ if simple && e.group.state == GroupState::Empty => {}
                GroupState::CompletingRebalance => return Err(GroupError::RebalanceInProgress),
                _ => {
                    Self::check_member(e, member_id, instance_id, generation)?;
                    if let Some(m) = e.group.members.get_mut(member_id) {
                        m.last_seen_ms = now;
                    }
                }
            }
        }
        let ts = wall_ms();
        let (mut results, records, accepted) = self.commit_records(group_id, commits, ts);
        // Written under the lock so the log and memory see commits in the same order.
        if let Err(err) = self.write(log, group_id, records) {
            tracing::warn!(group = %group_id, error = %err, "offset commit not persisted");
            for (i, _, _) in &accepted {
                results[*i] = Err(err.clone());
            }
            return Ok(results);
        }
        for (_, key, value) in accepted {
            e.offsets.insert(key, value);
        }
        Ok(results)
    }

    /// TxnOffsetCommit: offsets written to `__consumer_offsets` inside the producer's
    /// transaction; they count once its commit marker is written (`complete_txn`). A member id
    /// and generation, when given (v3+), must match the group's.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit(
        &self,
        log: &dyn GroupLog,
        group_id: &str,
        producer: (i64, i16),
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        commits: Vec<OffsetCommit>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        self.current(log, &mut groups, group_id, now);
        let e = groups.entry(group_id.to_string()).or_insert_with(|| Entry::new(group_id));
        if e.group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        // A consumer group checks the member epoch (or a classic member's generation), as for an
        // OffsetCommit, but answers a wrong one ILLEGAL_GENERATION as Kafka 4.0 does here (the
        // producer relays the consumer's group metadata); a classic group checks the generation.
        if let Some(check) = Self::check_consumer_member(e, member_id, generation) {
            check.map_err(|err| if err == GroupError::StaleMemberEpoch { GroupError::IllegalGeneration } else { err })?;
        } else if !member_id.is_empty() || generation >= 0 {
            Self::check_member(e, member_id, instance_id, generation)?;
        }
        let ts = wall_ms();
        let (results, records, accepted) = self.commit_records(group_id, commits, ts);
        if !records.is_empty() {
            let batch = offsets::encode_txn_batch(&records, ts, producer).map_err(LogError::Other)?;
            log.append_group_batch(self.partition(log, group_id), batch).inspect_err(|err| {
                tracing::warn!(group = %group_id, error = %err, "transactional offset commit not persisted");
            })?;
        }
        let pending = e.pending_txn.entry(producer.0).or_default();
        for (_, key, value) in accepted {
            pending.insert(key, value);
        }
        Ok(results)
    }

    /// A transaction marker was written to `__consumer_offsets` partition `partition`: the
    /// producer's pending offsets of the groups there become committed, or are dropped.
    pub fn complete_txn(&self, log: &dyn GroupLog, partition: i32, producer_id: i64, commit: bool) {
        // Only the groups of that partition: they are all in its shard.
        let shards = self.shards(log);
        let Some(mut groups) = shards.lock(partition) else { return };
        for e in groups.values_mut() {
            if let Some(pending) = e.pending_txn.remove(&producer_id)
                && commit
            {
                e.offsets.extend(pending);
            }
        }
    }

    /// Whether an open transaction holds an offset for the partition (OffsetFetch with
    /// require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let shards = self.groups.view_current();
        let groups = shards.lock_id(group_id);
        groups.get(group_id).is_some_and(|e| e.pending_txn.values().any(|s| s.contains_key(&(topic.to_string(), partition))))
    }

    /// Committed offsets: of the listed partitions (None where there is no commit), or every
    /// committed partition when `topics` is None.
    pub fn fetch_offsets(&self, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Vec<(String, Vec<(i32, Option<CommittedOffset>)>)> {
        let shards = self.groups.view_current();
        let groups = shards.lock_id(group_id);
        committed_in(&groups, group_id, topics)
    }

    /// [`Self::fetch_offsets`] where this broker coordinates the group, decided under the
    /// shard's lock: the publisher unloads a shard (and loads one) under that lock, so a fetch
    /// that passed an earlier leadership check cannot read a shard emptied since, and answer
    /// "nothing committed" for a group whose offsets another broker now serves.
    pub fn fetch_offsets_coordinated(&self, log: &dyn GroupLog, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Result<Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>, GroupError> {
        let shards = self.groups.view_current();
        let groups = shards.lock_id(group_id);
        if let Some(e) = log.not_coordinating(shards.partition_of(group_id)) {
            return Err(e);
        }
        Ok(committed_in(&groups, group_id, topics))
    }

    /// DescribeGroups of one group: None when unknown; NotClassicGroup for a consumer group.
    pub fn describe(&self, log: &dyn GroupLog, group_id: &str) -> Result<Option<GroupSummary>, GroupError> {
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        // As for a fetch of offsets: never "no such group" from a shard being unloaded.
        if let Some(e) = log.not_coordinating(shards.partition_of(group_id)) {
            return Err(e);
        }
        let Some(e) = self.current(log, &mut groups, group_id, now) else { return Ok(None) };
        if e.consumer.is_some() {
            return Err(GroupError::NotClassicGroup(group_id.to_string()));
        }
        let g = &e.group;
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| MemberSummary {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                // As Kafka: metadata and assignment only once the group is stable.
                metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                assignment: if stable { m.assignment.clone() } else { Bytes::new() },
            })
            .collect();
        Ok(Some(GroupSummary {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        }))
    }

    /// Every group, as ListGroups shows it (one shard locked at a time). May write the records
    /// of groups whose sessions expired.
    pub fn list(&self, log: &dyn GroupLog) -> Vec<ListedGroup> {
        let now = self.now();
        let shards = self.shards(log);
        let mut out: Vec<ListedGroup> = Vec::new();
        for p in 0..shards.partitions() {
            let Some(mut groups) = shards.lock(p) else { continue };
            for e in groups.values_mut() {
                if self.expire_sessions(e, now) {
                    self.settle(log, e, now);
                }
            }
            out.extend(groups.values().map(|e| match &e.consumer {
                Some(g) => ListedGroup { group_id: e.group.id.clone(), protocol_type: "consumer".into(), state: g.state().as_str(), group_type: "consumer" },
                None => ListedGroup {
                    group_id: e.group.id.clone(),
                    protocol_type: e.group.protocol_type.clone().unwrap_or_default(),
                    state: e.group.state.as_str(),
                    group_type: "classic",
                },
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Every group's id, state, type and committed offsets, for metrics: read only (no session is
    /// expired, nothing written), one shard locked at a time.
    pub fn groups_for_metrics(&self) -> Vec<crate::metrics::GroupView> {
        let shards = self.groups.view_current();
        let mut out = Vec::new();
        for p in 0..shards.partitions() {
            let Some(groups) = shards.lock(p) else { continue };
            out.extend(groups.values().map(|e| crate::metrics::GroupView {
                group_id: e.group.id.clone(),
                state: match &e.consumer {
                    Some(g) => g.state().as_str(),
                    None => e.group.state.as_str(),
                },
                group_type: if e.consumer.is_some() { "consumer" } else { "classic" },
                committed: e.offsets.iter().map(|((t, p), c)| (t.clone(), *p, c.offset)).collect(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups: only an Empty group; its offsets and metadata get tombstones.
    pub fn delete_group(&self, log: &dyn GroupLog, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        let e = self.current(log, &mut groups, group_id, now).ok_or(GroupError::GroupIdNotFound)?;
        if e.has_members() {
            return Err(GroupError::NonEmptyGroup);
        }
        match e.group.state {
            GroupState::Empty => {}
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            _ => return Err(GroupError::NonEmptyGroup),
        }
        let mut records: Vec<(Bytes, Option<Bytes>)> = e.offsets.keys().map(|(t, p)| (offsets::encode_offset_key(group_id, t, *p), None)).collect();
        records.push((offsets::encode_group_key(group_id), None));
        records.extend(Self::consumer_tombstones(e));
        self.write(log, group_id, records)?;
        groups.remove(group_id);
        tracing::info!(group = %group_id, "group deleted");
        Ok(())
    }

    /// OffsetDelete: refused per partition while the group has members.
    pub fn delete_offsets(&self, log: &dyn GroupLog, group_id: &str, partitions: &[(String, i32)]) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let now = self.now();
        let shards = self.shards(log);
        let mut groups = shards.lock_id(group_id);
        let e = self.current(log, &mut groups, group_id, now).ok_or(GroupError::GroupIdNotFound)?;
        if e.group.state == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        if e.group.state != GroupState::Empty || e.has_members() {
            return Ok(partitions.iter().map(|_| Err(GroupError::GroupSubscribedToTopic)).collect());
        }
        let records: Vec<_> = partitions
            .iter()
            .filter(|(t, p)| e.offsets.contains_key(&(t.clone(), *p)))
            .map(|(t, p)| (offsets::encode_offset_key(group_id, t, *p), None))
            .collect();
        self.write(log, group_id, records)?;
        for (t, p) in partitions {
            e.offsets.remove(&(t.clone(), *p));
        }
        Ok(partitions.iter().map(|_| Ok(())).collect())
    }

    /// Writes tombstones for a group's committed offsets `keys` (then `more` records in the same
    /// batch) and forgets them; nothing changes when the write fails.
    fn remove_offsets(&self, log: &dyn GroupLog, id: &str, e: &mut Entry, keys: &[(String, i32)], more: Vec<(Bytes, Option<Bytes>)>) -> Result<(), GroupError> {
        let mut records: Vec<(Bytes, Option<Bytes>)> = keys.iter().map(|(t, p)| (offsets::encode_offset_key(id, t, *p), None)).collect();
        records.extend(more);
        self.write(log, id, records)?;
        for k in keys {
            e.offsets.remove(k);
        }
        Ok(())
    }

    /// Topics were deleted: every group's committed offsets of their partitions go, with
    /// tombstones, whatever the group's state (as Kafka's coordinator on a deletion in the
    /// metadata). Otherwise OffsetFetch keeps answering positions of partitions that no longer
    /// exist (the admin tool's describe of the group fails on them) and a topic re-created under
    /// the name starts from the old positions. Only the shards held here are looked at (in a
    /// cluster each broker clears the partitions it leads); offsets of open transactions are
    /// left to the transaction's end. A group whose tombstones cannot be written keeps its
    /// offsets (logged). Returns how many committed offsets went. Writes.
    pub fn on_topics_deleted(&self, log: &dyn GroupLog, topics: &[String]) -> usize {
        if topics.is_empty() {
            return 0;
        }
        let shards = self.shards(log);
        let mut removed = 0;
        for p in 0..shards.partitions() {
            let Some(mut groups) = shards.lock(p) else { continue };
            for (id, e) in groups.iter_mut() {
                let gone: Vec<(String, i32)> = e.offsets.keys().filter(|(t, _)| topics.contains(t)).cloned().collect();
                if gone.is_empty() {
                    continue;
                }
                if let Err(err) = self.remove_offsets(log, id, e, &gone, Vec::new()) {
                    tracing::warn!(group = %id, error = ?err, "could not write the tombstones of a deleted topic's offsets");
                    continue;
                }
                tracing::info!(group = %id, partitions = gone.len(), "committed offsets of deleted topics removed");
                removed += gone.len();
            }
        }
        removed
    }

    /// Removes members whose session ended and handed-out member ids nobody used. Called from the
    /// tick and at the start of every operation on the group, so that what a request sees is exact
    /// to the millisecond (as Kafka's per-member timers), not to the tick. Returns whether anything
    /// changed; the caller settles the group.
    fn expire_sessions(&self, e: &mut Entry, now: u64) -> bool {
        let before = e.group.pending.len();
        e.group.pending.retain(|_, deadline| *deadline > now);
        let expired = e.group.expired_members(now, |id| e.parked(id));
        for id in &expired {
            tracing::info!(group = %e.group.id, member = %id, "session expired; member removed");
            e.group.remove_member(id);
            e.group.on_member_gone(now);
        }
        let consumer_expired = self.expire_consumer_members(e, now);
        consumer_expired || !expired.is_empty() || before != e.group.pending.len()
    }

    /// The group's entry (if any) with its sessions brought up to `now`.
    pub(super) fn current<'a>(&self, log: &dyn GroupLog, groups: &'a mut HashMap<String, Entry>, group_id: &str, now: u64) -> Option<&'a mut Entry> {
        let e = groups.get_mut(group_id)?;
        if self.expire_sessions(e, now) {
            self.settle(log, e, now);
        }
        Some(e)
    }

    /// The periodic timer: expires sessions and handed-out member ids, ends rebalances whose
    /// timeout or initial delay passed, and expires offsets when due. Locks one shard at a time;
    /// writes (run it where a disk write may block).
    pub fn tick(&self, log: &dyn GroupLog) {
        let now = self.now();
        let due = {
            let mut last = self.last_expiry_ms.lock().unwrap_or_else(|e| e.into_inner());
            let wall = wall_ms();
            if wall - *last >= self.config.offsets_retention_check_interval_ms as i64 {
                *last = wall;
                true
            } else {
                false
            }
        };
        let shards = self.shards(log);
        for p in 0..shards.partitions() {
            let Some(mut groups) = shards.lock(p) else { continue };
            for e in groups.values_mut() {
                let changed = self.expire_sessions(e, now);
                if changed || e.group.state == GroupState::PreparingRebalance {
                    self.settle(log, e, now);
                }
                let wall = wall_ms();
                if !e.has_members() {
                    e.empty_since_ms.get_or_insert(wall);
                } else {
                    e.empty_since_ms = None;
                }
            }
            if due {
                self.expire_offsets(log, &mut groups, wall_ms());
            }
        }
    }

    /// Kafka's offset expiry (KIP-211): commits of a group without members expire
    /// offsets.retention.minutes after it became empty; for a group that never had a protocol
    /// (standalone commits), after the commit itself. A group left with nothing is removed.
    fn expire_offsets(&self, log: &dyn GroupLog, groups: &mut HashMap<String, Entry>, now_wall_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut emptied = Vec::new();
        for (id, e) in groups.iter_mut() {
            if e.has_members() || e.group.state != GroupState::Empty {
                continue;
            }
            let since = e.empty_since_ms;
            let standalone = e.group.protocol_type.is_none();
            let expired: Vec<(String, i32)> = e
                .offsets
                .iter()
                .filter(|(_, c)| {
                    let base = if standalone { c.commit_timestamp_ms } else { since.unwrap_or(c.commit_timestamp_ms) };
                    now_wall_ms - base >= retention
                })
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            let gone = expired.len() == e.offsets.len();
            let mut group_records = Vec::new();
            if gone {
                group_records.push((offsets::encode_group_key(id), None));
                group_records.extend(Self::consumer_tombstones(e));
            }
            if let Err(err) = self.remove_offsets(log, id, e, &expired, group_records) {
                tracing::warn!(group = %id, error = ?err, "could not write expired-offset tombstones; will retry");
                continue;
            }
            tracing::info!(group = %id, partitions = expired.len(), "committed offsets expired (offsets.retention.minutes)");
            if gone {
                emptied.push(id.clone());
            }
        }
        for id in emptied {
            groups.remove(&id);
        }
    }

    /// Rebuilds committed offsets and groups from `__consumer_offsets`. Classic groups with
    /// members come back Stable at their generation, consumer-protocol groups with their members'
    /// epochs and assignments, and every member's session starts again now (as Kafka's timers do
    /// at load): members carry on without a rebalance, and one that does not come back is
    /// removed after its session timeout. A record that cannot be decoded is logged and skipped;
    /// a partition whose batches cannot be read is logged and the others are still loaded.
    /// Meant for startup, before requests: the groups read replace those in memory.
    pub fn load(&self, log: &dyn GroupLog) -> Result<usize, String> {
        self.load_from(log, None)
    }

    /// In a cluster: this broker now leads `partition` of `__consumer_offsets`, so its groups
    /// are read from the log (to its end) and replace whatever the shard held.
    pub fn load_partition(&self, log: &dyn GroupLog, partition: i32) -> Result<usize, String> {
        self.load_from(log, Some(partition))
    }

    /// This broker no longer leads `partition`: its groups are forgotten here (the new leader
    /// loads them from its log).
    pub fn unload_partition(&self, partitions: i32, partition: i32) {
        if let Some(mut shard) = self.groups.view(partitions).lock(partition) {
            shard.clear();
        }
    }

    fn load_from(&self, log: &dyn GroupLog, only: Option<i32>) -> Result<usize, String> {
        let Some(partitions) = log.group_partitions() else { return Ok(0) };
        let now = self.now();
        // Assembled aside, then each group goes to its shard.
        let mut groups: HashMap<String, Entry> = HashMap::new();
        let mut records_seen = 0;
        // Consumer-protocol records are collected per group and assembled once all are read,
        // whatever their order; `raw` keeps the bytes last written for each key.
        let mut consumer: HashMap<String, StoredConsumerGroup> = HashMap::new();
        let mut raw: HashMap<String, BTreeMap<GroupKey, Bytes>> = HashMap::new();
        for p in (0..partitions).filter(|p| only.is_none_or(|o| o == *p)) {
            let mut offset = 0;
            let mut pending = offsets::PendingTxnRecords::new();
            loop {
                let data = log.read_group_batches(p, offset).map_err(|e| e.to_string())?;
                if data.is_empty() {
                    break;
                }
                let (records, next) = match offsets::decode_batches_with_next(data, &mut pending) {
                    Ok(r) => r,
                    Err(err) => {
                        tracing::error!(partition = p, offset, error = %err, "unreadable batch in __consumer_offsets; the rest of this partition is skipped");
                        break;
                    }
                };
                for (k, v) in records {
                    records_seen += 1;
                    let key = match offsets::decode_key(k) {
                        Ok(key) => key,
                        Err(err) => {
                            tracing::warn!(partition = p, error = %err, "skipping an undecodable key");
                            continue;
                        }
                    };
                    match key {
                        GroupKey::Offset { group, topic, partition } => match v {
                            Some(v) => match offsets::decode_offset_value(v) {
                                Ok(c) => {
                                    groups.entry(group.clone()).or_insert_with(|| Entry::new(&group)).offsets.insert((topic, partition), c);
                                }
                                Err(err) => tracing::warn!(%group, error = %err, "skipping an undecodable offset record"),
                            },
                            None => {
                                if let Some(e) = groups.get_mut(&group) {
                                    e.offsets.remove(&(topic, partition));
                                }
                            }
                        },
                        GroupKey::Metadata { group } => match v {
                            Some(v) => match offsets::decode_group_value(v) {
                                Ok(record) => {
                                    let e = groups.entry(group.clone()).or_insert_with(|| Entry::new(&group));
                                    e.group = restore_classic(&group, record, now);
                                    e.stored_generation = e.group.generation;
                                }
                                Err(err) => tracing::warn!(%group, error = %err, "skipping an undecodable group record"),
                            },
                            None => {
                                groups.remove(&group);
                            }
                        },
                        key => stage_consumer_record(&mut consumer, &mut raw, key, v),
                    }
                }
                match next {
                    Some(n) if n > offset => offset = n,
                    _ => break,
                }
            }
            // Transactions still open: their offsets wait for the marker.
            for (producer_id, records) in pending {
                for (k, v) in records {
                    if let (Ok(GroupKey::Offset { group, topic, partition }), Some(v)) = (offsets::decode_key(k), v)
                        && let Ok(c) = offsets::decode_offset_value(v)
                    {
                        let e = groups.entry(group.clone()).or_insert_with(|| Entry::new(&group));
                        e.pending_txn.entry(producer_id).or_default().insert((topic, partition), c);
                    }
                }
            }
        }
        for (group, stored) in consumer {
            if stored.is_empty() {
                continue;
            }
            let e = groups.entry(group.clone()).or_insert_with(|| Entry::new(&group));
            if !e.group.members.is_empty() {
                // Both kinds of records with members (a damaged log): the classic group stays.
                tracing::warn!(%group, "consumer-protocol records of a classic group with members ignored");
                continue;
            }
            let (g, dropped) = ConsumerGroup::restore(&group, stored, now);
            if dropped > 0 {
                tracing::warn!(%group, partitions = dropped, "assigned partitions of topics missing from the group's partition metadata dropped");
            }
            tracing::info!(%group, members = g.members.len(), epoch = g.group_epoch, "consumer group restored");
            e.consumer = Some(g);
            e.consumer_records = raw.remove(&group).unwrap_or_default();
        }
        for e in groups.values() {
            if !e.group.members.is_empty() {
                tracing::info!(group = %e.group.id, members = e.group.members.len(), generation = e.group.generation, "classic group restored");
            }
        }
        let shards = self.groups.view(partitions);
        if let Some(p) = only
            && let Some(mut shard) = shards.lock(p)
        {
            shard.clear();
        }
        for (id, e) in groups {
            shards.lock_id(&id).insert(id, e);
        }
        Ok(records_seen)
    }
}

/// A classic group from its metadata record (see `Group::restore`).
fn restore_classic(id: &str, r: offsets::GroupMetadataRecord, now: u64) -> Group {
    let protocol = r.protocol.clone().unwrap_or_default();
    let members = r
        .members
        .into_iter()
        .map(|s| {
            let mut m = Member::new(s.member_id, vec![(protocol.clone(), s.subscription)], s.session_timeout_ms, s.rebalance_timeout_ms, now);
            m.instance_id = s.instance_id;
            m.client_id = s.client_id;
            m.client_host = s.client_host;
            m.assignment = s.assignment;
            m
        })
        .collect();
    let protocol_type = (!r.protocol_type.is_empty()).then_some(r.protocol_type);
    Group::restore(id, protocol_type, r.generation, r.protocol, r.leader, members, now)
}

/// Files one consumer-protocol record (or its tombstone) under its group for `load`. The group
/// metadata's tombstone (written when the group is deleted) forgets the whole group.
fn stage_consumer_record(consumer: &mut HashMap<String, StoredConsumerGroup>, raw: &mut HashMap<String, BTreeMap<GroupKey, Bytes>>, key: GroupKey, value: Option<Bytes>) {
    let group = key.group().to_string();
    let s = consumer.entry(group.clone()).or_default();
    let Some(v) = value else {
        match &key {
            GroupKey::ConsumerMetadata { .. } => {
                consumer.remove(&group);
                raw.remove(&group);
                return;
            }
            GroupKey::ConsumerPartitionMetadata { .. } => s.topics = None,
            GroupKey::ConsumerTargetMetadata { .. } => s.assignment_epoch = None,
            GroupKey::ConsumerMember { member, .. } => drop(s.members.remove(member)),
            GroupKey::ConsumerTargetMember { member, .. } => drop(s.targets.remove(member)),
            GroupKey::ConsumerCurrentAssignment { member, .. } => drop(s.current.remove(member)),
            GroupKey::Offset { .. } | GroupKey::Metadata { .. } => {}
        }
        if let Some(r) = raw.get_mut(&group) {
            r.remove(&key);
        }
        return;
    };
    let decoded: Result<(), CodecError> = (|| {
        match &key {
            GroupKey::ConsumerMetadata { .. } => s.group_epoch = Some(consumer_codec::decode_epoch(v.clone())?),
            GroupKey::ConsumerPartitionMetadata { .. } => s.topics = Some(consumer_codec::decode_partition_metadata(v.clone())?),
            GroupKey::ConsumerTargetMetadata { .. } => s.assignment_epoch = Some(consumer_codec::decode_epoch(v.clone())?),
            GroupKey::ConsumerMember { member, .. } => drop(s.members.insert(member.clone(), consumer_codec::decode_member(v.clone())?)),
            GroupKey::ConsumerTargetMember { member, .. } => drop(s.targets.insert(member.clone(), consumer_codec::decode_target_member(v.clone())?)),
            GroupKey::ConsumerCurrentAssignment { member, .. } => drop(s.current.insert(member.clone(), consumer_codec::decode_member_assignment(v.clone())?)),
            GroupKey::Offset { .. } | GroupKey::Metadata { .. } => {}
        }
        Ok(())
    })();
    match decoded {
        Ok(()) => drop(raw.entry(group).or_default().insert(key, v)),
        Err(err) => tracing::warn!(%group, ?key, error = %err, "skipping an undecodable consumer group record"),
    }
}

/// The committed offsets of `group_id` in its locked shard (see `fetch_offsets`).
fn committed_in(groups: &HashMap<String, Entry>, group_id: &str, topics: Option<Vec<(String, Vec<i32>)>>) -> Vec<(String, Vec<(i32, Option<CommittedOffset>)>)> {
    let store = groups.get(group_id).map(|e| &e.offsets);
    match topics {
        Some(list) => list
            .into_iter()
            .map(|(t, parts)| {
                let ps = parts.into_iter().map(|p| (p, store.and_then(|s| s.get(&(t.clone(), p)).cloned()))).collect();
                (t, ps)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> = BTreeMap::new();
            for ((t, p), c) in store.into_iter().flatten() {
                by_topic.entry(t.clone()).or_default().push((*p, Some(c.clone())));
            }
            by_topic.into_iter().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory `__consumer_offsets`.
    #[derive(Default)]
    struct MemLog(Mutex<Vec<Bytes>>);

    impl GroupLog for MemLog {
        fn append_group_batch(&self, _partition: i32, batch: Bytes) -> Result<(), LogError> {
            self.0.lock().unwrap().push(batch);
            Ok(())
        }
        fn group_partitions(&self) -> Option<i32> {
            Some(1)
        }
        fn read_group_batches(&self, _partition: i32, offset: i64) -> Result<Bytes, LogError> {
            // Re-number batches as one log would.
            let batches = self.0.lock().unwrap();
            let mut out = bytes::BytesMut::new();
            let mut next = 0i64;
            for b in batches.iter() {
                let n = offsets::decode_batches(b.clone()).unwrap().len() as i64;
                if next >= offset {
                    let mut b = bytes::BytesMut::from(&b[..]);
                    b[..8].copy_from_slice(&next.to_be_bytes());
                    out.extend_from_slice(&b);
                }
                next += n;
            }
            Ok(out.freeze())
        }
    }

    /// An in-memory `__consumer_offsets` whose appends fail with `fail` while it is set: one
    /// test log for every kind of write failure.
    #[derive(Default)]
    struct FailingLog {
        mem: MemLog,
        fail: Mutex<Option<LogError>>,
    }

    impl FailingLog {
        fn fail_with(&self, e: Option<LogError>) {
            *self.fail.lock().unwrap() = e;
        }
    }

    impl GroupLog for FailingLog {
        fn append_group_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
            match self.fail.lock().unwrap().clone() {
                Some(e) => Err(e),
                None => self.mem.append_group_batch(partition, batch),
            }
        }
        fn group_partitions(&self) -> Option<i32> {
            self.mem.group_partitions()
        }
        fn read_group_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError> {
            self.mem.read_group_batches(partition, offset)
        }
    }

    fn every_log_error() -> Vec<LogError> {
        vec![
            LogError::PartitionOffline("log dir /d offline".into()),
            LogError::Storage("EIO".into()),
            LogError::RecordTooLarge("1048588 > 1048576".into()),
            LogError::TopicUnavailable("being created".into()),
            LogError::Other("cannot encode".into()),
        ]
    }

    #[test]
    fn every_kind_of_write_failure_reaches_the_committer_unchanged_and_commits_nothing() {
        use super::super::consumer::TopicsView;
        for kind in every_log_error() {
            let log = FailingLog::default();
            let c = GroupCoordinator::new(config());
            log.fail_with(Some(kind.clone()));
            let want = GroupError::Log(kind.clone());
            // OffsetCommit: each partition carries the log's error; nothing is committed.
            let r = c.commit(&log, "simple", -1, "", None, commit_one(5)).unwrap();
            assert_eq!(r, vec![Err(want.clone())], "{kind:?}");
            assert_eq!(c.fetch_offsets("simple", None), vec![], "{kind:?}: nothing committed");
            // TxnOffsetCommit: the whole request.
            assert_eq!(c.txn_commit(&log, "simple", (7, 0), -1, "", None, commit_one(5)), Err(want.clone()), "{kind:?}");
            // ConsumerGroupHeartbeat: a join that cannot be written.
            let join = consumer_join_hb("m1");
            let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
            assert_eq!(c.consumer_heartbeat(&log, "cg", join, &topics).err(), Some(want.clone()), "{kind:?}");
            // Once the log takes writes again, the same commit works.
            log.fail_with(None);
            assert_eq!(c.commit(&log, "simple", -1, "", None, commit_one(5)).unwrap(), vec![Ok(())]);
            // DeleteGroups of the now empty group.
            log.fail_with(Some(kind.clone()));
            assert_eq!(c.delete_group(&log, "simple"), Err(want.clone()), "{kind:?}");
            assert_eq!(c.fetch_offsets("simple", None).len(), 1, "{kind:?}: a deletion not written deletes nothing");
        }
    }

    #[tokio::test]
    async fn a_leader_assignment_that_cannot_be_stored_fails_every_sync_and_the_group_rebalances() {
        for kind in every_log_error() {
            let log = FailingLog::default();
            let c = GroupCoordinator::new(config());
            let (_tx, rx) = watch::channel(false);
            let a = c.join(&log, static_req("g", "i1"), rx.clone()).await;
            let rejoin = JoinRequest { member_id: a.member_id.clone(), ..static_req("g", "i1") };
            let (b, a) = tokio::join!(c.join(&log, static_req("g", "i2"), rx.clone()), c.join(&log, rejoin, rx.clone()));
            assert_eq!((a.error.clone(), b.error.clone(), a.generation), (None, None, 2));
            let (leader, follower) = (a.member_id.clone(), b.member_id.clone());
            log.fail_with(Some(kind.clone()));
            let assign = BTreeMap::from([(leader.clone(), Bytes::from_static(b"L")), (follower.clone(), Bytes::from_static(b"F"))]);
            let (s1, s2) = tokio::join!(
                c.sync(&log, "g", 2, &follower, None, None, None, BTreeMap::new(), rx.clone()),
                async {
                    // The follower parks first, then the leader's assignment fails to be stored.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    c.sync(&log, "g", 2, &leader, None, None, None, assign, rx.clone()).await
                }
            );
            let want = Some(GroupError::Log(kind.clone()));
            assert_eq!((s1.error, s1.assignment), (want.clone(), Bytes::new()), "{kind:?}: the parked follower");
            assert_eq!((s2.error, s2.assignment), (want, Bytes::new()), "{kind:?}: the leader");
            assert_eq!(c.describe(&log, "g").unwrap().unwrap().state, GroupState::PreparingRebalance, "{kind:?}");
            assert_eq!(c.heartbeat(&log, "g", 2, &leader, None), Err(GroupError::RebalanceInProgress), "{kind:?}: members are told to rejoin");
        }
    }

    fn config() -> GroupConfig {
        GroupConfig { initial_rebalance_delay_ms: 0, min_session_timeout_ms: 10, ..Default::default() }
    }

    /// A `__consumer_offsets` of `PARTS` partitions that records each append as (partition,
    /// batch), can hold the appends to one partition at a gate until released (telling the test
    /// when one arrives there), and can fail every append.
    struct GatedLog {
        appends: Mutex<Vec<(i32, Bytes)>>,
        /// The held partition (-1: none) and its gate.
        held: std::sync::atomic::AtomicI32,
        gate: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
        /// An append in progress, per partition: two at once on one partition fail the test.
        busy: Vec<std::sync::atomic::AtomicBool>,
        fail: std::sync::atomic::AtomicBool,
    }

    const PARTS: i32 = 4;

    impl GatedLog {
        fn new() -> GatedLog {
            GatedLog {
                appends: Mutex::new(vec![]),
                held: std::sync::atomic::AtomicI32::new(-1),
                gate: Mutex::new(None),
                busy: (0..PARTS).map(|_| Default::default()).collect(),
                fail: Default::default(),
            }
        }
        /// Holds appends to `partition`: each one sends on the returned receiver when it arrives,
        /// then waits for one message on the returned sender.
        fn hold(&self, partition: i32) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
            let (arrived_tx, arrived_rx) = std::sync::mpsc::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel();
            *self.gate.lock().unwrap() = Some((arrived_tx, release_rx));
            self.held.store(partition, std::sync::atomic::Ordering::SeqCst);
            (arrived_rx, release_tx)
        }
        fn partitions_written(&self) -> Vec<i32> {
            self.appends.lock().unwrap().iter().map(|(p, _)| *p).collect()
        }
    }

    impl GroupLog for GatedLog {
        fn append_group_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(LogError::Storage("disk failed".into()));
            }
            use std::sync::atomic::Ordering::SeqCst;
            let busy = &self.busy[partition as usize];
            assert!(!busy.swap(true, SeqCst), "two appends at once to partition {partition}");
            if self.held.load(SeqCst) == partition
                && let Some((arrived, release)) = self.gate.lock().unwrap().as_ref()
            {
                arrived.send(()).unwrap();
                release.recv_timeout(Duration::from_secs(30)).expect("the test releases the gate");
            }
            self.appends.lock().unwrap().push((partition, batch));
            busy.store(false, SeqCst);
            Ok(())
        }
        fn group_partitions(&self) -> Option<i32> {
            Some(PARTS)
        }
        fn read_group_batches(&self, _partition: i32, _offset: i64) -> Result<Bytes, LogError> {
            Ok(Bytes::new())
        }
    }

    /// The first group id (g0, g1, ...) after `skip` that hashes to `partition`.
    fn group_on(partition: i32, skip: usize) -> String {
        (0..).map(|i| format!("g{i}")).filter(|g| offsets::partition_for(g, PARTS) == partition).nth(skip).unwrap()
    }

    fn commit_one(offset: i64) -> Vec<OffsetCommit> {
        vec![OffsetCommit { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: None }]
    }

    /// A log that leads its partition while `led` is set, and records whether each leadership
    /// question came while the asking shard's lock was held.
    struct LeaderLog {
        mem: MemLog,
        led: std::sync::atomic::AtomicBool,
        coordinator: std::sync::OnceLock<std::sync::Arc<GroupCoordinator>>,
        asked_under_lock: Mutex<Vec<bool>>,
    }

    impl GroupLog for LeaderLog {
        fn append_group_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
            self.mem.append_group_batch(partition, batch)
        }
        fn group_partitions(&self) -> Option<i32> {
            self.mem.group_partitions()
        }
        fn read_group_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError> {
            self.mem.read_group_batches(partition, offset)
        }
        fn not_coordinating(&self, partition: i32) -> Option<GroupError> {
            let c = self.coordinator.get().expect("coordinator set");
            self.asked_under_lock.lock().unwrap().push(c.groups.view_current().try_lock(partition).is_none());
            (!self.led.load(std::sync::atomic::Ordering::SeqCst)).then(|| GroupError::Log(LogError::PartitionOffline("led elsewhere".into())))
        }
    }

    #[test]
    fn offset_fetch_and_describe_ask_for_leadership_under_the_shard_lock_and_never_answer_from_a_shard_not_led() {
        // The publisher makes a broker a follower, then clears the shard under its lock: asking
        // under that lock means a fetch that sees "led" reads the shard before it is cleared,
        // and one that comes after sees "not led". "Nothing committed" from a shard being
        // unloaded made a group's offsets go back to none in the fault checker.
        let log = LeaderLog { mem: MemLog::default(), led: true.into(), coordinator: Default::default(), asked_under_lock: Default::default() };
        let c = std::sync::Arc::new(GroupCoordinator::new(config()));
        log.coordinator.set(c.clone()).ok().expect("set once");
        assert_eq!(c.commit(&log, "g", -1, "", None, commit_one(5)), Ok(vec![Ok(())]));
        let got = c.fetch_offsets_coordinated(&log, "g", Some(vec![("t".into(), vec![0])])).expect("led here");
        assert_eq!(got[0].1[0].1.as_ref().map(|o| o.offset), Some(5));
        log.led.store(false, std::sync::atomic::Ordering::SeqCst);
        let want = GroupError::Log(LogError::PartitionOffline("led elsewhere".into()));
        assert_eq!(c.fetch_offsets_coordinated(&log, "g", None), Err(want.clone()), "led elsewhere, still loaded");
        c.unload_partition(1, 0);
        assert_eq!(c.fetch_offsets_coordinated(&log, "g", None), Err(want.clone()), "led elsewhere and unloaded: never 'nothing committed'");
        // DescribeGroups too: never "no such group" from a shard it does not lead.
        assert_eq!(c.describe(&log, "g").err(), Some(want));
        let asked = log.asked_under_lock.lock().unwrap().clone();
        assert_eq!(asked, vec![true; 4], "every question asked while the shard was locked");
    }

    #[test]
    fn a_commit_waiting_on_one_partitions_write_does_not_hold_up_another_partition() {
        let log = GatedLog::new();
        let c = GroupCoordinator::new(config());
        let (held, other) = (group_on(1, 0), group_on(2, 0));
        let (arrived, release) = log.hold(1);
        std::thread::scope(|s| {
            let blocked = s.spawn(|| c.commit(&log, &held, -1, "", None, commit_one(5)));
            arrived.recv_timeout(Duration::from_secs(30)).expect("the held commit reaches its write");
            // While that write is stuck, a commit, a heartbeat and a fetch on partition 2 finish
            // (with one global lock this thread would wait for the release that never comes).
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let (c, log, other) = (&c, &log, &other);
            s.spawn(move || {
                let r = c.commit(log, other, -1, "", None, commit_one(7));
                let h = c.heartbeat(log, other, 0, "nobody", None);
                done_tx.send((r, h, c.fetch_offsets(other, None))).unwrap();
            });
            let (r, h, fetched) = done_rx.recv_timeout(Duration::from_secs(30)).expect("partition 2 is not held up by partition 1's write");
            assert_eq!(r, Ok(vec![Ok(())]));
            assert_eq!(h, Err(GroupError::UnknownMemberId));
            assert_eq!(fetched[0].1[0].1.as_ref().map(|o| o.offset), Some(7));
            assert_eq!(log.partitions_written(), vec![2], "partition 1's write is still held");
            release.send(()).unwrap();
            assert_eq!(blocked.join().unwrap(), Ok(vec![Ok(())]));
        });
        assert_eq!(log.partitions_written(), vec![2, 1]);
    }

    #[test]
    fn a_consumer_heartbeat_whose_records_cannot_be_written_fails_and_changes_nothing() {
        use super::super::consumer::TopicsView;
        use std::sync::atomic::Ordering::SeqCst;
        let log = GatedLog::new();
        let c = GroupCoordinator::new(config());
        let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
        let join = consumer_join_hb;
        // A first member whose join cannot be written: refused, and no group comes of it.
        log.fail.store(true, SeqCst);
        assert!(matches!(c.consumer_heartbeat(&log, "cg", join("m1"), &topics), Err(GroupError::Log(_))));
        assert_eq!(c.consumer_describe(&log, "cg").err(), Some(GroupError::ConsumerGroupNotFound("cg".into())));
        log.fail.store(false, SeqCst);
        let first = c.consumer_heartbeat(&log, "cg", join("m1"), &topics).unwrap();
        assert_eq!(first.output.member_epoch, 1);
        let before = c.consumer_describe(&log, "cg").unwrap();
        let written = log.appends.lock().unwrap().len();
        // A second member's join cannot be written: refused, the group is as it was, and the
        // member does not get an epoch or an assignment it would act on.
        log.fail.store(true, SeqCst);
        assert!(matches!(c.consumer_heartbeat(&log, "cg", join("m2"), &topics), Err(GroupError::Log(_))));
        let after = c.consumer_describe(&log, "cg").unwrap();
        assert_eq!((after.group_epoch, after.assignment_epoch, after.members.len()), (before.group_epoch, before.assignment_epoch, 1));
        assert_eq!(after.members[0].assignment, before.members[0].assignment);
        assert_eq!(log.appends.lock().unwrap().len(), written);
        // Once the log takes writes again, the same join goes through as a new one.
        log.fail.store(false, SeqCst);
        let second = c.consumer_heartbeat(&log, "cg", join("m2"), &topics).unwrap();
        assert_eq!(second.output.member_epoch, before.group_epoch + 1);
        assert_eq!(c.consumer_describe(&log, "cg").unwrap().members.len(), 2);
    }

    #[test]
    fn lingering_consumer_group_changes_are_written_as_one_batch_and_undone_together_when_it_fails() {
        use super::super::consumer::{HeartbeatInput, TopicsView};
        use std::sync::atomic::Ordering::SeqCst;
        let log = GatedLog::new();
        let c = GroupCoordinator::new(GroupConfig { append_linger_ms: 10, ..config() });
        let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
        let join = consumer_join_hb;
        let answered = |w: &mut super::super::consumer_coordinator::LingeringWrite| w.written.try_recv().ok();
        // Two joins: both wait for one write; the first began the batch and writes it.
        let mut first = c.consumer_heartbeat(&log, "cg", join("m1"), &topics).unwrap();
        let mut second = c.consumer_heartbeat(&log, "cg", join("m2"), &topics).unwrap();
        let (w1, w2) = (first.write.as_mut().expect("waits"), second.write.as_mut().expect("waits"));
        assert_eq!((w1.write_after_ms, w2.write_after_ms), (Some(10), None), "the first heartbeat of the batch schedules its write");
        assert!(log.appends.lock().unwrap().is_empty(), "nothing written before the linger");
        assert_eq!((answered(w1), answered(w2)), (None, None));
        c.write_lingering(&log, "cg");
        assert_eq!(log.appends.lock().unwrap().len(), 1, "one batch for both joins");
        assert_eq!((answered(w1), answered(w2)), (Some(Ok(())), Some(Ok(()))));
        let before = c.consumer_describe(&log, "cg").unwrap();
        // A third join whose batch cannot be written: it fails and the group is as last written.
        let mut third = c.consumer_heartbeat(&log, "cg", join("m3"), &topics).unwrap();
        assert_eq!(c.consumer_describe(&log, "cg").unwrap().members.len(), 3, "the change is applied while it lingers");
        log.fail.store(true, SeqCst);
        c.write_lingering(&log, "cg");
        assert!(matches!(answered(third.write.as_mut().unwrap()), Some(Err(GroupError::Log(_)))));
        let after = c.consumer_describe(&log, "cg").unwrap();
        assert_eq!((after.group_epoch, after.members.len()), (before.group_epoch, 2));
        // A group created by a batch that fails is gone again.
        let mut lone = c.consumer_heartbeat(&log, "other", join("m1"), &topics).unwrap();
        c.write_lingering(&log, "other");
        assert!(matches!(answered(lone.write.as_mut().unwrap()), Some(Err(GroupError::Log(_)))));
        assert_eq!(c.consumer_describe(&log, "other").err(), Some(GroupError::ConsumerGroupNotFound("other".into())));
        log.fail.store(false, SeqCst);
        // A heartbeat that changes nothing is answered at once: a lone member acknowledges its
        // assignment (which may change its state), then says the same again.
        let solo = c.consumer_heartbeat(&log, "solo", join("m1"), &topics).unwrap();
        c.write_lingering(&log, "solo");
        let owned = solo.output.assignment.clone().expect("the lone member gets every partition");
        let ack = || HeartbeatInput { member_epoch: solo.output.member_epoch, owned: Some(owned.clone()), ..join("m1") };
        c.consumer_heartbeat(&log, "solo", ack(), &topics).unwrap();
        c.write_lingering(&log, "solo");
        assert!(c.consumer_heartbeat(&log, "solo", ack(), &topics).unwrap().write.is_none());
    }

    /// A `__consumer_offsets` whose every append takes `write_ms` (a slow disk).
    struct SlowLog {
        write_ms: u64,
    }

    impl GroupLog for SlowLog {
        fn append_group_batch(&self, _partition: i32, _batch: Bytes) -> Result<(), LogError> {
            std::thread::sleep(Duration::from_millis(self.write_ms));
            Ok(())
        }
        fn group_partitions(&self) -> Option<i32> {
            Some(50)
        }
        fn read_group_batches(&self, _partition: i32, _offset: i64) -> Result<Bytes, LogError> {
            Ok(Bytes::new())
        }
    }

    /// Measurement, not a check (`cargo test --lib commit_rate -- --ignored --nocapture`):
    /// 8 threads commit for 8 groups on 8 partitions of 50 to a log whose appends take 2 ms.
    #[test]
    #[ignore]
    fn commit_rate_with_a_slow_log() {
        let log = SlowLog { write_ms: 2 };
        let c = GroupCoordinator::new(config());
        let groups: Vec<String> = (0..8).map(|p| (0..).map(|i| format!("g{i}")).find(|g| offsets::partition_for(g, 50) == p).unwrap()).collect();
        let per_thread = 100;
        let started = Instant::now();
        std::thread::scope(|s| {
            for g in &groups {
                let (c, log) = (&c, &log);
                s.spawn(move || {
                    for i in 0..per_thread {
                        c.commit(log, g, -1, "", None, commit_one(i)).unwrap();
                    }
                });
            }
        });
        let elapsed = started.elapsed();
        let commits = groups.len() as u64 * per_thread as u64;
        println!("{commits} commits, 8 threads, 8 partitions, 2 ms per append: {} ms, {:.0} commits/s", elapsed.as_millis(), commits as f64 / elapsed.as_secs_f64());
    }

    #[test]
    fn groups_on_the_same_partition_still_write_in_turn() {
        let log = GatedLog::new();
        let c = GroupCoordinator::new(config());
        let (first, second) = (group_on(3, 0), group_on(3, 1));
        let (arrived, release) = log.hold(3);
        std::thread::scope(|s| {
            let a = s.spawn(|| c.commit(&log, &first, -1, "", None, commit_one(1)));
            arrived.recv_timeout(Duration::from_secs(30)).expect("the first commit reaches its write");
            // The write runs under partition 3's shard lock: nothing else on partition 3 can
            // change state (or write) until it is done, while partition 0 is free.
            {
                let shards = c.groups.view_current();
                assert!(shards.try_lock(3).is_none(), "partition 3's shard is held across its write");
                assert!(shards.try_lock(0).is_some());
            }
            let b = s.spawn(|| c.commit(&log, &second, -1, "", None, commit_one(2)));
            // The second commit cannot have written: its partition's write is still held.
            assert!(log.partitions_written().is_empty());
            release.send(()).unwrap();
            // The second commit passes the gate once it gets the lock: release it too.
            arrived.recv_timeout(Duration::from_secs(30)).expect("the second commit reaches its write after the first");
            release.send(()).unwrap();
            assert_eq!(a.join().unwrap(), Ok(vec![Ok(())]));
            assert_eq!(b.join().unwrap(), Ok(vec![Ok(())]));
        });
        // In the order the commits were applied: the first group's record, then the second's.
        let written: Vec<String> = log
            .appends
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, b)| offsets::decode_batches(b.clone()).unwrap())
            .map(|(k, _)| offsets::decode_key(k).unwrap().group().to_string())
            .collect();
        assert_eq!(written, vec![first, second]);
    }

    fn join_req(group: &str, member: &str) -> JoinRequest {
        JoinRequest {
            group_id: group.into(),
            member_id: member.into(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            supports_skip_assignment: true,
            topics: Default::default(),
        }
    }

    fn static_req(group: &str, instance: &str) -> JoinRequest {
        JoinRequest { instance_id: Some(instance.into()), ..join_req(group, "") }
    }

    /// Two static members reach a stable generation (2: the first member alone makes generation
    /// 1, the second joins and the first rejoins); returns (leader id, follower id).
    async fn stable_static_pair(c: &GroupCoordinator, log: &MemLog, rx: &watch::Receiver<bool>) -> (String, String) {
        let a = c.join(log, static_req("g", "i1"), rx.clone()).await;
        assert_eq!((a.error.clone(), a.generation), (None, 1));
        let rejoin = JoinRequest { member_id: a.member_id.clone(), ..static_req("g", "i1") };
        let (b, a) = tokio::join!(c.join(log, static_req("g", "i2"), rx.clone()), c.join(log, rejoin, rx.clone()));
        assert_eq!((a.error.clone(), b.error.clone(), a.generation, b.generation), (None, None, 2, 2));
        let (leader, follower) = (a.member_id.clone(), b.member_id.clone());
        assert_eq!(a.leader, leader);
        let assign = BTreeMap::from([(leader.clone(), Bytes::from_static(b"L")), (follower.clone(), Bytes::from_static(b"F"))]);
        let (s1, s2) = tokio::join!(
            c.sync(log, "g", 2, &leader, None, None, None, assign, rx.clone()),
            c.sync(log, "g", 2, &follower, None, None, None, BTreeMap::new(), rx.clone())
        );
        assert_eq!((s1.error, s2.error), (None, None));
        (leader, follower)
    }

    #[tokio::test]
    async fn a_restarted_static_member_rejoins_a_stable_group_without_rebalance() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        let (leader, follower) = stable_static_pair(&c, &log, &rx).await;
        let (follower_instance, leader_instance) = ("i2".to_string(), "i1");

        // The follower restarts: new member id, same generation, old assignment, no rebalance.
        let back = c.join(&log, static_req("g", &follower_instance), rx.clone()).await;
        assert_eq!((back.error.clone(), back.generation, back.leader.clone(), back.skip_assignment), (None, 2, leader.clone(), false));
        assert_ne!(back.member_id, follower);
        assert!(back.members.is_empty());
        let s = c.sync(&log, "g", 2, &back.member_id, Some(&follower_instance), None, None, BTreeMap::new(), rx.clone()).await;
        assert_eq!((s.error, s.assignment), (None, Bytes::from_static(b"F")));
        assert_eq!(c.describe(&log, "g").unwrap().unwrap().state, GroupState::Stable);
        assert_eq!(c.heartbeat(&log, "g", 2, &follower, Some(&follower_instance)), Err(GroupError::FencedInstanceId), "the old instance is fenced");

        // The leader restarts: told to skip the assignment (v9+), or shown the old leader id.
        let back = c.join(&log, static_req("g", leader_instance), rx.clone()).await;
        assert_eq!((back.error.clone(), back.generation, back.skip_assignment), (None, 2, true));
        assert_eq!(back.leader, back.member_id);
        assert_eq!(back.members.len(), 2);
        let old_leader = back.member_id.clone();
        let pre_v9 = c.join(&log, JoinRequest { supports_skip_assignment: false, ..static_req("g", leader_instance) }, rx.clone()).await;
        assert_eq!((pre_v9.error, pre_v9.generation, pre_v9.skip_assignment), (None, 2, false));
        assert_eq!(pre_v9.leader, old_leader, "an old client must not think it leads");
        assert!(pre_v9.members.is_empty());
        let s = c.sync(&log, "g", 2, &pre_v9.member_id, Some(leader_instance), None, None, BTreeMap::new(), rx.clone()).await;
        assert_eq!((s.error, s.assignment), (None, Bytes::from_static(b"L")));
        assert_eq!(c.describe(&log, "g").unwrap().unwrap().state, GroupState::Stable);
    }

    #[tokio::test]
    async fn a_static_member_rejoining_with_other_protocols_keeps_the_generation_while_the_selection_holds() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        stable_static_pair(&c, &log, &rx).await;
        let both = vec![("roundrobin".into(), Bytes::from_static(b"m")), ("range".into(), Bytes::from_static(b"m"))];
        // The only other member still speaks range only: range stays selected, no rebalance.
        let r = c.join(&log, JoinRequest { protocols: both, ..static_req("g", "i1") }, rx.clone()).await;
        assert_eq!((r.error, r.generation), (None, 2));
        let c2 = GroupCoordinator::new(config());
        stable_static_pair(&c2, &log, &rx).await;
        let other = vec![("sticky".into(), Bytes::from_static(b"m"))];
        assert_eq!(c2.join(&log, JoinRequest { protocols: other, ..static_req("g", "i1") }, rx.clone()).await.error, Some(GroupError::InconsistentGroupProtocol));
    }

    #[tokio::test]
    async fn member_id_required_then_join_sync_heartbeat() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        let first = c.join(&log, join_req("g", ""), rx.clone()).await;
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        assert!(first.member_id.starts_with("c-"));
        let joined = c.join(&log, join_req("g", &first.member_id), rx.clone()).await;
        assert_eq!((joined.error.clone(), joined.generation, joined.leader.clone()), (None, 1, first.member_id.clone()));
        assert_eq!(joined.members.len(), 1);
        let assign = BTreeMap::from([(first.member_id.clone(), Bytes::from_static(b"a"))]);
        let s = c.sync(&log, "g", 1, &first.member_id, None, None, None, assign, rx.clone()).await;
        assert_eq!((s.error, s.assignment), (None, Bytes::from_static(b"a")));
        assert_eq!(c.heartbeat(&log, "g", 1, &first.member_id, None), Ok(()));
        assert_eq!(c.heartbeat(&log, "g", 0, &first.member_id, None), Err(GroupError::IllegalGeneration));
        assert_eq!(c.heartbeat(&log, "g", 1, "nobody", None), Err(GroupError::UnknownMemberId));
        assert_eq!(c.heartbeat(&log, "", 1, "x", None), Err(GroupError::InvalidGroupId));
    }

    #[tokio::test]
    async fn a_session_ends_at_its_deadline_for_every_request_not_at_the_next_tick() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        let r = JoinRequest { session_timeout_ms: 50, ..static_req("g", "i1") };
        let joined = c.join(&log, r, rx.clone()).await;
        let s = c.sync(&log, "g", 1, &joined.member_id, None, None, None, BTreeMap::new(), rx.clone()).await;
        assert_eq!(s.error, None);
        assert_eq!(c.delete_group(&log, "g"), Err(GroupError::NonEmptyGroup));
        tokio::time::sleep(Duration::from_millis(60)).await;
        // No tick ran: the expiry is applied by the requests themselves.
        assert_eq!(c.describe(&log, "g").unwrap().unwrap().state, GroupState::Empty);
        assert_eq!(c.heartbeat(&log, "g", 1, &joined.member_id, None), Err(GroupError::UnknownMemberId));
        assert_eq!(c.delete_group(&log, "g"), Ok(()));
    }

    #[tokio::test]
    async fn invalid_joins_are_refused() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        let mut r = join_req("g", "");
        r.session_timeout_ms = 1;
        assert_eq!(c.join(&log, r, rx.clone()).await.error, Some(GroupError::InvalidSessionTimeout));
        let mut r = join_req("g", "");
        r.protocols.clear();
        assert_eq!(c.join(&log, r, rx.clone()).await.error, Some(GroupError::InconsistentGroupProtocol));
        assert_eq!(c.join(&log, join_req("nope", "m-1"), rx.clone()).await.error, Some(GroupError::UnknownMemberId));
        assert_eq!(c.join(&log, join_req("", ""), rx.clone()).await.error, Some(GroupError::InvalidGroupId));
        let small = GroupCoordinator::new(GroupConfig { max_size: 0, ..config() });
        assert_eq!(small.join(&log, join_req("g", ""), rx).await.error, Some(GroupError::GroupMaxSizeReached));
    }


    #[tokio::test]
    async fn offsets_of_empty_groups_expire_after_retention_and_leave_tombstones() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(GroupConfig { offsets_retention_ms: 60_000, ..config() });
        let commit = |p: i32, o: i64| OffsetCommit { topic: "t".into(), partition: p, offset: o, leader_epoch: 2, metadata: None };
        c.commit(&log, "old", -1, "", None, vec![commit(0, 5)]).unwrap();
        c.commit(&log, "fresh", -1, "", None, vec![commit(0, 9)]).unwrap();
        // A group with a member keeps its offsets whatever their age.
        let (_tx, rx) = watch::channel(false);
        let first = c.join(&log, join_req("live", ""), rx.clone()).await;
        c.join(&log, join_req("live", &first.member_id), rx.clone()).await;
        let now = wall_ms();
        {
            let shards = c.shards(&log);
            let mut groups = shards.lock(0).unwrap();
            let ancient = CommittedOffset { offset: 3, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: now - 3_600_000 };
            groups.get_mut("live").unwrap().offsets.insert(("t".into(), 0), ancient);
            // Age "old" past the retention; "fresh" stays within it.
            groups.get_mut("old").unwrap().offsets.values_mut().for_each(|o| o.commit_timestamp_ms -= 120_000);
            c.expire_offsets(&log, &mut groups, now);
            assert_eq!(groups["live"].offsets.len(), 1, "a group with members keeps its offsets");
            assert!(!groups.contains_key("old"), "a group left with nothing is removed");
        }
        assert!(c.fetch_offsets("old", None).iter().all(|(_, ps)| ps.iter().all(|(_, o)| o.is_none())), "expired");
        assert!(c.fetch_offsets("fresh", None).iter().any(|(_, ps)| ps.iter().any(|(_, o)| o.is_some())), "kept");
        // The expiry is durable: a reload from the log does not bring the offsets back.
        let reloaded = GroupCoordinator::new(config());
        reloaded.load(&log).unwrap();
        assert!(reloaded.fetch_offsets("old", None).iter().all(|(_, ps)| ps.iter().all(|(_, o)| o.is_none())));
        assert!(reloaded.fetch_offsets("fresh", None).iter().any(|(_, ps)| ps.iter().any(|(_, o)| o.is_some())));
    }
    #[tokio::test]
    async fn commits_survive_a_reload_and_simple_commits_need_an_empty_group() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let commit = |p: i32, o: i64| OffsetCommit { topic: "t".into(), partition: p, offset: o, leader_epoch: 2, metadata: Some("x".into()) };
        assert_eq!(c.commit(&log, "g", -1, "", None, vec![commit(0, 5), commit(1, 7)]).unwrap(), vec![Ok(()), Ok(())]);
        let too_big = OffsetCommit { metadata: Some("y".repeat(5000)), ..commit(2, 1) };
        assert_eq!(c.commit(&log, "g", -1, "", None, vec![too_big]).unwrap(), vec![Err(GroupError::OffsetMetadataTooLarge)]);
        assert_eq!(c.commit(&log, "g", 3, "m", None, vec![commit(0, 1)]), Err(GroupError::UnknownMemberId));
        assert_eq!(c.commit(&log, "other", 3, "m", None, vec![commit(0, 1)]), Err(GroupError::IllegalGeneration));
        c.delete_offsets(&log, "g", &[("t".into(), 1)]).unwrap();

        let reloaded = GroupCoordinator::new(config());
        assert_eq!(reloaded.load(&log).unwrap(), 3);
        let got = reloaded.fetch_offsets("g", None);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), 1);
        assert_eq!(got[0].1[0].1.as_ref().unwrap().offset, 5);
        assert_eq!(reloaded.fetch_offsets("g", Some(vec![("t".into(), vec![9])]))[0].1[0].1, None);
        reloaded.delete_group(&log, "g").unwrap();
        assert_eq!(reloaded.delete_group(&log, "g"), Err(GroupError::GroupIdNotFound));
        let again = GroupCoordinator::new(config());
        again.load(&log).unwrap();
        assert!(again.list(&log).is_empty());
    }

    #[tokio::test]
    async fn a_deleted_topics_offsets_go_from_every_group_and_stay_gone_after_a_reload() {
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let commit = |t: &str, p: i32, o: i64| OffsetCommit { topic: t.into(), partition: p, offset: o, leader_epoch: -1, metadata: None };
        c.commit(&log, "g", -1, "", None, vec![commit("gone", 0, 5), commit("gone", 1, 6), commit("kept", 0, 7)]).unwrap();
        c.commit(&log, "h", -1, "", None, vec![commit("gone", 0, 8)]).unwrap();
        // A group with a member loses them too (Streams' group still holds its member when the
        // reset tool deletes the internal topics).
        let (_tx, rx) = watch::channel(false);
        let first = c.join(&log, join_req("live", ""), rx.clone()).await;
        let joined = c.join(&log, join_req("live", &first.member_id), rx).await;
        assert_eq!(joined.error, None);
        c.shards(&log).lock(0).unwrap().get_mut("live").unwrap().offsets.insert(("gone".into(), 2), CommittedOffset { offset: 9, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: wall_ms() });
        assert_eq!(c.on_topics_deleted(&log, &[]), 0);
        assert_eq!(c.on_topics_deleted(&log, &["gone".into(), "never-committed".into()]), 4);
        let topics = |c: &GroupCoordinator, g: &str| c.fetch_offsets(g, None).into_iter().map(|(t, ps)| (t, ps.len())).collect::<Vec<_>>();
        assert_eq!(topics(&c, "g"), vec![("kept".to_string(), 1)]);
        assert_eq!(topics(&c, "h"), vec![]);
        assert_eq!(topics(&c, "live"), vec![]);
        assert_eq!(c.fetch_offsets("g", Some(vec![("gone".into(), vec![0])]))[0].1[0].1, None);
        assert_eq!(c.on_topics_deleted(&log, &["gone".into()]), 0, "nothing left to remove");
        // The tombstones are in the log: a reload does not bring the offsets back.
        let reloaded = GroupCoordinator::new(config());
        reloaded.load(&log).unwrap();
        assert_eq!(topics(&reloaded, "g"), vec![("kept".to_string(), 1)]);
        assert_eq!(topics(&reloaded, "h"), vec![]);
        assert_eq!(topics(&reloaded, "live"), vec![]);
    }

    /// A one-partition in-memory `__consumer_offsets` whose appends fail while `fail` is set.
    #[derive(Default)]
    struct FlakyLog {
        mem: MemLog,
        fail: std::sync::atomic::AtomicBool,
    }

    impl GroupLog for FlakyLog {
        fn append_group_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(LogError::Storage("disk failed".into()));
            }
            self.mem.append_group_batch(partition, batch)
        }
        fn group_partitions(&self) -> Option<i32> {
            Some(1)
        }
        fn read_group_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError> {
            self.mem.read_group_batches(partition, offset)
        }
    }

    /// A consumer-protocol member's first heartbeat, subscribed to topic t.
    fn consumer_join_hb(id: &str) -> super::super::consumer::HeartbeatInput {
        super::super::consumer::HeartbeatInput {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Default::default()),
            ..Default::default()
        }
    }

    /// A classic consumer's JoinGroup for topic t, with a real subscription.
    fn consumer_join_req(group: &str, member: &str, topics: &super::super::consumer::TopicsView) -> JoinRequest {
        let mut b = bytes::BytesMut::new();
        {
            use kafka_protocol::messages::ConsumerProtocolSubscription;
            use kafka_protocol::protocol::{Encodable, StrBytes};
            bytes::BufMut::put_i16(&mut b, 1);
            ConsumerProtocolSubscription::default().with_topics(vec![StrBytes::from_static_str("t")]).encode(&mut b, 1).unwrap();
        }
        JoinRequest { protocols: vec![("range".into(), b.freeze())], topics: topics.clone(), ..join_req(group, member) }
    }

    #[tokio::test]
    async fn a_classic_group_upgrades_when_a_consumer_member_joins_and_downgrades_when_it_leaves() {
        use super::super::consumer::{HeartbeatInput, LEAVE_EPOCH, TopicsView};
        use crate::protocol::consumer as embedded;
        use std::sync::atomic::Ordering::SeqCst;
        let log = FlakyLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
        // A stable classic group: c1 at generation 1 owning all of t.
        let first = c.join(&log, consumer_join_req("g", "", &topics), rx.clone()).await;
        let c1 = first.member_id.clone();
        let joined = c.join(&log, consumer_join_req("g", &c1, &topics), rx.clone()).await;
        assert_eq!(joined.generation, 1);
        let all = embedded::encode_assignment(1, &BTreeMap::from([("t".to_string(), (0..4).collect())]));
        let s = c.sync(&log, "g", 1, &c1, None, None, None, BTreeMap::from([(c1.clone(), all)]), rx.clone()).await;
        assert_eq!(s.error, None);
        let join = consumer_join_hb;

        // The upgrade cannot be written: refused, and the classic group is as it was.
        log.fail.store(true, SeqCst);
        assert!(matches!(c.consumer_heartbeat(&log, "g", join("m2"), &topics), Err(GroupError::Log(_))));
        let d = c.describe(&log, "g").unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::Stable, 1));
        assert_eq!(c.heartbeat(&log, "g", 1, &c1, None), Ok(()));
        log.fail.store(false, SeqCst);

        // A consumer-protocol member joins: one consumer group of both, at epoch 2.
        let m2 = c.consumer_heartbeat(&log, "g", join("m2"), &topics).unwrap();
        assert_eq!(m2.output.member_epoch, 2);
        let d = c.consumer_describe(&log, "g").unwrap();
        assert_eq!((d.group_epoch, d.members.len()), (2, 2));
        assert_eq!(c.describe(&log, "g").err(), Some(GroupError::NotClassicGroup("g".into())));
        // c1 is told to rejoin, and rejoins and syncs with the classic calls: half of t is its.
        // It reports owning nothing (an eager consumer gives everything up before it rejoins),
        // so nothing is left to revoke and it is at epoch 2 at once.
        assert_eq!(c.heartbeat(&log, "g", 1, &c1, None), Err(GroupError::RebalanceInProgress));
        let rejoined = c.join(&log, consumer_join_req("g", &c1, &topics), rx.clone()).await;
        assert_eq!((rejoined.error.clone(), rejoined.leader.as_str(), rejoined.protocol.as_deref(), rejoined.generation), (None, "", Some("range"), 2));
        let s = c.sync(&log, "g", 2, &c1, None, Some("consumer"), Some("range"), BTreeMap::new(), rx.clone()).await;
        assert_eq!((s.error, embedded::assigned_partitions(s.assignment).len()), (None, 2));
        assert_eq!(c.heartbeat(&log, "g", 2, &c1, None), Ok(()));

        // A fresh coordinator reading the log sees the same consumer group, c1 a classic member.
        let reloaded = GroupCoordinator::new(config());
        reloaded.load(&log).unwrap();
        let d = reloaded.consumer_describe(&log, "g").unwrap();
        assert_eq!((d.group_epoch, d.members.len()), (2, 2));
        assert_eq!(reloaded.heartbeat(&log, "g", 2, &c1, None), Ok(()));

        // The consumer-protocol member leaves: a classic group of c1 again, rebalancing.
        let left = c.consumer_heartbeat(&log, "g", HeartbeatInput { member_epoch: LEAVE_EPOCH, ..join("m2") }, &topics).unwrap();
        assert_eq!(left.output.member_epoch, LEAVE_EPOCH);
        assert_eq!(c.consumer_describe(&log, "g").err(), Some(GroupError::NotConsumerGroup("g".into())));
        let d = c.describe(&log, "g").unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::PreparingRebalance, 1));
        assert_eq!(c.heartbeat(&log, "g", rejoined.generation, &c1, None), Err(GroupError::RebalanceInProgress));
        let back = c.join(&log, consumer_join_req("g", &c1, &topics), rx.clone()).await;
        assert_eq!((back.error, back.leader.as_str()), (None, c1.as_str()));
        let reloaded = GroupCoordinator::new(config());
        reloaded.load(&log).unwrap();
        assert_eq!(reloaded.consumer_describe(&log, "g").err(), Some(GroupError::NotConsumerGroup("g".into())));
        assert_eq!(reloaded.describe(&log, "g").unwrap().unwrap().members.len(), 1);
    }

    #[tokio::test]
    async fn a_classic_static_member_replacing_the_last_consumer_member_makes_the_group_classic_without_a_rebalance() {
        use super::super::consumer::{HeartbeatInput, TopicsView};
        use crate::protocol::consumer as embedded;
        use std::sync::atomic::Ordering::SeqCst;
        let log = FlakyLog::default();
        let c = GroupCoordinator::new(config());
        let (_tx, rx) = watch::channel(false);
        let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
        // A consumer group: m1 static ("i1") with the consumer protocol, c1 a classic member.
        let static_hb = |member_epoch| HeartbeatInput { member_epoch, instance_id: Some("i1".into()), ..consumer_join_hb("m1") };
        c.consumer_heartbeat(&log, "g", static_hb(0), &topics).unwrap();
        let first = c.join_start(&log, consumer_join_req("g", "", &topics)).unwrap();
        let c1 = c.join_start(&log, consumer_join_req("g", &first.member_id, &topics)).unwrap();
        let epoch = c.consumer_describe(&log, "g").unwrap().group_epoch;
        assert_eq!((c1.error, c1.generation, epoch), (None, 2, 2));
        c.consumer_heartbeat(&log, "g", static_hb(1), &topics).unwrap();
        let m1_target = c.consumer_describe(&log, "g").unwrap().members.iter().find(|m| m.member_id == "m1").map(|m| m.target_assignment.clone()).unwrap();
        // The same instance comes back as a classic consumer under a new member id.
        let replacing = || JoinRequest { instance_id: Some("i1".into()), ..consumer_join_req("g", "", &topics) };

        // The conversion cannot be written: the join is refused and the consumer group stays.
        log.fail.store(true, SeqCst);
        assert!(matches!(c.join_start(&log, replacing()).unwrap().error, Some(GroupError::Log(_))));
        log.fail.store(false, SeqCst);
        let d = c.consumer_describe(&log, "g").unwrap();
        assert!(d.members.iter().any(|m| m.member_id == "m1"));

        // It is written: a stable classic group at the consumer group's epoch, no rebalance.
        let joined = c.join_start(&log, replacing()).unwrap();
        assert_eq!((joined.error.clone(), joined.generation, joined.leader.as_str(), joined.members.len()), (None, 2, "", 0));
        assert_eq!(c.consumer_describe(&log, "g").err(), Some(GroupError::NotConsumerGroup("g".into())));
        let d = c.describe(&log, "g").unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::Stable, 2));
        // Its SyncGroup hands it m1's partitions; both members heartbeat at the generation.
        let s = c.sync(&log, "g", 2, &joined.member_id, Some("i1"), Some("consumer"), Some("range"), BTreeMap::new(), rx.clone()).await;
        assert_eq!(s.error, None);
        assert_eq!(embedded::assigned_partitions(s.assignment).len(), m1_target.values().map(|p| p.len()).sum::<usize>());
        assert_eq!(c.heartbeat(&log, "g", 2, &joined.member_id, Some("i1")), Ok(()));
        assert_eq!(c.heartbeat(&log, "g", 2, &c1.member_id, None), Ok(()));
        // The replaced member id is gone; a fresh coordinator reads the same classic group.
        assert_eq!(c.heartbeat(&log, "g", 2, "m1", Some("i1")), Err(GroupError::FencedInstanceId));
        let reloaded = GroupCoordinator::new(config());
        reloaded.load(&log).unwrap();
        assert_eq!(reloaded.consumer_describe(&log, "g").err(), Some(GroupError::NotConsumerGroup("g".into())));
        let d = reloaded.describe(&log, "g").unwrap().unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::Stable, 2));
        assert_eq!(reloaded.heartbeat(&log, "g", 2, &joined.member_id, Some("i1")), Ok(()));
    }

    #[test]
    fn a_classic_join_to_a_consumer_group_follows_kafkas_checks() {
        use super::super::consumer::TopicsView;
        let log = MemLog::default();
        let c = GroupCoordinator::new(GroupConfig { migration_policy: super::super::MigrationPolicy::Disabled, ..config() });
        let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
        let hb = consumer_join_hb("m1");
        c.consumer_heartbeat(&log, "g", hb, &topics).unwrap();
        // Classic members join a consumer group whatever the policy (it governs conversions).
        let first = c.join_start(&log, consumer_join_req("g", "", &topics)).unwrap();
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        let joined = c.join_start(&log, consumer_join_req("g", &first.member_id, &topics)).unwrap();
        assert_eq!((joined.error, joined.generation, joined.members.len()), (None, 2, 0));
        // Another protocol type, or a subscription that is not the consumer protocol's.
        let other = JoinRequest { protocol_type: "connect".into(), ..consumer_join_req("g", "", &topics) };
        assert_eq!(c.join_start(&log, other).unwrap().error, Some(GroupError::InconsistentGroupProtocol));
        let garbage = JoinRequest { protocols: vec![("range".into(), Bytes::from_static(b"\x00"))], ..consumer_join_req("g", "x", &topics) };
        assert_eq!(c.join_start(&log, garbage).unwrap().error, Some(GroupError::InconsistentGroupProtocol));
        // With upgrades disabled, a consumer-protocol member cannot join a classic group.
        let cl = c.join_start(&log, consumer_join_req("h", "", &topics)).unwrap();
        let _ = c.join_start(&log, consumer_join_req("h", &cl.member_id, &topics));
        let hb = consumer_join_hb("m9");
        assert_eq!(c.consumer_heartbeat(&log, "h", hb, &topics).err(), Some(GroupError::NotConsumerGroup("h".into())));
    }

    #[test]
    fn transactional_commits_to_a_consumer_group_check_the_member_epoch_or_the_classic_generation() {
        use super::super::consumer::TopicsView;
        let log = MemLog::default();
        let c = GroupCoordinator::new(config());
        let topics: TopicsView = BTreeMap::from([("t".to_string(), (uuid::Uuid::new_v4(), 4))]);
        let hb = consumer_join_hb("m1");
        let epoch = c.consumer_heartbeat(&log, "g", hb, &topics).unwrap().output.member_epoch;
        let first = c.join_start(&log, consumer_join_req("g", "", &topics)).unwrap();
        let classic = c.join_start(&log, consumer_join_req("g", &first.member_id, &topics)).unwrap();
        let commit = |member: &str, generation: i32| c.txn_commit(&log, "g", (7, 0), generation, member, None, commit_one(5));
        assert_eq!(commit("m1", epoch).map(|r| r.len()), Ok(1));
        assert_eq!(commit("m1", epoch + 5).err(), Some(GroupError::IllegalGeneration));
        assert_eq!(commit(&classic.member_id, classic.generation).map(|r| r.len()), Ok(1));
        assert_eq!(commit(&classic.member_id, classic.generation + 1).err(), Some(GroupError::IllegalGeneration));
        assert_eq!(commit("nobody", 1).err(), Some(GroupError::UnknownMemberId));
    }
}
