//! OffsetForLeaderEpoch: for each partition, the end offset of the requested leader epoch (the
//! log end offset for the current one), which consumers use to detect truncation (KIP-320). A
//! `current_leader_epoch` newer than the partition's is UNKNOWN_LEADER_EPOCH, an older one
//! FENCED_LEADER_EPOCH; -1 skips the check.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::error_code;
use crate::broker::Broker;
use crate::storage::leader_epoch::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use crate::types::TopicPartition;

pub async fn handle(broker: &Arc<Broker>, req: OffsetForLeaderEpochRequest, _version: i16) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(UNDEFINED_EPOCH).with_end_offset(UNDEFINED_EPOCH_OFFSET);
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    if let Some(code) = super::leader_epoch_error(broker, &tp, p.current_leader_epoch) {
                        return base.with_error_code(code);
                    }
                    match broker.replicas.end_offset_for_epoch(&tp, p.leader_epoch) {
                        Err(e) => base.with_error_code(error_code::replica(&e)),
                        Ok((current, _)) if p.current_leader_epoch > current => base.with_error_code(E::UnknownLeaderEpoch.code()),
                        Ok((current, _)) if p.current_leader_epoch >= 0 && p.current_leader_epoch < current => base.with_error_code(E::FencedLeaderEpoch.code()),
                        Ok((_, (epoch, end))) => base.with_leader_epoch(epoch).with_end_offset(end),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
