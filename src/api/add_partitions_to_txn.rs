//! AddPartitionsToTxn: partitions join a producer's transaction before it writes to them. v0–3
//! carry one transaction (librdkafka and the Java client use them); v4+ carry a batch of
//! transactions, optionally only verified (`verify_only`: each partition answered by whether it is
//! in the transaction). An unknown partition fails with
//! UNKNOWN_TOPIC_OR_PARTITION and the others of the request with OPERATION_NOT_ATTEMPTED.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::error_code;
use crate::broker::Broker;
use crate::txn::ClientTv;
use crate::types::TopicPartition;

/// Every partition of the request answered with one code each.
fn answer(topics: &[AddPartitionsToTxnTopic], code: impl Fn(&TopicPartition) -> i16) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| AddPartitionsToTxnPartitionResult::default().with_partition_index(*p).with_partition_error_code(code(&TopicPartition::new(t.name.0.to_string(), *p))))
                .collect();
            AddPartitionsToTxnTopicResult::default().with_name(t.name.clone()).with_results_by_partition(results)
        })
        .collect()
}

/// One transaction's partitions: all added, or none with the reasons.
fn add(broker: &Broker, id: &str, producer_id: i64, epoch: i16, topics: &[AddPartitionsToTxnTopic], verify_only: bool, version: i16) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<TopicPartition> =
        topics.iter().flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.0.to_string(), *p))).collect();
    if partitions.iter().any(|tp| !broker.partition_exists(tp)) {
        return answer(topics, |tp| if broker.partition_exists(tp) { E::OperationNotAttempted.code() } else { E::UnknownTopicOrPartition.code() });
    }
    if verify_only {
        return match broker.txns.verify_partitions(id, producer_id, epoch, &partitions) {
            Ok(member) => {
                let added: Vec<&TopicPartition> = partitions.iter().zip(member).filter(|(_, m)| *m).map(|(tp, _)| tp).collect();
                answer(topics, |tp| if added.contains(&tp) { 0 } else { E::InvalidTxnState.code() })
            }
            Err(e) => {
                let code = error_code::txn(&e, true);
                answer(topics, |_| code)
            }
        };
    }
    // Only partition leaders send v4+ to add (for a KIP-890 producer's Produce v12 or
    // TxnOffsetCommit v5); Kafka reads the client's transaction version from that.
    let tv = if version >= 4 { ClientTv::V2 } else { ClientTv::Classic };
    let result = broker.txns.add_partitions(broker, id, producer_id, epoch, &partitions, tv);
    if let Err(e) = &result {
        tracing::info!(transactional_id = %id, error = %e, "AddPartitionsToTxn refused");
    }
    let code = error_code::txn_result(&result, version >= 2);
    answer(topics, |_| code)
}

pub async fn handle(broker: &Arc<Broker>, req: AddPartitionsToTxnRequest, version: i16) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let results = add(
            broker,
            &req.v3_and_below_transactional_id.0,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &req.v3_and_below_topics,
            false,
            version,
        );
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let results = req
        .transactions
        .iter()
        .map(|t| {
            let topic_results = add(broker, &t.transactional_id.0, t.producer_id.0, t.producer_epoch, &t.topics, t.verify_only, version);
            AddPartitionsToTxnResult::default().with_transactional_id(t.transactional_id.clone()).with_topic_results(topic_results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}
