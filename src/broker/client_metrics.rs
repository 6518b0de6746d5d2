//! KIP-714 client metrics subscriptions (the CLIENT_METRICS config resource): their configs
//! (`metrics`, `interval.ms`, `match`), validated as Kafka 4.0 validates them, kept durably in
//! the first log dir and listed by name. Telemetry requests are checked against them in `client_telemetry`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::metadata::{MetadataError, load_scoped_configs, store_scoped_configs};
use crate::config::ConfigType;

pub const METRICS: &str = "metrics";
pub const INTERVAL_MS: &str = "interval.ms";
pub const MATCH: &str = "match";

/// The push interval bounds Kafka enforces (100 ms to one hour).
pub const INTERVAL_MS_MIN: i64 = 100;
pub const INTERVAL_MS_MAX: i64 = 3_600_000;

/// The client selectors a `match` entry may name.
pub const SELECTORS: &[&str] = &["client_instance_id", "client_id", "client_software_name", "client_software_version", "client_source_address", "client_source_port"];

const FILE: &str = "fjord-client-metrics.checkpoint";

/// The type of a client metrics config (None: not one of them).
pub fn config_type(name: &str) -> Option<ConfigType> {
    match name {
        METRICS | MATCH => Some(ConfigType::List),
        INTERVAL_MS => Some(ConfigType::Int),
        _ => None,
    }
}

/// Why a subscription's configs were refused; the api layer turns these into INVALID_REQUEST and
/// INVALID_CONFIG as Kafka answers them (checked against Kafka 4.0).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientMetricsError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("storing the client metrics subscriptions: {0}")]
    Store(String),
}

/// A list-typed value as Kafka's config parser reads it: trimmed, an empty value is the empty
/// list, else every item between commas (empty ones too) with the spaces around it dropped.
pub fn parse_list(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(|s| s.trim().to_string()).collect()
}

/// `s` split at `sep` with trailing empty parts removed, as Java's `String.split` answers.
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].is_empty() && !s.is_empty() {
        // Only separators: Java answers an empty array.
        parts.clear();
    }
    parts
}

/// One `match` entry parsed: the selector and its regular expression. Refused unless it is
/// `selector=regex` with exactly one '=' (after Java's trailing-empty rule), a known selector and
/// a regex that compiles.
pub fn parse_selector(entry: &str) -> Result<(String, regex_automata::meta::Regex), ClientMetricsError> {
    let illegal = || ClientMetricsError::InvalidConfig(format!("Illegal client matching pattern: {entry}"));
    let parts = java_split(entry, '=');
    if parts.len() != 2 {
        return Err(illegal());
    }
    let selector = parts[0].trim();
    if !SELECTORS.contains(&selector) {
        return Err(illegal());
    }
    let regex = regex_automata::meta::Regex::new(parts[1].trim()).map_err(|_| illegal())?;
    Ok((selector.to_string(), regex))
}

/// Checks a subscription's whole set of configs (after an alteration), in Kafka's order: the
/// name, unknown keys, a value that is not a number, the interval's bounds, the match entries.
pub fn validate(name: &str, configs: &BTreeMap<String, String>) -> Result<(), ClientMetricsError> {
    if name.is_empty() {
        return Err(ClientMetricsError::InvalidRequest("Subscription name can't be empty".into()));
    }
    if let Some(k) = configs.keys().find(|k| config_type(k).is_none()) {
        return Err(ClientMetricsError::InvalidRequest(format!("Unknown client metrics configuration: {k}")));
    }
    if let Some(v) = configs.get(INTERVAL_MS) {
        let ms: i32 = v.trim().parse().map_err(|_| ClientMetricsError::InvalidConfig(format!("Invalid value {v} for configuration {INTERVAL_MS}: Not a number of type INT")))?;
        if !(INTERVAL_MS_MIN..=INTERVAL_MS_MAX).contains(&i64::from(ms)) {
            return Err(ClientMetricsError::InvalidRequest(format!(
                "Invalid value {ms} for {INTERVAL_MS}, interval must be between {INTERVAL_MS_MIN} and {INTERVAL_MS_MAX} (1 hour)"
            )));
        }
    }
    if let Some(v) = configs.get(MATCH) {
        for entry in parse_list(v) {
            parse_selector(&entry)?;
        }
    }
    Ok(())
}

/// The subscriptions by name, each with the configs set on it (a name with none is no
/// subscription), and the file they are kept in.
pub struct ClientMetricsSubscriptions {
    path: PathBuf,
    by_name: RwLock<BTreeMap<String, BTreeMap<String, String>>>,
    /// Serializes changes: each writes the whole file.
    write: Mutex<()>,
    /// Counts changes, so client instances matched before one are matched again.
    version: AtomicU64,
}

impl ClientMetricsSubscriptions {
    /// Loads the subscriptions kept in `dir` (none when the file was never written).
    pub fn load(dir: &Path) -> Result<Self, MetadataError> {
        let path = dir.join(FILE);
        let mut by_name: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (name, k, v) in load_scoped_configs(&path)?.unwrap_or_default() {
            by_name.entry(name).or_default().insert(k, v);
        }
        Ok(ClientMetricsSubscriptions { path, by_name: RwLock::new(by_name), write: Mutex::new(()), version: AtomicU64::new(0) })
    }

    /// The names of the subscriptions, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// The configs set on one subscription (empty for an unknown name, as Kafka describes it).
    pub fn configs(&self, name: &str) -> BTreeMap<String, String> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned().unwrap_or_default()
    }

    /// Every subscription with its configs.
    pub fn all(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many changes were made since loading.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// On a node of a metadata quorum: the subscriptions become those of the metadata log's
    /// CLIENT_METRICS config records (the log is their store, the file is not written).
    pub fn follow(&self, all: BTreeMap<String, BTreeMap<String, String>>) {
        let _serial = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut current = self.by_name.write().unwrap_or_else(|e| e.into_inner());
        if *current != all {
            *current = all;
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Makes `configs` the whole set of one subscription's configs after validating them; an empty
    /// set removes the subscription. Written to disk before it is visible.
    pub fn set(&self, name: &str, configs: BTreeMap<String, String>, validate_only: bool) -> Result<(), ClientMetricsError> {
        validate(name, &configs)?;
        if validate_only {
            return Ok(());
        }
        let _serial = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = self.by_name.read().unwrap_or_else(|e| e.into_inner()).clone();
        if configs.is_empty() {
            next.remove(name);
        } else {
            next.insert(name.to_string(), configs);
        }
        store_scoped_configs(&self.path, next.iter().flat_map(|(n, map)| map.iter().map(move |(k, v)| (n.as_str(), k, v))))
            .map_err(|e| ClientMetricsError::Store(e.to_string()))?;
        *self.by_name.write().unwrap_or_else(|e| e.into_inner()) = next;
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn lists_are_split_as_kafka_splits_them() {
        assert_eq!(parse_list(""), Vec::<String>::new());
        assert_eq!(parse_list("  "), Vec::<String>::new());
        assert_eq!(parse_list("a.b, c.d ,e"), vec!["a.b", "c.d", "e"]);
        assert_eq!(parse_list("a,"), vec!["a", ""]);
        assert_eq!(parse_list(",a"), vec!["", "a"]);
    }

    #[test]
    fn valid_subscriptions_pass() {
        let ok = configs(&[(METRICS, "org.apache.kafka.producer.,a.b"), (INTERVAL_MS, "1000"), (MATCH, "client_software_name=apache-kafka-java, client_id = x.* ")]);
        assert_eq!(validate("m1", &ok), Ok(()));
        assert_eq!(validate("m1", &BTreeMap::new()), Ok(()));
        assert_eq!(validate("m1", &configs(&[(INTERVAL_MS, "100")])), Ok(()));
        assert_eq!(validate("m1", &configs(&[(INTERVAL_MS, "3600000")])), Ok(()));
        // Java drops the trailing empty part: "client_id=a=" is client_id and "a".
        assert_eq!(validate("m1", &configs(&[(MATCH, "client_id=a=")])), Ok(()));
    }

    #[test]
    fn the_name_must_not_be_empty() {
        assert_eq!(validate("", &BTreeMap::new()), Err(ClientMetricsError::InvalidRequest("Subscription name can't be empty".into())));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert_eq!(validate("m", &configs(&[("foo", "1")])), Err(ClientMetricsError::InvalidRequest("Unknown client metrics configuration: foo".into())));
    }

    #[test]
    fn the_interval_must_be_a_number_within_bounds() {
        let bounds = |v: &str| ClientMetricsError::InvalidRequest(format!("Invalid value {v} for interval.ms, interval must be between 100 and 3600000 (1 hour)"));
        assert_eq!(validate("m", &configs(&[(INTERVAL_MS, "10")])), Err(bounds("10")));
        assert_eq!(validate("m", &configs(&[(INTERVAL_MS, "99")])), Err(bounds("99")));
        assert_eq!(validate("m", &configs(&[(INTERVAL_MS, "3600001")])), Err(bounds("3600001")));
        assert_eq!(validate("m", &configs(&[(INTERVAL_MS, "-5")])), Err(bounds("-5")));
        assert_eq!(
            validate("m", &configs(&[(INTERVAL_MS, "abc")])),
            Err(ClientMetricsError::InvalidConfig("Invalid value abc for configuration interval.ms: Not a number of type INT".into()))
        );
        // Beyond an int is not a number of type INT either.
        assert!(matches!(validate("m", &configs(&[(INTERVAL_MS, "4294967296")])), Err(ClientMetricsError::InvalidConfig(_))));
    }

    #[test]
    fn match_entries_need_a_known_selector_one_equals_sign_and_a_regex() {
        let illegal = |e: &str| Err(ClientMetricsError::InvalidConfig(format!("Illegal client matching pattern: {e}")));
        assert_eq!(validate("m", &configs(&[(MATCH, "foo=bar")])), illegal("foo=bar"));
        assert_eq!(validate("m", &configs(&[(MATCH, "client_id=[")])), illegal("client_id=["));
        assert_eq!(validate("m", &configs(&[(MATCH, "client_id=a=b")])), illegal("client_id=a=b"));
        assert_eq!(validate("m", &configs(&[(MATCH, "client_id=")])), illegal("client_id="));
        assert_eq!(validate("m", &configs(&[(MATCH, "client_id=a,bogus")])), illegal("bogus"));
        assert_eq!(validate("m", &configs(&[(MATCH, ",client_id=a")])), illegal(""));
        assert_eq!(validate("m", &configs(&[(MATCH, "client_id=a,")])), illegal(""));
        for s in SELECTORS {
            assert_eq!(validate("m", &configs(&[(MATCH, &format!("{s}=.*"))])), Ok(()), "{s}");
        }
    }

    #[test]
    fn selectors_match_by_regex() {
        let (name, re) = parse_selector(" client_software_version = 3\\.9.* ").unwrap();
        assert_eq!(name, "client_software_version");
        assert!(re.is_match("3.9.1"));
        assert!(!re.is_match("4.0.0"));
    }

    #[test]
    fn following_the_metadata_log_replaces_the_set_and_counts_only_changes() {
        let dir = std::env::temp_dir().join(format!("fjord-cm-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = ClientMetricsSubscriptions::load(&dir).unwrap();
        let log = BTreeMap::from([("prod".to_string(), configs(&[(METRICS, "org.apache.kafka.producer.")]))]);
        store.follow(log.clone());
        assert_eq!((store.names(), store.version()), (vec!["prod".to_string()], 1));
        store.follow(log);
        assert_eq!(store.version(), 1, "the same set is no change");
        store.follow(BTreeMap::new());
        assert_eq!((store.names().len(), store.version()), (0, 2));
        assert!(ClientMetricsSubscriptions::load(&dir).unwrap().names().is_empty(), "the log is the store, not the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn subscriptions_survive_a_reload_and_empty_ones_go() {
        let dir = std::env::temp_dir().join(format!("fjord-cm-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = ClientMetricsSubscriptions::load(&dir).unwrap();
        assert!(store.names().is_empty());
        store.set("m 1", configs(&[(METRICS, "a.b,c=d"), (INTERVAL_MS, "1000")]), false).unwrap();
        store.set("m2", configs(&[(INTERVAL_MS, "500")]), false).unwrap();
        store.set("m3", configs(&[(INTERVAL_MS, "500")]), true).unwrap();
        assert!(matches!(store.set("m4", configs(&[(INTERVAL_MS, "5")]), false), Err(ClientMetricsError::InvalidRequest(_))));
        let reloaded = ClientMetricsSubscriptions::load(&dir).unwrap();
        assert_eq!(reloaded.names(), vec!["m 1", "m2"]);
        assert_eq!(reloaded.configs("m 1"), configs(&[(METRICS, "a.b,c=d"), (INTERVAL_MS, "1000")]));
        reloaded.set("m2", BTreeMap::new(), false).unwrap();
        assert_eq!(ClientMetricsSubscriptions::load(&dir).unwrap().names(), vec!["m 1"]);
        assert!(reloaded.configs("nope").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
