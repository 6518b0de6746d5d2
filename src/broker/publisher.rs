//! The metadata publisher of a broker in a quorum: each time the node applies metadata, the
//! broker catches up with it — the dynamic broker configs (cluster default and its own), topics
//! (names, ids, partition counts, configs) into the local topic table, then what this node must
//! lead, follow or delete (`metadata::local_changes`): logs created, leader and follower states
//! set, fetchers started and stopped. Kafka's
//! BrokerMetadataPublisher / ReplicaManager.applyDelta. Runs on a request handler thread: it
//! creates and deletes logs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Broker;
use super::cluster::ClusterState;
use super::metadata::TopicMeta;
use super::partition::{LeaderAndIsr, NO_LEADER};
use crate::metadata::records::ConfigResourceType;
use crate::metadata::{ConfigResource, CoordinatorKind, MetadataImage, local_changes};
use crate::types::TopicPartition;

/// Follows the applied metadata until shutdown.
pub async fn run(broker: Arc<Broker>, cluster: Arc<ClusterState>) {
    let mut applied = cluster.subscribe();
    let mut stop = broker.shutdown_signal();
    // A starting node replays the metadata log from its start (or a wiped one from nothing):
    // the images on the way are the past, and acting on them would make it lead partitions it
    // led long ago, with whatever its log holds. As Kafka's broker, it publishes nothing until
    // the controller says it has caught up (its applied offset reached its registration).
    tokio::select! {
        _ = cluster.wait_caught_up() => {}
        _ = crate::raft::transport::stopped(&mut stop) => return,
    }
    let mut published = Arc::new(MetadataImage::new());
    loop {
        let next = cluster.image();
        if next.offset != published.offset {
            let (b, prev, n) = (broker.clone(), published.clone(), next.clone());
            broker.io_pool.run(move || publish(&b, &prev, &n)).await;
            // The groups' committed offsets of deleted topics go, off this loop: the tombstones
            // wait for the offsets partitions' replicas, which may wait for the next image.
            let deleted: Vec<String> = published.topics().filter(|t| next.topic_by_id(t.id).is_none()).map(|t| t.name.clone()).collect();
            if !deleted.is_empty() {
                let b = broker.clone();
                tokio::spawn(async move {
                    let b2 = b.clone();
                    b.io_pool.run(move || b2.groups.on_topics_deleted(&*b2, &deleted)).await;
                });
            }
            published = next;
        }
        // The first pass after the catch-up: the node's client listener may start serving.
        cluster.set_published();
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = crate::raft::transport::stopped(&mut stop) => return,
        }
    }
}

/// Brings the broker from `prev` to `next`.
pub fn publish(broker: &Arc<Broker>, prev: &MetadataImage, next: &MetadataImage) {
    // The dynamic broker configs first: the topics made or reconfigured below inherit them.
    broker.follow_dynamic_configs(dynamic_broker_configs(next, broker.config.node_id));
    sync_topics(broker, next);
    if prev.scram_credentials() != next.scram_credentials() || prev.offset == 0 {
        // SASL listeners authenticate with the metadata log's SCRAM credentials.
        broker.scram.follow(next.scram_credentials());
    }
    // Client quotas too are the metadata log's (a no-op when unchanged).
    broker.quotas.follow(next.client_quotas());
    // And the KIP-714 client metrics subscriptions: every broker answers telemetry requests from
    // the same set.
    broker.client_metrics.follow(
        next.all_configs()
            .iter()
            .filter(|(r, configs)| r.resource_type == ConfigResourceType::ClientMetrics && !configs.is_empty())
            .map(|(r, configs)| (r.name.clone(), configs.clone()))
            .collect(),
    );
    if let Some(authorizer) = &broker.authorizer
        && (!prev.acls_unchanged(next) || prev.offset == 0)
    {
        // And the ACLs: every broker authorizes with the same set. This first pass runs before
        // the client listeners serve, so no request is decided on an empty set (Kafka's
        // AUTHORIZER_NOT_READY until the ACLs are loaded).
        authorizer.follow(crate::broker::acl::bindings_by_id(next.acls()).into_keys().collect());
    }
    let node = broker.config.node_id;
    let changes = local_changes(prev, next, node);
    if changes.is_empty() {
        return;
    }
    let now = super::replica_manager::now_ms();
    for d in &changes.deletes {
        broker.fetchers.unfollow(&d.topic_partition);
        match broker.replicas.delete_partition(&d.topic_partition) {
            Ok(()) | Err(crate::storage::StorageError::UnknownPartition(_)) => {}
            Err(e) => tracing::warn!(partition = %d.topic_partition, error = %e, "could not delete the replica's log"),
        }
    }
    for l in &changes.leaders {
        let tp = &l.topic_partition;
        if !ensure_log(broker, tp) {
            continue;
        }
        broker.fetchers.unfollow(tp);
        // A coordinator partition's state is loaded before it is led: until then its groups and
        // transactional ids answer NOT_COORDINATOR and clients look for the coordinator again.
        if let Some(load) = changes.coordinators_to_load.iter().find(|c| c.partition == tp.partition && c.newly_elected && kind_topic(c.kind) == tp.topic) {
            load_coordinator(broker, load.kind, load.partition);
        }
        let state = LeaderAndIsr { leader: node, leader_epoch: l.leader_epoch, partition_epoch: l.partition_epoch, replicas: l.replicas.clone(), isr: l.isr.clone() };
        match broker.replicas.become_leader(tp, state, now) {
            Ok(()) => tracing::info!(partition = %tp, epoch = l.leader_epoch, isr = ?l.isr, "leading"),
            Err(e) => tracing::warn!(partition = %tp, error = %e, "could not become leader"),
        }
    }
    for f in &changes.followers {
        let tp = &f.topic_partition;
        if !ensure_log(broker, tp) {
            continue;
        }
        let isr = next.partition(f.topic_id, tp.partition).map(|p| p.isr.clone()).unwrap_or_default();
        let state = LeaderAndIsr { leader: f.leader_id, leader_epoch: f.leader_epoch, partition_epoch: f.partition_epoch, replicas: f.replicas.clone(), isr };
        if let Err(e) = broker.replicas.become_follower(tp, state) {
            tracing::warn!(partition = %tp, error = %e, "could not become follower");
            continue;
        }
        match (f.leader_id != NO_LEADER).then(|| leader_addr(broker, f.leader_id)).flatten() {
            Some(addr) => {
                broker.fetchers.follow(broker, tp.clone(), f.topic_id, f.leader_id, addr, f.leader_epoch);
                tracing::info!(partition = %tp, leader = f.leader_id, epoch = f.leader_epoch, "following");
            }
            None => broker.fetchers.unfollow(tp),
        }
    }
    for c in &changes.coordinators_to_unload {
        let partitions = broker.metadata.topic(kind_topic(c.kind)).map_or(1, |t| t.partitions);
        match c.kind {
            CoordinatorKind::Group => broker.groups.unload_partition(partitions, c.partition),
            CoordinatorKind::Transaction => broker.txns.unload_partition(partitions, c.partition),
        }
        tracing::info!(kind = ?c.kind, partition = c.partition, "coordinator state unloaded: another broker leads the partition");
    }
}

/// This broker's dynamic configs as the metadata log holds them: the BROKER "" resource (the
/// cluster default) and the BROKER "<node.id>" one (this broker's own), as Kafka's
/// DynamicConfigPublisher reads them. Other brokers' resources are theirs alone.
pub fn dynamic_broker_configs(image: &MetadataImage, node_id: i32) -> crate::config::DynamicBrokerConfigs {
    let read = |name: String| image.configs(&ConfigResource::broker(name)).cloned().unwrap_or_default();
    crate::config::DynamicBrokerConfigs { per_broker: read(node_id.to_string()), cluster_default: read(String::new()) }
}

fn kind_topic(kind: CoordinatorKind) -> &'static str {
    match kind {
        CoordinatorKind::Group => crate::group::OFFSETS_TOPIC,
        CoordinatorKind::Transaction => crate::txn::TRANSACTION_STATE_TOPIC,
    }
}

/// Replays one internal partition's coordinator state from the local log.
fn load_coordinator(broker: &Arc<Broker>, kind: CoordinatorKind, partition: i32) {
    let started = std::time::Instant::now();
    let loaded = match kind {
        CoordinatorKind::Group => broker.groups.load_partition(&**broker, partition),
        CoordinatorKind::Transaction => broker.txns.load_partition(&**broker, partition),
    };
    match loaded {
        Ok(n) => tracing::info!(kind = ?kind, partition, records = n, elapsed_ms = started.elapsed().as_millis() as u64, "coordinator state loaded"),
        Err(e) => tracing::error!(kind = ?kind, partition, error = %e, "coordinator state could not be loaded"),
    }
}

/// The topic table follows the image: topics made (with the image's ids), grown, reconfigured
/// and removed. Logs are not touched here: only replicas have logs.
fn sync_topics(broker: &Broker, next: &MetadataImage) {
    for meta in broker.metadata.topics() {
        if next.topic_by_id(meta.id).is_none() {
            if let Err(e) = broker.metadata.delete_topic(&meta.name) {
                tracing::warn!(topic = %meta.name, error = %e, "could not remove a deleted topic");
            }
        }
    }
    for topic in next.topics() {
        let configs: BTreeMap<String, String> = next.configs(&ConfigResource::topic(topic.name.clone())).cloned().unwrap_or_default();
        let partitions = topic.partitions.len() as i32;
        let current = broker.metadata.topic_by_id(topic.id);
        if current.as_ref().is_some_and(|m| m.partitions == partitions && m.configs == configs) {
            continue;
        }
        let settings = match broker.config.topic_settings(&configs) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(topic = %topic.name, error = %e, "topic configs from the metadata log do not parse; broker defaults used");
                broker.config.topic_settings(&BTreeMap::new()).unwrap_or_default()
            }
        };
        let meta = TopicMeta { name: topic.name.clone(), id: topic.id, partitions, configs: configs.clone(), settings };
        if let Err(e) = broker.metadata.put_topic(meta) {
            tracing::warn!(topic = %topic.name, error = %e, "could not record a topic from the metadata log");
            continue;
        }
        // Also for a topic new to the table: a restarted node may hold its replica's log already,
        // opened with the static defaults before the dynamic ones were known.
        if let Ok(log_config) = broker.config.log_config(&configs) {
            for p in 0..partitions {
                let tp = TopicPartition::new(topic.name.clone(), p);
                if broker.replicas.logs().get(&tp).is_some() {
                    let _ = broker.replicas.logs().update_config(&tp, log_config.clone());
                }
            }
        }
    }
}

/// The replica's log exists (made empty with the topic's settings when new); false when it
/// cannot be made (logged).
fn ensure_log(broker: &Broker, tp: &TopicPartition) -> bool {
    if broker.replicas.partition(tp).is_some() {
        return true;
    }
    let configs = broker.metadata.topic(&tp.topic).map(|t| t.configs.clone()).unwrap_or_default();
    let made = broker
        .config
        .log_config(&configs)
        .map_err(|e| e.to_string())
        .and_then(|c| broker.replicas.create_partition(tp, c).map_err(|e| e.to_string()));
    match made {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(partition = %tp, error = %e, "could not create the replica's log");
            false
        }
    }
}

/// Where followers reach `leader`: its endpoint on the inter-broker listener.
fn leader_addr(broker: &Broker, leader: i32) -> Option<crate::client::PeerAddr> {
    broker.cluster.as_ref()?.broker_addr(leader, broker.config.topology.inter_broker_listener_name.as_deref())
}
