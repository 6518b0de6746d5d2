//! A KIP-848 consumer group member for `fjord consume -g`: the tool joins the group with
//! ConsumerGroupHeartbeat, the coordinator assigns it partitions (the server-side assignor), and
//! several `fjord consume -g` (or Java / librdkafka consumers of the same group) share the topic's
//! partitions. The member reconciles as Kafka's consumers do: partitions taken away are committed
//! and released before the next heartbeat acknowledges the new assignment; a fenced member drops
//! its partitions without committing and joins again at epoch 0. Offsets are committed with the
//! member id and epoch, as the coordinator requires of a group with members.
//!
//! This file holds the heartbeat state machine; `consume.rs` drives it between fetches.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId};
use kafka_protocol::protocol::Request;

use super::conn::{Cluster, error_name, send_capped, str_bytes, topic_name};

/// How long the coordinator waits for the member to release revoked partitions before fencing
/// it (the Java consumer sends `max.poll.interval.ms`; the CLI releases at once, so a minute is
/// plenty).
const REBALANCE_TIMEOUT_MS: i32 = 60_000;
/// Used until the coordinator says otherwise (Kafka's `group.consumer.heartbeat.interval.ms`).
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Pause before retrying when the coordinator is loading or moving.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
const UNKNOWN_MEMBER_ID: i16 = 25;
const FENCED_MEMBER_EPOCH: i16 = 110;

/// What the consumer must do after a heartbeat: commit and drop `revoked`, start `added`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub revoked: Vec<i32>,
    pub added: Vec<i32>,
    /// The member was fenced: `revoked` must be dropped without committing (the offsets would be
    /// refused, and another member may own the partitions already).
    pub lost: bool,
}

/// One member of a consumer group subscribed to one topic.
pub struct Member {
    group: String,
    topic: String,
    topic_id: uuid::Uuid,
    member_id: String,
    epoch: i32,
    interval: Duration,
    next_heartbeat: Instant,
    /// The partitions of the topic this member owns (acknowledged or about to be).
    owned: BTreeSet<i32>,
    /// Whether the coordinator has answered a join yet (before it, the member owns nothing
    /// because it was given nothing, not because the group has no partition for it).
    joined: bool,
    /// When the current join was first answered.
    joined_at: Instant,
}

impl Member {
    /// A member about to join `group` for `topic` (whose id the assignment names). The member id
    /// is generated here, as ConsumerGroupHeartbeat v1 requires (v0 takes the coordinator's).
    pub fn new(group: &str, topic: &str, topic_id: &str) -> Result<Member> {
        let topic_id = topic_id.parse().map_err(|e| anyhow::anyhow!("topic {topic} has no usable id ({topic_id}): {e}"))?;
        Ok(Member {
            group: group.to_string(),
            topic: topic.to_string(),
            topic_id,
            member_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            interval: DEFAULT_HEARTBEAT_INTERVAL,
            next_heartbeat: Instant::now(),
            owned: BTreeSet::new(),
            joined: false,
            joined_at: Instant::now(),
        })
    }

    /// Whether the coordinator serves KIP-848 consumer groups (ConsumerGroupHeartbeat).
    pub async fn supported(cluster: &mut Cluster, group: &str) -> Result<bool> {
        let coordinator = cluster.coordinator(group).await?;
        Ok(coordinator.peer_versions(ConsumerGroupHeartbeatRequest::KEY).is_some())
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Whether the member has been answered at least once since it (re)joined.
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// Whether the member's assignment can be taken as final for `--exit-at-end`: it owns
    /// partitions, or a whole heartbeat interval passed since it joined without any (the group
    /// has more members than partitions, or another member still releases them).
    pub fn settled(&self) -> bool {
        self.joined && (!self.owned.is_empty() || self.joined_at.elapsed() >= self.interval)
    }

    /// How long until the next heartbeat is due.
    pub fn until_heartbeat(&self) -> Duration {
        self.next_heartbeat.saturating_duration_since(Instant::now())
    }

    fn request(&self, epoch: i32) -> ConsumerGroupHeartbeatRequest {
        let mut r = ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(str_bytes(&self.group))).with_member_id(str_bytes(&self.member_id)).with_member_epoch(epoch);
        if epoch >= 0 {
            // The full state on every heartbeat: a coordinator accepts it at any time, and it
            // is what a coordinator that lost the member's state needs.
            r = r
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_subscribed_topic_names(Some(vec![topic_name(&self.topic)]))
                .with_topic_partitions(Some(self.owned_field()));
        }
        r
    }

    /// The owned partitions as the request lists them: no topic at all when there are none (a
    /// join must send an empty list, Kafka refuses a topic with no partitions there).
    fn owned_field(&self) -> Vec<TopicPartitions> {
        if self.owned.is_empty() {
            return Vec::new();
        }
        vec![TopicPartitions::default().with_topic_id(self.topic_id).with_partitions(self.owned.iter().copied().collect())]
    }

    async fn send(&self, cluster: &mut Cluster, request: &ConsumerGroupHeartbeatRequest) -> Result<ConsumerGroupHeartbeatResponse> {
        let coordinator = cluster.coordinator(&self.group).await?;
        // v1: the member id is the client's (v0 lets the coordinator choose one).
        send_capped(&coordinator, request, 1).await
    }

    /// Sends the heartbeat if it is due (or `now`), and returns what the consumer must change.
    /// The caller commits and drops `revoked` (unless `lost`) and starts `added` before calling
    /// [`Member::acknowledge`], which tells the coordinator at once.
    pub async fn poll(&mut self, cluster: &mut Cluster, now: bool) -> Result<Change> {
        if !now && Instant::now() < self.next_heartbeat {
            return Ok(Change::default());
        }
        let request = self.request(self.epoch);
        let response = self.send(cluster, &request).await?;
        self.next_heartbeat = Instant::now() + self.interval;
        match response.error_code {
            0 => {}
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
                // FindCoordinator again on the next try.
                self.next_heartbeat = Instant::now() + RETRY_PAUSE;
                return Ok(Change::default());
            }
            UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH => {
                eprintln!("group {}: member {} was fenced ({}); joining again", self.group, self.member_id, error_name(response.error_code));
                let change = Change { revoked: self.owned.iter().copied().collect(), added: Vec::new(), lost: true };
                self.owned.clear();
                self.epoch = 0;
                self.joined = false;
                self.next_heartbeat = Instant::now();
                return Ok(change);
            }
            code => {
                let message = response.error_message.as_ref().map(|m| format!(": {}", m.as_str())).unwrap_or_default();
                bail!("group {}: ConsumerGroupHeartbeat failed with {}{message}", self.group, error_name(code));
            }
        }
        if let Some(id) = response.member_id.as_ref().filter(|id| !id.is_empty()) {
            self.member_id = id.to_string();
        }
        self.epoch = response.member_epoch;
        if response.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(response.heartbeat_interval_ms as u64);
            self.next_heartbeat = Instant::now() + self.interval;
        }
        if !self.joined {
            self.joined = true;
            self.joined_at = Instant::now();
        }
        let Some(assignment) = response.assignment else {
            // No assignment in the answer: it has not changed.
            return Ok(Change::default());
        };
        let target: BTreeSet<i32> = assignment.topic_partitions.iter().filter(|t| t.topic_id == self.topic_id).flat_map(|t| t.partitions.iter().copied()).collect();
        Ok(reconcile(&self.owned, &target))
    }

    /// Records that the consumer now owns `owned` and tells the coordinator (the heartbeat that
    /// acknowledges a revocation or an assignment goes out at once, as Kafka's consumers send it).
    pub async fn acknowledge(&mut self, cluster: &mut Cluster, owned: BTreeSet<i32>) -> Result<Change> {
        self.owned = owned;
        self.poll(cluster, true).await
    }

    /// Leaves the group (epoch -1): the coordinator gives the partitions to the other members at
    /// once instead of after the session timeout.
    pub async fn leave(&mut self, cluster: &mut Cluster) -> Result<()> {
        if !self.joined && self.epoch == 0 {
            return Ok(());
        }
        let response = self.send(cluster, &self.request(-1)).await?;
        match response.error_code {
            0 | UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH => Ok(()),
            code => bail!("group {}: leaving failed with {}", self.group, error_name(code)),
        }
    }
}

/// What moves from `owned` to `target`: partitions no longer assigned and those newly assigned.
fn reconcile(owned: &BTreeSet<i32>, target: &BTreeSet<i32>) -> Change {
    Change { revoked: owned.difference(target).copied().collect(), added: target.difference(owned).copied().collect(), lost: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciling_revokes_what_is_no_longer_assigned_and_adds_what_is_new() {
        let owned: BTreeSet<i32> = [0, 1, 2].into();
        let target: BTreeSet<i32> = [1, 2, 3, 4].into();
        assert_eq!(reconcile(&owned, &target), Change { revoked: vec![0], added: vec![3, 4], lost: false });
        assert_eq!(reconcile(&owned, &owned), Change::default());
        assert_eq!(reconcile(&BTreeSet::new(), &target).added, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_join_carries_the_subscription_and_a_leave_only_the_ids() {
        let id = uuid::Uuid::new_v4();
        let mut m = Member::new("g", "orders", &id.to_string()).unwrap();
        m.owned = [2, 5].into();
        let join = m.request(0);
        assert_eq!(join.member_epoch, 0);
        assert_eq!(join.rebalance_timeout_ms, REBALANCE_TIMEOUT_MS);
        assert_eq!(join.subscribed_topic_names.as_ref().map(|t| t[0].0.to_string()), Some("orders".to_string()));
        let owned = join.topic_partitions.unwrap();
        assert_eq!((owned[0].topic_id, owned[0].partitions.clone()), (id, vec![2, 5]));
        assert!(!join.member_id.is_empty(), "v1 needs the client's member id");
        m.owned.clear();
        assert!(m.request(0).topic_partitions.unwrap().is_empty(), "a join lists no topic");
        let leave = m.request(-1);
        assert_eq!((leave.member_epoch, leave.subscribed_topic_names, leave.topic_partitions), (-1, None, None));
        assert!(Member::new("g", "orders", "not-a-uuid").is_err());
    }
}
