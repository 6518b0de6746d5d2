//! Adopting a log dir Apache Kafka left behind: at the first start on such a dir (Kafka's
//! `__cluster_metadata-0` or its `partition.metadata` files there, no Fjord topic table yet) the
//! topic table is built from what Kafka recorded (names, topic ids, partition counts and topic
//! configs from the KRaft metadata log; ids from `partition.metadata` where that log is absent)
//! and written as Fjord's, once. Everything else Kafka wrote is already Fjord's format and is
//! loaded as usual: segments and indexes, checkpoints, leader epochs, `.txnindex`, producer
//! snapshots (`storage::kafka_dir`), the committed offsets in `__consumer_offsets`. Adoption
//! changes none of Kafka's files (serving the dir afterwards writes to it as Fjord does).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::metadata::{self, MetadataError, TopicMeta};
use crate::config::{Config, TopicSettings};
use crate::storage::kafka_dir::{self, CLUSTER_METADATA_DIR, KafkaPartitionDir};

/// Writes Fjord's topic table from a Kafka log dir when `config.log_dirs` hold one and no
/// table exists yet. Returns the number of topics adopted (0: nothing to adopt).
pub fn adopt_kafka_log_dirs(config: &Config) -> Result<usize, MetadataError> {
    let first_dir = &config.log_dirs[0];
    if metadata::topics_file_exists(first_dir) {
        return Ok(0);
    }
    let mut dirs = vec![];
    let mut metadata_dir = None;
    for log_dir in &config.log_dirs {
        let found = kafka_dir::partition_dirs(log_dir).map_err(MetadataError::Adopt)?;
        dirs.extend(found);
        let m = log_dir.join(CLUSTER_METADATA_DIR);
        if metadata_dir.is_none() && m.is_dir() {
            metadata_dir = Some(m);
        }
    }
    if metadata_dir.is_none() && dirs.iter().all(|d| d.topic_id.is_none()) {
        return Ok(0);
    }
    let mut next_producer_id = None;
    let recorded = match &metadata_dir {
        Some(m) => {
            let image = kafka_dir::read_cluster_metadata(m).map_err(|e| {
                MetadataError::Adopt(format!(
                    "Kafka's metadata log could not be read ({e}); to adopt the topics without their configs, move {} out of the log dir",
                    m.display()
                ))
            })?;
            tracing::info!(dir = %m.display(), records = image.records, "read Kafka's metadata log");
            next_producer_id = image.next_producer_id;
            image.topics()
        }
        None => vec![],
    };
    // A log dir Kafka only formatted (its metadata log holds the bootstrap snapshot alone) has
    // nothing to adopt.
    if recorded.is_empty() && dirs.is_empty() {
        return Ok(0);
    }
    let topics = plan(&recorded, &dirs)?;
    for (name, want) in [(super::OFFSETS_TOPIC, config.offsets_topic_num_partitions), ("__transaction_state", config.transaction_state_log_num_partitions)] {
        if let Some(t) = topics.iter().find(|t| t.name == name)
            && t.partitions != want
        {
            let key = if name == super::OFFSETS_TOPIC { "offsets.topic.num.partitions" } else { "transaction.state.log.num.partitions" };
            return Err(MetadataError::Adopt(format!(
                "Kafka's {name} has {} partitions but {key} is {want}: set {key}={} so groups and transactional ids hash to the partitions that hold them",
                t.partitions, t.partitions
            )));
        }
    }
    for t in &topics {
        tracing::info!(topic = %t.name, id = %metadata::uuid_to_kafka_string(t.id), partitions = t.partitions, configs = t.configs.len(), "adopted a topic from Kafka's log dir");
    }
    // New producers must not get an id Kafka gave out: their state is in the adopted logs.
    match next_producer_id {
        Some(next) => metadata::seed_producer_ids(first_dir, next)?,
        None => tracing::warn!("no producer id block in Kafka's metadata: new producer ids start at 0 and may meet state Kafka's producers left"),
    }
    let count = topics.len();
    // The topic table last: its presence marks the adoption done.
    metadata::write_topics(first_dir, topics)?;
    Ok(count)
}

/// The topic table for what Kafka recorded (`recorded`, from its metadata log; may be empty) and
/// the partition directories found. A topic the metadata log knows keeps its id, partition count
/// and configs; a directory whose `partition.metadata` names another id for it is an error (the
/// copy is not what the metadata describes). Topics only the directories show get the id their
/// `partition.metadata` files agree on (a fresh one, logged, when they have none) and no configs.
fn plan(recorded: &[kafka_dir::KafkaTopic], dirs: &[KafkaPartitionDir]) -> Result<Vec<TopicMeta>, MetadataError> {
    let mut topics: BTreeMap<String, TopicMeta> = BTreeMap::new();
    for t in recorded {
        metadata::validate_topic_name(&t.name)?;
        let partitions = t.partitions.last().map_or(0, |p| p + 1);
        if partitions as usize != t.partitions.len() {
            tracing::warn!(topic = %t.name, recorded = t.partitions.len(), partitions, "Kafka's metadata skips partition ids; the missing ones start empty");
        }
        topics.insert(t.name.clone(), TopicMeta { name: t.name.clone(), id: t.id, partitions, configs: t.configs.clone(), settings: TopicSettings::default() });
    }
    let mut from_dirs: BTreeMap<&str, (Option<Uuid>, i32)> = BTreeMap::new();
    for d in dirs {
        if let Some(t) = topics.get(&d.topic) {
            if let Some(id) = d.topic_id
                && id != t.id
            {
                return Err(MetadataError::Adopt(format!(
                    "{} names topic id {} but Kafka's metadata gives {} the id {}",
                    d.path.join(kafka_dir::PARTITION_METADATA_FILE).display(),
                    metadata::uuid_to_kafka_string(id),
                    d.topic,
                    metadata::uuid_to_kafka_string(t.id)
                )));
            }
            if d.partition >= t.partitions {
                tracing::warn!(dir = %d.path.display(), partitions = t.partitions, "partition directory beyond the topic's partition count in Kafka's metadata; left untouched");
            }
            continue;
        }
        let e = from_dirs.entry(d.topic.as_str()).or_insert((None, 0));
        match (e.0, d.topic_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(MetadataError::Adopt(format!(
                    "the partitions of {} name different topic ids ({} and {})",
                    d.topic,
                    metadata::uuid_to_kafka_string(a),
                    metadata::uuid_to_kafka_string(b)
                )));
            }
            (None, id) => e.0 = id,
            _ => {}
        }
        e.1 = e.1.max(d.partition + 1);
    }
    for (name, (id, partitions)) in from_dirs {
        metadata::validate_topic_name(name)?;
        let id = id.unwrap_or_else(|| {
            tracing::warn!(topic = name, "no partition.metadata: the topic gets a new id");
            Uuid::new_v4()
        });
        tracing::warn!(topic = name, partitions, "topic not in Kafka's metadata log: its partition count comes from its directories and its configs are the broker defaults");
        topics.insert(name.to_string(), TopicMeta { name: name.to_string(), id, partitions, configs: BTreeMap::new(), settings: TopicSettings::default() });
    }
    let mut ids = std::collections::HashSet::new();
    for t in topics.values() {
        if !ids.insert(t.id) {
            return Err(MetadataError::Adopt(format!("two topics have the id {}", metadata::uuid_to_kafka_string(t.id))));
        }
    }
    Ok(topics.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn dir(topic: &str, partition: i32, id: Option<u128>) -> KafkaPartitionDir {
        KafkaPartitionDir { topic: topic.into(), partition, topic_id: id.map(Uuid::from_u128), path: PathBuf::from(format!("{topic}-{partition}")) }
    }

    fn recorded(name: &str, id: u128, partitions: &[i32], configs: &[(&str, &str)]) -> kafka_dir::KafkaTopic {
        kafka_dir::KafkaTopic {
            name: name.into(),
            id: Uuid::from_u128(id),
            partitions: partitions.iter().copied().collect::<BTreeSet<_>>(),
            configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn metadata_topics_keep_ids_counts_and_configs_and_directories_fill_in_the_rest() {
        let topics = plan(
            &[recorded("keyed", 1, &[0, 1], &[("cleanup.policy", "compact")])],
            &[dir("keyed", 0, Some(1)), dir("keyed", 1, None), dir("orphan", 0, Some(5)), dir("orphan", 3, Some(5))],
        )
        .expect("plan");
        assert_eq!(topics.len(), 2);
        assert_eq!((topics[0].name.as_str(), topics[0].id, topics[0].partitions), ("keyed", Uuid::from_u128(1), 2));
        assert_eq!(topics[0].configs.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert_eq!((topics[1].name.as_str(), topics[1].id, topics[1].partitions), ("orphan", Uuid::from_u128(5), 4));
        assert!(topics[1].configs.is_empty());
    }

    fn config_for(dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
        let mut props = BTreeMap::from([("log.dirs".to_string(), dir.display().to_string())]);
        props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_properties(props).expect("config")
    }

    /// A log dir as Kafka leaves it: a metadata log with topic `t` (2 partitions, compacted) and
    /// the offsets topic, the producer-id block, and `t`'s partition directories.
    fn kafka_dir(offsets_partitions: i32) -> tempfile::TempDir {
        use crate::storage::kafka_dir::test_records::*;
        let dir = tempfile::tempdir().expect("tempdir");
        let (t, o) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let mut records = vec![topic_record("t", t), partition_record(0, t), partition_record(1, t), config_record(2, "t", "cleanup.policy", Some("compact"))];
        records.push(topic_record(super::super::OFFSETS_TOPIC, o));
        records.extend((0..offsets_partitions).map(|p| partition_record(p, o)));
        records.push(producer_ids_record(3000));
        let meta = dir.path().join(CLUSTER_METADATA_DIR);
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(meta.join("00000000000000000000.log"), batch(0, &records, Compression::None)).expect("write");
        for p in 0..2 {
            let pd = dir.path().join(format!("t-{p}"));
            std::fs::create_dir_all(&pd).expect("mkdir");
            std::fs::write(pd.join(kafka_dir::PARTITION_METADATA_FILE), format!("version: 0\ntopic_id: {}\n", metadata::uuid_to_kafka_string(t))).expect("write");
        }
        dir
    }

    #[test]
    fn a_kafka_log_dir_is_adopted_once_with_ids_configs_and_producer_ids() {
        let dir = kafka_dir(50);
        let config = config_for(dir.path(), &[]);
        assert_eq!(adopt_kafka_log_dirs(&config).expect("adopt"), 2);
        let store = metadata::MetadataStore::open(dir.path()).expect("open");
        let t = store.topic("t").expect("t adopted");
        assert_eq!((t.id, t.partitions), (Uuid::from_u128(7), 2));
        assert_eq!(t.configs.get("cleanup.policy").map(String::as_str), Some("compact"));
        assert_eq!(store.topic(super::super::OFFSETS_TOPIC).map(|t| t.partitions), Some(50));
        let ids = metadata::ProducerIdManager::open(dir.path()).expect("ids");
        assert_eq!(ids.next_id().expect("id"), 3000, "new producer ids start past Kafka's block");
        assert_eq!(adopt_kafka_log_dirs(&config).expect("again"), 0, "adopted once");
    }

    #[test]
    fn an_offsets_topic_of_another_size_stops_the_start_naming_the_setting() {
        let dir = kafka_dir(3);
        let err = adopt_kafka_log_dirs(&config_for(dir.path(), &[])).unwrap_err().to_string();
        assert!(err.contains("offsets.topic.num.partitions=3"), "{err}");
        assert!(!metadata::topics_file_exists(dir.path()), "nothing adopted");
        assert_eq!(adopt_kafka_log_dirs(&config_for(dir.path(), &[("offsets.topic.num.partitions", "3")])).expect("adopt"), 2);
    }

    #[test]
    fn a_corrupt_metadata_log_stops_the_start_with_the_way_out() {
        let dir = kafka_dir(50);
        let log = dir.path().join(CLUSTER_METADATA_DIR).join("00000000000000000000.log");
        let mut bytes = std::fs::read(&log).expect("read");
        // A byte inside a record of a batch in the middle (the batches are 116 bytes long).
        let at = bytes.len() / 2 + 70;
        bytes[at] ^= 0xff;
        std::fs::write(&log, bytes).expect("write");
        let err = adopt_kafka_log_dirs(&config_for(dir.path(), &[])).unwrap_err().to_string();
        assert!(err.contains("CRC") && err.contains("move"), "{err}");
        // Without the metadata log the topics come from their directories, without configs.
        std::fs::remove_dir_all(dir.path().join(CLUSTER_METADATA_DIR)).expect("rm");
        assert_eq!(adopt_kafka_log_dirs(&config_for(dir.path(), &[])).expect("adopt"), 1);
        let t = metadata::MetadataStore::open(dir.path()).expect("open").topic("t").expect("t");
        assert_eq!((t.id, t.partitions, t.configs.len()), (Uuid::from_u128(7), 2, 0));
    }

    #[test]
    fn a_directory_that_contradicts_the_metadata_is_refused() {
        let err = plan(&[recorded("t", 1, &[0], &[])], &[dir("t", 0, Some(2))]).unwrap_err();
        assert!(err.to_string().contains("names topic id"), "{err}");
        let err = plan(&[], &[dir("u", 0, Some(3)), dir("u", 1, Some(4))]).unwrap_err();
        assert!(err.to_string().contains("different topic ids"), "{err}");
        let err = plan(&[recorded("a", 1, &[0], &[]), recorded("b", 1, &[0], &[])], &[]).unwrap_err();
        assert!(err.to_string().contains("two topics"), "{err}");
        assert!(plan(&[recorded("bad name", 1, &[0], &[])], &[]).is_err());
    }
}
