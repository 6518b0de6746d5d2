//! DeleteGroups: only Empty groups; their offsets and metadata get tombstones.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::error_code;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let r = broker.groups.delete_group(&**broker, &id.0);
            DeletableGroupResult::default().with_group_id(id).with_error_code(error_code::group_result(&r))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
