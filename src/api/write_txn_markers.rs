//! WriteTxnMarkers: a transaction coordinator on another broker ends a transaction on the
//! partitions led here. Each marker is appended as the coordinator's own would be; a partition
//! not led here answers NOT_LEADER_OR_FOLLOWER (the coordinator finds the leader again), an
//! unknown one UNKNOWN_TOPIC_OR_PARTITION (skipped, as for a deleted topic).

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::Broker;
use crate::txn::MarkerError;
use crate::types::TopicPartition;

pub async fn handle(broker: &Arc<Broker>, req: WriteTxnMarkersRequest, _version: i16) -> WriteTxnMarkersResponse {
    let markers = req
        .markers
        .into_iter()
        .map(|m| {
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&p| {
                            let tp = TopicPartition::new(t.name.0.to_string(), p);
                            let code = if !broker.partition_exists(&tp) {
                                E::UnknownTopicOrPartition.code()
                            } else if !broker.replicas.partition(&tp).is_some_and(|part| part.lock().is_leader()) {
                                E::NotLeaderOrFollower.code()
                            } else {
                                match broker.append_local_marker(&tp, m.producer_id.0, m.producer_epoch, m.transaction_result) {
                                    Ok(()) => 0,
                                    Err(MarkerError::UnknownPartition) => E::UnknownTopicOrPartition.code(),
                                    Err(MarkerError::Failed(e)) => {
                                        tracing::warn!(partition = %tp, error = %e, "transaction marker not appended");
                                        E::KafkaStorageError.code()
                                    }
                                }
                            };
                            WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default().with_producer_id(m.producer_id).with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
