//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), and by
//! timestamp: the first offset whose timestamp is >= the target, across segments and inside
//! compressed batches (the storage layer finds it). With isolation_level read_committed every
//! answer stays below the last stable offset, and latest is the last stable offset. v10 adds
//! timeout_ms, the wait for a remote (tiered) log's answer: Fjord keeps every offset local, so
//! nothing waits and it is not read.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{error_code, leader_epoch_error};
use crate::broker::Broker;
use crate::types::TopicPartition;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// Whether a request version may ask for this timestamp: each special one came with a version
/// (max timestamp v7, earliest local v8, latest tiered v9); any other negative one is unknown.
/// Kafka 4.0 answers both UNSUPPORTED_VERSION for the partition.
fn timestamp_served(timestamp: i64, version: i16) -> bool {
    match timestamp {
        LATEST_TIMESTAMP | EARLIEST_TIMESTAMP => true,
        MAX_TIMESTAMP => version >= 7,
        EARLIEST_LOCAL_TIMESTAMP => version >= 8,
        LATEST_TIERED_TIMESTAMP => version >= 9,
        ts => ts >= 0,
    }
}

fn lookup(broker: &Broker, tp: &TopicPartition, timestamp: i64, read_committed: bool) -> Result<(i64, i64), crate::broker::replica_manager::ReplicaError> {
    let offsets = broker.replicas.offsets(tp)?;
    let end = if read_committed { offsets.last_stable_offset } else { offsets.high_watermark };
    Ok(match timestamp {
        LATEST_TIMESTAMP => (-1, end),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => (-1, offsets.log_start_offset),
        MAX_TIMESTAMP => match broker.replicas.max_timestamp(tp)? {
            Some((ts, offset)) if offset < end => (ts, offset),
            _ => (-1, -1),
        },
        // No tiered storage: nothing is tiered.
        LATEST_TIERED_TIMESTAMP => (-1, -1),
        ts => match broker.replicas.offset_for_timestamp(tp, ts)? {
            Some((offset, found_ts)) if offset < end => (found_ts, offset),
            _ => (-1, -1),
        },
    })
}

pub async fn handle(broker: &Arc<Broker>, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let meta = broker.metadata.topic(&name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let partition = broker.replicas.partition(&tp);
                    // Fields a version does not have must keep their defaults, or encoding fails.
                    let leader_epoch = match &partition {
                        Some(partition) if version >= 4 => partition.leader_epoch(),
                        _ => -1,
                    };
                    let resp = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_leader_epoch(leader_epoch);
                    let known = meta.as_ref().is_some_and(|m| p.partition_index >= 0 && p.partition_index < m.partitions);
                    if !known {
                        return resp.with_error_code(E::UnknownTopicOrPartition.code()).with_timestamp(-1).with_offset(-1);
                    }
                    if let Some(code) = leader_epoch_error(broker, &tp, p.current_leader_epoch) {
                        return resp.with_error_code(code).with_timestamp(-1).with_offset(-1);
                    }
                    if !timestamp_served(p.timestamp, version) {
                        return resp.with_error_code(E::UnsupportedVersion.code()).with_timestamp(-1).with_offset(-1).with_leader_epoch(-1);
                    }
                    match lookup(broker, &tp, p.timestamp, read_committed) {
                        // Nothing found: Kafka answers no leader epoch either.
                        Ok((ts, -1)) => resp.with_timestamp(ts).with_offset(-1).with_leader_epoch(-1),
                        Ok((ts, offset)) => resp.with_timestamp(ts).with_offset(offset),
                        Err(e) => {
                            tracing::warn!(partition = %tp, error = %e, "list offsets failed");
                            resp.with_error_code(error_code::replica(&e)).with_timestamp(-1).with_offset(-1)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
