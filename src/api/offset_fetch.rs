//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+); -1 where nothing was
//! committed, every committed partition when topics is null. With require_stable (v7+), a
//! partition whose offset an open transaction is committing answers UNSTABLE_OFFSET_COMMIT, so
//! the client retries until the transaction ends. v9 carries the member id and epoch of a
//! consumer-protocol member: an unknown member or an old epoch is refused as in OffsetCommit.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::group::offsets::CommittedOffset;

type Fetched = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn fields(c: &Option<CommittedOffset>, version: i16) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, if version >= 5 { c.leader_epoch } else { -1 }, c.metadata.clone()),
        None => (-1, -1, String::new()),
    }
}

/// UNSTABLE_OFFSET_COMMIT for a partition an open transaction commits, when asked for.
fn stability(broker: &Broker, group: &str, require_stable: bool) -> impl Fn(&str, i32) -> i16 {
    move |topic, partition| {
        if require_stable && broker.groups.has_pending_txn_offset(group, topic, partition) { E::UnstableOffsetCommit.code() } else { 0 }
    }
}

fn v1_topics(fetched: Fetched, version: i16, unstable: impl Fn(&str, i32) -> i16) -> Vec<OffsetFetchResponseTopic> {
    fetched
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default().with_name(topic_name(t.clone())).with_partitions(
                parts
                    .into_iter()
                    .map(|(p, c)| {
                        let (offset, epoch, metadata) = fields(&c, version);
                        OffsetFetchResponsePartition::default()
                            .with_error_code(unstable(&t, p))
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                    })
                    .collect(),
            )
        })
        .collect()
}

fn v8_topics(fetched: Fetched, version: i16, unstable: impl Fn(&str, i32) -> i16) -> Vec<OffsetFetchResponseTopics> {
    fetched
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopics::default().with_name(topic_name(t.clone())).with_partitions(
                parts
                    .into_iter()
                    .map(|(p, c)| {
                        let (offset, epoch, metadata) = fields(&c, version);
                        OffsetFetchResponsePartitions::default()
                            .with_error_code(unstable(&t, p))
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                    })
                    .collect(),
            )
        })
        .collect()
}

pub async fn handle(broker: &Arc<Broker>, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if let Some(e) = super::offline_group(broker, &g.group_id.0) {
                    return OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(super::error_code::group(&e));
                }
                // v9 (KIP-848): a member's fetch carries its id and epoch, checked as commits are.
                if version >= 9
                    && let Err(e) = broker.groups.check_offset_fetch_member(&**broker, &g.group_id.0, g.member_id.as_deref(), g.member_epoch)
                {
                    return OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(super::error_code::group(&e));
                }
                let topics = g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
                let fetched = match broker.groups.fetch_offsets_coordinated(&**broker, &g.group_id.0, topics) {
                    Ok(f) => f,
                    Err(e) => return OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(super::error_code::group(&e)),
                };
                let topics = v8_topics(fetched, version, stability(broker, &g.group_id.0, req.require_stable));
                OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    // Versions before 2 have no top-level error code: they answer from memory.
    if version >= 2
        && let Some(e) = super::offline_group(broker, &req.group_id.0)
    {
        return OffsetFetchResponse::default().with_error_code(super::error_code::group(&e));
    }
    // v1 has no null topics; an empty list there is just empty.
    let topics = req.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let fetched = if version >= 2 {
        match broker.groups.fetch_offsets_coordinated(&**broker, &req.group_id.0, topics) {
            Ok(f) => f,
            Err(e) => return OffsetFetchResponse::default().with_error_code(super::error_code::group(&e)),
        }
    } else {
        broker.groups.fetch_offsets(&req.group_id.0, topics)
    };
    OffsetFetchResponse::default().with_topics(v1_topics(fetched, version, stability(broker, &req.group_id.0, req.require_stable)))
}
