//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::error_code;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    if let Some(e) = super::offline_group(broker, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(error_code::group(&e));
    }
    let r = broker.groups.heartbeat(&**broker, &req.group_id.0, req.generation_id, &req.member_id, req.group_instance_id.as_deref());
    HeartbeatResponse::default().with_error_code(error_code::group_result(&r))
}
