//! CreatePartitions: grows topics, validated as Kafka's controller does (the count must grow,
//! assignments name this broker and cover exactly the new partitions); validate_only checks
//! without changing anything. A request adding more than [`MAX_PARTITIONS_PER_REQUEST`] partitions
//! in all is refused up front, topic by topic (see `handle`). The partitions added are charged to
//! the client's controller_mutation_rate (THROTTLING_QUOTA_EXCEEDED per topic from v3).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::quotas::MutationQuota;
use crate::config::MAX_PARTITIONS_PER_REQUEST;

fn grow(broker: &Broker, t: &CreatePartitionsTopic, validate_only: bool, quota: &mut MutationQuota) -> Result<(), (i16, String)> {
    let name = t.name.0.to_string();
    let mut charge = |current: i32| quota.charge(&broker.quotas, (t.count - current).max(0) as u32).map_err(|_| super::create_topics::throttled());
    if let Some(cluster) = &broker.cluster {
        // The controller checks the topic, the count and the assignments against the cluster's
        // metadata (this broker may not have applied the topic yet); internal topics are
        // refused here as below.
        if name == crate::group::OFFSETS_TOPIC || name == crate::txn::TRANSACTION_STATE_TOPIC {
            return Err((E::InvalidRequest.code(), format!("Cannot add partitions to internal topic {name}.")));
        }
        // Charged here, before the controller: the partitions this broker knows the topic has.
        if let Some(meta) = broker.metadata.topic(&name) {
            charge(meta.partitions)?;
        }
        let assignments = t.assignments.as_ref().map(|a| a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect());
        return broker
            .add_partitions_in_cluster(cluster, &name, t.count, assignments, validate_only)
            .map(|_| ())
            .map_err(|e| (error_code::metadata(&e), e.to_string()));
    }
    let Some(meta) = broker.metadata.topic(&name) else {
        return Err((E::UnknownTopicOrPartition.code(), format!("The topic '{name}' does not exist.")));
    };
    if meta.is_internal() {
        // The coordinators hash keys over the partition count: growing it would lose their state.
        return Err((E::InvalidRequest.code(), format!("Cannot add partitions to internal topic {name}.")));
    }
    if t.count < meta.partitions {
        return Err((E::InvalidPartitions.code(), format!("The topic {name} currently has {} partition(s); {} would not be an increase.", meta.partitions, t.count)));
    }
    if t.count == meta.partitions {
        return Err((E::InvalidPartitions.code(), format!("Topic already has {} partition(s).", meta.partitions)));
    }
    if let Some(assignments) = &t.assignments {
        let added = t.count - meta.partitions;
        if assignments.len() as i32 != added {
            return Err((
                E::InvalidReplicaAssignment.code(),
                format!("Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.", assignments.len()),
            ));
        }
        let node = broker.config.node_id;
        for a in assignments {
            let replicas: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
            crate::controller::placement::validate_manual_assignment(&replicas, |id| id == node, Some(1)).map_err(|e| (e.error_code(), e.to_string()))?;
        }
    }
    charge(meta.partitions)?;
    if validate_only {
        return Ok(());
    }
    broker.add_partitions(&name, t.count).map(|_| ()).map_err(|e| (error_code::metadata(&e), e.to_string()))
}

/// Kafka 4.0's controller has the same bound on the records of one request but enforces it midway:
/// the reference broker answers a growth past it with UNKNOWN_SERVER_ERROR (no message) after
/// having created the first 10,000 partitions. Fjord refuses before making anything, with the
/// answer Kafka gives CreateTopics for the same excess (POLICY_VIOLATION): each topic whose added
/// partitions would take the request's running total past the bound is refused, in request order;
/// the others are served as usual (validate_only too).
fn over_limit(broker: &Broker, t: &CreatePartitionsTopic, added_so_far: &mut i64) -> bool {
    let current = broker.metadata.topic(&t.name.0).map_or(0, |m| m.partitions);
    let added = i64::from(t.count) - i64::from(current);
    if added <= 0 {
        return false;
    }
    if *added_so_far + added > MAX_PARTITIONS_PER_REQUEST {
        return true;
    }
    *added_so_far += added;
    false
}

pub async fn handle(broker: &Arc<Broker>, req: CreatePartitionsRequest, _version: i16, mut quota: MutationQuota) -> CreatePartitionsResponse {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut added_so_far = 0i64;
    let results = req
        .topics
        .iter()
        .map(|t| {
            let base = CreatePartitionsTopicResult::default().with_name(t.name.clone()).with_error_message(None);
            let outcome = if counts[&t.name.0.to_string()] > 1 {
                Err((E::InvalidRequest.code(), "Duplicate topic in request.".to_string()))
            } else if over_limit(broker, t, &mut added_so_far) {
                tracing::warn!(topic = %t.name.0, count = t.count, "CreatePartitions refused: too many partitions in one request");
                Err((E::PolicyViolation.code(), "Excessively large number of partitions per request.".to_string()))
            } else {
                grow(broker, t, req.validate_only, &mut quota)
            };
            match outcome {
                Ok(()) => base,
                Err((code, msg)) => base.with_error_code(code).with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results).with_throttle_time_ms(quota.throttle_ms(&broker.quotas))
}
