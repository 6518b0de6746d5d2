//! ListGroups: every group, filtered by state (v4+, case-insensitive as in Kafka) and type (v5+:
//! "classic" or "consumer", the KIP-848 protocol).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    let states: Vec<String> = if version >= 4 { req.states_filter.iter().map(|s| s.to_lowercase()).collect() } else { vec![] };
    let types: Vec<String> = if version >= 5 { req.types_filter.iter().map(|s| s.to_lowercase()).collect() } else { vec![] };
    let groups = broker
        .groups
        .list(&**broker)
        .into_iter()
        .filter(|l| states.is_empty() || states.contains(&l.state.to_lowercase()))
        .filter(|l| types.is_empty() || types.iter().any(|t| t == l.group_type))
        .map(|l| {
            let mut g = ListedGroup::default().with_group_id(GroupId(str_bytes(l.group_id))).with_protocol_type(str_bytes(l.protocol_type));
            if version >= 4 {
                g = g.with_group_state(str_bytes(l.state));
            }
            if version >= 5 {
                g = g.with_group_type(str_bytes(l.group_type));
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
