//! DescribeAcls: Fjord has no authorizer, so it answers as Kafka does without one (no
//! `authorizer.class.name`): SECURITY_DISABLED with Kafka's message, no resources. MirrorMaker 2's
//! topic ACL sync reads that answer as "no authorizer on the source" and turns itself off.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::str_bytes;
use crate::broker::Broker;

/// Kafka's message for DescribeAcls without an authorizer (CreateAcls and DeleteAcls say it shorter).
pub const NO_AUTHORIZER_DESCRIBE: &str = "No Authorizer is configured on the broker";

pub async fn handle(_broker: &Arc<Broker>, _req: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
    answer()
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
