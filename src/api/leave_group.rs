//! LeaveGroup: one member (v0-2) or a batch of members by id or instance id (v3+).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    if let Some(e) = super::offline_group(broker, &req.group_id.0) {
        return LeaveGroupResponse::default().with_error_code(error_code::group(&e));
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match broker.groups.leave(&**broker, &req.group_id.0, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(error_code::group(&e)),
        Ok(results) if version < 3 => LeaveGroupResponse::default().with_error_code(error_code::group_result(&results[0])),
        Ok(results) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results.iter())
                .map(|((id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(error_code::group_result(r))
                })
                .collect(),
        ),
    }
}
