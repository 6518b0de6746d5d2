//! The broker's metrics: the counters the request path bumps (atomics only: no lock on the
//! produce or fetch path beyond a read lock to find a topic's counters), and the text a scrape
//! renders from them plus a [`Snapshot`] of state read at scrape time. Names follow Kafka's JMX
//! metrics as the Prometheus JMX exporter maps them. Knows nothing of the broker, sockets or disk.

pub mod client_telemetry;
pub mod process;
mod render;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use render::{render, render_controller, GroupView, PartitionView, QuorumView, Snapshot};

/// Kafka's api keys fit below this (the highest in the version table is far lower).
const API_KEYS_MAX: usize = 128;
/// Slots of [`RequestMetrics`]: one per api key, and two more for Fetch split as Kafka splits it.
const FETCH_CONSUMER_SLOT: usize = API_KEYS_MAX;
const FETCH_FOLLOWER_SLOT: usize = API_KEYS_MAX + 1;
const REQUEST_SLOTS: usize = API_KEYS_MAX + 2;
/// Kafka's error codes run from -1 (UNKNOWN_SERVER_ERROR) up; codes beyond this are counted as -1.
const ERROR_CODES_MAX: usize = 160;

/// Bounds of the time histograms (request total time, fdatasync time).
const TIME_BOUNDS: usize = 14;

/// Upper bounds (ms) of the time histograms' buckets; the last bucket is +Inf.
pub const REQUEST_TIME_BUCKETS_MS: [f64; TIME_BOUNDS] = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// Every fdatasync of a segment or index file, timed around the storage backend's call (with
/// io_uring, its wait in the ring's queue included). Process-wide: the storage layer records it
/// without knowing the broker.
pub static FSYNC_TIME: AtomicHistogram = AtomicHistogram::new(&REQUEST_TIME_BUCKETS_MS);

/// Upper bounds (ms) of the io_uring completion-time buckets: a storage operation takes
/// microseconds on a fast disk, so the buckets start far below a request's.
pub const IO_TIME_BUCKETS_MS: [f64; TIME_BOUNDS] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 1000.0];

/// Every io_uring operation, timed from its entry into the ring to its completion being reaped
/// (the kernel's time, not the wait in the backend's queue). Process-wide, as [`FSYNC_TIME`].
pub static URING_COMPLETION_TIME: AtomicHistogram = AtomicHistogram::new(&IO_TIME_BUCKETS_MS);

/// The fetch path's read-ahead (`fjord.fetch.readahead.bytes`): windows found already in the
/// page cache (hits), windows asked of the kernel (POSIX_FADV_WILLNEED), and hints dropped
/// because enough were in flight. Process-wide, as [`FSYNC_TIME`].
pub static READAHEAD_CACHED: AtomicU64 = AtomicU64::new(0);
pub static READAHEAD_HINTED: AtomicU64 = AtomicU64::new(0);
pub static READAHEAD_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Which request a measurement belongs to, as Kafka's RequestMetrics names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Any api but Fetch, by its key.
    Api(i16),
    FetchConsumer,
    FetchFollower,
}

impl RequestKind {
    fn slot(self) -> Option<usize> {
        match self {
            RequestKind::Api(k) if (0..API_KEYS_MAX as i16).contains(&k) => Some(k as usize),
            RequestKind::Api(_) => None,
            RequestKind::FetchConsumer => Some(FETCH_CONSUMER_SLOT),
            RequestKind::FetchFollower => Some(FETCH_FOLLOWER_SLOT),
        }
    }
}

/// A histogram of fixed buckets in atomics: an observation is two relaxed adds and a search of
/// a short array.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [f64; TIME_BOUNDS],
    /// One per bound, plus +Inf; not cumulative (the renderer sums them).
    buckets: [AtomicU64; TIME_BOUNDS + 1],
    /// The sum in microseconds, so it stays an integer.
    sum_us: AtomicU64,
}

impl AtomicHistogram {
    pub const fn new(bounds: &'static [f64; TIME_BOUNDS]) -> AtomicHistogram {
        AtomicHistogram { bounds, buckets: [const { AtomicU64::new(0) }; TIME_BOUNDS + 1], sum_us: AtomicU64::new(0) }
    }

    /// Records a duration against bounds in milliseconds.
    pub fn observe(&self, d: Duration) {
        let ms = d.as_secs_f64() * 1000.0;
        let i = self.bounds.iter().position(|b| ms <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// (sum in ms, count, (upper bound, count in that bucket alone) with +Inf last): the
    /// encoder makes them cumulative. The count is the buckets' total, so the two agree even
    /// while observations land.
    pub fn read_ms(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let out: Vec<(f64, u64)> = self.buckets.iter().enumerate().map(|(i, b)| (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), b.load(Ordering::Relaxed))).collect();
        (self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0, out.iter().map(|(_, n)| n).sum(), out)
    }
}

/// Per request kind: count, errors by code, total time.
#[derive(Debug)]
struct RequestSlot {
    requests: AtomicU64,
    errors: Box<[AtomicU64]>,
    total_time: AtomicHistogram,
}

/// Bytes and messages of one topic; the all-topics totals are summed at scrape time.
#[derive(Debug, Default)]
pub struct TopicCounters {
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub produce_requests: AtomicU64,
    pub fetch_requests: AtomicU64,
    pub failed_produce_requests: AtomicU64,
    pub failed_fetch_requests: AtomicU64,
}

/// Everything the request path counts. One per broker, shared.
#[derive(Debug)]
pub struct BrokerMetrics {
    requests: Box<[RequestSlot]>,
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    /// Bytes follower fetches read (Kafka's ReplicationBytesOutPerSec).
    pub replication_bytes_out: AtomicU64,
    /// Open client connections by listener name.
    connections: RwLock<Vec<(String, Arc<AtomicI64>)>>,
    /// Connections served since startup by listener name (Kafka's connection-creation-total):
    /// what shows a client reconnecting where it could have kept its connection.
    connections_created: RwLock<Vec<(String, Arc<AtomicU64>)>>,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics::new()
    }
}

impl BrokerMetrics {
    pub fn new() -> BrokerMetrics {
        let requests = (0..REQUEST_SLOTS)
            .map(|_| RequestSlot { requests: AtomicU64::new(0), errors: (0..ERROR_CODES_MAX).map(|_| AtomicU64::new(0)).collect(), total_time: AtomicHistogram::new(&REQUEST_TIME_BUCKETS_MS) })
            .collect();
        BrokerMetrics { requests, topics: RwLock::new(HashMap::new()), replication_bytes_out: AtomicU64::new(0), connections: RwLock::new(Vec::new()), connections_created: RwLock::new(Vec::new()) }
    }

    /// One request handled, from its frame read to its response ready, in `elapsed`.
    pub fn record_request(&self, kind: RequestKind, elapsed: Duration) {
        let Some(slot) = kind.slot().map(|s| &self.requests[s]) else { return };
        slot.requests.fetch_add(1, Ordering::Relaxed);
        slot.total_time.observe(elapsed);
    }

    /// One error code (NONE included, as Kafka counts) in a response of `kind`.
    pub fn record_error(&self, kind: RequestKind, code: i16) {
        let Some(slot) = kind.slot().map(|s| &self.requests[s]) else { return };
        let i = code as i32 + 1;
        let i = if (0..ERROR_CODES_MAX as i32).contains(&i) { i as usize } else { 0 };
        slot.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of `topic`, made on first use. A read lock on the common path.
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Some(c) = self.topics.read().unwrap_or_else(|e| e.into_inner()).get(topic) {
            return c.clone();
        }
        self.topics.write().unwrap_or_else(|e| e.into_inner()).entry(topic.to_string()).or_default().clone()
    }

    /// A deleted topic's series go away, as Kafka removes its topic metrics.
    pub fn remove_topic(&self, topic: &str) {
        self.topics.write().unwrap_or_else(|e| e.into_inner()).remove(topic);
    }

    /// The open-connections gauge of a listener (taken once per listener, not per connection).
    pub fn connections(&self, listener: &str) -> Arc<AtomicI64> {
        let mut all = self.connections.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = all.iter().find(|(n, _)| n == listener) {
            return c.clone();
        }
        let c = Arc::new(AtomicI64::new(0));
        all.push((listener.to_string(), c.clone()));
        c
    }

    /// The connections-created counter of a listener (taken once per listener).
    pub fn connections_created(&self, listener: &str) -> Arc<AtomicU64> {
        let mut all = self.connections_created.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = all.iter().find(|(n, _)| n == listener) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        all.push((listener.to_string(), c.clone()));
        c
    }

    /// Connections served on `listener` since startup.
    pub fn connection_creation_total(&self, listener: &str) -> u64 {
        let all = self.connections_created.read().unwrap_or_else(|e| e.into_inner());
        all.iter().find(|(n, _)| n == listener).map_or(0, |(_, c)| c.load(Ordering::Relaxed))
    }

    /// Requests handled of `kind` so far.
    pub fn request_count(&self, kind: RequestKind) -> u64 {
        kind.slot().map_or(0, |s| self.requests[s].requests.load(Ordering::Relaxed))
    }

    /// (bytes in, messages in, bytes out) summed over every topic: the all-topics series, for
    /// the web console's throughput chart.
    pub fn topic_totals(&self) -> (u64, u64, u64) {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).values().fold((0, 0, 0), |(bi, mi, bo), c| {
            (bi + c.bytes_in.load(Ordering::Relaxed), mi + c.messages_in.load(Ordering::Relaxed), bo + c.bytes_out.load(Ordering::Relaxed))
        })
    }

    fn topics_sorted(&self) -> Vec<(String, Arc<TopicCounters>)> {
        let mut v: Vec<(String, Arc<TopicCounters>)> = self.topics.read().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Kafka's name of a request kind (ApiKeys' names; Fetch split as FetchConsumer/FetchFollower).
fn request_name(slot: usize) -> Option<String> {
    match slot {
        FETCH_CONSUMER_SLOT => Some("FetchConsumer".into()),
        FETCH_FOLLOWER_SLOT => Some("FetchFollower".into()),
        k => kafka_protocol::messages::ApiKey::try_from(k as i16).ok().map(|k| format!("{k:?}")),
    }
}

/// Kafka's name of an error code (Errors' enum names: NONE, UNKNOWN_TOPIC_OR_PARTITION, ...).
fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".into();
    }
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        Some(e) => screaming_snake(&format!("{e:?}")),
        None => format!("UNKNOWN_{code}"),
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_puts_each_observation_in_its_bucket() {
        let h = AtomicHistogram::new(&REQUEST_TIME_BUCKETS_MS);
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let (sum, count, buckets) = h.read_ms();
        assert_eq!(count, 3);
        assert!((sum - 60_003.3).abs() < 0.01, "{sum}");
        assert_eq!(buckets[0], (0.5, 1));
        assert_eq!(buckets[3], (5.0, 1), "3 ms falls in the 5 ms bucket");
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }

    #[test]
    fn requests_and_errors_count_per_kind_and_unknown_kinds_are_ignored() {
        let m = BrokerMetrics::new();
        m.record_request(RequestKind::Api(0), Duration::from_millis(1));
        m.record_request(RequestKind::FetchConsumer, Duration::from_millis(1));
        m.record_request(RequestKind::Api(-5), Duration::from_millis(1));
        m.record_request(RequestKind::Api(9999), Duration::from_millis(1));
        m.record_error(RequestKind::Api(0), 3);
        m.record_error(RequestKind::Api(0), 30_000);
        assert_eq!(m.request_count(RequestKind::Api(0)), 1);
        assert_eq!(m.request_count(RequestKind::FetchConsumer), 1);
        assert_eq!(m.request_count(RequestKind::FetchFollower), 0);
        let slot = &m.requests[0];
        assert_eq!(slot.errors[4].load(Ordering::Relaxed), 1, "code 3 at index 4");
        assert_eq!(slot.errors[0].load(Ordering::Relaxed), 1, "an out-of-range code counts as UNKNOWN_SERVER_ERROR");
    }

    #[test]
    fn names_are_kafkas() {
        assert_eq!(request_name(0).as_deref(), Some("Produce"));
        assert_eq!(request_name(8).as_deref(), Some("OffsetCommit"));
        assert_eq!(request_name(FETCH_FOLLOWER_SLOT).as_deref(), Some("FetchFollower"));
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
    }

    #[test]
    fn topic_counters_are_shared_and_removed_with_the_topic() {
        let m = BrokerMetrics::new();
        m.topic("a").bytes_in.fetch_add(5, Ordering::Relaxed);
        assert_eq!(m.topic("a").bytes_in.load(Ordering::Relaxed), 5);
        m.remove_topic("a");
        assert_eq!(m.topic("a").bytes_in.load(Ordering::Relaxed), 0);
    }
}
