//! AlterClientQuotas (KIP-546): sets and removes user and client-id quotas, one result per
//! entity with Kafka's per-entity errors (a duplicate entity or key, an unknown key, a value not
//! above 0 or fractional for a byte rate). Quotas Fjord does not enforce yet are refused, never
//! stored and ignored. In a metadata quorum the active controller decides and the quotas are
//! metadata records every broker follows; the answer waits until this broker applies the result.

use std::sync::Arc;

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::quotas::{Alteration, QuotaError};

/// The request's entries as `broker::quotas::decide` takes them (here and at a quorum's
/// controller): a removal is a key without a value.
pub(crate) fn alterations(req: &AlterClientQuotasRequest) -> Vec<Alteration> {
    req.entries
        .iter()
        .map(|e| Alteration {
            entity: e.entity.iter().map(|c| (c.entity_type.to_string(), c.entity_name.as_ref().map(|n| n.to_string()))).collect(),
            ops: e.ops.iter().map(|o| (o.key.to_string(), (!o.remove).then_some(o.value))).collect(),
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, req: AlterClientQuotasRequest, _version: i16) -> AlterClientQuotasResponse {
    let alterations = alterations(&req);
    if let Some(cluster) = &broker.cluster {
        return forward(broker, cluster, &req, &alterations).await;
    }
    let results: Vec<(Vec<(String, Option<String>)>, Result<(), QuotaError>)> = {
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

/// The request at the active controller; answered once this broker's quotas show every change
/// the controller accepted.
async fn forward(broker: &Arc<Broker>, cluster: &Arc<crate::broker::cluster::ClusterState>, req: &AlterClientQuotasRequest, alterations: &[Alteration]) -> AlterClientQuotasResponse {
    use crate::broker::cluster::{ClusterState, NOT_CONTROLLER};
    let answered = cluster.to_controller(req, |r: &AlterClientQuotasResponse| r.entries.iter().any(|e| e.error_code == NOT_CONTROLLER), crate::broker::CLUSTER_REQUEST_TIMEOUT).await;
    let resp = match answered {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "AlterClientQuotas could not reach the active controller");
            let entries = req
                .entries
                .iter()
                .map(|x| {
                    EntryData::default()
                        .with_entity(x.entity.iter().map(|c| EntityData::default().with_entity_type(c.entity_type.clone()).with_entity_name(c.entity_name.clone())).collect())
                        .with_error_code(kafka_protocol::error::ResponseError::RequestTimedOut.code())
                        .with_error_message(Some(str_bytes(format!("no active controller answered: {e}"))))
                })
                .collect();
            return AlterClientQuotasResponse::default().with_entries(entries);
        }
    };
    if req.validate_only {
        return resp;
    }
    let deadline = tokio::time::Instant::now() + crate::broker::CLUSTER_REQUEST_TIMEOUT;
    for (a, e) in alterations.iter().zip(&resp.entries) {
        if e.error_code != 0 {
            continue;
        }
        let entity: crate::broker::quotas::Entity = a.entity.iter().cloned().collect();
        let applied = || {
            let now = broker.quotas.values(&entity).unwrap_or_default();
            a.ops.iter().all(|(k, v)| now.get(k).copied() == *v)
        };
        if !ClusterState::until_seen(deadline, applied).await {
            tracing::warn!("client quotas changed by the controller but not yet seen by this broker");
        }
    }
    resp
}
