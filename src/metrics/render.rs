//! The Prometheus text (0.0.4) a scrape answers, encoded by prometheus-client from the request
//! counters and a [`Snapshot`] of state read at scrape time. Counters get their `_total` suffix
//! from the encoder.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::process::ProcessStats;
use super::{BrokerMetrics, ERROR_CODES_MAX, error_name, request_name};

/// One partition with a log here, as read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    /// Led here with fewer in-sync replicas than replicas.
    pub under_replicated: bool,
    /// No leader, or its log dir is offline.
    pub offline: bool,
}

/// One consumer group, as read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct GroupView {
    pub group_id: String,
    /// Kafka's state name: Empty, Stable, PreparingRebalance, ... (Assigning, Reconciling for
    /// the consumer protocol).
    pub state: &'static str,
    /// classic or consumer.
    pub group_type: &'static str,
    /// (topic, partition, committed offset).
    pub committed: Vec<(String, i32, i64)>,
}

/// The metadata quorum as a voter sees it at scrape time (a combined or a controller-only node
/// in a quorum): its Raft state, and counts from the metadata image it applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuorumView {
    /// This node leads the quorum: it is the active controller.
    pub active: bool,
    pub leader_id: Option<u64>,
    /// The Raft term (Kafka's leader epoch of the metadata log).
    pub epoch: u64,
    /// The highest log index known committed, the last applied, the last in the log.
    pub committed_offset: Option<u64>,
    pub last_applied_offset: Option<u64>,
    pub log_end_offset: Option<u64>,
    /// Kafka's high watermark of the metadata log: the index after the last committed one.
    pub high_watermark: u64,
    pub brokers_active: usize,
    pub brokers_fenced: usize,
    pub topics: usize,
    pub partitions: usize,
    /// Partitions of the image without a leader.
    pub offline_partitions: usize,
}

/// State read at scrape time (a walk of the logs and groups), rather than kept twice.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub partitions: Vec<PartitionView>,
    pub groups: Vec<GroupView>,
    /// io_uring counters when that backend runs.
    pub uring: Option<crate::storage::io::uring::UringCounts>,
    pub process: ProcessStats,
    /// The metadata quorum, on a voter.
    pub quorum: Option<QuorumView>,
    /// The latest values clients pushed (KIP-714), by family, with the receiver on.
    pub client_telemetry: super::client_telemetry::Families,
    /// The replication throttles' measured rates, bytes a second: leader side, follower side.
    pub replication_byte_rates: [f64; 2],
}

/// Kafka's classic group states, each with its own GroupMetadataManager gauge.
const CLASSIC_GROUP_STATES: [&str; 5] = ["PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty"];

/// The text of one scrape.
pub fn render(metrics: Arc<BrokerMetrics>, snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { metrics, snapshot }));
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail; an encoder error would be a bug in the labels given.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}

/// The text of one scrape of a controller-only node: the quorum and the process.
pub fn render_controller(quorum: QuorumView, process: ProcessStats) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ControllerScrape { quorum, process }));
    let mut out = String::with_capacity(2048);
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}

#[derive(Debug)]
struct ControllerScrape {
    quorum: QuorumView,
    process: ProcessStats,
}

impl Collector for ControllerScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_quorum(&mut encoder, &self.quorum)?;
        encode_process(&mut encoder, &self.process)
    }
}

/// The quorum under Kafka's names: the controller's (`kafka.controller:type=KafkaController`)
/// and the Raft client's (`kafka.server:type=raft-metrics`), as the JMX exporter maps them.
/// `OfflinePartitionsCount` is not among them: on a broker that name already counts the
/// partitions with a replica here (see the broker's families).
fn encode_quorum(e: &mut DescriptorEncoder, q: &QuorumView) -> Result<(), std::fmt::Error> {
    let one = |v: i64| [(Vec::new(), v)];
    let offset = |o: Option<u64>| o.map_or(-1, |o| o as i64);
    gauge(e, "kafka_controller_kafkacontroller_activecontrollercount", "1 on the active controller (the quorum's leader), else 0.", &one(q.active as i64))?;
    gauge(e, "kafka_controller_kafkacontroller_activebrokercount", "Registered brokers that are not fenced, in the applied metadata.", &one(q.brokers_active as i64))?;
    gauge(e, "kafka_controller_kafkacontroller_fencedbrokercount", "Registered brokers that are fenced, in the applied metadata.", &one(q.brokers_fenced as i64))?;
    gauge(e, "kafka_controller_kafkacontroller_globaltopiccount", "Topics in the applied metadata.", &one(q.topics as i64))?;
    gauge(e, "kafka_controller_kafkacontroller_globalpartitioncount", "Partitions in the applied metadata.", &one(q.partitions as i64))?;
    gauge(e, "kafka_controller_kafkacontroller_globalofflinepartitioncount", "Partitions without a leader in the applied metadata.", &one(q.offline_partitions as i64))?;
    gauge(e, "kafka_controller_kafkacontroller_lastappliedrecordoffset", "Index of the last metadata log entry applied here (-1: none).", &one(offset(q.last_applied_offset)))?;
    gauge(e, "kafka_controller_kafkacontroller_lastcommittedrecordoffset", "Index of the last metadata log entry known committed (-1: none).", &one(offset(q.committed_offset)))?;
    gauge(e, "kafka_server_raftmetrics_current_leader", "The quorum's leader as this voter knows it (-1: none known).", &one(q.leader_id.map_or(-1, |l| l as i64)))?;
    gauge(e, "kafka_server_raftmetrics_current_epoch", "The quorum's current epoch (Raft term).", &one(q.epoch as i64))?;
    gauge(e, "kafka_server_raftmetrics_high_watermark", "The metadata log's high watermark: the index after its last committed entry.", &one(q.high_watermark as i64))?;
    gauge(e, "kafka_server_raftmetrics_log_end_offset", "Index of the last entry in this voter's metadata log (-1: empty).", &one(offset(q.log_end_offset)))?;
    Ok(())
}

/// The process, under the Prometheus client libraries' standard names.
fn encode_process(e: &mut DescriptorEncoder, p: &ProcessStats) -> Result<(), std::fmt::Error> {
    family(e, "process_cpu_seconds", "User and system CPU time spent, in seconds.", MetricType::Counter, &[(Vec::new(), p.cpu_seconds)], Sample::CounterF)?;
    gauge(e, "process_resident_memory_bytes", "Resident memory size in bytes.", &[(Vec::new(), p.resident_memory_bytes as i64)])?;
    gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes.", &[(Vec::new(), p.virtual_memory_bytes as i64)])?;
    gauge(e, "process_open_fds", "Open file descriptors.", &[(Vec::new(), p.open_fds as i64)])?;
    family(e, "process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", MetricType::Gauge, &[(Vec::new(), p.start_time_seconds)], Sample::GaugeF)?;
    Ok(())
}

#[derive(Debug)]
struct Scrape {
    metrics: Arc<BrokerMetrics>,
    snapshot: Snapshot,
}

type Labels = Vec<(&'static str, String)>;

/// One family's samples: labels and value.
fn family<V: Copy>(encoder: &mut DescriptorEncoder, name: &str, help: &str, kind: MetricType, samples: &[(Labels, V)], one: impl Fn(V) -> Sample) -> Result<(), std::fmt::Error> {
    let mut e = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        let fam = e.encode_family(labels)?;
        match one(*v) {
            Sample::Counter(c) => ConstCounter::new(c).encode(fam)?,
            Sample::Gauge(g) => ConstGauge::new(g).encode(fam)?,
            Sample::GaugeF(g) => ConstGauge::new(g).encode(fam)?,
            Sample::CounterF(c) => ConstCounter::new(c).encode(fam)?,
        }
    }
    Ok(())
}

enum Sample {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, samples: &[(Labels, u64)]) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, MetricType::Counter, samples, Sample::Counter)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, samples: &[(Labels, i64)]) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, MetricType::Gauge, samples, Sample::Gauge)
}

fn tp(topic: &str, partition: i32) -> Labels {
    vec![("topic", topic.to_string()), ("partition", partition.to_string())]
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let m = &self.metrics;
        let s = &self.snapshot;

        // BrokerTopicMetrics: per topic, and the all-topics series without a topic label.
        let topics = m.topics_sorted();
        type Pick = fn(&super::TopicCounters) -> &std::sync::atomic::AtomicU64;
        let per_topic: [(&str, &str, Pick); 7] = [
            ("kafka_server_brokertopicmetrics_bytesin", "Bytes appended by produce requests.", |c| &c.bytes_in),
            ("kafka_server_brokertopicmetrics_bytesout", "Record bytes returned to consumer fetches.", |c| &c.bytes_out),
            ("kafka_server_brokertopicmetrics_messagesin", "Records appended by produce requests.", |c| &c.messages_in),
            ("kafka_server_brokertopicmetrics_totalproducerequests", "Produce requests per topic (one per topic in a request).", |c| &c.produce_requests),
            ("kafka_server_brokertopicmetrics_totalfetchrequests", "Fetch requests per topic (one per topic in a request).", |c| &c.fetch_requests),
            ("kafka_server_brokertopicmetrics_failedproducerequests", "Produce requests of a topic that failed on some partition.", |c| &c.failed_produce_requests),
            ("kafka_server_brokertopicmetrics_failedfetchrequests", "Fetch requests of a topic that failed on some partition.", |c| &c.failed_fetch_requests),
        ];
        for (name, help, pick) in per_topic {
            let mut samples: Vec<(Labels, u64)> = Vec::with_capacity(topics.len() + 1);
            let mut all = 0u64;
            for (t, c) in &topics {
                let v = pick(c).load(Ordering::Relaxed);
                all += v;
                samples.push((vec![("topic", t.clone())], v));
            }
            samples.insert(0, (Vec::new(), all));
            counter(e, name, help, &samples)?;
        }
        counter(e, "kafka_server_brokertopicmetrics_replicationbytesout", "Record bytes returned to follower fetches.", &[(Vec::new(), m.replication_bytes_out.load(Ordering::Relaxed))])?;
        // Kafka's replication quota sensors (type=LeaderReplication / FollowerReplication, name=byte-rate).
        let [leader_rate, follower_rate] = s.replication_byte_rates;
        family(e, "kafka_server_leaderreplication_byte_rate", "Bytes a second sent to followers of leader-throttled replicas (leader.replication.throttled.replicas).", MetricType::Gauge, &[(Vec::new(), leader_rate)], Sample::GaugeF)?;
        family(e, "kafka_server_followerreplication_byte_rate", "Bytes a second fetched for follower-throttled replicas (follower.replication.throttled.replicas).", MetricType::Gauge, &[(Vec::new(), follower_rate)], Sample::GaugeF)?;

        // RequestMetrics per request kind.
        let mut requests: Vec<(Labels, u64)> = Vec::new();
        let mut errors: Vec<(Labels, u64)> = Vec::new();
        let mut times = Vec::new();
        for (i, slot) in m.requests.iter().enumerate() {
            let count = slot.requests.load(Ordering::Relaxed);
            let errs: Vec<(usize, u64)> = (0..ERROR_CODES_MAX).map(|c| (c, slot.errors[c].load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect();
            if count == 0 && errs.is_empty() {
                continue;
            }
            let Some(name) = request_name(i) else { continue };
            requests.push((vec![("request", name.clone())], count));
            for (c, n) in errs {
                errors.push((vec![("request", name.clone()), ("error", error_name(c as i16 - 1))], n));
            }
            times.push((name, slot.total_time.read_ms()));
        }
        counter(e, "kafka_network_requestmetrics_requests", "Requests handled, by Kafka's request name.", &requests)?;
        counter(e, "kafka_network_requestmetrics_errors", "Error codes in responses (NONE included), by request and error.", &errors)?;
        {
            let mut h = e.encode_descriptor("kafka_network_requestmetrics_totaltimems", "Time from a request read to its response ready, in ms.", None, MetricType::Histogram)?;
            for (name, (sum, count, buckets)) in &times {
                let labels: Labels = vec![("request", name.clone())];
                h.encode_family(&labels)?.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
            }
        }

        // Connections.
        let conns: Vec<(Labels, i64)> = m.connections.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(l, c)| (vec![("listener", l.clone())], c.load(Ordering::Relaxed))).collect();
        gauge(e, "kafka_server_socketservermetrics_connection_count", "Open client connections, by listener.", &conns)?;
        let created: Vec<(Labels, u64)> = m.connections_created.read().unwrap_or_else(|p| p.into_inner()).iter().map(|(l, c)| (vec![("listener", l.clone())], c.load(Ordering::Relaxed))).collect();
        counter(e, "kafka_server_socketservermetrics_connection_creation", "Connections served since startup, by listener.", &created)?;

        // Logs and partitions.
        let mut size = Vec::new();
        let mut end = Vec::new();
        let mut start = Vec::new();
        let mut hw = Vec::new();
        let mut under = Vec::new();
        let (mut under_n, mut offline_n) = (0i64, 0i64);
        for p in &s.partitions {
            size.push((tp(&p.topic, p.partition), p.size_bytes as i64));
            end.push((tp(&p.topic, p.partition), p.log_end_offset));
            start.push((tp(&p.topic, p.partition), p.log_start_offset));
            hw.push((tp(&p.topic, p.partition), p.high_watermark));
            under.push((tp(&p.topic, p.partition), p.under_replicated as i64));
            under_n += p.under_replicated as i64;
            offline_n += p.offline as i64;
        }
        gauge(e, "kafka_log_log_size", "Bytes of a partition's log segments.", &size)?;
        gauge(e, "kafka_log_log_logendoffset", "A partition's log end offset.", &end)?;
        gauge(e, "kafka_log_log_logstartoffset", "A partition's log start offset.", &start)?;
        gauge(e, "fjord_log_high_watermark", "A partition's high watermark (what consumers may read up to).", &hw)?;
        gauge(e, "kafka_cluster_partition_underreplicated", "1 when a partition led here has fewer in-sync replicas than replicas.", &under)?;
        gauge(e, "kafka_server_replicamanager_partitioncount", "Partitions with a replica here.", &[(Vec::new(), s.partitions.len() as i64)])?;
        gauge(e, "kafka_server_replicamanager_underreplicatedpartitions", "Partitions led here with fewer in-sync replicas than replicas.", &[(Vec::new(), under_n)])?;
        gauge(e, "kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions with a replica here that have no leader or whose log dir is offline.", &[(Vec::new(), offline_n)])?;

        // Groups: Kafka's per-state counts of classic groups, every group by state and type,
        // and the lag of each committed partition.
        let mut by_state: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for g in &s.groups {
            *by_state.entry((g.state, g.group_type)).or_default() += 1;
        }
        gauge(e, "kafka_coordinator_group_groupmetadatamanager_numgroups", "Groups this coordinator holds.", &[(Vec::new(), s.groups.len() as i64)])?;
        for state in CLASSIC_GROUP_STATES {
            let n = by_state.get(&(state, "classic")).copied().unwrap_or(0);
            let name = format!("kafka_coordinator_group_groupmetadatamanager_numgroups{}", state.to_ascii_lowercase());
            gauge(e, &name, &format!("Classic groups in state {state}."), &[(Vec::new(), n)])?;
        }
        let states: Vec<(Labels, i64)> = by_state.iter().map(|((st, ty), n)| (vec![("state", st.to_string()), ("type", ty.to_string())], *n)).collect();
        gauge(e, "fjord_group_count", "Groups by state and type (classic or consumer).", &states)?;
        let bounds: HashMap<(&str, i32), i64> = s.partitions.iter().map(|p| ((p.topic.as_str(), p.partition), p.high_watermark)).collect();
        let mut current = Vec::new();
        let mut lag = Vec::new();
        let mut lag_sum: BTreeMap<&str, i64> = BTreeMap::new();
        for g in &s.groups {
            for (t, p, offset) in &g.committed {
                let labels: Labels = vec![("consumergroup", g.group_id.clone()), ("topic", t.clone()), ("partition", p.to_string())];
                current.push((labels.clone(), *offset));
                // Only partitions with a log here: elsewhere another broker knows the bound.
                if let Some(hw) = bounds.get(&(t.as_str(), *p)) {
                    let l = (hw - offset).max(0);
                    lag.push((labels, l));
                    *lag_sum.entry(g.group_id.as_str()).or_default() += l;
                }
            }
        }
        gauge(e, "kafka_consumergroup_current_offset", "A group's committed offset of a partition.", &current)?;
        gauge(e, "kafka_consumergroup_lag", "High watermark minus the group's committed offset (0 when ahead), per partition with a log here.", &lag)?;
        let sums: Vec<(Labels, i64)> = lag_sum.into_iter().map(|(g, l)| (vec![("consumergroup", g.to_string())], l)).collect();
        gauge(e, "kafka_consumergroup_lag_sum", "A group's lag summed over its partitions with a log here.", &sums)?;

        // Fjord's own: fdatasync time, the io_uring backend's batching and group commit.
        {
            let (sum, count, buckets) = super::FSYNC_TIME.read_ms();
            let mut h = e.encode_descriptor("fjord_fsync_time_ms", "Time of each fdatasync of a segment or index file, in ms (with io_uring, its queueing included).", None, MetricType::Histogram)?;
            let none: Labels = Vec::new();
            h.encode_family(&none)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        {
            use std::sync::atomic::Ordering::Relaxed;
            let (cached, hinted, dropped) = (super::READAHEAD_CACHED.load(Relaxed), super::READAHEAD_HINTED.load(Relaxed), super::READAHEAD_DROPPED.load(Relaxed));
            counter(e, "fjord_fetch_readahead_cached", "Fetch read-ahead windows already in the page cache (hits): no hint needed.", &[(Vec::new(), cached)])?;
            counter(e, "fjord_fetch_readahead_hinted", "Fetch read-ahead windows not in the page cache, asked of the kernel (POSIX_FADV_WILLNEED).", &[(Vec::new(), hinted)])?;
            counter(e, "fjord_fetch_readahead_dropped", "Fetch read-ahead windows not asked for because enough hints were in flight.", &[(Vec::new(), dropped)])?;
        }
        if let Some(u) = s.uring {
            counter(e, "fjord_uring_submission_rounds", "io_uring submission rounds (one submit-and-wait each).", &[(Vec::new(), u.rounds)])?;
            counter(e, "fjord_uring_completions", "io_uring requests completed.", &[(Vec::new(), u.ops)])?;
            counter(e, "fjord_uring_fsync_requests", "fdatasync requests made to the io_uring backend.", &[(Vec::new(), u.fsync_requests)])?;
            counter(e, "fjord_uring_fsyncs_issued", "fdatasyncs the kernel ran.", &[(Vec::new(), u.fsyncs_issued)])?;
            counter(e, "fjord_uring_fsyncs_coalesced", "fdatasync requests served by another's fdatasync (group commit).", &[(Vec::new(), u.fsyncs_coalesced)])?;
            gauge(e, "fjord_uring_queue_depth", "io_uring requests made and not yet completed: waiting for the storage thread or in the kernel.", &[(Vec::new(), u.requests.saturating_sub(u.ops) as i64)])?;
            gauge(e, "fjord_uring_in_flight", "io_uring operations in the kernel (submitted, not yet reaped).", &[(Vec::new(), u.in_flight as i64)])?;
            let (sum, count, buckets) = super::URING_COMPLETION_TIME.read_ms();
            let mut h = e.encode_descriptor("fjord_uring_completion_time_ms", "Time of each io_uring operation from its entry into the ring to its completion, in ms.", None, MetricType::Histogram)?;
            let none: Labels = Vec::new();
            h.encode_family(&none)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }

        // What clients pushed (KIP-714), under their own metric names: the latest value of each.
        for (name, samples) in &s.client_telemetry {
            let mut f = e.encode_descriptor(name, "The latest value client instances pushed (KIP-714 client telemetry).", None, MetricType::Gauge)?;
            for (labels, v) in samples {
                ConstGauge::new(*v).encode(f.encode_family(labels)?)?;
            }
        }

        if let Some(q) = &s.quorum {
            encode_quorum(e, q)?;
        }
        encode_process(e, &s.process)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RequestKind;
    use std::time::Duration;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
    }

    #[test]
    fn a_scrape_renders_counters_partitions_and_lag() {
        let m = Arc::new(BrokerMetrics::new());
        m.topic("orders").bytes_in.fetch_add(100, Ordering::Relaxed);
        m.topic("orders").messages_in.fetch_add(4, Ordering::Relaxed);
        m.topic("audit").bytes_in.fetch_add(10, Ordering::Relaxed);
        m.record_request(RequestKind::Api(0), Duration::from_millis(2));
        m.record_error(RequestKind::Api(0), 0);
        let snapshot = Snapshot {
            partitions: vec![PartitionView { topic: "orders".into(), partition: 0, size_bytes: 500, log_start_offset: 0, log_end_offset: 10, high_watermark: 10, under_replicated: false, offline: false }],
            groups: vec![
                GroupView { group_id: "g \"1\"".into(), state: "Empty", group_type: "classic", committed: vec![("orders".into(), 0, 7), ("elsewhere".into(), 0, 3)] },
                GroupView { group_id: "g2".into(), state: "Stable", group_type: "consumer", committed: vec![("orders".into(), 0, 12)] },
            ],
            uring: None,
            process: ProcessStats::default(),
            quorum: None,
            client_telemetry: BTreeMap::from([(
                "org_apache_kafka_producer_record_send_rate".to_string(),
                vec![(vec![("client_instance_id".to_string(), "AAAAAAAAAAAAAAAAAAAAAA".to_string()), ("client_id".to_string(), "p-1".to_string())], 2.5)],
            )]),
            replication_byte_rates: [2_000_000.0, 0.0],
        };
        let text = render(m, snapshot);
        assert_eq!(value(&text, "kafka_server_leaderreplication_byte_rate"), Some(2_000_000.0), "{text}");
        assert_eq!(value(&text, "kafka_server_followerreplication_byte_rate"), Some(0.0));
        assert_eq!(value(&text, r#"org_apache_kafka_producer_record_send_rate{client_instance_id="AAAAAAAAAAAAAAAAAAAAAA",client_id="p-1"}"#), Some(2.5));
        assert_eq!(value(&text, "kafka_server_brokertopicmetrics_bytesin_total"), Some(110.0), "{text}");
        assert_eq!(value(&text, "kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"}"), Some(100.0));
        assert_eq!(value(&text, "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"}"), Some(4.0));
        assert_eq!(value(&text, "kafka_network_requestmetrics_requests_total{request=\"Produce\"}"), Some(1.0));
        assert_eq!(value(&text, "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NONE\"}"), Some(1.0));
        assert_eq!(value(&text, "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"2.5\"}"), Some(1.0), "{text}");
        assert_eq!(value(&text, "kafka_log_log_logendoffset{topic=\"orders\",partition=\"0\"}"), Some(10.0));
        assert_eq!(value(&text, "kafka_consumergroup_lag{consumergroup=\"g \\\"1\\\"\",topic=\"orders\",partition=\"0\"}"), Some(3.0), "{text}");
        assert_eq!(value(&text, "kafka_consumergroup_lag{consumergroup=\"g2\",topic=\"orders\",partition=\"0\"}"), Some(0.0), "ahead of the high watermark: 0");
        assert!(!text.contains("consumergroup_lag{consumergroup=\"g \\\"1\\\"\",topic=\"elsewhere\""), "no lag without a log here");
        assert_eq!(value(&text, "kafka_coordinator_group_groupmetadatamanager_numgroupsempty"), Some(1.0));
        assert_eq!(value(&text, "kafka_coordinator_group_groupmetadatamanager_numgroups"), Some(2.0));
        assert_eq!(value(&text, "kafka_server_replicamanager_underreplicatedpartitions"), Some(0.0));
        assert!(text.contains("# TYPE kafka_network_requestmetrics_totaltimems histogram"));
        assert!(text.contains("# TYPE fjord_fsync_time_ms histogram"));
        assert!(!text.contains("fjord_uring_"), "no io_uring series without that backend");
        assert!(value(&text, "fjord_fetch_readahead_cached_total").is_some(), "a process-wide counter, always rendered: {text}");
    }

    #[test]
    fn the_uring_backend_reports_its_queue_depth_in_flight_and_completion_time() {
        let uring = crate::storage::io::uring::UringCounts { requests: 12, in_flight: 2, rounds: 5, ops: 9, fsync_requests: 3, fsyncs_issued: 2, fsyncs_coalesced: 1 };
        let text = render(Arc::new(BrokerMetrics::new()), Snapshot { uring: Some(uring), ..Snapshot::default() });
        assert_eq!(value(&text, "fjord_uring_queue_depth"), Some(3.0), "12 made, 9 completed: {text}");
        assert_eq!(value(&text, "fjord_uring_in_flight"), Some(2.0));
        assert_eq!(value(&text, "fjord_uring_fsyncs_coalesced_total"), Some(1.0));
        assert!(text.contains("# TYPE fjord_uring_completion_time_ms histogram"));
    }
}
