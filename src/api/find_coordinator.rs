//! FindCoordinator: this single node coordinates every group (key type 0) and every
//! transactional id (key type 1). As in Kafka, the first lookup creates the coordinator's internal
//! topic (`__consumer_offsets` or `__transaction_state`), so the group's first SyncGroup or the
//! transaction's first state write does not wait for fifty partitions to be created; a creation
//! that fails is COORDINATOR_NOT_AVAILABLE, which clients retry, and so is a key whose internal
//! partition is in an offline log dir.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::txn::TRANSACTION_STATE_TOPIC;

/// (error code, node id, host, port) for one key, given whether the internal topic exists. A key
/// whose internal partition is in an offline log dir has no coordinator: Kafka hands out none for
/// a partition without a leader (COORDINATOR_NOT_AVAILABLE), so clients back off and retry
/// instead of sending their writes to a dead partition (which would answer NOT_COORDINATOR).
fn locate(broker: &Broker, key_type: i8, key: &str, topic_ready: bool, listener: &str) -> (i16, i32, String, i32) {
    let unavailable = (E::CoordinatorNotAvailable.code(), -1, String::new(), -1);
    let topic = match key_type {
        0 => OFFSETS_TOPIC,
        1 => TRANSACTION_STATE_TOPIC,
        _ => return (E::InvalidRequest.code(), -1, String::new(), -1),
    };
    if !topic_ready {
        return unavailable;
    }
    if broker.cluster.is_some() {
        // The coordinator is the leader of the key's partition, wherever it is.
        let Some(meta) = broker.metadata.topic(topic) else { return unavailable };
        let partition = crate::records::internal::partition_for(key, meta.partitions);
        return match broker.cluster_partition(topic, partition).filter(|s| s.leader >= 0).and_then(|s| Some((s.leader, broker.broker_endpoint_on(s.leader, listener)?))) {
            Some((leader, (host, port))) => (0, leader, host, port as i32),
            None => unavailable,
        };
    }
    if broker.coordinator_partition_offline(topic, key) {
        return unavailable;
    }
    match broker.broker_endpoint_on(broker.config.node_id, listener) {
        Some((host, port)) => (0, broker.config.node_id, host, port as i32),
        None => unavailable,
    }
}

/// Creates the internal topic behind `key_type` if it is missing (off the tokio worker: it is
/// fifty partitions' files and fsyncs). True when it exists; other key types answer true here and
/// are refused by `locate`.
async fn ensure_internal_topic(broker: &Arc<Broker>, key_type: i8) -> bool {
    let (topic, ensure): (&str, fn(&Broker) -> Result<(), String>) = match key_type {
        0 => (OFFSETS_TOPIC, Broker::ensure_offsets_topic),
        1 => (TRANSACTION_STATE_TOPIC, Broker::ensure_txn_topic),
        _ => return true,
    };
    // Every lookup after the first: no blocking task.
    if broker.metadata.topic(topic).is_some() {
        return true;
    }
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || ensure(&b)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(key_type, error = %e, "cannot create the coordinator's internal topic");
            false
        }
        Err(e) => {
            tracing::warn!(key_type, error = %e, "creating the coordinator's internal topic panicked");
            false
        }
    }
}

/// The coordinator's endpoint is the one on `listener`, the listener the request arrived on.
pub async fn handle(broker: &Arc<Broker>, req: FindCoordinatorRequest, version: i16, listener: &str) -> FindCoordinatorResponse {
    let key_type = if version >= 1 { req.key_type } else { 0 };
    let ready = ensure_internal_topic(broker, key_type).await;
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key: StrBytes| {
                let (code, node, host, port) = locate(broker, key_type, &key, ready, listener);
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(None)
            })
            .collect();
        return FindCoordinatorResponse::default().with_error_message(None).with_coordinators(coordinators);
    }
    let (code, node, host, port) = locate(broker, key_type, &req.key, ready, listener);
    FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_error_message(None)
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port)
}
