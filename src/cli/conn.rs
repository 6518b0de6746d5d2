//! The CLI's view of a cluster: one bootstrap connection, the brokers and partition leaders
//! learnt from Metadata, a connection per broker opened when first needed, and the group
//! coordinator found with FindCoordinator. Requests are routed as Kafka's clients route them
//! (Produce, Fetch and ListOffsets to the partition leader, group APIs to the coordinator, admin
//! APIs to any broker, which forwards them to the controller). Versions are capped per call so
//! that a request's fields mean the same on every broker (topic names rather than topic ids);
//! the wire work itself is [`crate::client::BrokerClient`]'s.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName, metadata_request::MetadataRequestTopic};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::client::{BrokerClient, ClientConfig};

/// The largest response the CLI accepts: a fetch answer is bounded by the `max_bytes` it asks
/// for (see [`super::consume`]); this leaves room for a large metadata answer.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// A Kafka error code as text: Kafka's name for it, as its tools print it.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error code {code}"),
    }
}

/// Fails with Kafka's name for `code` unless it is 0.
pub fn check(code: i16, what: impl std::fmt::Display) -> Result<()> {
    if code == 0 { Ok(()) } else { bail!("{what}: {}", error_name(code)) }
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One partition as Metadata describes it.
#[derive(Clone, Debug)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// One topic as Metadata describes it, partitions in index order.
#[derive(Clone, Debug)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: String,
    pub internal: bool,
    pub error_code: i16,
    pub partitions: Vec<PartitionInfo>,
}

/// Connections to the brokers of one cluster.
pub struct Cluster {
    config: ClientConfig,
    bootstrap: Arc<BrokerClient>,
    /// Broker id -> host:port, from the last Metadata.
    brokers: BTreeMap<i32, String>,
    /// Open connections by broker id.
    connections: HashMap<i32, Arc<BrokerClient>>,
}

/// Resolves `host:port` (a name or an address) to its first socket address.
pub async fn resolve(addr: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(addr).await.with_context(|| format!("cannot resolve {addr}"))?.next().ok_or_else(|| anyhow!("{addr} resolves to no address"))
}

impl Cluster {
    /// Connects to the first of the comma-separated bootstrap servers that answers.
    pub async fn connect(bootstrap: &str, timeout: Duration) -> Result<Cluster> {
        let config = ClientConfig { connect_timeout: timeout, request_timeout: timeout, max_response_bytes: MAX_RESPONSE_BYTES, ..ClientConfig::new("fjord-cli") };
        let mut last = anyhow!("no bootstrap server given");
        for server in bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let attempt = async { Ok::<_, anyhow::Error>(BrokerClient::connect(resolve(server).await?, config.clone()).await?) };
            match attempt.await {
                Ok(client) => {
                    return Ok(Cluster { config, bootstrap: Arc::new(client), brokers: BTreeMap::new(), connections: HashMap::new() });
                }
                Err(e) => last = e.context(format!("bootstrap server {server}")),
            }
        }
        Err(last)
    }

    pub fn bootstrap(&self) -> &BrokerClient {
        &self.bootstrap
    }

    /// The broker ids and addresses learnt from the last Metadata.
    pub fn brokers(&self) -> &BTreeMap<i32, String> {
        &self.brokers
    }

    /// Metadata for `topics` (all topics when `None`), remembering the brokers it names.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t)))).collect()))
            .with_allow_auto_topic_creation(false);
        // v12: topic names (and ids) in and out, as every current broker speaks it.
        let response = send_capped(&self.bootstrap, &request, 12).await?;
        self.brokers = response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
        Ok(response)
    }

    /// The named topics (or all), each with its partitions; a topic the broker does not know
    /// comes back with its error code set.
    pub async fn topics(&mut self, topics: Option<&[String]>) -> Result<Vec<TopicInfo>> {
        let response = self.metadata(topics).await?;
        let mut out: Vec<TopicInfo> = response
            .topics
            .iter()
            .map(|t| {
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        error_code: p.error_code,
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicInfo {
                    name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    topic_id: t.topic_id.to_string(),
                    internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One topic that must exist.
    pub async fn topic(&mut self, topic: &str) -> Result<TopicInfo> {
        let found = self.topics(Some(&[topic.to_string()])).await?.into_iter().find(|t| t.name == topic);
        match found {
            Some(t) if t.error_code == 0 => Ok(t),
            Some(t) => bail!("topic {topic}: {}", error_name(t.error_code)),
            None => bail!("topic {topic}: not in the metadata answer"),
        }
    }

    /// The connection to broker `id`, opened on first use.
    pub async fn broker(&mut self, id: i32) -> Result<Arc<BrokerClient>> {
        if let Some(c) = self.connections.get(&id).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        if self.brokers.is_empty() {
            self.metadata(Some(&[])).await?;
        }
        let addr = self.brokers.get(&id).cloned().ok_or_else(|| anyhow!("broker {id} is not in the cluster's metadata"))?;
        let client = Arc::new(self.connect_to(&addr).await?);
        self.connections.insert(id, client.clone());
        Ok(client)
    }

    async fn connect_to(&self, addr: &str) -> Result<BrokerClient> {
        let sock = resolve(addr).await?;
        Ok(BrokerClient::connect(sock, self.config.clone()).await.with_context(|| format!("broker {addr}"))?)
    }

    /// The group coordinator of `group`, as a connection (FindCoordinator, key type 0).
    pub async fn coordinator(&mut self, group: &str) -> Result<Arc<BrokerClient>> {
        let request = FindCoordinatorRequest::default().with_key(str_bytes(group)).with_key_type(0);
        let mut last = String::new();
        // COORDINATOR_NOT_AVAILABLE while the offsets topic is being created: Kafka's clients retry.
        for _ in 0..20 {
            let response = send_capped(&self.bootstrap, &request, 3).await?;
            if response.error_code == 0 {
                let addr = format!("{}:{}", response.host.as_str(), response.port);
                if let Some(c) = self.connections.get(&response.node_id.0).filter(|c| !c.is_closed()) {
                    return Ok(c.clone());
                }
                self.brokers.insert(response.node_id.0, addr.clone());
                let client = Arc::new(self.connect_to(&addr).await?);
                self.connections.insert(response.node_id.0, client.clone());
                return Ok(client);
            }
            last = error_name(response.error_code);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!("no coordinator for group {group}: {last}")
    }
}

/// Sends `request` at the highest version both sides speak, but no higher than `cap`: above it
/// the request's fields change meaning (topic ids, batched groups) and the CLI fills the older
/// ones.
pub async fn send_capped<R: Request>(client: &BrokerClient, request: &R, cap: i16) -> Result<R::Response> {
    let (peer_min, _) = client.peer_versions(R::KEY).unwrap_or((R::VERSIONS.min, R::VERSIONS.max));
    let best = client.version_for::<R>()?;
    let version = best.min(cap);
    if version < peer_min {
        bail!("{} serves api key {} only from v{peer_min}, above the v{cap} this tool speaks", client.addr(), R::KEY);
    }
    Ok(client.send_version(request, version).await?)
}

/// The broker ids of a list, as plain integers.
pub fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

/// ListOffsets' special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

impl Cluster {
    /// ListOffsets for `partitions` of `topic` at `timestamp` (a time in ms, or
    /// [`EARLIEST_TIMESTAMP`] / [`LATEST_TIMESTAMP`]), each asked of its leader. A time after the
    /// last record answers offset -1, as Kafka does; the caller decides what that means.
    pub async fn list_offsets(&mut self, topic: &TopicInfo, partitions: &[i32], timestamp: i64) -> Result<BTreeMap<i32, i64>> {
        use kafka_protocol::messages::ListOffsetsRequest;
        use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            let info = topic.partitions.iter().find(|i| i.partition == *p).ok_or_else(|| anyhow!("{}-{p} does not exist", topic.name))?;
            if info.leader < 0 {
                bail!("{}-{p} has no leader", topic.name);
            }
            by_leader.entry(info.leader).or_default().push(*p);
        }
        let mut out = BTreeMap::new();
        for (leader, ps) in by_leader {
            let client = self.broker(leader).await?;
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(ps.iter().map(|p| ListOffsetsPartition::default().with_partition_index(*p).with_current_leader_epoch(-1).with_timestamp(timestamp)).collect())]);
            // v7 at most: every version up to it has the same fields for a consumer's question.
            let response = send_capped(&client, &request, 7).await?;
            for t in &response.topics {
                for p in &t.partitions {
                    check(p.error_code, format!("ListOffsets {}-{}", topic.name, p.partition_index))?;
                    out.insert(p.partition_index, p.offset);
                }
            }
        }
        for p in partitions {
            if !out.contains_key(p) {
                bail!("ListOffsets answered nothing for {}-{p}", topic.name);
            }
        }
        Ok(out)
    }
}
