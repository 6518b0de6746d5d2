//! OffsetDelete: removes committed offsets of an Empty group (tombstones); a group with members
//! gets GROUP_SUBSCRIBED_TO_TOPIC for every partition (subscriptions are not inspected).

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::error_code;
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: OffsetDeleteRequest, _version: i16) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    match broker.groups.delete_offsets(&**broker, &req.group_id.0, &partitions) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(error_code::group(&e)),
        Ok(results) => {
            let mut results = results.into_iter();
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    let parts = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let code = results.next().map_or(error_code::NONE, |r| error_code::group_result(&r));
                            OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code)
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(parts)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
