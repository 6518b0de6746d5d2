//! DescribeGroups: state, protocol and members of each classic group. As Kafka 4.0 answers: an
//! unknown (or dead) group is Dead with no error up to v5; from v6 (KIP-1043, which adds a
//! per-group error message) it is GROUP_ID_NOT_FOUND "Group <id> not found.", and a
//! consumer-protocol group GROUP_ID_NOT_FOUND "Group <id> is not a classic group.".

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::broker::acl::ResourceType;
use crate::broker::Broker;
use crate::group::GroupError;


/// v6's answer for a group that does not exist.
fn not_found(base: DescribedGroup, id: GroupId) -> DescribedGroup {
    let e = GroupError::ConsumerGroupNotFound(id.0.to_string());
    base.with_group_id(id).with_error_code(super::error_code::group(&e)).with_error_message(Some(str_bytes(e.to_string()))).with_group_state(str_bytes("Dead"))
}

/// Kafka reports a group's authorized operations only when the group is described without an
/// error; a failed one keeps the field's default.
fn without_operations_on_errors(groups: Vec<DescribedGroup>) -> Vec<DescribedGroup> {
    groups.into_iter().map(|g| if g.error_code != 0 { g.with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED) } else { g }).collect()
}

pub async fn handle(broker: &Arc<Broker>, req: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let ops = if version >= 3 && req.include_authorized_operations { ResourceType::Group.all_operations() } else { AUTHORIZED_OPERATIONS_OMITTED };
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default().with_error_message(None).with_authorized_operations(ops);
            if let Some(e) = super::offline_group(broker, &id.0) {
                return base.with_group_id(id).with_error_code(super::error_code::group(&e)).with_group_state(str_bytes("Dead"));
            }
            match broker.groups.describe(&**broker, &id.0) {
                // Not coordinated here after all (leadership moved while the request waited).
                Err(e @ (GroupError::Log(_) | GroupError::CoordinatorLoadInProgress)) => {
                    base.with_group_id(id).with_error_code(super::error_code::group(&e)).with_group_state(str_bytes("Dead"))
                }
                // A consumer-protocol group, as Kafka 4.0 answers it: GROUP_ID_NOT_FOUND ("not a
                // classic group") from v6, which carries the message; before, just Dead.
                Err(e) if version >= 6 => base
                    .with_group_id(id)
                    .with_error_code(super::error_code::group(&e))
                    .with_error_message(Some(str_bytes(e.to_string())))
                    .with_group_state(str_bytes("Dead")),
                Err(_) => base.with_group_id(id).with_group_state(str_bytes("Dead")),
                Ok(None) if version >= 6 => not_found(base, id),
                Ok(Some(g)) if version >= 6 && g.state.as_str() == "Dead" => not_found(base, id),
                Ok(None) => base.with_group_id(id).with_group_state(str_bytes("Dead")),
                Ok(Some(g)) => base
                    .with_group_id(id)
                    .with_group_state(str_bytes(g.state.as_str()))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(if version >= 4 { m.instance_id.map(str_bytes) } else { None })
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(without_operations_on_errors(groups))
}
