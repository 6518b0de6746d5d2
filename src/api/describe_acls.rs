//! DescribeAcls: the ACLs the filter matches (ANY, MATCH, LITERAL or PREFIXED pattern filters),
//! grouped by resource; a filter with an UNKNOWN field gets INVALID_REQUEST. In a metadata quorum
//! it answers from this node's authorizer, which follows the applied metadata. Without an
//! authorizer it answers as Kafka does without one (no `authorizer.class.name`): SECURITY_DISABLED
//! with Kafka's message, no resources; MirrorMaker 2's topic ACL sync reads that answer as "no
//! authorizer on the source" and turns itself off. (DESCRIBE on the cluster is checked before
//! this handler, in `authorize`.)

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::acl::{AclFilter, by_resource};

/// Kafka's message for DescribeAcls without an authorizer (CreateAcls and DeleteAcls say it shorter).
pub const NO_AUTHORIZER_DESCRIBE: &str = "No Authorizer is configured on the broker";

pub async fn handle(broker: &Arc<Broker>, req: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
    let Some(authorizer) = &broker.authorizer else { return answer() };
    let filter = AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    );
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return DescribeAclsResponse::default().with_error_code(error_code::acl(&e)).with_error_message(Some(str_bytes(e.to_string()))),
    };
    let resources = by_resource(authorizer.describe(&filter))
        .into_iter()
        .map(|((t, name, pattern), acls)| {
            DescribeAclsResource::default().with_resource_type(t.code()).with_resource_name(str_bytes(name)).with_pattern_type(pattern.code()).with_acls(
                acls.into_iter()
                    .map(|a| AclDescription::default().with_principal(str_bytes(a.principal)).with_host(str_bytes(a.host)).with_operation(a.operation.code()).with_permission_type(a.permission.code()))
                    .collect(),
            )
        })
        .collect();
    DescribeAclsResponse::default().with_error_message(None).with_resources(resources)
}

fn answer() -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_error_code(E::SecurityDisabled.code())
        .with_error_message(Some(str_bytes(NO_AUTHORIZER_DESCRIBE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_acls_is_security_disabled_with_kafkas_message_and_no_resources() {
        let resp = answer();
        assert_eq!(resp.error_code, 54);
        assert_eq!(resp.error_message.as_deref(), Some("No Authorizer is configured on the broker"));
        assert!(resp.resources.is_empty());
    }
}
