//! CreateAcls: Fjord has no authorizer, so, as Kafka without one, every creation gets
//! SECURITY_DISABLED with Kafka's message and nothing is stored.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::str_bytes;
use crate::broker::Broker;

/// Kafka's message for CreateAcls and DeleteAcls without an authorizer.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub async fn handle(_broker: &Arc<Broker>, req: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
    answer(&req)
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
