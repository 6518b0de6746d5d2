//! CreateTopics: validates names, partition counts, replication factor (one broker), replica
//! assignments and configs as Kafka does, and refuses a request too large for one operation
//! before anything is made; validate_only checks without creating.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::describe_configs::topic_configs;
use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::quotas::MutationQuota;
use crate::config::{MAX_PARTITIONS_PER_REQUEST, MAX_RECORDS_PER_USER_OP, topic_def};

/// A per-topic refusal: Kafka error code and message.
type Refusal = (i16, String);

/// Checks one topic; returns (partitions, replication factor, config overrides).
fn check(broker: &Broker, t: &CreatableTopic) -> Result<(i32, i16, BTreeMap<String, String>), Refusal> {
    let name = t.name.0.to_string();
    broker.metadata.check_new_topic(&name).map_err(|e| (error_code::metadata(&e), e.to_string()))?;
    if broker.cluster.is_some() {
        // Partitions, replication factor and assignments are the controller's to check.
        return Ok((t.num_partitions, t.replication_factor, check_configs(broker, t)?));
    }
    let node = broker.config.node_id;
    let (partitions, rf) = if !t.assignments.is_empty() {
        if t.replication_factor != -1 {
            return Err((E::InvalidRequest.code(), "A manual partition assignment was specified, but replication factor was not set to -1.".into()));
        }
        if t.num_partitions != -1 {
            return Err((E::InvalidRequest.code(), "A manual partition assignment was specified, but numPartitions was not set to -1.".into()));
        }
        let mut seen = HashSet::new();
        for a in &t.assignments {
            // In the order and words of Kafka's controller.
            if !seen.insert(a.partition_index) {
                return Err((E::InvalidReplicaAssignment.code(), format!("Found multiple manual partition assignments for partition {}", a.partition_index)));
            }
            let replicas: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
            crate::controller::placement::validate_manual_assignment(&replicas, |id| id == node, None).map_err(|e| (e.error_code(), e.to_string()))?;
        }
        let n = t.assignments.len() as i32;
        if (0..n).any(|p| !seen.contains(&p)) {
            return Err((E::InvalidReplicaAssignment.code(), "partitions should be a consecutive 0-based integer sequence".into()));
        }
        (n, 1)
    } else {
        let partitions = if t.num_partitions == -1 { broker.config.num_partitions } else { t.num_partitions };
        if partitions <= 0 {
            return Err((E::InvalidPartitions.code(), "Number of partitions was set to an invalid non-positive value.".into()));
        }
        let rf = if t.replication_factor == -1 { broker.config.default_replication_factor } else { t.replication_factor };
        if rf <= 0 {
            return Err((E::InvalidReplicationFactor.code(), "Replication factor must be larger than 0, or -1 to use the default value.".into()));
        }
        if rf > 1 {
            return Err((
                E::InvalidReplicationFactor.code(),
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        (partitions, rf)
    };
    Ok((partitions, rf, check_configs(broker, t)?))
}

/// The topic's config overrides, each a known topic config with a valid value.
fn check_configs(broker: &Broker, t: &CreatableTopic) -> Result<BTreeMap<String, String>, Refusal> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let key = c.name.to_string();
        if topic_def(&key).is_none() {
            return Err((E::InvalidConfig.code(), format!("Unknown topic config name: {key}")));
        }
        let Some(value) = &c.value else {
            return Err((E::InvalidConfig.code(), format!("Null value not supported for topic configs: {key}")));
        };
        configs.insert(key, value.to_string());
    }
    broker.config.log_config(&configs).map_err(|e| (E::InvalidConfig.code(), e.to_string()))?;
    Ok(configs)
}

/// Partitions a topic entry asks for, before any validation (Kafka's first check counts them so):
/// its assignments, else its count, -1 meaning num.partitions; an invalid count asks for none.
fn requested_partitions(broker: &Broker, t: &CreatableTopic) -> i64 {
    if !t.assignments.is_empty() {
        t.assignments.len() as i64
    } else if t.num_partitions == -1 {
        i64::from(broker.config.num_partitions)
    } else {
        i64::from(t.num_partitions.max(0))
    }
}

/// Why a whole request is refused before any topic is looked at or made, as Kafka's controller
/// answers it: every topic of the request gets the same POLICY_VIOLATION. First the partitions
/// asked for across all topics, then the metadata records the topics that passed their own checks
/// would write (one per topic, per partition and per config override).
fn refuse_whole_request(broker: &Broker, req: &CreateTopicsRequest, checked: &[Result<(i32, i16, BTreeMap<String, String>), Refusal>]) -> Option<Refusal> {
    let asked: i64 = req.topics.iter().map(|t| requested_partitions(broker, t)).sum();
    if asked > MAX_PARTITIONS_PER_REQUEST {
        return Some((E::PolicyViolation.code(), "Excessively large number of partitions per request.".into()));
    }
    let records: i64 = checked.iter().flatten().map(|(partitions, _, configs)| 1 + i64::from(*partitions) + configs.len() as i64).sum();
    if records > MAX_RECORDS_PER_USER_OP {
        return Some((E::PolicyViolation.code(), "Unable to perform excessively large batch operation.".into()));
    }
    None
}

/// THROTTLING_QUOTA_EXCEEDED with Kafka's message, for a topic refused by
/// controller_mutation_rate.
pub(crate) fn throttled() -> Refusal {
    (E::ThrottlingQuotaExceeded.code(), "The throttling quota has been exceeded.".into())
}

pub async fn handle(broker: &Arc<Broker>, req: CreateTopicsRequest, version: i16, mut quota: MutationQuota) -> CreateTopicsResponse {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.to_string()).or_default() += 1;
    }
    // Every topic is checked before any is made, so a request refused as a whole makes nothing.
    let checked: Vec<Result<(i32, i16, BTreeMap<String, String>), Refusal>> = req
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.to_string();
            if counts[&name] > 1 {
                return Err((E::InvalidRequest.code(), "Duplicate topic name.".into()));
            }
            check(broker, t)
        })
        .collect();
    let whole = refuse_whole_request(broker, &req, &checked);
    // Each valid topic's partitions are charged to controller_mutation_rate in request order, as
    // Kafka's controller does before creating it (also when only validating); this broker
    // charges them before any reaches the controller.
    let checked = if whole.is_some() {
        checked
    } else {
        checked.into_iter().map(|c| c.and_then(|v| quota.charge(&broker.quotas, v.0.max(0) as u32).map(|()| v).map_err(|_| throttled()))).collect()
    };
    let forwarded = match (&broker.cluster, &whole) {
        (Some(cluster), None) => Some(forward(broker, cluster, &req, &checked).await),
        _ => None,
    };
    if let Some((_, msg)) = &whole {
        tracing::warn!(topics = req.topics.len(), reason = %msg, "CreateTopics refused");
    }
    let results = req
        .topics
        .iter()
        .zip(checked)
        .map(|(t, checked)| {
            let name = t.name.0.to_string();
            let base = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_message(None)
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let refuse = |(code, msg): Refusal| base.clone().with_error_code(code).with_error_message(Some(str_bytes(msg)));
            if let Some(r) = &whole {
                return refuse(r.clone());
            }
            let (mut partitions, mut rf, configs) = match checked {
                Ok(v) => v,
                Err(r) => return refuse(r),
            };
            let mut created_id = None;
            if let Some(forwarded) = &forwarded {
                match forwarded.get(&name) {
                    Some(Ok((id, p, r))) => (created_id, partitions, rf) = (Some(*id), *p, *r),
                    Some(Err(r)) => return refuse(r.clone()),
                    None => return refuse((E::UnknownServerError.code(), "the controller did not answer for this topic".into())),
                }
            }
            let described = topic_configs(broker, &configs)
                .into_iter()
                .map(|d| {
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(d.name))
                        .with_value(d.value.map(str_bytes))
                        .with_config_source(d.source)
                })
                .collect();
            let id = if req.validate_only {
                uuid::Uuid::nil()
            } else if let Some(id) = created_id {
                id
            } else {
                match broker.create_topic(&name, partitions, configs) {
                    Ok(meta) => meta.id,
                    Err(e) => return refuse((error_code::metadata(&e), e.to_string())),
                }
            };
            if version < 5 {
                return base; // no topic details before v5
            }
            base.with_topic_id(if version >= 7 { id } else { uuid::Uuid::nil() })
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(Some(described))
        })
        .collect::<Vec<_>>();
    // A name given twice is answered once, as Kafka's controller answers it.
    let mut answered = HashSet::new();
    let results = results.into_iter().filter(|r| counts[r.name.0.as_str()] == 1 || answered.insert(r.name.0.to_string())).collect();
    CreateTopicsResponse::default().with_topics(results).with_throttle_time_ms(quota.throttle_ms(&broker.quotas))
}

/// What the controller answered for each topic: (id, partitions, replication factor) or a
/// refusal. The topics that passed the local checks go to the active controller; this handler
/// thread then waits until the publisher has added the created ones here.
async fn forward(
    broker: &Broker,
    cluster: &crate::broker::cluster::ClusterState,
    req: &CreateTopicsRequest,
    checked: &[Result<(i32, i16, BTreeMap<String, String>), Refusal>],
) -> BTreeMap<String, Result<(uuid::Uuid, i32, i16), Refusal>> {
    let topics: Vec<CreatableTopic> = req.topics.iter().zip(checked).filter(|(_, c)| c.is_ok()).map(|(t, _)| t.clone()).collect();
    let mut out = BTreeMap::new();
    if topics.is_empty() {
        return out;
    }
    let request = CreateTopicsRequest::default().with_topics(topics.clone()).with_timeout_ms(req.timeout_ms).with_validate_only(req.validate_only);
    match cluster.create_topics(&request, crate::broker::CLUSTER_REQUEST_TIMEOUT).await {
        Ok(response) => {
            for r in response.topics {
                let name = r.name.0.to_string();
                let answer = if r.error_code != 0 {
                    Err((r.error_code, r.error_message.map(|m| m.to_string()).unwrap_or_default()))
                } else if req.validate_only {
                    Ok((uuid::Uuid::nil(), r.num_partitions, r.replication_factor))
                } else if broker.wait_for_topic(r.topic_id).is_some() {
                    Ok((r.topic_id, r.num_partitions, r.replication_factor))
                } else {
                    Err((E::RequestTimedOut.code(), "the topic was created but its metadata has not reached this broker yet".into()))
                };
                out.insert(name, answer);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "CreateTopics could not reach the active controller");
            for t in &topics {
                out.insert(t.name.0.to_string(), Err((E::RequestTimedOut.code(), format!("no active controller answered: {e}"))));
            }
        }
    }
    out
}
