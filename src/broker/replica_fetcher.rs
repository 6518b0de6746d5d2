//! Followers copy their leaders' logs, as Kafka's replica fetcher threads do: one task per leader
//! broker fetches every partition this broker follows there, in one Fetch request naming this
//! broker as the replica (so the leader records its progress and moves the high watermark). Before
//! fetching a partition it first asks the leader, with OffsetForLeaderEpoch, where its own latest
//! leader epoch ended, and cuts a divergent tail (KIP-101/279). Appends run on the request
//! handler threads; waiting happens on the leader (replica.fetch.wait.max.ms), never here.
//! A partition its topic lists in `follower.replication.throttled.replicas` for this broker is left
//! out of the fetch while `follower.replication.throttled.rate` is exceeded, unless it is caught
//! up with the leader's high watermark (Kafka's `shouldFollowerThrottle`): throttles bound
//! catch-up traffic, never in-sync replication.

use std::collections::{BTreeMap, HashMap};
use crate::client::PeerAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::partition::PartitionError;
use super::replica_manager::ReplicaError;
use super::Broker;
use crate::client::{BrokerClient, ClientConfig};
use crate::types::TopicPartition;

/// A partition this broker follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Followed {
    pub topic_id: Uuid,
    /// The leader epoch this broker follows it in (sent as current_leader_epoch).
    pub leader_epoch: i32,
    /// Whether the log may hold a tail the leader does not have (just became a follower, or the
    /// leader answered OFFSET_OUT_OF_RANGE): settled with OffsetForLeaderEpoch before fetching.
    pub needs_truncation: bool,
    /// How far the log was behind the leader's high watermark after the last fetch that brought
    /// records (Kafka's fetch state lag); None until then in this leader epoch. Caught up (0) is
    /// in sync: the follower throttle never holds it back.
    pub lag: Option<i64>,
}

impl Followed {
    fn is_in_sync(&self) -> bool {
        self.lag.is_some_and(|l| l <= 0)
    }
}

/// One leader's fetcher: the partitions it copies and the task copying them.
struct Fetcher {
    addr: PeerAddr,
    partitions: Arc<Mutex<BTreeMap<TopicPartition, Followed>>>,
    changed: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Every fetcher of this broker, by leader id.
#[derive(Default)]
pub struct ReplicaFetchers {
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl ReplicaFetchers {
    /// Starts (or moves) copying `tp` from `leader` at `addr`, in `leader_epoch`. The log may
    /// hold a divergent tail: it is checked against the leader before the first fetch.
    pub fn follow(&self, broker: &Arc<Broker>, tp: TopicPartition, topic_id: Uuid, leader: i32, addr: PeerAddr, leader_epoch: i32) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        for (id, f) in fetchers.iter() {
            if *id != leader && f.partitions.lock().unwrap_or_else(|e| e.into_inner()).remove(&tp).is_some() {
                f.changed.notify_one();
            }
        }
        if fetchers.get(&leader).is_some_and(|f| f.addr != addr || f.task.is_finished()) {
            if let Some(old) = fetchers.remove(&leader) {
                old.task.abort();
            }
        }
        let f = fetchers.entry(leader).or_insert_with(|| {
            let partitions = Arc::new(Mutex::new(BTreeMap::new()));
            let changed = Arc::new(Notify::new());
            let task = tokio::spawn(run(broker.clone(), leader, addr.clone(), partitions.clone(), changed.clone()));
            Fetcher { addr, partitions, changed, task }
        });
        let mut partitions = f.partitions.lock().unwrap_or_else(|e| e.into_inner());
        // The lag is known again only after a fetch in a new epoch, as Kafka's fetcher keeps it.
        let lag = partitions.get(&tp).filter(|old| old.leader_epoch == leader_epoch).and_then(|old| old.lag);
        partitions.insert(tp, Followed { topic_id, leader_epoch, needs_truncation: true, lag });
        drop(partitions);
        f.changed.notify_one();
    }

    /// Stops copying `tp` (this broker leads it now, or no longer holds a replica).
    pub fn unfollow(&self, tp: &TopicPartition) {
        let fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        for f in fetchers.values() {
            if f.partitions.lock().unwrap_or_else(|e| e.into_inner()).remove(tp).is_some() {
                f.changed.notify_one();
            }
        }
    }

    /// The partitions followed, with their leader ids.
    pub fn followed(&self) -> Vec<(TopicPartition, i32)> {
        let fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (leader, f) in fetchers.iter() {
            out.extend(f.partitions.lock().unwrap_or_else(|e| e.into_inner()).keys().map(|tp| (tp.clone(), *leader)));
        }
        out
    }

    /// Stops every fetcher (shutdown).
    pub fn stop(&self) {
        for (_, f) in self.fetchers.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            f.task.abort();
        }
    }
}

/// One leader's fetch loop: connect, settle truncation, fetch, append; back off on errors.
async fn run(broker: Arc<Broker>, leader: i32, peer: PeerAddr, partitions: Arc<Mutex<BTreeMap<TopicPartition, Followed>>>, changed: Arc<Notify>) {
    let cfg = broker.config.replication.clone();
    let backoff = Duration::from_millis(cfg.fetch_backoff_ms.max(10));
    let local = broker.config.node_id;
    let client_config = ClientConfig {
        client_id: format!("broker-{local}-fetcher-0"),
        connect_timeout: Duration::from_millis(cfg.socket_timeout_ms),
        // The leader may hold the fetch for replica.fetch.wait.max.ms before answering.
        request_timeout: Duration::from_millis(cfg.socket_timeout_ms + cfg.fetch_wait_max_ms as u64),
        max_response_bytes: (cfg.fetch_response_max_bytes as usize).saturating_add(cfg.fetch_max_bytes as usize).saturating_add(1 << 20),
        tls: broker.cluster.as_ref().and_then(|c| c.inter_broker_tls()),
        tls_server_name: Some(peer.host.clone()),
        sasl: broker.cluster.as_ref().and_then(|c| c.inter_broker_sasl()),
    };
    let addr = peer.addr;
    let mut client: Option<BrokerClient> = None;
    let mut shutdown = broker.shutdown_signal();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let wanted: Vec<(TopicPartition, Followed)> = partitions.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(tp, f)| (tp.clone(), f.clone())).collect();
        if wanted.is_empty() {
            tokio::select! {
                _ = changed.notified() => continue,
                _ = shutdown.changed() => return,
            }
        }
        let c = match &client {
            Some(c) if !c.is_closed() => c,
            _ => match BrokerClient::connect(addr, client_config.clone()).await {
                Ok(c) => client.insert(c),
                Err(e) => {
                    // A failed login is logged once per peer by the client, not every backoff.
                    if !matches!(e, crate::client::ClientError::Authentication { .. }) {
                        tracing::warn!(leader, %addr, error = %e, "replica fetcher cannot reach the leader; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
        };
        let progressed = match fetch_once(&broker, c, local, &wanted, &partitions).await {
            Ok(progressed) => progressed,
            Err(e) => {
                tracing::warn!(leader, %addr, error = %e, "replica fetch failed; retrying");
                client = None;
                false
            }
        };
        if !progressed {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = changed.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Truncation for the partitions that need it, then one Fetch. Returns whether any partition
/// got an answer it could act on (else the caller backs off).
async fn fetch_once(broker: &Arc<Broker>, client: &BrokerClient, local: i32, wanted: &[(TopicPartition, Followed)], partitions: &Mutex<BTreeMap<TopicPartition, Followed>>) -> Result<bool, crate::client::ClientError> {
    let cfg = &broker.config.replication;
    let truncating: Vec<&(TopicPartition, Followed)> = wanted.iter().filter(|(_, f)| f.needs_truncation).collect();
    if !truncating.is_empty() {
        truncate_divergent(broker, client, local, &truncating, partitions).await?;
    }
    let mut positions = Vec::new();
    for (tp, f) in wanted.iter().filter(|(_, f)| !f.needs_truncation) {
        if follower_throttled(broker, tp) && !f.is_in_sync() && broker.follower_quota.is_exceeded() {
            continue;
        }
        let b = broker.clone();
        let t = tp.clone();
        match broker.io_pool.run(move || b.replicas.follower_position(&t)).await {
            Ok((end, start, _)) => positions.push((tp, f, end, start)),
            Err(e) => tracing::warn!(partition = %tp, error = %e, "followed partition has no usable log"),
        }
    }
    if positions.is_empty() {
        return Ok(!truncating.is_empty());
    }
    // Fields a version does not have must keep their defaults, or encoding fails: topics by id
    // from v13 (by name before), the replica in replica_state from v15 (replica_id before).
    let version = client.version_for::<FetchRequest>()?;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (tp, f, end, start) in &positions {
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(*end)
            .with_log_start_offset(*start)
            .with_partition_max_bytes(cfg.fetch_max_bytes);
        let same = |t: &FetchTopic| if version >= 13 { t.topic_id == f.topic_id } else { t.topic.0.as_str() == tp.topic };
        match topics.iter_mut().find(|t| same(t)) {
            Some(t) => t.partitions.push(partition),
            None if version >= 13 => topics.push(FetchTopic::default().with_topic_id(f.topic_id).with_partitions(vec![partition])),
            None => topics.push(FetchTopic::default().with_topic(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![partition])),
        }
    }
    let mut request = FetchRequest::default()
        .with_max_wait_ms(cfg.fetch_wait_max_ms)
        .with_min_bytes(cfg.fetch_min_bytes)
        .with_max_bytes(cfg.fetch_response_max_bytes)
        .with_topics(topics);
    if version >= 15 {
        request.replica_state = ReplicaState::default().with_replica_id(BrokerId(local)).with_replica_epoch(-1);
    } else {
        request.replica_id = BrokerId(local);
    }
    let response = client.send_version(&request, version).await?;
    if response.error_code != 0 {
        tracing::warn!(error_code = response.error_code, "the leader refused a replica fetch");
        return Ok(false);
    }
    let mut progressed = false;
    for t in response.responses {
        for p in t.partitions {
            let Some((tp, f, _, _)) = positions.iter().find(|(tp, f, _, _)| tp.partition == p.partition_index && (f.topic_id == t.topic_id || tp.topic == t.topic.0.as_str())) else {
                continue;
            };
            let tp = (*tp).clone();
            let epoch = f.leader_epoch;
            match p.error_code {
                0 => {
                    let records = p.records.unwrap_or_default();
                    let bytes = records.len() as u64;
                    let b = broker.clone();
                    let t = tp.clone();
                    let hw = p.high_watermark;
                    match broker.io_pool.run(move || b.replicas.append_as_follower(&t, epoch, &records, hw)).await {
                        Ok(end) => {
                            progressed = true;
                            // Throttled partitions' bytes count, in-sync ones' too (Kafka's
                            // processPartitionData records them all).
                            if follower_throttled(broker, &tp) {
                                broker.follower_quota.record(bytes);
                            }
                            if (bytes > 0 || f.lag.is_none())
                                && let Some(state) = partitions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&tp)
                                && state.leader_epoch == epoch
                            {
                                state.lag = Some((hw - end).max(0));
                            }
                        }
                        // Followed in another epoch (or led) by now: the publisher's change wins.
                        Err(ReplicaError::Partition(PartitionError::FencedLeaderEpoch | PartitionError::NotLeaderOrFollower)) => progressed = true,
                        Err(e) => {
                            if let Some(left_out) = crate::fault_log::FOLLOWER_APPEND_FAULTS.allow(std::time::Instant::now(), crate::fault_log::FAULT_LOG_INTERVAL) {
                                tracing::warn!(partition = %tp, error = %e, similar_left_out = left_out, "follower append failed");
                            }
                        }
                    }
                }
                code if code == E::OffsetOutOfRange.code() => {
                    // The leader's log ends before ours (or starts after it): settle it with
                    // OffsetForLeaderEpoch before the next fetch.
                    if let Some(f) = partitions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&tp) {
                        f.needs_truncation = true;
                    }
                    progressed = true;
                }
                code => tracing::debug!(partition = %tp, error_code = code, "leader refused the partition's fetch; waiting for new metadata"),
            }
        }
    }
    Ok(progressed)
}

/// Whether the topic's `follower.replication.throttled.replicas` names `tp` on this broker.
fn follower_throttled(broker: &Broker, tp: &TopicPartition) -> bool {
    broker.metadata.topic(&tp.topic).is_some_and(|m| m.settings.follower_throttled.contains(tp.partition))
}

/// Asks the leader where this log's latest epoch ended and cuts what lies past it (a tail the
/// old leader wrote that the new one never had), in as many rounds as it takes to agree on an
/// epoch (see [`crate::storage::leader_epoch::LeaderEpochCache::divergence`]).
async fn truncate_divergent(broker: &Arc<Broker>, client: &BrokerClient, local: i32, truncating: &[&(TopicPartition, Followed)], partitions: &Mutex<BTreeMap<TopicPartition, Followed>>) -> Result<(), crate::client::ClientError> {
    let mut asks = Vec::new();
    for (tp, f) in truncating {
        let b = broker.clone();
        let t = tp.clone();
        if let Ok((end, _, epoch)) = broker.io_pool.run(move || b.replicas.follower_position(&t)).await {
            asks.push((tp, f, end, epoch));
        }
    }
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for (tp, f, _, epoch) in &asks {
        let partition = OffsetForLeaderPartition::default().with_partition(tp.partition).with_current_leader_epoch(f.leader_epoch).with_leader_epoch(epoch.unwrap_or(-1));
        match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(OffsetForLeaderTopic::default().with_topic(TopicName(StrBytes::from_string(tp.topic.clone()))).with_partitions(vec![partition])),
        }
    }
    if topics.is_empty() {
        return Ok(());
    }
    let response = client.send(&OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(local)).with_topics(topics)).await?;
    for t in response.topics {
        for p in t.partitions {
            let Some((tp, f, end, epoch)) = asks.iter().find(|(tp, _, _, _)| tp.topic == t.topic.0.as_str() && tp.partition == p.partition) else {
                continue;
            };
            if p.error_code != 0 {
                tracing::debug!(partition = %tp, error_code = p.error_code, "leader refused OffsetForLeaderEpoch; retrying later");
                continue;
            }
            let b = broker.clone();
            let t = (*tp).clone();
            let (followed_epoch, answer_epoch, answer_end) = (f.leader_epoch, p.leader_epoch, p.end_offset);
            match broker.io_pool.run(move || b.replicas.truncate_divergent(&t, followed_epoch, answer_epoch, answer_end)).await {
                Ok(decision) => {
                    if let Some(offset) = decision.truncate_to {
                        tracing::info!(partition = %tp, local_end = end, local_epoch = ?epoch, answer_epoch, answer_end, truncated_to = offset, "truncated a follower's divergent tail");
                    }
                    if decision.complete
                        && let Some(f) = partitions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(*tp)
                        && f.leader_epoch == followed_epoch
                    {
                        f.needs_truncation = false;
                    }
                }
                // Followed in another epoch (or led) by now: the publisher's change wins.
                Err(ReplicaError::Partition(PartitionError::FencedLeaderEpoch | PartitionError::NotLeaderOrFollower)) => {}
                Err(e) => tracing::warn!(partition = %tp, error = %e, "follower truncation failed"),
            }
        }
    }
    Ok(())
}
