//! DescribeConfigs for topics (overrides and broker-level defaults, with sources and synonyms)
//! and for this broker (every known property). Also the shared config listing CreateTopics uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::config::{BROKER_CONFIGS, TOPIC_CONFIGS};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigSource ids.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One described config: (name, value, source, type, doc, synonyms as (name, value, source)).
pub struct Described {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: i8,
    pub kind: i8,
    pub doc: &'static str,
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

fn broker_source(broker: &Broker, name: &str) -> i8 {
    if broker.config.explicit.contains_key(name) { SOURCE_STATIC_BROKER } else { SOURCE_DEFAULT }
}

/// Every topic config with its effective value, given the topic's overrides.
pub fn topic_configs(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Described> {
    TOPIC_CONFIGS
        .iter()
        .map(|(name, synonym, kind, doc)| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(*name) {
                synonyms.push((name.to_string(), Some(v.clone()), SOURCE_DYNAMIC_TOPIC));
            }
            let broker_value = broker.config.value(synonym);
            synonyms.push((synonym.to_string(), broker_value.clone(), broker_source(broker, synonym)));
            let (value, source) = match overrides.get(*name) {
                Some(v) => (Some(v.clone()), SOURCE_DYNAMIC_TOPIC),
                None => (broker_value, broker_source(broker, synonym)),
            };
            Described { name, value, source, kind: *kind as i8, doc, synonyms }
        })
        .collect()
}

fn broker_configs(broker: &Broker) -> Vec<Described> {
    BROKER_CONFIGS
        .iter()
        .map(|d| {
            let value = broker.config.value(d.name);
            let source = broker_source(broker, d.name);
            Described {
                name: d.name,
                value: value.clone(),
                source,
                kind: d.kind as i8,
                doc: d.doc,
                synonyms: vec![(d.name.to_string(), value, source)],
            }
        })
        .collect()
}

fn to_result(d: Described, synonyms: bool, docs: bool, read_only: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(d.name))
        .with_value(d.value.map(str_bytes))
        .with_read_only(read_only)
        .with_config_source(d.source)
        .with_config_type(d.kind)
        .with_documentation(if docs { Some(str_bytes(d.doc)) } else { None })
        .with_synonyms(if synonyms {
            d.synonyms
                .into_iter()
                .map(|(n, v, s)| DescribeConfigsSynonym::default().with_name(str_bytes(n)).with_value(v.map(str_bytes)).with_source(s))
                .collect()
        } else {
            vec![]
        })
}

pub async fn handle(broker: &Arc<Broker>, req: DescribeConfigsRequest, _version: i16) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let (configs, read_only) = match r.resource_type {
                RESOURCE_TOPIC => match broker.metadata.topic(&name) {
                    Some(t) => (topic_configs(broker, &t.configs), false),
                    None => {
                        return result
                            .with_error_code(E::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!("Topic {name} does not exist"))))
                    }
                },
                RESOURCE_BROKER => {
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return result
                            .with_error_code(E::InvalidRequest.code())
                            .with_error_message(Some(str_bytes(format!("Unexpected broker id, expected {} but received {name}", broker.config.node_id))));
                    }
                    // Static broker configs cannot change at run time yet.
                    (broker_configs(broker), true)
                }
                other => {
                    return result
                        .with_error_code(E::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!("Unsupported resource type {other}"))))
                }
            };
            let wanted = r.configuration_keys.map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
            let configs = configs
                .into_iter()
                .filter(|d| wanted.as_ref().is_none_or(|w| w.iter().any(|k| k == d.name)))
                .map(|d| to_result(d, req.include_synonyms, req.include_documentation, read_only))
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
