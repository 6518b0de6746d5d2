//! The KIP-848 consumer group as pure data: members with their epochs and subscriptions, the group
//! epoch, the target assignment and its epoch, and each member's reconciliation toward its target
//! (revoke first; a partition goes to its new owner only once the old owner no longer holds it).
//! No tokio, no clocks, no I/O: time comes in as `now_ms`, topics as a `TopicsView`.

use std::collections::{BTreeMap, BTreeSet};

use regex_automata::meta::Regex;
use uuid::Uuid;

use bytes::Bytes;

use super::assignor::{self, Assignment, AssignorMember};
use super::consumer_codec::{self as codec, StoredClassicMember, StoredConsumerMember, StoredMemberAssignment, StoredTopic, TopicPartitions};
use super::offsets::GroupKey;
use super::state::{Group, Member};
use crate::protocol::consumer::{self as embedded, PROTOCOL_TYPE};

/// Existing topics as the coordinator sees them: name -> (topic id, partition count).
pub type TopicsView = BTreeMap<String, (Uuid, i32)>;

/// Member epoch of a member leaving for good, and of a static member leaving for a while.
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where a member is on the way to its target assignment (Kafka's MemberState).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// It owns its target (of its epoch).
    Stable,
    /// It must give partitions up before it advances; its epoch stays where it was.
    UnrevokedPartitions,
    /// It is at the target epoch but waits for partitions others still hold.
    UnreleasedPartitions,
}

/// The group states ConsumerGroupDescribe and ListGroups report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Why a heartbeat is refused, in the protocol's terms; the coordinator maps it to a GroupError.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeartbeatError {
    UnknownMemberId,
    FencedMemberEpoch,
    UnreleasedInstanceId,
    GroupMaxSizeReached,
    InvalidRegularExpression(String),
    /// The classic calls of a classic member inside the group (JoinGroup, SyncGroup, Heartbeat,
    /// LeaveGroup), in Kafka's terms.
    FencedInstanceId,
    IllegalGeneration,
    RebalanceInProgress,
    InconsistentGroupProtocol(String),
}

/// A member that speaks the classic protocol inside a consumer group (KIP-848's online
/// migration): it joins, syncs and heartbeats with the classic calls, and the coordinator computes
/// its assignment as for every other member. Revocation works by rejoining: a heartbeat answers
/// REBALANCE_IN_PROGRESS, the member gives its partitions up as its protocol does, and its next
/// JoinGroup reports what it still owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// (protocol name, metadata) from its last JoinGroup, in its order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// It was told to rejoin and is fenced unless it does by then (its rebalance timeout).
    pub join_deadline_ms: Option<u64>,
    /// It joined and is fenced unless it syncs by then (its rebalance timeout).
    pub sync_deadline_ms: Option<u64>,
}

impl ClassicMember {
    /// The protocol its JoinGroup answer named: its first.
    pub fn protocol_name(&self) -> &str {
        self.protocols.first().map(|(n, _)| n.as_str()).unwrap_or("")
    }

    /// The subscription version its assignment is answered at.
    pub fn subscription_version(&self) -> i16 {
        self.protocols.first().filter(|(_, m)| m.len() >= 2).map(|(_, m)| i16::from_be_bytes([m[0], m[1]])).unwrap_or(0)
    }
}

/// A classic JoinGroup to a consumer group, its subscription already decoded.
#[derive(Clone, Debug, Default)]
pub struct ClassicJoinInput {
    /// Never empty: the coordinator made one for a member that came without.
    pub member_id: String,
    /// The request came without a member id (a static member may then replace its old self).
    pub new_member: bool,
    pub instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub subscription: embedded::Subscription,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Clone, Debug)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    regex: Option<Regex>,
    /// A regex set by the member's latest heartbeat is resolved after it (Kafka resolves regexes
    /// off the heartbeat path): literal topics are assigned first, the matches at a later epoch.
    regex_pending: bool,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// What it owns now (at `member_epoch`).
    pub assigned: Assignment,
    /// What it must give up before it may advance.
    pub pending_revocation: Assignment,
    /// Last heartbeat, on the coordinator's monotonic clock.
    pub last_seen_ms: u64,
    /// When it started revoking (the rebalance timeout runs from there).
    pub revoking_since_ms: Option<u64>,
    /// A static member that left with epoch -2: it keeps its place until its session ends.
    pub left_temporarily: bool,
    /// Set for a member that speaks the classic protocol.
    pub classic: Option<ClassicMember>,
}

impl ConsumerMember {
    /// The epoch it is stored and described at: -2 while a static member is away after a leave
    /// with that epoch (its own epoch is kept for its return).
    pub fn shown_epoch(&self) -> i32 {
        if self.left_temporarily { STATIC_LEAVE_EPOCH } else { self.member_epoch }
    }

    fn new(id: String, now_ms: u64) -> ConsumerMember {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 300_000,
            subscribed_topic_names: vec![],
            subscribed_topic_regex: None,
            regex: None,
            regex_pending: false,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            last_seen_ms: now_ms,
            revoking_since_ms: None,
            left_temporarily: false,
            classic: None,
        }
    }

    /// Existing topics this member subscribes to: its names plus its regex's matches.
    pub fn subscribed_topics(&self, topics: &TopicsView) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.subscribed_topic_names.iter().filter(|t| topics.contains_key(*t)).cloned().collect();
        if let Some(re) = self.regex.as_ref().filter(|_| !self.regex_pending) {
            out.extend(topics.keys().filter(|t| !t.starts_with("__") && re.is_match(t.as_str())).cloned());
        }
        out
    }
}

/// Compiles a subscription regex as Kafka matches it: against the whole topic name.
pub fn compile_regex(pattern: &str) -> Result<Regex, HeartbeatError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| HeartbeatError::InvalidRegularExpression(e.to_string()))
}

/// What one heartbeat asks for (null fields: unchanged since the last one).
#[derive(Clone, Debug, Default)]
pub struct HeartbeatInput {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member reports owning, by topic name (ids already resolved).
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// What the heartbeat answers: the member's id and epoch, and its assignment when it must be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatOutput {
    pub member_id: String,
    pub member_epoch: i32,
    pub assignment: Option<Assignment>,
}

#[derive(Clone, Debug)]
pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of the subscribed topics the target was computed from; a difference means
    /// topics were created, deleted or grew.
    pub subscribed_metadata: BTreeMap<String, (Uuid, i32)>,
    /// The last topics seen, for recomputations the timer makes (expired members).
    pub topics: TopicsView,
    /// The assignor the last target used.
    pub assignor: String,
}

impl ConsumerGroup {
    pub fn new(id: impl Into<String>) -> ConsumerGroup {
        ConsumerGroup {
            id: id.into(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed_metadata: BTreeMap::new(),
            topics: TopicsView::new(),
            assignor: assignor::UNIFORM.to_string(),
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    pub fn member_by_instance(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// The static member holding `instance_id`, which a heartbeat or leave from `member_id`
    /// names: unknown, or held by another member id (which fences this one).
    fn static_member(&self, instance_id: &str, member_id: &str) -> Result<&ConsumerMember, HeartbeatError> {
        let holder = self.member_by_instance(instance_id).ok_or(HeartbeatError::UnknownMemberId)?;
        if holder.id != member_id {
            return Err(HeartbeatError::FencedInstanceId);
        }
        Ok(holder)
    }

    /// Every subscribed topic that exists, with its id and partition count.
    fn compute_subscribed_metadata(&self) -> BTreeMap<String, (Uuid, i32)> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for t in m.subscribed_topics(&self.topics) {
                if let Some(v) = self.topics.get(&t) {
                    out.insert(t, *v);
                }
            }
        }
        out
    }

    /// Brings the target assignment up to the group epoch, bumping the epoch first when the
    /// subscribed topics changed under the group.
    fn refresh_target(&mut self, default_assignor: &str) {
        let metadata = self.compute_subscribed_metadata();
        if metadata != self.subscribed_metadata {
            self.subscribed_metadata = metadata;
            // One new epoch covers every change since the last target.
            if self.group_epoch <= self.assignment_epoch {
                self.group_epoch += 1;
            }
        }
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        // The assignor most members ask for, else the broker's default.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let chosen = votes.iter().max_by_key(|(_, n)| **n).map(|(a, _)| a.to_string()).unwrap_or_else(|| default_assignor.to_string());
        let input: BTreeMap<String, AssignorMember> = self
            .members
            .iter()
            .map(|(id, m)| {
                let a = AssignorMember { topics: m.subscribed_topics(&self.topics), current: self.target.get(id).cloned().unwrap_or_default() };
                (id.clone(), a)
            })
            .collect();
        let partitions = self.subscribed_metadata.iter().map(|(t, (_, n))| (t.clone(), *n)).collect();
        self.target = assignor::assign(&chosen, &input, &partitions);
        self.assignor = chosen;
        self.assignment_epoch = self.group_epoch;
    }

    /// A static member back under a new member id: it takes its old self's place, with its
    /// epoch, assignment and target.
    fn replace_static(&mut self, old: ConsumerMember, new_id: &str) {
        self.members.remove(&old.id);
        if let Some(t) = self.target.remove(&old.id) {
            self.target.insert(new_id.to_string(), t);
        }
        let mut m = old;
        m.id = new_id.to_string();
        m.left_temporarily = false;
        self.members.insert(new_id.to_string(), m);
    }

    /// Whether a member other than `except` holds (or is still revoking) the partition.
    fn held_by_other(&self, except: &str, topic: &str, p: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != except
                && (m.assigned.get(topic).is_some_and(|s| s.contains(&p)) || m.pending_revocation.get(topic).is_some_and(|s| s.contains(&p)))
        })
    }

    /// Moves one member toward its target (Kafka's CurrentAssignmentBuilder, in short). `owned`:
    /// the partitions the member reports owning; one that reports nothing may own everything.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now_ms: u64) {
        let target_epoch = self.assignment_epoch;
        let target = self.target.get(id).cloned().unwrap_or_default();
        let owns_any = |ps: &Assignment| owned.is_none_or(|o| ps.iter().any(|(t, ps)| o.get(t).is_some_and(|s| !s.is_disjoint(ps))));
        let Some(m) = self.members.get(id) else { return };
        // The epoch it stays at if it must revoke partitions first.
        let mut epoch = m.member_epoch;
        if m.state == MemberState::UnrevokedPartitions {
            // It advances only once it reports owning none of the revoked partitions, and then
            // one epoch at a time while it has more to give up.
            if owns_any(&m.pending_revocation) {
                return;
            }
            epoch = m.member_epoch + 1;
            let m = self.members.get_mut(id).expect("member exists");
            m.pending_revocation.clear();
            m.revoking_since_ms = None;
            m.state = MemberState::Stable;
        } else if m.member_epoch == target_epoch && m.state == MemberState::Stable {
            return;
        }
        let m = &self.members[id];
        let current = m.assigned.clone();
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (t, ps) in &current {
            for &p in ps {
                if target.get(t).is_some_and(|s| s.contains(&p)) {
                    keep.entry(t.clone()).or_default().insert(p);
                } else {
                    revoke.entry(t.clone()).or_default().insert(p);
                }
            }
        }
        // Partitions it reports no longer owning need no revocation round.
        if !revoke.is_empty() && owns_any(&revoke) {
            let m = self.members.get_mut(id).expect("member exists");
            if m.member_epoch != epoch {
                m.previous_member_epoch = m.member_epoch;
                m.member_epoch = epoch;
            }
            m.assigned = keep;
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            // A classic member revokes by rejoining; its join deadline bounds that instead.
            m.revoking_since_ms = m.classic.is_none().then_some(now_ms);
            return;
        }
        let mut unreleased = false;
        let mut next = keep;
        for (t, ps) in &target {
            for &p in ps {
                if next.get(t).is_some_and(|s| s.contains(&p)) {
                    continue;
                }
                if self.held_by_other(id, t, p) {
                    unreleased = true;
                } else {
                    next.entry(t.clone()).or_default().insert(p);
                }
            }
        }
        let m = self.members.get_mut(id).expect("member exists");
        if m.member_epoch != target_epoch {
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = target_epoch;
        }
        m.assigned = next;
        m.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
    }

    /// One ConsumerGroupHeartbeat from a member with epoch >= 0 (joins and heartbeats); leaves go
    /// to `leave`. `max_size`: group.consumer.max.size.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatInput,
        topics: &TopicsView,
        default_assignor: &str,
        max_size: usize,
        now_ms: u64,
    ) -> Result<HeartbeatOutput, HeartbeatError> {
        self.topics = topics.clone();
        // Regexes set by earlier heartbeats are resolved now.
        for m in self.members.values_mut() {
            m.regex_pending = false;
        }
        let mut id = req.member_id.clone();
        let joining = req.member_epoch == 0;
        let full_request = req.rebalance_timeout_ms != -1 && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some()) && req.owned.is_some();
        let regex = match &req.subscribed_topic_regex {
            Some(r) if !r.is_empty() => Some(compile_regex(r)?),
            _ => None,
        };
        let mut assignment_changed = false;
        if joining {
            if let Some(iid) = &req.instance_id {
                if let Some(old) = self.member_by_instance(iid).cloned() {
                    // A classic member's instance is taken over without a leave first.
                    if !old.left_temporarily && old.id != id && old.classic.is_none() {
                        return Err(HeartbeatError::UnreleasedInstanceId);
                    }
                    // The static member comes back under a new id and takes its place as it was.
                    self.replace_static(old, &id);
                    assignment_changed = true;
                }
            }
            if !self.members.contains_key(&id) {
                if self.members.len() >= max_size {
                    return Err(HeartbeatError::GroupMaxSizeReached);
                }
                // Its subscription (new, so changed) bumps the group epoch below.
                self.members.insert(id.clone(), ConsumerMember::new(id.clone(), now_ms));
            } else if req.instance_id.is_none() || !assignment_changed {
                // A member rejoining with epoch 0 has dropped what it owned.
                let m = self.members.get_mut(&id).expect("member exists");
                if m.member_epoch != 0 || !m.assigned.is_empty() {
                    m.assigned.clear();
                    m.pending_revocation.clear();
                    m.state = MemberState::Stable;
                    m.previous_member_epoch = m.member_epoch;
                    m.member_epoch = 0;
                }
            }
        } else {
            if let Some(iid) = &req.instance_id {
                self.static_member(iid, &id)?;
            }
            let m = self.members.get(&id).ok_or(HeartbeatError::UnknownMemberId)?;
            // A static member that left for a while is at epoch -2 until it rejoins with 0.
            if m.left_temporarily {
                return Err(HeartbeatError::FencedMemberEpoch);
            }
            if req.member_epoch > m.member_epoch {
                return Err(HeartbeatError::FencedMemberEpoch);
            }
            if req.member_epoch < m.member_epoch {
                // An answer got lost: the previous epoch is fine if it owns nothing it should not.
                let subset = req.owned.as_ref().is_none_or(|o| o.iter().all(|(t, ps)| ps.is_empty() || m.assigned.get(t).is_some_and(|s| ps.is_subset(s))));
                if req.member_epoch != m.previous_member_epoch || !subset {
                    return Err(HeartbeatError::FencedMemberEpoch);
                }
            }
        }
        id = self.members.get(&id).map(|m| m.id.clone()).unwrap_or(id);
        let m = self.members.get_mut(&id).expect("member exists");
        m.last_seen_ms = now_ms;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        if req.instance_id.is_some() {
            m.instance_id = req.instance_id;
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id;
        }
        if req.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(a) = req.server_assignor {
            m.server_assignor = Some(a);
        }
        let mut subscription_changed = false;
        if let Some(names) = req.subscribed_topic_names {
            let mut names = names;
            names.sort();
            names.dedup();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                subscription_changed = true;
            }
        }
        if let Some(r) = req.subscribed_topic_regex {
            let r = if r.is_empty() { None } else { Some(r) };
            if r != m.subscribed_topic_regex {
                m.regex_pending = r.is_some();
                m.subscribed_topic_regex = r;
                m.regex = regex;
                subscription_changed = true;
            }
        }
        if subscription_changed {
            self.group_epoch += 1;
        }
        self.refresh_target(default_assignor);
        let before = self.members[&id].assigned.clone();
        self.reconcile(&id, req.owned.as_ref(), now_ms);
        let m = &self.members[&id];
        // A new epoch alone is told by the epoch; the partitions are sent when they change.
        assignment_changed |= before != m.assigned;
        let send = joining || full_request || assignment_changed;
        Ok(HeartbeatOutput { member_id: id, member_epoch: m.member_epoch, assignment: send.then(|| m.assigned.clone()) })
    }

    /// A member leaves: for good (epoch -1), or a static member for a while (epoch -2, it keeps
    /// its partitions until its session ends or it comes back).
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, epoch: i32, default_assignor: &str) -> Result<HeartbeatOutput, HeartbeatError> {
        let id = match instance_id {
            Some(iid) => self.static_member(iid, member_id)?.id.clone(),
            None if self.members.contains_key(member_id) => member_id.to_string(),
            None => return Err(HeartbeatError::UnknownMemberId),
        };
        if epoch == STATIC_LEAVE_EPOCH && self.members[&id].instance_id.is_some() {
            if let Some(m) = self.members.get_mut(&id) {
                m.left_temporarily = true;
            }
        } else {
            self.remove_member(&id, default_assignor);
        }
        Ok(HeartbeatOutput { member_id: member_id.to_string(), member_epoch: epoch, assignment: None })
    }

    /// Removes a member (left, session expired, fenced) and recomputes the target for the others.
    pub fn remove_member(&mut self, id: &str, default_assignor: &str) {
        if self.members.remove(id).is_none() {
            return;
        }
        self.target.remove(id);
        self.group_epoch += 1;
        self.refresh_target(default_assignor);
    }

    /// Members whose session ended, that kept revoked partitions past their rebalance timeout, or
    /// (classic members) that did not rejoin or sync in time. A classic member's session is its
    /// own (JoinGroup's), the others' `session_timeout_ms`.
    pub fn expired_members(&self, now_ms: u64, session_timeout_ms: u64) -> Vec<String> {
        self.members
            .values()
            .filter(|m| match &m.classic {
                Some(c) => {
                    now_ms >= m.last_seen_ms + c.session_timeout_ms.max(0) as u64
                        || c.join_deadline_ms.is_some_and(|d| now_ms >= d)
                        || c.sync_deadline_ms.is_some_and(|d| now_ms >= d)
                }
                None => {
                    now_ms >= m.last_seen_ms + session_timeout_ms
                        || m.revoking_since_ms.is_some_and(|since| now_ms >= since + m.rebalance_timeout_ms.max(0) as u64)
                }
            })
            .map(|m| m.id.clone())
            .collect()
    }

    /// Checks an OffsetCommit's member id and epoch (-1: a commit from outside the group, only
    /// while it is empty).
    pub fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), CommitCheck> {
        if epoch < 0 && (member_id.is_empty() || self.members.is_empty()) {
            return if self.members.is_empty() { Ok(()) } else { Err(CommitCheck::UnknownMemberId) };
        }
        let m = self.members.get(member_id).ok_or(CommitCheck::UnknownMemberId)?;
        if epoch != m.member_epoch {
            // A classic member sends its generation, which is its member epoch.
            return Err(if m.classic.is_some() { CommitCheck::IllegalGeneration } else { CommitCheck::StaleMemberEpoch });
        }
        Ok(())
    }

    /// Whether a classic member of this protocol type and protocols may join (Kafka's
    /// supportsClassicProtocols): the consumer protocol type, and, once the group has members,
    /// a protocol every classic member in it supports.
    pub fn supports_classic(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type != PROTOCOL_TYPE {
            return false;
        }
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        protocols.iter().any(|(name, _)| self.members.values().filter_map(|m| m.classic.as_ref()).all(|c| c.protocols.iter().any(|(n, _)| n == name)))
    }

    /// Whether `leaving` speaks the consumer protocol and every other member the classic one
    /// (Kafka's allMembersUseClassicProtocolExcept).
    pub fn all_classic_except(&self, leaving: &str) -> bool {
        self.members.get(leaving).is_some_and(|m| m.classic.is_none()) && self.members.values().filter(|m| m.id != leaving).all(|m| m.classic.is_some())
    }

    /// A classic JoinGroup (Kafka's classicGroupJoinToConsumerGroup): the member is created or
    /// updated from its subscription, the target assignment follows the group epoch, and the
    /// member is reconciled toward it with the partitions it reports owning. Its answer's
    /// generation is its member epoch; it must sync within its rebalance timeout.
    pub fn classic_join(&mut self, req: ClassicJoinInput, topics: &TopicsView, default_assignor: &str, max_size: usize, now_ms: u64) -> Result<HeartbeatOutput, HeartbeatError> {
        self.topics = topics.clone();
        for m in self.members.values_mut() {
            m.regex_pending = false;
        }
        let id = req.member_id.clone();
        let mut replaced = false;
        if let Some(iid) = &req.instance_id {
            match self.member_by_instance(iid).cloned() {
                Some(old) if old.id != id => {
                    if !req.new_member {
                        return Err(HeartbeatError::FencedInstanceId);
                    }
                    // A static member back under a new id takes its old self's place.
                    self.replace_static(old, &id);
                    replaced = true;
                }
                Some(_) => {}
                None if !req.new_member && !self.members.contains_key(&id) => return Err(HeartbeatError::UnknownMemberId),
                None => {}
            }
        }
        if !self.members.contains_key(&id) {
            if self.members.len() >= max_size {
                return Err(HeartbeatError::GroupMaxSizeReached);
            }
            self.members.insert(id.clone(), ConsumerMember::new(id.clone(), now_ms));
        }
        let mut topics_named = req.subscription.topics.clone();
        topics_named.sort();
        topics_named.dedup();
        let m = self.members.get_mut(&id).expect("member exists");
        let subscription_changed = m.subscribed_topic_names != topics_named || m.subscribed_topic_regex.is_some() || m.classic.is_none() && !replaced;
        m.subscribed_topic_names = topics_named;
        m.subscribed_topic_regex = None;
        m.regex = None;
        m.server_assignor = None;
        m.instance_id = req.instance_id;
        if req.subscription.rack_id.is_some() {
            m.rack_id = req.subscription.rack_id.clone();
        }
        if req.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.last_seen_ms = now_ms;
        m.left_temporarily = false;
        m.classic = Some(ClassicMember {
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            join_deadline_ms: None,
            sync_deadline_ms: Some(now_ms + m.rebalance_timeout_ms.max(0) as u64),
        });
        if subscription_changed {
            self.group_epoch += 1;
        }
        self.refresh_target(default_assignor);
        self.reconcile(&id, Some(&req.subscription.owned), now_ms);
        let m = &self.members[&id];
        Ok(HeartbeatOutput { member_id: id, member_epoch: m.member_epoch, assignment: Some(m.assigned.clone()) })
    }

    /// The member a classic call names: by instance id for a static member (another member id is
    /// fenced), else by member id; it must speak the classic protocol.
    fn classic_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<&ConsumerMember, HeartbeatError> {
        let m = match instance_id {
            Some(iid) => {
                let m = self.member_by_instance(iid).ok_or(HeartbeatError::UnknownMemberId)?;
                if !member_id.is_empty() && m.id != member_id {
                    return Err(HeartbeatError::FencedInstanceId);
                }
                m
            }
            None => self.members.get(member_id).ok_or(HeartbeatError::UnknownMemberId)?,
        };
        if m.classic.is_none() {
            return Err(HeartbeatError::UnknownMemberId);
        }
        Ok(m)
    }

    /// Whether a member waits for partitions of its target that others still hold.
    fn waiting_on_unreleased(&self, id: &str) -> bool {
        let Some(m) = self.members.get(id) else { return false };
        m.state == MemberState::UnreleasedPartitions
            && self.target.get(id).is_some_and(|t| t.iter().any(|(topic, ps)| ps.iter().any(|&p| !m.assigned.get(topic).is_some_and(|s| s.contains(&p)) && self.held_by_other(id, topic, p))))
    }

    /// Whether a classic member must rejoin: the group moved to a newer epoch, it has partitions
    /// to give up, or partitions it waited for are free now. Its join deadline starts then.
    fn classic_must_rejoin(&mut self, id: &str, now_ms: u64) -> bool {
        let m = &self.members[id];
        let rejoin = m.member_epoch < self.group_epoch || m.state == MemberState::UnrevokedPartitions || (m.state == MemberState::UnreleasedPartitions && !self.waiting_on_unreleased(id));
        if rejoin {
            let m = self.members.get_mut(id).expect("member exists");
            let timeout = m.rebalance_timeout_ms.max(0) as u64;
            if let Some(c) = m.classic.as_mut() {
                c.join_deadline_ms.get_or_insert(now_ms + timeout);
            }
        }
        rejoin
    }

    /// A classic SyncGroup (Kafka's classicGroupSyncToConsumerGroup): the member gets its current
    /// assignment, at its subscription's version, unless a newer epoch asks it to rejoin first.
    /// Returns the assignment and the protocol name.
    pub fn classic_sync(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, protocol_type: Option<&str>, protocol: Option<&str>, now_ms: u64) -> Result<(Bytes, String), HeartbeatError> {
        let m = self.classic_member(member_id, instance_id)?;
        let id = m.id.clone();
        let c = m.classic.as_ref().expect("classic member");
        if generation != m.member_epoch {
            return Err(HeartbeatError::IllegalGeneration);
        }
        let name = c.protocol_name().to_string();
        if protocol_type.is_some_and(|t| t != PROTOCOL_TYPE) {
            return Err(HeartbeatError::InconsistentGroupProtocol(format!("The protocol type {} from member {id} request is not equal to the group protocol type {PROTOCOL_TYPE}.", protocol_type.unwrap_or(""))));
        }
        if protocol.is_some_and(|p| p != name) {
            return Err(HeartbeatError::InconsistentGroupProtocol(format!(
                "The protocol name {} from member {id} request is not equal to the protocol name {name} returned in the join response.",
                protocol.unwrap_or("")
            )));
        }
        if self.group_epoch > m.member_epoch && m.state != MemberState::UnrevokedPartitions {
            self.classic_must_rejoin(&id, now_ms);
            return Err(HeartbeatError::RebalanceInProgress);
        }
        let m = self.members.get_mut(&id).expect("member exists");
        m.last_seen_ms = now_ms;
        let c = m.classic.as_mut().expect("classic member");
        c.sync_deadline_ms = None;
        Ok((embedded::encode_assignment(c.subscription_version(), &m.assigned), name))
    }

    /// A classic Heartbeat (Kafka's classicGroupHeartbeatToConsumerGroup): keeps the session, and
    /// answers REBALANCE_IN_PROGRESS when the member must rejoin.
    pub fn classic_heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now_ms: u64) -> Result<(), HeartbeatError> {
        let m = self.classic_member(member_id, instance_id)?;
        let id = m.id.clone();
        if generation != m.member_epoch {
            return Err(HeartbeatError::IllegalGeneration);
        }
        self.members.get_mut(&id).expect("member exists").last_seen_ms = now_ms;
        if self.classic_must_rejoin(&id, now_ms) {
            return Err(HeartbeatError::RebalanceInProgress);
        }
        Ok(())
    }

    /// A classic LeaveGroup of one member (Kafka's classicGroupLeaveToConsumerGroup; a static
    /// member may be named by instance id alone). Returns the member id that left.
    pub fn classic_leave(&mut self, member_id: &str, instance_id: Option<&str>, default_assignor: &str) -> Result<String, HeartbeatError> {
        let id = self.classic_member(member_id, instance_id)?.id.clone();
        self.remove_member(&id, default_assignor);
        Ok(id)
    }

    /// The consumer group a classic group becomes when a consumer-protocol member joins it (Kafka's
    /// ConsumerGroup.fromClassicGroup): every member stays, as a classic member at the classic
    /// generation with the partitions its last assignment gave it, which is also its target.
    /// Err when a member's subscription is not the consumer protocol's.
    pub fn from_classic(g: &Group, topics: &TopicsView, default_assignor: &str, now_ms: u64) -> Result<ConsumerGroup, String> {
        let mut out = ConsumerGroup::new(g.id.clone());
        out.group_epoch = g.generation;
        out.assignment_epoch = g.generation;
        out.topics = topics.clone();
        out.assignor = default_assignor.to_string();
        for m in g.members.values() {
            let metadata = match g.protocol.as_deref() {
                Some(p) => m.metadata(p),
                None => m.protocols.first().map(|(_, b)| b.clone()).unwrap_or_default(),
            };
            let subscription = embedded::decode_subscription(metadata).ok_or_else(|| format!("member {} does not subscribe with the consumer protocol", m.id))?;
            let mut assigned = Assignment::new();
            for (t, p) in embedded::assigned_partitions(m.assignment.clone()) {
                if topics.contains_key(&t) {
                    assigned.entry(t).or_default().insert(p);
                }
            }
            let mut c = ConsumerMember::new(m.id.clone(), now_ms);
            c.instance_id = m.instance_id.clone();
            c.rack_id = subscription.rack_id;
            c.client_id = m.client_id.clone();
            c.client_host = m.client_host.clone();
            c.rebalance_timeout_ms = m.rebalance_timeout_ms;
            let mut names = subscription.topics;
            names.sort();
            names.dedup();
            c.subscribed_topic_names = names;
            c.member_epoch = g.generation;
            c.previous_member_epoch = g.generation;
            c.assigned = assigned.clone();
            c.classic = Some(ClassicMember { session_timeout_ms: m.session_timeout_ms, protocols: m.protocols.clone(), join_deadline_ms: None, sync_deadline_ms: None });
            out.target.insert(m.id.clone(), assigned);
            out.members.insert(m.id.clone(), c);
        }
        out.subscribed_metadata = out.compute_subscribed_metadata();
        Ok(out)
    }

    /// The classic group this one becomes when its last consumer-protocol member, `leaving`,
    /// goes and every member left speaks the classic protocol (Kafka's
    /// ClassicGroup.fromConsumerGroup): at the group epoch as its generation (the members'
    /// epochs, so their commits stay valid), each member with its target assignment. When a
    /// classic static member replaced `leaving`, `joining` takes its place and its target; else
    /// the coordinator then starts a rebalance, so every member rejoins.
    pub fn to_classic(&self, leaving: &str, joining: Option<&ConsumerMember>, now_ms: u64) -> Group {
        let members = self
            .members
            .values()
            .filter(|m| m.id != leaving)
            .map(|m| (m, m.id.as_str()))
            .chain(joining.map(|m| (m, leaving)))
            .filter_map(|(m, target_of)| {
                let c = m.classic.as_ref()?;
                let mut member = Member::new(m.id.clone(), c.protocols.clone(), c.session_timeout_ms, m.rebalance_timeout_ms, now_ms);
                member.instance_id = m.instance_id.clone();
                member.client_id = m.client_id.clone();
                member.client_host = m.client_host.clone();
                member.assignment = embedded::encode_assignment(c.subscription_version(), &self.target.get(target_of).cloned().unwrap_or_default());
                Some(member)
            })
            .collect();
        let mut g = Group::restore(self.id.clone(), Some(PROTOCOL_TYPE.to_string()), self.group_epoch, None, None, members, now_ms);
        g.protocol = g.select_protocol();
        g
    }
}

/// What `__consumer_offsets` holds of one consumer group, as the loader collected it (the last
/// value of each key; tombstoned keys removed).
#[derive(Clone, Debug, Default)]
pub struct StoredConsumerGroup {
    pub group_epoch: Option<i32>,
    pub topics: Option<Vec<StoredTopic>>,
    pub assignment_epoch: Option<i32>,
    pub members: BTreeMap<String, StoredConsumerMember>,
    pub targets: BTreeMap<String, TopicPartitions>,
    pub current: BTreeMap<String, StoredMemberAssignment>,
}

impl StoredConsumerGroup {
    pub fn is_empty(&self) -> bool {
        self.group_epoch.is_none() && self.topics.is_none() && self.assignment_epoch.is_none() && self.members.is_empty() && self.targets.is_empty() && self.current.is_empty()
    }
}

impl ConsumerGroup {
    fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.topics.get(name).or_else(|| self.subscribed_metadata.get(name)).map(|(id, _)| *id)
    }

    /// An assignment by topic id; topics whose id is unknown (deleted) are left out.
    fn by_id(&self, a: &Assignment) -> TopicPartitions {
        a.iter().filter(|(_, ps)| !ps.is_empty()).filter_map(|(t, ps)| Some((self.topic_id(t)?, ps.iter().copied().collect()))).collect()
    }

    /// The group's durable state as Kafka's records (types 3-8), keyed for comparison with what
    /// was written before. Runtime-only state (timers, a regex not yet resolved) is not kept:
    /// timers restart at load, as in Kafka.
    pub fn records(&self) -> BTreeMap<GroupKey, Bytes> {
        let group = self.id.clone();
        let mut out = BTreeMap::new();
        out.insert(GroupKey::ConsumerMetadata { group: group.clone() }, codec::encode_epoch(self.group_epoch));
        let topics: Vec<StoredTopic> = self.subscribed_metadata.iter().map(|(name, (id, n))| StoredTopic { topic_id: *id, name: name.clone(), partitions: *n }).collect();
        out.insert(GroupKey::ConsumerPartitionMetadata { group: group.clone() }, codec::encode_partition_metadata(&topics));
        out.insert(GroupKey::ConsumerTargetMetadata { group: group.clone() }, codec::encode_epoch(self.assignment_epoch));
        for (id, m) in &self.members {
            let stored = StoredConsumerMember {
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.clone(),
                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: m.server_assignor.clone(),
                classic: m.classic.as_ref().map(|c| StoredClassicMember { session_timeout_ms: c.session_timeout_ms, protocols: c.protocols.clone() }),
            };
            out.insert(GroupKey::ConsumerMember { group: group.clone(), member: id.clone() }, codec::encode_member(&stored));
            let target = self.target.get(id).map(|a| self.by_id(a)).unwrap_or_default();
            out.insert(GroupKey::ConsumerTargetMember { group: group.clone(), member: id.clone() }, codec::encode_target_member(&target));
            let current = StoredMemberAssignment {
                member_epoch: m.shown_epoch(),
                previous_member_epoch: m.previous_member_epoch,
                state: match m.state {
                    MemberState::Stable => codec::MEMBER_STATE_STABLE,
                    MemberState::UnrevokedPartitions => codec::MEMBER_STATE_UNREVOKED,
                    MemberState::UnreleasedPartitions => codec::MEMBER_STATE_UNRELEASED,
                },
                assigned: self.by_id(&m.assigned),
                pending_revocation: self.by_id(&m.pending_revocation),
            };
            out.insert(GroupKey::ConsumerCurrentAssignment { group: group.clone(), member: id.clone() }, codec::encode_member_assignment(&current));
        }
        out
    }

    /// The group as its records describe it, after a restart: members keep their ids, epochs,
    /// subscriptions and assignments; every session (and a revocation under way) starts again at
    /// `now_ms`. Partitions of topics the records cannot name are dropped; returns how many.
    pub fn restore(id: &str, stored: StoredConsumerGroup, now_ms: u64) -> (ConsumerGroup, usize) {
        let mut g = ConsumerGroup::new(id);
        g.group_epoch = stored.group_epoch.unwrap_or(0);
        g.assignment_epoch = stored.assignment_epoch.unwrap_or(0);
        let topics = stored.topics.unwrap_or_default();
        let names: BTreeMap<Uuid, String> = topics.iter().map(|t| (t.topic_id, t.name.clone())).collect();
        g.subscribed_metadata = topics.iter().map(|t| (t.name.clone(), (t.topic_id, t.partitions))).collect();
        g.topics = g.subscribed_metadata.clone();
        let mut dropped = 0;
        let mut by_name = |tps: &TopicPartitions| -> Assignment {
            let mut out = Assignment::new();
            for (tid, ps) in tps {
                match names.get(tid) {
                    Some(name) => out.entry(name.clone()).or_default().extend(ps.iter().copied()),
                    None => dropped += ps.len(),
                }
            }
            out
        };
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for (member_id, meta) in stored.members {
            let mut m = ConsumerMember::new(member_id.clone(), now_ms);
            m.instance_id = meta.instance_id;
            m.rack_id = meta.rack_id;
            m.client_id = meta.client_id;
            m.client_host = meta.client_host;
            m.subscribed_topic_names = meta.subscribed_topic_names;
            m.regex = meta.subscribed_topic_regex.as_deref().and_then(|r| compile_regex(r).ok());
            m.subscribed_topic_regex = meta.subscribed_topic_regex;
            if meta.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = meta.rebalance_timeout_ms;
            }
            if let Some(a) = &meta.server_assignor {
                *votes.entry(a.clone()).or_default() += 1;
            }
            m.server_assignor = meta.server_assignor;
            // Deadlines are runtime state: a classic member's session restarts at load.
            m.classic = meta.classic.map(|c| ClassicMember { session_timeout_ms: c.session_timeout_ms, protocols: c.protocols, join_deadline_ms: None, sync_deadline_ms: None });
            if let Some(c) = stored.current.get(&member_id) {
                m.left_temporarily = c.member_epoch == STATIC_LEAVE_EPOCH;
                m.member_epoch = if m.left_temporarily { c.previous_member_epoch.max(0) } else { c.member_epoch };
                m.previous_member_epoch = c.previous_member_epoch;
                m.state = match c.state {
                    codec::MEMBER_STATE_UNREVOKED => MemberState::UnrevokedPartitions,
                    codec::MEMBER_STATE_UNRELEASED => MemberState::UnreleasedPartitions,
                    _ => MemberState::Stable,
                };
                m.assigned = by_name(&c.assigned);
                m.pending_revocation = by_name(&c.pending_revocation);
                if m.state == MemberState::UnrevokedPartitions && m.classic.is_none() {
                    m.revoking_since_ms = Some(now_ms);
                }
            }
            if let Some(t) = stored.targets.get(&member_id) {
                g.target.insert(member_id.clone(), by_name(t));
            }
            g.members.insert(member_id, m);
        }
        if let Some((a, _)) = votes.into_iter().max_by_key(|(_, n)| *n) {
            g.assignor = a;
        }
        (g, dropped)
    }
}

/// Why a commit or fetch by a member is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitCheck {
    UnknownMemberId,
    StaleMemberEpoch,
    /// A classic member's generation is not its member epoch.
    IllegalGeneration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(list: &[(&str, i32)]) -> TopicsView {
        list.iter().map(|(t, n)| (t.to_string(), (Uuid::new_v4(), *n))).collect()
    }

    fn join(id: &str, subs: &[&str]) -> HeartbeatInput {
        HeartbeatInput {
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 60_000,
            subscribed_topic_names: Some(subs.iter().map(|s| s.to_string()).collect()),
            owned: Some(Assignment::new()),
            ..Default::default()
        }
    }

    fn beat(id: &str, epoch: i32, owned: Option<&Assignment>) -> HeartbeatInput {
        HeartbeatInput { member_id: id.into(), member_epoch: epoch, rebalance_timeout_ms: -1, owned: owned.cloned(), ..Default::default() }
    }

    fn n(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    #[test]
    fn a_first_member_gets_every_partition_at_epoch_one() {
        let t = topics(&[("t", 4)]);
        let mut g = ConsumerGroup::new("g");
        let out = g.heartbeat(join("a", &["t"]), &t, "uniform", 10, 0).unwrap();
        assert_eq!(out.member_epoch, 1);
        assert_eq!(n(out.assignment.as_ref().unwrap()), 4);
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revoked_it() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a", &["t"]), &t, "uniform", 10, 0).unwrap();
        let a_owned = a.assignment.unwrap();
        // b joins: epoch 2, but a still owns both partitions, so b waits.
        let b = g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 1).unwrap();
        assert_eq!(b.member_epoch, 2);
        assert!(b.assignment.as_ref().unwrap().is_empty(), "nothing free yet");
        assert_eq!(g.state(), ConsumerGroupState::Reconciling);
        // a heartbeats: told to revoke one partition, its epoch stays 1.
        let a2 = g.heartbeat(beat("a", 1, Some(&a_owned)), &t, "uniform", 10, 2).unwrap();
        assert_eq!(a2.member_epoch, 1);
        let kept = a2.assignment.unwrap();
        assert_eq!(n(&kept), 1);
        // While a still reports both, b gets nothing more, and a stays at epoch 1.
        assert!(g.heartbeat(beat("b", 2, Some(&Assignment::new())), &t, "uniform", 10, 3).unwrap().assignment.is_none());
        assert_eq!(g.heartbeat(beat("a", 1, Some(&a_owned)), &t, "uniform", 10, 4).unwrap().member_epoch, 1);
        // a reports the revocation done: epoch 2; then b gets the freed partition.
        let a3 = g.heartbeat(beat("a", 1, Some(&kept)), &t, "uniform", 10, 5).unwrap();
        assert_eq!(a3.member_epoch, 2);
        let b2 = g.heartbeat(beat("b", 2, Some(&Assignment::new())), &t, "uniform", 10, 6).unwrap();
        let got = b2.assignment.unwrap();
        assert_eq!(n(&got), 1);
        assert!(got["t"].is_disjoint(&kept["t"]));
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }

    #[test]
    fn epochs_are_checked() {
        let t = topics(&[("t", 1)]);
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a", &["t"]), &t, "uniform", 10, 0).unwrap();
        assert_eq!(g.heartbeat(beat("a", 5, None), &t, "uniform", 10, 1), Err(HeartbeatError::FencedMemberEpoch));
        assert_eq!(g.heartbeat(beat("nobody", 1, None), &t, "uniform", 10, 1), Err(HeartbeatError::UnknownMemberId));
        // The topic grows: epoch 2. The previous epoch (1) is still accepted while the member
        // owns nothing it should not (its answer may have been lost); anything else is fenced.
        let mut t2 = t.clone();
        t2.get_mut("t").unwrap().1 = 2;
        assert_eq!(g.heartbeat(beat("a", 1, None), &t2, "uniform", 10, 1).unwrap().member_epoch, 2);
        assert!(g.heartbeat(beat("a", 1, a.assignment.as_ref()), &t2, "uniform", 10, 1).is_ok());
        let stranger = Assignment::from([("t".to_string(), BTreeSet::from([7]))]);
        assert_eq!(g.heartbeat(beat("a", 1, Some(&stranger)), &t2, "uniform", 10, 1), Err(HeartbeatError::FencedMemberEpoch));
        assert_eq!(g.validate_commit("a", 2), Ok(()));
        assert_eq!(g.validate_commit("a", 1), Err(CommitCheck::StaleMemberEpoch));
        assert_eq!(g.validate_commit("x", 1), Err(CommitCheck::UnknownMemberId));
        assert_eq!(g.validate_commit("", -1), Err(CommitCheck::UnknownMemberId), "admin commits need an empty group");
    }

    #[test]
    fn leaving_and_expiry_free_partitions_for_the_others() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("a", &["t"]), &t, "uniform", 10, 0).unwrap();
        g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 0).unwrap();
        let out = g.leave("a", None, LEAVE_EPOCH, "uniform").unwrap();
        assert_eq!(out.member_epoch, -1);
        let b = g.heartbeat(beat("b", 2, Some(&Assignment::new())), &t, "uniform", 10, 1).unwrap();
        assert_eq!(n(b.assignment.as_ref().unwrap()), 2);
        assert_eq!(g.expired_members(44_000, 45_000), Vec::<String>::new());
        assert_eq!(g.expired_members(45_001, 45_000), vec!["b".to_string()]);
        g.remove_member("b", "uniform");
        assert_eq!(g.state(), ConsumerGroupState::Empty);
        assert_eq!(g.validate_commit("", -1), Ok(()));
    }

    #[test]
    fn a_static_member_comes_back_to_its_partitions_and_a_duplicate_instance_is_refused() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        let first = g.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("a", &["t"]) }, &t, "uniform", 10, 0).unwrap();
        let epoch = g.group_epoch;
        assert_eq!(
            g.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("a2", &["t"]) }, &t, "uniform", 10, 1),
            Err(HeartbeatError::UnreleasedInstanceId)
        );
        g.leave("a", Some("i"), STATIC_LEAVE_EPOCH, "uniform").unwrap();
        let back = g.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("a2", &["t"]) }, &t, "uniform", 10, 2).unwrap();
        assert_eq!((back.member_id.as_str(), back.member_epoch), ("a2", first.member_epoch));
        assert_eq!(back.assignment, first.assignment);
        assert_eq!(g.group_epoch, epoch, "no rebalance");
    }

    #[test]
    fn new_partitions_and_regex_subscriptions_change_the_target() {
        let mut t = topics(&[("t", 1), ("r1", 1)]);
        let mut g = ConsumerGroup::new("g");
        // The literal topic at once; the regex's matches from the next heartbeat on.
        let a = g
            .heartbeat(HeartbeatInput { subscribed_topic_names: Some(vec!["t".into()]), subscribed_topic_regex: Some("r.*".into()), ..join("a", &[]) }, &t, "range", 10, 0)
            .unwrap();
        assert_eq!(a.assignment.unwrap().keys().cloned().collect::<Vec<_>>(), vec!["t".to_string()]);
        let a = g.heartbeat(beat("a", 1, None), &t, "range", 10, 1).unwrap();
        assert_eq!(a.member_epoch, 2);
        assert_eq!(a.assignment.unwrap().keys().cloned().collect::<Vec<_>>(), vec!["r1".to_string(), "t".to_string()]);
        t.insert("r2".into(), (Uuid::new_v4(), 3));
        let a2 = g.heartbeat(beat("a", 2, None), &t, "range", 10, 1).unwrap();
        assert_eq!(a2.member_epoch, 3);
        assert_eq!(n(a2.assignment.as_ref().unwrap()), 5);
        t.insert("__internal".into(), (Uuid::new_v4(), 3));
        t.insert("xr".into(), (Uuid::new_v4(), 3));
        assert!(g.heartbeat(beat("a", 3, None), &t, "range", 10, 1).unwrap().assignment.is_none(), "no full match, internal topics skipped");
        assert!(matches!(
            g.heartbeat(HeartbeatInput { subscribed_topic_regex: Some("(".into()), ..beat("a", 3, None) }, &t, "range", 10, 2),
            Err(HeartbeatError::InvalidRegularExpression(_))
        ));
    }

    /// The loader's view of records: the last value of each key.
    fn stored_from(records: &BTreeMap<GroupKey, Bytes>) -> StoredConsumerGroup {
        let mut s = StoredConsumerGroup::default();
        for (k, v) in records {
            match k {
                GroupKey::ConsumerMetadata { .. } => s.group_epoch = Some(codec::decode_epoch(v.clone()).unwrap()),
                GroupKey::ConsumerPartitionMetadata { .. } => s.topics = Some(codec::decode_partition_metadata(v.clone()).unwrap()),
                GroupKey::ConsumerTargetMetadata { .. } => s.assignment_epoch = Some(codec::decode_epoch(v.clone()).unwrap()),
                GroupKey::ConsumerMember { member, .. } => drop(s.members.insert(member.clone(), codec::decode_member(v.clone()).unwrap())),
                GroupKey::ConsumerTargetMember { member, .. } => drop(s.targets.insert(member.clone(), codec::decode_target_member(v.clone()).unwrap())),
                GroupKey::ConsumerCurrentAssignment { member, .. } => drop(s.current.insert(member.clone(), codec::decode_member_assignment(v.clone()).unwrap())),
                _ => unreachable!(),
            }
        }
        s
    }

    #[test]
    fn a_group_restored_from_its_records_carries_on_where_it_was() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        let a = g.heartbeat(join("a", &["t"]), &t, "uniform", 10, 0).unwrap();
        let a_owned = a.assignment.unwrap();
        g.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("b", &["t"]) }, &t, "uniform", 10, 1).unwrap();
        // a is told to revoke one partition and has not yet: mid-reconciliation.
        g.heartbeat(beat("a", 1, Some(&a_owned)), &t, "uniform", 10, 2).unwrap();
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        let records = g.records();
        assert_eq!(records.len(), 3 + 3 * 2);
        let (r, dropped) = ConsumerGroup::restore("g", stored_from(&records), 1_000);
        assert_eq!(dropped, 0);
        assert_eq!((r.group_epoch, r.assignment_epoch, r.state()), (g.group_epoch, g.assignment_epoch, g.state()));
        assert_eq!(r.target, g.target);
        for (id, m) in &g.members {
            let back = &r.members[id];
            assert_eq!((back.member_epoch, back.previous_member_epoch, back.state), (m.member_epoch, m.previous_member_epoch, m.state), "{id}");
            assert_eq!((&back.assigned, &back.pending_revocation), (&m.assigned, &m.pending_revocation), "{id}");
            assert_eq!((&back.subscribed_topic_names, &back.instance_id, back.last_seen_ms), (&m.subscribed_topic_names, &m.instance_id, 1_000));
        }
        assert_eq!(r.members["a"].revoking_since_ms, Some(1_000), "the revocation timer restarts at load");
        assert_eq!(r.records(), records, "a restored group writes the same records");
        // It continues: a finishes revoking, b gets the partition, nobody rejoins.
        let mut r = r;
        let kept = r.members["a"].assigned.clone();
        let a2 = r.heartbeat(beat("a", 1, Some(&kept)), &t, "uniform", 10, 1_001).unwrap();
        assert_eq!(a2.member_epoch, 2);
        let b2 = r.heartbeat(beat("b", 2, Some(&Assignment::new())), &t, "uniform", 10, 1_002).unwrap();
        assert_eq!(n(b2.assignment.as_ref().unwrap()), 1);
        assert_eq!(r.state(), ConsumerGroupState::Stable);
        assert_eq!(r.expired_members(1_002 + 44_000, 45_000), Vec::<String>::new());
    }

    #[test]
    fn a_static_member_is_known_by_its_instance_and_reports_of_owning_nothing_skip_the_revocation() {
        let t = topics(&[("t", 4)]);
        let mut g = ConsumerGroup::new("g");
        let a = |id: &str, epoch: i32| HeartbeatInput { instance_id: Some("i".into()), ..beat(id, epoch, None) };
        g.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("a", &["t"]) }, &t, "uniform", 10, 0).unwrap();
        g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 1).unwrap();
        // It must give two partitions up. Reporting that it owns none of them, it is at the new
        // epoch at once; the partitions it keeps are not sent again.
        let kept = g.heartbeat(HeartbeatInput { owned: Some(parts(&[])), ..a("a", 1) }, &t, "uniform", 10, 2).unwrap();
        assert_eq!((kept.member_epoch, kept.assignment.as_ref().map(n)), (2, Some(2)));
        assert_eq!(g.members["a"].state, MemberState::Stable);
        let again = g.heartbeat(HeartbeatInput { owned: Some(parts(&[])), ..a("a", 2) }, &t, "uniform", 10, 3).unwrap();
        assert_eq!((again.member_epoch, again.assignment), (2, None));
        // Another member id naming the instance is fenced, in a heartbeat and in a leave.
        assert_eq!(g.heartbeat(a("x", 2), &t, "uniform", 10, 4), Err(HeartbeatError::FencedInstanceId));
        assert_eq!(g.leave("x", Some("i"), LEAVE_EPOCH, "uniform"), Err(HeartbeatError::FencedInstanceId));
        assert_eq!(g.leave("x", Some("nobody"), LEAVE_EPOCH, "uniform"), Err(HeartbeatError::UnknownMemberId));
        assert!(g.members.contains_key("a"));
        // Away for a while, it is at epoch -2 until it rejoins with epoch 0.
        g.leave("a", Some("i"), STATIC_LEAVE_EPOCH, "uniform").unwrap();
        assert_eq!(g.heartbeat(a("a", 2), &t, "uniform", 10, 5), Err(HeartbeatError::FencedMemberEpoch));
    }

    #[test]
    fn a_static_member_that_left_for_a_while_is_restored_as_such_and_unknown_topics_are_dropped() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        let first = g.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("a", &["t"]) }, &t, "uniform", 10, 0).unwrap();
        g.leave("a", Some("i"), STATIC_LEAVE_EPOCH, "uniform").unwrap();
        let mut stored = stored_from(&g.records());
        let (r, _) = ConsumerGroup::restore("g", stored.clone(), 5);
        assert!(r.members["a"].left_temporarily);
        let mut r = r;
        let back = r.heartbeat(HeartbeatInput { instance_id: Some("i".into()), ..join("a2", &["t"]) }, &t, "uniform", 10, 6).unwrap();
        assert_eq!((back.member_epoch, back.assignment), (first.member_epoch, first.assignment));
        // Partition metadata lost: the assignment cannot be named and is dropped, not guessed.
        stored.topics = None;
        let (r, dropped) = ConsumerGroup::restore("g", stored, 5);
        assert_eq!(dropped, 4, "2 assigned + 2 in the target");
        assert!(r.members["a"].assigned.is_empty());
    }

    #[test]
    fn the_group_size_is_bounded() {
        let t = topics(&[("t", 1)]);
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("a", &["t"]), &t, "uniform", 1, 0).unwrap();
        assert_eq!(g.heartbeat(join("b", &["t"]), &t, "uniform", 1, 0), Err(HeartbeatError::GroupMaxSizeReached));
    }

    // --- classic members inside a consumer group (KIP-848's migration) ---

    fn subscription(topics: &[&str], owned: &Assignment) -> Bytes {
        use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as Owned;
        use kafka_protocol::messages::{ConsumerProtocolSubscription, TopicName};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let s = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect())
            .with_owned_partitions(owned.iter().map(|(t, ps)| Owned::default().with_topic(TopicName(StrBytes::from_string(t.clone()))).with_partitions(ps.iter().copied().collect())).collect());
        let mut b = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut b, 1);
        s.encode(&mut b, 1).unwrap();
        b.freeze()
    }

    fn classic_join(id: &str, topics: &[&str], owned: &Assignment) -> ClassicJoinInput {
        let metadata = subscription(topics, owned);
        ClassicJoinInput {
            member_id: id.into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocols: vec![("range".into(), metadata.clone())],
            subscription: embedded::decode_subscription(metadata).unwrap(),
            ..Default::default()
        }
    }

    fn parts(list: &[i32]) -> Assignment {
        let mut a = Assignment::new();
        a.insert("t".into(), list.iter().copied().collect());
        a
    }

    fn decoded(b: Bytes) -> Vec<i32> {
        embedded::assigned_partitions(b).into_iter().map(|(_, p)| p).collect()
    }

    /// A stable classic group: member c1 at generation 3 owning every partition of t.
    fn classic_group() -> Group {
        let mut m = Member::new("c1".into(), vec![("range".into(), subscription(&["t"], &Assignment::new()))], 10_000, 30_000, 0);
        m.assignment = embedded::encode_assignment(1, &parts(&[0, 1, 2, 3]));
        Group::restore("g", Some("consumer".into()), 3, Some("range".into()), Some("c1".into()), vec![m], 0)
    }

    #[test]
    fn a_classic_group_upgrades_its_members_rejoin_to_give_partitions_up_and_it_downgrades_back() {
        let t = topics(&[("t", 4)]);
        let mut g = ConsumerGroup::from_classic(&classic_group(), &t, "uniform", 0).unwrap();
        assert_eq!((g.group_epoch, g.assignment_epoch), (3, 3));
        let c1 = &g.members["c1"];
        assert_eq!((c1.member_epoch, c1.state, n(&c1.assigned)), (3, MemberState::Stable, 4));
        assert_eq!(g.state(), ConsumerGroupState::Stable);
        // Its generation is still good for commits and heartbeats.
        assert_eq!(g.validate_commit("c1", 3), Ok(()));
        assert_eq!(g.classic_heartbeat("c1", None, 3, 1), Ok(()));

        // A consumer-protocol member joins: epoch 4, nothing free for it yet.
        let b = g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 2).unwrap();
        assert_eq!((b.member_epoch, n(b.assignment.as_ref().unwrap())), (4, 0));
        // The classic member is told to rejoin, and rejoins as a cooperative consumer does
        // (owning all four): two partitions kept, two to give up, its generation still 3.
        assert_eq!(g.classic_heartbeat("c1", None, 3, 3), Err(HeartbeatError::RebalanceInProgress));
        assert!(g.members["c1"].classic.as_ref().unwrap().join_deadline_ms.is_some());
        let j = g.classic_join(classic_join("c1", &["t"], &parts(&[0, 1, 2, 3])), &t, "uniform", 10, 4).unwrap();
        assert_eq!(j.member_epoch, 3);
        assert_eq!(g.members["c1"].state, MemberState::UnrevokedPartitions);
        let (a, protocol) = g.classic_sync("c1", None, 3, Some("consumer"), Some("range"), 5).unwrap();
        assert_eq!((decoded(a).len(), protocol.as_str()), (2, "range"));
        // Revoking: rejoin again, then it is at epoch 4 and the other member gets the rest.
        assert_eq!(g.classic_heartbeat("c1", None, 3, 6), Err(HeartbeatError::RebalanceInProgress));
        let j = g.classic_join(classic_join("c1", &["t"], &Assignment::new()), &t, "uniform", 10, 7).unwrap();
        assert_eq!(j.member_epoch, 4);
        let (a, _) = g.classic_sync("c1", None, 4, None, None, 8).unwrap();
        let kept = decoded(a);
        assert_eq!(kept.len(), 2);
        assert_eq!(g.classic_heartbeat("c1", None, 4, 9), Ok(()));
        let b = g.heartbeat(beat("b", 4, Some(&Assignment::new())), &t, "uniform", 10, 10).unwrap();
        let theirs: Vec<i32> = b.assignment.unwrap()["t"].iter().copied().collect();
        assert_eq!(theirs.len(), 2);
        assert!(theirs.iter().all(|p| !kept.contains(p)), "disjoint: {kept:?} {theirs:?}");
        assert_eq!(g.state(), ConsumerGroupState::Stable);

        // The consumer-protocol member leaves: the classic group of c1 at the group epoch, with
        // c1's target as its assignment.
        assert!(g.all_classic_except("b"));
        let classic = g.to_classic("b", None, 11);
        assert_eq!((classic.generation, classic.protocol.as_deref(), classic.protocol_type.as_deref()), (4, Some("range"), Some("consumer")));
        assert_eq!(classic.members.keys().collect::<Vec<_>>(), vec!["c1"]);
        assert_eq!(decoded(classic.members["c1"].assignment.clone()), kept);
    }

    #[test]
    fn classic_calls_are_checked_as_kafka_checks_them() {
        let t = topics(&[("t", 4)]);
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 0).unwrap();
        assert!(g.supports_classic("consumer", &[("range".into(), Bytes::new())]));
        assert!(!g.supports_classic("connect", &[("range".into(), Bytes::new())]));
        g.classic_join(ClassicJoinInput { instance_id: Some("i1".into()), new_member: true, ..classic_join("c1", &["t"], &Assignment::new()) }, &t, "uniform", 10, 1).unwrap();
        // Once a classic member is in, a newcomer must share one of its protocols.
        assert!(!g.supports_classic("consumer", &[("roundrobin".into(), Bytes::new())]));
        assert!(g.supports_classic("consumer", &[("roundrobin".into(), Bytes::new()), ("range".into(), Bytes::new())]));
        let epoch = g.members["c1"].member_epoch;
        assert_eq!(g.classic_sync("c1", None, epoch + 1, None, None, 2), Err(HeartbeatError::IllegalGeneration));
        assert!(matches!(g.classic_sync("c1", None, epoch, None, Some("roundrobin"), 2), Err(HeartbeatError::InconsistentGroupProtocol(_))));
        assert!(matches!(g.classic_sync("c1", None, epoch, Some("connect"), None, 2), Err(HeartbeatError::InconsistentGroupProtocol(_))));
        assert_eq!(g.classic_heartbeat("c1", None, epoch - 1, 2), Err(HeartbeatError::IllegalGeneration));
        assert_eq!(g.validate_commit("c1", epoch - 1), Err(CommitCheck::IllegalGeneration));
        // A consumer-protocol member is unknown to the classic calls; a static member is found by
        // its instance id, and another member id for it is fenced.
        assert_eq!(g.classic_heartbeat("b", None, 1, 2), Err(HeartbeatError::UnknownMemberId));
        assert_eq!(g.classic_heartbeat("x", Some("i1"), epoch, 2), Err(HeartbeatError::FencedInstanceId));
        assert_eq!(
            g.classic_join(ClassicJoinInput { instance_id: Some("i1".into()), ..classic_join("x", &["t"], &Assignment::new()) }, &t, "uniform", 10, 2),
            Err(HeartbeatError::FencedInstanceId)
        );
        // Back under a new id without one: it takes its old self's place.
        let back = g.classic_join(ClassicJoinInput { instance_id: Some("i1".into()), new_member: true, ..classic_join("c1b", &["t"], &Assignment::new()) }, &t, "uniform", 10, 3).unwrap();
        assert_eq!(back.member_id, "c1b");
        assert!(!g.members.contains_key("c1") && g.members["c1b"].classic.is_some());
        assert_eq!(g.classic_leave("", Some("i1"), "uniform"), Ok("c1b".to_string()));
        assert_eq!(g.classic_leave("c1b", None, "uniform"), Err(HeartbeatError::UnknownMemberId));
        assert_eq!(g.classic_join(classic_join("c2", &["t"], &Assignment::new()), &t, "uniform", 1, 4), Err(HeartbeatError::GroupMaxSizeReached));
    }

    #[test]
    fn a_classic_member_is_fenced_by_its_own_session_and_by_its_sync_and_join_deadlines() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 0).unwrap();
        // Joined at 1000 with a 30 s rebalance timeout (and a 60 s session): it must sync by 31000.
        g.classic_join(ClassicJoinInput { session_timeout_ms: 60_000, ..classic_join("c1", &["t"], &Assignment::new()) }, &t, "uniform", 10, 1_000).unwrap();
        assert!(g.expired_members(30_999, 45_000).iter().all(|m| m != "c1"));
        assert!(g.expired_members(31_000, 45_000).contains(&"c1".to_string()));
        let epoch = g.members["c1"].member_epoch;
        g.classic_sync("c1", None, epoch, None, None, 2_000).unwrap();
        // Synced: its own session counts (here 10 s, not the group's 45 s), from its last call.
        g.members.get_mut("c1").unwrap().classic.as_mut().unwrap().session_timeout_ms = 10_000;
        g.members.get_mut("b").unwrap().last_seen_ms = 100_000;
        assert!(g.expired_members(11_999, 45_000).is_empty());
        assert_eq!(g.expired_members(12_000, 45_000), vec!["c1".to_string()]);
        // Told to rejoin at 5000: fenced at 35000 unless it rejoins.
        g.group_epoch += 1;
        assert_eq!(g.classic_heartbeat("c1", None, epoch, 5_000), Err(HeartbeatError::RebalanceInProgress));
        g.members.get_mut("c1").unwrap().last_seen_ms = 34_000;
        assert!(g.expired_members(34_999, 1_000_000).is_empty());
        assert_eq!(g.expired_members(35_000, 1_000_000), vec!["c1".to_string()]);
    }

    #[test]
    fn classic_members_survive_a_restart_with_their_protocols() {
        let t = topics(&[("t", 2)]);
        let mut g = ConsumerGroup::new("g");
        g.heartbeat(join("b", &["t"]), &t, "uniform", 10, 0).unwrap();
        g.classic_join(classic_join("c1", &["t"], &Assignment::new()), &t, "uniform", 10, 1).unwrap();
        let (r, dropped) = ConsumerGroup::restore("g", stored_from(&g.records()), 5);
        assert_eq!(dropped, 0);
        let (before, after) = (g.members["c1"].classic.as_ref().unwrap(), r.members["c1"].classic.as_ref().unwrap());
        assert_eq!((after.session_timeout_ms, &after.protocols), (before.session_timeout_ms, &before.protocols));
        assert_eq!((after.join_deadline_ms, after.sync_deadline_ms), (None, None));
        assert!(r.members["b"].classic.is_none());
        assert_eq!(r.records(), g.records());
    }
}
