//! AlterClientQuotas (KIP-546): sets and removes user and client-id quotas, one result per
//! entity with Kafka's per-entity errors (a duplicate entity or key, an unknown key, a value not
//! above 0 or fractional for a byte rate). Quotas Fjord does not enforce yet are refused, never
//! stored and ignored. In a metadata quorum quotas are not replicated yet: every entity is refused
//! there rather than set on one broker only.

use std::sync::Arc;

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::quotas::{Alteration, QuotaError};

pub async fn handle(broker: &Arc<Broker>, req: AlterClientQuotasRequest, _version: i16) -> AlterClientQuotasResponse {
    let alterations: Vec<Alteration> = req
        .entries
        .iter()
        .map(|e| Alteration {
            entity: e.entity.iter().map(|c| (c.entity_type.to_string(), c.entity_name.as_ref().map(|n| n.to_string()))).collect(),
            ops: e.ops.iter().map(|o| (o.key.to_string(), (!o.remove).then_some(o.value))).collect(),
        })
        .collect();
    let results: Vec<(Vec<(String, Option<String>)>, Result<(), QuotaError>)> = if broker.cluster.is_some() {
        let refused = QuotaError::NotReplicated("client quotas are not replicated through the metadata quorum yet; nothing was changed".into());
        alterations.into_iter().map(|a| (a.entity, Err(refused.clone()))).collect()
    } else {
        let b = broker.clone();
        let validate_only = req.validate_only;
        // The store writes its file before it answers: off the async workers.
        match tokio::task::spawn_blocking(move || b.quotas.alter(&alterations, validate_only)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "AlterClientQuotas task failed");
                let failed = QuotaError::Storage(e.to_string());
                req.entries.iter().map(|e| (e.entity.iter().map(|c| (c.entity_type.to_string(), c.entity_name.as_ref().map(|n| n.to_string()))).collect(), Err(failed.clone()))).collect()
            }
        }
    };
    let entries = results
        .into_iter()
        .map(|(entity, r)| {
            let out = EntryData::default().with_entity(entity.into_iter().map(|(t, n)| EntityData::default().with_entity_type(str_bytes(t)).with_entity_name(n.map(str_bytes))).collect());
            match r {
                Ok(()) => out.with_error_message(None),
                Err(e) => {
                    if matches!(e, QuotaError::Storage(_)) {
                        tracing::error!(error = %e, "client quotas not stored");
                    }
                    out.with_error_code(error_code::quota(&e)).with_error_message(Some(str_bytes(e.to_string())))
                }
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
