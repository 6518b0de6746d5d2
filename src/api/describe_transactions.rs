//! DescribeTransactions: the coordinator's view of each transactional id (state, producer id
//! and epoch, timeout, start time, partitions); TRANSACTIONAL_ID_NOT_FOUND for unknown ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId};

use super::{str_bytes, topic_name};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: DescribeTransactionsRequest, _version: i16) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let resp = TransactionState::default().with_transactional_id(id.clone());
            let Some(m) = broker.txns.describe(&id.0) else {
                // The other fields at the protocol's defaults, as Kafka leaves them.
                return resp.with_error_code(E::TransactionalIdNotFound.code()).with_transaction_state(str_bytes(""));
            };
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for tp in &m.partitions {
                by_topic.entry(&tp.topic).or_default().push(tp.partition);
            }
            let topics = by_topic.into_iter().map(|(t, ps)| TopicData::default().with_topic(topic_name(t)).with_partitions(ps)).collect();
            resp.with_transaction_state(str_bytes(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
