//! TxnOffsetCommit: a transactional producer commits a group's offsets inside its transaction;
//! they become the group's committed offsets when the transaction commits. Per-partition
//! results, as OffsetCommit.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::error_code;
use crate::broker::Broker;
use crate::group::{GroupError, GroupLog, OFFSETS_TOPIC};
use crate::types::TopicPartition;
use crate::group::coordinator::OffsetCommit;

pub async fn handle(broker: &Arc<Broker>, req: TxnOffsetCommitRequest, version: i16) -> TxnOffsetCommitResponse {
    // The offsets' partition must be in the producer's open transaction (AddOffsetsToTxn), or
    // no marker would ever resolve them. From v5 (a KIP-890 producer, which sends no
    // AddOffsetsToTxn) it joins the transaction here.
    let partitions = broker.group_partitions().unwrap_or(broker.config.offsets_topic_num_partitions);
    let tp = TopicPartition::new(OFFSETS_TOPIC.to_string(), crate::group::offsets::partition_for(&req.group_id.0, partitions));
    if let Err(e) = broker.check_txn_partition(&req.transactional_id.0, req.producer_id.0, req.producer_epoch, &tp, version >= 5) {
        tracing::info!(transactional_id = %req.transactional_id.0, group = %req.group_id.0, error = %e, "TxnOffsetCommit refused");
        // A fenced epoch found by the verification is INVALID_PRODUCER_EPOCH to the client, as
        // Kafka's verification answers it, at every version.
        // v4 (KIP-890 part 1) gets TRANSACTION_ABORTABLE for offsets outside the transaction.
        let code = match e {
            crate::txn::TxnError::ProducerFenced => kafka_protocol::error::ResponseError::InvalidProducerEpoch.code(),
            crate::txn::TxnError::InvalidTxnState if version == 4 => kafka_protocol::error::ResponseError::TransactionAbortable.code(),
            other => error_code::txn(&other, version >= 3),
        };
        return respond(&req, |_| code);
    }
    let commits: Vec<OffsetCommit> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let outcome = broker.groups.txn_commit(
        &**broker,
        &req.group_id.0,
        (req.producer_id.0, req.producer_epoch),
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        commits,
    );
    let mut results = match outcome {
        Ok(r) => r.into_iter(),
        Err(e) => {
            tracing::info!(group = %req.group_id.0, error = %e, "TxnOffsetCommit refused");
            let n = req.topics.iter().map(|t| t.partitions.len()).sum();
            vec![Err::<(), GroupError>(e); n].into_iter()
        }
    };
    respond(&req, |_| error_code::group_result(&results.next().unwrap_or(Ok(()))))
}

/// The response with one code per requested partition, in request order.
fn respond(req: &TxnOffsetCommitRequest, mut code: impl FnMut(i32) -> i16) -> TxnOffsetCommitResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| TxnOffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code(p.partition_index)))
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
