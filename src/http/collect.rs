//! What a scrape reads from the broker: each partition's log bounds and replication state, the
//! groups and their committed offsets, the io_uring counters, the process. Each partition's lock
//! is held only to copy a few numbers; run it on a thread that may block (a log lock may be
//! held by an append writing to the disk).

use crate::broker::Broker;
use crate::metrics::{PartitionView, Snapshot};

/// A snapshot of the broker's state for one scrape.
pub fn snapshot(broker: &Broker) -> Snapshot {
    let mut partitions: Vec<PartitionView> = Vec::new();
    for (tp, partition) in broker.replicas.all_partitions() {
        let state = partition.leader_and_isr();
        let logs = broker.replicas.logs();
        let offline = state.leader < 0 || logs.offline_error(&tp).is_some();
        let mut view = PartitionView {
            topic: tp.topic.clone(),
            partition: tp.partition,
            under_replicated: state.leader == broker.config.node_id && state.isr.len() < state.replicas.len(),
            offline,
            ..PartitionView::default()
        };
        if let Some(log) = logs.get(&tp).filter(|_| logs.offline_error(&tp).is_none()) {
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            view.size_bytes = log.size_bytes();
            view.log_start_offset = log.log_start_offset();
            view.log_end_offset = log.log_end_offset();
            view.high_watermark = log.high_watermark();
        }
        partitions.push(view);
    }
    partitions.sort_by(|a, b| (a.topic.as_str(), a.partition).cmp(&(b.topic.as_str(), b.partition)));
    let uring = broker.replicas.backend().uring_stats.as_ref().map(|s| s.snapshot());
    let client_telemetry = broker.telemetry_receiver.as_ref().map(|r| r.series()).unwrap_or_default();
    let replication_byte_rates = [broker.leader_quota.byte_rate(), broker.follower_quota.byte_rate()];
    Snapshot { partitions, groups: broker.groups.groups_for_metrics(), uring, process: crate::metrics::process::read(), quorum: None, client_telemetry, replication_byte_rates }
}
