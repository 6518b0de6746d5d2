//! CreateAcls: each binding checked as Kafka checks a new ACL (INVALID_REQUEST in Kafka's words
//! for a bad one), the valid ones stored together by the authorizer. In a metadata quorum the
//! active controller decides (`broker::acl::decide_create`, as a single node does) and the
//! bindings are metadata records every broker follows; the answer waits until this broker
//! authorizes with them. Without an authorizer, as Kafka without one, every creation gets
//! SECURITY_DISABLED with Kafka's message and nothing is stored. (ALTER on the cluster is checked
//! before this handler, in `authorize`.)

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::acl::{AclBinding, AclError};

/// Kafka's message for CreateAcls and DeleteAcls without an authorizer.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// The request's creations as `broker::acl::decide_create` takes them (here and at a quorum's
/// controller), each checked.
pub(crate) fn bindings(req: &CreateAclsRequest) -> Vec<Result<AclBinding, AclError>> {
    req.creations
        .iter()
        .map(|c| AclBinding::from_wire(c.resource_type, &c.resource_name, c.resource_pattern_type, &c.principal, &c.host, c.operation, c.permission_type))
        .collect()
}

/// One result per creation.
pub(crate) fn response(results: Vec<Result<(), AclError>>) -> CreateAclsResponse {
    let results = results
        .into_iter()
        .map(|r| match r {
            Ok(()) => AclCreationResult::default().with_error_message(None),
            Err(e) => AclCreationResult::default().with_error_code(error_code::acl(&e)).with_error_message(Some(str_bytes(e.to_string()))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn handle(broker: &Arc<Broker>, req: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    let Some(authorizer) = &broker.authorizer else { return answer(&req) };
    let bindings = bindings(&req);
    if let Some(cluster) = &broker.cluster {
        return forward(authorizer, cluster, &req, &bindings).await;
    }
    // The authorizer writes its file before it answers: off the async workers.
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || b.authorizer.as_ref().map(|a| a.create(bindings))).await {
        Ok(Some(results)) => response(results),
        _ => response(req.creations.iter().map(|_| Err(AclError::Storage("the ACL store failed".into()))).collect()),
    }
}

/// The request at the active controller; answered once this broker authorizes with every
/// binding the controller accepted.
async fn forward(authorizer: &crate::broker::acl::Authorizer, cluster: &Arc<crate::broker::cluster::ClusterState>, req: &CreateAclsRequest, bindings: &[Result<AclBinding, AclError>]) -> CreateAclsResponse {
    use crate::broker::cluster::{ClusterState, NOT_CONTROLLER};
    let answered = cluster.to_controller(req, |r: &CreateAclsResponse| r.results.iter().any(|x| x.error_code == NOT_CONTROLLER), crate::broker::CLUSTER_REQUEST_TIMEOUT).await;
    let resp = match answered {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "CreateAcls could not reach the active controller");
            let results = req
                .creations
                .iter()
                .map(|_| AclCreationResult::default().with_error_code(E::RequestTimedOut.code()).with_error_message(Some(str_bytes(format!("no active controller answered: {e}")))))
                .collect();
            return CreateAclsResponse::default().with_results(results);
        }
    };
    let deadline = tokio::time::Instant::now() + crate::broker::CLUSTER_REQUEST_TIMEOUT;
    for (b, r) in bindings.iter().zip(&resp.results) {
        if let (Ok(b), 0) = (b, r.error_code)
            && !ClusterState::until_seen(deadline, || authorizer.contains(b)).await
        {
            tracing::warn!(acl = %b, "ACL created by the controller but not yet seen by this broker");
        }
    }
    resp
}

fn answer(req: &CreateAclsRequest) -> CreateAclsResponse {
    let results = req
        .creations
        .iter()
        .map(|_| AclCreationResult::default().with_error_code(E::SecurityDisabled.code()).with_error_message(Some(str_bytes(NO_AUTHORIZER))))
        .collect();
    CreateAclsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_acls_request::AclCreation;

    #[test]
    fn every_creation_is_security_disabled_with_kafkas_message() {
        let req = CreateAclsRequest::default().with_creations(vec![AclCreation::default(), AclCreation::default()]);
        let resp = answer(&req);
        assert_eq!(resp.results.len(), 2);
        for r in &resp.results {
            assert_eq!(r.error_code, 54);
            assert_eq!(r.error_message.as_deref(), Some("No Authorizer is configured."));
        }
        assert!(answer(&CreateAclsRequest::default()).results.is_empty());
    }
}
