//! JoinGroup: hands the request to the group coordinator on a request handler thread (it may
//! write the group's record), waits on the async worker if it parked until the rebalance
//! completes, and shapes the answer for the request's version.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::group::coordinator::JoinRequest;

pub async fn handle(broker: &Arc<Broker>, req: JoinGroupRequest, version: i16, client_id: String, client_host: String) -> JoinGroupResponse {
    let join = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        client_id,
        client_host,
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        topics: super::consumer_group_heartbeat::topics_view(broker),
    };
    // The group changes and its record is written on a request handler thread; only the wait
    // for the rebalance's outcome stays on the async worker.
    let out = if let Some(e) = super::offline_group(broker, &join.group_id) {
        crate::group::coordinator::JoinOutcome::error(e, &join.member_id)
    } else {
        let b = broker.clone();
        match broker.io_pool.run(move || b.groups.join_start(&*b, join)).await {
            Ok(out) => out,
            Err(wait) => broker.groups.join_wait(wait, broker.shutdown_signal()).await,
        }
    };
    let members = out
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(id))
                .with_group_instance_id(if version >= 5 { instance.map(str_bytes) } else { None })
                .with_metadata(metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(out.error.as_ref().map_or(error_code::NONE, error_code::group))
        .with_generation_id(out.generation)
        .with_protocol_type(if version >= 7 { out.protocol_type.map(str_bytes) } else { None })
        // Null from v7 when there is none; older versions have a non-null string.
        .with_protocol_name(match out.protocol {
            Some(p) => Some(str_bytes(p)),
            None if version >= 7 => None,
            None => Some(str_bytes("")),
        })
        .with_leader(str_bytes(out.leader))
        .with_member_id(str_bytes(out.member_id))
        .with_skip_assignment(version >= 9 && out.skip_assignment)
        .with_members(members)
}
