//! EndTxn: commits or aborts the producer's transaction; answered once the markers are written
//! to every partition of it (or, when one could not be, once the outcome is durable and the
//! coordinator retries the marker).

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::error_code;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let result = broker.txns.end_txn(&**broker, &req.transactional_id.0, req.producer_id.0, req.producer_epoch, req.committed);
    if let Err(e) = &result {
        tracing::info!(transactional_id = %req.transactional_id.0, commit = req.committed, error = %e, "EndTxn refused");
    }
    // The classic protocol keeps the producer's id and epoch (v5's fields are for KIP-890).
    EndTxnResponse::default().with_error_code(error_code::txn_result(&result, version >= 2)).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
}
