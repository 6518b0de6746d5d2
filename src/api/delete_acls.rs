//! DeleteAcls: each filter removes the ACLs it matches (ANY, MATCH, LITERAL or PREFIXED pattern
//! filters, as Kafka matches them) and reports them; a filter with an UNKNOWN field gets
//! INVALID_REQUEST. In a metadata quorum the active controller decides
//! (`broker::acl::decide_delete`, as a single node does) and removes the bindings' metadata
//! records; the answer waits until this broker no longer authorizes with them. Without an authorizer, as Kafka without one, every filter gets
//! SECURITY_DISABLED with Kafka's message and matches nothing. (ALTER on the cluster is checked
//! before this handler, in `authorize`.)

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::create_acls::NO_AUTHORIZER;
use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::acl::{AclBinding, AclError, AclFilter};

/// The request's filters as `broker::acl::decide_delete` takes them (here and at a quorum's
/// controller), each checked.
pub(crate) fn filters(req: &DeleteAclsRequest) -> Vec<Result<AclFilter, AclError>> {
    req.filters
        .iter()
        .map(|f| {
            AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect()
}

/// One result per filter, with the bindings it removed.
pub(crate) fn response(results: Vec<Result<Vec<AclBinding>, AclError>>) -> DeleteAclsResponse {
    let results = results
        .into_iter()
        .map(|r| match r {
            Ok(removed) => DeleteAclsFilterResult::default().with_error_message(None).with_matching_acls(
                removed
                    .into_iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_error_message(None)
                            .with_resource_type(a.resource_type.code())
                            .with_resource_name(str_bytes(a.name))
                            .with_pattern_type(a.pattern.code())
                            .with_principal(str_bytes(a.principal))
                            .with_host(str_bytes(a.host))
                            .with_operation(a.operation.code())
                            .with_permission_type(a.permission.code())
                    })
                    .collect(),
            ),
            Err(e) => DeleteAclsFilterResult::default().with_error_code(error_code::acl(&e)).with_error_message(Some(str_bytes(e.to_string()))),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

pub async fn handle(broker: &Arc<Broker>, req: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    let Some(authorizer) = &broker.authorizer else { return answer(&req) };
    if let Some(cluster) = &broker.cluster {
        return forward(authorizer, cluster, &req).await;
    }
    let filters = filters(&req);
    // The authorizer writes its file before it answers: off the async workers.
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || b.authorizer.as_ref().map(|a| a.delete(filters))).await {
        Ok(Some(results)) => response(results),
        _ => response(req.filters.iter().map(|_| Err(AclError::Storage("the ACL store failed".into()))).collect()),
    }
}

/// The request at the active controller; answered once none of the bindings it removed
/// authorizes anything on this broker.
async fn forward(authorizer: &crate::broker::acl::Authorizer, cluster: &Arc<crate::broker::cluster::ClusterState>, req: &DeleteAclsRequest) -> DeleteAclsResponse {
    use crate::broker::cluster::{ClusterState, NOT_CONTROLLER};
    let answered = cluster.to_controller(req, |r: &DeleteAclsResponse| r.filter_results.iter().any(|x| x.error_code == NOT_CONTROLLER), crate::broker::CLUSTER_REQUEST_TIMEOUT).await;
    let resp = match answered {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "DeleteAcls could not reach the active controller");
            let results = req
                .filters
                .iter()
                .map(|_| DeleteAclsFilterResult::default().with_error_code(E::RequestTimedOut.code()).with_error_message(Some(str_bytes(format!("no active controller answered: {e}")))))
                .collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let deadline = tokio::time::Instant::now() + crate::broker::CLUSTER_REQUEST_TIMEOUT;
    for m in resp.filter_results.iter().filter(|f| f.error_code == 0).flat_map(|f| &f.matching_acls) {
        let Ok(b) = AclBinding::from_wire(m.resource_type, &m.resource_name, m.pattern_type, &m.principal, &m.host, m.operation, m.permission_type) else { continue };
        if !ClusterState::until_seen(deadline, || !authorizer.contains(&b)).await {
            tracing::warn!(acl = %b, "ACL deleted by the controller but still seen by this broker");
        }
    }
    resp
}

fn answer(req: &DeleteAclsRequest) -> DeleteAclsResponse {
    let results = req
        .filters
        .iter()
        .map(|_| DeleteAclsFilterResult::default().with_error_code(E::SecurityDisabled.code()).with_error_message(Some(str_bytes(NO_AUTHORIZER))))
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;

    #[test]
    fn every_filter_is_security_disabled_with_kafkas_message_and_matches_nothing() {
        let req = DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()]);
        let resp = answer(&req);
        assert_eq!(resp.filter_results.len(), 1);
        assert_eq!(resp.filter_results[0].error_code, 54);
        assert_eq!(resp.filter_results[0].error_message.as_deref(), Some("No Authorizer is configured."));
        assert!(resp.filter_results[0].matching_acls.is_empty());
    }
}
