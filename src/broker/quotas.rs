//! Client quotas (KIP-13, KIP-55, KIP-219, KIP-546): what AlterClientQuotas sets and
//! DescribeClientQuotas lists, kept durably in `fjord-client-quotas.checkpoint`, and the byte-rate
//! sensors that turn a client's traffic into a throttle time.
//!
//! An entity is a user, a client id or both (`user`, `client-id`; a null name is the `<default>`
//! entity). A client's quota is the first of Kafka's eight levels that is set: user and client id,
//! user and default client, user, default user and client id, default user and default client,
//! default user, client id, default client. The level also decides who shares the rate: a quota
//! set on a user alone is shared by every client id of that user.
//!
//! Rates are measured as Kafka's `Rate` does: `quota.window.num` samples of
//! `quota.window.size.seconds`; the elapsed time is at least that many windows less one, so a
//! client's first burst is not judged over a few milliseconds. A client over its quota is
//! throttled for the time that brings the rate back to the quota, `(rate - quota) / quota *
//! window`.
//!
//! `controller_mutation_rate` (KIP-599) is measured as Kafka's `TokenBucket`: a bucket of
//! `controller.quota.window.num` × `controller.quota.window.size.seconds` × quota partitions,
//! refilled at the quota, taken from by every partition created or deleted; a client whose bucket
//! is below zero waits `-tokens / quota` seconds. `connection_creation_rate` (KIP-612) is set on
//! `ip` entities (one address, or the `<default>` address) and measured with the same `Rate` as
//! the byte rates. Knows nothing of requests or sockets.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use crate::storage::checkpoint::write_atomic;
use crate::storage::io::std::StdIo;

const FILE: &str = "fjord-client-quotas.checkpoint";
const VERSION: &str = "0";

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The type Kafka's QuotaConfig gives a quota key, which decides how its value is checked.
#[derive(Clone, Copy, PartialEq)]
enum KeyType {
    Long,
    Int,
    Double,
}

/// The keys a user and/or client-id entity may set, and those of an ip entity (Kafka's
/// `userAndClientQuotaConfigs` and `ipConfigs`).
const CLIENT_KEYS: [(&str, KeyType); 4] = [(PRODUCER_BYTE_RATE, KeyType::Long), (CONSUMER_BYTE_RATE, KeyType::Long), (REQUEST_PERCENTAGE, KeyType::Double), (CONTROLLER_MUTATION_RATE, KeyType::Double)];
const IP_KEYS: [(&str, KeyType); 1] = [(CONNECTION_CREATION_RATE, KeyType::Int)];

/// Kafka's `NanosToPercentagePerSecond`: one second of handling is 100 percent-seconds.
const NANOS_TO_PERCENT_SECONDS: f64 = 100.0 / 1e9;

/// The connection_creation_rate that means "no quota" (Kafka's IP_CONNECTION_RATE_DEFAULT).
const UNLIMITED_CONNECTION_RATE: f64 = i32::MAX as f64;

/// Rate sensors kept before idle ones are dropped (each client id, or user, has one per quota
/// kind while it is active).
const SENSORS_MAX: usize = 10_000;

/// DescribeClientQuotas match types.
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_SPECIFIED: i8 = 2;

/// A quota entity: entity type -> name, `None` for the `<default>` entity.
pub type Entity = BTreeMap<String, Option<String>>;
type Values = BTreeMap<String, f64>;

/// Why an alteration or a description failed; `api::error_code::quota` picks the code.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnsupportedEntityType(String),
    #[error("cannot store the client quotas: {0}")]
    Storage(String),
}

/// The quota kinds Fjord enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    Produce,
    Fetch,
    ControllerMutation,
    /// request_percentage: handler time, in percent of one second per second.
    Request,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::ControllerMutation => CONTROLLER_MUTATION_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// One alteration as the request carries it: `None` removes the key.
pub struct Alteration {
    pub entity: Vec<(String, Option<String>)>,
    pub ops: Vec<(String, Option<f64>)>,
}

/// One DescribeClientQuotas filter component.
pub struct Component {
    pub entity_type: String,
    pub match_type: i8,
    pub name: Option<String>,
}

/// The stored quotas and the live rate sensors.
pub struct ClientQuotas {
    dir: PathBuf,
    quotas: RwLock<BTreeMap<Entity, Values>>,
    /// Whether any quota is set (Kafka's `quotasEnabled`): without one the request path skips
    /// the lookup, the sensors and their keys altogether.
    enabled: AtomicBool,
    sensors: Mutex<HashMap<(QuotaKind, String, String), Rate>>,
    /// controller_mutation_rate token buckets by (user, client id) key.
    buckets: Mutex<HashMap<(String, String), TokenBucket>>,
    /// connection_creation_rate sensors by client address.
    ip_sensors: Mutex<HashMap<IpAddr, Rate>>,
    window_ms: u64,
    samples: usize,
    /// `controller.quota.window.size.seconds` (in ms) and `controller.quota.window.num`: the
    /// token buckets hold this many windows of their quota.
    controller_window_ms: u64,
    controller_samples: usize,
    epoch: Instant,
}

impl ClientQuotas {
    /// Loads the quotas of `dir` (none when the file does not exist); rates are measured over
    /// `samples` windows of `window_ms`.
    pub fn load(dir: &Path, samples: usize, window_ms: u64) -> std::io::Result<ClientQuotas> {
        let path = dir.join(FILE);
        let quotas = match std::fs::read_to_string(&path) {
            Ok(text) => decode(&text).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is corrupt", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(ClientQuotas {
            dir: dir.to_path_buf(),
            enabled: AtomicBool::new(!quotas.is_empty()),
            quotas: RwLock::new(quotas),
            sensors: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            ip_sensors: Mutex::new(HashMap::new()),
            window_ms: window_ms.max(1),
            samples: samples.max(2),
            controller_window_ms: window_ms.max(1),
            controller_samples: samples.max(1),
            epoch: Instant::now(),
        })
    }

    /// The token buckets of controller_mutation_rate hold `samples` windows of `window_ms`
    /// (`controller.quota.window.num`, `controller.quota.window.size.seconds`).
    pub fn with_controller_window(mut self, samples: usize, window_ms: u64) -> ClientQuotas {
        self.controller_samples = samples.max(1);
        self.controller_window_ms = window_ms.max(1);
        self
    }

    /// Drops every sensor and bucket: the quotas they were measured against changed.
    fn reset_sensors(&self) {
        self.sensors.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.ip_sensors.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Applies one AlterClientQuotas request (see [`decide`]): every valid change is stored
    /// together before it takes effect. `validate_only` checks and stores nothing.
    pub fn alter(&self, alterations: &[Alteration], validate_only: bool) -> Vec<(Vec<(String, Option<String>)>, Result<(), QuotaError>)> {
        let mut quotas = self.quotas.write().unwrap_or_else(|e| e.into_inner());
        let (changes, mut results) = decide(&quotas, alterations);
        if validate_only || changes.is_empty() {
            return results;
        }
        let mut next = quotas.clone();
        apply(&mut next, changes);
        match write_atomic(&StdIo, &self.dir.join(FILE), encode(&next).as_bytes()) {
            Ok(()) => {
                self.enabled.store(!next.is_empty(), Ordering::Relaxed);
                *quotas = next;
                drop(quotas);
                // Sensors keyed by a level that no longer applies start over.
                self.reset_sensors();
            }
            Err(e) => {
                let failed = QuotaError::Storage(e.to_string());
                for r in results.iter_mut().filter(|r| r.1.is_ok()) {
                    r.1 = Err(failed.clone());
                }
            }
        }
        results
    }

    /// In a metadata quorum the quotas are the metadata log's: the broker's copy follows the
    /// applied image (nothing is written here).
    pub fn follow(&self, quotas: BTreeMap<Entity, Values>) {
        let mut current = self.quotas.write().unwrap_or_else(|e| e.into_inner());
        if *current != quotas {
            self.enabled.store(!quotas.is_empty(), Ordering::Relaxed);
            *current = quotas;
            drop(current);
            self.reset_sensors();
        }
    }

    /// Whether any quota is set: when not, no request needs to be measured.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// The stored quotas (to check what a quorum's answer changed).
    pub fn values(&self, entity: &Entity) -> Option<Values> {
        self.quotas.read().unwrap_or_else(|e| e.into_inner()).get(entity).cloned()
    }

    /// DescribeClientQuotas: the entities matching every component (only those with exactly the
    /// components' types when `strict`), with their values; a bad filter fails the request.
    pub fn describe(&self, components: &[Component], strict: bool) -> Result<Vec<(Entity, Values)>, QuotaError> {
        let invalid = |m: String| Err(QuotaError::InvalidRequest(m));
        let mut exact: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut specified: Vec<&str> = Vec::new();
        for c in components {
            let t = c.entity_type.as_str();
            if t.is_empty() {
                return invalid("Invalid empty entity type.".into());
            }
            if exact.contains_key(t) || specified.contains(&t) {
                return invalid(format!("Entity type {t} cannot appear more than once in the filter."));
            }
            if ![USER, CLIENT_ID, IP].contains(&t) {
                return Err(QuotaError::UnsupportedEntityType(format!("Unsupported entity type {t}")));
            }
            match (c.match_type, &c.name) {
                (MATCH_EXACT, None) => return invalid("Request specified MATCH_TYPE_EXACT, but set match string to null.".into()),
                (MATCH_EXACT, Some(n)) => drop(exact.insert(t, Some(n.as_str()))),
                (MATCH_DEFAULT, Some(_)) => return invalid("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.".into()),
                (MATCH_DEFAULT, None) => drop(exact.insert(t, None)),
                (MATCH_SPECIFIED, Some(_)) => return invalid("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.".into()),
                (MATCH_SPECIFIED, None) => specified.push(t),
                (m, _) => return invalid(format!("Unknown match type {m}")),
            }
        }
        let has = |t: &str| exact.contains_key(t) || specified.contains(&t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into());
        }
        let quotas = self.quotas.read().unwrap_or_else(|e| e.into_inner());
        let matches = |e: &Entity| {
            (!strict || e.len() == exact.len() + specified.len())
                && exact.iter().all(|(t, n)| e.get(*t).is_some_and(|v| v.as_deref() == *n))
                && specified.iter().all(|t| e.contains_key(*t))
        };
        Ok(quotas.iter().filter(|(e, _)| matches(e)).map(|(e, v)| (e.clone(), v.clone())).collect())
    }

    /// The quota of `kind` that applies to (user, client id), by Kafka's precedence, and the key
    /// of the rate it is measured on; None when no level sets one.
    fn quota(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<(f64, String, String)> {
        let quotas = self.quotas.read().unwrap_or_else(|e| e.into_inner());
        if quotas.is_empty() {
            return None;
        }
        let (u, c) = (Some(user.to_string()), Some(client_id.to_string()));
        let levels: [(Option<Option<String>>, Option<Option<String>>, bool, bool); 8] = [
            (Some(u.clone()), Some(c.clone()), true, true),
            (Some(u.clone()), Some(None), true, true),
            (Some(u.clone()), None, true, false),
            (Some(None), Some(c.clone()), true, true),
            (Some(None), Some(None), true, true),
            (Some(None), None, true, false),
            (None, Some(c.clone()), false, true),
            (None, Some(None), false, true),
        ];
        for (user_part, client_part, by_user, by_client) in levels {
            let mut entity = Entity::new();
            if let Some(n) = user_part {
                entity.insert(USER.into(), n);
            }
            if let Some(n) = client_part {
                entity.insert(CLIENT_ID.into(), n);
            }
            if let Some(q) = quotas.get(&entity).and_then(|v| v.get(kind.key())) {
                let key_user = if by_user { user.to_string() } else { String::new() };
                let key_client = if by_client { client_id.to_string() } else { String::new() };
                return Some((*q, key_user, key_client));
            }
        }
        None
    }

    /// Records `bytes` of `kind` for (user, client id) at `now` and returns the throttle time in
    /// ms (0 when within quota or without one).
    pub fn record(&self, kind: QuotaKind, user: &str, client_id: &str, bytes: u64) -> u64 {
        if !self.enabled() {
            return 0;
        }
        self.record_at(kind, user, client_id, bytes as f64, self.now_ms())
    }

    /// Records `nanos` of request handling for (user, client id) against request_percentage
    /// (KIP-124): the time is counted in percent-seconds, so the measured rate is the percentage
    /// of one thread's time the client used. The throttle time is at most one quota window, as
    /// Kafka bounds it.
    pub fn record_request_time(&self, user: &str, client_id: &str, nanos: u64) -> u64 {
        if !self.enabled() {
            return 0;
        }
        self.record_request_time_at(user, client_id, nanos, self.now_ms())
    }

    fn record_request_time_at(&self, user: &str, client_id: &str, nanos: u64, now: u64) -> u64 {
        self.record_at(QuotaKind::Request, user, client_id, nanos as f64 * NANOS_TO_PERCENT_SECONDS, now).min(self.window_ms)
    }

    /// Takes back bytes recorded for a request that was answered without them (a throttled fetch
    /// returns no records, as Kafka's does).
    pub fn unrecord(&self, kind: QuotaKind, user: &str, client_id: &str, bytes: u64) {
        if let Some((_, ku, kc)) = self.quota(kind, user, client_id) {
            let now = self.now_ms();
            if let Some(rate) = self.sensors.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&(kind, ku, kc)) {
                rate.record(-(bytes as f64), now, self.window_ms, self.samples);
            }
        }
    }

    /// The most bytes one response may carry without being sure to be throttled (Kafka caps a
    /// fetch's max bytes with it); None without a quota.
    pub fn max_bytes_in_window(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<u64> {
        let (q, _, _) = self.quota(kind, user, client_id)?;
        Some((q * (self.samples as f64 - 1.0) * self.window_ms as f64 / 1000.0).max(1.0) as u64)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn record_at(&self, kind: QuotaKind, user: &str, client_id: &str, bytes: f64, now: u64) -> u64 {
        let Some((quota, ku, kc)) = self.quota(kind, user, client_id) else {
            return 0;
        };
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        if sensors.len() >= SENSORS_MAX {
            let span = self.window_ms * self.samples as u64;
            sensors.retain(|_, r| now.saturating_sub(r.last_ms) < span);
        }
        let rate = sensors.entry((kind, ku, kc)).or_default();
        rate.record(bytes, now, self.window_ms, self.samples);
        let (value, window) = rate.measure(now, self.window_ms, self.samples);
        throttle_ms(value, quota, window)
    }

    /// A request's charge against controller_mutation_rate: `strict` for the versions that
    /// answer THROTTLING_QUOTA_EXCEEDED per topic (CreateTopics v6+, CreatePartitions v3+,
    /// DeleteTopics v5+), permissive before them.
    pub fn mutation_quota(&self, user: &str, client_id: &str, strict: bool) -> MutationQuota {
        MutationQuota { user: user.to_string(), client_id: client_id.to_string(), strict, exempt: false, throttle_ms: 0, recorded_ms: 0 }
    }

    fn bucket_at<T>(&self, user: &str, client_id: &str, now: u64, f: impl FnOnce(&mut TokenBucket, f64, f64) -> T) -> Option<T> {
        let (quota, ku, kc) = self.quota(QuotaKind::ControllerMutation, user, client_id)?;
        let burst = quota * self.controller_samples as f64 * self.controller_window_ms as f64 / 1000.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SENSORS_MAX {
            // A bucket left alone for its whole span is (about) full again, as a new one is.
            let span = self.controller_window_ms * self.controller_samples as u64;
            buckets.retain(|_, b| now.saturating_sub(b.last_ms) < span);
        }
        let bucket = buckets.entry((ku, kc)).or_insert(TokenBucket { tokens: burst, last_ms: now });
        Some(f(bucket, quota, burst))
    }

    /// connection_creation_rate for connections from `ip`: its own entity's, else the default
    /// ip entity's; None when neither is set (or set to Kafka's unlimited value).
    pub fn connection_rate_for_ip(&self, ip: IpAddr) -> Option<f64> {
        let quotas = self.quotas.read().unwrap_or_else(|e| e.into_inner());
        let mut default = None;
        for (entity, values) in quotas.iter().filter(|(e, _)| e.len() == 1) {
            let (Some(name), Some(v)) = (entity.get(IP), values.get(CONNECTION_CREATION_RATE)) else {
                continue;
            };
            match name.as_deref().map(str::parse::<IpAddr>) {
                None => default = Some(*v),
                Some(Ok(a)) if a == ip => return Some(*v).filter(|v| *v < UNLIMITED_CONNECTION_RATE),
                Some(_) => {}
            }
        }
        default.filter(|v| *v < UNLIMITED_CONNECTION_RATE)
    }

    /// Counts a new connection from `ip` against its connection_creation_rate. Over the quota
    /// the connection is not counted (as Kafka un-records it) and the answer is how long to hold
    /// it before closing it, at most one quota window; 0: accepted.
    pub fn record_connection(&self, ip: IpAddr) -> u64 {
        if !self.enabled() {
            return 0;
        }
        let Some(quota) = self.connection_rate_for_ip(ip) else {
            return 0;
        };
        self.record_connection_at(ip, quota, self.now_ms())
    }

    fn record_connection_at(&self, ip: IpAddr, quota: f64, now: u64) -> u64 {
        let mut sensors = self.ip_sensors.lock().unwrap_or_else(|e| e.into_inner());
        if sensors.len() >= SENSORS_MAX {
            let span = self.window_ms * self.samples as u64;
            sensors.retain(|_, r| now.saturating_sub(r.last_ms) < span);
        }
        let rate = sensors.entry(ip).or_default();
        rate.record(1.0, now, self.window_ms, self.samples);
        let (value, window) = rate.measure(now, self.window_ms, self.samples);
        let throttle = throttle_ms(value, quota, window).min(self.window_ms);
        if throttle > 0 {
            rate.record(-1.0, now, self.window_ms, self.samples);
        }
        throttle
    }
}

/// Kafka's throttle time for a rate `value` over `quota` measured over `window_ms`: the time
/// that brings the rate back to the quota; 0 within it.
fn throttle_ms(value: f64, quota: f64, window_ms: u64) -> u64 {
    if value <= quota {
        return 0;
    }
    ((value - quota) / quota * window_ms as f64).round() as u64
}

/// One request's charge against controller_mutation_rate (Kafka's Strict- and
/// PermissiveControllerMutationQuota).
pub struct MutationQuota {
    user: String,
    client_id: String,
    strict: bool,
    /// Charged to no quota (an operator's action in the process, not a client's request).
    exempt: bool,
    /// The throttle time found at `recorded_ms`.
    throttle_ms: u64,
    recorded_ms: u64,
}

impl MutationQuota {
    /// A charge no quota limits.
    pub fn unbounded() -> MutationQuota {
        MutationQuota { user: String::new(), client_id: String::new(), strict: false, exempt: true, throttle_ms: 0, recorded_ms: 0 }
    }

    /// Charges `partitions` created or deleted. A strict quota refuses (Err: the throttle time)
    /// when the bucket is already below zero, and takes the partitions otherwise, even past
    /// zero; a permissive one always takes them and notes the throttle time they cause.
    pub fn charge(&mut self, quotas: &ClientQuotas, partitions: u32) -> Result<(), u64> {
        if self.exempt || !quotas.enabled() {
            return Ok(());
        }
        self.charge_at(quotas, partitions, quotas.now_ms())
    }

    fn charge_at(&mut self, quotas: &ClientQuotas, partitions: u32, now: u64) -> Result<(), u64> {
        let strict = self.strict;
        let outcome = quotas.bucket_at(&self.user, &self.client_id, now, |bucket, quota, burst| {
            if strict {
                let tokens = bucket.tokens(quota, burst, now);
                if tokens < 0.0 {
                    return Err((-tokens / quota * 1000.0).round() as u64);
                }
                bucket.take(quota, burst, f64::from(partitions), now);
                return Ok(());
            }
            bucket.take(quota, burst, f64::from(partitions), now);
            let tokens = bucket.tokens(quota, burst, now);
            if tokens < 0.0 { Err((-tokens / quota * 1000.0).round() as u64) } else { Ok(()) }
        });
        match outcome {
            Some(Err(ms)) => {
                (self.throttle_ms, self.recorded_ms) = (ms, now);
                if strict { Err(ms) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// The throttle time the response carries: the one last found, less the time since.
    pub fn throttle_ms(&self, quotas: &ClientQuotas) -> i32 {
        self.throttle_ms_at(quotas.now_ms())
    }

    fn throttle_ms_at(&self, now: u64) -> i32 {
        self.throttle_ms.saturating_sub(now.saturating_sub(self.recorded_ms)).min(i32::MAX as u64) as i32
    }
}

/// Kafka's `TokenBucket`: refilled at the quota per second up to `burst`; a take may leave it
/// below zero, which is what throttles.
struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    fn refill(&mut self, quota: f64, burst: f64, now: u64) {
        let elapsed = now.saturating_sub(self.last_ms);
        self.tokens = (self.tokens + quota * elapsed as f64 / 1000.0).min(burst);
        self.last_ms = self.last_ms.max(now);
    }

    fn tokens(&mut self, quota: f64, burst: f64, now: u64) -> f64 {
        self.refill(quota, burst, now);
        self.tokens
    }

    fn take(&mut self, quota: f64, burst: f64, value: f64, now: u64) {
        self.refill(quota, burst, now);
        self.tokens = (self.tokens - value).min(burst);
    }
}

/// A broker-wide or listener-wide rate (`max.connection.creation.rate`): Kafka's `Rate` sensor
/// with the client quota windows. The quota may change at run time (a dynamic broker config).
pub struct RateLimit {
    /// The quota's f64 bits.
    quota: std::sync::atomic::AtomicU64,
    rate: Mutex<Rate>,
    window_ms: u64,
    samples: usize,
    epoch: Instant,
}

impl RateLimit {
    pub fn new(quota: f64, samples: usize, window_ms: u64) -> RateLimit {
        RateLimit { quota: std::sync::atomic::AtomicU64::new(quota.to_bits()), rate: Mutex::new(Rate::default()), window_ms: window_ms.max(1), samples: samples.max(2), epoch: Instant::now() }
    }

    /// A new quota for the events from now on (what was counted stays counted).
    pub fn set_quota(&self, quota: f64) {
        self.quota.store(quota.to_bits(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn quota(&self) -> f64 {
        f64::from_bits(self.quota.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Counts one event; the time in ms that brings the rate back to the quota, at most one
    /// window (0: within the quota).
    pub fn record(&self) -> u64 {
        self.record_at(1.0, self.epoch.elapsed().as_millis() as u64)
    }

    /// Takes back one counted event (a connection that was throttled by its address instead).
    pub fn unrecord(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.rate.lock().unwrap_or_else(|e| e.into_inner()).record(-1.0, now, self.window_ms, self.samples);
    }

    fn record_at(&self, value: f64, now: u64) -> u64 {
        let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        rate.record(value, now, self.window_ms, self.samples);
        let (measured, window) = rate.measure(now, self.window_ms, self.samples);
        throttle_ms(measured, self.quota(), window).min(self.window_ms)
    }
}

/// One quota value set (`Some`) or removed (`None`) by [`decide`].
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaChange {
    pub entity: Entity,
    pub key: String,
    pub value: Option<f64>,
}

/// The changes one AlterClientQuotas request makes to `current`, decided as Kafka's
/// ClientQuotaControlManager does: each entity on its own (a duplicate key or a duplicate entity
/// fails that entity), validated; only values that change are listed, and removing an absent key
/// changes nothing. Returns the changes and one result per entity. Pure: a single node applies
/// them to its file, a quorum's controller turns them into metadata records.
pub fn decide(current: &BTreeMap<Entity, Values>, alterations: &[Alteration]) -> (Vec<QuotaChange>, Vec<(Vec<(String, Option<String>)>, Result<(), QuotaError>)>) {
    let mut seen: Vec<Entity> = Vec::new();
    let mut changes = Vec::new();
    let mut results = Vec::with_capacity(alterations.len());
    for a in alterations {
        let checked = check_alteration(a).and_then(|(entity, ops)| {
            if seen.contains(&entity) {
                return Err(QuotaError::InvalidRequest(format!("Ignoring duplicate entity {}", describe_entity(&entity))));
            }
            seen.push(entity.clone());
            Ok((entity, ops))
        });
        match checked {
            Ok((entity, ops)) => {
                let values = current.get(&entity);
                for (key, value) in ops {
                    let now = values.and_then(|v| v.get(&key)).copied();
                    if now != value {
                        changes.push(QuotaChange { entity: entity.clone(), key, value });
                    }
                }
                results.push((a.entity.clone(), Ok(())));
            }
            Err(e) => results.push((a.entity.clone(), Err(e))),
        }
    }
    (changes, results)
}

/// Applies decided changes to a quota map (an entity without values is dropped).
pub fn apply(quotas: &mut BTreeMap<Entity, Values>, changes: Vec<QuotaChange>) {
    for c in changes {
        let values = quotas.entry(c.entity.clone()).or_default();
        match c.value {
            Some(v) => drop(values.insert(c.key, v)),
            None => drop(values.remove(&c.key)),
        }
        if values.is_empty() {
            quotas.remove(&c.entity);
        }
    }
}

/// Kafka's `Rate` over a `SampledStat`: per-window sums, the oldest dropped once it is more than
/// `samples` windows old. Also measured as Kafka's `SimpleRate` (the replication throttles').
#[derive(Default)]
pub(super) struct Rate {
    /// (window start ms, sum) oldest first.
    windows: std::collections::VecDeque<(u64, f64)>,
    last_ms: u64,
}

impl Rate {
    pub(super) fn record(&mut self, value: f64, now: u64, window_ms: u64, samples: usize) {
        self.purge(now, window_ms, samples);
        match self.windows.back_mut() {
            Some((start, sum)) if now < *start + window_ms => *sum += value,
            _ => {
                self.windows.push_back((now, value));
                while self.windows.len() > samples {
                    self.windows.pop_front();
                }
            }
        }
        self.last_ms = now;
    }

    fn purge(&mut self, now: u64, window_ms: u64, samples: usize) {
        let expire = window_ms * samples as u64;
        while self.windows.front().is_some_and(|(start, _)| now.saturating_sub(*start) >= expire) {
            self.windows.pop_front();
        }
    }

    /// (bytes per second, the window in ms it was measured over).
    fn measure(&mut self, now: u64, window_ms: u64, samples: usize) -> (f64, u64) {
        self.purge(now, window_ms, samples);
        let total: f64 = self.windows.iter().map(|(_, s)| s).sum();
        let oldest = self.windows.front().map_or(now, |(s, _)| *s);
        let mut elapsed = now - oldest.min(now);
        let full = elapsed / window_ms;
        let min_full = samples as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * window_ms;
        }
        let elapsed = elapsed.max(1);
        (total / (elapsed as f64 / 1000.0), elapsed)
    }

    /// Per second, as Kafka's `SimpleRate` measures: over the time since the oldest sample began,
    /// but at least one window (not `samples - 1` windows as `Rate`), so a throttle bites within
    /// the first window instead of letting ten windows' worth through at the start.
    pub(super) fn measure_simple(&mut self, now: u64, window_ms: u64, samples: usize) -> f64 {
        self.purge(now, window_ms, samples);
        let total: f64 = self.windows.iter().map(|(_, s)| s).sum();
        let oldest = self.windows.front().map_or(now, |(s, _)| *s);
        let elapsed = (now - oldest.min(now)).max(window_ms).max(1);
        total / (elapsed as f64 / 1000.0)
    }
}

/// Checks one alteration as Kafka's ClientQuotaControlManager does; Ok: the entity and its
/// changes.
fn check_alteration(a: &Alteration) -> Result<(Entity, Vec<(String, Option<f64>)>), QuotaError> {
    let invalid = |m: String| QuotaError::InvalidRequest(m);
    let mut entity = Entity::new();
    if a.entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    for (t, n) in &a.entity {
        if entity.contains_key(t) {
            return Err(invalid(format!("Invalid client quota entity, duplicate entity entry {t}")));
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err(invalid(format!("Unhandled client quota entity type: {t}")));
        }
        if n.as_deref() == Some("") {
            return Err(invalid(format!("Empty {t} not supported")));
        }
        entity.insert(t.clone(), n.clone());
    }
    let mut keys: Vec<&str> = Vec::new();
    for (k, _) in &a.ops {
        if keys.contains(&k.as_str()) {
            return Err(invalid(format!("Duplicate quota key {k} not updating quota for this entity {}", describe_entity(&entity))));
        }
        keys.push(k);
    }
    let allowed: &[(&str, KeyType)] = match entity.get(IP) {
        Some(_) if entity.len() > 1 => {
            // Kafka's message, its missing space included.
            return Err(invalid("Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId".into()));
        }
        // Kafka also resolves host names here; Fjord takes addresses only (the quota is looked
        // up by the connection's address).
        Some(Some(ip)) if ip.parse::<IpAddr>().is_err() => return Err(invalid(format!("{ip} is not a valid IP or resolvable host."))),
        Some(_) => &IP_KEYS,
        None => &CLIENT_KEYS,
    };
    let mut ops = Vec::with_capacity(a.ops.len());
    for (k, v) in &a.ops {
        match v {
            None => ops.push((k.clone(), None)),
            Some(v) => {
                let Some((_, kind)) = allowed.iter().find(|(name, _)| name == k) else {
                    return Err(invalid(format!("Invalid configuration key {k}")));
                };
                if *v <= 0.0 {
                    return Err(invalid(format!("Quota {k} must be greater than 0")));
                }
                match kind {
                    KeyType::Double => {}
                    KeyType::Long if *v > i64::MAX as f64 => return Err(invalid(format!("Proposed value for {k} is too large for a LONG."))),
                    KeyType::Int if *v > i32::MAX as f64 => return Err(invalid(format!("Proposed value for {k} is too large for an INT."))),
                    KeyType::Long | KeyType::Int if (v % 1.0).abs() > 1e-6 => return Err(invalid(format!("{k} cannot be a fractional value."))),
                    KeyType::Long | KeyType::Int => {}
                }
                ops.push((k.clone(), Some(*v)));
            }
        }
    }
    Ok((entity, ops))
}

/// Kafka's way of printing an entity in messages.
fn describe_entity(e: &Entity) -> String {
    let parts: Vec<String> = e.iter().map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>"))).collect();
    format!("ClientQuotaEntity(entries={{{}}})", parts.join(", "))
}

/// The checkpoint: a version line, a count line, then one line per (entity, key, value):
/// `type:hexname,type:` (an empty name is the default entity), a tab, the key, a tab, the value.
fn encode(quotas: &BTreeMap<Entity, Values>) -> String {
    let lines: Vec<String> = quotas
        .iter()
        .flat_map(|(e, values)| {
            let entity: Vec<String> = e.iter().map(|(t, n)| format!("{}:{}", hex(t.as_bytes()), n.as_deref().map(|n| hex(n.as_bytes())).unwrap_or_default())).collect();
            let entity = entity.join(",");
            values.iter().map(move |(k, v)| format!("{entity}\t{k}\t{v}"))
        })
        .collect();
    let mut out = format!("{VERSION}\n{}\n", lines.len());
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn decode(text: &str) -> Option<BTreeMap<Entity, Values>> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.parse().ok()?;
    let mut out: BTreeMap<Entity, Values> = BTreeMap::new();
    let mut read = 0;
    for line in lines {
        let mut fields = line.split('\t');
        let (entity, key, value) = (fields.next()?, fields.next()?, fields.next()?);
        let mut e = Entity::new();
        for part in entity.split(',') {
            let (t, n) = part.split_once(':')?;
            let name = if n.is_empty() { None } else { Some(String::from_utf8(unhex(n)?).ok()?) };
            e.insert(String::from_utf8(unhex(t)?).ok()?, name);
        }
        out.entry(e).or_default().insert(key.to_string(), value.parse().ok()?);
        read += 1;
    }
    (read == count).then_some(out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alteration(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> Alteration {
        Alteration {
            entity: entity.iter().map(|(t, n)| (t.to_string(), n.map(str::to_string))).collect(),
            ops: ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn store() -> (tempfile::TempDir, ClientQuotas) {
        let dir = tempfile::tempdir().unwrap();
        let q = ClientQuotas::load(dir.path(), 11, 1000).unwrap();
        (dir, q)
    }

    #[test]
    fn alterations_are_validated_per_entity_with_kafkas_messages_and_survive_a_reload() {
        let (dir, q) = store();
        assert!(!q.enabled(), "no quota: nothing is measured");
        let results = q.alter(
            &[
                alteration(&[("user", Some("alice"))], &[("producer_byte_rate", Some(1024.0)), ("consumer_byte_rate", Some(2048.0))]),
                alteration(&[("client-id", None)], &[("producer_byte_rate", Some(10.5))]),
                alteration(&[("user", Some("bob"))], &[("producer_byte_rate", Some(1.0)), ("producer_byte_rate", Some(2.0))]),
                alteration(&[("user", Some(""))], &[("producer_byte_rate", Some(1.0))]),
                alteration(&[("group", Some("g"))], &[("producer_byte_rate", Some(1.0))]),
                alteration(&[("user", Some("carol"))], &[("producer_byte_rate", Some(0.0))]),
                alteration(&[("user", Some("carol"))], &[("bogus", Some(1.0))]),
                alteration(&[("user", Some("dave"))], &[("request_percentage", Some(-5.0))]),
                alteration(&[("user", Some("alice"))], &[("producer_byte_rate", Some(7.0))]),
            ],
            false,
        );
        let errors: Vec<Option<String>> = results.iter().map(|(_, r)| r.as_ref().err().map(|e| e.to_string())).collect();
        assert_eq!(errors[0], None);
        assert_eq!(errors[1].as_deref(), Some("producer_byte_rate cannot be a fractional value."));
        assert!(errors[2].as_deref().unwrap().starts_with("Duplicate quota key producer_byte_rate"));
        assert_eq!(errors[3].as_deref(), Some("Empty user not supported"));
        assert_eq!(errors[4].as_deref(), Some("Unhandled client quota entity type: group"));
        assert_eq!(errors[5].as_deref(), Some("Quota producer_byte_rate must be greater than 0"));
        assert_eq!(errors[6].as_deref(), Some("Invalid configuration key bogus"));
        assert_eq!(errors[7].as_deref(), Some("Quota request_percentage must be greater than 0"));
        assert!(errors[8].as_deref().unwrap().starts_with("Ignoring duplicate entity"));
        drop(q);
        let q = ClientQuotas::load(dir.path(), 11, 1000).unwrap();
        assert!(q.enabled(), "a loaded quota is enforced");
        let all = q.describe(&[], false).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, BTreeMap::from([("consumer_byte_rate".to_string(), 2048.0), ("producer_byte_rate".to_string(), 1024.0)]));
        let removed = q.alter(&[alteration(&[("user", Some("alice"))], &[("producer_byte_rate", None), ("consumer_byte_rate", None)])], false);
        assert!(removed[0].1.is_ok());
        assert!(q.describe(&[], false).unwrap().is_empty(), "an entity without values is gone");
        assert!(!q.enabled(), "the last quota removed: nothing is measured again");
    }

    #[test]
    fn describe_filters_match_kafkas_exact_default_specified_and_strict_rules() {
        let (_dir, q) = store();
        let set = |e: &[(&str, Option<&str>)]| alteration(e, &[("producer_byte_rate", Some(100.0))]);
        let r = q.alter(&[set(&[("user", Some("alice"))]), set(&[("user", None)]), set(&[("user", Some("alice")), ("client-id", Some("app"))]), set(&[("client-id", Some("app"))])], false);
        assert!(r.iter().all(|(_, r)| r.is_ok()));
        let c = |t: &str, m: i8, n: Option<&str>| Component { entity_type: t.into(), match_type: m, name: n.map(str::to_string) };
        let count = |cs: &[Component], strict: bool| q.describe(cs, strict).unwrap().len();
        assert_eq!(count(&[c("user", MATCH_EXACT, Some("alice"))], false), 2);
        assert_eq!(count(&[c("user", MATCH_EXACT, Some("alice"))], true), 1);
        assert_eq!(count(&[c("user", MATCH_DEFAULT, None)], false), 1);
        assert_eq!(count(&[c("user", MATCH_SPECIFIED, None)], false), 3);
        assert_eq!(count(&[c("client-id", MATCH_SPECIFIED, None)], true), 1);
        assert_eq!(count(&[], false), 4);
        let err = |cs: &[Component]| q.describe(cs, false).unwrap_err().to_string();
        assert_eq!(err(&[c("user", MATCH_EXACT, None)]), "Request specified MATCH_TYPE_EXACT, but set match string to null.");
        assert_eq!(err(&[c("user", MATCH_SPECIFIED, None), c("user", MATCH_DEFAULT, None)]), "Entity type user cannot appear more than once in the filter.");
        assert!(matches!(q.describe(&[c("group", MATCH_SPECIFIED, None)], false), Err(QuotaError::UnsupportedEntityType(_))));
        assert!(err(&[c("ip", MATCH_SPECIFIED, None), c("user", MATCH_SPECIFIED, None)]).starts_with("Invalid entity filter component combination"));
    }

    #[test]
    fn the_first_of_kafkas_eight_levels_applies_and_decides_who_shares_the_rate() {
        let (_dir, q) = store();
        let set = |e: &[(&str, Option<&str>)], v: f64| alteration(e, &[("producer_byte_rate", Some(v))]);
        q.alter(&[set(&[("client-id", None)], 8.0), set(&[("user", Some("alice"))], 3.0), set(&[("user", Some("alice")), ("client-id", Some("app"))], 1.0)], false);
        assert_eq!(q.quota(QuotaKind::Produce, "alice", "app"), Some((1.0, "alice".into(), "app".into())));
        assert_eq!(q.quota(QuotaKind::Produce, "alice", "other"), Some((3.0, "alice".into(), String::new())), "a user quota is shared by its client ids");
        assert_eq!(q.quota(QuotaKind::Produce, "bob", "x"), Some((8.0, String::new(), "x".into())), "each client id has its own default quota");
        assert_eq!(q.quota(QuotaKind::Fetch, "alice", "app"), None, "another kind is unlimited");
    }

    #[test]
    fn a_client_over_its_byte_rate_is_throttled_for_the_time_that_brings_it_back() {
        let (_dir, q) = store();
        q.alter(&[alteration(&[("client-id", Some("c"))], &[("producer_byte_rate", Some(1000.0))])], false);
        // 10 windows of 1 s make the rate's least elapsed time: 10,000 bytes at once is 1000 B/s.
        assert_eq!(q.record_at(QuotaKind::Produce, "ANONYMOUS", "c", 10_000.0, 0), 0);
        // 20,000 bytes over 10 s is 2000 B/s: (2000 - 1000) / 1000 * 10 s = 10 s.
        assert_eq!(q.record_at(QuotaKind::Produce, "ANONYMOUS", "c", 10_000.0, 0), 10_000);
        assert_eq!(q.record_at(QuotaKind::Produce, "ANONYMOUS", "other", 50_000.0, 0), 0, "no quota for this client id");
        // Eleven windows later the old samples have expired.
        assert_eq!(q.record_at(QuotaKind::Produce, "ANONYMOUS", "c", 100.0, 11_500), 0);
        assert_eq!(q.max_bytes_in_window(QuotaKind::Produce, "ANONYMOUS", "c"), Some(10_000));
    }

    #[test]
    fn each_entity_type_takes_kafkas_keys_with_their_types() {
        let (_dir, q) = store();
        let results = q.alter(
            &[
                alteration(&[("ip", Some("10.0.0.1"))], &[("producer_byte_rate", Some(10.0))]),
                alteration(&[("user", Some("u"))], &[("connection_creation_rate", Some(10.0))]),
                alteration(&[("ip", Some("10.0.0.2"))], &[("connection_creation_rate", Some(2.5))]),
                alteration(&[("ip", Some("10.0.0.3"))], &[("connection_creation_rate", Some(3e9))]),
                alteration(&[("ip", Some("not an address"))], &[("connection_creation_rate", Some(1.0))]),
                alteration(&[("ip", Some("10.0.0.4")), ("client-id", Some("c"))], &[("connection_creation_rate", Some(1.0))]),
                alteration(&[("user", Some("u"))], &[("controller_mutation_rate", Some(0.5))]),
                alteration(&[("ip", None)], &[("connection_creation_rate", Some(5.0))]),
                alteration(&[("ip", Some("::1"))], &[("connection_creation_rate", Some(7.0))]),
            ],
            false,
        );
        let errors: Vec<Option<String>> = results.iter().map(|(_, r)| r.as_ref().err().map(|e| e.to_string())).collect();
        assert_eq!(errors[0].as_deref(), Some("Invalid configuration key producer_byte_rate"));
        assert_eq!(errors[1].as_deref(), Some("Invalid configuration key connection_creation_rate"));
        assert_eq!(errors[2].as_deref(), Some("connection_creation_rate cannot be a fractional value."));
        assert_eq!(errors[3].as_deref(), Some("Proposed value for connection_creation_rate is too large for an INT."));
        assert_eq!(errors[4].as_deref(), Some("not an address is not a valid IP or resolvable host."));
        assert_eq!(errors[5].as_deref(), Some("Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"));
        assert_eq!(&errors[6..], &[None, None, None], "a fractional mutation rate is a DOUBLE, as in Kafka");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(q.connection_rate_for_ip(ip("0:0::1")), Some(7.0), "an address's own quota, however it is written");
        assert_eq!(q.connection_rate_for_ip(ip("10.9.9.9")), Some(5.0), "the <default> ip entity for the others");
        q.alter(&[alteration(&[("ip", Some("10.9.9.9"))], &[("connection_creation_rate", Some(2147483647.0))])], false);
        assert_eq!(q.connection_rate_for_ip(ip("10.9.9.9")), None, "Kafka's INT maximum is no quota");
    }

    #[test]
    fn a_strict_mutation_quota_refuses_once_the_bucket_is_below_zero_and_says_for_how_long() {
        let (_dir, q) = store();
        q.alter(&[alteration(&[("user", None)], &[("controller_mutation_rate", Some(1.0))])], false);
        // 11 windows of 1 s at 1 partition/s: a full bucket holds 11 partitions.
        let mut first = q.mutation_quota("alice", "admin", true);
        assert_eq!(first.charge_at(&q, 10, 0), Ok(()));
        assert_eq!(first.charge_at(&q, 10, 0), Ok(()), "taken while the bucket is not below zero, even past it");
        assert_eq!(first.throttle_ms_at(0), 0, "the request that emptied the bucket is not throttled");
        let mut second = q.mutation_quota("alice", "admin", true);
        assert_eq!(second.charge_at(&q, 1, 0), Err(9000), "9 partitions below zero at 1/s");
        assert_eq!(second.charge_at(&q, 1, 1000), Err(8000), "refilled at the quota");
        assert_eq!(second.throttle_ms_at(1500), 7500, "the answer's throttle time counts the time since");
        assert_eq!(q.mutation_quota("bob", "admin", true).charge_at(&q, 11, 0), Ok(()), "the default user's quota is each user's own");
        let mut third = q.mutation_quota("alice", "admin", true);
        assert_eq!(third.charge_at(&q, 5, 9000), Ok(()), "back to zero after 9 s");
    }

    #[test]
    fn request_time_is_measured_in_percent_of_a_thread_and_throttled_at_most_one_window() {
        let (_dir, q) = store();
        q.alter(&[alteration(&[("client-id", Some("busy"))], &[("request_percentage", Some(10.0))])], false);
        // 10 % of a thread over at least 10 s is 1 s of handling: within the quota.
        assert_eq!(q.record_request_time_at("ANONYMOUS", "busy", 1_000_000_000, 0), 0);
        // 1.05 s over 10 s is 10.5 %: (10.5 - 10) / 10 * 10 s = 500 ms.
        assert_eq!(q.record_request_time_at("ANONYMOUS", "busy", 50_000_000, 0), 500);
        // 3.05 s is 30.5 %: 20.5 s by the formula, bounded by the 1 s window as Kafka bounds it.
        assert_eq!(q.record_request_time_at("ANONYMOUS", "busy", 2_000_000_000, 0), 1000);
        assert_eq!(q.record_request_time_at("ANONYMOUS", "idle", 5_000_000_000, 0), 0, "no quota for this client id");
    }

    #[test]
    fn a_permissive_mutation_quota_takes_everything_and_throttles_after() {
        let (_dir, q) = store();
        q.alter(&[alteration(&[("client-id", Some("old"))], &[("controller_mutation_rate", Some(2.0))])], false);
        let mut m = q.mutation_quota("ANONYMOUS", "old", false);
        assert_eq!(m.charge_at(&q, 20, 0), Ok(()));
        assert_eq!(m.throttle_ms_at(0), 0, "22 tokens: 2 left");
        assert_eq!(m.charge_at(&q, 10, 0), Ok(()), "never refused");
        assert_eq!(m.throttle_ms_at(0), 4000, "8 below zero at 2/s");
        let mut none = q.mutation_quota("ANONYMOUS", "other", true);
        assert_eq!(none.charge_at(&q, 1_000_000, 0), Ok(()), "no quota, no limit");
    }

    #[test]
    fn connections_over_an_address_rate_are_not_counted_and_wait_at_most_one_window() {
        let (_dir, q) = store();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // 2 per second over at least 10 s: 20 connections at once are within the quota.
        for _ in 0..20 {
            assert_eq!(q.record_connection_at(ip, 2.0, 0), 0);
        }
        assert_eq!(q.record_connection_at(ip, 2.0, 0), 500, "21 over 10 s is 2.1/s: (2.1 - 2) / 2 * 10 s");
        assert_eq!(q.record_connection_at(ip, 2.0, 0), 500, "the refused connection was not counted");
        assert_eq!(q.record_connection_at(ip, 0.5, 0), 1000, "never more than one window");
        let limit = RateLimit::new(5.0, 11, 1000);
        for _ in 0..50 {
            assert_eq!(limit.record_at(1.0, 0), 0);
        }
        assert_eq!(limit.record_at(1.0, 0), 200, "51 over 10 s at 5/s");
        limit.rate.lock().unwrap().record(-1.0, 0, 1000, 11);
        assert_eq!(limit.record_at(1.0, 0), 200, "an unrecorded connection is not counted");
        assert_eq!(limit.record_at(1.0, 11_000), 0, "eleven windows later the samples have expired");
    }

    #[test]
    fn the_checkpoint_round_trips_names_with_separators() {
        let mut m = BTreeMap::new();
        m.insert(Entity::from([("user".to_string(), Some("a:b,c\td".to_string())), ("client-id".to_string(), None)]), Values::from([("producer_byte_rate".to_string(), 12.0)]));
        assert_eq!(decode(&encode(&m)), Some(m));
        assert_eq!(decode("0\n2\n"), None, "a short file is corrupt");
    }
}
