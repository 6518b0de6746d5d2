//! KIP-714 client telemetry state: one entry per client instance (its matched subscription, push
//! interval and the times of its last GetTelemetrySubscriptions and PushTelemetry), the checks
//! Kafka 4.0's ClientMetricsManager makes on both requests, in its order, and the bound on how
//! many instances are kept. It neither decodes requests nor reads pushed metrics.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use regex_automata::meta::Regex;
use uuid::Uuid;

use super::client_metrics::{self, ClientMetricsSubscriptions, INTERVAL_MS, MATCH, METRICS};

/// The push interval of a client no subscription sets one for: Kafka's five minutes.
pub const DEFAULT_INTERVAL_MS: i32 = 5 * 60 * 1000;
/// A subscription naming this metric asks for all of them.
pub const ALL_METRICS: &str = "*";
/// Compression types a client may push with, in Kafka's order of preference (zstd, lz4, gzip,
/// snappy); the codecs of record batches decode them.
pub const ACCEPTED_COMPRESSION_TYPES: [i8; 4] = [4, 3, 1, 2];
/// An instance without requests for this long (or three push intervals if longer) is forgotten,
/// as Kafka's cache expires it.
pub const INSTANCE_EXPIRY_MS: u64 = 60_000;

/// What the broker knows of the client behind a request; the `match` selectors test these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAttributes {
    pub client_id: String,
    /// From the client's ApiVersions (v3+); None when it sent none.
    pub software_name: Option<String>,
    pub software_version: Option<String>,
    pub source_address: String,
    pub source_port: u16,
    /// The connection the request came on (the broker's number for it, not a selector): an
    /// instance is forgotten when the connection that made it closes, as Kafka's is.
    pub connection_id: u64,
}

impl ClientAttributes {
    fn selector(&self, instance_id: Uuid, name: &str) -> Option<String> {
        match name {
            "client_instance_id" => Some(java_uuid(instance_id)),
            "client_id" => Some(self.client_id.clone()),
            "client_software_name" => self.software_name.clone(),
            "client_software_version" => self.software_version.clone(),
            "client_source_address" => Some(self.source_address.clone()),
            "client_source_port" => Some(self.source_port.to_string()),
            _ => None,
        }
    }
}

/// A Kafka Uuid as Java prints it: URL-safe base64 without padding.
pub fn java_uuid(id: Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Why a telemetry request was refused; each is one Kafka error code (see `api::error_code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Throttled(String),
    #[error("{0}")]
    UnknownSubscriptionId(String),
    #[error("{0}")]
    UnsupportedCompressionType(String),
    #[error("{0}")]
    TooLarge(String),
}

/// The answer to GetTelemetrySubscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    pub push_interval_ms: i32,
    pub metrics: Vec<String>,
}

/// One subscription as matching uses it.
struct Matcher {
    metrics: Vec<String>,
    interval_ms: i32,
    /// Selector -> whole-value regex; a later entry for the same selector replaces an earlier
    /// one, as Kafka's map does.
    selectors: HashMap<String, Regex>,
}

impl Matcher {
    /// A stored subscription's configs (already validated when they were set).
    fn new(configs: &std::collections::BTreeMap<String, String>) -> Matcher {
        let metrics = configs.get(METRICS).map(|v| client_metrics::parse_list(v)).unwrap_or_default();
        let interval_ms = configs.get(INTERVAL_MS).and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_INTERVAL_MS);
        let mut selectors = HashMap::new();
        for entry in configs.get(MATCH).map(|v| client_metrics::parse_list(v)).unwrap_or_default() {
            if let Ok((name, _)) = client_metrics::parse_selector(&entry) {
                // Java's Matcher.matches(): the whole value, not a part of it.
                let pattern = entry.split_once('=').map(|(_, p)| p.trim()).unwrap_or_default();
                if let Ok(whole) = Regex::new(&format!(r"\A(?:{pattern})\z")) {
                    selectors.insert(name, whole);
                }
            }
        }
        Matcher { metrics, interval_ms, selectors }
    }

    fn matches(&self, instance_id: Uuid, client: &ClientAttributes) -> bool {
        self.selectors.iter().all(|(name, re)| client.selector(instance_id, name).is_some_and(|v| re.is_match(&v)))
    }
}

/// The metrics and push interval of every subscription `client` matches: the union of their
/// metrics (only `*` when one asks for all) and the shortest interval.
fn evaluate(subscriptions: &[Matcher], instance_id: Uuid, client: &ClientAttributes) -> (BTreeSet<String>, i32) {
    let mut metrics = BTreeSet::new();
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    for s in subscriptions.iter().filter(|s| s.matches(instance_id, client)) {
        metrics.extend(s.metrics.iter().cloned());
        interval_ms = interval_ms.min(s.interval_ms);
    }
    if metrics.contains(ALL_METRICS) {
        metrics = BTreeSet::from([ALL_METRICS.to_string()]);
    }
    (metrics, interval_ms)
}

/// Kafka's subscription id: CRC32C of the metric list and interval as Java prints them, xor the
/// instance id's hash. Clients only compare it with what they were given.
fn subscription_id(metrics: &BTreeSet<String>, interval_ms: i32, instance_id: Uuid) -> i32 {
    let list: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let text = format!("[{}]{interval_ms}", list.join(", "));
    let (hi, lo) = instance_id.as_u64_pair();
    let xor = hi ^ lo;
    let hash = ((xor >> 32) as i32) ^ (xor as i32);
    (crc32c::crc32c(text.as_bytes()) as i32) ^ hash
}

/// Kafka's reserved ids (zero, and the metadata topic's 0...01) are never a client instance.
fn is_reserved(id: Uuid) -> bool {
    id.as_u128() <= 1
}

struct Instance {
    client: ClientAttributes,
    subscription_version: u64,
    subscription_id: i32,
    metrics: BTreeSet<String>,
    push_interval_ms: i32,
    last_get_ms: Option<u64>,
    last_push_ms: Option<u64>,
    terminating: bool,
    last_seen_ms: u64,
}

impl Instance {
    fn expiry_ms(&self) -> u64 {
        INSTANCE_EXPIRY_MS.max(3 * self.push_interval_ms.max(0) as u64)
    }

    /// A Get is served once a push interval has passed since the last Get or push.
    fn try_get(&mut self, now_ms: u64) -> bool {
        let last = self.last_get_ms.max(self.last_push_ms);
        let ok = last.is_none_or(|l| now_ms.saturating_sub(l) >= self.push_interval_ms as u64);
        if ok {
            self.last_get_ms = Some(now_ms);
        }
        ok
    }

    /// A push is accepted right after a Get (clients jitter their interval) or once a push
    /// interval has passed since the last push.
    fn try_push(&mut self, now_ms: u64) -> bool {
        let ok = self.last_get_ms > self.last_push_ms || self.last_push_ms.is_none_or(|l| now_ms.saturating_sub(l) >= self.push_interval_ms as u64);
        if ok {
            self.last_push_ms = Some(now_ms);
        }
        ok
    }
}

/// The telemetry state of the client instances this broker has seen.
pub struct ClientTelemetry {
    /// `telemetry.max.bytes`.
    pub max_bytes: i32,
    instances_max: usize,
    origin: Instant,
    table: Mutex<Table>,
}

/// The instances, and which connection made each one.
#[derive(Default)]
struct Table {
    instances: HashMap<Uuid, Instance>,
    /// Only connections that made an instance: at most one entry per open connection.
    made_on: HashMap<u64, Uuid>,
}

/// A push that passed the checks: the metrics to hand to the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedPush {
    pub client: ClientAttributes,
    pub compression_type: i8,
    /// How long the instance stays known without a request: its pushed values as long.
    pub keep_ms: u64,
}

impl ClientTelemetry {
    pub fn new(max_bytes: i32, instances_max: usize) -> ClientTelemetry {
        ClientTelemetry { max_bytes, instances_max: instances_max.max(1), origin: Instant::now(), table: Mutex::new(Table::default()) }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// GetTelemetrySubscriptions at the current time.
    pub fn get(&self, subscriptions: &ClientMetricsSubscriptions, instance_id: Uuid, client: &ClientAttributes) -> Result<Subscription, TelemetryError> {
        self.get_at(subscriptions, instance_id, client, self.now_ms())
    }

    /// PushTelemetry at the current time.
    pub fn push(
        &self,
        subscriptions: &ClientMetricsSubscriptions,
        push: &PushRequest,
        client: &ClientAttributes,
    ) -> Result<AcceptedPush, TelemetryError> {
        self.push_at(subscriptions, push, client, self.now_ms())
    }

    /// Kafka's processGetTelemetrySubscriptionRequest: a zero id gets a new one; the instance
    /// is found or made (re-evaluated when the subscriptions changed); a Get within the push
    /// interval is throttled.
    pub fn get_at(&self, subscriptions: &ClientMetricsSubscriptions, instance_id: Uuid, client: &ClientAttributes, now_ms: u64) -> Result<Subscription, TelemetryError> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let id = if instance_id.is_nil() { new_instance_id(&table.instances) } else { instance_id };
        let inst = self.instance(&mut table, subscriptions, id, client, now_ms);
        if !inst.try_get(now_ms) {
            return Err(TelemetryError::Throttled(format!("Request from the client [{}] arrived before the next push interval time", java_uuid(instance_id))));
        }
        Ok(Subscription { client_instance_id: id, subscription_id: inst.subscription_id, push_interval_ms: inst.push_interval_ms, metrics: inst.metrics.iter().cloned().collect() })
    }

    /// Kafka's processPushTelemetryRequest checks, in its order: a reserved id, a push after the
    /// client said it was terminating, too early (unless terminating), a stale subscription id,
    /// an unknown compression type, a payload above `telemetry.max.bytes`. The terminating flag
    /// is remembered whatever the outcome.
    pub fn push_at(&self, subscriptions: &ClientMetricsSubscriptions, push: &PushRequest, client: &ClientAttributes, now_ms: u64) -> Result<AcceptedPush, TelemetryError> {
        let id = push.client_instance_id;
        if is_reserved(id) {
            return Err(TelemetryError::InvalidRequest(format!("Invalid request from the client [{}], invalid client instance id", java_uuid(id))));
        }
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let inst = self.instance(&mut table, subscriptions, id, client, now_ms);
        let outcome = check_push(inst, push, self.max_bytes, now_ms);
        inst.terminating = push.terminating;
        outcome.map(|()| AcceptedPush { client: inst.client.clone(), compression_type: push.compression_type, keep_ms: inst.expiry_ms() })
    }

    /// The instance `id`, made (or re-made after a subscription change) from the current
    /// subscriptions; its expiry restarts. A new instance belongs to the client's connection.
    fn instance<'a>(
        &self,
        table: &'a mut Table,
        subscriptions: &ClientMetricsSubscriptions,
        id: Uuid,
        client: &ClientAttributes,
        now_ms: u64,
    ) -> &'a mut Instance {
        let version = subscriptions.version();
        let instances = &mut table.instances;
        let fresh = instances.get(&id).is_none_or(|i| i.subscription_version < version);
        if fresh {
            // A re-made instance keeps what Kafka keeps: the client it was first seen as.
            let known = instances.remove(&id).map(|i| i.client);
            if known.is_none() {
                self.make_room(instances, now_ms);
                // Kafka keeps the last instance a connection made (an earlier one just expires).
                table.made_on.insert(client.connection_id, id);
            }
            let client = known.unwrap_or_else(|| client.clone());
            let matchers: Vec<Matcher> = subscriptions.all().values().map(Matcher::new).collect();
            let (metrics, push_interval_ms) = evaluate(&matchers, id, &client);
            let subscription_id = subscription_id(&metrics, push_interval_ms, id);
            let inst = Instance {
                client,
                subscription_version: version,
                subscription_id,
                metrics,
                push_interval_ms,
                last_get_ms: None,
                last_push_ms: None,
                terminating: false,
                last_seen_ms: now_ms,
            };
            instances.insert(id, inst);
        }
        let inst = instances.get_mut(&id).expect("inserted above or present");
        inst.last_seen_ms = now_ms;
        inst
    }

    /// Forgets expired instances, then the least recently seen while the table is full.
    fn make_room(&self, instances: &mut HashMap<Uuid, Instance>, now_ms: u64) {
        if instances.len() < self.instances_max {
            return;
        }
        instances.retain(|_, i| now_ms.saturating_sub(i.last_seen_ms) < i.expiry_ms());
        while instances.len() >= self.instances_max {
            let Some(oldest) = instances.iter().min_by_key(|(_, i)| i.last_seen_ms).map(|(id, _)| *id) else { break };
            instances.remove(&oldest);
        }
    }

    /// Connection `connection_id` closed: the instance it made is forgotten (Kafka's
    /// ClientConnectionDisconnectListener), returned so its pushed metrics go too.
    pub fn disconnected(&self, connection_id: u64) -> Option<Uuid> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let id = table.made_on.remove(&connection_id)?;
        table.instances.remove(&id).map(|_| id)
    }

    /// Instances seen within their expiry, for the receiver: id and client.
    pub fn live(&self) -> Vec<(Uuid, ClientAttributes)> {
        let now_ms = self.now_ms();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let instances = &mut table.instances;
        instances.retain(|_, i| now_ms.saturating_sub(i.last_seen_ms) < i.expiry_ms());
        instances.iter().map(|(id, i)| (*id, i.client.clone())).collect()
    }

    /// How many instances are kept.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parts of a PushTelemetry request the checks read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    pub terminating: bool,
    pub compression_type: i8,
    /// The length of the pushed metrics, in bytes.
    pub metrics_len: usize,
}

fn check_push(inst: &mut Instance, push: &PushRequest, max_bytes: i32, now_ms: u64) -> Result<(), TelemetryError> {
    let id = java_uuid(push.client_instance_id);
    if inst.terminating {
        return Err(TelemetryError::InvalidRequest(format!(
            "Client [{id}] sent the previous request with state terminating to TRUE, can not accept any requests after that"
        )));
    }
    if !inst.try_push(now_ms) && !push.terminating {
        return Err(TelemetryError::Throttled(format!("Request from the client [{id}] arrived before the next push interval time")));
    }
    if push.subscription_id != inst.subscription_id {
        return Err(TelemetryError::UnknownSubscriptionId(format!("Unknown client subscription id for the client [{id}]")));
    }
    // Kafka accepts any compression type it knows: none, gzip, snappy, lz4, zstd.
    if !(0..=4).contains(&push.compression_type) {
        return Err(TelemetryError::UnsupportedCompressionType(format!(
            "Unknown compression type [{}] is received in telemetry request from [{id}]",
            push.compression_type
        )));
    }
    if push.metrics_len > max_bytes.max(0) as usize {
        return Err(TelemetryError::TooLarge(format!("Telemetry request from [{id}] is larger than the maximum allowed size [{max_bytes}]")));
    }
    Ok(())
}

/// A random instance id that is not reserved, not in use and whose Java form does not start
/// with '-' (Kafka's Uuid.randomUuid rule, so command-line tools can take it).
fn new_instance_id(instances: &HashMap<Uuid, Instance>) -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if !is_reserved(id) && !java_uuid(id).starts_with('-') && !instances.contains_key(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn store() -> (ClientMetricsSubscriptions, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fjord-ct-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        (ClientMetricsSubscriptions::load(&dir).unwrap(), dir)
    }

    fn set(s: &ClientMetricsSubscriptions, name: &str, pairs: &[(&str, &str)]) {
        let configs: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        s.set(name, configs, false).unwrap();
    }

    fn client(id: &str) -> ClientAttributes {
        ClientAttributes {
            client_id: id.into(),
            software_name: Some("apache-kafka-java".into()),
            software_version: Some("4.0.0".into()),
            source_address: "127.0.0.1".into(),
            source_port: 50000,
            connection_id: 1,
        }
    }

    fn push(id: Uuid, sub: i32) -> PushRequest {
        PushRequest { client_instance_id: id, subscription_id: sub, terminating: false, compression_type: 0, metrics_len: 10 }
    }

    #[test]
    fn a_zero_id_gets_a_new_instance_with_kafkas_defaults() {
        let (s, dir) = store();
        let t = ClientTelemetry::new(1 << 20, 16);
        let got = t.get_at(&s, Uuid::nil(), &client("c"), 0).unwrap();
        assert!(!got.client_instance_id.is_nil());
        assert_eq!(got.push_interval_ms, DEFAULT_INTERVAL_MS);
        assert!(got.metrics.is_empty());
        assert_eq!(got.subscription_id, subscription_id(&BTreeSet::new(), DEFAULT_INTERVAL_MS, got.client_instance_id));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn selectors_match_whole_values_and_all_must_match() {
        let (s, dir) = store();
        set(&s, "prod", &[(METRICS, "org.apache.kafka.producer."), (INTERVAL_MS, "1000"), (MATCH, "client_id=pro.*,client_software_name=apache-kafka-java")]);
        set(&s, "part", &[(METRICS, "a.b"), (INTERVAL_MS, "2000"), (MATCH, "client_id=pro")]);
        set(&s, "port", &[(METRICS, "c.d"), (INTERVAL_MS, "500"), (MATCH, "client_source_port=5000")]);
        set(&s, "everyone", &[(METRICS, "e.f"), (INTERVAL_MS, "4000")]);
        let t = ClientTelemetry::new(1 << 20, 16);
        let got = t.get_at(&s, Uuid::nil(), &client("producer-1"), 0).unwrap();
        assert_eq!(got.metrics, vec!["e.f", "org.apache.kafka.producer."]);
        assert_eq!(got.push_interval_ms, 1000);
        let mut other = client("pro");
        other.software_name = None;
        let got = t.get_at(&s, Uuid::nil(), &other, 0).unwrap();
        assert_eq!(got.metrics, vec!["a.b", "e.f"]);
        assert_eq!(got.push_interval_ms, 2000);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_instance_id_selector_uses_the_java_form() {
        let (s, dir) = store();
        let id = Uuid::new_v4();
        set(&s, "one", &[(METRICS, "*"), (MATCH, &format!("client_instance_id={}", java_uuid(id)))]);
        set(&s, "more", &[(METRICS, "x.y")]);
        let t = ClientTelemetry::new(1 << 20, 16);
        assert_eq!(t.get_at(&s, id, &client("c"), 0).unwrap().metrics, vec!["*"]);
        assert_eq!(t.get_at(&s, Uuid::new_v4(), &client("c"), 0).unwrap().metrics, vec!["x.y"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn gets_and_pushes_within_the_interval_are_throttled() {
        let (s, dir) = store();
        set(&s, "all", &[(METRICS, "*"), (INTERVAL_MS, "1000")]);
        let t = ClientTelemetry::new(1 << 20, 16);
        let got = t.get_at(&s, Uuid::nil(), &client("c"), 10_000).unwrap();
        let id = got.client_instance_id;
        assert!(matches!(t.get_at(&s, id, &client("c"), 10_500), Err(TelemetryError::Throttled(_))));
        // Right after a Get, a push is accepted whenever it comes.
        assert!(t.push_at(&s, &push(id, got.subscription_id), &client("c"), 10_100).is_ok());
        assert!(matches!(t.push_at(&s, &push(id, got.subscription_id), &client("c"), 10_900), Err(TelemetryError::Throttled(_))));
        assert!(t.push_at(&s, &push(id, got.subscription_id), &client("c"), 11_100).is_ok());
        // The Get's interval counts from the last push too.
        assert!(matches!(t.get_at(&s, id, &client("c"), 11_200), Err(TelemetryError::Throttled(_))));
        assert!(t.get_at(&s, id, &client("c"), 12_100).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn push_errors_come_in_kafkas_order() {
        let (s, dir) = store();
        let t = ClientTelemetry::new(100, 16);
        let c = client("c");
        assert!(matches!(t.push_at(&s, &push(Uuid::nil(), 0), &c, 0), Err(TelemetryError::InvalidRequest(_))));
        assert!(matches!(t.push_at(&s, &push(Uuid::from_u128(1), 0), &c, 0), Err(TelemetryError::InvalidRequest(_))));
        let got = t.get_at(&s, Uuid::nil(), &c, 0).unwrap();
        let id = got.client_instance_id;
        // The stale id is refused after the interval check, which it used up.
        assert!(matches!(t.push_at(&s, &push(id, got.subscription_id ^ 1), &c, 1), Err(TelemetryError::UnknownSubscriptionId(_))));
        assert!(matches!(t.push_at(&s, &push(id, got.subscription_id), &c, 2), Err(TelemetryError::Throttled(_))));
        let mut later = 1 + DEFAULT_INTERVAL_MS as u64;
        let bad_codec = PushRequest { compression_type: 5, ..push(id, got.subscription_id) };
        assert!(matches!(t.push_at(&s, &bad_codec, &c, later), Err(TelemetryError::UnsupportedCompressionType(_))));
        later += DEFAULT_INTERVAL_MS as u64;
        let large = PushRequest { metrics_len: 101, ..push(id, got.subscription_id) };
        assert!(matches!(t.push_at(&s, &large, &c, later), Err(TelemetryError::TooLarge(_))));
        later += DEFAULT_INTERVAL_MS as u64;
        let at_limit = PushRequest { metrics_len: 100, compression_type: 4, ..push(id, got.subscription_id) };
        assert_eq!(t.push_at(&s, &at_limit, &c, later).unwrap().compression_type, 4);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_terminating_push_skips_the_interval_and_ends_the_instance() {
        let (s, dir) = store();
        let t = ClientTelemetry::new(1 << 20, 16);
        let c = client("c");
        let got = t.get_at(&s, Uuid::nil(), &c, 0).unwrap();
        let id = got.client_instance_id;
        assert!(t.push_at(&s, &push(id, got.subscription_id), &c, 1).is_ok());
        let last = PushRequest { terminating: true, ..push(id, got.subscription_id) };
        assert!(t.push_at(&s, &last, &c, 2).is_ok());
        assert!(matches!(t.push_at(&s, &push(id, got.subscription_id), &c, 10_000_000), Err(TelemetryError::InvalidRequest(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_subscription_change_reevaluates_and_lets_the_client_get_at_once() {
        let (s, dir) = store();
        let t = ClientTelemetry::new(1 << 20, 16);
        let c = client("c");
        let first = t.get_at(&s, Uuid::nil(), &c, 0).unwrap();
        let id = first.client_instance_id;
        set(&s, "new", &[(METRICS, "org.apache.kafka."), (INTERVAL_MS, "200")]);
        let second = t.get_at(&s, id, &c, 1).unwrap();
        assert_eq!(second.metrics, vec!["org.apache.kafka."]);
        assert_eq!(second.push_interval_ms, 200);
        assert_ne!(second.subscription_id, first.subscription_id);
        // The old id is now stale.
        assert!(matches!(t.push_at(&s, &push(id, first.subscription_id), &c, 2), Err(TelemetryError::UnknownSubscriptionId(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_instance_is_forgotten_when_the_connection_that_made_it_closes() {
        let (s, dir) = store();
        let t = ClientTelemetry::new(1 << 20, 16);
        let (on_1, on_2) = (client("c"), ClientAttributes { connection_id: 2, ..client("d") });
        let mine = t.get_at(&s, Uuid::nil(), &on_1, 0).unwrap().client_instance_id;
        let other = t.get_at(&s, Uuid::nil(), &on_2, 0).unwrap().client_instance_id;
        // A push of `mine` on connection 2 does not move it there.
        let sub = t.get_at(&s, mine, &on_1, 400_000).unwrap().subscription_id;
        assert!(t.push_at(&s, &push(mine, sub), &on_2, 400_001).is_ok());
        assert_eq!(t.disconnected(3), None, "connection 3 made nothing");
        assert_eq!(t.disconnected(1), Some(mine));
        assert_eq!(t.disconnected(1), None, "once");
        let left: Vec<Uuid> = t.live().into_iter().map(|(id, _)| id).collect();
        assert_eq!(left, vec![other]);
        assert_eq!(t.disconnected(2), Some(other));
        assert!(t.is_empty());
        // The client comes back with its id on a new connection: a new instance there, as Kafka
        // makes one for an id it does not know.
        let on_3 = ClientAttributes { connection_id: 3, ..client("c") };
        assert_eq!(t.get_at(&s, mine, &on_3, 500_000).unwrap().client_instance_id, mine);
        assert_eq!(t.disconnected(3), Some(mine));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn instances_are_bounded_and_expire() {
        let (s, dir) = store();
        let t = ClientTelemetry::new(1 << 20, 3);
        let c = client("c");
        let ids: Vec<Uuid> = (0..3).map(|n| t.get_at(&s, Uuid::nil(), &c, n).unwrap().client_instance_id).collect();
        assert_eq!(t.len(), 3);
        // Full: the least recently seen (ids[0]) goes.
        let fourth = t.get_at(&s, Uuid::nil(), &c, 10).unwrap().client_instance_id;
        assert_eq!(t.len(), 3);
        let kept: BTreeSet<Uuid> = t.table.lock().unwrap().instances.keys().copied().collect();
        assert_eq!(kept, BTreeSet::from([ids[1], ids[2], fourth]));
        // Past the expiry (max(60 s, 3 x 5 min) here) all of them go at the next new instance.
        let late = 10 + 3 * DEFAULT_INTERVAL_MS as u64;
        t.get_at(&s, Uuid::nil(), &c, late).unwrap();
        assert_eq!(t.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn new_ids_are_never_reserved_nor_dash_first() {
        let map = HashMap::new();
        for _ in 0..1000 {
            let id = new_instance_id(&map);
            assert!(!is_reserved(id));
            assert!(!java_uuid(id).starts_with('-'));
        }
    }

    #[test]
    fn the_subscription_id_is_kafkas_crc_and_hash() {
        // Kafka: Crc32C("[]300000") xor Uuid.hashCode(); for a zero-hash id (hi == lo) just the CRC.
        let id = Uuid::from_u64_pair(7, 7);
        assert_eq!(subscription_id(&BTreeSet::new(), 300_000, id), crc32c::crc32c(b"[]300000") as i32);
        let metrics = BTreeSet::from(["a".to_string(), "b".to_string()]);
        assert_eq!(subscription_id(&metrics, 1000, id), crc32c::crc32c(b"[a, b]1000") as i32);
    }
}
