//! DeleteAcls: each filter removes the ACLs it matches (ANY, MATCH, LITERAL or PREFIXED pattern
//! filters, as Kafka matches them) and reports them; a filter with an UNKNOWN field gets
//! INVALID_REQUEST. Without an authorizer, as Kafka without one, every filter gets
//! SECURITY_DISABLED with Kafka's message and matches nothing. (ALTER on the cluster is checked
//! before this handler, in `authorize`.)

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::create_acls::NO_AUTHORIZER;
use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::acl::AclFilter;

pub async fn handle(broker: &Arc<Broker>, req: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
    let Some(authorizer) = &broker.authorizer else { return answer(&req) };
    let filters = req
        .filters
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
        .collect();
    let results = authorizer
        .delete(filters)
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
