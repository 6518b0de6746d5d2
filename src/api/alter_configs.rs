//! AlterConfigs: replaces the whole set of a topic's config overrides, of a group's (KIP-848 group
//! configs), of a client metrics subscription's (KIP-714), or of the dynamic broker configs of one scope (this broker, or "" for the cluster
//! default); keys not named go back to
//! what lies below. Validated as CreateTopics and startup validate them, applied live. Also the
//! checks IncrementalAlterConfigs shares.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::config::topic_def;

/// A refusal of one resource: Kafka error code and message.
pub(super) type Refusal = (i16, String);

/// Checks a topic's proposed overrides and, unless `validate_only`, makes them the topic's.
pub(super) fn set_topic_configs(broker: &Broker, topic: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), Refusal> {
    if broker.topic_or_wait(Some(topic), uuid::Uuid::nil()).is_none() {
        return Err((E::UnknownTopicOrPartition.code(), format!("Topic {topic} does not exist")));
    }
    if let Some(k) = configs.keys().find(|k| topic_def(k).is_none()) {
        return Err((E::InvalidConfig.code(), format!("Unknown topic config name: {k}")));
    }
    broker.config.log_config(&configs).map_err(|e| (E::InvalidConfig.code(), e.to_string()))?;
    if validate_only {
        return Ok(());
    }
    broker.set_topic_configs(topic, configs).map(|_| ()).map_err(|e| (error_code::metadata(&e), e.to_string()))
}

/// Which dynamic scope a BROKER resource names: this broker (true) or the cluster default
/// (false, the empty name). As in Kafka 4.0, a broker alters only its own id's configs, also in a
/// cluster (the admin client sends a broker's resource to that broker): another id, registered
/// or not, is INVALID_REQUEST with Kafka's words (checked against a 3-broker Kafka 4.0).
pub(super) fn broker_scope(broker: &Broker, name: &str) -> Result<bool, Refusal> {
    if name.is_empty() {
        return Ok(false);
    }
    if name.parse::<i32>().is_err() {
        return Err((E::InvalidRequest.code(), format!("Node id must be an integer, but it is: {name}")));
    }
    if name != broker.config.node_id.to_string() {
        return Err((E::InvalidRequest.code(), format!("Unexpected broker id, expected {}, but received {name}", broker.config.node_id)));
    }
    Ok(true)
}

/// The current dynamic configs of one scope.
pub(super) fn dynamic_scope(broker: &Broker, per_broker: bool) -> BTreeMap<String, String> {
    let d = broker.config.dynamic.read().unwrap_or_else(|e| e.into_inner());
    if per_broker { d.per_broker.clone() } else { d.cluster_default.clone() }
}

/// A refused broker config is INVALID_REQUEST, as Kafka 4.0 answers it (checked: a static property,
/// a value that is not a number, one below its minimum); topic configs get INVALID_CONFIG. In a
/// cluster the controller's refusal or absence is answered with its code.
pub(super) fn set_broker_configs(broker: &Broker, per_broker: bool, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), Refusal> {
    use crate::broker::DynamicConfigError as D;
    broker.set_dynamic_configs(per_broker, configs, validate_only).map_err(|e| match e {
        D::Invalid(msg) => (E::InvalidRequest.code(), msg),
        D::Metadata(e) => (error_code::metadata(&e), e.to_string()),
    })
}

/// Checks a group's proposed config overrides and, unless `validate_only`, makes them the group's.
pub(super) fn set_group_configs(broker: &Broker, group: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), Refusal> {
    if group.is_empty() {
        return Err((E::InvalidRequest.code(), "Group name must not be empty".into()));
    }
    broker.set_group_configs(group, configs, validate_only).map_err(|msg| (E::InvalidConfig.code(), msg))
}

/// Checks a client metrics subscription's proposed configs (the whole set) and, unless
/// `validate_only`, makes them its configs; an empty set removes the subscription. On a node of a
/// metadata quorum they go through the controller into the metadata log, as Kafka keeps them,
/// and every broker follows them from there; a single node keeps them in its own file.
pub(super) fn set_client_metrics_configs(broker: &Broker, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), Refusal> {
    use crate::broker::client_metrics::ClientMetricsError as C;
    let refusal = |e: C| match e {
        C::InvalidRequest(m) => (E::InvalidRequest.code(), m),
        C::InvalidConfig(m) => (E::InvalidConfig.code(), m),
        C::Store(m) => (E::KafkaStorageError.code(), m),
    };
    if let Some(cluster) = &broker.cluster {
        crate::broker::client_metrics::validate(name, &configs).map_err(refusal)?;
        if validate_only {
            return Ok(());
        }
        return broker.set_client_metrics_in_cluster(cluster, name, configs).map_err(|e| (error_code::metadata(&e), e.to_string()));
    }
    broker.client_metrics.set(name, configs, validate_only).map_err(refusal)
}

/// (error code, error message) of one resource's outcome, as both alter APIs answer it.
pub(super) fn outcome_fields(outcome: Result<(), Refusal>) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, msg)) => (code, Some(str_bytes(msg))),
    }
}

/// Resources named twice in one request are refused, each of them (Kafka's rule).
pub(super) fn duplicates<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> HashMap<(i8, String), usize> {
    let mut counts = HashMap::new();
    for (t, n) in resources {
        *counts.entry((t, n.to_string())).or_default() += 1;
    }
    counts
}

pub async fn handle(broker: &Arc<Broker>, req: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
    let counts = duplicates(req.resources.iter().map(|r| (r.resource_type, r.resource_name.as_str())));
    let responses = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let outcome = (|| -> Result<(), Refusal> {
                if counts[&(r.resource_type, name.clone())] > 1 {
                    return Err((E::InvalidRequest.code(), format!("Duplicate resource in request: {name}")));
                }
                let mut configs = BTreeMap::new();
                for c in &r.configs {
                    let Some(v) = &c.value else {
                        return Err((E::InvalidRequest.code(), format!("Null value not supported for : {}", c.name)));
                    };
                    if configs.insert(c.name.to_string(), v.to_string()).is_some() {
                        return Err((E::InvalidRequest.code(), "Error due to duplicate config keys".into()));
                    }
                }
                match r.resource_type {
                    RESOURCE_TOPIC => set_topic_configs(broker, &name, configs, req.validate_only),
                    RESOURCE_BROKER => broker_scope(broker, &name).and_then(|scope| set_broker_configs(broker, scope, configs, req.validate_only)),
                    RESOURCE_GROUP => set_group_configs(broker, &name, configs, req.validate_only),
                    RESOURCE_CLIENT_METRICS => set_client_metrics_configs(broker, &name, configs, req.validate_only),
                    other => Err((E::InvalidRequest.code(), format!("Unsupported resource type {other}"))),
                }
            })();
            let (code, message) = outcome_fields(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
