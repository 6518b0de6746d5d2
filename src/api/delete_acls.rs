//! DeleteAcls: Fjord has no authorizer, so, as Kafka without one, every filter gets
//! SECURITY_DISABLED with Kafka's message and matches nothing.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::create_acls::NO_AUTHORIZER;
use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(_broker: &Arc<Broker>, req: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    answer(&req)
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
