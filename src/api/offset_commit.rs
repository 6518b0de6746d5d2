//! OffsetCommit: per-partition results; unknown partitions are refused here, membership and
//! generation (or, v9+, member epoch) checks and persistence are the coordinator's. A member of a
//! consumer-protocol group committing below v9 gets UNSUPPORTED_VERSION, as from Kafka.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::error_code;
use crate::broker::Broker;
use crate::group::coordinator::OffsetCommit;

pub async fn handle(broker: &Arc<Broker>, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
    if version < 9 && !req.member_id.is_empty() && broker.groups.is_consumer_member(&req.group_id.0, &req.member_id) {
        // Kafka: members of the consumer protocol must send their epoch (v9+).
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let parts = t.partitions.iter().map(|p| OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(E::UnsupportedVersion.code()));
                OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(parts.collect())
            })
            .collect();
        return OffsetCommitResponse::default().with_topics(topics);
    }
    // (topic index, partition index, Some(code) when refused before the coordinator).
    let mut slots: Vec<(usize, i32, Option<i16>)> = vec![];
    let mut commits = vec![];
    for (ti, t) in req.topics.iter().enumerate() {
        let meta = broker.metadata.topic(&t.name.0);
        for p in &t.partitions {
            let known = meta.as_ref().is_some_and(|m| p.partition_index >= 0 && p.partition_index < m.partitions);
            if !known {
                slots.push((ti, p.partition_index, Some(E::UnknownTopicOrPartition.code())));
                continue;
            }
            slots.push((ti, p.partition_index, None));
            commits.push(OffsetCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
            });
        }
    }
    let outcome = broker.groups.commit(
        &**broker,
        &req.group_id.0,
        req.generation_id_or_member_epoch,
        &req.member_id,
        req.group_instance_id.as_deref(),
        commits,
    );
    let mut results = match &outcome {
        Ok(r) => r.iter().map(error_code::group_result).collect::<Vec<_>>().into_iter(),
        Err(_) => vec![].into_iter(),
    };
    let group_error = outcome.as_ref().err().map(error_code::group);
    let mut topics: Vec<OffsetCommitResponseTopic> = req
        .topics
        .iter()
        .map(|t| OffsetCommitResponseTopic::default().with_name(t.name.clone()))
        .collect();
    for (ti, partition, refused) in slots {
        let code = match (refused, group_error) {
            (Some(c), _) => c,
            (None, Some(c)) => c,
            (None, None) => results.next().unwrap_or(error_code::NONE),
        };
        topics[ti].partitions.push(OffsetCommitResponsePartition::default().with_partition_index(partition).with_error_code(code));
    }
    OffsetCommitResponse::default().with_topics(topics)
}
