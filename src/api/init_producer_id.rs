//! InitProducerId: for idempotent producers a fresh producer id (never reused across restarts),
//! or an epoch bump for a producer that presents its current id and epoch (KIP-360); for a
//! transactional id, the transaction coordinator's id and bumped epoch, which fences the
//! previous producer of that id. In a quorum the ids come in blocks from the active controller.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::error_code;
use crate::broker::Broker;

/// How long InitProducerId waits for the active controller's block of ids.
const PRODUCER_ID_BLOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn handle(broker: &Arc<Broker>, req: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.as_ref().is_some_and(|t| t.0.is_empty()) {
        // Kafka: an empty transactional id is neither idempotent-only nor a valid id.
        return resp.with_error_code(E::InvalidRequest.code());
    }
    // In a quorum, ids come in blocks from the active controller: fetch one first when the
    // current block is used up (the transaction coordinator then draws from it too).
    if let Some(cluster) = &broker.cluster {
        if broker.producer_ids.needs_block() {
            match cluster.allocate_producer_ids(PRODUCER_ID_BLOCK_TIMEOUT).await {
                Ok((first, len)) => broker.producer_ids.install_block(first, len),
                Err(e) => {
                    tracing::warn!(error = %e, "no producer id block from the controller");
                    return resp.with_error_code(E::CoordinatorLoadInProgress.code());
                }
            }
        }
    }
    if let Some(id) = &req.transactional_id {
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        return match broker.txns.init_producer_id(&**broker, &id.0, req.transaction_timeout_ms, expected) {
            Ok((pid, epoch)) => resp.with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
            Err(e) => {
                tracing::info!(transactional_id = %id.0, error = %e, "InitProducerId refused");
                resp.with_error_code(error_code::txn(&e, version >= 4))
            }
        };
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 {
        // Bump the epoch of an existing idempotent producer; at the epoch limit, a new id.
        if req.producer_epoch < i16::MAX - 1 {
            return resp.with_producer_id(req.producer_id).with_producer_epoch(req.producer_epoch + 1);
        }
    }
    match broker.producer_ids.next_id() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        // Another request took the block's last ids meanwhile: the client asks again.
        Err(_) if broker.producer_ids.needs_block() => resp.with_error_code(E::CoordinatorLoadInProgress.code()),
        Err(e) => {
            tracing::error!(error = %e, "could not reserve producer ids");
            resp.with_error_code(E::KafkaStorageError.code())
        }
    }
}
