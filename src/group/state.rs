//! The classic group state machine as pure data: members, generations, protocol selection and
//! rebalance bookkeeping. No tokio, no clocks, no I/O: time comes in as `now_ms` arguments, and
//! parked requests live in the coordinator, which acts on what these transitions return.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in DescribeGroups and ListGroups (and accepts as a states filter).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// Last sign of life (join, sync, heartbeat, commit), on the coordinator's monotonic clock.
    pub last_seen_ms: u64,
    /// Rejoined during the current rebalance.
    pub joined: bool,
    /// Join order: the oldest member becomes leader when the leader leaves.
    order: u64,
}

impl Member {
    pub fn new(id: String, protocols: Vec<(String, Bytes)>, session_timeout_ms: i32, rebalance_timeout_ms: i32, now_ms: u64) -> Member {
        Member {
            id,
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
            assignment: Bytes::new(),
            last_seen_ms: now_ms,
            joined: false,
            order: 0,
        }
    }

    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }
}

/// One classic group. The coordinator holds it behind its lock.
#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire unless used.
    pub pending: BTreeMap<String, u64>,
    /// When the current rebalance gives up on members that did not rejoin.
    pub rebalance_deadline_ms: u64,
    /// InitialDelayedJoin of an empty group: (complete at, never later than).
    pub initial_delay: Option<(u64, u64)>,
    next_order: u64,
}

impl Group {
    pub fn new(id: impl Into<String>) -> Group {
        Group {
            id: id.into(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay: None,
            next_order: 0,
        }
    }

    /// A group brought back from its metadata record after a restart: with members it is Stable
    /// at the stored generation with their assignments (as Kafka loads it), so members carry on
    /// heartbeating and committing; each member's session starts again at `now_ms`. Members
    /// keep only the selected protocol's metadata, which is all the record holds.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        id: impl Into<String>,
        protocol_type: Option<String>,
        generation: i32,
        protocol: Option<String>,
        leader: Option<String>,
        members: Vec<Member>,
        now_ms: u64,
    ) -> Group {
        let mut g = Group::new(id);
        g.generation = generation;
        g.protocol_type = protocol_type;
        for mut m in members {
            m.order = g.next_order;
            g.next_order += 1;
            m.joined = false;
            m.last_seen_ms = now_ms;
            g.members.insert(m.id.clone(), m);
        }
        if g.members.is_empty() {
            return g;
        }
        g.state = GroupState::Stable;
        g.protocol = protocol;
        // A leader that is not among the members (a damaged record) is replaced by the oldest.
        g.leader = leader.filter(|l| g.members.contains_key(l)).or_else(|| g.members.keys().next().cloned());
        g
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn size(&self) -> usize {
        self.members.len() + self.pending.len()
    }

    pub fn member_by_instance(&self, instance_id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Protocols every current member supports.
    fn candidates(&self) -> BTreeSet<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else { return BTreeSet::new() };
        let mut set: BTreeSet<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            set.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
        }
        set
    }

    /// Whether a member with this protocol type and protocols may join (else
    /// INCONSISTENT_GROUP_PROTOCOL): an empty group takes anything non-empty, otherwise the type
    /// must match and one protocol must be shared with every member.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidates();
        protocols.iter().any(|(n, _)| candidates.contains(n))
    }

    /// The protocol all members support that most members prefer; ties go to the leader's order.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        let order: Vec<&str> = match self.leader.as_ref().and_then(|l| self.members.get(l)) {
            Some(l) => l.protocols.iter().map(|(n, _)| n.as_str()).collect(),
            None => votes.keys().copied().collect(),
        };
        order.into_iter().find(|p| votes.get(p) == Some(&best)).map(str::to_string)
    }

    /// Adds a member that has just joined; the first member becomes leader.
    pub fn add_member(&mut self, mut m: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        self.pending.remove(&m.id);
        m.order = self.next_order;
        m.joined = true;
        self.next_order += 1;
        if self.leader.is_none() {
            self.leader = Some(m.id.clone());
        }
        self.members.insert(m.id.clone(), m);
    }

    /// Updates the protocols of a rejoining member; returns whether they changed.
    pub fn update_member(&mut self, id: &str, protocols: Vec<(String, Bytes)>, session_timeout_ms: i32, rebalance_timeout_ms: i32, now_ms: u64) -> bool {
        let Some(m) = self.members.get_mut(id) else { return false };
        let changed = !m.same_protocols(&protocols);
        m.protocols = protocols;
        m.session_timeout_ms = session_timeout_ms;
        m.rebalance_timeout_ms = rebalance_timeout_ms;
        m.last_seen_ms = now_ms;
        m.joined = true;
        changed
    }

    /// Gives a static member's place to a new member id (same instance id), keeping its
    /// assignment. Returns false when `old` is not a member.
    pub fn replace_member_id(&mut self, old: &str, new: &str) -> bool {
        let Some(mut m) = self.members.remove(old) else { return false };
        m.id = new.to_string();
        if self.leader.as_deref() == Some(old) {
            self.leader = Some(new.to_string());
        }
        self.members.insert(new.to_string(), m);
        true
    }

    /// Removes a member; the oldest remaining member takes over as leader.
    pub fn remove_member(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.values().min_by_key(|m| m.order).map(|m| m.id.clone());
        }
        Some(m)
    }

    /// Starts a rebalance: every member must rejoin before `now + max rebalance timeout`. An empty
    /// group waits `initial_delay_ms` first so that a fleet of consumers starting together lands in
    /// one generation (Kafka's InitialDelayedJoin).
    pub fn prepare_rebalance(&mut self, now_ms: u64, initial_delay_ms: u64) {
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0);
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline_ms = now_ms + timeout;
        for m in self.members.values_mut() {
            m.joined = false;
        }
        self.initial_delay = if was_empty && initial_delay_ms > 0 {
            Some((now_ms + initial_delay_ms.min(timeout), now_ms + timeout))
        } else {
            None
        };
    }

    /// A new member arrived during the initial delay: wait another delay, up to the limit.
    pub fn extend_initial_delay(&mut self, now_ms: u64, initial_delay_ms: u64) {
        if let Some((until, limit)) = self.initial_delay {
            self.initial_delay = Some((until.max(now_ms + initial_delay_ms).min(limit), limit));
        }
    }

    /// Whether the join phase may complete now: during the initial delay only when it is over;
    /// otherwise when every member rejoined (and no handed-out member id is outstanding) or the
    /// rebalance timeout passed.
    pub fn join_complete_due(&self, now_ms: u64) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        if let Some((until, _)) = self.initial_delay {
            return now_ms >= until;
        }
        let all = self.members.values().all(|m| m.joined) && self.pending.is_empty();
        all || now_ms >= self.rebalance_deadline_ms
    }

    /// Ends the join phase: members that did not rejoin are removed (returned), the generation
    /// advances, the protocol is chosen and the group awaits the leader's assignment — or becomes
    /// Empty when nobody is left.
    pub fn complete_join(&mut self) -> Vec<Member> {
        let gone: Vec<String> = self.members.values().filter(|m| !m.joined).map(|m| m.id.clone()).collect();
        let removed = gone.iter().filter_map(|id| self.remove_member(id)).collect();
        self.pending.clear();
        self.initial_delay = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
        } else {
            self.protocol = self.select_protocol();
            self.state = GroupState::CompletingRebalance;
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
            }
        }
        removed
    }

    /// The leader's assignments arrived: members without one get an empty assignment.
    pub fn complete_sync(&mut self, assignments: BTreeMap<String, Bytes>) {
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
        }
        self.state = GroupState::Stable;
    }

    /// After a member left or expired: rebalance a settled group, or finish emptying.
    pub fn on_member_gone(&mut self, now_ms: u64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.state = GroupState::Empty;
                    self.protocol = None;
                    self.leader = None;
                } else {
                    self.prepare_rebalance(now_ms, 0);
                }
            }
            GroupState::PreparingRebalance if self.members.is_empty() && self.pending.is_empty() => {
                self.complete_join();
            }
            _ => {}
        }
    }

    /// Members whose session expired (session timeout reached since the last sign of life, as
    /// Kafka's heartbeat deadline); members parked in a join or sync are kept alive.
    pub fn expired_members(&self, now_ms: u64, parked: impl Fn(&str) -> bool) -> Vec<String> {
        self.members
            .values()
            .filter(|m| !parked(&m.id) && now_ms.saturating_sub(m.last_seen_ms) >= m.session_timeout_ms.max(0) as u64)
            .map(|m| m.id.clone())
            .collect()
    }

    /// Whether a rejoin changes nothing, so the current generation can be answered at once.
    pub fn same_protocols(&self, id: &str, protocols: &[(String, Bytes)]) -> bool {
        self.members.get(id).is_some_and(|m| m.same_protocols(protocols))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protos(names: &[&str]) -> Vec<(String, Bytes)> {
        names.iter().map(|n| (n.to_string(), Bytes::from(format!("meta-{n}")))).collect()
    }

    fn member(id: &str, names: &[&str]) -> Member {
        Member::new(id.into(), protos(names), 10_000, 30_000, 0)
    }

    #[test]
    fn first_member_leads_and_an_empty_group_waits_the_initial_delay() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.prepare_rebalance(100, 3000);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(g.leader.as_deref(), Some("a"));
        g.members.get_mut("a").unwrap().joined = true;
        assert!(!g.join_complete_due(3099), "waits the initial delay although all joined");
        assert!(g.join_complete_due(3100));
        assert!(g.complete_join().is_empty());
        assert_eq!((g.state, g.generation, g.protocol.as_deref()), (GroupState::CompletingRebalance, 1, Some("range")));
    }

    #[test]
    fn initial_delay_extends_for_new_members_but_not_past_the_rebalance_timeout() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.prepare_rebalance(0, 3000);
        g.extend_initial_delay(2000, 3000);
        assert_eq!(g.initial_delay, Some((5000, 30_000)));
        g.extend_initial_delay(29_000, 3000);
        assert_eq!(g.initial_delay, Some((30_000, 30_000)));
    }

    #[test]
    fn a_rebalance_of_an_existing_group_completes_when_all_rejoined_without_delay() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.add_member(member("b", &["range"]), "consumer");
        g.state = GroupState::Stable;
        g.prepare_rebalance(0, 3000);
        assert!(g.initial_delay.is_none());
        g.update_member("a", protos(&["range"]), 10_000, 30_000, 1);
        assert!(!g.join_complete_due(1));
        g.update_member("b", protos(&["range"]), 10_000, 30_000, 2);
        assert!(g.join_complete_due(2));
    }

    #[test]
    fn members_that_miss_the_rebalance_timeout_are_removed_and_leadership_moves() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.add_member(member("b", &["range"]), "consumer");
        g.state = GroupState::Stable;
        g.prepare_rebalance(0, 0);
        g.update_member("b", protos(&["range"]), 10_000, 30_000, 1);
        assert!(!g.join_complete_due(29_999));
        assert!(g.join_complete_due(30_000));
        let removed = g.complete_join();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].id, "a");
        assert_eq!(g.leader.as_deref(), Some("b"));
    }

    #[test]
    fn protocol_selection_takes_the_common_protocol_most_preferred() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["roundrobin", "range"]), "consumer");
        g.add_member(member("b", &["range", "roundrobin"]), "consumer");
        g.add_member(member("c", &["range", "sticky"]), "consumer");
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
        assert!(g.supports("consumer", &protos(&["range"])));
        assert!(!g.supports("consumer", &protos(&["sticky"])), "not every member supports sticky");
        assert!(!g.supports("connect", &protos(&["range"])), "protocol type differs");
        assert!(!g.supports("consumer", &[]), "no protocols");
        assert!(!Group::new("e").supports("", &protos(&["range"])), "empty protocol type");
    }

    #[test]
    fn sync_hands_out_assignments_and_members_without_one_get_empty() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.add_member(member("b", &["range"]), "consumer");
        g.prepare_rebalance(0, 0);
        g.members.values_mut().for_each(|m| m.joined = true);
        g.complete_join();
        g.complete_sync(BTreeMap::from([("a".to_string(), Bytes::from_static(b"x"))]));
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.members["a"].assignment, Bytes::from_static(b"x"));
        assert!(g.members["b"].assignment.is_empty());
    }

    #[test]
    fn last_member_leaving_empties_the_group_and_bumps_the_generation() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.state = GroupState::Stable;
        g.generation = 4;
        g.remove_member("a");
        g.on_member_gone(0);
        assert_eq!((g.state, g.generation, g.leader.clone()), (GroupState::Empty, 5, None));
    }

    #[test]
    fn sessions_expire_unless_the_member_is_parked() {
        let mut g = Group::new("g");
        g.add_member(member("a", &["range"]), "consumer");
        g.add_member(member("b", &["range"]), "consumer");
        assert_eq!(g.expired_members(10_000, |id| id == "b"), vec!["a".to_string()]);
        assert!(g.expired_members(9_999, |_| false).is_empty());
    }

    #[test]
    fn a_restored_group_is_stable_with_its_members_and_their_timers_restart() {
        let mut a = member("a", &["range"]);
        a.assignment = Bytes::from_static(b"p0");
        a.last_seen_ms = 1;
        let g = Group::restore("g", Some("consumer".into()), 7, Some("range".into()), Some("a".into()), vec![a, member("b", &["range"])], 500);
        assert_eq!((g.state, g.generation, g.leader.as_deref(), g.protocol.as_deref()), (GroupState::Stable, 7, Some("a"), Some("range")));
        assert_eq!(g.members["a"].assignment, Bytes::from_static(b"p0"));
        assert!(g.expired_members(10_499, |_| false).is_empty(), "sessions run from the load");
        assert_eq!(g.expired_members(10_500, |_| false).len(), 2);
        let orphan = Group::restore("g", Some("consumer".into()), 7, Some("range".into()), Some("gone".into()), vec![member("b", &["range"])], 0);
        assert_eq!(orphan.leader.as_deref(), Some("b"));
        let empty = Group::restore("g", Some("consumer".into()), 3, Some("range".into()), None, vec![], 0);
        assert_eq!((empty.state, empty.generation, empty.protocol.clone()), (GroupState::Empty, 3, None));
    }

    #[test]
    fn static_member_id_replacement_keeps_leadership_and_assignment() {
        let mut g = Group::new("g");
        let mut a = member("a", &["range"]);
        a.instance_id = Some("i1".into());
        a.assignment = Bytes::from_static(b"p0");
        g.add_member(a, "consumer");
        assert!(g.replace_member_id("a", "a2"));
        assert!(!g.replace_member_id("nope", "x"));
        assert_eq!(g.leader.as_deref(), Some("a2"));
        assert_eq!(g.member_by_instance("i1").unwrap().assignment, Bytes::from_static(b"p0"));
    }
}
