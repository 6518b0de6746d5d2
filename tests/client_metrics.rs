//! KIP-714 client metrics subscriptions on the wire, on 127.0.0.1:0: the CLIENT_METRICS config
//! resource through IncrementalAlterConfigs, AlterConfigs and DescribeConfigs with Kafka 4.0's
//! validation errors, ListClientMetricsResources, a restart keeping them; GetTelemetrySubscriptions
//! and PushTelemetry answered as Kafka 4.0 answers them (checked against it), advertised only with
//! the receiver on (Kafka 4.0 advertises them only with a telemetry receiver configured).

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const CLIENT_METRICS: i8 = 16;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn alter(c: &mut Client, name: &str, ops: &[(i8, &str, Option<&str>)], validate_only: bool) -> (i16, Option<String>) {
    let configs = ops
        .iter()
        .map(|(op, k, v)| incremental_alter_configs_request::AlterableConfig::default().with_name(s(k)).with_config_operation(*op).with_value(v.map(s)))
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default().with_resource_type(CLIENT_METRICS).with_resource_name(s(name)).with_configs(configs),
    ]);
    let r = c.send(&req, 1).await;
    (r.responses[0].error_code, r.responses[0].error_message.as_ref().map(|m| m.to_string()))
}

async fn describe(c: &mut Client, name: &str) -> (i16, BTreeMap<String, String>) {
    let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(s(name))
        .with_configuration_keys(None)]);
    let r = c.send(&req, 4).await;
    let result = &r.results[0];
    for d in &result.configs {
        assert_eq!(d.config_source, 7, "{} is a CLIENT_METRICS_CONFIG", d.name);
        assert!(d.synonyms.is_empty() && !d.read_only && !d.is_sensitive);
    }
    (result.error_code, result.configs.iter().map(|d| (d.name.to_string(), d.value.as_ref().unwrap().to_string())).collect())
}

async fn list(c: &mut Client) -> Vec<String> {
    let r = c.send(&ListConfigResourcesRequest::default(), 0).await;
    assert_eq!(r.error_code, 0);
    r.config_resources.iter().map(|r| r.resource_name.to_string()).collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn subscriptions_are_altered_described_listed_deleted_and_survive_a_restart() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert!(list(&mut c).await.is_empty());
    let set = [(OP_SET, "metrics", Some("org.apache.kafka.producer.")), (OP_SET, "interval.ms", Some("1000")), (OP_SET, "match", Some("client_software_name=apache-kafka-java"))];
    assert_eq!(alter(&mut c, "m1", &set, true).await, (0, None));
    assert!(list(&mut c).await.is_empty(), "validate_only changes nothing");
    assert_eq!(alter(&mut c, "m1", &set, false).await, (0, None));
    let m1 = map(&[("interval.ms", "1000"), ("match", "client_software_name=apache-kafka-java"), ("metrics", "org.apache.kafka.producer.")]);
    assert_eq!(describe(&mut c, "m1").await, (0, m1.clone()));
    assert_eq!(alter(&mut c, "m1", &[(OP_APPEND, "metrics", Some("org.apache.kafka.consumer."))], false).await, (0, None));
    assert_eq!(describe(&mut c, "m1").await.1["metrics"], "org.apache.kafka.producer.,org.apache.kafka.consumer.");
    // A name with no configs is no subscription: described empty, without an error, and not listed.
    assert_eq!(describe(&mut c, "nope").await, (0, BTreeMap::new()));
    assert_eq!(alter(&mut c, "m3", &[], false).await, (0, None));
    assert_eq!(list(&mut c).await, vec!["m1"]);

    // AlterConfigs replaces the whole set.
    let req = AlterConfigsRequest::default().with_resources(vec![alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(CLIENT_METRICS)
        .with_resource_name(s("m2"))
        .with_configs(vec![alter_configs_request::AlterableConfig::default().with_name(s("interval.ms")).with_value(Some(s("500")))])]);
    assert_eq!(c.send(&req, 2).await.responses[0].error_code, 0);
    assert_eq!(list(&mut c).await, vec!["m1", "m2"]);

    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(list(&mut c).await, vec!["m1", "m2"]);
    assert_eq!(describe(&mut c, "m2").await, (0, map(&[("interval.ms", "500")])));
    // Deleting every config deletes the subscription (what kafka-client-metrics.sh --delete does).
    let all = [(OP_DELETE, "metrics", None), (OP_DELETE, "interval.ms", None), (OP_DELETE, "match", None)];
    assert_eq!(alter(&mut c, "m1", &all, false).await, (0, None));
    assert_eq!(list(&mut c).await, vec!["m2"]);
    assert_eq!(describe(&mut c, "m1").await, (0, BTreeMap::new()));
    b.stop().await;
}

#[tokio::test]
async fn invalid_subscriptions_are_refused_with_kafkas_errors() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let refused = |code: E, msg: &str| (code.code(), Some(msg.to_string()));
    assert_eq!(
        alter(&mut c, "m", &[(OP_SET, "interval.ms", Some("10"))], false).await,
        refused(E::InvalidRequest, "Invalid value 10 for interval.ms, interval must be between 100 and 3600000 (1 hour)")
    );
    assert_eq!(
        alter(&mut c, "m", &[(OP_SET, "interval.ms", Some("abc"))], false).await,
        refused(E::InvalidConfig, "Invalid value abc for configuration interval.ms: Not a number of type INT")
    );
    assert_eq!(alter(&mut c, "m", &[(OP_SET, "foo", Some("1"))], false).await, refused(E::InvalidRequest, "Unknown client metrics configuration: foo"));
    assert_eq!(alter(&mut c, "m", &[(OP_SET, "match", Some("foo=bar"))], false).await, refused(E::InvalidConfig, "Illegal client matching pattern: foo=bar"));
    assert_eq!(alter(&mut c, "m", &[(OP_SET, "match", Some("client_id=["))], false).await, refused(E::InvalidConfig, "Illegal client matching pattern: client_id=["));
    assert_eq!(alter(&mut c, "m", &[(OP_SET, "match", Some("client_id=a,bogus"))], false).await, refused(E::InvalidConfig, "Illegal client matching pattern: bogus"));
    assert_eq!(alter(&mut c, "", &[(OP_SET, "interval.ms", Some("1000"))], false).await, refused(E::InvalidRequest, "Subscription name can't be empty"));
    assert_eq!(describe(&mut c, "").await.0, E::InvalidRequest.code());
    assert!(list(&mut c).await.is_empty(), "nothing refused was kept");
    b.stop().await;
}

#[tokio::test]
async fn list_client_metrics_resources_is_advertised_and_telemetry_only_with_the_receiver() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let r = c.send(&ApiVersionsRequest::default().with_client_software_name(s("t")).with_client_software_version(s("1")), 3).await;
    let key = |k: ApiKey| r.api_keys.iter().find(|v| v.api_key == k as i16).map(|v| (v.min_version, v.max_version));
    assert_eq!(key(ApiKey::ListConfigResources), Some((0, 0)));
    assert_eq!(key(ApiKey::GetTelemetrySubscriptions), None);
    assert_eq!(key(ApiKey::PushTelemetry), None);
    b.stop().await;
}

#[tokio::test]
async fn the_receiver_property_advertises_the_telemetry_apis() {
    let b = TestBroker::start(&["fjord.client.telemetry.enabled=true"]).await;
    let mut c = b.client().await;
    let r = c.send(&ApiVersionsRequest::default().with_client_software_name(s("t")).with_client_software_version(s("1")), 3).await;
    let key = |k: ApiKey| r.api_keys.iter().find(|v| v.api_key == k as i16).map(|v| (v.min_version, v.max_version));
    assert_eq!(key(ApiKey::GetTelemetrySubscriptions), Some((0, 0)));
    assert_eq!(key(ApiKey::PushTelemetry), Some((0, 0)));
    b.stop().await;
}

async fn get(c: &mut Client, id: Uuid) -> GetTelemetrySubscriptionsResponse {
    c.send(&GetTelemetrySubscriptionsRequest::default().with_client_instance_id(id), 0).await
}

async fn push(c: &mut Client, id: Uuid, sub: i32, terminating: bool, compression: i8, metrics: &[u8]) -> i16 {
    let req = PushTelemetryRequest::default()
        .with_client_instance_id(id)
        .with_subscription_id(sub)
        .with_terminating(terminating)
        .with_compression_type(compression)
        .with_metrics(bytes::Bytes::copy_from_slice(metrics));
    c.send(&req, 0).await.error_code
}

#[tokio::test]
async fn telemetry_is_answered_unadvertised_with_kafkas_checks() {
    // The same sequence as sent to Kafka 4.0 without a receiver, with the same answers.
    let b = TestBroker::start(&["telemetry.max.bytes=1000"]).await;
    let mut c = b.client().await;
    let first = get(&mut c, Uuid::nil()).await;
    assert_eq!(first.error_code, 0);
    assert!(!first.client_instance_id.is_nil());
    assert_eq!(first.accepted_compression_types, vec![4, 3, 1, 2]);
    assert_eq!(first.push_interval_ms, 300_000);
    assert_eq!(first.telemetry_max_bytes, 1000);
    assert!(first.delta_temporality);
    assert!(first.requested_metrics.is_empty());
    let id = first.client_instance_id;
    let again = get(&mut c, id).await;
    assert_eq!(again.error_code, E::ThrottlingQuotaExceeded.code());
    assert!(again.client_instance_id.is_nil(), "an error answer carries only the code");
    assert_eq!(push(&mut c, Uuid::nil(), 0, false, 0, b"").await, E::InvalidRequest.code());
    assert_eq!(push(&mut c, id, first.subscription_id.wrapping_add(1), false, 0, b"x").await, E::UnknownSubscriptionId.code());
    // The refused push above used up the push that may follow a Get.
    assert_eq!(push(&mut c, id, first.subscription_id, false, 0, b"x").await, E::ThrottlingQuotaExceeded.code());
    assert_eq!(push(&mut c, id, first.subscription_id, true, 0, b"x").await, 0, "a terminating push skips the interval");
    assert_eq!(push(&mut c, id, first.subscription_id, false, 0, b"x").await, E::InvalidRequest.code());

    let g = get(&mut c, Uuid::nil()).await;
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 9, b"x").await, E::UnsupportedCompressionType.code());
    let g = get(&mut c, Uuid::nil()).await;
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, &[0; 1001]).await, E::TelemetryTooLarge.code());
    let g = get(&mut c, Uuid::nil()).await;
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 4, &[0; 1000]).await, 0, "accepted and dropped without a receiver");
    assert_eq!(push(&mut c, Uuid::new_v4(), 5, false, 0, b"").await, E::UnknownSubscriptionId.code());
    assert_eq!(push(&mut c, Uuid::from_u128(1), 5, false, 0, b"").await, E::InvalidRequest.code());
    b.stop().await;
}

#[tokio::test]
async fn subscriptions_decide_the_metrics_and_interval_by_whole_value_match() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let both = [(OP_SET, "metrics", Some("org.apache.kafka.producer.,org.apache.kafka.consumer.")), (OP_SET, "interval.ms", Some("1000")), (OP_SET, "match", Some("client_id=wire.*"))];
    assert_eq!(alter(&mut c, "s1", &both, false).await, (0, None));
    // "wire" is not the whole client id "wire-test": no match.
    assert_eq!(alter(&mut c, "s2", &[(OP_SET, "metrics", Some("a.b")), (OP_SET, "interval.ms", Some("200")), (OP_SET, "match", Some("client_id=wire"))], false).await, (0, None));
    let sw = [(OP_SET, "metrics", Some("c.d")), (OP_SET, "match", Some("client_software_name=fjord-wire"))];
    assert_eq!(alter(&mut c, "s3", &sw, false).await, (0, None));
    let g = get(&mut c, Uuid::nil()).await;
    assert_eq!(g.error_code, 0);
    let metrics: Vec<String> = g.requested_metrics.iter().map(|m| m.to_string()).collect();
    assert_eq!(metrics, vec!["org.apache.kafka.consumer.", "org.apache.kafka.producer."]);
    assert_eq!(g.push_interval_ms, 1000);
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, b"m").await, 0);
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, b"m").await, E::ThrottlingQuotaExceeded.code());
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, b"m").await, 0);

    // The software name comes from the connection's ApiVersions.
    let mut c2 = b.client().await;
    c2.send(&ApiVersionsRequest::default().with_client_software_name(s("fjord-wire")).with_client_software_version(s("1")), 3).await;
    let g2 = get(&mut c2, Uuid::nil()).await;
    assert_eq!(g2.requested_metrics.len(), 3);

    // A change of subscriptions is seen at once, with a new subscription id.
    assert_eq!(alter(&mut c, "s1", &[(OP_SET, "interval.ms", Some("500"))], false).await, (0, None));
    let g3 = get(&mut c, g.client_instance_id).await;
    assert_eq!((g3.error_code, g3.push_interval_ms), (0, 500));
    assert_ne!(g3.subscription_id, g.subscription_id);
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, b"m").await, E::UnknownSubscriptionId.code());
    b.stop().await;
}

fn otlp_payload(value: f64) -> Vec<u8> {
    use fjord::metrics::client_telemetry::otlp;
    use prost::Message;
    let point = otlp::NumberDataPoint {
        attributes: vec![otlp::KeyValue { key: "node.id".into(), value: Some(otlp::AnyValue { value: Some(otlp::Any::StringValue("1".into())) }) }],
        time_unix_nano: 1,
        value: Some(otlp::Value::AsDouble(value)),
    };
    let metric = otlp::Metric { name: "org.apache.kafka.producer.node.request.latency.avg".into(), data: Some(otlp::Data::Gauge(otlp::Gauge { data_points: vec![point] })) };
    otlp::MetricsData { resource_metrics: vec![otlp::ResourceMetrics { scope_metrics: vec![otlp::ScopeMetrics { metrics: vec![metric] }] }] }.encode_to_vec()
}

#[tokio::test]
async fn the_receiver_shows_pushed_values_on_metrics() {
    let b = TestBroker::start(&["fjord.client.telemetry.enabled=true", "fjord.client.telemetry.decompressed.max.bytes=100000"]).await;
    let http = b.running.as_ref().and_then(|r| r.http_addr).expect("an HTTP listener");
    let mut c = b.client().await;
    assert_eq!(alter(&mut c, "all", &[(OP_SET, "metrics", Some("*")), (OP_SET, "interval.ms", Some("100"))], false).await, (0, None));
    let g = get(&mut c, Uuid::nil()).await;
    assert_eq!((g.error_code, g.push_interval_ms), (0, 100));
    assert!(!g.delta_temporality, "the receiver asks for cumulative sums");
    let zstd = zstd::encode_all(otlp_payload(7.5).as_slice(), 3).unwrap();
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 4, &zstd).await, 0);
    let (status, body) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    let id = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(g.client_instance_id.as_bytes())
    };
    let series = format!(r#"org_apache_kafka_producer_node_request_latency_avg{{client_instance_id="{id}",client_id="wire-test",node_id="1"}} 7.5"#);
    assert!(body.contains(&series), "{series} not in:\n{body}");

    // Unreadable payloads get INVALID_RECORD, as Kafka answers a failing receiver; the last
    // good values stay.
    tokio::time::sleep(std::time::Duration::from_millis(110)).await;
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, &[0xff, 0xff, 0xff]).await, E::InvalidRecord.code());
    tokio::time::sleep(std::time::Duration::from_millis(110)).await;
    let bomb = zstd::encode_all(std::io::repeat(0).take(1 << 20), 19).unwrap();
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 4, &bomb).await, E::InvalidRecord.code());
    tokio::time::sleep(std::time::Duration::from_millis(110)).await;
    assert_eq!(push(&mut c, g.client_instance_id, g.subscription_id, false, 0, &otlp_payload(9.0)).await, 0);
    let body = http_get(http, "/metrics").await.1;
    assert!(body.contains(&series.replace("7.5", "9.0")), "{body}");

    // The connection that made the instance closes: Kafka forgets the instance, and its
    // pushed values leave /metrics (a client reconnecting gets a new instance).
    drop(c);
    let gone = async {
        loop {
            if !http_get(http, "/metrics").await.1.contains(&id) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), gone).await.expect("the closed connection's instance leaves /metrics");
    b.stop().await;
}
