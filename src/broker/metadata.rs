//! Cluster metadata of a single node: topics (names, stable UUIDs, partition counts, config
//! overrides), the cluster id and the producer-id block. Durable through checkpoint files written
//! atomically; knows nothing of requests or of the logs themselves.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use uuid::Uuid;

use crate::storage::checkpoint::write_atomic;
use crate::storage::io::std::StdIo;
use crate::config::{DynamicBrokerConfigs, TopicSettings};

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(&StdIo, path, bytes)
}

/// One topic as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Per-topic config overrides (what DescribeConfigs reports as DYNAMIC_TOPIC_CONFIG).
    pub configs: BTreeMap<String, String>,
    /// The settings requests read (overrides on top of the broker defaults), parsed when the
    /// topic is made or its configs or the broker defaults change, never per request.
    pub settings: TopicSettings,
}

impl TopicMeta {
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("metadata file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("metadata I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("adopting a Kafka log dir: {0}")]
    Adopt(String),
    /// The active controller refused the change with this error code (forwarded as is).
    #[error("{message}")]
    Controller { code: i16, message: String },
    /// The active controller did not answer in time (or none could be reached).
    #[error("the controller did not answer: {0}")]
    ControllerUnreachable(String),
}

/// Checks a topic name as Kafka's controller does ([`crate::metadata::topic_name_refusal`]).
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    crate::metadata::topic_name_refusal(name).map_or(Ok(()), |why| Err(MetadataError::InvalidTopic(why)))
}

/// Topics whose names differ only by '.' versus '_' collide in metric names; Kafka refuses them.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

const TOPICS_FILE: &str = "fjord-topics.checkpoint";
const TOPICS_FILE_VERSION: &str = "0";

/// The topic table. Reads are cheap (RwLock, an `Arc` handed out, no copy of a topic's configs);
/// changes are written to disk before they are visible.
pub struct MetadataStore {
    dir: PathBuf,
    topics: RwLock<Topics>,
    /// Serializes changes. A change builds the next table, creates logs and persists it holding
    /// only this, so readers (every produce and fetch) never wait behind its file writes and
    /// fsyncs; the read-write lock is taken for writing only to swap the table in.
    writer: Mutex<()>,
}

/// The topics by name (ordered, as listings want them) and by id (Fetch v13+, DeleteTopics by
/// id, Metadata v10+), always holding the same entries.
#[derive(Clone, Default)]
struct Topics {
    by_name: BTreeMap<String, Arc<TopicMeta>>,
    by_id: HashMap<Uuid, Arc<TopicMeta>>,
}

impl Topics {
    fn insert(&mut self, meta: TopicMeta) -> Arc<TopicMeta> {
        let meta = Arc::new(meta);
        if let Some(old) = self.by_name.insert(meta.name.clone(), meta.clone()) {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(meta.id, meta.clone());
        meta
    }

    fn remove(&mut self, name: &str) -> Option<Arc<TopicMeta>> {
        let meta = self.by_name.remove(name)?;
        self.by_id.remove(&meta.id);
        Some(meta)
    }
}

/// Percent-escapes the bytes that would break the line format (space, '%', '=', newlines).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' ' | '%' | '=' | '\n' | '\r' | '\t' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn encode_topics(topics: &BTreeMap<String, Arc<TopicMeta>>) -> String {
    let mut s = format!("{TOPICS_FILE_VERSION}\n{}\n", topics.len());
    for t in topics.values() {
        s.push_str(&format!("{} {} {} {}", t.name, t.id, t.partitions, t.configs.len()));
        for (k, v) in &t.configs {
            s.push_str(&format!(" {}={}", escape(k), escape(v)));
        }
        s.push('\n');
    }
    s
}

fn decode_topics(text: &str) -> Result<Topics, String> {
    let mut lines = text.lines();
    if lines.next() != Some(TOPICS_FILE_VERSION) {
        return Err("unknown version".into());
    }
    let count: usize = lines.next().and_then(|l| l.parse().ok()).ok_or("bad count")?;
    let mut topics = Topics::default();
    for line in lines {
        let mut f = line.split(' ');
        let name = f.next().ok_or("missing name")?.to_string();
        let id = Uuid::parse_str(f.next().ok_or("missing id")?).map_err(|e| e.to_string())?;
        let partitions: i32 = f.next().and_then(|p| p.parse().ok()).ok_or("bad partitions")?;
        let n: usize = f.next().and_then(|p| p.parse().ok()).ok_or("bad config count")?;
        let mut configs = BTreeMap::new();
        for kv in f {
            let (k, v) = kv.split_once('=').ok_or("bad config")?;
            configs.insert(unescape(k).ok_or("bad escape")?, unescape(v).ok_or("bad escape")?);
        }
        if configs.len() != n {
            return Err(format!("topic {name}: expected {n} configs"));
        }
        // Settings are parsed against the broker config once it is known (refresh_settings).
        topics.insert(TopicMeta { name, id, partitions, configs, settings: TopicSettings::default() });
    }
    if topics.by_name.len() != count || topics.by_id.len() != count {
        return Err(format!("expected {count} topics, found {}", topics.by_name.len()));
    }
    Ok(topics)
}

/// Whether `dir` holds a topic table (written at the first topic creation or adoption).
pub fn topics_file_exists(dir: &Path) -> bool {
    dir.join(TOPICS_FILE).exists()
}

/// Writes a whole topic table to `dir` (adopting a Kafka log dir, before the store is opened).
pub fn write_topics(dir: &Path, topics: Vec<TopicMeta>) -> Result<(), MetadataError> {
    let mut table = Topics::default();
    for t in topics {
        table.insert(t);
    }
    write_atomically(&dir.join(TOPICS_FILE), encode_topics(&table.by_name).as_bytes())?;
    Ok(())
}

impl MetadataStore {
    /// Loads the topic table from `dir` (the first log dir); empty when the file does not exist.
    pub fn open(dir: &Path) -> Result<MetadataStore, MetadataError> {
        let path = dir.join(TOPICS_FILE);
        let topics = match std::fs::read_to_string(&path) {
            Ok(text) => decode_topics(&text).map_err(|reason| MetadataError::Corrupt { path, reason })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Topics::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(MetadataStore { dir: dir.to_path_buf(), topics: RwLock::new(topics), writer: Mutex::new(()) })
    }

    fn persist(&self, topics: &Topics) -> Result<(), MetadataError> {
        write_atomically(&self.dir.join(TOPICS_FILE), encode_topics(&topics.by_name).as_bytes())?;
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicMeta>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).by_name.get(name).cloned()
    }

    /// A topic by its id: a hash lookup, not a scan (Fetch v13+ asks once per topic per fetch).
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<TopicMeta>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).by_id.get(&id).cloned()
    }

    /// Every topic, ordered by name.
    pub fn topics(&self) -> Vec<Arc<TopicMeta>> {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).by_name.values().cloned().collect()
    }

    /// Parses every topic's settings again (at startup, and when the broker defaults they
    /// inherit change); in memory only, the settings derive from what is persisted.
    pub fn refresh_settings(&self, settings: impl Fn(&TopicMeta) -> TopicSettings) {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let all: Vec<TopicMeta> = topics.by_name.values().map(|t| TopicMeta { settings: settings(t), ..TopicMeta::clone(t) }).collect();
        for t in all {
            topics.insert(t);
        }
    }

    /// Checks that a topic could be created (name legal, not taken, no '.'/'_' collision).
    pub fn check_new_topic(&self, name: &str) -> Result<(), MetadataError> {
        validate_topic_name(name)?;
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        if topics.by_name.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        let key = collision_key(name);
        if let Some(other) = topics.by_name.values().find(|t| collision_key(&t.name) == key) {
            return Err(MetadataError::InvalidTopic(format!(
                "Topic '{name}' collides with existing topic: {}",
                other.name
            )));
        }
        Ok(())
    }

    /// Adds a topic with a fresh UUID. `create_logs` runs under the write lock before the change
    /// is persisted, so a topic is never visible without its partitions.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        settings: TopicSettings,
        create_logs: impl FnOnce(&TopicMeta) -> Result<(), MetadataError>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.check_new_topic(name)?;
        let meta = TopicMeta { name: name.to_string(), id: Uuid::new_v4(), partitions, configs, settings };
        create_logs(&meta)?;
        let mut next = self.snapshot();
        let meta = next.insert(meta);
        self.persist(&next)?;
        self.swap(next);
        Ok(meta)
    }

    /// Changes a topic (partition count, config overrides): `change` gets the current entry and
    /// returns the new one; `apply` (e.g. creating the new partitions' logs) runs before the
    /// change is persisted and visible, while readers still see the old entry.
    pub fn alter_topic(
        &self,
        name: &str,
        change: impl FnOnce(&TopicMeta) -> Result<TopicMeta, MetadataError>,
        apply: impl FnOnce(&TopicMeta, &TopicMeta) -> Result<(), MetadataError>,
    ) -> Result<Arc<TopicMeta>, MetadataError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.snapshot();
        let old = next.by_name.get(name).cloned().ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let new = change(&old)?;
        debug_assert!(new.name == old.name && new.id == old.id, "a topic keeps its name and id");
        apply(&old, &new)?;
        let new = next.insert(new);
        self.persist(&next)?;
        self.swap(next);
        Ok(new)
    }

    /// Records `meta` as it is (a topic from the cluster's metadata log, with its id), replacing
    /// the entry of the same name. The caller makes the logs of the partitions this node holds.
    pub fn put_topic(&self, meta: TopicMeta) -> Result<Arc<TopicMeta>, MetadataError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.snapshot();
        let meta = next.insert(meta);
        self.persist(&next)?;
        self.swap(next);
        Ok(meta)
    }

    /// Removes a topic from the table (durably) and returns it; the caller deletes its logs.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<TopicMeta>, MetadataError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.snapshot();
        let meta = next.remove(name).ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        self.persist(&next)?;
        self.swap(next);
        Ok(meta)
    }

    /// A copy of the table to build a change on (the entries are shared `Arc`s).
    fn snapshot(&self) -> Topics {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes a persisted table visible. The caller holds `writer`, so nothing changed meanwhile.
    fn swap(&self, next: Topics) {
        *self.topics.write().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

const DYNAMIC_CONFIGS_FILE: &str = "fjord-broker-configs.checkpoint";
const GROUP_CONFIGS_FILE: &str = "fjord-group-configs.checkpoint";
const SCOPED_CONFIGS_VERSION: &str = "0";

/// Reads a file of config overrides by scope: a version line, then `scope key=value` lines, each
/// part escaped as the topic table is. None when the file does not exist (nothing was ever set).
pub(crate) fn load_scoped_configs(path: &Path) -> Result<Option<Vec<(String, String, String)>>, MetadataError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |reason: &str| MetadataError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() };
    let mut lines = text.lines();
    if lines.next() != Some(SCOPED_CONFIGS_VERSION) {
        return Err(corrupt("unknown version"));
    }
    let mut out = Vec::new();
    for line in lines {
        let (scope, kv) = line.split_once(' ').ok_or_else(|| corrupt("missing scope"))?;
        let (k, v) = kv.split_once('=').ok_or_else(|| corrupt("bad config"))?;
        let part = |x: &str| unescape(x).ok_or_else(|| corrupt("bad escape"));
        out.push((part(scope)?, part(k)?, part(v)?));
    }
    Ok(Some(out))
}

/// Writes (scope, key, value) overrides in the format `load_scoped_configs` reads, atomically
/// (temp, fsync, rename, fsync dir).
pub(crate) fn store_scoped_configs<'a>(path: &Path, entries: impl Iterator<Item = (&'a str, &'a String, &'a String)>) -> Result<(), MetadataError> {
    let mut text = format!("{SCOPED_CONFIGS_VERSION}\n");
    for (scope, k, v) in entries {
        text.push_str(&format!("{} {}={}\n", escape(scope), escape(k), escape(v)));
    }
    write_atomically(path, text.as_bytes())?;
    Ok(())
}

/// Loads the dynamic broker configs (empty when never set). Scopes: `broker` (this broker) or
/// `default` (cluster-wide default).
pub fn load_dynamic_configs(dir: &Path) -> Result<DynamicBrokerConfigs, MetadataError> {
    let path = dir.join(DYNAMIC_CONFIGS_FILE);
    let mut out = DynamicBrokerConfigs::default();
    for (scope, k, v) in load_scoped_configs(&path)?.unwrap_or_default() {
        match scope.as_str() {
            "broker" => out.per_broker.insert(k, v),
            "default" => out.cluster_default.insert(k, v),
            _ => return Err(MetadataError::Corrupt { path, reason: "unknown scope".into() }),
        };
    }
    Ok(out)
}

/// Writes the dynamic broker configs atomically.
pub fn store_dynamic_configs(dir: &Path, configs: &DynamicBrokerConfigs) -> Result<(), MetadataError> {
    let scoped = [("broker", &configs.per_broker), ("default", &configs.cluster_default)];
    store_scoped_configs(&dir.join(DYNAMIC_CONFIGS_FILE), scoped.into_iter().flat_map(|(scope, map)| map.iter().map(move |(k, v)| (scope, k, v))))
}

/// Per-group config overrides (resource type GROUP), by group id.
pub type GroupConfigOverrides = BTreeMap<String, BTreeMap<String, String>>;

/// Loads the group config overrides (empty when never set); the scope is the group id.
pub fn load_group_configs(dir: &Path) -> Result<GroupConfigOverrides, MetadataError> {
    let mut out = GroupConfigOverrides::new();
    for (group, k, v) in load_scoped_configs(&dir.join(GROUP_CONFIGS_FILE))?.unwrap_or_default() {
        out.entry(group).or_default().insert(k, v);
    }
    Ok(out)
}

/// Writes every group's config overrides atomically.
pub fn store_group_configs(dir: &Path, configs: &GroupConfigOverrides) -> Result<(), MetadataError> {
    store_scoped_configs(&dir.join(GROUP_CONFIGS_FILE), configs.iter().flat_map(|(group, map)| map.iter().map(move |(k, v)| (group.as_str(), k, v))))
}

/// Kafka's textual form of a UUID: URL-safe base64 without padding (22 characters).
/// The cluster id every node of a static quorum derives alike from `controller.quorum.voters`
/// (Kafka has the operator format each node with one id; here the voter set names the cluster).
pub fn quorum_cluster_id(voters: &BTreeMap<i32, crate::config::Endpoint>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (id, e) in voters {
        h.update(format!("{id}@{}:{};", e.host, e.port).as_bytes());
    }
    let digest = h.finalize();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    uuid_to_kafka_string(Uuid::from_bytes(raw))
}

pub fn uuid_to_kafka_string(id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// What each log dir's `meta.properties` says: the cluster id they share, and each dir's own
/// `directory.id` (Kafka's KIP-858), in `log.dirs` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub directory_ids: Vec<Uuid>,
}

/// Reads every log dir's `meta.properties`, writing the missing ones. The cluster id is the one
/// the dirs already hold (they must agree), else `new_id` when given (every node of a quorum
/// derives the same one), else a random one. Each dir has its own `directory.id`: a dir without
/// `meta.properties` (new, or wiped) gets a fresh one, which is how the controller learns that
/// a broker came back without the data it had; a file from before directory ids gets one added.
pub fn load_or_create_meta_properties(dirs: &[PathBuf], node_id: i32, new_id: Option<String>) -> Result<MetaProperties, MetadataError> {
    let mut found: Vec<Option<(String, Option<Uuid>)>> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        found.push(read_meta_properties(dir, node_id)?);
    }
    let mut held = found.iter().zip(dirs).filter_map(|(f, d)| f.as_ref().map(|(id, _)| (id, d)));
    let cluster_id = match held.next() {
        Some((id, first)) => {
            if let Some((other, dir)) = held.find(|(other, _)| *other != id) {
                return Err(MetadataError::Corrupt {
                    path: dir.join("meta.properties"),
                    reason: format!("cluster.id {other} differs from {id} in {}", first.display()),
                });
            }
            id.clone()
        }
        None => new_id.unwrap_or_else(|| uuid_to_kafka_string(Uuid::new_v4())),
    };
    let mut directory_ids = Vec::with_capacity(dirs.len());
    for (dir, f) in dirs.iter().zip(found) {
        let id = match f {
            Some((_, Some(id))) => id,
            _ => {
                let id = Uuid::new_v4();
                write_meta_properties(dir, node_id, &cluster_id, id)?;
                id
            }
        };
        directory_ids.push(id);
    }
    Ok(MetaProperties { cluster_id, directory_ids })
}

/// Writes a log dir's `meta.properties` (version 1, as Kafka's: node, cluster and directory id),
/// replacing any other atomically.
pub fn write_meta_properties(dir: &Path, node_id: i32, cluster_id: &str, directory_id: Uuid) -> std::io::Result<()> {
    let text = format!("#\n#Written by Fjord\nversion=1\nnode.id={node_id}\ncluster.id={cluster_id}\ndirectory.id={}\n", uuid_to_kafka_string(directory_id));
    write_atomically(&dir.join("meta.properties"), text.as_bytes())
}

/// The cluster id a node of this quorum has: the one its first log dir's `meta.properties`
/// holds, else the one derived from the voters (what a new node writes there).
pub fn quorum_node_cluster_id(first_log_dir: &Path, node_id: i32, voters: &BTreeMap<i32, crate::config::Endpoint>) -> String {
    match read_meta_properties(first_log_dir, node_id) {
        Ok(Some((id, _))) => id,
        _ => quorum_cluster_id(voters),
    }
}

/// One dir's `meta.properties`: its cluster id and directory id, or None when there is none.
pub fn read_meta_properties(dir: &Path, node_id: i32) -> Result<Option<(String, Option<Uuid>)>, MetadataError> {
    let path = dir.join("meta.properties");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let corrupt = |reason: String| MetadataError::Corrupt { path: path.clone(), reason };
    let props = crate::config::parse_properties(&text).map_err(|e| corrupt(e.to_string()))?;
    if let Some(stored) = props.get("node.id").and_then(|n| n.parse::<i32>().ok())
        && stored != node_id
    {
        return Err(corrupt(format!("stored node.id {stored} does not match configured node.id {node_id}")));
    }
    let cluster_id = props.get("cluster.id").cloned().ok_or_else(|| corrupt("no cluster.id".into()))?;
    let directory_id = props.get("directory.id").map(|d| crate::storage::kafka_dir::parse_kafka_uuid(d).map_err(corrupt)).transpose()?;
    Ok(Some((cluster_id, directory_id)))
}

/// Hands out producer ids that are never reused, also across restarts: ids are reserved in
/// blocks whose end is written to disk before any id of the block is given out.
pub struct ProducerIdManager {
    path: PathBuf,
    state: std::sync::Mutex<(i64, i64)>, // (next id, end of reserved block, exclusive)
    /// In a metadata quorum every block comes from the active controller (AllocateProducerIds),
    /// which records it in the metadata log: blocks reserved in a node's own file would give the
    /// same ids on every node, and again after the node's data dir is lost.
    controller_blocks: std::sync::atomic::AtomicBool,
}

const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
const PRODUCER_ID_FILE: &str = "fjord-producer-id-block";

/// Makes the next producer id handed out at least `next` (adopting a Kafka log dir, whose
/// producers' ids are below the next block its controller would have given).
pub fn seed_producer_ids(dir: &Path, next: i64) -> Result<(), MetadataError> {
    let path = dir.join(PRODUCER_ID_FILE);
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<i64>().map_err(|e| MetadataError::Corrupt { path: path.clone(), reason: e.to_string() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e.into()),
    };
    if next > current {
        write_atomically(&path, next.to_string().as_bytes())?;
    }
    Ok(())
}

impl ProducerIdManager {
    pub fn open(dir: &Path) -> Result<ProducerIdManager, MetadataError> {
        let path = dir.join(PRODUCER_ID_FILE);
        let end = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|e| MetadataError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        // Ids below the stored block end may have been handed out before a crash: start after it.
        Ok(ProducerIdManager { path, state: std::sync::Mutex::new((end, end)), controller_blocks: Default::default() })
    }

    /// From now on ids come only from blocks the controller hands out ([`Self::install_block`]).
    pub fn use_controller_blocks(&self) {
        self.controller_blocks.store(true, std::sync::atomic::Ordering::Release);
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (0, 0);
    }

    pub fn uses_controller_blocks(&self) -> bool {
        self.controller_blocks.load(std::sync::atomic::Ordering::Acquire)
    }

    /// With controller blocks: whether the current block is used up (ask the controller first).
    pub fn needs_block(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.uses_controller_blocks() && state.0 >= state.1
    }

    /// A block `first .. first + len` from the controller. One that arrives while ids remain
    /// (two requests asked at once) replaces nothing: its ids are never used, as Kafka drops them.
    pub fn install_block(&self, first: i64, len: i64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 >= state.1 {
            *state = (first, first + len);
        }
    }

    pub fn next_id(&self) -> Result<i64, MetadataError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.uses_controller_blocks() && state.0 >= state.1 {
            return Err(MetadataError::Io(std::io::Error::other("no producer id block from the controller yet")));
        }
        if state.0 >= state.1 {
            let end = state.1 + PRODUCER_ID_BLOCK_SIZE;
            write_atomically(&self.path, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_never_wait_for_a_topic_being_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetadataStore::open(dir.path()).unwrap());
        store.create_topic("old", 1, BTreeMap::new(), TopicSettings::default(), |_| Ok(())).unwrap();
        let (entered, wait_entered) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let s = store.clone();
        let creating = std::thread::spawn(move || {
            s.create_topic("new", 1, BTreeMap::new(), TopicSettings::default(), |_| {
                entered.send(()).unwrap();
                held.recv().unwrap();
                Ok(())
            })
        });
        wait_entered.recv().unwrap();
        // The creation is inside its log creation (directory fsyncs in real life): readers go on.
        let (answered, answer) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || answered.send((s.topic("old").is_some(), s.topic("new").is_some())).unwrap());
        let seen = answer.recv_timeout(std::time::Duration::from_secs(10)).expect("a reader blocked behind a creation");
        assert_eq!(seen, (true, false), "the new topic is not visible before it is persisted");
        release.send(()).unwrap();
        creating.join().unwrap().unwrap();
        assert!(store.topic("new").is_some());
    }

    #[test]
    fn topic_names_are_checked_like_kafka() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn topics_survive_reopen_with_ids_and_configs() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        configs.insert("weird key".to_string(), "a=b %c\n".to_string());
        let t = store.create_topic("t1", 3, configs, TopicSettings::default(), |_| Ok(())).unwrap();
        store.create_topic("t2", 1, BTreeMap::new(), TopicSettings::default(), |_| Ok(())).unwrap();
        store.delete_topic("t2").unwrap();
        let reopened = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(reopened.topics(), vec![t.clone()]);
        assert_eq!(reopened.topic_by_id(t.id), Some(t));
    }

    #[test]
    fn the_id_index_follows_creation_change_and_deletion_and_settings_are_shared_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let t = store.create_topic("t", 1, BTreeMap::new(), TopicSettings { min_insync_replicas: 2, ..TopicSettings::default() }, |_| Ok(())).unwrap();
        assert!(Arc::ptr_eq(&store.topic("t").unwrap(), &store.topic_by_id(t.id).unwrap()), "one shared entry");
        let grown = store.alter_topic("t", |old| Ok(TopicMeta { partitions: 4, ..old.clone() }), |_, _| Ok(())).unwrap();
        assert_eq!(store.topic_by_id(t.id).map(|m| m.partitions), Some(4));
        assert_eq!(grown.settings.min_insync_replicas, 2);
        store.refresh_settings(|_| TopicSettings { min_insync_replicas: 3, ..TopicSettings::default() });
        assert_eq!(store.topic_by_id(t.id).map(|m| m.settings.min_insync_replicas), Some(3));
        store.delete_topic("t").unwrap();
        assert!(store.topic_by_id(t.id).is_none());
        let reopened = MetadataStore::open(dir.path()).unwrap();
        assert!(reopened.topic_by_id(t.id).is_none() && reopened.topics().is_empty());
    }

    #[test]
    fn duplicate_and_colliding_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        store.create_topic("a.b", 1, BTreeMap::new(), TopicSettings::default(), |_| Ok(())).unwrap();
        assert!(matches!(store.create_topic("a.b", 1, BTreeMap::new(), TopicSettings::default(), |_| Ok(())), Err(MetadataError::TopicExists(_))));
        assert!(matches!(store.check_new_topic("a_b"), Err(MetadataError::InvalidTopic(_))));
    }

    #[test]
    fn failed_log_creation_leaves_no_topic() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let r = store.create_topic("t", 1, BTreeMap::new(), TopicSettings::default(), |_| Err(MetadataError::InvalidTopic("disk".into())));
        assert!(r.is_err());
        assert!(store.topic("t").is_none());
    }

    #[test]
    fn corrupt_topic_file_is_an_error_not_an_empty_cluster() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOPICS_FILE), "0\n2\nt x 1 0\n").unwrap();
        assert!(matches!(MetadataStore::open(dir.path()), Err(MetadataError::Corrupt { .. })));
    }

    #[test]
    fn producer_ids_are_not_reused_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProducerIdManager::open(dir.path()).unwrap();
        let a = m.next_id().unwrap();
        let b = m.next_id().unwrap();
        assert_eq!(b, a + 1);
        let m2 = ProducerIdManager::open(dir.path()).unwrap();
        assert!(m2.next_id().unwrap() > b);
    }

    #[test]
    fn cluster_and_directory_ids_are_stable_and_a_wiped_dir_gets_a_new_directory_id() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let first = load_or_create_meta_properties(&dirs, 1, None).unwrap();
        assert_eq!(first.cluster_id.len(), 22);
        assert_eq!(first.directory_ids.len(), 2);
        assert_ne!(first.directory_ids[0], first.directory_ids[1], "each dir its own id");
        assert_eq!(load_or_create_meta_properties(&dirs, 1, None).unwrap(), first);
        assert!(load_or_create_meta_properties(&dirs, 2, None).is_err(), "another node.id");
        // The first dir wiped: the same cluster id (from the other dir), a new directory id there.
        std::fs::remove_file(a.path().join("meta.properties")).unwrap();
        let after = load_or_create_meta_properties(&dirs, 1, Some("ignored".into())).unwrap();
        assert_eq!(after.cluster_id, first.cluster_id);
        assert_ne!(after.directory_ids[0], first.directory_ids[0]);
        assert_eq!(after.directory_ids[1], first.directory_ids[1]);
        // A file from before directory ids gets one, kept from then on.
        std::fs::write(b.path().join("meta.properties"), format!("version=1\nnode.id=1\ncluster.id={}\n", first.cluster_id)).unwrap();
        let added = load_or_create_meta_properties(&dirs, 1, None).unwrap();
        assert_eq!(load_or_create_meta_properties(&dirs, 1, None).unwrap(), added);
        // Dirs of two clusters are refused.
        std::fs::write(b.path().join("meta.properties"), "version=1\nnode.id=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\n").unwrap();
        assert!(load_or_create_meta_properties(&dirs, 1, None).is_err());
    }

    #[test]
    fn in_a_quorum_producer_ids_come_only_from_controller_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(m.next_id().unwrap(), 0);
        m.use_controller_blocks();
        // No block yet: no id, and the node's own file is not used.
        assert!(m.needs_block());
        assert!(m.next_id().is_err());
        m.install_block(5000, 2);
        assert!(!m.needs_block());
        // A second block while ids remain is dropped, never mixed in.
        m.install_block(7000, 1000);
        assert_eq!((m.next_id().unwrap(), m.next_id().unwrap()), (5000, 5001));
        assert!(m.needs_block());
        assert!(m.next_id().is_err());
        m.install_block(9000, 1000);
        assert_eq!(m.next_id().unwrap(), 9000);
    }
}
