//! SyncGroup: the leader's assignments go to every member (written on a request handler thread);
//! a follower's request is parked by the coordinator until the leader's arrives (bounded by the
//! rebalance timeout), waiting on the async worker.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let assignments: BTreeMap<String, bytes::Bytes> = req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
    let protocol_type = req.protocol_type.as_ref().map(|s| s.to_string());
    let protocol = req.protocol_name.as_ref().map(|s| s.to_string());
    // The group changes and its record is written on a request handler thread; only a
    // follower's wait for the leader's assignment stays on the async worker.
    if let Some(e) = super::offline_group(broker, &req.group_id.0) {
        return SyncGroupResponse::default().with_error_code(error_code::group(&e));
    }
    let b = broker.clone();
    let started = broker
        .io_pool
        .run(move || {
            b.groups.sync_start(
                &*b,
                &req.group_id.0,
                req.generation_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                protocol_type.as_deref(),
                protocol.as_deref(),
                assignments,
            )
        })
        .await;
    let out = match started {
        Ok(out) => out,
        Err(wait) => match broker.groups.sync_wait(wait, broker.shutdown_signal()).await {
            Ok(out) => out,
            Err(timed_out) => {
                let b = broker.clone();
                broker.io_pool.run(move || b.groups.sync_timed_out(&*b, timed_out)).await
            }
        },
    };
    SyncGroupResponse::default()
        .with_error_code(out.error.as_ref().map_or(error_code::NONE, error_code::group))
        .with_protocol_type(if version >= 5 { out.protocol_type.map(str_bytes) } else { None })
        .with_protocol_name(if version >= 5 { out.protocol.map(str_bytes) } else { None })
        .with_assignment(out.assignment)
}
