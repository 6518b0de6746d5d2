//! DescribeConfigs for topics (overrides and broker-level defaults, with sources and synonyms),
//! for this broker (every known property), for groups (KIP-848 group configs) and for client
//! metrics subscriptions (KIP-714). Also the shared config listing CreateTopics uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::config::{BROKER_CONFIGS, TOPIC_CONFIGS, is_dynamic_broker_config};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// KIP-714 client metrics subscriptions (metrics, interval.ms, match).
pub const RESOURCE_CLIENT_METRICS: i8 = 16;
/// KIP-848 group configs (consumer.session.timeout.ms, ...).
pub const RESOURCE_GROUP: i8 = 32;

/// Kafka's ConfigSource ids.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;
pub const SOURCE_CLIENT_METRICS: i8 = 7;
pub const SOURCE_GROUP: i8 = 8;

/// One described config: (name, value, source, type, doc, synonyms as (name, value, source)).
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub kind: i8,
    pub doc: &'static str,
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

fn broker_source(broker: &Broker, name: &str) -> i8 {
    match broker.config.dynamic_value(name) {
        Some((_, true)) => SOURCE_DYNAMIC_BROKER,
        Some((_, false)) => SOURCE_DYNAMIC_DEFAULT_BROKER,
        None if broker.config.explicit.contains_key(name) => SOURCE_STATIC_BROKER,
        None => SOURCE_DEFAULT,
    }
}

/// Every layer that sets a broker property, highest first, as DescribeConfigs synonyms.
fn broker_synonyms(broker: &Broker, name: &str) -> Vec<(String, Option<String>, i8)> {
    let mut out = Vec::new();
    {
        let d = broker.config.dynamic.read().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = d.per_broker.get(name) {
            out.push((name.to_string(), Some(v.clone()), SOURCE_DYNAMIC_BROKER));
        }
        if let Some(v) = d.cluster_default.get(name) {
            out.push((name.to_string(), Some(v.clone()), SOURCE_DYNAMIC_DEFAULT_BROKER));
        }
    }
    if let Some(v) = broker.config.explicit.get(name) {
        out.push((name.to_string(), Some(v.clone()), SOURCE_STATIC_BROKER));
    }
    // Kafka's dynamic-only configs have no static default to name (checked against Kafka 4.0).
    if let Some(d) = crate::config::broker_def(name).and_then(|d| d.default).filter(|_| !crate::config::LISTED_ONLY_WHEN_SET.contains(&name)) {
        out.push((name.to_string(), Some(d.to_string()), SOURCE_DEFAULT));
    }
    out
}

/// Kafka's topic-level default where the broker property behind the topic config has none
/// (null): flush.ms is Long.MAX_VALUE ("never") while log.flush.interval.ms is unset.
fn topic_default_without_broker_value(name: &str) -> Option<String> {
    match name {
        "flush.ms" => Some(i64::MAX.to_string()),
        _ => None,
    }
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
            if synonym.is_empty() {
                // No broker property behind it: Kafka's default, no synonym.
                let (value, source) = match overrides.get(*name) {
                    Some(v) => (Some(v.clone()), SOURCE_DYNAMIC_TOPIC),
                    None => (broker.config.topic_value(&BTreeMap::new(), name), SOURCE_DEFAULT),
                };
                return Described { name: name.to_string(), value, source, kind: *kind as i8, doc, synonyms };
            }
            // The layers that set the broker property itself; one derived from another property
            // (retention.ms from log.retention.hours) has none, as in Kafka 4.0.
            let broker_value = broker.config.value(synonym);
            synonyms.extend(broker_synonyms(broker, synonym));
            let (value, source) = match overrides.get(*name) {
                Some(v) => (Some(v.clone()), SOURCE_DYNAMIC_TOPIC),
                None => (broker_value.or_else(|| topic_default_without_broker_value(name)), broker_source(broker, synonym)),
            };
            Described { name: name.to_string(), value, source, kind: *kind as i8, doc, synonyms }
        })
        .collect()
}

/// Every group config of one group (Kafka 4.0 answers for any group id, known or not): its
/// override (GROUP_CONFIG), else the broker's value for it (the broker's `group.*` property, or
/// Kafka's default), named as the group config at DEFAULT_CONFIG. One synonym either way, as
/// Kafka 4.0 describes it.
pub fn group_configs(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<Described> {
    crate::config::GROUP_CONFIGS
        .iter()
        .map(|(name, _, kind, doc)| {
            let source = if overrides.contains_key(*name) { SOURCE_GROUP } else { SOURCE_DEFAULT };
            let value = broker.config.group_config_value(overrides, name);
            let synonyms = value.iter().map(|v| (name.to_string(), Some(v.clone()), source)).collect();
            Described { name: name.to_string(), value, source, kind: *kind as i8, doc, synonyms }
        })
        .collect()
}

/// Every known broker property (those Kafka defines only dynamically where set), then the custom
/// ones set dynamically; with whether each may change at run time (read_only otherwise).
fn broker_configs(broker: &Broker) -> Vec<(Described, bool)> {
    let mut out: Vec<(Described, bool)> = BROKER_CONFIGS
        .iter()
        .filter(|d| !crate::config::LISTED_ONLY_WHEN_SET.contains(&d.name) || broker_source(broker, d.name) != SOURCE_DEFAULT)
        .map(|d| {
            // Kafka lists no synonym for a null default.
            let (value, source, synonyms) = (broker.config.described_value(d.name), broker_source(broker, d.name), broker_synonyms(broker, d.name));
            let described = Described { name: d.name.to_string(), value, source, kind: d.kind as i8, doc: d.doc, synonyms };
            (described, !is_dynamic_broker_config(d.name))
        })
        .collect();
    let custom: Vec<String> = {
        let d = broker.config.dynamic.read().unwrap_or_else(|e| e.into_inner());
        d.per_broker.keys().chain(d.cluster_default.keys()).filter(|k| crate::config::broker_def(k).is_none()).cloned().collect()
    };
    for name in custom.into_iter().collect::<std::collections::BTreeSet<_>>() {
        let value = broker.config.value(&name);
        let source = broker_source(broker, &name);
        let synonyms = broker_synonyms(broker, &name);
        out.push((Described { name, value, source, kind: crate::config::ConfigType::String as i8, doc: "", synonyms }, false));
    }
    out
}

fn to_result(mut d: Described, synonyms: bool, docs: bool, read_only: bool) -> DescribeConfigsResourceResult {
    // Passwords and PEM keys (e.g. a dynamic ssl.keystore.password, ssl.keystore.key) are never
    // shown, as Kafka hides them.
    let sensitive = crate::config::is_sensitive(&d.name);
    if sensitive {
        d.value = None;
        d.synonyms.iter_mut().for_each(|s| s.1 = None);
    }
    DescribeConfigsResourceResult::default()
        .with_is_sensitive(sensitive)
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
            let configs: Vec<(Described, bool)> = match r.resource_type {
                RESOURCE_TOPIC => match broker.metadata.topic(&name) {
                    Some(t) => topic_configs(broker, &t.configs).into_iter().map(|d| (d, false)).collect(),
                    // A name no topic can have is refused as such before it is looked up (Kafka's
                    // Topic.validate).
                    None if let Some(why) = crate::metadata::topic_name_refusal(&name) => {
                        return result.with_error_code(E::InvalidTopicException.code()).with_error_message(Some(str_bytes(why)));
                    }
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
                            .with_error_message(Some(str_bytes(format!("Unexpected broker id, expected {} or empty string, but received {name}", broker.config.node_id))));
                    }
                    if name.is_empty() {
                        // The cluster-default resource: only what was set dynamically there.
                        let defaults = broker.config.dynamic.read().unwrap_or_else(|e| e.into_inner()).cluster_default.clone();
                        defaults
                            .into_iter()
                            .map(|(k, v)| {
                                let kind = crate::config::broker_def(&k).map_or(crate::config::ConfigType::String, |d| d.kind) as i8;
                                let doc = crate::config::broker_def(&k).map_or("", |d| d.doc);
                                let synonyms = vec![(k.clone(), Some(v.clone()), SOURCE_DYNAMIC_DEFAULT_BROKER)];
                                (Described { name: k, value: Some(v), source: SOURCE_DYNAMIC_DEFAULT_BROKER, kind, doc, synonyms }, false)
                            })
                            .collect()
                    } else {
                        broker_configs(broker)
                    }
                }
                RESOURCE_GROUP => {
                    if name.is_empty() {
                        return result.with_error_code(E::InvalidRequest.code()).with_error_message(Some(str_bytes("Group name must not be empty")));
                    }
                    group_configs(broker, &broker.groups.group_configs(&name)).into_iter().map(|d| (d, false)).collect()
                }
                RESOURCE_CLIENT_METRICS => {
                    if name.is_empty() {
                        return result.with_error_code(E::InvalidRequest.code()).with_error_message(Some(str_bytes("Client metrics subscription name must not be empty")));
                    }
                    // Only what is set, with no type, documentation or synonyms, as Kafka 4.0
                    // describes a subscription (an unknown name has no configs, and no error).
                    let configs = broker.client_metrics.configs(&name);
                    let wanted = r.configuration_keys.as_ref().map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
                    let configs = configs
                        .into_iter()
                        .filter(|(k, _)| wanted.as_ref().is_none_or(|w| w.contains(k)))
                        .map(|(k, v)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(v)))
                                .with_config_source(SOURCE_CLIENT_METRICS)
                                .with_config_type(0)
                                .with_documentation(None)
                        })
                        .collect();
                    return result.with_configs(configs);
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
                .filter(|(d, _)| wanted.as_ref().is_none_or(|w| w.iter().any(|k| *k == d.name)))
                .map(|(d, read_only)| to_result(d, req.include_synonyms, req.include_documentation, read_only))
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
