//! EndTxn: commits or aborts the producer's transaction; answered once the markers are written
//! to every partition of it (or, when one could not be, once the outcome is durable and the
//! coordinator retries the marker).

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::error_code;
use crate::broker::Broker;
use crate::txn::ClientTv;

pub async fn handle(broker: &Arc<Broker>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    // v5+ is a KIP-890 producer (Kafka reads it from the version, whatever the feature level).
    let tv = if version >= 5 { ClientTv::V2 } else { ClientTv::Classic };
    let result = broker.txns.end_txn(&**broker, &req.transactional_id.0, req.producer_id.0, req.producer_epoch, req.committed, tv);
    let response = EndTxnResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    match result {
        // The classic protocol keeps the producer's id and epoch: v5's fields stay -1 for it.
        Ok((producer_id, epoch)) if tv == ClientTv::V2 => response.with_producer_id(ProducerId(producer_id)).with_producer_epoch(epoch),
        Ok(_) => response,
        Err(e) => {
            tracing::info!(transactional_id = %req.transactional_id.0, commit = req.committed, error = %e, "EndTxn refused");
            response.with_error_code(error_code::txn(&e, version >= 2))
        }
    }
}
