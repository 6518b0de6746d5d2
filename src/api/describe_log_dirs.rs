//! DescribeLogDirs: each log dir with its partitions (size in bytes; lag 0, as this broker
//! holds every replica it serves) and, from v4, the file system's total and usable bytes. A
//! request may name topics and partitions; null means all. An offline log dir is listed with
//! KAFKA_STORAGE_ERROR and no partitions, as Kafka lists it. A partition being moved into a dir
//! (AlterReplicaLogDirs) is listed there too, as Kafka lists a future replica: `is_future_key`,
//! the bytes copied so far, and how many offsets the copy is behind.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: DescribeLogDirsRequest, version: i16) -> DescribeLogDirsResponse {
    let wanted: Option<HashMap<String, Vec<i32>>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect());
    let results = broker
        .replicas
        .logs()
        .dir_usage()
        .into_iter()
        .map(|d| {
            let mut topics: Vec<(String, Vec<DescribeLogDirsPartition>)> = Vec::new();
            let mut listed: Vec<(crate::types::TopicPartition, u64, i64, bool)> =
                d.partitions.into_iter().map(|(tp, size)| (tp, size, 0, false)).chain(d.futures.into_iter().map(|(tp, size, lag)| (tp, size, lag, true))).collect();
            listed.sort_by(|a, b| (&a.0, a.3).cmp(&(&b.0, b.3)));
            for (tp, size, lag, future) in listed {
                if let Some(w) = &wanted {
                    if !w.get(&tp.topic).is_some_and(|ps| ps.contains(&tp.partition)) {
                        continue;
                    }
                }
                let p = DescribeLogDirsPartition::default().with_partition_index(tp.partition).with_partition_size(size as i64).with_offset_lag(lag).with_is_future_key(future);
                match topics.last_mut() {
                    Some((name, ps)) if *name == tp.topic => ps.push(p),
                    _ => topics.push((tp.topic.clone(), vec![p])),
                }
            }
            let topics = topics.into_iter().map(|(n, ps)| DescribeLogDirsTopic::default().with_name(topic_name(n)).with_partitions(ps)).collect();
            let base = DescribeLogDirsResult::default().with_log_dir(str_bytes(d.dir.display().to_string())).with_total_bytes(-1).with_usable_bytes(-1);
            if d.offline.is_some() {
                // Taken offline by an I/O error (logged then): nothing in it is served.
                return base.with_error_code(E::KafkaStorageError.code());
            }
            match d.space {
                Ok((total, usable)) if version >= 4 => base.with_topics(topics).with_total_bytes(total as i64).with_usable_bytes(usable as i64),
                Ok(_) => base.with_topics(topics),
                Err(e) => {
                    tracing::warn!(dir = %d.dir.display(), error = %e, "log dir not usable");
                    base.with_error_code(E::KafkaStorageError.code())
                }
            }
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
