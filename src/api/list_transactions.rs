//! ListTransactions: transactional ids filtered by state, producer id and (v1) how long their
//! transaction has been open. Unknown state names are echoed back, as Kafka does.

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId};

use super::str_bytes;
use crate::broker::Broker;
use crate::txn::log::TxnState;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub async fn handle(broker: &Arc<Broker>, req: ListTransactionsRequest, _version: i16) -> ListTransactionsResponse {
    let (known, unknown): (Vec<_>, Vec<_>) = req.state_filters.iter().partition(|s| STATES.iter().any(|st| st.name() == s.as_str()));
    let states: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let listed = if !unknown.is_empty() && known.is_empty() { vec![] } else { broker.txns.list(&states, &producer_ids, req.duration_filter) };
    let transaction_states = listed
        .into_iter()
        .map(|s| {
            TransactionState::default()
                .with_transactional_id(kafka_protocol::messages::TransactionalId(str_bytes(s.transactional_id)))
                .with_producer_id(ProducerId(s.meta.producer_id))
                .with_transaction_state(str_bytes(s.meta.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown.into_iter().cloned().collect()).with_transaction_states(transaction_states)
}
