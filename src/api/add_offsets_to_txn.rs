//! AddOffsetsToTxn: a consumer group's offsets join the producer's transaction, that is the
//! group's `__consumer_offsets` partition does; TxnOffsetCommit follows, sent to the group
//! coordinator.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::error_code;
use crate::broker::Broker;
use crate::group::{GroupLog, OFFSETS_TOPIC};
use crate::types::TopicPartition;

pub async fn handle(broker: &Arc<Broker>, req: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let partitions = broker.group_partitions().unwrap_or(broker.config.offsets_topic_num_partitions);
    let tp = TopicPartition::new(OFFSETS_TOPIC.to_string(), crate::group::offsets::partition_for(&req.group_id.0, partitions));
    // The marker needs the partition to exist: the group's first commit may still be to come.
    if let Err(e) = broker.ensure_offsets_topic() {
        tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
        return AddOffsetsToTxnResponse::default().with_error_code(kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code());
    }
    let result = broker.txns.add_partitions(&**broker, &req.transactional_id.0, req.producer_id.0, req.producer_epoch, &[tp], crate::txn::ClientTv::Classic);
    if let Err(e) = &result {
        tracing::info!(transactional_id = %req.transactional_id.0, error = %e, "AddOffsetsToTxn refused");
    }
    AddOffsetsToTxnResponse::default().with_error_code(error_code::txn_result(&result, version >= 2))
}
