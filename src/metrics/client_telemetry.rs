//! The built-in KIP-714 telemetry receiver (`fjord.client.telemetry.enabled`): a pushed payload
//! (OTLP `MetricsData`, protobuf, maybe compressed) decoded to its gauge and sum points, the
//! latest per client instance kept (bounded, forgotten when the instance stops pushing), and
//! rendered as Prometheus series on `/metrics`. It neither checks the push (that is
//! `broker::client_telemetry`) nor reads the network.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prost::Message;
use uuid::Uuid;

use crate::records::batch::CompressionCodec;
use crate::records::walk::with_decompressed;

/// The part of opentelemetry-proto's `metrics/v1` and `common/v1` schema the receiver reads
/// (gauges and sums of numbers, string-like attributes), with the schema's field numbers; prost
/// skips every other field (histograms, exemplars, resource attributes).
pub mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricsData {
        #[prost(message, repeated, tag = "1")]
        pub resource_metrics: Vec<ResourceMetrics>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceMetrics {
        #[prost(message, repeated, tag = "2")]
        pub scope_metrics: Vec<ScopeMetrics>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeMetrics {
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(oneof = "Data", tags = "5, 7")]
        pub data: Option<Data>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "5")]
        Gauge(Gauge),
        #[prost(message, tag = "7")]
        Sum(Sum),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sum {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
        #[prost(int32, tag = "2")]
        pub aggregation_temporality: i32,
        #[prost(bool, tag = "3")]
        pub is_monotonic: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NumberDataPoint {
        #[prost(message, repeated, tag = "7")]
        pub attributes: Vec<KeyValue>,
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        #[prost(oneof = "Value", tags = "4, 6")]
        pub value: Option<Value>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(double, tag = "4")]
        AsDouble(f64),
        #[prost(sfixed64, tag = "6")]
        AsInt(i64),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "Any", tags = "1, 2, 3, 4")]
        pub value: Option<Any>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Any {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
    }
}

/// One pushed value: the metric, its attributes (sorted) and the number.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub value: f64,
}

/// Why a pushed payload was not read; Kafka answers a receiver's failure with INVALID_RECORD.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiveError {
    #[error("decompressing the telemetry payload: {0}")]
    Decompress(String),
    #[error("the decompressed telemetry payload is larger than {0} bytes")]
    TooLarge(usize),
    #[error("decoding the OTLP MetricsData: {0}")]
    Decode(String),
}

/// The payload decompressed (at most `max_bytes` of output read) and decoded to its points.
pub fn decode(compression_type: i8, payload: &[u8], max_bytes: usize) -> Result<Vec<Point>, ReceiveError> {
    let codec = CompressionCodec::from_id(compression_type.max(0) as u8);
    let raw = with_decompressed(codec, payload, |r| {
        let mut out = Vec::new();
        // One byte past the limit tells a payload at the limit from a larger one.
        r.take(max_bytes as u64 + 1).read_to_end(&mut out).map(|_| out)
    })
    .map_err(|e| ReceiveError::Decompress(format!("{e:?}")))?
    .map_err(|e| ReceiveError::Decompress(e.to_string()))?;
    if raw.len() > max_bytes {
        return Err(ReceiveError::TooLarge(max_bytes));
    }
    let data = otlp::MetricsData::decode(raw.as_slice()).map_err(|e| ReceiveError::Decode(e.to_string()))?;
    let mut points = Vec::new();
    for metric in data.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics) {
        let data_points = match &metric.data {
            Some(otlp::Data::Gauge(g)) => &g.data_points,
            Some(otlp::Data::Sum(s)) => &s.data_points,
            None => continue,
        };
        for p in data_points {
            let value = match p.value {
                Some(otlp::Value::AsDouble(v)) => v,
                Some(otlp::Value::AsInt(v)) => v as f64,
                None => continue,
            };
            let mut attributes: Vec<(String, String)> = p.attributes.iter().map(|kv| (kv.key.clone(), any_text(kv.value.as_ref()))).collect();
            attributes.sort();
            points.push(Point { name: metric.name.clone(), attributes, value });
        }
    }
    Ok(points)
}

fn any_text(v: Option<&otlp::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(otlp::Any::StringValue(s)) => s.clone(),
        Some(otlp::Any::BoolValue(b)) => b.to_string(),
        Some(otlp::Any::IntValue(i)) => i.to_string(),
        Some(otlp::Any::DoubleValue(d)) => d.to_string(),
        None => String::new(),
    }
}

/// A metric or label name as Prometheus allows it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn prometheus_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

struct Pushed {
    client_id: String,
    points: Vec<Point>,
    last_push: Instant,
    keep_for: Duration,
}

/// The latest points pushed by each client instance.
pub struct TelemetryReceiver {
    instances_max: usize,
    latest: Mutex<HashMap<Uuid, Pushed>>,
}

/// The series of `/metrics` by family name: each its labels and value.
pub type Families = BTreeMap<String, Vec<(Vec<(String, String)>, f64)>>;

impl TelemetryReceiver {
    pub fn new(instances_max: usize) -> TelemetryReceiver {
        TelemetryReceiver { instances_max: instances_max.max(1), latest: Mutex::new(HashMap::new()) }
    }

    /// Keeps `points` as the latest of `instance`; they are dropped after `keep_for` without
    /// another push. A new instance past the bound replaces the one that pushed least recently.
    pub fn record(&self, instance: Uuid, client_id: &str, points: Vec<Point>, keep_for: Duration) {
        let now = Instant::now();
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if !latest.contains_key(&instance) && latest.len() >= self.instances_max {
            latest.retain(|_, p| now.duration_since(p.last_push) < p.keep_for);
            while latest.len() >= self.instances_max {
                let Some(oldest) = latest.iter().min_by_key(|(_, p)| p.last_push).map(|(id, _)| *id) else { break };
                latest.remove(&oldest);
            }
        }
        latest.insert(instance, Pushed { client_id: client_id.to_string(), points, last_push: now, keep_for });
    }

    /// Drops what `instance` pushed (its connection closed).
    pub fn forget(&self, instance: Uuid) {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).remove(&instance);
    }

    /// Every kept point of the instances still pushing, as Prometheus series labelled with
    /// the client instance id and client id, sorted by family.
    pub fn series(&self) -> Families {
        let now = Instant::now();
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.retain(|_, p| now.duration_since(p.last_push) < p.keep_for);
        let mut families = Families::new();
        for (id, pushed) in latest.iter() {
            for p in &pushed.points {
                let mut labels = vec![("client_instance_id".to_string(), crate::broker::client_telemetry::java_uuid(*id)), ("client_id".to_string(), pushed.client_id.clone())];
                for (k, v) in &p.attributes {
                    let k = prometheus_name(k);
                    if !labels.iter().any(|(l, _)| *l == k) {
                        labels.push((k, v.clone()));
                    }
                }
                families.entry(prometheus_name(&p.name)).or_default().push((labels, p.value));
            }
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn kv(k: &str, v: &str) -> otlp::KeyValue {
        otlp::KeyValue { key: k.into(), value: Some(otlp::AnyValue { value: Some(otlp::Any::StringValue(v.into())) }) }
    }

    fn payload() -> Vec<u8> {
        let point = |v: otlp::Value, attrs: Vec<otlp::KeyValue>| otlp::NumberDataPoint { attributes: attrs, time_unix_nano: 1, value: Some(v) };
        let metrics = vec![
            otlp::Metric {
                name: "org.apache.kafka.producer.record.send.rate".into(),
                data: Some(otlp::Data::Gauge(otlp::Gauge { data_points: vec![point(otlp::Value::AsDouble(2.5), vec![kv("topic", "t"), kv("client_id", "spoof")])] })),
            },
            otlp::Metric {
                name: "org.apache.kafka.producer.record.send.total".into(),
                data: Some(otlp::Data::Sum(otlp::Sum { data_points: vec![point(otlp::Value::AsInt(42), vec![])], aggregation_temporality: 2, is_monotonic: true })),
            },
            otlp::Metric { name: "no.data".into(), data: None },
        ];
        let data = otlp::MetricsData { resource_metrics: vec![otlp::ResourceMetrics { scope_metrics: vec![otlp::ScopeMetrics { metrics }] }] };
        data.encode_to_vec()
    }

    #[test]
    fn gauges_and_sums_are_read_with_their_attributes() {
        let points = decode(0, &payload(), 1 << 20).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].name, "org.apache.kafka.producer.record.send.rate");
        assert_eq!(points[0].attributes, vec![("client_id".to_string(), "spoof".to_string()), ("topic".to_string(), "t".to_string())]);
        assert_eq!(points[0].value, 2.5);
        assert_eq!(points[1].value, 42.0);
    }

    #[test]
    fn compressed_payloads_are_read_and_bounded() {
        let raw = payload();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode(1, &gz, 1 << 20).unwrap().len(), 2);
        let zstd = zstd::encode_all(raw.as_slice(), 3).unwrap();
        assert_eq!(decode(4, &zstd, raw.len()).unwrap().len(), 2, "a payload at the limit is read");
        assert_eq!(decode(4, &zstd, raw.len() - 1), Err(ReceiveError::TooLarge(raw.len() - 1)));
        // A bomb: 64 MiB of zeros in a few KiB, stopped at the limit.
        let bomb = zstd::encode_all(std::io::repeat(0).take(64 << 20), 19).unwrap();
        assert_eq!(decode(4, &bomb, 1 << 20), Err(ReceiveError::TooLarge(1 << 20)));
        assert!(matches!(decode(1, b"not gzip", 1 << 20), Err(ReceiveError::Decompress(_))));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(matches!(decode(0, &[0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20), Err(ReceiveError::Decode(_))));
        assert_eq!(decode(0, b"", 1 << 20), Ok(Vec::new()));
    }

    #[test]
    fn series_carry_the_instance_and_client_and_expire() {
        let r = TelemetryReceiver::new(2);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let points = decode(0, &payload(), 1 << 20).unwrap();
        r.record(a, "producer-1", points.clone(), Duration::from_secs(60));
        let s = r.series();
        let rate = &s["org_apache_kafka_producer_record_send_rate"];
        assert_eq!(rate.len(), 1);
        let labels = &rate[0].0;
        assert_eq!(labels[0], ("client_instance_id".to_string(), crate::broker::client_telemetry::java_uuid(a)));
        assert_eq!(labels[1], ("client_id".to_string(), "producer-1".to_string()), "the connection's client id, not an attribute's");
        assert_eq!(labels.len(), 3);
        // Bounded: a third instance replaces the least recent.
        r.record(b, "p2", points.clone(), Duration::from_secs(60));
        r.record(c, "p3", points.clone(), Duration::from_secs(60));
        assert_eq!(r.series()["org_apache_kafka_producer_record_send_total"].len(), 2);
        // An instance that stops pushing goes.
        r.record(a, "p1", points, Duration::ZERO);
        assert_eq!(r.series()["org_apache_kafka_producer_record_send_total"].len(), 1);
    }

    #[test]
    fn names_are_made_prometheus_safe() {
        assert_eq!(prometheus_name("org.apache.kafka.producer.record-send-rate"), "org_apache_kafka_producer_record_send_rate");
        assert_eq!(prometheus_name("1x"), "_1x");
        assert_eq!(prometheus_name(""), "_");
    }
}
