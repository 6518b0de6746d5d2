//! A broker's life in a quorum, as Kafka's BrokerLifecycleManager: it registers with the active
//! controller (its listeners, rack and a new incarnation id each start), then heartbeats with the
//! metadata offset it has applied. The controller unfences it once it has caught up, fences it
//! when its heartbeats stop (`broker.session.timeout.ms`), and at a clean stop moves its
//! leaderships away before it goes (controlled shutdown).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Broker;
use super::cluster::ClusterState;

/// Kafka's NOT_CONTROLLER, STALE_BROKER_EPOCH and BROKER_ID_NOT_REGISTERED.
const NOT_CONTROLLER: i16 = 41;
const STALE_BROKER_EPOCH: i16 = 77;
const BROKER_ID_NOT_REGISTERED: i16 = 102;
/// How often a broker not yet registered, or still fenced, asks again.
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Registers and heartbeats until shutdown.
pub async fn run(broker: Arc<Broker>, cluster: Arc<ClusterState>) {
    let incarnation = Uuid::new_v4();
    let interval = Duration::from_millis(broker.config.long("broker.heartbeat.interval.ms").unwrap_or(2000).max(10) as u64);
    let mut stop = broker.shutdown_signal();
    loop {
        let wait = if cluster.broker_epoch() < 0 {
            register(&broker, &cluster, incarnation).await;
            RETRY_INTERVAL
        } else {
            match heartbeat(&broker, &cluster, false).await {
                Some(h) if !h.is_fenced => interval,
                _ => RETRY_INTERVAL,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::raft::transport::stopped(&mut stop) => return,
        }
    }
}

/// The feature levels this broker supports, as a Kafka broker registers them: the controller
/// refuses a broker that cannot run at a finalized level (metadata.version among them).
fn supported_features() -> Vec<Feature> {
    crate::broker::features::SUPPORTED
        .iter()
        .map(|f| Feature::default().with_name(StrBytes::from_static_str(f.name)).with_min_supported_version(f.min_level).with_max_supported_version(f.max_level))
        .collect()
}

async fn register(broker: &Broker, cluster: &ClusterState, incarnation: Uuid) {
    // Every client listener, so clients of each are told the brokers' endpoints on theirs.
    let listeners = broker
        .listener_endpoints
        .iter()
        .map(|l| {
            Listener::default()
                .with_name(StrBytes::from_string(l.name.clone()))
                .with_host(StrBytes::from_string(l.endpoint.host.clone()))
                .with_port(l.endpoint.port)
                .with_security_protocol(l.protocol.id())
        })
        .collect();
    let request = BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_incarnation_id(incarnation)
        .with_listeners(listeners)
        .with_rack(broker.config.value("broker.rack").filter(|r| !r.is_empty()).map(StrBytes::from_string))
        .with_log_dirs(broker.directory_ids.clone())
        .with_features(supported_features())
        .with_previous_broker_epoch(-1);
    match cluster.controllers.send(&request).await {
        Ok(r) if r.error_code == 0 => {
            tracing::info!(epoch = r.broker_epoch, "registered with the controller");
            cluster.set_broker_epoch(r.broker_epoch);
        }
        Ok(r) if r.error_code == NOT_CONTROLLER => cluster.controllers.not_controller().await,
        Ok(r) => tracing::warn!(error_code = r.error_code, "the controller refused this broker's registration"),
        Err(e) => tracing::debug!(error = %e, "registration not sent"),
    }
}

/// What a heartbeat told this broker.
pub struct HeartbeatAnswer {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

async fn heartbeat(broker: &Broker, cluster: &ClusterState, want_shut_down: bool) -> Option<HeartbeatAnswer> {
    let request = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_broker_epoch(cluster.broker_epoch())
        .with_current_metadata_offset(cluster.applied_offset() as i64)
        .with_want_fence(false)
        .with_want_shut_down(want_shut_down);
    match cluster.controllers.send(&request).await {
        Ok(r) if r.error_code == 0 => {
            if r.is_caught_up {
                cluster.set_caught_up();
            }
            Some(HeartbeatAnswer { is_caught_up: r.is_caught_up, is_fenced: r.is_fenced, should_shut_down: r.should_shut_down })
        }
        Ok(r) if r.error_code == NOT_CONTROLLER => {
            cluster.controllers.not_controller().await;
            None
        }
        Ok(r) if r.error_code == STALE_BROKER_EPOCH || r.error_code == BROKER_ID_NOT_REGISTERED => {
            tracing::warn!(error_code = r.error_code, "the controller no longer knows this registration; registering again");
            cluster.set_broker_epoch(-1);
            None
        }
        Ok(r) => {
            tracing::warn!(error_code = r.error_code, "heartbeat refused");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat not sent");
            None
        }
    }
}

/// Controlled shutdown: asks the controller to move this broker's leaderships away and waits
/// until it says the broker may stop, or `timeout` passes.
pub async fn controlled_shutdown(broker: &Broker, cluster: &ClusterState, timeout: Duration) {
    if cluster.broker_epoch() < 0 {
        return;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if let Some(h) = heartbeat(broker, cluster, true).await
            && h.should_shut_down
        {
            tracing::info!("controlled shutdown: the controller moved this broker's leaderships away");
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
    tracing::warn!("controlled shutdown did not complete in time; stopping anyway");
}
