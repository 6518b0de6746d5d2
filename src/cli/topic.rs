//! `fjord topic list|create|describe|alter-config|delete|add-partitions`: what Kafka's
//! kafka-topics.sh and kafka-configs.sh do for topics, through Metadata, CreateTopics,
//! DescribeConfigs, IncrementalAlterConfigs, CreatePartitions and DeleteTopics. Any broker
//! takes these (Kafka forwards them to its controller).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest, create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig}, delete_topics_request::DeleteTopicState, describe_configs_request::DescribeConfigsResource,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
};
use serde_json::json;

use super::Common;
use super::conn::{Cluster, check, error_name, send_capped, str_bytes, topic_name};
use super::output::{Table, print_json};

/// DescribeConfigs / IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs config source: set on this topic.
const SOURCE_TOPIC: i8 = 1;
/// How long the broker may take to create, grow or delete topics before it answers.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// The topics, with partition count and replication factor.
    List {
        /// Also list internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// Create a topic.
    Create {
        topic: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(short, long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(short, long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic config, repeatable: --config retention.ms=3600000
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Ask the broker to check the request without creating anything.
        #[arg(long)]
        validate_only: bool,
    },
    /// Partitions (leader, replicas, ISR) and the configs set on each topic.
    Describe {
        #[arg(required = true)]
        topics: Vec<String>,
        /// Show every config with its source, not only those set away from the default.
        #[arg(long)]
        all_configs: bool,
    },
    /// Set or delete topic configs (IncrementalAlterConfigs).
    AlterConfig {
        topic: String,
        /// Set a config, repeatable: --set retention.ms=3600000
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Delete a config (back to the default), repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Grow a topic to a total number of partitions (as kafka-topics.sh --alter --partitions).
    AddPartitions {
        topic: String,
        /// The new total partition count.
        #[arg(short = 'p', long = "partitions", value_name = "TOTAL")]
        total: i32,
    },
}

pub fn parse_key_value(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("expected KEY=VALUE, got {s:?}"),
    }
}

pub async fn run(cluster: &mut Cluster, common: &Common, command: TopicCommand) -> Result<ExitCode> {
    match command {
        TopicCommand::List { internal } => list(cluster, common, internal).await,
        TopicCommand::Create { topic, partitions, replication_factor, configs, validate_only } => {
            let configs = configs.iter().map(|c| parse_key_value(c)).collect::<Result<Vec<_>>>()?;
            let t = CreatableTopic::default()
                .with_name(topic_name(&topic))
                .with_num_partitions(partitions.unwrap_or(-1))
                .with_replication_factor(replication_factor.unwrap_or(-1))
                .with_configs(configs.iter().map(|(k, v)| CreatableTopicConfig::default().with_name(str_bytes(k)).with_value(Some(str_bytes(v)))).collect());
            let request = CreateTopicsRequest::default().with_topics(vec![t]).with_timeout_ms(ADMIN_TIMEOUT_MS).with_validate_only(validate_only);
            let response = send_capped(cluster.bootstrap(), &request, 7).await?;
            let r = response.topics.first().ok_or_else(|| anyhow::anyhow!("CreateTopics answered no topic"))?;
            if r.error_code != 0 {
                bail!("creating topic {topic}: {}{}", error_name(r.error_code), r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default());
            }
            let verb = if validate_only { "Validated" } else { "Created" };
            if common.json {
                print_json(&json!({"topic": topic, "created": !validate_only, "partitions": r.num_partitions, "replication_factor": r.replication_factor}));
            } else {
                println!("{verb} topic {topic}.");
            }
            Ok(ExitCode::SUCCESS)
        }
        TopicCommand::Describe { topics, all_configs } => describe(cluster, common, &topics, all_configs).await,
        TopicCommand::AlterConfig { topic, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let mut configs = Vec::new();
            for s in &set {
                let (k, v) = parse_key_value(s)?;
                configs.push(AlterableConfig::default().with_name(str_bytes(&k)).with_config_operation(0).with_value(Some(str_bytes(&v))));
            }
            for k in &delete {
                configs.push(AlterableConfig::default().with_name(str_bytes(k)).with_config_operation(1).with_value(None));
            }
            let resource = AlterConfigsResource::default().with_resource_type(RESOURCE_TOPIC).with_resource_name(str_bytes(&topic)).with_configs(configs);
            let response = send_capped(cluster.bootstrap(), &IncrementalAlterConfigsRequest::default().with_resources(vec![resource]), 1).await?;
            for r in &response.responses {
                if r.error_code != 0 {
                    bail!("altering the configs of {topic}: {}{}", error_name(r.error_code), r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default());
                }
            }
            if common.json {
                print_json(&json!({"topic": topic, "set": set, "deleted": delete}));
            } else {
                println!("Altered the configs of topic {topic}.");
            }
            Ok(ExitCode::SUCCESS)
        }
        TopicCommand::Delete { topics } => {
            let request = DeleteTopicsRequest::default()
                .with_topic_names(topics.iter().map(|t| topic_name(t)).collect())
                .with_topics(topics.iter().map(|t| DeleteTopicState::default().with_name(Some(topic_name(t)))).collect())
                .with_timeout_ms(ADMIN_TIMEOUT_MS);
            // v5: names (v6 takes them in `topics`, which kafka-protocol will not encode below v6).
            let version = cluster.bootstrap().version_for::<DeleteTopicsRequest>()?;
            let request = if version >= 6 { request.with_topic_names(Vec::new()) } else { request.with_topics(Vec::new()) };
            let response = cluster.bootstrap().send_version(&request, version).await?;
            let mut failed = Vec::new();
            let mut results = Vec::new();
            for r in &response.responses {
                let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                if r.error_code != 0 {
                    failed.push(format!("{name}: {}", error_name(r.error_code)));
                }
                results.push(json!({"topic": name, "error": (r.error_code != 0).then(|| error_name(r.error_code))}));
                if !common.json && r.error_code == 0 {
                    println!("Deleted topic {name}.");
                }
            }
            if common.json {
                print_json(&json!(results));
            }
            if !failed.is_empty() {
                bail!("deleting topics: {}", failed.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        TopicCommand::AddPartitions { topic, total } => {
            let t = CreatePartitionsTopic::default().with_name(topic_name(&topic)).with_count(total).with_assignments(None);
            let request = CreatePartitionsRequest::default().with_topics(vec![t]).with_timeout_ms(ADMIN_TIMEOUT_MS);
            let response = send_capped(cluster.bootstrap(), &request, 3).await?;
            for r in &response.results {
                if r.error_code != 0 {
                    bail!("adding partitions to {topic}: {}{}", error_name(r.error_code), r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default());
                }
            }
            if common.json {
                print_json(&json!({"topic": topic, "partitions": total}));
            } else {
                println!("Topic {topic} now has {total} partitions.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(cluster: &mut Cluster, common: &Common, internal: bool) -> Result<ExitCode> {
    let topics = cluster.topics(None).await?;
    let topics: Vec<_> = topics.into_iter().filter(|t| internal || !t.internal).collect();
    if common.json {
        let list: Vec<_> = topics
            .iter()
            .map(|t| json!({"topic": t.name, "topic_id": t.topic_id, "partitions": t.partitions.len(), "replication_factor": t.partitions.first().map(|p| p.replicas.len()), "internal": t.internal}))
            .collect();
        print_json(&json!(list));
    } else {
        let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]);
        for t in &topics {
            table.row(vec![t.name.clone(), t.partitions.len().to_string(), t.partitions.first().map(|p| p.replicas.len().to_string()).unwrap_or_else(|| "-".into())]);
        }
        table.print();
    }
    Ok(ExitCode::SUCCESS)
}

/// DescribeConfigs of one topic: (name, value, source name), sensitive values hidden.
async fn topic_configs(cluster: &mut Cluster, topic: &str, all: bool) -> Result<Vec<(String, Option<String>, &'static str)>> {
    let resource = DescribeConfigsResource::default().with_resource_type(RESOURCE_TOPIC).with_resource_name(str_bytes(topic)).with_configuration_keys(None);
    let response = send_capped(cluster.bootstrap(), &DescribeConfigsRequest::default().with_resources(vec![resource]), 4).await?;
    let mut out = Vec::new();
    for r in &response.results {
        check(r.error_code, format!("describing the configs of {topic}"))?;
        for c in &r.configs {
            if !all && c.config_source != SOURCE_TOPIC {
                continue;
            }
            let value = if c.is_sensitive { Some("(sensitive)".to_string()) } else { c.value.as_ref().map(|v| v.to_string()) };
            out.push((c.name.to_string(), value, source_name(c.config_source)));
        }
    }
    out.sort();
    Ok(out)
}

/// Kafka's names of the DescribeConfigs sources, as kafka-configs.sh prints them.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

async fn describe(cluster: &mut Cluster, common: &Common, topics: &[String], all_configs: bool) -> Result<ExitCode> {
    let described = cluster.topics(Some(topics)).await?;
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for t in &described {
        if t.error_code != 0 {
            failed.push(format!("{}: {}", t.name, error_name(t.error_code)));
            continue;
        }
        let configs = topic_configs(cluster, &t.name, all_configs).await?;
        if common.json {
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| json!({"partition": p.partition, "leader": p.leader, "replicas": p.replicas, "isr": p.isr, "error": (p.error_code != 0).then(|| error_name(p.error_code))}))
                .collect();
            let configs: serde_json::Map<String, serde_json::Value> = configs.iter().map(|(k, v, _)| (k.clone(), json!(v))).collect();
            docs.push(json!({"topic": t.name, "topic_id": t.topic_id, "internal": t.internal, "partitions": partitions, "configs": configs}));
        } else {
            let rf = t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0);
            println!("Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}", t.name, t.topic_id, t.partitions.len(), rf);
            if !configs.is_empty() {
                let shown: Vec<String> = configs.iter().map(|(k, v, s)| if all_configs { format!("{k}={} ({s})", v.as_deref().unwrap_or("null")) } else { format!("{k}={}", v.as_deref().unwrap_or("null")) }).collect();
                println!("Configs: {}", shown.join(if all_configs { "\n  " } else { "," }));
            }
            let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
            for p in &t.partitions {
                table.row(vec![p.partition.to_string(), p.leader.to_string(), join(&p.replicas), join(&p.isr)]);
            }
            table.print();
            println!();
        }
    }
    if common.json {
        print_json(&json!(docs));
    }
    if !failed.is_empty() {
        bail!("{}", failed.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
