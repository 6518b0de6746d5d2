//! The broker: loads storage and metadata, puts the coordinators and replicas together, runs the
//! background tasks (retention, flush, checkpoints). No request handling and no sockets here:
//! `node` binds the listeners and serves.

pub mod acl;
pub mod adopt;
pub mod client_metrics;
pub mod client_telemetry;
pub mod cluster;
pub mod durable_sync;
pub mod features;
pub mod io_pool;
pub mod isr;
pub mod lifecycle;
pub mod metadata;
pub mod partition;
pub mod publisher;
pub mod purgatory;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replication_quota;
pub mod quotas;
pub mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use bytes::Bytes;

use crate::config::{Config, Endpoint};
use crate::coordinator::LogError;
use crate::group::{GroupConfig, GroupCoordinator, GroupLog, OFFSETS_TOPIC};
use crate::storage::log_manager::LogManager;
use crate::storage::cleaner::CleanerConfig;
use crate::txn::{MarkerError, TRANSACTION_STATE_TOPIC, TransactionCoordinator, TxnConfig, TxnLog};
use crate::records::control::{ControlType, Marker};
use crate::types::TopicPartition;
use metadata::{MetadataError, MetadataStore, ProducerIdManager, TopicMeta};
use replica_manager::ReplicaManager;

fn topic_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(name.to_string()))
}

/// How long a request that needs the active controller waits for it.
pub const CLUSTER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker as clients are told of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// One client listener as clients and other brokers are told of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerEndpoint {
    pub name: String,
    pub protocol: crate::config::SecurityProtocol,
    pub endpoint: Endpoint,
}

/// Everything a request handler may consult. Shared by all connections.
pub struct Broker {
    pub config: Config,
    pub cluster_id: String,
    /// Each log dir's `directory.id`, in `log.dirs` order (sent with the broker's registration).
    pub directory_ids: Vec<uuid::Uuid>,
    /// The endpoint of the first client listener (what this broker's logs name).
    pub advertised: Endpoint,
    /// Every client listener's advertised endpoint, in `listeners` order: a client is told the
    /// endpoints of the listener its request arrived on (Metadata, FindCoordinator, DescribeCluster).
    pub listener_endpoints: Vec<ListenerEndpoint>,
    pub metadata: MetadataStore,
    pub replicas: Arc<ReplicaManager>,
    /// The request handler threads: every call that may block on a disk runs there.
    pub io_pool: io_pool::IoPool,
    pub producer_ids: ProducerIdManager,
    pub groups: GroupCoordinator,
    pub txns: TransactionCoordinator,
    /// SCRAM credentials (AlterUserScramCredentials / DescribeUserScramCredentials).
    pub scram: scram::ScramStore,
    /// The ACL authorizer (`authorizer.class.name`); `None`: every request is allowed.
    pub authorizer: Option<acl::Authorizer>,
    /// Client quotas (AlterClientQuotas / DescribeClientQuotas) and their rate sensors.
    pub quotas: quotas::ClientQuotas,
    /// Supported and finalized feature levels (ApiVersions, UpdateFeatures).
    pub features: features::FeatureStore,
    /// Followers' fetchers, one per leader broker.
    pub fetchers: replica_fetcher::ReplicaFetchers,
    /// `leader.replication.throttled.rate`: bytes served to followers of throttled replicas.
    pub leader_quota: replication_quota::ReplicationQuota,
    /// `follower.replication.throttled.rate`: bytes fetched for throttled replicas.
    pub follower_quota: replication_quota::ReplicationQuota,
    /// The cluster as this node knows it, in a metadata quorum; `None` on a single node.
    pub cluster: Option<Arc<cluster::ClusterState>>,
    /// What the request path counts for `/metrics`.
    pub metrics: Arc<crate::metrics::BrokerMetrics>,
    /// Serializes group config changes: each writes the whole overrides file.
    group_configs_write: std::sync::Mutex<()>,
    /// The dynamic broker configs whose effects (rates, TLS, topic settings, logs) are all in
    /// place: `config.dynamic` changes first, so an alteration waits for this one.
    dynamic_applied: std::sync::RwLock<crate::config::DynamicBrokerConfigs>,
    /// The last dynamic configs of the metadata log refused here: not checked (nor logged) again
    /// at every metadata change until the log holds others.
    dynamic_refused: std::sync::Mutex<Option<crate::config::DynamicBrokerConfigs>>,
    /// KIP-714 client metrics subscriptions (the CLIENT_METRICS config resource).
    pub client_metrics: client_metrics::ClientMetricsSubscriptions,
    /// The TLS of each SSL listener being served: dynamic `ssl.*` changes reload it.
    listener_tls: std::sync::RwLock<Vec<Arc<crate::server::tls::ListenerTls>>>,
    /// The `max.connection.creation.rate` limits the listeners count against: broker-wide (None)
    /// or a listener's; their quotas follow dynamic config changes.
    creation_rates: std::sync::Mutex<Vec<(Option<String>, Arc<quotas::RateLimit>)>>,
    /// KIP-714 client instances: their subscriptions and push times.
    pub client_telemetry: client_telemetry::ClientTelemetry,
    /// The built-in telemetry receiver (`fjord.client.telemetry.enabled`); None: pushes dropped.
    pub telemetry_receiver: Option<crate::metrics::client_telemetry::TelemetryReceiver>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("log dir {0}: {1}")]
    LogDir(std::path::PathBuf, std::io::Error),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Features(#[from] features::FeatureError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage I/O backend: {0}")]
    IoBackend(std::io::Error),
    #[error("cannot start the request handler threads: {0}")]
    Threads(std::io::Error),
}

/// A refused dynamic broker config change.
#[derive(Debug, thiserror::Error)]
pub enum DynamicConfigError {
    /// A name that cannot change at run time or a value that does not check out (Kafka's
    /// INVALID_REQUEST for a BROKER resource).
    #[error("{0}")]
    Invalid(String),
    /// The controller refused it or could not be reached.
    #[error(transparent)]
    Metadata(MetadataError),
}

/// Whether `applied` holds the changes that turn `old` into `new` (see
/// `replace_configs_in_cluster`): each key changed has its new value and each key dropped is
/// gone, whatever other keys changed meanwhile through other nodes.
fn holds_changes(applied: &BTreeMap<String, String>, old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> bool {
    new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).all(|(k, v)| applied.get(k) == Some(v)) && old.keys().filter(|k| !new.contains_key(*k)).all(|k| !applied.contains_key(k))
}

/// Kafka's checks of a change of `log.cleaner.threads` at run time (LogCleaner's
/// validateReconfiguration): at least 1, at most double and at least half the current count,
/// in the words Kafka 4.0 answers them (its ConfigException wrapped as checked with
/// kafka-configs.sh; for 0 Kafka 4.0 answers "/ by zero", Fjord its check's words).
fn check_cleaner_threads(current: usize, next: usize) -> Result<(), String> {
    let refused = |why: String| Err(format!("Invalid value org.apache.kafka.common.config.ConfigException: {why} for configuration Invalid dynamic configuration"));
    if next == current {
        return Ok(());
    }
    if next < 1 {
        return refused("Log cleaner threads should be at least 1".into());
    }
    if next < current / 2 {
        return refused(format!("Log cleaner threads cannot be reduced to less than half the current value {current}"));
    }
    if next > current * 2 {
        return refused(format!("Log cleaner threads cannot be increased to more than double the current value {current}"));
    }
    Ok(())
}

/// The config resource type of a broker (Kafka's ConfigResource.Type.BROKER).
const RESOURCE_TYPE_BROKER: i8 = 4;

/// Dynamic configs checked against this broker, ready to install.
struct PreparedDynamicConfigs {
    next: crate::config::DynamicBrokerConfigs,
    tls_reloads: Vec<(Arc<crate::server::tls::ListenerTls>, crate::server::tls::Reload)>,
    topics: Vec<(Arc<TopicMeta>, crate::storage::LogConfig, crate::config::TopicSettings)>,
}

/// Refuses, as Kafka does, names of one dynamic scope that cannot change at run time: Fjord's
/// static properties, and the `ssl.*` store settings without a listener prefix. Names Fjord does
/// not know are kept as custom configs, as Kafka keeps them.
pub fn check_dynamic_config_names(configs: &BTreeMap<String, String>) -> Result<(), String> {
    let fixed: Vec<&String> = configs.keys().filter(|k| crate::config::broker_def(k).is_some() && !crate::config::is_dynamic_broker_config(k)).collect();
    if !fixed.is_empty() {
        // Kafka's words, with its Scala set's printing (checked against Kafka 4.0).
        return Err(format!("Cannot update these configs dynamically: Set({})", fixed.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")));
    }
    let unprefixed: Vec<&String> = configs.keys().filter(|k| crate::config::SSL_RECONFIGURABLE_CONFIGS.contains(&k.as_str())).collect();
    if !unprefixed.is_empty() {
        return Err(format!("These security configs can be dynamically updated only per-listener using the listener prefix: HashSet({})", unprefixed.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")));
    }
    Ok(())
}

impl Broker {
    /// Creates a topic and its partition logs. Used by CreateTopics and auto-creation. A failure
    /// midway (EMFILE, ENOSPC, the metadata not persisted) removes the logs it made: no partition
    /// directory and no metadata of the half-made topic are left.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        if let Some(cluster) = &self.cluster {
            return self.create_topic_in_cluster(cluster, name, partitions, configs);
        }
        let log_config = self
            .config
            .log_config(&configs)
            .map_err(|e| MetadataError::InvalidTopic(e.to_string()))?;
        let settings = self.config.topic_settings(&configs).map_err(|e| MetadataError::InvalidTopic(e.to_string()))?;
        let mut made = Vec::new();
        let result = self.metadata.create_topic(name, partitions, configs, settings, |meta: &TopicMeta| {
            self.create_partition_logs(&meta.name, 0..meta.partitions, &log_config, &mut made)
        });
        let meta = result.inspect_err(|e| self.roll_back_partition_logs(name, &made, e))?;
        tracing::info!(topic = %meta.name, id = %meta.id, partitions = meta.partitions, "created topic");
        Ok(meta)
    }

    /// A topic made by the active controller (auto-creation, the internal topics): the request
    /// is forwarded and this handler thread waits until the topic is in the local table.
    /// Internal topics get `offsets.topic.replication.factor` / `transaction.state.log.replication.factor`
    /// replicas, at most as many as brokers are registered; others the default.
    fn create_topic_in_cluster(&self, cluster: &Arc<cluster::ClusterState>, name: &str, partitions: i32, configs: BTreeMap<String, String>) -> Result<Arc<TopicMeta>, MetadataError> {
        use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
        let rf = self.internal_replication_factor(Some(cluster), name).unwrap_or(-1);
        let topic = CreatableTopic::default()
            .with_name(kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| CreatableTopicConfig::default().with_name(kafka_protocol::protocol::StrBytes::from_string(k.clone())).with_value(Some(kafka_protocol::protocol::StrBytes::from_string(v.clone()))))
                    .collect(),
            );
        let request = kafka_protocol::messages::CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
        let c = cluster.clone();
        let response = cluster
            .wait_on(async move { c.create_topics(&request, CLUSTER_REQUEST_TIMEOUT).await })
            .ok_or_else(|| MetadataError::ControllerUnreachable("the controller request was dropped".into()))?
            .map_err(MetadataError::ControllerUnreachable)?;
        let result = response.topics.first().ok_or_else(|| MetadataError::ControllerUnreachable("empty CreateTopics answer".into()))?;
        match result.error_code {
            0 => {}
            36 => return Err(MetadataError::TopicExists(name.to_string())),
            code => return Err(MetadataError::Controller { code, message: result.error_message.as_deref().unwrap_or("").to_string() }),
        }
        self.wait_for_topic(result.topic_id).ok_or_else(|| MetadataError::ControllerUnreachable(format!("topic {name} created but not yet known here")))
    }

    /// The replication factor an internal topic is made with: `offsets.topic.replication.factor` /
    /// `transaction.state.log.replication.factor`, at most as many as brokers are registered (1 on
    /// a single node). None for other topics.
    fn internal_replication_factor(&self, cluster: Option<&Arc<cluster::ClusterState>>, name: &str) -> Option<i16> {
        let rf_name = match name {
            OFFSETS_TOPIC => "offsets.topic.replication.factor",
            TRANSACTION_STATE_TOPIC => "transaction.state.log.replication.factor",
            _ => return None,
        };
        let Some(cluster) = cluster else { return Some(1) };
        let wanted = self.config.long(rf_name).unwrap_or(3).clamp(1, i16::MAX as i64) as usize;
        Some(wanted.min(cluster.image().brokers().len().max(1)) as i16)
    }

    /// DeleteTopics at the active controller; returns once the topic is gone here.
    fn delete_topic_in_cluster(&self, cluster: &Arc<cluster::ClusterState>, name: &str) -> Result<Arc<TopicMeta>, MetadataError> {
        use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
        use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
        let meta = self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let request = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name(name)))]).with_timeout_ms(30_000);
        let c = cluster.clone();
        let response = cluster.wait_on(async move {
            c.to_controller(&request, |r: &DeleteTopicsResponse| r.responses.iter().any(|t| t.error_code == cluster::NOT_CONTROLLER), CLUSTER_REQUEST_TIMEOUT).await
        })
        .ok_or_else(|| MetadataError::ControllerUnreachable("no runtime to reach the controller".into()))?
        .map_err(MetadataError::ControllerUnreachable)?;
        match response.responses.first().map_or(-1, |r| r.error_code) {
            0 => {}
            3 | 100 => return Err(MetadataError::UnknownTopic(name.to_string())),
            code => return Err(MetadataError::Controller { code, message: response.responses.first().and_then(|r| r.error_message.as_deref()).unwrap_or("").to_string() }),
        }
        self.wait_until(|| self.metadata.topic_by_id(meta.id).is_none());
        tracing::info!(topic = %name, "deleted topic");
        Ok(meta)
    }

    /// CreatePartitions at the active controller (with the new partitions' replicas when given,
    /// else placed by it); returns once the new count is known here. With `validate_only` the
    /// controller checks without writing.
    pub fn add_partitions_in_cluster(
        &self,
        cluster: &Arc<cluster::ClusterState>,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
        use kafka_protocol::messages::{BrokerId, CreatePartitionsRequest, CreatePartitionsResponse};
        let assignments = assignments.map(|a| a.into_iter().map(|ids| CreatePartitionsAssignment::default().with_broker_ids(ids.into_iter().map(BrokerId).collect())).collect());
        let topic = CreatePartitionsTopic::default().with_name(topic_name(name)).with_count(count).with_assignments(assignments);
        let request = CreatePartitionsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000).with_validate_only(validate_only);
        let c = cluster.clone();
        let response = cluster.wait_on(async move {
            c.to_controller(&request, |r: &CreatePartitionsResponse| r.results.iter().any(|t| t.error_code == cluster::NOT_CONTROLLER), CLUSTER_REQUEST_TIMEOUT).await
        })
        .ok_or_else(|| MetadataError::ControllerUnreachable("no runtime to reach the controller".into()))?
        .map_err(MetadataError::ControllerUnreachable)?;
        match response.results.first() {
            Some(r) if r.error_code == 0 => {}
            Some(r) if r.error_code == 3 => return Err(MetadataError::UnknownTopic(name.to_string())),
            Some(r) => return Err(MetadataError::Controller { code: r.error_code, message: r.error_message.as_deref().unwrap_or("").to_string() }),
            None => return Err(MetadataError::ControllerUnreachable("empty CreatePartitions answer".into())),
        }
        if validate_only {
            return self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()));
        }
        self.wait_until(|| self.metadata.topic(name).is_some_and(|t| t.partitions >= count));
        self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))
    }

    /// The topic's whole config override set becomes `configs`, through the active controller
    /// (IncrementalAlterConfigs: SET the keys changed, DELETE the keys dropped); returns once applied here.
    fn set_topic_configs_in_cluster(&self, cluster: &Arc<cluster::ClusterState>, name: &str, configs: BTreeMap<String, String>) -> Result<Arc<TopicMeta>, MetadataError> {
        self.config.log_config(&configs).map_err(|e| MetadataError::InvalidTopic(e.to_string()))?;
        let old = self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.replace_configs_in_cluster(cluster, 2, name, &old.configs, &configs)?;
        self.wait_until(|| self.metadata.topic(name).is_some_and(|t| holds_changes(&t.configs, &old.configs, &configs)));
        tracing::info!(topic = %name, configs = ?configs, "topic configs changed");
        self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))
    }

    /// A client metrics subscription's whole config set becomes `configs` (already validated),
    /// through the active controller, as Kafka keeps subscriptions in the metadata log; returns
    /// once this broker follows it. Every broker's subscriptions follow the log
    /// (`publisher::publish`).
    pub fn set_client_metrics_in_cluster(&self, cluster: &Arc<cluster::ClusterState>, name: &str, configs: BTreeMap<String, String>) -> Result<(), MetadataError> {
        let old = self.client_metrics.configs(name);
        self.replace_configs_in_cluster(cluster, 16, name, &old, &configs)?;
        self.wait_until(|| holds_changes(&self.client_metrics.configs(name), &old, &configs));
        tracing::info!(subscription = %name, configs = ?configs, "client metrics subscription changed");
        Ok(())
    }

    /// Sends the controller the IncrementalAlterConfigs that turns `old` into `new` for one
    /// resource and reads its outcome: SET only the keys whose value changes and DELETE those
    /// only in `old`, so a change made meanwhile through another node to a key this one leaves
    /// alone (which `old`, this node's view, may not show yet) is kept, as the controller applies
    /// each operation to its own state. Nothing to change sends nothing.
    fn replace_configs_in_cluster(
        &self,
        cluster: &Arc<cluster::ClusterState>,
        resource_type: i8,
        name: &str,
        old: &BTreeMap<String, String>,
        new: &BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
        use kafka_protocol::protocol::StrBytes;
        let mut ops: Vec<AlterableConfig> = new
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|(k, v)| AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(0).with_value(Some(StrBytes::from_string(v.clone()))))
            .collect();
        ops.extend(old.keys().filter(|k| !new.contains_key(*k)).map(|k| AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(1)));
        if ops.is_empty() {
            return Ok(());
        }
        let resource = AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(StrBytes::from_string(name.to_string())).with_configs(ops);
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let c = cluster.clone();
        let response = cluster.wait_on(async move {
            c.to_controller(&request, |r: &IncrementalAlterConfigsResponse| r.responses.iter().any(|t| t.error_code == cluster::NOT_CONTROLLER), CLUSTER_REQUEST_TIMEOUT).await
        })
        .ok_or_else(|| MetadataError::ControllerUnreachable("no runtime to reach the controller".into()))?
        .map_err(MetadataError::ControllerUnreachable)?;
        match response.responses.first() {
            Some(r) if r.error_code == 0 => Ok(()),
            Some(r) => Err(MetadataError::Controller { code: r.error_code, message: r.error_message.as_deref().unwrap_or("").to_string() }),
            None => Err(MetadataError::ControllerUnreachable("empty IncrementalAlterConfigs answer".into())),
        }
    }

    /// Waits (on a handler thread) until `done`, up to the cluster request timeout.
    fn wait_until(&self, done: impl Fn() -> bool) -> bool {
        let deadline = std::time::Instant::now() + CLUSTER_REQUEST_TIMEOUT;
        while !done() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Waits (on a handler thread) until the metadata publisher has added the topic `id`.
    /// A topic by name (or by id when `name` is None) as this broker knows it. In a cluster, a
    /// topic the applied metadata image holds but the local table has not taken yet (a request
    /// right after the topic was made through another node) is waited for.
    pub fn topic_or_wait(&self, name: Option<&str>, id: uuid::Uuid) -> Option<Arc<TopicMeta>> {
        let local = match name {
            Some(n) => self.metadata.topic(n),
            None => self.metadata.topic_by_id(id),
        };
        if local.is_some() {
            return local;
        }
        let image = self.cluster.as_ref()?.image();
        let in_image = match name {
            Some(n) => image.topic_by_name(n).map(|t| t.id),
            None => image.topic_by_id(id).map(|t| t.id),
        };
        self.wait_for_topic(in_image?)
    }

    pub fn wait_for_topic(&self, id: uuid::Uuid) -> Option<Arc<TopicMeta>> {
        let deadline = std::time::Instant::now() + CLUSTER_REQUEST_TIMEOUT;
        loop {
            if let Some(meta) = self.metadata.topic_by_id(id) {
                return Some(meta);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Grows a topic to `count` partitions (CreatePartitions): the new partitions' logs are made
    /// before the new count is persisted and visible, and removed again if that fails midway.
    /// The caller checks that `count` grows.
    pub fn add_partitions(&self, name: &str, count: i32) -> Result<Arc<TopicMeta>, MetadataError> {
        if let Some(cluster) = &self.cluster {
            return self.add_partitions_in_cluster(cluster, name, count, None, false);
        }
        let mut made = Vec::new();
        let result = self.metadata.alter_topic(
            name,
            |old| Ok(TopicMeta { partitions: count, ..old.clone() }),
            |old, new| {
                let log_config = self.config.log_config(&new.configs).map_err(|e| MetadataError::InvalidTopic(e.to_string()))?;
                self.create_partition_logs(&new.name, old.partitions..new.partitions, &log_config, &mut made)
            },
        );
        let meta = result.inspect_err(|e| self.roll_back_partition_logs(name, &made, e))?;
        tracing::info!(topic = %meta.name, partitions = meta.partitions, "added partitions");
        Ok(meta)
    }

    /// Creates the logs of `partitions` of `topic`, recording in `made` each one created.
    fn create_partition_logs(
        &self,
        topic: &str,
        partitions: std::ops::Range<i32>,
        log_config: &crate::storage::LogConfig,
        made: &mut Vec<TopicPartition>,
    ) -> Result<(), MetadataError> {
        for p in partitions {
            let tp = TopicPartition::new(topic.to_string(), p);
            self.replicas
                .create_partition(&tp, log_config.clone())
                .map_err(|e| MetadataError::Io(std::io::Error::other(format!("creating partition {tp}: {e}"))))?;
            made.push(tp);
        }
        Ok(())
    }

    /// Deletes the logs a failed creation made, newest first. A log that cannot be deleted now is
    /// left renamed for deletion where possible (finished at the next start) and logged.
    fn roll_back_partition_logs(&self, topic: &str, made: &[TopicPartition], cause: &MetadataError) {
        if made.is_empty() {
            return;
        }
        tracing::warn!(topic, partitions = made.len(), error = %cause, "creating partitions failed; removing the ones made");
        for tp in made.iter().rev() {
            if let Err(e) = self.replicas.delete_partition(tp) {
                tracing::error!(partition = %tp, error = %e, "could not remove a partition of a failed creation");
            }
        }
    }

    /// Replaces a topic's config overrides (AlterConfigs / IncrementalAlterConfigs, already
    /// validated) and applies them to its partition logs at once: retention, segment size,
    /// max message bytes, cleanup policy and the rest take effect live.
    pub fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<Arc<TopicMeta>, MetadataError> {
        if let Some(cluster) = &self.cluster {
            return self.set_topic_configs_in_cluster(cluster, name, configs);
        }
        let log_config = self.config.log_config(&configs).map_err(|e| MetadataError::InvalidTopic(e.to_string()))?;
        let settings = self.config.topic_settings(&configs).map_err(|e| MetadataError::InvalidTopic(e.to_string()))?;
        let meta = self.metadata.alter_topic(name, |old| Ok(TopicMeta { configs: configs.clone(), settings, ..old.clone() }), |_, _| Ok(()))?;
        for p in 0..meta.partitions {
            let tp = TopicPartition::new(meta.name.clone(), p);
            if let Err(e) = self.replicas.logs().update_config(&tp, log_config.clone()) {
                tracing::warn!(partition = %tp, error = %e, "could not apply the new topic config to the log");
            }
        }
        tracing::info!(topic = %meta.name, configs = ?meta.configs, "topic configs changed");
        Ok(meta)
    }

    /// Replaces one group's config overrides (IncrementalAlterConfigs / AlterConfigs on a GROUP
    /// resource): validated as Kafka's GroupConfig does, stored durably, then used by the group
    /// coordinator (session timeout, heartbeat interval). `validate_only` stops after the checks.
    pub fn set_group_configs(&self, group: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), String> {
        self.config.validate_group_configs(&configs)?;
        if validate_only {
            return Ok(());
        }
        let _serial = self.group_configs_write.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.groups.all_group_configs();
        if configs.is_empty() {
            all.remove(group);
        } else {
            all.insert(group.to_string(), configs.clone());
        }
        metadata::store_group_configs(&self.config.log_dirs[0], &all).map_err(|e| e.to_string())?;
        self.groups.set_group_configs(group, configs);
        tracing::info!(%group, "group configs changed");
        Ok(())
    }

    /// Replaces the dynamic broker configs of one scope (this broker, or the cluster default):
    /// validated as startup validates the log defaults, then made durable and applied. A single
    /// node keeps them in its own file and applies them at once; a node of a metadata quorum sends
    /// them to the controller (ConfigRecords of resource BROKER, as Kafka keeps them), every
    /// broker applies them from the metadata log (`publisher::publish`), and this call returns
    /// once this broker has. `validate_only` stops after the checks.
    pub fn set_dynamic_configs(&self, per_broker: bool, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), DynamicConfigError> {
        check_dynamic_config_names(&configs).map_err(DynamicConfigError::Invalid)?;
        let current = self.config.dynamic.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut next = current.clone();
        *(if per_broker { &mut next.per_broker } else { &mut next.cluster_default }) = configs.clone();
        // Every key named before or after: re-setting a listener's key store location reloads it.
        let old_scope = if per_broker { &current.per_broker } else { &current.cluster_default };
        let touched: Vec<String> = old_scope.keys().chain(configs.keys()).cloned().collect();
        if !per_broker {
            // The default must hold on its own, as on a broker that overrides none of it (here a
            // value of this broker's own would hide a bad one), as Kafka checks each resource.
            self.check_dynamic_values(crate::config::DynamicBrokerConfigs { per_broker: BTreeMap::new(), cluster_default: configs.clone() }).map_err(DynamicConfigError::Invalid)?;
        }
        let prepared = self.prepare_dynamic_configs(next, &touched).map_err(DynamicConfigError::Invalid)?;
        if validate_only {
            return Ok(());
        }
        let scope = if per_broker { "broker" } else { "cluster default" };
        if let Some(cluster) = &self.cluster {
            let name = if per_broker { self.config.node_id.to_string() } else { String::new() };
            let old = if per_broker { &current.per_broker } else { &current.cluster_default };
            self.replace_configs_in_cluster(cluster, RESOURCE_TYPE_BROKER, &name, old, &configs).map_err(DynamicConfigError::Metadata)?;
            let scope_now = || {
                let d = self.dynamic_applied.read().unwrap_or_else(|e| e.into_inner());
                holds_changes(if per_broker { &d.per_broker } else { &d.cluster_default }, old, &configs)
            };
            if !self.wait_until(scope_now) {
                tracing::warn!(scope, "dynamic broker configs accepted by the controller but not yet applied here");
            }
            // The same values again change nothing in the metadata log; a listener's key store
            // named again is still reloaded here, as on a single node (a renewed file, same path).
            if old == &configs {
                for (tls, reload) in prepared.tls_reloads {
                    tls.install(reload);
                }
            }
            return Ok(());
        }
        metadata::store_dynamic_configs(&self.config.log_dirs[0], &prepared.next).map_err(|e| DynamicConfigError::Invalid(e.to_string()))?;
        self.install_dynamic_configs(prepared);
        tracing::info!(scope, "dynamic broker configs changed");
        Ok(())
    }

    /// Makes `next` (read from the metadata log: the BROKER "" and BROKER "<node.id>" configs)
    /// this broker's dynamic configs when they differ from the current ones, as Kafka's
    /// DynamicConfigPublisher does. A set that does not check out here (a key store that cannot
    /// be read on this host) is logged and the previous one stays, as Kafka's broker skips an
    /// invalid dynamic update.
    pub fn follow_dynamic_configs(&self, next: crate::config::DynamicBrokerConfigs) {
        let current = self.config.dynamic.read().unwrap_or_else(|e| e.into_inner()).clone();
        if current == next {
            return;
        }
        let mut refused = self.dynamic_refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.as_ref() == Some(&next) {
            return;
        }
        let checked = check_dynamic_config_names(&next.per_broker).and_then(|()| check_dynamic_config_names(&next.cluster_default));
        // Only the keys whose value changed in either scope touch a listener's TLS.
        let touched: Vec<String> = [(&current.per_broker, &next.per_broker), (&current.cluster_default, &next.cluster_default)]
            .into_iter()
            .flat_map(|(old, new)| old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k)).cloned().collect::<Vec<_>>())
            .collect();
        match checked.and_then(|()| self.prepare_dynamic_configs(next.clone(), &touched)) {
            Ok(prepared) => {
                *refused = None;
                self.install_dynamic_configs(prepared);
                tracing::info!("dynamic broker configs changed from the metadata log");
            }
            Err(e) => {
                tracing::error!(error = %e, "dynamic broker configs from the metadata log refused here; the previous ones stay");
                *refused = Some(next);
            }
        }
    }

    /// The config `dynamic` would make, once each value it makes effective parses and is in range.
    fn check_dynamic_values(&self, dynamic: crate::config::DynamicBrokerConfigs) -> Result<Config, String> {
        let trial = Config { dynamic: Arc::new(std::sync::RwLock::new(dynamic)), ..self.config.clone() };
        trial.log_config(&BTreeMap::new()).map_err(|e| e.to_string())?;
        trial.producer_id_expiration_ms().map_err(|e| e.to_string())?;
        check_cleaner_threads(self.config.log_cleaner_threads().unwrap_or(1), trial.log_cleaner_threads().map_err(|e| e.to_string())?)?;
        trial.replication_throttled_rate(crate::config::LEADER_REPLICATION_THROTTLED_RATE).map_err(|e| e.to_string())?;
        trial.replication_throttled_rate(crate::config::FOLLOWER_REPLICATION_THROTTLED_RATE).map_err(|e| e.to_string())?;
        trial.connection_creation_rate(None).map_err(|e| e.to_string())?;
        for l in trial.topology.client_listeners() {
            trial.connection_creation_rate(Some(&l.name)).map_err(|e| e.to_string())?;
        }
        for name in ["log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.size", crate::config::MOVE_IO_RATE] {
            match trial.long(name) {
                Ok(v) if v > 0 => {}
                _ => return Err(format!("Invalid value {} for configuration {name}: must be a positive number", trial.value(name).unwrap_or_default())),
            }
        }
        Ok(trial)
    }

    /// Checks `next` as it would be applied (every value parsed by a trial Config, the key
    /// stores of listeners whose settings are among `touched` loaded, every topic's settings
    /// computed) without changing anything.
    fn prepare_dynamic_configs(&self, next: crate::config::DynamicBrokerConfigs, touched: &[String]) -> Result<PreparedDynamicConfigs, String> {
        let trial = self.check_dynamic_values(next.clone())?;
        let tls_reloads = self.prepare_tls_reloads(&trial, touched.iter())?;
        let topics: Vec<(Arc<TopicMeta>, crate::storage::LogConfig, crate::config::TopicSettings)> = self
            .metadata
            .topics()
            .into_iter()
            .map(|t| {
                let log_config = trial.log_config(&t.configs).map_err(|e| e.to_string())?;
                let settings = trial.topic_settings(&t.configs).map_err(|e| e.to_string())?;
                Ok((t, log_config, settings))
            })
            .collect::<Result<_, String>>()?;
        Ok(PreparedDynamicConfigs { next, tls_reloads, topics })
    }

    /// Makes checked dynamic configs current and applies them: the move, replication and
    /// connection creation rates, the listeners' key stores, every topic's settings and every
    /// local log's config.
    fn install_dynamic_configs(&self, prepared: PreparedDynamicConfigs) {
        let PreparedDynamicConfigs { next, tls_reloads, topics } = prepared;
        *self.config.dynamic.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        self.apply_move_io_rate();
        self.apply_replication_throttled_rates();
        self.apply_connection_creation_rates();
        for (tls, reload) in tls_reloads {
            tls.install(reload);
        }
        let settings: BTreeMap<String, crate::config::TopicSettings> = topics.iter().map(|(t, _, s)| (t.name.clone(), s.clone())).collect();
        self.metadata.refresh_settings(|t| settings.get(&t.name).cloned().unwrap_or_else(|| t.settings.clone()));
        for (t, log_config, _) in topics {
            for p in 0..t.partitions {
                let tp = TopicPartition::new(t.name.clone(), p);
                // In a cluster only the replicas placed here have a log.
                if self.replicas.logs().get(&tp).is_none() {
                    continue;
                }
                if let Err(e) = self.replicas.logs().update_config(&tp, log_config.clone()) {
                    tracing::warn!(partition = %tp, error = %e, "could not apply the new broker config to the log");
                }
            }
        }
        *self.dynamic_applied.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Hands `replica.alter.log.dirs.io.max.bytes.per.second` (as now configured) to the log dirs' moves.
    pub fn apply_move_io_rate(&self) {
        let rate = self.config.long(crate::config::MOVE_IO_RATE).unwrap_or(i64::MAX).max(1) as u64;
        self.replicas.logs().set_move_io_rate(if rate == i64::MAX as u64 { u64::MAX } else { rate });
    }

    /// Hands `leader.replication.throttled.rate` and `follower.replication.throttled.rate` (as now
    /// configured: this broker's dynamic value, else the cluster default's, else the static one)
    /// to the replication throttles, as Kafka's BrokerConfigHandler does on a change.
    pub fn apply_replication_throttled_rates(&self) {
        for (name, quota) in [(crate::config::LEADER_REPLICATION_THROTTLED_RATE, &self.leader_quota), (crate::config::FOLLOWER_REPLICATION_THROTTLED_RATE, &self.follower_quota)] {
            // Validated when set: an unreadable value cannot be here; keep the old bound if so.
            match self.config.replication_throttled_rate(name) {
                Ok(rate) => {
                    if quota.quota() != rate {
                        tracing::info!(config = name, bytes_per_second = rate, "replication throttle changed");
                    }
                    quota.set_quota(rate);
                }
                Err(e) => tracing::warn!(config = name, error = %e, "replication throttle unreadable; the previous bound stays"),
            }
        }
    }

    /// A `max.connection.creation.rate` limit (broker-wide when `listener` is None) whose quota
    /// follows the configuration from now on.
    pub fn register_creation_rate(&self, listener: Option<String>, rate: Arc<quotas::RateLimit>) {
        self.creation_rates.lock().unwrap_or_else(|e| e.into_inner()).push((listener, rate));
        self.apply_connection_creation_rates();
    }

    /// Hands `max.connection.creation.rate` (as now configured, per listener too) to the
    /// listeners' limits; i32::MAX is no limit.
    pub fn apply_connection_creation_rates(&self) {
        for (listener, rate) in self.creation_rates.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            // Validated when set: an unreadable value cannot be here; keep the old quota if so.
            if let Ok(q) = self.config.connection_creation_rate(listener.as_deref()) {
                rate.set_quota(if q >= i32::MAX as u32 { f64::INFINITY } else { f64::from(q) });
            }
        }
    }

    /// Makes an SSL listener's TLS reloadable by dynamic config changes.
    pub fn register_listener_tls(&self, tls: Arc<crate::server::tls::ListenerTls>) {
        self.listener_tls.write().unwrap_or_else(|e| e.into_inner()).push(tls);
    }

    /// The new TLS of each SSL listener whose `listener.name.<l>.ssl.*` settings a dynamic change
    /// touches (`names`: the keys before and after), built from `trial` and checked as Kafka
    /// checks a key store update; listeners whose stores are unchanged are left alone. As in
    /// Kafka only the stores are reconfigured (`SSL_RECONFIGURABLE_CONFIGS`: locations, texts,
    /// passwords); the rest (client auth, versions, suites, mapping rules) stays as at startup.
    /// Altering `listener.name.<l>.ssl.keystore.location` to the same path reloads the file.
    fn prepare_tls_reloads<'a>(&self, trial: &Config, names: impl Iterator<Item = &'a String> + Clone) -> Result<Vec<(Arc<crate::server::tls::ListenerTls>, crate::server::tls::Reload)>, String> {
        let listeners = self.listener_tls.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut reloads = Vec::new();
        for tls in listeners {
            let prefix = format!("listener.name.{}.ssl.", tls.listener.to_ascii_lowercase());
            if !names.clone().any(|n| n.starts_with(&prefix)) {
                continue;
            }
            let parsed = crate::config::SslSettings::parse(trial, &tls.listener).map_err(|e| e.to_string())?;
            let next = crate::config::SslSettings { keystore: parsed.keystore, key_password: parsed.key_password, truststore: parsed.truststore, ..tls.settings() };
            if let Some(reload) = tls.prepare(&next)? {
                reloads.push((tls, reload));
            }
        }
        Ok(reloads)
    }

    /// Deletes a topic: the deletion is recorded in the metadata, then its partitions' logs go.
    /// On a full disk the metadata cannot be rewritten until space is freed, so the logs go first
    /// there: deleting a topic is how an operator frees space through the admin API.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetadataError> {
        if let Some(cluster) = &self.cluster {
            return self.delete_topic_in_cluster(cluster, name);
        }
        let meta = match self.metadata.delete_topic(name) {
            Err(MetadataError::Io(e)) if crate::storage::io::is_out_of_space(&e) => {
                let meta = self.metadata.topic(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
                tracing::warn!(topic = %name, "disk full: deleting the topic's logs before recording the deletion");
                self.delete_partition_logs(&meta);
                self.metadata.delete_topic(name)?
            }
            other => other?,
        };
        self.delete_partition_logs(&meta);
        tracing::info!(topic = %meta.name, "deleted topic");
        self.groups.on_topics_deleted(self, std::slice::from_ref(&meta.name));
        Ok(meta)
    }

    /// Removes the logs of every partition of `meta` that still has one.
    fn delete_partition_logs(&self, meta: &TopicMeta) {
        self.metrics.remove_topic(&meta.name);
        for p in 0..meta.partitions {
            let tp = TopicPartition::new(meta.name.clone(), p);
            match self.replicas.delete_partition(&tp) {
                Ok(()) | Err(crate::storage::StorageError::UnknownPartition(_)) => {}
                Err(e) => tracing::warn!(partition = %tp, error = %e, "could not delete the partition's log"),
            }
        }
    }

    /// `__consumer_offsets`, created on first use with Kafka's settings: compacted (the cleaner
    /// keeps the latest commit per group and partition), segments of offsets.topic.segment.bytes.
    pub fn ensure_offsets_topic(&self) -> Result<(), String> {
        if self.metadata.topic(OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), self.config.offsets_topic_segment_bytes.to_string()),
            // As Kafka: commits are stored as the coordinator writes them, whatever the broker default.
            ("compression.type".to_string(), "producer".to_string()),
        ]);
        match self.create_topic(OFFSETS_TOPIC, self.config.offsets_topic_num_partitions, configs) {
            Ok(_) | Err(MetadataError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `__transaction_state`, created on first use: compacted, segments of
    /// transaction.state.log.segment.bytes.
    pub fn ensure_txn_topic(&self) -> Result<(), String> {
        if self.metadata.topic(TRANSACTION_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), self.config.transaction_state_log_segment_bytes.to_string()),
            // As Kafka's transaction log: stored uncompressed whatever the broker default.
            ("compression.type".to_string(), "uncompressed".to_string()),
            // As Kafka sets it on the topic, but at most the replicas it gets here (the factor is
            // capped at the brokers registered), so a small cluster can still commit.
            ("min.insync.replicas".to_string(), self.txn_topic_min_isr().to_string()),
        ]);
        match self.create_topic(TRANSACTION_STATE_TOPIC, self.config.transaction_state_log_num_partitions, configs) {
            Ok(_) | Err(MetadataError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `min.insync.replicas` of `__transaction_state`: `transaction.state.log.min.isr`, at most the
    /// replication factor it is made with.
    fn txn_topic_min_isr(&self) -> i32 {
        let rf = self.internal_replication_factor(self.cluster.as_ref(), TRANSACTION_STATE_TOPIC).unwrap_or(1);
        self.config.transaction_state_log_min_isr.min(rf as i32).max(1)
    }

    /// Whole batches of an internal topic's partition from `offset` up to the high watermark.
    fn read_internal(&self, topic: &str, partition: i32, offset: i64) -> Result<Bytes, LogError> {
        let tp = TopicPartition::new(topic.to_string(), partition);
        if self.cluster.is_some() {
            return self.replicas.read_to_log_end(&tp, offset, 1 << 20).map_err(log_error);
        }
        let offsets = self.replicas.offsets(&tp).map_err(log_error)?;
        let from = offset.max(offsets.log_start_offset);
        if from >= offsets.high_watermark {
            return Ok(Bytes::new());
        }
        self.replicas.read(&tp, from, 1 << 20).map(|(_, data)| data).map_err(log_error)
    }

    /// Whether the partition of `key` in a coordinator's internal topic (`__consumer_offsets` or
    /// `__transaction_state`) cannot be coordinated from here: it is in an offline log dir, or
    /// another broker leads it (the coordinator moved with its leadership). Its coordinator must
    /// not be handed out (FindCoordinator), as Kafka hands out no coordinator for a partition
    /// without a leader, and requests for its ids answer NOT_COORDINATOR.
    pub fn coordinator_partition_offline(&self, topic: &str, key: &str) -> bool {
        let Some(meta) = self.metadata.topic(topic) else { return false };
        self.coordinator_partition_offline_at(topic, crate::records::internal::partition_for(key, meta.partitions))
    }

    /// [`Self::coordinator_partition_offline`] of one partition of the internal topic.
    pub fn coordinator_partition_offline_at(&self, topic: &str, partition: i32) -> bool {
        let tp = TopicPartition::new(topic.to_string(), partition);
        let led_elsewhere = match self.replicas.partition(&tp) {
            Some(p) => !p.lock().is_leader(),
            // In a cluster, a partition without a replica here is led by another broker.
            None => self.cluster.is_some(),
        };
        led_elsewhere || self.replicas.logs().offline_error(&tp).is_some()
    }

    /// Whether the applied metadata names this broker leader of the key's coordinator partition
    /// while the broker has not taken it over yet (the publisher is still loading it), and its
    /// log dir is online.
    pub fn coordinator_partition_loading(&self, topic: &str, key: &str) -> bool {
        let Some(meta) = self.metadata.topic(topic) else { return false };
        self.coordinator_partition_loading_at(topic, crate::records::internal::partition_for(key, meta.partitions))
    }

    /// [`Self::coordinator_partition_loading`] of one partition of the internal topic.
    pub fn coordinator_partition_loading_at(&self, topic: &str, partition: i32) -> bool {
        let tp = TopicPartition::new(topic.to_string(), partition);
        self.cluster_partition(topic, partition).is_some_and(|p| p.leader == self.config.node_id)
            && !self.replicas.partition(&tp).is_some_and(|p| p.lock().is_leader())
            && self.replicas.logs().offline_error(&tp).is_none()
    }

    /// The brokers clients are told of (Metadata, DescribeCluster): in a cluster every
    /// registered, unfenced broker at its client listener; on a single node, this one.
    pub fn live_brokers(&self) -> Vec<BrokerInfo> {
        self.live_brokers_on(self.default_listener())
    }

    /// The brokers clients of listener `listener` are told of: each at its endpoint on that
    /// listener (Kafka answers with the endpoints of the listener the request came in on; a
    /// broker without that listener is left out, as Kafka leaves it out).
    pub fn live_brokers_on(&self, listener: &str) -> Vec<BrokerInfo> {
        let Some(cluster) = &self.cluster else {
            let (host, port) = self.own_endpoint(listener);
            return vec![BrokerInfo { id: self.config.node_id, host, port, rack: None }];
        };
        let image = cluster.image();
        image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| self.client_endpoint(b, listener).map(|(host, port)| BrokerInfo { id: b.id, host, port, rack: b.rack.clone() }))
            .collect()
    }

    /// Where clients reach broker `id`, from its registration (cluster) or this node's address.
    pub fn broker_endpoint(&self, id: i32) -> Option<(String, u16)> {
        self.broker_endpoint_on(id, self.default_listener())
    }

    /// Where clients of listener `listener` reach broker `id`.
    pub fn broker_endpoint_on(&self, id: i32, listener: &str) -> Option<(String, u16)> {
        match &self.cluster {
            None => (id == self.config.node_id).then(|| self.own_endpoint(listener)),
            Some(cluster) => cluster.image().broker(id).and_then(|b| self.client_endpoint(b, listener)),
        }
    }

    /// The name of the first client listener.
    pub fn default_listener(&self) -> &str {
        self.listener_endpoints.first().map_or("PLAINTEXT", |l| l.name.as_str())
    }

    /// This node's advertised endpoint on `listener` (the first listener's for an unknown name).
    fn own_endpoint(&self, listener: &str) -> (String, u16) {
        let e = self.listener_endpoints.iter().find(|l| l.name == listener).map_or(&self.advertised, |l| &l.endpoint);
        (e.host.clone(), e.port)
    }

    fn client_endpoint(&self, b: &crate::metadata::BrokerRegistration, listener: &str) -> Option<(String, u16)> {
        let e = b.end_points.iter().find(|e| e.name == listener)?;
        Some((e.host.clone(), e.port))
    }

    /// The partition's leader, epochs, replicas and ISR as the cluster's metadata has them
    /// (`None` on a single node, or for an unknown partition).
    pub fn cluster_partition(&self, topic: &str, partition: i32) -> Option<partition::LeaderAndIsr> {
        let image = self.cluster.as_ref()?.image();
        let t = image.topic_by_name(topic)?;
        let p = t.partitions.get(&partition)?;
        Some(partition::LeaderAndIsr { leader: p.leader, leader_epoch: p.leader_epoch, partition_epoch: p.partition_epoch, replicas: p.replicas.clone(), isr: p.isr.clone() })
    }

    /// Whether a topic-partition exists (AddPartitionsToTxn refuses unknown ones; a marker for
    /// a deleted one is skipped).
    pub fn partition_exists(&self, tp: &TopicPartition) -> bool {
        self.metadata.topic(&tp.topic).is_some_and(|t| tp.partition >= 0 && tp.partition < t.partitions)
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// What a coordinator needs to know of a failed append to or read of its internal topic: the
/// storage error classified into the cases Kafka's coordinators answer differently.
fn log_error(e: replica_manager::ReplicaError) -> LogError {
    use crate::records::RecordsError;
    use crate::storage::StorageError as S;
    use replica_manager::ReplicaError as R;
    let text = e.to_string();
    match e {
        R::UnknownTopicOrPartition | R::Storage(S::UnknownPartition(_)) => LogError::TopicUnavailable(text),
        R::Storage(S::LogDirOffline(_)) => LogError::PartitionOffline(text),
        R::Partition(_) => LogError::NotLeader(text),
        R::Storage(S::Io(_) | S::Corrupt(_)) => LogError::Storage(text),
        R::Storage(S::Records(RecordsError::MessageTooLarge { .. } | RecordsError::RecordTooLarge { .. })) => LogError::RecordTooLarge(text),
        R::Storage(_) => LogError::Other(text),
    }
}

/// How long a coordinator's write waits for the ISR in a cluster (Kafka's
/// `offsets.commit.timeout.ms` default).
const INTERNAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

impl Broker {
    /// A coordinator's write to its internal partition. In a cluster it is acknowledged only
    /// once the partition's ISR has it (Kafka's coordinators write with acks=all), so a new
    /// leader's coordinator loads every write that was answered; a partition led elsewhere is
    /// NOT_COORDINATOR, an ISR that does not copy it in time COORDINATOR_NOT_AVAILABLE.
    fn append_internal(&self, tp: &TopicPartition, batch: &Bytes) -> Result<(), LogError> {
        if self.cluster.is_some() && !self.replicas.partition(tp).is_some_and(|p| p.lock().is_leader()) {
            return Err(LogError::NotLeader(format!("{tp} is led by another broker")));
        }
        let appended = self.replicas.append(tp, batch).map_err(log_error)?;
        if self.cluster.is_none() {
            return Ok(());
        }
        let published = self.replicas.published(tp).ok_or_else(|| LogError::NotLeader(format!("{tp} is no longer here")))?;
        let min_isr = self.metadata.topic(&tp.topic).map_or(1, |t| t.settings.min_insync_replicas);
        let replicas = self.replicas.clone();
        let (tp2, acked_at) = (tp.clone(), appended.acked_at);
        let Some(cluster) = &self.cluster else { return Ok(()) };
        let waited = cluster.wait_on(async move {
            let deadline = tokio::time::Instant::now() + INTERNAL_WRITE_TIMEOUT;
            replicas.wait_for_replicas(&tp2, &published, acked_at, min_isr, deadline).await
        });
        match waited {
            Some(Ok(())) => Ok(()),
            Some(Err(replica_manager::AckError::NotLeader)) => Err(LogError::NotLeader(format!("{tp} stopped being led here"))),
            Some(Err(e)) => Err(LogError::TopicUnavailable(e.to_string())),
            None => Err(LogError::Other("no runtime to wait for the replicas on".into())),
        }
    }
}

impl GroupLog for Broker {
    fn append_group_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
        self.ensure_offsets_topic().map_err(LogError::TopicUnavailable)?;
        let tp = TopicPartition::new(OFFSETS_TOPIC.to_string(), partition);
        self.append_internal(&tp, &batch)
    }

    fn group_partitions(&self) -> Option<i32> {
        self.metadata.topic(OFFSETS_TOPIC).map(|t| t.partitions)
    }

    fn read_group_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError> {
        self.read_internal(OFFSETS_TOPIC, partition, offset)
    }

    fn not_coordinating(&self, partition: i32) -> Option<crate::group::GroupError> {
        crate::api::offline_group_partition(self, partition)
    }
}

impl TxnLog for Broker {
    fn append_txn_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
        self.ensure_txn_topic().map_err(LogError::TopicUnavailable)?;
        let tp = TopicPartition::new(TRANSACTION_STATE_TOPIC.to_string(), partition);
        self.append_internal(&tp, &batch)
    }

    fn txn_partitions(&self) -> Option<i32> {
        self.metadata.topic(TRANSACTION_STATE_TOPIC).map(|t| t.partitions)
    }

    fn read_txn_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError> {
        self.read_internal(TRANSACTION_STATE_TOPIC, partition, offset)
    }

    fn next_producer_id(&self) -> Result<i64, LogError> {
        // The block reservation is a write to the broker's metadata file: a storage fault.
        self.producer_ids.next_id().map_err(|e| LogError::Storage(e.to_string()))
    }

    fn write_marker(&self, tp: &TopicPartition, producer_id: i64, epoch: i16, commit: bool) -> Result<(), MarkerError> {
        if !self.partition_exists(tp) {
            return Err(MarkerError::UnknownPartition);
        }
        if let Some(cluster) = &self.cluster
            && !self.replicas.partition(tp).is_some_and(|p| p.lock().is_leader())
        {
            return self.forward_marker(cluster, tp, producer_id, epoch, commit);
        }
        self.append_local_marker(tp, producer_id, epoch, commit)
    }

    fn transaction_version(&self) -> i16 {
        self.features.level(features::TRANSACTION_VERSION)
    }
}

impl Broker {
    /// Appends a transaction marker to a partition led here (the coordinator's own, or one a
    /// coordinator elsewhere sent with WriteTxnMarkers), and completes the offsets a transaction
    /// committed when the partition is one of `__consumer_offsets`.
    pub fn append_local_marker(&self, tp: &TopicPartition, producer_id: i64, epoch: i16, commit: bool) -> Result<(), MarkerError> {
        let control = if commit { ControlType::Commit } else { ControlType::Abort };
        match self.replicas.append_marker(tp, producer_id, epoch, Marker { control, coordinator_epoch: 0 }) {
            Ok(_) => {}
            Err(replica_manager::ReplicaError::UnknownTopicOrPartition) => return Err(MarkerError::UnknownPartition),
            Err(e) => return Err(MarkerError::Failed(e.to_string())),
        }
        if tp.topic == OFFSETS_TOPIC {
            self.groups.complete_txn(self, tp.partition, producer_id, commit);
        }
        Ok(())
    }

    /// Whether a transactional append to `tp` may go ahead, as its leader checks before it.
    /// `add` false is Kafka's partition verification: `tp` must be in the producer's open
    /// transaction. `add` true is KIP-890's implicit add (Produce v12, TxnOffsetCommit v5): `tp`
    /// joins the transaction, which opens if none is. In a cluster whose transaction coordinator
    /// for `id` is another broker, it is asked with AddPartitionsToTxn (verify_only unless adding).
    pub fn check_txn_partition(&self, id: &str, producer_id: i64, epoch: i16, tp: &TopicPartition, add: bool) -> Result<(), crate::txn::TxnError> {
        use crate::txn::TxnError;
        let local = || {
            if add {
                self.txns.add_partitions(self, id, producer_id, epoch, std::slice::from_ref(tp), crate::txn::ClientTv::V2)
            } else {
                self.txns.verify_produce(id, producer_id, epoch, tp)
            }
        };
        // The transaction is open on this partition already: its first batch here was verified
        // (or added). As in Kafka (UnifiedLog.maybeStartTransactionVerification), only the first
        // batch of a transaction on a partition is checked with the coordinator; a transaction
        // ended meanwhile by a timeout was ended at a bumped epoch, which the log's epoch check
        // refuses this batch for.
        if self.replicas.has_ongoing_txn(tp, producer_id, epoch) {
            return Ok(());
        }
        let Some(cluster) = &self.cluster else { return local() };
        if !self.coordinator_partition_offline(TRANSACTION_STATE_TOPIC, id) {
            return local();
        }
        use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
        use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TransactionalId};
        use kafka_protocol::protocol::StrBytes;
        // A coordinator that cannot be reached or is not ready yet is a retriable refusal
        // (Kafka answers the producer NOT_ENOUGH_REPLICAS, a TxnOffsetCommit
        // COORDINATOR_NOT_AVAILABLE), never one that ends the producer.
        let unavailable = |why: String| TxnError::Log(LogError::TopicUnavailable(why));
        let meta = self.metadata.topic(TRANSACTION_STATE_TOPIC).ok_or_else(|| unavailable(format!("no {TRANSACTION_STATE_TOPIC} topic")))?;
        let partition = crate::records::internal::partition_for(id, meta.partitions);
        let leader = self.cluster_partition(TRANSACTION_STATE_TOPIC, partition).map_or(partition::NO_LEADER, |s| s.leader);
        let addr = (leader >= 0)
            .then(|| cluster.broker_addr(leader, self.config.topology.inter_broker_listener_name.as_deref()))
            .flatten()
            .ok_or_else(|| unavailable(format!("no leader of {TRANSACTION_STATE_TOPIC}-{partition}")))?;
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(!add)
            .with_topics(vec![AddPartitionsToTxnTopic::default().with_name(topic_name(&tp.topic)).with_partitions(vec![tp.partition])]);
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
        let client_id = format!("broker-{}-txn-verifier", self.config.node_id);
        let response = match cluster.send_to_broker(addr, client_id, request) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::info!(partition = %tp, transactional_id = %id, error = %e, "transaction coordinator not reached to check a transactional write");
                return Err(unavailable(e));
            }
            None => return Err(unavailable("shutting down".into())),
        };
        let code = response
            .results_by_transaction
            .first()
            .and_then(|t| t.topic_results.first())
            .and_then(|t| t.results_by_partition.first())
            .map_or(response.error_code, |p| p.partition_error_code);
        match code {
            0 => Ok(()),
            47 | 90 => Err(TxnError::ProducerFenced),
            49 => Err(TxnError::InvalidProducerIdMapping),
            51 => Err(TxnError::ConcurrentTransactions),
            13..=16 => Err(unavailable(format!("the coordinator answered error {code}"))),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// A marker for a partition another broker leads: sent to it with WriteTxnMarkers (Kafka's
    /// TransactionMarkerChannelManager), this handler thread waiting for the answer. A refusal
    /// or no answer leaves the transaction in Prepare and the coordinator's timer retries.
    fn forward_marker(&self, cluster: &Arc<cluster::ClusterState>, tp: &TopicPartition, producer_id: i64, epoch: i16, commit: bool) -> Result<(), MarkerError> {
        use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
        use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
        let leader = self.cluster_partition(&tp.topic, tp.partition).map_or(partition::NO_LEADER, |s| s.leader);
        let addr = (leader >= 0)
            .then(|| cluster.broker_addr(leader, self.config.topology.inter_broker_listener_name.as_deref()))
            .flatten()
            .ok_or_else(|| MarkerError::Failed(format!("{tp} has no reachable leader")))?;
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(tp.topic.clone())))
                .with_partition_indexes(vec![tp.partition])]);
        let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let client_id = format!("broker-{}-txn-marker-sender", self.config.node_id);
        let response = cluster
            .send_to_broker(addr, client_id, request)
            .ok_or_else(|| MarkerError::Failed("marker request dropped".into()))?
            .map_err(MarkerError::Failed)?;
        let code = response.markers.first().and_then(|m| m.topics.first()).and_then(|t| t.partitions.first()).map_or(-1, |p| p.error_code);
        match code {
            0 => Ok(()),
            3 => Err(MarkerError::UnknownPartition),
            code => Err(MarkerError::Failed(format!("the leader of {tp} answered error {code}"))),
        }
    }
}

/// What a broker loaded from its log dirs before it can be put together: the node wiring binds
/// the listeners between loading and serving (the advertised endpoint depends on the bound port).
pub struct Loaded {
    config: Config,
    cluster_id: String,
    directory_ids: Vec<uuid::Uuid>,
    metadata: MetadataStore,
    replicas: ReplicaManager,
    producer_ids: ProducerIdManager,
    scram: scram::ScramStore,
    authorizer: Option<acl::Authorizer>,
    quotas: quotas::ClientQuotas,
    features: features::FeatureStore,
    group_configs: metadata::GroupConfigOverrides,
    client_metrics: client_metrics::ClientMetricsSubscriptions,
    cluster: Option<Arc<cluster::ClusterState>>,
}

impl Loaded {
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Each log dir's `directory.id`, in `log.dirs` order.
    pub fn directory_ids(&self) -> &[uuid::Uuid] {
        &self.directory_ids
    }

    /// This broker belongs to a metadata quorum: its partitions' leaders and replicas come from
    /// the cluster's metadata (until then none of them is led here).
    pub fn join_cluster(&mut self, state: Arc<cluster::ClusterState>) {
        self.replicas.await_metadata();
        self.producer_ids.use_controller_blocks();
        self.cluster = Some(state);
    }
}

/// Opens storage and metadata: every log recovered and reconciled with the topics it belongs to.
pub fn load(config: Config, backend: crate::storage::io::Backend) -> Result<Loaded, StartError> {
    for dir in &config.log_dirs {
        std::fs::create_dir_all(dir).map_err(|e| StartError::LogDir(dir.clone(), e))?;
    }
    let first_dir = config.log_dirs[0].clone();
    // Learned from the controllers (a dynamic quorum), else derived from the voters.
    let derived = config.topology.quorum.as_ref().map(|q| q.cluster_id.clone().unwrap_or_else(|| metadata::quorum_cluster_id(&q.voters)));
    let metadata::MetaProperties { cluster_id, directory_ids } = metadata::load_or_create_meta_properties(&config.log_dirs, config.node_id, derived)?;
    // A single node adopts a log dir Kafka left; in a cluster the topics come from the quorum.
    if config.topology.quorum.is_none() {
        adopt::adopt_kafka_log_dirs(&config)?;
    }
    let metadata = MetadataStore::open(&first_dir)?;
    // In a metadata quorum the dynamic broker configs are the metadata log's: the publisher
    // installs them from the replayed image before the client listeners serve. A single node
    // keeps them in its own file.
    if config.topology.quorum.is_none() {
        *config.dynamic.write().unwrap_or_else(|e| e.into_inner()) = metadata::load_dynamic_configs(&first_dir)?;
    } else if metadata::load_dynamic_configs(&first_dir).is_ok_and(|d| d != Default::default()) {
        tracing::warn!("the dynamic broker configs file in the first log dir is ignored: in a cluster they come from the metadata log");
    }
    let producer_ids = ProducerIdManager::open(&first_dir)?;
    let scram = scram::ScramStore::load(&first_dir).map_err(|e| StartError::LogDir(first_dir.clone(), e))?;
    let authorizer = match &config.authorizer {
        // In a metadata quorum the ACLs are the metadata log's, which every broker follows (the
        // publisher); a single node keeps them in its checkpoint.
        Some(settings) if config.topology.quorum.is_some() => Some(acl::Authorizer::following(settings.clone())),
        Some(settings) => Some(acl::Authorizer::load(&first_dir, settings.clone()).map_err(|e| StartError::LogDir(first_dir.clone(), e))?),
        None => None,
    };
    let quotas = quotas::ClientQuotas::load(&first_dir, config.quota_window_num, config.quota_window_size_seconds.saturating_mul(1000))
        .map_err(|e| StartError::LogDir(first_dir.clone(), e))?
        .with_controller_window(config.controller_quota_window_num, config.controller_quota_window_size_seconds.saturating_mul(1000));
    let features = features::FeatureStore::open(&first_dir)?;
    // kraft.version 1 in a dynamic quorum (KIP-853), 0 in a static one.
    if let Some(q) = &config.topology.quorum {
        features.set_kraft_version(i16::from(q.dynamic))?;
    }
    let group_configs = metadata::load_group_configs(&first_dir)?;
    let client_metrics = client_metrics::ClientMetricsSubscriptions::load(&first_dir)?;
    let open_files_max = backend.budget.as_ref().map_or(0, |b| b.stats().max_open);
    tracing::info!(backend = backend.name, requested = %config.io_backend, open_files_max, "storage I/O backend");
    let io = backend.io.clone();
    let default_log = config.log_config(&BTreeMap::new())?;
    let started = std::time::Instant::now();
    let logs = LogManager::open_with_threads(
        config.log_dirs.clone(),
        default_log,
        io,
        crate::storage::log_manager::now_ms(),
        config.num_recovery_threads_per_data_dir,
    )?;
    // Producers that expired while the broker was down (or that an older snapshot and the
    // replayed log brought back after an unclean stop) are forgotten before clients come back,
    // as Kafka drops expired entries when it loads a snapshot.
    let expired = logs.remove_expired_producers(crate::storage::log_manager::now_ms(), config.producer_id_expiration_ms()?);
    if expired > 0 {
        tracing::info!(producers = expired, "forgot producer ids idle for producer.id.expiration.ms");
    }
    let replicas = ReplicaManager::new(logs, backend, config.log_flush_on_acks_all, config.node_id);

    // Topic settings are parsed once here (and again when configs change), not per request.
    let mut settings = BTreeMap::new();
    for topic in metadata.topics() {
        settings.insert(topic.name.clone(), config.topic_settings(&topic.configs)?);
    }
    metadata.refresh_settings(|t| settings.get(&t.name).cloned().unwrap_or_else(|| t.settings.clone()));
    // Reconcile: every partition of a known topic has a log with the topic's settings.
    for topic in metadata.topics() {
        let log_config = config.log_config(&topic.configs)?;
        for p in 0..topic.partitions {
            let tp = TopicPartition::new(topic.name.clone(), p);
            match replicas.logs().get(&tp) {
                Some(_) => replicas.logs().update_config(&tp, log_config.clone())?,
                // In a cluster only replicas have logs; the metadata log says which.
                None if config.topology.quorum.is_some() => {}
                None => {
                    tracing::warn!(partition = %tp, "log missing for a known partition; creating it empty");
                    replicas.create_partition(&tp, log_config.clone())?;
                }
            }
        }
    }
    for tp in replicas.logs().all_partitions() {
        if metadata.topic(&tp.topic).is_none_or(|t| tp.partition >= t.partitions) {
            tracing::warn!(partition = %tp, "log dir of a partition that no topic owns; leaving it untouched");
        }
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, topics = metadata.topics().len(), "logs loaded");

    Ok(Loaded { config, cluster_id, directory_ids, metadata, replicas, producer_ids, scram, authorizer, quotas, features, group_configs, client_metrics, cluster: None })
}

impl Broker {
    /// Puts a loaded broker together, answering as `advertised`, and replays the coordinators'
    /// state (committed offsets, half-ended transactions) before any request is served.
    pub async fn assemble(loaded: Loaded, listener_endpoints: Vec<ListenerEndpoint>, shutdown: watch::Receiver<bool>) -> Result<Arc<Broker>, StartError> {
        let advertised = listener_endpoints.first().map(|l| l.endpoint.clone()).unwrap_or(Endpoint { host: "127.0.0.1".into(), port: 0 });
        let Loaded { config, cluster_id, directory_ids, metadata, replicas, producer_ids, scram, authorizer, quotas, features, group_configs, client_metrics, cluster } = loaded;
        let group_config = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            max_size: config.group_max_size.max(0) as usize,
            offset_metadata_max_bytes: config.offset_metadata_max_bytes.max(0) as usize,
            offsets_topic_partitions: config.offsets_topic_num_partitions,
            offsets_retention_ms: config.offsets_retention_ms,
            offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
            consumer_session_timeout_ms: config.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
            consumer_max_size: config.group_consumer_max_size.max(0) as usize,
            consumer_assignors: config.group_consumer_assignors.clone(),
            append_linger_ms: config.group_coordinator_append_linger_ms,
            migration_policy: config.group_consumer_migration_policy,
        };
        let txn_config = TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms,
            state_log_partitions: config.transaction_state_log_num_partitions,
            id_expiration_ms: config.transactional_id_expiration_ms,
            abort_timed_out_interval_ms: config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            remove_expired_interval_ms: config.transaction_remove_expired_transaction_cleanup_interval_ms,
        };
        let io_pool = io_pool::IoPool::new(config.num_io_threads, config.queued_max_requests).map_err(StartError::Threads)?;
        let replication_quota = |direction| replication_quota::ReplicationQuota::new(direction, config.replication.quota_window_num, config.replication.quota_window_size_seconds);
        let (leader_quota, follower_quota) = (replication_quota(replication_quota::Direction::Leader), replication_quota(replication_quota::Direction::Follower));
        let client_telemetry = client_telemetry::ClientTelemetry::new(config.telemetry.max_bytes, config.telemetry.instances_max);
        let telemetry_receiver = config.telemetry.enabled.then(|| crate::metrics::client_telemetry::TelemetryReceiver::new(config.telemetry.instances_max));
        let dynamic_applied = std::sync::RwLock::new(config.dynamic.read().unwrap_or_else(|e| e.into_inner()).clone());
        let broker = Arc::new(Broker {
            config,
            cluster_id,
            directory_ids,
            advertised,
            listener_endpoints,
            metadata,
            replicas: Arc::new(replicas),
            io_pool,
            producer_ids,
            groups: GroupCoordinator::new(group_config),
            txns: TransactionCoordinator::new(txn_config),
            scram,
            authorizer,
            quotas,
            features,
            fetchers: replica_fetcher::ReplicaFetchers::default(),
            leader_quota,
            follower_quota,
            cluster,
            metrics: Arc::new(crate::metrics::BrokerMetrics::new()),
            group_configs_write: std::sync::Mutex::new(()),
            dynamic_applied,
            dynamic_refused: std::sync::Mutex::new(None),
            client_metrics,
            listener_tls: std::sync::RwLock::new(Vec::new()),
            creation_rates: std::sync::Mutex::new(Vec::new()),
            client_telemetry,
            telemetry_receiver,
            shutdown,
        });
        for (group, configs) in group_configs {
            broker.groups.set_group_configs(&group, configs);
        }
        broker.apply_move_io_rate();
        broker.apply_replication_throttled_rates();
        if broker.cluster.is_some() {
            // In a cluster each coordinator partition is loaded when this broker comes to lead it.
            return Ok(broker);
        }
        // Committed offsets must be back before the first OffsetFetch is answered.
        let loaded = std::time::Instant::now();
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.groups.load(&*b)).await {
            Ok(Ok(records)) => tracing::info!(records, elapsed_ms = loaded.elapsed().as_millis() as u64, "group state loaded from __consumer_offsets"),
            Ok(Err(e)) => tracing::error!(error = %e, "could not replay __consumer_offsets; groups start empty"),
            Err(e) => tracing::error!(error = %e, "loading group state panicked"),
        }
        // Transactions a stop left half-ended are completed before clients come back.
        let loaded = std::time::Instant::now();
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.txns.load(&*b)).await {
            Ok(Ok(ids)) => tracing::info!(ids, elapsed_ms = loaded.elapsed().as_millis() as u64, "transaction state loaded from __transaction_state"),
            Ok(Err(e)) => tracing::error!(error = %e, "could not replay __transaction_state; transactional ids start unknown"),
            Err(e) => tracing::error!(error = %e, "loading transaction state panicked"),
        }
        Ok(broker)
    }
}

/// Period of the group coordinator's timer tick, in ms.
const GROUP_TICK_MS: u64 = 100;

/// Runs `f` every `period` on the blocking pool until shutdown.
fn every(broker: &Arc<Broker>, period: Duration, name: &'static str, f: fn(&Broker)) -> JoinHandle<()> {
    let broker = broker.clone();
    let mut stop = broker.shutdown_signal();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let b = broker.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || f(&b)).await {
                tracing::error!(task = name, error = %e, "background task failed");
            }
        }
    })
}

/// Retention, the cleaner, flushes, checkpoints and the coordinators' timers, until shutdown.
pub fn spawn_background_tasks(broker: &Arc<Broker>) -> Vec<JoinHandle<()>> {
    let c = &broker.config;
    let mut tasks = vec![];
    if c.log_cleaner_enable {
        tasks.push(every(broker, Duration::from_millis(c.log_cleaner_backoff_ms), "cleaner", |b| {
            // Read each pass: both may change at run time (dynamic broker configs).
            let size = |name: &str, startup: usize| b.config.long(name).ok().filter(|v| *v > 0).map_or(startup, |v| v as usize);
            let cfg = CleanerConfig {
                dedupe_buffer_bytes: size("log.cleaner.dedupe.buffer.size", b.config.log_cleaner_dedupe_buffer_size),
                io_buffer_bytes: size("log.cleaner.io.buffer.size", b.config.log_cleaner_io_buffer_size),
            };
            // Checked at startup and before each dynamic change: the default is never used.
            let threads = b.config.log_cleaner_threads().unwrap_or(1);
            if let Err(e) = b.replicas.logs().run_cleaner(&cfg, threads, replica_manager::now_ms()) {
                tracing::warn!(error = %e, "log cleaner failed");
            }
        }));
    }
    tasks.extend([
        every(broker, Duration::from_millis(c.log_retention_check_interval_ms), "retention", |b| {
            match b.replicas.logs().run_retention(replica_manager::now_ms()) {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(segments = deleted, "retention deleted segments"),
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
        }),
        every(broker, Duration::from_millis(c.log_flush_scheduler_interval_ms.min(1 << 40)), "flush", |b| {
            if let Err(e) = b.replicas.logs().flush_due(replica_manager::now_ms()) {
                tracing::warn!(error = %e, "flush failed");
            }
        }),
        // Session expiry, rebalance timeouts and the initial join delay; 100 ms is finer than any
        // timeout a client may ask for (group.min.session.timeout.ms).
        every(broker, Duration::from_millis(GROUP_TICK_MS), "groups", |b| b.groups.tick(b)),
        // Timeouts and id expiry; the coordinator limits itself to its cleanup intervals.
        every(broker, Duration::from_millis(c.transaction_abort_timed_out_transaction_cleanup_interval_ms.clamp(10, 1000)), "transactions", |b| b.txns.tick(b)),
        // Kafka's producer expiration check; the expiration is read each pass (dynamic config).
        every(broker, Duration::from_millis(c.producer_id_expiration_check_interval_ms), "producer expiration", |b| {
            let expiration_ms = b.config.producer_id_expiration_ms().unwrap_or(b.config.producer_id_expiration_ms);
            let removed = b.replicas.logs().remove_expired_producers(replica_manager::now_ms(), expiration_ms);
            if removed > 0 {
                tracing::debug!(producers = removed, expiration_ms, "forgot expired producer ids");
            }
        }),
        every(broker, Duration::from_millis(c.log_flush_offset_checkpoint_interval_ms), "checkpoint", |b| {
            if let Err(e) = b.replicas.logs().checkpoint() {
                tracing::warn!(error = %e, "could not write checkpoints");
            }
        }),
    ]);
    tasks
}

#[cfg(test)]
mod tests {
    use super::check_dynamic_config_names;
    use std::collections::BTreeMap;

    fn names(keys: &[&str]) -> BTreeMap<String, String> {
        keys.iter().map(|k| (k.to_string(), "1".to_string())).collect()
    }

    #[test]
    fn dynamic_names_are_checked_in_kafkas_words() {
        assert_eq!(check_dynamic_config_names(&names(&["log.retention.ms", "follower.replication.throttled.rate", "my.custom.name"])), Ok(()));
        assert_eq!(check_dynamic_config_names(&names(&["listener.name.ssl.ssl.keystore.location"])), Ok(()));
        assert_eq!(check_dynamic_config_names(&names(&["log.dirs"])), Err("Cannot update these configs dynamically: Set(log.dirs)".to_string()));
        assert_eq!(check_dynamic_config_names(&names(&["node.id", "log.dirs"])), Err("Cannot update these configs dynamically: Set(log.dirs, node.id)".to_string()));
        assert_eq!(
            check_dynamic_config_names(&names(&["ssl.keystore.location"])),
            Err("These security configs can be dynamically updated only per-listener using the listener prefix: HashSet(ssl.keystore.location)".to_string())
        );
        assert_eq!(check_dynamic_config_names(&BTreeMap::new()), Ok(()));
    }
}
