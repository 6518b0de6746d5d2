//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single config keys (the list
//! operations only for list-typed configs such as cleanup.policy), on top of a topic's current
//! overrides, a group's (KIP-848 group configs), a client metrics subscription's (KIP-714) or a broker scope's dynamic configs; validated and applied live through
//! alter_configs' checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{Refusal, broker_scope, duplicates, dynamic_scope, outcome_fields, set_broker_configs, set_client_metrics_configs, set_group_configs, set_topic_configs};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP, RESOURCE_TOPIC};
use crate::broker::Broker;
use crate::config::{ConfigType, broker_def, group_def, topic_def};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// `configs` after the operations. `kind` names a key's type (None: unknown key, refused for
/// topics); `inherited` is the value a list operation starts from when the key is not set here.
fn apply_ops(
    mut configs: BTreeMap<String, String>,
    r: &AlterConfigsResource,
    kind: impl Fn(&str) -> Result<ConfigType, Refusal>,
    inherited: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut seen = std::collections::HashSet::new();
    for c in &r.configs {
        let key = c.name.to_string();
        if !seen.insert(key.clone()) {
            return Err((E::InvalidRequest.code(), "Error due to duplicate config keys".into()));
        }
        let kind = kind(&key)?;
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            OP_SET => {
                let v = value.ok_or_else(|| (E::InvalidRequest.code(), format!("Null value not supported for : {key}")))?;
                configs.insert(key, v);
            }
            OP_DELETE => {
                configs.remove(&key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if kind != ConfigType::List {
                    let verb = if c.config_operation == OP_APPEND { "APPEND" } else { "SUBTRACT" };
                    return Err((E::InvalidConfig.code(), format!("Can't {verb} to key {key} because its type is not LIST.")));
                }
                let current = configs.get(&key).cloned().or_else(|| inherited(&key)).unwrap_or_default();
                let mut items: Vec<String> = current.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
                for v in value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if c.config_operation == OP_APPEND {
                        if !items.iter().any(|i| i == v) {
                            items.push(v.to_string());
                        }
                    } else {
                        items.retain(|i| i != v);
                    }
                }
                configs.insert(key, items.join(","));
            }
            other => return Err((E::InvalidRequest.code(), format!("Unknown config operation {other} for {key}"))),
        }
    }
    Ok(configs)
}

fn alter_topic(broker: &Broker, topic: &str, r: &AlterConfigsResource, validate_only: bool) -> Result<(), Refusal> {
    let meta = broker.topic_or_wait(Some(topic), uuid::Uuid::nil()).ok_or_else(|| (E::UnknownTopicOrPartition.code(), format!("Topic {topic} does not exist")))?;
    let kind = |k: &str| topic_def(k).map(|d| d.2).ok_or_else(|| (E::InvalidConfig.code(), format!("Unknown topic config name: {k}")));
    let configs = apply_ops(meta.configs.clone(), r, kind, |k| broker.config.topic_value(&BTreeMap::new(), k))?;
    set_topic_configs(broker, topic, configs, validate_only)
}

fn alter_broker(broker: &Broker, name: &str, r: &AlterConfigsResource, validate_only: bool) -> Result<(), Refusal> {
    let per_broker = broker_scope(broker, name)?;
    // Keys Fjord does not know are custom configs (strings), as in Kafka.
    let kind = |k: &str| Ok(broker_def(k).map_or(ConfigType::String, |d| d.kind));
    let configs = apply_ops(dynamic_scope(broker, per_broker), r, kind, |k| broker.config.value(k))?;
    set_broker_configs(broker, per_broker, configs, validate_only)
}

fn alter_group(broker: &Broker, group: &str, r: &AlterConfigsResource, validate_only: bool) -> Result<(), Refusal> {
    let kind = |k: &str| group_def(k).map(|d| d.2).ok_or_else(|| (E::InvalidConfig.code(), format!("Unknown group config name: {k}")));
    let configs = apply_ops(broker.groups.group_configs(group), r, kind, |k| broker.config.group_config_value(&BTreeMap::new(), k))?;
    set_group_configs(broker, group, configs, validate_only)
}

/// A client metrics subscription's configs after the operations; unknown keys are left for the
/// validation to name (Kafka's "Unknown client metrics configuration").
fn alter_client_metrics(broker: &Broker, name: &str, r: &AlterConfigsResource, validate_only: bool) -> Result<(), Refusal> {
    let kind = |k: &str| Ok(crate::broker::client_metrics::config_type(k).unwrap_or(ConfigType::String));
    let configs = apply_ops(broker.client_metrics.configs(name), r, kind, |_| None)?;
    set_client_metrics_configs(broker, name, configs, validate_only)
}

pub async fn handle(broker: &Arc<Broker>, req: IncrementalAlterConfigsRequest, _version: i16) -> IncrementalAlterConfigsResponse {
    let counts = duplicates(req.resources.iter().map(|r| (r.resource_type, r.resource_name.as_str())));
    let responses = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let outcome = if counts[&(r.resource_type, name.clone())] > 1 {
                Err((E::InvalidRequest.code(), format!("Duplicate resource in request: {name}")))
            } else {
                match r.resource_type {
                    RESOURCE_TOPIC => alter_topic(broker, &name, r, req.validate_only),
                    RESOURCE_BROKER => alter_broker(broker, &name, r, req.validate_only),
                    RESOURCE_GROUP => alter_group(broker, &name, r, req.validate_only),
                    RESOURCE_CLIENT_METRICS => alter_client_metrics(broker, &name, r, req.validate_only),
                    other => Err((E::InvalidRequest.code(), format!("Unsupported resource type {other}"))),
                }
            };
            let (code, message) = outcome_fields(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
