//! DescribeProducers: the producers with state on each partition (epoch, last sequence, last
//! timestamp, coordinator epoch, the first offset of an open transaction), as the partition's
//! producer state holds them.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::error_code;
use crate::broker::Broker;
use crate::types::TopicPartition;

pub async fn handle(broker: &Arc<Broker>, req: DescribeProducersRequest, _version: i16) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let resp = PartitionResponse::default().with_partition_index(*p);
                    let tp = TopicPartition::new(t.name.0.to_string(), *p);
                    match broker.replicas.producers(&tp) {
                        Ok(mut producers) => {
                            producers.sort_by_key(|(id, _)| *id);
                            let active = producers
                                .into_iter()
                                .map(|(id, e)| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(id))
                                        .with_producer_epoch(e.epoch as i32)
                                        .with_last_sequence(e.batches.back().map_or(-1, |b| b.last_seq))
                                        .with_last_timestamp(e.last_timestamp)
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(e.current_txn_first_offset)
                                })
                                .collect();
                            resp.with_active_producers(active)
                        }
                        Err(e) => {
                            let code = match &e {
                                crate::broker::replica_manager::ReplicaError::UnknownTopicOrPartition => E::UnknownTopicOrPartition.code(),
                                other => error_code::replica(other),
                            };
                            resp.with_error_code(code)
                        }
                    }
                })
                .collect();
            TopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
