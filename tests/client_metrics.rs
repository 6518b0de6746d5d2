//! KIP-714 client metrics subscriptions on the wire, on 127.0.0.1:0: the CLIENT_METRICS config
//! resource through IncrementalAlterConfigs, AlterConfigs and DescribeConfigs with Kafka 4.0's
//! validation errors, ListClientMetricsResources, a restart keeping them, and the telemetry push
//! APIs not advertised (Kafka 4.0 advertises them only with a telemetry receiver configured).

mod common;

use std::collections::BTreeMap;

use common::*;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

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
async fn list_client_metrics_resources_is_advertised_and_telemetry_push_is_not() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let r = c.send(&ApiVersionsRequest::default().with_client_software_name(s("t")).with_client_software_version(s("1")), 3).await;
    let key = |k: ApiKey| r.api_keys.iter().find(|v| v.api_key == k as i16).map(|v| (v.min_version, v.max_version));
    assert_eq!(key(ApiKey::ListConfigResources), Some((0, 0)));
    assert_eq!(key(ApiKey::GetTelemetrySubscriptions), None);
    assert_eq!(key(ApiKey::PushTelemetry), None);
    b.stop().await;
}
