//! AlterReplicaLogDirs: moves partitions between this broker's log dirs. Each move is checked and
//! recorded here and made on a thread of its own (`storage::log_move`); the answer does not wait
//! for the copy, as Kafka's does not: DescribeLogDirs shows the copy as a future replica until it
//! is switched in.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::alter_replica_log_dirs_response::{AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, TopicName};

use super::error_code;
use crate::broker::Broker;
use crate::storage::log_move::MoveStarted;
use crate::types::TopicPartition;

pub async fn handle(broker: &Arc<Broker>, req: AlterReplicaLogDirsRequest, _version: i16) -> AlterReplicaLogDirsResponse {
    let mut results: BTreeMap<String, (TopicName, Vec<AlterReplicaLogDirPartitionResult>)> = BTreeMap::new();
    for dir in req.dirs {
        for t in dir.topics {
            let name = t.name.0.to_string();
            let meta = broker.metadata.topic(&name);
            let out = &mut results.entry(name.clone()).or_insert_with(|| (t.name.clone(), Vec::new())).1;
            for p in t.partitions {
                let code = if !meta.as_ref().is_some_and(|m| p >= 0 && p < m.partitions) {
                    E::UnknownTopicOrPartition.code()
                } else {
                    let tp = TopicPartition::new(name.clone(), p);
                    match broker.replicas.logs().request_move(&tp, &dir.path) {
                        Ok(MoveStarted::Started) => match start_mover(broker, tp) {
                            Ok(()) => 0,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot start a thread to move a partition");
                                E::KafkaStorageError.code()
                            }
                        },
                        Ok(MoveStarted::AlreadyThere | MoveStarted::Redirected) => 0,
                        Err(e) => {
                            tracing::info!(partition = %tp, dir = %dir.path.as_str(), error = %e, "partition not moved");
                            error_code::log_move(&e)
                        }
                    }
                };
                out.push(AlterReplicaLogDirPartitionResult::default().with_partition_index(p).with_error_code(code));
            }
        }
    }
    let results = results.into_values().map(|(name, ps)| AlterReplicaLogDirTopicResult::default().with_topic_name(name).with_partitions(ps)).collect();
    AlterReplicaLogDirsResponse::default().with_results(results)
}

/// The copy blocks on disks for as long as the log is large: a thread of its own, not a request
/// handler thread. A thread that cannot be made forgets the move.
fn start_mover(broker: &Arc<Broker>, tp: TopicPartition) -> std::io::Result<()> {
    let b = broker.clone();
    let moved = tp.clone();
    let spawned = std::thread::Builder::new().name(format!("log-move-{tp}")).spawn(move || {
        // Failures are logged by run_move; the partition stays where it was.
        let _ = b.replicas.logs().run_move(&moved);
    });
    if spawned.is_err() {
        broker.replicas.logs().forget_move(&tp);
    }
    spawned.map(drop)
}
