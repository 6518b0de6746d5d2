//! DeleteRecords: moves each partition's log start offset (low watermark) forward; the records
//! below it are no longer served and whole segments below it are deleted.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::error_code;
use crate::broker::Broker;
use crate::types::TopicPartition;

pub async fn handle(broker: &Arc<Broker>, req: DeleteRecordsRequest, _version: i16) -> DeleteRecordsResponse {
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
                    let base = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index).with_low_watermark(-1);
                    let Some(meta) = meta.as_ref().filter(|m| p.partition_index >= 0 && p.partition_index < m.partitions) else {
                        return base.with_error_code(E::UnknownTopicOrPartition.code());
                    };
                    if meta.is_internal() {
                        return base.with_error_code(E::InvalidTopicException.code());
                    }
                    if p.offset < -1 {
                        return base.with_error_code(E::OffsetOutOfRange.code());
                    }
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    match broker.replicas.delete_records(&tp, p.offset) {
                        Ok(low) => base.with_low_watermark(low),
                        Err(e) => base.with_error_code(error_code::replica(&e)),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
