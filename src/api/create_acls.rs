//! CreateAcls: each binding checked as Kafka checks a new ACL (INVALID_REQUEST in Kafka's words
//! for a bad one), the valid ones stored together by the authorizer. Without an authorizer, as
//! Kafka without one, every creation gets SECURITY_DISABLED with Kafka's message and nothing is
//! stored. (ALTER on the cluster is checked before this handler, in `authorize`.)

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::acl::AclBinding;

/// Kafka's message for CreateAcls and DeleteAcls without an authorizer.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub async fn handle(broker: &Arc<Broker>, req: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    let Some(authorizer) = &broker.authorizer else { return answer(&req) };
    let bindings = req
        .creations
        .iter()
        .map(|c| AclBinding::from_wire(c.resource_type, &c.resource_name, c.resource_pattern_type, &c.principal, &c.host, c.operation, c.permission_type))
        .collect();
    let results = authorizer
        .create(bindings)
        .into_iter()
        .map(|r| match r {
            Ok(()) => AclCreationResult::default().with_error_message(None),
            Err(e) => AclCreationResult::default().with_error_code(error_code::acl(&e)).with_error_message(Some(str_bytes(e.to_string()))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
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
