//! ISR changes a leader asks the controller for (Kafka's AlterPartition): a follower that caught
//! up joins, one behind for longer than `replica.lag.time.max.ms` leaves. The leader keeps its
//! current ISR until the controller's decision comes back through the metadata log (the
//! publisher then applies it, and the high watermark may move); one request per partition is in
//! flight at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, BrokerId};

// Sent at version 3 (the controller listener serves 2-3): the ISR with each member's broker epoch.

use super::Broker;
use super::cluster::{ClusterState, NOT_CONTROLLER};
use super::partition::Partition;
use crate::types::TopicPartition;

/// Partitions with an AlterPartition in flight.
#[derive(Default)]
pub struct PendingIsr(Mutex<HashSet<TopicPartition>>);

/// Whether every replica `isr` adds to `current` may join an ISR as the image knows it:
/// registered, unfenced, not shutting down (Kafka's `isReplicaIsrEligible`). The controller
/// refuses anything else with INELIGIBLE_REPLICA, so asking only makes load: a caught-up
/// follower whose broker was still fenced after a restart had its leaders ask on every fetch,
/// 68k refused AlterPartitions in the checker's 18-minute run.
pub fn joiners_eligible(image: &crate::metadata::MetadataImage, current: &[i32], isr: &[i32]) -> bool {
    isr.iter().filter(|id| !current.contains(id)).all(|&id| image.broker(id).is_some_and(|b| b.is_active()))
}

/// Asks the controller to set `tp`'s ISR to `isr` (if no request for it is in flight).
pub fn propose(broker: &Broker, tp: &TopicPartition, isr: Vec<i32>) {
    let Some(cluster) = broker.cluster.clone() else { return };
    let Some(partition) = broker.replicas.partition(tp) else { return };
    if !joiners_eligible(&cluster.image(), &partition.leader_and_isr().isr, &isr) {
        return;
    }
    if !cluster.pending_isr.0.lock().unwrap_or_else(|e| e.into_inner()).insert(tp.clone()) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        cluster.pending_isr.0.lock().unwrap_or_else(|e| e.into_inner()).remove(tp);
        return;
    };
    let (node_id, tp) = (broker.config.node_id, tp.clone());
    runtime.spawn(async move {
        send(node_id, &partition, &cluster, &tp, isr).await;
        cluster.pending_isr.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&tp);
    });
}

async fn send(node_id: i32, partition: &Partition, cluster: &ClusterState, tp: &TopicPartition, isr: Vec<i32>) {
    let state = partition.leader_and_isr();
    let image = cluster.image();
    let Some(topic) = image.topic_by_name(&tp.topic) else { return };
    let with_epochs = isr
        .iter()
        .map(|&id| BrokerState::default().with_broker_id(BrokerId(id)).with_broker_epoch(image.broker(id).map_or(-1, |b| b.epoch)))
        .collect();
    let data = PartitionData::default()
        .with_partition_index(tp.partition)
        .with_leader_epoch(state.leader_epoch)
        .with_new_isr_with_epochs(with_epochs)
        .with_partition_epoch(state.partition_epoch);
    let request = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(node_id))
        .with_broker_epoch(cluster.broker_epoch())
        .with_topics(vec![TopicData::default().with_topic_id(topic.id).with_partitions(vec![data])]);
    match cluster.controllers.send(&request).await {
        Ok(r) if r.error_code == NOT_CONTROLLER => cluster.controllers.not_controller().await,
        Ok(r) if r.error_code != 0 => tracing::warn!(partition = %tp, error_code = r.error_code, "AlterPartition refused"),
        Ok(r) => {
            let code = r.topics.first().and_then(|t| t.partitions.first()).map_or(0, |p| p.error_code);
            if code == 0 {
                tracing::info!(partition = %tp, from = ?state.isr, to = ?isr, "ISR changed");
            } else {
                tracing::info!(partition = %tp, error_code = code, ?isr, "ISR change refused");
            }
        }
        Err(e) => tracing::debug!(partition = %tp, error = %e, "AlterPartition not sent"),
    }
}

/// Shrinks the ISR of every led partition with a lagging follower, every half
/// `replica.lag.time.max.ms` (Kafka checks at that period too), until shutdown.
pub async fn run_shrinker(broker: Arc<Broker>) {
    let lag = broker.config.replication.lag_time_max_ms;
    let mut tick = tokio::time::interval(Duration::from_millis((lag / 2).max(50) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::raft::transport::stopped(&mut stop) => return,
        }
        for (tp, isr) in broker.replicas.isr_shrinks(super::replica_manager::now_ms(), lag) {
            propose(&broker, &tp, isr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::tests::register;

    #[test]
    fn only_active_brokers_are_proposed_to_join() {
        let mut image = crate::controller::test_support::cluster(2, &[]);
        image.apply(&register(3, 103, None, true)).unwrap(); // registered, still fenced
        assert!(joiners_eligible(&image, &[1], &[1, 2]));
        assert!(!joiners_eligible(&image, &[1, 2], &[1, 2, 3]), "a fenced broker does not join");
        assert!(!joiners_eligible(&image, &[1], &[1, 4]), "an unregistered broker does not join");
        // Shrinking asks nothing of the members that stay.
        assert!(joiners_eligible(&image, &[1, 2, 3], &[1, 2]));
    }
}
