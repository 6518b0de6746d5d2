//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on single topic config keys (the
//! list operations only for list-typed configs such as cleanup.policy), on top of the topic's
//! current overrides; validated and applied live through alter_configs' checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{Refusal, broker_change, duplicates, set_topic_configs};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::broker::Broker;
use crate::config::{ConfigType, topic_def};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The topic's overrides after the operations, or why they cannot apply.
fn apply_ops(broker: &Broker, topic: &str, r: &AlterConfigsResource) -> Result<BTreeMap<String, String>, Refusal> {
    let meta = broker.metadata.topic(topic).ok_or_else(|| (E::UnknownTopicOrPartition.code(), format!("Topic {topic} does not exist")))?;
    let mut configs = meta.configs.clone();
    let mut seen = std::collections::HashSet::new();
    for c in &r.configs {
        let key = c.name.to_string();
        if !seen.insert(key.clone()) {
            return Err((E::InvalidRequest.code(), format!("Error due to duplicate config keys: {key}")));
        }
        let def = topic_def(&key).ok_or_else(|| (E::InvalidConfig.code(), format!("Unknown topic config name: {key}")))?;
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
                if def.2 != ConfigType::List {
                    let verb = if c.config_operation == OP_APPEND { "append" } else { "subtract" };
                    return Err((E::InvalidConfig.code(), format!("Config value {verb} is not allowed for config key: {key}")));
                }
                let current = configs.get(&key).cloned().or_else(|| broker.config.topic_value(&BTreeMap::new(), &key)).unwrap_or_default();
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
                    RESOURCE_TOPIC => apply_ops(broker, &name, r).and_then(|configs| set_topic_configs(broker, &name, configs, req.validate_only)),
                    RESOURCE_BROKER => Err(broker_change(broker, &name, &r.configs.iter().map(|c| c.name.to_string()).collect::<Vec<_>>())),
                    other => Err((E::InvalidRequest.code(), format!("Unsupported resource type {other}"))),
                }
            };
            let base = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(()) => base.with_error_message(None),
                Err((code, msg)) => base.with_error_code(code).with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
